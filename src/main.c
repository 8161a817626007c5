/* main.c: the command line. Each command is one function of its part: the pod's lifecycle
 * and `check` (pid1/pod.c), the agent and the extensions Job (agent/, a module). Only the
 * commands decide exit statuses (docs/citus-init.md). */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>

#include "agent.h"
#include "config.h"
#include "diag.h"
#include "log.h"
#include "pod.h"
#include "prepare.h"
#include "privdrop.h"
#include "supervise.h"

static const char usage[] =
    "usage: citus-init                       run the pod: prepare, drop to RUN_AS_USER, supervise Patroni and the agent\n"
    "       citus-init run -- CMD [ARGS...]  the same lifecycle around another command\n"
    "       citus-init supervise -- CMD ...  only the PID-1 duties; reads no configuration\n"
    "       citus-init check                 validate, print the Patroni YAML (secrets masked)\n"
    "       citus-init extensions --wait     create the configured extensions on the coordinator\n"
    "       citus-init agent                 the leader duties (started by citus-init itself)\n"
    "       citus-init backup [--type full|diff|incr]  one backup now, on the group's primary\n"
    "       citus-init restore-point [NAME]  a cluster-wide restore point, on the coordinator's primary\n"
    "       citus-init restore-points [--cluster NAME]  the available restore points\n"
    "       citus-init restore-bootstrap     restore this group from RESTORE_FROM_CLUSTER (Patroni's bootstrap)\n"
    "       citus-init rebalance [--wait] [--expect LIST [--timeout S]]\n"
    "                                        spread the shards over the worker groups (Citus'\n"
    "                                        rebalancer), after the LIST groups are registered\n"
    "       citus-init drain-group GROUP | --absent-from LIST\n"
    "                                        move every shard off a worker group (or off every\n"
    "                                        group of pg_dist_node not in LIST)\n"
    "       citus-init remove-group GROUP | --absent-from LIST [--wait-gone S]\n"
    "                                        remove drained worker groups from pg_dist_node\n"
    "                                        (once their members are gone, waited up to S s)\n"
    "       citus-init --version | --help\n"
    "Exit status: the command's, 128+signal, 127 not found, 126 not executable,\n"
    "78 configuration problem, 70 internal failure, 64 usage error.\n"
    "Environment and files: docs/citus-init.md\n";

/* LOG_FORMAT/LOG_LEVEL before anything else, so even configuration errors come out in the
 * requested format. An unknown value keeps the default here; config_load reports it. */
static void log_setup_from_env(void)
{
    enum log_format format = LOG_FORMAT_LOGFMT;
    enum log_level level = LOG_INFO;
    const char *v;
    if ((v = getenv("LOG_FORMAT")) && *v)
        log_parse_format(v, &format);
    if ((v = getenv("LOG_LEVEL")) && *v)
        log_parse_level(v, &level);
    log_setup(format, level);
}

static int cmd_extensions(void)
{
    struct prepare_module prep;
    struct agent_module agent;
    if (prepare_module_load(&prep) < 0 || agent_module_load(&agent) < 0)
        return EXIT_INTERNAL;
    struct config cfg;
    int rc = pod_load(&cfg, CONFIG_EXTENSIONS_JOB, &prep);
    if (rc == 0)
        rc = agent.oneshot(&cfg);
    config_free(&cfg);
    return rc;
}

static int cmd_agent(void)
{
    struct agent_module agent;
    return agent_module_load(&agent) < 0 ? EXIT_INTERNAL : agent.main();
}

/* The one-shot commands of the agent module: the pod's configuration (secret files
 * included, read while still root under `kubectl exec`), then RUN_AS_USER like the agent,
 * then the module's command. The worker-group commands also run as a Job: with
 * COORDINATOR_HOST set they read only the Job's configuration (as `extensions --wait`) and
 * change no user. */
enum agent_command { CMD_BACKUP, CMD_RESTORE_POINT, CMD_RESTORE_POINTS, CMD_RESTORE_BOOTSTRAP,
                     CMD_REBALANCE, CMD_DRAIN_GROUP, CMD_REMOVE_GROUP, CMD_COUNT };
static const char *const agent_commands[CMD_COUNT] = {
    "backup", "restore-point", "restore-points", "restore-bootstrap", "rebalance",
    "drain-group", "remove-group"};

