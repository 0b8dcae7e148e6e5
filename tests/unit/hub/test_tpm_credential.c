/* The hub's DPS activation blobs (tpm_credential.c) opened by a real TPM: built with OpenSSL for a
 * swtpm's EK and SRK, then imported by limpet_activate (ActivateCredential + Import), whose HMAC
 * must equal OpenSSL's with the key; tampered blobs and blobs for another TPM are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>
#include <string.h>

#include "../limpet/swtpm_fixture.h"
#include "hub/dps/tpm_credential.h"

static swtpm_fixture fx;
static uint8_t ek[LIMPET_PUBLIC_MAX], srk[LIMPET_PUBLIC_MAX];
static size_t ek_len, srk_len;
static const uint8_t hub_key[TPM_CRED_KEY_LEN] = "the device key DPS hands over.!";

static int setup(void **state)
{
    (void)state;
    if (!swtpm_start(&fx))
        return -1;
    if (limpet_ek_public(fx.tpm, ek, sizeof ek, &ek_len) < 0 ||
        limpet_srk_public(fx.tpm, srk, sizeof srk, &srk_len) < 0) {
        fprintf(stderr, "EK/SRK: %s\n", limpet_tpm_error(fx.tpm));
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    swtpm_stop(&fx);
    return 0;
}

static size_t make_blob(const uint8_t *for_ek, size_t for_ek_len, uint8_t *blob, size_t cap)
{
    size_t n = 0;
    char err[256] = "";
    iotdm_result r = tpm_cred_make_blob(for_ek, for_ek_len, srk, srk_len, hub_key, blob, cap, &n,
                                        err, sizeof err);
    if (r != IOTDM_OK)
        fprintf(stderr, "make_blob: %s\n", err);
    assert_int_equal(r, IOTDM_OK);
    return n;
}

/* The slot's key equals hub_key: the TPM's HMAC matches OpenSSL's. */
static void assert_slot_holds_hub_key(unsigned slot)
{
    const char msg[] = "0ne00000A0A%2Fregistrations%2Fabc\n1900000000";
    uint8_t tpm_mac[32], ssl_mac[32];
    unsigned len = 0;
    if (limpet_slot_hmac(fx.tpm, slot, msg, strlen(msg), tpm_mac) != IOTDM_OK)
        fail_msg("limpet_slot_hmac: %s", limpet_tpm_error(fx.tpm));
    HMAC(EVP_sha256(), hub_key, sizeof hub_key, (const uint8_t *)msg, strlen(msg), ssl_mac, &len);
    assert_memory_equal(tpm_mac, ssl_mac, 32);
}

static void test_tpm_credential_blob_imports_into_tpm_and_hmac_matches(void **state)
{
    (void)state;
    uint8_t blob[TPM_CRED_BLOB_MAX];
    size_t n = make_blob(ek, ek_len, blob, sizeof blob);
    if (limpet_activate(fx.tpm, 2, blob, n) != IOTDM_OK)
        fail_msg("limpet_activate: %s", limpet_tpm_error(fx.tpm));
    assert_true(limpet_handle_exists(fx.tpm, LIMPET_HMAC_KEY_BASE + 2));
    assert_slot_holds_hub_key(2);
    /* A second blob (fresh seeds, fresh inner key) replaces the key just as well. */
    n = make_blob(ek, ek_len, blob, sizeof blob);
    assert_int_equal(limpet_activate(fx.tpm, 2, blob, n), IOTDM_OK);
    assert_slot_holds_hub_key(2);
}

static void test_tpm_credential_registration_id_is_base32_of_sha256(void **state)
{
    (void)state;
    char mine[TPM_CRED_REG_ID_LEN + 1], limpets[LIMPET_REG_ID_MAX];
    tpm_cred_registration_id(ek, ek_len, mine);
    limpet_registration_id(ek, ek_len, limpets);
    assert_string_equal(mine, limpets);
    assert_int_equal(strlen(mine), TPM_CRED_REG_ID_LEN);
    /* SHA-256("") in RFC 4648 base32, lower case, unpadded (python3 base64.b32encode). */
    tpm_cred_registration_id((const uint8_t *)"", 0, mine);
    assert_string_equal(mine, "4oymiquy7qobjgx36tejs35zeqt24qpemsnzgtfeswmrw6csxbkq");
}

/* Offsets of the blob's parts: each is a TPM2B (16-bit size, then the bytes). */
static size_t part_offset(const uint8_t *blob, int index)
{
    size_t off = 0;
    for (int i = 0; i < index; i++)
        off += 2 + (size_t)(blob[off] << 8 | blob[off + 1]);
    return off;
}

