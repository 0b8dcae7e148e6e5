/* Unit tests of queries pushed down to the store (SQLite, and PostgreSQL in CTest's @postgresql
 * run): paged results against a brute-force evaluation over every twin, the twin index under
 * reported patches, index use, continuations. */
#include "store_fixture.h"

#include <jansson.h>

#include "hub/query/query.h"
#include "hub/twin_ops.h"

/* ---- a reproducible random fleet ---- */

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

#define FLEET      240
#define OVERFLOWED 2 /* devices whose tags have more nodes than the index takes */

static const char *const keys[] = {"a", "b", "c", "site", "temp"};
static const char *const strings[] = {"",       "a",   "ab", "abc",  "b", "site-1",
                                      "site-2", "x y", "5",  "true", "A", "Zed"};

/* 130 bytes: longer than the index keeps of a string. */
static const char long_prefix[] =
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

static json_t *random_scalar(void)
{
    char buf[160];
    switch (rnd(11)) {
    case 0:
    case 1:
        return json_integer((json_int_t)rnd(7) - 3);
    case 2:
        return json_real(((double)rnd(9) - 4) / 2.0); /* 1.0 and 1 must compare equal */
    case 3:
        return json_integer(INT64_C(4503599627370495) - (json_int_t)rnd(2));
    case 4:
    case 5:
        return json_string(strings[rnd(sizeof strings / sizeof strings[0])]);
    case 6:
        return json_boolean(rnd(2));
    case 7:
        return json_null();
    case 8:
        snprintf(buf, sizeof buf, "%s%c", long_prefix, "abc"[rnd(3)]);
        return json_string(buf);
    case 9:
        return json_string(long_prefix);
    default:
        return json_integer((json_int_t)rnd(3));
    }
}

static json_t *random_value(int depth);

static json_t *random_object(int depth, unsigned max_members)
{
    json_t *o = json_object();
    for (unsigned i = rnd(max_members + 1); i > 0; i--)
        json_object_set_new(o, keys[rnd(sizeof keys / sizeof keys[0])], random_value(depth + 1));
    return o;
}

static json_t *random_value(int depth)
{
    unsigned r = rnd(10);
    if (depth < 3 && r < 2)
        return random_object(depth, 3);
    if (r == 2) {
        json_t *a = json_array();
        for (unsigned i = rnd(3); i > 0; i--)
            json_array_append_new(a, random_scalar());
        return a;
    }
    return random_scalar();
}

static void set_section(json_t **section, json_t *value)
{
    json_decref(*section);
    *section = value;
}

static void put_twin(hub_store *s, const char *id, json_t *tags, json_t *desired, json_t *reported)
{
    hub_twin t;
    assert_int_equal(hub_store_twin_get(s, id, &t), IOTDM_OK);
    set_section(&t.tags, tags);
    set_section(&t.desired, desired);
    set_section(&t.reported, reported);
    t.version++;
    assert_int_equal(hub_store_twin_put(s, id, &t), IOTDM_OK);
    hub_twin_deinit(&t);
}

static const int64_t activity_ms[] = {0, INT64_C(1714521600000), INT64_C(1714608000123),
                                      INT64_C(1700000000000)};
static const char *const models[] = {"", "dtmi:a;1", "dtmi:b;1"};

static void random_identity(hub_store *s, const char *id)
{
    if (rnd(4) == 0) {
        hub_device d;
        assert_int_equal(hub_store_device_get(s, id, &d), IOTDM_OK);
        d.enabled = false;
        assert_int_equal(hub_store_device_update(s, &d, 0), IOTDM_OK);
    }
    if (rnd(3) == 0)
        assert_int_equal(hub_store_device_set_connection(s, id, true, 5, 1), IOTDM_OK);
    int64_t ms = activity_ms[rnd(4)];
    if (ms)
        assert_int_equal(hub_store_device_set_activity(s, id, ms, models[rnd(3)]), IOTDM_OK);
}

