/* The built-in device-management capabilities: what they need from the agent, and how the agent
 * starts them. Each capability registers its handlers and commands with libiotdm's public
 * handler API, exactly as a device maker's own capability would. */
#ifndef IOTDM_CAPABILITIES_H
#define IOTDM_CAPABILITIES_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "capabilities/worker.h"
#include "iotdm/iotdm.h"

#define CAP_COMPONENT "dm"

/* What the agent provides to the capabilities. */
typedef struct cap_env {
    iotdm_client *client;
    /* One configd operation: args is borrowed; on success *out_result is a new reference. On
     * failure err holds configd's message (or why configd could not be reached). */
    IOTDM_NODISCARD iotdm_result (*configd)(void *ctx, const char *op, json_t *args,
                                            json_t **out_result, char *err, size_t err_cap);
    void *configd_ctx;
    /* The context for configd calls made on the worker (its own connection, so that the worker and
     * the connection's thread never wait for each other's calls); NULL: configd_ctx. */
    void *configd_worker_ctx;
    /* Where long work (downloads, installs) runs, away from the thread that serves the hub
     * connection; NULL runs it at once, on the calling thread (tests, simple hosts). */
    cap_worker *worker;
    /* The same with file descriptors passed along (downloaded files, SCM_RIGHTS); configd checks
     * each one against the SHA-256 the request names. */
    IOTDM_NODISCARD iotdm_result (*configd_fds)(void *ctx, const char *op, json_t *args,
                                                const int *fds, size_t nfds, json_t **out_result,
                                                char *err, size_t err_cap);
    /* Downloads an https:// URL (the agent's CA bundle) into an unlinked temporary file, checking
     * its SHA-256 (64 hex digits); *out_fd is at offset 0 and the caller closes it. Safe to call
     * from the worker. */
    IOTDM_NODISCARD iotdm_result (*download)(void *ctx, const char *url, const char *sha256_hex,
                                             size_t max_bytes, int *out_fd, char *err,
                                             size_t err_cap);
    /* Uploads a file through the hub's file-upload API; out_blob gets the hub's blob name. */
    IOTDM_NODISCARD iotdm_result (*upload)(void *ctx, int fd, const char *blob_name, char *out_blob,
                                           size_t out_cap, char *err, size_t err_cap);
    void *transfer_ctx;
    /* The scheduler's clock (an injected one in tests). */
    int64_t (*now_ms)(void *ctx);
    void *clock_ctx;
    /* After a simulated reboot the agent exits, as the machine would have gone down; its
     * supervisor starts it again. */
    void (*reboot_happened)(void *ctx);
    /* dm*reprovision: asks the agent to register with DPS again once the answer is on its way.
     * IOTDM_E_UNSUPPORTED when the device is not provisioned through DPS, IOTDM_E_EXISTS while
     * a re-provisioning is under way; err says why. NULL: never supported. */
    IOTDM_NODISCARD iotdm_result (*reprovision)(void *ctx, char *err, size_t err_cap);
    void *agent_ctx;
    const char *state_dir;
    const char *sw_version;
    /* Local time-service settings (the agent's config file), for the local/remote priority. */
    struct {
        bool present;
        bool enabled;
        bool started;
        const char *priority; /* "local" or "remote" */
    } local_time_service;
} cap_env;

/* A capability with timed work (schedules, deferred commands). */
typedef struct cap_timer {
    int64_t (*next_due_ms)(void *ctx); /* INT64_MAX: nothing due */
    void (*run_due)(void *ctx, int64_t now_ms);
    void *ctx;
} cap_timer;

#define CAP_MAX_TIMERS 8

/* All built-in capabilities, as enabled in the agent's config. */
typedef struct cap_set {
    cap_env *env;
    cap_timer timers[CAP_MAX_TIMERS];
    size_t ntimers;
    void *reboot;
    void *factory_reset;
    void *time;
    void *certificates;
    void *apps;
    void *updates;
    void *logs;
    void *wifi;
    void *telemetry_level;
    bool device_info;
} cap_set;

typedef struct {
    bool device_info;
    bool reboot;
    bool factory_reset;
    bool time;
    bool certificates;
    bool apps;
    bool updates;
    bool logs;
    bool wifi;
    bool telemetry_level;
} cap_selection;

