/* SQLite store: device-provisioning enrollments, registration records (JSON documents),
 * operations and TPM challenges. */
#include <string.h>

#include "common/log.h"
#include "hub/store/sqlite/sqlite_internal.h"

/* Enrollments and registration records are a low-rate path: their statements are prepared per
 * call. Operations and TPM challenges, written and read by every registration and pruned by the
 * housekeeping, use the statement cache. */
static sqlite3_stmt *prep(sq_store *s, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        IOTDM_IGNORE(store_sqlite_result(s, rc, "prepare")); /* logs it; NULL says it failed */
        return NULL;
    }
    return st;
}

/* A row statement keyed by (kind, id) (enrollments), or by id alone when kind < 0 (registration
 * records): prepared with the key bound; *out_next is the next parameter's index. */
static sqlite3_stmt *prep_keyed(sq_store *s, const char *sql, int kind, const char *id,
                                int *out_next)
{
    sqlite3_stmt *st = prep(s, sql);
    if (!st)
        return NULL;
    int idx = 1;
    if (kind >= 0)
        sqlite3_bind_int(st, idx++, kind);
    bind_text(st, idx++, id);
    if (out_next)
        *out_next = idx;
    return st;
}

/* The stored etag of a row, 0 when there is none; -1 on failure. */
static int64_t current_etag(sq_store *s, const char *sql, int kind, const char *id)
{
    sqlite3_stmt *st = prep_keyed(s, sql, kind, id, NULL);
    if (!st)
        return -1;
    int rc = sqlite3_step(st);
    int64_t etag = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : rc == SQLITE_DONE ? 0 : -1;
    sqlite3_finalize(st);
    return etag;
}

static iotdm_result check_if_match(int64_t current, uint64_t if_match)
{
    if (current < 0)
        return IOTDM_E_STORAGE;
    if (if_match && (uint64_t)current != if_match)
        return IOTDM_E_PRECONDITION;
    return IOTDM_OK;
}

static iotdm_result write_doc(sq_store *s, const char *sql, int kind, const char *id,
                              const char *group, const json_t *doc, int64_t etag)
{
    const char *text;
    size_t len;
    iotdm_result r = store_dump(s, 0, doc, &text, &len);
    if (r != IOTDM_OK)
        return r;
    int idx;
    sqlite3_stmt *st = prep_keyed(s, sql, kind, id, &idx);
    if (!st)
        return IOTDM_E_STORAGE;
    if (group)
        bind_text(st, idx++, group);
    sqlite3_bind_int64(st, idx++, etag);
    sqlite3_bind_text(st, idx, text, (int)len, SQLITE_STATIC);
    r = stmt_exec(s, st);
    sqlite3_finalize(st);
    return r;
}

iotdm_result sq_enrollment_put(hub_store *base, hub_dps_kind kind, const char *id,
                               const json_t *doc, uint64_t if_match, uint64_t *out_etag)
{
    sq_store *store = (sq_store *)base;
    if (!store_id_ok(id))
        return IOTDM_E_MALFORMED;
    iotdm_result r = store_write_begin(store);
    if (r != IOTDM_OK)
        return r;
    int64_t cur = current_etag(
        store, "SELECT etag FROM dps_enrollments WHERE kind = ?1 AND id = ?2", (int)kind, id);
    r = check_if_match(cur, if_match);
    if (r != IOTDM_OK)
        return r;
    r = write_doc(store,
                  "INSERT OR REPLACE INTO dps_enrollments(kind, id, etag, doc) VALUES(?1, ?2, ?3, "
                  "?4)",
                  (int)kind, id, NULL, doc, cur + 1);
    if (r == IOTDM_OK && out_etag)
        *out_etag = (uint64_t)(cur + 1);
    return r;
}

static iotdm_result read_doc(sq_store *s, const char *sql, int kind, const char *id,
                             json_t **out_doc, uint64_t *out_etag)
{
    sqlite3_stmt *st = prep_keyed(s, sql, kind, id, NULL);
    if (!st)
        return IOTDM_E_STORAGE;
    int rc = sqlite3_step(st);
    iotdm_result r = IOTDM_OK;
    if (rc == SQLITE_ROW) {
        if (out_etag)
            *out_etag = (uint64_t)sqlite3_column_int64(st, 0);
        *out_doc = store_load(st, 1);
        if (!*out_doc)
            r = IOTDM_E_STORAGE;
    } else {
        r = rc == SQLITE_DONE ? IOTDM_E_NOT_FOUND : store_sqlite_result(s, rc, "dps get");
    }
    sqlite3_finalize(st);
    return r;
}

