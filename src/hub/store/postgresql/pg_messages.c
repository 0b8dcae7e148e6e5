/* PostgreSQL store: per-device cloud-to-device queues and the retained telemetry stream. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "hub/store/postgresql/pg_internal.h"

/* What a telemetry row costs beyond its texts and body, near enough. SQLite's figure, so that a
 * retention limit keeps the same messages on either backend: PostgreSQL's own is somewhat more
 * for small rows (about 88 bytes measured on PostgreSQL 15: tuple header, line pointer, the
 * fixed-width columns and alignment, and the primary key's index entry) and less for large ones,
 * whose texts and body it compresses. */
#define PG_TELEMETRY_ROW_OVERHEAD 64

/* Rows fetched per round trip where a listing may be long. Bodies come whole with their row, so
 * the batches that carry them stay small: a message is lent to its visitor from the batch. */
enum {
    C2D_BATCH = HUB_C2D_QUEUE_MAX, /* a full queue in one round trip */
    TELEMETRY_BATCH = 64,
    TRIM_BATCH = 1000, /* three integers a row */
};

/* ---- cloud-to-device ---- */

static iotdm_result c2d_live_count(pg_store *s, const hub_c2d *msg, size_t *out_count)
{
    /* Messages already expired at the new one's enqueue time do not hold a quota slot: they can
     * never be delivered, and the periodic expiry sweep may simply not have run yet. */
    *out_count = 0;
    pg_params p = {0};
    pp_field(&p, msg->device_id, sizeof msg->device_id);
    pp_int(&p, msg->enqueued_ms);
    iotdm_result r;
    PGresult *res = pg_select(s, PQ_C2D_COUNT_LIVE,
                              "SELECT COUNT(*) FROM c2d WHERE device_id = $1 "
                              "AND (expiry_ms = 0 OR expiry_ms > $2::bigint)",
                              &p, &r);
    if (!res)
        return r;
    *out_count = (size_t)pg_int(res, 0, 0);
    PQclear(res);
    return IOTDM_OK;
}

iotdm_result pg_c2d_enqueue(hub_store *base, hub_c2d *msg, size_t max_pending)
{
    pg_store *s = (pg_store *)base;
    if (!pg_id_ok(msg->device_id))
        return IOTDM_E_NOT_FOUND;
    if (msg->body_len > INT32_MAX || (msg->body_len && !msg->body))
        return IOTDM_E_TOO_LARGE;
    if (msg->properties && !json_is_object(msg->properties))
        return IOTDM_E_MALFORMED;
    const char *props;
    size_t props_len;
    iotdm_result r = pg_dump(s, 0, msg->properties, &props, &props_len);
    if (r != IOTDM_OK)
        return r;
    size_t pending;
    r = c2d_live_count(s, msg, &pending);
    if (r != IOTDM_OK)
        return r;
    if (pending >= max_pending)
        return IOTDM_E_QUOTA;
    r = pg_write_begin(s);
    if (r != IOTDM_OK)
        return r;
    pg_params p = {0};
    pp_field(&p, msg->device_id, sizeof msg->device_id);
    pp_field(&p, msg->message_id, sizeof msg->message_id);
    pp_textn(&p, props, props_len);
    pp_bytes(&p, msg->body, msg->body_len);
    pp_int(&p, msg->enqueued_ms);
    pp_int(&p, msg->expiry_ms);
    /* Inserts only for a device that exists: an unknown one is no row (SQLite's failed foreign
     * key), not an error that would fail the transaction. */
    PGresult *res =
        pg_run(s, PQ_C2D_INSERT,
               "INSERT INTO c2d(device_id, message_id, properties, body, enqueued_ms, expiry_ms, "
               "delivery_count) SELECT device_id, $2::text, $3::text, $4::bytea, $5::bigint, "
               "$6::bigint, 0 FROM devices WHERE device_id = $1 RETURNING seq",
               &p, &r);
    if (!res)
        return r;
    r = IOTDM_E_NOT_FOUND;
    if (PQntuples(res) == 1) {
        msg->seq = pg_int(res, 0, 0);
        msg->delivery_count = 0;
        r = IOTDM_OK;
    }
    PQclear(res);
    return r;
}

