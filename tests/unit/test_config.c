/* Unit tests for config.c: defaults, derived values, and every validation message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "testutil.h"

#define SUPER_PW TEST_SUPER_PW
#define REPL_PW TEST_REPL_PW

struct fixture {
    char *dir, *secrets, *bindir;
    struct fake_env env;
    struct config cfg;
    struct diag d;
    bool loaded;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->dir = make_pod_env(&f->env);
    if (asprintf(&f->secrets, "%s/secrets", f->dir) < 0 || asprintf(&f->bindir, "%s/bin", f->dir) < 0)
        abort();
    diag_init(&f->d);
    *state = f;
    return 0;
}

/* No message may ever carry a password. */
static void assert_no_secret_in_messages(const struct diag *d)
{
    const char *secrets[] = {SUPER_PW, REPL_PW, TEST_API_PW, "envpass"};
    assert_no_secret_in(d, secrets, sizeof secrets / sizeof secrets[0]);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    assert_no_secret_in_messages(&f->d);
    if (f->loaded)
        config_free(&f->cfg);
    diag_free(&f->d);
    fake_env_free(&f->env);
    remove_tree(f->dir);
    free(f->dir);
    free(f->secrets);
    free(f->bindir);
    free(f);
    return 0;
}

static int load(struct fixture *f, enum config_purpose purpose)
{
    if (f->loaded)
        config_free(&f->cfg);
    diag_free(&f->d);
    f->loaded = true;
    return config_load(&f->cfg, purpose, fake_env_lookup, &f->env, &f->d);
}

#define set(name, value) fake_env_set(&f->env, name, value)
#define unset(name) fake_env_unset(&f->env, name)
#define assert_error(msg) assert_true(diag_has(&f->d, DIAG_ERROR, msg))
#define assert_only_error(msg)                                                                     \
    do {                                                                                           \
        assert_int_equal(load(f, CONFIG_POD), -1);                                                 \
        assert_error(msg);                                                                         \
        if (f->d.count != 1)                                                                       \
            diag_print(&f->d);                                                                     \
        assert_int_equal(f->d.count, 1);                                                           \
    } while (0)

static void defaults_and_derived_values(void **state)
{
    struct fixture *f = *state;
    int rc = load(f, CONFIG_POD);
    diag_print(&f->d);
    assert_int_equal(rc, 0);
    assert_int_equal(f->d.count, 0);
    struct config *c = &f->cfg;
    assert_int_equal(c->purpose, CONFIG_POD);
    assert_string_equal(c->pod_name, "citusdemo-0-1");
    assert_string_equal(c->pod_namespace, "default");
    assert_null(c->pod_dns_domain);
    assert_string_equal(c->connect_host, "127.0.10.2");
    assert_string_equal(c->scope, "citusdemo");
    assert_true(c->citus_enabled);
    assert_int_equal(c->citus_group, 0);
    assert_string_equal(c->citus_database, "citus");
    assert_int_equal(c->dcs, DCS_ETCD3);
    assert_string_equal(c->etcd_hosts[0], "127.0.0.1:2379");
    assert_null(c->etcd_hosts[1]);
    assert_int_equal(c->ttl, 20);
    assert_int_equal(c->loop_wait, 10);
    assert_int_equal(c->retry_timeout, 5);
    assert_int_equal(c->synchronous_mode, SYNC_QUORUM); /* auto, with Citus */
    assert_true(c->failsafe_mode);
    assert_string_equal(c->pgdata, "/home/postgres/pgdata/pgroot/data");
    assert_string_equal(c->pg_bin_dir, f->bindir);
    assert_int_equal(c->pg_port, 5432);
    assert_string_equal(c->listen_address, "0.0.0.0");
    assert_int_equal(c->api_port, 8008);
    assert_string_equal(c->run_as_user, "postgres");
    assert_string_equal(c->run_dir, "/run/citus-init");
    assert_string_equal(c->patroni_command, "patroni");
    assert_string_equal(c->superuser_username, "postgres");
    assert_string_equal(c->superuser_password, SUPER_PW); /* one trailing newline stripped */
    assert_string_equal(c->replication_username, "replicator");
    assert_string_equal(c->replication_password, REPL_PW);
    assert_string_equal(c->restapi_username, "patroni");
    assert_string_equal(c->restapi_password, TEST_API_PW); /* one trailing newline stripped */
    assert_false(c->restapi_tls); /* follows SSL_ENABLED (off here) */
    assert_false(c->ssl_enabled);
    assert_int_equal(c->ssl_mode, SSL_MODE_VERIFY_CA);
    assert_string_equal(c->ssl_cert_dir, "/etc/ssl/certs/postgresql");
    assert_false(c->ssl_client_cert);
    assert_int_equal(c->extensions.count, 0);
    assert_null(c->extensions_file);
    assert_int_equal(c->extensions_max_attempts, 60);
    assert_int_equal(c->extensions_retry_delay, 5);
    assert_int_equal(c->leader_poll_interval_ms, 1000);
    assert_null(c->coordinator_host);
    assert_int_equal(c->shutdown_deadline, 25);
    assert_int_equal(c->termination_grace_period, 30);
    assert_int_equal(c->log_format, LOG_FORMAT_LOGFMT);
    assert_int_equal(c->log_level, LOG_INFO);

    char *p = config_path(c, "patroni.yml");
    assert_string_equal(p, "/run/citus-init/patroni.yml");
    free(p);
}

static void explicit_values(void **state)
{
    struct fixture *f = *state;
    set("POD_NAMESPACE", "db");
    set("POD_DNS_DOMAIN", "citusdemo-2-hl.db.svc.cluster.local");
    set("CITUS_ENABLED", "OFF");
    set("CITUS_GROUP", "2");
    set("CITUS_DATABASE", "app_db");
    set("DCS_TYPE", "kubernetes");
    set("KUBERNETES_LABELS", "app.kubernetes.io/name=citus,cluster-name=citusdemo");
    set("DCS_TTL", "30");
    set("DCS_LOOP_WAIT", "10");
    set("DCS_RETRY_TIMEOUT", "10");
    set("SYNCHRONOUS_MODE", "yes");
    set("PG_PORT", "5433");
    set("LISTEN_ADDRESS", "127.0.10.2");
    set("PATRONI_API_PORT", "8009");
    set("SSL_ENABLED", "1");
    set("SSL_MODE", "verify-full");
    set("SSL_CLIENT_CERT", "on");
    set("SHUTDOWN_DEADLINE", "50");
    set("TERMINATION_GRACE_PERIOD", "60");
    set("LOG_FORMAT", "json");
    set("LOG_LEVEL", "debug");
    set("EXTENSIONS_MAX_ATTEMPTS", "3");
    set("EXTENSIONS_RETRY_DELAY", "0");
    set("LEADER_POLL_INTERVAL_MS", "200");
    int rc = load(f, CONFIG_POD);
    diag_print(&f->d);
    assert_int_equal(rc, 0);
    struct config *c = &f->cfg;
    assert_string_equal(c->connect_host, "citusdemo-0-1.citusdemo-2-hl.db.svc.cluster.local");
    assert_string_equal(c->scope, "citusdemo-2");
    assert_false(c->citus_enabled);
    assert_int_equal(c->citus_group, 2);
    assert_string_equal(c->citus_database, "app_db");
    assert_int_equal(c->dcs, DCS_KUBERNETES);
    assert_null(c->etcd_hosts);
    assert_int_equal(c->k8s_label_count, 2);
    assert_string_equal(c->k8s_labels[0].key, "app.kubernetes.io/name");
    assert_string_equal(c->k8s_labels[0].value, "citus");
    assert_string_equal(c->k8s_labels[1].key, "cluster-name");
    assert_int_equal(c->ttl, 30);
    assert_int_equal(c->synchronous_mode, SYNC_ON);
    assert_int_equal(c->pg_port, 5433);
    assert_int_equal(c->api_port, 8009);
    assert_true(c->ssl_enabled);
    assert_int_equal(c->ssl_mode, SSL_MODE_VERIFY_FULL);
    assert_true(c->ssl_client_cert);
    assert_true(c->restapi_tls); /* follows SSL_ENABLED */
    assert_int_equal(c->log_format, LOG_FORMAT_JSON);
    assert_int_equal(c->log_level, LOG_DEBUG);
    assert_int_equal(c->extensions_retry_delay, 0);
    assert_int_equal(c->leader_poll_interval_ms, 200);
}

