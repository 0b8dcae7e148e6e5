/* PostgreSQL store: device-provisioning enrollments, registration records (JSON documents),
 * operations and TPM challenges. */
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/log.h"
#include "hub/store/postgresql/pg_internal.h"

/* Documents fetched per round trip by the listings. */
enum { DPS_BATCH = 100 };

/* The key a listing starts after: after_id folded (NULL or "": before every id). Ids are stored
 * shorter than HUB_ID_MAX, so cutting a longer after_id to that length changes no comparison:
 * every stored id above the cut one is above the whole one too. */
static void fold_after(const char *after_id, char out[HUB_ID_MAX])
{
    char cut[HUB_ID_MAX];
    snprintf(cut, sizeof cut, "%s", after_id ? after_id : "");
    if (!pg_fold_id(cut, out))
        out[0] = '\0';
}

/* Reads (etag, doc) from a row statement keyed by p; IOTDM_E_NOT_FOUND without a row. */
static iotdm_result read_doc(pg_store *s, pg_stmt_id id, const char *sql, const pg_params *p,
                             json_t **out_doc, uint64_t *out_etag)
{
    iotdm_result r;
    PGresult *res = pg_select(s, id, sql, p, &r);
    if (!res)
        return r;
    r = IOTDM_E_NOT_FOUND;
    if (PQntuples(res) == 1) {
        if (out_etag)
            *out_etag = (uint64_t)pg_int(res, 0, 0);
        *out_doc = pg_json(res, 0, 1);
        r = *out_doc ? IOTDM_OK : IOTDM_E_STORAGE;
    }
    PQclear(res);
    return r;
}

/* Runs a conditional delete whose one row says (whether the row existed, whether it went). */
static iotdm_result delete_row(pg_store *s, pg_stmt_id id, const char *sql, const pg_params *p)
{
    iotdm_result r = pg_write_begin(s);
    PGresult *res = r == IOTDM_OK ? pg_run(s, id, sql, p, &r) : NULL;
    if (!res)
        return r;
    if (pg_int(res, 0, 0) == 0)
        r = IOTDM_E_NOT_FOUND;
    else if (pg_int(res, 0, 1) == 0)
        r = IOTDM_E_PRECONDITION;
    PQclear(res);
    return r;
}

/* Runs a listing whose rows are (id, etag, doc, key) in key order, p's last two parameters being
 * the key to start after and the batch size, in batches until max rows or the visitor stops. */
static iotdm_result visit_rows(pg_store *s, pg_stmt_id id, const char *sql, pg_params *p,
                               const char *after_id, size_t max, hub_doc_visitor visit, void *ctx)
{
    char after[HUB_ID_MAX];
    fold_after(after_id, after);
    int first = p->n; /* where the varying parameters go */
    bool more = true;
    iotdm_result r = pg_read_begin(s);
    while (r == IOTDM_OK && more && max > 0) {
        int64_t want = max < DPS_BATCH ? (int64_t)max : DPS_BATCH;
        p->n = first;
        pp_text(p, after);
        pp_int(p, want);
        PGresult *res = pg_run(s, id, sql, p, &r);
        if (!res)
            break;
        int rows = PQntuples(res);
        for (int i = 0; i < rows && more; i++) {
            pg_copy(res, i, 3, after, sizeof after);
            max--;
            json_t *doc = pg_json(res, i, 2);
            if (!doc)
                continue; /* corrupt row: logged by pg_json, skipped */
            more = visit(ctx, PQgetvalue(res, i, 0), doc, (uint64_t)pg_int(res, i, 1));
            json_decref(doc);
        }
        PQclear(res);
        if (rows < want)
            break;
    }
    return r;
}

/* ---- enrollments ---- */

