/* Unit tests of the jira module: exact requests from every builder (URL,
 * method, headers, body, flags), hostile values, every parser on realistic
 * fixtures (tests/unit/data/jira) and on broken input, JQL quoting. */
#include "jiraprov/jira.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/check_main.h"
#include "../lib/fixture.h"

/* ---- fixtures and helpers ------------------------------------------------- */

#define SCIM_BASE  "https://api.atlassian.com/scim/directory/dir-1"
#define REST_BASE  "https://acme.atlassian.net/rest/api/3"
#define ADMIN_BASE "https://api.atlassian.com"
#define BASIC      "Authorization: Basic Ym90QGV4YW1wbGUuY29tOnRvazEyMw==" /* bot@example.com:tok123 */
#define ACC        "5b10ac8d82e05b22cc7d4ef5"
#define ACC2       "557058:f58131cb-b67d-43c7-b30d-6b58d40bd077"
#define GID        "276f955c-63d7-42c8-9520-92d01dca0625"

static jp_site_t site;
static jp_jira_req_t *req;
static char err[1024];

static void setup(void)
{
    memset(&site, 0, sizeof(site));
    site.name = (char *)"acme";
    site.jira_url = (char *)"https://acme.atlassian.net";
    site.email = (char *)"bot@example.com";
    site.api_token = (char *)"tok123";
    site.scim_url = (char *)SCIM_BASE;
    site.scim_api_key = (char *)"scimkey";
    site.admin_url = (char *)ADMIN_BASE;
    site.org_api_key = (char *)"orgkey";
    req = NULL;
    err[0] = '\0';
}

static void teardown(void)
{
    jp_jira_req_destroy(req);
    req = NULL;
}

