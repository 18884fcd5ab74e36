/*
 * test_table - lookup tables (cidr:, inline:, pcre:, regexp:, static:, texthash:), address
 * lists and the access list
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/acl.h"
#include "conf/addrlist.h"
#include "conf/table.h"
#include "net/addr.h"

#define assert_contains(hay, needle)                                                               \
    do {                                                                                           \
        if (strstr((hay), (needle)) == NULL)                                                       \
            fail_msg("\"%s\" does not contain \"%s\"", (hay), (needle));                           \
    } while (0)

/* Compare a lookup result, where NULL means "no match". */
#define assert_value(got, want)                                                                    \
    do {                                                                                           \
        const char *got_ = (got), *want_ = (want);                                                 \
        if (got_ == NULL ? want_ != NULL : want_ == NULL || strcmp(got_, want_) != 0)              \
            fail_msg("%s: got \"%s\", want \"%s\"", #got, got_ ? got_ : "(none)",                  \
                     want_ ? want_ : "(none)");                                                    \
    } while (0)

/* A scratch directory for table and pattern files, removed at the end. */
static char tmpdir[64];
static char *tmpfiles[128];
static size_t ntmpfiles;

static int group_setup(void **state)
{
    const char *base = getenv("TMPDIR");

    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "%s/mxs-table-XXXXXX", base && *base ? base : "/tmp");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < ntmpfiles; i++) {
        unlink(tmpfiles[i]);
        free(tmpfiles[i]);
    }
    return rmdir(tmpdir);
}

/* Write TEXT to a new file NAME in the scratch directory; returns its path. */
static const char *write_file(const char *name, const char *text)
{
    char path[256];

    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
    assert_true(ntmpfiles < sizeof(tmpfiles) / sizeof(tmpfiles[0]));
    tmpfiles[ntmpfiles] = strdup(path);
    return tmpfiles[ntmpfiles++];
}

/* An endpoint for a numeric address (port 25). */
static struct endpoint ep_of(const char *addr)
{
    struct sockaddr_storage ss;
    socklen_t len;
    struct endpoint ep;

    if (!addr_parse(addr, &ss, &len))
        fail_msg("bad test address %s", addr);
    if (ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&ss)->sin_port = htons(25);
    else
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons(25);
    assert_int_equal(endpoint_set(&ep, (const struct sockaddr *)&ss, len), 0);
    return ep;
}

/* Open SPEC or fail the test with the error. */
static struct table *open_ok(const char *spec)
{
    char err[512] = "";
    struct table *t = table_open(spec, err, sizeof(err));

    if (t == NULL)
        fail_msg("table_open(%s): %s", spec, err);
    return t;
}

struct lookup_case {
    const char *addr;
    const char *value; /* NULL: no match */
};

/* Look up every case by address; count and print the mismatches. */
static void check_lookups(const struct table *t, const struct lookup_case *cases, size_t n)
{
    int failures = 0;

    for (size_t i = 0; i < n; i++) {
        struct endpoint ep = ep_of(cases[i].addr);
        const char *got = table_lookup_addr(t, &ep);
        bool ok = got == NULL ? cases[i].value == NULL
                              : cases[i].value != NULL && strcmp(got, cases[i].value) == 0;
        if (!ok) {
            print_error("%s: %s -> \"%s\", want \"%s\"\n", table_name(t), cases[i].addr,
                        got ? got : "(none)", cases[i].value ? cases[i].value : "(none)");
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

/* ---- cidr: -------------------------------------------------------------- */

static const char cidr_file[] = "# first match wins\n"
                                "192.0.2.7            permit\n"
                                "192.0.2.0/24         reject\n"
                                "192.0.2.0/25         shadowed\n"
                                "\n"
                                "[2001:db8::1]        permit\n"
                                "[2001:db8::/32]      reject\n"
                                "[2001:db9::]/32      bracket-slash\n"
                                "2001:dba::/32        bare-v6\n"
                                "   # an indented comment\n"
                                "IF 10.0.0.0/8\n"
                                "if !10.1.0.0/16\n"
                                "10.2.0.0/16          inner\n"
                                "0.0.0.0/0            ten-not-10.1\n"
                                "endif\n"
                                "10.1.2.0/24          in-10.1.2\n"
                                "ENDIF\n"
                                "IF 172.16.0.0/12\n"
                                "[::]/0               v6-inside-a-v4-if\n"
                                "0.0.0.0/0            in-172.16\n"
                                "ENDIF\n"
                                "198.51.100.5\n"
                                "    continued result\n"
                                "!203.0.113.0/24      not-203\n";

static const struct lookup_case cidr_file_cases[] = {
    {"192.0.2.7", "permit"},
    {"192.0.2.8", "reject"},
    {"192.0.2.1", "reject"},
    {"192.0.2.255", "reject"},
    {"::ffff:192.0.2.7", "permit"}, /* mapped: matched as IPv4 */
    {"2001:db8::1", "permit"},
    {"2001:db8::2", "reject"},
    {"2001:db8:ffff::1", "reject"},
    {"2001:db9::1", "bracket-slash"},
    {"2001:dba::1", "bare-v6"},
    {"2001:dbb::1", NULL}, /* the IPv4 "!" rule never matches IPv6 */
    {"::1", NULL},
    {"10.2.3.4", "inner"},
    {"10.1.2.3", "in-10.1.2"},
    {"10.1.3.3", "not-203"}, /* falls out of both blocks */
    {"10.3.0.1", "ten-not-10.1"},
    {"172.16.5.5", "in-172.16"},
    {"172.32.0.1", "not-203"},
    {"198.51.100.5", "continued result"},
    {"198.51.100.6", "not-203"},
    {"203.0.113.5", NULL},
    {"11.0.0.1", "not-203"},
};

static void test_cidr_file(void **state)
{
    char spec[300];

    (void)state;
    snprintf(spec, sizeof(spec), "cidr:%s", write_file("good.cidr", cidr_file));
    struct table *t = open_ok(spec);
    assert_string_equal(table_name(t), spec);
    check_lookups(t, cidr_file_cases, sizeof(cidr_file_cases) / sizeof(cidr_file_cases[0]));
    /* string keys are parsed as addresses */
    assert_value(table_lookup(t, "192.0.2.7"), "permit");
    assert_value(table_lookup(t, "2001:db8::2"), "reject");
    assert_value(table_lookup(t, "not-an-address"), NULL);
    assert_value(table_lookup(t, ""), NULL);
    table_free(t);
}

static void test_cidr_inline(void **state)
{
    static const struct lookup_case cases[] = {
        {"192.0.2.1", "reject"},          {"192.0.2.200", "reject"},      {"2001:db8::5", "permit"},
        {"198.51.100.1", "dunno"},        {"10.1.2.3", "ten-one"},        {"10.2.0.1", "ten-other"},
        {"2001:db9::1", "not db8 or v4"}, {"::ffff:10.1.0.1", "ten-one"},
    };

    (void)state;
    struct table *t =
        open_ok("cidr:{{192.0.2.0/24 reject}, {192.0.2.128/25 shadowed}, {[2001:db8::]/32 "
                "permit}, {if 10.0.0.0/8}, {10.1.0.0/16 ten-one}, {0.0.0.0/0 ten-other}, {endif}, "
                "{0.0.0.0/0 dunno},"
                "{[::]/0 not db8 or v4}}");
    check_lookups(t, cases, sizeof(cases) / sizeof(cases[0]));
    table_free(t);
}

struct bad_cidr {
    const char *text;  /* file contents */
    const char *where; /* ", line N" */
    const char *err;
};

static const struct bad_cidr bad_cidr_files[] = {
    {"# ok\n192.0.2.0/24 ok\n1.2.3.4/24 reject\n", ", line 3: ",
     "non-null host address bits in \"1.2.3.4/24\", perhaps you should use \"1.2.3.0/24\""},
    {"[2001:db8::1]/64 reject\n", ", line 1: ", "non-null host address bits"},
    {"[2001:db8::1/64] reject\n", ", line 1: ", "non-null host address bits"},
    {"\n\n192.0.2.1\n", ", line 3: ", "no lookup result for \"192.0.2.1\""},
    {"192.0.2.1 ok\nENDIF\n", ", line 2: ", "ENDIF without IF"},
    {"IF 10.0.0.0/8\n10.1.0.0/16 x\nENDIF\nendif\n", ", line 4: ", "ENDIF without IF"},
    {"IF\n", ", line 1: ", "IF needs one address pattern"},
    {"IF 10.0.0.0/8 10.1.0.0/16\nENDIF\n", ", line 1: ", "IF needs one address pattern"},
    {"IF 10.0.0.0/8\nENDIF now\n", ", line 2: ", "garbage after ENDIF"},
    {"IF 10.0.0.1/8\nENDIF\n", ", line 1: ", "non-null host address bits"},
    {"mail.example.com reject\n", ", line 1: ", "bad address pattern: \"mail.example.com\""},
    {"192.0.2.0/33 reject\n", ", line 1: ", "bad net/mask pattern"},
    {"[192.0.2.1] reject\n", ", line 1: ", "bad address pattern"},
    {"192.0.2.1 ok\n1.2.3.4/24\n  reject\n", ", line 2: ", "non-null host address bits"},
};

static void test_cidr_file_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_cidr_files) / sizeof(bad_cidr_files[0]); i++) {
        const struct bad_cidr *c = &bad_cidr_files[i];
        char name[32], spec[300], err[512] = "", where[300];
        snprintf(name, sizeof(name), "bad%zu.cidr", i);
        const char *path = write_file(name, c->text);
        snprintf(spec, sizeof(spec), "cidr:%s", path);
        struct table *t = table_open(spec, err, sizeof(err));
        if (t != NULL)
            fail_msg("case %zu: opened", i);
        snprintf(where, sizeof(where), "%s%s", path, c->where);
        assert_contains(err, where);
        assert_contains(err, c->err);
    }
}

