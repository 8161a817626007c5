/* Unit tests for log.c: line formats, escaping, levels. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "log.h"

#define TS "2026-11-25T13:00:00.123Z"

static char line[4096];

static const char *fmt(enum log_format format, enum log_level level, const char *msg,
                       const char *const *kv)
{
    int n = log_format_line(line, sizeof(line), format, TS, level, msg, kv);
    assert_int_equal(n, (int)strlen(line));
    return line;
}

static void logfmt_line(void **state)
{
    (void)state;
    const char *kv[] = {"path", "/home/postgres/pgdata", "duration_ms", "12", NULL};
    assert_string_equal(fmt(LOG_FORMAT_LOGFMT, LOG_INFO, "data directory ready", kv),
                        "ts=" TS " level=info component=citus-init msg=\"data directory ready\" "
                        "path=/home/postgres/pgdata duration_ms=12");
}

static void logfmt_quotes_and_escapes(void **state)
{
    (void)state;
    const char *kv[] = {"error", "say \"hi\"\nnext\\line", "empty", "", "eq", "a=b",
                        "bad key", "tab\there", "ctl", "\x01", NULL};
    assert_string_equal(fmt(LOG_FORMAT_LOGFMT, LOG_WARN, "x\"y", kv),
                        "ts=" TS " level=warn component=citus-init msg=\"x\\\"y\" "
                        "error=\"say \\\"hi\\\"\\nnext\\\\line\" empty=\"\" eq=\"a=b\" "
                        "bad_key=\"tab\\there\" ctl=\"\\u0001\"");
}

static void json_line_parses_back(void **state)
{
    (void)state;
    const char *tricky = "quote\" back\\ nl\n ctl\x1f uni ✓ bad\xff end";
    const char *kv[] = {"detail", tricky, "n", "3", NULL};
    const char *s = fmt(LOG_FORMAT_JSON, LOG_ERROR, "boom", kv);
    cJSON *obj = cJSON_Parse(s);
    assert_non_null(obj);
    assert_string_equal(cJSON_GetObjectItem(obj, "ts")->valuestring, TS);
    assert_string_equal(cJSON_GetObjectItem(obj, "level")->valuestring, "error");
    assert_string_equal(cJSON_GetObjectItem(obj, "component")->valuestring, "citus-init");
    assert_string_equal(cJSON_GetObjectItem(obj, "msg")->valuestring, "boom");
    assert_string_equal(cJSON_GetObjectItem(obj, "n")->valuestring, "3");
    /* invalid UTF-8 becomes U+FFFD, everything else survives */
    assert_string_equal(cJSON_GetObjectItem(obj, "detail")->valuestring,
                        "quote\" back\\ nl\n ctl\x1f uni ✓ bad\xef\xbf\xbd end");
    cJSON_Delete(obj);
    assert_null(strchr(s, '\n'));
}

static void truncation_is_reported_and_terminated(void **state)
{
    (void)state;
    char small[16];
    int n = log_format_line(small, sizeof(small), LOG_FORMAT_LOGFMT, TS, LOG_INFO, "m", NULL);
    assert_true(n > (int)sizeof(small));
    assert_int_equal(strlen(small), sizeof(small) - 1);
}

static void parse_names(void **state)
{
    (void)state;
    enum log_format f;
    enum log_level l;
    assert_int_equal(log_parse_format("json", &f), 0);
    assert_int_equal(f, LOG_FORMAT_JSON);
    assert_int_equal(log_parse_format("logfmt", &f), 0);
    assert_int_equal(f, LOG_FORMAT_LOGFMT);
    assert_int_equal(log_parse_format("JSON", &f), 0); /* enumerations are case-insensitive */
    assert_int_equal(f, LOG_FORMAT_JSON);
    assert_int_equal(log_parse_format("yaml", &f), -1);
    assert_int_equal(log_parse_level("WARN", &l), 0);
    assert_int_equal(l, LOG_WARN);
    const char *names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(log_parse_level(names[i], &l), 0);
        assert_int_equal(l, i);
    }
    assert_int_equal(log_parse_level("warning", &l), -1);
}

/* log_event writes whole lines to stderr and drops lines below the level. */
static void events_go_to_stderr(void **state)
{
    (void)state;
    char path[] = "/tmp/citus-init-log-test.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    log_setup(LOG_FORMAT_JSON, LOG_INFO);
    log_debug("hidden", NULL);
    log_info("shown", "k", "v", NULL);
    log_warn("odd", "lonely", NULL);
    char *longer = malloc(10001);
    memset(longer, 'x', 10000);
    longer[10000] = '\0';
    log_error("long", "value", longer, NULL);
    log_setup(LOG_FORMAT_LOGFMT, LOG_INFO);
    dup2(saved, STDERR_FILENO);
    close(saved);

    char buf[12000] = "";
    assert_true(pread(fd, buf, sizeof(buf) - 1, 0) > 0);
    close(fd);
    unlink(path);
    char *second = strchr(buf, '\n');
    assert_non_null(second);
    *second++ = '\0';
    cJSON *a = cJSON_Parse(buf), *b = cJSON_Parse(second);
    assert_non_null(a);
    assert_non_null(b);
    assert_string_equal(cJSON_GetObjectItem(a, "msg")->valuestring, "shown");
    assert_string_equal(cJSON_GetObjectItem(a, "k")->valuestring, "v");
    assert_int_equal(strlen(cJSON_GetObjectItem(a, "ts")->valuestring), strlen(TS));
    assert_string_equal(cJSON_GetObjectItem(b, "msg")->valuestring, "odd");
    assert_string_equal(cJSON_GetObjectItem(b, "lonely")->valuestring, "");
    assert_null(strstr(second, "hidden"));
    /* a line longer than the stack buffer is written whole */
    char *third = strchr(second, '\n');
    assert_non_null(third);
    *third++ = '\0';
    cJSON *c = cJSON_Parse(third);
    assert_non_null(c);
    assert_string_equal(cJSON_GetObjectItem(c, "value")->valuestring, longer);
    free(longer);
    cJSON_Delete(a);
    cJSON_Delete(b);
    cJSON_Delete(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(logfmt_line),
        cmocka_unit_test(logfmt_quotes_and_escapes),
        cmocka_unit_test(json_line_parses_back),
        cmocka_unit_test(truncation_is_reported_and_terminated),
        cmocka_unit_test(parse_names),
        cmocka_unit_test(events_go_to_stderr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
