/* Unit tests for render.c: the Patroni YAML is parsed back with libyaml and compared. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#include "config.h"
#include "render.h"
#include "testutil.h"

struct fixture {
    char *dir;
    struct fake_env env;
    struct config cfg;
    bool loaded;
    char *yaml;
    yaml_document_t doc;
    bool parsed;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->dir = make_pod_env(&f->env);
    *state = f;
    return 0;
}

static void reset(struct fixture *f)
{
    if (f->parsed)
        yaml_document_delete(&f->doc);
    f->parsed = false;
    free(f->yaml);
    f->yaml = NULL;
    if (f->loaded)
        config_free(&f->cfg);
    f->loaded = false;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    reset(f);
    fake_env_free(&f->env);
    remove_tree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* Load the fake environment, render, and parse the text back. */
static void render(struct fixture *f, bool mask)
{
    reset(f);
    struct diag d;
    diag_init(&d);
    int rc = config_load(&f->cfg, CONFIG_POD, fake_env_lookup, &f->env, &d);
    diag_print(&d);
    diag_free(&d);
    f->loaded = true;
    assert_int_equal(rc, 0);
    f->yaml = render_patroni_yaml(&f->cfg, mask);
    assert_non_null(f->yaml);

    yaml_parser_t parser;
    assert_true(yaml_parser_initialize(&parser));
    yaml_parser_set_input_string(&parser, (const unsigned char *)f->yaml, strlen(f->yaml));
    int ok = yaml_parser_load(&parser, &f->doc);
    if (!ok)
        fprintf(stderr, "parse error: %s\n%s\n", parser.problem, f->yaml);
    yaml_parser_delete(&parser);
    assert_true(ok);
    f->parsed = true;
}

/* Node at a '/'-separated path of mapping keys and sequence indexes; NULL when absent. */
static yaml_node_t *node_at(yaml_document_t *doc, const char *path)
{
    yaml_node_t *node = yaml_document_get_root_node(doc);
    char *copy = strdup(path), *save = NULL;
    for (char *seg = strtok_r(copy, "/", &save); seg && node; seg = strtok_r(NULL, "/", &save)) {
        yaml_node_t *next = NULL;
        for (char *t; (t = strstr(seg, "~1"));) /* "~1" stands for '/' in a key */
            *t = '/', memmove(t + 1, t + 2, strlen(t + 2) + 1);
        if (node->type == YAML_MAPPING_NODE) {
            for (yaml_node_pair_t *p = node->data.mapping.pairs.start;
                 p < node->data.mapping.pairs.top; p++) {
                yaml_node_t *k = yaml_document_get_node(doc, p->key);
                if (k->type == YAML_SCALAR_NODE && strcmp((char *)k->data.scalar.value, seg) == 0)
                    next = yaml_document_get_node(doc, p->value);
            }
        } else if (node->type == YAML_SEQUENCE_NODE) {
            long i = strtol(seg, NULL, 10);
            long n = node->data.sequence.items.top - node->data.sequence.items.start;
            if (i >= 0 && i < n)
                next = yaml_document_get_node(doc, node->data.sequence.items.start[i]);
        }
        node = next;
    }
    free(copy);
    return node;
}

static const char *scalar_at(struct fixture *f, const char *path)
{
    yaml_node_t *n = node_at(&f->doc, path);
    if (!n || n->type != YAML_SCALAR_NODE) {
        fprintf(stderr, "no scalar at %s in:\n%s\n", path, f->yaml);
        return NULL;
    }
    return (const char *)n->data.scalar.value;
}

static long seq_len(struct fixture *f, const char *path)
{
    yaml_node_t *n = node_at(&f->doc, path);
    if (!n || n->type != YAML_SEQUENCE_NODE)
        return -1;
    return n->data.sequence.items.top - n->data.sequence.items.start;
}

/* A string value: equal text, and quoted when a YAML 1.1 reader would resolve the plain
 * text to something else (bool, int, float, null). */
#define assert_str(f, path, expected) assert_string_equal(scalar_at(f, path), expected)

