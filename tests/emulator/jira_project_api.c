/* jira_project_api.c - projects and project roles under /rest/api/3.
 *
 * Roles are site-wide (GET /role); each project keeps its own actors per
 * role. Actors are stored by accountId / groupId; an actor whose user was
 * removed from Jira or whose group was deleted is dropped at that moment.
 * Decision on a point the spec leaves open: adding an actor that is already
 * in the role answers 400 "'<actor>' is already a member of the project
 * role." (Jira's wording), and nothing is added by that request. */
#include "jira.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- projects ----------------------------------------------------------------------- */

static jira_project_t *jira_req_project(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    const char *ref = emu_req_param(req, "projectIdOrKey");
    jira_project_t *p = jira_project_find(jira_st(emu), ref);
    if (!p) {
        int64_t id;
        char msg[200];
        snprintf(msg, sizeof(msg), "No project could be found with %s '%s'.",
                 jira_parse_i64(ref, &id) == 0 ? "id" : "key", ref);
        emu_resp_jira_error(resp, 404, msg, NULL, NULL);
    }
    return p;
}

static json_t *jira_project_types_json(emu_t *emu, const jira_project_t *p)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < p->itypes.n; i++)
        json_array_append_new(arr, jira_itype_json(emu, p->itypes.v[i]));
    return arr;
}

static json_t *jira_project_roles_map(emu_t *emu, jira_project_t *p)
{
    jira_state_t *st = jira_st(emu);
    json_t *roles = json_object();
    for (size_t i = 0; i < st->roles.n; i++) {
        jira_role_t *r = st->roles.v[i];
        char url[256];
        snprintf(url, sizeof(url), "%s" JIRA_API "/project/%s/role/%lld", emu_base_url(emu), p->key,
                 (long long)r->id);
        json_object_set_new(roles, r->name, json_string(url));
    }
    return roles;
}

static int64_t jira_project_last_update(jira_state_t *st, const jira_project_t *p)
{
    int64_t last = 0;
    for (size_t i = 0; i < st->issues.n; i++) {
        const jira_issue_t *is = st->issues.v[i];
        if (is->proj == p && is->updated > last)
            last = is->updated;
    }
    return last;
}

static json_t *jira_project_summary(emu_t *emu, jira_project_t *p, const char *expand)
{
    json_t *o = jira_project_ref_json(emu, p);
    json_object_set_new(o, "expand",
                        json_string("description,lead,issueTypes,url,"
                                    "permissions,insight"));
    json_object_set_new(o, "style", json_string("classic"));
    json_object_set_new(o, "isPrivate", json_false());
    json_object_set_new(o, "properties", json_object());
    if (expand && strstr(expand, "description"))
        json_object_set_new(o, "description", json_string(p->description));
    if (expand && strstr(expand, "issueTypes"))
        json_object_set_new(o, "issueTypes", jira_project_types_json(emu, p));
    if (expand && strstr(expand, "lead") && p->lead)
        json_object_set_new(o, "lead", jira_user_ref(emu, p->lead));
    if (expand && strstr(expand, "insight")) {
        char t[40];
        jira_fmt_time(jira_project_last_update(jira_st(emu), p), t, sizeof(t));
        json_object_set_new(o, "insight",
                            json_pack("{s:I,s:s}", "totalIssueCount", (json_int_t)p->issue_count,
                                      "lastIssueUpdateTime", t));
    }
    return o;
}

static const char *jira_order_key;

static int jira_project_cmp(const void *a, const void *b)
{
    const jira_project_t *x = *(const jira_project_t *const *)a;
    const jira_project_t *y = *(const jira_project_t *const *)b;
    const char *o = jira_order_key;
    int desc = o[0] == '-';
    if (o[0] == '-' || o[0] == '+')
        o++;
    int c = strcmp(o, "name") == 0 ? strcasecmp(x->name, y->name) : 0;
    if (c == 0 && strcmp(o, "issueCount") == 0)
        c = (x->issue_count > y->issue_count) - (x->issue_count < y->issue_count);
    if (c == 0)
        c = strcmp(x->key, y->key);
    return desc ? -c : c;
}

