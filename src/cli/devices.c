/* iotdm device …: the identity registry (PUT/GET/DELETE /devices/{id}, GET /devices). */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

#define ID_ESC_MAX 1024

static const cli_field show_fields[] = {
    {"Device ID", "deviceId"},
    {"Status", "status"},
    {"Status reason", "statusReason"},
    {"Connection", "connectionState"},
    {"Connection changed", "connectionStateUpdatedTime"},
    {"Last activity", "lastActivityTime"},
    {"Authentication", "authentication.type"},
    {"Thumbprint", "authentication.x509Thumbprint.primaryThumbprint"},
    {"C2D queued", "cloudToDeviceMessageCount"},
    {"Etag", "etag"},
};

static void print_device(const cli_ctx *ctx, const json_t *dev)
{
    if (ctx->json)
        cli_print_json(dev);
    else
        cli_print_fields(dev, show_fields, sizeof show_fields / sizeof show_fields[0]);
}

static int device_path(const char *id, char *out, size_t cap)
{
    char esc[ID_ESC_MAX];
    if (!cli_path_escape(id, esc, sizeof esc)) {
        cli_error("device id too long");
        return CLI_EXIT_USAGE;
    }
    snprintf(out, cap, "/devices/%s", esc);
    return CLI_EXIT_OK;
}

/* GET /devices/{id} into *out (owned by the caller). */
static int get_device(cli_ctx *ctx, const char *id, json_t **out)
{
    char path[ID_ESC_MAX + 16];
    int rc = device_path(id, path, sizeof path);
    if (rc != CLI_EXIT_OK)
        return rc;
    cli_response r;
    cli_request rq = {.method = "GET", .path = path};
    rc = cli_http_call(ctx, &rq, &r);
    if (rc == CLI_EXIT_OK && !json_is_object(r.json)) {
        cli_error("the hub answered with something that is not a device");
        rc = CLI_EXIT_ERROR;
    }
    if (rc == CLI_EXIT_OK)
        *out = json_incref(r.json);
    cli_response_free(&r);
    return rc;
}

/* PUT /devices/{id}: create without If-Match, update with it. Prints the answer. */
static int put_device(cli_ctx *ctx, const char *id, const json_t *dev, const char *if_match)
{
    char path[ID_ESC_MAX + 16];
    int rc = device_path(id, path, sizeof path);
    if (rc != CLI_EXIT_OK)
        return rc;
    cli_response r;
    cli_request rq = {.method = "PUT", .path = path, .body = dev, .if_match = if_match};
    rc = cli_http_call(ctx, &rq, &r);
    if (rc == CLI_EXIT_OK)
        print_device(ctx, r.json);
    cli_response_free(&r);
    return rc;
}

static json_t *auth_object(const cli_args *a, int *rc)
{
    const char *auth = cli_arg(a, "auth") ? cli_arg(a, "auth") : "sas";
    const char *pt = cli_arg(a, "primary-thumbprint"), *st = cli_arg(a, "secondary-thumbprint");
    *rc = CLI_EXIT_USAGE;
    if (!strcmp(auth, "sas")) {
        if (pt || st) {
            cli_error("--primary-thumbprint needs --auth x509");
            return NULL;
        }
        *rc = CLI_EXIT_OK;
        const char *pk = cli_arg(a, "primary-key"), *sk = cli_arg(a, "secondary-key");
        return json_pack("{s:s, s:{s:s, s:s}}", "type", "sas", "symmetricKey", "primaryKey",
                         pk ? pk : "", "secondaryKey", sk ? sk : "");
    }
    if (!strcmp(auth, "x509") || !strcmp(auth, "x509-ca")) {
        if (!strcmp(auth, "x509") && !pt) {
            cli_error("--auth x509 needs --primary-thumbprint (the certificate's SHA-1 or "
                      "SHA-256 fingerprint, hex)");
            return NULL;
        }
        *rc = CLI_EXIT_OK;
        return json_pack("{s:s, s:{s:s?, s:s?}}", "type",
                         strcmp(auth, "x509") ? "certificateAuthority" : "selfSigned",
                         "x509Thumbprint", "primaryThumbprint", pt, "secondaryThumbprint",
                         st ? st : pt);
    }
    cli_error("--auth: expected sas, x509 or x509-ca, got '%s'", auth);
    return NULL;
}

static bool valid_status(const char *s)
{
    if (!s || !strcmp(s, "enabled") || !strcmp(s, "disabled"))
        return true;
    cli_error("--status: expected enabled or disabled, got '%s'", s);
    return false;
}

