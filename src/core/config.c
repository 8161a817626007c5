/* config.c: environment + mounted files -> struct config (see config.h and
 * docs/citus-init.md). Every check appends to the diag list and loading goes on, so one run
 * reports every problem. Messages name the variable or file, show what was found (never a
 * secret) and say what is expected. */
#include "config.h"

#include "cron.h"
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
static bool take_int_ranged(struct loader *ld, const char *name, int def, int min, int max,
                            bool zero_is_off, int *out)
{
    *out = def;
    const char *v = raw(ld, name);
    if (!v)
        return true;
    char expected[96], b[SHOW_MAX];
    if (max == INT_MAX)
        snprintf(expected, sizeof(expected), "%san integer >= %d", zero_is_off ? "0 (off) or " : "",
                 min);
    else
        snprintf(expected, sizeof(expected), "%san integer from %d to %d",
                 zero_is_off ? "0 (off) or " : "", min, max);

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
    if (errno == ERANGE || ((n < min || n > max) && !(zero_is_off && n == 0))) {
        diag_error(ld->d, "%s: \"%s\" is out of range; expected %s", name, show(b, v), expected);
        return false;
    }
    *out = (int)n;
    return true;
}

static bool take_int(struct loader *ld, const char *name, int def, int min, int max, int *out)
{
    return take_int_ranged(ld, name, def, min, max, false, out);
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

static char *read_secret_file(struct loader *ld, const char *path, const char *what,
                              const char *fallback, bool *missing);

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

    bool missing = false;
    char *text = read_secret_file(ld, path, what, env_var, &missing);
    if (missing) {
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
    }
    free(path);
    return text;
}

/* A secret file by the rules of the password files: a readable regular file of at most
 * SECRET_MAX_BYTES of UTF-8 text without NUL bytes, not empty once one line end at its very
 * end ("\n" or "\r\n") is removed. *missing is set (nothing reported) when there is no entry
 * of that name at all; a dangling symbolic link, a directory or an unreadable file is an
 * error. `fallback` names what a missing file lets in (NULL: nothing). The text, or NULL. */
static char *read_secret_file(struct loader *ld, const char *path, const char *what,
                              const char *fallback, bool *missing)
{
    char *text = NULL;
    size_t len = 0;
    *missing = false;
    /* Only a file that is not there at all lets the variable in: a dangling symlink, a
     * directory or an unreadable file is a broken mount, never masked by the fallback. */
    struct stat st;
    int err = lstat(path, &st) < 0 ? errno : input_read_file(path, SECRET_MAX_BYTES, &text, &len);
    if (err == ENOENT && lstat(path, &st) == 0) {
        if (fallback)
            diag_error(ld->d, "%s: is a symbolic link to nothing; expected a file with the %s "
                       "(%s is used only when no such file exists)", path, what, fallback);
        else
            diag_error(ld->d, "%s: is a symbolic link to nothing; expected a file with the %s",
                       path, what);
        return NULL;
    }
    if (err == ENOENT) {
        *missing = true;
        return NULL;
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
            return text;
        }
        input_free_wiped(text, len);
    }
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

/* AGENT_METRICS_PORT, MONITORING_ROLE, MONITORING_OS_USER (after load_postgres and the
 * user names: the port is compared with PG_PORT and PATRONI_API_PORT, the OS user with
 * RUN_AS_USER). */
