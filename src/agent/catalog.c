/* catalog.c: the restore point catalogue in the repository (catalog.h). */
#include "catalog.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsprep.h"
#include "input.h"
#include "xalloc.h"

#define CATALOG_DIR "citus-restore-points"
#define DOC_MAX (64 * 1024)          /* one document; ours are a few hundred bytes */
#define S3_ANSWER_MAX (16 * 1024 * 1024)
#define S3_TIMEOUT_MS 60000L

/* ------------------------------------------------------------------ names and times */

bool catalog_name_valid(const char *name)
{
    /* "." and ".." would name directories of a posix repository */
    return name && restore_point_name_valid(name) && strcmp(name, ".") != 0 &&
           strcmp(name, "..") != 0;
}

void catalog_name_for(time_t t, char *buf, size_t size)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, size, "citus-%Y%m%dT%H%M%SZ", &tm);
}

static bool digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

static int num(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

/* Fields to a time, refusing values that do not name a real second (31 April ...). */
static bool make_time(int year, int mon, int mday, int hour, int min, int sec, time_t *t)
{
    if (year < 1970 || mon < 1 || mon > 12 || mday < 1 || mday > 31 || hour > 23 || min > 59 ||
        sec > 59)
        return false;
    struct tm tm = {.tm_year = year - 1900, .tm_mon = mon - 1, .tm_mday = mday,
                    .tm_hour = hour, .tm_min = min, .tm_sec = sec};
    time_t v = timegm(&tm);
    struct tm back;
    gmtime_r(&v, &back);
    if (back.tm_mday != mday || back.tm_mon != mon - 1)
        return false;
    *t = v;
    return true;
}

bool catalog_name_time(const char *name, time_t *t)
{
    /* citus-YYYYMMDDTHHMMSSZ */
    if (strlen(name) != 22 || strncmp(name, "citus-", 6) != 0)
        return false;
    const char *s = name + 6;
    if (!digits(s, 8) || s[8] != 'T' || !digits(s + 9, 6) || s[15] != 'Z')
        return false;
    return make_time(num(s, 4), num(s + 4, 2), num(s + 6, 2), num(s + 9, 2), num(s + 11, 2),
                     num(s + 13, 2), t);
}

void catalog_format_time(time_t t, char *buf, size_t size)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

bool catalog_parse_time(const char *s, time_t *t)
{
    /* YYYY-MM-DDTHH:MM:SS */
    if (strlen(s) < 20 || !digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' ||
        !digits(s + 8, 2) || s[10] != 'T' || !digits(s + 11, 2) || s[13] != ':' ||
        !digits(s + 14, 2) || s[16] != ':' || !digits(s + 17, 2))
        return false;
    const char *rest = s + 19;
    if (*rest == '.') {
        rest++;
        if (!digits(rest, 1))
            return false;
        while (*rest >= '0' && *rest <= '9')
            rest++;
    }
    if (strcmp(rest, "Z") != 0 && strcmp(rest, "z") != 0 && strcmp(rest, "+00:00") != 0)
        return false;
    return make_time(num(s, 4), num(s + 5, 2), num(s + 8, 2), num(s + 11, 2), num(s + 14, 2),
                     num(s + 17, 2), t);
}

bool catalog_parse_entry(const char *json, size_t len, char **name, time_t *t)
{
    cJSON *doc = cJSON_ParseWithLength(json, len);
    const cJSON *jn = cJSON_GetObjectItemCaseSensitive(doc, "name");
    const cJSON *jt = cJSON_GetObjectItemCaseSensitive(doc, "time");
    bool ok = cJSON_IsString(jn) && cJSON_IsString(jt) && catalog_name_valid(jn->valuestring) &&
              catalog_parse_time(jt->valuestring, t);
    if (ok)
        *name = xstrdup(jn->valuestring);
    cJSON_Delete(doc);
    return ok;
}

/* ------------------------------------------------------------------ the list */

static void list_add(struct catalog_list *l, const char *name, time_t t)
{
    struct catalog_entry *items = realloc(l->items, (l->count + 1) * sizeof *items);
    if (!items)
        abort();
    l->items = items;
    l->items[l->count].name = xstrdup(name);
    l->items[l->count].time = t;
    l->count++;
}

static int by_time_then_name(const void *a, const void *b)
{
    const struct catalog_entry *x = a, *y = b;
    if (x->time != y->time)
        return x->time < y->time ? -1 : 1;
    return strcmp(x->name, y->name);
}

void catalog_list_free(struct catalog_list *l)
{
    for (size_t i = 0; i < l->count; i++)
        free(l->items[i].name);
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

/* "name" of "name.json" (a valid restore point name), malloc'd, or NULL. */
static char *name_of_file(const char *file)
{
    size_t n = strlen(file);
    if (n <= 5 || strcmp(file + n - 5, ".json") != 0)
        return NULL;
    char *name = xstrdup(file);
    name[n - 5] = '\0';
    if (!catalog_name_valid(name)) {
        free(name);
        return NULL;
    }
    return name;
}

/* ------------------------------------------------------------------ XML (S3 answers) */

/* Decode the five predefined entities and numeric references (ASCII only) of s[0..n). */
static char *xml_text(const char *s, size_t n)
{
    char *out = xmalloc(n + 1), *o = out;
    static const struct { const char *ent; char c; } ents[] = {
        {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
    for (size_t i = 0; i < n;) {
        if (s[i] == '&') {
            bool done = false;
            for (size_t k = 0; k < sizeof ents / sizeof ents[0] && !done; k++) {
                size_t el = strlen(ents[k].ent);
                if (i + el <= n && memcmp(s + i, ents[k].ent, el) == 0) {
                    *o++ = ents[k].c;
                    i += el;
                    done = true;
                }
            }
            if (!done && i + 3 < n && s[i + 1] == '#') {
                const char *semi = memchr(s + i, ';', n - i);
                if (semi) {
                    bool hex = s[i + 2] == 'x' || s[i + 2] == 'X';
                    long v = strtol(s + i + (hex ? 3 : 2), NULL, hex ? 16 : 10);
                    if (v > 0 && v < 128) {
                        *o++ = (char)v;
                        i = (size_t)(semi - s) + 1;
                        done = true;
                    }
                }
            }
            if (done)
                continue;
        }
        *o++ = s[i++];
    }
    *o = '\0';
    return out;
}

/* The next <tag>value</tag> at or after *pos; value decoded, malloc'd; *pos moves past it. */
static char *next_element(const char *xml, size_t len, size_t *pos, const char *tag)
{
    char open[64], close[64];
    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    size_t ol = strlen(open), cl = strlen(close);
    for (size_t i = *pos; i + ol <= len; i++) {
        if (memcmp(xml + i, open, ol) != 0)
            continue;
        size_t start = i + ol;
        for (size_t j = start; j + cl <= len; j++) {
            if (memcmp(xml + j, close, cl) == 0) {
                *pos = j + cl;
                return xml_text(xml + start, j - start);
            }
        }
        return NULL;
    }
    return NULL;
}

char *catalog_xml_element(const char *xml, size_t len, const char *tag)
{
    size_t pos = 0;
    return next_element(xml, len, &pos, tag);
}

static bool contains(const char *s, size_t len, const char *what)
{
    size_t wl = strlen(what);
    for (size_t i = 0; i + wl <= len; i++)
        if (memcmp(s + i, what, wl) == 0)
            return true;
    return false;
}

bool catalog_s3_parse_list(const char *xml, size_t len, catalog_key_fn fn, void *ctx,
                           bool *truncated, char **next_token)
{
    *truncated = false;
    *next_token = NULL;
    if (!contains(xml, len, "<ListBucketResult"))
        return false;
    size_t pos = 0;
    char *key;
    while ((key = next_element(xml, len, &pos, "Key")) != NULL) {
        fn(key, ctx);
        free(key);
    }
    char *tr = catalog_xml_element(xml, len, "IsTruncated");
    *truncated = tr && strcmp(tr, "true") == 0;
    free(tr);
    *next_token = catalog_xml_element(xml, len, "NextContinuationToken");
    if (*truncated && !*next_token)
        return false; /* a truncated page we could not go on from */
    return true;
}

/* ------------------------------------------------------------------ S3 */

struct buffer {
    char *data;
    size_t len;
    bool too_big;
};

static size_t on_data(char *p, size_t size, size_t nmemb, void *userp)
{
    struct buffer *b = userp;
    size_t n = size * nmemb;
    if (b->too_big || b->len + n > S3_ANSWER_MAX) {
        b->too_big = true;
        return n;
    }
    char *more = realloc(b->data, b->len + n + 1);
    if (!more)
        abort();
    b->data = more;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

/* AWS URI encoding: everything but A-Za-z0-9-_.~ as %XX (and '/' too unless keep_slash). */
static void uri_encode(char **out, size_t *len, size_t *cap, const char *s, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (*len + 4 >= *cap) {
            *cap = *cap * 2 + 64;
            char *more = realloc(*out, *cap);
            if (!more)
                abort();
            *out = more;
        }
        bool plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                     c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/');
        if (plain) {
            (*out)[(*len)++] = (char)c;
        } else {
            (*out)[(*len)++] = '%';
            (*out)[(*len)++] = hex[c >> 4];
            (*out)[(*len)++] = hex[c & 15];
        }
        (*out)[*len] = '\0';
    }
}

static char *encoded(const char *s, bool keep_slash)
{
    size_t len = 0, cap = strlen(s) * 3 + 1;
    char *out = xmalloc(cap);
    out[0] = '\0';
    uri_encode(&out, &len, &cap, s, keep_slash);
    return out;
}

/* The key prefix of the catalogue of cluster in the bucket: the repository path without its
 * leading slash, as pgBackRest uses it. */
static char *s3_prefix(const struct catalog_repo *repo, const char *cluster)
{
    const char *path = repo->ref->path;
    while (*path == '/')
        path++;
    size_t n = strlen(path);
    while (n > 0 && path[n - 1] == '/')
        n--;
    return n ? xasprintf("%.*s/%s/%s/", (int)n, path, CATALOG_DIR, cluster)
             : xasprintf("%s/%s/", CATALOG_DIR, cluster);
}

static void sha256_hex(const char *data, size_t len, char out[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
        abort();
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* One request: method on key (NULL: the bucket) with query (already canonical: sorted and
 * encoded, may be NULL), body for PUT. Returns 0 with the status and body in *status and *answer,
 * or -1 with the reason in d (no answer). */
static int s3_request(const struct catalog_repo *repo, const char *method, const char *key,
                      const char *query, const char *body, struct buffer *answer, long *status,
                      struct diag *d)
{
    static bool ready;
    if (!ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            diag_error(d, "catalogue: cannot initialise libcurl");
            return -1;
        }
        ready = true;
    }
    const struct backup_config *b = repo->backup;
    char *ekey = encoded(key ? key : "", true);
    char *url = b->s3_uri_style_path
                    ? xasprintf("https://%s/%s/%s%s%s", b->s3_endpoint, b->s3_bucket, ekey,
                                query ? "?" : "", query ? query : "")
                    : xasprintf("https://%s.%s/%s%s%s", b->s3_bucket, b->s3_endpoint, ekey,
                                query ? "?" : "", query ? query : "");
    free(ekey);
    char *sigv4 = xasprintf("aws:amz:%s:s3", b->s3_region ? b->s3_region : "us-east-1");
    char hash[65];
    sha256_hex(body ? body : "", body ? strlen(body) : 0, hash);
    char *hash_header = xasprintf("x-amz-content-sha256: %s", hash);
    struct curl_slist *headers = curl_slist_append(NULL, hash_header);
    if (body)
        headers = curl_slist_append(headers, "Content-Type: application/json");
    CURL *h = curl_easy_init();
    if (!h || !headers)
        abort();
    char curl_error[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*"); /* like pgBackRest: straight to the endpoint */
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, S3_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_error);
    curl_easy_setopt(h, CURLOPT_AWS_SIGV4, sigv4);
    curl_easy_setopt(h, CURLOPT_USERNAME, repo->ref->s3_key ? repo->ref->s3_key : "");
    curl_easy_setopt(h, CURLOPT_PASSWORD, repo->ref->s3_key_secret ? repo->ref->s3_key_secret : "");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    char *ca = b->s3_ca_file ? xasprintf("%s/%s", repo->run_dir, BACKUP_CA_COPY) : NULL;
    if (ca)
        curl_easy_setopt(h, CURLOPT_CAINFO, ca);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, b->s3_verify_tls ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, b->s3_verify_tls ? 2L : 0L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, answer);
    if (body) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    }
    CURLcode rc = curl_easy_perform(h);
    int result = 0;
    if (rc != CURLE_OK) {
        diag_error(d, "catalogue: S3 %s to https://%s bucket %s key %s failed: %s", method,
                   b->s3_endpoint, b->s3_bucket, key ? key : "(list)",
                   curl_error[0] ? curl_error : curl_easy_strerror(rc));
        result = -1;
    } else {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
        if (answer->too_big) {
            diag_error(d, "catalogue: S3 %s to https://%s bucket %s key %s: the answer is larger "
                       "than %d MiB", method, b->s3_endpoint, b->s3_bucket, key ? key : "(list)",
                       S3_ANSWER_MAX >> 20);
            result = -1;
        }
    }
    curl_easy_cleanup(h);
    free(ca);
    curl_slist_free_all(headers);
    free(hash_header);
    free(sigv4);
    free(url);
    return result;
}

/* An S3 error answer into d: endpoint, bucket, key, status, Code and Message. */
static void s3_error(const struct catalog_repo *repo, const char *method, const char *key,
                     long status, const struct buffer *answer, struct diag *d)
{
    char *code = answer->data ? catalog_xml_element(answer->data, answer->len, "Code") : NULL;
    char *message = answer->data ? catalog_xml_element(answer->data, answer->len, "Message")
                                 : NULL;
    diag_error(d, "catalogue: S3 %s to https://%s bucket %s key %s: HTTP %ld %s%s%.200s",
               method, repo->backup->s3_endpoint, repo->backup->s3_bucket, key ? key : "(list)",
               status, code ? code : "(no S3 error code)", message ? ": " : "",
               message ? message : "");
    free(code);
    free(message);
}

static int s3_put(const struct catalog_repo *repo, const char *key, const char *json,
                  struct diag *d)
{
    struct buffer answer = {0};
    long status = 0;
    int rc = s3_request(repo, "PUT", key, NULL, json, &answer, &status, d);
    if (rc == 0 && (status < 200 || status > 299)) {
        s3_error(repo, "PUT", key, status, &answer, d);
        rc = -1;
    }
    free(answer.data);
    return rc;
}

static int s3_get(const struct catalog_repo *repo, const char *key, char **json, struct diag *d)
{
    struct buffer answer = {0};
    long status = 0;
    int rc = s3_request(repo, "GET", key, NULL, NULL, &answer, &status, d);
    if (rc == 0 && status == 404) {
        rc = 1;
    } else if (rc == 0 && (status < 200 || status > 299)) {
        s3_error(repo, "GET", key, status, &answer, d);
        rc = -1;
    } else if (rc == 0 && answer.len > DOC_MAX) {
        diag_error(d, "catalogue: S3 object %s in bucket %s is larger than %d KiB; expected a "
                   "restore point document", key, repo->backup->s3_bucket, DOC_MAX >> 10);
        rc = -1;
    }
    if (rc == 0) {
        *json = answer.data ? answer.data : xstrdup("");
        return 0;
    }
    free(answer.data);
    return rc;
}

struct s3_names {
    const char *prefix;
    char **names;
    size_t count;
};

static void collect_key(const char *key, void *ctx)
{
    struct s3_names *n = ctx;
    size_t pl = strlen(n->prefix);
    if (strncmp(key, n->prefix, pl) != 0 || strchr(key + pl, '/'))
        return;
    char *name = name_of_file(key + pl);
    if (!name)
        return;
    char **more = realloc(n->names, (n->count + 1) * sizeof *more);
    if (!more)
        abort();
    n->names = more;
    n->names[n->count++] = name;
}

static int s3_list_names(const struct catalog_repo *repo, const char *prefix,
                         struct s3_names *names, struct diag *d)
{
    names->prefix = prefix;
    char *token = NULL;
    char *eprefix = encoded(prefix, false);
    int rc = 0;
    for (int page = 0; rc == 0; page++) {
        /* the canonical query: parameters sorted by name, values encoded */
        char *etoken = token ? encoded(token, false) : NULL;
        char *query = etoken ? xasprintf("continuation-token=%s&list-type=2&prefix=%s", etoken,
                                         eprefix)
                             : xasprintf("list-type=2&prefix=%s", eprefix);
        free(etoken);
        free(token);
        token = NULL;
        struct buffer answer = {0};
        long status = 0;
        rc = s3_request(repo, "GET", NULL, query, NULL, &answer, &status, d);
        free(query);
        if (rc == 0 && (status < 200 || status > 299)) {
            s3_error(repo, "GET", prefix, status, &answer, d);
            rc = -1;
        }
        bool truncated = false;
        if (rc == 0 && !catalog_s3_parse_list(answer.data ? answer.data : "", answer.len,
                                              collect_key, names, &truncated, &token)) {
            diag_error(d, "catalogue: S3 list of https://%s bucket %s prefix %s: the answer is "
                       "not a ListBucketResult%s", repo->backup->s3_endpoint,
                       repo->backup->s3_bucket, prefix,
                       truncated ? " (truncated without a continuation token)" : "");
            rc = -1;
        }
        free(answer.data);
        if (rc == 0 && !truncated)
            break;
    }
    free(token);
    free(eprefix);
    return rc;
}

/* ------------------------------------------------------------------ posix */

static char *posix_dir(const struct catalog_repo *repo, const char *cluster)
{
    return xasprintf("%s/%s/%s", repo->ref->path, CATALOG_DIR, cluster);
}

/* mkdir -p of dir below the repository path (which must exist: pgBackRest's). */
static int posix_mkdirs(const struct catalog_repo *repo, const char *dir, struct diag *d)
{
    struct stat st;
    if (stat(repo->ref->path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        diag_error(d, "catalogue: the repository %s is not a directory (%s); expected "
                   "BACKUP_REPO_PATH to be the pgBackRest repository", repo->ref->path,
                   errno ? strerror(errno) : "not a directory");
        return -1;
    }
    char *p = xstrdup(dir);
    for (char *s = p + strlen(repo->ref->path) + 1; ; s++) {
        bool end = *s == '\0';
        if (*s == '/' || end) {
            *s = '\0';
            if (mkdir(p, 0750) != 0 && errno != EEXIST) {
                diag_error(d, "catalogue: cannot create the directory %s: %s", p,
                           strerror(errno));
                free(p);
                return -1;
            }
            if (end)
                break;
            *s = '/';
        }
    }
    free(p);
    return 0;
}

/* ------------------------------------------------------------------ the calls */

static bool names_ok(const char *cluster, const char *name, struct diag *d)
{
    if (!catalog_name_valid(cluster)) {
        diag_error(d, "catalogue: \"%s\" is not a cluster name; expected 1-63 of A-Za-z0-9_.-",
                   cluster ? cluster : "");
        return false;
    }
    if (name && !catalog_name_valid(name)) {
        diag_error(d, "catalogue: \"%.80s\" is not a restore point name; expected 1-63 of "
                   "A-Za-z0-9_.-", name);
        return false;
    }
    return true;
}

int catalog_write(const struct catalog_repo *repo, const char *cluster, const char *name,
                  const char *json, struct diag *d)
{
    if (!names_ok(cluster, name, d))
        return -1;
    if (repo->backup->repo == BACKUP_REPO_S3) {
        char *prefix = s3_prefix(repo, cluster);
        char *key = xasprintf("%s%s.json", prefix, name);
        int rc = s3_put(repo, key, json, d);
        free(key);
        free(prefix);
        return rc;
    }
    char *dir = posix_dir(repo, cluster);
    int rc = posix_mkdirs(repo, dir, d);
    if (rc == 0) {
        char *path = xasprintf("%s/%s.json", dir, name);
        rc = fsprep_write_atomic(path, json, strlen(json), 0600, NULL, d);
        free(path);
    }
    free(dir);
    return rc;
}

int catalog_read(const struct catalog_repo *repo, const char *cluster, const char *name,
                 char **json, struct diag *d)
{
    if (!names_ok(cluster, name, d))
        return -1;
    if (repo->backup->repo == BACKUP_REPO_S3) {
        char *prefix = s3_prefix(repo, cluster);
        char *key = xasprintf("%s%s.json", prefix, name);
        int rc = s3_get(repo, key, json, d);
        free(key);
        free(prefix);
        return rc;
    }
    char *path = xasprintf("%s/%s/%s/%s.json", repo->ref->path, CATALOG_DIR, cluster, name);
    size_t len;
    int err = input_read_file(path, DOC_MAX, json, &len);
    int rc = 0;
    if (err == ENOENT) {
        rc = 1;
    } else if (err) {
        diag_error(d, "catalogue: cannot read %s: %s", path,
                   err == EFBIG ? "larger than 64 KiB" : strerror(err));
        rc = -1;
    }
    free(path);
    return rc;
}

int catalog_remove(const struct catalog_repo *repo, const char *cluster, const char *name,
                   struct diag *d)
{
    if (!names_ok(cluster, name, d))
        return -1;
    if (repo->backup->repo == BACKUP_REPO_S3) {
        char *prefix = s3_prefix(repo, cluster);
        char *key = xasprintf("%s%s.json", prefix, name);
        struct buffer answer = {0};
        long status = 0;
        int rc = s3_request(repo, "DELETE", key, NULL, NULL, &answer, &status, d);
        if (rc == 0 && status != 404 && (status < 200 || status > 299)) {
            s3_error(repo, "DELETE", key, status, &answer, d);
            rc = -1;
        }
        free(answer.data);
        free(key);
        free(prefix);
        return rc;
    }
    char *dir = posix_dir(repo, cluster);
    char *path = xasprintf("%s/%s.json", dir, name);
    int rc = 0;
    if (unlink(path) < 0 && errno != ENOENT) {
        diag_error(d, "catalogue: cannot remove %s: %s", path, strerror(errno));
        rc = -1;
    } else {
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0) {
            (void)fsync(fd); /* the removal itself is durable; an fsync error changes nothing */
            close(fd);
        }
    }
    free(path);
    free(dir);
    return rc;
}

/* The time of the entry named name: from the name when generated, else from its document. */
static int entry_time(const struct catalog_repo *repo, const char *cluster, const char *name,
                      time_t *t, bool *present, struct diag *d)
{
    *present = true;
    if (catalog_name_time(name, t))
        return 0;
    char *json = NULL;
    int rc = catalog_read(repo, cluster, name, &json, d);
    if (rc == 1) {
        *present = false; /* removed meanwhile */
        return 0;
    }
    if (rc < 0)
        return -1;
    char *doc_name = NULL;
    bool ok = catalog_parse_entry(json, strlen(json), &doc_name, t) &&
              strcmp(doc_name, name) == 0;
    free(doc_name);
    free(json);
    if (!ok) {
        diag_warn(d, "catalogue: the entry %s of cluster %s is not a restore point document "
                  "(name and RFC 3339 time); left out", name, cluster);
        *present = false;
    }
    return 0;
}

int catalog_list(const struct catalog_repo *repo, const char *cluster, struct catalog_list *out,
                 struct diag *d)
{
    out->items = NULL;
    out->count = 0;
    if (!names_ok(cluster, NULL, d))
        return -1;
    struct s3_names names = {0};
    int rc = 0;
    if (repo->backup->repo == BACKUP_REPO_S3) {
        char *prefix = s3_prefix(repo, cluster);
        rc = s3_list_names(repo, prefix, &names, d);
        free(prefix);
    } else {
        char *dir = posix_dir(repo, cluster);
        DIR *dh = opendir(dir);
        if (!dh && errno != ENOENT) {
            diag_error(d, "catalogue: cannot read the directory %s: %s", dir, strerror(errno));
            rc = -1;
        }
        struct dirent *e;
        while (dh && (e = readdir(dh)) != NULL) {
            char *name = name_of_file(e->d_name);
            if (!name)
                continue;
            char **more = realloc(names.names, (names.count + 1) * sizeof *more);
            if (!more)
                abort();
            names.names = more;
            names.names[names.count++] = name;
        }
        if (dh)
            closedir(dh);
        free(dir);
    }
    for (size_t i = 0; i < names.count; i++) {
        time_t t = 0;
        bool present = false;
        if (rc == 0 && entry_time(repo, cluster, names.names[i], &t, &present, d) < 0)
            rc = -1;
        if (rc == 0 && present)
            list_add(out, names.names[i], t);
        free(names.names[i]);
    }
    free(names.names);
    if (rc < 0) {
        catalog_list_free(out);
        return -1;
    }
    if (out->count > 1)
        qsort(out->items, out->count, sizeof out->items[0], by_time_then_name);
    return 0;
}
