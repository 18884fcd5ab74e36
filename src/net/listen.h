/*
 * listen - listening sockets for mxscreen_listen
 *
 * listen_open() binds and listens on one "host:port", "[v6]:port" or
 * "*:port" entry ("*" is every IPv4 and IPv6 address: one dual-stack
 * socket, or IPv4 only on a host without IPv6).  Sockets are
 * non-blocking and close-on-exec.  Errors name the address and the cause.
 * With REUSEPORT (mxscreen_reuseport), several mxscreen processes may
 * listen on the same port and the kernel spreads the connections.
 */
#ifndef MXS_LISTEN_H
#define MXS_LISTEN_H

#include <stdbool.h>
#include <stddef.h>

#include "net/addr.h"

int listen_open(const char *text, bool reuseport, char *err, size_t errlen);

#endif
