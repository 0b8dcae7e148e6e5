/* Azure topics, filters, user names and property bags against the SDKs' exact strings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "common/urlenc.h"
#include "proto/azure_topics.h"

#define STR(s) (s), strlen(s)

static bool span_eq(az_span s, const char *lit)
{
    return s.len == strlen(lit) && (s.len == 0 || memcmp(s.ptr, lit, s.len) == 0);
}

#define assert_span(s, lit) assert_true(span_eq((s), (lit)))

static az_publish_topic parse_ok(const char *topic, az_pub_kind kind)
{
    az_publish_topic t;
    assert_int_equal(az_parse_publish_topic(STR(topic), &t), IOTDM_OK);
    assert_int_equal(t.kind, kind);
    return t;
}

static void assert_pub_invalid(const char *topic)
{
    az_publish_topic t;
    t.kind = AZ_PUB_TELEMETRY;
    assert_int_equal(az_parse_publish_topic(STR(topic), &t), IOTDM_E_PROTOCOL);
    assert_int_equal(t.kind, AZ_PUB_INVALID);
}

/* ---- telemetry --------------------------------------------------------------------------- */

static void test_publish_node_telemetry_bag_parsed(void **state)
{
    (void)state;
    az_publish_topic t = parse_ok("devices/dev1/messages/events/"
                                  "%24.mid=m1&%24.ct=application%2Fjson&%24.ce=utf-8&alert=true",
                                  AZ_PUB_TELEMETRY);
    assert_span(t.device_id, "dev1");
    assert_int_equal(t.module_id.len, 0);
    assert_span(t.property_bag, "%24.mid=m1&%24.ct=application%2Fjson&%24.ce=utf-8&alert=true");

    az_propbag_iter it;
    az_span n, v;
    bool hv;
    az_propbag_iter_init(&it, t.property_bag.ptr, t.property_bag.len);
    assert_true(az_propbag_next(&it, &n, &v, &hv));
    assert_true(az_propbag_name_is(n, "$.mid"));
    assert_span(v, "m1");
    assert_true(az_propbag_next(&it, &n, &v, &hv));
    assert_true(az_propbag_name_is(n, "$.ct"));
    assert_span(v, "application%2Fjson");
    assert_true(az_propbag_next(&it, &n, &v, &hv));
    assert_true(az_propbag_name_is(n, "$.ce"));
    assert_span(v, "utf-8");
    assert_true(az_propbag_next(&it, &n, &v, &hv));
    assert_span(n, "alert");
    assert_span(v, "true");
    assert_true(hv);
    assert_false(az_propbag_next(&it, &n, &v, &hv));
}

static void test_publish_docs_raw_dollar_bag_parsed(void **state)
{
    (void)state;
    az_publish_topic t = parse_ok("devices/dev1/messages/events/$.ct=application%2Fjson&$.ce=utf-8",
                                  AZ_PUB_TELEMETRY);
    assert_span(t.device_id, "dev1");
    assert_span(t.property_bag, "$.ct=application%2Fjson&$.ce=utf-8");
    az_propbag_iter it;
    az_span n, v;
    bool hv;
    az_propbag_iter_init(&it, t.property_bag.ptr, t.property_bag.len);
    assert_true(az_propbag_next(&it, &n, &v, &hv));
    assert_true(az_propbag_name_is(n, "$.ct"));
}

static void test_publish_telemetry_slash_variants_parsed(void **state)
{
    (void)state;
    az_publish_topic t = parse_ok("devices/dev1/messages/events", AZ_PUB_TELEMETRY);
    assert_span(t.device_id, "dev1");
    assert_int_equal(t.property_bag.len, 0);
    t = parse_ok("devices/dev1/messages/events/", AZ_PUB_TELEMETRY);
    assert_int_equal(t.property_bag.len, 0);
    t = parse_ok("devices/dev1/messages/events/a=1/", AZ_PUB_TELEMETRY);
    assert_span(t.property_bag, "a=1");
}

static void test_publish_module_output_trailing_slash_parsed(void **state)
{
    (void)state;
    az_publish_topic t =
        parse_ok("devices/dev1/modules/mod1/messages/events/%24.on=out1/", AZ_PUB_TELEMETRY);
    assert_span(t.device_id, "dev1");
    assert_span(t.module_id, "mod1");
    assert_span(t.property_bag, "%24.on=out1");
    t = parse_ok("devices/dev1/modules/mod1/messages/events/", AZ_PUB_TELEMETRY);
    assert_span(t.module_id, "mod1");
    assert_int_equal(t.property_bag.len, 0);
}

static void test_publish_csdk_telemetry_parsed(void **state)
{
    (void)state;
    az_publish_topic t =
        parse_ok("devices/my_device/messages/events/key=value&key_two=value2", AZ_PUB_TELEMETRY);
    assert_span(t.device_id, "my_device");
    assert_span(t.property_bag, "key=value&key_two=value2");
}

