/* jira_api.c - the Jira REST v3 module's hooks (emu.h) and shared JSON shapes. */
#include "jira.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- state and identity ------------------------------------------------------------ */

jira_state_t *jira_st(emu_t *emu)
{
    jira_state_t *st = emu_jira_state(emu);
    if (!st) {
        st = jira_state_new();
        emu_set_jira_state(emu, st);
    }
    return st;
}

/* The Jira module keeps {"removed":true} in emu_user_t.jira_ext once DELETE
 * /user took the account out of Jira's user base; the Atlassian account
 * itself survives. Product access granted again later (POST /user here, or
 * a SCIM link, which sets EMU_USER_JIRA) brings the user back. */
int jira_user_visible(const emu_user_t *u)
{
    return u &&
           ((u->flags & EMU_USER_JIRA) || !json_is_true(json_object_get(u->jira_ext, "removed")));
}

emu_user_t *jira_user_get(emu_t *emu, const char *account_id)
{
    emu_user_t *u = account_id ? emu_user_by_account_id(emu, account_id) : NULL;
    return jira_user_visible(u) ? u : NULL;
}

static int jira_env_user_exists(void *ctx, const char *account_id)
{
    return jira_user_get(ctx, account_id) != NULL;
}

static const char *jira_env_group_id(void *ctx, const char *id_or_name)
{
    emu_group_t *g = emu_group_by_group_id(ctx, id_or_name);
    if (!g)
        g = emu_group_by_name(ctx, id_or_name);
    return g ? g->group_id : NULL;
}

const char *jira_caller(emu_t *emu, const emu_req_t *req)
{
    const char *auth = req ? emu_req_header(req, "Authorization") : NULL;
    if (!auth || strncasecmp(auth, "Basic ", 6) != 0)
        return NULL;
    const char *b64 = auth + 6;
    while (*b64 == ' ')
        b64++;
    /* Standard base64 -> base64url alphabet, padding dropped. */
    char tmp[512];
    size_t n = 0;
    for (; b64[n] && b64[n] != '=' && n + 1 < sizeof(tmp); n++)
        tmp[n] = b64[n] == '+' ? '-' : b64[n] == '/' ? '_' : b64[n];
    tmp[n] = '\0';
    char *dec = jira_b64url_decode(tmp, NULL);
    if (!dec)
        return NULL;
    char *colon = strchr(dec, ':');
    if (colon)
        *colon = '\0';
    emu_user_t *u = emu_user_by_email(emu, dec);
    free(dec);
    return u ? u->account_id : NULL;
}

void jira_jql_env_init(emu_t *emu, const emu_req_t *req, jira_jql_env_t *env)
{
    memset(env, 0, sizeof(*env));
    env->st = jira_st(emu);
    env->user_exists = jira_env_user_exists;
    env->ctx = emu;
    env->current_user = jira_caller(emu, req);
}

size_t jira_split_list(char *buf, const char **out, size_t max)
{
    size_t n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok && n < max; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        size_t l = strlen(tok);
        while (l > 0 && tok[l - 1] == ' ')
            tok[--l] = '\0';
        if (*tok)
            out[n++] = tok;
    }
    return n;
}

/* ---- JSON shapes ------------------------------------------------------------------------ */

void jira_avatars(emu_t *emu, json_t *o, const char *kind, const char *id)
{
    static const char *const sizes[][2] = {
        {"48x48", "48"}, {"24x24", "24"}, {"16x16", "16"}, {"32x32", "32"}};
    json_t *av = json_object();
    for (size_t i = 0; i < 4; i++) {
        char url[512];
        snprintf(url, sizeof(url), "%s/secure/%savatar?size=%s&%s=%s", emu_base_url(emu), kind,
                 sizes[i][1], strcmp(kind, "user") == 0 ? "accountId" : "pid", id);
        json_object_set_new(av, sizes[i][0], json_string(url));
    }
    json_object_set_new(o, "avatarUrls", av);
}

static const char *jira_display_name(const emu_user_t *u)
{
    if (u->display_name && *u->display_name)
        return u->display_name;
    if (u->formatted_name && *u->formatted_name)
        return u->formatted_name;
    return u->email ? u->email : u->account_id;
}

