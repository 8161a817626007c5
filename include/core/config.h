/* config.h: the pod's environment and mounted files -> one typed, validated struct.
 * No side effects besides reading files: config_load never writes, creates or chmods.
 * The contract (every variable, default and file) is docs/citus-init.md. */
#ifndef CITUS_INIT_CONFIG_H
#define CITUS_INIT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "diag.h"
#include "log.h"

enum dcs_type { DCS_KUBERNETES, DCS_ETCD3 };
enum sync_mode { SYNC_OFF, SYNC_ON, SYNC_QUORUM };
enum ssl_mode { SSL_MODE_PREFER, SSL_MODE_REQUIRE, SSL_MODE_VERIFY_CA, SSL_MODE_VERIFY_FULL };
enum backup_repo { BACKUP_REPO_NONE, BACKUP_REPO_S3, BACKUP_REPO_POSIX };
enum restore_target_kind { RESTORE_TARGET_NAME, RESTORE_TARGET_TIME, RESTORE_TARGET_LATEST };

/* One pgBackRest repository as citus-init sees it (docs/backups.md): where it is and the
 * secrets read from its secret directory. The S3 endpoint, bucket, region, style and CA are
 * in struct backup_config: one object store for our repository and a restore's source. */
struct backup_repo_ref {
    char *path;          /* BACKUP_REPO_PATH / RESTORE_REPO_PATH: absolute */
    char *secret_dir;    /* BACKUP_SECRET_DIR / RESTORE_SECRET_DIR */
    char *s3_key;        /* secret: s3-key (s3 only) */
    char *s3_key_secret; /* secret: s3-key-secret (s3 only) */
    char *cipher_pass;   /* secret: cipher-pass (with encryption); NULL without */
};

/* Files the preparation writes for pgBackRest, relative to RUN_DIR (docs/backups.md). */
#define BACKUP_CONF_DIR "pgbackrest"
#define BACKUP_CONF_FILE "pgbackrest/pgbackrest.conf" /* our repository and stanza */
#define BACKUP_RESTORE_CONF_FILE "pgbackrest/restore.conf" /* the restore's source */
#define BACKUP_LOCK_DIR "pgbackrest/lock"
#define BACKUP_CA_COPY "pgbackrest/ca.crt" /* BACKUP_S3_CA_FILE's copy */

/* Backups, restore points and restore (docs/backups.md). All zero (BACKUP_REPO_NONE) when
 * backups are off; then nothing else here is set. */
struct backup_config {
    enum backup_repo repo;
    struct backup_repo_ref own;    /* our repository: archive, backups, catalogue */
    char *stanza;                  /* derived: CLUSTER_NAME-group */
    char *s3_endpoint;             /* host or host:port, as given */
    char *s3_host;                 /* derived: the endpoint's host */
    int s3_port;                   /* derived: the endpoint's port; 0 when not given (443) */
    char *s3_bucket;
    char *s3_region;
    bool s3_uri_style_path;        /* BACKUP_S3_URI_STYLE=path */
    char *s3_ca_file;              /* BACKUP_S3_CA_FILE as given; NULL: the system's CAs. The
                                    * preparation checks it and copies it to RUN_DIR/
                                    * BACKUP_CA_COPY, which pgBackRest (and the agent) use */
    bool s3_verify_tls;
    bool encryption;               /* BACKUP_ENCRYPTION: aes-256-cbc with own.cipher_pass */
    char *full_schedule;           /* validated cron text (cron.h); NULL when off */
    char *diff_schedule;           /* NULL when off */
    int retention_full;
    int process_max;
    char *compress_type;           /* zst, lz4, gz, none */
    int archive_timeout;           /* seconds, 0 off */
    int restore_point_interval;    /* seconds, 0 off; used on the Citus coordinator only */

