/* Private to src/hub/dps: the provisioning context, attestation results and assignment. */
#ifndef IOTDM_HUB_DPS_INTERNAL_H
#define IOTDM_HUB_DPS_INTERNAL_H

#include "common/sas.h"
#include "hub/dps/dps.h"
#include "hub/dps/tpm_credential.h"
#include "hub/store/store.h"

#define DPS_OPS_MAX              4096   /* operations kept for polling (the oldest go first) */
#define DPS_OP_TTL_MS            600000 /* an operation can be polled for 10 minutes */
#define DPS_OPERATION_MAX        80
#define DPS_TPM_CHALLENGES_MAX   1024   /* TPM challenges kept (the oldest go first) */
#define DPS_TPM_CHALLENGE_TTL_MS 600000 /* a device answers a challenge within 10 minutes */
#define DPS_ID_MAX               128 /* registration and enrollment group ids (docs/protocol.md §7.1) */
#define DPS_ERR_BAD_REQUEST      400004
#define DPS_ERR_UNAUTHORIZED     401002
#define DPS_ERR_NOT_FOUND        404001
#define DPS_ERR_SERVER           500001

struct hub_dps {
    char id_scope[HUB_DPS_ID_SCOPE_MAX];
};

/* TPM challenges are kept in the store (hub_tpm_challenge), in the sizes tpm_credential.c uses. */
_Static_assert(HUB_TPM_KEY_LEN == TPM_CRED_KEY_LEN, "the registration key is a TPM credential key");
_Static_assert(HUB_TPM_PUBLIC_MAX == TPM_CRED_PUBLIC_MAX, "an SRK is a TPM2B_PUBLIC we accept");

/* The enrollment a request matched, and the device credentials it leads to. */
typedef struct {
    hub_dps_kind kind;
    char enrollment_id[HUB_ID_MAX]; /* registration id or enrollment group id */
    json_t *enrollment;             /* owned */
    const char *mechanism;          /* "symmetricKey", "x509" or "tpm" */
    hub_auth_type auth;
    char primary_key[HUB_KEY_MAX];
    char secondary_key[HUB_KEY_MAX];
    char thumbprint[HUB_THUMBPRINT_MAX]; /* X.509: SHA-256 of the device's certificate */
    char *tpm_authentication_key; /* TPM: the activation blob carrying primary_key (base64) */
} dps_match;

void dps_match_deinit(dps_match *m);

/* Identifier rules (dps_ids.c). dps_id_valid: a registration or enrollment group id (§7.1): 1 to
 * DPS_ID_MAX letters, digits and - . _ :, the last a letter, a digit or '-'; what names the id in
 * the reason. dps_device_id_valid: IoT Hub's device id rule (§6.3, az_valid_device_id). Both
 * return true, or false with a readable reason in err that does not echo the id. */
bool dps_id_valid(const char *what, const char *id, char *err, size_t cap);
bool dps_device_id_valid(const char *id, char *err, size_t cap);

/* Finds the enrollment of registration_id that accepts creds (an individual enrollment first,
 * then the groups). On failure fills out with the 401 error (or the TPM challenge) and returns
 * false. */
bool dps_attest(hub *h, hub_store *store, const char *registration_id, const json_t *request,
                const hub_dps_creds *creds, dps_match *m, hub_dps_reply *out);

/* A SAS token whose sr names this registration ({idScope}/registrations/{regId}), with skn
 * "registration" when present, not expired; the signature is left to the caller. */
bool dps_sas_for_registration(hub *h, const char *token, const char *registration_id,
                              sas_token *tok);

/* TPM attestation (§7.10, dps_tpm.c), over HTTPS only. Without a SAS token: checks the request's EK
 * against the enrollment and answers the 401 challenge carrying a new registration key. With one:
 * checks it against the key of the last challenge and, for a register (request not NULL), makes
 * the device's hub key and the activation blob that delivers it. request NULL: an operation
 * status query, which only needs the SAS. The challenges are kept in the store, committed before
 * the 401 leaves, and pruned by hub_dps_housekeeping. */
bool dps_tpm_attest(hub *h, hub_store *store, const char *registration_id, const json_t *enrollment,
                    const json_t *request, const hub_dps_creds *creds, dps_match *m,
                    hub_dps_reply *out);

/* Assigns the device to this hub (creates or updates it, initial twin, registration record) and
 * returns the operation status body (new reference): "assigned", or "disabled"/"failed" with
 * errorCode and errorMessage, in which case nothing was created. The writes join the open group:
 * the caller commits them, with the operation. */
json_t *dps_assign(hub *h, hub_store *store, hub_work *w, const char *registration_id,
                   const dps_match *m, const json_t *payload, const char *operation_id);

/* Azure DPS time stamps. */
void dps_timestamp(char out[40]);

#endif
