/* The TPM SAS signer for libiotdm: the key stays in the TPM, only signatures leave it. */
#include "limpet/signer.h"

#include <stdio.h>
#include <string.h>

iotdm_result limpet_signer_init(limpet_signer *s, const char *tcti, unsigned slot,
                                limpet_uri *out_uri, char *err, size_t err_cap)
{
    memset(s, 0, sizeof *s);
    snprintf(s->tcti, sizeof s->tcti, "%s", tcti ? tcti : "");
    s->slot = slot;
    iotdm_result r = limpet_tpm_open(s->tcti, &s->tpm, err, err_cap);
    if (r < 0)
        return r;
    char uri[LIMPET_URI_MAX + 1];
    r = limpet_slot_uri_read(s->tpm, slot, uri);
    if (r == IOTDM_OK && limpet_uri_parse(uri, out_uri) < 0)
        r = IOTDM_E_MALFORMED;
    if (r == IOTDM_OK && !limpet_handle_exists(s->tpm, LIMPET_HMAC_KEY_BASE + slot))
        r = IOTDM_E_NOT_FOUND;
    if (r < 0) {
        snprintf(err, err_cap, "TPM slot %u: %s", slot,
                 r == IOTDM_E_MALFORMED   ? "malformed URI"
                 : r == IOTDM_E_NOT_FOUND ? "no URI or no HMAC key (provision the slot first)"
                                          : limpet_tpm_error(s->tpm));
        limpet_signer_deinit(s);
    }
    return r;
}

void limpet_signer_deinit(limpet_signer *s)
{
    limpet_tpm_close(s->tpm);
    s->tpm = NULL;
}

iotdm_result limpet_signer_sign(void *ctx, const char *string_to_sign, size_t len, char *out_sig,
                                size_t out_cap)
{
    limpet_signer *s = ctx;
    char err[256];
    if (!s->tpm && limpet_tpm_open(s->tcti, &s->tpm, err, sizeof err) < 0)
        return IOTDM_E_NOT_FOUND;
    iotdm_result r = limpet_slot_sign_b64(s->tpm, s->slot, string_to_sign, len, out_sig, out_cap);
    if (r < 0) {
        /* A resource manager restart or a swtpm reconnect leaves a dead context: start afresh
         * on the next renewal. */
        limpet_signer_deinit(s);
    }
    return r;
}
