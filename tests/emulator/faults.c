/* Fault injection on demand: rules matched by path glob and method decide,
 * with their own seeded random stream (reproducible runs), whether a request
 * gets added latency, a 5xx, a 429 storm, a connection reset, no response at
 * all, or a slowly dribbled body. The plan is executed by server.c without
 * blocking server threads (suspend + timer). */
#include "emu_internal.h"

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define EMU_MAX_FAULT_STATUSES 8

enum {
    EMU_FK_LATENCY,
    EMU_FK_ERROR,
    EMU_FK_RATE_LIMIT,
    EMU_FK_RESET,
    EMU_FK_HANG,
    EMU_FK_SLOW_BODY
};

static const char *const EMU_FK_NAMES[] = {"latency", "error", "rate_limit",
                                           "reset",   "hang",  "slow_body"};

typedef struct emu_rule {
    char *path;
    char *method;
    int kind;
    double probability;
    int64_t latency_ms;
    int64_t jitter_ms;
    unsigned statuses[EMU_MAX_FAULT_STATUSES];
    size_t nstatuses;
    long retry_after;
    char *reason;
    int64_t hang_ms;
    size_t chunk;
    int64_t tick_ms;
    long times;
    long fired;
    json_t *src;
} emu_rule_t;

struct emu_faults {
    emu_rule_t *rules;
    size_t n;
    uint64_t rng;
    uint64_t seed;
};

static void emu_rule_free(emu_rule_t *r)
{
    free(r->path);
    free(r->method);
    free(r->reason);
    json_decref(r->src);
}

emu_faults_t *emu_faults_new(void)
{
    emu_faults_t *f = calloc(1, sizeof(*f));
    if (f)
        f->rng = f->seed = 0x2545f4914f6cdd1dull;
    return f;
}

void emu_faults_clear(emu_faults_t *f)
{
    for (size_t i = 0; i < f->n; i++)
        emu_rule_free(&f->rules[i]);
    free(f->rules);
    f->rules = NULL;
    f->n = 0;
}

void emu_faults_destroy(emu_faults_t *f)
{
    if (!f)
        return;
    emu_faults_clear(f);
    free(f);
}