IOTDM_NODISCARD iotdm_result cap_set_start(cap_set *set, cap_env *env, const cap_selection *which);
void cap_set_stop(cap_set *set);
/* The earliest due time of any timer (INT64_MAX if none), and running what is due. */
int64_t cap_set_next_due_ms(cap_set *set);
void cap_set_run_due(cap_set *set, int64_t now_ms);
/* Reports the read-only sections (system information) again: after connecting, reportAll. */
void cap_set_report_static(cap_set *set);

/* Per capability (device_info.c, reboot.c, factory_reset.c, time.c, report.c). */
void cap_device_info_report(cap_env *env);
IOTDM_NODISCARD iotdm_result cap_reboot_start(cap_env *env, void **out_state, cap_timer *out_timer);
void cap_reboot_stop(void *state);
IOTDM_NODISCARD iotdm_result cap_factory_reset_start(cap_env *env, void **out_state,
                                                     cap_timer *out_timer);
void cap_factory_reset_stop(void *state);
IOTDM_NODISCARD iotdm_result cap_time_start(cap_env *env, void **out_state);
void cap_time_stop(void *state);
IOTDM_NODISCARD iotdm_result cap_report_start(cap_set *set);
/* dm*reprovision (provisioning.c): registered whatever the configuration, so that a device
 * without DPS answers why instead of "no such method". */
IOTDM_NODISCARD iotdm_result cap_provisioning_start(cap_env *env);
/* Issue 4: certificates.c, wifi.c, telemetry_level.c, apps.c, updates.c, logs.c. */
IOTDM_NODISCARD iotdm_result cap_certificates_start(cap_env *env, void **out_state);
void cap_certificates_stop(void *state);
IOTDM_NODISCARD iotdm_result cap_wifi_start(cap_env *env, void **out_state);
void cap_wifi_stop(void *state);
IOTDM_NODISCARD iotdm_result cap_telemetry_level_start(cap_env *env, void **out_state);
void cap_telemetry_level_stop(void *state);
IOTDM_NODISCARD iotdm_result cap_apps_start(cap_env *env, void **out_state, cap_timer *out_timer);
void cap_apps_stop(void *state);
IOTDM_NODISCARD iotdm_result cap_updates_start(cap_env *env, void **out_state,
                                               cap_timer *out_timer);
void cap_updates_stop(void *state);
IOTDM_NODISCARD iotdm_result cap_logs_start(cap_env *env, void **out_state, cap_timer *out_timer);
void cap_logs_stop(void *state);

/* Helpers shared by the capabilities (common.c). */
/* JSON text of a new reference, freed by the caller with free(). */
char *cap_dump(json_t *value);
/* {"state": state, "time": now, "message": message} */
json_t *cap_status(cap_env *env, const char *state, const char *message);
/* Reports the read-only property dm.<property> = value (takes the reference). A failure (the
 * outbox cannot store it) is logged: the next report of the property replaces it anyway. */
void cap_report(cap_env *env, const char *property, json_t *value);
/* iotdm_report_ack for dm.<property>, its failure logged. For outcomes the capability keeps in
 * its own state, which its read_state reports again (reportAll, the next start). */
void cap_ack_later(cap_env *env, const char *property, int64_t version, const iotdm_ack *ack);
/* Durable small JSON state per capability: <state_dir>/<name>.json, replaced all or nothing
 * (atomic_file_write); a failure to save is logged with its reason. */
json_t *cap_state_load(cap_env *env, const char *name);
IOTDM_NODISCARD iotdm_result cap_state_save(cap_env *env, const char *name, json_t *state);
/* Parses JSON text into an object; NULL (and an ack 400) when it is not one. */
json_t *cap_parse_object(const char *json, iotdm_ack *ack);
/* Sets ack->value_json to value's text (takes the reference), kept in *slot until the next call. */
void cap_ack_value(iotdm_ack *ack, char **slot, json_t *value);
/* Sets ack to an error with a copied description kept in buf. */
void cap_ack_error(iotdm_ack *ack, int code, char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#endif
