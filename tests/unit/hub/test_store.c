/* Unit tests for the SQLite hub store: registry, twins, sessions, If-Match, cascades, durability.
 */
#include <signal.h>
#include <sys/wait.h>

#include "hub/store/sqlite/sqlite_internal.h" /* only to make the disk "full" from a test */
#include "store_fixture.h"
#include "common/alloc.h"
#include "hub/twin_ops.h"

static void test_store_open_creates_versioned_wal_schema(void **state)
{
    SQLITE_ONLY(); /* reads SQLite's own state */
    fixture *f = *state;
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);
    sqlite3 *db = raw_open(f);
    assert_int_equal(raw_int(db, "PRAGMA user_version"), sq_schema_version());
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    assert_int_equal(raw_int(db,
                             "SELECT COUNT(*) FROM sqlite_master WHERE name IN "
                             "('devices','twins','c2d','telemetry','sessions','policies','files')"),
                     7);

    /* Reopening an existing database keeps it; a newer schema is refused, not clobbered. */
    hub_store_close(f->s);
    assert_int_equal(hub_store_open(f->path, &f->s), IOTDM_OK);
    hub_store_close(f->s);
    f->s = NULL;
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    hub_store *s2 = NULL;
    assert_int_equal(hub_store_open(f->path, &s2), IOTDM_E_UNSUPPORTED);
    assert_null(s2);
    assert_int_equal(raw_int(db, "PRAGMA user_version"), 99);
    sqlite3_close(db);
}

static void test_store_policy_put_get_count(void **state)
{
    fixture *f = *state;
    hub_policy p = {.rights = HUB_RIGHT_REGISTRY_READ | HUB_RIGHT_SERVICE_CONNECT};
    snprintf(p.name, sizeof(p.name), "iothubowner");
    snprintf(p.primary_key, sizeof(p.primary_key), "a2V5MQ==");
    snprintf(p.secondary_key, sizeof(p.secondary_key), "a2V5Mg==");
    assert_int_equal(hub_store_policy_count(f->s), 0);
    assert_int_equal(hub_store_policy_put(f->s, &p), IOTDM_OK);
    p.rights |= HUB_RIGHT_REGISTRY_WRITE;
    assert_int_equal(hub_store_policy_put(f->s, &p), IOTDM_OK); /* overwrite, not a second row */
    snprintf(p.name, sizeof(p.name), "device");
    p.rights = HUB_RIGHT_DEVICE_CONNECT;
    assert_int_equal(hub_store_policy_put(f->s, &p), IOTDM_OK);
    assert_int_equal(hub_store_policy_count(f->s), 2);

    hub_policy got;
    assert_int_equal(hub_store_policy_get(f->s, "iothubowner", &got), IOTDM_OK);
    assert_string_equal(got.name, "iothubowner");
    assert_string_equal(got.primary_key, "a2V5MQ==");
    assert_string_equal(got.secondary_key, "a2V5Mg==");
    assert_int_equal(got.rights, HUB_RIGHT_REGISTRY_READ | HUB_RIGHT_SERVICE_CONNECT |
                                     HUB_RIGHT_REGISTRY_WRITE);
    assert_int_equal(hub_store_policy_get(f->s, "nope", &got), IOTDM_E_NOT_FOUND);
    hub_policy empty = {0};
    assert_int_equal(hub_store_policy_put(f->s, &empty), IOTDM_E_MALFORMED);
}

