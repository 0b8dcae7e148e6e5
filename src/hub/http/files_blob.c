/* The hub's blob endpoint for device uploads: PUT /iotdm-files/<deviceId>/<name>?…&sig=… (Azure
 * Blob "Put Blob", x-ms-blob-type: BlockBlob; docs/protocol.md §10.2), and the service's
 * /iotdm/files listing, download and delete.
 *
 * Only a whole-blob Put Blob is served. Put Block, Put Block List and every other blob operation
 * (any comp= or restype=, append and page blobs) are refused before their body is read, with the
 * storage service's error codes, so that a client never believes a block went where it did not:
 * storing a block list as if it were the blob once lost uploads silently. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/atomic_file.h"
#include "common/log.h"
#include "common/sas.h"
#include "common/timeutil.h"
#include "hub/files.h"
#include "hub/http/internal.h"

/* The blob path after the container or /iotdm/files: "<deviceId>/<name>", from segment `first`. */
static bool join_blob(http_ctx *cx, size_t first, char *out, size_t cap)
{
    out[0] = '\0';
    for (size_t i = first; i < cx->nsegments; i++) {
        size_t len = strlen(out);
        int n = snprintf(out + len, cap - len, "%s%s", i > first ? "/" : "", cx->segments[i]);
        if (n < 0 || (size_t)n >= cap - len)
            return false;
    }
    return cx->nsegments > first + 1;
}

/* A storage-service error: its status, x-ms-error-code and XML body. */
static void storage_error(http_ctx *cx, int status, const char *code, const char *message)
{
    char *body = xmalloc(512);
    if (!body) {
        http_send_empty(cx, status);
        return;
    }
    int n = snprintf(body, 512,
                     "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>%s</Code><Message>%s"
                     "</Message></Error>",
                     code, message);
    http_add_header(cx, "x-ms-error-code", code);
    http_send_bytes_take(cx, status, "application/xml", body, n > 0 ? (size_t)n : 0);
}

typedef struct {
    http_ctx cx;
    char blob[HUB_BLOB_NAME_MAX];
    char cid[HUB_CORRELATION_MAX];
    char device_id[HUB_ID_MAX];
    hub_file f;
    char why[256];
    char *bytes; /* the body, taken from the request for the write */
    size_t len;
    int step; /* 0: check the record, 1: write the bytes, 2: record the upload */
} blob_ctx;

static void blob_cleanup(http_ctx *cx)
{
    xfree(((blob_ctx *)cx)->bytes);
}

/* The query a SAS URI of ours carries, and nothing else. */
static bool only_sas_params(http_ctx *cx, const char **bad)
{
    static const char *const allowed[] = {"sv", "sr", "sp", "se", "cid", "sig"};
    for (size_t i = 0; i < cx->nparams; i++) {
        bool ok = false;
        for (size_t k = 0; k < sizeof allowed / sizeof *allowed; k++)
            ok = ok || strcmp(cx->param_names[i], allowed[k]) == 0;
        if (!ok) {
            *bad = cx->param_names[i];
            return false;
        }
    }
    return true;
}

