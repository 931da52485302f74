/* recon_phases.c - what each phase of a run reads from Jira and emits (see recon_int.h for the
 * engine these steps run on, include/jiraprov/recon.h for the checkpoint positions).
 *
 *   accounts  SCIM /Users pages (100 each, a SCIM eq filter for userName/externalId) through
 *             the window; every page is one batch: its accounts, in SCIM order.
 *   groups    Jira's group list (/group/bulk, 50 a page) one page at a time; each group's
 *             members (/group/member, 50 a page) through the window; a part (up to
 *             recon.members_per_record members) is one batch. A group that answers 404 was
 *             deleted meanwhile and is skipped (a tracked run then reports it removed).
 *   roles     projects by key (/project/search), for each its roles (sorted by id) fetched
 *             through the window; a role is one batch (all its parts).
 *   removals  the previous fingerprints this run has not seen, 500 scanned at a time, each
 *             scan one batch of deletes.
 * Filtered runs collect the accountIds of the accounts they select in a Redis set; the
 * memberships they emit keep only those (users), and every group actor of a role. */
#include "recon_int.h"

#include "jiraprov/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fail_nomem(jp_recon_run_t *run)
{
    jp_recon__fail(run, JP_OUTCOME_RETRY, JP_CLASS_FATAL, "out_of_memory", "out of memory");
}

static bool is_2xx(long status)
{
    return status >= 200 && status < 300;
}

static bool is_user(const json_t *member)
{
    const char *t = json_string_value(json_object_get(member, "type"));
    return t && !strcmp(t, "user");
}

static bool filtered(const jp_recon_run_t *run)
{
    return run->ck.def.mode == JP_RECON_FILTERED;
}

/* Effective members per record: a whole number of member pages. */
static int64_t per_record(const jp_recon_run_t *run)
{
    int64_t pp = run->r->cfg->recon.members_per_record / JP_RECON__REST_PAGE;
    return (pp < 1 ? 1 : pp) * JP_RECON__REST_PAGE;
}

static int64_t ceil_div(int64_t a, int64_t b)
{
    return a <= 0 ? 0 : (a + b - 1) / b;
}

/* ---- accounts -------------------------------------------------------------------------------- */

static jp_err_t acc_build(jp_recon_run_t *run, int64_t index, jp_jira_req_t **req, char *errstr,
                          size_t errstr_size)
{
    const char *value = NULL;
    const char *attr = filtered(run) ? jp_recon_filter_scim(&run->ck.def.cond, &value) : NULL;
    long start = (long)(1 + index * JP_RECON__SCIM_PAGE);
    if (attr)
        return jp_jira_scim_users_filter_page(run->site, attr, value, start, JP_RECON__SCIM_PAGE,
                                              req, errstr, errstr_size);
    return jp_jira_scim_users_page(run->site, start, JP_RECON__SCIM_PAGE, req, errstr, errstr_size);
}

static void acc_cont(jp_recon_run_t *run)
{
    run->ck.page = run->win.next_proc + 1;
    jp_recon_batch_t *b = run->cur;
    run->cur = NULL;
    jp_recon__batch_close(run, b);
    jp_recon__win_next(run);
}

