/* iotdm-configd's server: the Unix socket, allow-listed peers, framed requests, one op at a time.
 */
#include "configd/server.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/listener.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "configd/optable.h"
#include "configd/sock.h"

#define READ_CHUNK 65536

typedef struct conn conn;

struct cfgd_server {
    struct event_base *base;
    const cfgd_config *cfg;
    cfgd_backend *be;
    struct evconnlistener *listener;
    conn *conns;
    size_t nconns;
};

/* A descriptor that arrived with the byte at stream offset `at`. */
typedef struct {
    int fd;
    uint64_t at;
} passed_fd;

struct conn {
    cfgd_server *srv;
    int fd;
    cfgd_peer peer;
    struct event *ev_read, *ev_write, *ev_timer;
    struct evbuffer *out;
    uint8_t *in;
    size_t in_len, in_cap;
    uint64_t in_base; /* stream offset of in[0] */
    passed_fd fds[CFGD_MAX_FDS];
    size_t nfds;
    bool closing; /* stop reading; close once the output is flushed */
    bool dead;    /* close now */
    conn *prev, *next;
};

static void close_fds(conn *c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        close(c->fds[i].fd);
    memmove(c->fds, c->fds + n, (c->nfds - n) * sizeof *c->fds);
    c->nfds -= n;
}

static void conn_free(conn *c)
{
    cfgd_server *srv = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->nconns--;
    close_fds(c, c->nfds);
    event_free(c->ev_read);
    event_free(c->ev_write);
    event_free(c->ev_timer);
    evbuffer_free(c->out);
    xfree(c->in);
    close(c->fd);
    log_debug("configd", "disconnected pid=%ld uid=%u", (long)c->peer.pid, (unsigned)c->peer.uid);
    xfree(c);
}

/* Writes what it can; arms the write event for the rest. */
static void flush(conn *c)
{
    while (!c->dead && evbuffer_get_length(c->out) > 0) {
        int n = evbuffer_write(c->out, c->fd);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            event_add(c->ev_write, NULL);
            return;
        }
        if (n <= 0)
            c->dead = true;
    }
    event_del(c->ev_write);
}

static void send_json(conn *c, json_t *msg)
{
    uint8_t *frame;
    size_t len;
    if (!msg || cfgd_frame_encode(msg, &frame, &len) < 0) {
        c->dead = true; /* cannot even say why; the client sees the connection break */
        return;
    }
    if (evbuffer_add(c->out, frame, len) != 0)
        c->dead = true;
    xfree(frame);
    flush(c);
}

/* A connection-level error: one reply with id 0, then the connection closes. */
static void reject(conn *c, cfgd_errcode code, const char *message)
{
    log_warn("configd", "closing connection pid=%ld uid=%u: %s: %s", (long)c->peer.pid,
             (unsigned)c->peer.uid, cfgd_errcode_name(code), message);
    json_t *reply = cfgd_reply_error(0, code, message);
    send_json(c, reply);
    json_decref(reply);
    c->closing = true;
}

/* One line per operation: who, what, how it ended. Never the arguments: they may carry secrets. */
static void log_outcome(const conn *c, const cfgd_outcome *oc, int64_t ms)
{
    /* The message goes in quotes, so its own quotes and line breaks must not end the value. */
    char message[sizeof oc->error.message];
    size_t i = 0;
    for (; oc->error.message[i] && i + 1 < sizeof message; i++) {
        char ch = oc->error.message[i];
        message[i] = ch == '"' ? '\'' : (unsigned char)ch < 0x20 ? ' ' : ch;
    }
    message[i] = '\0';
    if (oc->ok)
        log_info("configd", "op=%s id=%lld pid=%ld uid=%u result=ok ms=%lld", oc->op,
                 (long long)oc->id, (long)c->peer.pid, (unsigned)c->peer.uid, (long long)ms);
    else
        log_info("configd", "op=%s id=%lld pid=%ld uid=%u result=%s ms=%lld message=\"%s\"", oc->op,
                 (long long)oc->id, (long)c->peer.pid, (unsigned)c->peer.uid,
                 cfgd_errcode_name(oc->error.code), (long long)ms, message);
}

