/* jira_search_api.c - enhanced JQL search (/rest/api/3/search/jql, GET and
 * POST) and the removed /search endpoints (410 Gone, notes §3.2).
 *
 * Paging: nextPageToken is an opaque base64url string holding the offset of
 * the next page, the id of the last issue handed out and a fingerprint of
 * the query. The next page starts after that issue when it still exists (so
 * deletions between pages skip nothing), otherwise at the offset. A token
 * from another query is rejected with 400. */
#include "jira.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JIRA_SEARCH_DEFAULT   50
#define JIRA_SEARCH_MAX_IDS   5000 /* only id/key requested */
#define JIRA_SEARCH_MAX_FIELD 100  /* other fields requested */
#define JIRA_SEARCH_MAX_PROPS 5

typedef struct jira_search {
    const char *jql;
    const char *token;
    long long max;
    int has_max;
    const char *fields[16];
    size_t nfields;
    const char *props[JIRA_SEARCH_MAX_PROPS + 1];
    size_t nprops;
    char propbuf[1024];
} jira_search_t;

static char *jira_token_make(size_t offset, int64_t last_id, uint64_t fp)
{
    char raw[96];
    int n = snprintf(raw, sizeof(raw), "%zu:%" PRId64 ":%016" PRIx64, offset, last_id, fp);
    return jira_b64url_encode((const unsigned char *)raw, (size_t)n);
}

static int jira_token_read(const char *tok, size_t *offset, int64_t *last_id, uint64_t fp)
{
    char *raw = jira_b64url_decode(tok, NULL);
    if (!raw)
        return -1;
    unsigned long long off = 0, tfp = 0;
    long long last = 0;
    int consumed = 0;
    int ok = sscanf(raw, "%llu:%lld:%16llx%n", &off, &last, &tfp, &consumed) == 3 &&
             raw[consumed] == '\0' && (uint64_t)tfp == fp;
    free(raw);
    if (!ok)
        return -1;
    *offset = (size_t)off;
    *last_id = last;
    return 0;
}

/* fields ⊆ {id, key}: the cheap kind of page that may hold 5000 issues. */
static int jira_fields_ids_only(const jira_search_t *s)
{
    if (s->nfields == 0)
        return 1;
    for (size_t i = 0; i < s->nfields; i++) {
        char buf[1024];
        const char *toks[64];
        snprintf(buf, sizeof(buf), "%s", s->fields[i]);
        size_t n = jira_split_list(buf, toks, 64);
        for (size_t t = 0; t < n; t++)
            if (strcmp(toks[t], "id") != 0 && strcmp(toks[t], "key") != 0)
                return 0;
    }
    return 1;
}

static void jira_search_run(emu_t *emu, emu_req_t *req, emu_resp_t *resp, jira_search_t *s)
{
    if (s->nprops > JIRA_SEARCH_MAX_PROPS) {
        emu_resp_jira_error(resp, 400, "You can request at most 5 issue properties.", NULL, NULL);
        return;
    }
    long long max = s->has_max ? s->max : JIRA_SEARCH_DEFAULT;
    if (max < 1) {
        emu_resp_jira_error(resp, 400, "The maxResults parameter must be greater than 0.", NULL,
                            NULL);
        return;
    }
    long long cap = jira_fields_ids_only(s) ? JIRA_SEARCH_MAX_IDS : JIRA_SEARCH_MAX_FIELD;
    if (max > cap)
        max = cap;
    jira_jql_env_t env;
    jira_jql_env_init(emu, req, &env);
    char err[512];
    int unbounded = 0;
    jira_jql_t *q = jira_jql_compile(s->jql, &env, &unbounded, err, sizeof(err));
    if (!q) {
        emu_resp_jira_error(resp, 400, err, NULL, NULL);
        return;
    }
    if (unbounded) {
        jira_jql_free(q);
        emu_resp_jira_error(resp, 400,
                            "Unbounded JQL queries are not allowed here. Please add a search "
                            "restriction to your query.",
                            NULL, NULL);
        return;
    }
    size_t start = 0;
    int64_t last_id = 0;
    if (s->token && *s->token &&
        jira_token_read(s->token, &start, &last_id, jira_jql_fingerprint(q)) != 0) {
        jira_jql_free(q);
        emu_resp_jira_error(resp, 400, "The provided next page token is invalid.", NULL, NULL);
        return;
    }
    jira_vec_t hits = {0};
    if (jira_jql_run(q, jira_st(emu), &hits) != 0) {
        jira_jql_free(q);
        jira_vec_clear(&hits);
        emu_resp_jira_error(resp, 500, "out of memory", NULL, NULL);
        return;
    }
    if (last_id) {
        /* Resume after the last issue handed out if it is still a hit. */
        for (size_t i = 0; i < hits.n; i++)
            if (((jira_issue_t *)hits.v[i])->id == last_id) {
                start = i + 1;
                break;
            }
    }
    if (start > hits.n)
        start = hits.n;
    size_t end = start + (size_t)max < hits.n ? start + (size_t)max : hits.n;
    jira_fieldsel_t sel;
    jira_fieldsel_parse(&sel, s->fields, s->nfields, "id");
    json_t *issues = json_array();
    for (size_t i = start; i < end; i++)
        json_array_append_new(issues, jira_issue_json(emu, hits.v[i], &sel, s->props, s->nprops));
    json_t *out = json_pack("{s:o,s:b}", "issues", issues, "isLast", end >= hits.n);
    if (end < hits.n) {
        char *tok =
            jira_token_make(end, ((jira_issue_t *)hits.v[end - 1])->id, jira_jql_fingerprint(q));
        json_object_set_new(out, "nextPageToken", json_string(tok ? tok : ""));
        free(tok);
    }
    jira_vec_clear(&hits);
    jira_jql_free(q);
    emu_resp_json(resp, 200, out);
}

