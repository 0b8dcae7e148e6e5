/* iotdm dps …: the DPS enrollment service API (enrollments, enrollment groups, registration
 * records; api-version 2021-10-01, signed with the provisioningserviceowner policy) and the
 * local derivation of a group enrollment's device keys. */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/sas.h"

#define DPS_API_VERSION "2021-10-01"
#define ID_ESC_MAX      1024
#define CERT_MAX        (256u * 1024)
#define PAGE_SIZE       100L

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* The JSON value at a dotted path (NULL when absent). */
static const json_t *at(const json_t *v, const char *dotted)
{
    char path[160];
    snprintf(path, sizeof path, "%s", dotted);
    char *save = NULL;
    for (char *seg = strtok_r(path, ".", &save); seg && v; seg = strtok_r(NULL, ".", &save))
        v = json_object_get(v, seg);
    return v;
}

/* "/{collection}/{escaped id}" */
static int dps_path(const char *collection, const char *id, char *out, size_t cap)
{
    char esc[ID_ESC_MAX];
    if (!cli_path_escape(id, esc, sizeof esc)) {
        cli_error("id too long");
        return CLI_EXIT_USAGE;
    }
    snprintf(out, cap, "/%s/%s", collection, esc);
    return CLI_EXIT_OK;
}

/* One request to the DPS API; a non-2xx answer is printed and mapped to an exit code. */
static int dps_call(cli_ctx *ctx, const char *method, const char *path, const json_t *body,
                    const char *if_match, cli_response *r)
{
    cli_request rq = {.method = method,
                      .path = path,
                      .body = body,
                      .if_match = if_match,
                      .api_version = DPS_API_VERSION};
    return cli_http_call(ctx, &rq, r);
}

/* ---- what is printed */

typedef struct {
    const char *collection; /* URL path segment */
    const char *noun;       /* for messages */
    const char *id_key;     /* the id member of the JSON object */
    const char *id_opt;     /* the option that names it */
    const cli_field *fields;
    size_t nfields;
    const char *const *headers; /* list table */
    const char *const *cols;    /* dotted paths, one per header */
    size_t ncols;
} dps_kind;

static const cli_field enrollment_fields[] = {
    {"Registration ID", "registrationId"},
    {"Device ID", "deviceId"},
    {"Attestation", "attestation.type"},
    {"Thumbprint", "attestation.x509.clientCertificates.primary.info.sha256Thumbprint"},
    {"Subject", "attestation.x509.clientCertificates.primary.info.subjectName"},
    {"Provisioning status", "provisioningStatus"},
    {"IoT hub", "iotHubHostName"},
    {"Created", "createdDateTimeUtc"},
    {"Updated", "lastUpdatedDateTimeUtc"},
    {"Etag", "etag"},
};
static const char *const enrollment_headers[] = {"REGISTRATION ID", "DEVICE ID", "ATTESTATION",
                                                 "STATUS", "UPDATED"};
static const char *const enrollment_cols[] = {"registrationId", "deviceId", "attestation.type",
                                              "provisioningStatus", "lastUpdatedDateTimeUtc"};

static const cli_field group_fields[] = {
    {"Group ID", "enrollmentGroupId"},
    {"Attestation", "attestation.type"},
    {"Thumbprint", "attestation.x509.signingCertificates.primary.info.sha256Thumbprint"},
    {"Subject", "attestation.x509.signingCertificates.primary.info.subjectName"},
    {"Provisioning status", "provisioningStatus"},
    {"IoT hub", "iotHubHostName"},
    {"Created", "createdDateTimeUtc"},
    {"Updated", "lastUpdatedDateTimeUtc"},
    {"Etag", "etag"},
};
static const char *const group_headers[] = {"GROUP ID", "ATTESTATION", "STATUS", "UPDATED"};
static const char *const group_cols[] = {"enrollmentGroupId", "attestation.type",
                                         "provisioningStatus", "lastUpdatedDateTimeUtc"};