bool http_files_blob_precheck(http_ctx *cx)
{
    blob_ctx *bc = (blob_ctx *)cx;
    const char *bad = NULL;
    if (!only_sas_params(cx, &bad)) {
        char msg[160];
        snprintf(msg, sizeof msg,
                 "the query parameter '%.40s' names a blob operation this hub does not serve: "
                 "upload the whole blob with one Put Blob",
                 bad);
        storage_error(cx, 400, "UnsupportedQueryParameter", msg);
        return false;
    }
    const char *type = http_header(cx, "x-ms-blob-type");
    if (type && strcmp(type, "BlockBlob") != 0) {
        storage_error(cx, 400, "InvalidHeaderValue", "only block blobs are served");
        return false;
    }
    const char *cid = http_query_param(cx, "cid"), *sig = http_query_param(cx, "sig");
    const char *se_text = http_query_param(cx, "se");
    char *end = NULL;
    long long se = se_text ? strtoll(se_text, &end, 10) : 0;
    char expected[SAS_SIG_LEN + 1];
    bool ok = join_blob(cx, 1, bc->blob, sizeof bc->blob) && cid && strlen(cid) < sizeof bc->cid &&
              sig && se_text && !*end && se >= time_now_ms() / 1000 && strlen(sig) == SAS_SIG_LEN &&
              http_upload_signature(cx->h, cid, bc->blob, se, expected) &&
              CRYPTO_memcmp(expected, sig, SAS_SIG_LEN) == 0;
    if (!ok) {
        http_send_error(cx, HUB_ERR_UNAUTHORIZED,
                        "the upload SAS is not valid for this blob, or has expired");
        return false;
    }
    snprintf(bc->cid, sizeof bc->cid, "%s", cid);
    snprintf(bc->device_id, sizeof bc->device_id, "%s", cx->segments[1]);
    httpd_req_authenticated(cx->req);
    return true;
}

/* Step 0 (writer): the record must still await its bytes, and they must fit the quota. */
static iotdm_result check_run(hub_work *w, hub_store *store)
{
    blob_ctx *bc = (blob_ctx *)w;
    iotdm_result r = hub_store_file_get(store, bc->cid, &bc->f);
    if (r == IOTDM_OK &&
        (strcmp(bc->f.blob_name, bc->blob) != 0 || bc->f.state > HUB_FILE_UPLOADED))
        r = IOTDM_E_UNAUTHORIZED;
    if (r == IOTDM_E_NOT_FOUND)
        r = IOTDM_E_UNAUTHORIZED; /* swept, or never issued */
    if (r == IOTDM_OK)
        r = hub_files_quota_check(bc->cx.h, store, bc->device_id, bc->len, false, bc->why,
                                  sizeof bc->why);
    return r;
}

/* Step 1 (reader thread, no database): the bytes to DATA/files/<cid>, all or nothing, durably. */
static iotdm_result write_run(hub_work *w, hub_store *store)
{
    (void)store;
    blob_ctx *bc = (blob_ctx *)w;
    const hub *h = bc->cx.h;
    char dir[600], final[700], err[300];
    snprintf(dir, sizeof dir, "%s/files", h->cfg.data_dir);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return -errno;
    hub_files_path(h, bc->cid, final, sizeof final);
    iotdm_result r =
        atomic_file_write(final, bc->bytes ? bc->bytes : "", bc->len, 0600, err, sizeof err);
    if (r < 0)
        log_error("files", "%s", err);
    return r == -ENOSPC ? r : (r < 0 ? IOTDM_E_STORAGE : IOTDM_OK);
}

/* Step 2 (writer): the record says the bytes are there. In a cluster the bytes go into the
 * store with it, in the same unit (any node then serves them; docs/cluster.md). */
static iotdm_result record_run(hub_work *w, hub_store *store)
{
    blob_ctx *bc = (blob_ctx *)w;
    iotdm_result r = IOTDM_OK;
    if (bc->cx.h->cluster)
        r = hub_store_file_bytes_put(store, bc->cid, bc->bytes ? bc->bytes : "", bc->len);
    if (r != IOTDM_OK)
        return r;
    bc->f.state = HUB_FILE_UPLOADED;
    bc->f.size = (int64_t)bc->len;
    bc->f.updated_ms = time_now_ms();
    return hub_store_file_update(store, &bc->f);
}

