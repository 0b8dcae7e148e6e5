/* DPS TPM attestation, device side (docs/protocol.md §7.10): the activation blob is opened with
 * the EK and imported under the SRK, so the HMAC key it carries never exists outside the TPM. */
#include "limpet/tpm_internal.h"

#include <string.h>
#include <tss2/tss2_mu.h>

typedef struct {
    TPM2B_ID_OBJECT credential;
    TPM2B_ENCRYPTED_SECRET secret;
    TPM2B_PRIVATE duplicate;
    TPM2B_ENCRYPTED_SECRET sym_seed;
    TPM2B_PUBLIC public_area;
    TPM2B_DATA uri_data; /* encrypted URI data: not used by DPS clients */
} activation_blob;

static iotdm_result parse_blob(const uint8_t *b, size_t len, activation_blob *out)
{
    size_t off = 0;
    memset(out, 0, sizeof *out);
    if (Tss2_MU_TPM2B_ID_OBJECT_Unmarshal(b, len, &off, &out->credential) ||
        Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal(b, len, &off, &out->secret) ||
        Tss2_MU_TPM2B_PRIVATE_Unmarshal(b, len, &off, &out->duplicate) ||
        Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal(b, len, &off, &out->sym_seed) ||
        Tss2_MU_TPM2B_PUBLIC_Unmarshal(b, len, &off, &out->public_area))
        return IOTDM_E_MALFORMED;
    if (off < len && Tss2_MU_TPM2B_DATA_Unmarshal(b, len, &off, &out->uri_data))
        return IOTDM_E_MALFORMED;
    return off == len ? IOTDM_OK : IOTDM_E_MALFORMED;
}

/* The EK's policy is PolicySecret(TPM_RH_ENDORSEMENT): a policy session satisfies it. */
static iotdm_result ek_policy_session(limpet_tpm *tpm, ESYS_TR *out)
{
    TPMT_SYM_DEF sym = {.algorithm = TPM2_ALG_NULL};
    TSS2_RC rc =
        Esys_StartAuthSession(tpm->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                              ESYS_TR_NONE, NULL, TPM2_SE_POLICY, &sym, TPM2_ALG_SHA256, out);
    if (rc != TSS2_RC_SUCCESS)
        return tpm_fail(tpm, "StartAuthSession", rc);
    rc = Esys_PolicySecret(tpm->esys, ESYS_TR_RH_ENDORSEMENT, *out, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                           ESYS_TR_NONE, NULL, NULL, NULL, 0, NULL, NULL);
    if (rc != TSS2_RC_SUCCESS) {
        Esys_FlushContext(tpm->esys, *out);
        return tpm_fail(tpm, "PolicySecret(endorsement)", rc);
    }
    return IOTDM_OK;
}

/* ActivateCredential(activate=SRK, key=EK): the credential is the inner-wrap key of the
 * duplicate. */
static iotdm_result activate_credential(limpet_tpm *tpm, ESYS_TR srk, const activation_blob *b,
                                        TPM2B_DIGEST **out_key)
{
    ESYS_TR ek, session;
    iotdm_result r = tpm_ek(tpm, &ek);
    if (r < 0)
        return r;
    r = ek_policy_session(tpm, &session);
    if (r == IOTDM_OK) {
        TSS2_RC rc = Esys_ActivateCredential(tpm->esys, srk, ek, ESYS_TR_PASSWORD, session,
                                             ESYS_TR_NONE, &b->credential, &b->secret, out_key);
        Esys_FlushContext(tpm->esys, session);
        if (rc != TSS2_RC_SUCCESS)
            r = tpm_fail(tpm, "ActivateCredential (not made for this TPM's EK/SRK?)", rc);
    }
    Esys_TR_Close(tpm->esys, &ek);
    return r;
}

static iotdm_result import_and_persist(limpet_tpm *tpm, ESYS_TR srk, const activation_blob *b,
                                       const TPM2B_DIGEST *wrap_key, uint32_t handle)
{
    TPM2B_DATA enc_key = {.size = wrap_key->size};
    memcpy(enc_key.buffer, wrap_key->buffer, wrap_key->size);
    TPMT_SYM_DEF_OBJECT sym = {.algorithm = TPM2_ALG_AES};
    sym.keyBits.aes = (TPMI_AES_KEY_BITS)(8 * wrap_key->size);
    sym.mode.aes = TPM2_ALG_CFB;
    TPM2B_PRIVATE *priv = NULL;
    ESYS_TR obj = ESYS_TR_NONE;
    iotdm_result r = IOTDM_OK;
    TSS2_RC rc = Esys_Import(tpm->esys, srk, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &enc_key,
                             &b->public_area, &b->duplicate, &b->sym_seed, &sym, &priv);
    memset(&enc_key, 0, sizeof enc_key);
    if (rc != TSS2_RC_SUCCESS)
        r = tpm_fail(tpm, "Import", rc);
    else if ((rc = Esys_Load(tpm->esys, srk, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, priv,
                             &b->public_area, &obj)) != TSS2_RC_SUCCESS)
        r = tpm_fail(tpm, "Load (imported key)", rc);
    else
        r = tpm_persist(tpm, obj, handle);
    if (obj != ESYS_TR_NONE)
        Esys_FlushContext(tpm->esys, obj);
    Esys_Free(priv);
    return r;
}

iotdm_result limpet_activate(limpet_tpm *tpm, unsigned slot, const uint8_t *blob, size_t len)
{
    if (slot >= LIMPET_SLOTS)
        return tpm_failf(tpm, IOTDM_E_MALFORMED, "slot %u out of range", slot);
    activation_blob b;
    if (parse_blob(blob, len, &b) < 0)
        return tpm_failf(tpm, IOTDM_E_MALFORMED, "malformed activation blob");
    ESYS_TR srk;
    iotdm_result r = tpm_srk(tpm, &srk);
    if (r < 0)
        return r;
    TPM2B_DIGEST *wrap_key = NULL;
    r = activate_credential(tpm, srk, &b, &wrap_key);
    if (r == IOTDM_OK)
        r = import_and_persist(tpm, srk, &b, wrap_key, LIMPET_HMAC_KEY_BASE + slot);
    if (wrap_key)
        memset(wrap_key->buffer, 0, wrap_key->size);
    Esys_Free(wrap_key);
    Esys_TR_Close(tpm->esys, &srk);
    return r;
}
