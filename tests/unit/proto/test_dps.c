/* DPS device-side wire formats: what the device formats, the hub's parsers read back to the same
 * parts; what DPS answers (the bodies of docs/protocol.md §7.4-7.5) means to a device. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "common/urlenc.h"
#include "proto/azure_topics.h"
#include "proto/dps.h"

#define STR(s) (s), strlen(s)

static bool span_eq(az_span s, const char *lit)
{
    return s.len == strlen(lit) && (s.len == 0 || memcmp(s.ptr, lit, s.len) == 0);
}

#define assert_span(s, lit) assert_true(span_eq((s), (lit)))

static void test_dps_username_is_scope_registrations_id_api_version_and_parses_back(void **state)
{
    (void)state;
    char buf[256];
    assert_int_equal(
        az_format_dps_username(buf, sizeof buf, "0ne00111111", "my-dev", "iotdm%2F0.1"),
        strlen("0ne00111111/registrations/my-dev/api-version=2019-03-31"
               "&ClientVersion=iotdm%2F0.1"));
    assert_string_equal(buf, "0ne00111111/registrations/my-dev/api-version=2019-03-31"
                             "&ClientVersion=iotdm%2F0.1");
    az_username u;
    assert_int_equal(az_parse_username(STR(buf), &u), IOTDM_OK);
    assert_int_equal(u.kind, AZ_USER_DPS);
    assert_span(u.id_scope, "0ne00111111");
    assert_span(u.registration_id, "my-dev");
    assert_span(u.api_version, "2019-03-31");
    assert_span(u.client_type, "iotdm%2F0.1");
    /* Without a client version: the C SDK's form of §7.2. */
    az_format_dps_username(buf, sizeof buf, "0ne00111111", "my-dev", NULL);
    assert_string_equal(buf, "0ne00111111/registrations/my-dev/api-version=2019-03-31");
    assert_int_equal(az_parse_username(STR(buf), &u), IOTDM_OK);
    assert_int_equal(u.kind, AZ_USER_DPS);
    assert_int_equal(u.client_type.len, 0);
    /* Too small, or an id missing: 0 and "". */
    assert_int_equal(az_format_dps_username(buf, 20, "0ne00111111", "my-dev", NULL), 0);
    assert_string_equal(buf, "");
    assert_int_equal(az_format_dps_username(buf, sizeof buf, "", "my-dev", NULL), 0);
    assert_int_equal(az_format_dps_username(buf, sizeof buf, "0ne00111111", NULL, NULL), 0);
    assert_string_equal(buf, "");
}

static void test_dps_request_topics_are_what_the_hub_parses(void **state)
{
    (void)state;
    char buf[512];
    assert_int_equal(az_format_dps_register(buf, sizeof buf, STR("1")),
                     strlen("$dps/registrations/PUT/iotdps-register/?$rid=1"));
    assert_string_equal(buf, "$dps/registrations/PUT/iotdps-register/?$rid=1");
    az_publish_topic t;
    assert_int_equal(az_parse_publish_topic(STR(buf), &t), IOTDM_OK);
    assert_int_equal(t.kind, AZ_PUB_DPS_REGISTER);
    assert_span(t.rid, "1");

    const char *op = "4.d0a671905ea5b2c8.e7173b7b-0e54-4aa0-9d20-aeb1b89e6c7d";
    assert_true(az_format_dps_status(buf, sizeof buf, STR("7"), STR(op)) > 0);
    assert_string_equal(buf,
                        "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=7"
                        "&operationId=4.d0a671905ea5b2c8.e7173b7b-0e54-4aa0-9d20-aeb1b89e6c7d");
    assert_int_equal(az_parse_publish_topic(STR(buf), &t), IOTDM_OK);
    assert_int_equal(t.kind, AZ_PUB_DPS_STATUS);
    assert_span(t.rid, "7");
    assert_span(t.operation_id, op);
}

static void test_dps_operation_id_cannot_add_query_keys(void **state)
{
    (void)state;
    char buf[512], op[64];
    size_t n = az_format_dps_status(buf, sizeof buf, STR("2"), STR("x&$rid=9"));
    assert_string_equal(buf, "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=2"
                             "&operationId=x%26%24rid%3D9");
    assert_int_equal(n, strlen(buf));
    az_publish_topic t;
    assert_int_equal(az_parse_publish_topic(buf, n, &t), IOTDM_OK);
    assert_span(t.rid, "2");
    /* The hub decodes it back to what DPS gave. */
    long d = urlenc_decode(t.operation_id.ptr, t.operation_id.len, op, sizeof op, false);
    assert_int_equal(d, 8);
    assert_string_equal(op, "x&$rid=9");
}