static void test_cidr_unclosed_if(void **state)
{
    char spec[300], err[512] = "";

    (void)state;
    snprintf(spec, sizeof(spec), "cidr:%s",
             write_file("unclosed.cidr", "IF 10.0.0.0/8\n10.1.0.0/16 x\n"));
    assert_null(table_open(spec, err, sizeof(err)));
    assert_contains(err, spec);
    assert_contains(err, "IF has no matching ENDIF");

    assert_null(table_open("cidr:{{if 10.0.0.0/8}, {10.1.0.0/16 x}}", err, sizeof(err)));
    assert_contains(err, "IF has no matching ENDIF");
}

static void test_cidr_if_nesting_limit(void **state)
{
    char text[2048] = "", spec[300], err[512] = "";

    (void)state;
    for (int i = 0; i < 33; i++)
        strcat(text, "IF 10.0.0.0/8\n");
    snprintf(spec, sizeof(spec), "cidr:%s", write_file("deep.cidr", text));
    assert_null(table_open(spec, err, sizeof(err)));
    assert_contains(err, ", line 33: IF nesting too deep");
}

static void test_cidr_missing_file(void **state)
{
    char err[512] = "";

    (void)state;
    assert_null(table_open("cidr:/nonexistent/mxscreen/test.cidr", err, sizeof(err)));
    assert_contains(err, "/nonexistent/mxscreen/test.cidr");
    assert_contains(err, "No such file or directory");
}

struct bad_spec {
    const char *spec;
    const char *err;
};

static const struct bad_spec bad_specs[] = {
    {"cidr:{{1.2.3.4/24 reject}}", "non-null host address bits"},
    {"cidr:{{192.0.2.1}}", "no lookup result for \"192.0.2.1\""},
    {"cidr:{192.0.2.1 reject}", "no lookup result"},
    {"cidr:{{192.0.2.1 reject}", "missing '}'"},
    {"cidr:{{endif}}", "ENDIF without IF"},
    {"cidr:{{bogus reject}}", "bad address pattern"},
    {"inline:{a}", "missing '=' in \"a\""},
    {"inline:{a=b, c}", "missing '=' in \"c\""},
    {"inline:a=b", "expected inline:{key=value, ...}"},
    {"inline:{{a=b}", "missing '}'"},
    {"hash:/etc/postfix/access", "unsupported table type \"hash\""},
    {"btree:/etc/postfix/x", "unsupported table type \"btree\""},
    {"regexps:{{/x/ reject}}", "unsupported table type \"regexps\""},
    {"regexp:{{/x/ reject}", "table regexp:{{/x/ reject}: missing '}'"},
    {"pcre:{{/x/ reject}", "missing '}'"},
    {"regexp:{/x/ reject}", "table regexp:{/x/ reject}: no lookup result for /x/"},
    {"pcre:{/x/ reject}", "no lookup result for /x/"},
    {"regexp:{{/x(/ reject}}", "table regexp:{{/x(/ reject}}: bad regular expression /x(/"},
    {"pcre:{{/x(/ reject}}", "table pcre:{{/x(/ reject}}: bad regular expression /x(/"},
    {"regexp:{{/x reject}}", "no closing delimiter \"/\""},
    {"pcre:{{/(x)/ $2}}", "out of range replacement index \"2\""},
    {"regexp:{{if /a/}, {/b/ c}}", "table regexp:{{if /a/}, {/b/ c}}: IF has no matching ENDIF"},
    {"pcre:{{if /a/}, {/b/ c}}", "IF has no matching ENDIF"},
    {"regexp:{{endif}}", "ENDIF without IF"},
    {"pcre:{{/a/ x}, {endif}}", "ENDIF without IF"},
    {"pcre:{{/a/q x}}", "unknown regexp option \"q\""},
    {"regexp:{{!/(a)/ $1}}", "$number in the result of a negated pattern"},
    {"cidrx:/x", "unsupported table type \"cidrx\""},
    {"/etc/postfix/access", "expected type:name"},
    {"texthash:/nonexistent/mxscreen/x", "open /nonexistent/mxscreen/x"},
};

