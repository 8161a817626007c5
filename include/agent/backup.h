/* backup.h: the group leader's backup duties (docs/backups.md) and `citus-init backup`.
 *
 * The work itself is blocking code: pgBackRest is a child process (stanza-create, backup,
 * info) whose output is captured, PostgreSQL is reached over the local socket with libpq.
 * The commands run it directly; the agent runs it in a worker child of its own (a process
 * group of its own, so pgBackRest goes with it), watched by ev_child, so the agent's loop
 * never waits. At most one backup worker runs per agent (and pgBackRest's lock in
 * RUN_DIR/pgbackrest/lock refuses a second backup of the stanza from anywhere else).
 *
 * When the member becomes its group's leader (backup_duty_leader) and PostgreSQL is out of
 * recovery: create the tables citus_init.backup_history (and, on the Citus coordinator,
 * citus_init.restore_points) as plain local tables, `stanza-create` (idempotent), a full
 * backup at once when the stanza has none, then the cron schedules (UTC) of
 * BACKUP_FULL_SCHEDULE and BACKUP_DIFF_SCHEDULE. A failed setup is retried with a backoff.
 * On the Citus coordinator, restore points (restorepoint.h) every RESTORE_POINT_INTERVAL and
 * after each backup that worked. When the member stops leading, workers get TERM (their
 * process group), KILL after BACKUP_STOP_GRACE_S. */
#ifndef CITUS_INIT_BACKUP_H
#define CITUS_INIT_BACKUP_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "config.h"

/* libpq's handles (libpq-fe.h's own typedefs): this header is also read where libpq is not
 * (the executable's module table). */
typedef struct pg_conn PGconn;
typedef struct pg_result PGresult;

#define BACKUP_STOP_GRACE_S 10.0
#define BACKUP_RETRY_FIRST_S 2.0
#define BACKUP_RETRY_MAX_S 300.0

enum backup_type { BACKUP_FULL, BACKUP_DIFF, BACKUP_INCR };

struct backup_outcome {
    bool ok;
    char type[8];              /* what pgBackRest made (a diff without a full is a full) */
    char label[64];
    double duration_s;
    long long size_bytes;      /* pgBackRest info: backup size (database), -1 unknown */
    long long repo_size_bytes; /* its size in the repository, -1 unknown */
    char error[512];           /* the reason when !ok, no secret */
};

/* One backup now, as the schedule does it: the primary check, pgBackRest, the log lines,
 * the history row. 0 ok; BACKUP_REFUSED when this member is not the primary or another
 * backup holds the lock; -1 failed. out may be NULL. */
#define BACKUP_REFUSED 2
int backup_run(const struct config *cfg, enum backup_type type, struct backup_outcome *out);

/* The setup of a new leader: primary check, tables, stanza-create, the first full backup
 * when none exists (*first_full set). 0 ok, -1 failed (logged; the agent retries). */
int backup_prepare(const struct config *cfg, bool *first_full);

/* `citus-init backup [--type full|diff|incr]` (default full): on the group's primary, wait,
 * print "label<TAB>type made<TAB>duration_s<TAB>size_bytes<TAB>repo_size_bytes". Exit status. */
int backup_command(const struct config *cfg, int argc, char *const *argv);

/* --- the agent's duty --- */

struct ev_loop;
struct backup_duty;

/* NULL when backups are off (BACKUP_REPO=none). The loop must be libev's default loop
 * (ev_child). cfg must outlive it. */
struct backup_duty *backup_duty_start(struct ev_loop *loop, const struct config *cfg);
/* This member became (true) or stopped being (false) its group's leader. */
void backup_duty_leader(struct backup_duty *d, bool leader);
/* Tell fn whenever a leader's setup worked: citus_init's tables exist now (the monitoring
 * role's grants follow them). NULL d is fine. */
typedef void (*backup_tables_fn)(void *ctx);
void backup_duty_notify_tables(struct backup_duty *d, backup_tables_fn fn, void *ctx);
/* Stop timers, TERM the workers (they are not waited for), free. NULL is fine. */
void backup_duty_stop(struct backup_duty *d);

/* --- shared with restorepoint.c --- */

/* pgBackRest's run: exit status (or 128+signal; 127 when it could not be started), what it
 * wrote on stdout and on stderr (each NUL-terminated, possibly empty). */
struct pgbackrest_result {
    int status;
    char *out;
    size_t out_len;
    char *err;
    size_t err_len;
};
/* pgbackrest --config=RUN_DIR/<conf_file> --stanza=<stanza> ARGS..., waited for (conf_file:
 * BACKUP_CONF_FILE or BACKUP_RESTORE_CONF_FILE).
 * args NULL-terminated. 0 when it ran (see r->status), -1 when it could not be started
 * (reason logged). Free with backup_pgbackrest_free. */
int backup_pgbackrest(const struct config *cfg, const char *conf_file, const char *stanza,
                      const char *const *args, struct pgbackrest_result *r);
void backup_pgbackrest_free(struct pgbackrest_result *r);
/* The first lines of pgBackRest's complaint (ERROR lines first), one line, at most size
 * bytes, with any secret of the configuration masked. */
void backup_pgbackrest_error(const struct config *cfg, const struct pgbackrest_result *r,
                             char *buf, size_t size);

/* A connection to the local PostgreSQL (the socket directory, CITUS_DATABASE, the
 * superuser). NULL with the reason in err. */
PGconn *backup_connect_local(const struct config *cfg, char *err, size_t errlen);
/* 1 when the server is a primary, 0 in recovery, -1 on error (reason in err). */
int backup_is_primary(PGconn *conn, char *err, size_t errlen);
/* The schema citus_init and its tables as plain local tables (with Citus, DDL propagation is
 * off in that transaction); restore_points too when asked. 0, or -1 with err. */
int backup_ensure_tables(const struct config *cfg, PGconn *conn, bool restore_points,
                         char *err, size_t errlen);
/* PQexecParams; the result when its status is want, else NULL with the error in err. */
PGresult *backup_query(PGconn *conn, const char *sql, int n, const char *const *params,
                       int want, char *err, size_t errlen);
/* The error of a failed result or connection as one line (no trailing newline). */
void backup_pq_error(PGconn *conn, PGresult *res, char *err, size_t errlen);

/* --- pure helpers, exposed for unit tests --- */

const char *backup_type_name(enum backup_type type);
bool backup_parse_type(const char *text, enum backup_type *type);
/* From `pgbackrest --output=json info` of one stanza: the newest backup of type (any type
 * when type_name is NULL) that started at or after since (0: any) - its label and sizes.
 * false when there is none. */
bool backup_info_latest(const char *json, size_t len, const char *type_name, time_t since,
                        char *label, size_t label_size, long long *size, long long *repo_size);
/* How many backups the stanza has in that info; -1 when the text is not pgBackRest's info. */
int backup_info_count(const char *json, size_t len);
/* The label of the newest backup whose stop LSN is at or before lsn (recovery to a target
 * must start from a backup that is consistent before it); false when none. */
bool backup_info_before(const char *json, size_t len, unsigned long long lsn, char *label,
                        size_t size);
/* A PostgreSQL LSN "X/Y" as a number; false when it is not one. */
bool backup_parse_lsn(const char *text, unsigned long long *lsn);

#endif
