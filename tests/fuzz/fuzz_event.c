/* Fuzz target: the event decoder (jp_event_decode), and what the worker
 * builds from an accepted event.
 *
 * Properties, beyond "no crash, no leak, no undefined behaviour":
 *  - an accepted event re-encoded by jansson is accepted again, with the
 *    same type, id and subject (the verdict does not hang on formatting);
 *  - every request the apply stage would build from an accepted event can
 *    be built (the contract never lets in a value the builders refuse),
 *    passes fuzz_check_request(), and carries the value exactly: the login
 *    inside the quoted SCIM filter, a group name as one query value, a key
 *    as one path segment, the ref inside a quoted JQL string;
 *  - a refused event has a one-line, UTF-8 reason. */
#include "fuzz_site.h"
#include "jiraprov/adf.h"
#include "jiraprov/event.h"

#include <strings.h>

/* Undoes jp_jira_jql_quote / the SCIM filter quoting: "..." with \" and \\;
 * NULL if s is not exactly one such literal. */
static char *unquote(const char *s, size_t n)
{
    if (n < 2 || s[0] != '"' || s[n - 1] != '"')
        return NULL;
    char *out = malloc(n);
    size_t o = 0;
    if (!out)
        abort();
    for (size_t i = 1; i + 1 < n; i++) {
        if (s[i] == '"') {
            free(out);
            return NULL;
        }
        if (s[i] == '\\') {
            if (i + 2 >= n || (s[i + 1] != '"' && s[i + 1] != '\\')) {
                free(out);
                return NULL;
            }
            i++;
        }
        out[o++] = s[i];
    }
    out[o] = '\0';
    return out;
}

/* `req` by address: it is read only after the builder call has set it. */
static jp_jira_req_t *must_build(jp_err_t rc, jp_jira_req_t **req, const char *what,
                                 const char *err)
{
    FUZZ_CHECK(rc == JP_OK, "%s refused a value the contract accepted: %s", what, err);
    fuzz_check_request(*req);
    return *req;
}

/* userName eq "<login>" (or another attribute), exactly. */
static void check_filter(const jp_jira_req_t *req, const char *attr, const char *value)
{
    size_t len;
    char *f = fuzz_query_value(req, "filter", &len);
    FUZZ_CHECK(f != NULL, "no filter in %s", req->url);
    size_t alen = strlen(attr);
    FUZZ_CHECK(len > alen + 4 && strncmp(f, attr, alen) == 0 && !strncmp(f + alen, " eq ", 4),
               "filter %s", f);
    char *v = unquote(f + alen + 4, len - alen - 4);
    FUZZ_CHECK(v && strcmp(v, value) == 0, "filter %s does not carry \"%s\"", f, value);
    free(v);
    free(f);
}

static void check_query(const jp_jira_req_t *req, const char *name, const char *value)
{
    size_t len;
    char *v = fuzz_query_value(req, name, &len);
    FUZZ_CHECK(v && len == strlen(value) && strcmp(v, value) == 0, "%s=%s in %s, wanted %s", name,
               v ? v : "(none)", req->url, value);
    free(v);
}

static void check_segment(const jp_jira_req_t *req, size_t index, const char *value)
{
    size_t len;
    char *v = fuzz_path_segment(req, index, &len);
    FUZZ_CHECK(v && strcmp(v, value) == 0, "segment %zu of %s is not %s", index, req->url, value);
    free(v);
}

static void account_requests(const jp_event_t *ev)
{
    const jp_site_t *site = fuzz_site();
    char err[512];
    jp_jira_req_t *req = NULL;
    const char *login = jp_event_login(ev);
    FUZZ_CHECK(login != NULL, "account or entitlement event without a login");
    req = must_build(jp_jira_scim_user_find(site, login, &req, err, sizeof(err)), &req,
                     "scim_user_find", err);
    check_filter(req, "userName", login);
    FUZZ_CHECK(fuzz_path_segments(req) == 1, "%s", req->url);
    jp_jira_req_destroy(req);
    if (ev->type == JP_EVENT_ACCOUNT_CREATE &&
        ev->account.attr[JP_ATTR_EXTERNAL_ID].state == JP_VALUE) {
        const char *xid = ev->account.attr[JP_ATTR_EXTERNAL_ID].value;
        req = must_build(jp_jira_scim_user_find_external_id(site, xid, &req, err, sizeof(err)),
                         &req, "scim_user_find_external_id", err);
        check_filter(req, "externalId", xid);
        jp_jira_req_destroy(req);
    }
}

