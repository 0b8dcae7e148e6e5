/* Twin document rules shared by the hub and the device library: limits, merge-patch, $metadata. */
#ifndef IOTDM_PROTO_TWIN_H
#define IOTDM_PROTO_TWIN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iotdm/result.h"

/* Limits of docs/protocol.md §6.1. */
#define TWIN_MAX_DEPTH         10
#define TWIN_MAX_SECTION_BYTES (32 * 1024) /* desired, reported */
#define TWIN_MAX_TAGS_BYTES    (8 * 1024)
#define TWIN_MAX_KEY_BYTES     1024
#define TWIN_MAX_STRING_BYTES  4096
#define TWIN_MAX_INTEGER       INT64_C(4503599627370495)  /* 2^52 - 1 */
#define TWIN_MIN_INTEGER       INT64_C(-4503599627370496) /* -2^52 */

typedef struct {
    char message[256];
} twin_error;

/* Checks a patch (or a full replacement section) before it is applied. Rules:
 * - the patch is an object;
 * - depth: the section root is depth 0 and every object or array value one level deeper; containers
 *   deeper than TWIN_MAX_DEPTH are rejected. So the root plus 10 nested objects is accepted, as in
 *   Azure's documented example (tags > one > ... > ten > "property") and edgeHub's validator;
 * - keys are non-empty, at most 1 KB of UTF-8, without C0/C1 controls or DEL, '.', '$' or ' '.
 *   At the root only, "$version" and "$metadata" are tolerated and ignored (callers strip them; a
 *   full twin read back and sent again carries them);
 * - strings at most 4 KB of UTF-8; integers within [-2^52, 2^52 - 1]; reals accepted;
 * - null is allowed as a member value (it deletes) but not as an array element.
 * Returns IOTDM_OK, IOTDM_E_TOO_DEEP, IOTDM_E_TOO_LARGE or IOTDM_E_MALFORMED; on error out_err
 * (optional) holds a readable message naming the offending key path. Section size is not checked
 * here: it depends on the merged result (see twin_check_size). */
IOTDM_NODISCARD iotdm_result twin_check_patch(const json_t *patch, twin_error *out_err);

/* Size of a section per §6.2 accounting: key and string UTF-8 bytes, numbers 8, booleans 4,
 * null 0, objects and arrays the sum of their members; "$"-prefixed keys excluded. */
size_t twin_section_size(const json_t *section);

/* IOTDM_OK when twin_section_size(section) <= limit, else IOTDM_E_TOO_LARGE with a message. */
IOTDM_NODISCARD iotdm_result twin_check_size(const json_t *section, size_t limit, const char *what,
                                             twin_error *out_err);

/* JSON merge-patch (RFC 7386) of patch into target (both objects): members update or add
 * recursively, null deletes, a non-object replaces (deep copy). "$"-prefixed keys of the patch are
 * ignored. Empty objects left after deletions are kept (Azure keeps them). On failure (allocation)
 * target may be partly updated: merge into a copy when that matters. */
IOTDM_NODISCARD iotdm_result twin_merge(json_t *target, const json_t *patch);

/* Updates the $metadata tree `meta` (mirrors the section) for the members the patch touched: every
 * touched object node and leaf gets {"$lastUpdated": now_iso} and, when version >= 0 (desired),
 * "$lastUpdatedVersion": version; a member replaced by a non-object loses its children's metadata;
 * deleted members lose their metadata; the root of meta is stamped too. With replace=true meta is
 * rebuilt for the whole document patch_or_doc. */
IOTDM_NODISCARD iotdm_result twin_metadata_update(json_t *meta, const json_t *patch_or_doc,
                                                  const char *now_iso, int64_t version,
                                                  bool replace);

/* Time as "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC) into buf (cap >= 25), from milliseconds since epoch. */
#define TWIN_TIME_CAP 25
void twin_format_time(int64_t ms, char *buf, size_t cap);

#endif
