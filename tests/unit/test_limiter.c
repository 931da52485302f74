/* jp_limiter against a real redis-server started by the test (free loopback
 * port, stopped by PID). Two limiters on two connections stand for two
 * worker processes. Waits run the loop until a condition holds. */
#include "jiraprov/limiter.h"
#include "jiraprov/log.h"

#include "../lib/testloop.c"
#include "../lib/testredis.c"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/check_main.h"

#define MAXW 256

static testredis_t srv;

typedef struct grant {
    jp_limiter_verdict_t v;
    int64_t wait_ms;
    uint64_t at_ms; /* loop time of the answer */
    int answered;
    struct env *e;
} grant_t;

typedef struct env {
    uv_loop_t loop;
    int up[2];
    jp_redis_t *redis[2];
    jp_limiter_t *lim[2];
    jp_config_t *cfg[2];
    grant_t g[MAXW];
    int answered;
    int states; /* on_site_state calls */
    int last_quarantined;
} env_t;

static env_t E;

static void on_state(void *opaque, int connected)
{
    *(int *)opaque = connected;
}

static int both_up(void *arg)
{
    env_t *e = arg;
    return e->up[0] && e->up[1];
}

static void on_site_state(const jp_site_t *site, jp_jira_api_t api, bool quarantined,
                          const char *reason, int64_t since_ms, void *opaque)
{
    env_t *e = opaque;
    e->states++;
    e->last_quarantined = quarantined;
    ck_assert_str_eq(site->name, "demo");
    ck_assert_int_eq(api, JP_JIRA_API_SCIM);
    ck_assert_int_gt(since_ms, 0);
}

/* rate_limits block shared by both workers; `shared` and instance differ. */
static jp_config_t *make_cfg(const char *instance, const char *limits)
{
    char yaml[4096], err[256];
    snprintf(yaml, sizeof(yaml),
             "kafka:\n  bootstrap.servers: 127.0.0.1:9\n"
             "redis:\n  url: redis://127.0.0.1:%d/0\n  key_prefix: \"lt:\"\n"
             "worker:\n  instance_id: %s\n"
             "rate_limits:\n%s"
             "sites:\n  - name: demo\n    jira_url: http://127.0.0.1:9\n"
             "    email: a@x.example\n    api_token: t0ken-value\n"
             "    scim_url: http://127.0.0.1:9/scim\n    scim_api_key: k3y-value\n",
             srv.port, instance, limits);
    jp_config_t *cfg = NULL;
    ck_assert_msg(jp_config_load_string(yaml, "test", &cfg, err, sizeof(err)) == JP_OK, "%s", err);
    return cfg;
}

static size_t max_queue; /* jp_limiter_opts_t.max_queue of the next env_open */

static void env_open(const char *limits)
{
    memset(&E, 0, sizeof(E));
    jp_log_set_level(JP_LOG_ERROR);
    ck_assert_int_eq(testredis_start(&srv, 0), 0);
    uv_loop_init(&E.loop);
    for (int i = 0; i < 2; i++) {
        char inst[16];
        snprintf(inst, sizeof(inst), "w%d", i);
        E.cfg[i] = make_cfg(inst, limits);
        jp_redis_opts_t o = {0};
        o.host = "127.0.0.1";
        o.port = srv.port;
        o.command_timeout_ms = 1000;
        o.backoff_min_ms = 20;
        o.backoff_max_ms = 100;
        o.on_state = on_state;
        o.opaque = &E.up[i];
        char err[256];
        E.redis[i] = jp_redis_new(&E.loop, &o, err, sizeof(err));
        ck_assert_msg(E.redis[i] != NULL, "%s", err);
        jp_limiter_opts_t lo = {&E.loop, E.redis[i], E.cfg[i], on_site_state, &E, max_queue};
        E.lim[i] = jp_limiter_new(&lo, err, sizeof(err));
        ck_assert_msg(E.lim[i] != NULL, "%s", err);
    }
    ck_assert(testloop_run_until(&E.loop, both_up, &E, 5000));
}

static void env_close(void)
{
    for (int i = 0; i < 2; i++) {
        jp_limiter_destroy(E.lim[i]);
        jp_redis_destroy(E.redis[i]);
    }
    testloop_run_for(&E.loop, 20);
    uv_loop_close(&E.loop);
    for (int i = 0; i < 2; i++)
        jp_config_destroy(E.cfg[i]);
    testredis_kill(&srv);
}