static void acc_process(jp_recon_run_t *run, int64_t index, long status, const char *body,
                        size_t len)
{
    if (!is_2xx(status)) {
        jp_recon__fail_status(run, JP_JIRA_API_SCIM, status, body, len);
        return;
    }
    char why[512];
    jp_jira_scim_list_t *l = NULL;
    jp_err_t err = jp_jira_parse_scim_list(status, body, len, &l, why, sizeof(why));
    if (err) {
        jp_recon__fail_parse(run, err, why);
        return;
    }
    /* A short page is the last; otherwise totalResults says how many pages there are. */
    int64_t limit = (int64_t)l->count < JP_RECON__SCIM_PAGE
                        ? index + 1
                        : ceil_div(l->total_results, JP_RECON__SCIM_PAGE);
    jp_recon__win_limit(run, limit > index + 1 ? limit : index + 1);

    jp_recon_ckpt_t *ck = &run->ck;
    bool with_accounts = (ck->def.resources & JP_RECON_ACCOUNTS) != 0;
    bool need_match = filtered(run) && (ck->def.resources & JP_RECON_ENTITLEMENTS);
    size_t n = 0, nkeep = 0, nids = 0;
    jp_recon_item_t *items = calloc(l->count ? l->count : 1, sizeof(*items));
    char **keep = calloc(l->count ? l->count : 1, sizeof(*keep));
    char **ids = calloc(l->count ? l->count : 1, sizeof(*ids));
    jp_recon_batch_t *b = items && keep && ids ? jp_recon__batch_open(run) : NULL;
    size_t i;
    json_t *res;
    json_array_foreach(l->resources, i, res)
    {
        if (!b)
            break;
        ck->counts.read++;
        if (filtered(run) && !jp_recon_filter_match(&ck->def.cond, run->r->mapping, res))
            continue;
        jp_recon_item_t it;
        err = jp_recon_account_item(run->r->mapping, run->r->key_attr, run->site->name, res, &it,
                                    why, sizeof(why));
        if (err == JP_ERR_NOMEM) {
            b = NULL;
            break;
        }
        if (err) {
            /* Skipped, not lost: a tracked run keeps its previous fingerprint. */
            const char *id = json_string_value(json_object_get(res, "id"));
            ck->counts.errors++;
            jp_log(JP_LOG_WARN, "recon", JP_LOG_NO_CTX, "reconciliation %s: account skipped: %s",
                   ck->def.recon_id, why);
            if (id && (keep[nkeep] = malloc(strlen(id) + 3)))
                snprintf(keep[nkeep++], strlen(id) + 3, "a:%s", id);
            continue;
        }
        const char *aid = json_string_value(json_object_get(it.content, "accountId"));
        if (need_match && aid && (ids[nids] = strdup(aid)))
            nids++;
        if (with_accounts)
            items[n++] = it;
        else
            jp_recon_item_clear(&it);
    }
    jp_jira_scim_list_destroy(l);
    if (!b) {
        for (size_t k = 0; k < n; k++)
            jp_recon_item_clear(&items[k]);
        for (size_t k = 0; k < nkeep; k++)
            free(keep[k]);
        for (size_t k = 0; k < nids; k++)
            free(ids[k]);
        free(items);
        free(keep);
        free(ids);
        fail_nomem(run);
        return;
    }
    if (need_match)
        jp_recon__match_add(run, b, ids, nids);
    else
        free(ids);
    run->cur = b;
    jp_recon__emit(run, b, items, n, keep, nkeep, acc_cont);
}

static void acc_done(jp_recon_run_t *run)
{
    jp_recon__phase_done(run);
}

void jp_recon__accounts_begin(jp_recon_run_t *run)
{
    jp_recon__win_start(run, acc_build, acc_process, acc_done, run->ck.page, -1);
}

/* ---- entitlements: shared ---------------------------------------------------------------- */

typedef void members_kept_cb(jp_recon_run_t *run);

/* Keeps in run->members only the users in the match set (and every group entry). */
static void keep_matched(jp_recon_run_t *run, const bool *in, void *opaque)
{
    members_kept_cb *cont = (members_kept_cb *)opaque;
    if (!in)
        return; /* the run failed */
    json_t *kept = json_array();
    size_t i, k = 0;
    json_t *m;
    json_array_foreach(run->members, i, m)
    {
        bool user = is_user(m);
        if (!user || in[k])
            json_array_append(kept, m);
        if (user)
            k++;
    }
    json_decref(run->members);
    run->members = kept;
    cont(run);
}

/* In a filtered run, drops the members that are not among the selected accounts, then cont. */
static void filter_members(jp_recon_run_t *run, members_kept_cb *cont)
{
    if (!filtered(run)) {
        cont(run);
        return;
    }
    size_t n = json_array_size(run->members), k = 0;
    const char **ids = calloc(n ? n : 1, sizeof(*ids));
    if (!ids) {
        fail_nomem(run);
        return;
    }
    size_t i;
    json_t *m;
    json_array_foreach(run->members, i, m)
    {
        const char *aid = json_string_value(json_object_get(m, "accountId"));
        if (aid && is_user(m))
            ids[k++] = aid;
    }
    jp_recon__match_check(run, ids, k, keep_matched, (void *)cont);
    free(ids);
}

/* ---- groups -------------------------------------------------------------------------------- */

static void group_next(jp_recon_run_t *run);

static void groups_listed(jp_recon_run_t *run, jp_recon_call_t *c, const jp_http_resp_t *resp)
{
    if (!jp_recon__ok(run, c, resp))
        return;
    char why[512];
    jp_jira_groups_destroy(run->groups);
    run->groups = NULL;
    jp_err_t err = jp_jira_parse_groups(resp->status, resp->body, resp->body_len, &run->groups, why,
                                        sizeof(why));
    if (err) {
        jp_recon__fail_parse(run, err, why);
        return;
    }
    group_next(run);
}

