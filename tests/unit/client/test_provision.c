/* The DPS client's own pure parts (SAS, register body, DPS's answers read into the result, checked
 * against the test vectors of docs/protocol.md §11) and iotdm_provision_register's refusals and
 * time limits without a DPS. The wire formats it uses (user name, topics, what an answer means) are
 * tested in tests/unit/proto/test_dps.c. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "client/dps.h"
#include "common/sas.h"
#include "fixture.h"

/* docs/protocol.md §11.3 and §11.4. */
#define GROUP_KEY                                                                                  \
    "8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw=="
#define REG_ID      "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6"
#define DERIVED_KEY "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc="

static void test_password_and_derived_key_match_reference_vectors(void **state)
{
    (void)state;
    char key[64];
    assert_int_equal(iotdm_provision_derive_key(GROUP_KEY, REG_ID, key, sizeof key), IOTDM_OK);
    assert_string_equal(key, DERIVED_KEY);
    assert_int_equal(iotdm_provision_derive_key(GROUP_KEY, REG_ID, key, 20), -EINVAL);

    char token[SAS_TOKEN_MAX];
    assert_int_equal(
        dps_build_password("0ne00000A0A", REG_ID, DERIVED_KEY, 1700000000, token, sizeof token),
        IOTDM_OK);
    /* §11.4, the upper-case encoding; skn must be "registration". */
    assert_string_equal(token, "SharedAccessSignature sr=0ne00000A0A%2Fregistrations%2F" REG_ID
                               "&sig=t6%2F8JHWQuQgM9mXdYf%2FuIqa3dKECOEk9Rr4WrFV19q0%3D"
                               "&se=1700000000&skn=registration");
    /* and the hub's verifier accepts it */
    sas_token t;
    assert_int_equal(sas_parse(token, strlen(token), &t), IOTDM_OK);
    assert_true(sas_signature_valid(&t, DERIVED_KEY));
    assert_true(sas_resource_covers(&t, "0ne00000A0A/registrations/" REG_ID));
}

static void test_register_body_with_and_without_payload(void **state)
{
    (void)state;
    char *b = dps_register_body("my-dev", NULL);
    assert_string_equal(b, "{\"registrationId\":\"my-dev\"}");
    free(b);
    b = dps_register_body("my-dev", "{\"modelId\":\"dtmi:iotdm:DeviceManagement;1\"}");
    assert_string_equal(b, "{\"registrationId\":\"my-dev\",\"payload\":"
                           "{\"modelId\":\"dtmi:iotdm:DeviceManagement;1\"}}");
    free(b);
    assert_null(dps_register_body("my-dev", "{not json"));
}

static void read_reply(int status, int retry, const char *body, dps_reply *r,
                       iotdm_provision_result *out)
{
    memset(out, 0, sizeof *out);
    dps_read_reply(status, retry, body, strlen(body), r, out);
}

static void test_reply_202_polls_honouring_retry_after(void **state)
{
    (void)state;
    dps_reply r;
    iotdm_provision_result out;
    read_reply(202, 3, "{\"operationId\":\"4.abc.def\",\"status\":\"assigning\"}", &r, &out);
    assert_int_equal(r.kind, AZ_DPS_POLL);
    assert_string_equal(r.operation_id, "4.abc.def");
    assert_int_equal(r.retry_after_s, 3);
    /* no retry-after: Node's 2 s; 0 is not a hot loop; a huge one is capped */
    read_reply(202, -1, "{\"operationId\":\"x\"}", &r, &out);
    assert_int_equal(r.kind, AZ_DPS_POLL);
    assert_int_equal(r.retry_after_s, DPS_RETRY_DEFAULT_S);
    read_reply(202, 0, "{\"operationId\":\"x\"}", &r, &out);
    assert_int_equal(r.retry_after_s, 1);
    read_reply(202, 100000, "{\"operationId\":\"x\"}", &r, &out);
    assert_int_equal(r.retry_after_s, DPS_RETRY_MAX_S);
    /* 200 still assigning polls too */
    read_reply(200, -1, "{\"operationId\":\"y\",\"status\":\"assigning\"}", &r, &out);
    assert_int_equal(r.kind, AZ_DPS_POLL);
    /* without an operation id there is nothing to poll */
    read_reply(202, 3, "{\"status\":\"assigning\"}", &r, &out);
    assert_int_equal(r.kind, AZ_DPS_FAILED);
    assert_int_equal(r.error, IOTDM_E_PROTOCOL);
}

