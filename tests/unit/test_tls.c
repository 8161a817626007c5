/* Unit tests for tls.c: CA/certificate/key variants are generated here with OpenSSL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "config.h"
#include "testutil.h"
#include "tls.h"

#define NOW ((time_t)1800000000) /* 2027-01-15 08:00:00 UTC */
#define DAY 86400L
#define HOST "citusdemo-0-1.citusdemo-0-hl.default.svc.cluster.local"
#define DEFAULT_SAN "DNS:" HOST ",IP:127.0.10.2"

struct cert_spec {
    const char *cn;
    long not_before;   /* seconds relative to NOW */
    long not_after;
    const char *san;   /* NULL: no subjectAltName */
    bool ca;
};

static EVP_PKEY *new_key(void)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    assert_non_null(key);
    return key;
}

static void add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    assert_non_null(ext);
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
}

/* issuer NULL: self-signed with key. */
static X509 *new_cert(const struct cert_spec *s, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key)
{
    static long serial = 1;
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    time_t nb = NOW + s->not_before, na = NOW + s->not_after;
    ASN1_TIME_set(X509_getm_notBefore(x), nb);
    ASN1_TIME_set(X509_getm_notAfter(x), na);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)s->cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    if (s->ca) {
        add_ext(x, issuer ? issuer : x, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(x, issuer ? issuer : x, NID_key_usage, "critical,keyCertSign,cRLSign");
    }
    if (s->san)
        add_ext(x, issuer ? issuer : x, NID_subject_alt_name, s->san);
    assert_true(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
    return x;
}

struct fixture {
    char *dir;
    EVP_PKEY *ca_key, *key;
    X509 *ca;
    struct config cfg;
    struct diag d;
};

static void write_cert(struct fixture *f, const char *name, X509 *x)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", f->dir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    assert_true(PEM_write_X509(fp, x));
    fclose(fp);
}

static void write_key(struct fixture *f, EVP_PKEY *key, const char *passphrase)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/server.key", f->dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    if (passphrase)
        assert_true(PEM_write_PrivateKey(fp, key, EVP_aes_256_cbc(), NULL, 0, NULL,
                                         (void *)passphrase));
    else
        assert_true(PEM_write_PrivateKey(fp, key, NULL, NULL, 0, NULL, NULL));
    fclose(fp);
}

/* Writes server.crt for the spec, signed by the fixture's CA (or by the given one). */
static void write_server(struct fixture *f, const struct cert_spec *s, X509 *ca, EVP_PKEY *ca_key)
{
    X509 *x = new_cert(s, f->key, ca ? ca : f->ca, ca_key ? ca_key : f->ca_key);
    write_cert(f, "server.crt", x);
    X509_free(x);
}

static const struct cert_spec ca_spec = {"Test CA", -10 * DAY, 3650 * DAY, NULL, true};
static const struct cert_spec server_spec = {"citusdemo", -DAY, 365 * DAY, DEFAULT_SAN, false};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->dir = make_temp_dir();
    f->ca_key = new_key();
    f->key = new_key();
    f->ca = new_cert(&ca_spec, f->ca_key, NULL, NULL);
    write_cert(f, "ca.crt", f->ca);
    write_server(f, &server_spec, NULL, NULL);
    write_key(f, f->key, NULL);

    f->cfg.purpose = CONFIG_POD;
    f->cfg.ssl_enabled = true;
    f->cfg.ssl_mode = SSL_MODE_VERIFY_FULL;
    f->cfg.ssl_cert_dir = f->dir;
    f->cfg.connect_host = HOST;
    diag_init(&f->d);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    diag_free(&f->d);
    X509_free(f->ca);
    EVP_PKEY_free(f->ca_key);
    EVP_PKEY_free(f->key);
    remove_tree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static void check(struct fixture *f)
{
    diag_free(&f->d);
    tls_check(&f->cfg, NOW, &f->d);
}

static char *path_of(struct fixture *f, const char *name)
{
    char *p;
    if (asprintf(&p, "%s/%s", f->dir, name) < 0)
        abort();
    return p;
}

