/* kafka_in: the events-topic consumer on the worker's libuv loop (see kafka_in.h).
 *
 * How it sits on the loop: librdkafka writes one byte to a non-blocking pipe when an op lands on
 * the consumer queue (rd_kafka_queue_io_event_enable); a uv_poll_t on the read end drains the
 * queue in batches of JP_KAFKA_IN_BATCH, and a uv_idle_t keeps draining while work remains so
 * that one busy partition never starves the rest of the loop. A 1 s uv_timer is a safety net for
 * a missed wake-up and keeps max.poll.interval.ms satisfied while the caller is paused.
 *
 * Rebalances (learned from librdkafka 2.0.2's rdkafka_cgrp.c / rdkafka_assignment.c):
 * - Before handing a rebalance to the application, librdkafka pauses the fetchers of every
 *   assigned partition (a library pause flag) and stays in WAIT_(UN)ASSIGN_CALL until the
 *   application calls (incremental_)assign/unassign; nothing requires that call to happen
 *   inside the rebalance callback. So the revoke is deferred: on_revoke now, unassign after
 *   jp_kafka_in_revoke_done(). Meanwhile the queue keeps being polled (max.poll.interval.ms is
 *   measured from the application's polls), and messages of revoked partitions that were
 *   already queued are dropped here (never stored, so the next owner gets them).
 * - The stored offsets of the revoked partitions are committed through rd_kafka_commit_queue()
 *   and the partitions released only when that commit has answered: synchronous with respect
 *   to the release, without blocking the loop on the broker round trip.
 * - Closing uses rd_kafka_consumer_close_queue(): the group queue is forwarded to a close queue
 *   served here with the event API, so the final revoke goes through the same deferral.
 * - An application pause flag stays on a partition object after it is unassigned; a partition
 *   paused here is resumed just before it is released so that it does not come back paused. */
#include "jiraprov/kafka_in.h"

#include "jiraprov/log.h"
#include "jiraprov/metrics.h"

#include <errno.h>
#include <jansson.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define JP_KAFKA_IN_BATCH          500   /* messages per wake-up before yielding to the loop */
#define JP_KAFKA_IN_TIMER_MS       1000  /* safety-net poll interval */
#define JP_KAFKA_IN_CLOSE_WAIT_MS  10000 /* bound on waiting for a first assignment at close */
#define JP_KAFKA_IN_CLOSE_BOUND_MS 15000 /* bound on leaving the group once close started */
#define JP_KAFKA_IN_COMPONENT      "kafka_in"
#define JP_KAFKA_IN_REASON_MAX     512
/* librdkafka statistics (consumer lag, broker states) for metrics, unless
 * the kafka: map sets statistics.interval.ms itself. */
#define JP_KAFKA_IN_STATS_MS "5000"

/* One assigned partition. */
typedef struct in_part {
    int32_t id;
    int revoking;   /* in the outstanding revoke: nothing more is delivered */
    int app_paused; /* rd_kafka_pause_partitions() applied by this module */
    int64_t stored; /* last offset stored through jp_kafka_in_store_offset, -1 if none */
} in_part_t;

/* A message held back because the consumer was paused after librdkafka handed it over. */
typedef struct parked {
    jp_kafka_msg_t *msg;
    struct parked *next;
} parked_t;

/* A rebalance received from librdkafka, handled in order. */
typedef struct rb_op {
    rd_kafka_resp_err_t kind; /* __ASSIGN_PARTITIONS, __REVOKE_PARTITIONS or an error */
    rd_kafka_topic_partition_list_t *parts;
    struct rb_op *next;
} rb_op_t;

struct jp_kafka_in {
    uv_loop_t *loop;
    rd_kafka_t *rk;
    rd_kafka_queue_t *q;       /* the consumer (group) queue */
    rd_kafka_queue_t *commitq; /* answers to the revoke commits */
    rd_kafka_queue_t *closeq;  /* rebalances and errors while closing */
    int fds[2];                /* wake-up pipe: [0] polled, [1] written by librdkafka */
    uv_poll_t poll;
    uv_idle_t idle;
    uv_timer_t timer;
    int handles_open;
    int assigned_once;          /* a rebalance assigned this member (even nothing) */
    int close_deferred;         /* close waits for the first assignment */
    uint64_t close_deadline_ms; /* ... until this loop time at most; then the bound on closing */
    jp_kafka_in_cbs_t cbs;
    char *topic;

    in_part_t *parts;
    size_t nparts, cap;
    int paused;

    parked_t *parked_head, *parked_tail;
    rb_op_t *rb_head, *rb_tail;

    /* The outstanding revoke, if any. */
    rd_kafka_topic_partition_list_t *revoke;
    rd_kafka_resp_err_t revoke_kind;
    int revoke_lost;         /* assignment lost: the commit would be refused */
    int revoke_done;         /* the callee called jp_kafka_in_revoke_done */
    int revoke_committing;   /* commit sent, waiting for its answer */
    int revoke_commit_tries; /* commits of this revoke tried again after a retriable error */

    int closing, closed, close_failed, close_notified;
    void (*on_closed)(void *opaque);
    void *closed_opaque;

    int depth;           /* > 0 while this module may call back (drain, revoke_done) */
    int destroy_pending; /* jp_kafka_in_destroy() called from a callback */
    int destroyed;

    jp_kafka_in_stats_t stats;
};

static void destroy_now(jp_kafka_in_t *in);
static void start_close(jp_kafka_in_t *in);
static void on_idle(uv_idle_t *h);

/* ---------------------------------------------------------------- shared helpers (kafka.h) */

void jp_kafka_msg_destroy(jp_kafka_msg_t *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->header_count; i++) {
        free(m->headers[i].name);
        free(m->headers[i].value);
    }
    free(m->headers);
    free(m->topic);
    free(m->key);
    free(m->value);
    free(m);
}

