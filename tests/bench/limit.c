/* jiraprov-bench-limit: the benchmark's limit. It does the I/O that one
 * account.update event costs the worker, asynchronously on one libuv loop, and
 * nothing else: no decoding, no mapping, no sequencing, no retries.
 *
 * Per event, in the worker's order and with the worker's I/O clients (jpcore's
 * kafka_in, kafka_out, redis and http, configured from the same YAML file):
 *   1. consume the message (kafka_in, offsets stored by hand as the worker does);
 *   2. Redis GET  <prefix>outcome:<id>              (the exactly-once lookup)
 *   3. Redis HMGET <prefix>attempts:<id> ...        (the attempt schedule),
 *      sent with 2 in one write, both answers awaited;
 *   4. a token for the SCIM GET: one EVALSHA per batch of at most
 *      JP_LIMITER_BATCH_MAX waiting calls plus the lease (as many as were
 *      used in the last JP_LIMITER_LEASE_MS, at most JP_LIMITER_BATCH_MAX),
 *      which serves the next calls without a round trip; one request in
 *      flight per bucket
 *      (the limiter's batching, with a one-line script instead of its logic);
 *   5. HTTP GET <scim_url>/Users?filter=userName eq "<login>" (the lookup);
 *   6. Redis SET <prefix>cache:<site>:user:<login> EX, not awaited (the cache
 *      entry the worker writes after a lookup);
 *   7. a token for the PATCH (as 4);
 *   8. HTTP PATCH <scim_url>/Users/<id> with a fixed one-attribute body;
 *   9. Redis SET <prefix>outcome:<id> EX ttl, awaited;
 *  10. produce a result record and an audit record (the PATCH is a mutation),
 *      both awaited, then store the offset.
 * The only parsing: the event id is the first "id" string of the value (the
 * key of steps 2, 3 and 9), the login is the Kafka key, and the SCIM id is the
 * first "id" string after "Resources" in the lookup's answer. Records are fixed
 * templates of the worker's record sizes with the ids filled in.
 *
 * Flow control as in the worker: at most worker.max_in_flight HTTP connections
 * (curl queues the rest), consumption paused at worker.max_buffered_events held
 * and resumed at half.
 *
 * Usage: jiraprov-bench-limit --config FILE [--count N]
 * Exits after N events (or on SIGTERM/SIGINT) and prints one JSON line:
 * {"events","errors","seconds","events_per_second","overhead_buckets"} where
 * seconds runs from the first message consumed to the last event done, and
 * overhead_buckets counts events by the time it added (consumed to result
 * produced, minus its HTTP calls), in the buckets of the worker's
 * jiraprov_event_overhead_seconds (jp_pipeline_overhead_bounds_us, then +Inf);
 * SIGUSR1 zeroes those counts (the harness sends it after a warm-up).
 *
 * Ownership: main() owns the app; each event owns its message. */
#include "jiraprov/config.h"
#include "jiraprov/http.h"
#include "jiraprov/kafka_in.h"
#include "jiraprov/kafka_out.h"
#include "jiraprov/limiter.h"
#include "jiraprov/log.h"
#include "jiraprov/pipeline.h"
#include "jiraprov/redis.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define PROG           "jiraprov-bench-limit"
#define ID_MAX         260
#define LOGIN_MAX      520
#define SCIM_ID_MAX    128
#define MAX_PARTITIONS 4096
#define CACHE_TTL      "86400"

/* One line: a bucket's token request. The worker's script decides; this one
 * only touches the bucket, so the round trip is all that is measured. */
static const char token_lua[] = "return redis.call('HINCRBY', KEYS[1], 't', ARGV[1])";

static const char patch_body[] =
    "{\"schemas\":[\"urn:ietf:params:scim:api:messages:2.0:PatchOp\"],"
    "\"Operations\":[{\"op\":\"replace\",\"path\":\"title\",\"value\":\"Bench title\"}]}";

typedef struct app app_t;
typedef struct ev ev_t;
typedef void step_fn(ev_t *e);

