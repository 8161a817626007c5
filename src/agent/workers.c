/* workers.c: rebalance, drain-group and remove-group (workers.h). */
#include "workers.h"

#include <limits.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backup.h"
#include "extensions.h"
#include "log.h"

/* No statement of ours waits long for a lock; a move itself runs in Citus' background. */
#define SESSION_OPTIONS "-c lock_timeout=10s -c statement_timeout=300s"

/* Placements of distributed tables (reference tables, repmodel 't', have a copy on every
 * node and are dropped with the node) on a group. */
#define PLACEMENTS_SQL                                                                         \
    "SELECT count(*)::text FROM pg_catalog.pg_dist_placement pl "                              \
    "JOIN pg_catalog.pg_dist_shard s USING (shardid) "                                         \
    "JOIN pg_catalog.pg_dist_partition p USING (logicalrelid) "                                \
    "WHERE pl.groupid = ANY ($1::int[]) AND p.repmodel <> 't'"
/* Tables with placements on the group that logical replication cannot move: no replica
 * identity (NOTHING, DEFAULT without a primary key, INDEX without that index). */
#define NO_IDENTITY_SQL                                                                        \
    "SELECT string_agg(DISTINCT p.logicalrelid::regclass::text, ', ') "                        \
    "FROM pg_catalog.pg_dist_placement pl JOIN pg_catalog.pg_dist_shard s USING (shardid) "    \
    "JOIN pg_catalog.pg_dist_partition p USING (logicalrelid) "                                \
    "JOIN pg_catalog.pg_class c ON c.oid = p.logicalrelid "                                    \
    "WHERE pl.groupid = ANY ($1::int[]) AND p.repmodel <> 't' AND (c.relreplident = 'n' OR "           \
    "(c.relreplident = 'd' AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index i "               \
    "WHERE i.indrelid = c.oid AND i.indisprimary)) OR (c.relreplident = 'i' AND NOT EXISTS "   \
    "(SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid AND i.indisreplident)))"
/* Nodes outside the groups that take shards. */
#define TARGETS_SQL                                                                            \
    "SELECT count(*)::text FROM pg_catalog.pg_dist_node WHERE groupid <> ALL ($1::int[]) AND " \
    "noderole = 'primary' AND isactive AND shouldhaveshards"
#define GROUP_NODES_SQL                                                                        \
    "SELECT nodename, nodeport::text, noderole::text, nodeid::text, groupid::text "            \
    "FROM pg_catalog.pg_dist_node WHERE groupid = ANY ($1::int[]) "                            \
    "ORDER BY groupid DESC, noderole = 'primary', nodeid"
/* The worker groups in pg_dist_node that are not in $1, highest first. */
#define ABSENT_GROUPS_SQL                                                                      \
    "SELECT coalesce(string_agg(groupid::text, ',' ORDER BY groupid DESC), '') FROM "          \
    "(SELECT DISTINCT groupid FROM pg_catalog.pg_dist_node WHERE groupid <> 0 AND "            \
    "groupid <> ALL ($1::int[])) g"
/* Those of the groups in $1 without an active primary in pg_dist_node. */
#define MISSING_GROUPS_SQL                                                                     \
    "SELECT coalesce(string_agg(g::text, ',' ORDER BY g), '') FROM unnest($1::int[]) g "       \
    "WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_node n WHERE n.groupid = g AND "       \
    "n.noderole = 'primary' AND n.isactive)"
/* false when the coordinator cannot open a connection to the node (its pod gone); a row
 * Patroni pointed away from a stopped primary ('<host>-demoted') is gone too. */
#define NODE_REACHABLE_SQL                                                                     \
    "SELECT CASE WHEN $1 LIKE '%-demoted' THEN 'false' ELSE "                                  \
    "pg_catalog.citus_check_connection_to_node($1, $2::int)::text END"
/* Patroni's transaction on the coordinator that holds a worker primary's row after that
 * primary announced its shutdown (citus_update_node to '<host>-demoted', open until a new
 * primary of the group comes, which for a removed group never happens; Patroni interpolates
 * the parameters, so the statement names the node id). Ended so that Patroni's own error
 * path rolls it back and reloads pg_dist_node. */
#define END_HOLD_SQL                                                                           \
    "SELECT pid::text, pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity " \
    "WHERE datname = current_database() AND pid <> pg_backend_pid() AND "                      \
    "state LIKE 'idle in transaction%' AND ltrim(query) LIKE "                                 \
    "'SELECT pg_catalog.citus_update_node(' || $1 || ', %-demoted%'"
#define ORPHANS_SQL                                                                            \
    "SELECT count(*)::text FROM pg_catalog.pg_dist_cleanup WHERE node_group_id = ANY ($1::int[])"
#define KNOWN_GROUPS_SQL                                                                       \
    "SELECT coalesce(string_agg(DISTINCT groupid::text, ','), '-') FROM pg_catalog.pg_dist_node " \
    "WHERE groupid <> 0"
#define RUNNING_JOB_SQL                                                                        \
    "SELECT job_id::text FROM pg_catalog.pg_dist_background_job WHERE job_type = 'rebalance' " \
    "AND state NOT IN ('finished', 'cancelled', 'failed') ORDER BY job_id DESC LIMIT 1"
/* The job's state, its done and total tasks, and the newest error of a task (with how often
 * that task failed), as citus_rebalance_status() reads them. */
