/* pod.h: the database pod's lifecycle as PID 1, and `check`.
 *
 * PID 1: read and validate the configuration (config.h) and look up the user; in a
 * short-lived child, still root, run every check of the files and certificates (fsprep_check,
 * tls_check: nothing is changed before all passed, so 78 means nothing changed), then render
 * the Patroni YAML and prepare the files (fsprep_apply; a failure there is 70). The child loads
 * citus-init-prepare.so, so PID 1 never maps OpenSSL or libyaml. Then drop privileges and
 * supervise Patroni (or `run -- CMD`) and the agent (supervise.h). */
#ifndef CITUS_INIT_POD_H
#define CITUS_INIT_POD_H

#include "config.h"
#include "prepare.h"

/* Exit statuses (sysexits.h), decided by the commands only. */
#define EXIT_USAGE 64    /* EX_USAGE */
#define EXIT_INTERNAL 70 /* EX_SOFTWARE */
#define EXIT_CONFIG 78   /* EX_CONFIG */

/* cmd NULL: Patroni with RUN_DIR/patroni.yml. agent_exe: the executable to start as
 * `agent_exe agent` (NULL: no agent). Returns the exit status. */
int pod_run(char *const *cmd, const char *agent_exe);

/* `citus-init check`: the start path's checks in its order, read-only - config_load, the
 * user lookup (RUN_AS_USER as root, else the current uid), fsprep_check and tls_check - then
 * the YAML with secrets masked on stdout. 0, EXIT_CONFIG or EXIT_INTERNAL. */
int pod_check(void);

/* config_load for purpose, then (prep not NULL) the certificate checks; every problem is
 * logged. 0, or EXIT_CONFIG after "configuration invalid". */
int pod_load(struct config *cfg, enum config_purpose purpose, const struct prepare_module *prep);

#endif