static void handle_frame(conn *c, const uint8_t *body, size_t len, size_t frame_len)
{
    /* Descriptors belong to the frame whose first byte they came with. */
    size_t n = 0;
    int fds[CFGD_MAX_FDS];
    while (n < c->nfds && c->fds[n].at < c->in_base + frame_len) {
        fds[n] = c->fds[n].fd;
        n++;
    }
    cfgd_ctx ctx = {.be = c->srv->be, .cfg = c->srv->cfg, .fds = fds, .nfds = n};
    cfgd_outcome oc;
    int64_t t0 = time_mono_ms();
    json_t *reply = cfgd_dispatch(&ctx, body, len, &oc);
    close_fds(c, n);
    if (!reply) {
        reject(c, CFGD_ERR_MALFORMED, oc.error.message);
        return;
    }
    log_outcome(c, &oc, time_mono_ms() - t0);
    send_json(c, reply);
    json_decref(reply);
}

static void consume(conn *c, size_t n)
{
    memmove(c->in, c->in + n, c->in_len - n);
    c->in_len -= n;
    c->in_base += n;
}

/* Serves complete frames in order; the next waits until the previous reply is flushed, so a
 * client that never reads cannot make configd buffer without bound. */
static void process_input(conn *c)
{
    while (!c->closing && !c->dead && evbuffer_get_length(c->out) == 0) {
        const uint8_t *body;
        size_t body_len, frame_len;
        iotdm_result r = cfgd_frame_peek(c->in, c->in_len, &body, &body_len, &frame_len);
        if (r == IOTDM_E_INCOMPLETE)
            break;
        if (r == IOTDM_E_TOO_LARGE) {
            reject(c, CFGD_ERR_TOO_LARGE, "frame larger than 1 MiB");
            break;
        }
        if (r < 0) {
            reject(c, CFGD_ERR_MALFORMED, "empty frame");
            break;
        }
        handle_frame(c, body, body_len, frame_len);
        consume(c, frame_len);
    }
    if (c->closing || c->dead || evbuffer_get_length(c->out) > 0)
        event_del(c->ev_read);
    else
        event_add(c->ev_read, NULL);
    /* Only a frame in progress is timed: an idle agent may keep its connection. */
    if (c->in_len > 0 && !c->closing) {
        if (!event_pending(c->ev_timer, EV_TIMEOUT, NULL)) {
            struct timeval tv = {CFGD_FRAME_TIMEOUT_SEC, 0};
            event_add(c->ev_timer, &tv);
        }
    } else {
        event_del(c->ev_timer);
    }
}

static bool ensure_room(conn *c)
{
    size_t need = CFGD_FRAME_HEADER;
    if (c->in_len >= CFGD_FRAME_HEADER)
        need += (size_t)c->in[0] << 24 | (size_t)c->in[1] << 16 | (size_t)c->in[2] << 8 | c->in[3];
    if (need < READ_CHUNK)
        need = READ_CHUNK;
    if (need > CFGD_FRAME_HEADER + CFGD_FRAME_MAX)
        need = CFGD_FRAME_HEADER + CFGD_FRAME_MAX;
    if (c->in_cap >= need)
        return true;
    uint8_t *p = xrealloc(c->in, need);
    if (!p)
        return false;
    c->in = p;
    c->in_cap = need;
    return true;
}

/* Keeps the descriptors of one recvmsg; false when there were more than a request may carry. */
static bool take_fds(conn *c, struct msghdr *msg, uint64_t at)
{
    bool ok = !(msg->msg_flags & MSG_CTRUNC);
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
            if (c->nfds < CFGD_MAX_FDS)
                c->fds[c->nfds++] = (passed_fd){.fd = fd, .at = at};
            else {
                close(fd);
                ok = false;
            }
        }
    }
    return ok;
}

