/* Connection admission: the global cap, the per-source cap on unauthenticated connections (IPv4,
 * IPv6 by /64, IPv4-mapped), idempotent release, and no overshoot under concurrent use. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "hub/net/admission.h"

static struct sockaddr_in v4(const char *ip, unsigned port)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    assert_int_equal(inet_pton(AF_INET, ip, &a.sin_addr), 1);
    return a;
}

static struct sockaddr_in6 v6(const char *ip, unsigned port)
{
    struct sockaddr_in6 a;
    memset(&a, 0, sizeof a);
    a.sin6_family = AF_INET6;
    a.sin6_port = htons((uint16_t)port);
    assert_int_equal(inet_pton(AF_INET6, ip, &a.sin6_addr), 1);
    return a;
}

/* Source slots come from a keyed hash with a random key, so two different sources share a slot
 * once in 4096 tables: a test that needs them apart draws tables until they are. */
static hub_admission *new_separating(unsigned max, unsigned per, const struct sockaddr *x,
                                     const struct sockaddr *y)
{
    for (;;) {
        hub_admission *a = hub_admission_new(max, per);
        hub_admit_ticket tx, ty;
        assert_int_equal(hub_admission_enter(a, x, &tx), HUB_ADMIT_OK);
        assert_int_equal(hub_admission_enter(a, y, &ty), HUB_ADMIT_OK);
        bool apart = tx.source != ty.source;
        hub_admission_leave(a, &tx);
        hub_admission_leave(a, &ty);
        if (apart)
            return a;
        hub_admission_free(a);
    }
}

static void test_admission_global_cap_refuses_then_frees(void **state)
{
    (void)state;
    hub_admission *a = hub_admission_new(3, 0);
    hub_admit_ticket t[4];
    char ip[32];
    for (int i = 0; i < 3; i++) {
        snprintf(ip, sizeof ip, "10.0.0.%d", i + 1);
        struct sockaddr_in sa = v4(ip, 1000);
        assert_int_equal(hub_admission_enter(a, (struct sockaddr *)&sa, &t[i]), HUB_ADMIT_OK);
        assert_true(t[i].admitted && t[i].pending);
    }
    struct sockaddr_in sa = v4("10.0.0.9", 1000);
    assert_int_equal(hub_admission_enter(a, (struct sockaddr *)&sa, &t[3]), HUB_ADMIT_FULL);
    assert_false(t[3].admitted || t[3].pending);
    hub_admission_stats st;
    hub_admission_get_stats(a, &st);
    assert_int_equal(st.connections, 3);
    assert_int_equal(st.pending, 3);
    assert_int_equal(st.max_connections, 3);

    /* Authenticated connections still count globally. */
    hub_admission_authenticated(a, &t[0]);
    assert_int_equal(hub_admission_enter(a, (struct sockaddr *)&sa, &t[3]), HUB_ADMIT_FULL);
    hub_admission_leave(a, &t[1]);
    assert_int_equal(hub_admission_enter(a, (struct sockaddr *)&sa, &t[3]), HUB_ADMIT_OK);
    for (int i = 0; i < 4; i++)
        hub_admission_leave(a, &t[i]);
    hub_admission_get_stats(a, &st);
    assert_int_equal(st.connections, 0);
    assert_int_equal(st.pending, 0);
    hub_admission_free(a);
}

static void test_admission_source_cap_counts_unauthenticated_only(void **state)
{
    (void)state;
    struct sockaddr_in one = v4("192.0.2.7", 1), other = v4("198.51.100.1", 1);
    hub_admission *a = new_separating(100, 2, (struct sockaddr *)&one, (struct sockaddr *)&other);
    hub_admit_ticket t1, t2, t3, t4;
    assert_int_equal(hub_admission_enter(a, (struct sockaddr *)&one, &t1), HUB_ADMIT_OK);
    assert_int_equal(hub_admission_enter(a, (struct sockaddr *)&one, &t2), HUB_ADMIT_OK);
    /* The port does not make another source. */
    one.sin_port = htons(2);
    assert_int_equal(hub_admission_enter(a, (struct sockaddr *)&one, &t3), HUB_ADMIT_SOURCE_FULL);
    assert_false(t3.admitted);
    hub_admission_stats st;
    hub_admission_get_stats(a, &st);
    assert_int_equal(st.connections, 2); /* the refused one gave its global slot back */
    assert_int_equal(hub_admission_enter(a, (struct sockaddr *)&other, &t4), HUB_ADMIT_OK);
    hub_admission_leave(a, &t4);

    /* Once one authenticates, the source has room again. */
    hub_admission_authenticated(a, &t1);
    assert_false(t1.pending);
    assert_true(t1.admitted);
    assert_int_equal(hub_admission_enter(a, (struct sockaddr *)&one, &t3), HUB_ADMIT_OK);
    hub_admission_leave(a, &t1);
    hub_admission_leave(a, &t2);
    hub_admission_leave(a, &t3);
    hub_admission_free(a);
}

