/* jiraprov-audit: the auditor's tool for the audit topic (or a JSON Lines export of it).
 *
 *   verify  recompute every record's MAC and check every stream's chain; a precise report
 *   report  summaries by actor, operation, site and outcome over a time range
 *   export  the records as CSV (spreadsheets) or JSON Lines (archives, byte for byte)
 *
 * Records come from Kafka (every partition, from its beginning to the end it had when the run
 * began; no consumer group, nothing committed) or from a file (-i). The chain, the canonical
 * form and the verifier are the audit module's (include/jiraprov/audit.h).
 *
 * Ownership: main() owns everything; the run's maps and verifier are freed before it returns. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jiraprov/audit.h"
#include "jiraprov/cli_producer.h"
#include "jiraprov/config.h"
#include "jiraprov/log.h"
#include "jiraprov/record.h"

#define PROG "jiraprov-audit"

#define EXIT_FAILED    1 /* verification failed, or records that could not be exported */
#define EXIT_SETUP     2 /* usage, configuration, keys, unreadable input, Kafka */
#define EXIT_INTERRUPT 130
#define PARSED_EXIT_OK (-1) /* --help / --version answered */
#define MAX_KEYS       16
#define DEFAULT_TOPIC  "jiraprov.audit"

enum { CMD_VERIFY, CMD_REPORT, CMD_EXPORT };
enum { FMT_TEXT, FMT_JSON, FMT_CSV, FMT_JSONL };

/* Outcome columns of the report, in order. */
static const char *const outcomes[] = {"succeeded", "failed",       "unknown",
                                       "skipped",   "deadlettered", "quarantined"};
#define NOUTCOMES (sizeof(outcomes) / sizeof(outcomes[0]))

typedef struct opts {
    int cmd;
    jp_cli_target_args_t target;
    const char *input;
    const char *key_files[MAX_KEYS];
    size_t key_file_count;
    int allow_unkeyed;
    int format;
    int format_given;
    const char *output;
    int64_t since, until; /* Unix ms; INT64_MIN / INT64_MAX when open */
    int quiet;
} opts_t;

/* One summary table: name -> counts by outcome. */
typedef struct table {
    json_t *index; /* name -> integer row */
    char **names;
    uint64_t (*counts)[NOUTCOMES + 1]; /* [outcome..., total] */
    size_t n, cap;
} table_t;

typedef struct run {
    opts_t o;
    jp_config_t *cfg;
    const char *topic;
    jp_audit_key_t keys[MAX_KEYS];
    char *key_bytes[MAX_KEYS];
    size_t key_count;
    jp_audit_verifier_t *verifier;
    FILE *out;
    uint64_t read, selected, stream_records, skipped_bad;
    json_t *events; /* distinct event ids (report) */
    json_t *streams;
    table_t by_actor, by_operation, by_site, by_outcome;
    int64_t first_ms, last_ms;
    int nomem;
} run_t;

static void usage(FILE *f)
{
    fprintf(
        f, "Usage: " PROG " verify [SOURCE] [--key-file FILE]... [--allow-unkeyed] [--format "
           "text|json]\n"
           "       " PROG " report [SOURCE] [--since TIME] [--until TIME] [--format text|json]\n"
           "                       [--key-file FILE]...\n"
           "       " PROG " export [SOURCE] --format csv|jsonl [-o FILE] [--since TIME] [--until "
           "TIME]\n"
           "\n"
           "verify  recomputes every audit record's HMAC and checks each stream (one per worker\n"
           "        process start): no record altered, dropped, reordered, replayed or inserted,\n"
           "        every restarted worker's stream continuing where its previous one ended.\n"
           "        Every problem is one line naming the stream, the seq and the position\n"
           "        (FILE:LINE, or TOPIC partition P offset O).\n"
           "report  counts of audit records by actor, operation, site and outcome (columns by\n"
           "        outcome) whose data.startedAt is in [--since, --until); with a key, the chain\n"
           "        is verified too and the report says so.\n"
           "export  --format jsonl writes the records byte for byte, one per line (an archive\n"
           "        that verify accepts); --format csv one row per record for spreadsheets\n"
           "        (cells starting with = + - @ are prefixed with ' against formula injection).\n"
           "\n"
           "SOURCE (default: Kafka):\n"
           "  -i, --input FILE      JSON Lines ('-' = stdin), e.g. an export\n"
           "  -c, --config FILE     worker config: kafka properties, topics.audit, audit.hmac_key\n"
           "  -b, --bootstrap H:P   bootstrap servers (default: the config's, then "
           "$KAFKA_BOOTSTRAP)\n"
           "  -t, --topic NAME      audit topic (default: the config's topics.audit, then\n"
           "                        $TOPIC_AUDIT, then " DEFAULT_TOPIC ")\n"
           "  -X NAME=VALUE         extra librdkafka property (repeatable)\n"
           "Keys: --key-file FILE (repeatable, e.g. the old and the new key of a rotation; one\n"
           "trailing newline is stripped), else the config's audit.hmac_key, else the file named\n"
           "by $AUDIT_KEY_FILE. verify needs a key; --allow-unkeyed accepts streams sealed\n"
           "without one (audit.unkeyed: true), which prove nothing against tampering.\n"
           "Times: 2026-11-22, 2026-11-22T09:00:00Z, 2026-11-22T10:00:00.250+01:00 (UTC when no\n"
           "zone is given).\n"
           "Other options: -o, --output FILE (default stdout); -q, --quiet (verify: problems\n"
           "only); -h, --help; -V, --version.\n"
           "\n"
           "Exit status: 0 verified (report/export: done); 1 verification failed, or some records\n"
           "could not be exported; 2 usage, configuration, key, input or Kafka error;\n"
           "130 interrupted.\n");
}

