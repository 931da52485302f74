/* limiter.c - the shared per-site budget (see include/jiraprov/limiter.h).
 *
 * Locally: one queue per (site, API, method, endpoint class), with a FIFO
 * per lane. A queue has at most one token request in flight; its answer
 * releases a batch of waiters (GO), re-arms the queue's timer for the next
 * token, or defers the waiters (DEFER) when the wait is long. Everything
 * that decides lives in the two Lua scripts below, run inside Redis.
 *
 * Leases: while its bucket is more than half full, a queue asks for a few
 * tokens beyond its waiters (about what it used in the last
 * JP_LIMITER_LEASE_MS) and serves its next calls from them without a round
 * trip; what is not used within JP_LIMITER_LEASE_MS is dropped (spent, never
 * given back), as is every lease of a site when Jira answers 429, 503,
 * 401/403 or near-limit. */
#include "jiraprov/limiter.h"

#include "jiraprov/classify.h"
#include "jiraprov/log.h"
#include "jiraprov/metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define COMPONENT     "limiter"
#define QUEUE_BUCKETS 1024
/* A floor above the reserve, so Jira's own bucket stays above its 20 %
 * near-limit mark while the normal lanes spend. */
#define FLOOR_MARGIN    0.05
#define DEFAULT_COOL_MS 1000
#define NEAR_LIMIT_MS   1000
#define ERROR_WAIT_MS   1000
/* Calls that arrive while a probe is out wait about this long for its answer. */
#define PROBE_WAIT_MS 2000
/* A cool-down this worker already wrote that ends at most this much earlier
 * than a new one covers it: a storm's thousands of 429s in the same second
 * become one write instead of thousands of Redis scripts. */
#define COOL_COALESCE_MS 250

/* ---- the scripts ------------------------------------------------------------- */

/* Token request.
 * KEYS: 1 bucket, 2 site cool-down, 3 endpoint cool-down, 4 slow, 5 quarantine,
 *       6 auth failures, 7 hourly points, 8 issue writes, 9 issue cool-down
 * ARGV: 1 rate/s, 2 capacity, 3 floor, 4 wanted, 5 slowdown, 6 per-issue (0/1),
 *       7 w1 limit, 8 w1 ms, 9 w2 limit, 10 w2 ms, 11 cost, 12 hourly points,
 *       13 probe ms, 14 nonce
 * Returns {code, wait_ms, auth failures, x}: code >= 0 tokens granted (wait_ms
 * until the next one when fewer than wanted; x = tokens left), -1 cool-down
 * (x = 1 for the whole site, 0 for the endpoint), -2 quarantined,
 * -3 probe granted, -4 this issue must wait, -5 hourly points spent. */
