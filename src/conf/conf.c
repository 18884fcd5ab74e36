/*
 * conf - main.cf syntax, $name expansion, typed and checked values; see
 * conf.h for the contract.
 *
 * Parsing keeps every "name = value" definition (the last one wins, as in
 * Postfix) with its origin, then evaluates each known parameter twice
 * (stress and normal).  Expansion follows Postfix's mac_expand(): an
 * undefined name expands to nothing, "?" tests for a non-empty value, a
 * reference loop, runaway nesting or a runaway amount of work is an error.
 */
#include <ctype.h>
#include <errno.h>
#include <ifaddrs.h>
#include <limits.h>
#include <net/if.h>
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "conf/conf.h"
#include "log/log.h"
#include "util/mem.h"

/* Postfix gives up at this depth too ("unreasonable macro call nesting"). */
#define EXPAND_DEPTH_MAX 100
/* No parameter needs more; a runaway expansion is an error, not a hang. */
#define EXPAND_SIZE_MAX (1024 * 1024)
/* Nor this many macro references in one value (a real one takes tens):
 * "a = $b$b", "b = $c$c", ... down to an empty value doubles the work per
 * level without growing the output (found reading this code, confirmed
 * with fuzz_conf: 400 bytes of main.cf took minutes). */
#define EXPAND_STEPS_MAX 10000

struct raw_entry {
    char *name;         /* parameter name */
    char *value;        /* value as written, trimmed */
    const char *origin; /* file path, or NULL for a -o override */
    int line;           /* first physical line of the logical line */
};

struct value {
    char *str[2];     /* expanded value: [0] normal, [1] under stress */
    long long num[2]; /* numeric value of CT_BOOL/CT_INT/CT_TIME/CT_ENUM index */
    int raw;          /* index into raw[], or -1 when the default applies */
};

struct conf {
    char *path;            /* the file read */
    struct raw_entry *raw; /* every definition, last one wins */
    size_t nraw;
    size_t capraw;
    char *computed[P__COUNT]; /* defaults computed at load time */
    struct value v[P__COUNT]; /* checked values */
};

struct experr {
    char *buf;
    size_t len;
    bool failed;
    unsigned long steps; /* expand() calls so far, for EXPAND_STEPS_MAX */
};

static int expand(const struct conf *cf, const char *s, size_t len, bool stress, struct sbuf *out,
                  int depth, struct experr *e);

/* Record an expansion error (the first one wins). */
static int experr_set(struct experr *e, const char *what, const char *s, size_t len)
{
    if (!e->failed)
        snprintf(e->buf, e->len, "%s in \"%.*s\"", what, (int)(len > 200 ? 200 : len), s);
    e->failed = true;
    return -1;
}

/* Find the definition of NAME, or -1. */
static int raw_find(const struct conf *cf, const char *name, size_t len)
{
    for (size_t i = cf->nraw; i-- > 0;)
        if (strlen(cf->raw[i].name) == len && memcmp(cf->raw[i].name, name, len) == 0)
            return (int)i;
    return -1;
}

/* Add or replace a definition. */
static void raw_set(struct conf *cf, const char *name, size_t nlen, const char *value, size_t vlen,
                    const char *origin, int line)
{
    int i = raw_find(cf, name, nlen);

    if (i >= 0) {
        free(cf->raw[i].value);
        cf->raw[i].value = xstrndup(value, vlen);
        cf->raw[i].origin = origin;
        cf->raw[i].line = line;
        return;
    }
    if (cf->nraw == cf->capraw) {
        cf->capraw = cf->capraw ? cf->capraw * 2 : 64;
        cf->raw = xrealloc(cf->raw, cf->capraw * sizeof(*cf->raw));
    }
    cf->raw[cf->nraw++] =
        (struct raw_entry){xstrndup(name, nlen), xstrndup(value, vlen), origin, line};
}

/*
 * The unexpanded value of NAME: its definition, else its computed or table
 * default, else NULL (undefined).  "stress" is the variable postscreen sets
 * while evaluating the stress-dependent variant of a value.
 */
