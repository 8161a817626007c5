/* config.c: environment + mounted files -> struct config (see config.h and
 * docs/citus-init.md). Every check appends to the diag list and loading goes on, so one run
 * reports every problem. Messages name the variable or file, show what was found (never a
 * secret) and say what is expected. */
#include "config.h"

#include "input.h"
#include "xalloc.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECRET_MAX_BYTES 4096
#define EXTENSIONS_FILE_MAX_BYTES (1024 * 1024)
#define PG_LIB_ROOT "/usr/lib/postgresql"

extern char **environ;

struct loader {
    env_lookup_fn env;
    void *ctx;
    struct diag *d;
    bool secrets_from_env; /* the agent: passwords only from env (PID 1 hands them over) */
    bool pg_port_ok;       /* PG_PORT was valid (or unset): PATRONI_API_PORT is compared */
    char **twice;          /* names already reported as present twice (env_lookup_process) */
    size_t twice_count;
};

static char *const *process_env(void *ctx)
{
    return ctx ? (char *const *)ctx : environ;
}

static bool env_entry_is(const char *entry, const char *name, size_t len)
{
    return strncmp(entry, name, len) == 0 && entry[len] == '=';
}

const char *env_lookup_process(const char *name, void *ctx)
{
    size_t len = strlen(name);
    for (char *const *e = process_env(ctx); e && *e; e++)
        if (env_entry_is(*e, name, len))
            return *e + len + 1;
    return NULL;
}

/* With the process environment (a list, where a name can be present twice): a variable we
 * read that is there more than once is an error naming it, reported once, never its values
 * (a password may be among them). Which copy a reader takes differs (getenv, Patroni, a
 * shell), so none is taken silently. */
static void check_present_once(struct loader *ld, const char *name)
{
    if (ld->env != env_lookup_process)
        return;
    size_t len = strlen(name), n = 0;
    for (char *const *e = process_env(ld->ctx); e && *e; e++)
        n += env_entry_is(*e, name, len);
    if (n < 2)
        return;
    for (size_t i = 0; i < ld->twice_count; i++)
        if (strcmp(ld->twice[i], name) == 0)
            return;
    char **list = realloc(ld->twice, (ld->twice_count + 1) * sizeof *list);
    if (!list)
        abort();
    ld->twice = list;
    ld->twice[ld->twice_count++] = xstrdup(name);
    diag_error(ld->d, "%s: present %zu times in the environment; expected each variable once "
               "(which copy a program reads differs)", name, n);
}

/* A found value as it appears in a message: escaped, and cut after about 80 bytes. */
#define SHOW_MAX 400
static const char *show(char buf[SHOW_MAX], const char *s)
{
    size_t o = 0, n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p && o < SHOW_MAX - 8; p++, n++) {
        if (n >= 80 && (*p & 0xc0) != 0x80) { /* cut between characters */
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (*p == '"' || *p == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)*p;
        } else if (*p < 0x20 || *p == 0x7f) {
            o += (size_t)snprintf(buf + o, SHOW_MAX - o, "\\x%02x", *p);
        } else {
            buf[o++] = (char)*p;
        }
    }
    buf[o] = '\0';
    return buf;
}

/* ---- syntax checks --------------------------------------------------------------------- */

bool extension_name_valid(const char *name)
{
    if (!name || !((*name >= 'a' && *name <= 'z') || *name == '_'))
        return false;
    size_t n = 0;
    for (const char *p = name; *p; p++, n++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '$'))
            return false;
    }
    return n < 64;
}

static bool is_ip_address(const char *s)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* RFC 1123 host name: labels of letters, digits and '-', not starting or ending with '-'. */
static bool is_dns_name(const char *s, bool lowercase_only)
{
    size_t total = strlen(s), label = 0;
    if (total == 0 || total > 253)
        return false;
    char prev = '.';
    for (const char *p = s; *p; p++) {
        char c = *p;
        if (c == '.') {
            if (label == 0 || prev == '-')
                return false;
            label = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                   (!lowercase_only && c >= 'A' && c <= 'Z')) {
            if (++label > 63)
                return false;
        } else if (c == '-') {
            if (label == 0 || ++label > 63)
                return false;
        } else {
            return false;
        }
        prev = c;
    }
    return label > 0 && prev != '-';
}

static bool is_dns_label(const char *s)
{
    return strchr(s, '.') == NULL && is_dns_name(s, true);
}

/* Kubernetes label name part: [A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?, at most 63. */
static bool is_label_name(const char *s, bool allow_empty)
{
    size_t n = strlen(s);
    if (n == 0)
        return allow_empty;
    if (n > 63)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && ((i == 0 || i == n - 1) || !(c == '-' || c == '_' || c == '.')))
            return false;
    }
    return true;
}

static bool is_label_key(const char *s)
{
    const char *slash = strchr(s, '/');
    if (!slash)
        return is_label_name(s, false);
    char prefix[254];
    size_t n = (size_t)(slash - s);
    if (n == 0 || n >= sizeof(prefix))
        return false;
    memcpy(prefix, s, n);
    prefix[n] = '\0';
    return is_dns_name(prefix, true) && is_label_name(slash + 1, false);
}