static void everything_missing_is_reported_at_once(void **state)
{
    struct fixture *f = *state;
    fake_env_free(&f->env);
    set("POD_NAME", ""); /* empty is the same as unset */
    assert_int_equal(load(f, CONFIG_POD), -1);
    assert_error("POD_NAME: not set; expected the member name, e.g. citusdemo-0-1");
    assert_error("POD_IP: not set; expected the pod's IP address");
    assert_error("CLUSTER_NAME: not set; expected the cluster name, e.g. citusdemo");
    assert_error("CITUS_GROUP: not set; expected an integer >= 0 (0 is the coordinator)");
    assert_error("DCS_TYPE: not set, and neither KUBERNETES_SERVICE_HOST nor ETCD_HOSTS is set; "
                 "expected kubernetes or etcd3");
    assert_error("SUPERUSER_PASSWORD: not set and /etc/patroni/secrets/superuser-password does "
                 "not exist; expected the superuser password in that file or in "
                 "SUPERUSER_PASSWORD");
    assert_error("REPLICATION_PASSWORD: not set and /etc/patroni/secrets/replication-password "
                 "does not exist; expected the replication password in that file or in "
                 "REPLICATION_PASSWORD");
    assert_error("RESTAPI_PASSWORD: not set and /etc/patroni/secrets/restapi-password does not "
                 "exist; expected the Patroni REST API password in that file or in "
                 "RESTAPI_PASSWORD");
}

static char *api_pw_path(struct fixture *f)
{
    char *path;
    if (asprintf(&path, "%s/restapi-password", f->secrets) < 0)
        abort();
    return path;
}

/* REST API auth is on by default: no password is a configuration error, never silence. */
static void restapi_password_missing(void **state)
{
    struct fixture *f = *state;
    char *path = api_pw_path(f);
    unlink(path);
    char msg[512];
    snprintf(msg, sizeof(msg), "RESTAPI_PASSWORD: not set and %s does not exist; expected the "
             "Patroni REST API password in that file or in RESTAPI_PASSWORD", path);
    assert_only_error(msg);
    assert_null(f->cfg.restapi_password);

    set("RESTAPI_PASSWORD", "envpass"); /* the fallback, only without the file */
    assert_int_equal(load(f, CONFIG_POD), 0);
    assert_string_equal(f->cfg.restapi_password, "envpass");
    free(path);
}

static void restapi_password_empty_or_unreadable(void **state)
{
    struct fixture *f = *state;
    char *path = api_pw_path(f);
    free(write_file(f->secrets, "restapi-password", "\n", 1));
    set("RESTAPI_PASSWORD", "envpass"); /* must not mask the broken file */
    char msg[512];
    snprintf(msg, sizeof(msg), "%s: file is empty; expected the Patroni REST API password", path);
    assert_only_error(msg);

    unlink(path);
    mkdir(path, 0700);
    snprintf(msg, sizeof(msg), "%s: is not a regular file; expected a file with the Patroni "
             "REST API password", path);
    assert_only_error(msg);
    rmdir(path);

    assert_int_equal(symlink("restapi-password", path), 0); /* a loop: cannot be read */
    snprintf(msg, sizeof(msg), "%s: cannot be read (Too many levels of symbolic links); expected "
             "a readable file with the Patroni REST API password", path);
    assert_only_error(msg);
    free(path);
}

static void restapi_key_and_username(void **state)
{
    struct fixture *f = *state;
    free(write_file(f->secrets, "api-key", "p:w \"x\"\n", 8));
    set("RESTAPI_PASSWORD_KEY", "api-key");
    set("RESTAPI_USERNAME", "ops.admin");
    assert_int_equal(load(f, CONFIG_POD), 0);
    assert_string_equal(f->cfg.restapi_username, "ops.admin");
    assert_string_equal(f->cfg.restapi_password, "p:w \"x\"");

    set("RESTAPI_PASSWORD_KEY", "../api-key");
    assert_only_error("RESTAPI_PASSWORD_KEY: \"../api-key\" is not a file name; expected a key "
                      "of the secret (no '/')");
    set("RESTAPI_PASSWORD_KEY", "api-key");
    set("RESTAPI_USERNAME", "a:b");
    assert_only_error("RESTAPI_USERNAME: \"a:b\" is not a valid user name; expected letters, "
                      "digits, '_', '-' and '.', at most 32 characters");
}

static void restapi_auth_switched_off(void **state)
{
    struct fixture *f = *state;
    char *path = api_pw_path(f);
    unlink(path);
    free(path);
    set("RESTAPI_AUTH", "false");
    set("RESTAPI_USERNAME", "a:b"); /* not read when off */
    int rc = load(f, CONFIG_POD);
    diag_print(&f->d);
    assert_int_equal(rc, 0);
    assert_null(f->cfg.restapi_username);
    assert_null(f->cfg.restapi_password);

    set("RESTAPI_AUTH", "nope"); /* then the default (on) applies to the rest */
    set("RESTAPI_USERNAME", "patroni");
    set("RESTAPI_PASSWORD", "envpass");
    assert_only_error("RESTAPI_AUTH: \"nope\" is not a boolean; expected true/false, 1/0, "
                      "yes/no or on/off");
}

static void citus_group_not_a_number(void **state)
{
    struct fixture *f = *state;
    set("CITUS_GROUP", "abc");
    assert_only_error("CITUS_GROUP: \"abc\" is not a number; expected an integer >= 0");
    set("CITUS_GROUP", "1x");
    assert_only_error("CITUS_GROUP: \"1x\" is not a number; expected an integer >= 0");
}

static void citus_group_negative_or_huge(void **state)
{
    struct fixture *f = *state;
    set("CITUS_GROUP", "-1");
    assert_only_error("CITUS_GROUP: \"-1\" is out of range; expected an integer >= 0");
    set("CITUS_GROUP", "99999999999999999999999");
    assert_only_error("CITUS_GROUP: \"99999999999999999999999\" is out of range; expected an "
                      "integer >= 0");
}

static void port_out_of_range(void **state)
{
    struct fixture *f = *state;
    set("PG_PORT", "70000");
    assert_only_error("PG_PORT: \"70000\" is out of range; expected an integer from 1 to 65535");
    set("PG_PORT", "8008");
    assert_only_error("PATRONI_API_PORT: 8008 is also PG_PORT; expected two different ports");
}

static void unknown_ssl_mode(void **state)
{
    struct fixture *f = *state;
    set("SSL_MODE", "verify");
    assert_only_error("SSL_MODE: \"verify\" is not a known mode; expected one of prefer, require, "
                      "verify-ca, verify-full");
}

static void bad_boolean(void **state)
{
    struct fixture *f = *state;
    set("SSL_ENABLED", "maybe");
    assert_only_error("SSL_ENABLED: \"maybe\" is not a boolean; expected true/false, 1/0, yes/no "
                      "or on/off");
}

