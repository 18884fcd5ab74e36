/*
 * table - Postfix lookup tables: cidr:, inline:, static:, texthash:
 *
 * table_open() parses a "type:name" specification once, at start-up or
 * reload, and keeps the whole table in memory.  cidr: takes a file in
 * Postfix's dict_cidr format (first match wins, "!" negation, IF/ENDIF,
 * IPv4 and IPv6) or an inline "cidr:{{rule}, {rule}}" list; inline: and
 * texthash: hold exact keys; static: answers every key.
 *
 * Unlike Postfix, a malformed rule is an error (naming the file and line)
 * rather than a warning: a table that silently drops a rule can let
 * through what the operator meant to stop.
 *
 * table_lookup() finds a string key (for inline:, texthash:, static:);
 * table_lookup_addr() matches an address (cidr: by network, the others by
 * the printable address).  Both return the value, owned by the table, or
 * NULL when nothing matches.
 */
#ifndef MXS_TABLE_H
#define MXS_TABLE_H

#include <stddef.h>

#include "net/addr.h"

struct table;

struct table *table_open(const char *spec, char *err, size_t errlen);
void table_free(struct table *t);
const char *table_lookup(const struct table *t, const char *key);
const char *table_lookup_addr(const struct table *t, const struct endpoint *ep);
const char *table_name(const struct table *t);

#endif