json_t *jira_user_json(emu_t *emu, const emu_user_t *u, int mode)
{
    char self[256];
    snprintf(self, sizeof(self), "%s" JIRA_API "/user?accountId=%s", emu_base_url(emu),
             u->account_id);
    json_t *o = json_pack("{s:s,s:s,s:s}", "self", self, "accountId", u->account_id, "accountType",
                          u->account_type ? u->account_type : "atlassian");
    if (!o)
        return NULL;
    if (u->email)
        json_object_set_new(o, "emailAddress", json_string(u->email));
    jira_avatars(emu, o, "user", u->account_id);
    json_object_set_new(o, "displayName", json_string(jira_display_name(u)));
    json_object_set_new(o, "active", json_boolean(u->active && jira_user_visible(u)));
    json_object_set_new(o, "timeZone", json_string(u->timezone ? u->timezone : "Etc/UTC"));
    if (mode == JIRA_USER_DETAILS)
        return o;
    json_object_set_new(o, "locale", json_string(u->locale ? u->locale : "en_US"));
    if (mode >= JIRA_USER_FULL) {
        int expand_groups = mode == JIRA_USER_EXPANDED;
        json_t *items = json_array();
        for (size_t i = 0; expand_groups && i < u->ngroups; i++)
            json_array_append_new(items, jira_group_name_json(emu, u->groups[i]));
        json_object_set_new(o, "groups",
                            json_pack("{s:I,s:o}", "size", (json_int_t)u->ngroups, "items", items));
        int access = (u->flags & EMU_USER_JIRA) != 0;
        json_t *roles = json_array();
        if (access && expand_groups)
            json_array_append_new(
                roles, json_pack("{s:s,s:s}", "key", "jira-software", "name", "Jira Software"));
        json_object_set_new(o, "applicationRoles",
                            json_pack("{s:i,s:o}", "size", access, "items", roles));
        json_object_set_new(o, "expand", json_string("groups,applicationRoles"));
    }
    return o;
}

json_t *jira_user_ref(emu_t *emu, const char *account_id)
{
    emu_user_t *u = account_id ? emu_user_by_account_id(emu, account_id) : NULL;
    return u ? jira_user_json(emu, u, JIRA_USER_PLAIN) : json_null();
}

json_t *jira_group_name_json(emu_t *emu, const emu_group_t *g)
{
    char self[256];
    snprintf(self, sizeof(self), "%s" JIRA_API "/group?groupId=%s", emu_base_url(emu), g->group_id);
    return json_pack("{s:s,s:s,s:s}", "name", g->name, "groupId", g->group_id, "self", self);
}

json_t *jira_group_json(emu_t *emu, const emu_group_t *g)
{
    json_t *o = jira_group_name_json(emu, g);
    json_object_set_new(o, "users",
                        json_pack("{s:I,s:[],s:i,s:i,s:i}", "size", (json_int_t)g->nmembers,
                                  "items", "max-results", 50, "start-index", 0, "end-index", 0));
    json_object_set_new(o, "expand", json_string("users"));
    return o;
}

json_t *jira_status_json(emu_t *emu, const jira_status_t *s)
{
    const char *base = emu_base_url(emu);
    char self[256], icon[256], cself[256];
    snprintf(self, sizeof(self), "%s" JIRA_API "/status/%s", base, s->id);
    snprintf(icon, sizeof(icon), "%s/images/icons/statuses/generic.png", base);
    snprintf(cself, sizeof(cself), "%s" JIRA_API "/statuscategory/%d", base, s->category);
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:{s:s,s:i,s:s,s:s,s:s}}", "self", self, "description",
                     s->description, "iconUrl", icon, "name", s->name, "id", s->id,
                     "statusCategory", "self", cself, "id", s->category, "key",
                     jira_cat_key(s->category), "colorName", jira_cat_color(s->category), "name",
                     jira_cat_name(s->category));
}

json_t *jira_itype_json(emu_t *emu, const jira_itype_t *t)
{
    const char *base = emu_base_url(emu);
    char self[256], icon[256];
    snprintf(self, sizeof(self), "%s" JIRA_API "/issuetype/%s", base, t->id);
    snprintf(icon, sizeof(icon), "%s/secure/viewavatar?size=medium&avatarType=issuetype&id=%s",
             base, t->id);
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:b,s:i}", "self", self, "id", t->id, "description",
                     t->description, "iconUrl", icon, "name", t->name, "subtask", t->subtask,
                     "hierarchyLevel", t->subtask ? -1 : 0);
}

