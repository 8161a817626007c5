/* monitoring.c: run monitoring-role.sql on the group's primary (monitoring.h).
 *
 * Non-blocking libpq (PQconnectStartParams/PQconnectPoll, PQsendQuery/PQconsumeInput on an
 * ev_io), like the extensions' runner: the file is one simple-query message of a few
 * statements, and a server behind a lock must not hold the agent's loop. */
#include "monitoring.h"

#include <ev.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup.h" /* backup_pq_error */
#include "extensions.h"
#include "fsprep.h"
#include "log.h"
#include "xalloc.h"

/* One attempt (connect and the file) that takes longer than this is abandoned and retried. */
#define ATTEMPT_TIMEOUT_S 60.0
/* log_min_error_statement: an expected failure (no citus yet) does not copy the whole file
 * into PostgreSQL's log each time; the agent logs the error itself. */
#define SESSION_OPTIONS "-c lock_timeout=10s -c statement_timeout=30s " \
    "-c log_min_error_statement=panic"
/* With Citus, first of the same message: Patroni creates the database and then the citus
 * extension after the bootstrap, while it already reports a running primary. Run before
 * citus exists, the file would skip the grant on citus_remote_connection_stats() and the
 * role would not reach the workers; the error makes it a failed attempt, tried again. A
 * multi-statement message runs as one transaction: nothing of the file is left half done. */
#define CITUS_FIRST "DO $citus_init$ BEGIN IF NOT EXISTS (SELECT FROM pg_catalog.pg_extension " \
    "WHERE extname = 'citus') THEN RAISE EXCEPTION 'the citus extension is not created yet'; " \
    "END IF; END $citus_init$;\n"

enum step { STEP_IDLE, STEP_CONNECTING, STEP_SENDING, STEP_READING };

struct monitoring_duty {
    struct ev_loop *loop;
    const struct config *cfg;
    char *sql;              /* what is sent: the file, with Citus after CITUS_FIRST */
    bool leader;
    bool ready_logged;      /* "monitoring role ready" said in this leadership */
    bool again;             /* asked to run again while a run was under way */
    int failures;           /* failed attempts in this leadership */
    double delay;           /* next retry delay */
    enum step step;
    PGconn *conn;
    char *error;            /* the first failed statement's message */
    ev_io io;
    ev_timer retry_timer;
    ev_timer attempt_timer;
};

static void start_attempt(struct monitoring_duty *m);

static void close_conn(struct monitoring_duty *m)
{
    ev_io_stop(m->loop, &m->io);
    ev_timer_stop(m->loop, &m->attempt_timer);
    if (m->conn)
        PQfinish(m->conn);
    m->conn = NULL;
    m->step = STEP_IDLE;
}

static void attempt_done(struct monitoring_duty *m, const char *error)
{
    close_conn(m);
    if (!m->leader)
        return;
    if (!error) {
        if (!m->ready_logged)
            log_info("monitoring role ready", "role", m->cfg->monitoring_role, "database",
                     m->cfg->citus_database, NULL);
        else
            log_debug("monitoring role checked again", "role", m->cfg->monitoring_role, NULL);
        m->ready_logged = true;
        m->failures = 0;
        m->delay = MONITORING_RETRY_FIRST_S;
        if (m->again) {
            m->again = false;
            start_attempt(m);
        }
        return;
    }
    m->again = false; /* the retry runs the whole file anyway */
    m->failures++;
    char attempts[16], in[32];
    snprintf(attempts, sizeof attempts, "%d", m->failures);
    if (m->failures >= m->cfg->extensions_max_attempts) {
        log_warn("monitoring role not ready; giving up until the next leadership", "role",
                 m->cfg->monitoring_role, "attempts", attempts, "error", error, NULL);
        return;
    }
    snprintf(in, sizeof in, "%.1f", m->delay);
    log_warn("monitoring role not ready; trying again", "role", m->cfg->monitoring_role,
             "attempts", attempts, "retry_in_s", in, "error", error, NULL);
    ev_timer_set(&m->retry_timer, m->delay, 0.);
    ev_timer_start(m->loop, &m->retry_timer);
    double max = m->cfg->extensions_retry_delay > MONITORING_RETRY_FIRST_S
                     ? m->cfg->extensions_retry_delay
                     : MONITORING_RETRY_FIRST_S;
    m->delay = m->delay * 2 < max ? m->delay * 2 : max;
}

static void fail_conn(struct monitoring_duty *m)
{
    char err[512];
    backup_pq_error(m->conn, NULL, err, sizeof err);
    attempt_done(m, err);
}

static void watch(struct monitoring_duty *m, int events)
{
    ev_io_stop(m->loop, &m->io);
    ev_io_set(&m->io, PQsocket(m->conn), events);
    ev_io_start(m->loop, &m->io);
}

