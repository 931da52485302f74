/* cli_producer: what the producer CLIs (jiraprov-produce, jiraprov-loadgen) share besides their
 * inputs: where to send (--config / -b / -t / the environment), a librdkafka producer that counts
 * delivery reports by event type, timing, stopping on SIGINT/SIGTERM, the progress line and
 * summary formatting. The worker has its own producer (kafka_out); this one suits short-lived
 * command-line runs.
 *
 * Where to send, in order of precedence:
 *   bootstrap: -b, else the config's kafka bootstrap.servers, else $KAFKA_BOOTSTRAP;
 *   topic:     -t, else the config's topics.events, else $TOPIC_EVENTS, else "idhub.events";
 *   max bytes: --max-bytes, else the config's event.max_bytes, else JP_EVENT_MAX_BYTES.
 * Kafka properties are applied as: CLI defaults (message.timeout.ms 30000, linger.ms 5,
 * compression lz4), then the config's kafka block, then the guarantees (enable.idempotence=true,
 * acks=all), then -X overrides, then -b.
 *
 * Ownership: jp_cli_target_t and jp_cli_producer_t belong to the caller (their _destroy accept
 * NULL). A target keeps a copy of its args struct, whose strings (argv) must outlive it; the
 * producer keeps no pointer into the target after _new and copies every key and value it is
 * given (RD_KAFKA_MSG_F_COPY). Single-threaded: delivery reports are served by
 * jp_cli_producer_poll/_send/_flush on the calling thread. */
#ifndef JIRAPROV_CLI_PRODUCER_H
#define JIRAPROV_CLI_PRODUCER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jiraprov/config.h"
#include "jiraprov/err.h"
#include "jiraprov/event.h"

#define JP_CLI_DEFAULT_TOPIC "idhub.events"
#define JP_CLI_CONTENT_TYPE  "application/cloudevents+json"
#define JP_CLI_MAX_PROPS     64

/* What the user asked for on the command line; NULL/0 = not given. */
typedef struct jp_cli_target_args {
    const char *config_path;
    const char *bootstrap;
    const char *topic;
    size_t max_bytes;
    const char *props[JP_CLI_MAX_PROPS]; /* "name=value" (-X) */
    size_t prop_count;
} jp_cli_target_args_t;

/* The resolved destination. */
typedef struct jp_cli_target {
    jp_config_t *cfg;           /* loaded --config, or NULL */
    char *bootstrap;            /* NULL when nothing gave one (fine for dry runs) */
    char *topic;                /* never NULL */
    size_t max_bytes;           /* event size limit for validation */
    const char *bootstrap_from; /* "-b", "config", "KAFKA_BOOTSTRAP" or NULL */
    jp_cli_target_args_t args;
} jp_cli_target_t;

/* The destination options every CLI takes: -c/--config FILE, -b/--bootstrap H:P,
 * -t/--topic NAME and -X NAME=VALUE. Put JP_CLI_TARGET_SHORTOPTS in the getopt string and
 * JP_CLI_TARGET_LONGOPTS in the struct option table (the caller includes <getopt.h>), then give
 * every option getopt returns to jp_cli_target_option first. */
#define JP_CLI_TARGET_SHORTOPTS "c:b:t:X:"
/* clang-format off */
#define JP_CLI_TARGET_LONGOPTS                     \
    {"config", required_argument, NULL, 'c'},      \
    {"bootstrap", required_argument, NULL, 'b'},   \
    {"topic", required_argument, NULL, 't'}
/* clang-format on */

/* Records option `opt` with argument `value` (kept as a pointer, so it must outlive args) when
 * it is a destination option. Returns 1 if it was one, 0 if it was not (args untouched), -1 if it
 * was refused (too many -X; errstr says why). */
int jp_cli_target_option(jp_cli_target_args_t *args, int opt, const char *value, char *errstr,
                         size_t errstr_size);

/* Loads the config (if any) and resolves bootstrap, topic and size limit. */
jp_err_t jp_cli_target_resolve(const jp_cli_target_args_t *args, jp_cli_target_t **out,
                               char *errstr, size_t errstr_size);
void jp_cli_target_destroy(jp_cli_target_t *t);

