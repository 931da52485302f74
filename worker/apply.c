/* apply.c - the engine of the planner/executor: per-event state machines,
 * sending calls and recording them in the outcome, failure classification,
 * finishing (deferred when it happens inside jp_apply_start), cancellation,
 * and the login -> SCIM id / account id lookup with the optional cache.
 * The convergence rules live in apply_account.c, apply_entitlement.c and
 * apply_issue.c. */
#include "apply_int.h"

#include "jiraprov/metrics.h"
#include "jiraprov/store.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define CACHE_KIND_USER "user"
#define CACHE_TTL_S     86400 /* ids are stable; a stale one is caught by a 404 */

/* Finishes that happen inside jp_apply_start wait for this timer. It lives
 * apart from the apply object so that jp_apply_destroy can free the object
 * at once while the handle closes through the loop. */
struct jp_apply_defer {
    uv_timer_t timer;
    jp_apply_t *a; /* NULL once the apply is destroyed */
    jp_apply_op_t *head, *tail;
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- ops: list, free, finish ------------------------------------------------ */

static void op_free(jp_apply_op_t *op)
{
    jp_jira_req_destroy(op->req);
    jp_outcome_destroy(op->out);
    jp_jira_scim_user_destroy(op->user);
    free(op->scim_id);
    free(op->account_id);
    free(op->group_id);
    jp_jira_scim_group_destroy(op->group);
    jp_jira_issue_destroy(op->issue);
    free(op->issue_key);
    free(op->note);
    json_decref(op->pending);
    free(op);
}

static void op_unlink(jp_apply_op_t *op)
{
    jp_apply_t *a = op->a;
    if (op->prev)
        op->prev->next = op->next;
    else
        a->ops = op->next;
    if (op->next)
        op->next->prev = op->prev;
    op->prev = op->next = NULL;
    a->in_flight--;
}

/* Hands the outcome to the callback and frees the op. Nothing of the apply
 * object is touched after the callback (it may destroy the apply). */
static void op_deliver(jp_apply_op_t *op)
{
    jp_apply_cb *cb = op->cb;
    void *opaque = op->opaque;
    jp_outcome_t *out = op->out;
    op->out = NULL;
    out->duration_ms = (int64_t)((uv_hrtime() - op->started_ns) / 1000000u);
    op_unlink(op);
    op->a = NULL;
    if (op->in_http || op->in_store) {
        /* Cannot happen in a well-formed step; keep the op for its callback. */
        op->cb = NULL;
    } else {
        op_free(op);
    }
    cb(out, opaque);
}

static void on_defer(uv_timer_t *t)
{
    jp_apply_defer_t *d = t->data;
    while (d->a && d->head) {
        jp_apply_op_t *op = d->head;
        d->head = op->defer_next;
        if (!d->head)
            d->tail = NULL;
        op->defer_next = NULL;
        op_deliver(op);
    }
}

static void finish(jp_apply_op_t *op)
{
    if (op->in_start) {
        op->finish_pending = true;
        return;
    }
    op_deliver(op);
}

static void defer_push(jp_apply_t *a, jp_apply_op_t *op)
{
    jp_apply_defer_t *d = a->defer;
    if (d->tail)
        d->tail->defer_next = op;
    else
        d->head = op;
    d->tail = op;
    uv_timer_start(&d->timer, on_defer, 0, 0);
}

/* ---- outcomes ------------------------------------------------------------------ */

static jp_outcome_status_t status_for(jp_class_t cls)
{
    switch (cls) {
    case JP_CLASS_PERMANENT:
        return JP_OUTCOME_FAILED;
    case JP_CLASS_QUARANTINE:
        return JP_OUTCOME_QUARANTINE;
    default:
        /* RETRIABLE, and FATAL (out of memory): the pipeline decides. */
        return JP_OUTCOME_RETRY;
    }
}

void jp_apply__fail(jp_apply_op_t *op, jp_outcome_status_t status, jp_class_t cls,
                    const char *reason, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    jp_outcome_set_error(op->out, status, cls, reason, msg);
    finish(op);
}

void jp_apply__done(jp_apply_op_t *op, jp_outcome_status_t status, const char *detail)
{
    op->out->status = status;
    op->out->error_class = JP_CLASS_OK;
    free(op->out->detail);
    op->out->detail = detail ? strdup(detail) : NULL;
    finish(op);
}

void jp_apply__fail_parse(jp_apply_op_t *op, jp_err_t err, const char *errstr)
{
    if (err == JP_ERR_NOMEM)
        jp_apply__fail(op, JP_OUTCOME_RETRY, JP_CLASS_FATAL, "out_of_memory", "out of memory");
    else
        /* A garbled 2xx body is more likely a proxy or a transient fault
         * than a property of the event: retry (max_attempts bounds it). */
        jp_apply__fail(op, JP_OUTCOME_RETRY, JP_CLASS_RETRIABLE, "bad_response",
                       "unexpected answer from Jira: %s", errstr);
}

void jp_apply__changed(jp_apply_op_t *op, const char *name)
{
    json_array_append_new(op->out->changed, json_string(name));
}

void jp_apply__commit_pending(jp_apply_op_t *op)
{
    if (op->pending)
        json_array_extend(op->out->changed, op->pending);
    json_decref(op->pending);
    op->pending = NULL;
}

void jp_apply__report_user(jp_apply_op_t *op)
{
    jp_outcome_set_jira(op->out, "scimId", op->scim_id);
    jp_outcome_set_jira(op->out, "accountId", op->account_id);
}

void jp_apply__resp_message(const jp_apply_op_t *op, const jp_http_resp_t *resp, char *buf,
                            size_t size)
{
    char path[512];
    jp_http_url_path(op->req->url, path, sizeof(path));
    int n = snprintf(buf, size, "%s %s: ", jp_http_method_name(op->req->method), path);
    if (n < 0 || (size_t)n >= size)
        return;
    if (resp->status != 0) {
        jp_jira_error_message(op->req->api, resp->status, resp->body, resp->body_len, buf + n,
                              size - (size_t)n);
        return;
    }
    const char *what = resp->cancelled ? "cancelled" : resp->curl_error;
    snprintf(buf + n, size - (size_t)n, "no answer (%s%s%s)", curl_easy_strerror(resp->curl_code),
             what && *what ? ": " : "", what ? what : "");
}

bool jp_apply__resp_says(const jp_apply_op_t *op, const jp_http_resp_t *resp, long status,
                         const char *needle)
{
    if (resp->err != JP_OK || resp->status != status)
        return false;
    jp_jira_error_t e;
    jp_jira_parse_error(op->req->api, resp->status, resp->body, resp->body_len, &e);
    size_t n = strlen(needle);
    for (const char *p = e.message; *p; p++)
        if (strncasecmp(p, needle, n) == 0)
            return true;
    return false;
}

void jp_apply__fail_resp(jp_apply_op_t *op, const jp_http_resp_t *resp)
{
    char msg[768];
    jp_http_verdict_t v;
    if (resp->cancelled) {
        v = (jp_http_verdict_t){JP_CLASS_RETRIABLE, "cancelled", JP_SCOPE_NONE, -1,
                                resp->request_sent};
    } else {
        v = jp_classify_http(resp->err == JP_OK ? resp->status : 0, (int)resp->curl_code,
                             resp->request_sent, jp_http_resp_header(resp, "Retry-After"),
                             jp_http_resp_header(resp, "RateLimit-Reason"), time(NULL));
        if (v.cls == JP_CLASS_OK) /* a 2xx passed here by a step: it did not converge */
            v = (jp_http_verdict_t){JP_CLASS_PERMANENT, "unexpected_status", JP_SCOPE_NONE, -1, 0};
    }
    jp_apply__resp_message(op, resp, msg, sizeof(msg));
    jp_outcome_set_error(op->out, status_for(v.cls), v.cls, v.reason, msg);
    op->out->retry_after_ms = v.retry_after_ms;
    op->out->limit_scope = v.scope;
    if (v.outcome_unknown && op->req->mutation && !op->req->idempotent) {
        free(op->out->detail);
        op->out->detail = strdup("outcome unknown: the request was sent without an answer; "
                                 "the next attempt looks Jira up before writing");
    }
    finish(op);
}

bool jp_apply__ok(jp_apply_op_t *op, const jp_http_resp_t *resp)
{
    if (resp->err == JP_OK && resp->status >= 200 && resp->status < 300)
        return true;
    jp_apply__fail_resp(op, resp);
    return false;
}

/* ---- calls ---------------------------------------------------------------------- */

static void limit_call(const jp_apply_op_t *op, jp_limiter_call_t *c)
{
    c->site = op->site;
    c->api = op->req->api;
    c->method = op->req->method;
    c->endpoint_class = op->req->endpoint_class;
    c->issue_key = op->req->issue_key;
    c->mutation = op->req->mutation;
    c->lane = jp_lane_of(op->ev->type);
}

static void record_call(jp_apply_op_t *op, const jp_http_resp_t *resp)
{
    char path[1024];
    jp_http_url_path(op->req->url, path, sizeof(path));
    int64_t dur_us = (int64_t)((uv_hrtime() - op->call_ns) / 1000u);
    jp_outcome_add_call(op->out, jp_http_method_name(op->req->method),
                        jp_jira_api_name(op->req->api), path, op->req->endpoint_class,
                        op->req->mutation ? 1 : 0, resp->err == JP_OK ? resp->status : 0,
                        op->call_wall_ms, dur_us);
    jp_metrics_jira_call(op->site->name, jp_jira_api_name(op->req->api), op->req->endpoint_class,
                         jp_http_method_name(op->req->method),
                         resp->err == JP_OK ? resp->status : 0, (double)dur_us / 1e6);
}

static void on_http(const jp_http_resp_t *resp, void *opaque)
{
    jp_apply_op_t *op = opaque;
    op->in_http = false;
    if (!op->a) { /* orphaned: its callback was already delivered */
        op_free(op);
        return;
    }
    record_call(op, resp);
    if (op->a->limiter) {
        jp_limiter_call_t c;
        limit_call(op, &c);
        jp_limiter_observe(op->a->limiter, &c, op->probe, resp->err == JP_OK ? resp->status : 0,
                           jp_http_resp_header(resp, "Retry-After"),
                           jp_http_resp_header(resp, "RateLimit-Reason"),
                           jp_http_resp_header(resp, "X-RateLimit-NearLimit"));
    }
    op->on_resp(op, resp);
}

static void send_now(jp_apply_op_t *op)
{
    jp_http_req_t hr;
    jp_jira_req_http(op->req, &hr);
    hr.timeout_ms = op->site->timeout_ms;
    hr.insecure = op->site->tls_verify ? 0 : 1;
    hr.ca_file = op->site->ca_file;
    op->call_wall_ms = wall_ms();
    op->call_ns = uv_hrtime();
    char why[256];
    if (jp_http_request(op->a->http, &hr, on_http, op, why, sizeof(why)) != JP_OK) {
        jp_apply__fail(op, JP_OUTCOME_RETRY, JP_CLASS_RETRIABLE, "http_client", "%s", why);
        return;
    }
    op->in_http = true;
}

/* The shared budget's answer for the call in op->req. */
static void on_token(jp_limiter_verdict_t v, int64_t wait_ms, const char *why, void *opaque)
{
    jp_apply_op_t *op = opaque;
    op->wait = NULL;
    if (v == JP_LIMITER_GO || v == JP_LIMITER_PROBE) {
        op->probe = v == JP_LIMITER_PROBE;
        send_now(op);
        return;
    }
    /* Not sent: the event waits parked and starts over; no attempt is spent. */
    jp_outcome_set_error(op->out, JP_OUTCOME_DEFERRED, JP_CLASS_RETRIABLE,
                         v == JP_LIMITER_DEFER ? "rate_limited" : "limiter_unavailable", why);
    op->out->retry_after_ms = wait_ms;
    finish(op);
}

void jp_apply__send(jp_apply_op_t *op, jp_err_t err, jp_jira_req_t *req, const char *errstr,
                    jp_apply__step_t *step)
{
    if (err != JP_OK) {
        jp_jira_req_destroy(req);
        if (err == JP_ERR_NOMEM)
            jp_apply__fail(op, JP_OUTCOME_RETRY, JP_CLASS_FATAL, "out_of_memory", "out of memory");
        else
            jp_apply__fail(op, JP_OUTCOME_FAILED, JP_CLASS_PERMANENT, "invalid_request", "%s",
                           errstr);
        return;
    }
    jp_jira_req_destroy(op->req);
    op->req = req;
    op->on_resp = step;
    op->probe = false;
    if (!op->a->limiter) {
        send_now(op);
        return;
    }
    jp_limiter_call_t c;
    limit_call(op, &c);
    if (!(op->wait = jp_limiter_acquire(op->a->limiter, &c, on_token, op)))
        jp_apply__fail(op, JP_OUTCOME_RETRY, JP_CLASS_FATAL, "out_of_memory", "out of memory");
}

/* ---- users ------------------------------------------------------------------------ */

static void set_str(char **dst, const char *s)
{
    free(*dst);
    *dst = s ? strdup(s) : NULL;
}

void jp_apply__user_take(jp_apply_op_t *op, jp_jira_scim_user_t *u)
{
    jp_jira_scim_user_destroy(op->user);
    op->user = u;
    set_str(&op->scim_id, u ? u->id : NULL);
    set_str(&op->account_id, u ? u->account_id : NULL);
    op->user_absent = u == NULL;
    op->user_cached = false;
}

void jp_apply__user_remember(jp_apply_op_t *op)
{
    jp_store_t *store = op->a->store;
    if (!store || !op->scim_id || !op->account_id)
        return;
    json_t *v = json_pack("{s:s, s:s}", "scimId", op->scim_id, "accountId", op->account_id);
    if (v)
        jp_store_cache_set(store, op->site->name, CACHE_KIND_USER, op->login, v, CACHE_TTL_S, NULL,
                           NULL);
    json_decref(v);
}

void jp_apply__user_forget(jp_apply_op_t *op)
{
    if (op->a->store && op->login)
        jp_store_cache_del(op->a->store, op->site->name, CACHE_KIND_USER, op->login, NULL, NULL);
}

/* The resource of `list` whose userName is `login` (ASCII case ignored, as
 * Atlassian compares user names); NULL if none. */
static const json_t *pick_user(const jp_jira_scim_list_t *l, const char *login)
{
    size_t i;
    json_t *r;
    json_array_foreach(l->resources, i, r)
    {
        const char *un = json_string_value(json_object_get(r, "userName"));
        if (un && strcasecmp(un, login) == 0)
            return r;
    }
    return NULL;
}

static void on_user_found(jp_apply_op_t *op, const jp_http_resp_t *resp)
{
    char why[256];
    jp_jira_scim_list_t *l = NULL;
    jp_jira_scim_user_t *u = NULL;
    if (!jp_apply__ok(op, resp))
        return;
    jp_err_t err =
        jp_jira_parse_scim_list(resp->status, resp->body, resp->body_len, &l, why, sizeof(why));
    if (err) {
        jp_apply__fail_parse(op, err, why);
        return;
    }
    const json_t *r = pick_user(l, op->login);
    if (r && (err = jp_jira_scim_user_from_json(r, &u, why, sizeof(why))) != JP_OK) {
        jp_jira_scim_list_destroy(l);
        jp_apply__fail_parse(op, err, why);
        return;
    }
    jp_jira_scim_list_destroy(l);
    jp_apply__user_take(op, u);
    jp_apply__user_remember(op);
    op->user_cont(op);
}

static void user_lookup(jp_apply_op_t *op)
{
    jp_jira_req_t *req = NULL;
    char why[256];
    jp_err_t err = op->user_own_attrs
                       ? jp_jira_scim_user_find_own(op->site, op->login, &req, why, sizeof(why))
                       : jp_jira_scim_user_find(op->site, op->login, &req, why, sizeof(why));
    jp_apply__send(op, err, req, why, on_user_found);
}

static void on_cache_user(jp_err_t err, const char *errstr, json_t *value, void *opaque)
{
    jp_apply_op_t *op = opaque;
    op->in_store = false;
    if (!op->a) {
        json_decref(value);
        op_free(op);
        return;
    }
    const char *sid = json_string_value(json_object_get(value, "scimId"));
    const char *aid = json_string_value(json_object_get(value, "accountId"));
    if (err == JP_OK && sid && aid && *sid && *aid) {
        jp_apply__user_take(op, NULL);
        set_str(&op->scim_id, sid);
        set_str(&op->account_id, aid);
        op->user_absent = false;
        op->user_cached = true;
        json_decref(value);
        op->user_cont(op);
        return;
    }
    /* Miss, Redis trouble or a corrupted entry: Jira knows. */
    json_decref(value);
    user_lookup(op);
}

void jp_apply__user_resolve(jp_apply_op_t *op, const char *login, bool want_resource,
                            jp_apply__cont_t *cont)
{
    op->login = login;
    op->user_cont = cont;
    op->user_own_attrs = want_resource;
    jp_store_t *store = op->a->store;
    if (!want_resource && store &&
        jp_store_cache_get(store, op->site->name, CACHE_KIND_USER, login, on_cache_user, op) ==
            JP_OK) {
        op->in_store = true;
        return;
    }
    user_lookup(op);
}

bool jp_apply__user_stale(jp_apply_op_t *op, jp_apply__cont_t *cont)
{
    if (!op->user_cached || op->user_refreshed)
        return false;
    op->user_refreshed = true;
    jp_apply__user_forget(op);
    op->user_cont = cont;
    user_lookup(op);
    return true;
}

/* ---- public API ------------------------------------------------------------------ */

static void on_defer_closed(uv_handle_t *h)
{
    free(h->data);
}

jp_apply_t *jp_apply_new(const jp_apply_opts_t *opts, char *errstr, size_t errstr_size)
{
    if (!opts || !opts->loop || !opts->http || !opts->cfg || !opts->mapping) {
        jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                   "apply needs a loop, an HTTP client, a config and a mapping");
        return NULL;
    }
    if (opts->issue_find != JP_JIRA_FIND_BY_LABEL && opts->issue_find != JP_JIRA_FIND_BY_PROPERTY) {
        jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "apply: unknown issue_find mode %d",
                   (int)opts->issue_find);
        return NULL;
    }
    jp_apply_t *a = calloc(1, sizeof(*a));
    jp_apply_defer_t *d = calloc(1, sizeof(*d));
    if (!a || !d || uv_timer_init(opts->loop, &d->timer) != 0) {
        free(a);
        free(d);
        jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
        return NULL;
    }
    d->timer.data = d;
    d->a = a;
    a->defer = d;
    a->loop = opts->loop;
    a->http = opts->http;
    a->cfg = opts->cfg;
    a->mapping = opts->mapping;
    a->store = opts->store;
    a->issue_find = opts->issue_find;
    a->limiter = opts->limiter;
    return a;
}

