/* The durable outbox (SQLite in the state directory): reported patches, telemetry, and the state of
 * each handler's last applied desired value. */
#ifndef IOTDM_CLIENT_OUTBOX_H
#define IOTDM_CLIENT_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iotdm/result.h"

typedef struct outbox outbox;

/* Opens (creating it and the directory if needed) STATE_DIR/outbox.db in WAL mode with
 * synchronous=FULL: every committed change survives a crash or power loss. Telemetry is bounded by
 * max_bytes (body + encoded properties) and max_age_ms. On failure err (optional) says why. */
IOTDM_NODISCARD iotdm_result outbox_open(const char *state_dir, size_t max_bytes,
                                         int64_t max_age_ms, outbox **out_ob, char *err,
                                         size_t err_cap);
void outbox_close(outbox *ob);

/* Groups several changes into one atomic commit (an ack and the applied state it records). */
IOTDM_NODISCARD iotdm_result outbox_begin(outbox *ob);
IOTDM_NODISCARD iotdm_result outbox_commit(outbox *ob);
void outbox_rollback(outbox *ob);

/* Reported patches: kept in order, never dropped. */
IOTDM_NODISCARD iotdm_result outbox_add_reported(outbox *ob, const char *json);
/* The oldest patch: *out_json is allocated (xfree it). IOTDM_E_NOT_FOUND when there is none. */
IOTDM_NODISCARD iotdm_result outbox_peek_reported(outbox *ob, int64_t *out_seq, char **out_json);
IOTDM_NODISCARD iotdm_result outbox_remove_reported(outbox *ob, int64_t seq);

/* Telemetry. Adding drops the oldest telemetry until the new message fits (counted as dropped);
 * IOTDM_E_TOO_LARGE when the message alone exceeds max_bytes. */
IOTDM_NODISCARD iotdm_result outbox_add_telemetry(outbox *ob, int64_t now_ms,
                                                  const char *encoded_bag, const void *body,
                                                  size_t len);
/* Calls fn with the first telemetry message whose seq is greater than after_seq; the pointers are
 * valid during the call only. Returns fn's result, or IOTDM_E_NOT_FOUND when there is none. */
typedef IOTDM_NODISCARD iotdm_result (*outbox_telemetry_fn)(void *ctx, int64_t seq,
                                                            const char *encoded_bag,
                                                            const void *body, size_t len);
IOTDM_NODISCARD iotdm_result outbox_next_telemetry(outbox *ob, int64_t after_seq,
                                                   outbox_telemetry_fn fn, void *ctx);
IOTDM_NODISCARD iotdm_result outbox_remove_telemetry(outbox *ob, int64_t seq);
/* Drops telemetry created before now_ms - max_age_ms; returns how many. */
size_t outbox_expire_telemetry(outbox *ob, int64_t now_ms);

typedef struct {
    size_t reported;
    size_t telemetry;
    size_t telemetry_bytes;
    size_t telemetry_dropped; /* since outbox_open */
} outbox_counts;
void outbox_get_counts(outbox *ob, outbox_counts *out);

/* The last desired value a handler applied and how it answered, kept in the same database so an
 * ack and the state it records commit together. Strings allocated. */
typedef struct {
    int64_t version;
    int ac;
    char *value; /* compact JSON of the desired value, keys sorted */
    char *ad;
} outbox_applied;
IOTDM_NODISCARD iotdm_result outbox_get_applied(outbox *ob, const char *component,
                                                const char *property, outbox_applied *out);
IOTDM_NODISCARD iotdm_result outbox_set_applied(outbox *ob, const char *component,
                                                const char *property,
                                                const outbox_applied *applied);
IOTDM_NODISCARD iotdm_result outbox_clear_applied(outbox *ob, const char *component,
                                                  const char *property);
void outbox_applied_deinit(outbox_applied *a);

#endif
