/* TPM-backed authentication for the agent (a limpet slot), when built with tpm2-tss. */
#include "agent/tpm_auth.h"

#include <stdio.h>
#include <stdlib.h>

#include "common/log.h"

#ifdef IOTDM_HAVE_TPM
#include "limpet/signer.h"

/* One agent process has one identity: the signer lives as long as the process. */
static limpet_signer signer;

iotdm_result agent_tpm_auth(agent_config *cfg, iotdm_client_config *cc)
{
    setenv("TSS2_LOG", "all+NONE", 0); /* tpm2-tss would print its own warnings */
    limpet_uri uri;
    char err[512];
    iotdm_result r =
        limpet_signer_init(&signer, cfg->tpm_tcti, (unsigned)cfg->tpm_slot, &uri, err, sizeof err);
    if (r < 0) {
        log_error("agent", "TPM: %s", err);
        return r;
    }
    snprintf(cfg->hub_host, sizeof cfg->hub_host, "%s", uri.host);
    snprintf(cfg->device_id, sizeof cfg->device_id, "%s", uri.device_id);
    cc->host = cfg->hub_host;
    cc->device_id = cfg->device_id;
    cc->device_key = NULL;
    cc->signer = limpet_signer_sign;
    cc->signer_ctx = &signer;
    log_info("agent", "TPM slot %d: hub=%s device=%s (SAS signed in the TPM)", cfg->tpm_slot,
             uri.host, uri.device_id);
    return IOTDM_OK;
}

void agent_tpm_auth_deinit(void)
{
    limpet_signer_deinit(&signer);
}
#else
iotdm_result agent_tpm_auth(agent_config *cfg, iotdm_client_config *cc)
{
    (void)cfg, (void)cc;
    log_error("agent", "tpm-slot: this agent was built without TPM support (tpm2-tss)");
    return IOTDM_E_UNSUPPORTED;
}

void agent_tpm_auth_deinit(void)
{
}
#endif