/* Asserts that a builder call succeeded. */
#define BUILD_OK(call)                                                                             \
    do {                                                                                           \
        jp_jira_req_destroy(req);                                                                  \
        req = NULL;                                                                                \
        jp_err_t rc_ = (call);                                                                     \
        ck_assert_msg(rc_ == JP_OK, "%s failed: %s", #call, err);                                  \
        ck_assert_ptr_nonnull(req);                                                                \
    } while (0)

/* Asserts that a builder call failed with `code` and a message containing `what`. */
#define BUILD_FAIL(code, what, call)                                                               \
    do {                                                                                           \
        jp_jira_req_destroy(req);                                                                  \
        req = (jp_jira_req_t *)0x1;                                                                \
        err[0] = '\0';                                                                             \
        jp_err_t rc_ = (call);                                                                     \
        ck_assert_msg(rc_ == (code), "%s: expected %d got %d (%s)", #call, (int)(code), (int)rc_,  \
                      err);                                                                        \
        ck_assert_ptr_null(req);                                                                   \
        ck_assert_msg(strstr(err, (what)) != NULL, "%s: message \"%s\" lacks \"%s\"", #call, err,  \
                      (what));                                                                     \
    } while (0)

static void expect(jp_http_method_t method, const char *url, const char *cls, const char *body,
                   bool idempotent, bool mutation)
{
    ck_assert_ptr_nonnull(req);
    ck_assert_int_eq(req->method, method);
    ck_assert_str_eq(req->url, url);
    ck_assert_str_eq(req->endpoint_class, cls);
    ck_assert_msg(req->idempotent == idempotent, "idempotent is %d", req->idempotent);
    ck_assert_msg(req->mutation == mutation, "mutation is %d", req->mutation);
    const char *auth = req->api == JP_JIRA_API_REST   ? BASIC
                       : req->api == JP_JIRA_API_SCIM ? "Authorization: Bearer scimkey"
                                                      : "Authorization: Bearer orgkey";
    const char *ct = req->api == JP_JIRA_API_SCIM ? "application/scim+json" : "application/json";
    char accept[64], ctype[64];
    snprintf(accept, sizeof(accept), "Accept: %s", ct);
    snprintf(ctype, sizeof(ctype), "Content-Type: %s", ct);
    if (body) {
        ck_assert_ptr_nonnull(req->body);
        ck_assert_str_eq(req->body, body);
        ck_assert_uint_eq(req->body_len, strlen(body));
        ck_assert_uint_eq(req->nheaders, 3);
        ck_assert_str_eq(req->headers[2], ctype);
    } else {
        ck_assert_ptr_null(req->body);
        ck_assert_uint_eq(req->body_len, 0);
        ck_assert_uint_eq(req->nheaders, 2);
    }
    ck_assert_str_eq(req->headers[0], auth);
    ck_assert_str_eq(req->headers[1], accept);
    for (size_t i = 0; i < req->nheaders; i++)
        ck_assert(jp_http_header_ok(req->headers[i]));
    ck_assert_uint_le(strlen(req->url), JP_JIRA_URL_MAX);
}

static char *read_fixture(const char *name, size_t *len)
{
    char rel[512];
    snprintf(rel, sizeof(rel), "/tests/unit/data/jira/%s", name);
    return testfix_read(rel, len);
}

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

/* ---- SCIM builders --------------------------------------------------------- */

START_TEST(scim_user_find_plain)
{
    BUILD_OK(jp_jira_scim_user_find(&site, "jdoe@example.com", &req, err, sizeof(err)));
    expect(JP_HTTP_GET, SCIM_BASE "/Users?filter=userName%20eq%20%22jdoe%40example.com%22",
           "scim.users", NULL, true, false);
    ck_assert_int_eq(req->api, JP_JIRA_API_SCIM);
    ck_assert_ptr_null(req->issue_key);
    BUILD_OK(jp_jira_scim_user_find_external_id(&site, "00u1a2b3", &req, err, sizeof(err)));
    expect(JP_HTTP_GET, SCIM_BASE "/Users?filter=externalId%20eq%20%2200u1a2b3%22", "scim.users",
           NULL, true, false);
    /* The account flows read the user's own attributes only. */
    BUILD_OK(jp_jira_scim_user_find_own(&site, "jdoe@example.com", &req, err, sizeof(err)));
    expect(JP_HTTP_GET,
           SCIM_BASE "/Users?filter=userName%20eq%20%22jdoe%40example.com%22"
                     "&excludedAttributes=groups%2Cmeta",
           "scim.users", NULL, true, false);
}
END_TEST

/* Hostile logins end up inside the quoted filter value, escaped for SCIM
 * (`"` and `\`) and then percent-encoded as a whole. */
static const struct {
    const char *login;
    const char *escaped;
} hostile_logins[] = {
    {"a/b", "a%2Fb"},
    {"..", ".."},
    {"../../admin", "..%2F..%2Fadmin"},
    {"?x=1#frag", "%3Fx%3D1%23frag"},
    {"100%", "100%25"},
    {"%2F", "%252F"},
    {"a\"b", "a%5C%22b"},
    {"\" or userName pr or \"", "%5C%22%20or%20userName%20pr%20or%20%5C%22"},
    {"a\\b", "a%5C%5Cb"},
    {"a\r\nX-Injected: 1", "a%0D%0AX-Injected%3A%201"},
    {"Zoë.東京", "Zo%C3%AB.%E6%9D%B1%E4%BA%AC"},
    {"a b+c&d=e", "a%20b%2Bc%26d%3De"},
    {"~j.d_o-e", "~j.d_o-e"},
};

START_TEST(scim_user_find_hostile)
{
    const char *login = hostile_logins[_i].login;
    char url[512];
    snprintf(url, sizeof(url), SCIM_BASE "/Users?filter=userName%%20eq%%20%%22%s%%22",
             hostile_logins[_i].escaped);
    BUILD_OK(jp_jira_scim_user_find(&site, login, &req, err, sizeof(err)));
    expect(JP_HTTP_GET, url, "scim.users", NULL, true, false);
}
END_TEST

START_TEST(scim_user_find_limits)
{
    char *ok = repeat("a", 3000);
    BUILD_OK(jp_jira_scim_user_find(&site, ok, &req, err, sizeof(err)));
    ck_assert_uint_gt(strlen(req->url), 3000);
    char *slashes = repeat("/", 3000); /* 9000 bytes once escaped */
    BUILD_FAIL(JP_ERR_TOO_LARGE, "8192",
               jp_jira_scim_user_find(&site, slashes, &req, err, sizeof(err)));
    char *huge = repeat("x", 100000);
    BUILD_FAIL(JP_ERR_TOO_LARGE, "8192",
               jp_jira_scim_user_find(&site, huge, &req, err, sizeof(err)));
    BUILD_FAIL(JP_ERR_INVALID, "empty", jp_jira_scim_user_find(&site, "", &req, err, sizeof(err)));
    BUILD_FAIL(JP_ERR_INVALID, "empty",
               jp_jira_scim_user_find(&site, NULL, &req, err, sizeof(err)));
    BUILD_FAIL(JP_ERR_INVALID, "UTF-8",
               jp_jira_scim_user_find(&site, "bad\xff", &req, err, sizeof(err)));
    BUILD_FAIL(JP_ERR_INVALID, "UTF-8",
               jp_jira_scim_user_find(&site, "\xc0\xaf", &req, err, sizeof(err))); /* overlong / */
    free(ok);
    free(slashes);
    free(huge);
}
END_TEST

START_TEST(scim_user_by_id)
{
    BUILD_OK(jp_jira_scim_user_get(&site, "ef5f7c4e-6a47", &req, err, sizeof(err)));
    expect(JP_HTTP_GET, SCIM_BASE "/Users/ef5f7c4e-6a47", "scim.users", NULL, true, false);
    BUILD_OK(jp_jira_scim_user_get(&site, "..", &req, err, sizeof(err)));
    expect(JP_HTTP_GET, SCIM_BASE "/Users/%2E%2E", "scim.users", NULL, true, false);
    BUILD_OK(jp_jira_scim_user_get(&site, "../Groups?x#y", &req, err, sizeof(err)));
    expect(JP_HTTP_GET, SCIM_BASE "/Users/..%2FGroups%3Fx%23y", "scim.users", NULL, true, false);
    BUILD_OK(jp_jira_scim_user_delete(&site, "ef5f7c4e-6a47", &req, err, sizeof(err)));
    expect(JP_HTTP_DELETE, SCIM_BASE "/Users/ef5f7c4e-6a47", "scim.users", NULL, true, true);
    BUILD_FAIL(JP_ERR_INVALID, "SCIM user id",
               jp_jira_scim_user_get(&site, "", &req, err, sizeof(err)));
    BUILD_FAIL(JP_ERR_INVALID, "SCIM user id",
               jp_jira_scim_user_delete(&site, NULL, &req, err, sizeof(err)));
}
END_TEST

START_TEST(scim_user_create_and_patch)
{
    json_t *user =
        json_pack("{s:[s], s:s, s:[{s:s, s:b}], s:b}", "schemas",
                  "urn:ietf:params:scim:schemas:core:2.0:User", "userName", "jdoe@example.com",
                  "emails", "value", "jdoe@example.com", "primary", 1, "active", 1);
    BUILD_OK(jp_jira_scim_user_create(&site, user, &req, err, sizeof(err)));
    expect(JP_HTTP_POST, SCIM_BASE "/Users", "scim.users",
           "{\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:User\"],\"userName\":\"jdoe@"
           "example.com\",\"emails\":[{\"value\":\"jdoe@example.com\",\"primary\":true}],"
           "\"active\":true}",
           false, true);
    ck_assert_int_eq(user->refcount, 1); /* not retained */
    json_decref(user);

    json_t *arr = json_array();
    BUILD_FAIL(JP_ERR_INVALID, "object",
               jp_jira_scim_user_create(&site, arr, &req, err, sizeof(err)));
    json_decref(arr);
    json_t *nouser = json_pack("{s:s}", "displayName", "x");
    BUILD_FAIL(JP_ERR_INVALID, "userName",
               jp_jira_scim_user_create(&site, nouser, &req, err, sizeof(err)));
    json_decref(nouser);

    json_t *patch = json_pack("{s:[s], s:[{s:s, s:s, s:s}]}", "schemas",
                              "urn:ietf:params:scim:api:messages:2.0:PatchOp", "Operations", "op",
                              "replace", "path", "name.familyName", "value", "Doe");
    BUILD_OK(jp_jira_scim_user_patch(&site, "u-1", patch, &req, err, sizeof(err)));
    expect(JP_HTTP_PATCH, SCIM_BASE "/Users/u-1", "scim.users",
           "{\"schemas\":[\"urn:ietf:params:scim:api:messages:2.0:PatchOp\"],\"Operations\":[{"
           "\"op\":\"replace\",\"path\":\"name.familyName\",\"value\":\"Doe\"}]}",
           true, true);
    json_decref(patch);
    patch = json_pack("{s:[{s:s, s:s, s:[{s:s}]}]}", "operations", "op", "add", "path", "emails",
                      "value", "value", "b@example.com");
    BUILD_OK(jp_jira_scim_user_patch(&site, "u-1", patch, &req, err, sizeof(err)));
    ck_assert(!req->idempotent); /* "add" may duplicate */
    json_decref(patch);
    patch = json_pack("{s:[]}", "Operations");
    BUILD_FAIL(JP_ERR_INVALID, "Operations",
               jp_jira_scim_user_patch(&site, "u-1", patch, &req, err, sizeof(err)));
    json_decref(patch);

    BUILD_OK(jp_jira_scim_user_set_active(&site, "u-1", false, &req, err, sizeof(err)));
    expect(JP_HTTP_PATCH, SCIM_BASE "/Users/u-1", "scim.users",
           "{\"schemas\":[\"urn:ietf:params:scim:api:messages:2.0:PatchOp\"],\"Operations\":[{"
           "\"op\":\"replace\",\"path\":\"active\",\"value\":false}]}",
           true, true);
    BUILD_OK(jp_jira_scim_user_set_active(&site, "u-1", true, &req, err, sizeof(err)));
    ck_assert(strstr(req->body, "\"value\":true") != NULL);
}
END_TEST

START_TEST(scim_paging)
{
    BUILD_OK(jp_jira_scim_users_page(&site, 101, 100, &req, err, sizeof(err)));
    expect(JP_HTTP_GET, SCIM_BASE "/Users?startIndex=101&count=100", "scim.users", NULL, true,
           false);
    BUILD_OK(jp_jira_scim_groups_page(&site, 1, 1, &req, err, sizeof(err)));
    expect(JP_HTTP_GET, SCIM_BASE "/Groups?startIndex=1&count=1", "scim.groups", NULL, true, false);
    BUILD_FAIL(JP_ERR_INVALID, "count",
               jp_jira_scim_users_page(&site, 1, 101, &req, err, sizeof(err)));
    BUILD_FAIL(JP_ERR_INVALID, "count",
               jp_jira_scim_users_page(&site, 1, 0, &req, err, sizeof(err)));
    BUILD_FAIL(JP_ERR_INVALID, "startIndex",
               jp_jira_scim_groups_page(&site, 0, 10, &req, err, sizeof(err)));
    BUILD_FAIL(JP_ERR_INVALID, "startIndex",
               jp_jira_scim_groups_page(&site, -5, 10, &req, err, sizeof(err)));
    BUILD_OK(jp_jira_scim_users_filter_page(&site, "userName", "a\"b@x.com", 101, 100, &req, err,
                                            sizeof(err)));
    expect(JP_HTTP_GET,
           SCIM_BASE
           "/Users?filter=userName%20eq%20%22a%5C%22b%40x.com%22&startIndex=101&count=100",
           "scim.users", NULL, true, false);
    BUILD_OK(jp_jira_scim_users_filter_page(&site, "externalId", "E-1&x", 1, 10, &req, err,
                                            sizeof(err)));
    expect(JP_HTTP_GET,
           SCIM_BASE "/Users?filter=externalId%20eq%20%22E-1%26x%22&startIndex=1&count=10",
           "scim.users", NULL, true, false);
    BUILD_FAIL(
        JP_ERR_INVALID, "userName or externalId",
        jp_jira_scim_users_filter_page(&site, "department", "R&D", 1, 10, &req, err, sizeof(err)));
    BUILD_FAIL(
        JP_ERR_INVALID, "empty",
        jp_jira_scim_users_filter_page(&site, "userName", "", 1, 10, &req, err, sizeof(err)));
    BUILD_FAIL(
        JP_ERR_INVALID, "count",
        jp_jira_scim_users_filter_page(&site, "userName", "a", 1, 101, &req, err, sizeof(err)));
}
END_TEST

START_TEST(scim_groups)
{
    BUILD_OK(jp_jira_scim_group_find(&site, "jira-software-users", &req, err, sizeof(err)));
    expect(JP_HTTP_GET, SCIM_BASE "/Groups?filter=displayName%20eq%20%22jira-software-users%22",
           "scim.groups", NULL, true, false);
    BUILD_OK(jp_jira_scim_group_find(&site, "R&D \"core\"", &req, err, sizeof(err)));
    expect(JP_HTTP_GET,
           SCIM_BASE "/Groups?filter=displayName%20eq%20%22R%26D%20%5C%22core%5C%22%22",
           "scim.groups", NULL, true, false);
    BUILD_OK(jp_jira_scim_group_get(&site, "g-1", &req, err, sizeof(err)));
    expect(JP_HTTP_GET, SCIM_BASE "/Groups/g-1", "scim.groups", NULL, true, false);
    BUILD_OK(jp_jira_scim_group_create(&site, "R&D", &req, err, sizeof(err)));
    expect(
        JP_HTTP_POST, SCIM_BASE "/Groups", "scim.groups",
        "{\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:Group\"],\"displayName\":\"R&D\"}",
        false, true);
    BUILD_FAIL(JP_ERR_INVALID, "control",
               jp_jira_scim_group_create(&site, "a\nb", &req, err, sizeof(err)));
    BUILD_OK(jp_jira_scim_group_add_member(&site, "g-1", "u-1", &req, err, sizeof(err)));
    expect(JP_HTTP_PATCH, SCIM_BASE "/Groups/g-1", "scim.groups",
           "{\"schemas\":[\"urn:ietf:params:scim:api:messages:2.0:PatchOp\"],\"Operations\":[{"
           "\"op\":\"add\",\"path\":\"members\",\"value\":[{\"value\":\"u-1\"}]}]}",
           true, true);
    BUILD_OK(jp_jira_scim_group_remove_member(&site, "g/1", "u-1", &req, err, sizeof(err)));
    expect(JP_HTTP_PATCH, SCIM_BASE "/Groups/g%2F1", "scim.groups",
           "{\"schemas\":[\"urn:ietf:params:scim:api:messages:2.0:PatchOp\"],\"Operations\":[{"
           "\"op\":\"remove\",\"path\":\"members[value eq \\\"u-1\\\"]\"}]}",
           true, true);
    /* A quote inside the id stays inside the filter. */
    BUILD_OK(jp_jira_scim_group_remove_member(&site, "g-1", "u\"] or [x", &req, err, sizeof(err)));
    json_t *body = json_loads(req->body, 0, NULL);
    const char *path = json_string_value(
        json_object_get(json_array_get(json_object_get(body, "Operations"), 0), "path"));
    ck_assert_str_eq(path, "members[value eq \"u\\\"] or [x\"]");
    json_decref(body);
    BUILD_FAIL(JP_ERR_INVALID, "SCIM user id",
               jp_jira_scim_group_add_member(&site, "g-1", "", &req, err, sizeof(err)));
    BUILD_FAIL(JP_ERR_INVALID, "SCIM group id",
               jp_jira_scim_group_add_member(&site, NULL, "u-1", &req, err, sizeof(err)));
}
END_TEST

/* ---- admin ------------------------------------------------------------------- */

START_TEST(admin_lifecycle)
{
    BUILD_OK(jp_jira_admin_disable(&site, ACC, "Left the company", &req, err, sizeof(err)));
    expect(JP_HTTP_POST, ADMIN_BASE "/users/" ACC "/manage/lifecycle/disable", "admin.lifecycle",
           "{\"message\":\"Left the company\"}", true, true);
    ck_assert_int_eq(req->api, JP_JIRA_API_ADMIN);
    BUILD_OK(jp_jira_admin_disable(&site, ACC2, NULL, &req, err, sizeof(err)));
    expect(JP_HTTP_POST,
           ADMIN_BASE "/users/557058%3Af58131cb-b67d-43c7-b30d-6b58d40bd077/manage/"
                      "lifecycle/disable",
           "admin.lifecycle", "{}", true, true);
    BUILD_OK(jp_jira_admin_enable(&site, ACC, &req, err, sizeof(err)));
    expect(JP_HTTP_POST, ADMIN_BASE "/users/" ACC "/manage/lifecycle/enable", "admin.lifecycle",
           NULL, true, true);
    BUILD_FAIL(JP_ERR_INVALID, "account id",
               jp_jira_admin_enable(&site, "../../orgs", &req, err, sizeof(err)));
    BUILD_FAIL(JP_ERR_INVALID, "account id",
               jp_jira_admin_enable(&site, "a b", &req, err, sizeof(err)));
    char *long_id = repeat("a", 129);
    BUILD_FAIL(JP_ERR_INVALID, "account id",
               jp_jira_admin_enable(&site, long_id, &req, err, sizeof(err)));
    free(long_id);
    site.org_api_key = NULL;
    BUILD_FAIL(JP_ERR_INVALID, "org_api_key",
               jp_jira_admin_disable(&site, ACC, NULL, &req, err, sizeof(err)));
    site.admin_url = (char *)"https://api.atlassian.com/";
    site.org_api_key = (char *)"orgkey";
    BUILD_OK(jp_jira_admin_enable(&site, ACC, &req, err, sizeof(err)));
    ck_assert_str_eq(req->url, ADMIN_BASE "/users/" ACC "/manage/lifecycle/enable");
}
END_TEST

/* ---- credentials ---------------------------------------------------------------- */

START_TEST(credentials_refused)
{
    site.api_token = (char *)"tok\r\nX-Evil: 1";
    BUILD_FAIL(JP_ERR_INVALID, "api_token", jp_jira_user_get(&site, ACC, &req, err, sizeof(err)));
    ck_assert(strstr(err, "tok\r") == NULL && strstr(err, "Evil") == NULL);
    site.api_token = (char *)"";
    BUILD_FAIL(JP_ERR_INVALID, "api_token", jp_jira_user_get(&site, ACC, &req, err, sizeof(err)));
    site.api_token = (char *)"tok123";
    site.email = (char *)"bot:x@example.com";
    BUILD_FAIL(JP_ERR_INVALID, "':'", jp_jira_user_get(&site, ACC, &req, err, sizeof(err)));
    site.email = (char *)"bot@example.com\n";
    BUILD_FAIL(JP_ERR_INVALID, "email", jp_jira_user_get(&site, ACC, &req, err, sizeof(err)));
    site.email = (char *)"bot@example.com";
    site.scim_api_key = (char *)"key\nHost: evil";
    BUILD_FAIL(JP_ERR_INVALID, "scim_api_key",
               jp_jira_scim_user_get(&site, "u-1", &req, err, sizeof(err)));
    ck_assert(strstr(err, "evil") == NULL);
    site.scim_api_key = NULL;
    BUILD_FAIL(JP_ERR_INVALID, "scim_api_key",
               jp_jira_scim_user_get(&site, "u-1", &req, err, sizeof(err)));
    site.scim_api_key = (char *)"scimkey";
    site.org_api_key = (char *)"org\rkey";
    BUILD_FAIL(JP_ERR_INVALID, "org_api_key",
               jp_jira_admin_enable(&site, ACC, &req, err, sizeof(err)));
    site.jira_url = (char *)"ftp://acme";
    BUILD_FAIL(JP_ERR_INVALID, "jira_url", jp_jira_user_get(&site, ACC, &req, err, sizeof(err)));
    site.jira_url = (char *)"https://acme.atlassian.net/x?y";
    BUILD_FAIL(JP_ERR_INVALID, "jira_url", jp_jira_user_get(&site, ACC, &req, err, sizeof(err)));
    BUILD_FAIL(JP_ERR_INVALID, "site", jp_jira_user_get(NULL, ACC, &req, err, sizeof(err)));
}
END_TEST

START_TEST(http_view)
{
    BUILD_OK(jp_jira_group_add_user(&site, GID, ACC, &req, err, sizeof(err)));
    jp_http_req_t h;
    memset(&h, 0x5a, sizeof(h));
    jp_jira_req_http(req, &h);
    ck_assert_int_eq(h.method, JP_HTTP_POST);
    ck_assert_ptr_eq(h.url, req->url);
    ck_assert_ptr_eq(h.body, req->body);
    ck_assert_uint_eq(h.body_len, req->body_len);
    ck_assert_uint_eq(h.nheaders, 3);
    ck_assert_str_eq(h.headers[2], "Content-Type: application/json");
    ck_assert_int_eq(h.timeout_ms, 0);
    ck_assert_int_eq(h.insecure, 0);
    ck_assert_ptr_null(h.ca_file);
    jp_jira_req_http(NULL, &h);
    ck_assert_ptr_null(h.url);
    ck_assert_str_eq(jp_jira_api_name(JP_JIRA_API_REST), "rest");
    ck_assert_str_eq(jp_jira_api_name(JP_JIRA_API_SCIM), "scim");
    ck_assert_str_eq(jp_jira_api_name(JP_JIRA_API_ADMIN), "admin");
    ck_assert_ptr_null(jp_jira_api_name((jp_jira_api_t)42));
    jp_jira_req_destroy(NULL);
}
END_TEST

/* ---- REST: users, groups, roles ------------------------------------------------- */

START_TEST(rest_users_groups)
{
    BUILD_OK(jp_jira_user_get(&site, ACC, &req, err, sizeof(err)));
    expect(JP_HTTP_GET, REST_BASE "/user?accountId=" ACC, "rest.user", NULL, true, false);
    ck_assert_int_eq(req->api, JP_JIRA_API_REST);
    BUILD_OK(jp_jira_user_get(&site, ACC2, &req, err, sizeof(err)));
    expect(JP_HTTP_GET, REST_BASE "/user?accountId=557058%3Af58131cb-b67d-43c7-b30d-6b58d40bd077",
           "rest.user", NULL, true, false);
    BUILD_FAIL(JP_ERR_INVALID, "account id",
               jp_jira_user_get(&site, "x&accountId=y", &req, err, sizeof(err)));
    BUILD_OK(jp_jira_user_search(&site, "Zoë O'Neil & co", 0, 50, &req, err, sizeof(err)));
    expect(JP_HTTP_GET,
           REST_BASE "/user/search?query=Zo%C3%AB%20O%27Neil%20%26%20co&startAt=0&maxResults=50",
           "rest.user.search", NULL, true, false);
    BUILD_FAIL(JP_ERR_INVALID, "maxResults",
               jp_jira_user_search(&site, "x", 0, 1001, &req, err, sizeof(err)));
    BUILD_FAIL(JP_ERR_INVALID, "startAt",
               jp_jira_user_search(&site, "x", -1, 10, &req, err, sizeof(err)));
    BUILD_FAIL(JP_ERR_INVALID, "empty",
               jp_jira_user_search(&site, "", 0, 10, &req, err, sizeof(err)));

    BUILD_OK(jp_jira_group_find(&site, "jira users/admins?#&x=1", &req, err, sizeof(err)));
    expect(JP_HTTP_GET, REST_BASE "/group/bulk?groupName=jira%20users%2Fadmins%3F%23%26x%3D1",
           "rest.group.bulk", NULL, true, false);
    BUILD_OK(jp_jira_group_add_user(&site, GID, ACC, &req, err, sizeof(err)));
    expect(JP_HTTP_POST, REST_BASE "/group/user?groupId=" GID, "rest.group.user",
           "{\"accountId\":\"" ACC "\"}", true, true);
    BUILD_OK(jp_jira_group_remove_user(&site, GID, ACC2, &req, err, sizeof(err)));
    expect(JP_HTTP_DELETE,
           REST_BASE "/group/user?groupId=" GID
                     "&accountId=557058%3Af58131cb-b67d-43c7-b30d-6b58d40bd077",
           "rest.group.user", NULL, true, true);
    BUILD_FAIL(JP_ERR_INVALID, "groupId",
               jp_jira_group_add_user(&site, "", ACC, &req, err, sizeof(err)));
    BUILD_FAIL(JP_ERR_INVALID, "groupId",
               jp_jira_group_add_user(&site, "a\r\nb", ACC, &req, err, sizeof(err)));
    BUILD_OK(jp_jira_group_members_page(&site, GID, 100, 50, &req, err, sizeof(err)));
    expect(JP_HTTP_GET,
           REST_BASE "/group/member?groupId=" GID
                     "&includeInactiveUsers=true&startAt=100&maxResults=50",
           "rest.group.member", NULL, true, false);
    BUILD_FAIL(JP_ERR_INVALID, "maxResults",
               jp_jira_group_members_page(&site, GID, 0, 51, &req, err, sizeof(err)));
    BUILD_OK(jp_jira_groups_page(&site, 150, 50, &req, err, sizeof(err)));
    expect(JP_HTTP_GET, REST_BASE "/group/bulk?startAt=150&maxResults=50", "rest.group.bulk", NULL,
           true, false);
    BUILD_FAIL(JP_ERR_INVALID, "maxResults",
               jp_jira_groups_page(&site, 0, 51, &req, err, sizeof(err)));
    BUILD_FAIL(JP_ERR_INVALID, "startAt",
               jp_jira_groups_page(&site, -1, 50, &req, err, sizeof(err)));
}
END_TEST

START_TEST(rest_project_roles)
{
    BUILD_OK(jp_jira_project_roles(&site, "DEMO", &req, err, sizeof(err)));
    expect(JP_HTTP_GET, REST_BASE "/project/DEMO/role", "rest.project.role", NULL, true, false);
    BUILD_OK(jp_jira_project_role_get(&site, "DEMO", 10000, &req, err, sizeof(err)));
    expect(JP_HTTP_GET, REST_BASE "/project/DEMO/role/10000", "rest.project.role", NULL, true,
           false);
    BUILD_OK(jp_jira_project_role_add_user(&site, "AB12", 10360, ACC, &req, err, sizeof(err)));
    expect(JP_HTTP_POST, REST_BASE "/project/AB12/role/10360", "rest.project.role",
           "{\"user\":[\"" ACC "\"]}", true, true);
    BUILD_OK(jp_jira_project_role_remove_user(&site, "DEMO", 10360, ACC2, &req, err, sizeof(err)));
    expect(JP_HTTP_DELETE,
           REST_BASE "/project/DEMO/role/10360?user=557058%3Af58131cb-b67d-43c7-b30d-6b58d40bd077",
           "rest.project.role", NULL, true, true);
    static const char *const bad_keys[] = {"demo",  "D",           "DEMO/../X", "DEMO?x",
                                           "1DEMO", "ABCDEFGHIJK", "",          "DÉMO"};
    for (size_t i = 0; i < sizeof(bad_keys) / sizeof(bad_keys[0]); i++)
        BUILD_FAIL(JP_ERR_INVALID, "project key",
                   jp_jira_project_roles(&site, bad_keys[i], &req, err, sizeof(err)));
    BUILD_FAIL(JP_ERR_INVALID, "project key",
               jp_jira_project_roles(&site, NULL, &req, err, sizeof(err)));
    BUILD_FAIL(JP_ERR_INVALID, "role id",
               jp_jira_project_role_get(&site, "DEMO", 0, &req, err, sizeof(err)));
    BUILD_FAIL(JP_ERR_INVALID, "role id",
               jp_jira_project_role_add_user(&site, "DEMO", -3, ACC, &req, err, sizeof(err)));
    BUILD_FAIL(JP_ERR_INVALID, "account id",
               jp_jira_project_role_add_user(&site, "DEMO", 1, "evil/..", &req, err, sizeof(err)));
    BUILD_OK(jp_jira_projects_page(&site, 100, 100, &req, err, sizeof(err)));
    expect(JP_HTTP_GET, REST_BASE "/project/search?orderBy=key&startAt=100&maxResults=100",
           "rest.project.search", NULL, true, false);
    BUILD_FAIL(JP_ERR_INVALID, "maxResults",
               jp_jira_projects_page(&site, 0, 0, &req, err, sizeof(err)));
    BUILD_FAIL(JP_ERR_INVALID, "maxResults",
               jp_jira_projects_page(&site, 0, 101, &req, err, sizeof(err)));
}
END_TEST

/* ---- REST: issues ------------------------------------------------------------------ */

static jp_jira_issue_fields_t full_fields(void)
{
    static const char *const labels[] = {"iam", "onboarding"};
    jp_jira_issue_fields_t f;
    memset(&f, 0, sizeof(f));
    f.project = "DEMO";
    f.issue_type = "Task";
    f.summary = (jp_optstr_t){JP_VALUE, "Provision laptop"};
    f.description = (jp_optstr_t){JP_VALUE, "Line one\nLine two\n\nSecond paragraph"};
    f.priority = (jp_optstr_t){JP_VALUE, "High"};
    f.assignee_account_id = (jp_optstr_t){JP_VALUE, ACC};
    f.labels_state = JP_VALUE;
    f.labels_count = 2;
    f.labels = labels;
    f.external_ref = "HR-2024-0042";
    f.event_id = "evt-7f2c9a1e-0001";
    return f;
}

START_TEST(issue_create)
{
    jp_jira_issue_fields_t f = full_fields();
    BUILD_OK(jp_jira_issue_create(&site, &f, &req, err, sizeof(err)));
    expect(JP_HTTP_POST, REST_BASE "/issue", "rest.issue",
           "{\"fields\":{\"project\":{\"key\":\"DEMO\"},\"issuetype\":{\"name\":\"Task\"},"
           "\"summary\":\"Provision laptop\",\"description\":{\"type\":\"doc\",\"version\":1,"
           "\"content\":[{\"type\":\"paragraph\",\"content\":[{\"type\":\"text\",\"text\":\"Line "
           "one\"},{\"type\":\"hardBreak\"},{\"type\":\"text\",\"text\":\"Line two\"}]},{\"type\":"
           "\"paragraph\",\"content\":[{\"type\":\"text\",\"text\":\"Second paragraph\"}]}]},"
           "\"priority\":{\"name\":\"High\"},\"assignee\":{\"accountId\":\"" ACC "\"},"
           "\"labels\":[\"iam\",\"onboarding\",\"idhub-ref-HR-2024-0042\"]},"
           "\"properties\":[{\"key\":\"idhub\",\"value\":{\"externalRef\":\"HR-2024-0042\","
           "\"eventId\":\"evt-7f2c9a1e-0001\"}}]}",
           false, true);
    ck_assert_ptr_null(req->issue_key);

    jp_jira_issue_fields_t m;
    memset(&m, 0, sizeof(m));
    m.project = "OPS";
    m.issue_type = "Service Request";
    m.summary = (jp_optstr_t){JP_VALUE, "Zoë \"quoted\" \\ summary"};
    m.external_ref = "a:b.c_d-e";
    m.event_id = "e 1";
    BUILD_OK(jp_jira_issue_create(&site, &m, &req, err, sizeof(err)));
    expect(JP_HTTP_POST, REST_BASE "/issue", "rest.issue",
           "{\"fields\":{\"project\":{\"key\":\"OPS\"},\"issuetype\":{\"name\":\"Service "
           "Request\"},\"summary\":\"Zoë \\\"quoted\\\" \\\\ summary\",\"labels\":[\"idhub-ref-a:"
           "b.c_d-e\"]},\"properties\":[{\"key\":\"idhub\",\"value\":{\"externalRef\":\"a:b.c_d-"
           "e\",\"eventId\":\"e 1\"}}]}",
           false, true);
}
END_TEST

START_TEST(issue_create_invalid)
{
    jp_jira_issue_fields_t f = full_fields();
    static const char *const spaced[] = {"ok", "two words"};
    static const char *const reserved[] = {"IDHUB-REF-other"};
    static const char *const nbsp[] = {"a\xc2\xa0"
                                       "b"};
    static const char *const nulls[] = {NULL};
    char *long_summary = repeat("é", 256);
    char *max_summary = repeat("é", 255);

    BUILD_FAIL(JP_ERR_INVALID, "no issue fields",
               jp_jira_issue_create(&site, NULL, &req, err, sizeof(err)));
    f.summary.state = JP_ABSENT;
    BUILD_FAIL(JP_ERR_INVALID, "summary", jp_jira_issue_create(&site, &f, &req, err, sizeof(err)));
    f = full_fields();
    f.summary.value = "line\nbreak";
    BUILD_FAIL(JP_ERR_INVALID, "control", jp_jira_issue_create(&site, &f, &req, err, sizeof(err)));
    f.summary.value = long_summary;
    BUILD_FAIL(JP_ERR_INVALID, "255", jp_jira_issue_create(&site, &f, &req, err, sizeof(err)));
    f.summary.value = max_summary;
    BUILD_OK(jp_jira_issue_create(&site, &f, &req, err, sizeof(err)));
    f.summary.value = "bad \xed\xa0\x80 surrogate";
    BUILD_FAIL(JP_ERR_INVALID, "UTF-8", jp_jira_issue_create(&site, &f, &req, err, sizeof(err)));
    f = full_fields();
    f.project = "demo";
    BUILD_FAIL(JP_ERR_INVALID, "project key",
               jp_jira_issue_create(&site, &f, &req, err, sizeof(err)));
    f = full_fields();
    f.issue_type = "";
    BUILD_FAIL(JP_ERR_INVALID, "issue type",
               jp_jira_issue_create(&site, &f, &req, err, sizeof(err)));
    f = full_fields();
    f.labels = spaced;
    BUILD_FAIL(JP_ERR_INVALID, "labels[1]",
               jp_jira_issue_create(&site, &f, &req, err, sizeof(err)));
    f.labels = nbsp;
    f.labels_count = 1;
    BUILD_FAIL(JP_ERR_INVALID, "whitespace",
               jp_jira_issue_create(&site, &f, &req, err, sizeof(err)));
    f.labels = reserved;
    BUILD_FAIL(JP_ERR_INVALID, "reserved", jp_jira_issue_create(&site, &f, &req, err, sizeof(err)));
    f.labels = nulls;
    BUILD_FAIL(JP_ERR_INVALID, "labels[0]",
               jp_jira_issue_create(&site, &f, &req, err, sizeof(err)));
    f.labels = NULL;
    BUILD_FAIL(JP_ERR_INVALID, "labels", jp_jira_issue_create(&site, &f, &req, err, sizeof(err)));
    f = full_fields();
    f.external_ref = "x\") OR project = X";
    BUILD_FAIL(JP_ERR_INVALID, "externalRef",
               jp_jira_issue_create(&site, &f, &req, err, sizeof(err)));
    f.external_ref = NULL;
    BUILD_FAIL(JP_ERR_INVALID, "externalRef",
               jp_jira_issue_create(&site, &f, &req, err, sizeof(err)));
    f = full_fields();
    f.event_id = NULL;
    BUILD_FAIL(JP_ERR_INVALID, "event id", jp_jira_issue_create(&site, &f, &req, err, sizeof(err)));
    f = full_fields();
    f.assignee_account_id.value = "jdoe@example.com";
    BUILD_FAIL(JP_ERR_INVALID, "assignee", jp_jira_issue_create(&site, &f, &req, err, sizeof(err)));
    f = full_fields();
    f.description.state = JP_NULL;
    BUILD_FAIL(JP_ERR_INVALID, "description",
               jp_jira_issue_create(&site, &f, &req, err, sizeof(err)));
    f = full_fields();
    f.priority.value = "High\r\n";
    BUILD_FAIL(JP_ERR_INVALID, "priority", jp_jira_issue_create(&site, &f, &req, err, sizeof(err)));
    free(long_summary);
    free(max_summary);
}
END_TEST

START_TEST(issue_edit)
{
    jp_jira_issue_fields_t f;
    memset(&f, 0, sizeof(f));
    f.summary = (jp_optstr_t){JP_VALUE, "New summary"};
    BUILD_OK(jp_jira_issue_edit(&site, "DEMO-42", &f, &req, err, sizeof(err)));
    expect(JP_HTTP_PUT, REST_BASE "/issue/DEMO-42", "rest.issue",
           "{\"fields\":{\"summary\":\"New summary\"}}", true, true);
    ck_assert_str_eq(req->issue_key, "DEMO-42");

    memset(&f, 0, sizeof(f));
    f.assignee_account_id.state = JP_NULL;
    f.description.state = JP_NULL;
    f.priority.state = JP_NULL;
    f.labels_state = JP_NULL;
    f.external_ref = "HR-1";
    BUILD_OK(jp_jira_issue_edit(&site, "DEMO-42", &f, &req, err, sizeof(err)));
    expect(JP_HTTP_PUT, REST_BASE "/issue/DEMO-42", "rest.issue",
           "{\"fields\":{\"description\":null,\"priority\":null,\"assignee\":null,"
           "\"labels\":[\"idhub-ref-HR-1\"]}}",
           true, true);

    static const char *const labels[] = {"a", "b"};
    memset(&f, 0, sizeof(f));
    f.labels_state = JP_VALUE;
    f.labels_count = 2;
    f.labels = labels;
    BUILD_OK(jp_jira_issue_edit(&site, "AB-1", &f, &req, err, sizeof(err)));
    expect(JP_HTTP_PUT, REST_BASE "/issue/AB-1", "rest.issue",
           "{\"fields\":{\"labels\":[\"a\",\"b\"]}}", true, true);
    f.labels_state = JP_NULL;
    BUILD_OK(jp_jira_issue_edit(&site, "AB-1", &f, &req, err, sizeof(err)));
    ck_assert_str_eq(req->body, "{\"fields\":{\"labels\":[]}}");

    memset(&f, 0, sizeof(f));
    f.description = (jp_optstr_t){JP_VALUE, "x"};
    f.priority = (jp_optstr_t){JP_VALUE, "Low"};
    f.assignee_account_id = (jp_optstr_t){JP_VALUE, ACC};
    BUILD_OK(jp_jira_issue_edit(&site, "AB-1", &f, &req, err, sizeof(err)));
    ck_assert_str_eq(req->body,
                     "{\"fields\":{\"description\":{\"type\":\"doc\",\"version\":1,\"content\":[{"
                     "\"type\":\"paragraph\",\"content\":[{\"type\":\"text\",\"text\":\"x\"}]}]},"
                     "\"priority\":{\"name\":\"Low\"},\"assignee\":{\"accountId\":\"" ACC "\"}}}");

    memset(&f, 0, sizeof(f));
    BUILD_FAIL(JP_ERR_INVALID, "nothing to change",
               jp_jira_issue_edit(&site, "AB-1", &f, &req, err, sizeof(err)));
    f.summary.state = JP_NULL;
    BUILD_FAIL(JP_ERR_INVALID, "summary cannot be cleared",
               jp_jira_issue_edit(&site, "AB-1", &f, &req, err, sizeof(err)));
    f.summary = (jp_optstr_t){JP_VALUE, "x"};
    f.external_ref = "bad ref";
    BUILD_FAIL(JP_ERR_INVALID, "externalRef",
               jp_jira_issue_edit(&site, "AB-1", &f, &req, err, sizeof(err)));
    BUILD_FAIL(JP_ERR_INVALID, "no issue fields",
               jp_jira_issue_edit(&site, "AB-1", NULL, &req, err, sizeof(err)));
}
END_TEST

static const char *const bad_issue_keys[] = {
    "DEMO-0",      "demo-1",
    "DEMO-1/../x", "DEMO-1?x=1",
    "DEMO-1#f",    "",
    "D-1",         "ABCDEFGHIJK-1",
    "DEMO-01",     "DEMO-1 ",
    "DEMO",        "-1",
    "DEMO-1\r\n",  "DEMO-12345678901234567890",
    "ДЕМО-1",
};

START_TEST(issue_bad_keys)
{
    const char *k = bad_issue_keys[_i];
    jp_jira_issue_fields_t f;
    memset(&f, 0, sizeof(f));
    f.summary = (jp_optstr_t){JP_VALUE, "x"};
    BUILD_FAIL(JP_ERR_INVALID, "issue key", jp_jira_issue_get(&site, k, &req, err, sizeof(err)));
    ck_assert(strstr(err, "\r") == NULL && strstr(err, "\n") == NULL);
    BUILD_FAIL(JP_ERR_INVALID, "issue key",
               jp_jira_issue_edit(&site, k, &f, &req, err, sizeof(err)));
    BUILD_FAIL(JP_ERR_INVALID, "issue key",
               jp_jira_issue_delete(&site, k, false, &req, err, sizeof(err)));
    BUILD_FAIL(JP_ERR_INVALID, "issue key",
               jp_jira_issue_transitions(&site, k, &req, err, sizeof(err)));
    BUILD_FAIL(JP_ERR_INVALID, "issue key",
               jp_jira_issue_transition(&site, k, "21", &req, err, sizeof(err)));
}
END_TEST

START_TEST(issue_get_delete_transitions)
{
    BUILD_OK(jp_jira_issue_get(&site, "DEMO-42", &req, err, sizeof(err)));
    expect(JP_HTTP_GET,
           REST_BASE "/issue/DEMO-42?fields=summary%2Cstatus%2Clabels%2Cassignee%2Cpriority"
                     "&properties=idhub",
           "rest.issue", NULL, true, false);
    ck_assert_str_eq(req->issue_key, "DEMO-42");
    BUILD_OK(jp_jira_issue_delete(&site, "DEMO-42", true, &req, err, sizeof(err)));
    expect(JP_HTTP_DELETE, REST_BASE "/issue/DEMO-42?deleteSubtasks=true", "rest.issue", NULL, true,
           true);
    ck_assert_str_eq(req->issue_key, "DEMO-42");
    BUILD_OK(jp_jira_issue_delete(&site, "A1-999", false, &req, err, sizeof(err)));
    expect(JP_HTTP_DELETE, REST_BASE "/issue/A1-999?deleteSubtasks=false", "rest.issue", NULL, true,
           true);
    BUILD_OK(jp_jira_issue_transitions(&site, "DEMO-42", &req, err, sizeof(err)));
    expect(JP_HTTP_GET, REST_BASE "/issue/DEMO-42/transitions", "rest.issue.transitions", NULL,
           true, false);
    BUILD_OK(jp_jira_issue_transition(&site, "DEMO-42", "21", &req, err, sizeof(err)));
    expect(JP_HTTP_POST, REST_BASE "/issue/DEMO-42/transitions", "rest.issue.transitions",
           "{\"transition\":{\"id\":\"21\"}}", false, true);
    ck_assert_str_eq(req->issue_key, "DEMO-42");
    BUILD_FAIL(JP_ERR_INVALID, "transition id",
               jp_jira_issue_transition(&site, "DEMO-42", "21\"}", &req, err, sizeof(err)));
    BUILD_FAIL(JP_ERR_INVALID, "transition id",
               jp_jira_issue_transition(&site, "DEMO-42", "", &req, err, sizeof(err)));
    BUILD_FAIL(JP_ERR_INVALID, "transition id",
               jp_jira_issue_transition(&site, "DEMO-42", NULL, &req, err, sizeof(err)));
}
END_TEST

START_TEST(issue_find_by_ref)
{
    BUILD_OK(jp_jira_issue_find_by_ref(&site, "DEMO", "HR-2024-0042", JP_JIRA_FIND_BY_LABEL, &req,
                                       err, sizeof(err)));
    expect(JP_HTTP_POST, REST_BASE "/search/jql", "rest.search",
           "{\"jql\":\"project = \\\"DEMO\\\" AND labels = \\\"idhub-ref-HR-2024-0042\\\" ORDER "
           "BY created ASC\",\"fields\":[\"summary\",\"status\",\"labels\",\"assignee\","
           "\"priority\"],\"properties\":[\"idhub\"],\"maxResults\":100}",
           true, false);
    ck_assert_ptr_null(req->issue_key);
    BUILD_OK(jp_jira_issue_find_by_ref(&site, NULL, "a:b.c", JP_JIRA_FIND_BY_PROPERTY, &req, err,
                                       sizeof(err)));
    json_t *body = json_loads(req->body, 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(body, "jql")),
                     "issue.property[idhub].externalRef = \"a:b.c\" ORDER BY created ASC");
    json_decref(body);
    BUILD_FAIL(JP_ERR_INVALID, "externalRef",
               jp_jira_issue_find_by_ref(&site, NULL, "x\" OR project = X", JP_JIRA_FIND_BY_LABEL,
                                         &req, err, sizeof(err)));
    BUILD_FAIL(
        JP_ERR_INVALID, "externalRef",
        jp_jira_issue_find_by_ref(&site, NULL, "", JP_JIRA_FIND_BY_LABEL, &req, err, sizeof(err)));
    BUILD_FAIL(JP_ERR_INVALID, "project key",
               jp_jira_issue_find_by_ref(&site, "DEMO\" OR x", "R1", JP_JIRA_FIND_BY_LABEL, &req,
                                         err, sizeof(err)));
    BUILD_FAIL(
        JP_ERR_INVALID, "find mode",
        jp_jira_issue_find_by_ref(&site, NULL, "R1", (jp_jira_find_t)7, &req, err, sizeof(err)));
    char *longest = repeat("r", 128);
    BUILD_OK(jp_jira_issue_find_by_ref(&site, "ABCDEFGHIJ", longest, JP_JIRA_FIND_BY_LABEL, &req,
                                       err, sizeof(err)));
    ck_assert(strstr(req->body, longest) != NULL);
    free(longest);
}
END_TEST

