/* The store's front: each hub_store_* function dispatches to the backend's operation, and the
 * helpers every backend shares (struct cleanup, opening by location). */
#include "hub/store/store.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "common/alloc.h"
#include "common/log.h"
#include "common/jsonw.h"
#include "common/urlenc.h"

void hub_twin_deinit(hub_twin *twin)
{
    if (!twin)
        return;
    json_decref(twin->tags);
    json_decref(twin->desired);
    json_decref(twin->desired_meta);
    json_decref(twin->reported);
    json_decref(twin->reported_meta);
    memset(twin, 0, sizeof(*twin));
}

void hub_c2d_deinit(hub_c2d *msg)
{
    if (!msg)
        return;
    json_decref(msg->properties);
    xfree(msg->body);
    memset(msg, 0, sizeof(*msg));
}

void hub_telemetry_deinit(hub_telemetry *msg)
{
    if (!msg)
        return;
    json_decref(msg->system_properties);
    json_decref(msg->properties);
    xfree(msg->body);
    memset(msg, 0, sizeof(*msg));
}

iotdm_result hub_c2d_format_bag(const json_t *properties, char *out, size_t cap)
{
    size_t len = 0;
    const char *key;
    json_t *value;
    if (cap < HUB_C2D_MAX_BAG + 1)
        return IOTDM_E_TOO_LARGE;
    out[0] = '\0';
    json_object_foreach((json_t *)properties, key, value)
    {
        if (!json_is_string(value))
            continue;
        /* name=value, each percent-encoded, joined by '&' */
        char n[3 * 512 + 1], v[3 * 4096 + 1];
        long nl = urlenc_encode(key, strlen(key), n, sizeof n);
        long vl = urlenc_encode(json_string_value(value), json_string_length(value), v, sizeof v);
        if (nl < 0 || vl < 0)
            return IOTDM_E_TOO_LARGE;
        size_t need = (len ? 1 : 0) + (size_t)nl + 1 + (size_t)vl;
        if (len + need > HUB_C2D_MAX_BAG)
            return IOTDM_E_TOO_LARGE;
        len += (size_t)snprintf(out + len, cap - len, "%s%s=%s", len ? "&" : "", n, v);
    }
    return IOTDM_OK;
}

bool hub_store_is_postgresql(const char *location)
{
    return strncmp(location, "postgresql://", 13) == 0 || strncmp(location, "postgres://", 11) == 0;
}

iotdm_result hub_store_open(const char *location, hub_store **out_store)
{
    *out_store = NULL;
    if (hub_store_is_postgresql(location))
        return hub_store_postgresql_open(location, out_store);
    if (strncmp(location, "sqlite:", 7) == 0)
        location += 7;
    return hub_store_sqlite_open(location, out_store);
}

void hub_store_close(hub_store *store)
{
    if (store)
        store->ops->close(store);
}

iotdm_result hub_store_unit_begin(hub_store *store)
{
    return store->ops->unit_begin(store);
}

iotdm_result hub_store_unit_end(hub_store *store, iotdm_result outcome)
{
    return store->ops->unit_end(store, outcome);
}

iotdm_result hub_store_group_commit(hub_store *store)
{
    return store->ops->group_commit(store);
}

bool hub_store_has_pending_writes(const hub_store *store)
{
    return store->ops->has_pending_writes(store);
}

iotdm_result hub_store_durable(hub_store *store)
{
    return store->ops->durable(store);
}

bool hub_store_quiesce_wanted(hub_store *store)
{
    return store->ops->quiesce_wanted(store);
}

iotdm_result hub_store_twin_get_sections(hub_store *store, const char *device_id, unsigned sections,
                                         hub_twin *out_twin)
{
    return store->ops->twin_get_sections(store, device_id, sections, out_twin);
}

iotdm_result hub_store_twin_texts(hub_store *store, const char *device_id,
                                  hub_twin_texts *out_texts)
{
    return store->ops->twin_texts(store, device_id, out_texts);
}

void hub_twin_texts_free(hub_twin_texts *texts)
{
    xfree(texts->desired);
    xfree(texts->reported);
    texts->desired = texts->reported = NULL;
}

