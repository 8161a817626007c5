/* leader.c: ask the local Patroni for this member's role, act when it becomes the leader.
 *
 * HTTP goes through libcurl's multi interface, driven by the caller's libev loop (curl tells
 * us which sockets to watch and when its timeout fires; we tell curl when they are ready), so
 * a slow or hung Patroni never stalls signal forwarding or child reaping. One request is in
 * flight at most; a tick that finds one still running is skipped. */
#include "leader.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "extensions.h"

#define MAX_BODY (64 * 1024)
/* Leader mode retries quickly at first: right after promotion the database may still be
 * finishing recovery, or (Citus) Patroni may not have created the database yet. */
#define FIRST_RETRY_S 0.2
/* While Patroni is not answering yet or reports a transitional state (initializing,
 * starting, promoting...), a change of role is imminent: ask this often instead of every
 * LEADER_POLL_INTERVAL_MS. A steady member (running/streaming) is asked at the configured
 * interval. Unanswered requests cost nothing; answered ones a few ms of Patroni's time. */
#define TRANSITION_POLL_S 0.1
/* Citus coordinator. Patroni registers worker leaders in pg_dist_node from the coordinator
 * leader's HA cycle (sync_meta_data: every worker group whose leader the DCS shows as a
 * running primary) or when a worker's own event (its after_promote POST to /citus) arrives.
 * In a new cluster both come late: a worker's event is sent when it turns primary, which is
 * before its leader key exists or before the coordinator leads, and is dropped; then only the
 * coordinator's cycles remain, loop_wait apart. So for WAKE_WINDOW_S after this member
 * becomes the coordinator's leader, it asks Patroni for a cycle every WAKE_PERIOD_S (every
 * WAKE_FAST_PERIOD_S in the first WAKE_FAST_WINDOW_S, when a new cluster's workers come up): a
 * PATCH /config that changes nothing (it removes a key that does not exist, so nothing is
 * written to the DCS) makes Patroni run its HA loop at once (api.py do_PATCH_config:
 * ha.wakeup()). At most 20 + 15 = 35 extra cycles per change of leader. */
#define WAKE_BODY "{\"citus_init_wakeup\":null}"
#define WAKE_FAST_PERIOD_S 0.25
#define WAKE_FAST_WINDOW_S 5.0
#define WAKE_PERIOD_S 1.0
#define WAKE_WINDOW_S 20.0
/* Patroni reports primary/running while it is still finishing the bootstrap, before the
 * dynamic configuration is in the DCS: it answers 503 until then, and is asked again after
 * WAKE_RETRY_S (within the window). */
#define WAKE_RETRY_S 0.25

struct leader_watch {
    struct ev_loop *loop;
    const struct config *cfg;

    /* HTTP */
    CURLM *multi;
    CURL *easy;
    bool in_flight;
    char url[300];
    char *body;
    size_t body_len;
    bool body_truncated;
    ev_timer poll_timer;
    ev_timer curl_timer;
    double poll_interval;   /* LEADER_POLL_INTERVAL_MS in seconds */
    char last_problem[256]; /* last unexpected answer logged, so it is logged once */

    /* leadership and the list */
    bool active;            /* this member has duties when leading (extensions, backups) */
    bool owns_extensions;   /* of which the extensions (leader_owns_extensions) */
    bool leader;
    leader_change_fn on_change; /* told of every change of leader (backups) */
    void *on_change_ctx;
    struct extension_list list;
    ev_stat file_watch;
    struct stat file_seen;  /* identity of the content last read (device, inode, size, times) */
    bool file_missing_logged;
    struct ext_run *run;
    bool last_run_complete; /* the last run ended without giving up (no transient leftovers) */

    /* the coordinator's early HA cycle (WAKE_BODY) */
    bool wake_on_leader;
    CURL *wake;
    bool wake_in_flight;
    int wake_attempts;      /* requests since this member became the leader */
    int wake_answered;      /* of which Patroni took (200) */
    ev_tstamp leader_since;
    ev_timer wake_timer;
    char wake_url[300];
    struct curl_slist *wake_headers;

