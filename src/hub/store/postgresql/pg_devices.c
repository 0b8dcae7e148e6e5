/* PostgreSQL store: shared-access policies, device identities and persistent MQTT sessions. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "hub/store/postgresql/pg_internal.h"
#include "proto/twin.h"

/* ---- policies ---- */

iotdm_result pg_policy_put(hub_store *base, const hub_policy *policy)
{
    pg_store *s = (pg_store *)base;
    if (!pg_id_ok(policy->name))
        return IOTDM_E_MALFORMED;
    iotdm_result r = pg_write_begin(s);
    if (r != IOTDM_OK)
        return r;
    pg_params p = {0};
    pp_field(&p, policy->name, sizeof policy->name);
    pp_field(&p, policy->primary_key, sizeof policy->primary_key);
    pp_field(&p, policy->secondary_key, sizeof policy->secondary_key);
    pp_int(&p, policy->rights);
    return pg_exec(s, PQ_POLICY_PUT,
                   "INSERT INTO policies(name, primary_key, secondary_key, rights) "
                   "VALUES($1, $2, $3, $4) ON CONFLICT(name) DO UPDATE SET "
                   "primary_key = excluded.primary_key, secondary_key = excluded.secondary_key, "
                   "rights = excluded.rights",
                   &p, NULL);
}

iotdm_result pg_policy_get(hub_store *base, const char *name, hub_policy *out_policy)
{
    pg_store *s = (pg_store *)base;
    if (!pg_id_ok(name))
        return IOTDM_E_NOT_FOUND;
    pg_params p = {0};
    pp_text(&p, name);
    iotdm_result r;
    PGresult *res = pg_select(s, PQ_POLICY_GET,
                              "SELECT name, primary_key, secondary_key, rights "
                              "FROM policies WHERE name = $1",
                              &p, &r);
    if (!res)
        return r;
    r = IOTDM_E_NOT_FOUND;
    if (PQntuples(res) == 1) {
        memset(out_policy, 0, sizeof(*out_policy));
        pg_copy(res, 0, 0, out_policy->name, sizeof out_policy->name);
        pg_copy(res, 0, 1, out_policy->primary_key, sizeof out_policy->primary_key);
        pg_copy(res, 0, 2, out_policy->secondary_key, sizeof out_policy->secondary_key);
        out_policy->rights = (unsigned)pg_int(res, 0, 3);
        r = IOTDM_OK;
    }
    PQclear(res);
    return r;
}

size_t pg_policy_count(hub_store *base)
{
    pg_store *s = (pg_store *)base;
    iotdm_result r;
    PGresult *res = pg_select(s, PQ_POLICY_COUNT, "SELECT COUNT(*) FROM policies", NULL, &r);
    if (!res)
        return 0;
    size_t n = (size_t)pg_int(res, 0, 0);
    PQclear(res);
    return n;
}

/* ---- devices ---- */

void pg_device_from_row(const PGresult *res, int row, int c, hub_device *d)
{
    memset(d, 0, sizeof(*d));
    pg_copy(res, row, c + 0, d->device_id, sizeof d->device_id);
    pg_copy(res, row, c + 1, d->generation_id, sizeof d->generation_id);
    d->etag = (uint64_t)pg_int(res, row, c + 2);
    d->enabled = pg_bool(res, row, c + 3);
    pg_copy(res, row, c + 4, d->status_reason, sizeof d->status_reason);
    d->status_updated_ms = pg_int(res, row, c + 5);
    d->auth_type = (hub_auth_type)pg_int(res, row, c + 6);
    pg_copy(res, row, c + 7, d->primary_key, sizeof d->primary_key);
    pg_copy(res, row, c + 8, d->secondary_key, sizeof d->secondary_key);
    pg_copy(res, row, c + 9, d->primary_thumbprint, sizeof d->primary_thumbprint);
    pg_copy(res, row, c + 10, d->secondary_thumbprint, sizeof d->secondary_thumbprint);
    d->iot_edge = pg_bool(res, row, c + 11);
    d->connected = pg_bool(res, row, c + 12);
    d->connection_state_updated_ms = pg_int(res, row, c + 13);
    d->last_activity_ms = pg_int(res, row, c + 14);
    pg_copy(res, row, c + 15, d->model_id, sizeof d->model_id);
    d->c2d_pending = (size_t)pg_int(res, row, c + 16);
}

