/* logs.* argument checks and the log-file operations: list folders and files, copy a file into a
 * descriptor the caller passed (the agent uploads it), delete a file. Names from a request are
 * only ever used relative to a folder descriptor, and links are never followed. */
#include "configd/ops/logs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/timeutil.h"
#include "configd/ops/ops.h"

static const char *const priorities[] = {"emerg",   "alert",  "crit", "err",
                                         "warning", "notice", "info", "debug"};

bool cfgd_log_name_valid(const char *name, size_t len)
{
    if (!name || len == 0 || len > CFGD_LOG_NAME_MAX || name[0] == '.' || strlen(name) != len ||
        strstr(name, ".."))
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f || name[i] == '/' || name[i] == '\\')
            return false;
    return true;
}

bool cfgd_log_collector_name_valid(const char *name, size_t len)
{
    static const char allowed[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                  "0123456789_-";
    return name && len > 0 && len <= CFGD_LOG_COLLECTOR_MAX && strlen(name) == len &&
           strspn(name, allowed) == len;
}

/* A name member of args, checked with valid(); what says which kind of name for the message. */
static int name_arg(const json_t *args, const char *member, bool (*valid)(const char *, size_t),
                    const char *what, cfgd_error *err)
{
    const json_t *v = json_object_get(args, member);
    if (!json_is_string(v)) {
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT, "argument \"%s\" must be a string", member);
        return -EINVAL;
    }
    if (!valid(json_string_value(v), json_string_length(v))) {
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT, "\"%.64s\" is not a valid %s",
                       json_string_value(v), what);
        return -EINVAL;
    }
    return 0;
}

#define FOLDER_RULES "log folder name (1 to 255 characters, no '/', no '..', no leading '.')"
#define FILE_RULES   "log file name (1 to 255 characters, no '/', no '..', no leading '.')"
#define NAME_RULES   "collector name (1 to 64 of A-Z a-z 0-9 _ -)"

int cfgd_validate_logs_folder(const json_t *args, cfgd_error *err)
{
    static const char *const allowed[] = {"folder", NULL};
    if (cfgd_args_only(args, allowed, err) < 0)
        return -EINVAL;
    return name_arg(args, "folder", cfgd_log_name_valid, FOLDER_RULES, err);
}

int cfgd_validate_logs_file(const json_t *args, cfgd_error *err)
{
    static const char *const allowed[] = {"folder", "file", NULL};
    if (cfgd_args_only(args, allowed, err) < 0 ||
        name_arg(args, "folder", cfgd_log_name_valid, FOLDER_RULES, err) < 0)
        return -EINVAL;
    return name_arg(args, "file", cfgd_log_name_valid, FILE_RULES, err);
}

int cfgd_validate_logs_collector_name(const json_t *args, cfgd_error *err)
{
    static const char *const allowed[] = {"name", NULL};
    if (cfgd_args_only(args, allowed, err) < 0)
        return -EINVAL;
    return name_arg(args, "name", cfgd_log_collector_name_valid, NAME_RULES, err);
}

int cfgd_validate_logs_set_collector(const json_t *args, cfgd_error *err)
{
    static const char *const allowed[] = {"name", "settings", NULL};
    if (cfgd_args_only(args, allowed, err) < 0 ||
        name_arg(args, "name", cfgd_log_collector_name_valid, NAME_RULES, err) < 0)
        return -EINVAL;
    const json_t *s = json_object_get(args, "settings");
    if (s && !json_is_object(s)) {
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT, "argument \"settings\" must be an object");
        return -EINVAL;
    }
    return s ? cfgd_log_settings_check(s, err) : 0;
}