/* A number or boolean: plain, so Patroni reads an int/bool. */
static void assert_plain(struct fixture *f, const char *path, const char *expected)
{
    yaml_node_t *n = node_at(&f->doc, path);
    assert_non_null(n);
    assert_int_equal(n->type, YAML_SCALAR_NODE);
    assert_string_equal((char *)n->data.scalar.value, expected);
    assert_int_equal(n->data.scalar.style, YAML_PLAIN_SCALAR_STYLE);
}

static void assert_quoted(struct fixture *f, const char *path, const char *expected)
{
    yaml_node_t *n = node_at(&f->doc, path);
    assert_non_null(n);
    assert_string_equal((char *)n->data.scalar.value, expected);
    assert_int_not_equal(n->data.scalar.style, YAML_PLAIN_SCALAR_STYLE);
}

#define set(name, value) fake_env_set(&f->env, name, value)

static void etcd_without_tls(void **state)
{
    struct fixture *f = *state;
    render(f, false);
    assert_str(f, "scope", "citusdemo");
    assert_str(f, "name", "citusdemo-0-1");
    assert_str(f, "restapi/listen", "0.0.0.0:8008");
    assert_str(f, "restapi/connect_address", "127.0.10.2:8008");
    assert_str(f, "restapi/authentication/username", "patroni");
    assert_str(f, "restapi/authentication/password", TEST_API_PW);
    assert_plain(f, "citus/group", "0");
    assert_str(f, "citus/database", "citus");
    assert_str(f, "etcd3/hosts/0", "127.0.0.1:2379");
    assert_int_equal(seq_len(f, "etcd3/hosts"), 1);
    assert_null(node_at(&f->doc, "kubernetes"));
    assert_null(node_at(&f->doc, "restapi/certfile")); /* no SSL, no REST API TLS */
    assert_null(node_at(&f->doc, "ctl"));

    assert_plain(f, "bootstrap/dcs/ttl", "20");
    assert_plain(f, "bootstrap/dcs/loop_wait", "10");
    assert_plain(f, "bootstrap/dcs/retry_timeout", "5");
    assert_plain(f, "bootstrap/dcs/maximum_lag_on_failover", "1048576");
    assert_plain(f, "bootstrap/dcs/synchronous_mode", "quorum");
    assert_plain(f, "bootstrap/dcs/synchronous_mode_strict", "false");
    assert_plain(f, "bootstrap/dcs/failsafe_mode", "true");
    assert_plain(f, "bootstrap/dcs/postgresql/use_pg_rewind", "true");
    assert_plain(f, "bootstrap/dcs/postgresql/use_slots", "true");
    assert_str(f, "bootstrap/dcs/postgresql/parameters/wal_level", "logical");
    assert_plain(f, "bootstrap/dcs/postgresql/parameters/max_connections", "200");
    assert_plain(f, "bootstrap/dcs/postgresql/parameters/max_wal_senders", "10");
    assert_plain(f, "bootstrap/dcs/postgresql/parameters/max_replication_slots", "10");
    assert_quoted(f, "bootstrap/dcs/postgresql/parameters/hot_standby", "on");
    assert_quoted(f, "bootstrap/dcs/postgresql/parameters/wal_log_hints", "on");
    assert_str(f, "bootstrap/initdb/0/encoding", "UTF8");
    assert_str(f, "bootstrap/initdb/1", "data-checksums");

    assert_str(f, "postgresql/listen", "0.0.0.0:5432");
    assert_str(f, "postgresql/connect_address", "127.0.10.2:5432");
    assert_str(f, "postgresql/data_dir", "/home/postgres/pgdata/pgroot/data");
    assert_str(f, "postgresql/bin_dir", f->cfg.pg_bin_dir);
    assert_str(f, "postgresql/pgpass", "/run/citus-init/pgpass");
    assert_plain(f, "postgresql/use_unix_socket", "true");
    assert_plain(f, "postgresql/use_unix_socket_repl", "true");
    assert_str(f, "postgresql/authentication/superuser/username", "postgres");
    assert_str(f, "postgresql/authentication/superuser/password", TEST_SUPER_PW);
    assert_str(f, "postgresql/authentication/replication/username", "replicator");
    assert_str(f, "postgresql/authentication/replication/password", TEST_REPL_PW);
    assert_str(f, "postgresql/authentication/rewind/username", "postgres");
    assert_str(f, "postgresql/authentication/rewind/password", TEST_SUPER_PW);
    assert_null(node_at(&f->doc, "postgresql/authentication/superuser/sslmode"));
    assert_str(f, "postgresql/basebackup/0/checkpoint", "fast");
    assert_str(f, "postgresql/parameters/unix_socket_directories", "/var/run/postgresql");
    assert_null(node_at(&f->doc, "postgresql/parameters/ssl"));
    assert_null(node_at(&f->doc, "postgresql/parameters/shared_preload_libraries"));
    assert_null(node_at(&f->doc, "postgresql/parameters/citus.node_conninfo"));

    assert_int_equal(seq_len(f, "postgresql/pg_hba"), 4);
    assert_str(f, "postgresql/pg_hba/3", "local replication replicator scram-sha-256");
    assert_str(f, "postgresql/pg_hba/0", "local all all peer map=local");
    assert_str(f, "postgresql/pg_hba/1", "host replication replicator all scram-sha-256");
    assert_str(f, "postgresql/pg_hba/2", "host all all all scram-sha-256");
    assert_int_equal(seq_len(f, "postgresql/pg_ident"), 2);
    assert_str(f, "postgresql/pg_ident/0", "local root postgres");
    assert_str(f, "postgresql/pg_ident/1", "local postgres postgres");
}

