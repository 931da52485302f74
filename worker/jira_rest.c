/* jira_rest.c - Jira Cloud REST v3: users, groups, project roles, issues,
 * transitions and search/jql; request builders and response parsers. */
#include "jira_int.h"

#include "jiraprov/adf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ISSUE_FIELDS   "summary,status,labels,assignee,priority"
#define NAME_CHARS     255 /* Jira's limit for names, labels and the summary */
#define EVENT_ID_CHARS JP_EVENT_ID_MAX
#define JQL_MAX_CHARS  (64 * 1024)
#define SEARCH_DEFAULTS                                                                            \
    {                                                                                              \
        "summary", "status", "labels", "assignee", "priority"                                      \
    }

static const char *const default_fields[] = SEARCH_DEFAULTS;

/* ---- users, groups, roles ---------------------------------------------------- */

jp_err_t jp_jira_user_get(const jp_site_t *site, const char *account_id, jp_jira_req_t **out,
                          char *errstr, size_t errstr_size)
{
    jp_jira__bld_t b;
    jp_jira__bld_init(&b, site, JP_JIRA_API_REST, JP_HTTP_GET, "rest.user", errstr, errstr_size);
    jp_jira__need_account_id(&b, "accountId", account_id);
    jp_jira__bld_path(&b, "/user");
    jp_jira__bld_query(&b, "accountId", account_id);
    return jp_jira__bld_finish(&b, NULL, NULL, JP_JIRA__IDEMPOTENT, out);
}

jp_err_t jp_jira_user_search(const jp_site_t *site, const char *query, long start_at,
                             long max_results, jp_jira_req_t **out, char *errstr,
                             size_t errstr_size)
{
    jp_jira__bld_t b;
    jp_jira__bld_init(&b, site, JP_JIRA_API_REST, JP_HTTP_GET, "rest.user.search", errstr,
                      errstr_size);
    jp_jira__need_text(&b, "user search query", query, 0, 0);
    if (jp_jira__bld_ok(&b) && (start_at < 0 || start_at > INT32_MAX))
        jp_jira__bld_fail(&b, JP_ERR_INVALID, "startAt must be between 0 and %d, got %ld",
                          INT32_MAX, start_at);
    if (jp_jira__bld_ok(&b) && (max_results < 1 || max_results > 1000))
        jp_jira__bld_fail(&b, JP_ERR_INVALID, "maxResults must be between 1 and 1000, got %ld",
                          max_results);
    jp_jira__bld_path(&b, "/user/search");
    jp_jira__bld_query(&b, "query", query);
    jp_jira__bld_query_long(&b, "startAt", start_at);
    jp_jira__bld_query_long(&b, "maxResults", max_results);
    return jp_jira__bld_finish(&b, NULL, NULL, JP_JIRA__IDEMPOTENT, out);
}

jp_err_t jp_jira_group_find(const jp_site_t *site, const char *group_name, jp_jira_req_t **out,
                            char *errstr, size_t errstr_size)
{
    jp_jira__bld_t b;
    jp_jira__bld_init(&b, site, JP_JIRA_API_REST, JP_HTTP_GET, "rest.group.bulk", errstr,
                      errstr_size);
    jp_jira__need_text(&b, "group name", group_name, 0, 0);
    jp_jira__bld_path(&b, "/group/bulk");
    jp_jira__bld_query(&b, "groupName", group_name);
    return jp_jira__bld_finish(&b, NULL, NULL, JP_JIRA__IDEMPOTENT, out);
}

static jp_err_t group_user(const jp_site_t *site, jp_http_method_t method, const char *group_id,
                           const char *account_id, jp_jira_req_t **out, char *errstr,
                           size_t errstr_size)
{
    jp_jira__bld_t b;
    json_t *body = NULL;
    jp_jira__bld_init(&b, site, JP_JIRA_API_REST, method, "rest.group.user", errstr, errstr_size);
    jp_jira__need_text(&b, "groupId", group_id, 0, JP_JIRA__NO_CONTROL);
    jp_jira__need_account_id(&b, "accountId", account_id);
    jp_jira__bld_path(&b, "/group/user");
    jp_jira__bld_query(&b, "groupId", group_id);
    if (method == JP_HTTP_DELETE) {
        jp_jira__bld_query(&b, "accountId", account_id);
    } else if (jp_jira__bld_ok(&b)) {
        body = json_pack("{s:s}", "accountId", account_id);
        jp_jira__need_alloc(&b, body);
    }
    return jp_jira__bld_finish(&b, body, NULL, JP_JIRA__IDEMPOTENT, out);
}

jp_err_t jp_jira_group_add_user(const jp_site_t *site, const char *group_id, const char *account_id,
                                jp_jira_req_t **out, char *errstr, size_t errstr_size)
{
    return group_user(site, JP_HTTP_POST, group_id, account_id, out, errstr, errstr_size);
}

jp_err_t jp_jira_group_remove_user(const jp_site_t *site, const char *group_id,
                                   const char *account_id, jp_jira_req_t **out, char *errstr,
                                   size_t errstr_size)
{
    return group_user(site, JP_HTTP_DELETE, group_id, account_id, out, errstr, errstr_size);
}

jp_err_t jp_jira_group_members_page(const jp_site_t *site, const char *group_id, long start_at,
                                    long max_results, jp_jira_req_t **out, char *errstr,
                                    size_t errstr_size)
{
    jp_jira__bld_t b;
    jp_jira__bld_init(&b, site, JP_JIRA_API_REST, JP_HTTP_GET, "rest.group.member", errstr,
                      errstr_size);
    jp_jira__need_text(&b, "groupId", group_id, 0, JP_JIRA__NO_CONTROL);
    if (jp_jira__bld_ok(&b) && (start_at < 0 || start_at > INT32_MAX))
        jp_jira__bld_fail(&b, JP_ERR_INVALID, "startAt must be between 0 and %d, got %ld",
                          INT32_MAX, start_at);
    if (jp_jira__bld_ok(&b) && (max_results < 1 || max_results > JP_JIRA_MEMBER_PAGE_MAX))
        jp_jira__bld_fail(&b, JP_ERR_INVALID, "maxResults must be between 1 and %d, got %ld",
                          JP_JIRA_MEMBER_PAGE_MAX, max_results);
    jp_jira__bld_path(&b, "/group/member");
    jp_jira__bld_query(&b, "groupId", group_id);
    jp_jira__bld_query(&b, "includeInactiveUsers", "true");
    jp_jira__bld_query_long(&b, "startAt", start_at);
    jp_jira__bld_query_long(&b, "maxResults", max_results);
    return jp_jira__bld_finish(&b, NULL, NULL, JP_JIRA__IDEMPOTENT, out);
}

/* start_at and max_results of a paged REST list. */
static void page_args(jp_jira__bld_t *b, long start_at, long max_results, long max)
{
    if (jp_jira__bld_ok(b) && (start_at < 0 || start_at > INT32_MAX))
        jp_jira__bld_fail(b, JP_ERR_INVALID, "startAt must be between 0 and %d, got %ld", INT32_MAX,
                          start_at);
    if (jp_jira__bld_ok(b) && (max_results < 1 || max_results > max))
        jp_jira__bld_fail(b, JP_ERR_INVALID, "maxResults must be between 1 and %ld, got %ld", max,
                          max_results);
}

