/* limiter: one budget and one view of Jira's limits per site, kept in Redis
 * and shared by every worker process.
 *
 * Before each Jira call the caller asks for a token (jp_limiter_acquire);
 * after the answer it reports what Jira said (jp_limiter_observe). All
 * decisions are made by Lua scripts inside Redis, atomically, against
 * Redis's own clock (TIME), so N workers behave as one client.
 *
 * Proactive budget (notes §4.1)
 *   - Burst: a token bucket per site x endpoint class x method, refilled at
 *     the configured rate (get/post/put/delete_per_s; PATCH uses put_per_s),
 *     holding one second's worth. Endpoint classes (jp_jira_req_t) group one
 *     or more Jira endpoints, so a class is never faster than Jira's
 *     per-endpoint bucket.
 *   - Per-issue writes: sliding windows per issue (issue_writes_per_2s,
 *     issue_writes_per_30s), checked for mutations that name an issue.
 *   - Hourly points (optional, hourly_points > 0): an estimate of each
 *     call's cost (1 for a write, 2 for an issue read, 3 for an identity
 *     read) counted per UTC hour; when spent, the site waits for the hour.
 *
 * Lanes
 *   Deprovisioning (account.disable, account.delete, entitlement.revoke)
 *   may spend a bucket down to zero. The other lanes stop at a floor of
 *   deprovision_reserve of the bucket plus 5 % (so that Jira's own bucket
 *   stays above its 20 % near-limit mark), which keeps capacity in reserve
 *   for deprovisioning; locally, waiting deprovisioning calls are served
 *   before normal ones and normal ones before reconciliation.
 *
 * Reactive view
 *   - A 429 (or a 503 with Retry-After) sets a cool-down for the scope
 *     RateLimit-Reason names: burst = that endpoint class and method,
 *     per-issue = that issue, quota = the whole site (global quota: every
 *     configured site). Retry-After is the cool-down (1 s when absent). A
 *     burst cool-down also empties the bucket, so that resuming ramps up at
 *     the refill rate instead of stampeding; every worker honours it on its
 *     next token request. A worker writes a burst or site cool-down once:
 *     later 429s whose cool-down would end at most 250 ms after the one it
 *     already wrote change nothing (a storm is one write, not thousands).
 *   - X-RateLimit-NearLimit: true slows the site down: for the next second
 *     its buckets refill at near_limit_slowdown of their rate.
 *   - Quarantine: quarantine_after consecutive 401/403 answers from one API
 *     of a site (scim, admin or rest) quarantine that site's API: its calls
 *     are deferred (the events wait parked; nothing is dead-lettered) and
 *     once per quarantine_probe_s one call is let through as a probe. Its
 *     answer decides: anything but 401/403 ends the quarantine at once for
 *     every worker, 401/403 keeps it. The worker that made a transition
 *     reports it through on_site_state (the pipeline publishes it).
 *
 * Waiting
 *   A call waits in a local queue per bucket while tokens refill (one Redis
 *   round trip grants a batch to the queue's head). While the bucket is more
 *   than half full, a round trip also takes a lease: up to what the queue
 *   used in the last JP_LIMITER_LEASE_MS (at most that long at the bucket's
 *   rate, and JP_LIMITER_BATCH_MAX), granted to its next calls without a
 *   round trip. A lease lapses after JP_LIMITER_LEASE_MS (its tokens are
 *   spent, not returned), and every lease of a site is dropped when Jira
 *   answers it 429, 503, 401/403 or near-limit, so the leases of all
 *   workers together overshoot a cool-down written by another worker by at
 *   most JP_LIMITER_LEASE_MS of traffic. Deprovisioning calls never lease
 *   (they may spend the reserve, which a lease must not hold). A queue holds about
 *   JP_LIMITER_QUEUE_MAX_MS worth of the bucket's rate, and at most
 *   opts.max_queue calls while it drains slowly (cooling down, or its last
 *   turn beyond JP_LIMITER_FAST_TURN_MS). Beyond that, and when the wait
 *   would be long (a cool-down or hourly quota over JP_LIMITER_QUEUE_MAX_MS,
 *   a quarantine, a busy issue), the call is answered DEFER with the time to
 *   wait, so the caller parks its event instead of holding it.
 *
 * Sharing off (rate_limits.shared: false) keeps the same state under keys
 * of this worker instance only: each worker limits itself (the benchmark's
 * comparison).
 *
 * Redis trouble: a token request that fails (Redis down, timeout) answers
 * the waiter ERROR; the caller retries its event later. The pipeline stops
 * taking events while Redis is unreachable.
 *
 * Keys (prefix from redis.key_prefix): "<p>rl:{<site>}:..." with the site in
 * a hash tag, so one site's keys live in one Redis Cluster slot.
 *
 * Threading: none; every function must be called on the loop's thread.
 * Ownership: the limiter borrows redis and cfg (they must outlive it); the
 * call description passed to acquire/observe is copied as needed. */
#ifndef JIRAPROV_LIMITER_H
#define JIRAPROV_LIMITER_H

#include "jiraprov/config.h"
#include "jiraprov/err.h"
#include "jiraprov/event.h"
#include "jiraprov/http.h"
#include "jiraprov/jira.h"
#include "jiraprov/redis.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

/* Longest wait a call spends queued; longer waits answer DEFER. */
#define JP_LIMITER_QUEUE_MAX_MS 5000
/* A queue whose last call's turn, at the bucket's rate, comes within this is fast: its
 * calls are not turned away by opts.max_queue. */
