/* extensions.h: create the configured extensions in the Citus database with libpq.
 *
 * One non-blocking runner serves both modes. It is a state machine driven by a libev loop
 * (PQconnectStartParams/PQconnectPoll and PQsendQuery/PQconsumeInput on ev_io), so PID 1's
 * loop keeps forwarding signals and reaping children while CREATE EXTENSION postgis takes
 * its second. The one-shot Job mode simply runs the same machine on a private loop.
 *
 * Per extension: CREATE SCHEMA IF NOT EXISTS <schema> (when given), then
 * CREATE EXTENSION IF NOT EXISTS <name> [SCHEMA <schema>] CASCADE, identifiers quoted with
 * PQescapeIdentifier. Outcome (created / already-present / failed), installed version and
 * duration are logged per extension. An extension that is not available is reported with
 * the closest available names; the others are still created. Transient failures
 * (connection refused, recovery, lock timeout, database not yet created) retry the whole
 * run up to EXTENSIONS_MAX_ATTEMPTS. */
#ifndef CITUS_INIT_EXTENSIONS_H
#define CITUS_INIT_EXTENSIONS_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

struct ev_loop;
struct ext_run;

/* `citus-init extensions --wait`: connect to COORDINATOR_HOST:PG_PORT with the superuser
 * password (and SSL settings), wait up to max_attempts x retry_delay, create, print one
 * summary line per extension on stdout. Returns the process exit status: 0 when every
 * extension exists, 1 otherwise (with a message saying why). */
int extensions_oneshot(const struct config *cfg);

enum ext_target {
    EXT_TARGET_LOCAL_SOCKET, /* pod: /var/run/postgresql, peer authentication */
    EXT_TARGET_COORDINATOR,  /* Job: TCP to COORDINATOR_HOST with password / SSL */
};

enum ext_run_result {
    EXT_RUN_ALL_PRESENT,     /* every listed extension exists */
    EXT_RUN_SOME_FAILED,     /* permanent failures (e.g. unknown extension); others done */
    EXT_RUN_GAVE_UP,         /* transient failures until max attempts */
    EXT_RUN_CANCELLED,
};

/* Called once when the run ends (not after extensions_run_cancel). */
typedef void (*ext_run_done_fn)(enum ext_run_result result, void *ctx);

struct ext_run_options {
    enum ext_target target;
    int max_attempts;        /* >= 1 */
    double retry_delay;      /* seconds between attempts (upper bound of the backoff) */
    double first_retry;      /* first delay; doubles up to retry_delay (0: retry_delay) */
    bool print_summary;      /* one line per extension on stdout when done (Job mode) */
};

/* Start a run for `list` (copied). cfg must outlive the run. Never returns NULL. */
struct ext_run *extensions_run_start(struct ev_loop *loop, const struct config *cfg,
                                     const struct extension_list *list,
                                     const struct ext_run_options *opts, ext_run_done_fn done,
                                     void *ctx);
/* Stop a run in progress (closes its connection, frees it); done is not called. */
void extensions_run_cancel(struct ext_run *run);

/* --- pure helpers, exposed for unit tests --- */

/* Whether an error (SQLSTATE, may be NULL for connection failures) is worth retrying. */
bool extensions_error_transient(const char *sqlstate);
/* Levenshtein distance between two names. */
size_t extensions_edit_distance(const char *a, const char *b);
/* Up to k (<= 16) candidates closest to name, best first (ties by name); returns how many. */
size_t extensions_closest(const char *name, const char *const *candidates, size_t n,
                          const char **out, size_t k);

/* The superuser's libpq parameters, NULL-terminated in keys/vals: the local socket
 * /var/run/postgresql (tcp false; peer authentication) or COORDINATOR_HOST as the Job reaches
 * it (tcp true: with SSL_ENABLED sslmode and sslrootcert), then port, user, password (when
 * set), dbname, application_name, options and, when not NULL, connect_timeout. The strings
 * are cfg's, the arguments' or p's own: p must outlive the connection attempt's start. */
struct conn_params {
    const char *keys[16], *vals[16];
    char port[16];
    char rootcert[4096];
};
void superuser_conn_params(const struct config *cfg, bool tcp, const char *dbname,
                           const char *application, const char *options,
                           const char *connect_timeout, struct conn_params *p);

/* key='value' with libpq's conninfo quoting (backslash and single quote escaped), malloc'd. */
char *conninfo_quoted(const char *key, const char *value);

#endif
