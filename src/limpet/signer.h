/* libiotdm's TPM SAS signer: an iotdm_sas_signer_fn that signs with a limpet slot's HMAC key. */
#ifndef IOTDM_LIMPET_SIGNER_H
#define IOTDM_LIMPET_SIGNER_H

#include <stddef.h>

#include "iotdm/client.h"
#include "limpet/tpm.h"

typedef struct {
    char tcti[256];
    unsigned slot;
    limpet_tpm *tpm; /* opened on first use, reopened after a failure */
} limpet_signer;

/* Opens the TPM, reads the slot's URI (host, device id) into out_uri and checks that the slot
 * has a key. On failure writes the reason into err. Free with limpet_signer_deinit. */
IOTDM_NODISCARD iotdm_result limpet_signer_init(limpet_signer *s, const char *tcti, unsigned slot,
                                                limpet_uri *out_uri, char *err, size_t err_cap);
void limpet_signer_deinit(limpet_signer *s);

/* The iotdm_sas_signer_fn: ctx is a limpet_signer. */
IOTDM_NODISCARD iotdm_result limpet_signer_sign(void *ctx, const char *string_to_sign, size_t len,
                                                char *out_sig, size_t out_cap);

#endif