void jp_kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    jp_log_level_t lv;

    if (level <= 3)
        lv = JP_LOG_ERROR;
    else if (level == 4)
        lv = JP_LOG_WARN;
    else if (level <= 6)
        lv = JP_LOG_INFO;
    else
        lv = JP_LOG_DEBUG;
    /* A shared kafka: map always carries consumer properties a producer ignores (and the other
     * way round); librdkafka warns about each at start-up. */
    if (fac && !strcmp(fac, "CONFWARN") && lv > JP_LOG_INFO)
        lv = JP_LOG_INFO;
    /* Connection failures: the error callbacks report them with a class already. */
    if (fac && !strcmp(fac, "FAIL") && lv > JP_LOG_WARN)
        lv = JP_LOG_WARN;
    if (!jp_log_enabled(lv))
        return;
    jp_log(lv, "rdkafka", JP_LOG_NO_CTX, "[%s] %s: %s", rk ? rd_kafka_name(rk) : "-",
           fac ? fac : "-", buf ? buf : "");
}

/* Copy `len` bytes plus a NUL; NULL with len 0 gives "". */
static void *dup_nul(const void *p, size_t len)
{
    char *out = malloc(len + 1);
    if (!out)
        return NULL;
    if (len)
        memcpy(out, p, len);
    out[len] = '\0';
    return out;
}

static jp_kafka_msg_t *msg_copy(const rd_kafka_message_t *rkm, const char *topic)
{
    jp_kafka_msg_t *m = calloc(1, sizeof(*m));
    rd_kafka_headers_t *hdrs = NULL;
    rd_kafka_timestamp_type_t tstype;

    if (!m)
        return NULL;
    m->partition = rkm->partition;
    m->offset = rkm->offset;
    m->timestamp_ms = rd_kafka_message_timestamp(rkm, &tstype);
    if (tstype == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE)
        m->timestamp_ms = -1;
    m->topic = dup_nul(topic, strlen(topic));
    m->value = dup_nul(rkm->payload, rkm->payload ? rkm->len : 0);
    m->value_len = rkm->payload ? rkm->len : 0;
    if (!m->topic || !m->value)
        goto fail;
    if (rkm->key) {
        if (!(m->key = dup_nul(rkm->key, rkm->key_len)))
            goto fail;
        m->key_len = rkm->key_len;
    }
    if (rd_kafka_message_headers(rkm, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR && hdrs) {
        size_t n = rd_kafka_header_cnt(hdrs);
        if (n && !(m->headers = calloc(n, sizeof(*m->headers))))
            goto fail;
        for (size_t i = 0; i < n; i++) {
            const char *name;
            const void *val;
            size_t size;
            if (rd_kafka_header_get_all(hdrs, i, &name, &val, &size))
                break;
            jp_kafka_header_t *h = &m->headers[m->header_count++];
            h->name = dup_nul(name, strlen(name));
            h->value = val ? dup_nul(val, size) : NULL;
            h->len = val ? size : 0;
            if (!h->name || (val && !h->value))
                goto fail;
        }
    }
    return m;
fail:
    jp_kafka_msg_destroy(m);
    return NULL;
}

/* ---------------------------------------------------------------- errors */

static void report(jp_kafka_in_t *in, rd_kafka_resp_err_t err, const char *reason, int fatal)
{
    char fbuf[JP_KAFKA_IN_REASON_MAX], raw[JP_KAFKA_IN_REASON_MAX], line[JP_KAFKA_IN_REASON_MAX];
    jp_class_t cls;

    if (err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
        return;
    if (fatal || err == RD_KAFKA_RESP_ERR__FATAL) {
        rd_kafka_resp_err_t ferr = rd_kafka_fatal_error(in->rk, fbuf, sizeof(fbuf));
        if (ferr) {
            err = ferr;
            reason = fbuf;
        }
        fatal = 1;
    }
    cls = jp_classify_kafka((int)err, fatal, 0);
    snprintf(raw, sizeof(raw), "%s: %s", rd_kafka_err2name(err),
             reason && *reason ? reason : rd_kafka_err2str(err));
    jp_log_redact(raw, line, sizeof(line));
    in->stats.errors++;
    jp_metrics_kafka_error("consumer", jp_class_name(cls));
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
        in->stats.brokers_up = 0; /* at once; the next statistics tell when they are back */
        jp_metrics_set(jp_metrics_worker()->kafka_brokers_up, NULL, 0);
    }
    jp_log(cls == JP_CLASS_FATAL ? JP_LOG_ERROR : JP_LOG_WARN, JP_KAFKA_IN_COMPONENT, JP_LOG_NO_CTX,
           "%s: consumer error (%s): %s", rd_kafka_name(in->rk), jp_class_name(cls), line);
    if (in->cbs.on_error)
        in->cbs.on_error(cls, line, in->cbs.opaque);
}

static void on_rd_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk;
    report(opaque, (rd_kafka_resp_err_t)err, reason, 0);
}

/* Auto-commit answers: failures only matter for the log (the next commit retries). */
static void on_auto_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                           rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
    (void)rk;
    (void)offsets;
    (void)opaque;
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
        jp_warn(JP_KAFKA_IN_COMPONENT, "offset commit failed (%s): %s",
                jp_class_name(jp_classify_kafka((int)err, 0, 0)), rd_kafka_err2str(err));
}

/* ---------------------------------------------------------------- partitions */

static in_part_t *part_find(jp_kafka_in_t *in, int32_t id)
{
    for (size_t i = 0; i < in->nparts; i++)
        if (in->parts[i].id == id)
            return &in->parts[i];
    return NULL;
}

static int part_add(jp_kafka_in_t *in, int32_t id)
{
    if (part_find(in, id))
        return 0;
    if (in->nparts == in->cap) {
        size_t cap = in->cap ? in->cap * 2 : 16;
        in_part_t *p = realloc(in->parts, cap * sizeof(*p));
        if (!p)
            return -1;
        in->parts = p;
        in->cap = cap;
    }
    in->parts[in->nparts++] = (in_part_t){.id = id, .stored = -1};
    return 0;
}

