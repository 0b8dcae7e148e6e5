/* ISO 8601 date-times as operators type them: any UTC offset, optional fractional seconds. */
#ifndef IOTDM_COMMON_ISO8601_H
#define IOTDM_COMMON_ISO8601_H

#include <stddef.h>
#include <stdint.h>

#include "iotdm/result.h"

/* Parses "YYYY-MM-DDTHH:MM[:SS[.fff…]](Z|±HH:MM|±HHMM|±HH)" (a space may replace the 'T') into
 * milliseconds since the epoch (UTC). Fractions beyond milliseconds are truncated. A missing
 * offset is refused: a schedule must not depend on where the device happens to be.
 * Returns IOTDM_E_MALFORMED with a reason in err (may be NULL). */
IOTDM_NODISCARD iotdm_result iso8601_parse(const char *text, int64_t *out_ms, char *err,
                                           size_t err_cap);

/* "YYYY-MM-DDTHH:MM:SSZ" (whole seconds, UTC). */
void iso8601_format_utc(int64_t ms, char *buf, size_t cap);

#endif
