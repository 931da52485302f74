/* jiraprov-worker: applies IDHub's events from Kafka to Jira Cloud and
 * publishes an outcome for each. Many copies run as one consumer group. */
#include "jiraprov/config.h"
#include "jiraprov/httpd.h"
#include "jiraprov/log.h"
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
    "  -v, --verbose       log at debug level (overrides log.level)\n"
    "  -V, --version       print the version and exit\n"
    "  -h, --help          this help\n"
    "\n"
    "Signals: SIGTERM/SIGINT drain (finish what runs within worker.drain_timeout_ms,\n"
    "commit, leave the group) and exit 0; a second one exits at once. SIGHUP re-reads\n"
    "the configuration and applies log.level; other changes need a restart and are\n"
    "reported.\n"
    "HTTP (http.listen): /healthz (the loop is alive), /readyz (partitions assigned,\n"
    "Redis reachable, not stopping, not every site quarantined), /metrics (Prometheus text).\n"
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

static void render_metrics(const jp_pipeline_stats_t *s, jp_httpd_reply_t *r)
{
    static const char *status_names[] = {"succeeded", "skipped", "failed"};
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) {
        reply_text(r, 500, "out of memory\n");
        return;
    }
    fprintf(f,
            "# HELP jiraprov_events_consumed_total Events taken from the events topic.\n"
            "# TYPE jiraprov_events_consumed_total counter\n"
            "jiraprov_events_consumed_total %llu\n",
            (unsigned long long)s->consumed);
    fprintf(f, "# HELP jiraprov_events_completed_total Events with a terminal outcome.\n"
               "# TYPE jiraprov_events_completed_total counter\n");
    for (int i = 0; i < 3; i++)
        fprintf(f, "jiraprov_events_completed_total{status=\"%s\"} %llu\n", status_names[i],
                (unsigned long long)s->completed[i]);
    fprintf(f,
            "# TYPE jiraprov_events_deadlettered_total counter\n"
            "jiraprov_events_deadlettered_total %llu\n"
            "# TYPE jiraprov_events_replayed_total counter\n"
            "jiraprov_events_replayed_total %llu\n"
            "# TYPE jiraprov_retries_total counter\n"
            "jiraprov_retries_total %llu\n"
            "# TYPE jiraprov_publish_errors_total counter\n"
            "jiraprov_publish_errors_total %llu\n"
            "# TYPE jiraprov_redis_errors_total counter\n"
            "jiraprov_redis_errors_total %llu\n"
            "# TYPE jiraprov_events_held gauge\n"
            "jiraprov_events_held %llu\n"
            "# TYPE jiraprov_events_parked gauge\n"
            "jiraprov_events_parked %llu\n"
            "# TYPE jiraprov_consumption_paused gauge\n"
            "jiraprov_consumption_paused %d\n"
            "# TYPE jiraprov_partitions_assigned gauge\n"
            "jiraprov_partitions_assigned %d\n"
            "# TYPE jiraprov_redis_up gauge\n"
            "jiraprov_redis_up %d\n",
            (unsigned long long)s->deadlettered, (unsigned long long)s->replayed,
            (unsigned long long)s->retries, (unsigned long long)s->publish_errors,
            (unsigned long long)s->redis_errors, (unsigned long long)s->held,
            (unsigned long long)s->parked, s->paused, s->assigned, s->redis_up);
    fprintf(f,
            "# HELP jiraprov_events_deferred_total Starts put off by the shared budget.\n"
            "# TYPE jiraprov_events_deferred_total counter\n"
            "jiraprov_events_deferred_total %llu\n"
            "# HELP jiraprov_ratelimit_tokens_granted_total Jira calls let through by the shared "
            "budget.\n"
            "# TYPE jiraprov_ratelimit_tokens_granted_total counter\n"
            "jiraprov_ratelimit_tokens_granted_total %llu\n"
            "# HELP jiraprov_ratelimit_waiting Jira calls waiting for a token.\n"
            "# TYPE jiraprov_ratelimit_waiting gauge\n"
            "jiraprov_ratelimit_waiting %llu\n"
            "# HELP jiraprov_ratelimit_cooldowns_total Cool-downs this worker set after 429/503.\n"
            "# TYPE jiraprov_ratelimit_cooldowns_total counter\n"
            "jiraprov_ratelimit_cooldowns_total %llu\n"
            "# TYPE jiraprov_ratelimit_errors_total counter\n"
            "jiraprov_ratelimit_errors_total %llu\n"
            "# HELP jiraprov_sites_quarantined Sites with an API in quarantine.\n"
            "# TYPE jiraprov_sites_quarantined gauge\n"
            "jiraprov_sites_quarantined %d\n",
            (unsigned long long)s->deferred, (unsigned long long)s->tokens_granted,
            (unsigned long long)s->tokens_waiting, (unsigned long long)s->cooldowns,
            (unsigned long long)s->limiter_errors, s->sites_quarantined);
    fprintf(f, "# HELP jiraprov_event_overhead_seconds Time the worker adds to an event: consumed "
               "to result produced, minus its Jira calls (first attempts only).\n"
               "# TYPE jiraprov_event_overhead_seconds histogram\n");
    uint64_t cum = 0;
    for (int i = 0; i < JP_PIPELINE_OVERHEAD_BUCKETS; i++) {
        cum += s->overhead_bucket[i];
        if (i < JP_PIPELINE_OVERHEAD_BUCKETS - 1)
            fprintf(f, "jiraprov_event_overhead_seconds_bucket{le=\"%g\"} %llu\n",
                    (double)jp_pipeline_overhead_bounds_us[i] / 1e6, (unsigned long long)cum);
        else
            fprintf(f, "jiraprov_event_overhead_seconds_bucket{le=\"+Inf\"} %llu\n",
                    (unsigned long long)cum);
    }
    fprintf(f,
            "jiraprov_event_overhead_seconds_sum %.6f\n"
            "jiraprov_event_overhead_seconds_count %llu\n",
            (double)s->overhead_sum_us / 1e6, (unsigned long long)s->overhead_count);
    fclose(f);
    r->content_type = "text/plain; version=0.0.4; charset=utf-8";
    r->body = buf;
    r->body_len = len;
}

