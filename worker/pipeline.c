#include "jiraprov/pipeline.h"

#include "jiraprov/apply.h"
#include "jiraprov/audit.h"
#include "jiraprov/event.h"
#include "jiraprov/http.h"
#include "jiraprov/json.h"
#include "jiraprov/kafka_in.h"
#include "jiraprov/kafka_out.h"
#include "jiraprov/limiter.h"
#include "jiraprov/log.h"
#include "jiraprov/mapping.h"
#include "jiraprov/metrics.h"
#include "jiraprov/outcome.h"
#include "jiraprov/recon.h"
#include "jiraprov/record.h"
#include "jiraprov/redis.h"
#include "jiraprov/sequencer.h"
#include "jiraprov/store.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define COMPONENT "pipeline"
/* Wait before retrying a step that failed on our side (Redis, Kafka produce). */
#define LOCAL_RETRY_MS 1000

typedef struct item {
    struct jp_pipeline *p;
    jp_kafka_msg_t *msg;
    jp_event_t *ev;        /* NULL when the message did not decode */
    char *decode_error;    /* why it did not (dead-letter reason) */
    int attempts;          /* apply attempts made */
    int64_t first_ms;      /* wall clock of the first attempt */
    int64_t started_mono;  /* monotonic ms when first started, for durations */
    json_t *history;       /* [{at, reason, status}] of failed attempts; NULL until one */
    jp_outcome_t *outcome; /* terminal outcome once known */
    int replayed;          /* outcome came from Redis: publish only */
    int deadletter;        /* publish a dead-letter record too */
    int recorded;          /* the terminal outcome is in Redis: only publishing is left */
    int pending;           /* deliveries outstanding */
    int publish_failed;
    int parked;                  /* waiting in the sequencer for its retry time */
    int attempts_loaded;         /* the schedule of earlier runs was read from Redis */
    int attempts_stored;         /* Redis holds attempt state to clear at the end */
    int ever_parked;             /* its overhead would include waiting: not measured */
    uint64_t consumed_ns;        /* uv_hrtime when the consumer handed it over */
    int lookups;                 /* Redis answers still to come (and one for the sender) */
    int lookup_failed;           /* a lookup failed: the event must not be applied */
    char *lookup_error;          /* why (NULL if even that copy failed) */
    jp_outcome_t *found_outcome; /* answers kept until both are in */
    jp_store_attempts_t *found_attempts;
} item_t;

const uint64_t jp_pipeline_overhead_bounds_us[JP_PIPELINE_OVERHEAD_BUCKETS - 1] = {
    100,  200,  300,   400,   500,   600,   700,   800,    900,    1000,   1250,
    1500, 1750, 2000,  2500,  3000,  3500,  4000,  4500,   5000,   6000,   7000,
    8000, 9000, 10000, 15000, 20000, 30000, 50000, 100000, 250000, 500000, 1000000};

struct jp_pipeline {
    uv_loop_t *loop;
    jp_config_t *cfg; /* borrowed; jp_pipeline_reload() updates its reloadable values */
    jp_redis_t *redis;
    jp_store_t *store;
    jp_http_t *http;
    jp_limiter_t *limiter;
    jp_mapping_t *mapping;
    jp_apply_t *apply;
    jp_recon_t *recon; /* recon.request events: runs that end with the same callback */
    jp_seq_t *seq;
    jp_kafka_in_t *in;
    jp_kafka_out_t *out;
    jp_audit_trail_t *audit; /* every audit record is sealed and produced through it */
    uv_timer_t *wake;        /* parked items' next due time */
    uv_timer_t *drain;       /* bound on a revoke or a stop */
    uv_timer_t *tick;        /* copies the limiter's view into the stats each second */
    int paused;
    int stopping;
    int closing;
    int32_t *revoking; /* partitions whose revoke waits for running items */
    size_t revoking_count;
    void (*on_stopped)(void *);
    void *stopped_opaque;
    void (*on_fatal)(const char *, void *);
    void *fatal_opaque;
    struct {
        _Atomic uint64_t consumed, completed[3], deadlettered, replayed, retries, deferred,
            publish_errors, redis_errors, held, parked, in_flight;
        _Atomic uint64_t tokens_granted, tokens_waiting, cooldowns, limiter_errors, tokens_leased,
            lease_lapsed;
        _Atomic int paused, assigned, redis_up, stopping;
    } st;
};

static void pump(jp_pipeline_t *p);
static void start_item(item_t *it);
static void publish_item(item_t *it);

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static jp_log_ctx_t item_ctx(const item_t *it)
{
    jp_log_ctx_t c = {it->ev ? it->ev->id : NULL, it->msg->partition, it->msg->offset};
    return c;
}

static void item_free(item_t *it)
{
    if (!it)
        return;
    atomic_fetch_sub(&it->p->st.held, 1);
    jp_kafka_msg_destroy(it->msg);
    jp_event_destroy(it->ev);
    free(it->decode_error);
    json_decref(it->history);
    jp_outcome_destroy(it->outcome);
    free(it->lookup_error);
    jp_outcome_destroy(it->found_outcome);
    jp_store_attempts_free(it->found_attempts);
    free(it);
}

/* ---- offsets --------------------------------------------------------- */

static void store_offset_cb(int32_t partition, int64_t offset, void *opaque)
{
    jp_pipeline_t *p = opaque;
    char err[256];
    if (jp_kafka_in_store_offset(p->in, partition, offset, err, sizeof(err)) != JP_OK)
        jp_warn(COMPONENT, "storing offset %lld of partition %d: %s", (long long)offset,
                (int)partition, err);
}

