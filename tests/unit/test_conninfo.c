/* The conninfo strings render.c writes (Citus' node_conninfo) read back with libpq's own
 * parser (PQconninfoParse): every path comes back exactly, whatever RUN_DIR holds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "config.h"
#include "render.h"
#include "testutil.h"

/* The scalar at a/b/c in the YAML text (keys separated by '/'), malloc'd, or NULL. */
static char *yaml_scalar_at(const char *text, const char *const *keys, size_t n)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser))
        abort();
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, strlen(text));
    if (!yaml_parser_load(&parser, &doc))
        abort();
    yaml_node_t *node = yaml_document_get_root_node(&doc);
    for (size_t k = 0; node && k < n; k++) {
        yaml_node_t *next = NULL;
        if (node->type != YAML_MAPPING_NODE)
            break;
        for (yaml_node_pair_t *p = node->data.mapping.pairs.start;
             p < node->data.mapping.pairs.top; p++) {
            yaml_node_t *key = yaml_document_get_node(&doc, p->key);
            if (key->type == YAML_SCALAR_NODE && strcmp((char *)key->data.scalar.value, keys[k]) == 0)
                next = yaml_document_get_node(&doc, p->value);
        }
        node = next;
    }
    char *out = node && node->type == YAML_SCALAR_NODE ? strdup((char *)node->data.scalar.value)
                                                       : NULL;
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return out;
}

/* keyword's value in conninfo as libpq parses it; fails the test on a parse error. */
static char *libpq_value(const char *conninfo, const char *keyword)
{
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &err);
    if (!opts)
        fail_msg("libpq cannot parse %s: %s", conninfo, err ? err : "?");
    char *value = NULL;
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if (strcmp(o->keyword, keyword) == 0 && o->val)
            value = strdup(o->val);
    PQconninfoFree(opts);
    return value;
}

static void paths_read_back_exactly(void **state)
{
    (void)state;
    static const char *const run_dirs[] = {
        "/run/citus-init", "/run/with space", "/run/two  spaces ", "/run/it's",
        "/run/back\\slash", "/run/mixed 'a\\b' c", "/run/trailing\\", "/run/\\'", "/run/=x y=z",
        "/run/ünïcode", /* control characters are refused in paths (test_config) */
    };
    for (size_t i = 0; i < sizeof run_dirs / sizeof run_dirs[0]; i++) {
        for (int client_cert = 0; client_cert <= 1; client_cert++) {
            struct fake_env env = {0};
            char *dir = make_pod_env(&env);
            fake_env_set(&env, "SSL_ENABLED", "true");
            fake_env_set(&env, "SSL_CLIENT_CERT", client_cert ? "true" : "false");
            fake_env_set(&env, "RUN_DIR", run_dirs[i]);
            struct config cfg;
            struct diag d;
            diag_init(&d);
            int rc = config_load(&cfg, CONFIG_POD, fake_env_lookup, &env, &d);
            if (rc != 0)
                diag_print(&d);
            assert_int_equal(rc, 0);

            char *conninfo = render_node_conninfo(&cfg);
            assert_non_null(conninfo);
            char *yaml = render_patroni_yaml(&cfg, true);
            assert_non_null(yaml);
            const char *const keys[] = {"postgresql", "parameters", "citus.node_conninfo"};
            char *rendered = yaml_scalar_at(yaml, keys, 3);
            assert_non_null(rendered);
            assert_string_equal(rendered, conninfo); /* the YAML holds exactly this string */

            static const char *const files[][2] = {
                {"sslrootcert", "tls/ca.crt"}, {"sslcert", "tls/server.crt"},
                {"sslkey", "tls/server.key"}};
            for (size_t k = 0; k < (client_cert ? 3u : 1u); k++) {
                char *want = config_path(&cfg, files[k][1]);
                char *got = libpq_value(rendered, files[k][0]);
                assert_non_null(got);
                assert_string_equal(got, want);
                free(got);
                free(want);
            }
            char *mode = libpq_value(rendered, "sslmode");
            assert_string_equal(mode, "verify-ca");
            free(mode);
            if (!client_cert)
                assert_null(libpq_value(rendered, "sslcert"));

            free(rendered);
            free(yaml);
            free(conninfo);
            config_free(&cfg);
            diag_free(&d);
            fake_env_free(&env);
            remove_tree(dir);
            free(dir);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(paths_read_back_exactly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