static void test_publish_bad_telemetry_protocol(void **state)
{
    (void)state;
    assert_pub_invalid("devices/dev1/messages/event");
    assert_pub_invalid("devices/dev1/messages/eventsX");
    assert_pub_invalid("devices//messages/events/");
    assert_pub_invalid("devices/dev1/messages/devicebound/a=1");
    assert_pub_invalid("devices/dev1/modules//messages/events/");
    assert_pub_invalid("devices/dev1");
    assert_pub_invalid("devices/");
    assert_pub_invalid("Devices/dev1/messages/events/");
    assert_pub_invalid("");
    assert_pub_invalid("foo/bar");
}

/* ---- twin, methods, DPS ------------------------------------------------------------------ */

static void test_publish_csdk_twin_vectors_parsed(void **state)
{
    (void)state;
    az_publish_topic t = parse_ok("$iothub/twin/GET/?$rid=id_one", AZ_PUB_TWIN_GET);
    assert_span(t.rid, "id_one");
    t = parse_ok("$iothub/twin/PATCH/properties/reported/?$rid=id_one", AZ_PUB_TWIN_PATCH_REPORTED);
    assert_span(t.rid, "id_one");
    assert_false(t.has_version);
}

static void test_publish_node_twin_uuid_rid_parsed(void **state)
{
    (void)state;
    az_publish_topic t =
        parse_ok("$iothub/twin/GET/?$rid=3b0a3b1e-1f2c-4a5b-9c8d-7e6f5a4b3c2d", AZ_PUB_TWIN_GET);
    assert_span(t.rid, "3b0a3b1e-1f2c-4a5b-9c8d-7e6f5a4b3c2d");
}

static void test_publish_twin_patch_version_any_order_parsed(void **state)
{
    (void)state;
    az_publish_topic t = parse_ok("$iothub/twin/PATCH/properties/reported/?$rid=7&$version=42",
                                  AZ_PUB_TWIN_PATCH_REPORTED);
    assert_span(t.rid, "7");
    assert_true(t.has_version);
    assert_int_equal(t.version, 42);
    t = parse_ok("$iothub/twin/PATCH/properties/reported/?$version=9223372036854775807&$rid=x",
                 AZ_PUB_TWIN_PATCH_REPORTED);
    assert_span(t.rid, "x");
    assert_int_equal(t.version, INT64_MAX);
}

static void test_publish_encoded_dollar_keys_parsed(void **state)
{
    (void)state;
    az_publish_topic t = parse_ok("$iothub/twin/GET/?%24rid=5", AZ_PUB_TWIN_GET);
    assert_span(t.rid, "5");
    t = parse_ok("$iothub/twin/PATCH/properties/reported/?%24rid=6&%24version=3",
                 AZ_PUB_TWIN_PATCH_REPORTED);
    assert_span(t.rid, "6");
    assert_int_equal(t.version, 3);
    /* unknown keys are ignored, the rid is kept encoded for the echo */
    t = parse_ok("$iothub/twin/GET/?foo=bar&$rid=a%2Fb", AZ_PUB_TWIN_GET);
    assert_span(t.rid, "a%2Fb");
}

static void test_publish_twin_without_rid_protocol(void **state)
{
    (void)state;
    assert_pub_invalid("$iothub/twin/GET/?");
    assert_pub_invalid("$iothub/twin/GET/");
    assert_pub_invalid("$iothub/twin/GET/?$rid=");
    assert_pub_invalid("$iothub/twin/GET/?$rid");
    assert_pub_invalid("$iothub/twin/GET?$rid=1");
    assert_pub_invalid("$iothub/twin/GET/?rid=1");
    assert_pub_invalid("$iothub/twin/PATCH/properties/reported/?$version=1");
    assert_pub_invalid("$iothub/twin/PATCH/properties/reported?$rid=1");
    assert_pub_invalid("$iothub/methods/res/200?$rid=1");
    assert_pub_invalid("$iothub/methods/res/200/?");
}

static void test_publish_bad_query_values_protocol(void **state)
{
    (void)state;
    assert_pub_invalid("$iothub/twin/GET/?$rid=1&$rid=2");
    assert_pub_invalid("$iothub/twin/PATCH/properties/reported/?$rid=1&$version=abc");
    assert_pub_invalid("$iothub/twin/PATCH/properties/reported/?$rid=1&$version=-1");
    assert_pub_invalid("$iothub/twin/PATCH/properties/reported/?$rid=1&$version=");
    assert_pub_invalid(
        "$iothub/twin/PATCH/properties/reported/?$rid=1&$version=9223372036854775808");
}

static void test_publish_hub_only_topics_protocol(void **state)
{
    (void)state;
    assert_pub_invalid("$iothub/twin/PATCH/properties/desired/?$version=1");
    assert_pub_invalid("$iothub/twin/res/200/?$rid=1");
    assert_pub_invalid("$iothub/methods/POST/reboot/?$rid=1");
    assert_pub_invalid("$dps/registrations/res/200/?$rid=1");
    assert_pub_invalid("$iothub/twin/get/?$rid=1");
}

static void test_publish_method_response_vector_parsed(void **state)
{
    (void)state;
    az_publish_topic t = parse_ok("$iothub/methods/res/200/?$rid=2", AZ_PUB_METHOD_RESPONSE);
    assert_int_equal(t.status, 200);
    assert_span(t.rid, "2");
    t = parse_ok("$iothub/methods/res/0/?$rid=1", AZ_PUB_METHOD_RESPONSE);
    assert_int_equal(t.status, 0);
    t = parse_ok("$iothub/methods/res/65535/?$rid=1", AZ_PUB_METHOD_RESPONSE);
    assert_int_equal(t.status, 65535);
}

