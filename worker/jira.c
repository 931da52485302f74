/* jira.c - what every Jira request and response shares: the request object,
 * URL building with escaping, credentials, input and text checks, JSON
 * helpers for parsers, the error body forms, and JQL quoting. The SCIM and
 * admin calls live in jira_scim.c, the REST v3 calls in jira_rest.c. */
#include "jira_int.h"
#include "jiraprov/utf8.h"

#include "jiraprov/json.h"

#include <openssl/evp.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- growable string ------------------------------------------------------ */

void jp_jira__buf_addn(jp_jira__buf_t *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void jp_jira__buf_add(jp_jira__buf_t *b, const char *s)
{
    jp_jira__buf_addn(b, s, strlen(s));
}

void jp_jira__buf_free(jp_jira__buf_t *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

/* ---- UTF-8 ----------------------------------------------------------------- */

static bool is_control(uint32_t cp)
{
    return cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F);
}

static bool is_space(uint32_t cp)
{
    return cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000;
}

jp_jira__scan_t jp_jira__scan(const char *s, size_t len, unsigned flags, size_t *chars, size_t *at)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n = 0;
    for (size_t i = 0; i < len; n++) {
        uint32_t cp;
        size_t k = jp_utf8_decode(u + i, len - i, &cp);
        *at = i;
        if (k == 0)
            return JP_JIRA__SCAN_BAD_UTF8;
        if ((flags & JP_JIRA__NO_CONTROL) && is_control(cp))
            return JP_JIRA__SCAN_CONTROL;
        if ((flags & JP_JIRA__NO_SPACE) && is_space(cp))
            return JP_JIRA__SCAN_SPACE;
        i += k;
    }
    *chars = n;
    *at = len;
    return JP_JIRA__SCAN_OK;
}

size_t jp_jira__append_clean(char *dst, size_t dsize, size_t *pos, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    if (dsize == 0)
        return 0;
    while (i < n) {
        uint32_t cp;
        size_t k = jp_utf8_decode(u + i, n - i, &cp);
        const char *piece = s + i;
        size_t plen = k;
        if (k == 0) {
            piece = "?", plen = 1, k = 1;
        } else if (is_control(cp)) {
            piece = " ", plen = 1;
        }
        if (*pos + plen + 1 > dsize)
            break;
        memcpy(dst + *pos, piece, plen);
        *pos += plen;
        i += k;
    }
    dst[*pos] = '\0';
    return i;
}

/* ---- the request object ---------------------------------------------------- */

const char *jp_jira_api_name(jp_jira_api_t api)
{
    switch (api) {
    case JP_JIRA_API_SCIM:
        return "scim";
    case JP_JIRA_API_ADMIN:
        return "admin";
    case JP_JIRA_API_REST:
        return "rest";
    }
    return NULL;
}

void jp_jira_req_destroy(jp_jira_req_t *req)
{
    if (!req)
        return;
    free(req->url);
    /* The Authorization header holds a credential: wipe it before freeing. */
    for (size_t i = 0; i < req->nheaders; i++) {
        if (req->headers[i])
            OPENSSL_cleanse(req->headers[i], strlen(req->headers[i]));
        free(req->headers[i]);
    }
    free(req->headers);
    free(req->body);
    free(req->issue_key);
    free(req);
}

void jp_jira_req_http(const jp_jira_req_t *req, jp_http_req_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!req)
        return;
    out->method = req->method;
    out->url = req->url;
    out->headers = (const char *const *)req->headers;
    out->nheaders = req->nheaders;
    out->body = req->body;
    out->body_len = req->body_len;
}

/* ---- request builder ------------------------------------------------------- */

bool jp_jira__bld_ok(const jp_jira__bld_t *b)
{
    return b->err == JP_OK;
}

bool jp_jira__bld_fail(jp_jira__bld_t *b, jp_err_t err, const char *fmt, ...)
{
    if (b->err != JP_OK)
        return false;
    b->err = err;
    if (b->errstr && b->errstr_size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(b->errstr, b->errstr_size, fmt, ap);
        va_end(ap);
    }
    return false;
}

