/* kafka_in: the worker's consumer of the events topic, on the worker's libuv
 * loop (no thread of its own beyond librdkafka's, no busy polling).
 *
 * Loop integration: the consumer queue signals a pipe watched by a uv_poll_t
 * (rd_kafka_queue_io_event_enable); each wake-up drains a bounded batch and
 * yields to the loop (uv_idle) when more remains; a 1 s uv_timer is a safety
 * net. Every callback runs on the loop thread, never from inside a call the
 * caller made into this module, except jp_kafka_in_close() which never calls
 * back synchronously either.
 *
 * Offsets: enable.auto.offset.store=false and enable.auto.commit=true, so
 * only offsets the caller stores with jp_kafka_in_store_offset() are
 * committed (periodically, and synchronously before partitions are given
 * away or the consumer closes). A message whose offset was never stored is
 * redelivered to the next owner of its partition.
 *
 * Rebalance: partition.assignment.strategy is cooperative-sticky unless the
 * `kafka:` config sets another; with it, partitions that stay assigned keep
 * flowing during a rebalance. Revocation is deferred: on_revoke() is called,
 * the revoked partitions are paused at once (nothing more of them is
 * delivered), and the partitions are only released after the callee called
 * jp_kafka_in_revoke_done() (then stored offsets are committed first). The
 * consumer keeps serving its queue meanwhile, so max.poll.interval.ms is not
 * at risk; the group rebalance waits for the release (bounded by the group's
 * rebalance timeout, max.poll.interval.ms), which is why the callee bounds
 * its own wait (worker.drain_timeout_ms). When the assignment was LOST
 * (session timeout, fatal fencing) on_revoke is still called, but the
 * offsets stored since then cannot be committed (the commit fails and is
 * logged); the work is redelivered elsewhere.
 *
 * Errors: on_error() gets every consumer error worth reporting, classified
 * with jp_classify_kafka(). FATAL (rd_kafka_fatal_error) means the consumer is
 * unusable: the caller should close, destroy and exit. Transient errors
 * (broker down, all brokers down) are RETRIABLE: librdkafka recovers by
 * itself; they are reported for logs and metrics.
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
     * outstanding at a time. */
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
 * on_closed(opaque) from the loop. Never blocks the loop. on_message is not
 * called after close starts. Call once. */
void jp_kafka_in_close(jp_kafka_in_t *in, void (*on_closed)(void *opaque), void *opaque);

/* NULL ok; after on_closed (or never started). Closes the loop handles
 * (uv_close: run the loop once more to finish them) and frees the
 * consumer; rd_kafka_destroy joins librdkafka's threads, which may block
 * briefly. Destroying without close skips the group leave (the group then
 * waits session.timeout.ms). */
void jp_kafka_in_destroy(jp_kafka_in_t *in);

typedef struct jp_kafka_in_stats {
    size_t assigned;   /* partitions currently assigned (including revoking ones) */
    int paused;        /* jp_kafka_in_pause() in effect */
    uint64_t consumed; /* messages delivered to on_message */
    uint64_t errors;   /* errors reported to on_error */
} jp_kafka_in_stats_t;
void jp_kafka_in_stats(const jp_kafka_in_t *in, jp_kafka_in_stats_t *out);

/* Consumer lag per assigned partition for metrics (high watermark − position),
 * from cached watermarks (no broker round trip); a partition without a
 * known position or watermark yet is reported with lag -1. Fills up to max
 * entries, returns the count. */
size_t jp_kafka_in_lag(jp_kafka_in_t *in, int32_t *partitions, int64_t *lags, size_t max);

#endif
