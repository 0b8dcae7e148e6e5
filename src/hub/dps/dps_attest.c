/* DPS attestation: which enrollment a registration request belongs to, and whether its symmetric
 * key SAS or X.509 certificate proves it (docs/protocol.md §7.3, §7.8, §7.9). TPM: dps_tpm.c. */
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/alloc.h"
#include "common/sas.h"
#include "common/timeutil.h"
#include "common/urlenc.h"
#include "hub/dps/dps_cert.h"
#include "hub/dps/dps_internal.h"

#define DPS_GROUPS_MAX 1000 /* enrollment groups tried for one request */

void dps_match_deinit(dps_match *m)
{
    json_decref(m->enrollment);
    m->enrollment = NULL;
    OPENSSL_cleanse(m->primary_key, sizeof m->primary_key);
    OPENSSL_cleanse(m->secondary_key, sizeof m->secondary_key);
    xfree(m->tpm_authentication_key);
    m->tpm_authentication_key = NULL;
}

static const char *str_at(const json_t *obj, const char *path)
{
    /* "a.b.c": a short dotted path through nested objects. */
    char key[64];
    const json_t *cur = obj;
    while (cur && *path) {
        size_t n = strcspn(path, ".");
        snprintf(key, sizeof key, "%.*s", (int)n, path);
        cur = json_object_get(cur, key);
        path += n + (path[n] == '.');
    }
    return json_is_string(cur) ? json_string_value(cur) : NULL;
}

/* The token must name this registration, with skn "registration" when present (§7.3). */
bool dps_sas_for_registration(hub *h, const char *token, const char *registration_id,
                              sas_token *tok)
{
    if (!token || !*token || sas_parse(token, strlen(token), tok) < 0)
        return false;
    if (tok->expiry <= time_now_ms() / 1000)
        return false;
    char sr[512], want[512], skn[64];
    if (urlenc_decode(tok->sr, tok->sr_len, sr, sizeof sr, false) < 0)
        return false;
    snprintf(want, sizeof want, "%s/registrations/%s", hub_dps_id_scope(h), registration_id);
    if (strcasecmp(sr, want) != 0)
        return false;
    if (tok->skn && (urlenc_decode(tok->skn, tok->skn_len, skn, sizeof skn, false) < 0 ||
                     strcmp(skn, "registration") != 0))
        return false;
    return true;
}

static bool sas_matches(const sas_token *tok, const char *primary, const char *secondary)
{
    return (primary && *primary && sas_signature_valid(tok, primary)) ||
           (secondary && *secondary && sas_signature_valid(tok, secondary));
}

static void set_match(dps_match *m, hub_dps_kind kind, const char *id, const json_t *doc,
                      const char *mechanism)
{
    m->kind = kind;
    snprintf(m->enrollment_id, sizeof m->enrollment_id, "%s", id);
    m->enrollment = json_deep_copy(doc);
    m->mechanism = mechanism;
}

/* An individual enrollment's credentials. */
static bool attest_individual(hub *h, const char *registration_id, const json_t *doc,
                              const hub_dps_creds *creds, dps_match *m)
{
    const char *type = str_at(doc, "attestation.type");
    if (type && strcmp(type, "symmetricKey") == 0) {
        sas_token tok;
        const char *pk = str_at(doc, "attestation.symmetricKey.primaryKey");
        const char *sk = str_at(doc, "attestation.symmetricKey.secondaryKey");
        if (!dps_sas_for_registration(h, creds->sas, registration_id, &tok) ||
            !sas_matches(&tok, pk, sk))
            return false;
        set_match(m, HUB_DPS_INDIVIDUAL, registration_id, doc, "symmetricKey");
        m->auth = HUB_AUTH_SAS;
        snprintf(m->primary_key, sizeof m->primary_key, "%s", pk ? pk : "");
        snprintf(m->secondary_key, sizeof m->secondary_key, "%s", sk ? sk : "");
        return true;
    }
    if (type && strcmp(type, "x509") == 0) {
        const json_t *certs = json_object_get(json_object_get(doc, "attestation"), "x509");
        if (!dps_cert_client_matches(creds->cert, registration_id,
                                     json_object_get(certs, "clientCertificates"), m->thumbprint))
            return false;
        set_match(m, HUB_DPS_INDIVIDUAL, registration_id, doc, "x509");
        m->auth = HUB_AUTH_SELF_SIGNED;
        return true;
    }
    return false;
}

/* A group's credentials: the key derived for this registration id (§7.8), or a certificate chain
 * up to the group's signing certificate. */