    char *ca_file;          /* RESTAPI_TLS: the CA the REST API's certificate is checked against */
};

void leader_local_request_options(void *handle, const char *url, const char *ca_file,
                                  long timeout_ms)
{
    CURL *h = handle;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*"); /* never a proxy from the environment */
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 1000 ? timeout_ms : 1000L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    if (ca_file) {
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
        curl_easy_setopt(h, CURLOPT_CAINFO, ca_file);
        curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    } else {
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http");
    }
}

static void setup_request(struct leader_watch *w, CURL *h, const char *url, long timeout_ms)
{
    leader_local_request_options(h, url, w->ca_file, timeout_ms);
}

/* ------------------------------------------------------------------ pure helpers */

enum patroni_status leader_parse_patroni(const char *body, size_t len, char *role, size_t role_size,
                                         char *state, size_t state_size, const char **problem)
{
    const char *why = NULL;
    enum patroni_status st = PATRONI_BAD_ANSWER;
    cJSON *doc = cJSON_ParseWithLength(body, len);
    if (!doc || !cJSON_IsObject(doc)) {
        why = "answer is not a JSON object";
        goto out;
    }
    const cJSON *jrole = cJSON_GetObjectItemCaseSensitive(doc, "role");
    const cJSON *jstate = cJSON_GetObjectItemCaseSensitive(doc, "state");
    if (!cJSON_IsString(jrole) || !cJSON_IsString(jstate)) {
        why = "answer has no string \"role\" and \"state\"";
        goto out;
    }
    if (role && role_size)
        snprintf(role, role_size, "%s", jrole->valuestring);
    if (state && state_size)
        snprintf(state, state_size, "%s", jstate->valuestring);
    /* Patroni 4 says "primary", 3.x "master". A standby leader is not writable. */
    bool leading = strcmp(jrole->valuestring, "primary") == 0 ||
                   strcmp(jrole->valuestring, "master") == 0;
    st = leading && strcmp(jstate->valuestring, "running") == 0 ? PATRONI_LEADER
                                                                 : PATRONI_NOT_LEADER;
out:
    cJSON_Delete(doc);
    if (problem)
        *problem = why;
    return st;
}

char *leader_api_url(const struct config *cfg, const char *path, char *buf, size_t size)
{
    /* LISTEN_ADDRESS may be a list (PostgreSQL syntax): the first address will do. */
    char addr[256];
    const char *la = cfg->listen_address ? cfg->listen_address : "";
    size_t n = strcspn(la, ", ");
    if (n >= sizeof addr)
        n = sizeof addr - 1;
    memcpy(addr, la, n);
    addr[n] = '\0';
    if (!*addr || strcmp(addr, "0.0.0.0") == 0 || strcmp(addr, "::") == 0 ||
        strcmp(addr, "*") == 0)
        snprintf(addr, sizeof addr, "127.0.0.1");
    bool v6 = strchr(addr, ':') != NULL;
    snprintf(buf, size, "%s://%s%s%s:%d%s", cfg->restapi_tls ? "https" : "http", v6 ? "[" : "",
             addr, v6 ? "]" : "", cfg->api_port, path);
    return buf;
}

char *leader_patroni_url(const struct config *cfg, char *buf, size_t size)
{
    return leader_api_url(cfg, "/patroni", buf, size);
}

/* ------------------------------------------------------------------ extension lists */

static void list_append(struct extension_list *l, const char *name, const char *schema)
{
    struct extension_spec *items = realloc(l->items, (l->count + 1) * sizeof *items);
    if (!items)
        abort();
    l->items = items;
    l->items[l->count].name = strdup(name);
    l->items[l->count].schema = schema ? strdup(schema) : NULL;
    if (!l->items[l->count].name || (schema && !l->items[l->count].schema))
        abort();
    l->count++;
}

static const struct extension_spec *list_find(const struct extension_list *l, const char *name)
{
    for (size_t i = 0; i < l->count; i++)
        if (strcmp(l->items[i].name, name) == 0)
            return &l->items[i];
    return NULL;
}

