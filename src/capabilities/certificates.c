/* certificates: per-store certificates by SHA-1 thumbprint, downloaded by the agent and installed
 * by configd; dm*getCertificateDetails. Reported: what each store really holds. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capabilities/capabilities.h"
#include "capabilities/itemized.h"

#define CERT_FILE_MAX  (64 * 1024) /* configd takes no larger certificate file */
#define THUMBPRINT_LEN 40

static const char state_name[] = "certificates";
static const char *const stores[] = {"root",          "ca",       "trustedPublisher",
                                     "trustedPeople", "mySystem", "myUser"};

typedef struct {
    cap_env *env;
    char ack_text[1024];
    char *value_text;
} certs_cap;

static bool known_store(const char *name)
{
    for (size_t i = 0; i < sizeof stores / sizeof *stores; i++) {
        if (strcmp(stores[i], name) == 0)
            return true;
    }
    return false;
}

/* 40 hex digits, into upper case (how thumbprints are reported). */
static bool thumbprint(const char *key, char out[THUMBPRINT_LEN + 1])
{
    if (strlen(key) != THUMBPRINT_LEN)
        return false;
    for (size_t i = 0; i < THUMBPRINT_LEN; i++) {
        if (!isxdigit((unsigned char)key[i]))
            return false;
        out[i] = (char)toupper((unsigned char)key[i]);
    }
    out[THUMBPRINT_LEN] = '\0';
    return true;
}

/* configd's invalid_argument and not_found arrive as IOTDM_E_MALFORMED: the input was bad. */
static int code_of(iotdm_result r)
{
    return r == IOTDM_E_MALFORMED ? 400 : 500;
}

static void install(certs_cap *cc, cap_items *it, const char *store, const char *key,
                    const char *tp, json_t *item)
{
    cap_env *env = cc->env;
    const char *url = json_string_value(json_object_get(item, "url"));
    const char *sha256 = json_string_value(json_object_get(item, "sha256"));
    char err[512];
    int fd = -1;
    if (!url || !sha256) {
        cap_items_fail(it, 400, store, key, "url and sha256 are required to install");
        return;
    }
    iotdm_result r =
        env->download(env->transfer_ctx, url, sha256, CERT_FILE_MAX, &fd, err, sizeof err);
    if (r < 0) {
        /* The twin names the file: one that cannot be had is the operator's to fix. */
        cap_items_fail(it, 400, store, key, "%s", err);
        return;
    }
    json_t *args = json_pack("{s:s, s:s, s:s}", "store", store, "thumbprint", tp, "sha256", sha256);
    json_t *result = NULL;
    r = env->configd_fds(env->configd_ctx, "certs.install", args, &fd, 1, &result, err, sizeof err);
    close(fd);
    json_decref(args);
    json_decref(result);
    if (r < 0)
        cap_items_fail(it, code_of(r), store, key, "%s", err);
    else
        it->changed++;
}

static void uninstall(certs_cap *cc, cap_items *it, const char *store, const char *key,
                      const char *tp)
{
    cap_env *env = cc->env;
    char err[512];
    json_t *args = json_pack("{s:s, s:s}", "store", store, "thumbprint", tp);
    json_t *result = NULL;
    iotdm_result r =
        env->configd(env->configd_ctx, "certs.uninstall", args, &result, err, sizeof err);
    json_decref(args);
    json_decref(result);
    if (r < 0)
        cap_items_fail(it, code_of(r), store, key, "%s", err);
    else
        it->changed++;
}

/* One desired certificate against what its store holds: only differences are applied. */
static void apply_item(certs_cap *cc, cap_items *it, const char *store, const char *key,
                       json_t *item, const json_t *held)
{
    char tp[THUMBPRINT_LEN + 1];
    const char *state = json_string_value(json_object_get(item, "state"));
    if (!thumbprint(key, tp)) {
        cap_items_fail(it, 400, store, key, "not a SHA-1 thumbprint (40 hexadecimal digits)");
        return;
    }
    if (!state || (strcmp(state, "installed") != 0 && strcmp(state, "uninstalled") != 0)) {
        cap_items_fail(it, 400, store, key, "state must be \"installed\" or \"uninstalled\"");
        return;
    }
    bool present = json_object_get(held, tp) != NULL;
    if (strcmp(state, "installed") == 0 && !present)
        install(cc, it, store, key, tp, item);
    else if (strcmp(state, "uninstalled") == 0 && present)
        uninstall(cc, it, store, key, tp);
}

