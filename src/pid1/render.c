/* render.c: struct config -> Patroni YAML (see render.h), through libyaml's emitter.
 * Strings are emitted plain only when that is unambiguous for a YAML 1.1 reader (PyYAML):
 * anything that could read as a number, boolean or null, or holds special characters, is
 * double-quoted by construction. */
#include "render.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#define MASK "********"

struct out_buf {
    char *data;
    size_t len, cap;
};

struct emitter {
    yaml_emitter_t e;
    bool failed;
};

static int write_out(void *ctx, unsigned char *buffer, size_t size)
{
    struct out_buf *o = ctx;
    if (o->len + size + 1 > o->cap) {
        size_t cap = o->cap ? o->cap : 4096;
        while (o->len + size + 1 > cap)
            cap *= 2;
        char *data = realloc(o->data, cap);
        if (!data)
            return 0;
        o->data = data;
        o->cap = cap;
    }
    memcpy(o->data + o->len, buffer, size);
    o->len += size;
    o->data[o->len] = '\0';
    return 1;
}

/* Emits an initialised event; `ok` is the initialiser's result (0 on invalid input). */
static void emit(struct emitter *em, yaml_event_t *ev, int ok)
{
    if (!ok) {
        em->failed = true;
        return;
    }
    if (em->failed) {
        yaml_event_delete(ev);
        return;
    }
    if (!yaml_emitter_emit(&em->e, ev)) /* the emitter frees the event either way */
        em->failed = true;
}

static bool plain_is_safe(const char *s)
{
    static const char *const special[] = {"y", "n", "yes", "no", "true", "false", "on", "off",
                                          "null"};
    char c = s[0];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '/' || c == '_'))
        return false;
    for (size_t i = 0; i < sizeof(special) / sizeof(special[0]); i++)
        if (strcasecmp(s, special[i]) == 0)
            return false;
    for (const char *p = s; *p; p++) {
        c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == '/' || c == '-' || c == '=' ||
                  (c == ' ' && p[1] != '\0' && p[1] != ' ');
        if (!ok)
            return false;
    }
    return true;
}

static void str(struct emitter *em, const char *s)
{
    yaml_event_t ev;
    if (!s)
        s = "";
    yaml_scalar_style_t style = plain_is_safe(s) ? YAML_PLAIN_SCALAR_STYLE
                                                 : YAML_DOUBLE_QUOTED_SCALAR_STYLE;
    emit(em, &ev, yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)strlen(s),
                                               1, 1, style));
}

/* Numbers and booleans: plain scalars a YAML reader resolves to int/bool. */
static void raw_plain(struct emitter *em, const char *s)
{
    yaml_event_t ev;
    emit(em, &ev, yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)strlen(s),
                                               1, 0, YAML_PLAIN_SCALAR_STYLE));
}

static void num(struct emitter *em, long n)
{
    char b[32];
    snprintf(b, sizeof(b), "%ld", n);
    raw_plain(em, b);
}

static void boolean(struct emitter *em, bool v)
{
    raw_plain(em, v ? "true" : "false");
}

static void map_begin(struct emitter *em)
{
    yaml_event_t ev;
    emit(em, &ev, yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE));
}

static void map_end(struct emitter *em)
{
    yaml_event_t ev;
    emit(em, &ev, yaml_mapping_end_event_initialize(&ev));
}

static void seq_begin(struct emitter *em)
{
    yaml_event_t ev;
    emit(em, &ev, yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
                                                        YAML_BLOCK_SEQUENCE_STYLE));
}

static void seq_end(struct emitter *em)
{
    yaml_event_t ev;
    emit(em, &ev, yaml_sequence_end_event_initialize(&ev));
}

static void kv_str(struct emitter *em, const char *key, const char *value)
{
    str(em, key);
    str(em, value);
}

static void kv_num(struct emitter *em, const char *key, long value)
{
    str(em, key);
    num(em, value);
}

