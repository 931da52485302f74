/* HTTP framework of the emulator: libmicrohttpd daemon, routing, request and
 * response objects, auth, the order faults -> auth -> rate limits -> handler,
 * request counters and the --record exchange log.
 *
 * One global mutex (emu->lock) is held from fault planning to the end of the
 * handler and the bookkeeping; building and queueing the MHD response, and any
 * delay, happen outside it. */
#include "emu_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *const EMU_CT_JSON = "application/json";
static const char *const EMU_CT_SCIM = "application/scim+json";

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */

int64_t emu_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Writes v as exactly `digits` decimal digits (v >= 0, zero-padded). */
static char *emu_put_digits(char *p, int64_t v, int digits)
{
    for (int i = digits - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return p + digits;
}

size_t emu_fmt_utc(int64_t ms, const char *suffix, char *buf, size_t n)
{
    /* Floor division, so that times before 1970 stay well-formed. */
    int64_t secs = ms / 1000, milli = ms % 1000;
    if (milli < 0) {
        milli += 1000;
        secs--;
    }
    int64_t days = secs / 86400, sod = secs % 86400;
    if (sod < 0) {
        sod += 86400;
        days--;
    }
    /* Days since 1970-01-01 to a proleptic Gregorian date, in 400-year eras
     * starting on March 1st (so the leap day ends a year); gmtime_r takes a
     * process-wide lock and strftime does locale work, both per call. */
    days += 719468;
    int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    int64_t doe = days - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t day = doy - (153 * mp + 2) / 5 + 1;
    int64_t month = mp < 10 ? mp + 3 : mp - 9;
    int64_t year = yoe + era * 400 + (month <= 2);

    char tmp[64];
    char *p = tmp;
    if (year < 0 || year > 9999) {
        p += snprintf(tmp, 24, "%lld", (long long)year);
    } else {
        p = emu_put_digits(p, year, 4);
    }
    *p++ = '-';
    p = emu_put_digits(p, month, 2);
    *p++ = '-';
    p = emu_put_digits(p, day, 2);
    *p++ = 'T';
    p = emu_put_digits(p, sod / 3600, 2);
    *p++ = ':';
    p = emu_put_digits(p, sod / 60 % 60, 2);
    *p++ = ':';
    p = emu_put_digits(p, sod % 60, 2);
    *p++ = '.';
    p = emu_put_digits(p, milli, 3);
    size_t len = (size_t)(p - tmp);
    size_t sl = suffix ? strlen(suffix) : 0;
    if (sl > sizeof(tmp) - 1 - len)
        sl = sizeof(tmp) - 1 - len;
    memcpy(p, suffix ? suffix : "", sl);
    len += sl;
    if (n == 0)
        return len;
    size_t copy = len < n ? len : n - 1;
    memcpy(buf, tmp, copy);
    buf[copy] = '\0';
    return len;
}

void emu_iso8601(int64_t ms, char *buf, size_t n)
{
    emu_fmt_utc(ms, "Z", buf, n);
}

uint64_t emu_rand_u64(emu_t *emu)
{
    /* xorshift64*: small, fast and reproducible for a given seed. */
    uint64_t x = emu->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    emu->rng = x;
    return x * 2685821657736338717ull;
}

double emu_rand_unit(emu_t *emu)
{
    return (double)(emu_rand_u64(emu) >> 11) / 9007199254740992.0;
}

void emu_uuid(emu_t *emu, char *buf)
{
    uint64_t a = emu_rand_u64(emu), b = emu_rand_u64(emu);
    a = (a & 0xffffffffffff0fffull) | 0x0000000000004000ull;
    b = (b & 0x3fffffffffffffffull) | 0x8000000000000000ull;
    snprintf(buf, 37, "%08x-%04x-%04x-%04x-%012llx", (unsigned)(a >> 32),
             (unsigned)((a >> 16) & 0xffff), (unsigned)(a & 0xffff), (unsigned)(b >> 48),
             (unsigned long long)(b & 0xffffffffffffull));
}

long long emu_next_id(emu_t *emu, const char *seq, long long start)
{
    long long *v = emu_map_get(emu->seqs, seq);
    if (!v) {
        v = malloc(sizeof(*v));
        if (!v)
            return start;
        *v = start;
        emu_map_put(emu->seqs, seq, v);
        return start;
    }
    return ++*v;
}

void emu_seqs_clear(emu_t *emu)
{
    size_t pos = 0;
    void *v;
    while (emu_map_next(emu->seqs, &pos, NULL, &v))
        free(v);
    emu_map_clear(emu->seqs);
}

const char *emu_base_url(const emu_t *emu)
{
    return emu->base_url;
}

const char *emu_directory_id(const emu_t *emu)
{
    return emu->cfg.directory_id;
}

const char *emu_org_id(const emu_t *emu)
{
    return emu->cfg.org_id;
}

void *emu_jira_state(emu_t *emu)
{
    return emu->jira_state;
}

void emu_set_jira_state(emu_t *emu, void *state)
{
    emu->jira_state = state;
}

void emu_set_issue_canon(emu_t *emu, emu_issue_canon_fn fn)
{
    emu->issue_canon = fn;
}

void emu_lock(emu_t *emu)
{
    pthread_mutex_lock(&emu->lock);
}

void emu_unlock(emu_t *emu)
{
    pthread_mutex_unlock(&emu->lock);
}

emu_family_t emu_family_of(emu_auth_t auth)
{
    switch (auth) {
    case EMU_AUTH_JIRA:
        return EMU_FAM_JIRA;
    case EMU_AUTH_SCIM:
        return EMU_FAM_SCIM;
    case EMU_AUTH_ADMIN:
        return EMU_FAM_ADMIN;
    default:
        return EMU_FAM_CONTROL;
    }
}

static bool emu_starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static emu_family_t emu_family_by_path(const char *path)
{
    if (emu_starts_with(path, "/scim/"))
        return EMU_FAM_SCIM;
    if (emu_starts_with(path, "/users/") || emu_starts_with(path, "/admin/"))
        return EMU_FAM_ADMIN;
    if (emu_starts_with(path, "/__emulator/"))
        return EMU_FAM_CONTROL;
    return EMU_FAM_JIRA;
}

/* ------------------------------------------------------------------------ */
/* Counters                                                                  */

static void emu_json_inc(json_t *obj, const char *key, json_int_t by)
{
    json_t *v = json_object_get(obj, key);
    json_object_set_new(obj, key, json_integer((v ? json_integer_value(v) : 0) + by));
}

static json_t *emu_json_child(json_t *obj, const char *key)
{
    json_t *c = json_object_get(obj, key);
    if (!c) {
        c = json_object();
        json_object_set_new(obj, key, c);
    }
    return c;
}

void emu_count_mutation(emu_t *emu, const char *entity, const char *key, const char *kind)
{
    if (!entity || !kind)
        return;
    json_t *per_key = emu_json_child(emu_json_child(emu->mutations, entity), key ? key : "");
    emu_json_inc(per_key, kind, 1);
    emu_json_inc(emu_json_child(emu->mutation_totals, entity), kind, 1);
}

void emu_count_membership(emu_t *emu, const emu_group_t *g, const emu_user_t *u, const char *kind)
{
    char key[512];
    snprintf(key, sizeof(key), "%s:%s", g->group_id, u->account_id);
    emu_count_mutation(emu, "membership", key, kind);
}

void emu_count_request(emu_t *emu, emu_routedef_t *rd, const char *method, unsigned status)
{
    emu->total_requests++;
    if (!rd) {
        rd = emu_map_get(emu->unmatched, method);
        if (!rd) {
            rd = calloc(1, sizeof(*rd));
            if (!rd)
                return;
            rd->method = "";
            rd->pattern = "<unmatched>";
            emu_map_put(emu->unmatched, method, rd);
        }
    }
    for (size_t i = 0; i < rd->nst; i++) {
        if (rd->st[i].status == status) {
            rd->st[i].n++;
            return;
        }
    }
    if (rd->nst < EMU_MAX_STATUS) {
        rd->st[rd->nst].status = status;
        rd->st[rd->nst].n = 1;
        rd->nst++;
    }
}

static void emu_counters_add_route(json_t *arr, const emu_routedef_t *rd, const char *method)
{
    for (size_t i = 0; i < rd->nst; i++) {
        if (rd->st[i].n == 0)
            continue;
        json_array_append_new(arr, json_pack("{s:s, s:s, s:i, s:I}", "method", method, "route",
                                             rd->pattern, "status", (int)rd->st[i].status, "count",
                                             (json_int_t)rd->st[i].n));
    }
}

json_t *emu_counters_dump(emu_t *emu)
{
    json_t *reqs = json_array();
    for (size_t i = 0; i < emu->nroutes; i++)
        emu_counters_add_route(reqs, emu->routes[i], emu->routes[i]->method);
    size_t pos = 0;
    const char *m;
    void *v;
    while (emu_map_next(emu->unmatched, &pos, &m, &v))
        emu_counters_add_route(reqs, v, m);
    json_t *limited = json_deep_copy(emu->limited_by_reason);
    json_object_set_new(limited, "total", json_integer((json_int_t)emu->limited_total));
    return json_pack("{s:I, s:o, s:O, s:O, s:o, s:O}", "total_requests",
                     (json_int_t)emu->total_requests, "requests", reqs, "mutations", emu->mutations,
                     "mutation_totals", emu->mutation_totals, "rate_limited", limited, "faults",
                     emu->fault_counts);
}

void emu_counters_reset(emu_t *emu)
{
    for (size_t i = 0; i < emu->nroutes; i++)
        emu->routes[i]->nst = 0;
    size_t pos = 0;
    void *v;
    while (emu_map_next(emu->unmatched, &pos, NULL, &v))
        free(v);
    emu_map_clear(emu->unmatched);
    json_object_clear(emu->mutations);
    json_object_clear(emu->mutation_totals);
    json_object_clear(emu->limited_by_reason);
    json_object_clear(emu->fault_counts);
    emu->total_requests = 0;
    emu->limited_total = 0;
}

/* ------------------------------------------------------------------------ */
/* Routing                                                                   */

void emu_route(emu_t *emu, const char *method, const char *pattern, emu_handler_fn fn,
               const emu_route_opts *opts)
{
    emu_routedef_t *rd = calloc(1, sizeof(*rd));
    if (!rd)
        return;
    rd->method = method;
    rd->pattern = pattern;
    rd->fn = fn;
    if (opts)
        rd->opts = *opts;
    rd->family = emu_family_of(rd->opts.auth);
    rd->segs_buf = strdup(pattern);
    if (!rd->segs_buf) {
        free(rd);
        return;
    }
    char *save = NULL;
    for (char *s = strtok_r(rd->segs_buf, "/", &save); s && rd->nsegs < EMU_MAX_SEGS;
         s = strtok_r(NULL, "/", &save)) {
        size_t len = strlen(s);
        if (len >= 2 && s[0] == '{' && s[len - 1] == '}') {
            s[len - 1] = '\0';
            rd->segs[rd->nsegs] = NULL;
            rd->pnames[rd->nsegs] = s + 1;
        } else {
            rd->segs[rd->nsegs] = s;
            rd->nliteral++;
        }
        rd->nsegs++;
    }
    if (emu->nroutes == emu->routes_cap) {
        size_t ncap = emu->routes_cap ? emu->routes_cap * 2 : 64;
        emu_routedef_t **nr = realloc(emu->routes, ncap * sizeof(*nr));
        if (!nr) {
            free(rd->segs_buf);
            free(rd);
            return;
        }
        emu->routes = nr;
        emu->routes_cap = ncap;
    }
    emu->routes[emu->nroutes++] = rd;
}

/* Splits req's path into segments (in req->pathbuf) and finds the best route.
 * *other_method is set when only a route with another method matched. */
static emu_routedef_t *emu_match(emu_t *emu, emu_req_t *req, bool *other_method)
{
    *other_method = false;
    req->pathbuf = strdup(req->url);
    if (!req->pathbuf)
        return NULL;
    char *segs[EMU_MAX_SEGS];
    size_t nsegs = 0;
    char *p = req->pathbuf;
    while (*p) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        if (nsegs == EMU_MAX_SEGS)
            return NULL;
        segs[nsegs++] = p;
        while (*p && *p != '/')
            p++;
        if (*p)
            *p++ = '\0';
    }
    emu_routedef_t *best = NULL;
    for (size_t i = 0; i < emu->nroutes; i++) {
        emu_routedef_t *rd = emu->routes[i];
        if (rd->nsegs != nsegs)
            continue;
        size_t k;
        for (k = 0; k < nsegs; k++) {
            if (rd->segs[k] && strcmp(rd->segs[k], segs[k]) != 0)
                break;
        }
        if (k != nsegs)
            continue;
        if (strcmp(rd->method, req->method) != 0) {
            *other_method = true;
            continue;
        }
        if (!best || rd->nliteral > best->nliteral)
            best = rd;
    }
    if (best) {
        for (size_t k = 0; k < nsegs && req->nparams < EMU_MAX_PARAMS; k++) {
            if (best->segs[k])
                continue;
            req->pnames[req->nparams] = best->pnames[k];
            req->pvalues[req->nparams] = segs[k];
            req->nparams++;
        }
    }
    return best;
}

