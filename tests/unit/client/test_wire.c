/* What libiotdm puts on the wire: the CONNECT user name, SAS passwords (device key and pluggable
 * signer, against Microsoft's vector), telemetry property bags and topics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/sas.h"
#include "common/timeutil.h"
#include "fixture.h"

#define MS_KEY                                                                                     \
    "18RQk/hOPJR9EbsJlk2j8WA6vWaj/yi+oaYg7zmxfQNdOyMSu+SJ8O7TSlZhDJCYmn4rzEiVKIzNiVAWjLxrGA=="
#define MS_TOKEN                                                                                   \
    "SharedAccessSignature sr=MyExampleHub.azure-devices.net%2Fdevices%2Fmy-symkey-device&sig="    \
    "f%2BwW8XOKeJOtiPc9Iwjc4OpExvPM7NlhM9qxN2a1aAM%3D&se=1663119026"

static void test_username_has_api_version_client_type_and_encoded_model(void **state)
{
    (void)state;
    char buf[512];
    assert_true(client_format_username(buf, sizeof buf, "contoso.azure-devices.net", "dev-01",
                                       "dtmi:iotdm:DeviceManagement;1") > 0);
    assert_string_equal(buf, "contoso.azure-devices.net/dev-01/?api-version=2021-04-12"
                             "&DeviceClientType=iotdm%2F0.1"
                             "&model-id=dtmi%3Aiotdm%3ADeviceManagement%3B1");
    /* the parser the hub uses reads it back */
    az_username u;
    assert_int_equal(az_parse_username(buf, strlen(buf), &u), IOTDM_OK);
    assert_int_equal(u.kind, AZ_USER_HUB);
    assert_int_equal(u.device_id.len, 6);
    assert_int_equal(client_format_username(buf, 20, "contoso.azure-devices.net", "d", NULL), 0);
}

static void test_string_to_sign_is_encoded_resource_newline_expiry(void **state)
{
    (void)state;
    char buf[256];
    long n = client_string_to_sign("MyExampleHub.azure-devices.net", "my-symkey-device", 1663119026,
                                   buf, sizeof buf);
    assert_string_equal(buf, "MyExampleHub.azure-devices.net%2Fdevices%2Fmy-symkey-device\n"
                             "1663119026");
    assert_int_equal(n, (long)strlen(buf));
}

static iotdm_client *vector_client(const char *dir, iotdm_sas_signer_fn signer)
{
    iotdm_client_config cfg = {
        .struct_size = sizeof(iotdm_client_config),
        .host = "MyExampleHub.azure-devices.net",
        .device_id = "my-symkey-device",
        .device_key = signer ? NULL : MS_KEY,
        .signer = signer,
        .state_dir = dir,
    };
    iotdm_client *c = NULL;
    assert_int_equal(iotdm_client_new(&cfg, &c), IOTDM_OK);
    return c;
}

static iotdm_result tpm_like_signer(void *ctx, const char *string_to_sign, size_t len,
                                    char *out_sig, size_t out_cap)
{
    (void)ctx;
    assert_true(out_cap > SAS_SIG_LEN);
    return sas_sign(MS_KEY, string_to_sign, len, out_sig);
}

static void test_password_from_key_and_from_signer_match_vector(void **state)
{
    (void)state;
    char *dir = fixture_mkdir();
    char token[SAS_TOKEN_MAX];
    iotdm_client *c = vector_client(dir, NULL);
    assert_int_equal(client_build_password(c, 1663119026, token, sizeof token), IOTDM_OK);
    assert_string_equal(token, MS_TOKEN);
    iotdm_client_free(c);
    c = vector_client(dir, tpm_like_signer);
    assert_int_equal(client_build_password(c, 1663119026, token, sizeof token), IOTDM_OK);
    assert_string_equal(token, MS_TOKEN);
    iotdm_client_free(c);
    fixture_rmdir(dir);
}

