/* iotdm-loadgen internals: options, the shared run state, device and HTTPS client interfaces. */
#ifndef IOTDM_BENCH_LOADGEN_H
#define IOTDM_BENCH_LOADGEN_H

#include <event2/event.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LG_ID_MAX        64
#define LG_HOST_MAX      256
#define LG_KEY_MAX       128
#define LG_MAX_INTERVALS 3600
#define LG_MAX_SRC_ADDRS 200
#define LG_PER_SRC_ADDR  10000 /* connections per source address before the next is used */
#define LG_API_VERSION   "2021-04-12"

typedef enum {
    LG_IDLE,
    LG_TELEMETRY,
    LG_REPORTED,
    LG_METHODS,
    LG_REGISTER,
    LG_QUERY,
    LG_HOSTILE,
    LG_ATTACK
} lg_scenario;
typedef enum { LG_BROKER_HUB, LG_BROKER_MOSQUITTO } lg_broker;

typedef struct {
    lg_scenario scenario;
    lg_broker broker;
    const char *host; /* where to connect (an IPv4 address) */
    int port;         /* MQTT over TLS */
    int https_port;   /* hub REST API (methods, register, queries) */
    const char *ca;   /* CA file to verify the server with */
    const char *connstr_file;
    char hub_name[LG_HOST_MAX]; /* HostName of the connection string: user names, SAS resources */
    char owner_key[LG_KEY_MAX];
    char owner_policy[LG_ID_MAX];
    const char *prefix;     /* device ids are {prefix}{index} */
    const char *device_key; /* the one symmetric key every load device shares */
    int first;              /* first device index */
    int devices;
    int keepalive_s;
    int hold_s;
    int duration_s;
    int warmup_s;
    int window;      /* in-flight publishes per connection */
    int payload;     /* telemetry payload bytes */
    int rate;        /* method calls per second */
    int pool;        /* HTTPS connections for method calls */
    int concurrency; /* connection attempts in progress at once */
    int src_addrs;   /* 127.0.0.2 .. 127.0.0.(1+n); 0: one per 10,000 connections */
    int server_pid;  /* sample this process's VmRSS */
    int settle_s;    /* wait after the last connection before sampling memory */
    /* register and query */
    int site_size;     /* devices per tags.site value; 0: no tags */
    int registered;    /* query: how many devices PREFIX0.. the hub holds */
    int query_clients; /* query: HTTPS clients running queries back to back */
    int page_size;     /* query: x-ms-max-item-count of the SELECT * pages */
    /* hostile and attack */
    int telemetry_rate; /* hostile: QoS 1 messages per second over all devices */
    int attackers;      /* connections per attack kind */
    int flooders;       /* unauthenticated connect-request-close loops */
    int attacker_first; /* device index of the first twin-flood device; -1: after the devices */
    int attack_ramp_s;  /* hostile: attack this long before measuring */
    int trickle_ms;     /* slowloris: one header byte every this many ms */
    const char *attack_kinds; /* comma-separated attack names; NULL: all */
} lg_opts;

typedef struct lg_dev lg_dev;
typedef struct lg_http lg_http;
typedef struct lg_app lg_app;
typedef struct lg_calls lg_calls;

/* Per-second counters: the current second counts up, finished seconds are kept. */
typedef struct {
    uint64_t current;
    uint64_t total;
    double values[LG_MAX_INTERVALS];
    size_t n;
} lg_series;

/* A growable list of samples (latencies in ms). */
typedef struct {
    double *v;
    size_t n;
    size_t cap;
} lg_samples;

struct lg_app {
    lg_opts o;
    struct event_base *base;
    SSL_CTX *ssl;
    struct sockaddr_in server;
    struct sockaddr_in src[LG_MAX_SRC_ADDRS];
    int nsrc;
    int64_t start_us;

    /* Device connections. */
    lg_dev *devs;
    int next_to_connect;
    int attempting;
    int connected;
    int failed;
    int dropped; /* lost after being connected */
    int connack_refused;
    int64_t connect_start_us;
    int64_t connect_end_us;
    bool running; /* the measured phase: devices keep their windows full */

    /* Measured phase. */
    lg_series acks;  /* PUBACKs (telemetry), 204s (reported), answers (methods) */
    uint64_t errors; /* non-2xx answers */
    int elapsed_s;
    struct event *tick;
    /* CPU clock ticks (user + system) of the server (--server-pid) and of this process when the
     * measured phase began, and when: what each side spent per message. */
    long cpu0_server, cpu0_self;
    int64_t cpu0_us;
    /* Paced telemetry (hostile): called for every PUBACK with the time its PUBLISH left. */
    void (*on_puback)(lg_app *app, int64_t sent_us);

    /* Method calls. */
    lg_http **pool;
    int npool;
    int pool_next;          /* round robin, so that no connection idles into a deadline */
    uint64_t pool_reopened; /* pool connections the server closed, opened again */
    lg_calls *calls;        /* the phase of calls in progress, or NULL */
    uint64_t next_call_id;
    lg_dev *svc; /* the requesting client of the broker baseline */
    char auth[1024];

    int exit_code;
};

/* loadgen_opts.c */
extern const char *const lg_scenario_names[];
/* Fills app->o from the command line; prints help or an error and exits on bad input. */
void lg_parse_args(lg_app *app, int argc, char **argv);

