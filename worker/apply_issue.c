/* apply_issue.c - issue.create / update / delete / transition through Jira
 * REST v3. Creates search for the externalRef tag first (so a create whose
 * earlier outcome is unknown is never repeated); updates write only the
 * fields that differ; transitions start from the current status. */
#include "apply_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const jp_issue_t *iss(const jp_apply_op_t *op)
{
    return &op->ev->issue;
}

static void pend(jp_apply_op_t *op, const char *name)
{
    if (!op->pending)
        op->pending = json_array();
    json_array_append_new(op->pending, json_string(name));
}

/* Keeps the issue, reports its key and id. */
static void take_issue(jp_apply_op_t *op, jp_jira_issue_t *is)
{
    jp_jira_issue_destroy(op->issue);
    op->issue = is;
    free(op->issue_key);
    op->issue_key = is->key ? strdup(is->key) : NULL;
    jp_outcome_set_jira(op->out, "issueKey", is->key);
    jp_outcome_set_jira(op->out, "issueId", is->id);
}

/* Moves the issue of `s` tagged with ref out of it; NULL if none. */
static jp_jira_issue_t *steal_ref(jp_jira_search_t *s, const char *ref)
{
    const jp_jira_issue_t *hit = jp_jira_search_find_ref(s, ref);
    if (!hit)
        return NULL;
    jp_jira_issue_t *is = malloc(sizeof(*is));
    if (!is)
        return NULL;
    size_t i = (size_t)(hit - s->issues);
    *is = s->issues[i];
    memset(&s->issues[i], 0, sizeof(s->issues[i]));
    return is;
}

/* Parses a search answer and picks the issue tagged with ref: 1 found
 * (op->issue), 0 none, -1 failed (op finished). */
static int search_pick(jp_apply_op_t *op, const jp_http_resp_t *resp, const char *ref)
{
    char why[256];
    jp_jira_search_t *s = NULL;
    if (!jp_apply__ok(op, resp))
        return -1;
    jp_err_t err =
        jp_jira_parse_search(resp->status, resp->body, resp->body_len, &s, why, sizeof(why));
    if (err) {
        jp_apply__fail_parse(op, err, why);
        return -1;
    }
    bool tagged = jp_jira_search_find_ref(s, ref) != NULL;
    jp_jira_issue_t *is = steal_ref(s, ref);
    jp_jira_search_destroy(s);
    if (tagged && !is) {
        jp_apply__fail_parse(op, JP_ERR_NOMEM, "out of memory");
        return -1;
    }
    if (!is)
        return 0;
    take_issue(op, is);
    return 1;
}

static void search_ref(jp_apply_op_t *op, const char *project, jp_apply__step_t *step)
{
    char why[256];
    jp_jira_req_t *req = NULL;
    jp_err_t err = jp_jira_issue_find_by_ref(op->site, project, iss(op)->external_ref,
                                             op->a->issue_find, &req, why, sizeof(why));
    jp_apply__send(op, err, req, why, step);
}

/* Whether op->account_id can stand for the assignee (finishes if not). The
 * assignee's account.create is another subject's event, ordered with nothing
 * here (another partition, maybe still in flight): a missing assignee is
 * retried for the first JP_APPLY_DEPENDENCY_ATTEMPTS attempts, then failed. */
static bool assignee_ok(jp_apply_op_t *op)
{
    if ((op->user_absent || !op->account_id) && op->attempt < JP_APPLY_DEPENDENCY_ATTEMPTS) {
        jp_apply__fail(op, JP_OUTCOME_RETRY, JP_CLASS_RETRIABLE, "dependency_missing",
                       "no account for the assignee \"%s\" yet (attempt %d of %d before it "
                       "counts as missing)",
                       iss(op)->assignee.value, op->attempt, JP_APPLY_DEPENDENCY_ATTEMPTS);
        return false;
    }
    if (op->user_absent || !op->account_id) {
        jp_apply__fail(op, JP_OUTCOME_FAILED, JP_CLASS_PERMANENT, "not_found",
                       "no such account for the assignee: no SCIM user named \"%s\"%s",
                       iss(op)->assignee.value, op->user_absent ? "" : " with an account id");
        return false;
    }
    return true;
}

