/* supervise.c: spawn one command (and the agent beside it), forward signals, reap
 * everything, restart the agent, escalate on a deadline, exit with the command's status.
 * See include/pid1/supervise.h for the contract. */
#include "supervise.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ev.h>

#include "log.h"
#include "xalloc.h"

extern char **environ;

static const int forwarded_signals[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
#define N_FORWARDED (sizeof forwarded_signals / sizeof forwarded_signals[0])

/* Repeat interval of the final SIGKILL: catches processes forked while we were killing. */
#define KILL_REPEAT 0.2

struct supervisor {
    struct ev_loop *loop;
    const struct supervise_opts *o;
    pid_t child;
    bool child_exited;
    bool done; /* main child and every other descendant reaped */
    int exit_status;
    bool term_seen;
    bool quit_sent, kill_sent;
    ev_tstamp quit_at, kill_at; /* 0: not scheduled */
    ev_signal forward[N_FORWARDED];
    ev_signal sigchld;
    ev_timer quit_timer, kill_timer;

    /* the agent */
    pid_t agent;             /* 0: not running */
    ev_tstamp agent_started;
    unsigned agent_quick;    /* ends in a row that came before SUPERVISE_AGENT_STABLE */
    unsigned agent_restarts; /* in all */
    bool agent_stopping;     /* shutting down: never started again */
    bool term_pending;       /* the main child's TERM waits for the agent to stop */
    ev_timer agent_restart_timer, agent_stop_timer;
};

double supervise_agent_backoff(unsigned quick)
{
    double delay = SUPERVISE_AGENT_BACKOFF_MIN;
    for (unsigned i = 0; i < quick && delay < SUPERVISE_AGENT_BACKOFF_MAX; i++)
        delay *= 2;
    return delay < SUPERVISE_AGENT_BACKOFF_MAX ? delay : SUPERVISE_AGENT_BACKOFF_MAX;
}

int supervise_exit_status(int wstatus)
{
    if (WIFEXITED(wstatus))
        return WEXITSTATUS(wstatus);
    if (WIFSIGNALED(wstatus))
        return 128 + WTERMSIG(wstatus);
    return 1; /* stopped/continued never reach here: we do not ask for them */
}

void supervise_block_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    for (size_t i = 0; i < N_FORWARDED; i++)
        sigaddset(&set, forwarded_signals[i]);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, NULL);
}

static const char *signal_name(int sig)
{
    const char *n = sigabbrev_np(sig);
    return n ? n : "unknown";
}

/* Parent of pid from /proc/PID/stat (field 4, after the command name in parentheses,
 * which may itself contain spaces and parentheses). -1 when the process is gone. */
static pid_t parent_of(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *end = strrchr(buf, ')');
    int ppid;
    char state;
    if (!end || sscanf(end + 1, " %c %d", &state, &ppid) != 2)
        return -1;
    return ppid;
}

static bool is_descendant(pid_t pid)
{
    pid_t self = getpid();
    for (int depth = 0; depth < 256 && pid > 1; depth++) {
        pid_t parent = parent_of(pid);
        if (parent == self)
            return true;
        pid = parent;
    }
    return false;
}

/* Signal every descendant. As PID 1 of a namespace that is everyone else: kill(-1) does it
 * atomically. Otherwise (subreaper) walk /proc. */
static void signal_descendants(int sig)
{
    if (getpid() == 1) {
        if (kill(-1, sig) < 0 && errno != ESRCH)
            log_warn("cannot signal remaining processes", "signal", signal_name(sig),
                     "error", strerror(errno), NULL);
        return;
    }
    DIR *proc = opendir("/proc");
    if (!proc) {
        log_warn("cannot list processes", "path", "/proc", "error", strerror(errno), NULL);
        return;
    }
    struct dirent *e;
    while ((e = readdir(proc))) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 1 || pid == getpid())
            continue;
        if (is_descendant((pid_t)pid))
            kill((pid_t)pid, sig);
    }
    closedir(proc);
}

/* The postmaster's pid from the first line of PGDATA/postmaster.pid, when it is one of our
 * descendants (a stale file may name an unrelated process). 0 when unknown. */