static void on_token(jp_limiter_verdict_t v, int64_t wait_ms, const char *why, void *opaque)
{
    grant_t *g = opaque;
    ck_assert_msg(!g->answered, "a waiter was answered twice");
    g->v = v;
    g->wait_ms = wait_ms;
    g->at_ms = uv_now(&g->e->loop);
    g->answered = 1;
    g->e->answered++;
}

static jp_limiter_call_t call(int w, jp_http_method_t m, const char *cls, jp_lane_t lane)
{
    jp_limiter_call_t c = {
        &E.cfg[w]->sites[0], JP_JIRA_API_SCIM, m, cls, NULL, m != JP_HTTP_GET, lane};
    return c;
}

/* Starts waiter `i` on worker `w`. */
static jp_limiter_wait_t *ask(int i, int w, const jp_limiter_call_t *c)
{
    E.g[i].e = &E;
    jp_limiter_wait_t *h = jp_limiter_acquire(E.lim[w], c, on_token, &E.g[i]);
    ck_assert_ptr_nonnull(h);
    return h;
}

static int answered_at_least(void *arg)
{
    return E.answered >= *(int *)arg;
}

static void await_answers(int n, uint64_t ms)
{
    ck_assert_msg(testloop_run_until(&E.loop, answered_at_least, &n, ms),
                  "only %d of %d waiters answered", E.answered, n);
}

static int count(int from, int to, jp_limiter_verdict_t v)
{
    int n = 0;
    for (int i = from; i < to; i++)
        n += E.g[i].answered && E.g[i].v == v;
    return n;
}

#define LIMITS_20 "  post_per_s: 20\n  deprovision_reserve: 0.2\n"

/* ---- the proactive budget ------------------------------------------------------ */

/* Capacity 20, normal floor (0.2 + 0.05) x 20 = 5: 15 go at once; the rest
 * follow at the refill rate, never faster, and the answers never come
 * before the loop runs. */
START_TEST(burst_then_rate)
{
    env_open(LIMITS_20);
    jp_limiter_call_t c = call(0, JP_HTTP_POST, "scim.users", JP_LANE_NORMAL);
    uint64_t t0 = uv_now(&E.loop);
    for (int i = 0; i < 35; i++)
        ask(i, 0, &c);
    ck_assert_int_eq(E.answered, 0);
    await_answers(35, 5000);
    ck_assert_int_eq(count(0, 35, JP_LIMITER_GO), 35);
    for (int i = 0; i < 35; i++) {
        uint64_t at = E.g[i].at_ms - t0;
        /* grant i needs i - 15 + 1 refilled tokens at 20/s (50 ms each). */
        if (i >= 15)
            ck_assert_msg(at + 15 >= (uint64_t)(i - 14) * 50,
                          "grant %d after %llu ms: faster than 20/s", i, (unsigned long long)at);
    }
    /* Served in order (one FIFO per lane). */
    for (int i = 1; i < 35; i++)
        ck_assert_uint_le(E.g[i - 1].at_ms, E.g[i].at_ms);
    env_close();
}
END_TEST

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Two workers draw from one bucket: at any moment, all the grants so far
 * fit one burst of 15 plus what 20/s refilled. */
START_TEST(shared_between_workers)
{
    env_open(LIMITS_20);
    jp_limiter_call_t c0 = call(0, JP_HTTP_POST, "scim.users", JP_LANE_NORMAL);
    jp_limiter_call_t c1 = call(1, JP_HTTP_POST, "scim.users", JP_LANE_NORMAL);
    uint64_t t0 = uv_now(&E.loop);
    for (int i = 0; i < 20; i++)
        ask(i, 0, &c0);
    for (int i = 20; i < 40; i++)
        ask(i, 1, &c1);
    await_answers(40, 5000);
    ck_assert_int_eq(count(0, 40, JP_LIMITER_GO), 40);
    ck_assert_int_gt(count(0, 20, JP_LIMITER_GO), 0);
    uint64_t at[40];
    for (int i = 0; i < 40; i++)
        at[i] = E.g[i].at_ms - t0;
    qsort(at, 40, sizeof(at[0]), cmp_u64);
    for (int k = 0; k < 40; k++)
        ck_assert_msg((uint64_t)k + 1 <= 15 + (at[k] + 10) * 20 / 1000 + 1,
                      "%d grants by %llu ms: more than one shared budget allows", k + 1,
                      (unsigned long long)at[k]);
    env_close();
}
END_TEST

