/* DTDL → dm subcommands: a set-<property> per writable Property, one per Command, and aliases.
 * Schemas are flattened into options: Object fields become --field, nested ones --parent-field,
 * a Map adds an option naming its key; what cannot be flattened is taken as JSON. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/dm.h"

typedef struct {
    const json_t *models;
    const json_t *iface;
    dm_cmd *c;
} flat_ctx;

void dm_kebab(const char *name, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; name[i] && n + 2 < cap; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (isupper(ch) && i > 0 && n > 0 && out[n - 1] != '-')
            out[n++] = '-';
        out[n++] = ch == '_' ? '-' : (char)tolower(ch);
    }
    out[n] = '\0';
}

bool dm_is_type(const json_t *entry, const char *type)
{
    const json_t *t = json_object_get(entry, "@type");
    if (json_is_string(t))
        return !strcmp(json_string_value(t), type);
    size_t i;
    json_t *v;
    json_array_foreach(t, i, v)
    {
        if (json_is_string(v) && !strcmp(json_string_value(v), type))
            return true;
    }
    return false;
}

/* A schema reference ("dtmi:…") resolved against every interface's "schemas"; primitives stay
 * strings. */
static const json_t *resolve(const flat_ctx *fx, const json_t *schema)
{
    const char *ref = json_string_value(schema);
    if (!ref || strncmp(ref, "dtmi:", 5) != 0)
        return schema;
    size_t i, j;
    json_t *m, *s;
    json_array_foreach(fx->models, i, m)
    {
        json_array_foreach(json_object_get(m, "schemas"), j, s)
        {
            if (json_is_string(json_object_get(s, "@id")) &&
                !strcmp(json_string_value(json_object_get(s, "@id")), ref))
                return s;
        }
    }
    return schema;
}

static dm_type primitive_type(const char *p)
{
    static const char *const strings[] = {"string", "dateTime", "date", "time", "duration"};
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++)
        if (!strcmp(p, strings[i]))
            return DM_T_STRING;
    if (!strcmp(p, "boolean"))
        return DM_T_BOOL;
    if (!strcmp(p, "integer") || !strcmp(p, "long"))
        return DM_T_INT;
    if (!strcmp(p, "double") || !strcmp(p, "float"))
        return DM_T_DOUBLE;
    return DM_T_JSON;
}

/* The leaf type of a schema that is not an Object or a Map. */
static dm_type leaf_type(const flat_ctx *fx, const json_t *schema, dm_type *elem,
                         const json_t **enums)
{
    schema = resolve(fx, schema);
    if (json_is_string(schema))
        return primitive_type(json_string_value(schema));
    if (dm_is_type(schema, "Enum")) {
        *enums = json_object_get(schema, "enumValues");
        return DM_T_ENUM;
    }
    if (dm_is_type(schema, "Array")) {
        const json_t *el = resolve(fx, json_object_get(schema, "elementSchema"));
        dm_type e = DM_T_JSON;
        if (json_is_string(el))
            e = primitive_type(json_string_value(el));
        else if (dm_is_type(el, "Enum"))
            e = DM_T_ENUM, *enums = json_object_get(el, "enumValues");
        if (e != DM_T_JSON) {
            *elem = e;
            return DM_T_ARRAY;
        }
    }
    return DM_T_JSON;
}

void dm_enum_list(const json_t *enums, char *out, size_t cap)
{
    size_t i, n = 0;
    json_t *e;
    out[0] = '\0';
    json_array_foreach(enums, i, e)
    {
        json_t *v = json_object_get(e, "enumValue");
        char text[64];
        if (json_is_string(v))
            snprintf(text, sizeof text, "%s", json_string_value(v));
        else
            snprintf(text, sizeof text, "%lld", (long long)json_integer_value(v));
        int w = snprintf(out + n, cap - n, "%s%s", i ? "|" : "", text);
        if (w < 0 || (size_t)w >= cap - n)
            break;
        n += (size_t)w;
    }
}

static const char *type_name(const dm_field *f)
{
    static const char *const names[] = {"string", "boolean", "integer", "number",
                                        "enum",   "array",   "JSON",    "key"};
    return names[f->type];
}

