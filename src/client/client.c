/* libiotdm: creating and freeing a client, its configuration, logging and small accessors. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/internal.h"
#include "common/alloc.h"
#include "common/base64.h"

/* pthread_t is an integer on Linux; as one it can live in an atomic, read by any thread. */
static uintptr_t self_tag(void)
{
    return (uintptr_t)pthread_self();
}

static void lock_raw(iotdm_client *c)
{
    /* An error-checking mutex: taking it twice on one thread is a bug, caught here. */
    if (pthread_mutex_lock(&c->lock) != 0)
        abort();
    atomic_store(&c->lock_owner, self_tag());
}

static void unlock_raw(iotdm_client *c)
{
    atomic_store(&c->lock_owner, 0);
    pthread_mutex_unlock(&c->lock);
}

static void queue_line(iotdm_client *c, iotdm_log_level level, const char *line)
{
    if (c->logq_len == CLIENT_LOG_QUEUE) {
        c->logq_dropped++; /* the oldest lines go first; the count is logged with the rest */
        c->logq_first = (c->logq_first + 1) % CLIENT_LOG_QUEUE;
        c->logq_len--;
    }
    size_t i = (c->logq_first + c->logq_len++) % CLIENT_LOG_QUEUE;
    c->logq[i].level = level;
    snprintf(c->logq[i].text, sizeof c->logq[i].text, "%s", line);
}

/* The log callback is the application's too: a line made while lock is held waits in the queue
 * until lock is released. */