/* ------------------------------------------------------------------------ */
/* Request accessors                                                         */

const char *emu_req_method(const emu_req_t *req)
{
    return req->method;
}

const char *emu_req_path(const emu_req_t *req)
{
    return req->url;
}

const char *emu_req_route(const emu_req_t *req)
{
    return req->route ? req->route->pattern : "<unmatched>";
}

const char *emu_req_query(const emu_req_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

typedef struct emu_qall {
    const char *name;
    const char **out;
    size_t max;
    size_t n;
} emu_qall_t;

static enum MHD_Result emu_qall_cb(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    emu_qall_t *q = cls;
    (void)kind;
    if (key && strcmp(key, q->name) == 0) {
        if (q->n < q->max)
            q->out[q->n] = value ? value : "";
        q->n++;
    }
    return MHD_YES;
}

size_t emu_req_query_all(const emu_req_t *req, const char *name, const char **out, size_t max)
{
    emu_qall_t q = {name, out, max, 0};
    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, emu_qall_cb, &q);
    return q.n;
}

const char *emu_req_header(const emu_req_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *emu_req_param(const emu_req_t *req, const char *name)
{
    for (size_t i = 0; i < req->nparams; i++) {
        if (strcmp(req->pnames[i], name) == 0)
            return req->pvalues[i];
    }
    return NULL;
}

const char *emu_req_body(const emu_req_t *req, size_t *len)
{
    if (len)
        *len = req->body_len;
    return req->body ? req->body : "";
}

json_t *emu_req_json(emu_req_t *req, char *err, size_t errsz)
{
    if (!req->json_done) {
        req->json_done = true;
        if (req->body_len == 0) {
            snprintf(req->json_err, sizeof(req->json_err), "The request body is empty.");
        } else {
            json_error_t je;
            req->json = json_loadb(req->body, req->body_len, JSON_DECODE_ANY, &je);
            if (!req->json)
                snprintf(req->json_err, sizeof(req->json_err),
                         "The request body is not valid JSON (line %d, column %d: %s).", je.line,
                         je.column, je.text);
        }
    }
    if (!req->json && err && errsz)
        snprintf(err, errsz, "%s", req->json_err);
    return req->json;
}

bool emu_req_query_int(const emu_req_t *req, const char *name, long long dflt, long long *out)
{
    const char *v = emu_req_query(req, name);
    if (!v || !*v) {
        *out = dflt;
        return true;
    }
    char *end = NULL;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno != 0 || !end || *end != '\0')
        return false;
    *out = n;
    return true;
}

