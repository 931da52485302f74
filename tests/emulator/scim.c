/* SCIM 2.0 user provisioning API (notes §1) at /scim/directory/{directoryId}:
 * Users and Groups CRUD with Atlassian's filter, paging, PATCH and DELETE
 * rules, plus the discovery endpoints. Users and groups live in the shared
 * store, so a SCIM user is the same identity the Jira REST API shows. */
#include "emu_internal.h"

#include <ctype.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SCIM_USER_URN   "urn:ietf:params:scim:schemas:core:2.0:User"
#define SCIM_GROUP_URN  "urn:ietf:params:scim:schemas:core:2.0:Group"
#define SCIM_ENT_URN    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
#define SCIM_ENT_URN_21 "urn:ietf:params:scim:schemas:extension:enterprise:2.1:User"
#define SCIM_ATL_URN    "urn:scim:schemas:extension:atlassian-external:1.0"
#define SCIM_ATL_URN_11 "urn:scim:schemas:extension:atlassian-external:1.1"
#define SCIM_LIST_URN   "urn:ietf:params:scim:api:messages:2.0:ListResponse"
#define SCIM_PAGE_MAX   100

typedef struct scim_err {
    unsigned status;
    const char *type;
    char detail[300];
} scim_err_t;

static int scim_fail(scim_err_t *e, unsigned status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#include <stdarg.h>

static int scim_fail(scim_err_t *e, unsigned status, const char *type, const char *fmt, ...)
{
    e->status = status;
    e->type = type;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->detail, sizeof(e->detail), fmt, ap);
    va_end(ap);
    return -1;
}

static void scim_send_err(emu_resp_t *resp, const scim_err_t *e)
{
    emu_resp_scim_error(resp, e->status, e->type, e->detail);
}

static bool scim_dir_ok(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    const char *dir = emu_req_param(req, "directoryId");
    if (dir && strcmp(dir, emu_directory_id(emu)) == 0)
        return true;
    emu_resp_scim_error(resp, 404, NULL, "The directory does not exist.");
    return false;
}

/* ------------------------------------------------------------------------ */
/* Rendering                                                                 */

static void scim_location(emu_t *emu, const char *kind, const char *id, char *buf, size_t n)
{
    snprintf(buf, n, "%s/scim/directory/%s/%s/%s", emu_base_url(emu), emu_directory_id(emu), kind,
             id);
}

static json_t *scim_meta(emu_t *emu, const char *type, const char *kind, const char *id,
                         int64_t created, int64_t modified)
{
    char loc[512], c[40], m[40];
    scim_location(emu, kind, id, loc, sizeof(loc));
    emu_iso8601(created, c, sizeof(c));
    emu_iso8601(modified, m, sizeof(m));
    return json_pack("{s:s, s:s, s:s, s:s}", "resourceType", type, "location", loc, "created", c,
                     "lastModified", m);
}

static void scim_put_str(json_t *o, const char *k, const char *v)
{
    if (v)
        json_object_set_new(o, k, json_string(v));
}

static json_t *scim_user_json(emu_t *emu, const emu_user_t *u)
{
    json_t *o = json_pack("{s:[s,s,s], s:s}", "schemas", SCIM_USER_URN, SCIM_ENT_URN, SCIM_ATL_URN,
                          "id", u->id);
    scim_put_str(o, "externalId", u->external_id);
    scim_put_str(o, "userName", u->user_name);
    json_object_set_new(o, "emails", emu_user_emails(u));
    json_t *name = json_object();
    scim_put_str(name, "formatted", u->formatted_name);
    scim_put_str(name, "familyName", u->family_name);
    scim_put_str(name, "givenName", u->given_name);
    scim_put_str(name, "middleName", u->middle_name);
    scim_put_str(name, "honorificPrefix", u->honorific_prefix);
    scim_put_str(name, "honorificSuffix", u->honorific_suffix);
    if (json_object_size(name) > 0)
        json_object_set_new(o, "name", name);
    else
        json_decref(name);
    scim_put_str(o, "displayName", u->display_name);
    scim_put_str(o, "nickName", u->nick_name);
    scim_put_str(o, "title", u->title);
    scim_put_str(o, "preferredLanguage", u->preferred_language);
    scim_put_str(o, "department", u->department);
    scim_put_str(o, "organization", u->organization);
    scim_put_str(o, "timezone", u->timezone);
    if (u->phone_numbers && json_array_size(u->phone_numbers) > 0)
        json_object_set(o, "phoneNumbers", u->phone_numbers);
    json_object_set_new(o, "active", json_boolean(u->active));
    json_t *groups = json_array();
    for (size_t i = 0; i < u->ngroups; i++) {
        const emu_group_t *g = u->groups[i];
        if (!g->in_scim)
            continue;
        char ref[512];
        scim_location(emu, "Groups", g->id, ref, sizeof(ref));
        json_array_append_new(groups, json_pack("{s:s, s:s, s:s, s:s}", "type", "Group", "value",
                                                g->id, "display", g->name, "$ref", ref));
    }
    json_object_set_new(o, "groups", groups);
    json_t *ent = json_object();
    scim_put_str(ent, "organization", u->organization);
    scim_put_str(ent, "department", u->department);
    json_object_set_new(o, SCIM_ENT_URN, ent);
    json_object_set_new(o, SCIM_ATL_URN, json_pack("{s:s}", "atlassianAccountId", u->account_id));
    json_object_set_new(o, "meta",
                        scim_meta(emu, "User", "Users", u->id, u->created_ms, u->modified_ms));
    return o;
}

static json_t *scim_group_json(emu_t *emu, const emu_group_t *g)
{
    json_t *o = json_pack("{s:[s], s:s}", "schemas", SCIM_GROUP_URN, "id", g->id);
    scim_put_str(o, "externalId", g->external_id);
    json_object_set_new(o, "displayName", json_string(g->name));
    json_t *members = json_array();
    for (size_t i = 0; i < g->nmembers; i++) {
        const emu_user_t *u = g->members[i];
        if (!(u->flags & EMU_USER_SCIM))
            continue;
        char ref[512];
        scim_location(emu, "Users", u->id, ref, sizeof(ref));
        json_t *m = json_pack("{s:s, s:s, s:s}", "type", "User", "value", u->id, "$ref", ref);
        scim_put_str(m, "display", u->display_name ? u->display_name : u->user_name);
        json_array_append_new(members, m);
    }
    json_object_set_new(o, "members", members);
    json_object_set_new(o, "meta",
                        scim_meta(emu, "Group", "Groups", g->id, g->created_ms, g->modified_ms));
    return o;
}

/* attributes / excludedAttributes (top-level names or "a.b" sub-attributes;
 * id and schemas always stay). Returns -1 when both are given. */