static void load_monitoring(struct loader *ld, struct config *cfg)
{
    char b[SHOW_MAX];
    if (take_int_ranged(ld, "AGENT_METRICS_PORT", 0, 1, 65535, true, &cfg->agent_metrics_port) &&
        cfg->agent_metrics_port) {
        if (ld->pg_port_ok && cfg->agent_metrics_port == cfg->pg_port)
            diag_error(ld->d, "AGENT_METRICS_PORT: %d is also PG_PORT; expected a port of its "
                       "own for the agent's metrics", cfg->agent_metrics_port);
        else if (cfg->agent_metrics_port == cfg->api_port)
            diag_error(ld->d, "AGENT_METRICS_PORT: %d is also PATRONI_API_PORT; expected a port "
                       "of its own for the agent's metrics", cfg->agent_metrics_port);
    }
    /* A pg_ident line maps the OS user to the role: whoever runs as RUN_AS_USER or root is
     * the superuser already, and the exporter's user must log in as the monitoring role only. */
    char *os_user = take_str(ld, "MONITORING_OS_USER", "nobody");
    if (os_user && !is_user_name(os_user)) {
        diag_error(ld->d, "MONITORING_OS_USER: \"%s\" is not a valid user name; expected "
                   "letters, digits, '_', '-' and '.', at most 32 characters", show(b, os_user));
    } else if (os_user && (strcmp(os_user, "root") == 0 ||
                           (cfg->run_as_user && strcmp(os_user, cfg->run_as_user) == 0))) {
        diag_error(ld->d, "MONITORING_OS_USER: \"%s\" is also %s; expected an OS user of its "
                   "own (default nobody) that logs in as MONITORING_ROLE only", show(b, os_user),
                   strcmp(os_user, "root") == 0 ? "root" : "RUN_AS_USER");
    }
    cfg->monitoring_role = take_str(ld, "MONITORING_ROLE", NULL);
    if (!cfg->monitoring_role) {
        free(os_user);
        return;
    }
    cfg->monitoring_os_user = os_user;
    if (strcmp(cfg->monitoring_role, MONITORING_ROLE_NAME) != 0) {
        diag_error(ld->d, "MONITORING_ROLE: \"%s\" is not supported; expected %s (the role "
                   "monitoring-role.sql defines) or empty (off)", show(b, cfg->monitoring_role),
                   MONITORING_ROLE_NAME);
        return;
    }
    const char *others[] = {cfg->superuser_username, cfg->replication_username,
                            cfg->app_username};
    static const char *const other_names[] = {"SUPERUSER_USERNAME", "REPLICATION_USERNAME",
                                              "APP_USERNAME"};
    for (size_t i = 0; i < 3; i++)
        if (others[i] && strcmp(cfg->monitoring_role, others[i]) == 0)
            diag_error(ld->d, "MONITORING_ROLE: \"%s\" is also %s; expected a role of its own "
                       "for monitoring", show(b, cfg->monitoring_role), other_names[i]);
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

/* ---- backups (docs/backups.md) ----------------------------------------------------------- */

#define CIPHER_PASS_MIN_BYTES 20
#define RESTORE_POINT_NAME_MAX 63

/* A path pgBackRest reads from its configuration file: it refuses "//", and a trailing '/'
 * would double in the paths joined to it (the catalogue); a space at the end would be dropped
 * by pgBackRest's reader. false after reporting. */
static bool check_conf_path(struct loader *ld, const char *name, const char *value)
{
    if (!value)
        return false;
    size_t n = strlen(value);
    const char *why = NULL;
    if (strstr(value, "//"))
        why = "holds //";
    else if (n > 1 && value[n - 1] == '/')
        why = "ends with /";
    else if (value[n - 1] == ' ' || value[n - 1] == '\t')
        why = "ends with white space, which pgBackRest's configuration file drops";
    if (!why)
        return true;
    char b[SHOW_MAX];
    diag_error(ld->d, "%s: \"%s\" %s; expected an absolute path without // and without a "
               "trailing / or space (it goes into pgBackRest's configuration)", name,
               show(b, value), why);
    return false;
}

/* An enumerated value (case-insensitive): the index into names, def when unset; -1 after
 * reporting an unknown value. */
static int take_enum(struct loader *ld, const char *name, const char *const *names, int def,
                     const char *expected)
{
    const char *v = raw(ld, name);
    if (!v)
        return def;
    for (int i = 0; names[i]; i++)
        if (strcasecmp(v, names[i]) == 0)
            return i;
    char b[SHOW_MAX];
    diag_error(ld->d, "%s: \"%s\" is not a known value; expected %s", name, show(b, v), expected);
    return -1;
}

/* One secret of a repository: the file dir/file (PID 1), or the agent's stdin entry
 * `handover`. Beyond the password files' rules it must be one line without white space at
 * either end: pgBackRest's configuration file holds it as key=value on one line and trims it.
 * `why` says why it is needed ("BACKUP_REPO is s3"). */
static char *take_repo_secret(struct loader *ld, const char *dir, const char *file,
                              const char *handover, const char *what, const char *why)
{
    if (ld->secrets_from_env) {
        const char *v = raw(ld, handover);
        if (!v)
            diag_error(ld->d, "%s: not handed over on the agent's stdin; expected the %s from "
                       "citus-init (PID 1), which starts the agent", handover, what);
        return v ? xstrdup(v) : NULL;
    }
    if (!dir)
        return NULL; /* the directory's variable was reported */
    char *path = xasprintf("%s/%s", dir, file);
    bool missing = false;
    char *text = read_secret_file(ld, path, what, NULL, &missing);
    bool bad = text != NULL;
    if (missing)
        diag_error(ld->d, "%s: does not exist; expected the %s in that file (%s)", path, what,
                   why);
    else if (!text)
        ; /* reported by read_secret_file */
    else if (strpbrk(text, "\r\n"))
        diag_error(ld->d, "%s: holds a line break; expected the %s on one line", path, what);
    else if (strchr(" \t", text[0]) || strchr(" \t", text[strlen(text) - 1]))
        diag_error(ld->d, "%s: starts or ends with a space or tab; expected the %s without them "
                   "(pgBackRest's configuration file drops them)", path, what);
    else if (strcmp(file, "cipher-pass") == 0 && strlen(text) < CIPHER_PASS_MIN_BYTES)
        diag_error(ld->d, "%s: is shorter than %d bytes; expected a %s of at least %d bytes",
                   path, CIPHER_PASS_MIN_BYTES, what, CIPHER_PASS_MIN_BYTES);
    else
        bad = false;
    if (bad) {
        input_free_wiped(text, strlen(text));
        text = NULL;
    }
    free(path);
    return text;
}

/* S3 bucket names: 3-63 of a-z, 0-9, '.' and '-', starting and ending with a letter or digit,
 * no "..", not an IPv4 address. */
static bool is_bucket_name(const char *s)
{
    size_t n = strlen(s);
    if (n < 3 || n > 63 || strstr(s, "..") || is_ip_address(s))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && ((i == 0 || i == n - 1) || !(c == '.' || c == '-')))
            return false;
    }
    return true;
}