bool emu_req_query_bool(const emu_req_t *req, const char *name, bool dflt)
{
    const char *v = emu_req_query(req, name);
    if (!v)
        return dflt;
    if (strcasecmp(v, "true") == 0)
        return true;
    if (strcasecmp(v, "false") == 0)
        return false;
    return dflt;
}

/* ------------------------------------------------------------------------ */
/* Responses                                                                 */

static void emu_resp_clear_body(emu_resp_t *resp)
{
    free(resp->body);
    resp->body = NULL;
    resp->len = 0;
    json_decref(resp->json);
    resp->json = NULL;
}

/* Encodes body into resp->body; hint is the expected size (0: unknown). */
static void emu_resp_encode(emu_resp_t *resp, const json_t *body, size_t hint)
{
    resp->body = emu_json_encode(body, hint, &resp->len);
#ifdef EMU_JSON_VERIFY
    char *want = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
    if (resp->body && (!want || strlen(want) != resp->len || memcmp(want, resp->body, resp->len))) {
        fprintf(stderr, "EMU_JSON_VERIFY: jansson %s\nEMU_JSON_VERIFY: emu_json %s\n",
                want ? want : "(null)", resp->body);
        abort();
    }
    free(want);
#endif
    if (!resp->body) { /* jansson's verdict on what emu_json_encode refuses */
        resp->body = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
        resp->len = resp->body ? strlen(resp->body) : 0;
    }
}