/* MONITORING_ROLE: one more pg_ident line, no new pg_hba line (local all all peer map=local
 * covers it). */
static void monitoring_role_ident(void **state)
{
    struct fixture *f = *state;
    set("MONITORING_ROLE", "citus_monitor");
    render(f, false);
    assert_int_equal(seq_len(f, "postgresql/pg_hba"), 4);
    assert_str(f, "postgresql/pg_hba/0", "local all all peer map=local");
    assert_int_equal(seq_len(f, "postgresql/pg_ident"), 3);
    assert_str(f, "postgresql/pg_ident/0", "local root postgres");
    assert_str(f, "postgresql/pg_ident/1", "local postgres postgres");
    assert_str(f, "postgresql/pg_ident/2", "local nobody citus_monitor");
    set("MONITORING_OS_USER", "exporter");
    render(f, false);
    assert_int_equal(seq_len(f, "postgresql/pg_ident"), 3);
    assert_str(f, "postgresql/pg_ident/2", "local exporter citus_monitor");
    fake_env_unset(&f->env, "MONITORING_ROLE"); /* off: the user is not mapped */
    render(f, false);
    assert_int_equal(seq_len(f, "postgresql/pg_ident"), 2);
}

static void kubernetes_dcs(void **state)
{
    struct fixture *f = *state;
    set("DCS_TYPE", "kubernetes");
    set("POD_NAMESPACE", "db");
    set("KUBERNETES_LABELS", "cluster-name=citusdemo,app.kubernetes.io/part-of=citus");
    set("PG_PORT", "6432");
    render(f, false);
    assert_null(node_at(&f->doc, "etcd3"));
    assert_str(f, "kubernetes/namespace", "db");
    assert_plain(f, "kubernetes/use_endpoints", "true");
    assert_str(f, "kubernetes/pod_ip", "127.0.10.2");
    assert_str(f, "kubernetes/ports/0/name", "postgresql");
    assert_plain(f, "kubernetes/ports/0/port", "6432");
    assert_str(f, "kubernetes/labels/cluster-name", "citusdemo");
    assert_str(f, "kubernetes/labels/app.kubernetes.io~1part-of", "citus");
}

