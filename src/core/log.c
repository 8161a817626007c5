/* log.c: one logfmt or JSON line per event on stderr (see log.h).
 * Lines are built in memory and written with one write(2), so lines of concurrent writers
 * (Patroni shares our stderr) never interleave inside a line. */
#include "log.h"

#include "diag.h"
#include "input.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LOG_MAX_PAIRS 32
#define LOG_LINE_MAX 4096

static enum log_format current_format = LOG_FORMAT_LOGFMT;
static enum log_level current_level = LOG_INFO;
static const char *current_component = "citus-init";

static const char *const level_names[] = {
    [LOG_DEBUG] = "debug", [LOG_INFO] = "info", [LOG_WARN] = "warn", [LOG_ERROR] = "error",
};

void log_setup(enum log_format format, enum log_level min_level)
{
    current_format = format;
    current_level = min_level;
}

void log_set_component(const char *component)
{
    current_component = component;
}

int log_parse_format(const char *s, enum log_format *out)
{
    if (strcasecmp(s, "logfmt") == 0)
        *out = LOG_FORMAT_LOGFMT;
    else if (strcasecmp(s, "json") == 0)
        *out = LOG_FORMAT_JSON;
    else
        return -1;
    return 0;
}

int log_parse_level(const char *s, enum log_level *out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

/* Appends to a fixed buffer, always NUL-terminated, counting what a full line would need
 * (like snprintf), so callers can detect truncation. */
struct line {
    char *buf;
    size_t size;
    size_t len;
};

static void put(struct line *l, const char *s, size_t n)
{
    if (l->size > 0 && l->len < l->size - 1) {
        size_t room = l->size - 1 - l->len;
        memcpy(l->buf + l->len, s, n < room ? n : room);
        l->buf[l->len + (n < room ? n : room)] = '\0';
    }
    l->len += n;
}

static void puts_(struct line *l, const char *s)
{
    put(l, s, strlen(s));
}

/* Escapes shared by both formats: quotes, backslashes and control characters are escaped,
 * valid UTF-8 passes through, invalid bytes become U+FFFD so the line stays valid text. */
static void put_escaped(struct line *l, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned char c = *p;
        char esc[8];
        switch (c) {
        case '"': puts_(l, "\\\""); p++; continue;
        case '\\': puts_(l, "\\\\"); p++; continue;
        case '\n': puts_(l, "\\n"); p++; continue;
        case '\r': puts_(l, "\\r"); p++; continue;
        case '\t': puts_(l, "\\t"); p++; continue;
        default: break;
        }
        if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            puts_(l, esc);
            p++;
            continue;
        }
        size_t n = utf8_sequence_length(p);
        if (n == 0) {
            puts_(l, "\xef\xbf\xbd");
            p++;
        } else {
            put(l, (const char *)p, n);
            p += n;
        }
    }
}

static void put_json_string(struct line *l, const char *s)
{
    puts_(l, "\"");
    put_escaped(l, s);
    puts_(l, "\"");
}

/* logfmt values stay bare when that is unambiguous, else they are quoted. */
static bool logfmt_needs_quotes(const char *s)
{
    if (*s == '\0')
        return true;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || *p >= 0x7f)
            return true;
    return false;
}

/* Keys are chosen by our code, but make sure a bad one cannot break the line's syntax. */
static void put_logfmt_key(struct line *l, const char *key)
{
    if (*key == '\0') {
        puts_(l, "_");
        return;
    }
    for (const char *p = key; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-' || c == '.';
        put(l, ok ? p : "_", 1);
    }
}

static void put_logfmt_pair(struct line *l, const char *key, const char *value, bool force_quotes)
{
    puts_(l, " ");
    put_logfmt_key(l, key);
    puts_(l, "=");
    if (force_quotes || logfmt_needs_quotes(value)) {
        puts_(l, "\"");
        put_escaped(l, value);
        puts_(l, "\"");
    } else {
        puts_(l, value);
    }
}

int log_format_line(char *buf, unsigned long size, enum log_format format, const char *ts,
                    enum log_level level, const char *msg, const char *const *kv)
{
    struct line l = {buf, size, 0};
    if (size > 0)
        buf[0] = '\0';
    const char *lvl = (level >= LOG_DEBUG && level <= LOG_ERROR) ? level_names[level] : "info";
    if (format == LOG_FORMAT_JSON) {
        puts_(&l, "{\"ts\":");
        put_json_string(&l, ts);
        puts_(&l, ",\"level\":");
        put_json_string(&l, lvl);
        puts_(&l, ",\"component\":");
        put_json_string(&l, current_component);
        puts_(&l, ",\"msg\":");
        put_json_string(&l, msg);
        for (size_t i = 0; kv && kv[i] && kv[i + 1]; i += 2) {
            puts_(&l, ",");
            put_json_string(&l, kv[i]);
            puts_(&l, ":");
            put_json_string(&l, kv[i + 1]);
        }
        puts_(&l, "}");
    } else {
        puts_(&l, "ts=");
        puts_(&l, ts);
        puts_(&l, " level=");
        puts_(&l, lvl);
        puts_(&l, " component=");
        puts_(&l, current_component);
        put_logfmt_pair(&l, "msg", msg, true);
        for (size_t i = 0; kv && kv[i] && kv[i + 1]; i += 2)
            put_logfmt_pair(&l, kv[i], kv[i + 1], false);
    }
    return (int)l.len;
}

static void format_now(char *ts, size_t size)
{
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    size_t n = strftime(ts, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, size - n, ".%03dZ", (int)(now.tv_nsec / 1000000L) % 1000);
}

void log_event(enum log_level level, const char *msg, ...)
{
    if (level < current_level)
        return;
    const char *kv[2 * LOG_MAX_PAIRS + 1];
    size_t n = 0;
    va_list ap;
    va_start(ap, msg);
    for (const char *s = va_arg(ap, const char *); s; s = va_arg(ap, const char *))
        if (n < 2 * LOG_MAX_PAIRS)
            kv[n++] = s;
    va_end(ap);
    if (n % 2)
        kv[n++] = "";  /* a key without value: log it rather than drop it */
    kv[n] = NULL;

    char ts[40];
    format_now(ts, sizeof(ts));
    /* Usually one stack buffer is enough; a longer line gets a heap buffer of its exact size
     * rather than being cut (a cut JSON line would not parse). */
    char stack_line[LOG_LINE_MAX];
    char *line = stack_line;
    size_t size = sizeof(stack_line);
    int len = log_format_line(line, size - 1, current_format, ts, level, msg, kv);
    if (len < 0)
        return;
    if ((size_t)len >= size - 1) {
        char *heap = malloc((size_t)len + 2);
        if (heap) {
            line = heap;
            size = (size_t)len + 2;
            log_format_line(line, size - 1, current_format, ts, level, msg, kv);
        } else {
            len = (int)(size - 2); /* out of memory: the cut line is better than none */
        }
    }
    size_t used = (size_t)len;
    line[used] = '\n';
    int saved = errno;
    size_t off = 0;
    while (off < used + 1) {
        ssize_t w = write(STDERR_FILENO, line + off, used + 1 - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    if (line != stack_line)
        free(line);
    errno = saved;
}

unsigned long log_diag(const struct diag *d)
{
    for (size_t i = 0; i < d->count; i++) {
        if (d->items[i].severity == DIAG_ERROR)
            log_error(d->items[i].message, NULL);
        else
            log_warn(d->items[i].message, NULL);
    }
    return diag_error_count(d);
}
