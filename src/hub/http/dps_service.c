/* DPS service API for azure-iot-provisioning-service (azure-protocols.md §3.10): enrollments,
 * enrollment groups, registration records, queries with paging, If-Match etags; and the
 * /iotdm/dps extension (ID scope, global endpoint). Errors are in DPS's form (§3.4). */
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

static void enrollment_put(http_ctx *cx, hub_dps_kind kind, const char *id, const char *what)
{
    json_t *body = http_body_json(cx);
    if (!body)
        return;
    uint64_t match;
    if (!if_match(cx, body, &match)) {
        json_decref(body);
        return;
    }
    json_t *old = NULL;
    hub_store_enrollment_get(cx->h->store, kind, id, &old, NULL);
    char err[256];
    json_t *doc = dps_enrollment_prepare(cx->h, kind, id, body, old, err, sizeof err);
    json_decref(old);
    json_decref(body);
    if (!doc) {
        http_send_error(cx, HUB_ERR_ARGUMENT_INVALID, "%s", err);
        return;
    }
    uint64_t etag = 0;
    iotdm_result r = hub_store_enrollment_put(cx->h->store, kind, id, doc, match, &etag);
    if (r == IOTDM_OK)
        r = hub_commit_now(cx->h);
    if (r < 0)
        send_store_error(cx, r, ERR_ENROLLMENT_NOT_FOUND, what, id);
    else
        http_send_json(cx, 200, dps_enrollment_view(doc, etag));
    json_decref(doc);
}

/* GET, PUT, DELETE of one enrollment or group; POST .../attestationmechanism. */
static void enrollment_one(http_ctx *cx, hub_dps_kind kind)
{
    const char *id = cx->segments[1];
    const char *what = kind == HUB_DPS_GROUP ? "enrollment group" : "enrollment";
    bool write = cx->method != EVHTTP_REQ_GET && cx->nsegments == 2;
    if (!http_authorize(cx, write ? HUB_RIGHT_ENROLLMENT_WRITE : HUB_RIGHT_ENROLLMENT_READ))
        return;
    if (cx->method == EVHTTP_REQ_PUT && cx->nsegments == 2) {
        enrollment_put(cx, kind, id, what);
        return;
    }
    json_t *doc = NULL;
    uint64_t etag = 0, match = 0;
    iotdm_result r;
    if (cx->method == EVHTTP_REQ_DELETE && cx->nsegments == 2) {
        if (!if_match(cx, NULL, &match))
            return;
        r = hub_store_enrollment_delete(cx->h->store, kind, id, match);
        if (r == IOTDM_OK)
            r = hub_commit_now(cx->h);
        if (r < 0)
            send_store_error(cx, r, ERR_ENROLLMENT_NOT_FOUND, what, id);
        else
            http_send_empty(cx, 204);
        return;
    }
    bool mechanism = cx->method == EVHTTP_REQ_POST && cx->nsegments == 3 &&
                     strcasecmp(cx->segments[2], "attestationmechanism") == 0;
    if (!(cx->method == EVHTTP_REQ_GET && cx->nsegments == 2) && !mechanism) {
        http_send_error(cx, HUB_ERR_NOT_FOUND, "no such operation on %ss", what);
        return;
    }
    r = hub_store_enrollment_get(cx->h->store, kind, id, &doc, &etag);
    if (r < 0) {
        send_store_error(cx, r, ERR_ENROLLMENT_NOT_FOUND, what, id);
        return;
    }
    json_t *view = dps_enrollment_view(doc, etag);
    json_decref(doc);
    if (mechanism) {
        json_t *att = json_incref(json_object_get(view, "attestation"));
        json_decref(view);
        view = att ? att : json_object();
    }
    http_send_json(cx, 200, view);
}

typedef struct {
    json_t *items;
    size_t max;
    bool registrations;
    char last[HUB_ID_MAX];
} page;

static bool add_item(void *ctx, const char *id, const json_t *doc, uint64_t etag)
{
    page *p = ctx;
    if (json_array_size(p->items) == p->max)
        return false;
    json_array_append_new(p->items, p->registrations ? dps_registration_view(doc, etag)
                                                     : dps_enrollment_view(doc, etag));
    snprintf(p->last, sizeof p->last, "%s", id);
    return true;
}

/* POST .../query: every item in id order; x-ms-max-item-count pages, x-ms-continuation is the last
 * id of the previous page. Only the query "SELECT *" exists for DPS, so the text is not parsed. */