#define JOB_SQL                                                                                \
    "SELECT j.state::text, (SELECT count(*) FROM pg_catalog.pg_dist_background_task t "        \
    "WHERE t.job_id = j.job_id AND t.status = 'done')::text, "                                 \
    "(SELECT count(*) FROM pg_catalog.pg_dist_background_task t WHERE t.job_id = j.job_id)::text, " \
    "e.message, coalesce(e.retry_count, 0)::text, e.task_id::text "                            \
    "FROM pg_catalog.pg_dist_background_job j LEFT JOIN LATERAL (SELECT t.message, "           \
    "t.retry_count, t.task_id FROM pg_catalog.pg_dist_background_task t "                      \
    "WHERE t.job_id = j.job_id AND coalesce(t.message, '') <> '' AND t.status <> 'done' "      \
    "ORDER BY t.retry_count DESC NULLS LAST, t.task_id LIMIT 1) e ON true "                    \
    "WHERE j.job_id = $1::bigint"

/* ------------------------------------------------------------------ pure helpers */

bool workers_parse_group(const char *text, int *group)
{
    *group = 0;
    if (!text || !*text || strlen(text) > 10)
        return false;
    long long v = 0;
    for (const char *p = text; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        v = v * 10 + (*p - '0');
    }
    if (v < 1 || v > INT_MAX)
        return false;
    *group = (int)v;
    return true;
}

bool workers_job_state_final(const char *state)
{
    return state && (strcmp(state, "finished") == 0 || strcmp(state, "cancelled") == 0 ||
                     strcmp(state, "failed") == 0);
}

bool workers_parse_group_list(const char *text, int *groups, int max, int *count)
{
    *count = 0;
    if (!text)
        return false;
    if (!*text)
        return true;
    const char *p = text;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char item[16];
        int g;
        if (len == 0 || len >= sizeof item || *count >= max)
            return false;
        memcpy(item, p, len);
        item[len] = '\0';
        if (!workers_parse_group(item, &g))
            return false;
        for (int i = 0; i < *count; i++)
            if (groups[i] == g)
                return false;
        groups[(*count)++] = g;
        if (!end)
            return true;
        p = end + 1;
    }
}

void workers_group_array(const int *groups, int count, char *out, size_t size)
{
    size_t used = (size_t)snprintf(out, size, "{");
    for (int i = 0; i < count && used < size; i++)
        used += (size_t)snprintf(out + used, size - used, "%s%d", i ? "," : "", groups[i]);
    if (used < size)
        snprintf(out + used, size - used, "}");
}

/* ------------------------------------------------------------------ the connection */

static char last_notice[512];

static void keep_notice(void *arg, const char *message)
{
    (void)arg;
    snprintf(last_notice, sizeof last_notice, "%s", message);
    size_t n = strlen(last_notice);
    while (n && (last_notice[n - 1] == '\n' || last_notice[n - 1] == ' '))
        last_notice[--n] = '\0';
}

