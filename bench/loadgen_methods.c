/* iotdm-loadgen methods scenario: direct-method calls at a fixed rate, round trips recorded.
 * Against the hub a call is POST /twins/{id}/methods over a small pool of HTTPS keep-alive
 * connections; against a plain broker it is a request PUBLISH answered on a response topic. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loadgen.h"

#define LG_METHOD_DRAIN_S 15 /* how long to wait for the last answers */

static bool is_hub(const lg_app *app)
{
    return app->o.broker == LG_BROKER_HUB;
}

static void http_answered(lg_app *app, void *ctx, int status, const char *body, size_t len)
{
    uint64_t id = (uint64_t)(uintptr_t)ctx;
    /* The device answers 200; the hub wraps it as {"status":200,"payload":...}. */
    if (status == 200 && !(body && len && strstr(body, "\"status\":200")))
        status = 502;
    lg_call_done(app, id, status);
}

static void send_http(lg_app *app, lg_http *c, uint64_t id)
{
    char devid[LG_ID_MAX], path[LG_ID_MAX + 64], body[160];
    lg_device_id(app, (int)(id % (uint64_t)app->o.devices), devid, sizeof devid);
    snprintf(path, sizeof path, "/twins/%s/methods?api-version=2021-04-12", devid);
    int n = snprintf(body, sizeof body,
                     "{\"methodName\":\"bench\",\"payload\":{\"n\":%" PRIu64 "},"
                     "\"responseTimeoutInSeconds\":10,\"connectTimeoutInSeconds\":0}",
                     id);
    lg_http_request(c, "POST", path, body, (size_t)n, http_answered, (void *)(uintptr_t)id);
}

/* Hands queued calls to idle connections. */
static void pump(lg_app *app)
{
    for (int i = 0; i < app->npool && app->queue_len > 0; i++) {
        if (lg_http_busy(app->pool[i]))
            continue;
        uint64_t id = app->queue[app->queue_head++];
        app->queue_len--;
        send_http(app, app->pool[i], id);
    }
}