/* The one message of the run, with "@/" standing for the certificate directory. */
static void assert_only(struct fixture *f, int severity, const char *tmpl)
{
    char msg[1024] = "";
    for (const char *p = tmpl; *p; p++) {
        if (p[0] == '@' && p[1] == '/')
            strncat(msg, f->dir, sizeof(msg) - strlen(msg) - 1);
        else
            strncat(msg, p, 1);
    }
    assert_true(diag_has(&f->d, severity, msg));
    if (f->d.count != 1)
        diag_print(&f->d);
    assert_int_equal(f->d.count, 1);
}

static void valid_setup_has_no_findings(void **state)
{
    struct fixture *f = *state;
    check(f);
    diag_print(&f->d);
    assert_int_equal(f->d.count, 0);
}

static void nothing_checked_without_ssl(void **state)
{
    struct fixture *f = *state;
    f->cfg.ssl_enabled = false;
    f->cfg.ssl_cert_dir = "/nonexistent";
    check(f);
    assert_int_equal(f->d.count, 0);
}

static void missing_files_each_named(void **state)
{
    struct fixture *f = *state;
    f->cfg.ssl_cert_dir = "/nonexistent/tls";
    check(f);
    assert_true(diag_has(&f->d, DIAG_ERROR, "/nonexistent/tls/ca.crt: does not exist; expected the "
                         "CA certificate (PEM) because SSL_ENABLED is true"));
    assert_true(diag_has(&f->d, DIAG_ERROR, "/nonexistent/tls/server.crt: does not exist; expected "
                         "the server certificate (PEM) because SSL_ENABLED is true"));
    assert_true(diag_has(&f->d, DIAG_ERROR, "/nonexistent/tls/server.key: does not exist; expected "
                         "the server key (PEM) because SSL_ENABLED is true"));
    assert_int_equal(f->d.count, 3);
}

static void unparsable_certificate(void **state)
{
    struct fixture *f = *state;
    free(write_file(f->dir, "server.crt", "not a certificate\n", 18));
    check(f);
    assert_only(f, DIAG_ERROR, "@/server.crt: cannot be parsed as PEM certificate; expected the "
                "server certificate in PEM format");
}

static void broken_second_block_and_directory(void **state)
{
    struct fixture *f = *state;
    char *crt = path_of(f, "server.crt");
    FILE *fp = fopen(crt, "a");
    fputs("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n", fp);
    fclose(fp);
    free(crt);
    char *ca = path_of(f, "ca.crt");
    unlink(ca);
    mkdir(ca, 0700);
    free(ca);
    check(f);
    char msg[1024];
    snprintf(msg, sizeof(msg), "%s/server.crt: cannot be parsed as PEM certificates (a later block "
             "is broken); expected the server certificate in PEM format", f->dir);
    assert_true(diag_has(&f->d, DIAG_ERROR, msg));
    snprintf(msg, sizeof(msg), "%s/ca.crt: is not a regular file of at most 1048576 bytes; expected "
             "the CA certificate (PEM)", f->dir);
    assert_true(diag_has(&f->d, DIAG_ERROR, msg));
    assert_int_equal(f->d.count, 2);
}

static void unparsable_and_encrypted_keys(void **state)
{
    struct fixture *f = *state;
    const char *expected = "@/server.key: cannot be parsed as a PEM private key (or it is "
                           "encrypted); expected the unencrypted server key in PEM format";
    free(write_file(f->dir, "server.key", "-----BEGIN PRIVATE KEY-----\nAAAA\n", 33));
    check(f);
    assert_only(f, DIAG_ERROR, expected);
    write_key(f, f->key, "passphrase");
    check(f);
    assert_only(f, DIAG_ERROR, expected);
}

static void key_does_not_match_certificate(void **state)
{
    struct fixture *f = *state;
    EVP_PKEY *other = new_key();
    write_key(f, other, NULL);
    EVP_PKEY_free(other);
    check(f);
    assert_only(f, DIAG_ERROR, "@/server.key: does not match the certificate in @/server.crt; "
                "expected the private key of that certificate");
}