static PGconn *connect_tcp(const struct config *cfg, char *err, size_t errlen)
{
    struct conn_params p;
    superuser_conn_params(cfg, true, cfg->citus_database, "citus-init", SESSION_OPTIONS, "10",
                          &p);
    PGconn *conn = PQconnectdbParams(p.keys, p.vals, 0);
    if (!conn || PQstatus(conn) != CONNECTION_OK) {
        backup_pq_error(conn, NULL, err, errlen);
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

/* The coordinator's primary with Citus in it: COORDINATOR_HOST (retried like the extensions
 * Job, EXTENSIONS_MAX_ATTEMPTS x EXTENSIONS_RETRY_DELAY, while it cannot be reached or is in
 * recovery), else this member's local socket (once). NULL after logging why. */
static PGconn *coordinator_connect(const struct config *cfg, const char *command)
{
    char err[512] = "";
    bool tcp = cfg->coordinator_host && *cfg->coordinator_host;
    if (!tcp && !cfg->citus_enabled) {
        log_error("refused: Citus is off (CITUS_ENABLED=false): there are no worker groups",
                  "command", command, NULL);
        return NULL;
    }
    if (!tcp && cfg->citus_group != 0) {
        log_error("refused: run on a member of the coordinator (CITUS_GROUP=0), or set "
                  "COORDINATOR_HOST to the coordinator's service", "command", command, NULL);
        return NULL;
    }
    int attempts = tcp ? cfg->extensions_max_attempts : 1;
    for (int attempt = 1;; attempt++) {
        PGconn *conn = tcp ? connect_tcp(cfg, err, sizeof err)
                           : backup_connect_local(cfg, err, sizeof err);
        if (conn) {
            int primary = backup_is_primary(conn, err, sizeof err);
            if (primary == 1) {
                PQsetNoticeProcessor(conn, keep_notice, NULL);
                PGresult *res = backup_query(conn, "SELECT 1 FROM pg_catalog.pg_extension "
                                             "WHERE extname = 'citus'", 0, NULL,
                                             PGRES_TUPLES_OK, err, sizeof err);
                bool citus = res && PQntuples(res) == 1;
                PQclear(res);
                if (citus)
                    return conn;
                PQfinish(conn);
                log_error("refused: the citus extension is not in CITUS_DATABASE on the "
                          "coordinator", "command", command, "database", cfg->citus_database,
                          "error", err[0] ? err : "-", NULL);
                return NULL;
            }
            if (primary == 0)
                snprintf(err, sizeof err, "%s", "PostgreSQL is in recovery (not the primary)");
            PQfinish(conn);
        }
        if (attempt >= attempts) {
            log_error(tcp ? "cannot reach the coordinator's primary" :
                            "refused: this member is not the coordinator's primary (or its "
                            "PostgreSQL cannot be reached)",
                      "command", command, "host", tcp ? cfg->coordinator_host : "local socket",
                      "error", err, NULL);
            return NULL;
        }
        if (attempt == 1)
            log_info("waiting for the coordinator's primary", "command", command, "host",
                     cfg->coordinator_host, "error", err, NULL);
        sleep((unsigned)(cfg->extensions_retry_delay > 0 ? cfg->extensions_retry_delay : 1));
    }
}

/* One text value of a one-row query (malloc'd, "" for NULL), or NULL with err. */
static char *scalar(PGconn *conn, const char *sql, int n, const char *const *params, char *err,
                    size_t errlen)
{
    PGresult *res = backup_query(conn, sql, n, params, PGRES_TUPLES_OK, err, errlen);
    if (!res)
        return NULL;
    char *v = strdup(PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    if (!v)
        abort();
    return v;
}

static long scalar_count(PGconn *conn, const char *sql, const char *group, char *err,
                         size_t errlen)
{
    const char *p[1] = {group};
    char *v = scalar(conn, sql, 1, p, err, errlen);
    if (!v)
        return -1;
    long n = strtol(v, NULL, 10);
    free(v);
    return n;
}

/* ------------------------------------------------------------------ following a job */

/* Until the job is final: progress lines; 0 when it finished, -1 (logged, err holds the
 * reason) when it failed, was cancelled, or a task failed WORKERS_TASK_MAX_ERRORS times (the
 * job is then cancelled). what: "rebalance" or "drain". */
static int follow_job(PGconn *conn, const char *job, const char *what, char *err,
                      size_t errlen)
{
    const char *p[1] = {job};
    long last_done = -1;
    char last_message[512] = "";
    for (;;) {
        PGresult *res = backup_query(conn, JOB_SQL, 1, p, PGRES_TUPLES_OK, err, errlen);
        if (!res) {
            log_error("cannot read the rebalance job", "job_id", job, "error", err, NULL);
            return -1;
        }
        if (PQntuples(res) != 1) {
            PQclear(res);
            snprintf(err, errlen, "job %s is not in pg_dist_background_job", job);
            log_error("the rebalance job is gone", "job_id", job, NULL);
            return -1;
        }
        char state[32], done[24], total[24], retries[24];
        snprintf(state, sizeof state, "%s", PQgetvalue(res, 0, 0));
        snprintf(done, sizeof done, "%s", PQgetvalue(res, 0, 1));
        snprintf(total, sizeof total, "%s", PQgetvalue(res, 0, 2));
        snprintf(retries, sizeof retries, "%s", PQgetvalue(res, 0, 4));
        char message[512];
        snprintf(message, sizeof message, "%s", PQgetvalue(res, 0, 3));
        for (char *c = message; *c; c++)
            if (*c == '\n')
                *c = ' ';
        char task[24];
        snprintf(task, sizeof task, "%s", PQgetvalue(res, 0, 5));
        PQclear(res);
        long d = strtol(done, NULL, 10);
        if (d != last_done) {
            log_info("rebalance progress", "operation", what, "job_id", job, "state", state,
                     "done", done, "total", total, NULL);
            last_done = d;
        }
        if (message[0] && strcmp(message, last_message) != 0) {
            log_warn("a shard move of the job failed; Citus retries it", "operation", what,
                     "job_id", job, "task_id", task, "retried", retries, "error", message, NULL);
            snprintf(last_message, sizeof last_message, "%s", message);
        }
        if (strcmp(state, "finished") == 0)
            return 0;
        if (workers_job_state_final(state)) {
            snprintf(err, errlen, "job %s %s%s%s", job, state, message[0] ? ": " : "", message);
            log_error("the rebalance job did not finish", "operation", what, "job_id", job,
                      "state", state, "done", done, "total", total, "error",
                      message[0] ? message : "-", NULL);
            return -1;
        }
        if (message[0] && strtol(retries, NULL, 10) >= WORKERS_TASK_MAX_ERRORS) {
            char cancel_err[256] = "";
            PGresult *c = backup_query(conn, "SELECT pg_catalog.citus_job_cancel($1::bigint)", 1,
                                       p, PGRES_TUPLES_OK, cancel_err, sizeof cancel_err);
            PQclear(c);
            snprintf(err, errlen, "job %s cancelled: task %s failed %s times: %s", job, task,
                     retries, message);
            log_error("a shard move failed again and again; the rebalance job is cancelled "
                      "(moves already done stay)", "operation", what, "job_id", job, "task_id",
                      task, "retried", retries, "error", message, "cancel_error",
                      cancel_err[0] ? cancel_err : "-", NULL);
            return -1;
        }
        sleep(WORKERS_POLL_S);
    }
}

/* citus_rebalance_start(drain_only) unless a rebalance job runs (then that job, or with
 * drain_only that job first and then a new one). *job empty: nothing to move (the notice in
 * last_notice). 0, or -1 with err. */
static int start_job(PGconn *conn, bool drain_only, bool wait_running, char *job,
                     size_t jobsize, char *err, size_t errlen)
{
    char *running = scalar(conn, RUNNING_JOB_SQL, 0, NULL, err, errlen);
    if (!running)
        return -1;
    if (running[0]) {
        if (!drain_only) {
            log_info("a rebalance job runs already; following it", "job_id", running, NULL);
            snprintf(job, jobsize, "%s", running);
            free(running);
            return 0;
        }
        log_info("a rebalance job runs; waiting for it before the drain", "job_id", running, NULL);
        int rc = wait_running ? follow_job(conn, running, "rebalance", err, errlen) : 0;
        free(running);
        if (rc < 0)
            return -1;
    } else {
        free(running);
    }
    last_notice[0] = '\0';
    char *id = scalar(conn, drain_only ? "SELECT pg_catalog.citus_rebalance_start(drain_only "
                                         ":= true)::text"
                                       : "SELECT pg_catalog.citus_rebalance_start()::text",
                      0, NULL, err, errlen);
    if (!id)
        return -1;
    snprintf(job, jobsize, "%s", strcmp(id, "0") == 0 ? "" : id);
    free(id);
    return 0;
}

/* ------------------------------------------------------------------ arguments */

#define MAX_GROUPS 64
#define MAX_GROUP_NODES 256
#define REMOVE_LOCK_TRIES 12 /* x lock_timeout 10 s */
#define EXPECT_TIMEOUT_S 900
#define MAX_SECONDS 604800L

/* What drain-group and remove-group act on: GROUP, or (absent) the worker groups of
 * pg_dist_node that LIST does not name. */
struct target {
    bool absent;
    int groups[MAX_GROUPS];
    int count;
    long wait_gone; /* remove-group --wait-gone SECONDS; -1 without */
};

/* A set of groups as the SQL reads it ("{3,4}") and as the log names it ("3,4"). */
struct groupset {
    int ids[MAX_GROUPS];
    int count;
    char array[MAX_GROUPS * 12 + 3];
    char text[MAX_GROUPS * 12 + 3];
};

static void groupset_fill(struct groupset *set, const int *ids, int count)
{
    set->count = count;
    memcpy(set->ids, ids, sizeof ids[0] * (size_t)count);
    workers_group_array(ids, count, set->array, sizeof set->array);
    snprintf(set->text, sizeof set->text, "%.*s", count ? (int)strlen(set->array) - 2 : 1,
             count ? set->array + 1 : "-");
}

static bool parse_seconds(const char *text, long *out)
{
    char *end;
    if (!text || *text < '0' || *text > '9')
        return false;
    long v = strtol(text, &end, 10);
    if (*end || v < 0 || v > MAX_SECONDS)
        return false;
    *out = v;
    return true;
}

/* GROUP | --absent-from LIST, and (remove-group) --wait-gone SECONDS. 0, or the exit
 * status after saying why: 64 for usage, 1 for a GROUP that names no worker group. */
static int parse_target(const char *command, bool wait_gone_ok, int argc, char *const *argv,
                        struct target *t)
{
    const char *usage = wait_gone_ok ? "GROUP | --absent-from LIST [--wait-gone SECONDS]"
                                     : "GROUP | --absent-from LIST";
    const char *group = NULL, *list = NULL;
    t->absent = false;
    t->count = 0;
    t->wait_gone = -1;
    for (int i = 0; i < argc; i++) {
        bool has_value = i + 1 < argc;
        if (strcmp(argv[i], "--absent-from") == 0 && has_value && !list) {
            list = argv[++i];
        } else if (wait_gone_ok && strcmp(argv[i], "--wait-gone") == 0 && has_value &&
                   t->wait_gone < 0) {
            if (!parse_seconds(argv[++i], &t->wait_gone)) {
                fprintf(stderr, "citus-init %s: --wait-gone \"%s\": expected seconds, 0 to "
                                "%ld\n", command, argv[i], MAX_SECONDS);
                return 64;
            }
        } else if (argv[i][0] != '-' && !group) {
            group = argv[i];
        } else {
            fprintf(stderr, "citus-init %s: unexpected argument \"%s\"; expected %s\n",
                    command, argv[i], usage);
            return 64;
        }
    }
    if (!group == !list) {
        fprintf(stderr, "citus-init %s: expected %s (GROUP: a worker group number, 1 or "
                        "more; LIST: the worker groups that stay, comma-separated, e.g. "
                        "1,2)\n", command, usage);
        return 64;
    }
    if (list) {
        t->absent = true;
        if (!workers_parse_group_list(list, t->groups, MAX_GROUPS, &t->count)) {
            fprintf(stderr, "citus-init %s: --absent-from \"%s\": expected worker group "
                            "numbers (1 or more), comma-separated, each once, at most %d "
                            "(empty: every worker group)\n", command, list, MAX_GROUPS);
            return 64;
        }
        return 0;
    }
    if (!workers_parse_group(group, &t->groups[0])) {
        if (strcmp(group, "0") == 0)
            log_error("refused: group 0 is the coordinator; only worker groups (1 or more) "
                      "can be drained or removed", "command", command, "group", "0", NULL);
        else
            log_error("refused: GROUP is not a worker group number; expected 1 or more",
                      "command", command, "group", group, NULL);
        return 1;
    }
    t->count = 1;
    return 0;
}

/* The groups the command acts on: GROUP, or those of pg_dist_node that LIST does not name
 * (highest first). -1 with err. */
static int resolve_target(PGconn *conn, const struct target *t, struct groupset *set,
                          char *err, size_t errlen)
{
    if (!t->absent) {
        groupset_fill(set, t->groups, 1);
        return 0;
    }
    struct groupset keep;
    groupset_fill(&keep, t->groups, t->count);
    const char *p[1] = {keep.array};
    char *absent = scalar(conn, ABSENT_GROUPS_SQL, 1, p, err, errlen);
    if (!absent)
        return -1;
    int ids[MAX_GROUPS], count = 0;
    bool ok = workers_parse_group_list(absent, ids, MAX_GROUPS, &count);
    if (!ok)
        snprintf(err, errlen, "more than %d worker groups to act on (%s)", MAX_GROUPS, absent);
    free(absent);
    if (!ok)
        return -1;
    groupset_fill(set, ids, count);
    return 0;
}

/* ------------------------------------------------------------------ rebalance */

/* Until every group of expect has an active primary in pg_dist_node (Patroni registers a
 * new group once it has a primary), at most timeout seconds. 0, or -1 after logging. */
static int wait_registered(PGconn *conn, const struct groupset *expect, long timeout)
{
    char err[1024] = "", last[sizeof expect->text] = "";
    const char *p[1] = {expect->array};
    for (long waited = 0;; waited += WORKERS_POLL_S) {
        char *missing = scalar(conn, MISSING_GROUPS_SQL, 1, p, err, sizeof err);
        if (!missing) {
            log_error("cannot read pg_dist_node", "error", err, NULL);
            return -1;
        }
        if (!missing[0]) {
            if (last[0])
                log_info("every expected worker group is registered", "groups", expect->text,
                         NULL);
            free(missing);
            return 0;
        }
        if (waited >= timeout) {
            char t[24];
            snprintf(t, sizeof t, "%ld", timeout);
            log_error("worker groups without an active primary in pg_dist_node; their pods "
                      "did not get a primary in time (kubectl get pods -l citus-group=G)",
                      "missing", missing, "timeout_s", t, NULL);
            fprintf(stderr, "error: rebalance: worker groups %s not registered after %s s\n",
                    missing, t);
            free(missing);
            return -1;
        }
        if (strcmp(missing, last) != 0)
            log_info("waiting for worker groups to get a primary and be registered in "
                     "pg_dist_node", "missing", missing, NULL);
        snprintf(last, sizeof last, "%s", missing);
        free(missing);
        sleep(WORKERS_POLL_S);
    }
}

int workers_rebalance_command(const struct config *cfg, int argc, char *const *argv)
{
    bool wait = false;
    const char *expect_list = NULL;
    long timeout = -1;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--wait") == 0) {
            wait = true;
        } else if (strcmp(argv[i], "--expect") == 0 && i + 1 < argc && !expect_list) {
            expect_list = argv[++i];
        } else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc && timeout < 0) {
            if (!parse_seconds(argv[++i], &timeout)) {
                fprintf(stderr, "citus-init rebalance: --timeout \"%s\": expected seconds, 0 "
                                "to %ld\n", argv[i], MAX_SECONDS);
                return 64;
            }
        } else {
            fprintf(stderr, "citus-init rebalance: unexpected argument \"%s\"; expected "
                            "[--wait] [--expect LIST [--timeout SECONDS]]\n", argv[i]);
            return 64;
        }
    }
    int ids[MAX_GROUPS], count = 0;
    if (expect_list && (!workers_parse_group_list(expect_list, ids, MAX_GROUPS, &count) ||
                        count == 0)) {
        fprintf(stderr, "citus-init rebalance: --expect \"%s\": expected worker group numbers "
                        "(1 or more), comma-separated, each once, at most %d\n", expect_list,
                MAX_GROUPS);
        return 64;
    }
    if (timeout >= 0 && !expect_list) {
        fprintf(stderr, "citus-init rebalance: --timeout bounds the wait of --expect; give "
                        "--expect LIST too\n");
        return 64;
    }
    PGconn *conn = coordinator_connect(cfg, "rebalance");
    if (!conn)
        return 1;
    char job[32], err[1024] = "";
    int rc = 0;
    if (expect_list) {
        struct groupset expect;
        groupset_fill(&expect, ids, count);
        if (wait_registered(conn, &expect, timeout < 0 ? EXPECT_TIMEOUT_S : timeout) < 0) {
            PQfinish(conn);
            return 1;
        }
    }
    if (start_job(conn, false, false, job, sizeof job, err, sizeof err) < 0) {
        log_error("rebalance refused by Citus", "error", err, NULL);
        rc = 1;
    } else if (!job[0]) {
        log_info("rebalance: nothing to move; the shards are balanced", "citus",
                 last_notice[0] ? last_notice : "-", NULL);
    } else {
        log_info("rebalance started (Citus' background job, shards moved by logical "
                 "replication: writes go on)", "job_id", job, NULL);
        if (wait) {
            if (follow_job(conn, job, "rebalance", err, sizeof err) < 0)
                rc = 1;
            else
                log_info("rebalance finished", "job_id", job, NULL);
        }
    }
    PQfinish(conn);
    if (rc)
        fprintf(stderr, "error: rebalance failed: %s\n", err[0] ? err : "see above");
    return rc;
}