static void test_store_device_create_get_and_empty_twin(void **state)
{
    fixture *f = *state;
    hub_device d = make_device("dev1");
    d.etag = 77;
    assert_int_equal(hub_store_device_create(f->s, &d), IOTDM_OK);
    assert_int_equal(d.etag, 1);
    assert_int_equal(strlen(d.generation_id), 18);

    hub_device got;
    assert_int_equal(hub_store_device_get(f->s, "dev1", &got), IOTDM_OK);
    assert_string_equal(got.device_id, "dev1");
    assert_string_equal(got.generation_id, d.generation_id);
    assert_int_equal(got.etag, 1);
    assert_true(got.enabled);
    assert_int_equal(got.auth_type, HUB_AUTH_SAS);
    assert_string_equal(got.primary_key, "cHJpbWFyeQ==");
    assert_string_equal(got.secondary_key, "c2Vjb25kYXJ5");
    assert_false(got.connected);

    hub_twin t;
    assert_int_equal(hub_store_twin_get(f->s, "dev1", &t), IOTDM_OK);
    assert_int_equal(json_object_size(t.tags), 0);
    assert_int_equal(json_object_size(t.desired), 0);
    assert_int_equal(json_object_size(t.reported), 0);
    assert_non_null(json_object_get(t.desired_meta, "$lastUpdated"));
    assert_non_null(json_object_get(t.reported_meta, "$lastUpdated"));
    assert_int_equal(t.desired_version, 1);
    assert_int_equal(t.reported_version, 1);
    hub_twin_deinit(&t);

    hub_device dup = make_device("dev1");
    assert_int_equal(hub_store_device_create(f->s, &dup), IOTDM_E_EXISTS);
    assert_int_equal(dup.etag, 0); /* untouched on failure */
    assert_string_equal(dup.generation_id, "");

    hub_device bad = make_device("");
    assert_int_equal(hub_store_device_create(f->s, &bad), IOTDM_E_MALFORMED);
    memset(bad.device_id, 'x', sizeof(bad.device_id)); /* no NUL at all */
    assert_int_equal(hub_store_device_create(f->s, &bad), IOTDM_E_MALFORMED);
    assert_int_equal(hub_store_device_get(f->s, "dev2", &got), IOTDM_E_NOT_FOUND);
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);
}

static void test_store_device_update_if_match(void **state)
{
    fixture *f = *state;
    create(f->s, "dev1");
    assert_int_equal(hub_store_device_set_connection(f->s, "dev1", true, 1000, 1), IOTDM_OK);
    assert_int_equal(hub_store_device_set_activity(f->s, "dev1", 2000, "dtmi:x;1"), IOTDM_OK);

    hub_device d;
    assert_int_equal(hub_store_device_get(f->s, "dev1", &d), IOTDM_OK);
    d.enabled = false;
    snprintf(d.status_reason, sizeof(d.status_reason), "stolen");
    d.connected = false;  /* stale view: must not overwrite connection state */
    d.model_id[0] = '\0'; /* nor the model id */
    assert_int_equal(hub_store_device_update(f->s, &d, 5), IOTDM_E_PRECONDITION);
    assert_int_equal(d.etag, 1);
    assert_int_equal(hub_store_device_update(f->s, &d, 1), IOTDM_OK);
    assert_int_equal(d.etag, 2);
    assert_int_equal(hub_store_device_update(f->s, &d, 0), IOTDM_OK); /* unconditional */
    assert_int_equal(d.etag, 3);

    hub_device got;
    assert_int_equal(hub_store_device_get(f->s, "dev1", &got), IOTDM_OK);
    assert_false(got.enabled);
    assert_string_equal(got.status_reason, "stolen");
    assert_int_equal(got.etag, 3);
    assert_true(got.connected);
    assert_int_equal(got.connection_state_updated_ms, 1000);
    assert_string_equal(got.model_id, "dtmi:x;1");

    hub_device ghost = make_device("ghost");
    assert_int_equal(hub_store_device_update(f->s, &ghost, 0), IOTDM_E_NOT_FOUND);
    assert_int_equal(hub_store_device_update(f->s, &ghost, 3), IOTDM_E_NOT_FOUND);
}

