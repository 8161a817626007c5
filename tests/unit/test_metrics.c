/* Unit tests for metrics.c's pure parts (the text, the routing, a certificate's notAfter)
 * and for the monitoring role's SQL the build embeds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "monitoring.h"
#include "testutil.h"

#ifndef MONITORING_ROLE_SQL_PATH
#error "MONITORING_ROLE_SQL_PATH: the chart's monitoring-role.sql, set by meson"
#endif

static void text_without_certificates(void **state)
{
    (void)state;
    struct metrics_values v = {.restarts = 2, .start_time = 1796190000.25};
    char *t = metrics_render(&v);
    assert_string_equal(
        t,
        "# HELP citus_init_agent_restarts_total Restarts of citus-init's agent since the pod "
        "started.\n"
        "# TYPE citus_init_agent_restarts_total counter\n"
        "citus_init_agent_restarts_total 2\n"
        "# HELP citus_init_agent_start_time_seconds Start of this agent process, as unix time.\n"
        "# TYPE citus_init_agent_start_time_seconds gauge\n"
        "citus_init_agent_start_time_seconds 1796190000.250\n");
    free(t);
}

static void text_with_certificates(void **state)
{
    (void)state;
    struct metrics_values v = {.restarts = 0, .start_time = 1};
    v.cert_known[METRICS_CERT_SERVER] = true;
    v.cert_not_after[METRICS_CERT_SERVER] = 1830000000;
    v.cert_known[METRICS_CERT_CA] = true;
    v.cert_not_after[METRICS_CERT_CA] = 2000000000;
    char *t = metrics_render(&v);
    assert_non_null(strstr(t, "# TYPE citus_init_certificate_expiry_timestamp_seconds gauge\n"
                              "citus_init_certificate_expiry_timestamp_seconds{certificate="
                              "\"server\"} 1830000000\n"
                              "citus_init_certificate_expiry_timestamp_seconds{certificate="
                              "\"ca\"} 2000000000\n"));
    assert_null(strstr(t, "\"client\"")); /* without SSL_CLIENT_CERT */
    assert_non_null(strstr(t, "citus_init_agent_restarts_total 0\n"));
    v.cert_known[METRICS_CERT_CLIENT] = true;
    v.cert_not_after[METRICS_CERT_CLIENT] = 1830000000;
    free(t);
    t = metrics_render(&v);
    assert_non_null(strstr(t, "{certificate=\"client\"} 1830000000\n"));
    free(t);
}

#define ROUTE(text) metrics_route(text, strlen(text))