jp_err_t jp_jira_groups_page(const jp_site_t *site, long start_at, long max_results,
                             jp_jira_req_t **out, char *errstr, size_t errstr_size)
{
    jp_jira__bld_t b;
    jp_jira__bld_init(&b, site, JP_JIRA_API_REST, JP_HTTP_GET, "rest.group.bulk", errstr,
                      errstr_size);
    page_args(&b, start_at, max_results, JP_JIRA_MEMBER_PAGE_MAX);
    jp_jira__bld_path(&b, "/group/bulk");
    jp_jira__bld_query_long(&b, "startAt", start_at);
    jp_jira__bld_query_long(&b, "maxResults", max_results);
    return jp_jira__bld_finish(&b, NULL, NULL, JP_JIRA__IDEMPOTENT, out);
}

jp_err_t jp_jira_projects_page(const jp_site_t *site, long start_at, long max_results,
                               jp_jira_req_t **out, char *errstr, size_t errstr_size)
{
    jp_jira__bld_t b;
    jp_jira__bld_init(&b, site, JP_JIRA_API_REST, JP_HTTP_GET, "rest.project.search", errstr,
                      errstr_size);
    page_args(&b, start_at, max_results, 100);
    jp_jira__bld_path(&b, "/project/search");
    jp_jira__bld_query(&b, "orderBy", "key");
    jp_jira__bld_query_long(&b, "startAt", start_at);
    jp_jira__bld_query_long(&b, "maxResults", max_results);
    return jp_jira__bld_finish(&b, NULL, NULL, JP_JIRA__IDEMPOTENT, out);
}

/* /project/{key}/role[/{id}] */
static void role_path(jp_jira__bld_t *b, const char *project_key, int64_t role_id)
{
    jp_jira__need_project_key(b, project_key);
    jp_jira__bld_path(b, "/project");
    jp_jira__bld_seg(b, "project key", project_key);
    jp_jira__bld_path(b, "/role");
    if (role_id < 0)
        return;
    if (role_id == 0) {
        jp_jira__bld_fail(b, JP_ERR_INVALID, "project role id must be positive");
        return;
    }
    char id[32];
    snprintf(id, sizeof(id), "%lld", (long long)role_id);
    jp_jira__bld_seg(b, "project role id", id);
}

jp_err_t jp_jira_project_roles(const jp_site_t *site, const char *project_key, jp_jira_req_t **out,
                               char *errstr, size_t errstr_size)
{
    jp_jira__bld_t b;
    jp_jira__bld_init(&b, site, JP_JIRA_API_REST, JP_HTTP_GET, "rest.project.role", errstr,
                      errstr_size);
    role_path(&b, project_key, -1);
    return jp_jira__bld_finish(&b, NULL, NULL, JP_JIRA__IDEMPOTENT, out);
}

/* Role id 0 and negative ids are refused (-1 above means "no id"). */
static bool role_id_ok(jp_jira__bld_t *b, int64_t role_id)
{
    if (role_id > 0)
        return true;
    return jp_jira__bld_fail(b, JP_ERR_INVALID, "project role id must be positive, got %lld",
                             (long long)role_id);
}

jp_err_t jp_jira_project_role_get(const jp_site_t *site, const char *project_key, int64_t role_id,
                                  jp_jira_req_t **out, char *errstr, size_t errstr_size)
{
    jp_jira__bld_t b;
    jp_jira__bld_init(&b, site, JP_JIRA_API_REST, JP_HTTP_GET, "rest.project.role", errstr,
                      errstr_size);
    if (jp_jira__bld_ok(&b) && role_id_ok(&b, role_id))
        role_path(&b, project_key, role_id);
    return jp_jira__bld_finish(&b, NULL, NULL, JP_JIRA__IDEMPOTENT, out);
}

jp_err_t jp_jira_project_role_add_user(const jp_site_t *site, const char *project_key,
                                       int64_t role_id, const char *account_id, jp_jira_req_t **out,
                                       char *errstr, size_t errstr_size)
{
    jp_jira__bld_t b;
    json_t *body = NULL;
    jp_jira__bld_init(&b, site, JP_JIRA_API_REST, JP_HTTP_POST, "rest.project.role", errstr,
                      errstr_size);
    if (jp_jira__bld_ok(&b) && role_id_ok(&b, role_id))
        role_path(&b, project_key, role_id);
    if (jp_jira__need_account_id(&b, "accountId", account_id)) {
        body = json_pack("{s:[s]}", "user", account_id);
        jp_jira__need_alloc(&b, body);
    }
    return jp_jira__bld_finish(&b, body, NULL, JP_JIRA__IDEMPOTENT, out);
}

jp_err_t jp_jira_project_role_remove_user(const jp_site_t *site, const char *project_key,
                                          int64_t role_id, const char *account_id,
                                          jp_jira_req_t **out, char *errstr, size_t errstr_size)
{
    jp_jira__bld_t b;
    jp_jira__bld_init(&b, site, JP_JIRA_API_REST, JP_HTTP_DELETE, "rest.project.role", errstr,
                      errstr_size);
    if (jp_jira__bld_ok(&b) && role_id_ok(&b, role_id))
        role_path(&b, project_key, role_id);
    jp_jira__need_account_id(&b, "accountId", account_id);
    jp_jira__bld_query(&b, "user", account_id);
    return jp_jira__bld_finish(&b, NULL, NULL, JP_JIRA__IDEMPOTENT, out);
}

/* ---- issue fields ------------------------------------------------------------ */

static bool ref_ok(jp_jira__bld_t *b, const char *ref)
{
    if (!jp_jira__bld_ok(b))
        return false;
    if (!jp_event_valid_ref(ref))
        return jp_jira__bld_fail(b, JP_ERR_INVALID,
                                 "externalRef must match [A-Za-z0-9._:-]{1,128}");
    return true;
}

/* "idhub-ref-<ref>" */
static char *ref_label(const char *ref)
{
    size_t n = strlen(JP_JIRA_REF_LABEL_PREFIX) + strlen(ref) + 1;
    char *l = malloc(n);
    if (l)
        snprintf(l, n, "%s%s", JP_JIRA_REF_LABEL_PREFIX, ref);
    return l;
}

/* Appends a string to an array, failing the builder on allocation. */
static void push_str(jp_jira__bld_t *b, json_t *arr, const char *s)
{
    json_t *v = json_string(s);
    if (jp_jira__need_alloc(b, v) && json_array_append_new(arr, v) != 0)
        jp_jira__need_alloc(b, NULL);
}

