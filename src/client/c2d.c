/* Cloud-to-device messages (docs/protocol.md §4.4): the property bag decoded, the body handed to
 * the host, and the PUBACK (libmosquitto sends it) completing the message. */
#include <string.h>

#include "client/internal.h"
#include "common/alloc.h"
#include "common/urlenc.h"

IOTDM_API iotdm_result iotdm_c2d_on_message(iotdm_client *c, iotdm_c2d_fn fn, void *ctx)
{
    if (!c)
        return -EINVAL;
    client_lock(c);
    c->c2d_fn = fn;
    c->c2d_ctx = ctx;
    client_unlock(c);
    loop_wake(c); /* the C2D filter is subscribed (by process()) only once someone listens */
    return IOTDM_OK;
}

/* Decodes the bag into props, with names and values copied NUL-terminated into scratch. */
static size_t decode_bag(az_span bag, iotdm_property *props, char *scratch, size_t cap)
{
    az_propbag_iter it;
    az_propbag_iter_init(&it, bag.ptr, bag.len);
    az_span name, value;
    bool has_value;
    size_t n = 0, used = 0;
    while (n < CLIENT_MAX_C2D_PROPS && az_propbag_next(&it, &name, &value, &has_value)) {
        long nl = urlenc_decode(name.ptr, name.len, scratch + used, cap - used, false);
        if (nl < 0)
            continue;
        char *nm = scratch + used;
        used += (size_t)nl + 1;
        long vl = has_value ? urlenc_decode(value.ptr, value.len, scratch + used, cap - used, false)
                            : urlenc_decode("", 0, scratch + used, cap - used, false);
        if (vl < 0) {
            used -= (size_t)nl + 1;
            continue;
        }
        props[n++] = (iotdm_property){nm, scratch + used};
        used += (size_t)vl + 1;
    }
    return n;
}

void c2d_dispatch(iotdm_client *c, const az_hub_topic *t, const void *payload, size_t len)
{
    if (t->device_id.len != strlen(c->device_id) ||
        memcmp(t->device_id.ptr, c->device_id, t->device_id.len) != 0) {
        CLOG(c, IOTDM_LOG_WARN, "c2d: message for another device ignored");
        return;
    }
    if (!c->c2d_fn) {
        CLOG(c, IOTDM_LOG_WARN, "c2d: message received with no handler installed; dropped");
        return;
    }
    size_t cap = t->property_bag.len * 2 + 2 * CLIENT_MAX_C2D_PROPS + 1;
    char *scratch = xmalloc(cap);
    if (!scratch)
        return;
    iotdm_property props[CLIENT_MAX_C2D_PROPS];
    size_t n = decode_bag(t->property_bag, props, scratch, cap);
    iotdm_c2d_fn fn = c->c2d_fn;
    void *ctx = c->c2d_ctx;
    /* libmosquitto sends the PUBACK once this returns: the message is complete only after the
     * application had it, as the header promises. */
    client_unlock(c);
    fn(ctx, payload ? payload : "", len, props, n);
    client_lock(c);
    xfree(scratch);
}