static void part_remove(jp_kafka_in_t *in, int32_t id)
{
    for (size_t i = 0; i < in->nparts; i++)
        if (in->parts[i].id == id) {
            in->parts[i] = in->parts[--in->nparts];
            return;
        }
}

/* A list of the assigned partitions selected by `want`, NULL if none (or no memory). */
static rd_kafka_topic_partition_list_t *parts_list(jp_kafka_in_t *in,
                                                   int (*want)(const in_part_t *p))
{
    rd_kafka_topic_partition_list_t *l = NULL;
    for (size_t i = 0; i < in->nparts; i++) {
        if (!want(&in->parts[i]))
            continue;
        if (!l && !(l = rd_kafka_topic_partition_list_new((int)in->nparts)))
            return NULL;
        rd_kafka_topic_partition_list_add(l, in->topic, in->parts[i].id);
    }
    return l;
}

static int want_pause(const in_part_t *p)
{
    return !p->revoking && !p->app_paused;
}

static int want_resume(const in_part_t *p)
{
    return !p->revoking && p->app_paused;
}

/* Apply pause or resume to `l` and record it on each partition. */
static void pause_list(jp_kafka_in_t *in, rd_kafka_topic_partition_list_t *l, int pause)
{
    rd_kafka_resp_err_t err =
        pause ? rd_kafka_pause_partitions(in->rk, l) : rd_kafka_resume_partitions(in->rk, l);
    if (err)
        jp_warn(JP_KAFKA_IN_COMPONENT, "%s partitions failed: %s", pause ? "pausing" : "resuming",
                rd_kafka_err2str(err));
    for (int i = 0; i < l->cnt; i++) {
        in_part_t *p = part_find(in, l->elems[i].partition);
        if (p && !l->elems[i].err)
            p->app_paused = pause;
    }
}

/* ---------------------------------------------------------------- parked messages */

static void park(jp_kafka_in_t *in, jp_kafka_msg_t *m)
{
    parked_t *p = malloc(sizeof(*p));
    if (!p) {
        /* Cannot hold it: the offset was never stored, so it is redelivered after a restart or
         * a rebalance; losing it silently here would be worse than saying so. */
        report(in, RD_KAFKA_RESP_ERR__FATAL, "out of memory holding a paused message", 1);
        jp_kafka_msg_destroy(m);
        return;
    }
    p->msg = m;
    p->next = NULL;
    if (in->parked_tail)
        in->parked_tail->next = p;
    else
        in->parked_head = p;
    in->parked_tail = p;
}

static jp_kafka_msg_t *unpark(jp_kafka_in_t *in)
{
    parked_t *p = in->parked_head;
    jp_kafka_msg_t *m;
    if (!p)
        return NULL;
    in->parked_head = p->next;
    if (!in->parked_head)
        in->parked_tail = NULL;
    m = p->msg;
    free(p);
    return m;
}

/* Drop parked messages of partitions no longer ours (all when `all`). */
static void parked_drop(jp_kafka_in_t *in, int all)
{
    parked_t **pp = &in->parked_head;
    in->parked_tail = NULL;
    while (*pp) {
        parked_t *p = *pp;
        in_part_t *part = part_find(in, p->msg->partition);
        if (all || !part || part->revoking) {
            *pp = p->next;
            jp_kafka_msg_destroy(p->msg);
            free(p);
        } else {
            in->parked_tail = p;
            pp = &p->next;
        }
    }
}

/* ---------------------------------------------------------------- rebalance */

static int cooperative(jp_kafka_in_t *in)
{
    const char *proto = rd_kafka_rebalance_protocol(in->rk);
    return proto && !strcmp(proto, "COOPERATIVE");
}

static int32_t *ids_of(const rd_kafka_topic_partition_list_t *l, size_t *n)
{
    int32_t *ids = malloc((l && l->cnt ? (size_t)l->cnt : 1) * sizeof(*ids));
    *n = 0;
    if (!ids)
        return NULL;
    for (int i = 0; l && i < l->cnt; i++)
        ids[(*n)++] = l->elems[i].partition;
    return ids;
}

static void do_assign(jp_kafka_in_t *in, rd_kafka_topic_partition_list_t *l)
{
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    rd_kafka_error_t *error = NULL;
    size_t n;

    if (cooperative(in)) {
        error = rd_kafka_incremental_assign(in->rk, l);
    } else {
        err = rd_kafka_assign(in->rk, l);
        in->nparts = 0; /* eager: the list is the whole assignment */
    }
    if (error) {
        report(in, rd_kafka_error_code(error), rd_kafka_error_string(error),
               rd_kafka_error_is_fatal(error));
        rd_kafka_error_destroy(error);
        return;
    }
    if (err) {
        report(in, err, "assign failed", 0);
        return;
    }
    for (int i = 0; i < l->cnt; i++)
        if (part_add(in, l->elems[i].partition) != 0)
            report(in, RD_KAFKA_RESP_ERR__FATAL, "out of memory tracking partitions", 1);
    /* A partition assigned while paused starts paused; resume() picks it up later. */
    if (in->paused && l->cnt > 0)
        pause_list(in, l, 1);
    int32_t *ids = ids_of(l, &n);
    jp_log(n ? JP_LOG_INFO : JP_LOG_DEBUG, JP_KAFKA_IN_COMPONENT, JP_LOG_NO_CTX,
           "%s: assigned %zu partition(s) of %s (%s), now %zu", rd_kafka_name(in->rk), n, in->topic,
           rd_kafka_rebalance_protocol(in->rk), in->nparts);
    if (ids && n && in->cbs.on_assign)
        in->cbs.on_assign(ids, n, in->cbs.opaque);
    free(ids);
    in->assigned_once = 1;
    if (in->close_deferred)
        start_close(in);
}