static json_t *big_tags(void)
{
    json_t *t = json_object();
    for (int i = 0; i <= 1000; i++) {
        char k[16];
        snprintf(k, sizeof k, "big%d", i);
        json_object_set_new(t, k, json_integer(i));
    }
    json_object_set_new(t, "site", json_string("site-1"));
    return t;
}

/* Devices are created in a shuffled order, so that id order and insertion order differ. */
static void make_fleet(hub_store *s)
{
    int order[FLEET];
    for (int i = 0; i < FLEET; i++)
        order[i] = i;
    for (int i = FLEET - 1; i > 0; i--) {
        int j = (int)rnd((unsigned)i + 1), x = order[i];
        order[i] = order[j];
        order[j] = x;
    }
    for (int i = 0; i < FLEET; i++) {
        char id[16];
        snprintf(id, sizeof id, "dev-%03d", order[i]);
        create(s, id);
        random_identity(s, id);
        json_t *tags = order[i] < OVERFLOWED ? big_tags() : random_object(0, 4);
        put_twin(s, id, tags, random_object(0, 3), random_object(0, 4));
    }
    assert_int_equal(hub_store_commit(s), IOTDM_OK);
}

/* ---- evaluating queries ---- */

static bool collect(void *ctx, const hub_device *d, const hub_twin *t)
{
    json_array_append_new(ctx, hub_twin_service_view(d, t));
    return true;
}

/* The result without the store's help: every twin through the evaluator. */
static json_t *brute_force(hub_store *s, const hub_query *q)
{
    json_t *docs = json_array();
    assert_int_equal(hub_store_twin_foreach(s, collect, docs), IOTDM_OK);
    hub_query_run *run = hub_query_run_new(q);
    size_t i;
    json_t *doc;
    json_array_foreach(docs, i, doc)
    {
        if (hub_query_source_of(q) == HUB_QUERY_FROM_DEVICES)
            assert_int_equal(hub_query_run_add(run, doc), IOTDM_OK);
    }
    json_decref(docs);
    json_t *rows = hub_query_run_finish(run);
    assert_non_null(rows);
    return rows;
}

/* Every page from the first, concatenated; *out_pages counts them. */
static json_t *all_pages(hub_store *s, const hub_query *q, size_t page_size, size_t *out_pages)
{
    json_t *rows = json_array();
    char cont[HUB_QUERY_CONTINUATION_MAX] = "";
    size_t pages = 0;
    do {
        hub_query_page page;
        assert_int_equal(hub_query_page_run(s, q, cont, page_size, &page), IOTDM_OK);
        /* Groups come whole in one page. */
        assert_true(json_array_size(page.items) <= page_size || (!pages && !page.continuation[0]));
        json_array_extend(rows, page.items);
        json_decref(page.items);
        snprintf(cont, sizeof cont, "%s", page.continuation);
        assert_true(++pages <= FLEET + 2);
    } while (cont[0]);
    if (out_pages)
        *out_pages = pages;
    return rows;
}

static hub_query *parse(const char *text)
{
    hub_query *q = NULL;
    char err[256];
    if (hub_query_parse(text, strlen(text), &q, err, sizeof err) != IOTDM_OK)
        fail_msg("%s: %s", text, err);
    return q;
}

static void assert_same_rows(const char *text, json_t *want, json_t *got)
{
    if (json_equal(want, got))
        return;
    char *w = json_dumps(want, JSON_COMPACT), *g = json_dumps(got, JSON_COMPACT);
    fprintf(stderr, "query: %s\nwant %zu rows: %.2000s\ngot %zu rows: %.2000s\n", text,
            json_array_size(want), w, json_array_size(got), g);
    free(w);
    free(g);
    fail_msg("paged pushdown result differs from brute force");
}

/* ---- generated queries ---- */

