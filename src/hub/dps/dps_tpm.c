/* DPS TPM attestation over HTTPS (docs/protocol.md §7.10): the 401 challenge carrying a
 * registration key that only the enrolled TPM can use, the SAS check against that key, and the
 * device's hub key delivered the same way. The cryptography is in tpm_credential.c; the
 * challenges are kept in the store (store_dps.c). */
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/alloc.h"
#include "common/base64.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "hub/dps/dps_internal.h"

#define B64_BLOB_MAX (BASE64_ENCODED_LEN(TPM_CRED_BLOB_MAX) + 1)

/* ---- the request: the EK and SRK it presents, checked against the enrollment ---- */

typedef struct {
    uint8_t ek[TPM_CRED_PUBLIC_MAX];
    size_t ek_len;
    uint8_t srk[TPM_CRED_PUBLIC_MAX];
    size_t srk_len; /* 0: none sent */
} tpm_keys;

/* base64 of a marshaled TPM2B_PUBLIC; false when absent or not base64. */
static bool decode_key(const json_t *obj, const char *field, uint8_t *out, size_t *out_len)
{
    const char *b64 = json_string_value(json_object_get(obj, field));
    long n = b64 ? base64_decode(b64, strlen(b64), out, TPM_CRED_PUBLIC_MAX) : -1;
    *out_len = n > 0 ? (size_t)n : 0;
    return n > 0;
}

static const json_t *enrolled_tpm(const json_t *enrollment)
{
    return json_object_get(json_object_get(enrollment, "attestation"), "tpm");
}

static bool same_key(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len)
{
    return a_len == b_len && memcmp(a, b, a_len) == 0;
}

static bool ek_digest(const uint8_t *ek, size_t len, uint8_t out[32])
{
    return EVP_Digest(ek, len, out, NULL, EVP_sha256(), NULL) == 1;
}

/* The request's registration id must be derived from the EK it sends, and that EK (and the SRK,
 * when the enrollment names one) must be the enrolled one. */
static bool check_presented(const char *registration_id, const json_t *enrollment,
                            const json_t *tpm, tpm_keys *k, hub_dps_reply *out)
{
    tpm_keys enrolled;
    char derived[TPM_CRED_REG_ID_LEN + 1];
    if (!decode_key(tpm, "endorsementKey", k->ek, &k->ek_len)) {
        hub_dps_error(out, DPS_ERR_BAD_REQUEST,
                      "tpm.endorsementKey must be base64 of the EK's TPM2B_PUBLIC");
        return false;
    }
    if (json_object_get(tpm, "storageRootKey") &&
        !decode_key(tpm, "storageRootKey", k->srk, &k->srk_len)) {
        hub_dps_error(out, DPS_ERR_BAD_REQUEST,
                      "tpm.storageRootKey must be base64 of the SRK's TPM2B_PUBLIC");
        return false;
    }
    tpm_cred_registration_id(k->ek, k->ek_len, derived);
    if (strcasecmp(derived, registration_id) != 0) {
        hub_dps_error(out, DPS_ERR_UNAUTHORIZED,
                      "registration id '%s' is not the one the endorsement key gives ('%s': "
                      "base32 of the SHA-256 of its TPM2B_PUBLIC)",
                      registration_id, derived);
        return false;
    }
    const json_t *want = enrolled_tpm(enrollment);
    if (!decode_key(want, "endorsementKey", enrolled.ek, &enrolled.ek_len) ||
        !same_key(k->ek, k->ek_len, enrolled.ek, enrolled.ek_len)) {
        hub_dps_error(out, DPS_ERR_UNAUTHORIZED,
                      "the endorsement key does not match the TPM enrollment of registration id "
                      "'%s'",
                      registration_id);
        return false;
    }
    if (k->srk_len && decode_key(want, "storageRootKey", enrolled.srk, &enrolled.srk_len) &&
        !same_key(k->srk, k->srk_len, enrolled.srk, enrolled.srk_len)) {
        hub_dps_error(out, DPS_ERR_UNAUTHORIZED,
                      "the storage root key does not match the TPM enrollment of registration id "
                      "'%s'",
                      registration_id);
        return false;
    }
    return true;
}

/* ---- the challenge and the answer ---- */

