/* iotdm-loadgen register: creates the load devices with the bulk registry call (100 per call)
 * over a few HTTPS connections at once and, with --site-size, gives every twin a tag
 * site = "site-K" (K = index / site-size) in the same items. A hub without the bulk call gets
 * PUT /devices/{id} one by one and then PATCH /twins/{id} for the tags. (Hubs before commit
 * 6c2840c took bulk items' tags and dropped them: measure those with a fresh --hub-bin only for
 * the scenarios that do not query tags.) */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loadgen.h"

#define LG_BULK_MAX   100
#define LG_REG_CONNS  32
#define LG_ITEM_MAX   1024
#define LG_REG_REPORT 10000 /* a progress line every this many devices */

typedef enum { REG_BULK, REG_PUT, REG_TAG, REG_DONE } reg_step;

typedef struct lg_reg lg_reg;

typedef struct {
    lg_reg *reg;
    lg_http *conn;
    char *body;
    reg_step sent; /* the step of the request on the wire */
} reg_conn;

struct lg_reg {
    lg_app *app;
    reg_conn conns[LG_REG_CONNS];
    int nconns;
    int busy;       /* requests on the wire */
    reg_step step;  /* what the connections are doing */
    int next;       /* next device index (relative to --first) to hand out */
    int done_count; /* devices finished in this step */
    bool failed;
    int64_t step_start_us;
    void (*done)(lg_app *app, bool ok);
};

static void reg_pump(lg_reg *reg);

static void reg_finish(lg_reg *reg)
{
    lg_app *app = reg->app;
    void (*done)(lg_app *, bool) = reg->done;
    bool ok = !reg->failed;
    for (int i = 0; i < reg->nconns; i++) {
        lg_http_free(reg->conns[i].conn);
        free(reg->conns[i].body);
    }
    free(reg);
    done(app, ok);
}

static double step_seconds(const lg_reg *reg)
{
    return (double)(lg_now_us() - reg->step_start_us) / 1e6;
}

/* The step's last answer arrived: report it and start the next step. */
static void reg_step_over(lg_reg *reg)
{
    lg_app *app = reg->app;
    if (reg->step == REG_TAG) {
        printf("tagged=%d\n", reg->done_count);
        printf("tag_seconds=%.1f\n", step_seconds(reg));
        reg->step = REG_DONE;
    } else {
        printf("register_seconds=%.1f\n", step_seconds(reg));
        bool tags_sent = reg->step == REG_BULK; /* the bulk items carried them */
        if (tags_sent && app->o.site_size > 0 && !reg->failed)
            printf("tagged=%d\ntag_seconds=0.0\n", app->o.devices);
        reg->step = app->o.site_size > 0 && !reg->failed && !tags_sent ? REG_TAG : REG_DONE;
    }
    fflush(stdout);
    if (reg->step == REG_DONE) {
        reg_finish(reg);
        return;
    }
    reg->next = 0;
    reg->done_count = 0;
    reg->step_start_us = lg_now_us();
    fprintf(stderr, "loadgen: tagging %d twins (site size %d)\n", app->o.devices, app->o.site_size);
    reg_pump(reg);
}

static void reg_answered(lg_app *app, void *ctx, int status, const char *body, size_t len)
{
    reg_conn *rc = ctx;
    lg_reg *reg = rc->reg;
    reg->busy--;
    if (rc->sent == REG_BULK && (status == 404 || status == 405)) {
        if (reg->step == REG_BULK)
            fprintf(stderr, "loadgen: no bulk registry call (HTTP %d); one PUT per device\n",
                    status);
        reg->step = REG_PUT;
        reg->next = 0;
    } else if (status != 200 && !(status == 409 && reg->step == REG_PUT)) {
        /* 409 on PUT: the device is already there (a reused data directory). */
        if (!reg->failed)
            fprintf(stderr, "loadgen: registration failed with HTTP %d: %.*s\n", status,
                    (int)(len > 300 ? 300 : len), body ? body : "");
        reg->failed = true;
    } else {
        int before = reg->done_count / LG_REG_REPORT;
        reg->done_count += reg->step == REG_BULK ? LG_BULK_MAX : 1;
        if (reg->done_count / LG_REG_REPORT != before)
            fprintf(stderr, "loadgen: %s %d devices\n", reg->step == REG_TAG ? "tagged" : "created",
                    reg->done_count);
    }
    (void)app;
    reg_pump(reg);
}