/* Inserts the device and its empty twin in one statement; *out_created false when the id is
 * taken (no error: ON CONFLICT DO NOTHING leaves the transaction usable). The twin's versions are
 * 1 and its metadata stamped with the creation time, as Azure shows a freshly created twin. */
static iotdm_result insert_device(pg_store *s, const hub_device *d, bool *out_created)
{
    char now[TWIN_TIME_CAP];
    char meta[64];
    twin_format_time(pg_now_ms(), now, sizeof(now));
    snprintf(meta, sizeof(meta), "{\"$lastUpdated\":\"%s\"}", now);
    pg_params p = {0};
    pp_field(&p, d->device_id, sizeof d->device_id);
    pp_field(&p, d->generation_id, sizeof d->generation_id);
    pp_int(&p, (int64_t)d->etag);
    pp_bool(&p, d->enabled);
    pp_field(&p, d->status_reason, sizeof d->status_reason);
    pp_int(&p, d->status_updated_ms);
    pp_int(&p, (int64_t)d->auth_type);
    pp_field(&p, d->primary_key, sizeof d->primary_key);
    pp_field(&p, d->secondary_key, sizeof d->secondary_key);
    pp_field(&p, d->primary_thumbprint, sizeof d->primary_thumbprint);
    pp_field(&p, d->secondary_thumbprint, sizeof d->secondary_thumbprint);
    pp_bool(&p, d->iot_edge);
    pp_bool(&p, d->connected);
    pp_int(&p, d->connection_state_updated_ms);
    pp_int(&p, d->last_activity_ms);
    pp_field(&p, d->model_id, sizeof d->model_id);
    pp_text(&p, meta);
    uint64_t n = 0;
    iotdm_result r = pg_exec(
        s, PQ_DEVICE_INSERT,
        "WITH d AS (INSERT INTO devices(device_id, generation_id, etag, enabled, status_reason, "
        "status_updated_ms, auth_type, primary_key, secondary_key, primary_thumbprint, "
        "secondary_thumbprint, iot_edge, connected, connection_state_updated_ms, "
        "last_activity_ms, model_id) VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, "
        "$13, $14, $15, $16) ON CONFLICT (device_id) DO NOTHING RETURNING device_id) "
        "INSERT INTO twins(device_id, tags, desired, desired_meta, desired_version, reported, "
        "reported_meta, reported_version, version, etag) "
        "SELECT device_id, '{}', '{}', $17, 1, '{}', $17, 1, 1, 1 FROM d",
        &p, &n);
    *out_created = r == IOTDM_OK && n == 1;
    return r;
}

iotdm_result pg_device_create(hub_store *base, hub_device *device)
{
    pg_store *s = (pg_store *)base;
    if (!pg_id_ok(device->device_id) || !hub_device_auth_ok(device->auth_type))
        return IOTDM_E_MALFORMED;
    char generation[sizeof(device->generation_id)];
    memcpy(generation, device->generation_id, sizeof(generation));
    uint64_t etag = device->etag;
    hub_device_new_generation_id(device->generation_id, sizeof(device->generation_id));
    device->etag = 1;
    bool created = false;
    iotdm_result r = pg_write_begin(s);
    if (r == IOTDM_OK)
        r = insert_device(s, device, &created);
    if (r == IOTDM_OK && !created)
        r = IOTDM_E_EXISTS;
    if (r != IOTDM_OK) {
        /* Nothing was created: leave the caller's struct as it was. */
        memcpy(device->generation_id, generation, sizeof(generation));
        device->etag = etag;
    }
    return r;
}

iotdm_result pg_device_get(hub_store *base, const char *device_id, hub_device *out_device)
{
    pg_store *s = (pg_store *)base;
    if (!pg_id_ok(device_id))
        return IOTDM_E_NOT_FOUND;
    pg_params p = {0};
    pp_text(&p, device_id);
    iotdm_result r;
    PGresult *res = pg_select(s, PQ_DEVICE_GET,
                              "SELECT " PG_DEVICE_COLUMNS " FROM devices d "
                              "WHERE d.device_id = $1",
                              &p, &r);
    if (!res)
        return r;
    r = IOTDM_E_NOT_FOUND;
    if (PQntuples(res) == 1) {
        pg_device_from_row(res, 0, 0, out_device);
        r = IOTDM_OK;
    }
    PQclear(res);
    return r;
}

