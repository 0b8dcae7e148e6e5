/* iotdm-agent: the device-management background app. libiotdm plus every built-in capability,
 * with iotdm-configd making the changes to the system. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/config.h"
#include "agent/configd_link.h"
#include "agent/provision.h"
#include "agent/tpm_auth.h"
#include "agent/transfer_client.h"
#include "capabilities/capabilities.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "iotdm/iotdm.h"

#define AGENT_VERSION   "0.1.0"
#define MAX_SLEEP_MS    1000 /* schedules are checked at least this often */
#define REBOOT_DRAIN_MS 3000 /* after a simulated reboot: time to flush the outbox */
/* dm*reprovision: time for the method's answer to leave before the client goes. */
#define REPROVISION_DRAIN_MS 1000
/* A hub refusal re-provisions at once the first time; again within this many seconds of
 * connecting, it waits (doubling from REFUSAL_WAIT_MS up to dps-retry-max): DPS may keep
 * assigning an identity the hub keeps refusing, and that must not become a hot loop. */
#define REFUSAL_STABLE_MS 60000
#define REFUSAL_WAIT_MS   15000

static volatile sig_atomic_t stop_requested;

typedef struct {
    agent_config cfg;
    iotdm_client *client;
    agent_configd configd;
    agent_configd configd_worker; /* the capabilities' worker has its own line to configd */
    agent_transfers transfer;
    cap_env env;
    cap_set caps;
    int64_t exit_at_ms; /* 0: running; else exit once drained or at this time */
    const char *test_clock_file;
    /* DPS (provision.c): the identity comes from the assignment */
    bool dps;
    int64_t reprovision_at;   /* monotonic ms: leave the hub and register again; 0: no */
    bool reprovision_refused; /* because the hub refused the identity (else: the command) */
    unsigned refusals;        /* hub refusals answered by re-provisioning, in a row */
    int64_t connected_since;  /* monotonic ms; 0 while not connected */
    agent_assignment assignment;
} agent;

typedef enum { RUN_STOP, RUN_REPROVISION } run_outcome;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void usage(FILE *out)
{
    fprintf(
        out,
        "Usage: iotdm-agent [--config FILE] [--SETTING VALUE ...]\n"
        "\n"
        "The iotdm device-management agent: connects the device to its hub (Azure IoT Hub\n"
        "or iotdm-hub), applies desired configuration through iotdm-configd and reports\n"
        "the device's state. Logs go to stderr.\n"
        "\n"
        "Settings (in the config file as key = value; default file %s):\n"
        "  connection-string CS   HostName=…;DeviceId=…;SharedAccessKey=… (or the next three)\n"
        "  hub-host NAME          the hub's host name\n"
        "  device-id ID           this device's id\n"
        "  device-key KEY | device-key-file FILE   base64 symmetric key (SAS)\n"
        "  cert-file FILE, key-file FILE           X.509 client certificate instead\n"
        "  tpm-slot N             TPM instead: hub, device id and key from limpet slot N\n"
        "  tpm-tcti TCTI          TPM access (default $TPM2TOOLS_TCTI, else /dev/tpmrm0)\n"
        "  hub-port PORT          MQTT over TLS port (8883)\n"
        "  keepalive SECONDS      MQTT keep-alive, 5 to 1177 (240)\n"
        "  ca-file FILE           trust anchors for the hub (default: the system's)\n"
        "  download-ca-file FILE  trust anchors for https downloads (default: the system's)\n"
        "  hub-https-port PORT    the hub's HTTPS port for file uploads (443)\n"
        "  transfer-helper PATH   iotdm-transfer, run for each download and upload\n"
        "                         (default: beside iotdm-agent)\n"
        "  state-dir DIR          durable state and outbox (/var/lib/iotdm)\n"
        "  configd-socket PATH    iotdm-configd's socket (/run/iotdm/configd.sock)\n"
        "  capabilities LIST      all, or any of deviceInformation, reboot, factoryReset, time,\n"
        "                         certificates, apps, updates, logCollectors, wifi,\n"
        "                         telemetryLevel\n"
        "  time-service-enabled, time-service-started (true|false),\n"
        "  time-service-priority (local|remote)   local time-service settings\n"
        "  reboot-inhibit-file F  while F exists, reboots are vetoed (/run/iotdm/reboot-inhibit)\n"
        "  log-level LEVEL        error, warn, info, debug\n"
        "  -h, --help             this text\n"
        "\n"
        "Provisioning through DPS instead of a fixed hub and device id (no connection-string,\n"
        "hub-host, device-id or device-key then): on first start the agent registers, stores\n"
        "the assignment in STATE-DIR/identity/provisioning.json and connects; later starts\n"
        "reuse it. It registers again on dm*reprovision or when the hub refuses the identity.\n"
        "  dps-id-scope SCOPE     the DPS ID scope (turns DPS on)\n"
        "  dps-endpoint HOST      DPS host (global.azure-devices-provisioning.net)\n"
        "  dps-port PORT          DPS MQTT over TLS port (8883)\n"
        "  dps-registration-id ID the registration id (X.509: default the certificate's CN;\n"
        "                         TPM: from the endorsement key, not set)\n"
        "  dps-key-file FILE      individual enrollment: its symmetric key\n"
        "  dps-group-key-file FILE  group enrollment: the group key (device key derived)\n"
        "  cert-file, key-file    X.509 enrollment: the device certificate\n"
        "  tpm-slot N             TPM enrollment: limpet registers over HTTPS into slot N\n"
        "  limpet PATH            limpet for TPM registration (default: beside iotdm-agent,\n"
        "                         else on PATH)\n"
        "  dps-retry-max SECONDS  longest wait between DPS attempts (300)\n"
        "  ca-file is also DPS's trust anchors.\n"
        "\n"
        "SIGTERM stops it; queued reports stay in the outbox for the next start.\n",
        AGENT_DEFAULT_CONFIG);
}

