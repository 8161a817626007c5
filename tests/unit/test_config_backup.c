/* Unit tests for config.c's backup and restore part (docs/backups.md): defaults, derived
 * values, the repository secrets and every validation message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "testutil.h"

#define S3_KEY "AKIAEXAMPLEKEY"
#define S3_SECRET "wJalr/XUtnFEMI=K7MDENG+bPxRfiCY"
#define CIPHER "a cipher pass of 20+ bytes"
#define SRC_KEY "AKIASOURCEKEY"
#define SRC_SECRET "source-secret-key-value"
#define SRC_CIPHER "the source's cipher passphrase"

struct fixture {
    char *dir, *backup, *source;
    struct fake_env env;
    struct config cfg;
    struct diag d;
    bool loaded;
};

static char *subdir(const char *dir, const char *name)
{
    char *path;
    if (asprintf(&path, "%s/%s", dir, name) < 0 || mkdir(path, 0755) != 0)
        abort();
    return path;
}

static void put(const char *dir, const char *name, const char *content)
{
    free(write_file(dir, name, content, strlen(content)));
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->dir = make_pod_env(&f->env);
    f->backup = subdir(f->dir, "backup");
    f->source = subdir(f->dir, "source");
    put(f->backup, "s3-key", S3_KEY "\n");
    put(f->backup, "s3-key-secret", S3_SECRET "\r\n");
    put(f->backup, "cipher-pass", CIPHER);
    put(f->source, "s3-key", SRC_KEY);
    put(f->source, "s3-key-secret", SRC_SECRET);
    put(f->source, "cipher-pass", SRC_CIPHER "\n");
    fake_env_set(&f->env, "BACKUP_REPO", "s3");
    fake_env_set(&f->env, "BACKUP_S3_ENDPOINT", "minio.example.com");
    fake_env_set(&f->env, "BACKUP_S3_BUCKET", "citus-backups");
    fake_env_set(&f->env, "BACKUP_SECRET_DIR", f->backup);
    diag_init(&f->d);
    *state = f;
    return 0;
}

/* No message may ever carry a secret. */
static void assert_no_secret_in_messages(const struct diag *d)
{
    const char *secrets[] = {S3_KEY, S3_SECRET, CIPHER, SRC_KEY, SRC_SECRET, SRC_CIPHER,
                             "short-pass", "line\nbreak", "edge-space"};
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
    free(f->backup);
    free(f->source);
    free(f);
    return 0;
}

static int load_as(struct fixture *f, bool agent)
{
    if (f->loaded)
        config_free(&f->cfg);
    diag_free(&f->d);
    f->loaded = true;
    return agent ? config_load_agent(&f->cfg, fake_env_lookup, &f->env, &f->d)
                 : config_load(&f->cfg, CONFIG_POD, fake_env_lookup, &f->env, &f->d);
}

#define load(f) load_as(f, false)
#define set(name, value) fake_env_set(&f->env, name, value)
#define unset(name) fake_env_unset(&f->env, name)
#define assert_error(msg) assert_true(diag_has(&f->d, DIAG_ERROR, msg))
#define assert_loads()                                                                             \
    do {                                                                                           \
        int rc_ = load(f);                                                                         \
        if (rc_ != 0 || f->d.count)                                                                \
            diag_print(&f->d);                                                                     \
        assert_int_equal(rc_, 0);                                                                  \
    } while (0)
#define assert_only_error(msg)                                                                     \
    do {                                                                                           \
        assert_int_equal(load(f), -1);                                                             \
        assert_error(msg);                                                                         \
        if (f->d.count != 1)                                                                       \
            diag_print(&f->d);                                                                     \
        assert_int_equal(f->d.count, 1);                                                           \
    } while (0)

static void off_by_default_and_nothing_else_read(void **state)
{
    struct fixture *f = *state;
    unset("BACKUP_REPO");
    set("BACKUP_S3_BUCKET", "NOT A BUCKET"); /* not read with none */
    set("BACKUP_RETENTION_FULL", "0");
    assert_loads();
    const struct backup_config *b = &f->cfg.backup;
    assert_int_equal(b->repo, BACKUP_REPO_NONE);
    assert_null(b->stanza);
    assert_null(b->own.path);
    assert_null(b->own.s3_key);
    assert_null(b->s3_bucket);
    assert_null(b->restore_from_cluster);
    set("BACKUP_REPO", "NONE");
    assert_loads();
    assert_int_equal(f->cfg.backup.repo, BACKUP_REPO_NONE);
}