void jp_apply_destroy(jp_apply_t *a)
{
    if (!a)
        return;
    jp_apply_defer_t *d = a->defer;
    a->destroying = true;
    /* Ops whose finish was deferred have their real outcome: deliver it. */
    while (d->head) {
        jp_apply_op_t *op = d->head;
        d->head = op->defer_next;
        op->defer_next = NULL;
        op_deliver(op);
    }
    d->tail = NULL;
    while (a->ops) {
        jp_apply_op_t *op = a->ops;
        jp_limiter_cancel(a->limiter, op->wait);
        op->wait = NULL;
        jp_outcome_set_error(op->out, JP_OUTCOME_RETRY, JP_CLASS_RETRIABLE, "cancelled",
                             "the worker stopped before the event was applied");
        op_deliver(op); /* keeps the op alive while an HTTP or store callback is owed */
    }
    d->a = NULL;
    uv_timer_stop(&d->timer);
    uv_close((uv_handle_t *)&d->timer, on_defer_closed);
    free(a);
}

size_t jp_apply_release(jp_apply_t *a, bool (*pred)(void *opaque, void *ctx), void *ctx)
{
    size_t n = 0;
    if (!a)
        return 0;
    for (jp_apply_op_t *op = a->ops; op; op = op->next) {
        if (!op->wait || (pred && !pred(op->opaque, ctx)))
            continue;
        jp_limiter_cancel(a->limiter, op->wait);
        op->wait = NULL;
        jp_outcome_set_error(op->out, JP_OUTCOME_DEFERRED, JP_CLASS_RETRIABLE, "released",
                             "released before its call was sent");
        op->out->retry_after_ms = 0;
        defer_push(a, op); /* delivered from the loop, not from inside this call */
        n++;
    }
    return n;
}

