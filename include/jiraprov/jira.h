/* The pure half of the Jira client: every HTTP request the worker sends to
 * Atlassian (SCIM user provisioning, the admin lifecycle API, Jira Cloud REST
 * v3) is built here, and every response it reads is parsed here. No I/O: the
 * worker hands a jp_jira_req_t to jp_http (see jp_jira_req_http()) and feeds
 * the status and body it gets back to the matching parser.
 *
 * Building
 *   Each builder validates its inputs (issue and project keys against the
 *   Cloud patterns, account ids against Atlassian's pattern, UTF-8, control
 *   characters) and returns JP_ERR_INVALID with one sentence in errstr when
 *   one is wrong, JP_ERR_TOO_LARGE when the URL would exceed JP_JIRA_URL_MAX.
 *   Every path segment and query value is percent-encoded with
 *   jp_http_escape(); nothing from an event is pasted into a URL, a header or
 *   JQL unescaped. Credentials come from the site: Jira REST uses Basic
 *   base64(email:api_token), SCIM uses Bearer scim_api_key, the admin API
 *   Bearer org_api_key; a credential holding CR, LF or another control
 *   character is refused (and never quoted in errstr).
 *
 * Parsing
 *   Parsers take the HTTP status and the raw body (any bytes, not necessarily
 *   NUL-terminated). A status outside 2xx gives JP_ERR_NOT_FOUND (404),
 *   JP_ERR_CONFLICT (409) or JP_ERR_HTTP (any other), with errstr set to
 *   jp_jira_error_message(). A 2xx body that is not JSON or has the wrong
 *   shape gives JP_ERR_INVALID naming the offending field. Strings are copied
 *   out of the JSON; nothing returned points into the body.
 *
 * Finding a created issue again
 *   An issue create whose outcome is unknown (sent, no answer) must not be
 *   blindly repeated. Every issue jiraprov creates therefore carries
 *     - the label   JP_JIRA_REF_LABEL_PREFIX + externalRef
 *                   ("idhub-ref-HR-2024-0042"; externalRef is
 *                   [A-Za-z0-9._:-]{1,128}, so the label has no spaces and
 *                   stays under Jira's 255-character label limit), and
 *     - the property JP_JIRA_PROPERTY_KEY ("idhub") with the value
 *                   {"externalRef":"<ref>","eventId":"<CloudEvents id>"}.
 *   jp_jira_issue_find_by_ref() searches by the label (works on any site) or
 *   by the property (only where the property is indexed for JQL, as in the
 *   emulator); jp_jira_search_find_ref() then picks the issue whose property
 *   or label matches the ref exactly (JQL label matching ignores case), and
 *   the property's eventId tells which event created it. User labels that
 *   start with the reserved prefix are refused.
 *
 * Ownership: builders return a request the caller frees with
 * jp_jira_req_destroy(); parsers return structs the caller frees with the
 * matching _destroy(); every destroy accepts NULL. Inputs are never retained
 * (a json_t body is serialised, not referenced). Pure functions on their
 * arguments: safe to call from any thread. */
#ifndef JIRAPROV_JIRA_H
#define JIRAPROV_JIRA_H

#include "jiraprov/config.h"
#include "jiraprov/err.h"
#include "jiraprov/event.h"
#include "jiraprov/http.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JP_JIRA_URL_MAX          8192 /* bytes; longer URLs are refused (proxies cut at 8 KiB) */
#define JP_JIRA_ERRMSG_MAX       512  /* bytes of a server message kept by the error parser */
#define JP_JIRA_JQL_VALUE_MAX    1024 /* bytes of one value given to jp_jira_jql_quote() */
#define JP_JIRA_SCIM_PAGE_MAX    100  /* SCIM count per page (Atlassian's maximum) */
#define JP_JIRA_MEMBER_PAGE_MAX  50   /* /group/member and /group/bulk maxResults */
#define JP_JIRA_SEARCH_PAGE_MAX  100  /* search/jql maxResults this client asks for */
#define JP_JIRA_REF_LABEL_PREFIX "idhub-ref-"
#define JP_JIRA_PROPERTY_KEY     "idhub"

/* ---- requests ----------------------------------------------------------- */

/* Which API a request goes to; also selects the error body forms. */
typedef enum jp_jira_api {
    JP_JIRA_API_SCIM = 0, /* site->scim_url, Bearer scim_api_key */
    JP_JIRA_API_ADMIN,    /* site->admin_url, Bearer org_api_key */
    JP_JIRA_API_REST      /* site->jira_url + /rest/api/3, Basic email:api_token */
} jp_jira_api_t;

