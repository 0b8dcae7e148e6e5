/* What the screen shows of device management: the time zone and boot time as configd reports
 * them, and a short log of the changes the DM capabilities made through configd. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "toaster.h"

#define REFRESH_MS 5000 /* local time moves, and someone may change the zone locally */

/* Reads are not worth a line on screen; everything else is a change an operator asked for. */
static bool is_read_only(const char *op)
{
    size_t n = strlen(op);
    return strcmp(op, "system.info") == 0 || (n > 4 && strcmp(op + n - 4, ".get") == 0) ||
           strstr(op, ".list") != NULL || strstr(op, ".read") != NULL;
}

static const char *brief_args(json_t *args, char *buf, size_t cap)
{
    buf[0] = '\0';
    const char *key;
    json_t *v;
    json_object_foreach(args, key, v)
    {
        if (json_is_string(v)) {
            snprintf(buf, cap, " %s=%s", key, json_string_value(v));
            break;
        }
    }
    return buf;
}

/* The capabilities' configd line, with a note of every change they make: the toaster learns of
 * a new time zone or an accepted reboot from the effect itself, whatever asked for it. */
iotdm_result toaster_configd_call_fds(void *ctx, const char *op, json_t *args, const int *fds,
                                      size_t nfds, json_t **out_result, char *err, size_t err_cap)
{
    toaster_app *app = ctx;
    iotdm_result r =
        agent_configd_call_fds(&app->configd, op, args, fds, nfds, out_result, err, err_cap);
    if (is_read_only(op))
        return r;
    char what[80];
    brief_args(args, what, sizeof what);
    if (r == IOTDM_OK)
        toaster_dm_event(app, "%s%s: ok", op, what);
    else
        toaster_dm_event(app, "%s%s: %s", op, what, err);
    if (strcmp(op, "system.reboot") == 0)
        snprintf(app->dm.reboot_cmd, sizeof app->dm.reboot_cmd, "%s",
                 r == IOTDM_OK ? "scheduled (the device reboots)" : "failed");
    app->dm.refresh = true;
    return r;
}

iotdm_result toaster_configd_call(void *ctx, const char *op, json_t *args, json_t **out_result,
                                  char *err, size_t err_cap)
{
    return toaster_configd_call_fds(ctx, op, args, NULL, 0, out_result, err, err_cap);
}

void toaster_dm_event(toaster_app *app, const char *fmt, ...)
{
    char *line = app->dm.events[app->dm.nevents % TOASTER_EVENTS];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    size_t n = strftime(line, TOASTER_EVENT_CHARS, "%H:%M:%S ", &tm);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, TOASTER_EVENT_CHARS - n, fmt, ap);
    va_end(ap);
    app->dm.nevents++;
}

static void copy_string(char *dst, size_t cap, json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    snprintf(dst, cap, "%s", s ? s : "?");
}

void toaster_dm_refresh(toaster_app *app, int64_t now_ms)
{
    toaster_dm_view *v = &app->dm;
    json_t *got = NULL;
    char err[256];
    if (agent_configd_call(&app->configd, "time.get", NULL, &got, err, sizeof err) == IOTDM_OK) {
        copy_string(v->time_zone, sizeof v->time_zone, got, "timeZone");
        copy_string(v->local_time, sizeof v->local_time, got, "localTime");
    } else {
        snprintf(v->time_zone, sizeof v->time_zone, "(configd unreachable)");
        v->local_time[0] = '\0';
    }
    json_decref(got);
    got = NULL;
    if (agent_configd_call(&app->configd, "system.info", NULL, &got, err, sizeof err) == IOTDM_OK)
        copy_string(v->boot_time, sizeof v->boot_time, got, "bootTime");
    json_decref(got);
    v->refresh = false;
    v->next_refresh_ms = now_ms + REFRESH_MS;
}

int64_t toaster_dm_next_due_ms(toaster_app *app)
{
    /* A change was just made: show it on the next round rather than in up to 5 s. */
    return app->dm.refresh ? 0 : app->dm.next_refresh_ms;
}
