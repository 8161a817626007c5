/* leader_module.h: the leader watch (leader.h) and the extension runner (extensions.h) are
 * built as a loadable module, citus-init-leader.so, because they alone need libcurl, libpq
 * and cJSON, which with their own dependencies (TLS, Kerberos, LDAP ...) would be most of
 * PID 1's memory and start time. citus-init loads the module only when this member can have
 * extensions to create (a pod that owns a non-empty list, `extensions --wait`).
 *
 * The module keeps no copy of the core: its references to log, diag and config functions
 * resolve against the executable (linked with --export-dynamic), so the log format and level
 * set by main apply to its lines too. */
#ifndef CITUS_INIT_LEADER_MODULE_H
#define CITUS_INIT_LEADER_MODULE_H

#include "config.h"

#define LEADER_MODULE_FILE "citus-init-leader.so"

struct ev_loop;
struct leader_watch;

/* The module's entry points, with the signatures leader.h and extensions.h declare. */
struct leader_module {
    struct leader_watch *(*watch_start)(struct ev_loop *loop, const struct config *cfg);
    void (*watch_stop)(struct leader_watch *w);
    int (*oneshot)(const struct config *cfg);
};

/* Load the module and resolve its entry points. Looked for next to the executable first
 * (the build directory), else in the directory compiled in (<prefix>/<libdir>/citus-init).
 * Returns 0, or -1 after logging the path tried and the loader's reason. Never unloaded. */
int leader_module_load(struct leader_module *m);

#endif
