/* DPS service API for azure-iot-provisioning-service (docs/protocol.md §7.12): enrollments,
 * enrollment groups, registration records, queries with paging, If-Match etags; and the
 * /iotdm/dps extension (ID scope, global endpoint). Errors are in DPS's form (§7.4). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hub/dps/dps.h"
#include "hub/http/internal.h"
#include "hub/twin_ops.h"

#define QUERY_PAGE_DEFAULT 100
#define QUERY_PAGE_MAX     1000

#define ERR_ENROLLMENT_NOT_FOUND   ((hub_error_info){404, 404201, "EnrollmentNotFound"})
#define ERR_REGISTRATION_NOT_FOUND ((hub_error_info){404, 404202, "DeviceRegistrationNotFound"})

typedef struct {
    http_ctx cx;
    hub_dps_kind kind;
    bool registrations; /* /registrations rather than enrollments */
    const char *id;
    const char *what;
    json_t *body;
    uint64_t match;
    /* results */
    json_t *doc;
    uint64_t etag;
    char err[256];
    bool prepared_bad; /* the body was refused (err) */
    /* queries */
    const char *group;
    char after[HUB_ID_MAX];
    size_t max;
    json_t *items;
} dps_ctx;

static void dps_cleanup(http_ctx *cx)
{
    dps_ctx *dc = (dps_ctx *)cx;
    json_decref(dc->body);
    json_decref(dc->doc);
    json_decref(dc->items);
}

static bool if_match(http_ctx *cx, const json_t *body, uint64_t *out)
{
    const char *h = http_header(cx, "If-Match");
    const json_t *etag = json_object_get(body, "etag");
    if (!h && json_is_string(etag))
        h = json_string_value(etag);
    *out = 0;
    if (h && !hub_parse_device_if_match(h, out)) {
        http_send_error(cx, HUB_ERR_PRECONDITION, "If-Match does not match the current etag");
        return false;
    }
    return true;
}

static void send_store_error(http_ctx *cx, iotdm_result r, hub_error_info not_found,
                             const char *what, const char *id)
{
    if (r == IOTDM_E_NOT_FOUND)
        http_send_error(cx, not_found, "%s '%s' does not exist", what, id);
    else if (r == IOTDM_E_PRECONDITION)
        http_send_error(cx, HUB_ERR_PRECONDITION, "the etag of %s '%s' does not match If-Match",
                        what, id);
    else
        http_send_result_error(cx, r, what);
}

static void answer(http_ctx *cx, bool deleted, bool mechanism)
{
    dps_ctx *dc = (dps_ctx *)cx;
    hub_error_info nf = dc->registrations ? ERR_REGISTRATION_NOT_FOUND : ERR_ENROLLMENT_NOT_FOUND;
    if (dc->prepared_bad) {
        http_send_error(cx, HUB_ERR_ARGUMENT_INVALID, "%s", dc->err);
    } else if (cx->w.result < 0) {
        send_store_error(cx, cx->w.result, nf, dc->what, dc->id);
    } else if (deleted) {
        http_send_empty(cx, 204);
    } else {
        json_t *view = dc->registrations ? dps_registration_view(dc->doc, dc->etag)
                                         : dps_enrollment_view(dc->doc, dc->etag);
        if (mechanism) {
            json_t *att = json_incref(json_object_get(view, "attestation"));
            json_decref(view);
            view = att ? att : json_object();
        }
        http_send_json(cx, 200, view);
    }
}

static iotdm_result put_run(hub_work *w, hub_store *store)
{
    dps_ctx *dc = (dps_ctx *)w;
    json_t *old = NULL;
    iotdm_result r = hub_store_enrollment_get(store, dc->kind, dc->id, &old, NULL);
    if (r < 0 && r != IOTDM_E_NOT_FOUND)
        return r; /* a storage error must not turn an update into a create */
    dc->doc =
        dps_enrollment_prepare(dc->cx.h, dc->kind, dc->id, dc->body, old, dc->err, sizeof dc->err);
    json_decref(old);
    if (!dc->doc) {
        dc->prepared_bad = true;
        return IOTDM_E_MALFORMED;
    }
    return hub_store_enrollment_put(store, dc->kind, dc->id, dc->doc, dc->match, &dc->etag);
}

static void put_done(http_ctx *cx)
{
    answer(cx, false, false);
}

