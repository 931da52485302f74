/* jira_user_api.c - /rest/api/3 users and groups on the shared identity store.
 *
 * Users and groups are the store's emu_user_t / emu_group_t: a user created
 * through SCIM is a Jira user with the same accountId, and a SCIM group is a
 * Jira group. Decisions on points the notes mark [U]:
 *   - POST /group/user for an existing member answers 400 with
 *     "Cannot add user. User is already a member of '<group>'", the text
 *     Jira Cloud returns and public clients match on.
 *   - DELETE /group/user for a user who is not a member answers 400
 *     "Cannot remove user. User is not a member of '<group>'" (mirroring the
 *     add case); unknown group or user is 404.
 *   - POST /user: `products` is required (2026 reading, notes §3.3); an
 *     existing user with Jira access gives 201 without change, one without
 *     access 400; an account removed by DELETE /user is re-added (201).
 *   - DELETE /user takes the account out of Jira's user base (GET /user then
 *     404, group memberships and role actors dropped); the account stays in
 *     /users/search as inactive, as "previously deleted users" do. */
#include "jira.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define JIRA_USER_NOT_FOUND  "Specified user does not exist or you do not have required permissions"
#define JIRA_GROUP_NOT_FOUND "Specified group does not exist."

/* ---- small helpers ---------------------------------------------------------------- */

static int jira_paging(emu_req_t *req, emu_resp_t *resp, long long dflt_max, long long cap,
                       long long *start, long long *max)
{
    if (!emu_req_query_int(req, "startAt", 0, start) ||
        !emu_req_query_int(req, "maxResults", dflt_max, max)) {
        emu_resp_jira_error(resp, 400, "startAt and maxResults must be numbers.", NULL, NULL);
        return -1;
    }
    if (*start < 0 || *max < 0) {
        emu_resp_jira_error(resp, 400, "startAt and maxResults must not be negative.", NULL, NULL);
        return -1;
    }
    if (*max > cap)
        *max = cap;
    return 0;
}

/* Group from exactly one of groupId / groupname (name param given). */
static emu_group_t *jira_req_group(emu_t *emu, emu_req_t *req, emu_resp_t *resp,
                                   const char *name_param)
{
    const char *gid = emu_req_query(req, "groupId");
    const char *gname = emu_req_query(req, name_param);
    if (gid && gname) {
        emu_resp_jira_error(resp, 400, "Only one of groupId and groupname can be given.", NULL,
                            NULL);
        return NULL;
    }
    if (!gid && !gname) {
        emu_resp_jira_error(resp, 400, "You must specify a group name or group ID.", NULL, NULL);
        return NULL;
    }
    emu_group_t *g = gid ? emu_group_by_group_id(emu, gid) : emu_group_by_name(emu, gname);
    if (!g)
        emu_resp_jira_error(resp, 404, JIRA_GROUP_NOT_FOUND, NULL, NULL);
    return g;
}

static const char *jira_req_account(emu_req_t *req, emu_resp_t *resp)
{
    const char *acc = emu_req_query(req, "accountId");
    if (!acc || !*acc)
        emu_resp_jira_error(resp, 400, "The accountId query parameter needs to be provided.", NULL,
                            NULL);
    return acc && *acc ? acc : NULL;
}

static int jira_expand_has(const char *expand, const char *what)
{
    if (!expand)
        return 0;
    size_t n = strlen(what);
    for (const char *p = expand; (p = strstr(p, what)) != NULL; p += n)
        if ((p == expand || p[-1] == ',') && (p[n] == '\0' || p[n] == ','))
            return 1;
    return 0;
}

static void jira_user_ext_set(emu_user_t *u, const char *k, json_t *v)
{
    if (!u->jira_ext)
        u->jira_ext = json_object();
    json_object_set_new(u->jira_ext, k, v);
}

/* ---- users -------------------------------------------------------------------------- */