static void s3_defaults_and_derived_values(void **state)
{
    struct fixture *f = *state;
    set("BACKUP_REPO", "S3"); /* case-insensitive */
    assert_loads();
    const struct backup_config *b = &f->cfg.backup;
    assert_int_equal(b->repo, BACKUP_REPO_S3);
    assert_string_equal(b->stanza, "citusdemo-0");
    assert_string_equal(b->own.path, "/pgbackrest");
    assert_string_equal(b->own.secret_dir, f->backup);
    assert_string_equal(b->own.s3_key, S3_KEY);           /* "\n" stripped */
    assert_string_equal(b->own.s3_key_secret, S3_SECRET); /* "\r\n" stripped */
    assert_string_equal(b->own.cipher_pass, CIPHER);
    assert_string_equal(b->s3_endpoint, "minio.example.com");
    assert_string_equal(b->s3_host, "minio.example.com");
    assert_int_equal(b->s3_port, 0);
    assert_string_equal(b->s3_bucket, "citus-backups");
    assert_string_equal(b->s3_region, "us-east-1");
    assert_false(b->s3_uri_style_path);
    assert_null(b->s3_ca_file);
    assert_true(b->s3_verify_tls);
    assert_true(b->encryption);
    assert_string_equal(b->full_schedule, "0 1 * * 0");
    assert_string_equal(b->diff_schedule, "0 1 * * 1-6");
    assert_int_equal(b->retention_full, 2);
    assert_int_equal(b->process_max, 2);
    assert_string_equal(b->compress_type, "zst");
    assert_int_equal(b->archive_timeout, 60);
    assert_int_equal(b->restore_point_interval, 60);
    assert_null(b->restore_from_cluster);
    assert_null(b->restore_stanza);
    assert_null(b->restore_target);
    assert_null(b->source.path);
    assert_null(b->source.s3_key);
    assert_null(b->self_exe);
    assert_int_equal(f->d.count, 0);
}

static void explicit_values(void **state)
{
    struct fixture *f = *state;
    set("CITUS_GROUP", "3");
    set("CITUS_ENABLED", "false"); /* the stanza is CLUSTER_NAME-group either way */
    set("BACKUP_REPO_PATH", "/backups/citus demo");
    set("BACKUP_S3_ENDPOINT", "10.0.0.5:9000");
    set("BACKUP_S3_BUCKET", "a.b-c");
    set("BACKUP_S3_REGION", "eu-central-1");
    set("BACKUP_S3_URI_STYLE", "Path");
    char *ca = write_file(f->dir, "ca.crt", "-----BEGIN CERTIFICATE-----\n", 28);
    set("BACKUP_S3_CA_FILE", ca);
    set("BACKUP_S3_VERIFY_TLS", "false");
    set("BACKUP_FULL_SCHEDULE", "OFF");
    set("BACKUP_DIFF_SCHEDULE", "*/30 * * * *");
    set("BACKUP_RETENTION_FULL", "9999");
    set("BACKUP_PROCESS_MAX", "64");
    set("BACKUP_COMPRESS_TYPE", "LZ4");
    set("BACKUP_ARCHIVE_TIMEOUT", "0");
    set("RESTORE_POINT_INTERVAL", "86400");
    int rc = load(f);
    assert_int_equal(rc, 0);
    const struct backup_config *b = &f->cfg.backup;
    assert_string_equal(f->cfg.scope, "citusdemo-3");
    assert_string_equal(b->stanza, "citusdemo-3");
    assert_string_equal(b->own.path, "/backups/citus demo");
    assert_string_equal(b->s3_host, "10.0.0.5");
    assert_int_equal(b->s3_port, 9000);
    assert_string_equal(b->s3_endpoint, "10.0.0.5:9000");
    assert_string_equal(b->s3_region, "eu-central-1");
    assert_true(b->s3_uri_style_path);
    assert_string_equal(b->s3_ca_file, ca);
    assert_false(b->s3_verify_tls);
    assert_null(b->full_schedule);
    assert_string_equal(b->diff_schedule, "*/30 * * * *");
    assert_int_equal(b->retention_full, 9999);
    assert_int_equal(b->process_max, 64);
    assert_string_equal(b->compress_type, "lz4");
    assert_int_equal(b->archive_timeout, 0);
    assert_int_equal(b->restore_point_interval, 86400);
    /* verify off: accepted, with a warning */
    assert_int_equal(f->d.count, 1);
    assert_true(diag_has(&f->d, DIAG_WARNING, "BACKUP_S3_VERIFY_TLS: false; the S3 endpoint's "
                         "certificate is not verified, so whoever can intercept the connection "
                         "can read the credentials and change or delete the backups; expected "
                         "true outside tests"));
    free(ca);
}