/* "scim", "admin", "rest"; NULL if out of range. */
const char *jp_jira_api_name(jp_jira_api_t api);

typedef struct jp_jira_req {
    jp_jira_api_t api;
    jp_http_method_t method;
    char *url;      /* full URL, escaped, at most JP_JIRA_URL_MAX bytes */
    char **headers; /* "Name: value": Authorization, Accept, Content-Type (with a body) */
    size_t nheaders;
    char *body; /* compact JSON, NUL-terminated, or NULL */
    size_t body_len;
    /* Static label for the limiter and metrics: "scim.users", "scim.groups",
     * "admin.lifecycle", "rest.user", "rest.user.search", "rest.group.bulk",
     * "rest.group.user", "rest.group.member", "rest.project.role", "rest.project.search",
     * "rest.issue", "rest.issue.transitions", "rest.search". */
    const char *endpoint_class;
    /* The issue a request addresses (per-issue write limits apply when
     * `mutation` is also set), or NULL. */
    char *issue_key;
    /* Sending it twice leaves the same state as sending it once (the second
     * answer may differ, e.g. 404 after a delete, 400 "already a member"),
     * so it may be repeated after an unknown outcome. */
    bool idempotent;
    bool mutation; /* changes state in Atlassian (every method but GET, except search) */
} jp_jira_req_t;

void jp_jira_req_destroy(jp_jira_req_t *req);

/* Fills `out` (zeroed first) with a view of `req` for jp_http_request():
 * method, url, headers, body. The view borrows from req; set timeouts and
 * TLS options on it afterwards. */
void jp_jira_req_http(const jp_jira_req_t *req, jp_http_req_t *out);

/* ---- SCIM (site->scim_url) ---------------------------------------------- */

/* GET /Users?filter=userName eq "<v>" (and externalId): the value is
 * quoted, `"` and `\` escaped inside the quotes, then the whole filter is
 * percent-encoded. */
jp_err_t jp_jira_scim_user_find(const jp_site_t *site, const char *user_name, jp_jira_req_t **out,
                                char *errstr, size_t errstr_size);
/* The same with excludedAttributes=groups,meta: the user's own attributes
 * only, for callers that compare or write those (a user's groups can make
 * the full resource hundreds of times larger). */
jp_err_t jp_jira_scim_user_find_own(const jp_site_t *site, const char *user_name,
                                    jp_jira_req_t **out, char *errstr, size_t errstr_size);
jp_err_t jp_jira_scim_user_find_external_id(const jp_site_t *site, const char *external_id,
                                            jp_jira_req_t **out, char *errstr, size_t errstr_size);
/* GET /Users/{id} */
jp_err_t jp_jira_scim_user_get(const jp_site_t *site, const char *id, jp_jira_req_t **out,
                               char *errstr, size_t errstr_size);
/* POST /Users with `user` (a JSON object, e.g. from the mapping module). */
jp_err_t jp_jira_scim_user_create(const jp_site_t *site, const json_t *user, jp_jira_req_t **out,
                                  char *errstr, size_t errstr_size);
/* PATCH /Users/{id} with `patch` (a PatchOp object). Idempotent when every
 * operation is "replace" or "remove". */
jp_err_t jp_jira_scim_user_patch(const jp_site_t *site, const char *id, const json_t *patch,
                                 jp_jira_req_t **out, char *errstr, size_t errstr_size);
/* PATCH /Users/{id} {"op":"replace","path":"active","value":<active>}. */
jp_err_t jp_jira_scim_user_set_active(const jp_site_t *site, const char *id, bool active,
                                      jp_jira_req_t **out, char *errstr, size_t errstr_size);
/* DELETE /Users/{id} */
jp_err_t jp_jira_scim_user_delete(const jp_site_t *site, const char *id, jp_jira_req_t **out,
                                  char *errstr, size_t errstr_size);
/* GET /Users?startIndex=&count= (start_index >= 1, 1 <= count <= 100). */
jp_err_t jp_jira_scim_users_page(const jp_site_t *site, long start_index, long count,
                                 jp_jira_req_t **out, char *errstr, size_t errstr_size);
