/* Fuzz target: every Jira response parser (jira.h) and the error-body
 * reader, on arbitrary bytes.
 *
 * Input: byte 0 picks the parser, byte 1 the HTTP status, the rest is the
 * body. Properties, beyond "no crash, no leak, no undefined behaviour":
 *  - a parser either returns a result or an error, never both; errors for
 *    2xx bodies are JP_ERR_INVALID or JP_ERR_NOMEM, for other statuses the
 *    status's own code;
 *  - every error text and jp_jira_error_message() output is one line of
 *    valid UTF-8 (it ends up in logs, results and dead letters), also when
 *    cut to a small buffer;
 *  - lookups on a parsed result (role id, group id, transition, ref) do not
 *    read outside it. */
#include "fuzz.h"
#include "jiraprov/jira.h"

static const long statuses[] = {200, 201, 204, 400, 401, 403, 404, 409, 410, 429, 500, 503};
#define NSTATUS (sizeof(statuses) / sizeof(statuses[0]))

enum {
    P_SCIM_USER = 0,
    P_SCIM_LIST,
    P_SCIM_GROUP,
    P_ISSUE_CREATED,
    P_ISSUE,
    P_TRANSITIONS,
    P_SEARCH,
    P_PROJECT_ROLES,
    P_PROJECT_ROLE,
    P_GROUPS,
    P_USERS,
    P_CHECK_STATUS,
    P__COUNT
};

static void check_text(const char *what, const char *s)
{
    FUZZ_CHECK(fuzz_utf8_ok(s, strlen(s)), "%s is not UTF-8: %s", what, s);
    FUZZ_CHECK(fuzz_one_line(s), "%s has a control character: %s", what, s);
}

static void check_err(jp_err_t rc, long status, const char *err)
{
    if (rc == JP_OK)
        return;
    if (status >= 200 && status <= 299)
        FUZZ_CHECK(rc == JP_ERR_INVALID || rc == JP_ERR_NOMEM, "error %d for a 2xx", (int)rc);
    else
        FUZZ_CHECK(rc == (status == 404   ? JP_ERR_NOT_FOUND
                          : status == 409 ? JP_ERR_CONFLICT
                                          : JP_ERR_HTTP),
                   "error %d for status %ld", (int)rc, status);
    FUZZ_CHECK(err[0] != '\0', "no error text");
    check_text("error text", err);
}

static void scim_list_items(const jp_jira_scim_list_t *l)
{
    char err[512];
    FUZZ_CHECK(l->resources && json_is_array(l->resources), "no resources array");
    FUZZ_CHECK(l->count == json_array_size(l->resources), "count");
    for (size_t i = 0; i < l->count; i++) {
        jp_jira_scim_user_t *u = NULL;
        jp_jira_scim_group_t *g = NULL;
        jp_err_t rc =
            jp_jira_scim_user_from_json(json_array_get(l->resources, i), &u, err, sizeof(err));
        FUZZ_CHECK((rc == JP_OK) == (u != NULL), "user result and error");
        if (rc)
            check_text("user error", err);
        rc = jp_jira_scim_group_from_json(json_array_get(l->resources, i), &g, err, sizeof(err));
        FUZZ_CHECK((rc == JP_OK) == (g != NULL), "group result and error");
        if (rc)
            check_text("group error", err);
        jp_jira_scim_user_destroy(u);
        jp_jira_scim_group_destroy(g);
    }
}

