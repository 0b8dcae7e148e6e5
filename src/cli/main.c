/* iotdm: the operator's CLI for iotdm-hub (and Azure IoT Hub): global options and dispatch. */
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const cli_group *const groups[] = {
    &cli_group_device, &cli_group_twin,    &cli_group_method, &cli_group_job,
    &cli_group_c2d,    &cli_group_monitor, &cli_group_query,
};
#define NGROUPS (sizeof groups / sizeof groups[0])

static void print_main_help(FILE *out)
{
    fputs("Usage: iotdm [global options] <command> [<subcommand>] [options]\n\n"
          "Remote device management through iotdm-hub or Azure IoT Hub (service REST API).\n\n"
          "Commands:\n",
          out);
    for (size_t i = 0; i < NGROUPS; i++)
        fprintf(out, "  %-10s %s\n", groups[i]->name, groups[i]->summary);
    fprintf(out, "  %-10s %s\n", "dps",
            "Device provisioning: enrollments, enrollment groups, registrations, derived keys");
    fprintf(out, "  %-10s %s\n", "dm",
            "Device management shortcuts generated from the DTDL model (reboot, set-time-zone, …)");
    fputs("\nGlobal options (anywhere on the command line):\n"
          "  --login CS          Shared access policy connection string\n"
          "                      (HostName=…;SharedAccessKeyName=…;SharedAccessKey=…)\n"
          "  --login-file FILE   Read the connection string from FILE\n"
          "  --ca FILE           Trust the hub's CA certificate(s) in FILE (PEM)\n"
          "  --models-dir DIR    Read the DTDL models from DIR instead of the hub\n"
          "  --json              Print JSON for scripts instead of tables\n"
          "  --verbose           Print each request and status on stderr\n"
          "  --version           Print the version\n"
          "  -h, --help          Show help (also after any command or subcommand)\n"
          "\nEnvironment:\n"
          "  IOTDM_CONNECTION_STRING  connection string (when --login/--login-file are absent)\n"
          "  IOTDM_CA                 CA file (when --ca is absent; default: system trust)\n"
          "  IOTDM_MODELS_DIR         DTDL models directory (when --models-dir is absent)\n"
          "  Default login file: $XDG_CONFIG_HOME/iotdm/connection or "
          "~/.config/iotdm/connection\n"
          "\nExit codes:\n",
          out);
    cli_exit_print_table(out);
    fputs("\nRun 'iotdm <command> --help' for its subcommands and options. See docs/cli.md.\n",
          out);
}

typedef struct {
    const char *name;
    bool takes_value;
} global_opt;

static const global_opt global_opts[] = {
    {"json", false},      {"verbose", false}, {"login", true},
    {"login-file", true}, {"ca", true},       {"models-dir", true},
};

static void set_global(cli_ctx *ctx, const char *name, const char *value)
{
    if (!strcmp(name, "json"))
        ctx->json = true;
    else if (!strcmp(name, "verbose"))
        ctx->verbose = true;
    else if (!strcmp(name, "login"))
        ctx->login = value;
    else if (!strcmp(name, "login-file"))
        ctx->login_file = value;
    else if (!strcmp(name, "ca"))
        ctx->ca = value;
    else if (!strcmp(name, "models-dir"))
        ctx->models_dir = value;
}

/* Takes the global options out of argv (wherever they are, as az allows); returns the new argc.
 * A value that itself starts with "--" must be given as --opt=value. */
static int extract_globals(cli_ctx *ctx, int argc, char **argv, int *rc)
{
    int out = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) {
            while (i < argc)
                argv[out++] = argv[i++];
            break;
        }
        const global_opt *g = NULL;
        size_t len = 0;
        for (size_t k = 0;
             a[0] == '-' && a[1] == '-' && k < sizeof global_opts / sizeof *global_opts; k++) {
            len = strlen(global_opts[k].name);
            if (!strncmp(a + 2, global_opts[k].name, len) &&
                (a[2 + len] == '\0' || a[2 + len] == '='))
                g = &global_opts[k];
        }
        if (!g) {
            argv[out++] = argv[i];
            continue;
        }
        len = strlen(g->name);
        const char *value = NULL;
        if (a[2 + len] == '=')
            value = a + 3 + len;
        else if (g->takes_value && i + 1 < argc)
            value = argv[++i];
        if (g->takes_value != (value != NULL)) {
            cli_error("--%s %s", g->name, g->takes_value ? "needs a value" : "takes no value");
            *rc = CLI_EXIT_USAGE;
        }
        set_global(ctx, g->name, value);
    }
    argv[out] = NULL;
    return out;
}

static bool is_help(const char *a)
{
    return !strcmp(a, "--help") || !strcmp(a, "-h") || !strcmp(a, "help");
}

