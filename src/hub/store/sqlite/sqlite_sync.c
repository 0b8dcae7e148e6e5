/* Durability of the SQLite backend, for the thread that calls hub_store_durable.
 *
 * The database runs in WAL mode with synchronous=NORMAL: COMMIT appends the transaction's frames to
 * hub.db-wal with write() and returns without waiting for the disk. A committed transaction is
 * durable once the WAL file's data has reached the disk, which is what an fdatasync() of that file
 * guarantees (recovery replays every frame whose checksums are intact). So the executor's writer
 * commits and goes on with the next group while its syncer thread calls sq_durable, and the
 * acknowledgements of a group leave only after that returned (core/work.c).
 *
 * sq_durable also runs the checkpoints (the copy of WAL frames into hub.db, two more fsyncs) on a
 * connection of its own, so that they never stall the writer either; the writer's connection has
 * automatic checkpoints off.
 *
 * The calling thread opens the WAL file itself and reopens it when the path names another file than
 * the one it holds (SQLite deletes the WAL only when the last connection closes, so in practice the
 * descriptor lives as long as the hub). */
#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "hub/store/sqlite/sqlite_internal.h"

/* Checkpoint when the WAL holds this much: large enough that a checkpoint copies many
 * transactions at once, small enough that recovery after a crash stays quick. */
#define CHECKPOINT_WAL_BYTES (16 * 1024 * 1024)

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
    if (stat(w->path, &now) != 0)
        return errno == ENOENT ? IOTDM_OK : -errno;
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

void store_sync_init(sq_store *s, const char *db_path)
{
    memset(&s->wal, 0, sizeof s->wal);
    s->wal.fd = -1;
    snprintf(s->wal.path, sizeof s->wal.path, "%s-wal", db_path);
}

void store_sync_deinit(sq_store *s)
{
    wal_close(&s->wal);
    if (s->checkpoint_db)
        sqlite3_close_v2(s->checkpoint_db);
    s->checkpoint_db = NULL;
}

/* The checkpoint connection, opened on first use by the durability thread. */
static sqlite3 *checkpoint_db(sq_store *s)
{
    if (s->checkpoint_db)
        return s->checkpoint_db;
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(s->path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(db, STORE_BUSY_TIMEOUT_MS);
        /* A connection learns that the database is in WAL mode on its first read; until then a
         * checkpoint request does nothing. */
        rc = sqlite3_exec(db, "SELECT count(*) FROM sqlite_schema", NULL, NULL, NULL);
    }
    if (rc != SQLITE_OK) {
        log_error("store", "cannot open the checkpoint connection: %s",
                  db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close_v2(db);
        return NULL;
    }
    s->checkpoint_db = db;
    return db;
}

static void maybe_checkpoint(sq_store *s)
{
    struct stat st;
    if (s->wal.fd < 0 || fstat(s->wal.fd, &st) != 0 || st.st_size < CHECKPOINT_WAL_BYTES)
        return;
    sqlite3 *db = checkpoint_db(s);
    if (!db)
        return;
    /* PASSIVE: copies what no reader still needs and never waits for the writer's transaction. */
    int logged = 0, done = 0;
    int rc = sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, &logged, &done);
    if (rc == SQLITE_OK && logged < 0)
        log_error("store", "checkpoint found no write-ahead log");
    else if (rc != SQLITE_OK && rc != SQLITE_BUSY)
        log_error("store", "checkpoint failed rc=%d error=\"%s\"", rc, sqlite3_errmsg(db));
    /* The WAL starts over from its beginning only when a write transaction begins after a
     * checkpoint has copied every frame. Under continuous writes the writer's next group is
     * always open before the checkpoint ends, and the log grows without bound (hundreds of MB in
     * minutes). Past the limit, ask the writer to wait for the end of this call before its next
     * group (sq_quiesce_wanted): its first write then restarts the log. */
    bool long_log = rc == SQLITE_OK && logged > 0 &&
                    (int64_t)logged * (s->page_size + 24) > STORE_WAL_RESTART_BYTES;
    atomic_store(&s->want_restart, long_log);
}

bool sq_quiesce_wanted(hub_store *base)
{
    sq_store *s = (sq_store *)base;
    return atomic_load(&s->want_restart);
}

iotdm_result sq_durable(hub_store *base)
{
    sq_store *s = (sq_store *)base;
    /* Everything committed before this call is in the WAL file's page cache: this makes it
     * durable, and whatever was committed meanwhile rides along. */
    iotdm_result r = wal_sync(&s->wal);
    if (r < 0) {
        log_error("store", "cannot sync the write-ahead log path=%s: %s", s->wal.path,
                  strerror(-r));
        return IOTDM_E_STORAGE;
    }
    maybe_checkpoint(s);
    return IOTDM_OK;
}
