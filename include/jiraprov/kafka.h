/* Types shared by the worker's Kafka modules (kafka_in, kafka_out).
 *
 * Additions to the agreed interface (nothing was changed):
 *   jp_kafka_log_cb()  the librdkafka log callback both modules install; it
 *                      routes library logs through jp_log (component
 *                      "rdkafka", syslog levels mapped to jp_log levels).
 *
 * Ownership: a jp_kafka_msg_t handed out by kafka_in is a deep copy that
 * belongs to whoever holds it; free it with jp_kafka_msg_destroy(), which
 * frees the struct, its topic, key, value and every header. Headers passed to
 * kafka_out stay the caller's (they are copied). */
#ifndef JIRAPROV_KAFKA_H
#define JIRAPROV_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

/* One Kafka header. value may be NULL (len 0) for a null header value. */
typedef struct jp_kafka_header {
    char *name;
    void *value;
    size_t len;
} jp_kafka_header_t;

/* A consumed message, fully copied; owned by whoever holds it. */
typedef struct jp_kafka_msg {
    char *topic;
    int32_t partition;
    int64_t offset;
    int64_t timestamp_ms; /* -1 when the message has none */
    void *key;            /* NULL/0 if none; NUL-terminated too (extra byte, not counted) */
    size_t key_len;
    void *value; /* never NULL (an empty or null value is ""); NUL-terminated too (extra
                  * byte, not counted) */
    size_t value_len;
    jp_kafka_header_t *headers; /* header values are NUL-terminated too; NULL when none */
    size_t header_count;
} jp_kafka_msg_t;

/* Free a message and everything it owns; NULL is a no-op. */
void jp_kafka_msg_destroy(jp_kafka_msg_t *m);

/* librdkafka log_cb: logs through jp_log with component "rdkafka".
 * Installed by kafka_in and kafka_out on their configurations. */
void jp_kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf);

#endif
