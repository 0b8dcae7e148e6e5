/* iotdm-e2e-device: a libiotdm device driven by the end-to-end tests. Commands arrive on stdin, one
 * per line; everything the library reports comes out on stdout as one JSON object per line.
 *
 *   iotdm-e2e-device --host H --device ID --state DIR [--key K | --cert F --keyfile F] [--ca F]
 *                    [--loop] [--backoff-max S] [--refused-retry S] [--sas-ttl S]
 *                    [--outbox-max-bytes N] [--telemetry-max-age S] [--no-c2d]
 *
 * Commands: report JSON | prop COMPONENT PROPERTY JSON | telemetry MID BODY | stats | desired |
 *           reportall | quit
 * Handlers: component "e2e", properties "setting" and "other" (ack 200 with the value) and
 * "failing" (ack 400). Methods: "echo" (200, the payload back), "fail" (500), "e2e*ping". */
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "iotdm/iotdm.h"

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

/* Prints one event line (steals obj). */
static void emit(json_t *obj)
{
    char *text = json_dumps(obj, JSON_COMPACT);
    pthread_mutex_lock(&out_lock);
    printf("%s\n", text ? text : "{}");
    fflush(stdout);
    pthread_mutex_unlock(&out_lock);
    free(text);
    json_decref(obj);
}

static void on_log(void *ctx, iotdm_log_level level, const char *message)
{
    static const char *const names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
    (void)ctx;
    fprintf(stderr, "%s lib: %s\n", names[level], message);
}

static void on_connection(void *ctx, iotdm_connection_state state, const char *reason)
{
    static const char *const names[] = {"disconnected", "connecting", "connected", "refused"};
    (void)ctx;
    emit(
        json_pack("{s:s,s:s,s:s}", "event", "connection", "state", names[state], "reason", reason));
}

static void on_desired_app(void *ctx, const char *json, int64_t version, bool full)
{
    (void)ctx;
    emit(json_pack("{s:s,s:I,s:b,s:s}", "event", "desired", "version", (json_int_t)version, "full",
                   full, "json", json));
}

static void on_setting(void *ctx, const char *value_json, int64_t version, iotdm_ack *out_ack)
{
    const char *property = ctx;
    bool fail = !strcmp(property, "failing");
    emit(json_pack("{s:s,s:s,s:I,s:s}", "event", "handler", "property", property, "version",
                   (json_int_t)version, "value", value_json));
    out_ack->code = fail ? 400 : 200;
    out_ack->description = fail ? "refused on purpose" : "applied";
    out_ack->value_json = NULL;
}

static char *read_setting(void *ctx)
{
    (void)ctx;
    return strdup("\"device-default\"");
}

static int on_method(void *ctx, const char *name, const char *payload_json, char **out_json)
{
    (void)ctx;
    emit(json_pack("{s:s,s:s,s:s}", "event", "method", "name", name, "payload", payload_json));
    if (!strcmp(name, "fail")) {
        *out_json = strdup("{\"error\":\"failed on purpose\"}");
        return 500;
    }
    *out_json = strdup(payload_json);
    return 200;
}

static void on_c2d(void *ctx, const void *body, size_t len, const iotdm_property *props,
                   size_t nprops)
{
    (void)ctx;
    json_t *p = json_object();
    for (size_t i = 0; i < nprops; i++)
        json_object_set_new(p, props[i].name, json_string(props[i].value));
    emit(json_pack("{s:s,s:s%,s:o}", "event", "c2d", "body", (const char *)body, len, "properties",
                   p));
}

static void emit_result(const char *cmd, iotdm_result r)
{
    emit(json_pack("{s:s,s:s,s:i,s:s}", "event", "result", "command", cmd, "result", r, "message",
                   iotdm_result_message(r)));
}

static void cmd_telemetry(iotdm_client *c, char *args)
{
    char *body = strchr(args, ' ');
    if (body)
        *body++ = '\0';
    iotdm_property props[] = {
        {"$.mid", args}, {"$.ct", "text/plain"}, {"$.ce", "utf-8"}, {"origin", "libiotdm e2e"}};
    emit_result("telemetry",
                iotdm_telemetry_send(c, body ? body : "", body ? strlen(body) : 0, props, 4, NULL));
}

static void cmd_prop(iotdm_client *c, char *args)
{
    char *property = strchr(args, ' ');
    char *value = property ? strchr(property + 1, ' ') : NULL;
    if (!value) {
        emit_result("prop", -EINVAL);
        return;
    }
    *property++ = '\0';
    *value++ = '\0';
    emit_result("prop", iotdm_report_property(c, args, property, value));
}

/* Runs one command line; returns false on "quit". */
static bool command(iotdm_client *c, char *line)
{
    line[strcspn(line, "\r\n")] = '\0';
    char *args = strchr(line, ' ');
    if (args)
        *args++ = '\0';
    if (!strcmp(line, "quit"))
        return false;
    if (!strcmp(line, "report")) {
        emit_result("report", iotdm_twin_report(c, args ? args : ""));
    } else if (!strcmp(line, "prop") && args) {
        cmd_prop(c, args);
    } else if (!strcmp(line, "telemetry") && args) {
        cmd_telemetry(c, args);
    } else if (!strcmp(line, "reportall")) {
        emit_result("reportall", iotdm_report_all(c));
    } else if (!strcmp(line, "stats")) {
        iotdm_outbox_stats s;
        iotdm_client_outbox_stats(c, &s);
        emit(json_pack("{s:s,s:I,s:I,s:I,s:i}", "event", "stats", "reported",
                       (json_int_t)s.reported_pending, "telemetry", (json_int_t)s.telemetry_pending,
                       "dropped", (json_int_t)s.telemetry_dropped, "state",
                       (int)iotdm_client_connection_state(c)));
    } else if (!strcmp(line, "desired")) {
        char *d = iotdm_twin_desired_copy(c);
        emit(json_pack("{s:s,s:s?}", "event", "desired-copy", "json", d));
        iotdm_free(d);
    } else {
        emit_result(line, -EINVAL);
    }
    return true;
}