static void test_reply_200_assigned_gives_hub_device_and_payload(void **state)
{
    (void)state;
    dps_reply r;
    iotdm_provision_result out;
    read_reply(200, -1,
               "{\"operationId\":\"5.x\",\"status\":\"assigned\",\"registrationState\":{"
               "\"registrationId\":\"my-dev\",\"assignedHub\":\"hub.example.net\","
               "\"deviceId\":\"dev-7\",\"status\":\"assigned\",\"substatus\":"
               "\"initialAssignment\",\"payload\":{\"a\":1}}}",
               &r, &out);
    assert_int_equal(r.kind, AZ_DPS_ASSIGNED);
    assert_string_equal(out.assigned_hub, "hub.example.net");
    assert_string_equal(out.device_id, "dev-7");
    assert_string_equal(out.status, "assigned");
    assert_string_equal(out.substatus, "initialAssignment");
    assert_string_equal(out.payload_json, "{\"a\":1}");
    iotdm_provision_result_deinit(&out);
    assert_null(out.payload_json);
    /* the C SDK's rule: both assignedHub and deviceId, or it is not an assignment */
    read_reply(200, -1, "{\"status\":\"assigned\",\"registrationState\":{\"assignedHub\":\"h\"}}",
               &r, &out);
    assert_int_equal(r.kind, AZ_DPS_FAILED);
    assert_int_equal(r.error, IOTDM_E_PROTOCOL);
}

static void test_reply_disabled_and_failed_quote_dps(void **state)
{
    (void)state;
    dps_reply r;
    iotdm_provision_result out;
    read_reply(200, -1,
               "{\"operationId\":\"o\",\"status\":\"disabled\",\"registrationState\":{"
               "\"status\":\"disabled\",\"errorCode\":401002,\"errorMessage\":"
               "\"the enrollment is disabled\"}}",
               &r, &out);
    assert_int_equal(r.kind, AZ_DPS_FAILED);
    assert_int_equal(r.error, IOTDM_E_DISABLED);
    assert_int_equal(out.error_code, 401002);
    assert_string_equal(out.error, "DPS registration disabled: the enrollment is disabled");
    read_reply(200, -1,
               "{\"status\":\"failed\",\"registrationState\":{\"errorCode\":404201,"
               "\"errorMessage\":\"no hub\"}}",
               &r, &out);
    assert_int_equal(r.error, IOTDM_E_NOT_FOUND);
    assert_string_equal(out.error, "DPS registration failed: no hub");
    read_reply(200, -1, "{\"status\":\"unassigned\"}", &r, &out);
    assert_int_equal(r.kind, AZ_DPS_FAILED);
    assert_int_equal(r.error, IOTDM_E_INTERNAL);
}

