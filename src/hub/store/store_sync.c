/* Durability of the group commit, off the event loop.
 *
 * The database runs in WAL mode with synchronous=NORMAL: COMMIT appends the transaction's frames to
 * hub.db-wal with write() and returns without waiting for the disk. A committed transaction is
 * durable once the WAL file's data has reached the disk, which is what an fdatasync() of that file
 * guarantees (recovery replays every frame whose checksums are intact). So the hub commits on its
 * loop thread and lets a worker thread wait for the disk while the loop goes on reading the next
 * group; acknowledgements are released when the worker reports back (hub.c).
 *
 * The worker also runs the checkpoints (the copy of WAL frames into hub.db, two more fsyncs) on a
 * connection of its own, so that they never stall the loop either; the loop's connection has its
 * automatic checkpoints switched off once the worker runs.
 *
 * Each thread opens the WAL file itself and reopens it when the path names another file than the
 * one it holds (SQLite deletes the WAL only when the last connection closes, so in practice the
 * descriptor lives as long as the hub). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/log.h"
#include "hub/store/store_internal.h"

/* Checkpoint when the WAL holds this much: large enough that a checkpoint copies many
 * transactions at once, small enough that recovery after a crash stays quick. */
#define CHECKPOINT_WAL_BYTES (16 * 1024 * 1024)

typedef struct hub_store_syncer {
    hub_store *store;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool requested; /* a sync was asked for and has not started */
    bool stopping;
    iotdm_result result; /* of the last finished sync */
    int notify_fd;       /* eventfd: counts finished syncs for the loop */
    sqlite3 *checkpoint_db;
    store_wal wal;
} hub_store_syncer;

static void wal_close(store_wal *w)
{
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
}

/* fdatasync of the WAL file as the path names it now. A missing WAL holds nothing to sync. */
static iotdm_result wal_sync(store_wal *w)
{
    struct stat now;
    if (stat(w->path, &now) != 0) {
        if (errno == ENOENT)
            return IOTDM_OK;
        return -errno;
    }
    if (w->fd < 0 || now.st_dev != w->dev || now.st_ino != w->ino) {
        wal_close(w);
        w->fd = open(w->path, O_RDONLY | O_CLOEXEC);
        if (w->fd < 0)
            return errno == ENOENT ? IOTDM_OK : -errno;
        struct stat opened;
        if (fstat(w->fd, &opened) != 0)
            return -errno;
        w->dev = opened.st_dev;
        w->ino = opened.st_ino;
    }
    return fdatasync(w->fd) == 0 ? IOTDM_OK : -errno;
}

static void wal_init(store_wal *w, const char *db_path)
{
    memset(w, 0, sizeof *w);
    w->fd = -1;
    snprintf(w->path, sizeof w->path, "%s-wal", db_path);
}

void store_sync_init(hub_store *s, const char *db_path)
{
    wal_init(&s->wal, db_path);
}

void store_sync_deinit(hub_store *s)
{
    hub_store_syncer_stop(s);
    wal_close(&s->wal);
}

iotdm_result hub_store_sync(hub_store *store)
{
    iotdm_result r = wal_sync(&store->wal);
    if (r < 0)
        log_error("store", "cannot sync the write-ahead log path=%s: %s", store->wal.path,
                  strerror(-r));
    return r < 0 ? IOTDM_E_STORAGE : IOTDM_OK;
}

static void maybe_checkpoint(hub_store_syncer *sy)
{
    struct stat st;
    if (sy->wal.fd < 0 || fstat(sy->wal.fd, &st) != 0 || st.st_size < CHECKPOINT_WAL_BYTES)
        return;
    /* PASSIVE: copies what no reader still needs and never waits for the loop's transaction. */
    int logged = 0, done = 0;
    int rc = sqlite3_wal_checkpoint_v2(sy->checkpoint_db, NULL, SQLITE_CHECKPOINT_PASSIVE, &logged,
                                       &done);
    if (rc == SQLITE_OK && logged < 0)
        log_error("store", "checkpoint found no write-ahead log");
    else if (rc != SQLITE_OK && rc != SQLITE_BUSY)
        log_error("store", "checkpoint failed rc=%d error=\"%s\"", rc,
                  sqlite3_errmsg(sy->checkpoint_db));
}

