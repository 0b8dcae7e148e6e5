/* DPS registration with TPM attestation over HTTPS: the challenge (401 + activation blob), the
 * authorized register, operation polling, and the hub key imported into the slot. */
#include "limpet/dps.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/base64.h"
#include "common/urlenc.h"
#include "proto/dps.h"

#define DPS_API         "api-version=2019-03-31"
#define DPS_BODY_MAX    (64 * 1024)
#define DPS_RETRY_MAX_S 10

typedef struct {
    char *data;
    size_t len;
    long retry_after;
} http_reply;

static iotdm_result failf(limpet_dps_result *out, iotdm_result r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static iotdm_result failf(limpet_dps_result *out, iotdm_result r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->error, sizeof out->error, fmt, ap);
    va_end(ap);
    return r;
}

static size_t on_body(char *p, size_t size, size_t n, void *ctx)
{
    http_reply *r = ctx;
    size_t add = size * n;
    if (r->len + add > DPS_BODY_MAX)
        return 0;
    char *d = realloc(r->data, r->len + add + 1);
    if (!d)
        return 0;
    memcpy(d + r->len, p, add);
    r->data = d;
    r->len += add;
    d[r->len] = '\0';
    return add;
}

static size_t on_header(char *p, size_t size, size_t n, void *ctx)
{
    http_reply *r = ctx;
    if (size * n > 12 && !strncasecmp(p, "retry-after:", 12))
        r->retry_after = strtol(p + 12, NULL, 10);
    return size * n;
}

/* One request; returns the HTTP status (negative on a transport error) and the parsed JSON. */
static long http_call(const limpet_dps_options *o, const char *method, const char *url,
                      const char *body, const char *auth, json_t **out_json, long *retry_after,
                      limpet_dps_result *out)
{
    CURL *h = curl_easy_init();
    http_reply reply = {0};
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json; "
                                                      "charset=utf-8");
    hdrs = curl_slist_append(hdrs, "Accept: application/json");
    char auth_hdr[1200];
    if (auth) {
        snprintf(auth_hdr, sizeof auth_hdr, "Authorization: %s", auth);
        hdrs = curl_slist_append(hdrs, auth_hdr);
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (body)
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &reply);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &reply);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
    if (o->ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, o->ca_file);
    CURLcode cc = curl_easy_perform(h);
    long status = -1;
    if (cc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    else
        failf(out, IOTDM_E_NOT_ONLINE, "%s %s: %s", method, url, curl_easy_strerror(cc));
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    *out_json = reply.data ? json_loads(reply.data, 0, NULL) : NULL;
    *retry_after = reply.retry_after;
    free(reply.data);
    return status;
}

static iotdm_result activate_b64(limpet_tpm *tpm, unsigned slot, const char *b64,
                                 limpet_dps_result *out)
{
    size_t cap = strlen(b64);
    uint8_t *blob = malloc(cap + 1);
    long n = blob ? base64_decode(b64, cap, blob, cap + 1) : -1;
    iotdm_result r = n > 0 ? limpet_activate(tpm, slot, blob, (size_t)n) : IOTDM_E_MALFORMED;
    free(blob);
    if (r < 0)
        failf(out, r, "activating the authentication key: %s",
              n > 0 ? limpet_tpm_error(tpm) : "not base64");
    return r;
}

/* "SharedAccessSignature sr=<urlenc(scope/registrations/id)>&sig=…&se=…&skn=registration",
 * signed inside the TPM with the key the challenge delivered. */
