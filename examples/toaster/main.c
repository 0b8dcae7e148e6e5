/* iotdm-toaster: a foreground terminal app that embeds libiotdm. One hub connection carries its
 * own telemetry and PnP component and the built-in DM capabilities (device information, reboot,
 * time), which change the system through iotdm-configd; it vetoes reboots while toasting. */
#include <curses.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/connstr.h"
#include "common/log.h"
#include "toaster.h"

#define REBOOT_DRAIN_MS 3000 /* after a simulated reboot: time to deliver the last reports */
#define MAX_SLEEP_MS    1000

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

int64_t toaster_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void usage(FILE *out)
{
    fputs(
        "Usage: iotdm-toaster --connection-string CS [options]\n"
        "\n"
        "A smart toaster on iotdm: its telemetry, its PnP component \"toaster\" and the device's\n"
        "management (reboot, time) share one hub connection. Reboots requested from the hub\n"
        "are refused while toasting; when idle you are asked \"Allow reboot? [y/n]\".\n"
        "\n"
        "  --connection-string CS  HostName=...;DeviceId=...;SharedAccessKey=...\n"
        "  --ca-file FILE          trust anchors for the hub (default: the system's)\n"
        "  --state-dir DIR         outbox and DM state (default ./toaster-state)\n"
        "  --configd-socket PATH   iotdm-configd's socket (/run/iotdm/configd.sock)\n"
        "  --log-file FILE         where log lines go (default STATE_DIR/toaster.log)\n"
        "  --prompt-timeout S      an unanswered reboot prompt means no after S seconds (30)\n"
        "  -h, --help              this text\n"
        "\n"
        "Keys: t toast, q quit, y/n answer the reboot prompt.\n",
        out);
}

/* Returns 0, 1 for --help, or 2 for a usage error (printed). */
static int parse_options(toaster_app *app, int argc, char **argv)
{
    static const struct option opts[] = {
        {"connection-string", required_argument, NULL, 'c'},
        {"ca-file", required_argument, NULL, 'a'},
        {"state-dir", required_argument, NULL, 's'},
        {"configd-socket", required_argument, NULL, 'S'},
        {"log-file", required_argument, NULL, 'l'},
        {"prompt-timeout", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    toaster_options *o = &app->opt;
    *o = (toaster_options){.state_dir = "toaster-state",
                           .configd_socket = "/run/iotdm/configd.sock",
                           .prompt_timeout_s = 30};
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            o->connection_string = optarg;
            break;
        case 'a':
            o->ca_file = optarg;
            break;
        case 's':
            o->state_dir = optarg;
            break;
        case 'S':
            o->configd_socket = optarg;
            break;
        case 'l':
            o->log_file = optarg;
            break;
        case 'p':
            o->prompt_timeout_s = atoi(optarg);
            break;
        case 'h':
            usage(stdout);
            return 1;
        default:
            return 2;
        }
    }
    const char *cs = o->connection_string;
    if (optind < argc || !cs || !connstr_get(cs, "HostName", app->host, sizeof app->host) ||
        !connstr_get(cs, "DeviceId", app->device_id, sizeof app->device_id) ||
        !connstr_get(cs, "SharedAccessKey", app->device_key, sizeof app->device_key)) {
        fprintf(stderr, "iotdm-toaster: --connection-string with HostName, DeviceId and "
                        "SharedAccessKey is required (see --help)\n");
        return 2;
    }
    if (o->prompt_timeout_s < 1) {
        fprintf(stderr, "iotdm-toaster: --prompt-timeout must be at least 1 second\n");
        return 2;
    }
    return 0;
}

/* The terminal belongs to ncurses, so everything that would print (libiotdm through our callback,
 * the capabilities through the daemon logger, sanitizers) goes to the log file instead. */
static int redirect_stderr(toaster_app *app, char *path, size_t cap)
{
    if (mkdir(app->opt.state_dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "iotdm-toaster: cannot create %s: %s\n", app->opt.state_dir,
                strerror(errno));
        return -1;
    }
    snprintf(path, cap, "%s", app->opt.log_file ? app->opt.log_file : "");
    if (!path[0])
        snprintf(path, cap, "%s/toaster.log", app->opt.state_dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0 || dup2(fd, STDERR_FILENO) < 0) {
        fprintf(stderr, "iotdm-toaster: cannot open the log file %s: %s\n", path, strerror(errno));
        return -1;
    }
    close(fd);
    return 0;
}

static void log_bridge(void *ctx, iotdm_log_level level, const char *message)
{
    (void)ctx;
    static const log_level map[] = {LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG};
    LOG_AT(map[level], "iotdm", "%s", message);
}

static void on_connection(void *ctx, iotdm_connection_state state, const char *reason)
{
    toaster_app *app = ctx;
    app->conn = state;
    snprintf(app->conn_reason, sizeof app->conn_reason, "%s",
             state == IOTDM_CONNECTION_CONNECTED ? ""
             : reason                            ? reason
                                                 : "");
    log_info("toaster", "connection state=%d %s", (int)state, reason ? reason : "");
    if (state == IOTDM_CONNECTION_CONNECTED) {
        cap_set_report_static(&app->caps);
        app->dm.refresh = true; /* the boot time may have moved (a reboot) */
    }
}