static void test_bad_specs(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_specs) / sizeof(bad_specs[0]); i++) {
        char err[512] = "";
        struct table *t = table_open(bad_specs[i].spec, err, sizeof(err));
        if (t != NULL)
            fail_msg("%s: opened", bad_specs[i].spec);
        assert_contains(err, bad_specs[i].err);
    }
}

/* ---- inline:, static:, texthash: ----------------------------------------- */

static void test_inline(void **state)
{
    (void)state;
    struct table *t = open_ok("inline:{a=b, {c = d e}, x=, {192.0.2.1 = reject},"
                              "{2001:db8::1=permit}}");
    assert_value(table_lookup(t, "a"), "b");
    /* Postfix folds the case of keys, so "2001:DB8::1" finds "2001:db8::1". */
    assert_value(table_lookup(t, "A"), "b");
    assert_value(table_lookup(t, "2001:DB8::1"), "permit");
    assert_value(table_lookup(t, "c"), "d e");
    assert_value(table_lookup(t, "x"), "");
    assert_value(table_lookup(t, "d"), NULL);
    assert_value(table_lookup(t, "b"), NULL);
    assert_value(table_lookup(t, ""), NULL);
    struct endpoint ep = ep_of("192.0.2.1");
    assert_value(table_lookup_addr(t, &ep), "reject");
    ep = ep_of("::ffff:192.0.2.1");
    assert_value(table_lookup_addr(t, &ep), "reject");
    ep = ep_of("2001:db8::1");
    assert_value(table_lookup_addr(t, &ep), "permit");
    ep = ep_of("192.0.2.2");
    assert_value(table_lookup_addr(t, &ep), NULL);
    table_free(t);
}

static void test_static(void **state)
{
    (void)state;
    struct table *t = open_ok("static:all");
    assert_value(table_lookup(t, "anything"), "all");
    assert_value(table_lookup(t, ""), "all");
    struct endpoint ep = ep_of("2001:db8::1");
    assert_value(table_lookup_addr(t, &ep), "all");
    table_free(t);

    t = open_ok("static:{ reject with spaces }");
    ep = ep_of("192.0.2.1");
    assert_value(table_lookup_addr(t, &ep), "reject with spaces");
    table_free(t);
}

static void test_texthash(void **state)
{
    char spec[300];

    (void)state;
    snprintf(spec, sizeof(spec), "texthash:%s",
             write_file("good.txt", "# addresses\n"
                                    "192.0.2.1      reject\n"
                                    "2001:db8::1    permit\n"
                                    "\n"
                                    "multi\n"
                                    "    line value\n"
                                    "key\tvalue with  spaces  \n"));
    struct table *t = open_ok(spec);
    assert_value(table_lookup(t, "192.0.2.1"), "reject");
    assert_value(table_lookup(t, "2001:db8::1"), "permit");
    assert_value(table_lookup(t, "multi"), "line value");
    assert_value(table_lookup(t, "key"), "value with  spaces");
    assert_value(table_lookup(t, "2001"), NULL);
    assert_value(table_lookup(t, "192.0.2.2"), NULL);
    struct endpoint ep = ep_of("2001:db8::1");
    assert_value(table_lookup_addr(t, &ep), "permit");
    table_free(t);
}

static void test_texthash_errors(void **state)
{
    char spec[300], err[512] = "", where[300];

    (void)state;
    const char *path = write_file("bad.txt", "192.0.2.1 reject\n# c\nlonely\n");
    snprintf(spec, sizeof(spec), "texthash:%s", path);
    assert_null(table_open(spec, err, sizeof(err)));
    snprintf(where, sizeof(where), "%s, line 3: ", path);
    assert_contains(err, where);
    assert_contains(err, "no value for key \"lonely\"");
}

/* ---- regexp:, pcre: ------------------------------------------------------ */

struct key_case {
    const char *key;
    const char *value; /* NULL: no match */
};

struct regex_case {
    const char *spec;
    struct key_case keys[10]; /* up to the first NULL key */
};

