/* cli_producer: destination resolution and a counting librdkafka producer for the CLIs (see
 * cli_producer.h). */
#include "jiraprov/cli_producer.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

struct jp_cli_producer {
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt;
    jp_cli_producer_stats_t stats;
    uint64_t dr_failed;
    char first_error[256];
    char last_kafka_error[256];
};

double jp_cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- stopping on a signal ---- */

static volatile sig_atomic_t g_stop;

static void on_stop_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

void jp_cli_catch_stop(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = SA_RESETHAND; /* a second signal stops at once */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

bool jp_cli_stopping(void)
{
    return g_stop != 0;
}

/* ---- progress line ---- */

void jp_cli_progress_init(jp_cli_progress_t *p, bool quiet, bool asked)
{
    p->tty = isatty(STDERR_FILENO) != 0;
    p->enabled = !quiet && (asked || p->tty);
    p->shown = false;
    p->next = jp_cli_now() + 1.0;
}

bool jp_cli_progress_due(jp_cli_progress_t *p, double now)
{
    if (!p->enabled || now < p->next)
        return false;
    p->next = now + 1.0;
    return true;
}

void jp_cli_progress_show(jp_cli_progress_t *p, const char *line)
{
    if (p->tty) {
        fprintf(stderr, "\r%s\033[K", line);
        p->shown = true;
    } else {
        fprintf(stderr, "%s\n", line);
    }
}

void jp_cli_progress_clear(jp_cli_progress_t *p)
{
    if (p->tty && p->shown)
        fputs("\r\033[K", stderr);
    p->shown = false;
}

bool jp_cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end = NULL;
    unsigned long long v;

    if (!s || *s < '0' || *s > '9')
        return false;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return false;
    *out = (uint64_t)v;
    return true;
}

void jp_cli_format_by_type(const uint64_t counts[JP_EVENT__COUNT], char *buf, size_t size)
{
    size_t used = 0;
    int t;

    if (size == 0)
        return;
    buf[0] = '\0';
    for (t = 0; t < JP_EVENT__COUNT; t++) {
        int n;
        if (counts[t] == 0)
            continue;
        n = snprintf(buf + used, size - used, "%s%s=%llu", used ? " " : "",
                     jp_event_type_name((jp_event_type_t)t), (unsigned long long)counts[t]);
        if (n < 0 || (size_t)n >= size - used)
            return; /* truncated: what fits is kept */
        used += (size_t)n;
    }
    if (used == 0)
        snprintf(buf, size, "none");
}

/* ---- destination ---- */

static const char *env_nonempty(const char *name)
{
    const char *v = getenv(name);
    return (v && *v) ? v : NULL;
}

static const char *config_bootstrap(const jp_config_t *cfg)
{
    size_t i;
    for (i = 0; cfg && i < cfg->kafka_count; i++)
        if (!strcmp(cfg->kafka[i].key, "bootstrap.servers"))
            return cfg->kafka[i].value;
    return NULL;
}

void jp_cli_target_destroy(jp_cli_target_t *t)
{
    if (!t)
        return;
    jp_config_destroy(t->cfg);
    free(t->bootstrap);
    free(t->topic);
    free(t);
}

int jp_cli_target_option(jp_cli_target_args_t *args, int opt, const char *value, char *errstr,
                         size_t errstr_size)
{
    switch (opt) {
    case 'c':
        args->config_path = value;
        return 1;
    case 'b':
        args->bootstrap = value;
        return 1;
    case 't':
        args->topic = value;
        return 1;
    case 'X':
        if (args->prop_count == JP_CLI_MAX_PROPS) {
            jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "at most %d -X properties",
                       JP_CLI_MAX_PROPS);
            return -1;
        }
        args->props[args->prop_count++] = value;
        return 1;
    default:
        return 0;
    }
}

