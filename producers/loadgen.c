/* jiraprov-loadgen: generates realistic, contract-valid IDHub events and produces them to the
 * events topic at a target rate (or as fast as possible), or writes them as JSON Lines.
 *
 * Events are built by hand into a buffer rather than with jansson: every string that goes into
 * them comes from fixed tables or from options checked to need no JSON escaping, and this keeps
 * generation far cheaper than producing. The decoder checks the first event of every type, and
 * with --check every Nth event, so a generator bug cannot go unnoticed.
 *
 * Pacing is a token bucket on the monotonic clock: event k after the bucket's base is due at
 * base + k/rate and the loop sleeps until that absolute time (no accumulated drift); a burst
 * of at most 100 ms worth of events may catch up after a stall.
 *
 * Ownership: main() owns everything. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "jiraprov/cli_producer.h"
#include "jiraprov/event.h"

#define PROG "jiraprov-loadgen"

#define EXIT_FAILED 1 /* events not delivered, or a generated event failed validation */
/* parse_args: --help or --version was answered; main() exits 0 (only main exits). */
#define PARSED_EXIT_OK (-1)
#define EXIT_SETUP     2
#define EXIT_INTERRUPT 130

#define EVENT_BUF_SIZE 8192
#define MAX_COUNT      1000000000ULL
#define MAX_SUBJECTS   100000000ULL
#define BURST_SECONDS  0.1
#define DEFAULT_MIX    "account.update=70,account.create=10,entitlement.grant=10,issue.create=10"
#define EVENT_SOURCE   "/idhub/loadgen"
#define EVENT_ACTOR    "loadgen"

typedef struct opts {
    jp_cli_target_args_t target;
    uint64_t count;
    double rate; /* events/s, 0 = as fast as possible */
    const char *mix;
    uint64_t subjects;
    const char *site;
    uint64_t seed;
    int seed_given;
    const char *prefix;
    const char *domain;
    const char *project;
    const char *out;
    uint64_t check_every; /* 0 = only the first event of each type */
    int quiet;
    int progress;
} opts_t;

/* ---- random numbers: xoshiro256** seeded by splitmix64 ---- */

