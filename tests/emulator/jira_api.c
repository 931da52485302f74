/* jira_api.c - the Jira REST v3 module's hooks (emu.h) and shared JSON shapes. */
#include "jira.h"

#include <stdarg.h>
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

/* The shapes below are built on every GET of an issue or a user, so they
 * avoid json_pack (a format parser per call), snprintf (several times the
 * cost of the copies it does) and UTF-8 checks of text that is ASCII. Keys
 * are literals, hence the _nocheck setters. */

/* Appends the NULL-terminated strings of ap to buf[len..], truncating like
 * snprintf; returns the new length. */
static size_t jira_vcat(char *buf, size_t n, size_t len, va_list ap)
{
    for (const char *part = va_arg(ap, const char *); part; part = va_arg(ap, const char *)) {
        size_t l = strlen(part);
        if (l > n - 1 - len)
            l = n - 1 - len;
        memcpy(buf + len, part, l);
        len += l;
    }
    buf[len] = '\0';
    return len;
}

/* Concatenates the NULL-terminated argument strings into buf (n > 0). */
static size_t jira_cat(char *buf, size_t n, ...)
{
    va_list ap;
    va_start(ap, n);
    size_t len = jira_vcat(buf, n, 0, ap);
    va_end(ap);
    return len;
}

/* String node; skips jansson's UTF-8 check when the text is plain ASCII
 * (always valid), and lets it check anything else. */
static json_t *jira_strn(const char *v, size_t len)
{
    if (!v)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)v[i] >= 0x80)
            return json_stringn(v, len);
    }
    return json_stringn_nocheck(v, len);
}

static json_t *jira_str(const char *v)
{
    return v ? jira_strn(v, strlen(v)) : NULL;
}

static void jira_put(json_t *o, const char *key, json_t *v)
{
    json_object_set_new_nocheck(o, key, v);
}

/* URL node: the base URL, then the NULL-terminated argument strings. */
static json_t *jira_url(emu_t *emu, ...)
{
    char buf[512];
    size_t len = jira_cat(buf, sizeof(buf), emu_base_url(emu), (const char *)NULL);
    va_list ap;
    va_start(ap, emu);
    len = jira_vcat(buf, sizeof(buf), len, ap);
    va_end(ap);
    return jira_strn(buf, len);
}

void jira_avatars(emu_t *emu, json_t *o, const char *kind, const char *id)
{
    static const char *const sizes[][2] = {
        {"48x48", "48"}, {"24x24", "24"}, {"16x16", "16"}, {"32x32", "32"}};
    const char *param = strcmp(kind, "user") == 0 ? "&accountId=" : "&pid=";
    json_t *av = json_object();
    for (size_t i = 0; i < 4; i++) {
        char url[512];
        size_t n = jira_cat(url, sizeof(url), emu_base_url(emu), "/secure/", kind,
                            "avatar?size=", sizes[i][1], param, id, (const char *)NULL);
        jira_put(av, sizes[i][0], jira_strn(url, n));
    }
    jira_put(o, "avatarUrls", av);
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
    size_t n = jira_cat(self, sizeof(self), emu_base_url(emu),
                        JIRA_API "/user?accountId=", u->account_id, (const char *)NULL);
    json_t *o = json_object();
    if (!o)
        return NULL;
    jira_put(o, "self", jira_strn(self, n));
    jira_put(o, "accountId", jira_str(u->account_id));
    jira_put(o, "accountType", jira_str(u->account_type ? u->account_type : "atlassian"));
    if (u->email)
        jira_put(o, "emailAddress", jira_str(u->email));
    jira_avatars(emu, o, "user", u->account_id);
    jira_put(o, "displayName", jira_str(jira_display_name(u)));
    jira_put(o, "active", json_boolean(u->active && jira_user_visible(u)));
    jira_put(o, "timeZone", jira_str(u->timezone ? u->timezone : "Etc/UTC"));
    if (mode == JIRA_USER_DETAILS)
        return o;
    jira_put(o, "locale", jira_str(u->locale ? u->locale : "en_US"));
    if (mode >= JIRA_USER_FULL) {
        int expand_groups = mode == JIRA_USER_EXPANDED;
        json_t *items = json_array();
        for (size_t i = 0; expand_groups && i < u->ngroups; i++)
            json_array_append_new(items, jira_group_name_json(emu, u->groups[i]));
        json_t *groups = json_object();
        jira_put(groups, "size", json_integer((json_int_t)u->ngroups));
        jira_put(groups, "items", items);
        jira_put(o, "groups", groups);
        int access = (u->flags & EMU_USER_JIRA) != 0;
        json_t *roles = json_array();
        if (access && expand_groups)
            json_array_append_new(
                roles, json_pack("{s:s,s:s}", "key", "jira-software", "name", "Jira Software"));
        json_t *app = json_object();
        jira_put(app, "size", json_integer(access));
        jira_put(app, "items", roles);
        jira_put(o, "applicationRoles", app);
        jira_put(o, "expand", jira_str("groups,applicationRoles"));
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
    char cat[16];
    snprintf(cat, sizeof(cat), "%d", s->category);
    json_t *o = json_object(), *c = json_object();
    if (!o || !c) {
        json_decref(o);
        json_decref(c);
        return NULL;
    }
    jira_put(o, "self", jira_url(emu, JIRA_API "/status/", s->id, (const char *)NULL));
    jira_put(o, "description", jira_str(s->description));
    jira_put(o, "iconUrl", jira_url(emu, "/images/icons/statuses/generic.png", (const char *)NULL));
    jira_put(o, "name", jira_str(s->name));
    jira_put(o, "id", jira_str(s->id));
    jira_put(c, "self", jira_url(emu, JIRA_API "/statuscategory/", cat, (const char *)NULL));
    jira_put(c, "id", json_integer(s->category));
    jira_put(c, "key", jira_str(jira_cat_key(s->category)));
    jira_put(c, "colorName", jira_str(jira_cat_color(s->category)));
    jira_put(c, "name", jira_str(jira_cat_name(s->category)));
    jira_put(o, "statusCategory", c);
    return o;
}

json_t *jira_itype_json(emu_t *emu, const jira_itype_t *t)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    jira_put(o, "self", jira_url(emu, JIRA_API "/issuetype/", t->id, (const char *)NULL));
    jira_put(o, "id", jira_str(t->id));
    jira_put(o, "description", jira_str(t->description));
    jira_put(o, "iconUrl",
             jira_url(emu, "/secure/viewavatar?size=medium&avatarType=issuetype&id=", t->id,
                      (const char *)NULL));
    jira_put(o, "name", jira_str(t->name));
    jira_put(o, "subtask", json_boolean(t->subtask));
    jira_put(o, "hierarchyLevel", json_integer(t->subtask ? -1 : 0));
    return o;
}

