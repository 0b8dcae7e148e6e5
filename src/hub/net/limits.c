/* Default resource limits (the values are documented in limits.h and docs/hub.md). */
#include "hub/net/limits.h"

#include <string.h>

void hub_net_limits_defaults(hub_net_limits *l)
{
    memset(l, 0, sizeof *l);
    l->max_connections = 0; /* derived from the descriptor limit when admission starts */
    l->max_pending_per_source = HUB_NET_DEFAULT_MAX_PENDING_PER_SOURCE;
    l->handshake_timeout_s = HUB_NET_DEFAULT_HANDSHAKE_TIMEOUT_S;
    l->header_timeout_s = HUB_NET_DEFAULT_HEADER_TIMEOUT_S;
    l->request_timeout_s = HUB_NET_DEFAULT_REQUEST_TIMEOUT_S;
    l->upload_timeout_s = HUB_NET_DEFAULT_UPLOAD_TIMEOUT_S;
    l->idle_timeout_s = HUB_NET_DEFAULT_IDLE_TIMEOUT_S;
    l->stall_timeout_s = HUB_NET_DEFAULT_STALL_TIMEOUT_S;
    l->output_limit = HUB_NET_DEFAULT_OUTPUT_LIMIT;
    l->max_inflight = HUB_NET_DEFAULT_MAX_INFLIGHT;
    l->body_memory = HUB_NET_DEFAULT_BODY_MEMORY;
}