/* The user's labels, checked, plus the ref label when `ref` is given. */
static json_t *labels_json(jp_jira__bld_t *b, const jp_jira_issue_fields_t *f, const char *ref)
{
    json_t *arr = json_array();
    if (!jp_jira__need_alloc(b, arr))
        return NULL;
    size_t n = f->labels_state == JP_VALUE ? f->labels_count : 0;
    if (n && !f->labels)
        jp_jira__bld_fail(b, JP_ERR_INVALID, "labels: %zu labels announced, none given", n);
    for (size_t i = 0; i < n && jp_jira__bld_ok(b); i++) {
        char what[32];
        snprintf(what, sizeof(what), "labels[%zu]", i);
        if (!jp_jira__need_text(b, what, f->labels[i], NAME_CHARS,
                                JP_JIRA__NO_CONTROL | JP_JIRA__NO_SPACE))
            break;
        if (strncasecmp(f->labels[i], JP_JIRA_REF_LABEL_PREFIX, strlen(JP_JIRA_REF_LABEL_PREFIX)) ==
            0) {
            jp_jira__bld_fail(b, JP_ERR_INVALID,
                              "%s: the prefix \"%s\" is reserved for the label jiraprov tags "
                              "issues with",
                              what, JP_JIRA_REF_LABEL_PREFIX);
            break;
        }
        push_str(b, arr, f->labels[i]);
    }
    if (ref && jp_jira__bld_ok(b)) {
        char *l = ref_label(ref);
        if (jp_jira__need_alloc(b, l))
            push_str(b, arr, l);
        free(l);
    }
    if (!jp_jira__bld_ok(b)) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

/* Sets fields[name] = v (stolen), failing the builder on allocation. */
static void put(jp_jira__bld_t *b, json_t *fields, const char *name, json_t *v)
{
    if (!jp_jira__bld_ok(b)) {
        json_decref(v);
        return;
    }
    if (jp_jira__need_alloc(b, v) && json_object_set_new(fields, name, v) != 0)
        jp_jira__need_alloc(b, NULL);
}

static bool description_ok(jp_jira__bld_t *b, const char *text)
{
    size_t chars, at, len = text ? strlen(text) : 0;
    if (!jp_jira__bld_ok(b))
        return false;
    if (!text)
        return jp_jira__bld_fail(b, JP_ERR_INVALID, "description is NULL");
    if (jp_jira__scan(text, len, 0, &chars, &at) != JP_JIRA__SCAN_OK)
        return jp_jira__bld_fail(b, JP_ERR_INVALID, "description is not valid UTF-8 (at byte %zu)",
                                 at);
    if (len > JP_EVENT_DESCRIPTION_MAX)
        return jp_jira__bld_fail(b, JP_ERR_INVALID, "description has %zu bytes, the maximum is %d",
                                 len, JP_EVENT_DESCRIPTION_MAX);
    return true;
}

/* summary, description, priority, assignee: shared by create and edit. On
 * create JP_NULL is refused; on edit it clears (summary cannot be cleared). */
static void text_fields(jp_jira__bld_t *b, json_t *fields, const jp_jira_issue_fields_t *f,
                        bool create)
{
    const struct {
        const char *name;
        const jp_optstr_t *v;
    } opt[] = {{"summary", &f->summary},
               {"description", &f->description},
               {"priority", &f->priority},
               {"assignee", &f->assignee_account_id}};
    for (size_t i = 0; i < sizeof(opt) / sizeof(opt[0]) && jp_jira__bld_ok(b); i++) {
        const char *name = opt[i].name, *v = opt[i].v->value;
        if (opt[i].v->state == JP_ABSENT)
            continue;
        if (opt[i].v->state == JP_NULL) {
            if (create || i == 0)
                jp_jira__bld_fail(b, JP_ERR_INVALID, "%s cannot be %s", name,
                                  create ? "null on create" : "cleared");
            else
                put(b, fields, name, json_null());
            continue;
        }
        if (i == 0 && jp_jira__need_text(b, name, v, NAME_CHARS, JP_JIRA__NO_CONTROL))
            put(b, fields, name, json_string(v));
        else if (i == 1 && description_ok(b, v))
            put(b, fields, name, jp_adf_from_text(v));
        else if (i == 2 && jp_jira__need_text(b, name, v, NAME_CHARS, JP_JIRA__NO_CONTROL))
            put(b, fields, name, json_pack("{s:s}", "name", v));
        else if (i == 3 && jp_jira__need_account_id(b, "assignee", v))
            put(b, fields, name, json_pack("{s:s}", "accountId", v));
    }
}

jp_err_t jp_jira_issue_create(const jp_site_t *site, const jp_jira_issue_fields_t *f,
                              jp_jira_req_t **out, char *errstr, size_t errstr_size)
{
    jp_jira__bld_t b;
    json_t *body = NULL, *fields = NULL;
    jp_jira__bld_init(&b, site, JP_JIRA_API_REST, JP_HTTP_POST, "rest.issue", errstr, errstr_size);
    if (jp_jira__bld_ok(&b) && !f)
        jp_jira__bld_fail(&b, JP_ERR_INVALID, "no issue fields given");
    if (jp_jira__bld_ok(&b) && f->summary.state != JP_VALUE)
        jp_jira__bld_fail(&b, JP_ERR_INVALID, "summary is required to create an issue");
    jp_jira__need_project_key(&b, f ? f->project : NULL);
    jp_jira__need_text(&b, "issue type", f ? f->issue_type : NULL, NAME_CHARS, JP_JIRA__NO_CONTROL);
    ref_ok(&b, f ? f->external_ref : NULL);
    jp_jira__need_text(&b, "event id", f ? f->event_id : NULL, EVENT_ID_CHARS, JP_JIRA__NO_CONTROL);
    if (jp_jira__bld_ok(&b)) {
        fields = json_pack("{s:{s:s}, s:{s:s}}", "project", "key", f->project, "issuetype", "name",
                           f->issue_type);
        jp_jira__need_alloc(&b, fields);
    }
    if (jp_jira__bld_ok(&b)) {
        text_fields(&b, fields, f, true);
        put(&b, fields, "labels", labels_json(&b, f, f->external_ref));
    }
    if (jp_jira__bld_ok(&b)) {
        body = json_pack("{s:O, s:[{s:s, s:{s:s, s:s}}]}", "fields", fields, "properties", "key",
                         JP_JIRA_PROPERTY_KEY, "value", "externalRef", f->external_ref, "eventId",
                         f->event_id);
        jp_jira__need_alloc(&b, body);
    }
    json_decref(fields);
    jp_jira__bld_path(&b, "/issue");
    return jp_jira__bld_finish(&b, body, NULL, 0, out);
}

/* /issue/{key}[suffix] */
static void issue_path(jp_jira__bld_t *b, const char *key, const char *suffix)
{
    jp_jira__need_issue_key(b, key);
    jp_jira__bld_path(b, "/issue");
    jp_jira__bld_seg(b, "issue key", key);
    if (suffix)
        jp_jira__bld_path(b, suffix);
}

jp_err_t jp_jira_issue_edit(const jp_site_t *site, const char *key, const jp_jira_issue_fields_t *f,
                            jp_jira_req_t **out, char *errstr, size_t errstr_size)
{
    jp_jira__bld_t b;
    json_t *fields = NULL;
    jp_jira__bld_init(&b, site, JP_JIRA_API_REST, JP_HTTP_PUT, "rest.issue", errstr, errstr_size);
    issue_path(&b, key, NULL);
    if (jp_jira__bld_ok(&b) && !f)
        jp_jira__bld_fail(&b, JP_ERR_INVALID, "no issue fields given");
    if (jp_jira__bld_ok(&b) && f->external_ref)
        ref_ok(&b, f->external_ref);
    if (jp_jira__bld_ok(&b)) {
        fields = json_object();
        jp_jira__need_alloc(&b, fields);
    }
    if (jp_jira__bld_ok(&b)) {
        text_fields(&b, fields, f, false);
        if (f->labels_state != JP_ABSENT)
            put(&b, fields, "labels", labels_json(&b, f, f->external_ref));
    }
    if (jp_jira__bld_ok(&b) && json_object_size(fields) == 0)
        jp_jira__bld_fail(&b, JP_ERR_INVALID, "issue edit has nothing to change");
    json_t *body = NULL;
    if (jp_jira__bld_ok(&b)) {
        body = json_pack("{s:O}", "fields", fields);
        jp_jira__need_alloc(&b, body);
    }
    json_decref(fields);
    return jp_jira__bld_finish(&b, body, key, JP_JIRA__IDEMPOTENT, out);
}

jp_err_t jp_jira_issue_get(const jp_site_t *site, const char *key, jp_jira_req_t **out,
                           char *errstr, size_t errstr_size)
{
    jp_jira__bld_t b;
    jp_jira__bld_init(&b, site, JP_JIRA_API_REST, JP_HTTP_GET, "rest.issue", errstr, errstr_size);
    issue_path(&b, key, NULL);
    jp_jira__bld_query(&b, "fields", ISSUE_FIELDS);
    jp_jira__bld_query(&b, "properties", JP_JIRA_PROPERTY_KEY);
    return jp_jira__bld_finish(&b, NULL, key, JP_JIRA__IDEMPOTENT, out);
}

jp_err_t jp_jira_issue_delete(const jp_site_t *site, const char *key, bool delete_subtasks,
                              jp_jira_req_t **out, char *errstr, size_t errstr_size)
{
    jp_jira__bld_t b;
    jp_jira__bld_init(&b, site, JP_JIRA_API_REST, JP_HTTP_DELETE, "rest.issue", errstr,
                      errstr_size);
    issue_path(&b, key, NULL);
    jp_jira__bld_query(&b, "deleteSubtasks", delete_subtasks ? "true" : "false");
    return jp_jira__bld_finish(&b, NULL, key, JP_JIRA__IDEMPOTENT, out);
}

jp_err_t jp_jira_issue_transitions(const jp_site_t *site, const char *key, jp_jira_req_t **out,
                                   char *errstr, size_t errstr_size)
{
    jp_jira__bld_t b;
    jp_jira__bld_init(&b, site, JP_JIRA_API_REST, JP_HTTP_GET, "rest.issue.transitions", errstr,
                      errstr_size);
    issue_path(&b, key, "/transitions");
    return jp_jira__bld_finish(&b, NULL, key, JP_JIRA__IDEMPOTENT, out);
}

jp_err_t jp_jira_issue_transition(const jp_site_t *site, const char *key, const char *transition_id,
                                  jp_jira_req_t **out, char *errstr, size_t errstr_size)
{
    jp_jira__bld_t b;
    json_t *body = NULL;
    jp_jira__bld_init(&b, site, JP_JIRA_API_REST, JP_HTTP_POST, "rest.issue.transitions", errstr,
                      errstr_size);
    issue_path(&b, key, "/transitions");
    size_t n = transition_id ? strlen(transition_id) : 0;
    if (jp_jira__bld_ok(&b) && (n == 0 || n > 18 || strspn(transition_id, "0123456789") != n))
        jp_jira__bld_fail(&b, JP_ERR_INVALID, "transition id must be 1 to 18 digits");
    if (jp_jira__bld_ok(&b)) {
        body = json_pack("{s:{s:s}}", "transition", "id", transition_id);
        jp_jira__need_alloc(&b, body);
    }
    /* Not idempotent: a repeat starts from the new status. */
    return jp_jira__bld_finish(&b, body, key, 0, out);
}

/* ---- search -------------------------------------------------------------- */

static json_t *string_array(jp_jira__bld_t *b, const char *what, const char *const *v, size_t n)
{
    json_t *arr = json_array();
    if (!jp_jira__need_alloc(b, arr))
        return NULL;
    for (size_t i = 0; i < n && jp_jira__bld_ok(b); i++)
        if (jp_jira__need_text(b, what, v[i], NAME_CHARS, JP_JIRA__NO_CONTROL | JP_JIRA__NO_SPACE))
            push_str(b, arr, v[i]);
    if (!jp_jira__bld_ok(b)) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

/* POST /search/jql: the body carries the JQL, so no value of it reaches
 * the URL. */
static jp_err_t search_req(jp_jira__bld_t *b, const char *jql, const char *const *fields,
                           size_t nfields, const char *token, long max_results, jp_jira_req_t **out)
{
    json_t *body = NULL;
    jp_jira__need_text(b, "JQL", jql, JQL_MAX_CHARS, JP_JIRA__NO_CONTROL);
    if (token)
        jp_jira__need_text(b, "nextPageToken", token, 0, JP_JIRA__NO_CONTROL);
    if (jp_jira__bld_ok(b) && (max_results < 1 || max_results > JP_JIRA_SEARCH_PAGE_MAX))
        jp_jira__bld_fail(b, JP_ERR_INVALID, "maxResults must be between 1 and %d, got %ld",
                          JP_JIRA_SEARCH_PAGE_MAX, max_results);
    if (jp_jira__bld_ok(b) && !fields) {
        fields = default_fields;
        nfields = sizeof(default_fields) / sizeof(default_fields[0]);
    }
    json_t *farr = jp_jira__bld_ok(b) ? string_array(b, "field name", fields, nfields) : NULL;
    if (jp_jira__bld_ok(b)) {
        body = json_pack("{s:s, s:o, s:[s], s:I}", "jql", jql, "fields", farr, "properties",
                         JP_JIRA_PROPERTY_KEY, "maxResults", (json_int_t)max_results);
        farr = NULL;
        if (jp_jira__need_alloc(b, body) && token &&
            json_object_set_new(body, "nextPageToken", json_string(token)) != 0)
            jp_jira__need_alloc(b, NULL);
    }
    json_decref(farr);
    jp_jira__bld_path(b, "/search/jql");
    return jp_jira__bld_finish(b, body, NULL, JP_JIRA__IDEMPOTENT | JP_JIRA__READ, out);
}

jp_err_t jp_jira_search(const jp_site_t *site, const char *jql, const char *const *fields,
                        size_t nfields, const char *next_page_token, long max_results,
                        jp_jira_req_t **out, char *errstr, size_t errstr_size)
{
    jp_jira__bld_t b;
    jp_jira__bld_init(&b, site, JP_JIRA_API_REST, JP_HTTP_POST, "rest.search", errstr, errstr_size);
    if (jp_jira__bld_ok(&b) && nfields && !fields)
        jp_jira__bld_fail(&b, JP_ERR_INVALID, "%zu fields announced, none given", nfields);
    return search_req(&b, jql, fields, nfields, next_page_token, max_results, out);
}

jp_err_t jp_jira_issue_find_by_ref(const jp_site_t *site, const char *project, const char *ref,
                                   jp_jira_find_t how, jp_jira_req_t **out, char *errstr,
                                   size_t errstr_size)
{
    jp_jira__bld_t b;
    char qproj[32] = "", qval[JP_EVENT_REF_MAX + 32] = "", jql[256] = "";
    jp_jira__bld_init(&b, site, JP_JIRA_API_REST, JP_HTTP_POST, "rest.search", errstr, errstr_size);
    ref_ok(&b, ref);
    if (project)
        jp_jira__need_project_key(&b, project);
    if (jp_jira__bld_ok(&b) && how != JP_JIRA_FIND_BY_LABEL && how != JP_JIRA_FIND_BY_PROPERTY)
        jp_jira__bld_fail(&b, JP_ERR_INVALID, "unknown find mode %d", (int)how);
    if (jp_jira__bld_ok(&b)) {
        char label[JP_EVENT_REF_MAX + 16];
        snprintf(label, sizeof(label), "%s%s", JP_JIRA_REF_LABEL_PREFIX, ref);
        const char *v = how == JP_JIRA_FIND_BY_LABEL ? label : ref;
        char why[160];
        jp_err_t err = jp_jira_jql_quote(v, qval, sizeof(qval), why, sizeof(why));
        if (!err && project)
            err = jp_jira_jql_quote(project, qproj, sizeof(qproj), why, sizeof(why));
        if (err)
            jp_jira__bld_fail(&b, err, "%s", why);
    }
    if (jp_jira__bld_ok(&b))
        snprintf(jql, sizeof(jql), "%s%s%s%s = %s ORDER BY created ASC",
                 project ? "project = " : "", qproj, project ? " AND " : "",
                 how == JP_JIRA_FIND_BY_LABEL ? "labels"
                                              : "issue.property[" JP_JIRA_PROPERTY_KEY
                                                "].externalRef",
                 qval);
    return search_req(&b, jql, NULL, 0, NULL, JP_JIRA_SEARCH_PAGE_MAX, out);
}

/* ---- issue parsers ------------------------------------------------------------ */

static void issue_clear(jp_jira_issue_t *is)
{
    free(is->id);
    free(is->key);
    free(is->summary);
    free(is->status);
    free(is->assignee);
    free(is->priority);
    jp_jira__strv_free(is->labels, is->label_count);
    free(is->prop_external_ref);
    free(is->prop_event_id);
    memset(is, 0, sizeof(*is));
}

void jp_jira_issue_destroy(jp_jira_issue_t *is)
{
    if (!is)
        return;
    issue_clear(is);
    free(is);
}

/* "path.key", or "key" at the top level. */
static void join(char *buf, size_t n, const char *path, const char *key)
{
    snprintf(buf, n, "%s%s%s", path && *path ? path : "", path && *path ? "." : "", key);
}

static jp_err_t nomem(char *errstr, size_t errstr_size)
{
    return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory parsing a response");
}

/* obj[key] as an object or null/absent (*out NULL). */
static jp_err_t get_obj(const json_t *obj, const char *key, const char *path, json_t **out,
                        char *errstr, size_t errstr_size)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return JP_OK;
    if (!json_is_object(v)) {
        char where[160];
        join(where, sizeof(where), path, key);
        return jp_jira__bad(errstr, errstr_size, where, "expected an object, got %s",
                            jp_jira__kind(v));
    }
    *out = v;
    return JP_OK;
}

/* obj[key] as an array of strings, copied. */
static jp_err_t get_strv(const json_t *obj, const char *key, const char *path, char ***out,
                         size_t *count, char *errstr, size_t errstr_size)
{
    json_t *v = json_object_get(obj, key);
    char where[160], item[200];
    join(where, sizeof(where), path, key);
    *out = NULL;
    *count = 0;
    if (!v || json_is_null(v))
        return JP_OK;
    if (!json_is_array(v))
        return jp_jira__bad(errstr, errstr_size, where, "expected an array, got %s",
                            jp_jira__kind(v));
    size_t n = json_array_size(v);
    if (!(*out = calloc(n ? n : 1, sizeof(char *))))
        return nomem(errstr, errstr_size);
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_array_get(v, i);
        if (!json_is_string(s)) {
            snprintf(item, sizeof(item), "%s[%zu]", where, i);
            return jp_jira__bad(errstr, errstr_size, item, "expected a string, got %s",
                                jp_jira__kind(s));
        }
        if (!((*out)[i] = strdup(json_string_value(s))))
            return nomem(errstr, errstr_size);
        *count = i + 1;
    }
    return JP_OK;
}