static const char *lookup(const struct conf *cf, const char *name, size_t len, bool stress,
                          bool *rawflag)
{
    *rawflag = false;
    if (len == 6 && memcmp(name, "stress", 6) == 0)
        return stress ? "yes" : "";
    int r = raw_find(cf, name, len);
    char key[128];
    if (len >= sizeof(key))
        return r >= 0 ? cf->raw[r].value : NULL;
    memcpy(key, name, len);
    key[len] = '\0';
    int id = param_lookup(key);
    if (id >= 0)
        *rawflag = (param_table[id].flags & PF_RAW) != 0;
    if (r >= 0)
        return cf->raw[r].value;
    if (id < 0)
        return NULL;
    if (cf->computed[id])
        return cf->computed[id];
    return param_table[id].def;
}

/* Is C allowed in a parameter name? */
static bool name_char(int c)
{
    return isalnum(c) || c == '_';
}

/* Skip white space in [*p, end). */
static void skip_space(const char **p, const char *end)
{
    while (*p < end && isspace((unsigned char)**p))
        (*p)++;
}

/*
 * At *P (which must be '{'), find the matching '}' and return the text in
 * between through BODY/BLEN; advance *P past the '}'.
 */
static int brace_group(const char **p, const char *end, const char **body, size_t *blen)
{
    int depth = 0;

    if (*p >= end || **p != '{')
        return -1;
    for (const char *q = *p; q < end; q++) {
        if (*q == '{')
            depth++;
        else if (*q == '}' && --depth == 0) {
            *body = *p + 1;
            *blen = (size_t)(q - *p - 1);
            *p = q + 1;
            return 0;
        }
    }
    return -1;
}

/* Compare two compatibility levels such as "3.6" and "2" part by part. */
static int level_cmp(const char *a, const char *b)
{
    while (*a || *b) {
        long x = strtol(a, (char **)&a, 10), y = strtol(b, (char **)&b, 10);
        if (x != y)
            return x < y ? -1 : 1;
        if (*a == '.')
            a++;
        if (*b == '.')
            b++;
        if ((*a && !isdigit((unsigned char)*a)) || (*b && !isdigit((unsigned char)*b)))
            break;
    }
    return 0;
}

/* Is S a non-empty string of decimal digits? */
static bool all_digits(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return false;
    return true;
}

/* ${{text1} op {text2} ? {iftrue} : {iffalse}} */
static int expand_relational(const struct conf *cf, const char *p, const char *end, bool stress,
                             struct sbuf *out, int depth, struct experr *e)
{
    static const char *const ops[] = {
        "<=level", ">=level", "<level", ">level", "==", "!=", "<=", ">=", "<", ">"};
    const char *start = p, *t1, *t2, *t3, *t4;
    size_t l1, l2, l3, l4;
    struct sbuf a = SBUF_INIT, b = SBUF_INIT;
    const char *op = NULL;
    int rc = -1;

    if (brace_group(&p, end, &t1, &l1) < 0)
        return experr_set(e, "syntax error", start, (size_t)(end - start));
    skip_space(&p, end);
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        size_t ol = strlen(ops[i]);
        if ((size_t)(end - p) >= ol && memcmp(p, ops[i], ol) == 0) {
            op = ops[i];
            p += ol;
            break;
        }
    }
    if (op == NULL)
        return experr_set(e, "unknown operator", start, (size_t)(end - start));
    skip_space(&p, end);
    if (brace_group(&p, end, &t2, &l2) < 0)
        return experr_set(e, "syntax error", start, (size_t)(end - start));
    skip_space(&p, end);
    if (p >= end || *p++ != '?')
        return experr_set(e, "'?' expected", start, (size_t)(end - start));
    skip_space(&p, end);
    if (brace_group(&p, end, &t3, &l3) < 0)
        return experr_set(e, "syntax error", start, (size_t)(end - start));
    skip_space(&p, end);
    if (p >= end || *p++ != ':')
        return experr_set(e, "':' expected", start, (size_t)(end - start));
    skip_space(&p, end);
    if (brace_group(&p, end, &t4, &l4) < 0)
        return experr_set(e, "syntax error", start, (size_t)(end - start));
    skip_space(&p, end);
    if (p != end)
        return experr_set(e, "garbage after expression", start, (size_t)(end - start));
    if (expand(cf, t1, l1, stress, &a, depth + 1, e) < 0 ||
        expand(cf, t2, l2, stress, &b, depth + 1, e) < 0)
        goto done;
    const char *x = sbuf_str(&a), *y = sbuf_str(&b);
    int cmp;
    if (strstr(op, "level"))
        cmp = level_cmp(x, y);
    else if (all_digits(x) && all_digits(y))
        cmp = strtoull(x, NULL, 10) < strtoull(y, NULL, 10)   ? -1
              : strtoull(x, NULL, 10) > strtoull(y, NULL, 10) ? 1
                                                              : 0;
    else
        cmp = strcmp(x, y);
    bool yes;
    if (op[0] == '=')
        yes = cmp == 0;
    else if (op[0] == '!')
        yes = cmp != 0;
    else if (op[0] == '<')
        yes = op[1] == '=' ? cmp <= 0 : cmp < 0;
    else
        yes = op[1] == '=' ? cmp >= 0 : cmp > 0;
    rc = yes ? expand(cf, t3, l3, stress, out, depth + 1, e)
             : expand(cf, t4, l4, stress, out, depth + 1, e);
