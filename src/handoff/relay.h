/*
 * relay - join two sockets with splice(2), both ways, with back-pressure
 *
 * relay_start() takes ownership of two connected, non-blocking sockets and
 * moves bytes between them through a pipe per direction, without copying
 * them into user space.  A direction stops reading while its pipe holds
 * bytes the other socket cannot take yet, so a slow reader never makes
 * mxscreen buffer more than one pipe (64 KiB) per direction.  When one
 * side ends its sending, the other side's sending half is shut down once
 * the pipe is drained.  A side that can no longer be written to ends
 * that direction, but is still read to its end (a reply sent just before
 * a reset still reaches the other side); a read error counts as an end of
 * file.  When both directions have ended, or after IDLE seconds without a
 * byte either way, everything is closed and FN(CTX, why) is called.  The relay frees itself after
 * that call: the caller must not use it afterwards.
 */
#ifndef MXS_RELAY_H
#define MXS_RELAY_H

#include <event2/event.h>
#include <time.h>

enum relay_end {
    RELAY_DONE,  /* both sides ended cleanly */
    RELAY_ERROR, /* a socket error (reset, broken pipe) */
    RELAY_IDLE,  /* no byte either way for the idle time */
};

typedef void (*relay_done_fn)(void *ctx, enum relay_end why);

struct relay;

struct relay *relay_start(struct event_base *base, int a, int b, time_t idle, relay_done_fn fn,
                          void *ctx);

#endif
