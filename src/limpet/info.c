/* TPM information from TPM2_GetCapability, in the spirit of Limpet's -GTI. */
#include "limpet/info.h"

#include <ctype.h>
#include <string.h>

#include "limpet/tpm_internal.h"

static bool prop(const TPML_TAGGED_TPM_PROPERTY *l, TPM2_PT pt, uint32_t *out)
{
    for (UINT32 i = 0; i < l->count; i++) {
        if (l->tpmProperty[i].property == pt) {
            *out = l->tpmProperty[i].value;
            return true;
        }
    }
    return false;
}

/* Properties such as the family or the vendor string are 4 ASCII bytes, big-endian. */
static void append_ascii(char *out, size_t cap, uint32_t v)
{
    size_t n = strlen(out);
    for (int shift = 24; shift >= 0 && n + 1 < cap; shift -= 8) {
        char c = (char)((v >> shift) & 0xff);
        if (isprint((unsigned char)c))
            out[n++] = c;
    }
    out[n] = '\0';
}

static iotdm_result get_props(limpet_tpm *tpm, TPM2_PT first, TPMS_CAPABILITY_DATA **out)
{
    TPMI_YES_NO more;
    TSS2_RC rc =
        Esys_GetCapability(tpm->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                           TPM2_CAP_TPM_PROPERTIES, first, TPM2_MAX_TPM_PROPERTIES, &more, out);
    return rc == TSS2_RC_SUCCESS ? IOTDM_OK : tpm_fail(tpm, "GetCapability", rc);
}

static void add_fixed(json_t *o, const TPML_TAGGED_TPM_PROPERTY *l)
{
    uint32_t v = 0, w = 0;
    char s[32] = "";
    if (prop(l, TPM2_PT_FAMILY_INDICATOR, &v))
        append_ascii(s, sizeof s, v);
    json_object_set_new(o, "family", json_string(s));
    if (prop(l, TPM2_PT_LEVEL, &v))
        json_object_set_new(o, "level", json_integer(v));
    if (prop(l, TPM2_PT_REVISION, &v))
        json_object_set_new(o, "revision", json_sprintf("%u.%02u", v / 100, v % 100));
    s[0] = '\0';
    if (prop(l, TPM2_PT_MANUFACTURER, &v))
        append_ascii(s, sizeof s, v);
    json_object_set_new(o, "manufacturer", json_string(s));
    s[0] = '\0';
    for (TPM2_PT pt = TPM2_PT_VENDOR_STRING_1; pt <= TPM2_PT_VENDOR_STRING_4; pt++)
        if (prop(l, pt, &v))
            append_ascii(s, sizeof s, v);
    json_object_set_new(o, "vendor", json_string(s));
    if (prop(l, TPM2_PT_FIRMWARE_VERSION_1, &v) && prop(l, TPM2_PT_FIRMWARE_VERSION_2, &w))
        json_object_set_new(o, "firmware",
                            json_sprintf("%u.%u.%u.%u", v >> 16, v & 0xffff, w >> 16, w & 0xffff));
}

static void add_variable(json_t *o, const TPML_TAGGED_TPM_PROPERTY *l)
{
    uint32_t v = 0;
    if (prop(l, TPM2_PT_PERMANENT, &v)) {
        json_object_set_new(o, "ownerAuthSet", json_boolean(v & TPMA_PERMANENT_OWNERAUTHSET));
        json_object_set_new(o, "endorsementAuthSet",
                            json_boolean(v & TPMA_PERMANENT_ENDORSEMENTAUTHSET));
        json_object_set_new(o, "lockoutAuthSet", json_boolean(v & TPMA_PERMANENT_LOCKOUTAUTHSET));
        json_object_set_new(o, "disableClear", json_boolean(v & TPMA_PERMANENT_DISABLECLEAR));
        json_object_set_new(o, "inLockout", json_boolean(v & TPMA_PERMANENT_INLOCKOUT));
    }
    if (prop(l, TPM2_PT_LOCKOUT_COUNTER, &v))
        json_object_set_new(o, "lockoutCounter", json_integer(v));
}

static iotdm_result add_algorithms(limpet_tpm *tpm, json_t *o)
{
    TPMI_YES_NO more;
    TPMS_CAPABILITY_DATA *cap = NULL;
    TSS2_RC rc = Esys_GetCapability(tpm->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                    TPM2_CAP_ALGS, TPM2_ALG_FIRST, TPM2_MAX_CAP_ALGS, &more, &cap);
    if (rc != TSS2_RC_SUCCESS)
        return tpm_fail(tpm, "GetCapability(algorithms)", rc);
    static const struct {
        TPM2_ALG_ID id;
        const char *name;
    } algs[] = {{TPM2_ALG_RSA, "rsa"},
                {TPM2_ALG_HMAC, "hmac"},
                {TPM2_ALG_AES, "aes"},
                {TPM2_ALG_ECC, "ecc"},
                {TPM2_ALG_SHA256, "sha256"}};
    json_t *a = json_object();
    for (size_t k = 0; k < sizeof algs / sizeof *algs; k++) {
        bool found = false;
        for (UINT32 i = 0; i < cap->data.algorithms.count; i++)
            found = found || cap->data.algorithms.algProperties[i].alg == algs[k].id;
        json_object_set_new(a, algs[k].name, json_boolean(found));
    }
    json_object_set_new(o, "algorithms", a);
    Esys_Free(cap);
    return IOTDM_OK;
}

iotdm_result limpet_tpm_info(limpet_tpm *tpm, json_t **out_info)
{
    TPMS_CAPABILITY_DATA *fixed = NULL, *var = NULL;
    iotdm_result r = get_props(tpm, TPM2_PT_FIXED, &fixed);
    if (r == IOTDM_OK)
        r = get_props(tpm, TPM2_PT_VAR, &var);
    json_t *o = json_object();
    if (r == IOTDM_OK) {
        add_fixed(o, &fixed->data.tpmProperties);
        add_variable(o, &var->data.tpmProperties);
        r = add_algorithms(tpm, o);
    }
    Esys_Free(fixed);
    Esys_Free(var);
    if (r < 0) {
        json_decref(o);
        return r;
    }
    *out_info = o;
    return IOTDM_OK;
}
