/* apply_entitlement.c - entitlement.grant / revoke: group membership (SCIM
 * groups or Jira REST /group/user, per site) and project role actors. A
 * grant already held and a revoke of something not held are SKIPPED; the
 * membership is read before anything is written. */
#include "apply_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CHANGED_NAME "entitlement"

static bool granting(const jp_apply_op_t *op)
{
    return op->ev->type == JP_EVENT_ENTITLEMENT_GRANT;
}

static const jp_entitlement_t *ent(const jp_apply_op_t *op)
{
    return &op->ev->entitlement;
}

static bool need_user(jp_apply_op_t *op)
{
    if (op->user_absent) {
        jp_apply__fail(op, JP_OUTCOME_FAILED, JP_CLASS_PERMANENT, "not_found",
                       "no such account: no SCIM user named \"%s\"", ent(op)->login);
        return false;
    }
    return true;
}

static bool need_account_id(jp_apply_op_t *op)
{
    if (!need_user(op))
        return false;
    if (!op->account_id) {
        jp_apply__fail(op, JP_OUTCOME_FAILED, JP_CLASS_PERMANENT, "no_account_id",
                       "the SCIM user \"%s\" has no Atlassian account id", ent(op)->login);
        return false;
    }
    return true;
}

/* Already in the state asked for? Finishes SKIPPED and returns true. */
static bool already(jp_apply_op_t *op, bool held, const char *what)
{
    char detail[64];
    if (held != granting(op))
        return false;
    snprintf(detail, sizeof(detail), "%s %s", held ? "already" : "not", what);
    jp_apply__done(op, JP_OUTCOME_SKIPPED, detail);
    return true;
}

static void written(jp_apply_op_t *op, const char *what)
{
    char detail[64];
    snprintf(detail, sizeof(detail), "%s %s", granting(op) ? "added as" : "removed as", what);
    jp_apply__changed(op, CHANGED_NAME);
    jp_apply__done(op, JP_OUTCOME_SUCCEEDED, detail);
}

/* ---- SCIM groups -------------------------------------------------------------- */

static void scim_group_user(jp_apply_op_t *op);

static void on_scim_group_patched(jp_apply_op_t *op, const jp_http_resp_t *resp)
{
    /* PATCH /Groups answers 404 when the group or the user is gone. */
    if (resp->err == JP_OK && resp->status == 404 && jp_apply__user_stale(op, scim_group_user))
        return;
    if (!jp_apply__ok(op, resp))
        return;
    written(op, "a member");
}

static void scim_group_write(jp_apply_op_t *op, bool member)
{
    char why[256];
    jp_jira_req_t *req = NULL;
    jp_err_t err;
    if (already(op, member, "a member"))
        return;
    if (granting(op))
        err = jp_jira_scim_group_add_member(op->site, op->group_id, op->scim_id, &req, why,
                                            sizeof(why));
    else
        err = jp_jira_scim_group_remove_member(op->site, op->group_id, op->scim_id, &req, why,
                                               sizeof(why));
    jp_apply__send(op, err, req, why, on_scim_group_patched);
}

static void on_scim_group_got(jp_apply_op_t *op, const jp_http_resp_t *resp)
{
    char why[256];
    jp_jira_scim_group_t *g = NULL;
    if (!jp_apply__ok(op, resp))
        return;
    jp_err_t err =
        jp_jira_parse_scim_group(resp->status, resp->body, resp->body_len, &g, why, sizeof(why));
    if (err) {
        jp_apply__fail_parse(op, err, why);
        return;
    }
    jp_jira_scim_group_destroy(op->group);
    op->group = g;
    scim_group_write(op, jp_jira_scim_group_has_member(g, op->scim_id));
}

/* Whether the user's SCIM resource lists the group. */
static bool user_lists_group(const jp_apply_op_t *op)
{
    size_t i;
    json_t *g;
    json_array_foreach(json_object_get(op->user->json, "groups"), i, g)
    {
        const char *v = json_string_value(json_object_get(g, "value"));
        if (v && strcmp(v, op->group_id) == 0)
            return true;
    }
    return false;
}

static void scim_group_user(jp_apply_op_t *op)
{
    if (!need_user(op))
        return;
    jp_apply__report_user(op);
    /* Membership from what is at hand: the group's members when the list
     * answer carried them, else the user's groups, else read the group. */
    if (op->group_members_known) {
        scim_group_write(op, jp_jira_scim_group_has_member(op->group, op->scim_id));
    } else if (op->user && json_is_array(json_object_get(op->user->json, "groups"))) {
        scim_group_write(op, user_lists_group(op));
    } else {
        char why[256];
        jp_jira_req_t *req = NULL;
        jp_err_t err = jp_jira_scim_group_get(op->site, op->group_id, &req, why, sizeof(why));
        jp_apply__send(op, err, req, why, on_scim_group_got);
    }
}

