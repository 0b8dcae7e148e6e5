/* DPS over MQTT, the device side's pure parts that are libiotdm's own: the SAS password, the
 * register body, and DPS's answers read into an iotdm_provision_result (docs/protocol.md
 * §7.2-7.8). The wire formats (user name, topics, what an answer means) are in proto/dps.h and
 * proto/azure_topics.h. Nothing here touches the network, so all of it is unit-tested;
 * provision.c drives the MQTT session with it. */
#ifndef IOTDM_CLIENT_DPS_H
#define IOTDM_CLIENT_DPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iotdm/provision.h"
#include "proto/dps.h"

#define DPS_CLIENT_VERSION  "iotdm%2F0.1" /* "iotdm/0.1", percent-encoded (§7.2) */
#define DPS_BODY_MAX        (64 * 1024)   /* an answer larger than this is not DPS's */
#define DPS_OPERATION_MAX   (AZ_DPS_OPERATION_ID_MAX + 1) /* an operation id and its NUL */
#define DPS_RETRY_DEFAULT_S 2  /* when DPS gives no retry-after (Node's default, §7.4) */
#define DPS_RETRY_MAX_S     60 /* a longer retry-after is honoured only up to this */

/* The DPS SAS password (§7.3): sr = urlenc("{scope}/registrations/{regId}"), skn=registration,
 * signed with key_b64 (the individual key or the derived one). */
IOTDM_NODISCARD iotdm_result dps_build_password(const char *id_scope, const char *reg_id,
                                                const char *key_b64, int64_t expiry_s, char *out,
                                                size_t cap);

/* {"registrationId": reg_id[, "payload": <payload_json>]} as malloc'd text. NULL when
 * payload_json is not JSON (or out of memory). */
char *dps_register_body(const char *reg_id, const char *payload_json);

/* kind: AZ_DPS_POLL (ask for operation_id's status after retry_after_s), AZ_DPS_RETRY (busy: send
 * the same request again after retry_after_s), AZ_DPS_ASSIGNED (out holds the assignment),
 * AZ_DPS_FAILED (out->error says why; error is the result). */
typedef struct {
    az_dps_reply_kind kind;
    char operation_id[DPS_OPERATION_MAX];
    int retry_after_s;  /* what to wait, already defaulted and capped */
    iotdm_result error; /* FAILED: the result; RETRY: the result if the retries run out */
} dps_reply;

/* Reads one answer: status from the topic (§7.4: $dps/registrations/res/{status}/?…),
 * retry_after from it (-1 when absent), body as sent (parsed here, up to DPS_BODY_MAX, then read
 * by az_dps_read_reply). Fills out->status for an operation status, out's assignment (ASSIGNED;
 * out->payload_json is malloc'd) or out->error_code/error (FAILED, and RETRY: the reason to give
 * if retries run out). */
void dps_read_reply(int status, int retry_after, const char *body, size_t len, dps_reply *reply,
                    iotdm_provision_result *out);

#endif