/* Copy of src without repeated names (the first entry of a name wins). */
static void list_copy_unique(struct extension_list *dst, const struct extension_list *src)
{
    for (size_t i = 0; i < src->count; i++)
        if (!list_find(dst, src->items[i].name))
            list_append(dst, src->items[i].name, src->items[i].schema);
}

static bool same_schema(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool lists_equal(const struct extension_list *a, const struct extension_list *b)
{
    if (a->count != b->count)
        return false;
    for (size_t i = 0; i < a->count; i++) {
        const struct extension_spec *o = list_find(b, a->items[i].name);
        if (!o || !same_schema(o->schema, a->items[i].schema))
            return false;
    }
    return true;
}

/* The list as configured now: EXTENSIONS (the process environment, as config_load read it)
 * plus the current content of EXTENSIONS_FILE. Returns 0, or -1 after logging why. */
static int load_current_list(const struct config *cfg, struct extension_list *out)
{
    struct diag d;
    diag_init(&d);
    struct extension_list parsed = {0};
    const char *env = env_lookup_process("EXTENSIONS", NULL);
    if (env)
        extension_list_parse(&parsed, env, "EXTENSIONS", &d);
    extension_list_load_file(&parsed, cfg->extensions_file, &d);
    int rc = 0;
    if (diag_error_count(&d) > 0) {
        for (size_t i = 0; i < d.count; i++)
            if (d.items[i].severity == DIAG_ERROR)
                log_error("EXTENSIONS_FILE rejected; keeping the previous list", "path",
                          cfg->extensions_file, "problem", d.items[i].message, NULL);
        rc = -1;
    } else {
        list_copy_unique(out, &parsed);
    }
    extension_list_free(&parsed);
    diag_free(&d);
    return rc;
}

/* ------------------------------------------------------------------ running */

static void run_done(enum ext_run_result result, void *ctx)
{
    struct leader_watch *w = ctx;
    w->last_run_complete = result != EXT_RUN_GAVE_UP;
    extensions_run_cancel(w->run); /* frees it; the runner touches nothing after done */
    w->run = NULL;
}

static void start_run(struct leader_watch *w, const struct extension_list *list)
{
    if (!w->owns_extensions)
        return; /* a Citus worker's leader watches for its backups only */
    if (w->run) {
        /* A run in progress is replaced by one over the whole list, so nothing it had not
         * reached yet is forgotten. */
        extensions_run_cancel(w->run);
        w->run = NULL;
        list = &w->list;
    }
    if (list->count == 0 && !w->cfg->app_username)
        return;
    struct ext_run_options opts = {
        .target = EXT_TARGET_LOCAL_SOCKET,
        .max_attempts = w->cfg->extensions_max_attempts,
        .retry_delay = w->cfg->extensions_retry_delay,
        .first_retry = FIRST_RETRY_S,
        .print_summary = false,
    };
    w->run = extensions_run_start(w->loop, w->cfg, list, &opts, run_done, w);
}

static bool same_file_state(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
           a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* Re-read EXTENSIONS_FILE when what the path leads to has changed. Called from the ev_stat
 * watcher (prompt for edits in place) and from every poll tick: kubelet replaces ConfigMap
 * content by swapping the `..data` symlink in the directory, which an inotify watch on the
 * file path (libev watches the path itself, not the link's new target) does not report. */
static void check_file(struct leader_watch *w)
{
    struct stat now;
    if (stat(w->cfg->extensions_file, &now) != 0) {
        if (!w->file_missing_logged)
            log_warn("EXTENSIONS_FILE cannot be read; keeping the previous list", "path",
                     w->cfg->extensions_file, "error", strerror(errno), NULL);
        w->file_missing_logged = true;
        return;
    }
    w->file_missing_logged = false;
    if (same_file_state(&now, &w->file_seen))
        return;
    w->file_seen = now;
    struct extension_list fresh = {0};
    if (load_current_list(w->cfg, &fresh) != 0)
        return;
    if (lists_equal(&fresh, &w->list)) {
        extension_list_free(&fresh);
        log_debug("EXTENSIONS_FILE touched, list unchanged", "path", w->cfg->extensions_file, NULL);
        return;
    }
    /* Names that were removed are never dropped; only new ones need work. */
    struct extension_list added = {0};
    for (size_t i = 0; i < fresh.count; i++)
        if (!list_find(&w->list, fresh.items[i].name))
            list_append(&added, fresh.items[i].name, fresh.items[i].schema);
    char sn[24], sa[24];
    snprintf(sn, sizeof sn, "%zu", fresh.count);
    snprintf(sa, sizeof sa, "%zu", added.count);
    log_info("extension list changed", "path", w->cfg->extensions_file, "extensions", sn, "added",
             sa, "leader", w->leader ? "true" : "false", NULL);
    extension_list_free(&w->list);
    w->list = fresh;
    if (w->leader)
        start_run(w, w->last_run_complete ? &added : &w->list);
    extension_list_free(&added);
}

static void on_file_change(struct ev_loop *loop, ev_stat *st, int revents)
{
    (void)loop;
    (void)revents;
    check_file(st->data);
}

static void send_wakeup(struct leader_watch *w);

static void become_leader(struct leader_watch *w, bool leader, const char *role)
{
    if (leader == w->leader)
        return;
    w->leader = leader;
    if (leader && !w->owns_extensions) {
        log_info("this member is the leader", "role", role, NULL);
    } else if (leader) {
        char sn[24];
        snprintf(sn, sizeof sn, "%zu", w->list.count);
        log_info("this member is the leader; checking extensions", "role", role, "extensions", sn,
                 NULL);
        w->last_run_complete = false;
        start_run(w, &w->list);
        if (w->wake_on_leader) {
            w->wake_attempts = w->wake_answered = 0;
            w->leader_since = ev_now(w->loop);
            send_wakeup(w);
        }
    } else {
        log_info("this member is no longer the leader", "role", role, NULL);
        if (w->run) {
            extensions_run_cancel(w->run);
            w->run = NULL;
        }
    }
    if (w->on_change)
        w->on_change(leader, w->on_change_ctx);
}

/* ------------------------------------------------------------------ HTTP */

static size_t on_body(char *data, size_t size, size_t nmemb, void *userp)
{
    struct leader_watch *w = userp;
    size_t n = size * nmemb;
    if (w->body_len + n > MAX_BODY) {
        w->body_truncated = true;
        return n; /* keep reading, ignore the excess */
    }
    memcpy(w->body + w->body_len, data, n);
    w->body_len += n;
    return n;
}

static void note_problem(struct leader_watch *w, const char *problem)
{
    if (strncmp(w->last_problem, problem, sizeof w->last_problem - 1) == 0) {
        log_debug("unexpected answer from Patroni (repeated)", "url", w->url, "problem", problem,
                  NULL);
        return;
    }
    snprintf(w->last_problem, sizeof w->last_problem, "%s", problem);
    log_warn("unexpected answer from Patroni", "url", w->url, "problem", problem, NULL);
}

bool leader_state_steady(const char *state)
{
    /* Patroni 4 reports replicas as "streaming" or "in archive recovery", 3.x as "running". */
    return strcmp(state, "running") == 0 || strcmp(state, "streaming") == 0 ||
           strcmp(state, "in archive recovery") == 0;
}

/* Next poll: soon while things are moving, at the configured pace once they are steady. */
static void pace_polling(struct leader_watch *w, bool steady)
{
    double next = steady || w->poll_interval < TRANSITION_POLL_S ? w->poll_interval
                                                                  : TRANSITION_POLL_S;
    if (next != w->poll_timer.repeat) {
        w->poll_timer.repeat = next;
        ev_timer_again(w->loop, &w->poll_timer);
    }
}

static void request_finished(struct leader_watch *w, CURLcode rc)
{
    w->in_flight = false;
    curl_multi_remove_handle(w->multi, w->easy);
    if (rc != CURLE_OK) {
        pace_polling(w, false);
        /* Patroni is starting or restarting: normal, quiet. */
        log_debug("Patroni REST API not answering", "url", w->url, "error", curl_easy_strerror(rc),
                  NULL);
        return;
    }
    long code = 0;
    curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &code);
    char role[64] = "", state[64] = "";
    const char *why = NULL;
    enum patroni_status st = w->body_truncated
                                 ? PATRONI_BAD_ANSWER
                                 : leader_parse_patroni(w->body, w->body_len, role, sizeof role,
                                                        state, sizeof state, &why);
    if (st == PATRONI_BAD_ANSWER) {
        char problem[200];
        snprintf(problem, sizeof problem, "HTTP %ld: %s", code,
                 w->body_truncated ? "answer larger than 64 KiB" : why);
        note_problem(w, problem);
        pace_polling(w, true); /* a broken answer will not fix itself within 100 ms */
        return;
    }
    w->last_problem[0] = '\0';
    pace_polling(w, leader_state_steady(state));
    become_leader(w, st == PATRONI_LEADER, role);
}

static size_t discard_body(char *data, size_t size, size_t nmemb, void *userp)
{
    (void)data;
    (void)userp;
    return size * nmemb;
}

static void send_wakeup(struct leader_watch *w)
{
    if (w->wake_in_flight || !w->leader)
        return;
    w->wake_attempts++;
    if (curl_multi_add_handle(w->multi, w->wake) != CURLM_OK) {
        log_warn("cannot ask Patroni for an early HA cycle; Citus workers are registered on "
                 "its next cycle", "url", w->wake_url, NULL);
        return;
    }
    w->wake_in_flight = true;
}

static void schedule_wakeup(struct leader_watch *w, double after)
{
    ev_timer_stop(w->loop, &w->wake_timer);
    ev_timer_set(&w->wake_timer, after, 0.);
    ev_timer_start(w->loop, &w->wake_timer);
}

static void wakeup_finished(struct leader_watch *w, CURLcode rc)
{
    w->wake_in_flight = false;
    curl_multi_remove_handle(w->multi, w->wake);
    if (!w->leader)
        return; /* leadership is gone: nothing to hurry */
    long code = 0;
    if (rc == CURLE_OK)
        curl_easy_getinfo(w->wake, CURLINFO_RESPONSE_CODE, &code);
    bool in_window = ev_now(w->loop) - w->leader_since < WAKE_WINDOW_S;
    char status[24], attempts[24];
    snprintf(status, sizeof status, "%ld", code);
    snprintf(attempts, sizeof attempts, "%d", w->wake_attempts);
    if (code == 200) {
        if (w->wake_answered++ == 0)
            log_info("asked Patroni for an HA cycle now, so Citus takes worker leaders at once",
                     "url", w->wake_url, "attempts", attempts, NULL);
        if (in_window)
            schedule_wakeup(w, ev_now(w->loop) - w->leader_since < WAKE_FAST_WINDOW_S
                                   ? WAKE_FAST_PERIOD_S
                                   : WAKE_PERIOD_S);
        return;
    }
    /* 503: the bootstrap is still being finished; a failed connection: the REST API is
     * restarting. Both pass. 401/403 and the like will not. */
    bool passing = code == 503 || rc != CURLE_OK;
    if (passing && in_window) {
        log_debug("Patroni not ready for an early HA cycle yet", "url", w->wake_url,
                  "http_status", status, NULL);
        schedule_wakeup(w, WAKE_RETRY_S);
        return;
    }
    /* Not fatal: Patroni's next cycle (loop_wait) does the same work. */
    log_warn("Patroni refused an early HA cycle; Citus workers are registered on its next "
             "cycle", "url", w->wake_url, "http_status", status, "error",
             rc == CURLE_OK ? "-" : curl_easy_strerror(rc), "attempts", attempts, NULL);
}

static void on_wake_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    send_wakeup(t->data);
}

static void check_finished(struct leader_watch *w)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(w->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        if (msg->easy_handle == w->easy)
            request_finished(w, msg->data.result);
        else if (msg->easy_handle == w->wake)
            wakeup_finished(w, msg->data.result);
    }
}

