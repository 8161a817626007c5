/* extensions.c: one non-blocking runner that creates the configured extensions.
 *
 * Why non-blocking libpq rather than short blocking steps: the runner shares the agent's loop
 * with the leader watch, and CREATE EXTENSION postgis alone takes about a second, longer
 * still on a busy node or behind a lock. A blocking call would hold back the watch (and the
 * agent's stop on TERM) for that long. PQconnectStartParams/PQconnectPoll and PQsendQueryParams/PQconsumeInput on an ev_io keep
 * every step off the loop's critical path, and the Job mode reuses the very same machine on a
 * private loop, so there is one implementation to test. */
#include "extensions.h"
#include "xalloc.h"

#include <errno.h>
#include <ev.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Where the pod's PostgreSQL puts its Unix socket (docs/citus-init.md, Files). */
#define LOCAL_SOCKET_DIR "/var/run/postgresql"
/* A TCP connect that neither succeeds nor fails in this time counts as a transient failure. */
#define CONNECT_TIMEOUT_S 10.0
/* Session settings: never wait forever behind a lock (a lock timeout is retried), and bound
 * every statement so a stuck server cannot hold a run forever. */
#define SESSION_OPTIONS "-c lock_timeout=10s -c statement_timeout=300s"
#define SUGGESTIONS 3

enum ext_outcome { OUT_PENDING, OUT_CREATED, OUT_PRESENT, OUT_UNKNOWN, OUT_FAILED };

struct ext_item {
    char *name;
    char *schema;
    enum ext_outcome outcome;
    char *version;
    char *error;           /* permanent failure text */
    double started;        /* ev_now when work on it began in the current attempt */
    long duration_ms;
};

enum run_state {
    ST_IDLE,       /* waiting for the retry timer */
    ST_CONNECTING,
    ST_RECOVERY,   /* SELECT pg_is_in_recovery(), citus present? */
    ST_CHECK,      /* installed version / available? */
    ST_SCHEMA,     /* CREATE SCHEMA IF NOT EXISTS */
    ST_CREATE,     /* CREATE EXTENSION IF NOT EXISTS */
    ST_VERSION,    /* installed version after CREATE */
    ST_SUGGEST,    /* names from pg_available_extensions for an unknown one */
    ST_DB_LOOKUP,  /* without Citus: does CITUS_DATABASE exist? (connected to "postgres") */
    ST_DB_CREATE,  /* CREATE DATABASE */
    ST_ROLE,       /* the application role (APP_USERNAME), before the extensions */
};

struct ext_run {
    struct ev_loop *loop;
    const struct config *cfg;
    struct ext_run_options opts;
    ext_run_done_fn done;
    void *ctx;

    struct ext_item *items;
    size_t count;
    size_t current;

    enum run_state state;
    PGconn *conn;
    ev_io io;
    ev_timer timer;          /* retry delay, or connect timeout */
    int attempt;             /* 1-based, counts connections/attempts */
    bool connected_once;     /* for the give-up message: unreachable, or reachable but not ready */
    bool database_ready;     /* CITUS_DATABASE known to exist (or not ours to create) */
    double next_delay;
    int failures;            /* failed attempts that count against max_attempts */
    double started_at;       /* ev_now when the run began: bounds the expected waits */
    char *last_error;        /* last transient error, for the give-up message */
    char where[300];         /* "local socket /var/run/postgresql" or "coordinator h:p" */
};

/* ------------------------------------------------------------------ helpers */

/* libpq messages end with a newline and may span lines (one per address tried): make them
 * one log-friendly line. */
static char *one_line(const char *msg)
{
    char *s = xstrdup(msg && *msg ? msg : "unknown error");
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
        s[--n] = '\0';
    char *out = s;
    for (const char *p = s; *p; p++) {
        if (*p == '\n' || *p == '\t') {
            *out++ = ' ';
            while (p[1] == ' ' || p[1] == '\t' || p[1] == '\n')
                p++;
        } else {
            *out++ = *p;
        }
    }
    *out = '\0';
    return s;
}

