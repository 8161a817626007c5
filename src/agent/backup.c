/* backup.c: stanza-create, backups and their history; the agent's schedule (backup.h). */
#include "backup.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cron.h"
#include "extensions.h"
#include "fsprep.h"
#include "log.h"
#include "restorepoint.h"
#include "xalloc.h"

#define OUTPUT_MAX (16 * 1024 * 1024) /* of one stream; info of a long history is large */
#define ERROR_LINES 3
/* Every statement is bounded; a restore point's wait polls with short statements. */
#define SESSION_OPTIONS "-c statement_timeout=600s -c lock_timeout=10s"
/* pgBackRest: "unable to acquire lock" (LockAcquireError) */
#define PGBACKREST_LOCK_ERROR "[050]"

/* ------------------------------------------------------------------ pure helpers */

const char *backup_type_name(enum backup_type type)
{
    return type == BACKUP_DIFF ? "diff" : type == BACKUP_INCR ? "incr" : "full";
}

bool backup_parse_type(const char *text, enum backup_type *type)
{
    static const enum backup_type all[] = {BACKUP_FULL, BACKUP_DIFF, BACKUP_INCR};
    for (size_t i = 0; i < 3; i++)
        if (strcmp(text, backup_type_name(all[i])) == 0) {
            *type = all[i];
            return true;
        }
    return false;
}

/* The "backup" array of the first (only) stanza of an info answer, or NULL. */
static const cJSON *info_backups(const cJSON *doc)
{
    if (!cJSON_IsArray(doc))
        return NULL;
    const cJSON *stanza = cJSON_GetArrayItem(doc, 0);
    const cJSON *backups = cJSON_GetObjectItemCaseSensitive(stanza, "backup");
    return cJSON_IsArray(backups) ? backups : NULL;
}

static double number_at(const cJSON *obj, const char *a, const char *b)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(obj, a);
    if (b)
        x = cJSON_GetObjectItemCaseSensitive(x, b);
    return cJSON_IsNumber(x) ? x->valuedouble : -1;
}

int backup_info_count(const char *json, size_t len)
{
    cJSON *doc = cJSON_ParseWithLength(json, len);
    const cJSON *backups = info_backups(doc);
    int n = backups ? cJSON_GetArraySize(backups) : -1;
    cJSON_Delete(doc);
    return n;
}

bool backup_info_latest(const char *json, size_t len, const char *type_name, time_t since,
                        char *label, size_t label_size, long long *size, long long *repo_size)
{
    cJSON *doc = cJSON_ParseWithLength(json, len);
    const cJSON *backups = info_backups(doc), *best = NULL, *b;
    double best_start = -1;
    cJSON_ArrayForEach(b, backups) {
        const cJSON *jl = cJSON_GetObjectItemCaseSensitive(b, "label");
        const cJSON *jt = cJSON_GetObjectItemCaseSensitive(b, "type");
        double start = number_at(b, "timestamp", "start");
        if (!cJSON_IsString(jl) || !cJSON_IsString(jt) || start < 0 || start < (double)since)
            continue;
        if (type_name && strcmp(jt->valuestring, type_name) != 0)
            continue;
        if (start >= best_start) {
            best = b;
            best_start = start;
        }
    }
    if (best) {
        snprintf(label, label_size, "%s",
                 cJSON_GetObjectItemCaseSensitive(best, "label")->valuestring);
        const cJSON *info = cJSON_GetObjectItemCaseSensitive(best, "info");
        *size = (long long)number_at(info, "size", NULL);
        *repo_size = (long long)number_at(info, "repository", "size");
    }
    cJSON_Delete(doc);
    return best != NULL;
}

bool backup_parse_lsn(const char *text, unsigned long long *lsn)
{
    unsigned int hi, lo;
    int used = 0;
    if (!text || sscanf(text, "%X/%X%n", &hi, &lo, &used) != 2 || text[used] != '\0')
        return false;
    *lsn = (unsigned long long)hi << 32 | lo;
    return true;
}

bool backup_info_before(const char *json, size_t len, unsigned long long lsn, char *label,
                        size_t size)
{
    cJSON *doc = cJSON_ParseWithLength(json, len);
    const cJSON *backups = info_backups(doc), *b;
    double best_stop = -1;
    bool found = false;
    cJSON_ArrayForEach(b, backups) {
        const cJSON *jl = cJSON_GetObjectItemCaseSensitive(b, "label");
        const cJSON *jlsn = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(b, "lsn"), "stop");
        double stop = number_at(b, "timestamp", "stop");
        unsigned long long stop_lsn;
        if (!cJSON_IsString(jl) || !cJSON_IsString(jlsn) ||
            !backup_parse_lsn(jlsn->valuestring, &stop_lsn) || stop_lsn > lsn ||
            stop < best_stop)
            continue;
        best_stop = stop;
        snprintf(label, size, "%s", jl->valuestring);
        found = true;
    }
    cJSON_Delete(doc);
    return found;
}

