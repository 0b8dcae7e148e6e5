/* iotdm dm …: device-management shortcuts generated at run time from the DTDL model (models/ or
 * the hub's /iotdm/models): set-<property> patches desired {"dm":{"__t":"c",…}}, commands invoke
 * dm*<command>, status shows desired/reported/ack. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "cli/dm.h"

#ifndef IOTDM_MODELS_DIR
#define IOTDM_MODELS_DIR "models"
#endif
#ifndef IOTDM_INSTALLED_MODELS_DIR
#define IOTDM_INSTALLED_MODELS_DIR "/usr/share/iotdm/models"
#endif

static int json_file_filter(const struct dirent *e)
{
    size_t n = strlen(e->d_name);
    return e->d_name[0] != '.' && n > 5 && !strcmp(e->d_name + n - 5, ".json");
}

/* Every *.json interface in dir, in name order; NULL when the folder cannot be read. */
static json_t *load_dir(const char *dir)
{
    struct dirent **names;
    int n = scandir(dir, &names, json_file_filter, alphasort);
    if (n < 0)
        return NULL;
    json_t *all = json_array();
    for (int i = 0; i < n; i++) {
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
        json_error_t err;
        json_t *m = json_load_file(path, 0, &err);
        if (json_is_object(m))
            json_array_append_new(all, m);
        else
            cli_error("%s: not a DTDL interface: %s (line %d)", path, err.text, err.line);
        free(names[i]);
    }
    free(names);
    return all;
}

/* GET /iotdm/models. *fallback says whether another source may be tried. */
static json_t *load_hub(cli_ctx *ctx, int *rc, bool *fallback)
{
    cli_response r;
    cli_request rq = {.method = "GET", .path = "/iotdm/models"};
    *rc = cli_http_do(ctx, &rq, &r);
    json_t *models = NULL;
    *fallback = false;
    if (*rc == CLI_EXIT_OK && r.status == 200 && json_is_array(r.json)) {
        models = json_incref(r.json);
    } else if (*rc == CLI_EXIT_OK && r.status == 404) {
        *fallback = true; /* Azure IoT Hub has no model endpoint: use the local models */
    } else if (*rc == CLI_EXIT_OK) {
        cli_print_hub_error(&r);
        *rc = cli_exit_for_http(r.status, r.error_code);
    }
    cli_response_free(&r);
    return models;
}

static json_t *load_models(cli_ctx *ctx, bool quiet, int *rc)
{
    *rc = CLI_EXIT_OK;
    if (ctx->models_dir && ctx->models_dir[0]) {
        json_t *m = load_dir(ctx->models_dir);
        if (!m) {
            cli_error("--models-dir %s: cannot read it", ctx->models_dir);
            *rc = CLI_EXIT_USAGE;
        }
        return m;
    }
    cli_set_quiet(quiet);
    json_t *m = NULL;
    bool fallback = false;
    if (cli_login(ctx) == CLI_EXIT_OK)
        m = load_hub(ctx, rc, &fallback);
    else
        *rc = CLI_EXIT_UNAUTHORIZED;
    cli_set_quiet(false);
    /* A command needs the hub anyway: report its failure; help and completion carry on. */
    if (m || (*rc != CLI_EXIT_OK && !fallback && !quiet))
        return m;
    *rc = CLI_EXIT_OK;
    if (!(m = load_dir(IOTDM_MODELS_DIR)))
        m = load_dir(IOTDM_INSTALLED_MODELS_DIR);
    if (!m) {
        cli_error("no DTDL models: give --models-dir DIR or IOTDM_MODELS_DIR");
        *rc = CLI_EXIT_NOT_FOUND;
    }
    return m;
}

int dm_group_load(cli_ctx *ctx, bool quiet, dm_group *out)
{
    memset(out, 0, sizeof *out);
    int rc;
    json_t *models = load_models(ctx, quiet, &rc);
    if (!models)
        return rc;
    rc = dm_group_build(models, out);
    if (rc != CLI_EXIT_OK)
        json_decref(models);
    return rc;
}

static bool has_field_values(const dm_cmd *c, const cli_args *a)
{
    for (size_t i = 0; i < c->nfields; i++)
        if (cli_arg(a, c->fields[i].option))
            return true;
    return false;
}

static int run_set(cli_ctx *ctx, const dm_cmd *c, const cli_args *a)
{
    const char *value = cli_arg(a, "value");
    bool clear = cli_flag(a, "clear");
    if ((clear && value) || ((clear || value) && has_field_values(c, a))) {
        cli_error("give either --value, --clear or the fields (see 'iotdm dm %s --help')", c->name);
        return CLI_EXIT_USAGE;
    }
    json_t *v = NULL;
    int rc = CLI_EXIT_OK;
    if (clear)
        v = json_null();
    else if (value && !(v = cli_json_arg("value", value)))
        rc = CLI_EXIT_USAGE;
    else if (!value)
        rc = dm_build_value(c, a, &v);
    if (rc == CLI_EXIT_OK && !v) {
        cli_error("nothing to set: give at least one field (see 'iotdm dm %s --help')", c->name);
        rc = CLI_EXIT_USAGE;
    }
    if (rc != CLI_EXIT_OK)
        return rc;
    /* "__t":"c" marks an IoT Plug and Play component; the device applies the merged value. */
    json_t *patch = json_pack("{s:{s:{s:{s:s, s:o}}}}", "properties", "desired", DM_COMPONENT,
                              "__t", "c", c->target, v);
    char what[DM_NAME_MAX + 8];
    snprintf(what, sizeof what, "%s.%s", DM_COMPONENT, c->target);
    rc = cli_patch_twin(ctx, cli_arg(a, "device-id"), patch, cli_arg(a, "etag"), what);
    json_decref(patch);
    return rc;
}

