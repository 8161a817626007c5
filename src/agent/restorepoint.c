/* restorepoint.c: restore points, their listing, and the restore bootstrap (restorepoint.h). */
#include "restorepoint.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backup.h"
#include "extensions.h"
#include "log.h"
#include "xalloc.h"

#define SEGMENT_LEN 24
/* The switch and the archiver's progress per group: the coordinator locally, the workers
 * (every active primary Citus knows, group 0 excluded) through run_command_on_workers. */
#define SWITCH_SQL "SELECT pg_walfile_name(l) || ' ' || l::text FROM pg_switch_wal() l"
#define ARCHIVER_SQL                                                                           \
    "SELECT coalesce(last_archived_wal, '-') || ' ' || coalesce(last_failed_wal, '-') FROM "    \
    "pg_stat_archiver"
#define ON_WORKERS(cmd)                                                                        \
    "SELECT n.groupid, r.nodename || ':' || r.nodeport, r.success, r.result "                 \
    "FROM run_command_on_workers($cmd$" cmd "$cmd$) r JOIN pg_dist_node n "                    \
    "ON n.nodename = r.nodename AND n.nodeport = r.nodeport AND n.noderole = 'primary' "      \
    "WHERE n.groupid <> 0 ORDER BY n.groupid"

/* ------------------------------------------------------------------ pure helpers */

static bool hex_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'F')))
            return false;
    return true;
}

bool restorepoint_wal_reached(const char *last, const char *target)
{
    if (!last || !target || strlen(target) != SEGMENT_LEN || !hex_digits(target, SEGMENT_LEN))
        return false;
    if (strlen(last) < SEGMENT_LEN || !hex_digits(last, SEGMENT_LEN))
        return false; /* "-" (nothing archived yet), a history file */
    const char *suffix = last + SEGMENT_LEN;
    if (*suffix && (*suffix != '.' || strcmp(suffix, ".partial") == 0))
        return false; /* a partial segment ends a timeline: not the segment itself */
    /* the timeline (first 8 digits) must be the same; then the names sort like the WAL */
    return strncmp(last, target, 8) == 0 && strncmp(last, target, SEGMENT_LEN) >= 0;
}

const struct catalog_entry *restorepoint_latest_at(const struct catalog_list *l, time_t t)
{
    const struct catalog_entry *best = NULL;
    for (size_t i = 0; i < l->count; i++)
        if (l->items[i].time <= t)
            best = &l->items[i];
    return best;
}

/* ------------------------------------------------------------------ making one */

struct group_wal {
    int group;
    char node[160];          /* host:port, "local" for the coordinator */
    char segment[SEGMENT_LEN + 1];
    char before[32];         /* the group's WAL position just before the restore point */
    char lsn[32];            /* where the switch ended the segment */
    char last_archived[64];
    char last_failed[64];
    bool reached;
};

struct groups {
    struct group_wal *items;
    size_t count;
};

static struct group_wal *groups_add(struct groups *g, int group, const char *node)
{
    struct group_wal *more = realloc(g->items, (g->count + 1) * sizeof *more);
    if (!more)
        abort();
    g->items = more;
    struct group_wal *w = &g->items[g->count++];
    memset(w, 0, sizeof *w);
    w->group = group;
    snprintf(w->node, sizeof w->node, "%s", node);
    return w;
}

/* "SEGMENT LSN" (the switch's answer) into w; false when it is not that. */
static bool parse_switch(const char *text, struct group_wal *w)
{
    const char *sp = strchr(text, ' ');
    if (!sp || sp - text != SEGMENT_LEN || !hex_digits(text, SEGMENT_LEN) || strlen(sp + 1) == 0 ||
        strlen(sp + 1) >= sizeof w->lsn)
        return false;
    memcpy(w->segment, text, SEGMENT_LEN);
    w->segment[SEGMENT_LEN] = '\0';
    snprintf(w->lsn, sizeof w->lsn, "%s", sp + 1);
    return true;
}

/* "LAST_ARCHIVED LAST_FAILED" into w. */
static void parse_archiver(const char *text, struct group_wal *w)
{
    const char *sp = strchr(text, ' ');
    snprintf(w->last_archived, sizeof w->last_archived, "%.*s",
             sp ? (int)(sp - text) : (int)strlen(text), text);
    snprintf(w->last_failed, sizeof w->last_failed, "%s", sp ? sp + 1 : "-");
    w->reached = restorepoint_wal_reached(w->last_archived, w->segment);
}

static struct group_wal *group_of(struct groups *g, int group, const char *node)
{
    for (size_t i = 0; i < g->count; i++)
        if (g->items[i].group == group)
            return &g->items[i];
    return groups_add(g, group, node);
}

/* Every group's current WAL position (before the restore point): fills g. 0, or -1. */
static int positions(PGconn *conn, struct groups *g, char *err, size_t errlen)
{
    PGresult *res = backup_query(conn, "SELECT pg_current_wal_lsn()::text", 0, NULL, PGRES_TUPLES_OK,
                          err, errlen);
    if (!res)
        return -1;
    snprintf(groups_add(g, 0, "local")->before, sizeof g->items[0].before, "%s",
             PQgetvalue(res, 0, 0));
    PQclear(res);
    res = backup_query(conn, ON_WORKERS("SELECT pg_current_wal_lsn()::text"), 0, NULL,
                PGRES_TUPLES_OK, err, errlen);
    if (!res)
        return -1;
    int rc = 0;
    for (int i = 0; i < PQntuples(res) && rc == 0; i++) {
        struct group_wal *w = groups_add(g, atoi(PQgetvalue(res, i, 0)), PQgetvalue(res, i, 1));
        if (strcmp(PQgetvalue(res, i, 2), "t") != 0) {
            snprintf(err, errlen, "group %d (%s) cannot be reached: %.200s", w->group, w->node,
                     PQgetvalue(res, i, 3));
            rc = -1;
        } else {
            snprintf(w->before, sizeof w->before, "%s", PQgetvalue(res, i, 3));
        }
    }
    PQclear(res);
    return rc;
}

