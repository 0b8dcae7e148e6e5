/* Internals of the TPM helpers: the handle and the ESAPI plumbing the helper files share. */
#ifndef IOTDM_LIMPET_TPM_INTERNAL_H
#define IOTDM_LIMPET_TPM_INTERNAL_H

#include <tss2/tss2_esys.h>

#include "limpet/tpm.h"

struct limpet_tpm {
    ESYS_CONTEXT *esys;
    TSS2_TCTI_CONTEXT *tcti;
    char error[256];
};

/* Records "what: TPM error text" on the handle and returns IOTDM_E_INTERNAL (or the mapping of
 * a TPM "handle/index does not exist" error to IOTDM_E_NOT_FOUND). */
IOTDM_NODISCARD iotdm_result tpm_fail(limpet_tpm *tpm, const char *what, TSS2_RC rc);
IOTDM_NODISCARD iotdm_result tpm_failf(limpet_tpm *tpm, iotdm_result r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* An ESYS_TR for a persistent handle or NV index; NOT_FOUND when absent. */
IOTDM_NODISCARD iotdm_result tpm_tr_from_handle(limpet_tpm *tpm, uint32_t handle, ESYS_TR *out);
/* Makes a loaded object persistent at handle, evicting what was there before. */
IOTDM_NODISCARD iotdm_result tpm_persist(limpet_tpm *tpm, ESYS_TR object, uint32_t handle);
/* Removes the persistent object at handle; absent is fine. */
IOTDM_NODISCARD iotdm_result tpm_evict(limpet_tpm *tpm, uint32_t handle);
/* The SRK's ESYS_TR, created first if absent. */
IOTDM_NODISCARD iotdm_result tpm_srk(limpet_tpm *tpm, ESYS_TR *out);
/* The EK's ESYS_TR, created first if absent. */
IOTDM_NODISCARD iotdm_result tpm_ek(limpet_tpm *tpm, ESYS_TR *out);

#endif