static void update_pause(jp_pipeline_t *p)
{
    int want = jp_seq_want_pause(p->seq) || !jp_redis_connected(p->redis) || p->stopping;
    if (want == p->paused)
        return;
    p->paused = want;
    atomic_store(&p->st.paused, want);
    if (want)
        jp_kafka_in_pause(p->in);
    else
        jp_kafka_in_resume(p->in);
    jp_debug(COMPONENT, "consumption %s", want ? "paused" : "resumed");
}

static void maybe_finish_revoke(jp_pipeline_t *p, int force);
static void maybe_finish_stop(jp_pipeline_t *p);
static void close_consumer(jp_pipeline_t *p);

/* Metrics of an item whose records are all delivered: once per item. */
static void observe_done(const item_t *it)
{
    const char *type = it->ev ? jp_event_type_name(it->ev->type) : "invalid";
    if (it->deadletter)
        jp_metrics_event_deadlettered(type, !it->ev                     ? "malformed"
                                            : it->outcome->error_reason ? it->outcome->error_reason
                                                                        : "failed");
    int64_t e2e_ms = it->msg->timestamp_ms >= 0 ? wall_ms() - it->msg->timestamp_ms : -1;
    jp_metrics_event_done(type, (double)(mono_ms() - it->started_mono) / 1e3,
                          e2e_ms < 0 ? -1 : (double)e2e_ms / 1e3);
}

/* The item's outcome is published: its offset may be committed. */
static void item_done(item_t *it)
{
    jp_pipeline_t *p = it->p;
    observe_done(it);
    jp_seq_done(p->seq, it);
    jp_seq_commit_offsets(p->seq, store_offset_cb, p);
    item_free(it);
    update_pause(p);
    maybe_finish_revoke(p, 0);
    maybe_finish_stop(p);
    pump(p);
}

/* Parks an item to run again later; a revoked partition's item is let go:
 * its offset was not committed, so the new owner gets it again. */
static void item_park(item_t *it, int64_t delay_ms)
{
    jp_pipeline_t *p = it->p;
    if (jp_seq_park(p->seq, it, mono_ms() + delay_ms) != JP_OK) {
        item_free(it);
        maybe_finish_revoke(p, 0);
        maybe_finish_stop(p);
        return;
    }
    it->parked = 1;
    it->ever_parked = 1;
    atomic_fetch_add(&p->st.parked, 1);
    /* A parked item no longer runs: a revoke or a stop may be waiting only for it. */
    maybe_finish_revoke(p, 0);
    maybe_finish_stop(p);
    pump(p);
}

/* ---- publishing -------------------------------------------------------- */

static void delivered(jp_err_t err, jp_class_t cls, const char *errstr, void *opaque)
{
    item_t *it = opaque;
    if (err != JP_OK) {
        it->publish_failed = 1;
        atomic_fetch_add(&it->p->st.publish_errors, 1);
        jp_log_ctx_t ctx = item_ctx(it);
        jp_log(JP_LOG_WARN, COMPONENT, &ctx, "publish failed (%s): %s", jp_class_name(cls), errstr);
    }
    if (--it->pending > 0)
        return;
    if (it->publish_failed) {
        /* Republish the whole set later: consumers key on record ids, so a
         * record delivered twice is the same record. */
        it->publish_failed = 0;
        item_park(it, LOCAL_RETRY_MS);
        return;
    }
    item_done(it);
}

static int produce_record(jp_pipeline_t *p, item_t *it, const char *topic, const char *key,
                          json_t *record)
{
    int tracked = it != NULL;
    if (!record)
        return -1;
    size_t len = 0;
    char *text = jp_json_dumps(record, &len);
    json_decref(record);
    if (!text)
        return -1;
    static const char ce[] = "application/cloudevents+json";
    jp_kafka_header_t hdr = {(char *)"content-type", (void *)ce, sizeof(ce) - 1};
    char err[256];
    jp_err_t rc =
        jp_kafka_out_produce(p->out, topic, key, key ? strlen(key) : 0, text, len, &hdr, 1,
                             tracked ? delivered : NULL, tracked ? it : NULL, err, sizeof(err));
    free(text);
    if (rc != JP_OK) {
        atomic_fetch_add(&p->st.publish_errors, 1);
        jp_warn(COMPONENT, "produce to %s: %s", topic, err);
        return -1;
    }
    if (tracked)
        it->pending++;
    return 0;
}

/* tracked: the item's offset waits for the record's delivery. */
static int produce_json(item_t *it, const char *topic, const char *key, json_t *record, int tracked)
{
    return produce_record(it->p, tracked ? it : NULL, topic, key, record);
}

static const char *item_key(const item_t *it)
{
    if (it->ev)
        return it->ev->subject;
    return it->msg->key ? (const char *)it->msg->key : NULL;
}

/* Audit records of the Jira mutations an attempt made; they do not gate the
 * offset (a later attempt or a republish does not repeat them). */
static void publish_calls_audit(item_t *it, const jp_outcome_t *o)
{
    for (size_t i = 0; i < o->call_count; i++)
        if (o->calls[i].mutation)
            jp_audit_trail_call(it->p->audit, it->ev, o, &o->calls[i], NULL, NULL);
}

/* The time the worker itself adds to an event: from the consumer handing the
 * message over to its result going to the producer, minus its Jira calls (sent
 * to answered, as the loop saw them). Only events applied in one attempt that
 * were never parked and reached Jira: waits say nothing about overhead. */
static void record_overhead(item_t *it)
{
    const jp_outcome_t *o = it->outcome;
    if (it->replayed || it->ever_parked || it->attempts != 1 || !o || !o->call_count)
        return;
    int64_t jira_us = 0;
    for (size_t i = 0; i < o->call_count; i++)
        jira_us += o->calls[i].duration_us;
    int64_t us = (int64_t)((uv_hrtime() - it->consumed_ns) / 1000u) - jira_us;
    if (us < 0)
        us = 0;
    jp_metrics_observe(jp_metrics_worker()->event_overhead, NULL, (double)us / 1e6);
}