/* ---- issue.create ------------------------------------------------------------- */

static void on_issue_created(jp_apply_op_t *op, const jp_http_resp_t *resp)
{
    char why[256];
    jp_jira_issue_t *is = NULL;
    if (!jp_apply__ok(op, resp))
        return;
    jp_err_t err = jp_jira_parse_issue_created(resp->status, resp->body, resp->body_len, &is, why,
                                               sizeof(why));
    if (err) {
        jp_apply__fail_parse(op, err, why);
        return;
    }
    take_issue(op, is);
    jp_apply__commit_pending(op);
    jp_apply__done(op, JP_OUTCOME_SUCCEEDED, "created");
}

static void create_post(jp_apply_op_t *op)
{
    char why[256];
    const jp_issue_t *i = iss(op);
    if (i->assignee.state == JP_VALUE && !assignee_ok(op))
        return;
    jp_jira_issue_fields_t f = {
        .project = i->project,
        .issue_type = i->issue_type,
        .summary = i->summary,
        .description = i->description,
        .priority = i->priority,
        .labels_state = i->labels_state,
        .labels_count = i->labels_count,
        .labels = i->labels,
        .external_ref = i->external_ref,
        .event_id = op->ev->id,
    };
    if (i->assignee.state == JP_VALUE)
        f.assignee_account_id = (jp_optstr_t){JP_VALUE, op->account_id};
    pend(op, "summary");
    if (i->description.state == JP_VALUE)
        pend(op, "description");
    if (i->priority.state == JP_VALUE)
        pend(op, "priority");
    if (i->assignee.state == JP_VALUE)
        pend(op, "assignee");
    if (i->labels_state == JP_VALUE && i->labels_count)
        pend(op, "labels");
    jp_jira_req_t *req = NULL;
    jp_err_t err = jp_jira_issue_create(op->site, &f, &req, why, sizeof(why));
    jp_apply__send(op, err, req, why, on_issue_created);
}

static void on_create_search(jp_apply_op_t *op, const jp_http_resp_t *resp)
{
    int found = search_pick(op, resp, iss(op)->external_ref);
    if (found < 0)
        return;
    if (found) {
        const char *eid = op->issue->prop_event_id;
        if (eid && strcmp(eid, op->ev->id) == 0)
            jp_apply__done(op, JP_OUTCOME_SUCCEEDED,
                           "created by an earlier attempt of this event (found by externalRef)");
        else
            jp_apply__done(op, JP_OUTCOME_SKIPPED, "already created");
        return;
    }
    if (iss(op)->assignee.state == JP_VALUE)
        jp_apply__user_resolve(op, iss(op)->assignee.value, false, create_post);
    else
        create_post(op);
}

/* ---- issue.update ------------------------------------------------------------------ */

static void on_issue_edited(jp_apply_op_t *op, const jp_http_resp_t *resp)
{
    if (!jp_apply__ok(op, resp))
        return;
    jp_apply__commit_pending(op);
    jp_apply__done(op, JP_OUTCOME_SUCCEEDED, "updated");
}

static bool has_str(char *const *v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i], s) == 0)
            return true;
    return false;
}

/* Whether the issue's labels differ, as sets, from the event's plus the
 * ref label the edit keeps. */
static bool labels_differ(const jp_apply_op_t *op, const char *ref)
{
    const jp_issue_t *i = iss(op);
    const jp_jira_issue_t *cur = op->issue;
    size_t n = i->labels_state == JP_VALUE ? i->labels_count : 0, want = 0;
    char ref_label[JP_EVENT_REF_MAX + sizeof(JP_JIRA_REF_LABEL_PREFIX)];
    if (ref)
        snprintf(ref_label, sizeof(ref_label), "%s%s", JP_JIRA_REF_LABEL_PREFIX, ref);
    for (size_t k = 0; k < n; k++) {
        bool dup = false;
        for (size_t j = 0; j < k && !dup; j++)
            dup = strcmp(i->labels[j], i->labels[k]) == 0;
        if (dup)
            continue;
        want++;
        if (!has_str(cur->labels, cur->label_count, i->labels[k]))
            return true;
    }
    if (ref && !has_str((char *const *)i->labels, n, ref_label)) {
        want++;
        if (!has_str(cur->labels, cur->label_count, ref_label))
            return true;
    }
    return cur->label_count != want;
}