jp_err_t jp_cli_target_resolve(const jp_cli_target_args_t *args, jp_cli_target_t **out,
                               char *errstr, size_t errstr_size)
{
    jp_cli_target_t *t = calloc(1, sizeof(*t));
    const char *bootstrap = NULL, *topic = NULL;
    jp_err_t err;

    *out = NULL;
    if (!t)
        return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
    t->args = *args;
    if (args->config_path) {
        err = jp_config_load(args->config_path, &t->cfg, errstr, errstr_size);
        if (err != JP_OK) {
            jp_cli_target_destroy(t);
            return err;
        }
    }
    if (args->bootstrap) {
        bootstrap = args->bootstrap;
        t->bootstrap_from = "-b";
    } else if (t->cfg) {
        bootstrap = config_bootstrap(t->cfg);
        t->bootstrap_from = "config";
    } else if ((bootstrap = env_nonempty("KAFKA_BOOTSTRAP"))) {
        t->bootstrap_from = "KAFKA_BOOTSTRAP";
    }
    if (args->topic)
        topic = args->topic;
    else if (t->cfg)
        topic = t->cfg->topics.events;
    else if (!(topic = env_nonempty("TOPIC_EVENTS")))
        topic = JP_CLI_DEFAULT_TOPIC;
    t->max_bytes = args->max_bytes;
    if (!t->max_bytes)
        t->max_bytes = (t->cfg && t->cfg->event.max_bytes > 0) ? (size_t)t->cfg->event.max_bytes
                                                               : JP_EVENT_MAX_BYTES;
    if ((bootstrap && !(t->bootstrap = strdup(bootstrap))) || !(t->topic = strdup(topic))) {
        jp_cli_target_destroy(t);
        return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
    }
    *out = t;
    return JP_OK;
}

/* ---- producer ---- */

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    jp_cli_producer_t *p = opaque;
    intptr_t type = (intptr_t)m->_private;

    (void)rk;
    if (m->err) {
        p->stats.failed++;
        p->dr_failed++;
        if (!p->first_error[0])
            snprintf(p->first_error, sizeof(p->first_error), "%s", rd_kafka_err2str(m->err));
        return;
    }
    p->stats.delivered++;
    if (type >= 0 && type < JP_EVENT__COUNT)
        p->stats.delivered_by_type[type]++;
}

/* Errors librdkafka reports outside a message (all brokers down, fatal idempotence errors).
 * Repeats of the same text are not printed again. */
static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    jp_cli_producer_t *p = opaque;
    char line[sizeof(p->last_kafka_error)];

    (void)rk;
    snprintf(line, sizeof(line), "%s: %s", rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
    if (!strcmp(line, p->last_kafka_error))
        return;
    memcpy(p->last_kafka_error, line, sizeof(line));
    fprintf(stderr, "kafka: %s\n", line);
}

/* librdkafka's own log: warnings and errors, and debug lines when -X debug=... asked for them;
 * not configuration notes such as "consumer property ignored by a producer", which a shared
 * worker config always triggers, nor connection failures, which on_error reports already. */
static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    if ((level > 4 && level != 7) || !strcmp(fac, "CONFWARN") || !strcmp(fac, "FAIL"))
        return;
    fprintf(stderr, "kafka: %s: %s\n", fac, buf);
}

static int name_is_secret(const char *name, size_t len)
{
    char lower[128];
    size_t i;

    if (len >= sizeof(lower))
        len = sizeof(lower) - 1;
    for (i = 0; i < len; i++)
        lower[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32 : name[i]);
    lower[len] = '\0';
    return strstr(lower, "password") || strstr(lower, "secret");
}

static jp_err_t conf_set(rd_kafka_conf_t *conf, const char *name, const char *value,
                         const char *origin, char *errstr, size_t errstr_size)
{
    char kerr[256];

    if (rd_kafka_conf_set(conf, name, value, kerr, sizeof(kerr)) == RD_KAFKA_CONF_OK)
        return JP_OK;
    if (name_is_secret(name, strlen(name)))
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "%s: Kafka property %s refused",
                          origin, name);
    return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "%s: %s", origin, kerr);
}

