/* TPM access: opening a TCTI, persistent handles, the EK and SRK, the registration id. */
#include "limpet/tpm_internal.h"

#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

iotdm_result tpm_failf(limpet_tpm *tpm, iotdm_result r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tpm->error, sizeof tpm->error, fmt, ap);
    va_end(ap);
    return r;
}

iotdm_result tpm_fail(limpet_tpm *tpm, const char *what, TSS2_RC rc)
{
    TSS2_RC base = rc & ~(TSS2_RC)TPM2_RC_N_MASK;
    bool missing = base == TPM2_RC_HANDLE || rc == TPM2_RC_HANDLE;
    return tpm_failf(tpm, missing ? IOTDM_E_NOT_FOUND : IOTDM_E_INTERNAL, "%s: %s", what,
                     Tss2_RC_Decode(rc));
}

iotdm_result limpet_tpm_open(const char *tcti, limpet_tpm **out_tpm, char *err, size_t err_cap)
{
    if (!tcti || !*tcti)
        tcti = getenv("TPM2TOOLS_TCTI");
    if (!tcti || !*tcti)
        tcti = LIMPET_DEFAULT_TCTI;
    limpet_tpm *t = calloc(1, sizeof *t);
    if (!t)
        return -12; /* ENOMEM */
    TSS2_RC rc = Tss2_TctiLdr_Initialize(tcti, &t->tcti);
    if (rc == TSS2_RC_SUCCESS)
        rc = Esys_Initialize(&t->esys, t->tcti, NULL);
    if (rc != TSS2_RC_SUCCESS) {
        snprintf(err, err_cap, "cannot open the TPM through '%s': %s", tcti, Tss2_RC_Decode(rc));
        limpet_tpm_close(t);
        return IOTDM_E_NOT_FOUND;
    }
    *out_tpm = t;
    return IOTDM_OK;
}

void limpet_tpm_close(limpet_tpm *tpm)
{
    if (!tpm)
        return;
    if (tpm->esys)
        Esys_Finalize(&tpm->esys);
    if (tpm->tcti)
        Tss2_TctiLdr_Finalize(&tpm->tcti);
    free(tpm);
}

const char *limpet_tpm_error(const limpet_tpm *tpm)
{
    return tpm->error[0] ? tpm->error : "no error";
}

bool limpet_handle_exists(limpet_tpm *tpm, uint32_t handle)
{
    TPMI_YES_NO more;
    TPMS_CAPABILITY_DATA *cap = NULL;
    TSS2_RC rc = Esys_GetCapability(tpm->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                    TPM2_CAP_HANDLES, handle, 1, &more, &cap);
    bool found = rc == TSS2_RC_SUCCESS && cap->data.handles.count > 0 &&
                 cap->data.handles.handle[0] == handle;
    Esys_Free(cap);
    return found;
}

iotdm_result tpm_tr_from_handle(limpet_tpm *tpm, uint32_t handle, ESYS_TR *out)
{
    if (!limpet_handle_exists(tpm, handle))
        return tpm_failf(tpm, IOTDM_E_NOT_FOUND, "nothing at TPM handle 0x%08x", handle);
    TSS2_RC rc =
        Esys_TR_FromTPMPublic(tpm->esys, handle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, out);
    return rc == TSS2_RC_SUCCESS ? IOTDM_OK : tpm_fail(tpm, "TR_FromTPMPublic", rc);
}

iotdm_result tpm_evict(limpet_tpm *tpm, uint32_t handle)
{
    ESYS_TR tr, none;
    iotdm_result r = tpm_tr_from_handle(tpm, handle, &tr);
    if (r == IOTDM_E_NOT_FOUND)
        return IOTDM_OK;
    if (r < 0)
        return r;
    TSS2_RC rc = Esys_EvictControl(tpm->esys, ESYS_TR_RH_OWNER, tr, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                   ESYS_TR_NONE, handle, &none);
    /* ESYS keeps the evicted object's ESYS_TR, name included, until it is closed: a later
     * TR_FromTPMPublic of the same handle (the slot's new key) would fail on that old name. */
    Esys_TR_Close(tpm->esys, &tr);
    return rc == TSS2_RC_SUCCESS ? IOTDM_OK : tpm_fail(tpm, "EvictControl (remove)", rc);
}

iotdm_result tpm_persist(limpet_tpm *tpm, ESYS_TR object, uint32_t handle)
{
    iotdm_result r = tpm_evict(tpm, handle);
    if (r < 0)
        return r;
    ESYS_TR persisted;
    TSS2_RC rc = Esys_EvictControl(tpm->esys, ESYS_TR_RH_OWNER, object, ESYS_TR_PASSWORD,
                                   ESYS_TR_NONE, ESYS_TR_NONE, handle, &persisted);
    if (rc != TSS2_RC_SUCCESS)
        return tpm_fail(tpm, "EvictControl (persist)", rc);
    Esys_TR_Close(tpm->esys, &persisted);
    return IOTDM_OK;
}

/* The TCG EK Credential Profile's RSA-2048 template (L-1): its policy is
 * PolicySecret(TPM_RH_ENDORSEMENT), which is why ActivateCredential needs a policy session. */
