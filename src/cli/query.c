/* iotdm query: the IoT Hub query language (POST /devices/query), following x-ms-continuation. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/cli.h"

#define MAX_COLUMNS 24
#define CELL_MAX    60

/* Twins get a fixed summary; projections get one column per member seen (first-seen order). */
static size_t columns_for(const json_t *items, bool twins, const char **cols)
{
    static const char *const twin_cols[] = {"deviceId", "status", "connectionState",
                                            "lastActivityTime", "modelId"};
    if (twins) {
        memcpy(cols, twin_cols, sizeof twin_cols);
        return 5;
    }
    size_t n = 0, i;
    json_t *item;
    json_array_foreach(items, i, item)
    {
        const char *k;
        json_t *v;
        json_object_foreach(item, k, v)
        {
            size_t c = 0;
            while (c < n && strcmp(cols[c], k))
                c++;
            if (c == n && n < MAX_COLUMNS)
                cols[n++] = k;
        }
    }
    return n;
}

static void print_table(const json_t *items, bool twins)
{
    const char *cols[MAX_COLUMNS];
    size_t n = columns_for(items, twins, cols);
    bool scalars = n == 0 && json_array_size(items) > 0;
    if (scalars) {
        cols[0] = "value";
        n = 1;
    }
    cli_table t;
    cli_table_init(&t, cols, n);
    size_t i;
    json_t *item;
    json_array_foreach(items, i, item)
    {
        char *cells[MAX_COLUMNS];
        for (size_t c = 0; c < n; c++)
            cells[c] = cli_cell_text(scalars ? item : json_object_get(item, cols[c]), CELL_MAX);
        cli_table_add(&t, (const char *const *)cells);
        for (size_t c = 0; c < n; c++)
            free(cells[c]);
    }
    cli_table_print(stdout, &t);
    cli_table_free(&t);
}

/* One page: appends its items to all; *next is the continuation (NULL on the last page). */
static int fetch_page(cli_ctx *ctx, const json_t *body, long page_size, const char *cont,
                      json_t *all, char **next, bool *twins)
{
    cli_response r;
    cli_request rq = {.method = "POST",
                      .path = "/devices/query",
                      .body = body,
                      .continuation = cont,
                      .max_items = page_size};
    int rc = cli_http_call(ctx, &rq, &r);
    if (rc == CLI_EXIT_OK && !json_is_array(r.json)) {
        cli_error("the hub's query answer is not a JSON array");
        rc = CLI_EXIT_ERROR;
    }
    if (rc == CLI_EXIT_OK) {
        json_array_extend(all, r.json);
        *twins = !strcasecmp(r.item_type, "twin");
        *next = r.continuation && r.continuation[0] ? strdup(r.continuation) : NULL;
    }
    cli_response_free(&r);
    return rc;
}

static int cmd_query(cli_ctx *ctx, const cli_args *a)
{
    long long top = 0, page = 100;
    int rc = cli_arg_int(a, "top", 1, 1000000, &top);
    if (rc == CLI_EXIT_OK)
        rc = cli_arg_int(a, "page-size", 1, 1000, &page);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (top && top < page)
        page = top;
    json_t *body = json_pack("{s:s}", "query", a->pos[0]);
    json_t *all = json_array();
    char *cont = NULL;
    bool twins = false;
    do {
        char *next = NULL;
        rc = fetch_page(ctx, body, (long)page, cont, all, &next, &twins);
        free(cont);
        cont = next;
    } while (rc == CLI_EXIT_OK && cont && (!top || json_array_size(all) < (size_t)top));
    free(cont);
    while (top && json_array_size(all) > (size_t)top)
        json_array_remove(all, json_array_size(all) - 1);
    if (rc == CLI_EXIT_OK) {
        if (ctx->json)
            cli_print_json(all);
        else
            print_table(all, twins);
    }
    json_decref(all);
    json_decref(body);
    return rc;
}

static const cli_opt query_opts[] = {
    {"top", CLI_OPT_VALUE, "N", "At most N results (default: all pages)", false},
    {"page-size", CLI_OPT_VALUE, "N", "Results per request (1-1000, default 100)", false},
};

static const cli_cmd query_cmd[] = {
    {NULL,
     "Run an IoT Hub query, e.g. \"SELECT * FROM devices WHERE tags.site = 'b1'\", following "
     "continuation tokens over every page.",
     query_opts, sizeof query_opts / sizeof query_opts[0], "\"SELECT …\"", 1, 1, cmd_query, NULL},
};

const cli_group cli_group_query = {"query", "Query twins with the IoT Hub query language",
                                   query_cmd, 1};