/* obj[key][sub] as a copied string, when obj[key] is an object. */
static jp_err_t get_nested(const json_t *obj, const char *key, const char *sub, const char *path,
                           char **out, char *errstr, size_t errstr_size)
{
    json_t *o;
    char where[160];
    *out = NULL;
    jp_err_t err = get_obj(obj, key, path, &o, errstr, errstr_size);
    if (err || !o)
        return err;
    join(where, sizeof(where), path, key);
    return jp_jira__get_str(o, sub, false, where, out, errstr, errstr_size);
}

/* The "idhub" property is data anyone who can edit the issue may write:
 * a malformed one is treated as absent rather than failing the read. */
static jp_err_t issue_property(const json_t *obj, jp_jira_issue_t *is, char *errstr,
                               size_t errstr_size)
{
    json_t *props = json_object_get(obj, "properties");
    json_t *p = json_object_get(props, JP_JIRA_PROPERTY_KEY);
    const char *ref = json_string_value(json_object_get(p, "externalRef"));
    const char *ev = json_string_value(json_object_get(p, "eventId"));
    if ((ref && !(is->prop_external_ref = strdup(ref))) ||
        (ev && !(is->prop_event_id = strdup(ev))))
        return nomem(errstr, errstr_size);
    return JP_OK;
}