/* Lends one listed message to the visitor; *out_more gets its answer. */
static iotdm_result visit_c2d(const PGresult *res, int row, hub_c2d_visitor visit, void *ctx,
                              bool *out_more)
{
    hub_c2d m;
    memset(&m, 0, sizeof(m));
    m.seq = pg_int(res, row, 0);
    pg_copy(res, row, 1, m.device_id, sizeof m.device_id);
    pg_copy(res, row, 2, m.message_id, sizeof m.message_id);
    m.properties = pg_json(res, row, 3);
    if (!m.properties)
        return IOTDM_E_STORAGE;
    bool ok;
    m.body = pg_bytes(res, row, 4, &m.body_len, &ok);
    if (!ok) {
        json_decref(m.properties);
        return -ENOMEM; /* pg_bytes fails only when it cannot allocate */
    }
    m.enqueued_ms = pg_int(res, row, 5);
    m.expiry_ms = pg_int(res, row, 6);
    m.delivery_count = (int)pg_int(res, row, 7);
    *out_more = visit(ctx, &m);
    json_decref(m.properties);
    xfree(m.body);
    return IOTDM_OK;
}

iotdm_result pg_c2d_foreach(hub_store *base, const char *device_id, int64_t now_ms,
                            hub_c2d_visitor visit, void *ctx)
{
    pg_store *s = (pg_store *)base;
    if (!pg_id_ok(device_id))
        return IOTDM_E_NOT_FOUND;
    /* In batches after the last seq seen: the visitor may complete or mark the messages it was
     * lent (each batch is fetched whole first), and a long queue is never held whole. */
    int64_t after = 0;
    bool more = true;
    iotdm_result r = pg_read_begin(s);
    while (r == IOTDM_OK && more) {
        pg_params p = {0};
        pp_text(&p, device_id);
        pp_int(&p, now_ms);
        pp_int(&p, after);
        pp_int(&p, C2D_BATCH);
        PGresult *res = pg_run(s, PQ_C2D_LIST,
                               "SELECT seq, device_id, message_id, properties, body, "
                               "enqueued_ms, expiry_ms, delivery_count FROM c2d "
                               "WHERE device_id = $1 AND (expiry_ms = 0 OR expiry_ms > $2::bigint) "
                               "AND seq > $3::bigint ORDER BY seq LIMIT $4::bigint",
                               &p, &r);
        if (!res)
            break;
        int rows = PQntuples(res);
        for (int i = 0; i < rows && more && r == IOTDM_OK; i++) {
            r = visit_c2d(res, i, visit, ctx, &more);
            after = pg_int(res, i, 0);
        }
        PQclear(res);
        if (rows < C2D_BATCH)
            break;
    }
    return r;
}

static iotdm_result c2d_by_seq(pg_store *s, pg_stmt_id id, const char *sql, int64_t seq)
{
    iotdm_result r = pg_write_begin(s);
    if (r != IOTDM_OK)
        return r;
    pg_params p = {0};
    pp_int(&p, seq);
    return pg_exec_row(s, id, sql, &p);
}

iotdm_result pg_c2d_mark_delivered(hub_store *base, int64_t seq)
{
    pg_store *s = (pg_store *)base;
    return c2d_by_seq(s, PQ_C2D_DELIVERED,
                      "UPDATE c2d SET delivery_count = delivery_count + 1 WHERE seq = $1::bigint",
                      seq);
}

iotdm_result pg_c2d_complete(hub_store *base, int64_t seq)
{
    pg_store *s = (pg_store *)base;
    return c2d_by_seq(s, PQ_C2D_COMPLETE, "DELETE FROM c2d WHERE seq = $1::bigint", seq);
}

iotdm_result pg_c2d_purge(hub_store *base, const char *device_id, size_t *out_purged)
{
    pg_store *s = (pg_store *)base;
    if (out_purged)
        *out_purged = 0;
    /* An unknown device is IOTDM_E_NOT_FOUND, not an empty queue. */
    hub_device d;
    iotdm_result r = pg_device_get(base, device_id, &d);
    if (r == IOTDM_OK)
        r = pg_write_begin(s);
    if (r != IOTDM_OK)
        return r;
    pg_params p = {0};
    pp_text(&p, device_id);
    uint64_t n = 0;
    r = pg_exec(s, PQ_C2D_PURGE, "DELETE FROM c2d WHERE device_id = $1", &p, &n);
    if (r == IOTDM_OK && out_purged)
        *out_purged = (size_t)n;
    return r;
}