bool extensions_error_transient(const char *sqlstate)
{
    if (!sqlstate || !*sqlstate)
        return true; /* no SQLSTATE: connection-level trouble */
    static const char *const transient[] = {
        "57P03", /* cannot_connect_now: starting up, shutting down */
        "57P01", /* admin_shutdown */
        "57P02", /* crash_shutdown */
        "55P03", /* lock_not_available: lock_timeout */
        "57014", /* query_canceled: statement_timeout */
        "40001", /* serialization_failure */
        "40P01", /* deadlock_detected */
        "25006", /* read_only_sql_transaction: still in recovery */
        "3D000", /* invalid_catalog_name: Patroni creates the database after promotion */
        "23505", /* unique_violation: another session created the same extension meanwhile */
        "53300", /* too_many_connections */
        "53400", /* configuration_limit_exceeded */
        "XX000", /* internal error raised while a concurrent CREATE races us */
    };
    if (strncmp(sqlstate, "08", 2) == 0) /* connection exceptions */
        return true;
    for (size_t i = 0; i < sizeof transient / sizeof *transient; i++)
        if (strcmp(sqlstate, transient[i]) == 0)
            return true;
    return false;
}

size_t extensions_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t *row = calloc(lb + 1, sizeof *row);
    if (!row)
        abort();
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t best = diag + cost;
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    size_t d = row[lb];
    free(row);
    return d;
}

size_t extensions_closest(const char *name, const char *const *candidates, size_t n,
                          const char **out, size_t k)
{
    size_t found = 0;
    size_t dist[16];
    if (k > 16)
        k = 16;
    for (size_t i = 0; i < n; i++) {
        size_t d = extensions_edit_distance(name, candidates[i]);
        /* A name containing the wanted one (postgis -> postgis_raster) is a good hint too. */
        if (strstr(candidates[i], name) && d > 1)
            d = d / 2;
        size_t pos = found;
        while (pos > 0 && (dist[pos - 1] > d ||
                           (dist[pos - 1] == d && strcmp(out[pos - 1], candidates[i]) > 0)))
            pos--;
        if (pos >= k)
            continue;
        size_t last = found < k ? found : k - 1;
        for (size_t j = last; j > pos; j--) {
            out[j] = out[j - 1];
            dist[j] = dist[j - 1];
        }
        out[pos] = candidates[i];
        dist[pos] = d;
        if (found < k)
            found++;
    }
    return found;
}

static const char *outcome_name(enum ext_outcome o)
{
    switch (o) {
    case OUT_CREATED: return "created";
    case OUT_PRESENT: return "already-present";
    case OUT_UNKNOWN: return "failed";
    case OUT_FAILED: return "failed";
    case OUT_PENDING: break;
    }
    return "not-done";
}

/* ------------------------------------------------------------------ the machine */

static void on_io(struct ev_loop *loop, ev_io *io, int revents);
static void on_timer(struct ev_loop *loop, ev_timer *t, int revents);
static void start_attempt(struct ext_run *r);
static void next_item(struct ext_run *r);

static void close_conn(struct ext_run *r)
{
    ev_io_stop(r->loop, &r->io);
    ev_timer_stop(r->loop, &r->timer);
    if (r->conn) {
        PQfinish(r->conn);
        r->conn = NULL;
    }
}

static void watch_socket(struct ext_run *r, int events)
{
    ev_io_stop(r->loop, &r->io);
    int fd = PQsocket(r->conn);
    if (fd < 0)
        return;
    ev_io_set(&r->io, fd, events);
    ev_io_start(r->loop, &r->io);
}

/* PostgreSQL's NOTICEs (e.g. "installing required extension") go to our log, not raw to
 * stderr where they would break the one-line-per-event format. */
static void on_notice(void *arg, const char *message)
{
    (void)arg;
    char *line = one_line(message);
    log_debug("postgres notice", "message", line, NULL);
    free(line);
}

static void print_summary(const struct ext_run *r)
{
    for (size_t i = 0; i < r->count; i++) {
        const struct ext_item *it = &r->items[i];
        printf("%-24s %-16s version=%s%s%s\n", it->name, outcome_name(it->outcome),
               it->version ? it->version : "-", it->error ? " error=" : "",
               it->error ? it->error : "");
    }
    fflush(stdout);
}

static void finish(struct ext_run *r, enum ext_run_result result)
{
    close_conn(r);
    size_t created = 0, present = 0, failed = 0;
    for (size_t i = 0; i < r->count; i++) {
        switch (r->items[i].outcome) {
        case OUT_CREATED: created++; break;
        case OUT_PRESENT: present++; break;
        default: failed++; break;
        }
    }
    char sc[24], sp[24], sf[24], sa[24];
    snprintf(sc, sizeof sc, "%zu", created);
    snprintf(sp, sizeof sp, "%zu", present);
    snprintf(sf, sizeof sf, "%zu", failed);
    snprintf(sa, sizeof sa, "%d", r->attempt);
    if (result == EXT_RUN_ALL_PRESENT)
        log_info("extensions ready", "created", sc, "already_present", sp, "attempts", sa, NULL);
    else if (result == EXT_RUN_SOME_FAILED)
        log_error("some extensions could not be created", "created", sc, "already_present", sp,
                  "failed", sf, NULL);
    else
        log_error("extensions: giving up", "target", r->where, "attempts", sa, "last_error",
                  r->last_error ? r->last_error : "-", NULL);
    if (r->opts.print_summary)
        print_summary(r);
    r->state = ST_IDLE;
    if (r->done)
        r->done(result, r->ctx);
}