static void publish_item(item_t *it)
{
    jp_pipeline_t *p = it->p;
    const jp_config_t *cfg = p->cfg;
    const char *id = cfg->worker.instance_id;
    int64_t now = wall_ms();
    int failed = 0;  /* any produce refused at once */
    it->pending = 1; /* held until every produce below was attempted */

    if (it->ev) {
        /* A replayed outcome carries the attempts and duration of its first run. */
        const jp_outcome_t *o = it->outcome;
        failed |=
            produce_json(it, cfg->topics.results, it->ev->subject,
                         jp_record_result(it->ev, o, o->attempts, o->duration_ms, id, now), 1);
        record_overhead(it);
        /* Decisions that change nothing in Jira are audited too: a replay of a
         * recorded outcome counts as skipped (already applied). */
        const char *decision = it->deadletter ? "deadlettered"
                               : (it->replayed || it->outcome->status == JP_OUTCOME_SKIPPED)
                                   ? "skipped"
                                   : NULL;
        if (decision &&
            jp_audit_trail_decision(p->audit, it->ev, it->outcome, decision, delivered, it) == 0)
            it->pending++;
    }
    if (it->deadletter) {
        const jp_kafka_msg_t *m = it->msg;
        const char *reason = it->ev ? it->outcome->error_message : it->decode_error;
        jp_class_t cls = it->ev ? it->outcome->error_class : JP_CLASS_PERMANENT;
        failed |= produce_json(it, cfg->topics.dead_letter, item_key(it),
                               jp_record_deadletter(it->ev, m->topic, m->partition, m->offset,
                                                    m->timestamp_ms, m->key, m->key_len, m->value,
                                                    m->value_len, m->headers, m->header_count,
                                                    reason ? reason : "failed", cls, it->attempts,
                                                    it->history, id, now),
                               1);
        atomic_fetch_add(&p->st.deadlettered, 1);
    }
    if (failed)
        it->publish_failed = 1;
    delivered(JP_OK, JP_CLASS_OK, NULL, it); /* drop the hold */
}

/* ---- recording the terminal outcome ---------------------------------- */

static void outcome_stored(jp_err_t err, const char *errstr, void *opaque)
{
    item_t *it = opaque;
    if (err != JP_OK) {
        atomic_fetch_add(&it->p->st.redis_errors, 1);
        jp_log_ctx_t ctx = item_ctx(it);
        jp_log(JP_LOG_WARN, COMPONENT, &ctx, "recording the outcome: %s", errstr);
        update_pause(it->p);
        item_park(it, LOCAL_RETRY_MS);
        return;
    }
    if (!it->recorded) {
        jp_outcome_status_t s = it->outcome->status;
        int idx = s == JP_OUTCOME_SUCCEEDED ? 0 : s == JP_OUTCOME_SKIPPED ? 1 : 2;
        atomic_fetch_add(&it->p->st.completed[idx], 1);
        jp_metrics_event_completed(jp_event_type_name(it->ev->type), jp_outcome_status_name(s));
        it->recorded = 1;
    }
    if (it->attempts_stored &&
        jp_store_clear_attempts(it->p->store, it->ev->id, NULL, NULL) == JP_OK)
        it->attempts_stored = 0; /* left over otherwise: it expires with the outcome TTL */
    publish_item(it);
}

static void record_outcome(item_t *it)
{
    if (!it->recorded) { /* what the result reports, now and on every replay */
        it->outcome->attempts = it->attempts;
        it->outcome->duration_ms = mono_ms() - it->started_mono;
    }
    it->deadletter = it->outcome->status == JP_OUTCOME_FAILED;
    if (jp_store_put_outcome(it->p->store, it->ev->id, it->outcome, outcome_stored, it) != JP_OK)
        outcome_stored(JP_ERR_REDIS, "Redis is not connected", it);
}

/* ---- retries ----------------------------------------------------------- */

/* Exponential backoff with full jitter; the server's Retry-After is a floor. */
static int64_t backoff_ms(const jp_config_t *cfg, int attempts, int64_t retry_after_ms)
{
    int64_t cap = cfg->retry.base_delay_ms;
    for (int i = 1; i < attempts && cap < cfg->retry.max_delay_ms; i++)
        cap *= 2;
    if (cap > cfg->retry.max_delay_ms)
        cap = cfg->retry.max_delay_ms;
    int64_t delay = (int64_t)((double)cap * ((double)rand() / ((double)RAND_MAX + 1.0)));
    return delay < retry_after_ms ? retry_after_ms : delay;
}

static void history_add(item_t *it, const jp_outcome_t *o)
{
    long status = o->call_count ? o->calls[o->call_count - 1].status : 0;
    if (!it->history && !(it->history = json_array()))
        return;
    json_array_append_new(it->history,
                          json_pack("{s:I, s:s, s:I}", "at", (json_int_t)wall_ms(), "reason",
                                    o->error_reason ? o->error_reason : "unknown", "status",
                                    (json_int_t)status));
}