static const char acquire_lua[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local af = tonumber(redis.call('GET', KEYS[6]) or '0')\n"
    "local probe_at = redis.call('HGET', KEYS[5], 'probe_at')\n"
    "if probe_at then\n"
    "  probe_at = tonumber(probe_at)\n"
    "  if now >= probe_at then\n"
    "    redis.call('HSET', KEYS[5], 'probe_at', now + tonumber(ARGV[13]))\n"
    "    return {-3, 0, af}\n"
    "  end\n"
    "  return {-2, probe_at - now, af}\n"
    "end\n"
    "local ws, we = redis.call('PTTL', KEYS[2]), redis.call('PTTL', KEYS[3])\n"
    "if ws > 0 or we > 0 then return {-1, math.max(ws, we), af, ws >= we and 1 or 0} end\n"
    "local issue = ARGV[6] == '1'\n"
    "if issue then\n"
    "  local w = redis.call('PTTL', KEYS[9])\n"
    "  if w > 0 then return {-4, w, af} end\n"
    "  redis.call('ZREMRANGEBYSCORE', KEYS[8], '-inf', now - tonumber(ARGV[10]))\n"
    "  for _, win in ipairs({{ARGV[7], ARGV[8]}, {ARGV[9], ARGV[10]}}) do\n"
    "    local lim, ms = tonumber(win[1]), tonumber(win[2])\n"
    "    local c = redis.call('ZCOUNT', KEYS[8], now - ms + 1, '+inf')\n"
    "    if c >= lim then\n"
    "      local e = redis.call('ZRANGEBYSCORE', KEYS[8], now - ms + 1, '+inf', 'WITHSCORES',\n"
    "                           'LIMIT', c - lim, 1)\n"
    "      return {-4, math.max(tonumber(e[2]) + ms - now, 1), af}\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local hp, cost, hour, used = tonumber(ARGV[12]), tonumber(ARGV[11]), 0, 0\n"
    "if hp > 0 then\n"
    "  hour = math.floor(now / 3600000)\n"
    "  used = tonumber(redis.call('HGET', KEYS[7], hour) or '0')\n"
    "  if used + cost > hp then return {-5, (hour + 1) * 3600000 - now, af} end\n"
    "end\n"
    "local rate = tonumber(ARGV[1])\n"
    "if redis.call('EXISTS', KEYS[4]) == 1 then rate = rate * tonumber(ARGV[5]) end\n"
    "if rate < 0.01 then rate = 0.01 end\n"
    "local cap, floor, n = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])\n"
    "local b = redis.call('HMGET', KEYS[1], 't', 'at')\n"
    "local tokens, at = tonumber(b[1]) or cap, tonumber(b[2]) or now\n"
    "if now > at then tokens = math.min(cap, tokens + (now - at) * rate / 1000); at = now end\n"
    "local grant = math.max(math.min(n, math.floor(tokens - floor)), 0)\n"
    "if hp > 0 and grant > 0 then\n"
    "  grant = math.min(grant, math.floor((hp - used) / cost))\n"
    "  redis.call('HINCRBY', KEYS[7], hour, grant * cost)\n"
    "  redis.call('PEXPIRE', KEYS[7], 7200000)\n"
    "end\n"
    "tokens = tokens - grant\n"
    "redis.call('HSET', KEYS[1], 't', tostring(tokens), 'at', at)\n"
    "redis.call('PEXPIRE', KEYS[1], 60000)\n"
    "if issue and grant > 0 then\n"
    "  redis.call('ZADD', KEYS[8], now, ARGV[14])\n"
    "  redis.call('PEXPIRE', KEYS[8], tonumber(ARGV[10]))\n"
    "end\n"
    "local nextw = 0\n"
    "if grant < n then nextw = math.max(math.ceil((floor + 1 - tokens) * 1000 / rate), 1) end\n"
    "return {grant, nextw, af, math.floor(tokens)}\n";

/* What Jira said.
 * KEYS: 1 bucket, 2 site cool-down, 3 endpoint cool-down, 4 slow, 5 quarantine,
 *       6 auth failures, 7 issue cool-down
 * ARGV: 1 kind (cool|near|auth|ok), 2 scope (burst|issue|site), 3 ms,
 *       4 quarantine_after, 5 probe ms, 6 reason
 * Returns {0} or {1, since} (quarantine began) or {2, since} (it ended). */
static const char observe_lua[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local kind = ARGV[1]\n"
    "if kind == 'cool' then\n"
    "  local key, ms = KEYS[3], tonumber(ARGV[3])\n"
    "  if ARGV[2] == 'site' then key = KEYS[2] elseif ARGV[2] == 'issue' then key = KEYS[7] end\n"
    "  if redis.call('PTTL', key) < ms then redis.call('SET', key, '1', 'PX', ms) end\n"
    "  if ARGV[2] ~= 'issue' then\n"
    "    redis.call('HSET', KEYS[1], 't', '0', 'at', now + ms)\n"
    "    redis.call('PEXPIRE', KEYS[1], 60000 + ms)\n"
    "  end\n"
    "  return {0}\n"
    "elseif kind == 'near' then\n"
    "  redis.call('SET', KEYS[4], '1', 'PX', tonumber(ARGV[3]))\n"
    "  return {0}\n"
    "elseif kind == 'auth' then\n"
    "  local n = redis.call('INCR', KEYS[6])\n"
    "  redis.call('PEXPIRE', KEYS[6], 3600000)\n"
    "  if redis.call('EXISTS', KEYS[5]) == 1 then\n"
    "    redis.call('HSET', KEYS[5], 'probe_at', now + tonumber(ARGV[5]))\n"
    "    return {0}\n"
    "  end\n"
    "  if n >= tonumber(ARGV[4]) then\n"
    "    redis.call('HSET', KEYS[5], 'since', now, 'reason', ARGV[6], 'probe_at',\n"
    "               now + tonumber(ARGV[5]))\n"
    "    return {1, now}\n"
    "  end\n"
    "  return {0}\n"
    "end\n"
    "redis.call('DEL', KEYS[6])\n"
    "local since = redis.call('HGET', KEYS[5], 'since')\n"
    "if since then\n"
    "  redis.call('DEL', KEYS[5])\n"
    "  return {2, tonumber(since)}\n"
    "end\n"
    "return {0}\n";

/* ---- state ------------------------------------------------------------------------ */

#define API_COUNT 3

/* Per site, per API: what this worker last learned from Redis. */
typedef struct site_state {
    struct site_state *next;
    char *name;
    char *tag; /* "<prefix>rl:{<site>}" or, unshared, "<prefix>rl:{<site>@<instance>}" */
    int64_t authfails[API_COUNT];
    bool quarantined[API_COUNT];
    uint64_t near_sent_ms;    /* last near-limit report (rate of writes to Redis) */
    uint64_t cool_sent_until; /* end of the last site-wide cool-down this worker wrote */
} site_state_t;

typedef struct queue queue_t;

struct jp_limiter_wait {
    jp_limiter_wait_t *next;
    queue_t *q;
    jp_lane_t lane;
    jp_limiter_cb *cb;
    void *opaque;
    char *issue_key;      /* set for mutations of an issue */
    bool asking;          /* part of the token request in flight */
    int64_t full_wait_ms; /* > 0: found its queue full (on the overflow list) */
    bool cancelled;       /* withdrawn while asking */
};

typedef struct lane_list {
    jp_limiter_wait_t *head, *tail;
} lane_list_t;

struct queue {
    queue_t *next; /* hash chain */
    jp_limiter_t *l;
    site_state_t *site;
    jp_jira_api_t api;
    jp_http_method_t method;
    char *endpoint_class;
    char *bucket_key, *cool_key;
    lane_list_t lanes[JP_LANE_COUNT];
    size_t waiting;
    bool asking;
    struct ask *ask;            /* the token request in flight, if any */
    bool cooling;               /* the last answer was a cool-down (its gauge is set) */
    uint64_t cool_sent_until;   /* end of the last burst cool-down this worker wrote */
    size_t lease;               /* tokens granted beyond the waiters, unused */
    uint64_t lease_until;       /* mono ms when they lapse */
    bool plenty;                /* the last grant left the bucket more than half full */
    uint64_t win_start;         /* current demand window (JP_LIMITER_LEASE_MS) */
    size_t win_used, prev_used; /* calls granted in it, and in the one before */
    uv_timer_t *timer;          /* separate allocation: closes after the queue is freed */
};

/* Outstanding Redis commands point here, so a callback arriving after
 * jp_limiter_destroy finds l == NULL and only frees itself. */
typedef struct anchor {
    jp_limiter_t *l;
    size_t refs;
} anchor_t;

typedef struct ask {
    anchor_t *anchor;
    queue_t *q;
    jp_lane_t lane;
    double cap, floor; /* the bucket as asked, to judge what the answer left */
    size_t n;
    jp_limiter_wait_t *ws[JP_LIMITER_BATCH_MAX];
} ask_t;

typedef struct observation {
    anchor_t *anchor;
    site_state_t *site;
    jp_jira_api_t api;
    const jp_site_t *cfg_site;
} observation_t;

struct jp_limiter {
    uv_loop_t *loop;
    jp_redis_t *redis;
    const jp_config_t *cfg;
    jp_limiter_state_cb *on_site_state;
    void *opaque;
    size_t max_queue;
    lane_list_t overflow; /* calls that found their queue full, answered DEFER from kick */
    uv_timer_t *kick;
    jp_redis_script_t *acquire_script, *observe_script;
    queue_t *queues[QUEUE_BUCKETS];
    site_state_t *sites;
    anchor_t *anchor;
    uint64_t nonce;
    jp_limiter_stats_t st;
};

const char *jp_lane_name(jp_lane_t lane)
{
    static const char *names[] = {"deprovision", "normal", "reconciliation"};
    return lane < JP_LANE_COUNT ? names[lane] : "unknown";
}

jp_lane_t jp_lane_of(jp_event_type_t type)
{
    switch (type) {
    case JP_EVENT_ACCOUNT_DISABLE:
    case JP_EVENT_ACCOUNT_DELETE:
    case JP_EVENT_ENTITLEMENT_REVOKE:
        return JP_LANE_DEPROVISION;
    case JP_EVENT_RECON_REQUEST:
        return JP_LANE_RECON;
    default:
        return JP_LANE_NORMAL;
    }
}

static uint64_t mono_ms(void)
{
    return uv_hrtime() / 1000000u;
}

static char *strdup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *strdup_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (!s)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* Uniform in [0, 1). Full-jitter style spreading of wake-ups across workers. */
static double frand(void)
{
    return (double)rand() / ((double)RAND_MAX + 1.0);
}

static site_state_t *site_state(jp_limiter_t *l, const jp_site_t *site)
{
    for (site_state_t *s = l->sites; s; s = s->next)
        if (strcmp(s->name, site->name) == 0)
            return s;
    site_state_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->name = strdup(site->name);
    const char *prefix = l->cfg->redis.key_prefix ? l->cfg->redis.key_prefix : "";
    s->tag = site->rate_limits.shared
                 ? strdup_printf("%srl:{%s}", prefix, site->name)
                 : strdup_printf("%srl:{%s@%s}", prefix, site->name, l->cfg->worker.instance_id);
    if (!s->name || !s->tag) {
        free(s->name);
        free(s->tag);
        free(s);
        return NULL;
    }
    s->next = l->sites;
    l->sites = s;
    return s;
}

static void anchor_unref(anchor_t *a)
{
    if (--a->refs == 0 && !a->l)
        free(a);
}

/* ---- rates ---------------------------------------------------------------------- */

static double method_rate(const jp_config_rate_limits_t *rl, jp_http_method_t m)
{
    switch (m) {
    case JP_HTTP_GET:
        return rl->get_per_s;
    case JP_HTTP_POST:
        return rl->post_per_s;
    case JP_HTTP_DELETE:
        return rl->delete_per_s;
    default: /* PUT, PATCH */
        return rl->put_per_s;
    }
}

/* Estimated points of one call (notes §4.1): a write costs 1; a read costs
 * 1 plus 1 per core object or 2 per identity object (one object assumed). */
static int call_cost(const queue_t *q)
{
    if (q->method != JP_HTTP_GET)
        return 1;
    const char *c = q->endpoint_class;
    if (strncmp(c, "rest.issue", 10) == 0 || strcmp(c, "rest.search") == 0)
        return 2;
    return 3;
}

/* ---- queues ---------------------------------------------------------------------- */

static size_t queue_hash(const char *site, jp_jira_api_t api, jp_http_method_t m, const char *cls)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *s = site; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    for (const char *s = cls; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    h = (h ^ (unsigned)api) * 1099511628211ull;
    h = (h ^ (unsigned)m) * 1099511628211ull;
    return (size_t)(h % QUEUE_BUCKETS);
}

static void free_timer(uv_handle_t *h)
{
    free(h);
}

static void queue_free(queue_t *q)
{
    free(q->endpoint_class);
    free(q->bucket_key);
    free(q->cool_key);
    if (q->timer)
        uv_close((uv_handle_t *)q->timer, free_timer);
    free(q);
}

static queue_t *queue_get(jp_limiter_t *l, const jp_limiter_call_t *c)
{
    const char *cls = c->endpoint_class ? c->endpoint_class : "other";
    size_t h = queue_hash(c->site->name, c->api, c->method, cls);
    for (queue_t *q = l->queues[h]; q; q = q->next)
        if (q->api == c->api && q->method == c->method &&
            strcmp(q->site->name, c->site->name) == 0 && strcmp(q->endpoint_class, cls) == 0)
            return q;
    site_state_t *s = site_state(l, c->site);
    queue_t *q = s ? calloc(1, sizeof(*q)) : NULL;
    if (!q)
        return NULL;
    q->l = l;
    q->site = s;
    q->api = c->api;
    q->method = c->method;
    q->endpoint_class = strdup(cls);
    q->bucket_key = strdup_printf("%s:b:%s:%s", s->tag, jp_http_method_name(c->method), cls);
    q->cool_key = strdup_printf("%s:cool:%s:%s", s->tag, jp_http_method_name(c->method), cls);
    q->timer = malloc(sizeof(*q->timer));
    if (!q->endpoint_class || !q->bucket_key || !q->cool_key || !q->timer) {
        free(q->timer);
        q->timer = NULL;
        queue_free(q);
        return NULL;
    }
    uv_timer_init(l->loop, q->timer);
    q->timer->data = q;
    q->next = l->queues[h];
    l->queues[h] = q;
    return q;
}

static void lane_push_back(lane_list_t *ll, jp_limiter_wait_t *w)
{
    w->next = NULL;
    if (ll->tail)
        ll->tail->next = w;
    else
        ll->head = w;
    ll->tail = w;
}

static void lane_push_front(lane_list_t *ll, jp_limiter_wait_t *w)
{
    w->next = ll->head;
    ll->head = w;
    if (!ll->tail)
        ll->tail = w;
}

static jp_limiter_wait_t *lane_pop(lane_list_t *ll)
{
    jp_limiter_wait_t *w = ll->head;
    if (w) {
        ll->head = w->next;
        if (!ll->head)
            ll->tail = NULL;
        w->next = NULL;
    }
    return w;
}

static void wait_free(jp_limiter_wait_t *w)
{
    free(w->issue_key);
    free(w);
}

/* ---- leases ----------------------------------------------------------------------- */

static void roll_window(queue_t *q, uint64_t now)
{
    if (now - q->win_start < JP_LIMITER_LEASE_MS)
        return;
    q->prev_used = now - q->win_start < 2 * JP_LIMITER_LEASE_MS ? q->win_used : 0;
    q->win_start = now;
    q->win_used = 0;
}

/* What the queue spends in a lease period, judged by its recent calls. */
static size_t recent_demand(queue_t *q, uint64_t now)
{
    roll_window(q, now);
    return q->win_used > q->prev_used ? q->win_used : q->prev_used;
}

static void drop_lease(queue_t *q)
{
    q->lease = 0;
    q->plenty = false;
}

/* Jira pushed back: nothing of the site is spent on tokens taken before. */
static void drop_site_leases(jp_limiter_t *l, const site_state_t *s)
{
    for (size_t i = 0; i < QUEUE_BUCKETS; i++)
        for (queue_t *q = l->queues[i]; q; q = q->next)
            if (q->site == s)
                drop_lease(q);
}

/* Answers one waiter (it leaves the queue's count) and frees it. */
static void answer(queue_t *q, jp_limiter_wait_t *w, jp_limiter_verdict_t v, int64_t wait_ms,
                   const char *why)
{
    jp_limiter_t *l = q->l;
    q->waiting--;
    l->st.waiting--;
    jp_limiter_cb *cb = w->cb;
    void *opaque = w->opaque;
    int cancelled = w->cancelled;
    wait_free(w);
    if (cancelled)
        return;
    if (v == JP_LIMITER_DEFER)
        l->st.deferred++;
    else if (v == JP_LIMITER_ERROR)
        l->st.errors++;
    cb(v, wait_ms, why, opaque);
}

/* A token for w: counted for its lane and for the queue's demand. */
static void grant(queue_t *q, jp_limiter_wait_t *w)
{
    q->l->st.granted[w->lane]++;
    roll_window(q, mono_ms());
    q->win_used++;
    answer(q, w, JP_LIMITER_GO, 0, NULL);
}

/* Serves waiting calls from the lease, in lane order; a call bound to an issue
 * (its per-issue window is checked in Redis) stops it. */
static void serve_from_lease(queue_t *q)
{
    if (q->lease && mono_ms() >= q->lease_until) {
        q->l->st.lease_lapsed += q->lease;
        q->lease = 0;
    }
    for (int lane = 0; lane < JP_LANE_COUNT && q->lease; lane++) {
        lane_list_t *ll = &q->lanes[lane];
        while (q->lease && ll->head && !ll->head->issue_key) {
            q->lease--;
            q->l->st.leased++;
            grant(q, lane_pop(ll));
        }
        if (ll->head)
            return;
    }
}

/* A long wait: every queued call is deferred, each to a slightly different
 * time so that the queue does not come back all at once. */
static void defer_all(queue_t *q, int64_t wait_ms, const char *why)
{
    int64_t spread = wait_ms / 5 > 1000 ? 1000 : wait_ms / 5 + 50;
    for (int lane = 0; lane < JP_LANE_COUNT; lane++) {
        jp_limiter_wait_t *w;
        while ((w = lane_pop(&q->lanes[lane])))
            answer(q, w, JP_LIMITER_DEFER, wait_ms + (int64_t)(frand() * (double)spread), why);
    }
}

static void fail_all(queue_t *q, const char *why)
{
    for (int lane = 0; lane < JP_LANE_COUNT; lane++) {
        jp_limiter_wait_t *w;
        while ((w = lane_pop(&q->lanes[lane])))
            answer(q, w, JP_LIMITER_ERROR, ERROR_WAIT_MS, why);
    }
}

static void ask(queue_t *q);

static void timer_cb(uv_timer_t *t)
{
    ask(t->data);
}

static void schedule(queue_t *q, int64_t delay_ms)
{
    if ((q->asking && !q->lease) || q->waiting == 0)
        return;
    uv_timer_start(q->timer, timer_cb, (uint64_t)(delay_ms > 0 ? delay_ms : 0), 0);
}

/* Puts the waiters of a request that were not served back at the head of
 * their lane, in their order. */
static void put_back(ask_t *a, size_t from)
{
    for (size_t i = a->n; i > from; i--) {
        jp_limiter_wait_t *w = a->ws[i - 1];
        w->asking = false;
        if (w->cancelled)
            answer(a->q, w, JP_LIMITER_ERROR, 0, "cancelled");
        else
            lane_push_front(&a->q->lanes[a->lane], w);
    }
}

static int64_t reply_int(const redisReply *r, size_t i)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || i >= r->elements)
        return 0;
    const redisReply *e = r->element[i];
    if (e->type == REDIS_REPLY_INTEGER)
        return e->integer;
    if (e->type == REDIS_REPLY_STRING)
        return strtoll(e->str, NULL, 10);
    return 0;
}

