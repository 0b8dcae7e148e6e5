/* Slots (docs/limpet.md, "Slots and TPM objects"): the hub URI in an NV index, an HMAC key
 * persisted in the TPM, and SAS tokens signed with that key inside the TPM. */
#include "limpet/tpm_internal.h"

#include <stdio.h>
#include <string.h>

#include "common/base64.h"
#include "common/urlenc.h"

static iotdm_result check_slot(limpet_tpm *tpm, unsigned slot)
{
    if (slot >= LIMPET_SLOTS)
        return tpm_failf(tpm, IOTDM_E_MALFORMED, "slot %u out of range 0-%d", slot,
                         LIMPET_SLOTS - 1);
    return IOTDM_OK;
}

iotdm_result limpet_slot_uri_delete(limpet_tpm *tpm, unsigned slot)
{
    iotdm_result r = check_slot(tpm, slot);
    ESYS_TR nv;
    if (r == IOTDM_OK)
        r = tpm_tr_from_handle(tpm, LIMPET_URI_INDEX_BASE + slot, &nv);
    if (r < 0)
        return r;
    TSS2_RC rc = Esys_NV_UndefineSpace(tpm->esys, ESYS_TR_RH_OWNER, nv, ESYS_TR_PASSWORD,
                                       ESYS_TR_NONE, ESYS_TR_NONE);
    return rc == TSS2_RC_SUCCESS ? IOTDM_OK : tpm_fail(tpm, "NV_UndefineSpace", rc);
}

iotdm_result limpet_slot_uri_write(limpet_tpm *tpm, unsigned slot, const char *uri)
{
    size_t n = strlen(uri);
    if (check_slot(tpm, slot) < 0)
        return IOTDM_E_MALFORMED;
    if (n == 0 || n > LIMPET_URI_MAX)
        return tpm_failf(tpm, IOTDM_E_MALFORMED, "the URI must have 1 to %d characters",
                         LIMPET_URI_MAX);
    iotdm_result r = limpet_slot_uri_delete(tpm, slot);
    if (r < 0 && r != IOTDM_E_NOT_FOUND)
        return r;
    /* Sized to the URI, so that a read returns exactly what was written. */
    TPM2B_NV_PUBLIC pub = {.nvPublic = {
                               .nvIndex = LIMPET_URI_INDEX_BASE + slot,
                               .nameAlg = TPM2_ALG_SHA256,
                               .attributes = TPMA_NV_AUTHREAD | TPMA_NV_AUTHWRITE | TPMA_NV_NO_DA,
                               .dataSize = (UINT16)n,
                           }};
    TPM2B_AUTH auth = {0};
    ESYS_TR nv;
    TSS2_RC rc = Esys_NV_DefineSpace(tpm->esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                     ESYS_TR_NONE, &auth, &pub, &nv);
    if (rc != TSS2_RC_SUCCESS)
        return tpm_fail(tpm, "NV_DefineSpace", rc);
    TPM2B_MAX_NV_BUFFER data = {.size = (UINT16)n};
    memcpy(data.buffer, uri, n);
    rc = Esys_NV_Write(tpm->esys, nv, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &data, 0);
    Esys_TR_Close(tpm->esys, &nv);
    return rc == TSS2_RC_SUCCESS ? IOTDM_OK : tpm_fail(tpm, "NV_Write", rc);
}

iotdm_result limpet_slot_uri_read(limpet_tpm *tpm, unsigned slot, char out[LIMPET_URI_MAX + 1])
{
    iotdm_result r = check_slot(tpm, slot);
    ESYS_TR nv;
    if (r == IOTDM_OK)
        r = tpm_tr_from_handle(tpm, LIMPET_URI_INDEX_BASE + slot, &nv);
    if (r < 0)
        return r;
    TPM2B_NV_PUBLIC *pub = NULL;
    TPM2B_MAX_NV_BUFFER *data = NULL;
    TSS2_RC rc =
        Esys_NV_ReadPublic(tpm->esys, nv, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, NULL);
    UINT16 size = rc == TSS2_RC_SUCCESS ? pub->nvPublic.dataSize : 0;
    if (rc == TSS2_RC_SUCCESS && size > LIMPET_URI_MAX)
        r = tpm_failf(tpm, IOTDM_E_TOO_LARGE, "NV index of slot %u too large", slot);
    else if (rc == TSS2_RC_SUCCESS)
        rc = Esys_NV_Read(tpm->esys, nv, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, size, 0,
                          &data);
    if (r == IOTDM_OK && rc != TSS2_RC_SUCCESS)
        r = tpm_fail(tpm, "NV_Read", rc);
    if (r == IOTDM_OK) {
        memcpy(out, data->buffer, data->size);
        out[data->size] = '\0';
    }
    Esys_Free(pub);
    Esys_Free(data);
    Esys_TR_Close(tpm->esys, &nv);
    return r;
}

