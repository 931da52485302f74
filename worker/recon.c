/* recon.c - the reconciliation engine: a run's life (done check, checkpoint, lease, phases,
 * completion), its Redis state, the one function every Jira call goes through, the window of
 * pages fetched ahead and processed in order, batches (records and Redis writes confirmed before
 * the checkpoint moves) and publishing. What each phase reads and emits is in recon_phases.c;
 * the records and fingerprints in recon_record.c. See include/jiraprov/recon.h.
 *
 * Exactly one `completed` per reconId: a run moves to phase COMPLETING only when every record
 * before it is confirmed; it then writes the final counts and times into the checkpoint, and
 * builds `completed` from the checkpoint alone, so a repeat is the same record (same id, key,
 * seq and bytes but the envelope's source). Once `completed` is delivered, one Lua script sets
 * the done marker (SET NX), makes this run's fingerprints the scope's baseline and drops the
 * checkpoint. A later request with the same reconId finds the marker and is answered SKIPPED
 * without publishing. The marker is set only after the delivery report, so it never claims a
 * `completed` that Kafka does not have; the one window left is a crash between that report and
 * the script: the next owner resumes in COMPLETING and publishes the identical record again
 * (at-least-once with an idempotent id; Kafka transactions would close it, at the cost of a
 * transactional producer for the whole worker). The lease keeps two workers from running one
 * scope at once, so no two copies are ever produced concurrently. */
#include "recon_int.h"

#include "jiraprov/log.h"
#include "jiraprov/record.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define COMPONENT "recon"

/* Lua scripts (keys under the site's hash tag, so each runs in one cluster slot). */

/* KEYS: lease, baseline generation; ARGV[1] "<token> <reconId>", ARGV[2] ttl ms.
 * {1, 0, "", generation} taken or renewed; {0, pttl, holder, generation} held by another. */
static const char LUA_LEASE[] = "local g = redis.call('GET', KEYS[2]) or '0'\n"
                                "local v = redis.call('GET', KEYS[1])\n"
                                "if (not v) or v == ARGV[1] then\n"
                                "  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n"
                                "  return {1, 0, '', g}\n"
                                "end\n"
                                "return {0, redis.call('PTTL', KEYS[1]), v, g}\n";

/* KEYS: lease, run, seen, match; ARGV: lease value, lease ttl ms, checkpoint, ttl s.
 * Writes the checkpoint unless another run holds the lease (and renews ours). */
static const char LUA_CKPT[] = "local v = redis.call('GET', KEYS[1])\n"
                               "if v and v ~= ARGV[1] then return 0 end\n"
                               "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n"
                               "redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[4])\n"
                               "redis.call('EXPIRE', KEYS[3], ARGV[4])\n"
                               "redis.call('EXPIRE', KEYS[4], ARGV[4])\n"
                               "return 1\n";

/* KEYS: fp, seen; ARGV: cursor, count. {next cursor, {field, value, ...}} of the previous
 * fingerprints this run has not seen. */
static const char LUA_REMOVED[] =
    "local r = redis.call('HSCAN', KEYS[1], ARGV[1], 'COUNT', ARGV[2])\n"
    "local out = {}\n"
    "local kv = r[2]\n"
    "for i = 1, #kv, 2 do\n"
    "  if redis.call('HEXISTS', KEYS[2], kv[i]) == 0 then\n"
    "    out[#out + 1] = kv[i]\n"
    "    out[#out + 1] = kv[i + 1]\n"
    "  end\n"
    "end\n"
    "return {r[1], out}\n";

/* KEYS: done, run, seen, fp, match, lease, baseline generation; ARGV: done value, ttl s,
 * lease value, track, the generation the run diffed against.
 * {first, moved}: first = this call marked the run done (otherwise only the clean-up is done);
 * moved = the run's fingerprints became the scope's baseline, which happens only if no other
 * run of the scope moved it since this one started (its diffs were against that baseline). */
static const char LUA_FINISH[] =
    "local first = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2])\n"
    "local moved = 0\n"
    "if first and ARGV[4] == '1' and (redis.call('GET', KEYS[7]) or '0') == ARGV[5] then\n"
    "  if redis.call('EXISTS', KEYS[3]) == 1 then\n"
    "    redis.call('RENAME', KEYS[3], KEYS[4])\n"
    "    redis.call('PERSIST', KEYS[4])\n"
    "  else\n"
    "    redis.call('DEL', KEYS[4])\n"
    "  end\n"
    "  redis.call('INCR', KEYS[7])\n"
    "  moved = 1\n"
    "end\n"
    "redis.call('DEL', KEYS[2], KEYS[3], KEYS[5])\n"
    "if redis.call('GET', KEYS[6]) == ARGV[3] then redis.call('DEL', KEYS[6]) end\n"
    "return {first and 1 or 0, moved}\n";