/* Sharing off: each worker has its own bucket (the benchmark's comparison). */
START_TEST(unshared_each_its_own)
{
    env_open("  shared: false\n" LIMITS_20);
    jp_limiter_call_t c0 = call(0, JP_HTTP_POST, "scim.users", JP_LANE_NORMAL);
    jp_limiter_call_t c1 = call(1, JP_HTTP_POST, "scim.users", JP_LANE_NORMAL);
    for (int i = 0; i < 15; i++)
        ask(i, 0, &c0);
    for (int i = 15; i < 30; i++)
        ask(i, 1, &c1);
    uint64_t t0 = uv_now(&E.loop);
    await_answers(30, 5000);
    ck_assert_int_eq(count(0, 30, JP_LIMITER_GO), 30);
    /* 30 at once is only possible with two buckets of 15. */
    ck_assert_msg(uv_now(&E.loop) - t0 < 500, "took %llu ms",
                  (unsigned long long)(uv_now(&E.loop) - t0));
    env_close();
}
END_TEST

/* Once the normal lane has spent down to its floor, deprovisioning still
 * goes: the reserve is theirs. */
START_TEST(deprovision_uses_reserve)
{
    env_open("  delete_per_s: 20\n  deprovision_reserve: 0.5\n");
    jp_limiter_call_t n = call(0, JP_HTTP_DELETE, "scim.users", JP_LANE_NORMAL);
    jp_limiter_call_t d = call(0, JP_HTTP_DELETE, "scim.users", JP_LANE_DEPROVISION);
    for (int i = 0; i < 9; i++) /* capacity 20, floor 11: 9 at once */
        ask(i, 0, &n);
    await_answers(9, 2000);
    for (int i = 9; i < 30; i++) /* normal calls now wait for refills */
        ask(i, 0, &n);
    for (int i = 30; i < 40; i++) /* these may take the reserve */
        ask(i, 0, &d);
    int want = 9 + 10;
    await_answers(want, 2000);
    ck_assert_int_eq(count(30, 40, JP_LIMITER_GO), 10);
    /* Deprovisioning went ahead of every normal call queued before it. */
    for (int i = 9; i < 30; i++)
        if (E.g[i].answered)
            for (int k = 30; k < 40; k++)
                ck_assert_uint_le(E.g[k].at_ms, E.g[i].at_ms);
    env_close();
}
END_TEST

/* A queue holds at most max_queue calls (8 here): later ones are deferred at
 * once, so one slow site cannot hold every running event; deprovisioning
 * is never turned away. */
START_TEST(full_queue_defers)
{
    max_queue = 8;
    env_open(LIMITS_20);
    max_queue = 0;
    jp_limiter_call_t n = call(0, JP_HTTP_POST, "scim.users", JP_LANE_NORMAL);
    jp_limiter_call_t d = call(0, JP_HTTP_POST, "scim.users", JP_LANE_DEPROVISION);
    for (int i = 0; i < 12; i++)
        ask(i, 0, &n);
    ask(12, 0, &d);
    await_answers(13, 5000);
    ck_assert_int_eq(count(0, 8, JP_LIMITER_GO), 8);
    ck_assert_int_eq(count(8, 12, JP_LIMITER_DEFER), 4);
    for (int i = 8; i < 12; i++)
        ck_assert_int_ge(E.g[i].wait_ms, JP_LIMITER_QUEUE_MAX_MS);
    ck_assert_int_eq(E.g[12].v, JP_LIMITER_GO);
    env_close();
}
END_TEST

/* A burst for a bucket with tokens to spare (200 calls, 100,000/s: the last turn
 * within 2 ms) is not capped by max_queue: every call goes, none is parked. */
START_TEST(fast_queue_not_capped)
{
    max_queue = 8;
    env_open("  post_per_s: 100000\n");
    max_queue = 0;
    jp_limiter_call_t n = call(0, JP_HTTP_POST, "scim.users", JP_LANE_NORMAL);
    for (int i = 0; i < 200; i++)
        ask(i, 0, &n);
    await_answers(200, 5000);
    ck_assert_int_eq(count(0, 200, JP_LIMITER_GO), 200);
    env_close();
}
END_TEST

/* ---- the reactive view ---------------------------------------------------------- */

