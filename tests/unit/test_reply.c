/*
 * test_reply - soft_bounce and reject footers on outgoing replies, checked
 * against what Postfix 3.7's psc_send_reply() and smtp_reply_footer() (with
 * mac_expand() and psc_expand_lookup()) produce for the same reply and
 * template; reply_soften() for the NOQUEUE log line
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ctype.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/table.h"
#include "log/log.h"
#include "smtp/reply.h"
#include "util/sbuf.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---- a log file to catch warnings ---------------------------------------- */

static char logpath[96];

static int group_setup(void **state)
{
    const char *base = getenv("TMPDIR");
    char err[256];

    (void)state;
    snprintf(logpath, sizeof(logpath), "%s/mxs-reply-XXXXXX", base && *base ? base : "/tmp");
    int fd = mkstemp(logpath);
    if (fd < 0)
        return -1;
    close(fd);
    return log_open(LOG_TARGET_FILE, "test", "host", logpath, "mail", err, sizeof(err));
}

static int group_teardown(void **state)
{
    (void)state;
    log_close();
    return unlink(logpath);
}

static void log_clear(void)
{
    assert_int_equal(truncate(logpath, 0), 0);
}

/* The log so far, in BUF. */
static const char *log_text(char *buf, size_t len)
{
    int fd = open(logpath, O_RDONLY);
    ssize_t n;

    assert_true(fd >= 0);
    n = read(fd, buf, len - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

/* Printable form of reply text for failure messages. */
static const char *vis(const char *s, char *buf, size_t len)
{
    size_t n = 0;

    for (; *s && n + 5 < len; s++) {
        if (*s == '\r')
            n += (size_t)snprintf(buf + n, len - n, "\\r");
        else if (*s == '\n')
            n += (size_t)snprintf(buf + n, len - n, "\\n");
        else
            buf[n++] = *s;
    }
    buf[n] = '\0';
    return buf;
}

/* ---- reply_format() ------------------------------------------------------ */

struct reply_case {
    const char *name;    /* for failure messages */
    bool soft_bounce;    /* soft_bounce */
    const char *footer;  /* postscreen_reject_footer */
    const char *maps;    /* postscreen_reject_footer_maps (one table), or NULL */
    const char *filter;  /* postscreen_expansion_filter, or NULL for none */
    const char *addr;    /* $client_address, NULL for 192.0.2.1 */
    const char *text;    /* the reply */
    const char *want;    /* what goes out */
    const char *warning; /* a warning that must be logged, or NULL for none */
    bool any_warning;    /* do not check for warnings (mxscreen need not warn) */
    const char *bug;     /* non-NULL: a known divergence from Postfix */
};

#define PE "550 5.5.1 Protocol error\r\n"

static const struct reply_case reply_cases[] = {
    /* soft_bounce */
    {"no footer, no soft_bounce", false, "", NULL, NULL, NULL, PE, PE, NULL, false, NULL},
    {"soft_bounce 5xx and 5.x.x", true, "", NULL, NULL, NULL, PE, "450 4.5.1 Protocol error\r\n",
     NULL, false, NULL},
    {"soft_bounce leaves 2xx", true, "", NULL, NULL, NULL, "250 2.0.0 Ok\r\n", "250 2.0.0 Ok\r\n",
     NULL, false, NULL},
    {"soft_bounce leaves 421", true, "", NULL, NULL, NULL,
     "421 4.3.2 Service currently unavailable\r\n", "421 4.3.2 Service currently unavailable\r\n",
     NULL, false, NULL},
    {"soft_bounce without enhanced code", true, "", NULL, NULL, NULL, "550 Protocol error\r\n",
     "450 Protocol error\r\n", NULL, false, NULL},
    {"soft_bounce 521", true, "", NULL, NULL, NULL, "521 5.7.1 Go away\r\n",
     "421 4.7.1 Go away\r\n", NULL, false, NULL},
    {"soft_bounce multi-line: first line", true, "", NULL, NULL, NULL,
     "550-5.5.1 a\r\n550 5.5.1 b\r\n", "450-4.5.1 a\r\n550 5.5.1 b\r\n", NULL, false, NULL},

    /* footer lines */
    {"footer: two lines", false, "Contact $server_name\\nsecond", NULL, NULL, NULL, PE,
     "550-5.5.1 Protocol error\r\n550-5.5.1 Contact mx.test\r\n550 5.5.1 second\r\n", NULL, false,
     NULL},
    {"footer: \\c then a line", false, "\\c Contact $server_name\\nsecond", NULL, NULL, NULL, PE,
     "550-5.5.1 Protocol error Contact mx.test\r\n550 5.5.1 second\r\n", NULL, false, NULL},
    {"footer: \\c only", false, "\\c (see $server_name)", NULL, NULL, NULL, PE,
     "550 5.5.1 Protocol error (see mx.test)\r\n", NULL, false, NULL},
    {"footer: bare \\c adds nothing", false, "\\c", NULL, NULL, NULL, PE, PE, NULL, false, NULL},
    {"footer: \\c then \\n", false, "\\c\\nfoo", NULL, NULL, NULL, PE,
     "550-5.5.1 Protocol error\r\n550 5.5.1 foo\r\n", NULL, false, NULL},
    {"footer: \\c not at the start is text", false, "x\\cy", NULL, NULL, NULL, PE,
     "550-5.5.1 Protocol error\r\n550 5.5.1 x\\cy\r\n", NULL, false, NULL},
    {"footer: leading \\n", false, "\\nfoo", NULL, NULL, NULL, PE,
     "550-5.5.1 Protocol error\r\n550-5.5.1 \r\n550 5.5.1 foo\r\n", NULL, false, NULL},
    {"footer: trailing \\n", false, "foo\\n", NULL, NULL, NULL, PE,
     "550-5.5.1 Protocol error\r\n550-5.5.1 foo\r\n550 5.5.1 \r\n", NULL, false, NULL},
    {"footer: empty middle line", false, "a\\n\\nb", NULL, NULL, NULL, PE,
     "550-5.5.1 Protocol error\r\n550-5.5.1 a\r\n550-5.5.1 \r\n550 5.5.1 b\r\n", NULL, false, NULL},
    {"footer: 4xx reply", false, "x", NULL, NULL, NULL, "450 4.7.1 Try again\r\n",
     "450-4.7.1 Try again\r\n450 4.7.1 x\r\n", NULL, false, NULL},
    {"footer: no enhanced code", false, "x $client_address", NULL, NULL, NULL, "421 host text\r\n",
     "421-host text\r\n421 x 192.0.2.1\r\n", NULL, false, NULL},
    {"footer: 2xx gets none", false, "x", NULL, NULL, NULL, "250 2.0.0 Ok\r\n", "250 2.0.0 Ok\r\n",
     NULL, false, NULL},
    {"footer: 220 gets none", false, "x", NULL, NULL, NULL, "220 mx.test ESMTP\r\n",
     "220 mx.test ESMTP\r\n", NULL, false, NULL},
    {"footer: multi-line reply", false, "x", NULL, NULL, NULL, "550-5.5.1 a\r\n550 5.5.1 b\r\n",
     "550-5.5.1 a\r\n550-5.5.1 b\r\n550 5.5.1 x\r\n", NULL, false, NULL},
    {"footer: codes of the last line", false, "Baz", NULL, NULL, NULL,
     "550-5.1.1 Foo\r\n450 4.1.1 Bar", "550-5.1.1 Foo\r\n450-4.1.1 Bar\r\n450 4.1.1 Baz", NULL,
     false, NULL},
    {"footer: reply without CRLF", false, "x", NULL, NULL, NULL, "550 5.5.1 Protocol error",
     "550-5.5.1 Protocol error\r\n550 5.5.1 x", NULL, false, NULL},
    {"footer: enhanced code 5.5.10", false, "f", NULL, NULL, NULL, "550 5.5.10 x\r\n",
     "550-5.5.10 x\r\n550 5.5.10 f\r\n", NULL, false, NULL},
    {"footer: 4 digits is not an enhanced code", false, "f", NULL, NULL, NULL, "550 5.5.1234 x\r\n",
     "550-5.5.1234 x\r\n550 f\r\n", NULL, false, NULL},
    {"footer: 5.5 is not an enhanced code", false, "f", NULL, NULL, NULL, "550 5.5 x\r\n",
     "550-5.5 x\r\n550 f\r\n", NULL, false, NULL},
    {"footer: 5.5.1x is not an enhanced code", false, "f", NULL, NULL, NULL, "550 5.5.1x x\r\n",
     "550-5.5.1x x\r\n550 f\r\n", NULL, false, NULL},
    {"footer: enhanced code at the end", false, "f", NULL, NULL, NULL, "550 5.5.1\r\n",
     "550-5.5.1\r\n550 5.5.1 f\r\n", NULL, false, NULL},
    {"footer: soft_bounce applies to footer codes", true, "x", NULL, NULL, NULL, PE,
     "450-4.5.1 Protocol error\r\n450 4.5.1 x\r\n", NULL, false, NULL},

    /* macros */
    {"macros: address and port", false, "addr $client_address port ${client_port} $(client_port)",
     NULL, NULL, NULL, PE,
     "550-5.5.1 Protocol error\r\n550 5.5.1 addr 192.0.2.1 port 4711 4711\r\n", NULL, false, NULL},
    {"macros: ${client_address}", false, "${client_address}", NULL, NULL, NULL, PE,
     "550-5.5.1 Protocol error\r\n550 5.5.1 192.0.2.1\r\n", NULL, false, NULL},
    {"macros: $(client_address)", false, "$(client_address)", NULL, NULL, NULL, PE,
     "550-5.5.1 Protocol error\r\n550 5.5.1 192.0.2.1\r\n", NULL, false, NULL},
    {"macros: ?", false, "${client_address?yes}", NULL, NULL, NULL, PE,
     "550-5.5.1 Protocol error\r\n550 5.5.1 yes\r\n", NULL, false, NULL},
    {"macros: ? with a macro inside", false, "${client_address?from $client_address}", NULL, NULL,
     NULL, PE, "550-5.5.1 Protocol error\r\n550 5.5.1 from 192.0.2.1\r\n", NULL, false, NULL},
    {"macros: : of a defined name", false, "[${client_address:no}]", NULL, NULL, NULL, PE,
     "550-5.5.1 Protocol error\r\n550 5.5.1 []\r\n", NULL, false, NULL},
    {"macros: : of an unknown name", false, "${nope:default}", NULL, NULL, NULL, PE,
     "550-5.5.1 Protocol error\r\n550 5.5.1 default\r\n",
     "warning: unknown macro name \"nope\" in expansion request", false, NULL},
    {"macros: ? of an unknown name", false, "[${nope?x}]", NULL, NULL, NULL, PE,
     "550-5.5.1 Protocol error\r\n550 5.5.1 []\r\n",
     "warning: unknown macro name \"nope\" in expansion request", false, NULL},
    {"macros: unknown name expands to nothing", false, "x $nope y", NULL, NULL, NULL, PE,
     "550-5.5.1 Protocol error\r\n550 5.5.1 x  y\r\n",
     "warning: unknown macro name \"nope\" in expansion request", false, NULL},
    {"macros: $$", false, "cost $$5", NULL, NULL, NULL, PE,
     "550-5.5.1 Protocol error\r\n550 5.5.1 cost $5\r\n", NULL, false, NULL},
    {"macros: text after }", false, "${client_address}x}", NULL, NULL, NULL, PE,
     "550-5.5.1 Protocol error\r\n550 5.5.1 192.0.2.1x}\r\n", NULL, false, NULL},

    /* syntax errors: no footer at all, the reply as it was */
    {"syntax: unterminated ${", false, "${client_address", NULL, NULL, NULL, PE, PE, NULL, true,
     NULL},
    {"syntax: error on a later line", false, "first\\n${client_address", NULL, NULL, NULL, PE, PE,
     NULL, true, NULL},
    {"syntax: error after \\c", false, "\\c more ${client_address", NULL, NULL, NULL, PE, PE, NULL,
     true, NULL},
    {"syntax: unterminated ${name?", false, "${client_address?yes", NULL, NULL, NULL, PE, PE, NULL,
     true, NULL},
    {"syntax: $ and a space", false, "100$ fee", NULL, NULL, NULL, PE, PE, NULL, true, NULL},
    {"syntax: $ at the end", false, "end$", NULL, NULL, NULL, PE, PE, NULL, true, NULL},
    {"syntax: ${}", false, "${}", NULL, NULL, NULL, PE, PE, NULL, true, NULL},
    {"syntax: bad name", false, "${client-address}", NULL, NULL, NULL, PE, PE, NULL, true, NULL},
    {"syntax: bad operator", false, "${client_address!x}", NULL, NULL, NULL, PE, PE, NULL, true,
     NULL},
    {"syntax: soft_bounce still applies", true, "${client_address", NULL, NULL, NULL, PE,
     "450 4.5.1 Protocol error\r\n", NULL, true, NULL},
    /*
     * As in Postfix: mac_parse() balances only the bracket that opened the reference
     * ("${" counts "{" and "}"), so a ")" inside ${...} is text.
     */
    {"syntax: ) inside ${...}", false, "${client_address?:)}", NULL, NULL, NULL, PE,
     "550-5.5.1 Protocol error\r\n550 5.5.1 :)\r\n", NULL, true,
     "a ')' inside ${...} is taken as a bracket: the footer is dropped"},

    /* postscreen_expansion_filter: only macro values are filtered */
    {"filter: IPv6 address", false, "a:b $client_address ${client_address?a:b}", NULL,
     "0123456789.", "2001:db8::1", PE,
     "550-5.5.1 Protocol error\r\n550 5.5.1 a:b 2001___8__1 a:b\r\n", NULL, false, NULL},
    {"filter: brackets", false, "[$client_address]", NULL, "abc", "a<b>c", PE,
     "550-5.5.1 Protocol error\r\n550 5.5.1 [a_b_c]\r\n", NULL, false, NULL},
    {"filter: server name", false, "$server_name", NULL, "xyz", NULL, PE,
     "550-5.5.1 Protocol error\r\n550 5.5.1 _x_____\r\n", NULL, false, NULL},

    /* postscreen_reject_footer_maps: key is the reply text without CRLF */
    {"maps: match overrides the footer", false, "plain",
     "inline:{{550 5.5.1 Protocol error = Mapped $server_name}}", NULL, NULL, PE,
     "550-5.5.1 Protocol error\r\n550 5.5.1 Mapped mx.test\r\n", NULL, false, NULL},
    {"maps: no match falls back to the footer", false, "plain",
     "inline:{{550 5.5.1 Protocol error = Mapped $server_name}}", NULL, NULL, "550 5.5.2 Other\r\n",
     "550-5.5.2 Other\r\n550 5.5.2 plain\r\n", NULL, false, NULL},
    {"maps: no match and no footer", false, "",
     "inline:{{550 5.5.1 Protocol error = Mapped $server_name}}", NULL, NULL, "550 5.5.2 Other\r\n",
     "550 5.5.2 Other\r\n", NULL, false, NULL},
    {"maps: key is the text before soft_bounce", true, "plain",
     "inline:{{550 5.5.1 Protocol error = Mapped}}", NULL, NULL, PE,
     "450-4.5.1 Protocol error\r\n450 4.5.1 Mapped\r\n", NULL, false, NULL},
    {"maps: \\n and \\c in a mapped footer", false, "",
     "inline:{{550 5.5.1 Protocol error = \\c (a)\\nb}}", NULL, NULL, PE,
     "550-5.5.1 Protocol error (a)\r\n550 5.5.1 b\r\n", NULL, false, NULL},
    {"maps: 2xx is not looked up", false, "", "inline:{{250 2.0.0 Ok = x}}", NULL, NULL,
     "250 2.0.0 Ok\r\n", "250 2.0.0 Ok\r\n", NULL, false, NULL},
};

static void test_reply_table(void **state)
{
    size_t failed = 0;

    (void)state;
    for (size_t i = 0; i < NELEM(reply_cases); i++) {
        const struct reply_case *c = &reply_cases[i];
        struct table *t = NULL;
        char err[256], logbuf[4096], v1[1024], v2[1024];
        if (c->maps) {
            t = table_open(c->maps, err, sizeof(err));
            if (t == NULL)
                fail_msg("%s: %s", c->name, err);
        }
        struct reply_conf rc = {
            .soft_bounce = c->soft_bounce,
            .footer = c->footer,
            .footer_maps = t ? &t : NULL,
            .nfooter_maps = t ? 1 : 0,
            .filter = c->filter,
            .server_name = "mx.test",
        };
        struct reply_peer peer = {.addr = c->addr ? c->addr : "192.0.2.1", .port = "4711"};
        struct sbuf out = SBUF_INIT;

        log_clear();
        reply_format(&out, &rc, c->text, &peer);
        const char *got = sbuf_str(&out);
        if (strcmp(got, c->want) != 0) {
            print_error("%s: got \"%s\", want \"%s\"%s%s\n", c->name, vis(got, v1, sizeof(v1)),
                        vis(c->want, v2, sizeof(v2)), c->bug ? " -- BUG: " : "",
                        c->bug ? c->bug : "");
            failed++;
        }
        const char *lg = log_text(logbuf, sizeof(logbuf));
        if (c->warning && strstr(lg, c->warning) == NULL) {
            print_error("%s: log \"%s\" lacks \"%s\"\n", c->name, lg, c->warning);
            failed++;
        }
        if (!c->warning && !c->any_warning && *lg) {
            print_error("%s: unexpected log \"%s\"\n", c->name, lg);
            failed++;
        }
        sbuf_free(&out);
        table_free(t);
    }
    if (failed)
        fail_msg("%zu reply_format() checks failed", failed);
}

/* Text already waiting in the output buffer is left alone. */
static void test_reply_appends(void **state)
{
    struct reply_conf rc = {.footer = "x $client_port", .server_name = "mx.test"};
    struct reply_peer peer = {.addr = "192.0.2.1", .port = "4711"};
    struct sbuf out = SBUF_INIT;

    (void)state;
    sbuf_adds(&out, "550 5.5.0 earlier\r\n");
    reply_format(&out, &rc, "250 2.0.0 Ok\r\n", &peer);
    reply_format(&out, &rc, "421 4.3.2 bye\r\n", &peer);
    assert_string_equal(sbuf_str(&out), "550 5.5.0 earlier\r\n"
                                        "250 2.0.0 Ok\r\n"
                                        "421-4.3.2 bye\r\n421 4.3.2 x 4711\r\n");
    sbuf_free(&out);

    /* the second of two footer maps is consulted when the first has no match */
    char err[256];
    struct table *maps[2];
    maps[0] = table_open("inline:{{450 4.7.1 a = first}}", err, sizeof(err));
    maps[1] =
        table_open("inline:{{450 4.7.1 b = second}, {450 4.7.1 a = not me}}", err, sizeof(err));
    assert_non_null(maps[0]);
    assert_non_null(maps[1]);
    rc.footer_maps = maps;
    rc.nfooter_maps = 2;
    reply_format(&out, &rc, "450 4.7.1 a\r\n", &peer);
    reply_format(&out, &rc, "450 4.7.1 b\r\n", &peer);
    reply_format(&out, &rc, "450 4.7.1 c\r\n", &peer);
    assert_string_equal(sbuf_str(&out), "450-4.7.1 a\r\n450 4.7.1 first\r\n"
                                        "450-4.7.1 b\r\n450 4.7.1 second\r\n"
                                        "450-4.7.1 c\r\n450 4.7.1 x 4711\r\n");
    sbuf_free(&out);
    table_free(maps[0]);
    table_free(maps[1]);
}

/* $localtime: "Mon DD HH:MM:SS" as strftime("%b %d %H:%M:%S"). */
static void test_reply_localtime(void **state)
{
    struct reply_conf rc = {.footer = "at $localtime.", .server_name = "mx.test"};
    struct reply_peer peer = {.addr = "192.0.2.1", .port = "4711"};
    struct sbuf out = SBUF_INIT;
    static const char prefix[] = "550-5.5.1 Protocol error\r\n550 5.5.1 at ";

    (void)state;
    reply_format(&out, &rc, PE, &peer);
    const char *s = sbuf_str(&out);
    assert_int_equal(strncmp(s, prefix, sizeof(prefix) - 1), 0);
    const char *t = s + sizeof(prefix) - 1;
    /* "Jan 02 03:04:05" */
    const char *shape = "Aaa 99 99:99:99.\r\n";
    assert_int_equal(strlen(t), strlen(shape));
    for (size_t i = 0; shape[i]; i++) {
        bool ok = shape[i] == 'A'   ? isupper((unsigned char)t[i])
                  : shape[i] == 'a' ? islower((unsigned char)t[i])
                  : shape[i] == '9' ? isdigit((unsigned char)t[i])
                                    : t[i] == shape[i];
        if (!ok)
            fail_msg("localtime \"%.15s\": byte %zu", t, i);
    }
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    bool month = false;
    for (size_t m = 0; m < 12; m++)
        month |= strncmp(t, months + 3 * m, 3) == 0;
    assert_true(month);
    sbuf_free(&out);
}

/* ---- reply_expand() over (pointer, length) ------------------------------- */

static const char *test_lookup(const char *name, void *ctx)
{
    (void)ctx;
    if (strcmp(name, "a") == 0)
        return "A:1";
    if (strcmp(name, "empty") == 0)
        return "";
    return NULL;
}

struct expand_case {
    const char *tmpl;   /* the template */
    size_t len;         /* bytes of TMPL to expand */
    const char *filter; /* allowed characters in macro values, or NULL */
    int rc;             /* reply_expand()'s result */
    const char *want;   /* the expansion, when RC is 0 */
};

#define T(s) s, sizeof(s) - 1

static const struct expand_case expand_cases[] = {
    {T(""), NULL, 0, ""},
    {T("plain"), NULL, 0, "plain"},
    {T("$a"), NULL, 0, "A:1"},
    {T("${a}$(a)"), NULL, 0, "A:1A:1"},
    {T("$a_"), NULL, 0, ""},
    {T("$a-x"), NULL, 0, "A:1-x"},
    {T("$a"), "A1", 0, "A_1"},
    {T("${a?$a}"), "A1", 0, "A_1"},
    {T("${a?:}"), "", 0, ":"},
    {T("${empty?x}${empty:y}"), NULL, 0, "y"},
    {T("${none?x}${none:y}"), NULL, 0, "y"},
    {T("${a?${a:no}yes}"), NULL, 0, "yes"},
    {T("${a:${bad}"), NULL, -1, NULL},
    {T("$$$$"), NULL, 0, "$$"},
    {T("$"), NULL, -1, NULL},
    {T("${"), NULL, -1, NULL},
    {T("${a"), NULL, -1, NULL},
    {T("${a b}"), NULL, -1, NULL},
    /* the length ends the template, not the NUL */
    {"abc$a", 3, NULL, 0, "abc"},
    {"x$a", 2, NULL, -1, NULL},
    {"${a}", 3, NULL, -1, NULL},
    {"$a", 2, NULL, 0, "A:1"},
};

static void test_expand_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < NELEM(expand_cases); i++) {
        const struct expand_case *c = &expand_cases[i];
        struct sbuf out = SBUF_INIT;
        int rc = reply_expand(&out, c->tmpl, c->len, c->filter, test_lookup, NULL);
        if (rc != c->rc)
            fail_msg("case %zu \"%.*s\": rc %d, want %d", i, (int)c->len, c->tmpl, rc, c->rc);
        if (rc == 0 && strcmp(sbuf_str(&out), c->want) != 0)
            fail_msg("case %zu \"%.*s\": got \"%s\", want \"%s\"", i, (int)c->len, c->tmpl,
                     sbuf_str(&out), c->want);
        sbuf_free(&out);
    }
}

