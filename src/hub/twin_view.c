/* The twin and device JSON (registry entries, device and service views of twins) and the etag
 * formats: pure functions of the stored structs, apart from the operations in twin_ops.c so that
 * what only reads twins (queries) does not depend on what changes them. */
#include "hub/twin_ops.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/base64.h"
#include "common/timeutil.h"

void hub_device_etag(uint64_t counter, char out[32])
{
    char dec[24];
    int n = snprintf(dec, sizeof dec, "%" PRIu64, counter);
    base64_encode((const unsigned char *)dec, (size_t)n, out, 32);
}

void hub_twin_etag(uint64_t counter, char out[16])
{
    unsigned char be[8];
    for (int i = 7; i >= 0; i--, counter >>= 8)
        be[i] = (unsigned char)(counter & 0xff);
    base64_encode(be, sizeof be, out, 16);
}

static bool strip_quotes(const char *header, char *out, size_t cap)
{
    size_t len = strlen(header);
    while (len && (header[len - 1] == ' '))
        len--;
    while (len && *header == ' ')
        header++, len--;
    if (len >= 2 && header[0] == '"' && header[len - 1] == '"')
        header++, len -= 2;
    if (len + 1 > cap)
        return false;
    memcpy(out, header, len);
    out[len] = '\0';
    return true;
}

bool hub_parse_device_if_match(const char *header, uint64_t *out)
{
    char v[64];
    *out = 0;
    if (!header || !strip_quotes(header, v, sizeof v))
        return header == NULL;
    if (strcmp(v, "*") == 0 || v[0] == '\0')
        return true;
    unsigned char dec[48];
    long n = base64_decode(v, strlen(v), dec, sizeof dec - 1);
    if (n <= 0)
        return false;
    dec[n] = '\0';
    char *end;
    unsigned long long c = strtoull((const char *)dec, &end, 10);
    if (*end || c == 0)
        return false;
    *out = c;
    return true;
}

bool hub_parse_twin_if_match(const char *header, uint64_t *out)
{
    char v[64];
    *out = 0;
    if (!header || !strip_quotes(header, v, sizeof v))
        return header == NULL;
    if (strcmp(v, "*") == 0 || v[0] == '\0')
        return true;
    unsigned char be[16];
    if (base64_decode(v, strlen(v), be, sizeof be) != 8)
        return false;
    uint64_t c = 0;
    for (int i = 0; i < 8; i++)
        c = c << 8 | be[i];
    *out = c;
    return c != 0;
}

static const char *auth_type_name(hub_auth_type t)
{
    switch (t) {
    case HUB_AUTH_SAS:
        return "sas";
    case HUB_AUTH_SELF_SIGNED:
        return "selfSigned";
    case HUB_AUTH_CA:
        return "certificateAuthority";
    default:
        return "none";
    }
}

static json_t *time_json(int64_t ms)
{
    char buf[32];
    time_format_iso(ms, buf, sizeof buf);
    return json_string(buf);
}

static json_t *string_or_null(const char *s)
{
    return s && *s ? json_string(s) : json_null();
}

json_t *hub_device_to_json(const hub_device *d)
{
    char etag[32];
    hub_device_etag(d->etag, etag);
    json_t *j = json_object();
    json_object_set_new(j, "deviceId", json_string(d->device_id));
    json_object_set_new(j, "generationId", json_string(d->generation_id));
    json_object_set_new(j, "etag", json_string(etag));
    json_object_set_new(j, "connectionState",
                        json_string(d->connected ? "Connected" : "Disconnected"));
    json_object_set_new(j, "status", json_string(d->enabled ? "enabled" : "disabled"));
    json_object_set_new(j, "statusReason", string_or_null(d->status_reason));
    json_object_set_new(j, "connectionStateUpdatedTime", time_json(d->connection_state_updated_ms));
    json_object_set_new(j, "statusUpdatedTime", time_json(d->status_updated_ms));
    json_object_set_new(j, "lastActivityTime", time_json(d->last_activity_ms));
    json_object_set_new(j, "cloudToDeviceMessageCount", json_integer((json_int_t)d->c2d_pending));
    json_t *auth = json_object();
    json_object_set_new(auth, "symmetricKey",
                        json_pack("{s:o, s:o}", "primaryKey", string_or_null(d->primary_key),
                                  "secondaryKey", string_or_null(d->secondary_key)));
    json_object_set_new(auth, "x509Thumbprint",
                        json_pack("{s:o, s:o}", "primaryThumbprint",
                                  string_or_null(d->primary_thumbprint), "secondaryThumbprint",
                                  string_or_null(d->secondary_thumbprint)));
    json_object_set_new(auth, "type", json_string(auth_type_name(d->auth_type)));
    json_object_set_new(j, "authentication", auth);
    json_object_set_new(j, "capabilities", json_pack("{s:b}", "iotEdge", d->iot_edge));
    json_object_set_new(j, "deviceScope", json_null());
    json_object_set_new(j, "parentScopes", json_array());
    return j;
}

