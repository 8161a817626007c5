/* render.h: struct config -> Patroni YAML text. Pure: no I/O, no environment.
 * Uses libyaml's emitter so every scalar (passwords with quotes, colons, newlines,
 * unicode) is quoted correctly. With mask_secrets, passwords render as "********". */
#ifndef CITUS_INIT_RENDER_H
#define CITUS_INIT_RENDER_H

#include <stdbool.h>
#include "config.h"

/* Returns a malloc'd NUL-terminated document, or NULL on emitter failure. */
char *render_patroni_yaml(const struct config *cfg, bool mask_secrets);

/* Citus' node_conninfo (SSL_ENABLED with Citus only, else NULL): sslmode and the paths of the
 * RUN_DIR/tls copies, each path single-quoted by libpq's rules (\\ and ' escaped), so any
 * RUN_DIR reads back exactly. malloc'd. */
char *render_node_conninfo(const struct config *cfg);

/* With BACKUP_REPO not none: pgBackRest's configuration for RUN_DIR/BACKUP_CONF_FILE (our
 * repository and stanza), or with for_restore for RUN_DIR/BACKUP_RESTORE_CONF_FILE (the
 * source's repository and stanza; NULL without RESTORE_FROM_CLUSTER). Holds the repository's
 * secrets: wipe it. malloc'd; NULL when there is nothing to render or on failure. */
char *render_pgbackrest_conf(const struct config *cfg, bool for_restore);

/* PostgreSQL's archive_command and restore_command for our stanza: pgbackrest with the
 * configuration's path quoted for /bin/sh and its '%' doubled. malloc'd. */
char *render_archive_command(const struct config *cfg);
char *render_restore_command(const struct config *cfg);

#endif
