/* iotdm method invoke: direct methods (POST /twins/{id}/methods). */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

#define ID_ESC_MAX 1024
/* The hub answers within the response + connect timeouts; this allows for the network. */
#define HTTP_MARGIN_S 15

static void print_result(const cli_ctx *ctx, const json_t *res)
{
    if (ctx->json) {
        cli_print_json(res);
        return;
    }
    printf("Status: %lld\n", (long long)json_integer_value(json_object_get(res, "status")));
    char *s = json_dumps(json_object_get(res, "payload"), JSON_INDENT(2) | JSON_ENCODE_ANY);
    printf("Payload: %s\n", s ? s : "null");
    free(s);
}

int cli_invoke_method(cli_ctx *ctx, const char *device_id, const char *method, json_t *payload,
                      long timeout_s, long connect_timeout_s)
{
    char esc[ID_ESC_MAX], path[ID_ESC_MAX + 32];
    if (!cli_path_escape(device_id, esc, sizeof esc)) {
        cli_error("device id too long");
        return CLI_EXIT_USAGE;
    }
    snprintf(path, sizeof path, "/twins/%s/methods", esc);
    json_t *body = json_pack("{s:s, s:O, s:i, s:i}", "methodName", method, "payload",
                             payload ? payload : json_null(), "responseTimeoutInSeconds",
                             (int)timeout_s, "connectTimeoutInSeconds", (int)connect_timeout_s);
    cli_response r;
    cli_request rq = {.method = "POST",
                      .path = path,
                      .body = body,
                      .timeout_s = timeout_s + connect_timeout_s + HTTP_MARGIN_S};
    int rc = cli_http_call(ctx, &rq, &r);
    if (rc == CLI_EXIT_OK) {
        print_result(ctx, r.json);
        json_int_t status = json_integer_value(json_object_get(r.json, "status"));
        if (status >= 400) {
            cli_error("the device answered %s with status %lld", method, (long long)status);
            rc = CLI_EXIT_DEVICE;
        }
    }
    cli_response_free(&r);
    json_decref(body);
    return rc;
}

static int cmd_invoke(cli_ctx *ctx, const cli_args *a)
{
    long long timeout = 30, connect = 0;
    int rc = cli_arg_int(a, "timeout", 5, 300, &timeout);
    if (rc == CLI_EXIT_OK)
        rc = cli_arg_int(a, "connect-timeout", 0, 300, &connect);
    if (rc != CLI_EXIT_OK)
        return rc;
    json_t *payload = NULL;
    const char *text = cli_arg(a, "payload");
    if (text && !(payload = cli_json_arg("payload", text)))
        return CLI_EXIT_USAGE;
    rc = cli_invoke_method(ctx, cli_arg(a, "device-id"), cli_arg(a, "method-name"), payload,
                           (long)timeout, (long)connect);
    json_decref(payload);
    return rc;
}

static const cli_opt invoke_opts[] = {
    {"device-id", CLI_OPT_VALUE, "ID", "The device's id", true},
    {"method-name", CLI_OPT_VALUE, "NAME", "The method (a PnP command is component*name)", true},
    {"payload", CLI_OPT_VALUE, "JSON|@FILE", "The request payload (default null)", false},
    {"timeout", CLI_OPT_VALUE, "S", "Seconds to wait for the answer (5-300, default 30)", false},
    {"connect-timeout", CLI_OPT_VALUE, "S",
     "Seconds to wait for an offline device to connect (0-300, default 0)", false},
};

static const cli_cmd method_cmds[] = {
    {"invoke",
     "Invoke a direct method and print the device's status and payload (exit code 10 when the "
     "status is 400 or more).",
     invoke_opts, sizeof invoke_opts / sizeof invoke_opts[0], NULL, 0, 0, cmd_invoke, NULL},
};

const cli_group cli_group_method = {"method", "Direct methods: invoke", method_cmds, 1};
