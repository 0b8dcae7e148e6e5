/* limpet: the TPM 2.0 tool (docs/limpet.md) — EK, registration id, slots, TPM-signed SAS
 * tokens, DPS registration with TPM attestation. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base64.h"
#include "limpet/cli.h"

typedef struct {
    const char *name;
    bool per_slot, needs_tpm;
    int min_args, max_args;
    const char *usage, *about;
    const char *single_key; /* human output prints only this value */
    cli_command_fn fn;
} command;

static const command commands[] = {
    {"version", false, false, 0, 0, "", "print limpet's version", "version", cmd_version},
    {"info", false, true, 0, 0, "", "TPM family, vendor, firmware, auth state, algorithms", NULL,
     cmd_info},
    {"ek", false, true, 0, 0, "[--out FILE]",
     "the endorsement key (0x81010001, created if absent): base64 TPM2B_PUBLIC", "ek", cmd_ek},
    {"srk", false, true, 0, 0, "[--out FILE]",
     "the storage root key (0x81000001, created if absent): base64 TPM2B_PUBLIC", "srk", cmd_srk},
    {"registration-id", false, true, 0, 0, "",
     "the DPS registration id: base32 of SHA-256 of the EK public area", "registrationId",
     cmd_registration_id},
    {"enrollment-info", false, true, 0, 0, "[--format text|csv|json]",
     "registration id, EK and SRK for a DPS individual enrollment (offline harvesting)", NULL,
     cmd_enrollment_info},
    {"slots", false, true, 0, 0, "", "list the slots in use", NULL, cmd_slots},
    {"clear", false, true, 0, 0, "--force [--lockout-auth AUTH]",
     "TPM2_Clear with the lockout authorization: destroys every key and slot", NULL, cmd_clear},
    {"dps-register", true, true, 2, 2, "ENDPOINT ID_SCOPE [--ca-file FILE]",
     "register with DPS by TPM attestation over HTTPS and store the assignment in the slot", NULL,
     cmd_dps_register},
    {"uri", true, true, 0, 0, "", "read the slot's hub URI (host/deviceId[/moduleId])", "uri",
     cmd_uri},
    {"set-uri", true, true, 1, 1, "HOST/DEVICE[/MODULE]", "store the slot's hub URI", NULL,
     cmd_set_uri},
    {"delete-uri", true, true, 0, 0, "", "remove the slot's hub URI", NULL, cmd_delete_uri},
    {"import-key", true, true, 1, 1, "BASE64_KEY",
     "store a symmetric key in the slot as a persistent TPM HMAC key", NULL, cmd_import_key},
    {"evict-key", true, true, 0, 0, "", "remove the slot's HMAC key", NULL, cmd_evict_key},
    {"import-connection-string", true, true, 1, 1, "\"HostName=…;DeviceId=…;SharedAccessKey=…\"",
     "store a device connection string's hub URI and key in the slot", NULL,
     cmd_import_connection_string},
    {"sas", true, true, 0, 0, "[--expiry SECONDS]",
     "a SAS token for the slot's device, signed inside the TPM (default 3600 s)", "token", cmd_sas},
    {"hmac", true, true, 1, 1, "FILE", "HMAC-SHA256 of a file with the slot's key (base64)", "hmac",
     cmd_hmac},
    {"destroy", true, true, 0, 0, "", "remove the slot's URI and key", NULL, cmd_destroy},
};

static void usage(FILE *f)
{
    fprintf(f, "Usage: limpet [--tcti TCTI] [--json] COMMAND [ARGS]\n"
               "       limpet [--tcti TCTI] [--json] SLOT COMMAND [ARGS]   (SLOT 0-9)\n\n"
               "TPM commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++) {
        if (i && commands[i].per_slot != commands[i - 1].per_slot)
            fprintf(f, "\nSlot commands:\n");
        fprintf(f, "  %-26s %s\n", commands[i].name, commands[i].about);
    }
    fprintf(f,
            "\nOptions:\n"
            "  --tcti TCTI   TPM access (default $TPM2TOOLS_TCTI, else " LIMPET_DEFAULT_TCTI "),\n"
            "                e.g. swtpm:host=127.0.0.1,port=2321\n"
            "  --json        machine-readable output\n"
            "  -h, --help    this text; COMMAND --help for one command\n");
}

static void command_usage(const command *cmd)
{
    printf("Usage: limpet [--tcti TCTI] [--json] %s%s %s\n\n%s.\n", cmd->per_slot ? "SLOT " : "",
           cmd->name, cmd->usage, cmd->about);
}