static void jira_h_user_get(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    const char *acc = jira_req_account(req, resp);
    if (!acc)
        return;
    emu_user_t *u = jira_user_get(emu, acc);
    if (!u) {
        emu_resp_jira_error(resp, 404, JIRA_USER_NOT_FOUND, NULL, NULL);
        return;
    }
    const char *expand = emu_req_query(req, "expand");
    int groups = jira_expand_has(expand, "groups") || jira_expand_has(expand, "applicationRoles");
    emu_resp_json(resp, 200, jira_user_json(emu, u, groups ? JIRA_USER_EXPANDED : JIRA_USER_FULL));
}

static void jira_h_myself(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    const char *acc = jira_caller(emu, req);
    emu_user_t *u = acc ? jira_user_get(emu, acc) : NULL;
    if (!u) {
        emu_resp_jira_error(resp, 404, JIRA_USER_NOT_FOUND, NULL, NULL);
        return;
    }
    emu_resp_json(resp, 200, jira_user_json(emu, u, JIRA_USER_EXPANDED));
}

static int jira_product_valid(const char *p)
{
    static const char *const products[] = {"jira-core", "jira-servicedesk",
                                           "jira-product-discovery", "jira-software", NULL};
    for (size_t i = 0; p && products[i]; i++)
        if (strcmp(products[i], p) == 0)
            return 1;
    return 0;
}

static void jira_h_user_create(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    char err[256];
    json_t *body = emu_req_json(req, err, sizeof(err));
    if (!body || !json_is_object(body)) {
        emu_resp_jira_error(resp, 400, body ? "The request body must be a JSON object." : err, NULL,
                            NULL);
        return;
    }
    const char *email = json_string_value(json_object_get(body, "emailAddress"));
    json_t *products = json_object_get(body, "products");
    if (!email || !*email) {
        emu_resp_jira_error(resp, 400, NULL, "emailAddress", "You must specify an email address.");
        return;
    }
    const char *at = strchr(email, '@');
    if (!at || at == email || !at[1] || strchr(email, ' ')) {
        emu_resp_jira_error(resp, 400, NULL, "emailAddress",
                            "You must specify a valid email address.");
        return;
    }
    if (!json_is_array(products)) {
        emu_resp_jira_error(resp, 400, NULL, "products",
                            "products is required; use [] for a user without product access.");
        return;
    }
    size_t i;
    json_t *p;
    json_array_foreach(products, i, p)
    {
        if (!jira_product_valid(json_string_value(p))) {
            char msg[200];
            snprintf(msg, sizeof(msg), "Invalid product: %s",
                     json_is_string(p) ? json_string_value(p) : "(not a string)");
            emu_resp_jira_error(resp, 400, NULL, "products", msg);
            return;
        }
    }
    int access = json_array_size(products) > 0;
    emu_user_t *u = emu_user_by_email(emu, email);
    if (u && jira_user_visible(u)) {
        if (!(u->flags & EMU_USER_JIRA)) {
            emu_resp_jira_error(resp, 400, "The user exists but does not have access to Jira.",
                                NULL, NULL);
            return;
        }
        emu_resp_json(resp, 201, jira_user_json(emu, u, JIRA_USER_FULL));
        return;
    }
    if (!u) {
        u = emu_user_new(emu, NULL, email, NULL, 0, err, sizeof(err));
        if (!u) {
            emu_resp_jira_error(resp, 400, err, NULL, NULL);
            return;
        }
        char dn[256];
        snprintf(dn, sizeof(dn), "%.*s", (int)(at - email), email);
        emu_str_set(&u->display_name, dn);
        u->active = true;
    }
    jira_user_ext_set(u, "removed", json_false());
    jira_user_ext_set(u, "products", json_deep_copy(products));
    if (access)
        u->flags |= EMU_USER_JIRA;
    else
        u->flags &= ~EMU_USER_JIRA;
    emu_user_touch(u);
    emu_count_mutation(emu, "user", u->account_id, "create");
    emu_resp_json(resp, 201, jira_user_json(emu, u, JIRA_USER_FULL));
}