static void apply_store(certs_cap *cc, cap_items *it, const char *store, json_t *items,
                        const json_t *held)
{
    if (!known_store(store)) {
        cap_items_fail(it, 400, store, NULL,
                       "unknown store (root, ca, trustedPublisher, trustedPeople, mySystem, "
                       "myUser)");
        return;
    }
    if (!json_is_object(items)) {
        cap_items_fail(it, 400, store, NULL, "a store is an object keyed by thumbprint");
        return;
    }
    const char *key;
    json_t *item;
    json_object_foreach(items, key, item)
    {
        if (json_is_object(item))
            apply_item(cc, it, store, key, item, json_object_get(held, store));
        else if (!json_is_null(item))
            cap_items_fail(it, 400, store, key, "an item is {\"state\", \"url\", \"sha256\"}");
    }
}

static iotdm_result list(cap_env *env, json_t **out, char *err, size_t err_cap)
{
    return env->configd(env->configd_ctx, "certs.list", NULL, out, err, err_cap);
}

static void certs_desired(void *ctx, const char *value_json, int64_t version, iotdm_ack *ack)
{
    (void)version;
    certs_cap *cc = ctx;
    cap_env *env = cc->env;
    json_t *desired = cap_parse_object(value_json, ack);
    if (!desired)
        return;
    char err[512];
    json_t *held = NULL;
    if (list(env, &held, err, sizeof err) < 0) {
        json_decref(desired);
        cap_ack_error(ack, 500, cc->ack_text, sizeof cc->ack_text,
                      "cannot read the certificate stores: %s", err);
        return;
    }
    cap_items it;
    cap_items_init(&it);
    const char *store;
    json_t *items;
    json_object_foreach(desired, store, items)
    {
        if (!json_is_null(items))
            apply_store(cc, &it, store, items, held);
    }
    json_decref(desired);
    /* Reported is read back: what the stores hold now, whatever was asked. */
    json_t *now = NULL;
    if (list(env, &now, err, sizeof err) < 0) {
        now = held;
        held = NULL;
    }
    json_decref(held);
    cap_ack_value(ack, &cc->value_text, cap_items_report(env, state_name, now, it.errors));
    cap_items_ack(&it, ack, cc->ack_text, sizeof cc->ack_text);
    cap_items_deinit(&it);
}

static char *certs_read(void *ctx)
{
    certs_cap *cc = ctx;
    json_t *held = NULL;
    char err[512];
    if (list(cc->env, &held, err, sizeof err) < 0)
        return NULL;
    json_t *errors = cap_items_saved_errors(cc->env, state_name);
    json_t *value = cap_items_report(cc->env, state_name, held, errors);
    json_decref(errors);
    char *text = cap_dump(value);
    json_decref(value);
    return text;
}

static int reply(char **out_json, int status, json_t *body)
{
    *out_json = cap_dump(body);
    json_decref(body);
    return status;
}

static int details_cmd(void *ctx, const char *name, const char *payload, char **out_json)
{
    (void)name;
    certs_cap *cc = ctx;
    json_t *req = json_loads(payload ? payload : "null", JSON_DECODE_ANY, NULL);
    const char *store = json_string_value(json_object_get(req, "store"));
    const char *key = json_string_value(json_object_get(req, "thumbprint"));
    char tp[THUMBPRINT_LEN + 1], err[512];
    int status = 200;
    json_t *result = NULL;
    if (!store || !known_store(store) || !key || !thumbprint(key, tp)) {
        status = 400;
        snprintf(err, sizeof err,
                 "give {\"store\": root|ca|trustedPublisher|trustedPeople|"
                 "mySystem|myUser, \"thumbprint\": 40 hexadecimal digits}");
    } else {
        json_t *args = json_pack("{s:s, s:s}", "store", store, "thumbprint", tp);
        iotdm_result r =
            cc->env->configd(cc->env->configd_ctx, "certs.details", args, &result, err, sizeof err);
        json_decref(args);
        /* The request was checked here, so what configd refuses is a certificate it lacks. */
        if (r < 0)
            status = r == IOTDM_E_MALFORMED ? 404 : 500;
    }
    json_decref(req);
    if (status != 200)
        return reply(out_json, status, json_pack("{s:s}", "message", err));
    json_object_del(result, "store");
    return reply(out_json, 200, result);
}

iotdm_result cap_certificates_start(cap_env *env, void **out_state)
{
    certs_cap *cc = calloc(1, sizeof *cc);
    if (!cc)
        return -ENOMEM;
    cc->env = env;
    *out_state = cc;
    iotdm_property_handler h = {CAP_COMPONENT, "certificates", certs_desired, certs_read, cc};
    iotdm_result r = iotdm_handler_add(env->client, &h);
    return r < 0 ? r
                 : iotdm_command_register(env->client, CAP_COMPONENT, "getCertificateDetails",
                                          details_cmd, cc);
}

void cap_certificates_stop(void *state)
{
    certs_cap *cc = state;
    if (!cc)
        return;
    free(cc->value_text);
    free(cc);
}