/* BACKUP_S3_ENDPOINT: host or host:port (port 1-65535, plain decimal), no scheme; the host a
 * DNS name or an IPv4 address. Fills s3_host and s3_port (0: https' default). */
static void load_s3_endpoint(struct loader *ld, struct backup_config *bk)
{
    char b[SHOW_MAX];
    bk->s3_endpoint = take_required(ld, "BACKUP_S3_ENDPOINT", "the S3 endpoint host or "
                                    "host:port (no scheme) because BACKUP_REPO is s3");
    const char *v = bk->s3_endpoint;
    if (!v)
        return;
    if (strstr(v, "://")) {
        diag_error(ld->d, "BACKUP_S3_ENDPOINT: \"%s\" has a scheme; expected only host or "
                   "host:port (the connection is always https)", show(b, v));
        return;
    }
    const char *colon = strchr(v, ':');
    char *host = colon ? xasprintf("%.*s", (int)(colon - v), v) : xstrdup(v);
    bool ok = is_dns_name(host, false) || (is_ip_address(host) && !strchr(host, ':'));
    int port = 0;
    if (ok && colon) {
        const char *p = colon + 1;
        ok = *p && *p != '0' && strlen(p) <= 5;
        for (; ok && *p; p++) {
            ok = *p >= '0' && *p <= '9';
            port = port * 10 + (*p - '0');
        }
        ok = ok && port >= 1 && port <= 65535;
    }
    if (!ok) {
        diag_error(ld->d, "BACKUP_S3_ENDPOINT: \"%s\" is not host or host:port; expected a DNS "
                   "name or IPv4 address, optionally with a port from 1 to 65535", show(b, v));
        free(host);
        return;
    }
    bk->s3_host = host;
    bk->s3_port = port;
}

static void load_s3(struct loader *ld, struct backup_config *bk)
{
    char b[SHOW_MAX];
    load_s3_endpoint(ld, bk);
    bk->s3_bucket = take_required(ld, "BACKUP_S3_BUCKET", "the bucket name because BACKUP_REPO "
                                  "is s3");
    if (bk->s3_bucket && !is_bucket_name(bk->s3_bucket)) {
        diag_error(ld->d, "BACKUP_S3_BUCKET: \"%s\" is not a valid bucket name; expected 3-63 "
                   "lowercase letters, digits, '.' and '-', starting and ending with a letter "
                   "or digit", show(b, bk->s3_bucket));
    }
    bk->s3_region = take_str(ld, "BACKUP_S3_REGION", "us-east-1");
    if (bk->s3_region && !is_label_name(bk->s3_region, false))
        diag_error(ld->d, "BACKUP_S3_REGION: \"%s\" is not a region name; expected letters, "
                   "digits, '-', '_' and '.', at most 63, e.g. us-east-1", show(b, bk->s3_region));
    static const char *const styles[] = {"host", "path", NULL};
    bk->s3_uri_style_path = take_enum(ld, "BACKUP_S3_URI_STYLE", styles, 0, "host or path") == 1;
    bk->s3_ca_file = take_path(ld, "BACKUP_S3_CA_FILE", NULL);
    if (bk->s3_ca_file)
        check_conf_path(ld, "BACKUP_S3_CA_FILE", bk->s3_ca_file);
    take_bool(ld, "BACKUP_S3_VERIFY_TLS", true, &bk->s3_verify_tls);
}