static void jira_h_user_delete(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    const char *acc = jira_req_account(req, resp);
    if (!acc)
        return;
    emu_user_t *u = jira_user_get(emu, acc);
    if (!u) {
        emu_resp_jira_error(resp, 404, JIRA_USER_NOT_FOUND, NULL, NULL);
        return;
    }
    const char *caller = jira_caller(emu, req);
    if (caller && strcmp(caller, u->account_id) == 0) {
        emu_resp_jira_error(resp, 400, "You cannot delete yourself.", NULL, NULL);
        return;
    }
    while (u->ngroups > 0)
        emu_member_remove(emu, u->groups[u->ngroups - 1], u);
    jira_roles_drop_user(emu, u->account_id);
    jira_user_ext_set(u, "removed", json_true());
    u->flags &= ~EMU_USER_JIRA;
    emu_user_touch(u);
    emu_count_mutation(emu, "user", u->account_id, "delete");
    emu_resp_empty(resp, 204);
}

static void jira_h_users_all(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    long long start, max;
    if (jira_paging(req, resp, 50, 1000, &start, &max) != 0)
        return;
    json_t *arr = json_array();
    size_t n = emu_user_count(emu);
    for (size_t i = (size_t)start; i < n && i < (size_t)(start + max); i++)
        json_array_append_new(arr, jira_user_json(emu, emu_user_at(emu, i), JIRA_USER_PLAIN));
    emu_resp_json(resp, 200, arr);
}

/* Prefix of the display name, of any word in it, or of the email. */
static int jira_user_matches(const emu_user_t *u, const char *q)
{
    size_t n = strlen(q);
    if (u->email && strncasecmp(u->email, q, n) == 0)
        return 1;
    const char *dn = u->display_name;
    for (const char *p = dn; p && *p; p++)
        if ((p == dn || p[-1] == ' ') && strncasecmp(p, q, n) == 0)
            return 1;
    return 0;
}

static void jira_h_user_search(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    const char *q = emu_req_query(req, "query");
    const char *acc = emu_req_query(req, "accountId");
    const char *prop = emu_req_query(req, "property");
    if (!q && !acc && !prop) {
        emu_resp_jira_error(resp, 400,
                            "One of 'query', 'accountId' or 'property' query "
                            "parameters must be provided.",
                            NULL, NULL);
        return;
    }
    if (q && acc) {
        emu_resp_jira_error(resp, 400,
                            "The 'query' and 'accountId' parameters cannot be used "
                            "together.",
                            NULL, NULL);
        return;
    }
    if (prop && !strchr(prop, '=')) {
        emu_resp_jira_error(resp, 400, "The property parameter is not valid.", NULL, NULL);
        return;
    }
    long long start, max;
    if (jira_paging(req, resp, 50, 1000, &start, &max) != 0)
        return;
    json_t *arr = json_array();
    size_t n = emu_user_count(emu), seen = 0;
    for (size_t i = 0; i < n && !prop && json_array_size(arr) < (size_t)max; i++) {
        emu_user_t *u = emu_user_at(emu, i);
        if (!u->active || !jira_user_visible(u))
            continue;
        if (acc ? strcmp(u->account_id, acc) != 0 : !jira_user_matches(u, q))
            continue;
        if (seen++ < (size_t)start)
            continue;
        json_array_append_new(arr, jira_user_json(emu, u, JIRA_USER_PLAIN));
    }
    emu_resp_json(resp, 200, arr);
}

static void jira_h_user_groups(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    const char *acc = jira_req_account(req, resp);
    if (!acc)
        return;
    emu_user_t *u = jira_user_get(emu, acc);
    if (!u) {
        emu_resp_jira_error(resp, 404, JIRA_USER_NOT_FOUND, NULL, NULL);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < u->ngroups; i++)
        json_array_append_new(arr, jira_group_name_json(emu, u->groups[i]));
    emu_resp_json(resp, 200, arr);
}

/* ---- groups --------------------------------------------------------------------------- */