static void reboot_happened(void *ctx)
{
    toaster_app *app = ctx;
    log_info("toaster", "simulated reboot: leaving once the outbox is drained");
    toaster_status(app, "simulated reboot: the device restarts, and so does the toaster");
    app->exit_at_ms = toaster_mono_ms() + REBOOT_DRAIN_MS;
}

static iotdm_result start_client(toaster_app *app)
{
    iotdm_client_config cc = {
        .struct_size = sizeof(iotdm_client_config),
        .host = app->host,
        .device_id = app->device_id,
        .device_key = app->device_key,
        .ca_file = app->opt.ca_file,
        .model_id = TOASTER_MODEL_ID,
        .state_dir = app->opt.state_dir,
        .log = log_bridge,
        .on_connection = on_connection,
        .connection_ctx = app,
    };
    iotdm_result r = iotdm_client_new(&cc, &app->client);
    if (r != IOTDM_OK)
        return r;
    iotdm_client_set_reboot_veto(app->client, toaster_reboot_veto, app);
    agent_configd_init(&app->configd, app->opt.configd_socket);
    app->env = (cap_env){
        .client = app->client,
        .configd = toaster_configd_call,
        .configd_ctx = app,
        .configd_fds = toaster_configd_call_fds,
        .now_ms = wall_ms,
        .reboot_happened = reboot_happened,
        .agent_ctx = app,
        .state_dir = app->opt.state_dir,
        .sw_version = "iotdm-toaster " TOASTER_VERSION,
    };
    /* What a foreground appliance needs; the rest of device management is the agent's job. */
    cap_selection which = {.device_info = true, .reboot = true, .time = true};
    r = cap_set_start(&app->caps, &app->env, &which);
    return r == IOTDM_OK ? toaster_model_start(app) : r;
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static int wait_ms(toaster_app *app, int max_ms, bool nested, int64_t now)
{
    int64_t t = max_ms;
    int client_t = iotdm_client_next_timeout_ms(app->client);
    if (client_t >= 0)
        t = min64(t, client_t);
    t = min64(t, toaster_model_next_due_ms(app) - now);
    t = min64(t, toaster_dm_next_due_ms(app) - now);
    if (!nested) {
        int64_t due = cap_set_next_due_ms(&app->caps);
        if (due != INT64_MAX)
            t = min64(t, due - wall_ms(NULL));
    }
    return t < 0 ? 0 : (int)t;
}

int toaster_loop_once(toaster_app *app, int max_ms, bool nested)
{
    struct pollfd p[2] = {{.fd = iotdm_client_fd(app->client), .events = POLLIN},
                          {.fd = STDIN_FILENO, .events = POLLIN}};
    int timeout = app->more_input ? 0 : wait_ms(app, max_ms, nested, toaster_mono_ms());
    if (poll(p, 2, timeout) < 0 && errno != EINTR)
        app->quit = true;
    int key = getch();
    app->more_input = key != ERR; /* ncurses may hold more keys it already read */
    app->in_client_process = true;
    iotdm_result r = iotdm_client_process(app->client);
    app->in_client_process = false;
    if (r < 0)
        toaster_status(app, "libiotdm: %s", iotdm_result_message(r));
    if (!nested)
        cap_set_run_due(&app->caps, wall_ms(NULL));
    int64_t now = toaster_mono_ms();
    toaster_model_step(app, now);
    if (now >= toaster_dm_next_due_ms(app))
        toaster_dm_refresh(app, now);
    if (stop_requested)
        app->quit = true;
    toaster_screen_draw(app);
    return key == ERR ? -1 : key;
}

static bool rebooted_and_drained(toaster_app *app)
{
    if (!app->exit_at_ms)
        return false;
    iotdm_outbox_stats s;
    iotdm_client_outbox_stats(app->client, &s);
    return s.reported_pending == 0 || toaster_mono_ms() >= app->exit_at_ms;
}

static void run(toaster_app *app)
{
    toaster_status(app, "ready: press t to toast");
    while (!app->quit && !rebooted_and_drained(app)) {
        int key = toaster_loop_once(app, MAX_SLEEP_MS, false);
        if (key == 'q' || key == 'Q')
            app->quit = true;
        else if ((key == 't' || key == 'T') && toaster_start_toasting(app, "key t") != IOTDM_OK)
            toaster_status(app, "already toasting");
        else if (key == 'y' || key == 'n')
            toaster_status(app, "nothing to answer right now");
    }
}

int main(int argc, char **argv)
{
    static toaster_app app;
    int rc = parse_options(&app, argc, argv);
    if (rc)
        return rc == 1 ? 0 : 2;
    char log_path[1024];
    if (redirect_stderr(&app, log_path, sizeof log_path) < 0)
        return 1;
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    log_info("toaster", "starting version=%s device=%s hub=%s", TOASTER_VERSION, app.device_id,
             app.host);
    iotdm_result r = start_client(&app);
    if (r == IOTDM_OK) {
        toaster_screen_open();
        toaster_dm_refresh(&app, toaster_mono_ms());
        run(&app);
        toaster_screen_close();
    } else {
        fprintf(stdout, "iotdm-toaster: cannot start: %s (details in %s)\n",
                iotdm_result_message(r), log_path);
    }
    if (app.exit_at_ms)
        printf("\niotdm-toaster: the device rebooted (simulated); start the toaster again\n");
    cap_set_stop(&app.caps);
    iotdm_client_free(app.client);
    agent_configd_deinit(&app.configd);
    log_info("toaster", "stopped");
    return r == IOTDM_OK ? 0 : 1;
}
