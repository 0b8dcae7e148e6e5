/* The agent's DPS provisioning: the stored assignment, first-boot registration (libiotdm's DPS
 * client; limpet for a TPM, whose key must end up inside the TPM) and the retry policy. */
#include "agent/provision.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/atomic_file.h"
#include "common/iso8601.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "iotdm/provision.h"

#define LIMPET_TIMEOUT_MS 180000 /* limpet gives up after 120 s on its own */
#define LIMPET_OUTPUT_MAX 4096
#define STOP_CHECK_MS     200

static const char *method_of(const agent_config *cfg)
{
    if (cfg->tpm_slot >= 0)
        return "tpm";
    if (cfg->cert_file[0])
        return "x509";
    return cfg->dps_group_key[0] ? "groupKey" : "symmetricKey";
}

static void assignment_path(const agent_config *cfg, char *dir, size_t dcap, char *file,
                            size_t fcap)
{
    snprintf(dir, dcap, "%s/%s", cfg->state_dir, AGENT_IDENTITY_DIR);
    snprintf(file, fcap, "%s/%s/%s", cfg->state_dir, AGENT_IDENTITY_DIR, AGENT_ASSIGNMENT_FILE);
}

/* ---- the stored assignment ---------------------------------------------------------------- */

static bool copy_field(json_t *j, const char *key, char *out, size_t cap)
{
    const char *v = json_string_value(json_object_get(j, key));
    if (!v || !*v || strlen(v) >= cap)
        return false;
    snprintf(out, cap, "%s", v);
    return true;
}

/* The stored assignment, if there is one and it is for the registration configured now (a changed
 * scope, registration id or attestation means another identity: register again). */
static bool load(const agent_config *cfg, agent_assignment *a)
{
    char dir[600], path[700];
    assignment_path(cfg, dir, sizeof dir, path, sizeof path);
    if (access(path, F_OK) != 0)
        return false;
    json_error_t err;
    json_t *j = json_load_file(path, 0, &err);
    memset(a, 0, sizeof *a);
    bool ok = json_is_object(j) && copy_field(j, "method", a->method, sizeof a->method) &&
              copy_field(j, "idScope", a->id_scope, sizeof a->id_scope) &&
              copy_field(j, "registrationId", a->registration_id, sizeof a->registration_id) &&
              copy_field(j, "assignedHub", a->assigned_hub, sizeof a->assigned_hub) &&
              copy_field(j, "deviceId", a->device_id, sizeof a->device_id);
    if (ok)
        copy_field(j, "provisionedAt", a->provisioned_at, sizeof a->provisioned_at);
    json_decref(j);
    if (!ok) {
        log_warn("agent", "the stored DPS assignment %s is unreadable: registering again", path);
        return false;
    }
    if (strcmp(a->method, method_of(cfg)) != 0 || strcasecmp(a->id_scope, cfg->dps_id_scope) ||
        (cfg->dps_registration_id[0] &&
         strcasecmp(a->registration_id, cfg->dps_registration_id) != 0)) {
        log_info("agent",
                 "the stored DPS assignment is for another registration (%s %s in scope %s): "
                 "registering again",
                 a->method, a->registration_id, a->id_scope);
        return false;
    }
    return true;
}

static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* Crash-safe: replaced all or nothing (atomic_file_write). */
static iotdm_result save(const agent_config *cfg, const agent_assignment *a)
{
    char dir[600], path[700], err[900];
    assignment_path(cfg, dir, sizeof dir, path, sizeof path);
    /* On first boot the state directory may not exist yet: provisioning comes before the rest. */
    if ((mkdir(cfg->state_dir, 0700) != 0 && errno != EEXIST) ||
        (mkdir(dir, 0700) != 0 && errno != EEXIST))
        return -errno;
    json_t *j = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "version", 1, "method",
                          a->method, "endpoint", cfg->dps_endpoint, "idScope", a->id_scope,
                          "registrationId", a->registration_id, "assignedHub", a->assigned_hub,
                          "deviceId", a->device_id, "provisionedAt", a->provisioned_at);
    /* JSON_INDENT leaves out the last newline; the file is meant to be read by people too. */
    char *text = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
    json_decref(j);
    size_t len = text ? strlen(text) : 0;
    char *line = text ? realloc(text, len + 2) : NULL;
    if (!line) {
        free(text);
        return -ENOMEM;
    }
    memcpy(line + len, "\n", 2);
    iotdm_result r = atomic_file_write(path, line, len + 1, 0600, err, sizeof err);
    free(line);
    if (r < 0)
        log_error("agent", "%s", err);
    return r;
}