static void log_bridge(void *ctx, iotdm_log_level level, const char *message)
{
    (void)ctx;
    static const log_level map[] = {LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG};
    LOG_AT(map[level], "iotdm", "%s", message);
}

static void on_connection(void *ctx, iotdm_connection_state state, const char *reason)
{
    agent *a = ctx;
    static const char *const names[] = {"disconnected", "connecting", "connected", "refused"};
    log_info("agent", "connection %s: %s", names[state], reason ? reason : "");
    int64_t now = time_mono_ms();
    if (state == IOTDM_CONNECTION_CONNECTED) {
        a->connected_since = now;
        cap_set_report_static(&a->caps);
        return;
    }
    if (a->connected_since && now - a->connected_since >= REFUSAL_STABLE_MS)
        a->refusals = 0;
    a->connected_since = 0;
    /* Without DPS the client keeps retrying slowly by itself: today's behaviour. */
    if (state == IOTDM_CONNECTION_REFUSED && a->dps && !a->reprovision_at) {
        log_warn("agent", "the hub refused device %s (%s): registering with DPS again",
                 a->cfg.device_id, reason ? reason : "");
        a->reprovision_at = now;
        a->reprovision_refused = true;
    }
}

/* cap_env.reprovision, for dm*reprovision. */
static iotdm_result reprovision_requested(void *ctx, char *err, size_t err_cap)
{
    agent *a = ctx;
    if (!a->dps) {
        snprintf(err, err_cap,
                 "this device is not provisioned through DPS (no dps-id-scope in its "
                 "configuration)");
        return IOTDM_E_UNSUPPORTED;
    }
    if (a->reprovision_at) {
        snprintf(err, err_cap, "a re-provisioning is already under way");
        return IOTDM_E_EXISTS;
    }
    log_info("agent", "dm*reprovision: registering with DPS again");
    a->reprovision_at = time_mono_ms() + REPROVISION_DRAIN_MS;
    a->reprovision_refused = false;
    return IOTDM_OK;
}

/* The scheduler's clock: the real one, or in tests a file holding epoch milliseconds. */
static int64_t scheduler_now(void *ctx)
{
    agent *a = ctx;
    if (a->test_clock_file) {
        FILE *f = fopen(a->test_clock_file, "r");
        long long v = 0;
        bool ok = f && fscanf(f, "%lld", &v) == 1;
        if (f)
            fclose(f);
        if (ok)
            return v;
    }
    return time_now_ms();
}

static void reboot_happened(void *ctx)
{
    agent *a = ctx;
    log_info("agent", "simulated reboot: exiting once the outbox is drained");
    a->exit_at_ms = time_mono_ms() + REBOOT_DRAIN_MS;
}

/* The agent is the device's background app: its veto is an inhibit file that other software on
 * the device (an update in progress, a kiosk app mid-transaction) can create. */
static bool reboot_allowed(void *ctx)
{
    agent *a = ctx;
    if (access(a->cfg.reboot_inhibit_file, F_OK) == 0) {
        log_info("agent", "reboot vetoed: %s exists", a->cfg.reboot_inhibit_file);
        return false;
    }
    return true;
}