static void test_publish_method_response_bad_status_protocol(void **state)
{
    (void)state;
    assert_pub_invalid("$iothub/methods/res/65536/?$rid=1");
    assert_pub_invalid("$iothub/methods/res/-1/?$rid=1");
    assert_pub_invalid("$iothub/methods/res/abc/?$rid=1");
    assert_pub_invalid("$iothub/methods/res//?$rid=1");
    assert_pub_invalid("$iothub/methods/res/2x0/?$rid=1");
    assert_pub_invalid("$iothub/methods/res/99999999999999999999/?$rid=1");
}

static void test_publish_dps_vectors_parsed(void **state)
{
    (void)state;
    az_publish_topic t =
        parse_ok("$dps/registrations/PUT/iotdps-register/?$rid=1", AZ_PUB_DPS_REGISTER);
    assert_span(t.rid, "1");
    t = parse_ok("$dps/registrations/GET/iotdps-get-operationstatus/?$rid=1&operationId="
                 "4.d0a671905ea5b2c8.e7173b7b-0e54-4aa0-9d20-aeb1b89e6c7d",
                 AZ_PUB_DPS_STATUS);
    assert_span(t.rid, "1");
    assert_span(t.operation_id, "4.d0a671905ea5b2c8.e7173b7b-0e54-4aa0-9d20-aeb1b89e6c7d");
}

static void test_publish_dps_status_without_operation_protocol(void **state)
{
    (void)state;
    assert_pub_invalid("$dps/registrations/GET/iotdps-get-operationstatus/?$rid=1");
    assert_pub_invalid("$dps/registrations/GET/iotdps-get-operationstatus/?$rid=1&operationId=");
    assert_pub_invalid("$dps/registrations/PUT/iotdps-register?$rid=1");
}

/* ---- subscription filters ---------------------------------------------------------------- */

static az_sub_kind classify(const char *filter, const char *dev, const char *mod, bool *foreign)
{
    return az_classify_filter(STR(filter), dev, mod, foreign);
}

static void test_filter_device_filters_classified(void **state)
{
    (void)state;
    bool f = true;
    assert_int_equal(classify("devices/dev1/messages/devicebound/#", "dev1", NULL, &f), AZ_SUB_C2D);
    assert_false(f);
    assert_int_equal(classify("$iothub/twin/res/#", "dev1", NULL, &f), AZ_SUB_TWIN_RESPONSES);
    assert_int_equal(classify("$iothub/twin/PATCH/properties/desired/#", "dev1", "", &f),
                     AZ_SUB_TWIN_DESIRED);
    assert_int_equal(classify("$iothub/methods/POST/#", "dev1", NULL, &f), AZ_SUB_METHODS);
    assert_int_equal(classify("$dps/registrations/res/#", "reg1", NULL, &f), AZ_SUB_DPS_RESPONSES);
    assert_false(f);
}

static void test_filter_csdk_plus_c2d_classified(void **state)
{
    (void)state;
    bool f = true;
    assert_int_equal(classify("devices/+/messages/devicebound/#", "dev1", NULL, &f), AZ_SUB_C2D);
    assert_false(f);
}

static void test_filter_module_filters_classified(void **state)
{
    (void)state;
    bool f = true;
    assert_int_equal(classify("devices/dev1/modules/mod1/inputs/#", "dev1", "mod1", &f),
                     AZ_SUB_MODULE_INPUTS);
    assert_false(f);
    assert_int_equal(classify("devices/dev1/modules/mod1/#", "dev1", "mod1", &f),
                     AZ_SUB_MODULE_INPUTS);
    assert_int_equal(classify("$iothub/methods/POST/#", "dev1", "mod1", &f), AZ_SUB_METHODS);
    /* modules get no C2D */
    assert_int_equal(classify("devices/dev1/messages/devicebound/#", "dev1", "mod1", &f),
                     AZ_SUB_INVALID);
    assert_false(f);
}

static void test_filter_foreign_device_flagged(void **state)
{
    (void)state;
    bool f = false;
    assert_int_equal(classify("devices/dev2/messages/devicebound/#", "dev1", NULL, &f),
                     AZ_SUB_INVALID);
    assert_true(f);
    f = false;
    /* prefixes and extensions of the own id are other ids */
    assert_int_equal(classify("devices/dev10/messages/devicebound/#", "dev1", NULL, &f),
                     AZ_SUB_INVALID);
    assert_true(f);
    f = false;
    assert_int_equal(classify("devices/dev/messages/devicebound/#", "dev1", NULL, &f),
                     AZ_SUB_INVALID);
    assert_true(f);
    f = false;
    assert_int_equal(classify("devices/DEV1/messages/devicebound/#", "dev1", NULL, &f),
                     AZ_SUB_INVALID);
    assert_true(f);
    f = false;
    assert_int_equal(classify("devices/dev2/modules/mod1/inputs/#", "dev1", "mod1", &f),
                     AZ_SUB_INVALID);
    assert_true(f);
}