iotdm_result hub_store_commit(hub_store *store)
{
    bool had_writes = store->ops->has_pending_writes(store);
    iotdm_result r = store->ops->group_commit(store);
    return r == IOTDM_OK && had_writes ? store->ops->durable(store) : r;
}

iotdm_result hub_store_open_reader(hub_store *store, hub_store **out_reader)
{
    *out_reader = NULL;
    return store->ops->open_reader(store, out_reader);
}

iotdm_result hub_store_policy_put(hub_store *store, const hub_policy *policy)
{
    return store->ops->policy_put(store, policy);
}

iotdm_result hub_store_policy_get(hub_store *store, const char *name, hub_policy *out_policy)
{
    return store->ops->policy_get(store, name, out_policy);
}

size_t hub_store_policy_count(hub_store *store)
{
    return store->ops->policy_count(store);
}

iotdm_result hub_store_device_create(hub_store *store, hub_device *device)
{
    return store->ops->device_create(store, device);
}

iotdm_result hub_store_device_get(hub_store *store, const char *device_id, hub_device *out_device)
{
    return store->ops->device_get(store, device_id, out_device);
}

iotdm_result hub_store_device_update(hub_store *store, hub_device *device, uint64_t if_match)
{
    return store->ops->device_update(store, device, if_match);
}

iotdm_result hub_store_device_delete(hub_store *store, const char *device_id, uint64_t if_match)
{
    return store->ops->device_delete(store, device_id, if_match);
}

iotdm_result hub_store_device_set_connection(hub_store *store, const char *device_id,
                                             bool connected, int64_t when_ms, uint64_t epoch)
{
    return store->ops->device_set_connection(store, device_id, connected, when_ms, epoch);
}

iotdm_result hub_store_device_set_activity(hub_store *store, const char *device_id, int64_t when_ms,
                                           const char *model_id)
{
    return store->ops->device_set_activity(store, device_id, when_ms, model_id);
}

iotdm_result hub_store_device_foreach(hub_store *store, const char *after_id, size_t max,
                                      hub_device_visitor visit, void *ctx)
{
    return store->ops->device_foreach(store, after_id, max, visit, ctx);
}

iotdm_result hub_store_device_stats(hub_store *store, hub_device_stats *out_stats)
{
    return store->ops->device_stats(store, out_stats);
}

iotdm_result hub_store_device_disconnect_all(hub_store *store, int64_t when_ms)
{
    return store->ops->device_disconnect_all(store, when_ms);
}

iotdm_result hub_store_file_bytes_put(hub_store *store, const char *correlation_id,
                                      const void *bytes, size_t len)
{
    return store->ops->file_bytes_put(store, correlation_id, bytes, len);
}

iotdm_result hub_store_file_bytes_get(hub_store *store, const char *correlation_id,
                                      unsigned char **out_bytes, size_t *out_len)
{
    return store->ops->file_bytes_get(store, correlation_id, out_bytes, out_len);
}

void hub_store_set_node(hub_store *store, const char *node_id)
{
    store->ops->set_node(store, node_id);
}

iotdm_result hub_store_device_disconnect_node(hub_store *store, const char *node_id,
                                              int64_t when_ms, size_t max,
                                              hub_device_id_visitor visit, void *ctx,
                                              size_t *out_count)
{
    return store->ops->device_disconnect_node(store, node_id, when_ms, max, visit, ctx, out_count);
}

iotdm_result hub_store_twin_get(hub_store *store, const char *device_id, hub_twin *out_twin)
{
    return store->ops->twin_get(store, device_id, out_twin);
}

iotdm_result hub_store_twin_put(hub_store *store, const char *device_id, const hub_twin *twin)
{
    return store->ops->twin_put(store, device_id, twin);
}

iotdm_result hub_store_twin_foreach(hub_store *store, hub_twin_visitor visit, void *ctx)
{
    return store->ops->twin_foreach(store, visit, ctx);
}

