/* iotdm twin …: read and patch device twins (GET/PATCH /twins/{id}). */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

#define ID_ESC_MAX 1024

static int twin_path(const char *id, char *out, size_t cap)
{
    char esc[ID_ESC_MAX];
    if (!cli_path_escape(id, esc, sizeof esc)) {
        cli_error("device id too long");
        return CLI_EXIT_USAGE;
    }
    snprintf(out, cap, "/twins/%s", esc);
    return CLI_EXIT_OK;
}

static void print_section(const char *title, const json_t *v)
{
    json_t *clean = cli_strip_metadata(v, true);
    json_int_t version = json_integer_value(json_object_get(v, "$version"));
    if (json_object_get(v, "$version"))
        printf("%s ($version %lld):\n", title, (long long)version);
    else
        printf("%s:\n", title);
    char *s = json_dumps(clean, JSON_INDENT(2) | JSON_ENCODE_ANY);
    /* indent the document under its title */
    for (char *line = s ? strtok(s, "\n") : NULL; line; line = strtok(NULL, "\n"))
        printf("  %s\n", line);
    free(s);
    json_decref(clean);
}

/* The twin for people: identity line, then tags, desired and reported without $metadata. */
static void print_twin_human(const json_t *t)
{
    static const cli_field fields[] = {{"Device ID", "deviceId"},
                                       {"Status", "status"},
                                       {"Connection", "connectionState"},
                                       {"Model", "modelId"},
                                       {"Etag", "etag"}};
    cli_print_fields(t, fields, sizeof fields / sizeof fields[0]);
    const json_t *props = json_object_get(t, "properties");
    print_section("Tags", json_object_get(t, "tags") ? json_object_get(t, "tags") : json_null());
    print_section("Desired", json_object_get(props, "desired"));
    print_section("Reported", json_object_get(props, "reported"));
}

static int cmd_show(cli_ctx *ctx, const cli_args *a)
{
    char path[ID_ESC_MAX + 16];
    int rc = twin_path(cli_arg(a, "device-id"), path, sizeof path);
    if (rc != CLI_EXIT_OK)
        return rc;
    cli_response r;
    cli_request rq = {.method = "GET", .path = path};
    rc = cli_http_call(ctx, &rq, &r);
    if (rc == CLI_EXIT_OK) {
        if (ctx->json)
            cli_print_json(r.json);
        else
            print_twin_human(r.json);
    }
    cli_response_free(&r);
    return rc;
}

int cli_patch_twin(cli_ctx *ctx, const char *device_id, const json_t *patch, const char *etag,
                   const char *what)
{
    char path[ID_ESC_MAX + 16];
    int rc = twin_path(device_id, path, sizeof path);
    if (rc != CLI_EXIT_OK)
        return rc;
    cli_response r;
    cli_request rq = {
        .method = "PATCH", .path = path, .body = patch, .if_match = etag ? etag : "*"};
    rc = cli_http_call(ctx, &rq, &r);
    if (rc == CLI_EXIT_OK && ctx->json) {
        cli_print_json(r.json);
    } else if (rc == CLI_EXIT_OK) {
        const json_t *desired = json_object_get(json_object_get(r.json, "properties"), "desired");
        printf("Updated %s of %s (desired $version %lld, etag %s)\n", what, device_id,
               (long long)json_integer_value(json_object_get(desired, "$version")),
               json_string_value(json_object_get(r.json, "etag"))
                   ? json_string_value(json_object_get(r.json, "etag"))
                   : "-");
    }
    cli_response_free(&r);
    return rc;
}

/* Reads --set-file: a twin patch in Azure's shape, {"tags":…, "properties":{"desired":…}}. */
static json_t *load_set_file(const char *file)
{
    const char *path = file[0] == '@' ? file + 1 : file;
    json_error_t err;
    json_t *j = json_load_file(path, 0, &err);
    if (!j) {
        cli_error("--set-file %s: %s (line %d)", path, err.text, err.line);
        return NULL;
    }
    if (!json_is_object(j)) {
        cli_error("--set-file %s: expected a JSON object", path);
        json_decref(j);
        return NULL;
    }
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v)
    {
        if (strcmp(k, "tags") && strcmp(k, "properties")) {
            cli_error("--set-file %s: unexpected member '%s'; expected tags and "
                      "properties.desired",
                      file, k);
            json_decref(j);
            return NULL;
        }
    }
    return j;
}

static bool put_member(json_t *patch, const char *option, const char *text, bool desired)
{
    json_t *v = cli_json_arg(option, text);
    if (!v)
        return false;
    if (!json_is_object(v)) {
        cli_error("--%s: expected a JSON object", option);
        json_decref(v);
        return false;
    }
    if (!desired) {
        json_object_set_new(patch, "tags", v);
        return true;
    }
    json_t *props = json_object_get(patch, "properties");
    if (!json_is_object(props)) {
        props = json_object();
        json_object_set_new(patch, "properties", props);
    }
    json_object_set_new(props, "desired", v);
    return true;
}

static int cmd_update(cli_ctx *ctx, const cli_args *a)
{
    const char *desired = cli_arg(a, "desired"), *tags = cli_arg(a, "tags"),
               *file = cli_arg(a, "set-file");
    if (!desired && !tags && !file) {
        cli_error("nothing to update: give --desired, --tags or --set-file (see 'iotdm twin "
                  "update --help')");
        return CLI_EXIT_USAGE;
    }
    json_t *patch = file ? load_set_file(file) : json_object();
    if (!patch || (tags && !put_member(patch, "tags", tags, false)) ||
        (desired && !put_member(patch, "desired", desired, true))) {
        json_decref(patch);
        return CLI_EXIT_USAGE;
    }
    int rc = cli_patch_twin(ctx, cli_arg(a, "device-id"), patch, cli_arg(a, "etag"), "the twin");
    json_decref(patch);
    return rc;
}

#define OPT_ID                                                                                     \
    {                                                                                              \
        "device-id", CLI_OPT_VALUE, "ID", "The device's id", true                                  \
    }
#define N(a) (sizeof(a) / sizeof((a)[0]))

static const cli_opt show_opts[] = {OPT_ID};
static const cli_opt update_opts[] = {
    OPT_ID,
    {"desired", CLI_OPT_VALUE, "JSON|@FILE", "Desired properties to merge (null deletes)", false},
    {"tags", CLI_OPT_VALUE, "JSON|@FILE", "Tags to merge (null deletes)", false},
    {"set-file", CLI_OPT_VALUE, "FILE",
     "A patch {\"tags\":…,\"properties\":{\"desired\":…}} from a file", false},
    {"etag", CLI_OPT_VALUE, "ETAG", "Update only if the twin's etag matches (default: any)", false},
};

static const cli_cmd twin_cmds[] = {
    {"show", "Show a device twin: tags, desired and reported properties.", show_opts, N(show_opts),
     NULL, 0, 0, cmd_show, NULL},
    {"update",
     "Merge tags and desired properties into a device twin (PATCH); the device is notified at "
     "once.",
     update_opts, N(update_opts), NULL, 0, 0, cmd_update, NULL},
};

const cli_group cli_group_twin = {"twin", "Device twins: show, update tags and desired properties",
                                  twin_cmds, N(twin_cmds)};