/* ------------------------------------------------------------------ pgBackRest */

struct stream {
    int fd;
    char *data;
    size_t len;
};

static void stream_read(struct stream *s)
{
    char buf[65536];
    ssize_t n = read(s->fd, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0) {
        close(s->fd);
        s->fd = -1;
        return;
    }
    size_t keep = s->len + (size_t)n > OUTPUT_MAX ? OUTPUT_MAX - s->len : (size_t)n;
    if (keep) {
        char *more = realloc(s->data, s->len + keep + 1);
        if (!more)
            abort();
        s->data = more;
        memcpy(s->data + s->len, buf, keep);
        s->len += keep;
        s->data[s->len] = '\0';
    }
}

int backup_pgbackrest(const struct config *cfg, const char *conf_file, const char *stanza,
                      const char *const *args, struct pgbackrest_result *r)
{
    memset(r, 0, sizeof *r);
    char *path = config_path(cfg, conf_file);
    char *conf = xasprintf("--config=%s", path);
    free(path);
    char *st = xasprintf("--stanza=%s", stanza);
    size_t n = 0;
    while (args[n])
        n++;
    const char **argv = calloc(n + 4, sizeof *argv);
    if (!argv)
        abort();
    argv[0] = "pgbackrest";
    argv[1] = conf;
    argv[2] = st;
    for (size_t i = 0; i < n; i++)
        argv[3 + i] = args[i];
    int out[2], err[2];
    int rc = -1;
    if (pipe2(out, O_CLOEXEC) < 0) {
        log_error("cannot start pgbackrest", "error", strerror(errno), NULL);
        goto done;
    }
    if (pipe2(err, O_CLOEXEC) < 0) {
        log_error("cannot start pgbackrest", "error", strerror(errno), NULL);
        close(out[0]);
        close(out[1]);
        goto done;
    }
    pid_t pid = fork();
    if (pid < 0) {
        log_error("cannot start pgbackrest", "error", strerror(errno), NULL);
        close(out[0]);
        close(out[1]);
        close(err[0]);
        close(err[1]);
        goto done;
    }
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0)
            dup2(devnull, STDIN_FILENO);
        dup2(out[1], STDOUT_FILENO);
        dup2(err[1], STDERR_FILENO);
        signal(SIGPIPE, SIG_DFL);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    struct stream s[2] = {{.fd = out[0]}, {.fd = err[0]}};
    while (s[0].fd >= 0 || s[1].fd >= 0) {
        struct pollfd p[2];
        nfds_t np = 0;
        struct stream *which[2];
        for (int i = 0; i < 2; i++)
            if (s[i].fd >= 0) {
                p[np] = (struct pollfd){.fd = s[i].fd, .events = POLLIN};
                which[np++] = &s[i];
            }
        if (poll(p, np, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (nfds_t i = 0; i < np; i++)
            if (p[i].revents)
                stream_read(which[i]);
    }
    for (int i = 0; i < 2; i++)
        if (s[i].fd >= 0)
            close(s[i].fd);
    int wstatus = 0;
    while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
        ;
    r->status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
    r->out = s[0].data ? s[0].data : xstrdup("");
    r->out_len = s[0].len;
    r->err = s[1].data ? s[1].data : xstrdup("");
    r->err_len = s[1].len;
    rc = 0;
done:
    free(argv);
    free(conf);
    free(st);
    return rc;
}

void backup_pgbackrest_free(struct pgbackrest_result *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

/* Replace every occurrence of secret in buf by "***". */
static void mask(char *buf, const char *secret)
{
    size_t sl = secret ? strlen(secret) : 0;
    if (sl < 4)
        return; /* too short to be a real secret; masking it would garble the text */
    char *p;
    while ((p = strstr(buf, secret)) != NULL) {
        memmove(p + 3, p + sl, strlen(p + sl) + 1);
        memcpy(p, "***", 3);
    }
}

static void mask_secrets(const struct config *cfg, char *buf)
{
    const struct backup_repo_ref *refs[] = {&cfg->backup.own, &cfg->backup.source};
    for (size_t i = 0; i < 2; i++) {
        mask(buf, refs[i]->cipher_pass);
        mask(buf, refs[i]->s3_key_secret);
        mask(buf, refs[i]->s3_key);
    }
    mask(buf, cfg->superuser_password);
    mask(buf, cfg->replication_password);
}

/* Append the lines of text that (want_error) hold ERROR or (not) are not empty to buf. */
static void collect_lines(const char *text, bool want_error, char *buf, size_t size, int *lines)
{
    const char *p = text;
    while (p && *p && *lines < ERROR_LINES) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        while (n && (p[n - 1] == '\r' || p[n - 1] == ' '))
            n--;
        bool is_error = memmem(p, n, "ERROR", 5) != NULL;
        if (n && is_error == want_error) {
            size_t have = strlen(buf);
            snprintf(buf + have, size - have, "%s%.*s", have ? " | " : "", (int)n, p);
            (*lines)++;
        }
        p = nl ? nl + 1 : NULL;
    }
}

void backup_pgbackrest_error(const struct config *cfg, const struct pgbackrest_result *r,
                             char *buf, size_t size)
{
    buf[0] = '\0';
    int lines = 0;
    collect_lines(r->out, true, buf, size, &lines);
    collect_lines(r->err, true, buf, size, &lines);
    if (!lines) {
        collect_lines(r->err, false, buf, size, &lines);
        collect_lines(r->out, false, buf, size, &lines);
    }
    if (!lines)
        snprintf(buf, size, r->status == 127 ? "pgbackrest could not be run (not found in PATH?)"
                                             : "pgbackrest exited with status %d and no message",
                 r->status);
    mask_secrets(cfg, buf);
}

static bool lock_refused(const struct pgbackrest_result *r)
{
    return strstr(r->out, PGBACKREST_LOCK_ERROR) || strstr(r->err, PGBACKREST_LOCK_ERROR);
}

/* ------------------------------------------------------------------ PostgreSQL */

void backup_pq_error(PGconn *conn, PGresult *res, char *err, size_t errlen)
{
    const char *m = res ? PQresultErrorMessage(res) : "";
    if (!m || !*m)
        m = conn ? PQerrorMessage(conn) : "out of memory";
    snprintf(err, errlen, "%s", m && *m ? m : "unknown error");
    for (char *p = err; *p; p++)
        if (*p == '\n')
            *p = ' ';
    size_t n = strlen(err);
    while (n && err[n - 1] == ' ')
        err[--n] = '\0';
}

PGresult *backup_query(PGconn *conn, const char *sql, int n, const char *const *params,
                        int want, char *err, size_t errlen)
{
    PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) == (ExecStatusType)want)
        return res;
    backup_pq_error(conn, res, err, errlen);
    PQclear(res);
    return NULL;
}