static void finish_revoke(jp_kafka_in_t *in);

static void start_revoke(jp_kafka_in_t *in, rd_kafka_resp_err_t kind,
                         rd_kafka_topic_partition_list_t *l)
{
    size_t n;

    in->revoke = l;
    in->revoke_kind = kind;
    in->revoke_lost = rd_kafka_assignment_lost(in->rk);
    in->revoke_done = 0;
    in->revoke_committing = 0;
    in->revoke_commit_tries = 0;
    for (int i = 0; i < l->cnt; i++) {
        in_part_t *p = part_find(in, l->elems[i].partition);
        if (p)
            p->revoking = 1;
    }
    parked_drop(in, 0);
    if (l->cnt == 0) {
        /* Eager protocols revoke an empty assignment too: nothing for the callee to finish. */
        in->revoke_done = 1;
        finish_revoke(in);
        return;
    }
    int32_t *ids = ids_of(l, &n);
    jp_info(JP_KAFKA_IN_COMPONENT, "%s: revoking %zu partition(s) of %s%s", rd_kafka_name(in->rk),
            n, in->topic, in->revoke_lost ? " (assignment lost)" : "");
    if (!ids) {
        report(in, RD_KAFKA_RESP_ERR__FATAL, "out of memory revoking partitions", 1);
        return;
    }
    in->cbs.on_revoke(ids, n, in->cbs.opaque);
    free(ids);
}

/* Release the revoked partitions: librdkafka rejoins the group after this. */
static void finish_revoke(jp_kafka_in_t *in)
{
    rd_kafka_topic_partition_list_t *l = in->revoke;
    rd_kafka_topic_partition_list_t *unpause = NULL;

    for (int i = 0; i < l->cnt; i++) {
        in_part_t *p = part_find(in, l->elems[i].partition);
        if (p && p->app_paused) {
            if (!unpause)
                unpause = rd_kafka_topic_partition_list_new(l->cnt);
            if (unpause)
                rd_kafka_topic_partition_list_add(unpause, in->topic, p->id);
        }
    }
    if (unpause) {
        rd_kafka_resume_partitions(in->rk, unpause);
        rd_kafka_topic_partition_list_destroy(unpause);
    }
    if (cooperative(in)) {
        rd_kafka_error_t *error = rd_kafka_incremental_unassign(in->rk, l);
        if (error) {
            report(in, rd_kafka_error_code(error), rd_kafka_error_string(error),
                   rd_kafka_error_is_fatal(error));
            rd_kafka_error_destroy(error);
        }
    } else {
        rd_kafka_resp_err_t err = rd_kafka_assign(in->rk, NULL);
        if (err)
            report(in, err, "unassign failed", 0);
    }
    if (in->revoke_kind != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS || !cooperative(in))
        in->nparts = 0;
    for (int i = 0; i < l->cnt; i++) {
        part_remove(in, l->elems[i].partition);
        jp_metrics_kafka_lag(in->topic, l->elems[i].partition, -1);
    }
    rd_kafka_topic_partition_list_destroy(l);
    in->revoke = NULL;
    jp_info(JP_KAFKA_IN_COMPONENT, "%s: revoke complete, %zu partition(s) left",
            rd_kafka_name(in->rk), in->nparts);
    /* Later rebalances are taken up by drain(), never from inside the caller's call. */
    uv_idle_start(&in->idle, on_idle);
}

/* Handle queued rebalances in order; stops at a revoke until it is done. */
static void rb_process(jp_kafka_in_t *in)
{
    while (!in->revoke && in->rb_head && !in->destroy_pending) {
        rb_op_t *op = in->rb_head;
        in->rb_head = op->next;
        if (!in->rb_head)
            in->rb_tail = NULL;
        if (op->kind == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
            do_assign(in, op->parts);
            rd_kafka_topic_partition_list_destroy(op->parts);
        } else {
            if (op->kind != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
                /* A rebalance error: give everything back, as librdkafka asks. */
                report(in, op->kind, "rebalance failed", 0);
                rd_kafka_topic_partition_list_destroy(op->parts);
                op->parts = rd_kafka_topic_partition_list_new((int)in->nparts + 1);
                for (size_t i = 0; op->parts && i < in->nparts; i++)
                    rd_kafka_topic_partition_list_add(op->parts, in->topic, in->parts[i].id);
            }
            if (op->parts)
                start_revoke(in, op->kind, op->parts);
        }
        free(op);
    }
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *partitions, void *opaque)
{
    jp_kafka_in_t *in = opaque;
    rb_op_t *op = calloc(1, sizeof(*op));

    (void)rk;
    if (op)
        op->parts = partitions ? rd_kafka_topic_partition_list_copy(partitions)
                               : rd_kafka_topic_partition_list_new(1);
    if (!op || !op->parts) {
        free(op);
        report(in, RD_KAFKA_RESP_ERR__FATAL, "out of memory handling a rebalance", 1);
        return;
    }
    op->kind = err;
    if (in->rb_tail)
        in->rb_tail->next = op;
    else
        in->rb_head = op;
    in->rb_tail = op;
    rb_process(in);
}

