/* Agent configuration: one table of settings serves the file and the flags. */
#include "agent/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/base64.h"
#include "common/connstr.h"
#include "common/kvconf.h"
#include "common/log.h"

static void set_str(char *dst, size_t cap, const char *v)
{
    snprintf(dst, cap, "%s", v);
}

static bool parse_bool(const char *v, bool *out)
{
    if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "1") || !strcmp(v, "on"))
        return *out = true, true;
    if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "0") || !strcmp(v, "off"))
        return *out = false, true;
    return false;
}

/* The capability names of the config file and --help, in one table. */
static const struct {
    const char *name;
    size_t offset;
} capability_names[] = {
    {"deviceInformation", offsetof(cap_selection, device_info)},
    {"reboot", offsetof(cap_selection, reboot)},
    {"factoryReset", offsetof(cap_selection, factory_reset)},
    {"time", offsetof(cap_selection, time)},
    {"certificates", offsetof(cap_selection, certificates)},
    {"apps", offsetof(cap_selection, apps)},
    {"updates", offsetof(cap_selection, updates)},
    {"logCollectors", offsetof(cap_selection, logs)},
    {"wifi", offsetof(cap_selection, wifi)},
    {"telemetryLevel", offsetof(cap_selection, telemetry_level)},
};

static void select_all(cap_selection *sel)
{
    for (size_t i = 0; i < sizeof capability_names / sizeof *capability_names; i++)
        *(bool *)((char *)sel + capability_names[i].offset) = true;
}

static bool parse_capabilities(const char *v, cap_selection *sel)
{
    memset(sel, 0, sizeof *sel);
    char buf[256];
    set_str(buf, sizeof buf, v);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        bool known = !strcmp(tok, "all");
        if (known)
            select_all(sel);
        for (size_t i = 0; !known && i < sizeof capability_names / sizeof *capability_names; i++) {
            if (!strcmp(tok, capability_names[i].name)) {
                *(bool *)((char *)sel + capability_names[i].offset) = true;
                known = true;
            }
        }
        if (!known)
            return false;
    }
    return true;
}

/* Reads a key from a file (device_key_file): the first line, without trailing white space. */
static bool read_secret_file(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    bool ok = fgets(out, (int)cap, f) != NULL;
    fclose(f);
    size_t n = strlen(out);
    while (n && isspace((unsigned char)out[n - 1]))
        out[--n] = '\0';
    return ok && n > 0;
}

/* A DPS key file: the first line, base64. The error names the file, never its content. */
static iotdm_result read_key_file(const char *setting, const char *path, char *out, size_t cap,
                                  char *error, size_t error_cap)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(error, error_cap, "cannot read %s %s: %s", setting, path, strerror(errno));
        return IOTDM_E_MALFORMED;
    }
    fclose(f);
    /* DPS keys are 16 to 64 bytes; anything else is the wrong file. */
    unsigned char raw[128];
    long n =
        read_secret_file(path, out, cap) ? base64_decode(out, strlen(out), raw, sizeof raw) : -1;
    memset(raw, 0, sizeof raw);
    if (n < 16 || n > 64) {
        memset(out, 0, cap);
        snprintf(error, error_cap,
                 "%s %s does not hold a base64 key of 16-64 bytes on its first line", setting,
                 path);
        return IOTDM_E_MALFORMED;
    }
    return IOTDM_OK;
}

static bool apply_connection_string(agent_config *cfg, const char *cs)
{
    char host[256], id[129], key[128];
    if (!connstr_get(cs, "HostName", host, sizeof host) ||
        !connstr_get(cs, "DeviceId", id, sizeof id))
        return false;
    set_str(cfg->hub_host, sizeof cfg->hub_host, host);
    set_str(cfg->device_id, sizeof cfg->device_id, id);
    if (connstr_get(cs, "SharedAccessKey", key, sizeof key))
        set_str(cfg->device_key, sizeof cfg->device_key, key);
    return true;
}

#define STR_SETTING(name, field)                                                                   \
    {                                                                                              \
        name, offsetof(agent_config, field), sizeof(((agent_config *)0)->field)                    \
    }

static const struct {
    const char *name;
    size_t offset, size;
} strings[] = {
    STR_SETTING("hub-host", hub_host),
    STR_SETTING("device-id", device_id),
    STR_SETTING("device-key", device_key),
    STR_SETTING("cert-file", cert_file),
    STR_SETTING("key-file", key_file),
    STR_SETTING("ca-file", ca_file),
    STR_SETTING("state-dir", state_dir),
    STR_SETTING("configd-socket", configd_socket),
    STR_SETTING("model-id", model_id),
    STR_SETTING("reboot-inhibit-file", reboot_inhibit_file),
    STR_SETTING("download-ca-file", download_ca_file),
    STR_SETTING("transfer-helper", transfer_helper),
    STR_SETTING("tpm-tcti", tpm_tcti),
    STR_SETTING("dps-endpoint", dps_endpoint),
    STR_SETTING("dps-id-scope", dps_id_scope),
    STR_SETTING("dps-registration-id", dps_registration_id),
    STR_SETTING("limpet", limpet),
};

