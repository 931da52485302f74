/* metrics: counters, gauges and histograms with labels, rendered in the
 * Prometheus text exposition format (version 0.0.4) for GET /metrics.
 *
 * Two layers:
 *
 *  1. A registry (jp_metrics_t) of metric families. A family has a name, a
 *     help text, a type and a fixed list of label names (at most
 *     JP_METRICS_MAX_LABELS); a histogram also has fixed bucket bounds. Each
 *     distinct tuple of label values is one series, created on first use.
 *     Updates name the series by its label values, in the family's label
 *     order, as a NULL-terminated array (JP_METRICS_LV("a", "b") builds one;
 *     NULL for a family without labels). jp_metrics_render() writes every
 *     family, even one without series (HELP and TYPE lines only), in
 *     registration order and its series in creation order; label values and
 *     help texts are escaped as the format requires; a histogram's buckets are
 *     cumulative and end with le="+Inf", followed by _sum and _count.
 *
 *  2. The worker's own catalogue (jp_metrics_worker()): every family the
 *     worker exports, registered once in the process-wide registry
 *     (jp_metrics_process()), and recorder functions that keep the label
 *     conventions in one place. Modules call the recorders; main() renders
 *     the process registry on /metrics. The names are a contract with the
 *     dashboards and alert rules in deploy/ (a test checks them).
 *
 * Threading: every function may be called from any thread. Each family has
 * its own mutex: an update is a hash lookup of the series and an add under
 * that lock; rendering holds one family's lock at a time. The loop thread updates, libmicrohttpd's
 * thread renders.
 *
 * Errors: registration fails (NULL, errstr) on an invalid or duplicate name,
 * an invalid label name ("le" on a histogram, "__" prefixes), too many
 * labels, or buckets that are not finite and strictly increasing. An update
 * whose label values do not match the family's label count, that hits a
 * NULL family, or that runs out of memory does nothing and returns -1;
 * callers never need to check (metrics must not change what the worker
 * does).
 *
 * Ownership: a registry owns its families; family pointers live as long as
 * the registry. Names, help texts, label names, label values and buckets are
 * copied. The process registry lives until exit. jp_metrics_render() returns
 * a malloc'd text the caller frees. */
#ifndef JIRAPROV_METRICS_H
#define JIRAPROV_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JP_METRICS_MAX_LABELS 8

/* A NULL-terminated array of label values, for the update functions. */
#define JP_METRICS_LV(...) ((const char *const[]){__VA_ARGS__, NULL})

typedef struct jp_metrics jp_metrics_t;
typedef struct jp_metrics_family jp_metrics_family_t;

typedef enum jp_metrics_type {
    JP_METRICS_COUNTER = 0,
    JP_METRICS_GAUGE,
    JP_METRICS_HISTOGRAM
} jp_metrics_type_t;

/* ---- the registry ------------------------------------------------------- */

jp_metrics_t *jp_metrics_new(void);       /* NULL on ENOMEM */
void jp_metrics_destroy(jp_metrics_t *r); /* NULL ok; no other thread may use r any more */

/* labels: NULL-terminated label names, or NULL for none. buckets/nbuckets:
 * histogram upper bounds (the +Inf bucket is implicit); ignored otherwise. */
jp_metrics_family_t *jp_metrics_register(jp_metrics_t *r, jp_metrics_type_t type, const char *name,
                                         const char *help, const char *const *labels,
                                         const double *buckets, size_t nbuckets, char *errstr,
                                         size_t errstr_size);
/* The family called `name`, or NULL. */
jp_metrics_family_t *jp_metrics_find(jp_metrics_t *r, const char *name);

/* Counter or gauge += v (a counter refuses v < 0). */
int jp_metrics_add(jp_metrics_family_t *f, const char *const *values, double v);
/* Counter or gauge = v. For counters, only to mirror a monotonic source
 * that is counted elsewhere. */
