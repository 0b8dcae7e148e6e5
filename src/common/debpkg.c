/* Debian package names and versions: syntax checks and version ordering (Debian policy 5.6). */
#include "common/debpkg.h"

#include <string.h>

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool all_in(const char *s, size_t len, const char *allowed)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] == '\0' || (!is_digit(s[i]) && !is_alpha(s[i]) && !strchr(allowed, s[i])))
            return false;
    return true;
}

bool debpkg_name_valid(const char *name, size_t len)
{
    if (!name || len < 2 || len > DEBPKG_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool ok = is_digit(c) || (c >= 'a' && c <= 'z') || (i > 0 && strchr("+.-", c) && c);
        if (!ok)
            return false;
    }
    return true;
}

/* The parts of a version: epoch (may be empty), upstream, revision (may be empty). */
typedef struct {
    const char *epoch, *up, *rev;
    size_t epoch_len, up_len, rev_len;
} version_parts;

static void split(const char *v, size_t len, version_parts *p)
{
    const char *colon = memchr(v, ':', len);
    p->epoch = v;
    p->epoch_len = colon ? (size_t)(colon - v) : 0;
    p->up = colon ? colon + 1 : v;
    size_t rest = len - (size_t)(p->up - v);
    const char *dash = NULL;
    for (size_t i = 0; i < rest; i++)
        if (p->up[i] == '-')
            dash = p->up + i;
    p->up_len = dash ? (size_t)(dash - p->up) : rest;
    p->rev = dash ? dash + 1 : p->up + rest;
    p->rev_len = dash ? rest - p->up_len - 1 : 0;
}

bool debpkg_version_valid(const char *version, size_t len)
{
    if (!version || len == 0 || len > DEBPKG_VERSION_MAX || memchr(version, '\0', len))
        return false;
    version_parts p;
    split(version, len, &p);
    bool has_epoch = p.up != version;
    if (has_epoch && p.epoch_len == 0)
        return false;
    for (size_t i = 0; i < p.epoch_len; i++)
        if (!is_digit(p.epoch[i]))
            return false;
    if (p.up_len == 0 || !is_digit(p.up[0]) ||
        !all_in(p.up, p.up_len, has_epoch ? ".+~-:" : ".+~-"))
        return false;
    bool has_dash = p.rev != p.up + p.up_len;
    return !has_dash || (p.rev_len > 0 && all_in(p.rev, p.rev_len, ".+~"));
}

/* Weight of a character in a non-digit run: '~' before the end of the run, the end before
 * letters, letters before everything else. */
static int weight(const char *s, const char *end)
{
    if (s >= end || is_digit(*s))
        return 0;
    if (*s == '~')
        return -1;
    if (is_alpha(*s))
        return (unsigned char)*s;
    return (unsigned char)*s + 256;
}

/* Compares two digit runs numerically without converting (runs may be long). */
static int compare_numbers(const char **a, const char *ae, const char **b, const char *be)
{
    while (*a < ae && **a == '0')
        (*a)++;
    while (*b < be && **b == '0')
        (*b)++;
    const char *as = *a, *bs = *b;
    while (*a < ae && is_digit(**a))
        (*a)++;
    while (*b < be && is_digit(**b))
        (*b)++;
    size_t la = (size_t)(*a - as), lb = (size_t)(*b - bs);
    if (la != lb)
        return la < lb ? -1 : 1;
    int c = memcmp(as, bs, la);
    return c < 0 ? -1 : c > 0;
}

/* Policy 5.6.12: alternate non-digit runs (compared by weight) and digit runs (numerically). */
static int compare_part(const char *a, size_t alen, const char *b, size_t blen)
{
    const char *ae = a + alen, *be = b + blen;
    while (a < ae || b < be) {
        while ((a < ae && !is_digit(*a)) || (b < be && !is_digit(*b))) {
            int wa = weight(a, ae), wb = weight(b, be);
            if (wa != wb)
                return wa < wb ? -1 : 1;
            if (a < ae && !is_digit(*a))
                a++;
            if (b < be && !is_digit(*b))
                b++;
        }
        int c = compare_numbers(&a, ae, &b, be);
        if (c)
            return c;
    }
    return 0;
}

int debpkg_version_compare(const char *a, const char *b)
{
    version_parts pa, pb;
    split(a, strlen(a), &pa);
    split(b, strlen(b), &pb);
    const char *ea = pa.epoch, *eb = pb.epoch;
    int c = compare_numbers(&ea, pa.epoch + pa.epoch_len, &eb, pb.epoch + pb.epoch_len);
    if (c)
        return c;
    c = compare_part(pa.up, pa.up_len, pb.up, pb.up_len);
    return c ? c : compare_part(pa.rev, pa.rev_len, pb.rev, pb.rev_len);
}

bool debpkg_spec_parse(const char *spec, char *name_buf, size_t name_cap, const char **out_version)
{
    const char *eq = strchr(spec, '=');
    size_t nlen = eq ? (size_t)(eq - spec) : strlen(spec);
    *out_version = NULL;
    if (!debpkg_name_valid(spec, nlen) || nlen >= name_cap)
        return false;
    memcpy(name_buf, spec, nlen);
    name_buf[nlen] = '\0';
    if (!eq)
        return true;
    *out_version = eq + 1;
    return debpkg_version_valid(eq + 1, strlen(eq + 1));
}