static pid_t find_postmaster(const char *pgdata)
{
    if (!pgdata)
        return 0;
    char path[4096];
    if (snprintf(path, sizeof path, "%s/postmaster.pid", pgdata) >= (int)sizeof path)
        return 0;
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    long pid = 0;
    if (fscanf(f, "%ld", &pid) != 1)
        pid = 0;
    fclose(f);
    if (pid <= 1 || pid == getpid() || !is_descendant((pid_t)pid))
        return 0;
    return (pid_t)pid;
}

static void send_quit(struct supervisor *s)
{
    s->quit_sent = true;
    pid_t pm = find_postmaster(s->o->pgdata);
    if (pm > 0) {
        char pidbuf[16];
        snprintf(pidbuf, sizeof pidbuf, "%d", (int)pm);
        log_warn("asking PostgreSQL for an immediate shutdown", "signal", "QUIT", "pid", pidbuf,
                 NULL);
        kill(pm, SIGQUIT);
    } else {
        log_warn("sending QUIT to remaining processes", NULL);
        signal_descendants(SIGQUIT);
    }
}

static void on_quit_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)revents;
    struct supervisor *s = w->data;
    if (!s->kill_sent)
        send_quit(s);
}

static void on_kill_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)revents;
    struct supervisor *s = w->data;
    if (!s->kill_sent)
        log_warn("killing remaining processes", "signal", "KILL", NULL);
    s->kill_sent = true;
    if (!s->child_exited)
        kill(s->child, SIGKILL);
    signal_descendants(SIGKILL);
}

/* Bring the escalation forward: QUIT in quit_in seconds, KILL in kill_in seconds, unless
 * already scheduled earlier. */
static void schedule_escalation(struct supervisor *s, double quit_in, double kill_in)
{
    ev_tstamp now = ev_now(s->loop);
    if (quit_in < 0)
        quit_in = 0;
    if (kill_in < 0)
        kill_in = 0;
    if (!s->quit_sent && (s->quit_at == 0 || now + quit_in < s->quit_at)) {
        s->quit_at = now + quit_in;
        ev_timer_stop(s->loop, &s->quit_timer);
        ev_timer_set(&s->quit_timer, quit_in, 0.);
        ev_timer_start(s->loop, &s->quit_timer);
    }
    if (!s->kill_sent && (s->kill_at == 0 || now + kill_in < s->kill_at)) {
        s->kill_at = now + kill_in;
        ev_timer_stop(s->loop, &s->kill_timer);
        ev_timer_set(&s->kill_timer, kill_in, KILL_REPEAT);
        ev_timer_start(s->loop, &s->kill_timer);
    }
}

static void forward(struct supervisor *s, int sig)
{
    if (!s->child_exited) {
        char pidbuf[16];
        snprintf(pidbuf, sizeof pidbuf, "%d", (int)s->child);
        log_info("signal forwarded", "signal", signal_name(sig), "pid", pidbuf, NULL);
        kill(s->child, sig);
    } else {
        log_info("signal received while the rest shuts down", "signal", signal_name(sig), NULL);
    }
}

/* No more agent starts; TERM to a running one. Returns whether one was running. */
static bool agent_stop(struct supervisor *s)
{
    s->agent_stopping = true;
    ev_timer_stop(s->loop, &s->agent_restart_timer);
    if (!s->agent)
        return false;
    char pidbuf[16];
    snprintf(pidbuf, sizeof pidbuf, "%d", (int)s->agent);
    log_info("stopping the agent", "pid", pidbuf, NULL);
    kill(s->agent, SIGTERM);
    return true;
}

/* The agent is gone (or did not stop in time): the held TERM goes to the main child. */
static void release_term(struct supervisor *s)
{
    if (!s->term_pending)
        return;
    s->term_pending = false;
    ev_timer_stop(s->loop, &s->agent_stop_timer);
    forward(s, SIGTERM);
}

static void on_agent_stop_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)revents;
    struct supervisor *s = w->data;
    if (s->agent) {
        char pidbuf[16];
        snprintf(pidbuf, sizeof pidbuf, "%d", (int)s->agent);
        log_warn("the agent did not stop in time", "pid", pidbuf, "signal", "KILL", NULL);
        kill(s->agent, SIGKILL);
    }
    release_term(s);
}