static void acquired(jp_redis_t *r, const redisReply *reply, jp_err_t err, const char *errstr,
                     void *opaque)
{
    ask_t *a = opaque;
    anchor_t *anchor = a->anchor;
    if (!anchor->l) { /* the limiter is gone; its waiters were answered */
        anchor_unref(anchor);
        free(a);
        return;
    }
    anchor_unref(anchor);
    queue_t *q = a->q;
    q->asking = false;
    q->ask = NULL;
    if (err != JP_OK || !reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3) {
        jp_debug(COMPONENT, "token request for %s %s: %s", q->site->name, q->bucket_key,
                 errstr ? errstr : "unexpected reply");
        put_back(a, 0);
        free(a);
        fail_all(q, "rate-limit state unavailable (Redis)");
        return;
    }
    int64_t code = reply_int(reply, 0), wait = reply_int(reply, 1);
    q->site->authfails[q->api] = reply_int(reply, 2);
    bool quarantined = code == -2 || code == -3;
    if (quarantined != q->site->quarantined[q->api])
        jp_metrics_site_quarantined(q->site->name, jp_jira_api_name(q->api), quarantined);
    q->site->quarantined[q->api] = quarantined;
    if (code >= 0) {
        jp_metrics_ratelimit_tokens(q->site->name, q->endpoint_class,
                                    jp_http_method_name(q->method), (double)reply_int(reply, 3));
        if (q->cooling) { /* a grant: no cool-down of either scope holds it any more */
            q->cooling = false;
            jp_metrics_ratelimit_cooldown(q->site->name, "endpoint", 0);
            jp_metrics_ratelimit_cooldown(q->site->name, "site", 0);
        }
    } else if (code == -1) {
        drop_lease(q);
        q->cooling = true;
        jp_metrics_ratelimit_cooldown(q->site->name, reply_int(reply, 3) ? "site" : "endpoint",
                                      (double)wait / 1000.0);
    }
    size_t served = 0;
    if (code >= 0) {
        if ((size_t)code > a->n) { /* the lease: tokens beyond the waiters */
            q->lease = (size_t)code - a->n;
            q->lease_until = mono_ms() + JP_LIMITER_LEASE_MS;
        }
        double left = (double)reply_int(reply, 3);
        q->plenty = left - a->floor >= (a->cap - a->floor) / 2;
        for (; served < (size_t)code && served < a->n; served++)
            grant(q, a->ws[served]);
        size_t asked = a->n;
        put_back(a, served);
        free(a);
        if (served == asked || wait <= 0)
            schedule(q, 0);
        else if (wait > JP_LIMITER_QUEUE_MAX_MS)
            defer_all(q, wait, "waiting for tokens");
        else /* a little spread keeps workers from asking in lock-step */
            schedule(q, wait + (int64_t)(frand() * (double)(wait / 8 + 1)));
        return;
    }
    drop_lease(q);    /* quarantined, hourly points spent, or a busy issue */
    if (code == -3) { /* the first call goes as the probe; the rest wait for its answer */
        answer(q, a->ws[0], JP_LIMITER_PROBE, 0, NULL);
        put_back(a, 1);
        free(a);
        defer_all(q, PROBE_WAIT_MS, "site quarantined; a probe is under way");
        return;
    }
    if (code == -4) { /* only this issue must wait */
        answer(q, a->ws[0], JP_LIMITER_DEFER, wait, "per-issue write limit");
        put_back(a, 1);
        free(a);
        schedule(q, 0);
        return;
    }
    put_back(a, 0);
    free(a);
    const char *why = code == -2   ? "site quarantined"
                      : code == -5 ? "hourly points budget spent"
                                   : "cool-down after a rate-limit answer";
    if (code == -2 || wait > JP_LIMITER_QUEUE_MAX_MS)
        defer_all(q, wait, why);
    else
        schedule(q, wait + (int64_t)(frand() * (double)(wait / 4 + 10)));
}