iotdm_result pg_enrollment_put(hub_store *base, hub_dps_kind kind, const char *id,
                               const json_t *doc, uint64_t if_match, uint64_t *out_etag)
{
    pg_store *s = (pg_store *)base;
    char key[HUB_ID_MAX];
    if (!pg_fold_id(id, key))
        return IOTDM_E_MALFORMED;
    const char *text;
    size_t len;
    iotdm_result r = pg_dump(s, 0, doc, &text, &len);
    if (r == IOTDM_OK)
        r = pg_write_begin(s);
    if (r != IOTDM_OK)
        return r;
    pg_params p = {0};
    pp_int(&p, (int64_t)kind);
    pp_text(&p, key);
    pp_text(&p, id);
    pp_int(&p, (int64_t)if_match);
    pp_textn(&p, text, len);
    /* One statement, so that two writers cannot both replace the same etag. Unconditional: an
     * upsert. Conditional: an update of the row holding that etag, none when it differs or there
     * is no row. A replacing put keeps the id as now given, as SQLite's INSERT OR REPLACE does. */
    PGresult *res = pg_run(
        s, PQ_ENROLLMENT_PUT,
        "WITH upd AS (UPDATE dps_enrollments SET id = $3::text, etag = etag + 1, doc = $5::text "
        "WHERE $4::bigint <> 0 AND kind = $1::integer AND id_key = $2::text "
        "AND etag = $4::bigint RETURNING etag), "
        "ins AS (INSERT INTO dps_enrollments AS e(kind, id_key, id, etag, doc) "
        "SELECT $1::integer, $2::text, $3::text, 1, $5::text WHERE $4::bigint = 0 "
        "ON CONFLICT (kind, id_key) DO UPDATE SET id = excluded.id, etag = e.etag + 1, "
        "doc = excluded.doc RETURNING etag) "
        "SELECT etag FROM upd UNION ALL SELECT etag FROM ins",
        &p, &r);
    if (!res)
        return r;
    r = IOTDM_E_PRECONDITION;
    if (PQntuples(res) == 1) {
        if (out_etag)
            *out_etag = (uint64_t)pg_int(res, 0, 0);
        r = IOTDM_OK;
    }
    PQclear(res);
    return r;
}

iotdm_result pg_enrollment_get(hub_store *base, hub_dps_kind kind, const char *id, json_t **out_doc,
                               uint64_t *out_etag)
{
    pg_store *s = (pg_store *)base;
    char key[HUB_ID_MAX];
    if (!pg_fold_id(id, key))
        return IOTDM_E_NOT_FOUND; /* never stored */
    pg_params p = {0};
    pp_int(&p, (int64_t)kind);
    pp_text(&p, key);
    return read_doc(s, PQ_ENROLLMENT_GET,
                    "SELECT etag, doc FROM dps_enrollments WHERE kind = $1::integer AND "
                    "id_key = $2",
                    &p, out_doc, out_etag);
}

iotdm_result pg_enrollment_delete(hub_store *base, hub_dps_kind kind, const char *id,
                                  uint64_t if_match)
{
    pg_store *s = (pg_store *)base;
    char key[HUB_ID_MAX];
    if (!pg_fold_id(id, key))
        return IOTDM_E_NOT_FOUND;
    pg_params p = {0};
    pp_int(&p, (int64_t)kind);
    pp_text(&p, key);
    pp_int(&p, (int64_t)if_match);
    /* Both sub-statements see the table as it was: cur says whether the row existed. */
    return delete_row(s, PQ_ENROLLMENT_DELETE,
                      "WITH cur AS (SELECT 1 FROM dps_enrollments WHERE kind = $1::integer AND "
                      "id_key = $2::text), "
                      "del AS (DELETE FROM dps_enrollments WHERE kind = $1::integer AND "
                      "id_key = $2::text AND ($3::bigint = 0 OR etag = $3::bigint) RETURNING 1) "
                      "SELECT (SELECT COUNT(*) FROM cur), (SELECT COUNT(*) FROM del)",
                      &p);
}

iotdm_result pg_enrollment_foreach(hub_store *base, hub_dps_kind kind, const char *after_id,
                                   size_t max, hub_doc_visitor visit, void *ctx)
{
    pg_store *s = (pg_store *)base;
    pg_params p = {0};
    pp_int(&p, (int64_t)kind);
    return visit_rows(s, PQ_ENROLLMENT_LIST,
                      "SELECT id, etag, doc, id_key FROM dps_enrollments WHERE kind = $1::integer "
                      "AND id_key > $2 ORDER BY id_key LIMIT $3::bigint",
                      &p, after_id, max, visit, ctx);
}

/* ---- registration records ---- */