size_t pg_c2d_count(hub_store *base, const char *device_id)
{
    pg_store *s = (pg_store *)base;
    if (!pg_id_ok(device_id))
        return 0;
    pg_params p = {0};
    pp_text(&p, device_id);
    iotdm_result r;
    PGresult *res =
        pg_select(s, PQ_C2D_COUNT, "SELECT COUNT(*) FROM c2d WHERE device_id = $1", &p, &r);
    if (!res)
        return 0;
    size_t n = (size_t)pg_int(res, 0, 0);
    PQclear(res);
    return n;
}

size_t pg_c2d_expire(hub_store *base, int64_t now_ms)
{
    pg_store *s = (pg_store *)base;
    if (pg_write_begin(s) != IOTDM_OK)
        return 0;
    pg_params p = {0};
    pp_int(&p, now_ms);
    uint64_t n = 0;
    iotdm_result r =
        pg_exec(s, PQ_C2D_EXPIRE,
                "DELETE FROM c2d WHERE expiry_ms <> 0 AND expiry_ms <= $1::bigint", &p, &n);
    return r == IOTDM_OK ? (size_t)n : 0;
}

/* ---- telemetry ---- */

/* ---- the writer's telemetry batch ---- */

static bool batch_reserve(pg_tel_batch *b, size_t bytes)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 64;
        pg_tel_row *rows = xrealloc(b->rows, cap * sizeof *rows);
        if (!rows)
            return false;
        b->rows = rows;
        b->cap = cap;
    }
    if (b->used + bytes > b->data_cap) {
        size_t cap = b->data_cap ? b->data_cap : 64 * 1024;
        while (cap < b->used + bytes)
            cap *= 2;
        char *data = xrealloc(b->data, cap);
        if (!data)
            return false;
        b->data = data;
        b->data_cap = cap;
    }
    return true;
}

void pg_telemetry_batch_truncate(pg_store *s, size_t n)
{
    pg_tel_batch *b = &s->tel;
    if (n >= b->n)
        return;
    for (size_t i = n; i < b->n; i++)
        if (s->telemetry_bytes >= 0)
            s->telemetry_bytes -= b->rows[i].row_bytes;
    b->used = n ? b->rows[n].off : 0;
    b->n = n;
}

void pg_telemetry_batch_free(pg_store *s)
{
    xfree(s->tel.rows);
    xfree(s->tel.data);
    memset(&s->tel, 0, sizeof s->tel);
}

/* The batch goes to PostgreSQL by COPY in its binary format: no statement to parse and plan per
 * batch, no text form of the numbers, and the server inserts the rows in bulk into their
 * partitions (docs/cluster.md "Telemetry by COPY"). The format: a signature, two 32-bit words
 * (flags, header extension length), then per row a 16-bit field count and each field as a
 * 32-bit length and its bytes (integers big-endian), and a 16-bit -1 at the end. */
static const char COPY_SIGNATURE[11] = "PGCOPY\n\377\r\n";
enum { COPY_FIELDS = 8, COPY_CHUNK = 256 * 1024 };

typedef struct {
    const pg_tel_batch *batch;
    size_t next_row;
    bool header_sent, trailer_sent, out_of_memory;
    char *buf;
    size_t len, cap;
} copy_writer;

static bool copy_reserve(copy_writer *w, size_t more)
{
    if (w->len + more <= w->cap)
        return true;
    size_t cap = w->cap ? w->cap : COPY_CHUNK;
    while (cap < w->len + more)
        cap *= 2;
    char *buf = xrealloc(w->buf, cap);
    if (!buf) {
        w->out_of_memory = true;
        return false;
    }
    w->buf = buf;
    w->cap = cap;
    return true;
}

static void put_be(copy_writer *w, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--)
        w->buf[w->len++] = (char)(v >> (8 * i));
}

static void put_field(copy_writer *w, const char *data, size_t len)
{
    put_be(w, len, 4);
    memcpy(w->buf + w->len, data, len);
    w->len += len;
}

static void put_int_field(copy_writer *w, int64_t v, int bytes)
{
    put_be(w, (uint64_t)bytes, 4);
    put_be(w, (uint64_t)v, bytes);
}