static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

PGconn *backup_connect_local(const struct config *cfg, char *err, size_t errlen)
{
    struct conn_params p;
    superuser_conn_params(cfg, false, cfg->citus_database, "citus-init", SESSION_OPTIONS, "10",
                          &p);
    PGconn *conn = PQconnectdbParams(p.keys, p.vals, 0);
    if (!conn || PQstatus(conn) != CONNECTION_OK) {
        backup_pq_error(conn, NULL, err, errlen);
        PQfinish(conn);
        return NULL;
    }
    PQsetNoticeProcessor(conn, ignore_notice, NULL); /* "already exists, skipping" */
    return conn;
}

int backup_is_primary(PGconn *conn, char *err, size_t errlen)
{
    PGresult *res = PQexec(conn, "SELECT pg_is_in_recovery()");
    int rc = -1;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        rc = strcmp(PQgetvalue(res, 0, 0), "f") == 0;
    else
        backup_pq_error(conn, res, err, errlen);
    PQclear(res);
    return rc;
}

static const char history_ddl[] =
    "CREATE SCHEMA IF NOT EXISTS citus_init;"
    "CREATE TABLE IF NOT EXISTS citus_init.backup_history ("
    " id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " stanza text NOT NULL, type text NOT NULL, label text,"
    " started_at timestamptz NOT NULL, finished_at timestamptz NOT NULL,"
    " status text NOT NULL CHECK (status IN ('ok', 'failed')),"
    " size_bytes bigint, repo_size_bytes bigint, error text);";
static const char restore_points_ddl[] =
    "CREATE TABLE IF NOT EXISTS citus_init.restore_points ("
    " name text PRIMARY KEY, created_at timestamptz NOT NULL, lsn pg_lsn NOT NULL,"
    " archived_at timestamptz, pause_ms double precision NOT NULL);";

