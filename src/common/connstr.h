/* Azure connection strings: "Key=Value;Key=Value", each split at the first '='. */
#ifndef IOTDM_COMMON_CONNSTR_H
#define IOTDM_COMMON_CONNSTR_H

#include <stdbool.h>
#include <stddef.h>

/* Copies the value of key (case-sensitive) into out. Returns false when absent or too long. */
bool connstr_get(const char *connstr, const char *key, char *out, size_t out_cap);

#endif
