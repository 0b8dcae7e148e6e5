/* SQLite store: shared-access policies, device identities and persistent MQTT sessions. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "hub/store/sqlite/sqlite_internal.h"
#include "proto/twin.h"

/* ---- policies ---- */

iotdm_result sq_policy_put(hub_store *base, const hub_policy *policy)
{
    sq_store *store = (sq_store *)base;
    if (!store_id_ok(policy->name))
        return IOTDM_E_MALFORMED;
    iotdm_result r;
    sqlite3_stmt *st =
        store_write_stmt(store, ST_POLICY_PUT,
                         "INSERT INTO policies(name, primary_key, secondary_key, rights) "
                         "VALUES(?1, ?2, ?3, ?4) ON CONFLICT(name) DO UPDATE SET "
                         "primary_key = excluded.primary_key, "
                         "secondary_key = excluded.secondary_key, "
                         "rights = excluded.rights",
                         &r);
    if (!st)
        return r;
    bind_field(st, 1, policy->name, sizeof(policy->name));
    bind_field(st, 2, policy->primary_key, sizeof(policy->primary_key));
    bind_field(st, 3, policy->secondary_key, sizeof(policy->secondary_key));
    sqlite3_bind_int64(st, 4, policy->rights);
    r = stmt_exec(store, st);
    stmt_give(store, ST_POLICY_PUT, st);
    return r;
}

iotdm_result sq_policy_get(hub_store *base, const char *name, hub_policy *out_policy)
{
    sq_store *store = (sq_store *)base;
    if (!store_id_ok(name))
        return IOTDM_E_NOT_FOUND;
    sqlite3_stmt *st = stmt_take(store, ST_POLICY_GET,
                                 "SELECT name, primary_key, secondary_key, rights FROM policies "
                                 "WHERE name = ?1");
    if (!st)
        return IOTDM_E_STORAGE;
    bind_text(st, 1, name);
    int rc = sqlite3_step(st);
    iotdm_result r = IOTDM_E_NOT_FOUND;
    if (rc == SQLITE_ROW) {
        memset(out_policy, 0, sizeof(*out_policy));
        column_copy(st, 0, out_policy->name, sizeof(out_policy->name));
        column_copy(st, 1, out_policy->primary_key, sizeof(out_policy->primary_key));
        column_copy(st, 2, out_policy->secondary_key, sizeof(out_policy->secondary_key));
        out_policy->rights = (unsigned)sqlite3_column_int64(st, 3);
        r = IOTDM_OK;
    } else if (rc != SQLITE_DONE) {
        r = store_sqlite_result(store, rc, "policy get");
    }
    stmt_give(store, ST_POLICY_GET, st);
    return r;
}

size_t sq_policy_count(hub_store *base)
{
    sq_store *store = (sq_store *)base;
    sqlite3_stmt *st = stmt_take(store, ST_POLICY_COUNT, "SELECT COUNT(*) FROM policies");
    if (!st)
        return 0;
    size_t n = sqlite3_step(st) == SQLITE_ROW ? (size_t)sqlite3_column_int64(st, 0) : 0;
    stmt_give(store, ST_POLICY_COUNT, st);
    return n;
}

/* ---- devices ---- */

void store_device_from_row(sqlite3_stmt *st, int c, hub_device *d)
{
    memset(d, 0, sizeof(*d));
    column_copy(st, c + 0, d->device_id, sizeof(d->device_id));
    column_copy(st, c + 1, d->generation_id, sizeof(d->generation_id));
    d->etag = (uint64_t)sqlite3_column_int64(st, c + 2);
    d->enabled = sqlite3_column_int(st, c + 3) != 0;
    column_copy(st, c + 4, d->status_reason, sizeof(d->status_reason));
    d->status_updated_ms = sqlite3_column_int64(st, c + 5);
    d->auth_type = (hub_auth_type)sqlite3_column_int(st, c + 6);
    column_copy(st, c + 7, d->primary_key, sizeof(d->primary_key));
    column_copy(st, c + 8, d->secondary_key, sizeof(d->secondary_key));
    column_copy(st, c + 9, d->primary_thumbprint, sizeof(d->primary_thumbprint));
    column_copy(st, c + 10, d->secondary_thumbprint, sizeof(d->secondary_thumbprint));
    d->iot_edge = sqlite3_column_int(st, c + 11) != 0;
    d->connected = sqlite3_column_int(st, c + 12) != 0;
    d->connection_state_updated_ms = sqlite3_column_int64(st, c + 13);
    d->last_activity_ms = sqlite3_column_int64(st, c + 14);
    column_copy(st, c + 15, d->model_id, sizeof(d->model_id));
    d->c2d_pending = (size_t)sqlite3_column_int64(st, c + 16);
}