static void tls_citus_and_partman(void **state)
{
    struct fixture *f = *state;
    set("SSL_ENABLED", "true");
    set("SSL_MODE", "verify-full");
    set("SSL_CLIENT_CERT", "true");
    set("POD_DNS_DOMAIN", "citusdemo-0-hl.default.svc.cluster.local");
    set("EXTENSIONS", "postgis,pg_partman:partman");
    set("RUN_DIR", "/run/ci");
    render(f, false);
    const char *host = "citusdemo-0-1.citusdemo-0-hl.default.svc.cluster.local";
    char expected[256];
    snprintf(expected, sizeof(expected), "%s:5432", host);
    assert_str(f, "postgresql/connect_address", expected);
    snprintf(expected, sizeof(expected), "%s:8008", host);
    assert_str(f, "restapi/connect_address", expected);

    const char *roles[] = {"superuser", "replication", "rewind"};
    for (size_t i = 0; i < 3; i++) {
        char p[128];
        snprintf(p, sizeof(p), "postgresql/authentication/%s/sslmode", roles[i]);
        assert_str(f, p, "verify-full");
        snprintf(p, sizeof(p), "postgresql/authentication/%s/sslrootcert", roles[i]);
        assert_str(f, p, "/run/ci/tls/ca.crt");
        snprintf(p, sizeof(p), "postgresql/authentication/%s/sslcert", roles[i]);
        assert_str(f, p, "/run/ci/tls/server.crt");
        snprintf(p, sizeof(p), "postgresql/authentication/%s/sslkey", roles[i]);
        assert_str(f, p, "/run/ci/tls/server.key");
    }
    assert_quoted(f, "postgresql/parameters/ssl", "on");
    assert_str(f, "postgresql/parameters/ssl_cert_file", "/run/ci/tls/server.crt");
    assert_str(f, "postgresql/parameters/ssl_key_file", "/run/ci/tls/server.key");
    assert_str(f, "postgresql/parameters/ssl_ca_file", "/run/ci/tls/ca.crt");
    assert_str(f, "postgresql/parameters/shared_preload_libraries", "pg_partman_bgw");
    assert_str(f, "postgresql/parameters/citus.node_conninfo",
               "sslmode=verify-full sslrootcert='/run/ci/tls/ca.crt' "
               "sslcert='/run/ci/tls/server.crt' sslkey='/run/ci/tls/server.key'");
    assert_str(f, "postgresql/pgpass", "/run/ci/pgpass");
    assert_str(f, "restapi/certfile", "/run/ci/tls/server.crt");
    assert_str(f, "restapi/keyfile", "/run/ci/tls/server.key");
    assert_null(node_at(&f->doc, "restapi/verify_client"));
    assert_str(f, "ctl/cacert", "/run/ci/tls/ca.crt"); /* verify-full: patronictl checks it */
    assert_null(node_at(&f->doc, "ctl/insecure"));

    assert_int_equal(seq_len(f, "postgresql/pg_hba"), 6);
    assert_str(f, "postgresql/pg_hba/0", "local all all peer map=local");
    assert_str(f, "postgresql/pg_hba/1",
               "hostssl replication replicator all scram-sha-256 clientcert=verify-ca");
    assert_str(f, "postgresql/pg_hba/2",
               "hostssl all postgres all scram-sha-256 clientcert=verify-ca");
    assert_str(f, "postgresql/pg_hba/3", "hostssl all all all scram-sha-256");
    assert_str(f, "postgresql/pg_hba/4", "hostnossl all all all reject");
}

static void tls_without_client_cert(void **state)
{
    struct fixture *f = *state;
    set("SSL_ENABLED", "true");
    render(f, false);
    assert_str(f, "postgresql/authentication/replication/sslmode", "verify-ca");
    assert_null(node_at(&f->doc, "postgresql/authentication/replication/sslcert"));
    assert_str(f, "postgresql/parameters/citus.node_conninfo",
               "sslmode=verify-ca sslrootcert='/run/citus-init/tls/ca.crt'");
    assert_int_equal(seq_len(f, "postgresql/pg_hba"), 5);
    assert_str(f, "postgresql/pg_hba/1", "hostssl replication replicator all scram-sha-256");
    assert_str(f, "postgresql/pg_hba/2", "hostssl all all all scram-sha-256");
    assert_str(f, "postgresql/pg_hba/3", "hostnossl all all all reject");
    /* verify-ca: the REST API still serves TLS; patronictl encrypts without checking names */
    assert_str(f, "restapi/certfile", "/run/citus-init/tls/server.crt");
    assert_plain(f, "ctl/insecure", "true");
    assert_null(node_at(&f->doc, "ctl/cacert"));
}

static void restapi_tls_off(void **state)
{
    struct fixture *f = *state;
    set("SSL_ENABLED", "true");
    set("RESTAPI_TLS", "false");
    render(f, false);
    assert_quoted(f, "postgresql/parameters/ssl", "on");
    assert_null(node_at(&f->doc, "restapi/certfile"));
    assert_null(node_at(&f->doc, "restapi/keyfile"));
    assert_null(node_at(&f->doc, "ctl"));
}

