/* The toaster itself: a simulated heating element, its PnP component "toaster" (writable
 * darkness, read-only state, command toast) and its telemetry on the shared connection. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "toaster.h"

#define SECONDS_PER_DARKNESS 3 /* darkness 1 toasts 3 s, darkness 5 toasts 15 s */
#define AMBIENT_C            22.0
#define TELEMETRY_BUSY_MS    1000 /* while toasting the operator wants to watch the curve */
#define TELEMETRY_IDLE_MS    10000
#define STEP_MS              200

static double target_temperature(int darkness)
{
    return 150.0 + 25.0 * darkness;
}

static void report_state(toaster_app *app)
{
    char value[96];
    snprintf(value, sizeof value, "\"%s\"", app->toaster.toasting ? "toasting" : "idle");
    iotdm_result r = iotdm_report_property(app->client, TOASTER_COMPONENT, "state", value);
    if (r == IOTDM_OK) {
        snprintf(value, sizeof value, "%u", app->toaster.toasts_made);
        r = iotdm_report_property(app->client, TOASTER_COMPONENT, "toastsMade", value);
    }
    if (r != IOTDM_OK)
        toaster_status(app, "cannot report the state: %s", iotdm_result_message(r));
}

static void send_telemetry(toaster_app *app, int64_t now_ms)
{
    toaster_model *t = &app->toaster;
    const char *state = t->toasting ? "toasting" : "idle";
    char body[160];
    int len = snprintf(body, sizeof body,
                       "{\"state\":\"%s\",\"temperature\":%.1f,\"progress\":%d,\"darkness\":%d}",
                       state, t->temperature, toaster_progress(app, now_ms), t->darkness);
    iotdm_property props[] = {
        {"$.ct", "application/json"},
        {"$.ce", "utf-8"},
        {"toasterState", state},
    };
    iotdm_result r = iotdm_telemetry_send(app->client, body, (size_t)len, props,
                                          sizeof props / sizeof *props, TOASTER_COMPONENT);
    if (r != IOTDM_OK)
        toaster_status(app, "telemetry not queued: %s", iotdm_result_message(r));
    t->next_telemetry_ms = now_ms + (t->toasting ? TELEMETRY_BUSY_MS : TELEMETRY_IDLE_MS);
}

int toaster_progress(const toaster_app *app, int64_t now_ms)
{
    const toaster_model *t = &app->toaster;
    if (!t->toasting || t->done_ms <= t->started_ms)
        return 0;
    int64_t p = (now_ms - t->started_ms) * 100 / (t->done_ms - t->started_ms);
    return p < 0 ? 0 : p > 100 ? 100 : (int)p;
}

iotdm_result toaster_start_toasting(toaster_app *app, const char *why)
{
    toaster_model *t = &app->toaster;
    if (t->toasting)
        return IOTDM_E_EXISTS;
    int64_t now = toaster_mono_ms();
    t->toasting = true;
    t->started_ms = now;
    t->done_ms = now + (int64_t)t->darkness * SECONDS_PER_DARKNESS * 1000;
    t->last_step_ms = now;
    toaster_status(app, "toasting (darkness %d, %s); reboots are refused until done", t->darkness,
                   why);
    report_state(app);
    send_telemetry(app, now);
    return IOTDM_OK;
}

static void finish_toasting(toaster_app *app, int64_t now_ms)
{
    app->toaster.toasting = false;
    app->toaster.toasts_made++;
    toaster_status(app, "toast ready; idle again (a reboot request will ask you)");
    report_state(app);
    send_telemetry(app, now_ms);
}

void toaster_model_step(toaster_app *app, int64_t now_ms)
{
    toaster_model *t = &app->toaster;
    /* First-order heating towards the element's target, cooling towards the room. */
    double target = t->toasting ? target_temperature(t->darkness) : AMBIENT_C;
    double dt = (double)(now_ms - t->last_step_ms) / 1000.0;
    if (dt > 0) {
        double k = dt / (t->toasting ? 3.0 : 20.0); /* heats fast, cools slowly */
        t->temperature += (target - t->temperature) * (k > 1.0 ? 1.0 : k);
        t->last_step_ms = now_ms;
    }
    if (t->toasting && now_ms >= t->done_ms)
        finish_toasting(app, now_ms);
    if (now_ms >= t->next_telemetry_ms)
        send_telemetry(app, now_ms);
}

int64_t toaster_model_next_due_ms(toaster_app *app)
{
    toaster_model *t = &app->toaster;
    int64_t due = t->next_telemetry_ms;
    if (t->toasting) {
        int64_t step = t->last_step_ms + STEP_MS; /* keeps the progress bar moving */
        due = step < due ? step : due;
        due = t->done_ms < due ? t->done_ms : due;
    }
    return due;
}

static void darkness_desired(void *ctx, const char *value_json, int64_t version, iotdm_ack *ack)
{
    (void)version;
    toaster_app *app = ctx;
    toaster_model *t = &app->toaster;
    char *end = NULL;
    long v = strtol(value_json, &end, 10);
    if (end == value_json || *end || v < 1 || v > 5) {
        snprintf(t->ack_text, sizeof t->ack_text, "darkness must be an integer from 1 to 5");
        ack->code = 400;
        ack->description = t->ack_text;
    } else {
        /* A toast in progress keeps the darkness it started with: the next one uses this. */
        t->darkness = (int)v;
        ack->code = 200;
        ack->description = t->toasting ? "applies to the next toast" : "applied";
        toaster_status(app, "darkness set to %d from the hub", t->darkness);
    }
    snprintf(t->value_text, sizeof t->value_text, "%d", t->darkness);
    ack->value_json = t->value_text;
}

static char *darkness_read(void *ctx)
{
    toaster_app *app = ctx;
    char text[16];
    snprintf(text, sizeof text, "%d", app->toaster.darkness);
    return strdup(text);
}

static int toast_command(void *ctx, const char *name, const char *payload, char **out_json)
{
    (void)name;
    (void)payload;
    toaster_app *app = ctx;
    char body[96];
    if (toaster_start_toasting(app, "from the hub") != IOTDM_OK) {
        *out_json = strdup("{\"message\":\"already toasting\"}");
        return 409;
    }
    snprintf(body, sizeof body, "{\"state\":\"toasting\",\"seconds\":%d}",
             app->toaster.darkness * SECONDS_PER_DARKNESS);
    *out_json = strdup(body);
    return 200;
}

iotdm_result toaster_model_start(toaster_app *app)
{
    toaster_model *t = &app->toaster;
    t->darkness = 3;
    t->temperature = AMBIENT_C;
    t->last_step_ms = toaster_mono_ms();
    t->next_telemetry_ms = t->last_step_ms; /* one reading right away */
    iotdm_property_handler h = {.struct_size = sizeof(iotdm_property_handler),
                                .component = TOASTER_COMPONENT,
                                .property = "darkness",
                                .on_desired = darkness_desired,
                                .read_state = darkness_read,
                                .ctx = app};
    iotdm_result r = iotdm_handler_add(app->client, &h);
    if (r == IOTDM_OK)
        r = iotdm_command_register(app->client, TOASTER_COMPONENT, "toast", toast_command, app);
    if (r == IOTDM_OK)
        report_state(app);
    return r;
}
