/* iotdm-loadgen figures: per-second series, medians, percentiles, a process's resident memory. */
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

/* VmRSS of pid (0: this process) in KiB, or -1. */
long lg_read_rss_kb(int pid)
{
    char path[64], line[256];
    if (pid > 0)
        snprintf(path, sizeof path, "/proc/%d/status", pid);
    else
        snprintf(path, sizeof path, "/proc/self/status");
    FILE *f = fopen(path, "r");
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
