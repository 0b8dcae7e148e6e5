/* Map-valued sections applied item by item (certificates, Wi-Fi profiles): errors next to each
 * item, one acknowledgement code for the whole section, and a reported map rebuilt whole. */
#ifndef IOTDM_CAPABILITIES_ITEMIZED_H
#define IOTDM_CAPABILITIES_ITEMIZED_H

#include <jansson.h>
#include <stddef.h>

#include "capabilities/capabilities.h"

/* The outcome of applying a section. */
typedef struct {
    int code;         /* 200; 400 when any item's input was bad, else 500 when the device failed */
    unsigned changed; /* items installed or removed */
    unsigned failed;  /* items refused or failed */
    char first[512];  /* the first failure, "<where>: <why>", for the description */
    json_t *errors; /* shaped like the reported value: {group: {key: {errorCode, errorMessage}}} */
} cap_items;

void cap_items_init(cap_items *it);
void cap_items_deinit(cap_items *it);

/* Records a failure (code 400 or 500) at errors[group][key], or at errors[group or key] when one
 * of them is NULL. */
void cap_items_fail(cap_items *it, int code, const char *group, const char *key, const char *fmt,
                    ...) __attribute__((format(printf, 5, 6)));

/* Fills the acknowledgement's code and description (kept in buf). */
void cap_items_ack(const cap_items *it, iotdm_ack *ack, char *buf, size_t cap);

/* The value to report: what the device holds (taken) with the errors (borrowed, may be NULL)
 * merged in, plus null for every key reported last time and gone now (a reported patch merges, so
 * only a null makes a key vanish). The new value and errors are kept in state_name, so that a
 * later report (reportAll, a restart) knows what the twin shows. */
json_t *cap_items_report(cap_env *env, const char *state_name, json_t *held, const json_t *errors);
/* The errors saved by the last cap_items_report (new reference; an empty object when none). */
json_t *cap_items_saved_errors(cap_env *env, const char *state_name);

/* Deep merge: objects in both are merged, anything else in src replaces what dst has. */
void cap_json_merge(json_t *dst, const json_t *src);

#endif
