/* Reading audit records for the verifier and the auditor's CLI; see include/jiraprov/audit.h.
 *
 * Kafka: one partition at a time (assign, no group, nothing committed), from its low watermark
 * to the high watermark read before it starts, so a stream's records come in offset order and
 * a run reads a fixed snapshot even while workers keep producing. */
#include "jiraprov/audit.h"

#include "jiraprov/kafka.h"
#include "jiraprov/log.h"

#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_TIMEOUT_MS 10000
#define POLL_MS            100

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void note(const jp_audit_source_t *src, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void note(const jp_audit_source_t *src, const char *fmt, ...)
{
    if (!src->on_note)
        return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    src->on_note(buf, src->opaque);
}

static jp_err_t set_prop(rd_kafka_conf_t *conf, const char *name, const char *value, char *errstr,
                         size_t errstr_size)
{
    char why[512], clean[512];
    if (rd_kafka_conf_set(conf, name, value, why, sizeof(why)) == RD_KAFKA_CONF_OK)
        return JP_OK;
    jp_log_redact(why, clean, sizeof(clean));
    return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "librdkafka property %s: %s", name,
                      clean);
}

static rd_kafka_t *consumer_new(const jp_audit_source_t *src, char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char err[512];
    jp_err_t rc = JP_OK;
    if (src->cfg)
        rc = jp_config_kafka_conf(src->cfg, conf, errstr, errstr_size);
    for (size_t i = 0; rc == JP_OK && src->props && src->props[i]; i++) {
        const char *eq = strchr(src->props[i], '=');
        if (!eq || eq == src->props[i]) {
            rc = jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "-X %s: expected NAME=VALUE",
                            src->props[i]);
            break;
        }
        char name[256];
        snprintf(name, sizeof(name), "%.*s", (int)(eq - src->props[i]), src->props[i]);
        rc = set_prop(conf, name, eq + 1, errstr, errstr_size);
    }
    if (rc == JP_OK && src->bootstrap)
        rc = set_prop(conf, "bootstrap.servers", src->bootstrap, errstr, errstr_size);
    if (rc == JP_OK) {
        size_t n = sizeof(err);
        if (rd_kafka_conf_get(conf, "bootstrap.servers", err, &n) != RD_KAFKA_CONF_OK || !err[0])
            rc = jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                            "no Kafka bootstrap servers (give -b, a config or $KAFKA_BOOTSTRAP)");
    }
    /* A plain reader: assign() joins no group (librdkafka still wants a group.id), no
     * commits, EOF reported. */
    char group[64];
    snprintf(group, sizeof(group), "jiraprov-audit-reader-%d", (int)getpid());
    if (rc == JP_OK)
        rc = set_prop(conf, "group.id", group, errstr, errstr_size);
    static const char *const fixed[][2] = {
        {"enable.auto.commit", "false"},   {"enable.auto.offset.store", "false"},
        {"enable.partition.eof", "true"},  {"client.id", "jiraprov-audit"},
        {"auto.offset.reset", "earliest"},
    };
    for (size_t i = 0; rc == JP_OK && i < sizeof(fixed) / sizeof(fixed[0]); i++)
        rc = set_prop(conf, fixed[i][0], fixed[i][1], errstr, errstr_size);
    if (rc != JP_OK) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_log_cb(conf, jp_kafka_log_cb);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (!rk) {
        char clean[512];
        jp_log_redact(err, clean, sizeof(clean));
        jp_err_set(errstr, errstr_size, JP_ERR_KAFKA, "cannot create a Kafka consumer: %s", clean);
        return NULL;
    }
    return rk;
}

/* Reads one partition [low, high). */
static jp_err_t read_partition(rd_kafka_t *rk, const jp_audit_source_t *src, int32_t part,
                               int64_t low, int64_t high, int *stopped, char *errstr,
                               size_t errstr_size)
{
    int timeout = src->timeout_ms > 0 ? src->timeout_ms : DEFAULT_TIMEOUT_MS;
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, src->topic, part)->offset = low;
    rd_kafka_resp_err_t e = rd_kafka_assign(rk, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (e)
        return jp_err_set(errstr, errstr_size, JP_ERR_KAFKA, "assigning %s partition %d: %s",
                          src->topic, (int)part, rd_kafka_err2str(e));
    int64_t next = low, deadline = mono_ms() + timeout;
    jp_err_t rc = JP_OK;
    while (next < high && rc == JP_OK && !*stopped) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, POLL_MS);
        if (!m) {
            if (mono_ms() > deadline)
                rc = jp_err_set(errstr, errstr_size, JP_ERR_TIMEOUT,
                                "%s partition %d: no progress at offset %lld of %lld for %d ms",
                                src->topic, (int)part, (long long)next, (long long)high, timeout);
            continue;
        }
        deadline = mono_ms() + timeout;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (m->offset < high) /* the end moved back: retention or a deleted topic */
                note(src, "%s partition %d ended at offset %lld before %lld", src->topic, (int)part,
                     (long long)m->offset, (long long)high);
            next = high;
        } else if (m->err) {
            rc = jp_err_set(errstr, errstr_size, JP_ERR_KAFKA, "%s partition %d: %s", src->topic,
                            (int)part, rd_kafka_message_errstr(m));
        } else if (m->partition == part && m->offset >= next) {
            if (m->offset > next)
                note(src,
                     "%s partition %d: offsets %lld..%lld are not readable (compacted or "
                     "transaction markers)",
                     src->topic, (int)part, (long long)next, (long long)m->offset - 1);
            if (m->offset < high) {
                jp_audit_pos_t pos = {src->topic, 0, part, m->offset};
                if (src->on_record(m->payload ? m->payload : "", m->len, &pos, src->opaque))
                    *stopped = 1;
            }
            next = m->offset + 1;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_assign(rk, NULL);
    return rc;
}

