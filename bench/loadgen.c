/* iotdm-loadgen: Azure-device-protocol load generator (one process, one libevent loop, thousands
 * of TLS connections) for iotdm-hub and, as a baseline, a plain MQTT broker. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "loadgen.h"
#include "common/connstr.h"
#include "common/sas.h"

int64_t lg_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void lg_fatal(lg_app *app, const char *fmt, ...)
{
    (void)app;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "loadgen: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    printf("error=1\n");
    fflush(stdout);
    _exit(1); /* thousands of live TLS connections: let the kernel close them */
}

void lg_device_id(const lg_app *app, int index, char *out, size_t cap)
{
    if (index < 0)
        snprintf(out, cap, "%ssvc", app->o.prefix);
    else
        snprintf(out, cap, "%s%d", app->o.prefix, app->o.first + index);
}

static void print_connect_figures(lg_app *app)
{
    double secs = (double)(app->connect_end_us - app->connect_start_us) / 1e6;
    printf("connected=%d\n", app->connected);
    printf("failed=%d\n", app->failed);
    printf("connack_refused=%d\n", app->connack_refused);
    printf("connect_seconds=%.2f\n", secs);
    printf("connect_rate=%.0f\n", secs > 0 ? app->connected / secs : 0.0);
    fflush(stdout);
}

/* ---- idle ------------------------------------------------------------------------------------ */

static long rss_before_kb;

static void idle_done(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lg_app *app = arg;
    int still = lg_devs_count_ready(app);
    printf("still_connected=%d\n", still);
    printf("dropped=%d\n", app->dropped);
    printf("loadgen_rss_kb=%ld\n", lg_read_rss_kb(0));
    if (app->connected < app->o.devices || still < app->connected)
        app->exit_code = 1;
    event_base_loopexit(app->base, NULL);
}

static void idle_sample(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lg_app *app = arg;
    if (app->o.server_pid > 0) {
        long after = lg_read_rss_kb(app->o.server_pid);
        printf("server_rss_before_kb=%ld\n", rss_before_kb);
        printf("server_rss_after_kb=%ld\n", after);
        if (app->connected > 0 && after >= 0 && rss_before_kb >= 0)
            printf("server_bytes_per_conn=%.0f\n",
                   (double)(after - rss_before_kb) * 1024.0 / app->connected);
    }
    printf("ready=1\n");
    fflush(stdout);
    int rest = app->o.hold_s - app->o.settle_s;
    struct timeval tv = {rest > 0 ? rest : 0, 0};
    event_base_once(app->base, -1, EV_TIMEOUT, idle_done, app, &tv);
}

static void on_keepalive(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lg_devs_ping_all(arg);
}

/* ---- telemetry and reported ------------------------------------------------------------------ */

/* Where the CPU went in the measured phase: a rate bound by the generator (100 % of a core)
 * says nothing of the server, and CPU per message compares servers whatever bound the rate. */
static void print_cpu_figures(lg_app *app, double messages)
{
    if (app->cpu0_us == 0)
        return; /* no warm-up: no snapshot at the start of the phase (on_tick) */
    double hz = (double)sysconf(_SC_CLK_TCK);
    double wall_s = (double)(lg_now_us() - app->cpu0_us) / 1e6;
    long self = lg_read_cpu_ticks(0);
    if (app->cpu0_self >= 0 && self >= 0 && wall_s > 0)
        printf("loadgen_cpu_pct=%.0f\n", (double)(self - app->cpu0_self) / hz / wall_s * 100);
    long server = app->o.server_pid > 0 ? lg_read_cpu_ticks(app->o.server_pid) : -1;
    if (app->cpu0_server < 0 || server < 0 || wall_s <= 0 || messages <= 0)
        return;
    double server_s = (double)(server - app->cpu0_server) / hz;
    printf("server_cpu_pct=%.0f\n", server_s / wall_s * 100);
    printf("server_cpu_us_per_msg=%.2f\n", server_s / messages * 1e6);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lg_app *app = arg;
    app->elapsed_s++;
    if (app->elapsed_s <= app->o.warmup_s)
        app->acks.current = 0;
    else
        lg_series_close_interval(&app->acks);
    if (app->elapsed_s == app->o.warmup_s) {
        app->cpu0_server = app->o.server_pid > 0 ? lg_read_cpu_ticks(app->o.server_pid) : -1;
        app->cpu0_self = lg_read_cpu_ticks(0);
        app->cpu0_us = lg_now_us();
    }
    if (app->elapsed_s < app->o.warmup_s + app->o.duration_s)
        return;
    app->running = false;
    event_del(app->tick);
    double sum = 0;
    for (size_t i = 0; i < app->acks.n; i++)
        sum += app->acks.values[i];
    print_cpu_figures(app, sum);
    printf("intervals=%zu\n", app->acks.n);
    printf("rate_median=%.0f\n", lg_median(app->acks.values, app->acks.n));
    printf("rate_mean=%.0f\n", app->acks.n ? sum / (double)app->acks.n : 0.0);
    printf("acked=%" PRIu64 "\n", app->acks.total);
    printf("errors=%" PRIu64 "\n", app->errors);
    printf("dropped=%d\n", app->dropped);
    if (app->errors || app->dropped || app->connected < app->o.devices)
        app->exit_code = 1;
    event_base_loopexit(app->base, NULL);
}