static void test_dps_topics_that_do_not_fit_are_empty(void **state)
{
    (void)state;
    char buf[512];
    assert_int_equal(az_format_dps_status(buf, sizeof buf, STR("2"), STR("")), 0);
    assert_int_equal(az_format_dps_status(buf, sizeof buf, STR("2"), NULL, 0), 0);
    assert_int_equal(az_format_dps_register(buf, 10, STR("1")), 0);
    assert_string_equal(buf, "");
    /* The prefix fits, the encoded id does not: nothing half-written. */
    size_t prefix = strlen("$dps/registrations/GET/iotdps-get-operationstatus/?$rid=2"
                           "&operationId=");
    assert_int_equal(az_format_dps_status(buf, prefix + 3, STR("2"), STR("abc")), 0);
    assert_string_equal(buf, "");
    assert_int_equal(az_format_dps_status(buf, prefix + 4, STR("2"), STR("abc")), prefix + 3);
    assert_int_equal(az_format_dps_status(buf, prefix + 4, STR("2"), STR("a&")), 0);
    assert_string_equal(buf, "");
}

static void test_dps_registration_id_rules(void **state)
{
    (void)state;
    assert_true(az_dps_valid_registration_id(STR("Dev-1.a_b:c")));
    assert_false(az_dps_valid_registration_id(STR("")));
    assert_false(az_dps_valid_registration_id(NULL, 0));
    assert_false(az_dps_valid_registration_id(STR("a/b")));
    assert_false(az_dps_valid_registration_id(STR("a b")));
    assert_false(az_dps_valid_registration_id(STR("a#")));
    assert_false(az_dps_valid_registration_id("a\0b", 3));
    /* The last character: a letter, a digit or '-' (the hub refuses the others at enrollment and
     * registration, so a device should not even try). */
    assert_true(az_dps_valid_registration_id(STR("dev-")));
    assert_false(az_dps_valid_registration_id(STR("dev.")));
    assert_false(az_dps_valid_registration_id(STR("dev_")));
    assert_false(az_dps_valid_registration_id(STR("dev:")));
    char long_id[130];
    memset(long_id, 'a', sizeof long_id);
    assert_false(az_dps_valid_registration_id(long_id, 129));
    assert_true(az_dps_valid_registration_id(long_id, 128));
}

/* ---- answers ------------------------------------------------------------------------------ */

static json_t *loaded;

static az_dps_reply read_reply(int status, const char *body, char *why, size_t cap)
{
    json_decref(loaded);
    loaded = json_loads(body, 0, NULL);
    az_dps_reply r;
    az_dps_read_reply(status, loaded, &r, why, cap);
    return r;
}

static int teardown(void **state)
{
    (void)state;
    json_decref(loaded);
    loaded = NULL;
    return 0;
}

static void test_dps_reply_202_polls_and_leaves_why_alone(void **state)
{
    (void)state;
    char why[128] = "earlier";
    /* §7.4's 202 body */
    az_dps_reply r = read_reply(202,
                                "{\"operationId\":\"4.d0a671905ea5b2c8.e7173b7b-0e54-4aa0-9d20-"
                                "aeb1b89e6c7d\",\"status\":\"assigning\"}",
                                why, sizeof why);
    assert_int_equal(r.kind, AZ_DPS_POLL);
    assert_string_equal(r.operation_id, "4.d0a671905ea5b2c8.e7173b7b-0e54-4aa0-9d20-aeb1b89e6c7d");
    assert_string_equal(r.status, "assigning");
    assert_string_equal(why, "earlier");
    /* Borrowed from the body, not copied. */
    assert_ptr_equal(r.operation_id, json_string_value(json_object_get(loaded, "operationId")));
    /* A 202 without a status is assigning; "registering" polls too. */
    r = read_reply(202, "{\"operationId\":\"x\"}", why, sizeof why);
    assert_int_equal(r.kind, AZ_DPS_POLL);
    assert_string_equal(r.status, "assigning");
    r = read_reply(200, "{\"operationId\":\"y\",\"status\":\"registering\"}", why, sizeof why);
    assert_int_equal(r.kind, AZ_DPS_POLL);
    /* Nothing to poll without an operation id, or with one longer than DPS's. */
    r = read_reply(202, "{\"status\":\"assigning\"}", why, sizeof why);
    assert_int_equal(r.kind, AZ_DPS_FAILED);
    assert_int_equal(r.error, IOTDM_E_PROTOCOL);
    assert_string_equal(why, "DPS answered \"assigning\" without a usable operationId");
    char body[AZ_DPS_OPERATION_ID_MAX + 64];
    int n = snprintf(body, sizeof body, "{\"operationId\":\"%0*d\"}", AZ_DPS_OPERATION_ID_MAX, 0);
    assert_true(n > 0 && (size_t)n < sizeof body);
    assert_int_equal(read_reply(202, body, why, sizeof why).kind, AZ_DPS_POLL);
    snprintf(body, sizeof body, "{\"operationId\":\"%0*d\"}", AZ_DPS_OPERATION_ID_MAX + 1, 0);
    assert_int_equal(read_reply(202, body, why, sizeof why).kind, AZ_DPS_FAILED);
}