static void synchronous_and_failsafe_modes(void **state)
{
    struct fixture *f = *state;
    set("SYNCHRONOUS_MODE", "Quorum");
    set("FAILSAFE_MODE", "false");
    assert_int_equal(load(f, CONFIG_POD), 0);
    assert_int_equal(f->cfg.synchronous_mode, SYNC_QUORUM);
    assert_false(f->cfg.failsafe_mode);
    set("SYNCHRONOUS_MODE", "auto");
    set("CITUS_ENABLED", "false");
    assert_int_equal(load(f, CONFIG_POD), 0);
    assert_int_equal(f->cfg.synchronous_mode, SYNC_OFF); /* auto without Citus */
    set("SYNCHRONOUS_MODE", "strict");
    assert_only_error("SYNCHRONOUS_MODE: \"strict\" is not a mode; expected auto, quorum, true "
                      "or false");
}

static void app_role(void **state)
{
    struct fixture *f = *state;
    set("APP_USERNAME", "app");
    set("APP_PASSWORD", "from-env");
    assert_int_equal(load(f, CONFIG_POD), 0); /* no file: the variable */
    assert_string_equal(f->cfg.app_username, "app");
    assert_string_equal(f->cfg.app_password, "from-env");
    set("APP_USERNAME", "postgres");
    assert_only_error("APP_USERNAME: \"postgres\" is also SUPERUSER_USERNAME; expected a role of "
                      "its own for applications");
    set("APP_USERNAME", "App-1");
    assert_int_equal(load(f, CONFIG_POD), -1);
    assert_true(f->d.count >= 1);
    assert_true(strstr(f->d.items[0].message, "APP_USERNAME: \"App-1\"") != NULL);
    set("APP_USERNAME", "app");
    unset("APP_PASSWORD");
    assert_int_equal(load(f, CONFIG_POD), -1);
    assert_true(strstr(f->d.items[0].message, "APP_PASSWORD") != NULL);
}

static void agent_metrics_port(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(load(f, CONFIG_POD), 0);
    assert_int_equal(f->cfg.agent_metrics_port, 0); /* off by default */
    set("AGENT_METRICS_PORT", "9188");
    assert_int_equal(load(f, CONFIG_POD), 0);
    assert_int_equal(f->cfg.agent_metrics_port, 9188);
    set("AGENT_METRICS_PORT", "0");
    assert_int_equal(load(f, CONFIG_POD), 0);
    assert_int_equal(f->cfg.agent_metrics_port, 0);
    set("AGENT_METRICS_PORT", "65536");
    assert_only_error("AGENT_METRICS_PORT: \"65536\" is out of range; expected 0 (off) or an "
                      "integer from 1 to 65535");
    set("AGENT_METRICS_PORT", "-1");
    assert_only_error("AGENT_METRICS_PORT: \"-1\" is out of range; expected 0 (off) or an "
                      "integer from 1 to 65535");
    set("AGENT_METRICS_PORT", "http");
    assert_only_error("AGENT_METRICS_PORT: \"http\" is not a number; expected 0 (off) or an "
                      "integer from 1 to 65535");
    set("AGENT_METRICS_PORT", "09188");
    assert_only_error("AGENT_METRICS_PORT: \"09188\" is not a plain decimal number (no '+', no "
                      "leading zeros); expected 0 (off) or an integer from 1 to 65535");
    set("AGENT_METRICS_PORT", "5432");
    assert_only_error("AGENT_METRICS_PORT: 5432 is also PG_PORT; expected a port of its own for "
                      "the agent's metrics");
    set("AGENT_METRICS_PORT", "8008");
    assert_only_error("AGENT_METRICS_PORT: 8008 is also PATRONI_API_PORT; expected a port of its "
                      "own for the agent's metrics");
    set("PATRONI_API_PORT", "9188");
    set("AGENT_METRICS_PORT", "9188");
    assert_only_error("AGENT_METRICS_PORT: 9188 is also PATRONI_API_PORT; expected a port of its "
                      "own for the agent's metrics");
    /* the port compared is the one configured, not the default */
    set("PG_PORT", "5433");
    set("PATRONI_API_PORT", "8009");
    set("AGENT_METRICS_PORT", "8008");
    assert_int_equal(load(f, CONFIG_POD), 0);
    set("AGENT_METRICS_PORT", "5432");
    assert_int_equal(load(f, CONFIG_POD), 0);
}

static void monitoring_role(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(load(f, CONFIG_POD), 0);
    assert_null(f->cfg.monitoring_role); /* off by default */
    assert_null(f->cfg.monitoring_os_user);
    set("MONITORING_ROLE", "citus_monitor");
    assert_int_equal(load(f, CONFIG_POD), 0);
    assert_string_equal(f->cfg.monitoring_role, "citus_monitor");
    assert_string_equal(f->cfg.monitoring_os_user, "nobody");
    set("MONITORING_OS_USER", "exporter");
    assert_int_equal(load(f, CONFIG_POD), 0);
    assert_string_equal(f->cfg.monitoring_os_user, "exporter");
    unset("MONITORING_OS_USER");

    set("MONITORING_ROLE", "monitor");
    assert_only_error("MONITORING_ROLE: \"monitor\" is not supported; expected citus_monitor "
                      "(the role monitoring-role.sql defines) or empty (off)");
    set("MONITORING_ROLE", "citus_monitor; DROP ROLE postgres");
    assert_only_error("MONITORING_ROLE: \"citus_monitor; DROP ROLE postgres\" is not "
                      "supported; expected citus_monitor (the role monitoring-role.sql defines) "
                      "or empty (off)");
    set("MONITORING_ROLE", "citus_monitor");
    set("SUPERUSER_USERNAME", "citus_monitor");
    assert_only_error("MONITORING_ROLE: \"citus_monitor\" is also SUPERUSER_USERNAME; expected "
                      "a role of its own for monitoring");
    unset("SUPERUSER_USERNAME");
    set("APP_USERNAME", "citus_monitor");
    set("APP_PASSWORD", "envpass");
    assert_int_equal(load(f, CONFIG_POD), -1);
    assert_error("MONITORING_ROLE: \"citus_monitor\" is also APP_USERNAME; expected a role of "
                 "its own for monitoring");
    unset("APP_USERNAME");
    unset("APP_PASSWORD");

    set("MONITORING_OS_USER", "root");
    assert_only_error("MONITORING_OS_USER: \"root\" is also root; expected an OS user of its "
                      "own (default nobody) that logs in as MONITORING_ROLE only");
    set("MONITORING_OS_USER", "postgres");
    assert_only_error("MONITORING_OS_USER: \"postgres\" is also RUN_AS_USER; expected an OS "
                      "user of its own (default nobody) that logs in as MONITORING_ROLE only");
    set("MONITORING_OS_USER", "no body");
    assert_only_error("MONITORING_OS_USER: \"no body\" is not a valid user name; expected "
                      "letters, digits, '_', '-' and '.', at most 32 characters");
    set("MONITORING_OS_USER", "nobody\nlocal all postgres");
    assert_int_equal(load(f, CONFIG_POD), -1);
    assert_int_equal(f->d.count, 1);
    assert_true(strstr(f->d.items[0].message, "MONITORING_OS_USER: ") != NULL);
    assert_true(strstr(f->d.items[0].message, "is not a valid user name") != NULL);
    /* checked also while the role is off: a typo does not wait for the day it is switched on */
    unset("MONITORING_ROLE");
    set("MONITORING_OS_USER", "-x");
    assert_only_error("MONITORING_OS_USER: \"-x\" is not a valid user name; expected letters, "
                      "digits, '_', '-' and '.', at most 32 characters");
}