iotdm_result sq_enrollment_get(hub_store *base, hub_dps_kind kind, const char *id, json_t **out_doc,
                               uint64_t *out_etag)
{
    sq_store *store = (sq_store *)base;
    return read_doc(store, "SELECT etag, doc FROM dps_enrollments WHERE kind = ?1 AND id = ?2",
                    (int)kind, id, out_doc, out_etag);
}

static iotdm_result delete_row(sq_store *s, const char *etag_sql, const char *sql, int kind,
                               const char *id, uint64_t if_match)
{
    iotdm_result r = store_write_begin(s);
    if (r != IOTDM_OK)
        return r;
    int64_t cur = current_etag(s, etag_sql, kind, id);
    if (cur == 0)
        return IOTDM_E_NOT_FOUND;
    r = check_if_match(cur, if_match);
    if (r != IOTDM_OK)
        return r;
    sqlite3_stmt *st = prep_keyed(s, sql, kind, id, NULL);
    if (!st)
        return IOTDM_E_STORAGE;
    r = stmt_exec(s, st);
    sqlite3_finalize(st);
    return r;
}

iotdm_result sq_enrollment_delete(hub_store *base, hub_dps_kind kind, const char *id,
                                  uint64_t if_match)
{
    sq_store *store = (sq_store *)base;
    return delete_row(store, "SELECT etag FROM dps_enrollments WHERE kind = ?1 AND id = ?2",
                      "DELETE FROM dps_enrollments WHERE kind = ?1 AND id = ?2", (int)kind, id,
                      if_match);
}

/* Runs a listing whose rows are (id, etag, doc); parameters are bound by the caller. */
static iotdm_result visit_rows(sq_store *s, sqlite3_stmt *st, hub_doc_visitor visit, void *ctx)
{
    int rc;
    iotdm_result r = IOTDM_OK;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *doc = store_load(st, 2);
        if (!doc)
            continue; /* corrupt row: logged by store_load, skipped */
        bool more = visit(ctx, (const char *)sqlite3_column_text(st, 0), doc,
                          (uint64_t)sqlite3_column_int64(st, 1));
        json_decref(doc);
        if (!more)
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        r = store_sqlite_result(s, rc, "dps list");
    sqlite3_finalize(st);
    return r;
}

iotdm_result sq_enrollment_foreach(hub_store *base, hub_dps_kind kind, const char *after_id,
                                   size_t max, hub_doc_visitor visit, void *ctx)
{
    sq_store *store = (sq_store *)base;
    sqlite3_stmt *st = prep(store, "SELECT id, etag, doc FROM dps_enrollments WHERE kind = ?1 AND "
                                   "id > ?2 ORDER BY id LIMIT ?3");
    if (!st)
        return IOTDM_E_STORAGE;
    sqlite3_bind_int(st, 1, (int)kind);
    bind_text(st, 2, after_id ? after_id : "");
    sqlite3_bind_int64(st, 3, (sqlite3_int64)max);
    return visit_rows(store, st, visit, ctx);
}

iotdm_result sq_registration_put(hub_store *base, const char *registration_id, const char *group_id,
                                 const json_t *doc, uint64_t *out_etag)
{
    sq_store *store = (sq_store *)base;
    if (!store_id_ok(registration_id))
        return IOTDM_E_MALFORMED;
    iotdm_result r = store_write_begin(store);
    if (r != IOTDM_OK)
        return r;
    int64_t cur =
        current_etag(store, "SELECT etag FROM dps_registrations WHERE registration_id = ?1", -1,
                     registration_id);
    if (cur < 0)
        return IOTDM_E_STORAGE;
    r = write_doc(store,
                  "INSERT OR REPLACE INTO dps_registrations(registration_id, group_id, etag, doc) "
                  "VALUES(?1, ?2, ?3, ?4)",
                  -1, registration_id, group_id ? group_id : "", doc, cur + 1);
    if (r == IOTDM_OK && out_etag)
        *out_etag = (uint64_t)(cur + 1);
    return r;
}

iotdm_result sq_registration_get(hub_store *base, const char *registration_id, json_t **out_doc,
                                 uint64_t *out_etag)
{
    sq_store *store = (sq_store *)base;
    return read_doc(store, "SELECT etag, doc FROM dps_registrations WHERE registration_id = ?1", -1,
                    registration_id, out_doc, out_etag);
}

iotdm_result sq_registration_delete(hub_store *base, const char *registration_id, uint64_t if_match)
{
    sq_store *store = (sq_store *)base;
    return delete_row(store, "SELECT etag FROM dps_registrations WHERE registration_id = ?1",
                      "DELETE FROM dps_registrations WHERE registration_id = ?1", -1,
                      registration_id, if_match);
}