done:
    sbuf_free(&a);
    sbuf_free(&b);
    return rc;
}

/* Expand the value of parameter NAME (already looked up as VAL). */
static int expand_value(const struct conf *cf, const char *val, bool raw, bool stress,
                        struct sbuf *out, int depth, struct experr *e)
{
    if (val == NULL)
        return 0;
    if (raw) {
        sbuf_adds(out, val);
        return 0;
    }
    return expand(cf, val, strlen(val), stress, out, depth + 1, e);
}

/* ${...} or $(...) with the text between the delimiters in [p, end). */
static int expand_braced(const struct conf *cf, const char *p, const char *end, bool stress,
                         struct sbuf *out, int depth, struct experr *e)
{
    const char *start = p;
    bool rawflag;

    if (p < end && *p == '{')
        return expand_relational(cf, p, end, stress, out, depth, e);
    while (p < end && name_char((unsigned char)*p))
        p++;
    if (p == start)
        return experr_set(e, "attribute name syntax error", start, (size_t)(end - start));
    const char *val = lookup(cf, start, (size_t)(p - start), stress, &rawflag);
    if (p == end)
        return expand_value(cf, val, rawflag, stress, out, depth, e);
    char how = *p++;
    if (how != '?' && how != ':')
        return experr_set(e, "attribute name syntax error", start, (size_t)(end - start));
    bool nonempty = val != NULL && *val != '\0';
    const char *t1 = p, *t2 = NULL;
    size_t l1 = (size_t)(end - p), l2 = 0;
    /* The {text} forms: ${name?{t1}}, ${name?{t1}:{t2}} and ${name?{t1}:t2}. */
    const char *q = p;
    skip_space(&q, end);
    if (q < end && *q == '{') {
        if (brace_group(&q, end, &t1, &l1) < 0)
            return experr_set(e, "truncated macro reference", start, (size_t)(end - start));
        skip_space(&q, end);
        if (how == '?' && q < end && *q == ':') {
            q++;
            skip_space(&q, end);
            if (q < end && *q == '{') {
                if (brace_group(&q, end, &t2, &l2) < 0)
                    return experr_set(e, "truncated macro reference", start, (size_t)(end - start));
                skip_space(&q, end);
            } else {
                t2 = q;
                l2 = (size_t)(end - q);
                q = end;
            }
        }
        if (q != end)
            return experr_set(e, "garbage after expression", start, (size_t)(end - start));
    }
    if (how == '?') {
        if (nonempty)
            return expand(cf, t1, l1, stress, out, depth + 1, e);
        return t2 ? expand(cf, t2, l2, stress, out, depth + 1, e) : 0;
    }
    if (!nonempty)
        return expand(cf, t1, l1, stress, out, depth + 1, e);
    return 0;
}

