/* Unit tests for the store's fleet documents (hub_store_doc_*): etags and conditional writes,
 * listings by scope and across scopes with cursors, scope deletes, counts, refused input, units,
 * reopening and the schema migration. CTest runs them on SQLite and on PostgreSQL. */
#include "store_fixture.h"

#include "hub/store/sqlite/sqlite_internal.h" /* sq_schema_version, for the migration test */

/* What a walk saw, as "scope/id:etag," per document, and when to stop it. */
typedef struct {
    char seen[8192];
    size_t visits;
    size_t stop_after; /* 0: never */
    char last_scope[HUB_DOC_KEY_MAX + 1], last_id[HUB_DOC_KEY_MAX + 1];
} walk;

static bool record(void *ctx, const char *scope, const char *id, const json_t *doc, uint64_t etag)
{
    walk *w = ctx;
    /* Every test document names its own key: the listing lends the right one with each row. */
    assert_true(json_is_object(doc));
    assert_string_equal(json_string_value(json_object_get(doc, "id")), id);
    size_t len = strlen(w->seen);
    snprintf(w->seen + len, sizeof w->seen - len, "%s/%s:%d,", scope, id, (int)etag);
    snprintf(w->last_scope, sizeof w->last_scope, "%s", scope);
    snprintf(w->last_id, sizeof w->last_id, "%s", id);
    w->visits++;
    return w->stop_after == 0 || w->visits < w->stop_after;
}

static void walk_reset(walk *w)
{
    w->seen[0] = '\0';
    w->visits = 0;
}

/* Puts {"id": id, "n": n} with if_match; the result. */
static iotdm_result put_n(hub_store *s, hub_doc_collection coll, const char *scope, const char *id,
                          int n, uint64_t if_match, uint64_t *out_etag)
{
    json_t *doc = json_pack("{s:s, s:i}", "id", id, "n", n);
    iotdm_result r = hub_store_doc_put(s, coll, scope, id, doc, if_match, out_etag);
    json_decref(doc);
    return r;
}

static void put_ok(hub_store *s, hub_doc_collection coll, const char *scope, const char *id)
{
    assert_int_equal(put_n(s, coll, scope, id, 0, 0, NULL), IOTDM_OK);
}

/* The stored document's "n" and etag; -1 when it is absent. */
static int get_n(hub_store *s, hub_doc_collection coll, const char *scope, const char *id,
                 uint64_t *out_etag)
{
    json_t *doc = NULL;
    iotdm_result r = hub_store_doc_get(s, coll, scope, id, &doc, out_etag);
    if (r == IOTDM_E_NOT_FOUND) {
        assert_null(doc);
        return -1;
    }
    assert_int_equal(r, IOTDM_OK);
    assert_string_equal(json_string_value(json_object_get(doc, "id")), id);
    int n = (int)json_integer_value(json_object_get(doc, "n"));
    json_decref(doc);
    return n;
}

static size_t count(hub_store *s, hub_doc_collection coll, const char *scope)
{
    size_t n = 99;
    assert_int_equal(hub_store_doc_count(s, coll, scope, &n), IOTDM_OK);
    return n;
}

static void test_doc_put_creates_then_replaces_counting_etags(void **state)
{
    fixture *f = *state;
    uint64_t etag = 0;
    assert_int_equal(put_n(f->s, HUB_DOC_JOB, "", "job-1", 10, 0, &etag), IOTDM_OK);
    assert_int_equal(etag, 1);
    assert_int_equal(get_n(f->s, HUB_DOC_JOB, "", "job-1", &etag), 10);
    assert_int_equal(etag, 1);
    assert_int_equal(put_n(f->s, HUB_DOC_JOB, "", "job-1", 11, 0, &etag), IOTDM_OK);
    assert_int_equal(etag, 2);
    assert_int_equal(put_n(f->s, HUB_DOC_JOB, "", "job-1", 12, 2, &etag), IOTDM_OK);
    assert_int_equal(etag, 3);
    assert_int_equal(put_n(f->s, HUB_DOC_JOB, "", "job-1", 13, 3, NULL), IOTDM_OK);
    assert_int_equal(get_n(f->s, HUB_DOC_JOB, "", "job-1", &etag), 13);
    assert_int_equal(etag, 4);
    assert_int_equal(get_n(f->s, HUB_DOC_JOB, "", "job-1", NULL), 13);

    /* The same id in another scope or another collection is another document. */
    assert_int_equal(put_n(f->s, HUB_DOC_DEVICE_JOB, "", "job-1", 20, 0, &etag), IOTDM_OK);
    assert_int_equal(etag, 1);
    assert_int_equal(put_n(f->s, HUB_DOC_JOB, "other", "job-1", 30, 0, &etag), IOTDM_OK);
    assert_int_equal(etag, 1);
    assert_int_equal(get_n(f->s, HUB_DOC_JOB, "", "job-1", NULL), 13);
    assert_int_equal(get_n(f->s, HUB_DOC_DEVICE_JOB, "", "job-1", NULL), 20);
    assert_int_equal(get_n(f->s, HUB_DOC_JOB, "other", "job-1", NULL), 30);
    assert_int_equal(get_n(f->s, HUB_DOC_CONFIGURATION, "", "job-1", NULL), -1);
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);
}

