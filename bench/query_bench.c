/* iotdm-query-bench: queries and twin puts against the hub's store directly (no network, no hub
 * process), on a fleet of --devices devices (bench/query.sh runs it, docs/benchmarks.md has the
 * figures). Prints key=value lines on stdout, progress on stderr. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/timeutil.h"
#include "hub/query/query.h"
#include "hub/store/store.h"
#include "hub/twin_ops.h"
#include "proto/twin.h"

typedef struct {
    const char *dir;
    long devices;
    int runs;
    long patches;
    bool patches_only; /* for profiling the twin put */
} bench_opts;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kb;
}

static void check(iotdm_result r, const char *what)
{
    if (r == IOTDM_OK)
        return;
    fprintf(stderr, "query-bench: %s failed: %s\n", what, iotdm_result_name(r));
    exit(1);
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, by_value);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---- the fleet ---- */

static void fill_twin(hub_twin *t, long i)
{
    char site[32], fw[32];
    snprintf(site, sizeof site, "site-%ld", i % 1000); /* about 100 devices per site */
    snprintf(fw, sizeof fw, "1.2.%ld", i % 7);
    json_decref(t->tags);
    json_decref(t->reported);
    t->tags = json_pack("{s:s, s:i, s:s, s:{s:s, s:i}}", "site", site, "building", (int)(i % 50),
                        "region", i % 2 ? "eu" : "us", "owner", "team", i % 3 ? "ops" : "lab",
                        "floor", (int)(i % 9));
    t->reported = json_pack("{s:i, s:f, s:b, s:{s:s, s:s}}", "temp", (int)(i % 40), "battery",
                            (double)(i % 100) / 3.0, "online", (int)(i % 2), "fw", "version", fw,
                            "channel", "stable");
    t->version++;
}

static void make_fleet(hub_store *s, long n)
{
    double t0 = now_ms();
    for (long i = 0; i < n; i++) {
        hub_device d;
        memset(&d, 0, sizeof d);
        snprintf(d.device_id, sizeof d.device_id, "bench-%ld", i);
        d.enabled = true;
        d.auth_type = HUB_AUTH_SAS;
        snprintf(d.primary_key, sizeof d.primary_key, "cHJpbWFyeQ==");
        snprintf(d.secondary_key, sizeof d.secondary_key, "c2Vjb25kYXJ5");
        check(hub_store_device_create(s, &d), "device create");
        hub_twin t;
        check(hub_store_twin_get(s, d.device_id, &t), "twin get");
        fill_twin(&t, i);
        check(hub_store_twin_put(s, d.device_id, &t), "twin put");
        hub_twin_deinit(&t);
        if (i % 1000 == 999)
            check(hub_store_commit(s), "commit");
    }
    check(hub_store_commit(s), "commit");
    printf("fleet_devices=%ld\nfleet_create_per_s=%.0f\n", n, (double)n * 1e3 / (now_ms() - t0));
}

/* ---- queries ---- */

static hub_query *parse(const char *text)
{
    hub_query *q;
    char err[256];
    if (hub_query_parse(text, strlen(text), &q, err, sizeof err) != IOTDM_OK) {
        fprintf(stderr, "query-bench: %s: %s\n", text, err);
        exit(1);
    }
    return q;
}

/* The median time of the first page of text, and the rows it held. */
static double first_page_ms(hub_store *reader, const char *text, int runs, size_t *out_rows)
{
    hub_query *q = parse(text);
    double t[runs];
    for (int i = 0; i < runs; i++) {
        hub_query_page page;
        double t0 = now_ms();
        check(hub_query_page_run(reader, q, NULL, 100, &page), text);
        t[i] = now_ms() - t0;
        *out_rows = json_array_size(page.items);
        json_decref(page.items);
    }
    hub_query_free(q);
    return median(t, runs);
}

typedef struct {
    const hub_query *q;
    size_t matches;
} scan_ctx;

