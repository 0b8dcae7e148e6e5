/* DPS assignment: the attested device created or updated in this hub's registry with matching
 * credentials, its initial twin, and the registration record (docs/protocol.md §7.4, §7.12). */
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/timeutil.h"
#include "hub/dps/dps_internal.h"
#include "hub/twin_ops.h"

static const char *doc_str(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static json_t *ended(const char *registration_id, const char *operation_id, const char *status,
                     int error_code, const char *message)
{
    char when[40];
    dps_timestamp(when);
    return json_pack("{s:s, s:s, s:{s:s, s:s, s:i, s:s, s:s}}", "operationId", operation_id,
                     "status", status, "registrationState", "registrationId", registration_id,
                     "status", status, "errorCode", error_code, "errorMessage", message,
                     "lastUpdatedDateTimeUtc", when);
}

static void set_credentials(hub_device *d, const dps_match *m)
{
    d->auth_type = m->auth;
    d->primary_key[0] = d->secondary_key[0] = '\0';
    d->primary_thumbprint[0] = d->secondary_thumbprint[0] = '\0';
    if (m->auth == HUB_AUTH_SAS) {
        snprintf(d->primary_key, sizeof d->primary_key, "%s", m->primary_key);
        snprintf(d->secondary_key, sizeof d->secondary_key, "%s",
                 m->secondary_key[0] ? m->secondary_key : m->primary_key);
    } else {
        /* Group X.509 devices are registered by their own certificate's thumbprint: the hub's
         * MQTT listener authenticates self-signed thumbprints, and the device presents the
         * very certificate it was provisioned with. */
        snprintf(d->primary_thumbprint, sizeof d->primary_thumbprint, "%s", m->thumbprint);
    }
}

/* The enrollment's initialTwin ({"tags","properties":{"desired"}}) on a new or reset twin. */
static iotdm_result apply_initial_twin(hub_store *store, hub_work *w, const char *device_id,
                                       const json_t *enrollment, bool replace)
{
    const json_t *init = json_object_get(enrollment, "initialTwin");
    if (!json_is_object(init) && !replace)
        return IOTDM_OK;
    json_t *body = json_object();
    const json_t *tags = json_object_get(init, "tags");
    const json_t *desired = json_object_get(json_object_get(init, "properties"), "desired");
    json_object_set_new(body, "tags", json_is_object(tags) ? json_deep_copy(tags) : json_object());
    json_object_set_new(
        body, "properties",
        json_pack("{s:o}", "desired",
                  json_is_object(desired) ? json_deep_copy(desired) : json_object()));
    json_t *twin = NULL;
    twin_error err;
    iotdm_result r = hub_twin_update_service(store, w, device_id, body, replace, 0, &twin, &err);
    json_decref(body);
    json_decref(twin);
    return r;
}

/* Creates the device, or updates the credentials of a known one (re-provisioning). Sets
 * *out_substatus. */
static iotdm_result upsert_device(hub_store *store, hub_work *w, const char *device_id,
                                  const dps_match *m, const char **out_substatus)
{
    hub_device d;
    iotdm_result r = hub_store_device_get(store, device_id, &d);
    if (r == IOTDM_E_NOT_FOUND) {
        memset(&d, 0, sizeof d);
        snprintf(d.device_id, sizeof d.device_id, "%s", device_id);
        d.enabled = true;
        d.status_updated_ms = time_now_ms();
        set_credentials(&d, m);
        r = hub_store_device_create(store, &d);
        if (r == IOTDM_OK)
            r = apply_initial_twin(store, w, device_id, m->enrollment, false);
        *out_substatus = "initialAssignment";
        return r;
    }
    if (r < 0)
        return r;
    set_credentials(&d, m);
    r = hub_store_device_update(store, &d, 0);
    /* reprovisionPolicy.migrateDeviceData (default true) keeps the twin; false resets it to the
     * enrollment's initial twin. */
    const json_t *policy = json_object_get(m->enrollment, "reprovisionPolicy");
    bool migrate = !json_is_false(json_object_get(policy, "migrateDeviceData"));
    *out_substatus = migrate ? "deviceDataMigrated" : "deviceDataReset";
    if (r == IOTDM_OK && !migrate)
        r = apply_initial_twin(store, w, device_id, m->enrollment, true);
    return r;
}

/* The registration record, kept for the service API and returned to the device. */
static json_t *record(hub *h, hub_store *store, const char *registration_id, const char *device_id,
                      const dps_match *m, const char *substatus, const json_t *payload)
{
    char when[40], created[40];
    dps_timestamp(when);
    snprintf(created, sizeof created, "%s", when);
    json_t *old = NULL;
    if (hub_store_registration_get(store, registration_id, &old, NULL) == IOTDM_OK) {
        const char *c = doc_str(old, "createdDateTimeUtc");
        if (c)
            snprintf(created, sizeof created, "%s", c);
    }
    json_decref(old);
    json_t *rs = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "registrationId", registration_id,
                           "createdDateTimeUtc", created, "assignedHub", h->cfg.hostname,
                           "deviceId", device_id, "status", "assigned", "substatus", substatus,
                           "lastUpdatedDateTimeUtc", when);
    if (m->kind == HUB_DPS_GROUP)
        json_object_set_new(rs, m->mechanism,
                            json_pack("{s:s}", "enrollmentGroupId", m->enrollment_id));
    else if (strcmp(m->mechanism, "x509") == 0)
        json_object_set_new(rs, "x509", json_object());
    /* No allocation webhook: the device's custom payload comes back as the allocation data. */
    if (json_is_object(payload))
        json_object_set_new(rs, "payload", json_deep_copy(payload));
    return rs;
}