/* Marks a cut help text with "..." (help is read, never parsed, so cutting is fine). */
static void mark_cut(char *buf, size_t cap, int written)
{
    if (written >= (int)cap && cap > 4)
        memcpy(buf + cap - 4, "...", 4);
}

static void field_help(dm_field *f, const json_t *entry)
{
    const char *d = json_string_value(json_object_get(entry, "description"));
    const char *name = json_string_value(json_object_get(entry, "name"));
    char types[96] = "";
    const char *sep = d ? ". " : "";
    if (!d)
        d = "";
    if (!name)
        name = "";
    if (f->type == DM_T_ENUM || (f->type == DM_T_ARRAY && f->elem_type == DM_T_ENUM))
        dm_enum_list(f->enum_values, types, sizeof types);
    int n;
    if (f->type == DM_T_ARRAY)
        n = snprintf(f->help, sizeof f->help, "%s: comma-separated list%s%s%s%s", name,
                     types[0] ? " of " : "", types, sep, d);
    else if (f->type == DM_T_ENUM)
        n = snprintf(f->help, sizeof f->help, "%s: one of %s%s%s", name, types, sep, d);
    else
        n = snprintf(f->help, sizeof f->help, "%s: %s%s%s", name, type_name(f), sep, d);
    mark_cut(f->help, sizeof f->help, n);
}