/* The names the agent finds a repository's secrets under on its stdin (pod.c hands them over):
 * s3-key, s3-key-secret, cipher-pass. */
static const char *const own_handover[] = {"BACKUP_S3_KEY", "BACKUP_S3_KEY_SECRET",
                                           "BACKUP_CIPHER_PASS"};
static const char *const source_handover[] = {"RESTORE_S3_KEY", "RESTORE_S3_KEY_SECRET",
                                              "RESTORE_CIPHER_PASS"};

/* The repository's secrets (s3-key, s3-key-secret with s3; cipher-pass with encryption). */
static void load_repo_secrets(struct loader *ld, const struct backup_config *bk,
                              struct backup_repo_ref *ref, const char *const handover[3])
{
    if (bk->repo == BACKUP_REPO_S3) {
        ref->s3_key = take_repo_secret(ld, ref->secret_dir, "s3-key", handover[0],
                                       "S3 access key id", "BACKUP_REPO is s3");
        ref->s3_key_secret = take_repo_secret(ld, ref->secret_dir, "s3-key-secret", handover[1],
                                              "S3 secret access key", "BACKUP_REPO is s3");
    }
    if (bk->encryption)
        ref->cipher_pass = take_repo_secret(ld, ref->secret_dir, "cipher-pass", handover[2],
                                            "repository encryption passphrase",
                                            "BACKUP_ENCRYPTION is true");
}

/* BACKUP_*_SCHEDULE: five cron fields (cron.h), or off (NULL). */
static char *take_schedule(struct loader *ld, const char *name, const char *def)
{
    char *v = take_str(ld, name, def);
    if (!v || strcasecmp(v, "off") == 0) {
        free(v);
        return NULL;
    }
    struct cron c;
    char err[200], b[SHOW_MAX];
    if (cron_parse(v, &c, err, sizeof err) < 0) {
        diag_error(ld->d, "%s: \"%s\" is not a schedule: %s; expected five cron fields "
                   "(minute hour day-of-month month day-of-week, UTC) or off", name, show(b, v),
                   err);
        free(v);
        return NULL;
    }
    return v;
}

/* Two digits at s within lo..hi. */
static bool two_digits(const char *s, int lo, int hi, int *out)
{
    if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
        return false;
    *out = (s[0] - '0') * 10 + (s[1] - '0');
    return *out >= lo && *out <= hi;
}

/* YYYY-MM-DDTHH:MM:SS: the shape only (digits and separators). */
static bool looks_like_time(const char *s)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    for (size_t i = 0; i < sizeof shape - 1; i++) {
        if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i])
            return false;
    }
    return true;
}

/* An RFC 3339 UTC time: YYYY-MM-DDTHH:MM:SS followed by Z or +00:00, a real date. */
static bool is_utc_time(const char *s)
{
    if (!looks_like_time(s) || (strcmp(s + 19, "Z") != 0 && strcmp(s + 19, "+00:00") != 0))
        return false;
    int year = atoi(s), month, day, hour, minute, second;
    if (year < 1 || !two_digits(s + 5, 1, 12, &month) || !two_digits(s + 8, 1, 31, &day) ||
        !two_digits(s + 11, 0, 23, &hour) || !two_digits(s + 14, 0, 59, &minute) ||
        !two_digits(s + 17, 0, 59, &second))
        return false;
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return day <= days[month - 1] + (month == 2 && leap);
}

bool restore_point_name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > RESTORE_POINT_NAME_MAX)
        return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