/* States a new primary passes through on its way up, which end by themselves within
 * seconds: the server still starting or in recovery, the database or citus not created yet
 * (Patroni's post_bootstrap creates them right after the first promotion). */
static bool expected_wait(const struct ext_run *r, const char *msg)
{
    if (strstr(msg, "the database system is starting up") ||
        strstr(msg, "the database system is not yet accepting connections"))
        return true;
    /* FATAL: database "citus" does not exist, on our own socket: post_bootstrap's CREATE
     * DATABASE has not run yet. */
    return r->opts.target == EXT_TARGET_LOCAL_SOCKET && strstr(msg, "database \"") &&
           strstr(msg, "\" does not exist");
}

/* A failure worth retrying: close, and try again after a delay, or give up. Expected waits
 * (expected_wait, or `expected` from the caller) are retried every first_retry seconds,
 * without growing and without counting as attempts, for as long as the run's budget
 * (max_attempts x retry_delay) lasts: a fresh coordinator is served the moment it can be.
 * Anything else backs off (doubling up to retry_delay) and counts against max_attempts. */
static void retry_after_failure(struct ext_run *r, const char *what, bool expected)
{
    char *msg = one_line(what);
    bool repeated = r->last_error && strcmp(r->last_error, msg) == 0;
    expected = expected || expected_wait(r, msg);
    free(r->last_error);
    r->last_error = msg;
    close_conn(r);
    double budget = r->opts.max_attempts * r->opts.retry_delay;
    if (expected ? ev_now(r->loop) - r->started_at >= budget
                 : ++r->failures >= r->opts.max_attempts) {
        finish(r, EXT_RUN_GAVE_UP);
        return;
    }
    double delay = r->next_delay;
    if (expected)
        delay = r->opts.first_retry > 0 && r->opts.first_retry < r->opts.retry_delay
                    ? r->opts.first_retry
                    : r->opts.retry_delay;
    char sa[24], sd[32];
    snprintf(sa, sizeof sa, "%d", r->attempt);
    snprintf(sd, sizeof sd, "%.0f", delay * 1000);
    /* Starting servers refuse connections many times in a row: say it once, then quietly. */
    if (repeated)
        log_debug("extensions: not ready, will retry", "target", r->where, "attempt", sa,
                  "retry_in_ms", sd, "error", msg, NULL);
    else
        log_info("extensions: not ready, will retry", "target", r->where, "attempt", sa,
                 "retry_in_ms", sd, "error", msg, NULL);
    r->state = ST_IDLE;
    ev_timer_set(&r->timer, delay, 0.);
    ev_timer_start(r->loop, &r->timer);
    if (expected)
        return;
    r->next_delay *= 2;
    if (r->next_delay > r->opts.retry_delay)
        r->next_delay = r->opts.retry_delay;
}

static void transient_failure(struct ext_run *r, const char *what)
{
    retry_after_failure(r, what, false);
}

static bool send_query(struct ext_run *r, const char *sql, const char *param)
{
    const char *params[1] = {param};
    int ok = param ? PQsendQueryParams(r->conn, sql, 1, NULL, params, NULL, NULL, 0)
                   : PQsendQuery(r->conn, sql);
    if (!ok) {
        transient_failure(r, PQerrorMessage(r->conn));
        return false;
    }
    /* Flush what fits; wait for writability too while output is pending. */
    int f = PQflush(r->conn);
    if (f < 0) {
        transient_failure(r, PQerrorMessage(r->conn));
        return false;
    }
    watch_socket(r, f == 1 ? EV_READ | EV_WRITE : EV_READ);
    return true;
}

static void item_failed(struct ext_run *r, struct ext_item *it, enum ext_outcome o, char *error)
{
    it->outcome = o;
    it->error = error;
    it->duration_ms = (long)((ev_now(r->loop) - it->started) * 1000);
    char sd[24];
    snprintf(sd, sizeof sd, "%ld", it->duration_ms);
    log_error("extension failed", "extension", it->name, "outcome", "failed", "error", error,
              "duration_ms", sd, NULL);
    r->current++;
    next_item(r);
}

