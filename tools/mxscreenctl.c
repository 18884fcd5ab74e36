/*
 * mxscreenctl - look at and change mxscreen's allowlist (in the spirit of
 * OpenBSD's spamdb)
 *
 * Usage: mxscreenctl [-c FILE] [-m MAP] [-j] COMMAND [ARG...]
 *
 *   list               every client: its address (or network, with prefix
 *                      aggregation), each test's expiry in local time, and
 *                      OLD (a connection now is PASS OLD) or NEW (it would
 *                      be screened)
 *   show ADDR          one client (exit 1 when it is not there)
 *   add ADDR [SECS]    allowlist ADDR: every test passed, for SECS seconds
 *                      or else each test's TTL from the configuration
 *   del ADDR           forget ADDR
 *   expire ADDR TEST   make TEST (pregreet, dnsbl, pipelining, non_smtp,
 *                      bare_newline, or all) due again for ADDR
 *   dump               every record, "ADDR RECORD" per line in postscreen's
 *                      record format ("t;t;t;t;t")
 *   load               read a dump (text, or the JSON of "dump -j") from
 *                      standard input; nothing is written unless every
 *                      line is good
 *
 * -c names mxscreen's configuration (default /etc/mxscreen/mxscreen.cf),
 * which gives postscreen_cache_map, the enabled tests and their TTLs, and
 * Redis's password, user and key prefix; -m names the map directly
 * (lmdb:/PATH or redis:HOST:PORT[/DB]).  -j prints JSON.  The tool opens
 * the store itself, beside a running daemon: the LMDB file (LMDB allows
 * that) or a connection to Redis.  A bad argument or input line, or a
 * store that cannot be reached, gets one line on stderr and exit status 1.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cache/cache.h"
#include "conf/conf.h"
#include "net/addr.h"
#include "session/verdict.h"
#include "util/mem.h"
#include "util/sbuf.h"

#define DEFAULT_CONFIG "/etc/mxscreen/mxscreen.cf"

static const char *const test_names[TEST__COUNT] = {"pregreet", "dnsbl", "pipelining", "non_smtp",
                                                    "bare_newline"};

struct ctl {
    struct cache *cache;
    unsigned enabled;        /* enabled tests (verdict.h bits) */
    time_t ttl[TEST__COUNT]; /* each test's TTL */
    bool json;               /* -j */
    time_t now;
    size_t count; /* records printed */
};

static void __attribute__((noreturn, format(printf, 1, 2))) die(const char *fmt, ...)
{
    va_list ap;

    fputs("mxscreenctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static void __attribute__((noreturn)) usage(void)
{
    fprintf(stderr, "usage: mxscreenctl [-c FILE] [-m MAP] [-j] list | show ADDR | "
                    "add ADDR [SECONDS] | del ADDR | expire ADDR TEST | dump | load\n");
    exit(1);
}

/* An address, or a network as prefix aggregation keys it ("a.b.c.0/24"). */
static bool valid_key(const char *text)
{
    struct sockaddr_storage ss;
    socklen_t len;
    struct cidr c;
    char err[256];

    if (strchr(text, '/'))
        return cidr_parse(text, &c, err, sizeof(err)) == 0;
    return addr_parse(text, &ss, &len);
}

/* A record in postscreen's format: five ';'-separated decimal numbers. */
static bool valid_record(const char *text)
{
    const char *p = text;

    for (int i = 0; i < TEST__COUNT; i++) {
        if (!isdigit((unsigned char)*p))
            return false;
        while (isdigit((unsigned char)*p))
            p++;
        if (i < TEST__COUNT - 1 && *p++ != ';')
            return false;
    }
    return *p == '\0';
}

/* A stamp for people: never passed, off (never passed while disabled), or local time. */
static void stamp_text(char *buf, size_t len, time_t stamp)
{
    struct tm tm;

    if (stamp == STAMP_NEW)
        snprintf(buf, len, "never");
    else if (stamp == STAMP_DISABLED)
        snprintf(buf, len, "off");
    else if (localtime_r(&stamp, &tm) == NULL || strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm) == 0)
        snprintf(buf, len, "%lld", (long long)stamp);
}

/* A JSON string (addresses and records need no escapes, but be safe). */
static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            printf("\\u%04x", (unsigned char)*s);
        else
            putchar(*s);
    }
    putchar('"');
}