static jp_err_t parse(int which, long status, const char *body, size_t len, char *err, size_t n)
{
    jp_err_t rc = JP_OK;
    bool got = false;
    switch (which) {
    case P_SCIM_USER: {
        jp_jira_scim_user_t *u = NULL;
        rc = jp_jira_parse_scim_user(status, body, len, &u, err, n);
        if (u)
            FUZZ_CHECK(u->id && *u->id && u->user_name && *u->user_name && u->json, "user");
        got = u != NULL;
        jp_jira_scim_user_destroy(u);
        break;
    }
    case P_SCIM_LIST: {
        jp_jira_scim_list_t *l = NULL;
        rc = jp_jira_parse_scim_list(status, body, len, &l, err, n);
        if (l)
            scim_list_items(l);
        got = l != NULL;
        jp_jira_scim_list_destroy(l);
        break;
    }
    case P_SCIM_GROUP: {
        jp_jira_scim_group_t *g = NULL;
        rc = jp_jira_parse_scim_group(status, body, len, &g, err, n);
        if (g) {
            for (size_t i = 0; i < g->member_count; i++)
                FUZZ_CHECK(jp_jira_scim_group_has_member(g, g->members[i]), "member");
            (void)jp_jira_scim_group_has_member(g, "u-1");
        }
        got = g != NULL;
        jp_jira_scim_group_destroy(g);
        break;
    }
    case P_ISSUE_CREATED:
    case P_ISSUE: {
        jp_jira_issue_t *is = NULL;
        rc = which == P_ISSUE ? jp_jira_parse_issue(status, body, len, &is, err, n)
                              : jp_jira_parse_issue_created(status, body, len, &is, err, n);
        if (is) {
            FUZZ_CHECK(is->key && *is->key, "issue without key");
            if (which == P_ISSUE_CREATED)
                FUZZ_CHECK(is->id && *is->id, "created issue without id");
            const char *ref = jp_jira_issue_external_ref(is);
            if (ref)
                (void)strlen(ref);
        }
        got = is != NULL;
        jp_jira_issue_destroy(is);
        break;
    }
    case P_TRANSITIONS: {
        jp_jira_transitions_t *t = NULL;
        rc = jp_jira_parse_transitions(status, body, len, &t, err, n);
        if (t) {
            const jp_jira_transition_t *tr = jp_jira_transition_for_status(t, "Done");
            FUZZ_CHECK(!tr || (tr >= t->items && tr < t->items + t->count), "transition");
            for (size_t i = 0; i < t->count; i++)
                FUZZ_CHECK(t->items[i].id, "transition without id");
        }
        got = t != NULL;
        jp_jira_transitions_destroy(t);
        break;
    }
    case P_SEARCH: {
        jp_jira_search_t *s = NULL;
        rc = jp_jira_parse_search(status, body, len, &s, err, n);
        if (s) {
            FUZZ_CHECK(s->is_last || s->next_page_token, "neither last nor a token");
            for (size_t i = 0; i < s->count; i++) {
                const char *ref = jp_jira_issue_external_ref(&s->issues[i]);
                if (ref && jp_event_valid_ref(ref)) {
                    const jp_jira_issue_t *hit = jp_jira_search_find_ref(s, ref);
                    FUZZ_CHECK(hit >= s->issues && hit < s->issues + s->count,
                               "the issue tagged %s is not found", ref);
                }
            }
            (void)jp_jira_search_find_ref(s, "HR-1");
        }
        got = s != NULL;
        jp_jira_search_destroy(s);
        break;
    }
    case P_PROJECT_ROLES: {
        jp_jira_roles_t *r = NULL;
        rc = jp_jira_parse_project_roles(status, body, len, &r, err, n);
        if (r) {
            for (size_t i = 0; i < r->count; i++)
                FUZZ_CHECK(r->items[i].id > 0 && jp_jira_role_id(r, r->items[i].name) > 0,
                           "role id");
            (void)jp_jira_role_id(r, "developers");
        }
        got = r != NULL;
        jp_jira_roles_destroy(r);
        break;
    }
    case P_PROJECT_ROLE: {
        jp_jira_role_t *r = NULL;
        rc = jp_jira_parse_project_role(status, body, len, &r, err, n);
        if (r) {
            FUZZ_CHECK(r->id > 0, "role id");
            for (size_t i = 0; i < r->user_count; i++)
                FUZZ_CHECK(jp_jira_role_has_user(r, r->users[i]), "role user");
        }
        got = r != NULL;
        jp_jira_role_destroy(r);
        break;
    }
    case P_GROUPS: {
        jp_jira_groups_t *g = NULL;
        rc = jp_jira_parse_groups(status, body, len, &g, err, n);
        if (g) {
            for (size_t i = 0; i < g->count; i++)
                FUZZ_CHECK(jp_jira_group_id(g, g->items[i].name) != NULL, "group id");
            (void)jp_jira_group_id(g, "jira-users");
        }
        got = g != NULL;
        jp_jira_groups_destroy(g);
        break;
    }
    case P_USERS: {
        jp_jira_users_t *u = NULL;
        rc = jp_jira_parse_users(status, body, len, &u, err, n);
        if (u)
            for (size_t i = 0; i < u->count; i++)
                FUZZ_CHECK(u->items[i].account_id && *u->items[i].account_id, "user");
        got = u != NULL;
        jp_jira_users_destroy(u);
        break;
    }
    default:
        rc = jp_jira_check_status(JP_JIRA_API_REST, status, body, len, err, n);
        return rc;
    }
    FUZZ_CHECK((rc == JP_OK) == got, "parser %d: result %d with error %d", which, (int)got,
               (int)rc);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    int which = data[0] % P__COUNT;
    long status = statuses[data[1] % NSTATUS];
    /* An exact-size copy: parsers must not need a NUL after the body. */
    size_t len = size - 2;
    char *body = malloc(len ? len : 1);
    if (!body)
        abort();
    if (len)
        memcpy(body, data + 2, len);

    char err[512];
    err[0] = '\0';
    check_err(parse(which, status, body, len, err, sizeof(err)), status, err);

    /* The error reader, for each API family, into a roomy and a tiny buffer. */
    for (int api = JP_JIRA_API_SCIM; api <= JP_JIRA_API_REST; api++) {
        jp_jira_error_t e;
        jp_jira_parse_error((jp_jira_api_t)api, status, body, len, &e);
        check_text("error code", e.code);
        check_text("error message", e.message);
        check_text("trace id", e.trace_id);
        char msg[600], tiny[7];
        size_t n = jp_jira_error_message((jp_jira_api_t)api, status, body, len, msg, sizeof(msg));
        FUZZ_CHECK(n == strlen(msg), "length %zu vs %zu", n, strlen(msg));
        check_text("message", msg);
        n = jp_jira_error_message((jp_jira_api_t)api, status, body, len, tiny, sizeof(tiny));
        FUZZ_CHECK(n == strlen(tiny) && n < sizeof(tiny), "tiny length");
        check_text("cut message", tiny);
    }
    free(body);
    return 0;
}
