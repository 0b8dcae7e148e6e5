/* A small blocking client for iotdm-configd: connect, send one framed request, wait for its reply.
 */
#include "proto/configd_client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/timeutil.h"

struct cfgd_client {
    char *path;
    int fd; /* -1 while not connected */
    int64_t next_id;
};

cfgd_client *cfgd_client_new(const char *socket_path)
{
    cfgd_client *c = xcalloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->path = xstrdup(socket_path ? socket_path : CFGD_DEFAULT_SOCKET);
    if (!c->path) {
        xfree(c);
        return NULL;
    }
    c->fd = -1;
    c->next_id = 1;
    return c;
}

static void disconnect(cfgd_client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

void cfgd_client_free(cfgd_client *client)
{
    if (!client)
        return;
    disconnect(client);
    xfree(client->path);
    xfree(client);
}

/* The one message users of the original saw least clearly: say where, why and what to check. */
static iotdm_result unreachable(cfgd_client *c, int err, cfgd_error *out_err)
{
    const char *hint = "";
    if (err == ENOENT || err == ECONNREFUSED)
        hint = " — is iotdm-configd running?";
    else if (err == EACCES || err == EPERM)
        hint = " — is this user in the socket's group (iotdm)?";
    cfgd_error_set(out_err, CFGD_ERR_UNREACHABLE, "cannot reach iotdm-configd at %s: %s%s", c->path,
                   strerror(err), hint);
    return -err;
}

static int remaining_ms(int64_t deadline)
{
    int64_t left = deadline - time_mono_ms();
    return left <= 0 ? 0 : (int)(left > 60000 ? 60000 : left);
}

/* Waits for events on fd until the deadline; false on timeout or poll failure. */
static bool wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, remaining_ms(deadline));
        if (n > 0)
            return true;
        if (n == 0 && remaining_ms(deadline) == 0)
            return false;
        if (n < 0 && errno != EINTR)
            return false;
    }
}

static iotdm_result open_socket(cfgd_client *c, int64_t deadline, cfgd_error *out_err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(c->path) >= sizeof sa.sun_path)
        return unreachable(c, ENAMETOOLONG, out_err);
    memcpy(sa.sun_path, c->path, strlen(c->path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return unreachable(c, errno, out_err);
    /* A non-blocking AF_UNIX connect fails with EAGAIN while the listen backlog is full rather than
     * completing later, so it is retried until the deadline. */
    while (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int err = errno;
        if (err == EINTR)
            continue;
        if (err == EAGAIN && remaining_ms(deadline) > 0) {
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
            continue;
        }
        close(fd);
        if (err == EAGAIN) {
            cfgd_error_set(out_err, CFGD_ERR_TIMEOUT,
                           "iotdm-configd at %s accepts no connections (backlog full)", c->path);
            return IOTDM_E_TIMEOUT;
        }
        return unreachable(c, err, out_err);
    }
    c->fd = fd;
    return IOTDM_OK;
}

/* A kept connection that is readable while idle was closed by configd (restart, idle close). */
static bool connection_stale(const cfgd_client *c)
{
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    return poll(&p, 1, 0) != 0;
}

/* Sends the whole frame; the descriptors ride with its first byte. Returns 0 or an errno. */
static int send_frame(int fd, const uint8_t *frame, size_t len, const int *fds, size_t nfds,
                      int64_t deadline)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * CFGD_MAX_FDS)];
        struct cmsghdr align;
    } ctl;
    size_t off = 0;
    while (off < len) {
        struct iovec iov = {.iov_base = (void *)(frame + off), .iov_len = len - off};
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
        if (off == 0 && nfds > 0) {
            memset(&ctl, 0, sizeof ctl);
            msg.msg_control = ctl.buf;
            msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
            struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
            cm->cmsg_level = SOL_SOCKET;
            cm->cmsg_type = SCM_RIGHTS;
            cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
            memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
        }
        ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            if (!wait_fd(fd, POLLOUT, deadline))
                return ETIMEDOUT;
            continue;
        }
        return n < 0 ? errno : EPIPE;
    }
    return 0;
}

/* Reads exactly len bytes. Returns 0, ETIMEDOUT, or another errno (EPIPE for end of stream). */
static int read_exact(int fd, uint8_t *buf, size_t len, int64_t deadline)
{
    size_t off = 0;
    while (off < len) {
        ssize_t n = recv(fd, buf + off, len - off, 0);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n == 0)
            return EPIPE;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return errno;
        if (!wait_fd(fd, POLLIN, deadline))
            return ETIMEDOUT;
    }
    return 0;
}

static iotdm_result transport_error(cfgd_client *c, int err, cfgd_error *out_err)
{
    disconnect(c);
    if (err == ETIMEDOUT) {
        cfgd_error_set(out_err, CFGD_ERR_TIMEOUT, "no reply from iotdm-configd at %s in time",
                       c->path);
        return IOTDM_E_TIMEOUT;
    }
    cfgd_error_set(out_err, CFGD_ERR_PROTOCOL, "connection to iotdm-configd at %s broke: %s",
                   c->path, err == EPIPE ? "closed by configd" : strerror(err));
    return IOTDM_E_PROTOCOL;
}

