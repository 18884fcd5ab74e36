/*
 * log - postscreen-style logging; see log.h for the contract.
 *
 * A line is formatted whole into a stack buffer and written with a single
 * write(2) (O_APPEND for files), so that lines from several processes never
 * interleave.  Lines longer than the buffer are cut, never split.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log/log.h"

#define LOG_LINE_MAX 4096

static enum log_target log_target = LOG_TARGET_STDERR;
static char log_tag[128] = "mxscreen";
static char log_host[256] = "localhost";
static int log_fd = 2;
static long log_pid;           /* getpid(), once: mxscreen never forks */
static time_t log_stamp_time;  /* the second log_stamp[] shows */
static char log_stamp[32];     /* "Mon DD HH:MM:SS " */
static void (*log_wake)(void); /* NULL: every line is written at once */
static char log_buf[65536];    /* lines waiting for log_flush() */
static size_t log_len;

static const struct {
    const char *name;
    int value;
} log_facilities[] = {
    {"mail", LOG_MAIL},     {"daemon", LOG_DAEMON}, {"user", LOG_USER},     {"local0", LOG_LOCAL0},
    {"local1", LOG_LOCAL1}, {"local2", LOG_LOCAL2}, {"local3", LOG_LOCAL3}, {"local4", LOG_LOCAL4},
    {"local5", LOG_LOCAL5}, {"local6", LOG_LOCAL6}, {"local7", LOG_LOCAL7},
};

/* Copy S into a fixed buffer, cutting it if needed. */
static void log_copy(char *dst, size_t len, const char *s)
{
    snprintf(dst, len, "%s", s);
}

/* Switch logging to TARGET; 0 on success, -1 with ERR filled in. */
int log_open(enum log_target target, const char *tag, const char *host, const char *path,
             const char *facility, char *err, size_t errlen)
{
    int fac = LOG_MAIL;

    if (target == LOG_TARGET_FILE) {
        int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (fd < 0) {
            snprintf(err, errlen, "open %s: %s", path, strerror(errno));
            return -1;
        }
        if (log_fd > 2)
            close(log_fd);
        log_fd = fd;
    }
    if (target == LOG_TARGET_SYSLOG) {
        size_t i;
        for (i = 0; i < sizeof(log_facilities) / sizeof(log_facilities[0]); i++)
            if (strcasecmp(facility, log_facilities[i].name) == 0)
                break;
        if (i == sizeof(log_facilities) / sizeof(log_facilities[0])) {
            snprintf(err, errlen, "unknown syslog facility: %s", facility);
            return -1;
        }
        fac = log_facilities[i].value;
    }
    log_copy(log_tag, sizeof(log_tag), tag);
    /* Postfix's maillog_file shows the first label of myhostname only. */
    snprintf(log_host, sizeof(log_host), "%.*s", (int)strcspn(host, "."), host);
    if (target == LOG_TARGET_SYSLOG)
        openlog(log_tag, LOG_PID | LOG_NDELAY, fac);
    log_target = target;
    return 0;
}

/* Go back to stderr (used at exit and by tests). */
/* Write what waits in the buffer. */
void log_flush(void)
{
    size_t off = 0;

    while (off < log_len) {
        ssize_t w = write(log_fd, log_buf + off, log_len - off);
        if (w <= 0)
            break; /* best effort: a log that cannot be written must not stop the service */
        off += (size_t)w;
    }
    log_len = 0;
}

/* Buffer lines from now on; WAKE is called when the buffer stops being
 * empty, so that the owner calls log_flush() soon (NULL: unbuffered). */
void log_set_buffered(void (*wake)(void))
{
    log_flush();
    log_wake = wake;
}

void log_close(void)
{
    log_flush();
    log_wake = NULL;
    if (log_target == LOG_TARGET_SYSLOG)
        closelog();
    if (log_fd > 2)
        close(log_fd);
    log_fd = 2;
    log_target = LOG_TARGET_STDERR;
}

/* Format and emit one line with an optional severity prefix. */
static void log_vline(int prio, const char *prefix, const char *fmt, va_list ap)
{
    char line[LOG_LINE_MAX];
    size_t n = 0;
    int saved = errno;

    if (log_target == LOG_TARGET_SYSLOG) {
        char text[LOG_LINE_MAX];
        vsnprintf(text, sizeof(text), fmt, ap);
        syslog(prio, "%s%s", prefix, text);
        errno = saved;
        return;
    }
    time_t now = time(NULL);
    if (now != log_stamp_time || log_stamp[0] == '\0') {
        struct tm tm;
        localtime_r(&now, &tm);
        strftime(log_stamp, sizeof(log_stamp), "%b %d %H:%M:%S ", &tm);
        log_stamp_time = now;
    }
    if (log_pid == 0)
        log_pid = (long)getpid();
    int r = snprintf(line, sizeof(line), "%s%s %s[%ld]: %s", log_stamp, log_host, log_tag, log_pid,
                     prefix);
    if (r > 0)
        n = (size_t)r < sizeof(line) ? (size_t)r : sizeof(line) - 1;
    r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    if (r > 0)
        n += (size_t)r < sizeof(line) - n ? (size_t)r : sizeof(line) - n - 1;
    line[n++] = '\n';
    if (log_wake && prio >= LOG_INFO) {
        if (log_len + n > sizeof(log_buf))
            log_flush();
        if (log_len == 0)
            log_wake();
        memcpy(log_buf + log_len, line, n);
        log_len += n;
    } else {
        /* Warnings and worse, and lines before the loop runs: at once. */
        log_flush();
        ssize_t w = write(log_fd, line, n);
        (void)w;
    }
    errno = saved;
}