static int cmd_oneshot(enum agent_command which, int argc, char *const *argv)
{
    struct agent_module agent;
    if (agent_module_load(&agent) < 0)
        return EXIT_INTERNAL;
    agent_command_fn fns[CMD_COUNT] = {agent.backup, agent.restore_point, agent.restore_points,
                                       agent.restore_bootstrap, agent.rebalance,
                                       agent.drain_group, agent.remove_group};
    const char *coordinator = getenv("COORDINATOR_HOST");
    bool job = which >= CMD_REBALANCE && coordinator && *coordinator;
    struct config cfg;
    int rc = pod_load(&cfg, job ? CONFIG_EXTENSIONS_JOB : CONFIG_POD, NULL);
    if (rc == 0 && !job && geteuid() == 0) {
        struct run_user user = {0};
        struct diag d;
        diag_init(&d);
        if (run_user_lookup(cfg.run_as_user, &user, &d) < 0)
            rc = EXIT_CONFIG;
        else if (privdrop_apply(&user, &d) < 0)
            rc = EXIT_INTERNAL;
        else if (user.home)
            setenv("HOME", user.home, 1);
        log_diag(&d);
        diag_free(&d);
        run_user_free(&user);
    }
    if (rc == 0)
        rc = fns[which](&cfg, argc, argv);
    config_free(&cfg);
    return rc;
}

/* The pod's lifecycle; the agent is this very executable (resolved now, before the
 * privilege drop, while /proc/self/exe is certainly readable). */
static int cmd_pod(char *const *child)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        log_error("cannot find citus-init's own executable for the agent", "path",
                  "/proc/self/exe", "error", n < 0 ? strerror(errno) : "empty", NULL);
        return EXIT_INTERNAL;
    }
    exe[n] = '\0';
    return pod_run(child, exe);
}

/* `supervise` reads only these, by the rules of the pod configuration. */
static int cmd_supervise(char *const *cmd)
{
    struct supervise_opts opts = {.argv = cmd};
    struct diag d;
    diag_init(&d);
    config_int_setting("SHUTDOWN_DEADLINE", 25, 1, INT_MAX, &opts.shutdown_deadline, &d);
    config_int_setting("TERMINATION_GRACE_PERIOD", 30, 2, INT_MAX, &opts.grace_period, &d);
    if (!diag_error_count(&d) && opts.shutdown_deadline >= opts.grace_period)
        diag_error(&d, "SHUTDOWN_DEADLINE: %d is not below TERMINATION_GRACE_PERIOD %d; "
                   "expected a deadline shorter than the grace period", opts.shutdown_deadline,
                   opts.grace_period);
    size_t errors = log_diag(&d);
    diag_free(&d);
    if (errors)
        return EXIT_CONFIG;
    opts.drain_timeout = opts.shutdown_deadline < SUPERVISE_DRAIN_MAX ? opts.shutdown_deadline
                                                                      : SUPERVISE_DRAIN_MAX;
    const char *pgdata = getenv("PGDATA");
    opts.pgdata = pgdata && *pgdata ? pgdata : NULL;
    return supervise_run(&opts);
}

/* argv[i] must be "--" followed by a command. */
static char *const *command_after_dashes(int argc, char **argv, int i)
{
    if (i + 1 < argc && strcmp(argv[i], "--") == 0)
        return argv + i + 1;
    return NULL;
}

int main(int argc, char **argv)
{
    log_setup_from_env();

    if (argc == 1)
        return cmd_pod(NULL);
    const char *cmd = argv[1];
    if (strcmp(cmd, "--version") == 0) {
        printf("citus-init %s\n", CITUS_INIT_VERSION);
        return 0;
    }
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    if (strcmp(cmd, "check") == 0 && argc == 2)
        return pod_check();
    if (strcmp(cmd, "agent") == 0 && argc == 2)
        return cmd_agent();
    if (strcmp(cmd, "extensions") == 0 && argc == 3 && strcmp(argv[2], "--wait") == 0)
        return cmd_extensions();
    for (int i = 0; i < CMD_COUNT; i++)
        if (strcmp(cmd, agent_commands[i]) == 0)
            return cmd_oneshot((enum agent_command)i, argc - 2, argv + 2);
    if (strcmp(cmd, "run") == 0 || strcmp(cmd, "supervise") == 0) {
        char *const *child = command_after_dashes(argc, argv, 2);
        if (child)
            return cmd[0] == 'r' ? cmd_pod(child) : cmd_supervise(child);
    }
    fprintf(stderr, "citus-init: unknown or incomplete command line\n%s", usage);
    return EXIT_USAGE;
}
