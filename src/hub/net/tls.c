/* Local CA and server certificate generation with OpenSSL 3, and the server TLS context. */
#include "hub/net/tls.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"

#define CA_DAYS     3650
#define SERVER_DAYS 825

static void path_join(char *out, size_t cap, const char *dir, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

static EVP_PKEY *new_p256_key(void)
{
    return EVP_EC_gen("P-256");
}

static bool write_key(const char *path, EVP_PKEY *key)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return false;
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        return false;
    }
    bool ok = PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1;
    ok = (fflush(f) == 0) && ok && fsync(fd) == 0;
    fclose(f);
    return ok;
}

static bool write_cert(const char *path, X509 *cert)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return false;
    bool ok = PEM_write_X509(f, cert) == 1;
    ok = (fflush(f) == 0) && ok && fsync(fileno(f)) == 0;
    fclose(f);
    return ok;
}

static X509 *read_cert(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    X509 *c = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    return c;
}

static EVP_PKEY *read_key(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    return k;
}

static bool add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!ext)
        return false;
    bool ok = X509_add_ext(cert, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    return ok;
}

static X509 *new_cert(EVP_PKEY *key, const char *cn, long days)
{
    X509 *cert = X509_new();
    if (!cert)
        return NULL;
    unsigned char serial[16];
    RAND_bytes(serial, sizeof serial);
    serial[0] &= 0x7f;
    BIGNUM *bn = BN_bin2bn(serial, sizeof serial, NULL);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert));
    BN_free(bn);
    X509_set_version(cert, 2);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), days * 86400L);
    X509_set_pubkey(cert, key);
    X509_NAME *name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"iotdm", -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    return cert;
}

static bool is_ip(const char *s)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static void add_san(char *sans, size_t cap, const char *name)
{
    if (!name || !*name || strcmp(name, "0.0.0.0") == 0 || strcmp(name, "::") == 0)
        return;
    char item[300];
    snprintf(item, sizeof item, "%s:%s", is_ip(name) ? "IP" : "DNS", name);
    if (strstr(sans, item))
        return;
    size_t len = strlen(sans);
    snprintf(sans + len, cap - len, "%s%s", len ? "," : "", item);
}

static iotdm_result create_ca(const char *dir)
{
    char cert_path[600], key_path[600];
    path_join(cert_path, sizeof cert_path, dir, "ca.pem");
    path_join(key_path, sizeof key_path, dir, "ca.key");
    EVP_PKEY *key = new_p256_key();
    X509 *cert = key ? new_cert(key, "iotdm local CA", CA_DAYS) : NULL;
    bool ok = cert && X509_set_issuer_name(cert, X509_get_subject_name(cert)) &&
              add_ext(cert, cert, NID_basic_constraints, "critical,CA:TRUE") &&
              add_ext(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign") &&
              add_ext(cert, cert, NID_subject_key_identifier, "hash") &&
              X509_sign(cert, key, EVP_sha256()) > 0 && write_key(key_path, key) &&
              write_cert(cert_path, cert);
    X509_free(cert);
    EVP_PKEY_free(key);
    return ok ? IOTDM_OK : IOTDM_E_INTERNAL;
}

static bool server_cert_covers(const char *path, const char *const *names, size_t n)
{
    X509 *cert = read_cert(path);
    if (!cert)
        return false;
    bool ok = X509_cmp_current_time(X509_get0_notAfter(cert)) > 0;
    for (size_t i = 0; ok && i < n; i++) {
        if (!names[i] || !*names[i] || strcmp(names[i], "0.0.0.0") == 0)
            continue;
        ok = is_ip(names[i]) ? X509_check_ip_asc(cert, names[i], 0) == 1
                             : X509_check_host(cert, names[i], 0, 0, NULL) == 1;
    }
    X509_free(cert);
    return ok;
}

static iotdm_result create_server_cert(const char *dir, const char *const *names, size_t n)
{
    char ca_cert_path[600], ca_key_path[600], cert_path[600], key_path[600];
    path_join(ca_cert_path, sizeof ca_cert_path, dir, "ca.pem");
    path_join(ca_key_path, sizeof ca_key_path, dir, "ca.key");
    path_join(cert_path, sizeof cert_path, dir, "server.pem");
    path_join(key_path, sizeof key_path, dir, "server.key");
    X509 *ca = read_cert(ca_cert_path);
    EVP_PKEY *ca_key = read_key(ca_key_path);
    EVP_PKEY *key = new_p256_key();
    char sans[1024] = "";
    for (size_t i = 0; i < n; i++)
        add_san(sans, sizeof sans, names[i]);
    X509 *cert = (ca && ca_key && key) ? new_cert(key, names[0], SERVER_DAYS) : NULL;
    bool ok = cert && X509_set_issuer_name(cert, X509_get_subject_name(ca)) &&
              add_ext(cert, ca, NID_basic_constraints, "critical,CA:FALSE") &&
              add_ext(cert, ca, NID_key_usage, "critical,digitalSignature") &&
              add_ext(cert, ca, NID_ext_key_usage, "serverAuth") &&
              add_ext(cert, ca, NID_subject_alt_name, sans) &&
              add_ext(cert, ca, NID_authority_key_identifier, "keyid:always") &&
              X509_sign(cert, ca_key, EVP_sha256()) > 0 && write_key(key_path, key) &&
              write_cert(cert_path, cert);
    X509_free(cert);
    X509_free(ca);
    EVP_PKEY_free(key);
    EVP_PKEY_free(ca_key);
    return ok ? IOTDM_OK : IOTDM_E_INTERNAL;
}

iotdm_result hub_tls_ensure(const char *data_dir, const char *hostname, const char *listen_addr)
{
    char ca_path[600], server_path[600];
    path_join(ca_path, sizeof ca_path, data_dir, "ca.pem");
    path_join(server_path, sizeof server_path, data_dir, "server.pem");
    const char *names[] = {hostname, "localhost", "127.0.0.1", listen_addr};
    if (access(ca_path, R_OK) != 0) {
        log_info("tls", "creating local CA path=%s", ca_path);
        iotdm_result r = create_ca(data_dir);
        if (r < 0)
            return r;
    }
    if (!server_cert_covers(server_path, names, 4)) {
        log_info("tls", "issuing server certificate host=%s listen=%s", hostname, listen_addr);
        return create_server_cert(data_dir, names, 4);
    }
    return IOTDM_OK;
}

static int accept_any_client_cert(int preverify, X509_STORE_CTX *ctx)
{
    /* Self-signed device certificates never chain to anything we know; the registry decides. */
    (void)preverify;
    (void)ctx;
    return 1;
}

SSL_CTX *hub_tls_server_ctx(const char *data_dir, bool request_client_cert)
{
    char cert_path[600], key_path[600];
    path_join(cert_path, sizeof cert_path, data_dir, "server.pem");
    path_join(key_path, sizeof key_path, data_dir, "server.key");
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* Idle connections keep no read/write buffers: the 16 KB-per-connection budget needs this. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        log_error("tls", "cannot load server certificate path=%s", cert_path);
        SSL_CTX_free(ctx);
        return NULL;
    }
    /* SSL_VERIFY_PEER without FAIL_IF_NO_PEER_CERT: asked for, not required. */
    if (request_client_cert)
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, accept_any_client_cert);
    static const unsigned char sid_ctx[] = "iotdm-hub";
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1);
    return ctx;
}

