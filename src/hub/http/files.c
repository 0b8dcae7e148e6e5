/* File upload (docs/protocol.md §8.12): a device asks for a SAS URI, PUTs the blob to the hub's
 * own blob endpoint (/iotdm-files/<deviceId>/<name>), and notifies completion. The service lists,
 * downloads and deletes uploads under /iotdm/files (our extension: Azure hands these to a storage
 * account). The bytes are kept in DATA/files/<correlationId>; the names never touch the disk. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/base64.h"
#include "common/log.h"
#include "common/sas.h"
#include "common/timeutil.h"
#include "common/urlenc.h"
#include "hub/events.h"
#include "hub/files.h"
#include "hub/http/internal.h"
#include "hub/net/tls.h"
#include "proto/azure_topics.h"

#define MAX_NAME 1024

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
    if (!hub_policy_find(h, HUB_UPLOAD_KEY_POLICY, &key))
        return false;
    char msg[2 * MAX_NAME];
    int n = snprintf(msg, sizeof msg, "%s\n%s\n%lld", cid, blob, (long long)se);
    bool ok =
        n > 0 && (size_t)n < sizeof msg && sas_sign(key.primary_key, msg, (size_t)n, out) == 0;
    OPENSSL_cleanse(&key, sizeof key);
    return ok;
}

/* ---- device authentication ---- */

/* What the headers tell about the device's credentials: a SAS token checked as far as it can be
 * without the device's key, or a client certificate's thumbprints. */
typedef struct {
    http_ctx cx;
    const char *device_id;
    bool policy_ok; /* a policy SAS with DeviceConnect: fully checked already */
    char *sas;      /* a device SAS, to check against the device's keys */
    char sha1[41], sha256[65];
    /* request */
    json_t *body;
    const char *path_cid;
    bool notify;
    /* results */
    hub_file f;
    char why[256];
    iotdm_result auth;
    int64_t se;
} device_files_ctx;

static void files_cleanup(http_ctx *cx)
{
    device_files_ctx *fc = (device_files_ctx *)cx;
    if (fc->sas)
        xfree_secret(fc->sas, strlen(fc->sas) + 1);
    json_decref(fc->body);
}

/* Device endpoints authenticate like devices do, and only for the device named in the path: a
 * SAS token in the Authorization header, or without one the TLS client certificate of a
 * self-signed X.509 device (docs/protocol.md §2.9: the thumbprint registered for it, as at MQTT
 * CONNECT). Everything that needs no key is checked here, before the body. */
bool http_files_device_precheck(http_ctx *cx)
{
    device_files_ctx *fc = (device_files_ctx *)cx;
    fc->device_id = cx->segments[1];
    const char *auth = http_header(cx, "Authorization");
    sas_token tok;
    char resource[512];
    snprintf(resource, sizeof resource, "%s/devices/%s", cx->h->cfg.hostname, fc->device_id);
    const char *why = NULL;
    if (!az_valid_device_id(fc->device_id, strlen(fc->device_id))) {
        why = "the device id is not valid";
    } else if (auth) {
        if (sas_parse(auth, strlen(auth), &tok) < 0 || tok.expiry < time_now_ms() / 1000 ||
            !sas_resource_covers(&tok, resource)) {
            why = "the SAS token is not valid for this device";
        } else if (tok.skn) {
            char name[HUB_ID_MAX];
            hub_policy p;
            fc->policy_ok = urlenc_decode(tok.skn, tok.skn_len, name, sizeof name, false) > 0 &&
                            hub_policy_find(cx->h, name, &p) &&
                            (p.rights & HUB_RIGHT_DEVICE_CONNECT) &&
                            (sas_signature_valid(&tok, p.primary_key) ||
                             sas_signature_valid(&tok, p.secondary_key));
            OPENSSL_cleanse(&p, sizeof p);
            if (!fc->policy_ok)
                why = "the SAS token is not valid for this device";
        } else if (!(fc->sas = xstrdup(auth))) {
            why = "out of memory";
        }
    } else if (!hub_tls_peer_thumbprints(http_client_ssl(cx), fc->sha1, fc->sha256)) {
        why = "no SAS token and no client certificate";
    }
    if (why) {
        http_send_error(cx, HUB_ERR_UNAUTHORIZED, "the device credentials are not valid: %s", why);
        return false;
    }
    return true;
}

/* In the unit: the rest of the check, with the device's record. An unknown or disabled device
 * gets the same answer as a wrong key: the 401 tells no one what exists. */
