/*
 * conf - main.cf syntax, $name expansion, typed and checked values
 *
 * conf_load() reads a file in Postfix main.cf syntax (comments, blank
 * lines, continuation lines that start with white space, "name = value"),
 * applies "-o name=value" overrides, expands every known parameter
 * ($name, ${name}, $(name), ${name?text}, ${name:text},
 * ${name?{text}:{text}}, ${{a} op {b}?{x}:{y}}, $$) and checks it against
 * the parameter table (params.h).  Values are computed twice, once as if
 * under stress (the "stress" variable set to "yes") and once not, so that
 * ${stress?{2}:{6}}s works as in postscreen.
 *
 * The result is immutable: reload builds a new struct conf and swaps it in.
 *
 * Errors: conf_load() returns NULL and fills ERR with one line naming the
 * file, the line, the parameter and the value.  Unknown postscreen_* and
 * mxscreen_* names draw a warning (msg_warn); other unknown names (the rest
 * of a Postfix main.cf) are ignored.
 */
#ifndef MXS_CONF_H
#define MXS_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "conf/params.h"
#include "util/sbuf.h"

struct conf;

struct conf *conf_load(const char *path, const char *const *overrides, size_t noverrides, char *err,
                       size_t errlen);
struct conf *conf_load_text(const char *name, const char *text, const char *const *overrides,
                            size_t noverrides, char *err, size_t errlen);
void conf_free(struct conf *cf);

const char *conf_str(const struct conf *cf, enum param_id id);
long long conf_num(const struct conf *cf, enum param_id id);
long long conf_num_stress(const struct conf *cf, enum param_id id, bool stress);
bool conf_bool(const struct conf *cf, enum param_id id);
bool conf_is_set(const struct conf *cf, enum param_id id);
const char *conf_where(const struct conf *cf, enum param_id id, char *buf, size_t len);
const char *conf_path(const struct conf *cf);

int conf_expand(const struct conf *cf, const char *text, bool stress, struct sbuf *out, char *err,
                size_t errlen);
void conf_print_nondefault(const struct conf *cf, FILE *fp);

int conf_parse_time(const char *text, char unit, long long *secs);
int conf_parse_int(const char *text, long long *val);
int conf_parse_bool(const char *text, bool *val);

#endif