static void kv_bool(struct emitter *em, const char *key, bool value)
{
    str(em, key);
    boolean(em, value);
}

static void kv_map(struct emitter *em, const char *key)
{
    str(em, key);
    map_begin(em);
}

static void kv_seq(struct emitter *em, const char *key)
{
    str(em, key);
    seq_begin(em);
}

/* host:port as Patroni reads it; IPv6 addresses in brackets. */
static void kv_host_port(struct emitter *em, const char *key, const char *host, int port)
{
    char *s;
    bool v6 = host && strchr(host, ':');
    if (asprintf(&s, "%s%s%s:%d", v6 ? "[" : "", host ? host : "", v6 ? "]" : "", port) < 0) {
        em->failed = true;
        return;
    }
    kv_str(em, key, s);
    free(s);
}

/* `line` is built with asprintf by the caller; NULL means the allocation failed. */
static void str_owned(struct emitter *em, char *line)
{
    if (!line) {
        em->failed = true;
        return;
    }
    str(em, line);
    free(line);
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
    va_list ap;
    char *s;
    va_start(ap, f);
    int rc = vasprintf(&s, f, ap);
    va_end(ap);
    return rc < 0 ? NULL : s;
}

/* A libpq connection-string value: in single quotes, with \\ and ' escaped by a backslash
 * (libpq's conninfo parser reads \\x as x inside quotes, and a space ends an unquoted
 * value). NULL when the allocation fails. */
static char *conninfo_quote(const char *v)
{
    size_t n = 3;
    for (const char *p = v; *p; p++)
        n += (*p == '\\' || *p == '\'') ? 2 : 1;
    char *out = malloc(n), *o = out;
    if (!out)
        return NULL;
    *o++ = '\'';
    for (const char *p = v; *p; p++) {
        if (*p == '\\' || *p == '\'')
            *o++ = '\\';
        *o++ = *p;
    }
    *o++ = '\'';
    *o = '\0';
    return out;
}

/* One word for a POSIX shell (PostgreSQL runs archive_command and restore_command with
 * /bin/sh) and for Python's shlex.split (how Patroni splits its commands): as it is when it
 * holds only characters neither reads specially, else in single quotes with a quote written
 * '\''. With percent, '%' is doubled: PostgreSQL expands %p, %f and %% in those commands.
 * NULL when the allocation fails. */
static char *shell_word(const char *s, bool percent)
{
    bool plain = *s != '\0';
    size_t n = 3;
    for (const char *p = s; *p; p++) {
        char c = *p;
        plain = plain && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                          (c >= '0' && c <= '9') || strchr("/._-=,:+@", c));
        n += c == '\'' ? 4 : (c == '%' && percent) ? 2 : 1;
    }
    char *out = malloc(n), *o = out;
    if (!out)
        return NULL;
    if (!plain)
        *o++ = '\'';
    for (const char *p = s; *p; p++) {
        if (*p == '\'') {
            memcpy(o, "'\\''", 4);
            o += 4;
            continue;
        }
        if (*p == '%' && percent)
            *o++ = '%';
        *o++ = *p;
    }
    if (!plain)
        *o++ = '\'';
    *o = '\0';
    return out;
}

/* pgbackrest --config=RUN_DIR/<conf> --stanza=<stanza> <tail>, quoted for a shell (see
 * shell_word). NULL when the allocation fails. */
static char *pgbackrest_command(const struct config *cfg, const char *conf, const char *stanza,
                                bool percent, const char *tail)
{
    char *path = config_path(cfg, conf);
    char *option = fmt("--config=%s", path);
    char *word = option ? shell_word(option, percent) : NULL;
    char *cmd = word ? fmt("pgbackrest %s --stanza=%s %s", word, stanza, tail) : NULL;
    free(path);
    free(option);
    free(word);
    return cmd;
}

char *render_archive_command(const struct config *cfg)
{
    return pgbackrest_command(cfg, BACKUP_CONF_FILE, cfg->backup.stanza, true,
                              "archive-push \"%p\"");
}

