/* The executor of units of work: a writer thread that runs units in group transactions, a syncer
 * thread that makes committed groups durable and hands their completions back to the loops, and
 * reader threads for long reads. The group commit is pipelined: while the syncer waits for the disk
 * with one group, the writer runs the next one, and commits it once the syncer is free, so the
 * group grows with the load (docs/hub.md "Units of work"). */
#include "hub/core/work.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <time.h>

#include "common/alloc.h"
#include "common/log.h"
#include "hub/hub.h"

/* A group is committed at the latest when it holds this many units, even while the syncer is
 * busy: it bounds the latency of a long sync and the size of the writer's transaction. */
#define GROUP_MAX_UNITS 8192
/* How often the writer looks at the free space of the data directory. */
#define DISK_CHECK_INTERVAL_MS 1000
/* Committed groups waiting for the syncer, at most (the writer waits beyond). */
#define SYNC_QUEUE_MAX 16
/* Free space at which a full disk is no longer treated as full (writes that free space work). */
/* The reader threads' nice value (the loops and the writer keep 0). */
#define READER_NICE           10
#define DISK_FULL_CLEAR_BYTES (4u * 1024 * 1024)

struct hub_effect {
    hub_effect *next;
    hub_task_fn fn;
    void *arg;
};

/* The units one loop submitted in one pass, returned to it as one completion. */
typedef struct hub_batch {
    struct hub_batch *next;
    hub_loop *loop;
    hub_work *head, *tail;
    size_t n;
    hub_loop_task task;
} hub_batch;

/* Batches the writer ran together in one transaction. */
typedef struct {
    hub_batch *head, *tail;
    size_t units;
    bool wrote;
    iotdm_result commit_result;
    iotdm_result early_commit; /* a commit inside the group to let a conflicting unit run again */
    int64_t last_event_seq;
} hub_group;