static jp_err_t issue_from_json(const json_t *obj, const char *path, jp_jira_issue_t *is,
                                char *errstr, size_t errstr_size)
{
    json_t *fields = NULL;
    if (!json_is_object(obj))
        return jp_jira__bad(errstr, errstr_size, path, "expected an issue object, got %s",
                            jp_jira__kind(obj));
    jp_err_t err = jp_jira__get_str(obj, "key", true, path, &is->key, errstr, errstr_size);
    if (!err && !*is->key)
        err = jp_jira__bad(errstr, errstr_size, path, "key is empty");
    if (!err)
        err = jp_jira__get_str(obj, "id", false, path, &is->id, errstr, errstr_size);
    if (!err)
        err = get_obj(obj, "fields", path, &fields, errstr, errstr_size);
    if (!err && fields) {
        char fp[160];
        snprintf(fp, sizeof(fp), "%s%sfields", path, *path ? "." : "");
        err = jp_jira__get_str(fields, "summary", false, fp, &is->summary, errstr, errstr_size);
        if (!err)
            err = get_nested(fields, "status", "name", fp, &is->status, errstr, errstr_size);
        if (!err)
            err =
                get_nested(fields, "assignee", "accountId", fp, &is->assignee, errstr, errstr_size);
        if (!err)
            err = get_nested(fields, "priority", "name", fp, &is->priority, errstr, errstr_size);
        if (!err)
            err =
                get_strv(fields, "labels", fp, &is->labels, &is->label_count, errstr, errstr_size);
    }
    if (!err)
        err = issue_property(obj, is, errstr, errstr_size);
    return err;
}

static jp_err_t parse_issue(long status, const char *body, size_t body_len, bool created,
                            jp_jira_issue_t **out, char *errstr, size_t errstr_size)
{
    json_t *root;
    *out = NULL;
    jp_err_t err =
        jp_jira__load(JP_JIRA_API_REST, status, body, body_len, &root, errstr, errstr_size);
    if (err)
        return err;
    jp_jira_issue_t *is = calloc(1, sizeof(*is));
    if (!is)
        err = nomem(errstr, errstr_size);
    else
        err = issue_from_json(root, "", is, errstr, errstr_size);
    if (!err && created && (!is->id || !*is->id))
        err = jp_jira__bad(errstr, errstr_size, "id", "missing");
    json_decref(root);
    if (err) {
        jp_jira_issue_destroy(is);
        return err;
    }
    *out = is;
    return JP_OK;
}

jp_err_t jp_jira_parse_issue_created(long status, const char *body, size_t body_len,
                                     jp_jira_issue_t **out, char *errstr, size_t errstr_size)
{
    return parse_issue(status, body, body_len, true, out, errstr, errstr_size);
}

jp_err_t jp_jira_parse_issue(long status, const char *body, size_t body_len, jp_jira_issue_t **out,
                             char *errstr, size_t errstr_size)
{
    return parse_issue(status, body, body_len, false, out, errstr, errstr_size);
}