/* ------------------------------------------------------------------ drain, remove */

struct node {
    char name[256];
    char port[16];
    char role[32];
    char id[16];
    char group[16];
};

/* The groups' rows of pg_dist_node (highest group first, secondaries first). count -1 with
 * err on error. */
static int group_nodes(PGconn *conn, const char *array, struct node *out, int max, char *err,
                       size_t errlen)
{
    const char *p[1] = {array};
    PGresult *res = backup_query(conn, GROUP_NODES_SQL, 1, p, PGRES_TUPLES_OK, err, errlen);
    if (!res)
        return -1;
    int n = PQntuples(res) < max ? PQntuples(res) : max;
    for (int i = 0; i < n; i++) {
        snprintf(out[i].name, sizeof out[i].name, "%s", PQgetvalue(res, i, 0));
        snprintf(out[i].port, sizeof out[i].port, "%s", PQgetvalue(res, i, 1));
        snprintf(out[i].role, sizeof out[i].role, "%s", PQgetvalue(res, i, 2));
        snprintf(out[i].id, sizeof out[i].id, "%s", PQgetvalue(res, i, 3));
        snprintf(out[i].group, sizeof out[i].group, "%s", PQgetvalue(res, i, 4));
    }
    PQclear(res);
    return n;
}

static int set_should_have_shards(PGconn *conn, const struct node *nodes, int count,
                                  bool value, char *err, size_t errlen)
{
    for (int i = 0; i < count; i++) {
        if (strcmp(nodes[i].role, "primary") != 0)
            continue;
        const char *p[3] = {nodes[i].name, nodes[i].port, value ? "true" : "false"};
        PGresult *res = backup_query(conn, "SELECT pg_catalog.citus_set_node_property($1, "
                                     "$2::int, 'shouldhaveshards', $3::bool)", 3, p,
                                     PGRES_TUPLES_OK, err, errlen);
        if (!res)
            return -1;
        PQclear(res);
    }
    return 0;
}