static int jira_project_wanted(jira_project_t *p, const char *query, const char *const *ids,
                               size_t nid, const char *const *keys, size_t nkeys,
                               const char *type_key)
{
    if (nid || nkeys) {
        int hit = 0;
        for (size_t i = 0; i < nid && !hit; i++)
            hit = strcmp(ids[i], p->id) == 0;
        for (size_t i = 0; i < nkeys && !hit; i++)
            hit = strcmp(keys[i], p->key) == 0;
        if (!hit)
            return 0;
    }
    if (type_key && !strstr(type_key, p->type_key))
        return 0;
    if (query && *query) {
        size_t n = strlen(query);
        int hit = 0;
        for (const char *s = p->key; *s && !hit; s++)
            hit = strncasecmp(s, query, n) == 0;
        for (const char *s = p->name; *s && !hit; s++)
            hit = strncasecmp(s, query, n) == 0;
        if (!hit)
            return 0;
    }
    return 1;
}

static void jira_h_project_search(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    long long start, max;
    if (!emu_req_query_int(req, "startAt", 0, &start) ||
        !emu_req_query_int(req, "maxResults", 50, &max) || start < 0 || max < 0) {
        emu_resp_jira_error(resp, 400, "startAt and maxResults must be non-negative numbers.", NULL,
                            NULL);
        return;
    }
    if (max > 100)
        max = 100; /* the spec: larger values fall back to 100 */
    static const char *const orders[] = {"category",     "key",         "name",
                                         "owner",        "issueCount",  "lastIssueUpdatedTime",
                                         "archivedDate", "deletedDate", NULL};
    const char *order = emu_req_query(req, "orderBy");
    if (order) {
        const char *o = order[0] == '-' || order[0] == '+' ? order + 1 : order;
        int ok = 0;
        for (size_t i = 0; orders[i] && !ok; i++)
            ok = strcmp(orders[i], o) == 0;
        if (!ok) {
            emu_resp_jira_error(resp, 400, "Invalid orderBy value.", NULL, NULL);
            return;
        }
    }
    const char *ids[50], *keys[50];
    size_t nid = emu_req_query_all(req, "id", ids, 50);
    size_t nkeys = emu_req_query_all(req, "keys", keys, 50);
    if (nid > 50 || nkeys > 50) {
        emu_resp_jira_error(resp, 400, "Up to 50 project IDs or keys can be provided.", NULL, NULL);
        return;
    }
    jira_state_t *st = jira_st(emu);
    jira_project_t **sel = malloc((st->projects.n + 1) * sizeof(*sel));
    if (!sel) {
        emu_resp_jira_error(resp, 500, "out of memory", NULL, NULL);
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < st->projects.n; i++)
        if (jira_project_wanted(st->projects.v[i], emu_req_query(req, "query"), ids, nid, keys,
                                nkeys, emu_req_query(req, "typeKey")))
            sel[n++] = st->projects.v[i];
    jira_order_key = order ? order : "key";
    qsort(sel, n, sizeof(*sel), jira_project_cmp);
    const char *expand = emu_req_query(req, "expand");
    json_t *vals = json_array();
    size_t end = (size_t)start + (size_t)max < n ? (size_t)start + (size_t)max : n;
    for (size_t i = (size_t)start; i < end; i++)
        json_array_append_new(vals, jira_project_summary(emu, sel[i], expand));
    free(sel);
    char self[256];
    snprintf(self, sizeof(self), "%s" JIRA_API "/project/search?startAt=%lld&maxResults=%lld",
             emu_base_url(emu), start, max);
    json_t *out = json_pack("{s:s,s:I,s:I,s:I,s:b,s:o}", "self", self, "maxResults",
                            (json_int_t)max, "startAt", (json_int_t)start, "total", (json_int_t)n,
                            "isLast", end >= n, "values", vals);
    if (end < n) {
        char next[256];
        snprintf(next, sizeof(next), "%s" JIRA_API "/project/search?startAt=%zu&maxResults=%lld",
                 emu_base_url(emu), end, max);
        json_object_set_new(out, "nextPage", json_string(next));
    }
    emu_resp_json(resp, 200, out);
}