const char *jp_jira_issue_external_ref(const jp_jira_issue_t *is)
{
    if (!is)
        return NULL;
    if (is->prop_external_ref)
        return is->prop_external_ref;
    const char *found = NULL;
    size_t plen = strlen(JP_JIRA_REF_LABEL_PREFIX);
    for (size_t i = 0; i < is->label_count; i++) {
        if (strncmp(is->labels[i], JP_JIRA_REF_LABEL_PREFIX, plen) != 0 || !is->labels[i][plen])
            continue;
        if (found)
            return NULL; /* two refs: ambiguous */
        found = is->labels[i] + plen;
    }
    return found;
}

/* ---- search parser ------------------------------------------------------------ */

void jp_jira_search_destroy(jp_jira_search_t *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->count; i++)
        issue_clear(&s->issues[i]);
    free(s->issues);
    free(s->next_page_token);
    free(s);
}

static jp_err_t search_from_json(const json_t *root, jp_jira_search_t *s, char *errstr,
                                 size_t errstr_size)
{
    if (!json_is_object(root))
        return jp_jira__bad(errstr, errstr_size, NULL, "expected a search result object, got %s",
                            jp_jira__kind(root));
    json_t *issues = json_object_get(root, "issues");
    if (issues && !json_is_null(issues) && !json_is_array(issues))
        return jp_jira__bad(errstr, errstr_size, "issues", "expected an array, got %s",
                            jp_jira__kind(issues));
    size_t n = json_array_size(issues);
    if (!(s->issues = calloc(n ? n : 1, sizeof(*s->issues))))
        return nomem(errstr, errstr_size);
    for (size_t i = 0; i < n; i++) {
        char path[48];
        snprintf(path, sizeof(path), "issues[%zu]", i);
        s->count = i + 1; /* so that destroy frees a half-filled entry */
        jp_err_t err =
            issue_from_json(json_array_get(issues, i), path, &s->issues[i], errstr, errstr_size);
        if (err)
            return err;
    }
    jp_err_t err = jp_jira__get_str(root, "nextPageToken", false, "", &s->next_page_token, errstr,
                                    errstr_size);
    if (!err)
        err = jp_jira__get_bool(root, "isLast", s->next_page_token == NULL, "", &s->is_last, NULL,
                                errstr, errstr_size);
    if (!err && !s->is_last && !s->next_page_token)
        err = jp_jira__bad(errstr, errstr_size, "isLast",
                           "is false but there is no nextPageToken to continue with");
    return err;
}

jp_err_t jp_jira_parse_search(long status, const char *body, size_t body_len,
                              jp_jira_search_t **out, char *errstr, size_t errstr_size)
{
    json_t *root;
    *out = NULL;
    jp_err_t err =
        jp_jira__load(JP_JIRA_API_REST, status, body, body_len, &root, errstr, errstr_size);
    if (err)
        return err;
    jp_jira_search_t *s = calloc(1, sizeof(*s));
    err = s ? search_from_json(root, s, errstr, errstr_size) : nomem(errstr, errstr_size);
    json_decref(root);
    if (err) {
        jp_jira_search_destroy(s);
        return err;
    }
    *out = s;
    return JP_OK;
}

const jp_jira_issue_t *jp_jira_search_find_ref(const jp_jira_search_t *s, const char *ref)
{
    if (!s || !ref)
        return NULL;
    for (size_t i = 0; i < s->count; i++)
        if (s->issues[i].prop_external_ref && strcmp(s->issues[i].prop_external_ref, ref) == 0)
            return &s->issues[i];
    char *label = ref_label(ref);
    const jp_jira_issue_t *hit = NULL;
    for (size_t i = 0; label && !hit && i < s->count; i++) {
        const jp_jira_issue_t *is = &s->issues[i];
        /* An issue whose property names another ref is not this one. */
        if (!is->prop_external_ref && jp_jira__strv_has(is->labels, is->label_count, label))
            hit = is;
    }
    free(label);
    return hit;
}

/* ---- transitions -------------------------------------------------------------- */

void jp_jira_transitions_destroy(jp_jira_transitions_t *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->count; i++) {
        free(t->items[i].id);
        free(t->items[i].name);
        free(t->items[i].to_status);
    }
    free(t->items);
    free(t);
}

static jp_err_t transition_from_json(const json_t *o, const char *path, jp_jira_transition_t *tr,
                                     char *errstr, size_t errstr_size)
{
    if (!json_is_object(o))
        return jp_jira__bad(errstr, errstr_size, path, "expected an object, got %s",
                            jp_jira__kind(o));
    jp_err_t err = jp_jira__get_str(o, "id", true, path, &tr->id, errstr, errstr_size);
    if (!err)
        err = jp_jira__get_str(o, "name", false, path, &tr->name, errstr, errstr_size);
    if (!err)
        err = get_nested(o, "to", "name", path, &tr->to_status, errstr, errstr_size);
    if (!err)
        err = jp_jira__get_bool(o, "isAvailable", true, path, &tr->available, NULL, errstr,
                                errstr_size);
    return err;
}

jp_err_t jp_jira_parse_transitions(long status, const char *body, size_t body_len,
                                   jp_jira_transitions_t **out, char *errstr, size_t errstr_size)
{
    json_t *root;
    *out = NULL;
    jp_err_t err =
        jp_jira__load(JP_JIRA_API_REST, status, body, body_len, &root, errstr, errstr_size);
    if (err)
        return err;
    jp_jira_transitions_t *t = calloc(1, sizeof(*t));
    json_t *arr = json_object_get(root, "transitions");
    size_t n = json_array_size(arr);
    if (!t || !(t->items = calloc(n ? n : 1, sizeof(*t->items))))
        err = nomem(errstr, errstr_size);
    else if (!json_is_array(arr))
        err = jp_jira__bad(errstr, errstr_size, "transitions", "expected an array, got %s",
                           json_is_object(root) ? jp_jira__kind(arr) : jp_jira__kind(root));
    for (size_t i = 0; !err && i < n; i++) {
        char path[48];
        snprintf(path, sizeof(path), "transitions[%zu]", i);
        t->count = i + 1;
        err = transition_from_json(json_array_get(arr, i), path, &t->items[i], errstr, errstr_size);
    }
    json_decref(root);
    if (err) {
        jp_jira_transitions_destroy(t);
        return err;
    }
    *out = t;
    return JP_OK;
}

const jp_jira_transition_t *jp_jira_transition_for_status(const jp_jira_transitions_t *t,
                                                          const char *status)
{
    if (!t || !status)
        return NULL;
    for (size_t i = 0; i < t->count; i++)
        if (t->items[i].available && t->items[i].to_status &&
            strcasecmp(t->items[i].to_status, status) == 0)
            return &t->items[i];
    return NULL;
}

/* ---- project roles ------------------------------------------------------------ */

void jp_jira_roles_destroy(jp_jira_roles_t *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->count; i++)
        free(r->items[i].name);
    free(r->items);
    free(r);
}

/* The numeric last path segment of a role URL ".../project/KEY/role/10002". */
static bool role_id_from_url(const char *url, int64_t *id)
{
    const char *slash = strrchr(url, '/');
    const char *d = slash ? slash + 1 : url;
    size_t n = strlen(d);
    if (n == 0 || n > 18 || strspn(d, "0123456789") != n)
        return false;
    char *end;
    long long v = strtoll(d, &end, 10);
    if (*end || v <= 0)
        return false;
    *id = v;
    return true;
}