int cli_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("limpet: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(" (see limpet --help)\n", stderr);
    va_end(ap);
    return 2;
}

int cli_tpm_error(limpet_cli *c, const char *what, iotdm_result r)
{
    fprintf(stderr, "limpet: %s: %s\n", what, c->tpm ? limpet_tpm_error(c->tpm) : "");
    return r == IOTDM_E_NOT_FOUND ? 3 : 1;
}

json_t *cli_b64(const uint8_t *p, size_t n)
{
    char *s = malloc(BASE64_ENCODED_LEN(n) + 1);
    json_t *j = NULL;
    if (s && base64_encode(p, n, s, BASE64_ENCODED_LEN(n) + 1) >= 0)
        j = json_string(s);
    free(s);
    return j;
}

static const char **value_option(limpet_cli *c, const char *name)
{
    static const char *const names[] = {"--tcti", "--expiry",  "--format",
                                        "--out",  "--ca-file", "--lockout-auth"};
    const char **slots[] = {&c->tcti, &c->expiry,  &c->format,
                            &c->out,  &c->ca_file, &c->lockout_auth};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (!strcmp(name, names[i]))
            return slots[i];
    return NULL;
}

static int parse_args(limpet_cli *c, int argc, char **argv)
{
    c->slot = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], **v = value_option(c, a);
        if (v) {
            if (++i >= argc)
                return cli_usage_error("%s needs a value", a);
            *v = argv[i];
        } else if (!strcmp(a, "--json")) {
            c->json = true;
        } else if (!strcmp(a, "--force")) {
            c->force = true;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            c->help = true;
        } else if (!strncmp(a, "--", 2) && a[2]) {
            return cli_usage_error("unknown option %s", a);
        } else if (!c->command && c->slot < 0 && a[0] >= '0' && a[0] <= '9' && !a[1]) {
            c->slot = a[0] - '0';
        } else if (!c->command) {
            c->command = a;
        } else if (c->nargs < CLI_MAX_ARGS) {
            c->args[c->nargs++] = a;
        } else {
            return cli_usage_error("too many arguments");
        }
    }
    return 0;
}

static void print_human(const command *cmd, json_t *out)
{
    const char *key;
    json_t *v;
    if (cmd->single_key && (v = json_object_get(out, cmd->single_key)) && json_is_string(v)) {
        printf("%s\n", json_string_value(v));
        return;
    }
    json_object_foreach(out, key, v)
    {
        if (json_is_string(v)) {
            printf("%s: %s\n", key, json_string_value(v));
        } else {
            char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            printf("%s: %s\n", key, s ? s : "");
            free(s);
        }
    }
}

static int run(limpet_cli *c, const command *cmd)
{
    if (c->help) {
        command_usage(cmd);
        return 0;
    }
    if (cmd->per_slot && c->slot < 0)
        return cli_usage_error("%s needs a slot: limpet SLOT %s", cmd->name, cmd->name);
    if (!cmd->per_slot && c->slot >= 0)
        return cli_usage_error("%s is not a slot command", cmd->name);
    if (c->nargs < cmd->min_args || c->nargs > cmd->max_args)
        return cli_usage_error("usage: limpet %s%s %s", cmd->per_slot ? "SLOT " : "", cmd->name,
                               cmd->usage);
    char err[512];
    if (cmd->needs_tpm && limpet_tpm_open(c->tcti, &c->tpm, err, sizeof err) < 0) {
        fprintf(stderr, "limpet: %s\n", err);
        return 4;
    }
    json_t *out = NULL;
    int status = cmd->fn(c, &out);
    if (out && c->json) {
        json_dumpf(out, stdout, JSON_COMPACT);
        putchar('\n');
    } else if (out) {
        print_human(cmd, out);
    }
    json_decref(out);
    limpet_tpm_close(c->tpm);
    return status;
}

int main(int argc, char **argv)
{
    /* tpm2-tss logs its own warnings to stderr; limpet reports errors itself. */
    setenv("TSS2_LOG", "all+NONE", 0);
    limpet_cli c = {0};
    int status = parse_args(&c, argc, argv);
    if (status)
        return status;
    if (!c.command) {
        usage(c.help ? stdout : stderr);
        return c.help ? 0 : 2;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (!strcmp(c.command, commands[i].name))
            return run(&c, &commands[i]);
    return cli_usage_error("unknown command '%s'", c.command);
}