/* GET /Users?filter=<attr> eq "<value>"&startIndex=&count=: one page of the users a SCIM `eq`
 * filter selects (reconciliation). attr is "userName" or "externalId", the only user filters
 * Atlassian supports; anything else is JP_ERR_INVALID. */
jp_err_t jp_jira_scim_users_filter_page(const jp_site_t *site, const char *attr, const char *value,
                                        long start_index, long count, jp_jira_req_t **out,
                                        char *errstr, size_t errstr_size);

/* GET /Groups?filter=displayName eq "<v>" */
jp_err_t jp_jira_scim_group_find(const jp_site_t *site, const char *display_name,
                                 jp_jira_req_t **out, char *errstr, size_t errstr_size);
/* GET /Groups/{id} */
jp_err_t jp_jira_scim_group_get(const jp_site_t *site, const char *id, jp_jira_req_t **out,
                                char *errstr, size_t errstr_size);
/* POST /Groups {"schemas":[Group],"displayName":...} */
jp_err_t jp_jira_scim_group_create(const jp_site_t *site, const char *display_name,
                                   jp_jira_req_t **out, char *errstr, size_t errstr_size);
/* PATCH /Groups/{gid}: {"op":"add","path":"members","value":[{"value":uid}]}
 * or {"op":"remove","path":"members[value eq \"uid\"]"}. */
jp_err_t jp_jira_scim_group_add_member(const jp_site_t *site, const char *group_id,
                                       const char *user_id, jp_jira_req_t **out, char *errstr,
                                       size_t errstr_size);
jp_err_t jp_jira_scim_group_remove_member(const jp_site_t *site, const char *group_id,
                                          const char *user_id, jp_jira_req_t **out, char *errstr,
                                          size_t errstr_size);
/* GET /Groups?startIndex=&count= */
jp_err_t jp_jira_scim_groups_page(const jp_site_t *site, long start_index, long count,
                                  jp_jira_req_t **out, char *errstr, size_t errstr_size);

/* ---- admin lifecycle (site->admin_url, needs site->org_api_key) ---------- */

/* POST /users/{accountId}/manage/lifecycle/disable {"message":...}; a NULL
 * message sends {} (Atlassian then uses its default text). */
jp_err_t jp_jira_admin_disable(const jp_site_t *site, const char *account_id, const char *message,
                               jp_jira_req_t **out, char *errstr, size_t errstr_size);
/* POST /users/{accountId}/manage/lifecycle/enable (no body). */
jp_err_t jp_jira_admin_enable(const jp_site_t *site, const char *account_id, jp_jira_req_t **out,
                              char *errstr, size_t errstr_size);

/* ---- Jira REST v3: users, groups, project roles --------------------------- */

/* GET /rest/api/3/user?accountId= */
jp_err_t jp_jira_user_get(const jp_site_t *site, const char *account_id, jp_jira_req_t **out,
                          char *errstr, size_t errstr_size);
/* GET /rest/api/3/user/search?query=&startAt=&maxResults= (1..1000). */
jp_err_t jp_jira_user_search(const jp_site_t *site, const char *query, long start_at,
                             long max_results, jp_jira_req_t **out, char *errstr,
                             size_t errstr_size);
/* GET /rest/api/3/group/bulk?groupName= (resolve a name to a groupId). */
jp_err_t jp_jira_group_find(const jp_site_t *site, const char *group_name, jp_jira_req_t **out,
                            char *errstr, size_t errstr_size);
/* POST /rest/api/3/group/user?groupId= {"accountId":...} */
jp_err_t jp_jira_group_add_user(const jp_site_t *site, const char *group_id, const char *account_id,
                                jp_jira_req_t **out, char *errstr, size_t errstr_size);
/* DELETE /rest/api/3/group/user?groupId=&accountId= */
jp_err_t jp_jira_group_remove_user(const jp_site_t *site, const char *group_id,
                                   const char *account_id, jp_jira_req_t **out, char *errstr,
                                   size_t errstr_size);
/* GET /rest/api/3/group/member?groupId=&includeInactiveUsers=true&startAt=&maxResults= (1..50) */
jp_err_t jp_jira_group_members_page(const jp_site_t *site, const char *group_id, long start_at,
                                    long max_results, jp_jira_req_t **out, char *errstr,
                                    size_t errstr_size);
/* GET /rest/api/3/group/bulk?startAt=&maxResults= (1..50): every group of the site, a page at
 * a time (reconciliation). */
jp_err_t jp_jira_groups_page(const jp_site_t *site, long start_at, long max_results,
                             jp_jira_req_t **out, char *errstr, size_t errstr_size);