void agent_assignment_forget(const agent_config *cfg)
{
    char dir[600], path[700];
    assignment_path(cfg, dir, sizeof dir, path, sizeof path);
    if (unlink(path) == 0) {
        sync_dir(dir);
        log_info("agent", "dropped the stored DPS assignment");
    } else if (errno != ENOENT) {
        log_warn("agent", "cannot remove %s: %s", path, strerror(errno));
    }
}

/* The assignment becomes the identity the hub client uses. */
static iotdm_result apply(agent_config *cfg, const agent_assignment *a)
{
    snprintf(cfg->hub_host, sizeof cfg->hub_host, "%s", a->assigned_hub);
    snprintf(cfg->device_id, sizeof cfg->device_id, "%s", a->device_id);
    memset(cfg->device_key, 0, sizeof cfg->device_key);
    if (!strcmp(a->method, "symmetricKey"))
        snprintf(cfg->device_key, sizeof cfg->device_key, "%s", cfg->dps_key);
    else if (!strcmp(a->method, "groupKey"))
        return iotdm_provision_derive_key(cfg->dps_group_key, a->registration_id, cfg->device_key,
                                          sizeof cfg->device_key);
    /* x509: cert_file and key_file as configured; tpm: the slot holds URI and key. */
    return IOTDM_OK;
}

/* ---- registering -------------------------------------------------------------------------- */

static void log_bridge(void *ctx, iotdm_log_level level, const char *message)
{
    (void)ctx;
    static const log_level map[] = {LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG};
    LOG_AT(map[level], "iotdm", "%s", message);
}

typedef struct {
    agent_stop_fn stop;
    void *ctx;
} stopper;

static bool cancelled(void *ctx)
{
    stopper *s = ctx;
    return s->stop && s->stop(s->ctx);
}

static iotdm_result register_mqtt(const agent_config *cfg, stopper *st, agent_assignment *a,
                                  char *err, size_t cap)
{
    /* The PnP convention: DPS (and a custom allocation policy) learns the model id. */
    json_t *p = json_pack("{s:s}", "modelId", cfg->model_id);
    char *payload = p ? json_dumps(p, JSON_COMPACT) : NULL;
    json_decref(p);
    iotdm_provision_config pc = {
        .struct_size = sizeof(iotdm_provision_config),
        .endpoint = cfg->dps_endpoint,
        .port = cfg->dps_port,
        .id_scope = cfg->dps_id_scope,
        .registration_id = cfg->dps_registration_id[0] ? cfg->dps_registration_id : NULL,
        .symmetric_key = cfg->dps_key[0] ? cfg->dps_key : NULL,
        .group_key = cfg->dps_group_key[0] ? cfg->dps_group_key : NULL,
        .cert_file = cfg->cert_file[0] ? cfg->cert_file : NULL,
        .key_file = cfg->key_file[0] ? cfg->key_file : NULL,
        .ca_file = cfg->ca_file[0] ? cfg->ca_file : NULL,
        .payload_json = payload,
        .timeout_s = AGENT_DPS_TIMEOUT_S,
        .log = log_bridge,
        .log_level = log_enabled(LOG_LVL_DEBUG) ? IOTDM_LOG_DEBUG : IOTDM_LOG_INFO,
        .cancel = cancelled,
        .cancel_ctx = st,
    };
    iotdm_provision_result res;
    iotdm_result r = iotdm_provision_register(&pc, &res);
    free(payload);
    if (r == IOTDM_OK) {
        snprintf(a->registration_id, sizeof a->registration_id, "%s", res.registration_id);
        snprintf(a->assigned_hub, sizeof a->assigned_hub, "%s", res.assigned_hub);
        snprintf(a->device_id, sizeof a->device_id, "%s", res.device_id);
    } else {
        snprintf(err, cap, "%s", res.error);
    }
    iotdm_provision_result_deinit(&res);
    return r;
}

/* limpet beside the agent (as installed), else on PATH; or the configured one. */
static void limpet_path(const agent_config *cfg, char *out, size_t cap)
{
    if (cfg->limpet[0]) {
        snprintf(out, cap, "%s", cfg->limpet);
        return;
    }
    char self[512];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        snprintf(out, cap, "%s/limpet", dirname(self));
        if (access(out, X_OK) == 0)
            return;
    }
    snprintf(out, cap, "limpet");
}

static void append(char *buf, size_t *len, const char *p, size_t n)
{
    size_t room = LIMPET_OUTPUT_MAX - 1 - *len;
    if (n > room)
        n = room;
    memcpy(buf + *len, p, n);
    *len += n;
    buf[*len] = '\0';
}