    /* restore (RESTORE_FROM_CLUSTER set): bootstrap from the source's stanza */
    char *restore_from_cluster;    /* NULL: an ordinary bootstrap */
    char *restore_stanza;          /* derived: RESTORE_FROM_CLUSTER-group */
    enum restore_target_kind restore_target_kind;
    char *restore_target;          /* the name or the RFC 3339 time as given; NULL for latest */
    struct backup_repo_ref source; /* RESTORE_REPO_PATH / RESTORE_SECRET_DIR, defaulting to own */

    /* Not read by config_load: set by the caller that renders (pod.c) to citus-init's own
     * absolute path, the command of Patroni's restore bootstrap; freed by config_free. */
    char *self_exe;
};

struct extension_spec {
    char *name;   /* validated identifier */
    char *schema; /* NULL when not given */
};

struct extension_list {
    struct extension_spec *items;
    size_t count;
};

struct kv_pair {
    char *key;
    char *value;
};

/* What the configuration is for: a database pod needs its identity, DCS and data dir; the
 * one-shot `extensions --wait` Job needs only COORDINATOR_HOST, the superuser secret, the
 * database, PG_PORT, TLS settings and the extension list. */
enum config_purpose { CONFIG_POD, CONFIG_EXTENSIONS_JOB };

struct config {
    enum config_purpose purpose; /* what config_load was asked to read */

    /* identity and topology */
    char *pod_name;
    char *pod_ip;
    char *pod_namespace;
    char *pod_dns_domain;    /* NULL when unset */
    char *connect_host;      /* derived: pod_name.pod_dns_domain, else pod_ip */
    char *cluster_name;
    char *scope;             /* derived: cluster_name, or cluster_name-group without Citus */
    bool citus_enabled;
    int citus_group;
    char *citus_database;

    /* DCS */
    enum dcs_type dcs;
    char **etcd_hosts;       /* NULL-terminated, etcd3 only */
    struct kv_pair *k8s_labels;
    size_t k8s_label_count;
    int ttl, loop_wait, retry_timeout;
    enum sync_mode synchronous_mode; /* SYNCHRONOUS_MODE (auto resolved) */
    bool failsafe_mode;              /* FAILSAFE_MODE: a primary survives a DCS outage */

    /* PostgreSQL */
    char *pgdata;
    char *pg_bin_dir;
    int pg_port;
    char *listen_address;
    int api_port;
    char *run_as_user;
    char *run_dir;
    char *patroni_command;

    /* secrets (never logged) */
    char *superuser_username;
    char *superuser_password;
    char *replication_username;
    char *replication_password;
    /* Patroni REST API basic auth for unsafe methods (RESTAPI_AUTH, on by default): both
     * NULL when it is off. Patroni, patronictl and the leader module's PATCH use them. */
    char *restapi_username;
    char *restapi_password;
    /* The application role (APP_USERNAME; NULL: none) the leader that owns the extensions
     * creates and keeps in step with its password (APP_PASSWORD_KEY file). */
    char *app_username;
    char *app_password;

    /* TLS */
    bool ssl_enabled;
    enum ssl_mode ssl_mode;
    char *ssl_cert_dir;      /* source: ca.crt, server.crt, server.key */
    bool ssl_client_cert;
    /* Patroni's REST API over https with the member's certificate (RESTAPI_TLS, by default
     * on when SSL_ENABLED is): probes, members, patronictl and the leader module use https. */
    bool restapi_tls;

    /* extensions */
    struct extension_list extensions; /* EXTENSIONS merged with EXTENSIONS_FILE */
    char *extensions_file;            /* NULL when unset */
    int extensions_max_attempts;
    int extensions_retry_delay;
    int leader_poll_interval_ms;
    char *coordinator_host;           /* extensions --wait only; NULL when unset */

    /* backups and restore (docs/backups.md) */
    struct backup_config backup;

