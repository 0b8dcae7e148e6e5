/* Tokenizer of the hub query language: identifiers, numbers, quoted strings and operators. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "hub/query/query_int.h"

void qry_set_err(char *err, size_t err_cap, const char *fmt, ...)
{
    if (!err || err_cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_cap, fmt, ap);
    va_end(ap);
}

void qry_toks_free(qtoks *t)
{
    for (size_t i = 0; i < t->n; i++)
        json_decref(t->v[i].value);
    xfree(t->v);
    t->v = NULL;
    t->n = t->cap = 0;
}

static bool is_ident_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_ident_char(char c)
{
    return is_ident_start(c) || is_digit(c);
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static qtok *push_tok(qtoks *t, qtok_kind kind, size_t pos)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 32;
        qtok *v = xrealloc(t->v, cap * sizeof(*v));
        if (!v)
            return NULL;
        t->v = v;
        t->cap = cap;
    }
    qtok *tok = &t->v[t->n++];
    memset(tok, 0, sizeof(*tok));
    tok->kind = kind;
    tok->pos = pos;
    return tok;
}

/* Hex literals (0x1F) are unsigned in the source but must fit a JSON integer. */
static size_t lex_hex(const char *s, size_t len, size_t i, json_int_t *out)
{
    size_t j = i + 2;
    uint64_t v = 0;
    while (j < len && hex_value(s[j]) >= 0) {
        if (v > (uint64_t)INT64_MAX >> 4)
            return 0;
        v = v << 4 | (uint64_t)hex_value(s[j]);
        j++;
    }
    if (j == i + 2)
        return 0;
    *out = (json_int_t)v;
    return j;
}

/* Returns the end of the number starting at i, or 0 if it is not a valid number (or, with *oom
 * set, if memory ran out). */
static size_t lex_number(const char *s, size_t len, size_t i, json_t **out, bool *oom)
{
    if (s[i] == '0' && i + 1 < len && (s[i + 1] == 'x' || s[i + 1] == 'X')) {
        json_int_t v;
        size_t j = lex_hex(s, len, i, &v);
        if (j == 0 || (j < len && is_ident_char(s[j])))
            return 0;
        *out = json_integer(v);
        return *out ? j : 0;
    }
    size_t j = i;
    bool integral = true;
    while (j < len && is_digit(s[j]))
        j++;
    if (j + 1 < len && s[j] == '.' && is_digit(s[j + 1])) {
        integral = false;
        for (j++; j < len && is_digit(s[j]);)
            j++;
    }
    if (j < len && (s[j] == 'e' || s[j] == 'E')) {
        size_t k = j + 1;
        if (k < len && (s[k] == '+' || s[k] == '-'))
            k++;
        if (k >= len || !is_digit(s[k]))
            return 0;
        while (k < len && is_digit(s[k]))
            k++;
        j = k;
        integral = false;
    }
    if (j < len && (is_ident_char(s[j]) || s[j] == '.'))
        return 0;
    char *copy = xstrndup(s + i, j - i);
    if (!copy) {
        *oom = true;
        return 0;
    }
    errno = 0;
    if (integral) {
        long long v = strtoll(copy, NULL, 10);
        /* Integers beyond 64 bits still are numbers, just not exact ones. */
        *out = errno == ERANGE ? json_real(strtod(copy, NULL)) : json_integer((json_int_t)v);
    } else {
        *out = json_real(strtod(copy, NULL)); /* NULL for out-of-range (infinite) values */
    }
    xfree(copy);
    return *out ? j : 0;
}

static size_t put_utf8(char *buf, size_t n, uint32_t cp)
{
    if (cp < 0x80) {
        buf[n++] = (char)cp;
    } else if (cp < 0x800) {
        buf[n++] = (char)(0xC0 | cp >> 6);
        buf[n++] = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        buf[n++] = (char)(0xE0 | cp >> 12);
        buf[n++] = (char)(0x80 | (cp >> 6 & 0x3F));
        buf[n++] = (char)(0x80 | (cp & 0x3F));
    } else {
        buf[n++] = (char)(0xF0 | cp >> 18);
        buf[n++] = (char)(0x80 | (cp >> 12 & 0x3F));
        buf[n++] = (char)(0x80 | (cp >> 6 & 0x3F));
        buf[n++] = (char)(0x80 | (cp & 0x3F));
    }
    return n;
}

static bool read_u4(const char *s, size_t len, size_t i, uint32_t *out)
{
    uint32_t v = 0;
    if (i + 4 > len)
        return false;
    for (size_t k = i; k < i + 4; k++) {
        int h = hex_value(s[k]);
        if (h < 0)
            return false;
        v = v << 4 | (uint32_t)h;
    }
    *out = v;
    return true;
}

/* Decodes \uXXXX (and a following low surrogate) at s[i] == '\\'; returns the index after it. */
static size_t lex_u_escape(const char *s, size_t len, size_t i, uint32_t *cp)
{
    if (!read_u4(s, len, i + 2, cp))
        return 0;
    i += 6;
    if (*cp >= 0xDC00 && *cp <= 0xDFFF)
        return 0;
    if (*cp >= 0xD800 && *cp <= 0xDBFF) {
        uint32_t lo;
        if (i + 1 >= len || s[i] != '\\' || s[i + 1] != 'u' || !read_u4(s, len, i + 2, &lo) ||
            lo < 0xDC00 || lo > 0xDFFF)
            return 0;
        *cp = 0x10000 + ((*cp - 0xD800) << 10) + (lo - 0xDC00);
        i += 6;
    }
    return i;
}

