/*
 * addrlist - Postfix address-match lists (mynetworks, allowlist interfaces)
 *
 * A list of patterns separated by commas and white space: "a.b.c.d",
 * "net/bits", "[ipv6]", "[ipv6]/bits", "!pattern" (a match means "not in
 * the list"), "/file/name" (more patterns, read at load time) and
 * "type:table" (a key match, the value ignored).  Evaluated left to right,
 * first match wins.  Host names are refused at load time: matching must not
 * depend on DNS.
 */
#ifndef MXS_ADDRLIST_H
#define MXS_ADDRLIST_H

#include <stdbool.h>
#include <stddef.h>

#include "net/addr.h"

struct addrlist;

struct addrlist *addrlist_parse(const char *text, char *err, size_t errlen);
void addrlist_free(struct addrlist *l);
bool addrlist_match(const struct addrlist *l, const struct endpoint *ep);

#endif