/* Switch WAL on every group; fills the segments of g. 0, or -1 with err. */
static int switch_all(PGconn *conn, struct groups *g, char *err, size_t errlen)
{
    PGresult *res = backup_query(conn, SWITCH_SQL, 0, NULL, PGRES_TUPLES_OK, err, errlen);
    if (!res)
        return -1;
    bool ok = PQntuples(res) == 1 && parse_switch(PQgetvalue(res, 0, 0), group_of(g, 0, "local"));
    PQclear(res);
    if (!ok) {
        snprintf(err, errlen, "pg_switch_wal on the coordinator gave no segment name");
        return -1;
    }
    res = backup_query(conn, ON_WORKERS(SWITCH_SQL), 0, NULL, PGRES_TUPLES_OK, err, errlen);
    if (!res)
        return -1;
    int rc = 0;
    for (int i = 0; i < PQntuples(res) && rc == 0; i++) {
        struct group_wal *w = group_of(g, atoi(PQgetvalue(res, i, 0)), PQgetvalue(res, i, 1));
        if (strcmp(PQgetvalue(res, i, 2), "t") != 0 || !parse_switch(PQgetvalue(res, i, 3), w)) {
            snprintf(err, errlen, "pg_switch_wal failed on group %d (%s): %.200s", w->group,
                     w->node, PQgetvalue(res, i, 3));
            rc = -1;
        }
    }
    PQclear(res);
    return rc;
}

/* One look at every group's archiver. true when all have archived their segment; -1 in *rc
 * on a query error. */
static bool all_archived(PGconn *conn, struct groups *g, int *rc, char *err, size_t errlen)
{
    PGresult *res = backup_query(conn, ARCHIVER_SQL, 0, NULL, PGRES_TUPLES_OK, err, errlen);
    if (!res) {
        *rc = -1;
        return false;
    }
    if (PQntuples(res) == 1)
        parse_archiver(PQgetvalue(res, 0, 0), group_of(g, 0, "local"));
    PQclear(res);
    res = backup_query(conn, ON_WORKERS(ARCHIVER_SQL), 0, NULL, PGRES_TUPLES_OK, err, errlen);
    if (!res) {
        *rc = -1;
        return false;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        int group = atoi(PQgetvalue(res, i, 0));
        for (size_t k = 0; k < g->count; k++)
            if (group != 0 && g->items[k].group == group && strcmp(PQgetvalue(res, i, 2), "t") == 0)
                parse_archiver(PQgetvalue(res, i, 3), &g->items[k]);
    }
    PQclear(res);
    for (size_t k = 0; k < g->count; k++)
        if (!g->items[k].reached)
            return false;
    return true;
}

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static char *document(const char *name, time_t created, const char *lsn, double pause_ms,
                      const struct groups *g)
{
    char when[32], key[16];
    catalog_format_time(created, when, sizeof when);
    cJSON *doc = cJSON_CreateObject(), *groups = cJSON_CreateObject();
    if (!doc || !groups)
        abort();
    cJSON_AddStringToObject(doc, "name", name);
    cJSON_AddStringToObject(doc, "time", when);
    cJSON_AddStringToObject(doc, "lsn", lsn);
    cJSON_AddNumberToObject(doc, "pause_ms", pause_ms);
    /* Per group an LSN at or before its restore point: the coordinator's is the restore
     * point's own, a worker's where its WAL stood just before (a backup that ended there
     * can recover to the restore point: restore-bootstrap picks the backup by it). */
    for (size_t i = 0; i < g->count; i++) {
        if (!g->items[i].before[0])
            continue; /* a group registered meanwhile: its restore point is not known */
        snprintf(key, sizeof key, "%d", g->items[i].group);
        cJSON_AddStringToObject(groups, key, g->items[i].group == 0 ? lsn : g->items[i].before);
    }
    cJSON_AddItemToObject(doc, "groups", groups);
    char *text = cJSON_Print(doc);
    cJSON_Delete(doc);
    if (!text)
        abort();
    return text;
}

static bool name_taken(PGconn *conn, const char *name, char *err, size_t errlen, int *rc)
{
    const char *p[] = {name};
    PGresult *res = backup_query(conn, "SELECT 1 FROM citus_init.restore_points WHERE name = $1", 1, p,
                          PGRES_TUPLES_OK, err, errlen);
    if (!res) {
        *rc = -1;
        return false;
    }
    bool taken = PQntuples(res) > 0;
    PQclear(res);
    return taken;
}

static int fail(const char *msg, const char *name, const char *err)
{
    log_error(msg, "name", name ? name : "-", "error", err, NULL);
    return -1;
}

int restorepoint_create(const struct config *cfg, const char *given,
                        struct restore_point_outcome *out)
{
    char err[512];
    if (!cfg->citus_enabled || cfg->citus_group != 0)
        return fail("restore point refused: restore points are made on the Citus coordinator "
                    "(CITUS_ENABLED=true, CITUS_GROUP=0)", given, "not the coordinator");
    if (given && !restore_point_name_valid(given))
        return fail("restore point refused: not a restore point name; expected 1-63 of "
                    "A-Za-z0-9_.-", given, "invalid name");
    PGconn *conn = backup_connect_local(cfg, err, sizeof err);
    if (!conn)
        return fail("restore point failed: cannot connect to the local PostgreSQL", given, err);
    int rc = 0;
    char name[64] = "";
    time_t created = 0;
    struct groups g = {0};
    char *doc = NULL;
    int primary = backup_is_primary(conn, err, sizeof err);
    if (primary != 1) {
        rc = fail("restore point refused: this member is not the coordinator's primary", given,
                  primary == 0 ? "PostgreSQL is in recovery" : err);
        goto out;
    }
    if (backup_ensure_tables(cfg, conn, true, err, sizeof err) < 0) {
        rc = fail("restore point failed: citus_init.restore_points cannot be created", given,
                  err);
        goto out;
    }
    if (given) {
        snprintf(name, sizeof name, "%s", given);
        created = time(NULL);
        if (name_taken(conn, name, err, sizeof err, &rc) || rc < 0) {
            rc = fail("restore point refused: the name is taken", name,
                      rc < 0 ? err : "already in citus_init.restore_points");
            goto out;
        }
    } else {
        /* one per second at most: the names are the seconds */
        for (int tries = 0;; tries++) {
            created = time(NULL);
            catalog_name_for(created, name, sizeof name);
            if (!name_taken(conn, name, err, sizeof err, &rc) || rc < 0 || tries == 3)
                break;
            sleep(1);
        }
        if (rc < 0) {
            rc = fail("restore point failed", name, err);
            goto out;
        }
    }

