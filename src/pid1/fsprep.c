/* fsprep.c: directories, ownership and the runtime copies (see include/fsprep.h). */
#include "fsprep.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "input.h"
#include "xalloc.h"

#define TLS_FILE_MAX (1024 * 1024)

/* ---- atomic writes ---------------------------------------------------------------- */

static bool mode_is(mode_t m, mode_t want) { return (m & 07777) == want; }

static int write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

/* Whether path already holds exactly data with this mode (and owner): restarts then write
 * nothing and wait for no fsync. */
static bool file_matches(const char *path, const void *data, size_t len, mode_t mode,
                         const struct run_user *owner)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return false;
    struct stat st;
    bool same = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (size_t)st.st_size == len &&
                mode_is(st.st_mode, mode) &&
                (owner ? st.st_uid == owner->uid && st.st_gid == owner->gid
                       : st.st_uid == geteuid());
    char buf[4096];
    size_t off = 0;
    while (same && off < len) {
        ssize_t n = read(fd, buf, len - off < sizeof buf ? len - off : sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0 || memcmp(buf, (const char *)data + off, (size_t)n) != 0)
            same = false;
        else
            off += (size_t)n;
    }
    explicit_bzero(buf, sizeof buf);
    close(fd);
    return same;
}

int fsprep_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
                        const struct run_user *owner, struct diag *d)
{
    if (file_matches(path, data, len, mode, owner))
        return 0;
    char *dcopy = strdup(path), *bcopy = strdup(path);
    if (!dcopy || !bcopy)
        abort();
    const char *dir = dirname(dcopy), *base = basename(bcopy);
    char *tmp = xasprintf("%s/.%s.XXXXXX", dir, base);
    const char *step = "create a temporary file";
    int rc = -1;
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        goto out;
    /* Mode and owner first, then the content: a secret is never readable by others. */
    step = "set the mode of";
    if (fchmod(fd, mode) < 0)
        goto fail;
    step = "set the owner of";
    if (owner && fchown(fd, owner->uid, owner->gid) < 0)
        goto fail;
    step = "write";
    if (write_all(fd, data, len) < 0)
        goto fail;
    step = "fsync";
    if (fsync(fd) < 0)
        goto fail;
    step = "close";
    int cfd = fd;
    fd = -1;
    if (close(cfd) < 0)
        goto fail;
    step = "rename the temporary file onto";
    if (rename(tmp, path) < 0)
        goto fail;
    step = "fsync the directory of";
    if (fsync_dir(dir) < 0) {
        diag_error(d, "%s: cannot %s the file: %s", path, step, strerror(errno));
        goto out_rc; /* the file is in place; durability is what failed */
    }
    rc = 0;
    goto out_rc;
fail:;
    int e = errno;
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    errno = e;
out:
    diag_error(d, "%s: cannot %s the file: %s", path, step, strerror(errno));
out_rc:
    free(tmp);
    free(dcopy);
    free(bcopy);
    return rc;
}

/* ---- directories ------------------------------------------------------------------ */

/* One directory the pod needs. var names the variable that set it (for messages), or NULL. */
struct dir_spec {
    const char *var;
    const char *path;
    const char *what;
    mode_t mode; /* 0700: private (ours, verified as non-root); else shared (writable is enough) */
};

#define WHERE_FMT "%s%s%s"
#define WHERE(s) (s)->var ? (s)->var : "", (s)->var ? "=" : "", (s)->path

static bool data_top_correct(const struct stat *st, const struct run_user *u)
{
    return st->st_uid == u->uid && st->st_gid == u->gid &&
           (mode_is(st->st_mode, 0700) || mode_is(st->st_mode, 0750));
}

/* Non-root: nothing is chowned or chmodded, a private directory must already fit. */
static enum fsprep_status verify_own_dir(const struct dir_spec *s, const struct stat *st,
                                         struct diag *d)
{
    if (st->st_uid != geteuid()) {
        diag_error(d, WHERE_FMT ": the %s is owned by uid %u, expected uid %u (citus-init runs "
                      "as non-root and cannot change it; fix the volume or the pod's "
                      "securityContext)",
                   WHERE(s), s->what, (unsigned)st->st_uid, (unsigned)geteuid());
        return FSPREP_UNUSABLE;
    }
    if (!mode_is(st->st_mode, 0700) && !mode_is(st->st_mode, 0750)) {
        diag_error(d, WHERE_FMT ": the %s has mode %04o, expected 0700 or 0750 (citus-init runs "
                      "as non-root and does not change it)",
                   WHERE(s), s->what, (unsigned)(st->st_mode & 07777));
        return FSPREP_UNUSABLE;
    }
    if (access(s->path, R_OK | W_OK | X_OK) < 0) {
        diag_error(d, WHERE_FMT ": the %s is not writable by uid %u: %s", WHERE(s), s->what,
                   (unsigned)geteuid(), strerror(errno));
        return FSPREP_UNUSABLE;
    }
    return FSPREP_OK;
}