/* loadgen.c */
int64_t lg_now_us(void);
__attribute__((noreturn, format(printf, 2, 3))) void lg_fatal(lg_app *app, const char *fmt, ...);
void lg_device_id(const lg_app *app, int index, char *out, size_t cap);
/* Called when every device has connected or failed. */
void lg_on_all_connected(lg_app *app);

/* loadgen_net.c: sockets and TLS. */
SSL_CTX *lg_client_tls(const char *ca);
/* Source addresses, and the file-descriptor limit raised as far as it goes. */
void lg_prepare_sockets(lg_app *app);
/* A non-blocking TCP connect to the server's port from src (NULL: any): the descriptor, or -1
 * with errno set. The caller waits for EV_WRITE and checks SO_ERROR. */
int lg_socket_connect(lg_app *app, const struct sockaddr_in *src, int port);
/* 0 when the connect of fd succeeded, else the error. */
int lg_socket_error(int fd);
/* A TLS client bufferevent over a connected fd (the handshake starts); NULL on failure, fd
 * closed. */
struct bufferevent *lg_tls_bev(lg_app *app, int fd);

/* loadgen_dev.c: device MQTT connections. */
lg_dev *lg_devs_new(lg_app *app, int count);
void lg_devs_free(lg_app *app);
/* Opens connections until `concurrency` attempts are in progress; calls lg_on_all_connected. */
void lg_devs_connect_more(lg_app *app);
/* Starts the measured phase (telemetry, reported): fills each connection's window. */
void lg_devs_start_publishing(lg_app *app);
void lg_devs_ping_all(lg_app *app);
/* Broker baseline of methods: a plain MQTT client that publishes requests. */
lg_dev *lg_svc_new(lg_app *app);
void lg_svc_call(lg_app *app, int dev_index, uint64_t call_id);
int lg_devs_count_ready(const lg_app *app);
/* Paced telemetry: n QoS 1 PUBLISHes, round robin over the ready devices; returns how many
 * could not be sent because their device had LG_PACED_INFLIGHT in flight. */
#define LG_PACED_INFLIGHT 255
int lg_devs_send_paced(lg_app *app, int n);
/* Calls fn with the send time of every paced PUBLISH still unacknowledged. */
void lg_devs_each_pending(lg_app *app, void (*fn)(lg_app *app, int64_t sent_us));

/* loadgen_http.c: HTTPS keep-alive client for the hub's REST API. */
typedef void (*lg_http_cb)(lg_app *app, void *ctx, int status, const char *body, size_t len);
lg_http *lg_http_new(lg_app *app);
void lg_http_free(lg_http *c);
bool lg_http_busy(const lg_http *c); /* a request is on the wire, or the connection is dead */
bool lg_http_dead(const lg_http *c);
/* Sends one request signed with the owner policy; `headers` are extra header lines, each ending
 * in CRLF (or NULL). cb runs with the status (0 when the connection failed). */
void lg_http_request(lg_http *c, const char *method, const char *path, const char *headers,
                     const char *body, size_t body_len, lg_http_cb cb, void *ctx);
/* A header of the response being handed to the callback (copied into out; false if absent). */
bool lg_http_header(const lg_http *c, const char *name, char *out, size_t cap);

/* loadgen_register.c: creates devices first .. first+count-1 (bulk API) and, with
 * --site-size, tags them; then calls done. */
void lg_register_devices(lg_app *app, void (*done)(lg_app *app, bool ok));

/* loadgen_methods.c: direct-method calls at o.rate per second, o.warmup_s + o.duration_s. */
typedef void (*lg_phase_done)(lg_app *app);
/* Runs one phase of calls, prints its figures with `prefix` on every key, then calls done
 * (NULL: stop the loop). */
void lg_calls_start(lg_app *app, const char *prefix, lg_phase_done done);
/* A method call finished (status 0: failed without an answer). */
void lg_call_done(lg_app *app, uint64_t call_id, int status);
/* The methods scenario: one phase. */
void lg_methods_start(lg_app *app);

/* loadgen_query.c: methods with and without HTTPS clients running queries back to back. */
void lg_query_start(lg_app *app);

/* loadgen_hostile.c: legitimate devices with and without attackers (loadgen_attack.c). */
void lg_hostile_start(lg_app *app);

/* loadgen_attack.c: attackers until SIGTERM or --duration; figures printed at the end. */
void lg_attack_start(lg_app *app);
void lg_attack_stop(lg_app *app);

/* loadgen_stats.c */
void lg_series_close_interval(lg_series *s);
double lg_median(double *v, size_t n);
double lg_percentile(double *sorted, size_t n, double p);
long lg_read_rss_kb(int pid);
/* User + system CPU of pid (0: this process), all its threads, in clock ticks; -1 when unknown. */
long lg_read_cpu_ticks(int pid);
bool lg_samples_add(lg_samples *s, double v);
void lg_samples_free(lg_samples *s);
/* Sorts s and prints {prefix}{name}_p50_ms, _p90_ms, _p99_ms, _max_ms, _mean_ms and _n. */
void lg_print_latency(const char *prefix, const char *name, lg_samples *s);
/* Samples a process's VmRSS every 200 ms and keeps the highest. */
typedef struct {
    struct event *ev;
    int pid;
    long max_kb;
} lg_rss_watch;
void lg_rss_watch_start(lg_app *app, lg_rss_watch *w, int pid);
long lg_rss_watch_stop(lg_rss_watch *w); /* the highest VmRSS seen, in KiB */

#endif
