/* jiraprov-worker: applies IDHub's events from Kafka to Jira Cloud and
 * publishes an outcome for each. Many copies run as one consumer group. */
#include "jiraprov/audit.h"
#include "jiraprov/config.h"
#include "jiraprov/httpd.h"
#include "jiraprov/log.h"
#include "jiraprov/metrics.h"
#include "jiraprov/pipeline.h"

#include <curl/curl.h>
#include <getopt.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#define COMPONENT    "main"
#define HEARTBEAT_MS 1000
/* /healthz fails when the loop has not ticked for this long. */
#define STALL_MS 10000

static const char usage_text[] =
    "Usage: jiraprov-worker --config FILE [options]\n"
    "Consumes IDHub events from Kafka, applies them to Jira Cloud and publishes a\n"
    "result (and audit / dead-letter records) for every event.\n"
    "\n"
    "  -c, --config FILE   the YAML configuration (see config/jiraprov.example.yaml)\n"
    "      --check-config  validate the configuration, print it (secrets redacted), exit\n"
    "      --list-metrics  print every metric /metrics exports (name, type, labels, help),\n"
    "                      one per line, tab-separated, and exit\n"
    "  -v, --verbose       log at debug level (overrides log.level)\n"
    "  -V, --version       print the version and exit\n"
    "  -h, --help          this help\n"
    "\n"
    "Signals: SIGTERM/SIGINT drain (finish what runs within worker.drain_timeout_ms,\n"
    "commit, leave the group) and exit 0; a second one exits at once. SIGHUP re-reads\n"
    "the configuration file and applies log.level, mapping, retry.* and rate_limits.*\n"
    "(also per site) at once; it logs one line naming every changed key, and those\n"
    "that take effect only after a restart (kafka, topics, redis, sites' URLs and\n"
    "credentials, worker, http, ...). A file that does not load changes nothing.\n"
    "HTTP (http.listen): /healthz (the loop is alive), /readyz (not stopping, Redis\n"
    "reachable, Kafka brokers connected, partitions assigned, not every site\n"
    "quarantined), /metrics (Prometheus text format).\n"
    "Logs: JSON lines on stderr (ts, level, component, msg, event_id, partition,\n"
    "offset), librdkafka's own as component \"rdkafka\"; secrets are redacted.\n"
    "Exit status: 0 after a clean stop, 1 on a fatal error, 2 on a bad command line\n"
    "or configuration.\n";

typedef struct app {
    uv_loop_t *loop;
    const char *config_path;
    jp_config_t *cfg;
    jp_pipeline_t *pipeline;
    jp_httpd_t *httpd;
    uv_signal_t sigterm, sigint, sighup;
    uv_timer_t heartbeat;
    _Atomic int64_t last_beat_ms;
    int signals;
    int exit_code;
    int verbose;
    size_t site_count; /* fixed for the process: adding a site needs a restart */
} app_t;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- probes and metrics (run on the HTTP thread: atomics only) --------- */

static void reply_text(jp_httpd_reply_t *r, int status, const char *text)
{
    r->status = status;
    r->body = strdup(text);
    r->body_len = r->body ? strlen(r->body) : 0;
}

/* Why the worker is not ready, or NULL. */
static const char *not_ready(const app_t *app, const jp_pipeline_stats_t *s)
{
    double brokers = -1;
    if (s->stopping)
        return "stopping";
    if (!s->redis_up)
        return "redis unreachable";
    if (jp_metrics_get(jp_metrics_worker()->kafka_brokers_up, NULL, &brokers) && brokers < 1)
        return "no Kafka broker connected";
    if (s->assigned <= 0)
        return "no partitions assigned";
    /* The limiter marks quarantined sites (jp_metrics_site_quarantined). */
    if (app->site_count && jp_metrics_sites_quarantined() >= app->site_count)
        return "every site is quarantined";
    return NULL;
}

