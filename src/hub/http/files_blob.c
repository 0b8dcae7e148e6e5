/* The hub's blob endpoint for device uploads: PUT /iotdm-files/<deviceId>/<name>?…&sig=… (Azure
 * Blob "Put Blob", x-ms-blob-type: BlockBlob), and the service's /iotdm/files listing, download
 * and delete. */
#include <errno.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/atomic_file.h"
#include "common/sas.h"
#include "common/timeutil.h"
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

/* Writes the request body to DATA/files/<cid>, durably and all or nothing. */
static iotdm_result store_bytes(http_ctx *cx, const char *cid, int64_t *out_size)
{
    char dir[600], final[700];
    snprintf(dir, sizeof dir, "%s/files", cx->h->cfg.data_dir);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return -errno;
    snprintf(final, sizeof final, "%s/%s", dir, cid);
    struct evbuffer *in = evhttp_request_get_input_buffer(cx->req);
    size_t len = evbuffer_get_length(in);
    *out_size = (int64_t)len;
    const unsigned char *data = evbuffer_pullup(in, -1); /* NULL for an empty body */
    return atomic_file_write(final, data ? (const void *)data : "", len, 0600, NULL, 0) < 0
               ? IOTDM_E_STORAGE
               : IOTDM_OK;
}

void http_files_blob_put(http_ctx *cx)
{
    char blob[HUB_BLOB_NAME_MAX];
    const char *cid = http_query_param(cx, "cid"), *sig = http_query_param(cx, "sig");
    const char *se_text = http_query_param(cx, "se"), *type = http_header(cx, "x-ms-blob-type");
    char *end = NULL;
    long long se = se_text ? strtoll(se_text, &end, 10) : 0;
    hub_file f;
    char expected[SAS_SIG_LEN + 1];
    if (cx->method != EVHTTP_REQ_PUT || !join_blob(cx, 1, blob, sizeof blob)) {
        http_send_error(cx, HUB_ERR_NOT_FOUND, "uploads are PUT /iotdm-files/<deviceId>/<name>");
        return;
    }
    bool ok = cid && sig && se_text && !*end && se >= time_now_ms() / 1000 &&
              strlen(sig) == SAS_SIG_LEN && hub_store_file_get(cx->h->store, cid, &f) == 0 &&
              !strcmp(f.blob_name, blob) && f.state <= HUB_FILE_UPLOADED &&
              http_upload_signature(cx->h, cid, blob, se, expected) &&
              CRYPTO_memcmp(expected, sig, SAS_SIG_LEN) == 0;
    if (!ok) {
        http_send_error(cx, HUB_ERR_UNAUTHORIZED,
                        "the upload SAS is not valid for this blob, or has expired");
        return;
    }
    if (type && strcmp(type, "BlockBlob") != 0) {
        http_send_error(cx, HUB_ERR_ARGUMENT_INVALID, "only block blobs are supported");
        return;
    }
    iotdm_result r = store_bytes(cx, cid, &f.size);
    if (r == IOTDM_OK) {
        f.state = HUB_FILE_UPLOADED;
        f.updated_ms = time_now_ms();
        r = hub_store_file_update(cx->h->store, &f);
    }
    if (r == IOTDM_OK)
        r = hub_commit_now(cx->h);
    if (r < 0) {
        http_send_result_error(cx, r, "cannot store the upload");
        return;
    }
    struct evkeyvalq *out = evhttp_request_get_output_headers(cx->req);
    char etag[64];
    snprintf(etag, sizeof etag, "\"0x%llX\"", (unsigned long long)f.updated_ms);
    evhttp_add_header(out, "ETag", etag);
    evhttp_add_header(out, "x-ms-request-server-encrypted", "false");
    evhttp_add_header(out, "x-ms-version", "2018-03-28");
    http_send_empty(cx, 201);
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

static void download(http_ctx *cx, const hub_file *f)
{
    char path[700];
    snprintf(path, sizeof path, "%s/files/%s", cx->h->cfg.data_dir, f->correlation_id);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0)
            close(fd);
        http_send_error(cx, HUB_ERR_NOT_FOUND, "the upload's bytes are missing");
        return;
    }
    struct evbuffer *out = evbuffer_new();
    evbuffer_add_file(out, fd, 0, st.st_size);
    evhttp_add_header(evhttp_request_get_output_headers(cx->req), "Content-Type",
                      "application/octet-stream");
    evhttp_send_reply(cx->req, 200, NULL, out);
    evbuffer_free(out);
}

void http_files_service(http_ctx *cx)
{
    if (!http_authorize(cx, HUB_RIGHT_SERVICE_CONNECT))
        return;
    char blob[HUB_BLOB_NAME_MAX];
    if (cx->nsegments == 2 && cx->method == EVHTTP_REQ_GET) {
        json_t *list = json_array();
        iotdm_result r = hub_store_file_foreach(cx->h->store, http_query_param(cx, "deviceId"),
                                                1000, list_one, list);
        if (r < 0) {
            json_decref(list);
            http_send_result_error(cx, r, "cannot list uploads");
        } else {
            http_send_json(cx, 200, list);
        }
        return;
    }
    hub_file f;
    if (!join_blob(cx, 2, blob, sizeof blob) ||
        hub_store_file_find(cx->h->store, cx->segments[2], blob, &f) < 0) {
        http_send_error(cx, HUB_ERR_NOT_FOUND, "no uploaded file with that name");
        return;
    }
    if (cx->method == EVHTTP_REQ_GET) {
        download(cx, &f);
    } else if (cx->method == EVHTTP_REQ_DELETE) {
        char path[700];
        snprintf(path, sizeof path, "%s/files/%s", cx->h->cfg.data_dir, f.correlation_id);
        iotdm_result r = hub_store_file_delete(cx->h->store, f.correlation_id);
        if (r == IOTDM_OK)
            r = hub_commit_now(cx->h);
        if (r == IOTDM_OK)
            unlink(path);
        if (r < 0)
            http_send_result_error(cx, r, "cannot delete the upload");
        else
            http_send_empty(cx, 204);
    } else {
        http_send_error(cx, HUB_ERR_NOT_FOUND, "use GET or DELETE");
    }
}
