/* testutil.c: see testutil.h. */
#include "testutil.h"

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void fake_env_unset(struct fake_env *env, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < env->count; i++) {
        if (strncmp(env->entries[i], name, n) == 0 && env->entries[i][n] == '=') {
            free(env->entries[i]);
            env->entries[i] = env->entries[--env->count];
            return;
        }
    }
}

void fake_env_set(struct fake_env *env, const char *name, const char *value)
{
    fake_env_unset(env, name);
    if (env->count == sizeof(env->entries) / sizeof(env->entries[0]))
        abort();
    if (asprintf(&env->entries[env->count], "%s=%s", name, value) < 0)
        abort();
    env->count++;
}

void fake_env_free(struct fake_env *env)
{
    for (size_t i = 0; i < env->count; i++)
        free(env->entries[i]);
    env->count = 0;
}

const char *fake_env_lookup(const char *name, void *ctx)
{
    struct fake_env *env = ctx;
    size_t n = strlen(name);
    for (size_t i = 0; i < env->count; i++)
        if (strncmp(env->entries[i], name, n) == 0 && env->entries[i][n] == '=')
            return env->entries[i] + n + 1;
    return NULL;
}

char *make_temp_dir(void)
{
    const char *base = getenv("TMPDIR");
    char *path;
    if (asprintf(&path, "%s/citus-init-test.XXXXXX", base && *base ? base : "/tmp") < 0)
        abort();
    if (!mkdtemp(path))
        abort();
    return path;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

void remove_tree(const char *path)
{
    nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

char *write_file(const char *dir, const char *name, const char *content, size_t len)
{
    char *path;
    if (asprintf(&path, "%s/%s", dir, name) < 0)
        abort();
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, content, len) != (ssize_t)len || close(fd) != 0)
        abort();
    return path;
}

char *make_pod_env(struct fake_env *env)
{
    char *dir = make_temp_dir(), *secrets, *bin;
    if (asprintf(&secrets, "%s/secrets", dir) < 0 || asprintf(&bin, "%s/bin", dir) < 0)
        abort();
    if (mkdir(secrets, 0755) != 0 || mkdir(bin, 0755) != 0)
        abort();
    free(write_file(secrets, "superuser-password", TEST_SUPER_PW "\n", strlen(TEST_SUPER_PW) + 1));
    free(write_file(secrets, "replication-password", TEST_REPL_PW, strlen(TEST_REPL_PW)));
    free(write_file(secrets, "restapi-password", TEST_API_PW "\n", strlen(TEST_API_PW) + 1));
    char *postgres = write_file(bin, "postgres", "#!/bin/sh\n", 10);
    chmod(postgres, 0755);
    free(postgres);
    fake_env_set(env, "POD_NAME", "citusdemo-0-1");
    fake_env_set(env, "POD_IP", "127.0.10.2");
    fake_env_set(env, "CLUSTER_NAME", "citusdemo");
    fake_env_set(env, "CITUS_GROUP", "0");
    fake_env_set(env, "ETCD_HOSTS", "127.0.0.1:2379");
    fake_env_set(env, "SECRETS_DIR", secrets);
    fake_env_set(env, "PG_BIN_DIR", bin);
    free(secrets);
    free(bin);
    return dir;
}

void diag_print(const struct diag *d)
{
    for (size_t i = 0; i < d->count; i++)
        fprintf(stderr, "  diag[%zu] %s: %s\n", i,
                d->items[i].severity == DIAG_ERROR ? "error" : "warning", d->items[i].message);
}

bool diag_has(const struct diag *d, int severity, const char *msg)
{
    for (size_t i = 0; i < d->count; i++)
        if ((int)d->items[i].severity == severity && strcmp(d->items[i].message, msg) == 0)
            return true;
    fprintf(stderr, "expected %s: %s\nfound:\n", severity == DIAG_ERROR ? "error" : "warning", msg);
    diag_print(d);
    return false;
}

bool diag_contains(const struct diag *d, const char *fragment)
{
    for (size_t i = 0; i < d->count; i++)
        if (strstr(d->items[i].message, fragment))
            return true;
    return false;
}

void assert_no_secret_in(const struct diag *d, const char *const *secrets, size_t n)
{
    for (size_t i = 0; i < d->count; i++)
        for (size_t j = 0; j < n; j++)
            if (strstr(d->items[i].message, secrets[j])) {
                diag_print(d);
                fail_msg("a diagnostic holds secret #%zu", j);
            }
}
