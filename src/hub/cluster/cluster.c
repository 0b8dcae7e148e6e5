/* The cluster bus: one thread and one PostgreSQL connection per node (cluster.h says what travels
 * on it and why). */
#include "hub/cluster/cluster.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/atomic_file.h"
#include "common/log.h"
#include "hub/events.h"
#include "hub/hub.h"
#include "hub/methods.h"

#define BUS_CHANNEL "iotdm_bus"
/* Messages waiting for the bus thread: beyond this (the database is away and the loops keep
 * producing) new ones are dropped, each drop logged at most once a second. */
#define QUEUE_MAX       100000
#define QUEUE_MAX_BYTES (64u << 20) /* method payloads reach 128 KB, desired patches 32 KB */
#define RECONNECT_MS    1000
/* The identity every node shares: what devices trust (the CA) and what they provision with. */
static const char *const identity_files[] = {"ca.pem", "ca.key", "idscope"};
#define IDENTITY_MAX (64 * 1024)

typedef enum {
    MSG_DESIRED = 1, /* device: ref = version, body = patch */
    MSG_C2D = 2,     /* device */
    MSG_DROP = 3,    /* device: body = reason */
    MSG_METHOD_REQ =
        4, /* device: ref = call id, status = response timeout s, body = name\0payload */
    MSG_METHOD_RESP = 5, /* node: ref = call id, status = device status or result, body = payload */
    MSG_BROADCAST = 6,   /* body = the NOTIFY payload on iotdm_bus */
    MSG_EVENTS = 7,      /* ref = seq committed here */
} msg_kind;

typedef struct bus_msg {
    struct bus_msg *next;
    msg_kind kind;
    char device_id[2 * HUB_ID_MAX]; /* a client id: device or device/module */
    char node[HUB_CLUSTER_NODE_ID_MAX];
    int64_t ref;
    int status;
    size_t len;
    char body[];
} bus_msg;

