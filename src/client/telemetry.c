/* Telemetry (docs/protocol.md §4.3): queued in the outbox, published at QoS 1 with its property
 * bag, several in flight, removed from the outbox on PUBACK. */
#include <string.h>

#include "client/internal.h"
#include "common/alloc.h"
#include "common/urlenc.h"

static long append(char *out, size_t cap, size_t pos, const char *s, bool encode)
{
    if (!encode) {
        size_t n = strlen(s);
        if (pos + n >= cap)
            return IOTDM_E_TOO_LARGE;
        memcpy(out + pos, s, n + 1);
        return (long)(pos + n);
    }
    long n = urlenc_encode(s, strlen(s), out + pos, cap - pos);
    return n < 0 ? n : (long)pos + n;
}

long telemetry_encode_bag(const iotdm_property *props, size_t nprops, const char *component,
                          char *out, size_t cap)
{
    if (cap == 0)
        return IOTDM_E_TOO_LARGE;
    out[0] = '\0';
    long pos = 0;
    for (size_t i = 0; i < nprops && pos >= 0; i++) {
        if (!props[i].name || !*props[i].name)
            return IOTDM_E_MALFORMED;
        if (pos > 0)
            pos = append(out, cap, (size_t)pos, "&", false);
        if (pos >= 0)
            pos = append(out, cap, (size_t)pos, props[i].name, true);
        if (pos >= 0 && props[i].value) {
            pos = append(out, cap, (size_t)pos, "=", false);
            if (pos >= 0)
                pos = append(out, cap, (size_t)pos, props[i].value, true);
        }
    }
    if (pos >= 0 && component && *component) {
        pos = append(out, cap, (size_t)pos, pos > 0 ? "&%24.sub=" : "%24.sub=", false);
        if (pos >= 0)
            pos = append(out, cap, (size_t)pos, component, true);
    }
    return pos;
}

/* docs/protocol.md §4.3: body plus property names and values count towards the 256 KB limit. */
static size_t message_size(size_t len, const iotdm_property *props, size_t nprops,
                           const char *component)
{
    size_t size = len + (component ? strlen(component) : 0);
    for (size_t i = 0; i < nprops; i++)
        size += (props[i].name ? strlen(props[i].name) : 0) +
                (props[i].value ? strlen(props[i].value) : 0);
    return size;
}

IOTDM_API iotdm_result iotdm_telemetry_send(iotdm_client *c, const void *body, size_t len,
                                            const iotdm_property *props, size_t nprops,
                                            const char *component)
{
    if (!c || (!body && len) || (!props && nprops))
        return -EINVAL;
    if (message_size(len, props, nprops, component) > CLIENT_TELEMETRY_MAX)
        return IOTDM_E_TOO_LARGE;
    char *bag = xmalloc(CLIENT_BAG_MAX);
    if (!bag)
        return -ENOMEM;
    long n = telemetry_encode_bag(props, nprops, component, bag, CLIENT_BAG_MAX);
    iotdm_result r = n < 0 ? (iotdm_result)n : IOTDM_OK;
    if (r == IOTDM_OK) {
        client_lock(c);
        r = outbox_add_telemetry(c->ob, iotdm_client_now_ms(c), bag, body ? body : "", len);
        client_unlock(c);
        if (r == IOTDM_E_STORAGE)
            CLOG(c, IOTDM_LOG_ERROR, "outbox: cannot store telemetry");
        loop_wake(c);
    }
    xfree(bag);
    return r;
}

/* A message that is done with (acknowledged, or unsendable) leaves the outbox. When it cannot, it
 * is sent again after the next reconnect: a duplicate, which at-least-once delivery allows. */
static void drop_message(iotdm_client *c, int64_t seq)
{
    iotdm_result r = outbox_remove_telemetry(c->ob, seq);
    if (r < 0)
        CLOG(c, IOTDM_LOG_ERROR, "outbox: cannot remove telemetry message %lld: %s", (long long)seq,
             iotdm_result_message(r));
}

static iotdm_result send_one(void *ctx, int64_t seq, const char *bag, const void *body, size_t len)
{
    iotdm_client *c = ctx;
    char topic[CLIENT_TOPIC_MAX];
    if (!az_format_telemetry_topic(topic, sizeof topic, c->device_id, NULL, bag)) {
        CLOG(c, IOTDM_LOG_WARN, "telemetry: message %lld has an unusable topic; dropped",
             (long long)seq);
        drop_message(c, seq);
        c->last_sent_seq = seq;
        return IOTDM_OK;
    }
    int mid = 0;
    iotdm_result r = conn_publish(c, topic, body, len, 1, &mid);
    if (r < 0)
        return r;
    c->inflight[c->ninflight++] = (inflight_msg){mid, seq};
    c->last_sent_seq = seq;
    return IOTDM_OK;
}

void telemetry_pump(iotdm_client *c)
{
    if (!conn_online(c))
        return;
    size_t expired = outbox_expire_telemetry(c->ob, iotdm_client_now_ms(c));
    if (expired)
        CLOG(c, IOTDM_LOG_WARN, "telemetry: %zu messages older than the age limit dropped",
             expired);
    while (c->ninflight < CLIENT_TELEMETRY_INFLIGHT && conn_online(c))
        if (outbox_next_telemetry(c->ob, c->last_sent_seq, send_one, c) < 0)
            break;
}

void telemetry_on_puback(iotdm_client *c, int mid)
{
    for (size_t i = 0; i < c->ninflight; i++) {
        if (c->inflight[i].mid != mid)
            continue;
        drop_message(c, c->inflight[i].seq);
        c->inflight[i] = c->inflight[--c->ninflight];
        telemetry_pump(c);
        return;
    }
}

void telemetry_on_disconnected(iotdm_client *c)
{
    /* Unacknowledged messages stay in the outbox and go again after the reconnect. */
    c->ninflight = 0;
    c->last_sent_seq = 0;
}
