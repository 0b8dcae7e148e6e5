/* GET /iotdm/models and /iotdm/models/{dtmi}: the DTDL interfaces (models/) that the dashboard
 * and the CLI render forms and commands from. Read-only; any service policy may read them. */
#include <dirent.h>
#include <stdio.h>
#include <string.h>

#include "hub/http/internal.h"

static json_t *load_models(const char *dir)
{
    json_t *all = json_array();
    DIR *d = opendir(dir);
    if (!d)
        return all;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 5, ".json") != 0 || e->d_name[0] == '.')
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        json_error_t err;
        json_t *m = json_load_file(path, 0, &err);
        if (json_is_object(m) && json_is_string(json_object_get(m, "@id")))
            json_array_append_new(all, m);
        else
            json_decref(m);
    }
    closedir(d);
    return all;
}

/* A few small files from the models folder, read on the loop: they are the hub's own, not input
 * from a peer, and the dashboard asks for them once per page. */
static void models(http_ctx *cx)
{
    json_t *all = load_models(cx->h->cfg.models_dir);
    if (cx->nsegments == 2) {
        http_send_json(cx, 200, all);
        return;
    }
    size_t i;
    json_t *m;
    json_array_foreach(all, i, m)
    {
        if (strcmp(json_string_value(json_object_get(m, "@id")), cx->segments[2]) == 0) {
            json_incref(m);
            json_decref(all);
            http_send_json(cx, 200, m);
            return;
        }
    }
    json_decref(all);
    http_send_error(cx, HUB_ERR_NOT_FOUND, "no model with id '%s'", cx->segments[2]);
}

const http_route http_models_routes[] = {
    {"iotdm/models", HTTPD_GET, HTTP_AUTH_POLICY, HUB_RIGHT_SERVICE_CONNECT, HTTP_BODY_NONE, false,
     NULL, models, 0},
    {"iotdm/models/*", HTTPD_GET, HTTP_AUTH_POLICY, HUB_RIGHT_SERVICE_CONNECT, HTTP_BODY_NONE,
     false, NULL, models, 0},
    {NULL, 0, 0, 0, 0, false, NULL, NULL, 0},
};
