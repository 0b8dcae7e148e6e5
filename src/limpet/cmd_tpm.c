/* limpet's TPM-wide commands: version, info, ek, srk, registration-id, enrollment-info, slots,
 * clear. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "limpet/cli.h"
#include "limpet/info.h"

#define LIMPET_VERSION "2"

int cmd_version(limpet_cli *c, json_t **out)
{
    (void)c;
    *out = json_pack("{ss}", "version", LIMPET_VERSION);
    return 0;
}

int cmd_info(limpet_cli *c, json_t **out)
{
    iotdm_result r = limpet_tpm_info(c->tpm, out);
    return r < 0 ? cli_tpm_error(c, "info", r) : 0;
}

static int write_file(const char *path, const uint8_t *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    bool ok = f && fwrite(p, 1, n, f) == n;
    if (f && fclose(f) != 0)
        ok = false;
    if (!ok)
        fprintf(stderr, "limpet: cannot write %s\n", path);
    return ok ? 0 : 1;
}

static int export_public(limpet_cli *c, json_t **out, bool ek)
{
    uint8_t pub[LIMPET_PUBLIC_MAX];
    size_t n;
    iotdm_result r = ek ? limpet_ek_public(c->tpm, pub, sizeof pub, &n)
                        : limpet_srk_public(c->tpm, pub, sizeof pub, &n);
    if (r < 0)
        return cli_tpm_error(c, ek ? "ek" : "srk", r);
    if (c->out && write_file(c->out, pub, n) != 0)
        return 1;
    *out = json_pack("{so si}", ek ? "ek" : "srk", cli_b64(pub, n), "handle",
                     ek ? LIMPET_EK_HANDLE : LIMPET_SRK_HANDLE);
    return 0;
}

int cmd_ek(limpet_cli *c, json_t **out)
{
    return export_public(c, out, true);
}

int cmd_srk(limpet_cli *c, json_t **out)
{
    return export_public(c, out, false);
}

/* Registration id, EK and SRK in one object; NULL (error printed) on failure. */
static json_t *enrollment(limpet_cli *c)
{
    uint8_t ek[LIMPET_PUBLIC_MAX], srk[LIMPET_PUBLIC_MAX];
    size_t ek_len, srk_len;
    iotdm_result r = limpet_ek_public(c->tpm, ek, sizeof ek, &ek_len);
    if (r == IOTDM_OK)
        r = limpet_srk_public(c->tpm, srk, sizeof srk, &srk_len);
    if (r < 0) {
        cli_tpm_error(c, "reading the EK and SRK", r);
        return NULL;
    }
    char reg_id[LIMPET_REG_ID_MAX];
    limpet_registration_id(ek, ek_len, reg_id);
    return json_pack("{ss so so}", "registrationId", reg_id, "endorsementKey", cli_b64(ek, ek_len),
                     "storageRootKey", cli_b64(srk, srk_len));
}

int cmd_registration_id(limpet_cli *c, json_t **out)
{
    *out = enrollment(c);
    if (*out)
        json_object_del(*out, "storageRootKey");
    return *out ? 0 : 1;
}

/* The JSON form is a DPS individual-enrollment list, ready for the service API. */
int cmd_enrollment_info(limpet_cli *c, json_t **out)
{
    const char *fmt = c->json ? "json" : c->format ? c->format : "text";
    if (strcmp(fmt, "json") && strcmp(fmt, "csv") && strcmp(fmt, "text"))
        return cli_usage_error("--format must be text, csv or json");
    json_t *e = enrollment(c);
    if (!e)
        return 1;
    const char *id = json_string_value(json_object_get(e, "registrationId"));
    const char *ek = json_string_value(json_object_get(e, "endorsementKey"));
    const char *srk = json_string_value(json_object_get(e, "storageRootKey"));
    if (!strcmp(fmt, "csv")) {
        printf("registrationId,endorsementKey,storageRootKey\n%s,%s,%s\n", id, ek, srk);
    } else if (!strcmp(fmt, "text")) {
        printf("registrationId: %s\nendorsementKey: %s\nstorageRootKey: %s\n", id, ek, srk);
    } else {
        json_t *list = json_pack("[{ss s{ss s{ssss}}}]", "registrationId", id, "attestation",
                                 "type", "tpm", "tpm", "endorsementKey", ek, "storageRootKey", srk);
        json_dumpf(list, stdout, JSON_COMPACT);
        putchar('\n');
        json_decref(list);
    }
    json_decref(e);
    *out = NULL;
    return 0;
}

int cmd_slots(limpet_cli *c, json_t **out)
{
    json_t *list = json_array();
    for (unsigned s = 0; s < LIMPET_SLOTS; s++) {
        char uri[LIMPET_URI_MAX + 1] = "";
        bool has_uri = limpet_slot_uri_read(c->tpm, s, uri) == IOTDM_OK;
        bool has_key = limpet_handle_exists(c->tpm, LIMPET_HMAC_KEY_BASE + s);
        if (!has_uri && !has_key)
            continue;
        json_t *o = json_pack("{si sb}", "slot", (int)s, "hmacKey", has_key);
        json_object_set_new(o, "uri", has_uri ? json_string(uri) : json_null());
        json_array_append_new(list, o);
    }
    if (c->json) {
        *out = json_pack("{so}", "slots", list);
        return 0;
    }
    size_t i;
    json_t *o;
    json_array_foreach(list, i, o)
    {
        json_t *uri = json_object_get(o, "uri");
        printf("%d  %s  %s\n", (int)json_integer_value(json_object_get(o, "slot")),
               json_is_string(uri) ? json_string_value(uri) : "(no uri)",
               json_is_true(json_object_get(o, "hmacKey")) ? "hmac-key" : "(no key)");
    }
    json_decref(list);
    return 0;
}

int cmd_clear(limpet_cli *c, json_t **out)
{
    if (!c->force) {
        fprintf(stderr, "limpet: clear destroys the EK, the SRK and every slot; "
                        "add --force to do it\n");
        return 2;
    }
    iotdm_result r = limpet_tpm_clear(c->tpm, c->lockout_auth);
    if (r < 0)
        return cli_tpm_error(c, "clear", r);
    *out = json_pack("{ss}", "tpmClear", "OK");
    return 0;
}