static void applied(jp_outcome_t *o, void *opaque)
{
    item_t *it = opaque;
    jp_pipeline_t *p = it->p;
    const jp_config_t *cfg = p->cfg;
    jp_log_ctx_t ctx = item_ctx(it);

    atomic_fetch_sub(&p->st.in_flight, 1);
    if (o->status == JP_OUTCOME_DEFERRED) {
        /* The shared budget said wait: not a failure, not an attempt. */
        publish_calls_audit(it, o);
        it->attempts--;
        int64_t delay = o->retry_after_ms > 0 ? o->retry_after_ms : 0;
        jp_log(JP_LOG_DEBUG, COMPONENT, &ctx, "deferred %lld ms: %s", (long long)delay,
               o->error_message ? o->error_message : o->error_reason);
        atomic_fetch_add(&p->st.deferred, 1);
        jp_outcome_destroy(o);
        item_park(it, delay);
        return;
    }
    int audited = 0;
    if (o->status == JP_OUTCOME_RETRY || o->status == JP_OUTCOME_QUARANTINE) {
        publish_calls_audit(it, o);
        audited = 1;
    }
    if (o->status == JP_OUTCOME_QUARANTINE) /* parked, not failed: auditors see why */
        jp_audit_trail_decision(p->audit, it->ev, o, "quarantined", NULL, NULL);
    if (o->status == JP_OUTCOME_RETRY || o->status == JP_OUTCOME_QUARANTINE) {
        history_add(it, o);
        int64_t age_s = (wall_ms() - it->first_ms) / 1000;
        if (o->status == JP_OUTCOME_RETRY &&
            (it->attempts >= cfg->retry.max_attempts || age_s >= cfg->retry.max_age_s)) {
            char msg[768];
            snprintf(msg, sizeof(msg), "gave up after %d attempts over %llds: %s", it->attempts,
                     (long long)age_s, o->error_message ? o->error_message : o->error_reason);
            jp_outcome_set_error(o, JP_OUTCOME_FAILED, JP_CLASS_RETRIABLE, "attempts_exhausted",
                                 msg);
        } else {
            int64_t delay = o->status == JP_OUTCOME_QUARANTINE
                                ? (int64_t)cfg->rate_limits.quarantine_probe_s * 1000
                                : backoff_ms(cfg, it->attempts, o->retry_after_ms);
            jp_log(JP_LOG_INFO, COMPONENT, &ctx, "attempt %d: %s (%s); next in %lld ms",
                   it->attempts, jp_outcome_status_name(o->status),
                   o->error_message ? o->error_message : o->error_reason, (long long)delay);
            atomic_fetch_add(&p->st.retries, 1);
            jp_metrics_event_retry(it->ev->site, o->error_reason ? o->error_reason : "unknown");
            /* The schedule outlives this process: a restart or the partition's next
             * owner continues it instead of starting over. */
            long status = o->call_count ? o->calls[o->call_count - 1].status : 0;
            int64_t now = wall_ms();
            if (jp_store_record_attempt(p->store, it->ev->id, now, now + delay,
                                        o->error_reason ? o->error_reason : "unknown", status, NULL,
                                        NULL) == JP_OK)
                it->attempts_stored = 1;
            jp_outcome_destroy(o);
            item_park(it, delay);
            return;
        }
    }
    it->outcome = o;
    jp_log(JP_LOG_DEBUG, COMPONENT, &ctx, "%s %s: %s", jp_event_type_name(it->ev->type),
           it->ev->subject, jp_outcome_status_name(o->status));
    record_outcome(it);
    /* The outcome's write is on its way (the result waits for it): sealing the calls' audit
     * records meanwhile keeps that work off the event's path. The item holds o. */
    if (!audited)
        publish_calls_audit(it, o);
}

static void start_apply(item_t *it)
{
    char err[512];
    it->attempts++;
    if (!it->first_ms)
        it->first_ms = wall_ms();
    jp_err_t rc =
        it->ev->type == JP_EVENT_RECON_REQUEST
            ? jp_recon_start(it->p->recon, it->ev, it->attempts, applied, it, err, sizeof(err))
            : jp_apply_start(it->p->apply, it->ev, it->attempts, applied, it, err, sizeof(err));
    if (rc == JP_OK) {
        atomic_fetch_add(&it->p->st.in_flight, 1);
        return;
    }
    /* Not applicable here (unknown site, a type this worker does not apply):
     * a permanent failure, dead-lettered with the reason. */
    jp_outcome_t *o = jp_outcome_new(JP_OUTCOME_FAILED);
    if (!o) {
        item_park(it, LOCAL_RETRY_MS);
        return;
    }
    jp_outcome_set_error(o, JP_OUTCOME_FAILED, JP_CLASS_PERMANENT,
                         rc == JP_ERR_UNSUPPORTED ? "unsupported" : "not_applicable", err);
    it->outcome = o;
    record_outcome(it);
}

/* ---- what Redis knows of the event: one round trip ------------------------ */

/* Redis's two answers about an event (its recorded outcome, and the attempt
 * schedule an earlier run left) are asked for together: both commands go out
 * in one write, and the item goes on when the second answer is in. */

/* A retry schedule started by an earlier run (a crash, a rebalance) continues. */
static void continue_schedule(item_t *it, jp_store_attempts_t *a)
{
    it->attempts_loaded = 1;
    int64_t wait = 0;
    if (a && a->attempts > 0) {
        jp_log_ctx_t ctx = item_ctx(it);
        it->attempts = a->attempts;
        it->first_ms = a->first_ms;
        it->attempts_stored = 1;
        if (json_is_array(a->history)) {
            json_decref(it->history);
            it->history = json_incref(a->history);
        }
        wait = a->next_ms - wall_ms();
        jp_log(JP_LOG_INFO, COMPONENT, &ctx,
               "continuing after %d earlier attempt(s); next in %lld ms", a->attempts,
               (long long)(wait > 0 ? wait : 0));
    }
    if (wait > 0)
        item_park(it, wait);
    else
        start_apply(it);
}

/* Both answers are in. Exactly once: a recorded outcome answers a redelivered
 * event; otherwise it is applied, after its earlier schedule if it has one. */