jp_err_t jp_audit_read_kafka(const jp_audit_source_t *src, char *errstr, size_t errstr_size)
{
    if (!src || !src->topic || !src->on_record)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "jp_audit_read_kafka: topic and on_record are required");
    int timeout = src->timeout_ms > 0 ? src->timeout_ms : DEFAULT_TIMEOUT_MS;
    rd_kafka_t *rk = consumer_new(src, errstr, errstr_size);
    if (!rk)
        return JP_ERR_INVALID;
    jp_err_t rc = JP_OK;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, src->topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e =
        rkt ? rd_kafka_metadata(rk, 0, rkt, &md, timeout) : RD_KAFKA_RESP_ERR__INVALID_ARG;
    if (e || !md || md->topic_cnt != 1) {
        rc = jp_err_set(errstr, errstr_size,
                        e == RD_KAFKA_RESP_ERR__TIMED_OUT ? JP_ERR_TIMEOUT : JP_ERR_KAFKA,
                        "reading the metadata of %s: %s", src->topic,
                        e ? rd_kafka_err2str(e) : "no such topic");
    } else if (md->topics[0].err) {
        rc = jp_err_set(errstr, errstr_size, JP_ERR_KAFKA, "topic %s: %s", src->topic,
                        rd_kafka_err2str(md->topics[0].err));
    }
    int count = rc == JP_OK ? md->topics[0].partition_cnt : 0;
    int32_t *parts = calloc(count > 0 ? (size_t)count : 1, sizeof(*parts));
    if (!parts && rc == JP_OK)
        rc = jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
    for (int i = 0; rc == JP_OK && i < count; i++)
        parts[i] = md->topics[0].partitions[i].id;
    if (md)
        rd_kafka_metadata_destroy(md);
    if (rkt)
        rd_kafka_topic_destroy(rkt);
    /* Partition ids in order, for a reading order that does not depend on the metadata. */
    for (int i = 1; rc == JP_OK && i < count; i++)
        for (int j = i; j > 0 && parts[j - 1] > parts[j]; j--) {
            int32_t t = parts[j];
            parts[j] = parts[j - 1];
            parts[j - 1] = t;
        }
    int stopped = 0;
    for (int i = 0; rc == JP_OK && i < count && !stopped; i++) {
        int64_t low = 0, high = 0;
        e = rd_kafka_query_watermark_offsets(rk, src->topic, parts[i], &low, &high, timeout);
        if (e) {
            rc = jp_err_set(errstr, errstr_size, JP_ERR_KAFKA, "watermarks of %s partition %d: %s",
                            src->topic, (int)parts[i], rd_kafka_err2str(e));
            break;
        }
        if (low > 0)
            note(src,
                 "%s partition %d begins at offset %lld: earlier records were deleted "
                 "(retention)",
                 src->topic, (int)parts[i], (long long)low);
        if (high > low)
            rc = read_partition(rk, src, parts[i], low, high, &stopped, errstr, errstr_size);
    }
    free(parts);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return rc;
}

jp_err_t jp_audit_read_file(const char *path, jp_audit_read_cb *on_record, void *opaque,
                            char *errstr, size_t errstr_size)
{
    int use_stdin = !strcmp(path, "-");
    FILE *f = use_stdin ? stdin : fopen(path, "rb");
    if (!f)
        return jp_err_set(errstr, errstr_size, JP_ERR_IO, "%s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long number = 0;
    jp_audit_pos_t pos = {use_stdin ? "<stdin>" : path, 0, -1, 0};
    jp_err_t rc = JP_OK;
    while ((n = getline(&line, &cap, f)) >= 0) {
        pos.line = ++number;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            n--;
        if (on_record(line, (size_t)n, &pos, opaque))
            break;
    }
    if (ferror(f))
        rc = jp_err_set(errstr, errstr_size, JP_ERR_IO, "%s: read error after line %ld", path,
                        number);
    free(line);
    if (!use_stdin)
        fclose(f);
    return rc;
}
