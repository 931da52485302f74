/* jira_scim.c - SCIM user provisioning (Users, Groups) and the admin
 * lifecycle API: request builders and SCIM response parsers. */
#include "jira_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SCIM_PATCHOP  "urn:ietf:params:scim:api:messages:2.0:PatchOp"
#define SCIM_GROUP    "urn:ietf:params:scim:schemas:core:2.0:Group"
#define SCIM_EXT_10   "urn:scim:schemas:extension:atlassian-external:1.0"
#define SCIM_EXT_11   "urn:scim:schemas:extension:atlassian-external:1.1"
#define SCIM_CLASS_U  "scim.users"
#define SCIM_CLASS_G  "scim.groups"
#define ADMIN_CLASS   "admin.lifecycle"
#define SCIM_ID_CHARS 1024 /* server-assigned ids are short; this only bounds nonsense */

/* ---- builders -------------------------------------------------------------- */

/* `v` inside a SCIM filter string: wrapped in quotes, `"` and `\` escaped. */
static char *scim_quoted(const char *v)
{
    size_t n = strlen(v);
    char *out = malloc(jp_jira__quoted_size(v, n));
    if (out)
        jp_jira__quote(v, n, out);
    return out;
}

/* GET <resource>?filter=<attr> eq "<value>"[&excludedAttributes=<excluded>] */
static jp_err_t scim_find(const jp_site_t *site, const char *resource, const char *cls,
                          const char *attr, const char *value, const char *excluded,
                          jp_jira_req_t **out, char *errstr, size_t errstr_size)
{
    jp_jira__bld_t b;
    jp_jira__bld_init(&b, site, JP_JIRA_API_SCIM, JP_HTTP_GET, cls, errstr, errstr_size);
    /* Control characters are allowed: the filter travels escaped in the URL. */
    if (jp_jira__need_text(&b, attr, value, 0, 0)) {
        char *q = scim_quoted(value);
        size_t n = q ? strlen(attr) + 4 + strlen(q) + 1 : 0;
        char *filter = q ? malloc(n) : NULL;
        if (jp_jira__need_alloc(&b, filter)) {
            snprintf(filter, n, "%s eq %s", attr, q);
            jp_jira__bld_path(&b, resource);
            jp_jira__bld_query(&b, "filter", filter);
            if (excluded)
                jp_jira__bld_query(&b, "excludedAttributes", excluded);
        }
        free(filter);
        free(q);
    }
    return jp_jira__bld_finish(&b, NULL, NULL, JP_JIRA__IDEMPOTENT, out);
}

jp_err_t jp_jira_scim_user_find(const jp_site_t *site, const char *user_name, jp_jira_req_t **out,
                                char *errstr, size_t errstr_size)
{
    return scim_find(site, "/Users", SCIM_CLASS_U, "userName", user_name, NULL, out, errstr,
                     errstr_size);
}

jp_err_t jp_jira_scim_user_find_own(const jp_site_t *site, const char *user_name,
                                    jp_jira_req_t **out, char *errstr, size_t errstr_size)
{
    return scim_find(site, "/Users", SCIM_CLASS_U, "userName", user_name, "groups,meta", out,
                     errstr, errstr_size);
}

jp_err_t jp_jira_scim_user_find_external_id(const jp_site_t *site, const char *external_id,
                                            jp_jira_req_t **out, char *errstr, size_t errstr_size)
{
    return scim_find(site, "/Users", SCIM_CLASS_U, "externalId", external_id, NULL, out, errstr,
                     errstr_size);
}

jp_err_t jp_jira_scim_group_find(const jp_site_t *site, const char *display_name,
                                 jp_jira_req_t **out, char *errstr, size_t errstr_size)
{
    return scim_find(site, "/Groups", SCIM_CLASS_G, "displayName", display_name, NULL, out, errstr,
                     errstr_size);
}