#define JP_LIMITER_FAST_TURN_MS 250
/* Calls granted to one queue per Redis round trip at most. */
#define JP_LIMITER_BATCH_MAX 32
/* How long tokens taken ahead (a lease) stay usable, and the window whose
 * calls size the next lease. */
#define JP_LIMITER_LEASE_MS 50

typedef enum jp_lane {
    JP_LANE_DEPROVISION = 0, /* disable, delete, revoke: may use the reserve */
    JP_LANE_NORMAL,          /* creates, updates, grants, issues */
    JP_LANE_RECON,           /* reconciliation reads: served last */
    JP_LANE_COUNT
} jp_lane_t;

/* "deprovision", "normal", "reconciliation". */
const char *jp_lane_name(jp_lane_t lane);
/* The lane of an event type. */
jp_lane_t jp_lane_of(jp_event_type_t type);

typedef struct jp_limiter jp_limiter_t;
typedef struct jp_limiter_wait jp_limiter_wait_t;

/* What a call is, for the budget: borrowed for the duration of the call of
 * acquire/observe only. */
typedef struct jp_limiter_call {
    const jp_site_t *site; /* one of cfg's sites */
    jp_jira_api_t api;
    jp_http_method_t method;
    const char *endpoint_class; /* "scim.users", "rest.issue", ... */
    const char *issue_key;      /* with mutation: per-issue writes apply */
    bool mutation;
    jp_lane_t lane;
} jp_limiter_call_t;

typedef enum jp_limiter_verdict {
    JP_LIMITER_GO = 0, /* send the call now */
    JP_LIMITER_PROBE,  /* send it: it probes a quarantined API (observe its answer) */
    JP_LIMITER_DEFER,  /* do not send; wait wait_ms (park the event), then start over */
    JP_LIMITER_ERROR   /* Redis failed; wait_ms is a suggestion */
} jp_limiter_verdict_t;

/* why: static text ("cool-down (burst)", "site quarantined (scim)", ...). */
typedef void jp_limiter_cb(jp_limiter_verdict_t verdict, int64_t wait_ms, const char *why,
                           void *opaque);

/* A quarantine began (quarantined = true) or ended. reason: why it began
 * ("http_401" ...), since_ms: wall clock of its start. Strings are valid
 * during the call only. */
typedef void jp_limiter_state_cb(const jp_site_t *site, jp_jira_api_t api, bool quarantined,
                                 const char *reason, int64_t since_ms, void *opaque);

typedef struct jp_limiter_opts {
    uv_loop_t *loop;
    jp_redis_t *redis;
    const jp_config_t *cfg; /* sites, their rate_limits, redis.key_prefix, instance id */
    jp_limiter_state_cb *on_site_state;
    void *opaque;
    /* Calls one slowly draining queue (site, API, method, class) may hold; a
     * call that finds it full, or whose turn would come after
     * JP_LIMITER_QUEUE_MAX_MS at the bucket's rate, is answered DEFER at once:
     * a slow site must not hold every running event of the worker. A queue
     * whose turns come within JP_LIMITER_FAST_TURN_MS is not capped. 0 = no
     * cap. */
    size_t max_queue;
} jp_limiter_opts_t;

/* NULL with errstr on a missing option or ENOMEM. */
jp_limiter_t *jp_limiter_new(const jp_limiter_opts_t *opts, char *errstr, size_t errstr_size);

/* Every queued call is answered ERROR ("limiter closed") before this returns.
 * Closes a timer handle: run the loop afterwards. Accepts NULL. */
void jp_limiter_destroy(jp_limiter_t *l);

/* Asks for a token. The callback is called exactly once, always later from
 * the loop, unless the wait is cancelled first. Returns the wait handle
 * (valid until the callback or jp_limiter_cancel), or NULL on ENOMEM (the
 * callback is then never called). */
jp_limiter_wait_t *jp_limiter_acquire(jp_limiter_t *l, const jp_limiter_call_t *call,
                                      jp_limiter_cb *cb, void *opaque);

/* Withdraws a queued request: its callback is not called. A request whose
 * Redis round trip is under way gives its token back to nobody (it is
 * spent); that is rare and harmless. */
void jp_limiter_cancel(jp_limiter_t *l, jp_limiter_wait_t *w);

/* Reports Jira's answer to a call that was sent: status (0 = no answer),
 * the Retry-After, RateLimit-Reason and X-RateLimit-NearLimit header values
 * (NULL when absent), probe = the call was granted as a probe. Fire and
 * forget: Redis errors are counted, not reported. */
void jp_limiter_observe(jp_limiter_t *l, const jp_limiter_call_t *call, bool probe, long status,
                        const char *retry_after, const char *ratelimit_reason,
                        const char *near_limit);

/* Counters since _new, for metrics. */
typedef struct jp_limiter_stats {
    uint64_t granted[JP_LANE_COUNT];
    uint64_t deferred;     /* DEFER answers */
    uint64_t errors;       /* ERROR answers and failed observations */
    uint64_t cooldowns;    /* cool-downs this worker set (429, 503) */
    uint64_t near_limit;   /* near-limit slow-downs this worker set */
    uint64_t redis_calls;  /* token requests sent */
    uint64_t leased;       /* calls granted from a lease, without a round trip */
    uint64_t lease_lapsed; /* leased tokens that lapsed unused */
    uint64_t waiting;      /* calls queued now */
    uint64_t quarantined;  /* site APIs this worker last saw quarantined */
} jp_limiter_stats_t;

void jp_limiter_stats(const jp_limiter_t *l, jp_limiter_stats_t *out);

/* Whether this worker last saw `site` quarantined (any API). */
bool jp_limiter_site_quarantined(const jp_limiter_t *l, const jp_site_t *site);

#endif
