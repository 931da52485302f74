/* metrics: a registry of labelled counters, gauges and histograms, and the
 * Prometheus text format (see metrics.h). */
#include "jiraprov/metrics.h"

#include "jiraprov/err.h"

#include <librdkafka/rdkafka.h>
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One tuple of label values. Histograms keep per-bucket counts (the last
 * slot is the +Inf overflow) and turn them cumulative when rendered. */
typedef struct series {
    uint64_t hash;
    char **values; /* nlabels copies */
    double value;  /* counter, gauge */
    uint64_t *counts;
    double sum;
    uint64_t count;
} series_t;

struct jp_metrics_family {
    jp_metrics_family_t *next;
    pthread_mutex_t lock;
    jp_metrics_type_t type;
    char *name;
    char *help;
    size_t nlabels;
    char *labels[JP_METRICS_MAX_LABELS];
    double *buckets;
    size_t nbuckets;
    series_t **series; /* creation order (rendering) */
    size_t nseries, cap;
    uint32_t *slots; /* open addressing by hash: series position + 1, 0 = empty */
    size_t nslots;   /* a power of two, at least twice nseries */
};

struct jp_metrics {
    pthread_mutex_t lock; /* the family list */
    jp_metrics_family_t *head, *tail;
};

static const char *const type_names[] = {"counter", "gauge", "histogram"};

/* ---- names ------------------------------------------------------------------ */

static bool name_char(char c, bool first, bool colon)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
        return true;
    if (colon && c == ':')
        return true;
    return !first && c >= '0' && c <= '9';
}

/* Metric names: [a-zA-Z_:][a-zA-Z0-9_:]*; label names: [a-zA-Z_][a-zA-Z0-9_]*. */
static bool valid_name(const char *s, bool colon)
{
    if (!s || !*s)
        return false;
    for (size_t i = 0; s[i]; i++)
        if (!name_char(s[i], i == 0, colon))
            return false;
    return true;
}

/* ---- series ----------------------------------------------------------------- */

static size_t count_values(const char *const *values)
{
    size_t n = 0;
    while (values && values[n] && n <= JP_METRICS_MAX_LABELS)
        n++;
    return n;
}

static uint64_t hash_values(const char *const *values, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        for (const unsigned char *p = (const unsigned char *)values[i]; *p; p++)
            h = (h ^ *p) * 1099511628211ull;
        h = (h ^ 0xffu) * 1099511628211ull; /* a byte no UTF-8 text holds */
    }
    return h;
}

static void series_free(series_t *s, size_t nlabels)
{
    if (!s)
        return;
    for (size_t i = 0; s->values && i < nlabels; i++)
        free(s->values[i]);
    free(s->values);
    free(s->counts);
    free(s);
}

/* Index of the series with these values, or -1. Caller holds the lock. */
static long series_index(const jp_metrics_family_t *f, const char *const *values, uint64_t h)
{
    if (!f->nslots)
        return -1;
    for (size_t i = (size_t)h & (f->nslots - 1);; i = (i + 1) & (f->nslots - 1)) {
        uint32_t slot = f->slots[i];
        if (!slot)
            return -1;
        const series_t *s = f->series[slot - 1];
        if (s->hash != h)
            continue;
        size_t k = 0;
        while (k < f->nlabels && !strcmp(s->values[k], values[k]))
            k++;
        if (k == f->nlabels)
            return (long)(slot - 1);
    }
}

/* Rebuilds the hash slots for `nslots` (a power of two > nseries), in place when the size
 * stays; -1 on ENOMEM (only when growing; the old slots stay valid). */
static int slots_rebuild(jp_metrics_family_t *f, size_t nslots)
{
    uint32_t *slots = nslots == f->nslots ? f->slots : calloc(nslots, sizeof(*slots));
    if (!slots)
        return -1;
    if (slots == f->slots)
        memset(slots, 0, nslots * sizeof(*slots));
    for (size_t n = 0; n < f->nseries; n++) {
        size_t i = (size_t)f->series[n]->hash & (nslots - 1);
        while (slots[i])
            i = (i + 1) & (nslots - 1);
        slots[i] = (uint32_t)(n + 1);
    }
    if (slots != f->slots)
        free(f->slots);
    f->slots = slots;
    f->nslots = nslots;
    return 0;
}

