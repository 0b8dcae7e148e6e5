/* iotdm-loadgen sockets: the client TLS context, source addresses, non-blocking connects and
 * TLS bufferevents, shared by devices and attackers. */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <netinet/tcp.h>
#include <openssl/x509v3.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loadgen.h"

#define LG_FD_RESERVE 64 /* descriptors kept for the loop, the pool and stdio */

SSL_CTX *lg_client_tls(const char *ca)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* 20,000 idle connections: give the 2 x 16 KB record buffers back between reads. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

void lg_prepare_sockets(lg_app *app)
{
    lg_opts *o = &app->o;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        /* register and attack open no device connections */
        bool devices = o->scenario != LG_REGISTER && o->scenario != LG_ATTACK;
        if (devices && (rlim_t)o->devices + LG_FD_RESERVE > rl.rlim_cur)
            lg_fatal(app, "%d connections need %d descriptors; the hard limit is %lu", o->devices,
                     o->devices + LG_FD_RESERVE, (unsigned long)rl.rlim_cur);
    }
    memset(&app->server, 0, sizeof app->server);
    app->server.sin_family = AF_INET;
    app->server.sin_port = htons((uint16_t)o->port);
    if (inet_pton(AF_INET, o->host, &app->server.sin_addr) != 1)
        lg_fatal(app, "--host must be an IPv4 address: %s", o->host);
    bool loopback = (ntohl(app->server.sin_addr.s_addr) >> 24) == 127;
    app->nsrc = o->src_addrs ? o->src_addrs : (o->devices + LG_PER_SRC_ADDR - 1) / LG_PER_SRC_ADDR;
    if (!loopback || app->nsrc > LG_MAX_SRC_ADDRS)
        app->nsrc = loopback ? LG_MAX_SRC_ADDRS : 0;
    for (int i = 0; i < app->nsrc; i++) {
        app->src[i].sin_family = AF_INET;
        app->src[i].sin_addr.s_addr = htonl((127u << 24) | (uint32_t)(2 + i));
    }
}

/* Binding to a source address lets 20,000 connections spread over several addresses' ephemeral
 * ports (IP_BIND_ADDRESS_NO_PORT leaves the port choice to connect()). */
int lg_socket_connect(lg_app *app, const struct sockaddr_in *src, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (src) {
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(fd, (const struct sockaddr *)src, sizeof *src) < 0) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
    }
    struct sockaddr_in to = app->server;
    to.sin_port = htons((uint16_t)port);
    if (connect(fd, (const struct sockaddr *)&to, sizeof to) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int lg_socket_error(int fd)
{
    int err = 0;
    socklen_t elen = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
        return errno;
    return err;
}

struct bufferevent *lg_tls_bev(lg_app *app, int fd)
{
    SSL *ssl = SSL_new(app->ssl);
    if (!ssl) {
        close(fd);
        return NULL;
    }
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), app->o.host);
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        app->base, fd, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        SSL_free(ssl);
        close(fd);
    }
    return bev;
}
