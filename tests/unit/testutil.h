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

/* A valid database pod environment in a new temporary directory (returned): secrets in
 * DIR/secrets (superuser TEST_SUPER_PW with a trailing newline, replication TEST_REPL_PW,
 * REST API TEST_API_PW),
 * PG_BIN_DIR=DIR/bin with an executable `postgres`, etcd3 DCS, member citusdemo-0-1 at
 * 127.0.10.2 in group 0. */
#define TEST_SUPER_PW "s3cr3t-super"
#define TEST_REPL_PW "s3cr3t-repl"
#define TEST_API_PW "s3cr3t-api"
char *make_pod_env(struct fake_env *env);

/* True when d holds a message of that severity exactly equal to msg; prints all on failure. */
bool diag_has(const struct diag *d, int severity, const char *msg);
/* True when any message contains the fragment. */
bool diag_contains(const struct diag *d, const char *fragment);
void diag_print(const struct diag *d);
/* Fails (cmocka) when any message of d contains one of the n strings (secrets). */
void assert_no_secret_in(const struct diag *d, const char *const *secrets, size_t n);

#endif