/* The series for `values`, created when missing; NULL on a label count
 * mismatch or ENOMEM. Caller holds the lock. */
static series_t *series_get(jp_metrics_family_t *f, const char *const *values, bool create)
{
    if (count_values(values) != f->nlabels)
        return NULL;
    uint64_t h = hash_values(values, f->nlabels);
    long i = series_index(f, values, h);
    if (i >= 0)
        return f->series[i];
    if (!create)
        return NULL;
    if (f->nseries >= UINT32_MAX - 1)
        return NULL;
    if (2 * (f->nseries + 1) > f->nslots && slots_rebuild(f, f->nslots ? f->nslots * 2 : 16) != 0)
        return NULL;
    if (f->nseries == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 8;
        series_t **grown = realloc(f->series, cap * sizeof(*grown));
        if (!grown)
            return NULL;
        f->series = grown;
        f->cap = cap;
    }
    series_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->hash = h;
    if (f->nlabels && !(s->values = calloc(f->nlabels, sizeof(*s->values))))
        goto fail;
    for (size_t k = 0; k < f->nlabels; k++)
        if (!(s->values[k] = strdup(values[k])))
            goto fail;
    if (f->type == JP_METRICS_HISTOGRAM && !(s->counts = calloc(f->nbuckets + 1, sizeof(uint64_t))))
        goto fail;
    f->series[f->nseries++] = s;
    size_t slot = (size_t)h & (f->nslots - 1);
    while (f->slots[slot])
        slot = (slot + 1) & (f->nslots - 1);
    f->slots[slot] = (uint32_t)f->nseries;
    return s;
fail:
    series_free(s, f->nlabels);
    return NULL;
}

/* ---- registry --------------------------------------------------------------- */

jp_metrics_t *jp_metrics_new(void)
{
    jp_metrics_t *r = calloc(1, sizeof(*r));
    if (r && pthread_mutex_init(&r->lock, NULL) != 0) {
        free(r);
        return NULL;
    }
    return r;
}

static void family_free(jp_metrics_family_t *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->nseries; i++)
        series_free(f->series[i], f->nlabels);
    free(f->series);
    free(f->slots);
    for (size_t i = 0; i < f->nlabels; i++)
        free(f->labels[i]);
    free(f->buckets);
    free(f->name);
    free(f->help);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

void jp_metrics_destroy(jp_metrics_t *r)
{
    if (!r)
        return;
    for (jp_metrics_family_t *f = r->head, *next; f; f = next) {
        next = f->next;
        family_free(f);
    }
    pthread_mutex_destroy(&r->lock);
    free(r);
}

static jp_metrics_family_t *find_locked(jp_metrics_t *r, const char *name)
{
    for (jp_metrics_family_t *f = r->head; f; f = f->next)
        if (!strcmp(f->name, name))
            return f;
    return NULL;
}

jp_metrics_family_t *jp_metrics_find(jp_metrics_t *r, const char *name)
{
    if (!r || !name)
        return NULL;
    pthread_mutex_lock(&r->lock);
    jp_metrics_family_t *f = find_locked(r, name);
    pthread_mutex_unlock(&r->lock);
    return f;
}

static jp_err_t check_family(jp_metrics_type_t type, const char *name, const char *const *labels,
                             const double *buckets, size_t nbuckets, char *errstr,
                             size_t errstr_size)
{
    if ((unsigned)type > JP_METRICS_HISTOGRAM)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "metrics: unknown type %d",
                          (int)type);
    if (!valid_name(name, true))
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "metrics: invalid metric name \"%s\"", name ? name : "");
    size_t n = count_values(labels);
    if (n > JP_METRICS_MAX_LABELS)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "metrics: %s: more than %d labels",
                          name, JP_METRICS_MAX_LABELS);
    for (size_t i = 0; i < n; i++) {
        if (!valid_name(labels[i], false) || !strncmp(labels[i], "__", 2) ||
            (type == JP_METRICS_HISTOGRAM && !strcmp(labels[i], "le")))
            return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                              "metrics: %s: invalid label name \"%s\"", name, labels[i]);
        for (size_t k = 0; k < i; k++)
            if (!strcmp(labels[i], labels[k]))
                return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                                  "metrics: %s: label \"%s\" given twice", name, labels[i]);
    }
    if (type != JP_METRICS_HISTOGRAM)
        return JP_OK;
    if (!buckets || !nbuckets)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "metrics: %s: no buckets", name);
    for (size_t i = 0; i < nbuckets; i++)
        if (!isfinite(buckets[i]) || (i && buckets[i] <= buckets[i - 1]))
            return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                              "metrics: %s: buckets must be finite and strictly increasing", name);
    return JP_OK;
}