static void test_sas_token_for_another_process_is_signed_by_key_or_signer(void **state)
{
    (void)state;
    char *dir = fixture_mkdir();
    char token[SAS_TOKEN_MAX];
    for (int with_signer = 0; with_signer < 2; with_signer++) {
        iotdm_client *c = vector_client(dir, with_signer ? tpm_like_signer : NULL);
        int64_t now = time_now_ms() / 1000;
        assert_int_equal(iotdm_client_sas_token(c, 900, token, sizeof token), IOTDM_OK);
        sas_token tok;
        assert_int_equal(sas_parse(token, strlen(token), &tok), IOTDM_OK);
        assert_null(tok.skn);
        assert_true(tok.expiry >= now + 900 && tok.expiry <= now + 901);
        assert_true(sas_signature_valid(&tok, MS_KEY));
        assert_true(
            sas_resource_covers(&tok, "MyExampleHub.azure-devices.net/devices/my-symkey-device"));
        assert_false(sas_resource_covers(&tok, "MyExampleHub.azure-devices.net/devices/other"));
        assert_int_equal(iotdm_client_sas_token(c, 900, token, 40), IOTDM_E_TOO_LARGE);
        iotdm_client_free(c);
    }
    iotdm_client_config x509 = {.struct_size = sizeof(iotdm_client_config),
                                .host = "h",
                                .device_id = "d",
                                .cert_file = "c.pem",
                                .key_file = "k.pem",
                                .state_dir = dir};
    iotdm_client *c = NULL;
    assert_int_equal(iotdm_client_new(&x509, &c), IOTDM_OK);
    assert_int_equal(iotdm_client_sas_token(c, 900, token, sizeof token), IOTDM_E_UNSUPPORTED);
    iotdm_client_free(c);
    fixture_rmdir(dir);
}

static void ignore_desired(void *ctx, const char *value_json, int64_t version, iotdm_ack *out_ack)
{
    (void)ctx;
    (void)value_json;
    (void)version;
    (void)out_ack;
}

/* The ABI rule (client.h): struct_size unset is refused; a later version's struct is taken when
 * what this library does not know is zero, and refused when it is set. */
static void test_config_struct_size_is_checked(void **state)
{
    (void)state;
    char *dir = fixture_mkdir();
    iotdm_client *c = NULL;
    struct {
        iotdm_client_config v1;
        void *later_member;
    } later = {.v1 = {.struct_size = sizeof later,
                      .host = "h",
                      .device_id = "d",
                      .device_key = "AAAA",
                      .state_dir = dir}};
    iotdm_client_config unset = later.v1;
    unset.struct_size = 0;
    assert_int_equal(iotdm_client_new(&unset, &c), IOTDM_E_MALFORMED);
    assert_null(c);
    later.later_member = &later;
    assert_int_equal(iotdm_client_new(&later.v1, &c), IOTDM_E_UNSUPPORTED);
    later.later_member = NULL;
    assert_int_equal(iotdm_client_new(&later.v1, &c), IOTDM_OK);
    iotdm_property_handler h = {.component = "dm", .property = "x", .on_desired = ignore_desired};
    assert_int_equal(iotdm_handler_add(c, &h), -EINVAL); /* struct_size not set */
    iotdm_property_handler_init(&h);
    h.component = "dm";
    h.property = "x";
    h.on_desired = ignore_desired;
    assert_int_equal(iotdm_handler_add(c, &h), IOTDM_OK);
    iotdm_client_free(c);
    fixture_rmdir(dir);
}

