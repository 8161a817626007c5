/* Test helper: the process environment -> Patroni YAML on stdout (no TLS checks, no files
 * written). Problems go to stderr, exit 78. `render_yaml --mask` masks the passwords.
 * Used by tests/unit/patroni_schema.py to validate the output with Patroni's own schema. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "render.h"

int main(int argc, char **argv)
{
    struct config cfg;
    struct diag d;
    diag_init(&d);
    int rc = config_load(&cfg, CONFIG_POD, env_lookup_process, NULL, &d);
    for (size_t i = 0; i < d.count; i++)
        fprintf(stderr, "%s\n", d.items[i].message);
    diag_free(&d);
    char *yaml = rc == 0 ? render_patroni_yaml(&cfg, argc > 1 && strcmp(argv[1], "--mask") == 0)
                         : NULL;
    config_free(&cfg);
    if (!yaml)
        return rc ? 78 : 70;
    fputs(yaml, stdout);
    free(yaml);
    return 0;
}
