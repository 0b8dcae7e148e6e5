/* The agent's side of file transfers: each one runs in a short-lived iotdm-transfer process, so the
 * agent itself never loads libcurl (and the two dozen libraries it brings). */
#ifndef IOTDM_AGENT_TRANSFER_CLIENT_H
#define IOTDM_AGENT_TRANSFER_CLIENT_H

#include <stdatomic.h>
#include <stddef.h>

#include "iotdm/client.h"
#include "iotdm/result.h"

/* The protocol with iotdm-transfer: the file travels as descriptor 3, the outcome as exit status.
 * An upload authenticates to the hub either with a device SAS token the agent signed (one line
 * on the helper's stdin: "token SharedAccessSignature sr=…", never on its command line, so the
 * device key or TPM never reaches the helper) or with the device's X.509 certificate, whose file
 * names are arguments (the helper reads the key file itself; its content never travels). */
#define TRANSFER_FILE_FD      3
#define TRANSFER_TOKEN_PREFIX "token "
/* The token only has to outlive one upload: the SAS URI request, the blob PUT (at most 600 s)
 * and the notification. */
#define TRANSFER_TOKEN_TTL_S 900
enum {
    TRANSFER_EXIT_OK = 0,
    TRANSFER_EXIT_USAGE = 2,
    TRANSFER_EXIT_MALFORMED = 10,
    TRANSFER_EXIT_TOO_LARGE = 11,
    TRANSFER_EXIT_HASH = 12,
    TRANSFER_EXIT_UNAUTHORIZED = 13,
    TRANSFER_EXIT_FAILED = 14,
};

typedef struct {
    char helper[512];   /* iotdm-transfer: next to the agent's own binary unless configured */
    char temp_dir[600]; /* downloads are staged here, unlinked at once */
    const char *download_ca_file;
    const char *hub_host;
    unsigned hub_https_port;
    const char *hub_ca_file;
    const char *device_id;
    /* Upload credentials: the client signs SAS tokens (device key or TPM); with cert_file set the
     * device's X.509 certificate is presented instead. */
    iotdm_client *client;
    const char *cert_file;
    const char *key_file;
    /* Transfers run on the capabilities' worker too: the helper running now (0: none), and
     * whether the agent is stopping (no new helper starts, the running one is stopped). */
    atomic_int running_pid;
    atomic_bool cancelled;
} agent_transfers;

/* helper: a path, or NULL/"" for the iotdm-transfer beside /proc/self/exe. */
void agent_transfers_init(agent_transfers *t, const char *helper, const char *state_dir);

/* cap_env.download: the file arrives as an unlinked temporary file at offset 0 (caller closes). */
IOTDM_NODISCARD iotdm_result agent_transfer_download(void *ctx, const char *url,
                                                     const char *sha256_hex, size_t max_bytes,
                                                     int *out_fd, char *err, size_t err_cap);
/* Stops the running helper and refuses new ones (-ECANCELED), for a stopping agent: a stalled
 * download must not hold its shutdown for the transfer's whole time limit. Any thread. */
void agent_transfers_cancel(void *ctx);
/* cap_env.upload. */
IOTDM_NODISCARD iotdm_result agent_transfer_upload(void *ctx, int fd, const char *blob_name,
                                                   char *out_blob, size_t out_cap, char *err,
                                                   size_t err_cap);

#endif
