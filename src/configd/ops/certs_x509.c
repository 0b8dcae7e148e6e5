/* Certificate files as configd accepts them: exactly one X.509 certificate (PEM or DER), no key. */
#include "configd/ops/certs.h"

#include <errno.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/alloc.h"

static bool contains(const void *data, size_t len, const char *needle)
{
    return memmem(data, len, needle, strlen(needle)) != NULL;
}

static int refuse(cfgd_error *err, const char *why)
{
    cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT, "%s", why);
    ERR_clear_error();
    return -EINVAL;
}

/* A PEM file must hold one CERTIFICATE block; other blocks are ignored, a second one refused. */
static int parse_pem(const void *data, size_t len, X509 **out, cfgd_error *err)
{
    BIO *bio = BIO_new_mem_buf(data, (int)len);
    if (!bio)
        return refuse(err, "out of memory");
    X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    X509 *second = x ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (!x)
        return refuse(err, "the file is not a certificate (no readable PEM CERTIFICATE block)");
    if (second) {
        X509_free(x);
        X509_free(second);
        return refuse(err, "the file holds more than one certificate; install each under its own "
                           "thumbprint");
    }
    ERR_clear_error(); /* the failed look for a second one */
    *out = x;
    return 0;
}

static int parse_der(const void *data, size_t len, X509 **out, cfgd_error *err)
{
    const unsigned char *p = data;
    X509 *x = d2i_X509(NULL, &p, (long)len);
    if (!x || p != (const unsigned char *)data + len) {
        X509_free(x);
        return refuse(err, "the file is not a certificate (neither PEM nor DER X.509)");
    }
    *out = x;
    return 0;
}

static void name_text(const X509_NAME *name, char *out, size_t cap)
{
    out[0] = '\0';
    BIO *bio = BIO_new(BIO_s_mem());
    /* RFC 2253 with non-ASCII and controls escaped: always printable ASCII, so valid JSON. */
    if (bio && X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) >= 0) {
        int n = BIO_read(bio, out, (int)cap - 1);
        out[n > 0 ? n : 0] = '\0';
    }
    BIO_free(bio);
}

static void time_text(const ASN1_TIME *t, char *out, size_t cap)
{
    struct tm tm;
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1 || strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, cap, "unknown");
}

static bool digest_hex(const X509 *x, const EVP_MD *md, char *out, size_t cap)
{
    unsigned char buf[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!X509_digest(x, md, buf, &n) || (size_t)n * 2 + 1 > cap)
        return false;
    for (unsigned int i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02X", buf[i]);
    return true;
}

/* The certificate alone, canonically encoded: whatever else the file carried is not stored. */
static int to_pem(X509 *x, cfgd_cert_info *out)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data = NULL;
    long n = bio && PEM_write_bio_X509(bio, x) ? BIO_get_mem_data(bio, &data) : 0;
    if (n > 0 && (out->pem = xmalloc((size_t)n)) != NULL) {
        memcpy(out->pem, data, (size_t)n);
        out->pem_len = (size_t)n;
    }
    BIO_free(bio);
    return out->pem ? 0 : -ENOMEM;
}

int cfgd_cert_parse(const void *data, size_t len, bool want_pem, cfgd_cert_info *out,
                    cfgd_error *err)
{
    memset(out, 0, sizeof *out);
    if (len == 0)
        return refuse(err, "the file is empty, not a certificate");
    if (len > CFGD_CERT_FILE_MAX) {
        cfgd_error_set(err, CFGD_ERR_TOO_LARGE, "a certificate file is at most %d bytes",
                       CFGD_CERT_FILE_MAX);
        return -EFBIG;
    }
    /* A store holds public certificates: a key must never land in a world-readable folder. */
    if (contains(data, len, "PRIVATE KEY"))
        return refuse(err, "the file holds a private key; certificate stores take certificates "
                           "only");
    X509 *x = NULL;
    int r = contains(data, len, "-----BEGIN") ? parse_pem(data, len, &x, err)
                                              : parse_der(data, len, &x, err);
    if (r < 0)
        return r;
    name_text(X509_get_subject_name(x), out->subject, sizeof out->subject);
    name_text(X509_get_issuer_name(x), out->issuer, sizeof out->issuer);
    time_text(X509_get0_notBefore(x), out->not_before, sizeof out->not_before);
    time_text(X509_get0_notAfter(x), out->not_after, sizeof out->not_after);
    bool ok = digest_hex(x, EVP_sha1(), out->sha1, sizeof out->sha1) &&
              digest_hex(x, EVP_sha256(), out->sha256, sizeof out->sha256);
    if (ok && want_pem && to_pem(x, out) < 0)
        ok = false;
    X509_free(x);
    if (!ok) {
        cfgd_cert_info_deinit(out);
        cfgd_error_set(err, CFGD_ERR_FAILED, "cannot encode the certificate");
        ERR_clear_error();
        return -ENOMEM;
    }
    return 0;
}

void cfgd_cert_info_deinit(cfgd_cert_info *info)
{
    xfree(info->pem);
    info->pem = NULL;
    info->pem_len = 0;
}
