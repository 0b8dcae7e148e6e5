/* Listening sockets: accept loop, admission, and a descriptor shortage that never spins.
 *
 * A plain persistent read event on the listening socket rather than evconnlistener: what happens
 * when accept() fails is the point of this file, and it wants the socket in hand. */
#include "hub/net/listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/log.h"
#include "hub/net/refusals.h"

/* Connections taken per readiness event, so one busy listener cannot starve the loop. */
#define ACCEPT_BATCH 64
/* How long the listener rests after the process ran out of descriptors. */
#define PAUSE_MS 100

struct hub_listener {
    struct event_base *base;
    struct event *ev_accept;
    struct event *ev_resume;
    evutil_socket_t fd;
    int reserve_fd; /* /dev/null, given up to accept-and-close a peer when out of descriptors */
    unsigned port;
    char what[16];
    hub_admission *admission;
    hub_accept_fn fn;
    void *arg;
};

static int open_reserve(void)
{
    return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void format_peer(const struct sockaddr *sa, char *out, size_t cap)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        port = ntohs(in->sin_port);
        snprintf(out, cap, "%s:%u", ip, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        port = ntohs(in6->sin6_port);
        snprintf(out, cap, "[%s]:%u", ip, port);
    } else {
        snprintf(out, cap, "unknown");
    }
}

/* Out of descriptors (or socket memory): take the first waiting peer with the reserve descriptor
 * and close it, so it learns at once instead of timing out in the backlog, then rest. */
static void shed_and_pause(hub_listener *l, int err)
{
    if (l->reserve_fd >= 0 && (err == EMFILE || err == ENFILE)) {
        close(l->reserve_fd);
        l->reserve_fd = -1;
        int fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0)
            close(fd);
        l->reserve_fd = open_reserve();
    }
    hub_refused(HUB_REFUSED_DESCRIPTORS, l->what, "accept failed, pausing %d ms error=%s", PAUSE_MS,
                strerror(err));
    event_del(l->ev_accept);
    struct timeval tv = {0, PAUSE_MS * 1000};
    evtimer_add(l->ev_resume, &tv);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    hub_listener *l = arg;
    if (l->reserve_fd < 0)
        l->reserve_fd = open_reserve();
    event_add(l->ev_accept, NULL);
}

static void admit(hub_listener *l, int fd, const struct sockaddr *sa)
{
    char peer[INET6_ADDRSTRLEN + 16];
    format_peer(sa, peer, sizeof peer);
    hub_admit_ticket ticket;
    hub_admit_result r = HUB_ADMIT_OK;
    if (l->admission)
        r = hub_admission_enter(l->admission, sa, &ticket);
    else
        memset(&ticket, 0, sizeof ticket);
    if (r == HUB_ADMIT_FULL) {
        hub_refused(HUB_REFUSED_CONN_LIMIT, l->what, "connection refused peer=%s", peer);
        close(fd);
        return;
    }
    if (r == HUB_ADMIT_SOURCE_FULL) {
        hub_refused(HUB_REFUSED_SOURCE_LIMIT, l->what,
                    "connection refused: too many unauthenticated peer=%s", peer);
        close(fd);
        return;
    }
    int one = 1;
    if (sa->sa_family == AF_INET || sa->sa_family == AF_INET6)
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    l->fn(l->arg, fd, sa, peer, ticket);
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
    (void)what;
    hub_listener *l = arg;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            admit(l, fd, (struct sockaddr *)&ss);
            continue;
        }
        switch (errno) {
        case EAGAIN:
#if EAGAIN != EWOULDBLOCK
        case EWOULDBLOCK:
#endif
            return;
        case EINTR:
        /* The peer gave up while waiting, or Linux reported a pending network error of the new
         * socket (accept(2)): nothing to do but take the next one. */
        case ECONNABORTED:
        case EPROTO:
        case ENETDOWN:
        case ENOPROTOOPT:
        case EHOSTDOWN:
        case ENONET:
        case EHOSTUNREACH:
        case EOPNOTSUPP:
        case ENETUNREACH:
        case EPERM: /* a firewall rule refused it */
            continue;
        case EMFILE:
        case ENFILE:
        case ENOBUFS:
        case ENOMEM:
            shed_and_pause(l, errno);
            return;
        default:
            /* Unexpected: rest as well rather than spin on a socket that keeps failing. */
            shed_and_pause(l, errno);
            return;
        }
    }
}

static iotdm_result bind_socket(const char *addr, unsigned port, int *out_fd, unsigned *out_port)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len;
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (port > 65535)
        return -EINVAL;
    if (inet_pton(AF_INET, addr, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        len = sizeof *in;
    } else if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        len = sizeof *in6;
    } else {
        return -EINVAL;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, SOMAXCONN) != 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
        *out_port = ntohs(ss.ss_family == AF_INET ? in->sin_port : in6->sin6_port);
    else
        *out_port = port;
    *out_fd = fd;
    return IOTDM_OK;
}

iotdm_result hub_listener_new(struct event_base *base, const char *addr, unsigned port,
                              const char *what, hub_admission *admission, hub_accept_fn fn,
                              void *arg, hub_listener **out)
{
    *out = NULL;
    hub_listener *l = xcalloc(1, sizeof *l);
    if (!l)
        return -ENOMEM;
    l->base = base;
    l->fd = -1;
    l->admission = admission;
    l->fn = fn;
    l->arg = arg;
    snprintf(l->what, sizeof l->what, "%s", what ? what : "listener");
    iotdm_result r = bind_socket(addr, port, &l->fd, &l->port);
    if (r < 0) {
        log_error(l->what, "cannot listen addr=%s port=%u error=%s", addr, port, strerror(-r));
        xfree(l);
        return r;
    }
    l->reserve_fd = open_reserve();
    l->ev_accept = event_new(base, l->fd, EV_READ | EV_PERSIST, on_accept, l);
    l->ev_resume = evtimer_new(base, on_resume, l);
    if (l->reserve_fd < 0 || !l->ev_accept || !l->ev_resume || event_add(l->ev_accept, NULL) != 0) {
        hub_listener_free(l);
        return -ENOMEM;
    }
    *out = l;
    return IOTDM_OK;
}

unsigned hub_listener_port(const hub_listener *l)
{
    return l->port;
}

void hub_listener_free(hub_listener *l)
{
    if (!l)
        return;
    if (l->ev_accept)
        event_free(l->ev_accept);
    if (l->ev_resume)
        event_free(l->ev_resume);
    if (l->fd >= 0)
        close(l->fd);
    if (l->reserve_fd >= 0)
        close(l->reserve_fd);
    xfree(l);
}