typedef struct rng {
    uint64_t s[4];
} rng_t;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static void rng_seed(rng_t *r, uint64_t seed)
{
    int i;
    for (i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(rng_t *r)
{
    uint64_t result = rotl(r->s[1] * 5, 7) * 9, t = r->s[1] << 17;
    r->s[2] ^= r->s[0];
    r->s[3] ^= r->s[1];
    r->s[1] ^= r->s[2];
    r->s[0] ^= r->s[3];
    r->s[2] ^= t;
    r->s[3] = rotl(r->s[3], 45);
    return result;
}

/* Uniform in [0, n) (n > 0); the bias of a 64-bit modulo is negligible here. */
static uint64_t rng_below(rng_t *r, uint64_t n)
{
    return rng_next(r) % n;
}

/* A fixed scramble of a subject index, so that a person keeps one name in every run. */
static uint64_t mix64(uint64_t x)
{
    return splitmix64(&x);
}

/* ---- a bounded string builder ---- */

typedef struct buf {
    char *p;
    size_t len, cap;
    int overflow;
} buf_t;

static void put_n(buf_t *b, const char *s, size_t n)
{
    if (b->len + n >= b->cap) {
        b->overflow = 1;
        return;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void put(buf_t *b, const char *s)
{
    put_n(b, s, strlen(s));
}

static void put_u(buf_t *b, uint64_t v, int width)
{
    char tmp[24];
    int n = 0;

    do {
        tmp[sizeof(tmp) - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v && n < (int)sizeof(tmp));
    while (n < width && n < (int)sizeof(tmp))
        tmp[sizeof(tmp) - 1 - n++] = '0';
    put_n(b, tmp + sizeof(tmp) - n, (size_t)n);
}

static void put_hex(buf_t *b, uint64_t v, int digits)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[16];
    int i;

    for (i = digits - 1; i >= 0; i--) {
        tmp[i] = hex[v & 0xF];
        v >>= 4;
    }
    put_n(b, tmp, (size_t)digits);
}

/* "name":"value" with a leading comma unless first. Values are known not to need escaping. */
static void put_field(buf_t *b, const char *name, const char *value, int first)
{
    if (!first)
        put_n(b, ",", 1);
    put_n(b, "\"", 1);
    put(b, name);
    put_n(b, "\":\"", 3);
    put(b, value);
    put_n(b, "\"", 1);
}

/* ---- realistic values ---- */

static const char *const first_names[] = {
    "Ada",     "Alan",   "Grace", "Linus",   "Margaret", "Dennis", "Barbara", "Ken",
    "Frances", "Edsger", "Radia", "Donald",  "Hedy",     "Tim",    "Karen",   "John",
    "Sophie",  "Leslie", "Anita", "Niklaus", "Joan",     "Bjarne", "Shafi",   "Guido",
    "Mary",    "James",  "Lynn",  "Robert",  "Carol",    "Vint",   "Jean",    "Yukihiro"};
static const char *const last_names[] = {
    "Lovelace",   "Turing",     "Hopper",     "Torvalds", "Hamilton", "Ritchie", "Liskov",
    "Thompson",   "Allen",      "Dijkstra",   "Perlman",  "Knuth",    "Lamarr",  "Berners-Lee",
    "Jones",      "McCarthy",   "Wilson",     "Lamport",  "Borg",     "Wirth",   "Clarke",
    "Stroustrup", "Goldwasser", "van Rossum", "Shaw",     "Gosling",  "Conway",  "Kahn",
    "Shaw-Smith", "Cerf",       "Bartik",     "Matsumoto"};
static const char *const departments[] = {"Engineering", "Sales",  "Marketing",  "Finance",
                                          "Support",     "R&D",    "Operations", "Legal",
                                          "People",      "Product"};
static const char *const job_titles[] = {
    "Engineer",        "Senior Engineer",   "Engineering Manager", "Analyst",
    "Designer",        "Account Executive", "Support Specialist",  "Director",
    "Product Manager", "Consultant"};
static const char *const timezones[] = {"Europe/Paris",  "America/New_York",    "Asia/Tokyo",
                                        "Europe/London", "America/Los_Angeles", "Australia/Sydney",
                                        "UTC",           "Europe/Berlin"};
static const char *const groups[] = {"jira-software-users", "loadgen-team-a", "loadgen-team-b",
                                     "loadgen-team-c"};
static const char *const roles[] = {"Developers", "Viewers", "Administrators"};
static const char *const priorities[] = {"Low", "Medium", "High"};
static const char *const statuses[] = {"To Do", "In Progress", "Done"};
static const char *const issue_types[] = {"Task", "Bug", "Story"};

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))
#define PICK(r, a)  ((a)[rng_below((r), COUNT_OF(a))])

/* ---- the generator ---- */

typedef struct gen {
    const opts_t *o;
    rng_t rng;
    uint64_t nonce;
    uint64_t seq;
    uint32_t cumulative[JP_EVENT__COUNT];
    uint32_t total_weight;
    int login_width;
    char correlation[32];
    time_t cached_sec;
    char cached_time[32];
} gen_t;

/* A bijection on 62-bit integers: unique ids that do not look sequential. */
static uint64_t scramble62(uint64_t x)
{
    const uint64_t mask = (1ULL << 62) - 1;
    x = (x * 0x9E3779B97F4A7C15ULL) & mask;
    x ^= x >> 29;
    x = (x * 0xBF58476D1CE4E5B9ULL) & mask;
    x ^= x >> 31;
    return x;
}

static void put_uuid(buf_t *b, uint64_t hi, uint64_t lo)
{
    hi = (hi & ~0xF000ULL) | 0x4000ULL;       /* version 4 */
    lo = (lo & ~(3ULL << 62)) | (2ULL << 62); /* RFC 4122 variant */
    put_hex(b, hi >> 32, 8);
    put_n(b, "-", 1);
    put_hex(b, (hi >> 16) & 0xFFFF, 4);
    put_n(b, "-", 1);
    put_hex(b, hi & 0xFFFF, 4);
    put_n(b, "-", 1);
    put_hex(b, lo >> 48, 4);
    put_n(b, "-", 1);
    put_hex(b, lo & 0xFFFFFFFFFFFFULL, 12);
}

static void put_time(gen_t *g, buf_t *b)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != g->cached_sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        strftime(g->cached_time, sizeof(g->cached_time), "%Y-%m-%dT%H:%M:%S", &tm);
        g->cached_sec = ts.tv_sec;
    }
    put(b, g->cached_time);
    put_n(b, ".", 1);
    put_u(b, (uint64_t)(ts.tv_nsec / 1000000), 3);
    put_n(b, "Z", 1);
}

static void put_login(gen_t *g, buf_t *b, uint64_t subject)
{
    put(b, g->o->prefix);
    put_u(b, subject, g->login_width);
}

static void put_issue_ref(gen_t *g, buf_t *b, uint64_t subject)
{
    put(b, g->o->prefix);
    put(b, "-issue-");
    put_u(b, subject, g->login_width);
}

