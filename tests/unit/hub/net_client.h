/* Blocking TLS and TCP clients for the network tests, plus the hub's TLS material in a temporary
 * directory (hub_tls_ensure). Every read has a timeout so a broken server fails a test instead of
 * hanging it. */
#ifndef IOTDM_TEST_NET_CLIENT_H
#define IOTDM_TEST_NET_CLIENT_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hub/net/tls.h"

static inline long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A data directory with ca.pem, server.pem and their keys. */
static inline SSL_CTX *tls_material(char *dir, size_t cap)
{
    snprintf(dir, cap, "/tmp/iotdm-net-XXXXXX");
    if (!mkdtemp(dir))
        return NULL;
    if (hub_tls_ensure(dir, "localhost", "127.0.0.1") != 0)
        return NULL;
    return hub_tls_server_ctx(dir, false);
}

static inline void tls_material_remove(const char *dir)
{
    static const char *const files[] = {"ca.pem", "ca.key", "server.pem", "server.key"};
    char p[256];
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
}

/* A TCP connection to 127.0.0.1:port; rcvbuf > 0 makes the client's receive buffer small, so
 * that a client that does not read pushes back on the server quickly. */
static inline int tcp_connect(unsigned port, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

typedef struct {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    char buf[1 << 20];
    size_t len; /* bytes read and not returned yet */
} tls_client;

static inline tls_client *client_open(unsigned port, int rcvbuf)
{
    tls_client *c = calloc(1, sizeof *c);
    c->fd = tcp_connect(port, rcvbuf);
    c->ctx = SSL_CTX_new(TLS_client_method());
    c->ssl = SSL_new(c->ctx);
    if (c->fd < 0 || !c->ssl || SSL_set_fd(c->ssl, c->fd) != 1 || SSL_connect(c->ssl) != 1) {
        fprintf(stderr, "client: TLS connect failed\n");
        ERR_print_errors_fp(stderr);
        abort();
    }
    return c;
}

static inline void client_close(tls_client *c)
{
    if (!c)
        return;
    SSL_free(c->ssl);
    SSL_CTX_free(c->ctx);
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}

static inline bool client_send(tls_client *c, const void *data, size_t len)
{
    return len == 0 || SSL_write(c->ssl, data, (int)len) == (int)len;
}

static inline bool client_send_text(tls_client *c, const char *text)
{
    return client_send(c, text, strlen(text));
}

/* Reads more into c->buf; false on EOF, error or timeout. */
static inline bool client_fill(tls_client *c)
{
    if (c->len + 1 >= sizeof c->buf)
        return false;
    int n = SSL_read(c->ssl, c->buf + c->len, (int)(sizeof c->buf - 1 - c->len));
    if (n <= 0)
        return false;
    c->len += (size_t)n;
    c->buf[c->len] = '\0';
    return true;
}

/* One response (headers and a Content-Length body) as a malloc'ed string, or NULL when the
 * connection ended first. Bytes of later responses stay buffered. */
static inline char *client_response(tls_client *c)
{
    for (;;) {
        c->buf[c->len] = '\0';
        char *end = strstr(c->buf, "\r\n\r\n");
        if (end) {
            size_t head = (size_t)(end - c->buf) + 4;
            size_t body = 0;
            const char *cl = strstr(c->buf, "Content-Length: ");
            if (cl && cl < end)
                body = strtoul(cl + 16, NULL, 10);
            if (c->len >= head + body) {
                char *r = strndup(c->buf, head + body);
                memmove(c->buf, c->buf + head + body, c->len - head - body);
                c->len -= head + body;
                return r;
            }
        }
        if (!client_fill(c))
            return NULL;
    }
}

/* True when the server sent application data (or closed) within ms. A bare poll() would also
 * wake for TLS 1.3 session tickets, which the server sends after the handshake. */
static inline bool client_readable(tls_client *c, long ms)
{
    if (c->len || SSL_pending(c->ssl))
        return true;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char b;
    int n = SSL_peek(c->ssl, &b, 1);
    int err = n > 0 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, n);
    struct timeval back = {5, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &back, sizeof back);
    return n > 0 || err == SSL_ERROR_ZERO_RETURN ||
           (err == SSL_ERROR_SYSCALL && errno != EAGAIN && errno != EWOULDBLOCK) ||
           err == SSL_ERROR_SSL;
}

/* True when the server ends the connection within ms (whatever is read meanwhile is kept). */
static inline bool client_wait_closed(tls_client *c, long ms)
{
    long long until = now_ms() + ms;
    while (now_ms() < until) {
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        if (SSL_pending(c->ssl) == 0 && poll(&p, 1, 50) == 0)
            continue;
        if (!client_fill(c))
            return true;
    }
    return false;
}

/* The same for a plain TCP socket. */
static inline bool tcp_wait_closed(int fd, long ms)
{
    long long until = now_ms() + ms;
    char buf[4096];
    while (now_ms() < until) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            return true;
    }
    return false;
}

#endif
