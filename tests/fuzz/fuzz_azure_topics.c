/* libFuzzer target: Azure topic, filter, user name and property-bag parsers, with round trips. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/azure_topics.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

static const char *in_start;
static size_t in_len;

/* Every span a parser returns lies inside its input. */
static void check_span(az_span s)
{
    if (s.len == 0)
        return;
    CHECK(s.ptr >= in_start && s.len <= in_len && s.ptr + s.len <= in_start + in_len);
}

static bool same(az_span a, az_span b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static void walk_bag(az_span bag)
{
    az_propbag_iter it;
    az_span n, v;
    bool hv;
    size_t used = 0;
    az_propbag_iter_init(&it, bag.ptr, bag.len);
    while (az_propbag_next(&it, &n, &v, &hv)) {
        check_span(n);
        check_span(v);
        CHECK(n.len > 0 || hv);
        CHECK(!memchr(n.ptr, '&', n.len) && !memchr(v.ptr, '&', v.len));
        used += n.len + v.len + (hv ? 1 : 0);
        az_propbag_name_is(n, "$.ct");
    }
    CHECK(used <= bag.len);
}

/* The hub's answer to a request must carry the request's $rid back unchanged. */
static void check_echo(const az_publish_topic *t)
{
    char buf[8192];
    az_hub_topic h;
    size_t n;
    if (t->kind == AZ_PUB_DPS_REGISTER || t->kind == AZ_PUB_DPS_STATUS)
        n = az_format_dps_response(buf, sizeof buf, 202, t->rid.ptr, t->rid.len, 3);
    else if (t->kind == AZ_PUB_METHOD_RESPONSE)
        return;
    else
        n = az_format_twin_response(buf, sizeof buf, 204, t->rid.ptr, t->rid.len, 7);
    if (n == 0)
        return;
    if (t->rid.len == 0) {
        CHECK(az_parse_hub_topic(buf, n, &h) == IOTDM_E_PROTOCOL);
        return;
    }
    CHECK(az_parse_hub_topic(buf, n, &h) == IOTDM_OK);
    CHECK(same(h.rid, t->rid));
    CHECK(h.status == 202 || h.status == 204);
}

/* Copies a span into a C string; false when it holds a NUL or does not fit. */
static bool to_cstr(az_span s, char *buf, size_t cap)
{
    if (s.len >= cap || memchr(s.ptr, 0, s.len))
        return false;
    if (s.len)
        memcpy(buf, s.ptr, s.len);
    buf[s.len] = '\0';
    return true;
}

/* What the device side formats, the hub side parses back to the same parts. */
static void check_telemetry_round_trip(const az_publish_topic *t)
{
    static char dev[4096], mod[4096], bag[4096], topic[16384];
    az_publish_topic back;
    if (!to_cstr(t->device_id, dev, sizeof dev) || !to_cstr(t->module_id, mod, sizeof mod) ||
        !to_cstr(t->property_bag, bag, sizeof bag))
        return;
    /* A bag that still ends in '/' lost one already; it cannot survive a second trip. */
    if (t->property_bag.len && bag[t->property_bag.len - 1] == '/')
        return;
    size_t n = az_format_telemetry_topic(topic, sizeof topic, dev, mod, bag);
    CHECK(n > 0);
    CHECK(az_parse_publish_topic(topic, n, &back) == IOTDM_OK);
    CHECK(back.kind == AZ_PUB_TELEMETRY && same(back.device_id, t->device_id) &&
          same(back.module_id, t->module_id) && same(back.property_bag, t->property_bag));
}

static void fuzz_publish_topic(const char *s, size_t len)
{
    az_publish_topic t;
    if (az_parse_publish_topic(s, len, &t) != IOTDM_OK) {
        CHECK(t.kind == AZ_PUB_INVALID);
        return;
    }
    check_span(t.device_id);
    check_span(t.module_id);
    check_span(t.property_bag);
    check_span(t.rid);
    check_span(t.operation_id);
    if (t.kind == AZ_PUB_TELEMETRY) {
        CHECK(t.device_id.len > 0);
        walk_bag(t.property_bag);
        check_telemetry_round_trip(&t);
        return;
    }
    CHECK(t.status >= 0 && t.status <= 65535 && t.version >= 0);
    if (t.kind != AZ_PUB_DPS_REGISTER && t.kind != AZ_PUB_DPS_STATUS)
        CHECK(t.rid.len > 0);
    check_echo(&t);
}

static void fuzz_filter(const char *s, size_t len)
{
    bool foreign;
    az_sub_kind k = az_classify_filter(s, len, "dev1", NULL, &foreign);
    CHECK(!foreign || k == AZ_SUB_INVALID);
    CHECK(k != AZ_SUB_MODULE_INPUTS);
    k = az_classify_filter(s, len, "dev1", "mod1", &foreign);
    CHECK(!foreign || k == AZ_SUB_INVALID);
    CHECK(k != AZ_SUB_C2D);
    /* A foreign filter must name some other device or module. */
    if (foreign)
        CHECK(len >= 8 && memcmp(s, "devices/", 8) == 0);
}

static void fuzz_username(const char *s, size_t len)
{
    az_username u;
    if (az_parse_username(s, len, &u) != IOTDM_OK) {
        CHECK(u.kind == AZ_USER_INVALID);
        return;
    }
    check_span(u.host);
    check_span(u.device_id);
    check_span(u.module_id);
    check_span(u.id_scope);
    check_span(u.registration_id);
    check_span(u.api_version);
    check_span(u.model_id);
    check_span(u.client_type);
    if (u.kind == AZ_USER_HUB)
        CHECK(u.host.len > 0 && u.device_id.len > 0);
    else
        CHECK(u.kind == AZ_USER_DPS && u.id_scope.len > 0 && u.registration_id.len > 0);
}

static void fuzz_hub_topic(const char *s, size_t len)
{
    az_hub_topic h;
    if (az_parse_hub_topic(s, len, &h) != IOTDM_OK) {
        CHECK(h.kind == AZ_HUB_INVALID);
        return;
    }
    check_span(h.device_id);
    check_span(h.property_bag);
    check_span(h.rid);
    check_span(h.method_name);
}

/* A valid method name formatted into a request comes back out of the device-side parser. */
static void fuzz_names(const char *s, size_t len)
{
    char buf[8192];
    az_hub_topic h;
    if (az_valid_device_id(s, len))
        CHECK(len <= AZ_MAX_ID_LEN && !memchr(s, '/', len) && !memchr(s, '+', len));
    if (!az_valid_method_name(s, len))
        return;
    size_t n = az_format_method_request(buf, sizeof buf, s, len, "17", 2);
    if (n == 0)
        return;
    CHECK(az_parse_hub_topic(buf, n, &h) == IOTDM_OK);
    CHECK(h.kind == AZ_HUB_METHOD_REQUEST && h.method_name.len == len &&
          memcmp(h.method_name.ptr, s, len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    in_start = s;
    in_len = size;
    fuzz_publish_topic(s, size);
    fuzz_filter(s, size);
    fuzz_username(s, size);
    fuzz_hub_topic(s, size);
    fuzz_names(s, size);
    walk_bag((az_span){s, size});
    return 0;
}