static void jira_h_project_get(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    jira_project_t *p = jira_req_project(emu, req, resp);
    if (!p)
        return;
    json_t *o = jira_project_summary(emu, p, emu_req_query(req, "expand"));
    json_object_set_new(o, "description", json_string(p->description));
    json_object_set_new(o, "issueTypes", jira_project_types_json(emu, p));
    if (p->lead)
        json_object_set_new(o, "lead", jira_user_ref(emu, p->lead));
    json_object_set_new(o, "components", json_array());
    json_object_set_new(o, "versions", json_array());
    json_object_set_new(o, "assigneeType", json_string(p->lead ? "PROJECT_LEAD" : "UNASSIGNED"));
    json_object_set_new(o, "roles", jira_project_roles_map(emu, p));
    emu_resp_json(resp, 200, o);
}

static void jira_h_project_statuses(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    jira_project_t *p = jira_req_project(emu, req, resp);
    if (!p)
        return;
    json_t *arr = json_array();
    for (size_t i = 0; i < p->itypes.n; i++) {
        jira_itype_t *t = p->itypes.v[i];
        json_t *sts = json_array();
        for (size_t j = 0; j < p->wf.statuses.n; j++)
            json_array_append_new(sts, jira_status_json(emu, p->wf.statuses.v[j]));
        char self[256];
        snprintf(self, sizeof(self), "%s" JIRA_API "/issuetype/%s", emu_base_url(emu), t->id);
        json_array_append_new(arr,
                              json_pack("{s:s,s:s,s:s,s:b,s:o}", "self", self, "id", t->id, "name",
                                        t->name, "subtask", t->subtask, "statuses", sts));
    }
    emu_resp_json(resp, 200, arr);
}

/* ---- roles --------------------------------------------------------------------------------- */

static json_t *jira_role_self(emu_t *emu, const jira_project_t *p, const jira_role_t *r)
{
    char url[256];
    if (p)
        snprintf(url, sizeof(url), "%s" JIRA_API "/project/%s/role/%lld", emu_base_url(emu), p->key,
                 (long long)r->id);
    else
        snprintf(url, sizeof(url), "%s" JIRA_API "/role/%lld", emu_base_url(emu), (long long)r->id);
    return json_string(url);
}

static void jira_h_roles_all(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    jira_state_t *st = jira_st(emu);
    json_t *arr = json_array();
    for (size_t i = 0; i < st->roles.n; i++) {
        jira_role_t *r = st->roles.v[i];
        json_array_append_new(arr, json_pack("{s:o,s:s,s:I,s:s}", "self",
                                             jira_role_self(emu, NULL, r), "name", r->name, "id",
                                             (json_int_t)r->id, "description", r->description));
    }
    emu_resp_json(resp, 200, arr);
}

static void jira_h_project_roles(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    jira_project_t *p = jira_req_project(emu, req, resp);
    if (p)
        emu_resp_json(resp, 200, jira_project_roles_map(emu, p));
}

typedef struct jira_actor_view {
    const jira_actor_t *a;
    const char *display;
    json_t *json;
} jira_actor_view_t;

static int jira_actor_view_cmp(const void *a, const void *b)
{
    const jira_actor_view_t *x = a, *y = b;
    int c = strcasecmp(x->display, y->display);
    return c ? c : (x->a->id > y->a->id) - (x->a->id < y->a->id);
}

/* JSON of one actor, or NULL when it no longer resolves (or is an inactive
 * user and those are excluded). */
static json_t *jira_actor_json(emu_t *emu, const jira_actor_t *a, int exclude_inactive,
                               const char **display)
{
    if (a->type == JIRA_ACTOR_USER) {
        emu_user_t *u = jira_user_get(emu, a->value);
        if (!u || (exclude_inactive && !u->active))
            return NULL;
        *display = u->display_name ? u->display_name : u->email ? u->email : u->account_id;
        return json_pack("{s:I,s:s,s:s,s:{s:s}}", "id", (json_int_t)a->id, "displayName", *display,
                         "type", "atlassian-user-role-actor", "actorUser", "accountId",
                         u->account_id);
    }
    emu_group_t *g = emu_group_by_group_id(emu, a->value);
    if (!g)
        return NULL;
    *display = g->name;
    return json_pack("{s:I,s:s,s:s,s:s,s:{s:s,s:s,s:s}}", "id", (json_int_t)a->id, "displayName",
                     g->name, "type", "atlassian-group-role-actor", "name", g->name, "actorGroup",
                     "name", g->name, "displayName", g->name, "groupId", g->group_id);
}

