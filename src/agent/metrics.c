/* metrics.c: the agent's HTTP endpoint in a thread of its own (metrics.h).
 *
 * Why a thread and blocking sockets rather than watchers on the agent's loop: the loop's
 * callbacks may block (a libpq call, a wait for pgBackRest's lock), and a scrape must still be
 * answered within a second. The thread shares only the values of GET /metrics (under a
 * mutex) and the configuration (read only). Connections are served one after the other, each
 * bounded in size and time, so a slow client holds the next scrape back by at most
 * METRICS_IO_TIMEOUT_MS twice, never the agent. */
#include "metrics.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "input.h"
#include "leader.h"
#include "log.h"
#include "xalloc.h"

#define TEXT_FORMAT "text/plain; version=0.0.4; charset=utf-8"

static const char *const cert_label[METRICS_CERT_COUNT] = {"server", "ca", "client"};

struct metrics_server {
    const struct config *cfg;
    pthread_t thread;
    int stop_pipe[2];        /* written by metrics_stop: the thread's poll wakes */
    pthread_mutex_t lock;    /* values */
    struct metrics_values values;
    char address[300];       /* host:port, for the log */
    char patroni_url[300];
    char *ca_file;           /* RESTAPI_TLS: RUN_DIR/tls/ca.crt */
    CURL *curl;              /* the thread's own */
};

/* Held by the thread while libcurl works, and by fork (pthread_atfork): a child never
 * starts with a lock inside libcurl or OpenSSL held by a thread it does not have. */
static pthread_mutex_t fork_guard = PTHREAD_MUTEX_INITIALIZER;
static void fork_prepare(void) { pthread_mutex_lock(&fork_guard); }
static void fork_after(void) { pthread_mutex_unlock(&fork_guard); }

/* ------------------------------------------------------------------ pure helpers */

struct text {
    char *buf;
    size_t len, cap;
};

static void text_add(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text_add(struct text *t, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            abort();
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        t->cap = (t->cap + (size_t)n + 1) * 2;
        char *bigger = realloc(t->buf, t->cap);
        if (!bigger)
            abort();
        t->buf = bigger;
    }
}

char *metrics_render(const struct metrics_values *v)
{
    struct text t = {xmalloc(1024), 0, 1024};
    t.buf[0] = '\0';
    bool any_cert = false;
    for (int i = 0; i < METRICS_CERT_COUNT; i++)
        any_cert |= v->cert_known[i];
    if (any_cert) {
        text_add(&t, "# HELP citus_init_certificate_expiry_timestamp_seconds notAfter of a "
                     "certificate the pod serves or trusts, as unix time.\n"
                     "# TYPE citus_init_certificate_expiry_timestamp_seconds gauge\n");
        for (int i = 0; i < METRICS_CERT_COUNT; i++)
            if (v->cert_known[i])
                text_add(&t, "citus_init_certificate_expiry_timestamp_seconds{certificate=\"%s\"}"
                             " %.0f\n", cert_label[i], v->cert_not_after[i]);
    }
    text_add(&t, "# HELP citus_init_agent_restarts_total Restarts of citus-init's agent since "
                 "the pod started.\n"
                 "# TYPE citus_init_agent_restarts_total counter\n"
                 "citus_init_agent_restarts_total %lu\n"
                 "# HELP citus_init_agent_start_time_seconds Start of this agent process, as "
                 "unix time.\n"
                 "# TYPE citus_init_agent_start_time_seconds gauge\n"
                 "citus_init_agent_start_time_seconds %.3f\n",
             v->restarts, v->start_time);
    return t.buf;
}

enum metrics_route metrics_route(const char *head, size_t len)
{
    const char *eol = memchr(head, '\n', len);
    if (!eol)
        return METRICS_ROUTE_BAD_REQUEST;
    size_t line = (size_t)(eol - head);
    if (line && head[line - 1] == '\r')
        line--;
    /* METHOD SP target SP HTTP/x.y */
    const char *sp1 = memchr(head, ' ', line);
    if (!sp1 || sp1 == head)
        return METRICS_ROUTE_BAD_REQUEST;
    const char *target = sp1 + 1;
    const char *sp2 = memchr(target, ' ', (size_t)(head + line - target));
    if (!sp2 || sp2 == target || (size_t)(head + line - sp2 - 1) < 8 ||
        memcmp(sp2 + 1, "HTTP/1.", 7) != 0)
        return METRICS_ROUTE_BAD_REQUEST;
    for (const char *p = head; p < sp1; p++)
        if (*p < 'A' || *p > 'Z')
            return METRICS_ROUTE_BAD_REQUEST;
    size_t method_len = (size_t)(sp1 - head);
    if (method_len != 3 || memcmp(head, "GET", 3) != 0)
        return METRICS_ROUTE_BAD_METHOD;
    size_t path_len = (size_t)(sp2 - target);
    const char *q = memchr(target, '?', path_len);
    if (q)
        path_len = (size_t)(q - target);
    if (path_len == 8 && memcmp(target, "/metrics", 8) == 0)
        return METRICS_ROUTE_METRICS;
    if (path_len == 16 && memcmp(target, "/patroni/metrics", 16) == 0)
        return METRICS_ROUTE_PATRONI;
    return METRICS_ROUTE_NOT_FOUND;
}

