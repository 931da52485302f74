/* The worker's one-way path, wired on one libuv loop:
 *
 *   kafka_in → decode → sequencer → (recorded outcome? | apply) → store outcome
 *            → publish result / audit / dead letter → sequencer done → offsets
 *
 * Each consumed message becomes an item that moves forward through these
 * stages and never back up; a retriable failure parks the item in the
 * sequencer (its subject waits, every other subject flows) and the item
 * re-enters at "apply" when its time comes.
 *
 * Guarantees (what the tests check):
 *   - every event ends with exactly one terminal outcome published on the
 *     results topic (republished unchanged when the event is redelivered);
 *   - a malformed event or a permanent failure also goes to the dead-letter
 *     topic with the original bytes and the reason; nothing is dropped;
 *   - a partition's stored offset never passes an event whose outcome is not
 *     published (the sequencer's commit offset);
 *   - events of one subject are applied in order; subjects run in parallel.
 *
 * Ownership: the pipeline owns every client it creates (Kafka consumer and
 * producer, Redis, HTTP, store, apply, sequencer) and every item. The config
 * is borrowed and must outlive the pipeline. */
#ifndef JIRAPROV_PIPELINE_H
#define JIRAPROV_PIPELINE_H

#include "jiraprov/config.h"
#include "jiraprov/err.h"

#include <stdint.h>
#include <uv.h>

typedef struct jp_pipeline jp_pipeline_t;

/* The time the worker itself adds to an event: from the moment the consumer
 * hands the message over to the moment its result is handed to the Kafka
 * producer, minus the time its Jira calls took (request sent to response
 * read, as the loop saw it). Recorded for events applied in one attempt that
 * were never parked; replays and retries say nothing about overhead.
 * Histogram bucket upper bounds in microseconds (the last bucket is +Inf). */
#define JP_PIPELINE_OVERHEAD_BUCKETS 34
extern const uint64_t jp_pipeline_overhead_bounds_us[JP_PIPELINE_OVERHEAD_BUCKETS - 1];

/* Counters for metrics and health; read from any thread (relaxed). */
typedef struct jp_pipeline_stats {
    uint64_t consumed;
    uint64_t completed[3]; /* by terminal status: succeeded, skipped, failed */
    uint64_t deadlettered;
    uint64_t replayed; /* redelivered events answered from the recorded outcome */
    uint64_t retries;
    uint64_t deferred; /* starts put off by the shared budget (not attempts) */
    uint64_t publish_errors;
    uint64_t redis_errors;
    uint64_t held; /* items held: buffered, running or parked */
    uint64_t parked;
    int paused;
    int assigned; /* partitions assigned */
    int redis_up;
    int stopping;
    /* The shared budget (limiter), refreshed each second. */
    uint64_t tokens_granted; /* calls let through */
    uint64_t tokens_waiting; /* calls waiting for a token now */
    uint64_t cooldowns;      /* cool-downs this worker set after 429/503 */
    uint64_t limiter_errors;
    int sites_quarantined; /* sites with an API in quarantine, as last seen */
    int site_count;
    /* Worker overhead per event (see above): per-bucket counts (not
     * cumulative), their sum in microseconds and how many. */
    uint64_t overhead_bucket[JP_PIPELINE_OVERHEAD_BUCKETS];
    uint64_t overhead_sum_us;
    uint64_t overhead_count;
} jp_pipeline_stats_t;

/* Creates every client and subscribes; events start flowing once the loop
 * runs. NULL with errstr on failure (bad Kafka property, ...). */
jp_pipeline_t *jp_pipeline_new(uv_loop_t *loop, const jp_config_t *cfg, char *errstr,
                               size_t errstr_size);

/* Graceful stop: take no new events, let what runs finish (bounded by
 * worker.drain_timeout_ms), publish, commit, leave the group, flush the
 * producer; then on_stopped. Idempotent. */
void jp_pipeline_stop(jp_pipeline_t *p, void (*on_stopped)(void *opaque), void *opaque);

/* Called when the pipeline meets a fatal error (e.g. a fatal Kafka error);
 * main() decides to exit. Set once after _new. */
void jp_pipeline_on_fatal(jp_pipeline_t *p, void (*on_fatal)(const char *reason, void *opaque),
                          void *opaque);

void jp_pipeline_stats(const jp_pipeline_t *p, jp_pipeline_stats_t *out);

/* Frees everything; call after on_stopped, from outside a loop callback (the
 * loop stopped). Handles close asynchronously: run the loop afterwards until
 * it is empty. NULL ok. */
void jp_pipeline_destroy(jp_pipeline_t *p);

#endif