/* ---- small helpers ---------------------------------------------------------------- */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* RFC 3339 (or a date) to Unix ms; -1 on error (times before 1970 are not needed here). */
static int parse_time(const char *s, int64_t *out)
{
    int y, mo, d, h = 0, mi = 0, sec = 0, n = 0;
    long frac_ms = 0;
    if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10)
        return -1;
    const char *p = s + n;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        int m = 0;
        if (sscanf(p + 1, "%2d:%2d%n", &h, &mi, &m) != 2 || m != 5)
            return -1;
        p += 1 + m;
        if (*p == ':') {
            if (sscanf(p + 1, "%2d%n", &sec, &m) != 1 || m != 2)
                return -1;
            p += 1 + m;
            if (*p == '.') {
                int digits = 0;
                for (p++; *p >= '0' && *p <= '9'; p++, digits++)
                    if (digits < 3)
                        frac_ms = frac_ms * 10 + (*p - '0');
                if (!digits)
                    return -1;
                for (; digits < 3; digits++)
                    frac_ms *= 10;
            }
        }
    }
    int64_t offset_min = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om, m = 0;
        if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &m) != 2 || m != 5)
            return -1;
        offset_min = (oh * 60 + om) * (*p == '-' ? -1 : 1);
        p += 1 + m;
    }
    if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return -1;
    int64_t days = days_from_civil(y, (unsigned)mo, (unsigned)d);
    *out = ((days * 86400 + h * 3600 + mi * 60 + sec) - offset_min * 60) * 1000 + frac_ms;
    return 0;
}

static void format_ms(int64_t ms, char *out, size_t size)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        snprintf(out, size, "?");
        return;
    }
    snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

/* The whole file; one trailing newline stripped, as the config does with *_file secrets. */
static char *read_key_file(const char *path, size_t *len, char *err, size_t errsize)
{
    enum { MAX = 4096 };
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errsize, "--key-file %s: cannot open it", path);
        return NULL;
    }
    char *buf = malloc(MAX + 2);
    size_t n = 0, got;
    while (buf && n <= MAX && (got = fread(buf + n, 1, MAX + 1 - n, f)) > 0)
        n += got;
    int bad = ferror(f);
    fclose(f);
    if (!buf) {
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    if (bad || n > MAX) {
        free(buf);
        snprintf(err, errsize, "--key-file %s: %s", path,
                 bad ? "read error" : "not a key (larger than 4096 bytes)");
        return NULL;
    }
    if (n && buf[n - 1] == '\n')
        n--;
    buf[n] = '\0';
    if (n < JP_AUDIT_KEY_MIN) {
        free(buf);
        snprintf(err, errsize, "--key-file %s: an audit key has at least %d bytes", path,
                 JP_AUDIT_KEY_MIN);
        return NULL;
    }
    *len = n;
    return buf;
}

static const char *str_at(const json_t *obj, const char *a, const char *b)
{
    const json_t *v = json_object_get(obj, a);
    if (b)
        v = json_object_get(v, b);
    return json_string_value(v);
}

/* ---- summary tables --------------------------------------------------------------- */

static int outcome_index(const char *o)
{
    for (size_t i = 0; o && i < NOUTCOMES; i++)
        if (!strcmp(o, outcomes[i]))
            return (int)i;
    return -1;
}

static void table_count(run_t *r, table_t *t, const char *name, int outcome)
{
    if (!name)
        name = "(none)";
    if (!t->index && !(t->index = json_object())) {
        r->nomem = 1;
        return;
    }
    json_t *row = json_object_get(t->index, name);
    size_t i;
    if (row) {
        i = (size_t)json_integer_value(row);
    } else {
        if (t->n == t->cap) {
            size_t cap = t->cap ? t->cap * 2 : 16;
            char **names = realloc(t->names, cap * sizeof(*names));
            if (names)
                t->names = names;
            uint64_t(*counts)[NOUTCOMES + 1] =
                names ? realloc(t->counts, cap * sizeof(*counts)) : NULL;
            if (!counts) {
                r->nomem = 1;
                return;
            }
            t->counts = counts;
            t->cap = cap;
        }
        i = t->n;
        t->names[i] = strdup(name);
        if (!t->names[i] || json_object_set_new(t->index, name, json_integer((json_int_t)i))) {
            free(t->names[i]);
            r->nomem = 1;
            return;
        }
        memset(t->counts[i], 0, sizeof(t->counts[i]));
        t->n++;
    }
    if (outcome >= 0)
        t->counts[i][outcome]++;
    t->counts[i][NOUTCOMES]++;
}

