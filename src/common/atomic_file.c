/* Replacing a file all or nothing: temporary file, fsync, rename, fsync of the folder. */
#include "common/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TEMP_ATTEMPTS 16

static iotdm_result failed(const char *shown, const char *step, int e, char *err, size_t err_cap)
{
    if (err && err_cap)
        snprintf(err, err_cap, "cannot write %s: %s: %s", shown, step, strerror(e));
    return -e;
}

/* A fresh name beside the target: hidden, and unique even between processes sharing a folder. */
static int open_temp(int dirfd, const char *name, char *tmp, size_t cap)
{
    for (int attempt = 0; attempt < TEMP_ATTEMPTS; attempt++) {
        uint32_t rnd;
        if (getrandom(&rnd, sizeof rnd, GRND_NONBLOCK) != (ssize_t)sizeof rnd)
            rnd = (uint32_t)getpid() * 2654435761u ^ (uint32_t)clock() ^ (uint32_t)attempt;
        int n = snprintf(tmp, cap, ".%.200s.%08x.tmp", name, (unsigned)rnd);
        if (n < 0 || (size_t)n >= cap) {
            errno = ENAMETOOLONG;
            return -1;
        }
        int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    errno = EEXIST;
    return -1;
}

static int write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? errno : EIO;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Fills the temporary file; returns 0 or the errno of the step named in *out_step. */
static int fill(int fd, const void *data, size_t len, unsigned mode, const char **out_step)
{
    int e = write_all(fd, data, len);
    *out_step = "write";
    if (e == 0 && fchmod(fd, (mode_t)mode) != 0) {
        e = errno;
        *out_step = "chmod";
    }
    if (e == 0 && fsync(fd) != 0) {
        e = errno;
        *out_step = "fsync";
    }
    return e;
}

iotdm_result atomic_file_write_at(int dirfd, const char *name, const char *shown, const void *data,
                                  size_t len, unsigned mode, char *err, size_t err_cap)
{
    if (!shown)
        shown = name;
    if (!name || !*name || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
        return failed(shown ? shown : "(no name)", "name", EINVAL, err, err_cap);
    if (!data && len)
        return failed(shown, "data", EINVAL, err, err_cap);
    char tmp[NAME_MAX + 1];
    int fd = open_temp(dirfd, name, tmp, sizeof tmp);
    if (fd < 0)
        return failed(shown, "create a temporary file", errno, err, err_cap);
    const char *step;
    int e = fill(fd, data, len, mode, &step);
    if (close(fd) != 0 && e == 0) {
        e = errno;
        step = "close";
    }
    if (e == 0 && renameat(dirfd, tmp, dirfd, name) != 0) {
        e = errno;
        step = "rename";
    }
    if (e != 0) {
        unlinkat(dirfd, tmp, 0);
        return failed(shown, step, e, err, err_cap);
    }
    /* The rename is durable only once the folder holding the names is. */
    if (fsync(dirfd) != 0)
        return failed(shown, "fsync of the folder", errno, err, err_cap);
    return IOTDM_OK;
}

iotdm_result atomic_file_write(const char *path, const void *data, size_t len, unsigned mode,
                               char *err, size_t err_cap)
{
    if (!path || !*path)
        return failed("(no path)", "name", EINVAL, err, err_cap);
    const char *slash = strrchr(path, '/');
    char dir[PATH_MAX];
    if (!slash || slash == path) {
        snprintf(dir, sizeof dir, "%s", slash ? "/" : ".");
    } else if ((size_t)(slash - path) >= sizeof dir) {
        return failed(path, "name", ENAMETOOLONG, err, err_cap);
    } else {
        memcpy(dir, path, (size_t)(slash - path));
        dir[slash - path] = '\0';
    }
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
        return failed(path, "open the folder", errno, err, err_cap);
    iotdm_result r =
        atomic_file_write_at(dirfd, slash ? slash + 1 : path, path, data, len, mode, err, err_cap);
    close(dirfd);
    return r;
}