/* Expand S[0..LEN) into OUT. */
static int expand(const struct conf *cf, const char *s, size_t len, bool stress, struct sbuf *out,
                  int depth, struct experr *e)
{
    const char *p = s, *end = s + len;

    if (depth > EXPAND_DEPTH_MAX)
        return experr_set(e, "unreasonable macro call nesting", s, len);
    /* Depth alone does not stop $a = $b$b, $b = $c$c, ... from doubling. */
    if (out->len > EXPAND_SIZE_MAX)
        return experr_set(e, "expansion larger than 1 MiB", s, len);
    if (++e->steps > EXPAND_STEPS_MAX)
        return experr_set(e, "more than 10000 macro expansions", s, len);
    while (p < end) {
        const char *dollar = memchr(p, '$', (size_t)(end - p));
        if (dollar == NULL) {
            sbuf_addn(out, p, (size_t)(end - p));
            break;
        }
        sbuf_addn(out, p, (size_t)(dollar - p));
        p = dollar + 1;
        if (p >= end)
            return experr_set(e, "empty macro name", s, len);
        if (*p == '$') {
            sbuf_addc(out, '$');
            p++;
        } else if (*p == '{' || *p == '(') {
            char open = *p, close = open == '{' ? '}' : ')';
            int level = 0;
            const char *q;
            for (q = p; q < end; q++) {
                if (*q == open)
                    level++;
                else if (*q == close && --level == 0)
                    break;
            }
            if (q >= end)
                return experr_set(e, "truncated macro reference", s, len);
            if (expand_braced(cf, p + 1, q, stress, out, depth, e) < 0)
                return -1;
            p = q + 1;
        } else if (name_char((unsigned char)*p)) {
            const char *n = p;
            bool rawflag;
            while (p < end && name_char((unsigned char)*p))
                p++;
            const char *val = lookup(cf, n, (size_t)(p - n), stress, &rawflag);
            if (expand_value(cf, val, rawflag, stress, out, depth, e) < 0)
                return -1;
        } else {
            return experr_set(e, "empty macro name", s, len);
        }
    }
    return 0;
}

/* Expand TEXT with the parameters of CF; public wrapper of expand(). */
int conf_expand(const struct conf *cf, const char *text, bool stress, struct sbuf *out, char *err,
                size_t errlen)
{
    struct experr e = {err, errlen, false, 0};

    return expand(cf, text, strlen(text), stress, out, 0, &e);
}

/*
 * Parse a time value as Postfix's conv_time(): a non-negative decimal
 * number and an optional unit letter (s, m, h, d, w; DEFUNIT when absent).
 * Like Postfix, text after the unit letter is ignored.  0 or -1.
 */
int conf_parse_time(const char *text, char defunit, long long *secs)
{
    char *end;
    long long mult;

    if (!isdigit((unsigned char)*text))
        return -1;
    errno = 0;
    long long n = strtoll(text, &end, 10);
    if (errno || n > INT_MAX)
        return -1;
    switch (*end ? *end : defunit) {
    case 'w':
        mult = 7 * 86400;
        break;
    case 'd':
        mult = 86400;
        break;
    case 'h':
        mult = 3600;
        break;
    case 'm':
        mult = 60;
        break;
    case 's':
        mult = 1;
        break;
    default:
        return -1;
    }
    if (n > INT_MAX / mult)
        return -1;
    *secs = n * mult;
    return 0;
}

/* Parse a decimal integer with an optional sign; 0 or -1. */
int conf_parse_int(const char *text, long long *val)
{
    char *end;

    if (*text == '\0' || isspace((unsigned char)*text))
        return -1;
    errno = 0;
    *val = strtoll(text, &end, 10);
    return errno || *end != '\0' || end == text ? -1 : 0;
}

/* Parse "yes" or "no" (any case), as Postfix does; 0 or -1. */
int conf_parse_bool(const char *text, bool *val)
{
    if (strcasecmp(text, "yes") == 0)
        *val = true;
    else if (strcasecmp(text, "no") == 0)
        *val = false;
    else
        return -1;
    return 0;
}

