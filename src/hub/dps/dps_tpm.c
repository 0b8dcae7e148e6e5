/* DPS TPM attestation over HTTPS (azure-protocols.md §3.8): not served yet. */
#include "hub/dps/dps_internal.h"

bool dps_tpm_attest(hub *h, const char *registration_id, const json_t *enrollment,
                    const json_t *request, const hub_dps_creds *creds, dps_match *m,
                    hub_dps_reply *out)
{
    (void)h;
    (void)enrollment;
    (void)request;
    (void)creds;
    (void)m;
    hub_dps_error(out, DPS_ERR_UNAUTHORIZED,
                  "registration id '%s': TPM attestation is not served by this hub yet",
                  registration_id);
    return false;
}
