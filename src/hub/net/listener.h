/* A listening socket on one event loop: SO_REUSEPORT so that every loop listens on the same
 * address and the kernel spreads connections, admission control, and accept() that survives
 * running out of descriptors without spinning or flooding the log. */
#ifndef IOTDM_HUB_NET_LISTENER_H
#define IOTDM_HUB_NET_LISTENER_H

#include <event2/event.h>
#include <event2/util.h>
#include <sys/socket.h>

#include "hub/net/admission.h"
#include "iotdm/result.h"

typedef struct hub_listener hub_listener;

/* A connection that passed admission. The callee owns fd (close it, or hand it to a bufferevent
 * with BEV_OPT_CLOSE_ON_FREE) and the ticket (hub_admission_leave when the connection ends). peer
 * is "ip:port" for log lines. */
typedef void (*hub_accept_fn)(void *arg, evutil_socket_t fd, const struct sockaddr *addr,
                              const char *peer, hub_admit_ticket ticket);

/* Binds addr:port (IPv4 or IPv6 literal) with SO_REUSEADDR and SO_REUSEPORT on base. what names
 * the listener in log lines ("mqtt", "https"). Accepted sockets are non-blocking, close-on-exec
 * and TCP_NODELAY. A connection that admission refuses is closed at once (no TLS), counted and
 * logged at a limited rate (refusals.h).
 *
 * When accept() fails with EMFILE or ENFILE, the listener closes one descriptor it keeps in
 * reserve, accepts and closes the waiting connection (so the peer learns at once instead of
 * waiting in the backlog), reopens the reserve, and pauses itself for a short while (a timer), so
 * that a descriptor shortage never turns into a busy loop. The failure counts as
 * HUB_REFUSED_DESCRIPTORS. */
IOTDM_NODISCARD iotdm_result hub_listener_new(struct event_base *base, const char *addr,
                                              unsigned port, const char *what,
                                              hub_admission *admission, hub_accept_fn fn, void *arg,
                                              hub_listener **out);
/* The port the listener is bound to (the one the kernel picked when port was 0). */
unsigned hub_listener_port(const hub_listener *l);
void hub_listener_free(hub_listener *l);

#endif
