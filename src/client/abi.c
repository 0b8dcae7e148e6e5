/* Taking an application's versioned struct into this library's version. */
#include "client/abi.h"

#include <string.h>

iotdm_result client_struct_take(void *dst, size_t dst_size, const void *src, size_t v1_size)
{
    size_t size;
    memcpy(&size, src, sizeof size);
    if (size < v1_size)
        return IOTDM_E_MALFORMED;
    /* Built against a later version: fine as long as what only that version has is left zero. */
    const unsigned char *bytes = src;
    for (size_t i = dst_size; i < size; i++)
        if (bytes[i] != 0)
            return IOTDM_E_UNSUPPORTED;
    memset(dst, 0, dst_size);
    memcpy(dst, src, size < dst_size ? size : dst_size);
    return IOTDM_OK;
}