static int run_cmd(cli_ctx *ctx, const char *prog, const cli_cmd *cmd, int argc, char **argv)
{
    cli_args args;
    int rc = cli_parse(prog, cmd, argc, argv, &args);
    if (rc == CLI_HELP_SHOWN)
        return CLI_EXIT_OK;
    if (rc != CLI_EXIT_OK)
        return rc;
    ctx->argv0_path = prog;
    return cmd->run(ctx, &args);
}

static int run_group(cli_ctx *ctx, const cli_group *g, int argc, char **argv)
{
    char prog[128];
    if (g->ncmds == 1 && !g->cmds[0].name) {
        snprintf(prog, sizeof prog, "iotdm %s", g->name);
        return run_cmd(ctx, prog, &g->cmds[0], argc, argv);
    }
    snprintf(prog, sizeof prog, "iotdm %s", g->name);
    if (argc < 1 || is_help(argv[0])) {
        cli_print_group_help(argc < 1 ? stderr : stdout, prog, g);
        return argc < 1 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    for (size_t i = 0; i < g->ncmds; i++) {
        if (!strcmp(g->cmds[i].name, argv[0])) {
            snprintf(prog, sizeof prog, "iotdm %s %s", g->name, argv[0]);
            return run_cmd(ctx, prog, &g->cmds[i], argc - 1, argv + 1);
        }
    }
    cli_error("'%s' is not a %s command (see '%s --help')", argv[0], g->name, prog);
    return CLI_EXIT_USAGE;
}

/* Completion words for bash (packaging/iotdm.bash-completion): the words typed so far in. */
static int complete(cli_ctx *ctx, int argc, char **argv)
{
    static const char *const globals = "--json --login --login-file --ca --models-dir --verbose "
                                       "--help";
    if (argc < 1) {
        for (size_t i = 0; i < NGROUPS; i++)
            printf("%s\n", groups[i]->name);
        printf("dps\ndm\n");
        return CLI_EXIT_OK;
    }
    if (!strcmp(argv[0], "dps"))
        return cli_dps_complete(argc - 1, argv + 1, globals);
    if (!strcmp(argv[0], "dm")) {
        int rc = cli_dm_complete(ctx, argc - 1, argv + 1);
        if (argc > 1)
            printf("%s\n", globals);
        return rc;
    }
    for (size_t i = 0; i < NGROUPS; i++) {
        const cli_group *g = groups[i];
        if (strcmp(g->name, argv[0]))
            continue;
        const cli_cmd *cmd = g->ncmds == 1 && !g->cmds[0].name ? &g->cmds[0] : NULL;
        for (size_t k = 0; !cmd && argc > 1 && k < g->ncmds; k++)
            if (!strcmp(g->cmds[k].name, argv[1]))
                cmd = &g->cmds[k];
        if (!cmd) {
            for (size_t k = 0; k < g->ncmds; k++)
                printf("%s\n", g->cmds[k].name);
            return CLI_EXIT_OK;
        }
        for (size_t k = 0; k < cmd->nopts; k++)
            printf("--%s\n", cmd->opts[k].name);
    }
    printf("%s\n", globals);
    return CLI_EXIT_OK;
}

static int dispatch(cli_ctx *ctx, int argc, char **argv)
{
    if (argc < 2) {
        print_main_help(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *word = argv[1];
    if (is_help(word)) {
        print_main_help(stdout);
        return CLI_EXIT_OK;
    }
    if (!strcmp(word, "--version")) {
        puts("iotdm 0.1.0");
        return CLI_EXIT_OK;
    }
    if (!strcmp(word, "__complete"))
        return complete(ctx, argc - 2, argv + 2);
    if (!strcmp(word, "dps"))
        return cli_dps_main(ctx, argc - 2, argv + 2);
    if (!strcmp(word, "dm"))
        return cli_dm_main(ctx, argc - 2, argv + 2);
    for (size_t i = 0; i < NGROUPS; i++)
        if (!strcmp(groups[i]->name, word))
            return run_group(ctx, groups[i], argc - 2, argv + 2);
    cli_error("'%s' is not an iotdm command (see 'iotdm --help')", word);
    return CLI_EXIT_USAGE;
}

int main(int argc, char **argv)
{
    cli_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.models_dir = getenv("IOTDM_MODELS_DIR");
    int rc = CLI_EXIT_OK;
    argc = extract_globals(&ctx, argc, argv, &rc);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        cli_error("cannot initialise libcurl");
        return CLI_EXIT_ERROR;
    }
    rc = dispatch(&ctx, argc, argv);
    cli_http_cleanup(&ctx);
    curl_global_cleanup();
    explicit_bzero(ctx.key, sizeof ctx.key);
    if (fflush(stdout) != 0 && rc == CLI_EXIT_OK)
        rc = CLI_EXIT_ERROR;
    return rc;
}
