/* agent_module.c: the table of citus-init-agent.so (agent.h), in the executable. */
#include "agent.h"

#include "backup.h"
#include "extensions.h"
#include "module.h"
#include "restorepoint.h"
#include "workers.h"

MODULE_SAME_TYPE(agent_main, struct agent_module, main);
MODULE_SAME_TYPE(extensions_oneshot, struct agent_module, oneshot);
MODULE_SAME_TYPE(backup_command, struct agent_module, backup);
MODULE_SAME_TYPE(restorepoint_command, struct agent_module, restore_point);
MODULE_SAME_TYPE(restorepoint_list_command, struct agent_module, restore_points);
MODULE_SAME_TYPE(restorepoint_bootstrap_command, struct agent_module, restore_bootstrap);
MODULE_SAME_TYPE(workers_rebalance_command, struct agent_module, rebalance);
MODULE_SAME_TYPE(workers_drain_command, struct agent_module, drain_group);
MODULE_SAME_TYPE(workers_remove_command, struct agent_module, remove_group);

int agent_module_load(struct agent_module *m)
{
    const struct module_symbol symbols[] = {
        {"agent_main", &m->main, sizeof m->main},
        {"extensions_oneshot", &m->oneshot, sizeof m->oneshot},
        {"backup_command", &m->backup, sizeof m->backup},
        {"restorepoint_command", &m->restore_point, sizeof m->restore_point},
        {"restorepoint_list_command", &m->restore_points, sizeof m->restore_points},
        {"restorepoint_bootstrap_command", &m->restore_bootstrap, sizeof m->restore_bootstrap},
        {"workers_rebalance_command", &m->rebalance, sizeof m->rebalance},
        {"workers_drain_command", &m->drain_group, sizeof m->drain_group},
        {"workers_remove_command", &m->remove_group, sizeof m->remove_group},
    };
    return module_load(AGENT_MODULE_FILE, "the leader duties (extensions, backups, worker groups)", symbols,
                       sizeof symbols / sizeof symbols[0]);
}