static void client_cert_without_ssl(void **state)
{
    struct fixture *f = *state;
    set("SSL_ENABLED", "false");
    set("SSL_CLIENT_CERT", "true");
    assert_only_error("SSL_CLIENT_CERT: true while SSL_ENABLED is false; expected "
                      "SSL_ENABLED=true to require client certificates");
}

static void restapi_tls_needs_ssl(void **state)
{
    struct fixture *f = *state;
    set("SSL_ENABLED", "false");
    set("RESTAPI_TLS", "true");
    assert_only_error("RESTAPI_TLS: true while SSL_ENABLED is false; expected SSL_ENABLED=true "
                      "(the REST API serves the member's PostgreSQL certificate)");
}

static void restapi_tls_can_be_turned_off(void **state)
{
    struct fixture *f = *state;
    set("SSL_ENABLED", "true");
    set("RESTAPI_TLS", "off");
    assert_int_equal(load(f, CONFIG_POD), 0);
    assert_true(f->cfg.ssl_enabled);
    assert_false(f->cfg.restapi_tls);
}

static void unknown_log_settings(void **state)
{
    struct fixture *f = *state;
    set("LOG_FORMAT", "xml");
    set("LOG_LEVEL", "loud");
    assert_int_equal(load(f, CONFIG_POD), -1);
    assert_error("LOG_FORMAT: \"xml\" is not a known format; expected logfmt or json");
    assert_error("LOG_LEVEL: \"loud\" is not a known level; expected one of debug, info, warn, "
                 "error");
    assert_int_equal(f->d.count, 2);
}

static void empty_password_file(void **state)
{
    struct fixture *f = *state;
    free(write_file(f->secrets, "superuser-password", "\n", 1));
    set("SUPERUSER_PASSWORD", "envpass"); /* must not mask the broken file */
    char msg[512];
    snprintf(msg, sizeof(msg), "%s/superuser-password: file is empty; expected the superuser "
             "password", f->secrets);
    assert_only_error(msg);
}

static void password_path_not_a_file(void **state)
{
    struct fixture *f = *state;
    char *path;
    if (asprintf(&path, "%s/replication-password", f->secrets) < 0)
        abort();
    unlink(path);
    mkdir(path, 0700);
    char msg[512];
    snprintf(msg, sizeof(msg), "%s: is not a regular file; expected a file with the replication "
             "password", path);
    assert_only_error(msg);
    free(path);
}

static void unreadable_password_file(void **state)
{
    struct fixture *f = *state;
    char *path;
    if (asprintf(&path, "%s/superuser-password", f->secrets) < 0)
        abort();
    chmod(path, 0);
    if (access(path, R_OK) == 0) { /* root reads anything: nothing to test here */
        free(path);
        skip();
    }
    char msg[512];
    snprintf(msg, sizeof(msg), "%s: cannot be read (Permission denied); expected a readable file "
             "with the superuser password", path);
    assert_only_error(msg);
    free(path);
}

static void password_file_symlink_loop(void **state)
{
    struct fixture *f = *state;
    char *path;
    if (asprintf(&path, "%s/superuser-password", f->secrets) < 0)
        abort();
    unlink(path);
    assert_int_equal(symlink("superuser-password", path), 0);
    set("SUPERUSER_PASSWORD", "envpass"); /* present but unreadable: no fallback */
    char msg[512];
    snprintf(msg, sizeof(msg), "%s: cannot be read (Too many levels of symbolic links); expected a "
             "readable file with the superuser password", path);
    assert_only_error(msg);
    free(path);
}

static void password_from_env_only_without_file(void **state)
{
    struct fixture *f = *state;
    char *path;
    if (asprintf(&path, "%s/superuser-password", f->secrets) < 0)
        abort();
    unlink(path);
    free(path);
    set("SUPERUSER_PASSWORD", "envpass");
    set("REPLICATION_PASSWORD", "envpass-ignored"); /* the file exists: the file wins */
    assert_int_equal(load(f, CONFIG_POD), 0);
    assert_string_equal(f->cfg.superuser_password, "envpass");
    assert_string_equal(f->cfg.replication_password, REPL_PW);
}

static void password_keeps_all_but_one_newline(void **state)
{
    struct fixture *f = *state;
    free(write_file(f->secrets, "pw-key", "a:b#c \"d\"\n\n", 11));
    set("SUPERUSER_PASSWORD_KEY", "pw-key");
    assert_int_equal(load(f, CONFIG_POD), 0);
    assert_string_equal(f->cfg.superuser_password, "a:b#c \"d\"\n");
}

static void password_key_with_slash(void **state)
{
    struct fixture *f = *state;
    set("REPLICATION_PASSWORD_KEY", "../etc/shadow");
    assert_only_error("REPLICATION_PASSWORD_KEY: \"../etc/shadow\" is not a file name; expected a "
                      "key of the secret (no '/')");
}

static void password_never_shown_when_invalid(void **state)
{
    struct fixture *f = *state;
    free(write_file(f->secrets, "superuser-password", "envpass\xff", 8));
    char msg[512];
    snprintf(msg, sizeof(msg), "%s/superuser-password: file is not valid UTF-8; expected the "
             "superuser password as UTF-8 text", f->secrets);
    assert_only_error(msg);
}

static void password_file_too_large_or_binary(void **state)
{
    struct fixture *f = *state;
    char big[4098];
    memset(big, 'p', sizeof(big));
    free(write_file(f->secrets, "superuser-password", big, sizeof(big)));
    free(write_file(f->secrets, "replication-password", "ab\0cd", 5));
    assert_int_equal(load(f, CONFIG_POD), -1);
    char msg[512];
    snprintf(msg, sizeof(msg), "%s/superuser-password: file is larger than 4096 bytes; expected "
             "the superuser password", f->secrets);
    assert_error(msg);
    snprintf(msg, sizeof(msg), "%s/replication-password: file contains a NUL byte; expected the "
             "replication password as text", f->secrets);
    assert_error(msg);
    assert_int_equal(f->d.count, 2);
}

static void invalid_utf8_values(void **state)
{
    struct fixture *f = *state;
    char *path;
    if (asprintf(&path, "%s/replication-password", f->secrets) < 0)
        abort();
    unlink(path);
    free(path);
    set("REPLICATION_PASSWORD", "envpass\xc3");
    set("PGDATA", "/data/\xff");
    assert_int_equal(load(f, CONFIG_POD), -1);
    assert_error("REPLICATION_PASSWORD: value is not valid UTF-8; expected the replication "
                 "password as UTF-8 text");
    assert_error("PGDATA: value is not valid UTF-8; expected UTF-8 text");
    assert_int_equal(f->d.count, 2);
}

static void dcs_auto_detects_kubernetes(void **state)
{
    struct fixture *f = *state;
    set("KUBERNETES_SERVICE_HOST", "10.96.0.1");
    assert_int_equal(load(f, CONFIG_POD), 0);
    assert_int_equal(f->cfg.dcs, DCS_KUBERNETES);
    assert_int_equal(f->cfg.k8s_label_count, 1);
    assert_string_equal(f->cfg.k8s_labels[0].key, "cluster-name");
    assert_string_equal(f->cfg.k8s_labels[0].value, "citusdemo");
}

static void dcs_unknown_type(void **state)
{
    struct fixture *f = *state;
    set("DCS_TYPE", "zookeeper");
    assert_only_error("DCS_TYPE: \"zookeeper\" is not a known DCS; expected kubernetes or etcd3");
}