static void table_free(table_t *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->names[i]);
    free(t->names);
    free(t->counts);
    json_decref(t->index);
}

static int cmp_rows_by(const table_t *t, size_t a, size_t b)
{
    uint64_t x = t->counts[a][NOUTCOMES], y = t->counts[b][NOUTCOMES];
    if (x != y)
        return x > y ? -1 : 1;
    return strcmp(t->names[a], t->names[b]);
}

/* Row order: most records first, then by name. */
static size_t *table_order(const table_t *t)
{
    size_t *order = malloc((t->n ? t->n : 1) * sizeof(*order));
    if (!order)
        return NULL;
    for (size_t i = 0; i < t->n; i++)
        order[i] = i;
    for (size_t i = 1; i < t->n; i++)
        for (size_t j = i; j > 0 && cmp_rows_by(t, order[j - 1], order[j]) > 0; j--) {
            size_t tmp = order[j];
            order[j] = order[j - 1];
            order[j - 1] = tmp;
        }
    return order;
}

static void table_print(FILE *out, const char *title, const table_t *t)
{
    size_t w = strlen(title);
    for (size_t i = 0; i < t->n; i++)
        if (strlen(t->names[i]) > w)
            w = strlen(t->names[i]);
    fprintf(out, "\n%-*s %8s", (int)w, title, "records");
    for (size_t k = 0; k < NOUTCOMES; k++)
        fprintf(out, " %*s", (int)strlen(outcomes[k]) > 8 ? (int)strlen(outcomes[k]) : 8,
                outcomes[k]);
    fputc('\n', out);
    size_t *order = table_order(t);
    for (size_t j = 0; order && j < t->n; j++) {
        size_t i = order[j];
        fprintf(out, "%-*s %8llu", (int)w, t->names[i],
                (unsigned long long)t->counts[i][NOUTCOMES]);
        for (size_t k = 0; k < NOUTCOMES; k++)
            fprintf(out, " %*llu", (int)strlen(outcomes[k]) > 8 ? (int)strlen(outcomes[k]) : 8,
                    (unsigned long long)t->counts[i][k]);
        fputc('\n', out);
    }
    if (!t->n)
        fprintf(out, "(no records)\n");
    free(order);
}

static json_t *table_json(const table_t *t)
{
    json_t *obj = json_object();
    size_t *order = table_order(t);
    for (size_t j = 0; obj && order && j < t->n; j++) {
        size_t i = order[j];
        json_t *row = json_object();
        json_object_set_new(row, "records", json_integer((json_int_t)t->counts[i][NOUTCOMES]));
        for (size_t k = 0; k < NOUTCOMES; k++)
            json_object_set_new(row, outcomes[k], json_integer((json_int_t)t->counts[i][k]));
        json_object_set_new(obj, t->names[i], row);
    }
    free(order);
    return obj;
}

/* ---- CSV ----------------------------------------------------------------------------- */

static void csv_cell(FILE *out, const char *s, int first)
{
    if (!first)
        fputc(',', out);
    if (!s)
        return;
    int guard =
        s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@' || s[0] == '\t' || s[0] == '\r';
    int quote = guard || strpbrk(s, ",\"\r\n") != NULL;
    if (quote)
        fputc('"', out);
    if (guard)
        fputc('\'', out);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', out);
        fputc(*s, out);
    }
    if (quote)
        fputc('"', out);
}

static const char *const csv_columns[] = {
    "time",
    "startedAt",
    "stream",
    "seq",
    "worker",
    "actor",
    "eventId",
    "eventType",
    "site",
    "operation",
    "targetKind",
    "login",
    "group",
    "project",
    "role",
    "issueKey",
    "externalRef",
    "method",
    "path",
    "status",
    "outcome",
    "eventOutcome",
    "changedAttributes",
    "errorClass",
    "errorReason",
    "traceparent",
    "correlationid",
    "recordId",
    "mac",
};

static void csv_header(FILE *out)
{
    for (size_t i = 0; i < sizeof(csv_columns) / sizeof(csv_columns[0]); i++)
        csv_cell(out, csv_columns[i], i == 0);
    fputs("\r\n", out);
}

