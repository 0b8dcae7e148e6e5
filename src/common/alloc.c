/* Allocation wrapper with failure injection for tests. */
#include "common/alloc.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

static unsigned long fail_countdown;

static int should_fail(void)
{
    if (fail_countdown == 0)
        return 0;
    return --fail_countdown == 0;
}

void alloc_fail_after(unsigned long n)
{
    fail_countdown = n;
}

void *xmalloc(size_t size)
{
    return should_fail() ? NULL : malloc(size ? size : 1);
}

void *xcalloc(size_t count, size_t size)
{
    return should_fail() ? NULL : calloc(count ? count : 1, size ? size : 1);
}

void *xrealloc(void *ptr, size_t size)
{
    return should_fail() ? NULL : realloc(ptr, size ? size : 1);
}

char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

void xfree(void *ptr)
{
    free(ptr);
}

void xfree_secret(void *ptr, size_t size)
{
    if (ptr) {
        OPENSSL_cleanse(ptr, size);
        free(ptr);
    }
}