/* One client, for list and show. */
static int print_client(void *arg, const char *addr, const char *record)
{
    struct ctl *ctl = arg;
    time_t stamps[TEST__COUNT];
    struct verdict v;
    char when[64];

    verdict_parse(record, stamps);
    verdict_todo(&v, stamps, ctl->now, ctl->enabled);
    const char *status = v.todo == 0 ? "OLD" : "NEW";
    if (ctl->json) {
        printf("%s{\"address\": ", ctl->count ? ",\n " : "");
        json_str(addr);
        printf(", \"record\": ");
        json_str(record);
        printf(", \"status\": \"%s\", \"tests\": {", status);
        for (int t = 0; t < TEST__COUNT; t++) {
            stamp_text(when, sizeof(when), stamps[t]);
            printf("%s\"%s\": {\"expires\": %lld, \"local\": ", t ? ", " : "", test_names[t],
                   (long long)stamps[t]);
            json_str(when);
            printf(", \"enabled\": %s}", ctl->enabled & TEST_BIT(t) ? "true" : "false");
        }
        printf("}}");
    } else {
        printf("%s", addr);
        for (int t = 0; t < TEST__COUNT; t++) {
            stamp_text(when, sizeof(when), stamps[t]);
            printf(" %s=%s", test_names[t], when);
        }
        printf(" %s\n", status);
    }
    ctl->count++;
    return 0;
}

/* One record, for dump. */
static int dump_client(void *arg, const char *addr, const char *record)
{
    struct ctl *ctl = arg;

    if (ctl->json) {
        printf("%s{\"address\": ", ctl->count ? ",\n " : "");
        json_str(addr);
        printf(", \"record\": ");
        json_str(record);
        putchar('}');
    } else {
        printf("%s %s\n", addr, record);
    }
    ctl->count++;
    return 0;
}

static void each(struct ctl *ctl, int (*fn)(void *, const char *, const char *))
{
    char err[256];

    if (ctl->json)
        putchar('[');
    if (cache_each(ctl->cache, fn, ctl, err, sizeof(err)) < 0)
        die("%s: %s", cache_name(ctl->cache), err);
    if (ctl->json)
        printf("]\n");
}

static void need_key(const char *addr)
{
    if (!valid_key(addr))
        die("\"%s\": not an IPv4 or IPv6 address (or a network a.b.c.0/24, x:y::/64)", addr);
}

static int cmd_show(struct ctl *ctl, const char *addr)
{
    char rec[VERDICT_RECORD_MAX];

    need_key(addr);
    if (!cache_get(ctl->cache, addr, rec, sizeof(rec)))
        die("%s: not in the allowlist %s", addr, cache_name(ctl->cache));
    print_client(ctl, addr, rec);
    if (ctl->json)
        putchar('\n');
    return 0;
}

static void put(struct ctl *ctl, const char *addr, time_t *stamps)
{
    char rec[VERDICT_RECORD_MAX];

    verdict_format(rec, sizeof(rec), stamps, ctl->enabled);
    if (cache_put(ctl->cache, addr, rec) < 0)
        die("%s: cannot write %s", cache_name(ctl->cache), addr);
}

static int cmd_add(struct ctl *ctl, const char *addr, const char *secs)
{
    time_t stamps[TEST__COUNT];
    long long n = 0;

    need_key(addr);
    if (secs) {
        char *end;
        errno = 0;
        n = strtoll(secs, &end, 10);
        if (errno || *end || n <= 0)
            die("\"%s\": not a number of seconds", secs);
    }
    for (int t = 0; t < TEST__COUNT; t++)
        stamps[t] = ctl->now + (secs ? (time_t)n : ctl->ttl[t]);
    put(ctl, addr, stamps);
    return 0;
}

static int cmd_del(struct ctl *ctl, const char *addr)
{
    char err[256];

    need_key(addr);
    int rc = cache_del(ctl->cache, addr, err, sizeof(err));
    if (rc < 0)
        die("%s: %s", cache_name(ctl->cache), err);
    if (rc == 0)
        die("%s: not in the allowlist %s", addr, cache_name(ctl->cache));
    return 0;
}

