/* X.509 for DPS: parsing enrollment certificates and checking device certificates against them. */
#include "hub/dps/dps_cert.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/base64.h"
#include "common/timeutil.h"

#define CERT_TEXT_MAX (16 * 1024)

X509 *dps_cert_parse(const char *text)
{
    if (!text || strlen(text) > CERT_TEXT_MAX)
        return NULL;
    if (strstr(text, "-----BEGIN")) {
        BIO *bio = BIO_new_mem_buf(text, -1);
        X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
        BIO_free(bio);
        return x;
    }
    unsigned char der[CERT_TEXT_MAX];
    long n = base64_decode(text, strlen(text), der, sizeof der);
    if (n <= 0)
        return NULL;
    const unsigned char *p = der;
    return d2i_X509(NULL, &p, n);
}

static void thumbprint(X509 *x, const EVP_MD *md, char *out)
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    out[0] = '\0';
    if (X509_digest(x, md, digest, &len) != 1)
        return;
    for (unsigned int i = 0; i < len; i++)
        snprintf(out + 2 * i, 3, "%02x", digest[i]);
}

/* The leaf's subject CN must be the registration id (docs/protocol.md §7.9). */
static bool cn_is(X509 *x, const char *registration_id)
{
    char cn[256];
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn) <= 0)
        return false;
    return strcasecmp(cn, registration_id) == 0;
}

static X509 *enrolled(const json_t *certs, const char *which)
{
    const json_t *c = json_object_get(json_object_get(certs, which), "certificate");
    return json_is_string(c) ? dps_cert_parse(json_string_value(c)) : NULL;
}

bool dps_cert_client_matches(X509 *leaf, const char *registration_id, const json_t *certs,
                             char out_sha256[65])
{
    if (!leaf || !cn_is(leaf, registration_id))
        return false;
    bool ok = false;
    const char *which[] = {"primary", "secondary"};
    for (int i = 0; i < 2 && !ok; i++) {
        X509 *e = enrolled(certs, which[i]);
        ok = e && X509_cmp(e, leaf) == 0;
        X509_free(e);
    }
    if (ok)
        thumbprint(leaf, EVP_sha256(), out_sha256);
    return ok;
}

/* Verifies leaf with anchor as the trust anchor and what the device sent as intermediates.
 * PARTIAL_CHAIN: the group's certificate may itself be an intermediate. */
static bool chains_to(X509 *leaf, STACK_OF(X509) * sent, X509 *anchor)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    bool ok = false;
    if (store && ctx && X509_STORE_add_cert(store, anchor) == 1 &&
        X509_STORE_CTX_init(ctx, store, leaf, sent) == 1) {
        X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_PARTIAL_CHAIN);
        X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
        ok = X509_verify_cert(ctx) == 1;
    }
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    return ok;
}

bool dps_cert_chain_matches(X509 *leaf, STACK_OF(X509) * sent, const char *registration_id,
                            const json_t *certs, char out_sha256[65])
{
    if (!leaf || !cn_is(leaf, registration_id))
        return false;
    bool ok = false;
    const char *which[] = {"primary", "secondary"};
    for (int i = 0; i < 2 && !ok; i++) {
        X509 *e = enrolled(certs, which[i]);
        ok = e && chains_to(leaf, sent, e);
        X509_free(e);
    }
    if (ok)
        thumbprint(leaf, EVP_sha256(), out_sha256);
    return ok;
}

static void name_text(const X509_NAME *name, char *out, size_t cap)
{
    BIO *bio = BIO_new(BIO_s_mem());
    out[0] = '\0';
    if (!bio)
        return;
    X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253);
    int n = BIO_read(bio, out, (int)cap - 1);
    out[n > 0 ? n : 0] = '\0';
    BIO_free(bio);
}

static void time_text(const ASN1_TIME *t, char *out, size_t cap)
{
    struct tm tm;
    out[0] = '\0';
    if (ASN1_TIME_to_tm(t, &tm) == 1)
        strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

json_t *dps_cert_info(const char *text)
{
    X509 *x = dps_cert_parse(text);
    if (!x)
        return NULL;
    char subject[512], issuer[512], sha1[41], sha256[65], nb[32], na[32], serial[128] = "";
    name_text(X509_get_subject_name(x), subject, sizeof subject);
    name_text(X509_get_issuer_name(x), issuer, sizeof issuer);
    thumbprint(x, EVP_sha1(), sha1);
    thumbprint(x, EVP_sha256(), sha256);
    time_text(X509_get0_notBefore(x), nb, sizeof nb);
    time_text(X509_get0_notAfter(x), na, sizeof na);
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    char *hex = bn ? BN_bn2hex(bn) : NULL;
    if (hex)
        snprintf(serial, sizeof serial, "%s", hex);
    OPENSSL_free(hex);
    BN_free(bn);
    json_t *info = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i}", "subjectName", subject,
                             "sha1Thumbprint", sha1, "sha256Thumbprint", sha256, "issuerName",
                             issuer, "notBeforeUtc", nb, "notAfterUtc", na, "serialNumber", serial,
                             "version", (int)X509_get_version(x) + 1);
    X509_free(x);
    return info;
}
