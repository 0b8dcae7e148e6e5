/* Fuzzes the SAS token parser and verifier, connection strings, percent and base64 decoding: the
 * credentials every device and service client sends. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/base64.h"
#include "common/connstr.h"
#include "common/sas.h"
#include "common/urlenc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    sas_token tok;
    if (sas_parse(text, size, &tok) == IOTDM_OK) {
        /* Spans must lie inside the input. */
        if (tok.sr < text || tok.sr + tok.sr_len > text + size || tok.sig < text ||
            tok.sig + tok.sig_len > text + size)
            abort();
        (void)sas_signature_valid(&tok, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
        (void)sas_resource_covers(&tok, "myhub.azure-devices.net/devices/dev1");
    }

    char out[1024];
    (void)connstr_get(text, "HostName", out, sizeof out);
    (void)connstr_get(text, "SharedAccessKey", out, sizeof out);
    long n = urlenc_decode(text, size, out, sizeof out, true);
    if (n >= (long)sizeof out)
        abort();
    unsigned char raw[1024];
    n = base64_decode(text, size, raw, sizeof raw);
    if (n > 0) {
        /* Whatever decodes must encode to something that decodes to the same bytes. */
        char enc[1400];
        unsigned char again[1024];
        if (base64_encode(raw, (size_t)n, enc, sizeof enc) < 0 ||
            base64_decode(enc, strlen(enc), again, sizeof again) != n ||
            memcmp(raw, again, (size_t)n) != 0)
            abort();
    }
    free(text);
    return 0;
}
