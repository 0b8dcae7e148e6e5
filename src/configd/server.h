/* iotdm-configd's server: the Unix socket, allow-listed peers, framed requests, one op at a time.
 */
#ifndef IOTDM_CONFIGD_SERVER_H
#define IOTDM_CONFIGD_SERVER_H

#include <event2/event.h>
#include <stddef.h>

#include "configd/backend.h"
#include "configd/config.h"

#define CFGD_MAX_CONNS         16
#define CFGD_FRAME_TIMEOUT_SEC 10 /* a frame begun must be finished within this */

typedef struct cfgd_server cfgd_server;

/* Listens on cfg->socket_path and serves on base. cfg and be are borrowed and must outlive the
 * server. Returns NULL with a message on failure. */
cfgd_server *cfgd_server_new(struct event_base *base, const cfgd_config *cfg, cfgd_backend *be,
                             char *error, size_t error_cap);
/* Closes every connection and the socket, and removes the socket file. NULL is fine. */
void cfgd_server_free(cfgd_server *srv);

#endif
