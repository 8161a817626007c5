/* tls.c: certificate checks before anything starts (see tls.h). Every problem is reported
 * with the file it concerns; key material never reaches a message. */
#include "tls.h"

#include "input.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define PEM_MAX_BYTES (1024 * 1024)
#define WARN_DAYS 30

/* The file's contents in a memory BIO, or NULL after reporting why not. The buffer is
 * wiped on free (it may hold the private key). */
struct pem_file {
    char *data;
    size_t len;
    BIO *bio;
};

static void pem_file_free(struct pem_file *f)
{
    BIO_free(f->bio);
    input_free_wiped(f->data, f->len);
    memset(f, 0, sizeof(*f));
}

static bool pem_file_open(struct pem_file *f, const char *path, const char *what, struct diag *d)
{
    memset(f, 0, sizeof(*f));
    int err = input_read_file(path, PEM_MAX_BYTES, &f->data, &f->len);
    if (err == ENOENT) {
        diag_error(d, "%s: does not exist; expected the %s (PEM) because SSL_ENABLED is true",
                   path, what);
    } else if (err == EFBIG || err == EISDIR || err == EINVAL) {
        diag_error(d, "%s: is not a regular file of at most %d bytes; expected the %s (PEM)",
                   path, PEM_MAX_BYTES, what);
    } else if (err) {
        diag_error(d, "%s: cannot be read (%s); expected a readable %s (PEM)", path,
                   strerror(err), what);
    }
    if (err)
        return false;
    f->bio = BIO_new_mem_buf(f->data, (int)f->len);
    if (!f->bio)
        abort();
    return true;
}

/* All certificates in a PEM file (a CA bundle, or a server certificate with its chain). */
static STACK_OF(X509) *read_certs(const char *path, const char *what, struct diag *d)
{
    struct pem_file f;
    if (!pem_file_open(&f, path, what, d))
        return NULL;
    STACK_OF(X509) *certs = sk_X509_new_null();
    X509 *x;
    while ((x = PEM_read_bio_X509(f.bio, NULL, NULL, NULL)))
        sk_X509_push(certs, x);
    unsigned long err = ERR_peek_last_error();
    bool clean_end = ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE;
    ERR_clear_error();
    pem_file_free(&f);
    if (sk_X509_num(certs) == 0 || !clean_end) {
        diag_error(d, "%s: cannot be parsed as PEM certificate%s; expected the %s in PEM format",
                   path, sk_X509_num(certs) ? "s (a later block is broken)" : "", what);
        sk_X509_pop_free(certs, X509_free);
        return NULL;
    }
    return certs;
}

/* Never prompt for a passphrase: an encrypted key cannot be used unattended. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1;
}

static EVP_PKEY *read_key(const char *path, struct diag *d)
{
    struct pem_file f;
    if (!pem_file_open(&f, path, "server key", d))
        return NULL;
    EVP_PKEY *key = PEM_read_bio_PrivateKey(f.bio, NULL, no_passphrase, NULL);
    ERR_clear_error();
    pem_file_free(&f);
    if (!key)
        diag_error(d, "%s: cannot be parsed as a PEM private key (or it is encrypted); expected "
                   "the unencrypted server key in PEM format", path);
    return key;
}

static void format_asn1_time(char *buf, size_t size, const ASN1_TIME *t)
{
    struct tm tm;
    if (!t || !ASN1_TIME_to_tm(t, &tm) || !strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm))
        snprintf(buf, size, "an unreadable date");
}

static void format_time(char *buf, size_t size, time_t t)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

/* Validity window at `now`, and a warning when fewer than WARN_DAYS days are left. */
static void check_validity(X509 *cert, const char *path, time_t now, struct diag *d)
{
    char when[64], at[64];
    time_t t = now;
    format_time(at, sizeof(at), now);
    const ASN1_TIME *not_before = X509_get0_notBefore(cert);
    const ASN1_TIME *not_after = X509_get0_notAfter(cert);
    int before = X509_cmp_time(not_before, &t), after = X509_cmp_time(not_after, &t);
    if (before == 0 || after == 0) {
        diag_error(d, "%s: has an unreadable validity date; expected a well-formed certificate",
                   path);
        return;
    }
    if (before > 0) {
        format_asn1_time(when, sizeof(when), not_before);
        diag_error(d, "%s: not valid before %s; expected a certificate valid now (%s)", path,
                   when, at);
        return;
    }
    if (after < 0) {
        format_asn1_time(when, sizeof(when), not_after);
        diag_error(d, "%s: expired on %s; expected a certificate valid now (%s)", path, when, at);
        return;
    }
    ASN1_TIME *now_asn1 = ASN1_TIME_set(NULL, now);
    int days = 0, secs = 0;
    if (now_asn1 && ASN1_TIME_diff(&days, &secs, now_asn1, not_after) && days < WARN_DAYS) {
        format_asn1_time(when, sizeof(when), not_after);
        diag_warn(d, "%s: expires on %s, in %d day%s; expected a renewed certificate before then",
                  path, when, days, days == 1 ? "" : "s");
    }
    ASN1_TIME_free(now_asn1);
}