static void test_reply_errors_map_to_results_and_429_retries(void **state)
{
    (void)state;
    dps_reply r;
    iotdm_provision_result out;
    read_reply(401, -1,
               "{\"errorCode\":401002,\"trackingId\":\"t\",\"message\":\"the credentials do not "
               "match\",\"timestampUtc\":\"2020-04-10T05:24:22Z\"}",
               &r, &out);
    assert_int_equal(r.kind, AZ_DPS_FAILED);
    assert_int_equal(r.error, IOTDM_E_UNAUTHORIZED);
    assert_int_equal(out.error_code, 401002);
    assert_string_equal(out.error, "DPS refused the registration (401): the credentials do not "
                                   "match");
    read_reply(404, -1, "{\"errorCode\":404001,\"message\":\"unknown ID scope\"}", &r, &out);
    assert_int_equal(r.error, IOTDM_E_NOT_FOUND);
    read_reply(400, -1, "{\"errorCode\":400004}", &r, &out);
    assert_int_equal(r.error, IOTDM_E_PROTOCOL);
    assert_string_equal(out.error, "DPS refused the registration (400): DPS gave no reason");
    read_reply(429, 5, "{\"errorCode\":429001,\"message\":\"throttled\"}", &r, &out);
    assert_int_equal(r.kind, AZ_DPS_RETRY);
    assert_int_equal(r.error, IOTDM_E_THROTTLED);
    assert_int_equal(r.retry_after_s, 5);
    read_reply(503, -1, "", &r, &out);
    assert_int_equal(r.kind, AZ_DPS_RETRY);
    assert_int_equal(r.error, IOTDM_E_INTERNAL);
    read_reply(200, -1, "not json", &r, &out);
    assert_int_equal(r.kind, AZ_DPS_FAILED);
    assert_int_equal(r.error, IOTDM_E_PROTOCOL);
}

static void test_reply_over_the_cap_is_not_read_and_earlier_status_stays(void **state)
{
    (void)state;
    dps_reply r;
    iotdm_provision_result out;
    read_reply(202, 1, "{\"operationId\":\"x\",\"status\":\"assigning\"}", &r, &out);
    assert_string_equal(out.status, "assigning");
    /* A valid JSON object one byte over DPS_BODY_MAX: not parsed at all. */
    size_t len = DPS_BODY_MAX + 1;
    char *big = malloc(len);
    assert_non_null(big);
    memset(big, ' ', len);
    memcpy(big, "{\"status\":\"assigned\"", 20);
    big[len - 1] = '}';
    dps_read_reply(200, -1, big, len, &r, &out);
    assert_int_equal(r.kind, AZ_DPS_FAILED);
    assert_string_equal(out.error, "DPS answered 200 without a JSON body");
    assert_string_equal(out.status, "assigning"); /* an answer that is no status changes none */
    dps_read_reply(200, -1, big, len - 1, &r, &out);
    assert_int_equal(r.kind, AZ_DPS_FAILED); /* parsed now, but the brace is missing */
    big[len - 2] = '}';
    dps_read_reply(200, -1, big, len - 1, &r, &out);
    assert_string_equal(out.status, "assigned"); /* parsed: read as a (bad) assignment */
    assert_string_equal(out.error, "DPS answered \"assigned\" without a usable assignedHub and "
                                   "deviceId");
    free(big);
}

static iotdm_result try_register(const iotdm_provision_config *cfg, iotdm_provision_result *out)
{
    iotdm_result r = iotdm_provision_register(cfg, out);
    assert_string_equal(out->device_key, ""); /* a failure carries no key */
    assert_true(strlen(out->error) > 0);
    return r;
}