static int scim_project(emu_req_t *req, json_t *res, scim_err_t *e)
{
    const char *inc = emu_req_query(req, "attributes");
    const char *exc = emu_req_query(req, "excludedAttributes");
    if (inc && exc)
        return scim_fail(e, 400, "invalidSyntax",
                         "attributes and excludedAttributes are mutually exclusive.");
    if (!inc && !exc)
        return 0;
    const char *list = inc ? inc : exc;
    if (exc) {
        char buf[512];
        snprintf(buf, sizeof(buf), "%s", list);
        char *save = NULL;
        for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            while (*t == ' ')
                t++;
            if (strcasecmp(t, "id") == 0 || strcasecmp(t, "schemas") == 0)
                continue;
            char *dot = strchr(t, '.');
            if (dot && strncmp(t, "urn:", 4) != 0) {
                *dot = '\0';
                json_t *sub = json_object_get(res, t);
                if (json_is_object(sub))
                    json_object_del(sub, dot + 1);
                else if (json_is_array(sub)) {
                    size_t i;
                    json_t *it;
                    json_array_foreach(sub, i, it)
                    {
                        json_object_del(it, dot + 1);
                    }
                }
            } else {
                const char *k;
                json_t *v;
                void *tmp;
                json_object_foreach_safe(res, tmp, k, v)
                {
                    if (strcasecmp(k, t) == 0)
                        json_object_del(res, k);
                }
            }
        }
        return 0;
    }
    const char *k;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(res, tmp, k, v)
    {
        if (strcmp(k, "id") == 0 || strcmp(k, "schemas") == 0)
            continue;
        bool keep = false;
        char buf[512];
        snprintf(buf, sizeof(buf), "%s", list);
        char *save = NULL;
        for (char *t = strtok_r(buf, ",", &save); t && !keep; t = strtok_r(NULL, ",", &save)) {
            while (*t == ' ')
                t++;
            char *dot = strncmp(t, "urn:", 4) != 0 ? strchr(t, '.') : NULL;
            size_t len = dot ? (size_t)(dot - t) : strlen(t);
            keep = strlen(k) == len && strncasecmp(k, t, len) == 0;
        }
        if (!keep)
            json_object_del(res, k);
    }
    return 0;
}

static void scim_send_resource(emu_req_t *req, emu_resp_t *resp, unsigned status, json_t *res)
{
    scim_err_t e;
    if (scim_project(req, res, &e) != 0) {
        json_decref(res);
        scim_send_err(resp, &e);
        return;
    }
    emu_resp_json(resp, status, res);
}

/* ------------------------------------------------------------------------ */
/* Filter and paging                                                         */

/* Parses `attr eq "value"`. Returns 0 and fills attr/value, or -1. */
static int scim_parse_filter(const char *f, char *attr, size_t an, char *val, size_t vn)
{
    while (isspace((unsigned char)*f))
        f++;
    size_t i = 0;
    while (*f && !isspace((unsigned char)*f) && i + 1 < an)
        attr[i++] = *f++;
    attr[i] = '\0';
    if (i == 0 || !isspace((unsigned char)*f))
        return -1;
    while (isspace((unsigned char)*f))
        f++;
    if (strncasecmp(f, "eq", 2) != 0 || !isspace((unsigned char)f[2]))
        return -1;
    f += 2;
    while (isspace((unsigned char)*f))
        f++;
    if (*f != '"')
        return -1;
    f++;
    size_t k = 0;
    while (*f && *f != '"') {
        if (*f == '\\' && f[1])
            f++;
        if (k + 1 >= vn)
            return -1;
        val[k++] = *f++;
    }
    val[k] = '\0';
    if (*f != '"')
        return -1;
    f++;
    while (isspace((unsigned char)*f))
        f++;
    return *f ? -1 : 0;
}

typedef struct scim_page {
    long long start; /* 1-based */
    long long count;
} scim_page_t;

static int scim_paging(emu_req_t *req, scim_page_t *p, scim_err_t *e)
{
    if (!emu_req_query_int(req, "startIndex", 1, &p->start))
        return scim_fail(e, 400, "invalidValue", "startIndex must be an integer.");
    if (!emu_req_query_int(req, "count", SCIM_PAGE_MAX, &p->count))
        return scim_fail(e, 400, "invalidValue", "count must be an integer.");
    if (p->start < 1)
        p->start = 1;
    if (p->count < 0)
        p->count = 0;
    if (p->count > SCIM_PAGE_MAX)
        p->count = SCIM_PAGE_MAX;
    return 0;
}

static json_t *scim_list(long long total, long long start, json_t *resources)
{
    return json_pack("{s:[s], s:I, s:I, s:I, s:o}", "schemas", SCIM_LIST_URN, "totalResults",
                     (json_int_t)total, "startIndex", (json_int_t)start, "itemsPerPage",
                     (json_int_t)json_array_size(resources), "Resources", resources);
}

static bool scim_add_projected(emu_req_t *req, json_t *arr, json_t *res, scim_err_t *e)
{
    if (scim_project(req, res, e) != 0) {
        json_decref(res);
        return false;
    }
    json_array_append_new(arr, res);
    return true;
}

/* ------------------------------------------------------------------------ */
/* User attribute handling                                                   */

typedef struct scim_strattr {
    const char *name;
    size_t off;
} scim_strattr_t;

static const scim_strattr_t SCIM_USER_STRS[] = {
    {"externalId", offsetof(emu_user_t, external_id)},
    {"displayName", offsetof(emu_user_t, display_name)},
    {"nickName", offsetof(emu_user_t, nick_name)},
    {"title", offsetof(emu_user_t, title)},
    {"preferredLanguage", offsetof(emu_user_t, preferred_language)},
    {"department", offsetof(emu_user_t, department)},
    {"organization", offsetof(emu_user_t, organization)},
    {"timezone", offsetof(emu_user_t, timezone)},
    {"locale", offsetof(emu_user_t, locale)},
};

static const scim_strattr_t SCIM_NAME_STRS[] = {
    {"givenName", offsetof(emu_user_t, given_name)},
    {"familyName", offsetof(emu_user_t, family_name)},
    {"middleName", offsetof(emu_user_t, middle_name)},
    {"honorificPrefix", offsetof(emu_user_t, honorific_prefix)},
    {"honorificSuffix", offsetof(emu_user_t, honorific_suffix)},
    {"formatted", offsetof(emu_user_t, formatted_name)},
};

#define SCIM_NSTRS(a) (sizeof(a) / sizeof((a)[0]))

static char **scim_field(emu_user_t *u, size_t off)
{
    return (char **)((char *)u + off);
}

static const scim_strattr_t *scim_find_attr(const scim_strattr_t *tab, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(tab[i].name, name) == 0)
            return &tab[i];
    return NULL;
}

static int scim_set_str(emu_user_t *u, const scim_strattr_t *a, json_t *v, scim_err_t *e)
{
    if (v && !json_is_null(v) && !json_is_string(v))
        return scim_fail(e, 400, "invalidValue", "%s must be a string.", a->name);
    emu_str_set(scim_field(u, a->off), json_string_value(v));
    return 0;
}

/* Validates an emails array and returns the primary address (borrowed). */
static int scim_check_emails(json_t *emails, const char **primary, scim_err_t *e)
{
    *primary = NULL;
    if (!json_is_array(emails))
        return scim_fail(e, 400, "invalidValue", "emails must be an array with a primary email.");
    size_t i;
    json_t *em;
    json_array_foreach(emails, i, em)
    {
        const char *v = json_string_value(json_object_get(em, "value"));
        if (!json_is_object(em) || !v || !*v)
            return scim_fail(e, 400, "invalidValue", "Each email needs a string value.");
        if (json_is_true(json_object_get(em, "primary"))) {
            if (*primary)
                return scim_fail(e, 400, "invalidValue", "Only one email can be primary.");
            *primary = v;
        }
    }
    if (!*primary)
        return scim_fail(e, 400, "invalidValue", "One email must be marked as primary.");
    return 0;
}

