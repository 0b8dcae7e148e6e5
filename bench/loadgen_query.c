/* iotdm-loadgen query scenario: direct methods at --rate, first alone (the baseline, keys base_*),
 * then while --query-clients HTTPS clients run POST /devices/query back to back over the
 * registered devices (keys load_*): a tag query and a deviceId query, both of which an index
 * serves, and SELECT * paged with x-ms-continuation. Each client takes the three kinds in turn.
 * Prints each kind's latency per request and the hub's memory while the queries run. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loadgen.h"

#define LG_CONT_MAX    2048
#define LG_QUERY_MAX   256
#define LG_REOPENS_MAX 20 /* connections a client may reopen before the run gives up */

enum { Q_TAG, Q_ID, Q_PAGE, Q_KINDS };
static const char *const q_names[Q_KINDS] = {"tag", "id", "page"};

typedef struct {
    lg_samples lat; /* per request */
    uint64_t requests;
    uint64_t errors;
    uint64_t queries; /* complete queries (all their pages) */
    uint64_t items;   /* over the complete queries */
    uint64_t wrong;   /* complete queries with an unexpected number of items */
} q_stats;

typedef struct {
    lg_http *c;
    int kind;
    int64_t sent_us;
    char cont[LG_CONT_MAX];      /* continuation of the tag or id query in progress */
    char page_cont[LG_CONT_MAX]; /* where this client's SELECT * pass stands */
    uint64_t items;              /* items of the tag or id query in progress */
    uint64_t pass_items;         /* items of this client's SELECT * pass so far */
    int64_t pass_start_us;
} q_client;

/* The scenario's state: one run per process. */
static struct {
    q_client *clients;
    int n;
    bool running;
    q_stats stats[Q_KINDS];
    uint64_t next_site;
    int sites;
    char id_query[LG_QUERY_MAX];
    lg_samples pass_s; /* seconds per complete SELECT * pass */
    int reopens;
    long rss_before_kb;
    long rss_start_kb;
    lg_rss_watch rss;
} q;

static void q_issue(lg_app *app, q_client *qc);

/* Twins in a page: each carries one top-level "deviceId". */
static uint64_t count_items(const char *body, size_t len)
{
    uint64_t n = 0;
    static const char key[] = "\"deviceId\":";
    for (const char *p = body; p && (size_t)(p - body) < len; p++) {
        p = memmem(p, len - (size_t)(p - body), key, sizeof key - 1);
        if (!p)
            break;
        n++;
    }
    return n;
}

static uint64_t expected_items(const lg_app *app, int kind)
{
    if (kind == Q_TAG)
        return (uint64_t)app->o.site_size;
    if (kind == Q_ID)
        return 1;
    return (uint64_t)app->o.registered;
}

/* A query (or a pass of SELECT *) came to its last page. */
static void q_complete(lg_app *app, q_client *qc)
{
    q_stats *s = &q.stats[qc->kind];
    uint64_t *items = qc->kind == Q_PAGE ? &qc->pass_items : &qc->items;
    s->queries++;
    s->items += *items;
    if (*items != expected_items(app, qc->kind))
        s->wrong++;
    if (qc->kind == Q_PAGE &&
        !lg_samples_add(&q.pass_s, (double)(lg_now_us() - qc->pass_start_us) / 1e6))
        lg_fatal(app, "out of memory");
    *items = 0;
}

static void q_answered(lg_app *app, void *ctx, int status, const char *body, size_t len)
{
    q_client *qc = ctx;
    if (!q.running)
        return;
    q_stats *s = &q.stats[qc->kind];
    double ms = (double)(lg_now_us() - qc->sent_us) / 1e3;
    char *cont = qc->kind == Q_PAGE ? qc->page_cont : qc->cont;
    s->requests++;
    if (status != 200) {
        if (s->errors++ < 3)
            fprintf(stderr, "loadgen: %s query answered %d: %.*s\n", q_names[qc->kind], status,
                    (int)(len > 200 ? 200 : len), body ? body : "");
        cont[0] = '\0';
        if (qc->kind == Q_PAGE)
            qc->pass_items = 0;
        else
            qc->items = 0;
        if (status == 0) {
            if (++q.reopens > LG_REOPENS_MAX)
                lg_fatal(app, "the query connections keep failing");
            lg_http_free(qc->c);
            if (!(qc->c = lg_http_new(app)))
                lg_fatal(app, "cannot reopen a query connection");
        }
    } else {
        if (!lg_samples_add(&s->lat, ms))
            lg_fatal(app, "out of memory");
        *(qc->kind == Q_PAGE ? &qc->pass_items : &qc->items) += count_items(body, len);
        if (!lg_http_header(qc->c, "x-ms-continuation", cont, LG_CONT_MAX))
            cont[0] = '\0';
        if (cont[0] && qc->kind != Q_PAGE) {
            q_issue(app, qc); /* the next page of the same query */
            return;
        }
        if (!cont[0])
            q_complete(app, qc);
    }
    qc->kind = (qc->kind + 1) % Q_KINDS;
    q_issue(app, qc);
}

