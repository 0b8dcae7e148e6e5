/* The executor of units of work: order, atomicity per unit, durability before completion,
 * snapshot reads, the disk reserve, effects, and several loops at once. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "hub/core/loop.h"
#include "hub/core/work.h"
#include "hub/hub.h"
#include "store_fixture.h"

typedef struct {
    fixture *f;
    hub h;
    atomic_int durable_calls;
} world;

static void on_durable(void *arg, int64_t seq)
{
    (void)seq;
    world *w = arg;
    atomic_fetch_add(&w->durable_calls, 1);
}

static int world_setup(void **state)
{
    if (setup(state) != 0)
        return -1;
    fixture *f = *state;
    world *w = calloc(1, sizeof *w);
    w->f = f;
    hub_store *store = f->s;
    f->s = NULL; /* the executor owns it now */
    if (hub_exec_start(store, 1, f->dir, on_durable, w, &w->h.exec) != IOTDM_OK)
        return -1;
    w->h.nloops = 2;
    for (unsigned i = 0; i < 2; i++)
        if (hub_loop_init(&w->h.loops[i], &w->h, i) != IOTDM_OK)
            return -1;
    *state = w;
    return 0;
}

static int world_teardown(void **state)
{
    world *w = *state;
    hub_exec_stop(w->h.exec);
    for (unsigned i = 0; i < 2; i++) {
        hub_loop_drain(&w->h.loops[i]);
        hub_loop_deinit(&w->h.loops[i]);
    }
    fixture *f = w->f;
    free(w);
    *state = f;
    return teardown(state);
}

/* Runs the loop's base until *done reaches want (or 10 s pass). */
static void run_until(hub_loop *loop, atomic_int *done, int want)
{
    for (int i = 0; i < 10000 && atomic_load(done) < want; i++) {
        struct timeval tv = {0, 1000};
        event_base_loopexit(loop->base, &tv);
        event_base_dispatch(loop->base);
    }
}

typedef struct {
    hub_work w;
    char id[16];
    bool fail_after_write;
    int *order;
    int *next;
    int index;
    atomic_int *done;
    iotdm_result result;
    bool effect_ran;
} create_unit;

static iotdm_result create_run(hub_work *w, hub_store *store)
{
    create_unit *u = (create_unit *)w;
    hub_device d = {0};
    snprintf(d.device_id, sizeof d.device_id, "%s", u->id);
    d.enabled = true;
    iotdm_result r = hub_store_device_create(store, &d);
    if (r == IOTDM_OK && u->fail_after_write)
        return IOTDM_E_PRECONDITION; /* the unit fails after writing: its write must go */
    return r;
}

static void create_done(hub_work *w)
{
    create_unit *u = (create_unit *)w;
    u->order[(*u->next)++] = u->index;
    u->result = w->result;
    atomic_fetch_add(u->done, 1);
}

static void test_work_units_complete_in_order_and_fail_alone(void **state)
{
    world *wd = *state;
    hub_loop *loop = &wd->h.loops[0];
    enum { N = 50 };
    create_unit units[N];
    int order[N], next = 0;
    atomic_int done = 0;
    memset(units, 0, sizeof units);
    for (int i = 0; i < N; i++) {
        snprintf(units[i].id, sizeof units[i].id, "d%d", i);
        units[i].fail_after_write = i == 7;
        units[i].order = order;
        units[i].next = &next;
        units[i].index = i;
        units[i].done = &done;
        hub_work_submit(loop, &units[i].w, create_run, create_done, 0);
    }
    run_until(loop, &done, N);
    assert_int_equal(atomic_load(&done), N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(order[i], i);
        assert_int_equal(units[i].result, i == 7 ? IOTDM_E_PRECONDITION : IOTDM_OK);
    }
    /* Durable before the completions: the syncer reported at least one group. */
    assert_true(atomic_load(&wd->durable_calls) >= 1);
    /* What the units wrote is in the database file, seen by a fresh connection. */
    hub_store *check = NULL;
    assert_int_equal(hub_store_open(wd->f->path, &check), IOTDM_OK);
    hub_device got;
    assert_int_equal(hub_store_device_get(check, "d6", &got), IOTDM_OK);
    assert_int_equal(hub_store_device_get(check, "d7", &got), IOTDM_E_NOT_FOUND);
    assert_int_equal(hub_store_device_get(check, "d8", &got), IOTDM_OK);
    hub_store_close(check);
}

typedef struct {
    hub_work w;
    size_t count;
    atomic_int *done;
} count_unit;