/* Gauges and counters kept by the pipeline's atomics, copied in at scrape time. */
static void mirror_stats(const jp_pipeline_stats_t *s, int ready)
{
    const jp_metrics_worker_t *w = jp_metrics_worker();
    jp_metrics_set(w->events_held, NULL, (double)s->held);
    jp_metrics_set(w->events_parked, NULL, (double)s->parked);
    jp_metrics_set(w->events_in_flight, NULL, (double)s->in_flight);
    jp_metrics_set(w->events_replayed, NULL, (double)s->replayed);
    jp_metrics_set(w->publish_errors, NULL, (double)s->publish_errors);
    jp_metrics_set(w->redis_errors, NULL, (double)s->redis_errors);
    jp_metrics_set(w->redis_up, NULL, s->redis_up ? 1 : 0);
    jp_metrics_set(w->partitions_assigned, NULL, s->assigned);
    jp_metrics_set(w->partitions_paused, NULL, s->paused ? s->assigned : 0);
    jp_metrics_set(w->consumption_paused, NULL, s->paused ? 1 : 0);
    jp_metrics_set(w->ready, NULL, ready);
    jp_metrics_set(w->ratelimit_granted, NULL, (double)s->tokens_granted);
    jp_metrics_set(w->ratelimit_waiting, NULL, (double)s->tokens_waiting);
    jp_metrics_set(w->ratelimit_cooldowns_set, NULL, (double)s->cooldowns);
    jp_metrics_set(w->ratelimit_leased, NULL, (double)s->tokens_leased);
    jp_metrics_set(w->ratelimit_lease_lapsed, NULL, (double)s->lease_lapsed);
    jp_metrics_set(w->events_deferred, NULL, (double)s->deferred);
    jp_metrics_set(w->recon_runs, NULL, (double)s->recon.running);
    jp_metrics_set(w->recon_started, NULL, (double)s->recon.started);
    jp_metrics_set(w->recon_completed, NULL, (double)s->recon.completed);
    jp_metrics_set(w->recon_records, NULL, (double)s->recon.records);
    jp_metrics_set(w->recon_calls, NULL, (double)s->recon.calls);
    jp_metrics_set(w->recon_retries, NULL, (double)s->recon.retries);
}

static void http_handler(const char *path, jp_httpd_reply_t *r, void *opaque)
{
    app_t *app = opaque;
    jp_pipeline_stats_t s;
    jp_pipeline_stats(app->pipeline, &s);
    const char *why = not_ready(app, &s);
    if (!strcmp(path, "/healthz")) {
        int alive = mono_ms() - atomic_load(&app->last_beat_ms) < STALL_MS;
        reply_text(r, alive ? 200 : 503, alive ? "ok\n" : "event loop stalled\n");
    } else if (!strcmp(path, "/readyz")) {
        char text[128];
        snprintf(text, sizeof(text), "%s\n", why ? why : "ready");
        reply_text(r, why ? 503 : 200, text);
    } else if (!strcmp(path, "/metrics")) {
        mirror_stats(&s, !why);
        size_t len = 0;
        char *text = jp_metrics_render(jp_metrics_process(), &len);
        if (!text) {
            reply_text(r, 500, "out of memory\n");
            return;
        }
        r->content_type = JP_METRICS_CONTENT_TYPE;
        r->body = text;
        r->body_len = len;
    } else {
        reply_text(r, 404, "not found\n");
    }
}

/* ---- life cycle ---------------------------------------------------------- */

static void heartbeat_cb(uv_timer_t *t)
{
    app_t *app = t->data;
    atomic_store(&app->last_beat_ms, mono_ms());
}

static void close_handles(app_t *app)
{
    uv_close((uv_handle_t *)&app->sigterm, NULL);
    uv_close((uv_handle_t *)&app->sigint, NULL);
    uv_close((uv_handle_t *)&app->sighup, NULL);
    uv_close((uv_handle_t *)&app->heartbeat, NULL);
}

static void stopped(void *opaque)
{
    app_t *app = opaque;
    uv_stop(app->loop);
}