/* <method> <resource>/<id> with an optional body. */
static jp_err_t scim_by_id(const jp_site_t *site, jp_http_method_t method, const char *resource,
                           const char *cls, const char *what, const char *id, json_t *body,
                           unsigned flags, jp_jira_req_t **out, char *errstr, size_t errstr_size)
{
    jp_jira__bld_t b;
    jp_jira__bld_init(&b, site, JP_JIRA_API_SCIM, method, cls, errstr, errstr_size);
    jp_jira__need_text(&b, what, id, SCIM_ID_CHARS, 0);
    jp_jira__bld_path(&b, resource);
    jp_jira__bld_seg(&b, what, id);
    return jp_jira__bld_finish(&b, body, NULL, flags, out);
}

jp_err_t jp_jira_scim_user_get(const jp_site_t *site, const char *id, jp_jira_req_t **out,
                               char *errstr, size_t errstr_size)
{
    return scim_by_id(site, JP_HTTP_GET, "/Users", SCIM_CLASS_U, "SCIM user id", id, NULL,
                      JP_JIRA__IDEMPOTENT, out, errstr, errstr_size);
}

jp_err_t jp_jira_scim_user_delete(const jp_site_t *site, const char *id, jp_jira_req_t **out,
                                  char *errstr, size_t errstr_size)
{
    return scim_by_id(site, JP_HTTP_DELETE, "/Users", SCIM_CLASS_U, "SCIM user id", id, NULL,
                      JP_JIRA__IDEMPOTENT, out, errstr, errstr_size);
}

jp_err_t jp_jira_scim_group_get(const jp_site_t *site, const char *id, jp_jira_req_t **out,
                                char *errstr, size_t errstr_size)
{
    return scim_by_id(site, JP_HTTP_GET, "/Groups", SCIM_CLASS_G, "SCIM group id", id, NULL,
                      JP_JIRA__IDEMPOTENT, out, errstr, errstr_size);
}

jp_err_t jp_jira_scim_user_create(const jp_site_t *site, const json_t *user, jp_jira_req_t **out,
                                  char *errstr, size_t errstr_size)
{
    jp_jira__bld_t b;
    jp_jira__bld_init(&b, site, JP_JIRA_API_SCIM, JP_HTTP_POST, SCIM_CLASS_U, errstr, errstr_size);
    if (jp_jira__bld_ok(&b) && !json_is_object(user))
        jp_jira__bld_fail(&b, JP_ERR_INVALID, "SCIM user body must be a JSON object");
    else if (jp_jira__bld_ok(&b) && !json_is_string(json_object_get(user, "userName")))
        jp_jira__bld_fail(&b, JP_ERR_INVALID, "SCIM user body needs a userName string");
    jp_jira__bld_path(&b, "/Users");
    return jp_jira__bld_finish(&b, jp_jira__bld_ok(&b) ? json_incref((json_t *)user) : NULL, NULL,
                               0, out);
}

/* The operations array of a PatchOp (RFC 7644 spells it Operations, the
 * Atlassian document operations), or NULL. */
static const json_t *patch_ops(const json_t *patch)
{
    const json_t *ops = json_object_get(patch, "Operations");
    return ops ? ops : json_object_get(patch, "operations");
}

/* Replacing or removing twice gives the same state; adding may not. */
static bool patch_idempotent(const json_t *ops)
{
    size_t i;
    json_t *op;
    json_array_foreach(ops, i, op)
    {
        const char *name = json_string_value(json_object_get(op, "op"));
        if (!name || (strcasecmp(name, "replace") != 0 && strcasecmp(name, "remove") != 0))
            return false;
    }
    return true;
}

