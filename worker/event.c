/* The event contract: decode and validate IDHub's CloudEvents (see event.h).
 *
 * Validation walks the JSON in a fixed order and stops at the first problem,
 * so that the same bad event always gets the same dead-letter reason. Typed
 * fields point into the parsed JSON, which the event owns; nothing is copied
 * except the labels pointer array and a derived recon scope.
 *
 * String rules (documented here because the schemas can only approximate the
 * byte limits: JSON Schema counts characters, the decoder counts bytes):
 *  - every string is valid UTF-8 without NUL, C0 controls, DEL or C1
 *    controls (U+0080..U+009F); only issue descriptions may hold TAB/CR/LF;
 *  - every string is non-empty and has a byte limit (JP_EVENT_STRING_MAX
 *    unless event.h names another one); summary and labels are limited in
 *    characters, as Jira counts them;
 *  - a login is 1..256 bytes with no whitespace (ASCII or Unicode spaces:
 *    U+00A0, U+1680, U+2000..U+200A, U+2028, U+2029, U+202F, U+205F,
 *    U+3000) and no '/'; anything else is allowed, so emails and non-Latin
 *    logins work;
 *  - an email is local@domain: local part 1..64 bytes without '@' or
 *    whitespace, domain of at least two dot-separated ASCII labels
 *    [A-Za-z0-9-] (1..63 bytes, no leading or trailing '-'), 254 bytes at
 *    most in all. */
#include "jiraprov/event.h"
#include "jiraprov/utf8.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATH_SIZE  512 /* "data.entitlement." + an escaped key */
#define QUOTE_SIZE 400 /* 64 source bytes escaped (at most 6x), quotes, "..." */
#define QUOTE_KEEP 64  /* source bytes shown before "..." */
#define TIME_MAX   64

/* ---- names -------------------------------------------------------------- */

static const char *const type_names[JP_EVENT__COUNT] = {
    "account.create",  "account.update",    "account.delete",     "account.enable",
    "account.disable", "entitlement.grant", "entitlement.revoke", "issue.create",
    "issue.update",    "issue.delete",      "issue.transition",   "recon.request",
};

static const char *const type_ce_names[JP_EVENT__COUNT] = {
    JP_EVENT_TYPE_PREFIX "account.create",     JP_EVENT_TYPE_PREFIX "account.update",
    JP_EVENT_TYPE_PREFIX "account.delete",     JP_EVENT_TYPE_PREFIX "account.enable",
    JP_EVENT_TYPE_PREFIX "account.disable",    JP_EVENT_TYPE_PREFIX "entitlement.grant",
    JP_EVENT_TYPE_PREFIX "entitlement.revoke", JP_EVENT_TYPE_PREFIX "issue.create",
    JP_EVENT_TYPE_PREFIX "issue.update",       JP_EVENT_TYPE_PREFIX "issue.delete",
    JP_EVENT_TYPE_PREFIX "issue.transition",   JP_EVENT_TYPE_PREFIX "recon.request",
};

static const char *const attr_names[JP_ATTR__COUNT] = {
    "login",    "email",      "firstName",        "lastName", "displayName", "nickName",
    "jobTitle", "department", "organizationName", "timezone", "externalId",
};

static const char *const recon_mode_names[] = {"full", "filtered", "incremental"};

const char *jp_event_type_name(jp_event_type_t t)
{
    return (unsigned)t < JP_EVENT__COUNT ? type_names[t] : NULL;
}

const char *jp_event_type_ce(jp_event_type_t t)
{
    return (unsigned)t < JP_EVENT__COUNT ? type_ce_names[t] : NULL;
}

int jp_event_type_parse(const char *name)
{
    if (!name)
        return -1;
    for (int i = 0; i < JP_EVENT__COUNT; i++)
        if (strcmp(name, type_names[i]) == 0 || strcmp(name, type_ce_names[i]) == 0)
            return i;
    return -1;
}

const char *jp_attr_name(jp_attr_t a)
{
    return (unsigned)a < JP_ATTR__COUNT ? attr_names[a] : NULL;
}

int jp_attr_parse(const char *name)
{
    if (!name)
        return -1;
    for (int i = 0; i < JP_ATTR__COUNT; i++)
        if (strcmp(name, attr_names[i]) == 0)
            return i;
    return -1;
}

const char *jp_recon_mode_name(jp_recon_mode_t m)
{
    return (unsigned)m <= JP_RECON_INCREMENTAL ? recon_mode_names[m] : NULL;
}

/* ---- character classes (ASCII only; independent of the locale) ---------- */

static bool is_digit(int ch)
{
    return ch >= '0' && ch <= '9';
}

static bool is_upper(int ch)
{
    return ch >= 'A' && ch <= 'Z';
}

static bool is_alpha(int ch)
{
    return is_upper(ch) || (ch >= 'a' && ch <= 'z');
}

static bool is_alnum(int ch)
{
    return is_alpha(ch) || is_digit(ch);
}

static bool is_lower_hex(int ch)
{
    return is_digit(ch) || (ch >= 'a' && ch <= 'f');
}

static bool is_hex(int ch)
{
    return is_lower_hex(ch) || (ch >= 'A' && ch <= 'F');
}

static bool is_control(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}

/* Unicode White_Space outside the control ranges. */
static bool is_space(uint32_t cp)
{
    return cp == 0x20 || cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) ||
           cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

/* ---- text scanning ------------------------------------------------------ */

enum {
    TX_MULTILINE = 1, /* TAB, CR and LF allowed */
    TX_CHARS = 2,     /* the limit counts code points, not bytes */
    TX_NO_SPACE = 4,  /* no whitespace at all */
};

typedef enum scan_result { SCAN_OK = 0, SCAN_BAD_UTF8, SCAN_CONTROL, SCAN_SPACE } scan_result_t;

typedef struct scan {
    size_t chars; /* code points */
    size_t at;    /* byte offset of the offending character */
    uint32_t cp;  /* the offending character */
} scan_t;

static scan_result_t scan_text(const char *str, size_t len, unsigned flags, scan_t *sc)
{
    const unsigned char *s = (const unsigned char *)str;
    sc->chars = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = jp_utf8_decode(s + i, len - i, &cp);
        sc->at = i;
        if (n == 0)
            return SCAN_BAD_UTF8;
        sc->cp = cp;
        bool ws_ok = (flags & TX_MULTILINE) && (cp == '\t' || cp == '\n' || cp == '\r');
        if (is_control(cp) && !ws_ok)
            return SCAN_CONTROL;
        if ((flags & TX_NO_SPACE) && (is_space(cp) || cp == '\t' || cp == '\n' || cp == '\r'))
            return SCAN_SPACE;
        i += n;
        sc->chars++;
    }
    return SCAN_OK;
}

/* ---- pattern checks on whole strings ------------------------------------ */