static const cli_field registration_fields[] = {
    {"Registration ID", "registrationId"},
    {"Device ID", "deviceId"},
    {"Assigned hub", "assignedHub"},
    {"Status", "status"},
    {"Substatus", "substatus"},
    {"Error code", "errorCode"},
    {"Error", "errorMessage"},
    {"Created", "createdDateTimeUtc"},
    {"Updated", "lastUpdatedDateTimeUtc"},
    {"Etag", "etag"},
};

static const dps_kind kind_enrollment = {
    "enrollments",      "enrollment",      "registrationId",
    "registration-id",  enrollment_fields, N(enrollment_fields),
    enrollment_headers, enrollment_cols,   N(enrollment_cols),
};
static const dps_kind kind_group = {
    "enrollmentGroups", "enrollment group", "enrollmentGroupId", "group-id",    group_fields,
    N(group_fields),    group_headers,      group_cols,          N(group_cols),
};
static const dps_kind kind_registration = {
    "registrations",
    "registration record",
    "registrationId",
    "registration-id",
    registration_fields,
    N(registration_fields),
    NULL,
    NULL,
    0,
};

static void print_one(const cli_ctx *ctx, const dps_kind *k, const json_t *v)
{
    if (ctx->json)
        cli_print_json(v);
    else
        cli_print_fields(v, k->fields, k->nfields);
}

/* ---- create */

/* The text of a PEM file (NULL, printed, on error). */
static char *read_cert(const char *file)
{
    FILE *f = fopen(file, "rb");
    if (!f) {
        cli_error("--certificate %s: cannot open it", file);
        return NULL;
    }
    char *buf = malloc(CERT_MAX + 1);
    size_t n = buf ? fread(buf, 1, CERT_MAX + 1, f) : 0;
    bool bad = !buf || ferror(f) != 0;
    fclose(f);
    if (buf)
        buf[n > CERT_MAX ? CERT_MAX : n] = '\0';
    const char *problem = bad            ? "cannot read it"
                          : n > CERT_MAX ? "it is too large"
                          : !strstr(buf, "-----BEGIN CERTIFICATE-----")
                              ? "not a PEM certificate (-----BEGIN CERTIFICATE-----)"
                              : NULL;
    if (problem) {
        cli_error("--certificate %s: %s", file, problem);
        free(buf);
        return NULL;
    }
    return buf;
}

/* The attestation object from the options; NULL (printed) on bad usage. */
static json_t *attestation_from(const cli_args *a, bool group)
{
    const char *type = cli_arg(a, "attestation");
    const char *pk = cli_arg(a, "primary-key"), *sk = cli_arg(a, "secondary-key");
    const char *cert = cli_arg(a, "certificate");
    const char *ek = group ? NULL : cli_arg(a, "endorsement-key");
    if (!type)
        type = cert ? "x509" : ek ? "tpm" : "symmetricKey";
    if (strcmp(type, "symmetricKey") && strcmp(type, "x509") && (group || strcmp(type, "tpm"))) {
        cli_error("--attestation: expected symmetricKey%s, got '%s'",
                  group ? " or x509" : ", x509 or tpm", type);
        return NULL;
    }
    bool sym = !strcmp(type, "symmetricKey"), x509 = !strcmp(type, "x509");
    if ((pk || sk) && !sym) {
        cli_error("--primary-key and --secondary-key need --attestation symmetricKey");
        return NULL;
    }
    if (cert && !x509) {
        cli_error("--certificate needs --attestation x509");
        return NULL;
    }
    if (ek && strcmp(type, "tpm")) {
        cli_error("--endorsement-key needs --attestation tpm");
        return NULL;
    }
    if (sym)
        return json_pack("{s:s, s:{s:s, s:s}}", "type", "symmetricKey", "symmetricKey",
                         "primaryKey", pk ? pk : "", "secondaryKey", sk ? sk : "");
    if (x509) {
        if (!cert) {
            cli_error("--attestation x509 needs --certificate FILE (PEM)");
            return NULL;
        }
        char *pem = read_cert(cert);
        if (!pem)
            return NULL;
        json_t *att = json_pack("{s:s, s:{s:{s:{s:s}}}}", "type", "x509", "x509",
                                group ? "signingCertificates" : "clientCertificates", "primary",
                                "certificate", pem);
        free(pem);
        return att;
    }
    if (!ek) {
        cli_error("--attestation tpm needs --endorsement-key B64");
        return NULL;
    }
    return json_pack("{s:s, s:{s:s}}", "type", "tpm", "tpm", "endorsementKey", ek);
}

