/* wifi.* operations: NetworkManager Wi-Fi profiles as keyfiles in system-connections. */
#ifndef IOTDM_CONFIGD_OPS_WIFI_H
#define IOTDM_CONFIGD_OPS_WIFI_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "configd/optable.h"

#define CFGD_WIFI_DIR          "/etc/NetworkManager/system-connections"
#define CFGD_WIFI_SUFFIX       ".nmconnection"
#define CFGD_WIFI_FILE_MAX     (64 * 1024)
#define CFGD_WIFI_NAME_MAX     64
#define CFGD_WIFI_SSID_MAX     128 /* 32 bytes, or their decimal list form */
#define CFGD_WIFI_SECURITY_MAX 32
#define CFGD_NMCLI             "/usr/bin/nmcli"

/* A profile name is its file name: 1 to CFGD_WIFI_NAME_MAX of [A-Za-z0-9 _.-], not starting with
 * '.' or ' ' and not ending with ' ', so ".", ".." and hidden files cannot be named. */
bool cfgd_wifi_name_valid(const char *name, cfgd_error *err);

/* What configd reads from a keyfile (never a secret). */
typedef struct {
    char id[CFGD_WIFI_NAME_MAX + 1];           /* [connection] id */
    char ssid[CFGD_WIFI_SSID_MAX + 1];         /* [wifi] ssid, decoded when given as a byte list */
    char security[CFGD_WIFI_SECURITY_MAX + 1]; /* "open", "wep", or [wifi-security] key-mgmt */
    bool autoconnect;                          /* [connection] autoconnect, default true */
    bool is_wifi;                              /* [connection] type is wifi */
} cfgd_wifi_profile;

/* Parses a keyfile: an INI text (sections, key=value, # or ; comments) without NUL or control
 * characters other than tab and CR. 0 with *out filled, or -EINVAL with err saying what is wrong
 * (syntax, a missing id or type). The type and ssid are checked by the caller. */
int cfgd_wifi_keyfile_parse(const char *text, size_t len, cfgd_wifi_profile *out, cfgd_error *err);

int cfgd_validate_wifi_install(const json_t *args, cfgd_error *err);
int cfgd_validate_wifi_ref(const json_t *args, cfgd_error *err);

int cfgd_op_wifi_list(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err);
int cfgd_op_wifi_install(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err);
int cfgd_op_wifi_uninstall(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err);
int cfgd_op_wifi_details(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err);

#endif