jp_metrics_family_t *jp_metrics_register(jp_metrics_t *r, jp_metrics_type_t type, const char *name,
                                         const char *help, const char *const *labels,
                                         const double *buckets, size_t nbuckets, char *errstr,
                                         size_t errstr_size)
{
    if (!r) {
        jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "metrics: no registry");
        return NULL;
    }
    if (check_family(type, name, labels, buckets, nbuckets, errstr, errstr_size) != JP_OK)
        return NULL;
    jp_metrics_family_t *f = calloc(1, sizeof(*f));
    if (!f || pthread_mutex_init(&f->lock, NULL) != 0) {
        free(f);
        jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
        return NULL;
    }
    f->type = type;
    f->name = strdup(name);
    f->help = strdup(help ? help : "");
    bool ok = f->name && f->help;
    for (size_t i = 0; ok && labels && labels[i]; i++, f->nlabels++)
        ok = (f->labels[i] = strdup(labels[i])) != NULL;
    if (ok && type == JP_METRICS_HISTOGRAM) {
        ok = (f->buckets = malloc(nbuckets * sizeof(double))) != NULL;
        if (ok) {
            memcpy(f->buckets, buckets, nbuckets * sizeof(double));
            f->nbuckets = nbuckets;
        }
    }
    if (!ok) {
        family_free(f);
        jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
        return NULL;
    }
    pthread_mutex_lock(&r->lock);
    if (find_locked(r, name)) {
        pthread_mutex_unlock(&r->lock);
        family_free(f);
        jp_err_set(errstr, errstr_size, JP_ERR_CONFLICT, "metrics: %s is registered already", name);
        return NULL;
    }
    if (r->tail)
        r->tail->next = f;
    else
        r->head = f;
    r->tail = f;
    pthread_mutex_unlock(&r->lock);
    return f;
}

/* ---- updates ---------------------------------------------------------------- */

typedef enum update_op { ADD, SET, OBSERVE } update_op_t;

static int update(jp_metrics_family_t *f, const char *const *values, double v, update_op_t op)
{
    if (!f)
        return -1;
    if ((op == OBSERVE) != (f->type == JP_METRICS_HISTOGRAM) ||
        (op == ADD && f->type == JP_METRICS_COUNTER && !(v >= 0)))
        return -1;
    pthread_mutex_lock(&f->lock);
    series_t *s = series_get(f, values, true);
    if (s) {
        if (op == ADD) {
            s->value += v;
        } else if (op == SET) {
            s->value = v;
        } else {
            size_t b = 0;
            while (b < f->nbuckets && !(v <= f->buckets[b]))
                b++;
            s->counts[b]++;
            s->sum += v;
            s->count++;
        }
    }
    pthread_mutex_unlock(&f->lock);
    return s ? 0 : -1;
}

int jp_metrics_add(jp_metrics_family_t *f, const char *const *values, double v)
{
    return update(f, values, v, ADD);
}

int jp_metrics_set(jp_metrics_family_t *f, const char *const *values, double v)
{
    return update(f, values, v, SET);
}

int jp_metrics_observe(jp_metrics_family_t *f, const char *const *values, double v)
{
    return update(f, values, v, OBSERVE);
}

int jp_metrics_remove(jp_metrics_family_t *f, const char *const *values)
{
    if (!f || count_values(values) != f->nlabels)
        return -1;
    pthread_mutex_lock(&f->lock);
    long i = series_index(f, values, hash_values(values, f->nlabels));
    if (i >= 0) {
        series_free(f->series[i], f->nlabels);
        /* Keep creation order: later series move up one. */
        memmove(&f->series[i], &f->series[i + 1],
                (f->nseries - (size_t)i - 1) * sizeof(*f->series));
        f->nseries--;
        /* Positions moved: rebuild in place (removals are rare: a revoked partition's lag). */
        slots_rebuild(f, f->nslots);
    }
    pthread_mutex_unlock(&f->lock);
    return i >= 0 ? 0 : -1;
}

