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
 * The main child is never restarted.
 *
 * With an agent (citus-init agent, agent.h) a second child runs beside the main one:
 * - started right after the main child, with TERM and INT blocked (it unblocks them once it
 *   handles them, so a stop during its start is never lost); its stdin is a pipe holding
 *   `input`, then EOF;
 *   PR_SET_PDEATHSIG makes it end with us when we are not PID 1;
 * - each start's input may carry the main child's PID and the restart count (entries
 *   main_pid_name and restarts_name), so the agent can export how often it was restarted;
 * - whenever it ends (any exit, any signal) the reason is logged and it is started again
 *   after a backoff: SUPERVISE_AGENT_BACKOFF_MIN seconds, doubled after each start that did
 *   not last SUPERVISE_AGENT_STABLE seconds, at most SUPERVISE_AGENT_BACKOFF_MAX. The main
 *   child never notices;
 * - on the first TERM the agent is stopped first (TERM, KILL after
 *   SUPERVISE_AGENT_STOP_TIMEOUT seconds), then TERM goes to the main child; the deadlines
 *   count from the TERM's arrival. When the main child exits the agent gets TERM and is not
 *   started again. Other signals go to the main child only. */
#ifndef CITUS_INIT_SUPERVISE_H
#define CITUS_INIT_SUPERVISE_H

#include <stddef.h>

/* Upper bound for drain_timeout as main computes it: min(SHUTDOWN_DEADLINE, this). */
#define SUPERVISE_DRAIN_MAX 10

#define SUPERVISE_AGENT_BACKOFF_MIN 0.2
#define SUPERVISE_AGENT_BACKOFF_MAX 30.0
#define SUPERVISE_AGENT_STABLE 60.0
#define SUPERVISE_AGENT_STOP_TIMEOUT 1.0

struct supervise_agent {
    char *const *argv;    /* argv[0] is a path (no PATH look-up) */
    char *const *envp;    /* NULL: our own */
    const char *input;    /* written to its stdin at every start (may hold NUL bytes) */
    size_t input_len;     /* at most 64 KiB (a pipe's buffer: the write never blocks) */
    /* When not NULL, NAME=<the main child's PID> is added to the input (an entry like the
     * others: NUL-terminated). */
    const char *main_pid_name;
    /* When not NULL, NAME=<restarts so far> is added too: how many times the agent was
     * started again since supervise_run began (0 for the first start). */
    const char *restarts_name;
};

struct supervise_opts {
    char *const *argv;     /* command and arguments, argv[0] looked up in PATH */
    char *const *envp;     /* the child's environment; NULL: our own */
    int shutdown_deadline; /* seconds after the first TERM until SIGQUIT to the postmaster */
    int grace_period;      /* seconds after the first TERM until the end; KILL at grace - 1 */
    int drain_timeout;     /* seconds the rest get after the main child exited */
    const char *pgdata;    /* finds the postmaster via PGDATA/postmaster.pid; NULL: unknown */
    const struct supervise_agent *agent; /* NULL: no agent */
};

/* The agent's restart delay after `quick` ends in a row that each came before
 * SUPERVISE_AGENT_STABLE seconds (0: the first). Pure, for tests. */
double supervise_agent_backoff(unsigned quick);

/* Signals forwarded to the main child. Callers block them early (supervise_block_signals)
 * so a TERM that arrives while the pod is still being prepared is forwarded, not lost. */
void supervise_block_signals(void);

/* Runs until the main child and every other descendant are gone; returns the exit status. */
int supervise_run(const struct supervise_opts *o);

/* Exit status for a wait(2) status: the code, or 128+signal. Pure, for tests. */
int supervise_exit_status(int wstatus);

#endif
