/* Replacing a file all or nothing: what every writer of state, settings and keys uses. */
#ifndef IOTDM_COMMON_ATOMIC_FILE_H
#define IOTDM_COMMON_ATOMIC_FILE_H

#include <stddef.h>

#include "iotdm/result.h"

/* Replaces the file at path with len bytes of data, all or nothing: the bytes go to a temporary
 * file in the same folder, which gets exactly mode (the umask does not apply), is synced, and is
 * renamed over path; then the folder is synced, so that the new name survives a crash too. A link
 * at path is replaced, never followed. The folder must exist.
 *
 * Returns 0 or -errno. On failure path still holds what it held before and no temporary file is
 * left behind, except when only the last step (syncing the folder) failed: path then already
 * holds the new data, which may not survive a crash. err (may be NULL) gets a message naming
 * path, the step that failed and why ("cannot write /x/state.json: fsync: No space left on
 * device"). */
IOTDM_NODISCARD iotdm_result atomic_file_write(const char *path, const void *data, size_t len,
                                               unsigned mode, char *err, size_t err_cap);

/* The same for the file name (no '/') in the folder open as dirfd, for callers that work inside
 * a folder they opened (openat and friends); shown is the path used in err. */
IOTDM_NODISCARD iotdm_result atomic_file_write_at(int dirfd, const char *name, const char *shown,
                                                  const void *data, size_t len, unsigned mode,
                                                  char *err, size_t err_cap);

#endif