static void jira_h_group_create(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    char err[256];
    json_t *body = emu_req_json(req, err, sizeof(err));
    if (!body || !json_is_object(body)) {
        emu_resp_jira_error(resp, 400, body ? "The request body must be a JSON object." : err, NULL,
                            NULL);
        return;
    }
    const char *name = json_string_value(json_object_get(body, "name"));
    if (!name || !*name) {
        emu_resp_jira_error(resp, 400, "You must specify a group name.", NULL, NULL);
        return;
    }
    if (emu_group_by_name(emu, name)) {
        emu_resp_jira_error(resp, 400, "A group with that name already exists.", NULL, NULL);
        return;
    }
    emu_group_t *g = emu_group_new(emu, name, false, err, sizeof(err));
    if (!g) {
        emu_resp_jira_error(resp, 400, err, NULL, NULL);
        return;
    }
    emu_count_mutation(emu, "group", g->group_id, "create");
    emu_resp_json(resp, 201, jira_group_json(emu, g));
}

/* Role actors naming a deleted group go with it. */
static void jira_roles_drop_group(emu_t *emu, const char *group_id)
{
    jira_state_t *st = jira_st(emu);
    for (size_t i = 0; i < st->projects.n; i++) {
        jira_project_t *p = st->projects.v[i];
        for (size_t r = 0; r < p->role_actors.n; r++) {
            jira_role_actors_t *ra = p->role_actors.v[r];
            jira_actor_t *a = jira_actor_find(ra, JIRA_ACTOR_GROUP, group_id);
            if (a)
                jira_actor_remove(ra, a);
        }
    }
}

void jira_roles_drop_user(emu_t *emu, const char *account_id)
{
    jira_state_t *st = jira_st(emu);
    for (size_t i = 0; i < st->projects.n; i++) {
        jira_project_t *p = st->projects.v[i];
        for (size_t r = 0; r < p->role_actors.n; r++) {
            jira_role_actors_t *ra = p->role_actors.v[r];
            jira_actor_t *a = jira_actor_find(ra, JIRA_ACTOR_USER, account_id);
            if (a)
                jira_actor_remove(ra, a);
        }
    }
}

static void jira_h_group_delete(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    const char *swap = emu_req_query(req, "swapGroup");
    const char *swap_id = emu_req_query(req, "swapGroupId");
    if (swap && swap_id) {
        emu_resp_jira_error(resp, 400, "Only one of swapGroup and swapGroupId can be given.", NULL,
                            NULL);
        return;
    }
    emu_group_t *g = jira_req_group(emu, req, resp, "groupname");
    if (!g)
        return;
    if (swap || swap_id) {
        emu_group_t *sg =
            swap_id ? emu_group_by_group_id(emu, swap_id) : emu_group_by_name(emu, swap);
        if (!sg) {
            emu_resp_jira_error(resp, 404, JIRA_GROUP_NOT_FOUND, NULL, NULL);
            return;
        }
        if (sg == g) {
            emu_resp_jira_error(resp, 400, "You cannot swap a group with itself.", NULL, NULL);
            return;
        }
    }
    char gid[sizeof(g->group_id)];
    memcpy(gid, g->group_id, sizeof(gid));
    jira_roles_drop_group(emu, gid);
    emu_group_delete(emu, g);
    emu_count_mutation(emu, "group", gid, "delete");
    emu_resp_empty(resp, 200);
}

static int jira_member_cmp(const void *a, const void *b)
{
    const emu_user_t *x = *(const emu_user_t *const *)a;
    const emu_user_t *y = *(const emu_user_t *const *)b;
    const char *kx = x->user_name ? x->user_name : x->email ? x->email : x->account_id;
    const char *ky = y->user_name ? y->user_name : y->email ? y->email : y->account_id;
    int c = strcasecmp(kx, ky);
    return c ? c : strcmp(x->account_id, y->account_id);
}

