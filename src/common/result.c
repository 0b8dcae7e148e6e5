/* Names and messages for iotdm_result values. */
#include "iotdm/result.h"

#include <string.h>

const char *iotdm_result_message(iotdm_result r)
{
    if (r == IOTDM_OK)
        return "ok";
    switch (r) {
#define IOTDM_RESULT_MSG(name, value, msg)                                                         \
    case name:                                                                                     \
        return msg;
        IOTDM_RESULT_TABLE(IOTDM_RESULT_MSG)
#undef IOTDM_RESULT_MSG
    default:
        break;
    }
    if (r < 0 && r > -4096)
        return strerror(-r);
    return "unknown error";
}

const char *iotdm_result_name(iotdm_result r)
{
    if (r == IOTDM_OK)
        return "OK";
    switch (r) {
#define IOTDM_RESULT_NAME(name, value, msg)                                                        \
    case name:                                                                                     \
        return #name;
        IOTDM_RESULT_TABLE(IOTDM_RESULT_NAME)
#undef IOTDM_RESULT_NAME
    default:
        break;
    }
    if (r < 0 && r > -4096) {
        const char *n = strerrorname_np(-r);
        if (n)
            return n;
    }
    return "UNKNOWN";
}