static void etcd_hosts_checked(void **state)
{
    struct fixture *f = *state;
    set("ETCD_HOSTS", "127.0.0.1:2379, [::1]:2379,etcd-0.etcd:2379");
    assert_int_equal(load(f, CONFIG_POD), 0);
    assert_string_equal(f->cfg.etcd_hosts[1], "[::1]:2379");
    assert_string_equal(f->cfg.etcd_hosts[2], "etcd-0.etcd:2379");
    assert_null(f->cfg.etcd_hosts[3]);

    set("ETCD_HOSTS", "127.0.0.1,127.0.0.2:0");
    assert_int_equal(load(f, CONFIG_POD), -1);
    assert_error("ETCD_HOSTS: \"127.0.0.1\" is not host:port; expected host:port[,host:port...] "
                 "with a port from 1 to 65535");
    assert_error("ETCD_HOSTS: \"127.0.0.2:0\" is not host:port; expected host:port[,host:port...] "
                 "with a port from 1 to 65535");

    set("ETCD_HOSTS", " , ");
    assert_only_error("ETCD_HOSTS: \" , \" holds no host:port; expected host:port[,host:port...]");

    set("DCS_TYPE", "etcd3");
    unset("ETCD_HOSTS");
    assert_only_error("ETCD_HOSTS: not set; expected host:port[,host:port...] because DCS_TYPE is "
                      "etcd3");
}

static void kubernetes_labels_checked(void **state)
{
    struct fixture *f = *state;
    set("DCS_TYPE", "kubernetes");
    set("KUBERNETES_LABELS", "cluster-name");
    assert_only_error("KUBERNETES_LABELS: \"cluster-name\" is not a valid label; expected "
                      "key=value[,key=value...] with Kubernetes label keys and values");
    set("KUBERNETES_LABELS", "a=1,b=2,a=3");
    assert_only_error("KUBERNETES_LABELS: label a is given twice; expected each label key once");
    set("KUBERNETES_LABELS", ",");
    assert_only_error("KUBERNETES_LABELS: \",\" holds no label; expected key=value[,key=value...] "
                      "that select this cluster's pods");
}

static void dcs_timing_rule(void **state)
{
    struct fixture *f = *state;
    set("DCS_LOOP_WAIT", "10");
    set("DCS_RETRY_TIMEOUT", "10");
    assert_only_error("DCS_LOOP_WAIT + 2*DCS_RETRY_TIMEOUT: 10 + 2*10 = 30 is more than DCS_TTL "
                      "20; expected loop_wait + 2*retry_timeout <= ttl");
    set("DCS_TTL", "30");
    assert_int_equal(load(f, CONFIG_POD), 0);
    set("DCS_TTL", "10");
    assert_int_equal(load(f, CONFIG_POD), -1);
    assert_error("DCS_TTL: \"10\" is out of range; expected an integer >= 20");
}

static void shutdown_deadline_below_grace_period(void **state)
{
    struct fixture *f = *state;
    set("SHUTDOWN_DEADLINE", "30");
    assert_only_error("SHUTDOWN_DEADLINE: 30 is not below TERMINATION_GRACE_PERIOD 30; expected a "
                      "deadline shorter than the grace period");
}

static void identity_syntax(void **state)
{
    struct fixture *f = *state;
    set("POD_NAME", "Pod_1");
    set("POD_IP", "10.0.0.300");
    set("CLUSTER_NAME", "citus.demo");
    set("POD_NAMESPACE", "-x");
    assert_int_equal(load(f, CONFIG_POD), -1);
    assert_error("POD_NAME: \"Pod_1\" is not a valid member name; expected a DNS name of "
                 "lowercase letters, digits, '-' and '.', e.g. citusdemo-0-1");
    assert_error("POD_IP: \"10.0.0.300\" is not an IP address; expected an IPv4 or IPv6 address");
    assert_error("CLUSTER_NAME: \"citus.demo\" is not a valid cluster name; expected a DNS label "
                 "of lowercase letters, digits and '-', at most 63 characters");
    assert_error("POD_NAMESPACE: \"-x\" is not a valid namespace; expected a DNS label of "
                 "lowercase letters, digits and '-'");
    assert_int_equal(f->d.count, 4);
}

static void loopback_connect_address_refused(void **state)
{
    struct fixture *f = *state;
    set("POD_IP", "127.0.0.1");
    assert_only_error("POD_IP: \"127.0.0.1\" cannot be a connect address; expected an address "
                      "other members reach this pod at (e.g. 127.0.10.1 for a local cluster)");
}

static void identifiers_and_paths(void **state)
{
    struct fixture *f = *state;
    set("CITUS_DATABASE", "citus; drop");
    set("SUPERUSER_USERNAME", "Postgres");
    set("REPLICATION_USERNAME", "postgres");
    set("PGDATA", "data");
    set("RUN_AS_USER", "post gres");
    set("LISTEN_ADDRESS", "localhost");
    set("POD_DNS_DOMAIN", "bad_domain");
    assert_int_equal(load(f, CONFIG_POD), -1);
    assert_error("CITUS_DATABASE: \"citus; drop\" is not a valid identifier; expected lowercase "
                 "letters, digits, '_' and '$', starting with a letter or '_', at most 63 bytes");
    assert_error("SUPERUSER_USERNAME: \"Postgres\" is not a valid identifier; expected lowercase "
                 "letters, digits, '_' and '$', starting with a letter or '_', at most 63 bytes");
    assert_error("PGDATA: \"data\" is not an absolute path; expected a path starting with /");
    assert_error("RUN_AS_USER: \"post gres\" is not a valid user name; expected letters, digits, "
                 "'_', '-' and '.', at most 32 characters");
    assert_error("LISTEN_ADDRESS: \"localhost\" is not an IP address; expected an IPv4 or IPv6 "
                 "address such as 0.0.0.0");
    assert_error("POD_DNS_DOMAIN: \"bad_domain\" is not a DNS domain; expected e.g. "
                 "citusdemo-0-hl.default.svc.cluster.local");
    assert_int_equal(f->d.count, 6);

    set("SUPERUSER_USERNAME", "postgres");
    set("CITUS_DATABASE", "citus");
    set("PGDATA", "/data");
    set("RUN_AS_USER", "postgres");
    set("LISTEN_ADDRESS", "::");
    unset("POD_DNS_DOMAIN");
    assert_only_error("REPLICATION_USERNAME: \"postgres\" is also SUPERUSER_USERNAME; expected a "
                      "separate replication user");
}

static void control_characters_are_escaped_in_messages(void **state)
{
    struct fixture *f = *state;
    set("SSL_MODE", "a\"b\nc");
    assert_only_error("SSL_MODE: \"a\\\"b\\x0ac\" is not a known mode; expected one of prefer, "
                      "require, verify-ca, verify-full");
}

static void long_values_are_cut_in_messages(void **state)
{
    struct fixture *f = *state;
    char value[201], shown[100];
    memset(value, 'x', 200);
    value[200] = '\0';
    memset(shown, 'x', 80);
    strcpy(shown + 80, "...");
    set("LOG_LEVEL", value);
    char msg[512];
    snprintf(msg, sizeof(msg), "LOG_LEVEL: \"%s\" is not a known level; expected one of debug, "
             "info, warn, error", shown);
    assert_only_error(msg);
}

static void pg_bin_dir_checked(void **state)
{
    struct fixture *f = *state;
    set("PG_BIN_DIR", f->secrets);
    char msg[512];
    snprintf(msg, sizeof(msg), "PG_BIN_DIR: \"%s\" has no executable postgres (a regular "
             "file); expected the directory with postgres and pg_ctl", f->secrets);
    assert_only_error(msg);
}

