/*
 * reply - what postscreen does to a reply on its way out (spec §3)
 *
 * reply_format() appends TEXT (one or more CRLF-terminated reply lines)
 * to OUT after two rewrites:
 *   soft_bounce   a reply code 5xx becomes 4xx, and an enhanced status
 *                 5.x.x becomes 4.x.x (first line, as postscreen does);
 *   footer        for 4xx and 5xx replies, the template found in
 *                 postscreen_reject_footer_maps (key: the reply text
 *                 without CRLF) or else postscreen_reject_footer, with
 *                 "\n" starting a new reply line with the same codes, a
 *                 leading "\c" continuing the last line, and the macros
 *                 $client_address, $client_port, $localtime and
 *                 $server_name (also ${name}, $(name), ${name?text},
 *                 ${name:text}, $$).  Characters of macro values outside
 *                 postscreen_expansion_filter become "_".  A template
 *                 with a syntax error adds nothing.
 * reply_soften() applies soft_bounce to a copy, for the NOQUEUE log line.
 */
#ifndef MXS_REPLY_H
#define MXS_REPLY_H

#include <stdbool.h>
#include <stddef.h>

#include "conf/table.h"
#include "util/sbuf.h"

struct reply_conf {
    bool soft_bounce;           /* soft_bounce */
    const char *footer;         /* postscreen_reject_footer ("" for none) */
    struct table **footer_maps; /* postscreen_reject_footer_maps */
    size_t nfooter_maps;
    const char *filter;      /* postscreen_expansion_filter, unescaped */
    const char *server_name; /* $myhostname */
};

struct reply_peer {
    const char *addr; /* $client_address */
    const char *port; /* $client_port */
};

void reply_format(struct sbuf *out, const struct reply_conf *rc, const char *text,
                  const struct reply_peer *peer);
void reply_soften(char *buf, size_t len, const char *text, bool soft_bounce);
int reply_expand(struct sbuf *out, const char *tmpl, size_t len, const char *filter,
                 const char *(*lookup)(const char *name, void *ctx), void *ctx);

#endif
