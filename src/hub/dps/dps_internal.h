/* Private to src/hub/dps: the provisioning context, attestation results and assignment. */
#ifndef IOTDM_HUB_DPS_INTERNAL_H
#define IOTDM_HUB_DPS_INTERNAL_H

#include "common/strmap.h"
#include "hub/dps/dps.h"
#include "hub/store/store.h"

#define DPS_OPS_MAX          4096   /* operations remembered for polling */
#define DPS_OP_TTL_MS        600000 /* an operation can be polled for 10 minutes */
#define DPS_OPERATION_MAX    80
#define DPS_ERR_BAD_REQUEST  400004
#define DPS_ERR_UNAUTHORIZED 401002
#define DPS_ERR_NOT_FOUND    404001
#define DPS_ERR_SERVER       500001

struct hub_dps {
    char id_scope[HUB_DPS_ID_SCOPE_MAX];
    strmap *ops; /* operationId -> dps_op* */
};

/* A finished operation, kept so that the device can poll it. */
typedef struct {
    char registration_id[HUB_ID_MAX];
    int64_t created_ms;
    json_t *result; /* RegistrationOperationStatus */
} dps_op;

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
} dps_match;

void dps_match_deinit(dps_match *m);

/* Finds the enrollment of registration_id that accepts creds (an individual enrollment first,
 * then the groups). On failure fills out with the 401 error (or the TPM challenge) and returns
 * false. */
bool dps_attest(hub *h, const char *registration_id, const json_t *request,
                const hub_dps_creds *creds, dps_match *m, hub_dps_reply *out);

/* TPM attestation (§3.8, dps_tpm.c): without a SAS token answers the 401 challenge carrying a new
 * activation blob; with one, checks it against the key of the last challenge. */
bool dps_tpm_attest(hub *h, const char *registration_id, const json_t *enrollment,
                    const json_t *request, const hub_dps_creds *creds, dps_match *m,
                    hub_dps_reply *out);

/* Assigns the device to this hub (creates or updates it, initial twin, registration record) and
 * returns the operation status body (new reference): "assigned", or "disabled"/"failed" with
 * errorCode and errorMessage, in which case nothing was created. */
json_t *dps_assign(hub *h, const char *registration_id, const dps_match *m, const json_t *payload,
                   const char *operation_id);

/* Azure DPS time stamps. */
void dps_timestamp(char out[40]);

#endif