/* The directory does not exist: the nearest existing parent must be a directory we can
 * create entries in (as root too: access() then still reports a read-only file system). */
static enum fsprep_status check_creatable(const struct dir_spec *s, struct diag *d)
{
    char *p = xstrdup(s->path);
    enum fsprep_status rc = FSPREP_OK;
    struct stat st;
    for (;;) {
        if (lstat(p, &st) == 0 && S_ISLNK(st.st_mode) && stat(p, &st) < 0 && errno == ENOENT) {
            diag_error(d, WHERE_FMT ": the %s cannot be created: %s is a symbolic link to "
                          "nothing; expected a directory or no entry at all",
                       WHERE(s), s->what, p);
            rc = FSPREP_UNUSABLE;
            break;
        }
        char *slash = strrchr(p, '/');
        if (!slash)
            break;
        if (slash == p)
            slash[1] = '\0'; /* the root directory */
        else
            *slash = '\0';
        if (stat(p, &st) < 0) {
            if (errno == ENOENT || errno == ENOTDIR) {
                if (strcmp(p, "/") == 0)
                    break;
                continue;
            }
            diag_error(d, WHERE_FMT ": the %s cannot be created: cannot inspect %s: %s",
                       WHERE(s), s->what, p, strerror(errno));
            rc = FSPREP_UNUSABLE;
            break;
        }
        if (!S_ISDIR(st.st_mode)) {
            diag_error(d, WHERE_FMT ": the %s cannot be created: %s is not a directory",
                       WHERE(s), s->what, p);
            rc = FSPREP_UNUSABLE;
        } else if (access(p, W_OK | X_OK) < 0) {
            diag_error(d, WHERE_FMT ": the %s cannot be created in %s by uid %u: %s", WHERE(s),
                       s->what, p, (unsigned)geteuid(), strerror(errno));
            rc = FSPREP_UNUSABLE;
        }
        break;
    }
    free(p);
    return rc;
}

/* Read-only: whether the apply phase can make s what it must be. *exists tells whether it is
 * there already (as a directory). */
static enum fsprep_status check_dir(const struct dir_spec *s, const struct run_user *u,
                                    bool as_root, bool *exists, struct diag *d)
{
    *exists = false;
    struct stat st;
    if (stat(s->path, &st) < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return check_creatable(s, d);
        diag_error(d, WHERE_FMT ": cannot inspect the %s: %s", WHERE(s), s->what,
                   strerror(errno));
        return FSPREP_UNUSABLE;
    }
    if (!S_ISDIR(st.st_mode)) {
        diag_error(d, WHERE_FMT ": exists but is not a directory; expected the %s", WHERE(s),
                   s->what);
        return FSPREP_UNUSABLE;
    }
    *exists = true;
    if (!as_root) {
        if (s->mode == 0700)
            return verify_own_dir(s, &st, d);
        /* A shared directory (the socket directory) only needs to be writable. */
        if (access(s->path, W_OK | X_OK) < 0) {
            diag_error(d, WHERE_FMT ": the %s is not writable by uid %u: %s", WHERE(s), s->what,
                       (unsigned)geteuid(), strerror(errno));
            return FSPREP_UNUSABLE;
        }
        return FSPREP_OK;
    }
    bool change = st.st_uid != u->uid || st.st_gid != u->gid ||
                  (s->mode == 0700 ? !data_top_correct(&st, u) : !mode_is(st.st_mode, s->mode));
    if (change && access(s->path, W_OK) < 0 && errno == EROFS) {
        diag_error(d, WHERE_FMT ": the %s needs owner %s and mode %04o but is on a read-only "
                      "file system", WHERE(s), s->what, u->name, (unsigned)s->mode);
        return FSPREP_UNUSABLE;
    }
    return FSPREP_OK;
}

