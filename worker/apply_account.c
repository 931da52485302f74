/* apply_account.c - account.create / update / delete / enable / disable
 * through SCIM (and the admin lifecycle API where configured). Every rule
 * reads the user first and writes only what differs. */
#include "apply_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *login_of(const jp_apply_op_t *op)
{
    return op->ev->account.attr[JP_ATTR_LOGIN].value;
}

/* What account.create asks for: the event's attributes, active included
 * (an absent `active` means true, which the decoder already filled in). */
static jp_account_attrs_t create_desired(const jp_apply_op_t *op)
{
    jp_account_attrs_t d = op->ev->account;
    d.active_state = JP_VALUE;
    return d;
}

/* ---- PATCH what differs (create on an existing user, update) -------------- */

static void on_patched(jp_apply_op_t *op, const jp_http_resp_t *resp)
{
    if (!jp_apply__ok(op, resp))
        return;
    jp_apply__commit_pending(op);
    jp_apply__done(op, JP_OUTCOME_SUCCEEDED,
                   op->after_conflict ? "updated (the user existed: found after 409)" : "updated");
}

static void converge(jp_apply_op_t *op, const jp_account_attrs_t *desired)
{
    char why[256];
    json_t *patch = NULL;
    jp_mapping_changes_t changes;
    jp_apply__report_user(op);
    jp_err_t err = jp_mapping_scim_patch(op->a->mapping, desired, op->user->json, &patch, &changes,
                                         why, sizeof(why));
    if (err) {
        jp_apply__fail_parse(op, err, why);
        return;
    }
    if (!patch) {
        const char *d = "already as desired";
        if (op->after_conflict)
            d = "already as desired (found after 409)";
        else if (op->attempt > 1 && op->ev->type == JP_EVENT_ACCOUNT_CREATE)
            d = "already as desired (possibly created by an earlier attempt)";
        jp_apply__done(op, JP_OUTCOME_SKIPPED, d);
        return;
    }
    json_decref(op->pending);
    op->pending = jp_mapping_changes_names(&changes);
    jp_jira_req_t *req = NULL;
    err = jp_jira_scim_user_patch(op->site, op->scim_id, patch, &req, why, sizeof(why));
    json_decref(patch);
    jp_apply__send(op, err, req, why, on_patched);
}

/* ---- account.create ---------------------------------------------------------------- */

static void create_found(jp_apply_op_t *op);

static void on_created(jp_apply_op_t *op, const jp_http_resp_t *resp)
{
    char why[256];
    if (resp->err == JP_OK && resp->status == 409 && !op->after_conflict) {
        /* Someone (or an earlier attempt) created it meanwhile: converge. */
        char msg[512];
        jp_apply__resp_message(op, resp, msg, sizeof(msg));
        free(op->note);
        op->note = strdup(msg);
        op->after_conflict = true;
        jp_apply__user_resolve(op, login_of(op), true, create_found);
        return;
    }
    if (!jp_apply__ok(op, resp))
        return;
    jp_jira_scim_user_t *u = NULL;
    jp_err_t err =
        jp_jira_parse_scim_user(resp->status, resp->body, resp->body_len, &u, why, sizeof(why));
    if (err) {
        jp_apply__fail_parse(op, err, why);
        return;
    }
    jp_apply__user_take(op, u);
    jp_apply__user_remember(op);
    jp_apply__report_user(op);
    jp_apply__commit_pending(op);
    jp_apply__done(op, JP_OUTCOME_SUCCEEDED, "created");
}

/* The names a create writes: every written attribute with a value, and
 * active. */
static json_t *create_names(const jp_apply_op_t *op, const jp_account_attrs_t *d)
{
    json_t *names = json_array();
    for (int i = 0; names && i < JP_ATTR__COUNT; i++)
        if (d->attr[i].state == JP_VALUE && jp_mapping_writes(op->a->mapping, (jp_attr_t)i))
            json_array_append_new(names, json_string(jp_attr_name((jp_attr_t)i)));
    if (names)
        json_array_append_new(names, json_string("active"));
    return names;
}

static void create_found(jp_apply_op_t *op)
{
    char why[256];
    jp_account_attrs_t d = create_desired(op);
    if (!op->user_absent) {
        converge(op, &d);
        return;
    }
    if (op->after_conflict) {
        /* 409 but no user by that name: the conflict is elsewhere (e.g. the
         * email belongs to another account); waiting will not fix it. */
        jp_apply__fail(op, JP_OUTCOME_FAILED, JP_CLASS_PERMANENT, "http_409",
                       "%s (and no user named \"%s\" exists)", op->note ? op->note : "409",
                       login_of(op));
        return;
    }
    json_t *body = NULL;
    jp_err_t err = jp_mapping_scim_user_for_create(op->a->mapping, &d, &body, why, sizeof(why));
    if (err) {
        jp_apply__send(op, err, NULL, why, NULL);
        return;
    }
    json_decref(op->pending);
    op->pending = create_names(op, &d);
    jp_jira_req_t *req = NULL;
    err = jp_jira_scim_user_create(op->site, body, &req, why, sizeof(why));
    json_decref(body);
    jp_apply__send(op, err, req, why, on_created);
}

