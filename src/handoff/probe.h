/*
 * probe - keep the backend's EHLO keywords known
 *
 * With mxscreen_deep_test_handoff = replay, the SMTP engine offers a
 * client only the EHLO keywords the backend offers too (engine.h), so it
 * must know them before the first client asks.  probe_start() asks the
 * backend at once (handoff_probe(): a connection of mxscreen's own, EHLO,
 * QUIT) and again every mxscreen_backend_probe_interval; each replay
 * refreshes the same record.  Until a first answer the engine offers
 * postscreen's own list.
 *
 * Logging is per change, not per probe: the keywords when they change
 * (handoff.c), one warning when the backend stops answering probes (and
 * it is then asked every 30 seconds at most), one line when it answers
 * again.
 *
 * CURRENT points at the settings in force (read at each probe; a reload
 * may change them).  probe_free() cancels a probe in flight.
 */
#ifndef MXS_PROBE_H
#define MXS_PROBE_H

#include <event2/event.h>

struct probe;
struct settings;
struct ehlo_caps;

struct probe *probe_start(struct event_base *base, struct settings *const *current,
                          struct ehlo_caps *caps);
void probe_free(struct probe *p);

#endif
