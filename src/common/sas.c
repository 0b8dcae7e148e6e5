/* SAS tokens: HMAC-SHA256 over "<sr as sent>\n<se>", compared in constant time. */
#include "common/sas.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/base64.h"
#include "common/urlenc.h"

static const char prefix[] = "SharedAccessSignature";

static iotdm_result hmac_b64(const char *key_b64, const char *msg, size_t msg_len,
                             char out_sig[SAS_SIG_LEN + 1])
{
    unsigned char key[128];
    long key_len = base64_decode(key_b64, strlen(key_b64), key, sizeof key);
    if (key_len <= 0)
        return IOTDM_E_MALFORMED;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    unsigned char *ok =
        HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)msg, msg_len, mac, &mac_len);
    OPENSSL_cleanse(key, sizeof key);
    if (!ok)
        return IOTDM_E_INTERNAL;
    return base64_encode(mac, mac_len, out_sig, SAS_SIG_LEN + 1) < 0 ? IOTDM_E_INTERNAL : IOTDM_OK;
}

iotdm_result sas_sign(const char *key_b64, const char *msg, size_t msg_len,
                      char out_sig[SAS_SIG_LEN + 1])
{
    return hmac_b64(key_b64, msg, msg_len, out_sig);
}

iotdm_result sas_derive_device_key(const char *group_key_b64, const char *registration_id,
                                   char out_key[SAS_SIG_LEN + 1])
{
    return hmac_b64(group_key_b64, registration_id, strlen(registration_id), out_key);
}

iotdm_result sas_build_token(const char *resource, const char *key_b64, const char *policy,
                             int64_t expiry, char *out, size_t out_cap)
{
    char sr[512], to_sign[600], sig[SAS_SIG_LEN + 1], sig_enc[3 * SAS_SIG_LEN + 1];
    if (urlenc_encode(resource, strlen(resource), sr, sizeof sr) < 0)
        return IOTDM_E_TOO_LARGE;
    int n = snprintf(to_sign, sizeof to_sign, "%s\n%lld", sr, (long long)expiry);
    if (n < 0 || (size_t)n >= sizeof to_sign)
        return IOTDM_E_TOO_LARGE;
    iotdm_result r = sas_sign(key_b64, to_sign, (size_t)n, sig);
    if (r < 0)
        return r;
    if (urlenc_encode(sig, strlen(sig), sig_enc, sizeof sig_enc) < 0)
        return IOTDM_E_INTERNAL;
    if (policy)
        n = snprintf(out, out_cap, "%s sr=%s&sig=%s&se=%lld&skn=%s", prefix, sr, sig_enc,
                     (long long)expiry, policy);
    else
        n = snprintf(out, out_cap, "%s sr=%s&sig=%s&se=%lld", prefix, sr, sig_enc,
                     (long long)expiry);
    return n < 0 || (size_t)n >= out_cap ? IOTDM_E_TOO_LARGE : IOTDM_OK;
}

static bool parse_expiry(const char *s, size_t len, int64_t *out)
{
    if (len == 0 || len > 18)
        return false;
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

iotdm_result sas_parse(const char *token, size_t len, sas_token *out)
{
    memset(out, 0, sizeof *out);
    size_t plen = sizeof prefix - 1;
    if (len <= plen || memcmp(token, prefix, plen) != 0 ||
        (token[plen] != ' ' && token[plen] != '\t'))
        return IOTDM_E_MALFORMED;
    /* A NUL, raw or percent-encoded, would let a decoded field end early ("skn=service%00x"
     * naming the policy "service"): no real token carries one. */
    if (memchr(token, '\0', len))
        return IOTDM_E_MALFORMED;
    for (size_t i = 0; i + 2 < len; i++)
        if (token[i] == '%' && token[i + 1] == '0' && token[i + 2] == '0')
            return IOTDM_E_MALFORMED;
    size_t pos = plen;
    while (pos < len && (token[pos] == ' ' || token[pos] == '\t'))
        pos++;
    bool have_se = false;
    while (pos < len) {
        const char *field = token + pos;
        const char *amp = memchr(field, '&', len - pos);
        size_t flen = amp ? (size_t)(amp - field) : len - pos;
        pos += flen + (amp ? 1 : 0);
        const char *eq = memchr(field, '=', flen);
        if (!eq)
            continue;
        size_t klen = (size_t)(eq - field);
        const char *v = eq + 1;
        size_t vlen = flen - klen - 1;
        if (klen == 2 && memcmp(field, "sr", 2) == 0) {
            out->sr = v, out->sr_len = vlen;
        } else if (klen == 3 && memcmp(field, "sig", 3) == 0) {
            out->sig = v, out->sig_len = vlen;
        } else if (klen == 3 && memcmp(field, "skn", 3) == 0) {
            out->skn = v, out->skn_len = vlen;
        } else if (klen == 2 && memcmp(field, "se", 2) == 0) {
            if (!parse_expiry(v, vlen, &out->expiry))
                return IOTDM_E_MALFORMED;
            have_se = true;
        }
    }
    if (!out->sr || !out->sig || !have_se || out->sr_len == 0 || out->sig_len == 0)
        return IOTDM_E_MALFORMED;
    return IOTDM_OK;
}

bool sas_signature_valid(const sas_token *token, const char *key_b64)
{
    char to_sign[SAS_TOKEN_MAX + 32];
    if (token->sr_len > SAS_TOKEN_MAX)
        return false;
    int n = snprintf(to_sign, sizeof to_sign, "%.*s\n%lld", (int)token->sr_len, token->sr,
                     (long long)token->expiry);
    if (n < 0 || (size_t)n >= sizeof to_sign)
        return false;
    char expected[SAS_SIG_LEN + 1], given[SAS_SIG_LEN + 8];
    if (sas_sign(key_b64, to_sign, (size_t)n, expected) < 0)
        return false;
    long glen = urlenc_decode(token->sig, token->sig_len, given, sizeof given, false);
    if (glen != SAS_SIG_LEN)
        return false;
    return CRYPTO_memcmp(expected, given, SAS_SIG_LEN) == 0;
}

bool sas_resource_covers(const sas_token *token, const char *resource)
{
    char sr[SAS_TOKEN_MAX];
    long n = urlenc_decode(token->sr, token->sr_len, sr, sizeof sr, false);
    if (n <= 0)
        return false;
    size_t len = (size_t)n;
    while (len > 0 && sr[len - 1] == '/')
        len--;
    size_t rlen = strlen(resource);
    if (len > rlen)
        return false;
    /* The host (first segment) is case-insensitive; the rest (device ids) is not. */
    const char *slash = memchr(sr, '/', len);
    size_t host_len = slash ? (size_t)(slash - sr) : len;
    if (strncasecmp(sr, resource, host_len) != 0)
        return false;
    if (memcmp(sr + host_len, resource + host_len, len - host_len) != 0)
        return false;
    return len == rlen || resource[len] == '/';
}
