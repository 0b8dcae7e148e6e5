/* The capability handler registry: PnP writable properties dispatched property by property, acks
 * ({"value","ac","av","ad"}) reported through the outbox, reportAll, read-only properties. */
#include <stdio.h>
#include <string.h>

#include "client/internal.h"
#include "common/alloc.h"

#define AD_DEVICE "reported by the device"

static handler_entry *find_handler(iotdm_client *c, const char *component, const char *property)
{
    for (size_t i = 0; i < c->nhandlers; i++)
        if (!strcmp(c->handlers[i].component, component) &&
            !strcmp(c->handlers[i].property, property))
            return &c->handlers[i];
    return NULL;
}

static void free_late(late_ack *late)
{
    if (!late)
        return;
    xfree(late->description);
    xfree(late->value_json);
    xfree(late);
}

static bool valid_name(const char *s)
{
    return s && *s && strlen(s) <= 64 && !strpbrk(s, " .$*/#+\"\\");
}

IOTDM_API iotdm_result iotdm_handler_add(iotdm_client *c, const iotdm_property_handler *app_handler)
{
    iotdm_property_handler copy;
    if (!c || !app_handler)
        return -EINVAL;
    iotdm_result r = client_struct_take(&copy, sizeof copy, app_handler, HANDLER_V1_SIZE);
    if (r < 0)
        return r == IOTDM_E_MALFORMED ? -EINVAL : r;
    const iotdm_property_handler *handler = &copy;
    if (!handler->on_desired || !valid_name(handler->component) || !valid_name(handler->property))
        return -EINVAL;
    client_lock(c);
    if (find_handler(c, handler->component, handler->property)) {
        r = IOTDM_E_EXISTS;
    } else if (c->nhandlers == CLIENT_MAX_HANDLERS) {
        r = IOTDM_E_TOO_LARGE;
    } else {
        handler_entry *grown = xrealloc(c->handlers, (c->nhandlers + 1) * sizeof *grown);
        if (grown)
            c->handlers = grown;
        handler_entry *e = grown ? &grown[c->nhandlers] : NULL;
        char *component = e ? xstrdup(handler->component) : NULL;
        char *property = component ? xstrdup(handler->property) : NULL;
        if (!property) {
            xfree(component);
            r = -ENOMEM;
        } else {
            memset(e, 0, sizeof *e);
            e->component = component;
            e->property = property;
            e->h = *handler;
            e->h.component = component;
            e->h.property = property;
            c->nhandlers++;
        }
    }
    client_unlock(c);
    return r;
}

void handlers_free(iotdm_client *c)
{
    for (size_t i = 0; i < c->nhandlers; i++) {
        xfree(c->handlers[i].component);
        xfree(c->handlers[i].property);
        free_late(c->handlers[i].late);
    }
    xfree(c->handlers);
    c->handlers = NULL;
    c->nhandlers = 0;
}

json_t *handlers_component_patch(const char *component, const char *property, json_t *value)
{
    json_t *inner = json_pack("{s:s}", "__t", "c");
    if (!inner || json_object_set_new(inner, property, value) < 0) {
        json_decref(inner);
        return NULL;
    }
    return json_pack("{s:o}", component, inner);
}

static json_t *ack_object(json_t *value, int code, int64_t version, const char *description)
{
    return json_pack("{s:o,s:i,s:I,s:s}", "value", value ? value : json_null(), "ac", code, "av",
                     (json_int_t)version, "ad", description ? description : "");
}

