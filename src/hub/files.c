/* Upload bytes on the disk, quotas and retention. Runs in units of work: the file system calls
 * here may wait for the disk, which no event loop may do. */
#include "hub/files.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

#define SWEEP_BATCH 256 /* records deleted per housekeeping tick at most */

void hub_files_path(const hub *h, const char *correlation_id, char *out, size_t cap)
{
    snprintf(out, cap, "%s/files/%s", h->cfg.data_dir, correlation_id);
}

iotdm_result hub_files_quota_check(const hub *h, hub_store *store, const char *device_id,
                                   uint64_t add_bytes, bool new_file, char *why, size_t why_cap)
{
    size_t count = 0;
    uint64_t bytes = 0;
    iotdm_result r = hub_store_file_usage(store, device_id, &count, &bytes);
    if (r < 0)
        return r;
    if (new_file && count >= h->cfg.upload_max_files) {
        snprintf(why, why_cap, "device '%s' keeps %zu uploads already, the most allowed", device_id,
                 count);
        return IOTDM_E_QUOTA;
    }
    /* A new upload needs room left; an upload's bytes must fit what is left. */
    if ((new_file && bytes >= h->cfg.upload_quota_bytes) ||
        bytes + add_bytes > h->cfg.upload_quota_bytes) {
        snprintf(why, why_cap,
                 "device '%s' would keep %llu bytes of uploads, over its quota of %llu", device_id,
                 (unsigned long long)(bytes + add_bytes),
                 (unsigned long long)h->cfg.upload_quota_bytes);
        return IOTDM_E_QUOTA;
    }
    return IOTDM_OK;
}

typedef struct {
    const hub *h;
    hub_files_swept *out;
} sweep_ctx;

static bool unlink_bytes(void *ctx, const hub_file *f)
{
    sweep_ctx *s = ctx;
    char path[700];
    hub_files_path(s->h, f->correlation_id, path, sizeof path);
    unlink(path); /* a pending upload has no bytes yet */
    s->out->files++;
    s->out->bytes += (uint64_t)f->size;
    return true;
}

void hub_files_sweep(hub *h, hub_store *store, int64_t now_ms, hub_files_swept *out)
{
    memset(out, 0, sizeof *out);
    sweep_ctx s = {h, out};
    /* A SAS URI unused for twice its life is dead: its device got a new one or gave up. */
    int64_t open_before = now_ms - 2LL * HUB_UPLOAD_SAS_TTL_S * 1000;
    iotdm_result r = hub_store_file_prune(store, now_ms - h->cfg.upload_retention_ms, open_before,
                                          SWEEP_BATCH, unlink_bytes, &s, NULL);
    if (r < 0)
        log_error("files", "cannot apply upload retention: %s", iotdm_result_message(r));
}
