/* Hub lifecycle: data directory, TLS, store and its executor, policies, event loops, listeners,
 * housekeeping, and routing work to the loop that holds a device. */
#include "hub/hub.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/atomic_file.h"
#include "common/base64.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "hub/cluster/cluster.h"
#include "hub/core/work.h"
#include "hub/dps/dps.h"
#include "hub/events.h"
#include "hub/http/http.h"
#include "hub/housekeeping.h"
#include "hub/jobs/jobs.h"
#include "hub/methods.h"
#include "hub/net/refusals.h"
#include "hub/net/tls.h"

static const struct {
    const char *name;
    unsigned rights;
} default_policies[] = {
    {"iothubowner", HUB_RIGHT_REGISTRY_READ | HUB_RIGHT_REGISTRY_WRITE | HUB_RIGHT_SERVICE_CONNECT |
                        HUB_RIGHT_DEVICE_CONNECT},
    {"service", HUB_RIGHT_SERVICE_CONNECT},
    {"device", HUB_RIGHT_DEVICE_CONNECT},
    {"registryRead", HUB_RIGHT_REGISTRY_READ},
    {"registryReadWrite", HUB_RIGHT_REGISTRY_READ | HUB_RIGHT_REGISTRY_WRITE},
    {HUB_DPS_POLICY, HUB_RIGHT_ENROLLMENT_READ | HUB_RIGHT_ENROLLMENT_WRITE},
    {HUB_UPLOAD_KEY_POLICY, 0},
};
#define NPOLICIES (sizeof default_policies / sizeof *default_policies)

static iotdm_result random_key(char *out, size_t cap)
{
    unsigned char raw[32];
    if (RAND_bytes(raw, sizeof raw) != 1)
        return IOTDM_E_INTERNAL;
    return base64_encode(raw, sizeof raw, out, cap) < 0 ? IOTDM_E_INTERNAL : IOTDM_OK;
}

static iotdm_result write_file_atomic(const char *path, const char *text, mode_t mode)
{
    return atomic_file_write(path, text, strlen(text), mode, NULL, 0);
}

/* Creates the missing default policies and loads them all: they do not change while the hub
 * runs, so every thread reads the copy without a lock. Runs before the executor starts. */
static iotdm_result load_policies(hub *h, hub_store *store)
{
    h->policies = xcalloc(NPOLICIES, sizeof *h->policies);
    if (!h->policies)
        return -ENOMEM;
    for (size_t i = 0; i < NPOLICIES; i++) {
        hub_policy *p = &h->policies[i];
        if (hub_store_policy_get(store, default_policies[i].name, p) == IOTDM_OK)
            continue;
        memset(p, 0, sizeof *p);
        snprintf(p->name, sizeof p->name, "%s", default_policies[i].name);
        p->rights = default_policies[i].rights;
        iotdm_result r = random_key(p->primary_key, sizeof p->primary_key);
        if (r == IOTDM_OK)
            r = random_key(p->secondary_key, sizeof p->secondary_key);
        if (r == IOTDM_OK)
            r = hub_store_policy_put(store, p);
        if (r < 0)
            return r;
        log_info("hub", "created shared access policy name=%s", p->name);
    }
    h->npolicies = NPOLICIES;
    iotdm_result r = hub_store_commit(store);
    if (r < 0)
        return r;
    hub_policy owner;
    if (!hub_policy_find(h, "iothubowner", &owner))
        return IOTDM_E_INTERNAL;
    char path[600], text[512];
    snprintf(path, sizeof path, "%s/owner.connstr", h->cfg.data_dir);
    snprintf(text, sizeof text, "HostName=%s;SharedAccessKeyName=iothubowner;SharedAccessKey=%s\n",
             h->cfg.hostname, owner.primary_key);
    r = write_file_atomic(path, text, 0600);
    OPENSSL_cleanse(&owner, sizeof owner);
    OPENSSL_cleanse(text, sizeof text);
    return r;
}