static json_t *jira_role_json(emu_t *emu, jira_project_t *p, jira_role_actors_t *ra,
                              int exclude_inactive)
{
    jira_actor_view_t *views = calloc(ra->actors.n + 1, sizeof(*views));
    size_t n = 0;
    for (size_t i = 0; views && i < ra->actors.n; i++) {
        jira_actor_view_t *v = &views[n];
        v->a = ra->actors.v[i];
        v->json = jira_actor_json(emu, v->a, exclude_inactive, &v->display);
        if (v->json)
            n++;
    }
    if (n > 1)
        qsort(views, n, sizeof(*views), jira_actor_view_cmp);
    json_t *actors = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(actors, views[i].json);
    free(views);
    return json_pack("{s:o,s:s,s:I,s:s,s:o,s:{s:s,s:{s:s,s:s,s:s}}}", "self",
                     jira_role_self(emu, p, ra->role), "name", ra->role->name, "id",
                     (json_int_t)ra->role->id, "description", ra->role->description, "actors",
                     actors, "scope", "type", "PROJECT", "project", "id", p->id, "key", p->key,
                     "name", p->name);
}

static jira_role_actors_t *jira_req_role(emu_t *emu, emu_req_t *req, emu_resp_t *resp,
                                         jira_project_t **pp)
{
    jira_project_t *p = jira_req_project(emu, req, resp);
    if (!p)
        return NULL;
    const char *rid = emu_req_param(req, "id");
    int64_t id;
    if (jira_parse_i64(rid, &id) != 0) {
        emu_resp_jira_error(resp, 400, "The project role id must be a number.", NULL, NULL);
        return NULL;
    }
    jira_role_t *r = jira_role_find(jira_st(emu), id);
    jira_role_actors_t *ra = r ? jira_project_role(p, r) : NULL;
    if (!ra) {
        char msg[128];
        snprintf(msg, sizeof(msg), "No project role found with id '%s'.", rid);
        emu_resp_jira_error(resp, 404, msg, NULL, NULL);
        return NULL;
    }
    *pp = p;
    return ra;
}

static void jira_h_role_get(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    jira_project_t *p = NULL;
    jira_role_actors_t *ra = jira_req_role(emu, req, resp, &p);
    if (ra)
        emu_resp_json(
            resp, 200,
            jira_role_json(emu, p, ra, emu_req_query_bool(req, "excludeInactiveUsers", false)));
}

/* A resolved actor to add: type and stored value. */
typedef struct jira_actor_ref {
    int type;
    const char *value;
    const char *given;
} jira_actor_ref_t;

/* Resolves a list of users (kind 'u'), group names ('n') or group ids ('i')
 * into refs; answers 404 / 400 itself and returns -1 on a problem. */
static int jira_resolve_actors(emu_t *emu, emu_resp_t *resp, const json_t *list, char kind,
                               jira_actor_ref_t *refs, size_t *n, size_t cap)
{
    if (!json_is_array(list)) {
        emu_resp_jira_error(resp, 400, "Actor lists must be arrays of strings.", NULL, NULL);
        return -1;
    }
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
    {
        const char *s = json_string_value(v);
        char msg[300];
        if (!s || !*s) {
            emu_resp_jira_error(resp, 400, "Actor lists must be arrays of strings.", NULL, NULL);
            return -1;
        }
        if (*n == cap) {
            emu_resp_jira_error(resp, 400, "Too many actors in one request.", NULL, NULL);
            return -1;
        }
        jira_actor_ref_t *r = &refs[*n];
        r->given = s;
        if (kind == 'u') {
            emu_user_t *u = jira_user_get(emu, s);
            if (!u || !u->active) {
                snprintf(msg, sizeof(msg),
                         u ? "The user '%s' is not active." : "The user '%s' does not exist.", s);
                emu_resp_jira_error(resp, 404, msg, NULL, NULL);
                return -1;
            }
            r->type = JIRA_ACTOR_USER;
            r->value = u->account_id;
        } else {
            emu_group_t *g =
                kind == 'n' ? emu_group_by_name(emu, s) : emu_group_by_group_id(emu, s);
            if (!g) {
                snprintf(msg, sizeof(msg), "The group '%s' does not exist.", s);
                emu_resp_jira_error(resp, 404, msg, NULL, NULL);
                return -1;
            }
            r->type = JIRA_ACTOR_GROUP;
            r->value = g->group_id;
        }
        (*n)++;
    }
    return 0;
}

