/* The timing wheel: deadlines fire once, not early, within a tick of being due; cancel and re-arm
 * from callbacks; deadlines past one turn of the wheel. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "common/timeutil.h"
#include "hub/core/wheel.h"

typedef struct {
    hub_wheel_node node;
    int fired;
    int64_t fired_at;
    hub_wheel *w;
    hub_wheel_node *victim; /* cancelled by this one's callback */
    int64_t rearm_ms;       /* re-armed this far ahead once */
} timer;

static void on_fire(hub_wheel_node *n)
{
    timer *t = (timer *)n;
    t->fired++;
    t->fired_at = time_mono_ms();
    if (t->victim)
        hub_wheel_cancel(t->w, t->victim);
    if (t->rearm_ms && t->fired == 1)
        hub_wheel_arm(t->w, n, time_mono_ms() + t->rearm_ms, on_fire);
}

static void run_for(struct event_base *base, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
}

static void test_wheel_fires_once_in_order_not_early(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    hub_wheel w;
    assert_int_equal(hub_wheel_init(&w, base), IOTDM_OK);
    timer t[4] = {0};
    int64_t start = time_mono_ms();
    int delays[4] = {300, 0, 900, 600};
    for (int i = 0; i < 4; i++) {
        t[i].w = &w;
        hub_wheel_arm(&w, &t[i].node, start + delays[i], on_fire);
    }
    run_for(base, 1500);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(t[i].fired, 1);
        assert_true(t[i].fired_at >= start + delays[i]);
        assert_true(t[i].fired_at <= start + delays[i] + 2 * HUB_WHEEL_TICK_MS + 100);
    }
    hub_wheel_deinit(&w);
    event_base_free(base);
}

static void test_wheel_cancel_and_rearm_from_callbacks(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    hub_wheel w;
    assert_int_equal(hub_wheel_init(&w, base), IOTDM_OK);
    timer killer = {.w = &w}, victim = {.w = &w}, again = {.w = &w, .rearm_ms = 400};
    int64_t start = time_mono_ms();
    /* Same slot: the killer cancels the victim before its turn comes. */
    killer.victim = &victim.node;
    hub_wheel_arm(&w, &killer.node, start + 100, on_fire);
    hub_wheel_arm(&w, &victim.node, start + 100, on_fire);
    hub_wheel_arm(&w, &again.node, start + 100, on_fire);
    run_for(base, 1200);
    assert_int_equal(killer.fired, 1);
    assert_int_equal(victim.fired, 0);
    assert_int_equal(again.fired, 2);
    /* Cancelling what is not armed, twice, is harmless. */
    hub_wheel_cancel(&w, &victim.node);
    hub_wheel_cancel(&w, &victim.node);
    hub_wheel_deinit(&w);
    event_base_free(base);
}

static void test_wheel_deadline_beyond_one_turn(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    hub_wheel w;
    assert_int_equal(hub_wheel_init(&w, base), IOTDM_OK);
    timer later = {.w = &w}, soon = {.w = &w};
    int64_t start = time_mono_ms();
    /* Same slot as a near deadline, a full turn later: only the near one fires now. */
    hub_wheel_arm(&w, &soon.node, start + 200, on_fire);
    hub_wheel_arm(&w, &later.node, start + 200 + (int64_t)HUB_WHEEL_SLOTS * HUB_WHEEL_TICK_MS,
                  on_fire);
    run_for(base, 800);
    assert_int_equal(soon.fired, 1);
    assert_int_equal(later.fired, 0);
    hub_wheel_deinit(&w);
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wheel_fires_once_in_order_not_early),
        cmocka_unit_test(test_wheel_cancel_and_rearm_from_callbacks),
        cmocka_unit_test(test_wheel_deadline_beyond_one_turn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
