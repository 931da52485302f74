/* kafka_out: the worker's idempotent producer on the libuv loop (see kafka_out.h).
 *
 * librdkafka writes a byte to a non-blocking pipe when a delivery report lands on the
 * producer's main queue (rd_kafka_queue_io_event_enable); a uv_poll_t on the read end serves it
 * with rd_kafka_poll(0), so delivery callbacks run on the loop thread. A 1 s uv_timer is the
 * safety net for a missed wake-up.
 *
 * Every accepted produce owns a small context (callback, opaque) that travels as the message's
 * opaque and sits on a list, so that destroy can answer the ones librdkafka never reported. */
#include "jiraprov/kafka_out.h"

#include "jiraprov/log.h"
#include "jiraprov/metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define JP_KAFKA_OUT_TIMER_MS  1000
#define JP_KAFKA_OUT_PURGE_MS  2000 /* bound on waiting for purged reports at destroy */
#define JP_KAFKA_OUT_COMPONENT "kafka_out"
#define JP_KAFKA_OUT_ERR_MAX   512

typedef struct dr_ctx {
    jp_kafka_out_cb *cb;
    void *opaque;
    struct dr_ctx *prev, *next;
} dr_ctx_t;

struct jp_kafka_out {
    uv_loop_t *loop;
    rd_kafka_t *rk;
    rd_kafka_queue_t *mainq;
    int fds[2];
    uv_poll_t poll;
    uv_timer_t timer;
    int handles_open;
    dr_ctx_t *pending; /* accepted, not yet reported */
    size_t in_flight;
    int depth;           /* > 0 while delivery callbacks may run */
    int destroy_pending; /* destroy called from a delivery callback */
    int destroying;
    char last_error[JP_KAFKA_OUT_ERR_MAX]; /* to log a repeated error once */
};

static void destroy_now(jp_kafka_out_t *out);

static void ctx_unlink(jp_kafka_out_t *out, dr_ctx_t *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        out->pending = c->next;
    if (c->next)
        c->next->prev = c->prev;
    out->in_flight--;
}

/* Errors outside a message: brokers down, fatal idempotence errors. Logged, once per text. */
static void on_rd_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    jp_kafka_out_t *out = opaque;
    char line[JP_KAFKA_OUT_ERR_MAX], clean[JP_KAFKA_OUT_ERR_MAX];
    int fatal = err == RD_KAFKA_RESP_ERR__FATAL;

    if (fatal) {
        char fbuf[JP_KAFKA_OUT_ERR_MAX];
        rd_kafka_resp_err_t ferr = rd_kafka_fatal_error(rk, fbuf, sizeof(fbuf));
        snprintf(line, sizeof(line), "%s: %s", rd_kafka_err2name(ferr ? ferr : err),
                 ferr ? fbuf : reason);
    } else {
        snprintf(line, sizeof(line), "%s: %s", rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
    }
    jp_metrics_kafka_error("producer", jp_class_name(jp_classify_kafka(err, fatal, 0)));
    if (!fatal && !strcmp(line, out->last_error))
        return;
    memcpy(out->last_error, line, sizeof(line));
    jp_log_redact(line, clean, sizeof(clean));
    jp_log(fatal ? JP_LOG_ERROR : JP_LOG_WARN, JP_KAFKA_OUT_COMPONENT, JP_LOG_NO_CTX,
           "producer error (%s): %s", jp_class_name(jp_classify_kafka(err, fatal, 0)), clean);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    jp_kafka_out_t *out = opaque;
    dr_ctx_t *c = m->_private;
    char raw[JP_KAFKA_OUT_ERR_MAX], errstr[JP_KAFKA_OUT_ERR_MAX];
    jp_err_t err = JP_OK;
    jp_class_t cls = JP_CLASS_OK;

    if (!c)
        return;
    ctx_unlink(out, c);
    errstr[0] = '\0';
    if (m->err) {
        rd_kafka_resp_err_t kerr = m->err;
        int fatal = kerr == RD_KAFKA_RESP_ERR__FATAL;
        char fbuf[JP_KAFKA_OUT_ERR_MAX];
        /* Not rd_kafka_message_errstr(): for a delivery report the payload is the message
         * value, which it would return as if it were a NUL-terminated error text. */
        const char *why = rd_kafka_err2str(kerr);
        if (fatal) {
            rd_kafka_resp_err_t ferr = rd_kafka_fatal_error(rk, fbuf, sizeof(fbuf));
            if (ferr) {
                kerr = ferr;
                why = fbuf;
            }
        }
        cls = jp_classify_kafka((int)kerr, fatal, 0);
        err = (kerr == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT || kerr == RD_KAFKA_RESP_ERR__TIMED_OUT)
                  ? JP_ERR_TIMEOUT
                  : JP_ERR_KAFKA;
        if (kerr == RD_KAFKA_RESP_ERR__PURGE_QUEUE || kerr == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT)
            snprintf(raw, sizeof(raw), "producer destroyed before delivery to %s (%s)",
                     m->rkt ? rd_kafka_topic_name(m->rkt) : "?", rd_kafka_err2name(kerr));
        else
            snprintf(raw, sizeof(raw), "delivery to %s failed: %s: %s",
                     m->rkt ? rd_kafka_topic_name(m->rkt) : "?", rd_kafka_err2name(kerr), why);
        jp_log_redact(raw, errstr, sizeof(errstr));
    }
    if (c->cb)
        c->cb(err, cls, errstr, c->opaque);
    free(c);
}