/* Sends one token request for the head of the queue's first non-empty lane:
 * a batch of plain calls, or one issue write (its windows are per issue). */
static void ask(queue_t *q)
{
    jp_limiter_t *l = q->l;
    serve_from_lease(q);
    if (q->asking || q->waiting == 0)
        return;
    int lane = 0;
    while (lane < JP_LANE_COUNT && !q->lanes[lane].head)
        lane++;
    if (lane == JP_LANE_COUNT)
        return;
    ask_t *a = calloc(1, sizeof(*a));
    if (!a) {
        fail_all(q, "out of memory");
        return;
    }
    a->q = q;
    a->lane = (jp_lane_t)lane;
    lane_list_t *ll = &q->lanes[lane];
    const char *issue = ll->head->issue_key;
    do {
        jp_limiter_wait_t *w = lane_pop(ll);
        w->asking = true;
        a->ws[a->n++] = w;
    } while (!issue && a->n < JP_LIMITER_BATCH_MAX && ll->head && !ll->head->issue_key);

    const jp_site_t *site = NULL;
    for (size_t i = 0; i < l->cfg->site_count; i++)
        if (strcmp(l->cfg->sites[i].name, q->site->name) == 0)
            site = &l->cfg->sites[i];
    const jp_config_rate_limits_t *rl = site ? &site->rate_limits : &l->cfg->rate_limits;
    double rate = method_rate(rl, q->method);
    double floor =
        lane == JP_LANE_DEPROVISION ? 0 : (rl->deprovision_reserve + FLOOR_MARGIN) * rate;
    double cap = rate > floor + 1 ? rate : floor + 1;
    a->cap = cap;
    a->floor = floor;
    /* A lease only while the bucket has plenty, and never from the reserve. */
    size_t extra = 0;
    if (!issue && lane != JP_LANE_DEPROVISION && q->plenty) {
        size_t by_rate = (size_t)(rate * JP_LIMITER_LEASE_MS / 1000.0);
        extra = recent_demand(q, mono_ms());
        extra = extra < by_rate ? extra : by_rate;
        extra = extra < JP_LIMITER_BATCH_MAX ? extra : JP_LIMITER_BATCH_MAX;
    }

    char k_site_cool[512], k_slow[512], k_quar[512], k_auth[512], k_points[512], k_iw[512],
        k_icool[512];
    const char *api = jp_jira_api_name(q->api);
    snprintf(k_site_cool, sizeof(k_site_cool), "%s:cool", q->site->tag);
    snprintf(k_slow, sizeof(k_slow), "%s:slow", q->site->tag);
    snprintf(k_quar, sizeof(k_quar), "%s:quarantine:%s", q->site->tag, api);
    snprintf(k_auth, sizeof(k_auth), "%s:authfail:%s", q->site->tag, api);
    snprintf(k_points, sizeof(k_points), "%s:points", q->site->tag);
    snprintf(k_iw, sizeof(k_iw), "%s:issue:%s", q->site->tag, issue ? issue : "");
    snprintf(k_icool, sizeof(k_icool), "%s:cool:issue:%s", q->site->tag, issue ? issue : "");
    const char *keys[] = {q->bucket_key, k_site_cool, q->cool_key, k_slow, k_quar,
                          k_auth,        k_points,    k_iw,        k_icool};

    char s_rate[32], s_cap[32], s_floor[32], s_n[16], s_slow[32], s_w1[16], s_w2[16], s_cost[16],
        s_hp[16], s_probe[24], s_nonce[64];
    snprintf(s_rate, sizeof(s_rate), "%.3f", rate);
    snprintf(s_cap, sizeof(s_cap), "%.3f", cap);
    snprintf(s_floor, sizeof(s_floor), "%.3f", floor);
    snprintf(s_n, sizeof(s_n), "%zu", a->n + extra);
    snprintf(s_slow, sizeof(s_slow), "%.3f", rl->near_limit_slowdown);
    snprintf(s_w1, sizeof(s_w1), "%d", rl->issue_writes_per_2s);
    snprintf(s_w2, sizeof(s_w2), "%d", rl->issue_writes_per_30s);
    snprintf(s_cost, sizeof(s_cost), "%d", call_cost(q));
    snprintf(s_hp, sizeof(s_hp), "%d", rl->hourly_points);
    snprintf(s_probe, sizeof(s_probe), "%lld", (long long)rl->quarantine_probe_s * 1000);
    snprintf(s_nonce, sizeof(s_nonce), "%s:%" PRIu64, l->cfg->worker.instance_id, ++l->nonce);
    const char *args[] = {s_rate, s_cap, s_floor, s_n,    s_slow, issue ? "1" : "0", s_w1,
                          "2000", s_w2,  "30000", s_cost, s_hp,   s_probe,           s_nonce};

    a->anchor = l->anchor;
    l->anchor->refs++;
    q->asking = true;
    q->ask = a;
    l->st.redis_calls++;
    char err[256];
    if (jp_redis_evalsha(l->redis, l->acquire_script, acquired, a, 9, keys, 14, args, err,
                         sizeof(err)) != JP_OK) {
        l->anchor->refs--;
        q->asking = false;
        q->ask = NULL;
        put_back(a, 0);
        free(a);
        fail_all(q, "rate-limit state unavailable (Redis)");
    }
}