static void posix_without_encryption_needs_no_secret(void **state)
{
    struct fixture *f = *state;
    set("BACKUP_REPO", "posix");
    set("BACKUP_ENCRYPTION", "no");
    set("BACKUP_SECRET_DIR", "/nonexistent");
    set("BACKUP_S3_BUCKET", "NOT A BUCKET"); /* the S3 settings are not read for posix */
    assert_loads();
    const struct backup_config *b = &f->cfg.backup;
    assert_int_equal(b->repo, BACKUP_REPO_POSIX);
    assert_false(b->encryption);
    assert_null(b->own.s3_key);
    assert_null(b->own.cipher_pass);
    assert_null(b->s3_bucket);
    assert_null(b->s3_region);

    set("BACKUP_ENCRYPTION", "yes");
    assert_only_error("/nonexistent/cipher-pass: does not exist; expected the repository "
                      "encryption passphrase in that file (BACKUP_ENCRYPTION is true)");
}

static void enumerations(void **state)
{
    struct fixture *f = *state;
    set("BACKUP_REPO", "gcs");
    assert_only_error("BACKUP_REPO: \"gcs\" is not a known value; expected none, s3 or posix");
    set("BACKUP_REPO", "s3");
    set("BACKUP_S3_URI_STYLE", "virtual");
    assert_only_error("BACKUP_S3_URI_STYLE: \"virtual\" is not a known value; expected host or "
                      "path");
    unset("BACKUP_S3_URI_STYLE");
    set("BACKUP_COMPRESS_TYPE", "bz2");
    assert_only_error("BACKUP_COMPRESS_TYPE: \"bz2\" is not a known value; expected zst, lz4, "
                      "gz or none");
    set("BACKUP_COMPRESS_TYPE", "None");
    assert_loads();
    assert_string_equal(f->cfg.backup.compress_type, "none");
    set("BACKUP_ENCRYPTION", "maybe");
    assert_only_error("BACKUP_ENCRYPTION: \"maybe\" is not a boolean; expected true/false, 1/0, "
                      "yes/no or on/off");
    unset("BACKUP_ENCRYPTION");
    set("BACKUP_S3_VERIFY_TLS", "2");
    assert_only_error("BACKUP_S3_VERIFY_TLS: \"2\" is not a boolean; expected true/false, 1/0, "
                      "yes/no or on/off");
}

static void endpoint(void **state)
{
    struct fixture *f = *state;
    set("BACKUP_S3_ENDPOINT", "s3.eu-central-1.amazonaws.com:443");
    assert_loads();
    assert_string_equal(f->cfg.backup.s3_host, "s3.eu-central-1.amazonaws.com");
    assert_int_equal(f->cfg.backup.s3_port, 443);
    set("BACKUP_S3_ENDPOINT", "https://minio:9000");
    assert_only_error("BACKUP_S3_ENDPOINT: \"https://minio:9000\" has a scheme; expected only "
                      "host or host:port (the connection is always https)");
    const char *bad[] = {"minio:0", "minio:65536", "minio:0443", "minio:", "minio:9000:1",
                         "min io", "[::1]:9000", ":9000", "minio:+1", "-minio"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        set("BACKUP_S3_ENDPOINT", bad[i]);
        char msg[300];
        snprintf(msg, sizeof msg, "BACKUP_S3_ENDPOINT: \"%s\" is not host or host:port; "
                 "expected a DNS name or IPv4 address, optionally with a port from 1 to 65535",
                 bad[i]);
        assert_only_error(msg);
    }
    unset("BACKUP_S3_ENDPOINT");
    assert_only_error("BACKUP_S3_ENDPOINT: not set; expected the S3 endpoint host or host:port "
                      "(no scheme) because BACKUP_REPO is s3");
}