static jp_err_t conf_set_int(rd_kafka_conf_t *conf, const char *name, int value, char *errstr,
                             size_t errstr_size)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%d", value);
    return conf_set(conf, name, buf, "default", errstr, errstr_size);
}

static jp_err_t conf_apply_props(rd_kafka_conf_t *conf, const jp_cli_target_args_t *args,
                                 char *errstr, size_t errstr_size)
{
    size_t i;

    for (i = 0; i < args->prop_count; i++) {
        const char *eq = strchr(args->props[i], '=');
        char name[256];
        size_t nlen;
        jp_err_t err;

        if (!eq || eq == args->props[i])
            return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                              "-X expects name=value, got an argument without '='");
        nlen = (size_t)(eq - args->props[i]);
        if (nlen >= sizeof(name))
            return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "-X: property name too long");
        memcpy(name, args->props[i], nlen);
        name[nlen] = '\0';
        err = conf_set(conf, name, eq + 1, "-X", errstr, errstr_size);
        if (err != JP_OK)
            return err;
    }
    return JP_OK;
}

static jp_err_t build_conf(const jp_cli_target_t *t, const jp_cli_producer_tuning_t *tu,
                           rd_kafka_conf_t *conf, char *errstr, size_t errstr_size)
{
    jp_err_t err;

#define TRY_CONF(expr)                                                                             \
    do {                                                                                           \
        if ((err = (expr)) != JP_OK)                                                               \
            return err;                                                                            \
    } while (0)
    TRY_CONF(conf_set(conf, "client.id", tu->client_id ? tu->client_id : "jiraprov-cli", "default",
                      errstr, errstr_size));
    TRY_CONF(conf_set(conf, "compression.type", "lz4", "default", errstr, errstr_size));
    TRY_CONF(conf_set_int(conf, "message.timeout.ms", 30000, errstr, errstr_size));
    TRY_CONF(conf_set_int(conf, "linger.ms", tu->linger_ms > 0 ? tu->linger_ms : 5, errstr,
                          errstr_size));
    if (tu->batch_num_messages > 0)
        TRY_CONF(
            conf_set_int(conf, "batch.num.messages", tu->batch_num_messages, errstr, errstr_size));
    if (tu->queue_max_messages > 0)
        TRY_CONF(conf_set_int(conf, "queue.buffering.max.messages", tu->queue_max_messages, errstr,
                              errstr_size));
    if (tu->queue_max_kbytes > 0)
        TRY_CONF(conf_set_int(conf, "queue.buffering.max.kbytes", tu->queue_max_kbytes, errstr,
                              errstr_size));
    if (t->cfg)
        TRY_CONF(jp_config_kafka_conf(t->cfg, conf, errstr, errstr_size));
    /* Guarantees of the contract: no duplicates from retries, acknowledged by all replicas. */
    TRY_CONF(conf_set(conf, "enable.idempotence", "true", "producer", errstr, errstr_size));
    TRY_CONF(conf_set(conf, "acks", "all", "producer", errstr, errstr_size));
    TRY_CONF(conf_apply_props(conf, &t->args, errstr, errstr_size));
    /* last, so that -b (or $KAFKA_BOOTSTRAP without a config) wins over everything */
    if (t->bootstrap && t->bootstrap_from && strcmp(t->bootstrap_from, "config") != 0)
        TRY_CONF(conf_set(conf, "bootstrap.servers", t->bootstrap, t->bootstrap_from, errstr,
                          errstr_size));
#undef TRY_CONF
    return JP_OK;
}