static iotdm_result count_run(hub_work *w, hub_store *store)
{
    hub_device_stats s;
    iotdm_result r = hub_store_device_stats(store, &s);
    ((count_unit *)w)->count = s.total;
    return r;
}

static void count_done(hub_work *w)
{
    atomic_fetch_add(((count_unit *)w)->done, 1);
}

static void test_work_snapshot_reads_committed_state(void **state)
{
    world *wd = *state;
    hub_loop *loop = &wd->h.loops[0];
    create_unit c = {0};
    int order[1], next = 0;
    atomic_int done = 0;
    snprintf(c.id, sizeof c.id, "snap");
    c.order = order;
    c.next = &next;
    c.done = &done;
    hub_work_submit(loop, &c.w, create_run, create_done, 0);
    run_until(loop, &done, 1);
    count_unit q = {.done = &done};
    hub_work_submit(loop, &q.w, count_run, count_done, HUB_WORK_SNAPSHOT);
    run_until(loop, &done, 2);
    assert_int_equal(atomic_load(&done), 2);
    assert_int_equal(q.w.result, IOTDM_OK);
    assert_int_equal(q.count, 1);
}

static void test_work_disk_reserve_refuses_growth_only(void **state)
{
    world *wd = *state;
    hub_loop *loop = &wd->h.loops[0];
    hub_exec_set_disk_reserve(wd->h.exec, UINT64_MAX / 2); /* more than any disk has */
    create_unit grow = {0}, keep = {0};
    int order[2], next = 0;
    atomic_int done = 0;
    snprintf(grow.id, sizeof grow.id, "grow");
    snprintf(keep.id, sizeof keep.id, "keep");
    grow.order = keep.order = order;
    grow.next = keep.next = &next;
    grow.done = keep.done = &done;
    hub_work_submit(loop, &grow.w, create_run, create_done, HUB_WORK_GROWS);
    hub_work_submit(loop, &keep.w, create_run, create_done, 0);
    run_until(loop, &done, 2);
    assert_int_equal(grow.result, -ENOSPC);
    assert_int_equal(keep.result, IOTDM_OK);
    hub_exec_stats st;
    hub_exec_get_stats(wd->h.exec, &st);
    assert_true(st.disk_low);
}

static void effect_fn(hub_loop *loop, void *arg)
{
    create_unit *u = arg;
    u->effect_ran = !loop->stopping;
}

static iotdm_result effect_run(hub_work *w, hub_store *store)
{
    create_unit *u = (create_unit *)w;
    iotdm_result r = create_run(w, store);
    assert_true(hub_work_after(w, effect_fn, u));
    return r;
}

static void test_work_effects_run_only_after_success(void **state)
{
    world *wd = *state;
    hub_loop *loop = &wd->h.loops[0];
    create_unit ok = {0}, bad = {0};
    int order[2], next = 0;
    atomic_int done = 0;
    snprintf(ok.id, sizeof ok.id, "eff1");
    snprintf(bad.id, sizeof bad.id, "eff1"); /* exists by then: fails */
    ok.order = bad.order = order;
    ok.next = bad.next = &next;
    ok.done = bad.done = &done;
    hub_work_submit(loop, &ok.w, effect_run, create_done, 0);
    hub_work_submit(loop, &bad.w, effect_run, create_done, 0);
    run_until(loop, &done, 2);
    assert_true(ok.effect_ran);
    assert_false(bad.effect_ran);
    assert_int_equal(bad.result, IOTDM_E_EXISTS);
}

/* PostgreSQL only: a unit failed by PostgreSQL to break a deadlock with another node's writer
 * runs again. The executor first commits its group (the other writer waits for a row an earlier
 * run locked), the other writer finishes, and the second run succeeds; what the first run arranged
 * to happen after it never does. */
typedef struct {
    hub_work w;
    atomic_int runs;
    atomic_int effects;
    atomic_int done;
    iotdm_result result;
} conflict_unit;

static void conflict_effect(hub_loop *loop, void *arg)
{
    if (!loop->stopping)
        atomic_fetch_add(&((conflict_unit *)arg)->effects, 1);
}

static iotdm_result conflict_run(hub_work *w, hub_store *store)
{
    conflict_unit *u = (conflict_unit *)w;
    atomic_fetch_add(&u->runs, 1);
    if (!hub_work_after(w, conflict_effect, u))
        return -ENOMEM;
    hub_twin t;
    iotdm_result r = hub_store_twin_get(store, "cf-x", &t); /* locks cf-x */
    if (r == IOTDM_OK) {
        hub_twin_deinit(&t);
        r = hub_store_twin_get(store, "cf-y", &t); /* waits for the other writer */
    }
    if (r == IOTDM_OK)
        hub_twin_deinit(&t);
    return r;
}

