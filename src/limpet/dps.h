/* DPS registration with TPM attestation over HTTPS (docs/protocol.md §7.10, §7.11). */
#ifndef IOTDM_LIMPET_DPS_H
#define IOTDM_LIMPET_DPS_H

#include "limpet/tpm.h"

typedef struct {
    const char *endpoint; /* DPS host, optionally host:port */
    const char *id_scope;
    const char *ca_file; /* PEM trust anchors; NULL: the system's */
    unsigned slot;       /* receives the hub key and "assignedHub/deviceId" */
    unsigned timeout_s;  /* whole registration; default 120 */
} limpet_dps_options;

typedef struct {
    char registration_id[LIMPET_REG_ID_MAX];
    char status[32];
    char assigned_hub[256];
    char device_id[129];
    char error[512]; /* why it failed, readable */
} limpet_dps_result;

/* Registers, imports the hub key into the slot's key handle (it never leaves the TPM) and stores
 * the assignment as the slot's URI. */
IOTDM_NODISCARD iotdm_result limpet_dps_register(limpet_tpm *tpm, const limpet_dps_options *o,
                                                 limpet_dps_result *out);

#endif