jp_err_t jp_cli_producer_new(const jp_cli_target_t *target, const jp_cli_producer_tuning_t *tuning,
                             jp_cli_producer_t **out, char *errstr, size_t errstr_size)
{
    static const jp_cli_producer_tuning_t no_tuning;
    jp_cli_producer_t *p;
    rd_kafka_conf_t *conf;
    char kerr[512];
    jp_err_t err;

    *out = NULL;
    if (!target->bootstrap)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "no Kafka bootstrap servers: give --config FILE or -b HOST:PORT, or "
                          "set KAFKA_BOOTSTRAP (deploy/local/stack.env does)");
    p = calloc(1, sizeof(*p));
    conf = rd_kafka_conf_new();
    if (!p || !conf) {
        free(p);
        if (conf)
            rd_kafka_conf_destroy(conf);
        return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
    }
    err = build_conf(target, tuning ? tuning : &no_tuning, conf, errstr, errstr_size);
    if (err != JP_OK) {
        rd_kafka_conf_destroy(conf);
        free(p);
        return err;
    }
    rd_kafka_conf_set_opaque(conf, p);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_log_cb(conf, on_log);
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, kerr, sizeof(kerr));
    if (!p->rk) {
        rd_kafka_conf_destroy(conf);
        free(p);
        return jp_err_set(errstr, errstr_size, JP_ERR_KAFKA, "cannot create a producer: %s", kerr);
    }
    p->rkt = rd_kafka_topic_new(p->rk, target->topic, NULL);
    if (!p->rkt) {
        err = jp_err_set(errstr, errstr_size, JP_ERR_KAFKA, "cannot use topic %s: %s",
                         target->topic, rd_kafka_err2str(rd_kafka_last_error()));
        rd_kafka_destroy(p->rk);
        free(p);
        return err;
    }
    *out = p;
    return JP_OK;
}

jp_err_t jp_cli_producer_send(jp_cli_producer_t *p, const char *key, size_t key_len,
                              const void *value, size_t value_len, int type, char *errstr,
                              size_t errstr_size)
{
    for (;;) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
            p->rk, RD_KAFKA_V_RKT(p->rkt), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_KEY((void *)key, key_len), RD_KAFKA_V_VALUE((void *)value, value_len),
            RD_KAFKA_V_HEADER("content-type", JP_CLI_CONTENT_TYPE, -1),
            RD_KAFKA_V_OPAQUE((void *)(intptr_t)type), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            p->stats.sent++;
            return JP_OK;
        }
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            p->stats.failed++;
            if (!p->first_error[0])
                snprintf(p->first_error, sizeof(p->first_error), "%s", rd_kafka_err2str(err));
            return jp_err_set(errstr, errstr_size, JP_ERR_KAFKA, "produce failed: %s",
                              rd_kafka_err2str(err));
        }
        /* The local queue is full: let deliveries drain it. */
        rd_kafka_poll(p->rk, 5);
    }
}

void jp_cli_producer_poll(jp_cli_producer_t *p, int timeout_ms)
{
    rd_kafka_poll(p->rk, timeout_ms);
}

uint64_t jp_cli_producer_pending(const jp_cli_producer_t *p)
{
    return p->stats.sent - p->stats.delivered - p->dr_failed;
}

jp_err_t jp_cli_producer_flush(jp_cli_producer_t *p, int timeout_ms, char *errstr,
                               size_t errstr_size)
{
    double deadline = jp_cli_now() + timeout_ms / 1000.0;

    while (jp_cli_producer_pending(p) > 0) {
        double left = deadline - jp_cli_now();
        if (left <= 0)
            return jp_err_set(errstr, errstr_size, JP_ERR_TIMEOUT,
                              "%llu messages still without a delivery report",
                              (unsigned long long)jp_cli_producer_pending(p));
        rd_kafka_poll(p->rk, left > 0.1 ? 100 : (int)(left * 1000) + 1);
    }
    return JP_OK;
}

const jp_cli_producer_stats_t *jp_cli_producer_stats(const jp_cli_producer_t *p)
{
    return &p->stats;
}

const char *jp_cli_producer_first_error(const jp_cli_producer_t *p)
{
    return p->first_error;
}

void jp_cli_producer_destroy(jp_cli_producer_t *p)
{
    if (!p)
        return;
    if (p->rkt)
        rd_kafka_topic_destroy(p->rkt);
    if (p->rk)
        rd_kafka_destroy(p->rk);
    free(p);
}
