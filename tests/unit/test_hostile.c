/* Hostile values from IDHub, end to end through the pure half of the worker:
 * an event is decoded (jp_event_decode) and its values go into the requests
 * the apply stage builds (jira.h). Every value is either refused with a
 * clear reason, or arrives escaped exactly: the URL, JQL and header bytes are
 * compared in full, not just "did not crash". Also: identifiers from Jira's
 * answers in path segments, JQL quoting, credentials in headers, limits. */
#include "jiraprov/config.h"
#include "jiraprov/event.h"
#include "jiraprov/http.h"
#include "jiraprov/jira.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/check_main.h"

#define SCIM "https://api.atlassian.com/scim/directory/d1"
#define REST "https://acme.atlassian.net/rest/api/3"

static jp_site_t site;
static char err[1024];

static void setup(void)
{
    memset(&site, 0, sizeof(site));
    site.name = (char *)"acme";
    site.jira_url = (char *)"https://acme.atlassian.net";
    site.email = (char *)"bot@example.com";
    site.api_token = (char *)"tok123";
    site.scim_url = (char *)SCIM;
    site.scim_api_key = (char *)"scimkey";
    site.admin_url = (char *)"https://api.atlassian.com";
    site.org_api_key = (char *)"orgkey";
    site.tls_verify = true;
    err[0] = '\0';
}

/* Every request, whatever went into it: printable ASCII URL without '#',
 * space or quote, and exactly the fixed headers, none with CR/LF. */
static void check_sendable(const jp_jira_req_t *r)
{
    for (const char *p = r->url; *p; p++)
        ck_assert_msg(*p > 0x20 && *p < 0x7f && *p != '#' && *p != '"' && *p != '\\',
                      "URL %s holds a raw 0x%02x", r->url, (unsigned char)*p);
    ck_assert_uint_eq(r->nheaders, r->body ? 3 : 2);
    for (size_t i = 0; i < r->nheaders; i++) {
        ck_assert_msg(jp_http_header_ok(r->headers[i]), "header %zu", i);
        ck_assert_ptr_null(strpbrk(r->headers[i], "\r\n"));
    }
    ck_assert_str_eq(r->headers[1], r->api == JP_JIRA_API_SCIM ? "Accept: application/scim+json"
                                                               : "Accept: application/json");
}

/* An event of `type` with `data` (JSON text, may hold raw bytes) and
 * `subject` (JSON text of a string). */
static jp_err_t decode(const char *type, const char *subject, const char *data, jp_event_t **ev)
{
    char buf[16384];
    int n =
        snprintf(buf, sizeof(buf),
                 "{\"specversion\":\"1.0\",\"id\":\"evt-1\",\"source\":\"https://idhub.example/p\","
                 "\"type\":\"com.idhub.%s\",\"subject\":%s,\"time\":\"2026-11-22T09:00:00Z\","
                 "\"jirasite\":\"demo\",\"idhubactor\":\"alice@idhub.example\",\"data\":%s}",
                 type, subject, data);
    ck_assert(n > 0 && (size_t)n < sizeof(buf));
    *ev = NULL;
    err[0] = '\0';
    return jp_event_decode(buf, (size_t)n, NULL, ev, err, sizeof(err));
}

/* ---- logins ---------------------------------------------------------------- */

/* `json` is the login as written in the event (JSON string content, raw
 * bytes allowed); `filter` is the escaped userName filter value expected in
 * the SCIM lookup, or NULL when the event is refused with `reason`. */