static iotdm_result dps_sas(limpet_tpm *tpm, const limpet_dps_options *o, const char *reg_id,
                            char *token, size_t cap)
{
    char res[512], sr[1536], to_sign[1600], sig[64], sig_enc[192];
    snprintf(res, sizeof res, "%s/registrations/%s", o->id_scope, reg_id);
    if (urlenc_encode(res, strlen(res), sr, sizeof sr) < 0)
        return IOTDM_E_TOO_LARGE;
    long long se = (long long)time(NULL) + 3600;
    int n = snprintf(to_sign, sizeof to_sign, "%s\n%lld", sr, se);
    iotdm_result r = limpet_slot_sign_b64(tpm, o->slot, to_sign, (size_t)n, sig, sizeof sig);
    if (r < 0)
        return r;
    urlenc_encode(sig, strlen(sig), sig_enc, sizeof sig_enc);
    n = snprintf(token, cap, "SharedAccessSignature sr=%s&sig=%s&se=%lld&skn=registration", sr,
                 sig_enc, se);
    return n < 0 || (size_t)n >= cap ? IOTDM_E_TOO_LARGE : IOTDM_OK;
}

static const char *jstr(json_t *j, const char *path1, const char *path2)
{
    json_t *v = json_object_get(j, path1);
    if (path2)
        v = json_object_get(v, path2);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* From the authorized register on: what each answer means is decided by az_dps_read_reply (the
 * same rules as libiotdm's MQTT client); limpet polls the operation, repeats a request DPS was too
 * busy for, and stops at an assignment (*io_j, owned) or a refusal (the reason in out). *io_j is
 * the register's answer on entry. */
static iotdm_result await_assignment(const limpet_dps_options *o, const char *base,
                                     const char *body, const char *token, json_t **io_j,
                                     long status, long retry, time_t deadline,
                                     limpet_dps_result *out)
{
    json_t *j = *io_j;
    iotdm_result r;
    char url[1664], why[384], op[AZ_DPS_OPERATION_ID_MAX * 3 + 1];
    const char *method = "PUT"; /* the register; the operation status once there is one */
    snprintf(url, sizeof url, "%s/register?" DPS_API, base);
    for (;;) {
        if (status < 0) {
            r = IOTDM_E_NOT_ONLINE; /* http_call said why */
            break;
        }
        az_dps_reply rep;
        az_dps_read_reply((int)status, j, &rep, why, sizeof why);
        if (rep.kind == AZ_DPS_ASSIGNED) {
            *io_j = j;
            return IOTDM_OK;
        }
        if (rep.kind == AZ_DPS_FAILED) {
            snprintf(out->status, sizeof out->status, "%s", rep.status ? rep.status : "");
            r = failf(out, rep.error, "%s", why);
            break;
        }
        if (time(NULL) > deadline) {
            r = failf(out, IOTDM_E_TIMEOUT, "registration timed out (last: %s)",
                      rep.kind == AZ_DPS_POLL ? "assigning" : why);
            break;
        }
        if (rep.kind == AZ_DPS_POLL) {
            method = "GET";
            if (urlenc_encode(rep.operation_id, strlen(rep.operation_id), op, sizeof op) < 0) {
                r = failf(out, IOTDM_E_PROTOCOL, "unusable operationId");
                break;
            }
            int n = snprintf(url, sizeof url, "%s/operations/%s?" DPS_API, base, op);
            if (n < 0 || (size_t)n >= sizeof url) {
                r = failf(out, IOTDM_E_TOO_LARGE, "operationId too long for a URL");
                break;
            }
        }
        json_decref(j);
        j = NULL;
        sleep((unsigned)(retry > 0 && retry <= DPS_RETRY_MAX_S ? retry : 2));
        retry = 0;
        status =
            http_call(o, method, url, strcmp(method, "PUT") ? NULL : body, token, &j, &retry, out);
    }
    json_decref(j);
    *io_j = NULL;
    return r;
}

/* The assignment: the hub key (a second activation blob, docs/protocol.md §7.10) replaces the
 * registration key in the slot, then the URI marks the slot provisioned. */
static iotdm_result finish(limpet_tpm *tpm, const limpet_dps_options *o, json_t *j,
                           limpet_dps_result *out)
{
    az_dps_reply rep;
    char why[384];
    az_dps_read_reply(200, j, &rep, why, sizeof why);
    snprintf(out->status, sizeof out->status, "%s", rep.status ? rep.status : "");
    snprintf(out->assigned_hub, sizeof out->assigned_hub, "%s", rep.assigned_hub);
    snprintf(out->device_id, sizeof out->device_id, "%s", rep.device_id);
    json_t *tpm_state = json_object_get(json_object_get(j, "registrationState"), "tpm");
    const char *key = jstr(tpm_state, "authenticationKey", NULL);
    iotdm_result r = key ? activate_b64(tpm, o->slot, key, out) : IOTDM_OK;
    char uri[LIMPET_URI_MAX + 1];
    snprintf(uri, sizeof uri, "%s/%s", out->assigned_hub, out->device_id);
    if (r == IOTDM_OK && (r = limpet_slot_uri_write(tpm, o->slot, uri)) < 0)
        failf(out, r, "storing the URI: %s", limpet_tpm_error(tpm));
    return r;
}

static char *registration_body(limpet_tpm *tpm, limpet_dps_result *out)
{
    uint8_t ek[LIMPET_PUBLIC_MAX], srk[LIMPET_PUBLIC_MAX];
    char ek64[BASE64_ENCODED_LEN(LIMPET_PUBLIC_MAX) + 1], srk64[sizeof ek64];
    size_t ek_len, srk_len;
    if (limpet_ek_public(tpm, ek, sizeof ek, &ek_len) < 0 ||
        limpet_srk_public(tpm, srk, sizeof srk, &srk_len) < 0) {
        failf(out, IOTDM_E_INTERNAL, "reading the EK and SRK: %s", limpet_tpm_error(tpm));
        return NULL;
    }
    limpet_registration_id(ek, ek_len, out->registration_id);
    base64_encode(ek, ek_len, ek64, sizeof ek64);
    base64_encode(srk, srk_len, srk64, sizeof srk64);
    json_t *b = json_pack("{ss s{ssss}}", "registrationId", out->registration_id, "tpm",
                          "endorsementKey", ek64, "storageRootKey", srk64);
    char *s = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    return s;
}

iotdm_result limpet_dps_register(limpet_tpm *tpm, const limpet_dps_options *o,
                                 limpet_dps_result *out)
{
    memset(out, 0, sizeof *out);
    time_t deadline = time(NULL) + (o->timeout_s ? o->timeout_s : 120);
    char *body = registration_body(tpm, out);
    if (!body)
        return IOTDM_E_INTERNAL;
    char base[768], url[1024], token[1024];
    snprintf(base, sizeof base, "https://%s/%s/registrations/%s", o->endpoint, o->id_scope,
             out->registration_id);
    snprintf(url, sizeof url, "%s/register?" DPS_API, base);
    json_t *j = NULL;
    long retry = 0;
    long status = http_call(o, "PUT", url, body, NULL, &j, &retry, out);
    const char *challenge = jstr(j, "authenticationKey", NULL);
    iotdm_result r = IOTDM_OK;
    if (status != 401 || !challenge)
        r = status < 0 ? IOTDM_E_NOT_ONLINE
                       : failf(out, status == 404 ? IOTDM_E_NOT_FOUND : IOTDM_E_PROTOCOL,
                               "expected a TPM challenge (401), got HTTP %ld %s", status,
                               jstr(j, "message", NULL) ? jstr(j, "message", NULL) : "");
    if (r == IOTDM_OK)
        r = activate_b64(tpm, o->slot, challenge, out);
    json_decref(j);
    j = NULL;
    if (r == IOTDM_OK && (r = dps_sas(tpm, o, out->registration_id, token, sizeof token)) < 0)
        failf(out, r, "signing the DPS token: %s", limpet_tpm_error(tpm));
    if (r == IOTDM_OK) {
        status = http_call(o, "PUT", url, body, token, &j, &retry, out);
        r = await_assignment(o, base, body, token, &j, status, retry, deadline, out);
        if (r == IOTDM_OK)
            r = finish(tpm, o, j, out);
    }
    json_decref(j);
    free(body);
    return r;
}
