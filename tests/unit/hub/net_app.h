/* A scriptable application for the HTTP server tests: answers, holds or streams requests as a
 * test sets it up, and records what the server told it. */
#ifndef IOTDM_TEST_NET_APP_H
#define IOTDM_TEST_NET_APP_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub/net/httpd.h"

typedef struct {
    /* behaviour */
    int refuse_status; /* answer this in on_headers (e.g. 401) */
    size_t max_body;   /* otherwise admit with this limit */
    bool long_body;    /* with the upload timeout */
    bool hold;         /* on_request keeps the request unanswered (app.held) */
    bool stream;       /* on_request starts a stream and keeps it open (app.held) */
    bool authenticate; /* on_headers calls httpd_req_authenticated */
    size_t reply_size; /* on_request answers this many bytes ('r') instead of "ok" */
    /* observations */
    int headers, requests, aborts, drains;
    httpd_req *held; /* cleared by on_abort, as a real application must */
    char path[256], query[256], method[16], target[256];
    char body[4096];
    size_t body_len;
    int abort_was_held; /* on_abort came for the held request */
} test_app;

static inline void app_on_headers(void *arg, httpd_req *req, httpd_admit *out)
{
    test_app *a = arg;
    a->headers++;
    snprintf(a->path, sizeof a->path, "%s", httpd_req_path(req));
    snprintf(a->target, sizeof a->target, "%s", httpd_req_target(req));
    const char *q = httpd_req_query(req);
    snprintf(a->query, sizeof a->query, "%s", q ? q : "(none)");
    snprintf(a->method, sizeof a->method, "%s", httpd_req_method_name(req));
    if (a->authenticate)
        httpd_req_authenticated(req);
    if (a->refuse_status) {
        httpd_respond(req, a->refuse_status, "no", 2);
        out->answered = true;
        return;
    }
    out->max_body = a->max_body;
    out->long_body = a->long_body;
}

static inline void app_on_request(void *arg, httpd_req *req)
{
    test_app *a = arg;
    a->requests++;
    size_t len;
    const char *body = httpd_req_body(req, &len);
    a->body_len = len;
    memcpy(a->body, body, len < sizeof a->body ? len : sizeof a->body - 1);
    a->body[len < sizeof a->body ? len : sizeof a->body - 1] = '\0';
    if (a->hold) {
        a->held = req;
        return;
    }
    if (a->stream) {
        a->held = req;
        httpd_stream_start(req, 200, NULL, NULL);
        return;
    }
    if (a->reply_size) {
        char *r = malloc(a->reply_size);
        memset(r, 'r', a->reply_size);
        httpd_respond(req, 200, r, a->reply_size);
        free(r);
        return;
    }
    char reply[300];
    int n = snprintf(reply, sizeof reply, "ok:%s", a->path);
    httpd_respond(req, 200, reply, (size_t)n);
}

static inline void app_on_abort(void *arg, httpd_req *req)
{
    test_app *a = arg;
    a->aborts++;
    if (req == a->held) {
        a->abort_was_held++;
        a->held = NULL;
    }
}

static inline httpd_callbacks app_callbacks(void)
{
    httpd_callbacks cb = {app_on_headers, app_on_request, app_on_abort};
    return cb;
}

#endif
