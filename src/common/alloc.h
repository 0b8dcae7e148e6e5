/* The one allocation wrapper: tests can fail the Nth allocation, the hub can count live bytes. */
#ifndef IOTDM_COMMON_ALLOC_H
#define IOTDM_COMMON_ALLOC_H

#include <stddef.h>

void *xmalloc(size_t size); /* NULL on failure (never aborts) */
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *ptr, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
void xfree(void *ptr);
/* Zero a secret before freeing it. */
void xfree_secret(void *ptr, size_t size);

/* Test hook: the Nth allocation from now fails (0 disables). */
void alloc_fail_after(unsigned long n);

#endif