START_TEST(issue_search_generic)
{
    static const char *const fields[] = {"summary", "customfield_10010"};
    BUILD_OK(jp_jira_search(&site, "project = \"DEMO\" ORDER BY key", fields, 2, "CAEaAggD", 25,
                            &req, err, sizeof(err)));
    expect(JP_HTTP_POST, REST_BASE "/search/jql", "rest.search",
           "{\"jql\":\"project = \\\"DEMO\\\" ORDER BY key\",\"fields\":[\"summary\","
           "\"customfield_10010\"],\"properties\":[\"idhub\"],\"maxResults\":25,"
           "\"nextPageToken\":\"CAEaAggD\"}",
           true, false);
    BUILD_FAIL(
        JP_ERR_INVALID, "JQL",
        jp_jira_search(&site, "project = X\nOR 1", NULL, 0, NULL, 10, &req, err, sizeof(err)));
    BUILD_FAIL(JP_ERR_INVALID, "maxResults",
               jp_jira_search(&site, "project = X", NULL, 0, NULL, 0, &req, err, sizeof(err)));
    BUILD_FAIL(JP_ERR_INVALID, "nextPageToken",
               jp_jira_search(&site, "project = X", NULL, 0, "", 10, &req, err, sizeof(err)));
    BUILD_FAIL(JP_ERR_INVALID, "fields",
               jp_jira_search(&site, "project = X", NULL, 3, NULL, 10, &req, err, sizeof(err)));
    static const char *const bad_fields[] = {"summary,\"x"};
    BUILD_OK(jp_jira_search(&site, "project = X", bad_fields, 1, NULL, 10, &req, err,
                            sizeof(err))); /* travels as a JSON string, harmless */
    static const char *const spaced[] = {"a b"};
    BUILD_FAIL(JP_ERR_INVALID, "field name",
               jp_jira_search(&site, "project = X", spaced, 1, NULL, 10, &req, err, sizeof(err)));
}
END_TEST