static void on_forwarded_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop, (void)revents;
    struct supervisor *s = w->data;
    int sig = w->signum;
    if (sig == SIGTERM && !s->term_seen) {
        s->term_seen = true;
        schedule_escalation(s, s->o->shutdown_deadline, s->o->grace_period - 1);
        if (agent_stop(s) && !s->child_exited) {
            s->term_pending = true; /* forwarded once the agent is gone */
            ev_timer_set(&s->agent_stop_timer, SUPERVISE_AGENT_STOP_TIMEOUT, 0.);
            ev_timer_start(s->loop, &s->agent_stop_timer);
            return;
        }
    }
    if (sig == SIGTERM && s->term_pending)
        return; /* a second TERM while the first one waits */
    forward(s, sig);
}

static void main_child_exited(struct supervisor *s, int wstatus)
{
    char pidbuf[16], codebuf[16];
    snprintf(pidbuf, sizeof pidbuf, "%d", (int)s->child);
    s->child_exited = true;
    s->exit_status = supervise_exit_status(wstatus);
    snprintf(codebuf, sizeof codebuf, "%d", s->exit_status);
    if (WIFSIGNALED(wstatus))
        log_info("child exited", "pid", pidbuf, "signal", signal_name(WTERMSIG(wstatus)),
                 "exit_status", codebuf, NULL);
    else
        log_info("child exited", "pid", pidbuf, "exit_status", codebuf, NULL);
    agent_stop(s);
    s->term_pending = false;
    ev_timer_stop(s->loop, &s->agent_stop_timer);
    schedule_escalation(s, s->o->drain_timeout, s->o->drain_timeout + 1);
}

static pid_t spawn(char *const *argv, char *const *envp, const struct supervise_agent *agent,
                   int *exec_errno);

static void agent_start(struct supervisor *s)
{
    const struct supervise_agent *a = s->o->agent;
    struct supervise_agent with_extra = *a;
    char *input = NULL;
    if (a->main_pid_name || a->restarts_name) {
        char entries[192];
        int n = 0;
        if (a->main_pid_name)
            n += snprintf(entries, sizeof entries, "%s=%d", a->main_pid_name, (int)s->child) + 1;
        if (a->restarts_name)
            n += snprintf(entries + n, sizeof entries - (size_t)n, "%s=%u", a->restarts_name,
                          s->agent_restarts) + 1;
        input = xmalloc(a->input_len + (size_t)n);
        memcpy(input, a->input, a->input_len);
        memcpy(input + a->input_len, entries, (size_t)n);
        with_extra.input = input;
        with_extra.input_len = a->input_len + (size_t)n;
    }
    int exec_errno;
    pid_t pid = spawn(a->argv, a->envp, &with_extra, &exec_errno);
    if (input) {
        explicit_bzero(input, with_extra.input_len);
        free(input);
    }
    if (pid < 0) {
        log_error("cannot start the agent", "command", a->argv[0], "error",
                  strerror(exec_errno), NULL);
        s->agent_started = ev_now(s->loop);
        ev_timer_set(&s->agent_restart_timer,
                     supervise_agent_backoff(s->agent_quick++), 0.);
        ev_timer_start(s->loop, &s->agent_restart_timer);
        return;
    }
    s->agent = pid;
    s->agent_started = ev_now(s->loop);
    char pidbuf[16];
    snprintf(pidbuf, sizeof pidbuf, "%d", (int)pid);
    if (exec_errno)
        log_error("the agent cannot be executed", "pid", pidbuf, "command", a->argv[0],
                  "error", strerror(exec_errno), NULL);
    else
        log_info("agent started", "pid", pidbuf, NULL);
}

static void on_agent_restart_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)revents;
    struct supervisor *s = w->data;
    if (!s->agent_stopping && !s->agent)
        agent_start(s);
}

