/* libFuzzer target: twin patch validation, then merge and $metadata update of accepted patches. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "proto/twin.h"

/* Twin patches arrive as MQTT payloads and HTTP bodies, well under this. */
#define FUZZ_MAX_INPUT (64 * 1024)

static const char sample_desired[] =
    "{\"rate\":5,\"dm\":{\"timeInfo\":{\"zone\":\"UTC\",\"ntp\":[\"a\",\"b\"]},\"wifi\":{}},"
    "\"flag\":true,\"s\":\"x\"}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool only_stamps(const json_t *node)
{
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)node, key, value)
    {
        if (key[0] != '$')
            return false;
    }
    return true;
}

/* The $metadata tree has a stamped node for every member of the section, children for exactly the
 * object members' members, and nothing else besides its "$" stamps. */
static bool same_shape(const json_t *section, const json_t *meta)
{
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)section, key, value)
    {
        const json_t *node = json_object_get(meta, key);
        if (!json_is_object(node) || !json_is_string(json_object_get(node, "$lastUpdated")))
            return false;
        if (json_is_object(value) ? !same_shape(value, node) : !only_stamps(node))
            return false;
    }
    json_object_foreach((json_t *)meta, key, value)
    {
        if (key[0] != '$' && !json_object_get(section, key))
            return false;
    }
    return true;
}

static void check_merge(const json_t *patch, size_t size)
{
    json_t *section = json_loads(sample_desired, 0, NULL);
    json_t *meta = json_object();
    char now[TWIN_TIME_CAP];
    twin_format_time((int64_t)size * 1000003, now, sizeof(now));
    if (section && meta && twin_metadata_update(meta, section, now, 1, true) == IOTDM_OK &&
        twin_merge(section, patch) == IOTDM_OK &&
        twin_metadata_update(meta, patch, now, 2, false) == IOTDM_OK) {
        /* Invariants: the merged section still passes the rules, a merge-patch is idempotent,
         * and the incrementally maintained metadata mirrors the section exactly. */
        if (twin_check_patch(section, NULL) != IOTDM_OK)
            __builtin_trap();
        json_t *again = json_deep_copy(section);
        if (again && twin_merge(again, patch) == IOTDM_OK && !json_equal(again, section))
            __builtin_trap();
        json_decref(again);
        if (!same_shape(section, meta))
            __builtin_trap();
        (void)twin_section_size(section);
    }
    json_decref(meta);
    json_decref(section);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_MAX_INPUT)
        return 0;
    json_error_t jerr;
    /* As the hub parses: duplicate keys rejected, NUL in strings rejected (jansson's default). */
    json_t *patch = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
    if (!patch)
        return 0;
    twin_error err;
    iotdm_result r = twin_check_patch(patch, &err);
    if (r == IOTDM_OK) {
        check_merge(patch, size);
    } else if (err.message[0] == '\0' || memchr(err.message, '\0', sizeof(err.message)) == NULL) {
        __builtin_trap(); /* a rejection always explains itself */
    }
    json_decref(patch);
    return 0;
}
