/* The worker's state in Redis: recorded outcomes by event id (exactly-once),
 * lookup caches and per-event attempt state.
 *
 * Additions to the agreed interface (nothing was renamed or removed):
 *   - the stored outcome also carries o->duration_ms ("durationMs"), so a
 *     redelivered event republishes the same result; it comes back in
 *     recorded->duration_ms;
 *   - JP_STORE_NAME_MAX, JP_STORE_HISTORY_MAX, JP_STORE_REASON_MAX.
 *
 * Key layout (P = key_prefix, e.g. "jiraprov:"):
 *   P "outcome:" ID                   string: compact JSON of the outcome, TTL outcome_ttl_s
 *   P "attempts:" ID                  hash {attempts, first_ms, next_ms, history}, TTL
 *                                     outcome_ttl_s (refreshed at each attempt)
 *   P "cache:" SITE ":" KIND ":" NAME string: compact JSON object, TTL per entry
 * ID and NAME are the bytes given when at most JP_STORE_NAME_MAX bytes long
 * and not starting with '#'; otherwise "#" followed by the lower-case hex
 * SHA-256 of the bytes (so two different names never share a key). SITE must
 * be a site name ([a-z0-9_-]{1,64}) and KIND match [a-z0-9_.-]{1,32}, so the
 * key splits unambiguously. Every string argument is NUL-terminated; any
 * other byte is allowed in ids and names (Redis keys are binary-safe).
 *
 * Cache kinds used by the worker (the store does not interpret them):
 *   "user"   name = login                 {"scimId","accountId"}
 *   "group"  name = group name            {"scimId","groupId"}
 *   "role"   name = PROJECTKEY ":" role   {"roleId"}
 *   "issue"  name = externalRef           {"issueKey","issueId"}
 *
 * Calls: every jp_store_* function that takes a callback returns JP_OK when
 * the command was sent; the callback is then called exactly once, later,
 * from the loop (never from inside the call). Any other return means nothing
 * was sent and the callback is never called:
 *   JP_ERR_REDIS    Redis is not connected (fails fast, nothing is queued),
 *   JP_ERR_INVALID  a NULL or malformed argument (bad site or kind, ttl <= 0,
 *                   a reason that is not UTF-8 or too long, ...),
 *   JP_ERR_NOMEM.
 * The callback's err is JP_OK, or JP_ERR_TIMEOUT / JP_ERR_REDIS (the command
 * may or may not have been applied), or JP_ERR_INVALID when a stored value
 * cannot be parsed (a corrupted entry: treat it as a miss, errstr says why).
 * errstr is "" on success and valid only during the callback.
 *
 * Ownership: the store borrows `redis` (which must outlive it) and copies the
 * prefix. Values handed to callbacks belong to the callee (free outcomes with
 * jp_outcome_destroy, JSON with json_decref, attempts with
 * jp_store_attempts_free). Arguments are copied before a call returns.
 * Requests in flight do not reference the store: jp_store_destroy may be
 * called with requests pending; their callbacks still come (when Redis
 * answers, or when jp_redis_destroy fails them with "closed"). The Lua script
 * registered by _new belongs to the Redis client (freed by jp_redis_destroy).
 *
 * Threading: none; call on the loop's thread, like jp_redis. */
#ifndef JIRAPROV_STORE_H
#define JIRAPROV_STORE_H

#include "jiraprov/err.h"
#include "jiraprov/outcome.h"
#include "jiraprov/redis.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define JP_STORE_NAME_MAX    200 /* longer ids/names are hashed (SHA-256) in keys */
#define JP_STORE_HISTORY_MAX 20  /* attempt history entries kept (the newest) */
#define JP_STORE_REASON_MAX  256 /* bytes of an attempt's reason */

typedef struct jp_store jp_store_t;

/* key_prefix may be NULL (""); outcome_ttl_s must be > 0. NULL with errstr on
 * bad arguments or ENOMEM. Registers the attempt script with `redis`. */