static void entitlement_requests(const jp_event_t *ev)
{
    const jp_site_t *site = fuzz_site();
    const jp_entitlement_t *e = &ev->entitlement;
    char err[512];
    jp_jira_req_t *req = NULL;
    if (e->kind == JP_ENTITLEMENT_GROUP) {
        req = must_build(jp_jira_scim_group_find(site, e->group, &req, err, sizeof(err)), &req,
                         "scim_group_find", err);
        check_filter(req, "displayName", e->group);
        jp_jira_req_destroy(req);
        req = must_build(jp_jira_group_find(site, e->group, &req, err, sizeof(err)), &req,
                         "group_find", err);
        check_query(req, "groupName", e->group);
        FUZZ_CHECK(fuzz_path_segments(req) == 2, "%s", req->url);
        jp_jira_req_destroy(req);
    } else {
        req = must_build(jp_jira_project_roles(site, e->project, &req, err, sizeof(err)), &req,
                         "project_roles", err);
        check_segment(req, 1, e->project);
        FUZZ_CHECK(fuzz_path_segments(req) == 3, "%s", req->url);
        jp_jira_req_destroy(req);
    }
}

static void check_jql(const jp_jira_req_t *req, const char *field, const char *value)
{
    json_t *body = json_loads(req->body, 0, NULL);
    const char *jql = json_string_value(json_object_get(body, "jql"));
    FUZZ_CHECK(jql != NULL, "no jql in %s", req->body);
    const char *eq = strstr(jql, field);
    FUZZ_CHECK(eq && !strncmp(eq + strlen(field), " = ", 3), "jql %s lacks %s", jql, field);
    const char *lit = eq + strlen(field) + 3;
    const char *end = strstr(lit, " ORDER BY ");
    FUZZ_CHECK(end != NULL, "jql %s", jql);
    char *v = unquote(lit, (size_t)(end - lit));
    FUZZ_CHECK(v && strcmp(v, value) == 0, "jql %s does not carry \"%s\"", jql, value);
    free(v);
    json_decref(body);
}