static void load_restore_target(struct loader *ld, const struct config *cfg,
                                struct backup_config *bk)
{
    char b[SHOW_MAX];
    const char *v = raw(ld, "RESTORE_TARGET");
    if (!v) {
        diag_error(ld->d, "RESTORE_TARGET: not set; expected a restore point name, an RFC 3339 "
                   "UTC time such as 2026-12-02T03:15:00Z, or latest, because "
                   "RESTORE_FROM_CLUSTER is set");
        return;
    }
    if (strcasecmp(v, "latest") == 0) {
        bk->restore_target_kind = RESTORE_TARGET_LATEST;
        if (cfg->citus_enabled && !ld->secrets_from_env)
            diag_warn(ld->d, "RESTORE_TARGET: latest with Citus: every group replays its own "
                      "archive to its end, so the groups are not consistent with each other "
                      "(a distributed transaction may be on some and not on others); a restore "
                      "point name restores a consistent cluster");
        return;
    }
    if (looks_like_time(v)) {
        if (!is_utc_time(v)) {
            diag_error(ld->d, "RESTORE_TARGET: \"%s\" is not a valid UTC time; expected "
                       "YYYY-MM-DDTHH:MM:SSZ (or +00:00), e.g. 2026-12-02T03:15:00Z",
                       show(b, v));
            return;
        }
        bk->restore_target_kind = RESTORE_TARGET_TIME;
        bk->restore_target = xstrdup(v);
        return;
    }
    if (!restore_point_name_valid(v)) {
        diag_error(ld->d, "RESTORE_TARGET: \"%s\" is not a restore target; expected a restore "
                   "point name (1-63 of A-Z, a-z, 0-9, '_', '.', '-'), an RFC 3339 UTC time "
                   "such as 2026-12-02T03:15:00Z, or latest", show(b, v));
        return;
    }
    bk->restore_target_kind = RESTORE_TARGET_NAME;
    bk->restore_target = xstrdup(v);
}

/* The variables of a restore; all but the first have no meaning without it. */
static const char *const restore_variables[] = {"RESTORE_FROM_CLUSTER", "RESTORE_TARGET",
                                                "RESTORE_REPO_PATH", "RESTORE_SECRET_DIR", NULL};
static const char *const *const restore_only = restore_variables + 1;

static void load_restore(struct loader *ld, struct config *cfg, struct backup_config *bk)
{
    char b[SHOW_MAX];
    bk->restore_from_cluster = take_str(ld, "RESTORE_FROM_CLUSTER", NULL);
    if (!bk->restore_from_cluster) {
        for (size_t i = 0; restore_only[i]; i++)
            if (raw(ld, restore_only[i]))
                diag_error(ld->d, "%s: set without RESTORE_FROM_CLUSTER; expected "
                           "RESTORE_FROM_CLUSTER (the cluster to restore from) too, or neither",
                           restore_only[i]);
        return;
    }
    if (!is_dns_label(bk->restore_from_cluster)) {
        diag_error(ld->d, "RESTORE_FROM_CLUSTER: \"%s\" is not a valid cluster name; expected "
                   "the source's CLUSTER_NAME, a DNS label of lowercase letters, digits and "
                   "'-', at most 63 characters", show(b, bk->restore_from_cluster));
    } else if (cfg->purpose == CONFIG_POD) {
        bk->restore_stanza = xasprintf("%s-%d", bk->restore_from_cluster, cfg->citus_group);
    }
    load_restore_target(ld, cfg, bk);

    bk->source.path = take_path(ld, "RESTORE_REPO_PATH", bk->own.path);
    if (bk->source.path && raw(ld, "RESTORE_REPO_PATH"))
        check_conf_path(ld, "RESTORE_REPO_PATH", bk->source.path);
    bk->source.secret_dir = take_path(ld, "RESTORE_SECRET_DIR", bk->own.secret_dir);
    bool same_dir = bk->source.secret_dir && bk->own.secret_dir &&
                    strcmp(bk->source.secret_dir, bk->own.secret_dir) == 0;
    if (same_dir) { /* one set of files: read (and reported) once */
        bk->source.s3_key = xstrdup(bk->own.s3_key);
        bk->source.s3_key_secret = xstrdup(bk->own.s3_key_secret);
        bk->source.cipher_pass = xstrdup(bk->own.cipher_pass);
    } else if (bk->source.secret_dir) {
        load_repo_secrets(ld, bk, &bk->source, source_handover);
    }
}

/* BACKUP_REPO and everything it enables (docs/backups.md). With none, nothing else is read,
 * but a restore asked for is an error: it needs the source's repository. */
