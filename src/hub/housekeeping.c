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

/* One trim deletes at most this many messages: the writer thread, which every device's
 * writes wait for, is never held long. A table far over its limit (after the limit was lowered,
 * or after a burst) is trimmed by units that follow one another, each its own transaction. */
#define TRIM_ROWS_PER_UNIT 20000

typedef struct {
    hub_work w;
    hub *h;
    int64_t now_ms;
    size_t c2d_expired;
    hub_files_swept swept;
    bool trim_more;
} housekeeping_unit;

static void trim_step(housekeeping_unit *u, hub_store *store)
{
    hub *h = u->h;
    iotdm_result r =
        hub_store_telemetry_trim(store, h->cfg.telemetry_max_bytes, h->cfg.telemetry_max_age_ms,
                                 u->now_ms, TRIM_ROWS_PER_UNIT, &u->trim_more);
    if (r < 0) {
        log_error("hub", "cannot trim telemetry: %s", iotdm_result_message(r));
        u->trim_more = false; /* the next tick tries again */
    }
}

static iotdm_result trim_run(hub_work *w, hub_store *store)
{
    trim_step((housekeeping_unit *)w, store);
    return IOTDM_OK;
}

static void trim_done(hub_work *w)
{
    housekeeping_unit *u = (housekeeping_unit *)w;
    /* A failed unit (the executor has stopped, the disk is full) ends the chain; the next tick
     * starts a new one. */
    if (!u->trim_more || w->result != IOTDM_OK || u->h->loops[0].stopping) {
        xfree(u);
        return;
    }
    memset(&u->w, 0, sizeof u->w);
    hub_work_submit(&u->h->loops[0], &u->w, trim_run, trim_done, 0);
}

static iotdm_result housekeeping_run(hub_work *w, hub_store *store)
{
    housekeeping_unit *u = (housekeeping_unit *)w;
    hub *h = u->h;
    u->c2d_expired = hub_store_c2d_expire(store, u->now_ms);
    trim_step(u, store);
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
    trim_done(w);
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