bool hub_policy_find(const hub *h, const char *name, hub_policy *out)
{
    for (size_t i = 0; i < h->npolicies; i++) {
        if (strcmp(h->policies[i].name, name) == 0) {
            *out = h->policies[i];
            return true;
        }
    }
    return false;
}

/* ---- routing ---- */

typedef struct {
    char client_id[HUB_ID_MAX];
    char reason[64];
    int64_t version;
    size_t len;
    char text[]; /* the patch */
} route_msg;

static route_msg *route_msg_new(const char *device_id, size_t text_len)
{
    if (strlen(device_id) >= HUB_ID_MAX)
        return NULL;
    route_msg *m = xcalloc(1, sizeof *m + text_len + 1);
    if (m)
        snprintf(m->client_id, sizeof m->client_id, "%s", device_id);
    return m;
}

/* Posts m to the loop holding the device; false (m freed) when no loop of this node holds it. */
static bool route_post(hub *h, const char *device_id, hub_task_fn fn, route_msg *m)
{
    hub_dir_entry e;
    if (m && hub_dir_lookup(h->dir, device_id, &e) && e.loop < h->nloops &&
        hub_loop_post(&h->loops[e.loop], fn, m))
        return true;
    xfree(m); /* not connected here */
    return false;
}

static void notify_task(hub_loop *loop, void *arg)
{
    route_msg *m = arg;
    if (!loop->stopping)
        hub_conn_notify_desired_local(loop, m->client_id, m->text, m->len, m->version);
    xfree(m);
}

bool hub_route_notify_desired_local(hub *h, const char *device_id, const char *patch_json,
                                    int64_t version)
{
    size_t len = strlen(patch_json);
    route_msg *m = route_msg_new(device_id, len);
    if (m) {
        memcpy(m->text, patch_json, len);
        m->len = len;
        m->version = version;
    }
    return route_post(h, device_id, notify_task, m);
}

void hub_route_notify_desired(hub *h, const char *device_id, const char *patch_json,
                              int64_t version)
{
    if (!hub_route_notify_desired_local(h, device_id, patch_json, version) && h->cluster)
        hub_cluster_notify_desired(h->cluster, device_id, patch_json, strlen(patch_json), version);
}

static void deliver_task(hub_loop *loop, void *arg)
{
    route_msg *m = arg;
    if (!loop->stopping)
        hub_conn_deliver_c2d_local(loop, m->client_id);
    xfree(m);
}

bool hub_route_deliver_c2d_local(hub *h, const char *device_id)
{
    return route_post(h, device_id, deliver_task, route_msg_new(device_id, 0));
}

void hub_route_deliver_c2d(hub *h, const char *device_id)
{
    if (!hub_route_deliver_c2d_local(h, device_id) && h->cluster)
        hub_cluster_deliver_c2d(h->cluster, device_id);
}

static void drop_task(hub_loop *loop, void *arg)
{
    route_msg *m = arg;
    if (!loop->stopping)
        hub_conn_drop_local(loop, m->client_id, m->reason);
    xfree(m);
}

bool hub_route_drop_local(hub *h, const char *device_id, const char *reason)
{
    route_msg *m = route_msg_new(device_id, 0);
    if (m)
        snprintf(m->reason, sizeof m->reason, "%s", reason);
    return route_post(h, device_id, drop_task, m);
}

void hub_route_drop(hub *h, const char *device_id, const char *reason)
{
    if (!hub_route_drop_local(h, device_id, reason) && h->cluster)
        hub_cluster_drop(h->cluster, device_id, reason);
}

/* ---- a node of the cluster gone: its devices are disconnected, with their events ---- */

#define NODE_LOST_BATCH 2000

typedef struct {
    hub_work w;
    char node[HUB_CLUSTER_NODE_ID_MAX];
    size_t count;
} node_lost_unit;

static void node_lost_event(void *ctx, const char *device_id)
{
    hub_events_connection(ctx, device_id, "", false);
}