static bool login_ok(const char *s, size_t len)
{
    scan_t sc;
    if (len == 0 || len > JP_EVENT_LOGIN_MAX || memchr(s, '/', len))
        return false;
    return scan_text(s, len, TX_NO_SPACE, &sc) == SCAN_OK;
}

static bool domain_label_ok(const char *s, size_t len)
{
    if (len == 0 || len > 63 || s[0] == '-' || s[len - 1] == '-')
        return false;
    for (size_t i = 0; i < len; i++)
        if (!is_alnum((unsigned char)s[i]) && s[i] != '-')
            return false;
    return true;
}

static bool email_ok(const char *s, size_t len)
{
    scan_t sc;
    const char *at = memchr(s, '@', len);
    if (!at || len > JP_EVENT_EMAIL_MAX || scan_text(s, len, TX_NO_SPACE, &sc) != SCAN_OK)
        return false;
    size_t local = (size_t)(at - s);
    const char *dom = at + 1;
    size_t dlen = len - local - 1;
    if (local == 0 || local > 64 || dlen == 0 || memchr(dom, '@', dlen))
        return false;
    int labels = 0;
    for (size_t start = 0; start <= dlen; labels++) {
        const char *dot = memchr(dom + start, '.', dlen - start);
        size_t end = dot ? (size_t)(dot - dom) : dlen;
        if (!domain_label_ok(dom + start, end - start))
            return false;
        start = end + 1;
    }
    return labels >= 2;
}

static bool ref_ok(const char *s, size_t len)
{
    if (len == 0 || len > JP_EVENT_REF_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!is_alnum(ch) && !strchr("._:-", ch))
            return false;
    }
    return true;
}

static bool site_ok(const char *s, size_t len)
{
    if (len == 0 || len > JP_EVENT_SITE_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!is_digit(ch) && !(ch >= 'a' && ch <= 'z') && ch != '_' && ch != '-')
            return false;
    }
    return true;
}

/* Length of a Cloud project key at the start of s[0..len), or 0. */
static size_t project_prefix(const char *s, size_t len)
{
    if (len < 2 || !is_upper((unsigned char)s[0]))
        return 0;
    size_t n = 1;
    while (n < len && (is_upper((unsigned char)s[n]) || is_digit((unsigned char)s[n])))
        n++;
    return n <= 10 ? n : 0;
}

static bool project_ok(const char *s, size_t len)
{
    size_t n = project_prefix(s, len);
    return n >= 2 && n == len;
}

static bool issue_key_ok(const char *s, size_t len)
{
    size_t n = project_prefix(s, len);
    if (n < 2 || n + 1 >= len || s[n] != '-' || s[n + 1] == '0')
        return false;
    size_t digits = len - n - 1;
    if (digits > 18)
        return false;
    for (size_t i = n + 1; i < len; i++)
        if (!is_digit((unsigned char)s[i]))
            return false;
    return true;
}

static bool hex_run(const char *s, size_t n, bool *all_zero)
{
    *all_zero = true;
    for (size_t i = 0; i < n; i++) {
        if (!is_lower_hex((unsigned char)s[i]))
            return false;
        if (s[i] != '0')
            *all_zero = false;
    }
    return true;
}

static bool traceparent_ok(const char *s, size_t len)
{
    bool z_trace, z_parent, z_flags;
    if (len != 55 || memcmp(s, "00-", 3) != 0 || s[35] != '-' || s[52] != '-')
        return false;
    if (!hex_run(s + 3, 32, &z_trace) || !hex_run(s + 36, 16, &z_parent) ||
        !hex_run(s + 53, 2, &z_flags))
        return false;
    return !z_trace && !z_parent;
}

static bool uri_char(unsigned char ch)
{
    return ch && (is_alnum(ch) || strchr("-._~:/?#[]@!$&'()*+,;=", ch));
}

/* RFC 3986 URI-reference, checked for its characters, percent-escapes and
 * (when there is one) scheme; `absolute` also requires a scheme. */
static bool uri_ok(const char *s, size_t len, bool absolute)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%') {
            if (i + 2 >= len || !is_hex((unsigned char)s[i + 1]) ||
                !is_hex((unsigned char)s[i + 2]))
                return false;
            i += 2;
        } else if (!uri_char((unsigned char)s[i])) {
            return false;
        }
    }
    size_t stop = strcspn(s, ":/?#");
    if (stop >= len || s[stop] != ':')
        return !absolute;
    if (stop == 0 || !is_alpha((unsigned char)s[0]))
        return false;
    for (size_t i = 1; i < stop; i++)
        if (!is_alnum((unsigned char)s[i]) && !strchr("+.-", s[i]))
            return false;
    return true;
}

/* ---- RFC 3339 ----------------------------------------------------------- */

static bool read_digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!is_digit((unsigned char)s[i]))
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

static int days_in_month(int y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's method). */
static int64_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* Parses ".fff..." (1..9 digits) into milliseconds; returns the chars used. */
static size_t read_fraction(const char *p, int *ms)
{
    size_t n = 0;
    *ms = 0;
    while (is_digit((unsigned char)p[n])) {
        if (n < 3)
            *ms = *ms * 10 + (p[n] - '0');
        n++;
    }
    for (size_t i = n; i < 3; i++)
        *ms *= 10;
    return n >= 1 && n <= 9 ? n : 0;
}

/* Parses "Z" or "+hh:mm"/"-hh:mm" into minutes east of UTC. */
static size_t read_offset(const char *p, int *minutes)
{
    int oh, om;
    if (*p == 'Z' || *p == 'z') {
        *minutes = 0;
        return 1;
    }
    if ((*p != '+' && *p != '-') || !read_digits(p + 1, 2, &oh) || p[3] != ':' ||
        !read_digits(p + 4, 2, &om) || oh > 23 || om > 59)
        return 0;
    *minutes = (*p == '-' ? -1 : 1) * (oh * 60 + om);
    return 6;
}

bool jp_event_parse_time(const char *s, int64_t *ms_out)
{
    int y, mo, d, h, mi, sec, ms = 0, off;
    if (!s || !read_digits(s, 4, &y) || s[4] != '-' || !read_digits(s + 5, 2, &mo) || s[7] != '-' ||
        !read_digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') ||
        !read_digits(s + 11, 2, &h) || s[13] != ':' || !read_digits(s + 14, 2, &mi) ||
        s[16] != ':' || !read_digits(s + 17, 2, &sec))
        return false;
    const char *p = s + 19;
    if (*p == '.') {
        size_t n = read_fraction(p + 1, &ms);
        if (n == 0)
            return false;
        p += 1 + n;
    }
    size_t n = read_offset(p, &off);
    if (n == 0 || p[n] != '\0')
        return false;
    /* Leap seconds (:60) are refused: epoch time cannot represent them. */
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 59)
        return false;
    int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off * 60;
    if (ms_out)
        *ms_out = secs * 1000 + ms;
    return true;
}