bool jp_jira__need_alloc(jp_jira__bld_t *b, const void *p)
{
    return p ? true : jp_jira__bld_fail(b, JP_ERR_NOMEM, "out of memory building a Jira request");
}

/* A base URL from the config: http(s), printable ASCII, no query or
 * fragment. A trailing '/' is dropped. */
static bool base_url(jp_jira__bld_t *b, const char *what, const char *url)
{
    const char *site = b->site->name ? b->site->name : "?";
    if (!url || (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0))
        return jp_jira__bld_fail(b, JP_ERR_INVALID, "site %s: %s must be an http(s) URL", site,
                                 what);
    size_t n = strlen(url);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c <= 0x20 || c >= 0x7F || c == '?' || c == '#')
            return jp_jira__bld_fail(b, JP_ERR_INVALID,
                                     "site %s: %s holds a character not allowed in a base URL",
                                     site, what);
    }
    while (n > 0 && url[n - 1] == '/')
        n--;
    jp_jira__buf_addn(&b->url, url, n);
    return true;
}

/* A credential must be non-empty and fit in a header (no CR, LF, ...). Its
 * value is never quoted in the message. */
static bool credential(jp_jira__bld_t *b, const char *what, const char *value)
{
    const char *site = b->site->name ? b->site->name : "?";
    if (!value || !*value)
        return jp_jira__bld_fail(b, JP_ERR_INVALID, "site %s: %s is not configured", site, what);
    if (!jp_http_header_ok(value))
        return jp_jira__bld_fail(b, JP_ERR_INVALID,
                                 "site %s: %s holds a control character (CR, LF, ...)", site, what);
    return true;
}

void jp_jira__bld_init(jp_jira__bld_t *b, const jp_site_t *site, jp_jira_api_t api,
                       jp_http_method_t method, const char *endpoint_class, char *errstr,
                       size_t errstr_size)
{
    memset(b, 0, sizeof(*b));
    b->site = site;
    b->api = api;
    b->method = method;
    b->endpoint_class = endpoint_class;
    b->errstr = errstr;
    b->errstr_size = errstr_size;
    if (errstr && errstr_size)
        errstr[0] = '\0';
    if (!site) {
        jp_jira__bld_fail(b, JP_ERR_INVALID, "no site given");
        return;
    }
    switch (api) {
    case JP_JIRA_API_SCIM:
        if (base_url(b, "scim_url", site->scim_url))
            credential(b, "scim_api_key", site->scim_api_key);
        break;
    case JP_JIRA_API_ADMIN:
        if (base_url(b, "admin_url", site->admin_url))
            credential(b, "org_api_key (needed by the admin lifecycle API)", site->org_api_key);
        break;
    case JP_JIRA_API_REST:
        if (base_url(b, "jira_url", site->jira_url) && credential(b, "email", site->email) &&
            credential(b, "api_token", site->api_token) && strchr(site->email, ':'))
            jp_jira__bld_fail(b, JP_ERR_INVALID,
                              "site %s: email must not contain ':' (Basic authentication)",
                              site->name ? site->name : "?");
        if (jp_jira__bld_ok(b))
            jp_jira__buf_add(&b->url, "/rest/api/3");
        break;
    default:
        jp_jira__bld_fail(b, JP_ERR_INVALID, "unknown API family %d", (int)api);
    }
}

void jp_jira__bld_path(jp_jira__bld_t *b, const char *literal)
{
    if (jp_jira__bld_ok(b))
        jp_jira__buf_add(&b->url, literal);
}

/* Appends value percent-encoded. */
static void add_escaped(jp_jira__bld_t *b, const char *value)
{
    size_t n = strlen(value);
    if (n > JP_JIRA_URL_MAX) {
        jp_jira__bld_fail(b, JP_ERR_TOO_LARGE,
                          "a URL value of %zu bytes exceeds the %d-byte URL limit", n,
                          JP_JIRA_URL_MAX);
        return;
    }
    size_t cap = 3 * n + 1;
    char *tmp = malloc(cap);
    if (!tmp) {
        jp_jira__need_alloc(b, NULL);
        return;
    }
    ssize_t w = jp_http_escape(value, tmp, cap);
    if (w < 0)
        jp_jira__bld_fail(b, JP_ERR_INTERNAL, "URL escaping overflowed its buffer");
    else
        jp_jira__buf_addn(&b->url, tmp, (size_t)w);
    free(tmp);
}