/* Where parameter ID was set, for messages: "FILE, line N", "-o" or "FILE". */
const char *conf_where(const struct conf *cf, enum param_id id, char *buf, size_t len)
{
    int r = cf->v[id].raw;

    if (r < 0)
        snprintf(buf, len, "%s", cf->path);
    else if (cf->raw[r].origin == NULL)
        snprintf(buf, len, "command line -o");
    else
        snprintf(buf, len, "%s, line %d", cf->raw[r].origin, cf->raw[r].line);
    return buf;
}

/* Check one expanded value of parameter ID against its type and bounds. */
static int check_value(const struct conf *cf, enum param_id id, const char *val, long long *num,
                       char *err, size_t errlen)
{
    const struct param_def *d = &param_table[id];
    char where[512];
    const char *what = NULL;
    bool b = false;

    conf_where(cf, id, where, sizeof(where));
    switch (d->type) {
    case CT_STR:
        *num = 0;
        return 0;
    case CT_BOOL:
        if (conf_parse_bool(val, &b) < 0)
            what = "bad boolean value (yes or no)";
        *num = b;
        break;
    case CT_INT:
        if (conf_parse_int(val, num) < 0)
            what = "bad numerical value";
        break;
    case CT_TIME:
        if (conf_parse_time(val, d->unit, num) < 0)
            what = "bad time value or unit (a number and s, m, h, d or w)";
        break;
    case CT_ENUM: {
        const char *w = d->words;
        long long idx = 0;
        size_t vl = strlen(val);
        for (;;) {
            const char *bar = strchr(w, '|');
            size_t wl = bar ? (size_t)(bar - w) : strlen(w);
            if (wl == vl && strncasecmp(w, val, vl) == 0)
                break;
            if (bar == NULL) {
                idx = -1;
                break;
            }
            w = bar + 1;
            idx++;
        }
        *num = idx;
        if (idx < 0) {
            if (d->flags & PF_ACTION)
                snprintf(err, errlen, "%s: bad %s value: %s (expected %s)", where, d->name, val,
                         "ignore, enforce or drop");
            else
                snprintf(err, errlen, "%s: parameter %s: bad value \"%s\" (expected one of: %s)",
                         where, d->name, val, d->words[0] == '|' ? d->words + 1 : d->words);
            return -1;
        }
        return 0;
    }
    }
    if (what) {
        snprintf(err, errlen, "%s: parameter %s: %s: \"%s\"", where, d->name, what, val);
        return -1;
    }
    if (!(d->flags & PF_NOMIN) && *num < d->min) {
        snprintf(err, errlen, "%s: parameter %s: value \"%s\" is below the minimum %lld%s", where,
                 d->name, val, d->min, d->type == CT_TIME ? "s" : "");
        return -1;
    }
    if (!(d->flags & PF_NOMAX) && d->max > 0 && *num > d->max) {
        snprintf(err, errlen, "%s: parameter %s: value \"%s\" is above the maximum %lld%s", where,
                 d->name, val, d->max, d->type == CT_TIME ? "s" : "");
        return -1;
    }
    return 0;
}

/* Evaluate and check parameter ID in both stress states. */
static int eval_param(struct conf *cf, enum param_id id, char *err, size_t errlen)
{
    const struct param_def *d = &param_table[id];
    bool rawflag;
    const char *val = lookup(cf, d->name, strlen(d->name), false, &rawflag);

    cf->v[id].raw = raw_find(cf, d->name, strlen(d->name));
    /* A raw value that is just "$name" takes that parameter's value, as
     * postscreen does for postscreen_reject_footer and
     * postscreen_expansion_filter (defaults $smtpd_...). */
    if (rawflag && val != NULL && val[0] == '$' && param_lookup(val + 1) >= 0) {
        const char *other = val + 1;
        val = lookup(cf, other, strlen(other), false, &rawflag);
    }
    for (int s = 0; s < 2; s++) {
        struct sbuf out = SBUF_INIT;
        char eb[400];
        struct experr e = {eb, sizeof(eb), false, 0};
        if (val != NULL && expand_value(cf, val, rawflag, s == 1, &out, -1, &e) < 0) {
            char where[512], quoted[256];
            conf_where(cf, id, where, sizeof(where));
            /* The error quotes the part that failed; name the whole value too. */
            snprintf(quoted, sizeof(quoted), "\"%.200s\"", val);
            if (strstr(eb, quoted))
                snprintf(err, errlen, "%s: parameter %s: %s", where, d->name, eb);
            else
                snprintf(err, errlen, "%s: parameter %s: %s, in value %s", where, d->name, eb,
                         quoted);
            sbuf_free(&out);
            return -1;
        }
        cf->v[id].str[s] = sbuf_take(&out);
        /* Legacy names without a value stay undefined: nothing to check. */
        if (val == NULL)
            continue;
        if (check_value(cf, id, cf->v[id].str[s], &cf->v[id].num[s], err, errlen) < 0)
            return -1;
    }
    return 0;
}