static void jira_h_group_members(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    emu_group_t *g = jira_req_group(emu, req, resp, "groupname");
    if (!g)
        return;
    long long start, max;
    if (jira_paging(req, resp, 50, 50, &start, &max) != 0)
        return;
    if (max < 1)
        max = 1;
    int inactive = emu_req_query_bool(req, "includeInactiveUsers", false);
    emu_user_t **m = malloc((g->nmembers + 1) * sizeof(*m));
    if (!m) {
        emu_resp_jira_error(resp, 500, "out of memory", NULL, NULL);
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < g->nmembers; i++)
        if (inactive || g->members[i]->active)
            m[n++] = g->members[i];
    qsort(m, n, sizeof(*m), jira_member_cmp);
    json_t *vals = json_array();
    size_t end = (size_t)start + (size_t)max < n ? (size_t)start + (size_t)max : n;
    for (size_t i = (size_t)start; i < end; i++)
        json_array_append_new(vals, jira_user_json(emu, m[i], JIRA_USER_DETAILS));
    free(m);
    const char *base = emu_base_url(emu);
    char self[512];
    snprintf(self, sizeof(self),
             "%s" JIRA_API "/group/member?groupId=%s&includeInactiveUsers=%s&startAt=%lld"
             "&maxResults=%lld",
             base, g->group_id, inactive ? "true" : "false", start, max);
    json_t *out = json_pack("{s:s,s:I,s:I,s:I,s:b,s:o}", "self", self, "maxResults",
                            (json_int_t)max, "startAt", (json_int_t)start, "total", (json_int_t)n,
                            "isLast", end >= n, "values", vals);
    if (end < n) {
        char next[512];
        snprintf(next, sizeof(next),
                 "%s" JIRA_API "/group/member?groupId=%s&includeInactiveUsers=%s&startAt=%zu"
                 "&maxResults=%lld",
                 base, g->group_id, inactive ? "true" : "false", end, max);
        json_object_set_new(out, "nextPage", json_string(next));
    }
    emu_resp_json(resp, 200, out);
}

static void jira_h_group_add(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    char err[256];
    json_t *body = emu_req_json(req, err, sizeof(err));
    if (!body || !json_is_object(body)) {
        emu_resp_jira_error(resp, 400, body ? "The request body must be a JSON object." : err, NULL,
                            NULL);
        return;
    }
    const char *acc = json_string_value(json_object_get(body, "accountId"));
    if (!acc || !*acc) {
        emu_resp_jira_error(resp, 400, "The accountId must be provided in the request body.", NULL,
                            NULL);
        return;
    }
    emu_group_t *g = jira_req_group(emu, req, resp, "groupname");
    if (!g)
        return;
    emu_user_t *u = jira_user_get(emu, acc);
    if (!u) {
        emu_resp_jira_error(resp, 404, JIRA_USER_NOT_FOUND, NULL, NULL);
        return;
    }
    if (!emu_member_add(emu, g, u)) {
        char msg[400];
        snprintf(msg, sizeof(msg), "Cannot add user. User is already a member of '%s'", g->name);
        emu_resp_jira_error(resp, 400, msg, NULL, NULL);
        return;
    }
    emu_count_membership(emu, g, u, "add");
    emu_resp_json(resp, 201, jira_group_json(emu, g));
}

static void jira_h_group_remove(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    const char *acc = jira_req_account(req, resp);
    if (!acc)
        return;
    emu_group_t *g = jira_req_group(emu, req, resp, "groupname");
    if (!g)
        return;
    emu_user_t *u = jira_user_get(emu, acc);
    if (!u) {
        emu_resp_jira_error(resp, 404, JIRA_USER_NOT_FOUND, NULL, NULL);
        return;
    }
    if (!emu_member_remove(emu, g, u)) {
        char msg[400];
        snprintf(msg, sizeof(msg), "Cannot remove user. User is not a member of '%s'", g->name);
        emu_resp_jira_error(resp, 400, msg, NULL, NULL);
        return;
    }
    emu_count_membership(emu, g, u, "remove");
    emu_resp_empty(resp, 200);
}

static int jira_group_name_cmp(const void *a, const void *b)
{
    const emu_group_t *x = *(const emu_group_t *const *)a;
    const emu_group_t *y = *(const emu_group_t *const *)b;
    int c = strcasecmp(x->name, y->name);
    return c ? c : strcmp(x->group_id, y->group_id);
}