static const struct {
    const char *json, *filter, *reason;
} logins[] = {
    {"a/b", NULL, "data.login: expected a login without whitespace or '/', got \"a/b\""},
    {"../../admin", NULL,
     "data.login: expected a login without whitespace or '/', got \"../../admin\""},
    {"..", "%22..%22", NULL},
    {"x?y=1#frag", "%22x%3Fy%3D1%23frag%22", NULL},
    {"100%", "%22100%25%22", NULL},
    {"%2F..%2F", "%22%252F..%252F%22", NULL},
    {"a\\\"b", "%22a%5C%22b%22", NULL}, /* a"b */
    {"\\\" or userName pr or \\\"", NULL,
     "data.login: expected a login without whitespace or '/', got \"\\\" or userName pr or "
     "\\\"\""},
    {"\\\"or(userName)pr\\\"", "%22%5C%22or%28userName%29pr%5C%22%22", NULL}, /* no spaces */
    {"a\\\\b", "%22a%5C%5Cb%22", NULL},                                       /* a\b */
    {"'single'", "%22%27single%27%22", NULL},
    {"jdoe\\r\\nX-Injected: 1", NULL,
     "subject: must not contain control characters (found U+000D at byte 4)"},
    {"jdoe\\nx", NULL, "subject: must not contain control characters (found U+000A at byte 4)"},
    {"jd\\u0000x", NULL,
     "event: not valid JSON at line 1, column 124: strings must not contain \\u0000"},
    {"e\\u0301", "%22e%CC%81%22", NULL},            /* combining acute */
    {"\\u202eadmin", "%22%E2%80%AEadmin%22", NULL}, /* right-to-left override */
    {"\xf0\x9f\x98\x80@x.example", "%22%F0%9F%98%80%40x.example%22", NULL}, /* emoji */
    {"\xe6\x9d\xb1\xe4\xba\xac", "%22%E6%9D%B1%E4%BA%AC%22", NULL},         /* 東京 */
    {"a\\u00a0b", NULL,
     "data.login: expected a login without whitespace or '/', got \"a\\u00a0b\""},
    {"a\\u2028b", NULL,
     "data.login: expected a login without whitespace or '/', got \"a\\u2028b\""},
    {"\\u0085x", NULL, "subject: must not contain control characters (found U+0085 at byte 0)"},
    {"\xc0\xaf", NULL, /* overlong '/' */
     "event: not valid JSON at line 1, column 114: unable to decode byte 0xc0 near '\"'"},
    {"a\xff", NULL,
     "event: not valid JSON at line 1, column 115: unable to decode byte 0xff near "
     "'\"a'"},
    {"\xed\xa0\x80", NULL, /* a surrogate in raw bytes */
     "event: not valid JSON at line 1, column 114: unable to decode byte 0xed near '\"'"},
    {"\\ud800", NULL, /* a lone surrogate escape */
     "event: not valid JSON at line 1, column 121: invalid Unicode '\\uD800' near '\"\\ud800\"'"},
};

START_TEST(hostile_logins)
{
    char subject[256], data[512], url[1024];
    snprintf(subject, sizeof(subject), "\"%s\"", logins[_i].json);
    snprintf(data, sizeof(data), "{\"login\":\"%s\"}", logins[_i].json);
    jp_event_t *ev = NULL;
    jp_err_t rc = decode("account.delete", subject, data, &ev);
    if (!logins[_i].filter) {
        ck_assert_msg(rc == JP_ERR_INVALID, "case %d accepted", _i);
        ck_assert_str_eq(err, logins[_i].reason);
        ck_assert_ptr_null(ev);
        return;
    }
    ck_assert_msg(rc == JP_OK, "case %d refused: %s", _i, err);
    jp_jira_req_t *req = NULL;
    ck_assert_int_eq(jp_jira_scim_user_find(&site, jp_event_login(ev), &req, err, sizeof(err)),
                     JP_OK);
    snprintf(url, sizeof(url), SCIM "/Users?filter=userName%%20eq%%20%s", logins[_i].filter);
    ck_assert_str_eq(req->url, url);
    check_sendable(req);
    jp_jira_req_destroy(req);
    /* The same login as a user search query (assignee lookups): one value. */
    ck_assert_int_eq(jp_jira_user_search(&site, jp_event_login(ev), 0, 10, &req, err, sizeof(err)),
                     JP_OK);
    ck_assert_ptr_nonnull(strstr(req->url, "/user/search?query="));
    ck_assert_ptr_nonnull(strstr(req->url, "&startAt=0&maxResults=10"));
    ck_assert_int_eq((int)(strchr(req->url, '?') - req->url), (int)strlen(REST "/user/search"));
    check_sendable(req);
    jp_jira_req_destroy(req);
    jp_event_destroy(ev);
}
END_TEST

/* ---- group names ------------------------------------------------------------ */

