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

static bool data_top_correct(const struct stat *st, const struct run_user *u)
{
    return st->st_uid == u->uid && st->st_gid == u->gid &&
           (mode_is(st->st_mode, 0700) || mode_is(st->st_mode, 0750));
}

/* mkdir -p for the parents of path; the ones created belong to u (as root), mode 0700. */
static enum fsprep_status make_parents(const char *path, const struct run_user *u, bool as_root,
                                       struct diag *d)
{
    char *p = strdup(path);
    if (!p)
        abort();
    enum fsprep_status st = FSPREP_OK;
    char *slash = p;
    while ((slash = strchr(slash + 1, '/'))) {
        *slash = '\0';
        if (mkdir(p, 0700) == 0) {
            if (as_root && chown(p, u->uid, u->gid) < 0) {
                diag_error(d, "%s: cannot set the owner to %s: %s", p, u->name, strerror(errno));
                st = FSPREP_FAILED;
                break;
            }
        } else if (errno != EEXIST) {
            diag_error(d, "%s: cannot create the directory: %s", p, strerror(errno));
            st = as_root ? FSPREP_FAILED : FSPREP_UNUSABLE;
            break;
        }
        *slash = '/';
    }
    free(p);
    return st;
}

/* Non-root: nothing is chowned or chmodded, a private directory must already fit. */
static enum fsprep_status verify_own_dir(const char *path, const char *what, const struct stat *st,
                                         struct diag *d)
{
    if (st->st_uid != geteuid()) {
        diag_error(d, "%s: the %s is owned by uid %u, expected uid %u (citus-init runs as non-root "
                      "and cannot change it; fix the volume or the pod's securityContext)",
                   path, what, (unsigned)st->st_uid, (unsigned)geteuid());
        return FSPREP_UNUSABLE;
    }
    if (!mode_is(st->st_mode, 0700) && !mode_is(st->st_mode, 0750)) {
        diag_error(d, "%s: the %s has mode %04o, expected 0700 or 0750 (citus-init runs as non-root "
                      "and does not change it)",
                   path, what, (unsigned)(st->st_mode & 07777));
        return FSPREP_UNUSABLE;
    }
    if (access(path, R_OK | W_OK | X_OK) < 0) {
        diag_error(d, "%s: the %s is not writable by uid %u: %s", path, what, (unsigned)geteuid(),
                   strerror(errno));
        return FSPREP_UNUSABLE;
    }
    return FSPREP_OK;
}