jp_err_t jp_jira_scim_user_patch(const jp_site_t *site, const char *id, const json_t *patch,
                                 jp_jira_req_t **out, char *errstr, size_t errstr_size)
{
    const json_t *ops = patch_ops(patch);
    if (!json_is_object(patch) || !json_is_array(ops) || json_array_size(ops) == 0) {
        if (out)
            *out = NULL;
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "SCIM patch body must be an object with a non-empty Operations array");
    }
    return scim_by_id(site, JP_HTTP_PATCH, "/Users", SCIM_CLASS_U, "SCIM user id", id,
                      json_incref((json_t *)patch), patch_idempotent(ops) ? JP_JIRA__IDEMPOTENT : 0,
                      out, errstr, errstr_size);
}

static json_t *patchop(json_t *op)
{
    return op ? json_pack("{s:[s], s:[o]}", "schemas", SCIM_PATCHOP, "Operations", op) : NULL;
}

static jp_err_t nomem(jp_jira_req_t **out, char *errstr, size_t errstr_size)
{
    if (out)
        *out = NULL;
    return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory building a Jira request");
}

jp_err_t jp_jira_scim_user_set_active(const jp_site_t *site, const char *id, bool active,
                                      jp_jira_req_t **out, char *errstr, size_t errstr_size)
{
    json_t *body = patchop(
        json_pack("{s:s, s:s, s:b}", "op", "replace", "path", "active", "value", (int)active));
    if (!body)
        return nomem(out, errstr, errstr_size);
    return scim_by_id(site, JP_HTTP_PATCH, "/Users", SCIM_CLASS_U, "SCIM user id", id, body,
                      JP_JIRA__IDEMPOTENT, out, errstr, errstr_size);
}

/* GET <resource>?startIndex=&count= */
static jp_err_t scim_page(const jp_site_t *site, const char *resource, const char *cls,
                          long start_index, long count, jp_jira_req_t **out, char *errstr,
                          size_t errstr_size)
{
    jp_jira__bld_t b;
    jp_jira__bld_init(&b, site, JP_JIRA_API_SCIM, JP_HTTP_GET, cls, errstr, errstr_size);
    if (jp_jira__bld_ok(&b) && (start_index < 1 || start_index > INT32_MAX))
        jp_jira__bld_fail(&b, JP_ERR_INVALID, "startIndex must be between 1 and %d, got %ld",
                          INT32_MAX, start_index);
    if (jp_jira__bld_ok(&b) && (count < 1 || count > JP_JIRA_SCIM_PAGE_MAX))
        jp_jira__bld_fail(&b, JP_ERR_INVALID, "count must be between 1 and %d, got %ld",
                          JP_JIRA_SCIM_PAGE_MAX, count);
    jp_jira__bld_path(&b, resource);
    jp_jira__bld_query_long(&b, "startIndex", start_index);
    jp_jira__bld_query_long(&b, "count", count);
    return jp_jira__bld_finish(&b, NULL, NULL, JP_JIRA__IDEMPOTENT, out);
}

jp_err_t jp_jira_scim_users_page(const jp_site_t *site, long start_index, long count,
                                 jp_jira_req_t **out, char *errstr, size_t errstr_size)
{
    return scim_page(site, "/Users", SCIM_CLASS_U, start_index, count, out, errstr, errstr_size);
}

