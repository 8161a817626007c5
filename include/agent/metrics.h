/* metrics.h: the agent's HTTP endpoint (AGENT_METRICS_PORT; docs/citus-init.md, Metrics).
 *
 * Plain HTTP on LISTEN_ADDRESS:AGENT_METRICS_PORT, served by a thread of its own with its own
 * accept loop and its own libcurl handle, so a scrape is answered while the agent's loop
 * waits for PostgreSQL, pgBackRest or Patroni:
 * - GET /metrics: Prometheus text format 0.0.4: the certificates' notAfter
 *   (citus_init_certificate_expiry_timestamp_seconds{certificate=...}, only with SSL), the
 *   agent's restarts since the pod started (citus_init_agent_restarts_total, PID 1's count)
 *   and this agent's start (citus_init_agent_start_time_seconds);
 * - GET /patroni/metrics: the local Patroni's GET /metrics as it is (status, body, content
 *   type), over the REST API settings the leader watch uses; a connection that fails before
 *   any answer is tried once more within the time left; 503 with one line of text when
 *   Patroni does not answer within METRICS_PATRONI_TIMEOUT_MS;
 * - any other path 404, any other method 405; one request per connection (closed after the
 *   answer), at most METRICS_REQUEST_MAX bytes of request head, read and written within
 *   METRICS_IO_TIMEOUT_MS each.
 * When the port cannot be bound the reason is logged and binding is tried again every
 * METRICS_BIND_RETRY_S; the agent's other duties go on.
 *
 * Forks (the backup workers) wait while the thread talks to Patroni (pthread_atfork), so no
 * child inherits a lock the thread holds inside libcurl or OpenSSL. */
#ifndef CITUS_INIT_METRICS_H
#define CITUS_INIT_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "config.h"

#define METRICS_REQUEST_MAX 8192
#define METRICS_IO_TIMEOUT_MS 1000
#define METRICS_PATRONI_TIMEOUT_MS 800L
#define METRICS_PATRONI_BODY_MAX (4 * 1024 * 1024)
#define METRICS_BIND_RETRY_S 10

struct metrics_server;

/* The certificates the metrics report, in the order of their label values. */
enum metrics_cert { METRICS_CERT_SERVER, METRICS_CERT_CA, METRICS_CERT_CLIENT, METRICS_CERT_COUNT };

/* What GET /metrics reports. */
struct metrics_values {
    unsigned long restarts;                 /* PID 1's AGENT_RESTARTS */
    double start_time;                      /* unix time this agent started */
    bool cert_known[METRICS_CERT_COUNT];
    double cert_not_after[METRICS_CERT_COUNT];
};

/* Start serving when AGENT_METRICS_PORT is set (NULL when it is 0, or after logging why the
 * thread cannot start). cfg must outlive the server. */
struct metrics_server *metrics_start(const struct config *cfg, unsigned long restarts,
                                     double start_time);
/* Read the notAfter of the certificates the pod serves and trusts (RUN_DIR/tls copies:
 * server.crt, ca.crt, and server.crt again as the client certificate with SSL_CLIENT_CERT)
 * and report them from now on. Called whenever the agent checks the certificates. A file
 * that cannot be read or parsed is left out (and logged). NULL m is fine. */
void metrics_refresh_certificates(struct metrics_server *m);
/* Stop the thread (within METRICS_PATRONI_TIMEOUT_MS), close the socket, free. NULL fine. */
void metrics_stop(struct metrics_server *m);

/* --- pure helpers, exposed for unit tests --- */

/* The text of GET /metrics, malloc'd. */
char *metrics_render(const struct metrics_values *v);

enum metrics_route { METRICS_ROUTE_METRICS, METRICS_ROUTE_PATRONI, METRICS_ROUTE_NOT_FOUND,
                     METRICS_ROUTE_BAD_METHOD, METRICS_ROUTE_BAD_REQUEST };
/* Route a request head (the bytes up to and including the blank line; the request line is
 * what counts): GET of /metrics or /patroni/metrics (a query string ignored). */
enum metrics_route metrics_route(const char *head, size_t len);

/* notAfter of the first certificate of a PEM file as unix time; false when it cannot be
 * read or parsed (*problem then says why, static text). */
bool metrics_cert_not_after(const char *path, double *not_after, const char **problem);

#endif
