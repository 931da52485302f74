/* kafka_in: the worker's consumer of the events topic, on the worker's libuv
 * loop (no thread of its own beyond librdkafka's, no busy polling).
 *
 * Loop integration: the consumer queue signals a pipe watched by a uv_poll_t
 * (rd_kafka_queue_io_event_enable); each wake-up drains at most 500 messages
 * and yields to the loop (uv_idle) when more remains; a 1 s uv_timer is a
 * safety net and keeps the consumer polling (max.poll.interval.ms) while it
 * is paused. Every callback runs from the loop, never from inside a call the
 * caller made into this module (the one exception: a failed commit in
 * jp_kafka_in_revoke_done() is reported through on_error at once). Calls
 * return without waiting for the network; assign/unassign/pause/resume do a
 * short hand-off to librdkafka's own thread.
 *
 * Metrics: librdkafka's statistics (statistics.interval.ms, 5000 unless the
 * kafka: map sets it) give the consumer lag of every assigned partition and
 * the connected brokers (jp_metrics_kafka_lag, jiraprov_kafka_brokers_up);
 * a revoked partition's lag series is removed; every reported error is
 * counted by class (jp_metrics_kafka_error).
 *
 * Offsets: enable.auto.offset.store=false and enable.auto.commit=true, so
 * only offsets the caller stores with jp_kafka_in_store_offset() are
 * committed (every auto.commit.interval.ms, before partitions are released,
 * and at close). A message whose offset was never stored is redelivered to
 * the next owner of its partition.
 *
 * Rebalance: partition.assignment.strategy is cooperative-sticky unless the
 * `kafka:` config sets another (eager strategies work too: every revoke is
 * then of everything). Revocation is deferred: on_revoke() is called, nothing
 * more of those partitions is delivered, and they are released only after
 * the callee called jp_kafka_in_revoke_done(): their stored offsets are
 * committed first (rd_kafka_commit_queue; the release waits for its answer,
 * the loop does not), then incrementally unassigned. Facts of librdkafka
 * 2.0.2 this relies on (rdkafka_cgrp.c): the group waits in
 * WAIT_UNASSIGN_CALL for as long as the application takes, and
 * max.poll.interval.ms only counts the application's polls, which go on.
 * While a revoke is outstanding librdkafka itself holds fetching of ALL this
 * consumer's partitions (kept ones too) until the release; work already
 * delivered goes on. Cooperative: the group stays stable meanwhile and the
 * new owner simply waits (the callee's own timer, worker.drain_timeout_ms,
 * is the bound). Eager: the broker waits for this member's rejoin at most the
 * rebalance timeout (max.poll.interval.ms) before expelling it. When the
 * assignment was LOST (session timeout, fencing) on_revoke is still called
 * but nothing is committed; the work is redelivered elsewhere. A commit the
 * broker refuses (e.g. REBALANCE_IN_PROGRESS: the librdkafka mock refuses
 * commits while its group is re-forming, real brokers accept them from the
 * current generation) is reported RETRIABLE and the partitions are released
 * anyway: at-least-once, the next owner redoes from the last commit.
 *
 * Errors: on_error() gets every consumer error worth reporting, classified
 * with jp_classify_kafka(), after this module logged it. FATAL
 * (rd_kafka_fatal_error, out of memory) means the consumer is unusable: the
 * caller should stop and exit. Transient errors (broker down, all brokers
 * down) are RETRIABLE: librdkafka recovers by itself.
 *
 * Ownership: each message given to on_message() belongs to the callee
 * (jp_kafka_msg_destroy). Partition arrays given to on_assign/on_revoke are
 * valid only during the callback. The config is read during _new only.
 *
 * Threading: none. Every function must be called on the loop's thread. */
#ifndef JIRAPROV_KAFKA_IN_H
#define JIRAPROV_KAFKA_IN_H

#include "jiraprov/classify.h"
#include "jiraprov/config.h"
#include "jiraprov/err.h"
#include "jiraprov/kafka.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct jp_kafka_in jp_kafka_in_t;