json_t *jira_priority_json(emu_t *emu, int prio)
{
    const char *base = emu_base_url(emu);
    const jira_priority_t *p = &jira_priorities[prio];
    char self[256], icon[256], lname[32];
    size_t i = 0;
    for (; p->name[i] && i + 1 < sizeof(lname); i++)
        lname[i] = (char)(p->name[i] >= 'A' && p->name[i] <= 'Z' ? p->name[i] + 32 : p->name[i]);
    lname[i] = '\0';
    snprintf(self, sizeof(self), "%s" JIRA_API "/priority/%s", base, p->id);
    snprintf(icon, sizeof(icon), "%s/images/icons/priorities/%s.svg", base, lname);
    return json_pack("{s:s,s:s,s:s,s:s}", "self", self, "iconUrl", icon, "name", p->name, "id",
                     p->id);
}

json_t *jira_project_ref_json(emu_t *emu, const jira_project_t *p)
{
    char self[256];
    snprintf(self, sizeof(self), "%s" JIRA_API "/project/%s", emu_base_url(emu), p->id);
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:b}", "self", self, "id", p->id, "key", p->key,
                          "name", p->name, "projectTypeKey", p->type_key, "simplified", 0);
    jira_avatars(emu, o, "project", p->id);
    return o;
}

json_t *jira_transition_json(emu_t *emu, const jira_issue_t *is, const jira_transition_t *t)
{
    return json_pack("{s:s,s:s,s:o,s:b,s:b,s:b,s:b,s:b,s:b}", "id", t->id, "name", t->name, "to",
                     jira_status_json(emu, t->to), "hasScreen", 0, "isGlobal", t->from.n == 0,
                     "isInitial", 0, "isAvailable", jira_transition_available(is, t),
                     "isConditional", 0, "looped", 0);
}

/* ---- issue beans -------------------------------------------------------------------------- */

static const struct {
    const char *name;
    unsigned bit;
} jira_field_names[] = {{"summary", JIRA_F_SUMMARY},
                        {"description", JIRA_F_DESCRIPTION},
                        {"labels", JIRA_F_LABELS},
                        {"status", JIRA_F_STATUS},
                        {"priority", JIRA_F_PRIORITY},
                        {"assignee", JIRA_F_ASSIGNEE},
                        {"reporter", JIRA_F_REPORTER},
                        {"creator", JIRA_F_CREATOR},
                        {"issuetype", JIRA_F_ISSUETYPE},
                        {"project", JIRA_F_PROJECT},
                        {"created", JIRA_F_CREATED},
                        {"updated", JIRA_F_UPDATED},
                        {"parent", JIRA_F_PARENT},
                        {"subtasks", JIRA_F_SUBTASKS},
                        {"statuscategorychangedate", JIRA_F_STATUSCATCHANGE},
                        {"resolution", JIRA_F_RESOLUTION},
                        {"resolutiondate", JIRA_F_RESOLUTIONDATE}};

static unsigned jira_field_bit(const char *name)
{
    for (size_t i = 0; i < sizeof(jira_field_names) / sizeof(jira_field_names[0]); i++)
        if (strcmp(jira_field_names[i].name, name) == 0)
            return jira_field_names[i].bit;
    return 0;
}

void jira_fieldsel_parse(jira_fieldsel_t *sel, const char *const *lists, size_t n, const char *dflt)
{
    unsigned add = 0, del = 0;
    int saw_id = 0, saw_other = 0;
    const char *one[1] = {dflt};
    if (n == 0) {
        lists = one;
        n = 1;
    }
    for (size_t i = 0; i < n; i++) {
        char buf[2048];
        const char *toks[64];
        snprintf(buf, sizeof(buf), "%s", lists[i] ? lists[i] : "");
        size_t nt = jira_split_list(buf, toks, 64);
        for (size_t t = 0; t < nt; t++) {
            const char *f = toks[t];
            if (strcmp(f, "*all") == 0 || strcmp(f, "*navigable") == 0) {
                add |= JIRA_F_ALL;
                saw_other = 1;
            } else if (f[0] == '-') {
                del |= jira_field_bit(f + 1);
                saw_other = 1;
            } else if (strcmp(f, "id") == 0) {
                saw_id = 1;
            } else {
                add |= jira_field_bit(f);
                saw_other = 1; /* unknown names are ignored, as Jira does */
            }
        }
    }
    sel->mask = add & ~del;
    sel->id_only = saw_id && !saw_other;
    if (!saw_id && !saw_other) /* "fields=" empty: Jira answers with the id only */
        sel->id_only = 1;
}

static void jira_set_time(json_t *o, const char *k, int64_t ms)
{
    char buf[40];
    jira_fmt_time(ms, buf, sizeof(buf));
    json_object_set_new(o, k, json_string(buf));
}