struct hub_exec {
    hub_store *store;
    hub_store **readers;
    unsigned nreaders;
    char data_dir[512];
    hub_exec_durable_fn on_durable;
    void *on_durable_arg;
    pthread_t writer, syncer, *reader_threads;
    pthread_mutex_t mu;
    pthread_cond_t writer_cv, syncer_cv, reader_cv;
    bool stopping;
    bool writer_done; /* the writer has sealed its last group: the syncer may end */
    /* Writer input: batches from the loops. */
    hub_batch *queue_head, *queue_tail;
    /* Syncer input: committed groups, and whether one is with it (handed over, not finished).
     * Usually one group waits while one is synced; more only when groups reach GROUP_MAX_UNITS
     * during a long sync. */
    hub_group sync_queue[SYNC_QUEUE_MAX];
    size_t sync_len;
    bool syncer_busy;
    /* Reader input. */
    hub_work *read_head, *read_tail;
    /* Disk reserve (writer thread only, except the flag). */
    atomic_uint_fast64_t disk_reserve;
    atomic_bool disk_recheck; /* the reserve changed: look at the disk now */
    int64_t disk_checked_ms;  /* writer thread only */
    atomic_bool disk_low;     /* free space below the reserve: growing units are refused */
    atomic_bool disk_full;    /* a commit failed for lack of space: every write is refused */
    atomic_uint_fast64_t units, groups, syncs, queued, quiesces;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- loop side ---- */

static void flush_cb(evutil_socket_t fd, short what, void *arg);

iotdm_result hub_work_loop_init(hub_loop *loop)
{
    loop->flush_ev = event_new(loop->base, -1, 0, flush_cb, loop);
    /* Lower priority than I/O: everything readable in this pass joins the same batch. */
    if (!loop->flush_ev || event_priority_set(loop->flush_ev, 1) != 0)
        return -ENOMEM;
    return IOTDM_OK;
}

void hub_work_loop_deinit(hub_loop *loop)
{
    if (loop->flush_ev)
        event_free(loop->flush_ev);
    loop->flush_ev = NULL;
    /* A batch never flushed (the hub stopped mid-pass): its units end without running. */
    hub_batch *b = loop->open_batch;
    loop->open_batch = NULL;
    if (!b)
        return;
    for (hub_work *w = b->head, *next; w; w = next) {
        next = w->next;
        w->result = IOTDM_E_INTERNAL;
        w->done(w);
    }
    xfree(b);
}

static void run_effects(hub_loop *loop, hub_effect *e, bool ok)
{
    while (e) {
        hub_effect *next = e->next;
        if (ok) {
            e->fn(loop, e->arg);
        } else {
            /* The unit failed: its effects must not happen, but they own their arguments. */
            bool was_stopping = loop->stopping;
            loop->stopping = true;
            e->fn(loop, e->arg);
            loop->stopping = was_stopping;
        }
        xfree(e);
        e = next;
    }
}

/* One unit's completion on its loop: done, then what its writes imply. */
static void complete(hub_loop *loop, hub_work *w)
{
    hub_effect *effects = w->effects, *dropped = w->dropped;
    bool ok = w->result >= 0;
    w->effects = NULL;
    w->dropped = NULL;
    loop->inflight--;
    w->done(w); /* may free w */
    run_effects(loop, dropped, false);
    run_effects(loop, effects, ok);
}

static void batch_done_task(hub_loop *loop, void *arg)
{
    hub_batch *b = arg;
    for (hub_work *w = b->head, *next; w; w = next) {
        next = w->next;
        complete(loop, w);
    }
    xfree(b);
}

static void snapshot_done_task(hub_loop *loop, void *arg)
{
    complete(loop, arg);
}

static void exec_push_batch(hub_exec *e, hub_batch *b)
{
    pthread_mutex_lock(&e->mu);
    if (e->queue_tail)
        e->queue_tail->next = b;
    else
        e->queue_head = b;
    e->queue_tail = b;
    atomic_fetch_add(&e->queued, b->n);
    pthread_cond_signal(&e->writer_cv);
    pthread_mutex_unlock(&e->mu);
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    hub_loop *loop = arg;
    hub_batch *b = loop->open_batch;
    loop->open_batch = NULL;
    if (b)
        exec_push_batch(loop->h->exec, b);
}

void hub_work_submit(hub_loop *loop, hub_work *w, hub_work_run_fn run, hub_work_done_fn done,
                     unsigned flags)
{
    w->run = run;
    w->done = done;
    w->flags = flags;
    w->result = IOTDM_OK;
    w->loop = loop;
    w->next = NULL;
    w->effects = NULL;
    w->dropped = NULL;
    loop->inflight++;
    hub_exec *e = loop->h->exec;
    if (!e) {
        /* The executor has stopped (the hub is shutting down): the unit fails, reported from a
         * later callback like any completion. */
        w->result = IOTDM_E_INTERNAL;
        w->task.fn = snapshot_done_task;
        w->task.arg = w;
        w->task.allocated = false;
        hub_loop_post_task(loop, &w->task);
        return;
    }
    if (flags & HUB_WORK_SNAPSHOT) {
        pthread_mutex_lock(&e->mu);
        if (e->read_tail)
            e->read_tail->next = w;
        else
            e->read_head = w;
        e->read_tail = w;
        pthread_cond_signal(&e->reader_cv);
        pthread_mutex_unlock(&e->mu);
        return;
    }
    hub_batch *b = loop->open_batch;
    if (!b) {
        b = xcalloc(1, sizeof *b);
        if (!b) {
            /* No memory for a batch: the unit fails, reported from a later callback like any
             * other completion (never from inside submit). */
            w->result = -ENOMEM;
            w->task.fn = snapshot_done_task;
            w->task.arg = w;
            w->task.allocated = false;
            hub_loop_post_task(loop, &w->task);
            return;
        }
        b->loop = loop;
        loop->open_batch = b;
        event_active(loop->flush_ev, 0, 0);
    }
    if (b->tail)
        b->tail->next = w;
    else
        b->head = w;
    b->tail = w;
    b->n++;
}

bool hub_work_after(hub_work *w, hub_task_fn fn, void *arg)
{
    hub_effect *e = xmalloc(sizeof *e);
    if (!e)
        return false;
    e->fn = fn;
    e->arg = arg;
    e->next = NULL;
    hub_effect **pp = &w->effects;
    while (*pp)
        pp = &(*pp)->next;
    *pp = e;
    return true;
}

/* ---- writer ---- */

static void check_disk(hub_exec *e)
{
    uint64_t reserve = atomic_load(&e->disk_reserve);
    if (!reserve && !atomic_load(&e->disk_full))
        return;
    int64_t now = mono_ms();
    if (now - e->disk_checked_ms < DISK_CHECK_INTERVAL_MS &&
        !atomic_exchange(&e->disk_recheck, false))
        return;
    e->disk_checked_ms = now;
    struct statvfs sv;
    if (statvfs(e->data_dir, &sv) != 0)
        return;
    uint64_t avail = (uint64_t)sv.f_bavail * sv.f_frsize;
    bool low = avail < reserve;
    /* "Full" ends as soon as a write can succeed again, so that deleting (uploads, old data) can
     * bring the space back; growing waits for the reserve. */
    if (avail >= DISK_FULL_CLEAR_BYTES && atomic_load(&e->disk_full)) {
        atomic_store(&e->disk_full, false);
        log_warn("store", "disk space freed: writes accepted again free=%llu",
                 (unsigned long long)avail);
    }
    if (low != atomic_load(&e->disk_low))
        log_warn("store", "%s free=%llu reserve=%llu",
                 low ? "disk space low: refusing new data" : "disk space back above the reserve",
                 (unsigned long long)avail, (unsigned long long)reserve);
    atomic_store(&e->disk_low, low);
}

/* Runs of a unit that conflicted with another node's writes (PostgreSQL), the first included. */
#define UNIT_ATTEMPTS 3

static void run_unit(hub_exec *e, hub_work *w, hub_group *g)
{
    atomic_fetch_add(&e->units, 1);
    bool grows = w->flags & HUB_WORK_GROWS, reads = w->flags & HUB_WORK_READ;
    /* With the disk full, a write would fail the whole group at its commit, and with it the reads
     * and connections that share it: refuse writes before they run, serve reads. */
    if ((grows && atomic_load(&e->disk_low)) || (!reads && atomic_load(&e->disk_full))) {
        w->result = -ENOSPC;
        return;
    }
    bool savepoint = !(w->flags & (HUB_WORK_READ | HUB_WORK_SINGLE));
    iotdm_result r;
    for (int attempt = 1;; attempt++) {
        if (savepoint)
            (void)!hub_store_unit_begin(e->store); /* lazy: only records that a unit is open */
        r = w->run(w, e->store);
        if (savepoint)
            r = hub_store_unit_end(e->store, r);
        /* A conflict with another node's group (PostgreSQL broke a deadlock by failing this
         * unit, and its savepoint undid it): run it again, at most UNIT_ATTEMPTS times. */
        if (r != IOTDM_E_CONFLICT || attempt == UNIT_ATTEMPTS)
            break;
        log_debug("store", "unit conflicted with another node's writes: running it again");
        /* The rows the other group waits for may have been locked by earlier units of this
         * group: commit what they wrote, so that the other group can finish and this unit find
         * its rows free. The group is acknowledged as a whole later; a failure here fails it. */
        iotdm_result c = hub_store_group_commit(e->store);
        if (c < 0 && g->early_commit >= 0)
            g->early_commit = c;
        /* What the undone run arranged to happen after it must not; its arguments are released
         * on the loop with the unit's completion. */
        hub_effect **tail = &w->dropped;
        while (*tail)
            tail = &(*tail)->next;
        *tail = w->effects;
        w->effects = NULL;
    }
    if (r == IOTDM_E_CONFLICT)
        r = IOTDM_E_STORAGE;
    w->result = r;
    if (!(w->flags & HUB_WORK_READ))
        g->wrote = true;
}

static void run_batches(hub_exec *e, hub_batch *list, hub_group *g)
{
    check_disk(e);
    while (list) {
        hub_batch *b = list;
        list = b->next;
        b->next = NULL;
        for (hub_work *w = b->head; w; w = w->next)
            run_unit(e, w, g);
        atomic_fetch_sub(&e->queued, b->n);
        g->units += b->n;
        if (g->tail)
            g->tail->next = b;
        else
            g->head = b;
        g->tail = b;
    }
}

/* Commits the open group and hands it to the syncer. Called with e->mu held. */
static void seal_group(hub_exec *e, hub_group *g)
{
    if (g->wrote || hub_store_has_pending_writes(e->store)) {
        g->commit_result = hub_store_group_commit(e->store);
        if (g->commit_result >= 0 && g->early_commit < 0)
            g->commit_result = g->early_commit;
        if (g->commit_result < 0)
            log_error("store", "group commit failed units=%zu: %s; none is acknowledged", g->units,
                      iotdm_result_message(g->commit_result));
        if (g->commit_result == -ENOSPC && !atomic_exchange(&e->disk_full, true))
            log_warn("store", "disk full: refusing writes until space is freed");
        g->wrote = true;
    }
    g->last_event_seq = hub_store_telemetry_last_seq(e->store);
    atomic_fetch_add(&e->groups, 1);
    while (e->sync_len == SYNC_QUEUE_MAX)
        pthread_cond_wait(&e->writer_cv, &e->mu);
    e->sync_queue[e->sync_len++] = *g;
    memset(g, 0, sizeof *g);
    e->syncer_busy = true;
    pthread_cond_signal(&e->syncer_cv);
}

static void *writer_thread(void *arg)
{
    hub_exec *e = arg;
    pthread_setname_np(pthread_self(), "iotdm-writer");
    hub_group open = {0};
    pthread_mutex_lock(&e->mu);
    for (;;) {
        while (!e->queue_head && !(open.units && !e->syncer_busy) && !e->stopping)
            pthread_cond_wait(&e->writer_cv, &e->mu);
        if (e->stopping && !e->queue_head && !open.units)
            break;
        /* Between groups, the backend may ask for the durability call in progress to end first
         * (its log starts over then); the batches wait in the queue meanwhile. */
        if (e->queue_head && !open.units && e->syncer_busy && !e->stopping &&
            hub_store_quiesce_wanted(e->store)) {
            atomic_fetch_add(&e->quiesces, 1);
            while (e->syncer_busy && !e->stopping)
                pthread_cond_wait(&e->writer_cv, &e->mu);
        }
        hub_batch *list = e->queue_head;
        e->queue_head = e->queue_tail = NULL;
        if (list) {
            pthread_mutex_unlock(&e->mu);
            run_batches(e, list, &open);
            pthread_mutex_lock(&e->mu);
        }
        /* Commit when the syncer can take the group at once, or when it has grown too large to
         * wait; otherwise keep gathering: the next sync covers more. At shutdown, everything. */
        if (open.units && (!e->syncer_busy || open.units >= GROUP_MAX_UNITS || e->stopping))
            seal_group(e, &open);
    }
    e->writer_done = true;
    pthread_cond_signal(&e->syncer_cv);
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

/* ---- syncer ---- */

static void complete_group(hub_exec *e, hub_group *g, iotdm_result durable)
{
    iotdm_result failure = g->commit_result < 0 ? g->commit_result : durable;
    /* Published before the completions go out: what a unit's acknowledgement confirms is already
     * visible to the event streams by then. */
    if (g->wrote && failure >= 0 && e->on_durable)
        e->on_durable(e->on_durable_arg, g->last_event_seq);
    for (hub_batch *b = g->head, *next; b; b = next) {
        next = b->next;
        if (g->wrote && failure < 0)
            for (hub_work *w = b->head; w; w = w->next)
                if (w->result >= 0)
                    w->result = failure; /* nothing of this group may be acknowledged */
        b->task.fn = batch_done_task;
        b->task.arg = b;
        b->task.allocated = false;
        hub_loop_post_task(b->loop, &b->task);
    }
}

static void *syncer_thread(void *arg)
{
    hub_exec *e = arg;
    pthread_setname_np(pthread_self(), "iotdm-syncer");
    pthread_mutex_lock(&e->mu);
    for (;;) {
        while (!e->sync_len && !e->writer_done)
            pthread_cond_wait(&e->syncer_cv, &e->mu);
        if (!e->sync_len)
            break; /* the writer ended and everything it committed is done */
        size_t n = e->sync_len;
        hub_group groups[SYNC_QUEUE_MAX];
        memcpy(groups, e->sync_queue, n * sizeof *groups);
        e->sync_len = 0;
        pthread_cond_signal(&e->writer_cv); /* room in the queue again */
        pthread_mutex_unlock(&e->mu);
        bool wrote = false;
        for (size_t i = 0; i < n; i++)
            wrote = wrote || (groups[i].wrote && groups[i].commit_result >= 0);
        iotdm_result r = IOTDM_OK;
        if (wrote) {
            r = hub_store_durable(e->store);
            atomic_fetch_add(&e->syncs, 1);
        }
        for (size_t i = 0; i < n; i++)
            complete_group(e, &groups[i], r);
        pthread_mutex_lock(&e->mu);
        if (!e->sync_len) {
            e->syncer_busy = false;
            pthread_cond_signal(&e->writer_cv); /* commit what gathered meanwhile */
        }
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

/* ---- readers ---- */

typedef struct {
    hub_exec *e;
    hub_store *store;
} reader_arg;

static void *reader_thread(void *arg)
{
    reader_arg *ra = arg;
    hub_exec *e = ra->e;
    hub_store *store = ra->store;
    xfree(ra);
    pthread_setname_np(pthread_self(), "iotdm-reader");
    /* Long reads give way to the loops and the writer: a query running back to back must not
     * delay a device's answer (Linux applies nice values per thread). */
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), READER_NICE) != 0)
        log_debug("store", "cannot lower the reader's priority: %s", strerror(errno));
    pthread_mutex_lock(&e->mu);
    for (;;) {
        while (!e->read_head && !e->stopping)
            pthread_cond_wait(&e->reader_cv, &e->mu);
        hub_work *w = e->read_head;
        if (!w)
            break;
        e->read_head = w->next;
        if (!e->read_head)
            e->read_tail = NULL;
        pthread_mutex_unlock(&e->mu);
        w->next = NULL;
        atomic_fetch_add(&e->units, 1);
        w->result = w->run(w, store);
        w->task.fn = snapshot_done_task;
        w->task.arg = w;
        w->task.allocated = false;
        hub_loop_post_task(w->loop, &w->task);
        pthread_mutex_lock(&e->mu);
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

/* ---- lifecycle ---- */

static void stop_threads(hub_exec *e, bool writer, bool syncer)
{
    pthread_mutex_lock(&e->mu);
    e->stopping = true;
    pthread_cond_broadcast(&e->writer_cv);
    pthread_cond_broadcast(&e->syncer_cv);
    pthread_cond_broadcast(&e->reader_cv);
    pthread_mutex_unlock(&e->mu);
    if (writer) {
        pthread_join(e->writer, NULL);
    } else {
        pthread_mutex_lock(&e->mu);
        e->writer_done = true;
        pthread_cond_broadcast(&e->syncer_cv);
        pthread_mutex_unlock(&e->mu);
    }
    if (syncer)
        pthread_join(e->syncer, NULL);
    for (unsigned i = 0; i < e->nreaders; i++)
        pthread_join(e->reader_threads[i], NULL);
    e->nreaders = 0;
}

static void exec_free(hub_exec *e, unsigned nreaders)
{
    for (unsigned i = 0; e->readers && i < nreaders; i++)
        hub_store_close(e->readers[i]);
    hub_store_close(e->store);
    pthread_cond_destroy(&e->writer_cv);
    pthread_cond_destroy(&e->syncer_cv);
    pthread_cond_destroy(&e->reader_cv);
    pthread_mutex_destroy(&e->mu);
    xfree(e->readers);
    xfree(e->reader_threads);
    xfree(e);
}

iotdm_result hub_exec_start(hub_store *store, unsigned readers, const char *data_dir,
                            hub_exec_durable_fn on_durable, void *arg, hub_exec **out)
{
    *out = NULL;
    if (readers == 0)
        readers = 1;
    hub_exec *e = xcalloc(1, sizeof *e);
    if (!e) {
        hub_store_close(store);
        return -ENOMEM;
    }
    e->store = store;
    e->on_durable = on_durable;
    e->on_durable_arg = arg;
    snprintf(e->data_dir, sizeof e->data_dir, "%s", data_dir);
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->writer_cv, NULL);
    pthread_cond_init(&e->syncer_cv, NULL);
    pthread_cond_init(&e->reader_cv, NULL);
    e->readers = xcalloc(readers, sizeof *e->readers);
    e->reader_threads = xcalloc(readers, sizeof *e->reader_threads);
    iotdm_result r = e->readers && e->reader_threads ? IOTDM_OK : -ENOMEM;
    for (unsigned i = 0; r == IOTDM_OK && i < readers; i++)
        r = hub_store_open_reader(store, &e->readers[i]);
    bool writer = false, syncer = false;
    if (r == IOTDM_OK)
        writer = pthread_create(&e->writer, NULL, writer_thread, e) == 0;
    if (writer)
        syncer = pthread_create(&e->syncer, NULL, syncer_thread, e) == 0;
    if (r == IOTDM_OK && !syncer)
        r = IOTDM_E_INTERNAL;
    for (unsigned i = 0; r == IOTDM_OK && i < readers; i++) {
        reader_arg *ra = xmalloc(sizeof *ra);
        if (ra) {
            ra->e = e;
            ra->store = e->readers[i];
        }
        if (!ra || pthread_create(&e->reader_threads[i], NULL, reader_thread, ra) != 0) {
            xfree(ra);
            r = IOTDM_E_INTERNAL;
            break;
        }
        e->nreaders++;
    }
    if (r != IOTDM_OK) {
        stop_threads(e, writer, syncer);
        exec_free(e, readers);
        return r;
    }
    *out = e;
    return IOTDM_OK;
}

void hub_exec_stop(hub_exec *e)
{
    if (!e)
        return;
    unsigned nreaders = e->nreaders;
    stop_threads(e, true, true);
    exec_free(e, nreaders);
}

void hub_exec_set_disk_reserve(hub_exec *e, uint64_t bytes)
{
    atomic_store(&e->disk_reserve, bytes);
    atomic_store(&e->disk_recheck, true);
}

void hub_exec_get_stats(hub_exec *e, hub_exec_stats *out)
{
    out->units = atomic_load(&e->units);
    out->groups = atomic_load(&e->groups);
    out->syncs = atomic_load(&e->syncs);
    out->queued = atomic_load(&e->queued);
    out->disk_low = atomic_load(&e->disk_low) || atomic_load(&e->disk_full);
}