void jp_jira__bld_seg(jp_jira__bld_t *b, const char *what, const char *value)
{
    if (!jp_jira__bld_ok(b))
        return;
    if (!value || !*value) {
        jp_jira__bld_fail(b, JP_ERR_INVALID, "%s must not be empty", what);
        return;
    }
    jp_jira__buf_add(&b->url, "/");
    add_escaped(b, value);
}

void jp_jira__bld_query(jp_jira__bld_t *b, const char *name, const char *value)
{
    if (!jp_jira__bld_ok(b))
        return;
    jp_jira__buf_add(&b->url, b->query_started ? "&" : "?");
    b->query_started = true;
    jp_jira__buf_add(&b->url, name);
    jp_jira__buf_add(&b->url, "=");
    add_escaped(b, value);
}

void jp_jira__bld_query_long(jp_jira__bld_t *b, const char *name, long value)
{
    char num[32];
    snprintf(num, sizeof(num), "%ld", value);
    jp_jira__bld_query(b, name, num);
}

static char *header_line(const char *name, const char *value)
{
    size_t n = strlen(name) + 2 + strlen(value) + 1;
    char *h = malloc(n);
    if (h)
        snprintf(h, n, "%s: %s", name, value);
    return h;
}

/* "Basic " + base64(email ":" api_token). */
static char *basic_auth(const char *user, const char *secret)
{
    size_t ul = strlen(user), sl = strlen(secret), n = ul + 1 + sl;
    unsigned char *raw = malloc(n);
    char *out = malloc(6 + 4 * ((n + 2) / 3) + 1);
    if (!raw || !out) {
        free(raw);
        free(out);
        return NULL;
    }
    memcpy(raw, user, ul);
    raw[ul] = ':';
    memcpy(raw + ul + 1, secret, sl);
    memcpy(out, "Basic ", 6);
    EVP_EncodeBlock((unsigned char *)out + 6, raw, (int)n);
    OPENSSL_cleanse(raw, n);
    free(raw);
    return out;
}

static char *auth_value(const jp_jira__bld_t *b)
{
    const char *key = b->api == JP_JIRA_API_SCIM ? b->site->scim_api_key : b->site->org_api_key;
    if (b->api == JP_JIRA_API_REST)
        return basic_auth(b->site->email, b->site->api_token);
    size_t n = 7 + strlen(key) + 1;
    char *v = malloc(n);
    if (v)
        snprintf(v, n, "Bearer %s", key);
    return v;
}

static bool add_headers(jp_jira__bld_t *b, jp_jira_req_t *req)
{
    const char *ct = b->api == JP_JIRA_API_SCIM ? "application/scim+json" : "application/json";
    req->headers = calloc(3, sizeof(char *));
    if (!jp_jira__need_alloc(b, req->headers))
        return false;
    char *auth = auth_value(b);
    if (!jp_jira__need_alloc(b, auth))
        return false;
    req->headers[req->nheaders++] = header_line("Authorization", auth);
    size_t alen = strlen(auth);
    OPENSSL_cleanse(auth, alen);
    free(auth);
    req->headers[req->nheaders++] = header_line("Accept", ct);
    if (req->body)
        req->headers[req->nheaders++] = header_line("Content-Type", ct);
    for (size_t i = 0; i < req->nheaders; i++)
        if (!jp_jira__need_alloc(b, req->headers[i]))
            return false;
    return true;
}

