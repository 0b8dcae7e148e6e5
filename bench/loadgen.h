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

typedef enum { LG_IDLE, LG_TELEMETRY, LG_REPORTED, LG_METHODS, LG_REGISTER } lg_scenario;
typedef enum { LG_BROKER_HUB, LG_BROKER_MOSQUITTO } lg_broker;

typedef struct {
    lg_scenario scenario;
    lg_broker broker;
    const char *host; /* where to connect (an IPv4 address) */
    int port;         /* MQTT over TLS */
    int https_port;   /* hub REST API (methods, register) */
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
    int server_pid;  /* sample this process's VmRSS around the idle connections */
    int settle_s;    /* wait after the last connection before sampling memory */
} lg_opts;

typedef struct lg_dev lg_dev;
typedef struct lg_http lg_http;
typedef struct lg_app lg_app;

/* Per-second counters: the current second counts up, finished seconds are kept. */
typedef struct {
    uint64_t current;
    uint64_t total;
    double values[LG_MAX_INTERVALS];
    size_t n;
} lg_series;

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

    /* Method calls. */
    lg_http **pool;
    int npool;
    int pool_ready;
    uint64_t calls_issued;
    uint64_t calls_done;
    uint64_t calls_failed;
    uint64_t calls_max;  /* capacity of call_start */
    int64_t *call_start; /* issue time of each call, by call id; 0 once answered */
    uint64_t *queue;     /* calls waiting for a free HTTPS connection */
    size_t queue_head;
    size_t queue_len;
    double *lat_ms;
    size_t nlat;
    uint64_t measured_from; /* first call id after the warm-up */
    uint64_t measured_to;   /* one past the last call id of the measured phase */
    double late_max_ms;
    int next_method_dev;
    struct event *call_timer;
    int64_t calls_start_us;
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
/* A method call finished (status 0: failed without an answer). */
void lg_call_done(lg_app *app, uint64_t call_id, int status);

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

/* loadgen_http.c: HTTPS keep-alive client for the hub's REST API. */
typedef void (*lg_http_cb)(lg_app *app, void *ctx, int status, const char *body, size_t len);
lg_http *lg_http_new(lg_app *app);
void lg_http_free(lg_http *c);
bool lg_http_busy(const lg_http *c);
/* Sends one request; cb runs with the status (0 when the connection failed). */
void lg_http_request(lg_http *c, const char *method, const char *path, const char *body,
                     size_t body_len, lg_http_cb cb, void *ctx);
/* Registers devices first .. first+count-1 with the bulk API, then calls done. */
void lg_register_devices(lg_app *app, void (*done)(lg_app *app, bool ok));
/* Method calls at o.rate per second over a pool of connections. */
void lg_methods_start(lg_app *app);

/* loadgen_stats.c */
void lg_series_close_interval(lg_series *s);
double lg_median(double *v, size_t n);
double lg_percentile(double *sorted, size_t n, double p);
long lg_read_rss_kb(int pid);

#endif