/* Serve delivery reports; a destroy requested by a callback happens afterwards. */
static void serve(jp_kafka_out_t *out, int timeout_ms)
{
    if (out->depth || out->destroying)
        return;
    out->depth++;
    rd_kafka_poll(out->rk, timeout_ms);
    out->depth--;
    if (out->destroy_pending)
        destroy_now(out);
}

static void on_readable(uv_poll_t *h, int status, int events)
{
    jp_kafka_out_t *out = h->data;
    char buf[256];

    (void)status;
    (void)events;
    while (read(out->fds[0], buf, sizeof(buf)) > 0)
        ;
    serve(out, 0);
}

static void on_timer(uv_timer_t *h)
{
    serve(h->data, 0);
}

static jp_err_t conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *errstr,
                         size_t errstr_size)
{
    char why[256];
    if (rd_kafka_conf_set(conf, name, value, why, sizeof(why)) != RD_KAFKA_CONF_OK)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "kafka producer: %s: %s", name, why);
    return JP_OK;
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
    jp_kafka_out_t *out = h->data;
    if (--out->handles_open > 0)
        return;
    if (out->fds[0] >= 0)
        close(out->fds[0]);
    free(out);
}

jp_kafka_out_t *jp_kafka_out_new(uv_loop_t *loop, const jp_config_t *cfg, char *errstr,
                                 size_t errstr_size)
{
    jp_kafka_out_t *out;
    rd_kafka_conf_t *conf = NULL;
    char why[512];

    if (!loop || !cfg) {
        jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                   "kafka producer: loop and config are required");
        return NULL;
    }
    if (!(out = calloc(1, sizeof(*out))) || !(conf = rd_kafka_conf_new())) {
        free(out);
        jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "kafka producer: out of memory");
        return NULL;
    }
    out->loop = loop;
    out->fds[0] = out->fds[1] = -1;
    if (jp_kafka_pipe(out->fds) != 0) {
        jp_err_set(errstr, errstr_size, JP_ERR_IO, "kafka producer: pipe: %s", strerror(errno));
        goto fail;
    }
    if ((cfg->worker.instance_id && *cfg->worker.instance_id &&
         conf_set(conf, "client.id", cfg->worker.instance_id, errstr, errstr_size)) ||
        jp_config_kafka_conf(cfg, conf, errstr, errstr_size) ||
        conf_set(conf, "enable.idempotence", "true", errstr, errstr_size) ||
        conf_set(conf, "acks", "all", errstr, errstr_size))
        goto fail;
    rd_kafka_conf_set_log_cb(conf, jp_kafka_log_cb);
    rd_kafka_conf_set_error_cb(conf, on_rd_error);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, out);
    if (!(out->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why)))) {
        jp_err_set(errstr, errstr_size, JP_ERR_KAFKA, "kafka producer: %s", why);
        goto fail;
    }
    conf = NULL; /* owned by rk now */
    if (!(out->mainq = rd_kafka_queue_get_main(out->rk))) {
        jp_err_set(errstr, errstr_size, JP_ERR_KAFKA, "kafka producer: no main queue");
        goto fail;
    }
    rd_kafka_queue_io_event_enable(out->mainq, out->fds[1], "p", 1);
    if (uv_poll_init(loop, &out->poll, out->fds[0]) != 0) {
        jp_err_set(errstr, errstr_size, JP_ERR_IO, "kafka producer: cannot watch the pipe");
        goto fail;
    }
    uv_timer_init(loop, &out->timer);
    out->poll.data = out->timer.data = out;
    out->handles_open = 2;
    uv_poll_start(&out->poll, UV_READABLE, on_readable);
    uv_timer_start(&out->timer, on_timer, JP_KAFKA_OUT_TIMER_MS, JP_KAFKA_OUT_TIMER_MS);
    jp_info(JP_KAFKA_OUT_COMPONENT, "idempotent producer %s ready", rd_kafka_name(out->rk));
    return out;