static int cmd_create(cli_ctx *ctx, const cli_args *a)
{
    const char *id = cli_arg(a, "device-id"), *status = cli_arg(a, "status");
    if (!valid_status(status))
        return CLI_EXIT_USAGE;
    int rc;
    json_t *auth = auth_object(a, &rc);
    if (!auth)
        return rc;
    json_t *dev = json_pack("{s:s, s:s, s:o}", "deviceId", id, "status",
                            status ? status : "enabled", "authentication", auth);
    if (cli_arg(a, "status-reason"))
        json_object_set_new(dev, "statusReason", json_string(cli_arg(a, "status-reason")));
    rc = put_device(ctx, id, dev, NULL);
    json_decref(dev);
    return rc;
}

static int cmd_list(cli_ctx *ctx, const cli_args *a)
{
    long long top = 1000;
    int rc = cli_arg_int(a, "top", 1, 1000, &top);
    if (rc != CLI_EXIT_OK)
        return rc;
    char query[32];
    snprintf(query, sizeof query, "top=%lld", top);
    cli_response r;
    cli_request rq = {.method = "GET", .path = "/devices", .query = query};
    rc = cli_http_call(ctx, &rq, &r);
    if (rc == CLI_EXIT_OK && ctx->json) {
        cli_print_json(r.json);
    } else if (rc == CLI_EXIT_OK) {
        static const char *const hdr[] = {"DEVICE ID", "STATUS",        "CONNECTION",
                                          "AUTH",      "LAST ACTIVITY", "C2D QUEUED"};
        static const char *const keys[] = {"deviceId",         "status",
                                           "connectionState",  NULL,
                                           "lastActivityTime", "cloudToDeviceMessageCount"};
        cli_table t;
        cli_table_init(&t, hdr, 6);
        size_t i;
        json_t *d;
        json_array_foreach(r.json, i, d)
        {
            char *cells[6];
            for (size_t c = 0; c < 6; c++)
                cells[c] = cli_cell_text(
                    keys[c] ? json_object_get(d, keys[c])
                            : json_object_get(json_object_get(d, "authentication"), "type"),
                    0);
            cli_table_add(&t, (const char *const *)cells);
            for (size_t c = 0; c < 6; c++)
                free(cells[c]);
        }
        cli_table_print(stdout, &t);
        cli_table_free(&t);
    }
    cli_response_free(&r);
    return rc;
}

static int cmd_show(cli_ctx *ctx, const cli_args *a)
{
    json_t *dev = NULL;
    int rc = get_device(ctx, cli_arg(a, "device-id"), &dev);
    if (rc == CLI_EXIT_OK)
        print_device(ctx, dev);
    json_decref(dev);
    return rc;
}

static int cmd_delete(cli_ctx *ctx, const cli_args *a)
{
    const char *id = cli_arg(a, "device-id"), *etag = cli_arg(a, "etag");
    char path[ID_ESC_MAX + 16];
    int rc = device_path(id, path, sizeof path);
    if (rc != CLI_EXIT_OK)
        return rc;
    cli_response r;
    cli_request rq = {.method = "DELETE", .path = path, .if_match = etag ? etag : "*"};
    rc = cli_http_call(ctx, &rq, &r);
    if (rc == CLI_EXIT_OK && ctx->json) {
        json_t *j = json_pack("{s:s, s:b}", "deviceId", id, "deleted", 1);
        cli_print_json(j);
        json_decref(j);
    } else if (rc == CLI_EXIT_OK) {
        printf("Deleted device %s\n", id);
    }
    cli_response_free(&r);
    return rc;
}

static int cmd_connection_string(cli_ctx *ctx, const cli_args *a)
{
    const char *id = cli_arg(a, "device-id"), *which = cli_arg(a, "key");
    if (which && strcmp(which, "primary") && strcmp(which, "secondary")) {
        cli_error("--key: expected primary or secondary, got '%s'", which);
        return CLI_EXIT_USAGE;
    }
    json_t *dev = NULL;
    int rc = get_device(ctx, id, &dev);
    if (rc != CLI_EXIT_OK)
        return rc;
    json_t *authn = json_object_get(dev, "authentication");
    const char *type = json_string_value(json_object_get(authn, "type"));
    const char *key = json_string_value(
        json_object_get(json_object_get(authn, "symmetricKey"),
                        which && !strcmp(which, "secondary") ? "secondaryKey" : "primaryKey"));
    char cs[2048];
    if (type && strcmp(type, "sas") != 0)
        snprintf(cs, sizeof cs, "HostName=%s;DeviceId=%s;x509=true", ctx->host, id);
    else if (key && key[0])
        snprintf(cs, sizeof cs, "HostName=%s;DeviceId=%s;SharedAccessKey=%s", ctx->host, id, key);
    else
        cs[0] = '\0';
    if (!cs[0]) {
        cli_error("device %s has no symmetric key", id);
        rc = CLI_EXIT_ERROR;
    } else if (ctx->json) {
        json_t *j = json_pack("{s:s}", "connectionString", cs);
        cli_print_json(j);
        json_decref(j);
    } else {
        puts(cs);
    }
    explicit_bzero(cs, sizeof cs);
    json_decref(dev);
    return rc;
}

