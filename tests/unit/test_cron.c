/* Unit tests for cron.c: parsing (every field form, every refusal) and cron_next. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cron.h"

/* Seconds since the epoch of a UTC time. */
static time_t utc(int year, int month, int day, int hour, int minute)
{
    struct tm tm = {.tm_year = year - 1900, .tm_mon = month - 1, .tm_mday = day,
                    .tm_hour = hour, .tm_min = minute};
    return timegm(&tm);
}

static void assert_parses(const char *text, struct cron *c)
{
    char err[200] = "";
    int rc = cron_parse(text, c, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "%s: %s\n", text, err);
    assert_int_equal(rc, 0);
}

static void assert_refused(const char *text, const char *message)
{
    struct cron c;
    char err[200] = "";
    assert_int_equal(cron_parse(text, &c, err, sizeof err), -1);
    if (strcmp(err, message) != 0)
        fprintf(stderr, "%s:\n  got      %s\n  expected %s\n", text, err, message);
    assert_string_equal(err, message);
}

static void fields_and_forms(void **state)
{
    (void)state;
    struct cron c;
    assert_parses("* * * * *", &c);
    assert_int_equal(c.minutes, (1ULL << 60) - 1);
    assert_int_equal(c.hours, (1U << 24) - 1);
    assert_int_equal(c.mdays, ((1U << 31) - 1) << 1);
    assert_int_equal(c.months, ((1U << 12) - 1) << 1);
    assert_int_equal(c.wdays, 0x7f);
    assert_true(c.mday_any && c.wday_any);

    assert_parses("0 1 * * 0", &c); /* the full backup default */
    assert_int_equal(c.minutes, 1);
    assert_int_equal(c.hours, 1U << 1);
    assert_int_equal(c.wdays, 1);
    assert_true(c.mday_any);
    assert_false(c.wday_any);

    assert_parses("0 1 * * 1-6", &c); /* the differential default */
    assert_int_equal(c.wdays, 0x7e);

    assert_parses("*/15 0-23/6 1,15 1-12/3 7", &c);
    assert_int_equal(c.minutes, 1ULL | 1ULL << 15 | 1ULL << 30 | 1ULL << 45);
    assert_int_equal(c.hours, 1U | 1U << 6 | 1U << 12 | 1U << 18);
    assert_int_equal(c.mdays, 1U << 1 | 1U << 15);
    assert_int_equal(c.months, 1U << 1 | 1U << 4 | 1U << 7 | 1U << 10);
    assert_int_equal(c.wdays, 1); /* 7 is Sunday, as 0 */
    assert_false(c.mday_any);

    assert_parses("  5\t4  *  * 0,7 ", &c); /* any blanks between fields */
    assert_int_equal(c.minutes, 1ULL << 5);
    assert_int_equal(c.wdays, 1);
    assert_parses("59 23 31 12 6", &c);
    assert_parses("1,2,3-5,10-20/5 * * * *", &c);
    assert_int_equal(c.minutes, 0x3eULL | 1ULL << 10 | 1ULL << 15 | 1ULL << 20);
}