static const char *const paths[] = {"tags.a",
                                    "tags.b",
                                    "tags.c",
                                    "tags.site",
                                    "tags.temp",
                                    "tags.a.a",
                                    "tags.a.b",
                                    "tags.b.c.a",
                                    "tags.c[0]",
                                    "tags.zz",
                                    "tags.big7",
                                    "tags['site']",
                                    "properties.reported.a",
                                    "properties.reported.temp",
                                    "properties.reported.a.b",
                                    "properties.desired.b",
                                    "properties.desired.site",
                                    "properties.reported.$version",
                                    "properties.desired.$metadata",
                                    "deviceId",
                                    "status",
                                    "connectionState",
                                    "modelId",
                                    "lastActivityTime",
                                    "etag",
                                    "version",
                                    "Tags.SITE",
                                    "properties.Reported.temp"};

static const char *const literals[] = {
    "0",
    "1",
    "-1",
    "2",
    "1.5",
    "-2.0",
    "4503599627370495",
    "'a'",
    "'ab'",
    "''",
    "'site-1'",
    "'x y'",
    "'5'",
    "true",
    "false",
    "null",
    "'A'",
    "'dev-1'",
    "'dev-100'",
    "'enabled'",
    "'disabled'",
    "'Connected'",
    "'2024-05-01T00:00:00.000Z'",
    "'2024'",
    "'0001'",
    "'dtmi:a;1'",
    "'"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxb'",
    "'"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'",
    "undefined"};

#define PICK(a) a[rnd(sizeof a / sizeof a[0])]

static int put_leaf(char *b, size_t cap)
{
    static const char *const ops[] = {"=", "!=", "<>", "<", ">", "<=", ">="};
    static const char *const types[] = {"IS_DEFINED", "IS_NULL",   "IS_BOOL",  "IS_NUMBER",
                                        "IS_STRING",  "IS_OBJECT", "IS_ARRAY", "IS_PRIMITIVE"};
    static const char *const prefixes[] = {"'a'",       "'site'", "'dev-1'",    "'dtmi:'",
                                           "'2024-05'", "''",     "'xxxxxxxx'", "'S'"};
    switch (rnd(9)) {
    case 0:
    case 1:
    case 2:
        return snprintf(b, cap, "%s %s %s", PICK(paths), PICK(ops), PICK(literals));
    case 3:
        return snprintf(b, cap, "%s %s %s", PICK(literals), PICK(ops), PICK(paths));
    case 4: {
        bool third = rnd(2);
        return snprintf(b, cap, "%s %s [%s, %s%s%s]", PICK(paths), rnd(3) ? "IN" : "NIN",
                        PICK(literals), PICK(literals), third ? ", " : "",
                        third ? PICK(literals) : "");
    }
    case 5:
        return snprintf(b, cap, "%s(%s)", PICK(types), PICK(paths));
    case 6:
        return snprintf(b, cap, "%s(%s, %s%s)", rnd(4) ? "STARTSWITH" : "ENDSWITH", PICK(paths),
                        PICK(prefixes),
                        rnd(4)   ? ""
                        : rnd(2) ? ", true"
                                 : ", false");
    case 7:
        return snprintf(b, cap, "%s", PICK(paths));
    default:
        return snprintf(b, cap, "%s = %s", rnd(2) ? "tags.site" : "properties.reported.temp",
                        PICK(literals));
    }
}

static int put_expr(char *b, size_t cap, int depth)
{
    unsigned r = depth > 3 ? 9 : rnd(10);
    int n;
    if (r < 3) {
        n = snprintf(b, cap, "(");
        n += put_expr(b + n, cap - (size_t)n, depth + 1);
        n += snprintf(b + n, cap - (size_t)n, "%s", r < 2 ? " AND " : " OR ");
        n += put_expr(b + n, cap - (size_t)n, depth + 1);
        return n + snprintf(b + n, cap - (size_t)n, ")");
    }
    if (r == 3) {
        n = snprintf(b, cap, "NOT (");
        n += put_expr(b + n, cap - (size_t)n, depth + 1);
        return n + snprintf(b + n, cap - (size_t)n, ")");
    }
    return put_leaf(b, cap);
}