static void agent_exited(struct supervisor *s, int wstatus)
{
    char pidbuf[16], codebuf[16], ranbuf[32], inbuf[32], countbuf[16];
    snprintf(pidbuf, sizeof pidbuf, "%d", (int)s->agent);
    snprintf(codebuf, sizeof codebuf, "%d", supervise_exit_status(wstatus));
    const char *sig = WIFSIGNALED(wstatus) ? signal_name(WTERMSIG(wstatus)) : "none";
    s->agent = 0;
    if (s->agent_stopping) {
        log_info("agent stopped", "pid", pidbuf, "signal", sig, "exit_status", codebuf, NULL);
        release_term(s);
        return;
    }
    ev_now_update(s->loop);
    double ran = ev_now(s->loop) - s->agent_started;
    if (ran >= SUPERVISE_AGENT_STABLE)
        s->agent_quick = 0;
    double delay = supervise_agent_backoff(s->agent_quick++);
    s->agent_restarts++;
    snprintf(ranbuf, sizeof ranbuf, "%.1f", ran);
    snprintf(inbuf, sizeof inbuf, "%.1f", delay);
    snprintf(countbuf, sizeof countbuf, "%u", s->agent_restarts);
    log_warn("agent ended; starting it again", "pid", pidbuf, "signal", sig, "exit_status",
             codebuf, "ran_s", ranbuf, "restart_in_s", inbuf, "restarts", countbuf, NULL);
    ev_timer_set(&s->agent_restart_timer, delay, 0.);
    ev_timer_start(s->loop, &s->agent_restart_timer);
}

static void reap(struct supervisor *s)
{
    for (;;) {
        int wstatus;
        pid_t pid = waitpid(-1, &wstatus, WNOHANG);
        if (pid > 0) {
            if (pid == s->child && !s->child_exited) {
                main_child_exited(s, wstatus);
            } else if (pid == s->agent) {
                agent_exited(s, wstatus);
            } else {
                char pidbuf[16], codebuf[16];
                snprintf(pidbuf, sizeof pidbuf, "%d", (int)pid);
                snprintf(codebuf, sizeof codebuf, "%d", supervise_exit_status(wstatus));
                log_debug("process reaped", "pid", pidbuf, "exit_status", codebuf, NULL);
            }
            continue;
        }
        if (pid < 0 && errno == EINTR)
            continue;
        if (pid < 0 && errno == ECHILD && s->child_exited) {
            s->done = true; /* nobody left */
            ev_break(s->loop, EVBREAK_ALL);
        }
        return;
    }
}

static void on_sigchld(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop, (void)revents;
    reap(w->data);
}

/* fork + exec with default signal dispositions and an empty mask in the child. An exec
 * failure travels back as errno over a close-on-exec pipe: EOF means exec succeeded.
 * Returns the pid (also when exec failed: the child then exits 127/126 and is reaped like
 * any other), *exec_errno 0 or the failure. */
static pid_t spawn(char *const *argv, char *const *envp, const struct supervise_agent *agent,
                   int *exec_errno)
{
    int fds[2], in[2] = {-1, -1};
    *exec_errno = 0;
    if (pipe2(fds, O_CLOEXEC) < 0) {
        *exec_errno = errno;
        return -1;
    }
    if (agent && pipe2(in, O_CLOEXEC) < 0) {
        *exec_errno = errno;
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    pid_t parent = getpid();
    sigset_t all, saved;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &saved); /* no handler of ours may run in the child */
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        for (int sig = 1; sig < NSIG; sig++)
            sigaction(sig, &dfl, NULL); /* fails harmlessly for KILL, STOP, and gaps */
        sigset_t none;
        sigemptyset(&none);
        if (agent) { /* it unblocks them once its handlers are in place */
            sigaddset(&none, SIGTERM);
            sigaddset(&none, SIGINT);
        }
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (agent) {
            /* dup2 clears close-on-exec on the copy */
            if (dup2(in[0], STDIN_FILENO) < 0 || prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 ||
                getppid() != parent)
                _exit(70);
            execve(argv[0], argv, envp ? envp : environ);
        } else {
            execvpe(argv[0], argv, envp ? envp : environ);
        }
        int e = errno;
        ssize_t ignored = write(fds[1], &e, sizeof e);
        (void)ignored;
        _exit(e == ENOENT || e == ENOTDIR ? 127 : 126);
    }
    int fork_errno = errno;
    sigprocmask(SIG_SETMASK, &saved, NULL);
    close(fds[1]);
    if (agent) {
        close(in[0]);
        if (pid > 0 && agent->input_len) { /* fits the pipe's buffer: never blocks */
            ssize_t n = write(in[1], agent->input, agent->input_len);
            if (n != (ssize_t)agent->input_len)
                log_warn("cannot hand the agent its input", "error",
                         n < 0 ? strerror(errno) : "short write", NULL);
        }
        close(in[1]);
    }
    if (pid < 0) {
        close(fds[0]);
        *exec_errno = fork_errno;
        return -1;
    }
    int e;
    ssize_t n;
    do
        n = read(fds[0], &e, sizeof e);
    while (n < 0 && errno == EINTR);
    close(fds[0]);
    if (n == (ssize_t)sizeof e)
        *exec_errno = e;
    return pid;
}

