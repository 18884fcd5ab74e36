/*
 * mxscreen-stats - a report of mxscreen's or Postfix postscreen's log (in
 * the spirit of Postscreen-Stats)
 *
 * Usage: mxscreen-stats [-j | -H] [-n N] [-m MAX] [-t TAG] [-u UNIT]... [FILE...]
 *
 * Reads log lines from each FILE (plain or gzip-compressed: zlib looks at
 * the magic bytes; "-" is standard input, which is also read when there is
 * no FILE and no -u), and with -u from the systemd journal: it runs
 * "journalctl -o short-iso -u UNIT --no-pager" (fork and exec, no shell)
 * and reads its output.  Lines in syslog, RFC 3339 or journalctl form,
 * from postscreen, mxscreen (any syslog_name ending in /postscreen, or
 * mxscreen) and dnsblog are counted (stats/logparse.h); any other line is
 * an "other line".  The report (stats/report.h) goes to standard output:
 * text, JSON (-j) or one self-contained HTML page (-H).
 *
 * A bad option, an input that cannot be read (a missing file, a broken
 * gzip stream), journalctl missing, failing or finding no entries: one line
 * on stderr and exit status 1.  Memory grows with the distinct client
 * addresses, never with the number of lines.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "stats/logparse.h"
#include "stats/report.h"

#define LINE_MAX_LEN  65536 /* longer lines are cut (the rest is skipped) */
#define CHUNK         65536
#define UNITS_MAX     16
#define DEFAULT_TOP   10
#define DEFAULT_MAXAD 1000000

enum format { FMT_TEXT, FMT_JSON, FMT_HTML };

struct stats {
    struct report *report;
    struct logparse_opts popts;
    char line[LINE_MAX_LEN];
    size_t len;   /* bytes in line[] */
    bool cut;     /* the current line is too long: skip to its end */
    bool journal; /* skip journalctl's "-- ... --" notes, count entries */
    unsigned long long entries;
};