/* A 429 seen by one worker stops the other at once: a long Retry-After
 * defers (the event parks), a short one holds the call in the queue. */
START_TEST(cooldown_shared)
{
    env_open(LIMITS_20);
    jp_limiter_call_t c0 = call(0, JP_HTTP_POST, "scim.users", JP_LANE_NORMAL);
    jp_limiter_call_t c1 = call(1, JP_HTTP_POST, "scim.users", JP_LANE_NORMAL);
    jp_limiter_observe(E.lim[0], &c0, false, 429, "10", NULL, NULL);
    testloop_run_for(&E.loop, 30);
    ask(0, 1, &c1);
    await_answers(1, 2000);
    ck_assert_int_eq(E.g[0].v, JP_LIMITER_DEFER);
    ck_assert_int_ge(E.g[0].wait_ms, 9000);
    ck_assert_int_le(E.g[0].wait_ms, 12000);
    /* Another endpoint class of the same site is not affected (burst scope). */
    jp_limiter_call_t other = call(1, JP_HTTP_POST, "scim.groups", JP_LANE_NORMAL);
    ask(1, 1, &other);
    await_answers(2, 2000);
    ck_assert_int_eq(E.g[1].v, JP_LIMITER_GO);
    env_close();
}
END_TEST

START_TEST(cooldown_short_waits_in_queue)
{
    env_open(LIMITS_20);
    jp_limiter_call_t c0 = call(0, JP_HTTP_POST, "scim.users", JP_LANE_NORMAL);
    jp_limiter_call_t c1 = call(1, JP_HTTP_POST, "scim.users", JP_LANE_NORMAL);
    jp_limiter_observe(E.lim[0], &c0, false, 429, "1", NULL, NULL);
    testloop_run_for(&E.loop, 30);
    uint64_t t0 = uv_now(&E.loop);
    ask(0, 1, &c1);
    await_answers(1, 4000);
    ck_assert_int_eq(E.g[0].v, JP_LIMITER_GO);
    /* The cool-down (1 s, less the 30 ms above) and then a refill from an
     * empty bucket up to the floor: no stampede when it ends. */
    ck_assert_uint_ge(E.g[0].at_ms - t0, 900);
    env_close();
}
END_TEST

/* A storm of 429s in one second is one cool-down write; a longer one is written. */
START_TEST(cooldown_storm_one_write)
{
    env_open(LIMITS_20);
    jp_limiter_call_t c0 = call(0, JP_HTTP_POST, "scim.users", JP_LANE_NORMAL);
    for (int i = 0; i < 200; i++)
        jp_limiter_observe(E.lim[0], &c0, false, 429, "2", NULL, NULL);
    testloop_run_for(&E.loop, 30);
    jp_limiter_stats_t st;
    jp_limiter_stats(E.lim[0], &st);
    ck_assert_uint_eq(st.cooldowns, 1);
    /* A 503 with Retry-After of the same class is the same burst scope. */
    jp_limiter_observe(E.lim[0], &c0, false, 503, "1", NULL, NULL);
    jp_limiter_stats(E.lim[0], &st);
    ck_assert_uint_eq(st.cooldowns, 1);
    jp_limiter_call_t c1 = call(1, JP_HTTP_POST, "scim.users", JP_LANE_NORMAL);
    ask(0, 1, &c1);
    await_answers(1, 4000);
    ck_assert_int_eq(E.g[0].v, JP_LIMITER_GO); /* after the 2 s cool-down (queued) */
    /* Ending later than the one written (by more than the slack): written. */
    jp_limiter_observe(E.lim[0], &c0, false, 429, "10", NULL, NULL);
    testloop_run_for(&E.loop, 30);
    jp_limiter_stats(E.lim[0], &st);
    ck_assert_uint_eq(st.cooldowns, 2);
    ask(1, 1, &c1);
    await_answers(2, 2000);
    ck_assert_int_eq(E.g[1].v, JP_LIMITER_DEFER);
    ck_assert_int_ge(E.g[1].wait_ms, 9000);
    /* Another class of the same site has a cool-down of its own. */
    jp_limiter_call_t g0 = call(0, JP_HTTP_POST, "scim.groups", JP_LANE_NORMAL);
    jp_limiter_observe(E.lim[0], &g0, false, 429, "2", NULL, NULL);
    jp_limiter_stats(E.lim[0], &st);
    ck_assert_uint_eq(st.cooldowns, 3);
    env_close();
}
END_TEST

