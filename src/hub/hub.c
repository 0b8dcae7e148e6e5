/* Hub lifecycle: data directory, TLS, store, policies, event loop, group commit, housekeeping. */
#include "hub/hub.h"

#include <errno.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/atomic_file.h"
#include "common/base64.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "hub/dps/dps.h"
#include "hub/events.h"
#include "hub/http/http.h"
#include "hub/methods.h"
#include "hub/net/tls.h"

#define PRIO_IO                 0
#define PRIO_COMMIT             1
#define HOUSEKEEPING_INTERVAL_S 10

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

static iotdm_result ensure_policies(hub *h)
{
    for (size_t i = 0; i < sizeof default_policies / sizeof *default_policies; i++) {
        hub_policy p;
        if (hub_store_policy_get(h->store, default_policies[i].name, &p) == IOTDM_OK)
            continue;
        memset(&p, 0, sizeof p);
        snprintf(p.name, sizeof p.name, "%s", default_policies[i].name);
        p.rights = default_policies[i].rights;
        iotdm_result r = random_key(p.primary_key, sizeof p.primary_key);
        if (r == IOTDM_OK)
            r = random_key(p.secondary_key, sizeof p.secondary_key);
        if (r == IOTDM_OK)
            r = hub_store_policy_put(h->store, &p);
        if (r < 0)
            return r;
        log_info("hub", "created shared access policy name=%s", p.name);
    }
    iotdm_result r = hub_store_commit(h->store);
    if (r < 0)
        return r;

    hub_policy owner;
    r = hub_store_policy_get(h->store, "iothubowner", &owner);
    if (r < 0)
        return r;
    char path[600], text[512];
    snprintf(path, sizeof path, "%s/owner.connstr", h->cfg.data_dir);
    snprintf(text, sizeof text, "HostName=%s;SharedAccessKeyName=iothubowner;SharedAccessKey=%s\n",
             h->cfg.hostname, owner.primary_key);
    return write_file_atomic(path, text, 0600);
}

static void run_list(hub_deferred *list, size_t len, iotdm_result result)
{
    for (size_t i = 0; i < len; i++)
        list[i].fn(list[i].ctx, result);
}

/* Commits the open epoch (without waiting for the disk) and hands its sync to the worker; its
 * deferred work runs when the worker reports back (synced_cb). Only one epoch is sealed at a time:
 * while a sync is in flight the open epoch keeps gathering, which makes the next group larger. */
static void seal_epoch(hub *h)
{
    if (h->sync_in_flight)
        return;
    bool had_writes = hub_store_has_pending_writes(h->store);
    iotdm_result r = hub_store_commit_nosync(h->store);
    if (had_writes)
        h->commits++;
    if (r < 0)
        log_error("hub", "commit failed: %s; acknowledgements withheld", iotdm_result_message(r));
    if (h->deferred_len == 0)
        return; /* nothing waits: the writes become durable with the next sync */
    /* Swap the lists: the sealed one was emptied when its sync finished. */
    hub_deferred *work = h->deferred;
    size_t work_len = h->deferred_len, work_cap = h->deferred_cap;
    h->deferred = h->sealed;
    h->deferred_cap = h->sealed_cap;
    h->deferred_len = 0;
    h->sealed = work;
    h->sealed_len = work_len;
    h->sealed_cap = work_cap;
    h->epoch++;
    h->committed_writes += work_len;
    if (r < 0) {
        h->sealed_len = 0;
        run_list(work, work_len, r);
        return;
    }
    h->sync_in_flight = true;
    hub_store_syncer_request(h->store);
}

static void commit_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    seal_epoch(arg);
}

static void synced_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    hub *h = arg;
    iotdm_result r = hub_store_syncer_collect(h->store);
    if (r == -EAGAIN)
        return;
    h->sync_in_flight = false;
    /* The callbacks may register work for the open epoch; they never touch the sealed list. */
    size_t len = h->sealed_len;
    h->sealed_len = 0;
    run_list(h->sealed, len, r);
    if (h->deferred_len || hub_store_has_pending_writes(h->store))
        event_active(h->commit_ev, 0, 0); /* seal what gathered meanwhile, after this pass */
}

void hub_after_commit(hub *h, hub_after_commit_fn fn, void *ctx)
{
    if (h->deferred_len == h->deferred_cap) {
        size_t cap = h->deferred_cap ? h->deferred_cap * 2 : 64;
        hub_deferred *d = xrealloc(h->deferred, cap * sizeof *d);
        if (!d) {
            /* Cannot queue the work: make everything durable now and run it. */
            fn(ctx, hub_commit_now(h));
            return;
        }
        h->deferred = d;
        h->deferred_cap = cap;
    }
    h->deferred[h->deferred_len++] = (hub_deferred){fn, ctx};
    /* Lower priority than I/O: everything readable in this pass joins the same commit. */
    event_active(h->commit_ev, 0, 0);
}

void hub_request_commit(hub *h)
{
    event_active(h->commit_ev, 0, 0);
}

iotdm_result hub_commit_now(hub *h)
{
    if (!hub_store_has_pending_writes(h->store))
        return IOTDM_OK;
    h->commits++;
    return hub_store_commit(h->store);
}

static void housekeeping_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    hub *h = arg;
    int64_t now = time_now_ms();
    size_t expired = hub_store_c2d_expire(h->store, now);
    if (expired)
        log_info("hub", "expired cloud-to-device messages count=%zu", expired);
    hub_store_telemetry_trim(h->store, h->cfg.telemetry_max_bytes, h->cfg.telemetry_max_age_ms,
                             now);
    hub_dps_housekeeping(h, now);
    iotdm_result r = hub_commit_now(h);
    if (r < 0)
        log_error("hub", "housekeeping commit failed: %s", iotdm_result_message(r));
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    hub *h = arg;
    log_info("hub", "stopping signal=%d", (int)sig);
    event_base_loopbreak(h->base);
}