static void data_account_create(gen_t *g, buf_t *b, uint64_t subj)
{
    uint64_t h = mix64(subj);
    const char *first = first_names[h % COUNT_OF(first_names)];
    const char *last = last_names[(h >> 16) % COUNT_OF(last_names)];

    put(b, ",\"email\":\"");
    put_login(g, b, subj);
    put(b, "@");
    put(b, g->o->domain);
    put(b, "\"");
    put_field(b, "firstName", first, 0);
    put_field(b, "lastName", last, 0);
    put(b, ",\"displayName\":\"");
    put(b, first);
    put(b, " ");
    put(b, last);
    put(b, "\"");
    put_field(b, "jobTitle", job_titles[(h >> 24) % COUNT_OF(job_titles)], 0);
    put_field(b, "department", departments[(h >> 32) % COUNT_OF(departments)], 0);
    put_field(b, "organizationName", "Load Example Inc", 0);
    put_field(b, "timezone", timezones[(h >> 40) % COUNT_OF(timezones)], 0);
    put(b, ",\"externalId\":\"idhub-");
    put_u(b, subj, g->login_width);
    put(b, "\",\"active\":true");
}

static void data_account_update(gen_t *g, buf_t *b)
{
    uint64_t what = 1 + rng_below(&g->rng, 15); /* a non-empty subset of four attributes */

    if (what & 1)
        put_field(b, "jobTitle", PICK(&g->rng, job_titles), 0);
    if (what & 2)
        put_field(b, "department", PICK(&g->rng, departments), 0);
    if (what & 4)
        put_field(b, "timezone", PICK(&g->rng, timezones), 0);
    if (what & 8)
        put(b, rng_below(&g->rng, 4) ? ",\"active\":true" : ",\"active\":false");
}

static void data_entitlement(gen_t *g, buf_t *b)
{
    if (rng_below(&g->rng, 4)) {
        put(b, ",\"entitlement\":{\"type\":\"group\"");
        put_field(b, "group", PICK(&g->rng, groups), 0);
    } else {
        put(b, ",\"entitlement\":{\"type\":\"projectRole\"");
        put_field(b, "project", g->o->project, 0);
        put_field(b, "role", PICK(&g->rng, roles), 0);
    }
    put(b, "}");
}

static void data_issue_create(gen_t *g, buf_t *b)
{
    uint64_t who = rng_below(&g->rng, g->o->subjects);

    put_field(b, "project", g->o->project, 0);
    put_field(b, "issueType", PICK(&g->rng, issue_types), 0);
    put(b, ",\"summary\":\"Access request ");
    put_u(b, g->seq, 0);
    put(b, " for ");
    put_login(g, b, who);
    put(b, "\",\"description\":\"Generated by " PROG " (event ");
    put_u(b, g->seq, 0);
    put(b, ").\\nNo action needed.\"");
    put_field(b, "priority", PICK(&g->rng, priorities), 0);
    put(b, ",\"labels\":[\"loadgen\"],\"assignee\":\"");
    put_login(g, b, who);
    put(b, "\"");
}

static void data_issue_update(gen_t *g, buf_t *b)
{
    put(b, ",\"summary\":\"Access request updated by event ");
    put_u(b, g->seq, 0);
    put(b, "\"");
    put_field(b, "priority", PICK(&g->rng, priorities), 0);
}