jp_err_t jp_jira__bld_finish(jp_jira__bld_t *b, json_t *body, const char *issue_key, unsigned flags,
                             jp_jira_req_t **out)
{
    jp_jira_req_t *req = NULL;
    if (!out)
        jp_jira__bld_fail(b, JP_ERR_INVALID, "no place for the request (out is NULL)");
    else
        *out = NULL;
    if (jp_jira__bld_ok(b) && b->url.oom)
        jp_jira__bld_fail(b, JP_ERR_NOMEM, "out of memory building a Jira request");
    if (jp_jira__bld_ok(b) && b->url.len > JP_JIRA_URL_MAX)
        jp_jira__bld_fail(b, JP_ERR_TOO_LARGE,
                          "the request URL would be %zu bytes, above the %d-byte limit", b->url.len,
                          JP_JIRA_URL_MAX);
    if (jp_jira__bld_ok(b))
        req = calloc(1, sizeof(*req));
    if (jp_jira__bld_ok(b) && jp_jira__need_alloc(b, req)) {
        req->api = b->api;
        req->method = b->method;
        req->endpoint_class = b->endpoint_class;
        req->url = b->url.p;
        b->url.p = NULL;
        req->idempotent = (flags & JP_JIRA__IDEMPOTENT) != 0;
        req->mutation = b->method != JP_HTTP_GET && !(flags & JP_JIRA__READ);
        if (body) {
            size_t len = 0;
            req->body = jp_json_dumps(body, &len);
            if (jp_jira__need_alloc(b, req->body))
                req->body_len = len;
        }
        if (jp_jira__bld_ok(b) && issue_key) {
            req->issue_key = strdup(issue_key);
            jp_jira__need_alloc(b, req->issue_key);
        }
        if (jp_jira__bld_ok(b))
            add_headers(b, req);
    }
    json_decref(body);
    jp_jira__buf_free(&b->url);
    if (!jp_jira__bld_ok(b)) {
        jp_jira_req_destroy(req);
        return b->err;
    }
    *out = req;
    return JP_OK;
}

/* ---- input checks ---------------------------------------------------------- */

bool jp_jira__need_text(jp_jira__bld_t *b, const char *what, const char *value, size_t max_chars,
                        unsigned flags)
{
    if (!jp_jira__bld_ok(b))
        return false;
    if (!value || !*value)
        return jp_jira__bld_fail(b, JP_ERR_INVALID, "%s must not be empty", what);
    size_t chars = 0, at = 0;
    switch (jp_jira__scan(value, strlen(value), flags, &chars, &at)) {
    case JP_JIRA__SCAN_BAD_UTF8:
        return jp_jira__bld_fail(b, JP_ERR_INVALID, "%s is not valid UTF-8 (at byte %zu)", what,
                                 at);
    case JP_JIRA__SCAN_CONTROL:
        return jp_jira__bld_fail(b, JP_ERR_INVALID,
                                 "%s must not contain control characters (at byte %zu)", what, at);
    case JP_JIRA__SCAN_SPACE:
        return jp_jira__bld_fail(b, JP_ERR_INVALID, "%s must not contain whitespace (at byte %zu)",
                                 what, at);
    case JP_JIRA__SCAN_OK:
        break;
    }
    if (max_chars && chars > max_chars)
        return jp_jira__bld_fail(b, JP_ERR_INVALID, "%s has %zu characters, the maximum is %zu",
                                 what, chars, max_chars);
    return true;
}

/* For messages: the value cleaned and cut, in quotes. */
static const char *shown(char *buf, size_t size, const char *value)
{
    size_t pos = 0;
    if (size < 8)
        return "";
    buf[pos++] = '"';
    size_t used = jp_jira__append_clean(buf, size - 4, &pos, value, strlen(value));
    if (used < strlen(value)) {
        memcpy(buf + pos, "...", 3);
        pos += 3;
    }
    buf[pos++] = '"';
    buf[pos] = '\0';
    return buf;
}