static iotdm_result insert_device(sq_store *s, const hub_device *d)
{
    sqlite3_stmt *st = stmt_take(
        s, ST_DEVICE_INSERT,
        "INSERT INTO devices(device_id, generation_id, etag, enabled, status_reason, "
        "status_updated_ms, auth_type, primary_key, secondary_key, primary_thumbprint, "
        "secondary_thumbprint, iot_edge, connected, connection_state_updated_ms, last_activity_ms, "
        "model_id) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)");
    if (!st)
        return IOTDM_E_STORAGE;
    bind_field(st, 1, d->device_id, sizeof(d->device_id));
    bind_field(st, 2, d->generation_id, sizeof(d->generation_id));
    sqlite3_bind_int64(st, 3, (sqlite3_int64)d->etag);
    sqlite3_bind_int(st, 4, d->enabled);
    bind_field(st, 5, d->status_reason, sizeof(d->status_reason));
    sqlite3_bind_int64(st, 6, d->status_updated_ms);
    sqlite3_bind_int(st, 7, (int)d->auth_type);
    bind_field(st, 8, d->primary_key, sizeof(d->primary_key));
    bind_field(st, 9, d->secondary_key, sizeof(d->secondary_key));
    bind_field(st, 10, d->primary_thumbprint, sizeof(d->primary_thumbprint));
    bind_field(st, 11, d->secondary_thumbprint, sizeof(d->secondary_thumbprint));
    sqlite3_bind_int(st, 12, d->iot_edge);
    sqlite3_bind_int(st, 13, d->connected);
    sqlite3_bind_int64(st, 14, d->connection_state_updated_ms);
    sqlite3_bind_int64(st, 15, d->last_activity_ms);
    bind_field(st, 16, d->model_id, sizeof(d->model_id));
    iotdm_result r = stmt_exec(s, st);
    stmt_give(s, ST_DEVICE_INSERT, st);
    return r;
}

/* The empty twin of a new device: versions 1, metadata stamped with the creation time, as Azure
 * shows a freshly created twin. */
static iotdm_result insert_twin(sq_store *s, const char *device_id, size_t id_cap)
{
    char now[TWIN_TIME_CAP];
    char meta[64];
    twin_format_time(store_now_ms(), now, sizeof(now));
    snprintf(meta, sizeof(meta), "{\"$lastUpdated\":\"%s\"}", now);
    sqlite3_stmt *st = stmt_take(s, ST_TWIN_INSERT,
                                 "INSERT INTO twins(device_id, tags, desired, desired_meta, "
                                 "desired_version, reported, reported_meta, reported_version, "
                                 "version, etag) VALUES(?1, '{}', '{}', ?2, 1, '{}', ?2, 1, 1, 1)");
    if (!st)
        return IOTDM_E_STORAGE;
    bind_field(st, 1, device_id, id_cap);
    bind_text(st, 2, meta);
    iotdm_result r = stmt_exec(s, st);
    stmt_give(s, ST_TWIN_INSERT, st);
    return r;
}

iotdm_result sq_device_create(hub_store *base, hub_device *device)
{
    sq_store *store = (sq_store *)base;
    if (!store_id_ok(device->device_id) || !hub_device_auth_ok(device->auth_type))
        return IOTDM_E_MALFORMED;
    char generation[sizeof(device->generation_id)];
    memcpy(generation, device->generation_id, sizeof(generation));
    uint64_t etag = device->etag;
    hub_device_new_generation_id(device->generation_id, sizeof(device->generation_id));
    device->etag = 1;
    iotdm_result r = store_savepoint(store);
    if (r == IOTDM_OK) {
        r = insert_device(store, device);
        if (r == IOTDM_OK)
            r = insert_twin(store, device->device_id, sizeof(device->device_id));
        r = store_savepoint_end(store, r);
    }
    if (r != IOTDM_OK) {
        /* Nothing was created: leave the caller's struct as it was. */
        memcpy(device->generation_id, generation, sizeof(generation));
        device->etag = etag;
    }
    return r;
}

