/* Hub answers to exit codes: the one table (HTTP status plus Azure error code → exit code). */
#include "cli/exitcodes.h"

#include <stdbool.h>
#include <string.h>

typedef struct {
    long status;      /* 0: any status */
    const char *code; /* Azure's error-code name; NULL: any */
    int exit_code;
} exit_rule;

/* First match wins: specific Azure codes before their status's default. */
static const exit_rule rules[] = {
    {0, "DeviceNotOnline", CLI_EXIT_OFFLINE},
    {0, "GatewayTimeout", CLI_EXIT_OFFLINE},
    {0, "IotHubUnauthorizedAccess", CLI_EXIT_UNAUTHORIZED},
    {0, "DeviceNotFound", CLI_EXIT_NOT_FOUND},
    {0, "DeviceAlreadyExists", CLI_EXIT_CONFLICT},
    {0, "PreconditionFailed", CLI_EXIT_CONFLICT},
    {400, NULL, CLI_EXIT_USAGE},
    {401, NULL, CLI_EXIT_UNAUTHORIZED},
    {403, NULL, CLI_EXIT_THROTTLED},
    {404, NULL, CLI_EXIT_NOT_FOUND},
    {408, NULL, CLI_EXIT_OFFLINE},
    {409, NULL, CLI_EXIT_CONFLICT},
    {412, NULL, CLI_EXIT_CONFLICT},
    {413, NULL, CLI_EXIT_USAGE},
    {429, NULL, CLI_EXIT_THROTTLED},
    {504, NULL, CLI_EXIT_OFFLINE},
};

int cli_exit_for_http(long status, const char *azure_code)
{
    if (status >= 200 && status < 300)
        return CLI_EXIT_OK;
    bool have_code = azure_code && azure_code[0];
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        const exit_rule *r = &rules[i];
        if (r->status && r->status != status)
            continue;
        if (r->code && (!have_code || strcmp(r->code, azure_code) != 0))
            continue;
        return r->exit_code;
    }
    return status >= 500 ? CLI_EXIT_SERVER : CLI_EXIT_ERROR;
}

void cli_exit_print_table(FILE *out)
{
#define CLI_EXIT_LINE(name, value, text) fprintf(out, "  %-3d %s\n", value, text);
    CLI_EXIT_TABLE(CLI_EXIT_LINE)
#undef CLI_EXIT_LINE
}