/* Answer to the commit that precedes a release. */
static void on_revoke_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                             rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
    jp_kafka_in_t *in = opaque;

    (void)rk;
    for (int i = 0; !err && offsets && i < offsets->cnt; i++)
        if (offsets->elems[i].err)
            err = offsets->elems[i].err;
    /* A commit refused while the group rebalances or its coordinator moves is worth another
     * try or two: released uncommitted, the partitions' next owner redoes those events. */
    if (err && offsets && in->revoke && in->revoke_committing && in->revoke_commit_tries < 3 &&
        jp_classify_kafka(err, 0, 0) == JP_CLASS_RETRIABLE) {
        in->revoke_commit_tries++;
        rd_kafka_topic_partition_list_t *again = rd_kafka_topic_partition_list_copy(offsets);
        for (int i = 0; again && i < again->cnt; i++)
            again->elems[i].err = RD_KAFKA_RESP_ERR_NO_ERROR;
        rd_kafka_resp_err_t e2 =
            again ? rd_kafka_commit_queue(in->rk, again, in->commitq, on_revoke_commit, in)
                  : RD_KAFKA_RESP_ERR__NO_OFFSET;
        rd_kafka_topic_partition_list_destroy(again);
        if (!e2) {
            jp_info(JP_KAFKA_IN_COMPONENT, "committing revoked offsets: %s; trying again",
                    rd_kafka_err2str(err));
            return;
        }
    }
    if (err) {
        in->stats.revoke_commit_failures++;
        report(in, err, "committing the offsets of revoked partitions failed", 0);
    } else {
        jp_debug(JP_KAFKA_IN_COMPONENT, "committed %d offset(s) before release",
                 offsets ? offsets->cnt : 0);
    }
    if (in->revoke && in->revoke_committing) {
        in->revoke_committing = 0;
        finish_revoke(in);
    }
}

/* ---------------------------------------------------------------- draining */

static void deliver(jp_kafka_in_t *in, jp_kafka_msg_t *m)
{
    in->stats.consumed++;
    in->cbs.on_message(m, in->cbs.opaque);
}

static void handle_message(jp_kafka_in_t *in, rd_kafka_message_t *rkm)
{
    jp_kafka_msg_t *m;
    in_part_t *p;

    if (rkm->err) {
        char reason[JP_KAFKA_IN_REASON_MAX];
        /* A consumer error carries its text as the payload; bounded by len, not a NUL. */
        if (rkm->payload && rkm->len)
            snprintf(reason, sizeof(reason), "%.*s", (int)(rkm->len < 400 ? rkm->len : 400),
                     (const char *)rkm->payload);
        else
            snprintf(reason, sizeof(reason), "%s", rd_kafka_err2str(rkm->err));
        rd_kafka_resp_err_t err = rkm->err;
        rd_kafka_message_destroy(rkm);
        report(in, err, reason, 0);
        return;
    }
    p = part_find(in, rkm->partition);
    if (!p || p->revoking || (rkm->rkt && strcmp(rd_kafka_topic_name(rkm->rkt), in->topic))) {
        rd_kafka_message_destroy(rkm); /* not ours any more; its offset was never stored */
        return;
    }
    m = msg_copy(rkm, in->topic);
    rd_kafka_message_destroy(rkm);
    if (!m) {
        report(in, RD_KAFKA_RESP_ERR__FATAL, "out of memory copying a message", 1);
        return;
    }
    if (in->paused)
        park(in, m);
    else
        deliver(in, m);
}

/* While closing: the group queue is forwarded to closeq and served with the event API. */
static void serve_close(jp_kafka_in_t *in, int budget)
{
    rd_kafka_event_t *ev;

    while (budget-- > 0 && !in->destroy_pending && (ev = rd_kafka_queue_poll(in->closeq, 0))) {
        switch (rd_kafka_event_type(ev)) {
        case RD_KAFKA_EVENT_REBALANCE:
            on_rebalance(in->rk, rd_kafka_event_error(ev), rd_kafka_event_topic_partition_list(ev),
                         in);
            break;
        case RD_KAFKA_EVENT_ERROR:
            report(in, rd_kafka_event_error(ev), rd_kafka_event_error_string(ev),
                   rd_kafka_event_error_is_fatal(ev));
            break;
        default: /* fetched messages are not delivered once close has started */
            break;
        }
        rd_kafka_event_destroy(ev);
    }
    if (!in->closed && (in->close_failed || rd_kafka_consumer_closed(in->rk))) {
        in->closed = 1;
        jp_info(JP_KAFKA_IN_COMPONENT, "%s: consumer closed (%s)", rd_kafka_name(in->rk),
                in->close_failed ? "close failed" : "left the group");
    }
}

static void drain(jp_kafka_in_t *in)
{
    int budget = JP_KAFKA_IN_BATCH, more;

    if (in->depth || in->destroyed)
        return;
    in->depth++;

    rd_kafka_queue_poll_callback(in->commitq, 0);
    rb_process(in);
    if (in->closing) {
        serve_close(in, budget);
    } else {
        while (budget-- > 0 && !in->closing && !in->destroy_pending) {
            rd_kafka_message_t *rkm;
            if (!in->paused && in->parked_head) {
                deliver(in, unpark(in));
                continue;
            }
            if (!(rkm = rd_kafka_consumer_poll(in->rk, 0)))
                break;
            handle_message(in, rkm);
        }
    }
    in->depth--;
    if (in->destroy_pending) {
        destroy_now(in);
        return;
    }

    more = (in->rb_head && !in->revoke) || (!in->closing && !in->paused && in->parked_head) ||
           rd_kafka_queue_length(in->closing ? in->closeq : in->q) > 0 ||
           (in->closed && !in->close_notified);
    if (more)
        uv_idle_start(&in->idle, on_idle);
    else
        uv_idle_stop(&in->idle);

    if (in->closed && !in->close_notified) {
        in->close_notified = 1;
        uv_idle_stop(&in->idle);
        /* Last thing: the callee may destroy the consumer from on_closed. */
        if (in->on_closed)
            in->on_closed(in->closed_opaque);
    }
}

static void on_readable(uv_poll_t *h, int status, int events)
{
    jp_kafka_in_t *in = h->data;
    char buf[256];

    (void)status;
    (void)events;
    while (read(in->fds[0], buf, sizeof(buf)) > 0)
        ;
    drain(in);
}

static void on_idle(uv_idle_t *h)
{
    drain(h->data);
}

