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
    unsigned keepalive_s; /* MQTT keep-alive; 0: libiotdm's default (240 s) */
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
    /* DPS (provision.c); used when dps_id_scope is set. The hub and device id then come from
     * DPS's assignment, the credentials from one of: dps_key (individual enrollment),
     * dps_group_key (group enrollment, the device key derived), cert_file (X.509), tpm_slot. */
    char dps_endpoint[256];
    unsigned dps_port; /* MQTT over TLS; 8883 */
    char dps_id_scope[65];
    char dps_registration_id[129];
    char dps_key[128];        /* secret: never logged */
    char dps_group_key[128];  /* secret: never logged */
    unsigned dps_retry_max_s; /* longest wait between DPS attempts; 300 */
    char limpet[512];         /* limpet, for TPM registration ("" = beside the agent, or PATH) */
} agent_config;

/* True when the agent gets its identity from DPS. */
bool agent_config_uses_dps(const agent_config *cfg);

void agent_config_defaults(agent_config *cfg);
/* Reads the config file (missing is fine only when it is the default path), then the flags.
 * On error writes the reason into error ("help" for --help) and returns IOTDM_E_MALFORMED. */
IOTDM_NODISCARD iotdm_result agent_config_load(agent_config *cfg, int argc, char **argv,
                                               char *error, size_t error_cap);

#endif
