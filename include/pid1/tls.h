/* tls.h: certificate checks done before anything starts (OpenSSL).
 * All problems go to the diag list; nothing is written. */
#ifndef CITUS_INIT_TLS_H
#define CITUS_INIT_TLS_H

#include <time.h>
#include "config.h"

/* Checks in SSL_CERT_DIR: the three files exist and parse; key matches certificate;
 * certificate valid now (warn when fewer than 30 days left, with the days left);
 * CA signed the server certificate; with verify-full the SANs cover connect_host
 * (the missing name is named). `now` is injectable for tests. */
void tls_check(const struct config *cfg, time_t now, struct diag *d);

#endif