iotdm_result sq_registration_foreach(hub_store *base, const char *group_id, const char *after_id,
                                     size_t max, hub_doc_visitor visit, void *ctx)
{
    sq_store *store = (sq_store *)base;
    sqlite3_stmt *st = prep(store, "SELECT registration_id, etag, doc FROM dps_registrations "
                                   "WHERE (?1 IS NULL OR group_id = ?1) AND registration_id > ?2 "
                                   "ORDER BY registration_id LIMIT ?3");
    if (!st)
        return IOTDM_E_STORAGE;
    if (group_id)
        bind_text(st, 1, group_id);
    bind_text(st, 2, after_id ? after_id : "");
    sqlite3_bind_int64(st, 3, (sqlite3_int64)max);
    return visit_rows(store, st, visit, ctx);
}

iotdm_result sq_dps_operation_put(hub_store *base, const char *operation_id,
                                  const char *registration_id, int64_t created_ms,
                                  const json_t *result)
{
    sq_store *store = (sq_store *)base;
    if (!store_id_ok(operation_id) || !store_id_ok(registration_id) || !result)
        return IOTDM_E_MALFORMED;
    const char *text;
    size_t len;
    iotdm_result r = store_dump(store, 0, result, &text, &len);
    if (r != IOTDM_OK)
        return r;
    if (len > INT32_MAX)
        return IOTDM_E_TOO_LARGE;
    sqlite3_stmt *st =
        store_write_stmt(store, ST_DPS_OP_PUT,
                         "INSERT INTO dps_operations(operation_id, registration_id, created_ms, "
                         "result) VALUES(?1, ?2, ?3, ?4)",
                         &r);
    if (!st)
        return r;
    bind_text(st, 1, operation_id);
    bind_text(st, 2, registration_id);
    sqlite3_bind_int64(st, 3, created_ms);
    sqlite3_bind_text(st, 4, text, (int)len, SQLITE_STATIC);
    r = stmt_exec(store, st);
    stmt_give(store, ST_DPS_OP_PUT, st);
    return r;
}

iotdm_result sq_dps_operation_get(hub_store *base, const char *operation_id,
                                  char out_registration_id[HUB_ID_MAX], int64_t *out_created_ms,
                                  json_t **out_result)
{
    sq_store *store = (sq_store *)base;
    *out_result = NULL;
    sqlite3_stmt *st = stmt_take(store, ST_DPS_OP_GET,
                                 "SELECT registration_id, created_ms, result FROM dps_operations "
                                 "WHERE operation_id = ?1");
    if (!st)
        return IOTDM_E_STORAGE;
    bind_text(st, 1, operation_id);
    int rc = sqlite3_step(st);
    iotdm_result r = IOTDM_OK;
    if (rc == SQLITE_ROW) {
        column_copy(st, 0, out_registration_id, HUB_ID_MAX);
        *out_created_ms = sqlite3_column_int64(st, 1);
        *out_result = store_load(st, 2);
        if (!*out_result)
            r = IOTDM_E_STORAGE;
    } else {
        r = rc == SQLITE_DONE ? IOTDM_E_NOT_FOUND : store_sqlite_result(store, rc, "dps operation");
    }
    stmt_give(store, ST_DPS_OP_GET, st);
    return r;
}

/* One pruning DELETE with one integer parameter; adds the rows it deleted to *deleted. */
static iotdm_result prune_rows(sq_store *s, store_stmt_id id, const char *sql, int64_t param,
                               size_t *deleted)
{
    iotdm_result r;
    sqlite3_stmt *st = store_write_stmt(s, id, sql, &r);
    if (!st)
        return r;
    sqlite3_bind_int64(st, 1, param);
    r = stmt_exec(s, st);
    if (r == IOTDM_OK)
        *deleted += (size_t)sqlite3_changes(s->db);
    stmt_give(s, id, st);
    return r;
}

static int64_t keep_param(size_t max_keep)
{
    return max_keep > INT64_MAX ? INT64_MAX : (int64_t)max_keep;
}

iotdm_result sq_dps_operation_prune(hub_store *base, int64_t before_ms, size_t max_keep,
                                    size_t *out_deleted)
{
    sq_store *store = (sq_store *)base;
    size_t deleted = 0;
    iotdm_result r =
        prune_rows(store, ST_DPS_OP_EXPIRE, "DELETE FROM dps_operations WHERE created_ms < ?1",
                   before_ms, &deleted);
    /* The index holds (created_ms, operation_id): the subquery walks it from the newest end and
     * skips max_keep entries; ties on created_ms go by operation id, an arbitrary but fixed order.
     */
    if (r == IOTDM_OK)
        r = prune_rows(store, ST_DPS_OP_TRIM,
                       "DELETE FROM dps_operations WHERE operation_id IN (SELECT operation_id FROM "
                       "dps_operations ORDER BY created_ms DESC, operation_id DESC LIMIT -1 "
                       "OFFSET ?1)",
                       keep_param(max_keep), &deleted);
    if (out_deleted)
        *out_deleted = deleted;
    return r;
}

