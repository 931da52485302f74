/* Jira Cloud style rate limiting (notes §4.1): three independent limiters.
 *   - burst: a token bucket per (limit class or route pattern) x method, refilled
 *     continuously at the steady rate, capacity one second's worth;
 *   - per-issue writes: sliding windows (20 per 2 s, 100 per 30 s) per issue;
 *   - an hourly points quota (off by default; API-token traffic is exempt in
 *     Jira Cloud), reset at the top of each UTC hour.
 * All state lives under the global emulator lock. */
#include "emu_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EMU_MAX_WINDOWS 4

typedef struct emu_bucket {
    double tokens;
    double rate;
    double cap;
    int64_t last_us;
} emu_bucket_t;

typedef struct emu_window {
    long limit;
    int64_t ms;
} emu_window_t;

typedef struct emu_ring {
    size_t head; /* next write position */
    size_t n;
    int64_t ts[];
} emu_ring_t;

enum { EMU_M_GET, EMU_M_POST, EMU_M_PUT, EMU_M_DELETE, EMU_M_PATCH, EMU_M_OTHER, EMU_M_N };

struct emu_limits {
    bool enabled;
    bool fam[4]; /* indexed by emu_family_t */
    bool burst_on;
    double rate[EMU_M_N];
    double cap_seconds;
    json_t *route_rates; /* {"METHOD class": rate | {"rate":r,"capacity":c}} */
    bool issue_on;
    emu_window_t win[EMU_MAX_WINDOWS];
    size_t nwin;
    size_t ring_size;
    bool quota_on;
    long quota_points;
    const char *quota_reason;
    int64_t quota_hour;
    long quota_used;
    uint64_t gen;
    emu_map_t *buckets;
    emu_map_t *issues;
};

static int64_t emu_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int emu_method_idx(const char *m)
{
    if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0)
        return EMU_M_GET;
    if (strcmp(m, "POST") == 0)
        return EMU_M_POST;
    if (strcmp(m, "PUT") == 0)
        return EMU_M_PUT;
    if (strcmp(m, "DELETE") == 0)
        return EMU_M_DELETE;
    if (strcmp(m, "PATCH") == 0)
        return EMU_M_PATCH;
    return EMU_M_OTHER;
}

static void emu_limits_free_state(emu_limits_t *l)
{
    size_t pos = 0;
    void *v;
    while (emu_map_next(l->buckets, &pos, NULL, &v))
        free(v);
    emu_map_clear(l->buckets);
    pos = 0;
    while (emu_map_next(l->issues, &pos, NULL, &v))
        free(v);
    emu_map_clear(l->issues);
    l->quota_used = 0;
    l->quota_hour = 0;
    l->gen++;
}

void emu_limits_reset_state(emu_limits_t *l)
{
    emu_limits_free_state(l);
}

static void emu_limits_defaults(emu_limits_t *l)
{
    l->enabled = true;
    l->fam[EMU_FAM_CONTROL] = false;
    l->fam[EMU_FAM_JIRA] = l->fam[EMU_FAM_SCIM] = l->fam[EMU_FAM_ADMIN] = true;
    l->burst_on = true;
    l->rate[EMU_M_GET] = 100;
    l->rate[EMU_M_POST] = 100;
    l->rate[EMU_M_PUT] = 50;
    l->rate[EMU_M_DELETE] = 50;
    l->rate[EMU_M_PATCH] = 50;
    l->rate[EMU_M_OTHER] = 100;
    l->cap_seconds = 1.0;
    json_decref(l->route_rates);
    l->route_rates = json_object();
    l->issue_on = true;
    l->win[0] = (emu_window_t){20, 2000};
    l->win[1] = (emu_window_t){100, 30000};
    l->nwin = 2;
    l->ring_size = 100;
    l->quota_on = false;
    l->quota_points = 65000;
    l->quota_reason = "jira-quota-global-based";
}

emu_limits_t *emu_limits_new(void)
{
    emu_limits_t *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->buckets = emu_map_new(false);
    l->issues = emu_map_new(false);
    if (!l->buckets || !l->issues) {
        emu_limits_destroy(l);
        return NULL;
    }
    emu_limits_defaults(l);
    return l;
}

void emu_limits_destroy(emu_limits_t *l)
{
    if (!l)
        return;
    if (l->buckets && l->issues)
        emu_limits_free_state(l);
    emu_map_destroy(l->buckets);
    emu_map_destroy(l->issues);
    json_decref(l->route_rates);
    free(l);
}

void emu_limits_set_enabled(emu_limits_t *l, bool on)
{
    l->enabled = on;
    emu_limits_free_state(l);
}