/* Runs argv, collecting stdout and stderr (each at most LIMPET_OUTPUT_MAX), until it exits,
 * the time is up or the agent must stop. Returns the exit status, or -1. */
static int run_collect(char *const argv[], stopper *st, char *out, char *errout)
{
    int po[2], pe[2];
    out[0] = errout[0] = '\0';
    if (pipe2(po, O_CLOEXEC) != 0)
        return -1;
    if (pipe2(pe, O_CLOEXEC) != 0) {
        close(po[0]), close(po[1]);
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_RDONLY);
        if (null < 0 || dup2(null, 0) < 0 || dup2(po[1], 1) < 0 || dup2(pe[1], 2) < 0)
            _exit(127);
        execvp(argv[0], argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    if (pid < 0) {
        close(po[0]), close(pe[0]);
        return -1;
    }
    size_t olen = 0, elen = 0;
    struct pollfd fds[2] = {{.fd = po[0], .events = POLLIN}, {.fd = pe[0], .events = POLLIN}};
    int64_t deadline = time_mono_ms() + LIMPET_TIMEOUT_MS;
    bool killed = false;
    while (fds[0].fd >= 0 || fds[1].fd >= 0) {
        if (!killed && (cancelled(st) || time_mono_ms() >= deadline)) {
            kill(pid, SIGTERM);
            killed = true;
        }
        if (poll(fds, 2, STOP_CHECK_MS) < 0 && errno != EINTR)
            break;
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char chunk[512];
            ssize_t n = read(fds[i].fd, chunk, sizeof chunk);
            if (n > 0) {
                append(i ? errout : out, i ? &elen : &olen, chunk, (size_t)n);
            } else {
                close(fds[i].fd);
                fds[i].fd = -1;
            }
        }
    }
    for (int i = 0; i < 2; i++)
        if (fds[i].fd >= 0)
            close(fds[i].fd);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (killed)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The last non-empty line of text (cut in place): limpet says why there
 * ("limpet: dps-register: …"), after anything tpm2-tss may have printed. */
static const char *last_line(char *text)
{
    size_t n = strlen(text);
    while (n && (text[n - 1] == '\n' || text[n - 1] == '\r'))
        text[--n] = '\0';
    char *nl = strrchr(text, '\n');
    return nl ? nl + 1 : text;
}

/* TPM attestation is HTTPS-only (docs/protocol.md §7.10) and the hub key must be imported into the
 * TPM: limpet's dps-register does both and stores the assignment as the slot's URI. */
static iotdm_result register_tpm(const agent_config *cfg, stopper *st, agent_assignment *a,
                                 char *err, size_t cap)
{
    char exe[512], slot[8];
    limpet_path(cfg, exe, sizeof exe);
    snprintf(slot, sizeof slot, "%d", cfg->tpm_slot);
    char *argv[16];
    int n = 0;
    argv[n++] = exe;
    if (cfg->tpm_tcti[0]) {
        argv[n++] = "--tcti";
        argv[n++] = (char *)cfg->tpm_tcti;
    }
    argv[n++] = "--json";
    argv[n++] = slot;
    argv[n++] = "dps-register";
    argv[n++] = (char *)cfg->dps_endpoint;
    argv[n++] = (char *)cfg->dps_id_scope;
    if (cfg->ca_file[0]) {
        argv[n++] = "--ca-file";
        argv[n++] = (char *)cfg->ca_file;
    }
    argv[n] = NULL;
    setenv("TSS2_LOG", "all+NONE", 0); /* tpm2-tss would print its own warnings */
    log_info("agent", "registering TPM slot %d with DPS %s (id scope %s) through %s", cfg->tpm_slot,
             cfg->dps_endpoint, cfg->dps_id_scope, exe);
    char *out = malloc(LIMPET_OUTPUT_MAX), *errout = malloc(LIMPET_OUTPUT_MAX);
    iotdm_result r = IOTDM_E_INTERNAL;
    int status = out && errout ? run_collect(argv, st, out, errout) : -1;
    json_t *j = status == 0 ? json_loads(out, 0, NULL) : NULL;
    if (status == 0 && copy_field(j, "assignedHub", a->assigned_hub, sizeof a->assigned_hub) &&
        copy_field(j, "deviceId", a->device_id, sizeof a->device_id) &&
        copy_field(j, "registrationId", a->registration_id, sizeof a->registration_id)) {
        r = IOTDM_OK;
    } else if (cancelled(st)) {
        r = -ECANCELED;
        snprintf(err, cap, "provisioning cancelled");
    } else {
        const char *why = errout ? last_line(errout) : "";
        if (status == 0)
            snprintf(err, cap, "%s printed no assignment", exe);
        else if (status == 127)
            snprintf(err, cap, "%s (set limpet = PATH)", *why ? why : "cannot run limpet");
        else if (status < 0)
            snprintf(err, cap, "%s dps-register did not finish within %d s%s%s", exe,
                     LIMPET_TIMEOUT_MS / 1000, *why ? ": " : "", why);
        else
            snprintf(err, cap, "%s", *why ? why : "limpet dps-register failed");
        /* limpet's exit status does not tell a refusal from a network error: back off. A
         * missing limpet waits the longest, as a refusal does. */
        r = status == 127 ? IOTDM_E_NOT_FOUND : IOTDM_E_NOT_ONLINE;
    }
    json_decref(j);
    free(out);
    free(errout);
    return r;
}

/* ---- retry policy ------------------------------------------------------------------------- */

/* Sleeps ms in small steps; false when the agent must stop. */
static bool wait_ms(int64_t ms, stopper *st)
{
    int64_t until = time_mono_ms() + ms;
    while (time_mono_ms() < until) {
        if (cancelled(st))
            return false;
        int64_t left = until - time_mono_ms();
        usleep((useconds_t)(left < STOP_CHECK_MS ? left : STOP_CHECK_MS) * 1000);
    }
    return !cancelled(st);
}

/* Exponential from 5 s, up to 20 % shorter at random so that a fleet that lost DPS at once does not
 * come back at once; a refusal (wrong key, no enrollment, disabled) waits the longest at once:
 * retrying fast cannot change DPS's mind, an operator must. */
static int64_t next_wait(const agent_config *cfg, iotdm_result r, unsigned attempt, unsigned *seed)
{
    int64_t max = (int64_t)cfg->dps_retry_max_s * 1000;
    bool refused = r == IOTDM_E_UNAUTHORIZED || r == IOTDM_E_DISABLED || r == IOTDM_E_NOT_FOUND;
    int64_t w = AGENT_DPS_FIRST_RETRY_MS << (attempt < 16 ? attempt : 16);
    if (refused || w > max)
        w = max;
    return w - (int64_t)(rand_r(seed) % (unsigned)(w / 5 + 1));
}

iotdm_result agent_provision(agent_config *cfg, bool force, int64_t delay_ms, agent_stop_fn stop,
                             void *stop_ctx, agent_assignment *out)
{
    stopper st = {stop, stop_ctx};
    if (force) {
        agent_assignment_forget(cfg);
    } else if (load(cfg, out)) {
        log_info("agent", "using the stored DPS assignment: hub=%s device=%s (%s, since %s)",
                 out->assigned_hub, out->device_id, out->method,
                 out->provisioned_at[0] ? out->provisioned_at : "?");
        return apply(cfg, out);
    }
    unsigned seed = (unsigned)(time_now_ms() ^ getpid()), attempt = 0;
    int64_t wait = delay_ms;
    for (;;) {
        if (wait > 0 && attempt == 0)
            log_info("agent", "registering with DPS in %lld s", (long long)(wait + 999) / 1000);
        if (wait > 0 && !wait_ms(wait, &st))
            return -ECANCELED;
        memset(out, 0, sizeof *out);
        char err[600] = "";
        iotdm_result r = cfg->tpm_slot >= 0 ? register_tpm(cfg, &st, out, err, sizeof err)
                                            : register_mqtt(cfg, &st, out, err, sizeof err);
        if (r == IOTDM_OK) {
            snprintf(out->method, sizeof out->method, "%s", method_of(cfg));
            snprintf(out->id_scope, sizeof out->id_scope, "%s", cfg->dps_id_scope);
            iso8601_format_utc(time_now_ms(), out->provisioned_at, sizeof out->provisioned_at);
            log_info("agent", "provisioned through DPS: registration=%s hub=%s device=%s",
                     out->registration_id, out->assigned_hub, out->device_id);
            /* save() logged why; the identity works anyway. */
            if (save(cfg, out) < 0)
                log_warn("agent", "the DPS assignment is not stored: the next start registers "
                                  "again");
            return apply(cfg, out);
        }
        if (r == -ECANCELED)
            return r;
        if (r == IOTDM_E_MALFORMED) {
            log_error("agent", "DPS registration impossible: %s", err);
            return r;
        }
        wait = next_wait(cfg, r, attempt++, &seed);
        log_error("agent", "provisioning failed: %s; retrying in %lld s", err,
                  (long long)(wait + 999) / 1000);
    }
}