iotdm_result sq_tpm_challenge_put(hub_store *base, const char *registration_id,
                                  const hub_tpm_challenge *c)
{
    sq_store *store = (sq_store *)base;
    if (!store_id_ok(registration_id) || !c->srk_len || c->srk_len > sizeof c->srk)
        return IOTDM_E_MALFORMED;
    iotdm_result r;
    sqlite3_stmt *st =
        store_write_stmt(store, ST_TPM_CHALLENGE_PUT,
                         "INSERT OR REPLACE INTO dps_tpm_challenges(registration_id, "
                         "key, ek_digest, srk, expires_ms) VALUES(?1, ?2, ?3, ?4, ?5)",
                         &r);
    if (!st)
        return r;
    bind_text(st, 1, registration_id);
    sqlite3_bind_blob(st, 2, c->key, (int)sizeof c->key, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, c->ek_digest, (int)sizeof c->ek_digest, SQLITE_STATIC);
    sqlite3_bind_blob(st, 4, c->srk, (int)c->srk_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, c->expires_ms);
    r = stmt_exec(store, st);
    stmt_give(store, ST_TPM_CHALLENGE_PUT, st);
    return r;
}

/* Copies a BLOB column of min to cap bytes; false when it is not one. */
static bool column_bytes(sqlite3_stmt *st, int col, uint8_t *dst, size_t min, size_t cap,
                         size_t *out_len)
{
    const void *p = sqlite3_column_blob(st, col);
    size_t n = p ? (size_t)sqlite3_column_bytes(st, col) : 0;
    if (!p || n < min || n > cap)
        return false;
    memcpy(dst, p, n);
    *out_len = n;
    return true;
}

iotdm_result sq_tpm_challenge_get(hub_store *base, const char *registration_id, int64_t now_ms,
                                  hub_tpm_challenge *out)
{
    sq_store *store = (sq_store *)base;
    sqlite3_stmt *st = stmt_take(store, ST_TPM_CHALLENGE_GET,
                                 "SELECT key, ek_digest, srk, expires_ms FROM dps_tpm_challenges "
                                 "WHERE registration_id = ?1 AND expires_ms > ?2");
    if (!st)
        return IOTDM_E_STORAGE;
    bind_text(st, 1, registration_id);
    sqlite3_bind_int64(st, 2, now_ms);
    int rc = sqlite3_step(st);
    iotdm_result r = IOTDM_OK;
    if (rc == SQLITE_ROW) {
        size_t key_len = 0, digest_len = 0;
        if (!column_bytes(st, 0, out->key, sizeof out->key, sizeof out->key, &key_len) ||
            !column_bytes(st, 1, out->ek_digest, sizeof out->ek_digest, sizeof out->ek_digest,
                          &digest_len) ||
            !column_bytes(st, 2, out->srk, 1, sizeof out->srk, &out->srk_len)) {
            memset(out, 0, sizeof *out);
            log_error("store", "corrupt TPM challenge in database registration=%s",
                      registration_id);
            r = IOTDM_E_STORAGE;
        } else {
            out->expires_ms = sqlite3_column_int64(st, 3);
        }
    } else {
        r = rc == SQLITE_DONE ? IOTDM_E_NOT_FOUND : store_sqlite_result(store, rc, "tpm challenge");
    }
    stmt_give(store, ST_TPM_CHALLENGE_GET, st);
    return r;
}

iotdm_result sq_tpm_challenge_prune(hub_store *base, int64_t now_ms, size_t max_keep,
                                    size_t *out_deleted)
{
    sq_store *store = (sq_store *)base;
    size_t deleted = 0;
    iotdm_result r =
        prune_rows(store, ST_TPM_CHALLENGE_EXPIRE,
                   "DELETE FROM dps_tpm_challenges WHERE expires_ms <= ?1", now_ms, &deleted);
    /* As for the operations: the index holds (expires_ms, registration_id), walked from the end. */
    if (r == IOTDM_OK)
        r = prune_rows(store, ST_TPM_CHALLENGE_TRIM,
                       "DELETE FROM dps_tpm_challenges WHERE registration_id IN (SELECT "
                       "registration_id FROM dps_tpm_challenges ORDER BY expires_ms DESC, "
                       "registration_id DESC LIMIT -1 OFFSET ?1)",
                       keep_param(max_keep), &deleted);
    if (out_deleted)
        *out_deleted = deleted;
    return r;
}