static int emu_num(json_t *v, double *out)
{
    if (!json_is_number(v))
        return -1;
    *out = json_number_value(v);
    return 0;
}

static int emu_limits_parse_burst(emu_limits_t *l, json_t *b, char *err, size_t errsz)
{
    static const char *names[] = {"GET", "POST", "PUT", "DELETE", "PATCH"};
    if (!json_is_object(b)) {
        snprintf(err, errsz, "burst must be an object");
        return -1;
    }
    json_t *e = json_object_get(b, "enabled");
    if (e)
        l->burst_on = json_is_true(e);
    for (size_t i = 0; i < 5; i++) {
        json_t *v = json_object_get(b, names[i]);
        double r;
        if (!v)
            continue;
        if (emu_num(v, &r) != 0 || r <= 0) {
            snprintf(err, errsz, "burst.%s must be a positive number", names[i]);
            return -1;
        }
        l->rate[i] = r;
    }
    json_t *cs = json_object_get(b, "capacity_seconds");
    if (cs && (emu_num(cs, &l->cap_seconds) != 0 || l->cap_seconds <= 0)) {
        snprintf(err, errsz, "burst.capacity_seconds must be a positive number");
        return -1;
    }
    json_t *routes = json_object_get(b, "routes");
    if (routes) {
        if (!json_is_object(routes)) {
            snprintf(err, errsz, "burst.routes must be an object");
            return -1;
        }
        json_object_update(l->route_rates, routes);
    }
    return 0;
}

static int emu_limits_parse_issue(emu_limits_t *l, json_t *p, char *err, size_t errsz)
{
    if (!json_is_object(p)) {
        snprintf(err, errsz, "per_issue must be an object");
        return -1;
    }
    json_t *e = json_object_get(p, "enabled");
    if (e)
        l->issue_on = json_is_true(e);
    json_t *ws = json_object_get(p, "windows");
    if (!ws)
        return 0;
    if (!json_is_array(ws) || json_array_size(ws) > EMU_MAX_WINDOWS) {
        snprintf(err, errsz, "per_issue.windows must be an array of at most %d windows",
                 EMU_MAX_WINDOWS);
        return -1;
    }
    l->nwin = 0;
    l->ring_size = 1;
    size_t i;
    json_t *w;
    json_array_foreach(ws, i, w)
    {
        double lim, secs;
        if (emu_num(json_object_get(w, "limit"), &lim) != 0 ||
            emu_num(json_object_get(w, "seconds"), &secs) != 0 || lim < 1 || lim > 100000 ||
            secs <= 0) {
            snprintf(err, errsz, "each per_issue window needs limit (1..100000) and seconds > 0");
            return -1;
        }
        l->win[l->nwin].limit = (long)lim;
        l->win[l->nwin].ms = (int64_t)(secs * 1000.0);
        if ((size_t)lim > l->ring_size)
            l->ring_size = (size_t)lim;
        l->nwin++;
    }
    return 0;
}

static int emu_limits_parse_quota(emu_limits_t *l, json_t *q, char *err, size_t errsz)
{
    if (!json_is_object(q)) {
        snprintf(err, errsz, "quota must be an object");
        return -1;
    }
    json_t *e = json_object_get(q, "enabled");
    if (e)
        l->quota_on = json_is_true(e);
    json_t *p = json_object_get(q, "points_per_hour");
    if (p) {
        if (!json_is_integer(p) || json_integer_value(p) < 1) {
            snprintf(err, errsz, "quota.points_per_hour must be a positive integer");
            return -1;
        }
        l->quota_points = (long)json_integer_value(p);
    }
    const char *scope = json_string_value(json_object_get(q, "scope"));
    if (scope && strcmp(scope, "tenant") == 0)
        l->quota_reason = "jira-quota-tenant-based";
    else if (scope && strcmp(scope, "global") == 0)
        l->quota_reason = "jira-quota-global-based";
    else if (scope) {
        snprintf(err, errsz, "quota.scope must be \"global\" or \"tenant\"");
        return -1;
    }
    return 0;
}