static bool device_authorized(device_files_ctx *fc, hub_store *store)
{
    if (fc->policy_ok)
        return true;
    hub_device d;
    bool ok = false;
    snprintf(fc->why, sizeof fc->why, "%s",
             fc->sas ? "the SAS token is not valid for this device"
                     : "the client certificate is not this device's");
    if (hub_store_device_get(store, fc->device_id, &d) == IOTDM_OK && d.enabled) {
        sas_token tok;
        if (fc->sas)
            ok = sas_parse(fc->sas, strlen(fc->sas), &tok) == IOTDM_OK &&
                 ((d.primary_key[0] && sas_signature_valid(&tok, d.primary_key)) ||
                  (d.secondary_key[0] && sas_signature_valid(&tok, d.secondary_key)));
        else
            ok = d.auth_type == HUB_AUTH_SELF_SIGNED &&
                 hub_tls_thumbprints_match(fc->sha1, fc->sha256, d.primary_thumbprint,
                                           d.secondary_thumbprint);
    }
    OPENSSL_cleanse(&d, sizeof d);
    return ok;
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

/* ---- POST /devices/{id}/files: a SAS URI for a new upload ---- */

static iotdm_result sas_uri_run(hub_work *w, hub_store *store)
{
    device_files_ctx *fc = (device_files_ctx *)w;
    hub *h = fc->cx.h;
    if (!device_authorized(fc, store))
        return IOTDM_E_UNAUTHORIZED;
    int64_t now = time_now_ms();
    if (hub_store_file_active(store, fc->device_id, now - HUB_UPLOAD_SAS_TTL_S * 1000LL) >=
        HUB_UPLOAD_MAX_ACTIVE) {
        snprintf(fc->why, sizeof fc->why, "device '%s' already has %d uploads in progress",
                 fc->device_id, HUB_UPLOAD_MAX_ACTIVE);
        return IOTDM_E_THROTTLED;
    }
    iotdm_result r =
        hub_files_quota_check(h, store, fc->device_id, 0, true, fc->why, sizeof fc->why);
    if (r < 0)
        return r;
    new_correlation_id(fc->f.correlation_id, sizeof fc->f.correlation_id);
    snprintf(fc->f.device_id, sizeof fc->f.device_id, "%s", fc->device_id);
    fc->f.state = HUB_FILE_PENDING;
    fc->f.created_ms = fc->f.updated_ms = now;
    fc->se = now / 1000 + HUB_UPLOAD_SAS_TTL_S;
    return hub_store_file_create(store, &fc->f);
}

static void answer_unit_error(device_files_ctx *fc, const char *what)
{
    http_ctx *cx = &fc->cx;
    iotdm_result r = cx->w.result;
    if (r == IOTDM_E_UNAUTHORIZED)
        http_send_error(cx, HUB_ERR_UNAUTHORIZED, "the device credentials are not valid: %s",
                        fc->why);
    else if (r == IOTDM_E_QUOTA)
        http_send_error(cx, HUB_ERR_QUOTA, "%s", fc->why);
    else if (r == IOTDM_E_THROTTLED)
        http_send_error(cx, HUB_ERR_THROTTLED, "%s", fc->why);
    else if (r == IOTDM_E_NOT_FOUND)
        http_send_error(cx, HUB_ERR_NOT_FOUND, "no upload with that correlationId");
    else
        http_send_result_error(cx, r, what);
}

static void sas_uri_done(http_ctx *cx)
{
    device_files_ctx *fc = (device_files_ctx *)cx;
    char sig[SAS_SIG_LEN + 1], sig_enc[3 * SAS_SIG_LEN + 1], sas[512];
    if (cx->w.result < 0) {
        answer_unit_error(fc, "cannot start the upload");
        return;
    }
    if (!http_upload_signature(cx->h, fc->f.correlation_id, fc->f.blob_name, fc->se, sig)) {
        http_send_result_error(cx, IOTDM_E_INTERNAL, "cannot start the upload");
        return;
    }
    httpd_req_authenticated(cx->req);
    urlenc_encode(sig, strlen(sig), sig_enc, sizeof sig_enc);
    snprintf(sas, sizeof sas, "?sv=2018-03-28&sr=b&sp=rw&se=%lld&cid=%s&sig=%s", (long long)fc->se,
             fc->f.correlation_id, sig_enc);
    char host[300];
    if (cx->h->cfg.https_port == 443)
        snprintf(host, sizeof host, "%s", cx->h->cfg.hostname);
    else
        snprintf(host, sizeof host, "%s:%u", cx->h->cfg.hostname, cx->h->cfg.https_port);
    http_send_json(cx, 200,
                   json_pack("{s:s, s:s, s:s, s:s, s:s}", "correlationId", fc->f.correlation_id,
                             "hostName", host, "containerName", HTTP_UPLOAD_CONTAINER, "blobName",
                             fc->f.blob_name, "sasToken", sas));
}

static void request_sas_uri(device_files_ctx *fc)
{
    http_ctx *cx = &fc->cx;
    json_t *body = http_body_json(cx);
    if (!body)
        return;
    const char *name = json_string_value(json_object_get(body, "blobName"));
    if (!name || !valid_blob_name(name)) {
        json_decref(body);
        http_send_error(cx, HUB_ERR_ARGUMENT_INVALID,
                        "blobName must be 1 to 1024 printable characters without '.' or '..' "
                        "segments");
        return;
    }
    snprintf(fc->f.blob_name, sizeof fc->f.blob_name, "%s/%s", fc->device_id, name);
    json_decref(body);
    http_run(cx, sas_uri_run, sas_uri_done, HUB_WORK_GROWS);
}

/* ---- the two notification forms (docs/protocol.md §8.12): correlationId in the body, or in
 * the path (Node) ---- */

static iotdm_result notify_run(hub_work *w, hub_store *store)
{
    device_files_ctx *fc = (device_files_ctx *)w;
    if (!device_authorized(fc, store))
        return IOTDM_E_UNAUTHORIZED;
    const char *cid =
        fc->path_cid ? fc->path_cid : json_string_value(json_object_get(fc->body, "correlationId"));
    hub_file *f = &fc->f;
    iotdm_result r = cid ? hub_store_file_get(store, cid, f) : IOTDM_E_NOT_FOUND;
    if (r == IOTDM_OK && strcmp(f->device_id, fc->device_id) != 0)
        r = IOTDM_E_NOT_FOUND;
    if (r < 0)
        return r;
    bool success = json_is_true(json_object_get(fc->body, "isSuccess"));
    f->state = success && f->state == HUB_FILE_UPLOADED ? HUB_FILE_DONE : HUB_FILE_FAILED;
    f->status_code = (int)json_integer_value(json_object_get(fc->body, "statusCode"));
    const char *desc = json_string_value(json_object_get(fc->body, "statusDescription"));
    snprintf(f->status_description, sizeof f->status_description, "%s", desc ? desc : "");
    f->updated_ms = time_now_ms();
    r = hub_store_file_update(store, f);
    if (r == IOTDM_OK) {
        json_t *ev = json_pack("{s:s, s:s, s:s, s:b, s:I}", "deviceId", f->device_id, "blobName",
                               f->blob_name, "correlationId", f->correlation_id, "isSuccess",
                               f->state == HUB_FILE_DONE, "blobSizeInBytes", (json_int_t)f->size);
        hub_events_file(store, f->device_id, ev);
    }
    return r;
}

static void notify_done(http_ctx *cx)
{
    device_files_ctx *fc = (device_files_ctx *)cx;
    if (cx->w.result < 0) {
        answer_unit_error(fc, "cannot record the notification");
        return;
    }
    httpd_req_authenticated(cx->req);
    http_send_empty(cx, 204);
}

static void files_device(http_ctx *cx)
{
    device_files_ctx *fc = (device_files_ctx *)cx;
    cx->cleanup = files_cleanup;
    if (cx->nsegments == 3) {
        request_sas_uri(fc);
        return;
    }
    fc->body = http_body_json(cx);
    if (!fc->body)
        return;
    fc->path_cid = cx->nsegments == 5 ? cx->segments[4] : NULL;
    http_run(cx, notify_run, notify_done, 0);
}

const http_route http_files_routes[] = {
    {"devices/*/files", HTTPD_POST, HTTP_AUTH_CUSTOM, 0, HTTP_BODY_SMALL, false,
     http_files_device_precheck, files_device, sizeof(device_files_ctx)},
    {"devices/*/files/notifications", HTTPD_POST, HTTP_AUTH_CUSTOM, 0, HTTP_BODY_SMALL, false,
     http_files_device_precheck, files_device, sizeof(device_files_ctx)},
    {"devices/*/files/notifications/*", HTTPD_POST, HTTP_AUTH_CUSTOM, 0, HTTP_BODY_SMALL, false,
     http_files_device_precheck, files_device, sizeof(device_files_ctx)},
    {NULL, 0, 0, 0, 0, false, NULL, NULL, 0},
};
