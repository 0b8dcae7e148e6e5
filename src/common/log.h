/* Daemon logging: one line per event, "LEVEL component: message key=value ...", to stderr. */
#ifndef IOTDM_COMMON_LOG_H
#define IOTDM_COMMON_LOG_H

#include <stdbool.h>

typedef enum { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG } log_level;

/* Process-wide threshold for daemons (libiotdm never uses this; it has a host callback). */
void log_set_level(log_level level);
/* Parses "error", "warn", "info", "debug"; returns false for anything else. */
bool log_level_parse(const char *text, log_level *out_level);
bool log_enabled(log_level level);
void log_write(log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The level is checked before the arguments are formatted. */
#define LOG_AT(lvl, comp, ...)                                                                     \
    do {                                                                                           \
        if (log_enabled(lvl))                                                                      \
            log_write(lvl, comp, __VA_ARGS__);                                                     \
    } while (0)
#define log_error(comp, ...) LOG_AT(LOG_LVL_ERROR, comp, __VA_ARGS__)
#define log_warn(comp, ...)  LOG_AT(LOG_LVL_WARN, comp, __VA_ARGS__)
#define log_info(comp, ...)  LOG_AT(LOG_LVL_INFO, comp, __VA_ARGS__)
#define log_debug(comp, ...) LOG_AT(LOG_LVL_DEBUG, comp, __VA_ARGS__)

#endif