json_t *dps_assign(hub *h, hub_store *store, hub_work *w, const char *registration_id,
                   const dps_match *m, const json_t *payload, const char *operation_id)
{
    const char *status = doc_str(m->enrollment, "provisioningStatus");
    if (status && strcmp(status, "disabled") == 0) {
        log_info("dps", "refused registration=%s reason=\"enrollment disabled\"", registration_id);
        return ended(registration_id, operation_id, "disabled", 401002,
                     m->kind == HUB_DPS_GROUP ? "the enrollment group is disabled"
                                              : "the enrollment is disabled");
    }
    const char *device_id = doc_str(m->enrollment, "deviceId");
    if (m->kind == HUB_DPS_GROUP || !device_id || !*device_id)
        device_id = registration_id;
    /* A registration id passed §7.1 in hub_dps_register: at most 128 letters, digits and - . _ :,
     * all of which IoT Hub's device id rule (§6.3) allows, so as a device id it is valid by
     * construction. An enrollment's deviceId was checked when it was stored; one stored before
     * that check existed is refused here rather than made into a device the registry API would
     * refuse. */
    char why[256];
    if (!dps_device_id_valid(device_id, why, sizeof why)) {
        log_warn("dps", "refused registration=%s reason=\"%s\"", registration_id, why);
        return ended(registration_id, operation_id, "failed", DPS_ERR_BAD_REQUEST, why);
    }
    const char *substatus = "initialAssignment";
    iotdm_result r = upsert_device(store, w, device_id, m, &substatus);
    json_t *rs =
        r == IOTDM_OK ? record(h, store, registration_id, device_id, m, substatus, payload) : NULL;
    uint64_t etag = 0;
    if (rs)
        r = hub_store_registration_put(store, registration_id,
                                       m->kind == HUB_DPS_GROUP ? m->enrollment_id : "", rs, &etag);
    if (r < 0 || !rs) {
        json_decref(rs);
        log_error("dps", "assignment failed registration=%s: %s", registration_id,
                  iotdm_result_message(r));
        return ended(registration_id, operation_id, "failed", 500001,
                     "the device could not be created in the hub's registry");
    }
    char tag[32];
    hub_device_etag(etag, tag);
    json_object_set_new(rs, "etag", json_string(tag));
    /* Only the device's answer carries the blob with its hub key (which only its TPM can open);
     * the stored record, which the service API shows, does not. */
    if (m->tpm_authentication_key)
        json_object_set_new(rs, "tpm",
                            json_pack("{s:s}", "authenticationKey", m->tpm_authentication_key));
    log_info("dps", "assigned registration=%s device=%s via=%s%s%s substatus=%s", registration_id,
             device_id, m->mechanism, m->kind == HUB_DPS_GROUP ? " group=" : "",
             m->kind == HUB_DPS_GROUP ? m->enrollment_id : "", substatus);
    return json_pack("{s:s, s:s, s:o}", "operationId", operation_id, "status", "assigned",
                     "registrationState", rs);
}
