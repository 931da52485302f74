/* The one place that decides what a failure means for an event.
 *
 * Every failure the worker meets (an HTTP status or curl code from Jira, a
 * librdkafka error, a Redis error) is mapped here to a class, and the class
 * alone decides what happens next:
 *
 *   RETRIABLE   try again later, with backoff (429, 5xx, timeouts, resets)
 *   PERMANENT   the request itself is wrong; dead-letter it (400, 404, 409 ...)
 *   QUARANTINE  the site's credentials, permissions or TLS set-up are wrong;
 *               park the site's work and probe until it works again
 *   FATAL       the process cannot go on (out of memory, fatal Kafka error)
 *
 * Convergence (a 409 on create becoming an update, a 404 on delete meaning
 * done) is the planner's business and happens before classification: what
 * reaches this module is a failure that did not converge. Pure functions, no
 * state. */
#ifndef JIRAPROV_CLASSIFY_H
#define JIRAPROV_CLASSIFY_H

#include "jiraprov/err.h"

#include <stdint.h>
#include <time.h>

typedef enum jp_class {
    JP_CLASS_OK = 0,
    JP_CLASS_RETRIABLE,
    JP_CLASS_PERMANENT,
    JP_CLASS_QUARANTINE,
    JP_CLASS_FATAL
} jp_class_t;

/* "ok", "retriable", "permanent", "quarantine", "fatal". */
const char *jp_class_name(jp_class_t cls);

/* Scope that a 429 names through RateLimit-Reason (Jira Cloud, notes §4.1).
 * Unknown or missing reasons count as BURST, the narrowest safe reading. */
typedef enum jp_limit_scope {
    JP_SCOPE_NONE = 0,    /* not a rate-limit answer */
    JP_SCOPE_BURST,       /* this endpoint and method on this site */
    JP_SCOPE_PER_ISSUE,   /* writes to this one issue */
    JP_SCOPE_QUOTA_SITE,  /* the whole site, until the hourly reset */
    JP_SCOPE_QUOTA_GLOBAL /* every site of this app (Tier 1 quota) */
} jp_limit_scope_t;

const char *jp_limit_scope_name(jp_limit_scope_t scope);
jp_limit_scope_t jp_limit_scope_parse(const char *ratelimit_reason);

/* Result of classifying one HTTP exchange. `reason` is a static string
 * suitable for results and metrics labels ("http_429", "timeout", ...). */
typedef struct jp_http_verdict {
    jp_class_t cls;
    const char *reason;
    jp_limit_scope_t scope; /* set for 429, and for 503 with Retry-After */
    int64_t retry_after_ms; /* -1 when the server gave no Retry-After */
    int outcome_unknown;    /* the request may have been applied (sent, no answer) */
} jp_http_verdict_t;

/* status: HTTP status, 0 when no response arrived. curl_code: a CURLcode
 * (0 = CURLE_OK). request_sent: whether the request reached the server.
 * retry_after / ratelimit_reason: header values or NULL. now: for HTTP-date
 * Retry-After values. */
jp_http_verdict_t jp_classify_http(long status, int curl_code, int request_sent,
                                   const char *retry_after, const char *ratelimit_reason,
                                   time_t now);

/* librdkafka errors: `err` is an rd_kafka_resp_err_t; is_fatal/is_retriable
 * from rd_kafka_error_is_fatal()/..._retriable() where an rd_kafka_error_t
 * was available (else 0). */
jp_class_t jp_classify_kafka(int err, int is_fatal, int is_retriable);

/* Redis: transport errors (not connected, timeout) are retriable; an error
 * reply is retriable when the server is busy or loading, fatal otherwise
 * (a script bug or a wrong key type is not fixed by waiting). reply_error may
 * be NULL. */
jp_class_t jp_classify_redis(jp_err_t err, const char *reply_error);

/* Retry-After: delay-seconds or an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37
 * GMT"). Returns milliseconds (0 for a date in the past), -1 if unparsable. */
int64_t jp_parse_retry_after(const char *value, time_t now);

#endif
