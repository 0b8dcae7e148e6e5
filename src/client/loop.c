/* The client's event loop: one epoll descriptor covering the MQTT socket, a wake-up eventfd and a
 * timerfd, driven by the client's own thread or by the host's loop. */
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "client/internal.h"

iotdm_result loop_init(iotdm_client *c)
{
    c->epfd = epoll_create1(EPOLL_CLOEXEC);
    c->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    c->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (c->epfd < 0 || c->evfd < 0 || c->tfd < 0)
        return -errno;
    struct epoll_event ev = {.events = EPOLLIN};
    ev.data.fd = c->evfd;
    if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, c->evfd, &ev) < 0)
        return -errno;
    ev.data.fd = c->tfd;
    if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, c->tfd, &ev) < 0)
        return -errno;
    loop_wake(c); /* the first process() starts connecting */
    return IOTDM_OK;
}

void loop_deinit(iotdm_client *c)
{
    if (c->epfd >= 0)
        close(c->epfd);
    if (c->evfd >= 0)
        close(c->evfd);
    if (c->tfd >= 0)
        close(c->tfd);
    c->epfd = c->evfd = c->tfd = -1;
}

void loop_wake(iotdm_client *c)
{
    uint64_t one = 1;
    if (c->evfd >= 0 && write(c->evfd, &one, sizeof one) < 0) {
        /* EAGAIN: the counter is saturated, so a wake-up is pending anyway. */
    }
}

void loop_unwatch(iotdm_client *c)
{
    /* The socket may already be closed (libmosquitto closes it on errors), which removed it from
     * the set; forgetting it matters because the next socket may get the same number. */
    if (c->watched_sock >= 0)
        epoll_ctl(c->epfd, EPOLL_CTL_DEL, c->watched_sock, NULL);
    c->watched_sock = -1;
    c->watched_events = 0;
}

static void watch_socket(iotdm_client *c)
{
    int sock = conn_socket(c);
    uint32_t events = EPOLLIN | (conn_want_write(c) ? EPOLLOUT : 0);
    if (sock != c->watched_sock)
        loop_unwatch(c);
    if (sock < 0 || (sock == c->watched_sock && events == c->watched_events))
        return;
    struct epoll_event ev = {.events = events};
    ev.data.fd = sock;
    int op = sock == c->watched_sock ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(c->epfd, op, sock, &ev) < 0 && errno == EEXIST)
        epoll_ctl(c->epfd, EPOLL_CTL_MOD, sock, &ev);
    c->watched_sock = sock;
    c->watched_events = events;
}

static int64_t next_deadline(iotdm_client *c)
{
    int64_t d = conn_next_deadline(c);
    int64_t t = twin_next_deadline(c);
    if (t < d)
        d = t;
    /* libmosquitto's keep-alive bookkeeping (PINGREQ, missing PINGRESP) runs in loop_misc. */
    if (conn_socket(c) >= 0) {
        int64_t misc = client_mono_ms() + CLIENT_MISC_TICK_MS;
        if (misc < d)
            d = misc;
    }
    return d;
}

static void arm_timer(iotdm_client *c, int64_t deadline)
{
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    if (deadline != INT64_MAX) {
        if (deadline <= 0)
            deadline = 1; /* an all-zero it_value would disarm the timer */
        its.it_value.tv_sec = (time_t)(deadline / 1000);
        its.it_value.tv_nsec = (long)(deadline % 1000) * 1000000L;
    }
    timerfd_settime(c->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

IOTDM_API int iotdm_client_fd(iotdm_client *c)
{
    return c ? c->epfd : -1;
}

IOTDM_API int iotdm_client_next_timeout_ms(iotdm_client *c)
{
    if (!c)
        return -1;
    client_lock(c);
    int64_t d = next_deadline(c);
    client_unlock(c);
    if (d == INT64_MAX)
        return -1;
    int64_t wait = d - client_mono_ms();
    if (wait < 0)
        return 0;
    return wait > INT_MAX ? INT_MAX : (int)wait;
}

static void drain(int fd)
{
    uint64_t v;
    while (read(fd, &v, sizeof v) > 0)
        ;
}

IOTDM_API iotdm_result iotdm_client_process(iotdm_client *c)
{
    if (!c)
        return -EINVAL;
    /* Callbacks run from here, one at a time; a callback calling process() again gets -EDEADLK
     * (the socket is in the middle of being read). */
    iotdm_result r = client_dispatch_begin(c);
    if (r < 0)
        return r;
    client_lock(c);
    drain(c->evfd);
    drain(c->tfd);
    struct epoll_event evs[4];
    int n = epoll_wait(c->epfd, evs, 4, 0);
    bool readable = false, writable = false, failed = false;
    for (int i = 0; i < n; i++) {
        if (evs[i].data.fd != c->watched_sock)
            continue;
        readable |= (evs[i].events & EPOLLIN) != 0;
        writable |= (evs[i].events & EPOLLOUT) != 0;
        failed |= (evs[i].events & (EPOLLERR | EPOLLHUP)) != 0;
    }
    conn_io(c, readable, writable, failed);
    int64_t now = client_mono_ms();
    conn_tick(c, now);
    twin_tick(c, now);
    /* Subscriptions asked for from other threads (a C2D handler) are sent from this one: only the
     * thread in process() touches the connection. */
    conn_update_subscriptions(c);
    telemetry_pump(c);
    /* Publishing above may have queued packets; let libmosquitto write what it can now. */
    if (conn_want_write(c))
        conn_io(c, false, true, false);
    watch_socket(c);
    arm_timer(c, next_deadline(c));
    client_unlock(c);
    client_dispatch_end(c);
    return IOTDM_OK;
}

static void *thread_main(void *arg)
{
    iotdm_client *c = arg;
    while (!atomic_load(&c->stop)) {
        struct pollfd p = {.fd = c->epfd, .events = POLLIN};
        poll(&p, 1, iotdm_client_next_timeout_ms(c));
        /* process() logs what went wrong inside; it fails only for a NULL client or a call from
         * inside a callback, and this thread is neither. */
        if (!atomic_load(&c->stop))
            IOTDM_IGNORE(iotdm_client_process(c));
    }
    return NULL;
}

IOTDM_API iotdm_result iotdm_client_start(iotdm_client *c)
{
    if (!c)
        return -EINVAL;
    client_lock(c);
    iotdm_result r = IOTDM_OK;
    if (c->thread_running) {
        r = IOTDM_E_EXISTS;
    } else {
        atomic_store(&c->stop, false);
        int e = pthread_create(&c->thread, NULL, thread_main, c);
        if (e)
            r = -e;
        else
            c->thread_running = true;
    }
    client_unlock(c);
    return r;
}

IOTDM_API void iotdm_client_stop(iotdm_client *c)
{
    if (!c)
        return;
    client_lock(c);
    bool running = c->thread_running;
    pthread_t t = c->thread;
    atomic_store(&c->stop, true);
    /* From the client's own thread (a callback) we can only ask; a later stop or free joins. */
    bool self = running && pthread_equal(t, pthread_self());
    if (running && !self)
        c->thread_running = false;
    client_unlock(c);
    if (!running || self)
        return;
    loop_wake(c);
    pthread_join(t, NULL);
}