static void on_curl_socket_ready(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    struct leader_watch *w = io->data;
    int flags = (revents & EV_READ ? CURL_CSELECT_IN : 0) | (revents & EV_WRITE ? CURL_CSELECT_OUT : 0);
    int running;
    curl_multi_socket_action(w->multi, io->fd, flags, &running);
    check_finished(w);
}

static void on_curl_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    struct leader_watch *w = t->data;
    int running;
    curl_multi_socket_action(w->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_finished(w);
}

/* curl: "watch this socket for these events" (or stop watching it). */
static int curl_socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)easy;
    struct leader_watch *w = userp;
    ev_io *io = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (io) {
            ev_io_stop(w->loop, io);
            free(io);
            curl_multi_assign(w->multi, s, NULL);
        }
        return 0;
    }
    int events = (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0);
    if (!io) {
        io = malloc(sizeof *io);
        if (!io)
            abort();
        ev_io_init(io, on_curl_socket_ready, s, events);
        io->data = w;
        curl_multi_assign(w->multi, s, io);
    } else {
        ev_io_stop(w->loop, io);
        ev_io_set(io, s, events);
    }
    ev_io_start(w->loop, io);
    return 0;
}

/* curl: "call me back in timeout_ms" (-1: never mind). */
static int curl_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    struct leader_watch *w = userp;
    ev_timer_stop(w->loop, &w->curl_timer);
    if (timeout_ms >= 0) {
        ev_timer_set(&w->curl_timer, (double)timeout_ms / 1000.0, 0.);
        ev_timer_start(w->loop, &w->curl_timer);
    }
    return 0;
}