static void on_timer(uv_timer_t *h)
{
    jp_kafka_in_t *in = h->data;
    if (in->close_deferred && uv_now(h->loop) >= in->close_deadline_ms)
        start_close(in);
    else if (in->closing && !in->closed && !in->close_failed &&
             uv_now(h->loop) >= in->close_deadline_ms) {
        /* The group never answered: stop waiting; the uncommitted events are redelivered to
         * the next owner, which answers them from their recorded outcomes. */
        jp_warn(JP_KAFKA_IN_COMPONENT, "%s: leaving the group took over %d s; closing without it",
                rd_kafka_name(in->rk), JP_KAFKA_IN_CLOSE_BOUND_MS / 1000);
        in->close_failed = 1;
    }
    drain(in);
}

/* ---------------------------------------------------------------- statistics */

static int64_t stat_int(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
}

/* Lag of one partition from its statistics: what is left after the stored
 * offset, else after the committed one, else after the fetch position. */
static int64_t partition_lag(const json_t *p)
{
    int64_t lag = stat_int(p, "consumer_lag_stored");
    if (lag < 0)
        lag = stat_int(p, "consumer_lag");
    if (lag < 0) {
        int64_t hi = stat_int(p, "hi_offset"), next = stat_int(p, "next_offset");
        lag = hi >= 0 && next >= 0 ? (hi > next ? hi - next : 0) : -1;
    }
    return lag;
}

/* librdkafka's statistics (every statistics.interval.ms), served on the loop
 * by the consumer poll like every other callback: the consumer lag of each
 * assigned partition and how many brokers are connected, into the metrics. */
static int on_stats(rd_kafka_t *rk, char *json, size_t json_len, void *opaque)
{
    jp_kafka_in_t *in = opaque;
    json_t *root = json_loadb(json, json_len, 0, NULL);
    const char *name;
    json_t *b;
    int up = 0;

    (void)rk;
    if (!root)
        return 0;
    json_object_foreach(json_object_get(root, "brokers"), name, b)
    {
        const char *state = json_string_value(json_object_get(b, "state"));
        const char *source = json_string_value(json_object_get(b, "source"));
        if (state && !strcmp(state, "UP") && !(source && !strcmp(source, "logical")))
            up++;
    }
    in->stats.brokers_up = up;
    jp_metrics_set(jp_metrics_worker()->kafka_brokers_up, NULL, up);
    const json_t *parts =
        json_object_get(json_object_get(json_object_get(root, "topics"), in->topic), "partitions");
    for (size_t i = 0; parts && i < in->nparts; i++) {
        char id[16];
        snprintf(id, sizeof(id), "%d", (int)in->parts[i].id);
        const json_t *p = json_object_get(parts, id);
        int64_t lag = p ? partition_lag(p) : -1;
        if (lag >= 0)
            jp_metrics_kafka_lag(in->topic, in->parts[i].id, lag);
    }
    json_decref(root);
    return 0; /* librdkafka frees json */
}

/* ---------------------------------------------------------------- life cycle */

static jp_err_t conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *errstr,
                         size_t errstr_size)
{
    char why[256];
    if (rd_kafka_conf_set(conf, name, value, why, sizeof(why)) != RD_KAFKA_CONF_OK)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "kafka consumer: %s: %s", name, why);
    return JP_OK;
}

static rd_kafka_conf_t *consumer_conf(jp_kafka_in_t *in, const jp_config_t *cfg, char *errstr,
                                      size_t errstr_size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (!conf) {
        jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "kafka consumer: out of memory");
        return NULL;
    }
    /* Defaults first, so that the kafka: map can override them ... */
    if ((cfg->worker.instance_id && *cfg->worker.instance_id &&
         conf_set(conf, "client.id", cfg->worker.instance_id, errstr, errstr_size)) ||
        conf_set(conf, "auto.offset.reset", "earliest", errstr, errstr_size) ||
        conf_set(conf, "partition.assignment.strategy", "cooperative-sticky", errstr,
                 errstr_size) ||
        conf_set(conf, "statistics.interval.ms", JP_KAFKA_IN_STATS_MS, errstr, errstr_size) ||
        jp_config_kafka_conf(cfg, conf, errstr, errstr_size) ||
        /* ... then what this module's offset semantics depend on. */
        conf_set(conf, "group.id", cfg->consumer.group, errstr, errstr_size) ||
        conf_set(conf, "enable.auto.offset.store", "false", errstr, errstr_size) ||
        conf_set(conf, "enable.auto.commit", "true", errstr, errstr_size) ||
        conf_set(conf, "enable.partition.eof", "false", errstr, errstr_size)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_log_cb(conf, jp_kafka_log_cb);
    rd_kafka_conf_set_error_cb(conf, on_rd_error);
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_offset_commit_cb(conf, on_auto_commit);
    rd_kafka_conf_set_stats_cb(conf, on_stats);
    rd_kafka_conf_set_opaque(conf, in);
    return conf;
}

static void free_state(jp_kafka_in_t *in)
{
    parked_drop(in, 1);
    while (in->rb_head) {
        rb_op_t *op = in->rb_head;
        in->rb_head = op->next;
        rd_kafka_topic_partition_list_destroy(op->parts);
        free(op);
    }
    in->rb_tail = NULL;
    if (in->revoke)
        rd_kafka_topic_partition_list_destroy(in->revoke);
    in->revoke = NULL;
    free(in->parts);
    in->parts = NULL;
    free(in->topic);
    in->topic = NULL;
}

/* Tear down librdkafka without running the blocking close (see jp_kafka_in_destroy). */
static void rk_teardown(jp_kafka_in_t *in)
{
    rd_kafka_queue_t *qs[3] = {in->q, in->commitq, in->closeq};
    for (int i = 0; i < 3; i++)
        if (qs[i]) {
            rd_kafka_queue_io_event_enable(qs[i], -1, NULL, 0);
            rd_kafka_queue_destroy(qs[i]);
        }
    in->q = in->commitq = in->closeq = NULL;
    if (in->rk)
        rd_kafka_destroy_flags(in->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    in->rk = NULL;
    if (in->fds[1] >= 0)
        close(in->fds[1]);
    in->fds[1] = -1;
}

/* A non-blocking, close-on-exec pipe (pipe2 is not in POSIX 2008). */
static int jp_kafka_pipe(int fds[2])
{
    if (pipe(fds) != 0)
        return -1;
    for (int i = 0; i < 2; i++)
        if (fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK) != 0 ||
            fcntl(fds[i], F_SETFD, FD_CLOEXEC) != 0) {
            close(fds[0]);
            close(fds[1]);
            fds[0] = fds[1] = -1;
            return -1;
        }
    return 0;
}