struct ev {
    app_t *app;
    jp_kafka_msg_t *msg;
    char id[ID_MAX];
    char login[LOGIN_MAX];
    char scim_id[SCIM_ID_MAX];
    int pending; /* deliveries outstanding */
    int lookups; /* Redis answers still to come before the first token */
    int failed;
    uint64_t consumed_ns; /* when the consumer handed it over */
    uint64_t call_ns;     /* when the current HTTP call was sent */
    uint64_t http_ns;     /* time spent in HTTP calls */
    ev_t *next;           /* token queue link */
    step_fn *cont;
};

typedef struct tokq {
    app_t *app;
    char key[256];
    ev_t *head, *tail;
    size_t waiting;
    size_t asked;                    /* tokens asked by the request in flight; 0 when none */
    size_t extra;                    /* of which taken ahead (the lease) */
    size_t lease;                    /* tokens taken ahead, unused */
    uint64_t lease_until, win_start; /* uv_now ms */
    size_t win_used, prev_used;      /* tokens used in this lease window and the last */
} tokq_t;

struct app {
    uv_loop_t *loop;
    jp_config_t *cfg;
    const jp_site_t *site;
    jp_redis_t *redis;
    jp_redis_script_t *token_script;
    jp_http_t *http;
    jp_kafka_in_t *in;
    jp_kafka_out_t *out;
    tokq_t tok_get, tok_patch;
    char auth[1024];
    uint64_t count, done, errors;
    size_t held;
    int paused, closing;
    int64_t stored[MAX_PARTITIONS];
    uint64_t first_ns, last_ns;
    /* The same histogram as the worker's jiraprov_event_overhead_seconds. */
    uint64_t overhead[JP_PIPELINE_OVERHEAD_BUCKETS];
    uv_signal_t sigterm, sigint, sigusr1;
};

static void ev_finish(ev_t *e);

static void fail(ev_t *e, const char *what)
{
    if (!e->failed && e->app->errors < 10)
        fprintf(stderr, PROG ": event %s: %s\n", e->id, what);
    if (!e->failed)
        e->app->errors++;
    e->failed = 1;
}

/* ---- tokens --------------------------------------------------------------- */

static void tok_ask(tokq_t *q);

/* The limiter's lease, without its judgement of the bucket (this script grants
 * everything): a busy queue asks for what it used in the last
 * JP_LIMITER_LEASE_MS beyond its waiters and serves its next calls from them. */
static void tok_used(tokq_t *q)
{
    uint64_t now = uv_now(q->app->loop);
    if (now - q->win_start >= JP_LIMITER_LEASE_MS) {
        q->prev_used = now - q->win_start < 2 * JP_LIMITER_LEASE_MS ? q->win_used : 0;
        q->win_start = now;
        q->win_used = 0;
    }
    q->win_used++;
}

static void tok_answered(jp_redis_t *r, const redisReply *reply, jp_err_t err, const char *errstr,
                         void *opaque)
{
    tokq_t *q = opaque;
    size_t n = q->asked - q->extra;
    if (err == JP_OK && q->extra) {
        q->lease = q->extra;
        q->lease_until = uv_now(q->app->loop) + JP_LIMITER_LEASE_MS;
    }
    q->asked = q->extra = 0;
    while (n-- && q->head) {
        tok_used(q);
        ev_t *e = q->head;
        q->head = e->next;
        if (!q->head)
            q->tail = NULL;
        q->waiting--;
        e->next = NULL;
        if (err != JP_OK)
            fail(e, errstr);
        e->cont(e);
    }
    if (q->waiting)
        tok_ask(q);
}

static void tok_ask(tokq_t *q)
{
    char n[16], errstr[256];
    size_t used = q->win_used > q->prev_used ? q->win_used : q->prev_used;
    q->extra = used < JP_LIMITER_BATCH_MAX ? used : JP_LIMITER_BATCH_MAX;
    q->asked = q->waiting < JP_LIMITER_BATCH_MAX ? q->waiting : JP_LIMITER_BATCH_MAX;
    q->asked += q->extra;
    snprintf(n, sizeof(n), "%zu", q->asked);
    const char *keys[] = {q->key}, *args[] = {n};
    if (jp_redis_evalsha(q->app->redis, q->app->token_script, tok_answered, q, 1, keys, 1, args,
                         errstr, sizeof(errstr)) != JP_OK) {
        q->asked = q->extra = 0;
        while (q->head) { /* nothing was sent: let every waiter go on as failed */
            ev_t *e = q->head;
            q->head = e->next;
            q->waiting--;
            e->next = NULL;
            fail(e, errstr);
            e->cont(e);
        }
        q->tail = NULL;
    }
}

