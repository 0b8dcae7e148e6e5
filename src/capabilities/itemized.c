/* Item-by-item sections: per-item errors, one acknowledgement, reported maps rebuilt whole. */
#include "capabilities/itemized.h"

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include "common/log.h"

void cap_items_init(cap_items *it)
{
    it->code = 200;
    it->changed = it->failed = 0;
    it->first[0] = '\0';
    it->errors = json_object();
}

void cap_items_deinit(cap_items *it)
{
    json_decref(it->errors);
    it->errors = NULL;
}

void cap_items_fail(cap_items *it, int code, const char *group, const char *key, const char *fmt,
                    ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* Bad input decides the code: the operator has something to fix whatever else failed. */
    if (code == 400 || it->code == 200)
        it->code = code;
    if (it->failed++ == 0)
        snprintf(it->first, sizeof it->first, "%s%s%s: %s", group ? group : "",
                 group && key ? "/" : "", key ? key : "", msg);
    json_t *error = json_pack("{s:i, s:s}", "errorCode", code, "errorMessage", msg);
    if (group && key) {
        json_t *parent = json_object_get(it->errors, group);
        if (!json_is_object(parent)) {
            parent = json_object();
            json_object_set_new(it->errors, group, parent);
        }
        json_object_set_new(parent, key, error);
    } else {
        json_object_set_new(it->errors, group ? group : key, error);
    }
}

void cap_items_ack(const cap_items *it, iotdm_ack *ack, char *buf, size_t cap)
{
    if (it->failed)
        cap_ack_error(ack, it->code, buf, cap, "%u item%s failed, %u changed; first: %s",
                      it->failed, it->failed == 1 ? "" : "s", it->changed, it->first);
    else if (it->changed)
        cap_ack_error(ack, 200, buf, cap, "applied: %u changed", it->changed);
    else
        cap_ack_error(ack, 200, buf, cap, "applied: already as desired");
}

void cap_json_merge(json_t *dst, const json_t *src)
{
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)src, key, value)
    {
        json_t *have = json_object_get(dst, key);
        if (json_is_object(have) && json_is_object(value))
            cap_json_merge(have, value);
        else
            json_object_set(dst, key, value);
    }
}

/* null for every key of prev that next lacks, at every depth where both have an object. */
static void null_removed(const json_t *prev, json_t *next)
{
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)prev, key, value)
    {
        json_t *now = json_object_get(next, key);
        if (!now)
            json_object_set_new(next, key, json_null());
        else if (json_is_object(now) && json_is_object(value))
            null_removed(value, now);
    }
}

json_t *cap_items_report(cap_env *env, const char *state_name, json_t *held, const json_t *errors)
{
    if (errors)
        cap_json_merge(held, errors);
    json_t *state = cap_state_load(env, state_name);
    json_t *prev = json_object_get(state, "reported");
    const json_t *errs = errors ? errors : json_object_get(state, "errors");
    json_t *saved = json_object();
    json_object_set(saved, "reported", held);
    json_object_set_new(saved, "errors",
                        json_is_object(errs) ? json_deep_copy(errs) : json_object());
    json_t *value = json_deep_copy(held);
    json_decref(held);
    if (json_is_object(prev))
        null_removed(prev, value);
    if (cap_state_save(env, state_name, saved) < 0)
        log_warn("agent", "cannot save %s state in %s", state_name, env->state_dir);
    json_decref(saved);
    json_decref(state);
    return value;
}

json_t *cap_items_saved_errors(cap_env *env, const char *state_name)
{
    json_t *state = cap_state_load(env, state_name);
    json_t *errors = json_object_get(state, "errors");
    errors = json_is_object(errors) ? json_incref(errors) : json_object();
    json_decref(state);
    return errors;
}

/* configd's invalid_argument and not_found arrive as IOTDM_E_MALFORMED: the input was bad. */
static int code_of(iotdm_result r)
{
    return r == IOTDM_E_MALFORMED ? 400 : 500;
}

static void configd_done(cap_items *it, const char *group, const char *key, iotdm_result r,
                         const char *err)
{
    if (r < 0)
        cap_items_fail(it, code_of(r), group, key, "%s", err);
    else
        it->changed++;
}

void cap_items_configd(cap_env *env, cap_items *it, const char *group, const char *key,
                       const char *op, json_t *args)
{
    char err[512];
    json_t *result = NULL;
    iotdm_result r = env->configd(env->configd_ctx, op, args, &result, err, sizeof err);
    json_decref(args);
    json_decref(result);
    configd_done(it, group, key, r, err);
}

void cap_items_install(cap_env *env, cap_items *it, const char *group, const char *key,
                       const char *op, json_t *args, const char *url, const char *sha256,
                       size_t max_bytes)
{
    char err[512];
    int fd = -1;
    iotdm_result r = env->download(env->transfer_ctx, url, sha256, max_bytes, &fd, err, sizeof err);
    if (r < 0) {
        json_decref(args);
        cap_items_fail(it, 400, group, key, "%s", err);
        return;
    }
    json_t *result = NULL;
    r = env->configd_fds(env->configd_ctx, op, args, &fd, 1, &result, err, sizeof err);
    close(fd);
    json_decref(args);
    json_decref(result);
    configd_done(it, group, key, r, err);
}

static json_t *view_of(const cap_items_section *s, json_t *held)
{
    return s->view ? s->view(held) : held;
}

/* cap_items_report with the section's saved state guarded (the worker and the connection's
 * thread both report). */
static json_t *report_locked(cap_env *env, const char *state_name, json_t *held,
                             const json_t *errors, pthread_mutex_t *state_lock)
{
    if (state_lock)
        pthread_mutex_lock(state_lock);
    json_t *value = cap_items_report(env, state_name, held, errors);
    if (state_lock)
        pthread_mutex_unlock(state_lock);
    return value;
}

void cap_items_apply(const cap_items_section *s, cap_env *env, void *ctx, json_t *desired,
                     iotdm_ack *ack, char *ack_text, size_t ack_cap, char **value_text,
                     pthread_mutex_t *state_lock)
{
    char err[512];
    json_t *held = NULL;
    if (s->list(env, &held, err, sizeof err) < 0) {
        cap_ack_error(ack, 500, ack_text, ack_cap, "cannot read %s: %s", s->held_what, err);
        return;
    }
    cap_items it;
    cap_items_init(&it);
    const char *key;
    json_t *value;
    json_object_foreach(desired, key, value)
    {
        if (!json_is_null(value))
            s->apply(ctx, env, &it, key, value, held);
    }
    json_t *now = NULL;
    if (s->list(env, &now, err, sizeof err) < 0) {
        now = held;
        held = NULL;
    }
    json_decref(held);
    cap_ack_value(ack, value_text,
                  report_locked(env, s->state_name, view_of(s, now), it.errors, state_lock));
    cap_items_ack(&it, ack, ack_text, ack_cap);
    cap_items_deinit(&it);
}

char *cap_items_read(const cap_items_section *s, cap_env *env, pthread_mutex_t *state_lock)
{
    json_t *held = NULL;
    char err[512];
    if (s->list(env, &held, err, sizeof err) < 0)
        return NULL;
    if (state_lock)
        pthread_mutex_lock(state_lock);
    json_t *errors = cap_items_saved_errors(env, s->state_name);
    json_t *value = cap_items_report(env, s->state_name, view_of(s, held), errors);
    if (state_lock)
        pthread_mutex_unlock(state_lock);
    json_decref(errors);
    char *text = cap_dump(value);
    json_decref(value);
    return text;
}
