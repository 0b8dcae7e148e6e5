/* libiotdm: the device's connection to the hub (Azure IoT Hub or iotdm-hub), shared by the device
 * management capabilities and the host application.
 *
 * One iotdm_client is one device identity on one MQTT connection. It keeps a durable outbox in its
 * state directory, so reported properties and telemetry survive restarts and outages. It runs in a
 * thread of its own (iotdm_client_start) or inside the host's event loop (iotdm_client_fd,
 * iotdm_client_next_timeout_ms, iotdm_client_process). There are no globals: everything hangs off
 * the handle, and several clients may live in one process.
 *
 * Threading: every function may be called from any thread; calls are serialized by the client's
 * lock. Callbacks run on the thread that runs the client (its own thread, or the caller of
 * iotdm_client_process), one at a time and in order, and never with the lock held: a callback
 * may call any function (except iotdm_client_process and iotdm_client_free), and may wait for
 * another thread that calls the library. Work that takes long (a download, an install) belongs
 * on the application's own thread, not in a callback: while a callback runs, the connection is
 * not served (keep-alives, methods); on_desired can answer 202 and iotdm_report_ack the outcome
 * later, from any thread. iotdm_report_all and iotdm_client_sas_token run callbacks too
 * (read_state, the signer), so from another thread they wait for the callback running then.
 * The log callback may be called from any thread that calls the library.
 *
 * ABI: a struct the application fills and hands to the library (iotdm_client_config,
 * iotdm_provision_config, iotdm_property_handler) starts with struct_size, the size the
 * application was built with: set it with the struct's _init function (or, in C, with
 * .struct_size = sizeof(<type>) in a designated initializer). Later versions add members only at
 * the end; the library reads what struct_size covers and takes the members the application does
 * not know as zero, their default. A struct_size that is missing (0) or smaller than the first
 * version is refused. The small structs the library fills or reads in every call (iotdm_ack,
 * iotdm_property, iotdm_outbox_stats, iotdm_provision_result) never change: anything new comes
 * as a new function. */
#ifndef IOTDM_CLIENT_H
#define IOTDM_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "iotdm/result.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct iotdm_client iotdm_client;

typedef enum {
    IOTDM_LOG_ERROR = 0,
    IOTDM_LOG_WARN,
    IOTDM_LOG_INFO,
    IOTDM_LOG_DEBUG,
} iotdm_log_level;

/* The library never prints; it hands each log line to the host. message is valid during the call
 * and never contains a secret. */
typedef void (*iotdm_log_fn)(void *ctx, iotdm_log_level level, const char *message);

typedef enum {
    IOTDM_CONNECTION_DISCONNECTED = 0,
    IOTDM_CONNECTION_CONNECTING,
    IOTDM_CONNECTION_CONNECTED,
    /* The hub refused the credentials (CONNACK 4 or 5: wrong key, unknown or disabled device).
     * The client keeps retrying, but slowly (see iotdm_client_config.refused_retry_s). */
    IOTDM_CONNECTION_REFUSED,
} iotdm_connection_state;

/* Connection state changes; reason is a short readable text ("CONNACK 5: not authorized"). */
typedef void (*iotdm_connection_fn)(void *ctx, iotdm_connection_state state, const char *reason);

/* Signs a SAS string-to-sign with the device's key wherever it lives (a TPM slot, an HSM):
 * writes the base64 HMAC-SHA256 signature, NUL-terminated, into out_sig. */
typedef IOTDM_NODISCARD iotdm_result (*iotdm_sas_signer_fn)(void *ctx, const char *string_to_sign,
                                                            size_t len, char *out_sig,
                                                            size_t out_cap);

/* Wall-clock milliseconds since the epoch; tests inject their own clock. */
typedef int64_t (*iotdm_clock_fn)(void *ctx);

