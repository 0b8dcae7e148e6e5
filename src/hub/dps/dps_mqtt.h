/* DPS over the hub's MQTT listener (docs/protocol.md §7.2-7.6): the session code hands over
 * CONNECTs with a DPS user name and every packet of those connections' publishes. */
#ifndef IOTDM_HUB_DPS_MQTT_H
#define IOTDM_HUB_DPS_MQTT_H

#include <stdint.h>

#include "proto/azure_topics.h"
#include "proto/mqtt.h"

typedef struct hub_mqtt_conn hub_mqtt_conn;
typedef struct hub_dps_session hub_dps_session;

/* Checks a DPS CONNECT (client id = registration id, ID scope) and attaches the session state to
 * c->dps. Credentials are checked at register time, so that a wrong key gets Azure's DPS error
 * body rather than a bare CONNACK code. Returns a CONNACK code; *out_why explains a refusal. */
uint8_t hub_dps_mqtt_connect(hub_mqtt_conn *c, const mqtt_connect *m, const az_username *u,
                             const char **out_why);
/* A PUBLISH on a DPS connection: register or operation-status query. */
void hub_dps_mqtt_publish(hub_mqtt_conn *c, const mqtt_publish *p);
void hub_dps_session_free(hub_dps_session *s);

#endif
