/* iotdm monitor: live events (GET /iotdm/events, server-sent events), a line per event. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"

#define LINE_MAX_BYTES (1024 * 1024) /* the hub caps telemetry at 256 KB; base64 adds a third */

typedef struct {
    bool json;
    long long max_events, seen;
    char *line; /* the partial line carried over between chunks */
    size_t line_len;
    char event[64];
    char *data;
    size_t data_len;
    bool overflow;
} sse_state;

static volatile int stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void now_utc(char *out, size_t cap)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* "k=v k2=v2" of the application properties, for people. */
static void append_props(char *out, size_t cap, const json_t *props)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)props, k, v)
    {
        char *text = cli_cell_text(v, 80);
        size_t n = strlen(out);
        snprintf(out + n, cap - n, " %s=%s", k, text ? text : "");
        free(text);
    }
}

static void print_human(const char *type, const json_t *d)
{
    char when[40], summary[1024] = "";
    const char *t = json_string_value(json_object_get(d, "enqueuedTimeUtc"));
    if (t)
        snprintf(when, sizeof when, "%s", t);
    else
        now_utc(when, sizeof when);
    if (!strcmp(type, "telemetry")) {
        const char *enc = json_string_value(json_object_get(d, "bodyEncoding"));
        char *body = cli_cell_text(json_object_get(d, "body"), 600);
        snprintf(summary, sizeof summary, "%s%s", enc && !strcmp(enc, "base64") ? "base64:" : "",
                 body ? body : "");
        free(body);
        append_props(summary, sizeof summary, json_object_get(d, "properties"));
    } else if (!strcmp(type, "connection")) {
        char *s = cli_cell_text(json_object_get(d, "connectionState"), 40);
        snprintf(summary, sizeof summary, "%s", s ? s : "");
        free(s);
    } else if (!strcmp(type, "twin")) {
        char *patch = cli_cell_text(json_object_get(d, "patch"), 600);
        char *section = cli_cell_text(json_object_get(d, "section"), 20);
        snprintf(summary, sizeof summary, "%s v%lld %s", section ? section : "",
                 (long long)json_integer_value(json_object_get(d, "version")), patch ? patch : "");
        free(patch);
        free(section);
    } else if (!strcmp(type, "job")) {
        const json_t *st = json_object_get(d, "deviceJobStatistics");
        snprintf(summary, sizeof summary, "%s %s (%lld of %lld devices succeeded, %lld failed)",
                 json_string_value(json_object_get(d, "jobId")),
                 json_string_value(json_object_get(d, "status")),
                 (long long)json_integer_value(json_object_get(st, "succeededCount")),
                 (long long)json_integer_value(json_object_get(st, "deviceCount")),
                 (long long)json_integer_value(json_object_get(st, "failedCount")));
    } else if (!strcmp(type, "deviceJob")) {
        const char *code = json_string_value(json_object_get(json_object_get(d, "error"), "code"));
        snprintf(
            summary, sizeof summary, "%s %s%s%s", json_string_value(json_object_get(d, "jobId")),
            json_string_value(json_object_get(d, "status")), code ? " " : "", code ? code : "");
    } else {
        char *s = cli_cell_text(d, 600);
        snprintf(summary, sizeof summary, "%s", s ? s : "");
        free(s);
    }
    const char *dev = json_string_value(json_object_get(d, "deviceId"));
    printf("%s  %-10s  %s  %s\n", when, type, dev ? dev : "-", summary);
}

/* One complete event: a JSON line (the event's data with "event" added) or a line for people. */
static bool dispatch_event(sse_state *st)
{
    if (!st->data_len || st->overflow)
        return true;
    const char *type = st->event[0] ? st->event : "message";
    json_t *d = json_loadb(st->data, st->data_len, JSON_DECODE_ANY, NULL);
    if (!d)
        d = json_stringn(st->data, st->data_len);
    if (st->json) {
        if (json_is_object(d))
            json_object_set_new(d, "event", json_string(type));
        char *s = json_dumps(d, JSON_COMPACT | JSON_ENCODE_ANY);
        if (s)
            puts(s);
        free(s);
    } else {
        print_human(type, d);
    }
    json_decref(d);
    fflush(stdout);
    st->seen++;
    return !st->max_events || st->seen < st->max_events;
}

