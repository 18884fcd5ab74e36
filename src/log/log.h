/*
 * log - postscreen-style logging to stderr, a file or syslog
 *
 * Every line has the form Postfix's maillog_file uses:
 *     "Mon DD HH:MM:SS host tag[pid]: text"
 * on stderr and in a file, and "tag[pid]: text" through syslog(3).  The tag
 * is syslog_name (for example "postfix/postscreen", so that tools written for
 * postscreen read mxscreen's log unchanged).
 *
 * msg_info() logs a line; msg_warn() prefixes "warning: "; msg_fatal() logs
 * "fatal: " and exits 1 (configuration and start-up only, never for a peer);
 * msg_panic() logs "panic: " and aborts (a broken invariant).
 *
 * log_escape() makes peer text safe to log: it cuts the input at a byte
 * limit and C-escapes it the way Postfix's escape() does.
 *
 * Until log_open() succeeds, lines go to stderr with the tag "mxscreen".
 *
 * log_set_buffered(WAKE) makes informational lines wait in a buffer, to be
 * written together by log_flush(): WAKE is called when the buffer stops
 * being empty (the daemon makes it flush at the end of the event loop's
 * current round), so that a busy loop writes its lines in one system call.
 * Warnings and worse flush and are written at once; so does log_close().
 */
#ifndef MXS_LOG_H
#define MXS_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum log_target {
    LOG_TARGET_STDERR,
    LOG_TARGET_FILE,
    LOG_TARGET_SYSLOG,
};

/* The longest peer text logged, as postscreen does. */
#define LOG_PEER_TEXT_MAX 100
/* Room for LOG_PEER_TEXT_MAX bytes escaped as \ooo, plus the NUL. */
#define LOG_ESCAPE_BUFSZ (LOG_PEER_TEXT_MAX * 4 + 1)

int log_open(enum log_target target, const char *tag, const char *host, const char *path,
             const char *facility, char *err, size_t errlen);
void log_close(void);
void log_flush(void);
void log_set_buffered(void (*wake)(void));

void msg_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void msg_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void vmsg_warn(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
void msg_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void msg_panic(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

void log_set_delay_resolution(int digits);
void log_format_delay(char *buf, size_t len, long sec, long usec);
size_t log_escape(char *dst, size_t dstlen, const void *src, size_t srclen, size_t maxin);

#endif