jp_store_t *jp_store_new(jp_redis_t *redis, const char *key_prefix, int outcome_ttl_s, char *errstr,
                         size_t errstr_size);
/* NULL ok; does not own redis. */
void jp_store_destroy(jp_store_t *s);

typedef void jp_store_done_cb(jp_err_t err, const char *errstr, void *opaque);

/* ---- outcomes (exactly-once) -------------------------------------------- */

/* recorded: NULL when the event has no recorded outcome; owned by the callee. */
typedef void jp_store_outcome_cb(jp_err_t err, const char *errstr, jp_outcome_t *recorded,
                                 void *opaque);
jp_err_t jp_store_get_outcome(jp_store_t *s, const char *event_id, jp_store_outcome_cb *cb,
                              void *opaque);
/* Records a terminal outcome (SUCCEEDED, SKIPPED or FAILED; others are
 * JP_ERR_INVALID) with the store's TTL. SET: overwrites (the pipeline reads
 * before it writes, so one event id maps to one outcome). cb may be NULL. */
jp_err_t jp_store_put_outcome(jp_store_t *s, const char *event_id, const jp_outcome_t *o,
                              jp_store_done_cb *cb, void *opaque);

/* ---- lookup cache --------------------------------------------------------- */

/* value: NULL on a miss; owned by the callee. */
typedef void jp_store_cache_cb(jp_err_t err, const char *errstr, json_t *value, void *opaque);
jp_err_t jp_store_cache_get(jp_store_t *s, const char *site, const char *kind, const char *name,
                            jp_store_cache_cb *cb, void *opaque);
/* value: a JSON object (borrowed; serialised before returning); ttl_s > 0.
 * cb may be NULL (fire and forget; a failure is logged at debug level). */
jp_err_t jp_store_cache_set(jp_store_t *s, const char *site, const char *kind, const char *name,
                            const json_t *value, int ttl_s, jp_store_done_cb *cb, void *opaque);
/* cb may be NULL. Deleting a missing entry is JP_OK. */
jp_err_t jp_store_cache_del(jp_store_t *s, const char *site, const char *kind, const char *name,
                            jp_store_done_cb *cb, void *opaque);

/* ---- attempts --------------------------------------------------------------- */

/* history: JSON array of {"at": ms, "reason": "...", "status": http} (oldest
 * first, at most JP_STORE_HISTORY_MAX), owned by the struct's holder. */
typedef struct jp_store_attempts {
    int attempts;
    int64_t first_ms;
    int64_t next_ms;
    json_t *history;
} jp_store_attempts_t;

/* a: NULL when the event has no attempt state; owned by the callee (free with
 * jp_store_attempts_free). */
typedef void jp_store_attempts_cb(jp_err_t err, const char *errstr, jp_store_attempts_t *a,
                                  void *opaque);
void jp_store_attempts_free(jp_store_attempts_t *a); /* NULL ok */

jp_err_t jp_store_get_attempts(jp_store_t *s, const char *event_id, jp_store_attempts_cb *cb,
                               void *opaque);
/* Atomically (one Lua script): attempts += 1, first_ms = now_ms if unset,
 * next_ms = next_ms, history += {at: now_ms, reason, status: http_status}
 * (keeping the newest JP_STORE_HISTORY_MAX), TTL = outcome_ttl_s. cb (may be
 * NULL) receives the new state. reason: UTF-8, at most JP_STORE_REASON_MAX
 * bytes; http_status 0 when no response arrived. */
jp_err_t jp_store_record_attempt(jp_store_t *s, const char *event_id, int64_t now_ms,
                                 int64_t next_ms, const char *reason, long http_status,
                                 jp_store_attempts_cb *cb, void *opaque);
/* cb may be NULL. Clearing missing state is JP_OK. */
jp_err_t jp_store_clear_attempts(jp_store_t *s, const char *event_id, jp_store_done_cb *cb,
                                 void *opaque);

#endif