static void ek_template(TPM2B_PUBLIC *t)
{
    static const uint8_t policy[32] = {0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8,
                                       0x1a, 0x90, 0xcc, 0x8d, 0x46, 0xa5, 0xd7, 0x24,
                                       0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52, 0x0b, 0x64,
                                       0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa};
    memset(t, 0, sizeof *t);
    TPMT_PUBLIC *p = &t->publicArea;
    p->type = TPM2_ALG_RSA;
    p->nameAlg = TPM2_ALG_SHA256;
    p->objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                          TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_ADMINWITHPOLICY |
                          TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
    p->authPolicy.size = sizeof policy;
    memcpy(p->authPolicy.buffer, policy, sizeof policy);
    p->parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_AES;
    p->parameters.rsaDetail.symmetric.keyBits.aes = 128;
    p->parameters.rsaDetail.symmetric.mode.aes = TPM2_ALG_CFB;
    p->parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
    p->parameters.rsaDetail.keyBits = 2048;
    p->unique.rsa.size = 256;
}

/* The TCG Provisioning Guidance's RSA-2048 SRK template. */
static void srk_template(TPM2B_PUBLIC *t)
{
    ek_template(t);
    TPMT_PUBLIC *p = &t->publicArea;
    p->objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                          TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                          TPMA_OBJECT_NODA | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
    p->authPolicy.size = 0;
}

static iotdm_result ensure_primary(limpet_tpm *tpm, uint32_t handle, ESYS_TR *out)
{
    iotdm_result r = tpm_tr_from_handle(tpm, handle, out);
    if (r != IOTDM_E_NOT_FOUND)
        return r;
    bool ek = handle == LIMPET_EK_HANDLE;
    TPM2B_PUBLIC tmpl;
    if (ek)
        ek_template(&tmpl);
    else
        srk_template(&tmpl);
    TPM2B_SENSITIVE_CREATE sens = {0};
    TPM2B_DATA outside = {0};
    TPML_PCR_SELECTION pcrs = {0};
    ESYS_TR obj;
    TSS2_RC rc = Esys_CreatePrimary(tpm->esys, ek ? ESYS_TR_RH_ENDORSEMENT : ESYS_TR_RH_OWNER,
                                    ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sens, &tmpl,
                                    &outside, &pcrs, &obj, NULL, NULL, NULL, NULL);
    if (rc != TSS2_RC_SUCCESS)
        return tpm_fail(tpm, ek ? "CreatePrimary (EK)" : "CreatePrimary (SRK)", rc);
    r = tpm_persist(tpm, obj, handle);
    Esys_FlushContext(tpm->esys, obj);
    return r < 0 ? r : tpm_tr_from_handle(tpm, handle, out);
}

iotdm_result tpm_srk(limpet_tpm *tpm, ESYS_TR *out)
{
    return ensure_primary(tpm, LIMPET_SRK_HANDLE, out);
}

iotdm_result tpm_ek(limpet_tpm *tpm, ESYS_TR *out)
{
    return ensure_primary(tpm, LIMPET_EK_HANDLE, out);
}

static iotdm_result read_public(limpet_tpm *tpm, uint32_t handle, uint8_t *out, size_t cap,
                                size_t *out_len)
{
    ESYS_TR tr;
    iotdm_result r = ensure_primary(tpm, handle, &tr);
    if (r < 0)
        return r;
    TPM2B_PUBLIC *pub = NULL;
    TSS2_RC rc =
        Esys_ReadPublic(tpm->esys, tr, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, NULL, NULL);
    Esys_TR_Close(tpm->esys, &tr);
    if (rc != TSS2_RC_SUCCESS)
        return tpm_fail(tpm, "ReadPublic", rc);
    size_t off = 0;
    rc = Tss2_MU_TPM2B_PUBLIC_Marshal(pub, out, cap, &off);
    Esys_Free(pub);
    if (rc != TSS2_RC_SUCCESS)
        return tpm_failf(tpm, IOTDM_E_TOO_LARGE, "public area too large");
    *out_len = off;
    return IOTDM_OK;
}

iotdm_result limpet_ek_public(limpet_tpm *tpm, uint8_t *out, size_t cap, size_t *out_len)
{
    return read_public(tpm, LIMPET_EK_HANDLE, out, cap, out_len);
}

iotdm_result limpet_srk_public(limpet_tpm *tpm, uint8_t *out, size_t cap, size_t *out_len)
{
    return read_public(tpm, LIMPET_SRK_HANDLE, out, cap, out_len);
}

void limpet_registration_id(const uint8_t *ek_public, size_t len, char out[LIMPET_REG_ID_MAX])
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
    uint8_t d[SHA256_DIGEST_LENGTH];
    SHA256(ek_public, len, d);
    size_t n = 0;
    unsigned bits = 0, acc = 0;
    for (size_t i = 0; i < sizeof d; i++) {
        acc = (acc << 8) | d[i];
        bits += 8;
        while (bits >= 5) {
            out[n++] = alphabet[(acc >> (bits - 5)) & 31];
            bits -= 5;
        }
    }
    if (bits)
        out[n++] = alphabet[(acc << (5 - bits)) & 31];
    out[n] = '\0';
}

iotdm_result limpet_tpm_clear(limpet_tpm *tpm, const char *lockout_auth)
{
    TPM2B_AUTH auth = {0};
    size_t n = lockout_auth ? strlen(lockout_auth) : 0;
    if (n > sizeof auth.buffer)
        return tpm_failf(tpm, IOTDM_E_TOO_LARGE, "lockout authorization too long");
    auth.size = (UINT16)n;
    memcpy(auth.buffer, lockout_auth ? lockout_auth : "", n);
    TSS2_RC rc = Esys_TR_SetAuth(tpm->esys, ESYS_TR_RH_LOCKOUT, &auth);
    if (rc == TSS2_RC_SUCCESS)
        rc =
            Esys_Clear(tpm->esys, ESYS_TR_RH_LOCKOUT, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE);
    memset(&auth, 0, sizeof auth);
    return rc == TSS2_RC_SUCCESS ? IOTDM_OK : tpm_fail(tpm, "Clear", rc);
}
