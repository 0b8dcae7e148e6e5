/* GET /statistics/devices and /statistics/service (docs/protocol.md §8.11), and GET /iotdm/stats:
 * the hub's connection counts, limits and refusal counters (our extension, docs/service-api.md). */
#include <string.h>

#include "hub/cluster/cluster.h"
#include "hub/http/internal.h"
#include "hub/net/refusals.h"

typedef struct {
    http_ctx cx;
    hub_device_stats stats;
} stats_ctx;

static iotdm_result count_run(hub_work *w, hub_store *store)
{
    return hub_store_device_stats(store, &((stats_ctx *)w)->stats);
}

static void devices_done(http_ctx *cx)
{
    hub_device_stats *s = &((stats_ctx *)cx)->stats;
    if (cx->w.result < 0)
        http_send_result_error(cx, cx->w.result, "cannot count devices");
    else
        http_send_json(cx, 200,
                       json_pack("{s:I, s:I, s:I}", "totalDeviceCount", (json_int_t)s->total,
                                 "enabledDeviceCount", (json_int_t)s->enabled,
                                 "disabledDeviceCount", (json_int_t)s->disabled));
}

static void statistics_devices(http_ctx *cx)
{
    http_run(cx, count_run, devices_done, HUB_WORK_SNAPSHOT);
}

static void service_done(http_ctx *cx)
{
    hub_device_stats *s = &((stats_ctx *)cx)->stats;
    if (cx->w.result < 0)
        http_send_result_error(cx, cx->w.result, "cannot count devices");
    else
        http_send_json(cx, 200,
                       json_pack("{s:I}", "connectedDeviceCount", (json_int_t)s->connected));
}

/* Alone, the hub's own directory knows; in a cluster, the devices' rows do (every node writes
 * the state of the connections it holds). */
static void statistics_service(http_ctx *cx)
{
    if (cx->h->cluster) {
        http_run(cx, count_run, service_done, HUB_WORK_SNAPSHOT);
        return;
    }
    http_send_json(
        cx, 200, json_pack("{s:I}", "connectedDeviceCount", (json_int_t)hub_dir_count(cx->h->dir)));
}

static void stats(http_ctx *cx)
{
    hub *h = cx->h;
    size_t mqtt = 0, https = 0;
    json_t *per_loop = json_array();
    for (unsigned i = 0; i < h->nloops; i++) {
        /* Read from another loop's thread: a count, good enough for a status page. */
        size_t m = hub_mqtt_loop_connections(&h->loops[i]);
        size_t s2 = hub_http_loop_connections(&h->loops[i]);
        mqtt += m;
        https += s2;
        json_array_append_new(
            per_loop, json_pack("{s:I, s:I}", "mqtt", (json_int_t)m, "https", (json_int_t)s2));
    }
    hub_admission_stats a;
    hub_admission_get_stats(h->admission, &a);
    hub_exec_stats e;
    hub_exec_get_stats(h->exec, &e);
    json_t *refused = json_object();
    for (int k = 0; k < HUB_REFUSED_COUNT_; k++)
        json_object_set_new(refused, hub_refusal_name((hub_refusal)k),
                            json_integer((json_int_t)hub_refusal_count((hub_refusal)k)));
    const hub_net_limits *l = &h->cfg.limits;
    json_t *limits = json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
        "maxConnections", (json_int_t)l->max_connections, "maxPendingPerSource",
        (json_int_t)l->max_pending_per_source, "handshakeTimeoutSeconds",
        (json_int_t)l->handshake_timeout_s, "headerTimeoutSeconds", (json_int_t)l->header_timeout_s,
        "requestTimeoutSeconds", (json_int_t)l->request_timeout_s, "uploadTimeoutSeconds",
        (json_int_t)l->upload_timeout_s, "idleTimeoutSeconds", (json_int_t)l->idle_timeout_s,
        "stallTimeoutSeconds", (json_int_t)l->stall_timeout_s, "outputLimitBytes",
        (json_int_t)l->output_limit, "maxInflight", (json_int_t)l->max_inflight, "bodyMemoryBytes",
        (json_int_t)l->body_memory, "uploadMaxBytes", (json_int_t)h->cfg.upload_max_bytes,
        "uploadQuotaBytes", (json_int_t)h->cfg.upload_quota_bytes, "uploadMaxFiles",
        (json_int_t)h->cfg.upload_max_files, "diskReserveBytes",
        (json_int_t)h->cfg.disk_reserve_bytes);
    json_t *body = json_pack(
        "{s:{s:I, s:I, s:I, s:I}, s:o, s:o, s:{s:I, s:I, s:I, s:I, s:b}, s:I}", "connections",
        "mqtt", (json_int_t)mqtt, "https", (json_int_t)https, "pending", (json_int_t)a.pending,
        "admitted", (json_int_t)a.connections, "refused", refused, "limits", limits, "store",
        "units", (json_int_t)e.units, "groups", (json_int_t)e.groups, "syncs", (json_int_t)e.syncs,
        "queued", (json_int_t)e.queued, "diskLow", e.disk_low, "loops", (json_int_t)h->nloops);
    json_object_set_new(body, "perLoop", per_loop);
    http_send_json(cx, 200, body);
}

/* GET /iotdm/health, without credentials, for load balancers (docs/cluster.md): 200 while this
 * node serves (and, in a cluster, its bus reaches the database), 503 otherwise. Says nothing a
 * stranger could use beyond that. */
static void health(http_ctx *cx)
{
    hub *h = cx->h;
    bool ok = !atomic_load(&h->stopping) && (!h->cluster || hub_cluster_healthy(h->cluster));
    json_t *body = json_pack("{s:s}", "status", ok ? "ok" : "unavailable");
    if (h->cluster && body) {
        json_object_set_new(body, "node", json_string(hub_cluster_node_id(h->cluster)));
        json_object_set_new(body, "nodes", json_integer(hub_cluster_nodes(h->cluster)));
    }
    http_send_json(cx, ok ? 200 : 503, body);
}

const http_route http_statistics_routes[] = {
    {"iotdm/health", HTTPD_GET, HTTP_AUTH_NONE, 0, HTTP_BODY_NONE, false, NULL, health, 0},
    {"statistics/devices", HTTPD_GET, HTTP_AUTH_POLICY, HUB_RIGHT_REGISTRY_READ, HTTP_BODY_NONE,
     false, NULL, statistics_devices, sizeof(stats_ctx)},
    {"statistics/service", HTTPD_GET, HTTP_AUTH_POLICY, HUB_RIGHT_SERVICE_CONNECT, HTTP_BODY_NONE,
     false, NULL, statistics_service, sizeof(stats_ctx)},
    {"iotdm/stats", HTTPD_GET, HTTP_AUTH_POLICY, HUB_RIGHT_SERVICE_CONNECT, HTTP_BODY_NONE, false,
     NULL, stats, 0},
    {NULL, 0, 0, 0, 0, false, NULL, NULL, 0},
};
