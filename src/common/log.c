/* Daemon logging to stderr; journald adds the timestamp, so we add one only on a terminal. */
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static log_level threshold = LOG_LVL_INFO;
static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

void log_set_level(log_level level)
{
    threshold = level;
}

bool log_level_parse(const char *text, log_level *out_level)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++) {
        if (strcmp(text, names[i]) == 0) {
            *out_level = (log_level)i;
            return true;
        }
    }
    return false;
}

bool log_enabled(log_level level)
{
    return level <= threshold;
}

void log_write(log_level level, const char *component, const char *fmt, ...)
{
    char line[2048];
    size_t n = 0;
    if (isatty(STDERR_FILENO)) {
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        n = strftime(line, sizeof line, "%H:%M:%S ", &tm);
    }
    int w = snprintf(line + n, sizeof line - n, "%s %s: ", level_names[level], component);
    if (w > 0)
        n += (size_t)w < sizeof line - n ? (size_t)w : sizeof line - n - 1;
    va_list ap;
    va_start(ap, fmt);
    w = vsnprintf(line + n, sizeof line - n, fmt, ap);
    va_end(ap);
    if (w > 0)
        n += (size_t)w < sizeof line - n ? (size_t)w : sizeof line - n - 1;
    if (n < sizeof line - 1)
        line[n++] = '\n';
    else
        line[sizeof line - 2] = '\n', n = sizeof line - 1;
    (void)!write(STDERR_FILENO, line, n);
}