static void tok_acquire(tokq_t *q, ev_t *e, step_fn *cont)
{
    if (q->lease && uv_now(q->app->loop) >= q->lease_until)
        q->lease = 0;
    if (q->lease && !q->head) {
        q->lease--;
        tok_used(q);
        cont(e);
        return;
    }
    e->cont = cont;
    if (q->tail)
        q->tail->next = e;
    else
        q->head = e;
    q->tail = e;
    q->waiting++;
    if (!q->asked)
        tok_ask(q);
}

/* ---- steps ------------------------------------------------------------------- */

static void key_of(const app_t *a, char *buf, size_t size, const char *kind, const char *name)
{
    snprintf(buf, size, "%s%s%s", a->cfg->redis.key_prefix, kind, name);
}

static void redis_argv(ev_t *e, jp_redis_cb_t cb, int argc, const char **argv)
{
    char errstr[256];
    if (jp_redis_commandargv(e->app->redis, cb, e, argc, argv, NULL, errstr, sizeof(errstr)) !=
        JP_OK) {
        fail(e, errstr);
        if (cb)
            cb(e->app->redis, NULL, JP_ERR_REDIS, errstr, e);
    }
}

static void delivered(jp_err_t err, jp_class_t cls, const char *errstr, void *opaque)
{
    ev_t *e = opaque;
    if (err != JP_OK)
        fail(e, errstr);
    if (--e->pending == 0)
        ev_finish(e);
}

static void produce(ev_t *e, const char *topic, const char *value, size_t len)
{
    static const char ce[] = "application/cloudevents+json";
    jp_kafka_header_t hdr = {(char *)"content-type", (void *)ce, sizeof(ce) - 1};
    char errstr[256];
    e->pending++;
    if (jp_kafka_out_produce(e->app->out, topic, e->login, strlen(e->login), value, len, &hdr, 1,
                             delivered, e, errstr, sizeof(errstr)) != JP_OK) {
        fail(e, errstr);
        e->pending--;
    }
}