iotdm_result sq_device_get(hub_store *base, const char *device_id, hub_device *out_device)
{
    sq_store *store = (sq_store *)base;
    if (!store_id_ok(device_id))
        return IOTDM_E_NOT_FOUND;
    sqlite3_stmt *st = stmt_take(store, ST_DEVICE_GET,
                                 "SELECT " STORE_DEVICE_COLUMNS " FROM devices d "
                                 "WHERE d.device_id = ?1");
    if (!st)
        return IOTDM_E_STORAGE;
    bind_text(st, 1, device_id);
    int rc = sqlite3_step(st);
    iotdm_result r = IOTDM_E_NOT_FOUND;
    if (rc == SQLITE_ROW) {
        store_device_from_row(st, 0, out_device);
        r = IOTDM_OK;
    } else if (rc != SQLITE_DONE) {
        r = store_sqlite_result(store, rc, "device get");
    }
    stmt_give(store, ST_DEVICE_GET, st);
    return r;
}

/* After a conditional write touched no row: was the device missing or the etag different? */
static iotdm_result why_no_row(sq_store *s, const char *device_id, size_t id_cap)
{
    sqlite3_stmt *st =
        stmt_take(s, ST_DEVICE_ETAG, "SELECT etag FROM devices WHERE device_id = ?1");
    if (!st)
        return IOTDM_E_STORAGE;
    bind_field(st, 1, device_id, id_cap);
    int rc = sqlite3_step(st);
    iotdm_result r = rc == SQLITE_ROW    ? IOTDM_E_PRECONDITION
                     : rc == SQLITE_DONE ? IOTDM_E_NOT_FOUND
                                         : store_sqlite_result(s, rc, "device etag");
    stmt_give(s, ST_DEVICE_ETAG, st);
    return r;
}

iotdm_result sq_device_update(hub_store *base, hub_device *device, uint64_t if_match)
{
    sq_store *store = (sq_store *)base;
    if (!store_id_ok(device->device_id))
        return IOTDM_E_NOT_FOUND;
    if (!hub_device_auth_ok(device->auth_type))
        return IOTDM_E_MALFORMED;
    iotdm_result r = store_write_begin(store);
    if (r != IOTDM_OK)
        return r;
    /* Identity fields only: connection state, activity and model id have their own writers, and a
     * struct read before a REST update must not roll them back. */
    sqlite3_stmt *st =
        stmt_take(store, ST_DEVICE_UPDATE,
                  "UPDATE devices SET enabled = ?2, status_reason = ?3, status_updated_ms = ?4, "
                  "auth_type = ?5, primary_key = ?6, secondary_key = ?7, primary_thumbprint = ?8, "
                  "secondary_thumbprint = ?9, iot_edge = ?10, etag = etag + 1 "
                  "WHERE device_id = ?1 AND (?11 = 0 OR etag = ?11) RETURNING etag");
    if (!st)
        return IOTDM_E_STORAGE;
    bind_field(st, 1, device->device_id, sizeof(device->device_id));
    sqlite3_bind_int(st, 2, device->enabled);
    bind_field(st, 3, device->status_reason, sizeof(device->status_reason));
    sqlite3_bind_int64(st, 4, device->status_updated_ms);
    sqlite3_bind_int(st, 5, (int)device->auth_type);
    bind_field(st, 6, device->primary_key, sizeof(device->primary_key));
    bind_field(st, 7, device->secondary_key, sizeof(device->secondary_key));
    bind_field(st, 8, device->primary_thumbprint, sizeof(device->primary_thumbprint));
    bind_field(st, 9, device->secondary_thumbprint, sizeof(device->secondary_thumbprint));
    sqlite3_bind_int(st, 10, device->iot_edge);
    sqlite3_bind_int64(st, 11, (sqlite3_int64)if_match);
    int rc = sqlite3_step(st);
    bool updated = rc == SQLITE_ROW;
    uint64_t etag = updated ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
    while (rc == SQLITE_ROW)
        rc = sqlite3_step(st);
    r = store_sqlite_result(store, rc, "device update");
    stmt_give(store, ST_DEVICE_UPDATE, st);
    if (r != IOTDM_OK)
        return r;
    if (!updated)
        return why_no_row(store, device->device_id, sizeof(device->device_id));
    device->etag = etag;
    return IOTDM_OK;
}