jp_err_t jp_jira_scim_users_filter_page(const jp_site_t *site, const char *attr, const char *value,
                                        long start_index, long count, jp_jira_req_t **out,
                                        char *errstr, size_t errstr_size)
{
    jp_jira__bld_t b;
    jp_jira__bld_init(&b, site, JP_JIRA_API_SCIM, JP_HTTP_GET, SCIM_CLASS_U, errstr, errstr_size);
    if (jp_jira__bld_ok(&b) &&
        (!attr || (strcmp(attr, "userName") != 0 && strcmp(attr, "externalId") != 0)))
        jp_jira__bld_fail(&b, JP_ERR_INVALID,
                          "SCIM user filters are on userName or externalId only, not %s",
                          attr ? attr : "(none)");
    if (jp_jira__bld_ok(&b) && (start_index < 1 || start_index > INT32_MAX))
        jp_jira__bld_fail(&b, JP_ERR_INVALID, "startIndex must be between 1 and %d, got %ld",
                          INT32_MAX, start_index);
    if (jp_jira__bld_ok(&b) && (count < 1 || count > JP_JIRA_SCIM_PAGE_MAX))
        jp_jira__bld_fail(&b, JP_ERR_INVALID, "count must be between 1 and %d, got %ld",
                          JP_JIRA_SCIM_PAGE_MAX, count);
    if (jp_jira__bld_ok(&b) && jp_jira__need_text(&b, attr, value, 0, 0)) {
        char *q = scim_quoted(value);
        size_t n = q ? strlen(attr) + 4 + strlen(q) + 1 : 0;
        char *filter = q ? malloc(n) : NULL;
        if (jp_jira__need_alloc(&b, filter)) {
            snprintf(filter, n, "%s eq %s", attr, q);
            jp_jira__bld_path(&b, "/Users");
            jp_jira__bld_query(&b, "filter", filter);
            jp_jira__bld_query_long(&b, "startIndex", start_index);
            jp_jira__bld_query_long(&b, "count", count);
        }
        free(filter);
        free(q);
    }
    return jp_jira__bld_finish(&b, NULL, NULL, JP_JIRA__IDEMPOTENT, out);
}

jp_err_t jp_jira_scim_groups_page(const jp_site_t *site, long start_index, long count,
                                  jp_jira_req_t **out, char *errstr, size_t errstr_size)
{
    return scim_page(site, "/Groups", SCIM_CLASS_G, start_index, count, out, errstr, errstr_size);
}

jp_err_t jp_jira_scim_group_create(const jp_site_t *site, const char *display_name,
                                   jp_jira_req_t **out, char *errstr, size_t errstr_size)
{
    jp_jira__bld_t b;
    jp_jira__bld_init(&b, site, JP_JIRA_API_SCIM, JP_HTTP_POST, SCIM_CLASS_G, errstr, errstr_size);
    json_t *body = NULL;
    if (jp_jira__need_text(&b, "group name", display_name, 255, JP_JIRA__NO_CONTROL)) {
        body = json_pack("{s:[s], s:s}", "schemas", SCIM_GROUP, "displayName", display_name);
        jp_jira__need_alloc(&b, body);
    }
    jp_jira__bld_path(&b, "/Groups");
    return jp_jira__bld_finish(&b, body, NULL, 0, out);
}

static jp_err_t group_patch(const jp_site_t *site, const char *group_id, const char *user_id,
                            bool add, jp_jira_req_t **out, char *errstr, size_t errstr_size)
{
    jp_jira__bld_t b;
    jp_jira__bld_init(&b, site, JP_JIRA_API_SCIM, JP_HTTP_PATCH, SCIM_CLASS_G, errstr, errstr_size);
    json_t *body = NULL;
    jp_jira__need_text(&b, "SCIM group id", group_id, SCIM_ID_CHARS, 0);
    if (jp_jira__need_text(&b, "SCIM user id", user_id, SCIM_ID_CHARS, JP_JIRA__NO_CONTROL)) {
        if (add) {
            body = patchop(json_pack("{s:s, s:s, s:[{s:s}]}", "op", "add", "path", "members",
                                     "value", "value", user_id));
        } else {
            char *q = scim_quoted(user_id);
            size_t n = q ? strlen(q) + 32 : 0;
            char *path = q ? malloc(n) : NULL;
            if (path) {
                snprintf(path, n, "members[value eq %s]", q);
                body = patchop(json_pack("{s:s, s:s}", "op", "remove", "path", path));
            }
            free(path);
            free(q);
        }
        jp_jira__need_alloc(&b, body);
    }
    jp_jira__bld_path(&b, "/Groups");
    jp_jira__bld_seg(&b, "SCIM group id", group_id);
    return jp_jira__bld_finish(&b, body, NULL, JP_JIRA__IDEMPOTENT, out);
}