/* ---- JQL quoting ------------------------------------------------------------------- */

/* Reads one JQL string literal from the start of s (as Jira's lexer does:
 * backslash escapes the next character) and returns the bytes consumed, or
 * 0 if it does not close. */
static size_t jql_literal_len(const char *s)
{
    if (*s != '"')
        return 0;
    for (size_t i = 1; s[i]; i++) {
        if (s[i] == '\\' && s[i + 1])
            i++;
        else if (s[i] == '"')
            return i + 1;
    }
    return 0;
}

static const struct {
    const char *in;
    const char *out; /* NULL: refused */
    jp_err_t err;
} jql_table[] = {
    {"abc", "\"abc\"", JP_OK},
    {"", "\"\"", JP_OK},
    {"a\"b", "\"a\\\"b\"", JP_OK},
    {"a\\b", "\"a\\\\b\"", JP_OK},
    {"\\", "\"\\\\\"", JP_OK},
    {"\\\"", "\"\\\\\\\"\"", JP_OK},
    {") OR project = X", "\") OR project = X\"", JP_OK},
    {"\" OR project = X OR labels = \"", "\"\\\" OR project = X OR labels = \\\"\"", JP_OK},
    {"x' OR '1'='1", "\"x' OR '1'='1\"", JP_OK},
    {"Zoë 東京 🚀", "\"Zoë 東京 🚀\"", JP_OK},
    {"a\rb", NULL, JP_ERR_INVALID},
    {"a\nb", NULL, JP_ERR_INVALID},
    {"a\tb", NULL, JP_ERR_INVALID},
    {"a\x7f", NULL, JP_ERR_INVALID},
    {"a\xc2\x85", NULL, JP_ERR_INVALID}, /* U+0085, a C1 control */
    {"a\xff", NULL, JP_ERR_INVALID},
    {"\xe2\x82", NULL, JP_ERR_INVALID},         /* truncated sequence */
    {"\xf4\x90\x80\x80", NULL, JP_ERR_INVALID}, /* above U+10FFFF */
};

