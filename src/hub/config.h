/* iotdm-hub configuration: defaults, an optional key = value file, command-line flags. */
#ifndef IOTDM_HUB_CONFIG_H
#define IOTDM_HUB_CONFIG_H

#include "hub/hub.h"

void hub_config_defaults(hub_config *cfg);
/* Applies --config FILE first, then the flags. On error writes the reason into error ("help"
 * when --help was asked for) and returns IOTDM_E_MALFORMED. */
IOTDM_NODISCARD iotdm_result hub_config_from_args(hub_config *cfg, int argc, char **argv,
                                                  char *error, size_t error_cap);

#endif