int emu_limits_configure(emu_limits_t *l, json_t *cfg, char *err, size_t errsz)
{
    emu_limits_defaults(l);
    emu_limits_free_state(l);
    if (!cfg)
        return 0;
    if (!json_is_object(cfg)) {
        snprintf(err, errsz, "the rate-limit configuration must be a JSON object");
        return -1;
    }
    json_t *e = json_object_get(cfg, "enabled");
    if (e)
        l->enabled = json_is_true(e);
    json_t *fams = json_object_get(cfg, "apply_to");
    if (fams) {
        if (!json_is_array(fams)) {
            snprintf(err, errsz, "apply_to must be an array of \"jira\", \"scim\", \"admin\"");
            return -1;
        }
        l->fam[EMU_FAM_JIRA] = l->fam[EMU_FAM_SCIM] = l->fam[EMU_FAM_ADMIN] = false;
        size_t i;
        json_t *f;
        json_array_foreach(fams, i, f)
        {
            const char *s = json_string_value(f);
            if (s && strcmp(s, "jira") == 0)
                l->fam[EMU_FAM_JIRA] = true;
            else if (s && strcmp(s, "scim") == 0)
                l->fam[EMU_FAM_SCIM] = true;
            else if (s && strcmp(s, "admin") == 0)
                l->fam[EMU_FAM_ADMIN] = true;
            else {
                snprintf(err, errsz, "apply_to entries must be \"jira\", \"scim\" or \"admin\"");
                return -1;
            }
        }
    }
    json_t *b = json_object_get(cfg, "burst");
    if (b && emu_limits_parse_burst(l, b, err, errsz) != 0)
        return -1;
    json_t *p = json_object_get(cfg, "per_issue");
    if (p && emu_limits_parse_issue(l, p, err, errsz) != 0)
        return -1;
    json_t *q = json_object_get(cfg, "quota");
    if (q && emu_limits_parse_quota(l, q, err, errsz) != 0)
        return -1;
    return 0;
}

json_t *emu_limits_dump(emu_limits_t *l)
{
    json_t *fams = json_array();
    if (l->fam[EMU_FAM_JIRA])
        json_array_append_new(fams, json_string("jira"));
    if (l->fam[EMU_FAM_SCIM])
        json_array_append_new(fams, json_string("scim"));
    if (l->fam[EMU_FAM_ADMIN])
        json_array_append_new(fams, json_string("admin"));
    json_t *wins = json_array();
    for (size_t i = 0; i < l->nwin; i++)
        json_array_append_new(wins, json_pack("{s:I, s:f}", "limit", (json_int_t)l->win[i].limit,
                                              "seconds", (double)l->win[i].ms / 1000.0));
    return json_pack(
        "{s:b, s:o, s:{s:b, s:f, s:f, s:f, s:f, s:f, s:f, s:O}, s:{s:b, s:o}, "
        "s:{s:b, s:I, s:s, s:I}}",
        "enabled", l->enabled, "apply_to", fams, "burst", "enabled", l->burst_on, "GET",
        l->rate[EMU_M_GET], "POST", l->rate[EMU_M_POST], "PUT", l->rate[EMU_M_PUT], "DELETE",
        l->rate[EMU_M_DELETE], "PATCH", l->rate[EMU_M_PATCH], "capacity_seconds", l->cap_seconds,
        "routes", l->route_rates, "per_issue", "enabled", l->issue_on, "windows", wins, "quota",
        "enabled", l->quota_on, "points_per_hour", (json_int_t)l->quota_points, "scope",
        strcmp(l->quota_reason, "jira-quota-tenant-based") == 0 ? "tenant" : "global", "used",
        (json_int_t)l->quota_used);
}

void emu_limits_reset_time(int64_t ms, char *buf, size_t n)
{
    /* Minute resolution (yyyy-MM-ddTHH:mmZ), rounded up so that a client
     * waiting until then is never early. */
    int64_t min = (ms + 59999) / 60000;
    time_t secs = (time_t)(min * 60);
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%MZ", &tm);
}

static emu_bucket_t *emu_route_bucket(emu_limits_t *l, emu_routedef_t *rd)
{
    if (rd->bucket && rd->bucket_gen == l->gen)
        return rd->bucket;
    const char *cls = rd->opts.limit_class ? rd->opts.limit_class : rd->pattern;
    char key[512];
    snprintf(key, sizeof(key), "%s %s", rd->method, cls);
    emu_bucket_t *b = emu_map_get(l->buckets, key);
    if (!b) {
        b = calloc(1, sizeof(*b));
        if (!b)
            return NULL;
        double rate =
            rd->opts.burst_rate > 0 ? rd->opts.burst_rate : l->rate[emu_method_idx(rd->method)];
        double cap = rate * l->cap_seconds;
        json_t *ov = json_object_get(l->route_rates, key);
        if (json_is_number(ov)) {
            rate = json_number_value(ov);
            cap = rate * l->cap_seconds;
        } else if (json_is_object(ov)) {
            json_t *r = json_object_get(ov, "rate"), *c = json_object_get(ov, "capacity");
            if (json_is_number(r))
                rate = json_number_value(r);
            cap = json_is_number(c) ? json_number_value(c) : rate * l->cap_seconds;
        }
        if (rate <= 0)
            rate = 1;
        if (cap < 1)
            cap = 1;
        b->rate = rate;
        b->cap = cap;
        b->tokens = cap;
        b->last_us = emu_mono_us();
        emu_map_put(l->buckets, key, b);
    }
    rd->bucket = b;
    rd->bucket_gen = l->gen;
    return b;
}