void emu_resp_json(emu_resp_t *resp, unsigned status, json_t *body)
{
    emu_resp_clear_body(resp);
    resp->status = status;
    resp->set = true;
    if (!body)
        return;
    /* A tree that shares no node with the emulator's state can be encoded
     * after the lock is dropped (see emu.h); anything else is encoded now,
     * while the state it points into cannot change. */
    if (resp->defer && emu_json_exclusive(body)) {
        resp->json = body;
        return;
    }
    emu_resp_encode(resp, body, 0);
    json_decref(body);
}

void emu_resp_empty(emu_resp_t *resp, unsigned status)
{
    emu_resp_clear_body(resp);
    resp->status = status;
    resp->set = true;
}

void emu_resp_text(emu_resp_t *resp, unsigned status, const char *content_type, const char *text)
{
    emu_resp_clear_body(resp);
    resp->status = status;
    resp->set = true;
    if (text) {
        resp->body = strdup(text);
        resp->len = resp->body ? strlen(resp->body) : 0;
    }
    if (content_type)
        emu_resp_header(resp, "Content-Type", content_type);
}

void emu_resp_header(emu_resp_t *resp, const char *name, const char *value)
{
    if (!name || !value)
        return;
    for (size_t i = 0; i < resp->nhdrs; i++) {
        if (strcasecmp(resp->hdrs[i].name, name) == 0) {
            char *nv = strdup(value);
            if (!nv)
                return;
            free(resp->hdrs[i].value);
            resp->hdrs[i].value = nv;
            if (strcasecmp(name, "Content-Type") == 0)
                resp->ctype = nv;
            return;
        }
    }
    if (resp->nhdrs == EMU_MAX_HEADERS)
        return;
    emu_hdr_t *h = &resp->hdrs[resp->nhdrs];
    h->name = strdup(name);
    h->value = strdup(value);
    if (!h->name || !h->value) {
        free(h->name);
        free(h->value);
        return;
    }
    resp->nhdrs++;
    if (strcasecmp(name, "Content-Type") == 0)
        resp->ctype = h->value;
}

void emu_resp_jira_error(emu_resp_t *resp, unsigned status, const char *msg, const char *field,
                         const char *field_msg)
{
    json_t *msgs = json_array();
    if (msg)
        json_array_append_new(msgs, json_string(msg));
    json_t *errs = json_object();
    if (field)
        json_object_set_new(errs, field, json_string(field_msg ? field_msg : ""));
    emu_resp_json(resp, status, json_pack("{s:o, s:o}", "errorMessages", msgs, "errors", errs));
}

void emu_resp_scim_error(emu_resp_t *resp, unsigned status, const char *scim_type,
                         const char *detail)
{
    char st[16];
    snprintf(st, sizeof(st), "%u", status);
    json_t *b = json_pack("{s:[s], s:s}", "schemas", "urn:ietf:params:scim:api:messages:2.0:Error",
                          "status", st);
    if (scim_type)
        json_object_set_new(b, "scimType", json_string(scim_type));
    if (detail)
        json_object_set_new(b, "detail", json_string(detail));
    emu_resp_json(resp, status, b);
}

unsigned emu_resp_status(const emu_resp_t *resp)
{
    return resp->status;
}

static void emu_trace_id(emu_t *emu, char *buf, size_t n)
{
    snprintf(buf, n, "%016llx", (unsigned long long)emu_rand_u64(emu));
}

void emu_resp_family_error(emu_resp_t *resp, emu_family_t fam, unsigned status, const char *message)
{
    switch (fam) {
    case EMU_FAM_SCIM:
        if (status == 401 || status == 403 || status == 429) {
            emu_resp_json(resp, status,
                          json_pack("{s:i, s:s}", "code", (int)status, "message", message));
        } else {
            emu_resp_scim_error(resp, status, NULL, message);
        }
        break;
    case EMU_FAM_ADMIN:
        emu_resp_json(resp, status,
                      json_pack("{s:i, s:s}", "code", (int)status, "message", message));
        break;
    default:
        emu_resp_jira_error(resp, status, message, NULL, NULL);
        break;
    }
}

void emu_resp_auth_error(emu_t *emu, emu_resp_t *resp, emu_family_t fam, unsigned status)
{
    char trace[32];
    switch (fam) {
    case EMU_FAM_SCIM:
        emu_trace_id(emu, trace, sizeof(trace));
        emu_resp_json(resp, status,
                      json_pack("{s:s, s:s}", "error",
                                status == 401 ? "Missing or malformed authorization header."
                                              : "The API key is not valid for this directory.",
                                "traceId", trace));
        break;
    case EMU_FAM_ADMIN:
        emu_resp_json(resp, status,
                      json_pack("{s:s}", "key", status == 401 ? "unauthorized" : "forbidden"));
        break;
    default:
        emu_resp_jira_error(resp, status,
                            status == 401 ? "Client must be authenticated to access this resource."
                                          : "You do not have permission to perform this action.",
                            NULL, NULL);
        break;
    }
}