START_TEST(jql_quote_table)
{
    char out[256];
    err[0] = '\0';
    jp_err_t rc = jp_jira_jql_quote(jql_table[_i].in, out, sizeof(out), err, sizeof(err));
    ck_assert_msg(rc == jql_table[_i].err, "row %d: got %d (%s)", _i, (int)rc, err);
    if (jql_table[_i].out) {
        ck_assert_str_eq(out, jql_table[_i].out);
        /* The literal closes exactly at the end: nothing leaks out of it. */
        ck_assert_uint_eq(jql_literal_len(out), strlen(out));
    } else {
        ck_assert_str_eq(out, "");
        ck_assert(strlen(err) > 0);
    }
}
END_TEST

START_TEST(jql_quote_limits)
{
    char small[8];
    ck_assert_int_eq(jp_jira_jql_quote(NULL, small, sizeof(small), err, sizeof(err)),
                     JP_ERR_INVALID);
    ck_assert_int_eq(jp_jira_jql_quote("abcdef", small, sizeof(small), err, sizeof(err)),
                     JP_ERR_TOO_LARGE);
    ck_assert_str_eq(small, "");
    ck_assert_int_eq(jp_jira_jql_quote("abcde", small, sizeof(small), err, sizeof(err)), JP_OK);
    ck_assert_str_eq(small, "\"abcde\"");
    ck_assert_int_eq(jp_jira_jql_quote("a\"b\"c", small, sizeof(small), err, sizeof(err)),
                     JP_ERR_TOO_LARGE);
    char *max = repeat("\"", JP_JIRA_JQL_VALUE_MAX);
    char *over = repeat("a", JP_JIRA_JQL_VALUE_MAX + 1);
    char big[2 * JP_JIRA_JQL_VALUE_MAX + 3];
    ck_assert_int_eq(jp_jira_jql_quote(max, big, sizeof(big), err, sizeof(err)), JP_OK);
    ck_assert_uint_eq(strlen(big), 2 * JP_JIRA_JQL_VALUE_MAX + 2);
    ck_assert_uint_eq(jql_literal_len(big), strlen(big));
    ck_assert_int_eq(jp_jira_jql_quote(over, big, sizeof(big), err, sizeof(err)), JP_ERR_TOO_LARGE);
    ck_assert(strstr(err, "1024") != NULL);
    ck_assert_int_eq(jp_jira_jql_quote("x", NULL, 0, err, sizeof(err)), JP_ERR_TOO_LARGE);
    free(max);
    free(over);
}
END_TEST

/* ---- SCIM parsers ------------------------------------------------------------------ */

START_TEST(parse_scim_user_fixtures)
{
    size_t n;
    char *body = read_fixture("scim_user.json", &n);
    jp_jira_scim_user_t *u = NULL;
    ck_assert_int_eq(jp_jira_parse_scim_user(200, body, n, &u, err, sizeof(err)), JP_OK);
    ck_assert_str_eq(u->id, "ef5f7c4e-6a47-4c7e-9d0c-2f1a1b9e7d21");
    ck_assert_str_eq(u->user_name, "jdoe@example.com");
    ck_assert_str_eq(u->external_id, "00u1a2b3c4D5e6F7g8h9");
    ck_assert_str_eq(u->account_id, ACC);
    ck_assert_str_eq(u->primary_email, "jdoe@example.com");
    ck_assert(u->active_present && u->active);
    ck_assert_str_eq(json_string_value(json_object_get(u->json, "department")), "R&D");
    jp_jira_scim_user_destroy(u);
    free(body);

    body = read_fixture("scim_user_ext11.json", &n);
    ck_assert_int_eq(jp_jira_parse_scim_user(201, body, n, &u, err, sizeof(err)), JP_OK);
    ck_assert_str_eq(u->account_id, ACC2);
    ck_assert_ptr_null(u->external_id);
    ck_assert_str_eq(u->primary_email, "mia@example.com"); /* no primary: the first */
    ck_assert(u->active_present && !u->active);
    jp_jira_scim_user_destroy(u);
    free(body);

    const char *minimal = "{\"id\":\"x\",\"userName\":\"y\"}";
    ck_assert_int_eq(jp_jira_parse_scim_user(200, minimal, strlen(minimal), &u, err, sizeof(err)),
                     JP_OK);
    ck_assert(!u->active_present);
    ck_assert_ptr_null(u->account_id);
    ck_assert_ptr_null(u->primary_email);
    jp_jira_scim_user_destroy(u);
    jp_jira_scim_user_destroy(NULL);
}
END_TEST

START_TEST(parse_scim_list_fixtures)
{
    size_t n;
    char *body = read_fixture("scim_users_list.json", &n);
    jp_jira_scim_list_t *l = NULL;
    ck_assert_int_eq(jp_jira_parse_scim_list(200, body, n, &l, err, sizeof(err)), JP_OK);
    ck_assert_int_eq(l->total_results, 250);
    ck_assert_int_eq(l->start_index, 101);
    ck_assert_int_eq(l->items_per_page, 2);
    ck_assert_uint_eq(l->count, 2);
    jp_jira_scim_user_t *u = NULL;
    ck_assert_int_eq(
        jp_jira_scim_user_from_json(json_array_get(l->resources, 1), &u, err, sizeof(err)), JP_OK);
    ck_assert_str_eq(u->user_name, "user102@example.com");
    ck_assert(!u->active);
    ck_assert_ptr_null(u->account_id);
    jp_jira_scim_list_destroy(l); /* u keeps its own reference */
    ck_assert_str_eq(json_string_value(json_object_get(u->json, "id")),
                     "a1000000-0000-4000-8000-000000000102");
    jp_jira_scim_user_destroy(u);
    free(body);

    body = read_fixture("scim_users_empty.json", &n);
    ck_assert_int_eq(jp_jira_parse_scim_list(200, body, n, &l, err, sizeof(err)), JP_OK);
    ck_assert_uint_eq(l->count, 0);
    ck_assert_int_eq(l->total_results, 0);
    ck_assert(json_is_array(l->resources));
    jp_jira_scim_list_destroy(l);
    free(body);

    body = read_fixture("scim_groups_list.json", &n);
    ck_assert_int_eq(jp_jira_parse_scim_list(200, body, n, &l, err, sizeof(err)), JP_OK);
    jp_jira_scim_group_t *g = NULL;
    ck_assert_int_eq(
        jp_jira_scim_group_from_json(json_array_get(l->resources, 0), &g, err, sizeof(err)), JP_OK);
    ck_assert_str_eq(g->display_name, "confluence-users");
    ck_assert_uint_eq(g->member_count, 0);
    jp_jira_scim_group_destroy(g);
    jp_jira_scim_list_destroy(l);
    free(body);

    const char *bad = "{\"totalResults\":1,\"Resources\":{\"id\":\"x\"}}";
    ck_assert_int_eq(jp_jira_parse_scim_list(200, bad, strlen(bad), &l, err, sizeof(err)),
                     JP_ERR_INVALID);
    ck_assert_ptr_null(l);
    ck_assert(strstr(err, "Resources") != NULL);
    bad = "{\"totalResults\":-1,\"Resources\":[]}";
    ck_assert_int_eq(jp_jira_parse_scim_list(200, bad, strlen(bad), &l, err, sizeof(err)),
                     JP_ERR_INVALID);
    ck_assert(strstr(err, "totalResults") != NULL);
    bad = "{\"totalResults\":\"250\"}";
    ck_assert_int_eq(jp_jira_parse_scim_list(200, bad, strlen(bad), &l, err, sizeof(err)),
                     JP_ERR_INVALID);
}
END_TEST

START_TEST(parse_scim_group_fixture)
{
    size_t n;
    char *body = read_fixture("scim_group.json", &n);
    jp_jira_scim_group_t *g = NULL;
    ck_assert_int_eq(jp_jira_parse_scim_group(200, body, n, &g, err, sizeof(err)), JP_OK);
    ck_assert_str_eq(g->id, "8c1d5d4e-3b1f-4a8e-9a55-0d2e6f0b7a11");
    ck_assert_str_eq(g->display_name, "jira-software-users");
    ck_assert_uint_eq(g->member_count, 2);
    ck_assert_str_eq(g->members[1], "2b9d1f0a-77c3-4e0b-a1d2-5e6f7a8b9c0d");
    ck_assert(jp_jira_scim_group_has_member(g, "ef5f7c4e-6a47-4c7e-9d0c-2f1a1b9e7d21"));
    ck_assert(!jp_jira_scim_group_has_member(g, "nobody"));
    ck_assert(!jp_jira_scim_group_has_member(g, NULL));
    jp_jira_scim_group_destroy(g);
    free(body);
    const char *bad = "{\"id\":\"g\",\"displayName\":\"x\",\"members\":[{\"value\":\"a\"},{}]}";
    ck_assert_int_eq(jp_jira_parse_scim_group(200, bad, strlen(bad), &g, err, sizeof(err)),
                     JP_ERR_INVALID);
    ck_assert(strstr(err, "members[1].value") != NULL);
    ck_assert(!jp_jira_scim_group_has_member(NULL, "a"));
}
END_TEST

/* ---- error bodies -------------------------------------------------------------------- */

static void expect_message(jp_jira_api_t api, long status, const char *fixture, const char *want)
{
    size_t n = 0;
    char *body = fixture ? read_fixture(fixture, &n) : NULL;
    char msg[1024];
    size_t len = jp_jira_error_message(api, status, body, n, msg, sizeof(msg));
    ck_assert_str_eq(msg, want);
    ck_assert_uint_eq(len, strlen(want));
    free(body);
}

START_TEST(error_forms)
{
    expect_message(JP_JIRA_API_SCIM, 409, "scim_error_409.json",
                   "HTTP 409 (uniqueness): A user with userName jdoe@example.com already exists "
                   "in this directory.");
    expect_message(JP_JIRA_API_SCIM, 400, "scim_error_400_filter.json",
                   "HTTP 400 (invalidFilter): Only 'eq' filters on userName or externalId are "
                   "supported.");
    expect_message(JP_JIRA_API_SCIM, 404, "scim_error_404.json",
                   "HTTP 404: Resource User 'ef5f7c4e-6a47-4c7e-9d0c-2f1a1b9e7d21' not found.");
    expect_message(JP_JIRA_API_SCIM, 401, "gateway_401.json",
                   "HTTP 401: Unauthorized; scope does not match [traceId 7f3b2c1d9e8a4b6c]");
    expect_message(JP_JIRA_API_ADMIN, 401, "admin_unauthorized.json", "HTTP 401 (unauthorized)");
    expect_message(JP_JIRA_API_ADMIN, 403, "admin_forbidden_action.json",
                   "HTTP 403 (forbidden.action): reason: externalDirectory.scim");
    expect_message(JP_JIRA_API_ADMIN, 409, "admin_lifecycle_409.json",
                   "HTTP 409 (conflict.lifecycleErrors): This account isn't eligible for "
                   "deactivation; ACCOUNT_IS_ORG_ADMIN: The account is an organization admin.");
    expect_message(JP_JIRA_API_ADMIN, 409, "admin_lifecycle_list_409.json",
                   "HTTP 409 (ACCOUNT_IS_SOLE_ADMIN): The user is the only admin of a site.");
    expect_message(JP_JIRA_API_ADMIN, 404, "org_errors_404.json",
                   "HTTP 404 (ADMIN-404-8): The user 5b10ac8d82e05b22cc7d4ef5 is not in the "
                   "organization directory.");
    expect_message(JP_JIRA_API_ADMIN, 429, "code_429.json", "HTTP 429 (429): Too Many Requests");
    expect_message(JP_JIRA_API_SCIM, 429, "code_429.json", "HTTP 429 (429): Too Many Requests");
    expect_message(JP_JIRA_API_REST, 400, "jira_error_400.json",
                   "HTTP 400: Field 'priority' is required; summary: You must specify a summary "
                   "of the issue.; labels: Labels cannot contain spaces.");
    expect_message(JP_JIRA_API_REST, 404, "jira_error_404.json",
                   "HTTP 404: Issue does not exist or you do not have permission to see it.");
    /* Forms are recognised whatever family the caller names. */
    expect_message(JP_JIRA_API_REST, 409, "scim_error_409.json",
                   "HTTP 409 (uniqueness): A user with userName jdoe@example.com already exists "
                   "in this directory.");
    expect_message(JP_JIRA_API_SCIM, 400, "jira_error_400.json",
                   "HTTP 400: Field 'priority' is required; summary: You must specify a summary "
                   "of the issue.; labels: Labels cannot contain spaces.");
    expect_message(JP_JIRA_API_REST, 401, "gateway_401.json",
                   "HTTP 401: Unauthorized; scope does not match [traceId 7f3b2c1d9e8a4b6c]");
    expect_message(JP_JIRA_API_REST, 503, NULL, "HTTP 503 with an empty body");

    char msg[256];
    const char *html = "\r\n<html><body>502 Bad Gateway</body></html>\n";
    jp_jira_error_message(JP_JIRA_API_REST, 502, html, strlen(html), msg, sizeof(msg));
    ck_assert_str_eq(msg, "HTTP 502: <html><body>502 Bad Gateway</body></html>");
    const char *other = "{\"unexpected\":true}";
    jp_jira_error_message(JP_JIRA_API_REST, 500, other, strlen(other), msg, sizeof(msg));
    ck_assert_str_eq(msg, "HTTP 500 with an unrecognised body");
    const char *plain = "Client must be authenticated to access this resource.";
    jp_jira_error_message(JP_JIRA_API_REST, 401, plain, strlen(plain), msg, sizeof(msg));
    ck_assert_str_eq(msg, "HTTP 401: Client must be authenticated to access this resource.");
    const char *empty_coll = "{\"errorMessages\":[],\"errors\":{}}";
    jp_jira_error_message(JP_JIRA_API_REST, 400, empty_coll, strlen(empty_coll), msg, sizeof(msg));
    ck_assert_str_eq(msg, "HTTP 400");

    jp_jira_error_t e;
    size_t n;
    char *body = read_fixture("gateway_401.json", &n);
    jp_jira_parse_error(JP_JIRA_API_SCIM, 401, body, n, &e);
    ck_assert_int_eq(e.form, JP_JIRA_EFORM_GATEWAY);
    ck_assert_int_eq(e.status, 401);
    ck_assert_str_eq(e.trace_id, "7f3b2c1d9e8a4b6c");
    free(body);
    body = read_fixture("scim_error_409.json", &n);
    jp_jira_parse_error(JP_JIRA_API_SCIM, 409, body, n, &e);
    ck_assert_int_eq(e.form, JP_JIRA_EFORM_SCIM);
    ck_assert_str_eq(e.code, "uniqueness");
    free(body);
    body = read_fixture("jira_error_400.json", &n);
    jp_jira_parse_error(JP_JIRA_API_REST, 400, body, n, &e);
    ck_assert_int_eq(e.form, JP_JIRA_EFORM_JIRA);
    free(body);
    jp_jira_parse_error(JP_JIRA_API_REST, 502, html, strlen(html), &e);
    ck_assert_int_eq(e.form, JP_JIRA_EFORM_TEXT);
    jp_jira_parse_error(JP_JIRA_API_REST, 502, "  \r\n ", 5, &e);
    ck_assert_int_eq(e.form, JP_JIRA_EFORM_NONE);
}
END_TEST

