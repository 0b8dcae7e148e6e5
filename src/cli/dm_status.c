/* iotdm dm status: each dm property's desired value, reported value and PnP acknowledgement. */
#include <stdlib.h>
#include <string.h>

#include "cli/dm.h"

#define CELL_MAX 48

typedef struct {
    const char *state; /* "ok", "pending", "failed", or NULL when nothing is known */
    json_int_t code, version, desired_version;
    const char *description;
} dm_ack;

/* The desired $version that last changed the property ($metadata), else the section's. */
static json_int_t desired_version_of(const json_t *desired, const char *name)
{
    const json_t *meta = json_object_get(json_object_get(desired, "$metadata"), DM_COMPONENT);
    const json_t *v = json_object_get(json_object_get(meta, name), "$lastUpdatedVersion");
    if (json_is_integer(v))
        return json_integer_value(v);
    return json_integer_value(json_object_get(desired, "$version"));
}

/* The PnP rule: 202 or an ack for an older desired version is pending; 2xx ok; else failed. */
static dm_ack ack_of(const json_t *desired_value, const json_t *reported, json_int_t want)
{
    dm_ack k = {NULL, 0, 0, want, NULL};
    const json_t *ac = json_object_get(reported, "ac");
    if (!json_is_integer(ac)) {
        k.state = desired_value && !json_is_null(desired_value) ? "pending" : NULL;
        return k;
    }
    k.code = json_integer_value(ac);
    k.version = json_integer_value(json_object_get(reported, "av"));
    k.description = json_string_value(json_object_get(reported, "ad"));
    bool current = !desired_value || k.version >= want;
    if (k.code == 202 || !current)
        k.state = "pending";
    else if (k.code >= 200 && k.code < 300)
        k.state = "ok";
    else
        k.state = "failed";
    return k;
}

static json_t *ack_json(const dm_ack *k)
{
    if (!k->state)
        return json_null();
    json_t *j = json_pack("{s:s, s:I, s:I, s:I}", "state", k->state, "code", k->code, "version",
                          k->version, "desiredVersion", k->desired_version);
    if (k->description)
        json_object_set_new(j, "description", json_string(k->description));
    return j;
}

static char *ack_text(const dm_ack *k)
{
    char buf[512];
    if (!k->state)
        snprintf(buf, sizeof buf, "-");
    else if (!k->code)
        snprintf(buf, sizeof buf, "pending (no acknowledgement yet)");
    else if (k->description && k->description[0])
        snprintf(buf, sizeof buf, "%s (%lld: %s)", k->state, (long long)k->code, k->description);
    else
        snprintf(buf, sizeof buf, "%s (%lld)", k->state, (long long)k->code);
    return strdup(buf);
}

static void add_row(cli_table *t, json_t *all, const json_t *p, const json_t *desired,
                    const json_t *reported)
{
    const char *name = json_string_value(json_object_get(p, "name"));
    bool writable = json_is_true(json_object_get(p, "writable"));
    const json_t *dv = json_object_get(json_object_get(desired, DM_COMPONENT), name);
    const json_t *rraw = json_object_get(json_object_get(reported, DM_COMPONENT), name);
    const json_t *rv = writable && json_is_object(rraw) && json_object_get(rraw, "ac")
                           ? json_object_get(rraw, "value")
                           : rraw;
    dm_ack k = {NULL, 0, 0, 0, NULL};
    if (writable)
        k = ack_of(dv, rraw, desired_version_of(desired, name));
    json_object_set_new(all, name,
                        json_pack("{s:b, s:O?, s:O?, s:o}", "writable", writable, "desired", dv,
                                  "reported", rv, "ack", ack_json(&k)));
    char *cells[4] = {strdup(name), writable ? cli_cell_text(dv, CELL_MAX) : strdup("(read-only)"),
                      cli_cell_text(rv, CELL_MAX), ack_text(&k)};
    cli_table_add(t, (const char *const *)cells);
    for (size_t i = 0; i < 4; i++)
        free(cells[i]);
}

int dm_status_run(cli_ctx *ctx, const dm_group *g, const char *device_id)
{
    char esc[1024], path[1100];
    if (!cli_path_escape(device_id, esc, sizeof esc)) {
        cli_error("device id too long");
        return CLI_EXIT_USAGE;
    }
    snprintf(path, sizeof path, "/twins/%s", esc);
    cli_response r;
    cli_request rq = {.method = "GET", .path = path};
    int rc = cli_http_call(ctx, &rq, &r);
    if (rc != CLI_EXIT_OK) {
        cli_response_free(&r);
        return rc;
    }
    const json_t *props = json_object_get(r.json, "properties");
    const json_t *desired = json_object_get(props, "desired");
    const json_t *reported = json_object_get(props, "reported");
    static const char *const hdr[] = {"PROPERTY", "DESIRED", "REPORTED", "ACK"};
    cli_table t;
    cli_table_init(&t, hdr, 4);
    json_t *all = json_object();
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(g->iface, "contents"), i, e)
    {
        if (dm_is_type(e, "Property") && json_is_string(json_object_get(e, "name")))
            add_row(&t, all, e, desired, reported);
    }
    if (ctx->json) {
        json_t *doc = json_pack("{s:s, s:o}", "deviceId", device_id, "properties", all);
        cli_print_json(doc);
        json_decref(doc);
    } else {
        cli_table_print(stdout, &t);
        json_decref(all);
    }
    cli_table_free(&t);
    cli_response_free(&r);
    return rc;
}