static void without_citus(void **state)
{
    struct fixture *f = *state;
    set("CITUS_ENABLED", "false");
    set("CITUS_GROUP", "1");
    set("SSL_ENABLED", "true");
    render(f, false);
    assert_str(f, "scope", "citusdemo-1");
    assert_null(node_at(&f->doc, "citus"));
    assert_null(node_at(&f->doc, "postgresql/parameters/citus.node_conninfo"));
}

static void ipv6_addresses_in_brackets(void **state)
{
    struct fixture *f = *state;
    set("POD_IP", "fd00::5");
    set("LISTEN_ADDRESS", "::");
    render(f, false);
    assert_str(f, "postgresql/listen", "[::]:5432");
    assert_str(f, "postgresql/connect_address", "[fd00::5]:5432");
    assert_str(f, "restapi/connect_address", "[fd00::5]:8008");
}

static const char *const tricky_passwords[] = {
    "it's \"quoted\"",
    "a: b # c",
    "line1\nline2\n",
    "ünïcødé ✓ 🐘 日本",
    "true",
    "No",
    "123",
    "0x1f",
    "1e3",
    "null",
    "~",
    "- dash",
    "*star",
    "&anchor",
    "!tag",
    " leading space",
    "trailing space ",
    "%percent",
    "@at",
    "`tick`",
    "{flow}",
    "[seq]",
    "back\\slash",
    "\ttab",
    "---",
    "...",
    "?",
    "|",
    ">",
    "=",
};

static void tricky_passwords_round_trip(void **state)
{
    struct fixture *f = *state;
    char *secrets;
    if (asprintf(&secrets, "%s/secrets", f->dir) < 0)
        abort();
    for (size_t i = 0; i < sizeof(tricky_passwords) / sizeof(tricky_passwords[0]); i++) {
        const char *pw = tricky_passwords[i];
        /* superuser from a file (one newline stripped), replication from the environment */
        char *file = write_file(secrets, "superuser-password", pw, strlen(pw));
        free(file);
        char *repl_file;
        if (asprintf(&repl_file, "%s/replication-password", secrets) < 0)
            abort();
        remove(repl_file);
        free(repl_file);
        set("REPLICATION_PASSWORD", pw);
        render(f, false);
        char stripped[128];
        snprintf(stripped, sizeof(stripped), "%s", pw);
        size_t n = strlen(stripped);
        if (n && stripped[n - 1] == '\n')
            stripped[n - 1] = '\0';
        assert_str(f, "postgresql/authentication/superuser/password", stripped);
        assert_str(f, "postgresql/authentication/rewind/password", stripped);
        assert_str(f, "postgresql/authentication/replication/password", pw);
        /* anything that could read as another type must be quoted */
        yaml_node_t *node = node_at(&f->doc, "postgresql/authentication/replication/password");
        if (strspn(pw, "abcdefghijklmnopqrstuvwxyz") != strlen(pw) || strcmp(pw, "true") == 0)
            assert_int_not_equal(node->data.scalar.style, YAML_PLAIN_SCALAR_STYLE);
    }
    free(secrets);
}

static void masked_output_has_no_password(void **state)
{
    struct fixture *f = *state;
    render(f, true);
    assert_null(strstr(f->yaml, TEST_SUPER_PW));
    assert_null(strstr(f->yaml, TEST_REPL_PW));
    assert_str(f, "postgresql/authentication/superuser/password", "********");
    assert_str(f, "postgresql/authentication/replication/password", "********");
    assert_str(f, "postgresql/authentication/rewind/password", "********");
    assert_null(strstr(f->yaml, TEST_API_PW));
    assert_str(f, "restapi/authentication/username", "patroni");
    assert_str(f, "restapi/authentication/password", "********");
}

static void restapi_auth_off_renders_no_authentication(void **state)
{
    struct fixture *f = *state;
    set("RESTAPI_AUTH", "off");
    render(f, false);
    assert_str(f, "restapi/listen", "0.0.0.0:8008");
    assert_null(node_at(&f->doc, "restapi/authentication"));
}