static void test_store_device_delete_cascades(void **state)
{
    SQLITE_ONLY(); /* reads SQLite's own state */
    fixture *f = *state;
    create(f->s, "dev1");
    create(f->s, "dev2");
    for (int i = 0; i < 2; i++) {
        hub_c2d m = {.enqueued_ms = 1};
        snprintf(m.device_id, sizeof(m.device_id), "%s", i ? "dev2" : "dev1");
        assert_int_equal(hub_store_c2d_enqueue(f->s, &m, 50), IOTDM_OK);
    }
    assert_int_equal(hub_store_session_put(f->s, "dev1", 3), IOTDM_OK);
    assert_int_equal(hub_store_session_put(f->s, "dev1/mod", 1), IOTDM_OK);
    assert_int_equal(hub_store_session_put(f->s, "dev2", 7), IOTDM_OK);
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);

    assert_int_equal(hub_store_device_delete(f->s, "dev1", 9), IOTDM_E_PRECONDITION);
    assert_int_equal(hub_store_device_delete(f->s, "dev1", 1), IOTDM_OK);
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);

    hub_twin t;
    uint32_t subs;
    assert_int_equal(hub_store_twin_get(f->s, "dev1", &t), IOTDM_E_NOT_FOUND);
    assert_int_equal(hub_store_c2d_count(f->s, "dev1"), 0);
    assert_int_equal(hub_store_session_get(f->s, "dev1", &subs), IOTDM_E_NOT_FOUND);
    assert_int_equal(hub_store_session_get(f->s, "dev1/mod", &subs), IOTDM_E_NOT_FOUND);
    assert_int_equal(hub_store_device_delete(f->s, "dev1", 0), IOTDM_E_NOT_FOUND);

    sqlite3 *db = raw_open(f);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM twins WHERE device_id = 'dev1'"), 0);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM c2d WHERE device_id = 'dev1'"), 0);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM sessions WHERE device_id = 'dev1'"), 0);
    sqlite3_close(db);

    /* The other device keeps everything. */
    assert_int_equal(hub_store_twin_get(f->s, "dev2", &t), IOTDM_OK);
    hub_twin_deinit(&t);
    assert_int_equal(hub_store_c2d_count(f->s, "dev2"), 1);
    assert_int_equal(hub_store_session_get(f->s, "dev2", &subs), IOTDM_OK);
    assert_int_equal(subs, 7);
    assert_int_equal(hub_store_device_delete(f->s, "dev2", 0), IOTDM_OK);
}

static void test_store_device_connection_activity_stats(void **state)
{
    fixture *f = *state;
    create(f->s, "a");
    create(f->s, "b");
    hub_device c = make_device("c");
    c.enabled = false;
    assert_int_equal(hub_store_device_create(f->s, &c), IOTDM_OK);

    assert_int_equal(hub_store_device_set_connection(f->s, "a", true, 10, 5), IOTDM_OK);
    assert_int_equal(hub_store_device_set_connection(f->s, "b", true, 11, 6), IOTDM_OK);
    /* An unknown device, or an older connection of a known one, changes nothing: not an error
     * for the connection writing. */
    assert_int_equal(hub_store_device_set_connection(f->s, "zz", true, 11, 7), IOTDM_OK);
    assert_int_equal(hub_store_device_set_connection(f->s, "a", false, 12, 4), IOTDM_OK);
    assert_int_equal(hub_store_device_set_activity(f->s, "a", 20, "dtmi:a;1"), IOTDM_OK);
    assert_int_equal(hub_store_device_set_activity(f->s, "a", 30, NULL), IOTDM_OK);
    assert_int_equal(hub_store_device_set_activity(f->s, "zz", 30, NULL), IOTDM_E_NOT_FOUND);

    hub_device got;
    assert_int_equal(hub_store_device_get(f->s, "a", &got), IOTDM_OK);
    assert_true(got.connected);
    assert_int_equal(got.connection_state_updated_ms, 10);
    assert_int_equal(got.last_activity_ms, 30);
    assert_string_equal(got.model_id, "dtmi:a;1");
    assert_int_equal(got.etag, 1); /* not identity changes */

    hub_device_stats st;
    assert_int_equal(hub_store_device_stats(f->s, &st), IOTDM_OK);
    assert_int_equal(st.total, 3);
    assert_int_equal(st.enabled, 2);
    assert_int_equal(st.disabled, 1);
    assert_int_equal(st.connected, 2);

    assert_int_equal(hub_store_device_disconnect_all(f->s, 99), IOTDM_OK);
    assert_int_equal(hub_store_device_stats(f->s, &st), IOTDM_OK);
    assert_int_equal(st.connected, 0);
    assert_int_equal(hub_store_device_get(f->s, "b", &got), IOTDM_OK);
    assert_false(got.connected);
    assert_int_equal(got.connection_state_updated_ms, 99);
}

