/* Device file uploads outside HTTP: where the bytes live, the per-device quota, and retention
 * (docs/hub.md "Limits"). The HTTP side is http/files.c and http/files_blob.c. */
#ifndef IOTDM_HUB_FILES_H
#define IOTDM_HUB_FILES_H

#include <stddef.h>
#include <stdint.h>

#include "hub/hub.h"

#define HUB_UPLOAD_SAS_TTL_S  3600 /* a SAS URI is valid this long */
#define HUB_UPLOAD_MAX_ACTIVE 10   /* Azure: 10 concurrent file uploads per device */

/* DATA/files/<cid>: the bytes of an upload (names never touch the disk). */
void hub_files_path(const hub *h, const char *correlation_id, char *out, size_t cap);

/* Whether a device may keep another upload of add_bytes (in a unit: reads the store). Returns
 * IOTDM_OK, or IOTDM_E_QUOTA with the reason in why. */
IOTDM_NODISCARD iotdm_result hub_files_quota_check(const hub *h, hub_store *store,
                                                   const char *device_id, uint64_t add_bytes,
                                                   bool new_file, char *why, size_t why_cap);

typedef struct {
    size_t files;
    uint64_t bytes;
} hub_files_swept;

/* Retention (housekeeping, in a unit): deletes finished uploads older than the retention and
 * uploads whose SAS expired without completing, with their bytes. */
void hub_files_sweep(hub *h, hub_store *store, int64_t now_ms, hub_files_swept *out);

#endif
