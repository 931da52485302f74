/* jiraprov-recon-schedule: emits recon.request events on a schedule, for deployments that want
 * periodic (typically incremental) reconciliation without IDHub asking each time.
 *
 * Each tick of the schedule (jiraprov/schedule.h: an interval aligned to the epoch, or a cron
 * expression, both UTC) gives one request whose reconId is <prefix>-<tick as YYYYMMDDTHHMMSSZ>
 * and whose event id is <reconId>.request: every replica of the scheduler emits the same event
 * for a tick, the worker applies an event id once and runs a reconId once, so running two
 * schedulers for availability costs nothing but a duplicate message.
 *
 * Ownership: main() owns everything. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jiraprov/cli_producer.h"
#include "jiraprov/event.h"
#include "jiraprov/schedule.h"

#define PROG "jiraprov-recon-schedule"

#define PARSED_EXIT_OK (-1) /* --help or --version answered */
#define EXIT_FAILED    1    /* a request was not delivered */
#define EXIT_SETUP     2
#define EXIT_INTERRUPT 130

typedef struct opts {
    jp_cli_target_args_t target;
    const char *site;
    const char *mode;
    const char *resources;
    const char *filter;
    const char *scope;
    const char *prefix;
    const char *actor;
    const char *every;
    const char *cron;
    int once;
    int dry_run;
    int quiet;
} opts_t;

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: " PROG " --site NAME (--every DURATION | --cron EXPR) [options]\n"
            "Emits com.idhub.recon.request events to the events topic on a schedule (UTC).\n"
            "\n"
            "Schedule:\n"
            "      --every D       every D (30s, 15m, 1h, 1d), aligned to the epoch: 15m fires\n"
            "                      at :00, :15, :30 and :45\n"
            "      --cron EXPR     five cron fields: minute hour day-of-month month day-of-week\n"
            "                      (*, a, a-b, */n, a-b/n, lists; day-of-week 0 or 7 = Sunday)\n"
            "      --once          emit the request of the latest tick (at or before now) and\n"
            "                      exit; without it, wait for each coming tick until stopped\n"
            "\n"
            "Request:\n"
            "  -s, --site NAME     jirasite (required)\n"
            "  -m, --mode M        incremental (default), full or filtered\n"
            "  -r, --resources L   accounts,entitlements (default both)\n"
            "      --filter JSON   the filter of a filtered run, e.g. '{\"department\":\"R&D\"}'\n"
            "      --scope S       incremental scope (default: derived by the worker)\n"
            "  -p, --prefix P      reconId prefix (default sched-<site>); reconId =\n"
            "                      <prefix>-<tick YYYYMMDDTHHMMSSZ>, event id = <reconId>.request\n"
            "      --actor A       idhubactor (default " PROG ")\n"
            "\n"
            "Destination (as jiraprov-produce):\n"
            "  -c, --config FILE   worker config: kafka properties and topics.events\n"
            "  -b, --bootstrap H:P bootstrap servers (default $KAFKA_BOOTSTRAP)\n"
            "  -t, --topic NAME    topic (default $TOPIC_EVENTS, then " JP_CLI_DEFAULT_TOPIC ")\n"
            "  -X NAME=VALUE       extra librdkafka property\n"
            "\n"
            "  -n, --dry-run       print the requests (JSON, one a line) instead of sending them\n"
            "  -q, --quiet         no line per request on stderr\n"
            "  -h, --help          this help\n"
            "  -V, --version       print the version\n"
            "\n"
            "Every request is validated against the event contract before it is sent. Exit\n"
            "status: 0 every request delivered; 1 one was not; 2 usage or set-up error; 130\n"
            "stopped by a signal (after the last request's delivery).\n");
}