void hub_tls_request_client_cert(SSL *ssl)
{
    SSL_set_verify(ssl, SSL_VERIFY_PEER, accept_any_client_cert);
    /* The request names one certificate authority that issues nothing. Browsers offer only
     * certificates from the named authorities, so an operator with certificates installed (a
     * smart card, a corporate identity) gets no certificate prompt on the dashboard; device and
     * SDK clients send the certificate they were configured with whatever the names say. */
    STACK_OF(X509_NAME) *names = sk_X509_NAME_new_null();
    X509_NAME *name = X509_NAME_new();
    if (names && name &&
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                   (const unsigned char *)HUB_TLS_CLIENT_CA_NAME, -1, -1, 0) &&
        sk_X509_NAME_push(names, name)) {
        SSL_set_client_CA_list(ssl, names); /* takes both */
        return;
    }
    X509_NAME_free(name);
    sk_X509_NAME_free(names);
}

static void hex(const unsigned char *in, unsigned len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (unsigned i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = '\0';
}

bool hub_tls_peer_thumbprints(SSL *ssl, char sha1_hex[41], char sha256_hex[65])
{
    X509 *peer = SSL_get1_peer_certificate(ssl);
    if (!peer)
        return false;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    bool ok = X509_digest(peer, EVP_sha1(), md, &len) == 1;
    if (ok)
        hex(md, len, sha1_hex);
    ok = ok && X509_digest(peer, EVP_sha256(), md, &len) == 1;
    if (ok)
        hex(md, len, sha256_hex);
    X509_free(peer);
    return ok;
}

bool hub_tls_peer_matches(SSL *ssl, const char *primary, const char *secondary)
{
    char sha1[41], sha256[65];
    if (!ssl || !hub_tls_peer_thumbprints(ssl, sha1, sha256))
        return false;
    return hub_tls_thumbprints_match(sha1, sha256, primary, secondary);
}

bool hub_tls_thumbprints_match(const char *sha1, const char *sha256, const char *primary,
                               const char *secondary)
{
    if (!sha1[0] || !sha256[0])
        return false;
    const char *prints[] = {primary, secondary};
    for (int i = 0; i < 2; i++) {
        if (prints[i] && prints[i][0] &&
            (strcasecmp(prints[i], sha1) == 0 || strcasecmp(prints[i], sha256) == 0))
            return true;
    }
    return false;
}