static void http_handler(const char *path, jp_httpd_reply_t *r, void *opaque)
{
    app_t *app = opaque;
    jp_pipeline_stats_t s;
    jp_pipeline_stats(app->pipeline, &s);
    if (!strcmp(path, "/healthz")) {
        int alive = mono_ms() - atomic_load(&app->last_beat_ms) < STALL_MS;
        reply_text(r, alive ? 200 : 503, alive ? "ok\n" : "event loop stalled\n");
    } else if (!strcmp(path, "/readyz")) {
        const char *why = s.stopping        ? "stopping\n"
                          : !s.redis_up     ? "redis unreachable\n"
                          : s.assigned <= 0 ? "no partitions assigned\n"
                          : s.site_count > 0 && s.sites_quarantined >= s.site_count
                              ? "every site is quarantined\n"
                              : NULL;
        reply_text(r, why ? 503 : 200, why ? why : "ready\n");
    } else if (!strcmp(path, "/metrics")) {
        render_metrics(&s, r);
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

static void on_sighup(uv_signal_t *s, int signum)
{
    app_t *app = s->data;
    char err[1024];
    jp_config_t *fresh = NULL;
    if (jp_config_load(app->config_path, &fresh, err, sizeof(err)) != JP_OK) {
        jp_error(COMPONENT, "SIGHUP: configuration not reloaded: %s", err);
        return;
    }
    jp_log_level_t old = jp_log_get_level(), want = app->verbose ? JP_LOG_DEBUG : fresh->log.level;
    if (want != old) {
        jp_log_set_level(want);
        jp_info(COMPONENT, "SIGHUP: log.level %s -> %s", jp_log_level_name(old),
                jp_log_level_name(want));
    } else {
        jp_info(COMPONENT, "SIGHUP: configuration valid; log.level unchanged; other settings "
                           "take effect at the next restart");
    }
    jp_config_destroy(fresh);
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
    if (rc != JP_OK) {
        fprintf(stderr, "%s\n", err);
        jp_config_destroy(cfg);
        return 2;
    }
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
    for (size_t i = 0; i < app->cfg->site_count; i++)
        if (!app->cfg->sites[i].tls_verify)
            jp_warn(COMPONENT, "site %s: TLS certificate verification is OFF (tls_verify: false)",
                    app->cfg->sites[i].name);

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
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"check-config", no_argument, NULL, 'C'},
        {"verbose", no_argument, NULL, 'v'},      {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
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
