/* iotdm-loadgen command line: usage text, defaults, option table. */
#include <getopt.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loadgen.h"

/* The key every load device is registered with: 32 bytes, base64. */
#define LG_DEFAULT_KEY "aW90ZG0tYmVuY2gtc2hhcmVkLWRldmljZS1rZXktMzI="

const char *const lg_scenario_names[] = {"idle",     "telemetry", "reported", "methods",
                                         "register", "query",     "hostile",  "attack"};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: iotdm-loadgen SCENARIO [options]\n"
            "\n"
            "Load generator speaking the Azure IoT Hub device protocol (MQTT 3.1.1 over TLS,\n"
            "SAS tokens) from one process and one event loop. Figures go to stdout as\n"
            "key=value lines; diagnostics to stderr. Exit status 1 when the run went wrong.\n"
            "\n"
            "Scenarios:\n"
            "  register   create devices PREFIX0..PREFIX(N-1) with the shared key (bulk API);\n"
            "             with --site-size, tag each twin with site = 'site-K'\n"
            "  idle       open N connections, hold them, report connections, time and memory\n"
            "  telemetry  QoS 1 publishes, WINDOW in flight per connection; PUBACKs per second\n"
            "  reported   twin reported PATCHes (QoS 0, WINDOW in flight); 204s per second\n"
            "  methods    direct-method calls at RATE/s; round-trip percentiles\n"
            "  query      methods at RATE/s alone, then while HTTPS clients run queries back to\n"
            "             back (tag, deviceId, SELECT * paged); both phases' percentiles, each\n"
            "             query kind's latency, the server's memory\n"
            "  hostile    legitimate devices (telemetry at a steady rate, methods at RATE/s)\n"
            "             without, then with attackers (a child process running 'attack')\n"
            "  attack     the attackers alone, until SIGTERM or --duration: pipelined HTTPS\n"
            "             never read (without and with a service token), slowloris headers,\n"
            "             MQTT twin-GET flood never read, no TLS handshake / no CONNECT,\n"
            "             wrongly signed requests and CONNECTs\n"
            "\n"
            "Options:\n"
            "  --broker hub|mosquitto  server kind (default hub). mosquitto: no authentication,\n"
            "                       methods as a request/response round trip through the broker\n"
            "  --host ADDR          server IPv4 address (default 127.0.0.1)\n"
            "  --port N             MQTT over TLS port (default 8883)\n"
            "  --https-port N       hub REST API port (default 443)\n"
            "  --ca FILE            CA certificate to verify the server (required)\n"
            "  --connstr-file FILE  iothubowner connection string (hub: required)\n"
            "  --hub-name NAME      host name for user names and tokens (default: HostName of\n"
            "                       the connection string)\n"
            "  --devices N          connections / devices (default 1000)\n"
            "  --prefix P           device id prefix (default bench-)\n"
            "  --first N            index of the first device (default 0)\n"
            "  --device-key B64     the symmetric key all load devices share (default built in)\n"
            "  --keepalive S        MQTT keep-alive (default 240)\n"
            "  --hold S             idle: how long to hold the connections (default 10)\n"
            "  --duration S         measured seconds (default 10)\n"
            "  --warmup S           seconds before measuring (default 2)\n"
            "  --window N           in-flight publishes per connection (default 4)\n"
            "  --payload N          telemetry payload bytes (default 256)\n"
            "  --rate N             methods: calls per second (default 500)\n"
            "  --pool N             methods: HTTPS connections (default 8)\n"
            "  --concurrency N      connection attempts in progress at once (default 100)\n"
            "  --src-addrs N        source addresses 127.0.0.2.. (default: one per %d)\n"
            "  --server-pid PID     idle: sample this process's VmRSS before and after\n"
            "  --settle S           idle: wait before sampling memory (default 2)\n"
            "  --site-size N        register, query: devices per tags.site value (default 100;\n"
            "                       register: 0, no tags)\n"
            "  --registered N       query: devices PREFIX0.. the hub holds (default 100000)\n"
            "  --query-clients N    query: HTTPS clients running queries (default 1)\n"
            "  --page-size N        query: items per SELECT * page (default 100)\n"
            "  --telemetry-rate N   hostile: messages per second over all devices (default 1000)\n"
            "  --attackers N        hostile, attack: connections per attack kind (default 20)\n"
            "  --flooders N         hostile, attack: unauthenticated loops (default 4)\n"
            "  --attacker-first N   hostile, attack: index of the first twin-flood device\n"
            "                       (default: right after the legitimate devices)\n"
            "  --attack-ramp S      hostile: attack this long before measuring (default 3)\n"
            "  --trickle-ms N       slowloris: one header byte every N ms (default 500)\n"
            "  --attack-kinds LIST  hostile, attack: some of pipeline,pipeline_auth,slowloris,\n"
            "                       twin_flood,no_handshake,unauth (default: all; 'none':\n"
            "                       no attacker)\n"
            "  -h, --help           this text\n",
            LG_PER_SRC_ADDR);
}