/* A unit as systemd spells it (escapes included); no globs, nothing that looks like an option. */
static bool unit_valid(const char *s, size_t len)
{
    static const char allowed[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                  "0123456789:_.@\\-";
    return len > 0 && len <= CFGD_LOG_UNIT_MAX && s[0] != '-' && s[0] != '.' && strlen(s) == len &&
           strspn(s, allowed) == len;
}

/* A syslog identifier: printable ASCII without spaces, not starting with '-'. */
static bool identifier_valid(const char *s, size_t len)
{
    bool ok = len > 0 && len <= CFGD_LOG_IDENTIFIER_MAX && s[0] != '-' && strlen(s) == len;
    for (size_t i = 0; ok && i < len; i++)
        ok = s[i] > 0x20 && s[i] < 0x7f;
    return ok;
}

static int string_list(const json_t *settings, const char *member,
                       bool (*valid)(const char *, size_t), cfgd_error *err)
{
    const json_t *list = json_object_get(settings, member);
    if (!list)
        return 0;
    if (!json_is_array(list) || json_array_size(list) > CFGD_JOURNAL_MATCHES_MAX) {
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT, "%s must be an array of at most %d names",
                       member, CFGD_JOURNAL_MATCHES_MAX);
        return -EINVAL;
    }
    size_t i;
    const json_t *v;
    json_array_foreach(list, i, v)
    {
        if (!json_is_string(v) || !valid(json_string_value(v), json_string_length(v))) {
            cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT, "%s[%zu] \"%.64s\" is not a valid %s",
                           member, i, json_is_string(v) ? json_string_value(v) : "(not a string)",
                           valid == unit_valid ? "systemd unit name" : "syslog identifier");
            return -EINVAL;
        }
    }
    return 0;
}

static bool one_of(const json_t *v, const char *const *names, size_t n)
{
    for (size_t i = 0; json_is_string(v) && i < n; i++)
        if (strcmp(json_string_value(v), names[i]) == 0)
            return true;
    return false;
}

int cfgd_log_settings_check(const json_t *settings, cfgd_error *err)
{
    static const char *const allowed[] = {"units", "identifiers", "priority", "sizeLimitMB",
                                          "mode",  "started",     NULL};
    static const char *const modes[] = {"circular", "sequential"};
    if (cfgd_args_only(settings, allowed, err) < 0 ||
        string_list(settings, "units", unit_valid, err) < 0 ||
        string_list(settings, "identifiers", identifier_valid, err) < 0)
        return -EINVAL;
    const json_t *p = json_object_get(settings, "priority");
    const json_t *size = json_object_get(settings, "sizeLimitMB");
    const json_t *mode = json_object_get(settings, "mode");
    const json_t *started = json_object_get(settings, "started");
    if (p && !one_of(p, priorities, 8)) {
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT,
                       "priority must be one of emerg, alert, crit, err, warning, notice, info, "
                       "debug");
        return -EINVAL;
    }
    if (size && (!json_is_integer(size) || json_integer_value(size) < 1 ||
                 json_integer_value(size) > CFGD_LOG_SIZE_LIMIT_MAX)) {
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT,
                       "sizeLimitMB must be an integer from 1 to %d", CFGD_LOG_SIZE_LIMIT_MAX);
        return -EINVAL;
    }
    if (mode && !one_of(mode, modes, 2)) {
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT, "mode must be circular or sequential");
        return -EINVAL;
    }
    if (started && !json_is_boolean(started)) {
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT, "started must be true or false");
        return -EINVAL;
    }
    return 0;
}

/* ---- folders and files ------------------------------------------------------------------- */