/* The subject, then `data`, of one event of type t. */
static void put_subject_and_data(gen_t *g, buf_t *b, jp_event_type_t t)
{
    uint64_t subj = rng_below(&g->rng, g->o->subjects);

    put(b, ",\"subject\":\"");
    if (JP_EVENT_IS_ACCOUNT(t) || JP_EVENT_IS_ENTITLEMENT(t))
        put_login(g, b, subj);
    else if (JP_EVENT_IS_ISSUE(t))
        put_issue_ref(g, b, subj);
    else {
        put(b, "loadgen-");
        put_hex(b, g->nonce, 16);
        put(b, "-");
        put_u(b, g->seq, 0);
    }
    put(b, "\",\"time\":\"");
    put_time(g, b);
    put(b, "\",\"datacontenttype\":\"application/json\",\"jirasite\":\"");
    put(b, g->o->site);
    put(b, "\",\"idhubactor\":\"" EVENT_ACTOR "\",\"traceparent\":\"00-");
    put_hex(b, rng_next(&g->rng) | 1, 16);
    put_hex(b, rng_next(&g->rng), 16);
    put(b, "-");
    put_hex(b, rng_next(&g->rng) | 1, 16);
    put(b, "-01\",\"correlationid\":\"");
    put(b, g->correlation);
    put(b, "\",\"data\":{");

    if (JP_EVENT_IS_ACCOUNT(t) || JP_EVENT_IS_ENTITLEMENT(t)) {
        put(b, "\"login\":\"");
        put_login(g, b, subj);
        put(b, "\"");
    } else if (JP_EVENT_IS_ISSUE(t)) {
        put(b, "\"externalRef\":\"");
        put_issue_ref(g, b, subj);
        put(b, "\"");
    }
    switch (t) {
    case JP_EVENT_ACCOUNT_CREATE:
        data_account_create(g, b, subj);
        break;
    case JP_EVENT_ACCOUNT_UPDATE:
        data_account_update(g, b);
        break;
    case JP_EVENT_ENTITLEMENT_GRANT:
    case JP_EVENT_ENTITLEMENT_REVOKE:
        data_entitlement(g, b);
        break;
    case JP_EVENT_ISSUE_CREATE:
        data_issue_create(g, b);
        break;
    case JP_EVENT_ISSUE_UPDATE:
        data_issue_update(g, b);
        break;
    case JP_EVENT_ISSUE_DELETE:
        put(b, ",\"deleteSubtasks\":false");
        break;
    case JP_EVENT_ISSUE_TRANSITION:
        put_field(b, "status", PICK(&g->rng, statuses), 0);
        break;
    case JP_EVENT_RECON_REQUEST:
        put(b, "\"reconId\":\"loadgen-");
        put_hex(b, g->nonce, 16);
        put(b, "-");
        put_u(b, g->seq, 0);
        put(b, "\",\"mode\":\"full\",\"resources\":[\"accounts\",\"entitlements\"]");
        break;
    default: /* delete, enable, disable: the login alone */
        break;
    }
    put(b, "}}");
}

static jp_event_type_t pick_type(gen_t *g)
{
    uint32_t x = (uint32_t)rng_below(&g->rng, g->total_weight);
    int t;

    for (t = 0; t < JP_EVENT__COUNT - 1; t++)
        if (x < g->cumulative[t])
            break;
    return (jp_event_type_t)t;
}

/* Builds the next event into b; returns its type. The key is the value of "subject", found by
 * the caller through key_off/key_len. */
static jp_event_type_t gen_event(gen_t *g, buf_t *b, size_t *key_off, size_t *key_len)
{
    jp_event_type_t t = pick_type(g);
    const char *subj_start;

    b->len = 0;
    b->overflow = 0;
    put(b, "{\"specversion\":\"1.0\",\"id\":\"");
    put_uuid(b, g->nonce, scramble62(g->seq + (g->nonce >> 2)));
    put(b, "\",\"source\":\"" EVENT_SOURCE "\",\"type\":\"");
    put(b, jp_event_type_ce(t));
    put(b, "\"");
    *key_off = b->len + strlen(",\"subject\":\"");
    put_subject_and_data(g, b, t);
    b->p[b->len < b->cap ? b->len : b->cap - 1] = '\0';
    subj_start = b->p + *key_off;
    *key_len = (size_t)(strchr(subj_start, '"') - subj_start);
    g->seq++;
    return t;
}

/* ---- options ---- */

static int parse_mix(const char *spec, gen_t *g)
{
    uint32_t weights[JP_EVENT__COUNT] = {0};
    char *copy = strdup(spec), *save = NULL, *item;
    uint64_t total = 0;
    int t;

    if (!copy)
        return -1;
    for (item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        uint64_t w;
        int type;
        if (!eq) {
            fprintf(stderr, PROG ": --mix: expected TYPE=WEIGHT, got \"%s\"\n", item);
            free(copy);
            return -1;
        }
        *eq = '\0';
        type = jp_event_type_parse(item);
        if (type < 0) {
            fprintf(stderr, PROG ": --mix: unknown event type \"%s\"\n", item);
            free(copy);
            return -1;
        }
        if (!jp_cli_parse_u64(eq + 1, 0, 1000000, &w)) {
            fprintf(stderr, PROG ": --mix: weight of %s must be an integer 0..1000000\n", item);
            free(copy);
            return -1;
        }
        weights[type] += (uint32_t)w;
        total += w;
    }
    free(copy);
    if (total == 0 || total > UINT32_MAX / 2) {
        fprintf(stderr, PROG ": --mix: the weights must add up to more than 0\n");
        return -1;
    }
    g->total_weight = 0;
    for (t = 0; t < JP_EVENT__COUNT; t++) {
        g->total_weight += weights[t];
        g->cumulative[t] = g->total_weight;
    }
    return 0;
}

/* Characters that need no JSON escaping and are valid in logins, emails and references. */
static int plain_token(const char *s, const char *extra, size_t max)
{
    size_t n = strlen(s), i;
    if (n == 0 || n > max)
        return 0;
    for (i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr(extra, c)))
            return 0;
    }
    return 1;
}

