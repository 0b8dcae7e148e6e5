/* iotdm-loadgen hostile scenario: legitimate devices (QoS 1 telemetry at a steady
 * --telemetry-rate, direct methods at --rate) measured without attackers (keys base_*), then
 * with them (keys load_*). The attackers run in a child process (`iotdm-loadgen attack`,
 * loadgen_attack.c) so that their work never delays this process's clocks; the child prints its
 * own figures (atk_*) when it is stopped. Also prints the hub's VmRSS before, during and after,
 * and how its refusal counters (GET /iotdm/stats) moved. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loadgen.h"

#define LG_PACE_US       5000 /* telemetry timer period */
#define LG_REFUSALS_MAX  32
#define LG_AFTER_S       3 /* wait after the attackers stop before the last memory sample */
#define LG_CHILD_WAIT_MS 5000

extern char **environ;

typedef struct {
    char name[40];
    long long value;
} refusal_count;

/* The scenario's state: one run per process. */
static struct {
    lg_samples tel; /* PUBACK latency of the messages sent in the measured window */
    int64_t window_from_us;
    int64_t window_to_us;
    uint64_t tel_blocked; /* messages not sent: their device had a full window */
    struct event *pace;
    int64_t pace_start_us;
    uint64_t paced;
    pid_t child;
    lg_rss_watch rss;
    long rss_start_kb;
    long rss_base_kb;
    lg_http *stats_conn;
    refusal_count before[LG_REFUSALS_MAX];
    int nbefore;
} h;

static void on_puback(lg_app *app, int64_t sent_us)
{
    if (sent_us < h.window_from_us || sent_us >= h.window_to_us)
        return;
    if (!lg_samples_add(&h.tel, (double)(lg_now_us() - sent_us) / 1e3))
        lg_fatal(app, "out of memory");
}

static void on_pace(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lg_app *app = arg;
    int64_t elapsed = lg_now_us() - h.pace_start_us;
    uint64_t due = (uint64_t)(elapsed * app->o.telemetry_rate / 1000000);
    if (due > h.paced) {
        h.tel_blocked += (uint64_t)lg_devs_send_paced(app, (int)(due - h.paced));
        h.paced = due;
    }
}

/* Sets the telemetry window to the measured part of the calls phase starting now. */
static void open_window(lg_app *app)
{
    h.window_from_us = lg_now_us() + (int64_t)app->o.warmup_s * 1000000;
    h.window_to_us = h.window_from_us + (int64_t)app->o.duration_s * 1000000;
    h.tel_blocked = 0;
}

static void close_window(lg_app *app, const char *prefix)
{
    /* Unacknowledged at the end: counted with the time waited so far (a lower bound). */
    lg_devs_each_pending(app, on_puback);
    lg_print_latency(prefix, "puback", &h.tel);
    printf("%stelemetry_rate_target=%d\n", prefix, app->o.telemetry_rate);
    printf("%stelemetry_blocked=%" PRIu64 "\n", prefix, h.tel_blocked);
    printf("%slegit_dropped=%d\n", prefix, app->dropped);
    fflush(stdout);
    lg_samples_free(&h.tel);
    if (app->dropped)
        app->exit_code = 1;
}

/* ---- refusal counters ------------------------------------------------------------------------ */

/* Reads "refused":{"name":N,...} out of the /iotdm/stats answer. */
static int parse_refusals(const char *body, refusal_count *out, int cap)
{
    const char *p = body ? strstr(body, "\"refused\"") : NULL;
    p = p ? strchr(p, '{') : NULL;
    int n = 0;
    while (p && *p != '}' && n < cap) {
        const char *name = strchr(p, '"');
        const char *end = name ? strchr(name + 1, '"') : NULL;
        const char *close = strchr(p, '}');
        if (!end || !close || name > close)
            break;
        size_t len = (size_t)(end - name - 1);
        if (len >= sizeof out[n].name)
            len = sizeof out[n].name - 1;
        memcpy(out[n].name, name + 1, len);
        out[n].name[len] = '\0';
        const char *colon = strchr(end, ':');
        out[n].value = colon ? strtoll(colon + 1, (char **)&p, 10) : 0;
        n++;
        if (!colon)
            break;
    }
    return n;
}