static double emu_frand(emu_faults_t *f)
{
    uint64_t x = f->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    f->rng = x;
    return (double)((x * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

static int emu_kind(const char *s)
{
    for (size_t i = 0; s && i < sizeof(EMU_FK_NAMES) / sizeof(EMU_FK_NAMES[0]); i++)
        if (strcmp(s, EMU_FK_NAMES[i]) == 0)
            return (int)i;
    return -1;
}

static int64_t emu_jms(json_t *o, const char *k, int64_t dflt)
{
    json_t *v = json_object_get(o, k);
    return json_is_number(v) ? (int64_t)json_number_value(v) : dflt;
}

static int emu_rule_parse(json_t *j, emu_rule_t *r, char *err, size_t errsz)
{
    memset(r, 0, sizeof(*r));
    if (!json_is_object(j)) {
        snprintf(err, errsz, "each fault rule must be an object");
        return -1;
    }
    r->kind = emu_kind(json_string_value(json_object_get(j, "kind")));
    if (r->kind < 0) {
        snprintf(err, errsz,
                 "fault kind must be latency, error, rate_limit, reset, hang or slow_body");
        return -1;
    }
    const char *path = json_string_value(json_object_get(j, "path"));
    const char *method = json_string_value(json_object_get(j, "method"));
    r->path = strdup(path ? path : "*");
    r->method = method ? strdup(method) : NULL;
    json_t *p = json_object_get(j, "probability");
    r->probability = json_is_number(p) ? json_number_value(p) : 1.0;
    if (r->probability < 0 || r->probability > 1) {
        snprintf(err, errsz, "probability must be between 0 and 1");
        return -1;
    }
    r->latency_ms = emu_jms(j, "latency_ms", 0);
    r->jitter_ms = emu_jms(j, "jitter_ms", 0);
    if (r->latency_ms < 0 || r->jitter_ms < 0) {
        snprintf(err, errsz, "latency_ms and jitter_ms must not be negative");
        return -1;
    }
    json_t *st = json_object_get(j, "statuses");
    json_t *one = json_object_get(j, "status");
    if (json_is_integer(one)) {
        r->statuses[r->nstatuses++] = (unsigned)json_integer_value(one);
    } else if (json_is_array(st)) {
        size_t i;
        json_t *v;
        json_array_foreach(st, i, v)
        {
            if (!json_is_integer(v) || r->nstatuses == EMU_MAX_FAULT_STATUSES) {
                snprintf(err, errsz, "statuses must be up to %d integers", EMU_MAX_FAULT_STATUSES);
                return -1;
            }
            r->statuses[r->nstatuses++] = (unsigned)json_integer_value(v);
        }
    }
    if (r->kind == EMU_FK_ERROR && r->nstatuses == 0) {
        r->statuses[0] = 500;
        r->statuses[1] = 502;
        r->statuses[2] = 503;
        r->nstatuses = 3;
    }
    for (size_t i = 0; i < r->nstatuses; i++) {
        if (r->statuses[i] < 400 || r->statuses[i] > 599) {
            snprintf(err, errsz, "fault statuses must be between 400 and 599");
            return -1;
        }
    }
    json_t *ra = json_object_get(j, "retry_after");
    r->retry_after = json_is_number(ra) ? (long)json_number_value(ra) : -1;
    const char *reason = json_string_value(json_object_get(j, "reason"));
    r->reason = strdup(reason ? reason : "jira-burst-based");
    r->hang_ms = emu_jms(j, "hang_ms", 3600 * 1000);
    json_t *chunk = json_object_get(j, "bytes_per_tick");
    r->chunk = json_is_integer(chunk) && json_integer_value(chunk) > 0
                   ? (size_t)json_integer_value(chunk)
                   : 16;
    r->tick_ms = emu_jms(j, "tick_ms", 100);
    if (r->tick_ms < 1)
        r->tick_ms = 1;
    json_t *times = json_object_get(j, "times");
    r->times = json_is_integer(times) ? (long)json_integer_value(times) : 0;
    r->src = json_incref(j);
    if (!r->path || !r->reason) {
        snprintf(err, errsz, "out of memory");
        return -1;
    }
    return 0;
}

int emu_faults_configure(emu_t *emu, json_t *cfg, char *err, size_t errsz)
{
    emu_faults_t *f = emu->faults;
    json_t *rules = cfg;
    json_t *seed = NULL;
    if (json_is_object(cfg)) {
        rules = json_object_get(cfg, "rules");
        seed = json_object_get(cfg, "seed");
        if (!rules)
            rules = json_array();
        else
            json_incref(rules);
    } else {
        json_incref(rules);
    }
    if (!json_is_array(rules)) {
        json_decref(rules);
        snprintf(err, errsz, "faults must be a list of rules or {\"seed\":N,\"rules\":[...]}");
        return -1;
    }
    size_t n = json_array_size(rules);
    emu_rule_t *parsed = calloc(n ? n : 1, sizeof(*parsed));
    if (!parsed) {
        json_decref(rules);
        snprintf(err, errsz, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (emu_rule_parse(json_array_get(rules, i), &parsed[i], err, errsz) != 0) {
            for (size_t k = 0; k <= i; k++)
                emu_rule_free(&parsed[k]);
            free(parsed);
            json_decref(rules);
            return -1;
        }
    }
    json_decref(rules);
    emu_faults_clear(f);
    f->rules = parsed;
    f->n = n;
    if (json_is_integer(seed))
        f->seed = (uint64_t)json_integer_value(seed);
    else if (emu->cfg.seed_rng)
        f->seed = emu->cfg.seed_rng;
    /* xorshift needs a non-zero state. */
    f->rng = f->seed ? f->seed * 0x9e3779b97f4a7c15ull | 1 : 0x2545f4914f6cdd1dull;
    return 0;
}

json_t *emu_faults_dump(emu_faults_t *f)
{
    json_t *rules = json_array();
    for (size_t i = 0; i < f->n; i++) {
        json_t *o = json_deep_copy(f->rules[i].src);
        json_object_set_new(o, "fired", json_integer(f->rules[i].fired));
        json_array_append_new(rules, o);
    }
    return json_pack("{s:I, s:o}", "seed", (json_int_t)f->seed, "rules", rules);
}

static bool emu_rule_matches(const emu_rule_t *r, const char *method, const char *path)
{
    if (r->method && strcmp(r->method, "*") != 0 && strcasecmp(r->method, method) != 0)
        return false;
    return fnmatch(r->path, path, 0) == 0;
}

static void emu_fault_count(emu_t *emu, int kind)
{
    json_t *v = json_object_get(emu->fault_counts, EMU_FK_NAMES[kind]);
    json_object_set_new(emu->fault_counts, EMU_FK_NAMES[kind],
                        json_integer((v ? json_integer_value(v) : 0) + 1));
}

void emu_faults_plan(emu_t *emu, const char *method, const char *path, emu_fault_plan_t *plan)
{
    emu_faults_t *f = emu->faults;
    for (size_t i = 0; i < f->n; i++) {
        emu_rule_t *r = &f->rules[i];
        if (r->times > 0 && r->fired >= r->times)
            continue;
        if (!emu_rule_matches(r, method, path))
            continue;
        bool terminal = r->kind == EMU_FK_ERROR || r->kind == EMU_FK_RATE_LIMIT ||
                        r->kind == EMU_FK_RESET || r->kind == EMU_FK_HANG;
        /* Once a terminal fault is chosen, later terminal rules are moot. */
        if (terminal && plan->action != EMU_FAULT_ACT_NONE)
            continue;
        if (r->probability < 1.0 && emu_frand(f) >= r->probability)
            continue;
        r->fired++;
        emu_fault_count(emu, r->kind);
        switch (r->kind) {
        case EMU_FK_LATENCY:
            plan->delay_ms += r->latency_ms;
            if (r->jitter_ms > 0)
                plan->delay_ms += (int64_t)(emu_frand(f) * (double)(r->jitter_ms + 1));
            break;
        case EMU_FK_ERROR:
            plan->action = EMU_FAULT_ACT_ERROR;
            plan->status =
                r->statuses[r->nstatuses > 1 ? (size_t)(emu_frand(f) * (double)r->nstatuses) : 0];
            plan->retry_after = r->retry_after;
            break;
        case EMU_FK_RATE_LIMIT:
            plan->action = EMU_FAULT_ACT_RATE_LIMIT;
            plan->status = 429;
            plan->retry_after = r->retry_after >= 1 ? r->retry_after : 1;
            plan->reason = r->reason;
            break;
        case EMU_FK_RESET:
            plan->action = EMU_FAULT_ACT_RESET;
            break;
        case EMU_FK_HANG:
            plan->action = EMU_FAULT_ACT_HANG;
            plan->hang_ms = r->hang_ms;
            break;
        case EMU_FK_SLOW_BODY:
            plan->slow_chunk = r->chunk;
            plan->slow_tick_ms = r->tick_ms;
            break;
        default:
            break;
        }
    }
}