static void csv_row(FILE *out, const json_t *rec)
{
    const json_t *d = json_object_get(rec, "data");
    char seq[32] = "", status[32] = "", *changed = NULL;
    size_t changed_len = 0;
    const json_t *chain = json_object_get(d, JP_RECORD_AUDIT_CHAIN_FIELD);
    if (json_is_integer(json_object_get(chain, "seq")))
        snprintf(seq, sizeof(seq), "%lld",
                 (long long)json_integer_value(json_object_get(chain, "seq")));
    if (json_is_integer(json_object_get(d, "status")))
        snprintf(status, sizeof(status), "%lld",
                 (long long)json_integer_value(json_object_get(d, "status")));
    FILE *m = open_memstream(&changed, &changed_len);
    const json_t *arr = json_object_get(d, "changedAttributes");
    for (size_t i = 0; m && i < json_array_size(arr); i++)
        if (json_string_value(json_array_get(arr, i)))
            fprintf(m, "%s%s", i ? ";" : "", json_string_value(json_array_get(arr, i)));
    if (m)
        fclose(m);
    const char *cells[] = {
        str_at(rec, "time", NULL),
        str_at(d, "startedAt", NULL),
        str_at(chain, "stream", NULL),
        seq,
        str_at(d, "worker", NULL),
        str_at(d, "actor", NULL),
        str_at(d, "eventId", NULL),
        str_at(d, "eventType", NULL),
        str_at(d, "site", NULL),
        str_at(d, "operation", NULL),
        str_at(d, "target", "kind"),
        str_at(d, "target", "login"),
        str_at(d, "target", "group"),
        str_at(d, "target", "project"),
        str_at(d, "target", "role"),
        str_at(d, "target", "issueKey"),
        str_at(d, "target", "externalRef"),
        str_at(d, "method", NULL),
        str_at(d, "path", NULL),
        status,
        str_at(d, "outcome", NULL),
        str_at(d, "eventOutcome", NULL),
        changed,
        str_at(d, "error", "class"),
        str_at(d, "error", "reason"),
        str_at(d, "traceparent", NULL),
        str_at(d, "correlationid", NULL),
        str_at(rec, "id", NULL),
        str_at(chain, "mac", NULL),
    };
    _Static_assert(sizeof(cells) / sizeof(cells[0]) == sizeof(csv_columns) / sizeof(csv_columns[0]),
                   "one cell per column");
    for (size_t i = 0; i < sizeof(cells) / sizeof(cells[0]); i++)
        csv_cell(out, cells[i], i == 0);
    fputs("\r\n", out);
    free(changed);
}

/* ---- one record ------------------------------------------------------------------------ */

/* The record's data.startedAt (else its time) in ms, or -1. */
static int64_t record_ms(const json_t *rec)
{
    const char *t = str_at(rec, "data", "startedAt");
    int64_t ms;
    if (!t)
        t = str_at(rec, "time", NULL);
    return t && parse_time(t, &ms) == 0 ? ms : -1;
}

static int in_range(const run_t *r, int64_t ms)
{
    if (r->o.since == INT64_MIN && r->o.until == INT64_MAX)
        return 1;
    return ms >= 0 && ms >= r->o.since && ms < r->o.until;
}

static void summarise(run_t *r, const json_t *rec)
{
    const json_t *d = json_object_get(rec, "data");
    const char *op = str_at(d, "operation", NULL);
    const char *stream = str_at(d, JP_RECORD_AUDIT_CHAIN_FIELD, "stream");
    if (stream && !json_object_get(r->streams, stream))
        json_object_set_new(r->streams, stream, json_true());
    if (op && !strncmp(op, "stream.", 7)) {
        r->stream_records++;
        return;
    }
    int64_t ms = record_ms(rec);
    if (ms >= 0 && (!r->first_ms || ms < r->first_ms))
        r->first_ms = ms;
    if (ms > r->last_ms)
        r->last_ms = ms;
    const char *ev = str_at(d, "eventId", NULL);
    if (ev && !json_object_get(r->events, ev))
        json_object_set_new(r->events, ev, json_true());
    int oi = outcome_index(str_at(d, "outcome", NULL));
    table_count(r, &r->by_actor, str_at(d, "actor", NULL), oi);
    table_count(r, &r->by_operation, op, oi);
    table_count(r, &r->by_site, str_at(d, "site", NULL), oi);
    table_count(r, &r->by_outcome, str_at(d, "outcome", NULL), oi);
}

static int on_record(const char *text, size_t len, const jp_audit_pos_t *pos, void *opaque)
{
    run_t *r = opaque;
    size_t i = 0;
    while (i < len && (text[i] == ' ' || text[i] == '\t'))
        i++;
    if (i == len)
        return jp_cli_stopping();
    r->read++;
    if (r->verifier && jp_audit_verifier_add(r->verifier, text, len, pos) != JP_OK)
        r->nomem = 1;
    if (r->o.cmd == CMD_VERIFY)
        return jp_cli_stopping() || r->nomem;
    json_t *rec = json_loadb(text, len, 0, NULL);
    const char *type = str_at(rec, "type", NULL);
    if (!rec || !type || strcmp(type, JP_RECORD_TYPE_AUDIT) ||
        !json_is_object(json_object_get(rec, "data"))) {
        char where[512];
        jp_audit_pos_format(pos, where, sizeof(where));
        fprintf(stderr, PROG ": %s: not an audit record; left out\n", where);
        r->skipped_bad++;
        /* An unfiltered archive keeps everything as it was; the rest leaves it out. */
        if (r->o.cmd == CMD_EXPORT && r->o.format == FMT_JSONL && in_range(r, -1)) {
            fwrite(text, 1, len, r->out);
            fputc('\n', r->out);
        }
        json_decref(rec);
        return jp_cli_stopping();
    }
    if (in_range(r, record_ms(rec))) {
        r->selected++;
        if (r->o.cmd == CMD_REPORT) {
            summarise(r, rec);
        } else if (r->o.format == FMT_CSV) {
            csv_row(r->out, rec);
        } else {
            fwrite(text, 1, len, r->out);
            fputc('\n', r->out);
        }
    }
    json_decref(rec);
    return jp_cli_stopping() || r->nomem;
}