static iotdm_result make_dirs(const char *dir)
{
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        log_error("hub", "cannot create data directory path=%s: %s", dir, strerror(errno));
        return -errno;
    }
    return IOTDM_OK;
}

iotdm_result hub_init(hub *h, const hub_config *cfg)
{
    memset(h, 0, sizeof *h);
    h->cfg = *cfg;
    iotdm_result r = make_dirs(cfg->data_dir);
    if (r < 0)
        return r;
    r = hub_tls_ensure(cfg->data_dir, cfg->hostname, cfg->listen_addr);
    if (r < 0) {
        log_error("hub", "cannot create TLS material in %s", cfg->data_dir);
        return r;
    }
    h->tls = hub_tls_server_ctx(cfg->data_dir, true);
    h->https_tls = hub_tls_server_ctx(cfg->data_dir, false);
    if (!h->tls || !h->https_tls)
        return IOTDM_E_INTERNAL;

    char db_path[600];
    snprintf(db_path, sizeof db_path, "%s/hub.db", cfg->data_dir);
    r = hub_store_open(db_path, &h->store);
    if (r < 0) {
        log_error("hub", "cannot open store path=%s: %s", db_path, iotdm_result_message(r));
        return r;
    }
    r = ensure_policies(h);
    if (r < 0)
        return r;
    /* No connection survives a restart. */
    hub_store_device_disconnect_all(h->store, time_now_ms());
    r = hub_store_commit(h->store);
    if (r < 0)
        return r;
    r = hub_dps_init(h);
    if (r < 0)
        return r;

    h->conns = strmap_new();
    h->base = event_base_new();
    if (!h->conns || !h->base)
        return -ENOMEM;
    event_base_priority_init(h->base, 2);
    h->commit_ev = event_new(h->base, -1, 0, commit_cb, h);
    event_priority_set(h->commit_ev, PRIO_COMMIT);
    int synced_fd;
    r = hub_store_syncer_start(h->store, &synced_fd);
    if (r < 0) {
        log_error("hub", "cannot start the store's sync worker: %s", iotdm_result_message(r));
        return r;
    }
    h->synced_ev = event_new(h->base, synced_fd, EV_READ | EV_PERSIST, synced_cb, h);
    if (!h->synced_ev || event_add(h->synced_ev, NULL) != 0)
        return -ENOMEM;
    h->housekeeping_ev = event_new(h->base, -1, EV_PERSIST, housekeeping_cb, h);
    struct timeval hk = {HOUSEKEEPING_INTERVAL_S, 0};
    event_add(h->housekeeping_ev, &hk);
    h->sigterm_ev = evsignal_new(h->base, SIGTERM, signal_cb, h);
    h->sigint_ev = evsignal_new(h->base, SIGINT, signal_cb, h);
    event_add(h->sigterm_ev, NULL);
    event_add(h->sigint_ev, NULL);
    signal(SIGPIPE, SIG_IGN);

    h->events = hub_events_new(h);
    h->methods = hub_methods_new(h);
    if (!h->events || !h->methods)
        return -ENOMEM;
    r = hub_mqtt_listen(h);
    if (r < 0)
        return r;
    h->http = hub_http_new(h);
    if (!h->http)
        return IOTDM_E_INTERNAL;
    log_info("hub", "ready mqtt=%s:%u https=%s:%u hostname=%s", cfg->listen_addr, cfg->mqtt_port,
             cfg->listen_addr, cfg->https_port, cfg->hostname);
    return IOTDM_OK;
}

iotdm_result hub_run(hub *h)
{
    return event_base_dispatch(h->base) < 0 ? IOTDM_E_INTERNAL : IOTDM_OK;
}

void hub_deinit(hub *h)
{
    if (h->mqtt_listener)
        evconnlistener_free(h->mqtt_listener);
    hub_mqtt_close_all(h);
    if (h->store) {
        /* Whatever was written but not yet acknowledged is committed now; nothing was promised.
         * The deferred work still refers to the connections and listeners: run it first, in
         * order, without acknowledging anything (the connections are closing). */
        if (h->synced_ev) {
            event_free(h->synced_ev);
            h->synced_ev = NULL;
        }
        hub_store_syncer_stop(h->store);
        hub_store_commit(h->store);
        run_list(h->sealed, h->sealed_len, IOTDM_E_INTERNAL);
        h->sealed_len = 0;
        size_t len = h->deferred_len;
        h->deferred_len = 0;
        run_list(h->deferred, len, IOTDM_E_INTERNAL);
    }
    /* Pending method calls answer their HTTP requests: before the HTTP server goes. */
    if (h->methods)
        hub_methods_free(h->methods);
    if (h->http)
        hub_http_free(h->http);
    if (h->events)
        hub_events_free(h->events);
    hub_dps_free(h);
    if (h->store)
        hub_store_close(h->store);
    xfree(h->deferred);
    xfree(h->sealed);
    if (h->commit_ev)
        event_free(h->commit_ev);
    if (h->housekeeping_ev)
        event_free(h->housekeeping_ev);
    if (h->sigterm_ev)
        event_free(h->sigterm_ev);
    if (h->sigint_ev)
        event_free(h->sigint_ev);
    strmap_free(h->conns);
    if (h->base)
        event_base_free(h->base);
    if (h->tls)
        SSL_CTX_free(h->tls);
    if (h->https_tls)
        SSL_CTX_free(h->https_tls);
}