static void usage(FILE *out)
{
    fprintf(
        out,
        "Usage: " PROG " [--config FILE | -b BOOTSTRAP] [-t TOPIC] -n COUNT [options]\n"
        "Generates COUNT realistic, contract-valid IDHub events with unique ids, keyed by\n"
        "subject, and produces them to Kafka (or writes them as JSON Lines with --out).\n"
        "\n"
        "Destination (as jiraprov-produce):\n"
        "  -c, --config FILE      worker config: kafka properties and topics.events\n"
        "  -b, --bootstrap H:P    bootstrap servers (default $KAFKA_BOOTSTRAP)\n"
        "  -t, --topic NAME       topic (default topics.events, $TOPIC_EVENTS, "
        "then " JP_CLI_DEFAULT_TOPIC ")\n"
        "  -X NAME=VALUE          extra librdkafka property (repeatable)\n"
        "  -o, --out FILE         write JSON Lines to FILE ('-' = stdout) instead of producing\n"
        "\n"
        "Load:\n"
        "  -n, --count COUNT      events to generate (required)\n"
        "  -r, --rate R           events per second, paced on the monotonic clock\n"
        "                         (0 = as fast as possible) [0]\n"
        "      --mix SPEC         TYPE=WEIGHT,... over the event types (short names such as\n"
        "                         account.update) [" DEFAULT_MIX "]\n"
        "      --subjects N       distinct subjects: logins PREFIX000000.., issue references\n"
        "                         PREFIX-issue-000000.. [1000]\n"
        "      --site NAME        jirasite of every event [demo]\n"
        "      --seed N           random seed; the same seed gives the same events and ids\n"
        "                         (default: random, printed in the summary)\n"
        "      --prefix P         login prefix, [A-Za-z0-9._-] [user]\n"
        "      --domain D         email domain [load.example]\n"
        "      --project KEY      Jira project of issue and project-role events [LOAD]\n"
        "      --check[=N]        validate every Nth event with the contract decoder\n"
        "                         (N=1, every event, when no N is given); the first event of\n"
        "                         each type is always validated\n"
        "\n"
        "Output:\n"
        "      --progress         progress line every second (default only on a TTY)\n"
        "  -q, --quiet            no summary or progress\n"
        "  -h, --help, -V, --version\n"
        "\n"
        "The summary on stderr reads:\n"
        "  produced N events (by type: ...) to TOPIC in X.XXs; rate: achieved R ev/s (target\n"
        "  T); delivered D; failed K; seed S\n"
        "where the achieved rate is measured over the sending phase and X covers the delivery\n"
        "of every event.\n"
        "Exit status: 0 all delivered; 1 delivery failures or a generated event failed\n"
        "validation; 2 usage or set-up error; 130 interrupted.\n");
}

