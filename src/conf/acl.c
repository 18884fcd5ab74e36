/*
 * acl - postscreen_access_list; see acl.h.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf/acl.h"
#include "conf/table.h"
#include "log/log.h"
#include "util/list.h"
#include "util/mem.h"

enum acl_item_kind {
    ACL_ITEM_PERMIT_MYNETWORKS,
    ACL_ITEM_PERMIT,
    ACL_ITEM_REJECT,
    ACL_ITEM_DUNNO,
    ACL_ITEM_TABLE,
};

struct acl_item {
    enum acl_item_kind kind;
    struct table *tab; /* ACL_ITEM_TABLE */
};

struct acl {
    struct acl_item *items;
    size_t n;
    const struct addrlist *mynetworks; /* owned by the caller */
};

/* The item a word stands for, or -1. */
static int word_kind(const char *w, size_t len)
{
    static const struct {
        const char *word;
        enum acl_item_kind kind;
    } words[] = {
        {"permit_mynetworks", ACL_ITEM_PERMIT_MYNETWORKS},
        {"permit", ACL_ITEM_PERMIT},
        {"reject", ACL_ITEM_REJECT},
        {"dunno", ACL_ITEM_DUNNO},
    };
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (strlen(words[i].word) == len && strncasecmp(words[i].word, w, len) == 0)
            return (int)words[i].kind;
    return -1;
}

/* Parse the configured access list. */
struct acl *acl_parse(const char *text, const struct addrlist *mynetworks, char *err, size_t errlen)
{
    struct acl *a = xcalloc(1, sizeof(*a));
    size_t cap = 0;
    const char *cursor = text, *s;
    size_t len;

    a->mynetworks = mynetworks;
    while ((s = list_next(&cursor, &len)) != NULL) {
        const char *p = s + len;
        if (a->n == cap) {
            cap = cap ? cap * 2 : 4;
            a->items = xrealloc(a->items, cap * sizeof(*a->items));
        }
        struct acl_item *it = &a->items[a->n];
        memset(it, 0, sizeof(*it));
        int kind = word_kind(s, (size_t)(p - s));
        if (kind >= 0) {
            it->kind = (enum acl_item_kind)kind;
        } else if (memchr(s, ':', (size_t)(p - s)) != NULL) {
            char *spec = xstrndup(s, (size_t)(p - s));
            it->kind = ACL_ITEM_TABLE;
            it->tab = table_open(spec, err, errlen);
            free(spec);
            if (it->tab == NULL) {
                acl_free(a);
                return NULL;
            }
        } else {
            snprintf(err, errlen,
                     "unknown command: %.*s (expected permit_mynetworks, permit, "
                     "reject, dunno or type:table)",
                     (int)(p - s), s);
            acl_free(a);
            return NULL;
        }
        a->n++;
    }
    return a;
}

/* Release an access list. */
void acl_free(struct acl *a)
{
    if (a == NULL)
        return;
    for (size_t i = 0; i < a->n; i++)
        table_free(a->items[i].tab);
    free(a->items);
    free(a);
}

/*
 * Evaluate a table's result: a list of words, no tables.  Returns 1 when
 * it decided (*V set), 0 for "go on with the outer list", -1 to stop with
 * no decision (dunno or an error).
 */
static int eval_result(const struct acl *a, const struct table *t, const char *result,
                       const struct endpoint *client, enum acl_verdict *v)
{
    const char *cursor = result, *s;
    size_t len;

    while ((s = list_next(&cursor, &len)) != NULL) {
        const char *p = s + len;
        switch (word_kind(s, (size_t)(p - s))) {
        case ACL_ITEM_PERMIT_MYNETWORKS:
            if (a->mynetworks && addrlist_match(a->mynetworks, client)) {
                *v = ACL_PERMIT;
                return 1;
            }
            break;
        case ACL_ITEM_PERMIT:
            *v = ACL_PERMIT;
            return 1;
        case ACL_ITEM_REJECT:
            *v = ACL_REJECT;
            return 1;
        case ACL_ITEM_DUNNO:
            return 0;
        default:
            if (memchr(s, ':', (size_t)(p - s)) != NULL) {
                char esc[LOG_ESCAPE_BUFSZ];
                log_escape(esc, sizeof(esc), result, strlen(result), LOG_PEER_TEXT_MAX);
                msg_warn("table %s: lookup result \"%s\" is not allowed -- ignoring remainder "
                         "of access list",
                         table_name(t), esc);
            } else {
                msg_warn("postscreen_access_list: unknown command: %.*s -- ignoring the "
                         "remainder of this access list",
                         (int)(p - s > 100 ? 100 : p - s), s);
            }
            return -1;
        }
    }
    return 0;
}

/* Evaluate the access list for CLIENT. */
enum acl_verdict acl_eval(const struct acl *a, const struct endpoint *client)
{
    enum acl_verdict v = ACL_DUNNO;

    for (size_t i = 0; i < a->n; i++) {
        const struct acl_item *it = &a->items[i];
        switch (it->kind) {
        case ACL_ITEM_PERMIT_MYNETWORKS:
            if (a->mynetworks && addrlist_match(a->mynetworks, client))
                return ACL_PERMIT;
            break;
        case ACL_ITEM_PERMIT:
            return ACL_PERMIT;
        case ACL_ITEM_REJECT:
            return ACL_REJECT;
        case ACL_ITEM_DUNNO:
            return ACL_DUNNO;
        case ACL_ITEM_TABLE: {
            const char *r = table_lookup_addr(it->tab, client);
            if (r == NULL)
                break;
            int rc = eval_result(a, it->tab, r, client, &v);
            if (rc != 0)
                return rc > 0 ? v : ACL_DUNNO;
            /* "dunno" inside a table returns to the outer list. */
            break;
        }
        }
    }
    return ACL_DUNNO;
}