/* ---- account.update ------------------------------------------------------------------ */

static void update_found(jp_apply_op_t *op)
{
    if (op->user_absent) {
        jp_apply__fail(op, JP_OUTCOME_FAILED, JP_CLASS_PERMANENT, "not_found",
                       "no such account: no SCIM user named \"%s\"", login_of(op));
        return;
    }
    converge(op, &op->ev->account);
}

/* ---- account.delete -------------------------------------------------------------------- */

static void delete_found(jp_apply_op_t *op);

static void on_deleted(jp_apply_op_t *op, const jp_http_resp_t *resp)
{
    if (resp->err == JP_OK && resp->status == 404) {
        if (jp_apply__user_stale(op, delete_found))
            return;
        jp_apply__user_forget(op);
        jp_apply__done(op, JP_OUTCOME_SKIPPED, "already deleted");
        return;
    }
    if (!jp_apply__ok(op, resp))
        return;
    jp_apply__user_forget(op);
    jp_apply__done(op, JP_OUTCOME_SUCCEEDED, "deleted");
}

static void delete_found(jp_apply_op_t *op)
{
    char why[256];
    if (op->user_absent) {
        jp_apply__user_forget(op);
        jp_apply__done(op, JP_OUTCOME_SKIPPED, "already deleted");
        return;
    }
    jp_apply__report_user(op);
    jp_jira_req_t *req = NULL;
    jp_err_t err = jp_jira_scim_user_delete(op->site, op->scim_id, &req, why, sizeof(why));
    jp_apply__send(op, err, req, why, on_deleted);
}

/* ---- account.enable / disable ------------------------------------------------------------ */

static bool want_active(const jp_apply_op_t *op)
{
    return op->ev->type == JP_EVENT_ACCOUNT_ENABLE;
}

static void on_lifecycle(jp_apply_op_t *op, const jp_http_resp_t *resp)
{
    if (!jp_apply__ok(op, resp))
        return;
    jp_apply__changed(op, "active");
    jp_apply__done(op, JP_OUTCOME_SUCCEEDED, want_active(op) ? "enabled" : "disabled");
}

static void lifecycle_found(jp_apply_op_t *op)
{
    char why[256];
    bool on = want_active(op);
    if (op->user_absent) {
        jp_apply__fail(op, JP_OUTCOME_FAILED, JP_CLASS_PERMANENT, "not_found",
                       "no such account: no SCIM user named \"%s\"", login_of(op));
        return;
    }
    jp_apply__report_user(op);
    if (op->user->active_present && op->user->active == on) {
        jp_apply__done(op, JP_OUTCOME_SKIPPED, on ? "already enabled" : "already disabled");
        return;
    }
    jp_jira_req_t *req = NULL;
    jp_err_t err;
    if (op->site->account_lifecycle == JP_CONFIG_LIFECYCLE_ADMIN) {
        if (!op->account_id) {
            jp_apply__fail(op, JP_OUTCOME_FAILED, JP_CLASS_PERMANENT, "no_account_id",
                           "the SCIM user \"%s\" has no Atlassian account id to %s", login_of(op),
                           on ? "enable" : "disable");
            return;
        }
        err = on ? jp_jira_admin_enable(op->site, op->account_id, &req, why, sizeof(why))
                 : jp_jira_admin_disable(op->site, op->account_id, NULL, &req, why, sizeof(why));
    } else {
        err = jp_jira_scim_user_set_active(op->site, op->scim_id, on, &req, why, sizeof(why));
    }
    jp_apply__send(op, err, req, why, on_lifecycle);
}

/* ---- entry ------------------------------------------------------------------------------------
 */

void jp_apply__account_start(jp_apply_op_t *op)
{
    const char *login = login_of(op);
    switch (op->ev->type) {
    case JP_EVENT_ACCOUNT_CREATE:
        jp_apply__user_resolve(op, login, true, create_found);
        break;
    case JP_EVENT_ACCOUNT_UPDATE:
        jp_apply__user_resolve(op, login, true, update_found);
        break;
    case JP_EVENT_ACCOUNT_DELETE:
        jp_apply__user_resolve(op, login, false, delete_found);
        break;
    default: /* enable, disable: the SCIM `active` tells whether to write */
        jp_apply__user_resolve(op, login, true, lifecycle_found);
        break;
    }
}