/* The group of the list named `name`: exact first, then ignoring ASCII case. */
static const json_t *pick_group(const jp_jira_scim_list_t *l, const char *name)
{
    size_t i;
    json_t *r;
    for (int pass = 0; pass < 2; pass++)
        json_array_foreach(l->resources, i, r)
        {
            const char *dn = json_string_value(json_object_get(r, "displayName"));
            if (dn && (pass == 0 ? strcmp(dn, name) : strcasecmp(dn, name)) == 0)
                return r;
        }
    return NULL;
}

static void on_scim_group_found(jp_apply_op_t *op, const jp_http_resp_t *resp)
{
    char why[256];
    jp_jira_scim_list_t *l = NULL;
    if (!jp_apply__ok(op, resp))
        return;
    jp_err_t err =
        jp_jira_parse_scim_list(resp->status, resp->body, resp->body_len, &l, why, sizeof(why));
    if (err) {
        jp_apply__fail_parse(op, err, why);
        return;
    }
    const json_t *r = pick_group(l, ent(op)->group);
    if (!r) {
        jp_jira_scim_list_destroy(l);
        jp_apply__fail(op, JP_OUTCOME_FAILED, JP_CLASS_PERMANENT, "not_found",
                       "no such group: no SCIM group named \"%s\"", ent(op)->group);
        return;
    }
    bool has_members = json_is_array(json_object_get(r, "members"));
    err = jp_jira_scim_group_from_json(r, &op->group, why, sizeof(why));
    jp_jira_scim_list_destroy(l);
    if (err) {
        jp_apply__fail_parse(op, err, why);
        return;
    }
    free(op->group_id);
    op->group_id = strdup(op->group->id);
    jp_outcome_set_jira(op->out, "groupId", op->group_id);
    op->group_members_known = has_members;
    jp_apply__user_resolve(op, ent(op)->login, false, scim_group_user);
}

/* ---- Jira REST groups ------------------------------------------------------------ */

static void jira_group_user(jp_apply_op_t *op);

static void on_jira_group_written(jp_apply_op_t *op, const jp_http_resp_t *resp)
{
    /* Jira answers 400 "... is already a member" / "... is not a member"
     * rather than offering a cheap membership read: both mean converged. */
    if (jp_apply__resp_says(op, resp, 400, granting(op) ? "already a member" : "not a member")) {
        jp_apply__done(op, JP_OUTCOME_SKIPPED, granting(op) ? "already a member" : "not a member");
        return;
    }
    if (resp->err == JP_OK && resp->status == 404 && jp_apply__user_stale(op, jira_group_user))
        return;
    if (!jp_apply__ok(op, resp))
        return;
    written(op, "a member");
}

static void jira_group_user(jp_apply_op_t *op)
{
    char why[256];
    jp_jira_req_t *req = NULL;
    jp_err_t err;
    if (!need_account_id(op))
        return;
    jp_apply__report_user(op);
    if (granting(op))
        err =
            jp_jira_group_add_user(op->site, op->group_id, op->account_id, &req, why, sizeof(why));
    else
        err = jp_jira_group_remove_user(op->site, op->group_id, op->account_id, &req, why,
                                        sizeof(why));
    jp_apply__send(op, err, req, why, on_jira_group_written);
}

static void on_jira_group_found(jp_apply_op_t *op, const jp_http_resp_t *resp)
{
    char why[256];
    jp_jira_groups_t *g = NULL;
    if (!jp_apply__ok(op, resp))
        return;
    jp_err_t err =
        jp_jira_parse_groups(resp->status, resp->body, resp->body_len, &g, why, sizeof(why));
    if (err) {
        jp_apply__fail_parse(op, err, why);
        return;
    }
    const char *gid = jp_jira_group_id(g, ent(op)->group);
    if (!gid) {
        jp_jira_groups_destroy(g);
        jp_apply__fail(op, JP_OUTCOME_FAILED, JP_CLASS_PERMANENT, "not_found",
                       "no such group: no Jira group named \"%s\"", ent(op)->group);
        return;
    }
    free(op->group_id);
    op->group_id = strdup(gid);
    jp_jira_groups_destroy(g);
    jp_outcome_set_jira(op->out, "groupId", op->group_id);
    jp_apply__user_resolve(op, ent(op)->login, false, jira_group_user);
}