    /* monitoring (docs/citus-init.md, Metrics and the monitoring role) */
    int agent_metrics_port;  /* AGENT_METRICS_PORT: the agent's HTTP endpoint; 0 off */
    char *monitoring_role;   /* MONITORING_ROLE: NULL off; else MONITORING_ROLE_NAME */
    char *monitoring_os_user; /* MONITORING_OS_USER (default nobody): pg_ident maps it to the
                               * role; NULL when MONITORING_ROLE is off */

    /* supervision and logs */
    int shutdown_deadline;
    int termination_grace_period;
    enum log_format log_format;
    enum log_level log_level;
};

/* Look-up function for variables, so tests can feed an environment without setenv.
 * Returns NULL when the variable is unset. */
typedef const char *(*env_lookup_fn)(const char *name, void *ctx);
/* The process environment: ctx is NULL for environ, else a NULL-terminated NAME=value array
 * (such as a main's envp). Returns the first entry's value. Given this look-up, config_load
 * also reports every variable it reads that is present more than once (an error naming it). */
const char *env_lookup_process(const char *name, void *ctx);

/* Read everything, validate everything, append every problem to d.
 * Returns 0 when it added no error to d; cfg is then fully filled (else partially, still
 * freeable; tls_check may still be run on it to report certificate problems in the same go). */
int config_load(struct config *cfg, enum config_purpose purpose, env_lookup_fn env, void *env_ctx,
                struct diag *d);
/* The agent's configuration (`citus-init agent`): config_load for CONFIG_POD, except that
 * the passwords come from env alone (the agent runs as the postgres user and PID 1 hands
 * them over on its stdin), never from SECRETS_DIR; so do the repositories' secrets, as
 * BACKUP_S3_KEY, BACKUP_S3_KEY_SECRET, BACKUP_CIPHER_PASS and RESTORE_S3_KEY,
 * RESTORE_S3_KEY_SECRET, RESTORE_CIPHER_PASS (never from BACKUP_SECRET_DIR or
 * RESTORE_SECRET_DIR). */
int config_load_agent(struct config *cfg, env_lookup_fn env, void *env_ctx, struct diag *d);
void config_free(struct config *cfg);

/* One integer variable of the process environment by the rules of config_load (plain
 * decimal, min..max, default def), for commands that read only a few (`supervise`).
 * 0, or -1 with the problem in d. */
int config_int_setting(const char *name, int def, int min, int max, int *out, struct diag *d);

/* The role helm/citus-cluster/files/monitoring/monitoring-role.sql defines: the only value
 * MONITORING_ROLE accepts (the agent runs that file as it is). */
#define MONITORING_ROLE_NAME "citus_monitor"

/* At most this many extensions in EXTENSIONS and EXTENSIONS_FILE together. */
#define EXTENSIONS_MAX_COUNT 10000

/* Parse an extension list text (EXTENSIONS syntax) and append to list; problems go to d
 * naming `origin` (the variable or file). Used at start and when EXTENSIONS_FILE changes.
 * Linear in the text (duplicates are found with a hash set); past EXTENSIONS_MAX_COUNT names
 * in the list it stops with an error naming origin and the limit. */
int extension_list_parse(struct extension_list *list, const char *text, const char *origin,
                         struct diag *d);
/* Read an EXTENSIONS_FILE (at most 1 MiB of text) and parse it as above, problems naming the
 * file. Returns 0, or -1 when anything was wrong (entries that were valid are appended). */
int extension_list_load_file(struct extension_list *list, const char *path, struct diag *d);
void extension_list_free(struct extension_list *list);
bool extension_name_valid(const char *name);
/* A restore point name: 1-63 of A-Z, a-z, 0-9, '_', '.' and '-' (docs/backups.md). */
bool restore_point_name_valid(const char *name);

const char *ssl_mode_name(enum ssl_mode mode);

/* Paths of the runtime copies (RUN_DIR/patroni.yml, RUN_DIR/tls/...), malloc'd. */
char *config_path(const struct config *cfg, const char *relative);

#endif