/* GET /rest/api/3/project/search?orderBy=key&startAt=&maxResults= (1..100): every project, a
 * page at a time, in key order (reconciliation). */
jp_err_t jp_jira_projects_page(const jp_site_t *site, long start_at, long max_results,
                               jp_jira_req_t **out, char *errstr, size_t errstr_size);
/* GET /rest/api/3/project/{key}/role (role name -> URL map). */
jp_err_t jp_jira_project_roles(const jp_site_t *site, const char *project_key, jp_jira_req_t **out,
                               char *errstr, size_t errstr_size);
/* GET /rest/api/3/project/{key}/role/{id} */
jp_err_t jp_jira_project_role_get(const jp_site_t *site, const char *project_key, int64_t role_id,
                                  jp_jira_req_t **out, char *errstr, size_t errstr_size);
/* POST /rest/api/3/project/{key}/role/{id} {"user":[accountId]} */
jp_err_t jp_jira_project_role_add_user(const jp_site_t *site, const char *project_key,
                                       int64_t role_id, const char *account_id, jp_jira_req_t **out,
                                       char *errstr, size_t errstr_size);
/* DELETE /rest/api/3/project/{key}/role/{id}?user= */
jp_err_t jp_jira_project_role_remove_user(const jp_site_t *site, const char *project_key,
                                          int64_t role_id, const char *account_id,
                                          jp_jira_req_t **out, char *errstr, size_t errstr_size);

/* ---- Jira REST v3: issues ------------------------------------------------ */

/* What to write into an issue. Logins are resolved to account ids before
 * this point (assignee_account_id). For create: project, issue_type,
 * summary (VALUE), external_ref and event_id are required; other fields
 * ABSENT or VALUE. For edit: only present fields are written; JP_NULL
 * clears (assignee NULL = unassign, labels NULL = no labels). */
typedef struct jp_jira_issue_fields {
    const char *project;     /* Cloud project key (create) */
    const char *issue_type;  /* issue type name (create) */
    jp_optstr_t summary;     /* one line, at most 255 characters */
    jp_optstr_t description; /* plain text, sent as ADF */
    jp_optstr_t priority;    /* priority name */
    jp_optstr_t assignee_account_id;
    jp_presence_t labels_state;
    size_t labels_count;
    const char *const *labels; /* no whitespace, not starting with the reserved prefix */
    /* Create: tags the issue (label and property). Edit: when labels are
     * set, the ref label is kept in the new list so the issue stays
     * findable; NULL on edit = the issue has no ref to keep. */
    const char *external_ref;
    const char *event_id; /* create: stored in the property */
} jp_jira_issue_fields_t;

/* POST /rest/api/3/issue */
jp_err_t jp_jira_issue_create(const jp_site_t *site, const jp_jira_issue_fields_t *f,
                              jp_jira_req_t **out, char *errstr, size_t errstr_size);
/* GET /rest/api/3/issue/{key}?fields=summary,status,labels,assignee,priority&properties=idhub */
jp_err_t jp_jira_issue_get(const jp_site_t *site, const char *key, jp_jira_req_t **out,
                           char *errstr, size_t errstr_size);
/* PUT /rest/api/3/issue/{key} {"fields":{...}} with the present fields. */
jp_err_t jp_jira_issue_edit(const jp_site_t *site, const char *key, const jp_jira_issue_fields_t *f,
                            jp_jira_req_t **out, char *errstr, size_t errstr_size);
/* DELETE /rest/api/3/issue/{key}?deleteSubtasks=true|false */
jp_err_t jp_jira_issue_delete(const jp_site_t *site, const char *key, bool delete_subtasks,
                              jp_jira_req_t **out, char *errstr, size_t errstr_size);
/* GET /rest/api/3/issue/{key}/transitions */
jp_err_t jp_jira_issue_transitions(const jp_site_t *site, const char *key, jp_jira_req_t **out,
                                   char *errstr, size_t errstr_size);
/* POST /rest/api/3/issue/{key}/transitions {"transition":{"id":"<digits>"}} */
jp_err_t jp_jira_issue_transition(const jp_site_t *site, const char *key, const char *transition_id,
                                  jp_jira_req_t **out, char *errstr, size_t errstr_size);

