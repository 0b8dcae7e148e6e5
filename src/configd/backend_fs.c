/* File effects shared by both backends: every device path is mapped under the backend's root. */
#include "configd/backend.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "common/atomic_file.h"

#define REMOVE_MAX_DEPTH 64

int cfgd_fs_map(const cfgd_backend *be, const char *path, char *buf, size_t cap)
{
    /* Device paths come from configd's own table and config, never from a request; checking them
     * anyway keeps a future mistake from writing outside the root. */
    if (!cfgd_path_clean(path))
        return -EINVAL;
    int n = snprintf(buf, cap, "%s%s", be->root, path);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

static int fail(cfgd_error *err, int e, const char *what, const char *path)
{
    cfgd_error_set(err, CFGD_ERR_FAILED, "cannot %s %s: %s", what, path, strerror(e));
    return -e;
}

int cfgd_fs_mkdirs(const char *host_path, unsigned mode)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", host_path) >= (int)sizeof buf)
        return -ENAMETOOLONG;
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(buf, (mode_t)mode) != 0 && errno != EEXIST)
            return -errno;
        *p = c;
        if (c == '\0')
            return 0;
    }
}

/* Splits a host path into its folder (in dir) and checks the folder exists, creating it. */
static int prepare_dir(const char *host, char *dir, size_t cap)
{
    snprintf(dir, cap, "%s", host);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return -EINVAL;
    *slash = '\0';
    return cfgd_fs_mkdirs(dir, 0755);
}

/* A rename is only durable once the folder holding the name is synced. */
static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

int cfgd_fs_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EIO;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int cfgd_fs_write_file(cfgd_backend *be, const char *path, const void *data, size_t len,
                       unsigned mode, cfgd_error *err)
{
    char host[PATH_MAX], dir[PATH_MAX];
    int r = cfgd_fs_map(be, path, host, sizeof host);
    if (r == 0)
        r = prepare_dir(host, dir, sizeof dir);
    /* The message names the device path, not the sandbox's host path: fail() says it. */
    if (r == 0)
        r = atomic_file_write(host, data, len, mode, NULL, 0);
    return r < 0 ? fail(err, -r, "write", path) : 0;
}

int cfgd_fs_read_file(cfgd_backend *be, const char *path, char *buf, size_t cap, size_t *out_len,
                      cfgd_error *err)
{
    char host[PATH_MAX];
    int r = cfgd_fs_map(be, path, host, sizeof host);
    if (r < 0)
        return fail(err, -r, "read", path);
    int fd = open(host, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return fail(err, errno, "read", path);
    size_t len = 0;
    while (len + 1 < cap) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = -errno;
            break;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    if (r < 0)
        return fail(err, -r, "read", path);
    buf[len] = '\0';
    if (out_len)
        *out_len = len;
    return 0;
}

int cfgd_fs_symlink(cfgd_backend *be, const char *target, const char *path, cfgd_error *err)
{
    char host[PATH_MAX], dir[PATH_MAX], tmp[PATH_MAX];
    int r = cfgd_fs_map(be, path, host, sizeof host);
    if (r == 0)
        r = prepare_dir(host, dir, sizeof dir);
    if (r < 0)
        return fail(err, -r, "link", path);
    /* symlink() cannot replace, so the link is made under a fresh name and renamed over. */
    static unsigned counter;
    for (int attempt = 0;; attempt++) {
        int n = snprintf(tmp, sizeof tmp, "%s/.iotdm-link.%ld.%u", dir, (long)getpid(), counter++);
        if (n < 0 || (size_t)n >= sizeof tmp)
            return fail(err, ENAMETOOLONG, "link", path);
        if (symlink(target, tmp) == 0)
            break;
        if (errno != EEXIST || attempt > 100)
            return fail(err, errno, "link", path);
    }
    if (rename(tmp, host) != 0) {
        r = errno;
        unlink(tmp);
        return fail(err, r, "link", path);
    }
    sync_dir(dir);
    return 0;
}

int cfgd_fs_readlink(cfgd_backend *be, const char *path, char *buf, size_t cap, cfgd_error *err)
{
    char host[PATH_MAX];
    int r = cfgd_fs_map(be, path, host, sizeof host);
    if (r < 0)
        return fail(err, -r, "read link", path);
    ssize_t n = readlink(host, buf, cap - 1);
    if (n < 0)
        return fail(err, errno, "read link", path);
    buf[n] = '\0';
    return 0;
}

typedef struct {
    const char (*keep)[CFGD_PATH_MAX];
    size_t nkeep;
    char path[PATH_MAX]; /* the device path being visited */
} wipe_walk;

static bool is_kept(const wipe_walk *w)
{
    for (size_t i = 0; i < w->nkeep; i++) {
        if (cfgd_path_within(w->path, w->keep[i]))
            return true;
    }
    return false;
}

static bool leads_to_kept(const wipe_walk *w)
{
    for (size_t i = 0; i < w->nkeep; i++) {
        if (cfgd_path_within(w->keep[i], w->path))
            return true;
    }
    return false;
}

static int wipe_entry(wipe_walk *w, int dfd, const char *name, int depth);

/* Empties the folder open as fd (consumed); keeps what the keep list names. */
static int wipe_dir(wipe_walk *w, int fd, int depth)
{
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return -errno;
    }
    int r = 0;
    struct dirent *de;
    while (r == 0 && (errno = 0, de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        r = wipe_entry(w, dirfd(d), de->d_name, depth + 1);
    }
    if (r == 0 && errno != 0)
        r = -errno;
    closedir(d);
    return r;
}

/* Removes dfd/name (device path w->path + "/" + name) unless kept; never follows links. */
static int wipe_entry(wipe_walk *w, int dfd, const char *name, int depth)
{
    size_t base = strlen(w->path);
    if (depth > REMOVE_MAX_DEPTH)
        return -ELOOP;
    if (snprintf(w->path + base, sizeof w->path - base, "/%s", name) >=
        (int)(sizeof w->path - base))
        return -ENAMETOOLONG;
    int r = 0;
    struct stat st;
    if (is_kept(w)) {
        r = 0;
    } else if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        r = errno == ENOENT ? 0 : -errno;
    } else if (!S_ISDIR(st.st_mode)) {
        r = unlinkat(dfd, name, 0) == 0 || errno == ENOENT ? 0 : -errno;
    } else {
        int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        r = fd < 0 ? -errno : wipe_dir(w, fd, depth);
        if (r == 0 && !leads_to_kept(w) && unlinkat(dfd, name, AT_REMOVEDIR) != 0)
            r = -errno;
    }
    w->path[base] = '\0';
    return r;
}