static void lookups_done(item_t *it)
{
    jp_outcome_t *recorded = it->found_outcome;
    jp_store_attempts_t *a = it->found_attempts;
    it->found_outcome = NULL;
    it->found_attempts = NULL;
    if (it->lookup_failed) {
        atomic_fetch_add(&it->p->st.redis_errors, 1);
        jp_log_ctx_t ctx = item_ctx(it);
        jp_log(JP_LOG_WARN, COMPONENT, &ctx, "reading the event's state: %s",
               it->lookup_error ? it->lookup_error : "Redis error");
        free(it->lookup_error);
        it->lookup_error = NULL;
        it->lookup_failed = 0;
        jp_outcome_destroy(recorded);
        jp_store_attempts_free(a);
        update_pause(it->p);
        item_park(it, LOCAL_RETRY_MS);
        return;
    }
    if (recorded) {
        jp_store_attempts_free(a);
        atomic_fetch_add(&it->p->st.replayed, 1);
        it->outcome = recorded;
        it->replayed = 1;
        it->deadletter = recorded->status == JP_OUTCOME_FAILED;
        publish_item(it);
        return;
    }
    continue_schedule(it, a);
    jp_store_attempts_free(a);
}

/* The first failure is the one logged; the flag, not the copy, decides (a
 * failed strdup must not turn a failed lookup into "nothing recorded"). */
static void lookup_failed(item_t *it, const char *errstr)
{
    if (!it->lookup_failed && errstr)
        it->lookup_error = strdup(errstr);
    it->lookup_failed = 1;
}

static void lookup_answered(item_t *it)
{
    if (--it->lookups == 0)
        lookups_done(it);
}

static void outcome_looked_up(jp_err_t err, const char *errstr, jp_outcome_t *recorded,
                              void *opaque)
{
    item_t *it = opaque;
    if (err != JP_OK)
        lookup_failed(it, errstr);
    it->found_outcome = recorded;
    lookup_answered(it);
}

static void attempts_looked_up(jp_err_t err, const char *errstr, jp_store_attempts_t *a,
                               void *opaque)
{
    item_t *it = opaque;
    if (err != JP_OK && err != JP_ERR_INVALID) /* INVALID: corrupt state, start afresh */
        lookup_failed(it, errstr);
    it->found_attempts = a;
    lookup_answered(it);
}

static void look_up(item_t *it)
{
    jp_store_t *store = it->p->store;
    /* Counted before sending: a refusal answers at once, and the last answer
     * must not come before the second request is out. */
    it->lookups = it->attempts_loaded ? 2 : 3;
    if (jp_store_get_outcome(store, it->ev->id, outcome_looked_up, it) != JP_OK)
        outcome_looked_up(JP_ERR_REDIS, "Redis is not connected", NULL, it);
    if (!it->attempts_loaded &&
        jp_store_get_attempts(store, it->ev->id, attempts_looked_up, it) != JP_OK)
        attempts_looked_up(JP_ERR_REDIS, "Redis is not connected", NULL, it);
    lookup_answered(it);
}

static void start_item(item_t *it)
{
    if (!it->started_mono)
        it->started_mono = mono_ms();
    if (!it->ev) { /* malformed: straight to the dead-letter topic */
        it->deadletter = 1;
        publish_item(it);
        return;
    }
    if (it->outcome) { /* terminal already (an earlier record or publish failed) */
        if (it->recorded || it->replayed)
            publish_item(it);
        else
            record_outcome(it);
        return;
    }
    look_up(it);
}

/* ---- the sequencer's side ------------------------------------------------ */

static void tick_cb(uv_timer_t *t)
{
    jp_pipeline_t *p = t->data;
    jp_limiter_stats_t ls;
    jp_limiter_stats(p->limiter, &ls);
    uint64_t granted = 0;
    for (int i = 0; i < JP_LANE_COUNT; i++)
        granted += ls.granted[i];
    atomic_store(&p->st.tokens_granted, granted);
    atomic_store(&p->st.tokens_waiting, ls.waiting);
    atomic_store(&p->st.cooldowns, ls.cooldowns);
    atomic_store(&p->st.tokens_leased, ls.leased);
    atomic_store(&p->st.lease_lapsed, ls.lease_lapsed);
    atomic_store(&p->st.limiter_errors, ls.errors);
}

static void wake_cb(uv_timer_t *t)
{
    pump(t->data);
}

static void pump(jp_pipeline_t *p)
{
    item_t *it;
    int64_t now = mono_ms();
    /* Stopping: what has not started is handed back with its partition. */
    while (!p->stopping && (it = jp_seq_next_ready(p->seq, now))) {
        if (it->parked) {
            it->parked = 0;
            atomic_fetch_sub(&p->st.parked, 1);
        }
        start_item(it);
    }
    /* Stopping starts nothing, so a parked item that is due would re-arm the timer at 0 from
     * its own callback forever (libuv runs it again before any I/O). */
    int64_t next = p->stopping ? -1 : jp_seq_next_wakeup_ms(p->seq);
    if (next >= 0)
        uv_timer_start(p->wake, wake_cb, (uint64_t)(next > now ? next - now : 0), 0);
    else
        uv_timer_stop(p->wake);
}

static void on_message(jp_kafka_msg_t *msg, void *opaque)
{
    jp_pipeline_t *p = opaque;
    item_t *it = calloc(1, sizeof(*it));
    if (!it) {
        jp_kafka_msg_destroy(msg); /* not stored: it comes back after a restart */
        return;
    }
    it->p = p;
    it->msg = msg;
    it->consumed_ns = uv_hrtime();
    atomic_fetch_add(&p->st.consumed, 1);
    atomic_fetch_add(&p->st.held, 1);

    char err[512];
    jp_event_limits_t limits = {(size_t)p->cfg->event.max_bytes};
    if (jp_event_decode(msg->value, msg->value_len, &limits, &it->ev, err, sizeof(err)) != JP_OK) {
        it->decode_error = strdup(err);
        jp_log_ctx_t ctx = item_ctx(it);
        jp_log(JP_LOG_WARN, COMPONENT, &ctx, "malformed event: %s", err);
    } else {
        /* Thousands are held at once: keep the typed fields, not the tree
         * (on ENOMEM it simply stays as it is). A reconciliation request keeps
         * its tree: the run reads its filter from data (and there are few). */
        if (it->ev->type != JP_EVENT_RECON_REQUEST)
            (void)jp_event_compact(it->ev);
    }
    jp_metrics_event_consumed(it->ev ? jp_event_type_name(it->ev->type) : "invalid");
    /* Sequence by the Kafka key (what chose the partition); a malformed event
     * has no subject and waits for nobody. */
    const void *key = it->ev ? msg->key : NULL;
    size_t keylen = it->ev ? msg->key_len : 0;
    if (it->ev && !key) {
        key = it->ev->subject;
        keylen = strlen(it->ev->subject);
    }
    if (jp_seq_add(p->seq, msg->partition, msg->offset, key, keylen, it, err, sizeof(err)) !=
        JP_OK) {
        jp_warn(COMPONENT, "partition %d offset %lld not taken: %s", (int)msg->partition,
                (long long)msg->offset, err);
        item_free(it);
        return;
    }
    update_pause(p);
    pump(p);
}

