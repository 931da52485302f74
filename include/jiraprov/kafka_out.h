/* kafka_out: the worker's idempotent producer (enable.idempotence=true,
 * acks=all) for the results, recon, audit and dead-letter topics, on the
 * worker's libuv loop.
 *
 * Loop integration: the producer's main queue signals a pipe watched by a
 * uv_poll_t (rd_kafka_queue_io_event_enable); delivery reports are served
 * with rd_kafka_poll(0) when it is readable, plus a 1 s uv_timer as a safety
 * net. Delivery callbacks always run on the loop thread, never from inside
 * jp_kafka_out_produce().
 *
 * Errors: a delivery failure is classified with jp_classify_kafka(); with
 * idempotence librdkafka retries transient failures itself until
 * message.timeout.ms, so what reaches the callback is final for that
 * message. A fatal producer error (idempotence broken) fails every later
 * delivery with class FATAL.
 *
 * Ownership: produce copies topic, key, value and headers. The errstr passed
 * to a callback is valid only during the callback.
 *
 * Threading: none. Every function must be called on the loop's thread. */
#ifndef JIRAPROV_KAFKA_OUT_H
#define JIRAPROV_KAFKA_OUT_H

#include "jiraprov/classify.h"
#include "jiraprov/config.h"
#include "jiraprov/err.h"
#include "jiraprov/kafka.h"

#include <stddef.h>
#include <uv.h>

typedef struct jp_kafka_out jp_kafka_out_t;

/* Delivery report, always on the loop thread, exactly once per accepted
 * produce. err == JP_OK and cls == JP_CLASS_OK on success; otherwise
 * JP_ERR_KAFKA (or JP_ERR_TIMEOUT for message.timeout.ms expiry) with a class
 * and a one-sentence errstr. */
typedef void jp_kafka_out_cb(jp_err_t err, jp_class_t cls, const char *errstr, void *opaque);

/* client.id from cfg->worker.instance_id unless the kafka: map sets it;
 * enable.idempotence and acks are forced. Returns NULL with errstr on error. */
jp_kafka_out_t *jp_kafka_out_new(uv_loop_t *loop, const jp_config_t *cfg, char *errstr,
                                 size_t errstr_size);

/* Copies everything. JP_OK → cb later exactly once. Error → no cb:
 * JP_ERR_KAFKA (local queue full: "queue full" in errstr, retry after some
 * deliveries; unknown topic; fatal producer), JP_ERR_TOO_LARGE (above
 * message.max.bytes), JP_ERR_INVALID (bad arguments), JP_ERR_NOMEM. key may
 * be NULL (no key); cb may be NULL. */
jp_err_t jp_kafka_out_produce(jp_kafka_out_t *out, const char *topic, const void *key,
                              size_t key_len, const void *value, size_t value_len,
                              const jp_kafka_header_t *headers, size_t header_count,
                              jp_kafka_out_cb *cb, void *opaque, char *errstr, size_t errstr_size);

/* Accepted produces whose callback has not run yet. */
size_t jp_kafka_out_in_flight(const jp_kafka_out_t *out);

/* Flush with a bound (blocks the loop: at shutdown only); serves delivery
 * callbacks meanwhile. Returns how many are still undelivered. From inside a
 * delivery callback it does not block and returns the in-flight count. */
size_t jp_kafka_out_flush(jp_kafka_out_t *out, int timeout_ms);

/* NULL ok. Does not flush: what is still queued or in flight is purged and
 * each pending callback is called, from inside this call, with JP_ERR_KAFKA /
 * RETRIABLE ("producer destroyed before delivery"; a purged in-flight message
 * may still have reached the broker). Called from a delivery callback, it
 * completes when the callback returns. Closes the loop handles (the loop must
 * run once more to free the rest). */
void jp_kafka_out_destroy(jp_kafka_out_t *out);

#endif