/* pg_copy_chunk_fn: the rows from next_row on, about COPY_CHUNK bytes at a time. */
static int copy_next(void *ctx, const char **out_data, size_t *out_len)
{
    copy_writer *w = ctx;
    w->len = 0;
    if (!w->header_sent) {
        if (!copy_reserve(w, sizeof COPY_SIGNATURE + 8))
            return -1;
        memcpy(w->buf, COPY_SIGNATURE, sizeof COPY_SIGNATURE);
        w->len = sizeof COPY_SIGNATURE;
        put_be(w, 0, 4); /* flags: no OIDs */
        put_be(w, 0, 4); /* no header extension */
        w->header_sent = true;
    }
    const pg_tel_batch *b = w->batch;
    while (w->next_row < b->n && w->len < COPY_CHUNK) {
        const pg_tel_row *row = &b->rows[w->next_row];
        size_t texts = row->device_len + row->module_len + row->sys_len + row->app_len;
        if (!copy_reserve(w, 2 + COPY_FIELDS * 4 + texts + row->body_len + 8 + 4 + 8))
            return -1;
        const char *d = b->data + row->off;
        put_be(w, COPY_FIELDS, 2);
        put_field(w, d, row->device_len);
        d += row->device_len;
        put_field(w, d, row->module_len);
        d += row->module_len;
        put_int_field(w, row->enqueued_ms, 8);
        put_field(w, d, row->sys_len);
        d += row->sys_len;
        put_field(w, d, row->app_len);
        d += row->app_len;
        put_field(w, d, row->body_len);
        put_int_field(w, (int64_t)row->body_len, 4);
        put_int_field(w, row->row_bytes, 8);
        w->next_row++;
    }
    if (w->next_row == b->n && !w->trailer_sent) {
        if (!copy_reserve(w, 2))
            return -1;
        put_be(w, UINT16_MAX, 2); /* -1: the end of the rows */
        w->trailer_sent = true;
    }
    *out_data = w->buf;
    *out_len = w->len;
    return w->len > 0 ? 1 : 0;
}

/* Inserts the whole batch with one COPY. */
static iotdm_result copy_rows(pg_store *s)
{
    copy_writer w = {.batch = &s->tel};
    iotdm_result r = pg_copy_in(s,
                                "COPY telemetry(device_id, module_id, enqueued_ms, "
                                "system_properties, properties, body, body_len, row_bytes) "
                                "FROM STDIN (FORMAT binary)",
                                copy_next, &w);
    if (r != IOTDM_OK && w.out_of_memory)
        r = -ENOMEM; /* the COPY was ended with an error: nothing of the batch is kept */
    xfree(w.buf);
    return r;
}

iotdm_result pg_telemetry_flush(pg_store *s)
{
    if (s->tel.n == 0)
        return IOTDM_OK;
    /* Rows of units already ended now sit inside the open unit's savepoint (pg_unit_end). */
    if (s->unit_open && s->unit_tel_mark > 0)
        s->unit_flushed = true;
    iotdm_result r = pg_write_begin(s);
    if (r == IOTDM_OK)
        r = copy_rows(s);
    if (r == IOTDM_OK)
        s->tel_copied = true;
    if (r != IOTDM_OK && s->in_txn)
        s->txn_failed = true; /* rows of units that ended well are lost: the group must fail */
    s->tel.n = 0;
    s->tel.used = 0;
    s->unit_tel_mark = 0;
    return r;
}

/* Buffered, inserted with the group (pg_telemetry_flush): PostgreSQL numbers the rows then, so
 * msg->seq is left 0 (store.h). */
