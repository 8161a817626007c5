/* agent.h: `citus-init agent`, the process that does every duty of a leader (today: the
 * leader watch, the extensions and the coordinator's early HA cycles; leader.h).
 *
 * PID 1 starts it after the privilege drop (as the postgres user), beside Patroni, and
 * restarts it with a bounded backoff whenever it ends (supervise.h); Patroni and PostgreSQL
 * never notice. It reads the pod's configuration from the environment like PID 1, except the
 * passwords: PID 1 writes them on the agent's stdin as NUL-terminated NAME=value entries
 * (SUPERUSER_PASSWORD, REPLICATION_PASSWORD, RESTAPI_PASSWORD, and PATRONI_PID when the
 * supervised command is Patroni) and closes it, so the passwords are in no environment and
 * the agent needs no access to the secret volume.
 *
 * The code is citus-init-agent.so (libcurl, libpq, cJSON); the executable loads it only for
 * `agent`, `extensions --wait`, the backup commands (backup, restore-point, restore-points,
 * restore-bootstrap) and the worker-group commands (rebalance, drain-group, remove-group). */
#ifndef CITUS_INIT_AGENT_H
#define CITUS_INIT_AGENT_H

#include "config.h"

#define AGENT_MODULE_FILE "citus-init-agent.so"

/* The agent's whole life: read stdin, load the configuration, run the leader watch until
 * SIGTERM or SIGINT. Returns the exit status (0 stopped by a signal, 78 configuration, 70
 * internal). */
int agent_main(void);

/* Stdin's NUL-terminated NAME=value entries: the value of name, or NULL. Pure, for tests. */
const char *agent_input_value(const char *input, size_t len, const char *name);

/* A one-shot command (backup.h, restorepoint.h, workers.h): the loaded configuration (the caller has
 * dropped to RUN_AS_USER) and the arguments after the command's name. Exit status. */
typedef int (*agent_command_fn)(const struct config *cfg, int argc, char *const *argv);

/* The module's entry points, with the signatures this header, extensions.h, backup.h and
 * restorepoint.h declare. */
struct agent_module {
    int (*main)(void);
    int (*oneshot)(const struct config *cfg);
    agent_command_fn backup;            /* citus-init backup */
    agent_command_fn restore_point;     /* citus-init restore-point */
    agent_command_fn restore_points;    /* citus-init restore-points */
    agent_command_fn restore_bootstrap; /* citus-init restore-bootstrap */
    agent_command_fn rebalance;         /* citus-init rebalance (workers.h) */
    agent_command_fn drain_group;       /* citus-init drain-group */
    agent_command_fn remove_group;      /* citus-init remove-group */
};

/* Load citus-init-agent.so (module.h). 0, or -1 after logging why. */
int agent_module_load(struct agent_module *m);

#endif