/* ---- rebalance and stop --------------------------------------------------- */

static void on_assign(const int32_t *partitions, size_t n, void *opaque)
{
    jp_pipeline_t *p = opaque;
    atomic_fetch_add(&p->st.assigned, (int)n);
    jp_info(COMPONENT, "%zu partition(s) assigned", n);
}

static void handback(void *item, jp_seq_handback_t how, void *opaque)
{
    item_t *it = item;
    if (how == JP_SEQ_DROPPED) {
        if (it->parked)
            atomic_fetch_sub(&it->p->st.parked, 1);
        item_free(it);
    }
    /* Running items finish and publish; their offsets are no longer ours. */
}

static void drain_timeout_cb(uv_timer_t *t)
{
    jp_pipeline_t *p = t->data;
    jp_warn(COMPONENT, "drain bound of %d ms reached; handing back what still runs",
            p->cfg->worker.drain_timeout_ms);
    maybe_finish_revoke(p, 1);
}

static size_t partition_running(jp_pipeline_t *p, int32_t partition)
{
    jp_seq_partition_stats_t st;
    return jp_seq_partition_stats(p->seq, partition, &st) ? st.in_flight : 0;
}

static void maybe_finish_revoke(jp_pipeline_t *p, int force)
{
    if (!p->revoking_count)
        return;
    for (size_t i = 0; i < p->revoking_count; i++)
        if (!force && partition_running(p, p->revoking[i]))
            return;
    for (size_t i = 0; i < p->revoking_count; i++) {
        int64_t offset;
        if (jp_seq_revoke_finish(p->seq, p->revoking[i], handback, p, &offset))
            store_offset_cb(p->revoking[i], offset, p);
    }
    atomic_fetch_sub(&p->st.assigned, (int)p->revoking_count);
    jp_info(COMPONENT, "%zu partition(s) handed back", p->revoking_count);
    free(p->revoking);
    p->revoking = NULL;
    p->revoking_count = 0;
    uv_timer_stop(p->drain);
    jp_kafka_in_revoke_done(p->in);
}

static bool item_revoking(void *item, void *ctx)
{
    const item_t *it = item;
    const jp_pipeline_t *p = ctx;
    for (size_t i = 0; i < p->revoking_count; i++)
        if (p->revoking[i] == it->msg->partition)
            return true;
    return false;
}

static void on_revoke(const int32_t *partitions, size_t n, void *opaque)
{
    jp_pipeline_t *p = opaque;
    int32_t *list = realloc(p->revoking, (p->revoking_count + n) * sizeof(*list));
    if (!list) {
        jp_kafka_in_revoke_done(p->in);
        return;
    }
    p->revoking = list;
    for (size_t i = 0; i < n; i++) {
        jp_seq_revoke_start(p->seq, partitions[i], handback, p);
        p->revoking[p->revoking_count++] = partitions[i];
    }
    if (p->closing) {
        /* Leaving the group: what still runs had its drain bound already. */
        maybe_finish_revoke(p, 1);
        return;
    }
    jp_info(COMPONENT, "%zu partition(s) revoked; finishing what runs", n);
    uv_timer_start(p->drain, drain_timeout_cb, (uint64_t)p->cfg->worker.drain_timeout_ms, 0);
    /* Events still waiting for a token have sent nothing: let them go now
     * rather than hold the rebalance. */
    jp_apply_release(p->apply, item_revoking, p);
    maybe_finish_revoke(p, 0);
    pump(p);
}

static void on_kafka_error(jp_class_t cls, const char *reason, void *opaque)
{
    jp_pipeline_t *p = opaque;
    if (cls != JP_CLASS_FATAL) {
        jp_warn(COMPONENT, "kafka: %s", reason);
        return;
    }
    jp_error(COMPONENT, "fatal kafka error: %s", reason);
    if (p->on_fatal)
        p->on_fatal(reason, p->fatal_opaque);
}

static void on_redis_state(void *opaque, int connected)
{
    jp_pipeline_t *p = opaque;
    atomic_store(&p->st.redis_up, connected);
    if (connected) {
        jp_info(COMPONENT, "redis connected");
        jp_audit_trail_start(p->audit); /* reads where this instance's last stream ended */
    } else
        jp_warn(COMPONENT, "redis unreachable: consumption paused until it is back");
    update_pause(p);
}

static void consumer_closed(void *opaque)
{
    jp_pipeline_t *p = opaque;
    size_t left = jp_kafka_out_flush(p->out, 10000);
    if (left)
        jp_warn(COMPONENT, "%zu record(s) undelivered at exit", left);
    uv_timer_stop(p->wake);
    uv_timer_stop(p->drain);
    uv_timer_stop(p->tick);
    jp_info(COMPONENT, "stopped");
    if (p->on_stopped)
        p->on_stopped(p->stopped_opaque);
}