static int parse_args(int argc, char **argv, opts_t *o)
{
    enum {
        OPT_MIX = 256,
        OPT_SUBJECTS,
        OPT_SITE,
        OPT_SEED,
        OPT_PREFIX,
        OPT_DOMAIN,
        OPT_PROJECT,
        OPT_CHECK,
        OPT_PROGRESS
    };
    static const struct option longopts[] = {
        JP_CLI_TARGET_LONGOPTS,
        {"out", required_argument, NULL, 'o'},
        {"count", required_argument, NULL, 'n'},
        {"rate", required_argument, NULL, 'r'},
        {"mix", required_argument, NULL, OPT_MIX},
        {"subjects", required_argument, NULL, OPT_SUBJECTS},
        {"site", required_argument, NULL, OPT_SITE},
        {"seed", required_argument, NULL, OPT_SEED},
        {"prefix", required_argument, NULL, OPT_PREFIX},
        {"domain", required_argument, NULL, OPT_DOMAIN},
        {"project", required_argument, NULL, OPT_PROJECT},
        {"check", optional_argument, NULL, OPT_CHECK},
        {"progress", no_argument, NULL, OPT_PROGRESS},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    int c, taken, have_count = 0;
    char *end;
    char errstr[128];

    memset(o, 0, sizeof(*o));
    o->mix = DEFAULT_MIX;
    o->subjects = 1000;
    o->site = "demo";
    o->prefix = "user";
    o->domain = "load.example";
    o->project = "LOAD";
    while ((c = getopt_long(argc, argv, JP_CLI_TARGET_SHORTOPTS "o:n:r:qhV", longopts, NULL)) !=
           -1) {
        taken = jp_cli_target_option(&o->target, c, optarg, errstr, sizeof(errstr));
        if (taken < 0) {
            fprintf(stderr, PROG ": %s\n", errstr);
            return EXIT_SETUP;
        }
        if (taken)
            continue;
        switch (c) {
        case 'o':
            o->out = optarg;
            break;
        case 'n':
            if (!jp_cli_parse_u64(optarg, 1, MAX_COUNT, &o->count)) {
                fprintf(stderr, PROG ": --count must be an integer 1..%llu\n", MAX_COUNT);
                return EXIT_SETUP;
            }
            have_count = 1;
            break;
        case 'r':
            errno = 0;
            o->rate = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(o->rate >= 0 && o->rate <= 1e8)) {
                fprintf(stderr, PROG ": --rate must be a number of events per second 0..1e8\n");
                return EXIT_SETUP;
            }
            break;
        case OPT_MIX:
            o->mix = optarg;
            break;
        case OPT_SUBJECTS:
            if (!jp_cli_parse_u64(optarg, 1, MAX_SUBJECTS, &o->subjects)) {
                fprintf(stderr, PROG ": --subjects must be an integer 1..%llu\n", MAX_SUBJECTS);
                return EXIT_SETUP;
            }
            break;
        case OPT_SITE:
            o->site = optarg;
            break;
        case OPT_SEED:
            if (!jp_cli_parse_u64(optarg, 0, UINT64_MAX, &o->seed)) {
                fprintf(stderr, PROG ": --seed must be a non-negative integer\n");
                return EXIT_SETUP;
            }
            o->seed_given = 1;
            break;
        case OPT_PREFIX:
            o->prefix = optarg;
            break;
        case OPT_DOMAIN:
            o->domain = optarg;
            break;
        case OPT_PROJECT:
            o->project = optarg;
            break;
        case OPT_CHECK:
            o->check_every = 1;
            if (optarg && !jp_cli_parse_u64(optarg, 1, MAX_COUNT, &o->check_every)) {
                fprintf(stderr, PROG ": --check=N needs an integer N >= 1\n");
                return EXIT_SETUP;
            }
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
        fprintf(stderr, PROG ": unexpected argument \"%s\" (see --help)\n", argv[optind]);
        return EXIT_SETUP;
    }
    if (!have_count) {
        fprintf(stderr, PROG ": -n COUNT is required (see --help)\n");
        return EXIT_SETUP;
    }
    if (!jp_event_valid_site(o->site)) {
        fprintf(stderr, PROG ": --site must be 1 to 64 characters of [a-z0-9_-]\n");
        return EXIT_SETUP;
    }
    if (!plain_token(o->prefix, "._-", 64)) {
        fprintf(stderr, PROG ": --prefix must be 1 to 64 characters of [A-Za-z0-9._-]\n");
        return EXIT_SETUP;
    }
    if (!plain_token(o->domain, ".-", 128) || !strchr(o->domain, '.') || o->domain[0] == '.' ||
        o->domain[strlen(o->domain) - 1] == '.') {
        fprintf(stderr, PROG ": --domain must be a domain name such as load.example\n");
        return EXIT_SETUP;
    }
    if (!jp_event_valid_project_key(o->project)) {
        fprintf(stderr, PROG ": --project must be a Jira project key (^[A-Z][A-Z0-9]{1,9}$)\n");
        return EXIT_SETUP;
    }
    return 0;
}

static uint64_t random_seed(void)
{
    uint64_t seed = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    struct timespec ts;

    if (fd >= 0) {
        ssize_t n = read(fd, &seed, sizeof(seed));
        close(fd);
        if (n == (ssize_t)sizeof(seed))
            return seed;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40);
}

static int gen_init(gen_t *g, const opts_t *o)
{
    uint64_t n;
    uint64_t nonce_seed;

    memset(g, 0, sizeof(*g));
    g->o = o;
    if (parse_mix(o->mix, g) != 0)
        return -1;
    rng_seed(&g->rng, o->seed);
    nonce_seed = o->seed ^ 0xA5A5A5A5DEADBEEFULL;
    g->nonce = splitmix64(&nonce_seed);
    g->login_width = 6;
    for (n = o->subjects - 1, g->login_width = 0; n > 0; n /= 10)
        g->login_width++;
    if (g->login_width < 6)
        g->login_width = 6;
    snprintf(g->correlation, sizeof(g->correlation), "loadgen-%016llx",
             (unsigned long long)g->nonce);
    g->cached_sec = -1;
    return 0;
}

/* ---- the run ---- */

typedef struct run {
    opts_t o;
    gen_t gen;
    jp_cli_target_t *target;
    jp_cli_producer_t *producer;
    FILE *out;
    uint64_t generated;
    uint64_t by_type[JP_EVENT__COUNT];
    int checked_type[JP_EVENT__COUNT];
    double t_first, t_last, t_done;
    jp_cli_progress_t progress;
} run_t;

static void progress_clear(run_t *r)
{
    jp_cli_progress_clear(&r->progress);
}

static void progress_maybe(run_t *r, double now)
{
    const jp_cli_producer_stats_t *st;
    char line[256];

    if (!jp_cli_progress_due(&r->progress, now))
        return;
    st = r->producer ? jp_cli_producer_stats(r->producer) : NULL;
    snprintf(line, sizeof(line), "%.0fs: generated %llu/%llu, delivered %llu, failed %llu",
             now - r->t_first, (unsigned long long)r->generated, (unsigned long long)r->o.count,
             (unsigned long long)(st ? st->delivered : 0),
             (unsigned long long)(st ? st->failed : 0));
    jp_cli_progress_show(&r->progress, line);
}

/* Validates a generated event; a failure is a generator bug. */
static int check_event(run_t *r, const char *text, size_t len, jp_event_type_t t)
{
    jp_event_t *ev = NULL;
    char errstr[512];
    int want = !r->checked_type[t] || (r->o.check_every && r->generated % r->o.check_every == 0);

    if (!want)
        return 0;
    r->checked_type[t] = 1;
    if (jp_event_decode(text, len, NULL, &ev, errstr, sizeof(errstr)) != JP_OK) {
        progress_clear(r);
        fprintf(stderr, PROG ": generated event %llu is invalid: %s\n%s\n",
                (unsigned long long)r->generated, errstr, text);
        return -1;
    }
    jp_event_destroy(ev);
    return 0;
}

static void sleep_until_ns(int64_t due_ns)
{
    struct timespec ts;
    ts.tv_sec = (time_t)(due_ns / 1000000000LL);
    ts.tv_nsec = (long)(due_ns % 1000000000LL);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR &&
           !jp_cli_stopping())
        ;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Waits until due_ns, serving delivery reports meanwhile. */
static void wait_until(run_t *r, int64_t due_ns)
{
    for (;;) {
        int64_t left = due_ns - now_ns();
        if (left <= 0 || jp_cli_stopping())
            return;
        if (r->producer && left > 2000000) {
            jp_cli_producer_poll(r->producer, (int)((left - 1000000) / 1000000));
            continue;
        }
        sleep_until_ns(due_ns);
        return;
    }
}

static int emit(run_t *r, buf_t *b)
{
    size_t key_off, key_len;
    jp_event_type_t t = gen_event(&r->gen, b, &key_off, &key_len);
    char errstr[256];

    if (b->overflow) {
        fprintf(stderr, PROG ": generated event larger than %d bytes\n", EVENT_BUF_SIZE);
        return EXIT_SETUP;
    }
    if (check_event(r, b->p, b->len, t) != 0)
        return EXIT_FAILED;
    if (r->out) {
        b->p[b->len] = '\n';
        if (fwrite(b->p, 1, b->len + 1, r->out) != b->len + 1) {
            fprintf(stderr, PROG ": cannot write %s: %s\n", r->o.out, strerror(errno));
            return EXIT_SETUP;
        }
    } else if (jp_cli_producer_send(r->producer, b->p + key_off, key_len, b->p, b->len, (int)t,
                                    errstr, sizeof(errstr)) != JP_OK) {
        progress_clear(r);
        fprintf(stderr, PROG ": %s\n", errstr);
    }
    r->by_type[t]++;
    r->generated++;
    return 0;
}

static int generate(run_t *r)
{
    char storage[EVENT_BUF_SIZE];
    buf_t b = {storage, 0, sizeof(storage) - 1, 0}; /* room for the '\n' of --out */
    double interval_ns = r->o.rate > 0 ? 1e9 / r->o.rate : 0;
    int64_t base = now_ns(), slack = (int64_t)(BURST_SECONDS * 1e9);
    uint64_t k = 0; /* events since base */
    int rc = 0;

    r->t_first = jp_cli_now();
    while (r->generated < r->o.count && !jp_cli_stopping() && !rc) {
        if (interval_ns > 0) {
            int64_t due = base + (int64_t)((double)k * interval_ns);
            int64_t now = now_ns();
            if (due > now) {
                wait_until(r, due);
            } else if (now - due > slack) {
                /* a stall: keep at most BURST_SECONDS of catching up */
                base = now - slack;
                k = 0;
            }
            k++;
        }
        rc = emit(r, &b);
        if (r->producer && (r->generated & 1023) == 0)
            jp_cli_producer_poll(r->producer, 0);
        if ((r->generated & 1023) == 0 || interval_ns > 1e6)
            progress_maybe(r, jp_cli_now());
    }
    r->t_last = jp_cli_now();
    return rc;
}

static int finish(run_t *r)
{
    char errstr[256];

    if (r->out) {
        if (fflush(r->out) != 0) {
            fprintf(stderr, PROG ": cannot write %s: %s\n", r->o.out, strerror(errno));
            return EXIT_SETUP;
        }
        return 0;
    }
    while (jp_cli_producer_pending(r->producer) > 0) {
        if (jp_cli_producer_flush(r->producer, 1000, errstr, sizeof(errstr)) == JP_OK)
            break;
        progress_maybe(r, jp_cli_now());
    }
    return 0;
}

static void summary(run_t *r)
{
    char by_type[1024], target[32];
    const jp_cli_producer_stats_t *st = r->producer ? jp_cli_producer_stats(r->producer) : NULL;
    double span = r->t_last - r->t_first;
    double achieved = 0;

    progress_clear(r);
    if (r->o.quiet)
        return;
    /* n events paced at rate R span (n-1)/R seconds: measure the intervals, not the events. */
    if (r->generated > 1 && span > 0)
        achieved = (double)(r->generated - 1) / span;
    if (r->o.rate > 0)
        snprintf(target, sizeof(target), "%.0f", r->o.rate);
    else
        snprintf(target, sizeof(target), "max");
    if (st) {
        jp_cli_format_by_type(st->delivered_by_type, by_type, sizeof(by_type));
        fprintf(stderr,
                "produced %llu events (by type: %s) to %s in %.2fs; rate: achieved %.1f ev/s "
                "(target %s); delivered %llu; failed %llu; seed %llu\n",
                (unsigned long long)st->delivered, by_type, r->target->topic,
                r->t_done - r->t_first, achieved, target, (unsigned long long)st->delivered,
                (unsigned long long)st->failed, (unsigned long long)r->o.seed);
        if (st->failed)
            fprintf(stderr, PROG ": first delivery error: %s\n",
                    jp_cli_producer_first_error(r->producer));
    } else {
        jp_cli_format_by_type(r->by_type, by_type, sizeof(by_type));
        fprintf(stderr,
                "wrote %llu events (by type: %s) to %s in %.2fs; rate: achieved %.1f ev/s "
                "(target %s); seed %llu\n",
                (unsigned long long)r->generated, by_type,
                strcmp(r->o.out, "-") ? r->o.out : "<stdout>", r->t_done - r->t_first, achieved,
                target, (unsigned long long)r->o.seed);
    }
}

static int setup_output(run_t *r)
{
    char errstr[1024];
    jp_cli_producer_tuning_t tuning = {
        .client_id = PROG,
        .linger_ms = 5,
        .batch_num_messages = 10000,
        .queue_max_messages = 1000000,
        .queue_max_kbytes = 1048576,
    };

    if (r->o.out) {
        r->out = strcmp(r->o.out, "-") ? fopen(r->o.out, "w") : stdout;
        if (!r->out) {
            fprintf(stderr, PROG ": cannot open %s: %s\n", r->o.out, strerror(errno));
            return EXIT_SETUP;
        }
        return 0;
    }
    if (jp_cli_target_resolve(&r->o.target, &r->target, errstr, sizeof(errstr)) != JP_OK ||
        jp_cli_producer_new(r->target, &tuning, &r->producer, errstr, sizeof(errstr)) != JP_OK) {
        fprintf(stderr, PROG ": %s\n", errstr);
        return EXIT_SETUP;
    }
    return 0;
}

int main(int argc, char **argv)
{
    run_t r;
    int rc;

    memset(&r, 0, sizeof(r));
    rc = parse_args(argc, argv, &r.o);
    if (rc)
        return rc == PARSED_EXIT_OK ? 0 : rc;
    if (!r.o.seed_given)
        r.o.seed = random_seed();
    if (gen_init(&r.gen, &r.o) != 0)
        return EXIT_SETUP;
    rc = setup_output(&r);
    if (rc) {
        jp_cli_target_destroy(r.target);
        return rc;
    }
    jp_cli_catch_stop();
    jp_cli_progress_init(&r.progress, r.o.quiet, r.o.progress);
    rc = generate(&r);
    if (rc != EXIT_SETUP) {
        int frc = finish(&r);
        if (!rc)
            rc = frc;
    }
    r.t_done = jp_cli_now();
    summary(&r);
    if (!rc && jp_cli_stopping()) {
        fprintf(stderr, PROG ": interrupted\n");
        rc = EXIT_INTERRUPT;
    }
    if (!rc && r.producer && jp_cli_producer_stats(r.producer)->failed > 0)
        rc = EXIT_FAILED;
    jp_cli_producer_destroy(r.producer);
    jp_cli_target_destroy(r.target);
    if (r.out && r.out != stdout)
        fclose(r.out);
    return rc;
}