static int scim_set_emails(emu_t *emu, emu_user_t *u, json_t *emails, scim_err_t *e)
{
    const char *primary;
    if (scim_check_emails(emails, &primary, e) != 0)
        return -1;
    if (!emu_user_set_email(emu, u, primary, e->detail, sizeof(e->detail)))
        return scim_fail(e, 409, "uniqueness", "The email %s is used by another account.", primary);
    json_decref(u->emails);
    u->emails = json_deep_copy(emails);
    return 0;
}

static int scim_set_user_name(emu_t *emu, emu_user_t *u, json_t *v, scim_err_t *e)
{
    const char *s = json_string_value(v);
    if (!s || !*s)
        return scim_fail(e, 400, "invalidValue", "userName is required and must be a string.");
    if (!emu_user_set_user_name(emu, u, s, e->detail, sizeof(e->detail)))
        return scim_fail(e, 409, "uniqueness", "A user with userName %s already exists.", s);
    return 0;
}

static int scim_bool_value(json_t *v, bool *out)
{
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return 0;
    }
    const char *s = json_string_value(v);
    if (s && strcasecmp(s, "true") == 0) {
        *out = true;
        return 0;
    }
    if (s && strcasecmp(s, "false") == 0) {
        *out = false;
        return 0;
    }
    return -1;
}

static bool scim_is_ent_urn(const char *k)
{
    return strcasecmp(k, SCIM_ENT_URN) == 0 || strcasecmp(k, SCIM_ENT_URN_21) == 0;
}

static bool scim_is_readonly_key(const char *k)
{
    return strcasecmp(k, "schemas") == 0 || strcasecmp(k, "id") == 0 ||
           strcasecmp(k, "meta") == 0 || strcasecmp(k, "groups") == 0 ||
           strcasecmp(k, SCIM_ATL_URN) == 0 || strcasecmp(k, SCIM_ATL_URN_11) == 0;
}

/* Type checks of a full user body, so that POST/PUT fail before changing
 * anything (uniqueness is checked separately). */
static int scim_validate_user(json_t *body, scim_err_t *e)
{
    const char *primary;
    const char *un = json_string_value(json_object_get(body, "userName"));
    if (!un || !*un)
        return scim_fail(e, 400, "invalidValue", "userName is required and must be a string.");
    if (scim_check_emails(json_object_get(body, "emails"), &primary, e) != 0)
        return -1;
    for (size_t i = 0; i < SCIM_NSTRS(SCIM_USER_STRS); i++) {
        json_t *v = json_object_get(body, SCIM_USER_STRS[i].name);
        if (v && !json_is_null(v) && !json_is_string(v))
            return scim_fail(e, 400, "invalidValue", "%s must be a string.",
                             SCIM_USER_STRS[i].name);
    }
    json_t *name = json_object_get(body, "name");
    if (name && !json_is_null(name) && !json_is_object(name))
        return scim_fail(e, 400, "invalidValue", "name must be an object.");
    for (size_t i = 0; name && i < SCIM_NSTRS(SCIM_NAME_STRS); i++) {
        json_t *v = json_object_get(name, SCIM_NAME_STRS[i].name);
        if (v && !json_is_null(v) && !json_is_string(v))
            return scim_fail(e, 400, "invalidValue", "name.%s must be a string.",
                             SCIM_NAME_STRS[i].name);
    }
    json_t *phones = json_object_get(body, "phoneNumbers");
    if (phones && !json_is_null(phones) && !json_is_array(phones))
        return scim_fail(e, 400, "invalidValue", "phoneNumbers must be an array.");
    json_t *active = json_object_get(body, "active");
    bool a;
    if (active && scim_bool_value(active, &a) != 0)
        return scim_fail(e, 400, "invalidValue", "active must be a boolean.");
    return 0;
}

/* POST / PUT: replace every writable attribute from body (omitted ones are
 * cleared, read-only ones kept). userName and emails are validated first. */
static int scim_replace_user(emu_t *emu, emu_user_t *u, json_t *body, bool keep_active,
                             scim_err_t *e)
{
    if (scim_set_user_name(emu, u, json_object_get(body, "userName"), e) != 0)
        return -1;
    if (scim_set_emails(emu, u, json_object_get(body, "emails"), e) != 0)
        return -1;
    for (size_t i = 0; i < SCIM_NSTRS(SCIM_USER_STRS); i++)
        if (scim_set_str(u, &SCIM_USER_STRS[i], json_object_get(body, SCIM_USER_STRS[i].name), e) !=
            0)
            return -1;
    json_t *name = json_object_get(body, "name");
    if (name && !json_is_object(name))
        return scim_fail(e, 400, "invalidValue", "name must be an object.");
    for (size_t i = 0; i < SCIM_NSTRS(SCIM_NAME_STRS); i++)
        if (scim_set_str(u, &SCIM_NAME_STRS[i], json_object_get(name, SCIM_NAME_STRS[i].name), e) !=
            0)
            return -1;
    json_t *ent = json_object_get(body, SCIM_ENT_URN);
    if (!ent)
        ent = json_object_get(body, SCIM_ENT_URN_21);
    const char *ed = json_string_value(json_object_get(ent, "department"));
    const char *eo = json_string_value(json_object_get(ent, "organization"));
    if (ed && !u->department)
        emu_str_set(&u->department, ed);
    if (eo && !u->organization)
        emu_str_set(&u->organization, eo);
    json_t *phones = json_object_get(body, "phoneNumbers");
    json_decref(u->phone_numbers);
    u->phone_numbers = json_is_array(phones) ? json_deep_copy(phones) : NULL;
    json_t *active = json_object_get(body, "active");
    bool a = true;
    if (active && scim_bool_value(active, &a) != 0)
        return scim_fail(e, 400, "invalidValue", "active must be a boolean.");
    if (active || !keep_active)
        emu_user_set_active(emu, u, a);
    emu_user_touch(u);
    return 0;
}

/* Sets one attribute by (normalised) path for PATCH add/replace/remove. */
static int scim_patch_user_attr(emu_t *emu, emu_user_t *u, const char *op, const char *path,
                                json_t *value, scim_err_t *e);

static int scim_patch_user_object(emu_t *emu, emu_user_t *u, const char *op, json_t *value,
                                  scim_err_t *e)
{
    if (!json_is_object(value))
        return scim_fail(e, 400, "invalidValue",
                         "An operation without a path needs an object value.");
    const char *k;
    json_t *v;
    json_object_foreach(value, k, v)
    {
        if (scim_is_readonly_key(k))
            continue;
        if (scim_is_ent_urn(k) && json_is_object(v)) {
            const char *sk;
            json_t *sv;
            json_object_foreach(v, sk, sv)
            {
                if (scim_patch_user_attr(emu, u, op, sk, sv, e) != 0)
                    return -1;
            }
            continue;
        }
        if (scim_patch_user_attr(emu, u, op, k, v, e) != 0)
            return -1;
    }
    return 0;
}

/* `emails[type eq "work"].value` style paths: update the primary address. */
static int scim_patch_email_filter(emu_t *emu, emu_user_t *u, const char *op, json_t *value,
                                   scim_err_t *e)
{
    if (strcmp(op, "remove") == 0)
        return scim_fail(e, 400, "mutability", "The primary email cannot be removed.");
    const char *v = json_string_value(value);
    if (!v || !*v)
        return scim_fail(e, 400, "invalidValue", "The email value must be a string.");
    json_t *emails = json_pack("[{s:s, s:s, s:b}]", "value", v, "type", "work", "primary", 1);
    int rc = scim_set_emails(emu, u, emails, e);
    json_decref(emails);
    return rc;
}

