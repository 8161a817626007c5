/* privdrop.h: become RUN_AS_USER for good, and prove it.
 * Order: setgroups({gid}) -> setgid -> setuid; then setuid(0) must fail and the group list
 * must be exactly the user's gid; finally PR_SET_NO_NEW_PRIVS. */
#ifndef CITUS_INIT_PRIVDROP_H
#define CITUS_INIT_PRIVDROP_H

#include <stdbool.h>
#include <sys/types.h>

#include "diag.h"

struct run_user {
    char *name;      /* for messages; "uid N" when the account has no passwd entry */
    char *home;
    bool in_passwd;  /* false: an arbitrary uid (non-root start), no USER/LOGNAME to give */
    uid_t uid;
    gid_t gid;
};

/* getpwnam(name). Unknown user or uid 0 -> an error in d naming RUN_AS_USER (exit 78). */
int run_user_lookup(const char *name, struct run_user *u, struct diag *d);
/* The account we already run as (non-root start); its name is "uid N" when not in passwd. */
int run_user_current(struct run_user *u, struct diag *d);
void run_user_free(struct run_user *u);

/* As root: drop to u and verify; then no new privileges. Not root: only no new privileges.
 * A failure goes to d with the step and strerror (exit 70). */
int privdrop_apply(const struct run_user *u, struct diag *d);

/* A copy of envp (malloc'd array and strings) with HOME, USER and LOGNAME set for u (only
 * HOME when u has no passwd entry) and the
 * variables named in drop (NULL-terminated, may be NULL) removed. Free with privdrop_env_free. */
char **privdrop_child_env(char *const *envp, const struct run_user *u, const char *const *drop);
void privdrop_env_free(char **env);

#endif