static json_t *jira_issue_mini(emu_t *emu, const jira_issue_t *is)
{
    char self[256];
    snprintf(self, sizeof(self), "%s" JIRA_API "/issue/%s", emu_base_url(emu), is->idstr);
    return json_pack(
        "{s:s,s:s,s:s,s:{s:s,s:o,s:o,s:o}}", "id", is->idstr, "key", is->key, "self", self,
        "fields", "summary", is->summary, "status", jira_status_json(emu, is->status), "priority",
        jira_priority_json(emu, is->priority), "issuetype", jira_itype_json(emu, is->itype));
}

static json_t *jira_issue_fields(emu_t *emu, const jira_issue_t *is, unsigned m)
{
    json_t *f = json_object();
    if (m & JIRA_F_SUMMARY)
        json_object_set_new(f, "summary", json_string(is->summary));
    if (m & JIRA_F_DESCRIPTION)
        json_object_set(f, "description", is->description ? is->description : json_null());
    if (m & JIRA_F_LABELS) {
        json_t *l = json_array();
        for (size_t i = 0; i < is->labels.n; i++)
            json_array_append_new(l, json_string(is->labels.v[i]));
        json_object_set_new(f, "labels", l);
    }
    if (m & JIRA_F_STATUS)
        json_object_set_new(f, "status", jira_status_json(emu, is->status));
    if (m & JIRA_F_PRIORITY)
        json_object_set_new(f, "priority", jira_priority_json(emu, is->priority));
    if (m & JIRA_F_ASSIGNEE)
        json_object_set_new(f, "assignee", jira_user_ref(emu, is->assignee));
    if (m & JIRA_F_REPORTER)
        json_object_set_new(f, "reporter", jira_user_ref(emu, is->reporter));
    if (m & JIRA_F_CREATOR)
        json_object_set_new(f, "creator", jira_user_ref(emu, is->reporter));
    if (m & JIRA_F_ISSUETYPE)
        json_object_set_new(f, "issuetype", jira_itype_json(emu, is->itype));
    if (m & JIRA_F_PROJECT)
        json_object_set_new(f, "project", jira_project_ref_json(emu, is->proj));
    if (m & JIRA_F_CREATED)
        jira_set_time(f, "created", is->created);
    if (m & JIRA_F_UPDATED)
        jira_set_time(f, "updated", is->updated);
    if (m & JIRA_F_STATUSCATCHANGE)
        jira_set_time(f, "statuscategorychangedate", is->status_changed);
    if ((m & JIRA_F_PARENT) && is->parent)
        json_object_set_new(f, "parent", jira_issue_mini(emu, is->parent));
    if (m & JIRA_F_SUBTASKS) {
        json_t *s = json_array();
        for (size_t i = 0; i < is->subtasks.n; i++)
            json_array_append_new(s, jira_issue_mini(emu, is->subtasks.v[i]));
        json_object_set_new(f, "subtasks", s);
    }
    if (m & JIRA_F_RESOLUTION)
        json_object_set_new(f, "resolution", json_null());
    if (m & JIRA_F_RESOLUTIONDATE) {
        if (is->status->category == JIRA_CAT_DONE)
            jira_set_time(f, "resolutiondate", is->status_changed);
        else
            json_object_set_new(f, "resolutiondate", json_null());
    }
    return f;
}

json_t *jira_issue_json(emu_t *emu, jira_issue_t *is, const jira_fieldsel_t *sel,
                        const char *const *props, size_t nprops)
{
    json_t *o;
    if (sel->id_only) {
        o = json_pack("{s:s}", "id", is->idstr);
    } else {
        char self[256];
        snprintf(self, sizeof(self), "%s" JIRA_API "/issue/%s", emu_base_url(emu), is->idstr);
        o = json_pack("{s:s,s:s,s:s,s:s,s:o}", "expand",
                      "renderedFields,names,schema,operations,editmeta,changelog,"
                      "versionedRepresentations",
                      "id", is->idstr, "self", self, "key", is->key, "fields",
                      jira_issue_fields(emu, is, sel->mask));
    }
    if (o && nprops > 0) {
        json_t *pj = json_object();
        int all = 0;
        for (size_t i = 0; i < nprops; i++)
            all |= strcmp(props[i], "*all") == 0;
        const char *k;
        json_t *v;
        json_object_foreach(is->props, k, v)
        {
            int want = all, excluded = 0;
            for (size_t i = 0; i < nprops; i++) {
                if (props[i][0] == '-' && strcmp(props[i] + 1, k) == 0)
                    excluded = 1;
                else if (strcmp(props[i], k) == 0)
                    want = 1;
            }
            want = want && !excluded;
            if (want)
                json_object_set(pj, k, v);
        }
        json_object_set_new(o, "properties", pj);
    }
    return o;
}