/* KEYS[1] lease; ARGV[1] our value. */
static const char LUA_RELEASE[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end\n"
    "return 0\n";

static void run_phase(jp_recon_run_t *run);
static void batch_check(jp_recon_run_t *run);
static void timer_arm(jp_recon_run_t *run);
static void call_admit(jp_recon_run_t *run, jp_recon_call_t *c);
static void win_pump(jp_recon_run_t *run);

/* ---- clocks ------------------------------------------------------------------------------- */

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t mono_ms(void)
{
    return mono_us() / 1000;
}

int64_t jp_recon__wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- runs: references, ending, delivery --------------------------------------------------- */

static jp_log_ctx_t run_ctx(const jp_recon_run_t *run)
{
    jp_log_ctx_t c = {run->ck.def.event_id, -1, -1};
    return c;
}

static void free_timer(uv_handle_t *h)
{
    free(h);
}

static void win_clear(jp_recon_win_t *w)
{
    for (int i = 0; i < JP_RECON_WINDOW_MAX; i++) {
        free(w->slot[i].body);
        w->slot[i].body = NULL;
        w->slot[i].state = JP_RECON__SLOT_FREE;
    }
    w->active = false;
}

static void run_free(jp_recon_run_t *run)
{
    while (run->bhead) {
        jp_recon_batch_t *b = run->bhead;
        run->bhead = b->next;
        jp_recon_ckpt_clear(&b->snap);
        free(b);
    }
    win_clear(&run->win);
    jp_jira_groups_destroy(run->groups);
    jp_jira_projects_destroy(run->projects);
    jp_jira_roles_destroy(run->roles);
    jp_jira_role_destroy(run->role);
    json_decref(run->members);
    jp_recon_ckpt_clear(&run->ck);
    jp_outcome_destroy(run->out);
    free(run->k_run);
    free(run->k_done);
    free(run->k_seen);
    free(run->k_match);
    free(run->k_lease);
    free(run->k_fp);
    free(run->k_gen);
    free(run->lease_value);
    if (run->timer) {
        uv_timer_stop(run->timer);
        uv_close((uv_handle_t *)run->timer, free_timer);
    }
    free(run);
}

static void run_unlink(jp_recon_run_t *run)
{
    jp_recon_t *r = run->r;
    if (run->prev)
        run->prev->next = run->next;
    else
        r->runs = run->next;
    if (run->next)
        run->next->prev = run->prev;
    run->prev = run->next = NULL;
    r->in_flight--;
}

static void run_ref(jp_recon_run_t *run)
{
    run->refs++;
}

static void run_unref(jp_recon_run_t *run);
static void run_end(jp_recon_run_t *run);
static void set_error(jp_recon_run_t *run, jp_outcome_status_t status, jp_class_t cls,
                      const char *reason, const char *msg);

static void call_free(jp_recon_call_t *c)
{
    jp_recon_run_t *run = c->run;
    jp_jira_req_destroy(c->req);
    free(c);
    run_unref(run);
}

static void on_released(jp_redis_t *rd, const redisReply *reply, jp_err_t err, const char *errstr,
                        void *opaque)
{
    (void)rd;
    (void)reply;
    (void)err;
    (void)errstr;
    run_unref(opaque); /* a lease that stays is only a delay: it expires */
}

/* The last reference is gone: give the lease back, then hand the outcome over. */
static void run_finalize(jp_recon_run_t *run)
{
    jp_recon_t *r = run->r;
    if (!r) {
        run_free(run);
        return;
    }
    if (run->lease_held) {
        run->lease_held = false;
        const char *keys[] = {run->k_lease};
        const char *args[] = {run->lease_value};
        char why[128];
        if (jp_redis_evalsha(r->redis, r->s_release, on_released, run, 1, keys, 1, args, why,
                             sizeof(why)) == JP_OK) {
            run_ref(run);
            return;
        }
    }
    jp_outcome_t *out = run->out;
    jp_recon_cb *cb = run->cb;
    void *opaque = run->opaque;
    run->out = NULL;
    out->duration_ms = (int64_t)((uv_hrtime() - run->started_ns) / 1000000u);
    jp_log_ctx_t ctx = run_ctx(run);
    jp_log(out->status == JP_OUTCOME_SUCCEEDED || out->status == JP_OUTCOME_SKIPPED ? JP_LOG_INFO
                                                                                    : JP_LOG_WARN,
           COMPONENT, &ctx, "reconciliation %s: %s%s%s", run->ck.def.recon_id,
           jp_outcome_status_name(out->status), out->detail || out->error_message ? ": " : "",
           out->detail          ? out->detail
           : out->error_message ? out->error_message
                                : "");
    run_unlink(run);
    run_free(run);
    cb(out, opaque);
}

static void run_unref(jp_recon_run_t *run)
{
    if (--run->refs > 0)
        return;
    if (run->r && !run->ending) {
        /* Nothing under way and not ending: no callback would ever move the run on. */
        jp_log_ctx_t ctx = run_ctx(run);
        jp_log(JP_LOG_ERROR, COMPONENT, &ctx, "reconciliation %s stalled in phase %s",
               run->ck.def.recon_id, jp_recon_phase_name(run->ck.phase));
        set_error(run, JP_OUTCOME_RETRY, JP_CLASS_RETRIABLE, "stalled",
                  "the run stopped making progress; it resumes from its checkpoint");
        run_end(run);
    }
    run_finalize(run);
}

bool jp_recon__stopped(const jp_recon_run_t *run)
{
    return run->ending || !run->r;
}

static void release_waiting(jp_recon_run_t *run)
{
    while (run->waiting) {
        jp_recon_call_t *c = run->waiting;
        run->waiting = c->next;
        call_free(c);
    }
}

/* Stops everything that has not started; what is under way comes back and is dropped. The
 * outcome is delivered once the last reference is gone (callers always hold one). */
static void run_end(jp_recon_run_t *run)
{
    if (run->ending)
        return;
    run->ending = true;
    if (run->timer)
        uv_timer_stop(run->timer);
    win_clear(&run->win);
    release_waiting(run);
}

static void set_error(jp_recon_run_t *run, jp_outcome_status_t status, jp_class_t cls,
                      const char *reason, const char *msg)
{
    jp_outcome_set_error(run->out, status, cls, reason, msg);
}

void jp_recon__fail(jp_recon_run_t *run, jp_outcome_status_t status, jp_class_t cls,
                    const char *reason, const char *fmt, ...)
{
    if (jp_recon__stopped(run))
        return;
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    set_error(run, status, cls, reason, msg);
    run_end(run);
}

void jp_recon__fail_parse(jp_recon_run_t *run, jp_err_t err, const char *errstr)
{
    if (err == JP_ERR_NOMEM)
        jp_recon__fail(run, JP_OUTCOME_RETRY, JP_CLASS_FATAL, "out_of_memory", "out of memory");
    else
        jp_recon__fail(run, JP_OUTCOME_RETRY, JP_CLASS_RETRIABLE, "bad_response",
                       "unexpected answer from Jira: %s", errstr);
}

static void fail_redis(jp_recon_run_t *run, const char *what, const char *errstr)
{
    jp_recon__fail(run, JP_OUTCOME_RETRY, JP_CLASS_RETRIABLE, "redis", "%s: %s", what,
                   errstr && *errstr ? errstr : "no answer");
}

/* ---- Jira calls ---------------------------------------------------------------------------- */

static jp_outcome_status_t status_for(jp_class_t cls)
{
    return cls == JP_CLASS_PERMANENT    ? JP_OUTCOME_FAILED
           : cls == JP_CLASS_QUARANTINE ? JP_OUTCOME_QUARANTINE
                                        : JP_OUTCOME_RETRY;
}

static void fail_verdict(jp_recon_run_t *run, const jp_http_verdict_t *v, const char *msg)
{
    if (jp_recon__stopped(run))
        return;
    jp_class_t cls = v->cls == JP_CLASS_OK ? JP_CLASS_PERMANENT : v->cls;
    set_error(run, status_for(cls), cls, v->cls == JP_CLASS_OK ? "unexpected_status" : v->reason,
              msg);
    run->out->retry_after_ms = v->retry_after_ms;
    run->out->limit_scope = v->scope;
    run_end(run);
}

static jp_http_verdict_t verdict_of(const jp_http_resp_t *resp)
{
    if (resp->cancelled)
        return (jp_http_verdict_t){JP_CLASS_RETRIABLE, "cancelled", JP_SCOPE_NONE, -1,
                                   resp->request_sent};
    return jp_classify_http(resp->err == JP_OK ? resp->status : 0, (int)resp->curl_code,
                            resp->request_sent, jp_http_resp_header(resp, "Retry-After"),
                            jp_http_resp_header(resp, "RateLimit-Reason"), time(NULL));
}

static void fail_resp(jp_recon_run_t *run, const jp_jira_req_t *req, const jp_http_resp_t *resp)
{
    char path[512], msg[768];
    jp_http_url_path(req->url, path, sizeof(path));
    int n = snprintf(msg, sizeof(msg), "%s %s: ", jp_http_method_name(req->method), path);
    if (n < 0 || (size_t)n >= sizeof(msg))
        n = 0;
    if (resp->status != 0 && resp->err == JP_OK)
        jp_jira_error_message(req->api, resp->status, resp->body, resp->body_len, msg + n,
                              sizeof(msg) - (size_t)n);
    else
        snprintf(msg + n, sizeof(msg) - (size_t)n, "no answer (%s%s%s)",
                 curl_easy_strerror(resp->curl_code), *resp->curl_error ? ": " : "",
                 resp->curl_error);
    jp_http_verdict_t v = verdict_of(resp);
    fail_verdict(run, &v, msg);
}

void jp_recon__fail_status(jp_recon_run_t *run, jp_jira_api_t api, long status, const char *body,
                           size_t len)
{
    char msg[768];
    int n = snprintf(msg, sizeof(msg), "reading %s: ", jp_jira_api_name(api));
    jp_jira_error_message(api, status, body, len, msg + n, sizeof(msg) - (size_t)n);
    jp_http_verdict_t v = jp_classify_http(status, 0, 1, NULL, NULL, time(NULL));
    fail_verdict(run, &v, msg);
}

bool jp_recon__ok(jp_recon_run_t *run, const jp_recon_call_t *c, const jp_http_resp_t *resp)
{
    if (resp->err == JP_OK && resp->status >= 200 && resp->status < 300)
        return true;
    fail_resp(run, c->req, resp);
    return false;
}

/* Exponential backoff with full jitter; Retry-After is the floor. */
static int64_t backoff_ms(const jp_config_t *cfg, int tries, int64_t retry_after_ms)
{
    int64_t cap = cfg->retry.base_delay_ms;
    for (int i = 1; i < tries && cap < cfg->retry.max_delay_ms; i++)
        cap *= 2;
    if (cap > cfg->retry.max_delay_ms)
        cap = cfg->retry.max_delay_ms;
    int64_t delay = (int64_t)((double)cap * ((double)rand() / ((double)RAND_MAX + 1.0)));
    return delay < retry_after_ms ? retry_after_ms : delay;
}

static void call_wait(jp_recon_run_t *run, jp_recon_call_t *c, int64_t due_ms)
{
    c->due_ms = due_ms;
    jp_recon_call_t **pp = &run->waiting;
    while (*pp && (*pp)->due_ms <= due_ms)
        pp = &(*pp)->next;
    c->next = *pp;
    *pp = c;
    timer_arm(run);
}

static jp_limiter_call_t limit_call(const jp_recon_run_t *run, const jp_recon_call_t *c)
{
    jp_limiter_call_t lc = {run->site, c->req->api, c->req->method, c->req->endpoint_class,
                            NULL,      false,       JP_LANE_RECON};
    return lc;
}

/* Every answer to a run's Jira call arrives here (what a shared limiter observes: status,
 * Retry-After, RateLimit-Reason). */
static void on_http(const jp_http_resp_t *resp, void *opaque)
{
    jp_recon_call_t *c = opaque;
    jp_recon_run_t *run = c->run;
    if (jp_recon__stopped(run)) {
        call_free(c);
        return;
    }
    jp_recon_t *r = run->r;
    if (r->limiter) {
        jp_limiter_call_t lc = limit_call(run, c);
        jp_limiter_observe(r->limiter, &lc, c->probe, resp->err == JP_OK ? resp->status : 0,
                           jp_http_resp_header(resp, "Retry-After"),
                           jp_http_resp_header(resp, "RateLimit-Reason"),
                           jp_http_resp_header(resp, "X-RateLimit-NearLimit"));
    }
    if (!(resp->err == JP_OK && resp->status >= 200 && resp->status < 300)) {
        jp_http_verdict_t v = verdict_of(resp);
        if (v.cls == JP_CLASS_RETRIABLE && !resp->cancelled &&
            c->tries + 1 < r->cfg->retry.max_attempts) {
            c->tries++;
            r->st.retries++;
            int64_t delay = backoff_ms(r->cfg, c->tries, v.retry_after_ms);
            jp_log_ctx_t ctx = run_ctx(run);
            jp_log(JP_LOG_DEBUG, COMPONENT, &ctx, "%s: %s (HTTP %ld), again in %lld ms",
                   run->ck.def.recon_id, v.reason, resp->status, (long long)delay);
            c->next = NULL;
            c->paced = false;
            call_wait(run, c, mono_ms() + delay);
            return;
        }
        if (v.cls == JP_CLASS_QUARANTINE) {
            fail_resp(run, c->req, resp);
            call_free(c);
            return;
        }
    }
    c->step(run, c, resp);
    call_free(c);
}

static void call_send(jp_recon_run_t *run, jp_recon_call_t *c)
{
    jp_recon_t *r = run->r;
    const jp_site_t *site = run->site;
    jp_http_req_t hr;
    jp_jira_req_http(c->req, &hr);
    hr.timeout_ms = site->timeout_ms;
    hr.insecure = site->tls_verify ? 0 : 1;
    hr.ca_file = site->ca_file;
    char why[256];
    r->st.calls++;
    if (jp_http_request(r->http, &hr, on_http, c, why, sizeof(why)) != JP_OK) {
        jp_recon__fail(run, JP_OUTCOME_RETRY, JP_CLASS_RETRIABLE, "http_client", "%s", why);
        call_free(c);
    }
}

/* The shared budget's answer for c. */
static void on_token(jp_limiter_verdict_t v, int64_t wait_ms, const char *why, void *opaque)
{
    jp_recon_call_t *c = opaque;
    jp_recon_run_t *run = c->run;
    c->wait = NULL;
    if (jp_recon__stopped(run)) {
        call_free(c);
        return;
    }
    if (v == JP_LIMITER_GO || v == JP_LIMITER_PROBE) {
        c->probe = v == JP_LIMITER_PROBE;
        call_send(run, c);
        return;
    }
    /* Not now (a cool-down, a quarantine, Redis away): the page waits and asks again. */
    c->paced = false;
    call_wait(run, c, mono_ms() + (wait_ms > 0 ? wait_ms : 100));
}

/* When a call may go: every send of a run, first or retry, passes this one point: a token of
 * the site's shared budget (lane reconciliation, served after deprovisioning and normal
 * events); without a limiter, a run paces itself to the site's GET budget. */
static void call_admit(jp_recon_run_t *run, jp_recon_call_t *c)
{
    jp_recon_t *r = run->r;
    if (r->limiter) {
        jp_limiter_call_t lc = limit_call(run, c);
        c->paced = true; /* the limiter's GO is its time */
        if (!(c->wait = jp_limiter_acquire(r->limiter, &lc, on_token, c))) {
            jp_recon__fail(run, JP_OUTCOME_RETRY, JP_CLASS_FATAL, "out_of_memory", "out of memory");
            call_free(c);
        }
        return;
    }
    c->paced = true;
    int rate = run->site->rate_limits.get_per_s > 0 ? run->site->rate_limits.get_per_s : 1;
    int64_t now = mono_us(), interval = 1000000 / rate;
    int64_t at = run->next_send_us > now ? run->next_send_us : now;
    run->next_send_us = at + interval;
    if (at <= now) {
        call_send(run, c);
        return;
    }
    call_wait(run, c, (at + 999) / 1000);
}

void jp_recon__call(jp_recon_run_t *run, jp_err_t err, jp_jira_req_t *req, const char *errstr,
                    jp_recon__step_t *step, int64_t index)
{
    if (err != JP_OK) {
        jp_jira_req_destroy(req);
        if (err == JP_ERR_NOMEM)
            jp_recon__fail(run, JP_OUTCOME_RETRY, JP_CLASS_FATAL, "out_of_memory", "out of memory");
        else
            jp_recon__fail(run, JP_OUTCOME_FAILED, JP_CLASS_PERMANENT, "invalid_request", "%s",
                           errstr);
        return;
    }
    jp_recon_call_t *c = jp_recon__stopped(run) ? NULL : calloc(1, sizeof(*c));
    if (!c) {
        jp_jira_req_destroy(req);
        jp_recon__fail(run, JP_OUTCOME_RETRY, JP_CLASS_FATAL, "out_of_memory", "out of memory");
        return;
    }
    c->run = run;
    c->req = req;
    c->step = step;
    c->index = index;
    run_ref(run);
    call_admit(run, c);
}

/* ---- the run's timer: calls that wait, lease renewal, the first step ----------------------- */

static void lease_renew(jp_recon_run_t *run);
static void start_steps(jp_recon_run_t *run);

static void on_timer(uv_timer_t *t)
{
    jp_recon_run_t *run = t->data;
    if (jp_recon__stopped(run))
        return;
    run_ref(run);
    int64_t now = mono_ms();
    if (!run->kicked) {
        run->kicked = true;
        start_steps(run);
    }
    while (!jp_recon__stopped(run) && run->waiting && run->waiting->due_ms <= now) {
        jp_recon_call_t *c = run->waiting;
        run->waiting = c->next;
        c->next = NULL;
        if (c->paced)
            call_send(run, c);
        else
            call_admit(run, c);
    }
    if (!jp_recon__stopped(run) && run->lease_held && !run->renewing && run->lease_due_ms > 0 &&
        now >= run->lease_due_ms)
        lease_renew(run);
    if (!jp_recon__stopped(run))
        timer_arm(run);
    run_unref(run);
}

static void timer_arm(jp_recon_run_t *run)
{
    if (jp_recon__stopped(run))
        return;
    int64_t now = mono_ms(), next = INT64_MAX;
    if (run->waiting)
        next = run->waiting->due_ms;
    /* While a renewal is under way its answer re-arms the timer. */
    if (run->lease_held && !run->renewing && run->lease_due_ms > 0 && run->lease_due_ms < next)
        next = run->lease_due_ms;
    if (next == INT64_MAX) {
        uv_timer_stop(run->timer);
        return;
    }
    /* At least 1 ms: libuv runs a timer restarted with 0 from its own callback again in the
     * same pass, before any I/O, which would starve the loop. */
    uv_timer_start(run->timer, on_timer, (uint64_t)(next > now ? next - now : 1), 0);
}

/* ---- the page window ------------------------------------------------------------------------ */

static jp_recon_slot_t *slot_of(jp_recon_win_t *w, int64_t index)
{
    return &w->slot[index % w->width];
}

static void on_page(jp_recon_run_t *run, jp_recon_call_t *c, const jp_http_resp_t *resp)
{
    jp_recon_win_t *w = &run->win;
    w->fetching--;
    if (!w->active || (w->limit >= 0 && c->index >= w->limit) || c->index < w->next_proc) {
        win_pump(run); /* a page past the end: dropped */
        return;
    }
    if (resp->err != JP_OK) { /* no answer, retries spent */
        fail_resp(run, c->req, resp);
        return;
    }
    jp_recon_slot_t *s = slot_of(w, c->index);
    s->body = malloc(resp->body_len + 1);
    if (!s->body) {
        jp_recon__fail(run, JP_OUTCOME_RETRY, JP_CLASS_FATAL, "out_of_memory", "out of memory");
        return;
    }
    memcpy(s->body, resp->body ? resp->body : "", resp->body_len);
    s->body[resp->body_len] = '\0';
    s->len = resp->body_len;
    /* A non-2xx status here is final (retries are over): the phase decides (a 404 may mean
     * that what it reads is gone). */
    s->status = resp->status;
    s->state = JP_RECON__SLOT_READY;
    win_pump(run);
}

static void win_pump(jp_recon_run_t *run)
{
    jp_recon_win_t *w = &run->win;
    if (w->pumping) {
        w->again = true;
        return;
    }
    w->pumping = true;
    do {
        w->again = false;
        while (!jp_recon__stopped(run) && w->active && w->fetching < w->width) {
            int64_t i = w->next_fetch;
            if (w->limit >= 0 ? i >= w->limit : i > w->next_proc)
                break;
            if (i - w->next_proc >= w->width || slot_of(w, i)->state != JP_RECON__SLOT_FREE)
                break;
            jp_jira_req_t *req = NULL;
            char why[512];
            jp_err_t err = w->build(run, i, &req, why, sizeof(why));
            jp_recon_slot_t *s = slot_of(w, i);
            s->state = JP_RECON__SLOT_FETCHING;
            s->index = i;
            w->fetching++;
            w->next_fetch++;
            jp_recon__call(run, err, req, why, on_page, i);
        }
        if (jp_recon__stopped(run) || !w->active)
            break;
        jp_recon_slot_t *s = slot_of(w, w->next_proc);
        if (!w->busy && s->state == JP_RECON__SLOT_READY && s->index == w->next_proc) {
            if (run->open_batches >= JP_RECON__OPEN_BATCHES) {
                run->kick = win_pump; /* Kafka is behind: wait for confirmations */
                break;
            }
            w->busy = true;
            w->process(run, w->next_proc, s->status, s->body, s->len);
            continue;
        }
        if (!w->busy && w->limit >= 0 && w->next_proc >= w->limit && w->fetching == 0) {
            w->active = false;
            w->pumping = false;
            w->done(run);
            return;
        }
    } while (w->again);
    w->pumping = false;
}

void jp_recon__win_start(jp_recon_run_t *run, jp_recon__build_t *build,
                         jp_recon__process_t *process, jp_recon__cont_t *done, int64_t first,
                         int64_t limit)
{
    jp_recon_win_t *w = &run->win;
    win_clear(w);
    w->width = run->r->cfg->recon.page_concurrency;
    if (w->width < 1 || w->width > JP_RECON_WINDOW_MAX)
        w->width = w->width < 1 ? 1 : JP_RECON_WINDOW_MAX;
    w->next_fetch = w->next_proc = first;
    w->limit = limit;
    w->fetching = 0;
    w->busy = false;
    w->build = build;
    w->process = process;
    w->done = done;
    w->active = true;
    win_pump(run);
}

void jp_recon__win_limit(jp_recon_run_t *run, int64_t limit)
{
    run->win.limit = limit;
    if (run->win.active)
        win_pump(run); /* fetch ahead while this unit is processed */
}

void jp_recon__win_next(jp_recon_run_t *run)
{
    jp_recon_win_t *w = &run->win;
    if (!w->active)
        return;
    jp_recon_slot_t *s = slot_of(w, w->next_proc);
    free(s->body);
    s->body = NULL;
    s->state = JP_RECON__SLOT_FREE;
    w->next_proc++;
    w->busy = false;
    win_pump(run);
}

/* ---- batches and checkpoints ---------------------------------------------------------------- */

jp_recon_batch_t *jp_recon__batch_open(jp_recon_run_t *run)
{
    jp_recon_batch_t *b = calloc(1, sizeof(*b));
    if (!b) {
        jp_recon__fail(run, JP_OUTCOME_RETRY, JP_CLASS_FATAL, "out_of_memory", "out of memory");
        return NULL;
    }
    b->run = run;
    b->pending = 1;
    if (run->btail)
        run->btail->next = b;
    else
        run->bhead = b;
    run->btail = b;
    run->open_batches++;
    return b;
}

void jp_recon__batch_close(jp_recon_run_t *run, jp_recon_batch_t *b)
{
    if (!b)
        return;
    b->snap = run->ck;
    memset(&b->snap.def, 0, sizeof(b->snap.def));
    b->closed = true;
    b->pending--;
    batch_check(run);
}

void jp_recon__when_drained(jp_recon_run_t *run, bool all, jp_recon__cont_t *cont)
{
    if (jp_recon__stopped(run))
        return;
    if (all ? run->bhead == NULL : run->open_batches < JP_RECON__OPEN_BATCHES) {
        cont(run);
        return;
    }
    run->kick = cont;
}

static void batch_pop(jp_recon_run_t *run)
{
    jp_recon_batch_t *b = run->bhead;
    run->bhead = b->next;
    if (!run->bhead)
        run->btail = NULL;
    run->open_batches--;
    free(b);
}

static void finish(jp_recon_run_t *run);

static void on_ckpt(jp_redis_t *rd, const redisReply *reply, jp_err_t err, const char *errstr,
                    void *opaque)
{
    (void)rd;
    jp_recon_batch_t *upto = opaque;
    jp_recon_run_t *run = upto->run;
    run->ckpt_writing = false;
    if (!jp_recon__stopped(run)) {
        if (err != JP_OK) {
            fail_redis(run, "writing the checkpoint", errstr);
        } else if (reply->type != REDIS_REPLY_INTEGER || reply->integer != 1) {
            run->lease_held = false;
            jp_recon__fail(run, JP_OUTCOME_RETRY, JP_CLASS_RETRIABLE, "lease_lost",
                           "reconciliation %s: another worker took the run over",
                           run->ck.def.recon_id);
        } else {
            jp_recon_batch_t *b;
            do {
                b = run->bhead;
                batch_pop(run);
            } while (b != upto);
            batch_check(run);
        }
    }
    run_unref(run);
}

static void ckpt_write(jp_recon_run_t *run, jp_recon_batch_t *upto)
{
    jp_recon_t *r = run->r;
    jp_recon_ckpt_t tmp = upto->snap;
    tmp.def = run->ck.def; /* shallow: not cleared */
    char *text = jp_recon_ckpt_encode(&tmp);
    char lease_ms[32], ttl[32], why[256];
    snprintf(lease_ms, sizeof(lease_ms), "%d", r->cfg->recon.lease_s * 1000);
    snprintf(ttl, sizeof(ttl), "%d", r->cfg->worker.outcome_ttl_s);
    const char *keys[] = {run->k_lease, run->k_run, run->k_seen, run->k_match};
    const char *args[] = {run->lease_value, lease_ms, text ? text : "", ttl};
    if (!text) {
        jp_recon__fail(run, JP_OUTCOME_RETRY, JP_CLASS_FATAL, "out_of_memory", "out of memory");
        return;
    }
    jp_err_t err =
        jp_redis_evalsha(r->redis, r->s_ckpt, on_ckpt, upto, 4, keys, 4, args, why, sizeof(why));
    free(text);
    if (err != JP_OK) {
        fail_redis(run, "writing the checkpoint", why);
        return;
    }
    run->ckpt_writing = true;
    run_ref(run);
}

static void batch_check(jp_recon_run_t *run)
{
    if (jp_recon__stopped(run) || run->ckpt_writing)
        return;
    jp_recon_batch_t *b = run->bhead, *upto = NULL;
    while (b && b->closed && b->pending == 0) {
        if (b->failed) {
            jp_recon__fail(run, JP_OUTCOME_RETRY, JP_CLASS_RETRIABLE, "publish_failed",
                           "reconciliation %s: a record or its Redis state was not confirmed; the "
                           "run resumes from its last checkpoint",
                           run->ck.def.recon_id);
            return;
        }
        if (b->completed_record) {
            if (upto)
                break; /* the checkpoints before it first */
            finish(run);
            return;
        }
        upto = b;
        b = b->next;
    }
    if (upto) {
        ckpt_write(run, upto);
        return;
    }
    jp_recon__cont_t *k = run->kick;
    if (k && (run->bhead == NULL || run->open_batches < JP_RECON__OPEN_BATCHES)) {
        run->kick = NULL;
        jp_recon__when_drained(run, false, k);
    }
}

/* ---- publishing and Redis writes of a batch ------------------------------------------------ */

static void batch_settled(jp_recon_batch_t *b, bool ok)
{
    jp_recon_run_t *run = b->run;
    if (!ok)
        b->failed = true;
    b->pending--;
    if (!jp_recon__stopped(run))
        batch_check(run);
    run_unref(run);
}

static void on_delivered(jp_err_t err, jp_class_t cls, const char *errstr, void *opaque)
{
    jp_recon_batch_t *b = opaque;
    jp_recon_run_t *run = b->run;
    if (err != JP_OK && !jp_recon__stopped(run)) {
        jp_log_ctx_t ctx = run_ctx(run);
        jp_log(JP_LOG_WARN, COMPONENT, &ctx, "reconciliation %s: record not delivered (%s): %s",
               run->ck.def.recon_id, jp_class_name(cls), errstr);
    }
    if (err == JP_OK && run->r)
        run->r->st.records++;
    batch_settled(b, err == JP_OK);
}

void jp_recon__publish(jp_recon_run_t *run, jp_recon_batch_t *b, json_t *record, const char *key)
{
    if (jp_recon__stopped(run) || !b) {
        json_decref(record);
        return;
    }
    size_t len = 0;
    char *text = record ? jp_record_dump(record, &len) : NULL;
    json_decref(record);
    if (!text) {
        jp_recon__fail(run, JP_OUTCOME_RETRY, JP_CLASS_FATAL, "out_of_memory",
                       "out of memory building a record");
        return;
    }
    static const char ce[] = "application/cloudevents+json";
    jp_kafka_header_t hdr = {(char *)"content-type", (void *)ce, sizeof(ce) - 1};
    char why[256];
    jp_recon_t *r = run->r;
    jp_err_t err = jp_kafka_out_produce(r->out, r->cfg->topics.recon, key, strlen(key), text, len,
                                        &hdr, 1, on_delivered, b, why, sizeof(why));
    free(text);
    if (err != JP_OK) {
        jp_recon__fail(run, JP_OUTCOME_RETRY, JP_CLASS_RETRIABLE, "publish", "producing to %s: %s",
                       r->cfg->topics.recon, why);
        return;
    }
    b->pending++;
    run_ref(run);
}

static void on_batch_write(jp_redis_t *rd, const redisReply *reply, jp_err_t err,
                           const char *errstr, void *opaque)
{
    (void)rd;
    (void)reply;
    jp_recon_batch_t *b = opaque;
    if (err != JP_OK && !jp_recon__stopped(b->run)) {
        jp_log_ctx_t ctx = run_ctx(b->run);
        jp_log(JP_LOG_WARN, COMPONENT, &ctx, "reconciliation %s: Redis write failed: %s",
               b->run->ck.def.recon_id, errstr);
    }
    batch_settled(b, err == JP_OK);
}

/* A command (argv with lengths) whose success the batch waits for. */
static void batch_write(jp_recon_run_t *run, jp_recon_batch_t *b, int argc, const char **argv,
                        const size_t *lens)
{
    char why[256];
    if (jp_redis_commandargv(run->r->redis, on_batch_write, b, argc, argv, lens, why,
                             sizeof(why)) != JP_OK) {
        fail_redis(run, "writing the run's state", why);
        return;
    }
    b->pending++;
    run_ref(run);
}

void jp_recon__match_add(jp_recon_run_t *run, jp_recon_batch_t *b, char **ids, size_t n)
{
    const char **argv = n && !jp_recon__stopped(run) && b ? calloc(n + 2, sizeof(*argv)) : NULL;
    if (argv) {
        argv[0] = "SADD";
        argv[1] = run->k_match;
        for (size_t i = 0; i < n; i++)
            argv[i + 2] = ids[i];
        batch_write(run, b, (int)n + 2, argv, NULL);
    } else if (n && !jp_recon__stopped(run) && b) {
        jp_recon__fail(run, JP_OUTCOME_RETRY, JP_CLASS_FATAL, "out_of_memory", "out of memory");
    }
    free(argv);
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
}

typedef struct member_req {
    jp_recon_run_t *run;
    size_t n;
    jp_recon__member_cb *cb;
    void *opaque;
} member_req_t;

static void on_members(jp_redis_t *rd, const redisReply *reply, jp_err_t err, const char *errstr,
                       void *opaque)
{
    (void)rd;
    member_req_t *m = opaque;
    jp_recon_run_t *run = m->run;
    bool *in = NULL;
    if (!jp_recon__stopped(run)) {
        if (err != JP_OK || reply->type != REDIS_REPLY_ARRAY || reply->elements != m->n)
            fail_redis(run, "checking memberships", err ? errstr : "unexpected reply");
        else if (!(in = calloc(m->n ? m->n : 1, sizeof(*in))))
            jp_recon__fail(run, JP_OUTCOME_RETRY, JP_CLASS_FATAL, "out_of_memory", "out of memory");
        for (size_t i = 0; in && i < m->n; i++)
            in[i] = reply->element[i]->type == REDIS_REPLY_INTEGER && reply->element[i]->integer;
    }
    m->cb(run, in, m->opaque);
    free(in);
    free(m);
    run_unref(run);
}

void jp_recon__match_check(jp_recon_run_t *run, const char *const *ids, size_t n,
                           jp_recon__member_cb *cb, void *opaque)
{
    if (n == 0) {
        bool none = false;
        cb(run, jp_recon__stopped(run) ? NULL : &none, opaque);
        return;
    }
    member_req_t *m = calloc(1, sizeof(*m));
    const char **argv = calloc(n + 2, sizeof(*argv));
    char why[256] = "out of memory";
    if (m && argv) {
        argv[0] = "SMISMEMBER";
        argv[1] = run->k_match;
        for (size_t i = 0; i < n; i++)
            argv[i + 2] = ids[i];
        m->run = run;
        m->n = n;
        m->cb = cb;
        m->opaque = opaque;
        if (jp_redis_commandargv(run->r->redis, on_members, m, (int)n + 2, argv, NULL, why,
                                 sizeof(why)) == JP_OK) {
            free(argv);
            run_ref(run);
            return;
        }
    }
    free(argv);
    free(m);
    fail_redis(run, "checking memberships", why);
    cb(run, NULL, opaque);
}

/* ---- emitting items ---------------------------------------------------------------------------
 */

typedef struct emit_req {
    jp_recon_run_t *run;
    jp_recon_batch_t *b;
    jp_recon_item_t *items;
    size_t n;
    char **keep;
    size_t nkeep;
    jp_recon__cont_t *cont;
} emit_req_t;

static void emit_free(emit_req_t *e)
{
    for (size_t i = 0; i < e->n; i++)
        jp_recon_item_clear(&e->items[i]);
    free(e->items);
    for (size_t i = 0; i < e->nkeep; i++)
        free(e->keep[i]);
    free(e->keep);
    free(e);
}

static const redisReply *prev_at(const redisReply *reply, size_t i)
{
    if (!reply || reply->type != REDIS_REPLY_ARRAY || i >= reply->elements)
        return NULL;
    const redisReply *e = reply->element[i];
    return e->type == REDIS_REPLY_STRING ? e : NULL;
}

static void emit_decide(emit_req_t *e, const redisReply *prev)
{
    jp_recon_run_t *run = e->run;
    jp_recon_t *r = run->r;
    jp_recon_ckpt_t *ck = &run->ck;
    bool tracks = jp_recon_def_tracks(&ck->def);
    bool incremental = ck->def.mode == JP_RECON_INCREMENTAL;
    size_t npairs = 0, cap = 2 + 2 * (e->n + e->nkeep);
    const char **argv = tracks ? calloc(cap, sizeof(*argv)) : NULL;
    size_t *lens = tracks ? calloc(cap, sizeof(*lens)) : NULL;
    char **vals = tracks ? calloc(e->n ? e->n : 1, sizeof(*vals)) : NULL;
    if (tracks && (!argv || !lens || !vals)) {
        jp_recon__fail(run, JP_OUTCOME_RETRY, JP_CLASS_FATAL, "out_of_memory", "out of memory");
        goto out;
    }
    int64_t now = jp_recon__wall_ms();
    for (size_t i = 0; i < e->n && !jp_recon__stopped(run); i++) {
        jp_recon_item_t *it = &e->items[i];
        const redisReply *p = prev_at(prev, i);
        jp_recon_change_t ch = jp_recon_diff(p ? p->str : NULL, p ? p->len : 0, it->fp);
        if (incremental && ch == JP_RECON_UNCHANGED) {
            ck->counts.unchanged++;
        } else {
            json_t *rec =
                jp_recon_record_item(&ck->def, r->cfg->worker.instance_id, it, ck->seq, "upsert",
                                     incremental ? jp_recon_change_name(ch) : NULL, now);
            ck->seq++;
            ck->counts.emitted++;
            jp_recon__publish(run, e->b, rec, it->key);
        }
        if (tracks) {
            size_t cap_v = JP_RECON_FP_BYTES + strlen(it->ident);
            vals[i] = malloc(cap_v ? cap_v : 1);
            size_t vlen = vals[i] ? jp_recon_fp_value(it->fp, it->ident, vals[i], cap_v) : 0;
            if (!vlen) {
                jp_recon__fail(run, JP_OUTCOME_RETRY, JP_CLASS_FATAL, "out_of_memory",
                               "out of memory");
                break;
            }
            argv[2 + 2 * npairs] = it->field;
            lens[2 + 2 * npairs] = strlen(it->field);
            argv[3 + 2 * npairs] = vals[i];
            lens[3 + 2 * npairs] = vlen;
            npairs++;
        }
    }
    for (size_t j = 0; tracks && j < e->nkeep; j++) {
        const redisReply *p = prev_at(prev, e->n + j);
        if (!p)
            continue; /* never stored: nothing to keep */
        argv[2 + 2 * npairs] = e->keep[j];
        lens[2 + 2 * npairs] = strlen(e->keep[j]);
        argv[3 + 2 * npairs] = p->str;
        lens[3 + 2 * npairs] = p->len;
        npairs++;
    }
    if (tracks && npairs && !jp_recon__stopped(run)) {
        argv[0] = "HSET";
        lens[0] = 4;
        argv[1] = run->k_seen;
        lens[1] = strlen(run->k_seen);
        batch_write(run, e->b, (int)(2 + 2 * npairs), argv, lens);
    }
out:
    for (size_t i = 0; vals && i < e->n; i++)
        free(vals[i]);
    free(vals);
    free(argv);
    free(lens);
    jp_recon__cont_t *cont = e->cont;
    emit_free(e);
    if (!jp_recon__stopped(run))
        cont(run);
}

static void on_prev(jp_redis_t *rd, const redisReply *reply, jp_err_t err, const char *errstr,
                    void *opaque)
{
    (void)rd;
    emit_req_t *e = opaque;
    jp_recon_run_t *run = e->run;
    if (jp_recon__stopped(run)) {
        emit_free(e);
    } else if (err != JP_OK || reply->type != REDIS_REPLY_ARRAY) {
        fail_redis(run, "reading the previous fingerprints", err ? errstr : "unexpected reply");
        emit_free(e);
    } else {
        emit_decide(e, reply);
    }
    run_unref(run);
}

void jp_recon__emit(jp_recon_run_t *run, jp_recon_batch_t *b, jp_recon_item_t *items, size_t n,
                    char **keep, size_t nkeep, jp_recon__cont_t *cont)
{
    emit_req_t *e = calloc(1, sizeof(*e));
    if (!e) {
        for (size_t i = 0; i < n; i++)
            jp_recon_item_clear(&items[i]);
        free(items);
        for (size_t i = 0; i < nkeep; i++)
            free(keep[i]);
        free(keep);
        jp_recon__fail(run, JP_OUTCOME_RETRY, JP_CLASS_FATAL, "out_of_memory", "out of memory");
        return;
    }
    *e = (emit_req_t){run, b, items, n, keep, nkeep, cont};
    if (jp_recon__stopped(run) || !b) {
        emit_free(e);
        return;
    }
    if (!jp_recon_def_tracks(&run->ck.def) || n + nkeep == 0) {
        emit_decide(e, NULL);
        return;
    }
    const char **argv = calloc(n + nkeep + 2, sizeof(*argv));
    char why[256] = "out of memory";
    if (argv) {
        argv[0] = "HMGET";
        argv[1] = run->k_fp;
        for (size_t i = 0; i < n; i++)
            argv[i + 2] = items[i].field;
        for (size_t j = 0; j < nkeep; j++)
            argv[n + j + 2] = keep[j];
        if (jp_redis_commandargv(run->r->redis, on_prev, e, (int)(n + nkeep + 2), argv, NULL, why,
                                 sizeof(why)) == JP_OK) {
            free(argv);
            run_ref(run);
            return;
        }
    }
    free(argv);
    emit_free(e);
    fail_redis(run, "reading the previous fingerprints", why);
}

/* ---- removal scans ----------------------------------------------------------------------------
 */

typedef struct scan_req {
    jp_recon_run_t *run;
    jp_recon__scan_cb *cb;
} scan_req_t;

static void on_scan(jp_redis_t *rd, const redisReply *reply, jp_err_t err, const char *errstr,
                    void *opaque)
{
    (void)rd;
    scan_req_t *s = opaque;
    jp_recon_run_t *run = s->run;
    if (!jp_recon__stopped(run)) {
        if (err != JP_OK || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
            reply->element[0]->type != REDIS_REPLY_STRING ||
            reply->element[1]->type != REDIS_REPLY_ARRAY)
            fail_redis(run, "scanning the previous fingerprints",
                       err ? errstr : "unexpected reply");
        else
            s->cb(run, reply->element[0]->str, reply->element[1]);
    }
    free(s);
    run_unref(run);
}

void jp_recon__scan(jp_recon_run_t *run, jp_recon__scan_cb *cb)
{
    jp_recon_t *r = run->r;
    scan_req_t *s = calloc(1, sizeof(*s));
    const char *keys[] = {run->k_fp, run->k_seen};
    const char *args[] = {run->ck.scan, "500"};
    char why[256] = "out of memory";
    if (s) {
        s->run = run;
        s->cb = cb;
        if (jp_redis_evalsha(r->redis, r->s_removed, on_scan, s, 2, keys, 2, args, why,
                             sizeof(why)) == JP_OK) {
            run_ref(run);
            return;
        }
    }
    free(s);
    fail_redis(run, "scanning the previous fingerprints", why);
}

/* ---- phases and completion --------------------------------------------------------------------
 */

void jp_recon__phase_done(jp_recon_run_t *run)
{
    if (jp_recon__stopped(run))
        return;
    jp_recon_ckpt_phase(&run->ck, jp_recon_next_phase(&run->ck.def, run->ck.phase));
    jp_recon__batch_close(run, jp_recon__batch_open(run));
    run_phase(run);
}

static void start_phase(jp_recon_run_t *run)
{
    jp_recon_batch_t *b = jp_recon__batch_open(run);
    char *key = jp_recon_run_key(&run->ck.def);
    if (!key) {
        jp_recon__fail(run, JP_OUTCOME_RETRY, JP_CLASS_FATAL, "out_of_memory", "out of memory");
        return;
    }
    jp_recon__publish(
        run, b,
        jp_recon_record_started(&run->ck.def, run->r->cfg->worker.instance_id, run->ck.started_ms),
        key);
    free(key);
    jp_recon_ckpt_phase(&run->ck, jp_recon_next_phase(&run->ck.def, JP_RECON_PHASE_START));
    jp_recon__batch_close(run, b);
    run_phase(run);
}

static void completing(jp_recon_run_t *run)
{
    if (jp_recon__stopped(run))
        return;
    if (run->bhead) {
        jp_recon__when_drained(run, true, completing);
        return;
    }
    jp_recon_ckpt_t *ck = &run->ck;
    if (ck->completed_ms == 0) {
        /* Fixed before `completed` is first published, so any repeat is the same record. */
        ck->completed_ms = jp_recon__wall_ms();
        ck->duration_ms = ck->completed_ms > ck->started_ms ? ck->completed_ms - ck->started_ms : 0;
        jp_recon__batch_close(run, jp_recon__batch_open(run));
        jp_recon__when_drained(run, true, completing);
        return;
    }
    char *key = jp_recon_run_key(&ck->def);
    jp_recon_batch_t *b = key ? jp_recon__batch_open(run) : NULL;
    if (!b) {
        free(key);
        jp_recon__fail(run, JP_OUTCOME_RETRY, JP_CLASS_FATAL, "out_of_memory", "out of memory");
        return;
    }
    b->completed_record = true;
    jp_recon__publish(run, b, jp_recon_record_completed(ck, run->r->cfg->worker.instance_id), key);
    free(key);
    jp_recon__batch_close(run, b);
}

static void run_phase(jp_recon_run_t *run)
{
    if (jp_recon__stopped(run))
        return;
    switch (run->ck.phase) {
    case JP_RECON_PHASE_START:
        start_phase(run);
        break;
    case JP_RECON_PHASE_ACCOUNTS:
        jp_recon__accounts_begin(run);
        break;
    case JP_RECON_PHASE_GROUPS:
        jp_recon__groups_begin(run);
        break;
    case JP_RECON_PHASE_ROLES:
        jp_recon__roles_begin(run);
        break;
    case JP_RECON_PHASE_REMOVALS:
        jp_recon__removals_begin(run);
        break;
    case JP_RECON_PHASE_COMPLETING:
        completing(run);
        break;
    }
}

static void counts_text(const jp_recon_counts_t *n, char *buf, size_t size)
{
    snprintf(buf, size, "read %lld, emitted %lld, unchanged %lld, removed %lld, errors %lld",
             (long long)n->read, (long long)n->emitted, (long long)n->unchanged,
             (long long)n->removed, (long long)n->errors);
}

static void on_finish(jp_redis_t *rd, const redisReply *reply, jp_err_t err, const char *errstr,
                      void *opaque)
{
    (void)rd;
    jp_recon_run_t *run = opaque;
    if (!jp_recon__stopped(run)) {
        if (err != JP_OK || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) {
            fail_redis(run, "marking the run done", err ? errstr : "unexpected reply");
        } else {
            char counts[256];
            jp_recon_ckpt_t *ck = &run->ck;
            counts_text(&ck->counts, counts, sizeof(counts));
            bool moved =
                reply->element[1]->type == REDIS_REPLY_INTEGER && reply->element[1]->integer == 1;
            char detail[640];
            snprintf(detail, sizeof(detail), "completed (%s%s) in %lld ms: %s%s",
                     jp_recon_mode_name(ck->def.mode), run->resumed ? ", resumed" : "",
                     (long long)ck->duration_ms, counts,
                     jp_recon_def_tracks(&ck->def) && !moved
                         ? "; another run of the scope completed meanwhile and keeps the "
                           "baseline"
                         : "");
            free(run->out->detail);
            run->out->detail = strdup(detail);
            run->out->status = JP_OUTCOME_SUCCEEDED;
            run->lease_held = false; /* the script gave it back */
            run->r->st.completed++;
            run_end(run);
        }
    }
    run_unref(run);
}

static void finish(jp_recon_run_t *run)
{
    jp_recon_t *r = run->r;
    jp_recon_ckpt_t *ck = &run->ck;
    json_t *done = json_pack(
        "{s:s, s:s, s:s, s:I, s:I, s:I, s:{s:I, s:I, s:I, s:I, s:I}}", "status", "completed",
        "eventId", ck->def.event_id, "mode", jp_recon_mode_name(ck->def.mode), "startedMs",
        (json_int_t)ck->started_ms, "completedMs", (json_int_t)ck->completed_ms, "durationMs",
        (json_int_t)ck->duration_ms, "counts", "read", (json_int_t)ck->counts.read, "emitted",
        (json_int_t)ck->counts.emitted, "unchanged", (json_int_t)ck->counts.unchanged, "removed",
        (json_int_t)ck->counts.removed, "errors", (json_int_t)ck->counts.errors);
    char *text = done ? json_dumps(done, JSON_COMPACT) : NULL;
    json_decref(done);
    if (!text) {
        jp_recon__fail(run, JP_OUTCOME_RETRY, JP_CLASS_FATAL, "out_of_memory", "out of memory");
        return;
    }
    char ttl[32], base[32], why[256];
    snprintf(ttl, sizeof(ttl), "%d", r->cfg->worker.outcome_ttl_s);
    snprintf(base, sizeof(base), "%lld", (long long)ck->base);
    const char *keys[] = {run->k_done,  run->k_run,   run->k_seen, run->k_fp,
                          run->k_match, run->k_lease, run->k_gen};
    const char *args[] = {text, ttl, run->lease_value, jp_recon_def_tracks(&ck->def) ? "1" : "0",
                          base};
    jp_err_t err =
        jp_redis_evalsha(r->redis, r->s_finish, on_finish, run, 7, keys, 5, args, why, sizeof(why));
    free(text);
    if (err != JP_OK) {
        fail_redis(run, "marking the run done", why);
        return;
    }
    run_ref(run);
}

/* ---- the start: done marker, checkpoint, lease ------------------------------------------------
 */

static char *key_of(const jp_recon_t *r, const char *site, const char *kind, const char *id)
{
    const char *prefix = r->cfg->redis.key_prefix ? r->cfg->redis.key_prefix : "";
    size_t n = strlen(prefix) + strlen(site) + strlen(kind) + strlen(id) + 16;
    char *k = malloc(n);
    if (k)
        snprintf(k, n, "%srecon:{%s}:%s:%s", prefix, site, kind, id);
    return k;
}

static void on_lease(jp_redis_t *rd, const redisReply *reply, jp_err_t err, const char *errstr,
                     void *opaque)
{
    (void)rd;
    jp_recon_run_t *run = opaque;
    run->renewing = false;
    if (jp_recon__stopped(run)) {
        run_unref(run);
        return;
    }
    bool was_held = run->lease_held;
    if (err != JP_OK || reply->type != REDIS_REPLY_ARRAY || reply->elements != 4 ||
        reply->element[0]->type != REDIS_REPLY_INTEGER) {
        fail_redis(run, "taking the run's lease", err ? errstr : "unexpected reply");
    } else if (reply->element[0]->integer != 1) {
        long long pttl =
            reply->element[1]->type == REDIS_REPLY_INTEGER ? reply->element[1]->integer : -1;
        const char *holder =
            reply->element[2]->type == REDIS_REPLY_STRING ? reply->element[2]->str : "?";
        size_t n = strcspn(holder, " ");
        run->lease_held = false;
        jp_recon__fail(run, JP_OUTCOME_RETRY, JP_CLASS_RETRIABLE, was_held ? "lease_lost" : "busy",
                       "reconciliation %s %s another worker (%.*s); %lld ms left on its lease",
                       run->ck.def.recon_id, was_held ? "was taken over by" : "runs on", (int)n,
                       holder, pttl);
        if (!was_held)
            run->out->retry_after_ms = pttl > 0 ? pttl : 1000;
    } else {
        run->lease_held = true;
        run->lease_due_ms = mono_ms() + run->r->cfg->recon.lease_s * 1000 / 3;
        if (!was_held) {
            jp_recon_ckpt_t *ck = &run->ck;
            jp_log_ctx_t ctx = run_ctx(run);
            run->r->st.started++;
            jp_log(JP_LOG_INFO, COMPONENT, &ctx,
                   "reconciliation %s (%s, site %s, scope %s) %s at %s, seq %lld, attempt %d",
                   ck->def.recon_id, jp_recon_mode_name(ck->def.mode), ck->def.site, ck->def.scope,
                   run->resumed ? "resumed" : "started", jp_recon_phase_name(ck->phase),
                   (long long)ck->seq, run->attempt);
            if (!run->resumed) {
                /* A fresh run diffs against the baseline as it is now (a resumed run keeps
                 * the generation it started with). */
                const redisReply *g = reply->element[3];
                ck->base = g->type == REDIS_REPLY_STRING ? strtoll(g->str, NULL, 10) : 0;
                /* No state of an earlier attempt without a checkpoint counts. */
                jp_recon_batch_t *b = jp_recon__batch_open(run);
                const char *argv[] = {"DEL", run->k_seen, run->k_match};
                if (b)
                    batch_write(run, b, 3, argv, NULL);
                jp_recon__batch_close(run, b);
            }
            run_phase(run);
        }
        timer_arm(run);
    }
    run_unref(run);
}

static void lease_send(jp_recon_run_t *run)
{
    jp_recon_t *r = run->r;
    char ms[32], why[256];
    snprintf(ms, sizeof(ms), "%d", r->cfg->recon.lease_s * 1000);
    const char *keys[] = {run->k_lease, run->k_gen};
    const char *args[] = {run->lease_value, ms};
    if (jp_redis_evalsha(r->redis, r->s_lease, on_lease, run, 2, keys, 2, args, why, sizeof(why)) !=
        JP_OK) {
        fail_redis(run, "taking the run's lease", why);
        return;
    }
    run->renewing = true;
    run_ref(run);
}

static void lease_renew(jp_recon_run_t *run)
{
    lease_send(run);
}

static bool scope_keys(jp_recon_run_t *run)
{
    jp_recon_t *r = run->r;
    char hash[33];
    jp_recon_scope_hash(run->ck.def.scope, hash);
    size_t n = strlen(r->token) + strlen(run->ck.def.recon_id) + 2;
    run->lease_value = malloc(n);
    if (run->lease_value)
        snprintf(run->lease_value, n, "%s %s", r->token, run->ck.def.recon_id);
    run->k_lease = key_of(r, run->ck.def.site, "lease", run->ck.def.recon_id);
    run->k_fp = key_of(r, run->ck.def.site, "fp", hash);
    run->k_gen = key_of(r, run->ck.def.site, "fpgen", hash);
    return run->lease_value && run->k_lease && run->k_fp && run->k_gen;
}

static void on_ckpt_loaded(jp_redis_t *rd, const redisReply *reply, jp_err_t err,
                           const char *errstr, void *opaque)
{
    (void)rd;
    jp_recon_run_t *run = opaque;
    if (jp_recon__stopped(run)) {
        run_unref(run);
        return;
    }
    if (err != JP_OK) {
        fail_redis(run, "reading the checkpoint", errstr);
    } else {
        if (reply->type == REDIS_REPLY_STRING) {
            jp_recon_ckpt_t c;
            char why[256];
            if (jp_recon_ckpt_decode(reply->str, reply->len, &c, why, sizeof(why)) == JP_OK &&
                !strcmp(c.def.recon_id, run->ck.def.recon_id) &&
                !strcmp(c.def.site, run->ck.def.site)) {
                jp_recon_ckpt_clear(&run->ck);
                run->ck = c;
                run->resumed = true;
            } else {
                jp_recon_ckpt_clear(&c);
                jp_log_ctx_t ctx = run_ctx(run);
                jp_log(JP_LOG_WARN, COMPONENT, &ctx,
                       "reconciliation %s: unreadable checkpoint (%s); starting over",
                       run->ck.def.recon_id, why);
            }
        }
        if (!scope_keys(run))
            jp_recon__fail(run, JP_OUTCOME_RETRY, JP_CLASS_FATAL, "out_of_memory", "out of memory");
        else
            lease_send(run);
    }
    run_unref(run);
}

static void on_done_checked(jp_redis_t *rd, const redisReply *reply, jp_err_t err,
                            const char *errstr, void *opaque)
{
    (void)rd;
    jp_recon_run_t *run = opaque;
    if (jp_recon__stopped(run)) {
        run_unref(run);
        return;
    }
    char why[256];
    if (err != JP_OK) {
        fail_redis(run, "reading whether the run is done", errstr);
    } else if (reply->type == REDIS_REPLY_STRING) {
        json_t *d = json_loadb(reply->str, reply->len, 0, NULL);
        const char *ev = json_string_value(json_object_get(d, "eventId"));
        json_t *n = json_object_get(d, "counts");
        /* This very request ran it (its outcome was not recorded before a crash): it
         * succeeded; another request with the same reconId is answered skipped. */
        bool same = ev && !strcmp(ev, run->ck.def.event_id);
        char detail[512];
        snprintf(detail, sizeof(detail),
                 same ? "reconciliation %s completed (request %s, %s): emitted %lld, removed "
                        "%lld"
                      : "reconciliation %s already completed (request %s, %s): emitted %lld, "
                        "removed %lld; not run again",
                 run->ck.def.recon_id, ev ? ev : "?",
                 json_is_string(json_object_get(d, "mode"))
                     ? json_string_value(json_object_get(d, "mode"))
                     : "?",
                 (long long)json_integer_value(json_object_get(n, "emitted")),
                 (long long)json_integer_value(json_object_get(n, "removed")));
        json_decref(d);
        run->out->status = same ? JP_OUTCOME_SUCCEEDED : JP_OUTCOME_SKIPPED;
        run->out->detail = strdup(detail);
        run_end(run);
    } else if (jp_redis_command(run->r->redis, on_ckpt_loaded, run, why, sizeof(why), "GET %s",
                                run->k_run) != JP_OK) {
        fail_redis(run, "reading the checkpoint", why);
    } else {
        run_ref(run);
    }
    run_unref(run);
}

static void start_steps(jp_recon_run_t *run)
{
    char why[256];
    if (jp_redis_command(run->r->redis, on_done_checked, run, why, sizeof(why), "GET %s",
                         run->k_done) != JP_OK) {
        fail_redis(run, "reading whether the run is done", why);
        return;
    }
    run_ref(run);
}

/* ---- public API ---------------------------------------------------------------------------- */

jp_recon_t *jp_recon_new(const jp_recon_opts_t *opts, char *errstr, size_t errstr_size)
{
    if (!opts || !opts->loop || !opts->http || !opts->redis || !opts->out || !opts->cfg ||
        !opts->mapping) {
        jp_err_set(
            errstr, errstr_size, JP_ERR_INVALID,
            "recon needs a loop, HTTP and Redis clients, a producer, a config and a mapping");
        return NULL;
    }
    int key = jp_attr_parse(opts->cfg->recon.key);
    if (key < 0 || !jp_mapping_reads(opts->mapping, (jp_attr_t)key)) {
        jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                   "recon.key: \"%s\" is not an attribute read from Jira", opts->cfg->recon.key);
        return NULL;
    }
    jp_recon_t *r = calloc(1, sizeof(*r));
    if (!r) {
        jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
        return NULL;
    }
    r->loop = opts->loop;
    r->http = opts->http;
    r->redis = opts->redis;
    r->out = opts->out;
    r->cfg = opts->cfg;
    r->mapping = opts->mapping;
    r->limiter = opts->limiter;
    r->key_attr = (jp_attr_t)key;
    /* The same process keeps its token, so a run it parked and restarts takes its own lease
     * back; another process (even with the same instance id) has another. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(r->token, sizeof(r->token), "%.120s#%08lx%06lx", opts->cfg->worker.instance_id,
             (unsigned long)rand() & 0xffffffffUL, (unsigned long)(ts.tv_nsec / 1000) & 0xffffffUL);
    if (!(r->s_lease = jp_redis_script_new(r->redis, LUA_LEASE, errstr, errstr_size)) ||
        !(r->s_ckpt = jp_redis_script_new(r->redis, LUA_CKPT, errstr, errstr_size)) ||
        !(r->s_removed = jp_redis_script_new(r->redis, LUA_REMOVED, errstr, errstr_size)) ||
        !(r->s_finish = jp_redis_script_new(r->redis, LUA_FINISH, errstr, errstr_size)) ||
        !(r->s_release = jp_redis_script_new(r->redis, LUA_RELEASE, errstr, errstr_size))) {
        free(r);
        return NULL;
    }
    return r;
}

void jp_recon_destroy(jp_recon_t *r)
{
    if (!r)
        return;
    r->destroying = true;
    while (r->runs) {
        jp_recon_run_t *run = r->runs;
        run_ref(run);
        run_unlink(run);
        run->r = NULL; /* orphaned: what comes back frees it */
        jp_recon_cb *cb = run->cb;
        void *opaque = run->opaque;
        jp_outcome_t *out = run->out;
        run->out = NULL;
        if (!run->ending) /* an ending run keeps the outcome it came to */
            jp_outcome_set_error(out, JP_OUTCOME_RETRY, JP_CLASS_RETRIABLE, "cancelled",
                                 "the worker stopped before the reconciliation ended");
        run->ending = true;
        if (run->timer)
            uv_timer_stop(run->timer);
        win_clear(&run->win);
        release_waiting(run);
        run_unref(run);
        cb(out, opaque);
    }
    free(r);
}

