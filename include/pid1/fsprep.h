/* fsprep.h: the files and directories the pod needs, prepared before the privilege drop.
 *
 * As root: create PGDATA's parents (the ones created are owned by the user, 0700); the data
 * directory owned by the user, 0700 - recursing into an existing one only when its top has
 * the wrong owner, group or mode (Kubernetes' OnRootMismatch), so restarts stay instant;
 * RUN_DIR 0700 and the socket directory 2775, owned by the user; TLS files copied from
 * SSL_CERT_DIR to RUN_DIR/tls (key 0600, certificates 0644); RUN_DIR/patroni.yml 0600.
 * With BACKUP_REPO not none: RUN_DIR/pgbackrest and RUN_DIR/pgbackrest/lock (0700), and in
 * it pgbackrest.conf, restore.conf (with RESTORE_FROM_CLUSTER) and ca.crt, the copy of
 * BACKUP_S3_CA_FILE, all 0600, owned by the user, written before patroni.yml.
 * Not root: nothing is chowned or chmodded that is not ours; the directories must already be
 * usable (owned by us, mode 0700 or 0750, writable) or can be created by us.
 *
 * Every file is written with fsprep_write_atomic. Problems go to d with the path and the
 * reason; the status tells main the exit code. Never logs or stores a secret. */
#ifndef CITUS_INIT_FSPREP_H
#define CITUS_INIT_FSPREP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "config.h"
#include "diag.h"
#include "privdrop.h"

#define FSPREP_SOCKET_DIR "/var/run/postgresql"

enum fsprep_status {
    FSPREP_OK = 0,
    FSPREP_FAILED = 70,   /* a write, chown, chmod failed while changing things */
    FSPREP_UNUSABLE = 78, /* found before changing anything: a path we cannot use as is */
};

/* One TLS source read from SSL_CERT_DIR by fsprep_check, copied by fsprep_apply. */
struct fsprep_tls_file {
    const char *name; /* ca.crt, server.crt, server.key */
    mode_t mode;      /* of the copy in RUN_DIR/tls */
    char *data;       /* wiped on fsprep_plan_free (may hold the key) */
    size_t len;
};

/* What fsprep_check found and fsprep_apply does; borrowed pointers must outlive it. */
struct fsprep_plan {
    const struct config *cfg;
    const struct run_user *user;
    bool as_root;
    bool usable;   /* fsprep_check reported nothing */
    bool tls_read; /* SSL_ENABLED and all three TLS sources read (tls_check may run then) */
    struct fsprep_tls_file tls[3];
    /* With BACKUP_REPO not none: BACKUP_S3_CA_FILE as read by fsprep_check (data NULL without
     * one), and the texts of RUN_DIR/pgbackrest/pgbackrest.conf and restore.conf, which the
     * caller sets (render_pgbackrest_conf) before fsprep_apply; owned and wiped by the plan. */
    struct fsprep_tls_file backup_ca;
    char *pgbackrest_conf;
    char *restore_conf;
};

/* The read-only phase: everything that can make the files unusable is looked at here, before
 * anything is changed - PGDATA, RUN_DIR, RUN_DIR/tls and the socket directory (each must be a
 * directory or be creatable; as non-root: ours, 0700/0750, writable), their missing parents
 * (the nearest existing one must be a writable directory), and with SSL_ENABLED the TLS
 * sources (read into the plan: each a readable regular file of at most 1 MiB; ca.crt and
 * server.crt must not hold a private key, since their copies are 0644), and with backups
 * RUN_DIR/pgbackrest and its lock directory like RUN_DIR/tls, and BACKUP_S3_CA_FILE (a
 * readable regular file of at most 1 MiB with a PEM certificate and no private key). Every problem goes to
 * d. Never writes, creates, chowns or chmods anything. FSPREP_OK or FSPREP_UNUSABLE; free the
 * plan with fsprep_plan_free either way. */
enum fsprep_status fsprep_check(const struct config *cfg, const struct run_user *u, bool as_root,
                                struct fsprep_plan *plan, struct diag *d);

/* The changing phase, after a successful fsprep_check: as described at the top. patroni_yaml
 * is what RUN_DIR/patroni.yml must hold (render_patroni_yaml's text). Any failure is
 * FSPREP_FAILED (things may have been changed already). */
enum fsprep_status fsprep_apply(const struct fsprep_plan *plan, const char *patroni_yaml,
                                struct diag *d);
void fsprep_plan_free(struct fsprep_plan *plan);

/* fsprep_check, then (when usable) fsprep_apply; without pgBackRest's texts, so it fails for
 * a configuration with BACKUP_REPO set (pod.c renders them between the two). */
enum fsprep_status fsprep_run(const struct config *cfg, const struct run_user *u, bool as_root,
                              const char *patroni_yaml, struct diag *d);

/* The data directory part alone (check, then apply). *recursed (may be NULL) tells whether
 * the tree was walked. */
enum fsprep_status fsprep_data_dir(const char *pgdata, const struct run_user *u, bool as_root,
                                   bool *recursed, struct diag *d);

/* Write path atomically (nothing is written when it already holds exactly this content,
 * mode and owner): a temp file in the same directory gets mode (and owner, when owner
 * is not NULL), the data, fsync; rename over path; fsync the directory. On any error the
 * temp file is removed and path is untouched. Returns 0 or -1 (reason in d). */
int fsprep_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
                        const struct run_user *owner, struct diag *d);

#endif
