/* Device Provisioning Service (DPS) registration over MQTT: a device that knows only the DPS
 * endpoint, an ID scope and its credentials learns which hub it belongs to and under which device
 * id (docs/protocol.md §7.2-7.9). Works against Azure DPS and against iotdm-hub's built-in DPS.
 *
 * Attestation: an individual enrollment's symmetric key, a group enrollment's key (the device key
 * is derived here, §7.8), or an X.509 client certificate. TPM attestation is HTTPS-only (§7.10) and
 * needs the key imported into the TPM: that is limpet's dps-register, not this API.
 *
 * The call blocks until DPS has answered or the timeout has passed. It needs no iotdm_client and
 * keeps no state between calls. Any thread may call it, but not while another thread creates or
 * frees a client or registers: libmosquitto's global initialisation is not thread-safe. */
#ifndef IOTDM_PROVISION_H
#define IOTDM_PROVISION_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "iotdm/client.h"
#include "iotdm/result.h"

#ifdef __cplusplus
extern "C" {
#endif

#define IOTDM_DPS_GLOBAL_ENDPOINT "global.azure-devices-provisioning.net"

/* Polled during the call; returning true abandons it with -ECANCELED (a daemon's SIGTERM). */
typedef bool (*iotdm_cancel_fn)(void *ctx);

/* Everything is read during the call only; zero means the default. struct_size: see client.h. */
typedef struct {
    size_t struct_size;   /* sizeof(iotdm_provision_config): iotdm_provision_config_init sets it */
    const char *endpoint; /* DPS host name; default IOTDM_DPS_GLOBAL_ENDPOINT */
    unsigned port;        /* MQTT over TLS; default 8883 */
    const char *id_scope; /* required */
    /* Required with a key. With a certificate, NULL takes the certificate's subject CN (DPS
     * requires them to be equal, §7.9). Case-insensitive, at most 128 of A-Z a-z 0-9 - . _ : */
    const char *registration_id;
    /* Attestation: exactly one of symmetric_key, group_key, cert_file+key_file. */
    const char *symmetric_key; /* individual enrollment key (base64) */
    const char *group_key;     /* enrollment group key (base64); never leaves this call */
    const char *cert_file;     /* PEM client certificate */
    const char *key_file;      /* its PEM private key */
    const char *ca_file;       /* PEM trust anchors for DPS; default: the system's */
    const char *payload_json;  /* custom payload (§7.7), JSON text; NULL: none */
    unsigned timeout_s;        /* the whole registration; default 60 */
    iotdm_log_fn log;
    void *log_ctx;
    iotdm_log_level log_level; /* default IOTDM_LOG_INFO */
    iotdm_cancel_fn cancel;
    void *cancel_ctx;
    /* Members added in later versions go here, after all the others. */
} iotdm_provision_config;

/* Zeroes *config and sets struct_size (compiled into the application). */
static inline void iotdm_provision_config_init(iotdm_provision_config *config)
{
    memset(config, 0, sizeof *config);
    config->struct_size = sizeof *config;
}

/* Where the device was assigned, or why not. Caller's storage: iotdm_provision_result_deinit
 * frees the payload and zeroes the key. */
typedef struct {
    char registration_id[129];
    char assigned_hub[256];
    char device_id[129];
    char status[16];    /* DPS's operation status: "assigned", "disabled", "failed", ... */
    char substatus[48]; /* "initialAssignment", "deviceDataMigrated", ... (may be empty) */
    /* The key to connect to the assigned hub with (secret): the individual key, or the key
     * derived from the group key. Empty for X.509. */
    char device_key[128];
    char *payload_json; /* registrationState.payload as JSON text (malloc'd), or NULL */
    /* On failure: DPS's errorCode (e.g. 401002; 0 when DPS gave none) and a readable reason
     * that quotes DPS's message. Never contains a secret. */
    int error_code;
    char error[512];
} iotdm_provision_result;

/* Registers with DPS and waits for the assignment, polling the operation as DPS asks
 * (retry-after). Returns IOTDM_OK with the assignment in *out, or:
 *   IOTDM_E_MALFORMED     a missing or contradictory setting, an unreadable certificate
 *   IOTDM_E_UNAUTHORIZED  DPS refused the credentials (wrong key, no enrollment: 401)
 *   IOTDM_E_DISABLED      the enrollment (or group) is disabled
 *   IOTDM_E_NOT_FOUND     unknown ID scope (404)
 *   IOTDM_E_THROTTLED     DPS kept answering 429 until the timeout
 *   IOTDM_E_TIMEOUT       no final answer within timeout_s
 *   IOTDM_E_NOT_ONLINE    DPS could not be reached (DNS, TCP, TLS)
 *   IOTDM_E_PROTOCOL      DPS answered something this client cannot read
 *   IOTDM_E_INTERNAL      DPS failed (5xx, status "failed" without a client error)
 *   -ECANCELED            config->cancel returned true
 *   IOTDM_E_UNSUPPORTED   config has members of a later version this library does not know
 * with out->error saying why (also logged). out is always initialized. */
IOTDM_NODISCARD iotdm_result iotdm_provision_register(const iotdm_provision_config *config,
                                                      iotdm_provision_result *out);

/* Frees out->payload_json and zeroes the result (the device key with it). */
void iotdm_provision_result_deinit(iotdm_provision_result *out);

/* The device key of a group enrollment member (§7.8):
 * base64(HMAC-SHA256(base64decode(group_key), registration_id)). out_cap >= 45. */
IOTDM_NODISCARD iotdm_result iotdm_provision_derive_key(const char *group_key,
                                                        const char *registration_id, char *out_key,
                                                        size_t out_cap);

#ifdef __cplusplus
}
#endif

#endif