static void stats_after(lg_app *app, void *ctx, int status, const char *body, size_t len)
{
    (void)ctx;
    (void)len;
    refusal_count now[LG_REFUSALS_MAX];
    int n = status == 200 ? parse_refusals(body, now, LG_REFUSALS_MAX) : 0;
    if (status != 200) {
        fprintf(stderr, "loadgen: GET /iotdm/stats after the attack answered %d\n", status);
        app->exit_code = 1;
    }
    long long total = 0;
    for (int i = 0; i < n; i++) {
        long long was = 0;
        for (int k = 0; k < h.nbefore; k++)
            if (strcmp(h.before[k].name, now[i].name) == 0)
                was = h.before[k].value;
        printf("refused_%s=%lld\n", now[i].name, now[i].value - was);
        total += now[i].value - was;
    }
    printf("refused_total=%lld\n", status == 200 ? total : -1LL);
    fflush(stdout);
    lg_http_free(h.stats_conn);
    h.stats_conn = NULL;
}

static void fetch_stats(lg_app *app, lg_http_cb cb)
{
    char path[64];
    snprintf(path, sizeof path, "/iotdm/stats?api-version=%s", LG_API_VERSION);
    if (!h.stats_conn && !(h.stats_conn = lg_http_new(app)))
        lg_fatal(app, "cannot open an HTTPS connection for /iotdm/stats");
    lg_http_request(h.stats_conn, "GET", path, NULL, "", 0, cb, NULL);
}

/* ---- the attackers' process ------------------------------------------------------------------ */

static void spawn_attackers(lg_app *app)
{
    const lg_opts *o = &app->o;
    char port[16], https[16], atk[16], flood[16], first[16], trickle[16];
    snprintf(port, sizeof port, "%d", o->port);
    snprintf(https, sizeof https, "%d", o->https_port);
    snprintf(atk, sizeof atk, "%d", o->attackers);
    snprintf(flood, sizeof flood, "%d", o->flooders);
    /* The child counts device indexes from 0: pass where the twin-flood devices really are. */
    snprintf(first, sizeof first, "%d",
             o->first + (o->attacker_first >= 0 ? o->attacker_first : o->devices));
    snprintf(trickle, sizeof trickle, "%d", o->trickle_ms);
    /* The same server and keys; an option whose value is NULL is left out. */
    const char *pairs[][2] = {
        {"--host", o->host},
        {"--port", port},
        {"--https-port", https},
        {"--ca", o->ca},
        {"--connstr-file", o->connstr_file},
        {"--hub-name", o->hub_name},
        {"--prefix", o->prefix},
        {"--device-key", o->device_key},
        {"--attackers", atk},
        {"--flooders", flood},
        {"--attacker-first", first},
        {"--trickle-ms", trickle},
        {"--attack-kinds", o->attack_kinds},
        {"--duration", "86400"}, /* until stop_attackers(), however long the phases take */
    };
    char *argv[2 + 2 * sizeof pairs / sizeof pairs[0] + 1] = {"iotdm-loadgen", "attack"};
    size_t n = 2;
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
        if (pairs[i][1]) {
            argv[n++] = (char *)pairs[i][0];
            argv[n++] = (char *)pairs[i][1];
        }
    argv[n] = NULL;
    fflush(stdout);
    int e = posix_spawn(&h.child, "/proc/self/exe", NULL, NULL, argv, environ);
    if (e != 0)
        lg_fatal(app, "cannot start the attackers: %s", strerror(e));
}

/* Stops the attackers; false if they had ended before (the measured phase was not all under
 * attack). */