fail:
    if (conf)
        rd_kafka_conf_destroy(conf);
    if (out->mainq)
        rd_kafka_queue_destroy(out->mainq);
    if (out->rk)
        rd_kafka_destroy(out->rk);
    for (int i = 0; i < 2; i++)
        if (out->fds[i] >= 0)
            close(out->fds[i]);
    free(out);
    return NULL;
}

static jp_err_t produce_error(jp_kafka_out_t *out, rd_kafka_resp_err_t kerr, const char *what,
                              const char *topic, char *errstr, size_t errstr_size)
{
    char fbuf[JP_KAFKA_OUT_ERR_MAX];

    switch (kerr) {
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
        return jp_err_set(errstr, errstr_size, JP_ERR_KAFKA,
                          "kafka producer: local queue full (%zu in flight), producing to %s",
                          out->in_flight, topic);
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
        return jp_err_set(errstr, errstr_size, JP_ERR_TOO_LARGE,
                          "kafka producer: message for %s is larger than message.max.bytes", topic);
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "kafka producer: %s: %s", topic,
                          what ? what : rd_kafka_err2str(kerr));
    case RD_KAFKA_RESP_ERR__FATAL:
        if (rd_kafka_fatal_error(out->rk, fbuf, sizeof(fbuf)))
            what = fbuf;
        return jp_err_set(errstr, errstr_size, JP_ERR_KAFKA,
                          "kafka producer: fatal error, nothing can be produced: %s",
                          what ? what : rd_kafka_err2str(kerr));
    default:
        return jp_err_set(errstr, errstr_size, JP_ERR_KAFKA,
                          "kafka producer: producing to %s: %s: %s", topic, rd_kafka_err2name(kerr),
                          what ? what : rd_kafka_err2str(kerr));
    }
}