static int cmd_expire(struct ctl *ctl, const char *addr, const char *test)
{
    char rec[VERDICT_RECORD_MAX];
    time_t stamps[TEST__COUNT];
    int which = -1;

    need_key(addr);
    for (int t = 0; t < TEST__COUNT; t++)
        if (strcmp(test, test_names[t]) == 0)
            which = t;
    if (which < 0 && strcmp(test, "all") != 0)
        die("\"%s\": not a test (pregreet, dnsbl, pipelining, non_smtp, bare_newline, all)", test);
    if (!cache_get(ctl->cache, addr, rec, sizeof(rec)))
        die("%s: not in the allowlist %s", addr, cache_name(ctl->cache));
    verdict_parse(rec, stamps);
    /* Due again at the next connection; a test never passed stays so. */
    for (int t = 0; t < TEST__COUNT; t++)
        if ((which < 0 || t == which) && stamps[t] > STAMP_DISABLED)
            stamps[t] = ctl->now - 1;
    put(ctl, addr, stamps);
    return 0;
}

struct pair {
    char *addr, *record;
};

/* The next JSON string value after KEY in *P (our own dump's form). */
static char *json_field(const char **p, const char *key)
{
    char pat[32];

    snprintf(pat, sizeof(pat), "\"%s\"", key);
    const char *k = strstr(*p, pat);
    if (k == NULL)
        return NULL;
    const char *q = k + strlen(pat);
    while (isspace((unsigned char)*q))
        q++;
    if (*q++ != ':')
        return NULL;
    while (isspace((unsigned char)*q))
        q++;
    if (*q++ != '"')
        return NULL;
    const char *end = strchr(q, '"');
    if (end == NULL)
        return NULL;
    *p = end + 1;
    return xstrndup(q, (size_t)(end - q));
}

static int cmd_load(struct ctl *ctl)
{
    struct sbuf in = SBUF_INIT;
    char buf[65536];
    size_t n;
    struct pair *pairs = NULL;
    size_t npairs = 0, cap = 0;

    while ((n = fread(buf, 1, sizeof(buf), stdin)) > 0)
        sbuf_addn(&in, buf, n);
    const char *p = in.s ? in.s : "";
    while (isspace((unsigned char)*p))
        p++;
    bool json = *p == '[';
    size_t lineno = 0;
    while (*p) {
        char *addr, *record;
        if (json) {
            const char *obj = strchr(p, '{');
            if (obj == NULL)
                break;
            p = obj;
            lineno++;
            if ((addr = json_field(&p, "address")) == NULL ||
                (record = json_field(&p, "record")) == NULL)
                die("entry %zu: expected {\"address\": \"...\", \"record\": \"...\"}", lineno);
        } else {
            const char *nl = strchr(p, '\n');
            size_t len = nl ? (size_t)(nl - p) : strlen(p);
            char *line = xstrndup(p, len);
            p += len + (nl ? 1 : 0);
            lineno++;
            char *save, *a = strtok_r(line, " \t\r", &save);
            if (a == NULL || *a == '#') {
                free(line);
                continue;
            }
            char *r = strtok_r(NULL, " \t\r", &save);
            if (r == NULL || strtok_r(NULL, " \t\r", &save) != NULL)
                die("line %zu: expected \"ADDRESS RECORD\"", lineno);
            addr = xstrdup(a);
            record = xstrdup(r);
            free(line);
        }
        if (!valid_key(addr))
            die("%s %zu: \"%s\": not an address or network", json ? "entry" : "line", lineno, addr);
        if (!valid_record(record))
            die("%s %zu: \"%s\": not a record (t;t;t;t;t)", json ? "entry" : "line", lineno,
                record);
        if (npairs == cap) {
            cap = cap ? 2 * cap : 64;
            pairs = xrealloc(pairs, cap * sizeof(*pairs));
        }
        pairs[npairs++] = (struct pair){addr, record};
    }
    for (size_t i = 0; i < npairs; i++) {
        if (cache_put(ctl->cache, pairs[i].addr, pairs[i].record) < 0)
            die("%s: cannot write %s (%zu of %zu loaded)", cache_name(ctl->cache), pairs[i].addr, i,
                npairs);
        free(pairs[i].addr);
        free(pairs[i].record);
    }
    free(pairs);
    sbuf_free(&in);
    fprintf(stderr, "mxscreenctl: %zu records loaded into %s\n", npairs, cache_name(ctl->cache));
    return 0;
}