jp_err_t jp_jira_parse_project_roles(long status, const char *body, size_t body_len,
                                     jp_jira_roles_t **out, char *errstr, size_t errstr_size)
{
    json_t *root;
    *out = NULL;
    jp_err_t err =
        jp_jira__load(JP_JIRA_API_REST, status, body, body_len, &root, errstr, errstr_size);
    if (err)
        return err;
    jp_jira_roles_t *r = calloc(1, sizeof(*r));
    size_t n = json_object_size(root);
    if (!r || !(r->items = calloc(n ? n : 1, sizeof(*r->items))))
        err = nomem(errstr, errstr_size);
    else if (!json_is_object(root))
        err = jp_jira__bad(errstr, errstr_size, NULL, "expected an object of role URLs, got %s",
                           jp_jira__kind(root));
    const char *name;
    json_t *v;
    json_object_foreach(err ? NULL : root, name, v)
    {
        jp_jira_role_ref_t *item = &r->items[r->count];
        if (!json_is_string(v) || !role_id_from_url(json_string_value(v), &item->id)) {
            char q[80];
            size_t pos = 0;
            jp_jira__append_clean(q, sizeof(q), &pos, name, strlen(name));
            err = jp_jira__bad(errstr, errstr_size, q,
                               "expected a role URL ending in a numeric id, got %s",
                               json_is_string(v) ? "another string" : jp_jira__kind(v));
            break;
        }
        if (!(item->name = strdup(name))) {
            err = nomem(errstr, errstr_size);
            break;
        }
        r->count++;
    }
    json_decref(root);
    if (err) {
        jp_jira_roles_destroy(r);
        return err;
    }
    *out = r;
    return JP_OK;
}

int64_t jp_jira_role_id(const jp_jira_roles_t *r, const char *name)
{
    if (!r || !name)
        return -1;
    for (size_t i = 0; i < r->count; i++)
        if (strcmp(r->items[i].name, name) == 0)
            return r->items[i].id;
    for (size_t i = 0; i < r->count; i++)
        if (strcasecmp(r->items[i].name, name) == 0)
            return r->items[i].id;
    return -1;
}

void jp_jira_role_destroy(jp_jira_role_t *r)
{
    if (!r)
        return;
    free(r->name);
    free(r->description);
    jp_jira__strv_free(r->users, r->user_count);
    jp_jira__strv_free(r->groups, r->group_count);
    jp_jira__strv_free(r->group_names, r->group_count);
    free(r);
}

/* One actor: a user's accountId or a group's id (name when no id). */
static jp_err_t role_actor(const json_t *a, const char *path, jp_jira_role_t *r, char *errstr,
                           size_t errstr_size)
{
    char *type = NULL, *val = NULL;
    if (!json_is_object(a))
        return jp_jira__bad(errstr, errstr_size, path, "expected an object, got %s",
                            jp_jira__kind(a));
    jp_err_t err = jp_jira__get_str(a, "type", true, path, &type, errstr, errstr_size);
    if (!err && strcmp(type, "atlassian-user-role-actor") == 0) {
        err = get_nested(a, "actorUser", "accountId", path, &val, errstr, errstr_size);
        if (!err && !val)
            err = jp_jira__bad(errstr, errstr_size, path, "user actor without actorUser.accountId");
        if (!err)
            r->users[r->user_count++] = val;
    } else if (!err && strcmp(type, "atlassian-group-role-actor") == 0) {
        char *name = NULL;
        err = get_nested(a, "actorGroup", "groupId", path, &val, errstr, errstr_size);
        if (!err)
            err = get_nested(a, "actorGroup", "name", path, &name, errstr, errstr_size);
        if (!err && !val && name && !(val = strdup(name)))
            err = nomem(errstr, errstr_size);
        if (!err && !val)
            err = jp_jira__bad(errstr, errstr_size, path, "group actor without actorGroup");
        if (!err) {
            r->group_names[r->group_count] = name;
            r->groups[r->group_count++] = val;
        } else {
            free(name);
            free(val);
        }
    }
    free(type);
    return err;
}

static jp_err_t role_from_json(const json_t *root, jp_jira_role_t *r, char *errstr,
                               size_t errstr_size)
{
    if (!json_is_object(root))
        return jp_jira__bad(errstr, errstr_size, NULL, "expected a project role object, got %s",
                            jp_jira__kind(root));
    json_t *id = json_object_get(root, "id");
    if (!json_is_integer(id) || json_integer_value(id) <= 0)
        return jp_jira__bad(errstr, errstr_size, "id", "expected a positive integer, got %s",
                            json_is_integer(id) ? "a smaller one" : jp_jira__kind(id));
    r->id = (int64_t)json_integer_value(id);
    jp_err_t err = jp_jira__get_str(root, "name", false, "", &r->name, errstr, errstr_size);
    if (!err)
        err =
            jp_jira__get_str(root, "description", false, "", &r->description, errstr, errstr_size);
    json_t *actors = json_object_get(root, "actors");
    if (!err && actors && !json_is_null(actors) && !json_is_array(actors))
        err = jp_jira__bad(errstr, errstr_size, "actors", "expected an array, got %s",
                           jp_jira__kind(actors));
    size_t n = json_array_size(actors);
    if (!err && (!(r->users = calloc(n ? n : 1, sizeof(char *))) ||
                 !(r->groups = calloc(n ? n : 1, sizeof(char *))) ||
                 !(r->group_names = calloc(n ? n : 1, sizeof(char *)))))
        err = nomem(errstr, errstr_size);
    for (size_t i = 0; !err && i < n; i++) {
        char path[48];
        snprintf(path, sizeof(path), "actors[%zu]", i);
        err = role_actor(json_array_get(actors, i), path, r, errstr, errstr_size);
    }
    return err;
}

jp_err_t jp_jira_parse_project_role(long status, const char *body, size_t body_len,
                                    jp_jira_role_t **out, char *errstr, size_t errstr_size)
{
    json_t *root;
    *out = NULL;
    jp_err_t err =
        jp_jira__load(JP_JIRA_API_REST, status, body, body_len, &root, errstr, errstr_size);
    if (err)
        return err;
    jp_jira_role_t *r = calloc(1, sizeof(*r));
    err = r ? role_from_json(root, r, errstr, errstr_size) : nomem(errstr, errstr_size);
    json_decref(root);
    if (err) {
        jp_jira_role_destroy(r);
        return err;
    }
    *out = r;
    return JP_OK;
}

bool jp_jira_role_has_user(const jp_jira_role_t *r, const char *account_id)
{
    return r && jp_jira__strv_has(r->users, r->user_count, account_id);
}

/* ---- groups and users ---------------------------------------------------------- */

void jp_jira_groups_destroy(jp_jira_groups_t *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->count; i++) {
        free(g->items[i].name);
        free(g->items[i].group_id);
    }
    free(g->items);
    free(g);
}

/* PageBean: values array (checked), isLast. */
static jp_err_t page_values(const json_t *root, const char *what, json_t **values, bool *is_last,
                            char *errstr, size_t errstr_size)
{
    if (!json_is_object(root))
        return jp_jira__bad(errstr, errstr_size, NULL, "expected a %s page object, got %s", what,
                            jp_jira__kind(root));
    *values = json_object_get(root, "values");
    if (*values && !json_is_null(*values) && !json_is_array(*values))
        return jp_jira__bad(errstr, errstr_size, "values", "expected an array, got %s",
                            jp_jira__kind(*values));
    return jp_jira__get_bool(root, "isLast", true, "", is_last, NULL, errstr, errstr_size);
}