static void __attribute__((noreturn, format(printf, 1, 2))) die(const char *fmt, ...)
{
    va_list ap;

    fflush(stdout);
    fputs("mxscreen-stats: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static void usage(void)
{
    printf("usage: mxscreen-stats [-j | -H] [-n N] [-m MAX] [-t TAG] [-u UNIT]... [FILE...]\n"
           "\n"
           "A report of mxscreen's or Postfix postscreen's log lines (and dnsblog's).\n"
           "\n"
           "  FILE      a log file, plain or gzip; \"-\" or none: standard input\n"
           "  -u UNIT   also read the journal of a systemd unit (runs journalctl\n"
           "            -o short-iso -u UNIT --no-pager); may be repeated\n"
           "  -j        JSON output      -H  one self-contained HTML page\n"
           "  -n N      entries in each top list (default %d; 0: all)\n"
           "  -m MAX    client addresses tracked at most (default %d)\n"
           "  -t TAG    also count lines tagged TAG as postscreen's (besides\n"
           "            */postscreen, postscreen, */mxscreen, mxscreen)\n"
           "\n"
           "Lines: syslog (\"Nov 21 18:45:18 host postfix/postscreen[123]: ...\"),\n"
           "RFC 3339 and journalctl -o short / short-iso time stamps.\n"
           "\n"
           "JSON keys (format \"mxscreen-stats/1\"): format, top, lines {total,\n"
           "postscreen, dnsblog, other, unknown}, time {first, last, seconds},\n"
           "addresses {distinct, limit, untracked_lines}, verdicts {connect, pass_new,\n"
           "pass_old, allowlisted, denylisted, allowlist_veto, pregreet, dnsbl_rank,\n"
           "hangup_before_handshake, hangup_after_handshake, command_pipelining,\n"
           "non_smtp_command, bare_newline, command_time_limit, command_count_limit,\n"
           "command_length_limit, noqueue_reject_rcpt, data_without_valid_rcpt,\n"
           "bdat_without_valid_rcpt, disconnect, too_many_connections,\n"
           "all_server_ports_busy, all_screening_ports_busy, replay: {connections,\n"
           "addresses}}, legacy_words, tests_failed {pregreet, dnsbl, pipelining,\n"
           "non_smtp, bare_newline, any: {connections, addresses}}, rejected\n"
           "{connections, addresses}, pass_new_to_old {pass_new_addresses,\n"
           "came_back_pass_old, percent}, dnsbl_ranks [{rank, connections, addresses}],\n"
           "dnsbl_sites [{site, clients, lines}], blocked_using [{site, rejects,\n"
           "addresses}], noqueue_replies [{reply, lines, addresses}],\n"
           "top_rejected_addresses [{address, rejected, connections}],\n"
           "top_rejected_networks [{network, rejected, addresses}] (/24, /64),\n"
           "warnings {total, KIND...}, events {fatal, stress_enter, ...},\n"
           "names_overflow.  A connection is rejected when it failed a test or was\n"
           "denylisted.  See README.md, \"Log report: mxscreen-stats\".\n",
           DEFAULT_TOP, DEFAULT_MAXAD);
}

/* One complete line (without its newline). */
static void take_line(struct stats *st, const char *p, size_t len)
{
    struct logparse_event ev;

    if (st->journal) {
        /* "-- No entries --", "-- Journal begins at ... --", "-- Boot ID --" */
        if (len >= 3 && memcmp(p, "-- ", 3) == 0)
            return;
        st->entries++;
    }
    logparse_line(p, len, &st->popts, &ev);
    report_add(st->report, &ev);
}

/* Split a chunk of input into lines; a line longer than LINE_MAX_LEN is cut. */
static void take_bytes(struct stats *st, const char *p, size_t n)
{
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        size_t k = nl ? (size_t)(nl - p) : n;
        if (!st->cut) {
            size_t room = sizeof(st->line) - st->len;
            size_t c = k < room ? k : room;
            memcpy(st->line + st->len, p, c);
            st->len += c;
            if (c < k)
                st->cut = true;
        }
        if (nl == NULL)
            return;
        take_line(st, st->line, st->len);
        st->len = 0;
        st->cut = false;
        p += k + 1;
        n -= k + 1;
    }
}

/* The last line, when the input does not end in a newline. */
static void take_end(struct stats *st)
{
    if (st->len > 0 || st->cut)
        take_line(st, st->line, st->len);
    st->len = 0;
    st->cut = false;
}

/* zlib's message without the "<fd:N>: " it puts in front. */
static const char *gz_message(gzFile gz, int *err)
{
    const char *msg = gzerror(gz, err);
    const char *colon = strstr(msg, ": ");

    if (strncmp(msg, "<fd:", 4) == 0 && colon != NULL)
        msg = colon + 2;
    return *err == Z_ERRNO ? strerror(errno) : msg;
}

/* Read descriptor FD (NAME for messages) to its end, gzip or not. */
static void read_fd(struct stats *st, int fd, const char *name)
{
    static char chunk[CHUNK];
    gzFile gz = gzdopen(fd, "rb");
    int n, err;

    if (gz == NULL)
        die("%s: cannot read: %s", name, strerror(errno ? errno : ENOMEM));
    (void)gzbuffer(gz, CHUNK);
    while ((n = gzread(gz, chunk, sizeof(chunk))) > 0)
        take_bytes(st, chunk, (size_t)n);
    if (n < 0)
        die("%s: %s", name, gz_message(gz, &err));
    /* A gzip stream cut short reads as end of file, with an error noted. */
    const char *msg = gz_message(gz, &err);
    if (err != Z_OK && err != Z_STREAM_END)
        die("%s: %s", name, msg);
    take_end(st);
    if (gzclose_r(gz) != Z_OK)
        die("%s: read error", name);
}

/* One input: a file, or standard input ("-"). */
static void read_input(struct stats *st, const char *path)
{
    if (strcmp(path, "-") == 0) {
        int fd = dup(0);
        if (fd < 0)
            die("standard input: %s", strerror(errno));
        read_fd(st, fd, "standard input");
        return;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        die("%s: %s", path, strerror(errno));
    read_fd(st, fd, path);
}

/* The first line of what FD (a file) holds, for a message; "" when empty. */
static void first_line(int fd, char *buf, size_t len)
{
    ssize_t n = pread(fd, buf, len - 1, 0);
    size_t k = n > 0 ? (size_t)n : 0;

    buf[k] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
}

/* The journal of UNITS: run journalctl and read its output. */
static void read_journal(struct stats *st, char **units, int nunits)
{
    char *argv[4 + 2 * UNITS_MAX + 2];
    char what[256] = "journalctl";
    int out[2], status_pipe[2], ac = 0;
    FILE *errf = tmpfile();

    if (errf == NULL)
        die("cannot make a temporary file for journalctl's messages: %s", strerror(errno));
    argv[ac++] = "journalctl";
    argv[ac++] = "-o";
    argv[ac++] = "short-iso";
    for (int i = 0; i < nunits; i++) {
        argv[ac++] = "-u";
        argv[ac++] = units[i];
        size_t used = strlen(what);
        snprintf(what + used, sizeof(what) - used, " -u %s", units[i]);
    }
    argv[ac++] = "--no-pager";
    argv[ac] = NULL;
    if (pipe2(out, O_CLOEXEC) < 0 || pipe2(status_pipe, O_CLOEXEC) < 0)
        die("pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        int null = open("/dev/null", O_RDONLY);
        if (null < 0 || dup2(null, 0) < 0 || dup2(out[1], 1) < 0 || dup2(fileno(errf), 2) < 0)
            _exit(127);
        execvp(argv[0], argv);
        int e = errno;
        ssize_t w = write(status_pipe[1], &e, sizeof(e));
        (void)w;
        _exit(127);
    }
    close(out[1]);
    close(status_pipe[1]);
    int exec_errno = 0;
    ssize_t got;
    while ((got = read(status_pipe[0], &exec_errno, sizeof(exec_errno))) < 0 && errno == EINTR)
        continue;
    close(status_pipe[0]);
    if (got == (ssize_t)sizeof(exec_errno)) {
        close(out[0]);
        (void)waitpid(pid, NULL, 0);
        die("cannot run journalctl: %s", strerror(exec_errno));
    }
    st->journal = true;
    st->entries = 0;
    read_fd(st, out[0], what);
    st->journal = false;
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            die("waitpid: %s", strerror(errno));
    char msg[512];
    first_line(fileno(errf), msg, sizeof(msg));
    fclose(errf);
    if (WIFSIGNALED(status))
        die("%s: killed by signal %d", what, WTERMSIG(status));
    if (WEXITSTATUS(status) != 0)
        die("%s failed (exit %d)%s%s", what, WEXITSTATUS(status), msg[0] ? ": " : "", msg);
    if (st->entries == 0)
        die("%s: no journal entries: unknown unit, or no journal here%s%s%s", what,
            msg[0] ? " (journalctl: " : "", msg, msg[0] ? ")" : "");
}

/* A decimal option value in [MIN, MAX]. */
static unsigned long long number_arg(const char *opt, const char *s, unsigned long long min,
                                     unsigned long long max)
{
    char *end;

    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 || v < min || v > max)
        die("%s: bad number \"%s\" (%llu to %llu)", opt, s, min, max);
    return v;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},       {"json", no_argument, NULL, 'j'},
        {"html", no_argument, NULL, 'H'},       {"top", required_argument, NULL, 'n'},
        {"unit", required_argument, NULL, 'u'}, {NULL, 0, NULL, 0},
    };
    static struct stats st;
    struct report_opts ro = {DEFAULT_TOP, DEFAULT_MAXAD, (int64_t)time(NULL)};
    enum format fmt = FMT_TEXT;
    char *units[UNITS_MAX];
    int nunits = 0, c;
    bool json = false, html = false;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":hjHn:m:t:u:", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            usage();
            return 0;
        case 'j':
            json = true;
            fmt = FMT_JSON;
            break;
        case 'H':
            html = true;
            fmt = FMT_HTML;
            break;
        case 'n':
            ro.top = (size_t)number_arg("-n", optarg, 0, 1000000);
            break;
        case 'm':
            ro.max_addresses = (size_t)number_arg("-m", optarg, 1, 1000000000);
            break;
        case 't':
            st.popts.extra_tag = optarg;
            break;
        case 'u':
            if (nunits == UNITS_MAX)
                die("-u: at most %d units", UNITS_MAX);
            if (optarg[0] == '\0' || optarg[0] == '-')
                die("-u: bad unit name \"%s\"", optarg);
            units[nunits++] = optarg;
            break;
        case ':':
            die("option %s needs a value (see mxscreen-stats --help)", argv[optind - 1]);
        default:
            if (optopt != 0)
                die("unknown option -%c (see mxscreen-stats --help)", optopt);
            die("unknown option %s (see mxscreen-stats --help)", argv[optind - 1]);
        }
    }
    if (json && html)
        die("-j and -H: choose one output format");
    st.report = report_new(&ro);
    for (int i = optind; i < argc; i++)
        read_input(&st, argv[i]);
    if (nunits > 0)
        read_journal(&st, units, nunits);
    if (optind == argc && nunits == 0)
        read_input(&st, "-");
    switch (fmt) {
    case FMT_TEXT:
        report_text(st.report, stdout);
        break;
    case FMT_JSON:
        report_json(st.report, stdout);
        break;
    case FMT_HTML:
        report_html(st.report, stdout);
        break;
    }
    report_free(st.report);
    if (fflush(stdout) != 0 || ferror(stdout))
        die("standard output: %s", strerror(errno));
    return 0;
}