iotdm_result hub_store_query_page(hub_store *store, const hub_query *q, const char *after_id,
                                  hub_twin_visitor visit, void *ctx)
{
    return store->ops->query_page(store, q, after_id, visit, ctx);
}

iotdm_result hub_store_c2d_enqueue(hub_store *store, hub_c2d *msg, size_t max_pending)
{
    return store->ops->c2d_enqueue(store, msg, max_pending);
}

iotdm_result hub_store_c2d_foreach(hub_store *store, const char *device_id, int64_t now_ms,
                                   hub_c2d_visitor visit, void *ctx)
{
    return store->ops->c2d_foreach(store, device_id, now_ms, visit, ctx);
}

iotdm_result hub_store_c2d_mark_delivered(hub_store *store, int64_t seq)
{
    return store->ops->c2d_mark_delivered(store, seq);
}

iotdm_result hub_store_c2d_complete(hub_store *store, int64_t seq)
{
    return store->ops->c2d_complete(store, seq);
}

iotdm_result hub_store_c2d_purge(hub_store *store, const char *device_id, size_t *out_purged)
{
    return store->ops->c2d_purge(store, device_id, out_purged);
}

size_t hub_store_c2d_count(hub_store *store, const char *device_id)
{
    return store->ops->c2d_count(store, device_id);
}

size_t hub_store_c2d_expire(hub_store *store, int64_t now_ms)
{
    return store->ops->c2d_expire(store, now_ms);
}

iotdm_result hub_store_telemetry_append(hub_store *store, hub_telemetry *msg)
{
    return store->ops->telemetry_append(store, msg);
}

iotdm_result hub_store_telemetry_foreach(hub_store *store, int64_t from_seq, size_t max,
                                         hub_telemetry_visitor visit, void *ctx)
{
    return store->ops->telemetry_foreach(store, from_seq, max, visit, ctx);
}

int64_t hub_store_telemetry_last_seq(hub_store *store)
{
    return store->ops->telemetry_last_seq(store);
}

iotdm_result hub_store_telemetry_trim(hub_store *store, uint64_t max_bytes, int64_t max_age_ms,
                                      int64_t now_ms, size_t max_rows, bool *out_more)
{
    return store->ops->telemetry_trim(store, max_bytes, max_age_ms, now_ms, max_rows, out_more);
}

iotdm_result hub_store_file_create(hub_store *store, const hub_file *file)
{
    return store->ops->file_create(store, file);
}

iotdm_result hub_store_file_get(hub_store *store, const char *correlation_id, hub_file *out_file)
{
    return store->ops->file_get(store, correlation_id, out_file);
}

iotdm_result hub_store_file_update(hub_store *store, const hub_file *file)
{
    return store->ops->file_update(store, file);
}

iotdm_result hub_store_file_delete(hub_store *store, const char *correlation_id)
{
    return store->ops->file_delete(store, correlation_id);
}

iotdm_result hub_store_file_find(hub_store *store, const char *device_id, const char *blob_name,
                                 hub_file *out_file)
{
    return store->ops->file_find(store, device_id, blob_name, out_file);
}

iotdm_result hub_store_file_foreach(hub_store *store, const char *device_id, size_t max,
                                    hub_file_visitor visit, void *ctx)
{
    return store->ops->file_foreach(store, device_id, max, visit, ctx);
}

size_t hub_store_file_active(hub_store *store, const char *device_id, int64_t since_ms)
{
    return store->ops->file_active(store, device_id, since_ms);
}

iotdm_result hub_store_session_put(hub_store *store, const char *client_id, uint32_t subscriptions)
{
    return store->ops->session_put(store, client_id, subscriptions);
}

iotdm_result hub_store_session_get(hub_store *store, const char *client_id,
                                   uint32_t *out_subscriptions)
{
    return store->ops->session_get(store, client_id, out_subscriptions);
}

iotdm_result hub_store_session_delete(hub_store *store, const char *client_id)
{
    return store->ops->session_delete(store, client_id);
}

iotdm_result hub_store_enrollment_put(hub_store *store, hub_dps_kind kind, const char *id,
                                      const json_t *doc, uint64_t if_match, uint64_t *out_etag)
{
    return store->ops->enrollment_put(store, kind, id, doc, if_match, out_etag);
}