/* RateLimit-Reason picks the scope: per-issue cools one issue; quota the
 * whole site. */
START_TEST(cooldown_scopes)
{
    env_open(LIMITS_20);
    jp_limiter_call_t w1 = {&E.cfg[0]->sites[0], JP_JIRA_API_REST, JP_HTTP_PUT,
                            "rest.issue",        "DEMO-1",         true,
                            JP_LANE_NORMAL};
    jp_limiter_call_t w2 = w1;
    w2.issue_key = "DEMO-2";
    jp_limiter_observe(E.lim[0], &w1, false, 429, "20", "jira-per-issue-on-write", NULL);
    testloop_run_for(&E.loop, 30);
    ask(0, 1, &w1);
    ask(1, 1, &w2);
    await_answers(2, 2000);
    ck_assert_int_eq(E.g[0].v, JP_LIMITER_DEFER);
    ck_assert_int_eq(E.g[1].v, JP_LIMITER_GO);

    jp_limiter_observe(E.lim[0], &w2, false, 429, "30", "jira-quota-tenant-based", NULL);
    testloop_run_for(&E.loop, 30);
    jp_limiter_call_t get = call(1, JP_HTTP_GET, "scim.groups", JP_LANE_DEPROVISION);
    ask(2, 1, &get);
    await_answers(3, 2000);
    ck_assert_int_eq(E.g[2].v, JP_LIMITER_DEFER);
    ck_assert_int_ge(E.g[2].wait_ms, 29000);
    env_close();
}
END_TEST

/* 20 writes per 2 s to one issue: the 4th of a 3-per-2-s window waits. */
START_TEST(per_issue_window)
{
    env_open("  issue_writes_per_2s: 3\n");
    jp_limiter_call_t w = {&E.cfg[0]->sites[0], JP_JIRA_API_REST, JP_HTTP_PUT,
                           "rest.issue",        "DEMO-7",         true,
                           JP_LANE_NORMAL};
    for (int i = 0; i < 4; i++)
        ask(i, i % 2, &w);
    await_answers(4, 2000);
    ck_assert_int_eq(count(0, 4, JP_LIMITER_GO), 3);
    ck_assert_int_eq(count(0, 4, JP_LIMITER_DEFER), 1);
    for (int i = 0; i < 4; i++)
        if (E.g[i].v == JP_LIMITER_DEFER)
            ck_assert(E.g[i].wait_ms > 0 && E.g[i].wait_ms <= 2000);
    env_close();
}
END_TEST

/* An hourly points budget: a GET of an identity object costs 3. */
START_TEST(hourly_points)
{
    env_open("  hourly_points: 7\n");
    jp_limiter_call_t g = call(0, JP_HTTP_GET, "scim.users", JP_LANE_NORMAL);
    ask(0, 0, &g);
    ask(1, 1, &g);
    await_answers(2, 2000);
    ask(2, 0, &g);
    await_answers(3, 2000);
    ck_assert_int_eq(count(0, 2, JP_LIMITER_GO), 2);
    ck_assert_int_eq(E.g[2].v, JP_LIMITER_DEFER);
    ck_assert(E.g[2].wait_ms > 0 && E.g[2].wait_ms <= 3600000 + 400000);
    env_close();
}
END_TEST

/* X-RateLimit-NearLimit slows the site: while the mark lives the bucket
 * refills at near_limit_slowdown of its rate. */
START_TEST(near_limit_slows)
{
    env_open("  post_per_s: 20\n  deprovision_reserve: 0\n  near_limit_slowdown: 0.1\n");
    jp_limiter_call_t c = call(0, JP_HTTP_POST, "scim.users", JP_LANE_DEPROVISION);
    for (int i = 0; i < 20; i++) /* empty the bucket */
        ask(i, 0, &c);
    await_answers(20, 2000);
    jp_limiter_observe(E.lim[0], &c, false, 200, NULL, NULL, "true");
    testloop_run_for(&E.loop, 20);
    uint64_t t0 = uv_now(&E.loop);
    for (int i = 20; i < 23; i++)
        ask(i, 1, &c);
    await_answers(23, 4000);
    /* 3 tokens at 2/s (slowed) take about 1.5 s; at 20/s they would take 150 ms.
     * The mark lasts 1 s, so the last one may come a little sooner. */
    ck_assert_uint_ge(E.g[22].at_ms - t0, 500);
    jp_limiter_stats_t st;
    jp_limiter_stats(E.lim[0], &st);
    ck_assert_uint_eq(st.near_limit, 1);
    env_close();
}
END_TEST

