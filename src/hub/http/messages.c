/* POST /iotdm/devices/{id}/messages: send a cloud-to-device message. Azure offers this only over
 * AMQP; this REST form is our documented extension (docs/service-api.md). */
#include <openssl/rand.h>
#include <string.h>

#include "common/alloc.h"
#include "common/base64.h"
#include "common/timeutil.h"
#include "hub/http/internal.h"

#define C2D_MAX_BYTES (64 * 1024)

static void make_message_id(char *out, size_t cap)
{
    unsigned char r[16];
    RAND_bytes(r, sizeof r);
    r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
    r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
    snprintf(out, cap, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0],
             r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13],
             r[14], r[15]);
}

static bool set_optional(json_t *props, const char *wire, const json_t *v)
{
    if (!v || json_is_null(v))
        return true;
    if (!json_is_string(v) || json_string_length(v) > 128)
        return false;
    json_object_set(props, wire, (json_t *)v);
    return true;
}

const char *http_c2d_from_json(const json_t *body, const char *device_id, int64_t default_ttl,
                               hub_c2d *m)
{
    const json_t *text = json_object_get(body, "body");
    const char *enc = json_string_value(json_object_get(body, "bodyEncoding"));
    if (!json_is_string(text))
        return "body must be a string";
    if (enc && strcmp(enc, "base64") == 0) {
        m->body = xmalloc(json_string_length(text) + 1);
        long n = m->body ? base64_decode(json_string_value(text), json_string_length(text), m->body,
                                         json_string_length(text) + 1)
                         : IOTDM_E_MALFORMED;
        if (n < 0)
            return "body is not valid base64";
        m->body_len = (size_t)n;
    } else if (!enc || strcmp(enc, "utf-8") == 0) {
        m->body_len = json_string_length(text);
        m->body = xmalloc(m->body_len + 1);
        if (m->body)
            memcpy(m->body, json_string_value(text), m->body_len);
    } else {
        return "bodyEncoding must be utf-8 or base64";
    }
    if (!m->body || m->body_len > C2D_MAX_BYTES)
        return "the message is larger than 64 KB";
    m->properties = json_object();
    const char *id = json_string_value(json_object_get(body, "messageId"));
    if (id && (strlen(id) == 0 || strlen(id) >= sizeof m->message_id))
        return "messageId must have 1 to 128 characters";
    if (id)
        snprintf(m->message_id, sizeof m->message_id, "%s", id);
    else
        make_message_id(m->message_id, sizeof m->message_id);
    json_object_set_new(m->properties, "$.mid", json_string(m->message_id));
    char to[HUB_ID_MAX + 40];
    snprintf(to, sizeof to, "/devices/%s/messages/deviceBound", device_id);
    json_object_set_new(m->properties, "$.to", json_string(to));
    if (!set_optional(m->properties, "$.cid", json_object_get(body, "correlationId")) ||
        !set_optional(m->properties, "$.ct", json_object_get(body, "contentType")) ||
        !set_optional(m->properties, "$.ce", json_object_get(body, "contentEncoding")))
        return "correlationId, contentType and contentEncoding must be short strings";
    const char *ack = json_string_value(json_object_get(body, "ack"));
    if (ack && strcmp(ack, "none") && strcmp(ack, "positive") && strcmp(ack, "negative") &&
        strcmp(ack, "full"))
        return "ack must be none, positive, negative or full";
    if (ack)
        json_object_set_new(m->properties, "iothub-ack", json_string(ack));
    const json_t *props = json_object_get(body, "properties");
    const char *key;
    json_t *value;
    if (props && !json_is_object(props))
        return "properties must be an object of strings";
    json_object_foreach((json_t *)props, key, value)
    {
        if (!json_is_string(value) || key[0] == '$' || strlen(key) > 128)
            return "properties must be an object of strings with names not starting with $";
        json_object_set(m->properties, key, value);
    }
    /* The properties travel in the topic: a message whose bag does not fit would arrive without
     * them, so it is refused here rather than taken. */
    char bag[HUB_C2D_MAX_BAG + 1];
    if (hub_c2d_format_bag(m->properties, bag, sizeof bag) < 0)
        return "the properties do not fit: their percent-encoded form is limited to 8192 bytes";
    const json_t *ttl = json_object_get(body, "ttlSeconds");
    if (ttl && (!json_is_integer(ttl) || json_integer_value(ttl) <= 0))
        return "ttlSeconds must be a positive integer";
    m->enqueued_ms = time_now_ms();
    m->expiry_ms = m->enqueued_ms + (ttl ? json_integer_value(ttl) * 1000 : default_ttl);
    char exp[32];
    time_format_iso(m->expiry_ms, exp, sizeof exp);
    json_object_set_new(m->properties, "$.exp", json_string(exp));
    snprintf(m->device_id, sizeof m->device_id, "%s", device_id);
    return NULL;
}

typedef struct {
    http_ctx cx;
    const char *id;
    hub_c2d m;
} message_ctx;

static void message_cleanup(http_ctx *cx)
{
    hub_c2d_deinit(&((message_ctx *)cx)->m);
}

static iotdm_result enqueue_run(hub_work *w, hub_store *store)
{
    message_ctx *mc = (message_ctx *)w;
    return hub_store_c2d_enqueue(store, &mc->m, HUB_C2D_QUEUE_MAX);
}

static void enqueue_done(http_ctx *cx)
{
    message_ctx *mc = (message_ctx *)cx;
    iotdm_result r = cx->w.result;
    if (r == IOTDM_E_NOT_FOUND) {
        http_send_error(cx, HUB_ERR_DEVICE_NOT_FOUND, "Device with id '%s' was not found.", mc->id);
    } else if (r == IOTDM_E_QUOTA) {
        http_send_error(cx, HUB_ERR_QUEUE_DEPTH, "Device '%s' already has %d undelivered messages.",
                        mc->id, HUB_C2D_QUEUE_MAX);
    } else if (r < 0) {
        http_send_result_error(cx, r, "cannot enqueue the message");
    } else {
        char enq[32], exp[32];
        time_format_iso(mc->m.enqueued_ms, enq, sizeof enq);
        time_format_iso(mc->m.expiry_ms, exp, sizeof exp);
        http_send_json(cx, 200,
                       json_pack("{s:s, s:s, s:s}", "messageId", mc->m.message_id,
                                 "enqueuedTimeUtc", enq, "expiryTimeUtc", exp));
        hub_route_deliver_c2d(cx->h, mc->id);
    }
}

static void messages(http_ctx *cx)
{
    message_ctx *mc = (message_ctx *)cx;
    cx->cleanup = message_cleanup;
    mc->id = cx->segments[2];
    json_t *body = http_body_json(cx);
    if (!body)
        return;
    const char *bad = json_is_object(body)
                          ? http_c2d_from_json(body, mc->id, cx->h->cfg.c2d_default_ttl_ms, &mc->m)
                          : "the body must be a JSON object";
    json_decref(body);
    if (bad) {
        http_send_error(cx, HUB_ERR_ARGUMENT_INVALID, "%s", bad);
        return;
    }
    http_run(cx, enqueue_run, enqueue_done, HUB_WORK_GROWS | HUB_WORK_SINGLE);
}

const http_route http_messages_routes[] = {
    {"iotdm/devices/*/messages", HTTPD_POST, HTTP_AUTH_POLICY, HUB_RIGHT_SERVICE_CONNECT,
     HTTP_BODY_METHOD, false, NULL, messages, sizeof(message_ctx)},
    {NULL, 0, 0, 0, 0, false, NULL, NULL, 0},
};