static void test_filter_foreign_module_flagged(void **state)
{
    (void)state;
    bool f = false;
    assert_int_equal(classify("devices/dev1/modules/mod2/inputs/#", "dev1", "mod1", &f),
                     AZ_SUB_INVALID);
    assert_true(f);
    f = false;
    /* a device connection naming any module, even by wildcard */
    assert_int_equal(classify("devices/dev1/modules/mod1/inputs/#", "dev1", NULL, &f),
                     AZ_SUB_INVALID);
    assert_true(f);
    f = false;
    assert_int_equal(classify("devices/dev1/modules/+/inputs/#", "dev1", "", &f), AZ_SUB_INVALID);
    assert_true(f);
    /* a module connection may use '+' for its own ids */
    f = true;
    assert_int_equal(classify("devices/+/modules/+/inputs/#", "dev1", "mod1", &f),
                     AZ_SUB_MODULE_INPUTS);
    assert_false(f);
}

static void test_filter_unsupported_refused_not_foreign(void **state)
{
    (void)state;
    static const char *const refused[] = {
        "devices/dev1/messages/devicebound/+",
        "devices/dev1/messages/devicebound",
        "devices/dev1/messages/devicebound/#/x",
        "devices/dev1/messages/events/",
        "devices/dev1/#",
        "devices/dev1",
        "devices/#",
        "devices//messages/devicebound/#",
        "#",
        "+/+",
        "$iothub/#",
        "$iothub/twin/#",
        "$iothub/twin/res/+",
        "$iothub/twin/res/",
        "$iothub/methods/POST/reboot",
        "$iothub/methods/POST/+/#",
        "$iothub/twin/PATCH/properties/reported/#",
        "$dps/registrations/#",
        "foo",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        bool f = true;
        assert_int_equal(classify(refused[i], "dev1", NULL, &f), AZ_SUB_INVALID);
        assert_false(f);
    }
    bool f = true;
    assert_int_equal(classify("devices/dev1/modules/mod1/outputs/#", "dev1", "mod1", &f),
                     AZ_SUB_INVALID);
    assert_false(f);
}

/* ---- user names -------------------------------------------------------------------------- */

static az_username user_ok(const char *s, az_user_kind kind)
{
    az_username u;
    assert_int_equal(az_parse_username(STR(s), &u), IOTDM_OK);
    assert_int_equal(u.kind, kind);
    return u;
}

static void test_username_node_device_parsed(void **state)
{
    (void)state;
    az_username u = user_ok("host/dev1/?api-version=2021-04-12&model-id=dtmi:com:example:"
                            "Thermostat;1&DeviceClientType=azure-iot-device%2F1.18.4%20(node%"
                            "20v20.11.1%3B%20Ubuntu%2022.04%3B%20x64)",
                            AZ_USER_HUB);
    assert_span(u.host, "host");
    assert_span(u.device_id, "dev1");
    assert_int_equal(u.module_id.len, 0);
    assert_span(u.api_version, "2021-04-12");
    assert_span(u.model_id, "dtmi:com:example:Thermostat;1");
    assert_span(u.client_type,
                "azure-iot-device%2F1.18.4%20(node%20v20.11.1%3B%20Ubuntu%2022.04%3B%20x64)");
    char decoded[128];
    assert_true(
        urlenc_decode(u.client_type.ptr, u.client_type.len, decoded, sizeof decoded, false) > 0);
    assert_string_equal(decoded, "azure-iot-device/1.18.4 (node v20.11.1; Ubuntu 22.04; x64)");
}

static void test_username_csdk_device_parsed(void **state)
{
    (void)state;
    az_username u = user_ok("myiothub.azure-devices.net/my_device/?api-version=2020-09-30&"
                            "DeviceClientType=azsdk-c%2F1.6.0&model-id=dtmi%3AYOUR_COMPANY_NAME_"
                            "HERE%3Asample_device%3B1",
                            AZ_USER_HUB);
    assert_span(u.host, "myiothub.azure-devices.net");
    assert_span(u.device_id, "my_device");
    assert_span(u.api_version, "2020-09-30");
    assert_span(u.client_type, "azsdk-c%2F1.6.0");
    assert_span(u.model_id, "dtmi%3AYOUR_COMPANY_NAME_HERE%3Asample_device%3B1");
    char decoded[128];
    assert_true(urlenc_decode(u.model_id.ptr, u.model_id.len, decoded, sizeof decoded, false) > 0);
    assert_string_equal(decoded, "dtmi:YOUR_COMPANY_NAME_HERE:sample_device;1");
}

static void test_username_csdk_module_parsed(void **state)
{
    (void)state;
    az_username u =
        user_ok("myiothub.azure-devices.net/my_device/my_module_id/?api-version=2020-09-30&"
                "DeviceClientType=azrtos",
                AZ_USER_HUB);
    assert_span(u.device_id, "my_device");
    assert_span(u.module_id, "my_module_id");
    assert_span(u.client_type, "azrtos");
    assert_int_equal(u.model_id.len, 0);
}