static void refusals_name_the_field(void **state)
{
    (void)state;
    assert_refused("", "0 fields; expected five: minute hour day-of-month month day-of-week");
    assert_refused("0 1 * *", "4 fields; expected five: minute hour day-of-month month "
                   "day-of-week");
    assert_refused("0 1 * * * *", "more than five fields; expected minute hour day-of-month "
                   "month day-of-week");
    assert_refused("60 * * * *", "the minute field \"60\" is out of range; expected values from "
                   "0 to 59");
    assert_refused("* 24 * * *", "the hour field \"24\" is out of range; expected values from "
                   "0 to 23");
    assert_refused("* * 0 * *", "the day of month field \"0\" is out of range; expected values "
                   "from 1 to 31");
    assert_refused("* * * 13 *", "the month field \"13\" is out of range; expected values from "
                   "1 to 12");
    assert_refused("* * * * 8", "the day of week field \"8\" is out of range; expected values "
                   "from 0 to 7");
    assert_refused("5-1 * * * *", "the minute field \"5-1\" is out of range; expected values "
                   "from 0 to 59");
    const char *forms = "is not a cron field; expected *, a number, a range a-b, a step */n or "
                        "a-b/n, or a list of these separated by commas";
    const char *bad[] = {"*/0", "5/10", "a", "1,", ",1", "1-", "-1", "1--2", "**", "1000",
                         "*/", "1-5/", "+1", "JAN", "@daily"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[64], message[200];
        snprintf(text, sizeof text, "%s * * * *", bad[i]);
        snprintf(message, sizeof message, "the minute field \"%s\" %s", bad[i], forms);
        assert_refused(text, message);
    }
    char big[200];
    memset(big, '1', 80);
    big[80] = '\0';
    strcat(big, " * * * *");
    assert_refused(big, "the minute field is too long");
}

static void next_minute(void **state)
{
    (void)state;
    struct cron c;
    assert_parses("* * * * *", &c);
    /* strictly after: a whole minute is not its own next */
    assert_int_equal(cron_next(&c, utc(2026, 12, 2, 3, 15)), utc(2026, 12, 2, 3, 16));
    assert_int_equal(cron_next(&c, utc(2026, 12, 2, 3, 15) + 59), utc(2026, 12, 2, 3, 16));

    assert_parses("0 1 * * 0", &c); /* Sundays 01:00 UTC */
    /* 2026-12-02 is a Wednesday; the next Sunday is the 6th */
    assert_int_equal(cron_next(&c, utc(2026, 12, 2, 3, 15)), utc(2026, 12, 6, 1, 0));
    assert_int_equal(cron_next(&c, utc(2026, 12, 6, 1, 0)), utc(2026, 12, 13, 1, 0));
    assert_int_equal(cron_next(&c, utc(2026, 12, 6, 0, 59)), utc(2026, 12, 6, 1, 0));

    assert_parses("0 1 * * 1-6", &c);
    assert_int_equal(cron_next(&c, utc(2026, 12, 5, 1, 0)), utc(2026, 12, 7, 1, 0)); /* Sat -> Mon */

    assert_parses("30 23 31 12 *", &c); /* over a year's end */
    assert_int_equal(cron_next(&c, utc(2026, 12, 31, 23, 30)), utc(2027, 12, 31, 23, 30));

    assert_parses("0 0 29 2 *", &c); /* leap days only */
    assert_int_equal(cron_next(&c, utc(2026, 3, 1, 0, 0)), utc(2028, 2, 29, 0, 0));

    assert_parses("0 0 30 2 *", &c); /* never */
    assert_int_equal(cron_next(&c, utc(2026, 1, 1, 0, 0)), (time_t)-1);
}

static void both_day_fields_restricted_either_matches(void **state)
{
    (void)state;
    struct cron c;
    assert_parses("0 12 1 * 5", &c); /* the 1st of the month or a Friday */
    /* 2026-12-02 Wed: the next Friday (4th) comes before the 1st of January */
    assert_int_equal(cron_next(&c, utc(2026, 12, 2, 0, 0)), utc(2026, 12, 4, 12, 0));
    /* from Thursday 2026-12-31 12:00: Friday 1 January is both */
    assert_int_equal(cron_next(&c, utc(2026, 12, 31, 12, 0)), utc(2027, 1, 1, 12, 0));
    assert_int_equal(cron_next(&c, utc(2026, 11, 27, 12, 0)), utc(2026, 12, 1, 12, 0));

    assert_parses("0 12 1 * *", &c); /* only the day of month counts */
    assert_int_equal(cron_next(&c, utc(2026, 12, 2, 0, 0)), utc(2027, 1, 1, 12, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fields_and_forms),
        cmocka_unit_test(refusals_name_the_field),
        cmocka_unit_test(next_minute),
        cmocka_unit_test(both_day_fields_restricted_either_matches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