/* ---- output -------------------------------------------------------------------------------- */

static json_t *pos_json(const jp_audit_pos_t *pos)
{
    if (pos->partition >= 0)
        return json_pack("{s:s, s:i, s:I}", "topic", pos->source ? pos->source : "", "partition",
                         (int)pos->partition, "offset", (json_int_t)pos->offset);
    if (!pos->source)
        return json_null();
    return json_pack("{s:s, s:I}", "file", pos->source, "line", (json_int_t)pos->line);
}

static const char *source_name(const run_t *r)
{
    return r->o.input ? (strcmp(r->o.input, "-") ? r->o.input : "<stdin>") : r->topic;
}

/* Prints the verifier's findings; returns the number of problems. */
static size_t print_verification(run_t *r, FILE *out, int quiet)
{
    const jp_audit_problem_t *probs;
    const jp_audit_stream_info_t *streams;
    size_t np = jp_audit_verifier_problems(r->verifier, &probs);
    size_t ns = jp_audit_verifier_streams(r->verifier, &streams);
    uint64_t counts[JP_AUDIT__KINDS] = {0};
    for (size_t i = 0; i < np; i++)
        counts[probs[i].kind]++;
    if (r->o.format == FMT_JSON && r->o.cmd == CMD_VERIFY) {
        json_t *j = json_object(), *sa = json_array(), *pa = json_array();
        for (size_t i = 0; i < ns; i++) {
            const jp_audit_stream_info_t *s = &streams[i];
            json_array_append_new(
                sa,
                json_pack("{s:s, s:s, s:s, s:s, s:i, s:I, s:I, s:I, s:b, s:b, s:s, s:b}", "stream",
                          s->stream, "worker", s->worker, "alg", s->alg, "keyId", s->key_id,
                          "partition", (int)s->partition, "records", (json_int_t)s->records,
                          "firstSeq", (json_int_t)s->first_seq, "lastSeq", (json_int_t)s->last_seq,
                          "stopped", s->stopped, "continued", s->continued, "predecessor",
                          s->predecessor, "ok", s->ok));
        }
        for (size_t i = 0; i < np; i++) {
            const jp_audit_problem_t *p = &probs[i];
            json_array_append_new(pa, json_pack("{s:s, s:s, s:I, s:I, s:o, s:s}", "kind",
                                                jp_audit_problem_name(p->kind), "stream", p->stream,
                                                "seq", (json_int_t)p->seq, "seqLast",
                                                (json_int_t)p->seq_last, "position",
                                                pos_json(&p->pos), "message", p->message));
        }
        json_object_set_new(j, "source", json_string(source_name(r)));
        json_object_set_new(j, "records", json_integer((json_int_t)r->read));
        json_object_set_new(j, "streams", sa);
        json_object_set_new(j, "problems", pa);
        json_object_set_new(j, "ok", json_boolean(np == 0));
        json_dumpf(j, out, JSON_INDENT(2));
        fputc('\n', out);
        json_decref(j);
        return np;
    }
    if (!quiet)
        for (size_t i = 0; i < ns; i++) {
            const jp_audit_stream_info_t *s = &streams[i];
            char part[32] = "";
            if (s->partition >= 0)
                snprintf(part, sizeof(part), " partition %d", (int)s->partition);
            fprintf(out, "stream %s: worker %s%s, %llu record(s), seq %lld..%lld, %s%s%s%s: %s\n",
                    s->stream, s->worker[0] ? s->worker : "?", part, (unsigned long long)s->records,
                    (long long)s->first_seq, (long long)s->last_seq,
                    s->stopped     ? "stopped"
                    : s->continued ? "continued by a later stream"
                                   : "open (still running, or ended without a stop record)",
                    s->predecessor[0] ? ", continues " : "", s->predecessor,
                    strcmp(s->alg, JP_AUDIT_ALG_UNKEYED) ? "" : ", UNKEYED",
                    s->ok ? "ok" : "PROBLEMS");
        }
    for (size_t i = 0; i < np; i++)
        fprintf(out, "%s: %s\n", jp_audit_problem_name(probs[i].kind), probs[i].message);
    if (r->read == 0) {
        fprintf(out, "FAILED: no audit record in %s: nothing was verified\n", source_name(r));
        return 1;
    }
    if (np == 0) {
        fprintf(out, "verified: %llu record(s) in %zu stream(s) from %s: every chain is intact\n",
                (unsigned long long)r->read, ns, source_name(r));
    } else {
        fprintf(out, "FAILED: %zu problem(s) in %llu record(s) of %zu stream(s) from %s (", np,
                (unsigned long long)r->read, ns, source_name(r));
        int first = 1;
        for (int k = 0; k < JP_AUDIT__KINDS; k++)
            if (counts[k]) {
                fprintf(out, "%s%s %llu", first ? "" : ", ",
                        jp_audit_problem_name((jp_audit_problem_kind_t)k),
                        (unsigned long long)counts[k]);
                first = 0;
            }
        fprintf(out, ")\n");
    }
    return np;
}