/* Append the networks of this host's interfaces in the given style. */
static void add_interface_networks(struct sbuf *b, bool subnet)
{
    struct ifaddrs *ifa, *i;

    if (getifaddrs(&ifa) < 0)
        return;
    for (i = ifa; i; i = i->ifa_next) {
        if (i->ifa_addr == NULL || !(i->ifa_flags & IFF_UP))
            continue;
        unsigned char net[16];
        int bits = 0, nbytes;
        char text[INET6_ADDRSTRLEN];
        if (i->ifa_addr->sa_family == AF_INET) {
            memcpy(net, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, 4);
            nbytes = 4;
            if (net[0] == 127)
                continue;
        } else if (i->ifa_addr->sa_family == AF_INET6) {
            memcpy(net, ((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr.s6_addr, 16);
            nbytes = 16;
            if (IN6_IS_ADDR_LINKLOCAL((struct in6_addr *)net) ||
                IN6_IS_ADDR_LOOPBACK((struct in6_addr *)net))
                continue;
        } else {
            continue;
        }
        const unsigned char *mask =
            i->ifa_netmask == NULL ? NULL
            : nbytes == 4 ? (const unsigned char *)&((struct sockaddr_in *)i->ifa_netmask)->sin_addr
                          : ((struct sockaddr_in6 *)i->ifa_netmask)->sin6_addr.s6_addr;
        for (int k = 0; k < nbytes; k++) {
            unsigned char m = subnet && mask ? mask[k] : 0xff;
            net[k] &= m;
            bits += __builtin_popcount(m);
        }
        inet_ntop(nbytes == 4 ? AF_INET : AF_INET6, net, text, sizeof(text));
        sbuf_printf(b, nbytes == 4 ? " %s/%d" : " [%s]/%d", text, bits);
    }
    freeifaddrs(ifa);
}

/* Compute the defaults that depend on the machine: hostname and networks. */
static void compute_defaults(struct conf *cf)
{
    char host[256] = "localhost";
    bool rawflag;

    if (gethostname(host, sizeof(host) - 1) < 0)
        strcpy(host, "localhost");
    host[sizeof(host) - 1] = '\0';
    cf->computed[P_MYHOSTNAME] = xstrdup(host);
    /* mydomain: what follows the first dot of myhostname, as Postfix does. */
    struct sbuf b = SBUF_INIT;
    char eb[200];
    if (conf_expand(cf, "$myhostname", false, &b, eb, sizeof(eb)) == 0 &&
        strchr(b.s ? b.s : "", '.'))
        cf->computed[P_MYDOMAIN] = xstrdup(strchr(b.s, '.') + 1);
    else
        cf->computed[P_MYDOMAIN] = xstrdup("localdomain");
    sbuf_reset(&b);
    const char *style = lookup(cf, "mynetworks_style", 16, false, &rawflag);
    struct sbuf s = SBUF_INIT;
    struct experr e = {eb, sizeof(eb), false, 0};
    expand(cf, style, strlen(style), false, &s, 0, &e);
    sbuf_adds(&b, "127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128");
    add_interface_networks(&b, strcasecmp(sbuf_str(&s), "host") != 0);
    sbuf_free(&s);
    cf->computed[P_MYNETWORKS] = sbuf_take(&b);
}

/* Is NAME a legal parameter name? */
static bool good_name(const char *n, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!name_char((unsigned char)n[i]))
            return false;
    return true;
}

/* Trim white space at both ends of [*s, *s + *len). */
static void trim(const char **s, size_t *len)
{
    while (*len && isspace((unsigned char)**s)) {
        (*s)++;
        (*len)--;
    }
    while (*len && isspace((unsigned char)(*s)[*len - 1]))
        (*len)--;
}

/* Split one "name = value" definition and record it; 0 or -1. */
static int define(struct conf *cf, const char *text, size_t len, const char *origin, int line,
                  char *err, size_t errlen)
{
    const char *eq = memchr(text, '=', len);
    char where[512];

    if (origin)
        snprintf(where, sizeof(where), "%s, line %d", origin, line);
    else
        snprintf(where, sizeof(where), "command line -o %.*s", (int)(len > 200 ? 200 : len), text);
    if (eq == NULL) {
        snprintf(err, errlen, "%s: missing '=' after parameter name: \"%.*s\"", where,
                 (int)(len > 200 ? 200 : len), text);
        return -1;
    }
    const char *n = text, *v = eq + 1;
    size_t nl = (size_t)(eq - text), vl = len - nl - 1;
    trim(&n, &nl);
    trim(&v, &vl);
    if (!good_name(n, nl)) {
        snprintf(err, errlen, "%s: bad parameter name: \"%.*s\" in \"%.*s\"", where,
                 (int)(nl > 200 ? 200 : nl), n, (int)(len > 200 ? 200 : len), text);
        return -1;
    }
    raw_set(cf, n, nl, v, vl, origin, line);
    return 0;
}

/* Parse main.cf text: comments, blank lines and continuation lines. */
static int parse_text(struct conf *cf, const char *origin, const char *text, char *err,
                      size_t errlen)
{
    struct sbuf logical = SBUF_INIT;
    int line = 0, start = 0;
    const char *p = text;
    int rc = 0;

    while (*p && rc == 0) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        line++;
        const char *q = p;
        while (q < p + len && isspace((unsigned char)*q))
            q++;
        bool blank = q == p + len, comment = !blank && *q == '#';
        if (blank || comment) {
            /* Ignored; a comment does not end a logical line. */
        } else if (isspace((unsigned char)*p) && logical.len > 0) {
            sbuf_addn(&logical, p, len);
        } else if (isspace((unsigned char)*p)) {
            snprintf(err, errlen, "%s, line %d: continuation line without a parameter: \"%.*s\"",
                     origin, line, (int)(len > 200 ? 200 : len), p);
            rc = -1;
        } else {
            if (logical.len > 0)
                rc = define(cf, logical.s, logical.len, origin, start, err, errlen);
            sbuf_reset(&logical);
            sbuf_addn(&logical, p, len);
            start = line;
        }
        p = nl ? nl + 1 : p + len;
    }
    if (rc == 0 && logical.len > 0)
        rc = define(cf, logical.s, logical.len, origin, start, err, errlen);
    sbuf_free(&logical);
    return rc;
}

