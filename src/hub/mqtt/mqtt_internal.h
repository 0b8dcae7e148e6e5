/* Private to src/hub/mqtt: what session.c and connect.c share. */
#ifndef IOTDM_HUB_MQTT_INTERNAL_H
#define IOTDM_HUB_MQTT_INTERNAL_H

#include "hub/mqtt/conn.h"

/* connect.c */
void hub_mqtt_on_connect(hub_mqtt_conn *c, const uint8_t *body, size_t len);
void hub_mqtt_on_subscribe(hub_mqtt_conn *c, bool subscribe, const uint8_t *body, size_t len);

/* session.c */
/* Answers a CONNECT with a refusal code and closes once the CONNACK is out. */
void hub_mqtt_refuse(hub_mqtt_conn *c, uint8_t code, const char *why);
void hub_mqtt_arm_timer(hub_mqtt_conn *c);
/* Reads again if nothing holds reading back (after CONNECT was accepted). */
void hub_mqtt_resume(hub_mqtt_conn *c);

#endif