static int scim_patch_phone_filter(emu_user_t *u, const char *op, const char *path, json_t *value,
                                   scim_err_t *e)
{
    char attr[64], type[64] = "work";
    const char *lb = strchr(path, '['), *rb = strchr(path, ']');
    if (lb && rb && rb > lb) {
        char filt[192];
        snprintf(filt, sizeof(filt), "%.*s", (int)(rb - lb - 1), lb + 1);
        if (scim_parse_filter(filt, attr, sizeof(attr), type, sizeof(type)) != 0 ||
            strcasecmp(attr, "type") != 0)
            return scim_fail(e, 400, "invalidPath", "Unsupported phoneNumbers filter.");
    }
    json_t *arr = u->phone_numbers ? u->phone_numbers : json_array();
    u->phone_numbers = arr;
    for (size_t i = json_array_size(arr); i > 0; i--) {
        const char *t = json_string_value(json_object_get(json_array_get(arr, i - 1), "type"));
        if (t && strcasecmp(t, type) == 0)
            json_array_remove(arr, i - 1);
    }
    if (strcmp(op, "remove") != 0) {
        if (!json_is_string(value))
            return scim_fail(e, 400, "invalidValue", "The phone number must be a string.");
        json_array_append_new(arr, json_pack("{s:O, s:s}", "value", value, "type", type));
    }
    return 0;
}

static int scim_patch_user_attr(emu_t *emu, emu_user_t *u, const char *op, const char *path,
                                json_t *value, scim_err_t *e)
{
    bool remove = strcmp(op, "remove") == 0;
    /* Strip schema URN prefixes: "urn:...:enterprise:2.0:User:department". */
    if (strncasecmp(path, SCIM_ENT_URN, strlen(SCIM_ENT_URN)) == 0 ||
        strncasecmp(path, SCIM_ENT_URN_21, strlen(SCIM_ENT_URN_21)) == 0) {
        path += strlen(SCIM_ENT_URN);
        if (*path == ':' || *path == '.')
            path++;
        else if (*path == '\0')
            return remove ? 0 : scim_patch_user_object(emu, u, op, value, e);
    } else if (strncasecmp(path, SCIM_USER_URN ":", strlen(SCIM_USER_URN) + 1) == 0) {
        path += strlen(SCIM_USER_URN) + 1;
    }
    if (strncasecmp(path, SCIM_ATL_URN, strlen(SCIM_ATL_URN) - 1) == 0)
        return scim_fail(e, 400, "mutability", "The Atlassian extension is read-only.");
    if (strncasecmp(path, "emails[", 7) == 0)
        return scim_patch_email_filter(emu, u, op, value, e);
    if (strncasecmp(path, "phoneNumbers[", 13) == 0)
        return scim_patch_phone_filter(u, op, path, value, e);
    if (strcasecmp(path, "userName") == 0) {
        if (remove)
            return scim_fail(e, 400, "mutability", "userName cannot be removed.");
        return scim_set_user_name(emu, u, value, e);
    }
    if (strcasecmp(path, "active") == 0) {
        bool a;
        if (remove)
            return scim_fail(e, 400, "mutability", "active cannot be removed.");
        if (scim_bool_value(value, &a) != 0)
            return scim_fail(e, 400, "invalidValue", "active must be a boolean.");
        emu_user_set_active(emu, u, a);
        return 0;
    }
    if (strcasecmp(path, "emails") == 0) {
        if (remove)
            return scim_fail(e, 400, "mutability", "The primary email cannot be removed.");
        if (strcmp(op, "add") == 0 && json_is_array(value)) {
            /* add appends; a new primary demotes the old one. */
            json_t *cur = emu_user_emails(u);
            json_t *merged = json_deep_copy(cur);
            json_decref(cur);
            bool new_primary = false;
            size_t i;
            json_t *em;
            json_array_foreach(value, i, em)
            {
                new_primary |= json_is_true(json_object_get(em, "primary"));
            }
            if (new_primary) {
                json_array_foreach(merged, i, em)
                {
                    json_object_set_new(em, "primary", json_false());
                }
            }
            json_array_extend(merged, value);
            int rc = scim_set_emails(emu, u, merged, e);
            json_decref(merged);
            return rc;
        }
        return scim_set_emails(emu, u, value, e);
    }
    if (strcasecmp(path, "phoneNumbers") == 0) {
        if (!remove && !json_is_array(value))
            return scim_fail(e, 400, "invalidValue", "phoneNumbers must be an array.");
        json_decref(u->phone_numbers);
        u->phone_numbers = remove ? NULL : json_deep_copy(value);
        return 0;
    }
    if (strcasecmp(path, "name") == 0) {
        if (remove) {
            for (size_t i = 0; i < SCIM_NSTRS(SCIM_NAME_STRS); i++)
                emu_str_set(scim_field(u, SCIM_NAME_STRS[i].off), NULL);
            return 0;
        }
        if (!json_is_object(value))
            return scim_fail(e, 400, "invalidValue", "name must be an object.");
        const char *k;
        json_t *v;
        json_object_foreach(value, k, v)
        {
            const scim_strattr_t *a = scim_find_attr(SCIM_NAME_STRS, SCIM_NSTRS(SCIM_NAME_STRS), k);
            if (!a)
                return scim_fail(e, 400, "invalidPath", "Unknown attribute name.%s.", k);
            if (scim_set_str(u, a, v, e) != 0)
                return -1;
        }
        return 0;
    }
    const scim_strattr_t *a = NULL;
    if (strncasecmp(path, "name.", 5) == 0)
        a = scim_find_attr(SCIM_NAME_STRS, SCIM_NSTRS(SCIM_NAME_STRS), path + 5);
    else
        a = scim_find_attr(SCIM_USER_STRS, SCIM_NSTRS(SCIM_USER_STRS), path);
    if (!a) {
        if (scim_is_readonly_key(path))
            return 0;
        return scim_fail(e, 400, "invalidPath", "The path %s is not supported.", path);
    }
    return scim_set_str(u, a, remove ? NULL : value, e);
}

/* Normalised op name ("add"/"remove"/"replace") or NULL. */
static const char *scim_op_name(json_t *op)
{
    const char *s = json_string_value(json_object_get(op, "op"));
    if (!s)
        return NULL;
    if (strcasecmp(s, "add") == 0)
        return "add";
    if (strcasecmp(s, "remove") == 0)
        return "remove";
    if (strcasecmp(s, "replace") == 0)
        return "replace";
    return NULL;
}

static json_t *scim_operations(json_t *body, scim_err_t *e)
{
    json_t *ops = json_object_get(body, "Operations");
    if (!ops)
        ops = json_object_get(body, "operations");
    if (!json_is_array(ops) || json_array_size(ops) == 0) {
        scim_fail(e, 400, "invalidSyntax", "The PATCH request needs a non-empty Operations array.");
        return NULL;
    }
    return ops;
}

/* ------------------------------------------------------------------------ */
/* User handlers                                                             */

