/* iotdm-configd's listening socket, its callers' credentials, and readiness for systemd. */
#include "configd/sock.h"

#include <errno.h>
#include <grp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif

static int fail(char *error, size_t cap, int err, const char *what, const char *path)
{
    snprintf(error, cap, "%s %s: %s", what, path, strerror(err));
    return -err;
}

/* A socket file left by a configd that died is removed; one that still answers is not ours. */
static int clear_stale(const char *path, const struct sockaddr_un *sa, char *error, size_t cap)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : fail(error, cap, errno, "cannot inspect", path);
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(error, cap, "%s exists and is not a socket; refusing to replace it", path);
        return -EEXIST;
    }
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe < 0)
        return fail(error, cap, errno, "cannot probe", path);
    int r = connect(probe, (const struct sockaddr *)sa, sizeof *sa);
    int err = errno;
    close(probe);
    if (r == 0) {
        snprintf(error, cap, "another iotdm-configd is already listening on %s", path);
        return -EADDRINUSE;
    }
    if (err != ECONNREFUSED && err != ENOENT)
        return fail(error, cap, err, "cannot probe", path);
    if (unlink(path) != 0 && errno != ENOENT)
        return fail(error, cap, errno, "cannot remove the stale socket", path);
    return 0;
}

static int set_group(const char *path, const char *group, char *error, size_t cap)
{
    char *end;
    unsigned long n = strtoul(group, &end, 10);
    gid_t gid = (gid_t)n;
    if (*end || !*group) {
        struct group *gr = getgrnam(group);
        if (!gr) {
            snprintf(error, cap, "socket group '%s' does not exist", group);
            return -ENOENT;
        }
        gid = gr->gr_gid;
    }
    if (chown(path, (uid_t)-1, gid) != 0)
        return fail(error, cap, errno, "cannot set the group of", path);
    return 0;
}

static int make_parent(const char *path, char *error, size_t cap)
{
    char dir[sizeof((struct sockaddr_un *)0)->sun_path];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return 0;
    *slash = '\0';
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return fail(error, cap, errno, "cannot create", dir);
    return 0;
}

int cfgd_socket_listen(const char *path, const char *group, char *error, size_t error_cap)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        snprintf(error, error_cap, "socket path %s is too long", path);
        return -ENAMETOOLONG;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int r = make_parent(path, error, error_cap);
    if (r == 0)
        r = clear_stale(path, &sa, error, error_cap);
    if (r < 0)
        return r;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return fail(error, error_cap, errno, "cannot create a socket for", path);
    /* The umask makes the file 0660 from its first moment: no window where others could connect. */
    mode_t old = umask(0117);
    r = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    int err = errno;
    umask(old);
    if (r != 0) {
        close(fd);
        return fail(error, error_cap, err, "cannot bind", path);
    }
    r = chmod(path, 0660) == 0 ? 0 : fail(error, error_cap, errno, "cannot chmod", path);
    if (r == 0 && group && group[0])
        r = set_group(path, group, error, error_cap);
    if (r == 0 && listen(fd, 16) != 0)
        r = fail(error, error_cap, errno, "cannot listen on", path);
    if (r < 0) {
        close(fd);
        unlink(path);
        return r;
    }
    return fd;
}

bool cfgd_peer_read(int fd, cfgd_peer *out)
{
    struct ucred cred;
    socklen_t len = sizeof cred;
    memset(out, 0, sizeof *out);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof cred)
        return false;
    out->pid = cred.pid;
    out->uid = cred.uid;
    out->gid = cred.gid;
    /* Supplementary groups matter: the agent's user is usually in the iotdm group, not of it. */
    len = sizeof out->groups;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, out->groups, &len) == 0)
        out->ngroups = len / sizeof(gid_t);
    return true;
}

bool cfgd_peer_allowed(const cfgd_config *cfg, const cfgd_peer *peer)
{
    /* Root can change the OS without configd anyway; letting it in costs nothing. */
    if (peer->uid == 0)
        return true;
    for (size_t i = 0; i < cfg->n_allow_uids; i++) {
        if (cfg->allow_uids[i] == peer->uid)
            return true;
    }
    for (size_t i = 0; i < cfg->n_allow_gids; i++) {
        if (cfg->allow_gids[i] == peer->gid)
            return true;
        for (size_t j = 0; j < peer->ngroups; j++) {
            if (cfg->allow_gids[i] == peer->groups[j])
                return true;
        }
    }
    return false;
}

void cfgd_notify_ready(void)
{
    const char *where = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (!where || (where[0] != '/' && where[0] != '@') || strlen(where) >= sizeof sa.sun_path)
        return;
    memcpy(sa.sun_path, where, strlen(where));
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = '\0'; /* an abstract socket name */
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(where));
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    static const char msg[] = "READY=1";
    (void)!sendto(fd, msg, sizeof msg - 1, MSG_NOSIGNAL, (struct sockaddr *)&sa, len);
    close(fd);
}