static bool str_differs(const char *cur, const char *want)
{
    return !cur || strcmp(cur, want) != 0;
}

static void update_diff(jp_apply_op_t *op)
{
    char why[256];
    const jp_issue_t *i = iss(op);
    const jp_jira_issue_t *cur = op->issue;
    if (i->assignee.state == JP_VALUE && !assignee_ok(op))
        return;
    jp_jira_issue_fields_t f = {.external_ref = jp_jira_issue_external_ref(cur)};
    if (i->summary.state == JP_VALUE && str_differs(cur->summary, i->summary.value)) {
        f.summary = i->summary;
        pend(op, "summary");
    }
    /* The issue read does not carry the description (ADF would have to be
     * turned back into text to compare): a given description is written. */
    if (i->description.state != JP_ABSENT) {
        f.description = i->description;
        pend(op, "description");
    }
    if ((i->priority.state == JP_VALUE && str_differs(cur->priority, i->priority.value)) ||
        (i->priority.state == JP_NULL && cur->priority)) {
        f.priority = i->priority;
        pend(op, "priority");
    }
    if ((i->assignee.state == JP_VALUE && str_differs(cur->assignee, op->account_id)) ||
        (i->assignee.state == JP_NULL && cur->assignee)) {
        f.assignee_account_id = i->assignee.state == JP_VALUE
                                    ? (jp_optstr_t){JP_VALUE, op->account_id}
                                    : (jp_optstr_t){JP_NULL, NULL};
        pend(op, "assignee");
    }
    if (i->labels_state != JP_ABSENT && labels_differ(op, f.external_ref)) {
        f.labels_state = i->labels_state;
        f.labels_count = i->labels_state == JP_VALUE ? i->labels_count : 0;
        f.labels = i->labels;
        pend(op, "labels");
    }
    if (!op->pending) {
        jp_apply__done(op, JP_OUTCOME_SKIPPED, "already as desired");
        return;
    }
    jp_jira_req_t *req = NULL;
    jp_err_t err = jp_jira_issue_edit(op->site, op->issue_key, &f, &req, why, sizeof(why));
    jp_apply__send(op, err, req, why, on_issue_edited);
}

/* ---- issue.delete ------------------------------------------------------------------- */

static void on_issue_deleted(jp_apply_op_t *op, const jp_http_resp_t *resp)
{
    if (resp->err == JP_OK && resp->status == 404) {
        jp_apply__done(op, JP_OUTCOME_SKIPPED, "already deleted");
        return;
    }
    /* 400 (it has subtasks and deleteSubtasks is false) is permanent. */
    if (!jp_apply__ok(op, resp))
        return;
    jp_apply__done(op, JP_OUTCOME_SUCCEEDED, "deleted");
}

static void delete_key(jp_apply_op_t *op, const char *key)
{
    char why[256];
    jp_jira_req_t *req = NULL;
    jp_outcome_set_jira(op->out, "issueKey", key);
    jp_err_t err =
        jp_jira_issue_delete(op->site, key, iss(op)->delete_subtasks, &req, why, sizeof(why));
    jp_apply__send(op, err, req, why, on_issue_deleted);
}

/* ---- issue.transition ---------------------------------------------------------------- */

static void on_transitioned(jp_apply_op_t *op, const jp_http_resp_t *resp)
{
    if (!jp_apply__ok(op, resp))
        return;
    jp_apply__changed(op, "status");
    jp_outcome_set_jira(op->out, "status", op->note ? op->note : iss(op)->status);
    jp_apply__done(op, JP_OUTCOME_SUCCEEDED, "transitioned");
}

