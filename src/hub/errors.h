/* The one table from results to HTTP statuses and Azure error codes (docs/protocol.md §8.4). */
#ifndef IOTDM_HUB_ERRORS_H
#define IOTDM_HUB_ERRORS_H

#include "iotdm/result.h"

typedef struct {
    int http_status;  /* 400, 404, ... */
    int code;         /* Azure's 6-digit code: status * 1000 + n */
    const char *name; /* Azure's error code name, e.g. "DeviceNotFound" */
} hub_error_info;

/* The default mapping for a result; call sites refine the name where Azure does (a missing device
 * is DeviceNotFound, an offline one DeviceNotOnline). */
hub_error_info hub_error_for(iotdm_result r);

/* Azure's error-code names with their numbers, for call sites that need a specific one. */
#define HUB_ERR_ARGUMENT_INVALID  ((hub_error_info){400, 400004, "ArgumentInvalid"})
#define HUB_ERR_FORMAT            ((hub_error_info){400, 400006, "IotHubFormatError"})
#define HUB_ERR_UNAUTHORIZED      ((hub_error_info){401, 401002, "IotHubUnauthorizedAccess"})
#define HUB_ERR_QUOTA             ((hub_error_info){403, 403002, "IotHubQuotaExceeded"})
#define HUB_ERR_QUEUE_DEPTH       ((hub_error_info){403, 403004, "DeviceMaximumQueueDepthExceeded"})
#define HUB_ERR_DEVICE_NOT_FOUND  ((hub_error_info){404, 404001, "DeviceNotFound"})
#define HUB_ERR_DEVICE_NOT_ONLINE ((hub_error_info){404, 404103, "DeviceNotOnline"})
#define HUB_ERR_NOT_FOUND         ((hub_error_info){404, 404000, "NotFound"})
#define HUB_ERR_DEVICE_EXISTS     ((hub_error_info){409, 409001, "DeviceAlreadyExists"})
#define HUB_ERR_JOB_QUOTA         ((hub_error_info){403, 403001, "JobQuotaExceeded"})
#define HUB_ERR_JOB_NOT_FOUND     ((hub_error_info){404, 404002, "JobNotFound"})
#define HUB_ERR_JOB_EXISTS        ((hub_error_info){409, 409000, "JobAlreadyExists"})
#define HUB_ERR_PRECONDITION      ((hub_error_info){412, 412001, "PreconditionFailed"})
#define HUB_ERR_TOO_LARGE         ((hub_error_info){413, 413001, "MessageTooLarge"})
#define HUB_ERR_THROTTLED         ((hub_error_info){429, 429001, "ThrottlingException"})
#define HUB_ERR_SERVER            ((hub_error_info){500, 500001, "ServerError"})
#define HUB_ERR_UNAVAILABLE       ((hub_error_info){503, 503001, "ServiceUnavailable"})
#define HUB_ERR_DISK_FULL         ((hub_error_info){507, 507001, "InsufficientStorage"})
#define HUB_ERR_GATEWAY_TIMEOUT   ((hub_error_info){504, 504101, "GatewayTimeout"})

#endif