static const struct regex_case regex_cases[] = {
    /* the default smtpd_forbidden_commands table: case-insensitive by default */
    {"regexp:{{/^[^A-Z]/ Bogus}}",
     {{"ehlo", NULL},
      {"EHLO", NULL},
      {"Connect", NULL},
      {"1abc", "Bogus"},
      {"", NULL},
      {" HELO", "Bogus"},
      {"-", "Bogus"},
      {"\xff", "Bogus"}}},
    {"pcre:{{/^[^A-Z]/ Bogus}}",
     {{"ehlo", NULL},
      {"EHLO", NULL},
      {"Connect", NULL},
      {"1abc", "Bogus"},
      {"", NULL},
      {" HELO", "Bogus"},
      {"-", "Bogus"},
      {"\xff", "Bogus"}}},
    /* "i" makes the pattern case-sensitive: lower case is then not A-Z */
    {"regexp:{{/^[^A-Z]/i Bogus}}", {{"ehlo", "Bogus"}, {"EHLO", NULL}, {"1", "Bogus"}}},
    {"pcre:{{/^[^A-Z]/i Bogus}}", {{"ehlo", "Bogus"}, {"EHLO", NULL}}},
    {"regexp:{{/^mail from:/i lower}, {/^MAIL/ any}}",
     {{"mail from:<a>", "lower"}, {"MAIL FROM:<a>", "any"}, {"Mail x", "any"}, {"rcpt", NULL}}},
    {"pcre:{{/^mail from:/i lower}, {/^MAIL/ any}}",
     {{"mail from:<a>", "lower"}, {"MAIL FROM:<a>", "any"}, {"Mail x", "any"}}},
    /* "x" turns off REG_EXTENDED: "+" is then an ordinary character */
    {"regexp:{{/a+/x basic}, {/a+/ extended}}",
     {{"aa", "extended"}, {"xa+y", "basic"}, {"b", NULL}}},
    /* "m": REG_NEWLINE / PCRE2_MULTILINE */
    {"regexp:{{/^b/ plain}, {/^b/m newline}}", {{"b", "plain"}, {"a\nb", "newline"}, {"ab", NULL}}},
    {"pcre:{{/^b/ plain}, {/^b/m newline}}", {{"b", "plain"}, {"a\nb", "newline"}, {"ab", NULL}}},
    /* pcre: "." matches a newline unless "s"; "x", "A", "E", "U"; "X" is ignored */
    {"pcre:{{/a.b/s no-dotall}, {/a.b/ dotall}}", {{"a\nb", "dotall"}, {"axb", "no-dotall"}}},
    {"pcre:{{/a b c/x extended}, {/a b/ spaced}}", {{"xabcx", "extended"}, {"a b", "spaced"}}},
    {"pcre:{{/b/A anchored}}", {{"ba", "anchored"}, {"ab", NULL}}},
    {"pcre:{{/a$/E endonly}, {/a$/ dollar}}", {{"a", "endonly"}, {"a\n", "dollar"}}},
    {"pcre:{{/(a+)/U [$1]}}", {{"aaa", "[a]"}}},
    {"pcre:{{/(a+)/ [$1]}}", {{"aaa", "[aaa]"}}},
    {"pcre:{{/a/X x}}", {{"a", "x"}}},
    /* negation ("!", "!!", "! "), first match wins */
    {"regexp:{{!/^[a-z]+$/ not-word}, {/./ word}, {!!/^x/ never}}",
     {{"abc", "word"}, {"ab1", "not-word"}, {"", "not-word"}, {"ABC", "word"}}},
    {"pcre:{{! /^[a-z]+$/ not-word}, {/./ word}}",
     {{"abc", "word"}, {"ab1", "not-word"}, {"", "not-word"}}},
    {"regexp:{{!!/^x/ x}, {/^/ other}}", {{"xy", "x"}, {"yx", "other"}}},
    /* IF / IF ! / ENDIF, nested, any case, no space before the pattern */
    {"regexp:{{if /^mail/}, {IF !/from/}, {/./ mail-not-from}, {endif}, {/from:<>/ null-sender}, "
     "{/./ mail}, {EndIf}, {if/^rcpt/}, {/./ rcpt}, {endif}, {/^/ other}}",
     {{"MAIL TO", "mail-not-from"},
      {"MAIL FROM:<>", "null-sender"},
      {"MAIL FROM:<a>", "mail"},
      {"RCPT TO:<a>", "rcpt"},
      {"DATA", "other"},
      {"", "other"}}},
    {"pcre:{{if /^mail/}, {IF !/from/}, {/./ mail-not-from}, {endif}, {/from:<>/ null-sender}, "
     "{/./ mail}, {EndIf}, {if/^rcpt/}, {/./ rcpt}, {endif}, {/^/ other}}",
     {{"MAIL TO", "mail-not-from"},
      {"MAIL FROM:<>", "null-sender"},
      {"MAIL FROM:<a>", "mail"},
      {"RCPT TO:<a>", "rcpt"},
      {"DATA", "other"}}},
    {"regexp:{{if /^a/}, {endif}}", {{"a", NULL}, {"b", NULL}}},
    /* substitution: $N, ${N}, $(N), $$, a group that took no part */
    {"regexp:{{/^(a+)(b+)?(c)/ [$1|${2}|$(3)|$$|$$1|$3$1]}}",
     {{"aabbc", "[aa|bb|c|$|$1|caa]"}, {"aac", "[aa||c|$|$1|caa]"}, {"x", NULL}}},
    {"pcre:{{/^(a+)(b+)?(c)/ [$1|${2}|$(3)|$$|$$1|$3$1]}}",
     {{"aabbc", "[aa|bb|c|$|$1|caa]"}, {"aac", "[aa||c|$|$1|caa]"}, {"x", NULL}}},
    {"pcre:{{/(x)|(y)/ [$1|$2]}}", {{"y", "[|y]"}, {"x", "[x|]"}}},
    {"regexp:{{/(x)|(y)/ [$1|$2]}}", {{"y", "[|y]"}, {"x", "[x|]"}}},
    {"regexp:{{/^(.*)$/ $1}}", {{"", ""}, {"abc", "abc"}}},
    {"regexp:{{/^$/ $$}}", {{"", "$"}, {"a", NULL}}},
    {"regexp:{{/(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)/ ${10}$9$1}}", {{"abcdefghij", "jia"}}},
    /* the postscreen_command_filter example */
    {"pcre:{{/^(RCPT\\s+TO:<.*>.*)\\s+NOTIFY=\\S+(.*)/ $1$2}}",
     {{"RCPT TO:<a@example.com> NOTIFY=NEVER ORCPT=rfc822;a",
       "RCPT TO:<a@example.com> ORCPT=rfc822;a"},
      {"rcpt to:<a@example.com> notify=never", "rcpt to:<a@example.com>"},
      {"RCPT TO:<a@example.com>", NULL},
      {"MAIL FROM:<a@example.com> NOTIFY=NEVER", NULL}}},
    /* other delimiters, an escaped delimiter, a result with spaces */
    {"regexp:{{#a/b# slash}, {/c\\/d/ escaped}, {%^x% 550 5.7.1 go away}}",
     {{"xa/by", "slash"}, {"c/d", "escaped"}, {"xyz", "550 5.7.1 go away"}, {"cd", NULL}}},
    {"pcre:{{#a/b# slash}, {/c\\/d/ escaped}, {%^x% 550 5.7.1 go away}}",
     {{"xa/by", "slash"}, {"c/d", "escaped"}, {"xyz", "550 5.7.1 go away"}, {"cd", NULL}}},
    /* braces balance inside an inline rule */
    {"pcre:{{/^a{2}$/ two}, {/^(b)/ ${1}}}", {{"aa", "two"}, {"aaa", NULL}, {"bc", "b"}}},
};

/* Open every spec and look up its keys; count and print the mismatches. */
static void test_regex_lookups(void **state)
{
    int failures = 0;

    (void)state;
    for (size_t i = 0; i < sizeof(regex_cases) / sizeof(regex_cases[0]); i++) {
        const struct regex_case *c = &regex_cases[i];
        struct table *t = open_ok(c->spec);
        for (const struct key_case *k = c->keys; k->key; k++) {
            const char *got = table_lookup(t, k->key);
            bool ok =
                got == NULL ? k->value == NULL : k->value != NULL && strcmp(got, k->value) == 0;
            if (!ok) {
                print_error("%s: \"%s\" -> \"%s\", want \"%s\"\n", c->spec, k->key,
                            got ? got : "(none)", k->value ? k->value : "(none)");
                failures++;
            }
        }
        table_free(t);
    }
    assert_int_equal(failures, 0);
}