static void on_handle_closed(uv_handle_t *h)
{
    jp_kafka_in_t *in = h->data;
    if (--in->handles_open > 0)
        return;
    if (in->fds[0] >= 0)
        close(in->fds[0]);
    free(in);
}

jp_kafka_in_t *jp_kafka_in_new(uv_loop_t *loop, const jp_config_t *cfg,
                               const jp_kafka_in_cbs_t *cbs, char *errstr, size_t errstr_size)
{
    jp_kafka_in_t *in;
    rd_kafka_conf_t *conf;
    rd_kafka_topic_partition_list_t *sub;
    rd_kafka_resp_err_t err;
    char why[512];

    if (!loop || !cfg || !cbs || !cbs->on_message || !cbs->on_revoke) {
        jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                   "kafka consumer: loop, config, on_message and on_revoke are required");
        return NULL;
    }
    if (!(in = calloc(1, sizeof(*in))) || !(in->topic = strdup(cfg->topics.events))) {
        free(in);
        jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "kafka consumer: out of memory");
        return NULL;
    }
    in->loop = loop;
    in->cbs = *cbs;
    in->stats.brokers_up = -1;
    in->fds[0] = in->fds[1] = -1;
    if (jp_kafka_pipe(in->fds) != 0) {
        jp_err_set(errstr, errstr_size, JP_ERR_IO, "kafka consumer: pipe: %s", strerror(errno));
        goto fail;
    }
    if (!(conf = consumer_conf(in, cfg, errstr, errstr_size)))
        goto fail;
    if (!(in->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof(why)))) {
        rd_kafka_conf_destroy(conf);
        jp_err_set(errstr, errstr_size, JP_ERR_KAFKA, "kafka consumer: %s", why);
        goto fail;
    }
    /* Everything (errors, logs, rebalances, messages) on one queue, the group's. */
    rd_kafka_poll_set_consumer(in->rk);
    in->q = rd_kafka_queue_get_consumer(in->rk);
    in->commitq = rd_kafka_queue_new(in->rk);
    if (!in->q || !in->commitq) {
        jp_err_set(errstr, errstr_size, JP_ERR_KAFKA, "kafka consumer: no consumer queue");
        goto fail;
    }
    rd_kafka_queue_io_event_enable(in->q, in->fds[1], "c", 1);
    rd_kafka_queue_io_event_enable(in->commitq, in->fds[1], "m", 1);

    sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, in->topic, RD_KAFKA_PARTITION_UA);
    err = rd_kafka_subscribe(in->rk, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (err) {
        jp_err_set(errstr, errstr_size, JP_ERR_KAFKA, "kafka consumer: subscribing to %s: %s",
                   in->topic, rd_kafka_err2str(err));
        goto fail;
    }
    if (uv_poll_init(loop, &in->poll, in->fds[0]) != 0) {
        jp_err_set(errstr, errstr_size, JP_ERR_IO, "kafka consumer: cannot watch the pipe");
        goto fail;
    }
    uv_idle_init(loop, &in->idle);
    uv_timer_init(loop, &in->timer);
    in->poll.data = in->idle.data = in->timer.data = in;
    in->handles_open = 3;
    uv_poll_start(&in->poll, UV_READABLE, on_readable);
    uv_timer_start(&in->timer, on_timer, JP_KAFKA_IN_TIMER_MS, JP_KAFKA_IN_TIMER_MS);
    /* Ops may have landed before the pipe was watched. */
    uv_idle_start(&in->idle, on_idle);
    jp_info(JP_KAFKA_IN_COMPONENT, "consumer %s subscribed to %s in group %s",
            rd_kafka_name(in->rk), in->topic, cfg->consumer.group);
    return in;

fail:
    rk_teardown(in);
    if (in->fds[0] >= 0)
        close(in->fds[0]);
    free_state(in);
    free(in);
    return NULL;
}

void jp_kafka_in_pause(jp_kafka_in_t *in)
{
    rd_kafka_topic_partition_list_t *l;
    if (!in || in->paused || in->destroyed)
        return;
    in->paused = 1;
    if ((l = parts_list(in, want_pause))) {
        pause_list(in, l, 1);
        rd_kafka_topic_partition_list_destroy(l);
    }
}

void jp_kafka_in_resume(jp_kafka_in_t *in)
{
    rd_kafka_topic_partition_list_t *l;
    if (!in || !in->paused || in->destroyed)
        return;
    in->paused = 0;
    if ((l = parts_list(in, want_resume))) {
        pause_list(in, l, 0);
        rd_kafka_topic_partition_list_destroy(l);
    }
    /* Parked messages go first, from the loop. */
    uv_idle_start(&in->idle, on_idle);
}