int jp_metrics_set(jp_metrics_family_t *f, const char *const *values, double v);
/* Histogram: count v into its bucket, add it to the sum. */
int jp_metrics_observe(jp_metrics_family_t *f, const char *const *values, double v);
/* Drop one series (a partition no longer assigned); 0 if it existed. */
int jp_metrics_remove(jp_metrics_family_t *f, const char *const *values);
/* The value of a counter or gauge series (a histogram's count); false if the
 * series does not exist. */
bool jp_metrics_get(jp_metrics_family_t *f, const char *const *values, double *out);
/* Calls fn for every series of a counter or gauge (values NULL-terminated,
 * valid during the call only), under the family's lock: fn must not call
 * back into this family. */
void jp_metrics_each(jp_metrics_family_t *f,
                     void (*fn)(const char *const *values, double value, void *opaque),
                     void *opaque);

/* Calls fn for every family in registration order: name, type, help and
 * label names (NULL-terminated; valid during the call only). */
void jp_metrics_families(jp_metrics_t *r,
                         void (*fn)(const char *name, jp_metrics_type_t type, const char *help,
                                    const char *const *labels, void *opaque),
                         void *opaque);
/* "counter", "gauge", "histogram". */
const char *jp_metrics_type_name(jp_metrics_type_t type);

/* The exposition text; *len (may be NULL) gets its length. NULL on ENOMEM. */
char *jp_metrics_render(jp_metrics_t *r, size_t *len);

/* Writes `v` the way the format spells numbers ("+Inf", "-Inf", "NaN", and
 * the shortest decimal that reads back as v). Returns buf. */
char *jp_metrics_format_value(double v, char *buf, size_t size);

/* Content type of the rendered text. */
#define JP_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* ---- the worker's catalogue --------------------------------------------- */

/* Every family the worker exports. Any member may be NULL after a failed
 * allocation; the recorders and the update functions accept that. */
typedef struct jp_metrics_worker {
    /* events */
    jp_metrics_family_t *events_consumed;     /* counter {type}; type "invalid" if malformed */
    jp_metrics_family_t *events_completed;    /* counter {type,status}: terminal outcomes */
    jp_metrics_family_t *events_deadlettered; /* counter {type,reason} */
    jp_metrics_family_t *events_replayed;     /* counter: answered from the recorded outcome */
    jp_metrics_family_t *retries;             /* counter {site,reason} */
    jp_metrics_family_t *event_processing;    /* histogram {type}: first start -> published */
    jp_metrics_family_t *event_overhead;      /* histogram: the time the worker adds (pipeline.c) */
    jp_metrics_family_t *event_e2e;           /* histogram {type}: Kafka timestamp -> published */
    jp_metrics_family_t *events_held;         /* gauge: buffered, running or parked */
    jp_metrics_family_t *events_parked;       /* gauge: waiting for a retry time */
    jp_metrics_family_t *events_in_flight;    /* gauge: being applied now */
    jp_metrics_family_t *publish_errors;      /* counter */
    /* Kafka */
    jp_metrics_family_t *partitions_assigned; /* gauge */
    jp_metrics_family_t *partitions_paused;   /* gauge */
    jp_metrics_family_t *consumption_paused;  /* gauge 0/1 */
    jp_metrics_family_t *kafka_lag;           /* gauge {topic,partition} */
    jp_metrics_family_t *kafka_brokers_up;    /* gauge: brokers the consumer is connected to */
    jp_metrics_family_t *kafka_errors;        /* counter {client,class} */
    /* Redis */
    jp_metrics_family_t *redis_up;     /* gauge 0/1 */
    jp_metrics_family_t *redis_errors; /* counter */
    /* Jira */
    jp_metrics_family_t *jira_requests; /* counter {site,api,endpoint_class,method,status} */
    jp_metrics_family_t *jira_duration; /* histogram {site,api,endpoint_class} */
    /* rate limits and quarantine (set by the limiter) */
    jp_metrics_family_t *ratelimit_tokens;        /* gauge {site,endpoint_class,method} */
    jp_metrics_family_t *ratelimit_cooldown;      /* gauge {site,scope}: seconds left */
    jp_metrics_family_t *site_quarantined;        /* gauge {site,api} 0/1 */
    jp_metrics_family_t *ratelimit_granted;       /* counter: calls let through (mirrored) */
    jp_metrics_family_t *ratelimit_waiting;       /* gauge: calls waiting for a token */
    jp_metrics_family_t *ratelimit_cooldowns_set; /* counter: cool-downs this worker set */
    jp_metrics_family_t *ratelimit_leased;        /* counter: grants from a lease */
    jp_metrics_family_t *ratelimit_lease_lapsed;  /* counter: leased tokens unused */
    jp_metrics_family_t *events_deferred;         /* counter: starts put off by the budget */
    /* reconciliation (mirrored from jp_recon_stats) */
    jp_metrics_family_t *recon_runs;      /* gauge: runs under way */
    jp_metrics_family_t *recon_started;   /* counter */
    jp_metrics_family_t *recon_completed; /* counter */
    jp_metrics_family_t *recon_records;   /* counter: records delivered */
    jp_metrics_family_t *recon_calls;     /* counter: Jira calls of runs */
    jp_metrics_family_t *recon_retries;   /* counter: Jira calls of runs retried */
    /* process */
    jp_metrics_family_t *ready;           /* gauge 0/1: what /readyz answers */
    jp_metrics_family_t *build_info;      /* gauge {version,librdkafka} = 1 */
    jp_metrics_family_t *start_time;      /* gauge: Unix seconds */
    jp_metrics_family_t *config_reloads;  /* counter {result}: applied|unchanged|failed */
    jp_metrics_family_t *restart_pending; /* gauge 0/1: the file has changes needing a restart */
} jp_metrics_worker_t;

