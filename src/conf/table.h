/*
 * table - Postfix lookup tables: cidr:, inline:, pcre:, regexp:, static:,
 * texthash:
 *
 * table_open() parses a "type:name" specification once, at start-up or
 * reload, and keeps the whole table in memory.  cidr: takes a file in
 * Postfix's dict_cidr format (first match wins, "!" negation, IF/ENDIF,
 * IPv4 and IPv6) or an inline "cidr:{{rule}, {rule}}" list; inline: and
 * texthash: hold exact keys; static: answers every key.  regexp: (POSIX
 * regcomp) and pcre: (PCRE2) take a file or an inline "{{rule}, {rule}}"
 * list in Postfix's regexp_table(5) and pcre_table(5) formats:
 * "/pattern/flags result", "!/pattern/ result", "IF /pattern/" ... "ENDIF",
 * any delimiter, first match wins, $1, ${1} and $$ in the result.
 *
 * Unlike Postfix, a malformed rule is an error (naming the file and line)
 * rather than a warning: a table that silently drops a rule can let
 * through what the operator meant to stop.
 *
 * table_lookup() finds a string key: inline: and texthash: with the case
 * folded, regexp: and pcre: as the pattern's flags say (case-insensitive
 * unless "i" is given), cidr: parsed as an address.  table_lookup_addr()
 * matches an address (cidr: by network, the others by the printable
 * address).  Both return NULL when nothing matches, or the value, owned by
 * the table.  A regexp: or pcre: result with $N is built in a buffer of the
 * table's, so it stays valid only until the next lookup in the same table
 * (mxscreen is single-threaded); copy it to keep it.  Every other result
 * lives as long as the table.
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
