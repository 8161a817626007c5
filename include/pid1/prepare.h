/* prepare.h: the heavy half of the preparation (certificate checks with OpenSSL, the Patroni
 * YAML with libyaml) lives in citus-init-prepare.so, so that PID 1 never maps those
 * libraries: PID 1 runs it in a short-lived child (pod.c), `check` in-process. */
#ifndef CITUS_INIT_PREPARE_H
#define CITUS_INIT_PREPARE_H

#include <stdbool.h>
#include <time.h>

#include "config.h"
#include "diag.h"

#define PREPARE_MODULE_FILE "citus-init-prepare.so"

struct prepare_module {
    void (*tls_check)(const struct config *cfg, time_t now, struct diag *d);
    char *(*render_patroni_yaml)(const struct config *cfg, bool mask_secrets);
    char *(*render_pgbackrest_conf)(const struct config *cfg, bool for_restore);
};

/* Load citus-init-prepare.so (module.h). 0, or -1 after logging why. */
int prepare_module_load(struct prepare_module *m);

#endif