void client_log(iotdm_client *c, iotdm_log_level level, const char *fmt, ...)
{
    char line[CLIENT_LOG_LINE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (atomic_load(&c->lock_owner) == self_tag())
        queue_line(c, level, line);
    else
        c->log_fn(c->log_ctx, level, line);
}

/* Delivers the queued lines, releasing lock around each call. One thread delivers at a time, so
 * lines arrive in the order they were made. */
static void deliver_lines(iotdm_client *c)
{
    char line[CLIENT_LOG_LINE];
    while (!c->log_delivering && (c->logq_len > 0 || c->logq_dropped > 0)) {
        iotdm_log_level level = IOTDM_LOG_WARN;
        if (c->logq_dropped > 0) {
            snprintf(line, sizeof line, "log: %u lines dropped (more than %d at once)",
                     c->logq_dropped, CLIENT_LOG_QUEUE);
            c->logq_dropped = 0;
        } else {
            level = c->logq[c->logq_first].level;
            memcpy(line, c->logq[c->logq_first].text, sizeof line);
            c->logq_first = (c->logq_first + 1) % CLIENT_LOG_QUEUE;
            c->logq_len--;
        }
        c->log_delivering = true;
        unlock_raw(c);
        if (c->log_fn)
            c->log_fn(c->log_ctx, level, line);
        lock_raw(c);
        c->log_delivering = false;
    }
}

void client_lock(iotdm_client *c)
{
    lock_raw(c);
}

void client_unlock(iotdm_client *c)
{
    deliver_lines(c);
    unlock_raw(c);
}

iotdm_result client_dispatch_begin(iotdm_client *c)
{
    if (client_dispatching(c))
        return -EDEADLK;
    pthread_mutex_lock(&c->dispatch);
    atomic_store(&c->dispatch_owner, self_tag());
    return IOTDM_OK;
}

void client_dispatch_end(iotdm_client *c)
{
    atomic_store(&c->dispatch_owner, 0);
    pthread_mutex_unlock(&c->dispatch);
}

bool client_dispatching(iotdm_client *c)
{
    return atomic_load(&c->dispatch_owner) == self_tag();
}

int64_t client_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *dup_opt(const char *s, bool *ok)
{
    if (!s || !*s)
        return NULL;
    char *d = xstrdup(s);
    if (!d)
        *ok = false;
    return d;
}

static bool bad_config(const iotdm_client_config *cfg, const char *why)
{
    if (cfg->log && cfg->log_level >= IOTDM_LOG_ERROR)
        cfg->log(cfg->log_ctx, IOTDM_LOG_ERROR, why);
    return true;
}

/* Returns true (after logging the reason) when the configuration cannot work. */
static bool config_invalid(const iotdm_client_config *cfg)
{
    if (!cfg->host || !*cfg->host || strlen(cfg->host) > 255)
        return bad_config(cfg, "config: host is required (at most 255 characters)");
    if (!cfg->device_id || !az_valid_device_id(cfg->device_id, strlen(cfg->device_id)))
        return bad_config(cfg, "config: device_id is missing or not a valid device id");
    if (!cfg->state_dir || !*cfg->state_dir)
        return bad_config(cfg, "config: state_dir is required");
    int auths = (cfg->device_key && *cfg->device_key) + (cfg->signer != NULL) +
                (cfg->cert_file && *cfg->cert_file);
    if (auths != 1)
        return bad_config(cfg, "config: exactly one of device_key, signer, cert_file is needed");
    if ((cfg->cert_file && *cfg->cert_file) != (cfg->key_file && *cfg->key_file))
        return bad_config(cfg, "config: cert_file and key_file go together");
    if (cfg->device_key && *cfg->device_key) {
        unsigned char key[128];
        long n = base64_decode(cfg->device_key, strlen(cfg->device_key), key, sizeof key);
        memset(key, 0, sizeof key);
        if (n <= 0)
            return bad_config(cfg, "config: device_key is not valid base64");
    }
    if (cfg->keepalive_s > 1177)
        return bad_config(cfg, "config: keepalive_s above 1177 s, the hub's idle limit");
    if (cfg->keepalive_s && cfg->keepalive_s < 5) /* libmosquitto refuses to connect with less */
        return bad_config(cfg, "config: keepalive_s below 5 s");
    return false;
}

static bool copy_config(iotdm_client *c, const iotdm_client_config *cfg)
{
    bool ok = true;
    c->host = dup_opt(cfg->host, &ok);
    c->device_id = dup_opt(cfg->device_id, &ok);
    c->device_key = dup_opt(cfg->device_key, &ok);
    c->cert_file = dup_opt(cfg->cert_file, &ok);
    c->key_file = dup_opt(cfg->key_file, &ok);
    c->ca_file = dup_opt(cfg->ca_file, &ok);
    c->model_id = dup_opt(cfg->model_id ? cfg->model_id : CLIENT_MODEL_ID, &ok);
    c->state_dir = dup_opt(cfg->state_dir, &ok);
    c->port = cfg->port ? cfg->port : 8883;
    c->keepalive_s = cfg->keepalive_s ? cfg->keepalive_s : 240;
    c->sas_ttl_s = cfg->sas_ttl_s ? cfg->sas_ttl_s : 3600;
    c->backoff_max_s = cfg->backoff_max_s ? cfg->backoff_max_s : 120;
    c->refused_retry_s = cfg->refused_retry_s ? cfg->refused_retry_s : 300;
    c->signer = cfg->signer;
    c->signer_ctx = cfg->signer_ctx;
    c->log_fn = cfg->log;
    c->log_ctx = cfg->log_ctx;
    c->log_level = cfg->log_level ? cfg->log_level : IOTDM_LOG_INFO;
    c->on_connection = cfg->on_connection;
    c->connection_ctx = cfg->connection_ctx;
    c->clock = cfg->clock;
    c->clock_ctx = cfg->clock_ctx;
    return ok;
}

static iotdm_result open_outbox(iotdm_client *c, const iotdm_client_config *cfg)
{
    size_t max_bytes = cfg->outbox_max_bytes ? cfg->outbox_max_bytes : 4u * 1024 * 1024;
    int64_t max_age_ms =
        (int64_t)(cfg->telemetry_max_age_s ? cfg->telemetry_max_age_s : 86400) * 1000;
    char err[256] = "";
    iotdm_result r = outbox_open(c->state_dir, max_bytes, max_age_ms, &c->ob, err, sizeof err);
    if (r < 0)
        CLOG(c, IOTDM_LOG_ERROR, "outbox: %s", err);
    return r;
}

IOTDM_API iotdm_result iotdm_client_new(const iotdm_client_config *config,
                                        iotdm_client **out_client)
{
    if (!config || !out_client)
        return -EINVAL;
    *out_client = NULL;
    iotdm_client_config cfg;
    iotdm_result r = client_struct_take(&cfg, sizeof cfg, config, CLIENT_CONFIG_V1_SIZE);
    if (r < 0) {
        /* Even a struct_size of 0 comes from these headers (older ones had no such member), so
         * the first version's members, the log callback among them, are there to read. */
        bad_config(config, r == IOTDM_E_UNSUPPORTED
                               ? "config: members of a later libiotdm are set; this one does "
                                 "not know them"
                               : "config: struct_size is not set (iotdm_client_config_init)");
        return r;
    }
    config = &cfg;
    if (config_invalid(config))
        return IOTDM_E_MALFORMED;
    iotdm_client *c = xcalloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
    pthread_mutex_init(&c->lock, &attr);
    pthread_mutexattr_destroy(&attr);
    pthread_mutex_init(&c->dispatch, NULL);
    atomic_init(&c->lock_owner, 0);
    atomic_init(&c->dispatch_owner, 0);
    c->epfd = c->evfd = c->tfd = c->watched_sock = -1;
    atomic_init(&c->stop, false);
    r = copy_config(c, config) ? IOTDM_OK : -ENOMEM;
    if (r == IOTDM_OK)
        r = open_outbox(c, config);
    if (r == IOTDM_OK)
        r = loop_init(c);
    if (r < 0) {
        iotdm_client_free(c);
        return r;
    }
    conn_init(c);
    *out_client = c;
    return IOTDM_OK;
}

static void free_secret_string(char *s)
{
    if (s)
        xfree_secret(s, strlen(s));
}

IOTDM_API void iotdm_client_free(iotdm_client *c)
{
    if (!c)
        return;
    iotdm_client_stop(c);
    conn_deinit(c);
    loop_deinit(c);
    outbox_close(c->ob);
    json_decref(c->desired);
    for (size_t i = 0; i < c->npending; i++)
        json_decref(c->pending[i].patch);
    methods_free(c);
    handlers_free(c);
    xfree(c->host);
    xfree(c->device_id);
    free_secret_string(c->device_key);
    xfree(c->cert_file);
    xfree(c->key_file);
    xfree(c->ca_file);
    xfree(c->model_id);
    xfree(c->state_dir);
    pthread_mutex_destroy(&c->dispatch);
    pthread_mutex_destroy(&c->lock);
    xfree(c);
}

IOTDM_API iotdm_connection_state iotdm_client_connection_state(iotdm_client *c)
{
    client_lock(c);
    iotdm_connection_state s = c->state;
    client_unlock(c);
    return s;
}

IOTDM_API int64_t iotdm_client_now_ms(iotdm_client *c)
{
    if (c->clock)
        return c->clock(c->clock_ctx);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

IOTDM_API void iotdm_client_outbox_stats(iotdm_client *c, iotdm_outbox_stats *out_stats)
{
    outbox_counts n;
    client_lock(c);
    outbox_get_counts(c->ob, &n);
    client_unlock(c);
    out_stats->reported_pending = n.reported;
    out_stats->telemetry_pending = n.telemetry;
    out_stats->telemetry_dropped = n.telemetry_dropped;
}

IOTDM_API void iotdm_client_set_reboot_veto(iotdm_client *c, iotdm_reboot_veto_fn fn, void *ctx)
{
    client_lock(c);
    c->veto_fn = fn;
    c->veto_ctx = ctx;
    client_unlock(c);
}

IOTDM_API bool iotdm_client_reboot_allowed_by_app(iotdm_client *c)
{
    client_lock(c);
    iotdm_reboot_veto_fn fn = c->veto_fn;
    void *ctx = c->veto_ctx;
    client_unlock(c);
    /* The application's answer may take a person (the toaster asks): never under the lock. */
    bool allowed = fn ? fn(ctx) : true;
    if (!allowed)
        CLOG(c, IOTDM_LOG_INFO, "reboot: vetoed by the application");
    return allowed;
}

IOTDM_API void iotdm_free(void *ptr)
{
    xfree(ptr);
}
