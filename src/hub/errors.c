/* Results to Azure error codes. */
#include "hub/errors.h"

#include <errno.h>

hub_error_info hub_error_for(iotdm_result r)
{
    switch (r) {
    case IOTDM_E_MALFORMED:
    case IOTDM_E_TOO_DEEP:
    case IOTDM_E_TOO_LARGE: /* twin and argument limits are 400 in Azure; 413 is for messages */
    case IOTDM_E_UNSUPPORTED:
        return HUB_ERR_ARGUMENT_INVALID;
    case IOTDM_E_UNAUTHORIZED:
    case IOTDM_E_FORBIDDEN:
    case IOTDM_E_EXPIRED:
        return HUB_ERR_UNAUTHORIZED;
    case IOTDM_E_QUOTA:
        return HUB_ERR_QUEUE_DEPTH;
    case IOTDM_E_NOT_FOUND:
        return HUB_ERR_DEVICE_NOT_FOUND;
    case IOTDM_E_NOT_ONLINE:
        return HUB_ERR_DEVICE_NOT_ONLINE;
    case IOTDM_E_EXISTS:
        return HUB_ERR_DEVICE_EXISTS;
    case IOTDM_E_PRECONDITION:
        return HUB_ERR_PRECONDITION;
    case IOTDM_E_THROTTLED:
        return HUB_ERR_THROTTLED;
    case IOTDM_E_TIMEOUT:
        return HUB_ERR_GATEWAY_TIMEOUT;
    case -ENOSPC:
        return HUB_ERR_DISK_FULL;
    default:
        return HUB_ERR_SERVER;
    }
}