static bool attest_group(hub *h, const char *registration_id, const char *group_id,
                         const json_t *doc, const hub_dps_creds *creds, dps_match *m)
{
    const char *type = str_at(doc, "attestation.type");
    if (type && strcmp(type, "symmetricKey") == 0) {
        sas_token tok;
        if (!dps_sas_for_registration(h, creds->sas, registration_id, &tok))
            return false;
        char dk[2][SAS_SIG_LEN + 1] = {"", ""};
        const char *gk[2] = {str_at(doc, "attestation.symmetricKey.primaryKey"),
                             str_at(doc, "attestation.symmetricKey.secondaryKey")};
        for (int i = 0; i < 2; i++)
            if (gk[i] && *gk[i] && sas_derive_device_key(gk[i], registration_id, dk[i]) < 0)
                dk[i][0] = '\0'; /* an unusable group key matches nothing */
        bool ok = sas_matches(&tok, dk[0], dk[1]);
        if (ok) {
            set_match(m, HUB_DPS_GROUP, group_id, doc, "symmetricKey");
            m->auth = HUB_AUTH_SAS;
            snprintf(m->primary_key, sizeof m->primary_key, "%s", dk[0]);
            snprintf(m->secondary_key, sizeof m->secondary_key, "%s", dk[1]);
        }
        OPENSSL_cleanse(dk, sizeof dk);
        return ok;
    }
    if (type && strcmp(type, "x509") == 0) {
        const json_t *x509 = json_object_get(json_object_get(doc, "attestation"), "x509");
        if (!dps_cert_chain_matches(creds->cert, creds->chain, registration_id,
                                    json_object_get(x509, "signingCertificates"), m->thumbprint))
            return false;
        set_match(m, HUB_DPS_GROUP, group_id, doc, "x509");
        m->auth = HUB_AUTH_SELF_SIGNED;
        return true;
    }
    return false;
}

typedef struct {
    hub *h;
    const char *registration_id;
    const hub_dps_creds *creds;
    dps_match *m;
    bool found;
} group_search;

static bool try_group(void *ctx, const char *id, const json_t *doc, uint64_t etag)
{
    (void)etag;
    group_search *g = ctx;
    g->found = attest_group(g->h, g->registration_id, id, doc, g->creds, g->m);
    return !g->found;
}

bool dps_attest(hub *h, hub_store *store, const char *registration_id, const json_t *request,
                const hub_dps_creds *creds, dps_match *m, hub_dps_reply *out)
{
    memset(m, 0, sizeof *m);
    json_t *doc = NULL;
    if (hub_store_enrollment_get(store, HUB_DPS_INDIVIDUAL, registration_id, &doc, NULL) ==
        IOTDM_OK) {
        /* An individual enrollment takes precedence over any group (as in Azure). */
        const char *type = str_at(doc, "attestation.type");
        bool ok = type && strcmp(type, "tpm") == 0
                      ? dps_tpm_attest(h, store, registration_id, doc, request, creds, m, out)
                      : attest_individual(h, registration_id, doc, creds, m);
        if (!ok && !out->body)
            hub_dps_error(out, DPS_ERR_UNAUTHORIZED,
                          "the credentials do not match the %s enrollment of registration id '%s'",
                          type ? type : "", registration_id);
        json_decref(doc);
        return ok;
    }
    if (json_is_object(json_object_get(request, "tpm"))) {
        /* Groups cannot hold TPM attestation (as in Azure): only an individual enrollment can. */
        hub_dps_error(out, DPS_ERR_UNAUTHORIZED,
                      "no TPM enrollment for registration id '%s' (TPM attestation needs an "
                      "individual enrollment whose endorsement key gives this registration id)",
                      registration_id);
        return false;
    }
    bool has_creds = (creds->sas && *creds->sas) || creds->cert;
    group_search g = {h, registration_id, creds, m, false};
    iotdm_result r = IOTDM_OK;
    if (has_creds)
        r = hub_store_enrollment_foreach(store, HUB_DPS_GROUP, NULL, DPS_GROUPS_MAX, try_group, &g);
    if (g.found)
        return true;
    if (r < 0) {
        /* The groups could not all be read: a refusal would be a guess. */
        hub_dps_error(out, DPS_ERR_SERVER, "the enrollment groups could not be read: %s",
                      iotdm_result_message(r));
        return false;
    }
    hub_dps_error(out, DPS_ERR_UNAUTHORIZED,
                  has_creds ? "no enrollment for registration id '%s', and no enrollment group "
                              "accepts its credentials"
                            : "registration id '%s': no credentials (a SAS token or a client "
                              "certificate) came with the request",
                  registration_id);
    return false;
}
