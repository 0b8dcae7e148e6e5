/* TPM information (limpet info): family, vendor, firmware, authorization state, algorithms. */
#ifndef IOTDM_LIMPET_INFO_H
#define IOTDM_LIMPET_INFO_H

#include <jansson.h>

#include "limpet/tpm.h"

/* A new JSON object describing the TPM; the caller owns it. */
IOTDM_NODISCARD iotdm_result limpet_tpm_info(limpet_tpm *tpm, json_t **out_info);

#endif
