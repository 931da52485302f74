/* A Jira site for the fuzz targets that build requests, and the checks
 * every built request must pass whatever went into it. */
#ifndef JP_TESTS_FUZZ_SITE_H
#define JP_TESTS_FUZZ_SITE_H

#include "fuzz.h"
#include "jiraprov/http.h"
#include "jiraprov/jira.h"

#define FUZZ_SCIM_BASE  "https://api.atlassian.com/scim/directory/d1"
#define FUZZ_REST_BASE  "https://acme.atlassian.net/rest/api/3"
#define FUZZ_ADMIN_BASE "https://api.atlassian.com"

static inline const jp_site_t *fuzz_site(void)
{
    static jp_site_t site;
    if (!site.name) {
        site.name = (char *)"acme";
        site.jira_url = (char *)"https://acme.atlassian.net";
        site.email = (char *)"bot@acme.example";
        site.api_token = (char *)"api-token-1234";
        site.scim_url = (char *)FUZZ_SCIM_BASE;
        site.scim_api_key = (char *)"scim-key-1234";
        site.admin_url = (char *)FUZZ_ADMIN_BASE;
        site.org_api_key = (char *)"org-key-1234";
        site.tls_verify = true;
        site.timeout_ms = 30000;
    }
    return &site;
}

/* URL characters a built request may hold after its base: the unreserved
 * set, '%' escapes and the structural '/', '?', '&', '='. Never '#', a
 * space, a quote or a byte outside printable ASCII. */
static inline bool fuzz_url_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~' || c == '%' || c == '/' || c == '?' || c == '&' ||
           c == '=';
}

/* The checks every request passes: the URL is the API's base followed by
 * escaped parts only, no path segment is "." or "..", every '%' starts an
 * escape, at most one '?'; the headers are the fixed three (no CR, LF or
 * other control character); a body is JSON. */
static inline void fuzz_check_request(const jp_jira_req_t *req)
{
    FUZZ_CHECK(req && req->url, "no request");
    const char *base = req->api == JP_JIRA_API_SCIM    ? FUZZ_SCIM_BASE
                       : req->api == JP_JIRA_API_ADMIN ? FUZZ_ADMIN_BASE
                                                       : FUZZ_REST_BASE;
    size_t blen = strlen(base), ulen = strlen(req->url);
    FUZZ_CHECK(strncmp(req->url, base, blen) == 0, "URL %s does not start with %s", req->url, base);
    FUZZ_CHECK(ulen <= JP_JIRA_URL_MAX, "URL of %zu bytes", ulen);
    const char *rest = req->url + blen;
    FUZZ_CHECK(*rest == '/' || *rest == '?', "URL %s: nothing after the base", req->url);
    int queries = 0;
    bool in_query = false;
    for (size_t i = 0; rest[i]; i++) {
        unsigned char c = (unsigned char)rest[i];
        FUZZ_CHECK(fuzz_url_char(c), "URL %s: raw byte 0x%02x at %zu", req->url, c, blen + i);
        if (c == '%')
            FUZZ_CHECK(fuzz_hexval(rest[i + 1]) >= 0 && fuzz_hexval(rest[i + 2]) >= 0,
                       "URL %s: bad escape", req->url);
        if (c == '?') {
            queries++;
            in_query = true;
        }
        if (c == '/' && !in_query) {
            size_t seg = strcspn(rest + i + 1, "/?");
            FUZZ_CHECK(!((seg == 1 && rest[i + 1] == '.') ||
                         (seg == 2 && rest[i + 1] == '.' && rest[i + 2] == '.')),
                       "URL %s: dot segment", req->url);
            FUZZ_CHECK(seg > 0, "URL %s: empty path segment", req->url);
        }
    }
    FUZZ_CHECK(queries <= 1, "URL %s: %d '?'", req->url, queries);
    FUZZ_CHECK(req->nheaders == (req->body ? 3u : 2u), "%zu headers", req->nheaders);
    FUZZ_CHECK(strncmp(req->headers[0], "Authorization: ", 15) == 0, "first header %.20s",
               req->headers[0]);
    FUZZ_CHECK(strncmp(req->headers[1], "Accept: application/", 20) == 0, "second header");
    if (req->body)
        FUZZ_CHECK(strncmp(req->headers[2], "Content-Type: application/", 26) == 0, "third header");
    for (size_t i = 0; i < req->nheaders; i++) {
        FUZZ_CHECK(jp_http_header_ok(req->headers[i]), "header %zu not sendable", i);
        FUZZ_CHECK(fuzz_one_line(req->headers[i]), "header %zu has a control character", i);
    }
    if (req->body) {
        FUZZ_CHECK(req->body_len == strlen(req->body), "body length");
        json_error_t je;
        json_t *j = json_loadb(req->body, req->body_len, 0, &je);
        FUZZ_CHECK(j != NULL, "body is not JSON: %s", je.text);
        json_decref(j);
    }
}

/* The decoded value of query parameter `name` in req->url (caller frees),
 * or NULL if absent. */
static inline char *fuzz_query_value(const jp_jira_req_t *req, const char *name, size_t *len)
{
    const char *q = strchr(req->url, '?');
    size_t nlen = strlen(name);
    while (q) {
        q++;
        size_t plen = strcspn(q, "&");
        if (plen > nlen && strncmp(q, name, nlen) == 0 && q[nlen] == '=')
            return fuzz_pct_decode(q + nlen + 1, plen - nlen - 1, len);
        q = strchr(q, '&');
    }
    return NULL;
}

/* The decoded path segment `index` after the API base (0 = the first one). */
static inline char *fuzz_path_segment(const jp_jira_req_t *req, size_t index, size_t *len)
{
    const char *base = req->api == JP_JIRA_API_SCIM    ? FUZZ_SCIM_BASE
                       : req->api == JP_JIRA_API_ADMIN ? FUZZ_ADMIN_BASE
                                                       : FUZZ_REST_BASE;
    const char *p = req->url + strlen(base);
    size_t end = strcspn(p, "?");
    for (size_t i = 0; i <= index; i++) {
        if (*p != '/' || (size_t)(p - (req->url + strlen(base))) >= end)
            return NULL;
        p++;
        size_t seg = strcspn(p, "/?");
        if (i == index)
            return fuzz_pct_decode(p, seg, len);
        p += seg;
    }
    return NULL;
}

/* Number of path segments after the API base. */
static inline size_t fuzz_path_segments(const jp_jira_req_t *req)
{
    const char *base = req->api == JP_JIRA_API_SCIM    ? FUZZ_SCIM_BASE
                       : req->api == JP_JIRA_API_ADMIN ? FUZZ_ADMIN_BASE
                                                       : FUZZ_REST_BASE;
    const char *p = req->url + strlen(base);
    size_t n = 0, end = strcspn(p, "?");
    for (size_t i = 0; i < end; i++)
        n += p[i] == '/';
    return n;
}

#endif