static bool scan_one(void *ctx, const hub_device *d, const hub_twin *t)
{
    scan_ctx *c = ctx;
    json_t *doc = hub_twin_service_view(d, t);
    c->matches += hub_query_matches(c->q, doc);
    json_decref(doc);
    return true;
}

/* What every query cost before the pushdown: each twin read, viewed and evaluated. */
static double full_scan_ms(hub_store *reader, const char *text)
{
    hub_query *q = parse(text);
    scan_ctx c = {q, 0};
    double t0 = now_ms();
    check(hub_store_twin_foreach(reader, scan_one, &c), "scan");
    double ms = now_ms() - t0;
    hub_query_free(q);
    return ms;
}

static void bench_queries(hub_store *reader, int runs)
{
    static const struct {
        const char *key, *text;
    } queries[] = {
        {"device_id", "SELECT * FROM devices WHERE deviceId = 'bench-54321'"},
        {"tag", "SELECT * FROM devices WHERE tags.site = 'site-321'"},
        {"tag_and_reported",
         "SELECT * FROM devices WHERE tags.site = 'site-321' AND properties.reported.temp < 5"},
        {"reported_range", "SELECT deviceId FROM devices WHERE properties.reported.temp >= 39"},
    };
    for (size_t i = 0; i < sizeof queries / sizeof queries[0]; i++) {
        size_t rows = 0;
        double ms = first_page_ms(reader, queries[i].text, runs, &rows);
        printf("query_%s_median_ms=%.3f\nquery_%s_rows=%zu\n", queries[i].key, ms, queries[i].key,
               rows);
    }
    size_t rows = 0;
    /* Not translatable (ENDSWITH): the scan fallback, paged, on the reader. */
    double ms = first_page_ms(reader, "SELECT * FROM devices WHERE ENDSWITH(deviceId, '54321')",
                              runs < 3 ? runs : 3, &rows);
    printf("query_unindexed_median_ms=%.3f\nquery_unindexed_rows=%zu\n", ms, rows);
    printf("query_full_scan_ms=%.1f\n",
           full_scan_ms(reader, "SELECT * FROM devices WHERE tags.site = 'site-321'"));
    ms = first_page_ms(reader, "SELECT tags.site, COUNT() AS n FROM devices GROUP BY tags.site",
                       runs < 3 ? runs : 3, &rows);
    printf("query_group_by_median_ms=%.1f\nquery_group_by_rows=%zu\n", ms, rows);
}

/* Every page of a query, watching the process's resident memory. */
static void bench_paging(hub_store *reader, const char *key, const char *text, size_t page_size)
{
    hub_query *q = parse(text);
    char cont[HUB_QUERY_CONTINUATION_MAX] = "";
    long before = rss_kb(), peak = before;
    size_t rows = 0, pages = 0;
    double t0 = now_ms();
    do {
        hub_query_page page;
        check(hub_query_page_run(reader, q, cont, page_size, &page), "paging");
        rows += json_array_size(page.items);
        pages++;
        json_decref(page.items);
        snprintf(cont, sizeof cont, "%s", page.continuation);
        long rss = rss_kb();
        peak = rss > peak ? rss : peak;
    } while (cont[0]);
    double ms = now_ms() - t0;
    hub_query_free(q);
    printf("%s_rows=%zu\n%s_pages=%zu\n%s_total_ms=%.0f\n%s_ms_per_page=%.2f\n"
           "%s_rss_growth_mb=%.1f\n",
           key, rows, key, pages, key, ms, key, ms / (double)pages, key,
           (double)(peak - before) / 1024.0);
}

/* ---- reported patches ---- */

/* The executor's syncer (core/work.c) in miniature: makes each committed group durable on its own
 * thread, with the checkpoints that keep the WAL from growing, while the writer goes on. */
typedef struct {
    hub_store *store;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    unsigned long committed, durable;
    bool stop;
} syncer;

