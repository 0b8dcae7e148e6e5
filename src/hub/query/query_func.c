/* Built-in functions of the query language: type checks and string functions. */
#include <string.h>

#include "common/alloc.h"
#include "hub/query/query_int.h"

static bool type_check(qfunc f, const json_t *v)
{
    switch (f) {
    case QF_IS_DEFINED:
        return v != NULL;
    case QF_IS_NULL:
        return json_is_null(v);
    case QF_IS_BOOL:
        return json_is_boolean(v);
    case QF_IS_NUMBER:
        return json_is_number(v);
    case QF_IS_STRING:
        return json_is_string(v);
    case QF_IS_OBJECT:
        return json_is_object(v);
    case QF_IS_ARRAY:
        return json_is_array(v);
    case QF_IS_PRIMITIVE:
        return json_is_null(v) || json_is_boolean(v) || json_is_number(v) || json_is_string(v);
    default:
        return false;
    }
}

static char fold(char c, bool ignore_case)
{
    return ignore_case && c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool same_at(const char *s, const char *sub, size_t n, bool ignore_case)
{
    for (size_t i = 0; i < n; i++)
        if (fold(s[i], ignore_case) != fold(sub[i], ignore_case))
            return false;
    return true;
}

/* STARTSWITH, ENDSWITH and CONTAINS; the optional third argument asks for ASCII case folding. */
static bool match_text(qfunc f, const json_t *s, const json_t *sub, bool ignore_case)
{
    const char *a = json_string_value(s), *b = json_string_value(sub);
    size_t la = json_string_length(s), lb = json_string_length(sub);
    if (lb > la)
        return false;
    if (f == QF_STARTSWITH)
        return same_at(a, b, lb, ignore_case);
    if (f == QF_ENDSWITH)
        return same_at(a + la - lb, b, lb, ignore_case);
    for (size_t i = 0; i + lb <= la; i++)
        if (same_at(a + i, b, lb, ignore_case))
            return true;
    return false;
}

/* LOWER and UPPER change ASCII letters only, as an invariant-culture ordinal fold would. */
static json_t *change_case(const json_t *s, bool upper)
{
    size_t len = json_string_length(s);
    char *buf = xmalloc(len + 1);
    if (!buf)
        return NULL;
    const char *src = json_string_value(s);
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (upper && c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        else if (!upper && c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        buf[i] = c;
    }
    json_t *out = json_stringn_nocheck(buf, len); /* same UTF-8 sequence structure as s */
    xfree(buf);
    return out;
}

static json_t *length_of(const json_t *s)
{
    const char *p = json_string_value(s);
    size_t len = json_string_length(s), n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)p[i] & 0xC0) != 0x80; /* characters, not bytes */
    return json_integer((json_int_t)n);
}

static qval text_function(qfunc f, const qval *args, size_t nargs)
{
    qval out = {NULL, NULL};
    if (!json_is_string(args[0].v))
        return out;
    if (f == QF_LOWER || f == QF_UPPER || f == QF_LENGTH) {
        out.owned = f == QF_LENGTH ? length_of(args[0].v) : change_case(args[0].v, f == QF_UPPER);
        out.v = out.owned;
        return out;
    }
    if (!json_is_string(args[1].v) || (nargs > 2 && !json_is_boolean(args[2].v)))
        return out;
    bool ignore_case = nargs > 2 && json_is_true(args[2].v);
    out.v = match_text(f, args[0].v, args[1].v, ignore_case) ? json_true() : json_false();
    return out;
}

qval qry_eval_call(const qnode *n, const json_t *doc)
{
    qval args[3] = {{NULL, NULL}, {NULL, NULL}, {NULL, NULL}};
    size_t nargs = n->nkids < 3 ? n->nkids : 3; /* the parser checked each function's arity */
    for (size_t i = 0; i < nargs; i++)
        args[i] = qry_eval(n->kids[i], doc);
    qval out = {NULL, NULL};
    if ((qfunc)n->op <= QF_IS_PRIMITIVE)
        out.v = type_check((qfunc)n->op, args[0].v) ? json_true() : json_false();
    else
        out = text_function((qfunc)n->op, args, nargs);
    for (size_t i = 0; i < nargs; i++)
        qval_drop(&args[i]);
    return out;
}