/* ---- quarantine --------------------------------------------------------------------- */

START_TEST(quarantine_and_recovery)
{
    env_open("  quarantine_after: 3\n  quarantine_probe_s: 1\n");
    jp_limiter_call_t c0 = call(0, JP_HTTP_GET, "scim.users", JP_LANE_NORMAL);
    jp_limiter_call_t c1 = call(1, JP_HTTP_GET, "scim.users", JP_LANE_NORMAL);
    /* Two refusals and a success: the run is broken, nothing happens. (Each
     * report is let through before the next: two connections do not order.) */
    jp_limiter_observe(E.lim[0], &c0, false, 401, NULL, NULL, NULL);
    testloop_run_for(&E.loop, 30);
    jp_limiter_observe(E.lim[1], &c1, false, 403, NULL, NULL, NULL);
    testloop_run_for(&E.loop, 30);
    ask(0, 0, &c0); /* learns of the failures */
    await_answers(1, 2000);
    jp_limiter_observe(E.lim[0], &c0, false, 200, NULL, NULL, NULL);
    testloop_run_for(&E.loop, 30);
    jp_limiter_observe(E.lim[0], &c0, false, 401, NULL, NULL, NULL);
    testloop_run_for(&E.loop, 30);
    jp_limiter_observe(E.lim[1], &c1, false, 401, NULL, NULL, NULL);
    testloop_run_for(&E.loop, 50);
    ck_assert_int_eq(E.states, 0);
    /* The third in a row quarantines the site's SCIM API, once. */
    jp_limiter_observe(E.lim[0], &c0, false, 401, NULL, NULL, NULL);
    testloop_run_for(&E.loop, 50);
    ck_assert_int_eq(E.states, 1);
    ck_assert_int_eq(E.last_quarantined, 1);
    /* Both workers defer the site's SCIM calls; its REST calls still go. */
    ask(1, 1, &c1);
    jp_limiter_call_t rest = c1;
    rest.api = JP_JIRA_API_REST;
    rest.endpoint_class = "rest.user";
    ask(2, 1, &rest);
    await_answers(3, 2000);
    ck_assert_int_eq(E.g[1].v, JP_LIMITER_DEFER);
    ck_assert_int_eq(E.g[2].v, JP_LIMITER_GO);
    ck_assert(jp_limiter_site_quarantined(E.lim[1], &E.cfg[1]->sites[0]));
    /* After the probe interval exactly one call goes, as the probe. */
    testloop_run_for(&E.loop, 1100);
    for (int i = 3; i < 6; i++)
        ask(i, i % 2, i % 2 ? &c1 : &c0);
    await_answers(6, 3000);
    ck_assert_int_eq(count(3, 6, JP_LIMITER_PROBE), 1);
    ck_assert_int_eq(count(3, 6, JP_LIMITER_DEFER), 2);
    /* The probe works: the quarantine ends for everyone. */
    int probe_worker = E.g[3].v == JP_LIMITER_PROBE ? 1 : E.g[4].v == JP_LIMITER_PROBE ? 0 : 1;
    jp_limiter_observe(E.lim[probe_worker], probe_worker ? &c1 : &c0, true, 200, NULL, NULL, NULL);
    testloop_run_for(&E.loop, 50);
    ck_assert_int_eq(E.states, 2);
    ck_assert_int_eq(E.last_quarantined, 0);
    ask(6, 0, &c0);
    ask(7, 1, &c1);
    await_answers(8, 2000);
    ck_assert_int_eq(count(6, 8, JP_LIMITER_GO), 2);
    ck_assert(!jp_limiter_site_quarantined(E.lim[1], &E.cfg[1]->sites[0]));
    env_close();
}
END_TEST