/* ---- public validators -------------------------------------------------- */

bool jp_event_valid_login(const char *s)
{
    return s && login_ok(s, strlen(s));
}

bool jp_event_valid_site(const char *s)
{
    return s && site_ok(s, strlen(s));
}

bool jp_event_valid_project_key(const char *s)
{
    return s && project_ok(s, strlen(s));
}

bool jp_event_valid_issue_key(const char *s)
{
    return s && issue_key_ok(s, strlen(s));
}

bool jp_event_valid_ref(const char *s)
{
    return s && ref_ok(s, strlen(s));
}

bool jp_event_valid_traceparent(const char *s)
{
    return s && traceparent_ok(s, strlen(s));
}

/* ---- error text --------------------------------------------------------- */

typedef struct dctx {
    jp_event_t *ev;
    char *errstr;
    size_t errstr_size;
} dctx_t;

/* Characters a reader cannot see or that reorder what follows: Unicode
 * spaces other than U+0020, zero-width characters and bidirectional
 * controls. A reason shows them escaped, so that "got \"a b\"" cannot hide a
 * U+00A0 and a U+202E cannot turn the rest of a log line around. */
static bool is_invisible(uint32_t cp)
{
    return (cp != ' ' && is_space(cp)) || (cp >= 0x200b && cp <= 0x200f) ||
           (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0xfeff;
}

/* Escapes s[0..len) JSON-style into out, keeping at most QUOTE_KEEP source
 * bytes (cut on a character boundary) and marking a cut with "...". */
static void escape_into(char *out, size_t size, const char *s, size_t len)
{
    size_t o = 0;
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len && o + 8 < size;) {
        uint32_t cp;
        size_t n = jp_utf8_decode(u + i, len - i, &cp);
        if (i >= QUOTE_KEEP || (n > 0 && i + n > QUOTE_KEEP)) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (n == 0) {
            o += (size_t)snprintf(out + o, size - o, "\\x%02x", u[i]);
            i++;
        } else if (cp == '"' || cp == '\\') {
            out[o++] = '\\';
            out[o++] = (char)cp;
            i++;
        } else if (cp == '\n' || cp == '\r' || cp == '\t') {
            out[o++] = '\\';
            out[o++] = cp == '\n' ? 'n' : cp == '\r' ? 'r' : 't';
            i++;
        } else if (is_control(cp) || is_invisible(cp)) {
            o += (size_t)snprintf(out + o, size - o, "\\u%04x", (unsigned)cp);
            i += n;
        } else {
            memcpy(out + o, s + i, n);
            o += n;
            i += n;
        }
    }
    out[o] = '\0';
}

/* Copies s into out as one line of UTF-8 for a reason text: bytes that are
 * not UTF-8 become \xNN and control characters \uNNNN; everything else,
 * quotes included, is kept. Stops (on a character boundary) when out is
 * full. */
static void clean_into(char *out, size_t size, const char *s)
{
    size_t o = 0, len = strlen(s);
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len && o + 8 < size;) {
        uint32_t cp;
        size_t n = jp_utf8_decode(u + i, len - i, &cp);
        if (n == 0) {
            o += (size_t)snprintf(out + o, size - o, "\\x%02x", u[i]);
            i++;
        } else if (is_control(cp) || is_invisible(cp)) {
            o += (size_t)snprintf(out + o, size - o, "\\u%04x", (unsigned)cp);
            i += n;
        } else {
            memcpy(out + o, s + i, n);
            o += n;
            i += n;
        }
    }
    out[o] = '\0';
}

static const char *quote(char buf[QUOTE_SIZE], const char *s, size_t len)
{
    buf[0] = '"';
    escape_into(buf + 1, QUOTE_SIZE - 2, s, len);
    size_t n = strlen(buf);
    buf[n] = '"';
    buf[n + 1] = '\0';
    return buf;
}

static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    case JSON_NULL:
        return "null";
    }
    return "unknown";
}

/* What a value was, for "got ...": a quoted string or the JSON kind. */
static const char *got(char buf[QUOTE_SIZE], const json_t *v)
{
    if (json_is_string(v))
        return quote(buf, json_string_value(v), json_string_length(v));
    snprintf(buf, QUOTE_SIZE, "%s", json_kind(v));
    return buf;
}

