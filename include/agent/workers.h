/* workers.h: Citus worker groups in and out of the cluster (docs/operations.md).
 *
 * Three one-shot commands, on the coordinator's primary: with COORDINATOR_HOST set (a Job)
 * over TCP like `extensions --wait`, else over the local socket of the coordinator member
 * they run in (`kubectl exec`), which must be its group's primary.
 *
 * - rebalance [--wait]: citus_rebalance_start() unless a rebalance job runs already (then
 *   that job is followed). Citus' default transfer mode (auto) moves shards by logical
 *   replication: writes go on during a move, and a table without a replica identity stops
 *   the start with Citus' error naming it. --wait follows the job in pg_dist_background_job
 *   (what citus_rebalance_status() reads): a "rebalance progress" line whenever the count of
 *   done tasks changes; the job's failure (or a task that failed WORKERS_TASK_MAX_ERRORS
 *   times: the job is cancelled) is the command's failure, with the task's message.
 * - drain-group GROUP: refuses, changing nothing, group 0, a group pg_dist_node does not
 *   know, a group whose distributed tables lack a replica identity (named), and the last
 *   group that can hold shards. Then shouldhaveshards=false on the group's primary,
 *   citus_rebalance_start(drain_only := true) followed as above, and a check that no
 *   placement of a distributed table is left on the group. When the move fails,
 *   shouldhaveshards goes back to true: the group keeps running and keeps its share of new
 *   shards, as if the drain had not been asked for (placements already moved stay moved).
 * - remove-group GROUP: refuses while a placement of a distributed table is on the group;
 *   else citus_remove_node() for each of its rows (secondaries first). A group already gone
 *   is success.
 * All calls block; exit status 0, 1 for a refusal or a failure (reason logged), 64 usage. */
#ifndef CITUS_INIT_WORKERS_H
#define CITUS_INIT_WORKERS_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

#define WORKERS_POLL_S 1
#define WORKERS_TASK_MAX_ERRORS 3

int workers_rebalance_command(const struct config *cfg, int argc, char *const *argv);
int workers_drain_command(const struct config *cfg, int argc, char *const *argv);
int workers_remove_command(const struct config *cfg, int argc, char *const *argv);

/* --- pure helpers, exposed for unit tests --- */

/* A worker group number: decimal digits only, 1..INT_MAX (0, the coordinator, is false too,
 * *group set to 0). */
bool workers_parse_group(const char *text, int *group);

/* LIST: worker group numbers, comma-separated, each at most once, at most max; "" is the
 * empty list. false for anything else. */
bool workers_parse_group_list(const char *text, int *groups, int max, int *count);

/* The groups as a PostgreSQL int[] literal ("{1,2}", "{}"), truncated to size. */
void workers_group_array(const int *groups, int count, char *out, size_t size);

/* Whether a background job state (citus_job_status) is final. */
bool workers_job_state_final(const char *state);

#endif
