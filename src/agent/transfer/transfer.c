/* Downloads and uploads with libcurl. Downloads land in an unlinked file whose SHA-256 is
 * computed while it is written, so nothing unchecked is ever handed to configd. */
#include "agent/transfer/transfer.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/sas.h"
#include "common/urlenc.h"

#define CONNECT_TIMEOUT_S  30
#define TRANSFER_TIMEOUT_S 600

typedef struct {
    int fd;
    size_t written, max;
    EVP_MD_CTX *sha;
    bool too_large;
} sink;

static size_t write_cb(char *data, size_t size, size_t n, void *arg)
{
    sink *s = arg;
    size_t len = size * n;
    if (s->written + len > s->max) {
        s->too_large = true;
        return 0; /* aborts the transfer */
    }
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(s->fd, data + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return 0;
        done += (size_t)w;
    }
    EVP_DigestUpdate(s->sha, data, len);
    s->written += len;
    return len;
}

static bool valid_sha256(const char *hex)
{
    if (!hex || strlen(hex) != 64)
        return false;
    for (const char *p = hex; *p; p++)
        if (!isxdigit((unsigned char)*p))
            return false;
    return true;
}

iotdm_result agent_download_into(void *ctx, const char *url, const char *sha256_hex,
                                 size_t max_bytes, int fd, char *err, size_t err_cap)
{
    agent_transfer *t = ctx;
    if (!url || strncmp(url, "https://", 8) != 0) {
        snprintf(err, err_cap, "the URL must start with https://");
        return IOTDM_E_MALFORMED;
    }
    if (!valid_sha256(sha256_hex)) {
        snprintf(err, err_cap, "sha256 must be 64 hex digits");
        return IOTDM_E_MALFORMED;
    }
    sink s = {fd, 0, max_bytes ? max_bytes : AGENT_DOWNLOAD_MAX, EVP_MD_CTX_new(), false};
    if (!s.sha) {
        snprintf(err, err_cap, "out of memory");
        return -ENOMEM;
    }
    EVP_DigestInit_ex(s.sha, EVP_sha256(), NULL);
    CURL *curl = curl_easy_init();
    char curl_err[CURL_ERROR_SIZE] = "";
    long status = 0;
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "https");
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(curl, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    if (t->download_ca_file && *t->download_ca_file)
        curl_easy_setopt(curl, CURLOPT_CAINFO, t->download_ca_file);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, (long)CONNECT_TIMEOUT_S);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, (long)TRANSFER_TIMEOUT_S);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(curl);
    unsigned char md[32];
    unsigned mdlen = 0;
    EVP_DigestFinal_ex(s.sha, md, &mdlen);
    EVP_MD_CTX_free(s.sha);
    iotdm_result r = IOTDM_OK;
    if (s.too_large) {
        snprintf(err, err_cap, "the file is larger than %zu bytes", s.max);
        r = IOTDM_E_TOO_LARGE;
    } else if (rc != CURLE_OK) {
        snprintf(err, err_cap, "cannot download %s: %s", url,
                 curl_err[0] ? curl_err : curl_easy_strerror(rc));
        r = -EIO;
    } else if (status != 200) {
        snprintf(err, err_cap, "cannot download %s: HTTP %ld", url, status);
        r = -EIO;
    } else {
        char got[65];
        for (unsigned i = 0; i < mdlen; i++)
            snprintf(got + 2 * i, 3, "%02x", md[i]);
        if (strcasecmp(got, sha256_hex) != 0) {
            snprintf(err, err_cap, "SHA-256 mismatch: expected %s, the download has %s", sha256_hex,
                     got);
            r = IOTDM_E_PRECONDITION;
        }
    }
    return r;
}

/* ---- uploads ---------------------------------------------------------------------------- */

typedef struct {
    char *data;
    size_t len;
} membuf;

static size_t collect_cb(char *data, size_t size, size_t n, void *arg)
{
    membuf *b = arg;
    size_t len = size * n;
    if (b->len + len > 64 * 1024)
        return 0; /* the hub's answers are small */
    char *p = realloc(b->data, b->len + len + 1);
    if (!p)
        return 0;
    memcpy(p + b->len, data, len);
    b->data = p;
    b->len += len;
    p[b->len] = '\0';
    return len;
}

/* One JSON request to the hub with the device's credentials; *out_json gets the answer. */
static iotdm_result hub_post(agent_transfer *t, const char *path, json_t *body, long expect,
                             json_t **out_json, char *err, size_t err_cap)
{
    char url[1024], auth[SAS_TOKEN_MAX + 32] = "", port[16] = "";
    if (t->hub_https_port && t->hub_https_port != 443)
        snprintf(port, sizeof port, ":%u", t->hub_https_port);
    snprintf(url, sizeof url, "https://%s%s%s", t->hub_host, port, path);
    char *text = json_dumps(body, JSON_COMPACT);
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    if (t->device_token) {
        snprintf(auth, sizeof auth, "Authorization: %s", t->device_token);
        hdrs = curl_slist_append(hdrs, auth);
        memset(auth, 0, sizeof auth);
    }
    membuf answer = {NULL, 0};
    CURL *curl = curl_easy_init();
    char curl_err[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, text);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(curl, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    if (t->hub_ca_file && *t->hub_ca_file)
        curl_easy_setopt(curl, CURLOPT_CAINFO, t->hub_ca_file);
    /* X.509: the hub authenticates the request by the certificate of the TLS connection. */
    if (t->cert_file) {
        curl_easy_setopt(curl, CURLOPT_SSLCERT, t->cert_file);
        curl_easy_setopt(curl, CURLOPT_SSLKEY, t->key_file);
    }
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect_cb);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &answer);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(curl);
    curl_slist_free_all(hdrs);
    free(text);
    iotdm_result r = IOTDM_OK;
    if (rc != CURLE_OK) {
        snprintf(err, err_cap, "cannot reach the hub: %s",
                 curl_err[0] ? curl_err : curl_easy_strerror(rc));
        r = -EIO;
    } else if (status != expect) {
        snprintf(err, err_cap, "the hub answered %ld: %.300s", status,
                 answer.data ? answer.data : "");
        r = status == 401 ? IOTDM_E_UNAUTHORIZED : status == 400 ? IOTDM_E_MALFORMED : -EIO;
    } else if (out_json) {
        json_error_t jerr;
        *out_json = answer.data ? json_loads(answer.data, 0, &jerr) : NULL;
        if (!*out_json) {
            snprintf(err, err_cap, "the hub's answer is not JSON");
            r = IOTDM_E_PROTOCOL;
        }
    }
    free(answer.data);
    return r;
}