/* ------------------------------------------------------------------------ */
/* Auth                                                                      */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *emu_b64(const char *in)
{
    size_t n = strlen(in);
    char *out = malloc(((n + 2) / 3) * 4 + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)(unsigned char)in[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)(unsigned char)in[i + 1] << 8;
        if (i + 2 < n)
            v |= (unsigned char)in[i + 2];
        out[o++] = B64[(v >> 18) & 63];
        out[o++] = B64[(v >> 12) & 63];
        out[o++] = i + 1 < n ? B64[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? B64[v & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

/* Returns 0 when authorised, else the status (401/403) to answer. */
static unsigned emu_auth_check(emu_t *emu, emu_req_t *req, emu_auth_t auth)
{
    if (auth == EMU_AUTH_NONE)
        return 0;
    const char *h = emu_req_header(req, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || !*h)
        return 401;
    if (auth == EMU_AUTH_JIRA) {
        if (strncasecmp(h, "Basic ", 6) != 0)
            return 401;
        const char *v = h + 6;
        while (*v == ' ')
            v++;
        return strcmp(v, emu->jira_basic) == 0 ? 0 : 401;
    }
    if (strncasecmp(h, "Bearer ", 7) != 0)
        return 401;
    const char *tok = h + 7;
    while (*tok == ' ')
        tok++;
    const char *want = auth == EMU_AUTH_SCIM ? emu->cfg.scim_key : emu->cfg.org_key;
    if (strcmp(tok, want) == 0)
        return 0;
    if (auth == EMU_AUTH_SCIM)
        return 403;
    /* A known key of another kind authenticates but lacks the privilege;
     * anything else is unauthenticated. */
    return strcmp(tok, emu->cfg.scim_key) == 0 ? 403 : 401;
}

/* ------------------------------------------------------------------------ */
/* Recording                                                                 */

static void emu_record(emu_t *emu, emu_req_t *req)
{
    if (!emu->record)
        return;
    json_t *reqb = json_null();
    if (req->body_len > 0) {
        json_t *j = emu_req_json(req, NULL, 0);
        reqb = j ? json_incref(j) : json_stringn(req->body, req->body_len);
    }
    json_t *respb = json_null();
    if (req->resp.len > 0) {
        respb = json_loadb(req->resp.body, req->resp.len, JSON_DECODE_ANY, NULL);
        if (!respb)
            respb = json_stringn(req->resp.body, req->resp.len);
    }
    const char *ct = req->resp.len > 0 ? req->resp.ctype : NULL;
    json_t *line = json_pack("{s:s, s:s, s:s, s:i, s:o, s:o, s:s?}", "method", req->method, "route",
                             emu_req_route(req), "path", req->url, "status", (int)req->resp.status,
                             "request_body", reqb, "response_body", respb, "content_type", ct);
    if (!line)
        return;
    char *s = json_dumps(line, JSON_COMPACT);
    json_decref(line);
    if (s) {
        fputs(s, emu->record);
        fputc('\n', emu->record);
        fflush(emu->record);
        free(s);
    }
}

/* ------------------------------------------------------------------------ */
/* Request processing                                                        */

/* Decimal text of v into buf (>= 24 bytes); snprintf costs about as much as
 * the rest of the rate-limit bookkeeping, and this runs on every request. */
static const char *emu_fmt_long(char *buf, long v)
{
    char *p = buf + 23;
    *p = '\0';
    unsigned long m = v < 0 ? 0ul - (unsigned long)v : (unsigned long)v;
    do {
        *--p = (char)('0' + m % 10);
        m /= 10;
    } while (m);
    if (v < 0)
        *--p = '-';
    return p;
}

static void emu_rate_headers(emu_resp_t *resp, const emu_limit_result_t *lr)
{
    char buf[64];
    if (lr->limit >= 0) {
        emu_resp_header(resp, "X-RateLimit-Limit", emu_fmt_long(buf, lr->limit));
        emu_resp_header(resp, "X-RateLimit-Remaining", emu_fmt_long(buf, lr->remaining));
    }
    if (lr->limited) {
        snprintf(buf, sizeof(buf), "%ld", lr->retry_after);
        emu_resp_header(resp, "Retry-After", buf);
        emu_limits_reset_time(lr->reset_ms, buf, sizeof(buf));
        emu_resp_header(resp, "X-RateLimit-Reset", buf);
        if (lr->reason)
            emu_resp_header(resp, "RateLimit-Reason", lr->reason);
    } else if (lr->near_limit) {
        emu_resp_header(resp, "X-RateLimit-NearLimit", "true");
    }
}

static void emu_count_limited(emu_t *emu, const char *reason)
{
    emu->limited_total++;
    emu_json_inc(emu->limited_by_reason, reason ? reason : "unknown", 1);
}

static void emu_process(emu_t *emu, emu_req_t *req, emu_fault_plan_t *plan)
{
    bool other_method = false;
    emu_routedef_t *rd = emu_match(emu, req, &other_method);
    req->route = rd;
    emu_family_t fam = rd ? rd->family : emu_family_by_path(req->url);
    bool control = emu_starts_with(req->url, "/__emulator/");
    emu_resp_t *resp = &req->resp;
    /* The record line needs the encoded body while the lock is held. */
    resp->defer = emu->record == NULL;

    memset(plan, 0, sizeof(*plan));
    plan->retry_after = -1;
    if (!control)
        emu_faults_plan(emu, req->method, req->url, plan);

    if (plan->action == EMU_FAULT_ACT_RESET || plan->action == EMU_FAULT_ACT_HANG)
        return;
    if (plan->action == EMU_FAULT_ACT_ERROR) {
        emu_resp_family_error(resp, fam, plan->status,
                              plan->status == 500   ? "Internal server error"
                              : plan->status == 502 ? "Bad gateway"
                              : plan->status == 504 ? "Gateway timeout"
                                                    : "Service unavailable");
        if (plan->retry_after >= 0) {
            char buf[32];
            snprintf(buf, sizeof(buf), "%ld", plan->retry_after);
            emu_resp_header(resp, "Retry-After", buf);
        }
    } else if (plan->action == EMU_FAULT_ACT_RATE_LIMIT) {
        emu_limit_result_t lr = {.limited = true,
                                 .reason = plan->reason,
                                 .retry_after = plan->retry_after >= 1 ? plan->retry_after : 1,
                                 .limit = 100,
                                 .remaining = 0};
        lr.reset_ms = emu_now_ms() + lr.retry_after * 1000;
        emu_resp_family_error(resp, fam, 429, "Rate limit exceeded.");
        emu_rate_headers(resp, &lr);
        emu_count_limited(emu, plan->reason);
    } else if (!rd) {
        if (other_method) {
            emu_resp_empty(resp, 405);
        } else if (fam == EMU_FAM_SCIM) {
            emu_resp_scim_error(resp, 404, NULL, "The requested resource does not exist.");
        } else if (fam == EMU_FAM_ADMIN) {
            emu_resp_json(resp, 404, json_pack("{s:s}", "key", "notFound"));
        } else {
            char msg[512];
            snprintf(msg, sizeof(msg), "null for uri: %s%s", emu->base_url, req->url);
            emu_resp_jira_error(resp, 404, msg, NULL, NULL);
        }
    } else if (req->body_too_large) {
        emu_resp_family_error(resp, fam, 413, "The request body is too large.");
    } else {
        unsigned a = emu_auth_check(emu, req, rd->opts.auth);
        if (a) {
            emu_resp_auth_error(emu, resp, fam, a);
        } else {
            emu_limit_result_t lr = {.limit = -1};
            if (!control)
                emu_limits_check(emu, req, &lr);
            if (lr.limited) {
                emu_resp_family_error(resp, fam, 429,
                                      fam == EMU_FAM_JIRA ? "Rate limit exceeded."
                                                          : "Too many requests");
                emu_count_limited(emu, lr.reason);
                if (fam != EMU_FAM_JIRA)
                    lr.reason = NULL;
            } else {
                rd->fn(emu, req, resp);
                if (!resp->set)
                    emu_resp_family_error(resp, fam, 500, "The handler produced no response.");
            }
            emu_rate_headers(resp, &lr);
        }
    }
    if (!resp->ctype && (resp->len > 0 || resp->json))
        resp->ctype = fam == EMU_FAM_SCIM ? EMU_CT_SCIM : EMU_CT_JSON;
    emu_count_request(emu, rd, req->method, resp->status);
    emu_record(emu, req);
    /* The parsed request body is not needed any more. A handler may have
     * stored parts of it in the state, and a node the state shares is only
     * released under the lock (jansson's last decref does not order itself
     * after other threads' reads); an unshared body waits for emu_req_free. */
    if (req->json && !emu_json_exclusive(req->json)) {
        json_decref(req->json);
        req->json = NULL;
    }
}

/* ------------------------------------------------------------------------ */
/* Slow bodies                                                               */

typedef struct emu_slow {
    emu_t *emu;
    struct MHD_Connection *conn;
    char *body;
    size_t len;
    size_t chunk;
    int64_t tick_ms;
    int64_t next_ms;
} emu_slow_t;

static ssize_t emu_slow_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    emu_slow_t *s = cls;
    if (pos >= s->len)
        return MHD_CONTENT_READER_END_OF_STREAM;
    int64_t now = emu_mono_ms();
    if (now < s->next_ms) {
        if (!emu_timer_park(s->emu->timer, s->conn, s->next_ms))
            return MHD_CONTENT_READER_END_WITH_ERROR;
        return 0;
    }
    size_t n = s->len - (size_t)pos;
    if (n > s->chunk)
        n = s->chunk;
    if (n > max)
        n = max;
    memcpy(buf, s->body + pos, n);
    s->next_ms = now + s->tick_ms;
    return (ssize_t)n;
}

static void emu_slow_free(void *cls)
{
    emu_slow_t *s = cls;
    free(s->body);
    free(s);
}

static struct MHD_Response *emu_build_response(emu_t *emu, emu_req_t *req,
                                               const emu_fault_plan_t *plan)
{
    emu_resp_t *resp = &req->resp;
    struct MHD_Response *r = NULL;
    bool has_body = resp->len > 0;
    if (plan->slow_chunk > 0 && resp->len > 0) {
        emu_slow_t *s = calloc(1, sizeof(*s));
        if (s) {
            s->emu = emu;
            s->conn = req->conn;
            s->body = resp->body;
            s->len = resp->len;
            s->chunk = plan->slow_chunk;
            s->tick_ms = plan->slow_tick_ms > 0 ? plan->slow_tick_ms : 1;
            s->next_ms = 0;
            r = MHD_create_response_from_callback(resp->len, 4096, emu_slow_reader, s,
                                                  emu_slow_free);
            if (r) {
                resp->body = NULL;
                resp->len = 0;
            } else {
                free(s);
            }
        }
    }
    if (!r) {
        r = MHD_create_response_from_buffer(resp->len, resp->body ? resp->body : (void *)"",
                                            resp->body ? MHD_RESPMEM_MUST_FREE
                                                       : MHD_RESPMEM_PERSISTENT);
        if (r)
            resp->body = NULL;
    }
    if (!r)
        return NULL;
    bool have_ct = false;
    for (size_t i = 0; i < resp->nhdrs; i++) {
        if (strcasecmp(resp->hdrs[i].name, "Content-Type") == 0)
            have_ct = true;
        MHD_add_response_header(r, resp->hdrs[i].name, resp->hdrs[i].value);
    }
    if (!have_ct && resp->ctype && has_body)
        MHD_add_response_header(r, "Content-Type", resp->ctype);
    return r;
}

static void emu_reset_socket(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci) {
        /* Linger 0 turns the close into a TCP RST, the "connection reset by
         * peer" a client sees when a proxy drops the connection. */
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(ci->connect_fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
}

static enum MHD_Result emu_ahc(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls)
{
    emu_t *emu = cls;
    emu_req_t *req = *con_cls;
    (void)version;
    if (!req) {
        req = calloc(1, sizeof(*req));
        if (!req)
            return MHD_NO;
        req->emu = emu;
        req->conn = conn;
        req->url = url;
        req->method = method;
        *con_cls = req;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (req->body_too_large || req->body_len + n > EMU_MAX_BODY) {
            req->body_too_large = true;
            return MHD_YES;
        }
        if (req->body_len + n + 1 > req->body_cap) {
            size_t ncap = req->body_cap ? req->body_cap : 1024;
            while (ncap < req->body_len + n + 1)
                ncap *= 2;
            char *nb = realloc(req->body, ncap);
            if (!nb)
                return MHD_NO;
            req->body = nb;
            req->body_cap = ncap;
        }
        memcpy(req->body + req->body_len, upload_data, n);
        req->body_len += n;
        req->body[req->body_len] = '\0';
        return MHD_YES;
    }
    if (req->stage == EMU_STAGE_HANG || req->stage == EMU_STAGE_DONE)
        return MHD_NO;
    if (req->stage == EMU_STAGE_DELAYED) {
        struct MHD_Response *r = req->pending;
        req->pending = NULL;
        req->stage = EMU_STAGE_DONE;
        enum MHD_Result ret = MHD_queue_response(conn, req->resp.status, r);
        MHD_destroy_response(r);
        return ret;
    }

    emu_fault_plan_t plan;
    emu_lock(emu);
    emu_process(emu, req, &plan);
    emu_unlock(emu);
    if (req->resp.json) {
        emu_resp_t *resp = &req->resp;
        emu_routedef_t *rd = req->route;
        size_t hint = rd ? __atomic_load_n(&rd->body_hint, __ATOMIC_RELAXED) : 0;
        emu_resp_encode(resp, resp->json, hint);
        json_decref(resp->json);
        resp->json = NULL;
        /* Next time start with room for a body this size. */
        if (rd && resp->len + 1 != hint)
            __atomic_store_n(&rd->body_hint, resp->len + 1, __ATOMIC_RELAXED);
    }

    if (plan.action == EMU_FAULT_ACT_RESET) {
        req->stage = EMU_STAGE_DONE;
        emu_reset_socket(conn);
        return MHD_NO;
    }
    if (plan.action == EMU_FAULT_ACT_HANG) {
        req->stage = EMU_STAGE_HANG;
        int64_t hang = plan.hang_ms > 0 ? plan.hang_ms : 3600 * 1000;
        if (!emu_timer_park(emu->timer, conn, emu_mono_ms() + plan.delay_ms + hang))
            return MHD_NO;
        return MHD_YES;
    }
    struct MHD_Response *r = emu_build_response(emu, req, &plan);
    if (!r)
        return MHD_NO;
    if (plan.delay_ms > 0) {
        req->pending = r;
        req->stage = EMU_STAGE_DELAYED;
        if (emu_timer_park(emu->timer, conn, emu_mono_ms() + plan.delay_ms))
            return MHD_YES;
        req->pending = NULL;
    }
    req->stage = EMU_STAGE_DONE;
    enum MHD_Result ret = MHD_queue_response(conn, req->resp.status, r);
    MHD_destroy_response(r);
    return ret;
}

static void emu_req_free(emu_req_t *req)
{
    if (!req)
        return;
    if (req->pending)
        MHD_destroy_response(req->pending);
    free(req->pathbuf);
    free(req->body);
    json_decref(req->json);
    free(req->resp.body);
    json_decref(req->resp.json);
    for (size_t i = 0; i < req->resp.nhdrs; i++) {
        free(req->resp.hdrs[i].name);
        free(req->resp.hdrs[i].value);
    }
    free(req);
}

static void emu_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                          enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    emu_req_free(*con_cls);
    *con_cls = NULL;
}

/* ------------------------------------------------------------------------ */
/* Weak fallbacks for the Jira REST module: used when no jira_*.c is linked. */

__attribute__((weak)) void emu_jira_register(emu_t *emu)
{
    (void)emu;
}

__attribute__((weak)) void emu_jira_reset(emu_t *emu)
{
    (void)emu;
}

__attribute__((weak)) int emu_jira_seed(emu_t *emu, json_t *seed, char *err, size_t errsz)
{
    (void)emu;
    (void)seed;
    (void)err;
    (void)errsz;
    return 0;
}

__attribute__((weak)) void emu_jira_seed_demo(emu_t *emu)
{
    (void)emu;
}

__attribute__((weak)) json_t *emu_jira_dump(emu_t *emu)
{
    (void)emu;
    return json_object();
}

__attribute__((weak)) void emu_jira_free(emu_t *emu)
{
    (void)emu;
}

/* ------------------------------------------------------------------------ */
/* Lifecycle                                                                 */

emu_t *emu_new(const emu_config_t *cfg, char *err, size_t errsz)
{
    emu_t *emu = calloc(1, sizeof(*emu));
    if (!emu) {
        snprintf(err, errsz, "out of memory");
        return NULL;
    }
    emu_json_alloc_init();
    pthread_mutex_init(&emu->lock, NULL);
    emu->cfg = *cfg;
    emu->rng = cfg->seed_rng ? cfg->seed_rng : 0x9e3779b97f4a7c15ull;
    emu->seqs = emu_map_new(false);
    emu->unmatched = emu_map_new(false);
    emu->mutations = json_object();
    emu->mutation_totals = json_object();
    emu->limited_by_reason = json_object();
    emu->fault_counts = json_object();
    emu->limits = emu_limits_new();
    emu->faults = emu_faults_new();
    char creds[512];
    snprintf(creds, sizeof(creds), "%s:%s", cfg->jira_email, cfg->jira_token);
    emu->jira_basic = emu_b64(creds);
    if (!emu->seqs || !emu->unmatched || !emu->mutations || !emu->limits || !emu->faults ||
        !emu->jira_basic) {
        snprintf(err, errsz, "out of memory");
        emu_destroy(emu);
        return NULL;
    }
    emu_store_init(emu);
    if (cfg->record_path) {
        emu->record = fopen(cfg->record_path, "a");
        if (!emu->record) {
            snprintf(err, errsz, "cannot open record file %s: %s", cfg->record_path,
                     strerror(errno));
            emu_destroy(emu);
            return NULL;
        }
    }
    emu_scim_register(emu);
    emu_admin_register(emu);
    emu_control_register(emu);
    emu_jira_register(emu);
    return emu;
}

static int emu_resolve(const char *host, int port, struct sockaddr_in *sa, char *err, size_t errsz)
{
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa->sin_addr) == 1)
        return 0;
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0 || !res) {
        snprintf(err, errsz, "cannot resolve listen host %s: %s", host, gai_strerror(rc));
        return -1;
    }
    sa->sin_addr = ((struct sockaddr_in *)res->ai_addr)->sin_addr;
    freeaddrinfo(res);
    return 0;
}