/* Atlassian account ids: [a-zA-Z0-9_|:-]{1,128} (user management spec). */
bool jp_jira__need_account_id(jp_jira__bld_t *b, const char *what, const char *value)
{
    if (!jp_jira__bld_ok(b))
        return false;
    if (!value || !*value)
        return jp_jira__bld_fail(b, JP_ERR_INVALID, "%s must not be empty", what);
    size_t n = strlen(value);
    size_t ok = strspn(value, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_|:-");
    if (n > 128 || ok != n) {
        char q[64];
        return jp_jira__bld_fail(b, JP_ERR_INVALID,
                                 "%s %s is not an Atlassian account id ([A-Za-z0-9_|:-]{1,128})",
                                 what, shown(q, sizeof(q), value));
    }
    return true;
}

/* `what` ("issue key") checked by `valid`; `pattern` is how the message describes a good one. */
static bool need_key(jp_jira__bld_t *b, const char *value, const char *what,
                     bool (*valid)(const char *), const char *pattern)
{
    if (!jp_jira__bld_ok(b))
        return false;
    if (!value)
        return jp_jira__bld_fail(b, JP_ERR_INVALID, "%s must not be empty", what);
    if (!valid(value)) {
        char q[64];
        return jp_jira__bld_fail(b, JP_ERR_INVALID,
                                 "%s %s does not match the Jira Cloud pattern %s", what,
                                 shown(q, sizeof(q), value), pattern);
    }
    return true;
}

bool jp_jira__need_issue_key(jp_jira__bld_t *b, const char *value)
{
    return need_key(b, value, "issue key", jp_event_valid_issue_key,
                    "PROJECT-123 ([A-Z][A-Z0-9]{1,9}-[1-9][0-9]*)");
}

bool jp_jira__need_project_key(jp_jira__bld_t *b, const char *value)
{
    return need_key(b, value, "project key", jp_event_valid_project_key, "[A-Z][A-Z0-9]{1,9}");
}

/* ---- quoting ---------------------------------------------------------------- */

size_t jp_jira__quoted_size(const char *s, size_t n)
{
    size_t need = n + 3; /* two quotes and the NUL */
    for (size_t i = 0; i < n; i++)
        need += s[i] == '"' || s[i] == '\\';
    return need;
}

void jp_jira__quote(const char *s, size_t n, char *out)
{
    size_t o = 0;
    out[o++] = '"';
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\')
            out[o++] = '\\';
        out[o++] = s[i];
    }
    out[o++] = '"';
    out[o] = '\0';
}

/* ---- JQL ------------------------------------------------------------------- */

jp_err_t jp_jira_jql_quote(const char *value, char *out, size_t out_size, char *errstr,
                           size_t errstr_size)
{
    if (out && out_size)
        out[0] = '\0';
    if (!value)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "JQL value is NULL");
    size_t len = strlen(value), chars, at;
    if (len > JP_JIRA_JQL_VALUE_MAX)
        return jp_err_set(errstr, errstr_size, JP_ERR_TOO_LARGE,
                          "JQL value has %zu bytes, the maximum is %d", len, JP_JIRA_JQL_VALUE_MAX);
    switch (jp_jira__scan(value, len, JP_JIRA__NO_CONTROL, &chars, &at)) {
    case JP_JIRA__SCAN_BAD_UTF8:
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "JQL value is not valid UTF-8 (at byte %zu)", at);
    case JP_JIRA__SCAN_CONTROL:
    case JP_JIRA__SCAN_SPACE:
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "JQL value contains a control character (at byte %zu)", at);
    case JP_JIRA__SCAN_OK:
        break;
    }
    size_t need = jp_jira__quoted_size(value, len);
    if (!out || out_size < need)
        return jp_err_set(errstr, errstr_size, JP_ERR_TOO_LARGE,
                          "JQL value needs %zu bytes once quoted, the buffer has %zu", need,
                          out ? out_size : 0);
    jp_jira__quote(value, len, out);
    return JP_OK;
}

/* ---- error bodies ---------------------------------------------------------- */

static void set_field(char *dst, size_t size, const char *s)
{
    size_t pos = 0;
    dst[0] = '\0';
    if (s)
        jp_jira__append_clean(dst, size, &pos, s, strlen(s));
}

/* Appends "; " (when something is there already) and s to the message. */
static void add_message(jp_jira_error_t *e, const char *prefix, const char *s)
{
    size_t pos = strlen(e->message);
    if (!s || !*s)
        return;
    if (pos)
        jp_jira__append_clean(e->message, sizeof(e->message), &pos, "; ", 2);
    if (prefix) {
        jp_jira__append_clean(e->message, sizeof(e->message), &pos, prefix, strlen(prefix));
        jp_jira__append_clean(e->message, sizeof(e->message), &pos, ": ", 2);
    }
    jp_jira__append_clean(e->message, sizeof(e->message), &pos, s, strlen(s));
}

