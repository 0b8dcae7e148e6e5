/* iotdm-loadgen attack scenario: the attackers of the hostile mix, --attackers connections of each
 * kind (--flooders for the unauthenticated loop), each reopened as soon as the hub closes it,
 * until SIGTERM or --duration. Each kind connects from its own source address (127.0.1.K) so
 * that per-source limits meet the attackers, not the legitimate devices. On stop it prints per
 * kind how many connections were opened and how many the hub closed, with their lifetimes. */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "loadgen_attack.h"
#include "common/sas.h"

#define ATK_CONNECT_TIMEOUT_S 5
#define ATK_REOPEN_MS         10
#define ATK_UNAUTH_WAIT_S     10 /* a refused connection the hub does not close: we do */
#define ATK_FLOODING          1  /* the pipelining attacker's state once TLS is up */

static const char *const atk_names[ATK_KINDS] = {"pipeline",   "pipeline_auth", "slowloris",
                                                 "twin_flood", "no_handshake",  "unauth"};

typedef struct {
    uint64_t opened;
    uint64_t connect_failed;
    uint64_t closed_by_hub;
    uint64_t refused;
    uint64_t gave_up;   /* closed by us: the hub neither answered nor closed */
    uint64_t attacking; /* connections that got as far as their attack */
    double life_max_s;
    double life_sum_s;
} atk_stats;

/* The attackers' state: one run per process. */
static struct {
    lg_atk *atks;
    int n;
    atk_stats stats[ATK_KINDS];
    struct sockaddr_in src[ATK_KINDS];
    bool stopping;
    int64_t start_us;
    char pipeline_req[2][1536];
    char unauth_req[1536];
    char slow_line[512];
} A;

static void atk_open(lg_atk *a);

static int atk_port(const lg_atk *a)
{
    const lg_opts *o = &a->app->o;
    switch (a->kind) {
    case ATK_PIPELINE:
    case ATK_PIPELINE_AUTH:
    case ATK_SLOWLORIS:
        return o->https_port;
    case ATK_TWIN_FLOOD:
        return o->port;
    case ATK_NO_HANDSHAKE:
        return a->variant == 1 ? o->https_port : o->port;
    default:
        return a->variant == 0 ? o->https_port : o->port;
    }
}

/* The no-handshake attackers of variants 0 and 1 never start TLS. */
static bool atk_raw(const lg_atk *a)
{
    return a->kind == ATK_NO_HANDSHAKE && a->variant < 2;
}

void atk_count_attacking(lg_atk *a)
{
    A.stats[a->kind].attacking++;
}

void atk_count_refused(lg_atk *a)
{
    if (!a->refused)
        A.stats[a->kind].refused++;
    a->refused = true;
}

static void on_reopen(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lg_atk *a = arg;
    if (!A.stopping)
        atk_open(a);
}

static void reopen_later(lg_atk *a, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_base_once(a->app->base, -1, EV_TIMEOUT, on_reopen, a, &tv);
}

static void atk_release(lg_atk *a)
{
    if (a->ev) {
        event_free(a->ev);
        a->ev = NULL;
    }
    if (a->bev) {
        bufferevent_free(a->bev);
        a->bev = NULL;
    }
    if (a->fd >= 0) {
        close(a->fd);
        a->fd = -1;
    }
}

void atk_closed(lg_atk *a, bool by_hub)
{
    atk_stats *s = &A.stats[a->kind];
    if (by_hub) {
        double life = (double)(lg_now_us() - a->opened_us) / 1e6;
        s->closed_by_hub++;
        s->life_sum_s += life;
        if (life > s->life_max_s)
            s->life_max_s = life;
    } else {
        s->gave_up++;
    }
    atk_release(a);
    if (!A.stopping)
        reopen_later(a, ATK_REOPEN_MS);
}

/* ---- flooding without reading ---------------------------------------------------------------- */