static const struct {
    const char *json, *bulk, *filter;
} groups[] = {
    {"a/b", "a%2Fb", "%22a%2Fb%22"},
    {"..", "%2E%2E", "%22..%22"},
    {"../../x", "..%2F..%2Fx", "%22..%2F..%2Fx%22"},
    {"?x#y", "%3Fx%23y", "%22%3Fx%23y%22"},
    {"100%", "100%25", "%22100%25%22"},
    {"x&groupName=jira-admins", "x%26groupName%3Djira-admins", "%22x%26groupName%3Djira-admins%22"},
    {"\\\"q\\\" or displayName pr", "%22q%22%20or%20displayName%20pr",
     "%22%5C%22q%5C%22%20or%20displayName%20pr%22"},
    {"\\\\", "%5C", "%22%5C%5C%22"},
    {"jira admins", "jira%20admins", "%22jira%20admins%22"},
    {"\\u05e2\\u05d1\\u05e8\\u05d9\\u05ea", "%D7%A2%D7%91%D7%A8%D7%99%D7%AA",
     "%22%D7%A2%D7%91%D7%A8%D7%99%D7%AA%22"}, /* Hebrew, right to left */
};

START_TEST(hostile_group_names)
{
    char data[512], url[1024];
    snprintf(data, sizeof(data),
             "{\"login\":\"jdoe\",\"entitlement\":{\"type\":\"group\",\"group\":\"%s\"}}",
             groups[_i].json);
    jp_event_t *ev = NULL;
    ck_assert_msg(decode("entitlement.grant", "\"jdoe\"", data, &ev) == JP_OK, "%s", err);
    jp_jira_req_t *req = NULL;
    ck_assert_int_eq(jp_jira_group_find(&site, ev->entitlement.group, &req, err, sizeof(err)),
                     JP_OK);
    snprintf(url, sizeof(url), REST "/group/bulk?groupName=%s", groups[_i].bulk);
    ck_assert_str_eq(req->url, url);
    check_sendable(req);
    jp_jira_req_destroy(req);
    ck_assert_int_eq(jp_jira_scim_group_find(&site, ev->entitlement.group, &req, err, sizeof(err)),
                     JP_OK);
    snprintf(url, sizeof(url), SCIM "/Groups?filter=displayName%%20eq%%20%s", groups[_i].filter);
    ck_assert_str_eq(req->url, url);
    check_sendable(req);
    jp_jira_req_destroy(req);
    /* A new SCIM group carries the name in its JSON body, unchanged. */
    ck_assert_int_eq(
        jp_jira_scim_group_create(&site, ev->entitlement.group, &req, err, sizeof(err)), JP_OK);
    json_t *body = json_loads(req->body, 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(body, "displayName")),
                     ev->entitlement.group);
    json_decref(body);
    jp_jira_req_destroy(req);
    jp_event_destroy(ev);
}
END_TEST