static iotdm_result get_run(hub_work *w, hub_store *store)
{
    dps_ctx *dc = (dps_ctx *)w;
    return dc->registrations
               ? hub_store_registration_get(store, dc->id, &dc->doc, &dc->etag)
               : hub_store_enrollment_get(store, dc->kind, dc->id, &dc->doc, &dc->etag);
}

static void get_done(http_ctx *cx)
{
    answer(cx, false, false);
}

static void mechanism_done(http_ctx *cx)
{
    answer(cx, false, true);
}

static iotdm_result delete_run(hub_work *w, hub_store *store)
{
    dps_ctx *dc = (dps_ctx *)w;
    return dc->registrations ? hub_store_registration_delete(store, dc->id, dc->match)
                             : hub_store_enrollment_delete(store, dc->kind, dc->id, dc->match);
}

static void delete_done(http_ctx *cx)
{
    answer(cx, true, false);
}

/* ---- queries: every item in id order; x-ms-max-item-count pages, x-ms-continuation is the last
 * id of the previous page. Only "SELECT *" exists for DPS, so the text is not parsed. ---- */

static bool add_item(void *ctx, const char *id, const json_t *doc, uint64_t etag)
{
    (void)id;
    dps_ctx *dc = ctx;
    if (json_array_size(dc->items) == dc->max)
        return false;
    json_array_append_new(dc->items, dc->registrations ? dps_registration_view(doc, etag)
                                                       : dps_enrollment_view(doc, etag));
    return true;
}

static iotdm_result query_run(hub_work *w, hub_store *store)
{
    dps_ctx *dc = (dps_ctx *)w;
    const char *after = dc->after[0] ? dc->after : NULL;
    dc->items = json_array();
    if (!dc->items)
        return -ENOMEM;
    return dc->registrations
               ? hub_store_registration_foreach(store, dc->group, after, dc->max, add_item, dc)
               : hub_store_enrollment_foreach(store, dc->kind, after, dc->max, add_item, dc);
}

static void query_done(http_ctx *cx)
{
    dps_ctx *dc = (dps_ctx *)cx;
    if (cx->w.result < 0) {
        http_send_result_error(cx, cx->w.result, "query");
        return;
    }
    size_t page = dc->max - 1;
    if (json_array_size(dc->items) > page) {
        /* One more than a page was read: there is a next page, starting after the last shown. */
        json_array_remove(dc->items, page);
        json_t *last = json_array_get(dc->items, page - 1);
        const char *key = dc->registrations           ? "registrationId"
                          : dc->kind == HUB_DPS_GROUP ? "enrollmentGroupId"
                                                      : "registrationId";
        const char *id = json_string_value(json_object_get(last, key));
        http_add_header(cx, "x-ms-continuation", id ? id : "");
    }
    http_add_header(cx, "x-ms-item-type",
                    dc->registrations           ? "DeviceRegistration"
                    : dc->kind == HUB_DPS_GROUP ? "EnrollmentGroup"
                                                : "Enrollment");
    json_t *items = dc->items;
    dc->items = NULL;
    http_send_json(cx, 200, items);
}

static void start_query(dps_ctx *dc)
{
    http_ctx *cx = &dc->cx;
    const char *max_h = http_header(cx, "x-ms-max-item-count");
    const char *after = http_header(cx, "x-ms-continuation");
    long max = max_h ? strtol(max_h, NULL, 10) : QUERY_PAGE_DEFAULT;
    if (max <= 0 || max > QUERY_PAGE_MAX)
        max = max <= 0 ? QUERY_PAGE_DEFAULT : QUERY_PAGE_MAX;
    if (after && strlen(after) >= sizeof dc->after) {
        http_send_error(cx, HUB_ERR_ARGUMENT_INVALID, "x-ms-continuation is too long");
        return;
    }
    snprintf(dc->after, sizeof dc->after, "%s", after ? after : "");
    dc->max = (size_t)max + 1;
    http_run(cx, query_run, query_done, HUB_WORK_SNAPSHOT);
}