/* ---- orchestration --------------------------------------------------------------------------- */

void lg_on_all_connected(lg_app *app)
{
    print_connect_figures(app);
    if (app->connected == 0)
        lg_fatal(app, "no connection succeeded");
    switch (app->o.scenario) {
    case LG_IDLE: {
        struct timeval settle = {app->o.settle_s, 0}, ka = {app->o.keepalive_s / 2, 0};
        event_base_once(app->base, -1, EV_TIMEOUT, idle_sample, app, &settle);
        struct event *ping = event_new(app->base, -1, EV_PERSIST, on_keepalive, app);
        event_add(ping, &ka);
        break;
    }
    case LG_TELEMETRY:
    case LG_REPORTED: {
        app->running = true;
        struct timeval one = {1, 0};
        app->tick = event_new(app->base, -1, EV_PERSIST, on_tick, app);
        event_add(app->tick, &one);
        lg_devs_start_publishing(app);
        break;
    }
    case LG_METHODS:
        if (app->o.broker == LG_BROKER_HUB)
            lg_methods_start(app);
        else if (!(app->svc = lg_svc_new(app)))
            lg_fatal(app, "out of memory");
        break;
    case LG_QUERY:
        lg_query_start(app);
        break;
    case LG_HOSTILE:
        lg_hostile_start(app);
        break;
    case LG_REGISTER:
    case LG_ATTACK:
        break;
    }
}

static void registered(lg_app *app, bool ok)
{
    printf("registered=%d\n", ok ? app->o.devices : 0);
    if (!ok)
        app->exit_code = 1;
    event_base_loopexit(app->base, NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    lg_app *app = arg;
    if (app->o.scenario == LG_ATTACK) {
        lg_attack_stop(app); /* the way a run of attackers is meant to end */
        return;
    }
    fprintf(stderr, "loadgen: signal %d, stopping\n", (int)sig);
    app->exit_code = 1;
    event_base_loopbreak(app->base);
}

static void read_connstr(lg_app *app)
{
    lg_opts *o = &app->o;
    char buf[2048];
    FILE *f = fopen(o->connstr_file, "r");
    if (!f)
        lg_fatal(app, "%s: %s", o->connstr_file, strerror(errno));
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    char host[LG_HOST_MAX];
    if (!connstr_get(buf, "SharedAccessKey", o->owner_key, sizeof o->owner_key) ||
        !connstr_get(buf, "SharedAccessKeyName", o->owner_policy, sizeof o->owner_policy) ||
        !connstr_get(buf, "HostName", host, sizeof host))
        lg_fatal(app, "%s: not a service connection string", o->connstr_file);
    if (!o->hub_name[0])
        snprintf(o->hub_name, sizeof o->hub_name, "%s", host);
}

int main(int argc, char **argv)
{
    static lg_app app;
    lg_parse_args(&app, argc, argv);
    signal(SIGPIPE, SIG_IGN);
    if (app.o.connstr_file)
        read_connstr(&app);
    lg_prepare_sockets(&app);

    struct event_config *cfg = event_config_new();
    event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
    app.base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    app.ssl = lg_client_tls(app.o.ca);
    if (!app.base || !app.ssl)
        lg_fatal(&app, "cannot set up the event loop or TLS (CA file %s)", app.o.ca);
    struct event *sigint = evsignal_new(app.base, SIGINT, on_signal, &app);
    struct event *sigterm = evsignal_new(app.base, SIGTERM, on_signal, &app);
    event_add(sigint, NULL);
    event_add(sigterm, NULL);

    if (app.o.owner_key[0]) {
        int64_t expiry = (int64_t)time(NULL) + 24 * 3600;
        if (sas_build_token(app.o.hub_name, app.o.owner_key, app.o.owner_policy, expiry, app.auth,
                            sizeof app.auth) < 0)
            lg_fatal(&app, "cannot sign the service token");
    }
    printf("scenario=%s\n", lg_scenario_names[app.o.scenario]);
    printf("broker=%s\n", app.o.broker == LG_BROKER_HUB ? "hub" : "mosquitto");
    printf("devices=%d\n", app.o.devices);
    fflush(stdout);

    if (app.o.scenario == LG_REGISTER) {
        lg_register_devices(&app, registered);
    } else if (app.o.scenario == LG_ATTACK) {
        lg_attack_start(&app);
    } else {
        app.devs = lg_devs_new(&app, app.o.devices);
        if (!app.devs)
            lg_fatal(&app, "out of memory");
        rss_before_kb = app.o.server_pid ? lg_read_rss_kb(app.o.server_pid) : -1;
        app.connect_start_us = lg_now_us();
        lg_devs_connect_more(&app);
    }
    event_base_dispatch(app.base);
    fflush(stdout);
    /* Thousands of TLS connections: the kernel closes them faster than we would free them. */
    _exit(app.exit_code);
}
