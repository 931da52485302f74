/* Schedules of jiraprov-recon-schedule: intervals aligned to the epoch, cron fields (lists,
 * ranges, steps, Sunday as 0 or 7, the either-day rule), next and previous ticks across day,
 * month and year boundaries, and refusals with the field named. */
#include "jiraprov/schedule.h"

#include <check.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../lib/check_main.h"

/* Unix seconds of a UTC date-time. */
static int64_t at(int y, int mo, int d, int h, int mi, int s)
{
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    return (int64_t)timegm(&tm);
}

static jp_schedule_t *cron(const char *expr)
{
    jp_schedule_t *s = NULL;
    char err[256];
    ck_assert_msg(jp_schedule_cron(expr, &s, err, sizeof err) == JP_OK, "%s: %s", expr, err);
    return s;
}

START_TEST(intervals_are_aligned)
{
    jp_schedule_t *s = NULL;
    char err[256];
    ck_assert_int_eq(jp_schedule_every("15m", &s, err, sizeof err), JP_OK);
    int64_t t = at(2026, 11, 22, 9, 7, 30);
    ck_assert_int_eq(jp_schedule_next(s, t), at(2026, 11, 22, 9, 15, 0));
    ck_assert_int_eq(jp_schedule_prev(s, t), at(2026, 11, 22, 9, 0, 0));
    ck_assert_int_eq(jp_schedule_prev(s, at(2026, 11, 22, 9, 15, 0)), at(2026, 11, 22, 9, 15, 0));
    ck_assert_int_eq(jp_schedule_next(s, at(2026, 11, 22, 9, 15, 0)), at(2026, 11, 22, 9, 30, 0));
    jp_schedule_destroy(s);
    ck_assert_int_eq(jp_schedule_every("1d", &s, err, sizeof err), JP_OK);
    ck_assert_int_eq(jp_schedule_next(s, t), at(2026, 11, 23, 0, 0, 0));
    jp_schedule_destroy(s);
    ck_assert_int_eq(jp_schedule_every("7s", &s, err, sizeof err), JP_OK);
    ck_assert_int_eq(jp_schedule_next(s, 13), 14);
    ck_assert_int_eq(jp_schedule_prev(s, 13), 7);
    jp_schedule_destroy(s);
    static const char *const bad[] = {"",    "15",   "m",    "0m",  "-5m",
                                      "15x", "15mm", "367d", "+5m", " 5m"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s = (jp_schedule_t *)0x1;
        ck_assert_msg(jp_schedule_every(bad[i], &s, err, sizeof err) == JP_ERR_INVALID,
                      "accepted \"%s\"", bad[i]);
        ck_assert_ptr_null(s);
        ck_assert(strstr(err, "interval") != NULL);
    }
    jp_schedule_destroy(NULL);
}
END_TEST

START_TEST(cron_fields)
{
    jp_schedule_t *s = cron("*/15 * * * *");
    int64_t t = at(2026, 11, 22, 9, 7, 30);
    ck_assert_int_eq(jp_schedule_next(s, t), at(2026, 11, 22, 9, 15, 0));
    ck_assert_int_eq(jp_schedule_prev(s, t), at(2026, 11, 22, 9, 0, 0));
    jp_schedule_destroy(s);

    s = cron("30 2 * * *"); /* nightly */
    ck_assert_int_eq(jp_schedule_next(s, t), at(2026, 11, 23, 2, 30, 0));
    ck_assert_int_eq(jp_schedule_prev(s, t), at(2026, 11, 22, 2, 30, 0));
    ck_assert_int_eq(jp_schedule_next(s, at(2026, 12, 31, 23, 0, 0)), at(2027, 1, 1, 2, 30, 0));
    jp_schedule_destroy(s);

    s = cron("0 9-17/4 * * 1-5"); /* 9, 13, 17 on weekdays; 2026-11-22 is a Sunday */
    ck_assert_int_eq(jp_schedule_next(s, t), at(2026, 11, 23, 9, 0, 0));
    ck_assert_int_eq(jp_schedule_next(s, at(2026, 11, 23, 9, 0, 0)), at(2026, 11, 23, 13, 0, 0));
    ck_assert_int_eq(jp_schedule_prev(s, t), at(2026, 11, 20, 17, 0, 0));
    jp_schedule_destroy(s);

    s = cron("0 0 * * 7"); /* 7 is Sunday */
    ck_assert_int_eq(jp_schedule_prev(s, t), at(2026, 11, 22, 0, 0, 0));
    jp_schedule_destroy(s);

    s = cron("0 0 1,15 * 5"); /* the 1st, the 15th, or a Friday */
    ck_assert_int_eq(jp_schedule_next(s, t), at(2026, 11, 27, 0, 0, 0));
    ck_assert_int_eq(jp_schedule_next(s, at(2026, 11, 28, 0, 0, 0)), at(2026, 12, 1, 0, 0, 0));
    jp_schedule_destroy(s);

    s = cron("0 12 29 2 *"); /* leap days only */
    ck_assert_int_eq(jp_schedule_next(s, t), at(2028, 2, 29, 12, 0, 0));
    jp_schedule_destroy(s);

    s = cron("0 0 31 2 *"); /* never */
    ck_assert_int_eq(jp_schedule_next(s, t), -1);
    jp_schedule_destroy(s);

    s = cron("5/20 0 * * *");
    ck_assert_int_eq(jp_schedule_next(s, at(2026, 11, 22, 0, 5, 0)), at(2026, 11, 22, 0, 25, 0));
    ck_assert_int_eq(jp_schedule_next(s, at(2026, 11, 22, 0, 45, 0)), at(2026, 11, 23, 0, 5, 0));
    jp_schedule_destroy(s);
}
END_TEST

START_TEST(cron_refusals)
{
    static const struct {
        const char *expr, *why;
    } bad[] = {
        {"* * * *", "5 fields"},      {"* * * * * *", "5 fields"},   {"60 * * * *", "minute"},
        {"* 24 * * *", "hour"},       {"* * 0 * *", "day of month"}, {"* * * 13 *", "month"},
        {"* * * * 8", "day of week"}, {"*/0 * * * *", "minute"},     {"5-1 * * * *", "minute"},
        {"1, * * * *", "minute"},     {"a * * * *", "minute"},       {"1-2-3 * * * *", "minute"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        jp_schedule_t *s = (jp_schedule_t *)0x1;
        char err[256] = "";
        ck_assert_msg(jp_schedule_cron(bad[i].expr, &s, err, sizeof err) == JP_ERR_INVALID,
                      "accepted \"%s\"", bad[i].expr);
        ck_assert_ptr_null(s);
        ck_assert_msg(strstr(err, bad[i].why) != NULL, "\"%s\": %s", bad[i].expr, err);
    }
}
END_TEST

static Suite *schedule_suite(void)
{
    Suite *s = suite_create("schedule");
    TCase *t = tcase_create("core");
    tcase_add_test(t, intervals_are_aligned);
    tcase_add_test(t, cron_fields);
    tcase_add_test(t, cron_refusals);
    suite_add_tcase(s, t);
    return s;
}

JP_CHECK_MAIN(schedule_suite)