/* ---- acquire / cancel --------------------------------------------------------------- */

static void kick_cb(uv_timer_t *t)
{
    jp_limiter_t *l = t->data;
    jp_limiter_wait_t *w;
    while ((w = lane_pop(&l->overflow))) {
        int64_t wait = w->full_wait_ms + (int64_t)(frand() * (double)(w->full_wait_ms / 5 + 1));
        answer(w->q, w, JP_LIMITER_DEFER, wait, "too many calls waiting for this site's budget");
    }
}

jp_limiter_wait_t *jp_limiter_acquire(jp_limiter_t *l, const jp_limiter_call_t *c,
                                      jp_limiter_cb *cb, void *opaque)
{
    if (!l || !c || !c->site || !cb)
        return NULL;
    queue_t *q = queue_get(l, c);
    jp_limiter_wait_t *w = q ? calloc(1, sizeof(*w)) : NULL;
    if (!w)
        return NULL;
    w->q = q;
    w->lane = c->lane < JP_LANE_COUNT ? c->lane : JP_LANE_NORMAL;
    w->cb = cb;
    w->opaque = opaque;
    if (c->mutation && c->issue_key && c->site->rate_limits.issue_writes_per_2s > 0) {
        if (!(w->issue_key = strdup(c->issue_key))) {
            free(w);
            return NULL;
        }
    }
    /* A full queue: this call's turn is far off; its event waits parked instead. The count
     * cap (max_queue) only applies to a queue that drains slowly (cooling down, or a turn
     * beyond JP_LIMITER_FAST_TURN_MS at the bucket's rate): a burst for a bucket with tokens
     * to spare is served in a few round trips, and parking it would only delay it. */
    double rate = method_rate(&c->site->rate_limits, c->method);
    size_t by_rate = (size_t)(rate * JP_LIMITER_QUEUE_MAX_MS / 1000.0) + 1;
    q->waiting++;
    l->st.waiting++;
    int64_t turn = (int64_t)((double)q->waiting * 1000.0 / (rate > 0 ? rate : 1));
    bool slow = q->cooling || turn > JP_LIMITER_FAST_TURN_MS;
    bool full = q->waiting > by_rate || (slow && l->max_queue && q->waiting > l->max_queue);
    if (full && w->lane != JP_LANE_DEPROVISION) {
        w->full_wait_ms = turn > JP_LIMITER_QUEUE_MAX_MS ? turn : JP_LIMITER_QUEUE_MAX_MS;
        lane_push_back(&l->overflow, w);
        uv_timer_start(l->kick, kick_cb, 0, 0);
        return w;
    }
    lane_push_back(&q->lanes[w->lane], w);
    /* Never answer from inside this call: the request goes out from the loop. */
    if ((!q->asking || q->lease) && !uv_is_active((uv_handle_t *)q->timer))
        schedule(q, 0);
    return w;
}

