/* wifi: NetworkManager Wi-Fi profiles by name, downloaded by the agent and installed by configd
 * when missing or changed; dm*getWifiDetails. Secrets are never reported. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "capabilities/capabilities.h"
#include "capabilities/itemized.h"

#define PROFILE_FILE_MAX (64 * 1024) /* configd takes no larger profile */
#define PROFILE_NAME_MAX 64

static const char state_name[] = "wifi";

typedef struct {
    cap_env *env;
    cap_items_async async; /* downloads and installs run on the worker */
} wifi_cap;

/* The same rule as configd's (a file name that cannot leave its folder), checked here first so
 * that a bad name costs no download and a refusal from configd can only mean "not there". */
static bool name_valid(const char *name)
{
    static const char allowed[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                  "0123456789 _.-";
    size_t n = strlen(name);
    return n > 0 && n <= PROFILE_NAME_MAX && strspn(name, allowed) == n && name[0] != '.' &&
           name[0] != ' ' && name[n - 1] != ' ';
}

/* Only differences are applied: a profile already there with the same SHA-256 is not touched. */
static void apply_item(void *ctx, cap_env *env, cap_items *it, const char *name, json_t *item,
                       const json_t *held)
{
    (void)ctx;
    const char *state = json_string_value(json_object_get(item, "state"));
    const char *url = json_string_value(json_object_get(item, "url"));
    const char *sha256 = json_string_value(json_object_get(item, "sha256"));
    json_t *have = json_object_get(held, name);
    if (!name_valid(name)) {
        cap_items_fail(it, 400, NULL, name,
                       "not a profile name (1 to %d of A-Z a-z 0-9 space _ . -, not starting "
                       "with . or a space)",
                       PROFILE_NAME_MAX);
    } else if (!json_is_object(item) || !state ||
               (strcmp(state, "installed") != 0 && strcmp(state, "uninstalled") != 0)) {
        cap_items_fail(it, 400, NULL, name, "state must be \"installed\" or \"uninstalled\"");
    } else if (strcmp(state, "uninstalled") == 0) {
        if (have)
            cap_items_configd(env, it, NULL, name, "wifi.uninstall",
                              json_pack("{s:s}", "profile", name));
    } else if (!url || !sha256) {
        cap_items_fail(it, 400, NULL, name, "url and sha256 are required to install");
    } else {
        const char *have_sha = json_string_value(json_object_get(have, "sha256"));
        if (!have_sha || strcasecmp(have_sha, sha256) != 0)
            cap_items_install(env, it, NULL, name, "wifi.install",
                              json_pack("{s:s, s:s}", "profile", name, "sha256", sha256), url,
                              sha256, PROFILE_FILE_MAX);
    }
}

static iotdm_result list(cap_env *env, json_t **out, char *err, size_t err_cap)
{
    json_t *result = NULL;
    iotdm_result r = env->configd(env->configd_ctx, "wifi.list", NULL, &result, err, err_cap);
    *out = NULL;
    if (r == IOTDM_OK) {
        *out = json_incref(json_object_get(result, "profiles"));
        if (!json_is_object(*out)) {
            json_decref(*out);
            *out = json_object();
        }
    }
    json_decref(result);
    return r;
}

/* What the twin shows of a profile: its SSID and kind of security, never a secret. The file's
 * SHA-256 stays on the device too: a digest of a file with a weak passphrase could be guessed. */
static json_t *public_view(json_t *held)
{
    json_t *out = json_object();
    const char *name;
    json_t *p;
    json_object_foreach(held, name, p)
    {
        json_object_set_new(out, name,
                            json_pack("{s:O, s:O}", "ssid", json_object_get(p, "ssid"), "security",
                                      json_object_get(p, "security")));
    }
    json_decref(held);
    return out;
}

static const cap_items_section section = {state_name, "the Wi-Fi profiles", list, apply_item,
                                          public_view};

static void wifi_desired(void *ctx, const char *value_json, int64_t version, iotdm_ack *ack)
{
    wifi_cap *wc = ctx;
    cap_items_async_desired(&wc->async, value_json, version, ack);
}

static char *wifi_read(void *ctx)
{
    wifi_cap *wc = ctx;
    return cap_items_async_read(&wc->async);
}

static int details_cmd(void *ctx, const char *name, const char *payload, char **out_json)
{
    (void)name;
    wifi_cap *wc = ctx;
    json_t *req = json_loads(payload ? payload : "null", JSON_DECODE_ANY, NULL);
    const char *profile = json_string_value(json_object_get(req, "profile"));
    char err[512];
    int status = 200;
    json_t *result = NULL;
    if (!profile || !name_valid(profile)) {
        status = 400;
        snprintf(err, sizeof err,
                 "give {\"profile\": a name of 1 to %d of A-Z a-z 0-9 space _ . -, not starting "
                 "with . or a space}",
                 PROFILE_NAME_MAX);
    } else {
        json_t *args = json_pack("{s:s}", "profile", profile);
        iotdm_result r =
            wc->env->configd(wc->env->configd_ctx, "wifi.details", args, &result, err, sizeof err);
        json_decref(args);
        if (r < 0)
            status = r == IOTDM_E_MALFORMED ? 404 : 500;
    }
    json_decref(req);
    json_t *body = status == 200 ? result : json_pack("{s:s}", "message", err);
    if (status == 200)
        json_object_del(body, "profile");
    *out_json = cap_dump(body);
    json_decref(body);
    return status;
}

iotdm_result cap_wifi_start(cap_env *env, void **out_state)
{
    wifi_cap *wc = calloc(1, sizeof *wc);
    if (!wc)
        return -ENOMEM;
    wc->env = env;
    *out_state = wc;
    iotdm_result r = cap_items_async_init(&wc->async, &section, env, wc, "wifi");
    if (r < 0)
        return r;
    iotdm_property_handler h = {.struct_size = sizeof(iotdm_property_handler),
                                .component = CAP_COMPONENT,
                                .property = "wifi",
                                .on_desired = wifi_desired,
                                .read_state = wifi_read,
                                .ctx = wc};
    r = iotdm_handler_add(env->client, &h);
    return r < 0 ? r
                 : iotdm_command_register(env->client, CAP_COMPONENT, "getWifiDetails", details_cmd,
                                          wc);
}

void cap_wifi_stop(void *state)
{
    wifi_cap *wc = state;
    if (!wc)
        return;
    cap_items_async_deinit(&wc->async);
    free(wc);
}
