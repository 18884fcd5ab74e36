/*
 * table - Postfix lookup tables held in memory; see table.h.
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <regex.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "conf/table.h"
#include "log/log.h"
#include "util/mem.h"
#include "util/sbuf.h"

enum table_type {
    TABLE_CIDR,
    TABLE_INLINE,
    TABLE_TEXTHASH,
    TABLE_STATIC,
    TABLE_REGEXP,
    TABLE_PCRE,
};

/* IF blocks nest at most this deep in cidr:, regexp: and pcre: tables. */
#define TABLE_MAX_NESTING 32

/* The largest $N a regexp: or pcre: result may name. */
#define TABLE_MAX_SUB 65535

enum rule_kind {
    RULE_MATCH, /* pattern and value */
    RULE_IF,    /* IF pattern: when not matched, jump to skip */
    RULE_ENDIF, /* end of an IF block */
};

/* A $N in a regexp: or pcre: result: group N's text goes at value + at. */
struct subst {
    size_t at;      /* offset into the rule's value */
    unsigned group; /* N, 1 or more */
};

struct rule {
    enum rule_kind kind;
    int lineno;         /* file line, or inline element number */
    struct cidr net;    /* cidr: pattern */
    regex_t *re;        /* regexp: pattern */
    pcre2_code *pcre;   /* pcre: pattern */
    bool negate;        /* "!pattern" */
    size_t skip;        /* RULE_IF: index of its RULE_ENDIF */
    char *key;          /* exact-match tables */
    char *value;        /* lookup result ($$ already made $ in regexp:, pcre:) */
    struct subst *subs; /* regexp:, pcre: where $N go into value, in order */
    size_t nsubs;       /* entries in subs */
    unsigned max_sub;   /* largest N in subs, 0 when none */
};

/*
 * What a regexp: or pcre: lookup writes.  The rules stay read-only after
 * table_open(); this lives behind a pointer so that table_lookup() can keep
 * taking a const table.
 */
struct scratch {
    struct sbuf result;   /* the last substituted result */
    regmatch_t *pmatch;   /* regexp: matched groups, npmatch entries */
    size_t npmatch;       /* largest max_sub + 1 over the rules */
    pcre2_match_data *md; /* pcre: matched groups, room for every group */
};

struct table {
    enum table_type type;
    char *name;       /* the "type:name" spec, for messages */
    bool inline_body; /* "type:{...}": rules are numbered, not lines */
    struct rule *rules;
    size_t nrules;
    size_t cap;
    struct scratch *scr; /* regexp: and pcre: only */
};

/* Append a rule and return it. */
static struct rule *add_rule(struct table *t)
{
    if (t->nrules == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->rules = xrealloc(t->rules, t->cap * sizeof(*t->rules));
    }
    struct rule *r = &t->rules[t->nrules++];
    memset(r, 0, sizeof(*r));
    return r;
}

/* Trim white space at both ends of S in place. */
static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/*
 * Parse a cidr pattern: "!"s toggle negation; brackets as [addr], [addr/n]
 * or [addr]/n.
 */
static int cidr_pattern(const char *text, struct rule *r, char *err, size_t errlen)
{
    char buf[128];
    const char *p = text;

    r->negate = false;
    while (*p == '!') {
        r->negate = !r->negate;
        p++;
    }
    if (strlen(p) >= sizeof(buf)) {
        snprintf(err, errlen, "bad address pattern: \"%.60s...\"", p);
        return -1;
    }
    /* "[addr/n]" becomes "[addr]/n" for cidr_parse(). */
    const char *slash = strchr(p, '/');
    if (p[0] == '[' && slash && p[strlen(p) - 1] == ']') {
        snprintf(buf, sizeof(buf), "%.*s]/%.*s", (int)(slash - p), p, (int)(strlen(slash + 1) - 1),
                 slash + 1);
        p = buf;
    }
    return cidr_parse(p, &r->net, err, errlen);
}

