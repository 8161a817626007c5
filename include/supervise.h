/* supervise.h: the PID-1 duties around one command, on one libev loop.
 * Needs no configuration: `citus-init supervise -- CMD` fills the options from a handful of
 * variables, the pod lifecycle from struct config.
 *
 * - TERM, INT, HUP, QUIT, USR1, USR2 are forwarded to the main child only (it keeps our
 *   process group and session: Patroni must see forwarded signals only, never a group kill).
 * - Every child is reaped (waitpid(-1, WNOHANG) until nothing is left), also orphans
 *   re-parented to us such as the postmaster. When not PID 1, PR_SET_CHILD_SUBREAPER makes
 *   orphans come to us anyway.
 * - After the main child exits, the remaining processes get up to drain_timeout seconds to
 *   finish (a postmaster completing its shutdown), then the postmaster (or, when none is
 *   known, every remaining descendant) gets SIGQUIT and one second later everything left
 *   gets SIGKILL.
 * - After the first TERM: when shutdown_deadline seconds pass, SIGQUIT to the postmaster (or
 *   every descendant); one second before grace_period ends, SIGKILL to everything left.
 * - The exit status is the main child's code, or 128+signal; 127 when the command is not
 *   found, 126 when it cannot be executed (the reason is logged with the command's name).
 * The child is never restarted. */
#ifndef CITUS_INIT_SUPERVISE_H
#define CITUS_INIT_SUPERVISE_H

struct ev_loop;

/* Upper bound for drain_timeout as main computes it: min(SHUTDOWN_DEADLINE, this). */
#define SUPERVISE_DRAIN_MAX 10

struct supervise_opts {
    char *const *argv;     /* command and arguments, argv[0] looked up in PATH */
    char *const *envp;     /* the child's environment; NULL: our own */
    int shutdown_deadline; /* seconds after the first TERM until SIGQUIT to the postmaster */
    int grace_period;      /* seconds after the first TERM until the end; KILL at grace - 1 */
    int drain_timeout;     /* seconds the rest get after the main child exited */
    const char *pgdata;    /* finds the postmaster via PGDATA/postmaster.pid; NULL: unknown */
    /* Called once the child runs, e.g. to start the leader watch on the same loop. */
    void (*on_loop_ready)(struct ev_loop *loop, void *ctx);
    /* Called once when the main child has exited (stop whatever on_loop_ready started). */
    void (*on_child_exit)(struct ev_loop *loop, void *ctx);
    void *ctx;
};

/* Signals forwarded to the main child. Callers block them early (supervise_block_signals)
 * so a TERM that arrives while the pod is still being prepared is forwarded, not lost. */
void supervise_block_signals(void);

/* Runs until the main child and every other descendant are gone; returns the exit status. */
int supervise_run(const struct supervise_opts *o);

/* Exit status for a wait(2) status: the code, or 128+signal. Pure, for tests. */
int supervise_exit_status(int wstatus);

#endif