static void close_any(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void on_fatal(const char *reason, void *opaque)
{
    app_t *app = opaque;
    jp_error(COMPONENT, "fatal: %s; exiting", reason);
    app->exit_code = 1;
    jp_pipeline_stop(app->pipeline, stopped, app);
}

static void on_stop_signal(uv_signal_t *s, int signum)
{
    app_t *app = s->data;
    if (++app->signals > 1) {
        jp_warn(COMPONENT, "second signal: exiting without draining");
        exit(app->exit_code ? app->exit_code : 1);
    }
    jp_info(COMPONENT, "%s: draining", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    jp_pipeline_stop(app->pipeline, stopped, app);
}

/* A comma-separated list of config keys, for the reload line. */
typedef struct keylist {
    char text[1536];
    size_t len;
    size_t count;
} keylist_t;

static void keylist_add(keylist_t *l, const char *key)
{
    int n = snprintf(l->text + l->len, sizeof(l->text) - l->len, "%s%s", l->count ? ", " : "", key);
    l->count++;
    if (n > 0)
        l->len = l->len + (size_t)n < sizeof(l->text) ? l->len + (size_t)n : sizeof(l->text) - 1;
}

typedef struct reload_diff {
    keylist_t applied, restart;
} reload_diff_t;

static void sort_key(const char *key, void *opaque)
{
    reload_diff_t *d = opaque;
    keylist_add(jp_config_reloadable(key) ? &d->applied : &d->restart, key);
}

static void reload_failed(const char *why)
{
    jp_metrics_add(jp_metrics_worker()->config_reloads, JP_METRICS_LV("failed"), 1);
    jp_error(COMPONENT, "SIGHUP: configuration not reloaded, nothing changed: %s", why);
}

/* Re-reads the file and applies what can change while running (see
 * jp_config_reloadable); one log line says what changed and what waits for a
 * restart. app->cfg only ever takes reloadable values, so keys that need a
 * restart keep being reported until there is one. */
static void on_sighup(uv_signal_t *s, int signum)
{
    app_t *app = s->data;
    char err[1024];
    jp_config_t *fresh = NULL;
    if (jp_config_load(app->config_path, &fresh, err, sizeof(err)) != JP_OK) {
        reload_failed(err);
        return;
    }
    rd_kafka_conf_t *kconf = rd_kafka_conf_new();
    jp_err_t rc = jp_config_kafka_conf(fresh, kconf, err, sizeof(err));
    rd_kafka_conf_destroy(kconf);
    if (rc != JP_OK) {
        reload_failed(err);
        jp_config_destroy(fresh);
        return;
    }
    reload_diff_t d;
    memset(&d, 0, sizeof(d));
    jp_config_diff(app->cfg, fresh, sort_key, &d);
    jp_log_level_t old_level = jp_log_get_level();
    if (d.applied.count && jp_pipeline_reload(app->pipeline, fresh, err, sizeof(err)) != JP_OK) {
        reload_failed(err);
        jp_config_destroy(fresh);
        return;
    }
    jp_log_level_t level = app->verbose ? JP_LOG_DEBUG : app->cfg->log.level;
    jp_log_set_level(level);
    jp_config_destroy(fresh);

    char levels[64] = "";
    if (level != old_level)
        snprintf(levels, sizeof(levels), " (log level %s -> %s)", jp_log_level_name(old_level),
                 jp_log_level_name(level));
    const jp_metrics_worker_t *w = jp_metrics_worker();
    jp_metrics_add(w->config_reloads, JP_METRICS_LV(d.applied.count ? "applied" : "unchanged"), 1);
    jp_metrics_set(w->restart_pending, NULL, d.restart.count ? 1 : 0);
    jp_log(d.restart.count ? JP_LOG_WARN : JP_LOG_INFO, COMPONENT, JP_LOG_NO_CTX,
           "SIGHUP: configuration reloaded; applied: %s%s; need a restart (not applied): %s",
           d.applied.count ? d.applied.text : "nothing", levels,
           d.restart.count ? d.restart.text : "nothing");
}

static void print_family(const char *name, jp_metrics_type_t type, const char *help,
                         const char *const *labels, void *opaque)
{
    printf("%s\t%s\t", name, jp_metrics_type_name(type));
    for (size_t i = 0; labels[i]; i++)
        printf("%s%s", i ? "," : "", labels[i]);
    printf("\t%s\n", help);
}

static int list_metrics(void)
{
    jp_metrics_t *r = jp_metrics_process();
    if (!r) {
        fprintf(stderr, "jiraprov-worker: out of memory\n");
        return 1;
    }
    jp_metrics_families(r, print_family, NULL);
    return 0;
}

static int check_config(const char *path)
{
    char err[1024];
    jp_config_t *cfg = NULL;
    if (jp_config_load(path, &cfg, err, sizeof(err)) != JP_OK) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    /* librdkafka checks property names and values only when they are set. */
    rd_kafka_conf_t *kconf = rd_kafka_conf_new();
    jp_err_t rc = jp_config_kafka_conf(cfg, kconf, err, sizeof(err));
    rd_kafka_conf_destroy(kconf);
    if (rc == JP_OK) /* what the worker needs beyond a valid file */
        rc = jp_audit_check_config(cfg, err, sizeof(err));
    if (rc != JP_OK) {
        fprintf(stderr, "%s\n", err);
        jp_config_destroy(cfg);
        return 2;
    }
    jp_config_log_insecure(cfg);
    jp_config_dump(cfg, stdout);
    jp_config_destroy(cfg);
    fprintf(stderr, "%s: configuration is valid\n", path);
    return 0;
}

static int run(app_t *app)
{
    char err[1024];
    if (jp_config_load(app->config_path, &app->cfg, err, sizeof(err)) != JP_OK) {
        fprintf(stderr, "jiraprov-worker: %s\n", err);
        return 2;
    }
    jp_log_set_level(app->verbose ? JP_LOG_DEBUG : app->cfg->log.level);
    jp_config_log_insecure(app->cfg);

    app->site_count = app->cfg->site_count;
    jp_metrics_process(); /* every family exists before the first scrape */
    app->loop = uv_default_loop();
    app->pipeline = jp_pipeline_new(app->loop, app->cfg, err, sizeof(err));
    if (!app->pipeline) {
        jp_error(COMPONENT, "start-up failed: %s", err);
        jp_config_destroy(app->cfg);
        return 2;
    }
    jp_pipeline_on_fatal(app->pipeline, on_fatal, app);
    atomic_store(&app->last_beat_ms, mono_ms());
    if (app->cfg->http.listen[0] &&
        !(app->httpd = jp_httpd_new(app->cfg->http.listen, http_handler, app, err, sizeof(err)))) {
        jp_error(COMPONENT, "start-up failed: %s", err);
        jp_pipeline_destroy(app->pipeline);
        jp_config_destroy(app->cfg);
        return 2;
    }

    uv_signal_init(app->loop, &app->sigterm);
    uv_signal_init(app->loop, &app->sigint);
    uv_signal_init(app->loop, &app->sighup);
    uv_timer_init(app->loop, &app->heartbeat);
    app->sigterm.data = app->sigint.data = app->sighup.data = app->heartbeat.data = app;
    uv_signal_start(&app->sigterm, on_stop_signal, SIGTERM);
    uv_signal_start(&app->sigint, on_stop_signal, SIGINT);
    uv_signal_start(&app->sighup, on_sighup, SIGHUP);
    uv_timer_start(&app->heartbeat, heartbeat_cb, HEARTBEAT_MS, HEARTBEAT_MS);

    /* The bound port, not the configured one: "host:0" picks a free port. */
    char http_note[96] = "";
    if (app->httpd)
        snprintf(http_note, sizeof(http_note), ", http on port %d", jp_httpd_port(app->httpd));
    jp_info(COMPONENT, "jiraprov-worker %s started: instance %s, group %s, topic %s%s", JP_VERSION,
            app->cfg->worker.instance_id, app->cfg->consumer.group, app->cfg->topics.events,
            http_note);
    uv_run(app->loop, UV_RUN_DEFAULT);

    close_handles(app);
    jp_httpd_destroy(app->httpd);
    jp_pipeline_destroy(app->pipeline);
    /* Modules close their handles in destroy; close any left so the loop ends. */
    uv_walk(app->loop, close_any, NULL);
    uv_run(app->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(app->loop) != 0)
        jp_warn(COMPONENT, "event loop closed with handles still open");
    jp_config_destroy(app->cfg);
    jp_info(COMPONENT, "exit %d", app->exit_code);
    return app->exit_code;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {{"config", required_argument, NULL, 'c'},
                                             {"check-config", no_argument, NULL, 'C'},
                                             {"list-metrics", no_argument, NULL, 'M'},
                                             {"verbose", no_argument, NULL, 'v'},
                                             {"version", no_argument, NULL, 'V'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    app_t app;
    memset(&app, 0, sizeof(app));
    int check = 0, opt;
    while ((opt = getopt_long(argc, argv, "c:vVh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            app.config_path = optarg;
            break;
        case 'C':
            check = 1;
            break;
        case 'M':
            return list_metrics();
        case 'v':
            app.verbose = 1;
            break;
        case 'V':
            printf("jiraprov-worker %s (librdkafka %s, %s)\n", JP_VERSION, rd_kafka_version_str(),
                   curl_version());
            return 0;
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        default:
            fputs(usage_text, stderr);
            return 2;
        }
    }
    if (!app.config_path || optind != argc) {
        fprintf(stderr, "jiraprov-worker: %s\n\n%s",
                app.config_path ? "unexpected argument" : "--config FILE is required", usage_text);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    return check ? check_config(app.config_path) : run(&app);
}