static json_t *scim_body(emu_req_t *req, emu_resp_t *resp)
{
    char err[256];
    json_t *b = emu_req_json(req, err, sizeof(err));
    if (!b) {
        emu_resp_scim_error(resp, 400, "invalidSyntax", err);
        return NULL;
    }
    if (!json_is_object(b)) {
        emu_resp_scim_error(resp, 400, "invalidSyntax", "The request body must be a JSON object.");
        return NULL;
    }
    return b;
}

static emu_user_t *scim_find_user(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    emu_user_t *u = emu_user_by_id(emu, emu_req_param(req, "userId"));
    if (!u || !(u->flags & EMU_USER_SCIM)) {
        emu_resp_scim_error(resp, 404, NULL, "The user does not exist in this directory.");
        return NULL;
    }
    return u;
}

static void scim_users_list(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    if (!scim_dir_ok(emu, req, resp))
        return;
    scim_err_t e;
    scim_page_t p;
    if (scim_paging(req, &p, &e) != 0) {
        scim_send_err(resp, &e);
        return;
    }
    const char *filter = emu_req_query(req, "filter");
    json_t *res = json_array();
    long long total = 0;
    if (filter) {
        char attr[64], val[512];
        if (scim_parse_filter(filter, attr, sizeof(attr), val, sizeof(val)) != 0 ||
            (strcasecmp(attr, "userName") != 0 && strcasecmp(attr, "externalId") != 0)) {
            json_decref(res);
            emu_resp_scim_error(resp, 400, "invalidFilter",
                                "Only 'userName eq \"...\"' or 'externalId eq \"...\"' filters "
                                "are supported.");
            return;
        }
        if (strcasecmp(attr, "userName") == 0) {
            emu_user_t *u = emu_user_by_user_name(emu, val);
            if (u && (u->flags & EMU_USER_SCIM)) {
                total = 1;
                if (p.start == 1 && p.count > 0 &&
                    !scim_add_projected(req, res, scim_user_json(emu, u), &e))
                    goto fail;
            }
        } else {
            size_t n = emu_scim_user_count(emu);
            for (size_t i = 0; i < n; i++) {
                emu_user_t *u = emu_scim_user_at(emu, i);
                if (!u->external_id || strcmp(u->external_id, val) != 0)
                    continue;
                total++;
                if (total >= p.start && (long long)json_array_size(res) < p.count &&
                    !scim_add_projected(req, res, scim_user_json(emu, u), &e))
                    goto fail;
            }
        }
    } else {
        size_t n = emu_scim_user_count(emu);
        total = (long long)n;
        for (long long i = p.start - 1; i < total && (long long)json_array_size(res) < p.count;
             i++) {
            if (!scim_add_projected(req, res, scim_user_json(emu, emu_scim_user_at(emu, (size_t)i)),
                                    &e))
                goto fail;
        }
    }
    emu_resp_json(resp, 200, scim_list(total, p.start, res));
    return;
fail:
    json_decref(res);
    scim_send_err(resp, &e);
}

static void scim_user_get(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    if (!scim_dir_ok(emu, req, resp))
        return;
    emu_user_t *u = scim_find_user(emu, req, resp);
    if (u)
        scim_send_resource(req, resp, 200, scim_user_json(emu, u));
}

static void scim_user_post(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    if (!scim_dir_ok(emu, req, resp))
        return;
    json_t *body = scim_body(req, resp);
    if (!body)
        return;
    scim_err_t e;
    const char *user_name = json_string_value(json_object_get(body, "userName"));
    const char *primary = NULL;
    if (scim_validate_user(body, &e) != 0 ||
        scim_check_emails(json_object_get(body, "emails"), &primary, &e) != 0) {
        scim_send_err(resp, &e);
        return;
    }
    /* An existing account with this userName or email is linked, not
     * duplicated (notes §1.1); one that already has a SCIM record clashes. */
    emu_user_t *u = emu_user_by_user_name(emu, user_name);
    emu_user_t *by_mail = emu_user_by_email(emu, primary);
    if ((u && (u->flags & EMU_USER_SCIM)) || (by_mail && (by_mail->flags & EMU_USER_SCIM)) ||
        (u && by_mail && u != by_mail)) {
        emu_resp_scim_error(resp, 409, "uniqueness",
                            "A user with this userName or email already exists.");
        return;
    }
    if (!u)
        u = by_mail;
    bool created = false;
    if (!u) {
        u = emu_user_new(emu, NULL, NULL, NULL, EMU_USER_JIRA, e.detail, sizeof(e.detail));
        if (!u) {
            emu_resp_scim_error(resp, 500, NULL, e.detail);
            return;
        }
        created = true;
    }
    if (scim_replace_user(emu, u, body, false, &e) != 0) {
        scim_send_err(resp, &e);
        return;
    }
    u->flags |= EMU_USER_JIRA;
    emu_user_scim_link(emu, u);
    if (!created)
        u->created_ms = u->modified_ms;
    emu_count_mutation(emu, "user", u->account_id, "create");
    char loc[512];
    scim_location(emu, "Users", u->id, loc, sizeof(loc));
    emu_resp_header(resp, "Location", loc);
    scim_send_resource(req, resp, 201, scim_user_json(emu, u));
}

static void scim_user_put(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    if (!scim_dir_ok(emu, req, resp))
        return;
    emu_user_t *u = scim_find_user(emu, req, resp);
    if (!u)
        return;
    json_t *body = scim_body(req, resp);
    if (!body)
        return;
    scim_err_t e;
    const char *primary;
    if (scim_validate_user(body, &e) != 0 ||
        scim_check_emails(json_object_get(body, "emails"), &primary, &e) != 0) {
        scim_send_err(resp, &e);
        return;
    }
    const char *un = json_string_value(json_object_get(body, "userName"));
    emu_user_t *o1 = emu_user_by_user_name(emu, un), *o2 = emu_user_by_email(emu, primary);
    if ((o1 && o1 != u) || (o2 && o2 != u)) {
        emu_resp_scim_error(resp, 409, "uniqueness", "Another user has this userName or email.");
        return;
    }
    bool was_active = u->active;
    if (scim_replace_user(emu, u, body, true, &e) != 0) {
        scim_send_err(resp, &e);
        return;
    }
    emu_count_mutation(emu, "user", u->account_id, "update");
    if (was_active != u->active)
        emu_count_mutation(emu, "user", u->account_id, u->active ? "activate" : "deactivate");
    scim_send_resource(req, resp, 200, scim_user_json(emu, u));
}

static void scim_user_patch(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    if (!scim_dir_ok(emu, req, resp))
        return;
    emu_user_t *u = scim_find_user(emu, req, resp);
    if (!u)
        return;
    json_t *body = scim_body(req, resp);
    if (!body)
        return;
    scim_err_t e;
    json_t *ops = scim_operations(body, &e);
    if (!ops) {
        scim_send_err(resp, &e);
        return;
    }
    bool was_active = u->active;
    size_t i;
    json_t *op;
    json_array_foreach(ops, i, op)
    {
        const char *name = scim_op_name(op);
        const char *path = json_string_value(json_object_get(op, "path"));
        json_t *value = json_object_get(op, "value");
        int rc;
        if (!name)
            rc = scim_fail(&e, 400, "invalidSyntax", "op must be add, remove or replace.");
        else if (path && *path)
            rc = scim_patch_user_attr(emu, u, name, path, value, &e);
        else if (strcmp(name, "remove") == 0)
            rc = scim_fail(&e, 400, "noTarget", "A remove operation needs a path.");
        else
            rc = scim_patch_user_object(emu, u, name, value, &e);
        if (rc != 0) {
            /* Operations before the failing one stay applied: Atlassian
             * does not document PATCH atomicity, and this is the simple
             * reading of RFC 7644 §3.5.2 used by most servers. */
            scim_send_err(resp, &e);
            return;
        }
    }
    emu_user_touch(u);
    emu_count_mutation(emu, "user", u->account_id, "update");
    if (was_active != u->active)
        emu_count_mutation(emu, "user", u->account_id, u->active ? "activate" : "deactivate");
    scim_send_resource(req, resp, 200, scim_user_json(emu, u));
}

