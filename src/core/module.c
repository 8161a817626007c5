/* module.c: find and load one of citus-init's modules (see module.h). */
#include "module.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

#ifndef CITUS_INIT_MODULE_DIR
#error "CITUS_INIT_MODULE_DIR (the modules' install directory) must be defined by the build"
#endif

/* dir_of_exe/file when that file exists, else install_dir/file. exe may be NULL (unknown).
 * NULL when the path does not fit. */
static char *module_path(const char *exe, const char *install_dir, const char *file, char *buf,
                         size_t size)
{
    const char *slash = exe ? strrchr(exe, '/') : NULL;
    if (slash) {
        int n = snprintf(buf, size, "%.*s/%s", (int)(slash - exe), exe, file);
        if (n >= 0 && (size_t)n < size && access(buf, F_OK) == 0)
            return buf;
    }
    int n = snprintf(buf, size, "%s/%s", install_dir, file);
    return n >= 0 && (size_t)n < size ? buf : NULL;
}

int module_load(const char *file, const char *needed_for, const struct module_symbol *symbols,
                size_t count)
{
    char exe[PATH_MAX], path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0)
        exe[n] = '\0';
    if (!module_path(n > 0 ? exe : NULL, CITUS_INIT_MODULE_DIR, file, path, sizeof path)) {
        log_error("the module's path is too long", "dir", CITUS_INIT_MODULE_DIR, "module", file,
                  NULL);
        return -1;
    }
    /* Modules are linked with -z now: a core symbol the executable does not export fails
     * here, not mid-run. RTLD_LAZY keeps the libraries beneath it lazily bound (RTLD_NOW
     * would bind every function of libcurl, libpq, gnutls, Kerberos ... up front). */
    void *handle = dlopen(path, RTLD_LAZY | RTLD_LOCAL);
    if (!handle) {
        const char *why = dlerror();
        log_error("cannot load a module of citus-init", "module", path, "needed_for",
                  needed_for, "error", why ? why : "unknown", NULL);
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        dlerror();
        void *sym = dlsym(handle, symbols[i].name);
        if (!sym) {
            const char *why = dlerror();
            log_error("a module of citus-init lacks an entry point", "module", path, "symbol",
                      symbols[i].name, "needed_for", needed_for, "error",
                      why ? why : "null symbol", NULL);
            dlclose(handle);
            return -1;
        }
        /* dlsym's void * into a function pointer without the cast ISO C leaves undefined */
        memcpy(symbols[i].fn_ptr, &sym, symbols[i].fn_size);
    }
    log_debug("module loaded", "module", path, NULL);
    return 0;
}