/* After a conditional write touched no row: was the device missing or the etag different? */
static iotdm_result why_no_row(pg_store *s, const char *device_id, size_t id_cap)
{
    pg_params p = {0};
    pp_field(&p, device_id, id_cap);
    iotdm_result r;
    PGresult *res =
        pg_run(s, PQ_DEVICE_ETAG, "SELECT etag FROM devices WHERE device_id = $1", &p, &r);
    if (!res)
        return r;
    r = PQntuples(res) == 1 ? IOTDM_E_PRECONDITION : IOTDM_E_NOT_FOUND;
    PQclear(res);
    return r;
}

iotdm_result pg_device_update(hub_store *base, hub_device *device, uint64_t if_match)
{
    pg_store *s = (pg_store *)base;
    if (!pg_id_ok(device->device_id))
        return IOTDM_E_NOT_FOUND;
    if (!hub_device_auth_ok(device->auth_type))
        return IOTDM_E_MALFORMED;
    iotdm_result r = pg_write_begin(s);
    if (r != IOTDM_OK)
        return r;
    pg_params p = {0};
    pp_field(&p, device->device_id, sizeof device->device_id);
    pp_bool(&p, device->enabled);
    pp_field(&p, device->status_reason, sizeof device->status_reason);
    pp_int(&p, device->status_updated_ms);
    pp_int(&p, (int64_t)device->auth_type);
    pp_field(&p, device->primary_key, sizeof device->primary_key);
    pp_field(&p, device->secondary_key, sizeof device->secondary_key);
    pp_field(&p, device->primary_thumbprint, sizeof device->primary_thumbprint);
    pp_field(&p, device->secondary_thumbprint, sizeof device->secondary_thumbprint);
    pp_bool(&p, device->iot_edge);
    pp_int(&p, (int64_t)if_match);
    /* Identity fields only: connection state, activity and model id have their own writers, and a
     * struct read before a REST update must not roll them back. */
    PGresult *res =
        pg_run(s, PQ_DEVICE_UPDATE,
               "UPDATE devices SET enabled = $2, status_reason = $3, status_updated_ms = $4, "
               "auth_type = $5, primary_key = $6, secondary_key = $7, primary_thumbprint = $8, "
               "secondary_thumbprint = $9, iot_edge = $10, etag = etag + 1 "
               "WHERE device_id = $1 AND ($11::bigint = 0 OR etag = $11::bigint) RETURNING etag",
               &p, &r);
    if (!res)
        return r;
    bool updated = PQntuples(res) == 1;
    uint64_t etag = updated ? (uint64_t)pg_int(res, 0, 0) : 0;
    PQclear(res);
    if (!updated)
        return why_no_row(s, device->device_id, sizeof(device->device_id));
    device->etag = etag;
    return IOTDM_OK;
}

iotdm_result pg_device_delete(hub_store *base, const char *device_id, uint64_t if_match)
{
    pg_store *s = (pg_store *)base;
    if (!pg_id_ok(device_id))
        return IOTDM_E_NOT_FOUND;
    iotdm_result r = pg_write_begin(s);
    if (r != IOTDM_OK)
        return r;
    pg_params p = {0};
    pp_text(&p, device_id);
    pp_int(&p, (int64_t)if_match);
    pg_twin_cache_clear(s);
    /* One statement: the twin goes with the device (twins has no foreign key, pg_store.c); the
     * foreign keys cascade to the C2D queue, sessions and uploads. */
    iotdm_result r2;
    PGresult *res =
        pg_run(s, PQ_DEVICE_DELETE,
               "WITH gone AS (DELETE FROM devices WHERE device_id = $1 "
               "AND ($2::bigint = 0 OR etag = $2::bigint) RETURNING device_id), "
               "twin AS (DELETE FROM twins WHERE device_id IN (SELECT device_id FROM gone)) "
               "SELECT COUNT(*) FROM gone",
               &p, &r2);
    if (!res)
        return r2;
    int64_t n = pg_int(res, 0, 0);
    PQclear(res);
    if (r == IOTDM_OK && n == 0)
        r = why_no_row(s, device_id, HUB_ID_MAX);
    return r;
}

