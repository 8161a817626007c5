/* certs.c: replace the member's certificate copies when the mounted secret changes (certs.h). */
#include "certs.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ev.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "diag.h"
#include "fsprep.h"
#include "input.h"
#include "log.h"
#include "tls.h"
#include "xalloc.h"

#define CERT_FILE_MAX (1024 * 1024)

static const struct {
    const char *name;
    mode_t mode;
} files[] = {{"ca.crt", 0644}, {"server.crt", 0644}, {"server.key", 0600}};
#define N_FILES (sizeof files / sizeof files[0])

struct cert_watch {
    struct ev_loop *loop;
    const struct config *cfg;
    pid_t patroni;
    ev_stat watch[N_FILES];
    ev_timer settle;
    char *path[N_FILES];
    char *copy[N_FILES];
    cert_checked_fn on_checked;
    void *on_checked_ctx;
};

/* Whether every source equals its copy (a missing or unreadable file counts as different). */
static bool sources_match_copies(const struct cert_watch *w)
{
    for (size_t i = 0; i < N_FILES; i++) {
        char *a = NULL, *b = NULL;
        size_t alen = 0, blen = 0;
        bool same = input_read_file(w->path[i], CERT_FILE_MAX, &a, &alen) == 0 &&
                    input_read_file(w->copy[i], CERT_FILE_MAX, &b, &blen) == 0 && alen == blen &&
                    memcmp(a, b, alen) == 0;
        if (a)
            input_free_wiped(a, alen);
        if (b)
            input_free_wiped(b, blen);
        if (!same)
            return false;
    }
    return true;
}

/* "serial=… not_after=…" of a PEM certificate, for the log. */
static void describe(const char *pem, size_t len, char *serial, size_t ssize, char *until,
                     size_t usize)
{
    snprintf(serial, ssize, "unknown");
    snprintf(until, usize, "unknown");
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    if (x) {
        BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
        char *hex = bn ? BN_bn2hex(bn) : NULL;
        if (hex)
            snprintf(serial, ssize, "%s", hex);
        OPENSSL_free(hex);
        BN_free(bn);
        struct tm tm;
        if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1)
            strftime(until, usize, "%Y-%m-%dT%H:%M:%SZ", &tm);
        X509_free(x);
    }
    BIO_free(bio);
}

static void replace_copies(struct cert_watch *w)
{
    if (sources_match_copies(w))
        return;
    struct diag d;
    diag_init(&d);
    tls_check(w->cfg, time(NULL), &d);
    if (diag_error_count(&d)) {
        log_diag(&d);
        log_error("new certificates refused; the current ones stay", "dir",
                  w->cfg->ssl_cert_dir, NULL);
        diag_free(&d);
        return;
    }
    diag_free(&d);

    char *data[N_FILES] = {0};
    size_t len[N_FILES] = {0};
    bool ok = true;
    for (size_t i = 0; i < N_FILES && ok; i++) {
        int e = input_read_file(w->path[i], CERT_FILE_MAX, &data[i], &len[i]);
        if (e) {
            log_error("cannot read a new certificate file; the current ones stay", "path",
                      w->path[i], "error", strerror(e), NULL);
            ok = false;
        }
    }
    diag_init(&d);
    /* the key last: until it is in place the old key still matches the old certificate
     * for anything that reads both now (nothing does before the reload) */
    for (size_t i = 0; i < N_FILES && ok; i++)
        if (fsprep_write_atomic(w->copy[i], data[i], len[i], files[i].mode, NULL, &d) < 0)
            ok = false;
    log_diag(&d);
    diag_free(&d);
    char serial[80], until[32];
    if (ok)
        describe(data[1], len[1], serial, sizeof serial, until, sizeof until);
    for (size_t i = 0; i < N_FILES; i++)
        if (data[i])
            input_free_wiped(data[i], len[i]);
    if (!ok) {
        log_error("certificates not replaced", "dir", w->cfg->run_dir, NULL);
        return;
    }
    if (w->patroni > 0 && kill(w->patroni, SIGHUP) == 0) {
        log_info("certificates replaced; Patroni reloads PostgreSQL and the REST API",
                 "serial", serial, "not_after", until, NULL);
    } else if (w->patroni > 0) {
        log_error("certificates replaced, but Patroni could not be asked to reload", "serial",
                  serial, "error", strerror(errno), NULL);
    } else {
        log_info("certificates replaced; the supervised command is not Patroni, nothing "
                 "reloaded", "serial", serial, "not_after", until, NULL);
    }
}

static void on_settled(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop, (void)revents;
    struct cert_watch *w = t->data;
    replace_copies(w);
    if (w->on_checked)
        w->on_checked(w->on_checked_ctx);
}

void cert_watch_notify(struct cert_watch *w, cert_checked_fn fn, void *ctx)
{
    if (!w)
        return;
    w->on_checked = fn;
    w->on_checked_ctx = ctx;
}

static void on_change(struct ev_loop *loop, ev_stat *st, int revents)
{
    (void)revents;
    struct cert_watch *w = st->data;
    ev_timer_stop(loop, &w->settle);
    ev_timer_set(&w->settle, CERTS_SETTLE_S, 0.);
    ev_timer_start(loop, &w->settle);
}

struct cert_watch *cert_watch_start(struct ev_loop *loop, const struct config *cfg,
                                    pid_t patroni)
{
    if (!cfg->ssl_enabled)
        return NULL;
    struct cert_watch *w = calloc(1, sizeof *w);
    if (!w)
        abort();
    w->loop = loop;
    w->cfg = cfg;
    w->patroni = patroni;
    ev_timer_init(&w->settle, on_settled, CERTS_SETTLE_S, 0.);
    w->settle.data = w;
    for (size_t i = 0; i < N_FILES; i++) {
        w->path[i] = xasprintf("%s/%s", cfg->ssl_cert_dir, files[i].name);
        w->copy[i] = xasprintf("%s/tls/%s", cfg->run_dir, files[i].name);
        ev_stat_init(&w->watch[i], on_change, w->path[i], CERTS_POLL_S);
        w->watch[i].data = w;
        ev_stat_start(loop, &w->watch[i]);
    }
    /* A rotation while no agent ran (it was restarting) is caught up at once. */
    ev_timer_start(loop, &w->settle);
    return w;
}

void cert_watch_stop(struct cert_watch *w)
{
    if (!w)
        return;
    ev_timer_stop(w->loop, &w->settle);
    for (size_t i = 0; i < N_FILES; i++) {
        ev_stat_stop(w->loop, &w->watch[i]);
        free(w->path[i]);
        free(w->copy[i]);
    }
    free(w);
}