    if (positions(conn, &g, err, sizeof err) < 0) {
        rc = fail("restore point failed: the groups' WAL positions", name, err);
        goto out;
    }
    const char *p1[] = {name};
    double t0 = mono_now();
    PGresult *res = backup_query(conn, "SELECT citus_create_restore_point($1)::text", 1, p1,
                          PGRES_TUPLES_OK, err, sizeof err);
    double pause_ms = (mono_now() - t0) * 1000.0;
    if (!res) {
        rc = fail("restore point failed: citus_create_restore_point", name, err);
        goto out;
    }
    char lsn[32];
    snprintf(lsn, sizeof lsn, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    char pause[32], created_s[32];
    snprintf(pause, sizeof pause, "%.1f", pause_ms);
    snprintf(created_s, sizeof created_s, "%lld", (long long)created);
    const char *p2[] = {name, created_s, lsn, pause};
    res = backup_query(conn,
                "INSERT INTO citus_init.restore_points (name, created_at, lsn, pause_ms) "
                "VALUES ($1, to_timestamp($2), $3, $4)",
                4, p2, PGRES_COMMAND_OK, err, sizeof err);
    if (!res)
        log_warn("restore point not recorded in citus_init.restore_points", "name", name, "error",
                 err, NULL);
    PQclear(res);
    log_info("restore point created", "name", name, "pause_ms", pause, "lsn", lsn, NULL);

    double wait_from = mono_now();
    if (switch_all(conn, &g, err, sizeof err) < 0) {
        rc = fail("restore point not available: the WAL switch failed", name, err);
        goto out;
    }
    for (;;) {
        if (all_archived(conn, &g, &rc, err, sizeof err))
            break;
        if (rc < 0) {
            rc = fail("restore point not available: cannot ask the archivers", name, err);
            goto out;
        }
        if (mono_now() - wait_from > RESTORE_POINT_ARCHIVE_WAIT_S) {
            for (size_t k = 0; k < g.count; k++) {
                if (g.items[k].reached)
                    continue;
                char group[16], waited[16];
                snprintf(group, sizeof group, "%d", g.items[k].group);
                snprintf(waited, sizeof waited, "%d", RESTORE_POINT_ARCHIVE_WAIT_S);
                log_error("restore point not available: WAL not archived in time", "name", name,
                          "group", group, "node", g.items[k].node, "segment", g.items[k].segment,
                          "last_archived_wal", g.items[k].last_archived[0]
                                                   ? g.items[k].last_archived : "-",
                          "last_failed_wal", g.items[k].last_failed[0] ? g.items[k].last_failed
                                                                       : "-",
                          "waited_s", waited, NULL);
            }
            rc = -1;
            goto out;
        }
        sleep(RESTORE_POINT_POLL_S);
    }
    double archived_after = mono_now() - wait_from;

    doc = document(name, created, lsn, pause_ms, &g);
    struct catalog_repo repo = catalog_repo_of(cfg, false);
    struct diag d;
    diag_init(&d);
    if (catalog_write(&repo, cfg->cluster_name, name, doc, &d) < 0) {
        for (size_t i = 0; i < d.count; i++)
            log_error("restore point not available: the catalogue entry cannot be written",
                      "name", name, "error", d.items[i].message, NULL);
        diag_free(&d);
        rc = -1;
        goto out;
    }
    diag_free(&d);
    res = backup_query(conn, "UPDATE citus_init.restore_points SET archived_at = now() WHERE name = $1",
                1, p1, PGRES_COMMAND_OK, err, sizeof err);
    PQclear(res);
    char after[32];
    snprintf(after, sizeof after, "%.1f", archived_after);
    log_info("restore point available", "name", name, "archived_after_s", after, NULL);
    if (out) {
        snprintf(out->name, sizeof out->name, "%s", name);
        snprintf(out->lsn, sizeof out->lsn, "%s", lsn);
        out->pause_ms = pause_ms;
        out->archived_after_s = archived_after;
    }
out:
    free(doc);
    free(g.items);
    PQfinish(conn);
    return rc;
}

/* ------------------------------------------------------------------ pruning */

static void log_diag_errors(const struct diag *d, const char *msg);

struct stanza_info {
    char group[16];
    bool ok;               /* info read and it lists at least one backup */
    struct pgbackrest_result r;
};

static struct stanza_info *info_for(const struct config *cfg, struct stanza_info **infos,
                                    size_t *count, const char *group)
{
    for (size_t i = 0; i < *count; i++)
        if (strcmp((*infos)[i].group, group) == 0)
            return &(*infos)[i];
    struct stanza_info *more = realloc(*infos, (*count + 1) * sizeof *more);
    if (!more)
        abort();
    *infos = more;
    struct stanza_info *in = &more[(*count)++];
    memset(in, 0, sizeof *in);
    snprintf(in->group, sizeof in->group, "%s", group);
    char *stanza = xasprintf("%s-%s", cfg->cluster_name, group);
    const char *args[] = {"--output=json", "info", NULL};
    if (backup_pgbackrest(cfg, BACKUP_CONF_FILE, stanza, args, &in->r) == 0) {
        in->ok = in->r.status == 0 && backup_info_count(in->r.out, in->r.out_len) > 0;
        if (!in->ok) {
            char err[512];
            backup_pgbackrest_error(cfg, &in->r, err, sizeof err);
            log_warn("restore points not pruned: the stanza's backups cannot be read", "stanza",
                     stanza, "error", in->r.status == 0 ? "no backup" : err, NULL);
        }
    } else {
        memset(&in->r, 0, sizeof in->r);
    }
    free(stanza);
    return in;
}

static bool all_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

/* 1: some group of the entry has no backup before its position; 0: every group has one;
 * -1: cannot tell (logged). */
static int entry_expired(const struct config *cfg, const char *json,
                         struct stanza_info **infos, size_t *count)
{
    cJSON *doc = cJSON_Parse(json);
    const cJSON *groups = cJSON_GetObjectItemCaseSensitive(doc, "groups"), *g;
    int rc = cJSON_IsObject(groups) && groups->child ? 0 : -1;
    cJSON_ArrayForEach(g, groups) {
        unsigned long long lsn;
        if (!all_digits(g->string) || !cJSON_IsString(g) ||
            !backup_parse_lsn(g->valuestring, &lsn)) {
            rc = -1;
            break;
        }
        struct stanza_info *in = info_for(cfg, infos, count, g->string);
        if (!in->ok) {
            rc = -1;
            break;
        }
        char label[64];
        if (!backup_info_before(in->r.out, in->r.out_len, lsn, label, sizeof label))
            rc = 1; /* and look at the other groups: one that cannot be judged wins */
    }
    cJSON_Delete(doc);
    return rc;
}

int restorepoint_prune(const struct config *cfg)
{
    if (!cfg->citus_enabled || cfg->citus_group != 0 || cfg->backup.repo == BACKUP_REPO_NONE)
        return 0;
    struct catalog_repo repo = catalog_repo_of(cfg, false);
    struct catalog_list l;
    struct diag d;
    diag_init(&d);
    if (catalog_list(&repo, cfg->cluster_name, &l, &d) < 0) {
        log_diag_errors(&d, "restore points not pruned: the catalogue cannot be listed");
        diag_free(&d);
        return -1;
    }
    struct stanza_info *infos = NULL;
    size_t ninfos = 0, pruned = 0;
    int rc = 0;
    char err[512];
    PGconn *conn = backup_connect_local(cfg, err, sizeof err);
    if (!conn)
        log_warn("restore points pruned from the catalogue only: cannot connect to the local "
                 "PostgreSQL", "error", err, NULL);
    const char *first = NULL, *last = NULL;
    for (size_t i = 0; i < l.count && rc == 0; i++) {
        char *json = NULL;
        int found = catalog_read(&repo, cfg->cluster_name, l.items[i].name, &json, &d);
        if (found == 1)
            continue; /* removed meanwhile */
        if (found < 0) {
            rc = -1;
            break;
        }
        int expired = entry_expired(cfg, json, &infos, &ninfos);
        free(json);
        if (expired <= 0)
            break; /* restorable (so is every later one), or cannot tell: keep from here */
        if (catalog_remove(&repo, cfg->cluster_name, l.items[i].name, &d) < 0) {
            rc = -1;
            break;
        }
        if (conn) {
            const char *p1[] = {l.items[i].name};
            PGresult *res = backup_query(conn, "DELETE FROM citus_init.restore_points WHERE "
                                         "name = $1", 1, p1, PGRES_COMMAND_OK, err, sizeof err);
            if (!res)
                log_warn("restore point pruned from the catalogue but not from "
                         "citus_init.restore_points", "name", l.items[i].name, "error", err,
                         NULL);
            PQclear(res);
        }
        if (!first)
            first = l.items[i].name;
        last = l.items[i].name;
        pruned++;
    }
    if (rc < 0)
        log_diag_errors(&d, "restore points not pruned: the catalogue cannot be changed");
    if (pruned) {
        char n[24];
        snprintf(n, sizeof n, "%zu", pruned);
        log_info("restore points pruned: retention expired the backups they need", "count", n,
                 "oldest", first, "newest", last, NULL);
    }
    for (size_t i = 0; i < ninfos; i++)
        backup_pgbackrest_free(&infos[i].r);
    free(infos);
    PQfinish(conn);
    catalog_list_free(&l);
    diag_free(&d);
    return rc < 0 ? -1 : (int)pruned;
}

/* ------------------------------------------------------------------ commands */

static bool backups_on(const struct config *cfg, const char *command)
{
    if (cfg->backup.repo != BACKUP_REPO_NONE)
        return true;
    log_error("BACKUP_REPO is none: backups, restore points and restores are off", "command",
              command, NULL);
    return false;
}

int restorepoint_command(const struct config *cfg, int argc, char *const *argv)
{
    if (argc > 1 || (argc == 1 && argv[0][0] == '-')) {
        fprintf(stderr, "citus-init restore-point: expected at most a NAME (1-63 of "
                        "A-Za-z0-9_.-)\n");
        return 64;
    }
    if (!backups_on(cfg, "restore-point"))
        return 1;
    struct restore_point_outcome o;
    if (restorepoint_create(cfg, argc ? argv[0] : NULL, &o) < 0)
        return 1;
    printf("%s\n", o.name);
    return fflush(stdout) == 0 ? 0 : 1;
}

/* The repository a cluster's catalogue is read from: a restore's source for its name, our
 * own otherwise. */
static struct catalog_repo repo_of(const struct config *cfg, const char *cluster)
{
    return catalog_repo_of(cfg, cfg->backup.restore_from_cluster &&
                                    strcmp(cluster, cfg->backup.restore_from_cluster) == 0);
}

static void log_diag_errors(const struct diag *d, const char *msg)
{
    for (size_t i = 0; i < d->count; i++)
        if (d->items[i].severity == DIAG_ERROR)
            log_error(msg, "error", d->items[i].message, NULL);
        else
            log_warn(msg, "problem", d->items[i].message, NULL);
}

int restorepoint_list_command(const struct config *cfg, int argc, char *const *argv)
{
    const char *cluster = cfg->backup.restore_from_cluster ? cfg->backup.restore_from_cluster
                                                           : cfg->cluster_name;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--cluster") == 0 && i + 1 < argc) {
            cluster = argv[++i];
        } else if (strncmp(argv[i], "--cluster=", 10) == 0) {
            cluster = argv[i] + 10;
        } else {
            fprintf(stderr, "citus-init restore-points: unknown argument \"%s\"; expected "
                            "[--cluster NAME]\n", argv[i]);
            return 64;
        }
    }
    if (!backups_on(cfg, "restore-points"))
        return 1;
    struct catalog_repo repo = repo_of(cfg, cluster);
    struct catalog_list l;
    struct diag d;
    diag_init(&d);
    int rc = catalog_list(&repo, cluster, &l, &d);
    log_diag_errors(&d, rc < 0 ? "restore points cannot be listed" : "catalogue");
    diag_free(&d);
    if (rc < 0)
        return 1;
    for (size_t i = 0; i < l.count; i++) {
        char when[32];
        catalog_format_time(l.items[i].time, when, sizeof when);
        printf("%s\t%s\n", l.items[i].name, when);
    }
    catalog_list_free(&l);
    return fflush(stdout) == 0 ? 0 : 1;
}