static void *sync_main(void *arg)
{
    syncer *y = arg;
    pthread_mutex_lock(&y->lock);
    while (!y->stop || y->durable < y->committed) {
        if (y->durable == y->committed) {
            pthread_cond_wait(&y->wake, &y->lock);
            continue;
        }
        unsigned long target = y->committed;
        pthread_mutex_unlock(&y->lock);
        check(hub_store_durable(y->store), "durable");
        pthread_mutex_lock(&y->lock);
        y->durable = target;
        pthread_cond_broadcast(&y->wake);
    }
    pthread_mutex_unlock(&y->lock);
    return NULL;
}

static void group_done(syncer *y)
{
    check(hub_store_group_commit(y->store), "group commit");
    pthread_mutex_lock(&y->lock);
    y->committed++;
    pthread_cond_broadcast(&y->wake);
    pthread_mutex_unlock(&y->lock);
}

/* One reported patch as the hub applies it (twin_ops.c): two leaves changed, in a unit. */
static void apply_patch(hub_store *s, const char *id, long i, const char *now)
{
    json_t *patch = json_pack("{s:i, s:{s:s}}", "temp", (int)(i % 97), "fw", "version",
                              i % 2 ? "2.0.0" : "2.0.1");
    check(hub_store_unit_begin(s), "unit");
    hub_twin t;
    check(hub_store_twin_get(s, id, &t), "twin get");
    check(twin_merge(t.reported, patch), "merge");
    check(twin_metadata_update(t.reported_meta, patch, now, -1, false), "metadata");
    t.reported_version++;
    t.version++;
    t.etag++;
    check(hub_store_twin_put(s, id, &t), "twin put");
    check(hub_store_unit_end(s, IOTDM_OK), "unit");
    hub_twin_deinit(&t);
    json_decref(patch);
}

static double thread_cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Patches to random devices, 100 units to a group as the executor groups them under load, each
 * group made durable by the syncer thread. Patches per second, until the last is durable;
 * *out_cpu_us (may be NULL) gets the writer thread's CPU time per patch. */
static double patches_per_s(hub_store *s, long n, long fleet, unsigned seed, double *out_cpu_us)
{
    syncer y = {.store = s};
    pthread_mutex_init(&y.lock, NULL);
    pthread_cond_init(&y.wake, NULL);
    pthread_t th;
    if (pthread_create(&th, NULL, sync_main, &y) != 0)
        check(-errno, "syncer");
    char now[32];
    time_format_iso(1767225600000, now, sizeof now);
    double t0 = now_ms(), cpu0 = thread_cpu_ms();
    for (long i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        char id[32];
        snprintf(id, sizeof id, "bench-%ld", (long)(seed >> 8) % fleet);
        apply_patch(s, id, i, now);
        if (i % 100 == 99 || i == n - 1)
            group_done(&y);
    }
    if (out_cpu_us)
        *out_cpu_us = (thread_cpu_ms() - cpu0) * 1e3 / (double)n;
    pthread_mutex_lock(&y.lock);
    y.stop = true;
    pthread_cond_broadcast(&y.wake);
    pthread_mutex_unlock(&y.lock);
    pthread_join(th, NULL);
    double ms = now_ms() - t0;
    pthread_mutex_destroy(&y.lock);
    pthread_cond_destroy(&y.wake);
    return (double)n * 1e3 / ms;
}

static double wal_mb(const char *dir)
{
    char path[600];
    struct stat st;
    snprintf(path, sizeof path, "%s/hub.db-wal", dir);
    return stat(path, &st) == 0 ? (double)st.st_size / 1048576.0 : 0;
}

/* The writer's throughput without the index maintenance, then with it (after a rebuild), each
 * the median of three rounds on a WAL that starts empty. */