static jp_err_t fail(dctx_t *c, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static jp_err_t fail(dctx_t *c, const char *path, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return jp_err_set(c->errstr, c->errstr_size, JP_ERR_INVALID, "%s: %s", path, msg);
}

static jp_err_t nomem(dctx_t *c)
{
    return jp_err_set(c->errstr, c->errstr_size, JP_ERR_NOMEM, "event: out of memory");
}

/* "parent.name" with the name escaped (it may be any JSON key). */
static const char *make_path(char path[PATH_SIZE], const char *parent, const char *name)
{
    char seg[QUOTE_SIZE];
    escape_into(seg, sizeof seg, name, strlen(name));
    if (parent)
        snprintf(path, PATH_SIZE, "%s.%s", parent, seg);
    else
        snprintf(path, PATH_SIZE, "%s", seg);
    return path;
}

#define TRY(expr)                                                                                  \
    do {                                                                                           \
        jp_err_t try_err_ = (expr);                                                                \
        if (try_err_ != JP_OK)                                                                     \
            return try_err_;                                                                       \
    } while (0)

/* ---- typed string checks ------------------------------------------------ */

typedef enum kind {
    K_TEXT = 0,   /* a name or free single-line text */
    K_ID,         /* CloudEvents id: printable ASCII */
    K_SUBJECT,    /* CloudEvents subject */
    K_SOURCE,     /* URI-reference */
    K_SCHEMA_URI, /* absolute URI */
    K_ACTOR,      /* idhubactor, correlationid */
    K_LOGIN,
    K_EMAIL,
    K_REF,
    K_PROJECT,
    K_ISSUE_KEY,
    K_SUMMARY,
    K_DESCRIPTION,
    K_LABEL,
} kind_t;

static const struct kind_rule {
    size_t max;
    unsigned flags;
} kind_rules[] = {
    [K_TEXT] = {JP_EVENT_STRING_MAX, 0},
    [K_ID] = {JP_EVENT_ID_MAX, 0},
    [K_SUBJECT] = {JP_EVENT_SUBJECT_MAX, 0},
    [K_SOURCE] = {JP_EVENT_STRING_MAX, 0},
    [K_SCHEMA_URI] = {JP_EVENT_STRING_MAX, 0},
    [K_ACTOR] = {JP_EVENT_ACTOR_MAX, 0},
    [K_LOGIN] = {JP_EVENT_LOGIN_MAX, 0},
    [K_EMAIL] = {JP_EVENT_EMAIL_MAX, 0},
    [K_REF] = {JP_EVENT_REF_MAX, 0},
    [K_PROJECT] = {JP_EVENT_STRING_MAX, 0},
    [K_ISSUE_KEY] = {JP_EVENT_STRING_MAX, 0},
    [K_SUMMARY] = {JP_EVENT_SUMMARY_MAX, TX_CHARS},
    [K_DESCRIPTION] = {JP_EVENT_DESCRIPTION_MAX, TX_MULTILINE},
    [K_LABEL] = {JP_EVENT_LABEL_MAX, TX_CHARS},
};

/* The rule a kind adds after the generic string checks (most add none). */
static jp_err_t check_pattern(dctx_t *c, const char *path, kind_t k, const char *s, size_t len)
{
    char q[QUOTE_SIZE];
    switch (k) {
    case K_ID:
        for (size_t i = 0; i < len; i++)
            if ((unsigned char)s[i] > 0x7e)
                return fail(c, path, "expected printable ASCII, got %s", quote(q, s, len));
        return JP_OK;
    case K_SOURCE:
        if (!uri_ok(s, len, false))
            return fail(c, path, "expected a URI-reference, got %s", quote(q, s, len));
        return JP_OK;
    case K_SCHEMA_URI:
        if (!uri_ok(s, len, true))
            return fail(c, path, "expected an absolute URI, got %s", quote(q, s, len));
        return JP_OK;
    case K_LOGIN:
        if (!login_ok(s, len))
            return fail(c, path, "expected a login without whitespace or '/', got %s",
                        quote(q, s, len));
        return JP_OK;
    case K_EMAIL:
        if (!email_ok(s, len))
            return fail(c, path, "expected an email address, got %s", quote(q, s, len));
        return JP_OK;
    case K_REF:
        if (!ref_ok(s, len))
            return fail(c, path, "expected 1 to 128 characters of [A-Za-z0-9._:-], got %s",
                        quote(q, s, len));
        return JP_OK;
    case K_PROJECT:
        if (!project_ok(s, len))
            return fail(c, path, "expected a project key matching ^[A-Z][A-Z0-9]{1,9}$, got %s",
                        quote(q, s, len));
        return JP_OK;
    case K_ISSUE_KEY:
        if (!issue_key_ok(s, len))
            return fail(c, path, "expected an issue key like \"DEMO-12\", got %s",
                        quote(q, s, len));
        return JP_OK;
    default:
        return JP_OK;
    }
}

/* Type, emptiness, characters, length, then the kind's own pattern. */
static jp_err_t check_str(dctx_t *c, const char *path, json_t *v, kind_t k, const char **out)
{
    if (!json_is_string(v))
        return fail(c, path, "expected a string, got %s", json_kind(v));
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    const struct kind_rule *r = &kind_rules[k];
    if (len == 0)
        return fail(c, path, "must not be empty");
    scan_t sc;
    unsigned flags = r->flags | (k == K_LABEL ? TX_NO_SPACE : 0);
    switch (scan_text(s, len, flags, &sc)) {
    case SCAN_BAD_UTF8:
        return fail(c, path, "is not valid UTF-8 (at byte %zu)", sc.at);
    case SCAN_CONTROL:
        return fail(c, path, "must not contain control characters (found U+%04X at byte %zu)",
                    (unsigned)sc.cp, sc.at);
    case SCAN_SPACE: {
        char q[QUOTE_SIZE];
        return fail(c, path, "expected a label without whitespace, got %s", quote(q, s, len));
    }
    case SCAN_OK:
        break;
    }
    bool chars = (r->flags & TX_CHARS) != 0;
    size_t measured = chars ? sc.chars : len;
    if (measured > r->max)
        return fail(c, path, "is %zu %s long, the maximum is %zu", measured,
                    chars ? "characters" : "bytes", r->max);
    TRY(check_pattern(c, path, k, s, len));
    *out = s;
    return JP_OK;
}

static jp_err_t req_str(dctx_t *c, json_t *obj, const char *parent, const char *name, kind_t k,
                        const char **out)
{
    char path[PATH_SIZE];
    make_path(path, parent, name);
    json_t *v = json_object_get(obj, name);
    if (!v)
        return fail(c, path, "is required");
    return check_str(c, path, v, k, out);
}

/* An optional string; `nullable` lets null through as JP_NULL. */
static jp_err_t opt_str(dctx_t *c, json_t *obj, const char *parent, const char *name, kind_t k,
                        bool nullable, jp_optstr_t *out)
{
    char path[PATH_SIZE];
    json_t *v = json_object_get(obj, name);
    out->state = JP_ABSENT;
    out->value = NULL;
    if (!v)
        return JP_OK;
    if (nullable && json_is_null(v)) {
        out->state = JP_NULL;
        return JP_OK;
    }
    TRY(check_str(c, make_path(path, parent, name), v, k, &out->value));
    out->state = JP_VALUE;
    return JP_OK;
}

/* An optional string without null; *out stays NULL when absent. */
static jp_err_t opt_plain(dctx_t *c, json_t *obj, const char *parent, const char *name, kind_t k,
                          const char **out)
{
    jp_optstr_t o;
    TRY(opt_str(c, obj, parent, name, k, false, &o));
    *out = o.value;
    return JP_OK;
}

static jp_err_t opt_bool(dctx_t *c, json_t *obj, const char *parent, const char *name,
                         jp_presence_t *state, bool *out)
{
    char path[PATH_SIZE];
    json_t *v = json_object_get(obj, name);
    *state = JP_ABSENT;
    if (!v)
        return JP_OK;
    if (!json_is_boolean(v))
        return fail(c, make_path(path, parent, name), "expected a boolean, got %s", json_kind(v));
    *state = JP_VALUE;
    *out = json_is_true(v);
    return JP_OK;
}

static jp_err_t req_object(dctx_t *c, json_t *obj, const char *parent, const char *name,
                           json_t **out)
{
    char path[PATH_SIZE];
    json_t *v = json_object_get(obj, name);
    make_path(path, parent, name);
    if (!v)
        return fail(c, path, "is required");
    if (!json_is_object(v))
        return fail(c, path, "expected an object, got %s", json_kind(v));
    *out = v;
    return JP_OK;
}

static bool name_in(const char *name, const char *const *allowed)
{
    for (; *allowed; allowed++)
        if (strcmp(name, *allowed) == 0)
            return true;
    return false;
}

/* The first key of obj (in document order) not in `allowed`. */
static jp_err_t check_unknown(dctx_t *c, json_t *obj, const char *parent,
                              const char *const *allowed, const char *what)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        if (!name_in(key, allowed)) {
            char path[PATH_SIZE];
            return fail(c, make_path(path, parent, key), "unknown %s", what);
        }
    }
    return JP_OK;
}

/* ---- data: accounts ----------------------------------------------------- */

static const char *const account_fields[] = {
    "login",      "email",    "firstName",  "lastName",         "displayName",
    "nickName",   "jobTitle", "department", "organizationName", "timezone",
    "externalId", "active",   NULL,
};

