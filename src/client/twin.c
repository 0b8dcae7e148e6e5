/* Twin sync (docs/protocol.md §5.2-5.4, §2.11 steps 4-5): GET after subscribing, desired patches
 * applied one at a time in $version order, reported patches sent one at a time from the outbox
 * until acknowledged.
 */
#include <string.h>

#include "client/internal.h"
#include "common/alloc.h"
#include "proto/twin.h"

#define GET_RETRY_MS       5000
#define PATCH_RETRY_MAX_MS 60000

desired_gate twin_gate(int64_t last_applied, int64_t version)
{
    if (version <= last_applied)
        return DESIRED_STALE;
    return version == last_applied + 1 ? DESIRED_APPLY : DESIRED_GAP;
}

static bool parse_rid(az_span rid, uint32_t *out)
{
    if (rid.len == 0 || rid.len > 10)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < rid.len; i++) {
        if (rid.ptr[i] < '0' || rid.ptr[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(rid.ptr[i] - '0');
    }
    if (v > UINT32_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

static void request_get(iotdm_client *c)
{
    int64_t now = client_mono_ms();
    if (!c->subs_ready || c->twin_get_pending)
        return;
    char rid[16], topic[64];
    uint32_t id = conn_next_rid(c);
    int n = snprintf(rid, sizeof rid, "%u", id);
    az_format_twin_get(topic, sizeof topic, rid, (size_t)n);
    if (conn_publish(c, topic, "", 0, 0, NULL) < 0) {
        c->get_retry_at = now + GET_RETRY_MS;
        return;
    }
    c->twin_get_pending = true;
    c->get_rid = id;
    c->get_deadline = now + CLIENT_REQUEST_TIMEOUT_MS;
}

static void pump_reported(iotdm_client *c)
{
    int64_t now = client_mono_ms();
    if (!c->subs_ready || c->patch_inflight || now < c->patch_retry_at)
        return;
    int64_t seq;
    char *json;
    if (outbox_peek_reported(c->ob, &seq, &json) < 0)
        return;
    char rid[16], topic[96];
    uint32_t id = conn_next_rid(c);
    int n = snprintf(rid, sizeof rid, "%u", id);
    az_format_twin_patch_reported(topic, sizeof topic, rid, (size_t)n, -1);
    /* QoS 0 like the SDKs: the 204 on $iothub/twin/res is the acknowledgement that counts. */
    iotdm_result r = conn_publish(c, topic, json, strlen(json), 0, NULL);
    xfree(json);
    if (r < 0)
        return;
    c->patch_inflight = true;
    c->patch_rid = id;
    c->patch_seq = seq;
    c->patch_deadline = now + CLIENT_REQUEST_TIMEOUT_MS;
}

void twin_on_ready(iotdm_client *c)
{
    c->twin_synced = false;
    c->twin_get_pending = false;
    c->get_retry_at = 0;
    request_get(c);
    pump_reported(c);
}

void twin_on_disconnected(iotdm_client *c)
{
    c->twin_synced = false;
    c->twin_get_pending = false;
    c->patch_inflight = false;
    c->patch_retry_at = 0;
    /* The GET after the next connect covers whatever was buffered. */
    for (size_t i = 0; i < c->npending; i++)
        json_decref(c->pending[i].patch);
    c->npending = 0;
    c->pending_overflow = false;
}

static void call_app(iotdm_client *c, json_t *rest, int64_t version, bool full)
{
    iotdm_desired_fn fn = c->desired_fn;
    void *ctx = c->desired_ctx;
    if (!fn || (!rest && !full))
        return;
    json_t *doc = rest ? rest : json_object();
    json_object_set_new(doc, "$version", json_integer(version));
    char *text = json_dumps(doc, JSON_COMPACT);
    if (text) {
        client_unlock(c);
        fn(ctx, text, version, full);
        client_lock(c);
    }
    free(text);
    if (!rest)
        json_decref(doc);
}

void twin_apply_full(iotdm_client *c, json_t *desired, int64_t version)
{
    json_t *doc = json_is_object(desired) ? json_deep_copy(desired) : json_object();
    if (!doc)
        return;
    json_object_del(doc, "$version");
    json_object_del(doc, "$metadata");
    json_decref(c->desired);
    c->desired = doc;
    CLOG(c, IOTDM_LOG_INFO, "twin: applying the full desired document, $version %lld",
         (long long)version);
    json_t *rest = handlers_dispatch(c, doc, version, true);
    call_app(c, rest, version, true);
    json_decref(rest);
    c->desired_version = version;
    c->twin_synced = true;
    if (!c->initial_report_done) {
        c->initial_report_done = true;
        handlers_initial_report(c);
    }
}

void twin_apply_patch(iotdm_client *c, json_t *patch, int64_t version)
{
    if (!c->desired)
        c->desired = json_object();
    if (!c->desired || twin_merge(c->desired, patch) < 0) {
        CLOG(c, IOTDM_LOG_ERROR, "twin: cannot merge desired $version %lld", (long long)version);
        return;
    }
    CLOG(c, IOTDM_LOG_DEBUG, "twin: applying desired $version %lld", (long long)version);
    json_t *rest = handlers_dispatch(c, patch, version, false);
    call_app(c, rest, version, false);
    json_decref(rest);
    c->desired_version = version;
}

/* Buffers a notification that cannot be applied yet (a GET is on its way). */
static void buffer_patch(iotdm_client *c, json_t *patch, int64_t version)
{
    if (c->npending == CLIENT_MAX_PENDING) {
        c->pending_overflow = true; /* another GET after this one catches up */
        json_decref(patch);
        return;
    }
    c->pending[c->npending].patch = patch;
    c->pending[c->npending].version = version;
    c->npending++;
}

/* Applies buffered notifications newer than the document just read; a gap asks again. */
static void drain_pending(iotdm_client *c)
{
    size_t i = 0;
    for (; i < c->npending && c->twin_synced; i++) {
        pending_patch *p = &c->pending[i];
        desired_gate g = twin_gate(c->desired_version, p->version);
        if (g == DESIRED_GAP)
            break;
        if (g == DESIRED_APPLY)
            twin_apply_patch(c, p->patch, p->version);
        json_decref(p->patch);
    }
    memmove(c->pending, c->pending + i, (c->npending - i) * sizeof c->pending[0]);
    c->npending -= i;
    if (c->npending > 0 || c->pending_overflow) {
        c->pending_overflow = false;
        c->twin_synced = false;
        request_get(c);
    }
}

static json_t *parse_body(iotdm_client *c, const char *body, size_t len, const char *what)
{
    if (len > CLIENT_TWIN_MAX_BYTES) {
        CLOG(c, IOTDM_LOG_WARN, "twin: %s too large (%zu bytes)", what, len);
        return NULL;
    }
    json_error_t err;
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &err);
    if (!json_is_object(j)) {
        CLOG(c, IOTDM_LOG_WARN, "twin: %s is not a JSON object: %s", what, err.text);
        json_decref(j);
        return NULL;
    }
    return j;
}

static void on_get_response(iotdm_client *c, int status, const char *body, size_t len)
{
    c->twin_get_pending = false;
    json_t *twin = status == 200 ? parse_body(c, body, len, "twin") : NULL;
    json_t *desired = json_object_get(twin, "desired");
    json_t *v = json_object_get(desired, "$version");
    if (!json_is_object(desired) || !json_is_integer(v)) {
        CLOG(c, IOTDM_LOG_WARN, "twin: GET answered %d without a usable desired document", status);
        c->get_retry_at = client_mono_ms() + GET_RETRY_MS;
        json_decref(twin);
        return;
    }
    twin_apply_full(c, desired, json_integer_value(v));
    json_decref(twin);
    drain_pending(c);
}

/* Forgets the reported patch the hub answered. When the outbox cannot delete it, it stays first
 * in line and goes again (a reported patch merges, so twice is harmless), but only after the
 * longest retry delay: a failing disk must not turn into a busy loop of identical patches. */
static void drop_answered_patch(iotdm_client *c, int64_t now)
{
    iotdm_result r = outbox_remove_reported(c->ob, c->patch_seq);
    if (r < 0) {
        CLOG(c, IOTDM_LOG_ERROR, "outbox: cannot remove an answered reported patch: %s",
             iotdm_result_message(r));
        c->patch_retry_at = now + PATCH_RETRY_MAX_MS;
    }
}

static void on_patch_response(iotdm_client *c, int status, const char *body, size_t len)
{
    c->patch_inflight = false;
    int64_t now = client_mono_ms();
    if (status >= 200 && status < 300) {
        drop_answered_patch(c, now);
        c->patch_failures = 0;
        pump_reported(c);
        return;
    }
    if (status == 429 || status >= 500) {
        int64_t delay = 1000;
        for (unsigned i = 0; i < c->patch_failures && delay < PATCH_RETRY_MAX_MS; i++)
            delay *= 2;
        c->patch_failures++;
        c->patch_retry_at = now + (delay < PATCH_RETRY_MAX_MS ? delay : PATCH_RETRY_MAX_MS);
        CLOG(c, IOTDM_LOG_WARN, "twin: reported patch answered %d; retrying", status);
        return;
    }
    /* Any other status is the hub saying this patch can never be applied (docs/protocol.md §5.3,
     * §5.5): sending it again would block every patch queued behind it. */
    CLOG(c, IOTDM_LOG_ERROR, "twin: reported patch refused with %d, dropped: %.*s", status,
         (int)(len > 200 ? 200 : len), body ? body : "");
    drop_answered_patch(c, now);
    pump_reported(c);
}

void twin_on_response(iotdm_client *c, const az_hub_topic *t, const char *body, size_t len)
{
    uint32_t rid;
    if (!parse_rid(t->rid, &rid))
        return;
    if (c->twin_get_pending && rid == c->get_rid)
        on_get_response(c, t->status, body, len);
    else if (c->patch_inflight && rid == c->patch_rid)
        on_patch_response(c, t->status, body, len);
    else
        CLOG(c, IOTDM_LOG_DEBUG, "twin: response %d for an unknown or late $rid", t->status);
}

void twin_on_desired(iotdm_client *c, const az_hub_topic *t, const char *body, size_t len)
{
    json_t *patch = parse_body(c, body, len, "desired patch");
    if (!patch)
        return;
    json_t *v = json_object_get(patch, "$version");
    int64_t version = t->has_version ? t->version : json_integer_value(v);
    if (!t->has_version && !json_is_integer(v)) {
        CLOG(c, IOTDM_LOG_WARN, "twin: desired patch without $version ignored");
        json_decref(patch);
        return;
    }
    if (!c->twin_synced) {
        buffer_patch(c, patch, version);
        return;
    }
    switch (twin_gate(c->desired_version, version)) {
    case DESIRED_STALE:
        CLOG(c, IOTDM_LOG_DEBUG, "twin: stale desired $version %lld ignored", (long long)version);
        json_decref(patch);
        break;
    case DESIRED_GAP:
        CLOG(c, IOTDM_LOG_INFO, "twin: desired $version %lld after %lld; reading the full twin",
             (long long)version, (long long)c->desired_version);
        c->twin_synced = false;
        buffer_patch(c, patch, version);
        request_get(c);
        break;
    case DESIRED_APPLY:
        twin_apply_patch(c, patch, version);
        json_decref(patch);
        break;
    }
}

void twin_tick(iotdm_client *c, int64_t now)
{
    if (!c->subs_ready)
        return;
    if (c->twin_get_pending && now >= c->get_deadline) {
        CLOG(c, IOTDM_LOG_WARN, "twin: GET timed out; asking again");
        c->twin_get_pending = false;
    }
    if (!c->twin_synced && !c->twin_get_pending && now >= c->get_retry_at)
        request_get(c);
    if (c->patch_inflight && now >= c->patch_deadline) {
        CLOG(c, IOTDM_LOG_WARN, "twin: reported patch not acknowledged; sending it again");
        c->patch_inflight = false;
    }
    pump_reported(c);
}

int64_t twin_next_deadline(iotdm_client *c)
{
    if (!c->subs_ready)
        return INT64_MAX;
    int64_t d = INT64_MAX;
    if (c->twin_get_pending)
        d = c->get_deadline;
    else if (!c->twin_synced)
        d = c->get_retry_at;
    if (c->patch_inflight && c->patch_deadline < d)
        d = c->patch_deadline;
    outbox_counts n;
    outbox_get_counts(c->ob, &n);
    if (!c->patch_inflight && n.reported > 0 && c->patch_retry_at < d)
        d = c->patch_retry_at;
    return d;
}

iotdm_result twin_queue_reported(iotdm_client *c, const json_t *patch)
{
    twin_error err;
    iotdm_result r = twin_check_patch(patch, &err);
    if (r == IOTDM_OK && twin_section_size(patch) > TWIN_MAX_SECTION_BYTES) {
        r = IOTDM_E_TOO_LARGE;
        snprintf(err.message, sizeof err.message, "patch larger than %d bytes",
                 TWIN_MAX_SECTION_BYTES);
    }
    if (r < 0) {
        CLOG(c, IOTDM_LOG_WARN, "twin: reported patch refused: %s", err.message);
        return r;
    }
    char *text = json_dumps(patch, JSON_COMPACT);
    if (!text)
        return -ENOMEM;
    r = outbox_add_reported(c->ob, text);
    free(text);
    if (r < 0)
        CLOG(c, IOTDM_LOG_ERROR, "outbox: cannot store a reported patch");
    loop_wake(c);
    return r;
}

IOTDM_API iotdm_result iotdm_twin_report(iotdm_client *c, const char *json_patch)
{
    if (!c || !json_patch)
        return -EINVAL;
    json_t *patch = json_loads(json_patch, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(patch)) {
        json_decref(patch);
        return IOTDM_E_MALFORMED;
    }
    client_lock(c);
    iotdm_result r = twin_queue_reported(c, patch);
    client_unlock(c);
    json_decref(patch);
    return r;
}

IOTDM_API iotdm_result iotdm_twin_on_desired(iotdm_client *c, iotdm_desired_fn fn, void *ctx)
{
    if (!c)
        return -EINVAL;
    client_lock(c);
    c->desired_fn = fn;
    c->desired_ctx = ctx;
    client_unlock(c);
    return IOTDM_OK;
}

IOTDM_API char *iotdm_twin_desired_copy(iotdm_client *c)
{
    if (!c)
        return NULL;
    client_lock(c);
    char *out = NULL;
    if (c->desired) {
        json_t *doc = json_deep_copy(c->desired);
        json_object_set_new(doc, "$version", json_integer(c->desired_version));
        char *text = json_dumps(doc, JSON_COMPACT);
        out = text ? xstrdup(text) : NULL;
        free(text);
        json_decref(doc);
    }
    client_unlock(c);
    return out;
}