/* Create or fix one directory that is not walked: owner u, exactly `mode`. */
static enum fsprep_status ensure_dir(const char *path, const char *what, mode_t mode,
                                     const struct run_user *u, bool as_root, struct diag *d)
{
    enum fsprep_status rc = make_parents(path, u, as_root, d);
    if (rc != FSPREP_OK)
        return rc;
    if (mkdir(path, 0700) < 0 && errno != EEXIST) {
        diag_error(d, "%s: cannot create the %s: %s", path, what, strerror(errno));
        return as_root ? FSPREP_FAILED : FSPREP_UNUSABLE;
    }
    struct stat st;
    if (stat(path, &st) < 0) {
        diag_error(d, "%s: cannot inspect the %s: %s", path, what, strerror(errno));
        return FSPREP_UNUSABLE;
    }
    if (!S_ISDIR(st.st_mode)) {
        diag_error(d, "%s: the %s exists but is not a directory", path, what);
        return FSPREP_UNUSABLE;
    }
    if (!as_root) {
        if (mode == 0700)
            return verify_own_dir(path, what, &st, d);
        /* A shared directory (the socket directory) only needs to be writable. */
        if (access(path, W_OK | X_OK) < 0) {
            diag_error(d, "%s: the %s is not writable by uid %u: %s", path, what,
                       (unsigned)geteuid(), strerror(errno));
            return FSPREP_UNUSABLE;
        }
        return FSPREP_OK;
    }
    if ((st.st_uid != u->uid || st.st_gid != u->gid) && chown(path, u->uid, u->gid) < 0) {
        diag_error(d, "%s: cannot set the owner of the %s to %s: %s", path, what, u->name,
                   strerror(errno));
        return FSPREP_FAILED;
    }
    /* chmod also after chown: chown clears the setgid bit of a directory on some systems. */
    if (!mode_is(st.st_mode, mode) || st.st_uid != u->uid || st.st_gid != u->gid) {
        if (chmod(path, mode) < 0) {
            diag_error(d, "%s: cannot set the mode of the %s to %04o: %s", path, what,
                       (unsigned)mode, strerror(errno));
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

enum fsprep_status fsprep_data_dir(const char *pgdata, const struct run_user *u, bool as_root,
                                   bool *recursed, struct diag *d)
{
    if (recursed)
        *recursed = false;
    struct stat st;
    if (stat(pgdata, &st) < 0) {
        if (errno != ENOENT) {
            diag_error(d, "PGDATA=%s: cannot inspect the data directory: %s", pgdata,
                       strerror(errno));
            return FSPREP_UNUSABLE;
        }
        return ensure_dir(pgdata, "data directory", 0700, u, as_root, d);
    }
    if (!S_ISDIR(st.st_mode)) {
        diag_error(d, "PGDATA=%s: exists but is not a directory", pgdata);
        return FSPREP_UNUSABLE;
    }
    if (!as_root)
        return verify_own_dir(pgdata, "data directory", &st, d);
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

/* ---- TLS copies ------------------------------------------------------------------- */

struct tls_copy {
    const char *name;
    mode_t mode;
    char *data;
    size_t len;
};

static int read_small_file(const char *path, char **data, size_t *len, struct diag *d)
{
    *data = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        diag_error(d, "%s: cannot read: %s", path, strerror(errno));
        return -1;
    }
    char *buf = malloc(TLS_FILE_MAX);
    if (!buf)
        abort();
    size_t have = 0;
    for (;;) {
        ssize_t n = read(fd, buf + have, TLS_FILE_MAX - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            diag_error(d, "%s: cannot read: %s", path, strerror(errno));
            break;
        }
        if (n == 0) {
            close(fd);
            *data = buf;
            *len = have;
            return 0;
        }
        have += (size_t)n;
        if (have == TLS_FILE_MAX) {
            diag_error(d, "%s: larger than %d bytes; expected a PEM file", path, TLS_FILE_MAX);
            break;
        }
    }
    close(fd);
    explicit_bzero(buf, have);
    free(buf);
    return -1;
}

static void free_copies(struct tls_copy *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (c[i].data)
            explicit_bzero(c[i].data, c[i].len);
        free(c[i].data);
        c[i].data = NULL;
    }
}

/* ---- everything ------------------------------------------------------------------- */

enum fsprep_status fsprep_run(const struct config *cfg, const struct run_user *u, bool as_root,
                              const char *patroni_yaml, struct diag *d)
{
    const struct run_user *owner = as_root ? u : NULL;
    struct tls_copy tls[] = {
        {"ca.crt", 0644, NULL, 0},
        {"server.crt", 0644, NULL, 0},
        {"server.key", 0600, NULL, 0},
    };
    const size_t n_tls = sizeof tls / sizeof tls[0];
    enum fsprep_status rc = FSPREP_OK;
    char *path = NULL;

    /* Read the sources before changing anything: a key we cannot read is a file problem. */
    for (size_t i = 0; cfg->ssl_enabled && i < n_tls; i++) {
        free(path);
        path = xasprintf("%s/%s", cfg->ssl_cert_dir, tls[i].name);
        if (read_small_file(path, &tls[i].data, &tls[i].len, d) < 0)
            rc = FSPREP_UNUSABLE;
    }
    if (rc != FSPREP_OK)
        goto out;

    if ((rc = fsprep_data_dir(cfg->pgdata, u, as_root, NULL, d)) != FSPREP_OK)
        goto out;
    if ((rc = ensure_dir(cfg->run_dir, "run directory (RUN_DIR)", 0700, u, as_root, d)) !=
        FSPREP_OK)
        goto out;
    if ((rc = ensure_dir(FSPREP_SOCKET_DIR, "socket directory", 02775, u, as_root, d)) !=
        FSPREP_OK)
        goto out;

    if (cfg->ssl_enabled) {
        free(path);
        path = config_path(cfg, "tls");
        if ((rc = ensure_dir(path, "TLS directory", 0700, u, as_root, d)) != FSPREP_OK)
            goto out;
        for (size_t i = 0; i < n_tls; i++) {
            free(path);
            path = xasprintf("%s/tls/%s", cfg->run_dir, tls[i].name);
            if (fsprep_write_atomic(path, tls[i].data, tls[i].len, tls[i].mode, owner, d) < 0) {
                rc = FSPREP_FAILED;
                goto out;
            }
        }
    }

    free(path);
    path = config_path(cfg, "patroni.yml");
    if (fsprep_write_atomic(path, patroni_yaml, strlen(patroni_yaml), 0600, owner, d) < 0)
        rc = FSPREP_FAILED;

out:
    free(path);
    free_copies(tls, n_tls);
    return rc;
}