static void test_username_docs_and_legacy_parsed(void **state)
{
    (void)state;
    az_username u =
        user_ok("contoso.azure-devices.net/MyDevice01/?api-version=2021-04-12", AZ_USER_HUB);
    assert_span(u.device_id, "MyDevice01");
    assert_span(u.api_version, "2021-04-12");
    u = user_ok("h.azure-devices.net/d/?api-version=2017-11-08-preview&DeviceClientType="
                "iothubclient%2f1.3.0%20(native%3b%20Linux%3b%20armv7l)",
                AZ_USER_HUB);
    assert_span(u.client_type, "iothubclient%2f1.3.0%20(native%3b%20Linux%3b%20armv7l)");
    /* a port leaks into the host with Node's HostName=host:port */
    u = user_ok("localhost:18883/dev1/?api-version=2021-04-12", AZ_USER_HUB);
    assert_span(u.host, "localhost:18883");
}

static void test_username_tolerant_query_parsed(void **state)
{
    (void)state;
    /* no api-version */
    az_username u = user_ok("h/dev1/?DeviceClientType=x", AZ_USER_HUB);
    assert_int_equal(u.api_version.len, 0);
    assert_span(u.client_type, "x");
    /* empty query */
    u = user_ok("h/dev1/?", AZ_USER_HUB);
    assert_span(u.device_id, "dev1");
    /* unknown keys, any order, '=' inside a value */
    u = user_ok("h/dev1/?auth-chain=a;b&model-id=dtmi:x=y;1&api-version=v", AZ_USER_HUB);
    assert_span(u.model_id, "dtmi:x=y;1");
    assert_span(u.api_version, "v");
    /* device ids may hold '?', '$' and '=' (docs/protocol.md §6.3) */
    u = user_ok("h/?d$=1/?api-version=v", AZ_USER_HUB);
    assert_span(u.device_id, "?d$=1");
    /* a device called "registrations" is still a hub device */
    u = user_ok("h/registrations/?api-version=v", AZ_USER_HUB);
    assert_span(u.device_id, "registrations");
    u = user_ok("h/registrations/mod/?api-version=v", AZ_USER_HUB);
    assert_span(u.module_id, "mod");
}

static void test_username_dps_parsed(void **state)
{
    (void)state;
    az_username u = user_ok("0ne00111111/registrations/my-dev/api-version=2019-03-31&"
                            "ClientVersion=azure-iot-provisioning-device%2F1.9.2",
                            AZ_USER_DPS);
    assert_span(u.id_scope, "0ne00111111");
    assert_span(u.registration_id, "my-dev");
    assert_span(u.api_version, "2019-03-31");
    assert_span(u.client_type, "azure-iot-provisioning-device%2F1.9.2");
    u = user_ok("0ne00000A0A/registrations/sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6/"
                "api-version=2019-03-31",
                AZ_USER_DPS);
    assert_span(u.registration_id, "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6");
    assert_int_equal(u.client_type.len, 0);
    assert_int_equal(u.host.len, 0);
    assert_int_equal(u.device_id.len, 0);
    /* C-SDK passes a user agent it encoded itself (or not) */
    u = user_ok("0ne00000A0A/registrations/r1/api-version=2021-06-01&ClientVersion=my agent/1",
                AZ_USER_DPS);
    assert_span(u.api_version, "2021-06-01");
    assert_span(u.client_type, "my agent/1");
}

static void test_username_malformed_rejected(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "host",
        "host/",
        "/dev1/?api-version=1",
        "host//?api-version=1",
        "host/dev1",
        "host/dev1/",
        "host/dev1/mod1",
        "host/dev1/mod1/",
        "host/dev1//?a=1",
        "host/dev1/mod1/x/?a=1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        az_username u;
        u.kind = AZ_USER_HUB;
        assert_int_equal(az_parse_username(STR(bad[i]), &u), IOTDM_E_MALFORMED);
        assert_int_equal(u.kind, AZ_USER_INVALID);
    }
}

static void test_username_format_round_trip_equal(void **state)
{
    (void)state;
    char buf[256];
    size_t n = az_format_username(buf, sizeof buf, "hub.test", "dev1", "mod1", "2021-04-12",
                                  "iotdm%2F0.1.0", "dtmi%3Aiotdm%3ADeviceManagement%3B1");
    assert_string_equal(buf, "hub.test/dev1/mod1/?api-version=2021-04-12&DeviceClientType="
                             "iotdm%2F0.1.0&model-id=dtmi%3Aiotdm%3ADeviceManagement%3B1");
    az_username u;
    assert_int_equal(az_parse_username(buf, n, &u), IOTDM_OK);
    assert_span(u.module_id, "mod1");
    assert_span(u.model_id, "dtmi%3Aiotdm%3ADeviceManagement%3B1");
    assert_int_equal(az_format_username(buf, sizeof buf, "h", "d", NULL, "v", NULL, NULL), 18);
    assert_string_equal(buf, "h/d/?api-version=v");
}

/* ---- property bags ----------------------------------------------------------------------- */