static void item_done(struct ext_run *r, struct ext_item *it, enum ext_outcome o,
                      const char *version)
{
    it->outcome = o;
    free(it->version);
    it->version = xstrdup(version);
    it->duration_ms = (long)((ev_now(r->loop) - it->started) * 1000);
    char sd[24];
    snprintf(sd, sizeof sd, "%ld", it->duration_ms);
    log_info(o == OUT_CREATED ? "extension created" : "extension already present", "extension",
             it->name, "outcome", outcome_name(o), "version", version ? version : "-",
             "schema", it->schema ? it->schema : "-", "duration_ms", sd, NULL);
    r->current++;
    next_item(r);
}

/* Build "CREATE EXTENSION IF NOT EXISTS <name> [SCHEMA <schema>] CASCADE" with libpq's
 * identifier quoting (the names are validated at configuration time already; quoting keeps
 * this safe regardless). */
static char *quoted(PGconn *conn, const char *ident)
{
    char *q = PQescapeIdentifier(conn, ident, strlen(ident));
    if (!q)
        return NULL;
    char *copy = xstrdup(q);
    PQfreemem(q);
    return copy;
}

static void next_item(struct ext_run *r)
{
    ev_io_stop(r->loop, &r->io);
    while (r->current < r->count && r->items[r->current].outcome != OUT_PENDING)
        r->current++;
    if (r->current >= r->count) {
        bool any_failed = false;
        for (size_t i = 0; i < r->count; i++)
            if (r->items[i].outcome == OUT_UNKNOWN || r->items[i].outcome == OUT_FAILED)
                any_failed = true;
        finish(r, any_failed ? EXT_RUN_SOME_FAILED : EXT_RUN_ALL_PRESENT);
        return;
    }
    struct ext_item *it = &r->items[r->current];
    it->started = ev_now(r->loop);
    r->state = ST_CHECK;
    send_query(r,
               "SELECT (SELECT extversion FROM pg_catalog.pg_extension WHERE extname = $1), "
               "EXISTS (SELECT 1 FROM pg_catalog.pg_available_extensions WHERE name = $1)",
               it->name);
}

static void send_create(struct ext_run *r, struct ext_item *it)
{
    char *qname = quoted(r->conn, it->name);
    char *qschema = it->schema ? quoted(r->conn, it->schema) : NULL;
    if (!qname || (it->schema && !qschema)) {
        free(qname);
        free(qschema);
        transient_failure(r, PQerrorMessage(r->conn));
        return;
    }
    char *sql;
    if (r->state == ST_CHECK && qschema) {
        r->state = ST_SCHEMA;
        sql = xasprintf("CREATE SCHEMA IF NOT EXISTS %s", qschema);
    } else {
        r->state = ST_CREATE;
        sql = qschema ? xasprintf("CREATE EXTENSION IF NOT EXISTS %s SCHEMA %s CASCADE", qname, qschema)
                      : xasprintf("CREATE EXTENSION IF NOT EXISTS %s CASCADE", qname);
    }
    send_query(r, sql, NULL);
    free(sql);
    free(qname);
    free(qschema);
}

char *conninfo_quoted(const char *key, const char *value)
{
    size_t n = strlen(key) + 3 + 2 * strlen(value) + 1;
    char *out = xmalloc(n), *p = out;
    p += sprintf(p, "%s='", key);
    for (const char *v = value; *v; v++) {
        if (*v == '\\' || *v == '\'')
            *p++ = '\\';
        *p++ = *v;
    }
    *p++ = '\'';
    *p = '\0';
    return out;
}

/* The application role: created when missing, its password set (a SCRAM verifier computed
 * here, so the password itself never reaches the server's logs), CONNECT/CREATE/TEMPORARY on
 * the database and USAGE/CREATE on its public schema granted. With Citus the coordinator
 * propagates each statement to the workers. One DO block: one result, all or nothing.
 * Only in the pod (the local socket): the Job has no role to keep. Returns whether it sent. */