void jp_limiter_cancel(jp_limiter_t *l, jp_limiter_wait_t *w)
{
    if (!l || !w)
        return;
    if (w->asking) { /* its request is out: drop it when the answer comes */
        w->cancelled = true;
        return;
    }
    lane_list_t *ll = w->full_wait_ms > 0 ? &l->overflow : &w->q->lanes[w->lane];
    jp_limiter_wait_t *prev = NULL;
    for (jp_limiter_wait_t *x = ll->head; x; prev = x, x = x->next) {
        if (x != w)
            continue;
        if (prev)
            prev->next = x->next;
        else
            ll->head = x->next;
        if (ll->tail == x)
            ll->tail = prev;
        w->q->waiting--;
        l->st.waiting--;
        wait_free(w);
        return;
    }
}

/* ---- observe ---------------------------------------------------------------------------- */

static void observed(jp_redis_t *r, const redisReply *reply, jp_err_t err, const char *errstr,
                     void *opaque)
{
    observation_t *o = opaque;
    jp_limiter_t *l = o->anchor->l;
    anchor_unref(o->anchor);
    if (!l) {
        free(o);
        return;
    }
    if (err != JP_OK || !reply || reply->type != REDIS_REPLY_ARRAY) {
        l->st.errors++;
        jp_debug(COMPONENT, "reporting to the shared rate-limit state: %s",
                 errstr ? errstr : "unexpected reply");
        free(o);
        return;
    }
    int64_t code = reply_int(reply, 0), since = reply_int(reply, 1);
    if (code == 1 || code == 2) {
        bool q = code == 1;
        o->site->quarantined[o->api] = q;
        jp_metrics_site_quarantined(o->site->name, jp_jira_api_name(o->api), q);
        if (!q)
            o->site->authfails[o->api] = 0;
        const char *api = jp_jira_api_name(o->api);
        if (q)
            jp_warn(COMPONENT,
                    "site %s quarantined: its %s credentials were refused; probing "
                    "every %d s",
                    o->site->name, api, o->cfg_site->rate_limits.quarantine_probe_s);
        else
            jp_info(COMPONENT, "site %s: %s credentials work again; quarantine over", o->site->name,
                    api);
        if (l->on_site_state)
            l->on_site_state(o->cfg_site, o->api, q, q ? "credentials refused" : "probe succeeded",
                             since, l->opaque);
    }
    free(o);
}

