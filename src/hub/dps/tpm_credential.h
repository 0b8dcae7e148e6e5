/* TPM 2.0 credentials made by the hub for DPS TPM attestation (docs/protocol.md §7.10): the
 * activation blob that carries an HMAC key into one device's TPM, so that only that TPM can use it.
 * Pure OpenSSL, no TPM stack: the TPM structures (TPM 2.0 Part 2) are marshaled here, big-endian,
 * and protected as TPM 2.0 Part 1 says (credential protection, duplication, KDFa §11.4.10.2). */
#ifndef IOTDM_HUB_DPS_TPM_CREDENTIAL_H
#define IOTDM_HUB_DPS_TPM_CREDENTIAL_H

#include <stddef.h>
#include <stdint.h>

#include "iotdm/result.h"

#define TPM_CRED_PUBLIC_MAX 1024 /* a marshaled TPM2B_PUBLIC we accept (RSA-4096: ~540 bytes) */
#define TPM_CRED_KEY_LEN    32   /* the HMAC-SHA256 key an activation blob delivers */
#define TPM_CRED_BLOB_MAX   2048 /* an activation blob, for protectors up to RSA-4096 */
#define TPM_CRED_REG_ID_LEN 52   /* unpadded base32 of a SHA-256 */

/* Checks that pub (a marshaled TPM2B_PUBLIC) is a key a credential can be protected with: RSA
 * 2048 to 4096 bits, SHA-256 name, restricted decryption (an EK or a storage root key), AES-CFB.
 * Returns IOTDM_OK, or IOTDM_E_MALFORMED with the reason (readable, no secret) in err. */
IOTDM_NODISCARD iotdm_result tpm_cred_check_key(const uint8_t *pub, size_t len, char *err,
                                                size_t err_cap);

/* The DPS registration id of an EK: lower-case unpadded RFC 4648 base32 of SHA-256(ek), ek being
 * the marshaled TPM2B_PUBLIC as the device sends it. */
void tpm_cred_registration_id(const uint8_t *ek, size_t len, char out[TPM_CRED_REG_ID_LEN + 1]);

/* Builds the activation blob that delivers key (a 32-byte HMAC-SHA256 key) to the TPM owning ek,
 * to be imported under srk (both marshaled TPM2B_PUBLIC):
 *   TPM2B_ID_OBJECT ‖ TPM2B_ENCRYPTED_SECRET   MakeCredential to the EK for the SRK's name; the
 *                                              credential is a fresh AES-128 inner-wrap key
 *   TPM2B_PRIVATE ‖ TPM2B_ENCRYPTED_SECRET     the key as a duplication blob, inner-wrapped with
 *                                              that AES key, outer-wrapped for the SRK
 *   TPM2B_PUBLIC ‖ TPM2B_DATA                  the key's public area (importable), empty data
 * Writes it into out and its length into *out_len. Returns IOTDM_OK; IOTDM_E_MALFORMED when ek or
 * srk is not a usable key (reason in err), IOTDM_E_TOO_LARGE when cap is short, IOTDM_E_INTERNAL
 * when OpenSSL fails. Every secret used on the way is wiped. */
IOTDM_NODISCARD iotdm_result tpm_cred_make_blob(const uint8_t *ek, size_t ek_len,
                                                const uint8_t *srk, size_t srk_len,
                                                const uint8_t key[TPM_CRED_KEY_LEN], uint8_t *out,
                                                size_t cap, size_t *out_len, char *err,
                                                size_t err_cap);

#endif