static void bench_patches(hub_store *s, const bench_opts *o)
{
    double rate[2][3], cpu[2][3], wal[2] = {0, 0};
    for (int with = 0; with < 2; with++) {
        double t0 = now_ms();
        check(hub_store_sqlite_twin_index(s, with), "index switch");
        check(hub_store_commit(s), "commit");
        if (with)
            printf("index_rebuild_ms=%.0f\n", now_ms() - t0);
        (void)patches_per_s(s, o->patches / 10, o->devices, 7, NULL); /* warm the caches */
        for (int round = 0; round < 3; round++) {
            check(hub_store_durable(s), "checkpoint");
            rate[with][round] =
                patches_per_s(s, o->patches, o->devices, 11u + (unsigned)round, &cpu[with][round]);
            double mb = wal_mb(o->dir);
            wal[with] = mb > wal[with] ? mb : wal[with];
        }
    }
    for (int with = 0; with < 2; with++)
        printf("patches_%s_index_rounds=%.0f,%.0f,%.0f\n", with ? "with" : "without", rate[with][0],
               rate[with][1], rate[with][2]);
    double without = median(rate[0], 3), with = median(rate[1], 3);
    printf("patches_without_index_per_s=%.0f\npatches_with_index_per_s=%.0f\n"
           "patches_index_cost_ratio=%.3f\n",
           without, with, without / with);
    printf("patches_without_index_writer_cpu_us=%.1f\npatches_with_index_writer_cpu_us=%.1f\n"
           "patches_without_index_wal_mb=%.0f\npatches_with_index_wal_mb=%.0f\n",
           median(cpu[0], 3), median(cpu[1], 3), wal[0], wal[1]);
}

/* ---- main ---- */

static void usage(void)
{
    fprintf(stderr, "usage: iotdm-query-bench --dir DIR [--devices N] [--runs N] [--patches N] "
                    "[--patches-only]\n");
    exit(2);
}

static bench_opts parse_opts(int argc, char **argv)
{
    bench_opts o = {NULL, 100000, 21, 20000, false};
    static const struct option longs[] = {
        {"dir", required_argument, NULL, 'd'},    {"devices", required_argument, NULL, 'n'},
        {"runs", required_argument, NULL, 'r'},   {"patches", required_argument, NULL, 'p'},
        {"patches-only", no_argument, NULL, 'P'}, {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        if (c == 'd')
            o.dir = optarg;
        else if (c == 'n')
            o.devices = strtol(optarg, NULL, 10);
        else if (c == 'r')
            o.runs = (int)strtol(optarg, NULL, 10);
        else if (c == 'p')
            o.patches = strtol(optarg, NULL, 10);
        else if (c == 'P')
            o.patches_only = true;
        else
            usage();
    }
    if (!o.dir || o.devices < 1 || o.runs < 1 || o.patches < 1)
        usage();
    return o;
}

int main(int argc, char **argv)
{
    bench_opts o = parse_opts(argc, argv);
    char path[512];
    snprintf(path, sizeof path, "%s/hub.db", o.dir);
    hub_store *s, *reader;
    check(hub_store_open(path, &s), "open");
    fprintf(stderr, "query-bench: creating %ld devices\n", o.devices);
    make_fleet(s, o.devices);
    check(hub_store_open_reader(s, &reader), "reader");
    if (!o.patches_only) {
        fprintf(stderr, "query-bench: queries\n");
        bench_queries(reader, o.runs);
        fprintf(stderr, "query-bench: paging\n");
        bench_paging(reader, "paging_100", "SELECT * FROM devices", 100);
        bench_paging(reader, "paging_1000", "SELECT * FROM devices", 1000);
        /* Half the fleet matches: the candidates are probed in id order, not listed. */
        bench_paging(reader, "paging_tag_half", "SELECT * FROM devices WHERE tags.region = 'eu'",
                     100);
    }
    fprintf(stderr, "query-bench: reported patches\n");
    bench_patches(s, &o);
    hub_store_close(reader);
    hub_store_close(s);
    return 0;
}