/* mkdir -p for the parents of path; the ones created belong to u (as root), mode 0700. */
static int make_parents(const struct dir_spec *s, const struct run_user *u, bool as_root,
                        struct diag *d)
{
    char *p = xstrdup(s->path);
    int rc = 0;
    char *slash = p;
    while ((slash = strchr(slash + 1, '/'))) {
        *slash = '\0';
        if (mkdir(p, 0700) == 0) {
            if (as_root && chown(p, u->uid, u->gid) < 0) {
                diag_error(d, "%s: cannot set the owner to %s: %s", p, u->name, strerror(errno));
                rc = -1;
                break;
            }
        } else if (errno != EEXIST) {
            diag_error(d, "%s: cannot create the directory: %s", p, strerror(errno));
            rc = -1;
            break;
        }
        *slash = '/';
    }
    free(p);
    return rc;
}

/* Create or fix one directory that is not walked: owner u, exactly its mode. Runs after
 * check_dir found it usable; whatever fails now is a failed change. */
static enum fsprep_status ensure_dir(const struct dir_spec *s, const struct run_user *u,
                                     bool as_root, struct diag *d)
{
    if (make_parents(s, u, as_root, d) < 0)
        return FSPREP_FAILED;
    if (mkdir(s->path, 0700) < 0 && errno != EEXIST) {
        diag_error(d, WHERE_FMT ": cannot create the %s: %s", WHERE(s), s->what,
                   strerror(errno));
        return FSPREP_FAILED;
    }
    struct stat st;
    if (stat(s->path, &st) < 0) {
        diag_error(d, WHERE_FMT ": cannot inspect the %s: %s", WHERE(s), s->what,
                   strerror(errno));
        return FSPREP_FAILED;
    }
    if (!S_ISDIR(st.st_mode)) {
        diag_error(d, WHERE_FMT ": exists but is not a directory; expected the %s", WHERE(s),
                   s->what);
        return FSPREP_FAILED;
    }
    if (!as_root) {
        if (s->mode == 0700 && verify_own_dir(s, &st, d) != FSPREP_OK)
            return FSPREP_FAILED;
        return FSPREP_OK;
    }
    if ((st.st_uid != u->uid || st.st_gid != u->gid) && chown(s->path, u->uid, u->gid) < 0) {
        diag_error(d, WHERE_FMT ": cannot set the owner of the %s to %s: %s", WHERE(s), s->what,
                   u->name, strerror(errno));
        return FSPREP_FAILED;
    }
    /* chmod also after chown: chown clears the setgid bit of a directory on some systems. */
    if (!mode_is(st.st_mode, s->mode) || st.st_uid != u->uid || st.st_gid != u->gid) {
        if (chmod(s->path, s->mode) < 0) {
            diag_error(d, WHERE_FMT ": cannot set the mode of the %s to %04o: %s", WHERE(s),
                       s->what, (unsigned)s->mode, strerror(errno));
            return FSPREP_FAILED;
        }
    }
    return FSPREP_OK;
}

/* Give every entry below dirfd to u: directories 0700, files without group/other bits,
 * symlinks only re-owned (never followed). */
static int fix_tree(int dirfd, const char *path, const struct run_user *u, struct diag *d)
{
    DIR *dir = fdopendir(dirfd);
    if (!dir) {
        diag_error(d, "%s: cannot read the directory: %s", path, strerror(errno));
        close(dirfd);
        return -1;
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (errno = 0, e = readdir(dir))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char *child = xasprintf("%s/%s", path, e->d_name);
        struct stat st;
        if (fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno != ENOENT) { /* vanished meanwhile: nothing to fix */
                diag_error(d, "%s: cannot inspect: %s", child, strerror(errno));
                rc = -1;
            }
        } else if ((st.st_uid != u->uid || st.st_gid != u->gid) &&
                   fchownat(dirfd, e->d_name, u->uid, u->gid, AT_SYMLINK_NOFOLLOW) < 0) {
            diag_error(d, "%s: cannot set the owner to %s: %s", child, u->name, strerror(errno));
            rc = -1;
        } else if (S_ISDIR(st.st_mode)) {
            if (fchmodat(dirfd, e->d_name, 0700, 0) < 0) {
                diag_error(d, "%s: cannot set the mode to 0700: %s", child, strerror(errno));
                rc = -1;
            } else {
                int sub = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (sub < 0) {
                    diag_error(d, "%s: cannot open the directory: %s", child, strerror(errno));
                    rc = -1;
                } else {
                    rc = fix_tree(sub, child, u, d);
                }
            }
        } else if (S_ISREG(st.st_mode) && (st.st_mode & 07777) != (st.st_mode & 0700)) {
            if (fchmodat(dirfd, e->d_name, st.st_mode & 0700, 0) < 0) {
                diag_error(d, "%s: cannot set the mode to %04o: %s", child,
                           (unsigned)(st.st_mode & 0700), strerror(errno));
                rc = -1;
            }
        }
        free(child);
    }
    if (rc == 0 && errno) {
        diag_error(d, "%s: cannot read the directory: %s", path, strerror(errno));
        rc = -1;
    }
    closedir(dir);
    return rc;
}