iotdm_result pg_telemetry_append(hub_store *base, hub_telemetry *msg)
{
    pg_store *s = (pg_store *)base;
    const char *sys, *app;
    size_t sys_len, app_len;
    iotdm_result r =
        hub_telemetry_texts(msg, &s->json[0], &s->json[1], &sys, &sys_len, &app, &app_len);
    if (r == IOTDM_OK)
        r = pg_write_begin(s);
    if (r != IOTDM_OK)
        return r;
    size_t dlen = strnlen(msg->device_id, sizeof msg->device_id);
    size_t mlen = strnlen(msg->module_id, sizeof msg->module_id);
    size_t bytes = dlen + mlen + sys_len + app_len + msg->body_len;
    pg_tel_batch *b = &s->tel;
    if (!batch_reserve(b, bytes))
        return -ENOMEM;
    pg_tel_row *row = &b->rows[b->n];
    row->off = b->used;
    row->device_len = dlen;
    row->module_len = mlen;
    row->sys_len = sys_len;
    row->app_len = app_len;
    row->body_len = msg->body_len;
    row->enqueued_ms = msg->enqueued_ms;
    /* What the row costs on the disk, near enough: retention bounds this, not just the bodies
     * (small messages with large property bags would otherwise outgrow the limit many times). */
    row->row_bytes = (int64_t)bytes + PG_TELEMETRY_ROW_OVERHEAD;
    char *d = b->data + b->used;
    memcpy(d, msg->device_id, dlen);
    memcpy(d + dlen, msg->module_id, mlen);
    memcpy(d + dlen + mlen, sys, sys_len);
    memcpy(d + dlen + mlen + sys_len, app, app_len);
    if (msg->body_len)
        memcpy(d + dlen + mlen + sys_len + app_len, msg->body, msg->body_len);
    b->used += bytes;
    b->n++;
    msg->seq = 0;
    if (s->telemetry_bytes >= 0)
        s->telemetry_bytes += row->row_bytes;
    /* A long group (a backlog) goes in parts rather than growing without end. */
    if (b->used >= PG_TEL_BATCH_BYTES && !s->unit_open)
        return pg_telemetry_flush(s);
    return IOTDM_OK;
}

/* Lends one listed message to the visitor; *out_more gets its answer. */
static iotdm_result visit_telemetry(const PGresult *res, int row, hub_telemetry_visitor visit,
                                    void *ctx, bool *out_more)
{
    hub_telemetry m;
    memset(&m, 0, sizeof(m));
    m.seq = pg_int(res, row, 0);
    pg_copy(res, row, 1, m.device_id, sizeof m.device_id);
    pg_copy(res, row, 2, m.module_id, sizeof m.module_id);
    m.enqueued_ms = pg_int(res, row, 3);
    m.system_properties = pg_json(res, row, 4);
    m.properties = pg_json(res, row, 5);
    iotdm_result r = IOTDM_E_STORAGE;
    bool ok = false;
    if (m.system_properties && m.properties) {
        m.body = pg_bytes(res, row, 6, &m.body_len, &ok);
        r = ok ? IOTDM_OK : -ENOMEM; /* pg_bytes fails only when it cannot allocate */
    }
    if (r == IOTDM_OK)
        *out_more = visit(ctx, &m);
    json_decref(m.system_properties);
    json_decref(m.properties);
    xfree(m.body);
    return r;
}

iotdm_result pg_telemetry_foreach(hub_store *base, int64_t from_seq, size_t max,
                                  hub_telemetry_visitor visit, void *ctx)
{
    pg_store *s = (pg_store *)base;
    iotdm_result flushed = pg_telemetry_flush(s); /* the writer sees its own group */
    if (flushed != IOTDM_OK)
        return flushed;
    /* In batches from the next seq: the stream may be far longer than what one call visits. */
    int64_t next = from_seq;
    bool more = true;
    iotdm_result r = pg_read_begin(s);
    while (r == IOTDM_OK && more && max > 0) {
        int64_t want = max < TELEMETRY_BATCH ? (int64_t)max : TELEMETRY_BATCH;
        pg_params p = {0};
        pp_int(&p, next);
        pp_int(&p, want);
        PGresult *res = pg_run(s, PQ_TELEMETRY_LIST,
                               "SELECT seq, device_id, module_id, enqueued_ms, "
                               "system_properties, properties, body FROM telemetry "
                               "WHERE seq >= $1::bigint ORDER BY seq LIMIT $2::bigint",
                               &p, &r);
        if (!res)
            break;
        int rows = PQntuples(res);
        for (int i = 0; i < rows && more && r == IOTDM_OK; i++) {
            r = visit_telemetry(res, i, visit, ctx, &more);
            next = pg_int(res, i, 0) + 1;
            max--;
        }
        PQclear(res);
        if (rows < want)
            break;
    }
    return r;
}

const char PG_TELEMETRY_LAST_SEQ_SQL[] = "SELECT pg_sequence_last_value('telemetry_seq')";