int backup_ensure_tables(const struct config *cfg, PGconn *conn, bool restore_points, char *err,
                         size_t errlen)
{
    /* With Citus the DDL stays on this node: a local table of the group, never propagated
     * (on the coordinator Citus would otherwise create the schema on every worker). */
    char *sql = xasprintf("BEGIN;%s%s%sCOMMIT;",
                          cfg->citus_enabled ? "SET LOCAL citus.enable_ddl_propagation TO off;"
                                             : "",
                          history_ddl, restore_points ? restore_points_ddl : "");
    PGresult *res = PQexec(conn, sql);
    free(sql);
    int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -1;
    if (rc < 0)
        backup_pq_error(conn, res, err, errlen);
    PQclear(res);
    if (rc < 0) {
        PGresult *r2 = PQexec(conn, "ROLLBACK");
        PQclear(r2);
    }
    return rc;
}

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void record_history(const struct config *cfg, PGconn *conn, const char *type,
                           double started, double finished, const struct backup_outcome *o)
{
    char s0[32], s1[32], sz[32], rsz[32];
    snprintf(s0, sizeof s0, "%.3f", started);
    snprintf(s1, sizeof s1, "%.3f", finished);
    snprintf(sz, sizeof sz, "%lld", o->size_bytes);
    snprintf(rsz, sizeof rsz, "%lld", o->repo_size_bytes);
    const char *params[] = {cfg->backup.stanza, type, o->label[0] ? o->label : NULL, s0, s1,
                            o->ok ? "ok" : "failed", o->size_bytes >= 0 ? sz : NULL,
                            o->repo_size_bytes >= 0 ? rsz : NULL, o->ok ? NULL : o->error};
    PGresult *res = PQexecParams(
        conn,
        "INSERT INTO citus_init.backup_history (stanza, type, label, started_at, finished_at, "
        "status, size_bytes, repo_size_bytes, error) VALUES ($1, $2, $3, to_timestamp($4), "
        "to_timestamp($5), $6, $7, $8, $9)",
        9, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        char err[300];
        backup_pq_error(conn, res, err, sizeof err);
        log_warn("backup not recorded in citus_init.backup_history", "stanza",
                 cfg->backup.stanza, "label", o->label[0] ? o->label : "-", "error", err, NULL);
    }
    PQclear(res);
}

/* ------------------------------------------------------------------ one backup */

static int refuse(const struct config *cfg, const char *type, const char *why, const char *err,
                  struct backup_outcome *out, int rc)
{
    log_error(why, "stanza", cfg->backup.stanza, "type", type, "error", err, NULL);
    if (out) {
        out->ok = false;
        snprintf(out->error, sizeof out->error, "%.200s: %.300s", why, err);
    }
    return rc;
}

int backup_run(const struct config *cfg, enum backup_type type, struct backup_outcome *out)
{
    struct backup_outcome o = {.size_bytes = -1, .repo_size_bytes = -1};
    const char *tn = backup_type_name(type);
    char err[512];
    PGconn *conn = backup_connect_local(cfg, err, sizeof err);
    if (!conn)
        return refuse(cfg, tn, "backup refused: cannot connect to the local PostgreSQL", err,
                      out, -1);
    int primary = backup_is_primary(conn, err, sizeof err);
    if (primary != 1) {
        PQfinish(conn);
        return primary == 0
                   ? refuse(cfg, tn, "backup refused: this member is not its group's primary",
                            "PostgreSQL is in recovery", out, BACKUP_REFUSED)
                   : refuse(cfg, tn, "backup refused: cannot ask PostgreSQL for its role", err,
                            out, -1);
    }
    if (backup_ensure_tables(cfg, conn, false, err, sizeof err) < 0)
        log_warn("citus_init.backup_history cannot be created; the backup goes on", "stanza",
                 cfg->backup.stanza, "error", err, NULL);

    /* no session stays idle through a backup of hours: the history gets a new one */
    PQfinish(conn);
    log_info("backup started", "stanza", cfg->backup.stanza, "type", tn, NULL);
    double started = wall_now();
    char type_arg[16];
    snprintf(type_arg, sizeof type_arg, "--type=%s", tn);
    const char *args[] = {"backup", type_arg, NULL};
    struct pgbackrest_result r;
    int rc = backup_pgbackrest(cfg, BACKUP_CONF_FILE, cfg->backup.stanza, args, &r);
    double finished = wall_now();
    o.duration_s = finished - started;
    char duration[32];
    snprintf(duration, sizeof duration, "%.1f", o.duration_s);
    int result = -1;
    const char *done_type = tn;
    snprintf(o.type, sizeof o.type, "%s", tn);
    if (rc == 0 && r.status == 0) {
        o.ok = true;
        result = 0;
        /* pgBackRest turns a diff or incr without a prior full into a full: the info says
         * what was made. */
        struct pgbackrest_result info;
        const char *info_args[] = {"--output=json", "info", NULL};
        if (backup_pgbackrest(cfg, BACKUP_CONF_FILE, cfg->backup.stanza, info_args, &info) ==
                0 &&
            info.status == 0 &&
            backup_info_latest(info.out, info.out_len, NULL, (time_t)started - 1, o.label,
                               sizeof o.label, &o.size_bytes, &o.repo_size_bytes)) {
            /* labels end in F, D or I */
            char kind = o.label[strlen(o.label) - 1];
            done_type = kind == 'D' ? "diff" : kind == 'I' ? "incr" : "full";
            snprintf(o.type, sizeof o.type, "%s", done_type);
        } else {
            log_warn("backup made, but pgbackrest info does not show it", "stanza",
                     cfg->backup.stanza, NULL);
        }
        backup_pgbackrest_free(&info);
        char sz[32], rsz[32];
        snprintf(sz, sizeof sz, "%lld", o.size_bytes);
        snprintf(rsz, sizeof rsz, "%lld", o.repo_size_bytes);
        log_info("backup finished", "stanza", cfg->backup.stanza, "type", done_type, "label",
                 o.label[0] ? o.label : "-", "duration_s", duration, "size_bytes", sz,
                 "repo_size_bytes", rsz, NULL);
    } else if (rc == 0) {
        backup_pgbackrest_error(cfg, &r, o.error, sizeof o.error);
        if (lock_refused(&r)) {
            result = BACKUP_REFUSED;
            log_error("backup refused: another backup of this stanza is running (pgBackRest's "
                      "lock)", "stanza", cfg->backup.stanza, "type", tn, "error", o.error, NULL);
        } else {
            log_error("backup failed", "stanza", cfg->backup.stanza, "type", tn, "duration_s",
                      duration, "error", o.error, NULL);
        }
    } else {
        snprintf(o.error, sizeof o.error, "pgbackrest could not be started");
        log_error("backup failed", "stanza", cfg->backup.stanza, "type", tn, "error", o.error,
                  NULL);
    }
    if (rc == 0)
        backup_pgbackrest_free(&r);
    if (result != BACKUP_REFUSED) {
        conn = backup_connect_local(cfg, err, sizeof err);
        if (conn)
            record_history(cfg, conn, done_type, started, finished, &o);
        else
            log_warn("backup not recorded in citus_init.backup_history", "stanza",
                     cfg->backup.stanza, "label", o.label[0] ? o.label : "-", "error", err, NULL);
        PQfinish(conn);
    }
    /* pgBackRest expired what retention no longer keeps (expire-auto): on the coordinator,
     * the restore points that cannot be restored any more go too */
    if (o.ok && cfg->citus_enabled && cfg->citus_group == 0)
        restorepoint_prune(cfg);
    if (out)
        *out = o;
    return result;
}