int emu_start(emu_t *emu, char *err, size_t errsz)
{
    struct sockaddr_in sa;
    if (emu_resolve(emu->cfg.listen_host, emu->cfg.port, &sa, err, errsz) != 0)
        return -1;
    emu->timer = emu_timer_new();
    if (!emu->timer) {
        snprintf(err, errsz, "cannot start the timer thread");
        return -1;
    }
    unsigned flags =
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO;
    emu->mhd = MHD_start_daemon(
        flags, (uint16_t)emu->cfg.port, NULL, NULL, emu_ahc, emu, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&sa, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)2,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)20000, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)300,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024, MHD_OPTION_NOTIFY_COMPLETED, emu_completed,
        emu, MHD_OPTION_END);
    if (!emu->mhd) {
        snprintf(err, errsz, "cannot listen on %s:%d (%s)", emu->cfg.listen_host, emu->cfg.port,
                 strerror(errno));
        return -1;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(emu->mhd, MHD_DAEMON_INFO_BIND_PORT);
    int port = di ? di->port : emu->cfg.port;
    const char *host = emu->cfg.listen_host;
    if (strcmp(host, "0.0.0.0") == 0)
        host = "127.0.0.1";
    snprintf(emu->base_url, sizeof(emu->base_url), "http://%s:%d", host, port);
    return 0;
}

