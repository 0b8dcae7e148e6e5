/* limpet on swtpm: EK and SRK creation and export, registration id, TPM info, clear. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <openssl/sha.h>
#include <string.h>
#include <tss2/tss2_mu.h>

#include "limpet/info.h"
#include "swtpm_fixture.h"

static swtpm_fixture fx;

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

static void test_ek_absent_is_created_with_tcg_template(void **state)
{
    (void)state;
    assert_false(limpet_handle_exists(fx.tpm, LIMPET_EK_HANDLE));
    uint8_t pub[LIMPET_PUBLIC_MAX], again[LIMPET_PUBLIC_MAX];
    size_t n, m;
    assert_int_equal(limpet_ek_public(fx.tpm, pub, sizeof pub, &n), IOTDM_OK);
    assert_true(limpet_handle_exists(fx.tpm, LIMPET_EK_HANDLE));
    TPM2B_PUBLIC p = {0};
    size_t off = 0;
    assert_int_equal(Tss2_MU_TPM2B_PUBLIC_Unmarshal(pub, n, &off, &p), TSS2_RC_SUCCESS);
    assert_int_equal(off, n);
    assert_int_equal(p.publicArea.type, TPM2_ALG_RSA);
    assert_int_equal(p.publicArea.parameters.rsaDetail.keyBits, 2048);
    assert_int_equal(p.publicArea.unique.rsa.size, 256);
    static const uint8_t policy_start[4] = {0x83, 0x71, 0x97, 0x67};
    assert_int_equal(p.publicArea.authPolicy.size, 32);
    assert_memory_equal(p.publicArea.authPolicy.buffer, policy_start, 4);
    /* Persisted: the second read returns the same key, not a new one. */
    assert_int_equal(limpet_ek_public(fx.tpm, again, sizeof again, &m), IOTDM_OK);
    assert_int_equal(m, n);
    assert_memory_equal(again, pub, n);
}

static void test_srk_is_persisted_storage_key(void **state)
{
    (void)state;
    uint8_t pub[LIMPET_PUBLIC_MAX];
    size_t n, off = 0;
    assert_int_equal(limpet_srk_public(fx.tpm, pub, sizeof pub, &n), IOTDM_OK);
    assert_true(limpet_handle_exists(fx.tpm, LIMPET_SRK_HANDLE));
    TPM2B_PUBLIC p = {0};
    assert_int_equal(Tss2_MU_TPM2B_PUBLIC_Unmarshal(pub, n, &off, &p), TSS2_RC_SUCCESS);
    assert_true(p.publicArea.objectAttributes & TPMA_OBJECT_RESTRICTED);
    assert_true(p.publicArea.objectAttributes & TPMA_OBJECT_DECRYPT);
    assert_int_equal(p.publicArea.authPolicy.size, 0);
}

/* RFC 4648 test vectors, lower-cased: the encoder, fed through the SHA-256 it applies. */
static void test_registration_id_is_lower_base32_of_sha256(void **state)
{
    (void)state;
    uint8_t pub[LIMPET_PUBLIC_MAX];
    size_t n;
    assert_int_equal(limpet_ek_public(fx.tpm, pub, sizeof pub, &n), IOTDM_OK);
    char id[LIMPET_REG_ID_MAX];
    limpet_registration_id(pub, n, id);
    assert_int_equal(strlen(id), 52);
    for (const char *p = id; *p; p++)
        assert_true((*p >= 'a' && *p <= 'z') || (*p >= '2' && *p <= '7'));
    /* SHA-256("") = e3b0c442…: its base32 is known independently (Python base64.b32encode). */
    limpet_registration_id((const uint8_t *)"", 0, id);
    assert_string_equal(id, "4oymiquy7qobjgx36tejs35zeqt24qpemsnzgtfeswmrw6csxbkq");
}

static void test_info_reports_family_and_hmac(void **state)
{
    (void)state;
    json_t *info = NULL;
    assert_int_equal(limpet_tpm_info(fx.tpm, &info), IOTDM_OK);
    assert_string_equal(json_string_value(json_object_get(info, "family")), "2.0");
    assert_true(json_is_true(json_object_get(json_object_get(info, "algorithms"), "hmac")));
    assert_true(json_is_false(json_object_get(info, "lockoutAuthSet")));
    json_decref(info);
}

static void test_clear_with_lockout_auth_removes_keys(void **state)
{
    (void)state;
    uint8_t pub[LIMPET_PUBLIC_MAX];
    size_t n;
    assert_int_equal(limpet_srk_public(fx.tpm, pub, sizeof pub, &n), IOTDM_OK);
    assert_true(limpet_handle_exists(fx.tpm, LIMPET_SRK_HANDLE));
    assert_int_equal(limpet_tpm_clear(fx.tpm, NULL), IOTDM_OK);
    assert_false(limpet_handle_exists(fx.tpm, LIMPET_SRK_HANDLE));
    assert_false(limpet_handle_exists(fx.tpm, LIMPET_EK_HANDLE));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ek_absent_is_created_with_tcg_template),
        cmocka_unit_test(test_srk_is_persisted_storage_key),
        cmocka_unit_test(test_registration_id_is_lower_base32_of_sha256),
        cmocka_unit_test(test_info_reports_family_and_hmac),
        cmocka_unit_test(test_clear_with_lockout_auth_removes_keys),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