static void test_propbag_missing_equals_no_value(void **state)
{
    (void)state;
    static const char bag[] = "flag&k=&=v&a=b=c";
    az_propbag_iter it;
    az_span n, v;
    bool hv;
    az_propbag_iter_init(&it, bag, strlen(bag));
    assert_true(az_propbag_next(&it, &n, &v, &hv));
    assert_span(n, "flag");
    assert_false(hv);
    assert_int_equal(v.len, 0);
    assert_true(az_propbag_next(&it, &n, &v, &hv));
    assert_span(n, "k");
    assert_true(hv);
    assert_int_equal(v.len, 0);
    assert_true(az_propbag_next(&it, &n, &v, &hv));
    assert_int_equal(n.len, 0);
    assert_span(v, "v");
    assert_true(az_propbag_next(&it, &n, &v, &hv));
    assert_span(n, "a");
    assert_span(v, "b=c");
    assert_false(az_propbag_next(&it, &n, &v, &hv));
}

static void test_propbag_empty_segments_skipped(void **state)
{
    (void)state;
    static const char bag[] = "&&a=1&&&b&";
    az_propbag_iter it;
    az_span n, v;
    bool hv;
    az_propbag_iter_init(&it, bag, strlen(bag));
    assert_true(az_propbag_next(&it, &n, &v, &hv));
    assert_span(n, "a");
    assert_true(az_propbag_next(&it, &n, &v, &hv));
    assert_span(n, "b");
    assert_false(az_propbag_next(&it, &n, &v, &hv));
    az_propbag_iter_init(&it, "", 0);
    assert_false(az_propbag_next(&it, &n, &v, &hv));
    az_propbag_iter_init(&it, NULL, 5);
    assert_false(az_propbag_next(&it, &n, &v, &hv));
}

static void test_propbag_name_is_decodes_escapes(void **state)
{
    (void)state;
    assert_true(az_propbag_name_is((az_span){STR("%24.ct")}, "$.ct"));
    assert_true(az_propbag_name_is((az_span){STR("%24%2ect")}, "$.ct"));
    assert_true(az_propbag_name_is((az_span){STR("$.ct")}, "$.ct"));
    assert_false(az_propbag_name_is((az_span){STR("%24.ctx")}, "$.ct"));
    assert_false(az_propbag_name_is((az_span){STR("%24.c")}, "$.ct"));
    assert_false(az_propbag_name_is((az_span){STR("%2")}, "$"));
    assert_true(az_propbag_name_is((az_span){STR("%2")}, "%2"));
    assert_false(az_propbag_name_is((az_span){STR("$.CT")}, "$.ct"));
}

/* ---- formatting (hub -> device) and the device-side parser ------------------------------- */

static void test_format_twin_response_vectors_exact(void **state)
{
    (void)state;
    char buf[128];
    assert_int_equal(az_format_twin_response(buf, sizeof buf, 200, STR("id_one"), -1), 33);
    assert_string_equal(buf, "$iothub/twin/res/200/?$rid=id_one");
    az_format_twin_response(buf, sizeof buf, 204, STR("id_one"), 16);
    assert_string_equal(buf, "$iothub/twin/res/204/?$rid=id_one&$version=16");
    az_format_twin_response(buf, sizeof buf, 400, STR("id_one"), -1);
    assert_string_equal(buf, "$iothub/twin/res/400/?$rid=id_one");

    az_hub_topic t;
    assert_int_equal(az_parse_hub_topic(STR("$iothub/twin/res/204/?$rid=id_one&$version=16"), &t),
                     IOTDM_OK);
    assert_int_equal(t.kind, AZ_HUB_TWIN_RESPONSE);
    assert_int_equal(t.status, 204);
    assert_span(t.rid, "id_one");
    assert_true(t.has_version);
    assert_int_equal(t.version, 16);
}

static void test_format_desired_patch_exact(void **state)
{
    (void)state;
    char buf[96];
    size_t n = az_format_desired_patch(buf, sizeof buf, 8);
    assert_string_equal(buf, "$iothub/twin/PATCH/properties/desired/?$version=8");
    az_hub_topic t;
    assert_int_equal(az_parse_hub_topic(buf, n, &t), IOTDM_OK);
    assert_int_equal(t.kind, AZ_HUB_TWIN_DESIRED);
    assert_int_equal(t.version, 8);
    az_format_desired_patch(buf, sizeof buf, INT64_MAX);
    assert_string_equal(buf, "$iothub/twin/PATCH/properties/desired/?$version=9223372036854775807");
}

static void test_format_method_request_vector_exact(void **state)
{
    (void)state;
    char buf[64];
    size_t n = az_format_method_request(buf, sizeof buf, STR("TestMethod"), STR("1"));
    assert_string_equal(buf, "$iothub/methods/POST/TestMethod/?$rid=1");
    az_hub_topic t;
    assert_int_equal(az_parse_hub_topic(buf, n, &t), IOTDM_OK);
    assert_int_equal(t.kind, AZ_HUB_METHOD_REQUEST);
    assert_span(t.method_name, "TestMethod");
    assert_span(t.rid, "1");
    az_format_method_request(buf, sizeof buf, STR("dm*reboot"), STR("42"));
    assert_string_equal(buf, "$iothub/methods/POST/dm*reboot/?$rid=42");
}

