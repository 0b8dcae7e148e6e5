/* DPS context and the two device calls: register and operation status (docs/protocol.md §7.4,
 * §7.11). Attestation is in dps_attest.c, assignment in dps_assign.c. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/atomic_file.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "hub/dps/dps_internal.h"
#include "hub/net/refusals.h"

void hub_dps_reply_deinit(hub_dps_reply *reply)
{
    json_decref(reply->body);
    reply->body = NULL;
}

void hub_dps_creds_init(hub_dps_creds *creds, SSL *ssl, const char *sas, bool mqtt)
{
    memset(creds, 0, sizeof *creds);
    creds->mqtt = mqtt;
    if (sas && *sas)
        creds->sas = xstrdup(sas);
    X509 *cert = ssl ? SSL_get1_peer_certificate(ssl) : NULL;
    if (cert) {
        creds->cert = cert;
        STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
        creds->chain = chain ? X509_chain_up_ref(chain) : NULL;
    }
}

void hub_dps_creds_deinit(hub_dps_creds *creds)
{
    if (creds->sas)
        xfree_secret(creds->sas, strlen(creds->sas) + 1);
    X509_free(creds->cert);
    if (creds->chain)
        sk_X509_pop_free(creds->chain, X509_free);
    memset(creds, 0, sizeof *creds);
}

void dps_timestamp(char out[40])
{
    time_format_iso(time_now_ms(), out, 40);
}

static void random_hex(char *out, size_t bytes)
{
    unsigned char raw[32];
    if (bytes > sizeof raw)
        bytes = sizeof raw;
    if (RAND_bytes(raw, (int)bytes) != 1)
        memset(raw, 0, sizeof raw); /* only ever used for names, never for secrets */
    for (size_t i = 0; i < bytes; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

json_t *hub_dps_error_body(int error_code, const char *message)
{
    char when[40], tracking[40];
    dps_timestamp(when);
    random_hex(tracking, 16);
    return json_pack("{s:i, s:s, s:s, s:s}", "errorCode", error_code, "trackingId", tracking,
                     "message", message, "timestampUtc", when);
}

void hub_dps_error(hub_dps_reply *out, int error_code, const char *fmt, ...)
{
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    out->status = error_code / 1000;
    out->retry_after = -1;
    out->body = hub_dps_error_body(error_code, message);
    hub_refused(HUB_REFUSED_DPS, "dps", "refused status=%d reason=\"%s\"", out->status, message);
}

static bool read_small_file(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    bool ok = fgets(out, (int)cap, f) != NULL;
    fclose(f);
    out[strcspn(out, "\r\n")] = '\0';
    return ok && *out;
}

static iotdm_result write_private_file(const char *path, const char *text)
{
    return atomic_file_write(path, text, strlen(text), 0600, NULL, 0);
}

/* The scope only routes requests (it is not a secret), but it must stay the same across restarts
 * because devices keep it: generated once, like Azure's "0ne" + 8 hex digits, and saved. */
static iotdm_result load_id_scope(hub *h, char *scope, size_t cap)
{
    char path[600];
    snprintf(path, sizeof path, "%s/idscope", h->cfg.data_dir);
    if (h->cfg.id_scope[0]) {
        snprintf(scope, cap, "%s", h->cfg.id_scope);
    } else if (!read_small_file(path, scope, cap)) {
        char hex[9];
        random_hex(hex, 4);
        for (char *p = hex; *p; p++)
            *p = (char)(*p >= 'a' ? *p - 32 : *p);
        snprintf(scope, cap, "0ne%s", hex);
    }
    char line[HUB_DPS_ID_SCOPE_MAX + 2];
    snprintf(line, sizeof line, "%s\n", scope);
    return write_private_file(path, line);
}

iotdm_result hub_dps_init(hub *h)
{
    hub_dps *d = xcalloc(1, sizeof *d);
    if (!d)
        return -ENOMEM;
    h->dps = d; /* hub_dps_free frees what was made, even on a failure below */
    iotdm_result r = load_id_scope(h, d->id_scope, sizeof d->id_scope);
    if (r < 0)
        return r;
    hub_policy p;
    if (!hub_policy_find(h, HUB_DPS_POLICY, &p))
        return IOTDM_E_INTERNAL;
    char path[600], text[512];
    snprintf(path, sizeof path, "%s/dps.connstr", h->cfg.data_dir);
    snprintf(text, sizeof text, "HostName=%s;SharedAccessKeyName=%s;SharedAccessKey=%s\n",
             h->cfg.hostname, HUB_DPS_POLICY, p.primary_key);
    r = write_private_file(path, text);
    if (r == IOTDM_OK)
        log_info("dps", "provisioning id_scope=%s global_endpoint=%s", d->id_scope,
                 h->cfg.hostname);
    return r;
}

void hub_dps_free(hub *h)
{
    if (!h->dps)
        return;
    xfree(h->dps);
    h->dps = NULL;
}

const char *hub_dps_id_scope(const hub *h)
{
    return h->dps->id_scope;
}

void hub_dps_housekeeping(hub_store *store, int64_t now_ms)
{
    size_t n = 0;
    iotdm_result r = hub_store_dps_operation_prune(store, now_ms - DPS_OP_TTL_MS, DPS_OPS_MAX, &n);
    if (r < 0)
        log_error("dps", "cannot prune operations: %s", iotdm_result_message(r));
    else if (n)
        log_debug("dps", "pruned operations count=%zu", n);
    n = 0;
    r = hub_store_tpm_challenge_prune(store, now_ms, DPS_TPM_CHALLENGES_MAX, &n);
    if (r < 0)
        log_error("dps", "cannot prune TPM challenges: %s", iotdm_result_message(r));
    else if (n)
        log_debug("dps", "pruned TPM challenges count=%zu", n);
}

static bool scope_ok(hub *h, const char *id_scope, hub_dps_reply *out)
{
    if (strcasecmp(id_scope, h->dps->id_scope) == 0)
        return true;
    hub_dps_error(out, DPS_ERR_NOT_FOUND, "unknown ID scope '%s'", id_scope);
    return false;
}

/* Parses the DeviceRegistration body; an empty body (some clients poll with one) is {}. */
static json_t *parse_request(const char *registration_id, const char *body, size_t len,
                             hub_dps_reply *out)
{
    json_error_t err;
    json_t *j = len ? json_loadb(body, len, JSON_REJECT_DUPLICATES, &err) : json_object();
    if (!json_is_object(j)) {
        json_decref(j);
        hub_dps_error(out, DPS_ERR_BAD_REQUEST, "the body is not a JSON object");
        return NULL;
    }
    const char *rid = json_string_value(json_object_get(j, "registrationId"));
    if (rid && strcasecmp(rid, registration_id) != 0) {
        json_decref(j);
        hub_dps_error(out, DPS_ERR_BAD_REQUEST,
                      "registrationId in the body does not match the one in the request");
        return NULL;
    }
    return j;
}

void hub_dps_register(hub *h, hub_store *store, hub_work *w, const char *id_scope,
                      const char *registration_id, const char *body, size_t body_len,
                      const hub_dps_creds *creds, hub_dps_reply *out)
{
    memset(out, 0, sizeof *out);
    if (!scope_ok(h, id_scope, out))
        return;
    /* The rule the enrollment API applies (§7.1), checked before anything is looked up: an id no
     * enrollment can have is a bad request, not an unknown device. Group devices take the
     * registration id as their device id, which this rule keeps within the registry's. */
    char why[256];
    if (!dps_id_valid("registration id", registration_id, why, sizeof why)) {
        hub_dps_error(out, DPS_ERR_BAD_REQUEST, "%s", why);
        return;
    }
    json_t *request = parse_request(registration_id, body, body_len, out);
    if (!request)
        return;
    dps_match m;
    if (!dps_attest(h, store, registration_id, request, creds, &m, out)) {
        json_decref(request);
        return;
    }
    char op_id[DPS_OPERATION_MAX], hex[33];
    random_hex(hex, 16);
    snprintf(op_id, sizeof op_id, "4.%.16s.%.16s", hex, hex + 16);
    json_t *result =
        dps_assign(h, store, w, registration_id, &m, json_object_get(request, "payload"), op_id);
    dps_match_deinit(&m);
    json_decref(request);
    /* The 202 promises the device its result: the operation joins the assignment's group, and
     * both are on the disk before the answer leaves. */
    iotdm_result r =
        result ? hub_store_dps_operation_put(store, op_id, registration_id, time_now_ms(), result)
               : -ENOMEM;
    json_decref(result);
    if (r < 0) {
        log_error("dps", "registration not recorded registration=%s: %s", registration_id,
                  iotdm_result_message(r));
        hub_dps_error(out, DPS_ERR_SERVER, "the registration could not be recorded");
        return;
    }
    /* The work is already done, but devices expect to poll (§7.4): answer "assigning". */
    out->status = 202;
    out->retry_after = HUB_DPS_RETRY_AFTER;
    out->body = json_pack("{s:s, s:s}", "operationId", op_id, "status", "assigning");
}

void hub_dps_operation(hub *h, hub_store *store, const char *id_scope, const char *registration_id,
                       const char *operation_id, const hub_dps_creds *creds, bool attested,
                       hub_dps_reply *out)
{
    memset(out, 0, sizeof *out);
    if (!scope_ok(h, id_scope, out))
        return;
    char op_registration[HUB_ID_MAX];
    int64_t created_ms = 0;
    json_t *result = NULL;
    iotdm_result r =
        hub_store_dps_operation_get(store, operation_id, op_registration, &created_ms, &result);
    if (r < 0 && r != IOTDM_E_NOT_FOUND) {
        hub_dps_error(out, DPS_ERR_SERVER, "the operation could not be read: %s",
                      iotdm_result_message(r));
        return;
    }
    /* Past its time it is unknown, whether or not the housekeeping has deleted it yet. */
    if (r == IOTDM_E_NOT_FOUND || created_ms < time_now_ms() - DPS_OP_TTL_MS ||
        strcasecmp(op_registration, registration_id) != 0) {
        json_decref(result);
        hub_dps_error(out, DPS_ERR_NOT_FOUND, "unknown operation '%s' for registration '%s'",
                      operation_id, registration_id);
        return;
    }
    if (!attested) {
        /* HTTPS polls carry the credentials again; TPM devices sign with the registration key
         * of their challenge. No request body: attestation only, no new keys. */
        dps_match m;
        bool ok = dps_attest(h, store, registration_id, NULL, creds, &m, out);
        if (!ok) {
            json_decref(result);
            return;
        }
        dps_match_deinit(&m);
    }
    out->status = 200;
    out->retry_after = -1;
    out->body = result;
}