/* Integer options: name, where the value goes, smallest value allowed. */
typedef struct {
    const char *name;
    size_t offset;
    int min;
} int_opt;

#define INT_OPT(name, field, min)                                                                  \
    {                                                                                              \
        name, offsetof(lg_opts, field), min                                                        \
    }

static const int_opt int_opts[] = {
    INT_OPT("port", port, 1),
    INT_OPT("https-port", https_port, 1),
    INT_OPT("devices", devices, 1),
    INT_OPT("first", first, 0),
    INT_OPT("keepalive", keepalive_s, 2),
    INT_OPT("hold", hold_s, 0),
    INT_OPT("duration", duration_s, 1),
    INT_OPT("warmup", warmup_s, 0),
    INT_OPT("window", window, 1),
    INT_OPT("payload", payload, 0),
    INT_OPT("rate", rate, 1),
    INT_OPT("pool", pool, 1),
    INT_OPT("concurrency", concurrency, 1),
    INT_OPT("src-addrs", src_addrs, 0),
    INT_OPT("server-pid", server_pid, 1),
    INT_OPT("settle", settle_s, 0),
    INT_OPT("site-size", site_size, 0),
    INT_OPT("registered", registered, 1),
    INT_OPT("query-clients", query_clients, 1),
    INT_OPT("page-size", page_size, 1),
    INT_OPT("telemetry-rate", telemetry_rate, 1),
    INT_OPT("attackers", attackers, 0),
    INT_OPT("flooders", flooders, 0),
    INT_OPT("attacker-first", attacker_first, 0),
    INT_OPT("attack-ramp", attack_ramp_s, 0),
    INT_OPT("trickle-ms", trickle_ms, 1),
};

static const struct option longopts[] = {{"broker", 1, 0, 0},
                                         {"host", 1, 0, 0},
                                         {"port", 1, 0, 0},
                                         {"https-port", 1, 0, 0},
                                         {"ca", 1, 0, 0},
                                         {"connstr-file", 1, 0, 0},
                                         {"hub-name", 1, 0, 0},
                                         {"devices", 1, 0, 0},
                                         {"prefix", 1, 0, 0},
                                         {"first", 1, 0, 0},
                                         {"device-key", 1, 0, 0},
                                         {"keepalive", 1, 0, 0},
                                         {"hold", 1, 0, 0},
                                         {"duration", 1, 0, 0},
                                         {"warmup", 1, 0, 0},
                                         {"window", 1, 0, 0},
                                         {"payload", 1, 0, 0},
                                         {"rate", 1, 0, 0},
                                         {"pool", 1, 0, 0},
                                         {"concurrency", 1, 0, 0},
                                         {"src-addrs", 1, 0, 0},
                                         {"server-pid", 1, 0, 0},
                                         {"settle", 1, 0, 0},
                                         {"site-size", 1, 0, 0},
                                         {"registered", 1, 0, 0},
                                         {"query-clients", 1, 0, 0},
                                         {"page-size", 1, 0, 0},
                                         {"telemetry-rate", 1, 0, 0},
                                         {"attackers", 1, 0, 0},
                                         {"flooders", 1, 0, 0},
                                         {"attacker-first", 1, 0, 0},
                                         {"attack-ramp", 1, 0, 0},
                                         {"trickle-ms", 1, 0, 0},
                                         {"attack-kinds", 1, 0, 0},
                                         {"help", 0, 0, 'h'},
                                         {0, 0, 0, 0}};

