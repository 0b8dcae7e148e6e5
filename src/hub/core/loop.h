/* The hub's event loops: one thread and one libevent base per loop, each owning the connections it
 * accepted. Other threads reach a loop only by posting tasks to it (docs/hub.md "Threads"). */
#ifndef IOTDM_HUB_CORE_LOOP_H
#define IOTDM_HUB_CORE_LOOP_H

#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hub/core/wheel.h"
#include "iotdm/result.h"

typedef struct hub hub;
typedef struct hub_loop hub_loop;

/* A task runs on its loop's thread, in the order tasks were posted from any one thread. */
typedef void (*hub_task_fn)(hub_loop *loop, void *arg);

/* A queued task. hub_loop_post allocates one; hub_loop_post_task takes one embedded in the
 * caller's object (no allocation: completions must not fail for lack of memory). */
typedef struct hub_loop_task {
    struct hub_loop_task *next;
    hub_task_fn fn;
    void *arg;
    bool allocated; /* freed by the loop after it ran */
} hub_loop_task;

/* What every loop owns. The members the loop's modules add (connections, HTTP server, method
 * calls, event streams) hang off it; only the loop's own thread touches them. */
struct hub_loop {
    hub *h;
    unsigned index; /* 0 .. nloops-1; loop 0 also runs the hub's timers */
    struct event_base *base;
    pthread_t thread;
    bool started;
    bool stopping; /* set for tasks run by hub_loop_deinit: free, do not act */
    atomic_bool stop_requested;
    /* Inbox: tasks posted by other threads (or by this one, to run after the current pass). */
    pthread_mutex_t inbox_mu;
    hub_loop_task *inbox_head, *inbox_tail;
    bool inbox_signalled; /* the eventfd has been written since the loop last drained it */
    int inbox_fd;         /* eventfd */
    struct event *inbox_ev;
    /* Units of work gathered in the current pass, handed to storage at its end (core/work.c). */
    struct hub_batch *open_batch;
    struct event *flush_ev;
    uint64_t inflight; /* units submitted and not yet completed */
    /* Per-loop state of the hub's modules (opaque here). */
    struct hub_mqtt_conn *mqtt_all; /* every MQTT connection of the loop, in any state */
    _Atomic size_t mqtt_owners;     /* of which hold their identity; read by other loops (stats) */
    hub_wheel wheel;                /* the MQTT connections' deadlines */
    struct hub_listener *mqtt_listener;
    struct hub_listener *https_listener;
    struct hub_http *http;
    struct hub_methods *methods;
    struct hub_loop_events *events; /* event-stream wake-ups (events.c) */
};

/* Creates the loop's base and inbox (not its thread). */
IOTDM_NODISCARD iotdm_result hub_loop_init(hub_loop *loop, hub *h, unsigned index);
/* Runs the loop on a new thread until hub_loop_stop. */
IOTDM_NODISCARD iotdm_result hub_loop_start(hub_loop *loop);
/* Runs the loop on the calling thread until hub_loop_stop (the hub runs loop 0 this way). */
IOTDM_NODISCARD iotdm_result hub_loop_run_here(hub_loop *loop);
/* Breaks the loop from any thread; hub_loop_join waits for its thread. */
void hub_loop_stop(hub_loop *loop);
void hub_loop_join(hub_loop *loop);
/* Runs the tasks waiting in the inbox on the calling thread (after the loop's thread ended), with
 * loop->stopping set so that they free what they own and do nothing else. Returns how many ran. */
size_t hub_loop_drain(hub_loop *loop);
/* After the thread has ended and the inbox was drained: frees the loop's base and inbox. */
void hub_loop_deinit(hub_loop *loop);

/* Queues fn(loop, arg) to run on the loop's thread. From any thread, including the loop's own (the
 * task then runs after the current callback, in a later pass). false only when out of memory. */
bool hub_loop_post(hub_loop *loop, hub_task_fn fn, void *arg);
/* The same with a task the caller provides (fn and arg set by the caller); never fails. */
void hub_loop_post_task(hub_loop *loop, hub_loop_task *task);

/* The loop whose thread is calling, or NULL on other threads. */
hub_loop *hub_loop_current(void);

#endif