static iotdm_result start(agent *a)
{
    if (mkdir(a->cfg.state_dir, 0700) != 0 && errno != EEXIST) {
        log_error("agent", "cannot create state directory %s: %s", a->cfg.state_dir,
                  strerror(errno));
        return -errno;
    }
    iotdm_client_config cc = {
        .struct_size = sizeof(iotdm_client_config),
        .host = a->cfg.hub_host,
        .port = a->cfg.hub_port,
        .device_id = a->cfg.device_id,
        .device_key = a->cfg.device_key[0] ? a->cfg.device_key : NULL,
        .cert_file = a->cfg.cert_file[0] ? a->cfg.cert_file : NULL,
        .key_file = a->cfg.key_file[0] ? a->cfg.key_file : NULL,
        .ca_file = a->cfg.ca_file[0] ? a->cfg.ca_file : NULL,
        .model_id = a->cfg.model_id,
        .state_dir = a->cfg.state_dir,
        .keepalive_s = a->cfg.keepalive_s,
        .log = log_bridge,
        .log_level = log_enabled(LOG_LVL_DEBUG) ? IOTDM_LOG_DEBUG : IOTDM_LOG_INFO,
        .on_connection = on_connection,
        .connection_ctx = a,
    };
    if (a->cfg.tpm_slot >= 0 && agent_tpm_auth(&a->cfg, &cc) < 0)
        return IOTDM_E_UNAUTHORIZED;
    iotdm_result r = iotdm_client_new(&cc, &a->client);
    if (r < 0) {
        log_error("agent", "cannot create the hub client: %s", iotdm_result_message(r));
        return r;
    }
    iotdm_client_set_reboot_veto(a->client, reboot_allowed, a);
    agent_transfers_init(&a->transfer, a->cfg.transfer_helper, a->cfg.state_dir);
    a->transfer.download_ca_file = a->cfg.download_ca_file;
    a->transfer.hub_host = a->cfg.hub_host;
    a->transfer.hub_https_port = a->cfg.hub_https_port;
    a->transfer.hub_ca_file = a->cfg.ca_file;
    a->transfer.device_id = a->cfg.device_id;
    /* Uploads use the connection's own credentials: SAS tokens the client signs (device key or
     * TPM slot), or the X.509 certificate. */
    a->transfer.client = a->client;
    a->transfer.cert_file = a->cfg.cert_file;
    a->transfer.key_file = a->cfg.key_file;
    agent_configd_init(&a->configd, a->cfg.configd_socket);
    agent_configd_init(&a->configd_worker, a->cfg.configd_socket);
    /* Downloads and installs run on the worker, so that this thread keeps serving the hub. */
    cap_worker *worker = NULL;
    r = cap_worker_start(&worker);
    if (r < 0) {
        log_error("agent", "cannot start the capabilities' worker: %s", iotdm_result_message(r));
        return r;
    }
    a->env = (cap_env){
        .client = a->client,
        .configd = agent_configd_call,
        .configd_ctx = &a->configd,
        .configd_worker_ctx = &a->configd_worker,
        .worker = worker,
        .configd_fds = agent_configd_call_fds,
        .download = agent_transfer_download,
        .upload = agent_transfer_upload,
        .transfer_ctx = &a->transfer,
        .now_ms = scheduler_now,
        .clock_ctx = a,
        .reboot_happened = reboot_happened,
        .reprovision = reprovision_requested,
        .agent_ctx = a,
        .state_dir = a->cfg.state_dir,
        .sw_version = "iotdm-agent " AGENT_VERSION,
    };
    a->env.local_time_service.present = a->cfg.time_service_local;
    a->env.local_time_service.enabled = a->cfg.time_service_enabled;
    a->env.local_time_service.started = a->cfg.time_service_started;
    a->env.local_time_service.priority = a->cfg.time_service_priority;
    return cap_set_start(&a->caps, &a->env, &a->cfg.capabilities);
}

static int timeout_ms(agent *a)
{
    int64_t t = MAX_SLEEP_MS;
    int client_t = iotdm_client_next_timeout_ms(a->client);
    if (client_t >= 0 && client_t < t)
        t = client_t;
    int64_t due = cap_set_next_due_ms(&a->caps);
    int64_t now = scheduler_now(a);
    if (due != INT64_MAX)
        t = due <= now ? 0 : (due - now < t ? due - now : t);
    return (int)t;
}

static bool should_exit(agent *a)
{
    if (stop_requested)
        return true;
    if (!a->exit_at_ms)
        return false;
    iotdm_outbox_stats s;
    iotdm_client_outbox_stats(a->client, &s);
    return s.reported_pending == 0 || time_mono_ms() >= a->exit_at_ms;
}