/* Read what arrived; once every result is in, the attempt is done. */
static void read_results(struct monitoring_duty *m)
{
    if (!PQconsumeInput(m->conn)) {
        fail_conn(m);
        return;
    }
    while (!PQisBusy(m->conn)) {
        PGresult *res = PQgetResult(m->conn);
        if (!res) {
            char *e = m->error;
            m->error = NULL;
            attempt_done(m, e);
            free(e);
            return;
        }
        ExecStatusType st = PQresultStatus(res);
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY &&
            !m->error) {
            char err[512];
            backup_pq_error(m->conn, res, err, sizeof err);
            m->error = xstrdup(err);
        }
        PQclear(res);
    }
}

static void on_io(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop, (void)revents;
    struct monitoring_duty *m = io->data;
    if (m->step == STEP_CONNECTING) {
        switch (PQconnectPoll(m->conn)) {
        case PGRES_POLLING_READING:
            watch(m, EV_READ);
            return;
        case PGRES_POLLING_WRITING:
            watch(m, EV_WRITE);
            return;
        case PGRES_POLLING_OK:
            break;
        default:
            fail_conn(m);
            return;
        }
        PQsetnonblocking(m->conn, 1);
        if (!PQsendQuery(m->conn, m->sql)) {
            fail_conn(m);
            return;
        }
        m->step = STEP_SENDING;
    }
    if (m->step == STEP_SENDING) {
        int f = PQflush(m->conn);
        if (f < 0) {
            fail_conn(m);
            return;
        }
        if (f == 1) {
            watch(m, EV_READ | EV_WRITE); /* libpq reads while it waits to write */
            if (revents & EV_READ && !PQconsumeInput(m->conn))
                fail_conn(m);
            return;
        }
        m->step = STEP_READING;
        watch(m, EV_READ);
        return;
    }
    read_results(m);
}

static void on_attempt_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop, (void)revents;
    attempt_done(t->data, "no answer from the local PostgreSQL within 60 s");
}

static void start_attempt(struct monitoring_duty *m)
{
    if (m->step != STEP_IDLE) {
        m->again = true;
        return;
    }
    ev_timer_stop(m->loop, &m->retry_timer);
    free(m->error);
    m->error = NULL;
    struct conn_params p;
    superuser_conn_params(m->cfg, false, m->cfg->citus_database, "citus-init monitoring role",
                          SESSION_OPTIONS, NULL, &p);
    m->conn = PQconnectStartParams(p.keys, p.vals, 0);
    if (!m->conn || PQstatus(m->conn) == CONNECTION_BAD) {
        m->step = STEP_CONNECTING;
        if (m->conn)
            fail_conn(m);
        else
            attempt_done(m, "out of memory");
        return;
    }
    m->step = STEP_CONNECTING;
    ev_timer_set(&m->attempt_timer, ATTEMPT_TIMEOUT_S, 0.);
    ev_timer_start(m->loop, &m->attempt_timer);
    watch(m, EV_WRITE); /* PQconnectStartParams: as if PGRES_POLLING_WRITING */
}

static void on_retry(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop, (void)revents;
    struct monitoring_duty *m = t->data;
    if (m->leader)
        start_attempt(m);
}

struct monitoring_duty *monitoring_duty_start(struct ev_loop *loop, const struct config *cfg)
{
    if (!cfg->monitoring_role)
        return NULL;
    struct monitoring_duty *m = calloc(1, sizeof *m);
    if (!m)
        abort();
    m->loop = loop;
    m->cfg = cfg;
    m->delay = MONITORING_RETRY_FIRST_S;
    m->sql = xasprintf("%s%s", cfg->citus_enabled ? CITUS_FIRST : "", monitoring_role_sql);
    ev_init(&m->io, on_io);
    m->io.data = m;
    ev_timer_init(&m->retry_timer, on_retry, 0., 0.);
    m->retry_timer.data = m;
    ev_timer_init(&m->attempt_timer, on_attempt_timeout, 0., 0.);
    m->attempt_timer.data = m;
    return m;
}

void monitoring_duty_leader(struct monitoring_duty *m, bool leader)
{
    if (!m || leader == m->leader)
        return;
    m->leader = leader;
    m->ready_logged = false;
    m->failures = 0;
    m->again = false;
    m->delay = MONITORING_RETRY_FIRST_S;
    ev_timer_stop(m->loop, &m->retry_timer);
    close_conn(m);
    if (leader)
        start_attempt(m);
}

void monitoring_duty_tables_created(struct monitoring_duty *m)
{
    if (m && m->leader && !ev_is_active(&m->retry_timer) &&
        m->failures < m->cfg->extensions_max_attempts)
        start_attempt(m);
}

void monitoring_duty_stop(struct monitoring_duty *m)
{
    if (!m)
        return;
    ev_timer_stop(m->loop, &m->retry_timer);
    close_conn(m);
    free(m->error);
    free(m->sql);
    free(m);
}
