/* iotdm-loadgen method calls: direct-method calls at a fixed rate, round trips recorded, in
 * phases (the query and hostile scenarios run one phase without and one with their load).
 * Against the hub a call is POST /twins/{id}/methods over a small pool of HTTPS keep-alive
 * connections; against a plain broker it is a request PUBLISH answered on a response topic. */
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loadgen.h"

#define LG_METHOD_DRAIN_S 15 /* how long to wait for the last answers */

/* One phase. Call ids grow across phases, so a late answer from an earlier phase is told apart:
 * this phase's calls are first_id .. first_id + max - 1. */
struct lg_calls {
    const char *prefix;
    lg_phase_done done;
    uint64_t first_id;
    uint64_t max;
    uint64_t issued;
    uint64_t answered;
    uint64_t failed;
    uint64_t measured_from; /* first call (relative) after the warm-up */
    int64_t *start;         /* issue time of each call; 0 once answered */
    uint64_t *queue;        /* calls waiting for a free HTTPS connection (relative ids) */
    size_t queue_head;
    size_t queue_len;
    lg_samples lat;
    double late_max_ms;
    uint64_t reopened_before; /* app->pool_reopened when the phase began */
    int64_t start_us;
    struct event *timer;
};

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
    snprintf(path, sizeof path, "/twins/%s/methods?api-version=%s", devid, LG_API_VERSION);
    int n = snprintf(body, sizeof body,
                     "{\"methodName\":\"bench\",\"payload\":{\"n\":%" PRIu64 "},"
                     "\"responseTimeoutInSeconds\":10,\"connectTimeoutInSeconds\":0}",
                     id);
    lg_http_request(c, "POST", path, NULL, body, (size_t)n, http_answered, (void *)(uintptr_t)id);
}

/* Hands queued calls to idle connections, taking them in turn; a connection the server closed
 * is opened again (and counted). */
static void pump(lg_app *app, lg_calls *p)
{
    for (int tries = 0; tries < app->npool && p->queue_len > 0; tries++) {
        int i = app->pool_next;
        app->pool_next = (i + 1) % app->npool;
        if (lg_http_dead(app->pool[i])) {
            lg_http_free(app->pool[i]);
            if (!(app->pool[i] = lg_http_new(app)))
                lg_fatal(app, "cannot open HTTPS connection %d again", i);
            app->pool_reopened++;
        }
        if (lg_http_busy(app->pool[i]))
            continue;
        uint64_t rel = p->queue[p->queue_head++];
        p->queue_len--;
        send_http(app, app->pool[i], p->first_id + rel);
    }
}

static void issue(lg_app *app, lg_calls *p)
{
    uint64_t rel = p->issued++;
    p->start[rel] = lg_now_us();
    if (!is_hub(app)) {
        uint64_t id = p->first_id + rel;
        lg_svc_call(app, (int)(id % (uint64_t)app->o.devices), id);
        return;
    }
    p->queue[p->queue_head + p->queue_len++] = rel;
    pump(app, p);
}

static void print_phase(lg_app *app, lg_calls *p, size_t answered_in_window)
{
    const char *k = p->prefix;
    uint64_t measured = p->max - p->measured_from;
    double secs = (double)app->o.duration_s;
    printf("%scalls=%" PRIu64 "\n", k, p->issued);
    printf("%scalls_measured=%" PRIu64 "\n", k, measured);
    printf("%sanswered=%zu\n", k, answered_in_window);
    printf("%sfailed=%" PRIu64 "\n", k, p->failed);
    printf("%sunanswered=%" PRIu64 "\n", k, p->issued - p->answered);
    printf("%srate_target=%d\n", k, app->o.rate);
    printf("%srate_achieved=%.1f\n", k, secs > 0 ? (double)measured / secs : 0.0);
    lg_print_latency(k, "lat", &p->lat);
    printf("%stimer_late_max_ms=%.3f\n", k, p->late_max_ms);
    printf("%spool_reopened=%" PRIu64 "\n", k, app->pool_reopened - p->reopened_before);
    fflush(stdout);
}