static void random_query(char *b, size_t cap)
{
    static const char *const heads[] = {
        "SELECT * FROM devices",
        "SELECT TOP 5 * FROM devices",
        "SELECT TOP 17 * FROM devices",
        "SELECT deviceId, tags.a, properties.reported.temp AS t FROM devices",
        "SELECT COUNT() AS n FROM devices",
        "SELECT tags.site, COUNT() AS n, SUM(tags.a) AS s, MIN(tags.b) AS lo, MAX(tags.b) AS hi,"
        " AVG(properties.reported.temp) AS m FROM devices",
        "SELECT * FROM devices.modules",
    };
    unsigned h = rnd(sizeof heads / sizeof heads[0]);
    int n = snprintf(b, cap, "%s", heads[h]);
    if (rnd(8) != 0) {
        n += snprintf(b + n, cap - (size_t)n, " WHERE ");
        n += put_expr(b + n, cap - (size_t)n, 0);
    }
    if (h == 5)
        snprintf(b + n, cap - (size_t)n, " GROUP BY tags.site");
}

static void test_query_store_random_queries_match_brute_force(void **state)
{
    fixture *f = *state;
    make_fleet(f->s);
    hub_store *reader;
    assert_int_equal(hub_store_open_reader(f->s, &reader), IOTDM_OK);
    static const size_t page_sizes[] = {1, 2, 3, 7, 50, 1000};
    for (int i = 0; i < 500; i++) {
        char text[4096];
        random_query(text, sizeof text);
        hub_query *q = parse(text);
        json_t *want = brute_force(reader, q);
        json_t *got = all_pages(reader, q, page_sizes[rnd(6)], NULL);
        assert_same_rows(text, want, got);
        json_decref(want);
        json_decref(got);
        hub_query_free(q);
    }
    hub_store_close(reader);
}

/* ---- candidates ---- */

typedef struct {
    size_t n;
    char ids[FLEET + 8][HUB_ID_MAX];
} candidates;

static bool count_candidate(void *ctx, const hub_device *d, const hub_twin *t)
{
    (void)t;
    candidates *c = ctx;
    snprintf(c->ids[c->n++], HUB_ID_MAX, "%s", d->device_id);
    return c->n < FLEET + 8;
}

static size_t candidate_count(hub_store *s, const char *text)
{
    static candidates c;
    c.n = 0;
    hub_query *q = parse(text);
    assert_int_equal(hub_store_query_page(s, q, NULL, count_candidate, &c), IOTDM_OK);
    hub_query_free(q);
    for (size_t i = 1; i < c.n; i++)
        assert_true(strcmp(c.ids[i - 1], c.ids[i]) < 0); /* in id order, each once */
    return c.n;
}

static size_t match_count(hub_store *s, const char *text)
{
    hub_query *q = parse(text);
    json_t *rows = brute_force(s, q);
    size_t n = json_array_size(rows);
    json_decref(rows);
    hub_query_free(q);
    return n;
}

/* The index narrows: a selective condition reads its matches (plus the twins whose section is
 * not indexed), not the fleet. */