static void restapi_tricky_password_round_trips(void **state)
{
    struct fixture *f = *state;
    char *secrets;
    if (asprintf(&secrets, "%s/secrets", f->dir) < 0)
        abort();
    for (size_t i = 0; i < sizeof(tricky_passwords) / sizeof(tricky_passwords[0]); i++) {
        const char *pw = tricky_passwords[i];
        if (strchr(pw, '\n'))
            continue; /* one trailing newline is stripped: covered above */
        free(write_file(secrets, "restapi-password", pw, strlen(pw)));
        render(f, false);
        assert_str(f, "restapi/authentication/password", pw);
    }
    free(secrets);
}

static void only_for_database_pods(void **state)
{
    (void)state;
    struct config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.purpose = CONFIG_EXTENSIONS_JOB;
    assert_null(render_patroni_yaml(&cfg, true));
}

static void invalid_utf8_fails_cleanly(void **state)
{
    struct fixture *f = *state;
    render(f, false);
    char *saved = f->cfg.pod_name;
    f->cfg.pod_name = "bad\xff";
    assert_null(render_patroni_yaml(&f->cfg, false));
    f->cfg.pod_name = saved;
}

/* ---- backups (docs/backups.md) ---------------------------------------------------------- */

static void backup_files(struct fixture *f)
{
    char *dir;
    if (asprintf(&dir, "%s/backup", f->dir) < 0 || mkdir(dir, 0755) != 0)
        abort();
    free(write_file(dir, "s3-key", "AKIAKEY\n", 8));
    free(write_file(dir, "s3-key-secret", "se=cret/key+1", 13));
    free(write_file(dir, "cipher-pass", "pass phrase #1 of 20+ bytes\n", 28));
    free(write_file(dir, "ca.crt", "-----BEGIN CERTIFICATE-----\n", 28));
    set("BACKUP_SECRET_DIR", dir);
    free(dir);
}

static void backup_off_renders_nothing(void **state)
{
    struct fixture *f = *state;
    render(f, false);
    assert_null(node_at(&f->doc, "postgresql/parameters/archive_mode"));
    assert_null(node_at(&f->doc, "postgresql/parameters/archive_command"));
    assert_null(node_at(&f->doc, "postgresql/recovery_conf"));
    assert_null(node_at(&f->doc, "postgresql/create_replica_methods"));
    assert_null(node_at(&f->doc, "postgresql/pgbackrest"));
    assert_null(node_at(&f->doc, "bootstrap/method"));
    assert_str(f, "postgresql/basebackup/0/checkpoint", "fast");
    assert_null(render_pgbackrest_conf(&f->cfg, false));
    assert_null(render_pgbackrest_conf(&f->cfg, true));
}