int backup_prepare(const struct config *cfg, bool *first_full)
{
    *first_full = false;
    char err[512];
    PGconn *conn = backup_connect_local(cfg, err, sizeof err);
    if (!conn) {
        log_warn("backup setup waits: cannot connect to the local PostgreSQL", "stanza",
                 cfg->backup.stanza, "error", err, NULL);
        return -1;
    }
    int primary = backup_is_primary(conn, err, sizeof err);
    if (primary != 1) {
        log_warn("backup setup waits: PostgreSQL is not a primary yet", "stanza",
                 cfg->backup.stanza, "error", primary == 0 ? "in recovery" : err, NULL);
        PQfinish(conn);
        return -1;
    }
    bool coordinator = cfg->citus_enabled && cfg->citus_group == 0;
    if (backup_ensure_tables(cfg, conn, coordinator, err, sizeof err) < 0) {
        log_error("backup setup failed: the citus_init tables cannot be created", "stanza",
                  cfg->backup.stanza, "database", cfg->citus_database, "error", err, NULL);
        PQfinish(conn);
        return -1;
    }
    PQfinish(conn);

    struct pgbackrest_result r;
    const char *create[] = {"stanza-create", NULL};
    if (backup_pgbackrest(cfg, BACKUP_CONF_FILE, cfg->backup.stanza, create, &r) < 0)
        return -1;
    if (r.status != 0) {
        backup_pgbackrest_error(cfg, &r, err, sizeof err);
        log_error("stanza-create failed", "stanza", cfg->backup.stanza, "error", err, NULL);
        backup_pgbackrest_free(&r);
        return -1;
    }
    backup_pgbackrest_free(&r);
    log_info("stanza ready", "stanza", cfg->backup.stanza, NULL);

    const char *info_args[] = {"--output=json", "info", NULL};
    if (backup_pgbackrest(cfg, BACKUP_CONF_FILE, cfg->backup.stanza, info_args, &r) < 0)
        return -1;
    int count = r.status == 0 ? backup_info_count(r.out, r.out_len) : -1;
    if (count < 0) {
        backup_pgbackrest_error(cfg, &r, err, sizeof err);
        log_error("backup setup failed: pgbackrest info", "stanza", cfg->backup.stanza, "error",
                  err, NULL);
    }
    backup_pgbackrest_free(&r);
    if (count < 0)
        return -1;
    if (count > 0)
        return 0;
    log_info("the stanza has no backup yet: a full backup now", "stanza", cfg->backup.stanza,
             NULL);
    if (backup_run(cfg, BACKUP_FULL, NULL) != 0)
        return -1;
    *first_full = true;
    return 0;
}

