/* Shared fixture of the store unit tests: a fresh database in a temporary directory per test. */
#ifndef IOTDM_TEST_STORE_FIXTURE_H
#define IOTDM_TEST_STORE_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "hub/store/store.h"

typedef struct {
    char dir[64];
    char path[128];
    hub_store *s;
} fixture;

static inline int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/iotdm-store-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/hub.db", f->dir);
    if (hub_store_open(f->path, &f->s) != IOTDM_OK)
        return -1;
    *state = f;
    return 0;
}

static inline int teardown(void **state)
{
    fixture *f = *state;
    hub_store_close(f->s);
    static const char *const suffixes[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        char p[160];
        snprintf(p, sizeof(p), "%s%s", f->path, suffixes[i]);
        unlink(p);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

/* A second, independent connection: sees only what the store has committed. */
static inline sqlite3 *raw_open(const fixture *f)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    return db;
}

static inline int64_t raw_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    return v;
}

/* The query plan of sql (a statement of the store's) walks index and needs no sort. */
static inline void assert_plan_uses_index(sqlite3 *db, const char *sql, const char *index)
{
    char q[512];
    snprintf(q, sizeof q, "EXPLAIN QUERY PLAN %s", sql);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, q, -1, &st, NULL), SQLITE_OK);
    char plan[512] = "";
    while (sqlite3_step(st) == SQLITE_ROW) {
        strncat(plan, (const char *)sqlite3_column_text(st, 3), sizeof plan - strlen(plan) - 2);
        strcat(plan, ";");
    }
    sqlite3_finalize(st);
    if (!strstr(plan, index) || strstr(plan, "TEMP B-TREE"))
        fail_msg("plan of \"%s\" does not walk %s without a sort: %s", sql, index, plan);
}

static inline hub_device make_device(const char *id)
{
    hub_device d;
    memset(&d, 0, sizeof(d));
    snprintf(d.device_id, sizeof(d.device_id), "%s", id);
    d.enabled = true;
    d.auth_type = HUB_AUTH_SAS;
    snprintf(d.primary_key, sizeof(d.primary_key), "cHJpbWFyeQ==");
    snprintf(d.secondary_key, sizeof(d.secondary_key), "c2Vjb25kYXJ5");
    return d;
}

static inline void create(hub_store *s, const char *id)
{
    hub_device d = make_device(id);
    assert_int_equal(hub_store_device_create(s, &d), IOTDM_OK);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

#endif