static bool option_taken(const dm_cmd *c, const char *option)
{
    static const char *const fixed[] = {"device-id", "value",   "clear",           "etag",
                                        "payload",   "timeout", "connect-timeout", "help"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (!strcmp(fixed[i], option))
            return true;
    for (size_t i = 0; i < c->nfields; i++)
        if (!strcmp(c->fields[i].option, option))
            return true;
    return false;
}

static dm_field *add_field(flat_ctx *fx, const char *option, const dm_seg *segs, size_t nsegs)
{
    dm_cmd *c = fx->c;
    if (c->nfields >= DM_MAX_FIELDS || !option[0])
        return NULL;
    dm_field *f = &c->fields[c->nfields];
    memset(f, 0, sizeof *f);
    /* A field named like a fixed option (--timeout in a request) gets a prefix. */
    size_t n = strlen(option), pre = option_taken(c, option) ? 6 : 0;
    if (n + pre >= sizeof f->option)
        return NULL;
    memcpy(f->option, "field-", pre);
    memcpy(f->option + pre, option, n + 1);
    if (option_taken(c, f->option))
        return NULL;
    memcpy(f->segs, segs, nsegs * sizeof *segs);
    f->nsegs = nsegs;
    c->nfields++;
    return f;
}

/* Fields the device fills in: DTDL v2 has no per-field writability, so the models say
 * "Reported only" in the field's description. */
static bool reported_only(const json_t *field)
{
    const char *d = json_string_value(json_object_get(field, "description"));
    return d && !strncasecmp(d, "Reported only", 13);
}

static void flatten(flat_ctx *fx, const json_t *entry, const json_t *schema, const char *leaf,
                    const char *prefix, dm_seg *segs, size_t nsegs, int depth);

static void flatten_object(flat_ctx *fx, const json_t *schema, const char *prefix, dm_seg *segs,
                           size_t nsegs, int depth)
{
    size_t i;
    json_t *field;
    json_array_foreach(json_object_get(schema, "fields"), i, field)
    {
        const char *name = json_string_value(json_object_get(field, "name"));
        if (!name || reported_only(field))
            continue;
        char k[DM_NAME_MAX], leaf[2 * DM_NAME_MAX], sub[2 * DM_NAME_MAX];
        dm_kebab(name, k, sizeof k);
        snprintf(leaf, sizeof leaf, "%s%s", prefix, k);
        snprintf(sub, sizeof sub, "%s%s-", prefix, k);
        snprintf(segs[nsegs].name, sizeof segs[nsegs].name, "%s", name);
        segs[nsegs].key_field = -1;
        flatten(fx, field, json_object_get(field, "schema"), leaf, sub, segs, nsegs + 1, depth + 1);
    }
}

static void flatten_map(flat_ctx *fx, const json_t *schema, const char *prefix, dm_seg *segs,
                        size_t nsegs, int depth)
{
    const json_t *key = json_object_get(schema, "mapKey");
    const json_t *value = json_object_get(schema, "mapValue");
    const char *kname = json_string_value(json_object_get(key, "name"));
    const char *vname = json_string_value(json_object_get(value, "name"));
    char k[DM_NAME_MAX], opt[2 * DM_NAME_MAX];
    dm_kebab(kname ? kname : "key", k, sizeof k);
    snprintf(opt, sizeof opt, "%s%s", prefix, k);
    dm_field *f = add_field(fx, opt, segs, nsegs);
    if (!f)
        return;
    f->type = DM_T_KEY;
    snprintf(f->help, sizeof f->help, "Which %s (the entry to set)", kname ? kname : "key");
    segs[nsegs].name[0] = '\0';
    segs[nsegs].key_field = (int)(f - fx->c->fields);
    dm_kebab(vname ? vname : "value", k, sizeof k);
    snprintf(opt, sizeof opt, "%s%s", prefix, k);
    flatten(fx, value, json_object_get(value, "schema"), opt, prefix, segs, nsegs + 1, depth + 1);
}

static void flatten(flat_ctx *fx, const json_t *entry, const json_t *schema, const char *leaf,
                    const char *prefix, dm_seg *segs, size_t nsegs, int depth)
{
    schema = resolve(fx, schema);
    if (depth < DM_MAX_DEPTH - 1 && dm_is_type(schema, "Object")) {
        flatten_object(fx, schema, prefix, segs, nsegs, depth);
        return;
    }
    if (depth < DM_MAX_DEPTH - 1 && dm_is_type(schema, "Map")) {
        flatten_map(fx, schema, prefix, segs, nsegs, depth);
        return;
    }
    dm_field *f = add_field(fx, leaf, segs, nsegs);
    if (!f)
        return;
    f->type = leaf_type(fx, schema, &f->elem_type, &f->enum_values);
    field_help(f, entry);
}

static void set_summary(dm_cmd *c, const char *verb, const json_t *entry)
{
    const char *dn = json_string_value(json_object_get(entry, "displayName"));
    const char *d = json_string_value(json_object_get(entry, "description"));
    char title[64];
    snprintf(title, sizeof title, "%s", dn ? dn : c->target);
    /* "Set Reboot policy" reads as "Set reboot policy"; acronyms (NTP) keep their case. */
    if (verb[0] && isupper((unsigned char)title[0]) && islower((unsigned char)title[1]))
        title[0] = (char)tolower((unsigned char)title[0]);
    snprintf(c->brief, sizeof c->brief, "%s%s", verb, title);
    snprintf(c->summary, sizeof c->summary, "%s.%s%s", c->brief, d ? " " : "", d ? d : "");
}

static dm_cmd *new_cmd(dm_group *g, const char *name, dm_kind kind, const char *target)
{
    for (size_t i = 0; i < g->ncmds; i++)
        if (!strcmp(g->cmds[i].name, name))
            return NULL; /* the first definition of a name wins */
    size_t len = strlen(name);
    if (g->ncmds >= DM_MAX_CMDS || len >= sizeof g->cmds[0].name)
        return NULL;
    dm_cmd *c = &g->cmds[g->ncmds++];
    memset(c, 0, sizeof *c);
    memcpy(c->name, name, len + 1);
    c->kind = kind;
    c->target = target;
    return c;
}

static void add_property(dm_group *g, const json_t *models, const json_t *p)
{
    const char *name = json_string_value(json_object_get(p, "name"));
    if (!name || !json_is_true(json_object_get(p, "writable")))
        return;
    char k[DM_NAME_MAX], cmd[DM_NAME_MAX + 8];
    dm_kebab(name, k, sizeof k);
    snprintf(cmd, sizeof cmd, "set-%s", k);
    dm_cmd *c = new_cmd(g, cmd, DM_KIND_SET, name);
    if (!c)
        return;
    set_summary(c, "Set ", p);
    flat_ctx fx = {models, g->iface, c};
    dm_seg segs[DM_MAX_DEPTH];
    flatten(&fx, p, json_object_get(p, "schema"), k, "", segs, 0, 0);
}

static void add_command(dm_group *g, const json_t *models, const json_t *e)
{
    const char *name = json_string_value(json_object_get(e, "name"));
    if (!name)
        return;
    char k[DM_NAME_MAX];
    dm_kebab(name, k, sizeof k);
    dm_cmd *c = new_cmd(g, k, DM_KIND_COMMAND, name);
    if (!c)
        return;
    set_summary(c, "", e);
    const json_t *req = json_object_get(e, "request");
    if (!req)
        return;
    const char *rname = json_string_value(json_object_get(req, "name"));
    dm_kebab(rname ? rname : "payload", k, sizeof k);
    flat_ctx fx = {models, g->iface, c};
    dm_seg segs[DM_MAX_DEPTH];
    flatten(&fx, req, json_object_get(req, "schema"), k, "", segs, 0, 0);
}

/* The friendly names of issue 5. An alias exists only when its target does (install-cert and
 * install-app appear once the certificates and apps properties are in the model). */
typedef struct {
    const char *name, *target, *brief, *summary;
    const char *only;                         /* keep just this option (made required) */
    const char *preset_option, *preset_value; /* applied unless given, when the option exists */
} dm_alias;

static const dm_alias aliases[] = {
    {"set-time-zone", "set-time-info", "Set the time zone (set-time-info --time-zone)",
     "Set the time zone: an IANA name such as Europe/Berlin (set-time-info --time-zone).",
     "time-zone", NULL, NULL},
    {"schedule-reboot", "set-reboot-info", "Schedule reboots (set-reboot-info)",
     "Schedule reboots: once at --single-reboot-time, daily at the time of day of "
     "--daily-reboot-time (ISO 8601; an empty value clears a schedule).",
     NULL, NULL, NULL},
    {"install-cert", "set-certificates", "Install a certificate (set-certificates)",
     "Install a certificate: set-certificates with state installed.", NULL, "state", "installed"},
    {"uninstall-cert", "set-certificates", "Uninstall a certificate (set-certificates)",
     "Uninstall a certificate: set-certificates with state uninstalled.", NULL, "state",
     "uninstalled"},
    {"install-app", "set-apps", "Install an application (set-apps)",
     "Install an application: set-apps with state installed.", NULL, "state", "installed"},
};

static const dm_cmd *find_cmd(const dm_group *g, const char *name)
{
    for (size_t i = 0; i < g->ncmds; i++)
        if (!strcmp(g->cmds[i].name, name))
            return &g->cmds[i];
    return NULL;
}

static void add_alias(dm_group *g, const dm_alias *al)
{
    const dm_cmd *target = find_cmd(g, al->target);
    if (!target || find_cmd(g, al->name) || g->ncmds >= DM_MAX_CMDS)
        return;
    dm_cmd *c = &g->cmds[g->ncmds++];
    *c = *target;
    snprintf(c->name, sizeof c->name, "%s", al->name);
    snprintf(c->summary, sizeof c->summary, "%s", al->summary);
    snprintf(c->brief, sizeof c->brief, "%s", al->brief);
    if (al->only) {
        size_t n = 0;
        for (size_t i = 0; i < c->nfields; i++)
            if (!strcmp(c->fields[i].option, al->only) && c->fields[i].nsegs <= 1)
                c->fields[n++] = c->fields[i];
        c->nfields = n;
    }
    for (size_t i = 0; al->preset_option && i < c->nfields; i++) {
        if (!strcmp(c->fields[i].option, al->preset_option)) {
            c->preset_option = al->preset_option;
            c->preset_value = al->preset_value;
        }
    }
}

static void set_metavar(dm_field *f)
{
    static const char *const vars[] = {"TEXT",  "",        "N",    "NUMBER",
                                       "VALUE", "A,B,...", "JSON", "NAME"};
    char types[96];
    dm_enum_list(f->enum_values, types, sizeof types);
    /* A short enum is its own best metavar: --source-priority local|remote */
    if (f->type == DM_T_ENUM && strlen(types) < sizeof f->metavar)
        memcpy(f->metavar, types, strlen(types) + 1);
    else
        snprintf(f->metavar, sizeof f->metavar, "%s", vars[f->type]);
}

/* The parser's option table: the fixed options of the kind, then one per field. */
static void finalize(dm_cmd *c, bool only_required)
{
    static const cli_opt id = {"device-id", CLI_OPT_VALUE, "ID", "The device's id", true};
    static const cli_opt set_fixed[] = {
        {"value", CLI_OPT_VALUE, "JSON|@FILE", "The whole value as JSON (instead of the fields)",
         false},
        {"clear", CLI_OPT_FLAG, NULL, "Remove the property from the desired properties", false},
        {"etag", CLI_OPT_VALUE, "ETAG", "Patch only if the twin's etag matches", false},
    };
    static const cli_opt cmd_fixed[] = {
        {"payload", CLI_OPT_VALUE, "JSON|@FILE", "The whole payload as JSON (instead of fields)",
         false},
        {"timeout", CLI_OPT_VALUE, "S", "Seconds to wait for the answer (5-300, default 30)",
         false},
        {"connect-timeout", CLI_OPT_VALUE, "S", "Seconds to wait for the device to connect", false},
    };
    size_t n = 0;
    c->opts[n++] = id;
    const cli_opt *fixed = c->kind == DM_KIND_SET ? set_fixed : cmd_fixed;
    /* An alias that narrows a property to one field (set-time-zone) keeps only --etag. */
    for (size_t i = only_required ? 2 : 0; c->kind != DM_KIND_STATUS && i < 3; i++)
        c->opts[n++] = fixed[i];
    for (size_t i = 0; i < c->nfields && n < CLI_MAX_OPTS; i++) {
        dm_field *f = &c->fields[i];
        set_metavar(f);
        c->opts[n++] = (cli_opt){f->option, f->type == DM_T_BOOL ? CLI_OPT_BOOL : CLI_OPT_VALUE,
                                 f->metavar, f->help, only_required};
    }
    c->cmd = (cli_cmd){c->name, c->summary, c->opts, n, NULL, 0, 0, NULL, c};
}

/* The dm interface: the schema of the component named "dm" in any interface, else dtmi:iotdm:dm. */
static const json_t *find_dm_interface(const json_t *models)
{
    const char *id = "dtmi:iotdm:dm;1";
    size_t i, j;
    json_t *m, *e;
    json_array_foreach(models, i, m)
    {
        json_array_foreach(json_object_get(m, "contents"), j, e)
        {
            const char *name = json_string_value(json_object_get(e, "name"));
            if (dm_is_type(e, "Component") && name && !strcmp(name, DM_COMPONENT) &&
                json_is_string(json_object_get(e, "schema")))
                id = json_string_value(json_object_get(e, "schema"));
        }
    }
    json_array_foreach(models, i, m)
    {
        const char *mid = json_string_value(json_object_get(m, "@id"));
        if (mid && !strcmp(mid, id))
            return m;
    }
    return NULL;
}

int dm_group_build(json_t *models, dm_group *out)
{
    memset(out, 0, sizeof *out);
    out->models = models;
    out->iface = find_dm_interface(models);
    if (!out->iface) {
        cli_error("no DTDL interface for the '%s' component in the models", DM_COMPONENT);
        return CLI_EXIT_NOT_FOUND;
    }
    out->cmds = calloc(DM_MAX_CMDS, sizeof *out->cmds);
    if (!out->cmds)
        return CLI_EXIT_ERROR;
    dm_cmd *st = new_cmd(out, "status", DM_KIND_STATUS, NULL);
    snprintf(st->brief, sizeof st->brief, "Desired, reported and acknowledged state of dm");
    snprintf(st->summary, sizeof st->summary,
             "Show each dm property: desired value, reported value and acknowledgement "
             "(pending, ok, or failed with the device's reason).");
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(out->iface, "contents"), i, e)
    {
        if (dm_is_type(e, "Property"))
            add_property(out, models, e);
        else if (dm_is_type(e, "Command"))
            add_command(out, models, e);
    }
    for (i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        add_alias(out, &aliases[i]);
    for (i = 0; i < out->ncmds; i++) {
        const dm_cmd *c = &out->cmds[i];
        bool restricted = false;
        for (size_t a = 0; a < sizeof aliases / sizeof aliases[0]; a++)
            restricted |= !strcmp(aliases[a].name, c->name) && aliases[a].only;
        finalize(&out->cmds[i], restricted);
    }
    return CLI_EXIT_OK;
}

void dm_group_free(dm_group *g)
{
    free(g->cmds);
    json_decref(g->models);
    memset(g, 0, sizeof *g);
}