jp_err_t jp_kafka_out_produce(jp_kafka_out_t *out, const char *topic, const void *key,
                              size_t key_len, const void *value, size_t value_len,
                              const jp_kafka_header_t *headers, size_t header_count,
                              jp_kafka_out_cb *cb, void *opaque, char *errstr, size_t errstr_size)
{
    rd_kafka_headers_t *hdrs = NULL;
    rd_kafka_vu_t vus[6];
    size_t nvu = 0;
    rd_kafka_error_t *error;
    dr_ctx_t *c;

    if (!out || out->destroying || out->destroy_pending || !topic || !*topic || (!key && key_len) ||
        (!value && value_len) || (!headers && header_count))
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "kafka producer: produce needs a live producer, a topic, and "
                          "pointers for every non-empty key, value and header list");
    for (size_t i = 0; i < header_count; i++)
        if (!headers[i].name || (!headers[i].value && headers[i].len))
            return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                              "kafka producer: header %zu has no name or no value pointer", i);
    if (!(c = calloc(1, sizeof(*c))))
        return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "kafka producer: out of memory");
    c->cb = cb;
    c->opaque = opaque;
    if (header_count) {
        if (!(hdrs = rd_kafka_headers_new(header_count))) {
            free(c);
            return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "kafka producer: out of memory");
        }
        for (size_t i = 0; i < header_count; i++)
            rd_kafka_header_add(hdrs, headers[i].name, -1, headers[i].value,
                                headers[i].value ? (ssize_t)headers[i].len : 0);
    }
    vus[nvu].vtype = RD_KAFKA_VTYPE_TOPIC;
    vus[nvu++].u.cstr = topic;
    vus[nvu].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
    vus[nvu++].u.i = RD_KAFKA_MSG_F_COPY;
    vus[nvu].vtype = RD_KAFKA_VTYPE_VALUE;
    vus[nvu].u.mem.ptr = (void *)value;
    vus[nvu++].u.mem.size = value_len;
    vus[nvu].vtype = RD_KAFKA_VTYPE_OPAQUE;
    vus[nvu++].u.ptr = c;
    if (key) {
        vus[nvu].vtype = RD_KAFKA_VTYPE_KEY;
        vus[nvu].u.mem.ptr = (void *)key;
        vus[nvu++].u.mem.size = key_len;
    }
    if (hdrs) {
        vus[nvu].vtype = RD_KAFKA_VTYPE_HEADERS;
        vus[nvu++].u.headers = hdrs;
    }
    if ((error = rd_kafka_produceva(out->rk, vus, nvu))) {
        rd_kafka_resp_err_t kerr = rd_kafka_error_code(error);
        char what[JP_KAFKA_OUT_ERR_MAX];
        snprintf(what, sizeof(what), "%s", rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
        if (hdrs)
            rd_kafka_headers_destroy(hdrs); /* not taken over on failure */
        free(c);
        return produce_error(out, kerr, what, topic, errstr, errstr_size);
    }
    c->next = out->pending;
    if (c->next)
        c->next->prev = c;
    out->pending = c;
    out->in_flight++;
    return JP_OK;
}

size_t jp_kafka_out_in_flight(const jp_kafka_out_t *out)
{
    return out ? out->in_flight : 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

size_t jp_kafka_out_flush(jp_kafka_out_t *out, int timeout_ms)
{
    size_t left;

    if (!out || out->destroying)
        return 0;
    if (out->depth)
        return out->in_flight; /* from a delivery callback: cannot block here */
    out->depth++;
    /* rd_kafka_flush() also makes librdkafka skip linger.ms and serves the reports. */
    rd_kafka_flush(out->rk, timeout_ms < 0 ? 0 : timeout_ms);
    rd_kafka_poll(out->rk, 0);
    out->depth--;
    left = out->in_flight;
    if (out->destroy_pending)
        destroy_now(out);
    return left;
}

static void destroy_now(jp_kafka_out_t *out)
{
    int64_t deadline = now_ms() + JP_KAFKA_OUT_PURGE_MS;

    out->destroying = 1;
    out->depth++;
    /* Fail what is still queued or in flight: each gets its report through the loop below. */
    rd_kafka_purge(out->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    while (out->in_flight > 0 && now_ms() < deadline)
        rd_kafka_poll(out->rk, 50);
    /* Whatever librdkafka did not report: answered here, and never polled for again. */
    while (out->pending) {
        dr_ctx_t *c = out->pending;
        ctx_unlink(out, c);
        if (c->cb)
            c->cb(JP_ERR_KAFKA, JP_CLASS_RETRIABLE, "producer destroyed before delivery",
                  c->opaque);
        free(c);
    }
    out->depth--;
    rd_kafka_queue_io_event_enable(out->mainq, -1, NULL, 0);
    rd_kafka_queue_destroy(out->mainq);
    rd_kafka_destroy(out->rk);
    out->mainq = NULL;
    out->rk = NULL;
    close(out->fds[1]);
    out->fds[1] = -1;
    uv_close((uv_handle_t *)&out->poll, on_handle_closed);
    uv_close((uv_handle_t *)&out->timer, on_handle_closed);
}

void jp_kafka_out_destroy(jp_kafka_out_t *out)
{
    if (!out || out->destroying || out->destroy_pending)
        return;
    if (out->depth) {
        out->destroy_pending = 1; /* from a delivery callback: after it returns */
        return;
    }
    destroy_now(out);
}
