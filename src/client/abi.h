/* libiotdm's versioned public structs (client.h, "ABI"): taking an application's struct of any
 * version into this library's. */
#ifndef IOTDM_CLIENT_ABI_H
#define IOTDM_CLIENT_ABI_H

#include <stddef.h>

#include "iotdm/iotdm.h"

/* The size of each versioned struct's first version: fixed for good, whatever is added after its
 * last member. */
#define CLIENT_CONFIG_V1_SIZE    (offsetof(iotdm_client_config, clock_ctx) + sizeof(void *))
#define PROVISION_CONFIG_V1_SIZE (offsetof(iotdm_provision_config, cancel_ctx) + sizeof(void *))
#define HANDLER_V1_SIZE          (offsetof(iotdm_property_handler, ctx) + sizeof(void *))

/* Copies an application's versioned struct (src, its struct_size first) into this library's
 * version (dst of dst_size bytes): members the application's version lacks become zero.
 * IOTDM_E_MALFORMED when struct_size is below v1_size (not set), IOTDM_E_UNSUPPORTED when
 * members this library does not know are set. */
IOTDM_NODISCARD iotdm_result client_struct_take(void *dst, size_t dst_size, const void *src,
                                                size_t v1_size);

#endif
