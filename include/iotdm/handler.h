/* The capability handler API: the extension point for device makers, and what every built-in
 * device-management capability uses.
 *
 * A handler owns one writable property of a PnP component ("dm"/"timeInfo", or an OEM's
 * "toaster"/"targetTemperature"). The library reads desired properties laid out the PnP way,
 * {"dm": {"__t": "c", "timeInfo": {...}}}, and hands each handler its value, one property at a
 * time, in order; a failure in one never stops the others. The handler applies the value, reads
 * back what the device really has, and answers with an acknowledgement that the library reports
 * as {"dm": {"__t": "c", "timeInfo": {"value": <actual>, "ac": 200, "av": <$version>,
 * "ad": "<description>"}}}. Commands are methods named "<component>*<command>". */
#ifndef IOTDM_HANDLER_H
#define IOTDM_HANDLER_H

#include <stdint.h>
#include <string.h>

#include "iotdm/client.h"
#include "iotdm/methods.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A PnP acknowledgement. code: 200 applied, 202 in progress (acknowledge again later with
 * iotdm_report_ack), 4xx refused (bad value), 5xx failed. value_json is the actual state on the
 * device (JSON text; NULL reports the desired value back). Strings are copied. */
typedef struct {
    int code;
    const char *description;
    const char *value_json;
} iotdm_ack;

/* struct_size: see client.h. */
typedef struct {
    size_t struct_size;    /* sizeof(iotdm_property_handler): iotdm_property_handler_init sets it */
    const char *component; /* "dm", "deviceInformation", or an OEM component */
    const char *property;  /* the writable property this handler owns */
    /* Applies a desired value (JSON text) and fills *out_ack; out_ack->value_json may point to
     * memory the handler owns until the next call. version is the desired $version. */
    void (*on_desired)(void *ctx, const char *value_json, int64_t version, iotdm_ack *out_ack);
    /* The actual state as JSON text (malloc'd; the library frees it), for reportAll and for the
     * initial report. NULL means "nothing to report". May be NULL. */
    char *(*read_state)(void *ctx);
    void *ctx;
    /* Members added in later versions go here, after all the others. */
} iotdm_property_handler;

/* Zeroes *handler and sets struct_size (compiled into the application). */
static inline void iotdm_property_handler_init(iotdm_property_handler *handler)
{
    memset(handler, 0, sizeof *handler);
    handler->struct_size = sizeof *handler;
}

/* Registers a handler (the struct is copied). Returns IOTDM_E_EXISTS when the property already has
 * one, -EINVAL for a struct_size that was not set. Handlers are called on the client's thread,
 * without its lock (see client.h). */
IOTDM_NODISCARD iotdm_result iotdm_handler_add(iotdm_client *client,
                                               const iotdm_property_handler *handler);

/* Registers the method "<component>*<command>". */
IOTDM_NODISCARD iotdm_result iotdm_command_register(iotdm_client *client, const char *component,
                                                    const char *command, iotdm_method_fn fn,
                                                    void *ctx);

/* Reports an acknowledgement later (after a 202, or when the state changed on its own), from any
 * thread. version: the desired $version it answers (-1: the last one applied to this property).
 * Called while the property's on_desired is still running (a worker that was quick), it is
 * reported right after the acknowledgement on_desired gives, never before it. */
IOTDM_NODISCARD iotdm_result iotdm_report_ack(iotdm_client *client, const char *component,
                                              const char *property, int64_t version,
                                              const iotdm_ack *ack);

/* Reports a read-only property of a component: {"<component>": {"__t": "c", "<property>": value}}
 * through the durable outbox. value_json "null" deletes it. */
IOTDM_NODISCARD iotdm_result iotdm_report_property(iotdm_client *client, const char *component,
                                                   const char *property, const char *value_json);

/* Re-reports every handler's read_state (the dm*reportAll command). */
IOTDM_NODISCARD iotdm_result iotdm_report_all(iotdm_client *client);

/* The host application's answer to "may the device reboot now?" (e.g. not while toasting).
 * Without a callback the answer is yes. */
typedef bool (*iotdm_reboot_veto_fn)(void *ctx);
void iotdm_client_set_reboot_veto(iotdm_client *client, iotdm_reboot_veto_fn fn, void *ctx);
/* Asks the host application (the reboot capability calls this). */
bool iotdm_client_reboot_allowed_by_app(iotdm_client *client);

#ifdef __cplusplus
}
#endif

#endif
