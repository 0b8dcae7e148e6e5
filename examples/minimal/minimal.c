/* A minimal device on libiotdm's public API: connect with a device key, report a property, answer
 * a direct method, send telemetry every few seconds, inside the application's own poll() loop.
 *
 *   iotdm-minimal HOST DEVICE_ID DEVICE_KEY STATE_DIR [CA_FILE]
 *
 * Stop it with Ctrl-C. Anything reported or sent while the hub is unreachable waits in the outbox
 * under STATE_DIR and goes out after the reconnect. */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "iotdm/iotdm.h"

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void log_line(void *ctx, iotdm_log_level level, const char *message)
{
    static const char *const names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
    (void)ctx;
    fprintf(stderr, "%s minimal: %s\n", names[level], message);
}

static void on_connection(void *ctx, iotdm_connection_state state, const char *reason)
{
    (void)ctx;
    fprintf(stderr, "INFO minimal: connection state %d (%s)\n", (int)state, reason);
}

/* "echo": answers 200 with the request payload. */
static int echo(void *ctx, const char *name, const char *payload_json, char **out_json)
{
    (void)ctx;
    (void)name;
    *out_json = strdup(payload_json);
    return 200;
}

static void send_reading(iotdm_client *client, int n)
{
    char body[64];
    int len = snprintf(body, sizeof body, "{\"reading\":%d}", n);
    iotdm_property props[] = {
        {"$.ct", "application/json"},
        {"$.ce", "utf-8"},
        {"source", "minimal"},
    };
    iotdm_result r = iotdm_telemetry_send(client, body, (size_t)len, props, 3, NULL);
    if (r != IOTDM_OK)
        fprintf(stderr, "WARN minimal: telemetry: %s\n", iotdm_result_message(r));
}

static int run(iotdm_client *client)
{
    char patch[128];
    snprintf(patch, sizeof patch, "{\"minimal\":{\"startedAt\":%lld}}", (long long)time(NULL));
    iotdm_result r = iotdm_twin_report(client, patch);
    if (r == IOTDM_OK)
        r = iotdm_method_register(client, "echo", echo, NULL);
    if (r != IOTDM_OK) {
        fprintf(stderr, "ERROR minimal: %s\n", iotdm_result_message(r));
        return 1;
    }
    int n = 0;
    time_t next = 0;
    while (!stop_requested) {
        if (time(NULL) >= next) {
            send_reading(client, n++);
            next = time(NULL) + 5;
        }
        int timeout = iotdm_client_next_timeout_ms(client);
        if (timeout < 0 || timeout > 1000)
            timeout = 1000; /* also wake up for our own telemetry timer */
        struct pollfd p = {.fd = iotdm_client_fd(client), .events = POLLIN};
        poll(&p, 1, timeout);
        r = iotdm_client_process(client);
        if (r < 0) {
            /* Only a misuse fails here (a NULL client, a call from inside a callback). */
            fprintf(stderr, "ERROR minimal: %s\n", iotdm_result_message(r));
            return 1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 5 || argc > 6) {
        fprintf(stderr, "usage: %s HOST DEVICE_ID DEVICE_KEY STATE_DIR [CA_FILE]\n", argv[0]);
        return 2;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    /* struct_size first: a later libiotdm reads only the members this program was built with
     * (the ABI rule in iotdm/client.h); iotdm_client_config_init does the same. */
    iotdm_client_config cfg = {
        .struct_size = sizeof(iotdm_client_config),
        .host = argv[1],
        .device_id = argv[2],
        .device_key = argv[3],
        .state_dir = argv[4],
        .ca_file = argc == 6 ? argv[5] : NULL,
        .log = log_line,
        .on_connection = on_connection,
    };
    iotdm_client *client;
    iotdm_result r = iotdm_client_new(&cfg, &client);
    if (r != IOTDM_OK) {
        fprintf(stderr, "ERROR minimal: cannot create the client: %s\n", iotdm_result_message(r));
        return 1;
    }
    int rc = run(client);
    iotdm_client_free(client);
    return rc;
}