/* A move leaves its source's copy to be dropped later (pg_dist_cleanup, Citus' maintenance
 * daemon). Dropped now, while the groups still run: a record that names a group whose pods
 * are gone can never be done, and Citus refuses to move that shard again while it exists. */
static void drop_orphans(PGconn *conn, const struct groupset *set)
{
    char err[512];
    PGresult *res = backup_query(conn, "CALL pg_catalog.citus_cleanup_orphaned_resources()", 0,
                                 NULL, PGRES_COMMAND_OK, err, sizeof err);
    if (!res)
        log_warn("the moved shards' old copies could not be dropped now; Citus' maintenance "
                 "daemon tries again", "group", set->text, "error", err, NULL);
    PQclear(res);
    long left = scalar_count(conn, ORPHANS_SQL, set->array, err, sizeof err);
    if (left > 0) {
        char n[24];
        snprintf(n, sizeof n, "%ld", left);
        log_warn("old copies of moved shards are still on the group (pg_dist_cleanup); "
                 "remove-group forgets them with the group", "group", set->text, "records", n,
                 NULL);
    }
}

/* Drain every group of set in one Citus job (so that no shard moves from one of them to
 * another): refusals first, changing nothing; then shouldhaveshards=false, the drain job,
 * the check that nothing is left; a failure sets shouldhaveshards back. 0 or 1. */