static void jira_count_actor(emu_t *emu, jira_project_t *p, jira_role_actors_t *ra,
                             const jira_actor_ref_t *r, const char *kind)
{
    char key[256];
    snprintf(key, sizeof(key), "%s:%lld:%s", p->key, (long long)ra->role->id, r->value);
    emu_count_mutation(emu, "role", key, kind);
}

#define JIRA_MAX_ACTORS 256

static void jira_h_role_add(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    jira_project_t *p = NULL;
    jira_role_actors_t *ra = jira_req_role(emu, req, resp, &p);
    if (!ra)
        return;
    char err[256];
    json_t *body = emu_req_json(req, err, sizeof(err));
    if (!body || !json_is_object(body)) {
        emu_resp_jira_error(resp, 400, body ? "The request body must be a JSON object." : err, NULL,
                            NULL);
        return;
    }
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v)
    {
        if (strcmp(k, "user") != 0 && strcmp(k, "group") != 0 && strcmp(k, "groupId") != 0) {
            char msg[300];
            snprintf(msg, sizeof(msg), "Unrecognized field \"%s\"", k);
            emu_resp_jira_error(resp, 400, msg, NULL, NULL);
            return;
        }
    }
    json_t *users = json_object_get(body, "user"), *groups = json_object_get(body, "group"),
           *gids = json_object_get(body, "groupId");
    if (groups && gids) {
        emu_resp_jira_error(resp, 400, "The group and groupId parameters cannot be used together.",
                            NULL, NULL);
        return;
    }
    jira_actor_ref_t refs[JIRA_MAX_ACTORS];
    size_t n = 0;
    if ((users && jira_resolve_actors(emu, resp, users, 'u', refs, &n, JIRA_MAX_ACTORS)) ||
        (groups && jira_resolve_actors(emu, resp, groups, 'n', refs, &n, JIRA_MAX_ACTORS)) ||
        (gids && jira_resolve_actors(emu, resp, gids, 'i', refs, &n, JIRA_MAX_ACTORS)))
        return;
    if (n == 0) {
        emu_resp_jira_error(resp, 400, "You must specify at least one user or group to add.", NULL,
                            NULL);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        int dup = jira_actor_find(ra, refs[i].type, refs[i].value) != NULL;
        for (size_t j = 0; j < i && !dup; j++)
            dup = refs[j].type == refs[i].type && strcmp(refs[j].value, refs[i].value) == 0;
        if (dup) {
            char msg[300];
            snprintf(msg, sizeof(msg), "'%s' is already a member of the project role.",
                     refs[i].given);
            emu_resp_jira_error(resp, 400, msg, NULL, NULL);
            return;
        }
    }
    for (size_t i = 0; i < n; i++)
        if (jira_actor_add(jira_st(emu), ra, refs[i].type, refs[i].value))
            jira_count_actor(emu, p, ra, &refs[i], "add");
    emu_resp_json(resp, 200, jira_role_json(emu, p, ra, 0));
}

static void jira_h_role_set(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    jira_project_t *p = NULL;
    jira_role_actors_t *ra = jira_req_role(emu, req, resp, &p);
    if (!ra)
        return;
    char err[256];
    json_t *body = emu_req_json(req, err, sizeof(err));
    json_t *cat = body ? json_object_get(body, "categorisedActors") : NULL;
    if (!json_is_object(cat)) {
        emu_resp_jira_error(resp, 400, body ? "categorisedActors must be an object." : err, NULL,
                            NULL);
        return;
    }
    jira_actor_ref_t refs[JIRA_MAX_ACTORS];
    size_t n = 0;
    const char *k;
    json_t *v;
    json_object_foreach(cat, k, v)
    {
        char kind = strcmp(k, "atlassian-user-role-actor") == 0       ? 'u'
                    : strcmp(k, "atlassian-group-role-actor") == 0    ? 'n'
                    : strcmp(k, "atlassian-group-role-actor-id") == 0 ? 'i'
                                                                      : 0;
        if (!kind) {
            char msg[300];
            snprintf(msg, sizeof(msg), "Unknown role actor type '%s'.", k);
            emu_resp_jira_error(resp, 400, msg, NULL, NULL);
            return;
        }
        if (jira_resolve_actors(emu, resp, v, kind, refs, &n, JIRA_MAX_ACTORS) != 0)
            return;
    }
    jira_state_t *st = jira_st(emu);
    /* Remove actors not named any more, then add the new ones. */
    for (size_t i = ra->actors.n; i-- > 0;) {
        jira_actor_t *a = ra->actors.v[i];
        int keep = 0;
        for (size_t j = 0; j < n && !keep; j++)
            keep = refs[j].type == a->type && strcmp(refs[j].value, a->value) == 0;
        if (!keep) {
            jira_actor_ref_t r = {a->type, a->value, a->value};
            jira_count_actor(emu, p, ra, &r, "remove");
            jira_actor_remove(ra, a);
        }
    }
    for (size_t j = 0; j < n; j++)
        if (jira_actor_add(st, ra, refs[j].type, refs[j].value))
            jira_count_actor(emu, p, ra, &refs[j], "add");
    emu_resp_json(resp, 200, jira_role_json(emu, p, ra, 0));
}

