/* iotdm-configd's listening socket, its callers' credentials, and readiness for systemd. */
#ifndef IOTDM_CONFIGD_SOCK_H
#define IOTDM_CONFIGD_SOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "configd/config.h"

#define CFGD_PEER_MAX_GROUPS 64

/* Who is on the other end, as the kernel saw it when the peer connected. */
typedef struct {
    pid_t pid;
    uid_t uid;
    gid_t gid;
    gid_t groups[CFGD_PEER_MAX_GROUPS]; /* supplementary groups (SO_PEERGROUPS) */
    size_t ngroups;
} cfgd_peer;

/* Creates the listening socket at path with mode 0660 (group: group, a name or number, when not
 * empty). A stale socket file is replaced; a live one (another configd) or a non-socket is an
 * error. Returns the descriptor (non-blocking, close-on-exec) or -errno with a message. */
int cfgd_socket_listen(const char *path, const char *group, char *error, size_t error_cap);
/* Reads the peer's credentials; false when the kernel cannot say. */
bool cfgd_peer_read(int fd, cfgd_peer *out);
/* uid 0, an allowed uid, or an allowed gid among the peer's primary and supplementary groups. */
bool cfgd_peer_allowed(const cfgd_config *cfg, const cfgd_peer *peer);
/* Tells systemd (Type=notify) that the socket is up; nothing when not started by systemd. */
void cfgd_notify_ready(void);

#endif