static void test_dps_reply_200_assigned_gives_hub_device_substatus_payload(void **state)
{
    (void)state;
    char why[128] = "";
    /* §7.5's final body */
    az_dps_reply r = read_reply(
        200,
        "{\"operationId\":\"5.316aac5bdc130deb.b1e02da8-c3a0-4ff2-a121-7ea7a6b7f550\",\"status\":"
        "\"assigned\",\"registrationState\":{\"registrationId\":\"my-symkey-device\","
        "\"createdDateTimeUtc\":\"2022-08-31T22:02:50.5163352Z\",\"assignedHub\":"
        "\"MyExampleHub.azure-devices.net\",\"deviceId\":\"my-symkey-device\",\"status\":"
        "\"assigned\",\"substatus\":\"initialAssignment\",\"lastUpdatedDateTimeUtc\":"
        "\"2022-08-31T22:02:50.7370676Z\",\"etag\":\"IjY5MDAz\",\"payload\":{\"a\":true}}}",
        why, sizeof why);
    assert_int_equal(r.kind, AZ_DPS_ASSIGNED);
    assert_string_equal(r.status, "assigned");
    assert_string_equal(r.assigned_hub, "MyExampleHub.azure-devices.net");
    assert_string_equal(r.device_id, "my-symkey-device");
    assert_string_equal(r.substatus, "initialAssignment");
    assert_true(json_is_true(json_object_get(r.payload, "a")));
    assert_string_equal(why, "");
    /* No payload, no substatus: NULL and "". */
    r = read_reply(200,
                   "{\"status\":\"assigned\",\"registrationState\":{\"assignedHub\":\"h\","
                   "\"deviceId\":\"d\"}}",
                   why, sizeof why);
    assert_int_equal(r.kind, AZ_DPS_ASSIGNED);
    assert_null(r.payload);
    assert_string_equal(r.substatus, "");
    /* The C SDK's rule: both assignedHub and deviceId, or it is no assignment. */
    r = read_reply(200, "{\"status\":\"assigned\",\"registrationState\":{\"assignedHub\":\"h\"}}",
                   why, sizeof why);
    assert_int_equal(r.kind, AZ_DPS_FAILED);
    assert_int_equal(r.error, IOTDM_E_PROTOCOL);
    assert_string_equal(why, "DPS answered \"assigned\" without a usable assignedHub and deviceId");
    /* A device id longer than IoT Hub's is no assignment either. */
    char body[512];
    snprintf(body, sizeof body,
             "{\"status\":\"assigned\",\"registrationState\":{\"assignedHub\":\"h\","
             "\"deviceId\":\"%0*d\"}}",
             AZ_DPS_DEVICE_ID_MAX + 1, 0);
    assert_int_equal(read_reply(200, body, why, sizeof why).kind, AZ_DPS_FAILED);
}

static void test_dps_reply_final_failures_quote_dps(void **state)
{
    (void)state;
    char why[128];
    az_dps_reply r = read_reply(200,
                                "{\"operationId\":\"o\",\"status\":\"disabled\","
                                "\"registrationState\":{\"status\":\"disabled\",\"errorCode\":"
                                "401002,\"errorMessage\":\"the enrollment is disabled\"}}",
                                why, sizeof why);
    assert_int_equal(r.kind, AZ_DPS_FAILED);
    assert_int_equal(r.error, IOTDM_E_DISABLED);
    assert_int_equal(r.error_code, 401002);
    assert_string_equal(r.status, "disabled");
    assert_string_equal(why, "DPS registration disabled: the enrollment is disabled");
    r = read_reply(200,
                   "{\"status\":\"failed\",\"registrationState\":{\"errorCode\":404201,"
                   "\"errorMessage\":\"no hub\"}}",
                   why, sizeof why);
    assert_int_equal(r.error, IOTDM_E_NOT_FOUND);
    assert_string_equal(why, "DPS registration failed: no hub");
    r = read_reply(200, "{\"status\":\"unassigned\"}", why, sizeof why);
    assert_int_equal(r.error, IOTDM_E_INTERNAL);
    assert_string_equal(why, "DPS registration unassigned: DPS gave no reason");
    r = read_reply(200, "{}", why, sizeof why);
    assert_int_equal(r.kind, AZ_DPS_FAILED);
    assert_string_equal(why, "DPS registration (no status): DPS gave no reason");
    /* An errorCode that is no int is no code. */
    r = read_reply(200, "{\"status\":\"failed\",\"registrationState\":{\"errorCode\":1e99}}", why,
                   sizeof why);
    assert_int_equal(r.error_code, 0);
    r = read_reply(200,
                   "{\"status\":\"failed\",\"registrationState\":{\"errorCode\":"
                   "99999999999999}}",
                   why, sizeof why);
    assert_int_equal(r.error_code, 0);
    assert_int_equal(r.error, IOTDM_E_INTERNAL);
}

