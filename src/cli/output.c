/* Output: tables for people, JSON for scripts, and the hub's errors in Azure's words. */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

#define COLUMN_GAP 2

void cli_table_init(cli_table *t, const char *const *headers, size_t ncols)
{
    memset(t, 0, sizeof *t);
    t->headers = headers;
    t->ncols = ncols;
}

void cli_table_add(cli_table *t, const char *const *cells)
{
    if (t->nrows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        char **c = realloc(t->cells, cap * t->ncols * sizeof *c);
        if (!c)
            return;
        t->cells = c;
        t->cap = cap;
    }
    for (size_t i = 0; i < t->ncols; i++)
        t->cells[t->nrows * t->ncols + i] = strdup(cells[i] ? cells[i] : "-");
    t->nrows++;
}

/* Display width: UTF-8 code points, so accented names line up. */
static size_t text_width(const char *s)
{
    size_t w = 0;
    for (; s && *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            w++;
    return w;
}

static void print_cell(FILE *out, const char *s, size_t width, bool last)
{
    fputs(s, out);
    if (!last)
        fprintf(out, "%*s", (int)(width - text_width(s) + COLUMN_GAP), "");
}

void cli_table_print(FILE *out, const cli_table *t)
{
    size_t width[32] = {0};
    size_t ncols = t->ncols < 32 ? t->ncols : 32;
    for (size_t c = 0; c < ncols; c++) {
        width[c] = text_width(t->headers[c]);
        for (size_t r = 0; r < t->nrows; r++) {
            size_t w = text_width(t->cells[r * t->ncols + c]);
            if (w > width[c])
                width[c] = w;
        }
    }
    for (size_t c = 0; c < ncols; c++)
        print_cell(out, t->headers[c], width[c], c + 1 == ncols);
    fputc('\n', out);
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t c = 0; c < ncols; c++)
            print_cell(out, t->cells[r * t->ncols + c] ? t->cells[r * t->ncols + c] : "-", width[c],
                       c + 1 == ncols);
        fputc('\n', out);
    }
}

void cli_table_free(cli_table *t)
{
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof *t);
}

void cli_print_json(const json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_ENCODE_ANY);
    if (s) {
        puts(s);
        free(s);
    }
}

char *cli_cell_text(const json_t *v, size_t max_len)
{
    char *s;
    if (!v || json_is_null(v))
        s = strdup("-");
    else if (json_is_string(v))
        s = strdup(json_string_value(v));
    else
        s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (s && max_len > 3 && strlen(s) > max_len) {
        /* Cut on a code-point boundary so the table stays valid UTF-8. */
        size_t n = max_len - 3;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
        memcpy(s + n, "...", 4);
    }
    return s;
}

void cli_print_fields(const json_t *obj, const cli_field *fields, size_t n)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++)
        if (strlen(fields[i].label) > w)
            w = strlen(fields[i].label);
    for (size_t i = 0; i < n; i++) {
        const json_t *v = obj;
        char path[128];
        snprintf(path, sizeof path, "%s", fields[i].path);
        char *save = NULL;
        for (char *seg = strtok_r(path, ".", &save); seg && v; seg = strtok_r(NULL, ".", &save))
            v = json_object_get(v, seg);
        char *text = cli_cell_text(v, 0);
        printf("%-*s  %s\n", (int)w, fields[i].label, text && text[0] ? text : "-");
        free(text);
    }
}

json_t *cli_strip_metadata(const json_t *v, bool drop_version)
{
    if (!json_is_object(v))
        return json_deep_copy(v);
    json_t *out = json_object();
    const char *k;
    json_t *m;
    json_object_foreach((json_t *)v, k, m)
    {
        if (!strcmp(k, "$metadata") || (drop_version && !strcmp(k, "$version")))
            continue;
        json_object_set_new(out, k, cli_strip_metadata(m, drop_version));
    }
    return out;
}

/* Azure's legacy error body: {"Message":"ErrorCode:<Name>;<text>", …}; newer hubs put a JSON
 * document in Message ({"errorCode":404103,"message":"…"}); DPS answers that document itself. */
static void hub_error_text(const cli_response *r, char *code, size_t code_cap, char *text,
                           size_t text_cap)
{
    snprintf(code, code_cap, "%s", r->error_code);
    const json_t *number = json_object_get(r->json, "errorCode");
    if (!code[0] && json_is_integer(number))
        snprintf(code, code_cap, "%lld", (long long)json_integer_value(number));
    text[0] = '\0';
    const char *msg = json_string_value(json_object_get(r->json, "Message"));
    if (!msg)
        msg = json_string_value(json_object_get(r->json, "message"));
    if (msg && !strncmp(msg, "ErrorCode:", 10)) {
        const char *semi = strchr(msg, ';');
        size_t n = semi ? (size_t)(semi - msg - 10) : strlen(msg + 10);
        if (!code[0])
            snprintf(code, code_cap, "%.*s", (int)n, msg + 10);
        snprintf(text, text_cap, "%s", semi ? semi + 1 : "");
    } else if (msg && msg[0] == '{') {
        json_t *inner = json_loads(msg, 0, NULL);
        const char *m = json_string_value(json_object_get(inner, "message"));
        snprintf(text, text_cap, "%s", m ? m : msg);
        json_decref(inner);
    } else if (msg) {
        snprintf(text, text_cap, "%s", msg);
    } else if (r->body && r->len) {
        snprintf(text, text_cap, "%.*s", (int)(r->len > 400 ? 400 : r->len), r->body);
    }
}

void cli_print_hub_error(const cli_response *r)
{
    char code[96], text[1024];
    hub_error_text(r, code, sizeof code, text, sizeof text);
    if (code[0] && text[0])
        cli_error("%s: %s", code, text);
    else if (code[0] || text[0])
        cli_error("HTTP %ld: %s", r->status, code[0] ? code : text);
    else
        cli_error("the hub answered HTTP %ld", r->status);
}

void cli_response_error_code(cli_response *r)
{
    if (r->error_code[0] || r->status < 300)
        return;
    char code[sizeof r->error_code], text[8];
    hub_error_text(r, code, sizeof code, text, sizeof text);
    memcpy(r->error_code, code, sizeof code);
}