int cfgd_fs_remove(cfgd_backend *be, const char *path, const char (*keep)[CFGD_PATH_MAX],
                   size_t nkeep, bool *out_existed, cfgd_error *err)
{
    char host[PATH_MAX], dir[PATH_MAX];
    *out_existed = false;
    int r = cfgd_fs_map(be, path, host, sizeof host);
    if (r < 0)
        return fail(err, -r, "remove", path);
    struct stat st;
    if (lstat(host, &st) != 0)
        return errno == ENOENT ? 0 : fail(err, errno, "remove", path);
    *out_existed = true;
    snprintf(dir, sizeof dir, "%s", host);
    char *slash = strrchr(dir, '/');
    *slash = '\0';
    int dfd = open(slash == dir ? "/" : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return fail(err, errno, "remove", path);
    wipe_walk w = {.keep = keep, .nkeep = nkeep};
    /* wipe_entry appends the last segment itself. */
    const char *last = strrchr(path, '/');
    snprintf(w.path, sizeof w.path, "%.*s", (int)(last - path), path);
    r = wipe_entry(&w, dfd, last + 1, 0);
    close(dfd);
    return r < 0 ? fail(err, -r, "remove", path) : 0;
}

int cfgd_fs_exists(cfgd_backend *be, const char *path)
{
    char host[PATH_MAX];
    struct stat st;
    int r = cfgd_fs_map(be, path, host, sizeof host);
    if (r < 0)
        return r;
    if (lstat(host, &st) == 0)
        return 1;
    return errno == ENOENT || errno == ENOTDIR ? 0 : -errno;
}

int cfgd_fs_system_path(cfgd_backend *be, const char *path, char *buf, size_t cap)
{
    if (be->root[0]) {
        int r = cfgd_fs_map(be, path, buf, cap);
        struct stat st;
        if (r == 0 && stat(buf, &st) == 0)
            return 0;
    }
    return snprintf(buf, cap, "%s", path) >= (int)cap ? -ENAMETOOLONG : 0;
}

int cfgd_fs_storage(cfgd_backend *be, uint64_t *out_total_kb, uint64_t *out_free_kb,
                    cfgd_error *err)
{
    struct statvfs sv;
    const char *where = be->root[0] ? be->root : "/";
    if (statvfs(where, &sv) != 0)
        return fail(err, errno, "measure", "/");
    *out_total_kb = (uint64_t)sv.f_blocks * sv.f_frsize / 1024;
    *out_free_kb = (uint64_t)sv.f_bavail * sv.f_frsize / 1024;
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(json_string_value(json_object_get(*(json_t *const *)a, "name")),
                  json_string_value(json_object_get(*(json_t *const *)b, "name")));
}

/* Sorted so that listings (and what is reported from them) do not depend on the file system. */
static json_t *sorted(json_t **items, size_t n)
{
    qsort(items, n, sizeof *items, by_name);
    json_t *out = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(out, items[i]);
    return out;
}

#define LIST_MAX 4096 /* entries per folder; a folder configd manages never holds that many */

int cfgd_fs_list_dir(cfgd_backend *be, const char *path, json_t **out, cfgd_error *err)
{
    char host[PATH_MAX];
    *out = NULL;
    int r = cfgd_fs_map(be, path, host, sizeof host);
    if (r < 0)
        return fail(err, -r, "list", path);
    int dfd = open(host, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0 && errno == ENOENT) {
        *out = json_array();
        return 0;
    }
    DIR *d = dfd < 0 ? NULL : fdopendir(dfd);
    if (!d) {
        r = errno;
        if (dfd >= 0)
            close(dfd);
        return fail(err, r, "list", path);
    }
    json_t **items = calloc(LIST_MAX, sizeof *items);
    size_t n = 0;
    struct dirent *e;
    struct stat st;
    while (items && n < LIST_MAX && (e = readdir(d)) != NULL) {
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
            continue;
        json_t *item = json_pack("{s:s, s:I, s:I}", "name", e->d_name, "size",
                                 (json_int_t)st.st_size, "mtime", (json_int_t)st.st_mtime);
        if (item)
            items[n++] = item;
    }
    closedir(d);
    if (!items)
        return fail(err, ENOMEM, "list", path);
    *out = sorted(items, n);
    free(items);
    return 0;
}