static bool on_line(sse_state *st, const char *line, size_t len)
{
    if (len == 0) {
        bool more = dispatch_event(st);
        st->event[0] = '\0';
        st->data_len = 0;
        st->overflow = false;
        return more;
    }
    if (line[0] == ':') /* a comment: the hub's keep-alive */
        return true;
    const char *colon = memchr(line, ':', len);
    size_t flen = colon ? (size_t)(colon - line) : len;
    const char *v = colon ? colon + 1 : line + len;
    size_t vlen = colon ? len - flen - 1 : 0;
    if (vlen && *v == ' ')
        v++, vlen--;
    if (flen == 5 && !memcmp(line, "event", 5)) {
        snprintf(st->event, sizeof st->event, "%.*s", (int)vlen, v);
    } else if (flen == 4 && !memcmp(line, "data", 4)) {
        if (st->data_len + vlen + 2 > LINE_MAX_BYTES) {
            st->overflow = true;
            return true;
        }
        char *d = realloc(st->data, st->data_len + vlen + 2);
        if (!d)
            return false;
        st->data = d;
        if (st->data_len)
            d[st->data_len++] = '\n';
        memcpy(d + st->data_len, v, vlen);
        st->data_len += vlen;
    }
    return true;
}

static bool on_data(void *arg, const char *data, size_t len)
{
    sse_state *st = arg;
    for (size_t i = 0; i < len; i++) {
        char c = data[i];
        if (c == '\n') {
            size_t n = st->line_len;
            if (n && st->line[n - 1] == '\r')
                n--;
            st->line_len = 0;
            if (!on_line(st, st->line ? st->line : "", n))
                return false;
            continue;
        }
        if (st->line_len + 1 >= LINE_MAX_BYTES)
            continue; /* an overlong line is cut; its event is dropped as malformed JSON */
        if (!st->line || (st->line_len & 4095) == 0) {
            char *l = realloc(st->line, st->line_len + 4096);
            if (!l)
                return false;
            st->line = l;
        }
        st->line[st->line_len++] = c;
    }
    return true;
}

static bool valid_from(const char *from)
{
    if (!strcmp(from, "start") || !strcmp(from, "end"))
        return true;
    return from[0] && strspn(from, "0123456789") == strlen(from);
}

static int cmd_monitor(cli_ctx *ctx, const cli_args *a)
{
    const char *from = cli_arg(a, "from") ? cli_arg(a, "from") : "end";
    const char *dev = cli_arg(a, "device-id");
    long long timeout = 0, max = 0;
    int rc = cli_arg_int(a, "timeout", 0, 1000000000, &timeout);
    if (rc == CLI_EXIT_OK)
        rc = cli_arg_int(a, "max-events", 1, 1000000000, &max);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (!valid_from(from)) {
        cli_error("--from: expected start, end or a sequence number, got '%s'", from);
        return CLI_EXIT_USAGE;
    }
    char query[1200], esc[1024] = "";
    if (dev && !cli_path_escape(dev, esc, sizeof esc)) {
        cli_error("device id too long");
        return CLI_EXIT_USAGE;
    }
    snprintf(query, sizeof query, "from=%s%s%s", from, dev ? "&deviceId=" : "", esc);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sse_state st = {.json = ctx->json, .max_events = max};
    cli_request rq = {.method = "GET",
                      .path = "/iotdm/events",
                      .query = query,
                      .accept = "text/event-stream",
                      .timeout_s = timeout ? (long)timeout : -1};
    rc = cli_http_stream(ctx, &rq, on_data, &st, &stop_requested);
    free(st.line);
    free(st.data);
    return rc;
}

static const cli_opt monitor_opts[] = {
    {"device-id", CLI_OPT_VALUE, "ID", "Only this device's events", false},
    {"from", CLI_OPT_VALUE, "start|end|SEQ",
     "Start of the retained history, now (default), or after event SEQ", false},
    {"timeout", CLI_OPT_VALUE, "S", "Stop after S seconds (default: until Ctrl-C)", false},
    {"max-events", CLI_OPT_VALUE, "N", "Stop after N events", false},
};

static const cli_cmd monitor_cmd[] = {
    {NULL,
     "Print live events: telemetry, connection-state and twin changes, one line each (JSON "
     "lines with --json).",
     monitor_opts, sizeof monitor_opts / sizeof monitor_opts[0], NULL, 0, 0, cmd_monitor, NULL},
};

const cli_group cli_group_monitor = {"monitor", "Live events: telemetry, connections, twin changes",
                                     monitor_cmd, 1};