static size_t device_json(lg_app *app, int index, bool bulk, char *out, size_t cap)
{
    char id[LG_ID_MAX];
    lg_device_id(app, index, id, sizeof id);
    const char *key = app->o.device_key;
    char tags[64] = "";
    if (bulk && app->o.site_size > 0)
        snprintf(tags, sizeof tags, ",\"tags\":{\"site\":\"site-%d\"}",
                 (app->o.first + index) / app->o.site_size);
    int n = snprintf(out, cap,
                     "{\"%s\":\"%s\",%s\"authentication\":{\"type\":\"sas\",\"symmetricKey\":"
                     "{\"primaryKey\":\"%s\",\"secondaryKey\":\"%s\"}}%s}",
                     bulk ? "id" : "deviceId", id, bulk ? "\"importMode\":\"createOrUpdate\"," : "",
                     key, key, tags);
    return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

/* Sends the next request of the current step on rc. */
static void reg_send(lg_reg *reg, reg_conn *rc)
{
    lg_app *app = reg->app;
    char path[LG_ID_MAX + 64], id[LG_ID_MAX];
    size_t pos = 0;
    int index = reg->next;
    rc->sent = reg->step;
    if (reg->step == REG_BULK) {
        int count = app->o.devices - index;
        if (count > LG_BULK_MAX)
            count = LG_BULK_MAX;
        rc->body[pos++] = '[';
        for (int i = 0; i < count; i++) {
            if (i)
                rc->body[pos++] = ',';
            pos += device_json(app, index + i, true, rc->body + pos, LG_ITEM_MAX);
        }
        rc->body[pos++] = ']';
        reg->next += count;
        snprintf(path, sizeof path, "/devices?api-version=%s", LG_API_VERSION);
        lg_http_request(rc->conn, "POST", path, NULL, rc->body, pos, reg_answered, rc);
        return;
    }
    lg_device_id(app, index, id, sizeof id);
    reg->next++;
    if (reg->step == REG_PUT) {
        pos = device_json(app, index, false, rc->body, LG_ITEM_MAX);
        snprintf(path, sizeof path, "/devices/%s?api-version=%s", id, LG_API_VERSION);
        lg_http_request(rc->conn, "PUT", path, NULL, rc->body, pos, reg_answered, rc);
        return;
    }
    int n = snprintf(rc->body, LG_ITEM_MAX, "{\"tags\":{\"site\":\"site-%d\"}}",
                     (app->o.first + index) / app->o.site_size);
    snprintf(path, sizeof path, "/twins/%s?api-version=%s", id, LG_API_VERSION);
    lg_http_request(rc->conn, "PATCH", path, NULL, rc->body, (size_t)n, reg_answered, rc);
}

/* Hands work to every idle connection; ends the step when nothing is left or in flight. */
static void reg_pump(lg_reg *reg)
{
    for (int i = 0; i < reg->nconns && !reg->failed && reg->next < reg->app->o.devices; i++) {
        reg_conn *rc = &reg->conns[i];
        if (lg_http_busy(rc->conn))
            continue;
        reg->busy++;
        reg_send(reg, rc);
    }
    bool nothing_left = reg->failed || reg->next >= reg->app->o.devices;
    if (nothing_left && reg->busy == 0)
        reg_step_over(reg);
}

void lg_register_devices(lg_app *app, void (*done)(lg_app *app, bool ok))
{
    lg_reg *reg = calloc(1, sizeof *reg);
    if (!reg)
        lg_fatal(app, "out of memory");
    reg->app = app;
    reg->done = done;
    reg->step = REG_BULK;
    reg->step_start_us = lg_now_us();
    int want = (app->o.devices + LG_BULK_MAX - 1) / LG_BULK_MAX;
    reg->nconns = want < LG_REG_CONNS ? want : LG_REG_CONNS;
    for (int i = 0; i < reg->nconns; i++) {
        reg_conn *rc = &reg->conns[i];
        rc->reg = reg;
        rc->body = malloc(LG_BULK_MAX * LG_ITEM_MAX + 16);
        rc->conn = lg_http_new(app);
        if (!rc->body || !rc->conn)
            lg_fatal(app, "cannot open an HTTPS connection to %s:%d", app->o.host,
                     app->o.https_port);
    }
    reg_pump(reg);
}