START_TEST(error_message_caps)
{
    /* A huge message is capped, control characters are flattened, bad
     * UTF-8 is replaced, and truncation never splits a character. */
    char *big = repeat("é", 5000);
    size_t blen = strlen(big) + 64;
    char *body = malloc(blen);
    snprintf(body, blen, "{\"errorMessages\":[\"%s\"]}", big);
    jp_jira_error_t e;
    jp_jira_parse_error(JP_JIRA_API_REST, 400, body, strlen(body), &e);
    ck_assert_uint_lt(strlen(e.message), JP_JIRA_ERRMSG_MAX);
    ck_assert_uint_eq(strlen(e.message) % 2, 0); /* whole 2-byte characters */
    char msg[64];
    for (size_t size = 1; size < sizeof(msg); size++) {
        size_t len = jp_jira_error_message(JP_JIRA_API_REST, 400, body, strlen(body), msg, size);
        ck_assert_uint_lt(len, size);
        ck_assert_uint_eq(strlen(msg), len);
        /* Valid UTF-8: every byte >= 0x80 belongs to a complete "é". */
        for (size_t i = 0; i < len; i++)
            if ((unsigned char)msg[i] == 0xC3)
                ck_assert_int_eq((unsigned char)msg[++i], 0xA9);
    }
    ck_assert_uint_eq(jp_jira_error_message(JP_JIRA_API_REST, 400, body, strlen(body), msg, 0), 0);
    free(body);
    free(big);

    const char *ctl2 = "{\"errorMessages\":[\"line1\\nline2\\u001b[31m\"]}";
    jp_jira_parse_error(JP_JIRA_API_REST, 400, ctl2, strlen(ctl2), &e);
    ck_assert_str_eq(e.message, "line1 line2 [31m");
    const char bin[] = "\xff\xfe\x01\x02garbage\x00more";
    jp_jira_parse_error(JP_JIRA_API_REST, 500, bin, sizeof(bin) - 1, &e);
    ck_assert_int_eq(e.form, JP_JIRA_EFORM_TEXT);
    ck_assert_str_eq(e.message, "??  garbage more");
}
END_TEST

START_TEST(status_mapping)
{
    size_t n;
    char *body = read_fixture("scim_error_409.json", &n);
    jp_jira_scim_user_t *u = (jp_jira_scim_user_t *)0x1;
    ck_assert_int_eq(jp_jira_parse_scim_user(409, body, n, &u, err, sizeof(err)), JP_ERR_CONFLICT);
    ck_assert_ptr_null(u);
    ck_assert(strstr(err, "uniqueness") != NULL);
    free(body);
    body = read_fixture("jira_error_404.json", &n);
    jp_jira_issue_t *is = (jp_jira_issue_t *)0x1;
    ck_assert_int_eq(jp_jira_parse_issue(404, body, n, &is, err, sizeof(err)), JP_ERR_NOT_FOUND);
    ck_assert_ptr_null(is);
    ck_assert_str_eq(err,
                     "HTTP 404: Issue does not exist or you do not have permission to see it.");
    free(body);
    ck_assert_int_eq(jp_jira_check_status(JP_JIRA_API_ADMIN, 204, NULL, 0, err, sizeof(err)),
                     JP_OK);
    ck_assert_int_eq(jp_jira_check_status(JP_JIRA_API_REST, 200, "", 0, err, sizeof(err)), JP_OK);
    ck_assert_int_eq(jp_jira_check_status(JP_JIRA_API_REST, 500, NULL, 0, err, sizeof(err)),
                     JP_ERR_HTTP);
    ck_assert_str_eq(err, "HTTP 500 with an empty body");
    ck_assert_int_eq(jp_jira_check_status(JP_JIRA_API_REST, 0, NULL, 0, NULL, 0), JP_ERR_HTTP);
    ck_assert_int_eq(jp_jira_check_status(JP_JIRA_API_REST, 302, NULL, 0, err, sizeof(err)),
                     JP_ERR_HTTP);
}
END_TEST

/* ---- REST parsers --------------------------------------------------------------------- */

START_TEST(parse_issue_fixtures)
{
    size_t n;
    char *body = read_fixture("issue_created.json", &n);
    jp_jira_issue_t *is = NULL;
    ck_assert_int_eq(jp_jira_parse_issue_created(201, body, n, &is, err, sizeof(err)), JP_OK);
    ck_assert_str_eq(is->id, "10042");
    ck_assert_str_eq(is->key, "DEMO-42");
    ck_assert_ptr_null(is->status);
    ck_assert_uint_eq(is->label_count, 0);
    ck_assert_ptr_null(jp_jira_issue_external_ref(is));
    jp_jira_issue_destroy(is);
    free(body);

    body = read_fixture("issue_get.json", &n);
    ck_assert_int_eq(jp_jira_parse_issue(200, body, n, &is, err, sizeof(err)), JP_OK);
    ck_assert_str_eq(is->key, "DEMO-42");
    ck_assert_str_eq(is->summary, "Provision laptop for Jane Doe");
    ck_assert_str_eq(is->status, "In Progress");
    ck_assert_str_eq(is->assignee, ACC);
    ck_assert_str_eq(is->priority, "High");
    ck_assert_uint_eq(is->label_count, 3);
    ck_assert_str_eq(is->labels[2], "idhub-ref-HR-2024-0042");
    ck_assert_str_eq(is->prop_external_ref, "HR-2024-0042");
    ck_assert_str_eq(is->prop_event_id, "evt-7f2c9a1e-0001");
    ck_assert_str_eq(jp_jira_issue_external_ref(is), "HR-2024-0042");
    /* Without the property, the one ref label answers. */
    free(is->prop_external_ref);
    is->prop_external_ref = NULL;
    ck_assert_str_eq(jp_jira_issue_external_ref(is), "HR-2024-0042");
    jp_jira_issue_destroy(is);
    free(body);

    const char *two = "{\"key\":\"A1-1\",\"fields\":{\"labels\":[\"idhub-ref-x\",\"idhub-ref-y\"],"
                      "\"assignee\":null,\"status\":null},\"properties\":{\"idhub\":\"junk\"}}";
    ck_assert_int_eq(jp_jira_parse_issue(200, two, strlen(two), &is, err, sizeof(err)), JP_OK);
    ck_assert_ptr_null(is->assignee);
    ck_assert_ptr_null(is->status);
    ck_assert_ptr_null(is->prop_external_ref);          /* malformed property: ignored */
    ck_assert_ptr_null(jp_jira_issue_external_ref(is)); /* two refs: ambiguous */
    jp_jira_issue_destroy(is);

    const char *nokey = "{\"id\":\"10042\"}";
    ck_assert_int_eq(jp_jira_parse_issue_created(201, nokey, strlen(nokey), &is, err, sizeof(err)),
                     JP_ERR_INVALID);
    ck_assert(strstr(err, "key") != NULL);
    const char *noid = "{\"key\":\"A1-1\"}";
    ck_assert_int_eq(jp_jira_parse_issue_created(201, noid, strlen(noid), &is, err, sizeof(err)),
                     JP_ERR_INVALID);
    ck_assert_int_eq(jp_jira_parse_issue(200, noid, strlen(noid), &is, err, sizeof(err)), JP_OK);
    jp_jira_issue_destroy(is);
    const char *badlabels = "{\"key\":\"A1-1\",\"fields\":{\"labels\":[\"a\",7]}}";
    ck_assert_int_eq(jp_jira_parse_issue(200, badlabels, strlen(badlabels), &is, err, sizeof(err)),
                     JP_ERR_INVALID);
    ck_assert_str_eq(err, "response: fields.labels[1]: expected a string, got a number");
    jp_jira_issue_destroy(NULL);
}
END_TEST

START_TEST(parse_transitions_fixture)
{
    size_t n;
    char *body = read_fixture("transitions.json", &n);
    jp_jira_transitions_t *t = NULL;
    ck_assert_int_eq(jp_jira_parse_transitions(200, body, n, &t, err, sizeof(err)), JP_OK);
    ck_assert_uint_eq(t->count, 4);
    ck_assert_str_eq(t->items[1].name, "Start work");
    ck_assert_str_eq(t->items[1].to_status, "In Progress");
    ck_assert(!t->items[2].available);
    const jp_jira_transition_t *tr = jp_jira_transition_for_status(t, "in progress");
    ck_assert_ptr_nonnull(tr);
    ck_assert_str_eq(tr->id, "21");
    tr = jp_jira_transition_for_status(t, "DONE"); /* 31 is unavailable */
    ck_assert_ptr_nonnull(tr);
    ck_assert_str_eq(tr->id, "41");
    ck_assert_ptr_null(jp_jira_transition_for_status(t, "In Review"));
    ck_assert_ptr_null(jp_jira_transition_for_status(t, NULL));
    ck_assert_ptr_null(jp_jira_transition_for_status(NULL, "Done"));
    jp_jira_transitions_destroy(t);
    free(body);
    const char *bad = "{\"transitions\":[{\"id\":\"1\"},{\"id\":2}]}";
    ck_assert_int_eq(jp_jira_parse_transitions(200, bad, strlen(bad), &t, err, sizeof(err)),
                     JP_ERR_INVALID);
    ck_assert(strstr(err, "transitions[1].id") != NULL);
    const char *none = "{\"expand\":\"transitions\"}";
    ck_assert_int_eq(jp_jira_parse_transitions(200, none, strlen(none), &t, err, sizeof(err)),
                     JP_ERR_INVALID);
    const char *empty = "{\"transitions\":[]}";
    ck_assert_int_eq(jp_jira_parse_transitions(200, empty, strlen(empty), &t, err, sizeof(err)),
                     JP_OK);
    ck_assert_ptr_null(jp_jira_transition_for_status(t, "Done"));
    jp_jira_transitions_destroy(t);
}
END_TEST

