/* Periodic work, as one unit per tick so that it never runs on an event loop. */
#include "hub/housekeeping.h"

#include <string.h>

#include "common/alloc.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "hub/dps/dps.h"
#include "hub/files.h"
#include "hub/hub.h"
#include "hub/net/refusals.h"

typedef struct {
    hub_work w;
    hub *h;
    int64_t now_ms;
    size_t c2d_expired;
    hub_files_swept swept;
} housekeeping_unit;

static iotdm_result housekeeping_run(hub_work *w, hub_store *store)
{
    housekeeping_unit *u = (housekeeping_unit *)w;
    hub *h = u->h;
    u->c2d_expired = hub_store_c2d_expire(store, u->now_ms);
    iotdm_result r = hub_store_telemetry_trim(store, h->cfg.telemetry_max_bytes,
                                              h->cfg.telemetry_max_age_ms, u->now_ms);
    if (r < 0)
        log_error("hub", "cannot trim telemetry: %s", iotdm_result_message(r));
    hub_dps_housekeeping(store, u->now_ms);
    hub_files_sweep(h, store, u->now_ms, &u->swept);
    /* Each step logs its own failure; one failing step must not undo the others. */
    return IOTDM_OK;
}

static void housekeeping_done(hub_work *w)
{
    housekeeping_unit *u = (housekeeping_unit *)w;
    if (w->result < 0)
        log_error("hub", "housekeeping failed: %s", iotdm_result_message(w->result));
    if (u->c2d_expired)
        log_info("hub", "expired cloud-to-device messages count=%zu", u->c2d_expired);
    if (u->swept.files)
        log_info("files", "deleted uploads past retention count=%zu bytes=%llu", u->swept.files,
                 (unsigned long long)u->swept.bytes);
    xfree(u);
}

void hub_housekeeping_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    hub *h = arg;
    hub_refusals_summarize();
    housekeeping_unit *u = xcalloc(1, sizeof *u);
    if (!u)
        return;
    u->h = h;
    u->now_ms = time_now_ms();
    hub_work_submit(&h->loops[0], &u->w, housekeeping_run, housekeeping_done, 0);
}