typedef struct {
    char ids[64][HUB_ID_MAX];
    size_t n;
    size_t stop_after;
    hub_store *s;
    size_t inner;
} visit_log;

static bool log_device(void *ctx, const hub_device *d)
{
    visit_log *v = ctx;
    snprintf(v->ids[v->n++], HUB_ID_MAX, "%s", d->device_id);
    return v->stop_after == 0 || v->n < v->stop_after;
}

static void test_store_device_foreach_pages_in_id_order(void **state)
{
    fixture *f = *state;
    static const char *const ids[] = {"d03", "B", "d01", "a", "d02"};
    for (size_t i = 0; i < 5; i++)
        create(f->s, ids[i]);
    visit_log v = {0};
    assert_int_equal(hub_store_device_foreach(f->s, NULL, 3, log_device, &v), IOTDM_OK);
    assert_int_equal(v.n, 3);
    assert_string_equal(v.ids[0], "B"); /* byte order: upper case first */
    assert_string_equal(v.ids[1], "a");
    assert_string_equal(v.ids[2], "d01");
    v.n = 0;
    assert_int_equal(hub_store_device_foreach(f->s, "d01", 10, log_device, &v), IOTDM_OK);
    assert_int_equal(v.n, 2);
    assert_string_equal(v.ids[0], "d02");
    assert_string_equal(v.ids[1], "d03");
    v.n = 0;
    v.stop_after = 2;
    assert_int_equal(hub_store_device_foreach(f->s, NULL, 100, log_device, &v), IOTDM_OK);
    assert_int_equal(v.n, 2);
    v.n = 0;
    v.stop_after = 0;
    assert_int_equal(hub_store_device_foreach(f->s, "d03", 100, log_device, &v), IOTDM_OK);
    assert_int_equal(v.n, 0);
}

/* A visitor that calls back into the store, including the same iteration. */
static bool nested_visit(void *ctx, const hub_device *d)
{
    visit_log *v = ctx;
    visit_log inner = {0};
    assert_int_equal(hub_store_device_foreach(v->s, NULL, 100, log_device, &inner), IOTDM_OK);
    v->inner += inner.n;
    assert_int_equal(hub_store_device_set_activity(v->s, d->device_id, 5, NULL), IOTDM_OK);
    hub_device got;
    assert_int_equal(hub_store_device_get(v->s, d->device_id, &got), IOTDM_OK);
    v->n++;
    return true;
}

static void test_store_foreach_visitor_may_reenter(void **state)
{
    fixture *f = *state;
    create(f->s, "x1");
    create(f->s, "x2");
    create(f->s, "x3");
    visit_log v = {.s = f->s};
    assert_int_equal(hub_store_device_foreach(f->s, NULL, 100, nested_visit, &v), IOTDM_OK);
    assert_int_equal(v.n, 3);
    assert_int_equal(v.inner, 9);
    /* The cached statement is usable again afterwards. */
    visit_log again = {0};
    assert_int_equal(hub_store_device_foreach(f->s, NULL, 100, log_device, &again), IOTDM_OK);
    assert_int_equal(again.n, 3);
}

