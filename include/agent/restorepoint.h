/* restorepoint.h: cluster-wide restore points (Citus) and restores (docs/backups.md).
 *
 * A restore point is made on the coordinator's primary: citus_create_restore_point(name)
 * (timed: the pause of distributed commits), a row in citus_init.restore_points, a WAL switch
 * on every group's primary (the coordinator locally, the workers through
 * run_command_on_workers), a wait (polled every second, at most RESTORE_POINT_ARCHIVE_WAIT_S)
 * until every group's pg_stat_archiver.last_archived_wal reaches the segment its switch
 * closed, then the catalogue entry (catalog.h) and archived_at. Only then is it available.
 *
 * A restore (`citus-init restore-bootstrap`, Patroni's bootstrap of a new cluster) resolves
 * RESTORE_TARGET and runs pgBackRest's restore of this group's stanza of the source cluster
 * into the empty PGDATA. All calls block. */
#ifndef CITUS_INIT_RESTOREPOINT_H
#define CITUS_INIT_RESTOREPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "catalog.h"
#include "config.h"

#define RESTORE_POINT_ARCHIVE_WAIT_S 600
#define RESTORE_POINT_POLL_S 1

struct restore_point_outcome {
    char name[64];
    char lsn[32];           /* citus_create_restore_point's answer (the coordinator's) */
    double pause_ms;
    double archived_after_s;
};

/* Make one restore point (name NULL: citus-YYYYMMDDTHHMMSSZ of now) and wait until it is
 * available. 0, or -1 after logging why. out may be NULL. */
int restorepoint_create(const struct config *cfg, const char *name,
                        struct restore_point_outcome *out);

/* `citus-init restore-point [NAME]`: prints the name once available. Exit status. */
int restorepoint_command(const struct config *cfg, int argc, char *const *argv);
/* `citus-init restore-points [--cluster NAME]`: name<TAB>time lines, sorted by time. */
int restorepoint_list_command(const struct config *cfg, int argc, char *const *argv);
/* `citus-init restore-bootstrap`: resolve RESTORE_TARGET, pgBackRest restore with
 * RUN_DIR/pgbackrest/restore.conf. 0, or 1 with a named error (an unknown target before
 * PGDATA is touched). */
int restorepoint_bootstrap_command(const struct config *cfg, int argc, char *const *argv);

/* On the Citus coordinator, after pgBackRest's retention expired backups: removes, oldest
 * first, every catalogue entry (and its citus_init.restore_points row) that no group can be
 * restored to any more (some group has no backup that ended at or before the entry's
 * position for it). Stops at the first entry that can still be restored, and at the first
 * one it cannot judge (a stanza's info unreadable or without backups). Number of entries
 * removed, or -1 after logging why (nothing else removed then). */
int restorepoint_prune(const struct config *cfg);

/* --- pure helpers, exposed for unit tests --- */

/* Whether pg_stat_archiver's last_archived_wal (a segment name, possibly with a suffix such
 * as .backup; .partial and history files do not count) shows that segment target (24 hex
 * digits) is archived: the same timeline and a segment at or after it. */
bool restorepoint_wal_reached(const char *last_archived, const char *target);
/* The newest entry of l (sorted by time) whose time is <= t, or NULL. */
const struct catalog_entry *restorepoint_latest_at(const struct catalog_list *l, time_t t);

/* On the coordinator's primary of a restored Citus cluster (RESTORE_FROM_CLUSTER): the
 * worker rows restore-bootstrap left inactive under names that cannot resolve
 * (citus_init.restored_nodes) are activated (citus_activate_node) once Patroni has pointed
 * them at the new groups' leaders. Blocks until none is left (polled every second, at most
 * RESTORE_REJOIN_WAIT_S). 0, or -1 after logging why. Nothing to do: 0 at once. */
#define RESTORE_REJOIN_WAIT_S 1800
int restorepoint_rejoin_workers(const struct config *cfg);

#endif