jp_err_t jp_jira_scim_group_add_member(const jp_site_t *site, const char *group_id,
                                       const char *user_id, jp_jira_req_t **out, char *errstr,
                                       size_t errstr_size)
{
    return group_patch(site, group_id, user_id, true, out, errstr, errstr_size);
}

jp_err_t jp_jira_scim_group_remove_member(const jp_site_t *site, const char *group_id,
                                          const char *user_id, jp_jira_req_t **out, char *errstr,
                                          size_t errstr_size)
{
    return group_patch(site, group_id, user_id, false, out, errstr, errstr_size);
}

/* ---- admin lifecycle --------------------------------------------------------- */

static jp_err_t lifecycle(const jp_site_t *site, const char *account_id, const char *action,
                          json_t *body, jp_jira_req_t **out, char *errstr, size_t errstr_size)
{
    jp_jira__bld_t b;
    jp_jira__bld_init(&b, site, JP_JIRA_API_ADMIN, JP_HTTP_POST, ADMIN_CLASS, errstr, errstr_size);
    jp_jira__need_account_id(&b, "accountId", account_id);
    jp_jira__bld_path(&b, "/users");
    jp_jira__bld_seg(&b, "accountId", account_id);
    jp_jira__bld_path(&b, "/manage/lifecycle/");
    jp_jira__bld_path(&b, action);
    return jp_jira__bld_finish(&b, body, NULL, JP_JIRA__IDEMPOTENT, out);
}

jp_err_t jp_jira_admin_disable(const jp_site_t *site, const char *account_id, const char *message,
                               jp_jira_req_t **out, char *errstr, size_t errstr_size)
{
    size_t chars, at;
    if (message && jp_jira__scan(message, strlen(message), 0, &chars, &at) != JP_JIRA__SCAN_OK) {
        if (out)
            *out = NULL;
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "lifecycle message is not valid UTF-8 (at byte %zu)", at);
    }
    json_t *body = message ? json_pack("{s:s}", "message", message) : json_object();
    if (!body)
        return nomem(out, errstr, errstr_size);
    return lifecycle(site, account_id, "disable", body, out, errstr, errstr_size);
}

jp_err_t jp_jira_admin_enable(const jp_site_t *site, const char *account_id, jp_jira_req_t **out,
                              char *errstr, size_t errstr_size)
{
    return lifecycle(site, account_id, "enable", NULL, out, errstr, errstr_size);
}

/* ---- SCIM parsers ------------------------------------------------------------ */

void jp_jira_scim_user_destroy(jp_jira_scim_user_t *u)
{
    if (!u)
        return;
    free(u->id);
    free(u->user_name);
    free(u->external_id);
    free(u->account_id);
    free(u->primary_email);
    json_decref(u->json);
    free(u);
}

/* The atlassianAccountId of the 1.0 or (GOA's spelling) 1.1 extension. */
static jp_err_t scim_account_id(const json_t *res, char **out, char *errstr, size_t errstr_size)
{
    static const char *const urns[] = {SCIM_EXT_10, SCIM_EXT_11};
    *out = NULL;
    for (size_t i = 0; i < 2; i++) {
        json_t *ext = json_object_get(res, urns[i]);
        if (!ext || json_is_null(ext))
            continue;
        if (!json_is_object(ext))
            return jp_jira__bad(errstr, errstr_size, urns[i], "expected an object, got %s",
                                jp_jira__kind(ext));
        jp_err_t err =
            jp_jira__get_str(ext, "atlassianAccountId", false, urns[i], out, errstr, errstr_size);
        if (err != JP_OK || *out)
            return err;
    }
    return JP_OK;
}