static void send_observation(jp_limiter_t *l, site_state_t *s, const jp_limiter_call_t *c,
                             const char *kind, const char *scope, int64_t ms, const char *reason)
{
    observation_t *o = calloc(1, sizeof(*o));
    queue_t *q = queue_get(l, c);
    if (!o || !q) {
        free(o);
        l->st.errors++;
        return;
    }
    o->anchor = l->anchor;
    o->site = s;
    o->api = c->api;
    o->cfg_site = c->site;
    const char *api = jp_jira_api_name(c->api);
    const jp_config_rate_limits_t *rl = &c->site->rate_limits;
    char k_site_cool[512], k_slow[512], k_quar[512], k_auth[512], k_icool[512];
    snprintf(k_site_cool, sizeof(k_site_cool), "%s:cool", s->tag);
    snprintf(k_slow, sizeof(k_slow), "%s:slow", s->tag);
    snprintf(k_quar, sizeof(k_quar), "%s:quarantine:%s", s->tag, api);
    snprintf(k_auth, sizeof(k_auth), "%s:authfail:%s", s->tag, api);
    snprintf(k_icool, sizeof(k_icool), "%s:cool:issue:%s", s->tag,
             c->issue_key ? c->issue_key : "");
    const char *keys[] = {q->bucket_key, k_site_cool, q->cool_key, k_slow, k_quar, k_auth, k_icool};
    char s_ms[24], s_after[16], s_probe[24];
    snprintf(s_ms, sizeof(s_ms), "%lld", (long long)ms);
    snprintf(s_after, sizeof(s_after), "%d", rl->quarantine_after);
    snprintf(s_probe, sizeof(s_probe), "%lld", (long long)rl->quarantine_probe_s * 1000);
    const char *args[] = {kind, scope, s_ms, s_after, s_probe, reason ? reason : ""};
    l->anchor->refs++;
    char err[256];
    if (jp_redis_evalsha(l->redis, l->observe_script, observed, o, 7, keys, 6, args, err,
                         sizeof(err)) != JP_OK) {
        l->anchor->refs--;
        l->st.errors++;
        free(o);
    }
}

/* True when the cool-down this worker last wrote for a scope (*sent) already
 * covers one ending at `until`, give or take COOL_COALESCE_MS; otherwise
 * records `until` as the new one. (Redis keeps the longer of the two anyway.) */
static bool cool_covered(uint64_t *sent, uint64_t until)
{
    if (until <= *sent + COOL_COALESCE_MS)
        return true;
    *sent = until;
    return false;
}