static void test_doc_create_only_refuses_an_existing_document(void **state)
{
    fixture *f = *state;
    uint64_t etag = 0;
    assert_int_equal(put_n(f->s, HUB_DOC_JOB, "", "job-1", 1, HUB_DOC_CREATE, &etag), IOTDM_OK);
    assert_int_equal(etag, 1);
    etag = 77;
    assert_int_equal(put_n(f->s, HUB_DOC_JOB, "", "job-1", 2, HUB_DOC_CREATE, &etag),
                     IOTDM_E_EXISTS);
    assert_int_equal(etag, 77); /* untouched on refusal */
    assert_int_equal(get_n(f->s, HUB_DOC_JOB, "", "job-1", &etag), 1);
    assert_int_equal(etag, 1);
    /* Deleted, the id can be created again, from etag 1. */
    assert_int_equal(hub_store_doc_delete(f->s, HUB_DOC_JOB, "", "job-1", 0), IOTDM_OK);
    assert_int_equal(put_n(f->s, HUB_DOC_JOB, "", "job-1", 3, HUB_DOC_CREATE, &etag), IOTDM_OK);
    assert_int_equal(etag, 1);
    /* An expected refusal fails nothing: the group commits with everything else in it. */
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);
    hub_store_close(f->s);
    assert_int_equal(hub_store_open(f->path, &f->s), IOTDM_OK);
    assert_int_equal(get_n(f->s, HUB_DOC_JOB, "", "job-1", &etag), 3);
    assert_int_equal(etag, 1);
}

static void test_doc_if_match_mismatch_or_absent_is_precondition(void **state)
{
    fixture *f = *state;
    uint64_t etag = 0;
    assert_int_equal(put_n(f->s, HUB_DOC_DEVICE_JOB, "job-1", "dev-1", 1, 5, &etag),
                     IOTDM_E_PRECONDITION);
    assert_int_equal(get_n(f->s, HUB_DOC_DEVICE_JOB, "job-1", "dev-1", NULL), -1);
    assert_int_equal(put_n(f->s, HUB_DOC_DEVICE_JOB, "job-1", "dev-1", 1, 0, &etag), IOTDM_OK);
    assert_int_equal(put_n(f->s, HUB_DOC_DEVICE_JOB, "job-1", "dev-1", 2, 2, &etag),
                     IOTDM_E_PRECONDITION);
    assert_int_equal(put_n(f->s, HUB_DOC_DEVICE_JOB, "job-1", "dev-1", 2, UINT64_MAX - 1, &etag),
                     IOTDM_E_PRECONDITION);
    assert_int_equal(get_n(f->s, HUB_DOC_DEVICE_JOB, "job-1", "dev-1", &etag), 1);
    assert_int_equal(etag, 1);
    /* Two writers that read etag 1: the first wins, the second is refused. */
    assert_int_equal(put_n(f->s, HUB_DOC_DEVICE_JOB, "job-1", "dev-1", 3, 1, &etag), IOTDM_OK);
    assert_int_equal(etag, 2);
    assert_int_equal(put_n(f->s, HUB_DOC_DEVICE_JOB, "job-1", "dev-1", 4, 1, &etag),
                     IOTDM_E_PRECONDITION);
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);
    assert_int_equal(get_n(f->s, HUB_DOC_DEVICE_JOB, "job-1", "dev-1", &etag), 3);
    assert_int_equal(etag, 2);
}

static void test_doc_delete_variants(void **state)
{
    fixture *f = *state;
    assert_int_equal(hub_store_doc_delete(f->s, HUB_DOC_JOB, "", "none", 0), IOTDM_E_NOT_FOUND);
    assert_int_equal(hub_store_doc_delete(f->s, HUB_DOC_JOB, "", "none", 3), IOTDM_E_NOT_FOUND);
    uint64_t etag = 0;
    assert_int_equal(put_n(f->s, HUB_DOC_JOB, "", "job-1", 1, 0, &etag), IOTDM_OK);
    assert_int_equal(put_n(f->s, HUB_DOC_JOB, "", "job-1", 2, 0, &etag), IOTDM_OK);
    assert_int_equal(hub_store_doc_delete(f->s, HUB_DOC_JOB, "", "job-1", 1), IOTDM_E_PRECONDITION);
    assert_int_equal(get_n(f->s, HUB_DOC_JOB, "", "job-1", NULL), 2);
    /* Only this collection's and this scope's document goes. */
    put_ok(f->s, HUB_DOC_CONFIGURATION, "", "job-1");
    put_ok(f->s, HUB_DOC_JOB, "x", "job-1");
    assert_int_equal(hub_store_doc_delete(f->s, HUB_DOC_JOB, "", "job-1", 2), IOTDM_OK);
    assert_int_equal(get_n(f->s, HUB_DOC_JOB, "", "job-1", NULL), -1);
    assert_int_equal(hub_store_doc_delete(f->s, HUB_DOC_JOB, "", "job-1", 2), IOTDM_E_NOT_FOUND);
    assert_int_equal(get_n(f->s, HUB_DOC_CONFIGURATION, "", "job-1", NULL), 0);
    assert_int_equal(get_n(f->s, HUB_DOC_JOB, "x", "job-1", NULL), 0);
    assert_int_equal(hub_store_doc_delete(f->s, HUB_DOC_JOB, "x", "job-1", 0), IOTDM_OK);
    assert_int_equal(hub_store_doc_delete(f->s, HUB_DOC_JOB, "x", "job-1", 0), IOTDM_E_NOT_FOUND);
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);
    assert_int_equal(count(f->s, HUB_DOC_JOB, NULL), 0);
    assert_int_equal(count(f->s, HUB_DOC_CONFIGURATION, NULL), 1);
}