static iotdm_result apply(agent_config *cfg, const char *name, const char *value, char *error,
                          size_t cap)
{
    for (size_t i = 0; i < sizeof strings / sizeof *strings; i++) {
        if (strcmp(name, strings[i].name) != 0)
            continue;
        if (strlen(value) >= strings[i].size)
            break;
        set_str((char *)cfg + strings[i].offset, strings[i].size, value);
        return IOTDM_OK;
    }
    bool ok = false, b;
    long n;
    char *end;
    if (!strcmp(name, "hub-port") || !strcmp(name, "hub-https-port") || !strcmp(name, "dps-port")) {
        n = strtol(value, &end, 10);
        ok = *value && !*end && n > 0 && n < 65536;
        if (ok && !strcmp(name, "hub-port"))
            cfg->hub_port = (unsigned)n;
        else if (ok && !strcmp(name, "dps-port"))
            cfg->dps_port = (unsigned)n;
        else if (ok)
            cfg->hub_https_port = (unsigned)n;
    } else if (!strcmp(name, "keepalive")) {
        /* The hub drops a connection silent for 1.5 keep-alives; 1177 s is its idle limit. */
        n = strtol(value, &end, 10);
        ok = *value && !*end && n >= 5 && n <= 1177;
        if (ok)
            cfg->keepalive_s = (unsigned)n;
    } else if (!strcmp(name, "dps-retry-max")) {
        n = strtol(value, &end, 10);
        ok = *value && !*end && n >= 1 && n <= 86400;
        if (ok)
            cfg->dps_retry_max_s = (unsigned)n;
    } else if (!strcmp(name, "dps-key-file")) {
        return read_key_file(name, value, cfg->dps_key, sizeof cfg->dps_key, error, cap);
    } else if (!strcmp(name, "dps-group-key-file")) {
        return read_key_file(name, value, cfg->dps_group_key, sizeof cfg->dps_group_key, error,
                             cap);
    } else if (!strcmp(name, "tpm-slot")) {
        n = strtol(value, &end, 10);
        ok = *value && !*end && n >= 0 && n <= 9;
        if (ok)
            cfg->tpm_slot = (int)n;
    } else if (!strcmp(name, "device-key-file")) {
        ok = read_secret_file(value, cfg->device_key, sizeof cfg->device_key);
    } else if (!strcmp(name, "connection-string")) {
        ok = apply_connection_string(cfg, value);
    } else if (!strcmp(name, "capabilities")) {
        ok = parse_capabilities(value, &cfg->capabilities);
    } else if (!strcmp(name, "log-level")) {
        log_level level;
        ok = log_level_parse(value, &level);
        if (ok)
            log_set_level(level);
    } else if (!strcmp(name, "time-service-enabled") || !strcmp(name, "time-service-started")) {
        ok = parse_bool(value, &b);
        if (ok && name[13] == 'e')
            cfg->time_service_enabled = b;
        else if (ok)
            cfg->time_service_started = b;
        cfg->time_service_local = cfg->time_service_local || ok;
    } else if (!strcmp(name, "time-service-priority")) {
        ok = !strcmp(value, "local") || !strcmp(value, "remote");
        if (ok)
            set_str(cfg->time_service_priority, sizeof cfg->time_service_priority, value);
    } else {
        snprintf(error, cap, "unknown setting '%s'", name);
        return IOTDM_E_MALFORMED;
    }
    if (!ok) {
        /* The value is not echoed: it may be a key. */
        snprintf(error, cap, "invalid value for %s", name);
        return IOTDM_E_MALFORMED;
    }
    return IOTDM_OK;
}

void agent_config_defaults(agent_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->hub_port = 8883;
    cfg->hub_https_port = 443;
    cfg->tpm_slot = -1;
    cfg->dps_port = 8883;
    cfg->dps_retry_max_s = 300;
    set_str(cfg->dps_endpoint, sizeof cfg->dps_endpoint, "global.azure-devices-provisioning.net");
    set_str(cfg->state_dir, sizeof cfg->state_dir, "/var/lib/iotdm");
    set_str(cfg->configd_socket, sizeof cfg->configd_socket, "/run/iotdm/configd.sock");
    set_str(cfg->model_id, sizeof cfg->model_id, "dtmi:iotdm:DeviceManagement;1");
    set_str(cfg->reboot_inhibit_file, sizeof cfg->reboot_inhibit_file, "/run/iotdm/reboot-inhibit");
    set_str(cfg->time_service_priority, sizeof cfg->time_service_priority, "remote");
    select_all(&cfg->capabilities);
}

bool agent_config_uses_dps(const agent_config *cfg)
{
    return cfg->dps_id_scope[0] != '\0';
}