static struct dir_spec data_dir_spec(const char *pgdata)
{
    return (struct dir_spec){"PGDATA", pgdata, "data directory", 0700};
}

/* The data directory after check_dir: created, or (as root, OnRootMismatch) walked and fixed
 * when its top has the wrong owner, group or mode. */
static enum fsprep_status apply_data_dir(const char *pgdata, const struct run_user *u,
                                         bool as_root, bool *recursed, struct diag *d)
{
    struct dir_spec s = data_dir_spec(pgdata);
    struct stat st;
    if (stat(pgdata, &st) < 0) {
        if (errno == ENOENT)
            return ensure_dir(&s, u, as_root, d);
        diag_error(d, "PGDATA=%s: cannot inspect the data directory: %s", pgdata,
                   strerror(errno));
        return FSPREP_FAILED;
    }
    if (!S_ISDIR(st.st_mode)) {
        diag_error(d, "PGDATA=%s: exists but is not a directory; expected the data directory",
                   pgdata);
        return FSPREP_FAILED;
    }
    if (!as_root)
        return verify_own_dir(&s, &st, d) == FSPREP_OK ? FSPREP_OK : FSPREP_FAILED;
    if (data_top_correct(&st, u))
        return FSPREP_OK; /* OnRootMismatch: a correct top means the tree is left alone */
    if (recursed)
        *recursed = true;
    int fd = open(pgdata, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        diag_error(d, "%s: cannot open the data directory: %s", pgdata, strerror(errno));
        return FSPREP_FAILED;
    }
    /* The tree first, the top last: an interrupted fix is redone on the next start. */
    if (fix_tree(fd, pgdata, u, d) < 0)
        return FSPREP_FAILED;
    if (chown(pgdata, u->uid, u->gid) < 0 || chmod(pgdata, 0700) < 0) {
        diag_error(d, "%s: cannot set owner %s and mode 0700 on the data directory: %s", pgdata,
                   u->name, strerror(errno));
        return FSPREP_FAILED;
    }
    return FSPREP_OK;
}

enum fsprep_status fsprep_data_dir(const char *pgdata, const struct run_user *u, bool as_root,
                                   bool *recursed, struct diag *d)
{
    if (recursed)
        *recursed = false;
    struct dir_spec s = data_dir_spec(pgdata);
    bool exists;
    enum fsprep_status rc = check_dir(&s, u, as_root, &exists, d);
    if (rc != FSPREP_OK)
        return rc;
    return apply_data_dir(pgdata, u, as_root, recursed, d);
}

/* ---- TLS sources ------------------------------------------------------------------ */

static const char *tls_what(const char *name)
{
    return strcmp(name, "ca.crt") == 0       ? "CA certificate"
           : strcmp(name, "server.crt") == 0 ? "server certificate"
                                             : "server key";
}

/* The label of the first PEM block whose label ends in "PRIVATE KEY" ("RSA PRIVATE KEY",
 * "ENCRYPTED PRIVATE KEY" ...), copied into label; false when there is none. */
static bool pem_private_key_label(const char *data, size_t len, char *label, size_t size)
{
    static const char begin[] = "-----BEGIN ";
    const char *p = data, *end = data + len;
    while ((p = memmem(p, (size_t)(end - p), begin, sizeof begin - 1))) {
        const char *l = p + sizeof begin - 1;
        const char *close = memmem(l, (size_t)(end - l), "-----", 5);
        const char *eol = memchr(l, '\n', (size_t)(end - l));
        p = l;
        if (!close || (eol && eol < close))
            continue;
        size_t n = (size_t)(close - l);
        if (n >= 11 && memcmp(close - 11, "PRIVATE KEY", 11) == 0) {
            snprintf(label, size, "%.*s", (int)(n < 64 ? n : 64), l);
            return true;
        }
    }
    return false;
}