static emu_ring_t *emu_issue_ring(emu_limits_t *l, const char *key)
{
    emu_ring_t *r = emu_map_get(l->issues, key);
    if (!r) {
        r = calloc(1, sizeof(*r) + l->ring_size * sizeof(int64_t));
        if (!r)
            return NULL;
        emu_map_put(l->issues, key, r);
    }
    return r;
}

/* k-th newest timestamp (k = 0 is the newest). */
static int64_t emu_ring_nth_newest(const emu_ring_t *r, size_t size, size_t k)
{
    return r->ts[(r->head + size - 1 - k) % size];
}

static long emu_ceil_secs(int64_t ms)
{
    long s = (long)((ms + 999) / 1000);
    return s < 1 ? 1 : s;
}

static bool emu_is_write(const char *m)
{
    return strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 || strcmp(m, "DELETE") == 0 ||
           strcmp(m, "PATCH") == 0;
}

void emu_limits_check(emu_t *emu, emu_req_t *req, emu_limit_result_t *out)
{
    emu_limits_t *l = emu->limits;
    emu_routedef_t *rd = req->route;
    memset(out, 0, sizeof(*out));
    out->limit = -1;
    if (!l->enabled || !rd || !l->fam[rd->family])
        return;
    int64_t now_ms = emu_now_ms();
    long points = rd->opts.points > 0 ? rd->opts.points : 1;

    if (l->quota_on) {
        int64_t hour = now_ms / 3600000;
        if (hour != l->quota_hour) {
            l->quota_hour = hour;
            l->quota_used = 0;
        }
        if (l->quota_used + points > l->quota_points) {
            int64_t next = (hour + 1) * 3600000;
            out->limited = true;
            out->reason = l->quota_reason;
            out->retry_after = emu_ceil_secs(next - now_ms);
            out->limit = l->quota_points;
            out->remaining = 0;
            out->reset_ms = next;
            return;
        }
    }

    emu_bucket_t *b = NULL;
    if (l->burst_on && (b = emu_route_bucket(l, rd)) != NULL) {
        int64_t now_us = emu_mono_us();
        b->tokens += b->rate * (double)(now_us - b->last_us) / 1e6;
        if (b->tokens > b->cap)
            b->tokens = b->cap;
        b->last_us = now_us;
        if (b->tokens < 1.0) {
            double wait_s = (1.0 - b->tokens) / b->rate;
            out->limited = true;
            out->reason = "jira-burst-based";
            out->retry_after = (long)ceil(wait_s) < 1 ? 1 : (long)ceil(wait_s);
            out->limit = (long)b->cap;
            out->remaining = 0;
            out->reset_ms = now_ms + out->retry_after * 1000;
            return;
        }
    }

    emu_ring_t *ring = NULL;
    const char *raw = rd->opts.issue_param ? emu_req_param(req, rd->opts.issue_param) : NULL;
    if (l->issue_on && l->nwin > 0 && raw && emu_is_write(req->method)) {
        char canon[256];
        const char *key = raw;
        if (emu->issue_canon && emu->issue_canon(emu, raw, canon, sizeof(canon)))
            key = canon;
        ring = emu_issue_ring(l, key);
        for (size_t i = 0; ring && i < l->nwin; i++) {
            size_t lim = (size_t)l->win[i].limit;
            if (ring->n < lim)
                continue;
            int64_t t = emu_ring_nth_newest(ring, l->ring_size, lim - 1);
            if (t > now_ms - l->win[i].ms) {
                out->limited = true;
                out->reason = "jira-per-issue-on-write";
                out->retry_after = emu_ceil_secs(t + l->win[i].ms - now_ms);
                out->limit = l->win[i].limit;
                out->remaining = 0;
                out->reset_ms = now_ms + out->retry_after * 1000;
                return;
            }
        }
    }

    /* Admitted: charge every limiter. */
    if (l->quota_on)
        l->quota_used += points;
    if (ring) {
        ring->ts[ring->head] = now_ms;
        ring->head = (ring->head + 1) % l->ring_size;
        if (ring->n < l->ring_size)
            ring->n++;
    }
    if (b) {
        b->tokens -= 1.0;
        out->limit = (long)b->cap;
        out->remaining = (long)floor(b->tokens);
        out->near_limit = b->tokens < 0.2 * b->cap;
    } else if (l->quota_on) {
        out->limit = l->quota_points;
        out->remaining = l->quota_points - l->quota_used;
        out->near_limit = (double)out->remaining < 0.2 * (double)l->quota_points;
    }
}