static void fill(lg_atk *a, const void *unit, size_t len)
{
    struct evbuffer *out = bufferevent_get_output(a->bev);
    while (evbuffer_get_length(out) < ATK_OUTPUT_HIGH)
        evbuffer_add(out, unit, len);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    (void)bev;
    lg_atk *a = arg;
    if ((a->kind == ATK_PIPELINE || a->kind == ATK_PIPELINE_AUTH) && a->state == ATK_FLOODING) {
        const char *req = A.pipeline_req[a->kind == ATK_PIPELINE_AUTH];
        fill(a, req, strlen(req));
    } else if (a->kind == ATK_TWIN_FLOOD) {
        atk_mqtt_refill(a);
    }
}

/* Keeps the output filled with copies of a request and stops reading. */
static void atk_flood(lg_atk *a, const void *unit, size_t len)
{
    atk_count_attacking(a);
    a->state = ATK_FLOODING;
    bufferevent_disable(a->bev, EV_READ);
    bufferevent_setwatermark(a->bev, EV_WRITE, ATK_OUTPUT_HIGH / 2, 0);
    fill(a, unit, len);
}

/* ---- slowloris --------------------------------------------------------------------------------
 */

/* One byte of a header block that never ends: the request line, then "X-Slow: a" lines. */
static void on_trickle(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lg_atk *a = arg;
    static const char filler[] = "X-Slow: a\r\n";
    size_t first = strlen(A.slow_line);
    char c = a->pos < first ? A.slow_line[a->pos] : filler[(a->pos - first) % (sizeof filler - 1)];
    a->pos++;
    bufferevent_write(a->bev, &c, 1);
}

/* ---- connections ------------------------------------------------------------------------------
 */

static void on_read(struct bufferevent *bev, void *arg)
{
    lg_atk *a = arg;
    if (a->kind == ATK_TWIN_FLOOD || (a->kind == ATK_UNAUTH && a->variant == 1)) {
        atk_mqtt_read(a);
        return;
    }
    struct evbuffer *in = bufferevent_get_input(bev);
    if (a->kind == ATK_UNAUTH && evbuffer_search(in, " 401 ", 5, NULL).pos >= 0)
        atk_count_refused(a);
    evbuffer_drain(in, evbuffer_get_length(in));
}