static bool check_tls_sources(struct fsprep_plan *plan, struct diag *d)
{
    const struct config *cfg = plan->cfg;
    bool ok = true;
    for (size_t i = 0; i < 3; i++) {
        struct fsprep_tls_file *t = &plan->tls[i];
        char *path = xasprintf("%s/%s", cfg->ssl_cert_dir, t->name);
        const char *what = tls_what(t->name);
        int err = input_read_file(path, TLS_FILE_MAX, &t->data, &t->len);
        if (err == ENOENT)
            diag_error(d, "%s: does not exist; expected the %s (PEM) because SSL_ENABLED is "
                          "true", path, what);
        else if (err == EFBIG || err == EISDIR || err == EINVAL)
            diag_error(d, "%s: is not a regular file of at most %d bytes; expected the %s (PEM)",
                       path, TLS_FILE_MAX, what);
        else if (err)
            diag_error(d, "%s: cannot be read (%s); expected a readable %s (PEM)", path,
                       strerror(err), what);
        char label[80];
        if (!err && t->mode != 0600 && pem_private_key_label(t->data, t->len, label, sizeof label)) {
            diag_error(d, "%s: holds a private key (a \"%s\" block); expected only "
                          "certificates: its copy in RUN_DIR/tls is readable by everyone (mode "
                          "%04o), the key belongs in server.key", path, label, (unsigned)t->mode);
            err = EINVAL;
        }
        ok = ok && !err;
        free(path);
    }
    return ok;
}

/* ---- everything ------------------------------------------------------------------- */

/* A file fsprep_apply renames into place (RUN_DIR/relative): a directory there would make
 * the rename fail after other changes, so it is found now. Anything else is replaced. */
static void check_file_target(const struct config *cfg, const char *relative, struct diag *d)
{
    char *path = config_path(cfg, relative);
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
        diag_error(d, "%s: is a directory; expected no entry or the file citus-init writes there "
                      "(RUN_DIR/%s)", path, relative);
    free(path);
}

static void free_text(char **text)
{
    if (*text)
        input_free_wiped(*text, strlen(*text));
    *text = NULL;
}

void fsprep_plan_free(struct fsprep_plan *plan)
{
    for (size_t i = 0; i < 3; i++) {
        input_free_wiped(plan->tls[i].data, plan->tls[i].len);
        plan->tls[i].data = NULL;
        plan->tls[i].len = 0;
    }
    input_free_wiped(plan->backup_ca.data, plan->backup_ca.len);
    plan->backup_ca.data = NULL;
    plan->backup_ca.len = 0;
    free_text(&plan->pgbackrest_conf);
    free_text(&plan->restore_conf);
    plan->usable = plan->tls_read = false;
}

/* ---- pgBackRest's files ----------------------------------------------------------- */

/* BACKUP_S3_CA_FILE into the plan: a readable regular file of at most 1 MiB holding a PEM
 * certificate and no private key (its copy is what pgBackRest and the agent read). */
static void check_backup_ca(struct fsprep_plan *plan, struct diag *d)
{
    const char *path = plan->cfg->backup.s3_ca_file;
    struct fsprep_tls_file *t = &plan->backup_ca;
    int err = input_read_file(path, TLS_FILE_MAX, &t->data, &t->len);
    char label[80];
    if (err == ENOENT)
        diag_error(d, "BACKUP_S3_CA_FILE=%s: does not exist; expected the CA certificate(s) "
                      "(PEM) the S3 endpoint's certificate is verified against", path);
    else if (err == EFBIG || err == EISDIR || err == EINVAL)
        diag_error(d, "BACKUP_S3_CA_FILE=%s: is not a regular file of at most %d bytes; "
                      "expected the CA certificate(s) (PEM)", path, TLS_FILE_MAX);
    else if (err)
        diag_error(d, "BACKUP_S3_CA_FILE=%s: cannot be read (%s); expected a readable file with "
                      "the CA certificate(s) (PEM)", path, strerror(err));
    else if (pem_private_key_label(t->data, t->len, label, sizeof label))
        diag_error(d, "BACKUP_S3_CA_FILE=%s: holds a private key (a \"%s\" block); expected "
                      "only CA certificates", path, label);
    else if (!memmem(t->data, t->len, "-----BEGIN CERTIFICATE-----", 27) ||
             !memmem(t->data, t->len, "-----END CERTIFICATE-----", 25))
        diag_error(d, "BACKUP_S3_CA_FILE=%s: holds no PEM certificate; expected the CA "
                      "certificate(s) as -----BEGIN CERTIFICATE----- blocks", path);
    else
        return;
    input_free_wiped(t->data, t->len);
    t->data = NULL;
    t->len = 0;
}