START_TEST(hostile_refused_in_events)
{
    static const struct {
        const char *type, *subject, *data, *reason;
    } cases[] = {
        {"entitlement.grant", "\"jdoe\"",
         "{\"login\":\"jdoe\",\"entitlement\":{\"type\":\"group\",\"group\":\"g\\r\\nX: 1\"}}",
         "data.entitlement.group: must not contain control characters (found U+000D at byte 1)"},
        {"entitlement.grant", "\"jdoe\"",
         "{\"login\":\"jdoe\",\"entitlement\":{\"type\":\"projectRole\",\"project\":\"DEMO/../X\","
         "\"role\":\"Developers\"}}",
         "data.entitlement.project: expected a project key matching ^[A-Z][A-Z0-9]{1,9}$, got "
         "\"DEMO/../X\""},
        {"issue.transition", "\"DEMO-1/../../rest\"",
         "{\"key\":\"DEMO-1/../../rest\",\"status\":\"Done\"}",
         "data.key: expected an issue key like \"DEMO-12\", got \"DEMO-1/../../rest\""},
        {"issue.transition", "\"DEMO-1?x=1\"", "{\"key\":\"DEMO-1?x=1\",\"status\":\"Done\"}",
         "data.key: expected an issue key like \"DEMO-12\", got \"DEMO-1?x=1\""},
        {"issue.delete", "\"HR-1\\\" OR project = SECRET\"",
         "{\"externalRef\":\"HR-1\\\" OR project = SECRET\"}",
         "data.externalRef: expected 1 to 128 characters of [A-Za-z0-9._:-], got \"HR-1\\\" OR "
         "project = SECRET\""},
        {"issue.create", "\"HR-1\"",
         "{\"externalRef\":\"HR-1\",\"project\":\"DEMO\",\"issueType\":\"Task\",\"summary\":"
         "\"s\\r\\nX: 1\"}",
         "data.summary: must not contain control characters (found U+000D at byte 1)"},
        {"issue.create", "\"HR-1\"",
         "{\"externalRef\":\"HR-1\",\"project\":\"DEMO\",\"issueType\":\"Task\",\"summary\":\"s\","
         "\"labels\":[\"a\\u2003b\"]}",
         "data.labels[0]: expected a label without whitespace, got \"a\\u2003b\""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        jp_event_t *ev = NULL;
        ck_assert_int_eq(decode(cases[i].type, cases[i].subject, cases[i].data, &ev),
                         JP_ERR_INVALID);
        ck_assert_str_eq(err, cases[i].reason);
    }
}
END_TEST

/* ---- issues: labels, JQL ----------------------------------------------------- */

START_TEST(hostile_labels_and_jql)
{
    jp_event_t *ev = NULL;
    ck_assert_msg(decode("issue.create", "\"HR.1:2_3-4\"",
                         "{\"externalRef\":\"HR.1:2_3-4\",\"project\":\"DEMO\",\"issueType\":"
                         "\"Task\",\"summary\":\"Quote \\\" and back\\\\slash <b>&amp;\","
                         "\"labels\":[\"a\\\"b\",\"c\\\\d\",\"x?y#z\",\"\\u202eevil\"]}",
                         &ev) == JP_OK,
                  "%s", err);
    jp_jira_issue_fields_t f = {.project = ev->issue.project,
                                .issue_type = ev->issue.issue_type,
                                .summary = ev->issue.summary,
                                .labels_state = ev->issue.labels_state,
                                .labels_count = ev->issue.labels_count,
                                .labels = ev->issue.labels,
                                .external_ref = ev->issue.external_ref,
                                .event_id = ev->id};
    jp_jira_req_t *req = NULL;
    ck_assert_msg(jp_jira_issue_create(&site, &f, &req, err, sizeof(err)) == JP_OK, "%s", err);
    ck_assert_str_eq(req->url, REST "/issue");
    check_sendable(req);
    /* JSON escapes what JSON must; nothing else is changed or lost. */
    ck_assert_ptr_nonnull(strstr(req->body, "\"summary\":\"Quote \\\" and back\\\\slash "
                                            "<b>&amp;\""));
    ck_assert_ptr_nonnull(strstr(req->body, "\"labels\":[\"a\\\"b\",\"c\\\\d\",\"x?y#z\","
                                            "\"\xe2\x80\xae"
                                            "evil\",\"idhub-ref-HR.1:2_3-4\"]"));
    jp_jira_req_destroy(req);

    /* The lookup by ref: JQL from the validated key and the quoted label. */
    ck_assert_int_eq(jp_jira_issue_find_by_ref(&site, ev->issue.project, ev->issue.external_ref,
                                               JP_JIRA_FIND_BY_LABEL, &req, err, sizeof(err)),
                     JP_OK);
    ck_assert_str_eq(req->url, REST "/search/jql");
    check_sendable(req);
    json_t *body = json_loads(req->body, 0, NULL);
    ck_assert_str_eq(
        json_string_value(json_object_get(body, "jql")),
        "project = \"DEMO\" AND labels = \"idhub-ref-HR.1:2_3-4\" ORDER BY created ASC");
    json_decref(body);
    jp_jira_req_destroy(req);

    /* A label with the reserved prefix: refused, with why. */
    const char *reserved[] = {"IDHUB-REF-HR-2"};
    f.labels = reserved;
    f.labels_count = 1;
    ck_assert_int_eq(jp_jira_issue_create(&site, &f, &req, err, sizeof(err)), JP_ERR_INVALID);
    ck_assert_ptr_null(req);
    ck_assert_str_eq(err, "labels[0]: the prefix \"idhub-ref-\" is reserved for the label jiraprov "
                          "tags issues with");
    /* A ref that did not pass the decoder is refused by the builder too. */
    ck_assert_int_eq(jp_jira_issue_find_by_ref(&site, NULL, "HR-1\" OR labels is not EMPTY",
                                               JP_JIRA_FIND_BY_PROPERTY, &req, err, sizeof(err)),
                     JP_ERR_INVALID);
    ck_assert_str_eq(err, "externalRef must match [A-Za-z0-9._:-]{1,128}");
    jp_event_destroy(ev);
}
END_TEST

/* jp_jira_jql_quote: every attempt to leave the string literal stays inside. */
START_TEST(jql_quoting)
{
    static const struct {
        const char *in, *out;
    } ok[] = {
        {"\" OR project = SECRET OR labels = \"", "\"\\\" OR project = SECRET OR labels = \\\"\""},
        {"\\", "\"\\\\\""},
        {"a\\\"b", "\"a\\\\\\\"b\""},
        {"x' OR '1'='1", "\"x' OR '1'='1\""},
        {"ORDER BY key", "\"ORDER BY key\""},
        {"\xe2\x80\xae\xe6\x9d\xb1", "\"\xe2\x80\xae\xe6\x9d\xb1\""},
    };
    char out[128];
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        ck_assert_int_eq(jp_jira_jql_quote(ok[i].in, out, sizeof(out), err, sizeof(err)), JP_OK);
        ck_assert_str_eq(out, ok[i].out);
    }
    static const struct {
        const char *in, *reason;
    } bad[] = {
        {"a\r\nb", "JQL value contains a control character (at byte 1)"},
        {"a\tb", "JQL value contains a control character (at byte 1)"},
        {"\xc2\x85", "JQL value contains a control character (at byte 0)"}, /* C1 NEL */
        {"\xc0\xa2", "JQL value is not valid UTF-8 (at byte 0)"},           /* overlong '"' */
        {"ok\xff", "JQL value is not valid UTF-8 (at byte 2)"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_eq(jp_jira_jql_quote(bad[i].in, out, sizeof(out), err, sizeof(err)),
                         JP_ERR_INVALID);
        ck_assert_str_eq(err, bad[i].reason);
        ck_assert_str_eq(out, "");
    }
}
END_TEST

/* ---- identifiers from Jira's answers ------------------------------------------ */

/* A SCIM id comes from a response: a hostile server's id stays one segment. */
START_TEST(ids_from_responses)
{
    static const struct {
        const char *id, *url;
    } ids[] = {
        {"../../Groups/g1", SCIM "/Users/..%2F..%2FGroups%2Fg1"},
        {"..", SCIM "/Users/%2E%2E"},
        {".", SCIM "/Users/%2E"},
        {"a?b#c", SCIM "/Users/a%3Fb%23c"},
        {"x\r\nHost: evil", SCIM "/Users/x%0D%0AHost%3A%20evil"},
    };
    jp_jira_req_t *req = NULL;
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        ck_assert_int_eq(jp_jira_scim_user_delete(&site, ids[i].id, &req, err, sizeof(err)), JP_OK);
        ck_assert_str_eq(req->url, ids[i].url);
        check_sendable(req);
        jp_jira_req_destroy(req);
    }
    /* The same through the parser, as the worker gets it. */
    const char *body = "{\"id\":\"../../Groups/g1\",\"userName\":\"jdoe\"}";
    jp_jira_scim_user_t *u = NULL;
    ck_assert_int_eq(jp_jira_parse_scim_user(200, body, strlen(body), &u, err, sizeof(err)), JP_OK);
    ck_assert_int_eq(jp_jira_scim_user_set_active(&site, u->id, false, &req, err, sizeof(err)),
                     JP_OK);
    ck_assert_str_eq(req->url, SCIM "/Users/..%2F..%2FGroups%2Fg1");
    jp_jira_req_destroy(req);
    jp_jira_scim_user_destroy(u);
    /* Account ids have a pattern: anything else is refused before a URL. */
    ck_assert_int_eq(jp_jira_admin_disable(&site, "5b10/../x", NULL, &req, err, sizeof(err)),
                     JP_ERR_INVALID);
    ck_assert_str_eq(
        err, "accountId \"5b10/../x\" is not an Atlassian account id ([A-Za-z0-9_|:-]{1,128})");
    ck_assert_int_eq(jp_jira_group_add_user(&site, "g1", "a\r\nb", &req, err, sizeof(err)),
                     JP_ERR_INVALID);
    ck_assert_str_eq(err,
                     "accountId \"a  b\" is not an Atlassian account id ([A-Za-z0-9_|:-]{1,128})");
    /* Issue keys and project keys: the Cloud patterns, nothing else. */
    ck_assert_int_eq(jp_jira_issue_get(&site, "DEMO-1/../../x", &req, err, sizeof(err)),
                     JP_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "does not match the Jira Cloud pattern"));
    ck_assert_int_eq(jp_jira_project_roles(&site, "DEMO%2F", &req, err, sizeof(err)),
                     JP_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "project key \"DEMO%2F\" does not match"));
}
END_TEST

