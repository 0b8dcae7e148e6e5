/* certificates: per-store certificates by SHA-1 thumbprint, downloaded by the agent and installed
 * by configd; dm*getCertificateDetails. Reported: what each store really holds. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capabilities/capabilities.h"
#include "capabilities/itemized.h"

#define CERT_FILE_MAX  (64 * 1024) /* configd takes no larger certificate file */
#define THUMBPRINT_LEN 40

static const char state_name[] = "certificates";
static const char *const stores[] = {"root",          "ca",       "trustedPublisher",
                                     "trustedPeople", "mySystem", "myUser"};

typedef struct {
    cap_env *env;
    cap_items_async async; /* downloads and installs run on the worker */
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

static void install(cap_env *env, cap_items *it, const char *store, const char *key, const char *tp,
                    json_t *item)
{
    const char *url = json_string_value(json_object_get(item, "url"));
    const char *sha256 = json_string_value(json_object_get(item, "sha256"));
    if (!url || !sha256) {
        cap_items_fail(it, 400, store, key, "url and sha256 are required to install");
        return;
    }
    json_t *args = json_pack("{s:s, s:s, s:s}", "store", store, "thumbprint", tp, "sha256", sha256);
    cap_items_install(env, it, store, key, "certs.install", args, url, sha256, CERT_FILE_MAX);
}

/* One desired certificate against what its store holds: only differences are applied. */
static void apply_item(cap_env *env, cap_items *it, const char *store, const char *key,
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
        install(env, it, store, key, tp, item);
    else if (strcmp(state, "uninstalled") == 0 && present)
        cap_items_configd(env, it, store, key, "certs.uninstall",
                          json_pack("{s:s, s:s}", "store", store, "thumbprint", tp));
}

static void apply_store(void *ctx, cap_env *env, cap_items *it, const char *store, json_t *items,
                        const json_t *held)
{
    (void)ctx;
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
            apply_item(env, it, store, key, item, json_object_get(held, store));
        else if (!json_is_null(item))
            cap_items_fail(it, 400, store, key, "an item is {\"state\", \"url\", \"sha256\"}");
    }
}

static iotdm_result list(cap_env *env, json_t **out, char *err, size_t err_cap)
{
    return env->configd(env->configd_ctx, "certs.list", NULL, out, err, err_cap);
}

static const cap_items_section section = {state_name, "the certificate stores", list, apply_store,
                                          NULL};

static void certs_desired(void *ctx, const char *value_json, int64_t version, iotdm_ack *ack)
{
    certs_cap *cc = ctx;
    cap_items_async_desired(&cc->async, value_json, version, ack);
}

static char *certs_read(void *ctx)
{
    certs_cap *cc = ctx;
    return cap_items_async_read(&cc->async);
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
    iotdm_result r = cap_items_async_init(&cc->async, &section, env, cc, "certificates");
    if (r < 0)
        return r;
    iotdm_property_handler h = {.struct_size = sizeof(iotdm_property_handler),
                                .component = CAP_COMPONENT,
                                .property = "certificates",
                                .on_desired = certs_desired,
                                .read_state = certs_read,
                                .ctx = cc};
    r = iotdm_handler_add(env->client, &h);
    return r < 0 ? r
                 : iotdm_command_register(env->client, CAP_COMPONENT, "getCertificateDetails",
                                          details_cmd, cc);
}

void cap_certificates_stop(void *state)
{
    certs_cap *cc = state;
    if (!cc)
        return;
    cap_items_async_deinit(&cc->async);
    free(cc);
}