static void jira_h_group_bulk(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    long long start, max;
    if (jira_paging(req, resp, 50, 50, &start, &max) != 0)
        return;
    const char *access = emu_req_query(req, "accessType");
    const char *app = emu_req_query(req, "applicationKey");
    if (access && strcmp(access, "site-admin") != 0 && strcmp(access, "admin") != 0 &&
        strcmp(access, "user") != 0) {
        emu_resp_jira_error(resp, 400,
                            "Invalid accessType. Valid values: 'site-admin', "
                            "'admin', 'user'.",
                            NULL, NULL);
        return;
    }
    if (app && !jira_product_valid(app)) {
        emu_resp_jira_error(resp, 400, "Invalid applicationKey.", NULL, NULL);
        return;
    }
    const char *ids[200], *names[200];
    size_t nid = emu_req_query_all(req, "groupId", ids, 200);
    size_t nname = emu_req_query_all(req, "groupName", names, 200);
    if (nid > 200 || nname > 200) {
        emu_resp_jira_error(resp, 400, "Too many groupId or groupName parameters.", NULL, NULL);
        return;
    }
    size_t total = emu_group_count(emu);
    emu_group_t **sel = malloc((total + 1) * sizeof(*sel));
    if (!sel) {
        emu_resp_jira_error(resp, 500, "out of memory", NULL, NULL);
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < total; i++) {
        emu_group_t *g = emu_group_at(emu, i);
        int keep = nid == 0 && nname == 0;
        for (size_t k = 0; k < nid && !keep; k++)
            keep = strcmp(ids[k], g->group_id) == 0;
        for (size_t k = 0; k < nname && !keep; k++)
            keep = strcasecmp(names[k], g->name) == 0;
        if (keep)
            sel[n++] = g;
    }
    qsort(sel, n, sizeof(*sel), jira_group_name_cmp);
    json_t *vals = json_array();
    size_t end = (size_t)start + (size_t)max < n ? (size_t)start + (size_t)max : n;
    for (size_t i = (size_t)start; i < end; i++)
        json_array_append_new(
            vals, json_pack("{s:s,s:s}", "name", sel[i]->name, "groupId", sel[i]->group_id));
    free(sel);
    emu_resp_json(resp, 200,
                  json_pack("{s:I,s:I,s:I,s:b,s:o}", "maxResults", (json_int_t)max, "startAt",
                            (json_int_t)start, "total", (json_int_t)n, "isLast", end >= n, "values",
                            vals));
}

void jira_register_user_routes(emu_t *emu)
{
    static const emu_route_opts user_get = {.auth = EMU_AUTH_JIRA, .burst_rate = 150, .points = 3};
    static const emu_route_opts read = {.auth = EMU_AUTH_JIRA, .points = 3};
    static const emu_route_opts search = {
        .auth = EMU_AUTH_JIRA, .limit_class = "user-search", .points = 3};
    static const emu_route_opts write = {.auth = EMU_AUTH_JIRA};
    emu_route(emu, "GET", JIRA_API "/user", jira_h_user_get, &user_get);
    emu_route(emu, "POST", JIRA_API "/user", jira_h_user_create, &write);
    emu_route(emu, "DELETE", JIRA_API "/user", jira_h_user_delete, &write);
    emu_route(emu, "GET", JIRA_API "/myself", jira_h_myself, &read);
    emu_route(emu, "GET", JIRA_API "/users/search", jira_h_users_all, &read);
    emu_route(emu, "GET", JIRA_API "/user/search", jira_h_user_search, &search);
    emu_route(emu, "GET", JIRA_API "/user/groups", jira_h_user_groups, &read);
    emu_route(emu, "POST", JIRA_API "/group", jira_h_group_create, &write);
    emu_route(emu, "DELETE", JIRA_API "/group", jira_h_group_delete, &write);
    emu_route(emu, "GET", JIRA_API "/group/member", jira_h_group_members, &read);
    emu_route(emu, "POST", JIRA_API "/group/user", jira_h_group_add, &write);
    emu_route(emu, "DELETE", JIRA_API "/group/user", jira_h_group_remove, &write);
    emu_route(emu, "GET", JIRA_API "/group/bulk", jira_h_group_bulk, &read);
}