static char simple_escape(char c)
{
    switch (c) {
    case '\'':
        return '\'';
    case '"':
        return '"';
    case '\\':
        return '\\';
    case '/':
        return '/';
    case 'b':
        return '\b';
    case 'f':
        return '\f';
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    default:
        return 0;
    }
}

/* Decodes the string literal opening at s[i]; returns the index after its closing quote, or 0
 * with *bad set to where it went wrong. The decoded text never exceeds the source length. */
static size_t lex_string(const char *s, size_t len, size_t i, json_t **out, size_t *bad, bool *oom)
{
    char quote = s[i];
    char *buf = xmalloc(len - i);
    size_t n = 0, j = i + 1;
    *bad = i;
    if (!buf) {
        *oom = true;
        return 0;
    }
    while (j < len && s[j] != quote) {
        if (s[j] != '\\') {
            buf[n++] = s[j++];
            continue;
        }
        *bad = j;
        if (j + 1 >= len)
            break;
        if (s[j + 1] == 'u') {
            uint32_t cp;
            size_t next = lex_u_escape(s, len, j, &cp);
            if (next == 0)
                goto fail;
            n = put_utf8(buf, n, cp);
            j = next;
        } else {
            char c = simple_escape(s[j + 1]);
            if (!c)
                goto fail;
            buf[n++] = c;
            j += 2;
        }
    }
    if (j >= len) {
        *bad = i;
        goto fail;
    }
    *out = json_stringn(buf, n); /* NULL for invalid UTF-8 */
    xfree(buf);
    *bad = i;
    return *out ? j + 1 : 0;
fail:
    xfree(buf);
    return 0;
}

static qtok_kind punct_kind(const char *s, size_t len, size_t i, size_t *width)
{
    char c = s[i], d = i + 1 < len ? s[i + 1] : '\0';
    *width = 1;
    switch (c) {
    case '.':
        return QT_DOT;
    case ',':
        return QT_COMMA;
    case '(':
        return QT_LPAREN;
    case ')':
        return QT_RPAREN;
    case '[':
        return QT_LBRACKET;
    case ']':
        return QT_RBRACKET;
    case '*':
        return QT_STAR;
    case '+':
        return QT_PLUS;
    case '-':
        return QT_MINUS;
    case '/':
        return QT_SLASH;
    case '%':
        return QT_PERCENT;
    case '=':
        return QT_EQ;
    case '!':
        *width = 2;
        return d == '=' ? QT_NE : QT_EOF;
    case '<':
        *width = d == '=' || d == '>' ? 2 : 1;
        return d == '=' ? QT_LE : d == '>' ? QT_NE : QT_LT;
    case '>':
        *width = d == '=' ? 2 : 1;
        return d == '=' ? QT_GE : QT_GT;
    default:
        return QT_EOF;
    }
}

/* Lexes the token at s[i]; returns the index after it, or 0 with a message in err (*oom set when
 * memory ran out). */
static size_t lex_one(const char *s, size_t len, size_t i, qtoks *out, char *err, size_t err_cap,
                      bool *oom)
{
    qtok *tok = push_tok(out, QT_EOF, i);
    if (!tok) {
        *oom = true;
        return 0;
    }
    size_t j = i;
    if (is_ident_start(s[i])) {
        while (j < len && is_ident_char(s[j]))
            j++;
        tok->kind = QT_IDENT;
    } else if (is_digit(s[i])) {
        j = lex_number(s, len, i, &tok->value, oom);
        if (j == 0)
            qry_set_err(err, err_cap, "invalid number at position %zu", i);
        tok->kind = QT_NUMBER;
    } else if (s[i] == '\'' || s[i] == '"') {
        size_t bad;
        j = lex_string(s, len, i, &tok->value, &bad, oom);
        if (j == 0)
            qry_set_err(err, err_cap, "invalid string literal at position %zu", bad);
        tok->kind = QT_STRING;
    } else {
        size_t w;
        tok->kind = punct_kind(s, len, i, &w);
        j = tok->kind == QT_EOF ? 0 : i + w;
        if (j == 0)
            qry_set_err(err, err_cap, "unexpected character at position %zu", i);
    }
    tok->text = s + i;
    tok->len = j > i ? j - i : 0;
    return j;
}

iotdm_result qry_lex(const char *text, size_t len, qtoks *out, char *err, size_t err_cap)
{
    size_t i = 0;
    memset(out, 0, sizeof(*out));
    while (i < len) {
        char c = text[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            i++;
            continue;
        }
        bool oom = false;
        i = lex_one(text, len, i, out, err, err_cap, &oom);
        if (i == 0) {
            qry_toks_free(out);
            if (oom)
                qry_set_err(err, err_cap, "out of memory");
            return oom ? -ENOMEM : IOTDM_E_MALFORMED;
        }
    }
    qtok *eof = push_tok(out, QT_EOF, len);
    if (!eof) {
        qry_toks_free(out);
        qry_set_err(err, err_cap, "out of memory");
        return -ENOMEM;
    }
    eof->text = text + len;
    return IOTDM_OK;
}
