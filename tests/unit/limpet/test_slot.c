/* limpet slots on swtpm: URI in NV, HMAC key in the TPM, SAS tokens and the libiotdm signer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <openssl/hmac.h>
#include <string.h>

#include "common/base64.h"
#include "common/sas.h"
#include "limpet/signer.h"
#include "swtpm_fixture.h"

static swtpm_fixture fx;
static const char key_b64[] = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

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

static void import_key(unsigned slot)
{
    uint8_t key[64];
    long n = base64_decode(key_b64, strlen(key_b64), key, sizeof key);
    assert_int_equal(n, 32);
    assert_int_equal(limpet_slot_key_create(fx.tpm, slot, key, (size_t)n), IOTDM_OK);
}

static void test_uri_write_read_rewrite_delete(void **state)
{
    (void)state;
    char uri[LIMPET_URI_MAX + 1];
    assert_int_equal(limpet_slot_uri_read(fx.tpm, 1, uri), IOTDM_E_NOT_FOUND);
    assert_int_equal(limpet_slot_uri_write(fx.tpm, 1, "hub.example/a-longer-device"), IOTDM_OK);
    assert_int_equal(limpet_slot_uri_write(fx.tpm, 1, "hub.example/dev"), IOTDM_OK);
    assert_int_equal(limpet_slot_uri_read(fx.tpm, 1, uri), IOTDM_OK);
    assert_string_equal(uri, "hub.example/dev");
    assert_true(limpet_handle_exists(fx.tpm, LIMPET_URI_INDEX_BASE + 1));
    assert_int_equal(limpet_slot_uri_delete(fx.tpm, 1), IOTDM_OK);
    assert_int_equal(limpet_slot_uri_read(fx.tpm, 1, uri), IOTDM_E_NOT_FOUND);
    assert_int_equal(limpet_slot_uri_write(fx.tpm, 10, "h/d"), IOTDM_E_MALFORMED);
}

static void expect_hmac(unsigned slot, size_t len)
{
    char *msg = malloc(len);
    for (size_t i = 0; i < len; i++)
        msg[i] = (char)('a' + i % 26);
    uint8_t key[64], tpm_mac[32], ssl_mac[32];
    unsigned mac_len = 0;
    long n = base64_decode(key_b64, strlen(key_b64), key, sizeof key);
    HMAC(EVP_sha256(), key, (int)n, (const uint8_t *)msg, len, ssl_mac, &mac_len);
    assert_int_equal(limpet_slot_hmac(fx.tpm, slot, msg, len, tpm_mac), IOTDM_OK);
    assert_memory_equal(tpm_mac, ssl_mac, 32);
    free(msg);
}

static void test_hmac_in_tpm_matches_openssl_short_and_long(void **state)
{
    (void)state;
    import_key(2);
    assert_true(limpet_handle_exists(fx.tpm, LIMPET_HMAC_KEY_BASE + 2));
    expect_hmac(2, 40);
    expect_hmac(2, 5000); /* beyond TPM2_HMAC's buffer: the sequence path */
    assert_int_equal(limpet_slot_key_evict(fx.tpm, 2), IOTDM_OK);
    uint8_t mac[32];
    assert_int_equal(limpet_slot_hmac(fx.tpm, 2, "x", 1, mac), IOTDM_E_NOT_FOUND);
}

static void test_sas_token_verifies_with_the_key(void **state)
{
    (void)state;
    import_key(0);
    assert_int_equal(limpet_slot_uri_write(fx.tpm, 0, "hub.example/dev 1"), IOTDM_OK);
    char token[1024];
    limpet_uri u;
    assert_int_equal(limpet_slot_sas(fx.tpm, 0, 1900000000, token, sizeof token, &u), IOTDM_OK);
    assert_string_equal(u.host, "hub.example");
    assert_string_equal(u.device_id, "dev 1");
    sas_token t;
    assert_int_equal(sas_parse(token, strlen(token), &t), IOTDM_OK);
    assert_int_equal(t.expiry, 1900000000);
    assert_true(sas_signature_valid(&t, key_b64));
    assert_true(sas_resource_covers(&t, "hub.example/devices/dev 1"));
    assert_false(sas_signature_valid(&t, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh4="));
}

static void test_signer_signs_like_the_software_key(void **state)
{
    (void)state;
    import_key(4);
    assert_int_equal(limpet_slot_uri_write(fx.tpm, 4, "hub.example/dev4/mod"), IOTDM_OK);
    limpet_signer s;
    limpet_uri u;
    char err[256];
    assert_int_equal(limpet_signer_init(&s, fx.tcti, 4, &u, err, sizeof err), IOTDM_OK);
    assert_string_equal(u.device_id, "dev4");
    assert_string_equal(u.module_id, "mod");
    const char msg[] = "hub.example%2Fdevices%2Fdev4\n1900000000";
    char sig[64], expected[SAS_SIG_LEN + 1];
    assert_int_equal(limpet_signer_sign(&s, msg, strlen(msg), sig, sizeof sig), IOTDM_OK);
    assert_int_equal(sas_sign(key_b64, msg, strlen(msg), expected), IOTDM_OK);
    assert_string_equal(sig, expected);
    limpet_signer_deinit(&s);
    /* An empty slot is refused up front, with a reason. */
    assert_int_not_equal(limpet_signer_init(&s, fx.tcti, 7, &u, err, sizeof err), IOTDM_OK);
    assert_non_null(strstr(err, "slot 7"));
}

static void test_uri_parse_rejects_malformed(void **state)
{
    (void)state;
    limpet_uri u;
    assert_int_equal(limpet_uri_parse("host", &u), IOTDM_E_MALFORMED);
    assert_int_equal(limpet_uri_parse("host/", &u), IOTDM_E_MALFORMED);
    assert_int_equal(limpet_uri_parse("/dev", &u), IOTDM_E_MALFORMED);
    assert_int_equal(limpet_uri_parse("h/d/m/x", &u), IOTDM_E_MALFORMED);
    assert_int_equal(limpet_uri_parse("h/d/m", &u), IOTDM_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uri_write_read_rewrite_delete),
        cmocka_unit_test(test_hmac_in_tpm_matches_openssl_short_and_long),
        cmocka_unit_test(test_sas_token_verifies_with_the_key),
        cmocka_unit_test(test_signer_signs_like_the_software_key),
        cmocka_unit_test(test_uri_parse_rejects_malformed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
