/* certs.* operations: certificate stores (the system trust and iotdm's own folders). */
#ifndef IOTDM_CONFIGD_OPS_CERTS_H
#define IOTDM_CONFIGD_OPS_CERTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "configd/optable.h"

#define CFGD_CERT_FILE_MAX       (64 * 1024) /* a certificate file passed to certs.install */
#define CFGD_THUMBPRINT_LEN      40          /* SHA-1, hex */
#define CFGD_UPDATE_CA_CERTS     "/usr/sbin/update-ca-certificates"
#define CFGD_CERT_SYSTEM_TRUST   "/usr/local/share/ca-certificates/iotdm"
#define CFGD_CERT_IOTDM_STORES   "/etc/iotdm/certs"
#define CFGD_CERT_STORE_NAME_MAX 32

/* One store: its twin name, its folder on the device, the file suffix, and whether it feeds the
 * system trust (update-ca-certificates). */
typedef struct {
    const char *name;
    const char *dir;
    const char *suffix;
    bool system_trust;
} cfgd_cert_store;

/* The stores, in reporting order; *out_count gets their number. */
const cfgd_cert_store *cfgd_cert_stores(size_t *out_count);
/* The store called name, or NULL with err filled (invalid_argument). */
const cfgd_cert_store *cfgd_cert_store_find(const char *name, cfgd_error *err);
/* 40 hex digits, either case. */
bool cfgd_thumbprint_valid(const char *thumbprint, cfgd_error *err);

/* What one certificate file says about itself (certs_x509.c). */
typedef struct {
    char subject[512];
    char issuer[512];
    char not_before[32]; /* ISO 8601 UTC */
    char not_after[32];
    char sha1[CFGD_THUMBPRINT_LEN + 1]; /* upper-case hex */
    char sha256[65];
    char *pem; /* the certificate alone, re-encoded as PEM; free() it */
    size_t pem_len;
} cfgd_cert_info;

/* Parses data as exactly one X.509 certificate, PEM or DER. Refuses anything else, and any file
 * that carries a private key, with invalid_argument. On success fills *out (want_pem: with the PEM
 * re-encoding, to be freed with cfgd_cert_info_deinit). */
int cfgd_cert_parse(const void *data, size_t len, bool want_pem, cfgd_cert_info *out,
                    cfgd_error *err);
void cfgd_cert_info_deinit(cfgd_cert_info *info);

int cfgd_validate_certs_install(const json_t *args, cfgd_error *err);
int cfgd_validate_certs_ref(const json_t *args, cfgd_error *err);

int cfgd_op_certs_list(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err);
int cfgd_op_certs_install(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err);
int cfgd_op_certs_uninstall(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err);
int cfgd_op_certs_details(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err);

#endif
