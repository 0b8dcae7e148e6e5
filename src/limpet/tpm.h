/* The TPM 2.0 helpers shared by limpet, libiotdm's TPM signer and the agent (tpm2-tss ESAPI). */
#ifndef IOTDM_LIMPET_TPM_H
#define IOTDM_LIMPET_TPM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iotdm/result.h"

/* Handles and sizes: docs/limpet.md ("Slots and TPM objects") and docs/protocol.md §7.10. */
#define LIMPET_EK_HANDLE      0x81010001u
#define LIMPET_SRK_HANDLE     0x81000001u
#define LIMPET_HMAC_KEY_BASE  0x81000100u /* + slot */
#define LIMPET_URI_INDEX_BASE 0x01400100u /* + slot */
#define LIMPET_SLOTS          10
#define LIMPET_URI_MAX        512
#define LIMPET_PUBLIC_MAX     1024 /* a marshaled TPM2B_PUBLIC (an RSA-2048 one is ~314 bytes) */
#define LIMPET_REG_ID_MAX     64   /* base32 of a SHA-256: 52 characters */
#define LIMPET_DEFAULT_TCTI   "device:/dev/tpmrm0"

typedef struct limpet_tpm limpet_tpm;

/* Opens the TPM through a TCTI configuration string ("device:/dev/tpmrm0",
 * "swtpm:host=127.0.0.1,port=2321", "mssim:…"; NULL: $TPM2TOOLS_TCTI, then the default). On
 * failure writes the reason into err and returns a negative result. */
IOTDM_NODISCARD iotdm_result limpet_tpm_open(const char *tcti, limpet_tpm **out_tpm, char *err,
                                             size_t err_cap);
void limpet_tpm_close(limpet_tpm *tpm);

/* The reason for the last failure on this handle (never a secret). */
const char *limpet_tpm_error(const limpet_tpm *tpm);

/* Whether a persistent object or NV index exists. */
bool limpet_handle_exists(limpet_tpm *tpm, uint32_t handle);

/* The EK (RSA-2048, TCG default template) and the SRK (RSA-2048 storage key), created and
 * persisted at their handles when absent. Writes the marshaled TPM2B_PUBLIC into out. */
IOTDM_NODISCARD iotdm_result limpet_ek_public(limpet_tpm *tpm, uint8_t *out, size_t cap,
                                              size_t *out_len);
IOTDM_NODISCARD iotdm_result limpet_srk_public(limpet_tpm *tpm, uint8_t *out, size_t cap,
                                               size_t *out_len);

/* DPS registration id: lower-case unpadded base32 of SHA-256(ek_public). */
void limpet_registration_id(const uint8_t *ek_public, size_t len, char out[LIMPET_REG_ID_MAX]);

/* Slots: the hub URI "host/deviceId[/moduleId]" in NV, the HMAC key persisted in the TPM. */
IOTDM_NODISCARD iotdm_result limpet_slot_uri_write(limpet_tpm *tpm, unsigned slot, const char *uri);
IOTDM_NODISCARD iotdm_result limpet_slot_uri_read(limpet_tpm *tpm, unsigned slot,
                                                  char out[LIMPET_URI_MAX + 1]);
IOTDM_NODISCARD iotdm_result limpet_slot_uri_delete(limpet_tpm *tpm, unsigned slot);
/* Creates a keyed-hash (HMAC-SHA256) object under the SRK holding key and persists it at the
 * slot's handle, replacing what was there. */
IOTDM_NODISCARD iotdm_result limpet_slot_key_create(limpet_tpm *tpm, unsigned slot,
                                                    const uint8_t *key, size_t len);
IOTDM_NODISCARD iotdm_result limpet_slot_key_evict(limpet_tpm *tpm, unsigned slot);
/* HMAC-SHA256 of data computed inside the TPM with the slot's key. */
IOTDM_NODISCARD iotdm_result limpet_slot_hmac(limpet_tpm *tpm, unsigned slot, const void *data,
                                              size_t len, uint8_t out_mac[32]);

/* A device SAS token for the slot's URI, signed in the TPM:
 * "SharedAccessSignature sr=…&sig=…&se=<expiry>". Also returns the URI's host and device id. */
typedef struct {
    char host[256];
    char device_id[129];
    char module_id[129];
} limpet_uri;
IOTDM_NODISCARD iotdm_result limpet_uri_parse(const char *uri, limpet_uri *out);
IOTDM_NODISCARD iotdm_result limpet_slot_sas(limpet_tpm *tpm, unsigned slot, int64_t expiry,
                                             char *out, size_t cap, limpet_uri *out_uri);

/* Signs an arbitrary SAS string-to-sign (base64 signature, NUL-terminated) with the slot key. */
IOTDM_NODISCARD iotdm_result limpet_slot_sign_b64(limpet_tpm *tpm, unsigned slot, const char *msg,
                                                  size_t len, char *out_sig, size_t cap);

/* Processes a DPS activation blob (docs/protocol.md §7.10): ActivateCredential with the EK,
 * Import under the SRK with the inner-wrap key, Load, persist at the slot's key handle. */
IOTDM_NODISCARD iotdm_result limpet_activate(limpet_tpm *tpm, unsigned slot, const uint8_t *blob,
                                             size_t len);

/* TPM2_Clear with the lockout authorization (NULL: empty). */
IOTDM_NODISCARD iotdm_result limpet_tpm_clear(limpet_tpm *tpm, const char *lockout_auth);

#endif