static void check_backup_files(struct fsprep_plan *plan, bool run_ok, struct diag *d)
{
    const struct config *cfg = plan->cfg;
    const struct backup_config *b = &cfg->backup;
    if (b->repo == BACKUP_REPO_NONE)
        return;
    char *dir = config_path(cfg, BACKUP_CONF_DIR), *lock = config_path(cfg, BACKUP_LOCK_DIR);
    struct dir_spec conf_dir = {NULL, dir, "pgBackRest directory (RUN_DIR/pgbackrest)", 0700};
    struct dir_spec lock_dir = {NULL, lock, "pgBackRest lock directory", 0700};
    bool exists;
    if (run_ok && check_dir(&conf_dir, plan->user, plan->as_root, &exists, d) ==
                      FSPREP_OK && exists) {
        check_file_target(cfg, BACKUP_CONF_FILE, d);
        if (b->restore_from_cluster)
            check_file_target(cfg, BACKUP_RESTORE_CONF_FILE, d);
        if (b->s3_ca_file)
            check_file_target(cfg, BACKUP_CA_COPY, d);
        check_dir(&lock_dir, plan->user, plan->as_root, &exists, d);
    }
    free(dir);
    free(lock);
    if (b->s3_ca_file)
        check_backup_ca(plan, d);
}

static enum fsprep_status apply_backup_files(const struct fsprep_plan *plan,
                                             const struct run_user *owner, struct diag *d)
{
    const struct config *cfg = plan->cfg;
    const struct backup_config *b = &cfg->backup;
    if (b->repo == BACKUP_REPO_NONE)
        return FSPREP_OK;
    if (!plan->pgbackrest_conf || (b->restore_from_cluster && !plan->restore_conf)) {
        diag_error(d, "pgBackRest's configuration was not rendered; nothing of it was written");
        return FSPREP_FAILED;
    }
    char *dir = config_path(cfg, BACKUP_CONF_DIR), *lock = config_path(cfg, BACKUP_LOCK_DIR);
    struct dir_spec conf_dir = {NULL, dir, "pgBackRest directory (RUN_DIR/pgbackrest)", 0700};
    struct dir_spec lock_dir = {NULL, lock, "pgBackRest lock directory", 0700};
    enum fsprep_status rc = FSPREP_FAILED;
    char *path = NULL;
    if (ensure_dir(&conf_dir, plan->user, plan->as_root, d) != FSPREP_OK ||
        ensure_dir(&lock_dir, plan->user, plan->as_root, d) != FSPREP_OK)
        goto out;
    if (b->s3_ca_file) {
        path = config_path(cfg, BACKUP_CA_COPY);
        if (fsprep_write_atomic(path, plan->backup_ca.data, plan->backup_ca.len, 0600, owner,
                                d) < 0)
            goto out;
        free(path);
    }
    path = config_path(cfg, BACKUP_CONF_FILE);
    if (fsprep_write_atomic(path, plan->pgbackrest_conf, strlen(plan->pgbackrest_conf), 0600,
                            owner, d) < 0)
        goto out;
    if (b->restore_from_cluster) {
        free(path);
        path = config_path(cfg, BACKUP_RESTORE_CONF_FILE);
        if (fsprep_write_atomic(path, plan->restore_conf, strlen(plan->restore_conf), 0600, owner,
                                d) < 0)
            goto out;
    }
    rc = FSPREP_OK;
out:
    free(path);
    free(dir);
    free(lock);
    return rc;
}

