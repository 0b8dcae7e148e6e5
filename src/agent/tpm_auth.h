/* The agent's TPM authentication: hub host and device id from a limpet slot, SAS tokens signed
 * inside the TPM. */
#ifndef IOTDM_AGENT_TPM_AUTH_H
#define IOTDM_AGENT_TPM_AUTH_H

#include "agent/config.h"
#include "iotdm/client.h"

/* Fills cfg's hub host and device id from the slot's URI and points cc at the TPM signer.
 * IOTDM_E_UNSUPPORTED when the agent was built without tpm2-tss. Logs the reason on failure. */
IOTDM_NODISCARD iotdm_result agent_tpm_auth(agent_config *cfg, iotdm_client_config *cc);
void agent_tpm_auth_deinit(void);

#endif
