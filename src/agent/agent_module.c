/* agent_module.c: the table of citus-init-agent.so (agent.h), in the executable. */
#include "agent.h"

#include "extensions.h"
#include "module.h"

MODULE_SAME_TYPE(agent_main, struct agent_module, main);
MODULE_SAME_TYPE(extensions_oneshot, struct agent_module, oneshot);

int agent_module_load(struct agent_module *m)
{
    const struct module_symbol symbols[] = {
        {"agent_main", &m->main, sizeof m->main},
        {"extensions_oneshot", &m->oneshot, sizeof m->oneshot},
    };
    return module_load(AGENT_MODULE_FILE, "the leader duties (extensions)", symbols,
                       sizeof symbols / sizeof symbols[0]);
}
