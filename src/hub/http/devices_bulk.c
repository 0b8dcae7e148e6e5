/* POST /devices: Azure's bulk registry operation (up to 100 identities per call, §8.6), used by
 * Registry.addDevices/updateDevices/removeDevices and to register fleets quickly. One commit.
 * An item may carry its twin's tags and desired properties (Azure's ExportImportDevice fields):
 * they replace the twin's, after the identity is written; updateTwin modes change the twin only. */
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
    OP_UPDATE_TWIN,
    OP_UPDATE_TWIN_IF_MATCH,
    OP_UNKNOWN
} bulk_op;

static bulk_op parse_mode(const char *mode)
{
    static const char *const names[] = {"create",
                                        "update",
                                        "updateIfMatchETag",
                                        "createOrUpdate",
                                        "delete",
                                        "deleteIfMatchETag",
                                        "updateTwin",
                                        "updateTwinIfMatchETag"};
    for (int i = 0; mode && i < OP_UNKNOWN; i++)
        if (strcasecmp(mode, names[i]) == 0)
            return (bulk_op)i;
    return OP_UNKNOWN;
}

/* Azure reads these items with a case-insensitive JSON binder: the Node SDK's updateDevices and
 * removeDevices send the device's own "etag" where the documented name is "eTag". */
static const char *get_str_ci(const json_t *item, const char *name)
{
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)item, key, value)
    {
        if (strcasecmp(key, name) == 0)
            return json_string_value(value);
    }
    return NULL;
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

/* The twin part of an item, as a hub_twin_update_service body ({"tags", "properties":
 * {"desired"}}), in *out (NULL when the item has none). Returns false with err set when the item
 * asks for what the service cannot do. */
static bool twin_part(const json_t *item, json_t **out, char *err, size_t err_cap)
{
    *out = NULL;
    const json_t *tags = json_object_get(item, "tags");
    const json_t *props = json_object_get(item, "properties");
    if (props && !json_is_null(props) && !json_is_object(props)) {
        snprintf(err, err_cap, "properties must be an object");
        return false;
    }
    const json_t *reported = json_object_get(props, "reported");
    if (reported && !json_is_null(reported) && json_object_size(reported) > 0) {
        snprintf(err, err_cap, "properties.reported are the device's to set, not the service's");
        return false;
    }
    const json_t *desired = json_object_get(props, "desired");
    bool has_tags = tags && !json_is_null(tags);
    bool has_desired = desired && !json_is_null(desired);
    if (!has_tags && !has_desired)
        return true;
    json_t *body = json_object();
    if (body && has_tags)
        json_object_set(body, "tags", (json_t *)tags);
    if (body && has_desired)
        json_object_set_new(body, "properties", json_pack("{s:O}", "desired", desired));
    *out = body;
    if (!body)
        snprintf(err, err_cap, "out of memory");
    return body != NULL;
}

static void add_result_error(json_t *errors, const char *id, iotdm_result r)
{
    hub_error_info e = r == IOTDM_E_EXISTS      ? HUB_ERR_DEVICE_EXISTS
                       : r == IOTDM_E_NOT_FOUND ? HUB_ERR_DEVICE_NOT_FOUND
                                                : hub_error_for(r);
    add_error(errors, id, e, iotdm_result_message(r));
}

/* The identity part of an item (not the updateTwin modes). */
static iotdm_result apply_identity(bulk_ctx *bc, hub_store *store, const json_t *item,
                                   const char *id, bulk_op op, uint64_t etag, char *err,
                                   size_t err_cap)
{
    iotdm_result r;
    bool drop = false;
    if (op == OP_DELETE || op == OP_DELETE_IF_MATCH) {
        r = hub_store_device_delete(store, id, etag);
        drop = r == IOTDM_OK;
    } else {
        hub_device d;
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
            if (!http_device_from_json(item, exists, &d, err, err_cap))
                return IOTDM_E_MALFORMED;
            r = exists ? hub_store_device_update(store, &d, etag)
                       : hub_store_device_create(store, &d);
            drop = r == IOTDM_OK && !d.enabled;
        }
    }
    if (drop)
        json_array_append_new(bc->dropped, json_string(id));
    return r;
}

/* One item; returns false (with an error added) when it failed. Everything the request itself can
 * get wrong is checked before the first write, so a refused item changes nothing. */
static bool apply_item(bulk_ctx *bc, hub_work *w, hub_store *store, const json_t *item)
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
    bool twin_only = op == OP_UPDATE_TWIN || op == OP_UPDATE_TWIN_IF_MATCH;
    bool deleting = op == OP_DELETE || op == OP_DELETE_IF_MATCH;
    uint64_t etag = 0, twin_etag = 0;
    const char *given = get_str_ci(item, "eTag");
    if ((op == OP_UPDATE_IF_MATCH || op == OP_DELETE_IF_MATCH) &&
        (!given || !hub_parse_device_if_match(given, &etag))) {
        add_error(errors, id, HUB_ERR_PRECONDITION, "eTag is missing or does not match");
        return false;
    }
    const char *given_twin = get_str_ci(item, "twinETag");
    if (op == OP_UPDATE_TWIN_IF_MATCH &&
        (!given_twin || !hub_parse_twin_if_match(given_twin, &twin_etag))) {
        add_error(errors, id, HUB_ERR_PRECONDITION, "twinETag is missing or does not match");
        return false;
    }
    json_t *twin = NULL;
    twin_error terr = {{0}};
    char err[256] = "";
    iotdm_result r = IOTDM_OK;
    if (!deleting) {
        if (!twin_part(item, &twin, err, sizeof err)) {
            add_error(errors, id, HUB_ERR_ARGUMENT_INVALID, err);
            return false;
        }
        if (twin_only && !twin) {
            add_error(errors, id, HUB_ERR_ARGUMENT_INVALID,
                      "updateTwin needs tags or properties.desired");
            return false;
        }
        if (twin && (r = hub_twin_check_replace(twin, &terr)) < 0) {
            add_error(errors, id, HUB_ERR_ARGUMENT_INVALID,
                      terr.message[0] ? terr.message : iotdm_result_message(r));
            json_decref(twin);
            return false;
        }
    }
    if (!twin_only)
        r = apply_identity(bc, store, item, id, op, etag, err, sizeof err);
    if (r == IOTDM_OK && twin)
        r = hub_twin_update_service(store, w, id, twin, true, twin_etag, NULL, &terr);
    json_decref(twin);
    if (r == IOTDM_E_MALFORMED && (err[0] || terr.message[0])) {
        add_error(errors, id, HUB_ERR_ARGUMENT_INVALID, err[0] ? err : terr.message);
        return false;
    }
    if (r < 0) {
        add_result_error(errors, id, r);
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
            apply_item(bc, w, store, item);
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