static int print_report(run_t *r, size_t problems)
{
    FILE *out = r->out;
    char since[40] = "the beginning", until[40] = "now", first[40] = "-", last[40] = "-";
    if (r->o.since != INT64_MIN)
        format_ms(r->o.since, since, sizeof(since));
    if (r->o.until != INT64_MAX)
        format_ms(r->o.until, until, sizeof(until));
    if (r->first_ms)
        format_ms(r->first_ms, first, sizeof(first));
    if (r->last_ms)
        format_ms(r->last_ms, last, sizeof(last));
    const char *chain = !r->verifier ? "not verified (no key given)"
                        : problems   ? "VERIFICATION FAILED (run verify for the details)"
                                     : "verified";
    uint64_t audited = r->selected - r->stream_records;
    if (r->o.format == FMT_JSON) {
        json_t *j = json_pack(
            "{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:s, s:s, s:s, s:o, s:o, s:o, s:o}", "source",
            source_name(r), "since", r->o.since != INT64_MIN ? since : "", "until",
            r->o.until != INT64_MAX ? until : "", "recordsRead", (json_int_t)r->read, "records",
            (json_int_t)audited, "streamRecords", (json_int_t)r->stream_records, "events",
            (json_int_t)json_object_size(r->events), "streams",
            (json_int_t)json_object_size(r->streams), "chain", chain, "first", first, "last", last,
            "byActor", table_json(&r->by_actor), "byOperation", table_json(&r->by_operation),
            "bySite", table_json(&r->by_site), "byOutcome", table_json(&r->by_outcome));
        json_dumpf(j, out, JSON_INDENT(2));
        fputc('\n', out);
        json_decref(j);
        return 0;
    }
    fprintf(out, "audit report for %s\n", source_name(r));
    fprintf(out, "range: %s .. %s (data.startedAt)\n", since, until);
    fprintf(out,
            "records: %llu in range of %llu read (%llu stream records besides); %zu event(s); "
            "%zu stream(s); first %s, last %s\n",
            (unsigned long long)audited, (unsigned long long)r->read,
            (unsigned long long)r->stream_records, json_object_size(r->events),
            json_object_size(r->streams), first, last);
    fprintf(out, "chain: %s\n", chain);
    table_print(out, "actor", &r->by_actor);
    table_print(out, "operation", &r->by_operation);
    table_print(out, "site", &r->by_site);
    table_print(out, "outcome", &r->by_outcome);
    return 0;
}

/* ---- set-up ------------------------------------------------------------------------------ */