static void test_doc_foreach_one_scope_pages_in_bytewise_id_order(void **state)
{
    fixture *f = *state;
    /* Bytewise: "B" < "Z" < "_" < "a" < "b" < "\xc3\xa9" (é); a locale would order them
     * otherwise. */
    const char *ids[] = {"b", "\xc3\xa9", "Z", "a", "_", "B"};
    for (size_t i = 0; i < 6; i++)
        put_ok(f->s, HUB_DOC_DEVICE_JOB, "job-1", ids[i]);
    put_ok(f->s, HUB_DOC_DEVICE_JOB, "job-1", "a"); /* etag 2 */
    put_ok(f->s, HUB_DOC_DEVICE_JOB, "job-0", "c");
    put_ok(f->s, HUB_DOC_DEVICE_JOB, "job-2", "A");
    put_ok(f->s, HUB_DOC_JOB, "job-1", "d"); /* another collection */

    walk w = {.seen = ""};
    assert_int_equal(
        hub_store_doc_foreach(f->s, HUB_DOC_DEVICE_JOB, "job-1", NULL, NULL, 100, record, &w),
        IOTDM_OK);
    assert_string_equal(w.seen, "job-1/B:1,job-1/Z:1,job-1/_:1,job-1/a:2,job-1/b:1,"
                                "job-1/\xc3\xa9:1,");
    /* Pages of two, each after the last id of the one before; after_scope is ignored. */
    char pages[8192] = "";
    walk_reset(&w);
    w.last_id[0] = '\0';
    for (int page = 0; page < 5; page++) {
        char after[HUB_DOC_KEY_MAX + 1];
        snprintf(after, sizeof after, "%s", w.last_id);
        walk_reset(&w);
        assert_int_equal(hub_store_doc_foreach(f->s, HUB_DOC_DEVICE_JOB, "job-1", "zzz",
                                               after[0] ? after : NULL, 2, record, &w),
                         IOTDM_OK);
        strcat(pages, w.seen);
        strcat(pages, "|");
        if (w.visits < 2)
            break;
    }
    assert_string_equal(pages, "job-1/B:1,job-1/Z:1,|job-1/_:1,job-1/a:2,|job-1/b:1,"
                               "job-1/\xc3\xa9:1,||");
    /* A scope without documents, and max 0, visit nothing. */
    walk_reset(&w);
    assert_int_equal(
        hub_store_doc_foreach(f->s, HUB_DOC_DEVICE_JOB, "job-9", NULL, NULL, 100, record, &w),
        IOTDM_OK);
    assert_int_equal(
        hub_store_doc_foreach(f->s, HUB_DOC_DEVICE_JOB, "job-1", NULL, NULL, 0, record, &w),
        IOTDM_OK);
    assert_int_equal(w.visits, 0);
}