struct hub_cluster {
    hub *h;
    char node_id[HUB_CLUSTER_NODE_ID_MAX];
    char conninfo[1024];
    PGconn *conn;
    int64_t started_ms;
    pthread_t thread;
    bool running;
    atomic_bool stop;
    pthread_mutex_t mu;
    bus_msg *head, *tail;
    size_t queued, queued_bytes;
    atomic_size_t dropped;
    int64_t last_drop_log_ms;
    int wake_fd;
    atomic_bool healthy;
    atomic_uint nodes;
    /* Bus thread only. */
    int64_t next_connect_ms, next_heartbeat_ms;
    bool inbox_pending;
    bool events_dirty;
    int64_t watermark;    /* the event seq up to which every row is committed or gone */
    int64_t gap_seq;      /* the first missing seq above the watermark (0: none) */
    int64_t gap_since_ms; /* when it was first seen */
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *hub_cluster_node_id(const hub_cluster *c)
{
    return c->node_id;
}

bool hub_cluster_healthy(hub_cluster *c)
{
    return atomic_load(&c->healthy);
}

unsigned hub_cluster_nodes(hub_cluster *c)
{
    return atomic_load(&c->nodes);
}

void hub_cluster_queue_stats(hub_cluster *c, size_t *out_queued, size_t *out_bytes,
                             size_t *out_dropped)
{
    pthread_mutex_lock(&c->mu);
    *out_queued = c->queued;
    *out_bytes = c->queued_bytes;
    pthread_mutex_unlock(&c->mu);
    *out_dropped = atomic_load(&c->dropped);
}

/* ---- statements ---- */

/* Runs sql with text parameters on the bus connection; NULL (logged) on failure. */
static PGresult *run(hub_cluster *c, const char *what, const char *sql, int n,
                     const char *const *values, const int *lengths, const int *formats)
{
    if (!c->conn)
        return NULL;
    PGresult *res = PQexecParams(c->conn, sql, n, NULL, values, lengths, formats, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return res;
    log_warn("cluster", "bus statement failed op=%s error=\"%s\"", what,
             PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
                 ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
                 : PQerrorMessage(c->conn));
    PQclear(res);
    return NULL;
}

static bool run_ok(hub_cluster *c, const char *what, const char *sql, int n,
                   const char *const *values)
{
    PGresult *res = run(c, what, sql, n, values, NULL, NULL);
    PQclear(res);
    return res != NULL;
}

static iotdm_result connect_bus(hub_cluster *c)
{
    if (c->conn)
        PQfinish(c->conn);
    const char *const keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *const values[] = {"5", "iotdm-hub-bus", c->conninfo, NULL};
    c->conn = PQconnectdbParams(keys, values, 1);
    if (!c->conn || PQstatus(c->conn) != CONNECTION_OK) {
        log_warn("cluster", "cannot connect the bus: %s",
                 c->conn ? PQerrorMessage(c->conn) : "out of memory");
        PQfinish(c->conn);
        c->conn = NULL;
        return IOTDM_E_STORAGE;
    }
    /* Bus messages are transient (cluster.h): no wait for the disk on each. */
    char listen[160];
    snprintf(listen, sizeof listen, "LISTEN " BUS_CHANNEL);
    const char *id[] = {c->node_id};
    PGresult *res = run(c, "channel", "SELECT 'iotdm_' || md5($1)", 1, id, NULL, NULL);
    bool ok = res && PQntuples(res) == 1;
    char own[80] = "";
    if (ok)
        snprintf(own, sizeof own, "LISTEN %s", PQgetvalue(res, 0, 0));
    PQclear(res);
    ok = ok && run_ok(c, "setup", "SET synchronous_commit = off", 0, NULL) &&
         run_ok(c, "listen", listen, 0, NULL) && run_ok(c, "listen", own, 0, NULL);
    if (!ok) {
        PQfinish(c->conn);
        c->conn = NULL;
        return IOTDM_E_STORAGE;
    }
    c->inbox_pending = true; /* whatever arrived while the bus was away */
    c->events_dirty = true;
    return IOTDM_OK;
}

iotdm_result hub_cluster_open(hub *h, const char *conninfo, const char *node_id, hub_cluster **out)
{
    *out = NULL;
    if (!node_id[0] || strlen(node_id) >= HUB_CLUSTER_NODE_ID_MAX ||
        strlen(conninfo) >= sizeof(((hub_cluster *)0)->conninfo))
        return IOTDM_E_MALFORMED;
    hub_cluster *c = xcalloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->h = h;
    c->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    pthread_mutex_init(&c->mu, NULL);
    snprintf(c->node_id, sizeof c->node_id, "%s", node_id);
    snprintf(c->conninfo, sizeof c->conninfo, "%s", conninfo);
    c->started_ms = wall_ms();
    iotdm_result r = c->wake_fd >= 0 ? connect_bus(c) : -errno;
    if (r != IOTDM_OK) {
        hub_cluster_close(c);
        return r;
    }
    log_info("cluster", "node joining node=%s", c->node_id);
    *out = c;
    return IOTDM_OK;
}

/* ---- identity ---- */

iotdm_result hub_cluster_pull_identity(hub_cluster *c, const char *data_dir)
{
    PGresult *res = run(c, "identity", "SELECT name, body FROM cluster_files", 0, NULL, NULL, NULL);
    if (!res)
        return IOTDM_E_STORAGE;
    iotdm_result r = IOTDM_OK;
    for (int i = 0; i < PQntuples(res) && r == IOTDM_OK; i++) {
        const char *name = PQgetvalue(res, i, 0);
        bool known = false;
        for (size_t k = 0; k < sizeof identity_files / sizeof *identity_files; k++)
            known = known || strcmp(name, identity_files[k]) == 0;
        if (!known)
            continue; /* a newer hub's: not ours to write */
        size_t len = 0;
        unsigned char *body = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 1), &len);
        char path[700];
        snprintf(path, sizeof path, "%s/%s", data_dir, name);
        mode_t mode = strstr(name, ".key") ? 0600 : 0644;
        char err[300] = "";
        r = body ? atomic_file_write(path, body, len, mode, err, sizeof err) : -ENOMEM;
        if (r < 0)
            log_error("cluster", "cannot take the cluster's identity: %s", err);
        if (body)
            PQfreemem(body);
    }
    if (PQntuples(res) > 0 && r == IOTDM_OK)
        log_info("cluster", "identity taken from the cluster files=%d", PQntuples(res));
    PQclear(res);
    return r;
}