static void q_issue(lg_app *app, q_client *qc)
{
    char text[LG_QUERY_MAX], body[LG_QUERY_MAX + 32], headers[LG_CONT_MAX + 64];
    const char *cont = qc->kind == Q_PAGE ? qc->page_cont : qc->cont;
    if (qc->kind == Q_TAG) {
        /* A different site each time (7919 is prime), so no answer is served twice. */
        int site = (int)(q.next_site++ * 7919 % (uint64_t)q.sites);
        snprintf(text, sizeof text, "SELECT * FROM devices WHERE tags.site = 'site-%d'", site);
    } else if (qc->kind == Q_ID) {
        snprintf(text, sizeof text, "%s", q.id_query);
    } else {
        snprintf(text, sizeof text, "SELECT * FROM devices");
        if (!cont[0] && qc->pass_items == 0)
            qc->pass_start_us = lg_now_us();
    }
    int hl = snprintf(headers, sizeof headers, "x-ms-max-item-count: %d\r\n",
                      qc->kind == Q_PAGE ? app->o.page_size : 100);
    if (cont[0])
        snprintf(headers + hl, sizeof headers - (size_t)hl, "x-ms-continuation: %s\r\n", cont);
    int bl = snprintf(body, sizeof body, "{\"query\":\"%s\"}", text);
    char path[64];
    snprintf(path, sizeof path, "/devices/query?api-version=%s", LG_API_VERSION);
    qc->sent_us = lg_now_us();
    lg_http_request(qc->c, "POST", path, headers, body, (size_t)bl, q_answered, qc);
}

static void print_queries(lg_app *app)
{
    printf("query_clients=%d\n", q.n);
    printf("query_registered=%d\n", app->o.registered);
    for (int k = 0; k < Q_KINDS; k++) {
        q_stats *s = &q.stats[k];
        char prefix[32];
        snprintf(prefix, sizeof prefix, "query_%s_", q_names[k]);
        printf("%srequests=%" PRIu64 "\n", prefix, s->requests);
        printf("%serrors=%" PRIu64 "\n", prefix, s->errors);
        printf("%scomplete=%" PRIu64 "\n", prefix, s->queries);
        printf("%sitems_mean=%.1f\n", prefix,
               s->queries ? (double)s->items / (double)s->queries : 0.0);
        printf("%swrong_count=%" PRIu64 "\n", prefix, s->wrong);
        lg_print_latency("query_", q_names[k], &s->lat);
        if (s->errors || s->wrong)
            app->exit_code = 1;
    }
    printf("query_page_passes=%zu\n", q.pass_s.n);
    printf("query_page_pass_s=%.2f\n", lg_median(q.pass_s.v, q.pass_s.n));
}

static void load_done(lg_app *app)
{
    /* A query still unanswered counts with the time it has waited (a lower bound), so that a
     * query slower than the whole phase still shows. */
    int64_t now = lg_now_us();
    for (int i = 0; i < q.n; i++)
        if (!lg_samples_add(&q.stats[q.clients[i].kind].lat,
                            (double)(now - q.clients[i].sent_us) / 1e3))
            lg_fatal(app, "out of memory");
    q.running = false;
    long max_kb = lg_rss_watch_stop(&q.rss);
    print_queries(app);
    if (app->o.server_pid > 0) {
        long after = lg_read_rss_kb(app->o.server_pid);
        printf("server_rss_before_kb=%ld\n", q.rss_before_kb);
        printf("server_rss_query_start_kb=%ld\n", q.rss_start_kb);
        printf("server_rss_max_kb=%ld\n", max_kb);
        printf("server_rss_after_kb=%ld\n", after);
        printf("server_rss_growth_kb=%ld\n", max_kb - q.rss_start_kb);
    }
    for (int i = 0; i < q.n; i++)
        lg_http_free(q.clients[i].c);
    free(q.clients);
    event_base_loopexit(app->base, NULL);
}

static void base_done(lg_app *app)
{
    q.n = app->o.query_clients;
    q.clients = calloc((size_t)q.n, sizeof *q.clients);
    if (!q.clients)
        lg_fatal(app, "out of memory");
    q.rss_start_kb = app->o.server_pid > 0 ? lg_read_rss_kb(app->o.server_pid) : -1;
    lg_rss_watch_start(app, &q.rss, app->o.server_pid);
    q.running = true;
    for (int i = 0; i < q.n; i++) {
        q_client *qc = &q.clients[i];
        if (!(qc->c = lg_http_new(app)))
            lg_fatal(app, "cannot open a query connection");
        qc->kind = i % Q_KINDS;
        q_issue(app, qc);
    }
    fprintf(stderr, "loadgen: %d query client(s) started; methods again\n", q.n);
    lg_calls_start(app, "load_", load_done);
}

void lg_query_start(lg_app *app)
{
    lg_opts *o = &app->o;
    q.sites = o->registered / o->site_size;
    if (q.sites < 1)
        lg_fatal(app, "--registered %d is smaller than --site-size %d", o->registered,
                 o->site_size);
    /* bench-54321 of 100,000: the same place in a smaller registry. */
    int target = (int)((int64_t)o->registered * 54321 / 100000);
    snprintf(q.id_query, sizeof q.id_query, "SELECT * FROM devices WHERE deviceId = '%s%d'",
             o->prefix, target);
    printf("query_id=%s%d\n", o->prefix, target);
    q.rss_before_kb = o->server_pid > 0 ? lg_read_rss_kb(o->server_pid) : -1;
    fprintf(stderr, "loadgen: methods without queries\n");
    lg_calls_start(app, "base_", base_done);
}