static const char regex_file[] = "# smtpd_command_filter style\n"
                                 "/^(RCPT TO:<[^>]*>) +NOTIFY=[A-Z]+(.*)$/    $1$2\n"
                                 "\n"
                                 "IF /^MAIL FROM:/\n"
                                 "   # an indented comment\n"
                                 "!/<[^>]*@[^>]*>/      MAIL FROM:<>\n"
                                 "/^(MAIL FROM:<[^>]*>) +BODY=[A-Z0-9]+(.*)/  $1$2\n"
                                 "ENDIF\n"
                                 "/^XCLIENT/\n"
                                 "    550 5.7.1\n"
                                 "    not here\n"
                                 "/^[^A-Z]/ Bogus\n";

static const struct key_case regex_file_keys[] = {
    {"RCPT TO:<a@b> NOTIFY=NEVER", "RCPT TO:<a@b>"},
    {"rcpt to:<a@b> notify=never ORCPT=x", "rcpt to:<a@b> ORCPT=x"},
    {"MAIL FROM:<nobody>", "MAIL FROM:<>"},
    {"MAIL FROM:<a@b> BODY=8BITMIME SIZE=1", "MAIL FROM:<a@b> SIZE=1"},
    {"MAIL FROM:<a@b>", NULL},
    {"xclient addr=1", "550 5.7.1 not here"},
    {"1abc", "Bogus"},
    {"QUIT", NULL},
};

/* The same rules as a regexp: file and as a pcre: file. */
static void test_regex_files(void **state)
{
    static const char *const types[] = {"regexp", "pcre"};
    char name[32], spec[300];

    (void)state;
    for (size_t i = 0; i < 2; i++) {
        snprintf(name, sizeof(name), "good.%s", types[i]);
        snprintf(spec, sizeof(spec), "%s:%s", types[i], write_file(name, regex_file));
        struct table *t = open_ok(spec);
        assert_string_equal(table_name(t), spec);
        for (size_t k = 0; k < sizeof(regex_file_keys) / sizeof(regex_file_keys[0]); k++)
            assert_value(table_lookup(t, regex_file_keys[k].key), regex_file_keys[k].value);
        table_free(t);
    }
}

/* A $N result lives in the table's buffer until its next lookup; others stay. */
static void test_regex_result_lifetime(void **state)
{
    (void)state;
    struct table *t = open_ok("regexp:{{/^(a.)/ got $1}, {/^b/ fixed}}");
    struct table *u = open_ok("pcre:{{/^(a.)/ other $1}}");
    const char *fixed = table_lookup(t, "b");
    const char *first = table_lookup(t, "ax");
    assert_value(first, "got ax");
    /* a lookup in another table leaves this one's result alone */
    assert_value(table_lookup(u, "ay"), "other ay");
    assert_value(first, "got ax");
    assert_value(table_lookup(t, "az"), "got az");
    assert_value(fixed, "fixed");
    table_free(u);
    table_free(t);
}

/* An address lookup matches the printable address; keys keep their case. */
static void test_regex_addr(void **state)
{
    (void)state;
    struct table *t = open_ok("regexp:{{/^192\\.0\\.2\\./ local}, {/^2001:DB8:/i v6}, "
                              "{/^2001:db8:/i v6-lower}}");
    struct endpoint ep = ep_of("192.0.2.9");
    assert_value(table_lookup_addr(t, &ep), "local");
    ep = ep_of("2001:db8::1");
    assert_value(table_lookup_addr(t, &ep), "v6-lower");
    ep = ep_of("198.51.100.1");
    assert_value(table_lookup_addr(t, &ep), NULL);
    table_free(t);
}

/* A matching error (here a PCRE2 match limit) makes the rule not apply. */
static void test_pcre_match_error(void **state)
{
    (void)state;
    struct table *t = open_ok("pcre:{{/(*LIMIT_MATCH=1)a+b/ limited}, "
                              "{!/(*LIMIT_MATCH=1)a+b/ negated}, "
                              "{if /(*LIMIT_MATCH=1)a+b/}, {/./ inside}, {endif}, {/./ fallback}}");
    assert_value(table_lookup(t, "aaab"), "fallback");
    table_free(t);
}

enum { RE = 1, PC = 2 };

struct bad_regex {
    int types;         /* RE, PC or both */
    const char *text;  /* file contents */
    const char *where; /* ", line N: " */
    const char *err;
};