/* PUT the file to https://{hostName}/{container}/{blob}{sas} (Azure Blob "Put Blob"). */
static iotdm_result put_blob(agent_transfer *t, int fd, json_t *info, char *err, size_t err_cap)
{
    const char *host = json_string_value(json_object_get(info, "hostName"));
    const char *container = json_string_value(json_object_get(info, "containerName"));
    const char *blob = json_string_value(json_object_get(info, "blobName"));
    const char *sas = json_string_value(json_object_get(info, "sasToken"));
    struct stat st;
    if (!host || !container || !blob || !sas || fstat(fd, &st) != 0) {
        snprintf(err, err_cap, "the hub's upload answer is incomplete");
        return IOTDM_E_PROTOCOL;
    }
    /* Each path segment of the blob name is percent-encoded; '/' separates them. */
    char url[4096], seg[1024 * 3 + 1];
    int n = snprintf(url, sizeof url, "https://%s/%s", host, container);
    for (const char *p = blob; *p && n > 0 && (size_t)n < sizeof url;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (urlenc_encode(p, len, seg, sizeof seg) < 0)
            break;
        n += snprintf(url + n, sizeof url - (size_t)n, "/%s", seg);
        p += len + (slash ? 1 : 0);
    }
    n += snprintf(url + n, sizeof url - (size_t)n, "%s", sas);
    FILE *f = fdopen(dup(fd), "rb");
    if (!f || (size_t)n >= sizeof url) {
        if (f)
            fclose(f);
        snprintf(err, err_cap, "cannot prepare the upload");
        return -EIO;
    }
    struct curl_slist *hdrs = curl_slist_append(NULL, "x-ms-blob-type: BlockBlob");
    CURL *curl = curl_easy_init();
    char curl_err[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(curl, CURLOPT_READDATA, f);
    curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t)st.st_size);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
    /* Our hub serves the blob endpoint itself (its CA); Azure hands out a storage account. */
    if (t->hub_ca_file && *t->hub_ca_file && strncmp(host, t->hub_host, strlen(t->hub_host)) == 0)
        curl_easy_setopt(curl, CURLOPT_CAINFO, t->hub_ca_file);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, (long)TRANSFER_TIMEOUT_S);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(curl);
    curl_slist_free_all(hdrs);
    fclose(f);
    if (rc != CURLE_OK || status != 201) {
        snprintf(err, err_cap, "the blob upload failed: %s",
                 rc != CURLE_OK ? (curl_err[0] ? curl_err : curl_easy_strerror(rc)) : "HTTP error");
        return -EIO;
    }
    return IOTDM_OK;
}

iotdm_result agent_upload(void *ctx, int fd, const char *blob_name, char *out_blob, size_t out_cap,
                          char *err, size_t err_cap)
{
    agent_transfer *t = ctx;
    if (!t->device_token == !t->cert_file || (t->cert_file && !t->key_file)) {
        snprintf(err, err_cap, "an upload needs a device SAS token or a certificate and its key");
        return IOTDM_E_MALFORMED;
    }
    char path[600];
    snprintf(path, sizeof path, "/devices/%s/files?api-version=2021-04-12", t->device_id);
    json_t *req = json_pack("{s:s}", "blobName", blob_name), *info = NULL;
    iotdm_result r = hub_post(t, path, req, 200, &info, err, err_cap);
    json_decref(req);
    if (r < 0)
        return r;
    char perr[300] = "";
    iotdm_result put = put_blob(t, fd, info, perr, sizeof perr);
    const char *cid = json_string_value(json_object_get(info, "correlationId"));
    snprintf(out_blob, out_cap, "%s", json_string_value(json_object_get(info, "blobName")));
    json_t *note = json_pack("{s:s, s:b, s:i, s:s}", "correlationId", cid ? cid : "", "isSuccess",
                             put == IOTDM_OK, "statusCode", put == IOTDM_OK ? 200 : 500,
                             "statusDescription", put == IOTDM_OK ? "uploaded" : perr);
    snprintf(path, sizeof path, "/devices/%s/files/notifications?api-version=2021-04-12",
             t->device_id);
    /* The notification is sent either way: the hub (and Azure) then knows the outcome. */
    r = hub_post(t, path, note, 204, NULL, err, err_cap);
    json_decref(note);
    json_decref(info);
    if (put < 0) {
        snprintf(err, err_cap, "%s", perr);
        return put;
    }
    return r;
}