char *render_restore_command(const struct config *cfg)
{
    return pgbackrest_command(cfg, BACKUP_CONF_FILE, cfg->backup.stanza, true,
                              "archive-get %f \"%p\"");
}

char *render_node_conninfo(const struct config *cfg)
{
    if (!cfg->ssl_enabled || !cfg->citus_enabled)
        return NULL;
    char *paths[3] = {config_path(cfg, "tls/ca.crt"), config_path(cfg, "tls/server.crt"),
                      config_path(cfg, "tls/server.key")};
    char *q[3] = {NULL, NULL, NULL};
    char *conninfo = NULL;
    bool ok = true;
    for (size_t i = 0; i < 3; i++)
        ok = ok && (q[i] = conninfo_quote(paths[i])) != NULL;
    if (ok && cfg->ssl_client_cert)
        conninfo = fmt("sslmode=%s sslrootcert=%s sslcert=%s sslkey=%s",
                       ssl_mode_name(cfg->ssl_mode), q[0], q[1], q[2]);
    else if (ok)
        conninfo = fmt("sslmode=%s sslrootcert=%s", ssl_mode_name(cfg->ssl_mode), q[0]);
    for (size_t i = 0; i < 3; i++) {
        free(paths[i]);
        free(q[i]);
    }
    return conninfo;
}

static bool has_extension(const struct config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->extensions.count; i++)
        if (strcmp(cfg->extensions.items[i].name, name) == 0)
            return true;
    return false;
}

static void emit_dcs(struct emitter *em, const struct config *cfg)
{
    if (cfg->dcs == DCS_ETCD3) {
        kv_map(em, "etcd3");
        kv_seq(em, "hosts");
        for (char **h = cfg->etcd_hosts; h && *h; h++)
            str(em, *h);
        seq_end(em);
        map_end(em);
        return;
    }
    kv_map(em, "kubernetes");
    kv_str(em, "namespace", cfg->pod_namespace);
    kv_bool(em, "use_endpoints", true);
    kv_str(em, "pod_ip", cfg->pod_ip);
    kv_seq(em, "ports");
    map_begin(em);
    kv_str(em, "name", "postgresql");
    kv_num(em, "port", cfg->pg_port);
    map_end(em);
    seq_end(em);
    kv_map(em, "labels");
    for (size_t i = 0; i < cfg->k8s_label_count; i++)
        kv_str(em, cfg->k8s_labels[i].key, cfg->k8s_labels[i].value);
    map_end(em);
    map_end(em);
}

static void emit_bootstrap(struct emitter *em, const struct config *cfg)
{
    kv_map(em, "bootstrap");
    kv_map(em, "dcs");
    kv_num(em, "ttl", cfg->ttl);
    kv_num(em, "loop_wait", cfg->loop_wait);
    kv_num(em, "retry_timeout", cfg->retry_timeout);
    kv_num(em, "maximum_lag_on_failover", 1048576);
    if (cfg->synchronous_mode == SYNC_QUORUM)
        kv_str(em, "synchronous_mode", "quorum");
    else
        kv_bool(em, "synchronous_mode", cfg->synchronous_mode == SYNC_ON);
    /* A group whose only replica is down keeps taking writes (Patroni's non-strict mode). */
    kv_bool(em, "synchronous_mode_strict", false);
    kv_bool(em, "failsafe_mode", cfg->failsafe_mode);
    kv_map(em, "postgresql");
    kv_bool(em, "use_pg_rewind", true);
    kv_bool(em, "use_slots", true);
    kv_map(em, "parameters");
    kv_str(em, "wal_level", "logical");
    kv_num(em, "max_connections", 200);
    kv_num(em, "max_wal_senders", 10);
    kv_num(em, "max_replication_slots", 10);
    kv_str(em, "hot_standby", "on");
    kv_str(em, "wal_log_hints", "on");
    map_end(em); /* parameters */
    map_end(em); /* postgresql */
    map_end(em); /* dcs */
    kv_seq(em, "initdb");
    map_begin(em);
    kv_str(em, "encoding", "UTF8");
    map_end(em);
    str(em, "data-checksums");
    seq_end(em);
    if (cfg->backup.repo != BACKUP_REPO_NONE && cfg->backup.restore_from_cluster) {
        /* A new group's first member restores the source's stanza instead of initdb
         * (Patroni's custom bootstrap, run as RUN_AS_USER with shlex.split): pgBackRest writes
         * the recovery settings, which Patroni keeps, and PostgreSQL promotes at the target. */
        kv_str(em, "method", "citus_init_restore");
        kv_map(em, "citus_init_restore");
        str(em, "command");
        char *exe = shell_word(cfg->backup.self_exe ? cfg->backup.self_exe : "citus-init", false);
        str_owned(em, exe ? fmt("%s restore-bootstrap", exe) : NULL);
        free(exe);
        kv_bool(em, "keep_existing_recovery_conf", true);
        kv_bool(em, "no_params", true);
        map_end(em);
    }
    map_end(em); /* bootstrap */
}