static void routing(void **state)
{
    (void)state;
    assert_int_equal(ROUTE("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), METRICS_ROUTE_METRICS);
    assert_int_equal(ROUTE("GET /metrics HTTP/1.0\n\n"), METRICS_ROUTE_METRICS);
    assert_int_equal(ROUTE("GET /metrics?name[]=x HTTP/1.1\r\n\r\n"), METRICS_ROUTE_METRICS);
    assert_int_equal(ROUTE("GET /patroni/metrics HTTP/1.1\r\n\r\n"), METRICS_ROUTE_PATRONI);
    assert_int_equal(ROUTE("GET / HTTP/1.1\r\n\r\n"), METRICS_ROUTE_NOT_FOUND);
    assert_int_equal(ROUTE("GET /metrics/ HTTP/1.1\r\n\r\n"), METRICS_ROUTE_NOT_FOUND);
    assert_int_equal(ROUTE("GET /metricsx HTTP/1.1\r\n\r\n"), METRICS_ROUTE_NOT_FOUND);
    assert_int_equal(ROUTE("GET /patroni HTTP/1.1\r\n\r\n"), METRICS_ROUTE_NOT_FOUND);
    assert_int_equal(ROUTE("POST /metrics HTTP/1.1\r\n\r\n"), METRICS_ROUTE_BAD_METHOD);
    assert_int_equal(ROUTE("HEAD /metrics HTTP/1.1\r\n\r\n"), METRICS_ROUTE_BAD_METHOD);
    assert_int_equal(ROUTE("GETS /metrics HTTP/1.1\r\n\r\n"), METRICS_ROUTE_BAD_METHOD);
    assert_int_equal(ROUTE("get /metrics HTTP/1.1\r\n\r\n"), METRICS_ROUTE_BAD_REQUEST);
    assert_int_equal(ROUTE("GET /metrics\r\n\r\n"), METRICS_ROUTE_BAD_REQUEST);
    assert_int_equal(ROUTE("GET /metrics SSH/2.0\r\n\r\n"), METRICS_ROUTE_BAD_REQUEST);
    assert_int_equal(ROUTE("GET  HTTP/1.1\r\n\r\n"), METRICS_ROUTE_BAD_REQUEST);
    assert_int_equal(ROUTE(" /metrics HTTP/1.1\r\n\r\n"), METRICS_ROUTE_BAD_REQUEST);
    assert_int_equal(ROUTE("\r\n\r\n"), METRICS_ROUTE_BAD_REQUEST);
    assert_int_equal(metrics_route("GET /metrics HTTP/1.1", 21), METRICS_ROUTE_BAD_REQUEST);
}

/* A self-signed certificate valid until not_after, as PEM in dir/name. */
static char *write_certificate(const char *dir, const char *name, time_t not_after)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    assert_non_null(key);
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
    ASN1_TIME_set(X509_getm_notBefore(x), not_after - 86400);
    ASN1_TIME_set(X509_getm_notAfter(x), not_after);
    X509_set_pubkey(x, key);
    X509_NAME *subject = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC, (const unsigned char *)"t", -1, -1, 0);
    X509_set_issuer_name(x, subject);
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(bio, x);
    char *pem;
    long len = BIO_get_mem_data(bio, &pem);
    char *path = write_file(dir, name, pem, (size_t)len);
    BIO_free(bio);
    X509_free(x);
    EVP_PKEY_free(key);
    return path;
}

static void certificate_not_after(void **state)
{
    (void)state;
    char *dir = make_temp_dir();
    char *path = write_certificate(dir, "server.crt", 1830000000);
    double t = 0;
    const char *problem = NULL;
    assert_true(metrics_cert_not_after(path, &t, &problem));
    assert_true(t == 1830000000.0);
    /* a year past 2049 (GeneralizedTime in the certificate) */
    free(path);
    path = write_certificate(dir, "ca.crt", 2600000000);
    assert_true(metrics_cert_not_after(path, &t, &problem));
    assert_true(t == 2600000000.0);
    free(path);
    path = write_file(dir, "garbage.crt", "not a certificate\n", 18);
    assert_false(metrics_cert_not_after(path, &t, &problem));
    assert_string_equal(problem, "no PEM certificate in the file");
    free(path);
    char *missing;
    assert_true(asprintf(&missing, "%s/missing.crt", dir) > 0);
    assert_false(metrics_cert_not_after(missing, &t, &problem));
    assert_string_equal(problem, "cannot read the file");
    free(missing);
    remove_tree(dir);
    free(dir);
}

/* The build embeds the chart's file byte for byte: one source for chart and agent. */
static void embedded_sql_is_the_charts_file(void **state)
{
    (void)state;
    FILE *f = fopen(MONITORING_ROLE_SQL_PATH, "rb");
    assert_non_null(f);
    static char file[1 << 20];
    size_t n = fread(file, 1, sizeof file - 1, f);
    fclose(f);
    file[n] = '\0';
    assert_true(n > 100);
    assert_int_equal(strlen(monitoring_role_sql), n);
    assert_memory_equal(monitoring_role_sql, file, n);
    assert_non_null(strstr(monitoring_role_sql, "GRANT pg_monitor TO " MONITORING_ROLE_NAME));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(text_without_certificates),
        cmocka_unit_test(text_with_certificates),
        cmocka_unit_test(routing),
        cmocka_unit_test(certificate_not_after),
        cmocka_unit_test(embedded_sql_is_the_charts_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