/* The primary email's value, else the first one's. */
static jp_err_t scim_email(const json_t *res, char **out, char *errstr, size_t errstr_size)
{
    json_t *emails = json_object_get(res, "emails");
    *out = NULL;
    if (!emails || json_is_null(emails))
        return JP_OK;
    if (!json_is_array(emails))
        return jp_jira__bad(errstr, errstr_size, "emails", "expected an array, got %s",
                            jp_jira__kind(emails));
    const char *pick = NULL;
    size_t i;
    json_t *e;
    json_array_foreach(emails, i, e)
    {
        const char *v = json_string_value(json_object_get(e, "value"));
        if (!v)
            continue;
        if (!pick)
            pick = v;
        if (json_is_true(json_object_get(e, "primary"))) {
            pick = v;
            break;
        }
    }
    if (pick && !(*out = strdup(pick)))
        return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory parsing a response");
    return JP_OK;
}

jp_err_t jp_jira_scim_user_from_json(const json_t *res, jp_jira_scim_user_t **out, char *errstr,
                                     size_t errstr_size)
{
    *out = NULL;
    if (!json_is_object(res))
        return jp_jira__bad(errstr, errstr_size, "user", "expected an object, got %s",
                            jp_jira__kind(res));
    jp_jira_scim_user_t *u = calloc(1, sizeof(*u));
    if (!u)
        return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory parsing a response");
    jp_err_t err = jp_jira__get_str(res, "id", true, "", &u->id, errstr, errstr_size);
    if (!err)
        err = jp_jira__get_str(res, "userName", true, "", &u->user_name, errstr, errstr_size);
    if (!err)
        err = jp_jira__get_str(res, "externalId", false, "", &u->external_id, errstr, errstr_size);
    if (!err)
        err = scim_account_id(res, &u->account_id, errstr, errstr_size);
    if (!err)
        err = scim_email(res, &u->primary_email, errstr, errstr_size);
    if (!err)
        err = jp_jira__get_bool(res, "active", false, "", &u->active, &u->active_present, errstr,
                                errstr_size);
    if (!err && (!*u->id || !*u->user_name))
        err = jp_jira__bad(errstr, errstr_size, !*u->id ? "id" : "userName", "is empty");
    if (err) {
        jp_jira_scim_user_destroy(u);
        return err;
    }
    u->json = json_incref((json_t *)res);
    *out = u;
    return JP_OK;
}

jp_err_t jp_jira_parse_scim_user(long status, const char *body, size_t body_len,
                                 jp_jira_scim_user_t **out, char *errstr, size_t errstr_size)
{
    json_t *root;
    *out = NULL;
    jp_err_t err =
        jp_jira__load(JP_JIRA_API_SCIM, status, body, body_len, &root, errstr, errstr_size);
    if (err)
        return err;
    err = jp_jira_scim_user_from_json(root, out, errstr, errstr_size);
    json_decref(root);
    return err;
}

void jp_jira_scim_list_destroy(jp_jira_scim_list_t *l)
{
    if (!l)
        return;
    json_decref(l->resources);
    free(l);
}

jp_err_t jp_jira_parse_scim_list(long status, const char *body, size_t body_len,
                                 jp_jira_scim_list_t **out, char *errstr, size_t errstr_size)
{
    json_t *root;
    *out = NULL;
    jp_err_t err =
        jp_jira__load(JP_JIRA_API_SCIM, status, body, body_len, &root, errstr, errstr_size);
    if (err)
        return err;
    jp_jira_scim_list_t *l = calloc(1, sizeof(*l));
    json_t *res = json_object_get(root, "Resources");
    if (!l) {
        err = jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory parsing a response");
    } else if (!json_is_object(root)) {
        err = jp_jira__bad(errstr, errstr_size, NULL, "expected a ListResponse object, got %s",
                           jp_jira__kind(root));
    } else if (res && !json_is_null(res) && !json_is_array(res)) {
        err = jp_jira__bad(errstr, errstr_size, "Resources", "expected an array, got %s",
                           jp_jira__kind(res));
    } else {
        /* RFC 7644 lets an empty result omit Resources. */
        l->resources = json_is_array(res) ? json_incref(res) : json_array();
        l->count = json_array_size(l->resources);
        err = l->resources ? JP_OK : jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
        if (!err)
            err = jp_jira__get_count(root, "totalResults", (int64_t)l->count, "", &l->total_results,
                                     errstr, errstr_size);
        if (!err)
            err =
                jp_jira__get_count(root, "startIndex", 1, "", &l->start_index, errstr, errstr_size);
        if (!err)
            err = jp_jira__get_count(root, "itemsPerPage", (int64_t)l->count, "",
                                     &l->items_per_page, errstr, errstr_size);
    }
    json_decref(root);
    if (err) {
        jp_jira_scim_list_destroy(l);
        return err;
    }
    *out = l;
    return JP_OK;
}

