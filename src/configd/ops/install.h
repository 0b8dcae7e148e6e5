/* Helpers for the operations that install files from the agent: the passed file, read back after
 * its SHA-256 check; the previous content, kept to undo a write; and the reload command after. */
#ifndef IOTDM_CONFIGD_OPS_INSTALL_H
#define IOTDM_CONFIGD_OPS_INSTALL_H

#include <stdbool.h>
#include <stddef.h>

#include "configd/optable.h"

/* The one file passed with the request: checked against sha256 (64 hex digits) and read whole, at
 * most max bytes (too_large beyond). *out is NUL-terminated (text parsers may rely on it; binary
 * content may hold NULs, hence *out_len); xfree it. */
int cfgd_passed_file_read(const cfgd_ctx *ctx, const char *sha256, size_t max, char **out,
                          size_t *out_len, cfgd_error *err);

/* A file as it was before an operation changed it, to put it back if a later step fails. */
typedef struct {
    bool existed;
    char *data; /* xmalloc'd */
    size_t len;
} cfgd_saved_file;

/* Reads path (at most max bytes) into *out; a missing file is saved as "did not exist". */
int cfgd_file_save(cfgd_ctx *ctx, const char *path, size_t max, cfgd_saved_file *out,
                   cfgd_error *err);
/* Puts the saved state back (rewrites it with mode, or removes what was written); best effort:
 * it runs only after another error, which is the one reported, so its own failure is logged.
 * Frees the saved data. */
void cfgd_file_restore(cfgd_ctx *ctx, const char *path, cfgd_saved_file *saved, unsigned mode);
void cfgd_saved_file_deinit(cfgd_saved_file *saved);

/* Runs argv (absolute program, no shell); a non-zero exit is "failed" with the program's words. */
int cfgd_run_checked(cfgd_ctx *ctx, const char *const *argv, cfgd_error *err);

/* Lower-case hex SHA-256 of data into out[65]. */
void cfgd_sha256_hex(const void *data, size_t len, char out[65]);

#endif