int backup_command(const struct config *cfg, int argc, char *const *argv)
{
    enum backup_type type = BACKUP_FULL;
    for (int i = 0; i < argc; i++) {
        const char *v = NULL;
        if (strcmp(argv[i], "--type") == 0 && i + 1 < argc)
            v = argv[++i];
        else if (strncmp(argv[i], "--type=", 7) == 0)
            v = argv[i] + 7;
        if (!v || !backup_parse_type(v, &type)) {
            fprintf(stderr, "citus-init backup: %s \"%s\"; expected --type full, diff or incr\n",
                    v ? "unknown backup type" : "unknown argument", v ? v : argv[i]);
            return 64;
        }
    }
    if (cfg->backup.repo == BACKUP_REPO_NONE) {
        log_error("backup refused: BACKUP_REPO is none; backups are off", NULL);
        return 1;
    }
    struct backup_outcome o;
    if (backup_run(cfg, type, &o) != 0)
        return 1;
    printf("%s\t%s\t%.1f\t%lld\t%lld\n", o.label[0] ? o.label : "-", o.type,
           o.duration_s, o.size_bytes, o.repo_size_bytes);
    return fflush(stdout) == 0 ? 0 : 1;
}

/* ------------------------------------------------------------------ the agent's duty */

enum work_kind { WORK_PREPARE, WORK_BACKUP, WORK_RESTORE_POINT };
#define WORK_FIRST_FULL 10 /* the setup made the stanza's first full backup */

struct worker {
    struct backup_duty *duty;
    enum work_kind kind;
    enum backup_type type;
    pid_t pid;              /* 0: idle */
    bool stopping;          /* TERM sent: its result does not count */
    ev_child child;
    ev_timer kill_timer;
};

struct backup_duty {
    struct ev_loop *loop;
    const struct config *cfg;
    bool leader, prepared;
    bool restore_points;    /* the Citus coordinator with RESTORE_POINT_INTERVAL or backups */
    struct cron full, diff;
    bool have_full, have_diff;
    ev_periodic full_timer, diff_timer;
    ev_timer retry_timer;
    double retry_delay;
    ev_timer rp_timer;
    bool rp_pending;        /* a backup finished while a restore point was being made */
    struct worker backup;   /* the setup or a backup */
    struct worker rp;
    backup_tables_fn on_tables;
    void *on_tables_ctx;
};

static int work(const struct config *cfg, enum work_kind kind, enum backup_type type)
{
    if (kind == WORK_PREPARE) {
        /* a restored coordinator: its workers first, so restore points span every group */
        if (restorepoint_rejoin_workers(cfg) < 0)
            return 1;
        bool first_full = false;
        int rc = backup_prepare(cfg, &first_full);
        return rc < 0 ? 1 : first_full ? WORK_FIRST_FULL : 0;
    }
    if (kind == WORK_BACKUP)
        return backup_run(cfg, type, NULL) == 0 ? 0 : 1;
    return restorepoint_create(cfg, NULL, NULL) == 0 ? 0 : 1;
}

static void on_worker_exit(struct ev_loop *loop, ev_child *c, int revents);

static bool start_worker(struct backup_duty *d, struct worker *w, enum work_kind kind,
                         enum backup_type type)
{
    pid_t pid = fork();
    if (pid < 0) {
        log_error("cannot start a backup worker", "error", strerror(errno), NULL);
        return false;
    }
    if (pid == 0) {
        /* The worker: its own process group (pgBackRest goes with it when it is stopped),
         * default signal handling (the agent's handlers belong to the agent's loop). */
        setpgid(0, 0);
        int sigs[] = {SIGTERM, SIGINT, SIGCHLD, SIGPIPE, SIGHUP};
        for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
            signal(sigs[i], SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        _exit(work(d->cfg, kind, type));
    }
    setpgid(pid, pid); /* also here: a TERM right away must reach the group */
    w->duty = d;
    w->kind = kind;
    w->type = type;
    w->pid = pid;
    w->stopping = false;
    ev_child_init(&w->child, on_worker_exit, pid, 0);
    w->child.data = w;
    ev_child_start(d->loop, &w->child);
    return true;
}

static void stop_worker(struct backup_duty *d, struct worker *w, const char *why)
{
    if (!w->pid || w->stopping)
        return;
    char pid[16];
    snprintf(pid, sizeof pid, "%d", (int)w->pid);
    log_info(w->kind == WORK_RESTORE_POINT ? "stopping the restore point" : "stopping the backup",
             "reason", why, "pid", pid, NULL);
    w->stopping = true;
    kill(-w->pid, SIGTERM);
    ev_timer_set(&w->kill_timer, BACKUP_STOP_GRACE_S, 0.);
    ev_timer_start(d->loop, &w->kill_timer);
}

static void on_kill_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    struct worker *w = t->data;
    if (w->pid)
        kill(-w->pid, SIGKILL);
}

