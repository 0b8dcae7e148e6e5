/* Twin operations: reported patches from devices, tag and desired updates from the service. (The
 * twin and device JSON are in twin_view.c.) */
#include "hub/twin_ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/timeutil.h"
#include "hub/events.h"

static void set_err(twin_error *err, const char *msg)
{
    if (err)
        snprintf(err->message, sizeof err->message, "%s", msg);
}

/* Validates, merges and checks the resulting size; on failure section is unchanged. */
/* Validates and merges in place (a replace starts from an empty object) and checks the resulting
 * size. On failure the section may be half-merged: every caller works on a twin read for this unit
 * and drops it when anything fails, so copying it first (the largest cost of a reported patch)
 * would buy nothing. */
static iotdm_result apply_patch(json_t **section, const json_t *patch, size_t max_bytes,
                                bool replace, twin_error *err)
{
    iotdm_result r = twin_check_patch(patch, err);
    if (r < 0)
        return r;
    if (replace) {
        json_t *empty = json_object();
        if (!empty)
            return -ENOMEM;
        json_decref(*section);
        *section = empty;
    }
    r = twin_merge(*section, patch);
    if (r == IOTDM_OK && twin_section_size(*section) > max_bytes) {
        set_err(err, "the resulting document exceeds the size limit");
        r = IOTDM_E_TOO_LARGE;
    }
    return r;
}

iotdm_result hub_twin_patch_reported(hub_store *store, const char *device_id, const json_t *patch,
                                     int64_t expected_version, int64_t *out_version,
                                     twin_error *err)
{
    json_t *changes = json_copy((json_t *)patch); /* shallow: only "$version" goes */
    if (!changes)
        return -ENOMEM;
    json_object_del(changes, "$version");
    hub_twin t;
    iotdm_result r = hub_store_twin_get_sections(store, device_id, HUB_TWIN_REPORTED, &t);
    if (r < 0) {
        json_decref(changes);
        return r;
    }
    if (expected_version >= 0 && expected_version != t.reported_version) {
        set_err(err, "the reported properties' $version does not match");
        r = IOTDM_E_PRECONDITION;
    }
    if (r == IOTDM_OK)
        r = apply_patch(&t.reported, changes, TWIN_MAX_SECTION_BYTES, false, err);
    if (r == IOTDM_OK) {
        char now[32];
        time_format_iso(time_now_ms(), now, sizeof now);
        r = twin_metadata_update(t.reported_meta, changes, now, -1, false);
    }
    if (r == IOTDM_OK) {
        t.reported_version++;
        t.version++;
        t.etag++;
        r = hub_store_twin_put(store, device_id, &t);
    }
    if (r == IOTDM_OK) {
        *out_version = t.reported_version;
        hub_events_twin(store, device_id, "reported", t.reported_version, changes);
    }
    hub_twin_deinit(&t);
    json_decref(changes);
    return r;
}

static iotdm_result update_section(json_t **section, json_t *meta, const json_t *patch,
                                   size_t max_bytes, bool replace, int64_t version, twin_error *err)
{
    if (!json_is_object(patch)) {
        set_err(err, "tags and properties.desired must be JSON objects");
        return IOTDM_E_MALFORMED;
    }
    iotdm_result r = apply_patch(section, patch, max_bytes, replace, err);
    if (r == IOTDM_OK && meta) {
        char now[32];
        time_format_iso(time_now_ms(), now, sizeof now);
        r = twin_metadata_update(meta, replace ? *section : patch, now, version, replace);
    }
    return r;
}

/* The device hears of a desired change once the unit is durable, on whichever loop holds it. */
typedef struct {
    int64_t version;
    char device_id[HUB_ID_MAX];
    char text[];
} desired_note;

static void notify_effect(hub_loop *loop, void *arg)
{
    desired_note *n = arg;
    if (!loop->stopping)
        hub_route_notify_desired(loop->h, n->device_id, n->text, n->version);
    xfree(n);
}

