/* cron.h: five-field cron schedules (minute hour day-of-month month day-of-week), in UTC.
 * Fields: `*`, numbers, ranges `a-b`, lists `a,b`, steps `*\/n` and `a-b/n`; day of week 0-7
 * (0 and 7 are Sunday); as in cron, when both day fields are restricted either may match.
 * Used to validate BACKUP_*_SCHEDULE (config.c) and to schedule backups (the agent). */
#ifndef CITUS_INIT_CRON_H
#define CITUS_INIT_CRON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct cron {
    uint64_t minutes; /* bit n: minute n (0-59) */
    uint32_t hours;   /* 0-23 */
    uint32_t mdays;   /* 1-31 */
    uint16_t months;  /* 1-12 */
    uint8_t wdays;    /* 0-6, Sunday 0 */
    bool mday_any, wday_any;
};

/* Parse text into c. 0, or -1 with a sentence naming the faulty field in err. */
int cron_parse(const char *text, struct cron *c, char *err, size_t errlen);
/* The first whole minute strictly after `after` that matches, or (time_t)-1 when none
 * within five years (e.g. 30 February). */
time_t cron_next(const struct cron *c, time_t after);

#endif