static void on_transitions(jp_apply_op_t *op, const jp_http_resp_t *resp)
{
    char why[256];
    jp_jira_transitions_t *t = NULL;
    if (!jp_apply__ok(op, resp))
        return;
    jp_err_t err =
        jp_jira_parse_transitions(resp->status, resp->body, resp->body_len, &t, why, sizeof(why));
    if (err) {
        jp_apply__fail_parse(op, err, why);
        return;
    }
    const jp_jira_transition_t *tr = jp_jira_transition_for_status(t, iss(op)->status);
    if (!tr) {
        jp_jira_transitions_destroy(t);
        jp_apply__fail(op, JP_OUTCOME_FAILED, JP_CLASS_PERMANENT, "no_transition",
                       "no transition from \"%s\" to \"%s\" on %s",
                       op->issue->status ? op->issue->status : "?", iss(op)->status, op->issue_key);
        return;
    }
    free(op->note);
    op->note = tr->to_status ? strdup(tr->to_status) : NULL;
    jp_jira_req_t *req = NULL;
    err = jp_jira_issue_transition(op->site, op->issue_key, tr->id, &req, why, sizeof(why));
    jp_jira_transitions_destroy(t);
    jp_apply__send(op, err, req, why, on_transitioned);
}

static void transition_check(jp_apply_op_t *op)
{
    char why[256];
    const char *cur = op->issue->status;
    if (cur && strcasecmp(cur, iss(op)->status) == 0) {
        jp_outcome_set_jira(op->out, "status", cur);
        jp_apply__done(op, JP_OUTCOME_SKIPPED, "already in that status");
        return;
    }
    jp_jira_req_t *req = NULL;
    jp_err_t err = jp_jira_issue_transitions(op->site, op->issue_key, &req, why, sizeof(why));
    jp_apply__send(op, err, req, why, on_transitions);
}

/* ---- finding the issue of update / delete / transition --------------------------------- */

static void resolved(jp_apply_op_t *op)
{
    switch (op->ev->type) {
    case JP_EVENT_ISSUE_UPDATE:
        if (iss(op)->assignee.state == JP_VALUE)
            jp_apply__user_resolve(op, iss(op)->assignee.value, false, update_diff);
        else
            update_diff(op);
        break;
    case JP_EVENT_ISSUE_DELETE:
        delete_key(op, op->issue_key);
        break;
    default:
        transition_check(op);
        break;
    }
}

static void on_issue_got(jp_apply_op_t *op, const jp_http_resp_t *resp)
{
    char why[256];
    jp_jira_issue_t *is = NULL;
    if (resp->err == JP_OK && resp->status == 404) {
        jp_apply__fail(op, JP_OUTCOME_FAILED, JP_CLASS_PERMANENT, "not_found", "no such issue: %s",
                       iss(op)->key);
        return;
    }
    if (!jp_apply__ok(op, resp))
        return;
    jp_err_t err =
        jp_jira_parse_issue(resp->status, resp->body, resp->body_len, &is, why, sizeof(why));
    if (err) {
        jp_apply__fail_parse(op, err, why);
        return;
    }
    take_issue(op, is);
    resolved(op);
}

static void on_ref_search(jp_apply_op_t *op, const jp_http_resp_t *resp)
{
    int found = search_pick(op, resp, iss(op)->external_ref);
    if (found < 0)
        return;
    if (found) {
        resolved(op);
        return;
    }
    if (op->ev->type == JP_EVENT_ISSUE_DELETE)
        jp_apply__done(op, JP_OUTCOME_SKIPPED, "already deleted (no issue has that externalRef)");
    else
        jp_apply__fail(op, JP_OUTCOME_FAILED, JP_CLASS_PERMANENT, "not_found",
                       "no such issue: none is tagged with externalRef \"%s\"",
                       iss(op)->external_ref);
}

/* ---- entry ---------------------------------------------------------------------------------- */

void jp_apply__issue_start(jp_apply_op_t *op)
{
    const jp_issue_t *i = iss(op);
    if (op->ev->type == JP_EVENT_ISSUE_CREATE) {
        search_ref(op, i->project, on_create_search);
    } else if (!i->key) {
        search_ref(op, NULL, on_ref_search);
    } else if (op->ev->type == JP_EVENT_ISSUE_DELETE) {
        delete_key(op, i->key); /* 404 answers "already deleted": no read needed */
    } else {
        char why[256];
        jp_jira_req_t *req = NULL;
        jp_err_t err = jp_jira_issue_get(op->site, i->key, &req, why, sizeof(why));
        jp_apply__send(op, err, req, why, on_issue_got);
    }
}
