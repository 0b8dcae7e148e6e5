/* Connection-string lookup. */
#include "common/connstr.h"

#include <string.h>

bool connstr_get(const char *connstr, const char *key, char *out, size_t out_cap)
{
    size_t klen = strlen(key);
    const char *p = connstr;
    while (*p) {
        const char *end = strchr(p, ';');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > klen && memcmp(p, key, klen) == 0 && p[klen] == '=') {
            size_t vlen = len - klen - 1;
            if (vlen + 1 > out_cap)
                return false;
            memcpy(out, p + klen + 1, vlen);
            out[vlen] = '\0';
            return true;
        }
        if (!end)
            break;
        p = end + 1;
    }
    return false;
}