static int drain_groups(PGconn *conn, const struct groupset *set)
{
    char err[1024] = "";
    static struct node nodes[MAX_GROUP_NODES];
    int count = group_nodes(conn, set->array, nodes, MAX_GROUP_NODES, err, sizeof err);
    long placements = -1, targets = -1;
    char *bad = NULL;
    int rc = 1;
    if (count < 0)
        goto db_error;
    if (count == 0) {
        char *known = scalar(conn, KNOWN_GROUPS_SQL, 0, NULL, err, sizeof err);
        log_error("refused: pg_dist_node has no such worker group", "command", "drain-group",
                  "group", set->text, "known_groups", known ? known : "-", NULL);
        free(known);
        goto out;
    }
    const char *p[1] = {set->array};
    if ((placements = scalar_count(conn, PLACEMENTS_SQL, set->array, err, sizeof err)) < 0 ||
        (targets = scalar_count(conn, TARGETS_SQL, set->array, err, sizeof err)) < 0 ||
        !(bad = scalar(conn, NO_IDENTITY_SQL, 1, p, err, sizeof err)))
        goto db_error;
    char placed[24];
    snprintf(placed, sizeof placed, "%ld", placements);
    if (placements > 0 && bad[0]) {
        log_error("refused: tables with shards on the group have no replica identity, so their "
                  "shards cannot be moved without blocking writes; add a primary key (or ALTER "
                  "TABLE ... REPLICA IDENTITY USING INDEX / FULL) and run the drain again",
                  "command", "drain-group", "group", set->text, "tables", bad, "placements",
                  placed, NULL);
        fprintf(stderr, "error: drain-group %s refused: no replica identity: %s\n", set->text,
                bad);
        goto out;
    }
    if (placements > 0 && targets == 0) {
        log_error("refused: no other worker group can take the group's shards (no group that "
                  "stays has shouldhaveshards); add a group first", "command", "drain-group",
                  "group", set->text, "placements", placed, NULL);
        fprintf(stderr, "error: drain-group %s refused: no other group can take its shards\n",
                set->text);
        goto out;
    }
    if (set_should_have_shards(conn, nodes, count, false, err, sizeof err) < 0)
        goto db_error;
    log_info("drain: the group takes no new shards (shouldhaveshards=false)", "group",
             set->text, "placements", placed, NULL);
    char job[32] = "";
    int moved = placements == 0 ? 0
                : start_job(conn, true, true, job, sizeof job, err, sizeof err);
    if (moved == 0 && job[0]) {
        log_info("drain started (Citus' background job, shards moved by logical replication: "
                 "writes go on)", "group", set->text, "job_id", job, NULL);
        moved = follow_job(conn, job, "drain", err, sizeof err);
    }
    long left = moved == 0 ? scalar_count(conn, PLACEMENTS_SQL, set->array, err, sizeof err)
                           : -1;
    if (moved == 0 && left == 0) {
        drop_orphans(conn, set);
        log_info("group drained: no placement of a distributed table is left on it", "group",
                 set->text, "placements", "0", NULL);
        rc = 0;
        goto out;
    }
    if (moved == 0 && left > 0)
        snprintf(err, sizeof err, "%ld placements are still on the group after the job "
                 "(%s)", left, last_notice[0] ? last_notice : "no moves were planned");
    char restore_err[512] = "";
    bool restored = set_should_have_shards(conn, nodes, count, true, restore_err,
                                           sizeof restore_err) == 0;
    log_error("drain failed; the group keeps running and takes shards again "
              "(shouldhaveshards=true)", "group", set->text, "error", err, "restored",
              restored ? "true" : "false", "restore_error", restore_err[0] ? restore_err : "-",
              NULL);
    fprintf(stderr, "error: drain-group %s failed: %s\n", set->text, err);
    goto out;
db_error:
    log_error("drain-group failed", "group", set->text, "error", err, NULL);
    fprintf(stderr, "error: drain-group %s failed: %s\n", set->text, err);
out:
    free(bad);
    return rc;
}