static json_t *section_with_version(const json_t *section, int64_t version, const json_t *meta)
{
    json_t *s = json_deep_copy(section);
    if (meta)
        json_object_set(s, "$metadata", (json_t *)meta);
    json_object_set_new(s, "$version", json_integer(version));
    return s;
}

json_t *hub_twin_device_view(const hub_twin *t)
{
    return json_pack("{s:o, s:o}", "desired",
                     section_with_version(t->desired, t->desired_version, NULL), "reported",
                     section_with_version(t->reported, t->reported_version, NULL));
}

/* Appends section (a JSON object's text) with "$version" as its last member. */
static bool splice_version(char *out, size_t *pos, const char *section, size_t len, int64_t version)
{
    while (len && (section[len - 1] == ' ' || section[len - 1] == '\n'))
        len--;
    if (len < 2 || section[0] != '{' || section[len - 1] != '}')
        return false;
    bool empty = true;
    for (size_t i = 1; i + 1 < len && empty; i++)
        empty = section[i] == ' ' || section[i] == '\n';
    memcpy(out + *pos, section, len - 1);
    *pos += len - 1;
    *pos +=
        (size_t)sprintf(out + *pos, "%s\"$version\":%lld}", empty ? "" : ",", (long long)version);
    return true;
}

char *hub_twin_device_view_text(const char *desired, size_t desired_len, int64_t desired_version,
                                const char *reported, size_t reported_len, int64_t reported_version,
                                size_t *out_len)
{
    /* {"desired":<desired,"$version":N>,"reported":<reported,"$version":M>} */
    size_t cap = desired_len + reported_len + 2 * 40 + 32;
    char *out = xmalloc(cap);
    if (!out)
        return NULL;
    size_t pos = (size_t)sprintf(out, "{\"desired\":");
    bool ok = splice_version(out, &pos, desired, desired_len, desired_version);
    if (ok) {
        pos += (size_t)sprintf(out + pos, ",\"reported\":");
        ok = splice_version(out, &pos, reported, reported_len, reported_version);
    }
    if (!ok) {
        xfree(out);
        return NULL;
    }
    out[pos++] = '}';
    out[pos] = '\0';
    *out_len = pos;
    return out;
}

json_t *hub_twin_service_view(const hub_device *d, const hub_twin *t)
{
    char etag[16], dev_etag[32];
    hub_twin_etag(t->etag, etag);
    hub_device_etag(d->etag, dev_etag);
    json_t *j = json_object();
    json_object_set_new(j, "deviceId", json_string(d->device_id));
    json_object_set_new(j, "etag", json_string(etag));
    json_object_set_new(j, "deviceEtag", json_string(dev_etag));
    json_object_set_new(j, "status", json_string(d->enabled ? "enabled" : "disabled"));
    json_object_set_new(j, "statusReason", string_or_null(d->status_reason));
    json_object_set_new(j, "statusUpdateTime", time_json(d->status_updated_ms));
    json_object_set_new(j, "connectionState",
                        json_string(d->connected ? "Connected" : "Disconnected"));
    json_object_set_new(j, "lastActivityTime", time_json(d->last_activity_ms));
    json_object_set_new(j, "cloudToDeviceMessageCount", json_integer((json_int_t)d->c2d_pending));
    json_object_set_new(j, "authenticationType", json_string(auth_type_name(d->auth_type)));
    json_object_set_new(j, "x509Thumbprint",
                        json_pack("{s:o, s:o}", "primaryThumbprint",
                                  string_or_null(d->primary_thumbprint), "secondaryThumbprint",
                                  string_or_null(d->secondary_thumbprint)));
    json_object_set_new(j, "modelId", json_string(d->model_id));
    json_object_set_new(j, "version", json_integer(t->version));
    json_object_set_new(j, "capabilities", json_pack("{s:b}", "iotEdge", d->iot_edge));
    json_object_set_new(j, "tags", json_deep_copy(t->tags));
    json_object_set_new(
        j, "properties",
        json_pack("{s:o, s:o}", "desired",
                  section_with_version(t->desired, t->desired_version, t->desired_meta), "reported",
                  section_with_version(t->reported, t->reported_version, t->reported_meta)));
    return j;
}