static const char *const login_only_fields[] = {"login", NULL};

static jp_err_t dec_account(dctx_t *c, json_t *data)
{
    jp_event_type_t t = c->ev->type;
    jp_account_attrs_t *a = &c->ev->account;
    bool update = t == JP_EVENT_ACCOUNT_UPDATE;
    a->active = true;
    TRY(req_str(c, data, "data", "login", K_LOGIN, &a->attr[JP_ATTR_LOGIN].value));
    a->attr[JP_ATTR_LOGIN].state = JP_VALUE;
    if (t != JP_EVENT_ACCOUNT_CREATE && !update)
        return check_unknown(c, data, "data", login_only_fields, "field");
    if (t == JP_EVENT_ACCOUNT_CREATE) {
        TRY(req_str(c, data, "data", "email", K_EMAIL, &a->attr[JP_ATTR_EMAIL].value));
        a->attr[JP_ATTR_EMAIL].state = JP_VALUE;
    } else {
        TRY(opt_str(c, data, "data", "email", K_EMAIL, false, &a->attr[JP_ATTR_EMAIL]));
    }
    for (int i = JP_ATTR_FIRST_NAME; i < JP_ATTR__COUNT; i++)
        TRY(opt_str(c, data, "data", attr_names[i], K_TEXT, update, &a->attr[i]));
    TRY(opt_bool(c, data, "data", "active", &a->active_state, &a->active));
    TRY(check_unknown(c, data, "data", account_fields, "field"));
    if (update && json_object_size(data) < 2)
        return fail(c, "data", "expected at least one attribute to change besides login");
    return JP_OK;
}

/* ---- data: entitlements ------------------------------------------------- */

static const char *const entitlement_fields[] = {"login", "entitlement", NULL};
static const char *const group_fields[] = {"type", "group", NULL};
static const char *const role_fields[] = {"type", "project", "role", NULL};

static jp_err_t dec_entitlement(dctx_t *c, json_t *data)
{
    jp_entitlement_t *e = &c->ev->entitlement;
    const char *p = "data.entitlement";
    json_t *ent;
    TRY(req_str(c, data, "data", "login", K_LOGIN, &e->login));
    TRY(req_object(c, data, "data", "entitlement", &ent));
    json_t *type = json_object_get(ent, "type");
    const char *ts = json_string_value(type);
    const char *const *allowed;
    if (!type)
        return fail(c, "data.entitlement.type", "is required");
    if (ts && strcmp(ts, "group") == 0) {
        e->kind = JP_ENTITLEMENT_GROUP;
        TRY(req_str(c, ent, p, "group", K_TEXT, &e->group));
        allowed = group_fields;
    } else if (ts && strcmp(ts, "projectRole") == 0) {
        e->kind = JP_ENTITLEMENT_PROJECT_ROLE;
        TRY(req_str(c, ent, p, "project", K_PROJECT, &e->project));
        TRY(req_str(c, ent, p, "role", K_TEXT, &e->role));
        allowed = role_fields;
    } else {
        char q[QUOTE_SIZE];
        return fail(c, "data.entitlement.type", "expected \"group\" or \"projectRole\", got %s",
                    got(q, type));
    }
    TRY(check_unknown(c, ent, p, allowed, "field"));
    return check_unknown(c, data, "data", entitlement_fields, "field");
}

/* ---- data: issues ------------------------------------------------------- */

static const char *const issue_create_fields[] = {
    "externalRef", "project",  "issueType", "summary", "description",
    "labels",      "priority", "assignee",  NULL,
};
static const char *const issue_update_fields[] = {
    "key", "externalRef", "summary", "description", "labels", "priority", "assignee", NULL,
};
static const char *const issue_delete_fields[] = {"key", "externalRef", "deleteSubtasks", NULL};
static const char *const issue_transition_fields[] = {"key", "externalRef", "status", NULL};

static jp_err_t dec_labels(dctx_t *c, json_t *data, bool nullable)
{
    jp_issue_t *is = &c->ev->issue;
    json_t *v = json_object_get(data, "labels");
    is->labels_state = JP_ABSENT;
    if (!v)
        return JP_OK;
    if (nullable && json_is_null(v)) {
        is->labels_state = JP_NULL;
        return JP_OK;
    }
    if (!json_is_array(v))
        return fail(c, "data.labels", "expected an array, got %s", json_kind(v));
    size_t n = json_array_size(v);
    if (n > JP_EVENT_LABELS_MAX)
        return fail(c, "data.labels", "has %zu items, the maximum is %d", n, JP_EVENT_LABELS_MAX);
    is->labels_state = JP_VALUE;
    if (n == 0)
        return JP_OK;
    c->ev->priv_labels = calloc(n, sizeof(char *));
    if (!c->ev->priv_labels)
        return nomem(c);
    for (size_t i = 0; i < n; i++) {
        char path[PATH_SIZE];
        snprintf(path, sizeof path, "data.labels[%zu]", i);
        TRY(check_str(c, path, json_array_get(v, i), K_LABEL, &c->ev->priv_labels[i]));
        for (size_t j = 0; j < i; j++) {
            if (strcmp(c->ev->priv_labels[j], c->ev->priv_labels[i]) == 0) {
                char q[QUOTE_SIZE];
                return fail(c, path, "duplicate label %s", got(q, json_array_get(v, i)));
            }
        }
    }
    is->labels = c->ev->priv_labels;
    is->labels_count = n;
    return JP_OK;
}

/* key XOR externalRef: the fields come first, the exclusivity check runs
 * with the cross-field rules after the unknown-field check. */
static jp_err_t dec_issue_ref(dctx_t *c, json_t *data)
{
    TRY(opt_plain(c, data, "data", "key", K_ISSUE_KEY, &c->ev->issue.key));
    return opt_plain(c, data, "data", "externalRef", K_REF, &c->ev->issue.external_ref);
}

static jp_err_t check_issue_ref(dctx_t *c)
{
    const jp_issue_t *is = &c->ev->issue;
    if (is->key && is->external_ref)
        return fail(c, "data", "expected exactly one of key or externalRef, got both");
    if (!is->key && !is->external_ref)
        return fail(c, "data", "expected exactly one of key or externalRef, got neither");
    return JP_OK;
}

static jp_err_t dec_issue_create(dctx_t *c, json_t *data)
{
    jp_issue_t *is = &c->ev->issue;
    TRY(req_str(c, data, "data", "externalRef", K_REF, &is->external_ref));
    TRY(req_str(c, data, "data", "project", K_PROJECT, &is->project));
    TRY(req_str(c, data, "data", "issueType", K_TEXT, &is->issue_type));
    TRY(req_str(c, data, "data", "summary", K_SUMMARY, &is->summary.value));
    is->summary.state = JP_VALUE;
    TRY(opt_str(c, data, "data", "description", K_DESCRIPTION, false, &is->description));
    TRY(dec_labels(c, data, false));
    TRY(opt_str(c, data, "data", "priority", K_TEXT, false, &is->priority));
    TRY(opt_str(c, data, "data", "assignee", K_LOGIN, false, &is->assignee));
    return check_unknown(c, data, "data", issue_create_fields, "field");
}