static void outcome_set(jp_redis_t *r, const redisReply *reply, jp_err_t err, const char *errstr,
                        void *opaque)
{
    ev_t *e = opaque;
    app_t *a = e->app;
    if (err != JP_OK)
        fail(e, errstr);
    /* What the worker measures: consumed to result produced, minus the HTTP calls. */
    uint64_t us = (uv_hrtime() - e->consumed_ns - e->http_ns) / 1000u;
    size_t b = 0;
    while (b < JP_PIPELINE_OVERHEAD_BUCKETS - 1 && us > jp_pipeline_overhead_bounds_us[b])
        b++;
    a->overhead[b]++;
    /* The worker's result and audit records, in size and shape. */
    char rec[2048];
    int n = snprintf(
        rec, sizeof(rec),
        "{\"specversion\":\"1.0\",\"id\":\"%s:result\",\"source\":\"jiraprov://worker/%s\","
        "\"type\":\"com.jiraprov.result\",\"subject\":\"%s\",\"time\":\"2026-11-22T00:00:00.000Z\","
        "\"datacontenttype\":\"application/json\",\"jirasite\":\"%s\",\"idhubactor\":\"bench\","
        "\"data\":{\"eventId\":\"%s\",\"eventType\":\"account.update\",\"subject\":\"%s\","
        "\"site\":\"%s\",\"status\":\"succeeded\",\"jira\":{\"scimId\":\"%s\",\"accountId\":"
        "\"000000000000000000000000\"},\"changed\":[\"jobTitle\"],\"attempts\":1,"
        "\"durationMs\":0,\"detail\":\"updated\"}}",
        e->id, a->cfg->worker.instance_id, e->login, a->site->name, e->id, e->login, a->site->name,
        e->scim_id);
    e->pending = 1; /* held until both produces were attempted */
    if (n > 0 && (size_t)n < sizeof(rec))
        produce(e, a->cfg->topics.results, rec, (size_t)n);
    n = snprintf(rec, sizeof(rec),
                 "{\"specversion\":\"1.0\",\"id\":\"%s:audit:call@0\",\"source\":"
                 "\"jiraprov://worker/%s\",\"type\":\"com.jiraprov.audit\",\"subject\":\"%s\","
                 "\"time\":\"2026-11-22T00:00:00.000Z\",\"datacontenttype\":\"application/json\","
                 "\"jirasite\":\"%s\",\"idhubactor\":\"bench\",\"data\":{\"eventId\":\"%s\","
                 "\"eventType\":\"account.update\",\"actor\":\"bench\",\"site\":\"%s\",\"target\":"
                 "{\"kind\":\"account\",\"login\":\"%s\"},\"operation\":\"scim.users.patch\","
                 "\"method\":\"PATCH\",\"path\":\"/scim/directory/x/Users/%s\",\"status\":200,"
                 "\"outcome\":\"succeeded\",\"worker\":\"%s\",\"startedAt\":"
                 "\"2026-11-22T00:00:00.000Z\",\"durationUs\":0}}",
                 e->id, a->cfg->worker.instance_id, e->login, a->site->name, e->id, a->site->name,
                 e->login, e->scim_id, a->cfg->worker.instance_id);
    if (n > 0 && (size_t)n < sizeof(rec))
        produce(e, a->cfg->topics.audit, rec, (size_t)n);
    delivered(JP_OK, JP_CLASS_OK, NULL, e);
}

static void patched(const jp_http_resp_t *resp, void *opaque)
{
    ev_t *e = opaque;
    e->http_ns += uv_hrtime() - e->call_ns;
    if (resp->err != JP_OK || resp->status != 200)
        fail(e, resp->err != JP_OK ? resp->curl_error : "PATCH: unexpected status");
    char key[1024], val[256];
    key_of(e->app, key, sizeof(key), "outcome:", e->id);
    snprintf(val, sizeof(val),
             "{\"status\":\"succeeded\",\"jira\":{\"scimId\":\"%s\",\"accountId\":"
             "\"000000000000000000000000\"},\"changed\":[\"jobTitle\"],\"detail\":\"updated\","
             "\"attempts\":1,\"durationMs\":0}",
             e->scim_id);
    char ttl[16];
    snprintf(ttl, sizeof(ttl), "%d", e->app->cfg->worker.outcome_ttl_s);
    const char *argv[] = {"SET", key, val, "EX", ttl};
    redis_argv(e, outcome_set, 5, argv);
}

static void send_http(ev_t *e, jp_http_method_t method, const char *url, const char *body,
                      jp_http_cb_t cb)
{
    const app_t *a = e->app;
    const char *headers[] = {a->auth, "Accept: application/scim+json",
                             "Content-Type: application/scim+json"};
    jp_http_req_t req = {0};
    req.method = method;
    req.url = url;
    req.headers = headers;
    req.nheaders = body ? 3 : 2;
    req.body = body;
    req.body_len = body ? strlen(body) : 0;
    req.timeout_ms = a->site->timeout_ms;
    e->call_ns = uv_hrtime();
    char errstr[256];
    if (jp_http_request(a->http, &req, cb, e, errstr, sizeof(errstr)) != JP_OK) {
        jp_http_resp_t r = {0};
        r.err = JP_ERR_HTTP;
        r.curl_error = errstr;
        fail(e, errstr);
        cb(&r, e);
    }
}

static void do_patch(ev_t *e)
{
    char url[2048], seg[3 * SCIM_ID_MAX + 1];
    if (jp_http_escape(e->scim_id, seg, sizeof(seg)) < 0)
        seg[0] = '\0';
    snprintf(url, sizeof(url), "%s/Users/%s", e->app->site->scim_url, seg);
    send_http(e, JP_HTTP_PATCH, url, patch_body, patched);
}

