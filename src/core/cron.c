/* cron.c: five-field cron schedules in UTC (see cron.h). */
#include "cron.h"

#include <stdio.h>
#include <string.h>

struct field_spec {
    const char *name;
    int min, max;
};

static const struct field_spec fields[5] = {
    {"minute", 0, 59}, {"hour", 0, 23}, {"day of month", 1, 31}, {"month", 1, 12},
    {"day of week", 0, 7},
};

/* A plain decimal number of at most 3 digits (every cron value fits); p advances. */
static bool number(const char **p, int *out)
{
    const char *s = *p;
    int n = 0, digits = 0;
    while (*s >= '0' && *s <= '9') {
        if (++digits > 3)
            return false;
        n = n * 10 + (*s - '0');
        s++;
    }
    if (digits == 0)
        return false;
    *p = s;
    *out = n;
    return true;
}

/* One field's text (no spaces) into bits; false with err set. */
static bool parse_field(const char *text, size_t len, const struct field_spec *f, uint64_t *bits,
                        bool *any, char *err, size_t errlen)
{
    char buf[64];
    if (len == 0 || len >= sizeof buf) {
        snprintf(err, errlen, "the %s field is %s", f->name, len ? "too long" : "empty");
        return false;
    }
    memcpy(buf, text, len);
    buf[len] = '\0';
    *bits = 0;
    *any = strcmp(buf, "*") == 0;
    const char *p = buf;
    for (;;) {
        int lo, hi, step = 1;
        bool span = true; /* a step may follow '*' or a range, not a single number */
        if (*p == '*') {
            lo = f->min;
            hi = f->max;
            p++;
        } else {
            if (!number(&p, &lo))
                goto bad;
            hi = lo;
            span = *p == '-';
            if (*p == '-') {
                p++;
                if (!number(&p, &hi))
                    goto bad;
            }
        }
        if (*p == '/') {
            if (!span)
                goto bad;
            p++;
            if (!number(&p, &step) || step == 0)
                goto bad;
        }
        if (*p != ',' && *p != '\0')
            goto bad;
        if (lo < f->min || hi > f->max || lo > hi) {
            snprintf(err, errlen, "the %s field \"%s\" is out of range; expected values from "
                     "%d to %d", f->name, buf, f->min, f->max);
            return false;
        }
        for (int v = lo; v <= hi; v += step)
            *bits |= 1ULL << v;
        if (*p == '\0')
            return true;
        p++; /* ',' */
    }
bad:
    snprintf(err, errlen, "the %s field \"%s\" is not a cron field; expected *, a number, a "
             "range a-b, a step */n or a-b/n, or a list of these separated by commas", f->name,
             buf);
    return false;
}

int cron_parse(const char *text, struct cron *c, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    const char *start[6], *end[6];
    size_t n = 0;
    const char *p = text;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            break;
        if (n == 5) {
            snprintf(err, errlen, "more than five fields; expected minute hour day-of-month "
                     "month day-of-week");
            return -1;
        }
        start[n] = p;
        while (*p && *p != ' ' && *p != '\t')
            p++;
        end[n++] = p;
    }
    if (n != 5) {
        snprintf(err, errlen, "%zu field%s; expected five: minute hour day-of-month month "
                 "day-of-week", n, n == 1 ? "" : "s");
        return -1;
    }
    uint64_t bits[5];
    bool any[5];
    for (size_t i = 0; i < 5; i++)
        if (!parse_field(start[i], (size_t)(end[i] - start[i]), &fields[i], &bits[i], &any[i], err,
                         errlen))
            return -1;
    c->minutes = bits[0];
    c->hours = (uint32_t)bits[1];
    c->mdays = (uint32_t)bits[2];
    c->months = (uint16_t)bits[3];
    /* 7 is Sunday as well as 0 */
    c->wdays = (uint8_t)((bits[4] & 0x7f) | ((bits[4] >> 7) & 1));
    c->mday_any = any[2];
    c->wday_any = any[4];
    return 0;
}

/* The day matches: as in cron, with both day fields restricted either one is enough; with
 * one of them `*`, only the other counts. */
static bool day_matches(const struct cron *c, const struct tm *t)
{
    bool mday = (c->mdays >> t->tm_mday) & 1;
    bool wday = (c->wdays >> t->tm_wday) & 1;
    if (c->mday_any && c->wday_any)
        return true;
    if (c->mday_any)
        return wday;
    if (c->wday_any)
        return mday;
    return mday || wday;
}

time_t cron_next(const struct cron *c, time_t after)
{
    if (after < 0)
        after = 0;
    /* the next whole minute strictly after `after` */
    time_t t = after - after % 60 + 60;
    const time_t limit = after + (time_t)5 * 366 * 24 * 3600;
    struct tm tm;
    while (t <= limit) {
        if (!gmtime_r(&t, &tm))
            return (time_t)-1;
        if (!((c->months >> (tm.tm_mon + 1)) & 1)) {
            /* first minute of the next month */
            tm.tm_mday = 1;
            tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
            if (++tm.tm_mon == 12) {
                tm.tm_mon = 0;
                tm.tm_year++;
            }
            t = timegm(&tm);
            continue;
        }
        if (!day_matches(c, &tm)) {
            t += (time_t)(24 - tm.tm_hour) * 3600 - tm.tm_min * 60;
            continue;
        }
        if (!((c->hours >> tm.tm_hour) & 1)) {
            t += (time_t)(60 - tm.tm_min) * 60;
            continue;
        }
        if (!((c->minutes >> tm.tm_min) & 1)) {
            t += 60;
            continue;
        }
        return t;
    }
    return (time_t)-1;
}