static iotdm_result node_lost_run(hub_work *w, hub_store *store)
{
    node_lost_unit *u = (node_lost_unit *)w;
    return hub_store_device_disconnect_node(store, u->node, time_now_ms(), NODE_LOST_BATCH,
                                            node_lost_event, store, &u->count);
}

static void node_lost_submit(hub_loop *loop, node_lost_unit *u);

static void node_lost_done(hub_work *w)
{
    node_lost_unit *u = (node_lost_unit *)w;
    if (w->result == IOTDM_OK)
        log_info("hub", "devices of a lost node disconnected node=%s count=%zu", u->node, u->count);
    else
        log_warn("hub", "cannot disconnect the devices of a lost node node=%s: %s", u->node,
                 iotdm_result_message(w->result));
    if (w->result == IOTDM_OK && u->count == NODE_LOST_BATCH && !w->loop->stopping) {
        node_lost_submit(w->loop, u); /* more: one bounded unit at a time */
        return;
    }
    xfree(u);
}

static void node_lost_submit(hub_loop *loop, node_lost_unit *u)
{
    hub_work_submit(loop, &u->w, node_lost_run, node_lost_done, HUB_WORK_SINGLE);
}

static void node_lost_task(hub_loop *loop, void *arg)
{
    if (loop->stopping) {
        xfree(arg);
        return;
    }
    node_lost_submit(loop, arg);
}

void hub_devices_node_lost(hub *h, const char *node_id)
{
    node_lost_unit *u = xcalloc(1, sizeof *u);
    if (!u)
        return;
    snprintf(u->node, sizeof u->node, "%s", node_id);
    if (!hub_loop_post(&h->loops[0], node_lost_task, u))
        xfree(u);
}

/* ---- lifecycle ---- */

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    hub *h = arg;
    log_info("hub", "stopping signal=%d", (int)sig);
    atomic_store(&h->stopping, true);
    for (unsigned i = 1; i < h->nloops; i++)
        hub_loop_stop(&h->loops[i]);
    event_base_loopbreak(h->loops[0].base);
}

static iotdm_result make_dirs(const char *dir)
{
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        log_error("hub", "cannot create data directory path=%s: %s", dir, strerror(errno));
        return -errno;
    }
    return IOTDM_OK;
}

/* The connection cap: what the descriptor limit allows after the hub's own descriptors. */
static void derive_limits(hub_config *cfg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        rl.rlim_cur = 1024;
    unsigned fd_cap = rl.rlim_cur > HUB_NET_DESCRIPTOR_RESERVE * 2
                          ? (unsigned)(rl.rlim_cur - HUB_NET_DESCRIPTOR_RESERVE)
                          : (unsigned)(rl.rlim_cur / 2);
    if (cfg->limits.max_connections == 0 || cfg->limits.max_connections > fd_cap) {
        if (cfg->limits.max_connections > fd_cap)
            log_warn("hub", "max-connections lowered to %u: the descriptor limit is %llu", fd_cap,
                     (unsigned long long)rl.rlim_cur);
        cfg->limits.max_connections = fd_cap;
    }
    if (cfg->threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        cfg->threads = n > 0 ? (unsigned)n : 1;
    }
    if (cfg->threads > HUB_MAX_LOOPS)
        cfg->threads = HUB_MAX_LOOPS;
}

/* The executor made a group durable. Alone, the events it holds can be read at once; in a
 * cluster other nodes' groups interleave in the event sequence, and the bus moves the event
 * streams on (cluster.c "events"). */
static void on_durable(void *arg, int64_t last_seq)
{
    hub *h = arg;
    if (h->cluster)
        hub_cluster_events_committed(h->cluster, last_seq);
    else
        hub_events_on_durable(h, last_seq);
}

/* This node's name in the cluster: --node-id, or the machine's name with the listen address and
 * MQTT port (unique per process on a machine, stable across restarts). */