static void test_query_store_index_narrows_candidates(void **state)
{
    fixture *f = *state;
    make_fleet(f->s);
    const struct {
        const char *where;
        size_t extra;         /* candidates beyond the matches of the part that compiles */
        const char *compiled; /* that part, when it is not the whole clause */
    } cases[] = {
        {"SELECT * FROM devices WHERE tags.site = 'site-1'", OVERFLOWED, NULL},
        {"SELECT * FROM devices WHERE properties.reported.temp = 2", 0, NULL},
        {"SELECT * FROM devices WHERE properties.reported.temp IN [1, 'a', true]", 0, NULL},
        {"SELECT * FROM devices WHERE IS_OBJECT(properties.desired.a)", 0, NULL},
        {"SELECT * FROM devices WHERE deviceId = 'dev-042'", 0, NULL},
        {"SELECT * FROM devices WHERE deviceId IN ['dev-001', 'dev-200', 'nope']", 0, NULL},
        {"SELECT * FROM devices WHERE STARTSWITH(deviceId, 'dev-1')", 0, NULL},
        {"SELECT * FROM devices WHERE status = 'disabled'", 0, NULL},
        {"SELECT * FROM devices WHERE modelId = 'dtmi:a;1' AND connectionState = 'Connected'", 0,
         NULL},
        /* SQLite narrows lastActivityTime; PostgreSQL leaves it to the evaluation. */
        {"SELECT * FROM devices WHERE lastActivityTime > '2024-05-01T00:00:00.000Z'",
         on_pg() ? FLEET : 0, NULL},
        {"SELECT * FROM devices WHERE lastActivityTime = '0001-01-01T00:00:00Z'",
         on_pg() ? FLEET : 0, NULL},
        {"SELECT * FROM devices WHERE properties.reported.a.b = 'ab' OR tags.b = -1", OVERFLOWED,
         NULL},
        {"SELECT * FROM devices WHERE tags.site = 'site-2' AND NOT (tags.a = 1)", OVERFLOWED,
         "SELECT * FROM devices WHERE tags.site = 'site-2'"},
        {"SELECT * FROM devices WHERE tags.zz = 1 AND tags.a != 3", OVERFLOWED,
         "SELECT * FROM devices WHERE tags.zz = 1"},
        {"SELECT * FROM devices WHERE tags.a = 1 AND false", 0, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t matches = match_count(f->s, cases[i].where);
        size_t bound = match_count(f->s, cases[i].compiled ? cases[i].compiled : cases[i].where);
        size_t got = candidate_count(f->s, cases[i].where);
        if (got > bound + cases[i].extra || got < matches)
            fail_msg("%s: %zu candidates for %zu matches", cases[i].where, got, matches);
    }
    /* Not narrowed: NOT, !=, a path into an array, case-folding STARTSWITH. */
    assert_int_equal(candidate_count(f->s, "SELECT * FROM devices WHERE NOT (tags.a = 1)"), FLEET);
    assert_int_equal(candidate_count(f->s, "SELECT * FROM devices WHERE tags.a != 1"), FLEET);
    assert_int_equal(candidate_count(f->s, "SELECT * FROM devices WHERE tags.c[0] = 1"), FLEET);
    assert_int_equal(
        candidate_count(f->s, "SELECT * FROM devices WHERE STARTSWITH(tags.b, 'a', true)"), FLEET);
}

/* ---- the index under reported patches ---- */

/* A device's reported patch, as the hub applies it: merge-patch, null deletes. */
static void patch(hub_store *s, const char *id, const char *json)
{
    json_t *p = json_loads(json, 0, NULL);
    assert_non_null(p);
    hub_twin t;
    assert_int_equal(hub_store_twin_get(s, id, &t), IOTDM_OK);
    assert_int_equal(twin_merge(t.reported, p), IOTDM_OK);
    t.reported_version++;
    assert_int_equal(hub_store_twin_put(s, id, &t), IOTDM_OK);
    hub_twin_deinit(&t);
    json_decref(p);
}

static int64_t index_rows(const fixture *f, const char *id)
{
    sqlite3 *db = raw_open(f);
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM twin_index WHERE device_id = '%s'", id);
    int64_t n = raw_int(db, sql);
    sqlite3_close(db);
    return n;
}

/* Matches and candidates of a condition must agree with the twins after each patch. */
static void expect(hub_store *s, const char *where, size_t matches)
{
    char text[256];
    snprintf(text, sizeof text, "SELECT * FROM devices WHERE %s", where);
    size_t got = candidate_count(s, text);
    if (match_count(s, text) != matches || got != matches)
        fail_msg("%s: %zu matches and %zu candidates, want %zu", where, match_count(s, text), got,
                 matches);
}

static void test_query_store_reported_patches_keep_index(void **state)
{
    fixture *f = *state;
    create(f->s, "p1");
    create(f->s, "p2");
    patch(f->s, "p1", "{\"temp\": 5, \"fw\": {\"version\": \"1.0\", \"ok\": true}, \"list\": [1]}");
    patch(f->s, "p2", "{\"temp\": 5}");
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);
    /* temp, fw, fw.version, fw.ok, list */
    if (!on_pg()) /* SQLite's own index rows */
        assert_int_equal(index_rows(f, "p1"), 5);
    expect(f->s, "properties.reported.temp = 5", 2);
    expect(f->s, "properties.reported.fw.version = '1.0'", 1);
    expect(f->s, "IS_ARRAY(properties.reported.list)", 1);

    patch(f->s, "p1", "{\"temp\": 7}"); /* update */
    expect(f->s, "properties.reported.temp = 5", 1);
    expect(f->s, "properties.reported.temp = 7", 1);
    expect(f->s, "properties.reported.temp >= 6", 1);

    patch(f->s, "p1", "{\"temp\": \"hot\"}"); /* another type */
    expect(f->s, "properties.reported.temp = 7", 0);
    expect(f->s, "properties.reported.temp > 0", 1);
    expect(f->s, "IS_STRING(properties.reported.temp)", 1);

    patch(f->s, "p1", "{\"fw\": {\"version\": null}}"); /* delete a leaf */
    expect(f->s, "IS_DEFINED(properties.reported.fw.version)", 0);
    expect(f->s, "properties.reported.fw.ok = true", 1);

    patch(f->s, "p1", "{\"fw\": \"gone\", \"list\": null}"); /* an object replaced, a delete */
    expect(f->s, "properties.reported.fw.ok = true", 0);
    expect(f->s, "properties.reported.fw = 'gone'", 1);
    expect(f->s, "IS_DEFINED(properties.reported.list)", 0);
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);
    if (!on_pg())                                 /* SQLite's own index rows */
        assert_int_equal(index_rows(f, "p1"), 2); /* temp, fw */

    patch(f->s, "p2", "{\"temp\": null}");
    expect(f->s, "IS_DEFINED(properties.reported.temp)", 1);
    assert_int_equal(hub_store_device_delete(f->s, "p1", 0), IOTDM_OK);
    expect(f->s, "IS_DEFINED(properties.reported.temp)", 0);
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);
    if (!on_pg()) /* SQLite's own index rows */
        assert_int_equal(index_rows(f, "p1"), 0);
}

