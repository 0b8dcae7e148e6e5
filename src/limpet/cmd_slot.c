/* limpet's slot commands: URI, HMAC key, connection-string import, SAS, HMAC, destroy. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/base64.h"
#include "common/connstr.h"
#include "limpet/cli.h"

#define HMAC_FILE_MAX (16 * 1024 * 1024)

static unsigned slot_of(const limpet_cli *c)
{
    return (unsigned)c->slot;
}

int cmd_uri(limpet_cli *c, json_t **out)
{
    char uri[LIMPET_URI_MAX + 1];
    iotdm_result r = limpet_slot_uri_read(c->tpm, slot_of(c), uri);
    if (r < 0)
        return cli_tpm_error(c, "uri", r);
    *out = json_pack("{si ss}", "slot", (int)c->slot, "uri", uri);
    return 0;
}

int cmd_set_uri(limpet_cli *c, json_t **out)
{
    limpet_uri u;
    if (limpet_uri_parse(c->args[0], &u) < 0)
        return cli_usage_error("the URI must be HOST/DEVICE or HOST/DEVICE/MODULE");
    iotdm_result r = limpet_slot_uri_write(c->tpm, slot_of(c), c->args[0]);
    if (r < 0)
        return cli_tpm_error(c, "set-uri", r);
    *out = json_pack("{si ss}", "slot", (int)c->slot, "uri", c->args[0]);
    return 0;
}

int cmd_delete_uri(limpet_cli *c, json_t **out)
{
    iotdm_result r = limpet_slot_uri_delete(c->tpm, slot_of(c));
    if (r < 0 && r != IOTDM_E_NOT_FOUND)
        return cli_tpm_error(c, "delete-uri", r);
    *out = json_pack("{si sb}", "slot", (int)c->slot, "deleted", r == IOTDM_OK);
    return 0;
}

static int import_key(limpet_cli *c, const char *key_b64)
{
    uint8_t key[128];
    long n = base64_decode(key_b64, strlen(key_b64), key, sizeof key);
    if (n <= 0)
        return cli_usage_error("the key must be base64 (at most 128 bytes)");
    iotdm_result r = limpet_slot_key_create(c->tpm, slot_of(c), key, (size_t)n);
    memset(key, 0, sizeof key);
    return r < 0 ? cli_tpm_error(c, "import-key", r) : 0;
}

int cmd_import_key(limpet_cli *c, json_t **out)
{
    int status = import_key(c, c->args[0]);
    if (status == 0)
        *out = json_pack("{si si}", "slot", (int)c->slot, "keyHandle",
                         (int)(LIMPET_HMAC_KEY_BASE + slot_of(c)));
    return status;
}

int cmd_evict_key(limpet_cli *c, json_t **out)
{
    iotdm_result r = limpet_slot_key_evict(c->tpm, slot_of(c));
    if (r < 0)
        return cli_tpm_error(c, "evict-key", r);
    *out = json_pack("{si}", "slot", (int)c->slot);
    return 0;
}

int cmd_import_connection_string(limpet_cli *c, json_t **out)
{
    char host[256], id[129], module[129] = "", key[256], uri[LIMPET_URI_MAX + 1];
    const char *cs = c->args[0];
    if (!connstr_get(cs, "HostName", host, sizeof host) ||
        !connstr_get(cs, "DeviceId", id, sizeof id) ||
        !connstr_get(cs, "SharedAccessKey", key, sizeof key))
        return cli_usage_error("the connection string needs HostName, DeviceId and "
                               "SharedAccessKey");
    connstr_get(cs, "ModuleId", module, sizeof module);
    int n = snprintf(uri, sizeof uri, "%s/%s%s%s", host, id, module[0] ? "/" : "", module);
    if (n < 0 || (size_t)n >= sizeof uri)
        return cli_usage_error("the hub URI would exceed %d characters", LIMPET_URI_MAX);
    int status = import_key(c, key);
    memset(key, 0, sizeof key);
    if (status != 0)
        return status;
    iotdm_result r = limpet_slot_uri_write(c->tpm, slot_of(c), uri);
    if (r < 0)
        return cli_tpm_error(c, "storing the URI", r);
    *out = json_pack("{si ss ss ss}", "slot", (int)c->slot, "uri", uri, "hostName", host,
                     "deviceId", id);
    return 0;
}

int cmd_sas(limpet_cli *c, json_t **out)
{
    char *end = NULL;
    long validity = c->expiry ? strtol(c->expiry, &end, 10) : 3600;
    if ((c->expiry && (*end || !*c->expiry)) || validity <= 0 || validity > 365L * 86400)
        return cli_usage_error("--expiry takes seconds (1 to one year)");
    int64_t se = (int64_t)time(NULL) + validity;
    char token[1024], cs[2048];
    limpet_uri u;
    iotdm_result r = limpet_slot_sas(c->tpm, slot_of(c), se, token, sizeof token, &u);
    if (r < 0)
        return cli_tpm_error(c, "sas", r);
    snprintf(cs, sizeof cs, "HostName=%s;DeviceId=%s%s%s;SharedAccessSignature=%s", u.host,
             u.device_id, u.module_id[0] ? ";ModuleId=" : "", u.module_id, token);
    *out = json_pack("{ss ss ss sI ss}", "token", token, "hostName", u.host, "deviceId",
                     u.device_id, "expiry", (json_int_t)se, "connectionString", cs);
    return 0;
}

int cmd_hmac(limpet_cli *c, json_t **out)
{
    FILE *f = fopen(c->args[0], "rb");
    if (!f)
        return cli_usage_error("cannot read %s", c->args[0]);
    char *buf = malloc(HMAC_FILE_MAX);
    size_t n = buf ? fread(buf, 1, HMAC_FILE_MAX, f) : 0;
    bool too_big = buf && n == HMAC_FILE_MAX && fgetc(f) != EOF;
    fclose(f);
    if (!buf || too_big) {
        free(buf);
        return cli_usage_error("%s is larger than 16 MiB", c->args[0]);
    }
    char sig[64];
    iotdm_result r = limpet_slot_sign_b64(c->tpm, slot_of(c), buf, n, sig, sizeof sig);
    free(buf);
    if (r < 0)
        return cli_tpm_error(c, "hmac", r);
    *out = json_pack("{ss}", "hmac", sig);
    return 0;
}

int cmd_destroy(limpet_cli *c, json_t **out)
{
    iotdm_result r = limpet_slot_uri_delete(c->tpm, slot_of(c));
    if (r < 0 && r != IOTDM_E_NOT_FOUND)
        return cli_tpm_error(c, "destroy (uri)", r);
    r = limpet_slot_key_evict(c->tpm, slot_of(c));
    if (r < 0)
        return cli_tpm_error(c, "destroy (key)", r);
    *out = json_pack("{si sb}", "slot", (int)c->slot, "destroyed", 1);
    return 0;
}