bool jp_metrics_get(jp_metrics_family_t *f, const char *const *values, double *out)
{
    if (!f)
        return false;
    pthread_mutex_lock(&f->lock);
    series_t *s = series_get(f, values, false);
    if (s && out)
        *out = f->type == JP_METRICS_HISTOGRAM ? (double)s->count : s->value;
    pthread_mutex_unlock(&f->lock);
    return s != NULL;
}

void jp_metrics_each(jp_metrics_family_t *f,
                     void (*fn)(const char *const *values, double value, void *opaque),
                     void *opaque)
{
    if (!f || !fn || f->type == JP_METRICS_HISTOGRAM)
        return;
    pthread_mutex_lock(&f->lock);
    for (size_t i = 0; i < f->nseries; i++) {
        const char *vals[JP_METRICS_MAX_LABELS + 1];
        for (size_t k = 0; k < f->nlabels; k++)
            vals[k] = f->series[i]->values[k];
        vals[f->nlabels] = NULL;
        fn(vals, f->series[i]->value, opaque);
    }
    pthread_mutex_unlock(&f->lock);
}

void jp_metrics_families(jp_metrics_t *r,
                         void (*fn)(const char *name, jp_metrics_type_t type, const char *help,
                                    const char *const *labels, void *opaque),
                         void *opaque)
{
    if (!r || !fn)
        return;
    pthread_mutex_lock(&r->lock);
    for (jp_metrics_family_t *f = r->head; f; f = f->next) {
        const char *labels[JP_METRICS_MAX_LABELS + 1];
        for (size_t k = 0; k < f->nlabels; k++)
            labels[k] = f->labels[k];
        labels[f->nlabels] = NULL;
        fn(f->name, f->type, f->help, labels, opaque);
    }
    pthread_mutex_unlock(&r->lock);
}

const char *jp_metrics_type_name(jp_metrics_type_t type)
{
    return (unsigned)type <= JP_METRICS_HISTOGRAM ? type_names[type] : "unknown";
}

/* ---- rendering -------------------------------------------------------------- */

char *jp_metrics_format_value(double v, char *buf, size_t size)
{
    if (isnan(v)) {
        snprintf(buf, size, "NaN");
    } else if (isinf(v)) {
        snprintf(buf, size, v > 0 ? "+Inf" : "-Inf");
    } else if (v == floor(v) && fabs(v) < 1e15) {
        snprintf(buf, size, "%.0f", v);
    } else {
        /* The shortest precision that reads back exactly. */
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(buf, size, "%.*g", prec, v);
            if (strtod(buf, NULL) == v)
                break;
        }
    }
    return buf;
}

static void put_escaped(FILE *out, const char *s, bool quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\\\", out);
        else if (*s == '\n')
            fputs("\\n", out);
        else if (quote && *s == '"')
            fputs("\\\"", out);
        else
            fputc(*s, out);
    }
}

/* {a="x",b="y"} plus an optional le label; nothing when there are no labels. */
static void put_labels(FILE *out, const jp_metrics_family_t *f, const series_t *s, const char *le)
{
    if (!f->nlabels && !le)
        return;
    fputc('{', out);
    for (size_t k = 0; k < f->nlabels; k++) {
        fprintf(out, "%s%s=\"", k ? "," : "", f->labels[k]);
        put_escaped(out, s->values[k], true);
        fputc('"', out);
    }
    if (le)
        fprintf(out, "%sle=\"%s\"", f->nlabels ? "," : "", le);
    fputc('}', out);
}

static void render_family(FILE *out, jp_metrics_family_t *f)
{
    char num[64], le[64];
    pthread_mutex_lock(&f->lock);
    fprintf(out, "# HELP %s ", f->name);
    put_escaped(out, f->help, false);
    fprintf(out, "\n# TYPE %s %s\n", f->name, type_names[f->type]);
    for (size_t i = 0; i < f->nseries; i++) {
        const series_t *s = f->series[i];
        if (f->type != JP_METRICS_HISTOGRAM) {
            fputs(f->name, out);
            put_labels(out, f, s, NULL);
            fprintf(out, " %s\n", jp_metrics_format_value(s->value, num, sizeof(num)));
            continue;
        }
        uint64_t cum = 0;
        for (size_t b = 0; b <= f->nbuckets; b++) {
            cum += s->counts[b];
            if (b < f->nbuckets)
                jp_metrics_format_value(f->buckets[b], le, sizeof(le));
            else
                snprintf(le, sizeof(le), "+Inf");
            fprintf(out, "%s_bucket", f->name);
            put_labels(out, f, s, le);
            fprintf(out, " %llu\n", (unsigned long long)cum);
        }
        fprintf(out, "%s_sum", f->name);
        put_labels(out, f, s, NULL);
        fprintf(out, " %s\n%s_count", jp_metrics_format_value(s->sum, num, sizeof(num)), f->name);
        put_labels(out, f, s, NULL);
        fprintf(out, " %llu\n", (unsigned long long)s->count);
    }
    pthread_mutex_unlock(&f->lock);
}

