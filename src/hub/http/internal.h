/* Shared by the HTTP route files: request context, responses in Azure's format, body parsing. */
#ifndef IOTDM_HUB_HTTP_INTERNAL_H
#define IOTDM_HUB_HTTP_INTERNAL_H

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/ssl.h>
#include <stdbool.h>

#include "hub/errors.h"
#include "hub/http/http.h"

#define HTTP_MAX_BODY         (1024 * 1024)
#define HTTP_MAX_SEGMENTS     40                 /* blob names have folders */
#define HTTP_MAX_UPLOAD       (16 * 1024 * 1024) /* largest file a device may upload */
#define HTTP_UPLOAD_CONTAINER "iotdm-files"

struct hub_http {
    hub *h;
    struct evhttp *http;
    struct hub_sse *sse; /* server-sent-event subscribers (events.c) */
};

/* One request, with its path split into decoded segments. */
typedef struct {
    hub_http *http;
    hub *h;
    struct evhttp_request *req;
    enum evhttp_cmd_type method;
    char *segments[HTTP_MAX_SEGMENTS];
    size_t nsegments;
    struct evkeyvalq query; /* decoded query parameters */
    char path_buf[2048];
    /* The DPS service API answers errors in DPS's form, {"errorCode":400004,"message",…}
     * (azure-protocols.md §3.4), not IoT Hub's {"Message":"ErrorCode:…"}. */
    bool dps_errors;
    /* Bulk operations collect per-item errors instead of answering: the last one is kept here. */
    bool quiet_errors;
    char last_error[512];
} http_ctx;

/* Responses. send_json takes the reference. */
void http_send_json(http_ctx *cx, int status, json_t *body);
void http_send_empty(http_ctx *cx, int status);
/* Azure's legacy error body (§4.1.6, §5.5) plus the iothub-errorcode header; DPS's body when
 * cx->dps_errors. */
void http_send_error(http_ctx *cx, hub_error_info e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void http_send_result_error(http_ctx *cx, iotdm_result r, const char *what);

/* Frees a request whose connection failed before we answered (long-lived replies). */
void http_release_orphan(struct evhttp_request *req);

/* The body as JSON; on failure an error was sent and NULL is returned. */
json_t *http_body_json(http_ctx *cx);
const char *http_header(http_ctx *cx, const char *name);
/* The TLS connection the request arrived on (its client certificate, if the client sent one). */
SSL *http_client_ssl(http_ctx *cx);
const char *http_query_param(http_ctx *cx, const char *name);
/* Checks the Authorization header for a policy with all of the rights; sends 401 and returns
 * false otherwise. */
bool http_authorize(http_ctx *cx, unsigned rights);

/* Fills d from a Device JSON body (§4.2); an update without "authentication" keeps the
 * credentials. On a bad field sends 400 (unless cx->quiet_errors) and returns false. */
bool http_device_from_json(http_ctx *cx, const json_t *body, bool is_update, hub_device *d);

/* Builds a cloud-to-device message from the extension's JSON body; returns a readable error or
 * NULL. m is filled (hub_c2d_deinit it in both cases). */
const char *http_c2d_from_json(const json_t *body, const char *device_id, int64_t default_ttl,
                               hub_c2d *m);

/* Route handlers. Each one sends exactly one response (now or later). */
void http_devices(http_ctx *cx);        /* /devices, /devices/{id}, /devices/{id}/commands */
void http_devices_bulk(http_ctx *cx);   /* POST /devices: bulk create/update/delete */
void http_twins(http_ctx *cx);          /* /twins/{id} */
void http_methods(http_ctx *cx);        /* /twins/{id}/methods */
void http_query(http_ctx *cx);          /* /devices/query */
void http_statistics(http_ctx *cx);     /* /statistics/devices, /statistics/service */
void http_messages(http_ctx *cx);       /* /iotdm/devices/{id}/messages */
void http_events(http_ctx *cx);         /* /iotdm/events (server-sent events) */
void http_models(http_ctx *cx);         /* /iotdm/models[/{dtmi}] */
void http_files_device(http_ctx *cx);   /* POST /devices/{id}/files[/notifications[/{cid}]] */
void http_files_blob_put(http_ctx *cx); /* PUT /iotdm-files/{deviceId}/{name} */
void http_files_service(http_ctx *cx);  /* /iotdm/files[/{deviceId}/{name}] */
/* The signature of an upload SAS (files.c). */
bool http_upload_signature(hub *h, const char *cid, const char *blob, int64_t se, char out[45]);
void http_dps_device(http_ctx *cx);  /* /{idScope}/registrations/{regId}/... (DPS devices) */
void http_dps_service(http_ctx *cx); /* /enrollments, /enrollmentGroups, /registrations (DPS) */
void http_dps_info(http_ctx *cx);    /* /iotdm/dps: the ID scope and the global endpoint */
void http_static(http_ctx *cx);      /* the dashboard */

struct hub_sse *http_sse_new(hub_http *http);
void http_sse_free(struct hub_sse *sse);

#endif