static void start_restore_point(struct backup_duty *d)
{
    if (!d->restore_points || !d->leader || !d->prepared)
        return;
    if (d->rp.pid) {
        d->rp_pending = true; /* right after the one in progress */
        return;
    }
    d->rp_pending = false;
    start_worker(d, &d->rp, WORK_RESTORE_POINT, BACKUP_FULL);
}

static void start_backup(struct backup_duty *d, enum backup_type type)
{
    if (!d->leader || !d->prepared)
        return;
    if (d->backup.pid) {
        log_warn("scheduled backup skipped: a backup is running", "stanza", d->cfg->backup.stanza,
                 "type", backup_type_name(type), NULL);
        return;
    }
    start_worker(d, &d->backup, WORK_BACKUP, type);
}

static void start_prepare(struct backup_duty *d)
{
    if (d->leader && !d->prepared && !d->backup.pid)
        start_worker(d, &d->backup, WORK_PREPARE, BACKUP_FULL);
}

/* ev_periodic: the next minute the schedule names (UTC), strictly after now. */
static ev_tstamp next_run(const struct cron *c, ev_tstamp now)
{
    time_t next = cron_next(c, (time_t)now);
    return next == (time_t)-1 ? now + 1e9 : (ev_tstamp)next;
}

static ev_tstamp next_full(ev_periodic *p, ev_tstamp now)
{
    return next_run(&((struct backup_duty *)p->data)->full, now);
}

static ev_tstamp next_diff(ev_periodic *p, ev_tstamp now)
{
    return next_run(&((struct backup_duty *)p->data)->diff, now);
}

static void on_full(struct ev_loop *loop, ev_periodic *p, int revents)
{
    (void)loop;
    (void)revents;
    start_backup(p->data, BACKUP_FULL);
}

static void on_diff(struct ev_loop *loop, ev_periodic *p, int revents)
{
    (void)loop;
    (void)revents;
    struct backup_duty *d = p->data;
    /* Both schedules naming this minute: the full one covers it. */
    time_t minute = (time_t)ev_now(d->loop) / 60 * 60;
    if (d->have_full && cron_next(&d->full, minute - 1) == minute)
        return;
    start_backup(d, BACKUP_DIFF);
}

static void on_rp_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    start_restore_point(t->data);
}

static void on_retry(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    start_prepare(t->data);
}