static unsigned char *read_small(const char *path, size_t *out_len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    unsigned char *buf = xmalloc(IDENTITY_MAX);
    size_t n = buf ? fread(buf, 1, IDENTITY_MAX, f) : 0;
    bool whole = buf && n < IDENTITY_MAX && !ferror(f);
    fclose(f);
    if (!whole) {
        xfree(buf);
        return NULL;
    }
    *out_len = n;
    return buf;
}

iotdm_result hub_cluster_push_identity(hub_cluster *c, const char *data_dir, bool *changed)
{
    *changed = false;
    for (size_t k = 0; k < sizeof identity_files / sizeof *identity_files; k++) {
        char path[700];
        snprintf(path, sizeof path, "%s/%s", data_dir, identity_files[k]);
        size_t len = 0;
        unsigned char *body = read_small(path, &len);
        if (!body)
            continue; /* not made (yet) on this node */
        const char *values[] = {identity_files[k], (const char *)body};
        const int lengths[] = {0, (int)len};
        const int formats[] = {0, 1};
        /* The first node's file stays: a second writer finds the row and keeps it. */
        PGresult *res = run(c, "identity",
                            "INSERT INTO cluster_files(name, body) VALUES($1, $2) "
                            "ON CONFLICT (name) DO NOTHING RETURNING name",
                            2, values, lengths, formats);
        bool inserted = res && PQntuples(res) == 1;
        PQclear(res);
        if (res && !inserted) {
            /* Someone else's is there: is it ours? */
            res = run(c, "identity", "SELECT body = $2 FROM cluster_files WHERE name = $1", 2,
                      values, lengths, formats);
            *changed = *changed || (res && PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] != 't');
            PQclear(res);
        }
        xfree_secret(body, len);
        if (!res)
            return IOTDM_E_STORAGE;
    }
    if (*changed)
        return hub_cluster_pull_identity(c, data_dir);
    return IOTDM_OK;
}

/* ---- the queue (any thread) ---- */

static void enqueue(hub_cluster *c, bus_msg *m)
{
    if (!m)
        return;
    bool dropped = false;
    pthread_mutex_lock(&c->mu);
    if (atomic_load(&c->stop) || c->queued >= QUEUE_MAX ||
        c->queued_bytes + m->len > QUEUE_MAX_BYTES) {
        dropped = true;
        atomic_fetch_add(&c->dropped, 1);
        int64_t now = mono_ms();
        if (now - c->last_drop_log_ms >= 1000) {
            c->last_drop_log_ms = now;
            log_warn("cluster", "bus queue full, message dropped kind=%d queued=%zu", (int)m->kind,
                     c->queued);
        }
    } else {
        m->next = NULL;
        if (c->tail)
            c->tail->next = m;
        else
            c->head = m;
        c->tail = m;
        c->queued++;
        c->queued_bytes += m->len;
    }
    pthread_mutex_unlock(&c->mu);
    if (dropped) {
        xfree(m);
        return;
    }
    uint64_t one = 1;
    ssize_t w = write(c->wake_fd, &one, sizeof one); /* EAGAIN: a wake-up is already pending */
    (void)w;
}

static bus_msg *msg_new(msg_kind kind, const char *device_id, size_t len)
{
    if (device_id && strlen(device_id) >= 2 * HUB_ID_MAX)
        return NULL;
    bus_msg *m = xcalloc(1, sizeof *m + len + 1);
    if (!m)
        return NULL;
    m->kind = kind;
    if (device_id)
        snprintf(m->device_id, sizeof m->device_id, "%s", device_id);
    m->len = len;
    return m;
}