static void test_dps_reply_errors_map_to_results_and_429_retries(void **state)
{
    (void)state;
    char why[128];
    /* §7.5's error body */
    az_dps_reply r = read_reply(401,
                                "{\"errorCode\":401002,\"trackingId\":\"8ad0463c\",\"message\":"
                                "\"Invalid certificate.\",\"timestampUtc\":"
                                "\"2020-04-10T05:24:22.4718526Z\"}",
                                why, sizeof why);
    assert_int_equal(r.kind, AZ_DPS_FAILED);
    assert_int_equal(r.error, IOTDM_E_UNAUTHORIZED);
    assert_int_equal(r.error_code, 401002);
    assert_null(r.status);
    assert_string_equal(why, "DPS refused the registration (401): Invalid certificate.");
    assert_int_equal(read_reply(404, "{\"errorCode\":404001}", why, sizeof why).error,
                     IOTDM_E_NOT_FOUND);
    assert_int_equal(read_reply(412, "{}", why, sizeof why).error, IOTDM_E_PRECONDITION);
    r = read_reply(400, "{\"errorCode\":400004}", why, sizeof why);
    assert_int_equal(r.error, IOTDM_E_PROTOCOL);
    assert_string_equal(why, "DPS refused the registration (400): DPS gave no reason");
    r = read_reply(429, "{\"errorCode\":429001,\"message\":\"throttled\"}", why, sizeof why);
    assert_int_equal(r.kind, AZ_DPS_RETRY);
    assert_int_equal(r.error, IOTDM_E_THROTTLED);
    assert_int_equal(r.error_code, 429001);
    assert_string_equal(why, "DPS answered 429: throttled");
    r = read_reply(500, "{}", why, sizeof why);
    assert_int_equal(r.kind, AZ_DPS_RETRY);
    assert_string_equal(why, "DPS answered 500: busy");
}

static void test_dps_reply_without_json_body(void **state)
{
    (void)state;
    char why[128];
    az_dps_reply r;
    az_dps_read_reply(503, NULL, &r, why, sizeof why);
    assert_int_equal(r.kind, AZ_DPS_RETRY);
    assert_int_equal(r.error, IOTDM_E_INTERNAL);
    assert_string_equal(why, "DPS answered 503");
    az_dps_read_reply(200, NULL, &r, why, sizeof why);
    assert_int_equal(r.kind, AZ_DPS_FAILED);
    assert_int_equal(r.error, IOTDM_E_PROTOCOL);
    assert_string_equal(why, "DPS answered 200 without a JSON body");
    /* JSON that is no object is no answer either. */
    r = read_reply(202, "[\"operationId\"]", why, sizeof why);
    assert_int_equal(r.kind, AZ_DPS_FAILED);
    assert_string_equal(r.operation_id, "");
    /* A long reason is cut to the caller's buffer. */
    char small[8];
    r = read_reply(401, "{\"message\":\"a long reason\"}", small, sizeof small);
    assert_string_equal(small, "DPS ref");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dps_username_is_scope_registrations_id_api_version_and_parses_back),
        cmocka_unit_test(test_dps_request_topics_are_what_the_hub_parses),
        cmocka_unit_test(test_dps_operation_id_cannot_add_query_keys),
        cmocka_unit_test(test_dps_topics_that_do_not_fit_are_empty),
        cmocka_unit_test(test_dps_registration_id_rules),
        cmocka_unit_test_teardown(test_dps_reply_202_polls_and_leaves_why_alone, teardown),
        cmocka_unit_test_teardown(test_dps_reply_200_assigned_gives_hub_device_substatus_payload,
                                  teardown),
        cmocka_unit_test_teardown(test_dps_reply_final_failures_quote_dps, teardown),
        cmocka_unit_test_teardown(test_dps_reply_errors_map_to_results_and_429_retries, teardown),
        cmocka_unit_test_teardown(test_dps_reply_without_json_body, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