static void log_schedule(struct backup_duty *d, const char *what, const char *text,
                         const struct cron *c)
{
    char when[32] = "-";
    time_t next = cron_next(c, time(NULL));
    if (next != (time_t)-1) {
        struct tm tm;
        gmtime_r(&next, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    log_info("backup schedule", "stanza", d->cfg->backup.stanza, "type", what, "schedule", text,
             "next", when, NULL);
}

static void prepared(struct backup_duty *d, bool first_full)
{
    d->prepared = true;
    d->retry_delay = BACKUP_RETRY_FIRST_S;
    if (d->have_full) {
        ev_periodic_again(d->loop, &d->full_timer);
        log_schedule(d, "full", d->cfg->backup.full_schedule, &d->full);
    }
    if (d->have_diff) {
        ev_periodic_again(d->loop, &d->diff_timer);
        log_schedule(d, "diff", d->cfg->backup.diff_schedule, &d->diff);
    }
    if (d->restore_points && d->rp_timer.repeat > 0)
        ev_timer_again(d->loop, &d->rp_timer);
    if (first_full)
        start_restore_point(d);
}

static void on_worker_exit(struct ev_loop *loop, ev_child *c, int revents)
{
    (void)revents;
    struct worker *w = c->data;
    struct backup_duty *d = w->duty;
    ev_child_stop(loop, c);
    ev_timer_stop(loop, &w->kill_timer);
    int status = WIFEXITED(c->rstatus) ? WEXITSTATUS(c->rstatus) : 128 + WTERMSIG(c->rstatus);
    bool counted = !w->stopping;
    w->pid = 0;
    w->stopping = false;
    if (!d->leader)
        return;
    if (!counted) {
        /* stopped when leadership went, and it came back meanwhile: start over */
        if (w == &d->backup)
            start_prepare(d);
        return;
    }
    if (w->kind == WORK_PREPARE) {
        if (status == 0 || status == WORK_FIRST_FULL) {
            prepared(d, status == WORK_FIRST_FULL);
            if (d->on_tables)
                d->on_tables(d->on_tables_ctx);
            return;
        }
        char in[16];
        snprintf(in, sizeof in, "%.0f", d->retry_delay);
        log_warn("backup setup will be retried", "stanza", d->cfg->backup.stanza,
                 "retry_in_s", in, NULL);
        ev_timer_set(&d->retry_timer, d->retry_delay, 0.);
        ev_timer_start(loop, &d->retry_timer);
        d->retry_delay = d->retry_delay * 2 < BACKUP_RETRY_MAX_S ? d->retry_delay * 2
                                                                  : BACKUP_RETRY_MAX_S;
    } else if (w->kind == WORK_BACKUP) {
        if (status == 0)
            start_restore_point(d);
    } else if (d->rp_pending) {
        start_restore_point(d);
    }
}

void backup_duty_notify_tables(struct backup_duty *d, backup_tables_fn fn, void *ctx)
{
    if (!d)
        return;
    d->on_tables = fn;
    d->on_tables_ctx = ctx;
}

struct backup_duty *backup_duty_start(struct ev_loop *loop, const struct config *cfg)
{
    if (cfg->backup.repo == BACKUP_REPO_NONE)
        return NULL;
    struct backup_duty *d = calloc(1, sizeof *d);
    if (!d)
        abort();
    d->loop = loop;
    d->cfg = cfg;
    d->retry_delay = BACKUP_RETRY_FIRST_S;
    d->restore_points = cfg->citus_enabled && cfg->citus_group == 0;
    char err[200];
    /* config_load validated both; a failure here would be a bug, and only disables one */
    if (cfg->backup.full_schedule) {
        d->have_full = cron_parse(cfg->backup.full_schedule, &d->full, err, sizeof err) == 0;
        if (!d->have_full)
            log_error("BACKUP_FULL_SCHEDULE cannot be used", "error", err, NULL);
    }
    if (cfg->backup.diff_schedule) {
        d->have_diff = cron_parse(cfg->backup.diff_schedule, &d->diff, err, sizeof err) == 0;
        if (!d->have_diff)
            log_error("BACKUP_DIFF_SCHEDULE cannot be used", "error", err, NULL);
    }
    ev_periodic_init(&d->full_timer, on_full, 0., 0., next_full);
    d->full_timer.data = d;
    ev_periodic_init(&d->diff_timer, on_diff, 0., 0., next_diff);
    d->diff_timer.data = d;
    ev_timer_init(&d->retry_timer, on_retry, 0., 0.);
    d->retry_timer.data = d;
    double interval = cfg->backup.restore_point_interval;
    ev_timer_init(&d->rp_timer, on_rp_timer, interval, interval);
    d->rp_timer.data = d;
    struct worker *ws[] = {&d->backup, &d->rp};
    for (size_t i = 0; i < 2; i++) {
        ev_timer_init(&ws[i]->kill_timer, on_kill_timer, 0., 0.);
        ws[i]->kill_timer.data = ws[i];
    }
    log_info("backups on", "stanza", cfg->backup.stanza, "full_schedule",
             cfg->backup.full_schedule ? cfg->backup.full_schedule : "off", "diff_schedule",
             cfg->backup.diff_schedule ? cfg->backup.diff_schedule : "off", "restore_points",
             d->restore_points ? "this member, when it leads the coordinator" : "-", NULL);
    return d;
}

void backup_duty_leader(struct backup_duty *d, bool leader)
{
    if (!d || leader == d->leader)
        return;
    d->leader = leader;
    if (leader) {
        d->retry_delay = BACKUP_RETRY_FIRST_S;
        start_prepare(d);
        return;
    }
    d->prepared = false;
    d->rp_pending = false;
    ev_periodic_stop(d->loop, &d->full_timer);
    ev_periodic_stop(d->loop, &d->diff_timer);
    ev_timer_stop(d->loop, &d->retry_timer);
    ev_timer_stop(d->loop, &d->rp_timer);
    stop_worker(d, &d->backup, "no longer the leader");
    stop_worker(d, &d->rp, "no longer the leader");
}

void backup_duty_stop(struct backup_duty *d)
{
    if (!d)
        return;
    backup_duty_leader(d, false);
    struct worker *ws[] = {&d->backup, &d->rp};
    for (size_t i = 0; i < 2; i++) {
        ev_timer_stop(d->loop, &ws[i]->kill_timer);
        if (ws[i]->pid)
            ev_child_stop(d->loop, &ws[i]->child);
    }
    free(d);
}