static void expired_certificate(void **state)
{
    struct fixture *f = *state;
    struct cert_spec s = server_spec;
    s.not_before = -30 * DAY;
    s.not_after = -DAY;
    write_server(f, &s, NULL, NULL);
    check(f);
    assert_only(f, DIAG_ERROR, "@/server.crt: expired on 2027-01-14 08:00:00 UTC; expected a "
                "certificate valid now (2027-01-15 08:00:00 UTC)");
}

static void not_yet_valid_certificate(void **state)
{
    struct fixture *f = *state;
    struct cert_spec s = server_spec;
    s.not_before = DAY;
    write_server(f, &s, NULL, NULL);
    check(f);
    assert_only(f, DIAG_ERROR, "@/server.crt: not valid before 2027-01-16 08:00:00 UTC; expected "
                "a certificate valid now (2027-01-15 08:00:00 UTC)");
}

static void expired_ca(void **state)
{
    struct fixture *f = *state;
    struct cert_spec s = ca_spec;
    s.not_after = -DAY;
    X509 *ca = new_cert(&s, f->ca_key, NULL, NULL);
    write_cert(f, "ca.crt", ca);
    X509_free(ca);
    check(f);
    assert_only(f, DIAG_ERROR, "@/ca.crt: expired on 2027-01-14 08:00:00 UTC; expected a "
                "certificate valid now (2027-01-15 08:00:00 UTC)");
}

static void expiring_soon_is_a_warning(void **state)
{
    struct fixture *f = *state;
    struct cert_spec s = server_spec;
    s.not_after = 10 * DAY + 3600;
    write_server(f, &s, NULL, NULL);
    check(f);
    assert_only(f, DIAG_WARNING, "@/server.crt: expires on 2027-01-25 09:00:00 UTC, in 10 days; "
                "expected a renewed certificate before then");
    assert_int_equal(diag_error_count(&f->d), 0);

    s.not_after = 31 * DAY;
    write_server(f, &s, NULL, NULL);
    check(f);
    assert_int_equal(f->d.count, 0);
}

static void signed_by_another_ca(void **state)
{
    struct fixture *f = *state;
    EVP_PKEY *other_key = new_key();
    struct cert_spec s = ca_spec;
    s.cn = "Other CA";
    X509 *other = new_cert(&s, other_key, NULL, NULL);
    write_server(f, &server_spec, other, other_key);
    check(f);
    assert_only(f, DIAG_ERROR, "@/server.crt: not signed by the CA in @/ca.crt (unable to get "
                "local issuer certificate); expected a certificate issued by that CA");

    /* a bundle holding both CAs is fine */
    char *ca_path = path_of(f, "ca.crt");
    FILE *fp = fopen(ca_path, "w");
    assert_true(PEM_write_X509(fp, f->ca) && PEM_write_X509(fp, other));
    fclose(fp);
    free(ca_path);
    check(f);
    assert_int_equal(f->d.count, 0);
    X509_free(other);
    EVP_PKEY_free(other_key);
}

static void san_missing_names_the_host(void **state)
{
    struct fixture *f = *state;
    f->cfg.connect_host = "citusdemo-1-0.citusdemo-1-hl.default.svc.cluster.local";
    check(f);
    assert_only(f, DIAG_ERROR, "@/server.crt: subjectAltName lacks "
                "DNS:citusdemo-1-0.citusdemo-1-hl.default.svc.cluster.local (the certificate has "
                "DNS:" HOST ", IP:127.0.10.2); expected a SAN covering the name this pod is "
                "reached at, because SSL_MODE is verify-full");

    /* only verify-full checks names */
    f->cfg.ssl_mode = SSL_MODE_VERIFY_CA;
    check(f);
    assert_int_equal(f->d.count, 0);
}

