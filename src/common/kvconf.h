/* Generic "key = value" configuration files: '#' comments, blank lines, keys may repeat. */
#ifndef IOTDM_COMMON_KVCONF_H
#define IOTDM_COMMON_KVCONF_H

#include <stddef.h>

#include "iotdm/result.h"

#define KVCONF_MAX_FILE (256 * 1024)
#define KVCONF_MAX_LINE 1024

/* Called once per setting, in file order, with key and value trimmed of surrounding blanks. On
 * failure it writes a message (without file or line; the parser adds them) into error. */
typedef IOTDM_NODISCARD iotdm_result (*kvconf_fn)(void *ctx, const char *key, const char *value,
                                                  char *error, size_t error_cap);

/* Parses text[0..len) ("name" is used in messages). Stops at the first failing line and returns
 * its result, with error = "name:line: message". A line without '=' or longer than KVCONF_MAX_LINE
 * is IOTDM_E_MALFORMED. */
IOTDM_NODISCARD iotdm_result kvconf_parse(const char *text, size_t len, const char *name,
                                          kvconf_fn fn, void *ctx, char *error, size_t error_cap);

/* Reads path (at most KVCONF_MAX_FILE bytes) and parses it like kvconf_parse. A file that cannot be
 * read gives -errno and a message naming it. */
IOTDM_NODISCARD iotdm_result kvconf_load(const char *path, kvconf_fn fn, void *ctx, char *error,
                                         size_t error_cap);

/* Copies key with '_' turned into '-', so file keys (hub_host) match option names (hub-host). */
void kvconf_dashed(const char *key, char *out, size_t out_cap);

#endif
