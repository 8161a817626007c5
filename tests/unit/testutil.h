/* testutil.h: helpers shared by the unit tests: a fake environment, temporary directories
 * and files, and diag assertions. */
#ifndef CITUS_INIT_TESTUTIL_H
#define CITUS_INIT_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>

#include "diag.h"

/* A fake environment: up to 64 NAME=VALUE entries; lookups for env_lookup_fn. */
struct fake_env {
    char *entries[64];
    size_t count;
};
void fake_env_set(struct fake_env *env, const char *name, const char *value);
void fake_env_unset(struct fake_env *env, const char *name);
void fake_env_free(struct fake_env *env);
const char *fake_env_lookup(const char *name, void *ctx);

/* mkdtemp under $TMPDIR (or /tmp); rm -rf of such a directory. */
char *make_temp_dir(void);
void remove_tree(const char *path);
/* Writes a file (mode 0644) and returns its malloc'd path dir/name. */
char *write_file(const char *dir, const char *name, const char *content, size_t len);

/* True when d holds a message of that severity exactly equal to msg; prints all on failure. */
bool diag_has(const struct diag *d, int severity, const char *msg);
/* True when any message contains the fragment. */
bool diag_contains(const struct diag *d, const char *fragment);
void diag_print(const struct diag *d);

#endif