static void issue_requests(const jp_event_t *ev)
{
    const jp_site_t *site = fuzz_site();
    const jp_issue_t *i = &ev->issue;
    char err[512];
    jp_jira_req_t *req = NULL;
    if (i->description.state == JP_VALUE) {
        json_t *adf = jp_adf_from_text(i->description.value);
        FUZZ_CHECK(adf != NULL, "no ADF for an accepted description");
        json_decref(adf);
    }
    if (i->key) {
        req = must_build(jp_jira_issue_get(site, i->key, &req, err, sizeof(err)), &req, "issue_get",
                         err);
        check_segment(req, 1, i->key);
        FUZZ_CHECK(fuzz_path_segments(req) == 2, "%s", req->url);
        jp_jira_req_destroy(req);
    }
    if (i->external_ref) {
        char label[JP_EVENT_REF_MAX + 16];
        snprintf(label, sizeof(label), "%s%s", JP_JIRA_REF_LABEL_PREFIX, i->external_ref);
        req = must_build(jp_jira_issue_find_by_ref(site, i->project, i->external_ref,
                                                   JP_JIRA_FIND_BY_LABEL, &req, err, sizeof(err)),
                         &req, "issue_find_by_ref", err);
        check_jql(req, "labels", label);
        jp_jira_req_destroy(req);
        req =
            must_build(jp_jira_issue_find_by_ref(site, NULL, i->external_ref,
                                                 JP_JIRA_FIND_BY_PROPERTY, &req, err, sizeof(err)),
                       &req, "issue_find_by_ref", err);
        check_jql(req, "issue.property[idhub].externalRef", i->external_ref);
        jp_jira_req_destroy(req);
    }
    /* The one documented refusal: a user label may not carry the prefix of
     * the ref label (jira.h); apply fails such an event with the reason. */
    bool reserved = false;
    for (size_t k = 0; k < i->labels_count; k++)
        reserved |=
            !strncasecmp(i->labels[k], JP_JIRA_REF_LABEL_PREFIX, strlen(JP_JIRA_REF_LABEL_PREFIX));
    if (ev->type == JP_EVENT_ISSUE_CREATE && reserved) {
        jp_jira_issue_fields_t f = {.project = i->project,
                                    .issue_type = i->issue_type,
                                    .summary = i->summary,
                                    .labels_state = i->labels_state,
                                    .labels_count = i->labels_count,
                                    .labels = i->labels,
                                    .external_ref = i->external_ref,
                                    .event_id = ev->id};
        FUZZ_CHECK(jp_jira_issue_create(site, &f, &req, err, sizeof(err)) == JP_ERR_INVALID &&
                       strstr(err, "is reserved"),
                   "reserved label: %s", err);
    } else if (ev->type == JP_EVENT_ISSUE_CREATE) {
        jp_jira_issue_fields_t f = {
            .project = i->project,
            .issue_type = i->issue_type,
            .summary = i->summary,
            .description = i->description,
            .priority = i->priority,
            .labels_state = i->labels_state,
            .labels_count = i->labels_count,
            .labels = i->labels,
            .external_ref = i->external_ref,
            .event_id = ev->id,
        };
        req = must_build(jp_jira_issue_create(site, &f, &req, err, sizeof(err)), &req,
                         "issue_create", err);
        json_t *body = json_loads(req->body, 0, NULL);
        json_t *fields = json_object_get(body, "fields");
        FUZZ_CHECK(!strcmp(json_string_value(json_object_get(fields, "summary")), i->summary.value),
                   "summary not carried");
        json_t *labels = json_object_get(fields, "labels");
        FUZZ_CHECK(json_array_size(labels) == i->labels_count + 1, "labels not carried");
        for (size_t k = 0; k < i->labels_count; k++)
            FUZZ_CHECK(!strcmp(json_string_value(json_array_get(labels, k)), i->labels[k]),
                       "label %zu not carried", k);
        json_decref(body);
        jp_jira_req_destroy(req);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512]; /* the size the pipeline gives the decoder */
    jp_event_t *ev = NULL;
    jp_err_t rc = jp_event_decode(data, size, NULL, &ev, err, sizeof(err));
    if (rc != JP_OK) {
        FUZZ_CHECK(ev == NULL, "an event with an error");
        FUZZ_CHECK(rc == JP_ERR_INVALID || rc == JP_ERR_TOO_LARGE, "error %d", (int)rc);
        FUZZ_CHECK(err[0] != '\0', "no reason");
        FUZZ_CHECK(fuzz_utf8_ok(err, strlen(err)) && fuzz_one_line(err),
                   "reason is not one line of UTF-8: %s", err);
        return 0;
    }
    FUZZ_CHECK(jp_event_key(ev) && !strcmp(jp_event_key(ev), ev->subject), "key");

    /* Accepted once, accepted again after re-encoding. */
    char *again = json_dumps(ev->root, JSON_COMPACT);
    FUZZ_CHECK(again != NULL, "cannot re-encode");
    jp_event_t *ev2 = NULL;
    rc = jp_event_decode(again, strlen(again), NULL, &ev2, err, sizeof(err));
    FUZZ_CHECK(rc == JP_OK, "re-encoded event refused: %s", err);
    FUZZ_CHECK(ev2->type == ev->type && !strcmp(ev2->id, ev->id) &&
                   !strcmp(ev2->subject, ev->subject),
               "re-encoded event differs");
    jp_event_destroy(ev2);
    free(again);

    if (JP_EVENT_IS_ACCOUNT(ev->type) || JP_EVENT_IS_ENTITLEMENT(ev->type))
        account_requests(ev);
    if (JP_EVENT_IS_ENTITLEMENT(ev->type))
        entitlement_requests(ev);
    if (JP_EVENT_IS_ISSUE(ev->type))
        issue_requests(ev);
    jp_event_destroy(ev);
    return 0;
}
