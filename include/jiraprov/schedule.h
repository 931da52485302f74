/* schedule: when periodic work is due, for jiraprov-recon-schedule. A schedule is either a fixed
 * interval aligned to the Unix epoch ("15m" fires at :00, :15, :30, :45 UTC), or a cron
 * expression of five fields in UTC:
 *
 *   minute (0-59)  hour (0-23)  day of month (1-31)  month (1-12)  day of week (0-7, 0 and 7
 *   are Sunday)
 *
 * each "*", a number, a range "a-b", a step "*" + "/n", "a-b/n" or "a/n" (from a to the end),
 * or a comma list of those. As in cron, when both day fields are restricted a day matches if
 * either does. Aligned ticks make every replica of a scheduler pick the same instants, so the
 * requests they emit for one tick are the same request.
 *
 * Pure functions; times are Unix seconds. Ownership: _every/_cron return a schedule freed with
 * jp_schedule_destroy (NULL ok). */
#ifndef JIRAPROV_SCHEDULE_H
#define JIRAPROV_SCHEDULE_H

#include "jiraprov/err.h"

#include <stddef.h>
#include <stdint.h>

typedef struct jp_schedule jp_schedule_t;

/* "<n>s", "<n>m", "<n>h" or "<n>d", n >= 1, at most 366 days in all. JP_ERR_INVALID with one
 * sentence otherwise. */
jp_err_t jp_schedule_every(const char *duration, jp_schedule_t **out, char *errstr,
                           size_t errstr_size);
/* A five-field cron expression (above). JP_ERR_INVALID naming the field otherwise. */
jp_err_t jp_schedule_cron(const char *expr, jp_schedule_t **out, char *errstr, size_t errstr_size);
void jp_schedule_destroy(jp_schedule_t *s);

/* The first tick strictly after t; -1 if none within 5 years (e.g. "0 0 31 2 *"). */
int64_t jp_schedule_next(const jp_schedule_t *s, int64_t t);
/* The last tick at or before t; -1 if none within 5 years. */
int64_t jp_schedule_prev(const jp_schedule_t *s, int64_t t);

#endif