static void jira_h_role_delete(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    jira_project_t *p = NULL;
    jira_role_actors_t *ra = jira_req_role(emu, req, resp, &p);
    if (!ra)
        return;
    const char *user = emu_req_query(req, "user");
    const char *group = emu_req_query(req, "group");
    const char *gid = emu_req_query(req, "groupId");
    if ((user != NULL) + (group != NULL) + (gid != NULL) != 1) {
        emu_resp_jira_error(resp, 400, "Specify exactly one of user, group or groupId.", NULL,
                            NULL);
        return;
    }
    jira_actor_ref_t r = {JIRA_ACTOR_USER, user, user};
    char msg[300];
    if (!user) {
        emu_group_t *g = group ? emu_group_by_name(emu, group) : emu_group_by_group_id(emu, gid);
        if (!g) {
            snprintf(msg, sizeof(msg), "The group '%s' does not exist.", group ? group : gid);
            emu_resp_jira_error(resp, 404, msg, NULL, NULL);
            return;
        }
        r.type = JIRA_ACTOR_GROUP;
        r.value = g->group_id;
        r.given = group ? group : gid;
    }
    jira_actor_t *a = jira_actor_find(ra, r.type, r.value);
    if (!a) {
        snprintf(msg, sizeof(msg), "'%s' is not a member of the project role.", r.given);
        emu_resp_jira_error(resp, 404, msg, NULL, NULL);
        return;
    }
    jira_count_actor(emu, p, ra, &r, "remove");
    jira_actor_remove(ra, a);
    emu_resp_empty(resp, 204);
}

void jira_register_project_routes(emu_t *emu)
{
    static const emu_route_opts read = {.auth = EMU_AUTH_JIRA};
    static const emu_route_opts project_get = {.auth = EMU_AUTH_JIRA, .points = 2};
    static const emu_route_opts role_get = {.auth = EMU_AUTH_JIRA, .burst_rate = 200, .points = 3};
    static const emu_route_opts write = {.auth = EMU_AUTH_JIRA};
    emu_route(emu, "GET", JIRA_API "/project/search", jira_h_project_search, &read);
    emu_route(emu, "GET", JIRA_API "/project/{projectIdOrKey}", jira_h_project_get, &project_get);
    emu_route(emu, "GET", JIRA_API "/project/{projectIdOrKey}/statuses", jira_h_project_statuses,
              &read);
    emu_route(emu, "GET", JIRA_API "/role", jira_h_roles_all, &read);
    emu_route(emu, "GET", JIRA_API "/project/{projectIdOrKey}/role", jira_h_project_roles,
              &role_get);
    emu_route(emu, "GET", JIRA_API "/project/{projectIdOrKey}/role/{id}", jira_h_role_get,
              &role_get);
    emu_route(emu, "POST", JIRA_API "/project/{projectIdOrKey}/role/{id}", jira_h_role_add, &write);
    emu_route(emu, "PUT", JIRA_API "/project/{projectIdOrKey}/role/{id}", jira_h_role_set, &write);
    emu_route(emu, "DELETE", JIRA_API "/project/{projectIdOrKey}/role/{id}", jira_h_role_delete,
              &write);
}