static bool opt(int argc, char **argv, int *i, const char *name, const char **out)
{
    if (strcmp(argv[*i], name) || *i + 1 >= argc)
        return false;
    *out = argv[++*i];
    return true;
}

static unsigned num(const char *s)
{
    return s ? (unsigned)strtoul(s, NULL, 10) : 0;
}

static bool setup(iotdm_client *c, bool c2d)
{
    static const char *const props[] = {"setting", "other", "failing"};
    for (size_t i = 0; i < 3; i++) {
        iotdm_property_handler h = {.struct_size = sizeof(iotdm_property_handler),
                                    .component = "e2e",
                                    .property = props[i],
                                    .on_desired = on_setting,
                                    .read_state = read_setting,
                                    .ctx = (void *)props[i]};
        if (iotdm_handler_add(c, &h) != IOTDM_OK)
            return false;
    }
    return iotdm_method_register(c, "echo", on_method, NULL) == IOTDM_OK &&
           iotdm_method_register(c, "fail", on_method, NULL) == IOTDM_OK &&
           iotdm_command_register(c, "e2e", "ping", on_method, NULL) == IOTDM_OK &&
           iotdm_twin_on_desired(c, on_desired_app, NULL) == IOTDM_OK &&
           (!c2d || iotdm_c2d_on_message(c, on_c2d, NULL) == IOTDM_OK);
}

/* Host-loop mode: stdin and the client's descriptor in one poll(). */
static void run_loop(iotdm_client *c)
{
    char line[65536];
    for (;;) {
        struct pollfd p[2] = {{.fd = 0, .events = POLLIN},
                              {.fd = iotdm_client_fd(c), .events = POLLIN}};
        poll(p, 2, iotdm_client_next_timeout_ms(c));
        if (p[0].revents && (!fgets(line, sizeof line, stdin) || !command(c, line)))
            return;
        iotdm_result r = iotdm_client_process(c);
        if (r < 0) {
            fprintf(stderr, "iotdm_client_process: %s\n", iotdm_result_message(r));
            return;
        }
    }
}

int main(int argc, char **argv)
{
    iotdm_client_config cfg = {.struct_size = sizeof(iotdm_client_config),
                               .log = on_log,
                               .on_connection = on_connection,
                               .log_level = IOTDM_LOG_DEBUG};
    const char *backoff = NULL, *refused = NULL, *ttl = NULL, *max_bytes = NULL, *max_age = NULL;
    bool loop = false, c2d = true;
    for (int i = 1; i < argc; i++) {
        if (opt(argc, argv, &i, "--host", &cfg.host) ||
            opt(argc, argv, &i, "--device", &cfg.device_id) ||
            opt(argc, argv, &i, "--key", &cfg.device_key) ||
            opt(argc, argv, &i, "--cert", &cfg.cert_file) ||
            opt(argc, argv, &i, "--keyfile", &cfg.key_file) ||
            opt(argc, argv, &i, "--ca", &cfg.ca_file) ||
            opt(argc, argv, &i, "--state", &cfg.state_dir) ||
            opt(argc, argv, &i, "--backoff-max", &backoff) ||
            opt(argc, argv, &i, "--refused-retry", &refused) ||
            opt(argc, argv, &i, "--sas-ttl", &ttl) ||
            opt(argc, argv, &i, "--outbox-max-bytes", &max_bytes) ||
            opt(argc, argv, &i, "--telemetry-max-age", &max_age))
            continue;
        if (!strcmp(argv[i], "--loop"))
            loop = true;
        else if (!strcmp(argv[i], "--no-c2d"))
            c2d = false;
        else {
            fprintf(stderr, "unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    cfg.backoff_max_s = num(backoff);
    cfg.refused_retry_s = num(refused);
    cfg.sas_ttl_s = num(ttl);
    cfg.outbox_max_bytes = num(max_bytes);
    cfg.telemetry_max_age_s = num(max_age);
    iotdm_client *c;
    iotdm_result r = iotdm_client_new(&cfg, &c);
    if (r != IOTDM_OK || !setup(c, c2d)) {
        fprintf(stderr, "cannot set up the client: %s\n", iotdm_result_message(r));
        return 1;
    }
    emit(json_pack("{s:s,s:s}", "event", "started", "mode", loop ? "loop" : "thread"));
    if (loop) {
        run_loop(c);
    } else {
        r = iotdm_client_start(c);
        if (r < 0) {
            fprintf(stderr, "cannot start the client's thread: %s\n", iotdm_result_message(r));
            return 1;
        }
        char line[65536];
        while (fgets(line, sizeof line, stdin) && command(c, line))
            ;
    }
    iotdm_client_free(c);
    emit(json_pack("{s:s}", "event", "exited"));
    return 0;
}