static void jira_h_search_get(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    jira_search_t s = {0};
    s.jql = emu_req_query(req, "jql");
    s.token = emu_req_query(req, "nextPageToken");
    if (emu_req_query(req, "maxResults")) {
        if (!emu_req_query_int(req, "maxResults", JIRA_SEARCH_DEFAULT, &s.max)) {
            emu_resp_jira_error(resp, 400, "The maxResults parameter must be a number.", NULL,
                                NULL);
            return;
        }
        s.has_max = 1;
    }
    s.nfields = emu_req_query_all(req, "fields", s.fields, 16);
    if (s.nfields > 16)
        s.nfields = 16;
    const char *pv[4];
    size_t npv = emu_req_query_all(req, "properties", pv, 4);
    size_t used = 0;
    for (size_t i = 0; i < npv && i < 4; i++) {
        size_t l = strlen(pv[i]);
        if (used + l + 1 > sizeof(s.propbuf))
            break;
        memcpy(s.propbuf + used, pv[i], l + 1);
        s.nprops += jira_split_list(s.propbuf + used, s.props + s.nprops,
                                    JIRA_SEARCH_MAX_PROPS + 1 - s.nprops);
        used += l + 1;
    }
    jira_search_run(emu, req, resp, &s);
}

static void jira_h_search_post(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    char err[256];
    json_t *body = emu_req_json(req, err, sizeof(err));
    if (!body || !json_is_object(body)) {
        emu_resp_jira_error(resp, 400, body ? "The request body must be a JSON object." : err, NULL,
                            NULL);
        return;
    }
    static const char *const allowed[] = {
        "jql",        "nextPageToken", "maxResults", "fields",          "expand",
        "properties", "fieldsByKeys",  "failFast",   "reconcileIssues", NULL};
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v)
    {
        int ok = 0;
        for (size_t i = 0; allowed[i] && !ok; i++)
            ok = strcmp(allowed[i], k) == 0;
        if (!ok) {
            char msg[300];
            snprintf(msg, sizeof(msg), "Unrecognized field \"%s\"", k);
            emu_resp_jira_error(resp, 400, msg, NULL, NULL);
            return;
        }
    }
    jira_search_t s = {0};
    json_t *jql = json_object_get(body, "jql");
    json_t *tok = json_object_get(body, "nextPageToken");
    json_t *max = json_object_get(body, "maxResults");
    json_t *fields = json_object_get(body, "fields");
    json_t *props = json_object_get(body, "properties");
    json_t *rec = json_object_get(body, "reconcileIssues");
    if ((jql && !json_is_string(jql) && !json_is_null(jql)) ||
        (tok && !json_is_string(tok) && !json_is_null(tok)) || (max && !json_is_integer(max)) ||
        (fields && !json_is_array(fields)) || (props && !json_is_array(props)) ||
        (rec && !json_is_array(rec))) {
        emu_resp_jira_error(resp, 400, "The request body has a value of the wrong type.", NULL,
                            NULL);
        return;
    }
    if (json_array_size(rec) > 50) {
        emu_resp_jira_error(resp, 400, "reconcileIssues accepts at most 50 issue ids.", NULL, NULL);
        return;
    }
    s.jql = json_string_value(jql);
    s.token = json_string_value(tok);
    if (max) {
        s.max = json_integer_value(max);
        s.has_max = 1;
    }
    size_t i;
    json_array_foreach(fields, i, v)
    {
        if (json_is_string(v) && s.nfields < 16)
            s.fields[s.nfields++] = json_string_value(v);
    }
    json_array_foreach(props, i, v)
    {
        if (json_is_string(v) && s.nprops <= JIRA_SEARCH_MAX_PROPS)
            s.props[s.nprops++] = json_string_value(v);
    }
    jira_search_run(emu, req, resp, &s);
}

static void jira_h_search_gone(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    emu_resp_jira_error(resp, 410,
                        "The requested API has been removed. Please migrate to the "
                        "/rest/api/3/search/jql API. A full migration guideline is available at "
                        "https://developer.atlassian.com/changelog/#CHANGE-2046",
                        NULL, NULL);
}

void jira_register_search_routes(emu_t *emu)
{
    static const emu_route_opts read = {.auth = EMU_AUTH_JIRA};
    emu_route(emu, "GET", JIRA_API "/search/jql", jira_h_search_get, &read);
    emu_route(emu, "POST", JIRA_API "/search/jql", jira_h_search_post, &read);
    emu_route(emu, "GET", JIRA_API "/search", jira_h_search_gone, &read);
    emu_route(emu, "POST", JIRA_API "/search", jira_h_search_gone, &read);
    emu_route(emu, "GET", "/rest/api/2/search", jira_h_search_gone, &read);
    emu_route(emu, "POST", "/rest/api/2/search", jira_h_search_gone, &read);
}
