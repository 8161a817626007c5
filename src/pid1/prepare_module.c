/* prepare_module.c: the table of citus-init-prepare.so (prepare.h). */
#include "prepare.h"

#include "module.h"
#include "render.h"
#include "tls.h"

MODULE_SAME_TYPE(tls_check, struct prepare_module, tls_check);
MODULE_SAME_TYPE(render_patroni_yaml, struct prepare_module, render_patroni_yaml);
MODULE_SAME_TYPE(render_pgbackrest_conf, struct prepare_module, render_pgbackrest_conf);

int prepare_module_load(struct prepare_module *m)
{
    const struct module_symbol symbols[] = {
        {"tls_check", &m->tls_check, sizeof m->tls_check},
        {"render_patroni_yaml", &m->render_patroni_yaml, sizeof m->render_patroni_yaml},
        {"render_pgbackrest_conf", &m->render_pgbackrest_conf, sizeof m->render_pgbackrest_conf},
    };
    return module_load(PREPARE_MODULE_FILE, "checking certificates and writing the Patroni "
                       "configuration", symbols, sizeof symbols / sizeof symbols[0]);
}