iotdm_result pg_device_set_connection(hub_store *base, const char *device_id, bool connected,
                                      int64_t when_ms, uint64_t epoch)
{
    pg_store *s = (pg_store *)base;
    if (!pg_id_ok(device_id))
        return IOTDM_E_NOT_FOUND;
    iotdm_result r = pg_write_begin(s);
    if (r != IOTDM_OK)
        return r;
    pg_params p = {0};
    pp_text(&p, device_id);
    pp_bool(&p, connected);
    pp_int(&p, when_ms);
    pp_int(&p, (int64_t)epoch);
    pp_text(&p, s->node_id);
    /* No row changed: the device is gone, or a newer connection owns its state. Neither is an
     * error for the connection writing. A connection names its node: the cluster routes the
     * device's work there. */
    return pg_exec(s, PQ_DEVICE_SET_CONNECTION,
                   "UPDATE devices SET connected = $2, connection_state_updated_ms = $3, "
                   "conn_epoch = $4, conn_node = CASE WHEN $2 THEN $5 ELSE conn_node END "
                   "WHERE device_id = $1 AND conn_epoch <= $4::bigint",
                   &p, NULL);
}

iotdm_result pg_device_set_activity(hub_store *base, const char *device_id, int64_t when_ms,
                                    const char *model_id)
{
    pg_store *s = (pg_store *)base;
    if (!pg_id_ok(device_id))
        return IOTDM_E_NOT_FOUND;
    if (model_id && strnlen(model_id, sizeof(((hub_device *)0)->model_id)) >=
                        sizeof(((hub_device *)0)->model_id))
        return IOTDM_E_TOO_LARGE;
    iotdm_result r = pg_write_begin(s);
    if (r != IOTDM_OK)
        return r;
    pg_params p = {0};
    pp_text(&p, device_id);
    pp_int(&p, when_ms);
    pp_text(&p, model_id);
    return pg_exec_row(s, PQ_DEVICE_SET_ACTIVITY,
                       "UPDATE devices SET last_activity_ms = $2, "
                       "model_id = COALESCE($3, model_id) WHERE device_id = $1",
                       &p);
}

iotdm_result pg_device_foreach(hub_store *base, const char *after_id, size_t max,
                               hub_device_visitor visit, void *ctx)
{
    pg_store *s = (pg_store *)base;
    /* In batches: a visitor may stop early, and a long registry is never held in memory whole. */
    enum { BATCH = 500 };
    char after[HUB_ID_MAX];
    snprintf(after, sizeof after, "%s", after_id ? after_id : ""); /* "" sorts first */
    iotdm_result r = pg_read_begin(s);
    while (r == IOTDM_OK && max > 0) {
        pg_params p = {0};
        pp_text(&p, after);
        pp_int(&p, max < BATCH ? (int64_t)max : BATCH);
        PGresult *res = pg_run(s, PQ_DEVICE_LIST,
                               "SELECT " PG_DEVICE_COLUMNS " FROM devices d "
                               "WHERE d.device_id > $1 ORDER BY d.device_id LIMIT $2",
                               &p, &r);
        if (!res)
            break;
        int rows = PQntuples(res);
        bool more = rows > 0;
        hub_device d;
        for (int i = 0; i < rows && more; i++) {
            pg_device_from_row(res, i, 0, &d);
            more = visit(ctx, &d);
            snprintf(after, sizeof after, "%s", d.device_id);
            max--;
        }
        PQclear(res);
        if (!more || rows < BATCH)
            break;
    }
    return r;
}

iotdm_result pg_device_stats(hub_store *base, hub_device_stats *out_stats)
{
    pg_store *s = (pg_store *)base;
    memset(out_stats, 0, sizeof(*out_stats));
    iotdm_result r;
    PGresult *res = pg_select(s, PQ_DEVICE_STATS,
                              "SELECT COUNT(*), COUNT(*) FILTER (WHERE enabled), "
                              "COUNT(*) FILTER (WHERE connected) FROM devices",
                              NULL, &r);
    if (!res)
        return r;
    out_stats->total = (size_t)pg_int(res, 0, 0);
    out_stats->enabled = (size_t)pg_int(res, 0, 1);
    out_stats->disabled = out_stats->total - out_stats->enabled;
    out_stats->connected = (size_t)pg_int(res, 0, 2);
    PQclear(res);
    return IOTDM_OK;
}

iotdm_result pg_device_disconnect_all(hub_store *base, int64_t when_ms)
{
    pg_store *s = (pg_store *)base;
    iotdm_result r = pg_write_begin(s);
    if (r != IOTDM_OK)
        return r;
    pg_params p = {0};
    pp_int(&p, when_ms);
    pp_text(&p, s->node_id);
    /* The other nodes' devices are theirs: only those this node held. */
    return pg_exec(s, PQ_DEVICE_DISCONNECT_ALL,
                   "UPDATE devices SET connected = false, connection_state_updated_ms = $1 "
                   "WHERE connected AND conn_node = $2",
                   &p, NULL);
}