static void test_config_contradictions_are_refused(void **state)
{
    (void)state;
    char *dir = fixture_mkdir();
    iotdm_client *c = NULL;
    iotdm_client_config both = {.struct_size = sizeof(iotdm_client_config),
                                .host = "h",
                                .device_id = "d",
                                .device_key = "AAAA",
                                .cert_file = "c.pem",
                                .key_file = "k.pem",
                                .state_dir = dir};
    assert_int_equal(iotdm_client_new(&both, &c), IOTDM_E_MALFORMED);
    iotdm_client_config none = {.struct_size = sizeof(iotdm_client_config),
                                .host = "h",
                                .device_id = "d",
                                .state_dir = dir};
    assert_int_equal(iotdm_client_new(&none, &c), IOTDM_E_MALFORMED);
    iotdm_client_config bad_id = {.struct_size = sizeof(iotdm_client_config),
                                  .host = "h",
                                  .device_id = "a/b",
                                  .device_key = "AAAA",
                                  .state_dir = dir};
    assert_int_equal(iotdm_client_new(&bad_id, &c), IOTDM_E_MALFORMED);
    iotdm_client_config bad_key = {.struct_size = sizeof(iotdm_client_config),
                                   .host = "h",
                                   .device_id = "d",
                                   .device_key = "!!",
                                   .state_dir = dir};
    assert_int_equal(iotdm_client_new(&bad_key, &c), IOTDM_E_MALFORMED);
    iotdm_client_config short_keepalive = none;
    short_keepalive.device_key = "AAAA";
    short_keepalive.keepalive_s = 4; /* libmosquitto would refuse every connect */
    assert_int_equal(iotdm_client_new(&short_keepalive, &c), IOTDM_E_MALFORMED);
    assert_null(c);
    fixture_rmdir(dir);
}

static void test_telemetry_bag_percent_encodes_names_values_and_component(void **state)
{
    (void)state;
    iotdm_property props[] = {{"$.ct", "application/json"},
                              {"$.ce", "utf-8"},
                              {"alert", "true"},
                              {"sp ace", "a&b=c"},
                              {"flag", NULL}};
    char bag[256];
    long n = telemetry_encode_bag(props, 5, "thermostat1", bag, sizeof bag);
    assert_string_equal(bag, "%24.ct=application%2Fjson&%24.ce=utf-8&alert=true"
                             "&sp%20ace=a%26b%3Dc&flag&%24.sub=thermostat1");
    assert_int_equal(n, (long)strlen(bag));
    /* the hub's iterator reads every pair back */
    az_propbag_iter it;
    az_propbag_iter_init(&it, bag, (size_t)n);
    az_span name, value;
    bool has_value;
    int pairs = 0;
    while (az_propbag_next(&it, &name, &value, &has_value))
        pairs++;
    assert_int_equal(pairs, 6);
    assert_int_equal(telemetry_encode_bag(NULL, 0, NULL, bag, sizeof bag), 0);
    assert_string_equal(bag, "");
    assert_true(telemetry_encode_bag(props, 5, NULL, bag, 20) < 0);
    iotdm_property unnamed[] = {{"", "x"}};
    assert_int_equal(telemetry_encode_bag(unnamed, 1, NULL, bag, sizeof bag), IOTDM_E_MALFORMED);
}

static void test_telemetry_send_queues_and_enforces_256k(void **state)
{
    (void)state;
    char *dir = fixture_mkdir();
    iotdm_client *c = fixture_client(dir);
    iotdm_property p[] = {{"$.mid", "m1"}};
    assert_int_equal(iotdm_telemetry_send(c, "hi", 2, p, 1, "comp"), IOTDM_OK);
    static char big[256 * 1024 + 1];
    assert_int_equal(iotdm_telemetry_send(c, big, sizeof big, NULL, 0, NULL), IOTDM_E_TOO_LARGE);
    iotdm_outbox_stats s;
    iotdm_client_outbox_stats(c, &s);
    assert_int_equal(s.telemetry_pending, 1);
    char topic[256];
    assert_true(az_format_telemetry_topic(topic, sizeof topic, "dev1", NULL,
                                          "%24.mid=m1&%24.sub=comp") > 0);
    assert_string_equal(topic, "devices/dev1/messages/events/%24.mid=m1&%24.sub=comp");
    iotdm_client_free(c);
    fixture_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_username_has_api_version_client_type_and_encoded_model),
        cmocka_unit_test(test_string_to_sign_is_encoded_resource_newline_expiry),
        cmocka_unit_test(test_password_from_key_and_from_signer_match_vector),
        cmocka_unit_test(test_sas_token_for_another_process_is_signed_by_key_or_signer),
        cmocka_unit_test(test_config_contradictions_are_refused),
        cmocka_unit_test(test_config_struct_size_is_checked),
        cmocka_unit_test(test_telemetry_bag_percent_encodes_names_values_and_component),
        cmocka_unit_test(test_telemetry_send_queues_and_enforces_256k),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
