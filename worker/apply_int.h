/* Internals shared by apply.c (the engine: calls, outcomes, user lookups)
 * and the three families (apply_account.c, apply_entitlement.c,
 * apply_issue.c). Not a public API; names carry the jp_apply__ prefix.
 *
 * One jp_apply_op_t per started event: a small state machine whose state
 * is "which function handles the answer to the call in flight" (on_resp)
 * plus what it has learned so far (the user, the group, the issue...).
 * Every step ends in exactly one of: sending the next call
 * (jp_apply__send), handing over to a lookup that continues later, or
 * finishing (jp_apply__done / jp_apply__fail*), after which the op may be
 * freed and must not be touched. */
#ifndef JIRAPROV_APPLY_INT_H
#define JIRAPROV_APPLY_INT_H

#include "jiraprov/apply.h"
#include "jiraprov/classify.h"
#include "jiraprov/jira.h"
#include "jiraprov/limiter.h"
#include "jiraprov/outcome.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct jp_apply_op jp_apply_op_t;
typedef struct jp_apply_defer jp_apply_defer_t;

/* Handles the answer to the call in flight. */
typedef void jp_apply__step_t(jp_apply_op_t *op, const jp_http_resp_t *resp);
/* Continues after a lookup. */
typedef void jp_apply__cont_t(jp_apply_op_t *op);

struct jp_apply {
    uv_loop_t *loop;
    jp_http_t *http;
    const jp_config_t *cfg;
    const jp_mapping_t *mapping;
    jp_store_t *store;
    jp_jira_find_t issue_find;
    jp_limiter_t *limiter;
    jp_apply_op_t *ops; /* started, not yet called back (doubly linked) */
    size_t in_flight;
    jp_apply_defer_t *defer; /* finishes that happened inside jp_apply_start */
    bool destroying;
};

struct jp_apply_op {
    jp_apply_t *a; /* NULL once orphaned by jp_apply_destroy */
    jp_apply_op_t *prev, *next;
    jp_apply_op_t *defer_next;
    const jp_event_t *ev;
    const jp_site_t *site;
    int attempt;
    jp_apply_cb *cb;
    void *opaque;
    jp_outcome_t *out;
    uint64_t started_ns;

    /* The call in flight. */
    jp_jira_req_t *req;
    jp_apply__step_t *on_resp;
    int64_t call_wall_ms;
    uint64_t call_ns;
    jp_limiter_wait_t *wait; /* waiting for a token of the shared budget */
    bool probe;              /* the call in flight probes a quarantined API */
    bool in_http;            /* an HTTP callback is owed to this op */
    bool in_store;           /* a store callback is owed to this op */
    bool in_start;           /* still inside jp_apply_start: finishing must wait */
    bool finish_pending;

    /* The user the event is about (or the assignee of an issue). */
    const char *login;
    jp_apply__cont_t *user_cont;
    jp_jira_scim_user_t *user; /* the SCIM resource; NULL when absent or from the cache */
    char *scim_id;
    char *account_id;
    bool user_absent;
    bool user_cached;    /* ids came from the store cache */
    bool user_refreshed; /* a stale cached id was already looked up again */
    bool user_own_attrs; /* the lookup may leave out groups and meta (account flows) */
    bool after_conflict; /* account.create: the POST met 409 once */
    char *note;          /* a message kept for a later step (the 409's) */
    json_t *pending;     /* names of what the write in flight changes */

    /* Entitlements. */
    char *group_id;
    jp_jira_scim_group_t *group;
    bool group_members_known; /* the group resource listed its members */
    int64_t role_id;

    /* Issues. */
    jp_jira_issue_t *issue;
    char *issue_key;
};

/* Attempts a reference to another subject's object (an issue's assignee) may
 * find it missing before the event fails: that object's own event may still
 * be on its way through another partition. */
#define JP_APPLY_DEPENDENCY_ATTEMPTS 3

/* ---- engine (apply.c) ------------------------------------------------------ */

/* Sends `req` (built with `err`/`errstr` from a jp_jira_* builder; stolen)
 * and calls step with the answer. A builder error finishes the op: FAILED
 * "invalid_request" for bad event values, RETRY for ENOMEM. */
void jp_apply__send(jp_apply_op_t *op, jp_err_t err, jp_jira_req_t *req, const char *errstr,
                    jp_apply__step_t *step);

/* true for a 2xx answer; otherwise finishes the op with the classified
 * failure and returns false. */
bool jp_apply__ok(jp_apply_op_t *op, const jp_http_resp_t *resp);
/* Finishes the op with the classified failure of `resp`. */
void jp_apply__fail_resp(jp_apply_op_t *op, const jp_http_resp_t *resp);
/* Finishes with an explicit error (message formatted). */
void jp_apply__fail(jp_apply_op_t *op, jp_outcome_status_t status, jp_class_t cls,
                    const char *reason, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* A 2xx answer that did not parse: RETRY "bad_response" (ENOMEM: RETRY). */
void jp_apply__fail_parse(jp_apply_op_t *op, jp_err_t err, const char *errstr);
/* Finishes with SUCCEEDED or SKIPPED and a detail. */
void jp_apply__done(jp_apply_op_t *op, jp_outcome_status_t status, const char *detail);

/* The server's readable error for resp ("HTTP 400: ..."), into buf. */
void jp_apply__resp_message(const jp_apply_op_t *op, const jp_http_resp_t *resp, char *buf,
                            size_t size);
/* true when the answer is status `status` and its error message contains
 * `needle` (ASCII case ignored). */
bool jp_apply__resp_says(const jp_apply_op_t *op, const jp_http_resp_t *resp, long status,
                         const char *needle);

/* outcome->changed += name */
void jp_apply__changed(jp_apply_op_t *op, const char *name);
/* outcome->changed += op->pending (then dropped): the write succeeded. */
void jp_apply__commit_pending(jp_apply_op_t *op);
/* outcome->jira.scimId / accountId from what op knows of the user. */
void jp_apply__report_user(jp_apply_op_t *op);

/* ---- users (apply.c) --------------------------------------------------------- */

/* Resolves `login` to op->scim_id / op->account_id, then calls cont (also
 * when there is no such user: op->user_absent). With want_resource the
 * SCIM resource is always read (op->user), without its groups and meta
 * (read-only: no mapping compares them); otherwise the store cache may
 * answer (op->user_cached), and a lookup reads the whole resource. Lookup
 * failures finish the op. */
void jp_apply__user_resolve(jp_apply_op_t *op, const char *login, bool want_resource,
                            jp_apply__cont_t *cont);
/* After a 404 on an id that came from the cache: drops the entry and
 * resolves again from Jira (then cont). Returns false, doing nothing, when
 * the ids did not come from the cache or were already refreshed. */
bool jp_apply__user_stale(jp_apply_op_t *op, jp_apply__cont_t *cont);
/* Stores op->scim_id / account_id for op->login in the cache (when both
 * are known and there is a store; fire and forget). */
void jp_apply__user_remember(jp_apply_op_t *op);
/* Forgets the cached ids of op->login (account deleted). */
void jp_apply__user_forget(jp_apply_op_t *op);
/* Sets op->scim_id / account_id from a SCIM resource (op->user replaced). */
void jp_apply__user_take(jp_apply_op_t *op, jp_jira_scim_user_t *u);

/* ---- families ------------------------------------------------------------------ */

void jp_apply__account_start(jp_apply_op_t *op);
void jp_apply__entitlement_start(jp_apply_op_t *op);
void jp_apply__issue_start(jp_apply_op_t *op);

#endif