static void noop_reply(jp_redis_t *r, const redisReply *reply, jp_err_t err, const char *errstr,
                       void *opaque)
{
}

/* The first "id":"..." after "Resources" (the emulator and Jira both put a
 * resource's id right after its schemas). */
static int find_scim_id(const char *body, size_t len, char *out, size_t size)
{
    const char *p = body ? strstr(body, "\"Resources\"") : NULL;
    p = p ? strstr(p, "\"id\":\"") : NULL;
    if (!p || (size_t)(p - body) >= len)
        return -1;
    p += 6;
    const char *q = strchr(p, '"');
    if (!q || (size_t)(q - p) >= size)
        return -1;
    memcpy(out, p, (size_t)(q - p));
    out[q - p] = '\0';
    return 0;
}

static void looked_up(const jp_http_resp_t *resp, void *opaque)
{
    ev_t *e = opaque;
    e->http_ns += uv_hrtime() - e->call_ns;
    if (resp->err != JP_OK || resp->status != 200 ||
        find_scim_id(resp->body, resp->body_len, e->scim_id, sizeof(e->scim_id)) != 0) {
        fail(e, resp->err != JP_OK ? resp->curl_error : "lookup: no user in the answer");
        snprintf(e->scim_id, sizeof(e->scim_id), "missing");
    }
    char key[1024], val[256];
    snprintf(key, sizeof(key), "%scache:%s:user:%s", e->app->cfg->redis.key_prefix,
             e->app->site->name, e->login);
    snprintf(val, sizeof(val), "{\"scimId\":\"%s\",\"accountId\":\"000000000000000000000000\"}",
             e->scim_id);
    const char *argv[] = {"SET", key, val, "EX", CACHE_TTL};
    redis_argv(e, noop_reply, 5, argv);
    tok_acquire(&e->app->tok_patch, e, do_patch);
}

static void do_lookup(ev_t *e)
{
    char filter[LOGIN_MAX + 32], esc[3 * sizeof(filter)], url[4096];
    snprintf(filter, sizeof(filter), "userName eq \"%s\"", e->login);
    if (jp_http_escape(filter, esc, sizeof(esc)) < 0)
        esc[0] = '\0';
    snprintf(url, sizeof(url), "%s/Users?filter=%s", e->app->site->scim_url, esc);
    send_http(e, JP_HTTP_GET, url, NULL, looked_up);
}

/* GET outcome and HMGET attempts go out together (as in the worker); the
 * lookup waits for the second answer. */
static void state_read(jp_redis_t *r, const redisReply *reply, jp_err_t err, const char *errstr,
                       void *opaque)
{
    ev_t *e = opaque;
    if (err != JP_OK)
        fail(e, errstr);
    if (--e->lookups == 0)
        tok_acquire(&e->app->tok_get, e, do_lookup);
}

/* ---- consumption -------------------------------------------------------------- */

static void stop(app_t *a);

static void ev_finish(ev_t *e)
{
    app_t *a = e->app;
    jp_kafka_msg_t *m = e->msg;
    if (m->partition >= 0 && m->partition < MAX_PARTITIONS &&
        m->offset + 1 > a->stored[m->partition]) {
        char errstr[256];
        a->stored[m->partition] = m->offset + 1;
        jp_kafka_in_store_offset(a->in, m->partition, m->offset + 1, errstr, sizeof(errstr));
    }
    jp_kafka_msg_destroy(m);
    free(e);
    a->held--;
    a->done++;
    a->last_ns = uv_hrtime();
    if (a->paused && a->held <= (size_t)a->cfg->worker.max_buffered_events / 2) {
        a->paused = 0;
        jp_kafka_in_resume(a->in);
    }
    if (a->count && a->done >= a->count)
        stop(a);
}

/* The first "id":"..." of the value: the event id (CloudEvents put it near
 * the front; no parsing beyond that). */
