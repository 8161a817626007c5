/* diag.c: the problem list every validation step appends to (see diag.h). */
#include "diag.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void diag_init(struct diag *d)
{
    d->items = NULL;
    d->count = 0;
    d->cap = 0;
}

void diag_free(struct diag *d)
{
    for (size_t i = 0; i < d->count; i++)
        free(d->items[i].message);
    free(d->items);
    diag_init(d);
}

static void diag_add(struct diag *d, enum diag_severity severity, const char *fmt, va_list ap)
{
    if (d->count == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 8;
        struct diag_item *items = realloc(d->items, cap * sizeof(*items));
        if (!items)
            abort();
        d->items = items;
        d->cap = cap;
    }
    char *message;
    if (vasprintf(&message, fmt, ap) < 0)
        abort();
    d->items[d->count].severity = severity;
    d->items[d->count].message = message;
    d->count++;
}

void diag_error(struct diag *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_add(d, DIAG_ERROR, fmt, ap);
    va_end(ap);
}

void diag_warn(struct diag *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_add(d, DIAG_WARNING, fmt, ap);
    va_end(ap);
}

size_t diag_error_count(const struct diag *d)
{
    size_t n = 0;
    for (size_t i = 0; i < d->count; i++)
        if (d->items[i].severity == DIAG_ERROR)
            n++;
    return n;
}