static bool send_app_role(struct ext_run *r)
{
    const struct config *cfg = r->cfg;
    if (r->opts.target != EXT_TARGET_LOCAL_SOCKET || !cfg->app_username || !cfg->app_password)
        return false;
    char *verifier = PQencryptPasswordConn(r->conn, cfg->app_password, cfg->app_username,
                                           "scram-sha-256");
    char *user = verifier ? PQescapeLiteral(r->conn, cfg->app_username,
                                            strlen(cfg->app_username)) : NULL;
    char *secret = verifier ? PQescapeLiteral(r->conn, verifier, strlen(verifier)) : NULL;
    /* With Citus the coordinator opens the app's connections to the workers as the app:
     * pg_dist_authinfo (node 0: every node; superuser-only, synced to the workers) gives
     * them its password, as a libpq conninfo value. */
    char *authinfo = cfg->citus_enabled ? conninfo_quoted("password", cfg->app_password) : NULL;
    char *authinfo_lit = authinfo ? PQescapeLiteral(r->conn, authinfo, strlen(authinfo)) : NULL;
    if (authinfo) {
        explicit_bzero(authinfo, strlen(authinfo));
        free(authinfo);
    }
    if (!verifier || !user || !secret || (cfg->citus_enabled && !authinfo_lit)) {
        char *msg = one_line(PQerrorMessage(r->conn));
        log_error("the application role's password could not be prepared", "role",
                  cfg->app_username, "error", msg, NULL);
        free(msg);
        if (verifier) {
            explicit_bzero(verifier, strlen(verifier));
            PQfreemem(verifier);
        }
        PQfreemem(user);
        PQfreemem(secret);
        PQfreemem(authinfo_lit);
        return false;
    }
    char *citus = authinfo_lit
        ? xasprintf("INSERT INTO pg_catalog.pg_dist_authinfo (nodeid, rolename, authinfo) "
                    "VALUES (0, %s, %s) ON CONFLICT (nodeid, rolename) DO UPDATE "
                    "SET authinfo = EXCLUDED.authinfo; ", user, authinfo_lit)
        : xstrdup("");
    char *sql = xasprintf(
        "DO $citus_init$ BEGIN "
        "IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s) THEN "
        "EXECUTE format('CREATE ROLE %%I LOGIN', %s); END IF; "
        "EXECUTE format('ALTER ROLE %%I WITH LOGIN PASSWORD %%L', %s, %s); "
        "EXECUTE format('GRANT CONNECT, CREATE, TEMPORARY ON DATABASE %%I TO %%I', "
        "current_database(), %s); "
        "EXECUTE format('GRANT USAGE, CREATE ON SCHEMA public TO %%I', %s); "
        "%s"
        "END $citus_init$",
        user, user, user, secret, user, user, citus);
    explicit_bzero(citus, strlen(citus));
    free(citus);
    if (authinfo_lit) {
        explicit_bzero(authinfo_lit, strlen(authinfo_lit));
        PQfreemem(authinfo_lit);
    }
    explicit_bzero(verifier, strlen(verifier));
    PQfreemem(verifier);
    explicit_bzero(secret, strlen(secret));
    PQfreemem(secret);
    PQfreemem(user);
    r->state = ST_ROLE;
    send_query(r, sql, NULL);
    explicit_bzero(sql, strlen(sql));
    free(sql);
    return true;
}

/* Without Citus nobody else creates CITUS_DATABASE (Patroni does only in Citus mode): the
 * leader creates it, connected to the maintenance database, then reconnects to it. */
static void send_create_database(struct ext_run *r)
{
    char *qdb = quoted(r->conn, r->cfg->citus_database);
    if (!qdb) {
        transient_failure(r, PQerrorMessage(r->conn));
        return;
    }
    char *sql = xasprintf("CREATE DATABASE %s", qdb);
    r->state = ST_DB_CREATE;
    send_query(r, sql, NULL);
    free(sql);
    free(qdb);
}

static void database_known(struct ext_run *r)
{
    r->database_ready = true;
    close_conn(r);
    r->attempt--; /* the lookup was a step of this attempt, not an attempt of its own */
    start_attempt(r);
}