void hub_cluster_notify_desired(hub_cluster *c, const char *device_id, const char *patch,
                                size_t len, int64_t version)
{
    bus_msg *m = msg_new(MSG_DESIRED, device_id, len);
    if (m) {
        if (len)
            memcpy(m->body, patch, len);
        m->ref = version;
    }
    enqueue(c, m);
}

void hub_cluster_deliver_c2d(hub_cluster *c, const char *device_id)
{
    enqueue(c, msg_new(MSG_C2D, device_id, 0));
}

void hub_cluster_drop(hub_cluster *c, const char *device_id, const char *reason)
{
    size_t len = strlen(reason);
    bus_msg *m = msg_new(MSG_DROP, device_id, len);
    if (m)
        memcpy(m->body, reason, len);
    enqueue(c, m);
}

void hub_cluster_method_request(hub_cluster *c, uint64_t call_id, const char *device_id,
                                const char *method, const char *payload, size_t len,
                                int response_timeout_s)
{
    size_t name_len = strlen(method);
    bus_msg *m = msg_new(MSG_METHOD_REQ, device_id, name_len + 1 + len);
    if (!m) {
        hub_methods_remote_result(c->h, call_id, IOTDM_E_NOT_ONLINE, 0, NULL, 0);
        return;
    }
    memcpy(m->body, method, name_len + 1);
    if (len)
        memcpy(m->body + name_len + 1, payload, len);
    m->ref = (int64_t)call_id;
    m->status = response_timeout_s;
    enqueue(c, m);
}

void hub_cluster_method_response(hub_cluster *c, const char *origin, uint64_t call_id,
                                 iotdm_result r, int status, const char *payload, size_t len)
{
    bus_msg *m = msg_new(MSG_METHOD_RESP, NULL, len);
    if (!m || strlen(origin) >= sizeof m->node) {
        xfree(m);
        return;
    }
    snprintf(m->node, sizeof m->node, "%s", origin);
    m->ref = (int64_t)call_id;
    /* One integer carries both: a device status (>= 0) or a failure (< 0). */
    m->status = r == IOTDM_OK ? status : (int)r;
    if (len)
        memcpy(m->body, payload, len);
    enqueue(c, m);
}

static void broadcast(hub_cluster *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void broadcast(hub_cluster *c, const char *fmt, ...)
{
    char text[600];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof text)
        return;
    bus_msg *m = msg_new(MSG_BROADCAST, NULL, (size_t)n);
    if (m)
        memcpy(m->body, text, (size_t)n);
    enqueue(c, m);
}

void hub_cluster_claimed(hub_cluster *c, const char *device_id, uint64_t epoch)
{
    broadcast(c, "c %" PRIu64 " %s %s", epoch, c->node_id, device_id);
}

void hub_cluster_methods_subscribed(hub_cluster *c, const char *device_id)
{
    broadcast(c, "s %s %s", c->node_id, device_id);
}

void hub_cluster_events_committed(hub_cluster *c, int64_t seq)
{
    bus_msg *m = msg_new(MSG_EVENTS, NULL, 0);
    if (m)
        m->ref = seq;
    enqueue(c, m);
}

/* ---- sending (bus thread) ---- */

/* Work for the node holding the device, in one statement: the row names the node, the message
 * waits in its inbox, and a NOTIFY on its channel wakes it. False when no other node holds it. */