static int run_command(cli_ctx *ctx, const dm_cmd *c, const cli_args *a)
{
    long long timeout = 30, connect = 0;
    int rc = cli_arg_int(a, "timeout", 5, 300, &timeout);
    if (rc == CLI_EXIT_OK)
        rc = cli_arg_int(a, "connect-timeout", 0, 300, &connect);
    if (rc != CLI_EXIT_OK)
        return rc;
    const char *text = cli_arg(a, "payload");
    if (text && has_field_values(c, a)) {
        cli_error("give either --payload or the fields (see 'iotdm dm %s --help')", c->name);
        return CLI_EXIT_USAGE;
    }
    json_t *payload = NULL;
    if (text && !(payload = cli_json_arg("payload", text)))
        return CLI_EXIT_USAGE;
    if (!text && (rc = dm_build_value(c, a, &payload)) != CLI_EXIT_OK)
        return rc;
    /* An Object request with no field given is still an object. */
    if (!payload && c->nfields && c->fields[0].nsegs)
        payload = json_object();
    char method[DM_NAME_MAX + 8];
    snprintf(method, sizeof method, "%s*%s", DM_COMPONENT, c->target);
    rc = cli_invoke_method(ctx, cli_arg(a, "device-id"), method, payload, (long)timeout,
                           (long)connect);
    json_decref(payload);
    return rc;
}

static void print_dm_help(FILE *out, const dm_group *g)
{
    fputs("Usage: iotdm dm <command> --device-id ID [options]\n\n"
          "Device management shortcuts, generated from the DTDL interface of the 'dm' component\n"
          "(the hub's /iotdm/models, or --models-dir): set-<property> patches the desired\n"
          "property, a command invokes the direct method dm*<command>.\n\nCommands:\n",
          out);
    for (size_t i = 0; i < g->ncmds; i++)
        fprintf(out, "  %-22s %s\n", g->cmds[i].name, g->cmds[i].brief);
    fputs("\nRun 'iotdm dm <command> --help' for a command's options.\n", out);
}

static bool wants_help(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h") || !strcmp(argv[i], "help"))
            return true;
    return argc == 0;
}

int cli_dm_main(cli_ctx *ctx, int argc, char **argv)
{
    dm_group g;
    int rc = dm_group_load(ctx, wants_help(argc, argv), &g);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h") ||
        !strcmp(argv[0], "help")) {
        print_dm_help(argc < 1 ? stderr : stdout, &g);
        dm_group_free(&g);
        return argc < 1 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    const dm_cmd *c = NULL;
    for (size_t i = 0; i < g.ncmds && !c; i++)
        if (!strcmp(g.cmds[i].name, argv[0]))
            c = &g.cmds[i];
    if (!c) {
        cli_error("'%s' is not a dm command of this model (see 'iotdm dm --help')", argv[0]);
        dm_group_free(&g);
        return CLI_EXIT_USAGE;
    }
    char prog[DM_NAME_MAX + 16];
    snprintf(prog, sizeof prog, "iotdm dm %s", c->name);
    cli_args a;
    rc = cli_parse(prog, &c->cmd, argc - 1, argv + 1, &a);
    if (rc == CLI_EXIT_OK) {
        if (c->kind == DM_KIND_SET)
            rc = run_set(ctx, c, &a);
        else if (c->kind == DM_KIND_COMMAND)
            rc = run_command(ctx, c, &a);
        else
            rc = dm_status_run(ctx, &g, cli_arg(&a, "device-id"));
    } else if (rc == CLI_HELP_SHOWN) {
        rc = CLI_EXIT_OK;
    }
    dm_group_free(&g);
    return rc;
}

int cli_dm_complete(cli_ctx *ctx, int argc, char **argv)
{
    dm_group g;
    int rc = dm_group_load(ctx, true, &g);
    if (rc != CLI_EXIT_OK)
        return rc;
    for (size_t i = 0; i < g.ncmds; i++) {
        const dm_cmd *c = &g.cmds[i];
        if (argc < 1)
            printf("%s\n", c->name);
        else if (!strcmp(c->name, argv[0]))
            for (size_t k = 0; k < c->cmd.nopts; k++)
                printf("--%s\n", c->cmd.opts[k].name);
    }
    dm_group_free(&g);
    return CLI_EXIT_OK;
}