/* initialTwin from --initial-tags / --initial-desired; *rc is set on a bad JSON argument. */
static json_t *initial_twin(const cli_args *a, int *rc)
{
    const char *tags = cli_arg(a, "initial-tags"), *desired = cli_arg(a, "initial-desired");
    *rc = CLI_EXIT_OK;
    if (!tags && !desired)
        return NULL;
    json_t *twin = json_object();
    const char *texts[2] = {tags, desired};
    const char *opts[2] = {"initial-tags", "initial-desired"};
    for (int i = 0; i < 2; i++) {
        if (!texts[i])
            continue;
        json_t *v = cli_json_arg(opts[i], texts[i]);
        if (!v || !json_is_object(v)) {
            if (v)
                cli_error("--%s: expected a JSON object", opts[i]);
            json_decref(v);
            json_decref(twin);
            *rc = CLI_EXIT_USAGE;
            return NULL;
        }
        if (i == 0)
            json_object_set_new(twin, "tags", v);
        else
            json_object_set_new(twin, "properties", json_pack("{s:o}", "desired", v));
    }
    return twin;
}

static int create(cli_ctx *ctx, const cli_args *a, const dps_kind *k, bool group)
{
    const char *id = cli_arg(a, k->id_opt);
    int rc = CLI_EXIT_USAGE;
    json_t *att = attestation_from(a, group);
    if (!att)
        return rc;
    json_t *twin = initial_twin(a, &rc);
    if (rc != CLI_EXIT_OK) {
        json_decref(att);
        return rc;
    }
    json_t *body =
        json_pack("{s:s, s:o, s:s}", k->id_key, id, "attestation", att, "provisioningStatus",
                  cli_flag(a, "disabled") ? "disabled" : "enabled");
    if (!group && cli_arg(a, "device-id"))
        json_object_set_new(body, "deviceId", json_string(cli_arg(a, "device-id")));
    if (twin)
        json_object_set_new(body, "initialTwin", twin);
    char path[ID_ESC_MAX + 32];
    rc = dps_path(k->collection, id, path, sizeof path);
    cli_response r = {0};
    if (rc == CLI_EXIT_OK)
        rc = dps_call(ctx, "PUT", path, body, NULL, &r);
    if (rc == CLI_EXIT_OK)
        print_one(ctx, k, r.json);
    cli_response_free(&r);
    json_decref(body);
    return rc;
}

static int cmd_enrollment_create(cli_ctx *ctx, const cli_args *a)
{
    return create(ctx, a, &kind_enrollment, false);
}

static int cmd_group_create(cli_ctx *ctx, const cli_args *a)
{
    return create(ctx, a, &kind_group, true);
}

/* ---- list (POST …/query, every page) */