char *jp_metrics_render(jp_metrics_t *r, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    if (!r)
        return NULL;
    FILE *out = open_memstream(&buf, &n);
    if (!out)
        return NULL;
    pthread_mutex_lock(&r->lock);
    for (jp_metrics_family_t *f = r->head; f; f = f->next)
        render_family(out, f);
    pthread_mutex_unlock(&r->lock);
    if (fclose(out) != 0) {
        free(buf);
        return NULL;
    }
    if (len)
        *len = n;
    return buf;
}

/* ---- the worker's catalogue ------------------------------------------------------ */

static const double jira_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
static const double processing_buckets[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                            2.5,  5,     10,   30,  60,   300, 1800};
static const double overhead_buckets[] = {
    0.0001, 0.0002,  0.0003, 0.0004, 0.0005, 0.0006, 0.0007, 0.0008, 0.0009, 0.001, 0.00125,
    0.0015, 0.00175, 0.002,  0.0025, 0.003,  0.0035, 0.004,  0.0045, 0.005,  0.006, 0.007,
    0.008,  0.009,   0.01,   0.015,  0.02,   0.03,   0.05,   0.1,    0.25,   0.5,   1};
static const double e2e_buckets[] = {0.05, 0.1, 0.25, 0.5, 1,   2.5,  5,
                                     10,   30,  60,   300, 900, 3600, 21600};

#define LABELS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define NB(a)       (sizeof(a) / sizeof((a)[0]))

typedef struct catalogue_entry {
    size_t offset; /* of the member in jp_metrics_worker_t */
    jp_metrics_type_t type;
    const char *name;
    const char *help;
    const char *const *labels;
    const double *buckets;
    size_t nbuckets;
} catalogue_entry_t;