iotdm_result limpet_slot_key_evict(limpet_tpm *tpm, unsigned slot)
{
    if (check_slot(tpm, slot) < 0)
        return IOTDM_E_MALFORMED;
    return tpm_evict(tpm, LIMPET_HMAC_KEY_BASE + slot);
}

/* A keyed-hash object whose sensitive data is the caller's key: the TPM keeps it, wrapped by
 * the SRK, and only ever uses it to compute HMACs. */
iotdm_result limpet_slot_key_create(limpet_tpm *tpm, unsigned slot, const uint8_t *key, size_t len)
{
    TPM2B_SENSITIVE_CREATE sens = {0};
    if (check_slot(tpm, slot) < 0)
        return IOTDM_E_MALFORMED;
    if (len == 0 || len > sizeof sens.sensitive.data.buffer)
        return tpm_failf(tpm, IOTDM_E_MALFORMED, "the key must have 1 to %zu bytes",
                         sizeof sens.sensitive.data.buffer);
    ESYS_TR srk, obj = ESYS_TR_NONE;
    iotdm_result r = tpm_srk(tpm, &srk);
    if (r < 0)
        return r;
    sens.sensitive.data.size = (UINT16)len;
    memcpy(sens.sensitive.data.buffer, key, len);
    TPM2B_PUBLIC tmpl = {.publicArea = {
                             .type = TPM2_ALG_KEYEDHASH,
                             .nameAlg = TPM2_ALG_SHA256,
                             .objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                                 TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA |
                                                 TPMA_OBJECT_SIGN_ENCRYPT,
                         }};
    tmpl.publicArea.parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_HMAC;
    tmpl.publicArea.parameters.keyedHashDetail.scheme.details.hmac.hashAlg = TPM2_ALG_SHA256;
    TPM2B_DATA outside = {0};
    TPML_PCR_SELECTION pcrs = {0};
    TPM2B_PRIVATE *priv = NULL;
    TPM2B_PUBLIC *pub = NULL;
    TSS2_RC rc = Esys_Create(tpm->esys, srk, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sens,
                             &tmpl, &outside, &pcrs, &priv, &pub, NULL, NULL, NULL);
    memset(&sens, 0, sizeof sens);
    if (rc != TSS2_RC_SUCCESS)
        r = tpm_fail(tpm, "Create (HMAC key)", rc);
    else if ((rc = Esys_Load(tpm->esys, srk, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, priv,
                             pub, &obj)) != TSS2_RC_SUCCESS)
        r = tpm_fail(tpm, "Load (HMAC key)", rc);
    else
        r = tpm_persist(tpm, obj, LIMPET_HMAC_KEY_BASE + slot);
    if (obj != ESYS_TR_NONE)
        Esys_FlushContext(tpm->esys, obj);
    Esys_Free(priv);
    Esys_Free(pub);
    Esys_TR_Close(tpm->esys, &srk);
    return r;
}

/* TPM2_HMAC takes at most TPM2_MAX_DIGEST_BUFFER bytes; longer input goes through a sequence. */
static TSS2_RC hmac_sequence(limpet_tpm *tpm, ESYS_TR key, const uint8_t *p, size_t len,
                             TPM2B_DIGEST **out)
{
    TPM2B_AUTH auth = {0};
    ESYS_TR seq;
    TSS2_RC rc = Esys_HMAC_Start(tpm->esys, key, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                                 &auth, TPM2_ALG_SHA256, &seq);
    while (rc == TSS2_RC_SUCCESS && len > TPM2_MAX_DIGEST_BUFFER) {
        TPM2B_MAX_BUFFER chunk = {.size = TPM2_MAX_DIGEST_BUFFER};
        memcpy(chunk.buffer, p, chunk.size);
        rc = Esys_SequenceUpdate(tpm->esys, seq, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                                 &chunk);
        p += chunk.size, len -= chunk.size;
    }
    if (rc != TSS2_RC_SUCCESS)
        return rc;
    TPM2B_MAX_BUFFER last = {.size = (UINT16)len};
    memcpy(last.buffer, p, len);
    return Esys_SequenceComplete(tpm->esys, seq, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                                 &last, TPM2_RH_NULL, out, NULL);
}