/* enable / disable: read, change status, write back with the read etag (or --etag). */
static int set_status(cli_ctx *ctx, const cli_args *a, const char *status)
{
    const char *id = cli_arg(a, "device-id"), *etag = cli_arg(a, "etag");
    json_t *dev = NULL;
    int rc = get_device(ctx, id, &dev);
    if (rc != CLI_EXIT_OK)
        return rc;
    json_object_set_new(dev, "status", json_string(status));
    if (cli_arg(a, "reason"))
        json_object_set_new(dev, "statusReason", json_string(cli_arg(a, "reason")));
    const char *read_etag = json_string_value(json_object_get(dev, "etag"));
    rc = put_device(ctx, id, dev, etag ? etag : read_etag ? read_etag : "*");
    json_decref(dev);
    return rc;
}

static int cmd_enable(cli_ctx *ctx, const cli_args *a)
{
    return set_status(ctx, a, "enabled");
}

static int cmd_disable(cli_ctx *ctx, const cli_args *a)
{
    return set_status(ctx, a, "disabled");
}

#define OPT_ID                                                                                     \
    {                                                                                              \
        "device-id", CLI_OPT_VALUE, "ID", "The device's id", true                                  \
    }

static const cli_opt create_opts[] = {
    OPT_ID,
    {"auth", CLI_OPT_VALUE, "sas|x509|x509-ca", "Authentication (default sas)", false},
    {"primary-key", CLI_OPT_VALUE, "KEY", "Base64 key (default: generated by the hub)", false},
    {"secondary-key", CLI_OPT_VALUE, "KEY", "Base64 key (default: generated by the hub)", false},
    {"primary-thumbprint", CLI_OPT_VALUE, "HEX", "Certificate thumbprint for --auth x509", false},
    {"secondary-thumbprint", CLI_OPT_VALUE, "HEX", "Second thumbprint (default: the primary)",
     false},
    {"status", CLI_OPT_VALUE, "enabled|disabled", "Initial status (default enabled)", false},
    {"status-reason", CLI_OPT_VALUE, "TEXT", "Why the status is what it is", false},
};
static const cli_opt list_opts[] = {
    {"top", CLI_OPT_VALUE, "N", "At most N devices (1-1000, default 1000)", false},
};
static const cli_opt id_opts[] = {OPT_ID};
static const cli_opt delete_opts[] = {
    OPT_ID,
    {"etag", CLI_OPT_VALUE, "ETAG", "Delete only if the device's etag matches (default: any)",
     false},
};
static const cli_opt cs_opts[] = {
    OPT_ID,
    {"key", CLI_OPT_VALUE, "primary|secondary", "Which key (default primary)", false},
};
static const cli_opt status_opts[] = {
    OPT_ID,
    {"reason", CLI_OPT_VALUE, "TEXT", "Status reason to record", false},
    {"etag", CLI_OPT_VALUE, "ETAG", "Update only if the device's etag matches", false},
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const cli_cmd device_cmds[] = {
    {"create", "Create a device identity (keys are generated unless given).", create_opts,
     N(create_opts), NULL, 0, 0, cmd_create, NULL},
    {"list", "List device identities.", list_opts, N(list_opts), NULL, 0, 0, cmd_list, NULL},
    {"show", "Show a device identity.", id_opts, N(id_opts), NULL, 0, 0, cmd_show, NULL},
    {"delete", "Delete a device identity (drops its connection).", delete_opts, N(delete_opts),
     NULL, 0, 0, cmd_delete, NULL},
    {"connection-string", "Print the device's connection string.", cs_opts, N(cs_opts), NULL, 0, 0,
     cmd_connection_string, NULL},
    {"enable", "Enable a device (it may connect again).", status_opts, N(status_opts), NULL, 0, 0,
     cmd_enable, NULL},
    {"disable", "Disable a device (refused at connect; a live connection is dropped).", status_opts,
     N(status_opts), NULL, 0, 0, cmd_disable, NULL},
};

const cli_group cli_group_device = {"device", "Device identities: create, list, show, delete, keys",
                                    device_cmds, N(device_cmds)};
