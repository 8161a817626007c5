/* agent.c: `citus-init agent`, the leader duties in a process of their own (agent.h). */
#include "agent.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "diag.h"
#include "backup.h"
#include "certs.h"
#include "input.h"
#include "leader.h"
#include "log.h"
#include "metrics.h"
#include "monitoring.h"

/* More than the three passwords can ever need (each at most SECRET_MAX_BYTES). */
#define AGENT_INPUT_MAX (256 * 1024)

const char *agent_input_value(const char *input, size_t len, const char *name)
{
    size_t name_len = strlen(name);
    const char *p = input, *end = input + len;
    while (p < end) {
        const char *nul = memchr(p, '\0', (size_t)(end - p));
        if (!nul)
            return NULL; /* an unterminated last entry is not an entry */
        if ((size_t)(nul - p) > name_len && memcmp(p, name, name_len) == 0 && p[name_len] == '=')
            return p + name_len + 1;
        p = nul + 1;
    }
    return NULL;
}

struct agent_env {
    const char *input;
    size_t len;
};

/* The passwords from stdin, everything else from the environment. */
static const char *agent_lookup(const char *name, void *ctx)
{
    const struct agent_env *e = ctx;
    const char *v = agent_input_value(e->input, e->len, name);
    return v ? v : getenv(name);
}

/* Everything on stdin until EOF. -1 (errno set) on a read error or more than the maximum. */
static int read_stdin(char **out, size_t *len)
{
    size_t cap = 4096, have = 0;
    char *buf = malloc(cap);
    if (!buf)
        return -1;
    for (;;) {
        if (have == cap) {
            if (cap >= AGENT_INPUT_MAX) {
                input_free_wiped(buf, have);
                errno = EFBIG;
                return -1;
            }
            char *bigger = malloc(cap * 2);
            if (!bigger) {
                input_free_wiped(buf, have);
                return -1;
            }
            memcpy(bigger, buf, have);
            input_free_wiped(buf, have);
            buf = bigger;
            cap *= 2;
        }
        ssize_t n = read(STDIN_FILENO, buf + have, cap - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            input_free_wiped(buf, have);
            errno = e;
            return -1;
        }
        if (n == 0)
            break;
        have += (size_t)n;
    }
    *out = buf;
    *len = have;
    return 0;
}

/* The duties the leader watch tells of a change of leadership. */
struct duties {
    struct backup_duty *backups;
    struct monitoring_duty *monitoring;
    struct metrics_server *metrics;
};

static void on_leadership(bool leader, void *ctx)
{
    struct duties *d = ctx;
    backup_duty_leader(d->backups, leader);
    monitoring_duty_leader(d->monitoring, leader);
}

/* The backups created citus_init's tables: the monitoring role's grants follow them. */
static void on_tables_created(void *ctx)
{
    struct duties *d = ctx;
    monitoring_duty_tables_created(d->monitoring);
}

static void on_certificates_checked(void *ctx)
{
    struct duties *d = ctx;
    metrics_refresh_certificates(d->metrics);
}

/* AGENT_RESTARTS from PID 1's entries (never from the environment); 0 when absent. */
static unsigned long restarts_from(const char *input, size_t len)
{
    const char *text = agent_input_value(input, len, "AGENT_RESTARTS");
    return text ? strtoul(text, NULL, 10) : 0;
}

static void on_stop_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)revents;
    log_info("agent stopping", "signal", sigabbrev_np(w->signum), NULL);
    ev_break(loop, EVBREAK_ALL);
}

int agent_main(void)
{
    log_set_component("citus-init-agent");
    /* A stop that arrives while we start is handled once the loop runs, not by default. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigprocmask(SIG_BLOCK, &stop, NULL);
    struct timespec started;
    clock_gettime(CLOCK_REALTIME, &started);
    if (isatty(STDIN_FILENO)) {
        log_error("agent: stdin is a terminal; expected the passwords from citus-init (PID 1), "
                  "which starts the agent itself", NULL);
        return 64;
    }
    char *input = NULL;
    size_t len = 0;
    if (read_stdin(&input, &len) < 0) {
        log_error("agent: cannot read the passwords on stdin", "error", strerror(errno), NULL);
        return 70;
    }
    struct agent_env env = {input, len};
    pid_t patroni = 0;
    const char *pid_text = agent_input_value(input, len, "PATRONI_PID");
    if (pid_text)
        patroni = (pid_t)strtol(pid_text, NULL, 10);
    unsigned long restarts = restarts_from(input, len);
    struct config cfg;
    struct diag d;
    diag_init(&d);
    int rc = config_load_agent(&cfg, agent_lookup, &env, &d);
    input_free_wiped(input, len);
    unsigned long errors = log_diag(&d);
    diag_free(&d);
    if (rc < 0 || errors) {
        log_error("agent: configuration invalid", NULL);
        config_free(&cfg);
        return 78;
    }
    log_setup(cfg.log_format, cfg.log_level);

    /* The default loop: the backup workers are watched with ev_child (backup.h). */
    struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
    if (!loop) {
        log_error("agent: cannot create the event loop", NULL);
        config_free(&cfg);
        return 70;
    }
    signal(SIGPIPE, SIG_IGN);
    ev_signal stop_term, stop_int;
    ev_signal_init(&stop_term, on_stop_signal, SIGTERM);
    ev_signal_init(&stop_int, on_stop_signal, SIGINT);
    ev_signal_start(loop, &stop_term);
    ev_signal_start(loop, &stop_int);
    sigprocmask(SIG_UNBLOCK, &stop, NULL);

    struct duties duties = {0};
    /* first, so a scrape is answered while the rest starts */
    duties.metrics = metrics_start(&cfg, restarts, started.tv_sec + started.tv_nsec / 1e9);
    struct leader_watch *watch = leader_watch_start(loop, &cfg);
    struct cert_watch *certs = watch ? cert_watch_start(loop, &cfg, patroni) : NULL;
    cert_watch_notify(certs, on_certificates_checked, &duties);
    duties.backups = watch ? backup_duty_start(loop, &cfg) : NULL;
    backup_duty_notify_tables(duties.backups, on_tables_created, &duties);
    duties.monitoring = watch ? monitoring_duty_start(loop, &cfg) : NULL;
    if (duties.backups || duties.monitoring)
        leader_watch_notify(watch, on_leadership, &duties);
    if (!watch) {
        rc = 70;
    } else {
        log_info("agent started", "certificate_rotation", certs ? "watching" : "off", "backups",
                 duties.backups ? "on" : "off", "metrics", duties.metrics ? "on" : "off",
                 "monitoring_role", cfg.monitoring_role ? cfg.monitoring_role : "off", NULL);
        ev_run(loop, 0);
        leader_watch_stop(watch);
        monitoring_duty_stop(duties.monitoring);
        backup_duty_stop(duties.backups);
        cert_watch_stop(certs);
        rc = 0;
    }
    metrics_stop(duties.metrics);
    ev_loop_destroy(loop);
    config_free(&cfg);
    return rc;
}
