/* log.h: one line per event on stderr, for `kubectl logs`.
 * logfmt by default: ts=2026-11-25T13:00:00.123Z level=info component=citus-init msg="..." k=v
 * LOG_FORMAT=json: {"ts":"...","level":"info","component":"citus-init","msg":"...","k":"v"}
 * Key/value pairs are passed as a NULL-terminated list of alternating const char *:
 *     log_info("data directory ready", "path", pgdata, "duration_ms", "12", NULL);
 * Values are quoted/escaped as the format needs. Never pass a secret. */
#ifndef CITUS_INIT_LOG_H
#define CITUS_INIT_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };
enum log_format { LOG_FORMAT_LOGFMT, LOG_FORMAT_JSON };

void log_setup(enum log_format format, enum log_level min_level);
/* The component field of every later line: "citus-init" (PID 1, the commands) unless set;
 * the agent says "citus-init-agent". A static string. */
void log_set_component(const char *component);
/* Parse LOG_FORMAT / LOG_LEVEL values (case-insensitive, like every enumerated value of the
 * configuration); return 0 on success, -1 when unknown. */
int log_parse_format(const char *s, enum log_format *out);
int log_parse_level(const char *s, enum log_level *out);

void log_event(enum log_level level, const char *msg, ...) __attribute__((sentinel));
#define log_debug(...) log_event(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_event(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_event(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_event(LOG_ERROR, __VA_ARGS__)

/* Render one line into buf (no trailing newline); used by log_event and by tests. */
int log_format_line(char *buf, unsigned long size, enum log_format format, const char *ts,
                    enum log_level level, const char *msg, const char *const *kv);

/* One line per problem of d (errors as error, the rest as warn); returns the error count. */
struct diag;
unsigned long log_diag(const struct diag *d);

#endif
