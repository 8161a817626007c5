/* libFuzzer target: arbitrary environment and extension-list text through the configuration
 * loader, the extension-list parser, the TLS checks, the YAML renderer and the log formatter.
 *
 * Input: NAME=VALUE lines (the environment, laid over a valid base environment so that
 * deeper code is reached), then optionally a NUL byte and extension-list text.
 * Beyond "no crash, no leak, no UB" it checks properties: a rendered document parses back,
 * carries the superuser password unchanged (and only masked in masked mode), and every JSON
 * log line parses. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <yaml.h>

#include "config.h"
#include "log.h"
#include "render.h"
#include "tls.h"

#define MAX_VARS 128

static const char *const base_env[] = {
    "POD_NAME=citusdemo-0-1", "POD_IP=127.0.10.2", "CLUSTER_NAME=citusdemo", "CITUS_GROUP=0",
    "ETCD_HOSTS=127.0.0.1:2379", "SECRETS_DIR=/nonexistent/secrets",
    "SUPERUSER_PASSWORD=fuzz-super", "REPLICATION_PASSWORD=fuzz-repl",
    "RESTAPI_PASSWORD=fuzz-api",
    "PG_BIN_DIR=/bin", /* holds no postgres: tests/fuzz/run points it at a fake one */
    NULL,
};

struct env {
    const char *vars[MAX_VARS];
    size_t count;
};

/* Later entries win, like a pod spec's env list. */
static const char *lookup(const char *name, void *ctx)
{
    struct env *env = ctx;
    size_t n = strlen(name);
    for (size_t i = env->count; i-- > 0;)
        if (strncmp(env->vars[i], name, n) == 0 && env->vars[i][n] == '=')
            return env->vars[i] + n + 1;
    return NULL;
}

static yaml_node_t *child(yaml_document_t *doc, yaml_node_t *map, const char *key)
{
    if (!map || map->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        if (k && k->type == YAML_SCALAR_NODE && strcmp((char *)k->data.scalar.value, key) == 0)
            return yaml_document_get_node(doc, p->value);
    }
    return NULL;
}

/* The rendered text must parse and hold `password` at the superuser's password. */
static void check_document(const char *text, const char *password)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser))
        abort();
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, strlen(text));
    if (!yaml_parser_load(&parser, &doc)) {
        fprintf(stderr, "rendered YAML does not parse: %s\n", parser.problem);
        abort();
    }
    yaml_node_t *n = yaml_document_get_root_node(&doc);
    const char *path[] = {"postgresql", "authentication", "superuser", "password"};
    for (size_t i = 0; i < 4; i++)
        n = child(&doc, n, path[i]);
    if (!n || n->type != YAML_SCALAR_NODE || strcmp((char *)n->data.scalar.value, password) != 0) {
        fprintf(stderr, "superuser password did not round-trip\n");
        abort();
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
}

static void check_log_line(const char *msg, const char *value)
{
    char line[8192];
    const char *kv[] = {"value", value, NULL};
    int n = log_format_line(line, sizeof(line), LOG_FORMAT_JSON, "2026-01-01T00:00:00.000Z",
                            LOG_INFO, msg, kv);
    if (n < (int)sizeof(line)) {
        cJSON *obj = cJSON_Parse(line);
        if (!obj) {
            fprintf(stderr, "JSON log line does not parse: %s\n", line);
            abort();
        }
        cJSON_Delete(obj);
    }
    log_format_line(line, sizeof(line), LOG_FORMAT_LOGFMT, "t", LOG_WARN, msg, kv);
}

/* pgBackRest's configuration: every line a comment, a [section], empty, or key=value whose
 * value is not empty and has no white space at either end (pgBackRest would trim it). */
static void check_pgbackrest_conf(const struct config *cfg, bool for_restore)
{
    char *conf = render_pgbackrest_conf(cfg, for_restore);
    if (!conf) {
        fprintf(stderr, "a valid backup configuration failed to render\n");
        abort();
    }
    char *save = NULL;
    for (char *line = strtok_r(conf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        size_t n = strlen(line);
        char *eq = strchr(line, '=');
        if (line[0] == '#' || (line[0] == '[' && line[n - 1] == ']' && !eq))
            continue;
        if (!eq || eq == line || !eq[1] || strchr(" \t\r", eq[1]) || strchr(" \t\r", line[n - 1])) {
            fprintf(stderr, "pgbackrest.conf line not key=value: %s\n", line);
            abort();
        }
    }
    explicit_bzero(conf, strlen(conf));
    free(conf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    const char *extension_text = strlen(text) < size ? text + strlen(text) + 1 : NULL;

    struct env env = {.count = 0};
    for (const char *const *b = base_env; *b; b++)
        env.vars[env.count++] = *b;
    const char *fake_bin = getenv("FUZZ_PG_BIN_DIR");
    static char bin_var[512];
    if (fake_bin) {
        snprintf(bin_var, sizeof(bin_var), "PG_BIN_DIR=%s", fake_bin);
        env.vars[env.count++] = bin_var;
    }
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line && env.count < MAX_VARS;
         line = strtok_r(NULL, "\n", &save))
        if (strchr(line, '='))
            env.vars[env.count++] = line;

    const char *purpose_var = lookup("FUZZ_PURPOSE", &env);
    enum config_purpose purpose = purpose_var && *purpose_var == 'j' ? CONFIG_EXTENSIONS_JOB
                                                                     : CONFIG_POD;
    struct config cfg;
    struct diag d;
    diag_init(&d);
    int rc = config_load(&cfg, purpose, lookup, &env, &d);
    tls_check(&cfg, 1800000000, &d); /* also safe on a partly filled configuration */
    if (rc == 0) {
        char *yaml = render_patroni_yaml(&cfg, false);
        char *masked = render_patroni_yaml(&cfg, true);
        if (purpose == CONFIG_POD) {
            if (!yaml || !masked) {
                fprintf(stderr, "a valid configuration failed to render\n");
                abort();
            }
            check_document(yaml, cfg.superuser_password);
            check_document(masked, "********");
            if (cfg.backup.repo != BACKUP_REPO_NONE)
                check_pgbackrest_conf(&cfg, false);
            if (cfg.backup.restore_from_cluster)
                check_pgbackrest_conf(&cfg, true);
        }
        free(yaml);
        free(masked);
    }
    for (size_t i = 0; i < d.count; i++)
        check_log_line(d.items[i].message, cfg.pod_name ? cfg.pod_name : "");
    config_free(&cfg);

    if (extension_text) {
        struct extension_list list = {0};
        extension_list_parse(&list, extension_text, "fuzz", &d);
        for (size_t i = 0; i < list.count; i++)
            if (!extension_name_valid(list.items[i].name) ||
                (list.items[i].schema && !extension_name_valid(list.items[i].schema)))
                abort();
        extension_list_free(&list);
        check_log_line(extension_text, extension_text);
    }
    diag_free(&d);
    free(text);
    return 0;
}
