/* POST /devices: Azure's bulk registry operation (up to 100 identities per call, §4.2), used by
 * Registry.addDevices/updateDevices/removeDevices and to register fleets quickly. One commit. */
#include <string.h>
#include <strings.h>

#include "hub/http/internal.h"
#include "hub/twin_ops.h"
#include "proto/azure_topics.h"

#define BULK_MAX 100

typedef enum {
    OP_CREATE,
    OP_UPDATE,
    OP_UPDATE_IF_MATCH,
    OP_CREATE_OR_UPDATE,
    OP_DELETE,
    OP_DELETE_IF_MATCH,
    OP_UNKNOWN
} bulk_op;

static bulk_op parse_mode(const char *mode)
{
    static const char *const names[] = {"create",         "update", "updateIfMatchETag",
                                        "createOrUpdate", "delete", "deleteIfMatchETag"};
    for (int i = 0; mode && i < OP_UNKNOWN; i++)
        if (strcasecmp(mode, names[i]) == 0)
            return (bulk_op)i;
    return OP_UNKNOWN;
}

static void add_error(json_t *errors, const char *id, hub_error_info e, const char *text)
{
    json_array_append_new(errors, json_pack("{s:s, s:s, s:s}", "deviceId", id, "errorCode", e.name,
                                            "errorStatus", text));
}

/* One item; returns false (with an error added) when it failed. */
static bool apply_item(http_ctx *cx, const json_t *item, json_t *errors)
{
    const char *id = json_string_value(json_object_get(item, "id"));
    bulk_op op = parse_mode(json_string_value(json_object_get(item, "importMode")));
    if (!id || !az_valid_device_id(id, strlen(id))) {
        add_error(errors, id ? id : "", HUB_ERR_ARGUMENT_INVALID, "missing or invalid id");
        return false;
    }
    if (op == OP_UNKNOWN) {
        add_error(errors, id, HUB_ERR_ARGUMENT_INVALID, "unknown importMode");
        return false;
    }
    uint64_t etag = 0;
    const char *given = json_string_value(json_object_get(item, "eTag"));
    if ((op == OP_UPDATE_IF_MATCH || op == OP_DELETE_IF_MATCH) &&
        (!given || !hub_parse_device_if_match(given, &etag))) {
        add_error(errors, id, HUB_ERR_PRECONDITION, "eTag is missing or does not match");
        return false;
    }
    hub_store *store = cx->h->store;
    hub_device d;
    iotdm_result r;
    if (op == OP_DELETE || op == OP_DELETE_IF_MATCH) {
        r = hub_store_device_delete(store, id, etag);
        if (r == IOTDM_OK)
            hub_conn_drop(cx->h, id, "device deleted");
    } else {
        bool exists = hub_store_device_get(store, id, &d) == IOTDM_OK;
        if (!exists && (op == OP_UPDATE || op == OP_UPDATE_IF_MATCH)) {
            r = IOTDM_E_NOT_FOUND;
        } else if (exists && op == OP_CREATE) {
            r = IOTDM_E_EXISTS;
        } else {
            if (!exists) {
                memset(&d, 0, sizeof d);
                snprintf(d.device_id, sizeof d.device_id, "%s", id);
                d.enabled = true;
            }
            if (!http_device_from_json(cx, item, exists, &d)) {
                add_error(errors, id, HUB_ERR_ARGUMENT_INVALID, cx->last_error);
                return false;
            }
            r = exists ? hub_store_device_update(store, &d, etag)
                       : hub_store_device_create(store, &d);
            if (r == IOTDM_OK && !d.enabled)
                hub_conn_drop(cx->h, id, "device disabled");
        }
    }
    if (r < 0) {
        hub_error_info e = r == IOTDM_E_EXISTS      ? HUB_ERR_DEVICE_EXISTS
                           : r == IOTDM_E_NOT_FOUND ? HUB_ERR_DEVICE_NOT_FOUND
                                                    : hub_error_for(r);
        add_error(errors, id, e, iotdm_result_message(r));
        return false;
    }
    return true;
}

void http_devices_bulk(http_ctx *cx)
{
    json_t *body = http_body_json(cx);
    if (!body)
        return;
    if (!json_is_array(body) || json_array_size(body) == 0 || json_array_size(body) > BULK_MAX) {
        json_decref(body);
        http_send_error(cx, HUB_ERR_ARGUMENT_INVALID,
                        "the body must be an array of 1 to %d device operations", BULK_MAX);
        return;
    }
    json_t *errors = json_array();
    size_t i;
    json_t *item;
    cx->quiet_errors = true;
    json_array_foreach(body, i, item)
    {
        if (!json_is_object(item))
            add_error(errors, "", HUB_ERR_ARGUMENT_INVALID, "each operation must be an object");
        else
            apply_item(cx, item, errors);
    }
    cx->quiet_errors = false;
    json_decref(body);
    iotdm_result r = hub_commit_now(cx->h);
    if (r < 0) {
        json_decref(errors);
        http_send_result_error(cx, r, "cannot save the devices");
        return;
    }
    bool ok = json_array_size(errors) == 0;
    http_send_json(cx, ok ? 200 : 400,
                   json_pack("{s:b, s:o, s:[]}", "isSuccessful", ok, "errors", errors, "warnings"));
}