static void test_doc_foreach_across_scopes_follows_the_cursor(void **state)
{
    fixture *f = *state;
    put_ok(f->s, HUB_DOC_DEVICE_JOB, "j2", "d1");
    put_ok(f->s, HUB_DOC_DEVICE_JOB, "j1", "d2");
    put_ok(f->s, HUB_DOC_DEVICE_JOB, "j1", "d1");
    put_ok(f->s, HUB_DOC_DEVICE_JOB, "", "d9");
    put_ok(f->s, HUB_DOC_DEVICE_JOB, "j10", "d0");
    put_ok(f->s, HUB_DOC_JOB, "", "j1"); /* another collection */

    walk w = {.seen = ""};
    assert_int_equal(
        hub_store_doc_foreach(f->s, HUB_DOC_DEVICE_JOB, NULL, NULL, NULL, 100, record, &w),
        IOTDM_OK);
    assert_string_equal(w.seen, "/d9:1,j1/d1:1,j1/d2:1,j10/d0:1,j2/d1:1,");

    /* Pages of two, each after the (scope, id) of the last one. */
    char pages[8192] = "";
    w.last_scope[0] = w.last_id[0] = '\0';
    bool first = true;
    for (int page = 0; page < 5; page++) {
        char after_scope[HUB_DOC_KEY_MAX + 1], after_id[HUB_DOC_KEY_MAX + 1];
        snprintf(after_scope, sizeof after_scope, "%s", w.last_scope);
        snprintf(after_id, sizeof after_id, "%s", w.last_id);
        walk_reset(&w);
        assert_int_equal(hub_store_doc_foreach(f->s, HUB_DOC_DEVICE_JOB, NULL,
                                               first ? NULL : after_scope, first ? NULL : after_id,
                                               2, record, &w),
                         IOTDM_OK);
        first = false;
        strcat(pages, w.seen);
        strcat(pages, "|");
        if (w.visits < 2)
            break;
    }
    assert_string_equal(pages, "/d9:1,j1/d1:1,|j1/d2:1,j10/d0:1,|j2/d1:1,|");

    /* A scope alone as the cursor starts at its first document; an id alone is in scope "". */
    walk_reset(&w);
    assert_int_equal(
        hub_store_doc_foreach(f->s, HUB_DOC_DEVICE_JOB, NULL, "j10", NULL, 100, record, &w),
        IOTDM_OK);
    assert_string_equal(w.seen, "j10/d0:1,j2/d1:1,");
    walk_reset(&w);
    assert_int_equal(
        hub_store_doc_foreach(f->s, HUB_DOC_DEVICE_JOB, NULL, NULL, "d9", 100, record, &w),
        IOTDM_OK);
    assert_string_equal(w.seen, "j1/d1:1,j1/d2:1,j10/d0:1,j2/d1:1,");
    /* A cursor between stored keys, and one past the last. */
    walk_reset(&w);
    assert_int_equal(
        hub_store_doc_foreach(f->s, HUB_DOC_DEVICE_JOB, NULL, "j1", "d15", 100, record, &w),
        IOTDM_OK);
    assert_string_equal(w.seen, "j1/d2:1,j10/d0:1,j2/d1:1,");
    walk_reset(&w);
    assert_int_equal(
        hub_store_doc_foreach(f->s, HUB_DOC_DEVICE_JOB, NULL, "j2", "d1", 100, record, &w),
        IOTDM_OK);
    assert_int_equal(w.visits, 0);
}

/* More documents than a PostgreSQL batch: the walk goes on across batches, in order, and stops
 * where max or the visitor says. */
static void test_doc_foreach_long_walk_stops_at_max_or_visitor(void **state)
{
    fixture *f = *state;
    enum { N = 250 };
    for (int i = 0; i < N; i++) {
        char id[16];
        snprintf(id, sizeof id, "dev-%03d", i);
        put_ok(f->s, HUB_DOC_DEVICE_JOB, "job", id);
    }
    walk w = {.seen = ""};
    assert_int_equal(
        hub_store_doc_foreach(f->s, HUB_DOC_DEVICE_JOB, "job", NULL, NULL, 1000, record, &w),
        IOTDM_OK);
    assert_int_equal(w.visits, N);
    assert_string_equal(w.last_id, "dev-249");
    assert_memory_equal(w.seen, "job/dev-000:1,job/dev-001:1,", 28);

    walk_reset(&w);
    assert_int_equal(
        hub_store_doc_foreach(f->s, HUB_DOC_DEVICE_JOB, NULL, NULL, NULL, 150, record, &w),
        IOTDM_OK);
    assert_int_equal(w.visits, 150);
    assert_string_equal(w.last_id, "dev-149");

    walk_reset(&w);
    w.stop_after = 120;
    assert_int_equal(
        hub_store_doc_foreach(f->s, HUB_DOC_DEVICE_JOB, "job", NULL, "dev-009", 1000, record, &w),
        IOTDM_OK);
    assert_int_equal(w.visits, 120);
    assert_string_equal(w.last_id, "dev-129");
    walk_reset(&w);
    w.stop_after = 1;
    assert_int_equal(
        hub_store_doc_foreach(f->s, HUB_DOC_DEVICE_JOB, NULL, NULL, NULL, 1000, record, &w),
        IOTDM_OK);
    assert_int_equal(w.visits, 1);
    assert_string_equal(w.seen, "job/dev-000:1,");
}