/* One authentication entry: the user, and how members connect with TLS. */
static void emit_user(struct emitter *em, const struct config *cfg, const char *role,
                      const char *user, const char *password, bool mask)
{
    kv_map(em, role);
    kv_str(em, "username", user);
    kv_str(em, "password", mask ? MASK : password);
    if (cfg->ssl_enabled) {
        kv_str(em, "sslmode", ssl_mode_name(cfg->ssl_mode));
        str(em, "sslrootcert");
        str_owned(em, config_path(cfg, "tls/ca.crt"));
        if (cfg->ssl_client_cert) {
            str(em, "sslcert");
            str_owned(em, config_path(cfg, "tls/server.crt"));
            str(em, "sslkey");
            str_owned(em, config_path(cfg, "tls/server.key"));
        }
    }
    map_end(em);
}

static void emit_parameters(struct emitter *em, const struct config *cfg)
{
    kv_map(em, "parameters");
    kv_str(em, "unix_socket_directories", "/var/run/postgresql");
    if (cfg->ssl_enabled) {
        kv_str(em, "ssl", "on");
        str(em, "ssl_cert_file");
        str_owned(em, config_path(cfg, "tls/server.crt"));
        str(em, "ssl_key_file");
        str_owned(em, config_path(cfg, "tls/server.key"));
        str(em, "ssl_ca_file");
        str_owned(em, config_path(cfg, "tls/ca.crt"));
    }
    /* Patroni puts citus in front of this list itself. */
    if (has_extension(cfg, "pg_partman"))
        kv_str(em, "shared_preload_libraries", "pg_partman_bgw");
    if (cfg->ssl_enabled && cfg->citus_enabled) {
        str(em, "citus.node_conninfo");
        str_owned(em, render_node_conninfo(cfg));
    }
    /* WAL archiving, on every member (local parameters override the DCS's; Patroni sets
     * none of these itself). With "on" only the primary archives. */
    if (cfg->backup.repo != BACKUP_REPO_NONE) {
        kv_str(em, "archive_mode", "on");
        str(em, "archive_command");
        str_owned(em, render_archive_command(cfg));
        kv_num(em, "archive_timeout", cfg->backup.archive_timeout);
    }
    map_end(em);
}

/* With a repository: WAL from the archive for replicas (restore_command), and replicas built
 * from the newest backup before pg_basebackup is tried (Patroni runs the command with
 * shlex.split and, with no_params, without arguments of its own; keep_data: a --delta
 * restore reuses what is in PGDATA). pgBackRest's --type=standby leaves standby.signal, so a
 * data directory restored but never configured by Patroni cannot come up as a primary. */