static void on_poll(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    struct leader_watch *w = t->data;
    if (w->cfg->extensions_file)
        check_file(w);
    if (w->in_flight)
        return;
    w->body_len = 0;
    w->body_truncated = false;
    if (curl_multi_add_handle(w->multi, w->easy) != CURLM_OK) {
        note_problem(w, "cannot start an HTTP request");
        return;
    }
    w->in_flight = true;
}

/* ------------------------------------------------------------------ start / stop */

struct leader_watch *leader_watch_start(struct ev_loop *loop, const struct config *cfg)
{
    struct leader_watch *w = calloc(1, sizeof *w);
    if (!w)
        abort();
    w->loop = loop;
    w->cfg = cfg;
    list_copy_unique(&w->list, &cfg->extensions);
    /* The coordinator's leader (every leader without Citus) always has duties: the
     * application role, the extensions, the early HA cycles. */
    w->owns_extensions = leader_owns_extensions(cfg);
    w->active = w->owns_extensions || cfg->backup.repo != BACKUP_REPO_NONE ||
                cfg->monitoring_role;
    if (!w->active) {
        log_debug("leader watch idle: this member never creates extensions, backups and the "
                  "monitoring role are off",
                  "citus_group", cfg->citus_enabled ? "worker" : "-", NULL);
        return w;
    }