static int list(cli_ctx *ctx, const cli_args *a, const dps_kind *k)
{
    long long top = 0;
    int rc = cli_arg_int(a, "top", 1, 1000000, &top);
    if (rc != CLI_EXIT_OK)
        return rc;
    char path[64];
    snprintf(path, sizeof path, "/%s/query", k->collection);
    json_t *body = json_pack("{s:s}", "query", "*");
    json_t *all = json_array();
    char *cont = NULL;
    do {
        cli_response r;
        cli_request rq = {.method = "POST",
                          .path = path,
                          .body = body,
                          .continuation = cont,
                          .max_items = top && top < PAGE_SIZE ? (long)top : PAGE_SIZE,
                          .api_version = DPS_API_VERSION};
        rc = cli_http_call(ctx, &rq, &r);
        if (rc == CLI_EXIT_OK && !json_is_array(r.json)) {
            cli_error("the hub's query answer is not a JSON array");
            rc = CLI_EXIT_ERROR;
        }
        free(cont);
        cont = NULL;
        if (rc == CLI_EXIT_OK) {
            json_array_extend(all, r.json);
            if (r.continuation && r.continuation[0])
                cont = strdup(r.continuation);
        }
        cli_response_free(&r);
    } while (rc == CLI_EXIT_OK && cont && (!top || json_array_size(all) < (size_t)top));
    free(cont);
    while (top && json_array_size(all) > (size_t)top)
        json_array_remove(all, json_array_size(all) - 1);
    if (rc == CLI_EXIT_OK && ctx->json) {
        cli_print_json(all);
    } else if (rc == CLI_EXIT_OK) {
        cli_table t;
        cli_table_init(&t, k->headers, k->ncols);
        size_t i;
        json_t *item;
        json_array_foreach(all, i, item)
        {
            char *cells[8];
            for (size_t c = 0; c < k->ncols; c++)
                cells[c] = cli_cell_text(at(item, k->cols[c]), 0);
            cli_table_add(&t, (const char *const *)cells);
            for (size_t c = 0; c < k->ncols; c++)
                free(cells[c]);
        }
        cli_table_print(stdout, &t);
        cli_table_free(&t);
    }
    json_decref(all);
    json_decref(body);
    return rc;
}

static int cmd_enrollment_list(cli_ctx *ctx, const cli_args *a)
{
    return list(ctx, a, &kind_enrollment);
}

static int cmd_group_list(cli_ctx *ctx, const cli_args *a)
{
    return list(ctx, a, &kind_group);
}

/* ---- show, delete */

static int show(cli_ctx *ctx, const cli_args *a, const dps_kind *k)
{
    char path[ID_ESC_MAX + 32];
    int rc = dps_path(k->collection, cli_arg(a, k->id_opt), path, sizeof path);
    if (rc != CLI_EXIT_OK)
        return rc;
    cli_response r;
    rc = dps_call(ctx, "GET", path, NULL, NULL, &r);
    if (rc == CLI_EXIT_OK && !json_is_object(r.json)) {
        cli_error("the hub answered with something that is not a %s", k->noun);
        rc = CLI_EXIT_ERROR;
    }
    if (rc == CLI_EXIT_OK)
        print_one(ctx, k, r.json);
    cli_response_free(&r);
    return rc;
}

static int remove_one(cli_ctx *ctx, const cli_args *a, const dps_kind *k)
{
    const char *id = cli_arg(a, k->id_opt), *etag = cli_arg(a, "etag");
    char path[ID_ESC_MAX + 32];
    int rc = dps_path(k->collection, id, path, sizeof path);
    if (rc != CLI_EXIT_OK)
        return rc;
    cli_response r;
    rc = dps_call(ctx, "DELETE", path, NULL, etag, &r);
    if (rc == CLI_EXIT_OK && ctx->json) {
        json_t *j = json_pack("{s:s, s:b}", k->id_key, id, "deleted", 1);
        cli_print_json(j);
        json_decref(j);
    } else if (rc == CLI_EXIT_OK) {
        printf("Deleted %s %s\n", k->noun, id);
    }
    cli_response_free(&r);
    return rc;
}

static int cmd_enrollment_show(cli_ctx *ctx, const cli_args *a)
{
    return show(ctx, a, &kind_enrollment);
}

static int cmd_enrollment_delete(cli_ctx *ctx, const cli_args *a)
{
    return remove_one(ctx, a, &kind_enrollment);
}

static int cmd_group_show(cli_ctx *ctx, const cli_args *a)
{
    return show(ctx, a, &kind_group);
}

static int cmd_group_delete(cli_ctx *ctx, const cli_args *a)
{
    return remove_one(ctx, a, &kind_group);
}

static int cmd_registration_show(cli_ctx *ctx, const cli_args *a)
{
    return show(ctx, a, &kind_registration);
}

static int cmd_registration_delete(cli_ctx *ctx, const cli_args *a)
{
    return remove_one(ctx, a, &kind_registration);
}

