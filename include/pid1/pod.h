/* pod.h: the database pod's lifecycle as PID 1, and `check`.
 *
 * PID 1: read and validate the configuration (config.h); in a short-lived child, still root,
 * check the certificates, render the Patroni YAML and prepare the files (the child loads
 * citus-init-prepare.so, so PID 1 never maps OpenSSL or libyaml); drop privileges; then
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

/* `citus-init check`: the same checks, read-only; prints the YAML with secrets masked. */
int pod_check(void);

/* config_load for purpose, then (prep not NULL) the certificate checks; every problem is
 * logged. 0, or EXIT_CONFIG after "configuration invalid". */
int pod_load(struct config *cfg, enum config_purpose purpose, const struct prepare_module *prep);

#endif