static void test_store_twin_put_get_roundtrip(void **state)
{
    fixture *f = *state;
    create(f->s, "dev1");
    create(f->s, "dev2");
    hub_twin t;
    assert_int_equal(hub_store_twin_get(f->s, "dev1", &t), IOTDM_OK);
    json_object_set_new(t.tags, "site", json_string("43"));
    json_object_set_new(t.desired, "rate", json_integer(5));
    json_object_set_new(t.reported, "temp", json_real(21.5));
    json_object_set_new(t.reported, "s", json_string("\xc3\xa9t\xc3\xa9"));
    json_object_set_new(t.desired_meta, "rate", json_pack("{s:s}", "$lastUpdated", "now"));
    t.desired_version = 2;
    t.reported_version = 7;
    t.version = 9;
    t.etag = 12;
    assert_int_equal(hub_store_twin_put(f->s, "dev1", &t), IOTDM_OK);
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);

    hub_twin got;
    assert_int_equal(hub_store_twin_get(f->s, "dev1", &got), IOTDM_OK);
    assert_true(json_equal(got.tags, t.tags));
    assert_true(json_equal(got.desired, t.desired));
    assert_true(json_equal(got.desired_meta, t.desired_meta));
    assert_true(json_equal(got.reported, t.reported));
    assert_true(json_equal(got.reported_meta, t.reported_meta));
    assert_int_equal(got.desired_version, 2);
    assert_int_equal(got.reported_version, 7);
    assert_int_equal(got.version, 9);
    assert_int_equal(got.etag, 12);
    hub_twin_deinit(&got);
    assert_null(got.tags);

    assert_int_equal(hub_store_twin_put(f->s, "ghost", &t), IOTDM_E_NOT_FOUND);
    json_t *saved = t.tags;
    t.tags = json_array();
    assert_int_equal(hub_store_twin_put(f->s, "dev1", &t), IOTDM_E_MALFORMED);
    json_decref(t.tags);
    t.tags = saved;
    hub_twin_deinit(&t);
}

/* A twin GET splices the device view from the stored texts: it must be byte for byte what the
 * parsed view serializes to, for empty and full sections alike. */
static void test_store_twin_texts_make_the_device_view(void **state)
{
    fixture *f = *state;
    create(f->s, "dev1");
    hub_twin t;
    assert_int_equal(hub_store_twin_get(f->s, "dev1", &t), IOTDM_OK);
    for (int round = 0; round < 2; round++) {
        hub_twin_texts x;
        assert_int_equal(hub_store_twin_texts(f->s, "dev1", &x), IOTDM_OK);
        size_t len = 0;
        char *spliced =
            hub_twin_device_view_text(x.desired, x.desired_len, x.desired_version, x.reported,
                                      x.reported_len, x.reported_version, &len);
        hub_twin_texts_free(&x);
        hub_twin got;
        assert_int_equal(hub_store_twin_get(f->s, "dev1", &got), IOTDM_OK);
        json_t *view = hub_twin_device_view(&got);
        char *parsed = json_dumps(view, JSON_COMPACT);
        assert_non_null(spliced);
        assert_string_equal(spliced, parsed);
        assert_int_equal(len, strlen(parsed));
        free(parsed);
        json_decref(view);
        hub_twin_deinit(&got);
        xfree(spliced);
        /* Round 2: sections with members, nesting, escapes, numbers of every kind. */
        json_object_set_new(t.desired, "rate", json_integer(5));
        json_object_set_new(
            t.desired, "cfg",
            json_pack("{s:[i,f,b,n], s:s}", "a", 1, 2.5, 1, "q", "\"quoted\" \xc3\xa9"));
        json_object_set_new(t.reported, "temp", json_real(21.5));
        t.desired_version = 3;
        t.reported_version = 8;
        assert_int_equal(hub_store_twin_put(f->s, "dev1", &t), IOTDM_OK);
    }
    hub_twin_deinit(&t);
    hub_twin_texts none;
    assert_int_equal(hub_store_twin_texts(f->s, "ghost", &none), IOTDM_E_NOT_FOUND);
    /* Not an object: refused, never spliced into something that is not JSON. */
    size_t len;
    assert_null(hub_twin_device_view_text("[1]", 3, 1, "{}", 2, 1, &len));
    assert_null(hub_twin_device_view_text("{}", 2, 1, "", 0, 1, &len));
}