/* Add one cidr rule line ("pattern value", "if pattern", "endif"). */
static int cidr_line(struct table *t, char *line, size_t *stack, size_t *depth, char *err,
                     size_t errlen)
{
    char *p = line;
    size_t wl = strcspn(p, " \t");
    char *rest = trim(p + wl + (p[wl] ? 1 : 0));

    p[wl] = '\0';
    if (strcasecmp(p, "endif") == 0) {
        if (*rest) {
            snprintf(err, errlen, "garbage after ENDIF");
            return -1;
        }
        if (*depth == 0) {
            snprintf(err, errlen, "ENDIF without IF");
            return -1;
        }
        struct rule *r = add_rule(t);
        r->kind = RULE_ENDIF;
        t->rules[stack[--*depth]].skip = t->nrules - 1;
        return 0;
    }
    if (strcasecmp(p, "if") == 0) {
        if (*depth >= TABLE_MAX_NESTING) {
            snprintf(err, errlen, "IF nesting too deep");
            return -1;
        }
        struct rule *r = add_rule(t);
        r->kind = RULE_IF;
        if (*rest == '\0' || strpbrk(rest, " \t")) {
            snprintf(err, errlen, "IF needs one address pattern");
            return -1;
        }
        stack[(*depth)++] = t->nrules - 1;
        return cidr_pattern(rest, r, err, errlen);
    }
    if (*rest == '\0') {
        snprintf(err, errlen, "no lookup result for \"%s\"", p);
        return -1;
    }
    struct rule *r = add_rule(t);
    r->kind = RULE_MATCH;
    r->value = xstrdup(rest);
    return cidr_pattern(p, r, err, errlen);
}

/* Read FILE into logical lines (continuations joined); calls FN per line. */
static int read_logical_lines(const char *path, char *err, size_t errlen,
                              int (*fn)(void *, char *, int, char *, size_t), void *ctx)
{
    FILE *fp = fopen(path, "r");
    char buf[8192];
    struct sbuf cur = SBUF_INIT;
    int line = 0, start = 0, rc = 0;
    char lerr[400];

    if (fp == NULL) {
        snprintf(err, errlen, "open %s: %s", path, strerror(errno));
        return -1;
    }
    while (rc == 0 && fgets(buf, sizeof(buf), fp)) {
        line++;
        size_t n = strlen(buf);
        if (n && buf[n - 1] == '\n')
            buf[--n] = '\0';
        else if (!feof(fp)) {
            snprintf(err, errlen, "%s, line %d: line too long", path, line);
            rc = -1;
            break;
        }
        char *t = buf;
        while (isspace((unsigned char)*t))
            t++;
        if (*t == '\0' || *t == '#')
            continue;
        if (isspace((unsigned char)buf[0]) && cur.len) {
            sbuf_adds(&cur, " ");
            sbuf_adds(&cur, t);
            continue;
        }
        if (cur.len && (rc = fn(ctx, cur.s, start, lerr, sizeof(lerr))) < 0)
            snprintf(err, errlen, "%s, line %d: %s", path, start, lerr);
        sbuf_reset(&cur);
        sbuf_adds(&cur, t);
        start = line;
    }
    if (rc == 0 && cur.len && (rc = fn(ctx, cur.s, start, lerr, sizeof(lerr))) < 0)
        snprintf(err, errlen, "%s, line %d: %s", path, start, lerr);
    fclose(fp);
    sbuf_free(&cur);
    return rc;
}

/* Parsing state for tables with IF/ENDIF blocks. */
struct rules_ctx {
    struct table *t;
    size_t stack[TABLE_MAX_NESTING];   /* rule index of each open IF */
    int stack_line[TABLE_MAX_NESTING]; /* and its line (or element) */
    size_t depth;                      /* IFs open */
    int lineno;                        /* line (or element) being parsed */
};

/* read_logical_lines() callback for cidr files. */
static int cidr_file_line(void *vctx, char *line, int lineno, char *err, size_t errlen)
{
    struct rules_ctx *c = vctx;

    (void)lineno;
    return cidr_line(c->t, trim(line), c->stack, &c->depth, err, errlen);
}

/*
 * read_logical_lines() callback for texthash files: "key whitespace value",
 * split at the first white space as Postfix does (a key may contain ':', as
 * an IPv6 address does).
 */
