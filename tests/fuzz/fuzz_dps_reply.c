/* libFuzzer target: what a device reads from DPS (or from anything posing as DPS), i.e. the
 * response topic and the answer's body, through the parsers libiotdm runs on them:
 * az_parse_hub_topic, then dps_read_reply (the JSON parse with its cap, az_dps_read_reply, the
 * copies into the result). Input: the topic, '\n', the body. With round trips: an operationId DPS
 * gives comes back out of the hub's parser of the status query unchanged, and a response topic the
 * hub formats parses back. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client/dps.h"
#include "common/urlenc.h"
#include "proto/azure_topics.h"
#include "proto/dps.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

static bool inside(az_span s, const char *start, size_t len)
{
    return s.len == 0 || (s.ptr >= start && s.len <= len && s.ptr + s.len <= start + len);
}

static bool same(az_span a, const char *s, size_t len)
{
    return a.len == len && (len == 0 || memcmp(a.ptr, s, len) == 0);
}

/* A C string that ends inside its array. */
#define TERMINATED(arr) (memchr((arr), '\0', sizeof(arr)) != NULL)

/* The status query for an operation id DPS gave must carry exactly that id to the hub. */
static void check_status_query(const char *op)
{
    static char topic[3 * DPS_OPERATION_MAX + 128], back[DPS_OPERATION_MAX];
    size_t len = strlen(op);
    size_t n = az_format_dps_status(topic, sizeof topic, "42", 2, op, len);
    CHECK(n > 0); /* every id az_dps_read_reply lets through fits the client's topic buffer */
    az_publish_topic t;
    CHECK(az_parse_publish_topic(topic, n, &t) == IOTDM_OK);
    CHECK(t.kind == AZ_PUB_DPS_STATUS && same(t.rid, "42", 2));
    long d = urlenc_decode(t.operation_id.ptr, t.operation_id.len, back, sizeof back, false);
    CHECK(d >= 0 && (size_t)d == len && memcmp(back, op, len) == 0);
}

/* The proto reader on its own: what it lends out is bounded and consistent with its kind. */
static void check_proto_reader(int status, const char *body, size_t len)
{
    json_error_t err;
    json_t *j = len <= DPS_BODY_MAX ? json_loadb(body, len, 0, &err) : NULL;
    char why[64] = "";
    az_dps_reply r;
    az_dps_read_reply(status, j, &r, why, sizeof why);
    CHECK(r.operation_id && r.assigned_hub && r.device_id && r.substatus);
    CHECK(TERMINATED(why));
    switch (r.kind) {
    case AZ_DPS_POLL:
        CHECK(*r.operation_id && strlen(r.operation_id) <= AZ_DPS_OPERATION_ID_MAX);
        CHECK(r.status && why[0] == '\0');
        check_status_query(r.operation_id);
        break;
    case AZ_DPS_ASSIGNED:
        CHECK(*r.assigned_hub && strlen(r.assigned_hub) <= AZ_DPS_HOST_MAX);
        CHECK(*r.device_id && strlen(r.device_id) <= AZ_DPS_DEVICE_ID_MAX);
        CHECK(r.status && !strcmp(r.status, "assigned") && why[0] == '\0');
        break;
    case AZ_DPS_RETRY:
        CHECK(status >= 429 && r.error < 0 && why[0] != '\0');
        break;
    case AZ_DPS_FAILED:
        CHECK(r.error < 0 && why[0] != '\0');
        break;
    default:
        CHECK(false);
    }
    json_decref(j);
}

/* libiotdm's whole reading of one answer, as provision.c's on_message runs it. */
static void check_client_reader(int status, int retry_after, const char *body, size_t len)
{
    dps_reply reply;
    iotdm_provision_result out;
    memset(&out, 0, sizeof out);
    dps_read_reply(status, retry_after, body, len, &reply, &out);
    CHECK(reply.retry_after_s >= 1 && reply.retry_after_s <= DPS_RETRY_MAX_S);
    CHECK(TERMINATED(out.status) && TERMINATED(out.assigned_hub) && TERMINATED(out.device_id) &&
          TERMINATED(out.substatus) && TERMINATED(out.error) && TERMINATED(reply.operation_id));
    switch (reply.kind) {
    case AZ_DPS_POLL:
        CHECK(reply.operation_id[0] != '\0');
        break;
    case AZ_DPS_ASSIGNED:
        CHECK(out.assigned_hub[0] && out.device_id[0]);
        break;
    case AZ_DPS_RETRY:
    case AZ_DPS_FAILED:
        CHECK(reply.error < 0 && out.error[0]);
        break;
    default:
        CHECK(false);
    }
    iotdm_provision_result_deinit(&out);
}

/* The hub's formatter and the device's parser of the response topic agree. */
static void check_response_round_trip(const az_hub_topic *h)
{
    char buf[8192];
    az_hub_topic back;
    size_t n =
        az_format_dps_response(buf, sizeof buf, h->status, h->rid.ptr, h->rid.len, h->retry_after);
    if (n == 0)
        return;
    CHECK(az_parse_hub_topic(buf, n, &back) == IOTDM_OK);
    CHECK(back.kind == AZ_HUB_DPS_RESPONSE && back.status == h->status &&
          back.retry_after == h->retry_after && same(back.rid, h->rid.ptr, h->rid.len));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    const char *nl = memchr(in, '\n', size);
    size_t tlen = nl ? (size_t)(nl - in) : size;
    const char *body = nl ? nl + 1 : in + size;
    size_t blen = size - tlen - (nl ? 1 : 0);

    az_hub_topic h;
    int status = 0, retry_after = -1;
    bool dps = false;
    if (az_parse_hub_topic(in, tlen, &h) == IOTDM_OK) {
        CHECK(inside(h.rid, in, tlen) && inside(h.device_id, in, tlen) &&
              inside(h.property_bag, in, tlen) && inside(h.method_name, in, tlen));
        if (h.kind == AZ_HUB_DPS_RESPONSE) {
            CHECK(h.status >= 0 && h.status <= 65535 && h.retry_after >= -1 && h.rid.len > 0);
            dps = true;
            status = h.status;
            retry_after = h.retry_after;
            check_response_round_trip(&h);
        }
    } else {
        CHECK(h.kind == AZ_HUB_INVALID && h.retry_after == -1);
    }
    if (dps) {
        check_client_reader(status, retry_after, body, blen);
        check_proto_reader(status, body, blen);
        return 0;
    }
    /* No DPS response topic: the body still gets read under the statuses that matter. */
    static const int statuses[] = {200, 202, 401, 429};
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
        check_client_reader(statuses[i], retry_after, body, blen);
        check_proto_reader(statuses[i], body, blen);
    }
    return 0;
}
