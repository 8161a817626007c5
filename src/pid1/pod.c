/* pod.c: the pod's lifecycle as PID 1 and `check` (pod.h). */
#include "pod.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "diag.h"
#include "fsprep.h"
#include "log.h"
#include "privdrop.h"
#include "supervise.h"
#include "xalloc.h"

extern char **environ;

/* Consumed by citus-init itself; the supervised command never sees them. The agent gets
 * them on its stdin (agent.h). The repositories' secrets are read from files only, but their
 * handover names are dropped too: a variable of that name never reaches a child, so the
 * agent's look-up finds only what PID 1 handed over. */
static const char *const secret_variables[] = {
    "SUPERUSER_PASSWORD", "REPLICATION_PASSWORD", "RESTAPI_PASSWORD", "APP_PASSWORD",
    "BACKUP_S3_KEY", "BACKUP_S3_KEY_SECRET", "BACKUP_CIPHER_PASS",
    "RESTORE_S3_KEY", "RESTORE_S3_KEY_SECRET", "RESTORE_CIPHER_PASS", NULL};

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

static int invalid(size_t errors)
{
    char count[24];
    snprintf(count, sizeof count, "%zu", errors);
    log_error("configuration invalid", "problems", count, NULL);
    return EXIT_CONFIG;
}

int pod_load(struct config *cfg, enum config_purpose purpose, const struct prepare_module *prep)
{
    double start = now_ms();
    struct diag d;
    diag_init(&d);
    int rc = config_load(cfg, purpose, env_lookup_process, NULL, &d);
    if (rc == 0 && prep) /* certificates only once the settings naming them are sound */
        prep->tls_check(cfg, time(NULL), &d);
    size_t errors = log_diag(&d);
    diag_free(&d);
    if (errors)
        return invalid(errors);
    log_setup(cfg->log_format, cfg->log_level);
    char buf[32];
    log_info("configuration loaded", "duration_ms", ms_since(buf, sizeof buf, start), NULL);
    return 0;
}

/* The user the files belong to: RUN_AS_USER as root, else the account we run as. */
static int lookup_user(const struct config *cfg, bool as_root, struct run_user *user,
                       struct diag *d)
{
    return as_root ? run_user_lookup(cfg->run_as_user, user, d) : run_user_current(user, d);
}

/* Every check of the files, read-only, in the start path's order: the paths and the TLS
 * sources (fsprep_check), then the certificates (tls_check, once the sources could be read:
 * a file that cannot be read is reported once). plan is filled for fsprep_apply. */
static size_t check_files(const struct config *cfg, const struct run_user *user, bool as_root,
                          const struct prepare_module *prep, struct fsprep_plan *plan)
{
    struct diag d;
    diag_init(&d);
    fsprep_check(cfg, user, as_root, plan, &d);
    if (plan->tls_read)
        prep->tls_check(cfg, time(NULL), &d);
    size_t errors = log_diag(&d);
    diag_free(&d);
    return errors;
}

/* This executable's absolute path (Patroni's restore bootstrap command), or NULL. */
static char *self_exe(void)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return NULL;
    exe[n] = '\0';
    return xstrdup(exe);
}