jp_err_t jp_kafka_in_store_offset(jp_kafka_in_t *in, int32_t partition, int64_t next_offset,
                                  char *errstr, size_t errstr_size)
{
    rd_kafka_topic_partition_list_t *l;
    rd_kafka_resp_err_t err;
    in_part_t *p;

    if (!in || in->destroyed || next_offset < 0)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "kafka consumer: store_offset needs a consumer and an offset >= 0");
    if (!(p = part_find(in, partition)))
        return JP_OK; /* no longer ours: the next owner starts from the last commit */
    if (!(l = rd_kafka_topic_partition_list_new(1)))
        return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "kafka consumer: out of memory");
    rd_kafka_topic_partition_list_add(l, in->topic, partition)->offset = next_offset;
    err = rd_kafka_offsets_store(in->rk, l);
    if (!err)
        err = l->elems[0].err;
    rd_kafka_topic_partition_list_destroy(l);
    if (err == RD_KAFKA_RESP_ERR__STATE)
        return JP_OK; /* librdkafka already let it go */
    if (err)
        return jp_err_set(errstr, errstr_size, JP_ERR_KAFKA,
                          "kafka consumer: storing offset %lld of %s [%d]: %s",
                          (long long)next_offset, in->topic, (int)partition, rd_kafka_err2str(err));
    p->stored = next_offset;
    return JP_OK;
}

void jp_kafka_in_revoke_done(jp_kafka_in_t *in)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    rd_kafka_resp_err_t err;

    if (!in || in->destroyed || !in->revoke || in->revoke_done)
        return;
    in->revoke_done = 1;
    in->depth++; /* a failed commit is reported through on_error */
    if (!in->revoke_lost) {
        for (int i = 0; i < in->revoke->cnt; i++) {
            in_part_t *p = part_find(in, in->revoke->elems[i].partition);
            if (!p || p->stored < 0)
                continue;
            if (!l && !(l = rd_kafka_topic_partition_list_new(in->revoke->cnt)))
                break;
            rd_kafka_topic_partition_list_add(l, in->topic, p->id)->offset = p->stored;
        }
    }
    if (l) {
        err = rd_kafka_commit_queue(in->rk, l, in->commitq, on_revoke_commit, in);
        rd_kafka_topic_partition_list_destroy(l);
        if (!err) {
            in->revoke_committing = 1; /* on_revoke_commit releases them */
        } else {
            in->stats.revoke_commit_failures++;
            report(in, err, "cannot commit the offsets of revoked partitions", 0);
        }
    }
    if (!in->revoke_committing && !in->destroy_pending)
        finish_revoke(in);
    if (--in->depth == 0 && in->destroy_pending)
        destroy_now(in);
}

static void start_close(jp_kafka_in_t *in)
{
    rd_kafka_error_t *error;

    in->close_deferred = 0;
    in->closing = 1;
    in->close_deadline_ms = uv_now(in->timer.loop) + JP_KAFKA_IN_CLOSE_BOUND_MS;
    parked_drop(in, 1);
    if (!(in->closeq = rd_kafka_queue_new(in->rk))) {
        in->close_failed = 1;
    } else {
        rd_kafka_queue_io_event_enable(in->closeq, in->fds[1], "x", 1);
        if ((error = rd_kafka_consumer_close_queue(in->rk, in->closeq))) {
            jp_warn(JP_KAFKA_IN_COMPONENT, "close: %s", rd_kafka_error_string(error));
            rd_kafka_error_destroy(error);
            in->close_failed = 1;
        }
    }
    uv_idle_start(&in->idle, on_idle);
}

void jp_kafka_in_close(jp_kafka_in_t *in, void (*on_closed)(void *opaque), void *opaque)
{
    if (!in || in->closing || in->close_deferred || in->destroyed)
        return;
    in->on_closed = on_closed;
    in->closed_opaque = opaque;
    /* librdkafka 2.0's cooperative-sticky assignor aborts the process when a member is
     * destroyed after its JoinGroup but before its first assignment (librdkafka #4312, fixed
     * in 2.3): a member that was never assigned waits for that first rebalance, boundedly. */
    if (cooperative(in) && !in->assigned_once) {
        in->close_deferred = 1;
        in->close_deadline_ms = uv_now(in->timer.loop) + JP_KAFKA_IN_CLOSE_WAIT_MS;
        jp_info(JP_KAFKA_IN_COMPONENT, "%s: leaving the group after its first assignment",
                rd_kafka_name(in->rk));
        return;
    }
    start_close(in);
}

static void destroy_now(jp_kafka_in_t *in)
{
    in->destroyed = 1;
    rk_teardown(in);
    free_state(in);
    uv_close((uv_handle_t *)&in->poll, on_handle_closed);
    uv_close((uv_handle_t *)&in->idle, on_handle_closed);
    uv_close((uv_handle_t *)&in->timer, on_handle_closed);
}

void jp_kafka_in_destroy(jp_kafka_in_t *in)
{
    if (!in || in->destroyed || in->destroy_pending)
        return;
    if (in->depth) {
        in->destroy_pending = 1; /* called from a callback: finish when it returns */
        return;
    }
    destroy_now(in);
}

void jp_kafka_in_stats(const jp_kafka_in_t *in, jp_kafka_in_stats_t *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof(*out));
    if (!in)
        return;
    *out = in->stats;
    out->assigned = in->nparts;
    out->paused = in->paused;
}

size_t jp_kafka_in_lag(jp_kafka_in_t *in, int32_t *partitions, int64_t *lags, size_t max)
{
    rd_kafka_topic_partition_list_t *l;
    size_t n;

    if (!in || in->destroyed || !partitions || !lags || !max || !in->nparts)
        return 0;
    n = in->nparts < max ? in->nparts : max;
    if (!(l = rd_kafka_topic_partition_list_new((int)n)))
        return 0;
    for (size_t i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(l, in->topic, in->parts[i].id);
    rd_kafka_position(in->rk, l);
    for (size_t i = 0; i < n; i++) {
        int64_t lo = -1, hi = -1, pos = l->elems[i].offset;
        partitions[i] = in->parts[i].id;
        if (pos < 0)
            pos = in->parts[i].stored; /* nothing consumed yet in this session */
        rd_kafka_get_watermark_offsets(in->rk, in->topic, in->parts[i].id, &lo, &hi);
        lags[i] = (hi >= 0 && pos >= 0) ? (hi > pos ? hi - pos : 0) : -1;
    }
    rd_kafka_topic_partition_list_destroy(l);
    return n;
}