iotdm_result sq_device_delete(hub_store *base, const char *device_id, uint64_t if_match)
{
    sq_store *store = (sq_store *)base;
    if (!store_id_ok(device_id))
        return IOTDM_E_NOT_FOUND;
    iotdm_result r = store_write_begin(store);
    if (r != IOTDM_OK)
        return r;
    /* One statement: the foreign keys cascade to the twin, C2D queue and sessions atomically. */
    sqlite3_stmt *st = stmt_take(store, ST_DEVICE_DELETE,
                                 "DELETE FROM devices WHERE device_id = ?1 "
                                 "AND (?2 = 0 OR etag = ?2)");
    if (!st)
        return IOTDM_E_STORAGE;
    bind_text(st, 1, device_id);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)if_match);
    r = stmt_exec(store, st);
    int changed = sqlite3_changes(store->db);
    stmt_give(store, ST_DEVICE_DELETE, st);
    if (r == IOTDM_OK && changed == 0)
        r = why_no_row(store, device_id, HUB_ID_MAX);
    return r;
}

iotdm_result sq_device_set_connection(hub_store *base, const char *device_id, bool connected,
                                      int64_t when_ms, uint64_t epoch)
{
    sq_store *store = (sq_store *)base;
    if (!store_id_ok(device_id))
        return IOTDM_E_NOT_FOUND;
    iotdm_result r;
    sqlite3_stmt *st = store_write_stmt(store, ST_DEVICE_SET_CONNECTION,
                                        "UPDATE devices SET connected = ?2, "
                                        "connection_state_updated_ms = ?3, conn_epoch = ?4 "
                                        "WHERE device_id = ?1 AND conn_epoch <= ?4",
                                        &r);
    if (!st)
        return r;
    bind_text(st, 1, device_id);
    sqlite3_bind_int(st, 2, connected);
    sqlite3_bind_int64(st, 3, when_ms);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)epoch);
    /* No row changed: the device is gone, or a newer connection owns its state. Neither is an
     * error for the connection writing. */
    r = stmt_exec(store, st);
    stmt_give(store, ST_DEVICE_SET_CONNECTION, st);
    return r;
}

iotdm_result sq_device_set_activity(hub_store *base, const char *device_id, int64_t when_ms,
                                    const char *model_id)
{
    sq_store *store = (sq_store *)base;
    if (!store_id_ok(device_id))
        return IOTDM_E_NOT_FOUND;
    if (model_id && strnlen(model_id, sizeof(((hub_device *)0)->model_id)) >=
                        sizeof(((hub_device *)0)->model_id))
        return IOTDM_E_TOO_LARGE;
    iotdm_result r;
    sqlite3_stmt *st = store_write_stmt(store, ST_DEVICE_SET_ACTIVITY,
                                        "UPDATE devices SET last_activity_ms = ?2, "
                                        "model_id = COALESCE(?3, model_id) WHERE device_id = ?1",
                                        &r);
    if (!st)
        return r;
    bind_text(st, 1, device_id);
    sqlite3_bind_int64(st, 2, when_ms);
    bind_text(st, 3, model_id);
    r = stmt_exec_row(store, st);
    stmt_give(store, ST_DEVICE_SET_ACTIVITY, st);
    return r;
}

iotdm_result sq_device_foreach(hub_store *base, const char *after_id, size_t max,
                               hub_device_visitor visit, void *ctx)
{
    sq_store *store = (sq_store *)base;
    sqlite3_stmt *st = stmt_take(store, ST_DEVICE_LIST,
                                 "SELECT " STORE_DEVICE_COLUMNS " FROM devices d "
                                 "WHERE d.device_id > ?1 ORDER BY d.device_id LIMIT ?2");
    if (!st)
        return IOTDM_E_STORAGE;
    /* Ids are never empty, so "" sorts before every one of them. */
    bind_text(st, 1, after_id ? after_id : "");
    sqlite3_bind_int64(st, 2, max > INT64_MAX ? INT64_MAX : (sqlite3_int64)max);
    int rc;
    hub_device d;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        store_device_from_row(st, 0, &d);
        if (!visit(ctx, &d)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    iotdm_result r = store_sqlite_result(store, rc, "device list");
    stmt_give(store, ST_DEVICE_LIST, st);
    return r;
}

iotdm_result sq_device_stats(hub_store *base, hub_device_stats *out_stats)
{
    sq_store *store = (sq_store *)base;
    memset(out_stats, 0, sizeof(*out_stats));
    sqlite3_stmt *st = stmt_take(store, ST_DEVICE_STATS,
                                 "SELECT COUNT(*), SUM(enabled), SUM(connected) FROM devices");
    if (!st)
        return IOTDM_E_STORAGE;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        out_stats->total = (size_t)sqlite3_column_int64(st, 0);
        out_stats->enabled = (size_t)sqlite3_column_int64(st, 1);
        out_stats->disabled = out_stats->total - out_stats->enabled;
        out_stats->connected = (size_t)sqlite3_column_int64(st, 2);
    }
    iotdm_result r = store_sqlite_result(store, rc, "device stats");
    stmt_give(store, ST_DEVICE_STATS, st);
    return r;
}