size_t jp_recon_in_flight(const jp_recon_t *r)
{
    return r ? atomic_load(&((jp_recon_t *)r)->in_flight) : 0;
}

void jp_recon_stats(const jp_recon_t *r, jp_recon_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!r)
        return;
    jp_recon_t *m = (jp_recon_t *)r; /* atomics are only read */
    out->running = atomic_load(&m->in_flight);
    out->started = atomic_load(&m->st.started);
    out->completed = atomic_load(&m->st.completed);
    out->records = atomic_load(&m->st.records);
    out->calls = atomic_load(&m->st.calls);
    out->retries = atomic_load(&m->st.retries);
}

void jp_recon_suspend(jp_recon_t *r)
{
    if (!r)
        return;
    jp_recon_run_t *next;
    for (jp_recon_run_t *run = r->runs; run; run = next) {
        next = run->next;
        /* A run in COMPLETING reads nothing more from Jira; stopping it could leave its
         * `completed` published but not marked, to be published again by the next owner. */
        if (run->ending || run->ck.phase == JP_RECON_PHASE_COMPLETING)
            continue;
        run_ref(run);
        jp_recon__fail(run, JP_OUTCOME_RETRY, JP_CLASS_RETRIABLE, "suspended",
                       "the worker is stopping; the run resumes from its checkpoint");
        run->out->retry_after_ms = 0;
        run_unref(run); /* may hand the run over and free it */
    }
}