/* Issue #12: a directory named postgres passes access(X_OK) but is no program. */
static void pg_bin_dir_postgres_must_be_a_file(void **state)
{
    struct fixture *f = *state;
    char *postgres;
    if (asprintf(&postgres, "%s/postgres", f->bindir) < 0)
        abort();
    unlink(postgres);
    assert_int_equal(mkdir(postgres, 0755), 0);
    char msg[512];
    snprintf(msg, sizeof(msg), "PG_BIN_DIR: \"%s\" has no executable postgres (a regular "
             "file); expected the directory with postgres and pg_ctl", f->bindir);
    assert_only_error(msg);
    rmdir(postgres);
    free(write_file(f->bindir, "postgres", "#!/bin/sh\n", 10));
    chmod(postgres, 0644); /* a file, but not executable */
    assert_only_error(msg);
    free(postgres);
}

static void pg_bin_dir_detected(void **state)
{
    struct fixture *f = *state;
    unset("PG_BIN_DIR");
    int rc = load(f, CONFIG_POD);
    if (rc != 0) {
        /* no PostgreSQL on this machine: then the message must say so */
        assert_only_error("PG_BIN_DIR: not set and no /usr/lib/postgresql/*/bin/postgres was "
                          "found; expected the directory with postgres and pg_ctl");
        return;
    }
    /* the newest major version that has a postgres binary */
    long newest = -1;
    DIR *dir = opendir("/usr/lib/postgresql");
    assert_non_null(dir);
    struct dirent *de;
    while ((de = readdir(dir))) {
        char p[512];
        long v = strtol(de->d_name, NULL, 10);
        snprintf(p, sizeof(p), "/usr/lib/postgresql/%s/bin/postgres", de->d_name);
        if (v > newest && access(p, X_OK) == 0)
            newest = v;
    }
    closedir(dir);
    char expected[64];
    snprintf(expected, sizeof(expected), "/usr/lib/postgresql/%ld/bin", newest);
    assert_string_equal(f->cfg.pg_bin_dir, expected);
}

/* Issue #12: a secret file that exists but is not a readable regular file is an error even
 * with the variable set; only a file that does not exist at all lets the variable in. */
static void broken_password_file_is_never_masked_by_env(void **state)
{
    struct fixture *f = *state;
    char *path;
    if (asprintf(&path, "%s/superuser-password", f->secrets) < 0)
        abort();
    unlink(path);
    assert_int_equal(symlink("..data/nowhere", path), 0); /* a broken secret volume */
    set("SUPERUSER_PASSWORD", "envpass");
    char msg[512];
    snprintf(msg, sizeof(msg), "%s: is a symbolic link to nothing; expected a file with the "
             "superuser password (SUPERUSER_PASSWORD is used only when no such file exists)", path);
    assert_only_error(msg);
    assert_null(f->cfg.superuser_password);

    unlink(path);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(msg, sizeof(msg), "%s: is not a regular file; expected a file with the superuser "
             "password", path);
    assert_only_error(msg);
    rmdir(path);

    assert_int_equal(load(f, CONFIG_POD), 0); /* no entry at all: the variable is used */
    assert_string_equal(f->cfg.superuser_password, "envpass");
    free(path);
}

/* Issue #12: exactly one line end at the very end ("\n" or "\r\n") is stripped. */
static void password_line_end_rule(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *file, *password;
    } cases[] = {
        {"pw\n", "pw"}, {"pw\r\n", "pw"}, {"pw", "pw"}, {"pw\r", "pw\r"}, {"pw \n", "pw "},
        {" pw\t\n", " pw\t"}, {"pw\n\n", "pw\n"}, {"pw\r\n\r\n", "pw\r\n"}, {"pw\n\r", "pw\n\r"},
    };
    set("SUPERUSER_PASSWORD_KEY", "pw-key");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        free(write_file(f->secrets, "pw-key", cases[i].file, strlen(cases[i].file)));
        assert_int_equal(load(f, CONFIG_POD), 0);
        assert_string_equal(f->cfg.superuser_password, cases[i].password);
    }
    free(write_file(f->secrets, "pw-key", "\r\n", 2));
    char msg[512];
    snprintf(msg, sizeof(msg), "%s/pw-key: file is empty; expected the superuser password",
             f->secrets);
    assert_only_error(msg);
    /* the variable is taken as it is */
    unset("SUPERUSER_PASSWORD_KEY");
    char *path;
    if (asprintf(&path, "%s/superuser-password", f->secrets) < 0)
        abort();
    unlink(path);
    free(path);
    set("SUPERUSER_PASSWORD", "envpass\n");
    assert_int_equal(load(f, CONFIG_POD), 0);
    assert_string_equal(f->cfg.superuser_password, "envpass\n");
}

/* Issue #12: one spelling rule. Enumerated values (booleans too) are case-insensitive ASCII;
 * integers are plain decimal digits. */
static void enumerations_are_case_insensitive(void **state)
{
    struct fixture *f = *state;
    set("SSL_MODE", "Verify-Full");
    set("LOG_FORMAT", "JSON");
    set("LOG_LEVEL", "Warn");
    set("DCS_TYPE", "ETCD3");
    set("SSL_ENABLED", "TRUE");
    set("SYNCHRONOUS_MODE", "Off");
    int rc = load(f, CONFIG_POD);
    diag_print(&f->d);
    assert_int_equal(rc, 0);
    assert_int_equal(f->cfg.ssl_mode, SSL_MODE_VERIFY_FULL);
    assert_int_equal(f->cfg.log_format, LOG_FORMAT_JSON);
    assert_int_equal(f->cfg.log_level, LOG_WARN);
    assert_int_equal(f->cfg.dcs, DCS_ETCD3);
    assert_true(f->cfg.ssl_enabled);
    set("LOG_FORMAT", "jsonx");
    assert_only_error("LOG_FORMAT: \"jsonx\" is not a known format; expected logfmt or json");
}

static void integers_are_plain_decimal(void **state)
{
    struct fixture *f = *state;
    static const char *const refused[] = {"+1", "007", "-0", "00", "+0", "01"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        set("CITUS_GROUP", refused[i]);
        char msg[256];
        snprintf(msg, sizeof msg, "CITUS_GROUP: \"%s\" is not a plain decimal number (no '+', no "
                 "leading zeros); expected an integer >= 0", refused[i]);
        assert_only_error(msg);
    }
    set("CITUS_GROUP", " 1");
    assert_only_error("CITUS_GROUP: \" 1\" is not a number; expected an integer >= 0");
    set("CITUS_GROUP", "0");
    assert_int_equal(load(f, CONFIG_POD), 0);
    set("CITUS_GROUP", "10");
    assert_int_equal(load(f, CONFIG_POD), 0);
    assert_int_equal(f->cfg.citus_group, 10);
    set("ETCD_HOSTS", "127.0.0.1:02379");
    assert_only_error("ETCD_HOSTS: \"127.0.0.1:02379\" is not host:port; expected "
                      "host:port[,host:port...] with a port from 1 to 65535");
}

/* The process environment as a list, with the fixture's entries and extra ones. */
static int load_from_list(struct fixture *f, const char *const *extra)
{
    char *envp[80];
    size_t n = 0;
    for (size_t i = 0; i < f->env.count; i++)
        envp[n++] = f->env.entries[i];
    for (size_t i = 0; extra[i]; i++)
        envp[n++] = (char *)extra[i];
    envp[n] = NULL;
    if (f->loaded)
        config_free(&f->cfg);
    diag_free(&f->d);
    f->loaded = true;
    return config_load(&f->cfg, CONFIG_POD, env_lookup_process, envp, &f->d);
}