static void emit_replica_methods(struct emitter *em, const struct config *cfg)
{
    if (cfg->backup.repo == BACKUP_REPO_NONE)
        return;
    kv_map(em, "recovery_conf");
    str(em, "restore_command");
    str_owned(em, render_restore_command(cfg));
    map_end(em);
    kv_seq(em, "create_replica_methods");
    str(em, "pgbackrest");
    str(em, "basebackup");
    seq_end(em);
    kv_map(em, "pgbackrest");
    str(em, "command");
    str_owned(em, pgbackrest_command(cfg, BACKUP_CONF_FILE, cfg->backup.stanza, false,
                                     "--delta restore --type=standby"));
    kv_bool(em, "keep_data", true);
    kv_bool(em, "no_params", true);
    map_end(em);
}

/* Local socket: peer auth mapped through pg_ident; TCP: scram, TLS-only when SSL is on. */
static void emit_hba(struct emitter *em, const struct config *cfg)
{
    const char *host = cfg->ssl_enabled ? "hostssl" : "host";
    const char *clientcert = cfg->ssl_enabled && cfg->ssl_client_cert ? " clientcert=verify-ca" : "";
    kv_seq(em, "pg_hba");
    str(em, "local all all peer map=local");
    str_owned(em, fmt("%s replication %s all scram-sha-256%s", host, cfg->replication_username,
                      clientcert));
    if (*clientcert)
        str_owned(em, fmt("%s all %s all scram-sha-256%s", host, cfg->superuser_username,
                          clientcert));
    str_owned(em, fmt("%s all all all scram-sha-256", host));
    if (cfg->ssl_enabled)
        str(em, "hostnossl all all all reject");
    /* Patroni's own replication connection over the socket (use_unix_socket_repl) */
    str_owned(em, fmt("local replication %s scram-sha-256", cfg->replication_username));
    seq_end(em);

    kv_seq(em, "pg_ident");
    str_owned(em, fmt("local root %s", cfg->superuser_username));
    str_owned(em, fmt("local %s %s", cfg->run_as_user, cfg->superuser_username));
    /* the exporter's OS user, as the monitoring role only (the local line above applies) */
    if (cfg->monitoring_role)
        str_owned(em, fmt("local %s %s", cfg->monitoring_os_user, cfg->monitoring_role));
    seq_end(em);
}

static void emit_postgresql(struct emitter *em, const struct config *cfg, bool mask)
{
    kv_map(em, "postgresql");
    kv_host_port(em, "listen", cfg->listen_address, cfg->pg_port);
    kv_host_port(em, "connect_address", cfg->connect_host, cfg->pg_port);
    kv_str(em, "data_dir", cfg->pgdata);
    kv_str(em, "bin_dir", cfg->pg_bin_dir);
    str(em, "pgpass");
    str_owned(em, config_path(cfg, "pgpass"));
    kv_bool(em, "use_unix_socket", true);
    /* Patroni's own replication connection (its timeline/LSN check before a promotion) goes
     * to the socket too: over TCP it would use the listen IP, which no verify-full
     * certificate names, and a replica that cannot read its position never promotes. */
    kv_bool(em, "use_unix_socket_repl", true);

    kv_map(em, "authentication");
    emit_user(em, cfg, "superuser", cfg->superuser_username, cfg->superuser_password, mask);
    emit_user(em, cfg, "replication", cfg->replication_username, cfg->replication_password, mask);
    emit_user(em, cfg, "rewind", cfg->superuser_username, cfg->superuser_password, mask);
    map_end(em);

    /* fast checkpoint: a new replica streams within seconds instead of waiting for a spread
     * checkpoint on the primary */
    kv_seq(em, "basebackup");
    map_begin(em);
    kv_str(em, "checkpoint", "fast");
    map_end(em);
    seq_end(em);

    emit_replica_methods(em, cfg);
    emit_parameters(em, cfg);
    emit_hba(em, cfg);
    map_end(em);
}