/* A section with too many nodes is not indexed, and its twin is a candidate of every condition
 * on it, until it shrinks. */
static void test_query_store_oversized_section_is_always_a_candidate(void **state)
{
    SQLITE_ONLY(); /* SQLite's index and plans */
    fixture *f = *state;
    create(f->s, "big");
    create(f->s, "small");
    put_twin(f->s, "big", big_tags(), json_object(), json_object());
    put_twin(f->s, "small", json_pack("{s:s}", "site", "site-2"), json_object(), json_object());
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);
    assert_int_equal(index_rows(f, "big"), 1); /* the marker */
    assert_int_equal(candidate_count(f->s, "SELECT * FROM devices WHERE tags.site = 'site-2'"), 2);
    assert_int_equal(match_count(f->s, "SELECT * FROM devices WHERE tags.big500 = 500"), 1);
    assert_int_equal(candidate_count(f->s, "SELECT * FROM devices WHERE properties.reported.x = 1"),
                     0);
    put_twin(f->s, "big", json_pack("{s:s}", "site", "site-9"), json_object(), json_object());
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);
    assert_int_equal(index_rows(f, "big"), 1);
    assert_int_equal(candidate_count(f->s, "SELECT * FROM devices WHERE tags.site = 'site-2'"), 1);
    assert_int_equal(candidate_count(f->s, "SELECT * FROM devices WHERE tags.site = 'site-9'"), 1);
}

