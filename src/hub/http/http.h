/* The hub's HTTPS server: Azure's service REST API, the /iotdm extensions, the dashboard. One per
 * event loop, each with its own listener on the shared port (SO_REUSEPORT). */
#ifndef IOTDM_HUB_HTTP_H
#define IOTDM_HUB_HTTP_H

#include "hub/hub.h"

/* Binds cfg.listen_addr:cfg.https_port for the loop and starts serving it. */
IOTDM_NODISCARD iotdm_result hub_http_loop_init(hub_loop *loop);
/* Stops listening and closes every connection (unanswered requests are aborted). */
void hub_http_loop_close(hub_loop *loop);
void hub_http_loop_deinit(hub_loop *loop);
size_t hub_http_loop_connections(const hub_loop *loop);

/* The DTDL models served at /iotdm/models, read once at start (models.c). */
IOTDM_NODISCARD iotdm_result hub_models_load(hub *h);
void hub_models_free(hub *h);

#endif
