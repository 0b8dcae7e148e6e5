/* iotdm-transfer: the agent's file transfers in a process of their own, so that the long-running
 * agent never loads libcurl and its two dozen libraries (several MB of memory on a small device);
 * it lives only while a transfer runs. Spoken to by the agent (src/agent/transfer_client.c):
 *
 *   iotdm-transfer download URL SHA256 MAX_BYTES [CA_FILE]   fd 3: the (empty) file to fill
 *   iotdm-transfer upload HOST PORT CA_FILE DEVICE_ID BLOB   fd 3: the file; stdin: one line,
 *                                   "token SharedAccessSignature sr=…" (the device's SAS token)
 *   iotdm-transfer upload HOST PORT CA_FILE DEVICE_ID BLOB CERT_FILE KEY_FILE
 *                                   fd 3: the file; X.509: the certificate is presented instead
 *
 * Exit status: 0 ok (upload: the hub's blob name on stdout), else a code below with one line on
 * stderr saying why. */
#include <curl/curl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/transfer/transfer.h"
#include "agent/transfer_client.h"

static int exit_code(iotdm_result r)
{
    switch (r) {
    case IOTDM_OK:
        return TRANSFER_EXIT_OK;
    case IOTDM_E_MALFORMED:
        return TRANSFER_EXIT_MALFORMED;
    case IOTDM_E_TOO_LARGE:
        return TRANSFER_EXIT_TOO_LARGE;
    case IOTDM_E_PRECONDITION:
        return TRANSFER_EXIT_HASH;
    case IOTDM_E_UNAUTHORIZED:
        return TRANSFER_EXIT_UNAUTHORIZED;
    default:
        return TRANSFER_EXIT_FAILED;
    }
}

static int download(int argc, char **argv)
{
    if (argc < 5 || argc > 6)
        return TRANSFER_EXIT_USAGE;
    agent_transfer t = {.download_ca_file = argc == 6 ? argv[5] : NULL};
    char err[512] = "";
    iotdm_result r = agent_download_into(&t, argv[2], argv[3], strtoull(argv[4], NULL, 10),
                                         TRANSFER_FILE_FD, err, sizeof err);
    if (r < 0)
        fprintf(stderr, "%s\n", err);
    return exit_code(r);
}

/* The SAS token line on stdin; false when there is none or it is not one. */
static bool read_token(char *line, size_t cap)
{
    size_t pre = strlen(TRANSFER_TOKEN_PREFIX);
    if (!fgets(line, (int)cap, stdin))
        return false;
    line[strcspn(line, "\r\n")] = '\0';
    if (strncmp(line, TRANSFER_TOKEN_PREFIX, pre) != 0 ||
        strncmp(line + pre, "SharedAccessSignature ", 22) != 0)
        return false;
    memmove(line, line + pre, strlen(line + pre) + 1);
    return true;
}

static int upload(int argc, char **argv)
{
    if (argc != 7 && argc != 9)
        return TRANSFER_EXIT_USAGE;
    char token[1200] = "";
    bool x509 = argc == 9;
    if (!x509 && !read_token(token, sizeof token)) {
        memset(token, 0, sizeof token);
        fprintf(stderr, "no device SAS token on stdin\n");
        return TRANSFER_EXIT_USAGE;
    }
    agent_transfer t = {
        .hub_host = argv[2],
        .hub_https_port = (unsigned)strtoul(argv[3], NULL, 10),
        .hub_ca_file = argv[4],
        .device_id = argv[5],
        .device_token = x509 ? NULL : token,
        .cert_file = x509 ? argv[7] : NULL,
        .key_file = x509 ? argv[8] : NULL,
    };
    char err[512] = "", blob[1200] = "";
    iotdm_result r =
        agent_upload(&t, TRANSFER_FILE_FD, argv[6], blob, sizeof blob, err, sizeof err);
    memset(token, 0, sizeof token);
    if (r < 0)
        fprintf(stderr, "%s\n", err);
    else
        printf("%s\n", blob);
    return exit_code(r);
}

int main(int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        printf(
            "Usage: iotdm-transfer download URL SHA256 MAX_BYTES [CA_FILE]   (fd 3: output)\n"
            "       iotdm-transfer upload HOST PORT CA_FILE DEVICE_ID BLOB [CERT_FILE KEY_FILE]\n"
            "           (fd 3: input; without a certificate, stdin: \"token <device SAS token>\")\n"
            "Run by iotdm-agent for each file transfer; not meant to be run by hand.\n");
        return 0;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "cannot initialise libcurl\n");
        return TRANSFER_EXIT_FAILED;
    }
    int status = TRANSFER_EXIT_USAGE;
    if (argc >= 2 && !strcmp(argv[1], "download"))
        status = download(argc, argv);
    else if (argc >= 2 && !strcmp(argv[1], "upload"))
        status = upload(argc, argv);
    if (status == TRANSFER_EXIT_USAGE)
        fprintf(stderr, "usage: iotdm-transfer download|upload … (see --help)\n");
    curl_global_cleanup();
    return status;
}
