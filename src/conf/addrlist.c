/*
 * addrlist - Postfix address-match lists; see addrlist.h.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/addrlist.h"
#include "conf/table.h"
#include "util/list.h"
#include "util/mem.h"
#include "util/sbuf.h"

struct item {
    bool negate;       /* "!pattern" */
    struct cidr net;   /* when tab is NULL */
    struct table *tab; /* "type:table" */
};

struct addrlist {
    struct item *items;
    size_t n;
    size_t cap;
};

static int parse_into(struct addrlist *l, const char *text, int depth, char *err, size_t errlen);

/* Read a /file/name of patterns and add them. */
static int parse_file(struct addrlist *l, const char *path, int depth, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "r");
    struct sbuf text = SBUF_INIT;
    char line[4096];

    if (fp == NULL) {
        snprintf(err, errlen, "open %s: %s", path, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof(line), fp)) {
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        sbuf_adds(&text, line);
        sbuf_addc(&text, ' ');
    }
    fclose(fp);
    int rc = parse_into(l, sbuf_str(&text), depth + 1, err, errlen);
    sbuf_free(&text);
    return rc;
}

/* Parse one pattern into a new item. */
static int parse_item(struct addrlist *l, char *word, int depth, char *err, size_t errlen)
{
    bool negate = false;

    while (*word == '!') {
        negate = !negate;
        word++;
    }
    if (*word == '/') {
        if (negate) {
            snprintf(err, errlen, "\"!%s\": a file of patterns cannot be negated", word);
            return -1;
        }
        return parse_file(l, word, depth, err, errlen);
    }
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        l->items = xrealloc(l->items, l->cap * sizeof(*l->items));
    }
    struct item *it = &l->items[l->n];
    memset(it, 0, sizeof(*it));
    it->negate = negate;
    /* "type:table" has a colon before any digit-and-dot or bracket. */
    const char *colon = strchr(word, ':');
    if (colon && word[0] != '[' && isalpha((unsigned char)word[0]) && colon > word &&
        strspn(word, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") ==
            (size_t)(colon - word)) {
        it->tab = table_open(word, err, errlen);
        if (it->tab == NULL)
            return -1;
    } else if (cidr_parse(word, &it->net, err, errlen) < 0) {
        return -1;
    }
    l->n++;
    return 0;
}

/* Split TEXT on commas and white space ({...} kept whole) and parse each. */
static int parse_into(struct addrlist *l, const char *text, int depth, char *err, size_t errlen)
{
    const char *cursor = text, *s;
    size_t len;

    if (depth > 10) {
        snprintf(err, errlen, "pattern files nested too deeply");
        return -1;
    }
    while ((s = list_next(&cursor, &len)) != NULL) {
        char *word = xstrndup(s, len);
        int rc = parse_item(l, word, depth, err, errlen);
        free(word);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* Parse an address-match list. */
struct addrlist *addrlist_parse(const char *text, char *err, size_t errlen)
{
    struct addrlist *l = xcalloc(1, sizeof(*l));

    if (parse_into(l, text, 0, err, errlen) < 0) {
        addrlist_free(l);
        return NULL;
    }
    return l;
}

/* Release a list. */
void addrlist_free(struct addrlist *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->n; i++)
        table_free(l->items[i].tab);
    free(l->items);
    free(l);
}

/* Is EP in the list? First match wins; a negated match means no. */
bool addrlist_match(const struct addrlist *l, const struct endpoint *ep)
{
    for (size_t i = 0; i < l->n; i++) {
        const struct item *it = &l->items[i];
        bool hit = it->tab ? table_lookup_addr(it->tab, ep) != NULL
                           : cidr_match(&it->net, (const struct sockaddr *)&ep->sa);
        if (hit)
            return !it->negate;
    }
    return false;
}