/* The server answered one statement: move the machine on. */
static void handle_result(struct ext_run *r, PGresult *res)
{
    ExecStatusType st = PQresultStatus(res);
    struct ext_item *it = r->current < r->count ? &r->items[r->current] : NULL;
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        const char *sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        char *msg = one_line(PQresultErrorMessage(res));
        bool run_level = !it || r->state == ST_RECOVERY || r->state == ST_DB_LOOKUP ||
                         r->state == ST_DB_CREATE;
        if (r->state == ST_ROLE && !extensions_error_transient(sqlstate)) {
            /* a permanent refusal: say why, and still create the extensions */
            log_error("the application role could not be created", "role",
                      r->cfg->app_username, "error", msg, NULL);
            free(msg);
            r->current = 0;
            next_item(r);
            return;
        }
        if (run_level || extensions_error_transient(sqlstate)) {
            transient_failure(r, msg);
            free(msg);
        } else {
            item_failed(r, it, OUT_FAILED, msg);
        }
        return;
    }
    switch (r->state) {
    case ST_RECOVERY:
        if (strcmp(PQgetvalue(res, 0, 0), "t") == 0) {
            retry_after_failure(r, "server is still in recovery (promotion not finished)", true);
            return;
        }
        /* Citus propagates only extensions created after itself (and records them for
         * workers added later): on a new coordinator, let Patroni create citus first. */
        if (r->cfg->citus_enabled && strcmp(PQgetvalue(res, 0, 1), "t") != 0) {
            retry_after_failure(r, "the citus extension does not exist yet (Patroni creates "
                                   "it after the first promotion)", true);
            return;
        }
        if (!send_app_role(r)) {
            r->current = 0;
            next_item(r);
        }
        return;
    case ST_ROLE:
        log_info("application role ready", "role", r->cfg->app_username, "database",
                 r->cfg->citus_database, NULL);
        r->current = 0;
        next_item(r);
        return;
    case ST_CHECK:
        if (!PQgetisnull(res, 0, 0)) {
            item_done(r, it, OUT_PRESENT, PQgetvalue(res, 0, 0));
        } else if (strcmp(PQgetvalue(res, 0, 1), "t") != 0) {
            r->state = ST_SUGGEST;
            send_query(r, "SELECT name FROM pg_catalog.pg_available_extensions", NULL);
        } else {
            send_create(r, it);
        }
        return;
    case ST_SCHEMA:
        send_create(r, it);
        return;
    case ST_CREATE:
        r->state = ST_VERSION;
        send_query(r, "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = $1",
                   it->name);
        return;
    case ST_VERSION:
        item_done(r, it, OUT_CREATED, PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : NULL);
        return;
    case ST_SUGGEST: {
        int n = PQntuples(res);
        const char **names = calloc((size_t)n + 1, sizeof *names);
        if (!names)
            abort();
        for (int i = 0; i < n; i++)
            names[i] = PQgetvalue(res, i, 0);
        const char *best[SUGGESTIONS];
        size_t k = extensions_closest(it->name, names, (size_t)n, best, SUGGESTIONS);
        char hint[512] = "";
        size_t used = 0;
        for (size_t i = 0; i < k && used < sizeof hint; i++)
            used += (size_t)snprintf(hint + used, sizeof hint - used, "%s%s", i ? ", " : "",
                                     best[i]);
        free(names);
        char *msg = k ? xasprintf("extension \"%s\" is not available on this server; closest "
                                "available: %s",
                                it->name, hint)
                      : xasprintf("extension \"%s\" is not available on this server", it->name);
        item_failed(r, it, OUT_UNKNOWN, msg);
        return;
    }
    case ST_DB_LOOKUP:
        if (strcmp(PQgetvalue(res, 0, 0), "t") == 0) {
            retry_after_failure(r, "server is still in recovery (promotion not finished)", true);
            return;
        }
        if (strcmp(PQgetvalue(res, 0, 1), "t") == 0) {
            database_known(r);
            return;
        }
        send_create_database(r);
        return;
    case ST_DB_CREATE:
        log_info("database created", "database", r->cfg->citus_database, NULL);
        database_known(r);
        return;
    case ST_IDLE:
    case ST_CONNECTING:
        break;
    }
}

static void poll_connect(struct ext_run *r)
{
    switch (PQconnectPoll(r->conn)) {
    case PGRES_POLLING_READING:
        watch_socket(r, EV_READ);
        return;
    case PGRES_POLLING_WRITING:
        watch_socket(r, EV_WRITE);
        return;
    case PGRES_POLLING_FAILED:
        transient_failure(r, PQerrorMessage(r->conn));
        return;
    case PGRES_POLLING_OK:
        break;
    default:
        return;
    }
    ev_timer_stop(r->loop, &r->timer);
    r->connected_once = true;
    PQsetnonblocking(r->conn, 1);
    PQsetNoticeProcessor(r->conn, on_notice, r);
    char sa[24];
    snprintf(sa, sizeof sa, "%d", r->attempt);
    log_debug("extensions: connected", "target", r->where, "attempt", sa, NULL);
    if (!r->database_ready) {
        r->state = ST_DB_LOOKUP;
        send_query(r,
                   "SELECT pg_catalog.pg_is_in_recovery(), "
                   "EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1)",
                   r->cfg->citus_database);
        return;
    }
    r->state = ST_RECOVERY;
    send_query(r,
               "SELECT pg_catalog.pg_is_in_recovery(), "
               "EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'citus')",
               NULL);
}