/* A reported patch reads and writes only its section: the others stay as stored, and the twin
 * index follows the section that changed. */
static void test_store_twin_reported_section_alone(void **state)
{
    SQLITE_ONLY(); /* reads SQLite's own state */
    fixture *f = *state;
    create(f->s, "dev1");
    hub_twin t;
    assert_int_equal(hub_store_twin_get(f->s, "dev1", &t), IOTDM_OK);
    json_object_set_new(t.tags, "site", json_string("a"));
    json_object_set_new(t.desired, "rate", json_integer(5));
    t.desired_version = 3;
    assert_int_equal(hub_store_twin_put(f->s, "dev1", &t), IOTDM_OK);
    hub_twin_deinit(&t);

    hub_twin part;
    assert_int_equal(hub_store_twin_get_sections(f->s, "dev1", HUB_TWIN_REPORTED, &part), IOTDM_OK);
    assert_null(part.tags);
    assert_null(part.desired);
    assert_non_null(part.reported);
    assert_int_equal(part.desired_version, 3);
    json_object_set_new(part.reported, "temp", json_integer(7));
    part.reported_version++;
    assert_int_equal(hub_store_twin_put(f->s, "dev1", &part), IOTDM_OK);
    hub_twin_deinit(&part);
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);

    hub_twin got;
    assert_int_equal(hub_store_twin_get(f->s, "dev1", &got), IOTDM_OK);
    assert_string_equal(json_string_value(json_object_get(got.tags, "site")), "a");
    assert_int_equal(json_integer_value(json_object_get(got.desired, "rate")), 5);
    assert_int_equal(json_integer_value(json_object_get(got.reported, "temp")), 7);
    assert_int_equal(got.desired_version, 3);
    assert_int_equal(got.reported_version, 2);
    hub_twin_deinit(&got);
    sqlite3 *db = raw_open(f);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM twin_index WHERE device_id = 'dev1' AND "
                                 "value = 7"),
                     1);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM twin_index WHERE device_id = 'dev1' AND "
                                 "value = 'a'"),
                     1);
    sqlite3_close(db);
}

typedef struct {
    size_t n;
    char first[HUB_ID_MAX];
    json_int_t rate;
} twin_log;

static bool log_twin(void *ctx, const hub_device *d, const hub_twin *t)
{
    twin_log *v = ctx;
    if (v->n++ == 0)
        snprintf(v->first, sizeof(v->first), "%s", d->device_id);
    if (json_object_get(t->desired, "rate"))
        v->rate = json_integer_value(json_object_get(t->desired, "rate"));
    return true;
}

static void test_store_twin_foreach_visits_all(void **state)
{
    fixture *f = *state;
    create(f->s, "b");
    create(f->s, "a");
    hub_twin t;
    assert_int_equal(hub_store_twin_get(f->s, "b", &t), IOTDM_OK);
    json_object_set_new(t.desired, "rate", json_integer(42));
    assert_int_equal(hub_store_twin_put(f->s, "b", &t), IOTDM_OK);
    hub_twin_deinit(&t);
    twin_log v = {0};
    assert_int_equal(hub_store_twin_foreach(f->s, log_twin, &v), IOTDM_OK);
    assert_int_equal(v.n, 2);
    assert_string_equal(v.first, "a");
    assert_int_equal(v.rate, 42);
}