static void bucket_and_region(void **state)
{
    struct fixture *f = *state;
    const char *good[] = {"abc", "a.b.c", "my-bucket-01", "0ab"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        set("BACKUP_S3_BUCKET", good[i]);
        assert_loads();
    }
    char long_name[70];
    memset(long_name, 'a', 64);
    long_name[64] = '\0';
    const char *bad[] = {"ab", long_name, "My-Bucket", "-ab", "ab-", "a..b", "a_b", "10.0.0.1",
                         "a b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        set("BACKUP_S3_BUCKET", bad[i]);
        char msg[300];
        snprintf(msg, sizeof msg, "BACKUP_S3_BUCKET: \"%s\" is not a valid bucket name; "
                 "expected 3-63 lowercase letters, digits, '.' and '-', starting and ending "
                 "with a letter or digit", bad[i]);
        assert_only_error(msg);
    }
    unset("BACKUP_S3_BUCKET");
    assert_only_error("BACKUP_S3_BUCKET: not set; expected the bucket name because BACKUP_REPO "
                      "is s3");
    set("BACKUP_S3_BUCKET", "abc");
    set("BACKUP_S3_REGION", "eu central");
    assert_only_error("BACKUP_S3_REGION: \"eu central\" is not a region name; expected letters, "
                      "digits, '-', '_' and '.', at most 63, e.g. us-east-1");
}

static void paths(void **state)
{
    struct fixture *f = *state;
    set("BACKUP_REPO_PATH", "pgbackrest");
    assert_only_error("BACKUP_REPO_PATH: \"pgbackrest\" is not an absolute path; expected a path "
                      "starting with /");
    set("BACKUP_REPO_PATH", "/a//b");
    assert_only_error("BACKUP_REPO_PATH: \"/a//b\" holds //; expected an absolute path without "
                      "// and without a trailing / or space (it goes into pgBackRest's "
                      "configuration)");
    set("BACKUP_REPO_PATH", "/a/");
    assert_only_error("BACKUP_REPO_PATH: \"/a/\" ends with /; expected an absolute path without "
                      "// and without a trailing / or space (it goes into pgBackRest's "
                      "configuration)");
    set("BACKUP_REPO_PATH", "/a ");
    assert_only_error("BACKUP_REPO_PATH: \"/a \" ends with white space, which pgBackRest's "
                      "configuration file drops; expected an absolute path without // and "
                      "without a trailing / or space (it goes into pgBackRest's configuration)");
    set("BACKUP_REPO_PATH", "/");
    assert_loads();
    set("BACKUP_REPO_PATH", "/a\nb");
    assert_only_error("BACKUP_REPO_PATH: \"/a\\x0ab\" holds a control character; expected a path "
                      "of printable characters");
    unset("BACKUP_REPO_PATH");
    set("PGDATA", "/data//pg");
    assert_only_error("PGDATA: \"/data//pg\" holds //; expected an absolute path without // and "
                      "without a trailing / or space (it goes into pgBackRest's configuration)");
    unset("PGDATA");
    set("RUN_DIR", "/run/citus-init/");
    assert_only_error("RUN_DIR: \"/run/citus-init/\" ends with /; expected an absolute path "
                      "without // and without a trailing / or space (it goes into pgBackRest's "
                      "configuration)");
    const char *unquotable[] = {"/run/it's", "/run/a\"b", "/run/a\\b", "/run/$HOME", "/run/`x`",
                                "/run/100%"};
    for (size_t i = 0; i < sizeof unquotable / sizeof unquotable[0]; i++) {
        set("RUN_DIR", unquotable[i]);
        assert_int_equal(load(f), -1);
        assert_int_equal(f->d.count, 1);
        assert_true(diag_contains(&f->d, "which the restore_command pgBackRest writes cannot "
                                  "carry; expected a path without ' \" \\ $ ` or % when "
                                  "BACKUP_REPO is set"));
    }
    set("RUN_DIR", "/run/it's");
    assert_only_error("RUN_DIR: \"/run/it's\" holds ', which the restore_command pgBackRest "
                      "writes cannot carry; expected a path without ' \" \\ $ ` or % when "
                      "BACKUP_REPO is set");
    set("RUN_DIR", "/run/citus init (1)");
    assert_loads();
    unset("RUN_DIR");
    set("BACKUP_SECRET_DIR", "backup");
    assert_only_error("BACKUP_SECRET_DIR: \"backup\" is not an absolute path; expected a path "
                      "starting with /");
    set("BACKUP_SECRET_DIR", f->backup);
    set("BACKUP_S3_CA_FILE", "ca.crt");
    assert_only_error("BACKUP_S3_CA_FILE: \"ca.crt\" is not an absolute path; expected a path "
                      "starting with /");
}