/* Log an informational line. */
void msg_info(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vline(LOG_INFO, "", fmt, ap);
    va_end(ap);
}

/* Log a warning. */
void msg_warn(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vline(LOG_WARNING, "warning: ", fmt, ap);
    va_end(ap);
}

/* msg_warn() with a va_list. */
void vmsg_warn(const char *fmt, va_list ap)
{
    log_vline(LOG_WARNING, "warning: ", fmt, ap);
}

/* Log a fatal error and exit 1: for configuration and start-up only. */
void msg_fatal(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vline(LOG_CRIT, "fatal: ", fmt, ap);
    va_end(ap);
    exit(1);
}

/* Log a broken invariant and abort. */
void msg_panic(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vline(LOG_CRIT, "panic: ", fmt, ap);
    va_end(ap);
    abort();
}

/*
 * C-escape at most MAXIN bytes of SRC into DST (always NUL-terminated),
 * as Postfix's escape(): printable ASCII as is with the backslash doubled,
 * \a \b \f \n \r \t \v by name, every other byte as \ooo.  Returns the
 * length written.  DST must hold 4 * MAXIN + 1 bytes to never cut.
 */
size_t log_escape(char *dst, size_t dstlen, const void *src, size_t srclen, size_t maxin)
{
    static const char named[] = "\a\b\f\n\r\t\v";
    static const char names[] = "abfnrtv";
    const unsigned char *p = src;
    size_t n = 0;

    if (dstlen == 0)
        return 0;
    if (srclen > maxin)
        srclen = maxin;
    for (size_t i = 0; i < srclen; i++) {
        char tmp[5];
        size_t k;
        unsigned char ch = p[i];
        const char *nm = ch ? strchr(named, ch) : NULL;

        if (ch >= 0x20 && ch < 0x7f && ch != '\\') {
            tmp[0] = (char)ch;
            k = 1;
        } else if (ch == '\\') {
            tmp[0] = tmp[1] = '\\';
            k = 2;
        } else if (nm != NULL) {
            tmp[0] = '\\';
            tmp[1] = names[nm - named];
            k = 2;
        } else {
            snprintf(tmp, sizeof(tmp), "\\%03o", ch);
            k = 4;
        }
        if (n + k >= dstlen)
            break;
        memcpy(dst + n, tmp, k);
        n += k;
    }
    dst[n] = '\0';
    return n;
}

static int delay_max_digits = 2; /* delay_logging_resolution_limit */

/* Set delay_logging_resolution_limit (0 to 6 decimals). */
void log_set_delay_resolution(int digits)
{
    delay_max_digits = digits < 0 ? 0 : digits > 6 ? 6 : digits;
}

/*
 * Format a delay as Postfix's format_tv() does for postscreen: two
 * significant digits, at most delay_logging_resolution_limit decimals,
 * rounded, trailing zeros dropped ("0.14", "1.2", "6").
 */
void log_format_delay(char *buf, size_t len, long sec, long usec)
{
    static const long pow10[] = {1, 10, 100, 1000, 10000, 100000, 1000000};
    const long million = 1000000;
    long ures = million / pow10[delay_max_digits];
    long wid = pow10[2];
    size_t n = 0;

    if (ures < million) {
        if (sec > 0) {
            long k;
            for (k = 1; sec >= k && k <= wid / 10; k *= 10)
                continue;
            ures = (million / wid) * k;
        } else {
            while (usec >= wid * ures)
                ures *= 10;
        }
    }
    if (ures > 1) {
        usec += ures / 2;
        if (usec >= million) {
            sec += 1;
            usec -= million;
        }
    }
    int w = snprintf(buf, len, "%ld", sec);
    if (w < 0 || (size_t)w >= len)
        return;
    n = (size_t)w;
    if (usec >= ures && n + 1 < len) {
        buf[n++] = '.';
        long rem = usec;
        for (long k = million / 10; rem >= ures && k > 0 && n + 1 < len; k /= 10) {
            buf[n++] = (char)('0' + rem / k);
            rem %= k;
        }
        buf[n] = '\0';
    }
}