/* ---- scope (GET /iotdm/dps, an iotdm-hub extension) */

static const cli_field scope_fields[] = {
    {"ID scope", "idScope"},
    {"Global endpoint", "globalEndpoint"},
};

static int cmd_scope(cli_ctx *ctx, const cli_args *a)
{
    (void)a;
    cli_response r;
    int rc = dps_call(ctx, "GET", "/iotdm/dps", NULL, NULL, &r);
    if (rc == CLI_EXIT_OK && !json_is_string(json_object_get(r.json, "idScope"))) {
        cli_error("the hub's answer names no ID scope");
        rc = CLI_EXIT_ERROR;
    }
    if (rc == CLI_EXIT_OK && ctx->json)
        cli_print_json(r.json);
    else if (rc == CLI_EXIT_OK)
        cli_print_fields(r.json, scope_fields, N(scope_fields));
    cli_response_free(&r);
    return rc;
}

/* ---- derive-key (local) */

static int cmd_derive_key(cli_ctx *ctx, const cli_args *a)
{
    const char *gk = cli_arg(a, "group-key"), *id = cli_arg(a, "registration-id");
    char key[SAS_SIG_LEN + 1];
    if (sas_derive_device_key(gk, id, key) != IOTDM_OK) {
        cli_error("--group-key: not a base64 key");
        return CLI_EXIT_USAGE;
    }
    if (ctx->json) {
        json_t *j = json_pack("{s:s, s:s}", "registrationId", id, "derivedKey", key);
        cli_print_json(j);
        json_decref(j);
    } else {
        puts(key);
    }
    explicit_bzero(key, sizeof key);
    return CLI_EXIT_OK;
}

/* ---- the command tree */

#define OPT_REG_ID                                                                                 \
    {                                                                                              \
        "registration-id", CLI_OPT_VALUE, "ID", "The registration id", true                        \
    }
#define OPT_GROUP_ID                                                                               \
    {                                                                                              \
        "group-id", CLI_OPT_VALUE, "ID", "The enrollment group's id", true                         \
    }
#define OPT_ETAG                                                                                   \
    {                                                                                              \
        "etag", CLI_OPT_VALUE, "ETAG", "Delete only if the etag matches (default: any)", false     \
    }
#define OPT_TOP                                                                                    \
    {                                                                                              \
        "top", CLI_OPT_VALUE, "N", "At most N items (default: all pages)", false                   \
    }
#define OPTS_COMMON_CREATE                                                                         \
    {"primary-key", CLI_OPT_VALUE, "KEY", "Base64 key (default: generated by the hub)", false},    \
        {"secondary-key", CLI_OPT_VALUE, "KEY", "Base64 key (default: generated by the hub)",      \
         false},                                                                                   \
        {"disabled", CLI_OPT_FLAG, NULL, "Create it disabled (registrations are refused)", false}, \
        {"initial-tags", CLI_OPT_VALUE, "JSON", "Tags of a new device's twin (JSON or @FILE)",     \
         false},                                                                                   \
    {                                                                                              \
        "initial-desired", CLI_OPT_VALUE, "JSON",                                                  \
            "Desired properties of a new device's twin (JSON or @FILE)", false                     \
    }