/* ---- credentials and headers -------------------------------------------------- */

START_TEST(header_injection_impossible)
{
    jp_jira_req_t *req = NULL;
    static const char *bad[] = {"tok\r\nX-Injected: 1", "tok\n", "tok\x7f", "tok\x01"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        site.api_token = (char *)bad[i];
        ck_assert_int_eq(
            jp_jira_user_get(&site, "5b10ac8d82e05b22cc7d4ef5", &req, err, sizeof(err)),
            JP_ERR_INVALID);
        ck_assert_str_eq(err, "site acme: api_token holds a control character (CR, LF, ...)");
        site.scim_api_key = (char *)bad[i];
        ck_assert_int_eq(jp_jira_scim_user_get(&site, "u1", &req, err, sizeof(err)),
                         JP_ERR_INVALID);
        ck_assert_str_eq(err, "site acme: scim_api_key holds a control character (CR, LF, ...)");
        setup();
    }
    /* Basic auth base64-encodes email:token, so the header holds no raw byte
     * of them; an email with ':' would shift the split and is refused. */
    site.api_token = (char *)"tok \"quoted\" \xc3\xa9";
    ck_assert_int_eq(jp_jira_user_get(&site, "5b10ac8d82e05b22cc7d4ef5", &req, err, sizeof(err)),
                     JP_OK);
    ck_assert_str_eq(req->headers[0],
                     "Authorization: Basic Ym90QGV4YW1wbGUuY29tOnRvayAicXVvdGVkIiDDqQ==");
    check_sendable(req);
    jp_jira_req_destroy(req);
    site.email = (char *)"bot:admin@example.com";
    ck_assert_int_eq(jp_jira_user_get(&site, "5b10ac8d82e05b22cc7d4ef5", &req, err, sizeof(err)),
                     JP_ERR_INVALID);
    ck_assert_str_eq(err, "site acme: email must not contain ':' (Basic authentication)");
    /* The HTTP layer's own guard, for any header a caller might add. */
    ck_assert(!jp_http_header_ok("a\r\nb"));
    ck_assert(!jp_http_header_okn("a\0b", 3));
    ck_assert(jp_http_header_ok("tab\tis fine"));

    /* The config refuses such a secret at start, without showing it. */
    jp_config_t *cfg = NULL;
    const char *yaml =
        "kafka:\n  bootstrap.servers: k:9092\nredis:\n  url: redis://r\nsites:\n"
        "  - name: acme\n    jira_url: https://acme.atlassian.net\n"
        "    email: bot@acme.example\n    api_token: \"tok-1234\\r\\nX-Injected: 1\"\n"
        "    scim_url: https://api.atlassian.com/scim/directory/d1\n"
        "    scim_api_key: key-1234\n";
    ck_assert_int_eq(jp_config_load_string(yaml, "t.yaml", &cfg, err, sizeof(err)), JP_ERR_INVALID);
    ck_assert_str_eq(err, "t.yaml:9:16: sites[0].api_token: the secret contains a control "
                          "character (CR, LF, TAB, ...)");
    jp_log_clear_secrets();
}
END_TEST