static void node_id_of(const hub_config *cfg, char *out, size_t cap)
{
    if (cfg->node_id[0]) {
        snprintf(out, cap, "%s", cfg->node_id);
        return;
    }
    char host[128] = "hub";
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "hub");
    host[sizeof host - 1] = '\0';
    char id[3 * HUB_CLUSTER_NODE_ID_MAX];
    snprintf(id, sizeof id, "%.40s-%.40s-%u", host, cfg->listen_addr, cfg->mqtt_port);
    snprintf(out, cap, "%.*s", (int)(cap - 1), id);
}

/* A PostgreSQL store makes this hub a node of a cluster (of one, or more): join it, and take the
 * cluster's identity (CA, ID scope) before the TLS set-up uses the files. */
static iotdm_result join_cluster(hub *h)
{
    if (!h->cfg.store[0] || !hub_store_is_postgresql(h->cfg.store))
        return IOTDM_OK;
    const char *node = h->cfg.node_id; /* hub_init named this node */
    /* The store is open: the schema, the cluster's tables included, is up to date. */
    iotdm_result r = hub_cluster_open(h, h->cfg.store, node, &h->cluster);
    if (r == IOTDM_OK)
        r = hub_cluster_pull_identity(h->cluster, h->cfg.data_dir);
    if (r < 0)
        log_error("hub", "cannot join the cluster: %s", iotdm_result_message(r));
    return r;
}

/* After this node made what it lacked: the first node's identity is the cluster's. */
static iotdm_result share_identity(hub *h)
{
    if (!h->cluster)
        return IOTDM_OK;
    bool changed = false;
    iotdm_result r = hub_cluster_push_identity(h->cluster, h->cfg.data_dir, &changed);
    if (r == IOTDM_OK && changed) {
        /* Two nodes started on empty data at once and the other was first: its CA is now in
         * the data directory, but this process set up TLS with its own. */
        log_error("hub", "another node created the cluster's identity at the same time; its "
                         "files replaced this node's: start this node again");
        r = IOTDM_E_UNSUPPORTED;
    }
    if (r < 0 && r != IOTDM_E_UNSUPPORTED)
        log_error("hub", "cannot share the identity with the cluster: %s", iotdm_result_message(r));
    return r;
}

/* Given the open store, brings the policies and the device rows up to date, and starts the
 * executor, which owns the store from then on. */
/* Opens (and migrates) the store: before anything else reads the database, the cluster's
 * identity included. */
static iotdm_result connect_store(hub *h, hub_store **out)
{
    char db_path[600];
    snprintf(db_path, sizeof db_path, "%s/hub.db", h->cfg.data_dir);
    const char *location = h->cfg.store[0] ? h->cfg.store : db_path;
    iotdm_result r = hub_store_open(location, out);
    if (r < 0) /* a PostgreSQL URL may hold a password: the store logged host and port already */
        log_error("hub", "cannot open store %s: %s",
                  hub_store_is_postgresql(location) ? "(postgresql)" : location,
                  iotdm_result_message(r));
    return r;
}

static iotdm_result open_store(hub *h, hub_store *store)
{
    if (h->cluster)
        hub_store_set_node(store, hub_cluster_node_id(h->cluster));
    iotdm_result r = load_policies(h, store);
    /* No connection survives a restart (in a cluster: none of this node's). */
    if (r == IOTDM_OK)
        r = hub_store_device_disconnect_all(store, time_now_ms());
    if (r == IOTDM_OK)
        r = hub_store_commit(store);
    if (r == IOTDM_OK)
        r = hub_dps_init(h);
    if (r == IOTDM_OK)
        r = hub_events_init(h, store);
    if (r < 0) {
        hub_store_close(store);
        return r;
    }
    r = hub_exec_start(store, 1, h->cfg.data_dir, on_durable, h, &h->exec);
    if (r < 0) {
        log_error("hub", "cannot start the store's threads: %s", iotdm_result_message(r));
        return r;
    }
    hub_exec_set_disk_reserve(h->exec, h->cfg.disk_reserve_bytes);
    return IOTDM_OK;
}