/* What pgBackRest is asked to restore to. */
struct resolved {
    const char *type;     /* name, time, default */
    char target[96];      /* empty for default */
    bool have_lsn;        /* a catalogue entry's position for this group (picks the backup) */
    unsigned long long lsn;
};

/* This group's position in the catalogue entry name of the source: 0, or -1 after logging
 * (not in the catalogue, not a document, no position for this group). */
static int entry_position(const struct config *cfg, const char *name, struct resolved *r,
                          struct diag *d)
{
    const struct backup_config *b = &cfg->backup;
    struct catalog_repo repo = catalog_repo_of(cfg, true);
    char *json = NULL;
    int found = catalog_read(&repo, b->restore_from_cluster, name, &json, d);
    if (found == 1)
        log_error("RESTORE_TARGET: the restore point is not in the catalogue of the source "
                  "cluster; expected an available restore point (citus-init restore-points "
                  "lists them)", "name", name, "cluster", b->restore_from_cluster,
                  "repository", b->source.path, NULL);
    if (found != 0)
        return -1;
    char group[16];
    snprintf(group, sizeof group, "%d", cfg->citus_group);
    cJSON *doc = cJSON_Parse(json);
    free(json);
    const cJSON *pos = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(doc, "groups"), group);
    r->have_lsn = cJSON_IsString(pos) && backup_parse_lsn(pos->valuestring, &r->lsn);
    cJSON_Delete(doc);
    if (!r->have_lsn) {
        log_error("RESTORE_TARGET: the catalogue entry has no position for this group (the "
                  "group was not part of the cluster at that restore point)", "name", name,
                  "cluster", b->restore_from_cluster, "citus_group", group, NULL);
        return -1;
    }
    return 0;
}