/* ---- limits --------------------------------------------------------------------- */

static char *repeat(const char *unit, size_t times)
{
    size_t u = strlen(unit);
    char *s = malloc(u * times + 1);
    ck_assert_ptr_nonnull(s);
    for (size_t i = 0; i < times; i++)
        memcpy(s + i * u, unit, u);
    s[u * times] = '\0';
    return s;
}

/* A login of `unit` x times: accepted up to 256 bytes, refused above. */
static void login_limit(const char *unit, size_t times, bool ok, const char *reason)
{
    char *login = repeat(unit, times);
    char subject[2048], data[2048];
    snprintf(subject, sizeof(subject), "\"%s\"", login);
    snprintf(data, sizeof(data), "{\"login\":\"%s\"}", login);
    jp_event_t *ev = NULL;
    jp_err_t rc = decode("account.disable", subject, data, &ev);
    if (ok) {
        ck_assert_msg(rc == JP_OK, "%s", err);
        jp_jira_req_t *req = NULL;
        ck_assert_int_eq(jp_jira_scim_user_find(&site, jp_event_login(ev), &req, err, sizeof(err)),
                         JP_OK);
        check_sendable(req);
        jp_jira_req_destroy(req);
    } else {
        ck_assert_int_eq(rc, JP_ERR_INVALID);
        ck_assert_str_eq(err, reason);
    }
    jp_event_destroy(ev);
    free(login);
}

