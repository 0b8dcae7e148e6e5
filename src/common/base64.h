/* Standard base64 (RFC 4648 §4, with padding), as Azure keys and SAS signatures use it. */
#ifndef IOTDM_COMMON_BASE64_H
#define IOTDM_COMMON_BASE64_H

#include <stddef.h>

#include "iotdm/result.h"

#define BASE64_ENCODED_LEN(n) ((((n) + 2) / 3) * 4)

/* Writes a NUL-terminated encoding. Returns its length, or IOTDM_E_TOO_LARGE. */
long base64_encode(const unsigned char *in, size_t len, char *out, size_t out_cap);

/* Decodes; tolerates missing padding (Node's decoder does, and some keys arrive without it).
 * Returns the decoded length, IOTDM_E_MALFORMED, or IOTDM_E_TOO_LARGE. */
long base64_decode(const char *in, size_t len, unsigned char *out, size_t out_cap);

#endif