/* Reads one reply frame and parses it. */
static iotdm_result read_reply(cfgd_client *c, int64_t id, int64_t deadline, json_t **out_result,
                               cfgd_error *out_err)
{
    uint8_t header[CFGD_FRAME_HEADER];
    int err = read_exact(c->fd, header, sizeof header, deadline);
    if (err)
        return transport_error(c, err, out_err);
    const uint8_t *body;
    size_t body_len, frame_len;
    iotdm_result r = cfgd_frame_peek(header, sizeof header, &body, &body_len, &frame_len);
    if (r != IOTDM_E_INCOMPLETE)
        return transport_error(c, EPROTO, out_err);
    body_len = (size_t)header[0] << 24 | (size_t)header[1] << 16 | (size_t)header[2] << 8 |
               (size_t)header[3];
    char *buf = xmalloc(body_len);
    if (!buf) {
        disconnect(c);
        cfgd_error_set(out_err, CFGD_ERR_FAILED, "out of memory reading a reply");
        return -ENOMEM;
    }
    err = read_exact(c->fd, (uint8_t *)buf, body_len, deadline);
    json_t *reply = err ? NULL : json_loadb(buf, body_len, JSON_REJECT_DUPLICATES, NULL);
    xfree(buf);
    if (err)
        return transport_error(c, err, out_err);
    json_t *result;
    r = cfgd_reply_parse(reply, id, &result, out_err);
    if (r == IOTDM_E_PROTOCOL)
        disconnect(c);
    if (r == IOTDM_OK && out_result)
        *out_result = json_incref(result);
    json_decref(reply);
    return r;
}

/* Connects when needed and sends; on a kept connection that turns out closed, reconnects once
 * (configd read nothing of this request, so sending it again is safe). */
static iotdm_result connect_and_send(cfgd_client *c, const uint8_t *frame, size_t len,
                                     const int *fds, size_t nfds, int64_t deadline,
                                     cfgd_error *out_err)
{
    if (c->fd >= 0 && connection_stale(c))
        disconnect(c);
    bool reused = c->fd >= 0;
    for (;;) {
        if (c->fd < 0) {
            iotdm_result r = open_socket(c, deadline, out_err);
            if (r < 0)
                return r;
        }
        int err = send_frame(c->fd, frame, len, fds, nfds, deadline);
        if (err == 0)
            return IOTDM_OK;
        /* A refusing configd answers and closes at once: its reply may already be waiting. */
        if ((err == EPIPE || err == ECONNRESET) && !reused)
            return IOTDM_E_INCOMPLETE;
        if ((err == EPIPE || err == ECONNRESET) && reused) {
            disconnect(c);
            reused = false;
            continue;
        }
        return transport_error(c, err, out_err);
    }
}

iotdm_result cfgd_client_call(cfgd_client *client, const char *op, const json_t *args,
                              const int *fds, size_t nfds, int timeout_ms, json_t **out_result,
                              cfgd_error *out_err)
{
    if (out_result)
        *out_result = NULL;
    if (!client || !op || nfds > CFGD_MAX_FDS || (nfds > 0 && !fds)) {
        cfgd_error_set(out_err, CFGD_ERR_INVALID_ARGUMENT, "bad call to cfgd_client_call");
        return -EINVAL;
    }
    int64_t deadline = time_mono_ms() + (timeout_ms > 0 ? timeout_ms : CFGD_DEFAULT_TIMEOUT_MS);
    int64_t id = client->next_id++;
    json_t *req = cfgd_request_new(id, op, args ? json_deep_copy(args) : NULL);
    uint8_t *frame = NULL;
    size_t len = 0;
    iotdm_result r = req ? cfgd_frame_encode(req, &frame, &len) : -EINVAL;
    json_decref(req);
    if (r < 0) {
        cfgd_error_set(out_err,
                       r == IOTDM_E_TOO_LARGE ? CFGD_ERR_TOO_LARGE : CFGD_ERR_INVALID_ARGUMENT,
                       "cannot encode the %s request: %s", op, iotdm_result_message(r));
        return r;
    }
    r = connect_and_send(client, frame, len, fds, nfds, deadline, out_err);
    xfree(frame);
    if (r < 0 && r != IOTDM_E_INCOMPLETE)
        return r;
    return read_reply(client, id, deadline, out_result, out_err);
}

iotdm_result cfgd_call(const char *socket_path, const char *op, const json_t *args, const int *fds,
                       size_t nfds, int timeout_ms, json_t **out_result, cfgd_error *out_err)
{
    cfgd_client *c = cfgd_client_new(socket_path);
    if (!c) {
        cfgd_error_set(out_err, CFGD_ERR_FAILED, "out of memory");
        return -ENOMEM;
    }
    iotdm_result r = cfgd_client_call(c, op, args, fds, nfds, timeout_ms, out_result, out_err);
    cfgd_client_free(c);
    return r;
}
