/* Typed option values → the JSON of a dm property or command payload, checked against DTDL. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/dm.h"

#define AZURE_INT_MAX 4503599627370496LL /* twin integers are limited to ±2^52 */

static json_t *parse_enum(const dm_field *f, const char *text)
{
    size_t i;
    json_t *e;
    json_array_foreach(f->enum_values, i, e)
    {
        const json_t *v = json_object_get(e, "enumValue");
        const char *name = json_string_value(json_object_get(e, "name"));
        if (json_is_string(v) && !strcmp(json_string_value(v), text))
            return json_incref((json_t *)v);
        if (json_is_integer(v) && strtoll(text, NULL, 10) == json_integer_value(v) &&
            strspn(text, "-0123456789") == strlen(text) && text[0])
            return json_incref((json_t *)v);
        if (name && !strcmp(name, text)) /* the DTDL name works too */
            return json_incref((json_t *)v);
    }
    return NULL;
}

static json_t *parse_scalar(const dm_field *f, dm_type type, const char *text)
{
    char *end;
    errno = 0;
    switch (type) {
    case DM_T_BOOL:
        return !strcmp(text, "true") ? json_true() : !strcmp(text, "false") ? json_false() : NULL;
    case DM_T_INT: {
        long long n = strtoll(text, &end, 10);
        if (errno || end == text || *end || n > AZURE_INT_MAX || n < -AZURE_INT_MAX)
            return NULL;
        return json_integer(n);
    }
    case DM_T_DOUBLE: {
        double d = strtod(text, &end);
        if (errno || end == text || *end || !isfinite(d))
            return NULL;
        return json_real(d);
    }
    case DM_T_ENUM:
        return parse_enum(f, text);
    case DM_T_JSON:
        return cli_json_arg(f->option, text);
    default:
        return json_string(text); /* NULL when not UTF-8 */
    }
}

static const char *type_words(dm_type t)
{
    switch (t) {
    case DM_T_BOOL:
        return "true or false";
    case DM_T_INT:
        return "an integer";
    case DM_T_DOUBLE:
        return "a number";
    case DM_T_JSON:
        return "JSON";
    default:
        return "UTF-8 text";
    }
}

/* A field's value; arrays are comma lists ("" is the empty list). Prints the problem. */
static json_t *parse_field(const dm_field *f, const char *text)
{
    char allowed[200];
    dm_enum_list(f->enum_values, allowed, sizeof allowed);
    if (f->type != DM_T_ARRAY) {
        json_t *v = parse_scalar(f, f->type, text);
        if (!v && f->type == DM_T_ENUM)
            cli_error("--%s: expected one of %s, got '%s'", f->option, allowed, text);
        else if (!v && f->type != DM_T_JSON)
            cli_error("--%s: expected %s, got '%s'", f->option, type_words(f->type), text);
        return v;
    }
    json_t *arr = json_array();
    char *copy = strdup(text);
    for (char *p = copy, *next; p && *p; p = next) {
        next = strchr(p, ',');
        if (next)
            *next++ = '\0';
        json_t *v = parse_scalar(f, f->elem_type, p);
        if (!v && f->elem_type == DM_T_ENUM) {
            cli_error("--%s: element '%s' is not one of %s", f->option, p, allowed);
        } else if (!v) {
            cli_error("--%s: element '%s' is not %s", f->option, p, type_words(f->elem_type));
        }
        if (!v) {
            json_decref(arr);
            arr = NULL;
            break;
        }
        json_array_append_new(arr, v);
    }
    free(copy);
    return arr;
}

static const char *field_text(const dm_cmd *c, const cli_args *a, const dm_field *f)
{
    const char *text = cli_arg(a, f->option);
    if (!text && c->preset_option && !strcmp(c->preset_option, f->option))
        text = c->preset_value;
    return text;
}

/* Puts v at the field's path under *root, creating objects on the way; Map keys come from their
 * options. */
static int place(const dm_cmd *c, const cli_args *a, const dm_field *f, json_t **root, json_t *v)
{
    if (f->nsegs == 0) {
        json_decref(*root);
        *root = v;
        return CLI_EXIT_OK;
    }
    if (!json_is_object(*root)) {
        json_decref(*root);
        *root = json_object();
    }
    json_t *node = *root;
    for (size_t s = 0; s < f->nsegs; s++) {
        const char *name = f->segs[s].name;
        if (f->segs[s].key_field >= 0) {
            const dm_field *key = &c->fields[f->segs[s].key_field];
            name = cli_arg(a, key->option);
            if (!name || !name[0]) {
                cli_error("--%s needs --%s (which entry to set)", f->option, key->option);
                json_decref(v);
                return CLI_EXIT_USAGE;
            }
        }
        if (s + 1 == f->nsegs) {
            json_object_set_new(node, name, v);
            break;
        }
        json_t *child = json_object_get(node, name);
        if (!json_is_object(child)) {
            child = json_object();
            json_object_set_new(node, name, child);
        }
        node = child;
    }
    return CLI_EXIT_OK;
}

int dm_build_value(const dm_cmd *c, const cli_args *a, json_t **out)
{
    json_t *root = NULL;
    *out = NULL;
    for (size_t i = 0; i < c->nfields; i++) {
        const dm_field *f = &c->fields[i];
        const char *text = field_text(c, a, f);
        if (f->type == DM_T_KEY || !text)
            continue;
        json_t *v = parse_field(f, text);
        if (!v) {
            json_decref(root);
            return CLI_EXIT_USAGE;
        }
        int rc = place(c, a, f, &root, v);
        if (rc != CLI_EXIT_OK) {
            json_decref(root);
            return rc;
        }
    }
    *out = root;
    return CLI_EXIT_OK;
}