bool metrics_cert_not_after(const char *path, double *not_after, const char **problem)
{
    char *pem = NULL;
    size_t len = 0;
    int e = input_read_file(path, 1024 * 1024, &pem, &len);
    if (e) {
        *problem = "cannot read the file";
        return false;
    }
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    bool ok = false;
    struct tm tm;
    if (!x) {
        *problem = "no PEM certificate in the file";
    } else if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) != 1) {
        *problem = "the certificate's notAfter cannot be read";
    } else {
        *not_after = (double)timegm(&tm);
        ok = true;
    }
    X509_free(x);
    BIO_free(bio);
    free(pem);
    return ok;
}

/* ------------------------------------------------------------------ certificates */

void metrics_refresh_certificates(struct metrics_server *m)
{
    if (!m || !m->cfg->ssl_enabled)
        return;
    static const char *const file[METRICS_CERT_COUNT] = {"tls/server.crt", "tls/ca.crt",
                                                         "tls/server.crt"};
    struct metrics_values v = {0};
    for (int i = 0; i < METRICS_CERT_COUNT; i++) {
        if (i == METRICS_CERT_CLIENT && !m->cfg->ssl_client_cert)
            continue; /* members present their server certificate as the client's */
        char *path = config_path(m->cfg, file[i]);
        const char *problem = NULL;
        v.cert_known[i] = metrics_cert_not_after(path, &v.cert_not_after[i], &problem);
        if (!v.cert_known[i])
            log_warn("certificate expiry not exported", "certificate", cert_label[i], "path",
                     path, "error", problem, NULL);
        free(path);
    }
    pthread_mutex_lock(&m->lock);
    memcpy(m->values.cert_known, v.cert_known, sizeof v.cert_known);
    memcpy(m->values.cert_not_after, v.cert_not_after, sizeof v.cert_not_after);
    pthread_mutex_unlock(&m->lock);
}

/* ------------------------------------------------------------------ HTTP */

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Wait for fd (events) until deadline (mono_ms); false on timeout or error. */
static bool wait_fd(int fd, short events, double deadline)
{
    for (;;) {
        double left = deadline - mono_ms();
        if (left <= 0)
            return false;
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, (int)left + 1);
        if (n < 0 && errno == EINTR)
            continue;
        return n > 0 && !(p.revents & POLLNVAL);
    }
}

static void send_all(int fd, const char *data, size_t len, double deadline)
{
    while (len) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!wait_fd(fd, POLLOUT, deadline))
                return;
            continue;
        }
        if (n <= 0)
            return;
        data += n;
        len -= (size_t)n;
    }
}

static void respond(int fd, int status, const char *reason, const char *content_type,
                    const char *extra_header, const char *body, size_t body_len)
{
    char head[512];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
                     "Connection: close\r\n\r\n",
                     status, reason, content_type, body_len, extra_header ? extra_header : "");
    double deadline = mono_ms() + METRICS_IO_TIMEOUT_MS;
    send_all(fd, head, (size_t)n, deadline);
    send_all(fd, body, body_len, deadline);
}

static void respond_text(int fd, int status, const char *reason, const char *extra_header,
                         const char *line)
{
    respond(fd, status, reason, "text/plain; charset=utf-8", extra_header, line, strlen(line));
}

struct body {
    char *data;
    size_t len;
    bool too_big;
};