static void tls_up(lg_atk *a)
{
    const lg_opts *o = &a->app->o;
    switch (a->kind) {
    case ATK_PIPELINE:
    case ATK_PIPELINE_AUTH: {
        const char *req = A.pipeline_req[a->kind == ATK_PIPELINE_AUTH];
        atk_flood(a, req, strlen(req));
        break;
    }
    case ATK_SLOWLORIS: {
        atk_count_attacking(a);
        a->pos = 0;
        a->ev = event_new(a->app->base, -1, EV_PERSIST, on_trickle, a);
        struct timeval tv = {o->trickle_ms / 1000, (o->trickle_ms % 1000) * 1000};
        if (!a->ev || event_add(a->ev, &tv) < 0)
            lg_fatal(a->app, "cannot start a trickle timer");
        break;
    }
    case ATK_UNAUTH: {
        atk_count_attacking(a);
        struct timeval wait = {ATK_UNAUTH_WAIT_S, 0};
        bufferevent_set_timeouts(a->bev, &wait, NULL);
        if (a->variant == 0)
            bufferevent_write(a->bev, A.unauth_req, strlen(A.unauth_req));
        else
            atk_mqtt_connected(a);
        break;
    }
    case ATK_TWIN_FLOOD:
        atk_mqtt_connected(a);
        break;
    default: /* TLS without CONNECT: nothing more */
        atk_count_attacking(a);
        break;
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    lg_atk *a = arg;
    if (what & BEV_EVENT_CONNECTED) {
        tls_up(a);
        return;
    }
    atk_closed(a, !(what & BEV_EVENT_TIMEOUT));
}

/* Raw attackers only watch for the hub's close. */
static void on_raw(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    lg_atk *a = arg;
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
        atk_closed(a, true);
}

static void on_tcp(evutil_socket_t fd, short what, void *arg)
{
    lg_atk *a = arg;
    int err = (what & EV_TIMEOUT) ? ETIMEDOUT : lg_socket_error(fd);
    if (err) {
        close(fd);
        if (A.stats[a->kind].connect_failed++ < 3)
            fprintf(stderr, "loadgen: %s attacker: connect: %s\n", atk_names[a->kind],
                    strerror(err));
        if (!A.stopping)
            reopen_later(a, 200);
        return;
    }
    A.stats[a->kind].opened++;
    a->opened_us = lg_now_us();
    a->refused = false;
    a->state = 0;
    if (atk_raw(a)) {
        atk_count_attacking(a);
        a->fd = fd;
        /* Variant 1: the header of a TLS handshake record announcing 512 bytes that never come. */
        static const uint8_t partial[] = {0x16, 0x03, 0x01, 0x02, 0x00};
        if (a->variant == 1 && send(fd, partial, sizeof partial, MSG_NOSIGNAL) < 0) {
            atk_closed(a, true);
            return;
        }
        a->ev = event_new(a->app->base, fd, EV_READ | EV_PERSIST, on_raw, a);
        if (!a->ev || event_add(a->ev, NULL) < 0)
            lg_fatal(a->app, "cannot watch an attacker's socket");
        return;
    }
    if (!(a->bev = lg_tls_bev(a->app, fd)))
        lg_fatal(a->app, "cannot create a TLS bufferevent");
    bufferevent_setcb(a->bev, on_read, on_write, on_event, a);
    bufferevent_enable(a->bev, EV_READ);
}

static void atk_open(lg_atk *a)
{
    int fd = lg_socket_connect(a->app, &A.src[a->kind], atk_port(a));
    if (fd < 0) {
        if (A.stats[a->kind].connect_failed++ < 3)
            fprintf(stderr, "loadgen: %s attacker: %s\n", atk_names[a->kind], strerror(errno));
        reopen_later(a, 200);
        return;
    }
    struct timeval tv = {ATK_CONNECT_TIMEOUT_S, 0};
    if (event_base_once(a->app->base, fd, EV_WRITE, on_tcp, a, &tv) < 0)
        lg_fatal(a->app, "event_base_once failed");
}

/* ---- start and stop -------------------------------------------------------------------------- */

static void make_requests(lg_app *app)
{
    const lg_opts *o = &app->o;
    /* Dashboard files need no credentials; the models (tens of KB) need a service token. */
    snprintf(A.pipeline_req[0], sizeof A.pipeline_req[0],
             "GET /js/components.js HTTP/1.1\r\nHost: %s\r\n\r\n", o->hub_name);
    snprintf(A.pipeline_req[1], sizeof A.pipeline_req[1],
             "GET /iotdm/models?api-version=%s HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\n\r\n",
             LG_API_VERSION, o->hub_name, app->auth);
    snprintf(A.slow_line, sizeof A.slow_line,
             "GET /devices?api-version=%s HTTP/1.1\r\nHost: %s\r\n", LG_API_VERSION, o->hub_name);
    /* The owner policy's name with a key that is not its key: a signature to check, wrong. */
    char token[SAS_TOKEN_MAX];
    if (sas_build_token(o->hub_name, "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktMzI=",
                        o->owner_policy, (int64_t)time(NULL) + 3600, token, sizeof token) < 0)
        lg_fatal(app, "cannot sign the attackers' token");
    snprintf(A.unauth_req, sizeof A.unauth_req,
             "GET /devices?api-version=%s HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\n\r\n",
             LG_API_VERSION, o->hub_name, token);
}

static bool kind_enabled(const char *list, int k)
{
    if (!list)
        return true;
    size_t n = strlen(atk_names[k]);
    for (const char *p = list; *p; p += strcspn(p, ",") + (p[strcspn(p, ",")] == ',')) {
        if (strncmp(p, atk_names[k], n) == 0 && (p[n] == ',' || p[n] == '\0'))
            return true;
    }
    return false;
}

static void on_duration(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lg_attack_stop(arg);
}

void lg_attack_start(lg_app *app)
{
    lg_opts *o = &app->o;
    prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive the hostile scenario that started us */
    if (o->attacker_first < 0)
        o->attacker_first = o->devices;
    make_requests(app);
    for (int k = 0; k < ATK_KINDS; k++) {
        A.src[k].sin_family = AF_INET;
        A.src[k].sin_addr.s_addr = htonl((127u << 24) | (1u << 8) | (uint32_t)(1 + k));
    }
    int per[ATK_KINDS];
    for (int k = 0; k < ATK_KINDS; k++)
        per[k] = k == ATK_UNAUTH ? o->flooders : o->attackers;
    for (int k = 0; k < ATK_KINDS; k++)
        if (!kind_enabled(o->attack_kinds, k))
            per[k] = 0;
    for (int k = 0; k < ATK_KINDS; k++)
        A.n += per[k];
    A.atks = A.n ? calloc((size_t)A.n, sizeof *A.atks) : NULL; /* none: a baseline twice */
    if (A.n && !A.atks)
        lg_fatal(app, "out of memory");
    A.start_us = lg_now_us();
    int i = 0;
    for (int k = 0; k < ATK_KINDS; k++)
        for (int s = 0; s < per[k]; s++, i++) {
            lg_atk *a = &A.atks[i];
            *a = (lg_atk){.app = app, .kind = (atk_kind)k, .slot = s, .fd = -1};
            a->variant = k == ATK_UNAUTH ? s % 2 : k == ATK_NO_HANDSHAKE ? s % 3 : 0;
            atk_open(a);
        }
    fprintf(stderr, "loadgen: %d attackers started\n", A.n);
    struct timeval tv = {o->duration_s, 0};
    event_base_once(app->base, -1, EV_TIMEOUT, on_duration, app, &tv);
}

void lg_attack_stop(lg_app *app)
{
    if (A.stopping)
        return;
    A.stopping = true;
    int64_t now = lg_now_us();
    int open[ATK_KINDS] = {0};
    double oldest[ATK_KINDS] = {0};
    for (int i = 0; i < A.n; i++) {
        lg_atk *a = &A.atks[i];
        if (!a->bev && a->fd < 0)
            continue;
        open[a->kind]++;
        double age = (double)(now - a->opened_us) / 1e6;
        if (age > oldest[a->kind])
            oldest[a->kind] = age;
    }
    printf("atk_seconds=%.1f\n", (double)(now - A.start_us) / 1e6);
    uint64_t closed = 0;
    for (int k = 0; k < ATK_KINDS; k++) {
        const atk_stats *s = &A.stats[k];
        const char *n = atk_names[k];
        closed += s->closed_by_hub;
        printf("atk_%s_opened=%" PRIu64 "\n", n, s->opened);
        printf("atk_%s_attacking=%" PRIu64 "\n", n, s->attacking);
        printf("atk_%s_closed_by_hub=%" PRIu64 "\n", n, s->closed_by_hub);
        printf("atk_%s_connect_failed=%" PRIu64 "\n", n, s->connect_failed);
        printf("atk_%s_refused=%" PRIu64 "\n", n, s->refused);
        printf("atk_%s_gave_up=%" PRIu64 "\n", n, s->gave_up);
        printf("atk_%s_open_at_end=%d\n", n, open[k]);
        printf("atk_%s_oldest_open_s=%.1f\n", n, oldest[k]);
        printf("atk_%s_life_max_s=%.2f\n", n, s->life_max_s);
        printf("atk_%s_life_mean_s=%.2f\n", n,
               s->closed_by_hub ? s->life_sum_s / (double)s->closed_by_hub : 0.0);
    }
    printf("atk_closed_by_hub=%" PRIu64 "\n", closed);
    fflush(stdout);
    app->exit_code = 0;
    event_base_loopexit(app->base, NULL); /* main() exits without closing: the kernel does it */
}