static void groups_list(jp_recon_run_t *run)
{
    jp_jira_req_t *req = NULL;
    char why[512];
    jp_err_t err = jp_jira_groups_page(run->site, (long)(run->ck.page * JP_RECON__REST_PAGE),
                                       JP_RECON__REST_PAGE, &req, why, sizeof(why));
    jp_recon__call(run, err, req, why, groups_listed, run->ck.page);
}

static jp_err_t member_build(jp_recon_run_t *run, int64_t index, jp_jira_req_t **req, char *errstr,
                             size_t errstr_size)
{
    return jp_jira_group_members_page(run->site, run->groups->items[run->ck.item].group_id,
                                      (long)(index * JP_RECON__REST_PAGE), JP_RECON__REST_PAGE, req,
                                      errstr, errstr_size);
}

static void group_cont(jp_recon_run_t *run)
{
    jp_recon_ckpt_t *ck = &run->ck;
    if (run->part_last) {
        ck->item++;
        ck->sub = 0;
        ck->part = 1;
    } else {
        ck->sub = run->win.next_proc + 1;
        ck->part++;
    }
    jp_recon_batch_t *b = run->cur;
    run->cur = NULL;
    jp_recon__batch_close(run, b);
    jp_recon__win_next(run);
}

static void group_emit(jp_recon_run_t *run)
{
    jp_recon_ckpt_t *ck = &run->ck;
    const jp_jira_group_ref_t *g = &run->groups->items[ck->item];
    char why[256];
    jp_recon_item_t *it = calloc(1, sizeof(*it));
    json_t *members = run->members;
    run->members = json_array();
    jp_recon_batch_t *b = it && run->members ? jp_recon__batch_open(run) : NULL;
    if (!b || jp_recon_group_item(run->site->name, g->group_id, g->name, filtered(run), members,
                                  ck->part, run->parts, it, why, sizeof(why)) != JP_OK) {
        free(it);
        fail_nomem(run);
        return;
    }
    ck->counts.read++;
    run->cur = b;
    jp_recon__emit(run, b, it, 1, NULL, 0, group_cont);
}

static void member_process(jp_recon_run_t *run, int64_t index, long status, const char *body,
                           size_t len)
{
    if (status == 404) { /* deleted while we read it */
        run->group_gone = true;
        jp_recon__win_limit(run, index + 1);
        jp_recon__win_next(run);
        return;
    }
    if (!is_2xx(status)) {
        jp_recon__fail_status(run, JP_JIRA_API_REST, status, body, len);
        return;
    }
    char why[512];
    jp_jira_users_t *u = NULL;
    jp_err_t err = jp_jira_parse_users(status, body, len, &u, why, sizeof(why));
    if (err) {
        jp_recon__fail_parse(run, err, why);
        return;
    }
    int64_t limit = u->is_last ? index + 1 : ceil_div(u->total, JP_RECON__REST_PAGE);
    if (limit < index + 1 + (u->is_last ? 0 : 1))
        limit = index + 1 + (u->is_last ? 0 : 1);
    jp_recon__win_limit(run, limit);
    run->total = u->total;
    for (size_t i = 0; i < u->count; i++) {
        json_t *m = jp_recon_member_user(&u->items[i]);
        if (!m || json_array_append_new(run->members, m) != 0) {
            jp_jira_users_destroy(u);
            fail_nomem(run);
            return;
        }
    }
    jp_jira_users_destroy(u);
    int64_t per = per_record(run), pages = per / JP_RECON__REST_PAGE;
    run->part_last = index + 1 >= limit;
    if (!run->part_last && (index + 1) % pages != 0) {
        jp_recon__win_next(run); /* the part goes on */
        return;
    }
    run->parts = ceil_div(run->total, per);
    if (run->parts < run->ck.part)
        run->parts = run->ck.part;
    filter_members(run, group_emit);
}

static void member_done(jp_recon_run_t *run)
{
    jp_recon_ckpt_t *ck = &run->ck;
    if (run->group_gone) {
        ck->item++;
        ck->sub = 0;
        ck->part = 1;
    }
    group_next(run);
}

static void group_next(jp_recon_run_t *run)
{
    jp_recon_ckpt_t *ck = &run->ck;
    if (jp_recon__stopped(run))
        return;
    if (ck->item >= (int64_t)run->groups->count) {
        bool last = run->groups->is_last || run->groups->count == 0;
        jp_jira_groups_destroy(run->groups);
        run->groups = NULL;
        if (last) {
            jp_recon__phase_done(run);
            return;
        }
        ck->page++;
        ck->item = ck->sub = 0;
        ck->part = 1;
        groups_list(run);
        return;
    }
    run->group_gone = false;
    run->total = -1;
    json_decref(run->members);
    if (!(run->members = json_array())) {
        fail_nomem(run);
        return;
    }
    jp_recon__win_start(run, member_build, member_process, member_done, ck->sub, -1);
}

