/*
 * table - Postfix lookup tables held in memory; see table.h.
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf/table.h"
#include "util/mem.h"
#include "util/sbuf.h"

enum table_type {
    TABLE_CIDR,
    TABLE_INLINE,
    TABLE_TEXTHASH,
    TABLE_STATIC,
};

enum rule_kind {
    RULE_MATCH, /* pattern and value */
    RULE_IF,    /* IF pattern: when not matched, jump to skip */
    RULE_ENDIF, /* end of an IF block */
};

struct rule {
    enum rule_kind kind;
    struct cidr net; /* cidr: pattern */
    bool negate;     /* "!pattern" */
    size_t skip;     /* RULE_IF: index of its RULE_ENDIF */
    char *key;       /* exact-match tables */
    char *value;     /* lookup result */
};

struct table {
    enum table_type type;
    char *name; /* the "type:name" spec, for messages */
    struct rule *rules;
    size_t nrules;
    size_t cap;
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
        if (*depth >= 32) {
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

struct cidr_ctx {
    struct table *t;
    size_t stack[32];
    size_t depth;
};

/* read_logical_lines() callback for cidr files. */
static int cidr_file_line(void *vctx, char *line, int lineno, char *err, size_t errlen)
{
    struct cidr_ctx *c = vctx;

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
    struct cidr_ctx *c = vctx;

    return cidr_line(c->t, el, c->stack, &c->depth, err, errlen);
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
        struct cidr_ctx c = {.t = t};
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
    } else if (tl == 6 && strncasecmp(spec, "static", 6) == 0) {
        t->type = TABLE_STATIC;
        struct rule *r = add_rule(t);
        r->value = body ? xstrdup(trim(body)) : xstrdup(name);
    } else {
        snprintf(err, errlen,
                 "table \"%s\": unsupported table type \"%.*s\" (mxscreen has cidr, inline, "
                 "texthash and static)",
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
        free(t->rules[i].key);
        free(t->rules[i].value);
    }
    free(t->rules);
    free(t->name);
    free(t);
}

/* Exact-match lookup of KEY; case is folded, as Postfix does for these tables. */
const char *table_lookup(const struct table *t, const char *key)
{
    switch (t->type) {
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
        memset(&ep, 0, sizeof(ep));
        if (!addr_parse(key, &ep.sa, &ep.salen))
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