/* ---- plans ---- */

static void assert_plan(hub_store *s, const char *text, const char *index)
{
    hub_query *q = parse(text);
    char plan[2048];
    assert_int_equal(hub_store_sqlite_explain(s, q, plan, sizeof plan), IOTDM_OK);
    hub_query_free(q);
    if (!strstr(plan, index) || strstr(plan, "SCAN"))
        fail_msg("plan of \"%s\" does not use %s without a scan:\n%s", text, index, plan);
}

static void test_query_store_plans_use_indexes(void **state)
{
    SQLITE_ONLY(); /* SQLite's index and plans */
    fixture *f = *state;
    make_fleet(f->s);
    assert_plan(f->s, "SELECT * FROM devices WHERE tags.x = 'y'", "twin_index_value");
    assert_plan(f->s, "SELECT * FROM devices WHERE deviceId = 'a'", "PRIMARY KEY");
    assert_plan(f->s, "SELECT * FROM devices WHERE tags.x = 'y' AND properties.reported.t > 5",
                "twin_index_value");
    assert_plan(f->s, "SELECT * FROM devices WHERE tags.x IN ['a', 'b'] OR deviceId = 'a'",
                "twin_index_value");
    assert_plan(f->s, "SELECT * FROM devices WHERE modelId = 'dtmi:a;1'", "devices_model");
    assert_plan(f->s, "SELECT * FROM devices WHERE lastActivityTime < '2024'", "devices_activity");
}

/* ---- paging ---- */

static void test_query_store_continuation_tampering_refused(void **state)
{
    fixture *f = *state;
    make_fleet(f->s);
    hub_query *q = parse("SELECT * FROM devices WHERE tags.site != 'nope'");
    hub_query *other = parse("SELECT * FROM devices WHERE tags.site != 'nop'");
    hub_query_page page;
    assert_int_equal(hub_query_page_run(f->s, q, NULL, 3, &page), IOTDM_OK);
    json_decref(page.items);
    char good[HUB_QUERY_CONTINUATION_MAX];
    snprintf(good, sizeof good, "%s", page.continuation);
    assert_true(good[0]);
    assert_int_equal(hub_query_page_run(f->s, q, good, 3, &page), IOTDM_OK);
    json_decref(page.items);

    char bad[HUB_QUERY_CONTINUATION_MAX];
    for (size_t i = 0; good[i]; i++) {
        snprintf(bad, sizeof bad, "%s", good);
        bad[i] = bad[i] == 'A' ? 'B' : 'A';
        if (bad[i + 1] == '=' || bad[i] == '=')
            continue; /* padding may be rewritten without changing the bytes */
        assert_int_equal(hub_query_page_run(f->s, q, bad, 3, &page), IOTDM_E_MALFORMED);
    }
    snprintf(bad, sizeof bad, "%.*s", (int)strlen(good) - 4, good);
    assert_int_equal(hub_query_page_run(f->s, q, bad, 3, &page), IOTDM_E_MALFORMED);
    assert_int_equal(hub_query_page_run(f->s, q, "3", 3, &page), IOTDM_E_MALFORMED);
    assert_int_equal(hub_query_page_run(f->s, q, "not base64!", 3, &page), IOTDM_E_MALFORMED);
    /* Made for another query. */
    assert_int_equal(hub_query_page_run(f->s, other, good, 3, &page), IOTDM_E_MALFORMED);
    hub_query_free(q);
    hub_query_free(other);
}

static void test_query_store_top_counts_across_pages(void **state)
{
    fixture *f = *state;
    make_fleet(f->s);
    hub_query *q = parse("SELECT TOP 7 deviceId FROM devices WHERE STARTSWITH(deviceId, 'dev-')");
    size_t pages;
    json_t *rows = all_pages(f->s, q, 3, &pages);
    assert_int_equal(json_array_size(rows), 7);
    assert_int_equal(pages, 3); /* 3 + 3 + 1, and no page after the seventh row */
    assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 6), "deviceId")),
                        "dev-006");
    json_decref(rows);
    hub_query_free(q);

    q = parse("SELECT TOP 6 * FROM devices");
    rows = all_pages(f->s, q, 3, &pages);
    assert_int_equal(json_array_size(rows), 6);
    assert_int_equal(pages, 2);
    json_decref(rows);
    hub_query_free(q);
}