static void read_some(conn *c)
{
    if (!ensure_room(c)) {
        c->dead = true;
        return;
    }
    union {
        char buf[CMSG_SPACE(sizeof(int) * CFGD_MAX_FDS)];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = {.iov_base = c->in + c->in_len, .iov_len = c->in_cap - c->in_len};
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
    ssize_t n = recvmsg(c->fd, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            c->dead = true;
        return;
    }
    if (!take_fds(c, &msg, c->in_base + c->in_len)) {
        reject(c, CFGD_ERR_TOO_LARGE, "too many file descriptors");
        return;
    }
    if (n == 0) {
        /* The client is done sending: answer what is complete, then close. */
        process_input(c);
        c->closing = true;
        return;
    }
    c->in_len += (size_t)n;
    process_input(c);
}

static void finish_callback(conn *c)
{
    if (c->dead || (c->closing && evbuffer_get_length(c->out) == 0))
        conn_free(c);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn *c = arg;
    read_some(c);
    if (c->closing)
        event_del(c->ev_read);
    finish_callback(c);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn *c = arg;
    flush(c);
    if (!c->dead && !c->closing && evbuffer_get_length(c->out) == 0)
        process_input(c);
    finish_callback(c);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn *c = arg;
    log_warn("configd", "closing connection pid=%ld uid=%u: frame not completed in %d s",
             (long)c->peer.pid, (unsigned)c->peer.uid, CFGD_FRAME_TIMEOUT_SEC);
    c->dead = true;
    finish_callback(c);
}

static conn *conn_new(cfgd_server *srv, int fd, const cfgd_peer *peer)
{
    conn *c = xcalloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->srv = srv;
    c->fd = fd;
    c->peer = *peer;
    c->ev_read = event_new(srv->base, fd, EV_READ | EV_PERSIST, on_read, c);
    c->ev_write = event_new(srv->base, fd, EV_WRITE | EV_PERSIST, on_write, c);
    c->ev_timer = evtimer_new(srv->base, on_timeout, c);
    c->out = evbuffer_new();
    if (!c->ev_read || !c->ev_write || !c->ev_timer || !c->out) {
        event_free(c->ev_read);
        event_free(c->ev_write);
        event_free(c->ev_timer);
        evbuffer_free(c->out);
        xfree(c);
        return NULL;
    }
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->nconns++;
    return c;
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                      void *arg)
{
    (void)l;
    (void)sa;
    (void)len;
    cfgd_server *srv = arg;
    cfgd_peer peer;
    if (!cfgd_peer_read(fd, &peer)) {
        log_warn("configd", "refused a peer whose credentials cannot be read");
        close(fd);
        return;
    }
    if (srv->nconns >= CFGD_MAX_CONNS) {
        log_warn("configd", "refused peer pid=%ld uid=%u: already %d connections", (long)peer.pid,
                 (unsigned)peer.uid, CFGD_MAX_CONNS);
        close(fd);
        return;
    }
    conn *c = conn_new(srv, fd, &peer);
    if (!c) {
        close(fd);
        return;
    }
    if (!cfgd_peer_allowed(srv->cfg, &peer)) {
        char msg[160];
        snprintf(msg, sizeof msg, "uid %u (gid %u) is not allowed to use iotdm-configd",
                 (unsigned)peer.uid, (unsigned)peer.gid);
        reject(c, CFGD_ERR_PERMISSION_DENIED, msg);
        finish_callback(c);
        return;
    }
    log_debug("configd", "connected pid=%ld uid=%u", (long)peer.pid, (unsigned)peer.uid);
    event_add(c->ev_read, NULL);
}

cfgd_server *cfgd_server_new(struct event_base *base, const cfgd_config *cfg, cfgd_backend *be,
                             char *error, size_t error_cap)
{
    int fd = cfgd_socket_listen(cfg->socket_path, cfg->socket_group, error, error_cap);
    if (fd < 0)
        return NULL;
    cfgd_server *srv = xcalloc(1, sizeof *srv);
    if (srv) {
        srv->base = base;
        srv->cfg = cfg;
        srv->be = be;
        srv->listener = evconnlistener_new(base, on_accept, srv,
                                           LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
    }
    if (!srv || !srv->listener) {
        snprintf(error, error_cap, "cannot serve on %s", cfg->socket_path);
        xfree(srv);
        close(fd);
        unlink(cfg->socket_path);
        return NULL;
    }
    return srv;
}

void cfgd_server_free(cfgd_server *srv)
{
    if (!srv)
        return;
    while (srv->conns)
        conn_free(srv->conns);
    evconnlistener_free(srv->listener);
    unlink(srv->cfg->socket_path);
    xfree(srv);
}
