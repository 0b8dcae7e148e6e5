/* Percent-encoding (RFC 3986) as Azure IoT uses it: SAS resources, property bags, user names. */
#ifndef IOTDM_COMMON_URLENC_H
#define IOTDM_COMMON_URLENC_H

#include <stdbool.h>
#include <stddef.h>

#include "iotdm/result.h"

/* Encodes in[0..len) keeping A-Z a-z 0-9 - _ . ~ and writing %XX (upper-case hex) for the rest.
 * Writes a NUL-terminated string into out. Returns the encoded length (without NUL), or
 * IOTDM_E_TOO_LARGE (nothing useful written) when out_cap is too small. */
long urlenc_encode(const char *in, size_t len, char *out, size_t out_cap);

/* Decodes %XX escapes (either hex case). With plus_is_space, '+' becomes ' ' (form encoding).
 * Writes a NUL-terminated result into out (in-place decoding with out == in is allowed).
 * Returns the decoded length, IOTDM_E_MALFORMED for a bad escape, or IOTDM_E_TOO_LARGE. */
long urlenc_decode(const char *in, size_t len, char *out, size_t out_cap, bool plus_is_space);

#endif