static iotdm_result init_loop(hub *h, unsigned i)
{
    hub_loop *loop = &h->loops[i];
    iotdm_result r = hub_loop_init(loop, h, i);
    if (r == IOTDM_OK)
        r = hub_events_loop_init(loop);
    if (r == IOTDM_OK)
        r = (loop->methods = hub_methods_new(loop)) ? IOTDM_OK : -ENOMEM;
    if (r == IOTDM_OK)
        r = hub_mqtt_loop_init(loop);
    if (r == IOTDM_OK)
        r = hub_http_loop_init(loop);
    return r;
}

static iotdm_result init_loop0_timers(hub *h)
{
    hub_loop *l0 = &h->loops[0];
    h->housekeeping_ev = event_new(l0->base, -1, EV_PERSIST, hub_housekeeping_cb, h);
    h->sigterm_ev = evsignal_new(l0->base, SIGTERM, signal_cb, h);
    h->sigint_ev = evsignal_new(l0->base, SIGINT, signal_cb, h);
    if (!h->housekeeping_ev || !h->sigterm_ev || !h->sigint_ev)
        return -ENOMEM;
    struct timeval hk = {HUB_HOUSEKEEPING_INTERVAL_S, 0};
    event_add(h->housekeeping_ev, &hk);
    event_add(h->sigterm_ev, NULL);
    event_add(h->sigint_ev, NULL);
    return IOTDM_OK;
}

iotdm_result hub_init(hub *h, const hub_config *cfg)
{
    memset(h, 0, sizeof *h);
    h->cfg = *cfg;
    h->started_ms = time_now_ms();
    /* The jobs runner names this node in its leases, with or without a cluster. */
    node_id_of(cfg, h->cfg.node_id, sizeof h->cfg.node_id);
    signal(SIGPIPE, SIG_IGN);
    derive_limits(&h->cfg);
    hub_store *store = NULL;
    iotdm_result r = make_dirs(cfg->data_dir);
    if (r == IOTDM_OK)
        r = connect_store(h, &store);
    if (r == IOTDM_OK)
        r = join_cluster(h);
    if (r < 0) {
        hub_store_close(store);
        return r;
    }
    r = hub_tls_ensure(cfg->data_dir, cfg->hostname, cfg->listen_addr);
    if (r < 0) {
        log_error("hub", "cannot create TLS material in %s", cfg->data_dir);
        hub_store_close(store);
        return r;
    }
    h->tls = hub_tls_server_ctx(cfg->data_dir, true);
    h->https_tls = hub_tls_server_ctx(cfg->data_dir, false);
    h->dir = hub_dir_new();
    h->admission =
        hub_admission_new(h->cfg.limits.max_connections, h->cfg.limits.max_pending_per_source);
    if (!h->tls || !h->https_tls || !h->dir || !h->admission) {
        hub_store_close(store);
        return IOTDM_E_INTERNAL;
    }
    r = open_store(h, store); /* the executor owns the store from here, or it is closed */
    if (r == IOTDM_OK)
        r = share_identity(h); /* after the DPS set-up made the ID scope */
    if (r == IOTDM_OK)
        r = hub_models_load(h);
    if (r < 0)
        return r;
    h->nloops = h->cfg.threads;
    for (unsigned i = 0; i < h->nloops && r == IOTDM_OK; i++)
        r = init_loop(h, i);
    if (r == IOTDM_OK)
        r = init_loop0_timers(h);
    if (r == IOTDM_OK)
        r = (h->jobs = hub_jobs_new(h)) ? IOTDM_OK : -ENOMEM;
    if (r == IOTDM_OK && h->cluster)
        r = hub_cluster_run(h->cluster);
    if (r < 0)
        return r;
    log_info("hub",
             "ready mqtt=%s:%u https=%s:%u hostname=%s loops=%u max_connections=%u "
             "disk_reserve_mb=%llu store=%s node=%s",
             cfg->listen_addr, cfg->mqtt_port, cfg->listen_addr, cfg->https_port, cfg->hostname,
             h->nloops, h->cfg.limits.max_connections,
             (unsigned long long)(h->cfg.disk_reserve_bytes >> 20),
             h->cluster ? "postgresql" : "sqlite",
             h->cluster ? hub_cluster_node_id(h->cluster) : "-");
    return IOTDM_OK;
}