/* ---- module hooks ------------------------------------------------------------------------ */

static bool jira_issue_canon(emu_t *emu, const char *id_or_key, char *buf, size_t n)
{
    jira_issue_t *is = jira_issue_find(jira_st(emu), id_or_key);
    if (!is)
        return false;
    snprintf(buf, n, "%s", is->idstr);
    return true;
}

static void jira_h_server_info(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    char now[40];
    jira_fmt_time(emu_now_ms(), now, sizeof(now));
    emu_resp_json(resp, 200,
                  json_pack("{s:s,s:s,s:[i,i,i],s:s,s:i,s:s,s:s,s:s,s:s}", "baseUrl",
                            emu_base_url(emu), "version", "1001.0.0-SNAPSHOT", "versionNumbers",
                            1001, 0, 0, "deploymentType", "Cloud", "buildNumber", 100294,
                            "buildDate", "2025-12-01T00:00:00.000+0000", "serverTime", now,
                            "scmInfo", "57a0ca5b", "serverTitle", "Jira"));
}

static void jira_h_priorities(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    json_t *arr = json_array();
    for (int i = 0; i < JIRA_NPRIORITIES; i++) {
        json_t *p = jira_priority_json(emu, i);
        json_object_set_new(p, "isDefault", json_boolean(i == 2));
        json_array_append_new(arr, p);
    }
    emu_resp_json(resp, 200, arr);
}

void emu_jira_register(emu_t *emu)
{
    jira_st(emu);
    emu_set_issue_canon(emu, jira_issue_canon);
    static const emu_route_opts read = {.auth = EMU_AUTH_JIRA};
    emu_route(emu, "GET", JIRA_API "/serverInfo", jira_h_server_info, &read);
    emu_route(emu, "GET", JIRA_API "/priority", jira_h_priorities, &read);
    jira_register_issue_routes(emu);
    jira_register_search_routes(emu);
    jira_register_user_routes(emu);
    jira_register_project_routes(emu);
}

void emu_jira_reset(emu_t *emu)
{
    jira_state_free(emu_jira_state(emu));
    emu_set_jira_state(emu, jira_state_new());
}

void emu_jira_free(emu_t *emu)
{
    jira_state_free(emu_jira_state(emu));
    emu_set_jira_state(emu, NULL);
}

int emu_jira_seed(emu_t *emu, json_t *seed, char *err, size_t errsz)
{
    jira_ident_env_t env = {jira_env_user_exists, jira_env_group_id, emu};
    return jira_state_seed_json(jira_st(emu), seed, &env, err, errsz);
}

void emu_jira_seed_demo(emu_t *emu)
{
    jira_state_t *st = jira_st(emu);
    jira_state_seed_demo(st);
    /* Demo actors: the demo team develops DEMO, the admins administer both. */
    jira_role_t *dev = jira_role_find(st, 10000), *adm = jira_role_find(st, 10002);
    emu_group_t *team = emu_group_by_name(emu, "demo-team");
    emu_group_t *admins = emu_group_by_name(emu, "jira-administrators");
    for (size_t i = 0; i < st->projects.n; i++) {
        jira_project_t *p = st->projects.v[i];
        jira_role_actors_t *ra = adm && admins ? jira_project_role(p, adm) : NULL;
        if (ra)
            jira_actor_add(st, ra, JIRA_ACTOR_GROUP, admins->group_id);
        ra = dev && team && strcmp(p->key, "DEMO") == 0 ? jira_project_role(p, dev) : NULL;
        if (ra)
            jira_actor_add(st, ra, JIRA_ACTOR_GROUP, team->group_id);
    }
}

/* Group actors are dumped by name (ids are random per run), so that a dump
 * seeds another emulator whose store has groups of the same names. */
json_t *emu_jira_dump(emu_t *emu)
{
    json_t *d = jira_state_dump(jira_st(emu));
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(d, "projects"), i, p)
    {
        const char *rname;
        json_t *role;
        json_object_foreach(json_object_get(p, "roles"), rname, role)
        {
            size_t j;
            json_t *g;
            json_array_foreach(json_object_get(role, "groups"), j, g)
            {
                emu_group_t *grp = emu_group_by_group_id(emu, json_string_value(g));
                if (grp)
                    json_string_set(g, grp->name);
            }
        }
    }
    return d;
}