void jp_jira_scim_group_destroy(jp_jira_scim_group_t *g)
{
    if (!g)
        return;
    free(g->id);
    free(g->display_name);
    jp_jira__strv_free(g->members, g->member_count);
    free(g);
}

static jp_err_t scim_members(const json_t *res, jp_jira_scim_group_t *g, char *errstr,
                             size_t errstr_size)
{
    json_t *members = json_object_get(res, "members");
    if (!members || json_is_null(members))
        return JP_OK;
    if (!json_is_array(members))
        return jp_jira__bad(errstr, errstr_size, "members", "expected an array, got %s",
                            jp_jira__kind(members));
    size_t n = json_array_size(members);
    g->members = calloc(n ? n : 1, sizeof(char *));
    if (!g->members)
        return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory parsing a response");
    for (size_t i = 0; i < n; i++) {
        char path[48];
        snprintf(path, sizeof(path), "members[%zu]", i);
        json_t *m = json_array_get(members, i);
        if (!json_is_object(m))
            return jp_jira__bad(errstr, errstr_size, path, "expected an object, got %s",
                                jp_jira__kind(m));
        jp_err_t err = jp_jira__get_str(m, "value", true, path, &g->members[g->member_count],
                                        errstr, errstr_size);
        if (err)
            return err;
        g->member_count++;
    }
    return JP_OK;
}

jp_err_t jp_jira_scim_group_from_json(const json_t *res, jp_jira_scim_group_t **out, char *errstr,
                                      size_t errstr_size)
{
    *out = NULL;
    if (!json_is_object(res))
        return jp_jira__bad(errstr, errstr_size, "group", "expected an object, got %s",
                            jp_jira__kind(res));
    jp_jira_scim_group_t *g = calloc(1, sizeof(*g));
    if (!g)
        return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory parsing a response");
    jp_err_t err = jp_jira__get_str(res, "id", true, "", &g->id, errstr, errstr_size);
    if (!err)
        err = jp_jira__get_str(res, "displayName", true, "", &g->display_name, errstr, errstr_size);
    if (!err && !*g->id)
        err = jp_jira__bad(errstr, errstr_size, "id", "is empty");
    if (!err)
        err = scim_members(res, g, errstr, errstr_size);
    if (err) {
        jp_jira_scim_group_destroy(g);
        return err;
    }
    *out = g;
    return JP_OK;
}

jp_err_t jp_jira_parse_scim_group(long status, const char *body, size_t body_len,
                                  jp_jira_scim_group_t **out, char *errstr, size_t errstr_size)
{
    json_t *root;
    *out = NULL;
    jp_err_t err =
        jp_jira__load(JP_JIRA_API_SCIM, status, body, body_len, &root, errstr, errstr_size);
    if (err)
        return err;
    err = jp_jira_scim_group_from_json(root, out, errstr, errstr_size);
    json_decref(root);
    return err;
}

bool jp_jira_scim_group_has_member(const jp_jira_scim_group_t *g, const char *user_id)
{
    return g && jp_jira__strv_has(g->members, g->member_count, user_id);
}