iotdm_result limpet_slot_hmac(limpet_tpm *tpm, unsigned slot, const void *data, size_t len,
                              uint8_t out_mac[32])
{
    ESYS_TR key;
    iotdm_result r = check_slot(tpm, slot);
    if (r == IOTDM_OK)
        r = tpm_tr_from_handle(tpm, LIMPET_HMAC_KEY_BASE + slot, &key);
    if (r < 0)
        return r == IOTDM_E_NOT_FOUND
                   ? tpm_failf(tpm, r, "slot %u has no HMAC key (import one first)", slot)
                   : r;
    TPM2B_DIGEST *mac = NULL;
    TSS2_RC rc;
    if (len <= TPM2_MAX_DIGEST_BUFFER) {
        TPM2B_MAX_BUFFER buf = {.size = (UINT16)len};
        memcpy(buf.buffer, data, len);
        rc = Esys_HMAC(tpm->esys, key, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &buf,
                       TPM2_ALG_SHA256, &mac);
    } else {
        rc = hmac_sequence(tpm, key, data, len, &mac);
    }
    Esys_TR_Close(tpm->esys, &key);
    if (rc != TSS2_RC_SUCCESS)
        return tpm_fail(tpm, "HMAC", rc);
    r = mac->size == 32 ? IOTDM_OK : tpm_failf(tpm, IOTDM_E_PROTOCOL, "unexpected HMAC size");
    if (r == IOTDM_OK)
        memcpy(out_mac, mac->buffer, 32);
    Esys_Free(mac);
    return r;
}

iotdm_result limpet_slot_sign_b64(limpet_tpm *tpm, unsigned slot, const char *msg, size_t len,
                                  char *out_sig, size_t cap)
{
    uint8_t mac[32];
    iotdm_result r = limpet_slot_hmac(tpm, slot, msg, len, mac);
    if (r < 0)
        return r;
    long n = base64_encode(mac, sizeof mac, out_sig, cap);
    return n < 0 ? (iotdm_result)n : IOTDM_OK;
}

static bool copy_segment(const char *s, size_t n, char *out, size_t cap)
{
    if (n == 0 || n >= cap)
        return false;
    memcpy(out, s, n);
    out[n] = '\0';
    return true;
}

iotdm_result limpet_uri_parse(const char *uri, limpet_uri *out)
{
    memset(out, 0, sizeof *out);
    const char *a = strchr(uri, '/');
    const char *b = a ? strchr(a + 1, '/') : NULL;
    bool ok = a && copy_segment(uri, (size_t)(a - uri), out->host, sizeof out->host);
    if (ok && b)
        ok = copy_segment(a + 1, (size_t)(b - a - 1), out->device_id, sizeof out->device_id) &&
             copy_segment(b + 1, strlen(b + 1), out->module_id, sizeof out->module_id) &&
             !strchr(b + 1, '/');
    else if (ok)
        ok = copy_segment(a + 1, strlen(a + 1), out->device_id, sizeof out->device_id);
    return ok ? IOTDM_OK : IOTDM_E_MALFORMED;
}

iotdm_result limpet_slot_sas(limpet_tpm *tpm, unsigned slot, int64_t expiry, char *out, size_t cap,
                             limpet_uri *out_uri)
{
    char uri[LIMPET_URI_MAX + 1], resource[LIMPET_URI_MAX + 32], to_sign[3 * sizeof resource];
    char sig[64], sig_enc[3 * sizeof sig];
    iotdm_result r = limpet_slot_uri_read(tpm, slot, uri);
    if (r < 0)
        return r;
    if (limpet_uri_parse(uri, out_uri) < 0)
        return tpm_failf(tpm, IOTDM_E_MALFORMED, "slot %u holds a malformed URI", slot);
    if (out_uri->module_id[0])
        snprintf(resource, sizeof resource, "%s/devices/%s/modules/%s", out_uri->host,
                 out_uri->device_id, out_uri->module_id);
    else
        snprintf(resource, sizeof resource, "%s/devices/%s", out_uri->host, out_uri->device_id);
    long n = urlenc_encode(resource, strlen(resource), to_sign, sizeof to_sign - 24);
    if (n < 0)
        return (iotdm_result)n;
    /* The signature covers sr exactly as it appears in the token (docs/protocol.md §3.3). */
    int m = snprintf(to_sign + n, sizeof to_sign - (size_t)n, "\n%lld", (long long)expiry);
    r = limpet_slot_sign_b64(tpm, slot, to_sign, (size_t)(n + m), sig, sizeof sig);
    if (r < 0)
        return r;
    if (urlenc_encode(sig, strlen(sig), sig_enc, sizeof sig_enc) < 0)
        return IOTDM_E_TOO_LARGE;
    m = snprintf(out, cap, "SharedAccessSignature sr=%.*s&sig=%s&se=%lld", (int)n, to_sign, sig_enc,
                 (long long)expiry);
    return m < 0 || (size_t)m >= cap ? IOTDM_E_TOO_LARGE : IOTDM_OK;
}
