/* monitoring.h: the monitoring role on every group's primary (MONITORING_ROLE; docs/
 * citus-init.md, The monitoring role).
 *
 * When this member starts leading its group (any group, Citus or not) the agent runs
 * helm/citus-cluster/files/monitoring/monitoring-role.sql, embedded at build time
 * (monitoring_role_sql), in CITUS_DATABASE over the local socket as the superuser, and again
 * whenever the backups created citus_init's tables (so the grants on them exist). Every
 * statement of the file is idempotent. With Citus an attempt fails (and is tried again) while
 * the citus extension does not exist yet, so the grants on Citus' functions are never
 * skipped. Non-blocking libpq on the agent's loop. A failure is a
 * warning with the error and is tried again (a backoff from MONITORING_RETRY_FIRST_S doubling
 * up to EXTENSIONS_RETRY_DELAY, at most EXTENSIONS_MAX_ATTEMPTS attempts per leadership); the
 * first success of a leadership logs msg="monitoring role ready". */
#ifndef CITUS_INIT_MONITORING_H
#define CITUS_INIT_MONITORING_H

#include <stdbool.h>

#include "config.h"

#define MONITORING_RETRY_FIRST_S 0.2

struct ev_loop;
struct monitoring_duty;

/* The SQL file's text (generated from the chart's file by the build). */
extern const char monitoring_role_sql[];

/* NULL when MONITORING_ROLE is off. cfg must outlive it. */
struct monitoring_duty *monitoring_duty_start(struct ev_loop *loop, const struct config *cfg);
/* This member became (true) or stopped being (false) its group's leader. */
void monitoring_duty_leader(struct monitoring_duty *m, bool leader);
/* citus_init's tables were just created: run the file again (while leading). */
void monitoring_duty_tables_created(struct monitoring_duty *m);
/* Cancel what runs, free. NULL is fine. */
void monitoring_duty_stop(struct monitoring_duty *m);

#endif