static void blob_step_done(http_ctx *cx)
{
    blob_ctx *bc = (blob_ctx *)cx;
    iotdm_result r = cx->w.result;
    if (r == IOTDM_E_UNAUTHORIZED) {
        http_send_error(cx, HUB_ERR_UNAUTHORIZED,
                        "the upload SAS is not valid for this blob, or has expired");
    } else if (r == IOTDM_E_QUOTA) {
        http_send_error(cx, HUB_ERR_QUOTA, "%s", bc->why);
    } else if (r < 0) {
        http_send_result_error(cx, r, "cannot store the upload");
    } else if (bc->step == 0 && cx->h->cluster) {
        bc->step = 2; /* the bytes go with the record */
        http_run(cx, record_run, blob_step_done, 0);
    } else if (bc->step == 0) {
        bc->step = 1;
        http_run(cx, write_run, blob_step_done, HUB_WORK_SNAPSHOT);
    } else if (bc->step == 1) {
        bc->step = 2;
        xfree(bc->bytes);
        bc->bytes = NULL;
        http_run(cx, record_run, blob_step_done, 0);
    } else {
        char etag[64];
        snprintf(etag, sizeof etag, "\"0x%llX\"", (unsigned long long)bc->f.updated_ms);
        http_add_header(cx, "ETag", etag);
        http_add_header(cx, "x-ms-request-server-encrypted", "false");
        http_add_header(cx, "x-ms-version", "2018-03-28");
        http_send_empty(cx, 201);
    }
}

static void blob_put(http_ctx *cx)
{
    blob_ctx *bc = (blob_ctx *)cx;
    cx->cleanup = blob_cleanup;
    bc->bytes = httpd_req_take_body(cx->req, &bc->len);
    if (!bc->bytes && bc->len) {
        http_send_result_error(cx, -ENOMEM, "cannot store the upload");
        return;
    }
    /* Refused without running while the disk is below its reserve (HUB_WORK_GROWS). */
    http_run(cx, check_run, blob_step_done, HUB_WORK_GROWS);
}

/* ---- the service side: /iotdm/files ---- */

typedef struct {
    http_ctx cx;
    char blob[HUB_BLOB_NAME_MAX];
    json_t *list;
    hub_file f;
    char *bytes;
    size_t len;
} service_ctx;

static void service_cleanup(http_ctx *cx)
{
    service_ctx *sc = (service_ctx *)cx;
    json_decref(sc->list);
    xfree(sc->bytes);
}

static bool list_one(void *ctx, const hub_file *f)
{
    static const char *const states[] = {"pending", "uploaded", "completed", "failed"};
    char created[32], updated[32];
    time_format_iso(f->created_ms, created, sizeof created);
    time_format_iso(f->updated_ms, updated, sizeof updated);
    json_array_append_new(
        ctx, json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:i, s:s}", "deviceId", f->device_id,
                       "blobName", f->blob_name, "correlationId", f->correlation_id, "state",
                       states[f->state], "blobSizeInBytes", (json_int_t)f->size, "createdTimeUtc",
                       created, "lastUpdatedTime", updated, "statusCode", f->status_code,
                       "statusDescription", f->status_description));
    return true;
}

static iotdm_result list_run(hub_work *w, hub_store *store)
{
    service_ctx *sc = (service_ctx *)w;
    sc->list = json_array();
    return sc->list ? hub_store_file_foreach(store, http_query_param(&sc->cx, "deviceId"), 1000,
                                             list_one, sc->list)
                    : -ENOMEM;
}

static void list_done(http_ctx *cx)
{
    service_ctx *sc = (service_ctx *)cx;
    if (cx->w.result < 0) {
        http_send_result_error(cx, cx->w.result, "cannot list uploads");
        return;
    }
    json_t *list = sc->list;
    sc->list = NULL;
    http_send_json(cx, 200, list);
}