enum fsprep_status fsprep_check(const struct config *cfg, const struct run_user *u, bool as_root,
                                struct fsprep_plan *plan, struct diag *d)
{
    *plan = (struct fsprep_plan){
        .cfg = cfg, .user = u, .as_root = as_root,
        .tls = {{"ca.crt", 0644, NULL, 0}, {"server.crt", 0644, NULL, 0},
                {"server.key", 0600, NULL, 0}},
    };
    size_t errors_before = diag_error_count(d);
    bool exists;
    struct dir_spec data = data_dir_spec(cfg->pgdata);
    check_dir(&data, u, as_root, &exists, d);
    struct dir_spec run = {"RUN_DIR", cfg->run_dir, "run directory", 0700};
    bool run_ok = check_dir(&run, u, as_root, &exists, d) == FSPREP_OK && exists;
    if (run_ok) /* below a RUN_DIR that is not usable, nothing more is said */
        check_file_target(cfg, "patroni.yml", d);
    struct dir_spec sock = {NULL, FSPREP_SOCKET_DIR, "socket directory", 02775};
    check_dir(&sock, u, as_root, &exists, d);
    if (cfg->ssl_enabled) {
        char *tls = config_path(cfg, "tls");
        struct dir_spec t = {NULL, tls, "TLS directory (RUN_DIR/tls)", 0700};
        if (run_ok && check_dir(&t, u, as_root, &exists, d) == FSPREP_OK && exists)
            for (size_t i = 0; i < 3; i++) {
                char *rel = xasprintf("tls/%s", plan->tls[i].name);
                check_file_target(cfg, rel, d);
                free(rel);
            }
        free(tls);
        plan->tls_read = check_tls_sources(plan, d);
    }
    check_backup_files(plan, run_ok, d);
    plan->usable = diag_error_count(d) == errors_before;
    return plan->usable ? FSPREP_OK : FSPREP_UNUSABLE;
}

enum fsprep_status fsprep_apply(const struct fsprep_plan *plan, const char *patroni_yaml,
                                struct diag *d)
{
    const struct config *cfg = plan->cfg;
    const struct run_user *u = plan->user;
    bool as_root = plan->as_root;
    if (!plan->usable) {
        diag_error(d, "the files were not checked, or found unusable; nothing was changed");
        return FSPREP_FAILED;
    }
    const struct run_user *owner = as_root ? u : NULL;
    struct dir_spec run = {"RUN_DIR", cfg->run_dir, "run directory", 0700};
    struct dir_spec sock = {NULL, FSPREP_SOCKET_DIR, "socket directory", 02775};
    if (apply_data_dir(cfg->pgdata, u, as_root, NULL, d) != FSPREP_OK ||
        ensure_dir(&run, u, as_root, d) != FSPREP_OK || ensure_dir(&sock, u, as_root, d) != FSPREP_OK)
        return FSPREP_FAILED;

    enum fsprep_status rc = FSPREP_OK;
    char *path = NULL;
    if (cfg->ssl_enabled) {
        path = config_path(cfg, "tls");
        struct dir_spec t = {NULL, path, "TLS directory (RUN_DIR/tls)", 0700};
        if (ensure_dir(&t, u, as_root, d) != FSPREP_OK) {
            rc = FSPREP_FAILED;
            goto out;
        }
        for (size_t i = 0; i < 3; i++) {
            const struct fsprep_tls_file *f = &plan->tls[i];
            free(path);
            path = xasprintf("%s/tls/%s", cfg->run_dir, f->name);
            if (fsprep_write_atomic(path, f->data, f->len, f->mode, owner, d) < 0) {
                rc = FSPREP_FAILED;
                goto out;
            }
        }
    }
    free(path);
    path = NULL;
    /* pgBackRest's files before the Patroni configuration that names them */
    if (apply_backup_files(plan, owner, d) != FSPREP_OK) {
        rc = FSPREP_FAILED;
        goto out;
    }
    path = config_path(cfg, "patroni.yml");
    if (fsprep_write_atomic(path, patroni_yaml, strlen(patroni_yaml), 0600, owner, d) < 0)
        rc = FSPREP_FAILED;
out:
    free(path);
    return rc;
}

enum fsprep_status fsprep_run(const struct config *cfg, const struct run_user *u, bool as_root,
                              const char *patroni_yaml, struct diag *d)
{
    struct fsprep_plan plan;
    enum fsprep_status rc = fsprep_check(cfg, u, as_root, &plan, d);
    if (rc == FSPREP_OK)
        rc = fsprep_apply(&plan, patroni_yaml, d);
    fsprep_plan_free(&plan);
    return rc;
}