/* An activation blob carrying key for ek and srk, base64 into out (B64_BLOB_MAX bytes). */
static iotdm_result make_blob_b64(const uint8_t *ek, size_t ek_len, const uint8_t *srk,
                                  size_t srk_len, const uint8_t key[TPM_CRED_KEY_LEN], char *out,
                                  char *err, size_t err_cap)
{
    uint8_t blob[TPM_CRED_BLOB_MAX];
    size_t n = 0;
    iotdm_result r =
        tpm_cred_make_blob(ek, ek_len, srk, srk_len, key, blob, sizeof blob, &n, err, err_cap);
    if (r == IOTDM_OK && base64_encode(blob, n, out, B64_BLOB_MAX) < 0)
        r = IOTDM_E_TOO_LARGE;
    return r;
}

/* The challenge is what the device's next request is checked against, even after a restart: it is
 * on the disk before the 401 leaves. A new one replaces the last; the oldest go beyond
 * DPS_TPM_CHALLENGES_MAX. */
static iotdm_result remember(hub_store *store, const char *registration_id,
                             const hub_tpm_challenge *c, int64_t now_ms)
{
    iotdm_result r = hub_store_tpm_challenge_put(store, registration_id, c);
    if (r == IOTDM_OK)
        r = hub_store_tpm_challenge_prune(store, now_ms, DPS_TPM_CHALLENGES_MAX, NULL);
    return r;
}

/* The first step: a fresh registration key, remembered, and sent in the 401 that the device
 * answers with a SAS signed by it inside its TPM (docs/protocol.md §7.10, "Over HTTPS", step 2).
 * Always "fails". */
static bool challenge(hub_store *store, const char *registration_id, const tpm_keys *k,
                      hub_dps_reply *out)
{
    if (!k->srk_len) {
        hub_dps_error(out, DPS_ERR_BAD_REQUEST,
                      "tpm.storageRootKey is required: the key is delivered under the TPM's "
                      "storage root key");
        return false;
    }
    int64_t now = time_now_ms();
    hub_tpm_challenge c = {.srk_len = k->srk_len, .expires_ms = now + DPS_TPM_CHALLENGE_TTL_MS};
    memcpy(c.srk, k->srk, k->srk_len);
    char b64[B64_BLOB_MAX], why[300] = "";
    iotdm_result r =
        RAND_bytes(c.key, sizeof c.key) == 1 && ek_digest(k->ek, k->ek_len, c.ek_digest)
            ? make_blob_b64(k->ek, k->ek_len, k->srk, k->srk_len, c.key, b64, why, sizeof why)
            : IOTDM_E_INTERNAL;
    bool unusable_keys = r == IOTDM_E_MALFORMED; /* the blob's reason, not the store's */
    if (r == IOTDM_OK)
        r = remember(store, registration_id, &c, now);
    OPENSSL_cleanse(&c, sizeof c);
    if (unusable_keys) {
        hub_dps_error(out, DPS_ERR_BAD_REQUEST, "%s", why);
        return false;
    }
    if (r < 0) {
        hub_dps_error(out, DPS_ERR_SERVER, "the TPM challenge could not be made: %s",
                      iotdm_result_message(r));
        return false;
    }
    out->status = 401;
    out->retry_after = -1;
    out->body = json_pack("{s:s, s:s, s:s}", "message",
                          "Authorization required, resend request using supplied key",
                          "authenticationKey", b64, "keyName", "registration");
    log_info("dps", "tpm challenge registration=%s", registration_id);
    return false;
}

/* The SAS must be signed with the key of a live challenge made for the EK still enrolled; that
 * challenge is copied into *c (the caller wipes it). */
static bool verify(hub *h, hub_store *store, const char *registration_id, const json_t *enrollment,
                   const char *sas, hub_tpm_challenge *c, hub_dps_reply *out)
{
    iotdm_result got = hub_store_tpm_challenge_get(store, registration_id, time_now_ms(), c);
    if (got < 0 && got != IOTDM_E_NOT_FOUND) {
        hub_dps_error(out, DPS_ERR_SERVER, "the TPM challenge could not be read: %s",
                      iotdm_result_message(got));
        return false;
    }
    uint8_t ek[TPM_CRED_PUBLIC_MAX], digest[32];
    size_t ek_len;
    sas_token tok;
    char key[BASE64_ENCODED_LEN(TPM_CRED_KEY_LEN) + 1];
    const char *why = NULL;
    if (got == IOTDM_E_NOT_FOUND)
        why = "no TPM challenge is pending (none was asked for, or it expired): send the register "
              "request without Authorization first";
    else if (!decode_key(enrolled_tpm(enrollment), "endorsementKey", ek, &ek_len) ||
             !ek_digest(ek, ek_len, digest) || memcmp(digest, c->ek_digest, sizeof digest) != 0)
        why = "the TPM enrollment changed since its challenge: register again without "
              "Authorization";
    else if (!dps_sas_for_registration(h, sas, registration_id, &tok))
        why = "the SAS token is malformed, expired, or for another registration";
    else if (base64_encode(c->key, sizeof c->key, key, sizeof key) < 0 ||
             !sas_signature_valid(&tok, key))
        why = "the SAS token is not signed with the key of the TPM challenge";
    OPENSSL_cleanse(key, sizeof key);
    if (why)
        hub_dps_error(out, DPS_ERR_UNAUTHORIZED, "registration id '%s': %s", registration_id, why);
    return !why;
}

