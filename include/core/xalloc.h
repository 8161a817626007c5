/* xalloc.h: allocation that cannot fail. citus-init is a small PID 1: when malloc fails
 * there is no sensible way on, so these abort() instead of returning NULL. */
#ifndef CITUS_INIT_XALLOC_H
#define CITUS_INIT_XALLOC_H

#include <stddef.h>

/* malloc. */
void *xmalloc(size_t size);
/* strdup; NULL stays NULL. */
char *xstrdup(const char *s);
/* asprintf returning the string. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