void jp_limiter_observe(jp_limiter_t *l, const jp_limiter_call_t *c, bool probe, long status,
                        const char *retry_after, const char *ratelimit_reason,
                        const char *near_limit)
{
    if (!l || !c || !c->site || status <= 0)
        return;
    site_state_t *s = site_state(l, c->site);
    if (!s)
        return;
    if (status == 401 || status == 403 || status == 429 || status == 503 ||
        (near_limit && strcasecmp(near_limit, "true") == 0))
        drop_site_leases(l, s);
    if (status == 401 || status == 403) {
        char reason[16];
        snprintf(reason, sizeof(reason), "http_%ld", status);
        send_observation(l, s, c, "auth", "", 0, reason);
        return;
    }
    /* Credentials worked: clear a run of failures or end a quarantine. */
    if (probe || s->authfails[c->api] > 0 || s->quarantined[c->api]) {
        s->authfails[c->api] = 0;
        send_observation(l, s, c, "ok", "", 0, NULL);
    }
    if (status == 429 || (status == 503 && retry_after)) {
        int64_t ms = retry_after ? jp_parse_retry_after(retry_after, time(NULL)) : -1;
        if (ms <= 0)
            ms = DEFAULT_COOL_MS;
        jp_limit_scope_t scope =
            status == 503 ? JP_SCOPE_BURST : jp_limit_scope_parse(ratelimit_reason);
        uint64_t until = mono_ms() + (uint64_t)ms;
        if (scope == JP_SCOPE_QUOTA_GLOBAL) { /* one pool for every site of this app */
            for (size_t i = 0; i < l->cfg->site_count; i++) {
                jp_limiter_call_t other = *c;
                other.site = &l->cfg->sites[i];
                site_state_t *os = site_state(l, other.site);
                if (os && !cool_covered(&os->cool_sent_until, until)) {
                    l->st.cooldowns++;
                    send_observation(l, os, &other, "cool", "site", ms, NULL);
                }
            }
        } else {
            const char *sc = scope == JP_SCOPE_QUOTA_SITE                  ? "site"
                             : scope == JP_SCOPE_PER_ISSUE && c->issue_key ? "issue"
                                                                           : "burst";
            queue_t *q = sc[0] == 'b' ? queue_get(l, c) : NULL;
            uint64_t *sent = sc[0] == 's' ? &s->cool_sent_until : q ? &q->cool_sent_until : NULL;
            if (sent && cool_covered(sent, until))
                return;
            l->st.cooldowns++;
            send_observation(l, s, c, "cool", sc, ms, NULL);
        }
        return;
    }
    if (near_limit && strcasecmp(near_limit, "true") == 0) {
        uint64_t now = mono_ms();
        if (now - s->near_sent_ms >= NEAR_LIMIT_MS / 4) { /* one write per quarter second */
            s->near_sent_ms = now;
            l->st.near_limit++;
            send_observation(l, s, c, "near", "", NEAR_LIMIT_MS, NULL);
        }
    }
}

/* ---- life cycle ------------------------------------------------------------------------- */

jp_limiter_t *jp_limiter_new(const jp_limiter_opts_t *o, char *errstr, size_t errstr_size)
{
    if (!o || !o->loop || !o->redis || !o->cfg) {
        jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                   "limiter: loop, redis and cfg are required");
        return NULL;
    }
    jp_limiter_t *l = calloc(1, sizeof(*l));
    anchor_t *anchor = calloc(1, sizeof(*anchor));
    if (!l || !anchor) {
        free(l);
        free(anchor);
        jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
        return NULL;
    }
    l->loop = o->loop;
    l->redis = o->redis;
    l->cfg = o->cfg;
    l->on_site_state = o->on_site_state;
    l->opaque = o->opaque;
    l->max_queue = o->max_queue;
    l->anchor = anchor;
    anchor->l = l;
    anchor->refs = 1;
    if (!(l->kick = malloc(sizeof(*l->kick)))) {
        jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
        jp_limiter_destroy(l);
        return NULL;
    }
    uv_timer_init(l->loop, l->kick);
    l->kick->data = l;
    if (!(l->acquire_script = jp_redis_script_new(o->redis, acquire_lua, errstr, errstr_size)) ||
        !(l->observe_script = jp_redis_script_new(o->redis, observe_lua, errstr, errstr_size))) {
        jp_limiter_destroy(l);
        return NULL;
    }
    return l;
}

void jp_limiter_destroy(jp_limiter_t *l)
{
    if (!l)
        return;
    jp_limiter_wait_t *w;
    while ((w = lane_pop(&l->overflow)))
        answer(w->q, w, JP_LIMITER_ERROR, 0, "limiter closed");
    if (l->kick)
        uv_close((uv_handle_t *)l->kick, free_timer);
    for (size_t i = 0; i < QUEUE_BUCKETS; i++) {
        queue_t *q;
        while ((q = l->queues[i])) {
            l->queues[i] = q->next;
            if (q->ask) { /* its answer will find the anchor empty and free it */
                for (size_t k = 0; k < q->ask->n; k++)
                    answer(q, q->ask->ws[k], JP_LIMITER_ERROR, 0, "limiter closed");
                q->ask = NULL;
            }
            fail_all(q, "limiter closed");
            queue_free(q);
        }
    }
    site_state_t *s;
    while ((s = l->sites)) {
        l->sites = s->next;
        free(s->name);
        free(s->tag);
        free(s);
    }
    /* The scripts belong to the Redis client. Requests still out find the
     * anchor empty; their waiters were answered above or by fail_all. */
    l->anchor->l = NULL;
    anchor_unref(l->anchor);
    free(l);
}

void jp_limiter_stats(const jp_limiter_t *l, jp_limiter_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!l)
        return;
    *out = l->st;
    out->quarantined = 0;
    for (const site_state_t *s = l->sites; s; s = s->next)
        for (int i = 0; i < API_COUNT; i++)
            out->quarantined += s->quarantined[i];
}

bool jp_limiter_site_quarantined(const jp_limiter_t *l, const jp_site_t *site)
{
    if (!l || !site)
        return false;
    for (const site_state_t *s = l->sites; s; s = s->next)
        if (strcmp(s->name, site->name) == 0)
            return s->quarantined[0] || s->quarantined[1] || s->quarantined[2];
    return false;
}