static void issue(lg_app *app, uint64_t id)
{
    app->call_start[id] = lg_now_us();
    app->calls_issued++;
    if (!is_hub(app)) {
        lg_svc_call(app, (int)(id % (uint64_t)app->o.devices), id);
        return;
    }
    app->queue[app->queue_head + app->queue_len++] = id;
    pump(app);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void finish_calls(lg_app *app)
{
    if (app->call_timer) {
        event_free(app->call_timer);
        app->call_timer = NULL;
    }
    /* A call still unanswered counts with the time it has waited so far (a lower bound), so
     * that a server falling behind cannot improve its percentiles by not answering. */
    size_t answered = app->nlat;
    int64_t now = lg_now_us();
    for (uint64_t id = app->measured_from; id < app->measured_to; id++)
        if (id < app->calls_issued && app->call_start[id] != 0)
            app->lat_ms[app->nlat++] = (double)(now - app->call_start[id]) / 1000.0;
    qsort(app->lat_ms, app->nlat, sizeof *app->lat_ms, cmp_double);
    double sum = 0;
    for (size_t i = 0; i < app->nlat; i++)
        sum += app->lat_ms[i];
    uint64_t measured = app->measured_to - app->measured_from;
    double secs = (double)app->o.duration_s;
    printf("calls=%" PRIu64 "\n", app->calls_issued);
    printf("calls_measured=%" PRIu64 "\n", measured);
    printf("answered=%zu\n", answered);
    printf("failed=%" PRIu64 "\n", app->calls_failed);
    printf("unanswered=%" PRIu64 "\n", app->calls_issued - app->calls_done);
    printf("rate_target=%d\n", app->o.rate);
    printf("rate_achieved=%.1f\n", secs > 0 ? (double)measured / secs : 0.0);
    printf("lat_p50_ms=%.3f\n", lg_percentile(app->lat_ms, app->nlat, 50));
    printf("lat_p90_ms=%.3f\n", lg_percentile(app->lat_ms, app->nlat, 90));
    printf("lat_p99_ms=%.3f\n", lg_percentile(app->lat_ms, app->nlat, 99));
    printf("lat_max_ms=%.3f\n", app->nlat ? app->lat_ms[app->nlat - 1] : 0.0);
    printf("lat_mean_ms=%.3f\n", app->nlat ? sum / (double)app->nlat : 0.0);
    printf("timer_late_max_ms=%.3f\n", app->late_max_ms);
    if (app->calls_failed || app->calls_issued != app->calls_done || answered != measured)
        app->exit_code = 1;
    event_base_loopexit(app->base, NULL);
}

void lg_call_done(lg_app *app, uint64_t id, int status)
{
    if (id >= app->calls_issued || app->call_start[id] == 0)
        return; /* unknown or already answered */
    double ms = (double)(lg_now_us() - app->call_start[id]) / 1000.0;
    app->call_start[id] = 0;
    app->calls_done++;
    if (status != 200) {
        if (app->calls_failed++ < 5)
            fprintf(stderr, "loadgen: call %" PRIu64 " answered %d\n", id, status);
    } else if (id >= app->measured_from && id < app->measured_to) {
        app->lat_ms[app->nlat++] = ms;
    }
    if (is_hub(app))
        pump(app);
    if (app->calls_issued == app->calls_max && app->calls_done == app->calls_issued)
        finish_calls(app);
}

static void on_call_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lg_app *app = arg;
    if (app->calls_issued == app->calls_max) {
        fprintf(stderr, "loadgen: gave up waiting for %" PRIu64 " answers\n",
                app->calls_issued - app->calls_done);
        finish_calls(app);
        return;
    }
    int64_t now = lg_now_us();
    int64_t rate = app->o.rate;
    while (app->calls_issued < app->calls_max) {
        int64_t due = app->calls_start_us + (int64_t)app->calls_issued * 1000000 / rate;
        if (due > now)
            break;
        double late = (double)(now - due) / 1000.0;
        if (app->calls_issued >= app->measured_from && late > app->late_max_ms)
            app->late_max_ms = late;
        issue(app, app->calls_issued);
    }
    struct timeval tv = {LG_METHOD_DRAIN_S, 0};
    if (app->calls_issued < app->calls_max) {
        int64_t next = app->calls_start_us + (int64_t)app->calls_issued * 1000000 / rate;
        int64_t wait = next - lg_now_us();
        if (wait < 0)
            wait = 0;
        tv.tv_sec = (time_t)(wait / 1000000);
        tv.tv_usec = (suseconds_t)(wait % 1000000);
    }
    event_add(app->call_timer, &tv);
}

void lg_methods_start(lg_app *app)
{
    uint64_t rate = (uint64_t)app->o.rate;
    app->calls_max = rate * (uint64_t)(app->o.warmup_s + app->o.duration_s);
    app->measured_from = rate * (uint64_t)app->o.warmup_s;
    app->measured_to = app->calls_max;
    app->call_start = calloc(app->calls_max, sizeof *app->call_start);
    app->queue = calloc(app->calls_max, sizeof *app->queue);
    app->lat_ms = calloc(app->calls_max, sizeof *app->lat_ms);
    if (!app->call_start || !app->queue || !app->lat_ms)
        lg_fatal(app, "out of memory");
    if (is_hub(app)) {
        app->pool = calloc((size_t)app->o.pool, sizeof *app->pool);
        if (!app->pool)
            lg_fatal(app, "out of memory");
        for (int i = 0; i < app->o.pool; i++) {
            app->pool[i] = lg_http_new(app);
            if (!app->pool[i])
                lg_fatal(app, "cannot open HTTPS connection %d", i);
            app->npool++;
        }
    }
    app->call_timer = evtimer_new(app->base, on_call_timer, app);
    app->calls_start_us = lg_now_us();
    struct timeval now = {0, 0};
    event_add(app->call_timer, &now);
}
