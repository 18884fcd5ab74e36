/*
 * fuzz_table - lookup tables, address lists and the access list
 * (src/conf/table.c, src/conf/addrlist.c, src/conf/acl.c)
 *
 * Input: one byte choosing what to build, then its text, then (after a
 * NUL) lookup keys separated by NULs.  What the first byte (mod 12)
 * builds:
 *    0 cidr:{...}      1 cidr: file      2 inline:{...}   3 texthash: file
 *    4 regexp:{...}    5 regexp: file    6 pcre:{...}     7 pcre: file
 *    8 static:TEXT     9 an address list (mynetworks syntax)
 *   10 an access list (postscreen_access_list)   11 a "type:name" spec
 * Files are memfds (fuzz.h); no input can open a real file.
 * Checked:
 *   - a failed open says why, NUL-terminated within its buffer
 *   - every lookup (the input's keys and some fixed ones) gives NULL or a
 *     string, and the same one when asked again
 *   - cidr: a key looked up as text and as an address agree; other
 *     tables: an address is looked up by its printable form
 *   - address lists and access lists answer for IPv4 and IPv6 clients
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf/acl.h"
#include "conf/addrlist.h"
#include "conf/table.h"
#include "fuzz.h"
#include "util/mem.h"
#include "util/sbuf.h"

#define MAX_KEYS 8

static const char *const fixed_keys[] = {
    "192.0.2.1", "10.1.2.3", "127.0.0.1", "2001:db8::1", "::ffff:192.0.2.1",
    "::1",       "",         "CONNECT",   "MAIL",        "user@example.com",
};

static struct addrlist *mynetworks;

/*
 * glibc's regcomp() copies a subexpression for every repetition it is
 * under ("x+" is "xx*", "x{n}" n copies): stacked operators such as
 * /EHLO+++++...+/ need memory exponential in their number, in mxscreen as
 * in Postfix (an operator's own regexp: table; not a parser bug).  Inputs
 * whose worst case (every operator applied to the whole text) passes
 * 2^22 tree nodes are skipped.
 */
static bool regcomp_too_big(const uint8_t *p, size_t n)
{
    double nodes = (double)n + 1;

    for (size_t i = 0; i < n; i++) {
        if (p[i] == '+')
            nodes *= 2;
        if (p[i] == '{') {
            unsigned long most = 0, v = 0;
            for (size_t j = i + 1; j < n && ((p[j] >= '0' && p[j] <= '9') || p[j] == ','); j++) {
                v = p[j] == ',' ? 0 : v * 10 + (unsigned long)(p[j] - '0');
                if (v > most)
                    most = v < 100000 ? v : 100000;
            }
            nodes *= (double)most + 1;
        }
    }
    return nodes > (double)(1 << 22);
}

/* KEY as a client endpoint, when it is an address. */
static bool key_endpoint(const char *key, struct endpoint *ep)
{
    struct sockaddr_storage ss;
    socklen_t len;

    return addr_parse(key, &ss, &len) && endpoint_set(ep, (struct sockaddr *)&ss, len) == 0;
}

/* Look KEY up in T and check the answer. */
static void check_lookup(const struct table *t, const char *key, bool cidr)
{
    const char *v = table_lookup(t, key);
    char *copy = v ? xstrdup(v) : NULL;
    const char *again = table_lookup(t, key);

    FUZZ_CHECK((v == NULL) == (again == NULL));
    FUZZ_CHECK(v == NULL || strcmp(copy, again) == 0);
    struct endpoint ep;
    if (key_endpoint(key, &ep)) {
        const char *want = cidr ? copy : table_lookup(t, ep.addr);
        char *wcopy = want ? xstrdup(want) : NULL;
        const char *byaddr = table_lookup_addr(t, &ep);
        FUZZ_CHECK((byaddr == NULL) == (wcopy == NULL));
        FUZZ_CHECK(byaddr == NULL || strcmp(byaddr, wcopy) == 0);
        free(wcopy);
    }
    free(copy);
}

