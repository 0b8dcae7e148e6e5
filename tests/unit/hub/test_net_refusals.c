/* Refusal counting and rate-limited logging: HUB_REFUSAL_LOG_PER_S lines per second per kind,
 * every refusal counted, the rest summarised; exact under several threads. The log is stderr,
 * captured in a temporary file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "hub/net/refusals.h"

typedef struct {
    int saved;
    FILE *file;
} capture;

static void capture_start(capture *c)
{
    fflush(stderr);
    c->file = tmpfile();
    assert_non_null(c->file);
    c->saved = dup(STDERR_FILENO);
    assert_true(c->saved >= 0);
    assert_int_equal(dup2(fileno(c->file), STDERR_FILENO), STDERR_FILENO);
}

/* Stops capturing; returns the text (free it). */
static char *capture_end(capture *c)
{
    fflush(stderr);
    assert_int_equal(dup2(c->saved, STDERR_FILENO), STDERR_FILENO);
    close(c->saved);
    long n = ftell(c->file);
    assert_true(n >= 0);
    char *text = calloc(1, (size_t)n + 1);
    rewind(c->file);
    assert_int_equal(fread(text, 1, (size_t)n, c->file), (size_t)n);
    fclose(c->file);
    return text;
}

static int count(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* Waits for the start of a monotonic second, so that a burst stays inside one window. */
static void align_to_second(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    struct timespec rest = {0, 1000000000L - ts.tv_nsec + 1000000L};
    if (rest.tv_nsec >= 1000000000L)
        rest.tv_nsec = 999999999L;
    nanosleep(&rest, NULL);
}

/* Makes sure at least half a second is left in the current one. */
static void room_in_second(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (ts.tv_nsec > 500000000L)
        align_to_second();
}

/* Forgets what earlier tests suppressed. */
static void reset_summaries(void)
{
    capture c;
    capture_start(&c);
    hub_refusals_summarize();
    free(capture_end(&c));
}

static void test_refusals_burst_logs_budget_and_counts_all(void **state)
{
    (void)state;
    reset_summaries();
    uint64_t before = hub_refusal_count(HUB_REFUSED_HTTP_NOT_FOUND);
    capture c;
    capture_start(&c);
    room_in_second();
    for (int i = 0; i < 100; i++)
        hub_refused(HUB_REFUSED_HTTP_NOT_FOUND, "test", "no such thing n=%d", i);
    char *log = capture_end(&c);
    assert_int_equal(count(log, "kind=http_not_found"), HUB_REFUSAL_LOG_PER_S);
    assert_int_equal(count(log, "WARN test: no such thing n="), HUB_REFUSAL_LOG_PER_S);
    assert_non_null(strstr(log, "WARN test: no such thing n=0 kind=http_not_found\n"));
    free(log);
    assert_int_equal(hub_refusal_count(HUB_REFUSED_HTTP_NOT_FOUND) - before, 100);
    assert_string_equal(hub_refusal_name(HUB_REFUSED_HTTP_NOT_FOUND), "http_not_found");

    capture_start(&c);
    hub_refusals_summarize();
    hub_refusals_summarize(); /* nothing new: no second line */
    log = capture_end(&c);
    assert_int_equal(count(log, "\n"), 1);
    assert_non_null(strstr(log, "suppressed 95 similar messages kind=http_not_found"));
    free(log);
}

static void test_refusals_kinds_have_separate_budgets_and_seconds_renew(void **state)
{
    (void)state;
    reset_summaries();
    capture c;
    capture_start(&c);
    align_to_second();
    for (int i = 0; i < 10; i++) {
        hub_refused(HUB_REFUSED_QUOTA, "test", "quota");
        hub_refused(HUB_REFUSED_DISK_FULL, "test", "disk");
    }
    align_to_second();
    for (int i = 0; i < 10; i++)
        hub_refused(HUB_REFUSED_QUOTA, "test", "quota again");
    hub_refusals_summarize();
    char *log = capture_end(&c);
    assert_int_equal(count(log, "WARN test: quota kind=quota"), HUB_REFUSAL_LOG_PER_S);
    assert_int_equal(count(log, "WARN test: disk kind=disk_full"), HUB_REFUSAL_LOG_PER_S);
    assert_int_equal(count(log, "WARN test: quota again kind=quota"), HUB_REFUSAL_LOG_PER_S);
    assert_non_null(strstr(log, "suppressed 10 similar messages kind=quota"));
    assert_non_null(strstr(log, "suppressed 5 similar messages kind=disk_full"));
    free(log);
}

static void *flood(void *arg)
{
    (void)arg;
    for (int i = 0; i < 2000; i++)
        hub_refused(HUB_REFUSED_MQTT_PROTOCOL, "test", "bad packet i=%d", i);
    return NULL;
}

static void test_refusals_threads_share_one_budget(void **state)
{
    (void)state;
    reset_summaries();
    uint64_t before = hub_refusal_count(HUB_REFUSED_MQTT_PROTOCOL);
    capture c;
    capture_start(&c);
    room_in_second();
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, flood, NULL), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    hub_refusals_summarize();
    char *log = capture_end(&c);
    assert_int_equal(hub_refusal_count(HUB_REFUSED_MQTT_PROTOCOL) - before, 8000);
    int lines = count(log, "kind=mqtt_protocol\n") - 1; /* minus the summary */
    /* Exact within one second; a run that crossed into the next second may log one more budget.
     */
    assert_true(lines == HUB_REFUSAL_LOG_PER_S || lines == 2 * HUB_REFUSAL_LOG_PER_S);
    char expect[96];
    snprintf(expect, sizeof expect, "suppressed %d similar messages kind=mqtt_protocol",
             8000 - lines);
    assert_non_null(strstr(log, expect));
    free(log);
}

static void test_refusals_count_even_when_warnings_are_off(void **state)
{
    (void)state;
    reset_summaries();
    uint64_t before = hub_refusal_count(HUB_REFUSED_DPS);
    log_set_level(LOG_LVL_ERROR);
    capture c;
    capture_start(&c);
    hub_refused(HUB_REFUSED_DPS, "test", "refused");
    char *log = capture_end(&c);
    log_set_level(LOG_LVL_INFO);
    assert_string_equal(log, "");
    free(log);
    assert_int_equal(hub_refusal_count(HUB_REFUSED_DPS) - before, 1);
    assert_int_equal(hub_refusal_count(HUB_REFUSED_COUNT_), 0);
    assert_string_equal(hub_refusal_name(HUB_REFUSED_COUNT_), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refusals_burst_logs_budget_and_counts_all),
        cmocka_unit_test(test_refusals_kinds_have_separate_budgets_and_seconds_renew),
        cmocka_unit_test(test_refusals_threads_share_one_budget),
        cmocka_unit_test(test_refusals_count_even_when_warnings_are_off),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
