/* Zone names against the zoneinfo database: a zone is a TZif file the database itself holds, found
 * without ever leaving the database folder, even for a moment through a link. */
#include "configd/ops/ops.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ZONE_MAX_LINKS 40 /* as the kernel's own limit */

/* Names in the database that are not zones: "localtime" is Debian's link to /etc/localtime (the
 * zone configured, so /etc/localtime pointing at it is a loop), "posixrules" the rules POSIX TZ
 * strings borrow. */
static const char *const reserved[] = {"localtime", "posixrules", NULL};

bool cfgd_zone_name_reserved(const char *zone)
{
    const char *slash = strrchr(zone, '/');
    const char *last = slash ? slash + 1 : zone;
    for (size_t i = 0; reserved[i]; i++)
        if (strcmp(last, reserved[i]) == 0)
            return true;
    return false;
}

/* Moves the first component of *rest (a '/'-separated path) into comp; false when none is left. */
static bool next_component(const char **rest, char *comp, size_t cap)
{
    const char *p = *rest + strspn(*rest, "/");
    size_t n = strcspn(p, "/");
    if (n == 0 || n >= cap)
        return false;
    memcpy(comp, p, n);
    comp[n] = '\0';
    *rest = p + n;
    return true;
}

/* An absolute link target is followed only when it names the database folder itself, as the
 * device sees it (device_db) or as this process does (db); anything else leaves the database. */
static const char *inside_db(const char *target, const char *db, const char *device_db)
{
    const char *dbs[] = {device_db, db};
    for (size_t i = 0; i < 2; i++) {
        size_t n = strlen(dbs[i]);
        if (n && strncmp(target, dbs[i], n) == 0 && target[n] == '/')
            return target + n + 1;
    }
    return NULL;
}

/* One path step inside the database: done (relative to db, no links in it) grows by comp, or,
 * when comp is a link, the link's target is put in front of what is left in pending. */
static int step(const char *db, const char *device_db, char *done, char *pending, size_t cap,
                const char *comp, int *links)
{
    if (strcmp(comp, ".") == 0)
        return 0;
    if (strcmp(comp, "..") == 0) {
        char *slash = strrchr(done, '/');
        if (!*done)
            return -EXDEV; /* above the database */
        *(slash ? slash : done) = '\0';
        return 0;
    }
    char host[PATH_MAX], target[PATH_MAX];
    struct stat st;
    int n = snprintf(host, sizeof host, "%s/%s%s%s", db, done, *done ? "/" : "", comp);
    if (n < 0 || (size_t)n >= sizeof host)
        return -ENAMETOOLONG;
    if (lstat(host, &st) != 0)
        return -errno;
    if (!S_ISLNK(st.st_mode)) {
        size_t len = strlen(done);
        snprintf(done + len, cap - len, "%s%s", len ? "/" : "", comp);
        return 0;
    }
    if (++*links > ZONE_MAX_LINKS)
        return -ELOOP;
    ssize_t t = readlink(host, target, sizeof target - 1);
    if (t < 0)
        return -errno;
    target[t] = '\0';
    const char *rel = target;
    if (target[0] == '/') {
        if (!(rel = inside_db(target, db, device_db)))
            return -EXDEV;
        done[0] = '\0';
    }
    char rest[PATH_MAX];
    n = snprintf(rest, sizeof rest, "%s/%s", rel, pending);
    if (n < 0 || (size_t)n >= sizeof rest || (size_t)n >= cap)
        return -ENAMETOOLONG;
    memcpy(pending, rest, (size_t)n + 1);
    return 0;
}

/* A regular file starting with the TZif magic. */
static int tzif_file(const char *path)
{
    char magic[4];
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
    if (fd < 0)
        return -errno;
    int r = fstat(fd, &st) != 0                                      ? -errno
            : !S_ISREG(st.st_mode)                                   ? -EISDIR
            : read(fd, magic, sizeof magic) != (ssize_t)sizeof magic ? -EINVAL
            : memcmp(magic, "TZif", 4) != 0                          ? -EINVAL
                                                                     : 0;
    close(fd);
    return r;
}

int cfgd_zoneinfo_lookup(const char *db, const char *device_db, const char *zone, char *out,
                         size_t cap)
{
    if (!cfgd_zone_name_valid(zone, strlen(zone), NULL) || cfgd_zone_name_reserved(zone))
        return -EINVAL;
    char done[PATH_MAX] = "", pending[PATH_MAX], comp[NAME_MAX + 1];
    snprintf(pending, sizeof pending, "%s", zone);
    int links = 0;
    for (;;) {
        const char *rest = pending;
        if (!next_component(&rest, comp, sizeof comp))
            break;
        memmove(pending, rest, strlen(rest) + 1);
        int r = step(db, device_db, done, pending, sizeof pending, comp, &links);
        if (r < 0)
            return r;
    }
    int n = snprintf(out, cap, "%s/%s", db, done);
    if (!*done || n < 0 || (size_t)n >= cap)
        return *done ? -ENAMETOOLONG : -EISDIR;
    return tzif_file(out);
}