static const struct bad_regex bad_regex_files[] = {
    {RE, "# ok\n/a/ ok\n/a(/ x\n", ", line 3: ", "bad regular expression /a(/: "},
    {PC, "# ok\n/a/ ok\n/a(/ x\n", ", line 3: ", "bad regular expression /a(/ at offset 2: "},
    {RE | PC, "/[a/ x\n", ", line 1: ", "bad regular expression"},
    {RE | PC, "/abc x\n", ", line 1: ", "no closing delimiter \"/\" in \"/abc x\""},
    {RE | PC, "/ab\\/ x\n", ", line 1: ", "no closing delimiter \"/\""},
    {RE | PC, "/abc/\n", ", line 1: ", "no lookup result for /abc/"},
    {RE | PC, "/abc/i   \n", ", line 1: ", "no lookup result for /abc/"},
    {RE | PC, "!\n", ", line 1: ", "no regular expression"},
    {RE | PC, "/a/ ok\nIF /b/\n/c/ x\n", ", line 2: ", "IF has no matching ENDIF"},
    {RE | PC, "IF /b/\nIF /c/\n/c/ x\nENDIF\n", ", line 1: ", "IF has no matching ENDIF"},
    {RE | PC, "/a/ ok\nENDIF\n", ", line 2: ", "ENDIF without IF"},
    {RE | PC, "IF /a/\nENDIF\nendif\n", ", line 3: ", "ENDIF without IF"},
    {RE | PC, "IF /a/\nENDIF now\n", ", line 2: ", "garbage after ENDIF"},
    {RE | PC, "IF /a/ result\nENDIF\n", ", line 1: ", "text after IF pattern: \"result\""},
    {RE | PC, "IF\n", ", line 1: ", "no regular expression"},
    {RE | PC, "IF /a(/\nENDIF\n", ", line 1: ", "bad regular expression"},
    {RE | PC, "/a/q x\n", ", line 1: ", "unknown regexp option \"q\""},
    {RE, "/a/s x\n", ", line 1: ", "unknown regexp option \"s\""},
    {RE, "/a/!/b/ x\n", ", line 1: ", "\"/pattern1/!/pattern2/\" is not supported"},
    {PC, "/a/!/b/ x\n", ", line 1: ", "unknown regexp option \"!\""},
    {RE | PC, "/(a)/ $2\n",
     ", line 1: ", "out of range replacement index \"2\" (the pattern has 1 group)"},
    {RE | PC, "/a/ x$1\n", ", line 1: ", "out of range replacement index \"1\" (the pattern has 0"},
    {RE | PC, "/(a)/ $0\n", ", line 1: ", "out of range replacement index \"0\""},
    {RE | PC, "/(a)/ ${99999999999999999999}\n", ", line 1: ", "out of range replacement index"},
    {RE | PC, "/(a)/ ${x}\n", ", line 1: ", "non-numeric replacement index \"x\""},
    {RE | PC, "/(a)/ $1a\n", ", line 1: ", "non-numeric replacement index \"1a\""},
    {RE | PC, "/(a)/ cost $ 5\n", ", line 1: ", "lone '$' in result"},
    {RE | PC, "/(a)/ x$\n", ", line 1: ", "lone '$' in result"},
    {RE | PC, "/(a)/ ${1\n", ", line 1: ", "missing '}' in result \"${1\""},
    {RE | PC, "/(a)/ $(1\n", ", line 1: ", "missing ')' in result"},
    {RE | PC, "!/(a)/ $1\n", ", line 1: ", "$number in the result of a negated pattern"},
    {RE | PC, "/a/ ok\nabc def\n", ", line 2: ", "expected \"/pattern/ result\", IF or ENDIF"},
    {RE | PC, "/a/ ok\nifx /a/\n", ", line 2: ", "expected \"/pattern/ result\", IF or ENDIF"},
    {RE | PC, "/a/ ok\n/b(/\n  x\n/c/ ok\n", ", line 2: ", "bad regular expression"},
};

static void test_regex_file_errors(void **state)
{
    static const char *const types[] = {"regexp", "pcre"};

    (void)state;
    for (size_t i = 0; i < sizeof(bad_regex_files) / sizeof(bad_regex_files[0]); i++) {
        const struct bad_regex *c = &bad_regex_files[i];
        for (int ti = 0; ti < 2; ti++) {
            if (!(c->types & (ti == 0 ? RE : PC)))
                continue;
            char name[32], spec[300], err[512] = "", where[300];
            snprintf(name, sizeof(name), "bad%zu.%s", i, types[ti]);
            const char *path = write_file(name, c->text);
            snprintf(spec, sizeof(spec), "%s:%s", types[ti], path);
            struct table *t = table_open(spec, err, sizeof(err));
            if (t != NULL)
                fail_msg("case %zu (%s): opened", i, types[ti]);
            snprintf(where, sizeof(where), "%s%s", path, c->where);
            assert_contains(err, where);
            assert_contains(err, c->err);
        }
    }
}

static void test_regex_if_nesting_limit(void **state)
{
    char text[2048] = "", spec[300], err[512] = "";

    (void)state;
    for (int i = 0; i < 33; i++)
        strcat(text, "IF /a/\n");
    snprintf(spec, sizeof(spec), "pcre:%s", write_file("deep.pcre", text));
    assert_null(table_open(spec, err, sizeof(err)));
    assert_contains(err, ", line 33: IF nesting too deep");
}

static void test_regex_missing_file(void **state)
{
    char err[512] = "";

    (void)state;
    assert_null(table_open("regexp:/nonexistent/mxscreen/x.re", err, sizeof(err)));
    assert_contains(err, "open /nonexistent/mxscreen/x.re: No such file or directory");
    assert_null(table_open("pcre:/nonexistent/mxscreen/x.pcre", err, sizeof(err)));
    assert_contains(err, "open /nonexistent/mxscreen/x.pcre: No such file or directory");
}

/* ---- address lists ------------------------------------------------------- */

struct match_case {
    const char *addr;
    bool match;
};

static void check_matches(const char *list, const struct addrlist *l, const struct match_case *c,
                          size_t n)
{
    int failures = 0;

    for (size_t i = 0; i < n; i++) {
        struct endpoint ep = ep_of(c[i].addr);
        if (addrlist_match(l, &ep) != c[i].match) {
            print_error("\"%s\": %s should %smatch\n", list, c[i].addr, c[i].match ? "" : "not ");
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

static void test_addrlist_mynetworks_style(void **state)
{
    static const char list[] = "127.0.0.0/8 [::ffff:127.0.0.0]/104, [::1]/128,"
                               "!192.0.2.1\t192.0.2.0/24 !!198.51.100.7 [2001:db8::]/32 "
                               "!2001:db9::1 [2001:db9::]/32 203.0.113.9";
    static const struct match_case cases[] = {
        {"127.0.0.1", true},
        {"127.255.255.254", true},
        {"::1", true},
        {"::2", false},
        {"192.0.2.1", false},
        {"192.0.2.2", true},
        {"192.0.2.255", true},
        {"198.51.100.7", true},
        {"198.51.100.8", false},
        {"2001:db8::5", true},
        {"2001:db9::1", false},
        {"2001:db9::2", true},
        {"203.0.113.9", true},
        {"203.0.113.8", false},
        {"::ffff:192.0.2.2", true},
        {"::ffff:192.0.2.1", false},
    };
    char err[512] = "";

    (void)state;
    struct addrlist *l = addrlist_parse(list, err, sizeof(err));
    if (l == NULL)
        fail_msg("%s", err);
    check_matches(list, l, cases, sizeof(cases) / sizeof(cases[0]));
    addrlist_free(l);
}

static void test_addrlist_file_and_tables(void **state)
{
    static const struct match_case cases[] = {
        {"10.1.2.3", false},   {"10.2.3.4", true},     {"2001:db8::1", true},
        {"192.0.2.9", true},   {"198.51.100.1", true}, {"198.51.100.2", false},
        {"203.0.113.1", true}, {"203.0.114.1", false}, {"2001:db9::1", false},
    };
    char list[600], err[512] = "";

    (void)state;
    const char *nets = write_file("nets", "# local networks\n"
                                          "!10.1.0.0/16\n"
                                          "10.0.0.0/8   # the rest of 10/8\n"
                                          "[2001:db8::]/32, 192.0.2.0/24\n");
    snprintf(list, sizeof(list), "%s, inline:{198.51.100.1=ignored} cidr:{{203.0.113.0/24 x}}",
             nets);
    struct addrlist *l = addrlist_parse(list, err, sizeof(err));
    if (l == NULL)
        fail_msg("%s", err);
    check_matches(list, l, cases, sizeof(cases) / sizeof(cases[0]));
    addrlist_free(l);

    /* a negated table match excludes, whatever follows */
    static const struct match_case neg[] = {
        {"203.0.113.1", false},
        {"2001:db8::1", true},
    };
    l = addrlist_parse("!cidr:{{203.0.113.0/24 x}}, 203.0.113.0/24, static:all", err, sizeof(err));
    if (l == NULL)
        fail_msg("%s", err);
    check_matches("!cidr", l, neg, sizeof(neg) / sizeof(neg[0]));
    addrlist_free(l);
}

static void test_addrlist_static_all_and_empty(void **state)
{
    char err[512] = "";

    (void)state;
    static const struct match_case all[] = {{"192.0.2.1", true}, {"2001:db8::1", true}};
    static const struct match_case none[] = {{"192.0.2.1", false}, {"::1", false}};
    struct addrlist *l = addrlist_parse("static:all", err, sizeof(err));
    assert_non_null(l);
    check_matches("static:all", l, all, 2);
    addrlist_free(l);

    l = addrlist_parse(" , ,", err, sizeof(err));
    assert_non_null(l);
    check_matches("empty", l, none, 2);
    addrlist_free(l);
}

static const struct bad_spec bad_lists[] = {
    {"192.0.2.0/24 mail.example.com", "bad address pattern: \"mail.example.com\""},
    {"localhost", "bad address pattern"},
    {"127.0.0.1/8", "non-null host address bits in \"127.0.0.1/8\""},
    {"[2001:db8::1]/64", "non-null host address bits"},
    {"192.0.2.0/40", "bad net/mask pattern"},
    {"!/etc/postfix/networks", "a file of patterns cannot be negated"},
    {"/nonexistent/mxscreen/networks", "open /nonexistent/mxscreen/networks"},
    {"hash:/etc/postfix/networks", "unsupported table type \"hash\""},
    {"cidr:{{1.2.3.4/24 x}}", "non-null host address bits"},
};

static void test_addrlist_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_lists) / sizeof(bad_lists[0]); i++) {
        char err[512] = "";
        struct addrlist *l = addrlist_parse(bad_lists[i].spec, err, sizeof(err));
        if (l != NULL)
            fail_msg("\"%s\": parsed", bad_lists[i].spec);
        assert_contains(err, bad_lists[i].err);
    }
}

