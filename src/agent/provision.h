/* The agent's DPS provisioning: the stored assignment (state_dir/identity/provisioning.json),
 * registering when there is none (libiotdm's DPS client, or limpet for a TPM), and retrying
 * with back-off. */
#ifndef IOTDM_AGENT_PROVISION_H
#define IOTDM_AGENT_PROVISION_H

#include <stdbool.h>
#include <stdint.h>

#include "agent/config.h"

/* Beside the outbox, in the folder configd's factory reset keeps with keepProvisioning
 * (factory_reset_keep = /var/lib/iotdm/identity). */
#define AGENT_IDENTITY_DIR       "identity"
#define AGENT_ASSIGNMENT_FILE    "provisioning.json"
#define AGENT_DPS_TIMEOUT_S      60
#define AGENT_DPS_FIRST_RETRY_MS 5000

/* What DPS assigned; no secrets (the key stays in its key file, the TPM or the certificate). */
typedef struct {
    char method[16]; /* symmetricKey, groupKey, x509, tpm */
    char id_scope[65];
    char registration_id[129];
    char assigned_hub[256];
    char device_id[129];
    char provisioned_at[32]; /* ISO 8601 UTC */
} agent_assignment;

/* Polled while waiting or registering: true when the agent must stop. */
typedef bool (*agent_stop_fn)(void *ctx);

/* Makes cfg's hub identity (hub_host, device_id, device_key) the stored assignment's. Without one
 * (or with force: it is dropped first) it waits delay_ms, registers with DPS, stores the result
 * and then uses it; failures are logged with DPS's reason and retried with back-off (a refusal
 * waits dps_retry_max_s). Returns IOTDM_OK, -ECANCELED when stop() said so, or IOTDM_E_MALFORMED
 * for a configuration DPS can never accept. For a TPM the slot receives the hub URI and key. */
IOTDM_NODISCARD iotdm_result agent_provision(agent_config *cfg, bool force, int64_t delay_ms,
                                             agent_stop_fn stop, void *stop_ctx,
                                             agent_assignment *out);

/* Drops the stored assignment (the next start registers again). */
void agent_assignment_forget(const agent_config *cfg);

#endif