void emu_destroy(emu_t *emu)
{
    if (!emu)
        return;
    if (emu->mhd) {
        /* Stop accepting; the listen socket is ours to close after this. */
        MHD_socket lsock = MHD_quiesce_daemon(emu->mhd);
        if (lsock != MHD_INVALID_SOCKET)
            close(lsock);
    }
    /* Resume every parked connection before stopping libmicrohttpd. */
    if (emu->timer)
        emu_timer_shutdown(emu->timer);
    if (emu->mhd)
        MHD_stop_daemon(emu->mhd);
    emu_timer_destroy(emu->timer);
    emu_jira_free(emu);
    emu_store_free(emu);
    for (size_t i = 0; i < emu->nroutes; i++) {
        free(emu->routes[i]->segs_buf);
        free(emu->routes[i]);
    }
    free(emu->routes);
    if (emu->unmatched) {
        size_t pos = 0;
        void *v;
        while (emu_map_next(emu->unmatched, &pos, NULL, &v))
            free(v);
        emu_map_destroy(emu->unmatched);
    }
    if (emu->seqs) {
        emu_seqs_clear(emu);
        emu_map_destroy(emu->seqs);
    }
    json_decref(emu->mutations);
    json_decref(emu->mutation_totals);
    json_decref(emu->limited_by_reason);
    json_decref(emu->fault_counts);
    emu_limits_destroy(emu->limits);
    emu_faults_destroy(emu->faults);
    free(emu->jira_basic);
    if (emu->record)
        fclose(emu->record);
    pthread_mutex_destroy(&emu->lock);
    free(emu);
}