static void test_addrlist_error_in_file(void **state)
{
    char err[512] = "";

    (void)state;
    const char *path = write_file("badnets", "10.0.0.0/8\n10.1.2.3/16\n");
    assert_null(addrlist_parse(path, err, sizeof(err)));
    assert_contains(err, "non-null host address bits in \"10.1.2.3/16\"");
}

/* ---- access list --------------------------------------------------------- */

struct acl_case {
    const char *list;
    const char *client;
    enum acl_verdict verdict;
};

static const struct acl_case acl_cases[] = {
    {"permit_mynetworks", "192.0.2.5", ACL_PERMIT},
    {"permit_mynetworks", "::1", ACL_PERMIT},
    {"permit_mynetworks", "198.51.100.1", ACL_DUNNO},
    {"permit_mynetworks, reject", "198.51.100.1", ACL_REJECT},
    {"permit", "198.51.100.1", ACL_PERMIT},
    {"PERMIT", "198.51.100.1", ACL_PERMIT},
    {"reject", "192.0.2.5", ACL_REJECT},
    {"reject permit", "192.0.2.5", ACL_REJECT},
    {"dunno, permit", "198.51.100.1", ACL_DUNNO},
    {"Dunno reject", "198.51.100.1", ACL_DUNNO},
    {"", "198.51.100.1", ACL_DUNNO},
    {" ,\t, ", "198.51.100.1", ACL_DUNNO},
    /* cidr results: permit, reject, dunno (continue with the outer list) */
    {"cidr:{{198.51.100.0/24 reject}, {203.0.113.0/24 permit}, {192.0.2.0/24 dunno}}, "
     "permit_mynetworks, reject",
     "198.51.100.1", ACL_REJECT},
    {"cidr:{{198.51.100.0/24 reject}, {203.0.113.0/24 permit}, {192.0.2.0/24 dunno}}, "
     "permit_mynetworks, reject",
     "203.0.113.1", ACL_PERMIT},
    {"cidr:{{198.51.100.0/24 reject}, {203.0.113.0/24 permit}, {192.0.2.0/24 dunno}}, "
     "permit_mynetworks, reject",
     "192.0.2.5", ACL_PERMIT},
    {"cidr:{{198.51.100.0/24 reject}, {203.0.113.0/24 permit}, {192.0.2.0/24 dunno}}, "
     "permit_mynetworks, reject",
     "10.0.0.1", ACL_REJECT},
    {"cidr:{{192.0.2.0/24 dunno}}, permit", "192.0.2.5", ACL_PERMIT},
    {"cidr:{{192.0.2.0/24 dunno}}, dunno, permit", "192.0.2.5", ACL_DUNNO},
    {"cidr:{{192.0.2.0/24 dunno}}", "192.0.2.5", ACL_DUNNO},
    {"cidr:{{192.0.2.0/24 PERMIT}}", "192.0.2.5", ACL_PERMIT},
    {"cidr:{{[2001:db8::]/32 reject}}, permit", "2001:db8::1", ACL_REJECT},
    {"cidr:{{[2001:db8::]/32 reject}}, permit", "2001:db9::1", ACL_PERMIT},
    {"cidr:{{0.0.0.0/0 reject}}, permit", "::ffff:10.0.0.1", ACL_REJECT},
    /* a result is itself a list */
    {"cidr:{{0.0.0.0/0 permit_mynetworks reject}}", "192.0.2.5", ACL_PERMIT},
    {"cidr:{{0.0.0.0/0 permit_mynetworks reject}}", "10.0.0.1", ACL_REJECT},
    {"cidr:{{0.0.0.0/0 permit_mynetworks}}, reject", "10.0.0.1", ACL_REJECT},
    {"cidr:{{0.0.0.0/0 permit_mynetworks,dunno}}, reject", "10.0.0.1", ACL_REJECT},
    {"cidr:{{0.0.0.0/0 dunno reject}}, permit", "10.0.0.1", ACL_PERMIT},
    /* unknown words and nested tables in a result: no decision, stop */
    {"cidr:{{0.0.0.0/0 bogus}}, permit", "10.0.0.1", ACL_DUNNO},
    {"cidr:{{0.0.0.0/0 ok}}, reject", "10.0.0.1", ACL_DUNNO},
    {"cidr:{{0.0.0.0/0 reject_unauth_destination}}, permit", "10.0.0.1", ACL_DUNNO},
    {"cidr:{{0.0.0.0/0 static:reject}}, permit", "10.0.0.1", ACL_DUNNO},
    {"cidr:{{0.0.0.0/0 bogus}}, permit", "::1", ACL_PERMIT}, /* no match: go on */
    /* other table types */
    {"inline:{192.0.2.5=reject}, permit", "192.0.2.5", ACL_REJECT},
    {"inline:{192.0.2.5=reject}, permit", "192.0.2.6", ACL_PERMIT},
    {"static:reject", "2001:db8::1", ACL_REJECT},
    {"regexp:{{/^192\\.0\\.2\\./ reject}}, permit", "192.0.2.5", ACL_REJECT},
    {"regexp:{{/^192\\.0\\.2\\./ reject}}, permit", "192.0.3.5", ACL_PERMIT},
    {"pcre:{{/^(2001:db8):/ dunno}, {/:/ reject}}, permit", "2001:db8::1", ACL_PERMIT},
    {"pcre:{{/^(2001:db8):/ dunno}, {/:/ reject}}, permit", "2001:db9::1", ACL_REJECT},
};

