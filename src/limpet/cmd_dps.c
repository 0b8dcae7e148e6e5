/* limpet's dps-register: DPS registration with TPM attestation over HTTPS. */
#include <stdio.h>

#include "limpet/cli.h"
#include "limpet/dps.h"

int cmd_dps_register(limpet_cli *c, json_t **out)
{
    limpet_dps_options o = {
        .endpoint = c->args[0],
        .id_scope = c->args[1],
        .ca_file = c->ca_file,
        .slot = (unsigned)c->slot,
    };
    limpet_dps_result res;
    iotdm_result r = limpet_dps_register(c->tpm, &o, &res);
    if (r < 0) {
        fprintf(stderr, "limpet: dps-register: %s\n", res.error);
        return r == IOTDM_E_NOT_FOUND ? 3 : 1;
    }
    *out =
        json_pack("{si ss ss ss ss}", "slot", (int)c->slot, "registrationId", res.registration_id,
                  "status", res.status, "assignedHub", res.assigned_hub, "deviceId", res.device_id);
    return 0;
}