static const cli_opt enrollment_create_opts[] = {
    OPT_REG_ID,
    {"device-id", CLI_OPT_VALUE, "ID", "The device id to assign (default: the registration id)",
     false},
    {"attestation", CLI_OPT_VALUE, "symmetricKey|x509|tpm",
     "Attestation (default symmetricKey; x509 with --certificate, tpm with --endorsement-key)",
     false},
    {"certificate", CLI_OPT_VALUE, "FILE", "The device's certificate (PEM) for x509", false},
    {"endorsement-key", CLI_OPT_VALUE, "B64", "The TPM's endorsement key for tpm", false},
    OPTS_COMMON_CREATE,
};
static const cli_opt group_create_opts[] = {
    OPT_GROUP_ID,
    {"attestation", CLI_OPT_VALUE, "symmetricKey|x509",
     "Attestation (default symmetricKey; x509 with --certificate)", false},
    {"certificate", CLI_OPT_VALUE, "FILE", "The signing (root or intermediate) certificate (PEM)",
     false},
    OPTS_COMMON_CREATE,
};
static const cli_opt list_opts[] = {OPT_TOP};
static const cli_opt reg_id_opts[] = {OPT_REG_ID};
static const cli_opt reg_delete_opts[] = {OPT_REG_ID, OPT_ETAG};
static const cli_opt group_id_opts[] = {OPT_GROUP_ID};
static const cli_opt group_delete_opts[] = {OPT_GROUP_ID, OPT_ETAG};
static const cli_opt derive_opts[] = {
    {"group-key", CLI_OPT_VALUE, "KEY", "The enrollment group's (base64) symmetric key", true},
    OPT_REG_ID,
};

static const cli_cmd enrollment_cmds[] = {
    {"create", "Create or replace an individual enrollment (keys are generated unless given).",
     enrollment_create_opts, N(enrollment_create_opts), NULL, 0, 0, cmd_enrollment_create, NULL},
    {"list", "List individual enrollments.", list_opts, N(list_opts), NULL, 0, 0,
     cmd_enrollment_list, NULL},
    {"show", "Show an individual enrollment (keys only with --json).", reg_id_opts, N(reg_id_opts),
     NULL, 0, 0, cmd_enrollment_show, NULL},
    {"delete", "Delete an individual enrollment.", reg_delete_opts, N(reg_delete_opts), NULL, 0, 0,
     cmd_enrollment_delete, NULL},
};
static const cli_cmd group_cmds[] = {
    {"create", "Create or replace an enrollment group (keys are generated unless given).",
     group_create_opts, N(group_create_opts), NULL, 0, 0, cmd_group_create, NULL},
    {"list", "List enrollment groups.", list_opts, N(list_opts), NULL, 0, 0, cmd_group_list, NULL},
    {"show", "Show an enrollment group (keys only with --json).", group_id_opts, N(group_id_opts),
     NULL, 0, 0, cmd_group_show, NULL},
    {"delete", "Delete an enrollment group.", group_delete_opts, N(group_delete_opts), NULL, 0, 0,
     cmd_group_delete, NULL},
};
static const cli_cmd registration_cmds[] = {
    {"show", "Show the registration record of a registration id.", reg_id_opts, N(reg_id_opts),
     NULL, 0, 0, cmd_registration_show, NULL},
    {"delete", "Delete a registration record (the device stays in the registry).", reg_delete_opts,
     N(reg_delete_opts), NULL, 0, 0, cmd_registration_delete, NULL},
};
static const cli_cmd derive_cmd = {
    "derive-key",
    "Print a device's key for a symmetric-key enrollment group: "
    "base64(HMAC-SHA256(group key, registration id)). Computed locally; no hub needed.",
    derive_opts,
    N(derive_opts),
    NULL,
    0,
    0,
    cmd_derive_key,
    NULL};

static const cli_cmd scope_cmd = {
    "scope",
    "Print the ID scope and the global endpoint that devices register with (iotdm-hub's "
    "GET /iotdm/dps).",
    NULL,
    0,
    NULL,
    0,
    0,
    cmd_scope,
    NULL};

/* Commands without a subcommand, with their line in 'iotdm dps --help'. */
static const struct {
    const cli_cmd *cmd;
    const char *summary;
} single_cmds[] = {
    {&scope_cmd, "The ID scope and the global endpoint for devices"},
    {&derive_cmd, "A device's key in a symmetric-key group"},
};

static const cli_cmd *find_single(const char *name)
{
    for (size_t i = 0; i < N(single_cmds); i++)
        if (!strcmp(single_cmds[i].cmd->name, name))
            return single_cmds[i].cmd;
    return NULL;
}