static void set_option(lg_app *app, const char *name, const char *v)
{
    lg_opts *o = &app->o;
    for (size_t i = 0; i < sizeof int_opts / sizeof int_opts[0]; i++) {
        if (strcmp(name, int_opts[i].name) != 0)
            continue;
        char *end;
        long n = strtol(v, &end, 10);
        if (*v == '\0' || *end || n < int_opts[i].min || n > 10000000)
            lg_fatal(app, "--%s: expected an integer >= %d, got '%s'", name, int_opts[i].min, v);
        *(int *)(void *)((char *)o + int_opts[i].offset) = (int)n;
        return;
    }
    if (strcmp(name, "broker") == 0) {
        if (strcmp(v, "hub") == 0)
            o->broker = LG_BROKER_HUB;
        else if (strcmp(v, "mosquitto") == 0)
            o->broker = LG_BROKER_MOSQUITTO;
        else
            lg_fatal(app, "--broker: hub or mosquitto, not '%s'", v);
    } else if (strcmp(name, "host") == 0) {
        o->host = v;
    } else if (strcmp(name, "ca") == 0) {
        o->ca = v;
    } else if (strcmp(name, "connstr-file") == 0) {
        o->connstr_file = v;
    } else if (strcmp(name, "hub-name") == 0) {
        snprintf(o->hub_name, sizeof o->hub_name, "%s", v);
    } else if (strcmp(name, "prefix") == 0) {
        o->prefix = v;
    } else if (strcmp(name, "device-key") == 0) {
        o->device_key = v;
    } else if (strcmp(name, "attack-kinds") == 0) {
        o->attack_kinds = v;
    }
}

static void check_args(lg_app *app)
{
    const lg_opts *o = &app->o;
    if (!o->ca)
        lg_fatal(app, "--ca is required");
    bool hub_only = o->scenario == LG_REPORTED || o->scenario == LG_REGISTER ||
                    o->scenario == LG_QUERY || o->scenario == LG_HOSTILE ||
                    o->scenario == LG_ATTACK;
    if (o->broker == LG_BROKER_MOSQUITTO && hub_only)
        lg_fatal(app, "'%s' runs against the hub only", lg_scenario_names[o->scenario]);
    if (o->broker == LG_BROKER_HUB && !o->connstr_file)
        lg_fatal(app, "--connstr-file is required against the hub");
    if (o->scenario == LG_QUERY && o->site_size < 1)
        lg_fatal(app, "query: --site-size must be at least 1");
    if (o->keepalive_s > 65535 || o->window > 60000)
        lg_fatal(app, "--keepalive and --window must be below 65536");
    if (strlen(o->prefix) > LG_ID_MAX - 12)
        lg_fatal(app, "--prefix is too long");
}

void lg_parse_args(lg_app *app, int argc, char **argv)
{
    app->o = (lg_opts){.broker = LG_BROKER_HUB,
                       .host = "127.0.0.1",
                       .port = 8883,
                       .https_port = 443,
                       .prefix = "bench-",
                       .device_key = LG_DEFAULT_KEY,
                       .devices = 1000,
                       .keepalive_s = 240,
                       .hold_s = 10,
                       .duration_s = 10,
                       .warmup_s = 2,
                       .window = 4,
                       .payload = 256,
                       .rate = 500,
                       .pool = 8,
                       .concurrency = 100,
                       .settle_s = 2,
                       .site_size = -1,
                       .registered = 100000,
                       .query_clients = 1,
                       .page_size = 100,
                       .telemetry_rate = 1000,
                       .attackers = 20,
                       .flooders = 4,
                       .attacker_first = -1,
                       .attack_ramp_s = 3,
                       .trickle_ms = 500};
    int c, index;
    while ((c = getopt_long(argc, argv, "h", longopts, &index)) != -1) {
        if (c == 'h') {
            usage(stdout);
            exit(0);
        }
        if (c != 0) {
            usage(stderr);
            exit(2);
        }
        set_option(app, longopts[index].name, optarg);
    }
    if (optind != argc - 1) {
        usage(stderr);
        exit(2);
    }
    size_t n = sizeof lg_scenario_names / sizeof lg_scenario_names[0];
    size_t i = 0;
    while (i < n && strcmp(argv[optind], lg_scenario_names[i]) != 0)
        i++;
    if (i == n)
        lg_fatal(app, "unknown scenario '%s' (see --help)", argv[optind]);
    app->o.scenario = (lg_scenario)i;
    if (app->o.site_size < 0) /* tags only when asked for at registration */
        app->o.site_size = app->o.scenario == LG_REGISTER ? 0 : 100;
    check_args(app);
}
