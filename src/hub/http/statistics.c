/* GET /statistics/devices and /statistics/service. */
#include <string.h>

#include "hub/http/internal.h"

void http_statistics(http_ctx *cx)
{
    bool devices = cx->nsegments == 2 && strcmp(cx->segments[1], "devices") == 0;
    bool service = cx->nsegments == 2 && strcmp(cx->segments[1], "service") == 0;
    if (cx->method != EVHTTP_REQ_GET || (!devices && !service)) {
        http_send_error(cx, HUB_ERR_NOT_FOUND, "no such resource");
        return;
    }
    if (!http_authorize(cx, devices ? HUB_RIGHT_REGISTRY_READ : HUB_RIGHT_SERVICE_CONNECT))
        return;
    hub_device_stats s;
    iotdm_result r = hub_store_device_stats(cx->h->store, &s);
    if (r < 0) {
        http_send_result_error(cx, r, "cannot count devices");
        return;
    }
    if (devices)
        http_send_json(cx, 200,
                       json_pack("{s:I, s:I, s:I}", "totalDeviceCount", (json_int_t)s.total,
                                 "enabledDeviceCount", (json_int_t)s.enabled, "disabledDeviceCount",
                                 (json_int_t)s.disabled));
    else
        http_send_json(
            cx, 200,
            json_pack("{s:I}", "connectedDeviceCount", (json_int_t)strmap_count(cx->h->conns)));
}