static void set_tpm_match(dps_match *m, const char *registration_id, const json_t *enrollment)
{
    m->kind = HUB_DPS_INDIVIDUAL;
    snprintf(m->enrollment_id, sizeof m->enrollment_id, "%s", registration_id);
    m->enrollment = json_deep_copy(enrollment);
    m->mechanism = "tpm";
    m->auth = HUB_AUTH_SAS;
}

/* The device's hub key: 32 fresh bytes, the device's SAS key in the registry, delivered in an
 * activation blob under the SRK of the challenge, so that it too never leaves the TPM. */
static bool deliver_hub_key(const char *registration_id, const json_t *enrollment,
                            const hub_tpm_challenge *c, dps_match *m, hub_dps_reply *out)
{
    uint8_t ek[TPM_CRED_PUBLIC_MAX], key[TPM_CRED_KEY_LEN];
    size_t ek_len = 0;
    char b64[B64_BLOB_MAX], why[300] = "";
    iotdm_result r = IOTDM_E_INTERNAL;
    if (RAND_bytes(key, sizeof key) == 1 &&
        decode_key(enrolled_tpm(enrollment), "endorsementKey", ek, &ek_len))
        r = make_blob_b64(ek, ek_len, c->srk, c->srk_len, key, b64, why, sizeof why);
    if (r == IOTDM_OK && base64_encode(key, sizeof key, m->primary_key, sizeof m->primary_key) < 0)
        r = IOTDM_E_TOO_LARGE;
    OPENSSL_cleanse(key, sizeof key);
    if (r == IOTDM_OK && !(m->tpm_authentication_key = xstrdup(b64)))
        r = -ENOMEM;
    if (r < 0) {
        OPENSSL_cleanse(m->primary_key, sizeof m->primary_key);
        hub_dps_error(out, DPS_ERR_SERVER, "the device key could not be delivered: %s %s",
                      iotdm_result_message(r), why);
        return false;
    }
    set_tpm_match(m, registration_id, enrollment);
    return true;
}

bool dps_tpm_attest(hub *h, hub_store *store, const char *registration_id, const json_t *enrollment,
                    const json_t *request, const hub_dps_creds *creds, dps_match *m,
                    hub_dps_reply *out)
{
    if (creds->mqtt) {
        hub_dps_error(out, DPS_ERR_BAD_REQUEST,
                      "registration id '%s' has a TPM enrollment, and TPM attestation is not "
                      "supported over MQTT (as in Azure DPS): register over HTTPS",
                      registration_id);
        return false;
    }
    tpm_keys k = {.ek_len = 0};
    const json_t *tpm = json_object_get(request, "tpm");
    if (tpm && !check_presented(registration_id, enrollment, tpm, &k, out))
        return false;
    if (!creds->sas || !*creds->sas) {
        if (tpm)
            return challenge(store, registration_id, &k, out);
        hub_dps_error(out, request ? DPS_ERR_BAD_REQUEST : DPS_ERR_UNAUTHORIZED,
                      request ? "registration id '%s' has a TPM enrollment: the request must carry "
                                "tpm.endorsementKey and tpm.storageRootKey"
                              : "registration id '%s': the operation status of a TPM registration "
                                "needs the SAS token signed with the challenge's key",
                      registration_id);
        return false;
    }
    hub_tpm_challenge c;
    bool ok = verify(h, store, registration_id, enrollment, creds->sas, &c, out);
    if (ok && !request)
        set_tpm_match(m, registration_id, enrollment);
    else if (ok)
        ok = deliver_hub_key(registration_id, enrollment, &c, m, out);
    OPENSSL_cleanse(&c, sizeof c);
    return ok;
}