/* Queues the ack and records what was applied, in one commit: a crash leaves both or neither. */
static iotdm_result commit_ack(iotdm_client *c, const char *component, const char *property,
                               json_t *ack, const outbox_applied *applied)
{
    json_t *patch = handlers_component_patch(component, property, ack);
    if (!patch)
        return -ENOMEM;
    iotdm_result r = outbox_begin(c->ob);
    if (r == IOTDM_OK)
        r = twin_queue_reported(c, patch);
    if (r == IOTDM_OK && applied)
        r = outbox_set_applied(c->ob, component, property, applied);
    if (r == IOTDM_OK)
        r = outbox_commit(c->ob);
    else
        outbox_rollback(c->ob);
    json_decref(patch);
    if (r < 0)
        CLOG(c, IOTDM_LOG_ERROR, "handlers: cannot store the ack of %s/%s: %s", component, property,
             iotdm_result_message(r));
    return r;
}

static char *canonical(const json_t *value)
{
    return json_dumps(value, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

/* Parses a handler's value_json; NULL or unparsable text reports the desired value back. */
static json_t *ack_value(iotdm_client *c, const char *value_json, const json_t *fallback)
{
    if (value_json) {
        json_t *v = json_loads(value_json, JSON_DECODE_ANY, NULL);
        if (v)
            return v;
        CLOG(c, IOTDM_LOG_WARN,
             "handlers: a handler answered with invalid JSON; reporting the "
             "desired value instead");
    }
    return fallback ? json_deep_copy(fallback) : json_null();
}

static iotdm_result report_ack_locked(iotdm_client *c, const char *component, const char *property,
                                      int64_t version, const iotdm_ack *ack);

/* After on_desired's own ack: the one iotdm_report_ack brought in meanwhile, if any. */
static void end_call(iotdm_client *c, const char *component, const char *property)
{
    handler_entry *e = find_handler(c, component, property); /* the registry may have moved */
    late_ack *late = e ? e->late : NULL;
    if (!e)
        return;
    e->in_call = false;
    e->late = NULL;
    if (late) {
        iotdm_ack ack = {late->code, late->description, late->value_json};
        IOTDM_IGNORE(report_ack_locked(c, component, property, late->version, &ack)); /* logged */
    }
    free_late(late);
}

static void apply_one(iotdm_client *c, handler_entry *e, const json_t *value, int64_t version)
{
    iotdm_property_handler h = e->h; /* e may move while the lock is released */
    char *component = xstrdup(e->component), *property = xstrdup(e->property);
    char *text = canonical(value);
    if (!component || !property || !text)
        goto out;
    e->dispatched = true;
    e->in_call = true;
    iotdm_ack ack = {0, NULL, NULL};
    client_unlock(c);
    h.on_desired(h.ctx, text, version, &ack);
    client_lock(c);
    if (ack.code <= 0) {
        ack.code = 500;
        ack.description = "the handler gave no acknowledgement";
    }
    CLOG(c, ack.code >= 400 ? IOTDM_LOG_WARN : IOTDM_LOG_INFO,
         "handlers: %s/%s $version %lld: %d %s", component, property, (long long)version, ack.code,
         ack.description ? ack.description : "");
    json_t *obj =
        ack_object(ack_value(c, ack.value_json, value), ack.code, version, ack.description);
    outbox_applied applied = {version, ack.code, text,
                              (char *)(ack.description ? ack.description : "")};
    if (obj)
        IOTDM_IGNORE(commit_ack(c, component, property, obj, &applied)); /* logged inside */
    end_call(c, component, property);
out:
    free(text);
    xfree(component);
    xfree(property);
}

/* Whether the value was applied before (same canonical text): a full read after a reconnect or a
 * restart then does not apply it again. */
static bool already_applied(iotdm_client *c, handler_entry *e, const json_t *value)
{
    outbox_applied a;
    if (outbox_get_applied(c->ob, e->component, e->property, &a) < 0)
        return false;
    char *text = canonical(value);
    bool same = text && !strcmp(text, a.value);
    free(text);
    outbox_applied_deinit(&a);
    return same;
}

/* Dispatches one component's members; removes the claimed ones from rest_comp. */
static void dispatch_component(iotdm_client *c, const char *component, const json_t *comp_patch,
                               json_t *rest_comp, int64_t version, bool full)
{
    const char *prop;
    json_t *pv;
    json_t *merged_comp = json_object_get(c->desired, component);
    json_object_foreach((json_t *)comp_patch, prop, pv)
    {
        handler_entry *e = find_handler(c, component, prop);
        if (!e || !strcmp(prop, "__t"))
            continue;
        json_object_del(rest_comp, prop);
        json_t *merged = json_object_get(merged_comp, prop);
        if (!merged || json_is_null(merged)) {
            /* Removed from desired: nothing to apply; forget it so a later identical value is
             * applied again. If that fails, a later identical value is taken as applied: say so. */
            iotdm_result r = outbox_clear_applied(c->ob, component, prop);
            if (r < 0)
                CLOG(c, IOTDM_LOG_ERROR, "handlers: cannot forget the value of %s/%s: %s",
                     component, prop, iotdm_result_message(r));
            continue;
        }
        if (full && already_applied(c, e, merged))
            continue;
        apply_one(c, e, merged, version);
    }
}

static bool only_marker(const json_t *obj)
{
    size_t n = json_object_size(obj);
    return n == 0 || (n == 1 && json_object_get(obj, "__t"));
}

json_t *handlers_dispatch(iotdm_client *c, const json_t *patch, int64_t version, bool full)
{
    json_t *rest = json_deep_copy(patch);
    if (!rest)
        return NULL;
    json_object_del(rest, "$version");
    json_object_del(rest, "$metadata");
    for (size_t i = 0; i < c->nhandlers; i++)
        c->handlers[i].dispatched = false;
    const char *component;
    json_t *cv;
    json_object_foreach((json_t *)patch, component, cv)
    {
        json_t *rest_comp = json_object_get(rest, component);
        if (component[0] == '$' || !json_is_object(cv) || !json_is_object(rest_comp))
            continue;
        size_t before = json_object_size(rest_comp);
        dispatch_component(c, component, cv, rest_comp, version, full);
        if (json_object_size(rest_comp) != before && only_marker(rest_comp))
            json_object_del(rest, component);
    }
    if (json_object_size(rest) == 0) {
        json_decref(rest);
        return NULL;
    }
    return rest;
}

/* Reports handler i's read_state with its last ack (or 203 "device value" when none, the PnP
 * convention for a value the service never asked for). read_state runs without the lock. */
static iotdm_result report_state(iotdm_client *c, size_t i)
{
    iotdm_property_handler h = c->handlers[i].h; /* its strings stay put; the array may not */
    if (!h.read_state)
        return IOTDM_OK;
    client_unlock(c);
    char *text = h.read_state(h.ctx);
    client_lock(c);
    if (!text)
        return IOTDM_OK;
    json_t *value = json_loads(text, JSON_DECODE_ANY, NULL);
    free(text);
    if (!value) {
        CLOG(c, IOTDM_LOG_WARN, "handlers: %s/%s read_state gave invalid JSON", h.component,
             h.property);
        return IOTDM_E_MALFORMED;
    }
    outbox_applied a;
    bool known = outbox_get_applied(c->ob, h.component, h.property, &a) == IOTDM_OK;
    json_t *ack =
        known ? ack_object(value, a.ac, a.version, a.ad) : ack_object(value, 203, 0, AD_DEVICE);
    if (known)
        outbox_applied_deinit(&a);
    return ack ? commit_ack(c, h.component, h.property, ack, NULL) : -ENOMEM;
}

void handlers_initial_report(iotdm_client *c)
{
    for (size_t i = 0; i < c->nhandlers; i++)
        if (!c->handlers[i].dispatched)
            IOTDM_IGNORE(report_state(c, i)); /* each failure is logged; the others still go */
}

IOTDM_API iotdm_result iotdm_report_all(iotdm_client *c)
{
    if (!c)
        return -EINVAL;
    /* read_state is a callback: one at a time with the others (from inside one, this thread
     * already holds dispatch: dm*reportAll is a command). */
    bool nested = client_dispatching(c);
    iotdm_result r = nested ? IOTDM_OK : client_dispatch_begin(c);
    if (r < 0)
        return r;
    client_lock(c);
    for (size_t i = 0; i < c->nhandlers; i++) {
        iotdm_result one = report_state(c, i);
        if (one < 0 && r == IOTDM_OK)
            r = one;
    }
    client_unlock(c);
    if (!nested)
        client_dispatch_end(c);
    return r;
}

/* Keeps an ack for a property whose on_desired is running (see late_ack). */
static iotdm_result hold_late(handler_entry *e, int64_t version, const iotdm_ack *ack)
{
    late_ack *late = xcalloc(1, sizeof *late);
    if (!late)
        return -ENOMEM;
    late->version = version;
    late->code = ack->code;
    late->description = ack->description ? xstrdup(ack->description) : NULL;
    late->value_json = ack->value_json ? xstrdup(ack->value_json) : NULL;
    if ((ack->description && !late->description) || (ack->value_json && !late->value_json)) {
        free_late(late);
        return -ENOMEM;
    }
    free_late(e->late); /* a later ack replaces an earlier one: only the last counts */
    e->late = late;
    return IOTDM_OK;
}

static iotdm_result report_ack_locked(iotdm_client *c, const char *component, const char *property,
                                      int64_t version, const iotdm_ack *ack)
{
    handler_entry *e = find_handler(c, component, property);
    if (e && e->in_call)
        return hold_late(e, version, ack);
    outbox_applied a;
    bool known = outbox_get_applied(c->ob, component, property, &a) == IOTDM_OK;
    if (version < 0)
        version = known ? a.version : c->desired_version;
    json_t *desired = known ? json_loads(a.value, JSON_DECODE_ANY, NULL) : NULL;
    if (!desired)
        desired = json_incref(json_object_get(json_object_get(c->desired, component), property));
    json_t *obj =
        ack_object(ack_value(c, ack->value_json, desired), ack->code, version, ack->description);
    json_decref(desired);
    iotdm_result r = -ENOMEM;
    if (obj) {
        outbox_applied upd = {version, ack->code, known ? a.value : (char *)"null",
                              (char *)(ack->description ? ack->description : "")};
        r = commit_ack(c, component, property, obj, known ? &upd : NULL);
    }
    if (known)
        outbox_applied_deinit(&a);
    return r;
}

IOTDM_API iotdm_result iotdm_report_ack(iotdm_client *c, const char *component,
                                        const char *property, int64_t version, const iotdm_ack *ack)
{
    if (!c || !valid_name(component) || !valid_name(property) || !ack)
        return -EINVAL;
    client_lock(c);
    iotdm_result r = report_ack_locked(c, component, property, version, ack);
    client_unlock(c);
    return r;
}

IOTDM_API iotdm_result iotdm_report_property(iotdm_client *c, const char *component,
                                             const char *property, const char *value_json)
{
    if (!c || !valid_name(component) || !valid_name(property) || !value_json)
        return -EINVAL;
    json_t *value = json_loads(value_json, JSON_DECODE_ANY, NULL);
    if (!value)
        return IOTDM_E_MALFORMED;
    json_t *patch = handlers_component_patch(component, property, value);
    if (!patch)
        return -ENOMEM;
    client_lock(c);
    iotdm_result r = twin_queue_reported(c, patch);
    client_unlock(c);
    json_decref(patch);
    return r;
}

IOTDM_API iotdm_result iotdm_command_register(iotdm_client *c, const char *component,
                                              const char *command, iotdm_method_fn fn, void *ctx)
{
    if (!c || !valid_name(component) || !command || !*command)
        return -EINVAL;
    char name[160];
    int n = snprintf(name, sizeof name, "%s*%s", component, command);
    if (n < 0 || (size_t)n >= sizeof name)
        return IOTDM_E_TOO_LARGE;
    return iotdm_method_register(c, name, fn, ctx);
}
