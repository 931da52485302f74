/* jiraprov-produce: validates IDHub events from JSON Lines, JSON or YAML files and publishes
 * them to the events topic, keyed by subject, the way IDHub would.
 *
 * Nothing invalid is ever sent: by default every input is read and validated with the contract
 * decoder before the first message goes out, and one invalid event means nothing is sent. With
 * --skip-invalid events are validated and sent one by one as they are read (streaming, so that
 * unbounded stdin works) and invalid ones are reported and left out.
 *
 * Ownership: main() owns everything; pending events (text and key) are freed once sent. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jiraprov/cli_input.h"
#include "jiraprov/cli_producer.h"
#include "jiraprov/event.h"

#define PROG "jiraprov-produce"

#define EXIT_BAD_EVENTS 1 /* some events invalid or not delivered */
/* parse_args: --help or --version was answered; main() exits 0 (only main exits). */
#define PARSED_EXIT_OK (-1)
#define EXIT_SETUP     2 /* usage, configuration, unreadable input, Kafka set-up */
#define EXIT_INTERRUPT 130

/* Flush waits this long at most; delivery reports normally arrive within message.timeout.ms. */
#define FLUSH_TIMEOUT_MS (3600 * 1000)

typedef struct pending {
    char *text;
    size_t len;
    char *key;
    int type;
} pending_t;

typedef struct opts {
    jp_cli_target_args_t target;
    jp_input_format_t format;
    int dry_run;
    int skip_invalid;
    int quiet;
    int progress;
    const char *const *inputs;
    int input_count;
} opts_t;

typedef struct run {
    opts_t opts;
    jp_cli_target_t *target;
    jp_cli_producer_t *producer;
    jp_event_limits_t limits;
    pending_t *pending;
    size_t pending_cnt, pending_cap;
    uint64_t read;
    uint64_t invalid;
    uint64_t valid_by_type[JP_EVENT__COUNT];
    double t0;
    jp_cli_progress_t progress;
} run_t;

static void usage(FILE *out)
{
    fprintf(
        out,
        "Usage: " PROG " [--config FILE | -b BOOTSTRAP] [-t TOPIC] [options] [FILE ...]\n"
        "Validates IDHub events and produces them to Kafka, keyed by subject, with the header\n"
        "content-type: " JP_CLI_CONTENT_TYPE ".\n"
        "\n"
        "Inputs (no FILE, or '-', reads stdin as JSON Lines):\n"
        "  *.jsonl, *.ndjson   one event per line; blank lines and '#' comment lines skipped;\n"
        "                      each line is sent exactly as read\n"
        "  *.json              one event object, or an array of events (sent as written)\n"
        "  *.yaml, *.yml       one event mapping or a sequence of them, per document;\n"
        "                      sent as compact JSON (plain scalars typed as in YAML 1.2:\n"
        "                      123 is a number, true a boolean, \"123\" stays a string)\n"
        "\n"
        "Destination:\n"
        "  -c, --config FILE   worker config: kafka properties, topics.events, event.max_bytes\n"
        "  -b, --bootstrap H:P bootstrap servers (overrides the config; default\n"
        "                      $KAFKA_BOOTSTRAP when neither is given)\n"
        "  -t, --topic NAME    topic (overrides the config; default $TOPIC_EVENTS, then\n"
        "                      " JP_CLI_DEFAULT_TOPIC ")\n"
        "  -X NAME=VALUE       extra librdkafka property (repeatable; applied last)\n"
        "\n"
        "Behaviour:\n"
        "  -f, --format FMT    read every input as jsonl, json or yaml (default: from the\n"
        "                      extension; jsonl for stdin)\n"
        "  -n, --dry-run       validate and summarise; connect to nothing, send nothing\n"
        "      --skip-invalid  send the valid events and skip the invalid ones (still exits 1);\n"
        "                      events are then validated and sent as they are read, so stdin\n"
        "                      streams. Without it every input (stdin included) is read and\n"
        "                      validated first, and a single invalid event means nothing is sent\n"
        "      --max-bytes N   largest event accepted (default: event.max_bytes, 1 MiB)\n"
        "      --progress      progress line every second (default only when stderr is a TTY)\n"
        "  -q, --quiet         no summary or progress; errors are still printed\n"
        "  -h, --help          this help\n"
        "  -V, --version       print the version\n"
        "\n"
        "Each invalid event is reported on stderr as FILE:LINE: REASON (the line where the\n"
        "event starts). The summary goes to stderr:\n"
        "  produced N events (by type: account.create=3 ...) to TOPIC in X.XXs; invalid M; "
        "failed K\n"
        "Producer guarantees: enable.idempotence=true, acks=all, compression lz4; the run ends\n"
        "when every delivery report has arrived.\n"
        "\n"
        "Exit status: 0 all sent; 1 some events invalid or not delivered; 2 usage,\n"
        "configuration, unreadable input or Kafka set-up error; 130 interrupted.\n");
}