/* Everything is copied by iotdm_client_new; zero means the default. */
typedef struct {
    size_t struct_size;    /* sizeof(iotdm_client_config): iotdm_client_config_init sets it */
    const char *host;      /* the hub's host name, as in a connection string (required) */
    unsigned port;         /* MQTT over TLS; default 8883 */
    const char *device_id; /* required */
    /* Authentication: exactly one of device_key, signer, cert_file+key_file. */
    const char *device_key; /* base64 symmetric key (SAS tokens signed here) */
    iotdm_sas_signer_fn signer;
    void *signer_ctx;
    const char *cert_file; /* PEM client certificate (X.509 authentication) */
    const char *key_file;  /* its PEM private key */
    const char *ca_file;   /* PEM trust anchors for the hub; default: the system's */
    const char *model_id;  /* IoT Plug and Play model id; default "dtmi:iotdm:DeviceManagement;1" */
    const char *state_dir; /* durable state (outbox, applied versions); required */
    unsigned keepalive_s;  /* 5 to 1177; default 240 */
    unsigned sas_ttl_s;    /* token lifetime; renewed at 80 %; default 3600 */
    unsigned backoff_max_s;       /* reconnect back-off cap (full jitter); default 120 */
    unsigned refused_retry_s;     /* wait after a refused CONNECT; default 300 */
    size_t outbox_max_bytes;      /* telemetry kept while offline; default 4 MiB */
    unsigned telemetry_max_age_s; /* telemetry older than this is dropped; default 86400 */
    iotdm_log_fn log;
    void *log_ctx;
    iotdm_log_level log_level; /* default IOTDM_LOG_INFO */
    iotdm_connection_fn on_connection;
    void *connection_ctx;
    iotdm_clock_fn clock; /* default: CLOCK_REALTIME */
    void *clock_ctx;
    /* Members added in later versions go here, after all the others. */
} iotdm_client_config;

/* Zeroes *config (every setting its default) and sets struct_size. Compiled into the application,
 * so struct_size is the size it was built with. */
static inline void iotdm_client_config_init(iotdm_client_config *config)
{
    memset(config, 0, sizeof *config);
    config->struct_size = sizeof *config;
}

/* Creates a client (no network activity yet). Opens or creates the outbox in state_dir.
 * Returns IOTDM_E_MALFORMED for a missing or contradictory setting (the log says which) or a
 * struct_size that was not set, IOTDM_E_UNSUPPORTED for members of a later version (set, not
 * zero) that this library does not know. */
IOTDM_NODISCARD iotdm_result iotdm_client_new(const iotdm_client_config *config,
                                              iotdm_client **out_client);

/* Stops the client if running, closes the connection (queued work stays in the outbox) and frees
 * everything. NULL is ignored. */
void iotdm_client_free(iotdm_client *client);

/* Runs the client in a thread of its own until iotdm_client_stop. */
IOTDM_NODISCARD iotdm_result iotdm_client_start(iotdm_client *client);
void iotdm_client_stop(iotdm_client *client);

/* Running inside the host's loop instead: wait until iotdm_client_fd() is readable or
 * iotdm_client_next_timeout_ms() have passed (-1: no timer), then call iotdm_client_process().
 * The descriptor stays the same for the client's lifetime. iotdm_client_process returns -EDEADLK
 * when called from a callback (the client is in the middle of its work); another thread calling
 * it waits for the one inside. */
int iotdm_client_fd(iotdm_client *client);
int iotdm_client_next_timeout_ms(iotdm_client *client);
IOTDM_NODISCARD iotdm_result iotdm_client_process(iotdm_client *client);

iotdm_connection_state iotdm_client_connection_state(iotdm_client *client);

/* The client's clock (the injected one in tests). */
int64_t iotdm_client_now_ms(iotdm_client *client);

/* A device SAS token for {host}/devices/{deviceId} (docs/protocol.md §3.2), signed with the
 * client's own credentials (its device_key or its signer) and valid for ttl_s seconds of the real
 * clock: for the device's HTTPS calls to the hub (file upload) made by another process, which then
 * needs neither the key nor the signer. Writes the NUL-terminated token into out (a secret: zero it
 * after use). Returns IOTDM_E_UNSUPPORTED for a client with an X.509 certificate, IOTDM_E_TOO_LARGE
 * when out_cap is too small, or the signer's error. */
IOTDM_NODISCARD iotdm_result iotdm_client_sas_token(iotdm_client *client, unsigned ttl_s, char *out,
                                                    size_t out_cap);

/* Messages pending in the outbox (reported patches, telemetry). */
typedef struct {
    size_t reported_pending;
    size_t telemetry_pending;
    size_t telemetry_dropped; /* since the client was created */
} iotdm_outbox_stats;
void iotdm_client_outbox_stats(iotdm_client *client, iotdm_outbox_stats *out_stats);

#ifdef __cplusplus
}
#endif

#endif
