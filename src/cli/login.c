/* Login: where the service connection string comes from, and the SAS token it signs. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "common/base64.h"
#include "common/connstr.h"
#include "common/sas.h"
#include "common/urlenc.h"

#define TOKEN_LIFETIME_S 3600
#define CONNSTR_MAX      2048

static void trim(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    size_t lead = strspn(s, " \t");
    memmove(s, s + lead, n - lead + 1);
}

static void default_login_file(char *out, size_t cap)
{
    const char *xdg = getenv("XDG_CONFIG_HOME");
    const char *home = getenv("HOME");
    if (xdg && xdg[0])
        snprintf(out, cap, "%s/iotdm/connection", xdg);
    else
        snprintf(out, cap, "%s/.config/iotdm/connection", home ? home : "");
}

/* The first non-empty line of the file; false (and *missing when it does not exist) otherwise. */
static bool read_login_file(const char *path, char *out, size_t cap, bool *missing)
{
    FILE *f = fopen(path, "r");
    *missing = !f;
    if (!f)
        return false;
    bool ok = false;
    while (fgets(out, (int)cap, f)) {
        trim(out);
        if (out[0] && out[0] != '#') {
            ok = true;
            break;
        }
    }
    fclose(f);
    return ok;
}

/* Finds the connection string; *source names where it came from, for messages. */
static int find_connstr(const cli_ctx *ctx, char *cs, size_t cap, const char **source)
{
    static char path[1024];
    bool missing = false;
    if (ctx->login) {
        *source = "--login";
        snprintf(cs, cap, "%s", ctx->login);
        trim(cs);
        return CLI_EXIT_OK;
    }
    if (ctx->login_file) {
        *source = ctx->login_file;
        if (read_login_file(ctx->login_file, cs, cap, &missing))
            return CLI_EXIT_OK;
        cli_error("--login-file %s: %s", ctx->login_file,
                  missing ? "cannot open it" : "no connection string in it");
        return CLI_EXIT_UNAUTHORIZED;
    }
    const char *env = getenv("IOTDM_CONNECTION_STRING");
    if (env && env[0]) {
        *source = "IOTDM_CONNECTION_STRING";
        snprintf(cs, cap, "%s", env);
        trim(cs);
        return CLI_EXIT_OK;
    }
    default_login_file(path, sizeof path);
    *source = path;
    if (read_login_file(path, cs, cap, &missing))
        return CLI_EXIT_OK;
    cli_error("not logged in: give a shared access policy connection string with --login CS, "
              "--login-file FILE, IOTDM_CONNECTION_STRING or in %s",
              path);
    return CLI_EXIT_UNAUTHORIZED;
}

static int parse_connstr(cli_ctx *ctx, const char *cs, const char *source)
{
    bool host = connstr_get(cs, "HostName", ctx->host, sizeof ctx->host) && ctx->host[0];
    bool policy = connstr_get(cs, "SharedAccessKeyName", ctx->policy, sizeof ctx->policy);
    bool key = connstr_get(cs, "SharedAccessKey", ctx->key, sizeof ctx->key);
    char device[256];
    if (host && !policy && connstr_get(cs, "DeviceId", device, sizeof device)) {
        cli_error("%s: this is a device connection string; iotdm needs a shared access policy's "
                  "(HostName=…;SharedAccessKeyName=…;SharedAccessKey=…)",
                  source);
        return CLI_EXIT_USAGE;
    }
    unsigned char raw[128];
    long raw_len = base64_decode(ctx->key, strlen(ctx->key), raw, sizeof raw);
    explicit_bzero(raw, sizeof raw);
    if (!host || !policy || !key || !ctx->policy[0] || raw_len <= 0) {
        cli_error("%s: not a valid connection string: expected "
                  "HostName=…;SharedAccessKeyName=…;SharedAccessKey=<base64>",
                  source);
        return CLI_EXIT_USAGE;
    }
    ctx->logged_in = true;
    return CLI_EXIT_OK;
}

int cli_login(cli_ctx *ctx)
{
    if (ctx->logged_in)
        return CLI_EXIT_OK;
    char cs[CONNSTR_MAX];
    const char *source = "";
    int rc = find_connstr(ctx, cs, sizeof cs, &source);
    if (rc == CLI_EXIT_OK)
        rc = parse_connstr(ctx, cs, source);
    explicit_bzero(cs, sizeof cs); /* it holds the policy key */
    return rc;
}

int cli_service_token(const cli_ctx *ctx, char *out, size_t out_cap)
{
    /* Azure's service SDKs sign the plain host name (docs/protocol.md §8.2): sr is neither
     * encoded nor followed by a path. */
    long long expiry = (long long)time(NULL) + TOKEN_LIFETIME_S;
    char to_sign[320], sig[SAS_SIG_LEN + 1], sig_enc[3 * SAS_SIG_LEN + 1];
    int n = snprintf(to_sign, sizeof to_sign, "%s\n%lld", ctx->host, expiry);
    if (n < 0 || (size_t)n >= sizeof to_sign || sas_sign(ctx->key, to_sign, (size_t)n, sig) < 0 ||
        urlenc_encode(sig, strlen(sig), sig_enc, sizeof sig_enc) < 0)
        return CLI_EXIT_ERROR;
    n = snprintf(out, out_cap, "SharedAccessSignature sr=%s&sig=%s&se=%lld&skn=%s", ctx->host,
                 sig_enc, expiry, ctx->policy);
    return n < 0 || (size_t)n >= out_cap ? CLI_EXIT_ERROR : CLI_EXIT_OK;
}