static void test_doc_delete_scope_counts_and_spares_the_rest(void **state)
{
    fixture *f = *state;
    put_ok(f->s, HUB_DOC_DEVICE_JOB, "j1", "d1");
    put_ok(f->s, HUB_DOC_DEVICE_JOB, "j1", "d2");
    put_ok(f->s, HUB_DOC_DEVICE_JOB, "j1", "d3");
    put_ok(f->s, HUB_DOC_DEVICE_JOB, "j10", "d1");
    put_ok(f->s, HUB_DOC_DEVICE_JOB, "j2", "d1");
    put_ok(f->s, HUB_DOC_JOB, "", "j1");
    put_ok(f->s, HUB_DOC_CONFIGURATION, "j1", "d1");
    assert_int_equal(count(f->s, HUB_DOC_DEVICE_JOB, NULL), 5);
    assert_int_equal(count(f->s, HUB_DOC_DEVICE_JOB, "j1"), 3);
    assert_int_equal(count(f->s, HUB_DOC_DEVICE_JOB, "j3"), 0);
    assert_int_equal(count(f->s, HUB_DOC_JOB, ""), 1);

    size_t deleted = 99;
    assert_int_equal(hub_store_doc_delete_scope(f->s, HUB_DOC_DEVICE_JOB, "j1", &deleted),
                     IOTDM_OK);
    assert_int_equal(deleted, 3);
    assert_int_equal(hub_store_doc_delete_scope(f->s, HUB_DOC_DEVICE_JOB, "j1", &deleted),
                     IOTDM_OK);
    assert_int_equal(deleted, 0);
    assert_int_equal(hub_store_doc_delete_scope(f->s, HUB_DOC_DEVICE_JOB, "j2", NULL), IOTDM_OK);
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);

    assert_int_equal(count(f->s, HUB_DOC_DEVICE_JOB, NULL), 1);
    assert_int_equal(count(f->s, HUB_DOC_DEVICE_JOB, "j1"), 0);
    assert_int_equal(get_n(f->s, HUB_DOC_DEVICE_JOB, "j10", "d1", NULL), 0);
    assert_int_equal(get_n(f->s, HUB_DOC_JOB, "", "j1", NULL), 0);
    assert_int_equal(get_n(f->s, HUB_DOC_CONFIGURATION, "j1", "d1", NULL), 0);
    assert_int_equal(count(f->s, HUB_DOC_CONFIGURATION, NULL), 1);
    assert_int_equal(count(f->s, HUB_DOC_JOB, NULL), 1);
}

static void test_doc_bad_input_refused_with_nothing_changed(void **state)
{
    fixture *f = *state;
    assert_int_equal(put_n(f->s, HUB_DOC_JOB, "", "job-1", 1, 0, NULL), IOTDM_OK);
    char longest[HUB_DOC_KEY_MAX + 2];
    memset(longest, 'k', HUB_DOC_KEY_MAX);
    longest[HUB_DOC_KEY_MAX] = '\0';
    assert_int_equal(put_n(f->s, HUB_DOC_DEVICE_JOB, longest, longest, 1, 0, NULL), IOTDM_OK);
    assert_int_equal(get_n(f->s, HUB_DOC_DEVICE_JOB, longest, longest, NULL), 1);
    char too_long[HUB_DOC_KEY_MAX + 2];
    memset(too_long, 'k', HUB_DOC_KEY_MAX + 1);
    too_long[HUB_DOC_KEY_MAX + 1] = '\0';

    uint64_t etag = 0;
    json_t *doc = json_pack("{s:s}", "id", "job-1");
    assert_int_equal(hub_store_doc_put(f->s, HUB_DOC_JOB, "", too_long, doc, 0, NULL),
                     IOTDM_E_MALFORMED);
    assert_int_equal(hub_store_doc_put(f->s, HUB_DOC_JOB, too_long, "job-1", doc, 0, NULL),
                     IOTDM_E_MALFORMED);
    assert_int_equal(hub_store_doc_put(f->s, HUB_DOC_JOB, "", "", doc, 0, NULL), IOTDM_E_MALFORMED);
    assert_int_equal(hub_store_doc_put(f->s, HUB_DOC_JOB, NULL, "job-1", doc, 0, NULL),
                     IOTDM_E_MALFORMED);
    assert_int_equal(hub_store_doc_put(f->s, HUB_DOC_JOB, "", NULL, doc, 0, NULL),
                     IOTDM_E_MALFORMED);
    assert_int_equal(hub_store_doc_put(f->s, (hub_doc_collection)0, "", "job-1", doc, 0, NULL),
                     IOTDM_E_MALFORMED);
    /* Bytes that are not UTF-8 would fail PostgreSQL's transaction: refused before. */
    assert_int_equal(hub_store_doc_put(f->s, HUB_DOC_JOB, "", "job-\xff", doc, 0, NULL),
                     IOTDM_E_MALFORMED);
    assert_int_equal(hub_store_doc_put(f->s, HUB_DOC_JOB, "\xc3", "job-1", doc, 0, NULL),
                     IOTDM_E_MALFORMED);
    json_decref(doc);
    json_t *array = json_pack("[s]", "job-1");
    assert_int_equal(hub_store_doc_put(f->s, HUB_DOC_JOB, "", "job-1", array, 0, NULL),
                     IOTDM_E_MALFORMED);
    json_decref(array);
    assert_int_equal(hub_store_doc_put(f->s, HUB_DOC_JOB, "", "job-1", NULL, 0, NULL),
                     IOTDM_E_MALFORMED);

    /* {"id":"job-1","pad":"…"} is 23 bytes and the pad: at the limit it is kept, past it not. */
    size_t pad_len = HUB_DOC_MAX_BYTES - 23;
    char *pad = malloc(pad_len + 2);
    memset(pad, 'p', pad_len + 1);
    pad[pad_len + 1] = '\0';
    json_t *big = json_pack("{s:s, s:s}", "id", "job-1", "pad", pad);
    assert_int_equal(json_dumpb(big, NULL, 0, JSON_COMPACT), HUB_DOC_MAX_BYTES + 1);
    assert_int_equal(hub_store_doc_put(f->s, HUB_DOC_JOB, "", "job-1", big, 0, NULL),
                     IOTDM_E_TOO_LARGE);
    assert_int_equal(hub_store_doc_put(f->s, HUB_DOC_JOB, "", "job-2", big, HUB_DOC_CREATE, NULL),
                     IOTDM_E_TOO_LARGE);
    json_decref(big);
    pad[pad_len] = '\0';
    big = json_pack("{s:s, s:s}", "id", "job-3", "pad", pad);
    assert_int_equal(json_dumpb(big, NULL, 0, JSON_COMPACT), HUB_DOC_MAX_BYTES);
    assert_int_equal(hub_store_doc_put(f->s, HUB_DOC_JOB, "", "job-3", big, 0, NULL), IOTDM_OK);
    json_decref(big);
    free(pad);

    /* The other calls refuse the same keys. */
    json_t *got = (json_t *)1;
    assert_int_equal(hub_store_doc_get(f->s, HUB_DOC_JOB, "", too_long, &got, NULL),
                     IOTDM_E_MALFORMED);
    assert_null(got);
    assert_int_equal(hub_store_doc_delete(f->s, HUB_DOC_JOB, too_long, "job-1", 0),
                     IOTDM_E_MALFORMED);
    walk w = {.seen = ""};
    assert_int_equal(hub_store_doc_foreach(f->s, HUB_DOC_JOB, NULL, NULL, "\xff", 10, record, &w),
                     IOTDM_E_MALFORMED);
    assert_int_equal(hub_store_doc_foreach(f->s, HUB_DOC_JOB, "", NULL, NULL, 10, NULL, NULL),
                     IOTDM_E_MALFORMED);
    assert_int_equal(hub_store_doc_delete_scope(f->s, HUB_DOC_JOB, NULL, NULL), IOTDM_E_MALFORMED);
    size_t n = 0;
    assert_int_equal(hub_store_doc_count(f->s, HUB_DOC_JOB, too_long, &n), IOTDM_E_MALFORMED);

    /* Nothing changed, and the group still commits (no failed statement on PostgreSQL). */
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);
    assert_int_equal(get_n(f->s, HUB_DOC_JOB, "", "job-1", &etag), 1);
    assert_int_equal(etag, 1);
    assert_int_equal(get_n(f->s, HUB_DOC_JOB, "", "job-2", NULL), -1);
    assert_int_equal(count(f->s, HUB_DOC_JOB, NULL), 2);
    assert_int_equal(count(f->s, HUB_DOC_DEVICE_JOB, NULL), 1);
    assert_int_equal(w.visits, 0);
}

