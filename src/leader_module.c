/* leader_module.c: find and load citus-init-leader.so (see leader_module.h). */
#include "leader_module.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "extensions.h"
#include "leader.h"
#include "log.h"

#ifndef CITUS_INIT_MODULE_DIR
#error "CITUS_INIT_MODULE_DIR (the module's install directory) must be defined by the build"
#endif

/* The table's types are the headers' declarations: a changed signature fails the build
 * here instead of misbehaving through a dlsym'd pointer. */
#define SAME_TYPE(fn, field)                                                                   \
    _Static_assert(__builtin_types_compatible_p(__typeof__(&fn),                              \
                                                __typeof__(((struct leader_module *)0)->field)), \
                   #fn " and leader_module." #field " differ")
SAME_TYPE(leader_watch_start, watch_start);
SAME_TYPE(leader_watch_stop, watch_stop);
SAME_TYPE(extensions_oneshot, oneshot);

/* dir_of_exe/LEADER_MODULE_FILE when that file exists, else install_dir/LEADER_MODULE_FILE.
 * exe may be NULL (unknown). NULL when the path does not fit. */
static char *module_path(const char *exe, const char *install_dir, char *buf, size_t size)
{
    const char *slash = exe ? strrchr(exe, '/') : NULL;
    if (slash) {
        int n = snprintf(buf, size, "%.*s/%s", (int)(slash - exe), exe, LEADER_MODULE_FILE);
        if (n >= 0 && (size_t)n < size && access(buf, F_OK) == 0)
            return buf;
    }
    int n = snprintf(buf, size, "%s/%s", install_dir, LEADER_MODULE_FILE);
    return n >= 0 && (size_t)n < size ? buf : NULL;
}

/* dlsym's void * into a function pointer without the cast ISO C leaves undefined. */
static int resolve(void *handle, const char *name, void *fn_ptr, size_t fn_size,
                   const char *path)
{
    dlerror();
    void *sym = dlsym(handle, name);
    if (!sym) {
        const char *why = dlerror();
        log_error("the leader module lacks an entry point; extensions cannot be created",
                  "module", path, "symbol", name, "error", why ? why : "null symbol", NULL);
        return -1;
    }
    memcpy(fn_ptr, &sym, fn_size);
    return 0;
}

int leader_module_load(struct leader_module *m)
{
    char exe[PATH_MAX], path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0)
        exe[n] = '\0';
    if (!module_path(n > 0 ? exe : NULL, CITUS_INIT_MODULE_DIR, path, sizeof path)) {
        log_error("the leader module's path is too long", "dir", CITUS_INIT_MODULE_DIR, NULL);
        return -1;
    }
    /* The module is linked with -z now: a core symbol the executable does not export fails
     * here, not mid-run. RTLD_LAZY keeps the libraries beneath it lazily bound (RTLD_NOW
     * would bind every function of libcurl, libpq, gnutls, Kerberos ... up front). */
    void *handle = dlopen(path, RTLD_LAZY | RTLD_LOCAL);
    if (!handle) {
        const char *why = dlerror();
        log_error("cannot load the leader module; extensions cannot be created", "module", path,
                  "error", why ? why : "unknown", NULL);
        return -1;
    }
    if (resolve(handle, "leader_watch_start", &m->watch_start, sizeof m->watch_start, path) < 0 ||
        resolve(handle, "leader_watch_stop", &m->watch_stop, sizeof m->watch_stop, path) < 0 ||
        resolve(handle, "extensions_oneshot", &m->oneshot, sizeof m->oneshot, path) < 0) {
        dlclose(handle);
        return -1;
    }
    log_debug("leader module loaded", "module", path, NULL);
    return 0;
}