static bool stop_attackers(void)
{
    if (h.child <= 0)
        return false;
    int st;
    if (waitpid(h.child, &st, WNOHANG) == h.child) {
        h.child = 0;
        return false;
    }
    kill(h.child, SIGTERM);
    for (int ms = 0; ms < LG_CHILD_WAIT_MS; ms += 10) {
        if (waitpid(h.child, &st, WNOHANG) == h.child) {
            h.child = 0;
            return true;
        }
        usleep(10000);
    }
    fprintf(stderr, "loadgen: the attackers did not stop; killing them\n");
    kill(h.child, SIGKILL);
    waitpid(h.child, &st, 0);
    h.child = 0;
    return true;
}

/* ---- phases ---------------------------------------------------------------------------------- */

static void last_sample(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lg_app *app = arg;
    if (app->o.server_pid > 0)
        printf("server_rss_after_kb=%ld\n", lg_read_rss_kb(app->o.server_pid));
    if (h.stats_conn) /* the stats answer has not come: the hub is not answering */
        app->exit_code = 1;
    event_base_loopexit(app->base, NULL);
}

static void load_done(lg_app *app)
{
    close_window(app, "load_");
    if (app->o.server_pid > 0) {
        printf("server_rss_before_kb=%ld\n", h.rss_start_kb);
        printf("server_rss_base_end_kb=%ld\n", h.rss_base_kb);
        printf("server_rss_attack_end_kb=%ld\n", lg_read_rss_kb(app->o.server_pid));
        printf("server_rss_max_kb=%ld\n", lg_rss_watch_stop(&h.rss));
    }
    if (!stop_attackers()) {
        fprintf(stderr, "loadgen: the attackers had stopped before the end of the phase\n");
        printf("attackers_ended_early=1\n");
        app->exit_code = 1;
    }
    event_free(h.pace);
    fetch_stats(app, stats_after);
    struct timeval tv = {LG_AFTER_S, 0};
    event_base_once(app->base, -1, EV_TIMEOUT, last_sample, app, &tv);
}

static void attack_ramped(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lg_app *app = arg;
    fprintf(stderr, "loadgen: measuring with the attackers\n");
    open_window(app);
    lg_calls_start(app, "load_", load_done);
}

static void base_done(lg_app *app)
{
    close_window(app, "base_");
    h.rss_base_kb = app->o.server_pid > 0 ? lg_read_rss_kb(app->o.server_pid) : -1;
    lg_rss_watch_start(app, &h.rss, app->o.server_pid);
    fprintf(stderr, "loadgen: starting the attackers\n");
    spawn_attackers(app);
    struct timeval tv = {app->o.attack_ramp_s, 0};
    event_base_once(app->base, -1, EV_TIMEOUT, attack_ramped, app, &tv);
}

static void stats_before(lg_app *app, void *ctx, int status, const char *body, size_t len)
{
    (void)ctx;
    (void)len;
    if (status != 200)
        lg_fatal(app, "GET /iotdm/stats answered %d", status);
    h.nbefore = parse_refusals(body, h.before, LG_REFUSALS_MAX);
    lg_http_free(h.stats_conn); /* a fresh one at the end: this one may idle out */
    h.stats_conn = NULL;
    printf("telemetry_rate=%d\n", app->o.telemetry_rate);
    printf("attackers_per_kind=%d\n", app->o.attackers);
    printf("flooders=%d\n", app->o.flooders);
    h.rss_start_kb = app->o.server_pid > 0 ? lg_read_rss_kb(app->o.server_pid) : -1;
    h.pace = event_new(app->base, -1, EV_PERSIST, on_pace, app);
    struct timeval tv = {0, LG_PACE_US};
    if (!h.pace || event_add(h.pace, &tv) < 0)
        lg_fatal(app, "cannot start the telemetry timer");
    h.pace_start_us = lg_now_us();
    fprintf(stderr, "loadgen: measuring without attackers\n");
    open_window(app);
    lg_calls_start(app, "base_", base_done);
}

void lg_hostile_start(lg_app *app)
{
    app->on_puback = on_puback;
    fetch_stats(app, stats_before);
}