static void test_bad_config_is_refused_with_the_reason(void **state)
{
    (void)state;
    iotdm_provision_result out;
    iotdm_provision_config c = {.struct_size = sizeof(iotdm_provision_config),
                                .id_scope = "0ne00000A0A",
                                .registration_id = "dev"};
    assert_int_equal(try_register(&c, &out), IOTDM_E_MALFORMED);
    assert_string_equal(out.error, "provisioning config: exactly one of symmetric_key, group_key, "
                                   "cert_file is needed");
    c.symmetric_key = DERIVED_KEY;
    c.group_key = GROUP_KEY;
    assert_int_equal(try_register(&c, &out), IOTDM_E_MALFORMED);
    c.group_key = NULL;
    c.id_scope = NULL;
    assert_int_equal(try_register(&c, &out), IOTDM_E_MALFORMED);
    assert_string_equal(out.error, "provisioning config: id_scope is required");
    c.id_scope = "0ne00000A0A";
    c.registration_id = "bad id";
    assert_int_equal(try_register(&c, &out), IOTDM_E_MALFORMED);
    assert_non_null(strstr(out.error, "registration id"));
    c.registration_id = NULL;
    assert_int_equal(try_register(&c, &out), IOTDM_E_MALFORMED);
    assert_string_equal(out.error, "provisioning config: registration_id is required with a "
                                   "symmetric key");
    c.registration_id = "dev";
    c.symmetric_key = "***";
    assert_int_equal(try_register(&c, &out), IOTDM_E_MALFORMED);
    assert_null(strstr(out.error, "***")); /* a key is never echoed */
    c.symmetric_key = DERIVED_KEY;
    c.payload_json = "{";
    assert_int_equal(try_register(&c, &out), IOTDM_E_MALFORMED);
    c.payload_json = NULL;
    c.symmetric_key = NULL;
    c.registration_id = NULL;
    c.cert_file = "/nonexistent/cert.pem";
    assert_int_equal(try_register(&c, &out), IOTDM_E_MALFORMED);
    assert_string_equal(out.error, "provisioning config: cert_file and key_file go together");
    c.key_file = "/nonexistent/key.pem";
    assert_int_equal(try_register(&c, &out), IOTDM_E_MALFORMED);
    assert_non_null(strstr(out.error, "subject CN"));
    assert_int_equal(iotdm_provision_register(NULL, &out), -EINVAL);
}

/* A local TCP listener that accepts and never speaks: a DPS that does not answer. */
static int silent_listener(unsigned *out_port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 4), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *out_port = ntohs(a.sin_port);
    return fd;
}

static void test_silent_dps_times_out_and_closed_port_is_not_online(void **state)
{
    (void)state;
    unsigned port;
    int fd = silent_listener(&port);
    iotdm_provision_result out;
    iotdm_provision_config c = {.struct_size = sizeof(iotdm_provision_config),
                                .endpoint = "127.0.0.1",
                                .port = port,
                                .id_scope = "0ne00000A0A",
                                .registration_id = "dev",
                                .symmetric_key = DERIVED_KEY,
                                .timeout_s = 1};
    assert_int_equal(try_register(&c, &out), IOTDM_E_TIMEOUT);
    assert_string_equal(out.error, "DPS did not answer within 1 s");
    close(fd); /* now nothing listens there */
    assert_int_equal(try_register(&c, &out), IOTDM_E_NOT_ONLINE);
    assert_non_null(strstr(out.error, "127.0.0.1"));
}

static bool cancel_now(void *ctx)
{
    int *calls = ctx;
    return ++*calls >= 3;
}

static void test_cancel_abandons_the_registration(void **state)
{
    (void)state;
    unsigned port;
    int fd = silent_listener(&port);
    int calls = 0;
    iotdm_provision_result out;
    iotdm_provision_config c = {.struct_size = sizeof(iotdm_provision_config),
                                .endpoint = "127.0.0.1",
                                .port = port,
                                .id_scope = "0ne00000A0A",
                                .registration_id = "dev",
                                .group_key = GROUP_KEY,
                                .timeout_s = 30,
                                .cancel = cancel_now,
                                .cancel_ctx = &calls};
    assert_int_equal(try_register(&c, &out), -ECANCELED);
    assert_int_equal(calls, 3);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_password_and_derived_key_match_reference_vectors),
        cmocka_unit_test(test_register_body_with_and_without_payload),
        cmocka_unit_test(test_reply_202_polls_honouring_retry_after),
        cmocka_unit_test(test_reply_200_assigned_gives_hub_device_and_payload),
        cmocka_unit_test(test_reply_disabled_and_failed_quote_dps),
        cmocka_unit_test(test_reply_errors_map_to_results_and_429_retries),
        cmocka_unit_test(test_reply_over_the_cap_is_not_read_and_earlier_status_stays),
        cmocka_unit_test(test_bad_config_is_refused_with_the_reason),
        cmocka_unit_test(test_silent_dps_times_out_and_closed_port_is_not_online),
        cmocka_unit_test(test_cancel_abandons_the_registration),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