iotdm_result hub_run(hub *h)
{
    iotdm_result r = IOTDM_OK;
    unsigned started = 1;
    for (; started < h->nloops && r == IOTDM_OK; started++)
        r = hub_loop_start(&h->loops[started]);
    if (r == IOTDM_OK)
        r = hub_loop_run_here(&h->loops[0]);
    atomic_store(&h->stopping, true);
    for (unsigned i = 1; i < h->nloops; i++)
        hub_loop_stop(&h->loops[i]);
    for (unsigned i = 1; i < h->nloops; i++)
        hub_loop_join(&h->loops[i]);
    return r;
}

/* Runs what the loops' inboxes still hold (completions posted by the executor as it finished,
 * and the tasks they post in turn) until all are empty. */
static void drain_loops(hub *h)
{
    size_t ran;
    do {
        ran = 0;
        for (unsigned i = 0; i < h->nloops; i++)
            if (h->loops[i].base)
                ran += hub_loop_drain(&h->loops[i]);
    } while (ran);
}

void hub_deinit(hub *h)
{
    atomic_store(&h->stopping, true);
    /* The bus posts to the loops: it stops first. What the loops still hand it is dropped. */
    hub_cluster_stop(h->cluster);
    /* Connections first: they stop submitting; those with units in flight are freed when the
     * units complete, below. */
    for (unsigned i = 0; i < h->nloops; i++) {
        hub_loop *loop = &h->loops[i];
        if (!loop->base)
            continue;
        hub_http_loop_close(loop);
        hub_mqtt_loop_close_all(loop);
        /* Units gathered in the current pass go to the executor with the rest. */
        event_active(loop->flush_ev, 0, 0);
        event_base_loop(loop->base, EVLOOP_NONBLOCK | EVLOOP_ONCE);
    }
    /* Everything submitted runs, is made durable and completes into the inboxes. */
    hub_exec_stop(h->exec);
    h->exec = NULL;
    drain_loops(h);
    for (unsigned i = 0; i < h->nloops; i++) {
        hub_loop *loop = &h->loops[i];
        if (!loop->base)
            continue;
        hub_methods_free(loop->methods);
        hub_http_loop_deinit(loop);
        hub_mqtt_loop_deinit(loop);
        hub_events_loop_deinit(loop);
    }
    drain_loops(h);
    hub_jobs_free(h->jobs); /* after the drain: its units' completions need it */
    h->jobs = NULL;
    if (h->housekeeping_ev)
        event_free(h->housekeeping_ev);
    if (h->sigterm_ev)
        event_free(h->sigterm_ev);
    if (h->sigint_ev)
        event_free(h->sigint_ev);
    for (unsigned i = 0; i < h->nloops; i++)
        if (h->loops[i].base)
            hub_loop_deinit(&h->loops[i]);
    hub_cluster_close(h->cluster);
    h->cluster = NULL;
    hub_events_deinit(h);
    hub_dps_free(h);
    hub_models_free(h);
    hub_admission_free(h->admission);
    hub_dir_free(h->dir);
    if (h->policies)
        OPENSSL_cleanse(h->policies, h->npolicies * sizeof *h->policies);
    xfree(h->policies);
    if (h->tls)
        SSL_CTX_free(h->tls);
    if (h->https_tls)
        SSL_CTX_free(h->https_tls);
}