void jp_recon__groups_begin(jp_recon_run_t *run)
{
    groups_list(run);
}

/* ---- project roles ------------------------------------------------------------------------ */

static void project_next(jp_recon_run_t *run);

static int role_cmp(const void *a, const void *b)
{
    const jp_jira_role_ref_t *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

static jp_err_t role_build(jp_recon_run_t *run, int64_t index, jp_jira_req_t **req, char *errstr,
                           size_t errstr_size)
{
    return jp_jira_project_role_get(run->site, run->projects->items[run->ck.item].key,
                                    run->roles->items[index].id, req, errstr, errstr_size);
}

static void role_cont(jp_recon_run_t *run)
{
    run->ck.sub = run->win.next_proc + 1;
    jp_recon_batch_t *b = run->cur;
    run->cur = NULL;
    jp_recon__batch_close(run, b);
    jp_recon__win_next(run);
}

static void role_emit(jp_recon_run_t *run)
{
    jp_recon_ckpt_t *ck = &run->ck;
    const char *project = run->projects->items[ck->item].key;
    int64_t per = per_record(run), n = (int64_t)json_array_size(run->members);
    int64_t parts = n ? ceil_div(n, per) : 1;
    jp_recon_item_t *items = calloc((size_t)parts, sizeof(*items));
    jp_recon_batch_t *b = items ? jp_recon__batch_open(run) : NULL;
    if (!b) {
        free(items);
        fail_nomem(run);
        return;
    }
    char why[256];
    for (int64_t p = 0; p < parts; p++) {
        json_t *slice = json_array();
        for (int64_t k = p * per; slice && k < n && k < (p + 1) * per; k++)
            json_array_append(slice, json_array_get(run->members, (size_t)k));
        if (!slice || jp_recon_role_item(run->site->name, project, run->role, filtered(run), slice,
                                         p + 1, parts, &items[p], why, sizeof(why)) != JP_OK) {
            for (int64_t q = 0; q < p; q++)
                jp_recon_item_clear(&items[q]);
            free(items);
            fail_nomem(run);
            return;
        }
    }
    ck->counts.read += parts;
    jp_jira_role_destroy(run->role);
    run->role = NULL;
    run->cur = b;
    jp_recon__emit(run, b, items, (size_t)parts, NULL, 0, role_cont);
}

static void role_process(jp_recon_run_t *run, int64_t index, long status, const char *body,
                         size_t len)
{
    if (status == 404) { /* the role left the project meanwhile */
        run->ck.sub = index + 1;
        jp_recon__win_next(run);
        return;
    }
    if (!is_2xx(status)) {
        jp_recon__fail_status(run, JP_JIRA_API_REST, status, body, len);
        return;
    }
    char why[512];
    jp_jira_role_destroy(run->role);
    run->role = NULL;
    jp_err_t err = jp_jira_parse_project_role(status, body, len, &run->role, why, sizeof(why));
    if (err) {
        jp_recon__fail_parse(run, err, why);
        return;
    }
    json_decref(run->members);
    run->members = json_array();
    const jp_jira_role_t *role = run->role;
    for (size_t i = 0; run->members && i < role->user_count; i++)
        json_array_append_new(run->members, jp_recon_member_actor(role->users[i]));
    for (size_t i = 0; run->members && i < role->group_count; i++)
        json_array_append_new(run->members,
                              jp_recon_member_group(role->groups[i], role->group_names[i]));
    if (!run->members) {
        fail_nomem(run);
        return;
    }
    filter_members(run, role_emit);
}

static void role_done(jp_recon_run_t *run)
{
    jp_recon_ckpt_t *ck = &run->ck;
    if (ck->sub >= (int64_t)run->roles->count) {
        ck->item++;
        ck->sub = 0;
    }
    jp_jira_roles_destroy(run->roles);
    run->roles = NULL;
    project_next(run);
}

static void roles_listed(jp_recon_run_t *run, jp_recon_call_t *c, const jp_http_resp_t *resp)
{
    if (resp->err == JP_OK && resp->status == 404) { /* the project went away */
        run->ck.item++;
        run->ck.sub = 0;
        project_next(run);
        return;
    }
    if (!jp_recon__ok(run, c, resp))
        return;
    char why[512];
    jp_jira_roles_destroy(run->roles);
    run->roles = NULL;
    jp_err_t err = jp_jira_parse_project_roles(resp->status, resp->body, resp->body_len,
                                               &run->roles, why, sizeof(why));
    if (err) {
        jp_recon__fail_parse(run, err, why);
        return;
    }
    /* One order on every read, so that a resumed run numbers the roles as before. */
    qsort(run->roles->items, run->roles->count, sizeof(*run->roles->items), role_cmp);
    jp_recon__win_start(run, role_build, role_process, role_done, run->ck.sub,
                        (int64_t)run->roles->count);
}

static void projects_listed(jp_recon_run_t *run, jp_recon_call_t *c, const jp_http_resp_t *resp)
{
    if (!jp_recon__ok(run, c, resp))
        return;
    char why[512];
    jp_jira_projects_destroy(run->projects);
    run->projects = NULL;
    jp_err_t err = jp_jira_parse_projects(resp->status, resp->body, resp->body_len, &run->projects,
                                          why, sizeof(why));
    if (err) {
        jp_recon__fail_parse(run, err, why);
        return;
    }
    project_next(run);
}

static void projects_list(jp_recon_run_t *run)
{
    jp_jira_req_t *req = NULL;
    char why[512];
    jp_err_t err = jp_jira_projects_page(run->site, (long)(run->ck.page * JP_RECON__REST_PAGE),
                                         JP_RECON__REST_PAGE, &req, why, sizeof(why));
    jp_recon__call(run, err, req, why, projects_listed, run->ck.page);
}

static void project_next(jp_recon_run_t *run)
{
    jp_recon_ckpt_t *ck = &run->ck;
    if (jp_recon__stopped(run))
        return;
    if (ck->item >= (int64_t)run->projects->count) {
        bool last = run->projects->is_last || run->projects->count == 0;
        jp_jira_projects_destroy(run->projects);
        run->projects = NULL;
        if (last) {
            jp_recon__phase_done(run);
            return;
        }
        ck->page++;
        ck->item = ck->sub = 0;
        projects_list(run);
        return;
    }
    jp_jira_req_t *req = NULL;
    char why[512];
    jp_err_t err = jp_jira_project_roles(run->site, run->projects->items[ck->item].key, &req, why,
                                         sizeof(why));
    jp_recon__call(run, err, req, why, roles_listed, ck->item);
}

void jp_recon__roles_begin(jp_recon_run_t *run)
{
    projects_list(run);
}

/* ---- removals ------------------------------------------------------------------------------- */

static void removal_scan(jp_recon_run_t *run);

static void removal_scanned(jp_recon_run_t *run, const char *next, const redisReply *pairs)
{
    jp_recon_ckpt_t *ck = &run->ck;
    jp_recon_batch_t *b = jp_recon__batch_open(run);
    int64_t now = jp_recon__wall_ms();
    for (size_t i = 0; b && i + 1 < pairs->elements && !jp_recon__stopped(run); i += 2) {
        const redisReply *f = pairs->element[i], *v = pairs->element[i + 1];
        char why[256];
        char *field = f->type == REDIS_REPLY_STRING ? strndup(f->str, f->len) : NULL;
        jp_recon_item_t it;
        if (!field || v->type != REDIS_REPLY_STRING ||
            jp_recon_removed_item(run->r->key_attr, run->site->name, field, v->str, v->len, &it,
                                  why, sizeof(why)) != JP_OK) {
            ck->counts.errors++;
            free(field);
            continue;
        }
        free(field);
        json_t *rec = jp_recon_record_item(&ck->def, run->r->cfg->worker.instance_id, &it, ck->seq,
                                           "delete", "removed", now);
        ck->seq++;
        ck->counts.removed++;
        ck->counts.emitted++;
        jp_recon__publish(run, b, rec, it.key);
        jp_recon_item_clear(&it);
    }
    snprintf(ck->scan, sizeof(ck->scan), "%s", next);
    jp_recon__batch_close(run, b);
    if (jp_recon__stopped(run))
        return;
    if (!strcmp(next, "0"))
        jp_recon__phase_done(run);
    else
        jp_recon__when_drained(run, false, removal_scan);
}

static void removal_scan(jp_recon_run_t *run)
{
    if (!jp_recon__stopped(run))
        jp_recon__scan(run, removal_scanned);
}

void jp_recon__removals_begin(jp_recon_run_t *run)
{
    removal_scan(run);
}