/* libpq's rule: `*.rest` covers exactly one non-empty leftmost label; case-insensitive. */
static bool dns_name_matches(const char *pattern, const char *host)
{
    if (pattern[0] == '*' && pattern[1] == '.') {
        const char *suffix = pattern + 1; /* ".rest" */
        size_t plen = strlen(suffix), hlen = strlen(host);
        if (hlen <= plen || strcasecmp(host + hlen - plen, suffix) != 0)
            return false;
        return memchr(host, '.', hlen - plen) == NULL;
    }
    return strcasecmp(pattern, host) == 0;
}

/* The names a certificate has, for the message: the first few, then how many more. */
#define NAMES_SHOWN 6
struct name_list {
    char text[NAMES_SHOWN * 260];
    int count;
};

static void list_add(struct name_list *l, const char *kind, const char *value)
{
    if (l->count++ >= NAMES_SHOWN)
        return;
    size_t used = strlen(l->text);
    snprintf(l->text + used, sizeof(l->text) - used, "%s%s:%s", used ? ", " : "", kind, value);
}

static const char *list_text(struct name_list *l)
{
    if (l->count > NAMES_SHOWN) {
        size_t used = strlen(l->text);
        snprintf(l->text + used, sizeof(l->text) - used, " and %d more", l->count - NAMES_SHOWN);
        l->count = NAMES_SHOWN; /* appended once */
    }
    return l->text;
}

static void check_san(X509 *cert, const char *path, const char *host, struct diag *d)
{
    unsigned char ip[sizeof(struct in6_addr)];
    int ip_len = 0;
    if (inet_pton(AF_INET, host, ip) == 1)
        ip_len = 4;
    else if (inet_pton(AF_INET6, host, ip) == 1)
        ip_len = 16;

    struct name_list found = {.count = 0};
    found.text[0] = '\0';
    bool matched = false, has_san = false;
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        if (gn->type == GEN_DNS) {
            has_san = true;
            const ASN1_STRING *s = gn->d.dNSName;
            char name[256];
            int len = ASN1_STRING_length(s);
            if (len <= 0 || len >= (int)sizeof(name) ||
                memchr(ASN1_STRING_get0_data(s), '\0', (size_t)len))
                continue; /* an embedded NUL is an attack, not a name */
            memcpy(name, ASN1_STRING_get0_data(s), (size_t)len);
            name[len] = '\0';
            list_add(&found, "DNS", name);
            if (!ip_len && dns_name_matches(name, host))
                matched = true;
        } else if (gn->type == GEN_IPADD) {
            has_san = true;
            const ASN1_OCTET_STRING *s = gn->d.iPAddress;
            int len = ASN1_STRING_length(s);
            char text[INET6_ADDRSTRLEN] = "?";
            if (len == 4 || len == 16)
                inet_ntop(len == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(s), text,
                          sizeof(text));
            list_add(&found, "IP", text);
            if (ip_len && len == ip_len && memcmp(ASN1_STRING_get0_data(s), ip, (size_t)len) == 0)
                matched = true;
        }
    }
    GENERAL_NAMES_free(names);

    if (!has_san) {
        /* Like libpq: the common name counts only when there is no subjectAltName. */
        X509_NAME *subject = X509_get_subject_name(cert);
        int idx = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
        if (idx >= 0) {
            const ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, idx));
            char cn[256];
            int len = ASN1_STRING_length(s);
            if (len > 0 && len < (int)sizeof(cn) &&
                !memchr(ASN1_STRING_get0_data(s), '\0', (size_t)len)) {
                memcpy(cn, ASN1_STRING_get0_data(s), (size_t)len);
                cn[len] = '\0';
                list_add(&found, "CN", cn);
                matched = ip_len ? strcmp(cn, host) == 0 : dns_name_matches(cn, host);
            }
        }
    }
    if (!matched)
        diag_error(d, "%s: subjectAltName lacks %s:%s (the certificate has %s); expected a SAN "
                   "covering the name this pod is reached at, because SSL_MODE is verify-full",
                   path, ip_len ? "IP" : "DNS", host,
                   found.count ? list_text(&found) : "no subjectAltName or common name");
}

