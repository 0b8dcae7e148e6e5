/* Credentials for CONNECT: the user name (docs/protocol.md §2.2-2.3) and the SAS password (§3),
 * signed here with the device key or by a pluggable signer (a TPM slot, an HSM). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "client/internal.h"
#include "common/sas.h"
#include "common/timeutil.h"
#include "common/urlenc.h"

size_t client_format_username(char *buf, size_t cap, const char *host, const char *device_id,
                              const char *model_id)
{
    char model_enc[3 * 256 + 1];
    const char *model = NULL;
    if (model_id && *model_id) {
        if (urlenc_encode(model_id, strlen(model_id), model_enc, sizeof model_enc) < 0)
            return 0;
        model = model_enc;
    }
    return az_format_username(buf, cap, host, device_id, NULL, CLIENT_API_VERSION, CLIENT_TYPE_ENC,
                              model);
}

long client_string_to_sign(const char *host, const char *device_id, int64_t expiry_s, char *out,
                           size_t cap)
{
    char resource[512];
    int n = snprintf(resource, sizeof resource, "%s/devices/%s", host, device_id);
    if (n < 0 || (size_t)n >= sizeof resource)
        return IOTDM_E_TOO_LARGE;
    long enc = urlenc_encode(resource, (size_t)n, out, cap);
    if (enc < 0)
        return enc;
    int m = snprintf(out + enc, cap - (size_t)enc, "\n%lld", (long long)expiry_s);
    if (m < 0 || (size_t)m >= cap - (size_t)enc)
        return IOTDM_E_TOO_LARGE;
    return enc + m;
}

/* The signer path: the key never enters this process, so the token is assembled around the
 * signature it returns. */
static iotdm_result build_with_signer(iotdm_client *c, int64_t expiry_s, char *out, size_t cap)
{
    char to_sign[1024], sig[128], sig_enc[3 * sizeof sig];
    long n = client_string_to_sign(c->host, c->device_id, expiry_s, to_sign, sizeof to_sign);
    if (n < 0)
        return (iotdm_result)n;
    sig[0] = '\0';
    iotdm_result r = c->signer(c->signer_ctx, to_sign, (size_t)n, sig, sizeof sig);
    if (r < 0)
        return r;
    if (!memchr(sig, '\0', sizeof sig) || !sig[0])
        return IOTDM_E_MALFORMED;
    if (urlenc_encode(sig, strlen(sig), sig_enc, sizeof sig_enc) < 0)
        return IOTDM_E_TOO_LARGE;
    const char *nl = memchr(to_sign, '\n', (size_t)n);
    int m = snprintf(out, cap, "SharedAccessSignature sr=%.*s&sig=%s&se=%lld", (int)(nl - to_sign),
                     to_sign, sig_enc, (long long)expiry_s);
    memset(sig, 0, sizeof sig);
    return m < 0 || (size_t)m >= cap ? IOTDM_E_TOO_LARGE : IOTDM_OK;
}

iotdm_result client_build_password(iotdm_client *c, int64_t expiry_s, char *out, size_t cap)
{
    if (c->signer)
        return build_with_signer(c, expiry_s, out, cap);
    char resource[512];
    int n = snprintf(resource, sizeof resource, "%s/devices/%s", c->host, c->device_id);
    if (n < 0 || (size_t)n >= sizeof resource)
        return IOTDM_E_TOO_LARGE;
    return sas_build_token(resource, c->device_key, NULL, expiry_s, out, cap);
}

IOTDM_API iotdm_result iotdm_client_sas_token(iotdm_client *c, unsigned ttl_s, char *out,
                                              size_t out_cap)
{
    if (!c || !ttl_s || !out || !out_cap)
        return -EINVAL;
    out[0] = '\0';
    if (c->cert_file)
        return IOTDM_E_UNSUPPORTED;
    /* The real clock, not an injected one: the hub checks se against its own time. */
    int64_t expiry = time_now_ms() / 1000 + ttl_s;
    /* The signer may be a TPM session the connection uses too: signing is a callback, run one at a
     * time with the others (from inside one, this thread already holds dispatch). */
    bool nested = client_dispatching(c);
    iotdm_result r = nested ? IOTDM_OK : client_dispatch_begin(c);
    if (r == IOTDM_OK)
        r = client_build_password(c, expiry, out, out_cap);
    if (!nested && r != -EDEADLK)
        client_dispatch_end(c);
    if (r < 0)
        memset(out, 0, out_cap);
    return r;
}