iotdm_result pg_registration_put(hub_store *base, const char *registration_id, const char *group_id,
                                 const json_t *doc, uint64_t *out_etag)
{
    pg_store *s = (pg_store *)base;
    char key[HUB_ID_MAX];
    if (!pg_fold_id(registration_id, key))
        return IOTDM_E_MALFORMED;
    const char *text;
    size_t len;
    iotdm_result r = pg_dump(s, 0, doc, &text, &len);
    if (r == IOTDM_OK)
        r = pg_write_begin(s);
    if (r != IOTDM_OK)
        return r;
    pg_params p = {0};
    pp_text(&p, key);
    pp_text(&p, registration_id);
    pp_text(&p, group_id ? group_id : "");
    pp_textn(&p, text, len);
    /* Created with etag 1 or replaced with the next, atomically; the id as now given, as for the
     * enrollments. */
    PGresult *res = pg_run(s, PQ_REGISTRATION_PUT,
                           "INSERT INTO dps_registrations AS g(id_key, registration_id, group_id, "
                           "etag, doc) VALUES($1, $2, $3, 1, $4) ON CONFLICT (id_key) DO UPDATE "
                           "SET registration_id = excluded.registration_id, "
                           "group_id = excluded.group_id, etag = g.etag + 1, doc = excluded.doc "
                           "RETURNING etag",
                           &p, &r);
    if (!res)
        return r;
    if (out_etag)
        *out_etag = (uint64_t)pg_int(res, 0, 0);
    PQclear(res);
    return IOTDM_OK;
}

iotdm_result pg_registration_get(hub_store *base, const char *registration_id, json_t **out_doc,
                                 uint64_t *out_etag)
{
    pg_store *s = (pg_store *)base;
    char key[HUB_ID_MAX];
    if (!pg_fold_id(registration_id, key))
        return IOTDM_E_NOT_FOUND;
    pg_params p = {0};
    pp_text(&p, key);
    return read_doc(s, PQ_REGISTRATION_GET,
                    "SELECT etag, doc FROM dps_registrations WHERE id_key = $1", &p, out_doc,
                    out_etag);
}

iotdm_result pg_registration_delete(hub_store *base, const char *registration_id, uint64_t if_match)
{
    pg_store *s = (pg_store *)base;
    char key[HUB_ID_MAX];
    if (!pg_fold_id(registration_id, key))
        return IOTDM_E_NOT_FOUND;
    pg_params p = {0};
    pp_text(&p, key);
    pp_int(&p, (int64_t)if_match);
    return delete_row(s, PQ_REGISTRATION_DELETE,
                      "WITH cur AS (SELECT 1 FROM dps_registrations WHERE id_key = $1::text), "
                      "del AS (DELETE FROM dps_registrations WHERE id_key = $1::text AND "
                      "($2::bigint = 0 OR etag = $2::bigint) RETURNING 1) "
                      "SELECT (SELECT COUNT(*) FROM cur), (SELECT COUNT(*) FROM del)",
                      &p);
}

iotdm_result pg_registration_foreach(hub_store *base, const char *group_id, const char *after_id,
                                     size_t max, hub_doc_visitor visit, void *ctx)
{
    pg_store *s = (pg_store *)base;
    pg_params p = {0};
    if (!group_id)
        return visit_rows(s, PQ_REGISTRATION_LIST_ALL,
                          "SELECT registration_id, etag, doc, id_key FROM dps_registrations "
                          "WHERE id_key > $1 ORDER BY id_key LIMIT $2::bigint",
                          &p, after_id, max, visit, ctx);
    pp_text(&p, group_id);
    return visit_rows(s, PQ_REGISTRATION_LIST,
                      "SELECT registration_id, etag, doc, id_key FROM dps_registrations "
                      "WHERE group_id = $1 AND id_key > $2 ORDER BY id_key LIMIT $3::bigint",
                      &p, after_id, max, visit, ctx);
}

/* ---- operations ---- */