static int parse_args(int argc, char **argv, opts_t *o)
{
    enum { OPT_KEY = 256, OPT_ALLOW, OPT_SINCE, OPT_UNTIL, OPT_FORMAT };
    static const struct option longopts[] = {
        JP_CLI_TARGET_LONGOPTS,
        {"input", required_argument, NULL, 'i'},
        {"key-file", required_argument, NULL, OPT_KEY},
        {"allow-unkeyed", no_argument, NULL, OPT_ALLOW},
        {"since", required_argument, NULL, OPT_SINCE},
        {"until", required_argument, NULL, OPT_UNTIL},
        {"format", required_argument, NULL, OPT_FORMAT},
        {"output", required_argument, NULL, 'o'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    char errstr[128];
    int c;
    memset(o, 0, sizeof(*o));
    o->since = INT64_MIN;
    o->until = INT64_MAX;
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        usage(stdout);
        return PARSED_EXIT_OK;
    }
    if (argc >= 2 && (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version"))) {
        printf(PROG " %s (librdkafka %s)\n", JP_VERSION, rd_kafka_version_str());
        return PARSED_EXIT_OK;
    }
    if (argc < 2 ||
        (strcmp(argv[1], "verify") && strcmp(argv[1], "report") && strcmp(argv[1], "export"))) {
        fprintf(stderr, PROG ": the first argument is verify, report or export\n");
        fprintf(stderr, "Try '" PROG " --help'.\n");
        return EXIT_SETUP;
    }
    o->cmd = !strcmp(argv[1], "verify")   ? CMD_VERIFY
             : !strcmp(argv[1], "report") ? CMD_REPORT
                                          : CMD_EXPORT;
    argc--;
    argv++;
    while ((c = getopt_long(argc, argv, JP_CLI_TARGET_SHORTOPTS "i:o:qhV", longopts, NULL)) != -1) {
        int taken = jp_cli_target_option(&o->target, c, optarg, errstr, sizeof(errstr));
        if (taken < 0) {
            fprintf(stderr, PROG ": %s\n", errstr);
            return EXIT_SETUP;
        }
        if (taken)
            continue;
        switch (c) {
        case 'i':
            o->input = optarg;
            break;
        case OPT_KEY:
            if (o->key_file_count == MAX_KEYS) {
                fprintf(stderr, PROG ": at most %d --key-file\n", MAX_KEYS);
                return EXIT_SETUP;
            }
            o->key_files[o->key_file_count++] = optarg;
            break;
        case OPT_ALLOW:
            o->allow_unkeyed = 1;
            break;
        case OPT_SINCE:
        case OPT_UNTIL:
            if (parse_time(optarg, c == OPT_SINCE ? &o->since : &o->until) != 0) {
                fprintf(stderr, PROG ": --%s: expected an RFC 3339 time or a date, got \"%s\"\n",
                        c == OPT_SINCE ? "since" : "until", optarg);
                return EXIT_SETUP;
            }
            break;
        case OPT_FORMAT:
            o->format_given = 1;
            if (!strcmp(optarg, "text"))
                o->format = FMT_TEXT;
            else if (!strcmp(optarg, "json"))
                o->format = FMT_JSON;
            else if (!strcmp(optarg, "csv"))
                o->format = FMT_CSV;
            else if (!strcmp(optarg, "jsonl"))
                o->format = FMT_JSONL;
            else {
                fprintf(stderr, PROG ": --format: text, json, csv or jsonl, got \"%s\"\n", optarg);
                return EXIT_SETUP;
            }
            break;
        case 'o':
            o->output = optarg;
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
        fprintf(stderr, PROG ": unexpected argument \"%s\"\n", argv[optind]);
        return EXIT_SETUP;
    }
    int export = o->cmd == CMD_EXPORT;
    if (export && !o->format_given) {
        fprintf(stderr, PROG ": export needs --format csv or --format jsonl\n");
        return EXIT_SETUP;
    }
    if (o->format_given && export != (o->format == FMT_CSV || o->format == FMT_JSONL)) {
        fprintf(stderr, PROG ": --format: %s\n",
                export ? "export writes csv or jsonl" : "verify and report write text or json");
        return EXIT_SETUP;
    }
    if (o->cmd == CMD_VERIFY && (o->since != INT64_MIN || o->until != INT64_MAX)) {
        fprintf(stderr, PROG ": verify checks whole streams; --since/--until are for report and "
                             "export\n");
        return EXIT_SETUP;
    }
    if (o->since >= o->until) {
        fprintf(stderr, PROG ": --since must be before --until\n");
        return EXIT_SETUP;
    }
    return 0;
}

static int load_keys(run_t *r)
{
    char err[512];
    const char *env = getenv("AUDIT_KEY_FILE");
    for (size_t i = 0; i < r->o.key_file_count; i++) {
        size_t len = 0;
        char *k = read_key_file(r->o.key_files[i], &len, err, sizeof(err));
        if (!k) {
            fprintf(stderr, PROG ": %s\n", err);
            return EXIT_SETUP;
        }
        r->key_bytes[r->key_count] = k;
        r->keys[r->key_count].key = k;
        r->keys[r->key_count++].len = len;
    }
    if (!r->key_count && r->cfg && r->cfg->audit.hmac_key) {
        r->keys[0].key = r->cfg->audit.hmac_key;
        r->keys[0].len = strlen(r->cfg->audit.hmac_key);
        r->key_count = 1;
    }
    if (!r->key_count && env && *env) {
        size_t len = 0;
        char *k = read_key_file(env, &len, err, sizeof(err));
        if (!k) {
            fprintf(stderr, PROG ": $AUDIT_KEY_FILE: %s\n", err);
            return EXIT_SETUP;
        }
        r->key_bytes[0] = k;
        r->keys[0].key = k;
        r->keys[0].len = len;
        r->key_count = 1;
    }
    if (!r->key_count && r->o.cmd == CMD_VERIFY && !r->o.allow_unkeyed) {
        fprintf(stderr, PROG ": verify needs the audit key: --key-file FILE, a config with "
                             "audit.hmac_key, or $AUDIT_KEY_FILE (--allow-unkeyed checks unkeyed "
                             "streams only)\n");
        return EXIT_SETUP;
    }
    for (size_t i = 0; i < r->key_count; i++)
        jp_log_add_secret(r->keys[i].key); /* nothing printed may ever show it */
    return 0;
}

static void on_note(const char *note, void *opaque)
{
    (void)opaque;
    fprintf(stderr, PROG ": note: %s\n", note);
}

static int read_all(run_t *r)
{
    char err[1024];
    jp_err_t rc;
    if (r->o.input) {
        rc = jp_audit_read_file(r->o.input, on_record, r, err, sizeof(err));
    } else {
        const char *bootstrap = r->o.target.bootstrap;
        if (!bootstrap && !r->cfg)
            bootstrap = getenv("KAFKA_BOOTSTRAP");
        const char *props[JP_CLI_MAX_PROPS + 1];
        for (size_t i = 0; i < r->o.target.prop_count; i++)
            props[i] = r->o.target.props[i];
        props[r->o.target.prop_count] = NULL;
        jp_audit_source_t src = {r->cfg, bootstrap, props, r->topic, 0, on_record, on_note, r};
        rc = jp_audit_read_kafka(&src, err, sizeof(err));
    }
    if (rc != JP_OK) {
        fprintf(stderr, PROG ": %s\n", err);
        return EXIT_SETUP;
    }
    if (r->nomem) {
        fprintf(stderr, PROG ": out of memory\n");
        return EXIT_SETUP;
    }
    return jp_cli_stopping() ? EXIT_INTERRUPT : 0;
}

static int run(run_t *r)
{
    char err[1024];
    int rc;
    if (r->o.target.config_path &&
        jp_config_load(r->o.target.config_path, &r->cfg, err, sizeof(err)) != JP_OK) {
        fprintf(stderr, PROG ": %s\n", err);
        return EXIT_SETUP;
    }
    r->topic = r->o.target.topic                                 ? r->o.target.topic
               : r->cfg                                          ? r->cfg->topics.audit
               : getenv("TOPIC_AUDIT") && *getenv("TOPIC_AUDIT") ? getenv("TOPIC_AUDIT")
                                                                 : DEFAULT_TOPIC;
    if ((rc = load_keys(r)) != 0)
        return rc;
    if ((r->o.cmd != CMD_EXPORT && r->key_count) ||
        (r->o.cmd == CMD_VERIFY && r->o.allow_unkeyed)) {
        r->verifier =
            jp_audit_verifier_new(r->keys, r->key_count, r->o.allow_unkeyed, err, sizeof(err));
        if (!r->verifier) {
            fprintf(stderr, PROG ": %s\n", err);
            return EXIT_SETUP;
        }
    }
    r->out = stdout;
    if (r->o.output && !(r->out = fopen(r->o.output, "w"))) {
        fprintf(stderr, PROG ": cannot write %s\n", r->o.output);
        r->out = NULL;
        return EXIT_SETUP;
    }
    r->events = json_object();
    r->streams = json_object();
    if (!r->events || !r->streams)
        return EXIT_SETUP;
    if (r->o.cmd == CMD_EXPORT && r->o.format == FMT_CSV)
        csv_header(r->out);
    if (r->o.cmd == CMD_EXPORT && r->o.format == FMT_JSONL &&
        (r->o.since != INT64_MIN || r->o.until != INT64_MAX))
        fprintf(stderr, PROG ": note: a time-filtered export holds parts of streams; verify "
                             "reports the rest as dropped\n");
    if ((rc = read_all(r)) != 0)
        return rc;
    size_t problems = 0;
    if (r->verifier) {
        if (jp_audit_verifier_finish(r->verifier) != JP_OK) {
            fprintf(stderr, PROG ": out of memory\n");
            return EXIT_SETUP;
        }
        if (r->o.cmd == CMD_VERIFY)
            problems = print_verification(r, r->out, r->o.quiet);
        else
            problems = jp_audit_verifier_problems(r->verifier, &(const jp_audit_problem_t *){0});
    }
    if (r->o.cmd == CMD_REPORT)
        print_report(r, problems);
    if (r->o.cmd == CMD_EXPORT && !r->o.quiet)
        fprintf(stderr, PROG ": exported %llu of %llu record(s) from %s as %s%s\n",
                (unsigned long long)r->selected, (unsigned long long)r->read, source_name(r),
                r->o.format == FMT_CSV ? "CSV" : "JSON Lines",
                r->skipped_bad ? "; some lines were not audit records" : "");
    if (fflush(r->out) != 0 || ferror(r->out)) {
        fprintf(stderr, PROG ": write error\n");
        return EXIT_SETUP;
    }
    if (problems)
        return EXIT_FAILED;
    if (r->o.cmd == CMD_EXPORT && r->o.format == FMT_CSV && r->skipped_bad)
        return EXIT_FAILED;
    return 0;
}

int main(int argc, char **argv)
{
    run_t r;
    memset(&r, 0, sizeof(r));
    int rc = parse_args(argc, argv, &r.o);
    if (rc)
        return rc == PARSED_EXIT_OK ? 0 : rc;
    jp_log_set_level(JP_LOG_WARN);
    jp_cli_catch_stop();
    rc = run(&r);
    if (rc == EXIT_INTERRUPT)
        fprintf(stderr, PROG ": interrupted\n");
    if (r.out && r.out != stdout)
        fclose(r.out);
    jp_audit_verifier_destroy(r.verifier);
    for (size_t i = 0; i < r.key_count; i++)
        free(r.key_bytes[i]);
    json_decref(r.events);
    json_decref(r.streams);
    table_free(&r.by_actor);
    table_free(&r.by_operation);
    table_free(&r.by_site);
    table_free(&r.by_outcome);
    jp_config_destroy(r.cfg);
    return rc;
}