static void test_acl_eval_table(void **state)
{
    char err[512] = "";
    int failures = 0;

    (void)state;
    struct addrlist *mynet = addrlist_parse("127.0.0.0/8 [::1]/128 192.0.2.0/24", err, sizeof(err));
    assert_non_null(mynet);
    for (size_t i = 0; i < sizeof(acl_cases) / sizeof(acl_cases[0]); i++) {
        const struct acl_case *c = &acl_cases[i];
        struct acl *a = acl_parse(c->list, mynet, err, sizeof(err));
        if (a == NULL)
            fail_msg("\"%s\": %s", c->list, err);
        struct endpoint ep = ep_of(c->client);
        enum acl_verdict v = acl_eval(a, &ep);
        if (v != c->verdict) {
            print_error("case %zu \"%s\" for %s: verdict %d, want %d\n", i, c->list, c->client, v,
                        c->verdict);
            failures++;
        }
        acl_free(a);
    }
    addrlist_free(mynet);
    assert_int_equal(failures, 0);
}

static void test_acl_without_mynetworks(void **state)
{
    char err[512] = "";

    (void)state;
    struct acl *a = acl_parse("permit_mynetworks", NULL, err, sizeof(err));
    assert_non_null(a);
    struct endpoint ep = ep_of("127.0.0.1");
    assert_int_equal(acl_eval(a, &ep), ACL_DUNNO);
    acl_free(a);
}

static void test_acl_texthash(void **state)
{
    char list[400], err[512] = "";

    (void)state;
    const char *path = write_file("access.txt", "192.0.2.66    reject\n"
                                                "2001:db8::66  reject\n"
                                                "192.0.2.1     permit\n");
    snprintf(list, sizeof(list), "texthash:%s, permit_mynetworks", path);
    struct addrlist *mynet = addrlist_parse("192.0.2.0/24", err, sizeof(err));
    assert_non_null(mynet);
    struct acl *a = acl_parse(list, mynet, err, sizeof(err));
    if (a == NULL)
        fail_msg("%s", err);
    struct endpoint ep = ep_of("192.0.2.66");
    assert_int_equal(acl_eval(a, &ep), ACL_REJECT);
    ep = ep_of("2001:db8::66");
    assert_int_equal(acl_eval(a, &ep), ACL_REJECT);
    ep = ep_of("192.0.2.1");
    assert_int_equal(acl_eval(a, &ep), ACL_PERMIT);
    ep = ep_of("192.0.2.2");
    assert_int_equal(acl_eval(a, &ep), ACL_PERMIT);
    ep = ep_of("2001:db8::67");
    assert_int_equal(acl_eval(a, &ep), ACL_DUNNO);
    acl_free(a);
    addrlist_free(mynet);
}

static const struct bad_spec bad_acls[] = {
    {"permit_sasl_authenticated", "unknown command: permit_sasl_authenticated"},
    {"permit_mynetworks, bogus, reject", "unknown command: bogus"},
    {"permit_mynetworks,reject_unauth_destination", "unknown command: reject_unauth_destination"},
    {"permitx", "unknown command: permitx"},
    {"cidr:{{1.2.3.4/24 reject}}", "non-null host address bits"},
    {"hash:/etc/postfix/access", "unsupported table type \"hash\""},
    {"cidr:/nonexistent/mxscreen/access.cidr", "open /nonexistent/mxscreen/access.cidr"},
};

static void test_acl_parse_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_acls) / sizeof(bad_acls[0]); i++) {
        char err[512] = "";
        struct acl *a = acl_parse(bad_acls[i].spec, NULL, err, sizeof(err));
        if (a != NULL)
            fail_msg("\"%s\": parsed", bad_acls[i].spec);
        assert_contains(err, bad_acls[i].err);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cidr_file),
        cmocka_unit_test(test_cidr_inline),
        cmocka_unit_test(test_cidr_file_errors),
        cmocka_unit_test(test_cidr_unclosed_if),
        cmocka_unit_test(test_cidr_if_nesting_limit),
        cmocka_unit_test(test_cidr_missing_file),
        cmocka_unit_test(test_bad_specs),
        cmocka_unit_test(test_inline),
        cmocka_unit_test(test_static),
        cmocka_unit_test(test_texthash),
        cmocka_unit_test(test_texthash_errors),
        cmocka_unit_test(test_regex_lookups),
        cmocka_unit_test(test_regex_files),
        cmocka_unit_test(test_regex_result_lifetime),
        cmocka_unit_test(test_regex_addr),
        cmocka_unit_test(test_pcre_match_error),
        cmocka_unit_test(test_regex_file_errors),
        cmocka_unit_test(test_regex_if_nesting_limit),
        cmocka_unit_test(test_regex_missing_file),
        cmocka_unit_test(test_addrlist_mynetworks_style),
        cmocka_unit_test(test_addrlist_file_and_tables),
        cmocka_unit_test(test_addrlist_static_all_and_empty),
        cmocka_unit_test(test_addrlist_errors),
        cmocka_unit_test(test_addrlist_error_in_file),
        cmocka_unit_test(test_acl_eval_table),
        cmocka_unit_test(test_acl_without_mynetworks),
        cmocka_unit_test(test_acl_texthash),
        cmocka_unit_test(test_acl_parse_errors),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
