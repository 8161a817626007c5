/* module.h: loading citus-init's own shared modules.
 *
 * The executable holds the core and the PID 1 part only (libc and libev), so PID 1 stays a
 * small supervisor. What needs heavier libraries lives in modules built beside it:
 * citus-init-prepare.so (certificate checks and the Patroni YAML: OpenSSL, libyaml), loaded
 * by the short-lived preparation child and by `check`, and citus-init-agent.so (the leader
 * duties: libcurl, libpq, cJSON), loaded by `citus-init agent` and `extensions --wait`.
 *
 * A module keeps no copy of the core: its references to log, diag and config functions
 * resolve against the executable (linked with --export-dynamic), so the log format and level
 * set by main apply to its lines too. */
#ifndef CITUS_INIT_MODULE_H
#define CITUS_INIT_MODULE_H

#include <stddef.h>

/* One entry point to resolve: fn_ptr points to a function pointer of fn_size bytes. */
struct module_symbol {
    const char *name;
    void *fn_ptr;
    size_t fn_size;
};

/* Load file (looked for next to the executable first, the build directory; else in the
 * directory compiled in, <prefix>/<libdir>/citus-init) and resolve every symbol. needed_for
 * says in the error what cannot happen without it. Returns 0, or -1 after logging the path
 * tried and the loader's reason. Never unloaded. */
int module_load(const char *file, const char *needed_for, const struct module_symbol *symbols,
                size_t count);

/* The table's types are the headers' declarations: a changed signature fails the build
 * where the table is filled instead of misbehaving through a dlsym'd pointer. */
#define MODULE_SAME_TYPE(fn, type, field)                                                      \
    _Static_assert(__builtin_types_compatible_p(__typeof__(&fn),                              \
                                                __typeof__(((type *)0)->field)),              \
                   #fn " and " #type "." #field " differ")

#endif