static int resolve_target(const struct config *cfg, struct resolved *r)
{
    const struct backup_config *b = &cfg->backup;
    struct catalog_repo repo = catalog_repo_of(cfg, true);
    struct diag d;
    diag_init(&d);
    int rc = 0;
    memset(r, 0, sizeof *r);
    if (b->restore_target_kind == RESTORE_TARGET_LATEST) {
        r->type = "default";
        if (cfg->citus_enabled)
            log_warn("RESTORE_TARGET=latest: every group replays its own archive to its end; "
                     "with Citus the groups are NOT consistent with each other (use a restore "
                     "point name or a time)", "cluster", b->restore_from_cluster, NULL);
    } else if (b->restore_target_kind == RESTORE_TARGET_NAME) {
        /* without Citus a name is PostgreSQL's own business (pg_create_restore_point) */
        r->type = "name";
        snprintf(r->target, sizeof r->target, "%s", b->restore_target);
        if (cfg->citus_enabled)
            rc = entry_position(cfg, b->restore_target, r, &d);
    } else {
        time_t t;
        if (!catalog_parse_time(b->restore_target, &t)) {
            log_error("RESTORE_TARGET: not an RFC 3339 UTC time", "target", b->restore_target,
                      NULL);
            rc = -1;
        } else if (!cfg->citus_enabled) {
            /* pgBackRest's own form (it selects the backup set before that time) */
            struct tm tm;
            gmtime_r(&t, &tm);
            strftime(r->target, sizeof r->target, "%Y-%m-%d %H:%M:%S+00", &tm);
            r->type = "time";
        } else {
            struct catalog_list l;
            if (catalog_list(&repo, b->restore_from_cluster, &l, &d) < 0) {
                rc = -1;
            } else {
                const struct catalog_entry *e = restorepoint_latest_at(&l, t);
                if (!e) {
                    log_error("RESTORE_TARGET: no available restore point at or before that time "
                              "in the catalogue of the source cluster", "target",
                              b->restore_target, "cluster", b->restore_from_cluster,
                              "restore_points", l.count ? "all later" : "none", NULL);
                    rc = -1;
                } else {
                    r->type = "name";
                    snprintf(r->target, sizeof r->target, "%s", e->name);
                    rc = entry_position(cfg, e->name, r, &d);
                }
                catalog_list_free(&l);
            }
        }
    }
    log_diag_errors(&d, "RESTORE_TARGET cannot be resolved");
    diag_free(&d);
    return rc;
}

/* For a restore point of known position: the newest backup of this group's source stanza
 * that ended at or before it. 0 with label, 1 none, -1 error. */
static int backup_set_for(const struct config *cfg, unsigned long long lsn, char *label,
                          size_t size)
{
    struct pgbackrest_result r;
    const char *args[] = {"--output=json", "info", NULL};
    if (backup_pgbackrest(cfg, BACKUP_RESTORE_CONF_FILE, cfg->backup.restore_stanza, args, &r) < 0)
        return -1;
    int rc = 0;
    if (r.status != 0 || backup_info_count(r.out, r.out_len) < 0) {
        char err[512];
        backup_pgbackrest_error(cfg, &r, err, sizeof err);
        log_error("restore failed: pgbackrest info of the source stanza", "stanza",
                  cfg->backup.restore_stanza, "error", err, NULL);
        rc = -1;
    } else if (!backup_info_before(r.out, r.out_len, lsn, label, size)) {
        rc = 1;
    }
    backup_pgbackrest_free(&r);
    return rc;
}

/* ------------------------------------------------------------------ detaching a restored node */

/* A restored Citus node still names the source cluster's nodes in pg_dist_node. Started by
 * Patroni as it is, it would reach them: the coordinator's maintenance daemon recovers
 * two-phase commits against the source's workers (committing or aborting their prepared
 * transactions), Patroni's post_bootstrap ALTER ROLE (the new superuser password) propagates
 * to them, and distributed queries go to them. So before Patroni starts it, the restored
 * node is recovered privately (no TCP, a private socket and pg_hba, no archiving, no
 * synchronous standbys, Citus' background work off), and its pg_dist_node is cut loose:
 * on the coordinator the workers' rows go and its own row names this member (Patroni adds
 * the new cluster's worker leaders under their groups as they come up, which syncs their
 * metadata again); on a worker every row goes (the coordinator's activation re-syncs it).
 * Placements are by group and stay. */