static void test_tpm_credential_tampered_blob_is_refused(void **state)
{
    (void)state;
    uint8_t good[TPM_CRED_BLOB_MAX], blob[TPM_CRED_BLOB_MAX];
    size_t n = make_blob(ek, ek_len, good, sizeof good);
    assert_int_equal(limpet_activate(fx.tpm, 7, good, n - 1), IOTDM_E_MALFORMED);
    /* One flipped byte in each part: credential (integrity, then encrypted credential), the EK
     * seed, the duplicate (integrity, then encrypted sensitive), the SRK seed, the public area's
     * unique field (the key's name changes, so the outer integrity fails). */
    const struct {
        int part;
        size_t at;
    } flips[] = {{0, 10}, {0, 40}, {1, 100}, {2, 10}, {2, 60}, {3, 100}, {4, 40}};
    for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
        memcpy(blob, good, n);
        blob[part_offset(blob, flips[i].part) + flips[i].at] ^= 0x41;
        assert_int_not_equal(limpet_activate(fx.tpm, 7, blob, n), IOTDM_OK);
        assert_false(limpet_handle_exists(fx.tpm, LIMPET_HMAC_KEY_BASE + 7));
    }
}

/* The EK's public area with another RSA modulus: a well-formed key the TPM does not hold. */
static size_t foreign_ek(uint8_t *out)
{
    EVP_PKEY *k = EVP_RSA_gen(2048);
    BIGNUM *n = NULL;
    assert_non_null(k);
    assert_int_equal(EVP_PKEY_get_bn_param(k, "n", &n), 1);
    memcpy(out, ek, ek_len);
    assert_int_equal(BN_bn2binpad(n, out + ek_len - 256, 256), 256);
    BN_free(n);
    EVP_PKEY_free(k);
    return ek_len;
}

static void test_tpm_credential_blob_for_another_tpm_is_refused(void **state)
{
    (void)state;
    uint8_t other[LIMPET_PUBLIC_MAX], blob[TPM_CRED_BLOB_MAX];
    size_t other_len = foreign_ek(other);
    size_t n = make_blob(other, other_len, blob, sizeof blob);
    assert_int_not_equal(limpet_activate(fx.tpm, 8, blob, n), IOTDM_OK);
    assert_false(limpet_handle_exists(fx.tpm, LIMPET_HMAC_KEY_BASE + 8));
}

static void expect_refused(const uint8_t *key, size_t len, const char *reason)
{
    char err[256] = "";
    uint8_t blob[TPM_CRED_BLOB_MAX];
    size_t n = 0;
    assert_int_equal(tpm_cred_check_key(key, len, err, sizeof err), IOTDM_E_MALFORMED);
    if (!strstr(err, reason))
        fail_msg("'%s' does not say '%s'", err, reason);
    assert_int_equal(
        tpm_cred_make_blob(key, len, srk, srk_len, hub_key, blob, sizeof blob, &n, err, sizeof err),
        IOTDM_E_MALFORMED);
    assert_non_null(strstr(err, "endorsement key: "));
}

static void test_tpm_credential_unusable_keys_are_refused_with_a_reason(void **state)
{
    (void)state;
    char err[256];
    uint8_t bad[LIMPET_PUBLIC_MAX];
    assert_int_equal(tpm_cred_check_key(ek, ek_len, err, sizeof err), IOTDM_OK);
    assert_int_equal(tpm_cred_check_key(srk, srk_len, err, sizeof err), IOTDM_OK);
    expect_refused(ek, ek_len - 1, "not a marshaled TPM2B_PUBLIC");
    expect_refused((const uint8_t *)"\x00", 1, "not a marshaled TPM2B_PUBLIC");
    memcpy(bad, ek, ek_len);
    bad[3] = 0x23; /* type: ECC */
    expect_refused(bad, ek_len, "only RSA keys");
    memcpy(bad, ek, ek_len);
    bad[5] = 0x04; /* nameAlg: SHA-1 */
    expect_refused(bad, ek_len, "only SHA-256 names");
    memcpy(bad, ek, ek_len);
    bad[7] ^= 0x04; /* attributes: sign as well as decrypt */
    expect_refused(bad, ek_len, "not a restricted decryption key");
    uint8_t small[TPM_CRED_BLOB_MAX];
    size_t n = 0;
    assert_int_equal(
        tpm_cred_make_blob(ek, ek_len, srk, srk_len, hub_key, small, 300, &n, err, sizeof err),
        IOTDM_E_TOO_LARGE);
}

int main(void)
{
    setenv("TSS2_LOG", "all+NONE", 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tpm_credential_blob_imports_into_tpm_and_hmac_matches),
        cmocka_unit_test(test_tpm_credential_registration_id_is_base32_of_sha256),
        cmocka_unit_test(test_tpm_credential_tampered_blob_is_refused),
        cmocka_unit_test(test_tpm_credential_blob_for_another_tpm_is_refused),
        cmocka_unit_test(test_tpm_credential_unusable_keys_are_refused_with_a_reason),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