static bool send_to_device(hub_cluster *c, const bus_msg *m, bool *out_failed)
{
    char kind[8], ref[24], status[16], now[24];
    snprintf(kind, sizeof kind, "%d", (int)m->kind);
    snprintf(ref, sizeof ref, "%" PRId64, m->ref);
    snprintf(status, sizeof status, "%d", m->status);
    snprintf(now, sizeof now, "%" PRId64, wall_ms());
    /* The connection is the device's: a module's messages go to the node of its device. */
    char device[HUB_ID_MAX];
    size_t dlen = strcspn(m->device_id, "/");
    snprintf(device, sizeof device, "%.*s", (int)(dlen < HUB_ID_MAX ? dlen : HUB_ID_MAX - 1),
             m->device_id);
    const char *values[] = {device, c->node_id, kind, ref, status, m->body, now, m->device_id};
    const int lengths[] = {0, 0, 0, 0, 0, (int)m->len, 0, 0};
    const int formats[] = {0, 0, 0, 0, 0, 1, 0, 0};
    PGresult *res =
        run(c, "send",
            "WITH t AS (SELECT conn_node FROM devices WHERE device_id = $1 AND connected "
            "AND conn_node <> '' AND conn_node <> $2), "
            "i AS (INSERT INTO cluster_inbox(node_id, kind, origin, device_id, ref, status, body, "
            "created_ms) SELECT conn_node, $3::integer, $2, $8, $4::bigint, $5::integer, $6, "
            "$7::bigint FROM t RETURNING node_id) "
            "SELECT pg_notify('iotdm_' || md5(node_id), '') FROM i",
            8, values, lengths, formats);
    *out_failed = res == NULL;
    bool sent = res && PQntuples(res) > 0;
    PQclear(res);
    return sent;
}

static void send_response(hub_cluster *c, const bus_msg *m)
{
    char ref[24], status[16], now[24];
    snprintf(ref, sizeof ref, "%" PRId64, m->ref);
    snprintf(status, sizeof status, "%d", m->status);
    snprintf(now, sizeof now, "%" PRId64, wall_ms());
    const char *values[] = {m->node, c->node_id, ref, status, m->body, now};
    const int lengths[] = {0, 0, 0, 0, (int)m->len, 0};
    const int formats[] = {0, 0, 0, 0, 1, 0};
    PGresult *res = run(c, "respond",
                        "WITH i AS (INSERT INTO cluster_inbox(node_id, kind, origin, device_id, "
                        "ref, status, body, created_ms) VALUES($1, 5, $2, '', $3::bigint, "
                        "$4::integer, $5, $6::bigint) RETURNING node_id) "
                        "SELECT pg_notify('iotdm_' || md5(node_id), '') FROM i",
                        6, values, lengths, formats);
    PQclear(res);
}

static void send_one(hub_cluster *c, bus_msg *m)
{
    bool failed = false;
    switch (m->kind) {
    case MSG_DESIRED:
    case MSG_C2D:
    case MSG_DROP:
        (void)send_to_device(c, m, &failed);
        break;
    case MSG_METHOD_REQ:
        if (!send_to_device(c, m, &failed))
            hub_methods_remote_result(c->h, (uint64_t)m->ref, IOTDM_E_NOT_ONLINE, 0, NULL, 0);
        break;
    case MSG_METHOD_RESP:
        send_response(c, m);
        break;
    case MSG_BROADCAST: {
        const char *values[] = {m->body};
        failed = !run_ok(c, "broadcast", "SELECT pg_notify('" BUS_CHANNEL "', $1)", 1, values);
        break;
    }
    case MSG_EVENTS: {
        char text[80];
        snprintf(text, sizeof text, "e %s %" PRId64, c->node_id, m->ref);
        const char *values[] = {text};
        failed = !run_ok(c, "events", "SELECT pg_notify('" BUS_CHANNEL "', $1)", 1, values);
        c->events_dirty = true;
        break;
    }
    }
    (void)failed; /* logged by run(); callers' timeouts cover what was lost */
}

static void send_queued(hub_cluster *c)
{
    uint64_t n;
    ssize_t r = read(c->wake_fd, &n, sizeof n);
    (void)r;
    pthread_mutex_lock(&c->mu);
    bus_msg *m = c->head;
    c->head = c->tail = NULL;
    c->queued = 0;
    c->queued_bytes = 0;
    pthread_mutex_unlock(&c->mu);
    while (m) {
        bus_msg *next = m->next;
        if (c->conn)
            send_one(c, m);
        else if (m->kind == MSG_METHOD_REQ)
            hub_methods_remote_result(c->h, (uint64_t)m->ref, IOTDM_E_NOT_ONLINE, 0, NULL, 0);
        xfree(m);
        m = next;
    }
}

/* ---- receiving (bus thread) ---- */