static void variable_present_twice_is_an_error(void **state)
{
    struct fixture *f = *state;
    const char *const extra[] = {"POD_NAME=other-0-0", "SUPERUSER_PASSWORD=envpass",
                                 "SUPERUSER_PASSWORD=envpass2", "PATRONI_X=1", "PATRONI_X=2",
                                 "LOG_LEVEL=", "LOG_LEVEL=debug", NULL};
    assert_int_equal(load_from_list(f, extra), -1);
    assert_true(diag_has(&f->d, DIAG_ERROR, "POD_NAME: present 2 times in the environment; "
                         "expected each variable once (which copy a program reads differs)"));
    assert_true(diag_has(&f->d, DIAG_ERROR, "LOG_LEVEL: present 2 times in the environment; "
                         "expected each variable once (which copy a program reads differs)"));
    /* the password file exists, so SUPERUSER_PASSWORD is never looked at: no message */
    assert_false(diag_contains(&f->d, "SUPERUSER_PASSWORD"));
    assert_false(diag_contains(&f->d, "PATRONI_X")); /* not ours to read */
    assert_int_equal(f->d.count, 2);

    const char *const once[] = {"PATRONI_X=1", NULL};
    assert_int_equal(load_from_list(f, once), 0);
    assert_string_equal(f->cfg.pod_name, "citusdemo-0-1");
    const char *const fake[] = {NULL}; /* the look-up functions tests use know no lists */
    (void)fake;
    fake_env_set(&f->env, "POD_NAME", "citusdemo-0-1");
    assert_int_equal(load(f, CONFIG_POD), 0);
}

/* Issue #12: derived values never produce second errors; the root cause is reported once. */
static void only_the_root_cause_is_reported(void **state)
{
    struct fixture *f = *state;
    set("DCS_TYPE", "kubernetes");
    set("CLUSTER_NAME", "Bad_Name");
    assert_only_error("CLUSTER_NAME: \"Bad_Name\" is not a valid cluster name; expected a DNS "
                      "label of lowercase letters, digits and '-', at most 63 characters");
    set("CLUSTER_NAME", "citusdemo");
    unset("DCS_TYPE");

    set("PG_PORT", "8008");
    set("PATRONI_API_PORT", "x");
    assert_only_error("PATRONI_API_PORT: \"x\" is not a number; expected an integer from 1 to "
                      "65535");
    set("PATRONI_API_PORT", "5432");
    set("PG_PORT", "0");
    assert_only_error("PG_PORT: \"0\" is out of range; expected an integer from 1 to 65535");
    unset("PG_PORT");
    unset("PATRONI_API_PORT");

    set("DCS_TTL", "abc");
    set("DCS_LOOP_WAIT", "30");
    assert_only_error("DCS_TTL: \"abc\" is not a number; expected an integer >= 20");
    unset("DCS_TTL");
    unset("DCS_LOOP_WAIT");

    set("TERMINATION_GRACE_PERIOD", "5");
    set("SHUTDOWN_DEADLINE", "+3");
    assert_only_error("SHUTDOWN_DEADLINE: \"+3\" is not a plain decimal number (no '+', no "
                      "leading zeros); expected an integer >= 1");
    unset("TERMINATION_GRACE_PERIOD");
    unset("SHUTDOWN_DEADLINE");

    set("SSL_ENABLED", "maybe");
    set("SSL_CLIENT_CERT", "true");
    set("RESTAPI_TLS", "true");
    assert_only_error("SSL_ENABLED: \"maybe\" is not a boolean; expected true/false, 1/0, "
                      "yes/no or on/off");
    unset("SSL_ENABLED");
    unset("SSL_CLIENT_CERT");
    unset("RESTAPI_TLS");

    set("SUPERUSER_USERNAME", "Bad");
    set("REPLICATION_USERNAME", "Bad");
    assert_int_equal(load(f, CONFIG_POD), -1);
    assert_int_equal(f->d.count, 2); /* each invalid, not also "the same user" */
    assert_false(diag_contains(&f->d, "is also SUPERUSER_USERNAME"));
}

static void paths_without_control_characters(void **state)
{
    struct fixture *f = *state;
    set("RUN_DIR", "/run/a\nb");
    assert_only_error("RUN_DIR: \"/run/a\\x0ab\" holds a control character; expected a path of "
                      "printable characters");
    unset("RUN_DIR");
    set("PGDATA", "/data/\x7f");
    assert_only_error("PGDATA: \"/data/\\x7f\" holds a control character; expected a path of "
                      "printable characters");
    set("PGDATA", "/data with space/it's");
    assert_int_equal(load(f, CONFIG_POD), 0);
}

/* Issue #12: a 1 MiB EXTENSIONS_FILE of distinct names was a quadratic duplicate scan (43 s
 * in check); now linear, and more than EXTENSIONS_MAX_COUNT names is an error. */
