/* Shared access signatures (docs/protocol.md §3): signing, parsing and verification. */
#ifndef IOTDM_COMMON_SAS_H
#define IOTDM_COMMON_SAS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iotdm/result.h"

#define SAS_TOKEN_MAX 1024
#define SAS_SIG_LEN   44 /* base64 of a SHA-256 HMAC, with padding */

/* HMAC-SHA256 of msg with the base64 key; writes the base64 signature (SAS_SIG_LEN + 1 bytes). */
IOTDM_NODISCARD iotdm_result sas_sign(const char *key_b64, const char *msg, size_t msg_len,
                                      char out_sig[SAS_SIG_LEN + 1]);

/* Builds "SharedAccessSignature
 * sr=<urlenc(resource)>&sig=<urlenc(sig)>&se=<expiry>[&skn=<policy>]". */
IOTDM_NODISCARD iotdm_result sas_build_token(const char *resource, const char *key_b64,
                                             const char *policy, int64_t expiry, char *out,
                                             size_t out_cap);

/* A parsed token; the spans point into the caller's string. sr is kept raw (still encoded, in the
 * client's hex case) because the signature covers it exactly as sent. */
typedef struct {
    const char *sr;
    size_t sr_len;
    const char *sig;
    size_t sig_len;
    const char *skn; /* NULL when absent */
    size_t skn_len;
    int64_t expiry;
} sas_token;

/* Parses a token in any field order. IOTDM_E_MALFORMED when the prefix, sr, sig or se is missing,
 * or when the token holds a NUL byte, raw or as %00. */
IOTDM_NODISCARD iotdm_result sas_parse(const char *token, size_t len, sas_token *out);

/* Checks the signature against one base64 key in constant time. */
bool sas_signature_valid(const sas_token *token, const char *key_b64);

/* URL-decodes token->sr into out (NUL-terminated), strips a trailing '/', and checks that it is a
 * segment-wise prefix of resource, case-insensitively in its first segment (the host). */
bool sas_resource_covers(const sas_token *token, const char *resource);

/* Group-enrollment device key: base64(HMAC-SHA256(base64decode(group_key), registration_id)). */
IOTDM_NODISCARD iotdm_result sas_derive_device_key(const char *group_key_b64,
                                                   const char *registration_id,
                                                   char out_key[SAS_SIG_LEN + 1]);

#endif