iotdm_result sq_device_disconnect_all(hub_store *base, int64_t when_ms)
{
    sq_store *store = (sq_store *)base;
    iotdm_result r;
    sqlite3_stmt *st = store_write_stmt(store, ST_DEVICE_DISCONNECT_ALL,
                                        "UPDATE devices SET connected = 0, "
                                        "connection_state_updated_ms = ?1 WHERE connected != 0",
                                        &r);
    if (!st)
        return r;
    sqlite3_bind_int64(st, 1, when_ms);
    r = stmt_exec(store, st);
    stmt_give(store, ST_DEVICE_DISCONNECT_ALL, st);
    return r;
}

/* ---- sessions ---- */

iotdm_result sq_session_put(hub_store *base, const char *client_id, uint32_t subscriptions)
{
    sq_store *store = (sq_store *)base;
    size_t dev_len;
    if (!hub_session_device(client_id, &dev_len))
        return IOTDM_E_MALFORMED;
    iotdm_result r;
    sqlite3_stmt *st = store_write_stmt(store, ST_SESSION_PUT,
                                        "INSERT INTO sessions(client_id, device_id, subscriptions) "
                                        "VALUES(?1, ?2, ?3) ON CONFLICT(client_id) DO UPDATE SET "
                                        "subscriptions = excluded.subscriptions",
                                        &r);
    if (!st)
        return r;
    bind_text(st, 1, client_id);
    sqlite3_bind_text(st, 2, client_id, (int)dev_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, subscriptions);
    r = stmt_exec(store, st); /* an unknown device fails the foreign key: IOTDM_E_NOT_FOUND */
    stmt_give(store, ST_SESSION_PUT, st);
    return r;
}

iotdm_result sq_session_get(hub_store *base, const char *client_id, uint32_t *out_subscriptions)
{
    sq_store *store = (sq_store *)base;
    size_t dev_len;
    if (!hub_session_device(client_id, &dev_len))
        return IOTDM_E_NOT_FOUND;
    sqlite3_stmt *st =
        stmt_take(store, ST_SESSION_GET, "SELECT subscriptions FROM sessions WHERE client_id = ?1");
    if (!st)
        return IOTDM_E_STORAGE;
    bind_text(st, 1, client_id);
    int rc = sqlite3_step(st);
    iotdm_result r = IOTDM_E_NOT_FOUND;
    if (rc == SQLITE_ROW) {
        *out_subscriptions = (uint32_t)sqlite3_column_int64(st, 0);
        r = IOTDM_OK;
    } else if (rc != SQLITE_DONE) {
        r = store_sqlite_result(store, rc, "session get");
    }
    stmt_give(store, ST_SESSION_GET, st);
    return r;
}

/* Deleting a session that does not exist succeeds: a clean-session CONNECT just wants none. */
iotdm_result sq_session_delete(hub_store *base, const char *client_id)
{
    sq_store *store = (sq_store *)base;
    size_t dev_len;
    if (!hub_session_device(client_id, &dev_len))
        return IOTDM_OK;
    iotdm_result r;
    sqlite3_stmt *st =
        store_write_stmt(store, ST_SESSION_DELETE, "DELETE FROM sessions WHERE client_id = ?1", &r);
    if (!st)
        return r;
    bind_text(st, 1, client_id);
    r = stmt_exec(store, st);
    stmt_give(store, ST_SESSION_DELETE, st);
    return r;
}
