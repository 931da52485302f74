/* apply: the planner and executor of the worker. Given one decoded event, it
 * converges Jira to the state the event asks for, asynchronously on the
 * worker's libuv loop, and reports what it came to as a jp_outcome_t.
 *
 * Deviations from the interface agreed with the pipeline:
 *  - jp_apply_start() has no `outcome_unknown_before` flag: every create
 *    looks Jira up before it writes (user by userName, issue by its
 *    externalRef label/property), on every attempt, so a create whose
 *    earlier outcome is unknown is never repeated blindly. `attempt` only
 *    shapes outcome details (a user found as desired on attempt > 1 was
 *    "possibly created by an earlier attempt"; a found issue whose property
 *    carries this event's id is SUCCEEDED "created by an earlier attempt").
 *  - jp_apply_opts_t has one more member, `issue_find` (zero = by label,
 *    which works on any site).
 *  - jp_apply_destroy() frees one libuv handle through its close callback:
 *    run the loop once afterwards (as after jp_http_destroy()).
 *
 * Converging, never blindly repeating (each rule reads Jira first):
 *   account.create   find by userName; absent: POST (409: find again and
 *                    treat as existing); existing: PATCH only the mapped
 *                    attributes and `active` that differ. SUCCEEDED
 *                    (created / updated) or SKIPPED (already as desired).
 *   account.update   find; absent: FAILED "no such account"; PATCH what
 *                    differs; nothing: SKIPPED.
 *   account.delete   find; absent or 404 on DELETE: SKIPPED.
 *   account.enable/disable
 *                    lifecycle scim: PATCH active unless already so
 *                    (SKIPPED); admin: POST lifecycle enable/disable with
 *                    the account id read from the SCIM user (the SCIM
 *                    `active` tells whether it is already so).
 *   entitlement.grant/revoke
 *                    group, membership scim: find the SCIM group (absent:
 *                    FAILED "no such group") and the user; already a member
 *                    / not a member: SKIPPED, else PATCH members. Membership
 *                    is read from the group's members when the list answer
 *                    carries them, else from the user's `groups`, else by
 *                    GET /Groups/{id}.
 *                    group, membership jira: group/bulk for the groupId,
 *                    the user's account id, then POST/DELETE /group/user;
 *                    Jira has no cheap membership read, so its 400 "...
 *                    already a member" / "... not a member" means SKIPPED.
 *                    project role: role id by name, role actors; already /
 *                    not an actor: SKIPPED; else POST/DELETE the actor.
 *   issue.create     search by externalRef first: found: SKIPPED "already
 *                    created" (SUCCEEDED "created by an earlier attempt"
 *                    when its property names this event's id); else resolve
 *                    the assignee login, POST the issue. An assignee with no
 *                    account is RETRY "dependency_missing" for the first 2
 *                    attempts (its account.create may still be on its way
 *                    through another partition), then FAILED "not_found".
 *   issue.update     GET by key, or search by externalRef (the search answer
 *                    carries the fields); absent: FAILED "no such issue";
 *                    PUT only the fields that differ (a given description
 *                    is always sent: the read has no description to compare
 *                    with); the ref label is kept when labels change;
 *                    nothing: SKIPPED.
 *   issue.delete     by key: DELETE (404: SKIPPED); by externalRef: search
 *                    (none: SKIPPED), DELETE; 400 with subtasks: FAILED.
 *   issue.transition resolve; already in the status (ASCII case ignored):
 *                    SKIPPED; else the transition whose target is the
 *                    status; none: FAILED "no transition from X to Y".
 *   recon.request    not handled here: jp_apply_start() returns
 *                    JP_ERR_UNSUPPORTED.
 *
 * Failures that do not converge go through jp_classify_http(): RETRY (with
 * retry_after_ms and limit_scope), QUARANTINE (401/403/TLS) or FAILED;
 * error_reason is the verdict's reason, error_message the server's error as
 * one readable sentence. A lookup that finds nothing the event needs (a
 * group, an account, an issue, a role) is FAILED with reason "not_found".
 * With a limiter (opts->limiter), every call first takes a token of the
 * site's shared budget and reports Jira's answer to it; when the budget
 * says wait (a long cool-down, a quarantined API, a busy issue) or Redis
 * cannot be asked, the event ends DEFERRED with retry_after_ms: nothing was
 * wrong with it, the pipeline parks it without counting an attempt.
 * Every HTTP call made is recorded in outcome->calls (path without query
 * string or credentials); outcome->changed names the attributes or fields
 * written.
 *
 * Outcome details (outcome->detail) name what happened: "created",
 * "updated", "deleted", "enabled", "already as desired", "already deleted",
 * "already a member", "not an actor", "found after 409", ...; a RETRY after
 * a write that was sent without an answer says "outcome unknown".
 *
 * Lookup cache: when opts->store is set, login -> {scimId, accountId} is
 * read from and written to it (kind "user", TTL one day) for the lookups
 * that need only the ids (delete, entitlements, assignees); rules that
 * compare attributes always read the SCIM user. A 404 on a cached id drops
 * the entry and looks the user up again; account.delete drops it too.
 * Redis trouble counts as a miss. Without a store every lookup goes to
 * Jira; results are the same.
 *
 * Concurrency: each started event is an independent state machine; many run
 * at once on one loop, without blocking calls. Events for the same subject
 * must be serialised by the caller (the sequencer does).
 *
 * Threading: none; every function must be called on the loop's thread.
 *
 * Ownership: the apply object borrows loop, http, cfg, mapping and store
 * (they must outlive it). The event passed to jp_apply_start() is borrowed
 * until the callback. The outcome handed to the callback belongs to the
 * callee, which frees it with jp_outcome_destroy(). */