static const char *jstr(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

static bool has_schema(const json_t *root, const char *urn)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(root, "schemas"), i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), urn) == 0)
            return true;
    }
    return false;
}

static bool form_scim(const json_t *root, jp_jira_error_t *e)
{
    if (!json_is_object(root))
        return false;
    bool urn = has_schema(root, "urn:ietf:params:scim:api:messages:2.0:Error");
    if (!urn && !jstr(root, "scimType") && !jstr(root, "detail"))
        return false;
    e->form = JP_JIRA_EFORM_SCIM;
    set_field(e->code, sizeof(e->code), jstr(root, "scimType"));
    add_message(e, NULL, jstr(root, "detail"));
    return true;
}

static bool form_gateway(const json_t *root, jp_jira_error_t *e)
{
    if (!json_is_object(root) || !jstr(root, "error"))
        return false;
    e->form = JP_JIRA_EFORM_GATEWAY;
    add_message(e, NULL, jstr(root, "error"));
    add_message(e, NULL, jstr(root, "error_description"));
    set_field(e->trace_id, sizeof(e->trace_id), jstr(root, "traceId"));
    return true;
}

static bool form_key(const json_t *root, jp_jira_error_t *e)
{
    if (!json_is_object(root) || !jstr(root, "key") || json_object_get(root, "errorMessages"))
        return false;
    e->form = JP_JIRA_EFORM_KEY;
    set_field(e->code, sizeof(e->code), jstr(root, "key"));
    add_message(e, NULL, jstr(root, "message"));
    /* forbidden.action: context.reason.key; conflict.lifecycleErrors:
     * context.message and context.errorCodes[{code,message}]. */
    json_t *ctx = json_object_get(root, "context");
    add_message(e, NULL, jstr(ctx, "message"));
    add_message(e, "reason", jstr(json_object_get(ctx, "reason"), "key"));
    size_t i;
    json_t *item;
    json_array_foreach(json_object_get(ctx, "errorCodes"), i, item)
    {
        add_message(e, jstr(item, "code"), jstr(item, "message"));
    }
    return true;
}

/* "code" as a string or an integer. */
static bool code_text(const json_t *v, char *buf, size_t size)
{
    if (json_is_string(v)) {
        set_field(buf, size, json_string_value(v));
        return true;
    }
    if (json_is_integer(v)) {
        snprintf(buf, size, "%lld", (long long)json_integer_value(v));
        return true;
    }
    return false;
}

static bool form_code(const json_t *root, jp_jira_error_t *e)
{
    if (!json_is_object(root) || !jstr(root, "message"))
        return false;
    char code[64];
    if (!code_text(json_object_get(root, "code"), code, sizeof(code)))
        return false;
    e->form = JP_JIRA_EFORM_CODE;
    memcpy(e->code, code, sizeof(code));
    add_message(e, NULL, jstr(root, "message"));
    return true;
}

/* [{"code","message","link"}] (lifecycle) or {"errors":[{"code","title",
 * "detail"}]} (organizations API). */
static bool form_list(const json_t *root, jp_jira_error_t *e)
{
    const json_t *list = json_is_array(root) ? root : json_object_get(root, "errors");
    if (!json_is_array(list) || json_array_size(list) == 0)
        return false;
    size_t i;
    json_t *item;
    bool any = false;
    json_array_foreach(list, i, item)
    {
        char code[64] = "";
        if (!json_is_object(item))
            continue;
        bool has_code = code_text(json_object_get(item, "code"), code, sizeof(code));
        const char *msg = jstr(item, "message");
        if (!msg)
            msg = jstr(item, "detail");
        if (!msg)
            msg = jstr(item, "title");
        if (!has_code && !msg)
            continue;
        if (!any)
            memcpy(e->code, code, sizeof(code));
        add_message(e, NULL, msg ? msg : code);
        any = true;
    }
    if (any)
        e->form = JP_JIRA_EFORM_LIST;
    return any;
}