/* How jp_jira_issue_find_by_ref() looks an issue up. */
typedef enum jp_jira_find {
    JP_JIRA_FIND_BY_LABEL = 0, /* labels = "idhub-ref-<ref>" (any site) */
    JP_JIRA_FIND_BY_PROPERTY   /* issue.property[idhub].externalRef = "<ref>" (indexed sites) */
} jp_jira_find_t;

/* POST /rest/api/3/search/jql for the issues tagged with `ref`, optionally
 * only in `project` (NULL = any project), oldest first, asking for the
 * fields and the property jp_jira_parse_search() reads. */
jp_err_t jp_jira_issue_find_by_ref(const jp_site_t *site, const char *project, const char *ref,
                                   jp_jira_find_t how, jp_jira_req_t **out, char *errstr,
                                   size_t errstr_size);
/* POST /rest/api/3/search/jql with caller-built `jql`: every value in it
 * must come from a validated key or jp_jira_jql_quote(). `fields` may be
 * NULL (the same fields as find_by_ref); next_page_token NULL for the first
 * page; 1 <= max_results <= JP_JIRA_SEARCH_PAGE_MAX. */
jp_err_t jp_jira_search(const jp_site_t *site, const char *jql, const char *const *fields,
                        size_t nfields, const char *next_page_token, long max_results,
                        jp_jira_req_t **out, char *errstr, size_t errstr_size);

/* Writes `value` as one JQL string literal ("..." with `"` and `\` escaped)
 * into out. Refuses (JP_ERR_INVALID) NULL, invalid UTF-8 and control
 * characters (C0, DEL, C1: they have no business in a label, key or name);
 * JP_ERR_TOO_LARGE when value exceeds JP_JIRA_JQL_VALUE_MAX bytes or out is
 * too small. Any other character, Unicode included, is kept. */
jp_err_t jp_jira_jql_quote(const char *value, char *out, size_t out_size, char *errstr,
                           size_t errstr_size);

/* ---- errors ---------------------------------------------------------------- */

/* The error body forms Atlassian uses. */
typedef enum jp_jira_eform {
    JP_JIRA_EFORM_NONE = 0, /* empty body or nothing recognised */
    JP_JIRA_EFORM_SCIM,     /* {"schemas":[..Error],"status":"409","scimType","detail"} */
    JP_JIRA_EFORM_GATEWAY,  /* {"error":"...","traceId":"..."} (401/403 of SCIM, gateway) */
    JP_JIRA_EFORM_KEY,      /* admin: {"key":"forbidden.action","context":{...}} */
    JP_JIRA_EFORM_CODE,     /* {"code":429,"message":"..."} (proxy, rate limit) */
    JP_JIRA_EFORM_LIST,     /* [{"code","message","link"}] or {"errors":[{"code",...}]} */
    JP_JIRA_EFORM_JIRA,     /* {"errorMessages":[...],"errors":{"field":"msg"}} */
    JP_JIRA_EFORM_TEXT      /* not JSON: the start of the text */
} jp_jira_eform_t;

typedef struct jp_jira_error {
    jp_jira_eform_t form;
    long status;
    char code[64];                    /* scimType, key or code; "" if none */
    char message[JP_JIRA_ERRMSG_MAX]; /* one line, control characters replaced */
    char trace_id[128];               /* traceId if given */
} jp_jira_error_t;

/* Recognises the error form (the API family's own forms first, then the
 * others). Never fails; form NONE when nothing is recognised. */
void jp_jira_parse_error(jp_jira_api_t api, long status, const char *body, size_t body_len,
                         jp_jira_error_t *out);

/* One readable sentence: "HTTP 409 (uniqueness): User already exists",
 * "HTTP 400: Field 'priority' is required; summary: You must specify a
 * summary", "HTTP 503 with an empty body". Returns the length written
 * (truncated to out_size - 1, on a character boundary). */
size_t jp_jira_error_message(jp_jira_api_t api, long status, const char *body, size_t body_len,
                             char *out, size_t out_size);

/* For answers whose body does not matter (204 edits, deletes, lifecycle):
 * JP_OK for 2xx, otherwise as described under "Parsing". */
jp_err_t jp_jira_check_status(jp_jira_api_t api, long status, const char *body, size_t body_len,
                              char *errstr, size_t errstr_size);

/* ---- SCIM parsers ---------------------------------------------------------- */