static bool is_user_name(const char *s)
{
    if (!*s || strlen(s) > 32 || *s == '-')
        return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

/* ---- variable readers ------------------------------------------------------------------ */

/* The variable's value; unset and empty are the same (Kubernetes renders empty values). */
static const char *raw(struct loader *ld, const char *name)
{
    check_present_once(ld, name);
    const char *v = ld->env(name, ld->ctx);
    return (v && *v) ? v : NULL;
}

/* A text variable or its default (may be NULL); NULL also after reporting invalid UTF-8. */
static char *take_str(struct loader *ld, const char *name, const char *def)
{
    const char *v = raw(ld, name);
    if (!v)
        return xstrdup(def);
    if (!utf8_valid(v)) {
        diag_error(ld->d, "%s: value is not valid UTF-8; expected UTF-8 text", name);
        return NULL;
    }
    return xstrdup(v);
}

static char *take_required(struct loader *ld, const char *name, const char *expected)
{
    if (!raw(ld, name)) {
        diag_error(ld->d, "%s: not set; expected %s", name, expected);
        return NULL;
    }
    return take_str(ld, name, NULL);
}

/* An absolute path without control characters (a newline would end a postgresql.conf value
 * and a pg_hba line). A rejected path is NULL after the message. */
static char *take_path(struct loader *ld, const char *name, const char *def)
{
    char *v = take_str(ld, name, def);
    char b[SHOW_MAX];
    if (v && v[0] != '/') {
        diag_error(ld->d, "%s: \"%s\" is not an absolute path; expected a path starting with /",
                   name, show(b, v));
        free(v);
        return NULL;
    }
    for (const unsigned char *p = (const unsigned char *)v; p && *p; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            diag_error(ld->d, "%s: \"%s\" holds a control character; expected a path of "
                       "printable characters", name, show(b, v));
            free(v);
            return NULL;
        }
    }
    return v;
}

/* Integers are plain decimal numbers: digits without '+', without leading zeros (but "0"),
 * '-' only before a non-zero number (out of range where negatives are not allowed). Returns
 * false after reporting a problem (out keeps def): derived checks then stay quiet. */
static bool take_int(struct loader *ld, const char *name, int def, int min, int max, int *out)
{
    *out = def;
    const char *v = raw(ld, name);
    if (!v)
        return true;
    char expected[96], b[SHOW_MAX];
    if (max == INT_MAX)
        snprintf(expected, sizeof(expected), "an integer >= %d", min);
    else
        snprintf(expected, sizeof(expected), "an integer from %d to %d", min, max);

    const char *p = v + (*v == '-' || *v == '+');
    bool digits = *p != '\0';
    for (const char *q = p; *q; q++)
        if (*q < '0' || *q > '9')
            digits = false;
    if (!digits) {
        diag_error(ld->d, "%s: \"%s\" is not a number; expected %s", name, show(b, v), expected);
        return false;
    }
    if (*v == '+' || (p[0] == '0' && (p[1] != '\0' || *v == '-'))) {
        diag_error(ld->d, "%s: \"%s\" is not a plain decimal number (no '+', no leading zeros); "
                   "expected %s", name, show(b, v), expected);
        return false;
    }
    errno = 0;
    long long n = strtoll(v, NULL, 10);
    if (errno == ERANGE || n < min || n > max) {
        diag_error(ld->d, "%s: \"%s\" is out of range; expected %s", name, show(b, v), expected);
        return false;
    }
    *out = (int)n;
    return true;
}

int config_int_setting(const char *name, int def, int min, int max, int *out, struct diag *d)
{
    struct loader ld = {.env = env_lookup_process, .d = d};
    return take_int(&ld, name, def, min, max, out) ? 0 : -1;
}

