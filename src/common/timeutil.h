/* Wall-clock time helpers. */
#ifndef IOTDM_COMMON_TIMEUTIL_H
#define IOTDM_COMMON_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

int64_t time_now_ms(void);  /* CLOCK_REALTIME, milliseconds since the epoch */
int64_t time_mono_ms(void); /* CLOCK_MONOTONIC milliseconds */
/* "YYYY-MM-DDTHH:MM:SS.mmmZ"; ms == 0 gives Azure's "never", "0001-01-01T00:00:00Z". */
void time_format_iso(int64_t ms, char *buf, size_t cap);

#endif