static void extensions_file_limit_and_linear_time(void **state)
{
    struct fixture *f = *state;
    size_t n = 145000, len = 0;
    char *text = malloc(n * 8 + 1);
    for (size_t i = 0; i < n; i++)
        len += (size_t)sprintf(text + len, "e%05zx\n", i);
    char *file = write_file(f->dir, "extensions", text, len);
    set("EXTENSIONS_FILE", file);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char msg[512];
    snprintf(msg, sizeof(msg), "%s line 10001: more than 10000 extensions (EXTENSIONS and "
             "EXTENSIONS_FILE together); expected at most 10000", file);
    assert_only_error(msg);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_true((t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9 < 2.0);
    free(file);

    /* exactly the limit, with EXTENSIONS sharing it: its names count, duplicates do not */
    len = 0;
    for (size_t i = 0; i < 9999; i++)
        len += (size_t)sprintf(text + len, "e%05zx\n", i);
    len += (size_t)sprintf(text + len, "postgis\nhstore\n");
    file = write_file(f->dir, "extensions", text, len);
    set("EXTENSIONS", "postgis,e00000");
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(load(f, CONFIG_POD), -1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    snprintf(msg, sizeof(msg), "%s line 10001: more than 10000 extensions (EXTENSIONS and "
             "EXTENSIONS_FILE together); expected at most 10000", file);
    assert_error(msg); /* hstore is the 10001st distinct name */
    assert_int_equal(f->d.count, 1);
    assert_int_equal(f->cfg.extensions.count, 10000);
    assert_true((t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9 < 2.0);
    free(file);
    free(text);
}

static void extension_list_syntax(void **state)
{
    struct fixture *f = *state;
    const char *text = "# extra extensions\n"
                       "pg_partman:partman   # partitioning\n"
                       "\n"
                       "hstore, postgis\n";
    char *file = write_file(f->dir, "extensions", text, strlen(text));
    set("EXTENSIONS", "postgis,postgis_topology pg_stat_statements\nfuzzy$match");
    set("EXTENSIONS_FILE", file);
    int rc = load(f, CONFIG_POD);
    diag_print(&f->d);
    assert_int_equal(rc, 0);
    const struct extension_list *l = &f->cfg.extensions;
    assert_int_equal(l->count, 6);
    const char *names[] = {"postgis", "postgis_topology", "pg_stat_statements", "fuzzy$match",
                           "pg_partman", "hstore"};
    for (size_t i = 0; i < 6; i++)
        assert_string_equal(l->items[i].name, names[i]);
    assert_null(l->items[0].schema);
    assert_string_equal(l->items[4].schema, "partman");
    assert_string_equal(f->cfg.extensions_file, file);
    free(file);
}

static void extension_injection_rejected(void **state)
{
    struct fixture *f = *state;
    set("EXTENSIONS", "postgis; DROP TABLE x");
    assert_int_equal(load(f, CONFIG_POD), -1);
    const char *expected = "; expected name[:schema] with lowercase identifiers "
                           "([a-z_][a-z0-9_$]*, at most 63 bytes)";
    char msg[512];
    snprintf(msg, sizeof(msg), "EXTENSIONS: \"postgis;\" is not a valid extension entry%s", expected);
    assert_error(msg);
    snprintf(msg, sizeof(msg), "EXTENSIONS: \"DROP\" is not a valid extension entry%s", expected);
    assert_error(msg);
    snprintf(msg, sizeof(msg), "EXTENSIONS: \"TABLE\" is not a valid extension entry%s", expected);
    assert_error(msg);
    assert_int_equal(f->d.count, 3);
}

static void extension_entries_in_file_name_the_line(void **state)
{
    struct fixture *f = *state;
    char *file = write_file(f->dir, "extensions", "postgis\n\npg_partman:\n", 21);
    set("EXTENSIONS_FILE", file);
    char msg[512];
    snprintf(msg, sizeof(msg), "%s line 3: \"pg_partman:\" is not a valid extension entry; "
             "expected name[:schema] with lowercase identifiers ([a-z_][a-z0-9_$]*, at most 63 "
             "bytes)", file);
    assert_only_error(msg);
    free(file);
}

static void extension_name_length_limit(void **state)
{
    (void)state;
    char name[80];
    memset(name, 'a', sizeof(name));
    name[63] = '\0';
    assert_true(extension_name_valid(name));
    name[63] = 'a';
    name[64] = '\0';
    assert_false(extension_name_valid(name));
    assert_false(extension_name_valid(""));
    assert_false(extension_name_valid("1abc"));
    assert_false(extension_name_valid("ab-c"));
    assert_true(extension_name_valid("_a1$"));
}

static void extension_listed_twice(void **state)
{
    (void)state;
    struct extension_list l = {0};
    struct diag d;
    diag_init(&d);
    assert_int_equal(extension_list_parse(&l, "postgis postgis,hstore:public", "EXTENSIONS", &d), 0);
    assert_int_equal(l.count, 2);
    assert_int_equal(extension_list_parse(&l, "hstore", "/etc/ext", &d), -1);
    assert_true(diag_has(&d, DIAG_ERROR, "/etc/ext: \"hstore\" names extension hstore again with "
                         "no schema; expected each extension once (it was listed with schema "
                         "public)"));
    assert_int_equal(l.count, 2);
    extension_list_free(&l);
    diag_free(&d);
}

static void extensions_file_too_large_or_binary(void **state)
{
    struct fixture *f = *state;
    size_t n = 1024 * 1024 + 1;
    char *big = malloc(n);
    memset(big, ' ', n);
    char *file = write_file(f->dir, "extensions", big, n);
    free(big);
    set("EXTENSIONS_FILE", file);
    char msg[512];
    snprintf(msg, sizeof(msg), "EXTENSIONS_FILE: %s is larger than 1048576 bytes; expected a "
             "short list of extension names", file);
    assert_only_error(msg);
    free(file);

    file = write_file(f->dir, "extensions", "postgis\0", 8);
    snprintf(msg, sizeof(msg), "%s: file contains a NUL byte; expected extension names as text",
             file);
    assert_only_error(msg);
    free(file);
}

static void extensions_file_missing(void **state)
{
    struct fixture *f = *state;
    set("EXTENSIONS_FILE", "/nonexistent/extensions");
    assert_only_error("EXTENSIONS_FILE: /nonexistent/extensions cannot be read (No such file or "
                      "directory); expected a file with extension names");
}

static void extensions_job_needs_only_its_part(void **state)
{
    struct fixture *f = *state;
    fake_env_free(&f->env);
    set("SECRETS_DIR", f->secrets);
    set("EXTENSIONS", "postgis");
    assert_int_equal(load(f, CONFIG_EXTENSIONS_JOB), -1);
    assert_error("COORDINATOR_HOST: not set; expected the coordinator's service host name for "
                 "extensions --wait");
    assert_int_equal(f->d.count, 1);

    set("COORDINATOR_HOST", "citusdemo-0.default.svc.cluster.local");
    set("SSL_ENABLED", "true");
    unset("SECRETS_DIR"); /* replication secret is not needed */
    set("SUPERUSER_PASSWORD", "envpass");
    int rc = load(f, CONFIG_EXTENSIONS_JOB);
    diag_print(&f->d);
    assert_int_equal(rc, 0);
    assert_int_equal(f->cfg.purpose, CONFIG_EXTENSIONS_JOB);
    assert_string_equal(f->cfg.coordinator_host, "citusdemo-0.default.svc.cluster.local");
    assert_string_equal(f->cfg.superuser_password, "envpass");
    assert_null(f->cfg.replication_password);
    assert_null(f->cfg.restapi_password); /* the Job talks only SQL */
    assert_string_equal(f->cfg.citus_database, "citus");
    assert_int_equal(f->cfg.extensions.count, 1);
    assert_true(f->cfg.ssl_enabled);

    set("COORDINATOR_HOST", "bad host");
    assert_int_equal(load(f, CONFIG_EXTENSIONS_JOB), -1);
    assert_error("COORDINATOR_HOST: \"bad host\" is not a host name or IP address; expected e.g. "
                 "citusdemo-0.default.svc.cluster.local");
}

static void ssl_mode_names(void **state)
{
    (void)state;
    assert_string_equal(ssl_mode_name(SSL_MODE_PREFER), "prefer");
    assert_string_equal(ssl_mode_name(SSL_MODE_REQUIRE), "require");
    assert_string_equal(ssl_mode_name(SSL_MODE_VERIFY_CA), "verify-ca");
    assert_string_equal(ssl_mode_name(SSL_MODE_VERIFY_FULL), "verify-full");
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(defaults_and_derived_values),
        T(explicit_values),
        T(everything_missing_is_reported_at_once),
        T(restapi_password_missing),
        T(restapi_password_empty_or_unreadable),
        T(restapi_key_and_username),
        T(restapi_auth_switched_off),
        T(citus_group_not_a_number),
        T(citus_group_negative_or_huge),
        T(port_out_of_range),
        T(unknown_ssl_mode),
        T(bad_boolean),
        T(synchronous_and_failsafe_modes),
        T(app_role),
        T(agent_metrics_port),
        T(monitoring_role),
        T(client_cert_without_ssl),
        T(restapi_tls_needs_ssl),
        T(restapi_tls_can_be_turned_off),
        T(unknown_log_settings),
        T(empty_password_file),
        T(password_path_not_a_file),
        T(unreadable_password_file),
        T(password_file_symlink_loop),
        T(password_from_env_only_without_file),
        T(password_keeps_all_but_one_newline),
        T(password_key_with_slash),
        T(password_never_shown_when_invalid),
        T(password_file_too_large_or_binary),
        T(invalid_utf8_values),
        T(dcs_auto_detects_kubernetes),
        T(dcs_unknown_type),
        T(etcd_hosts_checked),
        T(kubernetes_labels_checked),
        T(dcs_timing_rule),
        T(shutdown_deadline_below_grace_period),
        T(identity_syntax),
        T(loopback_connect_address_refused),
        T(identifiers_and_paths),
        T(control_characters_are_escaped_in_messages),
        T(long_values_are_cut_in_messages),
        T(pg_bin_dir_checked),
        T(pg_bin_dir_detected),
        T(pg_bin_dir_postgres_must_be_a_file),
        T(broken_password_file_is_never_masked_by_env),
        T(password_line_end_rule),
        T(enumerations_are_case_insensitive),
        T(integers_are_plain_decimal),
        T(variable_present_twice_is_an_error),
        T(only_the_root_cause_is_reported),
        T(paths_without_control_characters),
        T(extensions_file_limit_and_linear_time),
        T(extension_list_syntax),
        T(extension_injection_rejected),
        T(extension_entries_in_file_name_the_line),
        T(extensions_file_too_large_or_binary),
        T(extensions_file_missing),
        T(extensions_job_needs_only_its_part),
        cmocka_unit_test(extension_name_length_limit),
        cmocka_unit_test(extension_listed_twice),
        cmocka_unit_test(ssl_mode_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