int pod_check(void)
{
    struct config cfg;
    struct prepare_module prep;
    if (prepare_module_load(&prep) < 0)
        return EXIT_INTERNAL;
    double start = now_ms();
    int rc = pod_load(&cfg, CONFIG_POD, NULL);
    bool as_root = geteuid() == 0;
    struct run_user user = {0};
    struct fsprep_plan plan = {0};
    if (rc == 0) {
        struct diag d;
        diag_init(&d);
        if (lookup_user(&cfg, as_root, &user, &d) < 0) {
            log_diag(&d);
            rc = EXIT_CONFIG;
        }
        diag_free(&d);
    }
    if (rc == 0) {
        size_t errors = check_files(&cfg, &user, as_root, &prep, &plan);
        if (errors)
            rc = invalid(errors);
    }
    if (rc == 0) {
        char buf[32];
        log_info("files checked", "duration_ms", ms_since(buf, sizeof buf, start), NULL);
        cfg.backup.self_exe = self_exe();
        char *yaml = prep.render_patroni_yaml(&cfg, true);
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
    fsprep_plan_free(&plan);
    run_user_free(&user);
    config_free(&cfg);
    return rc;
}

/* The preparation child: every check first (nothing is changed before all passed), then the
 * YAML and the files. Its exit status is the result. */
static int prepare_files(const struct config *cfg, const struct run_user *user, bool as_root,
                         double loaded_since)
{
    char buf[32];
    struct prepare_module prep;
    if (prepare_module_load(&prep) < 0)
        return EXIT_INTERNAL;
    struct fsprep_plan plan;
    size_t errors = check_files(cfg, user, as_root, &prep, &plan);
    if (errors) {
        fsprep_plan_free(&plan);
        return invalid(errors);
    }
    log_info("configuration loaded", "duration_ms", ms_since(buf, sizeof buf, loaded_since),
             NULL);

    double start = now_ms();
    char *yaml = prep.render_patroni_yaml(cfg, false);
    if (cfg->backup.repo != BACKUP_REPO_NONE) {
        plan.pgbackrest_conf = prep.render_pgbackrest_conf(cfg, false);
        if (cfg->backup.restore_from_cluster)
            plan.restore_conf = prep.render_pgbackrest_conf(cfg, true);
    }
    if (!yaml || (cfg->backup.repo != BACKUP_REPO_NONE && !plan.pgbackrest_conf) ||
        (cfg->backup.restore_from_cluster && !plan.restore_conf)) {
        log_error(yaml ? "rendering pgBackRest's configuration failed"
                       : "rendering the Patroni configuration failed", NULL);
        if (yaml)
            explicit_bzero(yaml, strlen(yaml));
        free(yaml);
        fsprep_plan_free(&plan);
        return EXIT_INTERNAL;
    }
    struct diag d;
    diag_init(&d);
    enum fsprep_status fs = fsprep_apply(&plan, yaml, &d);
    fsprep_plan_free(&plan);
    explicit_bzero(yaml, strlen(yaml));
    free(yaml);
    log_diag(&d);
    diag_free(&d);
    if (fs != FSPREP_OK)
        return EXIT_INTERNAL; /* fsprep_check passed: whatever failed now was a change */
    char *yaml_path = config_path(cfg, "patroni.yml");
    log_info("files prepared", "data_dir", cfg->pgdata, "config", yaml_path, "as_root",
             as_root ? "true" : "false", "duration_ms", ms_since(buf, sizeof buf, start), NULL);
    free(yaml_path);
    return 0;
}

/* prepare_files in a child, so that the libraries it loads never map into PID 1. */
static int prepare_in_child(const struct config *cfg, const struct run_user *user, bool as_root,
                            double loaded_since)
{
    pid_t pid = fork();
    if (pid < 0) {
        log_error("cannot start the preparation", "error", strerror(errno), NULL);
        return EXIT_INTERNAL;
    }
    if (pid == 0)
        _exit(prepare_files(cfg, user, as_root, loaded_since));
    int wstatus;
    while (waitpid(pid, &wstatus, 0) < 0) {
        if (errno != EINTR) {
            log_error("cannot wait for the preparation", "error", strerror(errno), NULL);
            return EXIT_INTERNAL;
        }
    }
    if (WIFEXITED(wstatus))
        return WEXITSTATUS(wstatus);
    log_error("the preparation ended by a signal", "signal",
              WIFSIGNALED(wstatus) ? sigabbrev_np(WTERMSIG(wstatus)) : "unknown", NULL);
    return EXIT_INTERNAL;
}

/* NAME=value\0 for every secret the configuration holds: the agent's stdin (the names are
 * secret_variables', which config_load_agent reads). */
static char *agent_input(const struct config *cfg, size_t *len)
{
    const struct backup_config *b = &cfg->backup;
    const char *values[] = {cfg->superuser_password, cfg->replication_password,
                            cfg->restapi_password, cfg->app_password,
                            b->own.s3_key, b->own.s3_key_secret, b->own.cipher_pass,
                            b->source.s3_key, b->source.s3_key_secret, b->source.cipher_pass};
    const char *const *names = secret_variables;
    const size_t n = sizeof values / sizeof values[0];
    _Static_assert(sizeof values / sizeof values[0] ==
                       sizeof secret_variables / sizeof secret_variables[0] - 1,
                   "one value for every secret variable");
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        if (values[i])
            total += strlen(names[i]) + 1 + strlen(values[i]) + 1;
    char *buf = xmalloc(total + 1), *p = buf;
    for (size_t i = 0; i < n; i++)
        if (values[i])
            p += sprintf(p, "%s=%s", names[i], values[i]) + 1;
    *len = total;
    return buf;
}

int pod_run(char *const *cmd, const char *agent_exe)
{
    /* A TERM during preparation must reach the child once it runs, not kill us. */
    supervise_block_signals();
    double loaded_since = now_ms();
    struct config cfg;
    struct diag d;
    diag_init(&d);
    int rc = config_load(&cfg, CONFIG_POD, env_lookup_process, NULL, &d);
    size_t errors = log_diag(&d);
    diag_free(&d);
    if (rc < 0 || errors) {
        config_free(&cfg);
        return invalid(errors);
    }
    log_setup(cfg.log_format, cfg.log_level);

    diag_init(&d);
    struct run_user user = {0};
    bool as_root = geteuid() == 0;
    char buf[32], uidbuf[16], gidbuf[16];
    char *yaml_path = config_path(&cfg, "patroni.yml");
    char **env = NULL;
    char *input = NULL;
    size_t input_len = 0;

    if (lookup_user(&cfg, as_root, &user, &d) < 0) {
        log_diag(&d);
        rc = EXIT_CONFIG;
        goto out;
    }
    if (!as_root && strcmp(user.name, cfg.run_as_user) != 0)
        log_info("started as non-root: RUN_AS_USER is not used", "user", user.name,
                 "run_as_user", cfg.run_as_user, NULL);

    cfg.backup.self_exe = agent_exe ? xstrdup(agent_exe) : NULL; /* the restore bootstrap */
    if ((rc = prepare_in_child(&cfg, &user, as_root, loaded_since)) != 0)
        goto out;

    double start = now_ms();
    if (privdrop_apply(&user, &d) < 0) {
        log_diag(&d);
        rc = EXIT_INTERNAL;
        goto out;
    }
    snprintf(uidbuf, sizeof uidbuf, "%u", (unsigned)user.uid);
    snprintf(gidbuf, sizeof gidbuf, "%u", (unsigned)user.gid);
    log_info(as_root ? "privileges dropped" : "no privileges to drop", "user", user.name, "uid",
             uidbuf, "gid", gidbuf, "duration_ms", ms_since(buf, sizeof buf, start), NULL);

    char *patroni_argv[] = {cfg.patroni_command, yaml_path, NULL};
    char *agent_argv[] = {(char *)agent_exe, "agent", NULL};
    env = privdrop_child_env(environ, &user, secret_variables);
    input = agent_input(&cfg, &input_len);
    struct supervise_agent agent = {.argv = agent_argv, .envp = env, .input = input,
                                    .input_len = input_len,
                                    .main_pid_name = cmd ? NULL : "PATRONI_PID",
                                    .restarts_name = "AGENT_RESTARTS"};
    struct supervise_opts opts = {
        .argv = cmd ? cmd : patroni_argv,
        .envp = env,
        .shutdown_deadline = cfg.shutdown_deadline,
        .grace_period = cfg.termination_grace_period,
        .drain_timeout = cfg.shutdown_deadline < SUPERVISE_DRAIN_MAX ? cfg.shutdown_deadline
                                                                     : SUPERVISE_DRAIN_MAX,
        .pgdata = cfg.pgdata,
        .agent = agent_exe ? &agent : NULL,
    };
    rc = supervise_run(&opts);

out:
    if (input) {
        explicit_bzero(input, input_len);
        free(input);
    }
    run_user_free(&user);
    privdrop_env_free(env);
    free(yaml_path);
    diag_free(&d);
    config_free(&cfg);
    return rc;
}