static size_t on_patroni_body(char *data, size_t size, size_t nmemb, void *userp)
{
    struct body *b = userp;
    size_t n = size * nmemb;
    if (b->len + n > METRICS_PATRONI_BODY_MAX) {
        b->too_big = true;
        return 0; /* ends the transfer */
    }
    char *bigger = realloc(b->data, b->len + n + 1);
    if (!bigger)
        abort();
    b->data = bigger;
    memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

/* Failures of the connection itself, before any answer: Patroni's REST API resets one
 * now and then (also seen with curl alone), more often just after it reloaded its
 * certificate. Worth a second try within the time left. */
static bool connection_failed(CURLcode rc)
{
    return rc == CURLE_COULDNT_CONNECT || rc == CURLE_SSL_CONNECT_ERROR ||
           rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR || rc == CURLE_GOT_NOTHING;
}

static void serve_patroni(struct metrics_server *m, int fd)
{
    struct body b = {0};
    curl_easy_setopt(m->curl, CURLOPT_WRITEFUNCTION, on_patroni_body);
    curl_easy_setopt(m->curl, CURLOPT_WRITEDATA, &b);
    pthread_mutex_lock(&fork_guard);
    double started = mono_ms();
    CURLcode rc = curl_easy_perform(m->curl);
    double left = METRICS_PATRONI_TIMEOUT_MS - (mono_ms() - started);
    if (connection_failed(rc) && b.len == 0 && left >= METRICS_PATRONI_TIMEOUT_MS / 2) {
        curl_easy_setopt(m->curl, CURLOPT_TIMEOUT_MS, (long)left);
        rc = curl_easy_perform(m->curl);
        curl_easy_setopt(m->curl, CURLOPT_TIMEOUT_MS, METRICS_PATRONI_TIMEOUT_MS);
    }
    long code = 0;
    char *type = NULL;
    if (rc == CURLE_OK) {
        curl_easy_getinfo(m->curl, CURLINFO_RESPONSE_CODE, &code);
        char *t = NULL;
        curl_easy_getinfo(m->curl, CURLINFO_CONTENT_TYPE, &t);
        type = t ? xstrdup(t) : NULL;
    }
    pthread_mutex_unlock(&fork_guard);
    if (rc != CURLE_OK || code < 100 || code > 599) {
        char line[700];
        snprintf(line, sizeof line, "Patroni REST API not answering at %s: %s\n", m->patroni_url,
                 b.too_big ? "answer larger than 4 MiB" : curl_easy_strerror(rc));
        respond_text(fd, 503, "Service Unavailable", NULL, line);
    } else {
        /* Patroni's status line reason is not kept: the code says it */
        respond(fd, (int)code, code == 200 ? "OK" : "Patroni", type ? type : "text/plain",
                NULL, b.data ? b.data : "", b.len);
    }
    free(type);
    free(b.data);
}

static void serve(struct metrics_server *m, int fd)
{
    char head[METRICS_REQUEST_MAX];
    size_t have = 0;
    double deadline = mono_ms() + METRICS_IO_TIMEOUT_MS;
    bool complete = false;
    while (!complete && have < sizeof head) {
        ssize_t n = recv(fd, head + have, sizeof head - have, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!wait_fd(fd, POLLIN, deadline))
                return; /* too slow: closed without an answer */
            continue;
        }
        if (n <= 0)
            return;
        size_t from = have >= 3 ? have - 3 : 0;
        have += (size_t)n;
        for (size_t i = from; i + 1 < have && !complete; i++)
            complete = (head[i] == '\n' && head[i + 1] == '\n') ||
                       (i + 3 < have && memcmp(head + i, "\r\n\r\n", 4) == 0);
    }
    if (!complete) {
        respond_text(fd, 431, "Request Header Fields Too Large", NULL,
                     "request head larger than 8 KiB\n");
        return;
    }
    switch (metrics_route(head, have)) {
    case METRICS_ROUTE_METRICS: {
        pthread_mutex_lock(&m->lock);
        struct metrics_values v = m->values;
        pthread_mutex_unlock(&m->lock);
        char *body = metrics_render(&v);
        respond(fd, 200, "OK", TEXT_FORMAT, NULL, body, strlen(body));
        free(body);
        break;
    }
    case METRICS_ROUTE_PATRONI:
        serve_patroni(m, fd);
        break;
    case METRICS_ROUTE_NOT_FOUND:
        respond_text(fd, 404, "Not Found", NULL,
                     "not found; this endpoint serves /metrics and /patroni/metrics\n");
        break;
    case METRICS_ROUTE_BAD_METHOD:
        respond_text(fd, 405, "Method Not Allowed", "Allow: GET\r\n", "only GET is served\n");
        break;
    case METRICS_ROUTE_BAD_REQUEST:
        respond_text(fd, 400, "Bad Request", NULL, "not an HTTP/1.x request\n");
        break;
    }
}

