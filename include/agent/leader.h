/* leader.h: watch the local Patroni REST API and create the configured extensions whenever
 * this member is the leader that owns them (Citus group 0, or every group's leader without
 * Citus), again after every promotion, and whenever EXTENSIONS_FILE changes; tell the
 * backups (leader_watch_notify) when this member starts or stops leading its group.
 *
 * Runs entirely on the caller's libev loop (the agent's): HTTP through the libcurl multi
 * interface driven by ev_io/ev_timer, the file through ev_stat, PostgreSQL through the
 * non-blocking runner of extensions.h. Nothing here blocks the loop. */
#ifndef CITUS_INIT_LEADER_H
#define CITUS_INIT_LEADER_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

struct ev_loop;
struct leader_watch;

/* Start watching; cfg must outlive the watch. Returns NULL (after logging why) only when
 * the HTTP machinery cannot be set up. Does nothing useful (but returns a valid handle)
 * when this member can never own the extensions (a Citus worker group) and backups and the
 * monitoring role are off. */
struct leader_watch *leader_watch_start(struct ev_loop *loop, const struct config *cfg);
/* Stop every watcher, cancel a run in progress, free. NULL is fine. */
void leader_watch_stop(struct leader_watch *w);

/* Tell fn whenever this member starts (true) or stops (false) leading its group - Patroni's
 * role primary and state running - after the extensions' own reaction. The backups
 * (backup.h) hang here; with backups on the watch runs on every group, a Citus worker's
 * leader included (which still never creates extensions). NULL w is fine. */
typedef void (*leader_change_fn)(bool leader, void *ctx);
void leader_watch_notify(struct leader_watch *w, leader_change_fn fn, void *ctx);

/* --- pure helpers, exposed for unit tests --- */

enum patroni_status {
    PATRONI_LEADER,        /* role primary/master, state running */
    PATRONI_NOT_LEADER,    /* a well-formed answer for any other role/state */
    PATRONI_BAD_ANSWER,    /* not JSON, or no string role/state */
};

/* Classify a GET /patroni body. On PATRONI_BAD_ANSWER *problem (when not NULL) points to a
 * static description. role/state (when not NULL, size > 0) receive the reported values. */
enum patroni_status leader_parse_patroni(const char *body, size_t len, char *role, size_t role_size,
                                         char *state, size_t state_size, const char **problem);

/* Whether a Patroni state is steady (running, streaming, in archive recovery) rather than a
 * transition (starting, initializing new cluster, promoting, ...), which is polled faster. */
bool leader_state_steady(const char *state);

/* Whether this member's configuration makes it responsible for the extensions when it
 * leads: without Citus every cluster's leader, with Citus only the coordinator (group 0).
 * Inline: a small predicate of the configuration. */
static inline bool leader_owns_extensions(const struct config *cfg)
{
    return !cfg->citus_enabled || cfg->citus_group == 0;
}

/* The URL of path (e.g. "/config") on the local REST API: LISTEN_ADDRESS unless it is a
 * wildcard, else 127.0.0.1. Written into buf; returns buf. */
char *leader_api_url(const struct config *cfg, const char *path, char *buf, size_t size);
/* The options every request to the local REST API shares, on a libcurl easy handle
 * (CURL *): url, no proxy, no signals, timeout_ms in all (connecting at most 1 s of it);
 * with ca_file (RESTAPI_TLS: RUN_DIR/tls/ca.crt) https only and the certificate checked
 * against that CA, its names not (the request goes to this member's own listen address,
 * which the certificate need not name); else http only. */
void leader_local_request_options(void *handle, const char *url, const char *ca_file,
                                  long timeout_ms);

/* leader_api_url(cfg, "/patroni", ...): where the role and state are asked. */
char *leader_patroni_url(const struct config *cfg, char *buf, size_t size);

#endif