/* What drain-group and remove-group do to the groups they resolved (never none). 0 or 1. */
typedef int (*group_action)(PGconn *conn, const struct groupset *set, const struct target *t);

/* The command line, the coordinator, the groups; "nothing" is logged when LIST keeps every
 * worker group of pg_dist_node. */
static int run_on_target(const struct config *cfg, const char *command, bool wait_gone_ok,
                         int argc, char *const *argv, const char *nothing, group_action act)
{
    struct target t;
    int rc = parse_target(command, wait_gone_ok, argc, argv, &t);
    if (rc)
        return rc;
    PGconn *conn = coordinator_connect(cfg, command);
    if (!conn)
        return 1;
    struct groupset set;
    char err[1024] = "";
    if (resolve_target(conn, &t, &set, err, sizeof err) < 0) {
        log_error("cannot read the worker groups of pg_dist_node", "command", command,
                  "error", err, NULL);
        fprintf(stderr, "error: %s failed: %s\n", command, err);
        rc = 1;
    } else if (set.count == 0) {
        struct groupset keep;
        groupset_fill(&keep, t.groups, t.count);
        log_info(nothing, "command", command, "keep", keep.text, NULL);
    } else {
        rc = act(conn, &set, &t);
    }
    PQfinish(conn);
    return rc;
}

static int drain_action(PGconn *conn, const struct groupset *set, const struct target *t)
{
    (void)t;
    return drain_groups(conn, set);
}

int workers_drain_command(const struct config *cfg, int argc, char *const *argv)
{
    return run_on_target(cfg, "drain-group", false, argc, argv,
                         "drain-group: every worker group in pg_dist_node stays; nothing to "
                         "drain", drain_action);
}

/* citus_remove_node, after ending Patroni's hold of the row (END_HOLD_SQL), retried while
 * the row is locked (lock_timeout ends each try). The result, or NULL with err. */
static void end_patroni_hold(PGconn *conn, const struct node *node)
{
    char err[512];
    const char *p[1] = {node->id};
    PGresult *res = backup_query(conn, END_HOLD_SQL, 1, p, PGRES_TUPLES_OK, err, sizeof err);
    if (!res) {
        log_warn("cannot look for a transaction holding the node's row", "node", node->name,
                 "error", err, NULL);
        return;
    }
    for (int i = 0; i < PQntuples(res); i++)
        log_info("ended Patroni's transaction that held the row of the group's stopped primary "
                 "(it waits for a new primary, which a removed group never gets); Patroni rolls "
                 "it back", "node", node->name, "nodeid", node->id, "pid", PQgetvalue(res, i, 0),
                 NULL);
    PQclear(res);
}

static PGresult *remove_node(PGconn *conn, const struct node *node, char *err, size_t errlen)
{
    const char *params[2] = {node->name, node->port};
    end_patroni_hold(conn, node);
    for (int tries = 1;; tries++) {
        PGresult *res = PQexecParams(conn, "SELECT pg_catalog.citus_remove_node($1, $2::int)",
                                     2, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) == PGRES_TUPLES_OK)
            return res;
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        bool locked = state && strcmp(state, "55P03") == 0;
        backup_pq_error(conn, res, err, errlen);
        PQclear(res);
        if (!locked || tries >= REMOVE_LOCK_TRIES)
            return NULL;
        log_info("pg_dist_node row locked; trying again", "node", node->name, NULL);
        end_patroni_hold(conn, node);
    }
}

/* Until no node of the group accepts the coordinator's connections (its pods are gone), at
 * most seconds. 0, or -1 after logging (err says which node still runs). */
