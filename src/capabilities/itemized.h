/* Map-valued sections applied item by item (certificates, Wi-Fi profiles): errors next to each
 * item, one acknowledgement code for the whole section, and a reported map rebuilt whole. */
#ifndef IOTDM_CAPABILITIES_ITEMIZED_H
#define IOTDM_CAPABILITIES_ITEMIZED_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
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

/* Calls configd's op with args (taken) for the item at group/key: counted as changed, or its
 * failure recorded there (configd's invalid_argument and not_found as bad input, 400). */
void cap_items_configd(cap_env *env, cap_items *it, const char *group, const char *key,
                       const char *op, json_t *args);
/* Downloads url (checked against sha256, at most max_bytes) and hands the file to configd's op
 * with args (taken), like cap_items_configd. A file that cannot be had is bad input: the twin
 * names it, so it is the operator's to fix. */
void cap_items_install(cap_env *env, cap_items *it, const char *group, const char *key,
                       const char *op, json_t *args, const char *url, const char *sha256,
                       size_t max_bytes);

/* A map-valued section: how to read what the device holds and apply one desired entry. */
typedef struct {
    const char *state_name; /* where cap_items_report keeps what the twin shows */
    const char *held_what;  /* what list reads, for the error when it cannot */
    IOTDM_NODISCARD iotdm_result (*list)(cap_env *env, json_t **out, char *err, size_t err_cap);
    /* Applies the desired entry value (never null) at key against held (what list gave), through
     * env (on the worker, the worker's configd line). */
    void (*apply)(void *ctx, cap_env *env, cap_items *it, const char *key, json_t *value,
                  const json_t *held);
    /* What the twin shows of held (taken); NULL: all of it. */
    json_t *(*view)(json_t *held);
} cap_items_section;

/* The desired-property flow for the object desired (borrowed): lists, applies each non-null entry,
 * lists again (reported is what the device holds now, whatever was asked), then fills the ack
 * with the report. ack_text and value_text are the caller's buffers for the ack; state_lock (may
 * be NULL) is held while the saved state is read and written. */
void cap_items_apply(const cap_items_section *s, cap_env *env, void *ctx, json_t *desired,
                     iotdm_ack *ack, char *ack_text, size_t ack_cap, char **value_text,
                     pthread_mutex_t *state_lock);
/* The reported value for a read (reportAll, a restart) with the errors saved last time; NULL when
 * the device cannot be read. */
char *cap_items_read(const cap_items_section *s, cap_env *env, pthread_mutex_t *state_lock);

/* A section applied on the worker: on_desired checks the value, keeps it (durably, so a restart
 * resumes it) and answers 202; the worker applies it and acknowledges the outcome for the same
 * $version. A value that comes while one waits replaces it (the twin only shows the latest). */
typedef struct {
    const cap_items_section *section;
    cap_env *env;
    void *ctx;             /* the capability's, for section->apply */
    const char *property;  /* the dm property ("certificates") */
    char pending_name[64]; /* state file of the value not applied yet: <state_name>-pending */
    pthread_mutex_t lock;  /* pending, queued, and the section's saved state */
    json_t *pending;       /* {"version", "desired"} waiting for the worker, or NULL */
    bool queued;           /* a job is queued or running that will take pending */
    /* Acknowledgement buffers: the worker's, and on_desired's (the connection's thread). */
    char ack_text[1024];
    char *value_text;
    char *accepted_text;
} cap_items_async;

/* Sets up a, and queues the value a previous run left unapplied, if any. */
IOTDM_NODISCARD iotdm_result cap_items_async_init(cap_items_async *a,
                                                  const cap_items_section *section, cap_env *env,
                                                  void *ctx, const char *property);
/* Waits for nothing: the worker is stopped before the capabilities. */
void cap_items_async_deinit(cap_items_async *a);
/* on_desired: 400 for a value that is not an object, else 202 with the value "applying". */
void cap_items_async_desired(cap_items_async *a, const char *value_json, int64_t version,
                             iotdm_ack *ack);
/* read_state: cap_items_read with the saved state guarded. */
char *cap_items_async_read(cap_items_async *a);

/* Deep merge: objects in both are merged, anything else in src replaces what dst has. */
void cap_json_merge(json_t *dst, const json_t *src);

#endif
