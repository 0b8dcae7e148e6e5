/* Units of work: the one way the hub reads and writes its store (docs/hub.md "Units of work").
 *
 * A request (an MQTT packet, an HTTP request, a timer) fills in a hub_work and submits it from its
 * event loop. run() executes on a storage thread, inside a transaction the executor shares among
 * the units that arrive together (group commit); done() runs back on the submitting loop once the
 * unit's writes are committed and durable, or failed (w->result). Acknowledgements (a PUBACK, a
 * twin $version, an HTTP 2xx) are sent from done(), so nothing is acknowledged before it is on the
 * disk, and no event loop ever waits for the disk or the database.
 *
 * Order: the units one loop submits complete on it in submission order (SNAPSHOT units excepted).
 * A unit's writes apply whole or not at all (a savepoint around each unit), and a unit sees the
 * writes of the units run before it. */
#ifndef IOTDM_HUB_CORE_WORK_H
#define IOTDM_HUB_CORE_WORK_H

#include <stdbool.h>
#include <stdint.h>

#include "hub/core/loop.h"
#include "hub/store/store.h"

typedef struct hub_work hub_work;
typedef struct hub_effect hub_effect;

/* On a storage thread: the unit's reads and writes, nothing else (no loop state, no sockets).
 * Returns the unit's result; an error undoes the unit's writes. */
typedef iotdm_result (*hub_work_run_fn)(hub_work *w, hub_store *store);
/* On the submitting loop: w->result says how it went. May free w. */
typedef void (*hub_work_done_fn)(hub_work *w);

enum {
    /* Reads only: run without a savepoint (still in order with the loop's other units). */
    HUB_WORK_READ = 1u << 0,
    /* A long read (a query page, event history): runs on a reader thread against the last
     * committed state, in parallel with writes and not ordered with them. */
    HUB_WORK_SNAPSHOT = 1u << 1,
    /* At most one write statement, atomic by itself: no savepoint needed. */
    HUB_WORK_SINGLE = 1u << 2,
    /* Adds data (telemetry, messages, uploads, devices): refused with -ENOSPC without running
     * while the data directory's free space is below the reserve (hub_exec_set_disk_reserve).
     * Once a commit has failed for lack of space, every unit but HUB_WORK_READ ones is refused
     * until the free space is back above the reserve: reads and connections go on. */
    HUB_WORK_GROWS = 1u << 3,
};

struct hub_work {
    hub_work_run_fn run;
    hub_work_done_fn done;
    iotdm_result result;
    unsigned flags;
    hub_loop *loop;
    hub_work *next;      /* the executor's queues */
    hub_effect *effects; /* hub_work_after, run after done */
    hub_effect *dropped; /* those of runs that conflicted and ran again: released, never run */
    hub_loop_task task;  /* a SNAPSHOT unit's completion */
};

/* Submits w (owned by the caller; it must stay valid until done runs). Called on loop's thread.
 * Never fails: storage errors arrive in w->result. */
void hub_work_submit(hub_loop *loop, hub_work *w, hub_work_run_fn run, hub_work_done_fn done,
                     unsigned flags);

/* From run(): fn(loop, arg) runs on the submitting loop after the unit's done(), i.e. once its
 * writes are durable, and only when the unit succeeded; arg is then owned by fn (with
 * loop->stopping set at shutdown it only frees). For what a write implies elsewhere: notify a
 * device on another loop, drop a connection. Returns false (and the caller frees arg) when out of
 * memory. */
bool hub_work_after(hub_work *w, hub_task_fn fn, void *arg);

/* ---- the executor (one per hub) ---- */

typedef struct hub_exec hub_exec;

/* Called on the syncer thread after each durable group with the highest event seq it committed
 * (events.c publishes it to the event streams). */
typedef void (*hub_exec_durable_fn)(void *arg, int64_t last_event_seq);

/* Starts the writer, syncer and `readers` reader threads over store (which the executor owns from
 * now on and closes in hub_exec_stop). data_dir is watched for the disk reserve. */
IOTDM_NODISCARD iotdm_result hub_exec_start(hub_store *store, unsigned readers,
                                            const char *data_dir, hub_exec_durable_fn on_durable,
                                            void *arg, hub_exec **out);
/* Runs what was submitted, makes it durable, posts the completions, stops the threads. */
void hub_exec_stop(hub_exec *e);

/* Free space below which HUB_WORK_GROWS units are refused (bytes; 0: never). */
void hub_exec_set_disk_reserve(hub_exec *e, uint64_t bytes);

typedef struct {
    uint64_t units, groups, syncs; /* run, committed, fdatasync'ed (or the backend's durable) */
    uint64_t queued;               /* submitted, not yet run */
    bool disk_low;                 /* free space below the reserve */
} hub_exec_stats;
void hub_exec_get_stats(hub_exec *e, hub_exec_stats *out);

/* Per-loop part (loop.c calls these). */
IOTDM_NODISCARD iotdm_result hub_work_loop_init(hub_loop *loop);
void hub_work_loop_deinit(hub_loop *loop);

#endif
