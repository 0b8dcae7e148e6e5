/* GET /iotdm/models and /iotdm/models/{dtmi}: the DTDL interfaces (models/) that the dashboard
 * and the CLI render forms and commands from. Read-only; any service policy may read them. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/log.h"
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

/* The models as served: read once at start (the hub's own files, which do not change while it
 * runs), each kept as its JSON text, so that a request costs a copy and no file system access. */
typedef struct {
    char *id;
    char *text;
    size_t len;
} model_text;

struct hub_models {
    char *all; /* the array of every model */
    size_t all_len;
    model_text *items;
    size_t n;
};

static char *dump(const json_t *j, size_t *out_len)
{
    char *jt = json_dumps(j, JSON_COMPACT);
    char *copy = jt ? xstrdup(jt) : NULL;
    free(jt); /* jansson's allocator */
    *out_len = copy ? strlen(copy) : 0;
    return copy;
}

iotdm_result hub_models_load(hub *h)
{
    hub_models *m = xcalloc(1, sizeof *m);
    json_t *all = load_models(h->cfg.models_dir);
    if (!m || !all) {
        xfree(m);
        json_decref(all);
        return -ENOMEM;
    }
    h->models = m;
    m->items = xcalloc(json_array_size(all) + 1, sizeof *m->items);
    m->all = dump(all, &m->all_len);
    iotdm_result r = m->items && m->all ? IOTDM_OK : -ENOMEM;
    size_t i;
    json_t *one;
    json_array_foreach(all, i, one)
    {
        if (r != IOTDM_OK)
            break;
        model_text *t = &m->items[m->n];
        t->id = xstrdup(json_string_value(json_object_get(one, "@id")));
        t->text = dump(one, &t->len);
        if (!t->id || !t->text)
            r = -ENOMEM;
        m->n++;
    }
    json_decref(all);
    if (r == IOTDM_OK)
        log_info("http", "models loaded count=%zu dir=%s", m->n, h->cfg.models_dir);
    return r;
}

void hub_models_free(hub *h)
{
    hub_models *m = h->models;
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++) {
        xfree(m->items[i].id);
        xfree(m->items[i].text);
    }
    xfree(m->items);
    xfree(m->all);
    xfree(m);
    h->models = NULL;
}

static void send_text(http_ctx *cx, const char *text, size_t len)
{
    char *copy = xmalloc(len + 1);
    if (!copy) {
        http_send_result_error(cx, -ENOMEM, "cannot send the model");
        return;
    }
    memcpy(copy, text, len);
    http_send_bytes_take(cx, 200, "application/json; charset=utf-8", copy, len);
}

static void models(http_ctx *cx)
{
    const hub_models *m = cx->h->models;
    if (cx->nsegments == 2) {
        send_text(cx, m->all, m->all_len);
        return;
    }
    for (size_t i = 0; i < m->n; i++) {
        if (strcmp(m->items[i].id, cx->segments[2]) == 0) {
            send_text(cx, m->items[i].text, m->items[i].len);
            return;
        }
    }
    http_send_error(cx, HUB_ERR_NOT_FOUND, "no model with id '%s'", cx->segments[2]);
}

const http_route http_models_routes[] = {
    {"iotdm/models", HTTPD_GET, HTTP_AUTH_POLICY, HUB_RIGHT_SERVICE_CONNECT, HTTP_BODY_NONE, false,
     NULL, models, 0},
    {"iotdm/models/*", HTTPD_GET, HTTP_AUTH_POLICY, HUB_RIGHT_SERVICE_CONNECT, HTTP_BODY_NONE,
     false, NULL, models, 0},
    {NULL, 0, 0, 0, 0, false, NULL, NULL, 0},
};