static jp_err_t dec_issue_update(dctx_t *c, json_t *data)
{
    jp_issue_t *is = &c->ev->issue;
    TRY(dec_issue_ref(c, data));
    /* Jira requires a summary, so it can be changed but not cleared. */
    TRY(opt_str(c, data, "data", "summary", K_SUMMARY, false, &is->summary));
    TRY(opt_str(c, data, "data", "description", K_DESCRIPTION, true, &is->description));
    TRY(dec_labels(c, data, true));
    TRY(opt_str(c, data, "data", "priority", K_TEXT, true, &is->priority));
    TRY(opt_str(c, data, "data", "assignee", K_LOGIN, true, &is->assignee));
    TRY(check_unknown(c, data, "data", issue_update_fields, "field"));
    TRY(check_issue_ref(c));
    if (!is->summary.state && !is->description.state && !is->labels_state && !is->priority.state &&
        !is->assignee.state)
        return fail(c, "data",
                    "expected at least one of summary, description, labels, priority, assignee");
    return JP_OK;
}

static jp_err_t dec_issue_delete(dctx_t *c, json_t *data)
{
    jp_presence_t st;
    TRY(dec_issue_ref(c, data));
    TRY(opt_bool(c, data, "data", "deleteSubtasks", &st, &c->ev->issue.delete_subtasks));
    TRY(check_unknown(c, data, "data", issue_delete_fields, "field"));
    return check_issue_ref(c);
}

static jp_err_t dec_issue_transition(dctx_t *c, json_t *data)
{
    TRY(dec_issue_ref(c, data));
    TRY(req_str(c, data, "data", "status", K_TEXT, &c->ev->issue.status));
    TRY(check_unknown(c, data, "data", issue_transition_fields, "field"));
    return check_issue_ref(c);
}

/* ---- data: recon -------------------------------------------------------- */

static const char *const recon_fields[] = {"reconId", "mode", "resources", "filter", "scope", NULL};
static const char *const filter_fields[] = {
    "userName", "externalId", "department", "organizationName", "active", "group", NULL};

static jp_err_t dec_mode(dctx_t *c, json_t *data)
{
    json_t *v = json_object_get(data, "mode");
    const char *s = json_string_value(v);
    if (!v)
        return fail(c, "data.mode", "is required");
    for (int m = JP_RECON_FULL; s && m <= JP_RECON_INCREMENTAL; m++) {
        if (strcmp(s, recon_mode_names[m]) == 0) {
            c->ev->recon.mode = (jp_recon_mode_t)m;
            return JP_OK;
        }
    }
    char q[QUOTE_SIZE];
    return fail(c, "data.mode", "expected \"full\", \"filtered\" or \"incremental\", got %s",
                got(q, v));
}

static jp_err_t dec_resources(dctx_t *c, json_t *data)
{
    json_t *v = json_object_get(data, "resources");
    if (!v)
        return fail(c, "data.resources", "is required");
    if (!json_is_array(v))
        return fail(c, "data.resources", "expected an array, got %s", json_kind(v));
    if (json_array_size(v) == 0)
        return fail(c, "data.resources", "must not be empty");
    for (size_t i = 0; i < json_array_size(v); i++) {
        json_t *item = json_array_get(v, i);
        const char *s = json_string_value(item);
        char path[PATH_SIZE], q[QUOTE_SIZE];
        unsigned bit = 0;
        snprintf(path, sizeof path, "data.resources[%zu]", i);
        if (s && strcmp(s, "accounts") == 0)
            bit = JP_RECON_ACCOUNTS;
        else if (s && strcmp(s, "entitlements") == 0)
            bit = JP_RECON_ENTITLEMENTS;
        else
            return fail(c, path, "expected \"accounts\" or \"entitlements\", got %s", got(q, item));
        if (c->ev->recon.resources & bit)
            return fail(c, path, "duplicate value %s", got(q, item));
        c->ev->recon.resources |= bit;
    }
    return JP_OK;
}

static jp_err_t dec_filter(dctx_t *c, json_t *f)
{
    jp_recon_filter_t *fl = &c->ev->recon.filter;
    const char *p = "data.filter";
    TRY(opt_plain(c, f, p, "userName", K_LOGIN, &fl->user_name));
    TRY(opt_plain(c, f, p, "externalId", K_TEXT, &fl->external_id));
    TRY(opt_plain(c, f, p, "department", K_TEXT, &fl->department));
    TRY(opt_plain(c, f, p, "organizationName", K_TEXT, &fl->organization_name));
    TRY(opt_bool(c, f, p, "active", &fl->active_state, &fl->active));
    TRY(opt_plain(c, f, p, "group", K_TEXT, &fl->group));
    TRY(check_unknown(c, f, p, filter_fields, "field"));
    if (json_object_size(f) == 0)
        return fail(c, p, "expected at least one condition");
    return JP_OK;
}