#define W(m) offsetof(jp_metrics_worker_t, m)
static const catalogue_entry_t catalogue[] = {
    {W(events_consumed), JP_METRICS_COUNTER, "jiraprov_events_consumed_total",
     "Events taken from the events topic, by CloudEvents type (\"invalid\" if malformed).",
     LABELS("type"), NULL, 0},
    {W(events_completed), JP_METRICS_COUNTER, "jiraprov_events_completed_total",
     "Events whose terminal outcome was recorded, by type and status.", LABELS("type", "status"),
     NULL, 0},
    {W(events_deadlettered), JP_METRICS_COUNTER, "jiraprov_events_deadlettered_total",
     "Events sent to the dead-letter topic, by type and reason.", LABELS("type", "reason"), NULL,
     0},
    {W(events_replayed), JP_METRICS_COUNTER, "jiraprov_events_replayed_total",
     "Redelivered events answered from their recorded outcome without calling Jira.", NULL, NULL,
     0},
    {W(retries), JP_METRICS_COUNTER, "jiraprov_retries_total",
     "Attempts that ended in a retry later (or a quarantine wait), by site and reason.",
     LABELS("site", "reason"), NULL, 0},
    {W(event_processing), JP_METRICS_HISTOGRAM, "jiraprov_event_processing_seconds",
     "Time from an event's first start in this worker to its outcome being published.",
     LABELS("type"), processing_buckets, NB(processing_buckets)},
    {W(event_overhead), JP_METRICS_HISTOGRAM, "jiraprov_event_overhead_seconds",
     "Time the worker adds to an event: consumed to result produced, minus its Jira calls "
     "(events applied in one attempt, never parked).",
     NULL, overhead_buckets, NB(overhead_buckets)},
    {W(event_e2e), JP_METRICS_HISTOGRAM, "jiraprov_event_end_to_end_seconds",
     "Time from the event's Kafka record timestamp to its outcome being published.", LABELS("type"),
     e2e_buckets, NB(e2e_buckets)},
    {W(events_held), JP_METRICS_GAUGE, "jiraprov_events_held",
     "Events held in memory: buffered, running or parked.", NULL, NULL, 0},
    {W(events_parked), JP_METRICS_GAUGE, "jiraprov_events_parked",
     "Events waiting for their retry time (their subject waits with them).", NULL, NULL, 0},
    {W(events_in_flight), JP_METRICS_GAUGE, "jiraprov_events_in_flight",
     "Events being applied to Jira now.", NULL, NULL, 0},
    {W(publish_errors), JP_METRICS_COUNTER, "jiraprov_publish_errors_total",
     "Records the producer could not deliver (they are published again).", NULL, NULL, 0},
    {W(partitions_assigned), JP_METRICS_GAUGE, "jiraprov_partitions_assigned",
     "Partitions of the events topic assigned to this worker.", NULL, NULL, 0},
    {W(partitions_paused), JP_METRICS_GAUGE, "jiraprov_partitions_paused",
     "Assigned partitions paused (buffer full, Redis unreachable or stopping).", NULL, NULL, 0},
    {W(consumption_paused), JP_METRICS_GAUGE, "jiraprov_consumption_paused",
     "1 while the worker takes no new events.", NULL, NULL, 0},
    {W(kafka_lag), JP_METRICS_GAUGE, "jiraprov_kafka_consumer_lag",
     "Records of an assigned partition after this worker's stored offset (librdkafka "
     "statistics).",
     LABELS("topic", "partition"), NULL, 0},
    {W(kafka_brokers_up), JP_METRICS_GAUGE, "jiraprov_kafka_brokers_up",
     "Kafka brokers the consumer is connected to (librdkafka statistics).", NULL, NULL, 0},
    {W(kafka_errors), JP_METRICS_COUNTER, "jiraprov_kafka_errors_total",
     "Errors librdkafka reported, by client and failure class.", LABELS("client", "class"), NULL,
     0},
    {W(redis_up), JP_METRICS_GAUGE, "jiraprov_redis_up", "1 while Redis is connected.", NULL, NULL,
     0},
    {W(redis_errors), JP_METRICS_COUNTER, "jiraprov_redis_errors_total",
     "Redis commands of the event path that failed.", NULL, NULL, 0},
    {W(jira_requests), JP_METRICS_COUNTER, "jiraprov_jira_requests_total",
     "HTTP calls to Jira, by site, API, endpoint class, method and status (\"none\": no answer).",
     LABELS("site", "api", "endpoint_class", "method", "status"), NULL, 0},
    {W(jira_duration), JP_METRICS_HISTOGRAM, "jiraprov_jira_request_duration_seconds",
     "Duration of HTTP calls to Jira, by site, API and endpoint class.",
     LABELS("site", "api", "endpoint_class"), jira_buckets, NB(jira_buckets)},
    {W(ratelimit_tokens), JP_METRICS_GAUGE, "jiraprov_ratelimit_tokens",
     "Tokens left in a site's shared rate-limit bucket.",
     LABELS("site", "endpoint_class", "method"), NULL, 0},
    {W(ratelimit_cooldown), JP_METRICS_GAUGE, "jiraprov_ratelimit_cooldown_seconds",
     "Seconds left of a cool-down Jira asked for (429 Retry-After), by site and scope.",
     LABELS("site", "scope"), NULL, 0},
    {W(site_quarantined), JP_METRICS_GAUGE, "jiraprov_site_quarantined",
     "1 while a site's API is quarantined (repeated 401/403).", LABELS("site", "api"), NULL, 0},
    {W(ratelimit_granted), JP_METRICS_COUNTER, "jiraprov_ratelimit_granted_total",
     "Jira calls the shared budget let through.", NULL, NULL, 0},
    {W(ratelimit_waiting), JP_METRICS_GAUGE, "jiraprov_ratelimit_waiting",
     "Jira calls waiting for a token of the shared budget.", NULL, NULL, 0},
    {W(ratelimit_cooldowns_set), JP_METRICS_COUNTER, "jiraprov_ratelimit_cooldowns_set_total",
     "Cool-downs this worker set after a 429 or a 503 with Retry-After.", NULL, NULL, 0},
    {W(ratelimit_leased), JP_METRICS_COUNTER, "jiraprov_ratelimit_leased_total",
     "Jira calls granted from tokens taken ahead (a lease), without a Redis round trip.", NULL,
     NULL, 0},
    {W(ratelimit_lease_lapsed), JP_METRICS_COUNTER, "jiraprov_ratelimit_lease_lapsed_total",
     "Tokens taken ahead that lapsed unused (spent from the shared budget).", NULL, NULL, 0},
    {W(events_deferred), JP_METRICS_COUNTER, "jiraprov_events_deferred_total",
     "Event starts put off by the shared budget (not attempts).", NULL, NULL, 0},
    {W(recon_runs), JP_METRICS_GAUGE, "jiraprov_recon_runs", "Reconciliation runs under way.", NULL,
     NULL, 0},
    {W(recon_started), JP_METRICS_COUNTER, "jiraprov_recon_runs_started_total",
     "Reconciliation runs started (or resumed) by this worker.", NULL, NULL, 0},
    {W(recon_completed), JP_METRICS_COUNTER, "jiraprov_recon_runs_completed_total",
     "Reconciliation runs this worker completed.", NULL, NULL, 0},
    {W(recon_records), JP_METRICS_COUNTER, "jiraprov_recon_records_total",
     "Reconciliation records delivered.", NULL, NULL, 0},
    {W(recon_calls), JP_METRICS_COUNTER, "jiraprov_recon_jira_calls_total",
     "Jira calls made by reconciliation runs.", NULL, NULL, 0},
    {W(recon_retries), JP_METRICS_COUNTER, "jiraprov_recon_jira_retries_total",
     "Jira calls of reconciliation runs that were retried.", NULL, NULL, 0},
    {W(ready), JP_METRICS_GAUGE, "jiraprov_ready", "1 when /readyz answers 200.", NULL, NULL, 0},
    {W(build_info), JP_METRICS_GAUGE, "jiraprov_build_info", "Always 1; the labels name the build.",
     LABELS("version", "librdkafka"), NULL, 0},
    {W(start_time), JP_METRICS_GAUGE, "jiraprov_start_time_seconds",
     "When the process started, Unix seconds.", NULL, NULL, 0},
    {W(config_reloads), JP_METRICS_COUNTER, "jiraprov_config_reloads_total",
     "SIGHUP reloads by result (applied, unchanged, failed).", LABELS("result"), NULL, 0},
    {W(restart_pending), JP_METRICS_GAUGE, "jiraprov_config_restart_pending",
     "1 when the configuration file holds changes that take effect only after a restart.", NULL,
     NULL, 0},
};
#undef W