static void conflict_done(hub_work *w)
{
    conflict_unit *u = (conflict_unit *)w;
    u->result = w->result;
    atomic_fetch_add(&u->done, 1);
}

/* The other node's writer: holds cf-y, then, once the executor waits for it, wants cf-x. */
static void *other_writer(void *arg)
{
    hub_store *other = arg;
    usleep(300 * 1000); /* the executor waits first, so its deadlock check runs first */
    hub_twin t;
    iotdm_result r = hub_store_twin_get(other, "cf-x", &t);
    if (r == IOTDM_OK)
        hub_twin_deinit(&t);
    r = hub_store_unit_end(other, r);
    iotdm_result c = hub_store_commit(other);
    return (void *)(intptr_t)(r == IOTDM_OK && c == IOTDM_OK);
}

static void test_work_a_conflicting_unit_runs_again(void **state)
{
    world *wd = *state;
    if (!on_pg())
        skip();
    hub_store *other = NULL;
    assert_int_equal(hub_store_open(wd->f->path, &other), IOTDM_OK);
    create(other, "cf-x");
    create(other, "cf-y");
    assert_int_equal(hub_store_commit(other), IOTDM_OK);
    hub_twin t;
    assert_int_equal(hub_store_unit_begin(other), IOTDM_OK);
    assert_int_equal(hub_store_twin_get(other, "cf-y", &t), IOTDM_OK);
    hub_twin_deinit(&t);
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, other_writer, other), 0);
    hub_loop *loop = &wd->h.loops[0];
    conflict_unit u;
    memset(&u, 0, sizeof u);
    hub_work_submit(loop, &u.w, conflict_run, conflict_done, 0);
    run_until(loop, &u.done, 1);
    void *other_ok = NULL;
    pthread_join(thread, &other_ok);
    hub_store_close(other);
    assert_int_equal(atomic_load(&u.done), 1);
    assert_int_equal(u.result, IOTDM_OK);
    assert_int_equal(atomic_load(&u.runs), 2);
    assert_int_equal(atomic_load(&u.effects), 1);
    assert_true(other_ok != NULL);
}

typedef struct {
    world *wd;
    unsigned loop;
    atomic_int done;
} loop_job;

static void *loop_thread(void *arg)
{
    loop_job *j = arg;
    hub_loop *loop = &j->wd->h.loops[j->loop];
    enum { N = 500 };
    static create_unit units[2][N];
    static int orders[2][N];
    int next = 0;
    for (int i = 0; i < N; i++) {
        create_unit *u = &units[j->loop][i];
        memset(u, 0, sizeof *u);
        snprintf(u->id, sizeof u->id, "l%u-%d", j->loop, i);
        u->order = orders[j->loop];
        u->next = &next;
        u->index = i;
        u->done = &j->done;
        hub_work_submit(loop, &u->w, create_run, create_done, i % 3 ? HUB_WORK_SINGLE : 0);
        if (i % 50 == 49) { /* let batches go while more are submitted */
            struct timeval tv = {0, 0};
            event_base_loopexit(loop->base, &tv);
            event_base_dispatch(loop->base);
        }
    }
    run_until(loop, &j->done, N);
    for (int i = 0; i < N && i < atomic_load(&j->done); i++)
        if (orders[j->loop][i] != i)
            return (void *)1;
    return NULL;
}

static void test_work_two_loops_at_once(void **state)
{
    world *wd = *state;
    loop_job jobs[2] = {{wd, 0, 0}, {wd, 1, 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, loop_thread, &jobs[i]), 0);
    void *res[2];
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], &res[i]);
    assert_null(res[0]);
    assert_null(res[1]);
    assert_int_equal(atomic_load(&jobs[0].done), 500);
    assert_int_equal(atomic_load(&jobs[1].done), 500);
    hub_exec_stats st;
    hub_exec_get_stats(wd->h.exec, &st);
    assert_true(st.groups < 1000); /* grouped: fewer commits than units */
}

#define TW(fn) cmocka_unit_test_setup_teardown(fn, world_setup, world_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TW(test_work_units_complete_in_order_and_fail_alone),
        TW(test_work_snapshot_reads_committed_state),
        TW(test_work_disk_reserve_refuses_growth_only),
        TW(test_work_effects_run_only_after_success),
        TW(test_work_two_loops_at_once),
        TW(test_work_a_conflicting_unit_runs_again),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
