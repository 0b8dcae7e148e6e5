/* X.509 for DPS: enrollment certificates (PEM or base64 DER), matching a device's TLS client
 * certificate and chain against them (docs/protocol.md §7.9), and their service-API "info". */
#ifndef IOTDM_HUB_DPS_CERT_H
#define IOTDM_HUB_DPS_CERT_H

#include <jansson.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdbool.h>

/* Parses PEM or base64 of DER; NULL when it is neither. */
X509 *dps_cert_parse(const char *text);

/* certs is {"primary":{"certificate":…},"secondary":{…}}. The device's leaf certificate must be one
 * of them (individual) or chain up to one of them (group), and its subject CN must be the
 * registration id. out_sha256 gets the leaf's SHA-256 thumbprint (lower-case hex). */
bool dps_cert_client_matches(X509 *leaf, const char *registration_id, const json_t *certs,
                             char out_sha256[65]);
bool dps_cert_chain_matches(X509 *leaf, STACK_OF(X509) * sent, const char *registration_id,
                            const json_t *certs, char out_sha256[65]);

/* {"subjectName","sha1Thumbprint","sha256Thumbprint","issuerName","notBeforeUtc","notAfterUtc",
 * "serialNumber","version"} of a certificate; NULL when it does not parse. */
json_t *dps_cert_info(const char *text);

#endif
