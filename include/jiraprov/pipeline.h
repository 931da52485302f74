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
 * is borrowed and must outlive the pipeline; jp_pipeline_reload() updates its
 * reloadable values in place (jp_config_take_reloadable), so every module
 * that borrows it (apply, the limiter) reads them at its next use. */
#ifndef JIRAPROV_PIPELINE_H
#define JIRAPROV_PIPELINE_H

#include "jiraprov/config.h"
#include "jiraprov/err.h"

#include <stdint.h>
#include <uv.h>

typedef struct jp_pipeline jp_pipeline_t;

/* Bucket upper bounds, in microseconds, of jiraprov_event_overhead_seconds
 * (the time the worker adds to an event; see record_overhead in pipeline.c and
 * the same numbers in seconds in metrics.c's catalogue), then +Inf. The
 * benchmark's limit program buckets its own overhead with them. */
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
    uint64_t in_flight; /* items being applied (jp_apply_start called, not yet back) */
    struct {
        uint64_t running, started, completed, records, calls, retries;
    } recon; /* reconciliation runs (jp_recon_stats) */
    int paused;
    int assigned; /* partitions assigned */
    int redis_up;
    int stopping;
    /* The shared budget (limiter), refreshed each second. */
    uint64_t tokens_granted; /* calls let through */
    uint64_t tokens_waiting; /* calls waiting for a token now */
    uint64_t cooldowns;      /* cool-downs this worker set after 429/503 */
    uint64_t limiter_errors;
    uint64_t tokens_leased; /* calls granted from a lease, without a round trip */
    uint64_t lease_lapsed;  /* leased tokens that lapsed unused */
} jp_pipeline_stats_t;

/* Creates every client and subscribes; events start flowing once the loop
 * runs. NULL with errstr on failure (bad Kafka property, ...). */
jp_pipeline_t *jp_pipeline_new(uv_loop_t *loop, jp_config_t *cfg, char *errstr, size_t errstr_size);

/* Graceful stop: take no new events, let what runs finish (bounded by
 * worker.drain_timeout_ms), publish, commit, leave the group, flush the
 * producer; then on_stopped. Idempotent. */
void jp_pipeline_stop(jp_pipeline_t *p, void (*on_stopped)(void *opaque), void *opaque);

/* Called when the pipeline meets a fatal error (e.g. a fatal Kafka error);
 * main() decides to exit. Set once after _new. */
void jp_pipeline_on_fatal(jp_pipeline_t *p, void (*on_fatal)(const char *reason, void *opaque),
                          void *opaque);

void jp_pipeline_stats(const jp_pipeline_t *p, jp_pipeline_stats_t *out);

/* SIGHUP: applies what can change while running from `fresh` (a config just
 * loaded and validated; it stays the caller's): compiles fresh's mapping and
 * swaps it in (in-flight events use it from their next step), then moves the
 * reloadable values (log.level, retry, rate_limits and each site's) into the
 * borrowed config with jp_config_take_reloadable(): the limiter reads a
 * site's rate_limits from there at every call. Everything else in fresh is
 * ignored: the caller reports those keys as needing a restart
 * (jp_config_diff, jp_config_reloadable). The log level itself is the
 * caller's (the process-wide logger, which -v overrides). On error nothing
 * changed. Loop thread only. */
jp_err_t jp_pipeline_reload(jp_pipeline_t *p, jp_config_t *fresh, char *errstr, size_t errstr_size);

/* Frees everything; call after on_stopped, from outside a loop callback (the
 * loop stopped). Handles close asynchronously: run the loop afterwards until
 * it is empty. NULL ok. */
void jp_pipeline_destroy(jp_pipeline_t *p);

#endif
