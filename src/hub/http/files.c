/* File upload (azure-protocols.md §4.8): a device asks for a SAS URI, PUTs the blob to the hub's
 * own blob endpoint (/iotdm-files/<deviceId>/<name>), and notifies completion. The service lists,
 * downloads and deletes uploads under /iotdm/files (our extension: Azure hands these to a storage
 * account). The bytes are kept in DATA/files/<correlationId>; the names never touch the disk. */
#include <errno.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/base64.h"
#include "common/log.h"
#include "common/sas.h"
#include "common/timeutil.h"
#include "common/urlenc.h"
#include "hub/events.h"
#include "hub/http/internal.h"
#include "hub/net/tls.h"

#define UPLOAD_SAS_TTL_S   3600
#define MAX_ACTIVE_UPLOADS 10 /* Azure: 10 concurrent file uploads per device */
#define MAX_NAME           1024

/* A blob name: 1-1024 printable characters, no "." or ".." segment, no leading '/', no '\'. */
static bool valid_blob_name(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > MAX_NAME || name[0] == '/' || name[len - 1] == '/')
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == '\\' || name[i] == 0x7f)
            return false;
    char copy[MAX_NAME + 1];
    snprintf(copy, sizeof copy, "%s", name);
    char *save = NULL;
    for (char *seg = strtok_r(copy, "/", &save); seg; seg = strtok_r(NULL, "/", &save))
        if (!strcmp(seg, ".") || !strcmp(seg, ".."))
            return false;
    return !strstr(name, "//");
}

/* The upload SAS signature: HMAC with the hub's internal upload key over what it allows. */
bool http_upload_signature(hub *h, const char *cid, const char *blob, int64_t se,
                           char out[SAS_SIG_LEN + 1])
{
    hub_policy key;
    if (hub_store_policy_get(h->store, HUB_UPLOAD_KEY_POLICY, &key) < 0)
        return false;
    char msg[2 * MAX_NAME];
    int n = snprintf(msg, sizeof msg, "%s\n%s\n%lld", cid, blob, (long long)se);
    return n > 0 && (size_t)n < sizeof msg && sas_sign(key.primary_key, msg, (size_t)n, out) == 0;
}

/* A SAS token for the device (§1.4): the device's own key, or a policy with DeviceConnect, with
 * a token covering {host}/devices/{id}. */
static bool device_sas_valid(http_ctx *cx, const hub_device *d, const char *auth)
{
    sas_token tok;
    char resource[512];
    snprintf(resource, sizeof resource, "%s/devices/%s", cx->h->cfg.hostname, d->device_id);
    if (sas_parse(auth, strlen(auth), &tok) < 0 || tok.expiry < time_now_ms() / 1000 ||
        !sas_resource_covers(&tok, resource))
        return false;
    if (tok.skn) {
        char name[HUB_ID_MAX];
        hub_policy p;
        return urlenc_decode(tok.skn, tok.skn_len, name, sizeof name, false) > 0 &&
               hub_store_policy_get(cx->h->store, name, &p) == 0 &&
               (p.rights & HUB_RIGHT_DEVICE_CONNECT) &&
               (sas_signature_valid(&tok, p.primary_key) ||
                sas_signature_valid(&tok, p.secondary_key));
    }
    return (d->primary_key[0] && sas_signature_valid(&tok, d->primary_key)) ||
           (d->secondary_key[0] && sas_signature_valid(&tok, d->secondary_key));
}

/* Device endpoints authenticate like devices do, and only for the device named in the path: a
 * SAS token in the Authorization header, or without one the TLS client certificate of a
 * self-signed X.509 device (§1.5: the thumbprint registered for it, as at MQTT CONNECT), as Azure
 * IoT Hub accepts on these endpoints. The HTTPS listener asks every client for a certificate. */
static bool authorize_device(http_ctx *cx, const char *device_id)
{
    const char *auth = http_header(cx, "Authorization");
    SSL *ssl = http_client_ssl(cx);
    hub_device d;
    const char *why = NULL;
    /* An unknown or disabled device gets the same answer: the 401 tells no one what exists. */
    bool known = hub_store_device_get(cx->h->store, device_id, &d) == 0 && d.enabled;
    if (!auth && !(ssl && SSL_get0_peer_certificate(ssl)))
        why = "no SAS token and no client certificate";
    else if (auth && !(known && device_sas_valid(cx, &d, auth)))
        why = "the SAS token is not valid for this device";
    else if (!auth && !(known && d.auth_type == HUB_AUTH_SELF_SIGNED &&
                        hub_tls_peer_matches(ssl, d.primary_thumbprint, d.secondary_thumbprint)))
        why = "the client certificate is not this device's";
    if (why)
        http_send_error(cx, HUB_ERR_UNAUTHORIZED, "the device credentials are not valid: %s", why);
    return !why;
}

static void new_correlation_id(char *out, size_t cap)
{
    unsigned char raw[24];
    RAND_bytes(raw, sizeof raw);
    char b64[40];
    base64_encode(raw, sizeof raw, b64, sizeof b64);
    /* URL-safe: it travels in paths and query strings. */
    for (char *p = b64; *p; p++)
        *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    snprintf(out, cap, "%s", b64);
}