char *render_patroni_yaml(const struct config *cfg, bool mask_secrets)
{
    if (cfg->purpose != CONFIG_POD)
        return NULL;
    struct out_buf out = {0};
    struct emitter em = {.failed = false};
    if (!yaml_emitter_initialize(&em.e))
        return NULL;
    yaml_emitter_set_output(&em.e, write_out, &out);
    yaml_emitter_set_unicode(&em.e, 1);
    yaml_emitter_set_width(&em.e, -1);
    yaml_emitter_set_indent(&em.e, 2);

    yaml_event_t ev;
    emit(&em, &ev, yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING));
    emit(&em, &ev, yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1));
    map_begin(&em);

    kv_str(&em, "scope", cfg->scope);
    kv_str(&em, "name", cfg->pod_name);
    kv_map(&em, "restapi");
    kv_host_port(&em, "listen", cfg->listen_address, cfg->api_port);
    kv_host_port(&em, "connect_address", cfg->connect_host, cfg->api_port);
    if (cfg->restapi_username && cfg->restapi_password) {
        /* Patroni: unsafe methods need these; its own requests to members and patronictl
         * (PATRONICTL_CONFIG_FILE) send them too */
        kv_map(&em, "authentication");
        kv_str(&em, "username", cfg->restapi_username);
        kv_str(&em, "password", mask_secrets ? MASK : cfg->restapi_password);
        map_end(&em);
    }
    if (cfg->restapi_tls) {
        /* the member's PostgreSQL certificate; clients are not asked for one (basic auth
         * guards the unsafe methods) */
        str(&em, "certfile");
        str_owned(&em, config_path(cfg, "tls/server.crt"));
        str(&em, "keyfile");
        str_owned(&em, config_path(cfg, "tls/server.key"));
    }
    map_end(&em);
    if (cfg->restapi_tls) {
        /* patronictl in the pod (Patroni's own requests to members never verify): with
         * verify-full it checks the certificate and its names, as the members' PostgreSQL
         * connections do; below that it only encrypts (patronictl cannot check the CA
         * without the names, which verify-ca certificates need not carry) */
        kv_map(&em, "ctl");
        if (cfg->ssl_mode == SSL_MODE_VERIFY_FULL) {
            str(&em, "cacert");
            str_owned(&em, config_path(cfg, "tls/ca.crt"));
        } else {
            kv_bool(&em, "insecure", true);
        }
        map_end(&em);
    }
    if (cfg->citus_enabled) {
        kv_map(&em, "citus");
        kv_num(&em, "group", cfg->citus_group);
        kv_str(&em, "database", cfg->citus_database);
        map_end(&em);
    }
    emit_dcs(&em, cfg);
    emit_bootstrap(&em, cfg);
    emit_postgresql(&em, cfg, mask_secrets);

    map_end(&em);
    emit(&em, &ev, yaml_document_end_event_initialize(&ev, 1));
    emit(&em, &ev, yaml_stream_end_event_initialize(&ev));
    if (!em.failed && !yaml_emitter_flush(&em.e))
        em.failed = true;
    yaml_emitter_delete(&em.e);
    /* the emitter leaves the last line open after an implicit document end */
    if (!em.failed && out.len && out.data[out.len - 1] != '\n' &&
        !write_out(&out, (unsigned char *)"\n", 1))
        em.failed = true;

    if (em.failed || !out.data) {
        if (out.data)
            explicit_bzero(out.data, out.len);
        free(out.data);
        return NULL;
    }
    return out.data;
}

/* ---- pgBackRest's configuration ------------------------------------------------------- */

/* One "key=value" line. Values hold no line break and no white space at either end
 * (config.c): pgBackRest's reader splits at the first '=' and trims both sides. */
static bool conf_line(struct out_buf *o, const char *key, const char *value)
{
    if (!value)
        return false;
    char *line = fmt("%s=%s\n", key, value);
    bool ok = line && write_out(o, (unsigned char *)line, strlen(line));
    if (line) {
        explicit_bzero(line, strlen(line));
        free(line);
    }
    return ok;
}

static bool conf_num(struct out_buf *o, const char *key, long value)
{
    char b[32];
    snprintf(b, sizeof b, "%ld", value);
    return conf_line(o, key, b);
}