    static bool curl_ready;
    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            log_error("cannot initialise libcurl; extensions will not be created", NULL);
            leader_watch_stop(w);
            return NULL;
        }
        curl_ready = true;
    }
    w->body = malloc(MAX_BODY);
    w->multi = curl_multi_init();
    w->easy = curl_easy_init();
    if (!w->body || !w->multi || !w->easy) {
        log_error("cannot set up HTTP requests; extensions will not be created", NULL);
        leader_watch_stop(w);
        return NULL;
    }
    if (cfg->restapi_tls)
        w->ca_file = config_path(cfg, "tls/ca.crt");
    leader_patroni_url(cfg, w->url, sizeof w->url);
    long interval = cfg->leader_poll_interval_ms > 0 ? cfg->leader_poll_interval_ms : 1000;
    setup_request(w, w->easy, w->url, interval > 2000 ? interval : 2000L);
    curl_easy_setopt(w->easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(w->easy, CURLOPT_WRITEDATA, w);
    w->wake_on_leader = cfg->citus_enabled && cfg->citus_group == 0;
    ev_timer_init(&w->wake_timer, on_wake_timer, 0., 0.);
    w->wake_timer.data = w;
    if (w->wake_on_leader) {
        w->wake = curl_easy_init();
        w->wake_headers = curl_slist_append(NULL, "Content-Type: application/json");
        if (!w->wake || !w->wake_headers) {
            log_error("cannot set up HTTP requests; extensions will not be created", NULL);
            leader_watch_stop(w);
            return NULL;
        }
        leader_api_url(cfg, "/config", w->wake_url, sizeof w->wake_url);
        setup_request(w, w->wake, w->wake_url, 5000L);
        curl_easy_setopt(w->wake, CURLOPT_CUSTOMREQUEST, "PATCH");
        curl_easy_setopt(w->wake, CURLOPT_POSTFIELDS, WAKE_BODY);
        curl_easy_setopt(w->wake, CURLOPT_HTTPHEADER, w->wake_headers);
        curl_easy_setopt(w->wake, CURLOPT_WRITEFUNCTION, discard_body);
        if (cfg->restapi_password) {
            /* PATCH is an unsafe method: Patroni wants the REST API credentials (libcurl
             * keeps its own copies; the password never reaches a log line) */
            curl_easy_setopt(w->wake, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
            curl_easy_setopt(w->wake, CURLOPT_USERNAME, cfg->restapi_username);
            curl_easy_setopt(w->wake, CURLOPT_PASSWORD, cfg->restapi_password);
        }
    }
    curl_multi_setopt(w->multi, CURLMOPT_SOCKETFUNCTION, curl_socket_cb);
    curl_multi_setopt(w->multi, CURLMOPT_SOCKETDATA, w);
    curl_multi_setopt(w->multi, CURLMOPT_TIMERFUNCTION, curl_timer_cb);
    curl_multi_setopt(w->multi, CURLMOPT_TIMERDATA, w);

    ev_timer_init(&w->curl_timer, on_curl_timeout, 0., 0.);
    w->curl_timer.data = w;
    w->poll_interval = (double)interval / 1000.0;
    ev_timer_init(&w->poll_timer, on_poll, 0., w->poll_interval);
    w->poll_timer.data = w;
    ev_timer_start(loop, &w->poll_timer);

    if (cfg->extensions_file) {
        /* Edits in place show up at once through ev_stat; symlink swaps (kubelet) on the
         * next poll tick (check_file). The parsed lists are compared before acting. */
        if (stat(cfg->extensions_file, &w->file_seen) != 0)
            memset(&w->file_seen, 0, sizeof w->file_seen);
        ev_stat_init(&w->file_watch, on_file_change, cfg->extensions_file, 1.0);
        w->file_watch.data = w;
        ev_stat_start(loop, &w->file_watch);
    }
    char si[24], sn[24];
    snprintf(si, sizeof si, "%ld", interval);
    snprintf(sn, sizeof sn, "%zu", w->list.count);
    log_info("watching Patroni for leadership", "url", w->url, "interval_ms", si, "extensions", sn,
             "extensions_file", cfg->extensions_file ? cfg->extensions_file : "-", NULL);
    return w;
}

void leader_watch_notify(struct leader_watch *w, leader_change_fn fn, void *ctx)
{
    if (!w)
        return;
    w->on_change = fn;
    w->on_change_ctx = ctx;
}

void leader_watch_stop(struct leader_watch *w)
{
    if (!w)
        return;
    if (w->run)
        extensions_run_cancel(w->run);
    if (w->active) {
        ev_timer_stop(w->loop, &w->poll_timer);
        ev_timer_stop(w->loop, &w->curl_timer);
        ev_timer_stop(w->loop, &w->wake_timer);
        if (w->cfg->extensions_file)
            ev_stat_stop(w->loop, &w->file_watch);
    }
    if (w->multi && w->easy && w->in_flight)
        curl_multi_remove_handle(w->multi, w->easy); /* closes its socket via curl_socket_cb */
    if (w->multi && w->wake && w->wake_in_flight)
        curl_multi_remove_handle(w->multi, w->wake);
    if (w->easy)
        curl_easy_cleanup(w->easy);
    if (w->wake)
        curl_easy_cleanup(w->wake);
    curl_slist_free_all(w->wake_headers);
    if (w->multi)
        curl_multi_cleanup(w->multi);
    free(w->body);
    free(w->ca_file);
    extension_list_free(&w->list);
    free(w);
}