static void secrets_follow_the_password_file_rules(void **state)
{
    struct fixture *f = *state;
    char msg[600];
    unlink(strcat(strcpy(msg, f->backup), "/s3-key"));
    unset("BACKUP_SECRET_DIR"); /* the default directory */
    assert_int_equal(load(f), -1);
    assert_error("/etc/citus-init/backup/s3-key: does not exist; expected the S3 access key id "
                 "in that file (BACKUP_REPO is s3)");
    assert_error("/etc/citus-init/backup/s3-key-secret: does not exist; expected the S3 secret "
                 "access key in that file (BACKUP_REPO is s3)");
    assert_error("/etc/citus-init/backup/cipher-pass: does not exist; expected the repository "
                 "encryption passphrase in that file (BACKUP_ENCRYPTION is true)");
    assert_int_equal(f->d.count, 3);
    set("BACKUP_SECRET_DIR", f->backup);
    snprintf(msg, sizeof msg, "%s/s3-key: does not exist; expected the S3 access key id in "
             "that file (BACKUP_REPO is s3)", f->backup);
    assert_only_error(msg);

    /* an environment variable never stands in for a file */
    set("BACKUP_S3_KEY", "from-env");
    assert_only_error(msg);
    unset("BACKUP_S3_KEY");

    char *path;
    if (asprintf(&path, "%s/s3-key", f->backup) < 0)
        abort();
    assert_int_equal(symlink("..data/s3-key", path), 0);
    snprintf(msg, sizeof msg, "%s: is a symbolic link to nothing; expected a file with the S3 "
             "access key id", path);
    assert_only_error(msg);
    unlink(path);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(msg, sizeof msg, "%s: is not a regular file; expected a file with the S3 access "
             "key id", path);
    assert_only_error(msg);
    rmdir(path);
    put(f->backup, "s3-key", "\n");
    snprintf(msg, sizeof msg, "%s: file is empty; expected the S3 access key id", path);
    assert_only_error(msg);
    put(f->backup, "s3-key", "line\nbreak\n");
    snprintf(msg, sizeof msg, "%s: holds a line break; expected the S3 access key id on one "
             "line", path);
    assert_only_error(msg);
    put(f->backup, "s3-key", " edge-space");
    snprintf(msg, sizeof msg, "%s: starts or ends with a space or tab; expected the S3 access "
             "key id without them (pgBackRest's configuration file drops them)", path);
    assert_only_error(msg);
    put(f->backup, "s3-key", "edge-space\t\n");
    assert_only_error(msg);
    free(write_file(f->backup, "s3-key", "a\0b", 3));
    snprintf(msg, sizeof msg, "%s: file contains a NUL byte; expected the S3 access key id as "
             "text", path);
    assert_only_error(msg);
    put(f->backup, "s3-key", "inner space=and equals");
    assert_loads();
    assert_string_equal(f->cfg.backup.own.s3_key, "inner space=and equals");
    if (geteuid() != 0) {
        chmod(path, 0);
        snprintf(msg, sizeof msg, "%s: cannot be read (Permission denied); expected a readable "
                 "file with the S3 access key id", path);
        assert_only_error(msg);
    }
    free(path);

    put(f->backup, "cipher-pass", "short-pass");
    snprintf(msg, sizeof msg, "%s/cipher-pass: is shorter than 20 bytes; expected a repository "
             "encryption passphrase of at least 20 bytes", f->backup);
    if (geteuid() != 0)
        put(f->backup, "s3-key", S3_KEY);
    assert_only_error(msg);
    put(f->backup, "cipher-pass", "exactly-twenty-bytes");
    assert_loads();
}