static int by_string(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int cfgd_logs_open(cfgd_ctx *ctx, const char *folder, bool create, int *out_fd, cfgd_error *err)
{
    int root;
    int r = cfgd_fs_open_dir(ctx->be, CFGD_LOGS_ROOT, create, CFGD_LOG_FOLDER_MODE, &root, err);
    if (r < 0 || !folder) {
        *out_fd = root;
        return r;
    }
    if (create && mkdirat(root, folder, CFGD_LOG_FOLDER_MODE) != 0 && errno != EEXIST) {
        r = -errno;
        cfgd_error_set(err, CFGD_ERR_FAILED, "cannot create the log folder %s: %s", folder,
                       strerror(errno));
    }
    *out_fd = r < 0 ? -1 : openat(root, folder, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (r == 0 && *out_fd < 0) {
        r = -errno;
        /* A link or a file where a folder should be is "no such folder" to a caller. */
        bool missing = errno == ENOENT || errno == ENOTDIR || errno == ELOOP;
        cfgd_error_set(err, missing ? CFGD_ERR_NOT_FOUND : CFGD_ERR_FAILED,
                       missing ? "no log folder \"%s\"" : "cannot open the log folder %s: %s",
                       folder, strerror(errno));
    }
    close(root);
    return r;
}

static int oldest_first(const void *a, const void *b)
{
    const cfgd_log_file *x = a, *y = b;
    if (x->mtime.tv_sec != y->mtime.tv_sec)
        return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
    if (x->mtime.tv_nsec != y->mtime.tv_nsec)
        return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
    return strcmp(x->name, y->name);
}

int cfgd_logs_scan(int dfd, cfgd_log_file **out, size_t *out_n)
{
    *out = NULL;
    *out_n = 0;
    int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd < 0 ? NULL : fdopendir(fd);
    cfgd_log_file *files = calloc(CFGD_LOG_FILES_MAX, sizeof *files);
    if (!d || !files) {
        int e = errno ? errno : ENOMEM;
        if (d)
            closedir(d);
        else if (fd >= 0)
            close(fd);
        free(files);
        return -e;
    }
    size_t n = 0;
    struct dirent *de;
    struct stat st;
    while (n < CFGD_LOG_FILES_MAX && (de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (!cfgd_log_name_valid(de->d_name, len) ||
            fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
            continue;
        memcpy(files[n].name, de->d_name, len + 1);
        files[n].size = (int64_t)st.st_size;
        files[n].mtime = st.st_mtim;
        n++;
    }
    closedir(d);
    qsort(files, n, sizeof *files, oldest_first);
    *out = files;
    *out_n = n;
    return 0;
}

int cfgd_op_logs_list_folders(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err)
{
    (void)args;
    int root;
    int r = cfgd_logs_open(ctx, NULL, false, &root, err);
    json_t *list = json_array();
    if (r == -ENOENT) {
        *out = json_pack("{s:o}", "folders", list);
        return 0;
    }
    DIR *d = r < 0 ? NULL : fdopendir(root);
    if (!d) {
        json_decref(list);
        if (r == 0) {
            close(root);
            cfgd_error_set(err, CFGD_ERR_FAILED, "cannot list %s: %s", CFGD_LOGS_ROOT,
                           strerror(errno));
        }
        return r < 0 ? r : -EIO;
    }
    char **names = calloc(CFGD_LOG_FILES_MAX, sizeof *names);
    size_t n = 0;
    struct dirent *de;
    struct stat st;
    while (names && n < CFGD_LOG_FILES_MAX && (de = readdir(d)) != NULL) {
        if (cfgd_log_name_valid(de->d_name, strlen(de->d_name)) &&
            fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode) &&
            (names[n] = strdup(de->d_name)) != NULL)
            n++;
    }
    closedir(d);
    qsort(names, n, sizeof *names, by_string);
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(list, json_string(names[i]));
        free(names[i]);
    }
    free(names);
    *out = json_pack("{s:o}", "folders", list);
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const cfgd_log_file *)a)->name, ((const cfgd_log_file *)b)->name);
}

int cfgd_op_logs_list_files(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err)
{
    const char *folder = json_string_value(json_object_get(args, "folder"));
    int dfd;
    int r = cfgd_logs_open(ctx, folder, false, &dfd, err);
    if (r < 0)
        return r;
    cfgd_log_file *files;
    size_t n;
    r = cfgd_logs_scan(dfd, &files, &n);
    close(dfd);
    if (r < 0) {
        cfgd_error_set(err, CFGD_ERR_FAILED, "cannot list the log folder %s: %s", folder,
                       strerror(-r));
        return r;
    }
    qsort(files, n, sizeof *files, by_name);
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        char when[40];
        time_format_iso((int64_t)files[i].mtime.tv_sec * 1000 + files[i].mtime.tv_nsec / 1000000,
                        when, sizeof when);
        json_array_append_new(list, json_pack("{s:s, s:I, s:s}", "name", files[i].name, "size",
                                              (json_int_t)files[i].size, "modified", when));
    }
    free(files);
    *out = json_pack("{s:o}", "files", list);
    return 0;
}

/* The named regular file of a folder, opened without following a link (O_NONBLOCK: a FIFO
 * planted there cannot stall configd). */