static const cli_group dps_groups[] = {
    {"enrollment", "Individual enrollments: create, list, show, delete", enrollment_cmds,
     N(enrollment_cmds)},
    {"group", "Enrollment groups: create, list, show, delete", group_cmds, N(group_cmds)},
    {"registration", "Registration records: show, delete", registration_cmds, N(registration_cmds)},
};

static bool is_help(const char *a)
{
    return !strcmp(a, "--help") || !strcmp(a, "-h") || !strcmp(a, "help");
}

static void print_dps_help(FILE *out)
{
    fputs("Usage: iotdm dps <command> [<subcommand>] [options]\n\n"
          "The device provisioning service's enrollments (iotdm-hub or Azure DPS). Log in with "
          "the\nprovisioningserviceowner policy, e.g. --login-file DATA/dps.connstr.\n\n"
          "Commands:\n",
          out);
    for (size_t i = 0; i < N(dps_groups); i++)
        fprintf(out, "  %-22s %s\n", dps_groups[i].name, dps_groups[i].summary);
    for (size_t i = 0; i < N(single_cmds); i++)
        fprintf(out, "  %-22s %s\n", single_cmds[i].cmd->name, single_cmds[i].summary);
    fputs("\nRun 'iotdm dps <command> --help' for its subcommands and options.\n", out);
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

static const cli_group *find_group(const char *name)
{
    for (size_t i = 0; i < N(dps_groups); i++)
        if (!strcmp(dps_groups[i].name, name))
            return &dps_groups[i];
    return NULL;
}

static const cli_cmd *find_cmd(const cli_group *g, const char *name)
{
    for (size_t i = 0; i < g->ncmds; i++)
        if (!strcmp(g->cmds[i].name, name))
            return &g->cmds[i];
    return NULL;
}

int cli_dps_main(cli_ctx *ctx, int argc, char **argv)
{
    static char prog[128]; /* ctx->argv0_path points to it */
    if (argc < 1 || is_help(argv[0])) {
        print_dps_help(argc < 1 ? stderr : stdout);
        return argc < 1 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    const cli_cmd *single = find_single(argv[0]);
    if (single) {
        snprintf(prog, sizeof prog, "iotdm dps %s", single->name);
        return run_cmd(ctx, prog, single, argc - 1, argv + 1);
    }
    const cli_group *g = find_group(argv[0]);
    if (!g) {
        cli_error("'%s' is not a dps command (see 'iotdm dps --help')", argv[0]);
        return CLI_EXIT_USAGE;
    }
    snprintf(prog, sizeof prog, "iotdm dps %s", g->name);
    if (argc < 2 || is_help(argv[1])) {
        cli_print_group_help(argc < 2 ? stderr : stdout, prog, g);
        return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    const cli_cmd *cmd = find_cmd(g, argv[1]);
    if (!cmd) {
        cli_error("'%s' is not a %s command (see '%s --help')", argv[1], g->name, prog);
        return CLI_EXIT_USAGE;
    }
    snprintf(prog, sizeof prog, "iotdm dps %s %s", g->name, cmd->name);
    return run_cmd(ctx, prog, cmd, argc - 2, argv + 2);
}

int cli_dps_complete(int argc, char **argv, const char *globals)
{
    const cli_cmd *cmd = NULL;
    if (argc < 1) {
        for (size_t i = 0; i < N(dps_groups); i++)
            printf("%s\n", dps_groups[i].name);
        for (size_t i = 0; i < N(single_cmds); i++)
            printf("%s\n", single_cmds[i].cmd->name);
        return CLI_EXIT_OK;
    }
    const cli_group *g = find_group(argv[0]);
    if (find_single(argv[0])) {
        cmd = find_single(argv[0]);
    } else if (g && argc < 2) {
        for (size_t i = 0; i < g->ncmds; i++)
            printf("%s\n", g->cmds[i].name);
        return CLI_EXIT_OK;
    } else if (g) {
        cmd = find_cmd(g, argv[1]);
    }
    for (size_t k = 0; cmd && k < cmd->nopts; k++)
        printf("--%s\n", cmd->opts[k].name);
    printf("%s\n", globals);
    return CLI_EXIT_OK;
}
