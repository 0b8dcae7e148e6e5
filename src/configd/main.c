/* iotdm-configd: the system configurator, the only iotdm process that changes the OS. */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "configd/backend.h"
#include "configd/config.h"
#include "configd/optable.h"
#include "configd/server.h"
#include "configd/sock.h"

static void usage(FILE *to)
{
    fprintf(to,
            "Usage: iotdm-configd [options]\n"
            "Serves iotdm's fixed table of system operations on a Unix socket (runs as root).\n\n"
            "  --config FILE       settings file (default " CFGD_DEFAULT_CONFIG ", if present)\n"
            "  --socket PATH       socket path (default " CFGD_DEFAULT_SOCKET ")\n"
            "  --socket-group G    group owning the socket (mode 0660)\n"
            "  --allow-uid U       allow this user (number or name); repeatable\n"
            "  --allow-gid G       allow members of this group (number or name); repeatable\n"
            "  --sandbox DIR       sandbox backend: files under DIR, reboots, services and\n"
            "                      programs recorded in DIR" CFGD_SANDBOX_JOURNAL "\n"
            "  --root DIR          real backend, but every path written and every program run\n"
            "                      is taken under DIR (for tests against a throwaway root)\n"
            "  --log-level L       error, warn, info (default) or debug\n"
            "  --help              this text\n"
            "Any setting of the file can also be given as --name VALUE ('-' for '_').\n"
            "uid 0 is always allowed. Operations:\n");
    size_t n;
    const cfgd_op *ops = cfgd_op_table(&n);
    for (size_t i = 0; i < n; i++)
        fprintf(to, "  %s\n", ops[i].name);
}

/* "--allow-uid" -> "allow_uid"; false for something that is not an option. */
static bool option_key(const char *arg, char *key, size_t cap, const char **out_inline)
{
    if (strncmp(arg, "--", 2) != 0 || !arg[2])
        return false;
    const char *eq = strchr(arg, '=');
    size_t n = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
    if (n >= cap)
        return false;
    for (size_t i = 0; i < n; i++)
        key[i] = arg[2 + i] == '-' ? '_' : arg[2 + i];
    key[n] = '\0';
    *out_inline = eq ? eq + 1 : NULL;
    return true;
}

/* The config file first (so flags override it wherever --config stands), then the flags. */
static int parse_args(cfgd_config *cfg, int argc, char **argv, char *error, size_t cap)
{
    const char *file = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            file = argv[++i];
        else if (strncmp(argv[i], "--config=", 9) == 0)
            file = argv[i] + 9;
    }
    if (!file && access(CFGD_DEFAULT_CONFIG, F_OK) == 0)
        file = CFGD_DEFAULT_CONFIG;
    if (file && cfgd_config_load(cfg, file, error, cap) < 0)
        return -1;
    for (int i = 1; i < argc; i++) {
        char key[64], msg[400];
        const char *value;
        if (!option_key(argv[i], key, sizeof key, &value)) {
            snprintf(error, cap, "unexpected argument '%s' (try --help)", argv[i]);
            return -1;
        }
        if (!value && i + 1 >= argc) {
            snprintf(error, cap, "%s needs a value", argv[i]);
            return -1;
        }
        if (!value)
            value = argv[++i];
        if (strcmp(key, "config") == 0)
            continue;
        if (cfgd_config_set(cfg, key, value, msg, sizeof msg) < 0) {
            snprintf(error, cap, "%s: %s", key, msg);
            return -1;
        }
    }
    return cfgd_config_finish(cfg, error, cap) < 0 ? -1 : 0;
}

/* The backend's root as an absolute, resolved path; the sandbox directory is created first. */
static int resolve_root(cfgd_config *cfg, char *error, size_t cap)
{
    if (!cfg->root[0])
        return 0;
    if (cfg->backend == CFGD_BACKEND_SANDBOX) {
        char abs[PATH_MAX];
        char cwd[PATH_MAX];
        if (cfg->root[0] != '/' && getcwd(cwd, sizeof cwd))
            snprintf(abs, sizeof abs, "%.2000s/%.2000s", cwd, cfg->root);
        else
            snprintf(abs, sizeof abs, "%s", cfg->root);
        int r = cfgd_fs_mkdirs(abs, 0755);
        if (r < 0) {
            snprintf(error, cap, "cannot create the sandbox %.300s: %s", cfg->root, strerror(-r));
            return -1;
        }
    }
    char real[PATH_MAX];
    if (!realpath(cfg->root, real)) {
        snprintf(error, cap, "root %.300s: %s", cfg->root, strerror(errno));
        return -1;
    }
    snprintf(cfg->root, sizeof cfg->root, "%s", strcmp(real, "/") == 0 ? "" : real);
    return 0;
}

/* Programs configd runs get /dev/null rather than whatever reuses a closed 0, 1 or 2. */
static void ensure_std_fds(void)
{
    for (int fd = 0; fd < 3; fd++) {
        if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) < 0)
            return;
    }
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    log_info("configd", "stopping on signal %d", (int)sig);
    event_base_loopexit(arg, NULL);
}

static int serve(cfgd_config *cfg, cfgd_backend *be)
{
    char error[512];
    struct event_base *base = event_base_new();
    if (!base)
        return 1;
    struct event *sigterm = evsignal_new(base, SIGTERM, on_signal, base);
    struct event *sigint = evsignal_new(base, SIGINT, on_signal, base);
    event_add(sigterm, NULL);
    event_add(sigint, NULL);
    cfgd_server *srv = cfgd_server_new(base, cfg, be, error, sizeof error);
    int rc = 1;
    if (!srv) {
        log_error("configd", "%s", error);
    } else {
        log_info("configd", "ready socket=%s backend=%s root=%s allowed_uids=%zu allowed_gids=%zu",
                 cfg->socket_path, be->vt->name, cfg->root[0] ? cfg->root : "/", cfg->n_allow_uids,
                 cfg->n_allow_gids);
        cfgd_notify_ready();
        event_base_dispatch(base);
        rc = 0;
    }
    cfgd_server_free(srv);
    event_free(sigterm);
    event_free(sigint);
    event_base_free(base);
    return rc;
}

int main(int argc, char **argv)
{
    static cfgd_config cfg; /* large (path lists); static keeps it off the stack */
    char error[512];
    cfgd_config_defaults(&cfg);
    int r = parse_args(&cfg, argc, argv, error, sizeof error);
    if (r > 0) {
        usage(stdout);
        return 0;
    }
    if (r < 0 || resolve_root(&cfg, error, sizeof error) < 0) {
        fprintf(stderr, "iotdm-configd: %s\n", error);
        return 2;
    }
    ensure_std_fds();
    signal(SIGPIPE, SIG_IGN);
    cfgd_backend *be =
        cfg.backend == CFGD_BACKEND_SANDBOX
            ? cfgd_backend_sandbox_new(cfg.root, cfg.command_timeout_ms, error, sizeof error)
            : cfgd_backend_linux_new(cfg.root, cfg.command_timeout_ms, error, sizeof error);
    if (!be) {
        log_error("configd", "%s", error);
        return 1;
    }
    r = serve(&cfg, be);
    cfgd_backend_free(be);
    return r;
}