static void scim_user_delete(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    if (!scim_dir_ok(emu, req, resp))
        return;
    emu_user_t *u = scim_find_user(emu, req, resp);
    if (!u)
        return;
    /* Count membership removals done as a side effect. */
    for (size_t i = 0; i < u->ngroups; i++)
        emu_count_membership(emu, u->groups[i], u, "remove");
    emu_user_scim_unlink(emu, u);
    emu_count_mutation(emu, "user", u->account_id, "delete");
    emu_resp_empty(resp, 204);
}

/* ------------------------------------------------------------------------ */
/* Group handlers                                                            */

static emu_group_t *scim_find_group(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    emu_group_t *g = emu_group_by_id(emu, emu_req_param(req, "id"));
    if (!g || !g->in_scim) {
        emu_resp_scim_error(resp, 404, NULL, "The group does not exist in this directory.");
        return NULL;
    }
    return g;
}

/* Resolves [{"value": scimUserId}, ...] into users; unknown ids fail with
 * `missing_status` (400 on POST/PUT, 404 on PATCH). */
static int scim_member_users(emu_t *emu, json_t *arr, emu_user_t ***out, size_t *n,
                             unsigned missing_status, scim_err_t *e)
{
    *out = NULL;
    *n = 0;
    if (!arr || json_is_null(arr))
        return 0;
    if (!json_is_array(arr))
        return scim_fail(e, 400, "invalidValue", "members must be an array.");
    emu_user_t **users = calloc(json_array_size(arr) + 1, sizeof(*users));
    if (!users)
        return scim_fail(e, 500, NULL, "out of memory");
    size_t i;
    json_t *m;
    json_array_foreach(arr, i, m)
    {
        const char *id = json_string_value(json_object_get(m, "value"));
        emu_user_t *u = id ? emu_user_by_id(emu, id) : NULL;
        if (!u || !(u->flags & EMU_USER_SCIM)) {
            free(users);
            return scim_fail(e, missing_status, missing_status == 404 ? "noTarget" : "invalidValue",
                             "The user %s referenced as a member does not exist.",
                             id ? id : "(no value)");
        }
        users[(*n)++] = u;
    }
    *out = users;
    return 0;
}

static void scim_set_members(emu_t *emu, emu_group_t *g, emu_user_t **users, size_t n)
{
    for (size_t i = g->nmembers; i > 0; i--) {
        emu_user_t *u = g->members[i - 1];
        bool keep = false;
        for (size_t k = 0; k < n && !keep; k++)
            keep = users[k] == u;
        if (!keep && emu_member_remove(emu, g, u))
            emu_count_membership(emu, g, u, "remove");
    }
    for (size_t k = 0; k < n; k++)
        if (emu_member_add(emu, g, users[k]))
            emu_count_membership(emu, g, users[k], "add");
}

static void scim_groups_list(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    if (!scim_dir_ok(emu, req, resp))
        return;
    scim_err_t e;
    scim_page_t p;
    if (scim_paging(req, &p, &e) != 0) {
        scim_send_err(resp, &e);
        return;
    }
    const char *filter = emu_req_query(req, "filter");
    char attr[64], val[512];
    if (filter && (scim_parse_filter(filter, attr, sizeof(attr), val, sizeof(val)) != 0 ||
                   strcasecmp(attr, "displayName") != 0)) {
        emu_resp_scim_error(resp, 400, "invalidFilter",
                            "Only 'displayName eq \"...\"' filters are supported.");
        return;
    }
    json_t *res = json_array();
    long long total = 0;
    if (filter) {
        emu_group_t *g = emu_group_by_name(emu, val);
        if (g && g->in_scim) {
            total = 1;
            if (p.start == 1 && p.count > 0 &&
                !scim_add_projected(req, res, scim_group_json(emu, g), &e))
                goto fail;
        }
    } else {
        size_t n = emu_group_count(emu);
        for (size_t i = 0; i < n; i++) {
            emu_group_t *g = emu_group_at(emu, i);
            if (!g->in_scim)
                continue;
            total++;
            if (total >= p.start && (long long)json_array_size(res) < p.count &&
                !scim_add_projected(req, res, scim_group_json(emu, g), &e))
                goto fail;
        }
    }
    emu_resp_json(resp, 200, scim_list(total, p.start, res));
    return;
fail:
    json_decref(res);
    scim_send_err(resp, &e);
}

static void scim_group_get(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    if (!scim_dir_ok(emu, req, resp))
        return;
    emu_group_t *g = scim_find_group(emu, req, resp);
    if (g)
        scim_send_resource(req, resp, 200, scim_group_json(emu, g));
}

static void scim_group_post(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    if (!scim_dir_ok(emu, req, resp))
        return;
    json_t *body = scim_body(req, resp);
    if (!body)
        return;
    const char *name = json_string_value(json_object_get(body, "displayName"));
    if (!name || !*name) {
        emu_resp_scim_error(resp, 400, "invalidValue", "displayName is required.");
        return;
    }
    const char *ext = json_string_value(json_object_get(body, "externalId"));
    scim_err_t e;
    emu_user_t **users;
    size_t n;
    if (scim_member_users(emu, json_object_get(body, "members"), &users, &n, 400, &e) != 0) {
        scim_send_err(resp, &e);
        return;
    }
    emu_group_t *g = emu_group_by_name(emu, name);
    if (g) {
        free(users);
        emu_resp_scim_error(resp, 409, "uniqueness", "A group with this displayName exists.");
        return;
    }
    g = emu_group_new(emu, name, true, e.detail, sizeof(e.detail));
    if (!g) {
        free(users);
        emu_resp_scim_error(resp, 500, NULL, e.detail);
        return;
    }
    emu_str_set(&g->external_id, ext);
    emu_count_mutation(emu, "group", g->group_id, "create");
    scim_set_members(emu, g, users, n);
    free(users);
    char loc[512];
    scim_location(emu, "Groups", g->id, loc, sizeof(loc));
    emu_resp_header(resp, "Location", loc);
    scim_send_resource(req, resp, 201, scim_group_json(emu, g));
}

static int scim_check_rename(const emu_group_t *g, json_t *name, scim_err_t *e)
{
    const char *s = json_string_value(name);
    if (name && (!s || strcasecmp(s, g->name) != 0))
        return scim_fail(e, 400, "mutability",
                         "Renaming a group is not supported; create a new group instead.");
    return 0;
}