/* A probe refused again keeps the quarantine and pushes the next probe out. */
START_TEST(quarantine_probe_refused)
{
    env_open("  quarantine_after: 1\n  quarantine_probe_s: 1\n");
    jp_limiter_call_t c = call(0, JP_HTTP_GET, "scim.users", JP_LANE_NORMAL);
    jp_limiter_observe(E.lim[0], &c, false, 401, NULL, NULL, NULL);
    testloop_run_for(&E.loop, 1100);
    ask(0, 0, &c);
    await_answers(1, 2000);
    ck_assert_int_eq(E.g[0].v, JP_LIMITER_PROBE);
    jp_limiter_observe(E.lim[0], &c, true, 401, NULL, NULL, NULL);
    testloop_run_for(&E.loop, 50);
    ask(1, 0, &c);
    await_answers(2, 2000);
    ck_assert_int_eq(E.g[1].v, JP_LIMITER_DEFER);
    ck_assert_int_ge(E.g[1].wait_ms, 800);
    ck_assert_int_eq(E.states, 1); /* began once, never ended */
    env_close();
}
END_TEST

/* ---- leases ------------------------------------------------------------------------- */

static jp_limiter_stats_t stats_of(int w)
{
    jp_limiter_stats_t st;
    jp_limiter_stats(E.lim[w], &st);
    return st;
}

/* Calls i.. one after the other (each answered before the next is asked),
 * as a steady stream arrives; returns the next index. */
static int one_by_one(int i, int n, int w, const jp_limiter_call_t *c)
{
    for (int k = 0; k < n; k++, i++) {
        ask(i, w, c);
        await_answers(i + 1, 2000);
        ck_assert_int_eq(E.g[i].v, JP_LIMITER_GO);
    }
    return i;
}

/* Calls one by one until one needed a round trip: a lease was just taken
 * (the queue has been busy, so it asked for more than that call). */
static int until_round_trip(int i, int w, const jp_limiter_call_t *c)
{
    uint64_t before = stats_of(w).redis_calls;
    while (stats_of(w).redis_calls == before && i < MAXW - 8)
        i = one_by_one(i, 1, w, c);
    ck_assert_int_lt(i, MAXW - 8);
    return i;
}

/* A fast GET bucket (far from empty) and a queue that has been busy and
 * just took a lease; returns the next waiter index. */
static int open_with_lease(jp_limiter_call_t *c)
{
    env_open("  get_per_s: 100000\n");
    *c = call(0, JP_HTTP_GET, "scim.users", JP_LANE_NORMAL);
    return until_round_trip(one_by_one(0, 20, 0, c), 0, c);
}

/* With a bucket far from empty, a busy queue takes tokens ahead: most calls
 * of a steady stream are granted without a round trip, every one counted. */
START_TEST(lease_serves_without_round_trip)
{
    env_open("  get_per_s: 100000\n");
    jp_limiter_call_t c = call(0, JP_HTTP_GET, "scim.users", JP_LANE_NORMAL);
    one_by_one(0, 100, 0, &c);
    jp_limiter_stats_t st = stats_of(0);
    ck_assert_uint_eq(st.granted[JP_LANE_NORMAL], 100);
    ck_assert_uint_ge(st.leased, 80);
    ck_assert_uint_eq(st.leased + st.redis_calls, 100);
    env_close();
}
END_TEST

/* A 429 drops the lease: the next call asks Redis and finds the cool-down
 * (a lease would have sent it into the storm). */
START_TEST(lease_dropped_on_429)
{
    jp_limiter_call_t c;
    int i = open_with_lease(&c);
    uint64_t leased = stats_of(0).leased;
    i = one_by_one(i, 1, 0, &c); /* the control: the lease serves it */
    ck_assert_uint_eq(stats_of(0).leased, leased + 1);
    i = until_round_trip(i, 0, &c);
    leased = stats_of(0).leased;
    /* Observed before the next token request goes out on the same connection. */
    jp_limiter_observe(E.lim[0], &c, false, 429, "10", NULL, NULL);
    ask(i, 0, &c);
    await_answers(i + 1, 2000);
    ck_assert_int_eq(E.g[i].v, JP_LIMITER_DEFER);
    ck_assert_int_ge(E.g[i].wait_ms, 9000);
    ck_assert_uint_eq(stats_of(0).leased, leased);
    env_close();
}
END_TEST

/* Tokens taken ahead are usable for JP_LIMITER_LEASE_MS only: after that the
 * next call asks again and the unused tokens are counted as lapsed. */
