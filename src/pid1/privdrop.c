/* privdrop.c: drop root for good (see include/privdrop.h). */
#include "privdrop.h"
#include "xalloc.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

static void fill_user(struct run_user *u, const struct passwd *pw)
{
    u->name = xstrdup(pw->pw_name);
    u->home = xstrdup(pw->pw_dir && *pw->pw_dir ? pw->pw_dir : "/");
    u->uid = pw->pw_uid;
    u->gid = pw->pw_gid;
    u->in_passwd = true;
}

int run_user_lookup(const char *name, struct run_user *u, struct diag *d)
{
    memset(u, 0, sizeof *u);
    errno = 0;
    struct passwd *pw = getpwnam(name);
    if (!pw) {
        if (errno)
            diag_error(d, "RUN_AS_USER=%s: cannot look up the user: %s", name, strerror(errno));
        else
            diag_error(d, "RUN_AS_USER=%s: no such user in /etc/passwd; expected the account "
                          "PostgreSQL runs as (e.g. postgres)", name);
        return -1;
    }
    if (pw->pw_uid == 0) {
        diag_error(d, "RUN_AS_USER=%s: is root (uid 0); PostgreSQL refuses to run as root, "
                      "expected an unprivileged account", name);
        return -1;
    }
    fill_user(u, pw);
    return 0;
}

int run_user_current(struct run_user *u, struct diag *d)
{
    (void)d;
    memset(u, 0, sizeof *u);
    struct passwd *pw = getpwuid(geteuid());
    if (pw) {
        fill_user(u, pw);
        return 0;
    }
    /* Arbitrary uids (OpenShift-style) have no passwd entry: still a valid start. */
    char name[32];
    snprintf(name, sizeof name, "uid %u", (unsigned)geteuid());
    u->name = xstrdup(name);
    u->home = xstrdup("/");
    u->uid = geteuid();
    u->gid = getegid();
    return 0;
}

void run_user_free(struct run_user *u)
{
    free(u->name);
    free(u->home);
    memset(u, 0, sizeof *u);
}

static int verify_dropped(const struct run_user *u, struct diag *d)
{
    uid_t ruid, euid, suid;
    gid_t rgid, egid, sgid;
    if (getresuid(&ruid, &euid, &suid) < 0 || getresgid(&rgid, &egid, &sgid) < 0) {
        diag_error(d, "privilege drop: cannot read the process ids: %s", strerror(errno));
        return -1;
    }
    if (ruid != u->uid || euid != u->uid || suid != u->uid || rgid != u->gid ||
        egid != u->gid || sgid != u->gid) {
        diag_error(d, "privilege drop to %s: ids are uid %u/%u/%u gid %u/%u/%u, expected uid %u "
                      "gid %u", u->name, (unsigned)ruid, (unsigned)euid, (unsigned)suid,
                   (unsigned)rgid, (unsigned)egid, (unsigned)sgid, (unsigned)u->uid,
                   (unsigned)u->gid);
        return -1;
    }
    if (setuid(0) == 0) {
        diag_error(d, "privilege drop to %s: setuid(0) succeeded afterwards; root was not given "
                      "up", u->name);
        return -1;
    }
    gid_t groups[2];
    int n = getgroups(2, groups);
    if (n != 1 || groups[0] != u->gid) {
        diag_error(d, "privilege drop to %s: supplementary groups are not exactly gid %u",
                   u->name, (unsigned)u->gid);
        return -1;
    }
    return 0;
}

int privdrop_apply(const struct run_user *u, struct diag *d)
{
    if (geteuid() == 0) {
        if (setgroups(1, &u->gid) < 0) {
            diag_error(d, "privilege drop to %s: setgroups(%u): %s", u->name, (unsigned)u->gid,
                       strerror(errno));
            return -1;
        }
        if (setgid(u->gid) < 0) {
            diag_error(d, "privilege drop to %s: setgid(%u): %s", u->name, (unsigned)u->gid,
                       strerror(errno));
            return -1;
        }
        if (setuid(u->uid) < 0) {
            diag_error(d, "privilege drop to %s: setuid(%u): %s", u->name, (unsigned)u->uid,
                       strerror(errno));
            return -1;
        }
        if (verify_dropped(u, d) < 0)
            return -1;
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        diag_error(d, "PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
        return -1;
    }
    return 0;
}

static bool env_name_is(const char *entry, const char *name)
{
    size_t len = strlen(name);
    return strncmp(entry, name, len) == 0 && entry[len] == '=';
}

static char *env_entry(const char *name, const char *value)
{
    char *s;
    if (asprintf(&s, "%s=%s", name, value) < 0)
        abort();
    return s;
}

char **privdrop_child_env(char *const *envp, const struct run_user *u, const char *const *drop)
{
    static const char *const set_names[] = {"HOME", "USER", "LOGNAME"};
    const char *set_values[] = {u->home, u->name, u->name};
    size_t n = 0;
    while (envp[n])
        n++;
    char **env = calloc(n + 4, sizeof *env);
    if (!env)
        abort();
    size_t n_set = u->in_passwd ? 3 : 1;
    size_t out = 0;
    for (size_t i = 0; i < n; i++) {
        bool skip = false;
        for (size_t k = 0; k < n_set && !skip; k++)
            skip = env_name_is(envp[i], set_names[k]);
        for (size_t k = 0; drop && drop[k] && !skip; k++)
            skip = env_name_is(envp[i], drop[k]);
        if (!skip)
            env[out++] = xstrdup(envp[i]);
    }
    for (size_t k = 0; k < n_set; k++)
        env[out++] = env_entry(set_names[k], set_values[k]);
    env[out] = NULL;
    return env;
}

void privdrop_env_free(char **env)
{
    if (!env)
        return;
    for (size_t i = 0; env[i]; i++)
        free(env[i]);
    free(env);
}