static int texthash_line(void *vctx, char *line, int lineno, char *err, size_t errlen)
{
    struct table *t = vctx;
    size_t kl = strcspn(line, " \t");

    (void)lineno;
    char *rest = trim(line + kl);
    line[kl] = '\0';
    if (*rest == '\0') {
        snprintf(err, errlen, "no value for key \"%s\"", line);
        return -1;
    }
    struct rule *r = add_rule(t);
    r->key = xstrdup(line);
    r->value = xstrdup(rest);
    return 0;
}

/*
 * Split the body of "{...}" into elements: "{text}" groups or words
 * separated by commas and white space.  Calls FN(ctx, element).
 */
static int inline_elements(const char *body, char *err, size_t errlen,
                           int (*fn)(void *, char *, char *, size_t), void *ctx)
{
    const char *p = body;

    while (*p) {
        while (*p == ',' || isspace((unsigned char)*p))
            p++;
        if (*p == '\0')
            break;
        const char *s = p;
        size_t len;
        if (*p == '{') {
            int level = 0;
            for (; *p; p++) {
                if (*p == '{')
                    level++;
                else if (*p == '}' && --level == 0)
                    break;
            }
            if (*p != '}') {
                snprintf(err, errlen, "missing '}' in \"%s\"", s);
                return -1;
            }
            s++;
            len = (size_t)(p - s);
            p++;
        } else {
            while (*p && *p != ',' && !isspace((unsigned char)*p))
                p++;
            len = (size_t)(p - s);
        }
        char *el = xstrndup(s, len);
        int rc = fn(ctx, trim(el), err, errlen);
        free(el);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* inline_elements() callback for inline:{key=value, ...}. */
static int inline_kv(void *vctx, char *el, char *err, size_t errlen)
{
    struct table *t = vctx;
    char *eq = strchr(el, '=');

    if (eq == NULL) {
        snprintf(err, errlen, "missing '=' in \"%s\"", el);
        return -1;
    }
    *eq = '\0';
    struct rule *r = add_rule(t);
    r->key = xstrdup(trim(el));
    r->value = xstrdup(trim(eq + 1));
    return 0;
}

/* inline_elements() callback for cidr:{{rule}, ...}. */
static int inline_cidr(void *vctx, char *el, char *err, size_t errlen)
{
    struct rules_ctx *c = vctx;

    return cidr_line(c->t, el, c->stack, &c->depth, err, errlen);
}

/* ---- regexp: and pcre: ---------------------------------------------------- */

/* One "[!]<delim>regex<delim>flags" pattern, split in place. */
struct pattern {
    char *re;         /* the expression, NUL-terminated inside the rule text */
    char delim;       /* the delimiter, for messages */
    uint32_t options; /* regcomp() cflags or pcre2_compile() options */
    bool negate;      /* an odd number of "!" */
};

/*
 * Parse a pattern at *PP as Postfix does: "!"s (and white space) toggle
 * negation, the first other character is the delimiter, a backslash hides a
 * delimiter, and letters after the closing delimiter toggle options.  The
 * defaults are Postfix's: REG_EXTENDED | REG_ICASE, PCRE2_CASELESS |
 * PCRE2_DOTALL.  On success *PP points just past the flags.
 */
static int get_pattern(enum table_type type, char **pp, struct pattern *pat, char *err,
                       size_t errlen)
{
    char *p = *pp;

    pat->negate = false;
    for (;; p++) {
        if (*p == '!')
            pat->negate = !pat->negate;
        else if (!isspace((unsigned char)*p))
            break;
    }
    if (*p == '\0') {
        snprintf(err, errlen, "no regular expression");
        return -1;
    }
    char *start = p;
    pat->delim = *p++;
    pat->re = p;
    while (*p && *p != pat->delim) {
        if (*p == '\\' && p[1])
            p++;
        p++;
    }
    if (*p == '\0') {
        snprintf(err, errlen, "no closing delimiter \"%c\" in \"%.100s\"", pat->delim, start);
        return -1;
    }
    *p++ = '\0';
    if (type == TABLE_REGEXP)
        pat->options = REG_EXTENDED | REG_ICASE;
    else
        pat->options = PCRE2_CASELESS | PCRE2_DOTALL;
    for (; *p && !isspace((unsigned char)*p); p++) {
        uint32_t flag = 0;
        if (type == TABLE_REGEXP) {
            switch (*p) {
            case 'i':
                flag = REG_ICASE;
                break;
            case 'm':
                flag = REG_NEWLINE;
                break;
            case 'x':
                flag = REG_EXTENDED;
                break;
            case '!':
                /* Postfix's deprecated "/pattern1/!/pattern2/ result" */
                snprintf(err, errlen,
                         "\"/pattern1/!/pattern2/\" is not supported: use \"IF !/pattern2/\"");
                return -1;
            }
        } else {
            switch (*p) {
            case 'i':
                flag = PCRE2_CASELESS;
                break;
            case 'm':
                flag = PCRE2_MULTILINE;
                break;
            case 's':
                flag = PCRE2_DOTALL;
                break;
            case 'x':
                flag = PCRE2_EXTENDED;
                break;
            case 'A':
                flag = PCRE2_ANCHORED;
                break;
            case 'E':
                flag = PCRE2_DOLLAR_ENDONLY;
                break;
            case 'U':
                flag = PCRE2_UNGREEDY;
                break;
            case 'X':
                /* PCRE_EXTRA has no PCRE2 equivalent; Postfix ignores it too. */
                continue;
            }
        }
        if (flag == 0) {
            snprintf(err, errlen, "unknown regexp option \"%c\"", *p);
            return -1;
        }
        pat->options ^= flag;
    }
    *pp = p;
    return 0;
}

/* Note that group GROUP's text goes at offset AT of the rule's value. */
static void add_subst(struct rule *r, size_t at, unsigned group)
{
    r->subs = xrealloc(r->subs, (r->nsubs + 1) * sizeof(*r->subs));
    r->subs[r->nsubs].at = at;
    r->subs[r->nsubs].group = group;
    r->nsubs++;
    if (group > r->max_sub)
        r->max_sub = group;
}

/*
 * Split a result into literal text (r->value, with "$$" made "$") and the
 * places where $N, ${N} or $(N) go (r->subs), with the checks Postfix's
 * mac_parse() and dict_regexp_prescan() make: a name must be all digits and
 * 1 or more.
 */
static int parse_result(const char *text, struct rule *r, char *err, size_t errlen)
{
    struct sbuf lit = SBUF_INIT;
    const char *p = text;

    while (*p) {
        if (*p != '$') {
            sbuf_addc(&lit, *p++);
            continue;
        }
        if (p[1] == '$') {
            sbuf_addc(&lit, '$');
            p += 2;
            continue;
        }
        const char *name;
        size_t nlen;
        p++;
        if (*p == '{' || *p == '(') {
            char open = *p, close = *p == '{' ? '}' : ')';
            int level = 1;
            name = ++p;
            for (; *p; p++) {
                if (*p == open)
                    level++;
                else if (*p == close && --level == 0)
                    break;
            }
            if (*p == '\0') {
                snprintf(err, errlen, "missing '%c' in result \"%.100s\"", close, text);
                goto fail;
            }
            nlen = (size_t)(p++ - name);
        } else {
            name = p;
            while (isalnum((unsigned char)*p) || *p == '_')
                p++;
            nlen = (size_t)(p - name);
        }
        if (nlen == 0) {
            snprintf(err, errlen, "lone '$' in result \"%.100s\" (write \"$$\" for a '$')", text);
            goto fail;
        }
        unsigned long n = 0;
        for (size_t i = 0; i < nlen; i++) {
            if (!isdigit((unsigned char)name[i])) {
                snprintf(err, errlen, "non-numeric replacement index \"%.*s\"",
                         (int)(nlen > 40 ? 40 : nlen), name);
                goto fail;
            }
            if (n <= TABLE_MAX_SUB)
                n = n * 10 + (unsigned long)(name[i] - '0');
        }
        if (n < 1 || n > TABLE_MAX_SUB) {
            snprintf(err, errlen, "out of range replacement index \"%.*s\"",
                     (int)(nlen > 40 ? 40 : nlen), name);
            goto fail;
        }
        add_subst(r, lit.len, (unsigned)n);
    }
    r->value = sbuf_take(&lit);
    return 0;
fail:
    sbuf_free(&lit);
    return -1;
}

/*
 * Compile PAT into R (r->re or r->pcre) and return its number of groups in
 * *NSUB.  regexp: patterns whose result names no group skip sub-matching.
 */
static int compile_pattern(enum table_type type, const struct pattern *pat, struct rule *r,
                           unsigned *nsub, char *err, size_t errlen)
{
    if (type == TABLE_REGEXP) {
        regex_t *re = xmalloc(sizeof(*re));
        int cflags = (int)pat->options | (r->max_sub ? 0 : REG_NOSUB);
        int rc = regcomp(re, pat->re, cflags);
        if (rc != 0) {
            char msg[200];
            regerror(rc, re, msg, sizeof(msg));
            snprintf(err, errlen, "bad regular expression %c%.100s%c: %s", pat->delim, pat->re,
                     pat->delim, msg);
            free(re);
            return -1;
        }
        r->re = re;
        *nsub = (unsigned)re->re_nsub;
        return 0;
    }
    int code;
    PCRE2_SIZE off;
    uint32_t count;
    r->pcre =
        pcre2_compile((PCRE2_SPTR)pat->re, PCRE2_ZERO_TERMINATED, pat->options, &code, &off, NULL);
    if (r->pcre == NULL) {
        PCRE2_UCHAR msg[200];
        if (pcre2_get_error_message(code, msg, sizeof(msg)) < 0)
            snprintf((char *)msg, sizeof(msg), "PCRE2 error %d", code);
        snprintf(err, errlen, "bad regular expression %c%.100s%c at offset %zu: %s", pat->delim,
                 pat->re, pat->delim, (size_t)off, (char *)msg);
        return -1;
    }
    if (pcre2_pattern_info(r->pcre, PCRE2_INFO_CAPTURECOUNT, &count) != 0)
        msg_panic("table: pcre2_pattern_info failed");
    *nsub = count;
    return 0;
}

/* Add one regexp: or pcre: rule ("/pattern/flags result", IF, ENDIF). */
static int regex_line(struct rules_ctx *c, char *line, char *err, size_t errlen)
{
    struct table *t = c->t;
    struct pattern pat;
    unsigned nsub;
    char *p = line;

    /* Postfix: a rule starts with a delimiter or "!", never a letter or digit. */
    if (*p && !isalnum((unsigned char)*p)) {
        if (get_pattern(t->type, &p, &pat, err, errlen) < 0)
            return -1;
        while (isspace((unsigned char)*p))
            p++;
        if (*p == '\0') {
            snprintf(err, errlen, "no lookup result for %c%.100s%c", pat.delim, pat.re, pat.delim);
            return -1;
        }
        struct rule *r = add_rule(t);
        r->kind = RULE_MATCH;
        r->lineno = c->lineno;
        r->negate = pat.negate;
        if (parse_result(p, r, err, errlen) < 0)
            return -1;
        if (r->max_sub && r->negate) {
            snprintf(err, errlen, "$number in the result of a negated pattern");
            return -1;
        }
        if (compile_pattern(t->type, &pat, r, &nsub, err, errlen) < 0)
            return -1;
        if (r->max_sub > nsub) {
            snprintf(err, errlen,
                     "out of range replacement index \"%u\" (the pattern has %u group%s)",
                     r->max_sub, nsub, nsub == 1 ? "" : "s");
            return -1;
        }
        return 0;
    }
    if (strncasecmp(p, "if", 2) == 0 && !isalnum((unsigned char)p[2])) {
        if (c->depth >= TABLE_MAX_NESTING) {
            snprintf(err, errlen, "IF nesting too deep");
            return -1;
        }
        p += 2;
        if (get_pattern(t->type, &p, &pat, err, errlen) < 0)
            return -1;
        while (isspace((unsigned char)*p))
            p++;
        if (*p) {
            snprintf(err, errlen, "text after IF pattern: \"%.100s\"", p);
            return -1;
        }
        struct rule *r = add_rule(t);
        r->kind = RULE_IF;
        r->lineno = c->lineno;
        r->negate = pat.negate;
        if (compile_pattern(t->type, &pat, r, &nsub, err, errlen) < 0)
            return -1;
        c->stack_line[c->depth] = c->lineno;
        c->stack[c->depth++] = t->nrules - 1;
        return 0;
    }
    if (strncasecmp(p, "endif", 5) == 0 && !isalnum((unsigned char)p[5])) {
        p += 5;
        while (isspace((unsigned char)*p))
            p++;
        if (*p) {
            snprintf(err, errlen, "garbage after ENDIF");
            return -1;
        }
        if (c->depth == 0) {
            snprintf(err, errlen, "ENDIF without IF");
            return -1;
        }
        struct rule *r = add_rule(t);
        r->kind = RULE_ENDIF;
        r->lineno = c->lineno;
        t->rules[c->stack[--c->depth]].skip = t->nrules - 1;
        return 0;
    }
    snprintf(err, errlen, "expected \"/pattern/ result\", IF or ENDIF: \"%.100s\"", line);
    return -1;
}

/* read_logical_lines() callback for regexp: and pcre: files. */
static int regex_file_line(void *vctx, char *line, int lineno, char *err, size_t errlen)
{
    struct rules_ctx *c = vctx;

    c->lineno = lineno;
    return regex_line(c, trim(line), err, errlen);
}

/* inline_elements() callback for regexp:{{rule}, ...} and pcre:{{rule}, ...}. */
static int inline_regex(void *vctx, char *el, char *err, size_t errlen)
{
    struct rules_ctx *c = vctx;

    c->lineno++;
    return regex_line(c, el, err, errlen);
}

/* Load a regexp: or pcre: table from NAME (a file or "{...}" BODY). */
static int regex_open(struct table *t, const char *spec, const char *name, const char *body,
                      char *err, size_t errlen)
{
    struct rules_ctx c = {.t = t};
    char lerr[400];
    int rc;

    t->inline_body = body != NULL;
    if (body) {
        rc = inline_elements(body, lerr, sizeof(lerr), inline_regex, &c);
        if (rc < 0)
            snprintf(err, errlen, "table %s: %s", spec, lerr);
    } else {
        rc = read_logical_lines(name, err, errlen, regex_file_line, &c);
    }
    if (rc < 0)
        return -1;
    if (c.depth > 0) {
        if (body)
            snprintf(err, errlen, "table %s: IF has no matching ENDIF", spec);
        else
            snprintf(err, errlen, "%s, line %d: IF has no matching ENDIF", name,
                     c.stack_line[c.depth - 1]);
        return -1;
    }

    /* Room for the groups of the greediest rule, shared by all lookups. */
    struct scratch *s = xcalloc(1, sizeof(*s));
    t->scr = s;
    if (t->type == TABLE_REGEXP) {
        s->npmatch = 1;
        for (size_t i = 0; i < t->nrules; i++)
            if (t->rules[i].max_sub + 1 > s->npmatch)
                s->npmatch = t->rules[i].max_sub + 1;
        s->pmatch = xcalloc(s->npmatch, sizeof(*s->pmatch));
    } else {
        uint32_t pairs = 1;
        for (size_t i = 0; i < t->nrules; i++) {
            uint32_t count;
            if (t->rules[i].pcre &&
                pcre2_pattern_info(t->rules[i].pcre, PCRE2_INFO_CAPTURECOUNT, &count) == 0 &&
                count + 1 > pairs)
                pairs = count + 1;
        }
        s->md = pcre2_match_data_create(pairs, NULL);
        if (s->md == NULL)
            msg_panic("table %s: out of memory for PCRE2 match data", spec);
    }
    return 0;
}

/*
 * Does rule R apply to KEY (a match, or no match for "!")?  A matching
 * error (a PCRE2 limit, say) is logged and makes the rule not apply, as in
 * Postfix.
 */
static bool regex_applies(const struct table *t, const struct rule *r, const char *key)
{
    struct scratch *s = t->scr;
    char msg[200];
    int rc;

    if (t->type == TABLE_REGEXP) {
        size_t n = r->max_sub ? r->max_sub + 1 : 0;
        rc = regexec(r->re, key, n, n ? s->pmatch : NULL, 0);
        if (rc == 0 || rc == REG_NOMATCH)
            return (rc == 0) != r->negate;
        regerror(rc, r->re, msg, sizeof(msg));
    } else {
        rc = pcre2_match(r->pcre, (PCRE2_SPTR)key, strlen(key), 0, 0, s->md, NULL);
        if (rc >= 0 || rc == PCRE2_ERROR_NOMATCH)
            return (rc >= 0) != r->negate;
        if (pcre2_get_error_message(rc, (PCRE2_UCHAR *)msg, sizeof(msg)) < 0)
            snprintf(msg, sizeof(msg), "PCRE2 error %d", rc);
    }
    msg_warn("table %s, %s %d: %s", t->name, t->inline_body ? "rule" : "line", r->lineno, msg);
    return false;
}

/* Where group N of the last match lies in the key; false when it took no part. */
static bool group_span(const struct table *t, unsigned n, size_t *so, size_t *eo)
{
    const struct scratch *s = t->scr;

    if (t->type == TABLE_REGEXP) {
        if (n >= s->npmatch || s->pmatch[n].rm_so < 0 || s->pmatch[n].rm_eo < s->pmatch[n].rm_so)
            return false;
        *so = (size_t)s->pmatch[n].rm_so;
        *eo = (size_t)s->pmatch[n].rm_eo;
        return true;
    }
    if (n >= pcre2_get_ovector_count(s->md))
        return false;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(s->md);
    if (ov[2 * n] == PCRE2_UNSET || ov[2 * n + 1] < ov[2 * n])
        return false;
    *so = ov[2 * n];
    *eo = ov[2 * n + 1];
    return true;
}

/* R's result for KEY, with $N replaced by the groups of the last match. */
static const char *regex_result(const struct table *t, const struct rule *r, const char *key)
{
    struct sbuf *out = &t->scr->result;
    size_t at = 0, so, eo;

    if (r->nsubs == 0)
        return r->value;
    sbuf_reset(out);
    for (size_t i = 0; i < r->nsubs; i++) {
        sbuf_addn(out, r->value + at, r->subs[i].at - at);
        at = r->subs[i].at;
        if (group_span(t, r->subs[i].group, &so, &eo))
            sbuf_addn(out, key + so, eo - so);
    }
    sbuf_adds(out, r->value + at);
    return sbuf_str(out);
}

/* First matching regexp: or pcre: rule, IF blocks skipped when not matched. */
static const char *regex_lookup(const struct table *t, const char *key)
{
    for (size_t i = 0; i < t->nrules; i++) {
        const struct rule *r = &t->rules[i];
        switch (r->kind) {
        case RULE_ENDIF:
            break;
        case RULE_IF:
            if (!regex_applies(t, r, key))
                i = r->skip;
            break;
        case RULE_MATCH:
            if (regex_applies(t, r, key))
                return regex_result(t, r, key);
            break;
        }
    }
    return NULL;
}

/* Extract the body of "{...}" (the whole name must be one group). */
static char *brace_body(const char *name)
{
    size_t n = strlen(name);

    if (n < 2 || name[0] != '{' || name[n - 1] != '}')
        return NULL;
    return xstrndup(name + 1, n - 2);
}

/* Parse "type:name" and load the table. */
struct table *table_open(const char *spec, char *err, size_t errlen)
{
    const char *colon = strchr(spec, ':');
    struct table *t = xcalloc(1, sizeof(*t));
    char lerr[400];
    int rc = 0;

    t->name = xstrdup(spec);
    if (colon == NULL) {
        snprintf(err, errlen, "table \"%s\": expected type:name", spec);
        goto fail;
    }
    const char *name = colon + 1;
    size_t tl = (size_t)(colon - spec);
    char *body = brace_body(name);
    if (tl == 4 && strncasecmp(spec, "cidr", 4) == 0) {
        struct rules_ctx c = {.t = t};
        t->type = TABLE_CIDR;
        if (body) {
            rc = inline_elements(body, lerr, sizeof(lerr), inline_cidr, &c);
            if (rc < 0)
                snprintf(err, errlen, "table %s: %s", spec, lerr);
        } else {
            rc = read_logical_lines(name, err, errlen, cidr_file_line, &c);
        }
        if (rc == 0 && c.depth > 0) {
            snprintf(err, errlen, "table %s: IF has no matching ENDIF", spec);
            rc = -1;
        }
    } else if (tl == 6 && strncasecmp(spec, "inline", 6) == 0) {
        t->type = TABLE_INLINE;
        if (body == NULL) {
            snprintf(err, errlen, "table %s: expected inline:{key=value, ...}", spec);
            rc = -1;
        } else if ((rc = inline_elements(body, lerr, sizeof(lerr), inline_kv, t)) < 0) {
            snprintf(err, errlen, "table %s: %s", spec, lerr);
        }
    } else if (tl == 8 && strncasecmp(spec, "texthash", 8) == 0) {
        t->type = TABLE_TEXTHASH;
        rc = read_logical_lines(name, err, errlen, texthash_line, t);
    } else if (tl == 6 && strncasecmp(spec, "regexp", 6) == 0) {
        t->type = TABLE_REGEXP;
        rc = regex_open(t, spec, name, body, err, errlen);
    } else if (tl == 4 && strncasecmp(spec, "pcre", 4) == 0) {
        t->type = TABLE_PCRE;
        rc = regex_open(t, spec, name, body, err, errlen);
    } else if (tl == 6 && strncasecmp(spec, "static", 6) == 0) {
        t->type = TABLE_STATIC;
        struct rule *r = add_rule(t);
        r->value = body ? xstrdup(trim(body)) : xstrdup(name);
    } else {
        snprintf(err, errlen,
                 "table \"%s\": unsupported table type \"%.*s\" (mxscreen has cidr, inline, "
                 "pcre, regexp, static and texthash)",
                 spec, (int)tl, spec);
        rc = -1;
    }
    free(body);
    if (rc < 0)
        goto fail;
    return t;
fail:
    table_free(t);
    return NULL;
}

/* Release a table. */
void table_free(struct table *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->nrules; i++) {
        struct rule *r = &t->rules[i];
        free(r->key);
        free(r->value);
        free(r->subs);
        if (r->re) {
            regfree(r->re);
            free(r->re);
        }
        pcre2_code_free(r->pcre);
    }
    free(t->rules);
    if (t->scr) {
        sbuf_free(&t->scr->result);
        free(t->scr->pmatch);
        pcre2_match_data_free(t->scr->md);
        free(t->scr);
    }
    free(t->name);
    free(t);
}

/*
 * Look up KEY: exact match with case folded (inline:, texthash:), as an
 * address (cidr:), or by the rules' own case flags (regexp:, pcre:).
 */
const char *table_lookup(const struct table *t, const char *key)
{
    switch (t->type) {
    case TABLE_REGEXP:
    case TABLE_PCRE:
        return regex_lookup(t, key);
    case TABLE_STATIC:
        return t->rules[0].value;
    case TABLE_INLINE:
    case TABLE_TEXTHASH:
        for (size_t i = 0; i < t->nrules; i++)
            if (strcasecmp(t->rules[i].key, key) == 0)
                return t->rules[i].value;
        return NULL;
    case TABLE_CIDR: {
        struct endpoint ep;
        struct sockaddr_storage ss;
        socklen_t len;
        memset(&ep, 0, sizeof(ep));
        if (!addr_parse(key, &ss, &len) || endpoint_set(&ep, (struct sockaddr *)&ss, len) < 0)
            return NULL;
        return table_lookup_addr(t, &ep);
    }
    }
    return NULL;
}

/* Does a cidr rule match? "!" inverts only within the pattern's family. */
static bool rule_matches(const struct rule *r, const struct endpoint *ep)
{
    if (r->net.family != ep->sa.ss_family)
        return false;
    return cidr_match(&r->net, (const struct sockaddr *)&ep->sa) != r->negate;
}

/* Match an address: cidr: by network (first match wins), others by text. */
const char *table_lookup_addr(const struct table *t, const struct endpoint *ep)
{
    if (t->type != TABLE_CIDR)
        return table_lookup(t, ep->addr);
    for (size_t i = 0; i < t->nrules; i++) {
        const struct rule *r = &t->rules[i];
        switch (r->kind) {
        case RULE_ENDIF:
            break;
        case RULE_IF:
            if (!rule_matches(r, ep))
                i = r->skip;
            break;
        case RULE_MATCH:
            if (rule_matches(r, ep))
                return r->value;
            break;
        }
    }
    return NULL;
}

/* The table's "type:name", for messages. */
const char *table_name(const struct table *t)
{
    return t->name;
}
