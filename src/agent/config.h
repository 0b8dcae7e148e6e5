/* iotdm-agent configuration: a key = value file, command-line overrides, a connection string. */
#ifndef IOTDM_AGENT_CONFIG_H
#define IOTDM_AGENT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "capabilities/capabilities.h"
#include "iotdm/result.h"

#define AGENT_DEFAULT_CONFIG "/etc/iotdm/agent.conf"

typedef struct {
    char hub_host[256];
    unsigned hub_port;
    char device_id[129];
    char device_key[128]; /* secret: never logged */
    char cert_file[512];
    char key_file[512];
    char ca_file[512];
    char download_ca_file[512]; /* trust for https downloads (default: the system's) */
    unsigned hub_https_port;    /* file uploads; 443 */
    char transfer_helper[512];  /* iotdm-transfer ("" = beside the agent) */
    char state_dir[512];
    char configd_socket[256];
    char model_id[256];
    char reboot_inhibit_file[256]; /* while it exists, the agent (as host app) vetoes reboots */
    cap_selection capabilities;
    bool time_service_local; /* local time-service settings are present */
    bool time_service_enabled;
    bool time_service_started;
    char time_service_priority[8]; /* local | remote */
    int tpm_slot;                  /* -1: no TPM; else the limpet slot holding URI and key */
    char tpm_tcti[256];            /* TPM access; empty: $TPM2TOOLS_TCTI or /dev/tpmrm0 */
} agent_config;

void agent_config_defaults(agent_config *cfg);
/* Reads the config file (missing is fine only when it is the default path), then the flags.
 * On error writes the reason into error ("help" for --help) and returns IOTDM_E_MALFORMED. */
iotdm_result agent_config_load(agent_config *cfg, int argc, char **argv, char *error,
                               size_t error_cap);

#endif
