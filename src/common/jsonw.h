/* A JSON object written straight to text, for hot paths where building a jansson tree only to
 * serialise it would cost more than the rest of the work (telemetry properties). */
#ifndef IOTDM_COMMON_JSONW_H
#define IOTDM_COMMON_JSONW_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    char *data;
    size_t len, cap;
    bool heap;   /* data was allocated here (else it is the caller's initial buffer) */
    bool failed; /* out of memory or a string that is not UTF-8: the text is unusable */
    bool empty;  /* no member written yet */
} jsonw;

/* Starts "{" in buf (cap bytes, may be NULL/0); grows onto the heap when needed. */
void jsonw_begin(jsonw *w, char *buf, size_t cap);
/* Adds "name":"value" with both strings escaped; a string that is not UTF-8 fails the writer. */
void jsonw_string(jsonw *w, const char *name, size_t name_len, const char *value, size_t value_len);
/* Ends the object; false if anything failed. The text is w->data, w->len bytes (no NUL). */
bool jsonw_end(jsonw *w);
void jsonw_free(jsonw *w);

/* True if s is well-formed UTF-8 (no overlongs, surrogates or code points above U+10FFFF). */
bool utf8_valid(const char *s, size_t len);

#endif