static void san_list_is_shortened(void **state)
{
    struct fixture *f = *state;
    struct cert_spec s = server_spec;
    s.san = "DNS:a1,DNS:a2,DNS:a3,DNS:a4,DNS:a5,DNS:a6,DNS:a7,IP:10.0.0.1";
    write_server(f, &s, NULL, NULL);
    check(f);
    assert_only(f, DIAG_ERROR, "@/server.crt: subjectAltName lacks DNS:" HOST " (the certificate "
                "has DNS:a1, DNS:a2, DNS:a3, DNS:a4, DNS:a5, DNS:a6 and 2 more); expected a SAN "
                "covering the name this pod is reached at, because SSL_MODE is verify-full");
}

static void san_wildcard_covers_one_label(void **state)
{
    struct fixture *f = *state;
    struct cert_spec s = server_spec;
    s.san = "DNS:*.citusdemo-0-hl.default.svc.cluster.local";
    write_server(f, &s, NULL, NULL);
    check(f);
    assert_int_equal(f->d.count, 0);

    f->cfg.connect_host = "CitusDemo-0-1.citusdemo-0-hl.default.svc.cluster.LOCAL";
    check(f);
    assert_int_equal(f->d.count, 0);

    f->cfg.connect_host = "a.b.citusdemo-0-hl.default.svc.cluster.local";
    check(f);
    assert_only(f, DIAG_ERROR, "@/server.crt: subjectAltName lacks "
                "DNS:a.b.citusdemo-0-hl.default.svc.cluster.local (the certificate has "
                "DNS:*.citusdemo-0-hl.default.svc.cluster.local); expected a SAN covering the name "
                "this pod is reached at, because SSL_MODE is verify-full");

    f->cfg.connect_host = "citusdemo-0-hl.default.svc.cluster.local";
    check(f);
    assert_int_equal(diag_error_count(&f->d), 1);
}

static void san_ip_address(void **state)
{
    struct fixture *f = *state;
    f->cfg.connect_host = "127.0.10.2";
    check(f);
    assert_int_equal(f->d.count, 0);

    f->cfg.connect_host = "127.0.10.9";
    check(f);
    assert_only(f, DIAG_ERROR, "@/server.crt: subjectAltName lacks IP:127.0.10.9 (the certificate "
                "has DNS:" HOST ", IP:127.0.10.2); expected a SAN covering the name this pod is "
                "reached at, because SSL_MODE is verify-full");
}

static void common_name_only_without_san(void **state)
{
    struct fixture *f = *state;
    struct cert_spec s = server_spec;
    s.san = NULL;
    s.cn = HOST;
    write_server(f, &s, NULL, NULL);
    check(f);
    assert_int_equal(f->d.count, 0);

    f->cfg.connect_host = "other.example";
    check(f);
    assert_only(f, DIAG_ERROR, "@/server.crt: subjectAltName lacks DNS:other.example (the "
                "certificate has CN:" HOST "); expected a SAN covering the name this pod is "
                "reached at, because SSL_MODE is verify-full");
}

static void extensions_job_needs_only_the_ca(void **state)
{
    struct fixture *f = *state;
    char *crt = path_of(f, "server.crt"), *key = path_of(f, "server.key");
    unlink(crt);
    unlink(key);
    f->cfg.purpose = CONFIG_EXTENSIONS_JOB;
    f->cfg.connect_host = NULL;
    check(f);
    assert_int_equal(f->d.count, 0);

    f->cfg.ssl_client_cert = true; /* then it presents server.crt/server.key */
    check(f);
    assert_int_equal(diag_error_count(&f->d), 2);
    free(crt);
    free(key);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(valid_setup_has_no_findings),
        T(nothing_checked_without_ssl),
        T(missing_files_each_named),
        T(unparsable_certificate),
        T(broken_second_block_and_directory),
        T(unparsable_and_encrypted_keys),
        T(key_does_not_match_certificate),
        T(expired_certificate),
        T(not_yet_valid_certificate),
        T(expired_ca),
        T(expiring_soon_is_a_warning),
        T(signed_by_another_ca),
        T(san_missing_names_the_host),
        T(san_list_is_shortened),
        T(san_wildcard_covers_one_label),
        T(san_ip_address),
        T(common_name_only_without_san),
        T(extensions_job_needs_only_the_ca),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
