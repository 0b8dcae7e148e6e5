/* DPS enrollments as the service API sees them (docs/protocol.md §7.12): validation, defaults,
 * generated keys, and the view returned to clients. */
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/base64.h"
#include "hub/dps/dps_cert.h"
#include "hub/dps/dps_internal.h"
#include "hub/twin_ops.h"

static const char *get_str(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static bool key_ok(const char *key)
{
    unsigned char raw[128];
    long n = base64_decode(key, strlen(key), raw, sizeof raw);
    return n >= 16 && n <= 64;
}

/* Missing or empty keys are generated, as Azure does. */
static bool complete_symmetric(json_t *att, char *err, size_t cap)
{
    json_t *sym = json_object_get(att, "symmetricKey");
    if (!json_is_object(sym)) {
        sym = json_object();
        json_object_set_new(att, "symmetricKey", sym);
    }
    const char *names[] = {"primaryKey", "secondaryKey"};
    for (int i = 0; i < 2; i++) {
        const char *k = get_str(sym, names[i]);
        if (k && *k) {
            if (!key_ok(k)) {
                snprintf(err, cap, "symmetricKey.%s must be base64 of 16 to 64 bytes", names[i]);
                return false;
            }
            continue;
        }
        unsigned char raw[32];
        char b64[HUB_KEY_MAX];
        if (RAND_bytes(raw, sizeof raw) != 1 || base64_encode(raw, sizeof raw, b64, sizeof b64) < 0)
            return false;
        json_object_set_new(sym, names[i], json_string(b64));
    }
    return true;
}

/* A PUT of an enrollment as read back has its certificates as "info" only (the view never echoes
 * them): such a slot keeps the stored certificate, as in Azure (`az iot dps enrollment update`
 * relies on it). "info" is never stored; the view computes it. */
static void keep_stored_certificates(json_t *certs, const json_t *old, const char *field)
{
    const json_t *stored =
        json_object_get(json_object_get(json_object_get(old, "attestation"), "x509"), field);
    const char *which[] = {"primary", "secondary"};
    for (int i = 0; i < 2; i++) {
        json_t *slot = json_object_get(certs, which[i]);
        if (!json_is_object(slot))
            continue;
        json_t *kept = json_object_get(json_object_get(stored, which[i]), "certificate");
        if (json_object_get(slot, "info") && !json_object_get(slot, "certificate") &&
            json_is_string(kept))
            json_object_set(slot, "certificate", kept);
        json_object_del(slot, "info");
    }
}

/* X.509: individual enrollments name the device certificate(s), groups a signing certificate. */
static bool check_x509(json_t *att, hub_dps_kind kind, const json_t *old, char *err, size_t cap)
{
    const char *field = kind == HUB_DPS_GROUP ? "signingCertificates" : "clientCertificates";
    json_t *certs = json_object_get(json_object_get(att, "x509"), field);
    keep_stored_certificates(certs, old, field);
    const char *which[] = {"primary", "secondary"};
    for (int i = 0; i < 2; i++) {
        const json_t *slot = json_object_get(certs, which[i]);
        if (i > 0 && (!slot || json_is_null(slot)))
            continue; /* the secondary certificate is optional */
        const json_t *c = json_object_get(slot, "certificate");
        if (!json_is_string(c)) {
            snprintf(err, cap, "attestation.x509.%s.%s.certificate is required (PEM or base64 DER)",
                     field, which[i]);
            return false;
        }
        json_t *info = dps_cert_info(json_string_value(c));
        if (!info) {
            snprintf(err, cap, "attestation.x509.%s.%s.certificate is not a certificate", field,
                     which[i]);
            return false;
        }
        json_decref(info);
    }
    return true;
}

/* One key of a TPM enrollment: base64 of a marshaled TPM2B_PUBLIC that can protect a credential
 * (tpm_cred_check_key), the same check the registration makes before it builds the activation
 * blob. An optional key may be absent, null or "". */
static bool check_tpm_key(const json_t *tpm, const char *field, const char *what, bool required,
                          char *err, size_t cap)
{
    const json_t *v = json_object_get(tpm, field);
    const char *b64 = json_string_value(v);
    if (!required && (!v || json_is_null(v) || (b64 && !*b64)))
        return true;
    uint8_t raw[TPM_CRED_PUBLIC_MAX];
    long n = b64 ? base64_decode(b64, strlen(b64), raw, sizeof raw) : IOTDM_E_MALFORMED;
    char why[200];
    if (n == IOTDM_E_TOO_LARGE)
        snprintf(err, cap, "attestation.tpm.%s is larger than %d bytes: not a %s's TPM2B_PUBLIC",
                 field, TPM_CRED_PUBLIC_MAX, what);
    else if (n <= 0)
        snprintf(err, cap, "attestation.tpm.%s must be base64 of the %s's TPM2B_PUBLIC", field,
                 what);
    else if (tpm_cred_check_key(raw, (size_t)n, why, sizeof why) != IOTDM_OK)
        snprintf(err, cap, "attestation.tpm.%s is not usable as the %s: %s", field, what, why);
    else
        return true;
    return false;
}

/* The EK (and the SRK, when given) are checked when enrolled, so that a key no TPM can answer for
 * is refused now rather than at the device's first registration, as Azure answers 400 for an
 * invalid endorsement key. The registration id need not be the one the EK gives (base32 of its
 * SHA-256): Azure accepts any here (its TPM quickstarts enroll "sample-registrationid-csharp"),
 * and it is the registration that insists on the derived one (dps_tpm.c). */
static bool check_tpm(const json_t *att, char *err, size_t cap)
{
    const json_t *tpm = json_object_get(att, "tpm");
    return check_tpm_key(tpm, "endorsementKey", "endorsement key", true, err, cap) &&
           check_tpm_key(tpm, "storageRootKey", "storage root key", false, err, cap);
}

static bool check_attestation(json_t *doc, hub_dps_kind kind, const json_t *old, char *err,
                              size_t cap)
{
    json_t *att = json_object_get(doc, "attestation");
    const char *type = get_str(att, "type");
    if (!type) {
        snprintf(err, cap, "attestation.type is required");
        return false;
    }
    if (strcmp(type, "symmetricKey") == 0)
        return complete_symmetric(att, err, cap);
    if (strcmp(type, "x509") == 0)
        return check_x509(att, kind, old, err, cap);
    if (strcmp(type, "tpm") == 0 && kind == HUB_DPS_INDIVIDUAL)
        return check_tpm(att, err, cap);
    snprintf(err, cap, "attestation type '%s' is not supported for %s", type,
             kind == HUB_DPS_GROUP ? "enrollment groups" : "individual enrollments");
    return false;
}

json_t *dps_enrollment_prepare(hub *h, hub_dps_kind kind, const char *id, const json_t *body,
                               const json_t *old, char *err, size_t cap)
{
    const char *id_field = kind == HUB_DPS_GROUP ? "enrollmentGroupId" : "registrationId";
    if (!dps_id_valid(kind == HUB_DPS_GROUP ? "enrollment group id" : "registration id", id, err,
                      cap))
        return NULL;
    const char *body_id = get_str(body, id_field);
    if (!json_is_object(body) || !body_id || strcasecmp(body_id, id) != 0) {
        snprintf(err, cap, "%s in the body must match the one in the path", id_field);
        return NULL;
    }
    const char *status = get_str(body, "provisioningStatus");
    if (status && strcmp(status, "enabled") != 0 && strcmp(status, "disabled") != 0) {
        snprintf(err, cap, "provisioningStatus must be enabled or disabled");
        return NULL;
    }
    /* The device DPS creates in the registry gets this id, so it must pass the registry's rule.
     * Without one the device id is the registration id, which §7.1 keeps within that rule. */
    const json_t *device_id = json_object_get(body, "deviceId");
    if (kind == HUB_DPS_INDIVIDUAL && device_id && !json_is_null(device_id)) {
        const char *d = json_string_value(device_id);
        if (!d) {
            snprintf(err, cap, "deviceId must be a string");
            return NULL;
        }
        if (*d && !dps_device_id_valid(d, err, cap))
            return NULL;
    }
    const json_t *twin = json_object_get(body, "initialTwin");
    if (twin && !json_is_null(twin) && !json_is_object(twin)) {
        snprintf(err, cap, "initialTwin must be an object");
        return NULL;
    }
    json_t *doc = json_deep_copy(body);
    json_object_del(doc, "etag");
    json_object_del(doc, "registrationState");
    if (!check_attestation(doc, kind, old, err, cap)) {
        json_decref(doc);
        return NULL;
    }
    char when[40];
    dps_timestamp(when);
    const char *created = get_str(old, "createdDateTimeUtc");
    json_object_set_new(doc, "createdDateTimeUtc", json_string(created ? created : when));
    json_object_set_new(doc, "lastUpdatedDateTimeUtc", json_string(when));
    if (!status)
        json_object_set_new(doc, "provisioningStatus", json_string("enabled"));
    /* This hub is the only one devices can be assigned to. */
    json_object_set_new(doc, "iotHubHostName", json_string(h->cfg.hostname));
    json_object_set_new(doc, "iotHubs", json_pack("[s]", h->cfg.hostname));
    if (!get_str(doc, "allocationPolicy"))
        json_object_set_new(doc, "allocationPolicy", json_string("hashed"));
    return doc;
}

/* Certificates are not echoed: Azure answers with their "info" (subject, thumbprints, dates). */
static void certificates_to_info(json_t *certs)
{
    const char *which[] = {"primary", "secondary"};
    for (int i = 0; i < 2; i++) {
        json_t *slot = json_object_get(certs, which[i]);
        const char *pem = get_str(slot, "certificate");
        if (!pem)
            continue;
        json_t *info = dps_cert_info(pem);
        json_object_del(slot, "certificate");
        if (info)
            json_object_set_new(slot, "info", info);
    }
}

json_t *dps_enrollment_view(const json_t *doc, uint64_t etag)
{
    json_t *v = json_deep_copy(doc);
    json_t *x509 = json_object_get(json_object_get(v, "attestation"), "x509");
    certificates_to_info(json_object_get(x509, "clientCertificates"));
    certificates_to_info(json_object_get(x509, "signingCertificates"));
    char tag[32];
    hub_device_etag(etag, tag);
    json_object_set_new(v, "etag", json_string(tag));
    return v;
}

json_t *dps_registration_view(const json_t *doc, uint64_t etag)
{
    json_t *v = json_deep_copy(doc);
    char tag[32];
    hub_device_etag(etag, tag);
    json_object_set_new(v, "etag", json_string(tag));
    return v;
}