static void test_store_session_put_get_delete(void **state)
{
    fixture *f = *state;
    create(f->s, "dev1");
    uint32_t subs = 0;
    assert_int_equal(hub_store_session_get(f->s, "dev1", &subs), IOTDM_E_NOT_FOUND);
    assert_int_equal(hub_store_session_put(f->s, "dev1", 0x5), IOTDM_OK);
    assert_int_equal(hub_store_session_put(f->s, "dev1", 0xA), IOTDM_OK);
    assert_int_equal(hub_store_session_put(f->s, "dev1/mod1", 0x1), IOTDM_OK);
    assert_int_equal(hub_store_session_get(f->s, "dev1", &subs), IOTDM_OK);
    assert_int_equal(subs, 0xA);
    assert_int_equal(hub_store_session_get(f->s, "dev1/mod1", &subs), IOTDM_OK);
    assert_int_equal(subs, 0x1);
    assert_int_equal(hub_store_session_put(f->s, "ghost", 1), IOTDM_E_NOT_FOUND);
    assert_int_equal(hub_store_session_put(f->s, "", 1), IOTDM_E_MALFORMED);
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);

    hub_store_close(f->s);
    assert_int_equal(hub_store_open(f->path, &f->s), IOTDM_OK);
    assert_int_equal(hub_store_session_get(f->s, "dev1", &subs), IOTDM_OK);
    assert_int_equal(subs, 0xA);
    assert_int_equal(hub_store_session_delete(f->s, "dev1"), IOTDM_OK);
    assert_int_equal(hub_store_session_delete(f->s, "dev1"), IOTDM_OK);
    assert_int_equal(hub_store_session_get(f->s, "dev1", &subs), IOTDM_E_NOT_FOUND);
    assert_int_equal(hub_store_session_get(f->s, "dev1/mod1", &subs), IOTDM_OK);
}

static void test_store_group_commit_invisible_until_commit(void **state)
{
    SQLITE_ONLY(); /* reads SQLite's own state */
    fixture *f = *state;
    sqlite3 *db = raw_open(f);
    assert_false(hub_store_has_pending_writes(f->s));
    create(f->s, "dev1");
    assert_true(hub_store_has_pending_writes(f->s));
    hub_device got;
    assert_int_equal(hub_store_device_get(f->s, "dev1", &got), IOTDM_OK); /* own writes */
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM devices"), 0);
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);
    assert_false(hub_store_has_pending_writes(f->s));
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM devices"), 1);
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK); /* nothing pending: a no-op */

    /* Reads alone open no transaction. */
    assert_int_equal(hub_store_device_get(f->s, "dev1", &got), IOTDM_OK);
    assert_false(hub_store_has_pending_writes(f->s));
    sqlite3_close(db);
}

static void test_store_close_without_commit_loses_only_uncommitted(void **state)
{
    fixture *f = *state;
    create(f->s, "kept");
    assert_int_equal(hub_store_session_put(f->s, "kept", 1), IOTDM_OK);
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);
    create(f->s, "lost");
    assert_int_equal(hub_store_session_put(f->s, "kept", 2), IOTDM_OK);
    hub_store_close(f->s);

    assert_int_equal(hub_store_open(f->path, &f->s), IOTDM_OK);
    hub_device got;
    uint32_t subs;
    assert_int_equal(hub_store_device_get(f->s, "kept", &got), IOTDM_OK);
    assert_int_equal(hub_store_device_get(f->s, "lost", &got), IOTDM_E_NOT_FOUND);
    assert_int_equal(hub_store_session_get(f->s, "kept", &subs), IOTDM_OK);
    assert_int_equal(subs, 1);
}

static void test_store_failed_write_keeps_the_group(void **state)
{
    SQLITE_ONLY(); /* reads SQLite's own state */
    fixture *f = *state;
    create(f->s, "dev1");
    hub_device dup = make_device("dev1");
    assert_int_equal(hub_store_device_create(f->s, &dup), IOTDM_E_EXISTS);
    create(f->s, "dev2");
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);
    sqlite3 *db = raw_open(f);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM devices"), 2);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM twins"), 2);
    sqlite3_close(db);
}