static bool any_dps_setting(const agent_config *cfg)
{
    return cfg->dps_registration_id[0] || cfg->dps_key[0] || cfg->dps_group_key[0];
}

/* DPS's registration id rule (docs/protocol.md §7.1), checked here too so that a typo stops the
 * agent at once instead of being retried. */
static bool valid_registration_id(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 128)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)id[i]) && !strchr("-._:", id[i]))
            return false;
    return true;
}

static const char *dps_problem(const agent_config *cfg)
{
    if (!agent_config_uses_dps(cfg))
        return "dps-registration-id, dps-key-file and dps-group-key-file need dps-id-scope";
    if (cfg->hub_host[0] || cfg->device_id[0] || cfg->device_key[0])
        return "connection-string, hub-host, device-id and device-key cannot be combined with "
               "dps-id-scope: DPS assigns the hub and the device id";
    if (cfg->dps_key[0] && cfg->dps_group_key[0])
        return "dps-key-file and dps-group-key-file exclude each other (an individual "
               "enrollment's key, or a group enrollment's key to derive the device key from)";
    int methods = (cfg->dps_key[0] || cfg->dps_group_key[0]) + (cfg->cert_file[0] != '\0') +
                  (cfg->tpm_slot >= 0);
    if (methods == 0)
        return "DPS needs credentials: dps-key-file, dps-group-key-file, cert-file (with "
               "key-file) or tpm-slot";
    if (methods > 1)
        return "DPS takes one kind of credentials: dps-key-file, dps-group-key-file, cert-file "
               "or tpm-slot";
    if (cfg->cert_file[0] && !cfg->key_file[0])
        return "cert-file needs key-file";
    if (cfg->tpm_slot >= 0 && cfg->dps_registration_id[0])
        return "dps-registration-id is not used with tpm-slot: the TPM's endorsement key gives "
               "the registration id";
    if ((cfg->dps_key[0] || cfg->dps_group_key[0]) && !cfg->dps_registration_id[0])
        return "dps-registration-id is required with dps-key-file or dps-group-key-file";
    if (cfg->dps_registration_id[0] && !valid_registration_id(cfg->dps_registration_id))
        return "dps-registration-id must be 1-128 of A-Z a-z 0-9 - . _ :";
    if (!cfg->dps_endpoint[0])
        return "dps-endpoint is empty";
    return NULL;
}

static iotdm_result check_dps(const agent_config *cfg, char *error, size_t error_cap)
{
    const char *why = dps_problem(cfg);
    if (!why)
        return IOTDM_OK;
    snprintf(error, error_cap, "%s", why);
    return IOTDM_E_MALFORMED;
}

/* File keys may use '-' or '_' (hub_host = …); flags use '-'. */
static iotdm_result apply_file_setting(void *ctx, const char *key, const char *value, char *error,
                                       size_t error_cap)
{
    char name[64];
    kvconf_dashed(key, name, sizeof name);
    return apply(ctx, name, value, error, error_cap);
}

iotdm_result agent_config_load(agent_config *cfg, int argc, char **argv, char *error,
                               size_t error_cap)
{
    const char *path = AGENT_DEFAULT_CONFIG;
    bool required = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            snprintf(error, error_cap, "help");
            return IOTDM_E_MALFORMED;
        }
        if (!strcmp(argv[i], "--config") && i + 1 < argc)
            path = argv[i + 1], required = true;
    }
    iotdm_result r = IOTDM_OK;
    if (required || access(path, F_OK) == 0)
        r = kvconf_load(path, apply_file_setting, cfg, error, error_cap);
    for (int i = 1; r == IOTDM_OK && i < argc; i++) {
        const char *arg = argv[i];
        if (strncmp(arg, "--", 2) != 0 || i + 1 >= argc) {
            snprintf(error, error_cap, "unexpected argument '%s'", arg);
            return IOTDM_E_MALFORMED;
        }
        const char *value = argv[++i];
        if (!strcmp(arg, "--config"))
            continue;
        r = apply(cfg, arg + 2, value, error, error_cap);
    }
    if (r < 0)
        return r;
    if (agent_config_uses_dps(cfg) || any_dps_setting(cfg))
        return check_dps(cfg, error, error_cap);
    if (cfg->tpm_slot >= 0)
        return IOTDM_OK; /* host, device id and key come from the TPM slot at start */
    const char *missing = !cfg->hub_host[0]    ? "hub-host (or connection-string)"
                          : !cfg->device_id[0] ? "device-id"
                          : (!cfg->device_key[0] && !cfg->cert_file[0])
                              ? "device-key, device-key-file or cert-file"
                              : NULL;
    if (missing) {
        snprintf(error, error_cap, "missing setting: %s", missing);
        return IOTDM_E_MALFORMED;
    }
    if (cfg->cert_file[0] && !cfg->key_file[0]) {
        snprintf(error, error_cap, "cert-file needs key-file");
        return IOTDM_E_MALFORMED;
    }
    return IOTDM_OK;
}