static void query(http_ctx *cx, int what, const char *group)
{
    if (!http_authorize(cx, HUB_RIGHT_ENROLLMENT_READ))
        return;
    const char *max_h = http_header(cx, "x-ms-max-item-count");
    const char *after = http_header(cx, "x-ms-continuation");
    long max = max_h ? strtol(max_h, NULL, 10) : QUERY_PAGE_DEFAULT;
    if (max <= 0 || max > QUERY_PAGE_MAX)
        max = max <= 0 ? QUERY_PAGE_DEFAULT : QUERY_PAGE_MAX;
    page p = {json_array(), (size_t)max + 1, what < 0, ""};
    iotdm_result r =
        what < 0 ? hub_store_registration_foreach(cx->h->store, group, after, p.max, add_item, &p)
                 : hub_store_enrollment_foreach(cx->h->store, (hub_dps_kind)what, after, p.max,
                                                add_item, &p);
    if (r < 0) {
        json_decref(p.items);
        http_send_result_error(cx, r, "query");
        return;
    }
    struct evkeyvalq *out = evhttp_request_get_output_headers(cx->req);
    if (json_array_size(p.items) > (size_t)max) {
        /* One more than a page was read: there is a next page, starting after the last shown. */
        json_array_remove(p.items, (size_t)max);
        json_t *last = json_array_get(p.items, (size_t)max - 1);
        const char *id = json_string_value(
            json_object_get(last, what == HUB_DPS_GROUP ? "enrollmentGroupId" : "registrationId"));
        evhttp_add_header(out, "x-ms-continuation", id ? id : "");
    }
    evhttp_add_header(out, "x-ms-item-type",
                      what < 0                ? "DeviceRegistration"
                      : what == HUB_DPS_GROUP ? "EnrollmentGroup"
                                              : "Enrollment");
    http_send_json(cx, 200, p.items);
}

static void registration_one(http_ctx *cx)
{
    const char *id = cx->segments[1];
    if (cx->method == EVHTTP_REQ_POST && cx->nsegments == 3 &&
        strcmp(cx->segments[2], "query") == 0) {
        query(cx, -1, id);
        return;
    }
    bool del = cx->method == EVHTTP_REQ_DELETE;
    if ((!del && cx->method != EVHTTP_REQ_GET) || cx->nsegments != 2) {
        http_send_error(cx, HUB_ERR_NOT_FOUND, "no such operation on registrations");
        return;
    }
    if (!http_authorize(cx, del ? HUB_RIGHT_ENROLLMENT_WRITE : HUB_RIGHT_ENROLLMENT_READ))
        return;
    uint64_t etag = 0, match = 0;
    json_t *doc = NULL;
    iotdm_result r;
    if (del) {
        if (!if_match(cx, NULL, &match))
            return;
        r = hub_store_registration_delete(cx->h->store, id, match);
        if (r == IOTDM_OK)
            r = hub_commit_now(cx->h);
    } else {
        r = hub_store_registration_get(cx->h->store, id, &doc, &etag);
    }
    if (r < 0)
        send_store_error(cx, r, ERR_REGISTRATION_NOT_FOUND, "registration", id);
    else if (del)
        http_send_empty(cx, 204);
    else
        http_send_json(cx, 200, dps_registration_view(doc, etag));
    json_decref(doc);
}

void http_dps_service(http_ctx *cx)
{
    cx->dps_errors = true;
    const char *top = cx->segments[0];
    bool groups = strcasecmp(top, "enrollmentGroups") == 0;
    bool post = cx->method == EVHTTP_REQ_POST;
    if (strcmp(top, "registrations") == 0 && cx->nsegments >= 2) {
        registration_one(cx);
    } else if (cx->nsegments == 2 && post && strcmp(cx->segments[1], "query") == 0) {
        query(cx, groups ? HUB_DPS_GROUP : HUB_DPS_INDIVIDUAL, NULL);
    } else if (cx->nsegments == 1 && post && !groups && strcmp(top, "registrations") != 0) {
        if (http_authorize(cx, HUB_RIGHT_ENROLLMENT_WRITE))
            http_send_error(cx, HUB_ERR_ARGUMENT_INVALID,
                            "bulk enrollment operations are not served yet");
    } else if (cx->nsegments >= 2 && strcmp(top, "registrations") != 0) {
        enrollment_one(cx, groups ? HUB_DPS_GROUP : HUB_DPS_INDIVIDUAL);
    } else {
        http_send_error(cx, HUB_ERR_NOT_FOUND, "no such provisioning service operation");
    }
}

/* GET /iotdm/dps: what a device needs besides its credentials. Azure names the ID scope only in its
 * management API, which the hub does not serve; with this the dashboard and the CLI need not be
 * told it out of band. */
void http_dps_info(http_ctx *cx)
{
    cx->dps_errors = true;
    if (!http_authorize(cx, HUB_RIGHT_ENROLLMENT_READ))
        return;
    if (cx->method != EVHTTP_REQ_GET || cx->nsegments != 2) {
        http_send_error(cx, HUB_ERR_NOT_FOUND, "no such provisioning service operation");
        return;
    }
    http_send_json(cx, 200,
                   json_pack("{s:s, s:s}", "idScope", hub_dps_id_scope(cx->h), "globalEndpoint",
                             cx->h->cfg.hostname));
}