jp_err_t jp_jira_parse_groups(long status, const char *body, size_t body_len,
                              jp_jira_groups_t **out, char *errstr, size_t errstr_size)
{
    json_t *root, *values = NULL;
    *out = NULL;
    jp_err_t err =
        jp_jira__load(JP_JIRA_API_REST, status, body, body_len, &root, errstr, errstr_size);
    if (err)
        return err;
    jp_jira_groups_t *g = calloc(1, sizeof(*g));
    err = g ? page_values(root, "group", &values, &g->is_last, errstr, errstr_size)
            : nomem(errstr, errstr_size);
    size_t n = json_array_size(values);
    if (!err && !(g->items = calloc(n ? n : 1, sizeof(*g->items))))
        err = nomem(errstr, errstr_size);
    for (size_t i = 0; !err && i < n; i++) {
        char path[48];
        json_t *v = json_array_get(values, i);
        snprintf(path, sizeof(path), "values[%zu]", i);
        g->count = i + 1;
        if (!json_is_object(v))
            err = jp_jira__bad(errstr, errstr_size, path, "expected an object, got %s",
                               jp_jira__kind(v));
        if (!err)
            err = jp_jira__get_str(v, "name", true, path, &g->items[i].name, errstr, errstr_size);
        if (!err)
            err = jp_jira__get_str(v, "groupId", true, path, &g->items[i].group_id, errstr,
                                   errstr_size);
    }
    json_decref(root);
    if (err) {
        jp_jira_groups_destroy(g);
        return err;
    }
    *out = g;
    return JP_OK;
}

const char *jp_jira_group_id(const jp_jira_groups_t *g, const char *name)
{
    if (!g || !name)
        return NULL;
    for (size_t i = 0; i < g->count; i++)
        if (strcmp(g->items[i].name, name) == 0)
            return g->items[i].group_id;
    for (size_t i = 0; i < g->count; i++)
        if (strcasecmp(g->items[i].name, name) == 0)
            return g->items[i].group_id;
    return NULL;
}

void jp_jira_projects_destroy(jp_jira_projects_t *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->count; i++) {
        free(p->items[i].id);
        free(p->items[i].key);
        free(p->items[i].name);
    }
    free(p->items);
    free(p);
}

jp_err_t jp_jira_parse_projects(long status, const char *body, size_t body_len,
                                jp_jira_projects_t **out, char *errstr, size_t errstr_size)
{
    json_t *root, *values = NULL;
    *out = NULL;
    jp_err_t err =
        jp_jira__load(JP_JIRA_API_REST, status, body, body_len, &root, errstr, errstr_size);
    if (err)
        return err;
    jp_jira_projects_t *p = calloc(1, sizeof(*p));
    err = p ? page_values(root, "project", &values, &p->is_last, errstr, errstr_size)
            : nomem(errstr, errstr_size);
    size_t n = json_array_size(values);
    if (!err && !(p->items = calloc(n ? n : 1, sizeof(*p->items))))
        err = nomem(errstr, errstr_size);
    for (size_t i = 0; !err && i < n; i++) {
        char path[48];
        json_t *v = json_array_get(values, i);
        jp_jira_project_ref_t *it = &p->items[i];
        snprintf(path, sizeof(path), "values[%zu]", i);
        p->count = i + 1;
        if (!json_is_object(v))
            err = jp_jira__bad(errstr, errstr_size, path, "expected an object, got %s",
                               jp_jira__kind(v));
        if (!err)
            err = jp_jira__get_str(v, "id", true, path, &it->id, errstr, errstr_size);
        if (!err)
            err = jp_jira__get_str(v, "key", true, path, &it->key, errstr, errstr_size);
        if (!err && !jp_event_valid_project_key(it->key))
            err = jp_jira__bad(errstr, errstr_size, path, "key is not a Cloud project key");
        if (!err)
            err = jp_jira__get_str(v, "name", false, path, &it->name, errstr, errstr_size);
    }
    json_decref(root);
    if (err) {
        jp_jira_projects_destroy(p);
        return err;
    }
    *out = p;
    return JP_OK;
}

void jp_jira_users_destroy(jp_jira_users_t *u)
{
    if (!u)
        return;
    for (size_t i = 0; i < u->count; i++) {
        free(u->items[i].account_id);
        free(u->items[i].account_type);
        free(u->items[i].display_name);
        free(u->items[i].email);
    }
    free(u->items);
    free(u);
}

static jp_err_t user_from_json(const json_t *o, const char *path, jp_jira_user_t *u, char *errstr,
                               size_t errstr_size)
{
    if (!json_is_object(o))
        return jp_jira__bad(errstr, errstr_size, path, "expected a user object, got %s",
                            jp_jira__kind(o));
    jp_err_t err =
        jp_jira__get_str(o, "accountId", true, path, &u->account_id, errstr, errstr_size);
    if (!err && !*u->account_id)
        err = jp_jira__bad(errstr, errstr_size, path, "accountId is empty");
    if (!err)
        err =
            jp_jira__get_str(o, "accountType", false, path, &u->account_type, errstr, errstr_size);
    if (!err)
        err =
            jp_jira__get_str(o, "displayName", false, path, &u->display_name, errstr, errstr_size);
    if (!err)
        err = jp_jira__get_str(o, "emailAddress", false, path, &u->email, errstr, errstr_size);
    if (!err)
        err = jp_jira__get_bool(o, "active", true, path, &u->active, NULL, errstr, errstr_size);
    return err;
}

static jp_err_t users_from_json(const json_t *root, jp_jira_users_t *u, char *errstr,
                                size_t errstr_size)
{
    const json_t *list = root;
    jp_err_t err = JP_OK;
    bool page = json_is_object(root) && json_object_get(root, "values");
    u->is_last = true;
    if (page) {
        json_t *values;
        err = page_values(root, "user", &values, &u->is_last, errstr, errstr_size);
        if (!err)
            err = jp_jira__get_count(root, "startAt", 0, "", &u->start_at, errstr, errstr_size);
        if (!err)
            err = jp_jira__get_count(root, "total", (int64_t)json_array_size(values), "", &u->total,
                                     errstr, errstr_size);
        list = values;
    } else if (!json_is_array(root) && !json_is_object(root)) {
        err =
            jp_jira__bad(errstr, errstr_size, NULL, "expected users, got %s", jp_jira__kind(root));
    }
    /* A page or a bare array holds a list; a lone object is one user. */
    size_t n = page || json_is_array(list) ? json_array_size(list) : 1;
    if (!err && !(u->items = calloc(n ? n : 1, sizeof(*u->items))))
        err = nomem(errstr, errstr_size);
    for (size_t i = 0; !err && i < n; i++) {
        char path[48] = "";
        if (json_is_array(list))
            snprintf(path, sizeof(path), "%s[%zu]", page ? "values" : "", i);
        u->count = i + 1;
        err = user_from_json(json_is_array(list) ? json_array_get(list, i) : list, path,
                             &u->items[i], errstr, errstr_size);
    }
    if (!err && !page)
        u->total = (int64_t)u->count;
    return err;
}

jp_err_t jp_jira_parse_users(long status, const char *body, size_t body_len, jp_jira_users_t **out,
                             char *errstr, size_t errstr_size)
{
    json_t *root;
    *out = NULL;
    jp_err_t err =
        jp_jira__load(JP_JIRA_API_REST, status, body, body_len, &root, errstr, errstr_size);
    if (err)
        return err;
    jp_jira_users_t *u = calloc(1, sizeof(*u));
    err = u ? users_from_json(root, u, errstr, errstr_size) : nomem(errstr, errstr_size);
    json_decref(root);
    if (err) {
        jp_jira_users_destroy(u);
        return err;
    }
    *out = u;
    return JP_OK;
}