static void find_event_id(const jp_kafka_msg_t *m, char *out, size_t size)
{
    const char *p = strstr(m->value, "\"id\":\"");
    const char *q = p ? strchr(p + 6, '"') : NULL;
    if (!q || (size_t)(q - p - 6) >= size) {
        snprintf(out, size, "p%d-o%lld", (int)m->partition, (long long)m->offset);
        return;
    }
    memcpy(out, p + 6, (size_t)(q - p - 6));
    out[q - p - 6] = '\0';
}

static void on_message(jp_kafka_msg_t *msg, void *opaque)
{
    app_t *a = opaque;
    ev_t *e = calloc(1, sizeof(*e));
    if (!e) {
        jp_kafka_msg_destroy(msg);
        return;
    }
    if (!a->first_ns)
        a->first_ns = uv_hrtime();
    e->consumed_ns = uv_hrtime();
    e->app = a;
    e->msg = msg;
    find_event_id(msg, e->id, sizeof(e->id));
    size_t kl = msg->key_len < sizeof(e->login) - 1 ? msg->key_len : sizeof(e->login) - 1;
    if (msg->key)
        memcpy(e->login, msg->key, kl);
    e->login[msg->key ? kl : 0] = '\0';
    if (++a->held >= (size_t)a->cfg->worker.max_buffered_events && !a->paused) {
        a->paused = 1;
        jp_kafka_in_pause(a->in);
    }
    char okey[1024], akey[1024];
    key_of(a, okey, sizeof(okey), "outcome:", e->id);
    key_of(a, akey, sizeof(akey), "attempts:", e->id);
    const char *get[] = {"GET", okey};
    const char *hmget[] = {"HMGET", akey, "attempts", "first_ms", "next_ms", "history"};
    e->lookups = 2;
    redis_argv(e, state_read, 2, get);
    redis_argv(e, state_read, 6, hmget);
}

static void on_revoke(const int32_t *partitions, size_t n, void *opaque)
{
    app_t *a = opaque;
    jp_kafka_in_revoke_done(a->in);
}

static void on_error(jp_class_t cls, const char *reason, void *opaque)
{
    app_t *a = opaque;
    if (cls == JP_CLASS_FATAL) {
        fprintf(stderr, PROG ": fatal Kafka error: %s\n", reason);
        a->errors++;
        stop(a);
    }
}

static void closed(void *opaque)
{
    app_t *a = opaque;
    jp_kafka_out_flush(a->out, 10000);
    uv_stop(a->loop);
}

static void stop(app_t *a)
{
    if (a->closing)
        return;
    a->closing = 1;
    if (a->in)
        jp_kafka_in_close(a->in, closed, a);
    else
        uv_stop(a->loop);
}

static void on_signal(uv_signal_t *s, int signum)
{
    app_t *a = s->data;
    if (signum == SIGUSR1) /* the warm-up is over: measure from here */
        memset(a->overhead, 0, sizeof(a->overhead));
    else
        stop(a);
}

static void on_redis_state(void *opaque, int connected)
{
    app_t *a = opaque;
    char errstr[512];
    if (!connected || a->in || a->closing)
        return;
    /* Consume only once Redis answers, like the worker. */
    jp_kafka_in_cbs_t cbs = {on_message, NULL, on_revoke, on_error, a};
    if (!(a->in = jp_kafka_in_new(a->loop, a->cfg, &cbs, errstr, sizeof(errstr)))) {
        fprintf(stderr, PROG ": %s\n", errstr);
        a->errors++;
        stop(a);
    }
}