/* Notifications carry the changes and the new $version (docs/protocol.md §5.4). */
static void schedule_notify(hub_work *w, const char *device_id, const json_t *changes,
                            int64_t version)
{
    json_t *body = json_deep_copy(changes);
    if (!body)
        return;
    json_object_set_new(body, "$version", json_integer(version));
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    size_t len = text ? strlen(text) : 0;
    desired_note *n = text ? xmalloc(sizeof *n + len + 1) : NULL;
    if (n) {
        n->version = version;
        snprintf(n->device_id, sizeof n->device_id, "%s", device_id);
        memcpy(n->text, text, len + 1);
        if (!hub_work_after(w, notify_effect, n))
            xfree(n); /* the device reads its twin when it next connects */
    }
    free(text);
}

iotdm_result hub_twin_check_replace(const json_t *body, twin_error *err)
{
    const json_t *tags = json_object_get(body, "tags");
    const json_t *desired = json_object_get(json_object_get(body, "properties"), "desired");
    iotdm_result r = IOTDM_OK;
    /* A replace ignores what the twin holds, so applying it to an empty section meets exactly the
     * checks the real update will. */
    if (tags && !json_is_null(tags)) {
        json_t *scratch = json_object();
        r = scratch ? update_section(&scratch, NULL, tags, TWIN_MAX_TAGS_BYTES, true, -1, err)
                    : -ENOMEM;
        json_decref(scratch);
    }
    if (r == IOTDM_OK && desired) {
        json_t *scratch = json_object();
        json_t *patch =
            json_is_object(desired) ? json_deep_copy(desired) : json_incref((json_t *)desired);
        if (json_is_object(patch))
            json_object_del(patch, "$version"), json_object_del(patch, "$metadata");
        r = scratch && patch
                ? update_section(&scratch, NULL, patch, TWIN_MAX_SECTION_BYTES, true, -1, err)
                : -ENOMEM;
        json_decref(patch);
        json_decref(scratch);
    }
    return r;
}

iotdm_result hub_twin_update_service(hub_store *store, hub_work *w, const char *device_id,
                                     const json_t *body, bool replace, uint64_t if_match,
                                     json_t **out_twin, twin_error *err)
{
    if (out_twin)
        *out_twin = NULL;
    if (!json_is_object(body)) {
        set_err(err, "the body must be a JSON object");
        return IOTDM_E_MALFORMED;
    }
    const json_t *tags = json_object_get(body, "tags");
    const json_t *desired = json_object_get(json_object_get(body, "properties"), "desired");
    hub_device d;
    hub_twin t;
    iotdm_result r = hub_store_device_get(store, device_id, &d);
    if (r < 0)
        return r;
    r = hub_store_twin_get(store, device_id, &t);
    if (r < 0)
        return r;
    if (if_match && if_match != t.etag) {
        hub_twin_deinit(&t);
        set_err(err, "the twin's etag does not match If-Match");
        return IOTDM_E_PRECONDITION;
    }
    json_t *desired_patch = desired ? json_deep_copy(desired) : NULL;
    if (desired_patch)
        json_object_del(desired_patch, "$version"), json_object_del(desired_patch, "$metadata");
    if (tags && !json_is_null(tags))
        r = update_section(&t.tags, NULL /* tags have no $metadata */, tags, TWIN_MAX_TAGS_BYTES,
                           replace, -1, err);
    if (r == IOTDM_OK && desired_patch)
        r = update_section(&t.desired, t.desired_meta, desired_patch, TWIN_MAX_SECTION_BYTES,
                           replace, t.desired_version + 1, err);
    if (r == IOTDM_OK) {
        if (desired_patch)
            t.desired_version++;
        t.version++;
        t.etag++;
        r = hub_store_twin_put(store, device_id, &t);
    }
    if (r == IOTDM_OK) {
        if (tags && !json_is_null(tags))
            hub_events_twin(store, device_id, "tags", t.version, tags);
        if (desired_patch) {
            const json_t *changes = replace ? t.desired : desired_patch;
            hub_events_twin(store, device_id, "desired", t.desired_version, changes);
            schedule_notify(w, device_id, changes, t.desired_version);
        }
        if (out_twin)
            *out_twin = hub_twin_service_view(&d, &t);
    }
    json_decref(desired_patch);
    hub_twin_deinit(&t);
    return r;
}