static void load_backup(struct loader *ld, struct config *cfg)
{
    struct backup_config *bk = &cfg->backup;
    static const char *const repos[] = {"none", "s3", "posix", NULL};
    int repo = take_enum(ld, "BACKUP_REPO", repos, 0, "none, s3 or posix");
    if (repo <= 0) {
        if (repo == 0)
            for (const char *const *v = restore_variables; *v; v++)
                if (raw(ld, *v))
                    diag_error(ld->d, "%s: set while BACKUP_REPO is none; expected BACKUP_REPO "
                               "s3 or posix (the repository to restore from)", *v);
        return;
    }
    bk->repo = repo == 1 ? BACKUP_REPO_S3 : BACKUP_REPO_POSIX;
    if (cfg->cluster_name && is_dns_label(cfg->cluster_name))
        bk->stanza = xasprintf("%s-%d", cfg->cluster_name, cfg->citus_group);

    bk->own.path = take_path(ld, "BACKUP_REPO_PATH", "/pgbackrest");
    if (bk->own.path && !check_conf_path(ld, "BACKUP_REPO_PATH", bk->own.path)) {
        free(bk->own.path);
        bk->own.path = NULL;
    }
    /* the paths pgBackRest's configuration names: the data directory and the lock directory */
    if (cfg->pgdata)
        check_conf_path(ld, "PGDATA", cfg->pgdata);
    if (cfg->run_dir && check_conf_path(ld, "RUN_DIR", cfg->run_dir)) {
        /* A restore writes restore_command = 'pgbackrest --config="RUN_DIR/..." ...' into
         * postgresql.auto.conf without escaping, and PostgreSQL expands '%' in it: these
         * characters would break it (or change it). */
        const char *bad = strpbrk(cfg->run_dir, "'\"\\$`%");
        char b[SHOW_MAX];
        if (bad)
            diag_error(ld->d, "RUN_DIR: \"%s\" holds %c, which the restore_command pgBackRest "
                       "writes cannot carry; expected a path without ' \" \\ $ ` or %% when "
                       "BACKUP_REPO is set", show(b, cfg->run_dir), *bad);
    }
    if (bk->repo == BACKUP_REPO_S3)
        load_s3(ld, bk);
    bk->own.secret_dir = take_path(ld, "BACKUP_SECRET_DIR", "/etc/citus-init/backup");
    take_bool(ld, "BACKUP_ENCRYPTION", true, &bk->encryption);
    load_repo_secrets(ld, bk, &bk->own, own_handover);

    bk->full_schedule = take_schedule(ld, "BACKUP_FULL_SCHEDULE", "0 1 * * 0");
    bk->diff_schedule = take_schedule(ld, "BACKUP_DIFF_SCHEDULE", "0 1 * * 1-6");
    take_int(ld, "BACKUP_RETENTION_FULL", 2, 1, 9999, &bk->retention_full);
    take_int(ld, "BACKUP_PROCESS_MAX", 2, 1, 64, &bk->process_max);
    static const char *const compress[] = {"zst", "lz4", "gz", "none", NULL};
    int c = take_enum(ld, "BACKUP_COMPRESS_TYPE", compress, 0, "zst, lz4, gz or none");
    bk->compress_type = xstrdup(compress[c < 0 ? 0 : c]);
    take_int_ranged(ld, "BACKUP_ARCHIVE_TIMEOUT", 60, 10, 86400, true, &bk->archive_timeout);
    take_int_ranged(ld, "RESTORE_POINT_INTERVAL", 60, 10, 86400, true,
                    &bk->restore_point_interval);
    load_restore(ld, cfg, bk);

    if (bk->repo == BACKUP_REPO_S3 && !bk->s3_verify_tls && !ld->secrets_from_env)
        diag_warn(ld->d, "BACKUP_S3_VERIFY_TLS: false; the S3 endpoint's certificate is not "
                  "verified, so whoever can intercept the connection can read the credentials "
                  "and change or delete the backups; expected true outside tests");
}

static void free_repo_ref(struct backup_repo_ref *r)
{
    free(r->path);
    free(r->secret_dir);
    free_secret(r->s3_key);
    free_secret(r->s3_key_secret);
    free_secret(r->cipher_pass);
    memset(r, 0, sizeof *r);
}

static void free_backup(struct backup_config *bk)
{
    free_repo_ref(&bk->own);
    free_repo_ref(&bk->source);
    char **strings[] = {&bk->stanza, &bk->s3_endpoint, &bk->s3_host, &bk->s3_bucket,
                        &bk->s3_region, &bk->s3_ca_file, &bk->full_schedule, &bk->diff_schedule,
                        &bk->compress_type, &bk->restore_from_cluster, &bk->restore_stanza,
                        &bk->restore_target, &bk->self_exe};
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++)
        free(*strings[i]);
    memset(bk, 0, sizeof *bk);
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
        load_backup(&ld, cfg);
        load_monitoring(&ld, cfg);
    }

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
        &cfg->monitoring_role, &cfg->monitoring_os_user,
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
    free_backup(&cfg->backup);
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
