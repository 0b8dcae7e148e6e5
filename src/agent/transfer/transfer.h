/* File transfers with libcurl, run inside iotdm-transfer (never in the agent itself): downloads
 * over HTTPS checked against a SHA-256, and uploads through the hub's Azure-compatible file-upload
 * API (docs/protocol.md §8.12). */
#ifndef IOTDM_AGENT_TRANSFER_TRANSFER_H
#define IOTDM_AGENT_TRANSFER_TRANSFER_H

#include <stddef.h>

#include "iotdm/result.h"

typedef struct {
    const char *download_ca_file; /* trust for downloads; NULL: the system's bundle */
    const char *hub_host;         /* uploads: the hub, its CA and the device's credentials */
    unsigned hub_https_port;      /* 443 unless testing */
    const char *hub_ca_file;
    const char *device_id;
    /* Exactly one: a device SAS token for {hub_host}/devices/{device_id}, or the device's X.509
     * certificate and key (PEM files) presented to the hub. */
    const char *device_token;
    const char *cert_file;
    const char *key_file;
} agent_transfer;

#define AGENT_DOWNLOAD_MAX (256u * 1024 * 1024)

/* Downloads url (https:// only) into fd (an empty file), at most max_bytes, and checks its
 * SHA-256 against sha256_hex (64 hex digits, either case). Errors: IOTDM_E_MALFORMED (bad URL or
 * hash given), IOTDM_E_TOO_LARGE, IOTDM_E_PRECONDITION (hash mismatch), -EIO (network; err says
 * what). */
IOTDM_NODISCARD iotdm_result agent_download_into(void *ctx, const char *url, const char *sha256_hex,
                                                 size_t max_bytes, int fd, char *err,
                                                 size_t err_cap);

/* Uploads fd's contents as blob_name ("logs/x.txt") through the hub: SAS URI, PUT, notification.
 * out_blob receives the hub's name for it ("<deviceId>/logs/x.txt"). */
IOTDM_NODISCARD iotdm_result agent_upload(void *ctx, int fd, const char *blob_name, char *out_blob,
                                          size_t out_cap, char *err, size_t err_cap);

#endif