static void handle_row(hub_cluster *c, PGresult *res, int i)
{
    int kind = (int)strtol(PQgetvalue(res, i, 0), NULL, 10);
    const char *origin = PQgetvalue(res, i, 1);
    const char *device = PQgetvalue(res, i, 2);
    int64_t ref = strtoll(PQgetvalue(res, i, 3), NULL, 10);
    int status = (int)strtol(PQgetvalue(res, i, 4), NULL, 10);
    size_t len = 0;
    unsigned char *body = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 5), &len);
    if (!body)
        return;
    char *text = xmalloc(len + 1); /* NUL-terminated copy for the text consumers */
    if (text) {
        memcpy(text, body, len);
        text[len] = '\0';
    }
    PQfreemem(body);
    if (!text)
        return;
    hub *h = c->h;
    switch (kind) {
    case MSG_DESIRED:
        hub_route_notify_desired_local(h, device, text, ref);
        break;
    case MSG_C2D:
        hub_route_deliver_c2d_local(h, device);
        break;
    case MSG_DROP:
        hub_route_drop_local(h, device, text);
        break;
    case MSG_METHOD_REQ: {
        size_t name_len = strnlen(text, len);
        if (name_len < len)
            hub_methods_remote_invoke(h, origin, (uint64_t)ref, device, text, text + name_len + 1,
                                      len - name_len - 1, status);
        break;
    }
    case MSG_METHOD_RESP:
        if (status < 0)
            hub_methods_remote_result(h, (uint64_t)ref, (iotdm_result)status, 0, NULL, 0);
        else
            hub_methods_remote_result(h, (uint64_t)ref, IOTDM_OK, status, text, len);
        break;
    default:
        log_warn("cluster", "unknown bus message kind=%d from=%s", kind, origin);
        break;
    }
    xfree(text);
}

/* Messages taken from the inbox at a time: a backlog (a node that was slow) is read in parts,
 * never whole into memory. */
#define INBOX_BATCH 500

static void read_inbox(hub_cluster *c)
{
    c->inbox_pending = false;
    char limit[16];
    snprintf(limit, sizeof limit, "%d", INBOX_BATCH);
    const char *values[] = {c->node_id, limit};
    PGresult *res = run(c, "inbox",
                        "WITH d AS (DELETE FROM cluster_inbox WHERE id IN (SELECT id FROM "
                        "cluster_inbox WHERE node_id = $1 ORDER BY id LIMIT $2::integer) "
                        "RETURNING id, kind, origin, device_id, ref, status, body) "
                        "SELECT kind, origin, device_id, ref, status, body FROM d ORDER BY id",
                        2, values, NULL, NULL);
    if (!res)
        return;
    int n = PQntuples(res);
    for (int i = 0; i < n; i++)
        handle_row(c, res, i);
    PQclear(res);
    if (n == INBOX_BATCH)
        c->inbox_pending = true; /* more: the loop comes back without waiting */
}

/* The next space-separated word of *p into out (cap with the NUL); false when missing or too long.
 */
static bool word(const char **p, char *out, size_t cap)
{
    const char *s = *p;
    size_t n = strcspn(s, " ");
    if (n == 0 || n >= cap)
        return false;
    memcpy(out, s, n);
    out[n] = '\0';
    *p = s[n] ? s + n + 1 : s + n;
    return true;
}

/* "c <epoch> <node> <client id>", "s <node> <client id>", "e <node> <seq>". Anything else (a
 * newer hub's) is ignored. */
static void handle_broadcast(hub_cluster *c, const char *payload)
{
    char kind[4], node[HUB_CLUSTER_NODE_ID_MAX], num[24], id[2 * HUB_ID_MAX];
    const char *p = payload;
    if (!word(&p, kind, sizeof kind))
        return;
    if (strcmp(kind, "c") == 0 && word(&p, num, sizeof num) && word(&p, node, sizeof node) &&
        word(&p, id, sizeof id)) {
        if (strcmp(node, c->node_id) != 0)
            hub_mqtt_claimed_elsewhere(c->h, id, strtoull(num, NULL, 10));
    } else if (strcmp(kind, "s") == 0 && word(&p, node, sizeof node) && word(&p, id, sizeof id)) {
        if (strcmp(node, c->node_id) != 0)
            hub_methods_subscribed_local(c->h, id);
    } else if (strcmp(kind, "e") == 0) {
        c->events_dirty = true;
    }
}

