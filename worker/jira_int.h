/* Helpers shared by jira.c, jira_scim.c and jira_rest.c; not a public API.
 * Names carry the jp_jira__ prefix (double underscore: module-private). */
#ifndef JIRAPROV_JIRA_INT_H
#define JIRAPROV_JIRA_INT_H

#include "jiraprov/jira.h"

#include <stdbool.h>
#include <stddef.h>

/* ---- growable string ------------------------------------------------------ */

typedef struct jp_jira__buf {
    char *p; /* NUL-terminated once anything was added */
    size_t len, cap;
    bool oom;
} jp_jira__buf_t;

void jp_jira__buf_addn(jp_jira__buf_t *b, const char *s, size_t n);
void jp_jira__buf_add(jp_jira__buf_t *b, const char *s);
void jp_jira__buf_free(jp_jira__buf_t *b);

/* ---- text checks ----------------------------------------------------------- */

#define JP_JIRA__NO_CONTROL 0x1u /* refuse C0, DEL and C1 control characters */
#define JP_JIRA__NO_SPACE   0x2u /* refuse ASCII and Unicode whitespace */

typedef enum jp_jira__scan {
    JP_JIRA__SCAN_OK = 0,
    JP_JIRA__SCAN_BAD_UTF8,
    JP_JIRA__SCAN_CONTROL,
    JP_JIRA__SCAN_SPACE
} jp_jira__scan_t;

/* Scans s[0..len) as UTF-8. *chars gets the code point count (when OK),
 * *at the byte offset of the first problem. */
jp_jira__scan_t jp_jira__scan(const char *s, size_t len, unsigned flags, size_t *chars, size_t *at);

/* Appends s[0..n) to dst (size dsize, *pos bytes used) as clean one-line
 * text: control characters become spaces, bytes that are not valid UTF-8
 * become '?', and nothing is cut inside a character. Returns how many
 * bytes of s were consumed (less than n when dst filled up). */
size_t jp_jira__append_clean(char *dst, size_t dsize, size_t *pos, const char *s, size_t n);

/* s[0..n) as a quoted string (JQL values, SCIM filter values): wrapped in double quotes, with
 * `"` and `\` escaped by a backslash. _size is how many bytes that takes with the NUL; _quote
 * writes it to out, which has at least that many. */
size_t jp_jira__quoted_size(const char *s, size_t n);
void jp_jira__quote(const char *s, size_t n, char *out);

/* ---- request builder ------------------------------------------------------- */

#define JP_JIRA__IDEMPOTENT 0x1u
#define JP_JIRA__READ       0x2u /* not a mutation even if the method is POST */

/* Builders record the first error and ignore later calls, so that a
 * builder reads as a straight list of steps ending in _finish(). */
typedef struct jp_jira__bld {
    const jp_site_t *site;
    jp_jira_api_t api;
    jp_http_method_t method;
    const char *endpoint_class;
    jp_jira__buf_t url;
    char *errstr;
    size_t errstr_size;
    jp_err_t err;
    bool query_started;
} jp_jira__bld_t;

/* Checks the site's base URL and the API's credentials, starts the URL. */
void jp_jira__bld_init(jp_jira__bld_t *b, const jp_site_t *site, jp_jira_api_t api,
                       jp_http_method_t method, const char *endpoint_class, char *errstr,
                       size_t errstr_size);
bool jp_jira__bld_ok(const jp_jira__bld_t *b);
/* Records err (if none yet) with a formatted message; returns false. */
bool jp_jira__bld_fail(jp_jira__bld_t *b, jp_err_t err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A literal path part (trusted, from this module). */
void jp_jira__bld_path(jp_jira__bld_t *b, const char *literal);
/* One escaped path segment; empty values are refused (`what` names it). */
void jp_jira__bld_seg(jp_jira__bld_t *b, const char *what, const char *value);
/* ?name=value or &name=value, value escaped. */
void jp_jira__bld_query(jp_jira__bld_t *b, const char *name, const char *value);
void jp_jira__bld_query_long(jp_jira__bld_t *b, const char *name, long value);
/* Adds headers and the body (stolen; may be NULL), checks the URL length,
 * and hands the request out. Frees everything on failure. */
jp_err_t jp_jira__bld_finish(jp_jira__bld_t *b, json_t *body, const char *issue_key, unsigned flags,
                             jp_jira_req_t **out);

/* Input checks that fail the builder with a sentence naming `what`.
 * need_text: non-NULL, non-empty, valid UTF-8, at most max_chars code
 * points (0 = no limit), and not breaking `flags`. */
bool jp_jira__need_text(jp_jira__bld_t *b, const char *what, const char *value, size_t max_chars,
                        unsigned flags);
bool jp_jira__need_account_id(jp_jira__bld_t *b, const char *what, const char *value);
bool jp_jira__need_issue_key(jp_jira__bld_t *b, const char *value);
bool jp_jira__need_project_key(jp_jira__bld_t *b, const char *value);
bool jp_jira__need_alloc(jp_jira__bld_t *b, const void *p);

/* ---- response parsing ------------------------------------------------------ */

/* Status check (2xx, else the error message) and JSON parse of the body. */
jp_err_t jp_jira__load(jp_jira_api_t api, long status, const char *body, size_t body_len,
                       json_t **root, char *errstr, size_t errstr_size);
/* JP_ERR_INVALID with "response: <path>: ..." */
jp_err_t jp_jira__bad(char *errstr, size_t errstr_size, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
const char *jp_jira__kind(const json_t *v);
/* Copies obj[key]: a string is duplicated; absent or null gives NULL (an
 * error when required); any other type is an error naming path.key. */
jp_err_t jp_jira__get_str(const json_t *obj, const char *key, bool required, const char *path,
                          char **out, char *errstr, size_t errstr_size);
/* A boolean member; absent or null gives dflt. */
jp_err_t jp_jira__get_bool(const json_t *obj, const char *key, bool dflt, const char *path,
                           bool *out, bool *present, char *errstr, size_t errstr_size);
/* A non-negative integer member; absent or null gives dflt. */
jp_err_t jp_jira__get_count(const json_t *obj, const char *key, int64_t dflt, const char *path,
                            int64_t *out, char *errstr, size_t errstr_size);
/* Pointer array helpers for string lists. */
void jp_jira__strv_free(char **v, size_t n);
bool jp_jira__strv_has(char *const *v, size_t n, const char *s);

#endif