/* Booleans, like every enumerated value, are case-insensitive ASCII. false after reporting. */
static bool take_bool(struct loader *ld, const char *name, bool def, bool *out)
{
    *out = def;
    const char *v = raw(ld, name);
    if (!v)
        return true;
    static const char *const yes[] = {"true", "1", "yes", "on"};
    static const char *const no[] = {"false", "0", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    char b[SHOW_MAX];
    diag_error(ld->d, "%s: \"%s\" is not a boolean; expected true/false, 1/0, yes/no or on/off",
               name, show(b, v));
    return false;
}

/* false after reporting a problem (also for NULL: a value already reported). */
static bool check_identifier(struct loader *ld, const char *name, const char *value)
{
    if (value && !extension_name_valid(value)) {
        char b[SHOW_MAX];
        diag_error(ld->d,
                   "%s: \"%s\" is not a valid identifier; expected lowercase letters, digits, "
                   "'_' and '$', starting with a letter or '_', at most 63 bytes",
                   name, show(b, value));
        return false;
    }
    return value != NULL;
}

/* ---- secrets ----------------------------------------------------------------------------- */

static void free_secret(char *s)
{
    if (s)
        input_free_wiped(s, strlen(s));
}

/* Password from SECRETS_DIR/<KEY variable>; the env variable only when the file does not
 * exist. `what` names the secret in messages ("superuser password"). */
static char *take_secret(struct loader *ld, const char *secrets_dir, const char *key_var,
                         const char *key_default, const char *env_var, const char *what)
{
    char b[SHOW_MAX];
    char *key = take_str(ld, key_var, key_default);
    if (!key)
        return NULL;
    if (strchr(key, '/') || strcmp(key, ".") == 0 || strcmp(key, "..") == 0) {
        diag_error(ld->d, "%s: \"%s\" is not a file name; expected a key of the secret (no '/')",
                   key_var, show(b, key));
        free(key);
        return NULL;
    }
    if (!secrets_dir) {
        free(key);
        return NULL;
    }
    if (ld->secrets_from_env) {
        free(key);
        const char *v = raw(ld, env_var);
        if (!v)
            diag_error(ld->d, "%s: not handed over on the agent's stdin; expected the %s from "
                       "citus-init (PID 1), which starts the agent", env_var, what);
        return v ? xstrdup(v) : NULL;
    }
    char *path = xasprintf("%s/%s", secrets_dir, key);
    free(key);

    char *text = NULL;
    size_t len = 0;
    /* Only a file that is not there at all lets the variable in: a dangling symlink, a
     * directory or an unreadable file is a broken mount, never masked by the fallback. */
    struct stat st;
    int err = lstat(path, &st) < 0 ? errno : input_read_file(path, SECRET_MAX_BYTES, &text, &len);
    if (err == ENOENT && lstat(path, &st) == 0) {
        diag_error(ld->d, "%s: is a symbolic link to nothing; expected a file with the %s (%s "
                   "is used only when no such file exists)", path, what, env_var);
        free(path);
        return NULL;
    }
    if (err == ENOENT) {
        const char *v = raw(ld, env_var);
        if (!v) {
            diag_error(ld->d, "%s: not set and %s does not exist; expected the %s in that file "
                       "or in %s", env_var, path, what, env_var);
        } else if (!utf8_valid(v)) {
            diag_error(ld->d, "%s: value is not valid UTF-8; expected the %s as UTF-8 text",
                       env_var, what);
        } else {
            text = xstrdup(v);
        }
        free(path);
        return text;
    }
    if (err == EFBIG) {
        diag_error(ld->d, "%s: file is larger than %d bytes; expected the %s", path,
                   SECRET_MAX_BYTES, what);
    } else if (err == EISDIR || err == EINVAL) {
        diag_error(ld->d, "%s: is not a regular file; expected a file with the %s", path, what);
    } else if (err) {
        diag_error(ld->d, "%s: cannot be read (%s); expected a readable file with the %s", path,
                   strerror(err), what);
    } else {
        /* One line end at the very end goes ("\n" or "\r\n"), nothing else: other
         * whitespace, a lone "\r" and further newlines are part of the password. */
        if (len > 0 && text[len - 1] == '\n') {
            text[--len] = '\0';
            if (len > 0 && text[len - 1] == '\r')
                text[--len] = '\0';
        }
        if (len == 0) {
            diag_error(ld->d, "%s: file is empty; expected the %s", path, what);
        } else if (strlen(text) != len) {
            diag_error(ld->d, "%s: file contains a NUL byte; expected the %s as text", path, what);
        } else if (!utf8_valid(text)) {
            diag_error(ld->d, "%s: file is not valid UTF-8; expected the %s as UTF-8 text", path,
                       what);
        } else {
            free(path);
            return text;
        }
        input_free_wiped(text, len);
    }
    free(path);
    return NULL;
}

/* ---- extension lists --------------------------------------------------------------------- */

void extension_list_free(struct extension_list *list)
{
    for (size_t i = 0; i < list->count; i++) {
        free(list->items[i].name);
        free(list->items[i].schema);
    }
    free(list->items);
    list->items = NULL;
    list->count = 0;
}

static bool same_schema(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* The names of a list being parsed, for linear duplicate checks: open addressing, each slot
 * an index into list->items plus one (0: empty), at most half full. */
struct name_set {
    size_t *slots;
    size_t mask;
    size_t cap_items; /* list->items has room for this many (grown geometrically) */
};

static size_t hash_name(const char *s)
{
    size_t h = 14695981039346656037ULL; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return h;
}

/* The slot holding name, or the empty slot where it belongs. */
static size_t *name_set_slot(const struct name_set *set, const struct extension_list *list,
                             const char *name)
{
    for (size_t i = hash_name(name) & set->mask;; i = (i + 1) & set->mask) {
        size_t *slot = &set->slots[i];
        if (*slot == 0 || strcmp(list->items[*slot - 1].name, name) == 0)
            return slot;
    }
}

/* Room for the list's entries and up to `more` new ones (never more than the limit). */
static void name_set_init(struct name_set *set, const struct extension_list *list, size_t more)
{
    if (more > EXTENSIONS_MAX_COUNT)
        more = EXTENSIONS_MAX_COUNT;
    size_t cap = 16;
    while (cap < 2 * (list->count + more + 1))
        cap *= 2;
    set->slots = calloc(cap, sizeof *set->slots);
    if (!set->slots)
        abort();
    set->mask = cap - 1;
    set->cap_items = list->count;
    for (size_t i = 0; i < list->count; i++) {
        size_t *slot = name_set_slot(set, list, list->items[i].name);
        if (*slot == 0)
            *slot = i + 1;
    }
}

/* One entry `name[:schema]`; `where` is the origin, with the line when the text has several.
 * Returns 0, -1 for a bad entry, -2 when the list is full (reported once by the caller). */
static int extension_entry(struct extension_list *list, struct name_set *set, const char *entry,
                           const char *where, struct diag *d)
{
    char b[SHOW_MAX];
    char *name = xstrdup(entry);
    char *schema = strchr(name, ':');
    if (schema)
        *schema++ = '\0';
    if (!extension_name_valid(name) || (schema && !extension_name_valid(schema))) {
        diag_error(d, "%s: \"%s\" is not a valid extension entry; expected name[:schema] with "
                   "lowercase identifiers ([a-z_][a-z0-9_$]*, at most 63 bytes)",
                   where, show(b, entry));
        free(name);
        return -1;
    }
    size_t *slot = name_set_slot(set, list, name);
    if (*slot) {
        struct extension_spec *e = &list->items[*slot - 1];
        int rc = 0;
        if (!same_schema(e->schema, schema)) {
            diag_error(d, "%s: \"%s\" names extension %s again with %s schema; expected each "
                       "extension once (it was listed %s%s)", where, show(b, entry), name,
                       schema ? "another" : "no", e->schema ? "with schema " : "without schema",
                       e->schema ? e->schema : "");
            rc = -1;
        }
        free(name);
        return rc;
    }
    if (list->count >= EXTENSIONS_MAX_COUNT) {
        free(name);
        return -2;
    }
    if (list->count == set->cap_items) {
        set->cap_items = set->cap_items ? set->cap_items * 2 : 16;
        struct extension_spec *items = realloc(list->items, set->cap_items * sizeof(*items));
        if (!items)
            abort();
        list->items = items;
    }
    list->items[list->count].schema = schema ? xstrdup(schema) : NULL;
    list->items[list->count].name = name;
    list->count++;
    *slot = list->count;
    return 0;
}

int extension_list_parse(struct extension_list *list, const char *text, const char *origin,
                         struct diag *d)
{
    if (!text)
        return 0;
    size_t text_len = strlen(text);
    const char *end = text + text_len;
    bool multiline = memchr(text, '\n', text_len) != NULL;
    struct name_set set;
    name_set_init(&set, list, text_len / 2 + 1); /* entries are at least 2 bytes apart */
    int errors = 0;
    unsigned line = 1;
    const char *p = text;
    bool full = false;
    while (p < end && !full) {
        /* memchr with the length left: no per-line scan to the end of the text */
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        size_t line_len = eol ? (size_t)(eol - p) : (size_t)(end - p);
        const char *hash = memchr(p, '#', line_len);
        size_t content_len = hash ? (size_t)(hash - p) : line_len;
        char *content = malloc(content_len + 1); /* not strndup: it may scan past the line */
        if (!content)
            abort();
        memcpy(content, p, content_len);
        content[content_len] = '\0';
        char *where = multiline ? xasprintf("%s line %u", origin, line) : xstrdup(origin);
        char *save = NULL;
        for (char *tok = strtok_r(content, " ,\t\r\v\f", &save); tok && !full;
             tok = strtok_r(NULL, " ,\t\r\v\f", &save)) {
            int rc = extension_entry(list, &set, tok, where, d);
            if (rc == -2) {
                diag_error(d, "%s: more than %d extensions (EXTENSIONS and EXTENSIONS_FILE "
                           "together); expected at most %d", where, EXTENSIONS_MAX_COUNT,
                           EXTENSIONS_MAX_COUNT);
                full = true;
            }
            if (rc < 0)
                errors++;
        }
        free(where);
        free(content);
        if (!eol)
            break;
        p = eol + 1;
        line++;
    }
    free(set.slots);
    return errors ? -1 : 0;
}

int extension_list_load_file(struct extension_list *list, const char *path, struct diag *d)
{
    char b[SHOW_MAX];
    char *text = NULL;
    size_t len = 0;
    int err = input_read_file(path, EXTENSIONS_FILE_MAX_BYTES, &text, &len);
    int rc = -1;
    if (err == EFBIG)
        diag_error(d, "EXTENSIONS_FILE: %s is larger than %d bytes; expected a short list of "
                   "extension names", show(b, path), EXTENSIONS_FILE_MAX_BYTES);
    else if (err)
        diag_error(d, "EXTENSIONS_FILE: %s cannot be read (%s); expected a file with extension "
                   "names", show(b, path),
                   err == EISDIR || err == EINVAL ? "not a regular file" : strerror(err));
    else if (strlen(text) != len)
        diag_error(d, "%s: file contains a NUL byte; expected extension names as text",
                   show(b, path));
    else
        rc = extension_list_parse(list, text, path, d);
    free(text);
    return rc;
}

/* ---- derived values ---------------------------------------------------------------------- */

/* path is a regular file we may execute (a directory passes access(X_OK)). */
static bool is_executable_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* Newest /usr/lib/postgresql/<major>/bin that holds an executable postgres. */
static char *detect_pg_bin_dir(void)
{
    DIR *dir = opendir(PG_LIB_ROOT);
    if (!dir)
        return NULL;
    long best = -1;
    struct dirent *de;
    while ((de = readdir(dir))) {
        char *end;
        errno = 0;
        long major = strtol(de->d_name, &end, 10);
        if (errno || end == de->d_name || *end || major <= best)
            continue;
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s/bin/postgres", PG_LIB_ROOT, de->d_name);
        if (is_executable_file(path))
            best = major;
    }
    closedir(dir);
    return best < 0 ? NULL : xasprintf("%s/%ld/bin", PG_LIB_ROOT, best);
}

static void load_pg_bin_dir(struct loader *ld, struct config *cfg)
{
    char b[SHOW_MAX];
    cfg->pg_bin_dir = take_path(ld, "PG_BIN_DIR", NULL);
    if (cfg->pg_bin_dir) {
        char *postgres = xasprintf("%s/postgres", cfg->pg_bin_dir);
        if (!is_executable_file(postgres))
            diag_error(ld->d, "PG_BIN_DIR: \"%s\" has no executable postgres (a regular file); "
                       "expected the directory with postgres and pg_ctl",
                       show(b, cfg->pg_bin_dir));
        free(postgres);
        return;
    }
    if (raw(ld, "PG_BIN_DIR"))
        return; /* not a usable path, already reported */
    cfg->pg_bin_dir = detect_pg_bin_dir();
    if (!cfg->pg_bin_dir)
        diag_error(ld->d, "PG_BIN_DIR: not set and no %s/*/bin/postgres was found; expected "
                   "the directory with postgres and pg_ctl", PG_LIB_ROOT);
}

/* host:port with a port from 1 to 65535; IPv6 hosts in brackets. */
static bool is_host_port(const char *s)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || !colon[1] || strlen(colon + 1) > 5 || colon[1] == '0')
        return false; /* a port is a plain decimal number: no leading zeros */
    int port = 0;
    for (const char *p = colon + 1; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        port = port * 10 + (*p - '0');
    }
    if (port < 1 || port > 65535)
        return false;
    size_t hlen = (size_t)(colon - s);
    char host[256];
    if (hlen >= sizeof(host))
        return false;
    memcpy(host, s, hlen);
    host[hlen] = '\0';
    if (host[0] == '[') {
        if (hlen < 3 || host[hlen - 1] != ']')
            return false;
        host[hlen - 1] = '\0';
        unsigned char a[sizeof(struct in6_addr)];
        return inet_pton(AF_INET6, host + 1, a) == 1;
    }
    return strchr(host, ':') == NULL && (is_ip_address(host) || is_dns_name(host, false));
}