static void on_io(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    struct ext_run *r = io->data;
    if (r->state == ST_CONNECTING) {
        poll_connect(r);
        return;
    }
    if (revents & EV_WRITE) {
        int f = PQflush(r->conn);
        if (f < 0) {
            transient_failure(r, PQerrorMessage(r->conn));
            return;
        }
        if (f == 0)
            watch_socket(r, EV_READ);
    }
    if (!(revents & EV_READ))
        return;
    if (!PQconsumeInput(r->conn)) {
        transient_failure(r, PQerrorMessage(r->conn));
        return;
    }
    if (PQisBusy(r->conn))
        return;
    /* One statement per query: keep the first result (an error wins) and drain the rest. */
    PGresult *res = PQgetResult(r->conn), *extra;
    while ((extra = PQgetResult(r->conn)) != NULL)
        PQclear(extra);
    if (!res) {
        transient_failure(r, "server sent no result");
        return;
    }
    handle_result(r, res);
    PQclear(res);
}

static void on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    struct ext_run *r = t->data;
    if (r->state == ST_CONNECTING)
        transient_failure(r, "timed out while connecting");
    else if (r->state == ST_IDLE)
        start_attempt(r);
}

void superuser_conn_params(const struct config *cfg, bool tcp, const char *dbname,
                           const char *application, const char *options,
                           const char *connect_timeout, struct conn_params *p)
{
    int n = 0;
#define PARAM(k, v) (p->keys[n] = (k), p->vals[n] = (v), n++)
    if (!tcp) {
        PARAM("host", LOCAL_SOCKET_DIR);
    } else {
        PARAM("host", cfg->coordinator_host);
        if (cfg->ssl_enabled) {
            PARAM("sslmode", ssl_mode_name(cfg->ssl_mode));
            if (cfg->ssl_mode == SSL_MODE_VERIFY_CA || cfg->ssl_mode == SSL_MODE_VERIFY_FULL) {
                snprintf(p->rootcert, sizeof p->rootcert, "%s/ca.crt", cfg->ssl_cert_dir);
                PARAM("sslrootcert", p->rootcert);
            }
        }
    }
    snprintf(p->port, sizeof p->port, "%d", cfg->pg_port);
    PARAM("port", p->port);
    PARAM("user", cfg->superuser_username);
    /* peer authentication on the socket ignores it; the server only asks when needed */
    if (cfg->superuser_password && *cfg->superuser_password)
        PARAM("password", cfg->superuser_password);
    PARAM("dbname", dbname);
    PARAM("application_name", application);
    PARAM("options", options);
    if (connect_timeout)
        PARAM("connect_timeout", connect_timeout);
#undef PARAM
    p->keys[n] = p->vals[n] = NULL;
}

static void start_attempt(struct ext_run *r)
{
    const struct config *cfg = r->cfg;
    struct conn_params p;
    superuser_conn_params(cfg, r->opts.target != EXT_TARGET_LOCAL_SOCKET,
                          r->database_ready ? cfg->citus_database : "postgres", "citus-init",
                          SESSION_OPTIONS, NULL, &p);
    r->attempt++;
    r->state = ST_CONNECTING;
    r->conn = PQconnectStartParams(p.keys, p.vals, 0);
    if (!r->conn)
        abort(); /* out of memory */
    if (PQstatus(r->conn) == CONNECTION_BAD) {
        transient_failure(r, PQerrorMessage(r->conn));
        return;
    }
    ev_timer_set(&r->timer, CONNECT_TIMEOUT_S, 0.);
    ev_timer_start(r->loop, &r->timer);
    poll_connect(r);
}

struct ext_run *extensions_run_start(struct ev_loop *loop, const struct config *cfg,
                                     const struct extension_list *list,
                                     const struct ext_run_options *opts, ext_run_done_fn done,
                                     void *ctx)
{
    struct ext_run *r = calloc(1, sizeof *r);
    if (!r)
        abort();
    r->loop = loop;
    r->cfg = cfg;
    r->opts = *opts;
    if (r->opts.max_attempts < 1)
        r->opts.max_attempts = 1;
    if (r->opts.retry_delay < 0.1) /* EXTENSIONS_RETRY_DELAY=0: retry at once, but not spin */
        r->opts.retry_delay = 0.1;
    r->next_delay = r->opts.first_retry > 0 && r->opts.first_retry < r->opts.retry_delay
                        ? r->opts.first_retry
                        : r->opts.retry_delay;
    r->done = done;
    r->ctx = ctx;
    r->started_at = ev_now(loop);
    /* With Citus, Patroni creates the database; the Job only ever uses it. */
    r->database_ready = opts->target != EXT_TARGET_LOCAL_SOCKET || cfg->citus_enabled;
    r->count = list->count;
    r->items = calloc(list->count ? list->count : 1, sizeof *r->items);
    if (!r->items)
        abort();
    for (size_t i = 0; i < list->count; i++) {
        r->items[i].name = xstrdup(list->items[i].name);
        r->items[i].schema = xstrdup(list->items[i].schema);
    }
    if (opts->target == EXT_TARGET_LOCAL_SOCKET)
        snprintf(r->where, sizeof r->where, "local socket %s", LOCAL_SOCKET_DIR);
    else
        snprintf(r->where, sizeof r->where, "coordinator %s:%d",
                 cfg->coordinator_host ? cfg->coordinator_host : "?", cfg->pg_port);
    ev_io_init(&r->io, on_io, -1, EV_READ);
    r->io.data = r;
    ev_timer_init(&r->timer, on_timer, 0., 0.);
    r->timer.data = r;
    start_attempt(r);
    return r;
}

