/* iotdm-loadgen figures: per-second series, samples, medians, percentiles, a process's resident
 * memory and a watch of its peak. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loadgen.h"

void lg_series_close_interval(lg_series *s)
{
    if (s->n < LG_MAX_INTERVALS)
        s->values[s->n++] = (double)s->current;
    s->total += s->current;
    s->current = 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double lg_median(double *v, size_t n)
{
    if (n == 0)
        return 0;
    double *copy = malloc(n * sizeof *copy);
    if (!copy)
        return 0;
    memcpy(copy, v, n * sizeof *copy);
    qsort(copy, n, sizeof *copy, cmp_double);
    double m = n % 2 ? copy[n / 2] : (copy[n / 2 - 1] + copy[n / 2]) / 2;
    free(copy);
    return m;
}

/* Nearest rank on sorted values. */
double lg_percentile(double *sorted, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return sorted[rank - 1];
}

/* /proc/PID/<file> (pid 0: this process) opened for reading, or NULL. */
static FILE *proc_open(int pid, const char *file)
{
    char path[64];
    if (pid > 0)
        snprintf(path, sizeof path, "/proc/%d/%s", pid, file);
    else
        snprintf(path, sizeof path, "/proc/self/%s", file);
    return fopen(path, "r");
}

/* VmRSS of pid (0: this process) in KiB, or -1. */
long lg_read_rss_kb(int pid)
{
    char line[256];
    FILE *f = proc_open(pid, "status");
    if (!f)
        return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

long lg_read_cpu_ticks(int pid)
{
    char line[1024];
    FILE *f = proc_open(pid, "stat");
    if (!f)
        return -1;
    bool ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    /* The command name (field 2) may hold spaces: count fields after its closing parenthesis.
     * utime and stime are fields 14 and 15, i.e. the 12th and 13th after it. */
    char *p = ok ? strrchr(line, ')') : NULL;
    if (!p)
        return -1;
    unsigned long utime, stime;
    if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
        return -1;
    return (long)(utime + stime);
}

bool lg_samples_add(lg_samples *s, double v)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        double *p = realloc(s->v, cap * sizeof *p);
        if (!p)
            return false;
        s->v = p;
        s->cap = cap;
    }
    s->v[s->n++] = v;
    return true;
}

void lg_samples_free(lg_samples *s)
{
    free(s->v);
    *s = (lg_samples){0};
}

void lg_print_latency(const char *prefix, const char *name, lg_samples *s)
{
    qsort(s->v, s->n, sizeof *s->v, cmp_double);
    double sum = 0;
    for (size_t i = 0; i < s->n; i++)
        sum += s->v[i];
    printf("%s%s_n=%zu\n", prefix, name, s->n);
    printf("%s%s_p50_ms=%.3f\n", prefix, name, lg_percentile(s->v, s->n, 50));
    printf("%s%s_p90_ms=%.3f\n", prefix, name, lg_percentile(s->v, s->n, 90));
    printf("%s%s_p99_ms=%.3f\n", prefix, name, lg_percentile(s->v, s->n, 99));
    printf("%s%s_max_ms=%.3f\n", prefix, name, s->n ? s->v[s->n - 1] : 0.0);
    printf("%s%s_mean_ms=%.3f\n", prefix, name, s->n ? sum / (double)s->n : 0.0);
}

static void rss_sample(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lg_rss_watch *w = arg;
    long kb = lg_read_rss_kb(w->pid);
    if (kb > w->max_kb)
        w->max_kb = kb;
}

void lg_rss_watch_start(lg_app *app, lg_rss_watch *w, int pid)
{
    w->pid = pid;
    w->max_kb = -1;
    if (pid <= 0)
        return;
    rss_sample(-1, 0, w);
    w->ev = event_new(app->base, -1, EV_PERSIST, rss_sample, w);
    struct timeval tv = {0, 200000};
    if (!w->ev || event_add(w->ev, &tv) < 0)
        lg_fatal(app, "cannot start the memory watch");
}

long lg_rss_watch_stop(lg_rss_watch *w)
{
    if (w->ev) {
        rss_sample(-1, 0, w);
        event_free(w->ev);
        w->ev = NULL;
    }
    return w->max_kb;
}