static void stop_timeout_cb(uv_timer_t *t)
{
    jp_pipeline_t *p = t->data;
    jp_warn(COMPONENT, "drain bound reached with work still running; leaving the group");
    close_consumer(p);
}

static void audit_closed(void *opaque)
{
    jp_pipeline_t *p = opaque;
    jp_kafka_in_close(p->in, consumer_closed, p);
}

static void close_consumer(jp_pipeline_t *p)
{
    if (p->closing)
        return;
    p->closing = 1;
    uv_timer_stop(p->drain);
    /* The audit stream ends here (normally nothing runs any more) and Redis learns where, so
     * that this instance's next stream can prove nothing after it was lost (bounded wait). */
    jp_audit_trail_close(p->audit, audit_closed, p);
}

static void maybe_finish_stop(jp_pipeline_t *p)
{
    if (!p->stopping || p->closing)
        return;
    jp_seq_stats_t st;
    jp_seq_stats(p->seq, &st);
    if (st.in_flight == 0)
        close_consumer(p);
}

void jp_pipeline_stop(jp_pipeline_t *p, void (*on_stopped)(void *), void *opaque)
{
    if (p->stopping)
        return;
    p->stopping = 1;
    p->on_stopped = on_stopped;
    p->stopped_opaque = opaque;
    atomic_store(&p->st.stopping, 1);
    jp_info(COMPONENT, "stopping: no new events; finishing what runs (at most %d ms)",
            p->cfg->worker.drain_timeout_ms);
    update_pause(p);
    jp_recon_suspend(p->recon); /* runs checkpoint and end; the next owner resumes them */
    uv_timer_start(p->drain, stop_timeout_cb, (uint64_t)p->cfg->worker.drain_timeout_ms, 0);
    jp_apply_release(p->apply, NULL, NULL); /* what sent nothing yet need not hold the stop */
    maybe_finish_stop(p);
}

/* ---- construction ------------------------------------------------------- */

void jp_pipeline_on_fatal(jp_pipeline_t *p, void (*on_fatal)(const char *, void *), void *opaque)
{
    p->on_fatal = on_fatal;
    p->fatal_opaque = opaque;
}

void jp_pipeline_stats(const jp_pipeline_t *p, jp_pipeline_stats_t *out)
{
    jp_pipeline_t *m = (jp_pipeline_t *)p; /* atomics are read-only here */
    memset(out, 0, sizeof(*out));
    out->consumed = atomic_load(&m->st.consumed);
    for (int i = 0; i < 3; i++)
        out->completed[i] = atomic_load(&m->st.completed[i]);
    out->deadlettered = atomic_load(&m->st.deadlettered);
    out->replayed = atomic_load(&m->st.replayed);
    out->retries = atomic_load(&m->st.retries);
    out->deferred = atomic_load(&m->st.deferred);
    out->publish_errors = atomic_load(&m->st.publish_errors);
    out->redis_errors = atomic_load(&m->st.redis_errors);
    out->held = atomic_load(&m->st.held);
    out->parked = atomic_load(&m->st.parked);
    out->in_flight = atomic_load(&m->st.in_flight);
    out->paused = atomic_load(&m->st.paused);
    out->assigned = atomic_load(&m->st.assigned);
    out->redis_up = atomic_load(&m->st.redis_up);
    out->stopping = atomic_load(&m->st.stopping);
    out->tokens_granted = atomic_load(&m->st.tokens_granted);
    out->tokens_waiting = atomic_load(&m->st.tokens_waiting);
    out->cooldowns = atomic_load(&m->st.cooldowns);
    out->limiter_errors = atomic_load(&m->st.limiter_errors);
    out->tokens_leased = atomic_load(&m->st.tokens_leased);
    out->lease_lapsed = atomic_load(&m->st.lease_lapsed);
    jp_recon_stats_t rs;
    jp_recon_stats(m->recon, &rs);
    out->recon.running = rs.running;
    out->recon.started = rs.started;
    out->recon.completed = rs.completed;
    out->recon.records = rs.records;
    out->recon.calls = rs.calls;
    out->recon.retries = rs.retries;
}

/* A site's API entered or left quarantine: IDHub (results) and auditors
 * (audit) hear it from the worker that made the transition. */
static void on_site_state(const jp_site_t *site, jp_jira_api_t api, bool quarantined,
                          const char *reason, int64_t since_ms, void *opaque)
{
    jp_pipeline_t *p = opaque;
    const jp_config_t *cfg = p->cfg;
    const char *apiname = jp_jira_api_name(api);
    produce_record(p, NULL, cfg->topics.results, site->name,
                   jp_record_site_state(site->name, apiname, quarantined, reason, since_ms,
                                        cfg->worker.instance_id, wall_ms()));
    jp_audit_trail_emit(p->audit,
                        jp_record_audit_site(site->name, apiname, quarantined, reason, since_ms,
                                             cfg->worker.instance_id, wall_ms()),
                        NULL, NULL);
}

static jp_limiter_t *limiter_new(jp_pipeline_t *p, char *errstr, size_t errstr_size)
{
    int cap = p->cfg->worker.max_in_flight / 4;
    jp_limiter_opts_t o = {p->loop,       p->redis, p->cfg,
                           on_site_state, p,        (size_t)(cap > 16 ? cap : 16)};
    return jp_limiter_new(&o, errstr, errstr_size);
}

static jp_redis_t *redis_new(jp_pipeline_t *p, char *errstr, size_t errstr_size)
{
    const jp_config_t *cfg = p->cfg;
    jp_redis_opts_t o = {0};
    o.host = cfg->redis.host;
    o.port = cfg->redis.port;
    o.unix_path = cfg->redis.unix_path;
    o.username = cfg->redis.username;
    o.password = cfg->redis.password;
    o.db = cfg->redis.db;
    o.command_timeout_ms = (unsigned)cfg->redis.timeout_ms;
    o.on_state = on_redis_state;
    o.opaque = p;
    return jp_redis_new(p->loop, &o, errstr, errstr_size);
}