static jp_metrics_t *process_registry;
static jp_metrics_worker_t worker_families;
static pthread_once_t worker_once = PTHREAD_ONCE_INIT;

static void worker_init(void)
{
    char err[256];
    if (!(process_registry = jp_metrics_new()))
        return;
    for (size_t i = 0; i < NB(catalogue); i++) {
        const catalogue_entry_t *e = &catalogue[i];
        jp_metrics_family_t *f =
            jp_metrics_register(process_registry, e->type, e->name, e->help, e->labels, e->buckets,
                                e->nbuckets, err, sizeof(err));
        memcpy((char *)&worker_families + e->offset, &f, sizeof(f));
    }
    /* Series that exist from the start, so that rates and absences read right. */
    jp_metrics_set(worker_families.build_info, JP_METRICS_LV(JP_VERSION, rd_kafka_version_str()),
                   1);
    jp_metrics_set(worker_families.start_time, NULL, (double)time(NULL));
    jp_metrics_set(worker_families.restart_pending, NULL, 0);
    jp_metrics_set(worker_families.ready, NULL, 0);
    jp_metrics_set(worker_families.publish_errors, NULL, 0);
    jp_metrics_set(worker_families.redis_errors, NULL, 0);
    jp_metrics_set(worker_families.events_replayed, NULL, 0);
}

jp_metrics_t *jp_metrics_process(void)
{
    pthread_once(&worker_once, worker_init);
    return process_registry;
}

const jp_metrics_worker_t *jp_metrics_worker(void)
{
    pthread_once(&worker_once, worker_init);
    return &worker_families;
}