typedef struct jp_jira_scim_user {
    char *id;
    char *user_name;
    char *external_id;   /* NULL if absent */
    char *account_id;    /* atlassian-external 1.0 or 1.1 atlassianAccountId, NULL if absent */
    char *primary_email; /* primary (else first) email value, NULL if none */
    bool active_present;
    bool active;
    json_t *json; /* the whole resource (own reference), for the mapping module */
} jp_jira_scim_user_t;

jp_err_t jp_jira_parse_scim_user(long status, const char *body, size_t body_len,
                                 jp_jira_scim_user_t **out, char *errstr, size_t errstr_size);
/* The same from one resource of a list (ListResponse.Resources[i]). */
jp_err_t jp_jira_scim_user_from_json(const json_t *resource, jp_jira_scim_user_t **out,
                                     char *errstr, size_t errstr_size);
void jp_jira_scim_user_destroy(jp_jira_scim_user_t *u);

typedef struct jp_jira_scim_list {
    int64_t total_results;
    int64_t start_index;    /* 1-based; 1 when absent */
    int64_t items_per_page; /* the count of Resources when absent */
    json_t *resources;      /* array (own reference), never NULL */
    size_t count;           /* json_array_size(resources) */
} jp_jira_scim_list_t;

jp_err_t jp_jira_parse_scim_list(long status, const char *body, size_t body_len,
                                 jp_jira_scim_list_t **out, char *errstr, size_t errstr_size);
void jp_jira_scim_list_destroy(jp_jira_scim_list_t *l);

typedef struct jp_jira_scim_group {
    char *id;
    char *display_name;
    char **members; /* SCIM user ids */
    size_t member_count;
} jp_jira_scim_group_t;

jp_err_t jp_jira_parse_scim_group(long status, const char *body, size_t body_len,
                                  jp_jira_scim_group_t **out, char *errstr, size_t errstr_size);
jp_err_t jp_jira_scim_group_from_json(const json_t *resource, jp_jira_scim_group_t **out,
                                      char *errstr, size_t errstr_size);
void jp_jira_scim_group_destroy(jp_jira_scim_group_t *g);
/* true if `user_id` is among the members. */
bool jp_jira_scim_group_has_member(const jp_jira_scim_group_t *g, const char *user_id);

/* ---- REST parsers ------------------------------------------------------------ */

/* An issue as read by GET issue, search/jql, or (id and key only) create. */
typedef struct jp_jira_issue {
    char *id;
    char *key;
    char *summary;  /* NULL when not returned */
    char *status;   /* status name, NULL when not returned */
    char *assignee; /* accountId, NULL when unassigned or not returned */
    char *priority; /* priority name, NULL when none */
    char **labels;
    size_t label_count;
    char *prop_external_ref; /* the "idhub" property, NULL when absent */
    char *prop_event_id;
} jp_jira_issue_t;

/* 201 of POST /issue: id and key. */
jp_err_t jp_jira_parse_issue_created(long status, const char *body, size_t body_len,
                                     jp_jira_issue_t **out, char *errstr, size_t errstr_size);
/* 200 of GET /issue/{key}. */
jp_err_t jp_jira_parse_issue(long status, const char *body, size_t body_len, jp_jira_issue_t **out,
                             char *errstr, size_t errstr_size);
void jp_jira_issue_destroy(jp_jira_issue_t *is);
/* The externalRef an issue is tagged with: the property's, else the one
 * label with the reserved prefix; NULL if none (or several labels). The
 * pointer lives as long as `is`. */
const char *jp_jira_issue_external_ref(const jp_jira_issue_t *is);

typedef struct jp_jira_transition {
    char *id;
    char *name;
    char *to_status; /* NULL when the answer had no to.name */
    bool available;  /* isAvailable (true when absent) */
} jp_jira_transition_t;

typedef struct jp_jira_transitions {
    jp_jira_transition_t *items;
    size_t count;
} jp_jira_transitions_t;

jp_err_t jp_jira_parse_transitions(long status, const char *body, size_t body_len,
                                   jp_jira_transitions_t **out, char *errstr, size_t errstr_size);
void jp_jira_transitions_destroy(jp_jira_transitions_t *t);
/* The first available transition whose target status name equals `status`
 * ignoring ASCII case; NULL if none. */
const jp_jira_transition_t *jp_jira_transition_for_status(const jp_jira_transitions_t *t,
                                                          const char *status);

typedef struct jp_jira_search {
    jp_jira_issue_t *issues;
    size_t count;
    char *next_page_token; /* NULL on the last page */
    bool is_last;          /* isLast; when absent, true iff there is no token */
} jp_jira_search_t;

