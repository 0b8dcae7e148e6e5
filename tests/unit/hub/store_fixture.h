/* Shared fixture of the store unit tests: a fresh database per test. SQLite by default, in a
 * temporary directory; PostgreSQL when IOTDM_TEST_PG_DIR names a server started by
 * scripts/pg-tmp.sh (the tests CTest names NAME@postgresql), each test in a schema of its own. */
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
#include <libpq-fe.h>
#include <sqlite3.h>

#include "hub/store/store.h"

typedef struct {
    char dir[64];
    char path[512]; /* the store's location: a file, or a PostgreSQL URL naming the schema */
    char pg_base[256];
    char pg_schema[64];
    hub_store *s;
} fixture;

/* Whether the tests run against PostgreSQL. */
static inline bool on_pg(void)
{
    const char *dir = getenv("IOTDM_TEST_PG_DIR");
    return dir && dir[0];
}

/* A test that reads SQLite's own files or pragmas: skipped on PostgreSQL. */
#define SQLITE_ONLY()                                                                              \
    do {                                                                                           \
        if (on_pg())                                                                               \
            skip();                                                                                \
    } while (0)

/* The URL of the server scripts/pg-tmp.sh started in IOTDM_TEST_PG_DIR. */
static inline bool pg_base_url(char *out, size_t cap)
{
    char path[300];
    snprintf(path, sizeof path, "%s/port", getenv("IOTDM_TEST_PG_DIR"));
    FILE *fp = fopen(path, "r");
    int port = 0;
    if (!fp || fscanf(fp, "%d", &port) != 1)
        port = 0;
    if (fp)
        fclose(fp);
    snprintf(out, cap, "postgresql://iotdm@127.0.0.1:%d/iotdm", port);
    return port > 0;
}

/* Runs sql on its own connection to the test server; false (printed) on failure. */
static inline bool pg_admin(const char *base, const char *sql)
{
    PGconn *c = PQconnectdb(base);
    PQclear(PQexec(c, "SET client_min_messages = warning")); /* no DROP ... CASCADE notices */
    PGresult *r = PQexec(c, sql);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(stderr, "pg_admin: %s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    return ok;
}

static inline int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/iotdm-store-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    if (on_pg()) {
        static unsigned n;
        if (!pg_base_url(f->pg_base, sizeof f->pg_base))
            return -1;
        snprintf(f->pg_schema, sizeof f->pg_schema, "t_%d_%u", (int)getpid(), n++);
        char sql[128];
        snprintf(sql, sizeof sql, "CREATE SCHEMA %s", f->pg_schema);
        if (!pg_admin(f->pg_base, sql))
            return -1;
        snprintf(f->path, sizeof(f->path), "%s?options=-csearch_path%%3D%s", f->pg_base,
                 f->pg_schema);
    } else {
        snprintf(f->path, sizeof(f->path), "%s/hub.db", f->dir);
    }
    if (hub_store_open(f->path, &f->s) != IOTDM_OK)
        return -1;
    *state = f;
    return 0;
}

static inline int teardown(void **state)
{
    fixture *f = *state;
    hub_store_close(f->s);
    if (f->pg_schema[0]) {
        char sql[128];
        snprintf(sql, sizeof sql, "DROP SCHEMA %s CASCADE", f->pg_schema);
        (void)pg_admin(f->pg_base, sql);
    }
    static const char *const suffixes[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        char p[560];
        snprintf(p, sizeof(p), "%s/hub.db%s", f->dir, suffixes[i]);
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

/* The rows of table that a second, independent connection sees (committed ones), on either
 * backend. table is a constant of the test. */
static inline int64_t raw_count(const fixture *f, const char *table)
{
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM %s", table);
    if (!on_pg()) {
        sqlite3 *db = raw_open(f);
        int64_t n = raw_int(db, sql);
        sqlite3_close(db);
        return n;
    }
    PGconn *c = PQconnectdb(f->path);
    PGresult *r = PQexec(c, sql);
    int64_t n = PQresultStatus(r) == PGRES_TUPLES_OK ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : -1;
    PQclear(r);
    PQfinish(c);
    return n;
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