iotdm_result pg_dps_operation_put(hub_store *base, const char *operation_id,
                                  const char *registration_id, int64_t created_ms,
                                  const json_t *result)
{
    pg_store *s = (pg_store *)base;
    if (!pg_id_ok(operation_id) || !pg_id_ok(registration_id) || !result)
        return IOTDM_E_MALFORMED;
    const char *text;
    size_t len;
    iotdm_result r = pg_dump(s, 0, result, &text, &len);
    if (r == IOTDM_OK)
        r = pg_write_begin(s);
    if (r != IOTDM_OK)
        return r;
    pg_params p = {0};
    pp_text(&p, operation_id);
    pp_text(&p, registration_id);
    pp_int(&p, created_ms);
    pp_textn(&p, text, len);
    /* A taken id is no row, not an error that would fail the transaction. */
    uint64_t n = 0;
    r = pg_exec(s, PQ_DPS_OP_PUT,
                "INSERT INTO dps_operations(operation_id, registration_id, created_ms, result) "
                "VALUES($1, $2, $3::bigint, $4) ON CONFLICT (operation_id) DO NOTHING",
                &p, &n);
    return r == IOTDM_OK && n == 0 ? IOTDM_E_EXISTS : r;
}

iotdm_result pg_dps_operation_get(hub_store *base, const char *operation_id,
                                  char out_registration_id[HUB_ID_MAX], int64_t *out_created_ms,
                                  json_t **out_result)
{
    pg_store *s = (pg_store *)base;
    *out_result = NULL;
    pg_params p = {0};
    pp_text(&p, operation_id);
    iotdm_result r;
    PGresult *res = pg_select(s, PQ_DPS_OP_GET,
                              "SELECT registration_id, created_ms, result FROM dps_operations "
                              "WHERE operation_id = $1",
                              &p, &r);
    if (!res)
        return r;
    r = IOTDM_E_NOT_FOUND;
    if (PQntuples(res) == 1) {
        pg_copy(res, 0, 0, out_registration_id, HUB_ID_MAX);
        *out_created_ms = pg_int(res, 0, 1);
        *out_result = pg_json(res, 0, 2);
        r = *out_result ? IOTDM_OK : IOTDM_E_STORAGE;
    }
    PQclear(res);
    return r;
}

static int64_t keep_param(size_t max_keep)
{
    return max_keep > INT64_MAX ? INT64_MAX : (int64_t)max_keep;
}

/* The two pruning DELETEs, each with one integer parameter, in a savepoint: both apply or neither
 * does, and a failure does not fail the group. *out_deleted gets the rows that went. */
static iotdm_result prune_rows(pg_store *s, pg_stmt_id expire_id, const char *expire_sql,
                               int64_t expire_param, pg_stmt_id trim_id, const char *trim_sql,
                               int64_t trim_param, size_t *out_deleted)
{
    uint64_t expired = 0, trimmed = 0;
    iotdm_result r = pg_savepoint(s);
    if (r != IOTDM_OK)
        return r;
    pg_params p = {0};
    pp_int(&p, expire_param);
    r = pg_exec(s, expire_id, expire_sql, &p, &expired);
    if (r == IOTDM_OK) {
        p.n = 0;
        pp_int(&p, trim_param);
        r = pg_exec(s, trim_id, trim_sql, &p, &trimmed);
    }
    r = pg_savepoint_end(s, r);
    if (out_deleted)
        *out_deleted = r == IOTDM_OK ? (size_t)(expired + trimmed) : 0;
    return r;
}

iotdm_result pg_dps_operation_prune(hub_store *base, int64_t before_ms, size_t max_keep,
                                    size_t *out_deleted)
{
    pg_store *s = (pg_store *)base;
    /* Beyond the newest max_keep: ties on created_ms go by operation id, an arbitrary but fixed
     * order (SQLite's). */
    return prune_rows(s, PQ_DPS_OP_EXPIRE,
                      "DELETE FROM dps_operations WHERE created_ms < $1::bigint", before_ms,
                      PQ_DPS_OP_TRIM,
                      "DELETE FROM dps_operations WHERE operation_id IN (SELECT operation_id FROM "
                      "dps_operations ORDER BY created_ms DESC, operation_id DESC "
                      "OFFSET $1::bigint)",
                      keep_param(max_keep), out_deleted);
}

/* ---- TPM challenges ---- */