static void setup(http_ctx *cx)
{
    dps_ctx *dc = (dps_ctx *)cx;
    cx->cleanup = dps_cleanup;
    const char *top = cx->segments[0];
    dc->registrations = strcasecmp(top, "registrations") == 0;
    dc->kind = strcasecmp(top, "enrollmentGroups") == 0 ? HUB_DPS_GROUP : HUB_DPS_INDIVIDUAL;
    dc->what = dc->registrations           ? "registration"
               : dc->kind == HUB_DPS_GROUP ? "enrollment group"
                                           : "enrollment";
    dc->id = cx->nsegments >= 2 ? cx->segments[1] : "";
}

/* GET, PUT, DELETE of one enrollment, group or registration record. */
static void dps_one(http_ctx *cx)
{
    dps_ctx *dc = (dps_ctx *)cx;
    setup(cx);
    if (cx->method == HTTPD_GET) {
        http_run(cx, get_run, get_done, HUB_WORK_READ);
        return;
    }
    if (cx->method == HTTPD_DELETE) {
        if (if_match(cx, NULL, &dc->match))
            http_run(cx, delete_run, delete_done, 0);
        return;
    }
    dc->body = http_body_json(cx); /* PUT of an enrollment or group */
    if (dc->body && if_match(cx, dc->body, &dc->match))
        http_run(cx, put_run, put_done, HUB_WORK_GROWS);
}

static void dps_mechanism(http_ctx *cx)
{
    setup(cx);
    http_run(cx, get_run, mechanism_done, HUB_WORK_READ);
}

static void dps_query(http_ctx *cx)
{
    dps_ctx *dc = (dps_ctx *)cx;
    setup(cx);
    dc->group = dc->registrations ? cx->segments[1] : NULL;
    start_query(dc);
}

static void dps_bulk(http_ctx *cx)
{
    http_send_error(cx, HUB_ERR_ARGUMENT_INVALID, "bulk enrollment operations are not served yet");
}

/* GET /iotdm/dps: what a device needs besides its credentials. Azure names the ID scope only in its
 * management API, which the hub does not serve; with this the dashboard and the CLI need not be
 * told it out of band. */
static void dps_info(http_ctx *cx)
{
    http_send_json(cx, 200,
                   json_pack("{s:s, s:s}", "idScope", hub_dps_id_scope(cx->h), "globalEndpoint",
                             cx->h->cfg.hostname));
}

#define READ  HUB_RIGHT_ENROLLMENT_READ
#define WRITE HUB_RIGHT_ENROLLMENT_WRITE
#define ROUTE(pattern, methods, rights, body, handler)                                             \
    {                                                                                              \
        pattern, methods, HTTP_AUTH_POLICY, rights, body, true, NULL, handler, sizeof(dps_ctx)     \
    }

const http_route http_dps_service_routes[] = {
    ROUTE("enrollments/query", HTTPD_POST, READ, HTTP_BODY_SMALL, dps_query),
    ROUTE("enrollmentGroups/query", HTTPD_POST, READ, HTTP_BODY_SMALL, dps_query),
    ROUTE("registrations/*/query", HTTPD_POST, READ, HTTP_BODY_SMALL, dps_query),
    ROUTE("enrollments", HTTPD_POST, WRITE, HTTP_BODY_JSON, dps_bulk),
    ROUTE("enrollments/*", HTTPD_GET, READ, HTTP_BODY_NONE, dps_one),
    ROUTE("enrollments/*", HTTPD_PUT | HTTPD_DELETE, WRITE, HTTP_BODY_JSON, dps_one),
    ROUTE("enrollmentGroups/*", HTTPD_GET, READ, HTTP_BODY_NONE, dps_one),
    ROUTE("enrollmentGroups/*", HTTPD_PUT | HTTPD_DELETE, WRITE, HTTP_BODY_JSON, dps_one),
    ROUTE("enrollments/*/attestationmechanism", HTTPD_POST, READ, HTTP_BODY_SMALL, dps_mechanism),
    ROUTE("enrollmentGroups/*/attestationmechanism", HTTPD_POST, READ, HTTP_BODY_SMALL,
          dps_mechanism),
    ROUTE("registrations/*", HTTPD_GET, READ, HTTP_BODY_NONE, dps_one),
    ROUTE("registrations/*", HTTPD_DELETE, WRITE, HTTP_BODY_NONE, dps_one),
    ROUTE("iotdm/dps", HTTPD_GET, READ, HTTP_BODY_NONE, dps_info),
    {NULL, 0, 0, 0, 0, false, NULL, NULL, 0},
};