static void check_signed_by_ca(STACK_OF(X509) *chain, STACK_OF(X509) *cas, const char *path,
                               const char *ca_path, struct diag *d)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    STACK_OF(X509) *untrusted = sk_X509_new_null();
    if (!store || !ctx || !untrusted)
        abort();
    for (int i = 0; i < sk_X509_num(cas); i++)
        X509_STORE_add_cert(store, sk_X509_value(cas, i));
    for (int i = 1; i < sk_X509_num(chain); i++)
        sk_X509_push(untrusted, sk_X509_value(chain, i));
    X509 *leaf = sk_X509_value(chain, 0);
    if (!X509_STORE_CTX_init(ctx, store, leaf, untrusted))
        abort();
    /* Dates are checked (and reported) on their own. */
    X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_NO_CHECK_TIME);
    if (X509_verify_cert(ctx) != 1)
        diag_error(d, "%s: not signed by the CA in %s (%s); expected a certificate issued by "
                   "that CA", path, ca_path,
                   X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
    ERR_clear_error();
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    sk_X509_free(untrusted);
}

static char *join(const char *dir, const char *name)
{
    char *s;
    if (asprintf(&s, "%s/%s", dir, name) < 0)
        abort();
    return s;
}

void tls_check(const struct config *cfg, time_t now, struct diag *d)
{
    if (!cfg->ssl_enabled || !cfg->ssl_cert_dir)
        return;
    /* A database pod serves TLS; the extensions Job is only a client and needs the server
     * pair only to present it as client certificate. */
    bool need_pair = cfg->purpose == CONFIG_POD || cfg->ssl_client_cert;
    char *ca_path = join(cfg->ssl_cert_dir, "ca.crt");
    char *crt_path = join(cfg->ssl_cert_dir, "server.crt");
    char *key_path = join(cfg->ssl_cert_dir, "server.key");

    STACK_OF(X509) *cas = read_certs(ca_path, "CA certificate", d);
    STACK_OF(X509) *chain = need_pair ? read_certs(crt_path, "server certificate", d) : NULL;
    EVP_PKEY *key = need_pair ? read_key(key_path, d) : NULL;

    for (int i = 0; cas && i < sk_X509_num(cas); i++)
        check_validity(sk_X509_value(cas, i), ca_path, now, d);
    if (chain) {
        X509 *leaf = sk_X509_value(chain, 0);
        check_validity(leaf, crt_path, now, d);
        if (key && X509_check_private_key(leaf, key) != 1)
            diag_error(d, "%s: does not match the certificate in %s; expected the private key "
                       "of that certificate", key_path, crt_path);
        if (cas)
            check_signed_by_ca(chain, cas, crt_path, ca_path, d);
        if (cfg->purpose == CONFIG_POD && cfg->ssl_mode == SSL_MODE_VERIFY_FULL &&
            cfg->connect_host)
            check_san(leaf, crt_path, cfg->connect_host, d);
    }
    ERR_clear_error();

    EVP_PKEY_free(key);
    if (chain)
        sk_X509_pop_free(chain, X509_free);
    if (cas)
        sk_X509_pop_free(cas, X509_free);
    free(ca_path);
    free(crt_path);
    free(key_path);
}