/* SYNCHRONOUS_MODE: auto (quorum with Citus, as Patroni itself chooses for a new Citus
 * cluster; off without), quorum, or a boolean (on: Patroni's synchronous_mode true). */
static void load_synchronous_mode(struct loader *ld, struct config *cfg)
{
    const char *v = raw(ld, "SYNCHRONOUS_MODE");
    bool on = false;
    if (!v || strcasecmp(v, "auto") == 0) {
        cfg->synchronous_mode = cfg->citus_enabled ? SYNC_QUORUM : SYNC_OFF;
    } else if (strcasecmp(v, "quorum") == 0) {
        cfg->synchronous_mode = SYNC_QUORUM;
    } else {
        struct diag probe;
        diag_init(&probe);
        struct loader quiet = *ld;
        quiet.d = &probe;
        take_bool(&quiet, "SYNCHRONOUS_MODE", false, &on);
        if (diag_error_count(&probe)) {
            char b[SHOW_MAX];
            diag_error(ld->d, "SYNCHRONOUS_MODE: \"%s\" is not a mode; expected auto, quorum, "
                       "true or false", show(b, v));
        }
        diag_free(&probe);
        cfg->synchronous_mode = on ? SYNC_ON : SYNC_OFF;
    }
}

static void load_dcs(struct loader *ld, struct config *cfg)
{
    char b[SHOW_MAX];
    const char *type = raw(ld, "DCS_TYPE");
    bool known = true;
    if (!type) {
        if (raw(ld, "KUBERNETES_SERVICE_HOST")) {
            cfg->dcs = DCS_KUBERNETES;
        } else if (raw(ld, "ETCD_HOSTS")) {
            cfg->dcs = DCS_ETCD3;
        } else {
            diag_error(ld->d, "DCS_TYPE: not set, and neither KUBERNETES_SERVICE_HOST nor "
                       "ETCD_HOSTS is set; expected kubernetes or etcd3");
            known = false;
        }
    } else if (strcasecmp(type, "kubernetes") == 0) {
        cfg->dcs = DCS_KUBERNETES;
    } else if (strcasecmp(type, "etcd3") == 0) {
        cfg->dcs = DCS_ETCD3;
    } else {
        diag_error(ld->d, "DCS_TYPE: \"%s\" is not a known DCS; expected kubernetes or etcd3",
                   show(b, type));
        known = false;
    }

    if (known && cfg->dcs == DCS_ETCD3) {
        const char *hosts = raw(ld, "ETCD_HOSTS");
        if (!hosts) {
            diag_error(ld->d, "ETCD_HOSTS: not set; expected host:port[,host:port...] because "
                       "DCS_TYPE is etcd3");
        } else {
            char *copy = xstrdup(hosts), *save = NULL;
            size_t n = 0, tokens = 0;
            cfg->etcd_hosts = calloc(strlen(hosts) + 1, sizeof(char *));
            if (!cfg->etcd_hosts)
                abort();
            for (char *tok = strtok_r(copy, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
                tokens++;
                if (is_host_port(tok))
                    cfg->etcd_hosts[n++] = xstrdup(tok);
                else
                    diag_error(ld->d, "ETCD_HOSTS: \"%s\" is not host:port; expected "
                               "host:port[,host:port...] with a port from 1 to 65535",
                               show(b, tok));
            }
            free(copy);
            if (tokens == 0)
                diag_error(ld->d, "ETCD_HOSTS: \"%s\" holds no host:port; expected "
                           "host:port[,host:port...]", show(b, hosts));
        }
    }

    if (known && cfg->dcs == DCS_KUBERNETES) {
        /* the default derives from CLUSTER_NAME: none when that was invalid (reported once) */
        char *def = cfg->cluster_name && is_dns_label(cfg->cluster_name)
                        ? xasprintf("cluster-name=%s", cfg->cluster_name)
                        : NULL;
        char *labels = take_str(ld, "KUBERNETES_LABELS", def);
        free(def);
        if (labels) {
            cfg->k8s_labels = calloc(strlen(labels) + 1, sizeof(*cfg->k8s_labels));
            if (!cfg->k8s_labels)
                abort();
            char *save = NULL, *text = xstrdup(labels);
            size_t tokens = 0;
            for (char *tok = strtok_r(labels, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
                tokens++;
                char *eq = strchr(tok, '=');
                if (eq)
                    *eq = '\0';
                if (!eq || !is_label_key(tok) || !is_label_name(eq + 1, true)) {
                    if (eq)
                        *eq = '=';
                    diag_error(ld->d, "KUBERNETES_LABELS: \"%s\" is not a valid label; expected "
                               "key=value[,key=value...] with Kubernetes label keys and values",
                               show(b, tok));
                    continue;
                }
                bool duplicate = false;
                for (size_t i = 0; i < cfg->k8s_label_count; i++)
                    duplicate |= strcmp(cfg->k8s_labels[i].key, tok) == 0;
                if (duplicate) {
                    diag_error(ld->d, "KUBERNETES_LABELS: label %s is given twice; expected each "
                               "label key once", show(b, tok));
                    continue;
                }
                cfg->k8s_labels[cfg->k8s_label_count].key = xstrdup(tok);
                cfg->k8s_labels[cfg->k8s_label_count].value = xstrdup(eq + 1);
                cfg->k8s_label_count++;
            }
            if (tokens == 0)
                diag_error(ld->d, "KUBERNETES_LABELS: \"%s\" holds no label; expected "
                           "key=value[,key=value...] that select this cluster's pods",
                           show(b, text));
            free(text);
            free(labels);
        }
    }

    bool timing_ok = take_int(ld, "DCS_TTL", 20, 20, INT_MAX, &cfg->ttl);
    timing_ok &= take_int(ld, "DCS_LOOP_WAIT", 10, 1, INT_MAX, &cfg->loop_wait);
    timing_ok &= take_int(ld, "DCS_RETRY_TIMEOUT", 5, 3, INT_MAX, &cfg->retry_timeout);
    long long need = (long long)cfg->loop_wait + 2LL * cfg->retry_timeout;
    if (timing_ok && need > cfg->ttl)
        diag_error(ld->d, "DCS_LOOP_WAIT + 2*DCS_RETRY_TIMEOUT: %d + 2*%d = %lld is more than "
                   "DCS_TTL %d; expected loop_wait + 2*retry_timeout <= ttl",
                   cfg->loop_wait, cfg->retry_timeout, need, cfg->ttl);
    load_synchronous_mode(ld, cfg);
    take_bool(ld, "FAILSAFE_MODE", true, &cfg->failsafe_mode);
}

/* ---- the whole configuration ------------------------------------------------------------- */

static void load_identity(struct loader *ld, struct config *cfg)
{
    char b[SHOW_MAX];
    cfg->pod_name = take_required(ld, "POD_NAME", "the member name, e.g. citusdemo-0-1");
    if (cfg->pod_name && !is_dns_name(cfg->pod_name, true))
        diag_error(ld->d, "POD_NAME: \"%s\" is not a valid member name; expected a DNS name of "
                   "lowercase letters, digits, '-' and '.', e.g. citusdemo-0-1",
                   show(b, cfg->pod_name));
    cfg->pod_ip = take_required(ld, "POD_IP", "the pod's IP address");
    if (cfg->pod_ip && !is_ip_address(cfg->pod_ip))
        diag_error(ld->d, "POD_IP: \"%s\" is not an IP address; expected an IPv4 or IPv6 address",
                   show(b, cfg->pod_ip));
    cfg->pod_namespace = take_str(ld, "POD_NAMESPACE", "default");
    if (cfg->pod_namespace && !is_dns_label(cfg->pod_namespace))
        diag_error(ld->d, "POD_NAMESPACE: \"%s\" is not a valid namespace; expected a DNS label "
                   "of lowercase letters, digits and '-'", show(b, cfg->pod_namespace));
    cfg->cluster_name = take_required(ld, "CLUSTER_NAME", "the cluster name, e.g. citusdemo");
    if (cfg->cluster_name && !is_dns_label(cfg->cluster_name))
        diag_error(ld->d, "CLUSTER_NAME: \"%s\" is not a valid cluster name; expected a DNS "
                   "label of lowercase letters, digits and '-', at most 63 characters",
                   show(b, cfg->cluster_name));
    take_bool(ld, "CITUS_ENABLED", true, &cfg->citus_enabled);
    if (!raw(ld, "CITUS_GROUP"))
        diag_error(ld->d, "CITUS_GROUP: not set; expected an integer >= 0 (0 is the "
                   "coordinator)");
    take_int(ld, "CITUS_GROUP", 0, 0, INT_MAX, &cfg->citus_group);

    cfg->pod_dns_domain = take_str(ld, "POD_DNS_DOMAIN", NULL);
    if (cfg->pod_dns_domain && !is_dns_name(cfg->pod_dns_domain, true))
        diag_error(ld->d, "POD_DNS_DOMAIN: \"%s\" is not a DNS domain; expected e.g. "
                   "citusdemo-0-hl.default.svc.cluster.local", show(b, cfg->pod_dns_domain));

    if (cfg->pod_name && cfg->pod_dns_domain)
        cfg->connect_host = xasprintf("%s.%s", cfg->pod_name, cfg->pod_dns_domain);
    else
        cfg->connect_host = xstrdup(cfg->pod_ip);
    if (cfg->connect_host && !cfg->pod_dns_domain) {
        /* Patroni refuses these as connect_address: other members could not reach them. */
        static const char *const refused[] = {"127.0.0.1", "0.0.0.0", "::1", "::"};
        for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
            if (strcmp(cfg->connect_host, refused[i]) == 0)
                diag_error(ld->d, "POD_IP: \"%s\" cannot be a connect address; expected an "
                           "address other members reach this pod at (e.g. 127.0.10.1 for a "
                           "local cluster)", refused[i]);
    }

    if (cfg->cluster_name && is_dns_label(cfg->cluster_name))
        cfg->scope = cfg->citus_enabled ? xstrdup(cfg->cluster_name)
                                        : xasprintf("%s-%d", cfg->cluster_name, cfg->citus_group);
}

static void load_postgres(struct loader *ld, struct config *cfg)
{
    char b[SHOW_MAX];
    cfg->pgdata = take_path(ld, "PGDATA", "/home/postgres/pgdata/pgroot/data");
    load_pg_bin_dir(ld, cfg);
    cfg->listen_address = take_str(ld, "LISTEN_ADDRESS", "0.0.0.0");
    if (cfg->listen_address && !is_ip_address(cfg->listen_address))
        diag_error(ld->d, "LISTEN_ADDRESS: \"%s\" is not an IP address; expected an IPv4 or "
                   "IPv6 address such as 0.0.0.0", show(b, cfg->listen_address));
    bool api_port_ok = take_int(ld, "PATRONI_API_PORT", 8008, 1, 65535, &cfg->api_port);
    if (api_port_ok && ld->pg_port_ok && cfg->api_port == cfg->pg_port)
        diag_error(ld->d, "PATRONI_API_PORT: %d is also PG_PORT; expected two different ports",
                   cfg->api_port);
    cfg->run_as_user = take_str(ld, "RUN_AS_USER", "postgres");
    if (cfg->run_as_user && !is_user_name(cfg->run_as_user))
        diag_error(ld->d, "RUN_AS_USER: \"%s\" is not a valid user name; expected letters, "
                   "digits, '_', '-' and '.', at most 32 characters", show(b, cfg->run_as_user));
    cfg->run_dir = take_path(ld, "RUN_DIR", "/run/citus-init");
    cfg->patroni_command = take_str(ld, "PATRONI_COMMAND", "patroni");
}

/* Patroni's REST API: basic auth on POST/PUT/PATCH/DELETE unless RESTAPI_AUTH is false. */
static void load_restapi_auth(struct loader *ld, struct config *cfg, const char *secrets_dir)
{
    char b[SHOW_MAX];
    bool enabled;
    take_bool(ld, "RESTAPI_AUTH", true, &enabled);
    if (!enabled)
        return;
    cfg->restapi_username = take_str(ld, "RESTAPI_USERNAME", "patroni");
    /* Patroni joins them as username:password for HTTP basic auth (RFC 7617: no ':') */
    if (cfg->restapi_username && !is_user_name(cfg->restapi_username))
        diag_error(ld->d, "RESTAPI_USERNAME: \"%s\" is not a valid user name; expected letters, "
                   "digits, '_', '-' and '.', at most 32 characters",
                   show(b, cfg->restapi_username));
    cfg->restapi_password = take_secret(ld, secrets_dir, "RESTAPI_PASSWORD_KEY",
                                        "restapi-password", "RESTAPI_PASSWORD",
                                        "Patroni REST API password");
}

/* APP_USERNAME (empty: no application role) and its password, like the other secrets. */
static void load_app_role(struct loader *ld, struct config *cfg, const char *secrets_dir)
{
    char b[SHOW_MAX];
    cfg->app_username = take_str(ld, "APP_USERNAME", NULL);
    if (!cfg->app_username)
        return;
    if (!check_identifier(ld, "APP_USERNAME", cfg->app_username))
        return;
    const char *others[] = {cfg->superuser_username, cfg->replication_username};
    for (size_t i = 0; i < 2; i++)
        if (others[i] && strcmp(cfg->app_username, others[i]) == 0)
            diag_error(ld->d, "APP_USERNAME: \"%s\" is also %s; expected a role of its own for "
                       "applications", show(b, cfg->app_username),
                       i == 0 ? "SUPERUSER_USERNAME" : "REPLICATION_USERNAME");
    cfg->app_password = take_secret(ld, secrets_dir, "APP_PASSWORD_KEY", "app-password",
                                    "APP_PASSWORD", "application role's password");
}

static void load_extensions(struct loader *ld, struct config *cfg)
{
    char *inline_list = take_str(ld, "EXTENSIONS", NULL);
    extension_list_parse(&cfg->extensions, inline_list, "EXTENSIONS", ld->d);
    free(inline_list);

    cfg->extensions_file = take_path(ld, "EXTENSIONS_FILE", NULL);
    if (cfg->extensions_file && cfg->extensions_file[0] == '/')
        extension_list_load_file(&cfg->extensions, cfg->extensions_file, ld->d);
    take_int(ld, "EXTENSIONS_MAX_ATTEMPTS", 60, 1, INT_MAX, &cfg->extensions_max_attempts);
    take_int(ld, "EXTENSIONS_RETRY_DELAY", 5, 0, 86400, &cfg->extensions_retry_delay);
    take_int(ld, "LEADER_POLL_INTERVAL_MS", 1000, 10, 3600000, &cfg->leader_poll_interval_ms);
}

static void load_tls(struct loader *ld, struct config *cfg)
{
    char b[SHOW_MAX];
    /* the rules below derive from SSL_ENABLED: quiet when it was invalid (reported once) */
    bool ssl_ok = take_bool(ld, "SSL_ENABLED", false, &cfg->ssl_enabled);
    cfg->ssl_mode = SSL_MODE_VERIFY_CA;
    const char *mode = raw(ld, "SSL_MODE");
    if (mode) {
        static const enum ssl_mode modes[] = {SSL_MODE_PREFER, SSL_MODE_REQUIRE,
                                              SSL_MODE_VERIFY_CA, SSL_MODE_VERIFY_FULL};
        bool found = false;
        for (size_t i = 0; i < 4; i++) {
            if (strcasecmp(mode, ssl_mode_name(modes[i])) == 0) {
                cfg->ssl_mode = modes[i];
                found = true;
            }
        }
        if (!found)
            diag_error(ld->d, "SSL_MODE: \"%s\" is not a known mode; expected one of prefer, "
                       "require, verify-ca, verify-full", show(b, mode));
    }
    cfg->ssl_cert_dir = take_path(ld, "SSL_CERT_DIR", "/etc/ssl/certs/postgresql");
    take_bool(ld, "SSL_CLIENT_CERT", false, &cfg->ssl_client_cert);
    if (ssl_ok && cfg->ssl_client_cert && !cfg->ssl_enabled)
        diag_error(ld->d, "SSL_CLIENT_CERT: true while SSL_ENABLED is false; expected "
                   "SSL_ENABLED=true to require client certificates");
    take_bool(ld, "RESTAPI_TLS", cfg->ssl_enabled, &cfg->restapi_tls);
    if (ssl_ok && cfg->restapi_tls && !cfg->ssl_enabled)
        diag_error(ld->d, "RESTAPI_TLS: true while SSL_ENABLED is false; expected "
                   "SSL_ENABLED=true (the REST API serves the member's PostgreSQL certificate)");
}

static void load_logging(struct loader *ld, struct config *cfg)
{
    char b[SHOW_MAX];
    const char *v = raw(ld, "LOG_FORMAT");
    cfg->log_format = LOG_FORMAT_LOGFMT;
    if (v && log_parse_format(v, &cfg->log_format) < 0)
        diag_error(ld->d, "LOG_FORMAT: \"%s\" is not a known format; expected logfmt or json",
                   show(b, v));
    v = raw(ld, "LOG_LEVEL");
    cfg->log_level = LOG_INFO;
    if (v && log_parse_level(v, &cfg->log_level) < 0)
        diag_error(ld->d, "LOG_LEVEL: \"%s\" is not a known level; expected one of debug, info, "
                   "warn, error", show(b, v));
}

static int load_all(struct config *cfg, enum config_purpose purpose, struct loader ld);

int config_load(struct config *cfg, enum config_purpose purpose, env_lookup_fn env, void *env_ctx,
                struct diag *d)
{
    return load_all(cfg, purpose, (struct loader){.env = env, .ctx = env_ctx, .d = d});
}

int config_load_agent(struct config *cfg, env_lookup_fn env, void *env_ctx, struct diag *d)
{
    return load_all(cfg, CONFIG_POD,
                    (struct loader){.env = env, .ctx = env_ctx, .d = d, .secrets_from_env = true});
}

static int load_all(struct config *cfg, enum config_purpose purpose, struct loader ld)
{
    char b[SHOW_MAX];
    struct diag *d = ld.d;
    size_t errors_before = diag_error_count(d);
    memset(cfg, 0, sizeof(*cfg));
    cfg->purpose = purpose;

    load_logging(&ld, cfg);
    if (purpose == CONFIG_POD)
        load_identity(&ld, cfg);
    cfg->citus_database = take_str(&ld, "CITUS_DATABASE", "citus");
    check_identifier(&ld, "CITUS_DATABASE", cfg->citus_database);
    ld.pg_port_ok = take_int(&ld, "PG_PORT", 5432, 1, 65535, &cfg->pg_port);

    if (purpose == CONFIG_POD) {
        load_dcs(&ld, cfg);
        load_postgres(&ld, cfg);
    } else {
        cfg->coordinator_host = take_required(&ld, "COORDINATOR_HOST", "the coordinator's "
                                              "service host name for extensions --wait");
        if (cfg->coordinator_host && !is_ip_address(cfg->coordinator_host) &&
            !is_dns_name(cfg->coordinator_host, false))
            diag_error(d, "COORDINATOR_HOST: \"%s\" is not a host name or IP address; expected "
                       "e.g. citusdemo-0.default.svc.cluster.local",
                       show(b, cfg->coordinator_host));
    }

    char *secrets_dir = take_path(&ld, "SECRETS_DIR", "/etc/patroni/secrets");
    if (secrets_dir && secrets_dir[0] != '/') {
        free(secrets_dir);
        secrets_dir = NULL;
    }
    cfg->superuser_username = take_str(&ld, "SUPERUSER_USERNAME", "postgres");
    bool superuser_ok = check_identifier(&ld, "SUPERUSER_USERNAME", cfg->superuser_username);
    cfg->superuser_password = take_secret(&ld, secrets_dir, "SUPERUSER_PASSWORD_KEY",
                                          "superuser-password", "SUPERUSER_PASSWORD",
                                          "superuser password");
    if (purpose == CONFIG_POD) {
        cfg->replication_username = take_str(&ld, "REPLICATION_USERNAME", "replicator");
        bool replication_ok = check_identifier(&ld, "REPLICATION_USERNAME",
                                               cfg->replication_username);
        if (replication_ok && superuser_ok &&
            strcmp(cfg->replication_username, cfg->superuser_username) == 0)
            diag_error(d, "REPLICATION_USERNAME: \"%s\" is also SUPERUSER_USERNAME; expected a "
                       "separate replication user", show(b, cfg->replication_username));
        cfg->replication_password = take_secret(&ld, secrets_dir, "REPLICATION_PASSWORD_KEY",
                                                "replication-password", "REPLICATION_PASSWORD",
                                                "replication password");
        load_restapi_auth(&ld, cfg, secrets_dir);
        load_app_role(&ld, cfg, secrets_dir);
    }
    free(secrets_dir);

    load_tls(&ld, cfg);
    load_extensions(&ld, cfg);

    if (purpose == CONFIG_POD) {
        bool ok = take_int(&ld, "SHUTDOWN_DEADLINE", 25, 1, INT_MAX, &cfg->shutdown_deadline);
        ok &= take_int(&ld, "TERMINATION_GRACE_PERIOD", 30, 2, INT_MAX,
                       &cfg->termination_grace_period);
        if (ok && cfg->shutdown_deadline >= cfg->termination_grace_period)
            diag_error(d, "SHUTDOWN_DEADLINE: %d is not below TERMINATION_GRACE_PERIOD %d; "
                       "expected a deadline shorter than the grace period",
                       cfg->shutdown_deadline, cfg->termination_grace_period);
    }
    for (size_t i = 0; i < ld.twice_count; i++)
        free(ld.twice[i]);
    free(ld.twice);
    return diag_error_count(d) > errors_before ? -1 : 0;
}

void config_free(struct config *cfg)
{
    char **strings[] = {
        &cfg->pod_name, &cfg->pod_ip, &cfg->pod_namespace, &cfg->pod_dns_domain,
        &cfg->connect_host, &cfg->cluster_name, &cfg->scope, &cfg->citus_database,
        &cfg->pgdata, &cfg->pg_bin_dir, &cfg->listen_address, &cfg->run_as_user,
        &cfg->run_dir, &cfg->patroni_command, &cfg->superuser_username,
        &cfg->replication_username, &cfg->ssl_cert_dir, &cfg->extensions_file,
        &cfg->coordinator_host, &cfg->restapi_username, &cfg->app_username,
    };
    for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
        free(*strings[i]);
        *strings[i] = NULL;
    }
    free_secret(cfg->superuser_password);
    free_secret(cfg->replication_password);
    free_secret(cfg->restapi_password);
    free_secret(cfg->app_password);
    cfg->superuser_password = cfg->replication_password = cfg->restapi_password = NULL;
    cfg->app_password = NULL;
    if (cfg->etcd_hosts)
        for (char **h = cfg->etcd_hosts; *h; h++)
            free(*h);
    free(cfg->etcd_hosts);
    cfg->etcd_hosts = NULL;
    for (size_t i = 0; i < cfg->k8s_label_count; i++) {
        free(cfg->k8s_labels[i].key);
        free(cfg->k8s_labels[i].value);
    }
    free(cfg->k8s_labels);
    cfg->k8s_labels = NULL;
    cfg->k8s_label_count = 0;
    extension_list_free(&cfg->extensions);
}

const char *ssl_mode_name(enum ssl_mode mode)
{
    switch (mode) {
    case SSL_MODE_PREFER: return "prefer";
    case SSL_MODE_REQUIRE: return "require";
    case SSL_MODE_VERIFY_CA: return "verify-ca";
    case SSL_MODE_VERIFY_FULL: return "verify-full";
    }
    return "verify-ca";
}

char *config_path(const struct config *cfg, const char *relative)
{
    return xasprintf("%s/%s", cfg->run_dir ? cfg->run_dir : "", relative);
}