/* Producer tuning on top of the defaults above (0 = keep the default). */
typedef struct jp_cli_producer_tuning {
    const char *client_id; /* NULL = "jiraprov-cli" */
    int linger_ms;
    int batch_num_messages;
    int queue_max_messages;
    int queue_max_kbytes;
} jp_cli_producer_tuning_t;

typedef struct jp_cli_producer jp_cli_producer_t;

typedef struct jp_cli_producer_stats {
    uint64_t sent;      /* accepted by librdkafka */
    uint64_t delivered; /* acknowledged by the broker */
    uint64_t failed;    /* delivery reports with an error, and sends librdkafka refused */
    uint64_t delivered_by_type[JP_EVENT__COUNT];
} jp_cli_producer_stats_t;

/* Creates the producer. JP_ERR_INVALID if there is no bootstrap or a property is refused. */
jp_err_t jp_cli_producer_new(const jp_cli_target_t *target, const jp_cli_producer_tuning_t *tuning,
                             jp_cli_producer_t **out, char *errstr, size_t errstr_size);

/* Queues one message with the content-type header; `type` selects the delivery counter (an
 * out-of-range type is counted in the totals only). Waits (serving delivery reports) while the
 * local queue is full. JP_ERR_KAFKA if librdkafka refuses the message (counted as failed). */
jp_err_t jp_cli_producer_send(jp_cli_producer_t *p, const char *key, size_t key_len,
                              const void *value, size_t value_len, int type, char *errstr,
                              size_t errstr_size);

/* Serves delivery reports for up to timeout_ms (0 = no wait). */
void jp_cli_producer_poll(jp_cli_producer_t *p, int timeout_ms);

/* Messages sent but not yet reported. */
uint64_t jp_cli_producer_pending(const jp_cli_producer_t *p);

/* Waits up to timeout_ms for every delivery report; JP_ERR_TIMEOUT if some are still
 * outstanding. */
jp_err_t jp_cli_producer_flush(jp_cli_producer_t *p, int timeout_ms, char *errstr,
                               size_t errstr_size);

const jp_cli_producer_stats_t *jp_cli_producer_stats(const jp_cli_producer_t *p);
/* The first delivery error seen ("" if none), and how many distinct ones were seen. */
const char *jp_cli_producer_first_error(const jp_cli_producer_t *p);

void jp_cli_producer_destroy(jp_cli_producer_t *p);

/* ---- small helpers shared by the CLIs ---- */

/* Monotonic seconds. */
double jp_cli_now(void);

/* Makes SIGINT and SIGTERM set the flag jp_cli_stopping() reads, so that a run can stop cleanly
 * and still print its summary; each handler resets itself, so a second SIGINT (or SIGTERM)
 * stops at once. */
void jp_cli_catch_stop(void);
bool jp_cli_stopping(void);

/* A progress line on stderr at most once a second: overwritten in place on a TTY, one line each
 * otherwise. */
typedef struct jp_cli_progress {
    bool enabled; /* --progress, or stderr is a TTY; never with --quiet */
    bool tty;     /* stderr is a TTY: lines overwrite each other */
    bool shown;   /* a line is on screen that clear must erase */
    double next;  /* jp_cli_now() at which the next line is due */
} jp_cli_progress_t;

/* Reads whether stderr is a TTY; the first line is due a second from now. */
void jp_cli_progress_init(jp_cli_progress_t *p, bool quiet, bool asked);
/* True (and the next line scheduled a second after `now`) when a line is due. */
bool jp_cli_progress_due(jp_cli_progress_t *p, double now);
/* Prints `line` in the progress style. */
void jp_cli_progress_show(jp_cli_progress_t *p, const char *line);
/* Erases the line on a TTY, before other output goes to stderr. */
void jp_cli_progress_clear(jp_cli_progress_t *p);

/* "account.create=3 account.update=2" for the non-zero counts ("none" when all are zero). */
void jp_cli_format_by_type(const uint64_t counts[JP_EVENT__COUNT], char *buf, size_t size);

/* Parses a whole unsigned decimal in [min, max]; false if it is anything else. */
bool jp_cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

#endif