static void backup_s3_yaml_and_configuration(void **state)
{
    struct fixture *f = *state;
    backup_files(f);
    char *ca;
    if (asprintf(&ca, "%s/backup/ca.crt", f->dir) < 0)
        abort();
    set("BACKUP_REPO", "s3");
    set("BACKUP_S3_ENDPOINT", "minio.example.com:9000");
    set("BACKUP_S3_BUCKET", "citus-backups");
    set("BACKUP_S3_URI_STYLE", "path");
    set("BACKUP_S3_CA_FILE", ca);
    set("BACKUP_S3_VERIFY_TLS", "false");
    set("BACKUP_ARCHIVE_TIMEOUT", "0");
    set("BACKUP_COMPRESS_TYPE", "lz4");
    set("CITUS_GROUP", "2");
    set("RUN_DIR", "/run/citus-init");
    render(f, false);
    free(ca);
    assert_quoted(f, "postgresql/parameters/archive_mode", "on");
    assert_str(f, "postgresql/parameters/archive_command",
               "pgbackrest --config=/run/citus-init/pgbackrest/pgbackrest.conf "
               "--stanza=citusdemo-2 archive-push \"%p\"");
    assert_plain(f, "postgresql/parameters/archive_timeout", "0");
    assert_str(f, "postgresql/recovery_conf/restore_command",
               "pgbackrest --config=/run/citus-init/pgbackrest/pgbackrest.conf "
               "--stanza=citusdemo-2 archive-get %f \"%p\"");
    assert_int_equal(seq_len(f, "postgresql/create_replica_methods"), 2);
    assert_str(f, "postgresql/create_replica_methods/0", "pgbackrest");
    assert_str(f, "postgresql/create_replica_methods/1", "basebackup");
    assert_str(f, "postgresql/pgbackrest/command",
               "pgbackrest --config=/run/citus-init/pgbackrest/pgbackrest.conf "
               "--stanza=citusdemo-2 --delta restore --type=standby");
    assert_plain(f, "postgresql/pgbackrest/keep_data", "true");
    assert_plain(f, "postgresql/pgbackrest/no_params", "true");
    assert_str(f, "postgresql/basebackup/0/checkpoint", "fast"); /* the fallback, as before */
    assert_null(node_at(&f->doc, "bootstrap/method"));
    /* no secret of the repository in the Patroni configuration */
    assert_null(strstr(f->yaml, "AKIAKEY"));
    assert_null(strstr(f->yaml, "se=cret"));
    assert_null(strstr(f->yaml, "pass phrase"));

    char *conf = render_pgbackrest_conf(&f->cfg, false);
    assert_non_null(conf);
    char *expected;
    if (asprintf(&expected,
                 "# citus-init: this group's repository (docs/backups.md)\n"
                 "[global]\n"
                 "repo1-type=s3\n"
                 "repo1-path=/pgbackrest\n"
                 "repo1-s3-endpoint=minio.example.com\n"
                 "repo1-storage-port=9000\n"
                 "repo1-s3-bucket=citus-backups\n"
                 "repo1-s3-region=us-east-1\n"
                 "repo1-s3-uri-style=path\n"
                 "repo1-storage-ca-file=/run/citus-init/pgbackrest/ca.crt\n"
                 "repo1-storage-verify-tls=n\n"
                 "repo1-s3-key=AKIAKEY\n"
                 "repo1-s3-key-secret=se=cret/key+1\n"
                 "repo1-cipher-type=aes-256-cbc\n"
                 "repo1-cipher-pass=pass phrase #1 of 20+ bytes\n"
                 "repo1-retention-full=2\n"
                 "process-max=2\n"
                 "compress-type=lz4\n"
                 "start-fast=y\n"
                 "delta=y\n"
                 "archive-async=n\n"
                 "log-level-console=off\n"
                 "log-level-stderr=warn\n"
                 "log-level-file=off\n"
                 "lock-path=/run/citus-init/pgbackrest/lock\n"
                 "\n"
                 "[citusdemo-2]\n"
                 "pg1-path=/home/postgres/pgdata/pgroot/data\n"
                 "pg1-port=5432\n"
                 "pg1-socket-path=/var/run/postgresql\n"
                 "pg1-user=postgres\n") < 0)
        abort();
    assert_string_equal(conf, expected);
    free(expected);
    free(conf);
    assert_null(render_pgbackrest_conf(&f->cfg, true)); /* no restore */
}

