/* main.c: the command line and the order of the pod lifecycle. Every module returns its
 * problems as values; only this file decides exit statuses (docs/citus-init.md). */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "diag.h"
#include "fsprep.h"
#include "leader.h"
#include "leader_module.h"
#include "log.h"
#include "privdrop.h"
#include "render.h"
#include "supervise.h"
#include "tls.h"

extern char **environ;

#define EXIT_USAGE 64    /* EX_USAGE */
#define EXIT_INTERNAL 70 /* EX_SOFTWARE */
#define EXIT_CONFIG 78   /* EX_CONFIG */

/* Consumed by citus-init itself; the supervised command never sees them. */
static const char *const secret_variables[] = {"SUPERUSER_PASSWORD", "REPLICATION_PASSWORD",
                                               "RESTAPI_PASSWORD", NULL};

static const char usage[] =
    "usage: citus-init                       run the pod: prepare, drop to RUN_AS_USER, supervise Patroni\n"
    "       citus-init run -- CMD [ARGS...]  the same lifecycle around another command\n"
    "       citus-init supervise -- CMD ...  only the PID-1 duties; reads no configuration\n"
    "       citus-init check                 validate, print the Patroni YAML (secrets masked)\n"
    "       citus-init extensions --wait     create the configured extensions on the coordinator\n"
    "       citus-init --version | --help\n"
    "Exit status: the command's, 128+signal, 127 not found, 126 not executable,\n"
    "78 configuration problem, 70 internal failure, 64 usage error.\n"
    "Environment and files: docs/citus-init.md\n";

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static const char *ms_since(char *buf, size_t size, double start)
{
    snprintf(buf, size, "%.1f", now_ms() - start);
    return buf;
}

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

/* One log line per problem; returns the number of errors. */
static size_t report(const struct diag *d)
{
    for (size_t i = 0; i < d->count; i++) {
        if (d->items[i].severity == DIAG_ERROR)
            log_error(d->items[i].message, NULL);
        else
            log_warn(d->items[i].message, NULL);
    }
    return diag_error_count(d);
}

/* Configuration plus the certificate checks. 0 or EXIT_CONFIG (reported). */
static int load(struct config *cfg, enum config_purpose purpose)
{
    double start = now_ms();
    struct diag d;
    diag_init(&d);
    memset(cfg, 0, sizeof *cfg);
    int rc = config_load(cfg, purpose, env_lookup_process, NULL, &d);
    if (rc == 0) /* certificates only once the settings naming them are sound */
        tls_check(cfg, time(NULL), &d);
    size_t errors = report(&d);
    diag_free(&d);
    char buf[32], count[24];
    if (errors) {
        snprintf(count, sizeof count, "%zu", errors);
        log_error("configuration invalid", "problems", count, NULL);
        return EXIT_CONFIG;
    }
    log_setup(cfg->log_format, cfg->log_level);
    log_info("configuration loaded", "duration_ms", ms_since(buf, sizeof buf, start), NULL);
    return 0;
}

static int cmd_check(void)
{
    struct config cfg;
    int rc = load(&cfg, CONFIG_POD);
    if (rc == 0) {
        char *yaml = render_patroni_yaml(&cfg, true);
        if (!yaml) {
            log_error("rendering the Patroni configuration failed", NULL);
            rc = EXIT_INTERNAL;
        } else {
            fputs(yaml, stdout);
            if (fflush(stdout) != 0)
                rc = EXIT_INTERNAL;
            free(yaml);
        }
    }
    config_free(&cfg);
    return rc;
}

static int cmd_extensions(void)
{
    struct config cfg;
    int rc = load(&cfg, CONFIG_EXTENSIONS_JOB);
    struct leader_module mod;
    if (rc == 0)
        rc = leader_module_load(&mod) == 0 ? mod.oneshot(&cfg) : EXIT_INTERNAL;
    config_free(&cfg);
    return rc;
}

/* --- supervision hooks: the leader watch lives on PID 1's loop --- */

struct pod {
    const struct config *cfg;
    const struct leader_module *mod; /* NULL: this member never creates extensions */
    struct leader_watch *watch;
};

/* Whether this member can ever have extensions to create: only then is the leader module
 * (libcurl, libpq) loaded into PID 1. */
static bool pod_needs_leader_module(const struct config *cfg)
{
    return leader_owns_extensions(cfg) && (cfg->extensions.count > 0 || cfg->extensions_file);
}

static void pod_loop_ready(struct ev_loop *loop, void *ctx)
{
    struct pod *p = ctx;
    if (p->mod)
        p->watch = p->mod->watch_start(loop, p->cfg);
}

static void pod_child_exit(struct ev_loop *loop, void *ctx)
{
    (void)loop;
    struct pod *p = ctx;
    if (p->mod)
        p->mod->watch_stop(p->watch);
    p->watch = NULL;
}