/* Ask list L or access list A about KEY, when it is an address. */
static void check_lists(const struct addrlist *l, const struct acl *a, const char *key)
{
    struct endpoint ep;

    if (!key_endpoint(key, &ep))
        return;
    if (l) {
        bool m = addrlist_match(l, &ep);
        FUZZ_CHECK(addrlist_match(l, &ep) == m);
    }
    if (a) {
        enum acl_verdict v = acl_eval(a, &ep);
        FUZZ_CHECK(v == ACL_DUNNO || v == ACL_PERMIT || v == ACL_REJECT);
        FUZZ_CHECK(acl_eval(a, &ep) == v);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const types[] = {"cidr",   "cidr",   "inline", "texthash",
                                        "regexp", "regexp", "pcre",   "pcre"};
    const char *keys[MAX_KEYS + sizeof(fixed_keys) / sizeof(fixed_keys[0])];
    size_t nkeys = 0;
    char err[512];
    struct table *t = NULL;
    struct addrlist *l = NULL;
    struct acl *a = NULL;

    if (mynetworks == NULL) {
        fuzz_init();
        mynetworks = addrlist_parse("127.0.0.0/8 [::1]/128 192.0.2.0/24", err, sizeof(err));
        FUZZ_CHECK(mynetworks != NULL);
    }
    if (size < 1)
        return 0;
    int mode = data[0] % 12;
    const uint8_t *body = data + 1, *nul = memchr(body, '\0', size - 1);
    size_t blen = nul ? (size_t)(nul - body) : size - 1;

    /* regexp: tables, or lists that may hold an inline one. */
    if ((mode == 4 || mode == 5 || mode >= 9) && regcomp_too_big(body, blen))
        return 0;

    /* The keys: NUL-separated after the text, then the fixed ones. */
    size_t klen = nul ? size - 1 - blen - 1 : 0;
    char *keytext = xmalloc(klen + 1);
    if (klen)
        memcpy(keytext, nul + 1, klen);
    keytext[klen] = '\0';
    for (size_t off = 0; nul && off <= klen && nkeys < MAX_KEYS;) {
        keys[nkeys++] = keytext + off;
        off += strlen(keytext + off) + 1;
    }
    for (size_t i = 0; i < sizeof(fixed_keys) / sizeof(fixed_keys[0]); i++)
        keys[nkeys++] = fixed_keys[i];

    struct sbuf spec = SBUF_INIT;
    switch (mode) {
    case 0:
    case 2:
    case 4:
    case 6:
        sbuf_printf(&spec, "%s:{", types[mode]);
        sbuf_addn(&spec, (const char *)body, blen);
        sbuf_addc(&spec, '}');
        break;
    case 1:
    case 3:
    case 5:
    case 7:
        sbuf_printf(&spec, "%s:%s", types[mode], fuzz_file(body, blen));
        break;
    case 8:
        sbuf_adds(&spec, "static:");
        sbuf_addn(&spec, (const char *)body, blen);
        break;
    default:
        sbuf_addn(&spec, (const char *)body, blen);
        break;
    }

    memset(err, 'X', sizeof(err));
    if (mode == 9) {
        l = addrlist_parse(sbuf_str(&spec), err, sizeof(err));
        FUZZ_CHECK(l != NULL || (memchr(err, '\0', sizeof(err)) && err[0] != '\0'));
    } else if (mode == 10) {
        a = acl_parse(sbuf_str(&spec), mynetworks, err, sizeof(err));
        FUZZ_CHECK(a != NULL || (memchr(err, '\0', sizeof(err)) && err[0] != '\0'));
    } else {
        t = table_open(sbuf_str(&spec), err, sizeof(err));
        FUZZ_CHECK(t != NULL || (memchr(err, '\0', sizeof(err)) && err[0] != '\0'));
    }
    bool cidr = mode <= 1 || (mode == 11 && strncasecmp(sbuf_str(&spec), "cidr:", 5) == 0);
    for (size_t i = 0; i < nkeys; i++) {
        if (t)
            check_lookup(t, keys[i], cidr);
        check_lists(l, a, keys[i]);
    }
    table_free(t);
    addrlist_free(l);
    acl_free(a);
    sbuf_free(&spec);
    free(keytext);
    return 0;
}