jp_err_t jp_recon_start(jp_recon_t *r, const jp_event_t *ev, int attempt, jp_recon_cb *cb,
                        void *opaque, char *errstr, size_t errstr_size)
{
    if (!r || !ev || !cb || ev->type != JP_EVENT_RECON_REQUEST || r->destroying)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "recon: a recon.request and a callback are needed");
    const jp_site_t *site = ev->site ? jp_config_site(r->cfg, ev->site) : NULL;
    if (!site)
        return jp_err_set(errstr, errstr_size, JP_ERR_NOT_FOUND,
                          "jirasite: \"%s\" is not a configured site", ev->site ? ev->site : "");
    jp_recon_run_t *run = calloc(1, sizeof(*run));
    jp_recon_def_t def;
    if (!run || jp_recon_def_from_event(ev, &def, errstr, errstr_size) != JP_OK) {
        free(run);
        return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
    }
    jp_recon_ckpt_init(&run->ck, &def, jp_recon__wall_ms());
    run->r = r;
    run->cb = cb;
    run->opaque = opaque;
    run->site = site;
    run->attempt = attempt;
    run->started_ns = uv_hrtime();
    run->total = -1;
    run->out = jp_outcome_new(JP_OUTCOME_SUCCEEDED);
    run->timer = malloc(sizeof(*run->timer));
    run->k_run = key_of(r, site->name, "run", run->ck.def.recon_id);
    run->k_done = key_of(r, site->name, "done", run->ck.def.recon_id);
    run->k_seen = key_of(r, site->name, "seen", run->ck.def.recon_id);
    run->k_match = key_of(r, site->name, "match", run->ck.def.recon_id);
    if (!run->out || !run->timer || !run->k_run || !run->k_done || !run->k_seen || !run->k_match ||
        uv_timer_init(r->loop, run->timer) != 0) {
        free(run->timer);
        run->timer = NULL;
        run_free(run);
        return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
    }
    run->timer->data = run;
    jp_outcome_set_jira(run->out, "reconId", run->ck.def.recon_id);
    run->next = r->runs;
    if (r->runs)
        r->runs->prev = run;
    r->runs = run;
    r->in_flight++;
    /* The first step runs from the loop, so the callback never comes from inside this call. */
    uv_timer_start(run->timer, on_timer, 0, 0);
    return JP_OK;
}