START_TEST(length_limits)
{
    login_limit("a", 256, true, NULL);
    login_limit("a", 257, false, "data.login: is 257 bytes long, the maximum is 256");
    login_limit("\xf0\x9f\x98\x80", 64, true, NULL); /* 256 bytes */
    login_limit("\xf0\x9f\x98\x80", 65, false, "data.login: is 260 bytes long, the maximum is 256");

    /* Summary and labels count characters, as Jira does. */
    char *summary = repeat("\xc3\xa9", 255), *label = repeat("\xe6\x9d\xb1", 255);
    char *data = malloc(8192);
    ck_assert_ptr_nonnull(data);
    snprintf(data, 8192,
             "{\"externalRef\":\"HR-1\",\"project\":\"DEMO\",\"issueType\":\"Task\",\"summary\":"
             "\"%s\",\"labels\":[\"%s\"]}",
             summary, label);
    jp_event_t *ev = NULL;
    ck_assert_msg(decode("issue.create", "\"HR-1\"", data, &ev) == JP_OK, "%s", err);
    jp_jira_issue_fields_t f = {.project = "DEMO",
                                .issue_type = "Task",
                                .summary = ev->issue.summary,
                                .labels_state = JP_VALUE,
                                .labels_count = 1,
                                .labels = ev->issue.labels,
                                .external_ref = "HR-1",
                                .event_id = "evt-1"};
    jp_jira_req_t *req = NULL;
    ck_assert_msg(jp_jira_issue_create(&site, &f, &req, err, sizeof(err)) == JP_OK, "%s", err);
    jp_jira_req_destroy(req);
    jp_event_destroy(ev);
    free(summary);
    summary = repeat("\xc3\xa9", 256);
    snprintf(data, 8192,
             "{\"externalRef\":\"HR-1\",\"project\":\"DEMO\",\"issueType\":\"Task\",\"summary\":"
             "\"%s\"}",
             summary);
    ck_assert_int_eq(decode("issue.create", "\"HR-1\"", data, &ev), JP_ERR_INVALID);
    ck_assert_str_eq(err, "data.summary: is 256 characters long, the maximum is 255");
    free(summary);
    free(label);
    free(data);

    /* An event above the size limit is refused before it is parsed. */
    size_t big = JP_EVENT_MAX_BYTES + 1;
    char *huge = malloc(big);
    ck_assert_ptr_nonnull(huge);
    memset(huge, ' ', big);
    huge[0] = '{';
    huge[big - 1] = '}';
    ck_assert_int_eq(jp_event_decode(huge, big, NULL, &ev, err, sizeof(err)), JP_ERR_TOO_LARGE);
    ck_assert_str_eq(err, "event: 1048577 bytes exceeds the limit of 1048576");
    free(huge);

    /* A URL above 8 KiB is refused, not cut: a group name of 3000 '%' is
     * 9000 bytes once escaped. */
    char *pct = repeat("%", 3000);
    ck_assert_int_eq(jp_jira_group_find(&site, pct, &req, err, sizeof(err)), JP_ERR_TOO_LARGE);
    ck_assert_ptr_null(req);
    ck_assert_str_eq(err, "the request URL would be 9059 bytes, above the 8192-byte limit");
    free(pct);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("hostile");
    TCase *tc = tcase_create("hostile");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_loop_test(tc, hostile_logins, 0, (int)(sizeof(logins) / sizeof(logins[0])));
    tcase_add_loop_test(tc, hostile_group_names, 0, (int)(sizeof(groups) / sizeof(groups[0])));
    tcase_add_test(tc, hostile_refused_in_events);
    tcase_add_test(tc, hostile_labels_and_jql);
    tcase_add_test(tc, jql_quoting);
    tcase_add_test(tc, ids_from_responses);
    tcase_add_test(tc, header_injection_impossible);
    tcase_add_test(tc, length_limits);
    suite_add_tcase(s, tc);
    return s;
}

JP_CHECK_MAIN(suite)