static bool form_jira(const json_t *root, jp_jira_error_t *e)
{
    const json_t *msgs = json_object_get(root, "errorMessages");
    const json_t *errs = json_object_get(root, "errors");
    if (!json_is_object(root) || !(json_is_array(msgs) || json_is_object(errs)))
        return false;
    e->form = JP_JIRA_EFORM_JIRA;
    size_t i;
    json_t *v;
    json_array_foreach(msgs, i, v)
    {
        add_message(e, NULL, json_string_value(v));
    }
    const char *field;
    json_object_foreach((json_t *)errs, field, v)
    {
        add_message(e, field, json_string_value(v));
    }
    return true;
}

typedef bool (*form_fn)(const json_t *, jp_jira_error_t *);

void jp_jira_parse_error(jp_jira_api_t api, long status, const char *body, size_t body_len,
                         jp_jira_error_t *out)
{
    static const form_fn scim[] = {form_scim, form_gateway, form_code,
                                   form_jira, form_key,     form_list};
    static const form_fn admin[] = {form_key,     form_list, form_code,
                                    form_gateway, form_scim, form_jira};
    static const form_fn rest[] = {form_jira, form_gateway, form_code,
                                   form_scim, form_key,     form_list};
    memset(out, 0, sizeof(*out));
    out->status = status;
    if (!body || body_len == 0)
        return;
    json_t *root = json_loadb(body, body_len, JSON_DECODE_ANY, NULL);
    if (!root) {
        /* Plain text or HTML from a proxy: keep its start, cleaned. */
        size_t skip = 0, pos = 0;
        while (skip < body_len && body[skip] && strchr(" \t\r\n", body[skip]))
            skip++;
        size_t n = body_len - skip < 200 ? body_len - skip : 200;
        jp_jira__append_clean(out->message, sizeof(out->message), &pos, body + skip, n);
        while (pos > 0 && out->message[pos - 1] == ' ')
            out->message[--pos] = '\0';
        out->form = pos ? JP_JIRA_EFORM_TEXT : JP_JIRA_EFORM_NONE;
        return;
    }
    const form_fn *order = api == JP_JIRA_API_SCIM ? scim : api == JP_JIRA_API_ADMIN ? admin : rest;
    for (size_t i = 0; i < 6; i++)
        if (order[i](root, out))
            break;
    json_decref(root);
}

/* Cuts a trailing partial UTF-8 character left by truncation. */
static size_t trim_partial_utf8(char *s, size_t len)
{
    size_t i = len;
    while (i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
        i--;
    if (i == 0)
        return len;
    unsigned char lead = (unsigned char)s[i - 1];
    size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    if (len - (i - 1) < want) {
        s[i - 1] = '\0';
        return i - 1;
    }
    return len;
}

size_t jp_jira_error_message(jp_jira_api_t api, long status, const char *body, size_t body_len,
                             char *out, size_t out_size)
{
    if (!out || out_size == 0)
        return 0;
    jp_jira_error_t e;
    jp_jira_parse_error(api, status, body, body_len, &e);
    int n;
    if (e.form == JP_JIRA_EFORM_NONE)
        n = snprintf(out, out_size, "HTTP %ld %s", status,
                     body_len ? "with an unrecognised body" : "with an empty body");
    else
        n = snprintf(out, out_size, "HTTP %ld%s%s%s%s%s%s%s%s", status, e.code[0] ? " (" : "",
                     e.code, e.code[0] ? ")" : "", e.message[0] ? ": " : "", e.message,
                     e.trace_id[0] ? " [traceId " : "", e.trace_id, e.trace_id[0] ? "]" : "");
    if (n < 0) {
        out[0] = '\0';
        return 0;
    }
    size_t len = (size_t)n;
    if (len >= out_size)
        len = trim_partial_utf8(out, out_size - 1);
    return len;
}

static jp_err_t status_err(long status)
{
    return status == 404 ? JP_ERR_NOT_FOUND : status == 409 ? JP_ERR_CONFLICT : JP_ERR_HTTP;
}

jp_err_t jp_jira_check_status(jp_jira_api_t api, long status, const char *body, size_t body_len,
                              char *errstr, size_t errstr_size)
{
    if (status >= 200 && status <= 299)
        return JP_OK;
    if (errstr && errstr_size)
        jp_jira_error_message(api, status, body, body_len, errstr, errstr_size);
    return status_err(status);
}

/* ---- response parsing ------------------------------------------------------ */

const char *jp_jira__kind(const json_t *v)
{
    if (!v)
        return "nothing";
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "nothing";
}

jp_err_t jp_jira__bad(char *errstr, size_t errstr_size, const char *path, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (path && *path)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "response: %s: %s", path, msg);
    return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "response: %s", msg);
}