/* Download (reader thread): the record, then the bytes into memory for the answer. */
static iotdm_result download_run(hub_work *w, hub_store *store)
{
    service_ctx *sc = (service_ctx *)w;
    iotdm_result r = hub_store_file_find(store, sc->cx.segments[2], sc->blob, &sc->f);
    if (r < 0)
        return r;
    if (sc->cx.h->cluster) {
        unsigned char *bytes = NULL;
        r = hub_store_file_bytes_get(store, sc->f.correlation_id, &bytes, &sc->len);
        sc->bytes = bytes ? (char *)bytes : (r == IOTDM_OK ? xmalloc(1) : NULL);
        return r == IOTDM_OK && !sc->bytes ? -ENOMEM : r;
    }
    char path[700];
    hub_files_path(sc->cx.h, sc->f.correlation_id, path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_size < 0) {
        if (fd >= 0)
            close(fd);
        return IOTDM_E_NOT_FOUND;
    }
    sc->bytes = xmalloc((size_t)st.st_size + 1);
    sc->len = (size_t)st.st_size;
    r = sc->bytes ? IOTDM_OK : -ENOMEM;
    for (size_t off = 0; r == IOTDM_OK && off < sc->len;) {
        ssize_t n = read(fd, sc->bytes + off, sc->len - off);
        if (n > 0)
            off += (size_t)n;
        else if (n == 0 || errno != EINTR)
            r = IOTDM_E_STORAGE;
    }
    close(fd);
    return r;
}

static void download_done(http_ctx *cx)
{
    service_ctx *sc = (service_ctx *)cx;
    if (cx->w.result == IOTDM_E_NOT_FOUND) {
        http_send_error(cx, HUB_ERR_NOT_FOUND, "no uploaded file with that name");
    } else if (cx->w.result < 0) {
        http_send_result_error(cx, cx->w.result, "cannot read the upload");
    } else {
        char *bytes = sc->bytes;
        sc->bytes = NULL;
        http_send_bytes_take(cx, 200, "application/octet-stream", bytes, sc->len);
    }
}

static iotdm_result delete_run(hub_work *w, hub_store *store)
{
    service_ctx *sc = (service_ctx *)w;
    iotdm_result r = hub_store_file_find(store, sc->cx.segments[2], sc->blob, &sc->f);
    if (r == IOTDM_OK)
        r = hub_store_file_delete(store, sc->f.correlation_id);
    if (r == IOTDM_OK) {
        char path[700];
        hub_files_path(sc->cx.h, sc->f.correlation_id, path, sizeof path);
        unlink(path);
    }
    return r;
}

static void delete_done(http_ctx *cx)
{
    if (cx->w.result == IOTDM_E_NOT_FOUND)
        http_send_error(cx, HUB_ERR_NOT_FOUND, "no uploaded file with that name");
    else if (cx->w.result < 0)
        http_send_result_error(cx, cx->w.result, "cannot delete the upload");
    else
        http_send_empty(cx, 204);
}

static void files_service(http_ctx *cx)
{
    service_ctx *sc = (service_ctx *)cx;
    cx->cleanup = service_cleanup;
    if (cx->nsegments == 2) {
        http_run(cx, list_run, list_done, HUB_WORK_SNAPSHOT);
        return;
    }
    if (!join_blob(cx, 2, sc->blob, sizeof sc->blob)) {
        http_send_error(cx, HUB_ERR_NOT_FOUND, "no uploaded file with that name");
        return;
    }
    if (cx->method == HTTPD_GET)
        http_run(cx, download_run, download_done, HUB_WORK_SNAPSHOT);
    else
        http_run(cx, delete_run, delete_done, 0);
}

const http_route http_blob_routes[] = {
    {HTTP_UPLOAD_CONTAINER "/**", HTTPD_PUT, HTTP_AUTH_CUSTOM, 0, HTTP_BODY_UPLOAD, false,
     http_files_blob_precheck, blob_put, sizeof(blob_ctx)},
    {"iotdm/files", HTTPD_GET, HTTP_AUTH_POLICY, HUB_RIGHT_SERVICE_CONNECT, HTTP_BODY_NONE, false,
     NULL, files_service, sizeof(service_ctx)},
    {"iotdm/files/**", HTTPD_GET | HTTPD_DELETE, HTTP_AUTH_POLICY, HUB_RIGHT_SERVICE_CONNECT,
     HTTP_BODY_NONE, false, NULL, files_service, sizeof(service_ctx)},
    {NULL, 0, 0, 0, 0, false, NULL, NULL, 0},
};