/* A listening socket on LISTEN_ADDRESS:AGENT_METRICS_PORT, or -1 with the reason in err. */
static int listen_on(const struct config *cfg, char *err, size_t errlen)
{
    char port[16];
    snprintf(port, sizeof port, "%d", cfg->agent_metrics_port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE};
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(cfg->listen_address, port, &hints, &ai);
    if (rc != 0) {
        snprintf(err, errlen, "%s", gai_strerror(rc));
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 16) < 0) {
        snprintf(err, errlen, "%s", strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    return fd;
}

/* Whether metrics_stop asked us to end, waiting up to timeout_ms for fd to be readable. */
static bool stop_or_ready(struct metrics_server *m, int fd, int timeout_ms, bool *ready)
{
    struct pollfd p[2] = {{.fd = m->stop_pipe[0], .events = POLLIN}, {.fd = fd, .events = POLLIN}};
    *ready = false;
    int n = poll(p, fd >= 0 ? 2 : 1, timeout_ms);
    if (n > 0 && p[0].revents)
        return true;
    *ready = n > 0 && fd >= 0 && (p[1].revents & POLLIN);
    return false;
}

static void *serve_loop(void *arg)
{
    struct metrics_server *m = arg;
    int fd = -1;
    bool ready;
    char last_error[256] = "";
    for (;;) {
        if (fd < 0) {
            char err[256];
            fd = listen_on(m->cfg, err, sizeof err);
            if (fd < 0) {
                /* said once per reason, then quietly tried again */
                if (strcmp(err, last_error) != 0)
                    log_error("cannot serve metrics", "address", m->address, "error", err,
                              "retry_in_s", "10", NULL);
                snprintf(last_error, sizeof last_error, "%s", err);
                if (stop_or_ready(m, -1, METRICS_BIND_RETRY_S * 1000, &ready))
                    break;
                continue;
            }
            log_info("serving metrics", "address", m->address, "paths",
                     "/metrics /patroni/metrics", NULL);
            last_error[0] = '\0';
        }
        if (stop_or_ready(m, fd, -1, &ready))
            break;
        if (!ready)
            continue;
        int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (c < 0)
            continue; /* EAGAIN, ECONNABORTED, EMFILE...: the next poll says */
        serve(m, c);
        /* what the client still sends (a body we do not read) must not reset the answer */
        shutdown(c, SHUT_WR);
        char drain[512];
        double until = mono_ms() + 100;
        while (wait_fd(c, POLLIN, until) && recv(c, drain, sizeof drain, MSG_DONTWAIT) > 0)
            ;
        close(c);
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

/* ------------------------------------------------------------------ start / stop */

struct metrics_server *metrics_start(const struct config *cfg, unsigned long restarts,
                                     double start_time)
{
    if (!cfg->agent_metrics_port)
        return NULL;
    static bool atfork_done;
    if (!atfork_done) {
        if (pthread_atfork(fork_prepare, fork_after, fork_after) != 0) {
            log_error("cannot serve metrics", "error", "pthread_atfork failed", NULL);
            return NULL;
        }
        atfork_done = true;
    }
    struct metrics_server *m = calloc(1, sizeof *m);
    if (!m)
        abort();
    m->cfg = cfg;
    m->values.restarts = restarts;
    m->values.start_time = start_time;
    pthread_mutex_init(&m->lock, NULL);
    bool v6 = strchr(cfg->listen_address, ':') != NULL;
    snprintf(m->address, sizeof m->address, "%s%s%s:%d", v6 ? "[" : "", cfg->listen_address,
             v6 ? "]" : "", cfg->agent_metrics_port);
    leader_api_url(cfg, "/metrics", m->patroni_url, sizeof m->patroni_url);
    if (cfg->restapi_tls)
        m->ca_file = config_path(cfg, "tls/ca.crt");
    /* curl_global_init is not thread-safe everywhere: done here, before the thread */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !(m->curl = curl_easy_init()) ||
        pipe2(m->stop_pipe, O_CLOEXEC) < 0) {
        log_error("cannot serve metrics", "address", m->address, "error",
                  "cannot set up HTTP or a pipe", NULL);
        if (m->curl)
            curl_easy_cleanup(m->curl);
        free(m->ca_file);
        free(m);
        return NULL;
    }
    leader_local_request_options(m->curl, m->patroni_url, m->ca_file, METRICS_PATRONI_TIMEOUT_MS);
    metrics_refresh_certificates(m);
    /* signals go to the agent's main thread, never here */
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    int rc = pthread_create(&m->thread, NULL, serve_loop, m);
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    if (rc != 0) {
        log_error("cannot serve metrics", "address", m->address, "error", strerror(rc), NULL);
        close(m->stop_pipe[0]);
        close(m->stop_pipe[1]);
        curl_easy_cleanup(m->curl);
        free(m->ca_file);
        free(m);
        return NULL;
    }
    return m;
}

void metrics_stop(struct metrics_server *m)
{
    if (!m)
        return;
    ssize_t ignored = write(m->stop_pipe[1], "x", 1);
    (void)ignored;
    pthread_join(m->thread, NULL);
    close(m->stop_pipe[0]);
    close(m->stop_pipe[1]);
    curl_easy_cleanup(m->curl);
    pthread_mutex_destroy(&m->lock);
    free(m->ca_file);
    free(m);
}