jp_err_t jp_jira_parse_search(long status, const char *body, size_t body_len,
                              jp_jira_search_t **out, char *errstr, size_t errstr_size);
void jp_jira_search_destroy(jp_jira_search_t *s);
/* The first issue of `s` tagged with exactly `ref` (case-sensitive; by
 * property, else by label); NULL if none. */
const jp_jira_issue_t *jp_jira_search_find_ref(const jp_jira_search_t *s, const char *ref);

typedef struct jp_jira_role_ref {
    char *name;
    int64_t id;
} jp_jira_role_ref_t;

typedef struct jp_jira_roles {
    jp_jira_role_ref_t *items;
    size_t count;
} jp_jira_roles_t;

/* 200 of GET /project/{key}/role: {"Developers":".../role/10000", ...}. */
jp_err_t jp_jira_parse_project_roles(long status, const char *body, size_t body_len,
                                     jp_jira_roles_t **out, char *errstr, size_t errstr_size);
void jp_jira_roles_destroy(jp_jira_roles_t *r);
/* Role id by name (exact match first, then ignoring ASCII case); -1 if none. */
int64_t jp_jira_role_id(const jp_jira_roles_t *r, const char *name);

typedef struct jp_jira_role {
    int64_t id;
    char *name;
    char *description; /* NULL if absent */
    char **users;      /* accountIds of atlassian-user-role-actor actors */
    size_t user_count;
    char **groups;      /* groupIds (or names when no id) of group actors */
    char **group_names; /* group_count entries: actorGroup.name of groups[i], NULL if absent */
    size_t group_count;
} jp_jira_role_t;

/* 200 of GET/POST /project/{key}/role/{id}. */
jp_err_t jp_jira_parse_project_role(long status, const char *body, size_t body_len,
                                    jp_jira_role_t **out, char *errstr, size_t errstr_size);
void jp_jira_role_destroy(jp_jira_role_t *r);
bool jp_jira_role_has_user(const jp_jira_role_t *r, const char *account_id);

typedef struct jp_jira_group_ref {
    char *name;
    char *group_id;
} jp_jira_group_ref_t;

typedef struct jp_jira_groups {
    jp_jira_group_ref_t *items;
    size_t count;
    bool is_last;
} jp_jira_groups_t;

/* 200 of GET /group/bulk. */
jp_err_t jp_jira_parse_groups(long status, const char *body, size_t body_len,
                              jp_jira_groups_t **out, char *errstr, size_t errstr_size);
void jp_jira_groups_destroy(jp_jira_groups_t *g);
/* groupId by name (exact first, then ignoring ASCII case); NULL if none. */
const char *jp_jira_group_id(const jp_jira_groups_t *g, const char *name);

typedef struct jp_jira_project_ref {
    char *id;
    char *key;
    char *name; /* NULL if absent */
} jp_jira_project_ref_t;

typedef struct jp_jira_projects {
    jp_jira_project_ref_t *items;
    size_t count;
    bool is_last; /* isLast; when absent, true */
} jp_jira_projects_t;

/* 200 of GET /project/search (a PageBean of projects). A project whose key does not match the
 * Cloud pattern is refused (JP_ERR_INVALID): it could not be addressed safely afterwards. */
jp_err_t jp_jira_parse_projects(long status, const char *body, size_t body_len,
                                jp_jira_projects_t **out, char *errstr, size_t errstr_size);
void jp_jira_projects_destroy(jp_jira_projects_t *p);

typedef struct jp_jira_user {
    char *account_id;
    char *account_type; /* "atlassian", "app", ...; NULL if absent */
    char *display_name; /* NULL if absent */
    char *email;        /* NULL if hidden */
    bool active;        /* true when absent */
} jp_jira_user_t;

typedef struct jp_jira_users {
    jp_jira_user_t *items;
    size_t count;
    bool is_last;     /* pages: isLast; a single user or a bare array: true */
    int64_t start_at; /* pages: startAt; else 0 */
    int64_t total;    /* pages: total; else count */
} jp_jira_users_t;

/* 200 of GET /user (one User), GET /user/search (bare array) or GET
 * /group/member (PageBean with "values"). */
jp_err_t jp_jira_parse_users(long status, const char *body, size_t body_len, jp_jira_users_t **out,
                             char *errstr, size_t errstr_size);
void jp_jira_users_destroy(jp_jira_users_t *u);

#endif