static int parse_args(int argc, char **argv, opts_t *o)
{
    enum { OPT_EVERY = 256, OPT_CRON, OPT_ONCE, OPT_FILTER, OPT_SCOPE, OPT_ACTOR };
    static const struct option longopts[] = {
        JP_CLI_TARGET_LONGOPTS,
        {"site", required_argument, NULL, 's'},
        {"mode", required_argument, NULL, 'm'},
        {"resources", required_argument, NULL, 'r'},
        {"filter", required_argument, NULL, OPT_FILTER},
        {"scope", required_argument, NULL, OPT_SCOPE},
        {"prefix", required_argument, NULL, 'p'},
        {"actor", required_argument, NULL, OPT_ACTOR},
        {"every", required_argument, NULL, OPT_EVERY},
        {"cron", required_argument, NULL, OPT_CRON},
        {"once", no_argument, NULL, OPT_ONCE},
        {"dry-run", no_argument, NULL, 'n'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    int c, taken;
    char errstr[128];
    memset(o, 0, sizeof(*o));
    o->mode = "incremental";
    o->resources = "accounts,entitlements";
    o->actor = PROG;
    while ((c = getopt_long(argc, argv, JP_CLI_TARGET_SHORTOPTS "s:m:r:p:nqhV", longopts, NULL)) !=
           -1) {
        taken = jp_cli_target_option(&o->target, c, optarg, errstr, sizeof(errstr));
        if (taken < 0) {
            fprintf(stderr, PROG ": %s\n", errstr);
            return EXIT_SETUP;
        }
        if (taken)
            continue;
        switch (c) {
        case 's':
            o->site = optarg;
            break;
        case 'm':
            o->mode = optarg;
            break;
        case 'r':
            o->resources = optarg;
            break;
        case OPT_FILTER:
            o->filter = optarg;
            break;
        case OPT_SCOPE:
            o->scope = optarg;
            break;
        case 'p':
            o->prefix = optarg;
            break;
        case OPT_ACTOR:
            o->actor = optarg;
            break;
        case OPT_EVERY:
            o->every = optarg;
            break;
        case OPT_CRON:
            o->cron = optarg;
            break;
        case OPT_ONCE:
            o->once = 1;
            break;
        case 'n':
            o->dry_run = 1;
            break;
        case 'q':
            o->quiet = 1;
            break;
        case 'h':
            usage(stdout);
            return PARSED_EXIT_OK;
        case 'V':
            printf(PROG " %s\n", JP_VERSION);
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
    if (!o->site || (!o->every == !o->cron)) {
        fprintf(stderr, PROG ": --site and one of --every or --cron are required\n");
        return EXIT_SETUP;
    }
    return 0;
}

/* The request of tick `t`, validated; NULL with errstr when the options make an invalid event. */
static json_t *request_for(const opts_t *o, int64_t t, char *recon_id, size_t recon_id_size,
                           char *errstr, size_t errstr_size)
{
    char stamp[32], when[32], prefix[128], id[300];
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(prefix, sizeof(prefix), "%s", o->prefix ? o->prefix : "");
    if (!o->prefix)
        snprintf(prefix, sizeof(prefix), "sched-%s", o->site);
    snprintf(recon_id, recon_id_size, "%s-%s", prefix, stamp);
    snprintf(id, sizeof(id), "%s.request", recon_id);

    json_t *resources = json_array();
    char list[128];
    snprintf(list, sizeof(list), "%s", o->resources);
    char *save = NULL;
    for (char *r = strtok_r(list, ",", &save); r; r = strtok_r(NULL, ",", &save))
        json_array_append_new(resources, json_string(r));
    json_t *data =
        json_pack("{s:s, s:s, s:o}", "reconId", recon_id, "mode", o->mode, "resources", resources);
    if (data && o->filter) {
        json_error_t je;
        json_t *f = json_loads(o->filter, 0, &je);
        if (!f) {
            json_decref(data);
            jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "--filter: not JSON: %s", je.text);
            return NULL;
        }
        json_object_set_new(data, "filter", f);
    }
    if (data && o->scope)
        json_object_set_new(data, "scope", json_string(o->scope));
    json_t *ev =
        data ? json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o}", "specversion", "1.0",
                         "id", id, "source", "jiraprov://recon-schedule", "type",
                         "com.idhub.recon.request", "subject", recon_id, "time", when,
                         "datacontenttype", "application/json", "jirasite", o->site, "idhubactor",
                         o->actor, "data", data)
             : NULL;
    if (!ev) {
        jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
        return NULL;
    }
    jp_event_t *decoded = NULL;
    if (jp_event_from_json(ev, &decoded, errstr, errstr_size) != JP_OK) {
        json_decref(ev);
        return NULL;
    }
    jp_event_destroy(decoded);
    return ev;
}

/* Builds, validates and sends (or prints) the request of tick t. 0, or an exit status. */
static int emit(const opts_t *o, jp_cli_producer_t *p, int64_t t)
{
    char recon_id[200], errstr[1024];
    json_t *ev = request_for(o, t, recon_id, sizeof(recon_id), errstr, sizeof(errstr));
    if (!ev) {
        fprintf(stderr, PROG ": the request would be invalid: %s\n", errstr);
        return EXIT_SETUP;
    }
    char *text = json_dumps(ev, JSON_COMPACT);
    json_decref(ev);
    if (!text) {
        fprintf(stderr, PROG ": out of memory\n");
        return EXIT_SETUP;
    }
    int rc = 0;
    if (o->dry_run) {
        printf("%s\n", text);
        fflush(stdout);
    } else if (jp_cli_producer_send(p, recon_id, strlen(recon_id), text, strlen(text),
                                    JP_EVENT_RECON_REQUEST, errstr, sizeof(errstr)) != JP_OK ||
               jp_cli_producer_flush(p, 60000, errstr, sizeof(errstr)) != JP_OK ||
               jp_cli_producer_stats(p)->failed) {
        fprintf(stderr, PROG ": %s not delivered: %s\n", recon_id,
                jp_cli_producer_stats(p)->failed ? jp_cli_producer_first_error(p) : errstr);
        rc = EXIT_FAILED;
    }
    if (!rc && !o->quiet)
        fprintf(stderr, PROG ": %s recon.request %s (%s, %s)\n", o->dry_run ? "built" : "sent",
                recon_id, o->mode, o->resources);
    free(text);
    return rc;
}

/* Sleeps until wall time `t` or a stop signal; false when stopped. */
static bool wait_until(int64_t t)
{
    while (!jp_cli_stopping()) {
        int64_t now = (int64_t)time(NULL);
        if (now >= t)
            return true;
        struct timespec ts = {0, 200 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return false;
}

int main(int argc, char **argv)
{
    opts_t o;
    int rc = parse_args(argc, argv, &o);
    if (rc)
        return rc == PARSED_EXIT_OK ? 0 : rc;
    char errstr[512];
    jp_schedule_t *sched = NULL;
    jp_err_t err = o.every ? jp_schedule_every(o.every, &sched, errstr, sizeof(errstr))
                           : jp_schedule_cron(o.cron, &sched, errstr, sizeof(errstr));
    if (err != JP_OK) {
        fprintf(stderr, PROG ": %s\n", errstr);
        return EXIT_SETUP;
    }
    jp_cli_target_t *target = NULL;
    jp_cli_producer_t *producer = NULL;
    if (!o.dry_run) {
        jp_cli_producer_tuning_t tuning = {.client_id = PROG};
        if (jp_cli_target_resolve(&o.target, &target, errstr, sizeof(errstr)) != JP_OK ||
            jp_cli_producer_new(target, &tuning, &producer, errstr, sizeof(errstr)) != JP_OK) {
            fprintf(stderr, PROG ": %s\n", errstr);
            jp_cli_target_destroy(target);
            jp_schedule_destroy(sched);
            return EXIT_SETUP;
        }
    }
    jp_cli_catch_stop();
    int64_t now = (int64_t)time(NULL);
    if (o.once) {
        int64_t t = jp_schedule_prev(sched, now);
        rc = t < 0 ? EXIT_SETUP : emit(&o, producer, t);
        if (t < 0)
            fprintf(stderr, PROG ": the schedule has no tick in the last 5 years\n");
    } else {
        int64_t t = now;
        while (!rc) {
            t = jp_schedule_next(sched, t);
            if (t < 0) {
                fprintf(stderr, PROG ": the schedule has no tick in the next 5 years\n");
                rc = EXIT_SETUP;
                break;
            }
            if (!wait_until(t)) {
                rc = EXIT_INTERRUPT;
                break;
            }
            rc = emit(&o, producer, t);
        }
    }
    jp_cli_producer_destroy(producer);
    jp_cli_target_destroy(target);
    jp_schedule_destroy(sched);
    return rc;
}