static run_outcome run(agent *a)
{
    struct pollfd pfd = {.fd = iotdm_client_fd(a->client), .events = POLLIN};
    while (!should_exit(a)) {
        int t = timeout_ms(a);
        if (a->reprovision_at) {
            int64_t left = a->reprovision_at - time_mono_ms();
            if (left <= 0)
                return RUN_REPROVISION;
            t = left < t ? (int)left : t;
        }
        int n = poll(&pfd, 1, t);
        if (n < 0 && errno != EINTR) {
            log_error("agent", "poll: %s", strerror(errno));
            break;
        }
        iotdm_result r = iotdm_client_process(a->client);
        if (r < 0) {
            log_error("agent", "libiotdm: %s", iotdm_result_message(r));
            break;
        }
        cap_set_run_due(&a->caps, scheduler_now(a));
    }
    return RUN_STOP;
}

/* Everything start() made; the agent may start again (after re-provisioning). */
static void stop_all(agent *a)
{
    /* The worker first: its job may still report through the client. A stalled download is cut
     * short; its value stays saved and is applied at the next start. */
    cap_worker_stop(a->env.worker, agent_transfers_cancel, &a->transfer);
    a->env.worker = NULL;
    cap_set_stop(&a->caps);
    iotdm_client_free(a->client);
    a->client = NULL;
    agent_configd_deinit(&a->configd);
    agent_configd_deinit(&a->configd_worker);
    /* The TPM must be free: limpet may be about to register through it. */
    agent_tpm_auth_deinit();
}

static bool stop_now(void *ctx)
{
    (void)ctx;
    return stop_requested != 0;
}

/* The wait before registering again after the hub refused the identity. */
static int64_t refusal_wait_ms(agent *a)
{
    unsigned n = a->refusals++;
    if (n == 0)
        return 0;
    int64_t w = (int64_t)REFUSAL_WAIT_MS << (n - 1 < 16 ? n - 1 : 16);
    int64_t max = (int64_t)a->cfg.dps_retry_max_s * 1000;
    return w < max ? w : max;
}

/* Connects with the configured identity, or DPS's: until stopped, re-provisioning whenever the
 * hub refuses the identity or dm*reprovision asks. Returns the exit status. */
static int serve(agent *a)
{
    bool force = false;
    int64_t delay = 0;
    for (;;) {
        if (a->dps) {
            iotdm_result r = agent_provision(&a->cfg, force, delay, stop_now, a, &a->assignment);
            if (r == -ECANCELED)
                return 0;
            if (r < 0)
                return 1;
        }
        log_info("agent", "starting version=%s device=%s hub=%s:%u", AGENT_VERSION,
                 a->cfg.device_id, a->cfg.hub_host, a->cfg.hub_port);
        a->reprovision_at = 0;
        iotdm_result r = start(a);
        run_outcome outcome = RUN_STOP;
        if (r == IOTDM_OK)
            outcome = run(a);
        bool refused = a->reprovision_refused;
        stop_all(a);
        /* An emptied TPM slot (a cleared TPM) is a refusal too: DPS can fill it again. */
        if (r == IOTDM_E_UNAUTHORIZED && a->dps && a->cfg.tpm_slot >= 0) {
            outcome = RUN_REPROVISION;
            refused = true;
        } else if (r < 0) {
            return 1;
        }
        if (outcome == RUN_STOP)
            return 0;
        force = true;
        delay = refused ? refusal_wait_ms(a) : 0;
    }
}

int main(int argc, char **argv)
{
    static agent a;
    agent_config_defaults(&a.cfg);
    char error[512];
    if (agent_config_load(&a.cfg, argc, argv, error, sizeof error) < 0) {
        if (!strcmp(error, "help")) {
            usage(stdout);
            return 0;
        }
        fprintf(stderr, "iotdm-agent: %s (see iotdm-agent --help)\n", error);
        return 2;
    }
    a.test_clock_file = getenv("IOTDM_TEST_CLOCK_FILE");
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    a.dps = agent_config_uses_dps(&a.cfg);
    int status = serve(&a);
    /* The keys lived in the config for re-provisioning; zero them on the way out. */
    memset(a.cfg.device_key, 0, sizeof a.cfg.device_key);
    memset(a.cfg.dps_key, 0, sizeof a.cfg.dps_key);
    memset(a.cfg.dps_group_key, 0, sizeof a.cfg.dps_group_key);
    log_info("agent", "stopped");
    return status;
}