/* The process-wide registry (created on first use; never freed). NULL only
 * if that first allocation failed. */
jp_metrics_t *jp_metrics_process(void);
/* The catalogue, registered in jp_metrics_process() on first call. */
const jp_metrics_worker_t *jp_metrics_worker(void);

/* Recorders (label conventions). Strings may be NULL: recorded as "". */
void jp_metrics_event_consumed(const char *type);
void jp_metrics_event_completed(const char *type, const char *status);
void jp_metrics_event_deadlettered(const char *type, const char *reason);
void jp_metrics_event_retry(const char *site, const char *reason);
/* An event's outcome is published: processing and end-to-end seconds
 * (e2e_s < 0: the record had no timestamp). */
void jp_metrics_event_done(const char *type, double processing_s, double e2e_s);
/* One Jira HTTP call: status 0 = no answer (recorded as status="none"). */
void jp_metrics_jira_call(const char *site, const char *api, const char *endpoint_class,
                          const char *method, long status, double seconds);
/* client: "consumer" or "producer"; cls: jp_class_name() of the error. */
void jp_metrics_kafka_error(const char *client, const char *cls);
/* Lag of an assigned partition; lag < 0 removes the series (revoked). */
void jp_metrics_kafka_lag(const char *topic, int32_t partition, int64_t lag);
/* For the limiter: tokens left in a bucket, seconds of cool-down left,
 * whether a site's API is quarantined. */
void jp_metrics_ratelimit_tokens(const char *site, const char *endpoint_class, const char *method,
                                 double tokens);
void jp_metrics_ratelimit_cooldown(const char *site, const char *scope, double seconds);
void jp_metrics_site_quarantined(const char *site, const char *api, bool quarantined);
/* Readiness hook: how many distinct sites have at least one API marked
 * quarantined (jp_metrics_site_quarantined). /readyz fails when this
 * reaches the number of configured sites. */
size_t jp_metrics_sites_quarantined(void);

#endif