static void test_format_c2d_vector_exact(void **state)
{
    (void)state;
    char buf[160];
    size_t n =
        az_format_c2d_topic(buf, sizeof buf, "useragent_c",
                            "%24.to=%2Fdevices%2Fuseragent_c%2Fmessages%2FdeviceBound&abc=123");
    assert_string_equal(buf, "devices/useragent_c/messages/devicebound/"
                             "%24.to=%2Fdevices%2Fuseragent_c%2Fmessages%2FdeviceBound&abc=123");
    az_hub_topic t;
    assert_int_equal(az_parse_hub_topic(buf, n, &t), IOTDM_OK);
    assert_int_equal(t.kind, AZ_HUB_C2D);
    assert_span(t.device_id, "useragent_c");
    assert_span(t.property_bag, "%24.to=%2Fdevices%2Fuseragent_c%2Fmessages%2FdeviceBound&abc=123");
    /* empty bag keeps the slash after devicebound */
    az_format_c2d_topic(buf, sizeof buf, "dev1", NULL);
    assert_string_equal(buf, "devices/dev1/messages/devicebound/");
}

static void test_format_dps_response_vector_exact(void **state)
{
    (void)state;
    char buf[64];
    size_t n = az_format_dps_response(buf, sizeof buf, 202, STR("1"), 3);
    assert_string_equal(buf, "$dps/registrations/res/202/?$rid=1&retry-after=3");
    az_hub_topic t;
    assert_int_equal(az_parse_hub_topic(buf, n, &t), IOTDM_OK);
    assert_int_equal(t.kind, AZ_HUB_DPS_RESPONSE);
    assert_int_equal(t.status, 202);
    assert_span(t.rid, "1");
    assert_int_equal(t.retry_after, 3);
    n = az_format_dps_response(buf, sizeof buf, 200, STR("1"), -1);
    assert_string_equal(buf, "$dps/registrations/res/200/?$rid=1");
    assert_int_equal(az_parse_hub_topic(buf, n, &t), IOTDM_OK);
    assert_int_equal(t.retry_after, -1);
}

static void test_format_device_topics_parse_back(void **state)
{
    (void)state;
    char buf[128];
    size_t n = az_format_telemetry_topic(buf, sizeof buf, "dev1", "mod1", "%24.on=out1");
    assert_string_equal(buf, "devices/dev1/modules/mod1/messages/events/%24.on=out1");
    az_publish_topic t;
    assert_int_equal(az_parse_publish_topic(buf, n, &t), IOTDM_OK);
    assert_span(t.module_id, "mod1");
    n = az_format_telemetry_topic(buf, sizeof buf, "dev1", NULL, NULL);
    assert_string_equal(buf, "devices/dev1/messages/events/");
    n = az_format_twin_get(buf, sizeof buf, STR("r1"));
    assert_int_equal(az_parse_publish_topic(buf, n, &t), IOTDM_OK);
    assert_int_equal(t.kind, AZ_PUB_TWIN_GET);
    n = az_format_twin_patch_reported(buf, sizeof buf, STR("r2"), 5);
    assert_string_equal(buf, "$iothub/twin/PATCH/properties/reported/?$rid=r2&$version=5");
    assert_int_equal(az_parse_publish_topic(buf, n, &t), IOTDM_OK);
    assert_int_equal(t.version, 5);
    n = az_format_method_response(buf, sizeof buf, 404, STR("9"));
    assert_string_equal(buf, "$iothub/methods/res/404/?$rid=9");
    assert_int_equal(az_parse_publish_topic(buf, n, &t), IOTDM_OK);
    assert_int_equal(t.status, 404);
}

static void test_format_too_small_zero(void **state)
{
    (void)state;
    char buf[64];
    const char *want = "$iothub/twin/res/200/?$rid=id_one";
    size_t len = strlen(want);
    memset(buf, 'x', sizeof buf);
    assert_int_equal(az_format_twin_response(buf, len, 200, STR("id_one"), -1), 0);
    assert_string_equal(buf, "");
    assert_int_equal(az_format_twin_response(buf, len + 1, 200, STR("id_one"), -1), len);
    assert_string_equal(buf, want);
    assert_int_equal(az_format_desired_patch(buf, 0, 1), 0);
    assert_int_equal(az_format_desired_patch(NULL, 10, 1), 0);
    assert_int_equal(az_format_c2d_topic(buf, sizeof buf, "", "a"), 0);
    assert_int_equal(az_format_c2d_topic(buf, sizeof buf, NULL, "a"), 0);
    assert_int_equal(az_format_method_request(buf, 10, STR("TestMethod"), STR("1")), 0);
    assert_int_equal(az_format_dps_response(buf, 20, 202, STR("1"), 3), 0);
}

static void test_hub_topic_invalid_protocol(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "$iothub/twin/res/200/?",
        "$iothub/twin/res/200?$rid=1",
        "$iothub/twin/res/x/?$rid=1",
        "$iothub/twin/PATCH/properties/desired/?",
        "$iothub/twin/PATCH/properties/desired/?$version=x",
        "$iothub/methods/POST//?$rid=1",
        "$iothub/methods/POST/m",
        "$iothub/methods/POST/m/?$rid=",
        "$dps/registrations/res/202/?retry-after=3",
        "$dps/registrations/res/202/?$rid=1&retry-after=-3",
        "devices/dev1/messages/events/",
        "devices//messages/devicebound/",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        az_hub_topic t;
        assert_int_equal(az_parse_hub_topic(STR(bad[i]), &t), IOTDM_E_PROTOCOL);
        assert_int_equal(t.kind, AZ_HUB_INVALID);
    }
}

