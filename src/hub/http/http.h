/* The hub's HTTPS server: Azure's service REST API, the /iotdm extensions, the dashboard. */
#ifndef IOTDM_HUB_HTTP_H
#define IOTDM_HUB_HTTP_H

#include "hub/hub.h"

hub_http *hub_http_new(hub *h); /* binds cfg.listen_addr:cfg.https_port */
void hub_http_free(hub_http *http);

#endif