size_t jp_apply_in_flight(const jp_apply_t *a)
{
    return a ? a->in_flight : 0;
}

jp_err_t jp_apply_start(jp_apply_t *a, const jp_event_t *ev, int attempt, jp_apply_cb *cb,
                        void *opaque, char *errstr, size_t errstr_size)
{
    if (!a || !ev || !cb)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "apply: missing argument");
    if (ev->type == JP_EVENT_RECON_REQUEST)
        return jp_err_set(errstr, errstr_size, JP_ERR_UNSUPPORTED,
                          "recon.request is handled by reconciliation, not by apply");
    if (a->destroying)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "apply: being destroyed");
    if ((int)ev->type < 0 || (int)ev->type >= JP_EVENT__COUNT)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "apply: unknown event type %d",
                          (int)ev->type);
    const jp_site_t *site = ev->site ? jp_config_site(a->cfg, ev->site) : NULL;
    if (!site)
        return jp_err_set(errstr, errstr_size, JP_ERR_NOT_FOUND,
                          "jirasite: \"%s\" is not a configured site", ev->site ? ev->site : "");
    jp_apply_op_t *op = calloc(1, sizeof(*op));
    if (!op || !(op->out = jp_outcome_new(JP_OUTCOME_SUCCEEDED))) {
        free(op);
        return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
    }
    op->a = a;
    op->ev = ev;
    op->site = site;
    op->attempt = attempt < 1 ? 1 : attempt;
    op->cb = cb;
    op->opaque = opaque;
    op->started_ns = uv_hrtime();
    op->role_id = -1;
    op->next = a->ops;
    if (a->ops)
        a->ops->prev = op;
    a->ops = op;
    a->in_flight++;

    op->in_start = true;
    if (JP_EVENT_IS_ACCOUNT(ev->type))
        jp_apply__account_start(op);
    else if (JP_EVENT_IS_ENTITLEMENT(ev->type))
        jp_apply__entitlement_start(op);
    else
        jp_apply__issue_start(op);
    op->in_start = false;
    if (op->finish_pending)
        defer_push(a, op);
    return JP_OK;
}