/* A committed write survives the process dying with SIGKILL right after; an uncommitted one does
 * not. */
static void test_store_commit_survives_kill9(void **state)
{
    fixture *f = *state;
    hub_store_close(f->s);
    f->s = NULL;
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        hub_store *s;
        if (hub_store_open(f->path, &s) != IOTDM_OK)
            _exit(1);
        hub_device d = make_device("acked");
        if (hub_store_device_create(s, &d) != IOTDM_OK || hub_store_commit(s) != IOTDM_OK)
            _exit(1);
        d = make_device("unacked");
        if (hub_store_device_create(s, &d) != IOTDM_OK)
            _exit(1);
        (void)!write(ready[1], "k", 1);
        for (;;)
            pause();
    }
    char c;
    close(ready[1]);
    assert_int_equal(read(ready[0], &c, 1), 1);
    close(ready[0]);
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFSIGNALED(status));

    assert_int_equal(hub_store_open(f->path, &f->s), IOTDM_OK);
    hub_device got;
    assert_int_equal(hub_store_device_get(f->s, "acked", &got), IOTDM_OK);
    assert_int_equal(hub_store_device_get(f->s, "unacked", &got), IOTDM_E_NOT_FOUND);
}

/* When SQLite abandons the whole group (a full disk does that), writes acknowledged so far in the
 * pass are gone: the commit must say so, and later writes must fail until it has. */
static void test_store_rolled_back_group_fails_commit(void **state)
{
    SQLITE_ONLY(); /* reads SQLite's own state */
    fixture *f = *state;
    create(f->s, "kept");
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);
    assert_int_equal(
        sqlite3_exec(((sq_store *)f->s)->db, "PRAGMA max_page_count = 20", NULL, NULL, NULL),
        SQLITE_OK);
    create(f->s, "early");
    static unsigned char big[200000];
    hub_telemetry t;
    memset(&t, 0, sizeof(t));
    snprintf(t.device_id, sizeof(t.device_id), "kept");
    t.body = big;
    t.body_len = sizeof(big);
    assert_int_equal(hub_store_telemetry_append(f->s, &t), -ENOSPC);
    assert_true(hub_store_has_pending_writes(f->s));
    hub_device late = make_device("late");
    assert_int_equal(hub_store_device_create(f->s, &late), IOTDM_E_STORAGE);
    assert_int_equal(hub_store_commit(f->s), IOTDM_E_STORAGE);
    assert_false(hub_store_has_pending_writes(f->s));

    hub_device got;
    assert_int_equal(hub_store_device_get(f->s, "early", &got), IOTDM_E_NOT_FOUND);
    assert_int_equal(hub_store_device_get(f->s, "kept", &got), IOTDM_OK);
    assert_int_equal(
        sqlite3_exec(((sq_store *)f->s)->db, "PRAGMA max_page_count = 1000000", NULL, NULL, NULL),
        SQLITE_OK);
    create(f->s, "after");
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);
    assert_int_equal(hub_store_device_get(f->s, "after", &got), IOTDM_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_store_open_creates_versioned_wal_schema),
        T(test_store_policy_put_get_count),
        T(test_store_device_create_get_and_empty_twin),
        T(test_store_device_update_if_match),
        T(test_store_device_delete_cascades),
        T(test_store_device_connection_activity_stats),
        T(test_store_device_foreach_pages_in_id_order),
        T(test_store_foreach_visitor_may_reenter),
        T(test_store_twin_put_get_roundtrip),
        T(test_store_twin_texts_make_the_device_view),
        T(test_store_twin_reported_section_alone),
        T(test_store_twin_foreach_visits_all),
        T(test_store_session_put_get_delete),
        T(test_store_group_commit_invisible_until_commit),
        T(test_store_close_without_commit_loses_only_uncommitted),
        T(test_store_failed_write_keeps_the_group),
        T(test_store_rolled_back_group_fails_commit),
        T(test_store_commit_survives_kill9),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