static void request_sas_uri(http_ctx *cx, const char *device_id)
{
    json_t *body = http_body_json(cx);
    if (!body)
        return;
    const char *name = json_string_value(json_object_get(body, "blobName"));
    hub_file f;
    memset(&f, 0, sizeof f);
    if (!name || !valid_blob_name(name)) {
        json_decref(body);
        http_send_error(cx, HUB_ERR_ARGUMENT_INVALID,
                        "blobName must be 1 to 1024 printable characters without '.' or '..' "
                        "segments");
        return;
    }
    snprintf(f.blob_name, sizeof f.blob_name, "%s/%s", device_id, name);
    json_decref(body);
    int64_t now = time_now_ms();
    if (hub_store_file_active(cx->h->store, device_id, now - UPLOAD_SAS_TTL_S * 1000LL) >=
        MAX_ACTIVE_UPLOADS) {
        http_send_error(cx, HUB_ERR_THROTTLED, "device '%s' already has %d uploads in progress",
                        device_id, MAX_ACTIVE_UPLOADS);
        return;
    }
    new_correlation_id(f.correlation_id, sizeof f.correlation_id);
    snprintf(f.device_id, sizeof f.device_id, "%s", device_id);
    f.state = HUB_FILE_PENDING;
    f.created_ms = f.updated_ms = now;
    int64_t se = now / 1000 + UPLOAD_SAS_TTL_S;
    char sig[SAS_SIG_LEN + 1], sig_enc[3 * SAS_SIG_LEN + 1], sas[512];
    iotdm_result r = hub_store_file_create(cx->h->store, &f);
    if (r == IOTDM_OK)
        r = hub_commit_now(cx->h);
    if (r < 0 || !http_upload_signature(cx->h, f.correlation_id, f.blob_name, se, sig)) {
        http_send_result_error(cx, r < 0 ? r : IOTDM_E_INTERNAL, "cannot start the upload");
        return;
    }
    urlenc_encode(sig, strlen(sig), sig_enc, sizeof sig_enc);
    snprintf(sas, sizeof sas, "?sv=2018-03-28&sr=b&sp=rw&se=%lld&cid=%s&sig=%s", (long long)se,
             f.correlation_id, sig_enc);
    char host[300];
    if (cx->h->cfg.https_port == 443)
        snprintf(host, sizeof host, "%s", cx->h->cfg.hostname);
    else
        snprintf(host, sizeof host, "%s:%u", cx->h->cfg.hostname, cx->h->cfg.https_port);
    http_send_json(cx, 200,
                   json_pack("{s:s, s:s, s:s, s:s, s:s}", "correlationId", f.correlation_id,
                             "hostName", host, "containerName", HTTP_UPLOAD_CONTAINER, "blobName",
                             f.blob_name, "sasToken", sas));
}

/* The two notification forms (§4.8): correlationId in the body, or in the path (Node). */
static void notify(http_ctx *cx, const char *device_id, const char *path_cid)
{
    json_t *body = http_body_json(cx);
    if (!body)
        return;
    const char *cid =
        path_cid ? path_cid : json_string_value(json_object_get(body, "correlationId"));
    hub_file f;
    iotdm_result r = cid ? hub_store_file_get(cx->h->store, cid, &f) : IOTDM_E_NOT_FOUND;
    if (r == IOTDM_OK && strcmp(f.device_id, device_id) != 0)
        r = IOTDM_E_NOT_FOUND;
    if (r < 0) {
        json_decref(body);
        http_send_error(cx, HUB_ERR_NOT_FOUND, "no upload with that correlationId");
        return;
    }
    bool success = json_is_true(json_object_get(body, "isSuccess"));
    f.state = success && f.state == HUB_FILE_UPLOADED ? HUB_FILE_DONE : HUB_FILE_FAILED;
    f.status_code = (int)json_integer_value(json_object_get(body, "statusCode"));
    const char *desc = json_string_value(json_object_get(body, "statusDescription"));
    snprintf(f.status_description, sizeof f.status_description, "%s", desc ? desc : "");
    f.updated_ms = time_now_ms();
    json_decref(body);
    r = hub_store_file_update(cx->h->store, &f);
    if (r == IOTDM_OK) {
        json_t *ev = json_pack("{s:s, s:s, s:s, s:b, s:I}", "deviceId", f.device_id, "blobName",
                               f.blob_name, "correlationId", f.correlation_id, "isSuccess",
                               f.state == HUB_FILE_DONE, "blobSizeInBytes", (json_int_t)f.size);
        hub_events_file(cx->h->events, f.device_id, ev);
        r = hub_commit_now(cx->h);
    }
    if (r < 0)
        http_send_result_error(cx, r, "cannot record the notification");
    else
        http_send_empty(cx, 204);
}

void http_files_device(http_ctx *cx)
{
    const char *device_id = cx->segments[1];
    if (cx->method != EVHTTP_REQ_POST) {
        http_send_error(cx, HUB_ERR_NOT_FOUND, "no such resource");
        return;
    }
    if (!authorize_device(cx, device_id))
        return;
    if (cx->nsegments == 3)
        request_sas_uri(cx, device_id);
    else if (cx->nsegments >= 4 && !strcmp(cx->segments[3], "notifications"))
        notify(cx, device_id, cx->nsegments == 5 ? cx->segments[4] : NULL);
    else
        http_send_error(cx, HUB_ERR_NOT_FOUND, "no such resource");
}