static void test_doc_survives_close_and_reopen(void **state)
{
    fixture *f = *state;
    json_t *doc = json_pack("{s:s, s:{s:[i,i], s:s}}", "id", "job-1", "$iotdm", "list", 1, 2,
                            "text", "caf\xc3\xa9 \"quoted\"");
    uint64_t etag = 0;
    assert_int_equal(hub_store_doc_put(f->s, HUB_DOC_JOB, "", "job-1", doc, 0, NULL), IOTDM_OK);
    assert_int_equal(hub_store_doc_put(f->s, HUB_DOC_JOB, "", "job-1", doc, 1, &etag), IOTDM_OK);
    put_ok(f->s, HUB_DOC_DEVICE_JOB, "job-1", "dev-1");
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);
    assert_int_equal(raw_count(f, "fleet_docs"), 2);
    hub_store_close(f->s);
    assert_int_equal(hub_store_open(f->path, &f->s), IOTDM_OK);

    json_t *got = NULL;
    assert_int_equal(hub_store_doc_get(f->s, HUB_DOC_JOB, "", "job-1", &got, &etag), IOTDM_OK);
    assert_int_equal(etag, 2);
    assert_true(json_equal(got, doc));
    json_decref(got);
    /* A reader sees what was committed. */
    hub_store *reader = NULL;
    assert_int_equal(hub_store_open_reader(f->s, &reader), IOTDM_OK);
    walk w = {.seen = ""};
    assert_int_equal(
        hub_store_doc_foreach(reader, HUB_DOC_DEVICE_JOB, NULL, NULL, NULL, 10, record, &w),
        IOTDM_OK);
    assert_string_equal(w.seen, "job-1/dev-1:1,");
    size_t n = 0;
    assert_int_equal(hub_store_doc_count(reader, HUB_DOC_JOB, "", &n), IOTDM_OK);
    assert_int_equal(n, 1);
    hub_store_close(reader);
    json_decref(doc);
}