typedef struct jp_kafka_in_cbs {
    /* A message of an assigned, not paused, not revoked partition; callee owns msg. */
    void (*on_message)(jp_kafka_msg_t *msg, void *opaque);
    /* Partitions newly assigned (incrementally: only the new ones; never called with none). */
    void (*on_assign)(const int32_t *partitions, size_t n, void *opaque);
    /* Partitions are being taken away. The consumer stops delivering their
     * messages at once. The callee finishes or hands back what is in flight and
     * then calls jp_kafka_in_revoke_done(); until then the rebalance is held
     * (bounded by the callee's own timer: the pipeline uses
     * worker.drain_timeout_ms). Offsets stored before revoke_done are committed
     * synchronously before the partitions are released. At most one revoke is
     * outstanding at a time; never called with none. */
    void (*on_revoke)(const int32_t *partitions, size_t n, void *opaque);
    /* FATAL → caller closes and exits; other classes are informational. */
    void (*on_error)(jp_class_t cls, const char *reason, void *opaque);
    void *opaque;
} jp_kafka_in_cbs_t;

/* Subscribes to cfg->topics.events in group cfg->consumer.group (client.id
 * from cfg->worker.instance_id unless the kafka: map sets it), with
 * enable.auto.offset.store=false, enable.auto.commit=true,
 * auto.offset.reset=earliest and cooperative-sticky assignment (each
 * overridable in the kafka: map except the offset-store pair, which is
 * forced). cbs is copied; on_message and on_revoke are required. Returns NULL
 * with errstr on a configuration or subscription error. */
jp_kafka_in_t *jp_kafka_in_new(uv_loop_t *loop, const jp_config_t *cfg,
                               const jp_kafka_in_cbs_t *cbs, char *errstr, size_t errstr_size);

/* Pause every assigned partition (idempotent). Messages already copied out of
 * librdkafka are not delivered while paused either. */
void jp_kafka_in_pause(jp_kafka_in_t *in);
/* Resume them (idempotent); partitions assigned while paused start paused. */
void jp_kafka_in_resume(jp_kafka_in_t *in);

/* "Next offset to read" semantics (the consumed message's offset + 1).
 * Ignored (JP_OK) for a partition no longer assigned. */
jp_err_t jp_kafka_in_store_offset(jp_kafka_in_t *in, int32_t partition, int64_t next_offset,
                                  char *errstr, size_t errstr_size);

/* The callee of on_revoke is done with the revoked partitions: commit the
 * stored offsets, then release them. No-op when no revoke is outstanding. */
void jp_kafka_in_revoke_done(jp_kafka_in_t *in);

/* Stop: commit stored offsets and leave the group cleanly
 * (rd_kafka_consumer_close_queue, the non-blocking close, which runs a final
 * revoke through on_revoke → the callee must call revoke_done promptly), then
 * on_closed(opaque) from the loop. Never waits on the network. on_message is
 * not called after close starts (messages held while paused are dropped:
 * their offsets were not stored). Later calls are ignored. Bounded: a member
 * never assigned first waits for its first assignment (at most 10 s: a
 * librdkafka 2.0 assignor bug), and leaving the group is given up after 15 s
 * (on_closed still comes; what was not committed is redelivered). */
void jp_kafka_in_close(jp_kafka_in_t *in, void (*on_closed)(void *opaque), void *opaque);

/* NULL ok; normally after on_closed (it may be called from on_closed or any
 * other callback: it then completes when the callback returns). Frees the
 * consumer (rd_kafka_destroy joins librdkafka's threads: blocks briefly) and
 * closes the loop handles (uv_close: the loop must run once more to free the
 * rest). Destroying without close skips the group leave and the final commit
 * (the group then waits session.timeout.ms for this member). */
void jp_kafka_in_destroy(jp_kafka_in_t *in);

typedef struct jp_kafka_in_stats {
    size_t assigned;   /* partitions currently assigned (including revoking ones) */
    int paused;        /* jp_kafka_in_pause() in effect */
    uint64_t consumed; /* messages delivered to on_message */
    uint64_t errors;   /* errors reported to on_error */
    /* revokes released without their offsets committed: the next owner redelivers them */
    uint64_t revoke_commit_failures;
    int brokers_up; /* brokers connected at the last statistics (statistics.interval.ms,
                     * 5 s unless the kafka: map says otherwise); 0 at once when all
                     * went down; -1 before the first statistics */
} jp_kafka_in_stats_t;
void jp_kafka_in_stats(const jp_kafka_in_t *in, jp_kafka_in_stats_t *out);

/* Consumer lag per assigned partition for metrics (high watermark − position),
 * from the watermarks cached from fetch responses (no broker round trip).
 * Before anything was consumed in this session the last stored offset
 * stands for the position; without either, or before the first fetch (and
 * while paused the watermark is not refreshed), the lag is -1. Fills up to
 * max entries, returns the count. */
size_t jp_kafka_in_lag(jp_kafka_in_t *in, int32_t *partitions, int64_t *lags, size_t max);

#endif
