/* logs.* collector operations: journald collectors that append to a bounded folder each, rotate
 * into <collector>_<UTC time>.log files, and keep the folder under its size limit (circular:
 * the oldest files go; sequential: collecting stops when full). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/atomic_file.h"
#include "common/timeutil.h"
#include "configd/ops/logs.h"
#include "configd/ops/ops.h"

#define MIB ((int64_t)1024 * 1024)

static const char *const priorities[] = {"emerg",   "alert",  "crit", "err",
                                         "warning", "notice", "info", "debug"};

/* The saved state of a collector: its settings with defaults, plus since (ms) and full. */
static json_t *load_state(int dfd)
{
    int fd = openat(dfd, CFGD_LOG_STATE_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    json_t *j = fd < 0 ? NULL : json_loadfd(fd, 0, NULL);
    if (fd >= 0)
        close(fd);
    if (!json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

static int save_state(int dfd, const json_t *state, cfgd_error *err)
{
    char *text = json_dumps(state, JSON_COMPACT | JSON_SORT_KEYS);
    int r = text ? atomic_file_write_at(dfd, CFGD_LOG_STATE_FILE, NULL, text, strlen(text), 0640,
                                        NULL, 0)
                 : -ENOMEM;
    free(text);
    if (r < 0)
        cfgd_error_set(err, CFGD_ERR_FAILED, "cannot save the collector's settings: %s",
                       strerror(-r));
    return r;
}

static json_t *member_or(const json_t *settings, const char *key, json_t *fallback)
{
    json_t *v = json_object_get(settings, key);
    if (!v)
        return fallback;
    json_decref(fallback);
    return json_deep_copy(v);
}

/* Settings as applied: what is absent takes its default (the desired value is the whole
 * collector: a member left out means its default, not "unchanged"). */
static json_t *normalized(const json_t *settings)
{
    json_t *s = json_object();
    json_object_set_new(s, "units", member_or(settings, "units", json_array()));
    json_object_set_new(s, "identifiers", member_or(settings, "identifiers", json_array()));
    json_object_set_new(s, "priority", member_or(settings, "priority", json_string("debug")));
    json_object_set_new(s, "sizeLimitMB",
                        member_or(settings, "sizeLimitMB", json_integer(CFGD_LOG_SIZE_LIMIT_DEF)));
    json_object_set_new(s, "mode", member_or(settings, "mode", json_string("circular")));
    json_object_set_new(s, "started", member_or(settings, "started", json_false()));
    return s;
}

static int64_t limit_bytes(const json_t *state)
{
    return json_integer_value(json_object_get(state, "sizeLimitMB")) * MIB;
}

/* Files rotate at a quarter of the limit, so a circular folder drops a quarter at a time, and
 * never beyond what one upload can carry. */
static int64_t file_cap(int64_t limit)
{
    return limit / 4 < CFGD_LOG_FILE_MAX ? limit / 4 : CFGD_LOG_FILE_MAX;
}

static bool is_circular(const json_t *state)
{
    return strcmp(json_string_value(json_object_get(state, "mode")), "circular") == 0;
}

static void build_query(const json_t *state, const char *cursor, cfgd_journal_query *q)
{
    memset(q, 0, sizeof *q);
    size_t i;
    const json_t *v;
    json_array_foreach(json_object_get(state, "units"), i, v)
    {
        if (q->nunits < CFGD_JOURNAL_MATCHES_MAX)
            q->units[q->nunits++] = json_string_value(v);
    }
    json_array_foreach(json_object_get(state, "identifiers"), i, v)
    {
        if (q->nidentifiers < CFGD_JOURNAL_MATCHES_MAX)
            q->identifiers[q->nidentifiers++] = json_string_value(v);
    }
    const char *p = json_string_value(json_object_get(state, "priority"));
    q->priority = 7;
    for (int k = 0; p && k < 8; k++)
        if (strcmp(p, priorities[k]) == 0)
            q->priority = k;
    q->since_ms = json_integer_value(json_object_get(state, "since"));
    q->cursor_path = cursor;
}

/* Renames the current file to <name>_YYYY_MM_DD_HH_MM_SS[_N].log (UTC); an empty one is simply
 * removed. 1 with *out filled when a file was made, 0 when there was nothing, or -errno. */
static int finalize_current(int dfd, const char *name, cfgd_log_file *out)
{
    struct stat st;
    if (fstatat(dfd, CFGD_LOG_CURRENT_FILE, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISREG(st.st_mode) || st.st_size == 0)
        return unlinkat(dfd, CFGD_LOG_CURRENT_FILE, 0) == 0 ? 0 : -errno;
    time_t now = (time_t)(time_now_ms() / 1000);
    struct tm tm;
    char stamp[32], file[CFGD_LOG_NAME_MAX + 1];
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y_%m_%d_%H_%M_%S", &tm);
    for (int i = 0; i < 1000; i++) {
        if (i == 0)
            snprintf(file, sizeof file, "%s_%s.log", name, stamp);
        else
            snprintf(file, sizeof file, "%s_%s_%d.log", name, stamp, i);
        struct stat other;
        if (fstatat(dfd, file, &other, AT_SYMLINK_NOFOLLOW) != 0 && errno == ENOENT)
            break;
    }
    if (renameat(dfd, CFGD_LOG_CURRENT_FILE, dfd, file) != 0)
        return -errno;
    if (out) {
        snprintf(out->name, sizeof out->name, "%s", file);
        out->size = (int64_t)st.st_size;
        out->mtime = st.st_mtim;
    }
    return 1;
}

/* Where collected lines go: the current file, rotated and bounded. */
typedef struct {
    int dfd;
    const char *name;
    cfgd_log_file *files; /* visible files, oldest first (room for CFGD_LOG_FILES_MAX) */
    size_t nfiles;
    int64_t total, limit, cap, cur_size;
    bool circular, dropped, wrote;
    FILE *cur;
} sink;

static int open_current(sink *s)
{
    int fd = openat(s->dfd, CFGD_LOG_CURRENT_FILE,
                    O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, CFGD_LOG_FILE_MODE);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !(s->cur = fdopen(fd, "a"))) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return -e;
    }
    s->cur_size = (int64_t)st.st_size;
    return 0;
}

static int close_current(sink *s)
{
    int r = fflush(s->cur) == 0 && fsync(fileno(s->cur)) == 0 ? 0 : -errno;
    fclose(s->cur);
    s->cur = NULL;
    return r;
}

static int rotate(sink *s)
{
    int r = close_current(s);
    cfgd_log_file made;
    int f = r < 0 ? r : finalize_current(s->dfd, s->name, &made);
    if (f == 1 && s->nfiles < CFGD_LOG_FILES_MAX)
        s->files[s->nfiles++] = made;
    return f < 0 ? f : open_current(s);
}

static void drop_oldest(sink *s)
{
    if (unlinkat(s->dfd, s->files[0].name, 0) == 0 || errno == ENOENT)
        s->total -= s->files[0].size;
    s->nfiles--;
    memmove(s->files, s->files + 1, s->nfiles * sizeof *s->files);
}

static int put_line(sink *s, const char *line, size_t len)
{
    int64_t n = (int64_t)len;
    if (!s->circular && s->dropped)
        return 0; /* sequential: once full, the rest of this read is dropped too */
    if (s->cur_size > 0 && s->cur_size + n > s->cap) {
        int r = rotate(s);
        if (r < 0)
            return r;
    }
    while (s->circular && s->total + n > s->limit && s->nfiles > 0)
        drop_oldest(s);
    if (s->total + n > s->limit) {
        s->dropped = true;
        return 0;
    }
    if (fwrite(line, 1, len, s->cur) != len)
        return -EIO;
    s->cur_size += n;
    s->total += n;
    s->wrote = true;
    return 0;
}

/* Appends what journal_read left in tmp to the folder, within the limits. */
static int distribute(int dfd, const char *name, json_t *state, int tmp, cfgd_error *err)
{
    sink s = {
        .dfd = dfd, .name = name, .limit = limit_bytes(state), .circular = is_circular(state)};
    s.cap = file_cap(s.limit);
    int r = cfgd_logs_scan(dfd, &s.files, &s.nfiles);
    for (size_t i = 0; r == 0 && i < s.nfiles; i++)
        s.total += s.files[i].size;
    if (r == 0)
        r = open_current(&s);
    s.total += s.cur_size;
    int in_fd = r == 0 && lseek(tmp, 0, SEEK_SET) == 0 ? dup(tmp) : -1;
    FILE *in = in_fd >= 0 ? fdopen(in_fd, "r") : NULL;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while (r == 0 && in && (len = getline(&line, &cap, in)) > 0)
        r = put_line(&s, line, (size_t)len);
    if (r == 0 && !in)
        r = -errno;
    free(line);
    if (in)
        fclose(in);
    else if (in_fd >= 0)
        close(in_fd);
    while (r == 0 && s.circular && s.total > s.limit && s.nfiles > 0)
        drop_oldest(&s);
    if (s.cur) {
        int c = close_current(&s);
        r = r < 0 ? r : c;
    }
    free(s.files);
    bool was_full = json_is_true(json_object_get(state, "full"));
    json_object_set_new(state, "full", json_boolean(s.dropped || (was_full && !s.wrote)));
    if (r < 0)
        cfgd_error_set(err, CFGD_ERR_FAILED, "cannot write the log of collector %s: %s", name,
                       strerror(-r));
    return r;
}

/* An unnamed temporary file in the collector's folder: the same file system, no leftovers. */
static int temp_file(int dfd)
{
    int fd = openat(dfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR))
        return fd;
    unlinkat(dfd, ".journal.tmp", 0);
    fd = openat(dfd, ".journal.tmp", O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0)
        unlinkat(dfd, ".journal.tmp", 0);
    return fd;
}

/* Reads what is new in the journal for this collector and appends it to its folder. */
static int collect_one(cfgd_ctx *ctx, int dfd, const char *name, json_t *state, cfgd_error *err)
{
    char cursor[PATH_MAX];
    snprintf(cursor, sizeof cursor, "%s/%s/%s", CFGD_LOGS_ROOT, name, CFGD_LOG_CURSOR_FILE);
    cfgd_journal_query q;
    build_query(state, cursor, &q);
    int tmp = temp_file(dfd);
    if (tmp < 0) {
        cfgd_error_set(err, CFGD_ERR_FAILED, "cannot make a temporary file for collector %s: %s",
                       name, strerror(errno));
        return -errno;
    }
    int r = ctx->be->vt->journal_read(ctx->be, &q, tmp, err);
    if (r == 0)
        r = distribute(dfd, name, state, tmp, err);
    close(tmp);
    return r;
}

/* A circular folder is trimmed at once when its limit shrinks. */
static void trim(int dfd, const json_t *state)
{
    sink s = {.dfd = dfd, .limit = limit_bytes(state)};
    if (!is_circular(state) || cfgd_logs_scan(dfd, &s.files, &s.nfiles) < 0)
        return;
    struct stat st;
    if (fstatat(dfd, CFGD_LOG_CURRENT_FILE, &st, AT_SYMLINK_NOFOLLOW) == 0)
        s.total = (int64_t)st.st_size;
    for (size_t i = 0; i < s.nfiles; i++)
        s.total += s.files[i].size;
    while (s.total > s.limit && s.nfiles > 0)
        drop_oldest(&s);
    free(s.files);
}

/* The reported form: the settings as applied, the state, and what the folder holds. */
static json_t *collector_status(int dfd, const json_t *state)
{
    cfgd_log_file *files = NULL;
    size_t n = 0;
    int64_t bytes = 0;
    cfgd_logs_scan(dfd, &files, &n);
    for (size_t i = 0; i < n; i++)
        bytes += files[i].size;
    free(files);
    struct stat st;
    if (fstatat(dfd, CFGD_LOG_CURRENT_FILE, &st, AT_SYMLINK_NOFOLLOW) == 0)
        bytes += (int64_t)st.st_size;
    bool started = json_is_true(json_object_get(state, "started"));
    const char *what = !started                                       ? "stopped"
                       : json_is_true(json_object_get(state, "full")) ? "full"
                                                                      : "collecting";
    json_t *v = json_object();
    static const char *const keys[] = {"units",       "identifiers", "priority",
                                       "sizeLimitMB", "mode",        "started"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        json_object_set(v, keys[i], json_object_get(state, keys[i]));
    json_object_set_new(v, "state", json_string(what));
    json_object_set_new(v, "files", json_integer((json_int_t)n));
    json_object_set_new(v, "bytes", json_integer((json_int_t)bytes));
    return v;
}

typedef int (*collector_fn)(cfgd_ctx *ctx, int dfd, const char *name, json_t *state, void *arg);

/* Calls fn for every folder of the logs root that holds a collector. */
static int for_each_collector(cfgd_ctx *ctx, collector_fn fn, void *arg, cfgd_error *err)
{
    int root;
    int r = cfgd_logs_open(ctx, NULL, false, &root, err);
    if (r == -ENOENT)
        return 0;
    if (r < 0)
        return r;
    cfgd_log_file *dirs = calloc(CFGD_LOG_FILES_MAX, sizeof *dirs);
    size_t n = 0;
    int fd = dup(root);
    DIR *d = fd < 0 ? NULL : fdopendir(fd);
    struct dirent *de;
    while (d && dirs && n < CFGD_LOG_FILES_MAX && (de = readdir(d)) != NULL) {
        if (cfgd_log_collector_name_valid(de->d_name, strlen(de->d_name)))
            snprintf(dirs[n++].name, sizeof dirs->name, "%s", de->d_name);
    }
    if (d)
        closedir(d);
    for (size_t i = 0; i < n && r == 0; i++) {
        int dfd = openat(root, dirs[i].name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        json_t *state = dfd < 0 ? NULL : load_state(dfd);
        if (state)
            r = fn(ctx, dfd, dirs[i].name, state, arg);
        json_decref(state);
        if (dfd >= 0)
            close(dfd);
    }
    free(dirs);
    close(root);
    return r;
}

static int add_status(cfgd_ctx *ctx, int dfd, const char *name, json_t *state, void *arg)
{
    (void)ctx;
    json_object_set_new(arg, name, collector_status(dfd, state));
    return 0;
}

static int count_one(cfgd_ctx *ctx, int dfd, const char *name, json_t *state, void *arg)
{
    (void)ctx, (void)dfd, (void)name, (void)state;
    ++*(size_t *)arg;
    return 0;
}

int cfgd_op_logs_status(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err)
{
    (void)args;
    json_t *all = json_object();
    int r = for_each_collector(ctx, add_status, all, err);
    if (r < 0) {
        json_decref(all);
        return r;
    }
    *out = json_pack("{s:o}", "collectors", all);
    return 0;
}

/* One collector's periodic collection; its failure is reported next to it, not for all. */
static int collect_status(cfgd_ctx *ctx, int dfd, const char *name, json_t *state, void *arg)
{
    cfgd_error e = {0};
    int r = 0;
    if (json_is_true(json_object_get(state, "started"))) {
        bool was_full = json_is_true(json_object_get(state, "full"));
        r = collect_one(ctx, dfd, name, state, &e);
        cfgd_error ignored;
        /* Only a change is written: this runs every minute, and flash wears. */
        if (was_full != json_is_true(json_object_get(state, "full")))
            save_state(dfd, state, &ignored);
    }
    json_t *st = collector_status(dfd, state);
    if (r < 0)
        json_object_set_new(st, "error", json_string(e.message));
    json_object_set_new(arg, name, st);
    return 0;
}

int cfgd_op_logs_collect(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err)
{
    (void)args;
    json_t *all = json_object();
    int r = for_each_collector(ctx, collect_status, all, err);
    if (r < 0) {
        json_decref(all);
        return r;
    }
    *out = json_pack("{s:o}", "collectors", all);
    return 0;
}

/* The start and stop transitions: a start reads from now on with a fresh cursor; a stop keeps
 * what was collected as a finished file, as the original saved the trace on stop. */
static int transition(int dfd, const char *name, const json_t *old, json_t *next, cfgd_error *err)
{
    bool was = old && json_is_true(json_object_get(old, "started"));
    bool now = json_is_true(json_object_get(next, "started"));
    if (was && now) {
        json_object_set(next, "since", json_object_get(old, "since"));
        json_object_set(next, "full", json_object_get(old, "full"));
    } else if (now) {
        json_object_set_new(next, "since", json_integer(time_now_ms()));
        json_object_set_new(next, "full", json_false());
        if (unlinkat(dfd, CFGD_LOG_CURSOR_FILE, 0) != 0 && errno != ENOENT) {
            cfgd_error_set(err, CFGD_ERR_FAILED, "cannot reset the cursor of %s", name);
            return -errno;
        }
    }
    int r = was && !now ? finalize_current(dfd, name, NULL) : 0;
    if (r < 0)
        cfgd_error_set(err, CFGD_ERR_FAILED, "cannot finish the log of %s: %s", name, strerror(-r));
    return r < 0 ? r : 0;
}

int cfgd_op_logs_set_collector(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err)
{
    const char *name = json_string_value(json_object_get(args, "name"));
    int dfd;
    int r = cfgd_logs_open(ctx, name, false, &dfd, err);
    json_t *old = r == 0 ? load_state(dfd) : NULL;
    if (!old) {
        size_t count = 0;
        if (for_each_collector(ctx, count_one, &count, err) == 0 &&
            count >= CFGD_LOG_COLLECTORS_MAX) {
            if (dfd >= 0)
                close(dfd);
            cfgd_error_set(err, CFGD_ERR_TOO_LARGE, "at most %d log collectors",
                           CFGD_LOG_COLLECTORS_MAX);
            return -E2BIG;
        }
    }
    if (r < 0 && (r = cfgd_logs_open(ctx, name, true, &dfd, err)) < 0)
        return r;
    /* What ran so far was collected with the old settings; the new ones apply from now on. */
    bool was = old && json_is_true(json_object_get(old, "started"));
    r = was ? collect_one(ctx, dfd, name, old, err) : 0;
    json_t *next = normalized(json_object_get(args, "settings"));
    if (r == 0)
        r = transition(dfd, name, old, next, err);
    if (r == 0)
        r = save_state(dfd, next, err);
    if (r == 0) {
        trim(dfd, next);
        *out = collector_status(dfd, next);
    }
    json_decref(old);
    json_decref(next);
    close(dfd);
    return r;
}

int cfgd_op_logs_remove_collector(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err)
{
    const char *name = json_string_value(json_object_get(args, "name"));
    int dfd;
    int r = cfgd_logs_open(ctx, name, false, &dfd, err);
    json_t *old = r == 0 ? load_state(dfd) : NULL;
    if (!old) {
        if (dfd >= 0)
            close(dfd);
        *out = json_pack("{s:b}", "removed", 0);
        return r == -ENOENT || r == 0 ? 0 : r;
    }
    if (json_is_true(json_object_get(old, "started"))) {
        /* A journal that cannot be read must not keep a collector alive: keep what is there. */
        cfgd_error ignored;
        collect_one(ctx, dfd, name, old, &ignored);
        r = finalize_current(dfd, name, NULL);
    }
    if (r >= 0 && unlinkat(dfd, CFGD_LOG_STATE_FILE, 0) != 0)
        r = -errno;
    unlinkat(dfd, CFGD_LOG_CURSOR_FILE, 0);
    close(dfd);
    json_decref(old);
    if (r < 0) {
        cfgd_error_set(err, CFGD_ERR_FAILED, "cannot remove collector %s: %s", name, strerror(-r));
        return r;
    }
    *out = json_pack("{s:b}", "removed", 1);
    return 0;
}