static void test_doc_writes_of_a_failed_unit_are_undone(void **state)
{
    fixture *f = *state;
    put_ok(f->s, HUB_DOC_JOB, "", "kept");
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);

    assert_int_equal(hub_store_unit_begin(f->s), IOTDM_OK);
    assert_int_equal(put_n(f->s, HUB_DOC_JOB, "", "kept", 5, 1, NULL), IOTDM_OK);
    put_ok(f->s, HUB_DOC_JOB, "", "undone");
    put_ok(f->s, HUB_DOC_DEVICE_JOB, "kept", "dev-1");
    assert_int_equal(hub_store_unit_end(f->s, IOTDM_E_PRECONDITION), IOTDM_E_PRECONDITION);

    assert_int_equal(hub_store_unit_begin(f->s), IOTDM_OK);
    put_ok(f->s, HUB_DOC_JOB, "", "after");
    assert_int_equal(hub_store_unit_end(f->s, IOTDM_OK), IOTDM_OK);

    /* A unit whose own put was refused may still succeed with its other writes. */
    assert_int_equal(hub_store_unit_begin(f->s), IOTDM_OK);
    assert_int_equal(put_n(f->s, HUB_DOC_JOB, "", "after", 1, HUB_DOC_CREATE, NULL),
                     IOTDM_E_EXISTS);
    put_ok(f->s, HUB_DOC_JOB, "", "also");
    assert_int_equal(hub_store_unit_end(f->s, IOTDM_OK), IOTDM_OK);
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);

    uint64_t etag = 0;
    assert_int_equal(get_n(f->s, HUB_DOC_JOB, "", "kept", &etag), 0);
    assert_int_equal(etag, 1);
    assert_int_equal(get_n(f->s, HUB_DOC_JOB, "", "undone", NULL), -1);
    assert_int_equal(count(f->s, HUB_DOC_DEVICE_JOB, NULL), 0);
    assert_int_equal(raw_count(f, "fleet_docs"), 3); /* kept, after, also: committed */
}

/* Sets the body of one stored document to text, behind the store's back. */
static void corrupt(fixture *f, const char *id, const char *text)
{
    char sql[256];
    if (on_pg()) {
        snprintf(sql, sizeof sql, "UPDATE %s.fleet_docs SET body = '%s' WHERE id = '%s'",
                 f->pg_schema, text, id);
        assert_true(pg_admin(f->pg_base, sql));
        return;
    }
    snprintf(sql, sizeof sql, "UPDATE fleet_docs SET body = '%s' WHERE id = '%s'", text, id);
    sqlite3 *db = raw_open(f);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

static void test_doc_corrupt_body_is_a_storage_error(void **state)
{
    fixture *f = *state;
    put_ok(f->s, HUB_DOC_DEVICE_JOB, "j", "a");
    put_ok(f->s, HUB_DOC_DEVICE_JOB, "j", "b");
    put_ok(f->s, HUB_DOC_DEVICE_JOB, "j", "c");
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);
    corrupt(f, "b", "{not json");
    corrupt(f, "c", "[1]"); /* JSON, but not an object */

    json_t *got = NULL;
    assert_int_equal(hub_store_doc_get(f->s, HUB_DOC_DEVICE_JOB, "j", "b", &got, NULL),
                     IOTDM_E_STORAGE);
    assert_null(got);
    assert_int_equal(hub_store_doc_get(f->s, HUB_DOC_DEVICE_JOB, "j", "c", &got, NULL),
                     IOTDM_E_STORAGE);
    assert_null(got);
    walk w = {.seen = ""};
    assert_int_equal(
        hub_store_doc_foreach(f->s, HUB_DOC_DEVICE_JOB, "j", NULL, NULL, 10, record, &w),
        IOTDM_E_STORAGE);
    assert_string_equal(w.seen, "j/a:1,");
    /* The store goes on: the damaged documents can be replaced, the others read. */
    assert_int_equal(get_n(f->s, HUB_DOC_DEVICE_JOB, "j", "a", NULL), 0);
    put_ok(f->s, HUB_DOC_DEVICE_JOB, "j", "b");
    assert_int_equal(hub_store_doc_delete(f->s, HUB_DOC_DEVICE_JOB, "j", "c", 1), IOTDM_OK);
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);
    walk_reset(&w);
    assert_int_equal(
        hub_store_doc_foreach(f->s, HUB_DOC_DEVICE_JOB, "j", NULL, NULL, 10, record, &w), IOTDM_OK);
    assert_string_equal(w.seen, "j/a:1,j/b:2,");
}

/* A database of the schema before the fleet documents (table dropped, version set back) gets
 * them when it is opened, keeping what it held. */
