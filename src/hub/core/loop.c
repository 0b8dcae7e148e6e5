/* Event-loop threads and their inboxes. */
#include "hub/core/loop.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/log.h"
#include "hub/core/work.h"

static _Thread_local hub_loop *current_loop;

hub_loop *hub_loop_current(void)
{
    return current_loop;
}

static hub_loop_task *take_inbox(hub_loop *loop)
{
    pthread_mutex_lock(&loop->inbox_mu);
    hub_loop_task *t = loop->inbox_head;
    loop->inbox_head = loop->inbox_tail = NULL;
    loop->inbox_signalled = false;
    pthread_mutex_unlock(&loop->inbox_mu);
    return t;
}

static void run_tasks(hub_loop *loop, hub_loop_task *t)
{
    while (t) {
        hub_loop_task *next = t->next;
        bool allocated = t->allocated;
        t->fn(loop, t->arg); /* may free t when it is embedded in arg */
        if (allocated)
            xfree(t);
        t = next;
    }
}

static void inbox_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    hub_loop *loop = arg;
    uint64_t n;
    /* Cleared before the tasks are taken: a post made while they run writes the eventfd again. */
    if (read(fd, &n, sizeof n) < 0 && errno != EAGAIN)
        log_error("loop", "cannot read the inbox eventfd loop=%u: %s", loop->index,
                  strerror(errno));
    run_tasks(loop, take_inbox(loop));
    if (atomic_load(&loop->stop_requested))
        event_base_loopbreak(loop->base);
}

bool hub_loop_post(hub_loop *loop, hub_task_fn fn, void *arg)
{
    hub_loop_task *t = xmalloc(sizeof *t);
    if (!t)
        return false;
    t->fn = fn;
    t->arg = arg;
    t->allocated = true;
    hub_loop_post_task(loop, t);
    return true;
}

void hub_loop_post_task(hub_loop *loop, hub_loop_task *t)
{
    t->next = NULL;
    pthread_mutex_lock(&loop->inbox_mu);
    if (loop->inbox_tail)
        loop->inbox_tail->next = t;
    else
        loop->inbox_head = t;
    loop->inbox_tail = t;
    bool wake = !loop->inbox_signalled;
    loop->inbox_signalled = true;
    pthread_mutex_unlock(&loop->inbox_mu);
    if (wake) {
        uint64_t one = 1;
        /* An eventfd write fails only when the counter would overflow: it is then readable. */
        (void)!write(loop->inbox_fd, &one, sizeof one);
    }
}

iotdm_result hub_loop_init(hub_loop *loop, hub *h, unsigned index)
{
    memset(loop, 0, sizeof *loop);
    loop->h = h;
    loop->index = index;
    loop->inbox_fd = -1;
    pthread_mutex_init(&loop->inbox_mu, NULL);
    loop->base = event_base_new();
    if (!loop->base)
        return -ENOMEM;
    /* Two priorities: I/O first, then the end-of-pass flush of the units gathered (work.c). */
    event_base_priority_init(loop->base, 2);
    loop->inbox_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (loop->inbox_fd < 0)
        return -errno;
    loop->inbox_ev = event_new(loop->base, loop->inbox_fd, EV_READ | EV_PERSIST, inbox_cb, loop);
    if (!loop->inbox_ev || event_priority_set(loop->inbox_ev, 0) != 0 ||
        event_add(loop->inbox_ev, NULL) != 0)
        return -ENOMEM;
    return hub_work_loop_init(loop);
}

static void *loop_thread(void *arg)
{
    hub_loop *loop = arg;
    current_loop = loop;
    char name[16];
    snprintf(name, sizeof name, "iotdm-loop%u", loop->index);
    pthread_setname_np(pthread_self(), name);
    if (event_base_dispatch(loop->base) < 0)
        log_error("loop", "event loop failed loop=%u", loop->index);
    current_loop = NULL;
    return NULL;
}

iotdm_result hub_loop_run_here(hub_loop *loop)
{
    current_loop = loop;
    int rc = event_base_dispatch(loop->base);
    current_loop = NULL;
    return rc < 0 ? IOTDM_E_INTERNAL : IOTDM_OK;
}

iotdm_result hub_loop_start(hub_loop *loop)
{
    int rc = pthread_create(&loop->thread, NULL, loop_thread, loop);
    if (rc != 0)
        return -rc;
    loop->started = true;
    return IOTDM_OK;
}

void hub_loop_stop(hub_loop *loop)
{
    /* No allocation: stopping must work when memory is short. */
    atomic_store(&loop->stop_requested, true);
    uint64_t one = 1;
    (void)!write(loop->inbox_fd, &one, sizeof one);
}

void hub_loop_join(hub_loop *loop)
{
    if (loop->started)
        pthread_join(loop->thread, NULL);
    loop->started = false;
}

size_t hub_loop_drain(hub_loop *loop)
{
    loop->stopping = true;
    size_t ran = 0;
    hub_loop_task *t;
    while ((t = take_inbox(loop)) != NULL) {
        for (hub_loop_task *c = t; c; c = c->next)
            ran++;
        run_tasks(loop, t);
    }
    return ran;
}

void hub_loop_deinit(hub_loop *loop)
{
    hub_work_loop_deinit(loop);
    if (loop->inbox_ev)
        event_free(loop->inbox_ev);
    if (loop->inbox_fd >= 0)
        close(loop->inbox_fd);
    if (loop->base)
        event_base_free(loop->base);
    pthread_mutex_destroy(&loop->inbox_mu);
    loop->base = NULL;
    loop->inbox_ev = NULL;
    loop->inbox_fd = -1;
}