static void test_admission_ipv6_counts_per_64_and_mapped_as_ipv4(void **state)
{
    (void)state;
    hub_admit_ticket t[6];
    struct sockaddr_in6 x1 = v6("2001:db8:1:2::1", 1), x2 = v6("2001:db8:1:2:ffff::9", 1),
                        x3 = v6("2001:db8:1:2:abcd::", 1), y = v6("2001:db8:1:3::1", 1);
    hub_admission *a = new_separating(100, 2, (struct sockaddr *)&x1, (struct sockaddr *)&y);
    assert_int_equal(hub_admission_enter(a, (struct sockaddr *)&x1, &t[0]), HUB_ADMIT_OK);
    assert_int_equal(hub_admission_enter(a, (struct sockaddr *)&x2, &t[1]), HUB_ADMIT_OK);
    assert_int_equal(t[0].source, t[1].source);
    /* Another address of the same /64 is the same source. */
    assert_int_equal(hub_admission_enter(a, (struct sockaddr *)&x3, &t[2]), HUB_ADMIT_SOURCE_FULL);
    assert_int_equal(hub_admission_enter(a, (struct sockaddr *)&y, &t[2]), HUB_ADMIT_OK);
    for (int i = 0; i < 3; i++)
        hub_admission_leave(a, &t[i]);

    /* ::ffff:192.0.2.1 and 192.0.2.1 are one source. */
    struct sockaddr_in6 mapped = v6("::ffff:192.0.2.1", 1);
    struct sockaddr_in plain = v4("192.0.2.1", 1);
    assert_int_equal(hub_admission_enter(a, (struct sockaddr *)&mapped, &t[3]), HUB_ADMIT_OK);
    assert_int_equal(hub_admission_enter(a, (struct sockaddr *)&plain, &t[4]), HUB_ADMIT_OK);
    assert_int_equal(t[3].source, t[4].source);
    assert_int_equal(hub_admission_enter(a, (struct sockaddr *)&plain, &t[5]),
                     HUB_ADMIT_SOURCE_FULL);
    hub_admission_leave(a, &t[3]);
    hub_admission_leave(a, &t[4]);
    hub_admission_stats st;
    hub_admission_get_stats(a, &st);
    assert_int_equal(st.connections, 0);
    assert_int_equal(st.pending, 0);
    hub_admission_free(a);
}

static void test_admission_leave_and_authenticated_are_idempotent(void **state)
{
    (void)state;
    hub_admission *a = hub_admission_new(2, 1);
    struct sockaddr_in sa = v4("203.0.113.5", 1);
    hub_admit_ticket t, u, none;
    memset(&none, 0, sizeof none);
    assert_int_equal(hub_admission_enter(a, (struct sockaddr *)&sa, &t), HUB_ADMIT_OK);
    hub_admission_authenticated(a, &t);
    hub_admission_authenticated(a, &t);
    hub_admission_leave(a, &t);
    hub_admission_leave(a, &t);
    hub_admission_leave(a, &none); /* a ticket that holds nothing */
    hub_admission_stats st;
    hub_admission_get_stats(a, &st);
    assert_int_equal(st.connections, 0);
    assert_int_equal(st.pending, 0);
    /* Nothing went negative: the caps still hold exactly. */
    assert_int_equal(hub_admission_enter(a, (struct sockaddr *)&sa, &t), HUB_ADMIT_OK);
    assert_int_equal(hub_admission_enter(a, (struct sockaddr *)&sa, &u), HUB_ADMIT_SOURCE_FULL);
    hub_admission_leave(a, &t);
    hub_admission_free(a);
}

static void test_admission_zero_cap_is_derived_from_descriptors(void **state)
{
    (void)state;
    hub_admission *a = hub_admission_new(0, 0);
    hub_admission_stats st;
    hub_admission_get_stats(a, &st);
    assert_true(st.max_connections > 0);
    hub_admission_free(a);
}

/* Many threads entering and leaving at once never push the count past the cap. */
typedef struct {
    hub_admission *a;
    int over;
} race_ctx;

static void *racer(void *arg)
{
    race_ctx *ctx = arg;
    struct sockaddr_in sa = v4("10.1.1.1", 1);
    for (int i = 0; i < 20000; i++) {
        hub_admit_ticket t;
        if (hub_admission_enter(ctx->a, (struct sockaddr *)&sa, &t) == HUB_ADMIT_OK) {
            hub_admission_stats st;
            hub_admission_get_stats(ctx->a, &st);
            if (st.connections > 8)
                __atomic_store_n(&ctx->over, 1, __ATOMIC_RELAXED);
            if (i & 1)
                hub_admission_authenticated(ctx->a, &t);
            hub_admission_leave(ctx->a, &t);
        }
    }
    return NULL;
}

static void test_admission_concurrent_never_overshoots(void **state)
{
    (void)state;
    race_ctx ctx = {.a = hub_admission_new(8, 5)};
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, racer, &ctx), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(ctx.over, 0);
    hub_admission_stats st;
    hub_admission_get_stats(ctx.a, &st);
    assert_int_equal(st.connections, 0);
    assert_int_equal(st.pending, 0);
    hub_admission_free(ctx.a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_admission_global_cap_refuses_then_frees),
        cmocka_unit_test(test_admission_source_cap_counts_unauthenticated_only),
        cmocka_unit_test(test_admission_ipv6_counts_per_64_and_mapped_as_ipv4),
        cmocka_unit_test(test_admission_leave_and_authenticated_are_idempotent),
        cmocka_unit_test(test_admission_zero_cap_is_derived_from_descriptors),
        cmocka_unit_test(test_admission_concurrent_never_overshoots),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
