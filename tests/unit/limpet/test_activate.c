/* limpet_activate on swtpm with an activation blob built by the TPM itself (MakeCredential to
 * the EK for the SRK's name, Duplicate of an HMAC key with an inner wrap), laid out as
 * docs/protocol.md §7.10 says DPS sends it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <openssl/hmac.h>
#include <string.h>
#include <tss2/tss2_mu.h>

#include "limpet/tpm_internal.h"
#include "swtpm_fixture.h"

static swtpm_fixture fx;
static const uint8_t secret_key[32] = "an HMAC key known only to DPS!!";

static int setup(void **state)
{
    (void)state;
    return swtpm_start(&fx) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    swtpm_stop(&fx);
    return 0;
}

static ESYS_TR dup_session(ESYS_CONTEXT *e, TPM2_SE type)
{
    TPMT_SYM_DEF sym = {.algorithm = TPM2_ALG_NULL};
    ESYS_TR s;
    assert_int_equal(Esys_StartAuthSession(e, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                           ESYS_TR_NONE, ESYS_TR_NONE, NULL, type, &sym,
                                           TPM2_ALG_SHA256, &s),
                     0);
    assert_int_equal(
        Esys_PolicyCommandCode(e, s, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CC_Duplicate),
        0);
    return s;
}

/* A duplicable HMAC key under the SRK whose policy allows TPM2_Duplicate. */
static void make_duplicable_key(ESYS_CONTEXT *e, ESYS_TR srk, ESYS_TR *out, TPM2B_PUBLIC **pub)
{
    ESYS_TR trial = dup_session(e, TPM2_SE_TRIAL);
    TPM2B_DIGEST *policy = NULL;
    assert_int_equal(
        Esys_PolicyGetDigest(e, trial, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &policy), 0);
    Esys_FlushContext(e, trial);
    TPM2B_PUBLIC tmpl = {
        .publicArea = {.type = TPM2_ALG_KEYEDHASH,
                       .nameAlg = TPM2_ALG_SHA256,
                       .objectAttributes = TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_SIGN_ENCRYPT}};
    tmpl.publicArea.authPolicy = *policy;
    tmpl.publicArea.parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_HMAC;
    tmpl.publicArea.parameters.keyedHashDetail.scheme.details.hmac.hashAlg = TPM2_ALG_SHA256;
    Esys_Free(policy);
    TPM2B_SENSITIVE_CREATE sens = {0};
    sens.sensitive.data.size = sizeof secret_key;
    memcpy(sens.sensitive.data.buffer, secret_key, sizeof secret_key);
    TPM2B_DATA outside = {0};
    TPML_PCR_SELECTION pcrs = {0};
    TPM2B_PRIVATE *priv = NULL;
    assert_int_equal(Esys_Create(e, srk, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sens, &tmpl,
                                 &outside, &pcrs, &priv, pub, NULL, NULL, NULL),
                     0);
    assert_int_equal(
        Esys_Load(e, srk, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, priv, *pub, out), 0);
    Esys_Free(priv);
}

static size_t build_blob(uint8_t *blob, size_t cap)
{
    ESYS_CONTEXT *e = fx.tpm->esys;
    ESYS_TR srk, ek, key;
    assert_int_equal(tpm_srk(fx.tpm, &srk), IOTDM_OK);
    assert_int_equal(tpm_ek(fx.tpm, &ek), IOTDM_OK);
    TPM2B_PUBLIC *key_pub = NULL;
    make_duplicable_key(e, srk, &key, &key_pub);
    TPM2B_DATA wrap = {.size = 16};
    memcpy(wrap.buffer, "inner-wrap-key!!", 16);
    TPMT_SYM_DEF_OBJECT sym = {.algorithm = TPM2_ALG_AES};
    sym.keyBits.aes = 128;
    sym.mode.aes = TPM2_ALG_CFB;
    ESYS_TR pol = dup_session(e, TPM2_SE_POLICY);
    TPM2B_DATA *wrap_out = NULL;
    TPM2B_PRIVATE *dup = NULL;
    TPM2B_ENCRYPTED_SECRET *seed = NULL, *secret = NULL;
    assert_int_equal(Esys_Duplicate(e, key, srk, pol, ESYS_TR_NONE, ESYS_TR_NONE, &wrap, &sym,
                                    &wrap_out, &dup, &seed),
                     0);
    TPM2B_NAME *srk_name = NULL;
    assert_int_equal(Esys_TR_GetName(e, srk, &srk_name), 0);
    TPM2B_DIGEST cred = {.size = 16};
    memcpy(cred.buffer, wrap.buffer, 16);
    TPM2B_ID_OBJECT *id = NULL;
    assert_int_equal(Esys_MakeCredential(e, ek, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &cred,
                                         srk_name, &id, &secret),
                     0);
    TPM2B_DATA uri = {0};
    size_t off = 0;
    assert_int_equal(Tss2_MU_TPM2B_ID_OBJECT_Marshal(id, blob, cap, &off) |
                         Tss2_MU_TPM2B_ENCRYPTED_SECRET_Marshal(secret, blob, cap, &off) |
                         Tss2_MU_TPM2B_PRIVATE_Marshal(dup, blob, cap, &off) |
                         Tss2_MU_TPM2B_ENCRYPTED_SECRET_Marshal(seed, blob, cap, &off) |
                         Tss2_MU_TPM2B_PUBLIC_Marshal(key_pub, blob, cap, &off) |
                         Tss2_MU_TPM2B_DATA_Marshal(&uri, blob, cap, &off),
                     0);
    Esys_FlushContext(e, pol);
    Esys_FlushContext(e, key);
    Esys_Free(key_pub), Esys_Free(wrap_out), Esys_Free(dup), Esys_Free(seed);
    Esys_Free(secret), Esys_Free(srk_name), Esys_Free(id);
    return off;
}

static void test_activation_blob_imports_key_into_slot(void **state)
{
    (void)state;
    uint8_t blob[4096];
    size_t n = build_blob(blob, sizeof blob);
    assert_int_equal(limpet_activate(fx.tpm, 3, blob, n), IOTDM_OK);
    assert_true(limpet_handle_exists(fx.tpm, LIMPET_HMAC_KEY_BASE + 3));
    const char msg[] = "0ne0000000%2Fregistrations%2Fabc\n1900000000";
    uint8_t tpm_mac[32], ssl_mac[32];
    unsigned len = 0;
    assert_int_equal(limpet_slot_hmac(fx.tpm, 3, msg, strlen(msg), tpm_mac), IOTDM_OK);
    HMAC(EVP_sha256(), secret_key, sizeof secret_key, (const uint8_t *)msg, strlen(msg), ssl_mac,
         &len);
    assert_memory_equal(tpm_mac, ssl_mac, 32);
}

static void test_corrupt_blob_is_refused_and_changes_nothing(void **state)
{
    (void)state;
    uint8_t blob[4096];
    size_t n = build_blob(blob, sizeof blob);
    assert_int_equal(limpet_activate(fx.tpm, 6, blob, n - 1), IOTDM_E_MALFORMED);
    blob[40] ^= 0x55; /* inside the credential blob: ActivateCredential fails its integrity */
    assert_int_not_equal(limpet_activate(fx.tpm, 6, blob, n), IOTDM_OK);
    assert_false(limpet_handle_exists(fx.tpm, LIMPET_HMAC_KEY_BASE + 6));
}

int main(void)
{
    setenv("TSS2_LOG", "all+NONE", 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_activation_blob_imports_key_into_slot),
        cmocka_unit_test(test_corrupt_blob_is_refused_and_changes_nothing),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