static void scim_group_put(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    if (!scim_dir_ok(emu, req, resp))
        return;
    emu_group_t *g = scim_find_group(emu, req, resp);
    if (!g)
        return;
    json_t *body = scim_body(req, resp);
    if (!body)
        return;
    scim_err_t e;
    emu_user_t **users;
    size_t n;
    if (scim_check_rename(g, json_object_get(body, "displayName"), &e) != 0 ||
        scim_member_users(emu, json_object_get(body, "members"), &users, &n, 400, &e) != 0) {
        scim_send_err(resp, &e);
        return;
    }
    emu_str_set(&g->external_id, json_string_value(json_object_get(body, "externalId")));
    scim_set_members(emu, g, users, n);
    free(users);
    emu_group_touch(g);
    emu_count_mutation(emu, "group", g->group_id, "update");
    scim_send_resource(req, resp, 200, scim_group_json(emu, g));
}

/* `members[value eq "id"]` -> id (into buf), or NULL when path is not that. */
static const char *scim_member_filter(const char *path, char *buf, size_t n, scim_err_t *e,
                                      bool *bad)
{
    *bad = false;
    if (strncasecmp(path, "members[", 8) != 0)
        return NULL;
    const char *rb = strrchr(path, ']');
    char attr[64], filt[512];
    if (!rb || rb[1] != '\0') {
        *bad = true;
        scim_fail(e, 400, "invalidPath", "Malformed members filter.");
        return NULL;
    }
    snprintf(filt, sizeof(filt), "%.*s", (int)(rb - path - 8), path + 8);
    if (scim_parse_filter(filt, attr, sizeof(attr), buf, n) != 0 ||
        strcasecmp(attr, "value") != 0) {
        *bad = true;
        scim_fail(e, 400, "invalidFilter", "Only members[value eq \"...\"] is supported.");
        return NULL;
    }
    return buf;
}

static int scim_group_op(emu_t *emu, emu_group_t *g, const char *op, const char *path,
                         json_t *value, scim_err_t *e)
{
    if (!path || !*path) {
        if (strcmp(op, "remove") == 0)
            return scim_fail(e, 400, "noTarget", "A remove operation needs a path.");
        if (!json_is_object(value))
            return scim_fail(e, 400, "invalidValue",
                             "An operation without a path needs an object value.");
        const char *k;
        json_t *v;
        json_object_foreach(value, k, v)
        {
            if (strcasecmp(k, "id") == 0 || strcasecmp(k, "schemas") == 0 ||
                strcasecmp(k, "meta") == 0)
                continue;
            if (scim_group_op(emu, g, op, k, v, e) != 0)
                return -1;
        }
        return 0;
    }
    char idbuf[128];
    bool bad;
    const char *one = scim_member_filter(path, idbuf, sizeof(idbuf), e, &bad);
    if (bad)
        return -1;
    if (one) {
        if (strcmp(op, "remove") != 0)
            return scim_fail(e, 400, "invalidPath", "Only remove takes a members filter.");
        emu_user_t *u = emu_user_by_id(emu, one);
        if (u && emu_member_remove(emu, g, u))
            emu_count_membership(emu, g, u, "remove");
        return 0;
    }
    if (strcasecmp(path, "members") == 0) {
        emu_user_t **users;
        size_t n;
        if (strcmp(op, "remove") == 0 && (!value || json_is_null(value))) {
            scim_set_members(emu, g, NULL, 0);
            return 0;
        }
        if (scim_member_users(emu, value, &users, &n, 404, e) != 0)
            return -1;
        if (strcmp(op, "replace") == 0) {
            scim_set_members(emu, g, users, n);
        } else {
            for (size_t i = 0; i < n; i++) {
                bool changed = strcmp(op, "add") == 0 ? emu_member_add(emu, g, users[i])
                                                      : emu_member_remove(emu, g, users[i]);
                if (changed)
                    emu_count_membership(emu, g, users[i], op);
            }
        }
        free(users);
        return 0;
    }
    if (strcasecmp(path, "displayName") == 0)
        return scim_check_rename(g, strcmp(op, "remove") == 0 ? json_null() : value, e);
    if (strcasecmp(path, "externalId") == 0) {
        if (strcmp(op, "remove") != 0 && !json_is_string(value))
            return scim_fail(e, 400, "invalidValue", "externalId must be a string.");
        emu_str_set(&g->external_id, strcmp(op, "remove") == 0 ? NULL : json_string_value(value));
        return 0;
    }
    return scim_fail(e, 400, "invalidPath", "The path %s is not supported on groups.", path);
}

static void scim_group_patch(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    if (!scim_dir_ok(emu, req, resp))
        return;
    emu_group_t *g = scim_find_group(emu, req, resp);
    if (!g)
        return;
    json_t *body = scim_body(req, resp);
    if (!body)
        return;
    scim_err_t e;
    json_t *ops = scim_operations(body, &e);
    if (!ops) {
        scim_send_err(resp, &e);
        return;
    }
    size_t i;
    json_t *op;
    json_array_foreach(ops, i, op)
    {
        const char *name = scim_op_name(op);
        if (!name) {
            emu_resp_scim_error(resp, 400, "invalidSyntax", "op must be add, remove or replace.");
            return;
        }
        if (scim_group_op(emu, g, name, json_string_value(json_object_get(op, "path")),
                          json_object_get(op, "value"), &e) != 0) {
            scim_send_err(resp, &e);
            return;
        }
    }
    emu_group_touch(g);
    emu_count_mutation(emu, "group", g->group_id, "update");
    scim_send_resource(req, resp, 200, scim_group_json(emu, g));
}

static void scim_group_delete(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    if (!scim_dir_ok(emu, req, resp))
        return;
    emu_group_t *g = scim_find_group(emu, req, resp);
    if (!g)
        return;
    for (size_t i = 0; i < g->nmembers; i++)
        emu_count_membership(emu, g, g->members[i], "remove");
    emu_count_mutation(emu, "group", g->group_id, "delete");
    emu_group_delete(emu, g);
    emu_resp_empty(resp, 204);
}

/* ------------------------------------------------------------------------ */
/* Discovery                                                                 */

static void scim_spc(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    if (!scim_dir_ok(emu, req, resp))
        return;
    json_t *o = json_pack(
        "{s:[s], s:s, s:{s:b}, s:{s:b, s:i, s:i}, s:{s:b}, s:{s:b}, s:{s:b}, s:{s:b, s:i}, "
        "s:[{s:s, s:s, s:s}], s:{s:s}}",
        "schemas", "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig",
        "documentationUri",
        "https://developer.atlassian.com/cloud/admin/user-provisioning/rest/intro/", "patch",
        "supported", 1, "bulk", "supported", 0, "maxOperations", 0, "maxPayloadSize", 0,
        "changePassword", "supported", 0, "sort", "supported", 0, "etag", "supported", 0, "filter",
        "supported", 1, "maxResults", SCIM_PAGE_MAX, "authenticationSchemes", "type",
        "oauthbearertoken", "name", "OAuth Bearer Token", "description",
        "Authentication with the directory API key", "meta", "resourceType",
        "ServiceProviderConfig");
    emu_resp_json(resp, 200, o);
}

static json_t *scim_resource_type(emu_t *emu, bool user)
{
    char loc[512];
    snprintf(loc, sizeof(loc), "%s/scim/directory/%s/ResourceTypes/%s", emu_base_url(emu),
             emu_directory_id(emu), user ? "User" : "Group");
    json_t *o = json_pack(
        "{s:[s], s:s, s:s, s:s, s:s, s:s, s:{s:s, s:s}}", "schemas",
        "urn:ietf:params:scim:schemas:core:2.0:ResourceType", "id", user ? "User" : "Group", "name",
        user ? "User" : "Group", "endpoint", user ? "/Users" : "/Groups", "description",
        user ? "User Account" : "Group", "schema", user ? SCIM_USER_URN : SCIM_GROUP_URN, "meta",
        "resourceType", "ResourceType", "location", loc);
    if (user)
        json_object_set_new(o, "schemaExtensions",
                            json_pack("[{s:s, s:b}, {s:s, s:b}]", "schema", SCIM_ENT_URN,
                                      "required", 0, "schema", SCIM_ATL_URN, "required", 0));
    return o;
}