static const char *nz(const char *s)
{
    return s ? s : "";
}

void jp_metrics_event_consumed(const char *type)
{
    jp_metrics_add(jp_metrics_worker()->events_consumed, JP_METRICS_LV(nz(type)), 1);
}

void jp_metrics_event_completed(const char *type, const char *status)
{
    jp_metrics_add(jp_metrics_worker()->events_completed, JP_METRICS_LV(nz(type), nz(status)), 1);
}

void jp_metrics_event_deadlettered(const char *type, const char *reason)
{
    jp_metrics_add(jp_metrics_worker()->events_deadlettered, JP_METRICS_LV(nz(type), nz(reason)),
                   1);
}

void jp_metrics_event_retry(const char *site, const char *reason)
{
    jp_metrics_add(jp_metrics_worker()->retries, JP_METRICS_LV(nz(site), nz(reason)), 1);
}

void jp_metrics_event_done(const char *type, double processing_s, double e2e_s)
{
    const jp_metrics_worker_t *w = jp_metrics_worker();
    jp_metrics_observe(w->event_processing, JP_METRICS_LV(nz(type)), processing_s);
    if (e2e_s >= 0)
        jp_metrics_observe(w->event_e2e, JP_METRICS_LV(nz(type)), e2e_s);
}

void jp_metrics_jira_call(const char *site, const char *api, const char *endpoint_class,
                          const char *method, long status, double seconds)
{
    const jp_metrics_worker_t *w = jp_metrics_worker();
    char code[24];
    if (status > 0)
        snprintf(code, sizeof(code), "%ld", status);
    else
        snprintf(code, sizeof(code), "none");
    jp_metrics_add(w->jira_requests,
                   JP_METRICS_LV(nz(site), nz(api), nz(endpoint_class), nz(method), code), 1);
    jp_metrics_observe(w->jira_duration, JP_METRICS_LV(nz(site), nz(api), nz(endpoint_class)),
                       seconds);
}

void jp_metrics_kafka_error(const char *client, const char *cls)
{
    jp_metrics_add(jp_metrics_worker()->kafka_errors, JP_METRICS_LV(nz(client), nz(cls)), 1);
}

void jp_metrics_kafka_lag(const char *topic, int32_t partition, int64_t lag)
{
    char part[16];
    snprintf(part, sizeof(part), "%d", (int)partition);
    jp_metrics_family_t *f = jp_metrics_worker()->kafka_lag;
    if (lag < 0)
        jp_metrics_remove(f, JP_METRICS_LV(nz(topic), part));
    else
        jp_metrics_set(f, JP_METRICS_LV(nz(topic), part), (double)lag);
}

void jp_metrics_ratelimit_tokens(const char *site, const char *endpoint_class, const char *method,
                                 double tokens)
{
    jp_metrics_set(jp_metrics_worker()->ratelimit_tokens,
                   JP_METRICS_LV(nz(site), nz(endpoint_class), nz(method)), tokens);
}

void jp_metrics_ratelimit_cooldown(const char *site, const char *scope, double seconds)
{
    jp_metrics_set(jp_metrics_worker()->ratelimit_cooldown, JP_METRICS_LV(nz(site), nz(scope)),
                   seconds > 0 ? seconds : 0);
}

void jp_metrics_site_quarantined(const char *site, const char *api, bool quarantined)
{
    jp_metrics_set(jp_metrics_worker()->site_quarantined, JP_METRICS_LV(nz(site), nz(api)),
                   quarantined ? 1 : 0);
}

typedef struct distinct {
    const char **names;
    size_t n, cap;
} distinct_t;

static void count_quarantined(const char *const *values, double value, void *opaque)
{
    distinct_t *d = opaque;
    if (!(value > 0))
        return;
    for (size_t i = 0; i < d->n; i++)
        if (!strcmp(d->names[i], values[0]))
            return;
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 8;
        const char **grown = realloc(d->names, cap * sizeof(*grown));
        if (!grown)
            return;
        d->names = grown;
        d->cap = cap;
    }
    d->names[d->n++] = values[0]; /* compared during the walk only */
}

size_t jp_metrics_sites_quarantined(void)
{
    distinct_t d = {NULL, 0, 0};
    jp_metrics_each(jp_metrics_worker()->site_quarantined, count_quarantined, &d);
    free(d.names);
    return d.n;
}
