/* Fuzzes what the DPS service API accepts: enrollment bodies (validation, generated keys,
 * certificate parsing of PEM or base64 DER) and certificate text on its own. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hub/dps/dps.h"
#include "hub/dps/dps_cert.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    json_decref(dps_cert_info(text));

    static hub h;
    strcpy(h.cfg.hostname, "hub.test");
    json_t *body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (body) {
        char err[256];
        const hub_dps_kind kinds[] = {HUB_DPS_INDIVIDUAL, HUB_DPS_GROUP};
        const char *ids[] = {json_string_value(json_object_get(body, "registrationId")),
                             json_string_value(json_object_get(body, "enrollmentGroupId"))};
        for (int i = 0; i < 2; i++) {
            json_t *doc = dps_enrollment_prepare(&h, kinds[i], ids[i] ? ids[i] : "x", body, NULL,
                                                 err, sizeof err);
            if (doc)
                json_decref(dps_enrollment_view(doc, 1));
            json_decref(doc);
        }
        json_decref(body);
    }
    free(text);
    return 0;
}