/* No arguments (cmd == NULL: Patroni) or `run -- CMD`. */
static int cmd_lifecycle(char *const *cmd)
{
    /* A TERM during preparation must reach the child once it runs, not kill us. */
    supervise_block_signals();
    struct config cfg;
    int rc = load(&cfg, CONFIG_POD);
    if (rc != 0) {
        config_free(&cfg);
        return rc;
    }

    struct diag d;
    diag_init(&d);
    struct run_user user;
    bool as_root = geteuid() == 0;
    char buf[32], uidbuf[16], gidbuf[16];
    double start = now_ms();
    char *yaml_path = config_path(&cfg, "patroni.yml");
    char **env = NULL;
    /* Loaded before anything is changed: a pod that cannot do its extension duty stops
     * here (70) instead of running Patroni without it. */
    struct leader_module mod;
    bool with_module = pod_needs_leader_module(&cfg);
    if (with_module && leader_module_load(&mod) < 0) {
        rc = EXIT_INTERNAL;
        goto out_cfg;
    }

    if ((as_root ? run_user_lookup(cfg.run_as_user, &user, &d)
                 : run_user_current(&user, &d)) < 0) {
        report(&d);
        rc = EXIT_CONFIG;
        goto out_cfg;
    }
    if (!as_root && strcmp(user.name, cfg.run_as_user) != 0)
        log_info("started as non-root: RUN_AS_USER is not used", "user", user.name,
                 "run_as_user", cfg.run_as_user, NULL);

    enum fsprep_status fs = fsprep_run(&cfg, &user, as_root, &d);
    if (fs != FSPREP_OK) {
        report(&d);
        rc = fs == FSPREP_UNUSABLE ? EXIT_CONFIG : EXIT_INTERNAL;
        goto out;
    }
    log_info("files prepared", "data_dir", cfg.pgdata, "config", yaml_path, "as_root",
             as_root ? "true" : "false", "duration_ms", ms_since(buf, sizeof buf, start), NULL);

    start = now_ms();
    if (privdrop_apply(&user, &d) < 0) {
        report(&d);
        rc = EXIT_INTERNAL;
        goto out;
    }
    snprintf(uidbuf, sizeof uidbuf, "%u", (unsigned)user.uid);
    snprintf(gidbuf, sizeof gidbuf, "%u", (unsigned)user.gid);
    log_info(as_root ? "privileges dropped" : "no privileges to drop", "user", user.name, "uid",
             uidbuf, "gid", gidbuf, "duration_ms", ms_since(buf, sizeof buf, start), NULL);

    char *patroni_argv[] = {cfg.patroni_command, yaml_path, NULL};
    env = privdrop_child_env(environ, &user, secret_variables);
    struct pod pod = {.cfg = &cfg, .mod = with_module ? &mod : NULL, .watch = NULL};
    struct supervise_opts opts = {
        .argv = cmd ? cmd : patroni_argv,
        .envp = env,
        .shutdown_deadline = cfg.shutdown_deadline,
        .grace_period = cfg.termination_grace_period,
        .drain_timeout = cfg.shutdown_deadline < SUPERVISE_DRAIN_MAX ? cfg.shutdown_deadline
                                                                     : SUPERVISE_DRAIN_MAX,
        .pgdata = cfg.pgdata,
        .on_loop_ready = pod_loop_ready,
        .on_child_exit = pod_child_exit,
        .ctx = &pod,
    };
    rc = supervise_run(&opts);
    if (pod.mod) /* when the loop ended without the child-exit hook */
        pod.mod->watch_stop(pod.watch);

out:
    run_user_free(&user);
out_cfg:
    privdrop_env_free(env);
    free(yaml_path);
    diag_free(&d);
    config_free(&cfg);
    return rc;
}

/* `supervise` reads only these; same rules as the pod configuration. */
static int supervise_setting(const char *name, int def, int min, int *out)
{
    const char *v = getenv(name);
    *out = def;
    if (!v || !*v)
        return 0;
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (*end || end == v || errno == ERANGE || n < min || n > INT_MAX) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s: \"%.32s\" is not valid; expected an integer >= %d", name,
                 v, min);
        log_error(msg, NULL);
        return -1;
    }
    *out = (int)n;
    return 0;
}

static int cmd_supervise(char *const *cmd)
{
    struct supervise_opts opts = {.argv = cmd};
    if (supervise_setting("SHUTDOWN_DEADLINE", 25, 1, &opts.shutdown_deadline) < 0 ||
        supervise_setting("TERMINATION_GRACE_PERIOD", 30, 2, &opts.grace_period) < 0)
        return EXIT_CONFIG;
    if (opts.shutdown_deadline >= opts.grace_period) {
        log_error("SHUTDOWN_DEADLINE: is not below TERMINATION_GRACE_PERIOD; expected a "
                  "deadline shorter than the grace period", NULL);
        return EXIT_CONFIG;
    }
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
        return cmd_lifecycle(NULL);
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
        return cmd_check();
    if (strcmp(cmd, "extensions") == 0 && argc == 3 && strcmp(argv[2], "--wait") == 0)
        return cmd_extensions();
    if (strcmp(cmd, "run") == 0 || strcmp(cmd, "supervise") == 0) {
        char *const *child = command_after_dashes(argc, argv, 2);
        if (child)
            return cmd[0] == 'r' ? cmd_lifecycle(child) : cmd_supervise(child);
    }
    fprintf(stderr, "citus-init: unknown or incomplete command line\n%s", usage);
    return EXIT_USAGE;
}