static void test_doc_earlier_schema_migrated_on_open(void **state)
{
    fixture *f = *state;
    create(f->s, "dev-1");
    put_ok(f->s, HUB_DOC_JOB, "", "job-1");
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);
    hub_store_close(f->s);
    f->s = NULL;
    char sql[256];
    if (on_pg()) {
        snprintf(sql, sizeof sql,
                 "DROP TABLE %s.fleet_docs; UPDATE %s.iotdm_schema SET version = 1", f->pg_schema,
                 f->pg_schema);
        assert_true(pg_admin(f->pg_base, sql));
    } else {
        sqlite3 *db = raw_open(f);
        assert_int_equal(raw_int(db, "PRAGMA user_version"), sq_schema_version());
        snprintf(sql, sizeof sql, "DROP TABLE fleet_docs; PRAGMA user_version = %d;",
                 sq_schema_version() - 1);
        assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
    }
    assert_int_equal(hub_store_open(f->path, &f->s), IOTDM_OK);
    assert_int_equal(raw_count(f, "fleet_docs"), 0);
    if (!on_pg()) {
        sqlite3 *db = raw_open(f);
        assert_int_equal(raw_int(db, "PRAGMA user_version"), sq_schema_version());
        sqlite3_close(db);
    }
    hub_device d;
    assert_int_equal(hub_store_device_get(f->s, "dev-1", &d), IOTDM_OK);
    put_ok(f->s, HUB_DOC_JOB, "", "job-2");
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);
    /* Opened again at the current version: nothing to migrate, nothing lost. */
    hub_store_close(f->s);
    assert_int_equal(hub_store_open(f->path, &f->s), IOTDM_OK);
    assert_int_equal(get_n(f->s, HUB_DOC_JOB, "", "job-2", NULL), 0);
    assert_int_equal(count(f->s, HUB_DOC_JOB, NULL), 1);
}

/* The plan PostgreSQL chooses for sql: its lines, joined. */
static void pg_plan(const fixture *f, const char *sql, char *out, size_t cap)
{
    PGconn *c = PQconnectdb(f->path);
    /* On a table this small a scan would win; the question is what the index can bound. */
    PQclear(PQexec(c, "SET enable_seqscan = off"));
    char q[512];
    snprintf(q, sizeof q, "EXPLAIN %s", sql);
    PGresult *r = PQexec(c, q);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    out[0] = '\0';
    for (int i = 0; i < PQntuples(r); i++) {
        strncat(out, PQgetvalue(r, i, 0), cap - strlen(out) - 2);
        strcat(out, ";");
    }
    PQclear(r);
    PQfinish(c);
}

/* Listings are bounded by the primary key, cursor included, and need no sort: a page costs the
 * rows it returns, however far into a job's records it starts. */
static void test_doc_listings_walk_the_primary_key(void **state)
{
    fixture *f = *state;
    put_ok(f->s, HUB_DOC_DEVICE_JOB, "j1", "d1");
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);
    if (on_pg()) {
        char plan[2048];
        pg_plan(f,
                "SELECT scope, id, etag, body FROM fleet_docs WHERE collection = 2 AND "
                "(scope, id) > ('j1'::text, 'd0'::text) ORDER BY scope, id LIMIT 100",
                plan, sizeof plan);
        if (!strstr(plan, "Index Cond: ((collection = 2) AND (ROW(scope, id) > ") ||
            strstr(plan, "Sort"))
            fail_msg("cursor is not an index bound: %s", plan);
        pg_plan(f,
                "SELECT scope, id, etag, body FROM fleet_docs WHERE collection = 2 AND "
                "scope = 'j1'::text AND id > 'd0'::text ORDER BY id LIMIT 100",
                plan, sizeof plan);
        if (!strstr(plan, "Index Cond: ((collection = 2) AND (scope = 'j1'::text) AND (id > ") ||
            strstr(plan, "Sort"))
            fail_msg("cursor is not an index bound: %s", plan);
        return;
    }
    sqlite3 *db = raw_open(f);
    assert_plan_uses_index(db,
                           "SELECT scope, id, etag, body FROM fleet_docs WHERE collection = ?1 "
                           "AND scope = ?2 AND id > ?3 ORDER BY id LIMIT ?4",
                           "PRIMARY KEY (collection=? AND scope=? AND id>?)");
    assert_plan_uses_index(db,
                           "SELECT scope, id, etag, body FROM fleet_docs WHERE collection = ?1 "
                           "AND (scope, id) > (?2, ?3) ORDER BY scope, id LIMIT ?4",
                           "PRIMARY KEY (collection=? AND (scope,id)>(?,?))");
    assert_plan_uses_index(db,
                           "SELECT COUNT(*) FROM fleet_docs WHERE collection = ?1 AND scope = ?2",
                           "PRIMARY KEY (collection=? AND scope=?)");
    sqlite3_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_doc_put_creates_then_replaces_counting_etags),
        T(test_doc_create_only_refuses_an_existing_document),
        T(test_doc_if_match_mismatch_or_absent_is_precondition),
        T(test_doc_delete_variants),
        T(test_doc_foreach_one_scope_pages_in_bytewise_id_order),
        T(test_doc_foreach_across_scopes_follows_the_cursor),
        T(test_doc_foreach_long_walk_stops_at_max_or_visitor),
        T(test_doc_delete_scope_counts_and_spares_the_rest),
        T(test_doc_bad_input_refused_with_nothing_changed),
        T(test_doc_survives_close_and_reopen),
        T(test_doc_writes_of_a_failed_unit_are_undone),
        T(test_doc_corrupt_body_is_a_storage_error),
        T(test_doc_earlier_schema_migrated_on_open),
        T(test_doc_listings_walk_the_primary_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
