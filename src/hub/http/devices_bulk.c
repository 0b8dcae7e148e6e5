/* POST /devices: Azure's bulk registry operation (up to 100 identities per call, §8.6), used by
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

typedef struct {
    http_ctx cx;
    json_t *body;
    json_t *errors;
    json_t *dropped; /* ids whose connections must close once the unit is durable */
} bulk_ctx;

static void bulk_cleanup(http_ctx *cx)
{
    bulk_ctx *bc = (bulk_ctx *)cx;
    json_decref(bc->body);
    json_decref(bc->errors);
    json_decref(bc->dropped);
}

/* One item; returns false (with an error added) when it failed. */
static bool apply_item(bulk_ctx *bc, hub_store *store, const json_t *item)
{
    json_t *errors = bc->errors;
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
    hub_device d;
    iotdm_result r;
    bool drop = false;
    if (op == OP_DELETE || op == OP_DELETE_IF_MATCH) {
        r = hub_store_device_delete(store, id, etag);
        drop = r == IOTDM_OK;
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
            char err[256];
            if (!http_device_from_json(item, exists, &d, err, sizeof err)) {
                add_error(errors, id, HUB_ERR_ARGUMENT_INVALID, err);
                return false;
            }
            r = exists ? hub_store_device_update(store, &d, etag)
                       : hub_store_device_create(store, &d);
            drop = r == IOTDM_OK && !d.enabled;
        }
    }
    if (drop)
        json_array_append_new(bc->dropped, json_string(id));
    if (r < 0) {
        hub_error_info e = r == IOTDM_E_EXISTS      ? HUB_ERR_DEVICE_EXISTS
                           : r == IOTDM_E_NOT_FOUND ? HUB_ERR_DEVICE_NOT_FOUND
                                                    : hub_error_for(r);
        add_error(errors, id, e, iotdm_result_message(r));
        return false;
    }
    return true;
}

static iotdm_result bulk_run(hub_work *w, hub_store *store)
{
    bulk_ctx *bc = (bulk_ctx *)w;
    size_t i;
    json_t *item;
    json_array_foreach(bc->body, i, item)
    {
        if (!json_is_object(item))
            add_error(bc->errors, "", HUB_ERR_ARGUMENT_INVALID, "each operation must be an object");
        else
            apply_item(bc, store, item);
    }
    return IOTDM_OK;
}

static void bulk_done(http_ctx *cx)
{
    bulk_ctx *bc = (bulk_ctx *)cx;
    if (cx->w.result < 0) {
        http_send_result_error(cx, cx->w.result, "cannot save the devices");
        return;
    }
    size_t i;
    json_t *id;
    json_array_foreach(bc->dropped, i, id)
    {
        hub_route_drop(cx->h, json_string_value(id), "device disabled or deleted");
    }
    bool ok = json_array_size(bc->errors) == 0;
    json_t *errors = bc->errors;
    bc->errors = NULL;
    http_send_json(cx, ok ? 200 : 400,
                   json_pack("{s:b, s:o, s:[]}", "isSuccessful", ok, "errors", errors, "warnings"));
}

static void devices_bulk(http_ctx *cx)
{
    bulk_ctx *bc = (bulk_ctx *)cx;
    cx->cleanup = bulk_cleanup;
    bc->body = http_body_json(cx);
    if (!bc->body)
        return;
    if (!json_is_array(bc->body) || json_array_size(bc->body) == 0 ||
        json_array_size(bc->body) > BULK_MAX) {
        http_send_error(cx, HUB_ERR_ARGUMENT_INVALID,
                        "the body must be an array of 1 to %d device operations", BULK_MAX);
        return;
    }
    bc->errors = json_array();
    bc->dropped = json_array();
    if (!bc->errors || !bc->dropped) {
        http_send_result_error(cx, -ENOMEM, "cannot save the devices");
        return;
    }
    http_run(cx, bulk_run, bulk_done, HUB_WORK_GROWS);
}

const http_route http_devices_bulk_routes[] = {
    {"devices", HTTPD_POST, HTTP_AUTH_POLICY, HUB_RIGHT_REGISTRY_WRITE, HTTP_BODY_JSON, false, NULL,
     devices_bulk, sizeof(bulk_ctx)},
    {NULL, 0, 0, 0, 0, false, NULL, NULL, 0},
};