int supervise_run(const struct supervise_opts *o)
{
    struct supervisor s;
    memset(&s, 0, sizeof s);
    s.o = o;

    supervise_block_signals();
    /* We write logs to stderr and must survive its reader going away; job-control signals
     * must not stop PID 1. The child gets default dispositions back. */
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTTIN, SIG_IGN);
    signal(SIGTTOU, SIG_IGN);
    if (getpid() != 1 && prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
        log_warn("cannot become a subreaper: orphans will not be reaped here", "error",
                 strerror(errno), NULL);

    s.loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
    if (!s.loop) {
        log_error("cannot create the event loop", NULL);
        return 70;
    }
    for (size_t i = 0; i < N_FORWARDED; i++) {
        ev_signal_init(&s.forward[i], on_forwarded_signal, forwarded_signals[i]);
        s.forward[i].data = &s;
        ev_signal_start(s.loop, &s.forward[i]);
    }
    ev_signal_init(&s.sigchld, on_sigchld, SIGCHLD);
    s.sigchld.data = &s;
    ev_signal_start(s.loop, &s.sigchld);
    ev_init(&s.quit_timer, on_quit_timer);
    s.quit_timer.data = &s;
    ev_init(&s.kill_timer, on_kill_timer);
    s.kill_timer.data = &s;

    int exec_errno;
    ev_init(&s.agent_restart_timer, on_agent_restart_timer);
    s.agent_restart_timer.data = &s;
    ev_init(&s.agent_stop_timer, on_agent_stop_timer);
    s.agent_stop_timer.data = &s;

    s.child = spawn(o->argv, o->envp, NULL, &exec_errno);
    if (s.child < 0) {
        log_error("cannot start the command", "command", o->argv[0], "error",
                  strerror(exec_errno), NULL);
        ev_loop_destroy(s.loop);
        return 70;
    }
    /* Handlers are in place: signals that arrived while blocked are delivered now. */
    sigset_t set;
    sigemptyset(&set);
    for (size_t i = 0; i < N_FORWARDED; i++)
        sigaddset(&set, forwarded_signals[i]);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_UNBLOCK, &set, NULL);

    char pidbuf[16];
    snprintf(pidbuf, sizeof pidbuf, "%d", (int)s.child);
    if (exec_errno == ENOENT || exec_errno == ENOTDIR) {
        log_error("command not found", "command", o->argv[0], "error", strerror(exec_errno),
                  NULL);
    } else if (exec_errno) {
        log_error("command cannot be executed", "command", o->argv[0], "error",
                  strerror(exec_errno), NULL);
    } else {
        log_info("child started", "pid", pidbuf, "command", o->argv[0], NULL);
        if (o->agent)
            agent_start(&s);
    }

    reap(&s); /* the child may already be gone (exec failure, or very short-lived) */
    if (!s.done)
        ev_run(s.loop, 0);

    char codebuf[16];
    snprintf(codebuf, sizeof codebuf, "%d", s.exit_status);
    log_info("supervision finished", "exit_status", codebuf, NULL);
    ev_loop_destroy(s.loop);
    return s.exit_status;
}
