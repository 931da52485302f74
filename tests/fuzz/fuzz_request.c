/* Fuzz target: the Jira request builders and JQL quoting (jira.h) on
 * arbitrary strings, without the event decoder in front of them.
 *
 * Input: byte 0 picks a builder; the rest is up to four strings separated
 * by NUL bytes (a missing one is NULL). Properties, beyond "no crash, no
 * leak, no undefined behaviour":
 *  - a refusal has a one-line UTF-8 reason;
 *  - a built request passes fuzz_check_request() (only escaped parts after
 *    the base, no dot segments, no '#', headers without CR/LF) and has
 *    exactly the path segments and query parameters of its endpoint;
 *  - every value comes back exactly: percent-decoding the segment or the
 *    parameter that carries it, unquoting a SCIM filter or JQL literal, or
 *    reading the JSON body gives the input string byte for byte. */
#include "fuzz_site.h"

#define NFIELDS 4

/* Undoes "..." quoting with \" and \\; NULL unless s is one such literal. */
static char *unquote(const char *s, size_t n)
{
    if (n < 2 || s[0] != '"' || s[n - 1] != '"')
        return NULL;
    char *out = malloc(n);
    size_t o = 0;
    if (!out)
        abort();
    for (size_t i = 1; i + 1 < n; i++) {
        if (s[i] == '"' ||
            (s[i] == '\\' && (i + 2 >= n || (s[i + 1] != '"' && s[i + 1] != '\\')))) {
            free(out);
            return NULL;
        }
        if (s[i] == '\\')
            i++;
        out[o++] = s[i];
    }
    out[o] = '\0';
    return out;
}

static void same(const char *what, const char *got, size_t got_len, const char *want)
{
    FUZZ_CHECK(got != NULL, "%s missing", what);
    FUZZ_CHECK(got_len == strlen(want) && memcmp(got, want, got_len) == 0,
               "%s is \"%s\", wanted \"%s\"", what, got, want);
}

static void seg_is(const jp_jira_req_t *r, size_t i, const char *want)
{
    size_t n = 0;
    char *v = fuzz_path_segment(r, i, &n);
    same("path segment", v, n, want);
    free(v);
}

static void query_is(const jp_jira_req_t *r, const char *name, const char *want)
{
    size_t n = 0;
    char *v = fuzz_query_value(r, name, &n);
    same(name, v, n, want);
    free(v);
}

static void shape(const jp_jira_req_t *r, size_t segments, size_t params)
{
    FUZZ_CHECK(fuzz_path_segments(r) == segments, "%s: %zu segments expected", r->url, segments);
    const char *q = strchr(r->url, '?');
    size_t n = 0;
    for (; q && *q; q++)
        n += *q == '?' || *q == '&';
    FUZZ_CHECK(n == params, "%s: %zu parameters expected", r->url, params);
}

static void filter_is(const jp_jira_req_t *r, const char *attr, const char *want)
{
    size_t n = 0;
    char *f = fuzz_query_value(r, "filter", &n);
    size_t alen = strlen(attr);
    FUZZ_CHECK(f && n > alen + 4 && !strncmp(f, attr, alen) && !strncmp(f + alen, " eq ", 4),
               "filter %s", f ? f : "(none)");
    char *v = unquote(f + alen + 4, n - alen - 4);
    FUZZ_CHECK(v && !strcmp(v, want), "filter %s does not carry %s", f, want);
    free(v);
    free(f);
}

/* body[path...] as a string. */
static const char *body_str(json_t *body, const char *k1, const char *k2)
{
    json_t *v = json_object_get(body, k1);
    if (k2)
        v = json_object_get(v, k2);
    return json_string_value(v);
}

static void body_is(const jp_jira_req_t *r, const char *k1, const char *k2, const char *want)
{
    json_t *body = json_loads(r->body, 0, NULL);
    const char *v = body_str(body, k1, k2);
    FUZZ_CHECK(v && !strcmp(v, want), "body %s.%s is not %s", k1, k2 ? k2 : "", want);
    json_decref(body);
}

static void jql_check(const char *jql, const char *field, const char *want)
{
    const char *at = strstr(jql, field);
    FUZZ_CHECK(at && !strncmp(at + strlen(field), " = ", 3), "jql %s lacks %s", jql, field);
    const char *lit = at + strlen(field) + 3;
    size_t n = strcspn(lit, " ");
    /* A literal may hold spaces: take the longest one that unquotes. */
    char *v = NULL;
    for (size_t end = strlen(lit); !v && end >= n && end > 0; end--)
        if (lit[end - 1] == '"')
            v = unquote(lit, end);
    FUZZ_CHECK(v && !strcmp(v, want), "jql %s does not carry %s", jql, want);
    free(v);
}