/* Build a configuration from TEXT (named NAME in messages). */
struct conf *conf_load_text(const char *name, const char *text, const char *const *overrides,
                            size_t noverrides, char *err, size_t errlen)
{
    struct conf *cf = xcalloc(1, sizeof(*cf));

    cf->path = xstrdup(name);
    if (parse_text(cf, cf->path, text, err, errlen) < 0)
        goto fail;
    for (size_t i = 0; i < noverrides; i++)
        if (define(cf, overrides[i], strlen(overrides[i]), NULL, 0, err, errlen) < 0)
            goto fail;
    compute_defaults(cf);
    for (size_t i = 0; i < cf->nraw; i++) {
        const char *n = cf->raw[i].name;
        if (param_lookup(n) < 0 &&
            (strncmp(n, "postscreen_", 11) == 0 || strncmp(n, "mxscreen_", 9) == 0)) {
            if (cf->raw[i].origin)
                msg_warn("%s, line %d: unknown parameter %s -- ignored", cf->raw[i].origin,
                         cf->raw[i].line, n);
            else
                msg_warn("command line -o: unknown parameter %s -- ignored", n);
        }
    }
    /* Explicit definitions first, in file order, so that an error names the
     * line that is wrong rather than a default that refers to it. */
    bool done[P__COUNT] = {false};
    for (size_t i = 0; i < cf->nraw; i++) {
        int id = param_lookup(cf->raw[i].name);
        if (id < 0)
            continue;
        if (eval_param(cf, (enum param_id)id, err, errlen) < 0)
            goto fail;
        done[id] = true;
    }
    for (int id = 0; id < P__COUNT; id++)
        if (!done[id] && eval_param(cf, (enum param_id)id, err, errlen) < 0)
            goto fail;
    return cf;
fail:
    conf_free(cf);
    return NULL;
}