iotdm_result pg_tpm_challenge_put(hub_store *base, const char *registration_id,
                                  const hub_tpm_challenge *c)
{
    pg_store *s = (pg_store *)base;
    char key[HUB_ID_MAX];
    if (!pg_fold_id(registration_id, key) || !c->srk_len || c->srk_len > sizeof c->srk)
        return IOTDM_E_MALFORMED;
    iotdm_result r = pg_write_begin(s);
    if (r != IOTDM_OK)
        return r;
    pg_params p = {0};
    pp_text(&p, key);
    pp_bytes(&p, c->key, sizeof c->key);
    pp_bytes(&p, c->ek_digest, sizeof c->ek_digest);
    pp_bytes(&p, c->srk, c->srk_len);
    pp_int(&p, c->expires_ms);
    return pg_exec(s, PQ_TPM_CHALLENGE_PUT,
                   "INSERT INTO dps_tpm_challenges(id_key, key, ek_digest, srk, expires_ms) "
                   "VALUES($1, $2::bytea, $3::bytea, $4::bytea, $5::bigint) "
                   "ON CONFLICT (id_key) DO UPDATE SET key = excluded.key, "
                   "ek_digest = excluded.ek_digest, srk = excluded.srk, "
                   "expires_ms = excluded.expires_ms",
                   &p, NULL);
}

/* Copies a bytea column of min to cap bytes into dst; false when it is not one. The decoded copy
 * is wiped: the column may be the registration key. */
static bool column_bytes(const PGresult *res, int col, uint8_t *dst, size_t min, size_t cap,
                         size_t *out_len)
{
    size_t n = 0;
    bool ok;
    unsigned char *b = pg_bytes(res, 0, col, &n, &ok);
    ok = ok && b && n >= min && n <= cap;
    if (ok) {
        memcpy(dst, b, n);
        *out_len = n;
    }
    if (b)
        xfree_secret(b, n);
    return ok;
}

iotdm_result pg_tpm_challenge_get(hub_store *base, const char *registration_id, int64_t now_ms,
                                  hub_tpm_challenge *out)
{
    pg_store *s = (pg_store *)base;
    char key[HUB_ID_MAX];
    if (!pg_fold_id(registration_id, key))
        return IOTDM_E_NOT_FOUND; /* never stored */
    pg_params p = {0};
    pp_text(&p, key);
    pp_int(&p, now_ms);
    iotdm_result r;
    PGresult *res = pg_select(s, PQ_TPM_CHALLENGE_GET,
                              "SELECT key, ek_digest, srk, expires_ms FROM dps_tpm_challenges "
                              "WHERE id_key = $1 AND expires_ms > $2::bigint",
                              &p, &r);
    if (!res)
        return r;
    r = IOTDM_E_NOT_FOUND;
    if (PQntuples(res) == 1) {
        size_t key_len = 0, digest_len = 0;
        if (!column_bytes(res, 0, out->key, sizeof out->key, sizeof out->key, &key_len) ||
            !column_bytes(res, 1, out->ek_digest, sizeof out->ek_digest, sizeof out->ek_digest,
                          &digest_len) ||
            !column_bytes(res, 2, out->srk, 1, sizeof out->srk, &out->srk_len)) {
            memset(out, 0, sizeof *out);
            log_error("store", "corrupt TPM challenge in database registration=%s",
                      registration_id);
            r = IOTDM_E_STORAGE;
        } else {
            out->expires_ms = pg_int(res, 0, 3);
            r = IOTDM_OK;
        }
    }
    PQclear(res);
    return r;
}

iotdm_result pg_tpm_challenge_prune(hub_store *base, int64_t now_ms, size_t max_keep,
                                    size_t *out_deleted)
{
    pg_store *s = (pg_store *)base;
    /* As for the operations, beyond the max_keep that expire last; ties go by key. */
    return prune_rows(s, PQ_TPM_CHALLENGE_EXPIRE,
                      "DELETE FROM dps_tpm_challenges WHERE expires_ms <= $1::bigint", now_ms,
                      PQ_TPM_CHALLENGE_TRIM,
                      "DELETE FROM dps_tpm_challenges WHERE id_key IN (SELECT id_key FROM "
                      "dps_tpm_challenges ORDER BY expires_ms DESC, id_key DESC "
                      "OFFSET $1::bigint)",
                      keep_param(max_keep), out_deleted);
}