static int run_argv(const char *const *argv, const char *what)
{
    pid_t pid = fork();
    if (pid < 0) {
        log_error("restore: cannot start a process", "command", what, "error", strerror(errno),
                  NULL);
        return -1;
    }
    if (pid == 0) {
        execv(argv[0], (char *const *)argv);
        fprintf(stderr, "citus-init: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int pg_ctl(const struct config *cfg, const char *dir, bool start)
{
    char exe[4096], log_file[4096], opts[8192];
    snprintf(exe, sizeof exe, "%s/pg_ctl", cfg->pg_bin_dir);
    snprintf(log_file, sizeof log_file, "%s/postgresql.log", dir);
    /* RUN_DIR holds none of ' " \ $ ` % with backups on (config.c), so quoting is plain. */
    snprintf(opts, sizeof opts,
             "-c listen_addresses='' -c unix_socket_directories='%s' -c port=%d "
             "-c hba_file='%s/pg_hba.conf' -c ssl=off -c archive_mode=off "
             "-c synchronous_standby_names='' -c hot_standby=off "
             "-c citus.recover_2pc_interval=-1 -c citus.distributed_deadlock_detection_factor=-1 "
             "-c citus.enable_statistics_collection=off -c citus.background_task_queue_interval=-1",
             dir, cfg->pg_port, dir);
    const char *argv_start[] = {exe, "-D", cfg->pgdata, "-w", "-t", "86400", "-l", log_file,
                                "-o", opts, "start", NULL};
    const char *argv_stop[] = {exe, "-D", cfg->pgdata, "-w", "-t", "600", "-m", "fast", "stop",
                               NULL};
    return run_argv(start ? argv_start : argv_stop, start ? "pg_ctl start" : "pg_ctl stop");
}

static PGconn *private_connect(const struct config *cfg, const char *dir)
{
    char port[16];
    snprintf(port, sizeof port, "%d", cfg->pg_port);
    const char *keys[] = {"host", "port", "user", "dbname", "application_name", NULL};
    const char *vals[] = {dir, port, cfg->superuser_username, cfg->citus_database,
                          "citus-init restore", NULL};
    return PQconnectdbParams(keys, vals, 0);
}

/* Connect once the server takes connections: with hot_standby off it takes none until the
 * recovery has reached its target and promoted, however long the WAL replay takes. Any other
 * failure (the server ended: a target not in the WAL, say) ends the wait. */
static PGconn *connect_when_promoted(const struct config *cfg, const char *dir, char *err,
                                     size_t errlen)
{
    for (;;) {
        PGconn *conn = private_connect(cfg, dir);
        if (PQstatus(conn) == CONNECTION_OK) {
            int primary = backup_is_primary(conn, err, errlen);
            if (primary > 0)
                return conn;
            PQfinish(conn);
            if (primary < 0)
                return NULL;
        } else {
            const char *msg = PQerrorMessage(conn);
            bool waiting = strstr(msg, "not accepting connections") ||
                           strstr(msg, "not yet accepting connections") ||
                           strstr(msg, "is starting up");
            if (!waiting) {
                backup_pq_error(conn, NULL, err, errlen);
                PQfinish(conn);
                return NULL;
            }
            PQfinish(conn);
        }
        sleep(1);
    }
}

/* The last lines of the private server's log, on one line: why a recovery failed. */
static void log_tail(const char *path, char *buf, size_t size)
{
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char lines[4][512] = {{0}};
    int n = 0;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0])
            snprintf(lines[n++ % 4], sizeof lines[0], "%s", line);
    }
    fclose(f);
    size_t used = 0;
    for (int i = n > 4 ? n - 4 : 0; i < n && used + 4 < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%s", used ? " | " : "",
                                 lines[i % 4]);
}

/* One statement (or a parameterless string of several); 0, or -1 with the error in err. */
static int exec_ok(PGconn *conn, const char *sql, int n, const char *const *params, char *err,
                   size_t errlen)
{
    PGresult *res = n ? PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0)
                      : PQexec(conn, sql);
    int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -1;
    if (rc < 0)
        backup_pq_error(conn, res, err, errlen);
    PQclear(res);
    return rc;
}