int main(int argc, char **argv)
{
    const char *config = NULL, *map = NULL;
    struct ctl ctl = {0};
    char err[1024];
    int c;

    while ((c = getopt(argc, argv, "c:m:j")) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 'm':
            map = optarg;
            break;
        case 'j':
            ctl.json = true;
            break;
        default:
            usage();
        }
    }
    if (optind >= argc)
        usage();
    /* Without -c, the default file when there is one, else the defaults. */
    if (config == NULL)
        config = map && access(DEFAULT_CONFIG, R_OK) != 0 ? "/dev/null" : DEFAULT_CONFIG;
    struct conf *cf = conf_load(config, NULL, 0, err, sizeof(err));
    if (cf == NULL)
        die("%s", err);
    if (map == NULL)
        map = conf_str(cf, P_PSC_CACHE_MAP);
    if (*map == '\0')
        die("%s: postscreen_cache_map is empty: there is no allowlist", config);
    if (*conf_str(cf, P_PSC_GREET_BANNER))
        ctl.enabled |= TEST_BIT(TEST_PREGREET);
    if (*conf_str(cf, P_PSC_DNSBL_SITES))
        ctl.enabled |= TEST_BIT(TEST_DNSBL);
    if (conf_bool(cf, P_PSC_PIPEL_ENABLE))
        ctl.enabled |= TEST_BIT(TEST_PIPELINING);
    if (conf_bool(cf, P_PSC_NSMTP_ENABLE))
        ctl.enabled |= TEST_BIT(TEST_NON_SMTP);
    if (conf_bool(cf, P_PSC_BARLF_ENABLE))
        ctl.enabled |= TEST_BIT(TEST_BARE_NEWLINE);
    ctl.ttl[TEST_PREGREET] = (time_t)conf_num(cf, P_PSC_GREET_TTL);
    ctl.ttl[TEST_DNSBL] = (time_t)conf_num(cf, P_PSC_DNSBL_MAX_TTL);
    ctl.ttl[TEST_PIPELINING] = (time_t)conf_num(cf, P_PSC_PIPEL_TTL);
    ctl.ttl[TEST_NON_SMTP] = (time_t)conf_num(cf, P_PSC_NSMTP_TTL);
    ctl.ttl[TEST_BARE_NEWLINE] = (time_t)conf_num(cf, P_PSC_BARLF_TTL);
    ctl.now = time(NULL);

    const char *cmd = argv[optind];
    int nargs = argc - optind - 1;
    char **args = argv + optind + 1;
    struct {
        const char *name;
        int min, max;
    } const table[] = {{"list", 0, 0},   {"show", 1, 1}, {"add", 1, 2}, {"del", 1, 1},
                       {"expire", 2, 2}, {"dump", 0, 0}, {"load", 0, 0}};
    bool known = false;
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (strcmp(cmd, table[i].name) != 0)
            continue;
        known = true;
        if (nargs < table[i].min || nargs > table[i].max)
            usage();
    }
    if (!known)
        usage();
    struct cache_opts opts = {
        .retention = (time_t)conf_num(cf, P_PSC_CACHE_RETENTION_TIME),
        .cleanup_interval = (time_t)conf_num(cf, P_PSC_CACHE_CLEANUP_INTERVAL),
        .enabled = ctl.enabled,
        .redis_password = conf_str(cf, P_MXS_REDIS_PASSWORD),
        .redis_user = conf_str(cf, P_MXS_REDIS_USER),
        .redis_prefix = conf_str(cf, P_MXS_REDIS_PREFIX),
        .redis_timeout_ms = (int)conf_num(cf, P_MXS_REDIS_TIMEOUT_MS),
    };
    if ((ctl.cache = cache_open_store(map, &opts, err, sizeof(err))) == NULL)
        die("%s", err);
    int rc = 0;
    if (strcmp(cmd, "list") == 0)
        each(&ctl, print_client);
    else if (strcmp(cmd, "dump") == 0)
        each(&ctl, dump_client);
    else if (strcmp(cmd, "show") == 0)
        rc = cmd_show(&ctl, args[0]);
    else if (strcmp(cmd, "add") == 0)
        rc = cmd_add(&ctl, args[0], nargs > 1 ? args[1] : NULL);
    else if (strcmp(cmd, "del") == 0)
        rc = cmd_del(&ctl, args[0]);
    else if (strcmp(cmd, "expire") == 0)
        rc = cmd_expire(&ctl, args[0], args[1]);
    else
        rc = cmd_load(&ctl);
    cache_free(ctl.cache);
    conf_free(cf);
    return rc;
}