static void test_query_store_other_sources_valid_and_empty(void **state)
{
    fixture *f = *state;
    make_fleet(f->s);
    static const char *const texts[] = {"SELECT * FROM devices.modules",
                                        "SELECT * FROM devices.jobs WHERE status = 'completed'"};
    for (size_t i = 0; i < 2; i++) {
        hub_query *q = parse(texts[i]);
        hub_query_page page;
        assert_int_equal(hub_query_page_run(f->s, q, NULL, 10, &page), IOTDM_OK);
        assert_int_equal(json_array_size(page.items), 0);
        assert_string_equal(page.continuation, "");
        json_decref(page.items);
        hub_query_free(q);
    }
}

static void test_query_store_group_cap_refused(void **state)
{
    (void)state;
    hub_query *q = parse("SELECT tags.n, COUNT() FROM devices GROUP BY tags.n");
    hub_query_run *run = hub_query_run_new(q);
    iotdm_result r = IOTDM_OK;
    for (int i = 0; i <= HUB_QUERY_MAX_GROUPS && r == IOTDM_OK; i++) {
        json_t *doc = json_pack("{s:{s:i}}", "tags", "n", i);
        r = hub_query_run_add(run, doc);
        json_decref(doc);
        if (i < HUB_QUERY_MAX_GROUPS)
            assert_int_equal(r, IOTDM_OK);
    }
    assert_int_equal(r, IOTDM_E_TOO_LARGE);
    assert_null(hub_query_run_finish(run));
    hub_query_free(q);
}

/* The migration that adds the index builds it from the twins already stored; so does reopening
 * a database whose index was turned off. */
static void test_query_store_index_built_for_existing_twins(void **state)
{
    SQLITE_ONLY(); /* reads SQLite's own state */
    fixture *f = *state;
    make_fleet(f->s);
    hub_store_close(f->s);
    sqlite3 *db = raw_open(f);
    assert_int_equal(sqlite3_exec(db,
                                  "DROP TABLE twin_index; DROP TABLE twin_index_state;"
                                  "DROP INDEX devices_enabled; DROP INDEX devices_connected;"
                                  "DROP INDEX devices_model; DROP INDEX devices_activity;"
                                  "PRAGMA user_version = 8;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(hub_store_open(f->path, &f->s), IOTDM_OK);
    const char *text = "SELECT * FROM devices WHERE properties.reported.temp = 2";
    assert_int_equal(candidate_count(f->s, text), match_count(f->s, text));
    assert_true(match_count(f->s, text) > 0);

    assert_int_equal(hub_store_sqlite_twin_index(f->s, false), IOTDM_OK);
    put_twin(f->s, "dev-010", json_object(), json_object(), json_pack("{s:i}", "temp", 2));
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);
    assert_int_equal(candidate_count(f->s, text), FLEET); /* stale: every twin */
    hub_store_close(f->s);
    assert_int_equal(hub_store_open(f->path, &f->s), IOTDM_OK);
    assert_int_equal(candidate_count(f->s, text), match_count(f->s, text));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_query_store_random_queries_match_brute_force),
        T(test_query_store_index_narrows_candidates),
        T(test_query_store_reported_patches_keep_index),
        T(test_query_store_oversized_section_is_always_a_candidate),
        T(test_query_store_plans_use_indexes),
        T(test_query_store_continuation_tampering_refused),
        T(test_query_store_top_counts_across_pages),
        T(test_query_store_other_sources_valid_and_empty),
        T(test_query_store_group_cap_refused),
        T(test_query_store_index_built_for_existing_twins),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