jp_pipeline_t *jp_pipeline_new(uv_loop_t *loop, jp_config_t *cfg, char *errstr, size_t errstr_size)
{
    jp_pipeline_t *p = calloc(1, sizeof(*p));
    if (!p) {
        jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
        return NULL;
    }
    p->loop = loop;
    p->cfg = cfg;
    /* Full jitter only spreads retries if every worker draws different numbers. */
    srand((unsigned)time(NULL) ^ (unsigned)getpid() ^ (unsigned)(uintptr_t)p);
    /* Timers are separate allocations: their close completes after destroy. */
    p->wake = malloc(sizeof(*p->wake));
    p->drain = malloc(sizeof(*p->drain));
    p->tick = malloc(sizeof(*p->tick));
    if (!p->wake || !p->drain || !p->tick) {
        free(p->wake);
        free(p->drain);
        free(p->tick);
        free(p);
        jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
        return NULL;
    }
    uv_timer_init(loop, p->wake);
    uv_timer_init(loop, p->drain);
    uv_timer_init(loop, p->tick);
    p->wake->data = p->drain->data = p->tick->data = p;

    /* Events waiting for a token of the shared budget count as running: up to
     * twice the connections, so that a throttled site (whose waiting calls the
     * limiter caps at a quarter of them) cannot take every slot. */
    jp_seq_opts_t so = {(size_t)cfg->worker.max_buffered_events, 0,
                        (size_t)cfg->worker.max_in_flight * 2};
    jp_http_opts_t ho = {0};
    ho.max_connections = cfg->worker.max_in_flight;
    ho.max_host_connections = cfg->worker.max_in_flight;
    ho.max_active = cfg->worker.max_in_flight;
    if (!(p->seq = jp_seq_new(&so, errstr, errstr_size)) ||
        !(p->redis = redis_new(p, errstr, errstr_size)) ||
        !(p->store = jp_store_new(p->redis, cfg->redis.key_prefix, cfg->worker.outcome_ttl_s,
                                  errstr, errstr_size)) ||
        !(p->http = jp_http_new(loop, &ho, errstr, errstr_size)) ||
        !(p->limiter = limiter_new(p, errstr, errstr_size)) ||
        !(p->mapping = jp_mapping_new(cfg->mapping, cfg->mapping_count, errstr, errstr_size)))
        goto fail;
    jp_apply_opts_t ao = {.loop = loop,
                          .http = p->http,
                          .cfg = cfg,
                          .mapping = p->mapping,
                          .store = p->store,
                          .limiter = p->limiter};
    if (!(p->apply = jp_apply_new(&ao, errstr, errstr_size)) ||
        !(p->out = jp_kafka_out_new(loop, cfg, errstr, errstr_size)) ||
        !(p->audit = jp_audit_trail_new(loop, cfg, p->out, p->redis, errstr, errstr_size)))
        goto fail;
    jp_recon_opts_t ro = {.loop = loop,
                          .http = p->http,
                          .redis = p->redis,
                          .out = p->out,
                          .cfg = cfg,
                          .mapping = p->mapping,
                          .limiter = p->limiter};
    if (!(p->recon = jp_recon_new(&ro, errstr, errstr_size)))
        goto fail;
    jp_kafka_in_cbs_t cbs = {on_message, on_assign, on_revoke, on_kafka_error, p};
    if (!(p->in = jp_kafka_in_new(loop, cfg, &cbs, errstr, errstr_size)))
        goto fail;
    /* Until Redis answers, nothing is taken: outcomes could not be checked. */
    update_pause(p);
    uv_timer_start(p->tick, tick_cb, 1000, 1000);
    uv_unref((uv_handle_t *)p->tick);
    return p;
fail:
    jp_pipeline_destroy(p);
    return NULL;
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

static void free_held(void *item, jp_seq_handback_t how, void *opaque)
{
    item_free(item);
}

void jp_pipeline_destroy(jp_pipeline_t *p)
{
    if (!p)
        return;
    p->stopping = 1; /* pump() starts nothing from here on */
    /* In-flight applies call back (cancelled) into items the sequencer still
     * holds; tear the producers of callbacks down first. */
    jp_kafka_in_destroy(p->in);
    jp_apply_destroy(p->apply);
    jp_recon_destroy(p->recon);
    jp_limiter_destroy(p->limiter);
    jp_seq_destroy(p->seq, free_held, p);
    jp_audit_trail_destroy(p->audit);
    jp_kafka_out_destroy(p->out);
    jp_http_destroy(p->http);
    jp_mapping_destroy(p->mapping);
    jp_store_destroy(p->store);
    jp_redis_destroy(p->redis);
    free(p->revoking);
    uv_close((uv_handle_t *)p->wake, free_handle);
    uv_close((uv_handle_t *)p->drain, free_handle);
    uv_close((uv_handle_t *)p->tick, free_handle);
    free(p);
}

/* ---- reload --------------------------------------------------------------- */

jp_err_t jp_pipeline_reload(jp_pipeline_t *p, jp_config_t *fresh, char *errstr, size_t errstr_size)
{
    if (!p || !fresh)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "reload: nothing to reload");
    /* Compile first: a table that does not compile changes nothing. */
    jp_mapping_t *m = jp_mapping_new(fresh->mapping, fresh->mapping_count, errstr, errstr_size);
    if (!m)
        return JP_ERR_INVALID;
    /* Between two loop callbacks no event is inside a mapping call: every
     * holder (apply) reads the new table from its next step on. */
    jp_mapping_swap(p->mapping, m);
    jp_mapping_destroy(m);
    jp_config_take_reloadable(p->cfg, fresh);
    return JP_OK;
}
