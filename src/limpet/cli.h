/* limpet's command line: the parsed arguments and the command handlers. */
#ifndef IOTDM_LIMPET_CLI_H
#define IOTDM_LIMPET_CLI_H

#include <jansson.h>
#include <stdbool.h>

#include "limpet/tpm.h"

#define CLI_MAX_ARGS 8

typedef struct {
    const char *tcti;
    bool json, force, help;
    const char *expiry, *format, *out, *lockout_auth, *ca_file;
    long slot; /* -1: a global command */
    const char *command;
    const char *args[CLI_MAX_ARGS];
    int nargs;
    limpet_tpm *tpm;
} limpet_cli;

/* A command fills *out with its result (printed as JSON with --json, as "key: value" lines
 * otherwise) or prints itself and leaves *out NULL. Returns the exit status. */
typedef int (*cli_command_fn)(limpet_cli *c, json_t **out);

/* Prints the TPM's last error for what failed; returns the exit status for r. */
int cli_tpm_error(limpet_cli *c, const char *what, iotdm_result r);
/* Prints a usage error; returns 2. */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* base64 of bytes as a new JSON string. */
json_t *cli_b64(const uint8_t *p, size_t n);

int cmd_version(limpet_cli *c, json_t **out);
int cmd_info(limpet_cli *c, json_t **out);
int cmd_ek(limpet_cli *c, json_t **out);
int cmd_srk(limpet_cli *c, json_t **out);
int cmd_registration_id(limpet_cli *c, json_t **out);
int cmd_enrollment_info(limpet_cli *c, json_t **out);
int cmd_slots(limpet_cli *c, json_t **out);
int cmd_clear(limpet_cli *c, json_t **out);

int cmd_uri(limpet_cli *c, json_t **out);
int cmd_set_uri(limpet_cli *c, json_t **out);
int cmd_delete_uri(limpet_cli *c, json_t **out);
int cmd_import_key(limpet_cli *c, json_t **out);
int cmd_evict_key(limpet_cli *c, json_t **out);
int cmd_import_connection_string(limpet_cli *c, json_t **out);
int cmd_sas(limpet_cli *c, json_t **out);
int cmd_hmac(limpet_cli *c, json_t **out);
int cmd_destroy(limpet_cli *c, json_t **out);
int cmd_dps_register(limpet_cli *c, json_t **out);

#endif