json_t *jira_priority_json(emu_t *emu, int prio)
{
    const jira_priority_t *p = &jira_priorities[prio];
    char lname[32];
    size_t i = 0;
    for (; p->name[i] && i + 1 < sizeof(lname); i++)
        lname[i] = (char)(p->name[i] >= 'A' && p->name[i] <= 'Z' ? p->name[i] + 32 : p->name[i]);
    lname[i] = '\0';
    json_t *o = json_object();
    if (!o)
        return NULL;
    jira_put(o, "self", jira_url(emu, JIRA_API "/priority/", p->id, (const char *)NULL));
    jira_put(o, "iconUrl",
             jira_url(emu, "/images/icons/priorities/", lname, ".svg", (const char *)NULL));
    jira_put(o, "name", jira_str(p->name));
    jira_put(o, "id", jira_str(p->id));
    return o;
}

json_t *jira_project_ref_json(emu_t *emu, const jira_project_t *p)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    jira_put(o, "self", jira_url(emu, JIRA_API "/project/", p->id, (const char *)NULL));
    jira_put(o, "id", jira_str(p->id));
    jira_put(o, "key", jira_str(p->key));
    jira_put(o, "name", jira_str(p->name));
    jira_put(o, "projectTypeKey", jira_str(p->type_key));
    jira_put(o, "simplified", json_false());
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
    jira_put(o, k, jira_str(buf));
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
        jira_put(f, "summary", jira_str(is->summary));
    /* Copies, not shared references: a bean that shares nothing with the
     * state is encoded after the emulator's lock is released (emu.h). */
    if (m & JIRA_F_DESCRIPTION)
        json_object_set_new(f, "description",
                            is->description ? emu_json_copy(is->description) : json_null());
    if (m & JIRA_F_LABELS) {
        json_t *l = json_array();
        for (size_t i = 0; i < is->labels.n; i++)
            json_array_append_new(l, jira_str(is->labels.v[i]));
        jira_put(f, "labels", l);
    }
    if (m & JIRA_F_STATUS)
        jira_put(f, "status", jira_status_json(emu, is->status));
    if (m & JIRA_F_PRIORITY)
        jira_put(f, "priority", jira_priority_json(emu, is->priority));
    if (m & JIRA_F_ASSIGNEE)
        jira_put(f, "assignee", jira_user_ref(emu, is->assignee));
    if (m & JIRA_F_REPORTER)
        jira_put(f, "reporter", jira_user_ref(emu, is->reporter));
    if (m & JIRA_F_CREATOR)
        jira_put(f, "creator", jira_user_ref(emu, is->reporter));
    if (m & JIRA_F_ISSUETYPE)
        jira_put(f, "issuetype", jira_itype_json(emu, is->itype));
    if (m & JIRA_F_PROJECT)
        jira_put(f, "project", jira_project_ref_json(emu, is->proj));
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
        jira_put(f, "resolution", json_null());
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
        o = json_object();
        if (!o)
            return NULL;
        jira_put(o, "expand",
                 jira_str("renderedFields,names,schema,operations,editmeta,changelog,"
                          "versionedRepresentations"));
        jira_put(o, "id", jira_str(is->idstr));
        jira_put(o, "self", jira_url(emu, JIRA_API "/issue/", is->idstr, (const char *)NULL));
        jira_put(o, "key", jira_str(is->key));
        jira_put(o, "fields", jira_issue_fields(emu, is, sel->mask));
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
                json_object_set_new(pj, k, emu_json_copy(v));
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