/* ---- reply_soften() ------------------------------------------------------ */

struct soften_case {
    const char *text;
    bool soft_bounce;
    const char *want;
};

static const struct soften_case soften_cases[] = {
    {PE, true, "450 4.5.1 Protocol error"},
    {PE, false, "550 5.5.1 Protocol error"},
    {"250 2.0.0 Ok\r\n", true, "250 2.0.0 Ok"},
    {"421 4.3.2 Service currently unavailable\r\n", true,
     "421 4.3.2 Service currently unavailable"},
    {"450 4.3.2 Service currently unavailable\r\n", true,
     "450 4.3.2 Service currently unavailable"},
    {"550 Protocol error\r\n", true, "450 Protocol error"},
    {"554 5.7.1 x\n", true, "454 4.7.1 x"},
    {"550-5.5.1 a\r\n550 5.5.1 b\r\n", true, "450-4.5.1 a"},
    {"", true, ""},
};

static void test_soften_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < NELEM(soften_cases); i++) {
        char buf[128];
        reply_soften(buf, sizeof(buf), soften_cases[i].text, soften_cases[i].soft_bounce);
        if (strcmp(buf, soften_cases[i].want) != 0)
            fail_msg("case %zu: got \"%s\", want \"%s\"", i, buf, soften_cases[i].want);
    }
}

/*
 * A short buffer cuts the copy and nothing is written past LEN (soft_bounce
 * patches buf[4] only when the buffer holds it).
 */
static void test_soften_short_buffer(void **state)
{
    (void)state;
    for (size_t len = 1; len <= 10; len++) {
        char buf[16];
        memset(buf, '5', sizeof(buf));
        reply_soften(buf, len, PE, true);
        for (size_t k = len; k < sizeof(buf); k++)
            if (buf[k] != '5')
                fail_msg("len %zu: byte %zu written (0x%02x) past LEN", len, k,
                         (unsigned char)buf[k]);
        assert_true(strlen(buf) < len);
        assert_memory_equal(buf, "450 4.5.1 Protocol error", strlen(buf));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reply_table),     cmocka_unit_test(test_reply_appends),
        cmocka_unit_test(test_reply_localtime), cmocka_unit_test(test_expand_table),
        cmocka_unit_test(test_soften_table),    cmocka_unit_test(test_soften_short_buffer),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