iotdm_result hub_store_enrollment_get(hub_store *store, hub_dps_kind kind, const char *id,
                                      json_t **out_doc, uint64_t *out_etag)
{
    return store->ops->enrollment_get(store, kind, id, out_doc, out_etag);
}

iotdm_result hub_store_enrollment_delete(hub_store *store, hub_dps_kind kind, const char *id,
                                         uint64_t if_match)
{
    return store->ops->enrollment_delete(store, kind, id, if_match);
}

iotdm_result hub_store_enrollment_foreach(hub_store *store, hub_dps_kind kind, const char *after_id,
                                          size_t max, hub_doc_visitor visit, void *ctx)
{
    return store->ops->enrollment_foreach(store, kind, after_id, max, visit, ctx);
}

iotdm_result hub_store_registration_put(hub_store *store, const char *registration_id,
                                        const char *group_id, const json_t *doc, uint64_t *out_etag)
{
    return store->ops->registration_put(store, registration_id, group_id, doc, out_etag);
}

iotdm_result hub_store_registration_get(hub_store *store, const char *registration_id,
                                        json_t **out_doc, uint64_t *out_etag)
{
    return store->ops->registration_get(store, registration_id, out_doc, out_etag);
}

iotdm_result hub_store_registration_delete(hub_store *store, const char *registration_id,
                                           uint64_t if_match)
{
    return store->ops->registration_delete(store, registration_id, if_match);
}

iotdm_result hub_store_registration_foreach(hub_store *store, const char *group_id,
                                            const char *after_id, size_t max, hub_doc_visitor visit,
                                            void *ctx)
{
    return store->ops->registration_foreach(store, group_id, after_id, max, visit, ctx);
}

iotdm_result hub_store_dps_operation_put(hub_store *store, const char *operation_id,
                                         const char *registration_id, int64_t created_ms,
                                         const json_t *result)
{
    return store->ops->dps_operation_put(store, operation_id, registration_id, created_ms, result);
}

iotdm_result hub_store_dps_operation_get(hub_store *store, const char *operation_id,
                                         char out_registration_id[HUB_ID_MAX],
                                         int64_t *out_created_ms, json_t **out_result)
{
    return store->ops->dps_operation_get(store, operation_id, out_registration_id, out_created_ms,
                                         out_result);
}

iotdm_result hub_store_dps_operation_prune(hub_store *store, int64_t before_ms, size_t max_keep,
                                           size_t *out_deleted)
{
    return store->ops->dps_operation_prune(store, before_ms, max_keep, out_deleted);
}

iotdm_result hub_store_tpm_challenge_put(hub_store *store, const char *registration_id,
                                         const hub_tpm_challenge *c)
{
    return store->ops->tpm_challenge_put(store, registration_id, c);
}

iotdm_result hub_store_tpm_challenge_get(hub_store *store, const char *registration_id,
                                         int64_t now_ms, hub_tpm_challenge *out)
{
    return store->ops->tpm_challenge_get(store, registration_id, now_ms, out);
}

iotdm_result hub_store_tpm_challenge_prune(hub_store *store, int64_t now_ms, size_t max_keep,
                                           size_t *out_deleted)
{
    return store->ops->tpm_challenge_prune(store, now_ms, max_keep, out_deleted);
}

iotdm_result hub_store_file_usage(hub_store *store, const char *device_id, size_t *out_count,
                                  uint64_t *out_bytes)
{
    return store->ops->file_usage(store, device_id, out_count, out_bytes);
}

iotdm_result hub_store_file_prune(hub_store *store, int64_t done_before_ms, int64_t open_before_ms,
                                  size_t max, hub_file_visitor visit, void *ctx,
                                  size_t *out_deleted)
{
    return store->ops->file_prune(store, done_before_ms, open_before_ms, max, visit, ctx,
                                  out_deleted);
}

/* ---- fleet documents: the arguments are checked here, so every backend gets the same ---- */