static void *sync_thread(void *arg)
{
    hub_store_syncer *sy = arg;
    pthread_mutex_lock(&sy->mu);
    for (;;) {
        while (!sy->requested && !sy->stopping)
            pthread_cond_wait(&sy->cv, &sy->mu);
        if (!sy->requested && sy->stopping)
            break;
        sy->requested = false;
        pthread_mutex_unlock(&sy->mu);
        /* Everything committed before the request is in the WAL file's page cache: this makes it
         * durable, and whatever was committed meanwhile rides along. */
        iotdm_result r = wal_sync(&sy->wal);
        if (r < 0)
            log_error("store", "cannot sync the write-ahead log path=%s: %s", sy->wal.path,
                      strerror(-r));
        else
            maybe_checkpoint(sy);
        pthread_mutex_lock(&sy->mu);
        sy->result = r < 0 ? IOTDM_E_STORAGE : IOTDM_OK;
        uint64_t one = 1;
        if (write(sy->notify_fd, &one, sizeof one) != sizeof one)
            log_error("store", "cannot signal a finished sync: %s", strerror(errno));
    }
    pthread_mutex_unlock(&sy->mu);
    return NULL;
}

iotdm_result hub_store_syncer_start(hub_store *store, int *out_notify_fd)
{
    if (store->syncer)
        return IOTDM_E_INTERNAL;
    hub_store_syncer *sy = xcalloc(1, sizeof *sy);
    if (!sy)
        return -ENOMEM;
    sy->store = store;
    sy->notify_fd = -1;
    wal_init(&sy->wal, store->path);
    iotdm_result r = IOTDM_OK;
    int rc = sqlite3_open_v2(store->path, &sy->checkpoint_db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        log_error("store", "cannot open the checkpoint connection: %s", sqlite3_errstr(rc));
        r = IOTDM_E_STORAGE;
    }
    if (r == IOTDM_OK) {
        sqlite3_busy_timeout(sy->checkpoint_db, STORE_BUSY_TIMEOUT_MS);
        /* A connection learns that the database is in WAL mode on its first read; until then a
         * checkpoint request does nothing. */
        rc =
            sqlite3_exec(sy->checkpoint_db, "SELECT count(*) FROM sqlite_schema", NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
            log_error("store", "cannot read through the checkpoint connection: %s",
                      sqlite3_errmsg(sy->checkpoint_db));
            r = IOTDM_E_STORAGE;
        }
    }
    if (r == IOTDM_OK && (sy->notify_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
        r = -errno;
    if (r == IOTDM_OK) {
        pthread_mutex_init(&sy->mu, NULL);
        pthread_cond_init(&sy->cv, NULL);
        if ((rc = pthread_create(&sy->thread, NULL, sync_thread, sy)) != 0) {
            pthread_cond_destroy(&sy->cv);
            pthread_mutex_destroy(&sy->mu);
            r = -rc;
        }
    }
    if (r < 0) {
        if (sy->notify_fd >= 0)
            close(sy->notify_fd);
        sqlite3_close_v2(sy->checkpoint_db);
        xfree(sy);
        return r;
    }
    /* The worker checkpoints from now on; the loop must not stop to do it inside a COMMIT. */
    sqlite3_wal_autocheckpoint(store->db, 0);
    store->syncer = sy;
    *out_notify_fd = sy->notify_fd;
    return IOTDM_OK;
}

void hub_store_syncer_request(hub_store *store)
{
    hub_store_syncer *sy = store->syncer;
    pthread_mutex_lock(&sy->mu);
    sy->requested = true;
    pthread_cond_signal(&sy->cv);
    pthread_mutex_unlock(&sy->mu);
}

iotdm_result hub_store_syncer_collect(hub_store *store)
{
    hub_store_syncer *sy = store->syncer;
    uint64_t finished = 0;
    if (read(sy->notify_fd, &finished, sizeof finished) != sizeof finished)
        return -EAGAIN; /* woken without a finished sync */
    pthread_mutex_lock(&sy->mu);
    iotdm_result r = sy->result;
    pthread_mutex_unlock(&sy->mu);
    return r;
}

void hub_store_syncer_stop(hub_store *store)
{
    hub_store_syncer *sy = store->syncer;
    if (!sy)
        return;
    pthread_mutex_lock(&sy->mu);
    sy->stopping = true;
    pthread_cond_signal(&sy->cv);
    pthread_mutex_unlock(&sy->mu);
    pthread_join(sy->thread, NULL);
    pthread_cond_destroy(&sy->cv);
    pthread_mutex_destroy(&sy->mu);
    close(sy->notify_fd);
    sqlite3_close_v2(sy->checkpoint_db);
    wal_close(&sy->wal);
    xfree(sy);
    store->syncer = NULL;
    /* Back to SQLite's own checkpoints for whatever the loop still writes. */
    sqlite3_wal_autocheckpoint(store->db, 1000);
}