int64_t pg_telemetry_last_seq(hub_store *base)
{
    pg_store *s = (pg_store *)base;
    if (pg_telemetry_flush(s) != IOTDM_OK)
        return 0; /* the group fails; its caller learns it at the commit */
    /* The writer learns the value with each COMMIT that inserted telemetry (pg_group_commit): no
     * round trip of its own after every group. Rows other nodes added since may be missing from
     * it; the cluster's bus reports those (cluster.c). */
    if (!s->reader && !s->in_txn && s->last_seq >= 0)
        return s->last_seq;
    /* The sequence keeps the highest seq ever assigned, even when trimming emptied the table, so
     * a reader positioned "after the last" never sees an old seq come round again. NULL before
     * the first append: 0. A sequence is not transactional: a seq taken by a group that was
     * rolled back counts too, which leaves a gap in the stream, never a repeat. */
    iotdm_result r;
    PGresult *res = pg_select(s, PQ_TELEMETRY_LAST_SEQ, PG_TELEMETRY_LAST_SEQ_SQL, NULL, &r);
    if (!res)
        return 0;
    int64_t seq = pg_int(res, 0, 0);
    PQclear(res);
    if (!s->reader && !s->in_txn)
        s->last_seq = seq;
    return seq;
}

static iotdm_result telemetry_bytes(pg_store *s, int64_t *out)
{
    if (s->telemetry_bytes >= 0) {
        *out = s->telemetry_bytes;
        return IOTDM_OK;
    }
    *out = 0;
    iotdm_result r;
    PGresult *res = pg_select(s, PQ_TELEMETRY_BYTES,
                              "SELECT COALESCE(SUM(row_bytes), 0) FROM telemetry", NULL, &r);
    if (!res)
        return r;
    s->telemetry_bytes = pg_int(res, 0, 0);
    PQclear(res);
    *out = s->telemetry_bytes;
    return IOTDM_OK;
}

/* Walks from the oldest message while it must go, at most max_rows; finds the last seq to delete,
 * what remains, and whether more must go after those. Reads the oldest rows a batch at a time:
 * the walk usually stops within the first few. */
static iotdm_result trim_point(pg_store *s, int64_t total, uint64_t max_bytes, int64_t cutoff,
                               size_t max_rows, int64_t *out_last, int64_t *out_remaining,
                               bool *out_more)
{
    size_t rows = 0;
    bool walking = true;
    iotdm_result r = IOTDM_OK;
    *out_last = 0;
    *out_more = false;
    int64_t after = 0;
    while (walking) {
        pg_params p = {0};
        pp_int(&p, after);
        pp_int(&p, TRIM_BATCH);
        PGresult *res = pg_run(s, PQ_TELEMETRY_OLDEST,
                               "SELECT seq, enqueued_ms, row_bytes FROM telemetry "
                               "WHERE seq > $1::bigint ORDER BY seq LIMIT $2::bigint",
                               &p, &r);
        if (!res)
            break;
        int n = PQntuples(res);
        for (int i = 0; i < n && walking; i++) {
            bool too_big = (uint64_t)total > max_bytes;
            if (!too_big && pg_int(res, i, 1) >= cutoff) {
                walking = false;
            } else if (rows == max_rows) {
                *out_more = true;
                walking = false;
            } else {
                *out_last = after = pg_int(res, i, 0);
                total -= pg_int(res, i, 2);
                rows++;
            }
        }
        PQclear(res);
        if (n < TRIM_BATCH)
            walking = false;
    }
    *out_remaining = total;
    return r;
}

/* ---- partitions: one per hour of enqueued_ms, named telemetry_h<hours since the epoch> ---- */

#define HOUR_MS      3600000LL
#define HOURS_BEFORE 1 /* a node's clock a little behind */
#define HOURS_AHEAD  3 /* made ahead, so that no hour's rows start in the default partition */

