/* logCollectors: the periodic report and what it remembers as reported. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cap_fixture.h"

static int64_t fixed_now(void *ctx)
{
    (void)ctx;
    return 1700000000000;
}

/* configd's logs.collect answering the collectors in collectors_json. */
static void collect(cap_fixture *f, cap_timer *t, const char *collectors_json)
{
    char result[48 * 1024 + 64];
    snprintf(result, sizeof result, "{\"collectors\":%s}", collectors_json);
    fake_op ops[] = {{"logs.collect", IOTDM_OK, result, NULL}};
    f->configd.ops = ops;
    f->configd.nops = 1;
    t->run_due(t->ctx, fixed_now(NULL));
    f->configd.ops = NULL;
    f->configd.nops = 0;
}

/* A collection whose report cannot be stored (here: larger than a twin section may be) must not
 * count as reported. It used to: the next report then nulled the names of that failed one, so
 * the collector the twin really showed ("a") was never removed from it. */
static void test_logs_failed_report_is_not_remembered_as_reported(void **state)
{
    (void)state;
    cap_fixture f;
    cap_fixture_init(&f, NULL, 0);
    f.env.now_ms = fixed_now;
    void *lc = NULL;
    cap_timer timer;
    assert_int_equal(cap_logs_start(&f.env, &lc, &timer), IOTDM_OK);

    collect(&f, &timer, "{\"a\":{\"enabled\":true}}");
    json_t *ack = cap_fixture_next_ack(&f, "logCollectors");
    assert_non_null(json_object_get(json_object_get(ack, "value"), "a"));
    json_decref(ack);

    /* "a" replaced by "b", whose value is too large for the twin: nothing is queued. */
    static char big[40 * 1024];
    memset(big, 'x', sizeof big - 1);
    char collectors[48 * 1024];
    snprintf(collectors, sizeof collectors, "{\"b\":{\"enabled\":true,\"note\":\"%s\"}}", big);
    collect(&f, &timer, collectors);
    assert_null(cap_fixture_next_ack(&f, "logCollectors"));

    /* Everything gone: the twin still shows "a", so "a" is what must become null. */
    collect(&f, &timer, "{}");
    ack = cap_fixture_next_ack(&f, "logCollectors");
    assert_non_null(ack);
    json_t *value = json_object_get(ack, "value");
    assert_true(json_is_null(json_object_get(value, "a")));
    json_decref(ack);

    cap_logs_stop(lc);
    cap_fixture_deinit(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_logs_failed_report_is_not_remembered_as_reported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