static jp_err_t derive_scope(dctx_t *c, json_t *filter)
{
    jp_recon_request_t *r = &c->ev->recon;
    const char *res = r->resources == (JP_RECON_ACCOUNTS | JP_RECON_ENTITLEMENTS)
                          ? "accounts+entitlements"
                      : r->resources == JP_RECON_ACCOUNTS ? "accounts"
                                                          : "entitlements";
    char *fjson = filter ? json_dumps(filter, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    if (filter && !fjson)
        return nomem(c);
    size_t size = strlen(res) + (fjson ? strlen(fjson) + 1 : 0) + 1;
    c->ev->priv_scope = malloc(size);
    if (!c->ev->priv_scope) {
        free(fjson);
        return nomem(c);
    }
    snprintf(c->ev->priv_scope, size, "%s%s%s", res, fjson ? "|" : "", fjson ? fjson : "");
    free(fjson);
    r->scope = c->ev->priv_scope;
    r->scope_derived = true;
    return JP_OK;
}

static jp_err_t dec_recon(dctx_t *c, json_t *data)
{
    jp_recon_request_t *r = &c->ev->recon;
    TRY(req_str(c, data, "data", "reconId", K_REF, &r->recon_id));
    TRY(dec_mode(c, data));
    TRY(dec_resources(c, data));
    json_t *f = json_object_get(data, "filter");
    if (f && !json_is_object(f))
        return fail(c, "data.filter", "expected an object, got %s", json_kind(f));
    if (f)
        TRY(dec_filter(c, f));
    TRY(opt_plain(c, data, "data", "scope", K_TEXT, &r->scope));
    TRY(check_unknown(c, data, "data", recon_fields, "field"));
    if (r->mode == JP_RECON_FILTERED && !f)
        return fail(c, "data.filter", "is required when mode is \"filtered\"");
    if (r->mode != JP_RECON_FILTERED && f)
        return fail(c, "data.filter", "is only allowed when mode is \"filtered\"");
    r->has_filter = f != NULL;
    return r->scope ? JP_OK : derive_scope(c, f);
}

/* ---- the envelope ------------------------------------------------------- */

static const char *const ce_attrs[] = {
    "specversion", "id",         "source",          "type",
    "subject",     "time",       "datacontenttype", "dataschema",
    "jirasite",    "idhubactor", "traceparent",     "correlationid",
    "data",        NULL,
};

static jp_err_t dec_specversion(dctx_t *c, json_t *root)
{
    json_t *v = json_object_get(root, "specversion");
    char q[QUOTE_SIZE];
    if (!v)
        return fail(c, "specversion", "is required");
    if (!json_is_string(v) || strcmp(json_string_value(v), JP_EVENT_SPECVERSION) != 0)
        return fail(c, "specversion", "expected \"1.0\", got %s", got(q, v));
    return JP_OK;
}

static jp_err_t dec_type(dctx_t *c, json_t *root)
{
    json_t *v = json_object_get(root, "type");
    char q[QUOTE_SIZE];
    if (!v)
        return fail(c, "type", "is required");
    if (!json_is_string(v))
        return fail(c, "type", "expected a string, got %s", json_kind(v));
    const char *s = json_string_value(v);
    size_t plen = strlen(JP_EVENT_TYPE_PREFIX);
    int t = strncmp(s, JP_EVENT_TYPE_PREFIX, plen) == 0 ? jp_event_type_parse(s) : -1;
    if (t < 0 || strlen(s) != json_string_length(v))
        return fail(c, "type", "unknown event type %s", got(q, v));
    c->ev->type = (jp_event_type_t)t;
    return JP_OK;
}

static jp_err_t dec_time(dctx_t *c, json_t *root)
{
    json_t *v = json_object_get(root, "time");
    char q[QUOTE_SIZE];
    if (!v)
        return fail(c, "time", "is required");
    if (!json_is_string(v))
        return fail(c, "time", "expected a string, got %s", json_kind(v));
    const char *s = json_string_value(v);
    if (json_string_length(v) > TIME_MAX || strlen(s) != json_string_length(v) ||
        !jp_event_parse_time(s, &c->ev->time_ms))
        return fail(c, "time", "expected an RFC 3339 date-time, got %s", got(q, v));
    c->ev->time = s;
    return JP_OK;
}

static jp_err_t dec_content_type(dctx_t *c, json_t *root)
{
    json_t *v = json_object_get(root, "datacontenttype");
    char q[QUOTE_SIZE];
    if (!v)
        return JP_OK;
    if (!json_is_string(v) || strcmp(json_string_value(v), JP_EVENT_CONTENT_TYPE) != 0 ||
        json_string_length(v) != strlen(JP_EVENT_CONTENT_TYPE))
        return fail(c, "datacontenttype", "expected \"application/json\", got %s", got(q, v));
    c->ev->datacontenttype = json_string_value(v);
    return JP_OK;
}

static jp_err_t dec_site(dctx_t *c, json_t *root)
{
    json_t *v = json_object_get(root, "jirasite");
    char q[QUOTE_SIZE];
    if (!v)
        return fail(c, "jirasite", "is required");
    if (!json_is_string(v) || !site_ok(json_string_value(v), json_string_length(v)))
        return fail(c, "jirasite", "expected a site name of 1 to 64 characters [a-z0-9_-], got %s",
                    got(q, v));
    c->ev->site = json_string_value(v);
    return JP_OK;
}

static jp_err_t dec_traceparent(dctx_t *c, json_t *root)
{
    json_t *v = json_object_get(root, "traceparent");
    char q[QUOTE_SIZE];
    if (!v)
        return JP_OK;
    if (!json_is_string(v) || !traceparent_ok(json_string_value(v), json_string_length(v)))
        return fail(c, "traceparent",
                    "expected W3C \"00-<32 hex>-<16 hex>-<2 hex>\" with non-zero ids, got %s",
                    got(q, v));
    c->ev->traceparent = json_string_value(v);
    return JP_OK;
}

/* subject must name what the event is about (it is the Kafka key, so this
 * keeps every event on one thing in one partition, in order). */
static jp_err_t check_subject(dctx_t *c)
{
    const jp_event_t *ev = c->ev;
    const char *want = NULL, *field = NULL;
    if (JP_EVENT_IS_ACCOUNT(ev->type) || JP_EVENT_IS_ENTITLEMENT(ev->type)) {
        want = jp_event_login(ev), field = "data.login";
    } else if (JP_EVENT_IS_ISSUE(ev->type)) {
        want = ev->issue.key ? ev->issue.key : ev->issue.external_ref;
        field = ev->issue.key ? "data.key" : "data.externalRef";
    } else {
        want = ev->recon.recon_id, field = "data.reconId";
    }
    if (strcmp(want, ev->subject) != 0) {
        char qw[QUOTE_SIZE], qs[QUOTE_SIZE];
        return fail(c, "subject", "must equal %s (%s), got %s", field,
                    quote(qw, want, strlen(want)), quote(qs, ev->subject, strlen(ev->subject)));
    }
    return JP_OK;
}

static jp_err_t dec_data(dctx_t *c, json_t *data)
{
    switch (c->ev->type) {
    case JP_EVENT_ACCOUNT_CREATE:
    case JP_EVENT_ACCOUNT_UPDATE:
    case JP_EVENT_ACCOUNT_DELETE:
    case JP_EVENT_ACCOUNT_ENABLE:
    case JP_EVENT_ACCOUNT_DISABLE:
        return dec_account(c, data);
    case JP_EVENT_ENTITLEMENT_GRANT:
    case JP_EVENT_ENTITLEMENT_REVOKE:
        return dec_entitlement(c, data);
    case JP_EVENT_ISSUE_CREATE:
        return dec_issue_create(c, data);
    case JP_EVENT_ISSUE_UPDATE:
        return dec_issue_update(c, data);
    case JP_EVENT_ISSUE_DELETE:
        return dec_issue_delete(c, data);
    case JP_EVENT_ISSUE_TRANSITION:
        return dec_issue_transition(c, data);
    case JP_EVENT_RECON_REQUEST:
    case JP_EVENT__COUNT:
        break;
    }
    return dec_recon(c, data);
}

static jp_err_t validate(dctx_t *c, json_t *root)
{
    jp_event_t *ev = c->ev;
    if (!json_is_object(root))
        return fail(c, "event", "expected a JSON object, got %s", json_kind(root));
    TRY(dec_specversion(c, root));
    TRY(req_str(c, root, NULL, "id", K_ID, &ev->id));
    TRY(req_str(c, root, NULL, "source", K_SOURCE, &ev->source));
    TRY(dec_type(c, root));
    TRY(req_str(c, root, NULL, "subject", K_SUBJECT, &ev->subject));
    TRY(dec_time(c, root));
    TRY(dec_content_type(c, root));
    TRY(opt_plain(c, root, NULL, "dataschema", K_SCHEMA_URI, &ev->dataschema));
    TRY(dec_site(c, root));
    TRY(req_str(c, root, NULL, "idhubactor", K_ACTOR, &ev->actor));
    TRY(dec_traceparent(c, root));
    TRY(opt_plain(c, root, NULL, "correlationid", K_ACTOR, &ev->correlationid));
    TRY(check_unknown(c, root, NULL, ce_attrs, "attribute"));
    TRY(req_object(c, root, NULL, "data", &ev->data));
    TRY(dec_data(c, ev->data));
    return check_subject(c);
}

/* ---- public entry points ------------------------------------------------ */

void jp_event_destroy(jp_event_t *ev)
{
    if (!ev)
        return;
    json_decref(ev->root);
    free(ev->priv_labels);
    free(ev->priv_scope);
    free(ev->priv_strings);
    free(ev);
}

/* The addresses of every string field of the event that the parsed tree
 * backs (a derived scope is the event's own already). Returns the count. */
static size_t string_slots(jp_event_t *ev, const char ***slots, size_t max)
{
    size_t n = 0;
#define SLOT(field)                                                                                \
    do {                                                                                           \
        if ((field) && n < max)                                                                    \
            slots[n++] = (const char **)&(field);                                                  \
    } while (0)
    SLOT(ev->id);
    SLOT(ev->source);
    SLOT(ev->subject);
    SLOT(ev->time);
    SLOT(ev->datacontenttype);
    SLOT(ev->dataschema);
    SLOT(ev->site);
    SLOT(ev->actor);
    SLOT(ev->traceparent);
    SLOT(ev->correlationid);
    if (JP_EVENT_IS_ACCOUNT(ev->type)) {
        for (int i = 0; i < JP_ATTR__COUNT; i++)
            SLOT(ev->account.attr[i].value);
    } else if (JP_EVENT_IS_ENTITLEMENT(ev->type)) {
        SLOT(ev->entitlement.login);
        SLOT(ev->entitlement.group);
        SLOT(ev->entitlement.project);
        SLOT(ev->entitlement.role);
    } else if (JP_EVENT_IS_ISSUE(ev->type)) {
        jp_issue_t *is = &ev->issue;
        SLOT(is->key);
        SLOT(is->external_ref);
        SLOT(is->project);
        SLOT(is->issue_type);
        SLOT(is->summary.value);
        SLOT(is->description.value);
        SLOT(is->priority.value);
        SLOT(is->assignee.value);
        SLOT(is->status);
        for (size_t i = 0; ev->priv_labels && i < is->labels_count; i++)
            SLOT(ev->priv_labels[i]);
    } else if (JP_EVENT_IS_RECON(ev->type)) {
        jp_recon_request_t *r = &ev->recon;
        SLOT(r->recon_id);
        SLOT(r->filter.user_name);
        SLOT(r->filter.external_id);
        SLOT(r->filter.department);
        SLOT(r->filter.organization_name);
        SLOT(r->filter.group);
        if (r->scope != ev->priv_scope)
            SLOT(r->scope);
    }
#undef SLOT
    return n;
}

jp_err_t jp_event_compact(jp_event_t *ev)
{
    if (!ev || !ev->root)
        return JP_OK;
    /* 10 attributes + the largest union member (issue: 9 + labels). */
    const char **slots[24 + JP_EVENT_LABELS_MAX];
    size_t n = string_slots(ev, slots, sizeof(slots) / sizeof(slots[0]));
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += strlen(*slots[i]) + 1;
    char *block = malloc(total ? total : 1);
    if (!block)
        return JP_ERR_NOMEM;
    char *p = block;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(*slots[i]) + 1;
        memcpy(p, *slots[i], len);
        *slots[i] = p;
        p += len;
    }
    ev->priv_strings = block;
    json_decref(ev->root);
    ev->root = ev->data = NULL;
    return JP_OK;
}