jp_err_t jp_jira__load(jp_jira_api_t api, long status, const char *body, size_t body_len,
                       json_t **root, char *errstr, size_t errstr_size)
{
    *root = NULL;
    jp_err_t err = jp_jira_check_status(api, status, body, body_len, errstr, errstr_size);
    if (err != JP_OK)
        return err;
    if (!body || body_len == 0)
        return jp_jira__bad(errstr, errstr_size, NULL, "empty body where JSON was expected");
    json_error_t je;
    *root = json_loadb(body, body_len, 0, &je);
    if (!*root) {
        char text[128];
        size_t pos = 0;
        jp_jira__append_clean(text, sizeof(text), &pos, je.text, strlen(je.text));
        return jp_jira__bad(errstr, errstr_size, NULL, "not JSON (%s, at byte %d)", text,
                            je.position);
    }
    return JP_OK;
}

jp_err_t jp_jira__get_str(const json_t *obj, const char *key, bool required, const char *path,
                          char **out, char *errstr, size_t errstr_size)
{
    *out = NULL;
    json_t *v = json_object_get(obj, key);
    char where[160];
    snprintf(where, sizeof(where), "%s%s%s", path && *path ? path : "", path && *path ? "." : "",
             key);
    if (!v || json_is_null(v)) {
        if (required)
            return jp_jira__bad(errstr, errstr_size, where, "missing");
        return JP_OK;
    }
    if (!json_is_string(v))
        return jp_jira__bad(errstr, errstr_size, where, "expected a string, got %s",
                            jp_jira__kind(v));
    *out = strdup(json_string_value(v));
    if (!*out)
        return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory parsing a response");
    return JP_OK;
}

jp_err_t jp_jira__get_bool(const json_t *obj, const char *key, bool dflt, const char *path,
                           bool *out, bool *present, char *errstr, size_t errstr_size)
{
    json_t *v = json_object_get(obj, key);
    *out = dflt;
    if (present)
        *present = false;
    if (!v || json_is_null(v))
        return JP_OK;
    if (!json_is_boolean(v)) {
        char where[160];
        snprintf(where, sizeof(where), "%s%s%s", path && *path ? path : "",
                 path && *path ? "." : "", key);
        return jp_jira__bad(errstr, errstr_size, where, "expected a boolean, got %s",
                            jp_jira__kind(v));
    }
    *out = json_is_true(v);
    if (present)
        *present = true;
    return JP_OK;
}

jp_err_t jp_jira__get_count(const json_t *obj, const char *key, int64_t dflt, const char *path,
                            int64_t *out, char *errstr, size_t errstr_size)
{
    json_t *v = json_object_get(obj, key);
    *out = dflt;
    if (!v || json_is_null(v))
        return JP_OK;
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        char where[160];
        snprintf(where, sizeof(where), "%s%s%s", path && *path ? path : "",
                 path && *path ? "." : "", key);
        return jp_jira__bad(errstr, errstr_size, where, "expected a non-negative integer, got %s",
                            json_is_integer(v) ? "a negative one" : jp_jira__kind(v));
    }
    *out = (int64_t)json_integer_value(v);
    return JP_OK;
}

void jp_jira__strv_free(char **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

bool jp_jira__strv_has(char *const *v, size_t n, const char *s)
{
    if (!s)
        return false;
    for (size_t i = 0; i < n; i++)
        if (v[i] && strcmp(v[i], s) == 0)
            return true;
    return false;
}
