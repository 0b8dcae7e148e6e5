/* DPS over MQTT, the device side's pure parts: names, topics, the register body and reading
 * DPS's answers (azure-protocols.md §3.2-3.6). Nothing here touches the network, so all of it is
 * unit-tested; provision.c drives the MQTT session with it. */
#ifndef IOTDM_CLIENT_DPS_H
#define IOTDM_CLIENT_DPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iotdm/provision.h"

#define DPS_API_VERSION     "2019-03-31"
#define DPS_CLIENT_VERSION  "iotdm%2F0.1" /* "iotdm/0.1", percent-encoded (§3.2) */
#define DPS_BODY_MAX        (64 * 1024)   /* an answer larger than this is not DPS's */
#define DPS_OPERATION_MAX   256
#define DPS_RETRY_DEFAULT_S 2  /* when DPS gives no retry-after (Node's default, §3.4) */
#define DPS_RETRY_MAX_S     60 /* a longer retry-after is honoured only up to this */
#define DPS_REG_ID_MAX      128

/* §3.1: 1-128 of A-Z a-z 0-9 - . _ : (DPS compares case-insensitively). */
bool dps_valid_registration_id(const char *id);

/* "{scope}/registrations/{regId}/api-version=2019-03-31&ClientVersion=iotdm%2F0.1": no '?', the
 * query joined by '/' (§3.2). Returns the length, 0 when it does not fit. */
size_t dps_format_username(char *buf, size_t cap, const char *id_scope, const char *reg_id);

/* "$dps/registrations/PUT/iotdps-register/?$rid={rid}" and
 * "$dps/registrations/GET/iotdps-get-operationstatus/?$rid={rid}&operationId={op}" (§3.4).
 * Return the length, 0 when it does not fit. */
size_t dps_format_register_topic(char *buf, size_t cap, unsigned rid);
size_t dps_format_status_topic(char *buf, size_t cap, unsigned rid, const char *operation_id);

/* The DPS SAS password (§3.3): sr = urlenc("{scope}/registrations/{regId}"), skn=registration,
 * signed with key_b64 (the individual key or the derived one). */
iotdm_result dps_build_password(const char *id_scope, const char *reg_id, const char *key_b64,
                                int64_t expiry_s, char *out, size_t cap);

/* {"registrationId": reg_id[, "payload": <payload_json>]} as malloc'd text. NULL when
 * payload_json is not JSON (or out of memory). */
char *dps_register_body(const char *reg_id, const char *payload_json);

typedef enum {
    DPS_REPLY_POLL,     /* in progress: ask for operation_id's status after retry_after_s */
    DPS_REPLY_RETRY,    /* busy (429, 5xx): send the same request again after retry_after_s */
    DPS_REPLY_ASSIGNED, /* out holds the assignment */
    DPS_REPLY_FAILED,   /* out->error says why; error is the result */
} dps_reply_kind;

typedef struct {
    dps_reply_kind kind;
    char operation_id[DPS_OPERATION_MAX];
    int retry_after_s;  /* what to wait, already defaulted and capped */
    iotdm_result error; /* FAILED: the result; RETRY: the result if the retries run out */
} dps_reply;

/* Reads one answer: status from the topic (§3.4: $dps/registrations/res/{status}/?…),
 * retry_after from it (-1 when absent), body as sent. Fills out's assignment (ASSIGNED) or
 * out->error_code/error (FAILED, and RETRY: the reason to give if retries run out). */
void dps_read_reply(int status, int retry_after, const char *body, size_t len, dps_reply *reply,
                    iotdm_provision_result *out);

#endif
