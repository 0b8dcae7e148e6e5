/* Device Provisioning Service inside the hub (docs/protocol.md §7): registration, attestation,
 * assignment to this hub, operation status. Shared by the MQTT and HTTPS device transports. */
#ifndef IOTDM_HUB_DPS_DPS_H
#define IOTDM_HUB_DPS_DPS_H

#include <jansson.h>
#include <openssl/ssl.h>
#include <stdbool.h>

#include "hub/hub.h"

#define HUB_DPS_POLICY       "provisioningserviceowner"
#define HUB_DPS_RETRY_AFTER  1 /* seconds a device waits before polling an operation */
#define HUB_DPS_ID_SCOPE_MAX 64

/* What a device presented with its request. */
typedef struct {
    char *sas;              /* MQTT password or HTTP Authorization header (owned); NULL when none */
    X509 *cert;             /* the device's TLS client certificate, or NULL */
    STACK_OF(X509) * chain; /* the chain it sent with it (may be NULL) */
    bool mqtt;              /* came over MQTT, where DPS does not serve TPM attestation (§7.2) */
} hub_dps_creds;

/* An answer in transport-neutral form: the HTTP status (also the MQTT response topic's status),
 * retry-after seconds (-1: none) and the JSON body (owned; never NULL after a call). */
typedef struct {
    int status;
    int retry_after;
    json_t *body;
} hub_dps_reply;

void hub_dps_reply_deinit(hub_dps_reply *reply);

/* Takes the client certificate and chain of a TLS connection (references, so that a unit of work
 * can check them after the connection is gone) and the SAS token (copied). */
void hub_dps_creds_init(hub_dps_creds *creds, SSL *ssl, const char *sas, bool mqtt);
void hub_dps_creds_deinit(hub_dps_creds *creds);

/* Loads or creates the ID scope (--id-scope, else DIR/idscope, else a new one saved there), writes
 * DIR/dps.connstr and creates h->dps. */
IOTDM_NODISCARD iotdm_result hub_dps_init(hub *h);
void hub_dps_free(hub *h);
/* Deletes the operations past DPS_OP_TTL_MS, then the oldest beyond DPS_OPS_MAX, and the expired
 * TPM challenges, then the oldest beyond DPS_TPM_CHALLENGES_MAX (from the hub's housekeeping
 * timer; the caller commits). */
void hub_dps_housekeeping(hub_store *store, int64_t now_ms);
const char *hub_dps_id_scope(const hub *h);

/* PUT {idScope}/registrations/{regId}/register with the DeviceRegistration body (§7.4, §7.11).
 * Attests the device, assigns it (the device created or updated in the registry) and stores the
 * operation's result, committed and synced, then answers 202 with an operationId; wrong
 * credentials, an unknown registration id or a bad body answer 4xx with Azure's DPS error body and
 * change nothing. */
void hub_dps_register(hub *h, hub_store *store, hub_work *w, const char *id_scope,
                      const char *registration_id, const char *body, size_t body_len,
                      const hub_dps_creds *creds, hub_dps_reply *out);

/* GET {idScope}/registrations/{regId}/operations/{operationId}: the stored result, for
 * DPS_OP_TTL_MS after the register (across restarts); 404 when unknown, expired or made for another
 * registration id. attested: the transport already attested this registration id (an MQTT
 * connection whose register succeeded); otherwise creds are checked again. */
void hub_dps_operation(hub *h, hub_store *store, const char *id_scope, const char *registration_id,
                       const char *operation_id, const hub_dps_creds *creds, bool attested,
                       hub_dps_reply *out);

/* Service API (dps_enrollment.c). prepare checks an enrollment body for kind and id, completes it
 * (generated keys, defaults, time stamps; old is the stored one or NULL) and returns the document
 * to store, or NULL with a readable reason in err. The views add the etag and replace certificates
 * by their "info". All return new references. */
json_t *dps_enrollment_prepare(hub *h, hub_dps_kind kind, const char *id, const json_t *body,
                               const json_t *old, char *err, size_t cap);
json_t *dps_enrollment_view(const json_t *doc, uint64_t etag);
json_t *dps_registration_view(const json_t *doc, uint64_t etag);

/* Azure's DPS error body (§7.4, §7.11), used by the device and the service API alike:
 * {"errorCode","trackingId","message","timestampUtc"} (new reference). errorCode is the 6-digit
 * code, HTTP status * 1000 + n. */
json_t *hub_dps_error_body(int error_code, const char *message);
/* Fills out with that body and its status (error_code / 1000), and logs the refusal. */
void hub_dps_error(hub_dps_reply *out, int error_code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
