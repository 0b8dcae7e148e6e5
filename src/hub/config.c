/* Configuration: one table of settings serves both the config file and the flags. */
#include "hub/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/kvconf.h"
#include "common/log.h"

typedef enum {
    SET_STRING,
    SET_PORT,
    SET_MB,      /* MiB into a uint64_t of bytes */
    SET_MB_SIZE, /* MiB into a size_t of bytes */
    SET_BYTES,   /* bytes into a size_t */
    SET_HOURS,   /* hours into an int64_t of ms */
    SET_DAYS,    /* days into an int64_t of ms */
    SET_COUNT,   /* an unsigned count, 1 and up */
    SET_COUNT0,  /* an unsigned count, 0 allowed */
    SET_SECONDS, /* unsigned seconds, 1 and up */
    SET_LOG_LEVEL,
} setting_kind;

typedef struct {
    const char *name;
    setting_kind kind;
    size_t offset;
    size_t size;
} setting;

#define STR(field)         SET_STRING, offsetof(hub_config, field), sizeof(((hub_config *)0)->field)
#define FIELD(kind, field) kind, offsetof(hub_config, field), 0

static const setting settings[] = {
    {"data-dir", STR(data_dir)},
    {"store", STR(store)},
    {"node-id", STR(node_id)},
    {"hostname", STR(hostname)},
    {"listen", STR(listen_addr)},
    {"web-dir", STR(web_dir)},
    {"models-dir", STR(models_dir)},
    {"id-scope", STR(id_scope)},
    {"mqtt-port", FIELD(SET_PORT, mqtt_port)},
    {"https-port", FIELD(SET_PORT, https_port)},
    {"telemetry-max-mb", FIELD(SET_MB, telemetry_max_bytes)},
    {"telemetry-max-age-hours", FIELD(SET_HOURS, telemetry_max_age_ms)},
    {"threads", FIELD(SET_COUNT0, threads)},
    {"max-connections", FIELD(SET_COUNT0, limits.max_connections)},
    {"max-pending-per-source", FIELD(SET_COUNT0, limits.max_pending_per_source)},
    {"handshake-timeout", FIELD(SET_SECONDS, limits.handshake_timeout_s)},
    {"header-timeout", FIELD(SET_SECONDS, limits.header_timeout_s)},
    {"request-timeout", FIELD(SET_SECONDS, limits.request_timeout_s)},
    {"upload-timeout", FIELD(SET_SECONDS, limits.upload_timeout_s)},
    {"idle-timeout", FIELD(SET_SECONDS, limits.idle_timeout_s)},
    {"stall-timeout", FIELD(SET_SECONDS, limits.stall_timeout_s)},
    {"output-limit", FIELD(SET_BYTES, limits.output_limit)},
    {"max-inflight", FIELD(SET_COUNT, limits.max_inflight)},
    {"body-memory-mb", FIELD(SET_MB_SIZE, limits.body_memory)},
    {"upload-max-mb", FIELD(SET_MB, upload_max_bytes)},
    {"upload-quota-mb", FIELD(SET_MB, upload_quota_bytes)},
    {"upload-max-files", FIELD(SET_COUNT, upload_max_files)},
    {"upload-retention-days", FIELD(SET_DAYS, upload_retention_ms)},
    {"disk-reserve-mb", FIELD(SET_MB, disk_reserve_bytes)},
    {"log-level", FIELD(SET_LOG_LEVEL, mqtt_port)},
};

void hub_config_defaults(hub_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->listen_addr, sizeof cfg->listen_addr, "127.0.0.1");
    cfg->mqtt_port = 8883;
    cfg->https_port = 443;
    cfg->telemetry_max_bytes = 256ull * 1024 * 1024;
    cfg->telemetry_max_age_ms = 7LL * 24 * 3600 * 1000;
    cfg->c2d_default_ttl_ms = 3600LL * 1000 * 48; /* Azure's default C2D time to live: 48 h */
    hub_net_limits_defaults(&cfg->limits);
    cfg->upload_max_bytes = 16ull * 1024 * 1024;
    cfg->upload_quota_bytes = 256ull * 1024 * 1024;
    cfg->upload_max_files = 1000;
    cfg->upload_retention_ms = 30LL * 24 * 3600 * 1000;
    cfg->disk_reserve_bytes = 256ull * 1024 * 1024;
#ifdef IOTDM_WEB_DIR
    snprintf(cfg->web_dir, sizeof cfg->web_dir, "%s", IOTDM_WEB_DIR);
#endif
#ifdef IOTDM_MODELS_DIR
    snprintf(cfg->models_dir, sizeof cfg->models_dir, "%s", IOTDM_MODELS_DIR);
#endif
}

static bool parse_number(const char *v, long long min, long long max, long long *out)
{
    char *end;
    long long n = strtoll(v, &end, 10);
    if (!*v || *end || n < min || n > max)
        return false;
    *out = n;
    return true;
}

