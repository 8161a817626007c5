/* certs.h: certificate rotation without a restart (SSL_ENABLED=true).
 *
 * The agent watches ca.crt, server.crt and server.key in SSL_CERT_DIR (the mounted secret;
 * Kubernetes swaps a secret volume's files atomically, a plain directory may change one file
 * at a time: changes settle for CERTS_SETTLE_S before they are looked at). When the files no
 * longer match the copies in RUN_DIR/tls and the new set passes the checks of the start
 * (tls_check: parse, key matches certificate, validity, signed by ca.crt, names with
 * verify-full), each copy is replaced atomically (fsprep_write_atomic, same modes as at
 * start) and Patroni gets SIGHUP: it rewrites and reloads PostgreSQL's configuration (new
 * connections use the new certificate; open ones keep theirs) and reloads the REST API's
 * certificate. A set that fails the checks is refused, each reason logged; the running
 * copies stay. */
#ifndef CITUS_INIT_CERTS_H
#define CITUS_INIT_CERTS_H

#include <sys/types.h>

#include "config.h"

#define CERTS_POLL_S 2.0
#define CERTS_SETTLE_S 1.0

struct ev_loop;
struct cert_watch;

/* Start watching (cfg must outlive it); patroni: the PID to SIGHUP, 0 when unknown (the
 * copies are replaced, the reload is left to whoever runs the command). NULL when SSL is
 * off. */
struct cert_watch *cert_watch_start(struct ev_loop *loop, const struct config *cfg,
                                    pid_t patroni);
void cert_watch_stop(struct cert_watch *w);
/* Tell fn after every look at the files (at start and after each change settled), whether
 * the copies were replaced or not: the metrics read the certificates' expiry then. */
typedef void (*cert_checked_fn)(void *ctx);
void cert_watch_notify(struct cert_watch *w, cert_checked_fn fn, void *ctx);

#endif