/* A scope, id or cursor as the store keeps it: at most HUB_DOC_KEY_MAX bytes of UTF-8. Checked
 * before any backend sees it: PostgreSQL would refuse other bytes with an SQL error, which fails
 * the transaction, where SQLite would keep them. */
static bool doc_key_ok(const char *key, bool may_be_empty)
{
    if (!key)
        return false;
    size_t len = strnlen(key, HUB_DOC_KEY_MAX + 1);
    return len <= HUB_DOC_KEY_MAX && (may_be_empty || len > 0) && utf8_valid(key, len);
}

/* Collection, scope and id of one document. */
static bool doc_address_ok(hub_doc_collection coll, const char *scope, const char *id)
{
    return (int)coll > 0 && doc_key_ok(scope, true) && doc_key_ok(id, false);
}

iotdm_result hub_store_doc_put(hub_store *store, hub_doc_collection coll, const char *scope,
                               const char *id, const json_t *doc, uint64_t if_match,
                               uint64_t *out_etag)
{
    if (!doc_address_ok(coll, scope, id) || !json_is_object(doc))
        return IOTDM_E_MALFORMED;
    /* The size as the backends will write it (compact). Measuring costs a second serialization,
     * which is cheap next to the write, and keeps the limit the same on every backend. */
    size_t len = json_dumpb(doc, NULL, 0, JSON_COMPACT);
    if (len == 0)
        return IOTDM_E_MALFORMED;
    if (len > HUB_DOC_MAX_BYTES)
        return IOTDM_E_TOO_LARGE;
    return store->ops->doc_put(store, coll, scope, id, doc, if_match, out_etag);
}

iotdm_result hub_store_doc_get(hub_store *store, hub_doc_collection coll, const char *scope,
                               const char *id, json_t **out_doc, uint64_t *out_etag)
{
    *out_doc = NULL;
    if (!doc_address_ok(coll, scope, id))
        return IOTDM_E_MALFORMED;
    return store->ops->doc_get(store, coll, scope, id, out_doc, out_etag);
}

iotdm_result hub_store_doc_delete(hub_store *store, hub_doc_collection coll, const char *scope,
                                  const char *id, uint64_t if_match)
{
    if (!doc_address_ok(coll, scope, id))
        return IOTDM_E_MALFORMED;
    return store->ops->doc_delete(store, coll, scope, id, if_match);
}

iotdm_result hub_store_doc_foreach(hub_store *store, hub_doc_collection coll, const char *scope,
                                   const char *after_scope, const char *after_id, size_t max,
                                   hub_fleet_doc_visitor visit, void *ctx)
{
    /* Backends get the cursor without NULLs: "" sorts before every scope and every id (ids are
     * never empty), so (after_scope, NULL) starts at the first document of after_scope. */
    if (scope || !after_scope)
        after_scope = "";
    if (!after_id)
        after_id = "";
    if ((int)coll <= 0 || !visit || (scope && !doc_key_ok(scope, true)) ||
        !doc_key_ok(after_scope, true) || !doc_key_ok(after_id, true))
        return IOTDM_E_MALFORMED;
    if (max == 0)
        return IOTDM_OK;
    return store->ops->doc_foreach(store, coll, scope, after_scope, after_id, max, visit, ctx);
}

iotdm_result hub_store_doc_delete_scope(hub_store *store, hub_doc_collection coll,
                                        const char *scope, size_t *out_deleted)
{
    if (out_deleted)
        *out_deleted = 0;
    if ((int)coll <= 0 || !doc_key_ok(scope, true))
        return IOTDM_E_MALFORMED;
    return store->ops->doc_delete_scope(store, coll, scope, out_deleted);
}

iotdm_result hub_store_doc_count(hub_store *store, hub_doc_collection coll, const char *scope,
                                 size_t *out_count)
{
    *out_count = 0;
    if ((int)coll <= 0 || (scope && !doc_key_ok(scope, true)))
        return IOTDM_E_MALFORMED;
    return store->ops->doc_count(store, coll, scope, out_count);
}

/* ---- helpers every backend uses ---- */