static iotdm_result apply(hub_config *cfg, const char *name, const char *value, char *error,
                          size_t cap)
{
    for (size_t i = 0; i < sizeof settings / sizeof *settings; i++) {
        const setting *s = &settings[i];
        if (strcmp(s->name, name) != 0)
            continue;
        char *field = (char *)cfg + s->offset;
        long long n;
        switch (s->kind) {
        case SET_STRING:
            if (strlen(value) >= s->size || !*value)
                break;
            snprintf(field, s->size, "%s", value);
            return IOTDM_OK;
        case SET_PORT:
            if (!parse_number(value, 1, 65535, &n))
                break;
            *(unsigned *)field = (unsigned)n;
            return IOTDM_OK;
        case SET_MB:
            if (!parse_number(value, s->offset == offsetof(hub_config, disk_reserve_bytes) ? 0 : 1,
                              1 << 20, &n))
                break;
            *(uint64_t *)field = (uint64_t)n * 1024 * 1024;
            return IOTDM_OK;
        case SET_MB_SIZE:
            if (!parse_number(value, 1, 1 << 20, &n))
                break;
            *(size_t *)field = (size_t)n * 1024 * 1024;
            return IOTDM_OK;
        case SET_BYTES:
            if (!parse_number(value, 1024, 1LL << 40, &n))
                break;
            *(size_t *)field = (size_t)n;
            return IOTDM_OK;
        case SET_HOURS:
            if (!parse_number(value, 1, 24 * 365 * 10, &n))
                break;
            *(int64_t *)field = n * 3600 * 1000;
            return IOTDM_OK;
        case SET_DAYS:
            if (!parse_number(value, 1, 365 * 100, &n))
                break;
            *(int64_t *)field = n * 24 * 3600 * 1000;
            return IOTDM_OK;
        case SET_COUNT:
        case SET_COUNT0:
            if (!parse_number(value, s->kind == SET_COUNT ? 1 : 0, 100000000, &n))
                break;
            *(unsigned *)field = (unsigned)n;
            return IOTDM_OK;
        case SET_SECONDS:
            if (!parse_number(value, 1, 86400 * 7, &n))
                break;
            *(unsigned *)field = (unsigned)n;
            return IOTDM_OK;
        case SET_LOG_LEVEL: {
            log_level level;
            if (!log_level_parse(value, &level))
                break;
            log_set_level(level);
            return IOTDM_OK;
        }
        }
        snprintf(error, cap, "invalid value '%s' for %s", value, name);
        return IOTDM_E_MALFORMED;
    }
    snprintf(error, cap, "unknown setting '%s'", name);
    return IOTDM_E_MALFORMED;
}

/* Config-file keys are the long option names; '_' may stand for '-'. */
static iotdm_result apply_file_setting(void *ctx, const char *key, const char *value, char *error,
                                       size_t error_cap)
{
    char name[64];
    kvconf_dashed(key, name, sizeof name);
    return apply(ctx, name, value, error, error_cap);
}

iotdm_result hub_config_from_args(hub_config *cfg, int argc, char **argv, char *error,
                                  size_t error_cap)
{
    /* The config file goes first so that flags override it, wherever --config stands. */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            snprintf(error, error_cap, "help");
            return IOTDM_E_MALFORMED;
        }
        if (strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc) {
                snprintf(error, error_cap, "--config needs a file");
                return IOTDM_E_MALFORMED;
            }
            iotdm_result r = kvconf_load(argv[i + 1], apply_file_setting, cfg, error, error_cap);
            if (r < 0)
                return r;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strncmp(arg, "--", 2) != 0) {
            snprintf(error, error_cap, "unexpected argument '%s'", arg);
            return IOTDM_E_MALFORMED;
        }
        char name[64];
        const char *value;
        const char *eq = strchr(arg, '=');
        if (eq) {
            snprintf(name, sizeof name, "%.*s", (int)(eq - arg - 2), arg + 2);
            value = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", arg + 2);
            if (i + 1 >= argc) {
                snprintf(error, error_cap, "%s needs a value", arg);
                return IOTDM_E_MALFORMED;
            }
            value = argv[++i];
        }
        if (strcmp(name, "config") == 0)
            continue;
        iotdm_result r = apply(cfg, name, value, error, error_cap);
        if (r < 0)
            return r;
    }
    if (!cfg->data_dir[0]) {
        snprintf(error, error_cap, "--data-dir is required");
        return IOTDM_E_MALFORMED;
    }
    if (!cfg->hostname[0])
        snprintf(cfg->hostname, sizeof cfg->hostname, "%s",
                 strcmp(cfg->listen_addr, "0.0.0.0") == 0 ? "localhost" : cfg->listen_addr);
    return IOTDM_OK;
}
