/* Unit tests for the pure parts of leader.c and extensions.c: reading Patroni's answer, the
 * REST API URL, which member owns the extensions, which errors are retried, suggestions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "extensions.h"
#include "leader.h"

static enum patroni_status parse(const char *body, char *role, char *state, const char **why)
{
    return leader_parse_patroni(body, strlen(body), role, 64, state, 64, why);
}

static void patroni_answers(void **unused)
{
    (void)unused;
    char role[64], state[64];
    const char *why = "unset";
    assert_int_equal(parse("{\"state\":\"running\",\"role\":\"primary\",\"timeline\":2}", role,
                           state, &why),
                     PATRONI_LEADER);
    assert_null(why);
    assert_string_equal(role, "primary");
    assert_string_equal(state, "running");
    /* Patroni 3.x */
    assert_int_equal(parse("{\"state\":\"running\",\"role\":\"master\"}", role, state, &why),
                     PATRONI_LEADER);
    /* promoted but not running yet, replicas, standby leaders are not leaders */
    assert_int_equal(parse("{\"state\":\"starting\",\"role\":\"primary\"}", role, state, &why),
                     PATRONI_NOT_LEADER);
    assert_int_equal(parse("{\"state\":\"streaming\",\"role\":\"replica\"}", role, state, &why),
                     PATRONI_NOT_LEADER);
    assert_int_equal(parse("{\"state\":\"running\",\"role\":\"standby_leader\"}", role, state, &why),
                     PATRONI_NOT_LEADER);
    assert_null(why);
}

static void patroni_bad_answers(void **unused)
{
    (void)unused;
    const char *why = NULL;
    assert_int_equal(parse("<html>502</html>", NULL, NULL, &why), PATRONI_BAD_ANSWER);
    assert_string_equal(why, "answer is not a JSON object");
    assert_int_equal(parse("[1,2]", NULL, NULL, &why), PATRONI_BAD_ANSWER);
    assert_int_equal(parse("{\"role\":\"primary\"}", NULL, NULL, &why), PATRONI_BAD_ANSWER);
    assert_string_equal(why, "answer has no string \"role\" and \"state\"");
    assert_int_equal(parse("{\"role\":1,\"state\":\"running\"}", NULL, NULL, &why),
                     PATRONI_BAD_ANSWER);
    /* not NUL-terminated input is read only up to len */
    const char body[] = "{\"role\":\"primary\",\"state\":\"running\"}garbage";
    assert_int_equal(leader_parse_patroni(body, strlen(body) - 7, NULL, 0, NULL, 0, &why),
                     PATRONI_LEADER);
}

static void steady_states(void **unused)
{
    (void)unused;
    assert_true(leader_state_steady("running"));
    assert_true(leader_state_steady("streaming"));
    assert_true(leader_state_steady("in archive recovery"));
    assert_false(leader_state_steady("starting"));
    assert_false(leader_state_steady("initializing new cluster"));
    assert_false(leader_state_steady("creating replica"));
}

static void url_and_ownership(void **unused)
{
    (void)unused;
    struct config cfg;
    memset(&cfg, 0, sizeof cfg);
    char buf[128];
    cfg.api_port = 8008;
    cfg.listen_address = "0.0.0.0";
    assert_string_equal(leader_patroni_url(&cfg, buf, sizeof buf), "http://127.0.0.1:8008/patroni");
    cfg.listen_address = "127.0.10.2";
    assert_string_equal(leader_patroni_url(&cfg, buf, sizeof buf),
                        "http://127.0.10.2:8008/patroni");
    cfg.listen_address = "127.0.10.3,127.0.0.1";
    assert_string_equal(leader_patroni_url(&cfg, buf, sizeof buf),
                        "http://127.0.10.3:8008/patroni");
    cfg.listen_address = "::1";
    cfg.api_port = 9000;
    assert_string_equal(leader_patroni_url(&cfg, buf, sizeof buf), "http://[::1]:9000/patroni");
    cfg.listen_address = "::";
    assert_string_equal(leader_patroni_url(&cfg, buf, sizeof buf), "http://127.0.0.1:9000/patroni");
    assert_string_equal(leader_api_url(&cfg, "/config", buf, sizeof buf),
                        "http://127.0.0.1:9000/config");
    cfg.restapi_tls = true;
    assert_string_equal(leader_api_url(&cfg, "/config", buf, sizeof buf),
                        "https://127.0.0.1:9000/config");
    cfg.restapi_tls = false;

    cfg.citus_enabled = true;
    cfg.citus_group = 0;
    assert_true(leader_owns_extensions(&cfg));
    cfg.citus_group = 2;
    assert_false(leader_owns_extensions(&cfg));
    cfg.citus_enabled = false; /* every cluster's leader */
    assert_true(leader_owns_extensions(&cfg));
}

static void transient_errors(void **unused)
{
    (void)unused;
    assert_true(extensions_error_transient(NULL));      /* connection-level */
    assert_true(extensions_error_transient("08006"));   /* connection failure */
    assert_true(extensions_error_transient("57P03"));   /* starting up */
    assert_true(extensions_error_transient("55P03"));   /* lock timeout */
    assert_true(extensions_error_transient("25006"));   /* read-only: in recovery */
    assert_true(extensions_error_transient("3D000"));   /* database not created yet */
    assert_true(extensions_error_transient("23505"));   /* a concurrent CREATE won the race */
    assert_false(extensions_error_transient("58P01"));  /* control file missing */
    assert_false(extensions_error_transient("42501"));  /* insufficient privilege */
    assert_false(extensions_error_transient("42601"));  /* syntax error */
}

static void suggestions(void **unused)
{
    (void)unused;
    assert_int_equal(extensions_edit_distance("postgis", "postgis"), 0);
    assert_int_equal(extensions_edit_distance("postgis_topolgy", "postgis_topology"), 1);
    assert_int_equal(extensions_edit_distance("", "abc"), 3);
    assert_int_equal(extensions_edit_distance("kitten", "sitting"), 3);

    const char *available[] = {"plpgsql", "postgis", "postgis_raster", "postgis_topology",
                               "pg_partman", "citext", "hstore", "pg_trgm"};
    const char *best[3];
    size_t n = extensions_closest("postgis_topolgy", available, 8, best, 3);
    assert_int_equal(n, 3);
    assert_string_equal(best[0], "postgis_topology");
    n = extensions_closest("pg_partmann", available, 8, best, 3);
    assert_string_equal(best[0], "pg_partman");
    n = extensions_closest("hstor", available, 8, best, 1);
    assert_int_equal(n, 1);
    assert_string_equal(best[0], "hstore");
    /* fewer candidates than asked for */
    n = extensions_closest("x", available, 2, best, 3);
    assert_int_equal(n, 2);
    assert_int_equal(extensions_closest("x", available, 0, best, 3), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(patroni_answers),   cmocka_unit_test(patroni_bad_answers),
        cmocka_unit_test(steady_states),     cmocka_unit_test(url_and_ownership),
        cmocka_unit_test(transient_errors),  cmocka_unit_test(suggestions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
