/* SAS signing and verification against the vectors of docs/protocol.md §11 (tests/data/vectors). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <string.h>

#include "common/base64.h"
#include "common/sas.h"
#include "common/urlenc.h"

static json_t *load_vectors(void)
{
    json_error_t err;
    json_t *root = json_load_file(IOTDM_VECTORS "/sas.json", 0, &err);
    assert_non_null(root);
    return root;
}

static void test_sas_sign_shared_vectors_match(void **state)
{
    (void)state;
    json_t *root = load_vectors();
    json_t *vectors = json_object_get(root, "vectors");
    assert_true(json_array_size(vectors) >= 6);
    size_t i;
    json_t *v;
    json_array_foreach(vectors, i, v)
    {
        const char *sign = json_string_value(json_object_get(v, "sign"));
        char sig[SAS_SIG_LEN + 1];
        assert_int_equal(
            sas_sign(json_string_value(json_object_get(v, "key")), sign, strlen(sign), sig), 0);
        assert_string_equal(sig, json_string_value(json_object_get(v, "sig")));
    }
    json_decref(root);
}

static void test_sas_build_token_shared_vectors_match(void **state)
{
    (void)state;
    char token[SAS_TOKEN_MAX];
    assert_int_equal(sas_build_token("MyExampleHub.azure-devices.net/devices/my-symkey-device",
                                     "18RQk/hOPJR9EbsJlk2j8WA6vWaj/yi+oaYg7zmxfQNdOyMSu+SJ8O7TSlZh"
                                     "DJCYmn4rzEiVKIzNiVAWjLxrGA==",
                                     NULL, 1663119026, token, sizeof token),
                     0);
    assert_string_equal(token, "SharedAccessSignature "
                               "sr=MyExampleHub.azure-devices.net%2Fdevices%2Fmy-symkey-device&sig="
                               "f%2BwW8XOKeJOtiPc9Iwjc4OpExvPM7NlhM9qxN2a1aAM%3D&se=1663119026");
    assert_int_equal(sas_build_token("myhub.azure-devices.net",
                                     "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "iothubowner",
                                     1700000000, token, sizeof token),
                     0);
    assert_string_equal(token, "SharedAccessSignature sr=myhub.azure-devices.net&sig="
                               "iIzEw6hi6GK79RY5jNXO6QeQkSL%2FAx4zTmy44X2G1VY%3D&se=1700000000&"
                               "skn=iothubowner");
}

static void test_sas_verify_any_encoding_and_order_accepted(void **state)
{
    (void)state;
    const char *key = "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc=";
    /* The three DPS client styles of §11.4: the raw sr is what is signed. */
    const char *tokens[] = {
        "SharedAccessSignature sr=0ne00000A0A%2Fregistrations%2Fsn-007-888-abc-mac-a1-b2-c3-d4-"
        "e5-f6&sig=t6%2F8JHWQuQgM9mXdYf%2FuIqa3dKECOEk9Rr4WrFV19q0%3D&se=1700000000&skn="
        "registration",
        "SharedAccessSignature sr=0ne00000A0A%2fregistrations%2fsn-007-888-abc-mac-a1-b2-c3-d4-"
        "e5-f6&sig=d0v1ROtrJfDl1lL%2B6Gm6mCyZUBsvFsT3HgNEOWfYmE0%3D&se=1700000000",
        "SharedAccessSignature sr=0ne00000A0A/registrations/sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6"
        "&sig=hUOH8hSLSay%2BbfE5WjQhRmpIvWZdSog5Tlv8EyKqBg4%3D&skn=registration&se=1700000000",
    };
    for (size_t i = 0; i < 3; i++) {
        sas_token t;
        assert_int_equal(sas_parse(tokens[i], strlen(tokens[i]), &t), 0);
        assert_int_equal(t.expiry, 1700000000);
        assert_true(sas_signature_valid(&t, key));
        assert_true(sas_resource_covers(
            &t, "0ne00000A0A/registrations/sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6"));
        assert_false(sas_signature_valid(&t, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="));
    }
}

static void test_sas_verify_tampered_token_rejected(void **state)
{
    (void)state;
    const char *key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const char *good = "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdevice-01&"
                       "sig=vdR0eqgDcBk4EWJXl%2BEMJe9D%2F98ScFzVH4vfbTBCK%2F8%3D&se=1700000000";
    const char *bad_se = "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdevice-01&"
                         "sig=vdR0eqgDcBk4EWJXl%2BEMJe9D%2F98ScFzVH4vfbTBCK%2F8%3D&se=1700000001";
    sas_token t;
    assert_int_equal(sas_parse(good, strlen(good), &t), 0);
    assert_true(sas_signature_valid(&t, key));
    assert_true(sas_resource_covers(&t, "MyHub.azure-devices.net/devices/device-01"));
    assert_false(sas_resource_covers(&t, "myhub.azure-devices.net/devices/device-012"));
    assert_false(sas_resource_covers(&t, "myhub.azure-devices.net/devices/Device-01"));
    assert_int_equal(sas_parse(bad_se, strlen(bad_se), &t), 0);
    assert_false(sas_signature_valid(&t, key));
}

static void test_sas_resource_prefix_segment_wise(void **state)
{
    (void)state;
    const char *tok = "SharedAccessSignature sr=myhub%2Fdevices&sig=x&se=1";
    sas_token t;
    assert_int_equal(sas_parse(tok, strlen(tok), &t), 0);
    assert_true(sas_resource_covers(&t, "myhub/devices/dev1"));
    assert_false(sas_resource_covers(&t, "myhub/devicesX/dev1"));
}

static void test_sas_parse_malformed_rejected(void **state)
{
    (void)state;
    const char *bad[] = {"",
                         "SharedAccessSignature",
                         "Bearer abc",
                         "SharedAccessSignature sr=a&se=1",
                         "SharedAccessSignature sr=a&sig=b",
                         "SharedAccessSignature sr=a&sig=b&se=x1",
                         "SharedAccessSignaturesr=a&sig=b&se=1"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sas_token t;
        assert_int_equal(sas_parse(bad[i], strlen(bad[i]), &t), IOTDM_E_MALFORMED);
    }
}

static void test_sas_derive_device_key_vector_matches(void **state)
{
    (void)state;
    json_t *root = load_vectors();
    json_t *v = json_array_get(json_object_get(root, "derived_keys"), 0);
    char key[SAS_SIG_LEN + 1];
    assert_int_equal(sas_derive_device_key(json_string_value(json_object_get(v, "group_key")),
                                           json_string_value(json_object_get(v, "registration_id")),
                                           key),
                     0);
    assert_string_equal(key, json_string_value(json_object_get(v, "device_key")));
    json_decref(root);
}

static void test_base64_short_key_without_padding_decodes(void **state)
{
    (void)state;
    unsigned char out[8];
    assert_int_equal(base64_decode("key", 3, out, sizeof out), 2);
    assert_int_equal(out[0], 0x91);
    assert_int_equal(out[1], 0xEC);
    assert_int_equal(base64_decode("a$==", 4, out, sizeof out), IOTDM_E_MALFORMED);
    char enc[16];
    assert_int_equal(base64_encode((const unsigned char *)"password", 8, enc, sizeof enc), 12);
    assert_string_equal(enc, "cGFzc3dvcmQ=");
}

static void test_sas_node_sdk_vectors_match(void **state)
{
    (void)state;
    char sig[SAS_SIG_LEN + 1];
    assert_int_equal(sas_sign("cGFzc3dvcmQ=", "uri\n12345", 9, sig), 0);
    assert_string_equal(sig, "kcWxXAK2OAaAoq2oCkaGzX2NMqDB8nCyNuq2fPYCDhk=");
    char token[SAS_TOKEN_MAX];
    assert_int_equal(
        sas_build_token("host/devices/device", "key", NULL, 12345, token, sizeof token), 0);
    assert_string_equal(token, "SharedAccessSignature sr=host%2Fdevices%2Fdevice&sig="
                               "wM3XiP6gD960IxP7J5WHqnxQHEcWC6YaQCtoMT%2BkKHc%3D&se=12345");
}

static void test_urlenc_round_trip_and_bad_escape(void **state)
{
    (void)state;
    char enc[64], dec[64];
    assert_int_equal(urlenc_encode("a/b c~", 6, enc, sizeof enc), 10);
    assert_string_equal(enc, "a%2Fb%20c~");
    assert_int_equal(urlenc_decode(enc, strlen(enc), dec, sizeof dec, false), 6);
    assert_string_equal(dec, "a/b c~");
    assert_int_equal(urlenc_decode("%2f%2F", 6, dec, sizeof dec, false), 2);
    assert_string_equal(dec, "//");
    assert_int_equal(urlenc_decode("%2", 2, dec, sizeof dec, false), IOTDM_E_MALFORMED);
    assert_int_equal(urlenc_decode("%zz", 3, dec, sizeof dec, false), IOTDM_E_MALFORMED);
    assert_int_equal(urlenc_decode("a+b", 3, dec, sizeof dec, true), 3);
    assert_string_equal(dec, "a b");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sas_sign_shared_vectors_match),
        cmocka_unit_test(test_sas_build_token_shared_vectors_match),
        cmocka_unit_test(test_sas_verify_any_encoding_and_order_accepted),
        cmocka_unit_test(test_sas_verify_tampered_token_rejected),
        cmocka_unit_test(test_sas_resource_prefix_segment_wise),
        cmocka_unit_test(test_sas_parse_malformed_rejected),
        cmocka_unit_test(test_sas_derive_device_key_vector_matches),
        cmocka_unit_test(test_base64_short_key_without_padding_decodes),
        cmocka_unit_test(test_sas_node_sdk_vectors_match),
        cmocka_unit_test(test_urlenc_round_trip_and_bad_escape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