/* ---- identifiers ------------------------------------------------------------------------- */

static void test_device_id_rules_enforced(void **state)
{
    (void)state;
    char id[AZ_MAX_ID_LEN + 1];
    memset(id, 'a', sizeof id);
    assert_true(az_valid_device_id(id, AZ_MAX_ID_LEN));
    assert_false(az_valid_device_id(id, AZ_MAX_ID_LEN + 1));
    assert_true(az_valid_device_id(STR("My-Device_01.a%b*c?d!e(f)g,h:i=j@k$l'm")));
    assert_false(az_valid_device_id(STR("")));
    assert_false(az_valid_device_id(NULL, 0));
    static const char *const bad[] = {"a+b", "a#b",  "a/b",         "a b",
                                      "a&b", "a\"b", "caf\xC3\xA9", "a\tb"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(az_valid_device_id(STR(bad[i])));
    assert_false(az_valid_device_id("a\0b", 3));
}

static void test_method_name_rules_enforced(void **state)
{
    (void)state;
    assert_true(az_valid_method_name(STR("reboot")));
    assert_true(az_valid_method_name(STR("dm*factoryReset")));
    assert_true(az_valid_method_name(STR("a-b_c.d~e!f'g*h%i&j|k^l`m")));
    assert_false(az_valid_method_name(STR("")));
    static const char *const bad[] = {"a b", "a\tb", "a$",  "a(b",  "a)",   "<a>",         "a@b",
                                      "a,b", "a;b",  "a:b", "a\\b", "a\"b", "a/b",         "[a]",
                                      "a?b", "a=b",  "{a}", "a+b",  "a#b",  "caf\xC3\xA9", "a\x7F"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(az_valid_method_name(STR(bad[i])));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_publish_node_telemetry_bag_parsed),
        cmocka_unit_test(test_publish_docs_raw_dollar_bag_parsed),
        cmocka_unit_test(test_publish_telemetry_slash_variants_parsed),
        cmocka_unit_test(test_publish_module_output_trailing_slash_parsed),
        cmocka_unit_test(test_publish_csdk_telemetry_parsed),
        cmocka_unit_test(test_publish_bad_telemetry_protocol),
        cmocka_unit_test(test_publish_csdk_twin_vectors_parsed),
        cmocka_unit_test(test_publish_node_twin_uuid_rid_parsed),
        cmocka_unit_test(test_publish_twin_patch_version_any_order_parsed),
        cmocka_unit_test(test_publish_encoded_dollar_keys_parsed),
        cmocka_unit_test(test_publish_twin_without_rid_protocol),
        cmocka_unit_test(test_publish_bad_query_values_protocol),
        cmocka_unit_test(test_publish_hub_only_topics_protocol),
        cmocka_unit_test(test_publish_method_response_vector_parsed),
        cmocka_unit_test(test_publish_method_response_bad_status_protocol),
        cmocka_unit_test(test_publish_dps_vectors_parsed),
        cmocka_unit_test(test_publish_dps_status_without_operation_protocol),
        cmocka_unit_test(test_filter_device_filters_classified),
        cmocka_unit_test(test_filter_csdk_plus_c2d_classified),
        cmocka_unit_test(test_filter_module_filters_classified),
        cmocka_unit_test(test_filter_foreign_device_flagged),
        cmocka_unit_test(test_filter_foreign_module_flagged),
        cmocka_unit_test(test_filter_unsupported_refused_not_foreign),
        cmocka_unit_test(test_username_node_device_parsed),
        cmocka_unit_test(test_username_csdk_device_parsed),
        cmocka_unit_test(test_username_csdk_module_parsed),
        cmocka_unit_test(test_username_docs_and_legacy_parsed),
        cmocka_unit_test(test_username_tolerant_query_parsed),
        cmocka_unit_test(test_username_dps_parsed),
        cmocka_unit_test(test_username_malformed_rejected),
        cmocka_unit_test(test_username_format_round_trip_equal),
        cmocka_unit_test(test_propbag_missing_equals_no_value),
        cmocka_unit_test(test_propbag_empty_segments_skipped),
        cmocka_unit_test(test_propbag_name_is_decodes_escapes),
        cmocka_unit_test(test_format_twin_response_vectors_exact),
        cmocka_unit_test(test_format_desired_patch_exact),
        cmocka_unit_test(test_format_method_request_vector_exact),
        cmocka_unit_test(test_format_c2d_vector_exact),
        cmocka_unit_test(test_format_dps_response_vector_exact),
        cmocka_unit_test(test_format_device_topics_parse_back),
        cmocka_unit_test(test_format_too_small_zero),
        cmocka_unit_test(test_hub_topic_invalid_protocol),
        cmocka_unit_test(test_device_id_rules_enforced),
        cmocka_unit_test(test_method_name_rules_enforced),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
