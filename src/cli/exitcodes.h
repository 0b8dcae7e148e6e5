/* The iotdm CLI's exit codes, and the one table that maps hub answers to them. */
#ifndef IOTDM_CLI_EXITCODES_H
#define IOTDM_CLI_EXITCODES_H

#include <stdio.h>

/* X(name, value, what it means): the documented exit codes (iotdm --help, docs/cli.md). */
#define CLI_EXIT_TABLE(X)                                                                          \
    X(CLI_EXIT_OK, 0, "success")                                                                   \
    X(CLI_EXIT_ERROR, 1, "other error")                                                            \
    X(CLI_EXIT_USAGE, 2, "bad usage: unknown command or option, bad value (or 400 from the hub)")  \
    X(CLI_EXIT_NOT_FOUND, 3, "not found: no such device, model or resource (404)")                 \
    X(CLI_EXIT_UNAUTHORIZED, 4, "no or wrong credentials, or the policy lacks the right (401)")    \
    X(CLI_EXIT_CONFLICT, 5, "conflict: already exists (409) or etag mismatch (412)")               \
    X(CLI_EXIT_OFFLINE, 6, "device not online, or timed out (404 DeviceNotOnline, 408, 504)")      \
    X(CLI_EXIT_UNREACHABLE, 7, "cannot reach the hub: DNS, connection or TLS failure")             \
    X(CLI_EXIT_THROTTLED, 8, "throttled or over a quota (403, 429)")                               \
    X(CLI_EXIT_SERVER, 9, "the hub failed (5xx)")                                                  \
    X(CLI_EXIT_DEVICE, 10, "the device answered a method with an error status (>= 400)")

enum {
#define CLI_EXIT_ENUM(name, value, text) name = value,
    CLI_EXIT_TABLE(CLI_EXIT_ENUM)
#undef CLI_EXIT_ENUM
};

/* The exit code for a hub answer: its HTTP status and Azure error-code name (may be NULL or ""). */
int cli_exit_for_http(long status, const char *azure_code);

/* Writes the exit-code table, one "  N  meaning" line each, for --help. */
void cli_exit_print_table(FILE *out);

#endif