/* Read and build the configuration in PATH. */
struct conf *conf_load(const char *path, const char *const *overrides, size_t noverrides, char *err,
                       size_t errlen)
{
    FILE *fp = fopen(path, "r");
    struct sbuf text = SBUF_INIT;
    char chunk[4096];
    size_t n;

    if (fp == NULL) {
        snprintf(err, errlen, "open %s: %s", path, strerror(errno));
        return NULL;
    }
    while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
        sbuf_addn(&text, chunk, n);
    bool bad = ferror(fp);
    fclose(fp);
    if (bad) {
        snprintf(err, errlen, "read %s: %s", path, strerror(errno));
        sbuf_free(&text);
        return NULL;
    }
    if (memchr(sbuf_str(&text), '\0', text.len) != NULL) {
        snprintf(err, errlen, "%s: file contains a NUL byte", path);
        sbuf_free(&text);
        return NULL;
    }
    struct conf *cf = conf_load_text(path, sbuf_str(&text), overrides, noverrides, err, errlen);
    sbuf_free(&text);
    return cf;
}

/* Release a configuration. */
void conf_free(struct conf *cf)
{
    if (cf == NULL)
        return;
    for (size_t i = 0; i < cf->nraw; i++) {
        free(cf->raw[i].name);
        free(cf->raw[i].value);
    }
    free(cf->raw);
    for (int i = 0; i < P__COUNT; i++) {
        free(cf->computed[i]);
        free(cf->v[i].str[0]);
        free(cf->v[i].str[1]);
    }
    free(cf->path);
    free(cf);
}

/* The expanded value of ID (not under stress). */
const char *conf_str(const struct conf *cf, enum param_id id)
{
    return cf->v[id].str[0] ? cf->v[id].str[0] : "";
}

/* The numeric value of ID: a count, seconds, 0/1, or an enum word's index. */
long long conf_num(const struct conf *cf, enum param_id id)
{
    return cf->v[id].num[0];
}

/* The numeric value of ID in the given stress state. */
long long conf_num_stress(const struct conf *cf, enum param_id id, bool stress)
{
    return cf->v[id].num[stress ? 1 : 0];
}

/* The value of a boolean parameter. */
bool conf_bool(const struct conf *cf, enum param_id id)
{
    return cf->v[id].num[0] != 0;
}

/* Was ID set in the file or with -o? */
bool conf_is_set(const struct conf *cf, enum param_id id)
{
    return cf->v[id].raw >= 0;
}

/* The path the configuration was read from. */
const char *conf_path(const struct conf *cf)
{
    return cf->path;
}

/* Order raw entries by name for conf_print_nondefault(). */
static int cmp_entry(const void *a, const void *b)
{
    return strcmp((*(const struct raw_entry *const *)a)->name,
                  (*(const struct raw_entry *const *)b)->name);
}

/* Print "name = value" for every known parameter set to a non-default value. */
void conf_print_nondefault(const struct conf *cf, FILE *fp)
{
    const struct raw_entry **list = xcalloc(cf->nraw, sizeof(*list));
    size_t n = 0;

    for (size_t i = 0; i < cf->nraw; i++) {
        int id = param_lookup(cf->raw[i].name);
        if (id < 0)
            continue;
        const char *def = cf->computed[id] ? cf->computed[id] : param_table[id].def;
        if (def != NULL && strcmp(def, cf->raw[i].value) == 0)
            continue;
        list[n++] = &cf->raw[i];
    }
    qsort(list, n, sizeof(*list), cmp_entry);
    for (size_t i = 0; i < n; i++)
        fprintf(fp, "%s = %s\n", list[i]->name, list[i]->value);
    free(list);
}
