/* diag.h: a list of problems found while reading or checking the configuration.
 * Validation never stops at the first problem: every check appends here and the caller
 * decides (main prints all of them and exits 78). Messages name the variable or file,
 * what was found and what was expected, and never contain a secret. */
#ifndef CITUS_INIT_DIAG_H
#define CITUS_INIT_DIAG_H

#include <stddef.h>

enum diag_severity { DIAG_WARNING, DIAG_ERROR };

struct diag_item {
    enum diag_severity severity;
    char *message; /* owned */
};

struct diag {
    struct diag_item *items;
    size_t count;
    size_t cap;
};

void diag_init(struct diag *d);
void diag_free(struct diag *d);
/* printf-style; allocation failure aborts (there is nothing sensible left to do). */
void diag_error(struct diag *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void diag_warn(struct diag *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
size_t diag_error_count(const struct diag *d);

#endif
