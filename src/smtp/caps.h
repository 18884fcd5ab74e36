/*
 * caps - what the backend MTA offers in its EHLO reply, and what a
 * client's MAIL and RCPT commands need from it
 *
 * When mxscreen replays a client to the backend after the deep tests
 * (mxscreen_deep_test_handoff = replay), its own EHLO reply was the
 * client's only view of the server: it must not offer what the backend
 * cannot do.
 *
 *   caps_parse()    the keywords (and SIZE) of an EHLO reply, e.g.
 *                   "250-mx.example\r\n250-SIZE 1000\r\n250 DSN\r\n";
 *                   false when it is not a 250 reply
 *   caps_needed()   the keywords that the parameters of one MAIL or RCPT
 *                   command line use (SIZE, BODY=8BITMIME, SMTPUTF8,
 *                   RET/ENVID/NOTIFY/ORCPT for DSN)
 *   caps_names()    keyword names of a mask, for log lines
 *   caps_same()     two learned sets are equal
 *   caps_starttls() STARTTLS is offered
 *
 * The masks are the engine's EHLO_* bits (engine_int.h).  Pure functions
 * over text; no I/O.
 */
#ifndef MXS_CAPS_H
#define MXS_CAPS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

struct ehlo_caps {
    bool known;     /* learned at least once */
    unsigned mask;  /* EHLO_* keywords offered */
    long long size; /* SIZE's limit; 0 when SIZE has no number (no limit) */
};

bool caps_parse(struct ehlo_caps *caps, const char *reply, size_t len);
unsigned caps_needed(const char *line);
void caps_names(char *buf, size_t len, unsigned mask);
bool caps_same(const struct ehlo_caps *a, const struct ehlo_caps *b);
bool caps_starttls(const struct ehlo_caps *caps);

#endif