/* Validates `root` (borrowed) into a new event that takes its own reference. */
static jp_err_t build(json_t *root, jp_event_t **out, char *errstr, size_t errstr_size)
{
    dctx_t c = {.errstr = errstr, .errstr_size = errstr_size};
    c.ev = calloc(1, sizeof *c.ev);
    if (!c.ev)
        return nomem(&c);
    jp_err_t err = validate(&c, root);
    if (err != JP_OK) {
        jp_event_destroy(c.ev);
        return err;
    }
    c.ev->root = json_incref(root);
    *out = c.ev;
    return JP_OK;
}

jp_err_t jp_event_from_json(json_t *root, jp_event_t **out, char *errstr, size_t errstr_size)
{
    if (!out)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "event: no output pointer");
    *out = NULL;
    if (!root)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "event: no JSON value");
    return build(root, out, errstr, errstr_size);
}

jp_err_t jp_event_decode(const void *buf, size_t len, const jp_event_limits_t *limits,
                         jp_event_t **out, char *errstr, size_t errstr_size)
{
    size_t max = limits && limits->max_bytes ? limits->max_bytes : JP_EVENT_MAX_BYTES;
    if (!out)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "event: no output pointer");
    *out = NULL;
    if (len > max)
        return jp_err_set(errstr, errstr_size, JP_ERR_TOO_LARGE,
                          "event: %zu bytes exceeds the limit of %zu", len, max);
    if (!buf && len > 0)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "event: no buffer");
    json_error_t jerr;
    /* Duplicate keys would make "the" value of a field ambiguous. */
    json_t *root = json_loadb(buf ? buf : "", len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        /* jansson's own text for this case names one of its flags; its
         * other texts may quote raw input bytes ("near '...'"), so they are
         * cleaned to one line of UTF-8 for logs and dead-letter records. */
        char why[4 * JSON_ERROR_TEXT_LENGTH];
        if (json_error_code(&jerr) == json_error_null_character)
            snprintf(why, sizeof why, "strings must not contain \\u0000");
        else
            clean_into(why, sizeof why, jerr.text);
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "event: not valid JSON at line %d, column %d: %s", jerr.line, jerr.column,
                          why);
    }
    jp_err_t err = build(root, out, errstr, errstr_size);
    json_decref(root);
    return err;
}

const char *jp_event_key(const jp_event_t *ev)
{
    return ev ? ev->subject : NULL;
}

const char *jp_event_login(const jp_event_t *ev)
{
    if (!ev)
        return NULL;
    if (JP_EVENT_IS_ACCOUNT(ev->type))
        return ev->account.attr[JP_ATTR_LOGIN].value;
    if (JP_EVENT_IS_ENTITLEMENT(ev->type))
        return ev->entitlement.login;
    return NULL;
}