START_TEST(lease_lapses)
{
    jp_limiter_call_t c;
    int i = open_with_lease(&c);
    jp_limiter_stats_t st = stats_of(0);
    ck_assert_uint_eq(st.lease_lapsed, 0);
    testloop_run_for(&E.loop, JP_LIMITER_LEASE_MS + 30); /* the lease's lifetime is the point */
    one_by_one(i, 1, 0, &c);
    jp_limiter_stats_t after = stats_of(0);
    ck_assert_uint_eq(after.redis_calls, st.redis_calls + 1);
    ck_assert_uint_eq(after.leased, st.leased);
    ck_assert_uint_gt(after.lease_lapsed, 0);
    env_close();
}
END_TEST

/* Deprovisioning may spend the reserve, which no lease may hold: each of its
 * calls asks Redis for exactly itself. */
START_TEST(no_lease_for_deprovisioning)
{
    env_open("  delete_per_s: 100000\n");
    jp_limiter_call_t d = call(0, JP_HTTP_DELETE, "scim.users", JP_LANE_DEPROVISION);
    one_by_one(0, 30, 0, &d);
    jp_limiter_stats_t st = stats_of(0);
    ck_assert_uint_eq(st.leased, 0);
    ck_assert_uint_eq(st.redis_calls, 30);
    env_close();
}
END_TEST

/* ---- Redis trouble, cancellation ------------------------------------------------ */

START_TEST(redis_down_answers_error)
{
    env_open(LIMITS_20);
    testredis_kill(&srv);
    int down = 0;
    for (int k = 0; k < 2000 && !down; k++) {
        testloop_run_for(&E.loop, 1);
        down = !E.up[0];
    }
    jp_limiter_call_t c = call(0, JP_HTTP_POST, "scim.users", JP_LANE_NORMAL);
    ask(0, 0, &c);
    await_answers(1, 3000);
    ck_assert_int_eq(E.g[0].v, JP_LIMITER_ERROR);
    for (int i = 0; i < 2; i++) {
        jp_limiter_destroy(E.lim[i]);
        jp_redis_destroy(E.redis[i]);
    }
    testloop_run_for(&E.loop, 20);
    uv_loop_close(&E.loop);
    for (int i = 0; i < 2; i++)
        jp_config_destroy(E.cfg[i]);
}
END_TEST

START_TEST(cancel_and_destroy)
{
    env_open(LIMITS_20);
    jp_limiter_call_t c = call(0, JP_HTTP_POST, "scim.users", JP_LANE_NORMAL);
    jp_limiter_wait_t *w = ask(0, 0, &c);
    jp_limiter_cancel(E.lim[0], w);
    ask(1, 0, &c);
    await_answers(1, 2000);
    ck_assert(!E.g[0].answered);
    ck_assert_int_eq(E.g[1].v, JP_LIMITER_GO);
    /* Destroy answers what still waits, before it returns. */
    for (int i = 2; i < 40; i++)
        ask(i, 1, &c);
    testloop_run_for(&E.loop, 5);
    jp_limiter_destroy(E.lim[1]);
    E.lim[1] = NULL;
    ck_assert_int_eq(E.answered, 39);
    ck_assert_int_gt(count(2, 40, JP_LIMITER_ERROR), 0);
    env_close();
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("limiter");
    TCase *tc = tcase_create("limiter");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, burst_then_rate);
    tcase_add_test(tc, shared_between_workers);
    tcase_add_test(tc, unshared_each_its_own);
    tcase_add_test(tc, deprovision_uses_reserve);
    tcase_add_test(tc, full_queue_defers);
    tcase_add_test(tc, fast_queue_not_capped);
    tcase_add_test(tc, cooldown_shared);
    tcase_add_test(tc, cooldown_short_waits_in_queue);
    tcase_add_test(tc, cooldown_storm_one_write);
    tcase_add_test(tc, cooldown_scopes);
    tcase_add_test(tc, per_issue_window);
    tcase_add_test(tc, hourly_points);
    tcase_add_test(tc, near_limit_slows);
    tcase_add_test(tc, quarantine_and_recovery);
    tcase_add_test(tc, quarantine_probe_refused);
    tcase_add_test(tc, lease_serves_without_round_trip);
    tcase_add_test(tc, lease_dropped_on_429);
    tcase_add_test(tc, lease_lapses);
    tcase_add_test(tc, no_lease_for_deprovisioning);
    tcase_add_test(tc, redis_down_answers_error);
    tcase_add_test(tc, cancel_and_destroy);
    suite_add_tcase(s, tc);
    return s;
}

JP_CHECK_MAIN(suite)