static void finish_phase(lg_app *app, lg_calls *p)
{
    /* A call still unanswered counts with the time it has waited so far (a lower bound), so
     * that a server falling behind cannot improve its percentiles by not answering. */
    size_t answered = p->lat.n;
    int64_t now = lg_now_us();
    for (uint64_t rel = p->measured_from; rel < p->issued; rel++)
        if (p->start[rel] != 0 && !lg_samples_add(&p->lat, (double)(now - p->start[rel]) / 1e3))
            lg_fatal(app, "out of memory");
    print_phase(app, p, answered);
    if (p->failed || p->issued != p->answered || answered != p->max - p->measured_from)
        app->exit_code = 1;
    lg_phase_done done = p->done;
    app->calls = NULL;
    event_free(p->timer);
    free(p->start);
    free(p->queue);
    lg_samples_free(&p->lat);
    free(p);
    if (done)
        done(app);
    else
        event_base_loopexit(app->base, NULL);
}

void lg_call_done(lg_app *app, uint64_t id, int status)
{
    lg_calls *p = app->calls;
    if (!p || id < p->first_id || id - p->first_id >= p->issued)
        return; /* from an earlier phase, or unknown */
    uint64_t rel = id - p->first_id;
    if (p->start[rel] == 0)
        return; /* already answered */
    double ms = (double)(lg_now_us() - p->start[rel]) / 1000.0;
    p->start[rel] = 0;
    p->answered++;
    if (status != 200) {
        if (p->failed++ < 5)
            fprintf(stderr, "loadgen: call %" PRIu64 " answered %d\n", id, status);
    } else if (rel >= p->measured_from && !lg_samples_add(&p->lat, ms)) {
        lg_fatal(app, "out of memory");
    }
    if (is_hub(app))
        pump(app, p);
    if (p->issued == p->max && p->answered == p->issued)
        finish_phase(app, p);
}

static void on_call_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lg_app *app = arg;
    lg_calls *p = app->calls;
    if (p->issued == p->max) {
        fprintf(stderr, "loadgen: gave up waiting for %" PRIu64 " answers\n",
                p->issued - p->answered);
        finish_phase(app, p);
        return;
    }
    int64_t now = lg_now_us();
    int64_t rate = app->o.rate;
    while (p->issued < p->max) {
        int64_t due = p->start_us + (int64_t)p->issued * 1000000 / rate;
        if (due > now)
            break;
        double late = (double)(now - due) / 1000.0;
        if (p->issued >= p->measured_from && late > p->late_max_ms)
            p->late_max_ms = late;
        issue(app, p);
    }
    struct timeval tv = {LG_METHOD_DRAIN_S, 0};
    if (p->issued < p->max) {
        int64_t next = p->start_us + (int64_t)p->issued * 1000000 / rate;
        int64_t wait = next - lg_now_us();
        if (wait < 0)
            wait = 0;
        tv.tv_sec = (time_t)(wait / 1000000);
        tv.tv_usec = (suseconds_t)(wait % 1000000);
    }
    event_add(p->timer, &tv);
}

static void open_pool(lg_app *app)
{
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

void lg_calls_start(lg_app *app, const char *prefix, lg_phase_done done)
{
    if (is_hub(app) && !app->pool)
        open_pool(app);
    lg_calls *p = calloc(1, sizeof *p);
    uint64_t rate = (uint64_t)app->o.rate;
    if (!p)
        lg_fatal(app, "out of memory");
    p->prefix = prefix;
    p->done = done;
    p->reopened_before = app->pool_reopened;
    p->max = rate * (uint64_t)(app->o.warmup_s + app->o.duration_s);
    p->measured_from = rate * (uint64_t)app->o.warmup_s;
    p->first_id = app->next_call_id;
    app->next_call_id += p->max;
    p->start = calloc(p->max, sizeof *p->start);
    p->queue = calloc(p->max, sizeof *p->queue);
    p->timer = evtimer_new(app->base, on_call_timer, app);
    if (!p->start || !p->queue || !p->timer)
        lg_fatal(app, "out of memory");
    app->calls = p;
    p->start_us = lg_now_us();
    struct timeval now = {0, 0};
    event_add(p->timer, &now);
}

void lg_methods_start(lg_app *app)
{
    lg_calls_start(app, "", NULL);
}
