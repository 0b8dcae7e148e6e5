/* The apps capability's internals shared by apps.c (handler, timer, reports, self-update) and
 * apps_apply.c (checking and applying each app). */
#ifndef IOTDM_CAPABILITIES_APPS_INTERNAL_H
#define IOTDM_CAPABILITIES_APPS_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>

#include "capabilities/capabilities.h"
#include "common/debpkg.h"

#define APPS_MAX          64                   /* apps in dm.apps; apps.list takes as many */
#define APPS_DOWNLOAD_MAX (512u * 1024 * 1024) /* one .deb */

/* Per-app error codes, next to the app in the reported map. */
#define APP_ERR_INPUT    400 /* the desired value is wrong (name, version, URL, hash, file) */
#define APP_ERR_RULE     409 /* a rule refuses it (foreground, the agent protecting itself) */
#define APP_ERR_DEVICE   500 /* the device failed (apt, dpkg, systemctl) */
#define APP_ERR_DOWNLOAD 502 /* the file could not be fetched */

typedef struct {
    cap_env *env;
    json_t *state; /* persisted: pending, selfUpdate, desired, errors, urls */
    bool exiting;  /* the simulated self-update restarts the agent: nothing more to do here */
    int64_t next_poll_mono;
    char ack_text[512];
    char *value_text;
} apps_cap;

/* One desired app. Strings are borrowed from the desired map. */
typedef struct {
    const char *key; /* the twin key: the package name with '.' written '_' */
    char name[DEBPKG_NAME_MAX + 1];
    const char *version; /* "latest", "not installed" or exact */
    const char *startup; /* NULL: leave it as it is */
    const char *url, *sha256;
    int code; /* 0, or one of APP_ERR_* */
    char message[400];
    bool pending; /* the agent's own update runs detached */
} app_item;

/* One pass over the desired map. */
typedef struct {
    app_item *items;
    size_t n;
    json_t *list;           /* the apps.list result before applying */
    const char *agent;      /* the agent's package (from configd) */
    const char *current_fg; /* the foreground app before applying, or NULL */
    app_item *new_fg;       /* the one foreground app asked for, or NULL */
    json_t *selfupdate;     /* {"package", "key", "target", "simulated"} once it started */
} apps_run;

void apps_item_fail(app_item *it, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Checks each app's value and the rules between apps (one foreground app, the agent). */
void apps_check(apps_run *run, json_t *desired);
/* The order to apply in: the new foreground app first, the agent's own package last. */
size_t apps_order(apps_run *run, app_item **out, size_t cap);
/* Applies one app (install, upgrade, removal, start-up), recording its error in it. */
void apps_apply_item(apps_cap *ac, apps_run *run, app_item *it);
/* The package name a twin key stands for ('_' back to '.'); false when it is not one. */
bool apps_key_to_name(const char *key, char *out, size_t cap);

#endif