static int open_log_file(cfgd_ctx *ctx, const json_t *args, int *out_fd, struct stat *st,
                         cfgd_error *err)
{
    const char *folder = json_string_value(json_object_get(args, "folder"));
    const char *file = json_string_value(json_object_get(args, "file"));
    int dfd;
    int r = cfgd_logs_open(ctx, folder, false, &dfd, err);
    if (r < 0)
        return r;
    *out_fd = openat(dfd, file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    close(dfd);
    if (*out_fd >= 0 && (fstat(*out_fd, st) != 0 || !S_ISREG(st->st_mode))) {
        close(*out_fd);
        *out_fd = -1;
        errno = ENOENT;
    }
    if (*out_fd < 0) {
        r = -errno;
        bool missing = errno == ENOENT || errno == ELOOP;
        cfgd_error_set(err, missing ? CFGD_ERR_NOT_FOUND : CFGD_ERR_FAILED,
                       missing ? "no log file \"%s\" in folder \"%s\"%s"
                               : "cannot open %s in folder %s: %s",
                       file, folder, missing ? "" : strerror(errno));
    }
    return r;
}

/* Copies src into dst from offset 0 (dst truncated first). */
static int copy_into(int src, int dst, int64_t *out_size)
{
    if (ftruncate(dst, 0) != 0)
        return -errno;
    char *buf = malloc(65536);
    off_t off = 0;
    int r = buf ? 0 : -ENOMEM;
    while (r == 0) {
        ssize_t n = pread(src, buf, 65536, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            r = n < 0 ? -errno : 0;
            break;
        }
        for (ssize_t done = 0; r == 0 && done < n;) {
            ssize_t w = pwrite(dst, buf + done, (size_t)(n - done), off + done);
            if (w < 0 && errno == EINTR)
                continue;
            r = w <= 0 ? (w < 0 ? -errno : -EIO) : 0;
            done += w > 0 ? w : 0;
        }
        off += n;
        if (off > CFGD_LOG_FILE_MAX)
            r = -EFBIG; /* it grew while being copied */
    }
    free(buf);
    *out_size = (int64_t)off;
    return r;
}

/* The caller (the agent) passes a writable regular file, typically a memfd: configd never hands
 * out a descriptor of its own, and the agent never needs read access to the logs folder. */
int cfgd_op_logs_read_file(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err)
{
    struct stat dst_st, st;
    int flags = ctx->nfds == 1 ? fcntl(ctx->fds[0], F_GETFL) : -1;
    if (ctx->nfds != 1 || flags < 0 || fstat(ctx->fds[0], &dst_st) != 0 ||
        !S_ISREG(dst_st.st_mode) || (flags & O_ACCMODE) == O_RDONLY || (flags & O_APPEND)) {
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT,
                       "logs.read_file needs one writable regular file descriptor to copy into");
        return -EINVAL;
    }
    int fd;
    int r = open_log_file(ctx, args, &fd, &st, err);
    if (r < 0)
        return r;
    if (st.st_size > CFGD_LOG_FILE_MAX) {
        close(fd);
        cfgd_error_set(err, CFGD_ERR_TOO_LARGE, "the log file is larger than %d bytes",
                       CFGD_LOG_FILE_MAX);
        return -EFBIG;
    }
    int64_t size = 0;
    r = copy_into(fd, ctx->fds[0], &size);
    close(fd);
    if (r < 0) {
        cfgd_error_set(err, r == -EFBIG ? CFGD_ERR_TOO_LARGE : CFGD_ERR_FAILED,
                       "cannot copy the log file: %s", strerror(-r));
        return r;
    }
    *out = json_pack("{s:I}", "size", (json_int_t)size);
    return 0;
}

int cfgd_op_logs_delete_file(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err)
{
    const char *folder = json_string_value(json_object_get(args, "folder"));
    const char *file = json_string_value(json_object_get(args, "file"));
    int dfd;
    int r = cfgd_logs_open(ctx, folder, false, &dfd, err);
    if (r < 0)
        return r;
    struct stat st;
    /* Only regular files: a link or a folder there is not a log file and stays. */
    if (fstatat(dfd, file, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) {
        close(dfd);
        cfgd_error_set(err, CFGD_ERR_NOT_FOUND, "no log file \"%s\" in folder \"%s\"", file,
                       folder);
        return -ENOENT;
    }
    if (unlinkat(dfd, file, 0) != 0) {
        r = -errno;
        cfgd_error_set(err, CFGD_ERR_FAILED, "cannot delete %s in folder %s: %s", file, folder,
                       strerror(errno));
    }
    close(dfd);
    if (r == 0)
        *out = json_pack("{s:s, s:s, s:I}", "folder", folder, "file", file, "size",
                         (json_int_t)st.st_size);
    return r;
}