/* Azure's generationId is an 18-digit decimal number; ours is random so it differs when a device
 * is deleted and created again under the same id. */
void hub_device_new_generation_id(char *out, size_t cap)
{
    uint64_t n = 0;
    if (getrandom(&n, sizeof n, 0) != (ssize_t)sizeof n) {
        struct timespec ts; /* getrandom does not fail for 8 bytes; a fallback all the same */
        clock_gettime(CLOCK_REALTIME, &ts);
        n = (uint64_t)ts.tv_nsec * UINT64_C(6364136223846793005) + (uint64_t)ts.tv_sec;
    }
    n = n % UINT64_C(900000000000000000) + UINT64_C(100000000000000000);
    snprintf(out, cap, "%" PRIu64, n);
}

bool hub_device_auth_ok(hub_auth_type t)
{
    return t == HUB_AUTH_SAS || t == HUB_AUTH_SELF_SIGNED || t == HUB_AUTH_CA || t == HUB_AUTH_NONE;
}

bool hub_session_device(const char *client_id, size_t *out_len)
{
    if (!client_id || !client_id[0])
        return false;
    size_t total = strnlen(client_id, 2 * HUB_ID_MAX);
    if (total >= 2 * HUB_ID_MAX)
        return false;
    const char *slash = memchr(client_id, '/', total);
    size_t n = slash ? (size_t)(slash - client_id) : total;
    *out_len = n;
    return n > 0 && n < HUB_ID_MAX;
}

iotdm_result hub_json_buf_dump(hub_json_buf *b, const json_t *json, const char **out_text,
                               size_t *out_len)
{
    if (!json) {
        *out_text = "{}";
        *out_len = 2;
        return IOTDM_OK;
    }
    size_t need = json_dumpb(json, b->data, b->cap, JSON_COMPACT | JSON_ENCODE_ANY);
    if (need == 0)
        return IOTDM_E_MALFORMED;
    if (need > b->cap) {
        size_t cap = need + need / 4 + 256;
        char *p = xrealloc(b->data, cap);
        if (!p)
            return -ENOMEM;
        b->data = p;
        b->cap = cap;
        need = json_dumpb(json, b->data, b->cap, JSON_COMPACT | JSON_ENCODE_ANY);
        if (need == 0 || need > b->cap)
            return IOTDM_E_MALFORMED;
    }
    if (need > INT32_MAX)
        return IOTDM_E_TOO_LARGE; /* both backends take an int length */
    *out_text = b->data;
    *out_len = need;
    return IOTDM_OK;
}

void hub_json_buf_free(hub_json_buf *b)
{
    xfree(b->data);
    b->data = NULL;
    b->cap = 0;
}

iotdm_result hub_telemetry_texts(const hub_telemetry *msg, hub_json_buf *sys_buf,
                                 hub_json_buf *app_buf, const char **out_sys, size_t *out_sys_len,
                                 const char **out_app, size_t *out_app_len)
{
    if (msg->body_len > INT32_MAX || (msg->body_len && !msg->body))
        return IOTDM_E_TOO_LARGE;
    if (msg->system_json && msg->properties_json) {
        *out_sys = msg->system_json, *out_sys_len = msg->system_json_len;
        *out_app = msg->properties_json, *out_app_len = msg->properties_json_len;
        return *out_sys_len > INT32_MAX || *out_app_len > INT32_MAX ? IOTDM_E_TOO_LARGE : IOTDM_OK;
    }
    iotdm_result r = hub_json_buf_dump(sys_buf, msg->system_properties, out_sys, out_sys_len);
    return r == IOTDM_OK ? hub_json_buf_dump(app_buf, msg->properties, out_app, out_app_len) : r;
}

json_t *hub_doc_loaded(json_t *doc, hub_doc_collection coll, const char *scope, const char *id)
{
    if (doc && !json_is_object(doc)) {
        json_decref(doc);
        doc = NULL;
    }
    if (!doc)
        log_error("store", "corrupt fleet document collection=%d scope=\"%s\" id=\"%s\"", (int)coll,
                  scope, id);
    return doc;
}