enum {
    B_SCIM_FIND = 0,
    B_SCIM_FIND_XID,
    B_SCIM_USER_GET,
    B_SCIM_USER_DELETE,
    B_SCIM_USER_ACTIVE,
    B_SCIM_USER_PATCH,
    B_SCIM_GROUP_FIND,
    B_SCIM_GROUP_GET,
    B_SCIM_GROUP_CREATE,
    B_SCIM_GROUP_ADD,
    B_SCIM_GROUP_REMOVE,
    B_ADMIN_DISABLE,
    B_ADMIN_ENABLE,
    B_USER_GET,
    B_USER_SEARCH,
    B_GROUP_FIND,
    B_GROUP_ADD,
    B_GROUP_REMOVE,
    B_GROUP_MEMBERS,
    B_ROLES,
    B_ROLE_GET,
    B_ROLE_ADD,
    B_ROLE_REMOVE,
    B_ISSUE_GET,
    B_ISSUE_DELETE,
    B_ISSUE_TRANSITIONS,
    B_ISSUE_TRANSITION,
    B_ISSUE_FIND_LABEL,
    B_ISSUE_FIND_PROPERTY,
    B_SEARCH,
    B_ISSUE_CREATE,
    B_ISSUE_EDIT,
    B_JQL_QUOTE,
    B__COUNT
};

static void jql_quote_case(const char *a)
{
    char out[3 * JP_JIRA_JQL_VALUE_MAX], err[256];
    jp_err_t rc = jp_jira_jql_quote(a, out, sizeof(out), err, sizeof(err));
    if (rc != JP_OK) {
        FUZZ_CHECK(fuzz_one_line(err) && fuzz_utf8_ok(err, strlen(err)), "reason %s", err);
        return;
    }
    FUZZ_CHECK(fuzz_one_line(out), "quoted JQL value has a control character");
    char *v = unquote(out, strlen(out));
    FUZZ_CHECK(v && !strcmp(v, a), "JQL %s does not carry the value", out);
    free(v);
}

static jp_err_t build(int op, const char *const *f, jp_jira_req_t **req, char *err, size_t n)
{
    const jp_site_t *s = fuzz_site();
    switch (op) {
    case B_SCIM_FIND:
        return jp_jira_scim_user_find(s, f[0], req, err, n);
    case B_SCIM_FIND_XID:
        return jp_jira_scim_user_find_external_id(s, f[0], req, err, n);
    case B_SCIM_USER_GET:
        return jp_jira_scim_user_get(s, f[0], req, err, n);
    case B_SCIM_USER_DELETE:
        return jp_jira_scim_user_delete(s, f[0], req, err, n);
    case B_SCIM_USER_ACTIVE:
        return jp_jira_scim_user_set_active(s, f[0], f[1] != NULL, req, err, n);
    case B_SCIM_USER_PATCH: {
        json_t *patch = json_pack("{s:[{s:s, s:s, s:s?}]}", "Operations", "op", "replace", "path",
                                  "displayName", "value", f[1]);
        jp_err_t rc = patch ? jp_jira_scim_user_patch(s, f[0], patch, req, err, n) : JP_ERR_INVALID;
        if (!patch)
            snprintf(err, n, "value is not UTF-8");
        json_decref(patch);
        return rc;
    }
    case B_SCIM_GROUP_FIND:
        return jp_jira_scim_group_find(s, f[0], req, err, n);
    case B_SCIM_GROUP_GET:
        return jp_jira_scim_group_get(s, f[0], req, err, n);
    case B_SCIM_GROUP_CREATE:
        return jp_jira_scim_group_create(s, f[0], req, err, n);
    case B_SCIM_GROUP_ADD:
        return jp_jira_scim_group_add_member(s, f[0], f[1], req, err, n);
    case B_SCIM_GROUP_REMOVE:
        return jp_jira_scim_group_remove_member(s, f[0], f[1], req, err, n);
    case B_ADMIN_DISABLE:
        return jp_jira_admin_disable(s, f[0], f[1], req, err, n);
    case B_ADMIN_ENABLE:
        return jp_jira_admin_enable(s, f[0], req, err, n);
    case B_USER_GET:
        return jp_jira_user_get(s, f[0], req, err, n);
    case B_USER_SEARCH:
        return jp_jira_user_search(s, f[0], 0, 50, req, err, n);
    case B_GROUP_FIND:
        return jp_jira_group_find(s, f[0], req, err, n);
    case B_GROUP_ADD:
        return jp_jira_group_add_user(s, f[0], f[1], req, err, n);
    case B_GROUP_REMOVE:
        return jp_jira_group_remove_user(s, f[0], f[1], req, err, n);
    case B_GROUP_MEMBERS:
        return jp_jira_group_members_page(s, f[0], 0, 50, req, err, n);
    case B_ROLES:
        return jp_jira_project_roles(s, f[0], req, err, n);
    case B_ROLE_GET:
        return jp_jira_project_role_get(s, f[0], 10002, req, err, n);
    case B_ROLE_ADD:
        return jp_jira_project_role_add_user(s, f[0], 10002, f[1], req, err, n);
    case B_ROLE_REMOVE:
        return jp_jira_project_role_remove_user(s, f[0], 10002, f[1], req, err, n);
    case B_ISSUE_GET:
        return jp_jira_issue_get(s, f[0], req, err, n);
    case B_ISSUE_DELETE:
        return jp_jira_issue_delete(s, f[0], f[1] != NULL, req, err, n);
    case B_ISSUE_TRANSITIONS:
        return jp_jira_issue_transitions(s, f[0], req, err, n);
    case B_ISSUE_TRANSITION:
        return jp_jira_issue_transition(s, f[0], f[1], req, err, n);
    case B_ISSUE_FIND_LABEL:
        return jp_jira_issue_find_by_ref(s, f[0], f[1], JP_JIRA_FIND_BY_LABEL, req, err, n);
    case B_ISSUE_FIND_PROPERTY:
        return jp_jira_issue_find_by_ref(s, f[0], f[1], JP_JIRA_FIND_BY_PROPERTY, req, err, n);
    case B_SEARCH:
        return jp_jira_search(s, f[0], NULL, 0, f[1], 50, req, err, n);
    case B_ISSUE_CREATE:
    case B_ISSUE_EDIT: {
        const char *labels[1] = {f[3]};
        jp_jira_issue_fields_t fl = {
            .project = op == B_ISSUE_CREATE ? f[0] : NULL,
            .issue_type = f[1],
            .summary = {f[2] ? JP_VALUE : JP_ABSENT, f[2]},
            .description = {f[1] ? JP_VALUE : JP_NULL, f[1]},
            .labels_state = f[3] ? JP_VALUE : JP_ABSENT,
            .labels_count = f[3] ? 1 : 0,
            .labels = f[3] ? labels : NULL,
            .external_ref = "HR-1",
            .event_id = "evt-1",
        };
        if (op == B_ISSUE_CREATE)
            return jp_jira_issue_create(s, &fl, req, err, n);
        return jp_jira_issue_edit(s, f[0], &fl, req, err, n);
    }
    }
    return JP_ERR_INVALID;
}