START_TEST(parse_search_fixtures)
{
    size_t n;
    char *body = read_fixture("search_page1.json", &n);
    jp_jira_search_t *s = NULL;
    ck_assert_int_eq(jp_jira_parse_search(200, body, n, &s, err, sizeof(err)), JP_OK);
    ck_assert_uint_eq(s->count, 2);
    ck_assert(!s->is_last);
    ck_assert_str_eq(s->next_page_token, "CAEaAggD");
    ck_assert_ptr_null(s->issues[0].assignee);
    const jp_jira_issue_t *hit = jp_jira_search_find_ref(s, "HR-2024-0042");
    ck_assert_ptr_nonnull(hit);
    ck_assert_str_eq(hit->key, "DEMO-42"); /* not the case-insensitive look-alike DEMO-50 */
    ck_assert_str_eq(hit->prop_event_id, "evt-7f2c9a1e-0001");
    hit = jp_jira_search_find_ref(s, "hr-2024-0042");
    ck_assert_str_eq(hit->key, "DEMO-50");
    ck_assert_ptr_null(jp_jira_search_find_ref(s, "HR-2024-0043"));
    ck_assert_ptr_null(jp_jira_search_find_ref(s, NULL));
    jp_jira_search_destroy(s);
    free(body);

    body = read_fixture("search_last.json", &n);
    ck_assert_int_eq(jp_jira_parse_search(200, body, n, &s, err, sizeof(err)), JP_OK);
    ck_assert(s->is_last);
    ck_assert_ptr_null(s->next_page_token);
    hit = jp_jira_search_find_ref(s, "HR-2024-0042"); /* by label: no property */
    ck_assert_ptr_nonnull(hit);
    ck_assert_str_eq(hit->key, "OPS-7");
    ck_assert_str_eq(hit->status, "Done");
    ck_assert_ptr_null(hit->priority);
    jp_jira_search_destroy(s);
    free(body);

    body = read_fixture("search_empty.json", &n);
    ck_assert_int_eq(jp_jira_parse_search(200, body, n, &s, err, sizeof(err)), JP_OK);
    ck_assert_uint_eq(s->count, 0);
    ck_assert_ptr_null(jp_jira_search_find_ref(s, "x"));
    jp_jira_search_destroy(s);
    free(body);

    const char *notoken = "{\"issues\":[],\"isLast\":false}";
    ck_assert_int_eq(jp_jira_parse_search(200, notoken, strlen(notoken), &s, err, sizeof(err)),
                     JP_ERR_INVALID);
    const char *implied = "{\"issues\":[],\"nextPageToken\":\"t\"}";
    ck_assert_int_eq(jp_jira_parse_search(200, implied, strlen(implied), &s, err, sizeof(err)),
                     JP_OK);
    ck_assert(!s->is_last);
    jp_jira_search_destroy(s);
    const char *badissue = "{\"issues\":[{\"key\":\"A1-1\"},{\"key\":\"\"}]}";
    ck_assert_int_eq(jp_jira_parse_search(200, badissue, strlen(badissue), &s, err, sizeof(err)),
                     JP_ERR_INVALID);
    ck_assert(strstr(err, "issues[1]") != NULL);
    const char *gone = "{\"errorMessages\":[\"The requested API has been removed.\"]}";
    ck_assert_int_eq(jp_jira_parse_search(410, gone, strlen(gone), &s, err, sizeof(err)),
                     JP_ERR_HTTP);
    ck_assert_str_eq(err, "HTTP 410: The requested API has been removed.");
    jp_jira_search_destroy(NULL);
}
END_TEST

START_TEST(parse_roles_fixtures)
{
    size_t n;
    char *body = read_fixture("project_roles.json", &n);
    jp_jira_roles_t *r = NULL;
    ck_assert_int_eq(jp_jira_parse_project_roles(200, body, n, &r, err, sizeof(err)), JP_OK);
    ck_assert_uint_eq(r->count, 4);
    ck_assert_int_eq(jp_jira_role_id(r, "Developers"), 10000);
    ck_assert_int_eq(jp_jira_role_id(r, "administrators"), 10002);
    ck_assert_int_eq(jp_jira_role_id(r, "atlassian-addons-project-access"), 10003);
    ck_assert_int_eq(jp_jira_role_id(r, "Viewers"), -1);
    ck_assert_int_eq(jp_jira_role_id(r, NULL), -1);
    ck_assert_int_eq(jp_jira_role_id(NULL, "Users"), -1);
    jp_jira_roles_destroy(r);
    free(body);
    static const char *const bad[] = {
        "{\"Developers\":\"https://x/rest/api/3/project/DEMO/role/\"}",
        "{\"Developers\":\"https://x/rest/api/3/project/DEMO/role/10a\"}",
        "{\"Developers\":\"https://x/rest/api/3/project/DEMO/role/0\"}",
        "{\"Developers\":\"https://x/rest/api/3/project/DEMO/role/99999999999999999999\"}",
        "{\"Developers\":10000}",
        "[\"Developers\"]",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = (jp_jira_roles_t *)0x1;
        ck_assert_int_eq(
            jp_jira_parse_project_roles(200, bad[i], strlen(bad[i]), &r, err, sizeof(err)),
            JP_ERR_INVALID);
        ck_assert_ptr_null(r);
    }

    body = read_fixture("project_role.json", &n);
    jp_jira_role_t *role = NULL;
    ck_assert_int_eq(jp_jira_parse_project_role(200, body, n, &role, err, sizeof(err)), JP_OK);
    ck_assert_int_eq(role->id, 10000);
    ck_assert_str_eq(role->name, "Developers");
    ck_assert_uint_eq(role->user_count, 2);
    ck_assert_uint_eq(role->group_count, 1);
    ck_assert_str_eq(role->groups[0], "952d12c3-5b5b-4d04-bb32-44d383afc4b2");
    ck_assert_str_eq(role->group_names[0], "jira-developers");
    ck_assert_str_eq(role->description, "A project role that represents developers in a project");
    ck_assert(jp_jira_role_has_user(role, ACC2));
    ck_assert(!jp_jira_role_has_user(role, "5b10a0effa615349cb016cd8"));
    ck_assert(!jp_jira_role_has_user(NULL, ACC));
    jp_jira_role_destroy(role);
    free(body);
    const char *byname = "{\"id\":3,\"actors\":[{\"type\":\"atlassian-group-role-actor\","
                         "\"actorGroup\":{\"name\":\"old-group\"}}]}";
    ck_assert_int_eq(
        jp_jira_parse_project_role(200, byname, strlen(byname), &role, err, sizeof(err)), JP_OK);
    ck_assert_uint_eq(role->group_count, 1);
    ck_assert_str_eq(role->groups[0], "old-group");
    ck_assert_str_eq(role->group_names[0], "old-group");
    ck_assert_ptr_null(role->description);
    jp_jira_role_destroy(role);
    const char *noid = "{\"name\":\"x\",\"actors\":[]}";
    ck_assert_int_eq(jp_jira_parse_project_role(200, noid, strlen(noid), &role, err, sizeof(err)),
                     JP_ERR_INVALID);
    const char *baduser =
        "{\"id\":1,\"actors\":[{\"type\":\"atlassian-user-role-actor\",\"actorUser\":{}}]}";
    ck_assert_int_eq(
        jp_jira_parse_project_role(200, baduser, strlen(baduser), &role, err, sizeof(err)),
        JP_ERR_INVALID);
    ck_assert(strstr(err, "actors[0]") != NULL);
}
END_TEST

START_TEST(parse_groups_users_fixtures)
{
    size_t n;
    char *body = read_fixture("group_bulk.json", &n);
    jp_jira_groups_t *g = NULL;
    ck_assert_int_eq(jp_jira_parse_groups(200, body, n, &g, err, sizeof(err)), JP_OK);
    ck_assert_uint_eq(g->count, 2);
    ck_assert(g->is_last);
    ck_assert_str_eq(jp_jira_group_id(g, "jira-software-users"), GID);
    ck_assert_str_eq(jp_jira_group_id(g, "jira-admins"), "6e87dc72-4f1f-421f-9382-2fee8b652487");
    ck_assert_ptr_null(jp_jira_group_id(g, "nobody"));
    jp_jira_groups_destroy(g);
    free(body);
    const char *nogid = "{\"values\":[{\"name\":\"x\"}]}";
    ck_assert_int_eq(jp_jira_parse_groups(200, nogid, strlen(nogid), &g, err, sizeof(err)),
                     JP_ERR_INVALID);
    ck_assert(strstr(err, "values[0].groupId") != NULL);

    jp_jira_projects_t *pr = NULL;
    body = read_fixture("project_search.json", &n);
    ck_assert_int_eq(jp_jira_parse_projects(200, body, n, &pr, err, sizeof(err)), JP_OK);
    ck_assert_uint_eq(pr->count, 2);
    ck_assert(!pr->is_last);
    ck_assert_str_eq(pr->items[0].key, "DEMO");
    ck_assert_str_eq(pr->items[1].id, "10001");
    ck_assert_str_eq(pr->items[1].name, "Operations");
    jp_jira_projects_destroy(pr);
    free(body);
    const char *badkey = "{\"values\":[{\"id\":\"1\",\"key\":\"../X\"}],\"isLast\":true}";
    ck_assert_int_eq(jp_jira_parse_projects(200, badkey, strlen(badkey), &pr, err, sizeof(err)),
                     JP_ERR_INVALID);
    ck_assert(strstr(err, "values[0]") != NULL);
    ck_assert_int_eq(jp_jira_parse_projects(404, "{}", 2, &pr, err, sizeof(err)), JP_ERR_NOT_FOUND);

    jp_jira_users_t *u = NULL;
    body = read_fixture("group_members.json", &n);
    ck_assert_int_eq(jp_jira_parse_users(200, body, n, &u, err, sizeof(err)), JP_OK);
    ck_assert_uint_eq(u->count, 2);
    ck_assert(!u->is_last);
    ck_assert_int_eq(u->total, 5);
    ck_assert_int_eq(u->start_at, 0);
    ck_assert_str_eq(u->items[0].email, "jdoe@example.com");
    ck_assert_ptr_null(u->items[1].email);
    ck_assert(!u->items[1].active);
    jp_jira_users_destroy(u);
    free(body);

    body = read_fixture("user.json", &n);
    ck_assert_int_eq(jp_jira_parse_users(200, body, n, &u, err, sizeof(err)), JP_OK);
    ck_assert_uint_eq(u->count, 1);
    ck_assert(u->is_last);
    ck_assert_str_eq(u->items[0].account_id, ACC);
    ck_assert_str_eq(u->items[0].display_name, "Jane Doe");
    ck_assert_str_eq(u->items[0].account_type, "atlassian");
    jp_jira_users_destroy(u);
    free(body);

    body = read_fixture("user_search.json", &n);
    ck_assert_int_eq(jp_jira_parse_users(200, body, n, &u, err, sizeof(err)), JP_OK);
    ck_assert_uint_eq(u->count, 2);
    ck_assert_int_eq(u->total, 2);
    ck_assert_str_eq(u->items[1].account_type, "app");
    jp_jira_users_destroy(u);
    free(body);

    const char *emptypage = "{\"values\":null,\"isLast\":true}";
    ck_assert_int_eq(jp_jira_parse_users(200, emptypage, strlen(emptypage), &u, err, sizeof(err)),
                     JP_OK);
    ck_assert_uint_eq(u->count, 0);
    jp_jira_users_destroy(u);
    ck_assert_int_eq(jp_jira_parse_users(200, "[]", 2, &u, err, sizeof(err)), JP_OK);
    ck_assert_uint_eq(u->count, 0);
    jp_jira_users_destroy(u);
    const char *noacc = "[{\"displayName\":\"x\"}]";
    ck_assert_int_eq(jp_jira_parse_users(200, noacc, strlen(noacc), &u, err, sizeof(err)),
                     JP_ERR_INVALID);
    ck_assert(strstr(err, "[0].accountId") != NULL);
}
END_TEST

/* ---- robustness: every parser on broken input ------------------------------------------- */

typedef jp_err_t (*parse_fn)(long status, const char *body, size_t len, char *errstr,
                             size_t errstr_size);

/* Each wrapper checks the out-parameter contract: set on success, NULL on
 * failure with a message. */