static void close_any(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static int setup(app_t *a, char *errstr, size_t size)
{
    const jp_config_t *cfg = a->cfg;
    a->site = &cfg->sites[0];
    snprintf(a->auth, sizeof(a->auth), "Authorization: Bearer %s", a->site->scim_api_key);
    jp_redis_opts_t ro = {0};
    ro.host = cfg->redis.host;
    ro.port = cfg->redis.port;
    ro.unix_path = cfg->redis.unix_path;
    ro.username = cfg->redis.username;
    ro.password = cfg->redis.password;
    ro.db = cfg->redis.db;
    ro.command_timeout_ms = (unsigned)cfg->redis.timeout_ms;
    ro.on_state = on_redis_state;
    ro.opaque = a;
    jp_http_opts_t ho = {0};
    ho.max_connections = cfg->worker.max_in_flight;
    ho.max_host_connections = cfg->worker.max_in_flight;
    ho.max_active = cfg->worker.max_in_flight;
    tokq_t *qs[] = {&a->tok_get, &a->tok_patch};
    const char *names[] = {"bench:tok:get", "bench:tok:patch"};
    for (int i = 0; i < 2; i++) {
        qs[i]->app = a;
        snprintf(qs[i]->key, sizeof(qs[i]->key), "%s%s", cfg->redis.key_prefix, names[i]);
    }
    if (!(a->http = jp_http_new(a->loop, &ho, errstr, size)) ||
        !(a->out = jp_kafka_out_new(a->loop, cfg, errstr, size)) ||
        !(a->redis = jp_redis_new(a->loop, &ro, errstr, size)) ||
        !(a->token_script = jp_redis_script_new(a->redis, token_lua, errstr, size)))
        return -1;
    return 0;
}

static const char usage[] =
    "usage: " PROG " --config FILE [--count N]\n"
    "Applies the I/O of one account.update per event from the config's events topic (see\n"
    "tests/bench/README.md) and prints {events, errors, seconds, events_per_second}.\n";

int main(int argc, char **argv)
{
    static const struct option longopts[] = {{"config", required_argument, NULL, 'c'},
                                             {"count", required_argument, NULL, 'n'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    static app_t app;
    const char *config = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:n:h", longopts, NULL)) != -1) {
        char *end;
        switch (opt) {
        case 'c':
            config = optarg;
            break;
        case 'n':
            app.count = strtoull(optarg, &end, 10);
            if (*end || !*optarg) {
                fprintf(stderr, PROG ": --count wants a number\n");
                return 2;
            }
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            fputs(usage, stderr);
            return 2;
        }
    }
    if (!config || optind != argc) {
        fputs(usage, stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    char errstr[1024];
    if (jp_config_load(config, &app.cfg, errstr, sizeof(errstr)) != JP_OK) {
        fprintf(stderr, PROG ": %s\n", errstr);
        return 2;
    }
    jp_log_set_level(app.cfg->log.level);
    app.loop = uv_default_loop();
    int rc = 0;
    if (setup(&app, errstr, sizeof(errstr)) != 0) {
        fprintf(stderr, PROG ": %s\n", errstr);
        rc = 2;
    } else {
        uv_signal_init(app.loop, &app.sigterm);
        uv_signal_init(app.loop, &app.sigint);
        uv_signal_init(app.loop, &app.sigusr1);
        app.sigterm.data = app.sigint.data = app.sigusr1.data = &app;
        uv_signal_start(&app.sigterm, on_signal, SIGTERM);
        uv_signal_start(&app.sigint, on_signal, SIGINT);
        uv_signal_start(&app.sigusr1, on_signal, SIGUSR1);
        uv_run(app.loop, UV_RUN_DEFAULT);
        double secs = app.last_ns > app.first_ns ? (double)(app.last_ns - app.first_ns) / 1e9 : 0;
        printf("{\"events\":%llu,\"errors\":%llu,\"seconds\":%.3f,\"events_per_second\":%.1f,"
               "\"overhead_buckets\":[",
               (unsigned long long)app.done, (unsigned long long)app.errors, secs,
               secs > 0 ? (double)app.done / secs : 0.0);
        for (int i = 0; i < JP_PIPELINE_OVERHEAD_BUCKETS; i++)
            printf("%s%llu", i ? "," : "", (unsigned long long)app.overhead[i]);
        printf("]}\n");
        fflush(stdout);
        rc = app.errors ? 1 : 0;
    }
    jp_kafka_in_destroy(app.in);
    jp_kafka_out_destroy(app.out);
    jp_http_destroy(app.http);
    jp_redis_destroy(app.redis);
    uv_walk(app.loop, close_any, NULL);
    uv_run(app.loop, UV_RUN_DEFAULT);
    uv_loop_close(app.loop);
    jp_config_destroy(app.cfg);
    return rc;
}