static void drain_notifies(hub_cluster *c)
{
    if (!c->conn)
        return;
    PGnotify *n;
    while ((n = PQnotifies(c->conn)) != NULL) {
        if (strcmp(n->relname, BUS_CHANNEL) == 0)
            handle_broadcast(c, n->extra);
        else
            c->inbox_pending = true; /* our own channel */
        PQfreemem(n);
    }
}

/* ---- events: the cluster-wide watermark ---- */

/* Moves the watermark over the seqs committed since, in order; a hole (a group another node has
 * not committed yet) stops it, until HUB_CLUSTER_EVENT_GAP_MS have passed (then the hole was a
 * rolled-back group: skipped). */
static void advance_events(hub_cluster *c)
{
    c->events_dirty = false;
    char after[24];
    snprintf(after, sizeof after, "%" PRId64, c->watermark);
    const char *values[] = {after};
    PGresult *res = run(c, "events",
                        "SELECT seq FROM telemetry WHERE seq > $1::bigint ORDER BY seq LIMIT 10000",
                        1, values, NULL, NULL);
    if (!res)
        return;
    int64_t w = c->watermark;
    int rows = PQntuples(res);
    for (int i = 0; i < rows; i++) {
        int64_t seq = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        if (seq != w + 1) {
            if (c->gap_seq != w + 1) {
                c->gap_seq = w + 1;
                c->gap_since_ms = mono_ms();
            }
            if (mono_ms() - c->gap_since_ms < HUB_CLUSTER_EVENT_GAP_MS)
                break;
            c->gap_seq = 0;
        }
        w = seq;
    }
    PQclear(res);
    if (w == c->watermark)
        return;
    if (c->gap_seq && c->gap_seq <= w)
        c->gap_seq = 0;
    c->watermark = w;
    hub_events_on_durable(c->h, w);
    if (rows == 10000)
        c->events_dirty = true; /* more after these */
}

/* ---- presence ---- */

static void heartbeat(hub_cluster *c)
{
    char started[24];
    snprintf(started, sizeof started, "%" PRId64, c->started_ms);
    char expiry[24];
    snprintf(expiry, sizeof expiry, "%d", HUB_CLUSTER_NODE_EXPIRY_MS);
    const char *values[] = {c->node_id, started, expiry};
    /* The database's clock, not the nodes': theirs may disagree. */
    bool ok =
        run_ok(c, "heartbeat",
               "INSERT INTO cluster_nodes(node_id, started_ms, heartbeat_ms) "
               "VALUES($1, $2::bigint, (extract(epoch FROM clock_timestamp()) * 1000)::bigint) "
               "ON CONFLICT (node_id) DO UPDATE SET heartbeat_ms = excluded.heartbeat_ms",
               2, values);
    PGresult *res = ok ? run(c, "heartbeat",
                             "SELECT COUNT(*) FROM cluster_nodes WHERE heartbeat_ms > "
                             "(extract(epoch FROM clock_timestamp()) * 1000)::bigint - $1::bigint",
                             1, (const char *const[]){expiry}, NULL, NULL)
                       : NULL;
    if (!res) {
        atomic_store(&c->healthy, false);
        return;
    }
    atomic_store(&c->nodes, (unsigned)strtoul(PQgetvalue(res, 0, 0), NULL, 10));
    atomic_store(&c->healthy, true);
    PQclear(res);
    /* Nodes that stopped announcing: the first node to remove one takes over its clean-up. */
    res = run(c, "expire",
              "DELETE FROM cluster_nodes WHERE heartbeat_ms < "
              "(extract(epoch FROM clock_timestamp()) * 1000)::bigint - $2::bigint "
              "AND node_id <> $1 RETURNING node_id",
              2, (const char *const[]){c->node_id, expiry}, NULL, NULL);
    for (int i = 0; res && i < PQntuples(res); i++) {
        const char *dead = PQgetvalue(res, i, 0);
        log_warn("cluster", "node expired node=%s: its devices are marked disconnected", dead);
        const char *v[] = {dead};
        run_ok(c, "expire", "DELETE FROM cluster_inbox WHERE node_id = $1", 1, v);
        hub_devices_node_lost(c->h, dead);
    }
    PQclear(res);
}