static void schedules_and_integers(void **state)
{
    struct fixture *f = *state;
    set("BACKUP_FULL_SCHEDULE", "0 1 * *");
    assert_only_error("BACKUP_FULL_SCHEDULE: \"0 1 * *\" is not a schedule: 4 fields; expected "
                      "five: minute hour day-of-month month day-of-week; expected five cron "
                      "fields (minute hour day-of-month month day-of-week, UTC) or off");
    unset("BACKUP_FULL_SCHEDULE");
    set("BACKUP_DIFF_SCHEDULE", "0 25 * * *");
    assert_only_error("BACKUP_DIFF_SCHEDULE: \"0 25 * * *\" is not a schedule: the hour field "
                      "\"25\" is out of range; expected values from 0 to 23; expected five cron "
                      "fields (minute hour day-of-month month day-of-week, UTC) or off");
    unset("BACKUP_DIFF_SCHEDULE");
    set("BACKUP_RETENTION_FULL", "0");
    assert_only_error("BACKUP_RETENTION_FULL: \"0\" is out of range; expected an integer from 1 "
                      "to 9999");
    set("BACKUP_RETENTION_FULL", "02");
    assert_only_error("BACKUP_RETENTION_FULL: \"02\" is not a plain decimal number (no '+', no "
                      "leading zeros); expected an integer from 1 to 9999");
    unset("BACKUP_RETENTION_FULL");
    set("BACKUP_PROCESS_MAX", "65");
    assert_only_error("BACKUP_PROCESS_MAX: \"65\" is out of range; expected an integer from 1 to "
                      "64");
    unset("BACKUP_PROCESS_MAX");
    set("BACKUP_ARCHIVE_TIMEOUT", "9");
    assert_only_error("BACKUP_ARCHIVE_TIMEOUT: \"9\" is out of range; expected 0 (off) or an "
                      "integer from 10 to 86400");
    set("BACKUP_ARCHIVE_TIMEOUT", "86401");
    assert_only_error("BACKUP_ARCHIVE_TIMEOUT: \"86401\" is out of range; expected 0 (off) or an "
                      "integer from 10 to 86400");
    set("BACKUP_ARCHIVE_TIMEOUT", "-1");
    assert_only_error("BACKUP_ARCHIVE_TIMEOUT: \"-1\" is out of range; expected 0 (off) or an "
                      "integer from 10 to 86400");
    set("BACKUP_ARCHIVE_TIMEOUT", "10");
    assert_loads();
    set("RESTORE_POINT_INTERVAL", "five");
    assert_only_error("RESTORE_POINT_INTERVAL: \"five\" is not a number; expected 0 (off) or an "
                      "integer from 10 to 86400");
    set("RESTORE_POINT_INTERVAL", "0");
    assert_loads();
    assert_int_equal(f->cfg.backup.restore_point_interval, 0);
}

static void restore_targets(void **state)
{
    struct fixture *f = *state;
    set("CITUS_GROUP", "2");
    set("RESTORE_FROM_CLUSTER", "olddemo");
    struct {
        const char *text;
        enum restore_target_kind kind;
    } good[] = {
        {"LATEST", RESTORE_TARGET_LATEST},
        {"latest", RESTORE_TARGET_LATEST},
        {"2026-12-02T03:15:00Z", RESTORE_TARGET_TIME},
        {"2026-12-02T03:15:00+00:00", RESTORE_TARGET_TIME},
        {"2028-02-29T23:59:59Z", RESTORE_TARGET_TIME},
        {"citus-20261202T031500Z", RESTORE_TARGET_NAME},
        {"before_migration.v2", RESTORE_TARGET_NAME},
        {"2026-12-02", RESTORE_TARGET_NAME}, /* a date alone is a name */
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        set("RESTORE_TARGET", good[i].text);
        int rc = load(f);
        assert_int_equal(rc, 0);
        /* latest with Citus: accepted, with a warning that the groups are not consistent */
        assert_int_equal(f->d.count, good[i].kind == RESTORE_TARGET_LATEST);
        const struct backup_config *b = &f->cfg.backup;
        assert_int_equal(b->restore_target_kind, good[i].kind);
        if (good[i].kind == RESTORE_TARGET_LATEST)
            assert_null(b->restore_target);
        else
            assert_string_equal(b->restore_target, good[i].text);
        assert_string_equal(b->restore_from_cluster, "olddemo");
        assert_string_equal(b->restore_stanza, "olddemo-2");
        assert_string_equal(b->stanza, "citusdemo-2");
    }
    set("RESTORE_TARGET", "latest");
    assert_int_equal(load(f), 0);
    assert_true(diag_has(&f->d, DIAG_WARNING, "RESTORE_TARGET: latest with Citus: every group "
                         "replays its own archive to its end, so the groups are not consistent "
                         "with each other (a distributed transaction may be on some and not on "
                         "others); a restore point name restores a consistent cluster"));
    set("CITUS_ENABLED", "false");
    assert_loads();
    assert_int_equal(f->d.count, 0);
    unset("CITUS_ENABLED");
    const char *bad_times[] = {"2026-13-02T03:15:00Z", "2026-02-29T00:00:00Z",
                               "2026-12-02T24:00:00Z", "2026-12-02T03:60:00Z",
                               "2026-12-02T03:15:60Z", "2026-12-02T03:15:00+01:00",
                               "2026-12-02T03:15:00", "2026-12-02T03:15:00.5Z",
                               "0000-01-01T00:00:00Z", "2026-12-02T03:15:00z"};
    for (size_t i = 0; i < sizeof bad_times / sizeof bad_times[0]; i++) {
        set("RESTORE_TARGET", bad_times[i]);
        char msg[300];
        snprintf(msg, sizeof msg, "RESTORE_TARGET: \"%s\" is not a valid UTC time; expected "
                 "YYYY-MM-DDTHH:MM:SSZ (or +00:00), e.g. 2026-12-02T03:15:00Z", bad_times[i]);
        assert_only_error(msg);
    }
    char long_name[70];
    memset(long_name, 'n', 64);
    long_name[64] = '\0';
    const char *bad_names[] = {long_name, "a b", "name;drop", "é", "2026-12-02 03:15"};
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        set("RESTORE_TARGET", bad_names[i]);
        char msg[400], b[100];
        snprintf(b, sizeof b, "%s", bad_names[i]);
        if (strlen(bad_names[i]) > 80)
            b[80] = '\0';
        snprintf(msg, sizeof msg, "RESTORE_TARGET: \"%s\" is not a restore target; expected a "
                 "restore point name (1-63 of A-Z, a-z, 0-9, '_', '.', '-'), an RFC 3339 UTC "
                 "time such as 2026-12-02T03:15:00Z, or latest", b);
        assert_only_error(msg);
    }
    assert_true(restore_point_name_valid("a"));
    assert_false(restore_point_name_valid(""));
    long_name[63] = '\0';
    assert_true(restore_point_name_valid(long_name));
}