static int parse_args(int argc, char **argv, opts_t *o)
{
    enum { OPT_SKIP = 256, OPT_MAX_BYTES, OPT_PROGRESS };
    static const struct option longopts[] = {
        JP_CLI_TARGET_LONGOPTS,
        {"format", required_argument, NULL, 'f'},
        {"dry-run", no_argument, NULL, 'n'},
        {"skip-invalid", no_argument, NULL, OPT_SKIP},
        {"max-bytes", required_argument, NULL, OPT_MAX_BYTES},
        {"progress", no_argument, NULL, OPT_PROGRESS},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    static const char *const stdin_only[] = {"-"};
    int c, fmt, taken;
    uint64_t n;
    char errstr[128];

    memset(o, 0, sizeof(*o));
    while ((c = getopt_long(argc, argv, JP_CLI_TARGET_SHORTOPTS "f:nqhV", longopts, NULL)) != -1) {
        taken = jp_cli_target_option(&o->target, c, optarg, errstr, sizeof(errstr));
        if (taken < 0) {
            fprintf(stderr, PROG ": %s\n", errstr);
            return EXIT_SETUP;
        }
        if (taken)
            continue;
        switch (c) {
        case 'f':
            fmt = jp_input_format_parse(optarg);
            if (fmt < 0) {
                fprintf(stderr, PROG ": --format must be jsonl, json or yaml, got \"%s\"\n",
                        optarg);
                return EXIT_SETUP;
            }
            o->format = (jp_input_format_t)fmt;
            break;
        case 'n':
            o->dry_run = 1;
            break;
        case OPT_SKIP:
            o->skip_invalid = 1;
            break;
        case OPT_MAX_BYTES:
            if (!jp_cli_parse_u64(optarg, 1, (uint64_t)1 << 30, &n)) {
                fprintf(stderr, PROG ": --max-bytes must be an integer 1..%lu\n", 1UL << 30);
                return EXIT_SETUP;
            }
            o->target.max_bytes = (size_t)n;
            break;
        case OPT_PROGRESS:
            o->progress = 1;
            break;
        case 'q':
            o->quiet = 1;
            break;
        case 'h':
            usage(stdout);
            return PARSED_EXIT_OK;
        case 'V':
            printf(PROG " %s (librdkafka %s)\n", JP_VERSION, rd_kafka_version_str());
            return PARSED_EXIT_OK;
        default:
            fprintf(stderr, "Try '" PROG " --help'.\n");
            return EXIT_SETUP;
        }
    }
    if (optind < argc) {
        o->inputs = (const char *const *)argv + optind;
        o->input_count = argc - optind;
    } else {
        o->inputs = stdin_only;
        o->input_count = 1;
    }
    return 0;
}

/* ---- progress and summary ---- */

static void progress_clear(run_t *r)
{
    jp_cli_progress_clear(&r->progress);
}

static void progress_maybe(run_t *r)
{
    double now = jp_cli_now();
    const jp_cli_producer_stats_t *st;
    char line[256];

    if (!jp_cli_progress_due(&r->progress, now))
        return;
    st = r->producer ? jp_cli_producer_stats(r->producer) : NULL;
    snprintf(line, sizeof(line),
             "%.0fs: read %llu events, invalid %llu; sent %llu, delivered %llu, failed %llu",
             now - r->t0, (unsigned long long)r->read, (unsigned long long)r->invalid,
             (unsigned long long)(st ? st->sent : 0), (unsigned long long)(st ? st->delivered : 0),
             (unsigned long long)(st ? st->failed : 0));
    jp_cli_progress_show(&r->progress, line);
}

static void summary(run_t *r)
{
    char by_type[1024];
    const jp_cli_producer_stats_t *st = r->producer ? jp_cli_producer_stats(r->producer) : NULL;
    uint64_t produced = st ? st->delivered : 0, failed = st ? st->failed : 0;
    uint64_t valid = 0;
    int t;

    progress_clear(r);
    for (t = 0; t < JP_EVENT__COUNT; t++)
        valid += r->valid_by_type[t];
    if (r->opts.quiet)
        return;
    if (r->opts.dry_run) {
        jp_cli_format_by_type(r->valid_by_type, by_type, sizeof(by_type));
        fprintf(stderr,
                "dry run: would produce %llu events (by type: %s) to %s in %.2fs; invalid %llu; "
                "failed 0\n",
                (unsigned long long)valid, by_type, r->target->topic, jp_cli_now() - r->t0,
                (unsigned long long)r->invalid);
        return;
    }
    if (st)
        jp_cli_format_by_type(st->delivered_by_type, by_type, sizeof(by_type));
    else
        snprintf(by_type, sizeof(by_type), "none");
    fprintf(stderr,
            "produced %llu events (by type: %s) to %s in %.2fs; invalid %llu; failed %llu\n",
            (unsigned long long)produced, by_type, r->target->topic, jp_cli_now() - r->t0,
            (unsigned long long)r->invalid, (unsigned long long)failed);
    if (failed && st)
        fprintf(stderr, PROG ": first delivery error: %s\n",
                jp_cli_producer_first_error(r->producer));
    if (!r->opts.skip_invalid && r->invalid && !st)
        fprintf(stderr,
                PROG ": nothing sent because of %llu invalid event%s; fix %s or use "
                     "--skip-invalid\n",
                (unsigned long long)r->invalid, r->invalid == 1 ? "" : "s",
                r->invalid == 1 ? "it" : "them");
}

/* ---- sending ---- */

static int ensure_producer(run_t *r)
{
    char errstr[512];
    jp_cli_producer_tuning_t tuning = {.client_id = PROG};

    if (r->producer)
        return 0;
    if (jp_cli_producer_new(r->target, &tuning, &r->producer, errstr, sizeof(errstr)) != JP_OK) {
        progress_clear(r);
        fprintf(stderr, PROG ": %s\n", errstr);
        return EXIT_SETUP;
    }
    return 0;
}

static void send_one(run_t *r, const char *key, const char *text, size_t len, int type)
{
    char errstr[256];

    if (jp_cli_producer_send(r->producer, key, strlen(key), text, len, type, errstr,
                             sizeof(errstr)) != JP_OK) {
        progress_clear(r);
        fprintf(stderr, PROG ": %s\n", errstr);
    }
    jp_cli_producer_poll(r->producer, 0);
    progress_maybe(r);
}

static int keep_pending(run_t *r, char *text, size_t len, const char *key, int type)
{
    pending_t *p;

    if (r->pending_cnt == r->pending_cap) {
        size_t ncap = r->pending_cap ? r->pending_cap * 2 : 1024;
        pending_t *n = realloc(r->pending, ncap * sizeof(*n));
        if (!n)
            return -1;
        r->pending = n;
        r->pending_cap = ncap;
    }
    p = &r->pending[r->pending_cnt];
    p->key = strdup(key);
    if (!p->key)
        return -1;
    p->text = text;
    p->len = len;
    p->type = type;
    r->pending_cnt++;
    return 0;
}

static int send_pending(run_t *r)
{
    size_t i;
    int rc = ensure_producer(r);

    if (rc)
        return rc;
    for (i = 0; i < r->pending_cnt && !jp_cli_stopping(); i++) {
        pending_t *p = &r->pending[i];
        send_one(r, p->key, p->text, p->len, p->type);
        free(p->text);
        free(p->key);
        p->text = p->key = NULL;
    }
    return 0;
}

static void free_pending(run_t *r)
{
    size_t i;
    for (i = 0; i < r->pending_cnt; i++) {
        free(r->pending[i].text);
        free(r->pending[i].key);
    }
    free(r->pending);
}

/* ---- reading and validating ---- */

/* Validates one record; sends it (streaming), keeps it (validate-first) or drops it (dry run).
 * Takes rec->text. Returns 0, or an exit status for a fatal problem. */
static int handle_record(run_t *r, const jp_input_t *in, jp_input_record_t *rec)
{
    jp_event_t *ev = NULL;
    char errstr[1024];
    jp_err_t err;
    int type;

    r->read++;
    err = jp_event_decode(rec->text, rec->len, &r->limits, &ev, errstr, sizeof(errstr));
    if (err == JP_ERR_NOMEM) {
        free(rec->text);
        fprintf(stderr, PROG ": out of memory\n");
        return EXIT_SETUP;
    }
    if (err != JP_OK) {
        progress_clear(r);
        fprintf(stderr, "%s:%ld: %s\n", jp_input_name(in), rec->line, errstr);
        r->invalid++;
        free(rec->text);
        return 0;
    }
    type = (int)ev->type;
    r->valid_by_type[type]++;
    if (r->opts.dry_run) {
        free(rec->text);
    } else if (r->opts.skip_invalid) {
        send_one(r, jp_event_key(ev), rec->text, rec->len, type);
        free(rec->text);
    } else if (keep_pending(r, rec->text, rec->len, jp_event_key(ev), type) != 0) {
        jp_event_destroy(ev);
        free(rec->text);
        fprintf(stderr, PROG ": out of memory holding the events; use --skip-invalid to stream\n");
        return EXIT_SETUP;
    }
    jp_event_destroy(ev);
    progress_maybe(r);
    return 0;
}

static int read_input(run_t *r, const char *path)
{
    jp_input_t *in = NULL;
    char errstr[512];
    jp_err_t err;
    int rc = 0;

    err = jp_input_open(path, r->opts.format, &in, errstr, sizeof(errstr));
    if (err != JP_OK) {
        progress_clear(r);
        fprintf(stderr, PROG ": %s\n", errstr);
        return EXIT_SETUP;
    }
    while (!rc && !jp_cli_stopping()) {
        jp_input_record_t rec;
        err = jp_input_next(in, &rec, errstr, sizeof(errstr));
        if (err == JP_ERR_IO && jp_cli_stopping())
            break; /* the signal interrupted a blocking read */
        if (err == JP_ERR_IO || err == JP_ERR_NOMEM) {
            progress_clear(r);
            fprintf(stderr, "%s: %s\n", jp_input_name(in), errstr);
            rc = EXIT_SETUP;
        } else if (err != JP_OK) {
            /* a syntax error: the rest of this input cannot be read */
            progress_clear(r);
            fprintf(stderr, "%s:%ld: %s\n", jp_input_name(in), rec.line, errstr);
            r->invalid++;
        } else if (!rec.text) {
            break;
        } else {
            rc = handle_record(r, in, &rec);
        }
    }
    jp_input_destroy(in);
    return rc;
}

static int finish_delivery(run_t *r)
{
    char errstr[256];

    if (!r->producer)
        return 0;
    while (jp_cli_producer_pending(r->producer) > 0) {
        jp_err_t err = jp_cli_producer_flush(r->producer, 1000, errstr, sizeof(errstr));
        progress_maybe(r);
        if (err == JP_OK)
            break;
        if (jp_cli_now() - r->t0 > FLUSH_TIMEOUT_MS / 1000.0) {
            progress_clear(r);
            fprintf(stderr, PROG ": %s\n", errstr);
            return EXIT_BAD_EVENTS;
        }
    }
    return 0;
}

static int run(run_t *r)
{
    int i, rc = 0;

    if (r->opts.skip_invalid && !r->opts.dry_run && (rc = ensure_producer(r)) != 0)
        return rc;
    for (i = 0; i < r->opts.input_count && !rc && !jp_cli_stopping(); i++)
        rc = read_input(r, r->opts.inputs[i]);
    if (rc)
        return rc;
    if (!jp_cli_stopping() && !r->opts.dry_run && !r->opts.skip_invalid && r->invalid == 0 &&
        r->pending_cnt > 0)
        rc = send_pending(r);
    if (!rc)
        rc = finish_delivery(r);
    return rc;
}

int main(int argc, char **argv)
{
    run_t r;
    char errstr[1024];
    int rc;

    memset(&r, 0, sizeof(r));
    rc = parse_args(argc, argv, &r.opts);
    if (rc)
        return rc == PARSED_EXIT_OK ? 0 : rc;
    if (jp_cli_target_resolve(&r.opts.target, &r.target, errstr, sizeof(errstr)) != JP_OK) {
        fprintf(stderr, PROG ": %s\n", errstr);
        return EXIT_SETUP;
    }
    r.limits.max_bytes = r.target->max_bytes;
    r.t0 = jp_cli_now();
    jp_cli_progress_init(&r.progress, r.opts.quiet, r.opts.progress);
    jp_cli_catch_stop();

    rc = run(&r);
    if (rc != EXIT_SETUP)
        summary(&r);
    else
        progress_clear(&r);
    if (!rc && jp_cli_stopping()) {
        fprintf(stderr, PROG ": interrupted\n");
        rc = EXIT_INTERRUPT;
    }
    if (!rc && (r.invalid > 0 || (r.producer && jp_cli_producer_stats(r.producer)->failed > 0)))
        rc = EXIT_BAD_EVENTS;
    jp_cli_producer_destroy(r.producer);
    free_pending(&r);
    jp_cli_target_destroy(r.target);
    return rc;
}