iotdm_result pg_telemetry_partitions(pg_store *s, int64_t now_ms)
{
    int64_t hour = now_ms / HOUR_MS;
    if (hour == s->partitions_hour)
        return IOTDM_OK; /* made within the hour: no statement, no transaction */
    iotdm_result r = IOTDM_OK;
    for (int64_t h = hour - HOURS_BEFORE; r == IOTDM_OK && h <= hour + HOURS_AHEAD; h++) {
        /* Names and bounds are numbers we compute: no input reaches this text. */
        char sql[256];
        snprintf(sql, sizeof sql,
                 "CREATE TABLE IF NOT EXISTS telemetry_h%" PRId64 " PARTITION OF telemetry "
                 "FOR VALUES FROM (%" PRId64 ") TO (%" PRId64 ")",
                 h, (int64_t)(h * HOUR_MS), (int64_t)((h + 1) * HOUR_MS));
        /* In a savepoint of its own: another node making the same one at the same moment, or
         * rows of that hour already in the default partition, must not fail the group. */
        r = pg_savepoint(s);
        if (r != IOTDM_OK)
            break;
        PGresult *res = pg_run_text(s, sql, 0, NULL, &r);
        PQclear(res);
        r = pg_savepoint_end(s, r);
        if (r != IOTDM_OK && r != -ENOMEM && s->conn && PQstatus(s->conn) == CONNECTION_OK)
            r = IOTDM_OK; /* logged; the rows of that hour stay in the default partition */
    }
    if (r == IOTDM_OK)
        s->partitions_hour = hour;
    return r;
}

/* Drops the hourly partitions that lie wholly in the past and hold nothing after seq last: what
 * retention deletes goes as whole tables (no dead rows for VACUUM) wherever it can. */
static iotdm_result drop_partitions(pg_store *s, int64_t last, int64_t now_ms)
{
    iotdm_result r;
    PGresult *res = pg_run_text(s,
                                "SELECT c.relname FROM pg_inherits i "
                                "JOIN pg_class c ON c.oid = i.inhrelid "
                                "WHERE i.inhparent = 'telemetry'::regclass "
                                "AND c.relname LIKE 'telemetry\\_h%' ORDER BY c.relname",
                                0, NULL, &r);
    if (!res)
        return r;
    for (int i = 0; i < PQntuples(res) && r == IOTDM_OK; i++) {
        const char *name = PQgetvalue(res, i, 0);
        char *end;
        long long h = strtoll(name + strlen("telemetry_h"), &end, 10);
        if (*end || (h + 1) * HOUR_MS > now_ms)
            continue; /* not ours, or its hour is not over */
        char sql[160];
        snprintf(sql, sizeof sql, "SELECT COALESCE(max(seq), 0) FROM telemetry_h%lld", h);
        PGresult *m = pg_run_text(s, sql, 0, NULL, &r);
        bool covered = m && pg_int(m, 0, 0) <= last;
        PQclear(m);
        if (!covered)
            continue;
        snprintf(sql, sizeof sql, "DROP TABLE telemetry_h%lld", h);
        PGresult *d = pg_run_text(s, sql, 0, NULL, &r);
        PQclear(d);
    }
    PQclear(res);
    return r;
}

iotdm_result pg_telemetry_trim(hub_store *base, uint64_t max_bytes, int64_t max_age_ms,
                               int64_t now_ms, size_t max_rows, bool *out_more)
{
    pg_store *s = (pg_store *)base;
    iotdm_result flushed = pg_telemetry_flush(s);
    if (flushed != IOTDM_OK)
        return flushed;
    bool more = false;
    if (out_more)
        *out_more = false;
    int64_t total;
    iotdm_result r = s->reader ? IOTDM_OK : pg_telemetry_partitions(s, now_ms);
    if (r == IOTDM_OK)
        r = telemetry_bytes(s, &total);
    if (r != IOTDM_OK)
        return r;
    int64_t cutoff = max_age_ms > 0 ? now_ms - max_age_ms : INT64_MIN;
    int64_t last, remaining;
    r = trim_point(s, total, max_bytes, cutoff, max_rows, &last, &remaining, &more);
    if (r != IOTDM_OK || last == 0)
        return r; /* nothing to delete: no write transaction */
    if (out_more)
        *out_more = more;
    r = pg_write_begin(s);
    if (r == IOTDM_OK)
        r = drop_partitions(s, last, now_ms);
    if (r != IOTDM_OK)
        return r;
    pg_params p = {0};
    pp_int(&p, last);
    r = pg_exec(s, PQ_TELEMETRY_DELETE_UPTO, "DELETE FROM telemetry WHERE seq <= $1::bigint", &p,
                NULL);
    s->telemetry_bytes = r == IOTDM_OK ? remaining : -1;
    return r;
}