static bool conf_text(struct out_buf *o, const char *text)
{
    return write_out(o, (unsigned char *)text, strlen(text));
}

char *render_pgbackrest_conf(const struct config *cfg, bool for_restore)
{
    const struct backup_config *b = &cfg->backup;
    if (b->repo == BACKUP_REPO_NONE || (for_restore && !b->restore_from_cluster))
        return NULL;
    const struct backup_repo_ref *repo = for_restore ? &b->source : &b->own;
    const char *stanza = for_restore ? b->restore_stanza : b->stanza;
    struct out_buf o = {0};
    char *ca = config_path(cfg, BACKUP_CA_COPY), *lock = config_path(cfg, BACKUP_LOCK_DIR);
    bool ok = conf_text(&o, for_restore
                                ? "# citus-init: the source of RESTORE_FROM_CLUSTER (docs/backups.md)\n"
                                : "# citus-init: this group's repository (docs/backups.md)\n");
    ok = ok && conf_text(&o, "[global]\n");
    ok = ok && conf_line(&o, "repo1-type", b->repo == BACKUP_REPO_S3 ? "s3" : "posix");
    ok = ok && conf_line(&o, "repo1-path", repo->path);
    if (b->repo == BACKUP_REPO_S3) {
        ok = ok && conf_line(&o, "repo1-s3-endpoint", b->s3_host);
        if (b->s3_port)
            ok = ok && conf_num(&o, "repo1-storage-port", b->s3_port);
        ok = ok && conf_line(&o, "repo1-s3-bucket", b->s3_bucket);
        ok = ok && conf_line(&o, "repo1-s3-region", b->s3_region);
        ok = ok && conf_line(&o, "repo1-s3-uri-style", b->s3_uri_style_path ? "path" : "host");
        if (b->s3_ca_file)
            ok = ok && conf_line(&o, "repo1-storage-ca-file", ca);
        ok = ok && conf_line(&o, "repo1-storage-verify-tls", b->s3_verify_tls ? "y" : "n");
        ok = ok && conf_line(&o, "repo1-s3-key", repo->s3_key);
        ok = ok && conf_line(&o, "repo1-s3-key-secret", repo->s3_key_secret);
    }
    if (b->encryption) {
        ok = ok && conf_line(&o, "repo1-cipher-type", "aes-256-cbc");
        ok = ok && conf_line(&o, "repo1-cipher-pass", repo->cipher_pass);
    }
    ok = ok && conf_num(&o, "repo1-retention-full", b->retention_full);
    ok = ok && conf_num(&o, "process-max", b->process_max);
    ok = ok && conf_line(&o, "compress-type", b->compress_type);
    ok = ok && conf_line(&o, "start-fast", "y");
    ok = ok && conf_line(&o, "delta", "y");
    ok = ok && conf_line(&o, "archive-async", "n");
    /* warnings and errors on stderr, nothing on stdout but a command's own output (the
     * agent parses `info --output=json`), no log files */
    ok = ok && conf_line(&o, "log-level-console", "off");
    ok = ok && conf_line(&o, "log-level-stderr", "warn");
    ok = ok && conf_line(&o, "log-level-file", "off");
    ok = ok && conf_line(&o, "lock-path", lock);
    char *section = fmt("\n[%s]\n", stanza ? stanza : "");
    ok = ok && section && conf_text(&o, section);
    free(section);
    ok = ok && conf_line(&o, "pg1-path", cfg->pgdata);
    ok = ok && conf_num(&o, "pg1-port", cfg->pg_port);
    ok = ok && conf_line(&o, "pg1-socket-path", "/var/run/postgresql");
    ok = ok && conf_line(&o, "pg1-user", cfg->superuser_username);
    free(ca);
    free(lock);
    if (!ok || !o.data || !stanza || !repo->path) {
        if (o.data)
            explicit_bzero(o.data, o.len);
        free(o.data);
        return NULL;
    }
    return o.data;
}
