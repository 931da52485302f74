/* schedule.c - fixed intervals aligned to the epoch and five-field cron expressions, in UTC.
 * See include/jiraprov/schedule.h. */
#include "jiraprov/schedule.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HORIZON_DAYS (5 * 366)

struct jp_schedule {
    int64_t every; /* seconds; 0 for a cron schedule */
    uint64_t minute;
    uint32_t hour, dom, month; /* bit i = value i */
    uint8_t dow;               /* bit 0 = Sunday */
    bool dom_any, dow_any;
};

jp_err_t jp_schedule_every(const char *duration, jp_schedule_t **out, char *errstr,
                           size_t errstr_size)
{
    *out = NULL;
    char *end = NULL;
    long long n = duration ? strtoll(duration, &end, 10) : 0;
    int64_t unit = 0;
    if (end && end != duration && end[0] && !end[1])
        unit = end[0] == 's'   ? 1
               : end[0] == 'm' ? 60
               : end[0] == 'h' ? 3600
               : end[0] == 'd' ? 86400
                               : 0;
    if (!unit || n < 1 || n > 366LL * 86400 / unit || duration[0] == '+' || duration[0] == ' ')
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "interval: expected <n>s, <n>m, <n>h or <n>d (at most 366 days), "
                          "got \"%s\"",
                          duration ? duration : "");
    jp_schedule_t *s = calloc(1, sizeof(*s));
    if (!s)
        return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
    s->every = (int64_t)n * unit;
    *out = s;
    return JP_OK;
}

/* One field into a bit set of [lo, hi]; false on a syntax or range error. */
static bool parse_field(const char *text, int lo, int hi, uint64_t *bits, bool *any)
{
    *bits = 0;
    *any = !strcmp(text, "*");
    const char *p = text;
    while (*p) {
        int a = lo, b = hi, step = 1;
        char *end;
        if (*p == '*') {
            p++;
        } else {
            long v = strtol(p, &end, 10);
            if (end == p || v < lo || v > hi)
                return false;
            a = b = (int)v;
            p = end;
            if (*p == '-') {
                long w = strtol(p + 1, &end, 10);
                if (end == p + 1 || w < a || w > hi)
                    return false;
                b = (int)w;
                p = end;
            } else if (*p == '/') {
                b = hi; /* "a/n": from a to the end */
            }
        }
        if (*p == '/') {
            long st = strtol(p + 1, &end, 10);
            if (end == p + 1 || st < 1 || st > hi - lo + 1)
                return false;
            step = (int)st;
            p = end;
        }
        for (int v = a; v <= b; v += step)
            *bits |= 1ull << v;
        if (*p == ',') {
            if (!p[1])
                return false;
            p++;
        } else if (*p) {
            return false;
        }
    }
    return *bits != 0;
}

jp_err_t jp_schedule_cron(const char *expr, jp_schedule_t **out, char *errstr, size_t errstr_size)
{
    static const char *const names[] = {"minute", "hour", "day of month", "month", "day of week"};
    static const int lo[] = {0, 0, 1, 1, 0}, hi[] = {59, 23, 31, 12, 7};
    *out = NULL;
    char buf[256], *fields[6] = {0}, *save = NULL;
    int n = 0;
    if (!expr || strlen(expr) >= sizeof(buf))
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "cron: expected 5 fields");
    snprintf(buf, sizeof(buf), "%s", expr);
    for (char *t = strtok_r(buf, " \t", &save); t && n < 6; t = strtok_r(NULL, " \t", &save))
        fields[n++] = t;
    if (n != 5)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "cron: expected 5 fields (minute hour day-of-month month "
                          "day-of-week), got %d in \"%s\"",
                          n, expr);
    jp_schedule_t *s = calloc(1, sizeof(*s));
    if (!s)
        return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
    uint64_t bits[5];
    bool any[5];
    for (int i = 0; i < 5; i++)
        if (!parse_field(fields[i], lo[i], hi[i], &bits[i], &any[i])) {
            free(s);
            return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                              "cron: %s: expected *, %d-%d, a range, a step or a list, got "
                              "\"%s\"",
                              names[i], lo[i], hi[i], fields[i]);
        }
    s->minute = bits[0];
    s->hour = (uint32_t)bits[1];
    s->dom = (uint32_t)bits[2];
    s->month = (uint32_t)bits[3];
    s->dow = (uint8_t)((bits[4] | (bits[4] >> 7)) & 0x7f); /* 7 is Sunday too */
    s->dom_any = any[2];
    s->dow_any = any[4];
    *out = s;
    return JP_OK;
}

void jp_schedule_destroy(jp_schedule_t *s)
{
    free(s);
}

static bool day_matches(const jp_schedule_t *s, const struct tm *tm)
{
    if (!(s->month & (1u << (tm->tm_mon + 1))))
        return false;
    bool dom = (s->dom >> tm->tm_mday) & 1u, dow = (s->dow >> tm->tm_wday) & 1u;
    if (s->dom_any || s->dow_any)
        return dom && dow;
    return dom || dow;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* dir = +1: first tick > t; dir = -1: last tick <= t. */
static int64_t cron_find(const jp_schedule_t *s, int64_t t, int dir)
{
    int64_t day = floor_div(t, 86400);
    int64_t sec = t - day * 86400;
    for (int d = 0; d <= HORIZON_DAYS; d++, day += dir) {
        time_t midnight = (time_t)(day * 86400);
        struct tm tm;
        if (!gmtime_r(&midnight, &tm))
            return -1;
        if (!day_matches(s, &tm))
            continue;
        for (int i = 0; i < 24 * 60; i++) {
            int m = dir > 0 ? i : 24 * 60 - 1 - i;
            int64_t at = (int64_t)m * 60;
            if (d == 0 && (dir > 0 ? at <= sec : at > sec))
                continue;
            if ((s->hour >> (m / 60)) & 1u && (s->minute >> (m % 60)) & 1u)
                return day * 86400 + at;
        }
    }
    return -1;
}

int64_t jp_schedule_next(const jp_schedule_t *s, int64_t t)
{
    if (s->every)
        return (floor_div(t, s->every) + 1) * s->every;
    return cron_find(s, t, +1);
}

int64_t jp_schedule_prev(const jp_schedule_t *s, int64_t t)
{
    if (s->every)
        return floor_div(t, s->every) * s->every;
    return cron_find(s, t, -1);
}