static void restore_needs_both_and_a_repository(void **state)
{
    struct fixture *f = *state;
    set("RESTORE_TARGET", "latest");
    assert_only_error("RESTORE_TARGET: set without RESTORE_FROM_CLUSTER; expected "
                      "RESTORE_FROM_CLUSTER (the cluster to restore from) too, or neither");
    unset("RESTORE_TARGET");
    set("RESTORE_REPO_PATH", "/old");
    assert_only_error("RESTORE_REPO_PATH: set without RESTORE_FROM_CLUSTER; expected "
                      "RESTORE_FROM_CLUSTER (the cluster to restore from) too, or neither");
    unset("RESTORE_REPO_PATH");
    set("RESTORE_SECRET_DIR", f->source);
    assert_only_error("RESTORE_SECRET_DIR: set without RESTORE_FROM_CLUSTER; expected "
                      "RESTORE_FROM_CLUSTER (the cluster to restore from) too, or neither");
    unset("RESTORE_SECRET_DIR");
    set("RESTORE_FROM_CLUSTER", "olddemo");
    assert_only_error("RESTORE_TARGET: not set; expected a restore point name, an RFC 3339 UTC "
                      "time such as 2026-12-02T03:15:00Z, or latest, because "
                      "RESTORE_FROM_CLUSTER is set");
    set("RESTORE_FROM_CLUSTER", "Old_Demo");
    set("RESTORE_TARGET", "before-upgrade");
    assert_only_error("RESTORE_FROM_CLUSTER: \"Old_Demo\" is not a valid cluster name; expected "
                      "the source's CLUSTER_NAME, a DNS label of lowercase letters, digits and "
                      "'-', at most 63 characters");
    assert_null(f->cfg.backup.restore_stanza);
    set("RESTORE_FROM_CLUSTER", "olddemo");
    set("BACKUP_REPO", "none");
    assert_int_equal(load(f), -1);
    assert_error("RESTORE_FROM_CLUSTER: set while BACKUP_REPO is none; expected BACKUP_REPO s3 "
                 "or posix (the repository to restore from)");
    assert_error("RESTORE_TARGET: set while BACKUP_REPO is none; expected BACKUP_REPO s3 or "
                 "posix (the repository to restore from)");
    assert_int_equal(f->d.count, 2);
    set("BACKUP_REPO", "azure"); /* the root cause only */
    assert_only_error("BACKUP_REPO: \"azure\" is not a known value; expected none, s3 or posix");
}