static void run_free(struct ext_run *r)
{
    close_conn(r);
    for (size_t i = 0; i < r->count; i++) {
        free(r->items[i].name);
        free(r->items[i].schema);
        free(r->items[i].version);
        free(r->items[i].error);
    }
    free(r->items);
    free(r->last_error);
    free(r);
}

void extensions_run_cancel(struct ext_run *run)
{
    if (run)
        run_free(run);
}

/* ------------------------------------------------------------------ Job mode */

struct oneshot {
    enum ext_run_result result;
    bool ended;
    int signal;
    ev_signal sig_term, sig_int;
};

static void oneshot_done(enum ext_run_result result, void *ctx)
{
    struct oneshot *o = ctx;
    o->result = result;
    o->ended = true;
}

static void oneshot_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)revents;
    struct oneshot *o = w->data;
    o->signal = w->signum;
    ev_break(loop, EVBREAK_ALL);
}

int extensions_oneshot(const struct config *cfg)
{
    if (!cfg->coordinator_host || !*cfg->coordinator_host) {
        log_error("extensions --wait needs COORDINATOR_HOST (the coordinator service name)", NULL);
        return 1;
    }
    if (cfg->extensions.count == 0) {
        log_info("no extensions configured (EXTENSIONS, EXTENSIONS_FILE): nothing to do", NULL);
        return 0;
    }
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    if (!loop) {
        log_error("extensions --wait: cannot create an event loop", NULL);
        return 1;
    }
    struct oneshot o = {.result = EXT_RUN_CANCELLED};
    /* As a Job's PID 1 nothing else would end us on TERM/INT. */
    ev_signal_init(&o.sig_term, oneshot_signal, SIGTERM);
    ev_signal_init(&o.sig_int, oneshot_signal, SIGINT);
    o.sig_term.data = o.sig_int.data = &o;
    ev_signal_start(loop, &o.sig_term);
    ev_signal_start(loop, &o.sig_int);
    ev_unref(loop);
    ev_unref(loop); /* the signal watchers alone must not keep ev_run going */

    struct ext_run_options opts = {
        .target = EXT_TARGET_COORDINATOR,
        .max_attempts = cfg->extensions_max_attempts,
        .retry_delay = cfg->extensions_retry_delay,
        .first_retry = cfg->extensions_retry_delay,
        .print_summary = true,
    };
    char sa[24];
    snprintf(sa, sizeof sa, "%d", cfg->extensions_max_attempts);
    log_info("waiting for the coordinator", "host", cfg->coordinator_host, "database",
             cfg->citus_database, "max_attempts", sa, NULL);
    struct ext_run *run = extensions_run_start(loop, cfg, &cfg->extensions, &opts, oneshot_done, &o);
    ev_run(loop, 0);

    int status;
    if (!o.ended) {
        char ss[16];
        snprintf(ss, sizeof ss, "%d", o.signal);
        log_warn("extensions --wait interrupted", "signal", ss, NULL);
        status = 128 + o.signal;
    } else if (o.result == EXT_RUN_ALL_PRESENT) {
        status = 0;
    } else if (o.result == EXT_RUN_GAVE_UP) {
        fprintf(stderr, "error: coordinator %s:%d %s after %d attempts in %.0f s (last error: "
                "%s)\n",
                cfg->coordinator_host, cfg->pg_port,
                run->connected_once ? "not ready" : "not reachable", run->attempt,
                ev_now(loop) - run->started_at, run->last_error ? run->last_error : "-");
        status = 1;
    } else {
        fprintf(stderr, "error: some extensions could not be created (see above)\n");
        status = 1;
    }
    ev_ref(loop);
    ev_ref(loop);
    ev_signal_stop(loop, &o.sig_term);
    ev_signal_stop(loop, &o.sig_int);
    run_free(run);
    ev_loop_destroy(loop);
    return status;
}
