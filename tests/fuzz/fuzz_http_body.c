/* Fuzzes what the service API makes of request bodies: Device JSON (create, update, bulk) and
 * cloud-to-device message JSON. Input: one byte selecting the parser, then the body. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hub/http/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    json_error_t err;
    json_t *body = json_loadb((const char *)data + 1, size - 1, JSON_REJECT_DUPLICATES, &err);
    if (!body)
        return 0;
    if (data[0] & 1) {
        hub_c2d m;
        memset(&m, 0, sizeof m);
        const char *bad =
            json_is_object(body) ? http_c2d_from_json(body, "dev1", 3600000, &m) : "not an object";
        if (!bad && (m.body_len > 64 * 1024 || !m.properties || !m.message_id[0]))
            abort(); /* an accepted message must be complete and within limits */
        hub_c2d_deinit(&m);
    } else {
        hub_device d;
        memset(&d, 0, sizeof d);
        snprintf(d.device_id, sizeof d.device_id, "dev1");
        char why[256] = "";
        if (http_device_from_json(body, (data[0] & 2) != 0, &d, why, sizeof why)) {
            if (d.auth_type == HUB_AUTH_SAS && !(data[0] & 2) &&
                (!d.primary_key[0] || !d.secondary_key[0]))
                abort(); /* a created SAS device always has both keys */
        } else if (!why[0]) {
            abort(); /* a refusal always says why */
        }
    }
    json_decref(body);
    return 0;
}