/* ---- the thread ---- */

static void *bus_main(void *arg)
{
    hub_cluster *c = arg;
    while (!atomic_load(&c->stop)) {
        int64_t now = mono_ms();
        if (!c->conn || PQstatus(c->conn) != CONNECTION_OK) {
            atomic_store(&c->healthy, false);
            if (now >= c->next_connect_ms) {
                c->next_connect_ms = now + RECONNECT_MS;
                if (connect_bus(c) == IOTDM_OK) {
                    log_info("cluster", "bus connected node=%s", c->node_id);
                    c->next_heartbeat_ms = 0;
                }
            }
        }
        if (c->conn && now >= c->next_heartbeat_ms) {
            c->next_heartbeat_ms = now + HUB_CLUSTER_HEARTBEAT_MS;
            heartbeat(c);
        }
        drain_notifies(c);
        if (c->conn && c->inbox_pending)
            read_inbox(c);
        if (c->conn && (c->events_dirty || c->gap_seq))
            advance_events(c);
        drain_notifies(c);
        int timeout = (int)(c->next_heartbeat_ms - mono_ms());
        if (c->gap_seq && timeout > 100)
            timeout = 100; /* a hole to look at again soon */
        if (!c->conn && timeout > RECONNECT_MS)
            timeout = RECONNECT_MS;
        if (c->inbox_pending || c->events_dirty)
            timeout = 0;
        if (timeout < 0)
            timeout = 0;
        struct pollfd fds[2] = {{.fd = c->wake_fd, .events = POLLIN},
                                {.fd = c->conn ? PQsocket(c->conn) : -1, .events = POLLIN}};
        int n = poll(fds, c->conn ? 2 : 1, timeout);
        if (n > 0 && (fds[1].revents & (POLLIN | POLLERR | POLLHUP)) && c->conn) {
            if (!PQconsumeInput(c->conn)) {
                log_warn("cluster", "bus connection lost: %s", PQerrorMessage(c->conn));
                PQfinish(c->conn);
                c->conn = NULL;
            }
        }
        if (n > 0 && (fds[0].revents & POLLIN))
            send_queued(c);
    }
    return NULL;
}

iotdm_result hub_cluster_run(hub_cluster *c)
{
    c->watermark = hub_events_durable_seq(c->h);
    if (pthread_create(&c->thread, NULL, bus_main, c) != 0)
        return IOTDM_E_INTERNAL;
    c->running = true;
    return IOTDM_OK;
}

void hub_cluster_stop(hub_cluster *c)
{
    if (!c)
        return;
    atomic_store(&c->stop, true);
    if (c->running) {
        uint64_t one = 1;
        ssize_t w = write(c->wake_fd, &one, sizeof one);
        (void)w;
        pthread_join(c->thread, NULL);
        c->running = false;
    }
    if (c->conn && PQstatus(c->conn) == CONNECTION_OK) {
        /* A clean stop: the other nodes need not wait for the expiry. */
        const char *values[] = {c->node_id};
        run_ok(c, "leave", "DELETE FROM cluster_nodes WHERE node_id = $1", 1, values);
    }
    PQfinish(c->conn);
    c->conn = NULL;
}

void hub_cluster_close(hub_cluster *c)
{
    if (!c)
        return;
    hub_cluster_stop(c);
    for (bus_msg *m = c->head, *next; m; m = next) {
        next = m->next;
        xfree(m);
    }
    c->head = c->tail = NULL;
    if (c->wake_fd >= 0)
        close(c->wake_fd);
    pthread_mutex_destroy(&c->mu);
    xfree(c);
}
