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
 * `agent` and `extensions --wait`. */
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

/* The module's entry points, with the signatures this header and extensions.h declare. */
struct agent_module {
    int (*main)(void);
    int (*oneshot)(const struct config *cfg);
};

/* Load citus-init-agent.so (module.h). 0, or -1 after logging why. */
int agent_module_load(struct agent_module *m);

#endif