/* ---- project roles ----------------------------------------------------------------- */

static void role_user(jp_apply_op_t *op);

static void on_role_written(jp_apply_op_t *op, const jp_http_resp_t *resp)
{
    /* Raced with another writer between the read and the write. */
    if (granting(op) && jp_apply__resp_says(op, resp, 400, "already a member")) {
        jp_apply__done(op, JP_OUTCOME_SKIPPED, "already an actor");
        return;
    }
    if (resp->err == JP_OK && resp->status == 404) {
        if (jp_apply__user_stale(op, role_user))
            return;
        if (!granting(op) && jp_apply__resp_says(op, resp, 404, "not a member")) {
            jp_apply__done(op, JP_OUTCOME_SKIPPED, "not an actor");
            return;
        }
    }
    if (!jp_apply__ok(op, resp))
        return;
    written(op, "an actor");
}

static void on_role_got(jp_apply_op_t *op, const jp_http_resp_t *resp)
{
    char why[256];
    jp_jira_role_t *r = NULL;
    if (!jp_apply__ok(op, resp))
        return;
    jp_err_t err =
        jp_jira_parse_project_role(resp->status, resp->body, resp->body_len, &r, why, sizeof(why));
    if (err) {
        jp_apply__fail_parse(op, err, why);
        return;
    }
    bool held = jp_jira_role_has_user(r, op->account_id);
    jp_jira_role_destroy(r);
    if (already(op, held, "an actor"))
        return;
    jp_jira_req_t *req = NULL;
    const jp_entitlement_t *e = ent(op);
    if (granting(op))
        err = jp_jira_project_role_add_user(op->site, e->project, op->role_id, op->account_id, &req,
                                            why, sizeof(why));
    else
        err = jp_jira_project_role_remove_user(op->site, e->project, op->role_id, op->account_id,
                                               &req, why, sizeof(why));
    jp_apply__send(op, err, req, why, on_role_written);
}

static void role_user(jp_apply_op_t *op)
{
    char why[256];
    jp_jira_req_t *req = NULL;
    if (!need_account_id(op))
        return;
    jp_apply__report_user(op);
    jp_err_t err =
        jp_jira_project_role_get(op->site, ent(op)->project, op->role_id, &req, why, sizeof(why));
    jp_apply__send(op, err, req, why, on_role_got);
}

static void on_roles(jp_apply_op_t *op, const jp_http_resp_t *resp)
{
    char why[256];
    jp_jira_roles_t *r = NULL;
    if (!jp_apply__ok(op, resp))
        return;
    jp_err_t err =
        jp_jira_parse_project_roles(resp->status, resp->body, resp->body_len, &r, why, sizeof(why));
    if (err) {
        jp_apply__fail_parse(op, err, why);
        return;
    }
    op->role_id = jp_jira_role_id(r, ent(op)->role);
    jp_jira_roles_destroy(r);
    if (op->role_id < 0) {
        jp_apply__fail(op, JP_OUTCOME_FAILED, JP_CLASS_PERMANENT, "not_found",
                       "no such role: project %s has no role named \"%s\"", ent(op)->project,
                       ent(op)->role);
        return;
    }
    char id[32];
    snprintf(id, sizeof(id), "%" PRId64, op->role_id);
    jp_outcome_set_jira(op->out, "roleId", id);
    jp_apply__user_resolve(op, ent(op)->login, false, role_user);
}

/* ---- entry ------------------------------------------------------------------------------ */

void jp_apply__entitlement_start(jp_apply_op_t *op)
{
    char why[256];
    jp_jira_req_t *req = NULL;
    jp_err_t err;
    const jp_entitlement_t *e = ent(op);
    if (e->kind == JP_ENTITLEMENT_PROJECT_ROLE) {
        err = jp_jira_project_roles(op->site, e->project, &req, why, sizeof(why));
        jp_apply__send(op, err, req, why, on_roles);
    } else if (op->site->group_membership == JP_CONFIG_GROUPS_JIRA) {
        err = jp_jira_group_find(op->site, e->group, &req, why, sizeof(why));
        jp_apply__send(op, err, req, why, on_jira_group_found);
    } else {
        err = jp_jira_scim_group_find(op->site, e->group, &req, why, sizeof(why));
        jp_apply__send(op, err, req, why, on_scim_group_found);
    }
}
