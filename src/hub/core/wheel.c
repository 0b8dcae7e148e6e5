/* The timing wheel: a slot per tick, each a circular list of the nodes due in it (or in a later
 * turn). A tick walks the slots from the last turned-to time to now and fires what is due. */
#include "hub/core/wheel.h"

#include <errno.h>
#include <string.h>

#include "common/timeutil.h"

static unsigned slot_of(int64_t ms)
{
    return (unsigned)((uint64_t)(ms / HUB_WHEEL_TICK_MS) % HUB_WHEEL_SLOTS);
}

static void unlink_node(hub_wheel *w, hub_wheel_node *n)
{
    if (!n->next)
        return;
    if (w->cursor == n)
        w->cursor = n->next; /* the slot being expired goes on after n */
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->next = n->prev = NULL;
}

void hub_wheel_cancel(hub_wheel *w, hub_wheel_node *node)
{
    unlink_node(w, node);
}

void hub_wheel_arm(hub_wheel *w, hub_wheel_node *node, int64_t due_ms, hub_wheel_fn fn)
{
    unlink_node(w, node);
    node->due_ms = due_ms;
    node->fn = fn;
    /* A deadline already past goes in the next slot, never in one being walked. */
    int64_t at = due_ms > w->now_ms ? due_ms : w->now_ms + HUB_WHEEL_TICK_MS;
    hub_wheel_node *head = &w->slots[slot_of(at)];
    node->next = head;
    node->prev = head->prev;
    head->prev->next = node;
    head->prev = node;
}

static void expire_slot(hub_wheel *w, unsigned slot, int64_t now)
{
    hub_wheel_node *head = &w->slots[slot];
    w->cursor = head->next;
    while (w->cursor != head) {
        hub_wheel_node *n = w->cursor;
        w->cursor = n->next;
        if (n->due_ms > now)
            continue; /* a later turn */
        unlink_node(w, n);
        n->fn(n); /* may arm or cancel any node, n included */
    }
    w->cursor = NULL;
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    hub_wheel *w = arg;
    int64_t now = time_mono_ms();
    /* Every slot from the last tick to now, at most one turn (a long stall of the loop). */
    int64_t from = w->now_ms;
    int64_t steps = (now - from) / HUB_WHEEL_TICK_MS;
    if (steps > HUB_WHEEL_SLOTS)
        steps = HUB_WHEEL_SLOTS;
    w->now_ms = now;
    for (int64_t i = 0; i <= steps; i++)
        expire_slot(w, slot_of(from + i * HUB_WHEEL_TICK_MS), now);
}

iotdm_result hub_wheel_init(hub_wheel *w, struct event_base *base)
{
    memset(w, 0, sizeof *w);
    for (unsigned i = 0; i < HUB_WHEEL_SLOTS; i++)
        w->slots[i].next = w->slots[i].prev = &w->slots[i];
    w->now_ms = time_mono_ms();
    w->tick = event_new(base, -1, EV_PERSIST, tick_cb, w);
    struct timeval tv = {0, HUB_WHEEL_TICK_MS * 1000};
    if (!w->tick || event_add(w->tick, &tv) != 0)
        return -ENOMEM;
    return IOTDM_OK;
}

void hub_wheel_deinit(hub_wheel *w)
{
    for (unsigned i = 0; i < HUB_WHEEL_SLOTS; i++)
        while (w->slots[i].next != &w->slots[i])
            unlink_node(w, w->slots[i].next);
    if (w->tick)
        event_free(w->tick);
    w->tick = NULL;
}