void pg_set_node(hub_store *base, const char *node_id)
{
    pg_store *s = (pg_store *)base;
    snprintf(s->node_id, sizeof s->node_id, "%s", node_id ? node_id : "");
}

iotdm_result pg_device_disconnect_node(hub_store *base, const char *node_id, int64_t when_ms,
                                       size_t max, hub_device_id_visitor visit, void *ctx,
                                       size_t *out_count)
{
    pg_store *s = (pg_store *)base;
    *out_count = 0;
    if (!node_id || !node_id[0])
        return IOTDM_E_MALFORMED;
    iotdm_result r = pg_write_begin(s);
    if (r != IOTDM_OK)
        return r;
    pg_params p = {0};
    pp_text(&p, node_id);
    pp_int(&p, when_ms);
    pp_int(&p, max > INT32_MAX ? INT32_MAX : (int64_t)max);
    PGresult *res = pg_run(s, PQ_DEVICE_DISCONNECT_NODE,
                           "UPDATE devices SET connected = false, "
                           "connection_state_updated_ms = $2 WHERE device_id IN "
                           "(SELECT device_id FROM devices WHERE connected AND conn_node = $1 "
                           "LIMIT $3) RETURNING device_id",
                           &p, &r);
    if (!res)
        return r;
    *out_count = (size_t)PQntuples(res);
    for (int i = 0; i < PQntuples(res); i++)
        visit(ctx, PQgetvalue(res, i, 0));
    PQclear(res);
    return IOTDM_OK;
}

/* ---- sessions ---- */

iotdm_result pg_session_put(hub_store *base, const char *client_id, uint32_t subscriptions)
{
    pg_store *s = (pg_store *)base;
    size_t dev_len;
    if (!hub_session_device(client_id, &dev_len))
        return IOTDM_E_MALFORMED;
    iotdm_result r = pg_write_begin(s);
    if (r != IOTDM_OK)
        return r;
    pg_params p = {0};
    pp_text(&p, client_id);
    pp_textn(&p, client_id, dev_len);
    pp_int(&p, subscriptions);
    /* Inserts only for a device that exists, so an unknown one is a count, not a failed key. */
    uint64_t n = 0;
    r = pg_exec(s, PQ_SESSION_PUT,
                "INSERT INTO sessions(client_id, device_id, subscriptions) "
                "SELECT $1, device_id, $3 FROM devices WHERE device_id = $2 "
                "ON CONFLICT(client_id) DO UPDATE SET subscriptions = excluded.subscriptions",
                &p, &n);
    return r == IOTDM_OK && n == 0 ? IOTDM_E_NOT_FOUND : r;
}

iotdm_result pg_session_get(hub_store *base, const char *client_id, uint32_t *out_subscriptions)
{
    pg_store *s = (pg_store *)base;
    size_t dev_len;
    if (!hub_session_device(client_id, &dev_len))
        return IOTDM_E_NOT_FOUND;
    pg_params p = {0};
    pp_text(&p, client_id);
    iotdm_result r;
    PGresult *res = pg_select(s, PQ_SESSION_GET,
                              "SELECT subscriptions FROM sessions WHERE client_id = $1", &p, &r);
    if (!res)
        return r;
    r = IOTDM_E_NOT_FOUND;
    if (PQntuples(res) == 1) {
        *out_subscriptions = (uint32_t)pg_int(res, 0, 0);
        r = IOTDM_OK;
    }
    PQclear(res);
    return r;
}

/* Deleting a session that does not exist succeeds: a clean-session CONNECT just wants none. */
iotdm_result pg_session_delete(hub_store *base, const char *client_id)
{
    pg_store *s = (pg_store *)base;
    size_t dev_len;
    if (!hub_session_device(client_id, &dev_len))
        return IOTDM_OK;
    iotdm_result r = pg_write_begin(s);
    if (r != IOTDM_OK)
        return r;
    pg_params p = {0};
    pp_text(&p, client_id);
    return pg_exec(s, PQ_SESSION_DELETE, "DELETE FROM sessions WHERE client_id = $1", &p, NULL);
}