static int detach_from_source(const struct config *cfg)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/restore-XXXXXX", cfg->run_dir);
    if (!mkdtemp(dir)) {
        log_error("restore: cannot create a private directory", "path", dir, "error",
                  strerror(errno), NULL);
        return -1;
    }
    char hba[4200];
    snprintf(hba, sizeof hba, "%s/pg_hba.conf", dir);
    FILE *f = fopen(hba, "w");
    if (!f || fputs("local all all trust\n", f) == EOF || fclose(f) != 0) {
        log_error("restore: cannot write the private pg_hba.conf", "path", hba, NULL);
        return -1;
    }
    log_info("restore: recovering privately to cut the restored node loose from the source's "
             "nodes", "data_dir", cfg->pgdata, NULL);
    double t0 = mono_now();
    if (pg_ctl(cfg, dir, true) < 0) {
        log_error("restore: PostgreSQL did not start on the restored data directory; see its "
                  "log", "log", dir, NULL);
        return -1;
    }
    int rc = -1;
    char err[512] = "";
    PGconn *conn = connect_when_promoted(cfg, dir, err, sizeof err);
    if (conn) {
        char port[16];
        snprintf(port, sizeof port, "%d", cfg->pg_port);
        const char *self[2] = {cfg->connect_host, port};
        /* The superuser's entry in pg_dist_authinfo (Patroni writes it at an initdb bootstrap,
         * not after a custom one) still holds the source's password: the nodes of the new
         * cluster would refuse each other. Written as Patroni writes it. */
        char *password = conninfo_quoted("password", cfg->superuser_password
                                                         ? cfg->superuser_password : "");
        char *cert = NULL, *key = NULL, *authinfo;
        if (cfg->ssl_enabled && cfg->ssl_client_cert) {
            char *cp = config_path(cfg, "tls/server.crt"), *kp = config_path(cfg, "tls/server.key");
            cert = conninfo_quoted("sslcert", cp);
            key = conninfo_quoted("sslkey", kp);
            free(cp);
            free(kp);
            authinfo = xasprintf("%s %s %s", password, cert, key);
        } else {
            authinfo = xstrdup(password);
        }
        const char *auth[2] = {cfg->superuser_username, authinfo};
        struct step {
            const char *sql;
            int n;
            const char *const *params;
        };
        /* one transaction each; on the coordinator its own row names this member */
        const struct step coordinator[] = {
            {"BEGIN", 0, NULL},
            {"SET LOCAL citus.enable_ddl_propagation TO off", 0, NULL},
            {"CREATE SCHEMA IF NOT EXISTS citus_init", 0, NULL},
            {"CREATE TABLE IF NOT EXISTS citus_init.restored_nodes (nodeid integer PRIMARY KEY, "
             "groupid integer NOT NULL, source_nodename text NOT NULL, source_nodeport integer "
             "NOT NULL)", 0, NULL},
            {"INSERT INTO citus_init.restored_nodes SELECT nodeid, groupid, nodename, nodeport "
             "FROM pg_catalog.pg_dist_node WHERE groupid <> 0 ON CONFLICT (nodeid) DO NOTHING",
             0, NULL},
            /* inactive: no propagation, no 2PC recovery, no query reaches them; a name per
             * row (nodename, nodeport is unique) that can never resolve (RFC 2606) */
            {"UPDATE pg_catalog.pg_dist_node SET nodename = 'restored-node-' || nodeid || "
             "'.invalid', isactive = false, metadatasynced = false WHERE groupid <> 0", 0, NULL},
            {"UPDATE pg_catalog.pg_dist_node SET nodename = $1, nodeport = $2::int "
             "WHERE groupid = 0", 2, self},
            {"DELETE FROM pg_catalog.pg_dist_poolinfo", 0, NULL},
            {"DELETE FROM pg_catalog.pg_dist_authinfo WHERE nodeid > 0 OR rolename = $1", 1,
             auth},
            {"INSERT INTO pg_catalog.pg_dist_authinfo VALUES (0, $1, $2)", 2, auth},
            {"COMMIT", 0, NULL},
            {NULL, 0, NULL}};
        const struct step worker[] = {
            {"BEGIN", 0, NULL},
            {"DELETE FROM pg_catalog.pg_dist_node", 0, NULL},
            {"DELETE FROM pg_catalog.pg_dist_poolinfo", 0, NULL},
            {"DELETE FROM pg_catalog.pg_dist_authinfo WHERE nodeid > 0 OR rolename = $1", 1,
             auth},
            {"INSERT INTO pg_catalog.pg_dist_authinfo VALUES (0, $1, $2)", 2, auth},
            {"COMMIT", 0, NULL},
            {NULL, 0, NULL}};
        rc = 0;
        for (const struct step *st = cfg->citus_group == 0 ? coordinator : worker;
             st->sql && rc == 0; st++)
            rc = exec_ok(conn, st->sql, st->n, st->params, err, sizeof err);
        explicit_bzero(password, strlen(password));
        explicit_bzero(authinfo, strlen(authinfo));
        free(password);
        free(authinfo);
        free(cert);
        free(key);
    }
    PQfinish(conn);
    int stopped = pg_ctl(cfg, dir, false);
    char took[32];
    snprintf(took, sizeof took, "%.1f", mono_now() - t0);
    if (rc < 0) {
        char log_file[4200], tail[2048];
        snprintf(log_file, sizeof log_file, "%s/postgresql.log", dir);
        log_tail(log_file, tail, sizeof tail);
        log_error("restore: the restored node could not be cut loose from the source's nodes "
                  "(pg_dist_node)", "data_dir", cfg->pgdata, "error", err[0] ? err : "-",
                  "server_log", log_file, "server_log_tail", tail[0] ? tail : "-", NULL);
        return -1;
    }
    if (stopped < 0) {
        log_error("restore: PostgreSQL did not stop after the private recovery", "log", dir,
                  NULL);
        return -1;
    }
    log_info("restore: recovered and promoted; pg_dist_node reaches no node of the source",
             "group", cfg->citus_group == 0 ? "coordinator" : "worker", "duration_s", took, NULL);
    unlink(hba);
    char log_file[4200];
    snprintf(log_file, sizeof log_file, "%s/postgresql.log", dir);
    unlink(log_file);
    rmdir(dir);
    return 0;
}

int restorepoint_bootstrap_command(const struct config *cfg, int argc, char *const *argv)
{
    (void)argv;
    if (argc > 0) {
        fprintf(stderr, "citus-init restore-bootstrap: takes no arguments (Patroni runs it with "
                        "no_params)\n");
        return 64;
    }
    if (!backups_on(cfg, "restore-bootstrap"))
        return 1;
    const struct backup_config *b = &cfg->backup;
    if (!b->restore_from_cluster) {
        log_error("restore-bootstrap: RESTORE_FROM_CLUSTER is not set; expected the source "
                  "cluster's name (this command is Patroni's bootstrap of a restore)", NULL);
        return 1;
    }
    struct resolved r;
    if (resolve_target(cfg, &r) < 0)
        return 1;
    char set[96] = "";
    if (r.have_lsn) {
        int found = backup_set_for(cfg, r.lsn, set, sizeof set);
        if (found < 0)
            return 1;
        if (found == 1) {
            log_error("restore failed: no backup of the source stanza ended before the restore "
                      "point", "stanza", b->restore_stanza, "restore_point", r.target, NULL);
            return 1;
        }
    }
    log_info("restore target resolved", "restore_target",
             b->restore_target ? b->restore_target : "latest", "type", r.type, "target",
             r.target[0] ? r.target : "-", "stanza", b->restore_stanza, "backup_set",
             set[0] ? set : "latest", NULL);

    char type_arg[32], target_arg[128], set_arg[128];
    const char *args[8];
    int n = 0;
    args[n++] = "restore";
    snprintf(type_arg, sizeof type_arg, "--type=%s", r.type);
    args[n++] = type_arg;
    if (r.target[0]) {
        snprintf(target_arg, sizeof target_arg, "--target=%s", r.target);
        args[n++] = target_arg;
        args[n++] = "--target-action=promote";
    }
    if (set[0]) {
        snprintf(set_arg, sizeof set_arg, "--set=%s", set);
        args[n++] = set_arg;
    }
    args[n] = NULL;
    double t0 = mono_now();
    struct pgbackrest_result res;
    if (backup_pgbackrest(cfg, BACKUP_RESTORE_CONF_FILE, b->restore_stanza, args, &res) < 0)
        return 1;
    char took[32];
    snprintf(took, sizeof took, "%.1f", mono_now() - t0);
    int rc = 0;
    if (res.status != 0) {
        char err[512];
        backup_pgbackrest_error(cfg, &res, err, sizeof err);
        log_error("restore failed", "stanza", b->restore_stanza, "data_dir", cfg->pgdata,
                  "duration_s", took, "error", err, NULL);
        rc = 1;
    } else if (cfg->citus_enabled) {
        log_info("restore done", "stanza", b->restore_stanza, "data_dir", cfg->pgdata,
                 "duration_s", took, NULL);
        rc = detach_from_source(cfg) == 0 ? 0 : 1;
    } else {
        log_info("restore done; PostgreSQL recovers to the target and promotes", "stanza",
                 b->restore_stanza, "data_dir", cfg->pgdata, "duration_s", took, NULL);
    }
    backup_pgbackrest_free(&res);
    return rc;
}