#define WRAP(name, type, parser, destroy)                                                          \
    static jp_err_t name(long status, const char *body, size_t len, char *e, size_t es)            \
    {                                                                                              \
        type *o = (type *)0x1;                                                                     \
        e[0] = '\0';                                                                               \
        jp_err_t rc = parser(status, body, len, &o, e, es);                                        \
        if (rc == JP_OK) {                                                                         \
            ck_assert_ptr_nonnull(o);                                                              \
            destroy(o);                                                                            \
        } else {                                                                                   \
            ck_assert_ptr_null(o);                                                                 \
            ck_assert_msg(e[0] != '\0', #parser ": error %d without a message", (int)rc);          \
        }                                                                                          \
        return rc;                                                                                 \
    }

WRAP(p_scim_user, jp_jira_scim_user_t, jp_jira_parse_scim_user, jp_jira_scim_user_destroy)
WRAP(p_scim_list, jp_jira_scim_list_t, jp_jira_parse_scim_list, jp_jira_scim_list_destroy)
WRAP(p_scim_group, jp_jira_scim_group_t, jp_jira_parse_scim_group, jp_jira_scim_group_destroy)
WRAP(p_created, jp_jira_issue_t, jp_jira_parse_issue_created, jp_jira_issue_destroy)
WRAP(p_issue, jp_jira_issue_t, jp_jira_parse_issue, jp_jira_issue_destroy)
WRAP(p_transitions, jp_jira_transitions_t, jp_jira_parse_transitions, jp_jira_transitions_destroy)
WRAP(p_search, jp_jira_search_t, jp_jira_parse_search, jp_jira_search_destroy)
WRAP(p_roles, jp_jira_roles_t, jp_jira_parse_project_roles, jp_jira_roles_destroy)
WRAP(p_role, jp_jira_role_t, jp_jira_parse_project_role, jp_jira_role_destroy)
WRAP(p_groups, jp_jira_groups_t, jp_jira_parse_groups, jp_jira_groups_destroy)
WRAP(p_users, jp_jira_users_t, jp_jira_parse_users, jp_jira_users_destroy)
WRAP(p_projects, jp_jira_projects_t, jp_jira_parse_projects, jp_jira_projects_destroy)

static jp_err_t p_errors(long status, const char *body, size_t len, char *e, size_t es)
{
    jp_jira_error_t pe;
    for (int api = JP_JIRA_API_SCIM; api <= JP_JIRA_API_REST; api++) {
        jp_jira_parse_error((jp_jira_api_t)api, status, body, len, &pe);
        ck_assert_uint_lt(strlen(pe.message), sizeof(pe.message));
        jp_jira_error_message((jp_jira_api_t)api, status, body, len, e, es);
        ck_assert(jp_http_header_okn(e, strlen(e))); /* one clean line */
    }
    return JP_OK;
}

static const parse_fn all_parsers[] = {
    p_scim_user, p_scim_list, p_scim_group, p_created, p_issue,    p_transitions, p_search,
    p_roles,     p_role,      p_groups,     p_users,   p_projects, p_errors};
#define NPARSERS (sizeof(all_parsers) / sizeof(all_parsers[0]))

START_TEST(parsers_broken_inputs)
{
    static const char *const inputs[] = {
        "",
        " ",
        "null",
        "true",
        "42",
        "\"string\"",
        "not json",
        "{",
        "[",
        "{}",
        "[]",
        "[{}]",
        "[null]",
        "{\"id\":5,\"userName\":[],\"key\":{},\"transitions\":\"x\",\"issues\":7}",
        "{\"id\":\"x\",\"userName\":\"y\",\"active\":\"yes\"}",
        "{\"id\":\"x\",\"userName\":\"y\",\"emails\":{}}",
        "{\"id\":\"x\",\"userName\":\"y\",\"urn:scim:schemas:extension:atlassian-external:1.0\":"
        "[]}",
        "{\"id\":\"x\",\"userName\":\"y\",\"urn:scim:schemas:extension:atlassian-external:1.0\":"
        "{\"atlassianAccountId\":5}}",
        "{\"id\":\"\",\"userName\":\"\",\"displayName\":\"\"}",
        "{\"totalResults\":99999999999999999999999}",
        "{\"totalResults\":1e400}",
        "{\"totalResults\":1.5,\"startIndex\":-3}",
        "{\"id\":9223372036854775807,\"name\":\"x\"}",
        "{\"id\":-9223372036854775808}",
        "{\"key\":\"A-1\",\"fields\":[]}",
        "{\"key\":\"A-1\",\"fields\":{\"status\":\"Done\",\"labels\":\"x\"}}",
        "{\"key\":\"A-1\",\"fields\":{\"assignee\":{\"accountId\":7}}}",
        "{\"issues\":[null]}",
        "{\"issues\":[{\"key\":\"A-1\"}],\"nextPageToken\":5}",
        "{\"transitions\":[{\"id\":\"1\",\"to\":\"Done\"}]}",
        "{\"transitions\":[{\"id\":\"1\",\"isAvailable\":1}]}",
        "{\"values\":[null],\"isLast\":\"no\"}",
        "{\"values\":{}}",
        "{\"actors\":[{\"type\":7}],\"id\":1}",
        "{\"id\":1,\"actors\":[{\"type\":\"atlassian-group-role-actor\",\"actorGroup\":[]}]}",
        "{\"errorMessages\":\"x\",\"errors\":[1,2]}",
        "{\"errorMessages\":[1,null,{}],\"errors\":{\"a\":1}}",
        "{\"error\":{},\"traceId\":1}",
        "{\"key\":7,\"context\":\"x\"}",
        "{\"code\":{},\"message\":[]}",
        "[{\"code\":null},1,\"x\"]",
        "{\"schemas\":\"x\",\"detail\":5,\"scimType\":[]}",
        "\xef\xbb\xbf{}",
        "{\"a\":\"\\ud800\"}",
        "{\"a\":\"\\u0000\"}",
        "{\"a\":1}{\"b\":2}",
    };
    static const long statuses[] = {200, 201, 204, 0, 302, 400, 401, 404, 409, 429, 500, 999, -1};
    char e[512];
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++)
        for (size_t p = 0; p < NPARSERS; p++)
            for (size_t s = 0; s < sizeof(statuses) / sizeof(statuses[0]); s++)
                all_parsers[p](statuses[s], inputs[i], strlen(inputs[i]), e, sizeof(e));
    /* NUL bytes, binary noise, a NULL body and a length without a body. */
    const char nul[] = "{\"id\":\"x\0y\",\"userName\":\"u\"}";
    unsigned char noise[512];
    unsigned seed = 12345;
    for (size_t i = 0; i < sizeof(noise); i++) {
        seed = seed * 1103515245u + 12345u;
        noise[i] = (unsigned char)(seed >> 16);
    }
    for (size_t p = 0; p < NPARSERS; p++) {
        all_parsers[p](200, nul, sizeof(nul) - 1, e, sizeof(e));
        all_parsers[p](200, (const char *)noise, sizeof(noise), e, sizeof(e));
        all_parsers[p](200, NULL, 0, e, sizeof(e));
        all_parsers[p](500, NULL, 0, e, sizeof(e));
        if (all_parsers[p] != p_errors)
            ck_assert_int_ne(all_parsers[p](200, NULL, 10, e, sizeof(e)), JP_OK);
    }
    /* Deep nesting stays within the JSON parser's depth limit. */
    char *deep_open = repeat("[", 100000);
    for (size_t p = 0; p < NPARSERS; p++)
        all_parsers[p](200, deep_open, strlen(deep_open), e, sizeof(e));
    free(deep_open);
    /* Tiny error buffers are fine too. */
    char one[1];
    ck_assert_int_eq(jp_jira_check_status(JP_JIRA_API_REST, 500, "x", 1, one, sizeof(one)),
                     JP_ERR_HTTP);
    ck_assert_str_eq(one, "");
}
END_TEST

static const struct {
    const char *fixture;
    parse_fn parse;
} fixture_parsers[] = {
    {"scim_user.json", p_scim_user},        {"scim_user_ext11.json", p_scim_user},
    {"scim_users_list.json", p_scim_list},  {"scim_users_empty.json", p_scim_list},
    {"scim_groups_list.json", p_scim_list}, {"scim_group.json", p_scim_group},
    {"issue_created.json", p_created},      {"issue_get.json", p_issue},
    {"transitions.json", p_transitions},    {"search_page1.json", p_search},
    {"search_last.json", p_search},         {"search_empty.json", p_search},
    {"project_roles.json", p_roles},        {"project_role.json", p_role},
    {"group_bulk.json", p_groups},          {"project_search.json", p_projects},
    {"group_members.json", p_users},        {"user.json", p_users},
    {"user_search.json", p_users},          {"scim_error_409.json", p_errors},
    {"admin_lifecycle_409.json", p_errors}, {"org_errors_404.json", p_errors},
    {"jira_error_400.json", p_errors},
};

/* Replaces every value of the document in turn by values of every type
 * (and deletes every member), parsing each variant. */
static size_t mutate_walk(json_t *root, json_t *node, parse_fn parse)
{
    json_t *repl[] = {
        json_null(),  json_true(),  json_integer(-1), json_real(1e300), json_string("\xc3\xa9\x01"),
        json_array(), json_object()};
    size_t n = 0, nrepl = sizeof(repl) / sizeof(repl[0]);
    char e[512];
    if (json_is_object(node)) {
        /* Keys first: deleting and restoring a member moves it to the end. */
        size_t nkeys = json_object_size(node), k = 0;
        char **keys = calloc(nkeys ? nkeys : 1, sizeof(char *));
        const char *key;
        json_t *child;
        json_object_foreach(node, key, child)
        {
            keys[k++] = strdup(key);
        }
        for (k = 0; k < nkeys; k++) {
            child = json_incref(json_object_get(node, keys[k]));
            for (size_t r = 0; r <= nrepl; r++) {
                if (r < nrepl)
                    json_object_set(node, keys[k], repl[r]);
                else
                    json_object_del(node, keys[k]);
                char *s = json_dumps(root, JSON_COMPACT);
                parse(200, s, strlen(s), e, sizeof(e));
                free(s);
                n++;
            }
            json_object_set(node, keys[k], child);
            n += mutate_walk(root, child, parse);
            json_decref(child);
            free(keys[k]);
        }
        free(keys);
    } else if (json_is_array(node)) {
        for (size_t i = 0; i < json_array_size(node); i++) {
            json_t *child = json_incref(json_array_get(node, i));
            for (size_t r = 0; r < nrepl; r++) {
                json_array_set(node, i, repl[r]);
                char *s = json_dumps(root, JSON_COMPACT);
                parse(200, s, strlen(s), e, sizeof(e));
                free(s);
                n++;
            }
            json_array_set(node, i, child);
            n += mutate_walk(root, child, parse);
            json_decref(child);
        }
    }
    for (size_t r = 0; r < nrepl; r++)
        json_decref(repl[r]);
    return n;
}

START_TEST(parsers_mutated_fixtures)
{
    size_t len;
    char *body = read_fixture(fixture_parsers[_i].fixture, &len);
    parse_fn parse = fixture_parsers[_i].parse;
    char e[512];
    /* The fixture itself parses. */
    ck_assert_msg(parse(parse == p_errors ? 400 : 200, body, len, e, sizeof(e)) == JP_OK, "%s: %s",
                  fixture_parsers[_i].fixture, e);
    /* Every prefix short of the closing bracket (a truncated transfer) fails. */
    size_t end = len;
    while (end > 0 && strchr(" \t\r\n", body[end - 1]))
        end--;
    for (size_t cut = 0; cut < end; cut++) {
        jp_err_t rc = parse(200, body, cut, e, sizeof(e));
        if (parse != p_errors)
            ck_assert_msg(rc != JP_OK, "%s: prefix of %zu bytes accepted",
                          fixture_parsers[_i].fixture, cut);
    }
    /* Every value replaced by every type, every member removed. */
    json_t *root = json_loadb(body, len, 0, NULL);
    ck_assert_ptr_nonnull(root);
    ck_assert_uint_gt(mutate_walk(root, root, parse), 0);
    json_decref(root);
    free(body);
}
END_TEST

static Suite *jira_suite(void)
{
    Suite *s = suite_create("jira");
    TCase *b = tcase_create("builders");
    tcase_add_checked_fixture(b, setup, teardown);
    tcase_add_test(b, scim_user_find_plain);
    tcase_add_loop_test(b, scim_user_find_hostile, 0,
                        (int)(sizeof(hostile_logins) / sizeof(hostile_logins[0])));
    tcase_add_test(b, scim_user_find_limits);
    tcase_add_test(b, scim_user_by_id);
    tcase_add_test(b, scim_user_create_and_patch);
    tcase_add_test(b, scim_paging);
    tcase_add_test(b, scim_groups);
    tcase_add_test(b, admin_lifecycle);
    tcase_add_test(b, credentials_refused);
    tcase_add_test(b, http_view);
    tcase_add_test(b, rest_users_groups);
    tcase_add_test(b, rest_project_roles);
    tcase_add_test(b, issue_create);
    tcase_add_test(b, issue_create_invalid);
    tcase_add_test(b, issue_edit);
    tcase_add_loop_test(b, issue_bad_keys, 0,
                        (int)(sizeof(bad_issue_keys) / sizeof(bad_issue_keys[0])));
    tcase_add_test(b, issue_get_delete_transitions);
    tcase_add_test(b, issue_find_by_ref);
    tcase_add_test(b, issue_search_generic);
    suite_add_tcase(s, b);

    TCase *q = tcase_create("jql");
    tcase_add_checked_fixture(q, setup, teardown);
    tcase_add_loop_test(q, jql_quote_table, 0, (int)(sizeof(jql_table) / sizeof(jql_table[0])));
    tcase_add_test(q, jql_quote_limits);
    suite_add_tcase(s, q);

    TCase *p = tcase_create("parsers");
    tcase_add_checked_fixture(p, setup, teardown);
    tcase_add_test(p, parse_scim_user_fixtures);
    tcase_add_test(p, parse_scim_list_fixtures);
    tcase_add_test(p, parse_scim_group_fixture);
    tcase_add_test(p, error_forms);
    tcase_add_test(p, error_message_caps);
    tcase_add_test(p, status_mapping);
    tcase_add_test(p, parse_issue_fixtures);
    tcase_add_test(p, parse_transitions_fixture);
    tcase_add_test(p, parse_search_fixtures);
    tcase_add_test(p, parse_roles_fixtures);
    tcase_add_test(p, parse_groups_users_fixtures);
    suite_add_tcase(s, p);

    TCase *r = tcase_create("robustness");
    tcase_set_timeout(r, 300);
    tcase_add_checked_fixture(r, setup, teardown);
    tcase_add_test(r, parsers_broken_inputs);
    tcase_add_loop_test(r, parsers_mutated_fixtures, 0,
                        (int)(sizeof(fixture_parsers) / sizeof(fixture_parsers[0])));
    suite_add_tcase(s, r);

    return s;
}

JP_CHECK_MAIN(jira_suite)