static void restore_source_repository(void **state)
{
    struct fixture *f = *state;
    set("RESTORE_FROM_CLUSTER", "citusdemo"); /* the same name, after its data is gone */
    set("RESTORE_TARGET", "before-upgrade");
    assert_loads();
    const struct backup_config *b = &f->cfg.backup;
    /* defaults: our repository and our secrets */
    assert_string_equal(b->restore_stanza, "citusdemo-0");
    assert_string_equal(b->source.path, "/pgbackrest");
    assert_string_equal(b->source.secret_dir, f->backup);
    assert_string_equal(b->source.s3_key, S3_KEY);
    assert_string_equal(b->source.s3_key_secret, S3_SECRET);
    assert_string_equal(b->source.cipher_pass, CIPHER);

    set("RESTORE_REPO_PATH", "/old-repo");
    set("RESTORE_SECRET_DIR", f->source);
    assert_loads();
    b = &f->cfg.backup;
    assert_string_equal(b->source.path, "/old-repo");
    assert_string_equal(b->own.path, "/pgbackrest");
    assert_string_equal(b->source.s3_key, SRC_KEY);
    assert_string_equal(b->source.s3_key_secret, SRC_SECRET);
    assert_string_equal(b->source.cipher_pass, SRC_CIPHER);
    assert_string_equal(b->own.s3_key, S3_KEY);

    char msg[400];
    put(f->source, "cipher-pass", "short-pass");
    snprintf(msg, sizeof msg, "%s/cipher-pass: is shorter than 20 bytes; expected a repository "
             "encryption passphrase of at least 20 bytes", f->source);
    assert_only_error(msg);
    char *path;
    if (asprintf(&path, "%s/s3-key-secret", f->source) < 0)
        abort();
    unlink(path);
    assert_int_equal(load(f), -1);
    snprintf(msg, sizeof msg, "%s: does not exist; expected the S3 secret access key in that "
             "file (BACKUP_REPO is s3)", path);
    assert_error(msg);
    free(path);
    put(f->source, "cipher-pass", SRC_CIPHER);
    put(f->source, "s3-key-secret", SRC_SECRET);
    set("RESTORE_REPO_PATH", "old");
    assert_only_error("RESTORE_REPO_PATH: \"old\" is not an absolute path; expected a path "
                      "starting with /");
    set("RESTORE_REPO_PATH", "/old//repo");
    assert_only_error("RESTORE_REPO_PATH: \"/old//repo\" holds //; expected an absolute path "
                      "without // and without a trailing / or space (it goes into pgBackRest's "
                      "configuration)");
    unset("RESTORE_REPO_PATH");
    set("RESTORE_SECRET_DIR", "source");
    assert_only_error("RESTORE_SECRET_DIR: \"source\" is not an absolute path; expected a path "
                      "starting with /");
}

/* The agent: the repository secrets only as PID 1 hands them over, never from the files. */
static void agent_takes_the_secrets_from_its_input(void **state)
{
    struct fixture *f = *state;
    set("RESTORE_FROM_CLUSTER", "olddemo");
    set("RESTORE_TARGET", "latest");
    set("RESTORE_SECRET_DIR", f->source);
    set("SUPERUSER_PASSWORD", "p1");
    set("REPLICATION_PASSWORD", "p2");
    set("RESTAPI_PASSWORD", "p3");
    set("BACKUP_S3_VERIFY_TLS", "false"); /* PID 1 warns, the agent does not */
    set("BACKUP_SECRET_DIR", "/nonexistent"); /* never read by the agent */
    assert_int_equal(load_as(f, true), -1);
    const char *names[] = {"BACKUP_S3_KEY", "BACKUP_S3_KEY_SECRET", "BACKUP_CIPHER_PASS",
                           "RESTORE_S3_KEY", "RESTORE_S3_KEY_SECRET", "RESTORE_CIPHER_PASS"};
    const char *whats[] = {"S3 access key id", "S3 secret access key",
                           "repository encryption passphrase"};
    for (size_t i = 0; i < 6; i++) {
        char msg[300];
        snprintf(msg, sizeof msg, "%s: not handed over on the agent's stdin; expected the %s "
                 "from citus-init (PID 1), which starts the agent", names[i], whats[i % 3]);
        assert_error(msg);
    }
    assert_int_equal(f->d.count, 6);
    const char *values[] = {"k1", "s1", "c1", "k2", "s2", "c2"};
    for (size_t i = 0; i < 6; i++)
        set(names[i], values[i]);
    int rc = load_as(f, true);
    diag_print(&f->d);
    assert_int_equal(rc, 0);
    assert_int_equal(f->d.count, 0);
    const struct backup_config *b = &f->cfg.backup;
    assert_string_equal(b->own.s3_key, "k1");
    assert_string_equal(b->own.s3_key_secret, "s1");
    assert_string_equal(b->own.cipher_pass, "c1");
    assert_string_equal(b->source.s3_key, "k2");
    assert_string_equal(b->source.s3_key_secret, "s2");
    assert_string_equal(b->source.cipher_pass, "c2");
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(off_by_default_and_nothing_else_read),
        T(s3_defaults_and_derived_values),
        T(explicit_values),
        T(posix_without_encryption_needs_no_secret),
        T(enumerations),
        T(endpoint),
        T(bucket_and_region),
        T(paths),
        T(secrets_follow_the_password_file_rules),
        T(schedules_and_integers),
        T(restore_targets),
        T(restore_needs_both_and_a_repository),
        T(restore_source_repository),
        T(agent_takes_the_secrets_from_its_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