/* ------------------------------------------------------------------ rejoining the workers */

#define REJOIN_PENDING_SQL                                                                     \
    "SELECT n.nodeid::text, n.nodename, n.nodeport::text, n.groupid::text, "                    \
    "n.nodename LIKE '%.invalid', EXISTS (SELECT 1 FROM pg_catalog.pg_dist_node o "             \
    "WHERE o.groupid = n.groupid AND o.nodeid <> n.nodeid AND o.isactive AND "                  \
    "o.nodename NOT LIKE '%.invalid') FROM pg_catalog.pg_dist_node n "                         \
    "JOIN citus_init.restored_nodes r USING (nodeid) ORDER BY n.groupid"

int restorepoint_rejoin_workers(const struct config *cfg)
{
    if (!cfg->citus_enabled || cfg->citus_group != 0 || !cfg->backup.restore_from_cluster)
        return 0;
    char err[512] = "";
    PGconn *conn = backup_connect_local(cfg, err, sizeof err);
    if (!conn) {
        log_error("restored workers: cannot connect", "error", err, NULL);
        return -1;
    }
    PGresult *res = PQexec(conn, "SELECT to_regclass('citus_init.restored_nodes') IS NOT NULL");
    bool have = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
                strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    double deadline = mono_now() + RESTORE_REJOIN_WAIT_S;
    bool waiting_logged = false;
    int rc = 0;
    while (have) {
        /* rows Patroni itself removed (a group's second row, say) are done too */
        if (exec_ok(conn, "DELETE FROM citus_init.restored_nodes WHERE nodeid NOT IN "
                          "(SELECT nodeid FROM pg_catalog.pg_dist_node)",
                    0, NULL, err, sizeof err) < 0)
            log_warn("restored workers: cannot tidy citus_init.restored_nodes", "error", err,
                     NULL);
        res = PQexec(conn, REJOIN_PENDING_SQL);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            backup_pq_error(conn, res, err, sizeof err);
            PQclear(res);
            log_error("restored workers: cannot read pg_dist_node", "error", err, NULL);
            rc = -1;
            break;
        }
        int rows = PQntuples(res), waiting = 0;
        for (int i = 0; i < rows; i++) {
            const char *nodeid = PQgetvalue(res, i, 0), *host = PQgetvalue(res, i, 1),
                       *port = PQgetvalue(res, i, 2), *group = PQgetvalue(res, i, 3);
            const char *done[1] = {nodeid};
            if (strcmp(PQgetvalue(res, i, 4), "t") == 0) {
                if (strcmp(PQgetvalue(res, i, 5), "t") != 0) {
                    waiting++; /* Patroni has not pointed it at the new group's leader yet */
                    continue;
                }
                /* Another row of its group is the new leader's: this one (a second row the
                 * source held for the group) has no member here. */
                if (exec_ok(conn, "BEGIN", 0, NULL, err, sizeof err) == 0 &&
                    exec_ok(conn, "DELETE FROM pg_catalog.pg_dist_node WHERE nodeid = $1::int",
                            1, done, err, sizeof err) == 0 &&
                    exec_ok(conn, "DELETE FROM citus_init.restored_nodes WHERE nodeid = $1::int",
                            1, done, err, sizeof err) == 0 &&
                    exec_ok(conn, "COMMIT", 0, NULL, err, sizeof err) == 0)
                    log_info("restored workers: a second row of a group, with no member in this "
                             "cluster, removed", "group", group, "nodeid", nodeid, NULL);
                else
                    log_warn("restored workers: cannot remove a row with no member; will retry",
                             "group", group, "nodeid", nodeid, "error", err, NULL);
                PQclear(PQexec(conn, "ROLLBACK"));
                continue;
            }
            const char *activate[2] = {host, port};
            PGresult *a = PQexecParams(conn, "SELECT pg_catalog.citus_activate_node($1, $2::int)",
                                       2, NULL, activate, NULL, NULL, 0);
            bool ok = PQresultStatus(a) == PGRES_TUPLES_OK;
            if (!ok)
                backup_pq_error(conn, a, err, sizeof err);
            PQclear(a);
            if (ok && exec_ok(conn, "DELETE FROM citus_init.restored_nodes WHERE nodeid = $1::int",
                              1, done, err, sizeof err) == 0)
                log_info("restored worker group rejoined the cluster", "group", group, "node",
                         host, NULL);
            else
                log_warn("restored worker group: activation failed; will retry", "group", group,
                         "node", host, "error", err, NULL);
        }
        PQclear(res);
        if (rows == 0)
            break;
        if (waiting && !waiting_logged) {
            char n[16];
            snprintf(n, sizeof n, "%d", waiting);
            log_info("restored workers: waiting for Patroni to register the new groups' leaders",
                     "groups_waiting", n, NULL);
            waiting_logged = true;
        }
        if (mono_now() > deadline) {
            log_error("restored workers: not every worker group rejoined in time; restore "
                      "points wait until they have", "waited_s", "1800", NULL);
            rc = -1;
            break;
        }
        sleep(RESTORE_POINT_POLL_S);
    }
    PQfinish(conn);
    return rc;
}
