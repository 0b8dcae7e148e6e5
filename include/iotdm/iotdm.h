/* libiotdm: everything a device application needs (include this one header). */
#ifndef IOTDM_IOTDM_H
#define IOTDM_IOTDM_H

#include "iotdm/client.h"
#include "iotdm/handler.h"
#include "iotdm/methods.h"
#include "iotdm/provision.h"
#include "iotdm/result.h"
#include "iotdm/telemetry.h"
#include "iotdm/twin.h"

#endif