static void check_values(int op, const char *const *f, const jp_jira_req_t *r)
{
    char jql[4096];
    switch (op) {
    case B_SCIM_FIND:
        shape(r, 1, 1);
        filter_is(r, "userName", f[0]);
        break;
    case B_SCIM_FIND_XID:
        shape(r, 1, 1);
        filter_is(r, "externalId", f[0]);
        break;
    case B_SCIM_GROUP_FIND:
        shape(r, 1, 1);
        filter_is(r, "displayName", f[0]);
        break;
    case B_SCIM_USER_GET:
    case B_SCIM_USER_DELETE:
    case B_SCIM_USER_ACTIVE:
    case B_SCIM_GROUP_GET:
        shape(r, 2, 0);
        seg_is(r, 1, f[0]);
        break;
    case B_SCIM_USER_PATCH: {
        shape(r, 2, 0);
        seg_is(r, 1, f[0]);
        json_t *body = json_loads(r->body, 0, NULL);
        json_t *v =
            json_object_get(json_array_get(json_object_get(body, "Operations"), 0), "value");
        FUZZ_CHECK(f[1] ? json_is_string(v) && !strcmp(json_string_value(v), f[1])
                        : json_is_null(v),
                   "patch value not carried");
        json_decref(body);
        break;
    }
    case B_SCIM_GROUP_CREATE:
        shape(r, 1, 0);
        body_is(r, "displayName", NULL, f[0]);
        break;
    case B_SCIM_GROUP_ADD:
    case B_SCIM_GROUP_REMOVE: {
        shape(r, 2, 0);
        seg_is(r, 1, f[0]);
        json_t *body = json_loads(r->body, 0, NULL);
        json_t *o = json_array_get(json_object_get(body, "Operations"), 0);
        if (op == B_SCIM_GROUP_ADD) {
            const char *v = body_str(json_array_get(json_object_get(o, "value"), 0), "value", NULL);
            FUZZ_CHECK(v && !strcmp(v, f[1]), "member not carried");
        } else {
            const char *p = body_str(o, "path", NULL);
            size_t pre = strlen("members[value eq ");
            FUZZ_CHECK(p && !strncmp(p, "members[value eq ", pre) && p[strlen(p) - 1] == ']',
                       "path %s", p ? p : "(none)");
            char *v = unquote(p + pre, strlen(p) - pre - 1);
            FUZZ_CHECK(v && !strcmp(v, f[1]), "member filter %s", p);
            free(v);
        }
        json_decref(body);
        break;
    }
    case B_ADMIN_DISABLE:
    case B_ADMIN_ENABLE:
        shape(r, 5, 0);
        seg_is(r, 1, f[0]);
        if (op == B_ADMIN_DISABLE && f[1])
            body_is(r, "message", NULL, f[1]);
        break;
    case B_USER_GET:
        shape(r, 1, 1);
        query_is(r, "accountId", f[0]);
        break;
    case B_USER_SEARCH:
        shape(r, 2, 3);
        query_is(r, "query", f[0]);
        break;
    case B_GROUP_FIND:
        shape(r, 2, 1);
        query_is(r, "groupName", f[0]);
        break;
    case B_GROUP_ADD:
        shape(r, 2, 1);
        query_is(r, "groupId", f[0]);
        body_is(r, "accountId", NULL, f[1]);
        break;
    case B_GROUP_REMOVE:
        shape(r, 2, 2);
        query_is(r, "groupId", f[0]);
        query_is(r, "accountId", f[1]);
        break;
    case B_GROUP_MEMBERS:
        shape(r, 2, 4);
        query_is(r, "groupId", f[0]);
        break;
    case B_ROLES:
        shape(r, 3, 0);
        seg_is(r, 1, f[0]);
        break;
    case B_ROLE_GET:
    case B_ROLE_ADD:
    case B_ROLE_REMOVE:
        shape(r, 4, op == B_ROLE_REMOVE ? 1 : 0);
        seg_is(r, 1, f[0]);
        seg_is(r, 3, "10002");
        if (op == B_ROLE_REMOVE)
            query_is(r, "user", f[1]);
        break;
    case B_ISSUE_GET:
    case B_ISSUE_DELETE:
    case B_ISSUE_TRANSITIONS:
    case B_ISSUE_TRANSITION:
        shape(r, op == B_ISSUE_GET || op == B_ISSUE_DELETE ? 2 : 3,
              op == B_ISSUE_GET      ? 2
              : op == B_ISSUE_DELETE ? 1
                                     : 0);
        seg_is(r, 1, f[0]);
        FUZZ_CHECK(r->issue_key && !strcmp(r->issue_key, f[0]), "issue key");
        if (op == B_ISSUE_TRANSITION)
            body_is(r, "transition", "id", f[1]);
        break;
    case B_ISSUE_FIND_LABEL:
    case B_ISSUE_FIND_PROPERTY: {
        shape(r, 2, 0);
        json_t *body = json_loads(r->body, 0, NULL);
        snprintf(jql, sizeof(jql), "%s", body_str(body, "jql", NULL));
        json_decref(body);
        if (f[0])
            jql_check(jql, "project", f[0]);
        char label[512];
        snprintf(label, sizeof(label), "%s%s", op == B_ISSUE_FIND_LABEL ? "idhub-ref-" : "", f[1]);
        jql_check(jql, op == B_ISSUE_FIND_LABEL ? "labels" : "issue.property[idhub].externalRef",
                  label);
        break;
    }
    case B_SEARCH:
        shape(r, 2, 0);
        body_is(r, "jql", NULL, f[0]);
        if (f[1])
            body_is(r, "nextPageToken", NULL, f[1]);
        break;
    case B_ISSUE_CREATE:
        shape(r, 1, 0);
        body_is(r, "fields", "summary", f[2]);
        break;
    case B_ISSUE_EDIT:
        shape(r, 2, 0);
        seg_is(r, 1, f[0]);
        if (f[2])
            body_is(r, "fields", "summary", f[2]);
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int op = data[0] % B__COUNT;
    char *copy = fuzz_strndup(data + 1, size - 1);
    const char *f[NFIELDS] = {NULL};
    size_t nf = 0, at = 0, len = size - 1;
    while (nf < NFIELDS && at <= len) {
        f[nf++] = copy + at;
        at += strlen(copy + at) + 1;
    }
    if (op == B_JQL_QUOTE) {
        jql_quote_case(f[0]);
        free(copy);
        return 0;
    }
    char err[512];
    err[0] = '\0';
    jp_jira_req_t *req = NULL;
    jp_err_t rc = build(op, f, &req, err, sizeof(err));
    if (rc != JP_OK) {
        FUZZ_CHECK(req == NULL, "request and error");
        FUZZ_CHECK(err[0] && fuzz_one_line(err) && fuzz_utf8_ok(err, strlen(err)),
                   "builder %d: reason \"%s\"", op, err);
    } else {
        fuzz_check_request(req);
        check_values(op, f, req);
    }
    jp_jira_req_destroy(req);
    free(copy);
    return 0;
}