static int wait_gone(PGconn *conn, const struct groupset *group, long seconds, char *err,
                     size_t errlen)
{
    static struct node nodes[MAX_GROUP_NODES];
    char running[512] = "";
    for (long waited = 0;; waited += WORKERS_POLL_S) {
        int count = group_nodes(conn, group->array, nodes, MAX_GROUP_NODES, err, errlen);
        if (count < 0)
            return -1;
        char now[512] = "";
        bool up_any = false;
        for (int i = 0; i < count; i++) {
            const char *p[2] = {nodes[i].name, nodes[i].port};
            char *up = scalar(conn, NODE_REACHABLE_SQL, 2, p, err, errlen);
            if (!up)
                return -1;
            size_t used = strlen(now);
            up_any |= strcmp(up, "true") == 0;
            if (strcmp(up, "true") == 0 &&
                used + strlen(nodes[i].name) + strlen(nodes[i].port) + 3 < sizeof now) {
                if (used)
                    strcat(now, ",");
                strcat(now, nodes[i].name);
                strcat(now, ":");
                strcat(now, nodes[i].port);
            }
            free(up);
        }
        if (!up_any) {
            if (running[0])
                log_info("the group's members are gone", "group", group->text, NULL);
            return 0;
        }
        if (waited >= seconds) {
            snprintf(err, errlen, "members still accept connections after %ld s: %s", seconds,
                     now);
            return -1;
        }
        if (strcmp(now, running) != 0)
            log_info("waiting for the group's members to stop (their pods are being deleted)",
                     "group", group->text, "running", now, NULL);
        snprintf(running, sizeof running, "%s", now);
        sleep(WORKERS_POLL_S);
    }
}

/* remove-group for one group. 0 or 1. */
static int remove_group(PGconn *conn, int id, long gone_s)
{
    struct groupset group;
    groupset_fill(&group, &id, 1);
    char err[1024] = "";
    static struct node nodes[MAX_GROUP_NODES];
    if (gone_s >= 0 && wait_gone(conn, &group, gone_s, err, sizeof err) < 0) {
        log_error("refused: the group still runs; remove-group removes a group only once its "
                  "pods are gone", "command", "remove-group", "group", group.text, "error", err,
                  NULL);
        fprintf(stderr, "error: remove-group %s refused: %s\n", group.text, err);
        return 1;
    }
    int count = group_nodes(conn, group.array, nodes, MAX_GROUP_NODES, err, sizeof err);
    long placements = count > 0 ? scalar_count(conn, PLACEMENTS_SQL, group.array, err,
                                               sizeof err) : 0;
    if (count < 0 || placements < 0) {
        log_error("remove-group failed", "group", group.text, "error", err, NULL);
        fprintf(stderr, "error: remove-group %s failed: %s\n", group.text, err);
        return 1;
    }
    if (count == 0) {
        log_info("group not in pg_dist_node: nothing to remove", "group", group.text, NULL);
        return 0;
    }
    if (placements > 0) {
        char placed[24];
        snprintf(placed, sizeof placed, "%ld", placements);
        log_error("refused: shards of distributed tables are still on the group; run "
                  "citus-init drain-group first", "command", "remove-group", "group",
                  group.text, "placements", placed, NULL);
        fprintf(stderr, "error: remove-group %s refused: %s placements left (drain-group "
                        "first)\n", group.text, placed);
        return 1;
    }
    for (int i = 0; i < count; i++) {
        PGresult *res = remove_node(conn, &nodes[i], err, sizeof err);
        if (!res) {
            log_error("citus_remove_node failed", "group", group.text, "node", nodes[i].name,
                      "role", nodes[i].role, "error", err, NULL);
            fprintf(stderr, "error: remove-group %s failed: %s\n", group.text, err);
            return 1;
        }
        log_info("node removed from pg_dist_node", "group", group.text, "node", nodes[i].name,
                 "port", nodes[i].port, "role", nodes[i].role, NULL);
        PQclear(res);
    }
    /* what Citus still meant to drop there went with the group's data */
    const char *p[1] = {group.array};
    PGresult *res = backup_query(conn, "DELETE FROM pg_catalog.pg_dist_cleanup WHERE "
                                 "node_group_id = ANY ($1::int[])", 1, p, PGRES_COMMAND_OK, err,
                                 sizeof err);
    if (!res)
        log_warn("pg_dist_cleanup records of the removed group could not be deleted", "group",
                 group.text, "error", err, NULL);
    else if (strcmp(PQcmdTuples(res), "0") != 0)
        log_info("forgot the removed group's old shard copies (pg_dist_cleanup)", "group",
                 group.text, "records", PQcmdTuples(res), NULL);
    PQclear(res);
    log_info("group removed from the cluster's metadata", "group", group.text, NULL);
    return 0;
}

static int remove_action(PGconn *conn, const struct groupset *set, const struct target *t)
{
    int rc = 0;
    for (int i = 0; rc == 0 && i < set->count; i++)
        rc = remove_group(conn, set->ids[i], t->wait_gone);
    return rc;
}

int workers_remove_command(const struct config *cfg, int argc, char *const *argv)
{
    return run_on_target(cfg, "remove-group", true, argc, argv,
                         "remove-group: every worker group in pg_dist_node stays; nothing to "
                         "remove", remove_action);
}