#ifndef JIRAPROV_APPLY_H
#define JIRAPROV_APPLY_H

#include "jiraprov/config.h"
#include "jiraprov/err.h"
#include "jiraprov/event.h"
#include "jiraprov/http.h"
#include "jiraprov/jira.h"
#include "jiraprov/mapping.h"
#include "jiraprov/outcome.h"

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

/* The shared per-site budget (include/jiraprov/limiter.h). */
typedef struct jp_limiter jp_limiter_t;

/* The Redis lookup cache (include/jiraprov/store.h). */
typedef struct jp_store jp_store_t;

typedef struct jp_apply jp_apply_t;

typedef struct jp_apply_opts {
    uv_loop_t *loop;             /* required */
    jp_http_t *http;             /* required, on `loop` */
    const jp_config_t *cfg;      /* required: sites */
    const jp_mapping_t *mapping; /* required: account attributes */
    jp_store_t *store;           /* optional lookup cache; NULL = none */
    jp_jira_find_t issue_find;   /* how issues are found by externalRef; 0 = by label */
    jp_limiter_t *limiter;       /* optional shared budget: a token before every call */
} jp_apply_opts_t;

/* NULL with errstr set when a required option is missing or on ENOMEM. */
jp_apply_t *jp_apply_new(const jp_apply_opts_t *opts, char *errstr, size_t errstr_size);

/* Accepts NULL. Every event still in flight is called back at once (before
 * this returns) with status RETRY, reason "cancelled"; their HTTP requests
 * finish (or are cancelled by jp_http_destroy) without touching the event,
 * the config or the callback again. Run the loop afterwards to release the
 * last handle. */
void jp_apply_destroy(jp_apply_t *a);

/* outcome: owned by the callee (free with jp_outcome_destroy()). */
typedef void jp_apply_cb(jp_outcome_t *outcome, void *opaque);

/* Starts applying `ev` (borrowed until the callback). `attempt` is 1 for the
 * first try. Returns JP_OK and calls cb exactly once, later, from the loop
 * (never from inside this call). Returns an error without calling cb when
 * the event cannot be applied at all:
 *   JP_ERR_NOT_FOUND    ev->site is not a configured site (the pipeline
 *                       dead-letters with errstr),
 *   JP_ERR_UNSUPPORTED  recon.request (not this module),
 *   JP_ERR_INVALID      NULL arguments or an apply being destroyed,
 *   JP_ERR_NOMEM. */
jp_err_t jp_apply_start(jp_apply_t *a, const jp_event_t *ev, int attempt, jp_apply_cb *cb,
                        void *opaque, char *errstr, size_t errstr_size);

/* Events whose next call waits for a token and for which pred(opaque, ctx)
 * is true (pred NULL: all) give up waiting: each is called back, later from
 * the loop, with DEFERRED "released" and retry_after_ms 0. For a revoke or a
 * stop: what has sent nothing yet need not hold the drain. Returns how many. */
size_t jp_apply_release(jp_apply_t *a, bool (*pred)(void *opaque, void *ctx), void *ctx);

/* Events started and not yet called back. */
size_t jp_apply_in_flight(const jp_apply_t *a);

#endif