static void scim_resource_types(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    if (!scim_dir_ok(emu, req, resp))
        return;
    json_t *res =
        json_pack("[o, o]", scim_resource_type(emu, true), scim_resource_type(emu, false));
    emu_resp_json(resp, 200, scim_list(2, 1, res));
}

static void scim_resource_type_user(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    if (scim_dir_ok(emu, req, resp))
        emu_resp_json(resp, 200, scim_resource_type(emu, true));
}

static void scim_resource_type_group(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    if (scim_dir_ok(emu, req, resp))
        emu_resp_json(resp, 200, scim_resource_type(emu, false));
}

static json_t *scim_attr(const char *name, const char *type, bool multi, bool required,
                         const char *mutability)
{
    return json_pack("{s:s, s:s, s:b, s:b, s:b, s:s, s:s, s:s}", "name", name, "type", type,
                     "multiValued", multi, "required", required, "caseExact", 0, "mutability",
                     mutability, "returned", "default", "uniqueness",
                     strcmp(name, "userName") == 0 || strcmp(name, "displayName") == 0 ? "server"
                                                                                       : "none");
}

static json_t *scim_schema(emu_t *emu, const char *urn)
{
    json_t *attrs = json_array();
    const char *name = NULL, *desc = NULL;
    if (strcmp(urn, SCIM_USER_URN) == 0) {
        name = "User";
        desc = "User Account";
        json_array_append_new(attrs, scim_attr("userName", "string", false, true, "readWrite"));
        json_array_append_new(attrs, scim_attr("name", "complex", false, false, "readWrite"));
        json_array_append_new(attrs, scim_attr("displayName", "string", false, false, "readWrite"));
        json_array_append_new(attrs, scim_attr("nickName", "string", false, false, "readWrite"));
        json_array_append_new(attrs, scim_attr("title", "string", false, false, "readWrite"));
        json_array_append_new(attrs,
                              scim_attr("preferredLanguage", "string", false, false, "readWrite"));
        json_array_append_new(attrs, scim_attr("department", "string", false, false, "readWrite"));
        json_array_append_new(attrs,
                              scim_attr("organization", "string", false, false, "readWrite"));
        json_array_append_new(attrs, scim_attr("timezone", "string", false, false, "readWrite"));
        json_array_append_new(attrs, scim_attr("active", "boolean", false, false, "readWrite"));
        json_array_append_new(attrs, scim_attr("emails", "complex", true, true, "readWrite"));
        json_array_append_new(attrs,
                              scim_attr("phoneNumbers", "complex", true, false, "readWrite"));
        json_array_append_new(attrs, scim_attr("groups", "complex", true, false, "readOnly"));
    } else if (strcmp(urn, SCIM_GROUP_URN) == 0) {
        name = "Group";
        desc = "Group";
        json_array_append_new(attrs, scim_attr("displayName", "string", false, true, "immutable"));
        json_array_append_new(attrs, scim_attr("members", "complex", true, false, "readWrite"));
    } else if (strcmp(urn, SCIM_ENT_URN) == 0) {
        name = "EnterpriseUser";
        desc = "Enterprise User";
        json_array_append_new(attrs, scim_attr("organization", "string", false, false, "readOnly"));
        json_array_append_new(attrs, scim_attr("department", "string", false, false, "readOnly"));
    } else {
        json_decref(attrs);
        return NULL;
    }
    char loc[512];
    snprintf(loc, sizeof(loc), "%s/scim/directory/%s/Schemas/%s", emu_base_url(emu),
             emu_directory_id(emu), urn);
    return json_pack("{s:[s], s:s, s:s, s:s, s:o, s:{s:s, s:s}}", "schemas",
                     "urn:ietf:params:scim:schemas:core:2.0:Schema", "id", urn, "name", name,
                     "description", desc, "attributes", attrs, "meta", "resourceType", "Schema",
                     "location", loc);
}

static void scim_schemas(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    if (!scim_dir_ok(emu, req, resp))
        return;
    json_t *res = json_pack("[o, o, o]", scim_schema(emu, SCIM_USER_URN),
                            scim_schema(emu, SCIM_GROUP_URN), scim_schema(emu, SCIM_ENT_URN));
    emu_resp_json(resp, 200, scim_list(3, 1, res));
}

static void scim_schema_one(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    if (!scim_dir_ok(emu, req, resp))
        return;
    const char *urn = emu_req_param(req, "schemaUrn");
    /* Accept the 2.1 spelling of the enterprise extension as an alias. */
    if (urn && strcmp(urn, SCIM_ENT_URN_21) == 0)
        urn = SCIM_ENT_URN;
    json_t *s = urn ? scim_schema(emu, urn) : NULL;
    if (!s) {
        emu_resp_scim_error(resp, 404, NULL, "The schema does not exist.");
        return;
    }
    emu_resp_json(resp, 200, s);
}

void emu_scim_register(emu_t *emu)
{
    const emu_route_opts o = {.auth = EMU_AUTH_SCIM};
#define SCIM_P "/scim/directory/{directoryId}"
    emu_route(emu, "GET", SCIM_P "/Users", scim_users_list, &o);
    emu_route(emu, "POST", SCIM_P "/Users", scim_user_post, &o);
    emu_route(emu, "GET", SCIM_P "/Users/{userId}", scim_user_get, &o);
    emu_route(emu, "PUT", SCIM_P "/Users/{userId}", scim_user_put, &o);
    emu_route(emu, "PATCH", SCIM_P "/Users/{userId}", scim_user_patch, &o);
    emu_route(emu, "DELETE", SCIM_P "/Users/{userId}", scim_user_delete, &o);
    emu_route(emu, "GET", SCIM_P "/Groups", scim_groups_list, &o);
    emu_route(emu, "POST", SCIM_P "/Groups", scim_group_post, &o);
    emu_route(emu, "GET", SCIM_P "/Groups/{id}", scim_group_get, &o);
    emu_route(emu, "PUT", SCIM_P "/Groups/{id}", scim_group_put, &o);
    emu_route(emu, "PATCH", SCIM_P "/Groups/{id}", scim_group_patch, &o);
    emu_route(emu, "DELETE", SCIM_P "/Groups/{id}", scim_group_delete, &o);
    emu_route(emu, "GET", SCIM_P "/ServiceProviderConfig", scim_spc, &o);
    emu_route(emu, "GET", SCIM_P "/ResourceTypes", scim_resource_types, &o);
    emu_route(emu, "GET", SCIM_P "/ResourceTypes/User", scim_resource_type_user, &o);
    emu_route(emu, "GET", SCIM_P "/ResourceTypes/Group", scim_resource_type_group, &o);
    emu_route(emu, "GET", SCIM_P "/Schemas", scim_schemas, &o);
    emu_route(emu, "GET", SCIM_P "/Schemas/{schemaUrn}", scim_schema_one, &o);
#undef SCIM_P
}