static void backup_restore_bootstrap_and_source(void **state)
{
    struct fixture *f = *state;
    set("BACKUP_REPO", "posix");
    set("BACKUP_ENCRYPTION", "false");
    set("BACKUP_REPO_PATH", "/var/lib/pgbackrest");
    set("RESTORE_FROM_CLUSTER", "olddemo");
    set("RESTORE_TARGET", "before-upgrade");
    set("RESTORE_REPO_PATH", "/mnt/old repo");
    set("SUPERUSER_USERNAME", "admin");
    set("PG_PORT", "6432");
    set("PGDATA", "/data/pg");
    render(f, false);
    /* without the executable's path (the caller sets it) the command is found in PATH */
    assert_str(f, "bootstrap/method", "citus_init_restore");
    assert_str(f, "bootstrap/citus_init_restore/command", "citus-init restore-bootstrap");
    assert_plain(f, "bootstrap/citus_init_restore/keep_existing_recovery_conf", "true");
    assert_plain(f, "bootstrap/citus_init_restore/no_params", "true");
    assert_null(node_at(&f->doc, "bootstrap/citus_init_restore/recovery_conf"));
    assert_int_equal(seq_len(f, "bootstrap/initdb"), 2); /* kept for the ordinary bootstrap */

    char *conf = render_pgbackrest_conf(&f->cfg, true);
    assert_non_null(conf);
    assert_string_equal(conf,
                        "# citus-init: the source of RESTORE_FROM_CLUSTER (docs/backups.md)\n"
                        "[global]\n"
                        "repo1-type=posix\n"
                        "repo1-path=/mnt/old repo\n"
                        "repo1-retention-full=2\n"
                        "process-max=2\n"
                        "compress-type=zst\n"
                        "start-fast=y\n"
                        "delta=y\n"
                        "archive-async=n\n"
                        "log-level-console=off\n"
                        "log-level-stderr=warn\n"
                        "log-level-file=off\n"
                        "lock-path=/run/citus-init/pgbackrest/lock\n"
                        "\n"
                        "[olddemo-0]\n"
                        "pg1-path=/data/pg\n"
                        "pg1-port=6432\n"
                        "pg1-socket-path=/var/run/postgresql\n"
                        "pg1-user=admin\n");
    free(conf);
    conf = render_pgbackrest_conf(&f->cfg, false);
    assert_non_null(strstr(conf, "repo1-path=/var/lib/pgbackrest\n"));
    assert_non_null(strstr(conf, "\n[citusdemo-0]\n"));
    assert_null(strstr(conf, "cipher"));
    free(conf);

    f->cfg.backup.self_exe = strdup("/opt/citus init/bin/citus-init");
    free(f->yaml);
    f->yaml = render_patroni_yaml(&f->cfg, false);
    assert_non_null(strstr(f->yaml, "command: \"'/opt/citus init/bin/citus-init' "
                                    "restore-bootstrap\""));
}

/* The commands go through /bin/sh (PostgreSQL) or shlex.split (Patroni): a RUN_DIR with a
 * space or parentheses stays one word (config.c refuses the characters pgBackRest's own
 * restore_command cannot carry: ' " \ $ ` %). */
static void backup_commands_quote_the_configuration_path(void **state)
{
    struct fixture *f = *state;
    set("BACKUP_REPO", "posix");
    set("BACKUP_ENCRYPTION", "false");
    set("RUN_DIR", "/run/citus init (1)");
    render(f, false);
    assert_str(f, "postgresql/parameters/archive_command",
               "pgbackrest '--config=/run/citus init (1)/pgbackrest/pgbackrest.conf' "
               "--stanza=citusdemo-0 archive-push \"%p\"");
    assert_str(f, "postgresql/recovery_conf/restore_command",
               "pgbackrest '--config=/run/citus init (1)/pgbackrest/pgbackrest.conf' "
               "--stanza=citusdemo-0 archive-get %f \"%p\"");
    assert_str(f, "postgresql/pgbackrest/command",
               "pgbackrest '--config=/run/citus init (1)/pgbackrest/pgbackrest.conf' "
               "--stanza=citusdemo-0 --delta restore --type=standby");
    /* a quote: possible in the bootstrap command's executable path */
    set("RESTORE_FROM_CLUSTER", "old");
    set("RESTORE_TARGET", "before-upgrade");
    render(f, false);
    f->cfg.backup.self_exe = strdup("/opt/it's/citus-init");
    free(f->yaml);
    f->yaml = render_patroni_yaml(&f->cfg, false);
    assert_non_null(strstr(f->yaml, "command: \"'/opt/it'\\\\''s/citus-init' restore-bootstrap\""));
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(etcd_without_tls),
        T(monitoring_role_ident),
        T(kubernetes_dcs),
        T(tls_citus_and_partman),
        T(tls_without_client_cert),
        T(restapi_tls_off),
        T(without_citus),
        T(ipv6_addresses_in_brackets),
        T(tricky_passwords_round_trip),
        T(masked_output_has_no_password),
        T(restapi_auth_off_renders_no_authentication),
        T(restapi_tricky_password_round_trips),
        T(invalid_utf8_fails_cleanly),
        cmocka_unit_test(only_for_database_pods),
        T(backup_off_renders_nothing),
        T(backup_s3_yaml_and_configuration),
        T(backup_restore_bootstrap_and_source),
        T(backup_commands_quote_the_configuration_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
