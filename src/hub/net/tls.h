/* The hub's TLS material: a local CA and a server certificate, created on first start. */
#ifndef IOTDM_HUB_NET_TLS_H
#define IOTDM_HUB_NET_TLS_H

#include <openssl/ssl.h>
#include <stdbool.h>

#include "iotdm/result.h"

/* Makes sure DIR/ca.pem, DIR/ca.key, DIR/server.pem and DIR/server.key exist and that the server
 * certificate's SANs cover hostname, localhost, 127.0.0.1 and listen_addr; issues a new server
 * certificate from the existing CA when they do not. Keys are ECDSA P-256; private keys 0600. */
IOTDM_NODISCARD iotdm_result hub_tls_ensure(const char *data_dir, const char *hostname,
                                            const char *listen_addr);

/* A TLS 1.2+ server context with the server certificate. With request_client_cert, client
 * certificates are requested but not verified by OpenSSL: the hub checks them against the registry
 * at CONNECT (self-signed devices). */
SSL_CTX *hub_tls_server_ctx(const char *data_dir, bool request_client_cert);

/* The same request on one connection: the HTTPS listener asks every client for a certificate so
 * that DPS X.509 registration works over HTTPS, but never requires one (browsers and service
 * clients send none and are unaffected); DPS verifies what comes (dps_cert.c). */
#define HUB_TLS_CLIENT_CA_NAME "iotdm-hub devices (certificates are matched by thumbprint)"
void hub_tls_request_client_cert(SSL *ssl);

/* Lower-case hex SHA-1 and SHA-256 thumbprints of the peer certificate; false when there is none.
 */
bool hub_tls_peer_thumbprints(SSL *ssl, char sha1_hex[41], char sha256_hex[65]);

/* Self-signed X.509 device authentication, for MQTT CONNECT and device HTTPS calls alike: true
 * when the peer certificate's SHA-1 or SHA-256 thumbprint equals primary or secondary (hex, any
 * case; an empty one never matches). False without a peer certificate. */
bool hub_tls_peer_matches(SSL *ssl, const char *primary, const char *secondary);
/* The same check on thumbprints taken earlier (hub_tls_peer_thumbprints), for code that runs away
 * from the connection (units of work). */
bool hub_tls_thumbprints_match(const char *sha1_hex, const char *sha256_hex, const char *primary,
                               const char *secondary);

#endif
