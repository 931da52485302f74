#include "jiraprov/mapping.h"
#include "jiraprov/utf8.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENTERPRISE_21 "urn:ietf:params:scim:schemas:extension:enterprise:2.1:User"
#define ATLASSIAN_11  "urn:scim:schemas:extension:atlassian-external:1.1"

/* ---- the SCIM User schema as Atlassian serves it -------------------------- */

enum {
    A_COMPLEX = 1u,  /* singular, with sub-attributes */
    A_MULTI = 2u,    /* multi-valued: an array of objects */
    A_READONLY = 4u, /* set by the server: only from_jira may map it */
    A_RESERVED = 8u  /* never mapped; `why` says so */
};

typedef struct attr_def {
    const char *name;
    unsigned flags;
    const char *const *subs; /* string sub-attributes, NULL-terminated; NULL if simple */
    const char *why;         /* A_RESERVED: the rest of the error sentence */
} attr_def_t;

static const char *const name_subs[] = {"formatted",  "familyName",      "givenName",
                                        "middleName", "honorificPrefix", "honorificSuffix",
                                        NULL};
static const char *const meta_subs[] = {"resourceType", "created", "lastModified",
                                        "location",     "version", NULL};
static const char *const multi_subs[] = {"value", "display", NULL};
static const char *const address_subs[] = {"formatted",  "streetAddress", "locality", "region",
                                           "postalCode", "country",       NULL};
static const char *const manager_subs[] = {"value", "displayName", NULL};

/* RFC 7643 §4.1, plus `department` and `organization`, which Atlassian keeps
 * at the top level of the User (notes §1.3). */
static const attr_def_t core_attrs[] = {
    {"userName", 0, NULL, NULL},
    {"name", A_COMPLEX, name_subs, NULL},
    {"displayName", 0, NULL, NULL},
    {"nickName", 0, NULL, NULL},
    {"profileUrl", 0, NULL, NULL},
    {"title", 0, NULL, NULL},
    {"userType", 0, NULL, NULL},
    {"preferredLanguage", 0, NULL, NULL},
    {"locale", 0, NULL, NULL},
    {"timezone", 0, NULL, NULL},
    {"externalId", 0, NULL, NULL},
    {"department", 0, NULL, NULL},
    {"organization", 0, NULL, NULL},
    {"emails", A_MULTI, multi_subs, NULL},
    {"phoneNumbers", A_MULTI, multi_subs, NULL},
    {"ims", A_MULTI, multi_subs, NULL},
    {"photos", A_MULTI, multi_subs, NULL},
    {"addresses", A_MULTI, address_subs, NULL},
    {"entitlements", A_MULTI, multi_subs, NULL},
    {"roles", A_MULTI, multi_subs, NULL},
    {"x509Certificates", A_MULTI, multi_subs, NULL},
    {"id", A_READONLY, NULL, NULL},
    {"meta", A_COMPLEX | A_READONLY, meta_subs, NULL},
    {"groups", A_MULTI | A_READONLY, multi_subs, NULL},
    {"active", A_RESERVED, NULL, "follows the account's own active flag and cannot be mapped"},
    {"password", A_RESERVED, NULL, "is write-only and cannot be mapped"},
    {"schemas", A_RESERVED, NULL, "is not a user attribute"},
    {NULL, 0, NULL, NULL},
};

static const attr_def_t enterprise_attrs[] = {
    {"employeeNumber", 0, NULL, NULL},
    {"costCenter", 0, NULL, NULL},
    {"organization", 0, NULL, NULL},
    {"division", 0, NULL, NULL},
    {"department", 0, NULL, NULL},
    {"manager", A_COMPLEX, manager_subs, NULL},
    {NULL, 0, NULL, NULL},
};

static const attr_def_t atlassian_attrs[] = {
    {"atlassianAccountId", A_READONLY, NULL, NULL},
    {NULL, 0, NULL, NULL},
};

typedef struct schema_def {
    const char *urn;
    const char *alias; /* another version read as the same schema (notes §1.3), or NULL */
    const attr_def_t *attrs;
    const char *label;
} schema_def_t;

/* The first entry is the core schema: its attributes live at the top level. */
static const schema_def_t schema_defs[] = {
    {JP_SCIM_SCHEMA_USER, NULL, core_attrs, "the core User schema"},
    {JP_SCIM_SCHEMA_ENTERPRISE, ENTERPRISE_21, enterprise_attrs, "the enterprise extension"},
    {ENTERPRISE_21, JP_SCIM_SCHEMA_ENTERPRISE, enterprise_attrs, "the enterprise extension"},
    {JP_SCIM_SCHEMA_ATLASSIAN, ATLASSIAN_11, atlassian_attrs, "the atlassian-external extension"},
    {ATLASSIAN_11, JP_SCIM_SCHEMA_ATLASSIAN, atlassian_attrs, "the atlassian-external extension"},
};
#define N_SCHEMAS (sizeof(schema_defs) / sizeof(*schema_defs))

/* ---- the compiled mapping --------------------------------------------------- */

typedef enum filter_kind { F_NONE = 0, F_PRIMARY, F_TYPE } filter_kind_t;

typedef struct mpath {
    const schema_def_t *schema; /* NULL: the core schema (top level) */
    const attr_def_t *attr;
    const char *sub; /* canonical sub-attribute name, or NULL */
    filter_kind_t filter;
    char *type; /* F_TYPE: the type selected (owned) */
    char *text; /* canonical path (owned) */
} mpath_t;

typedef struct entry {
    bool used;
    jp_config_direction_t dir;
    size_t index; /* position in the config table, for messages */
    mpath_t path;
} entry_t;

struct jp_mapping {
    entry_t e[JP_ATTR__COUNT];
};

/* ---- small helpers ---------------------------------------------------------- */

/* ASCII-only case folding: locale-independent on purpose. */
static unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + ('a' - 'A')) : c;
}

static bool caseeq_n(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return false;
        if (!a[i])
            return true;
    }
    return true;
}

static bool caseeq(const char *a, const char *b)
{
    size_t la = strlen(a);
    return la == strlen(b) && caseeq_n(a, b, la);
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_namechar(char c)
{
    return is_alpha(c) || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* RFC 7644 ATTRNAME: ALPHA *(ALPHA / DIGIT / "-" / "_"). */
static size_t name_len(const char *s)
{
    if (!is_alpha(s[0]))
        return 0;
    size_t n = 1;
    while (is_namechar(s[n]))
        n++;
    return n;
}

/* Member `key` of an object: the exact key first, else one that differs only
 * in ASCII case (SCIM attribute names are case-insensitive). */
static json_t *get_ci(const json_t *obj, const char *key)
{
    if (!json_is_object(obj))
        return NULL;
    json_t *v = json_object_get(obj, key);
    if (v)
        return v;
    const char *k;
    json_object_foreach((json_t *)obj, k, v)
    {
        if (caseeq(k, key))
            return v;
    }
    return NULL;
}

/* Removes `key` (any ASCII case) from obj. */
static void del_ci(json_t *obj, const char *key)
{
    const char *k;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(obj, tmp, k, v)
    {
        if (caseeq(k, key))
            json_object_del(obj, k);
    }
}

static bool no_value(const char *s)
{
    return !s || !*s;
}

static bool folds_case(jp_attr_t attr)
{
    return attr == JP_ATTR_LOGIN || attr == JP_ATTR_EMAIL;
}

static bool dir_writes(jp_config_direction_t d)
{
    return d == JP_CONFIG_DIR_BOTH || d == JP_CONFIG_DIR_TO_JIRA;
}

static bool dir_reads(jp_config_direction_t d)
{
    return d == JP_CONFIG_DIR_BOTH || d == JP_CONFIG_DIR_FROM_JIRA;
}

/* ---- path parsing ----------------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf_t;

static void sb_add(sbuf_t *b, const char *s, size_t n)
{
    if (b->len + n < b->cap) {
        memcpy(b->p + b->len, s, n);
        b->len += n;
        b->p[b->len] = '\0';
    }
}

static void sb_str(sbuf_t *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

static const char *skip_ws(const char *s, const char *end)
{
    while (s < end && (*s == ' ' || *s == '\t'))
        s++;
    return s;
}

/* Matches `word` (any ASCII case) at *s, followed by a non-name character. */
static bool take_word(const char **s, const char *end, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(end - *s) < n || !caseeq_n(*s, word, n))
        return false;
    if (*s + n < end && is_namechar((*s)[n]))
        return false;
    *s += n;
    return true;
}

/* The ']' closing a filter that starts at s, skipping quoted strings. */
static const char *filter_end(const char *s)
{
    bool quoted = false;
    for (; *s; s++) {
        if (quoted && *s == '\\' && s[1])
            s++;
        else if (*s == '"')
            quoted = !quoted;
        else if (!quoted && *s == ']')
            return s;
    }
    return NULL;
}

/* A quoted string with \" and \\ escapes, non-empty, without control
 * characters, ending exactly at *s's closing quote. Returns a new string. */
static char *take_quoted(const char **s, const char *end, int *nomem)
{
    const char *p = *s;
    if (p >= end || *p != '"')
        return NULL;
    char *out = malloc((size_t)(end - p) + 1);
    if (!out) {
        *nomem = 1;
        return NULL;
    }
    size_t n = 0;
    for (p++; p < end && *p != '"'; p++) {
        if (*p == '\\') {
            if (p + 1 >= end || (p[1] != '"' && p[1] != '\\'))
                break;
            p++;
        }
        if ((unsigned char)*p < 0x20)
            break;
        out[n++] = *p;
    }
    if (p >= end || *p != '"' || n == 0) {
        free(out);
        return NULL;
    }
    out[n] = '\0';
    *s = p + 1;
    return out;
}

/* Filters: `primary`, `primary eq true`, `type eq "<type>"`. Returns 0, -1
 * (unsupported) or -2 (no memory). */
static int parse_filter(const char *s, const char *end, mpath_t *p)
{
    int nomem = 0;
    s = skip_ws(s, end);
    if (take_word(&s, end, "primary")) {
        const char *after = skip_ws(s, end);
        if (after < end) {
            if (after == s || !take_word(&after, end, "eq"))
                return -1;
            const char *v = skip_ws(after, end);
            if (v == after || !take_word(&v, end, "true"))
                return -1;
            after = skip_ws(v, end);
        }
        p->filter = F_PRIMARY;
        return after == end ? 0 : -1;
    }
    if (!take_word(&s, end, "type"))
        return -1;
    const char *after = skip_ws(s, end);
    if (after == s || !take_word(&after, end, "eq"))
        return -1;
    const char *v = skip_ws(after, end);
    if (v == after)
        return -1;
    char *type = take_quoted(&v, end, &nomem);
    if (!type)
        return nomem ? -2 : -1;
    if (skip_ws(v, end) != end) {
        free(type);
        return -1;
    }
    p->filter = F_TYPE;
    p->type = type;
    return 0;
}

static const attr_def_t *find_attr(const attr_def_t *defs, const char *s, size_t n)
{
    for (; defs->name; defs++)
        if (strlen(defs->name) == n && caseeq_n(defs->name, s, n))
            return defs;
    return NULL;
}

static const char *find_sub(const char *const *subs, const char *s, size_t n)
{
    for (; *subs; subs++)
        if (strlen(*subs) == n && caseeq_n(*subs, s, n))
            return *subs;
    return NULL;
}

/* A known schema URN followed by ':' at the start of s; *rest is set past it. */
static const schema_def_t *match_urn(const char *s, const char **rest)
{
    for (size_t i = 0; i < N_SCHEMAS; i++) {
        size_t n = strlen(schema_defs[i].urn);
        if (caseeq_n(s, schema_defs[i].urn, n) && s[n] == ':') {
            *rest = s + n + 1;
            return &schema_defs[i];
        }
    }
    return NULL;
}

static char *canonical_text(const mpath_t *p)
{
    size_t cap = 32 + strlen(p->attr->name) + (p->schema ? strlen(p->schema->urn) : 0) +
                 (p->type ? 2 * strlen(p->type) : 0) + (p->sub ? strlen(p->sub) : 0);
    sbuf_t b = {malloc(cap), 0, cap};
    if (!b.p)
        return NULL;
    b.p[0] = '\0';
    if (p->schema) {
        sb_str(&b, p->schema->urn);
        sb_str(&b, ":");
    }
    sb_str(&b, p->attr->name);
    if (p->filter == F_PRIMARY) {
        sb_str(&b, "[primary]");
    } else if (p->filter == F_TYPE) {
        sb_str(&b, "[type eq \"");
        for (const char *t = p->type; *t; t++) {
            if (*t == '"' || *t == '\\')
                sb_str(&b, "\\");
            sb_add(&b, t, 1);
        }
        sb_str(&b, "\"]");
    }
    if (p->sub) {
        sb_str(&b, ".");
        sb_str(&b, p->sub);
    }
    return b.p;
}

static void path_free(mpath_t *p)
{
    free(p->type);
    free(p->text);
    memset(p, 0, sizeof(*p));
}

static int why_set(char *why, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int why_set(char *why, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, n, fmt, ap);
    va_end(ap);
    return -1;
}

/* Checks that the path names one string value. */
static int path_complete(const mpath_t *p, char *why, size_t n)
{
    const char *a = p->attr->name;
    if ((p->attr->flags & A_MULTI) && p->filter == F_NONE)
        return why_set(why, n,
                       "\"%s\" is multi-valued: select an entry with a filter, e.g. "
                       "%s[primary].value",
                       a, a);
    if ((p->attr->flags & A_MULTI) && !p->sub)
        return why_set(why, n, "\"%s\" is multi-valued: name a sub-attribute, e.g. %s[primary].%s",
                       a, a, p->attr->subs[0]);
    if ((p->attr->flags & A_COMPLEX) && !p->sub)
        return why_set(why, n, "\"%s\" is complex: name a sub-attribute, e.g. %s.%s", a, a,
                       p->attr->subs[0]);
    return 0;
}

/* [urn ':'] attr ['[' filter ']'] ['.' sub]. Returns 0, -1 with `why` set,
 * or -2 when out of memory; on failure *p holds nothing. */
static int parse_path_parts(const char *text, mpath_t *p, char *why, size_t n)
{
    const char *s = text;
    const schema_def_t *schema = &schema_defs[0];
    if (!*s)
        return why_set(why, n, "the path is empty");
    if (caseeq_n(s, "urn:", 4) && !(schema = match_urn(s, &s)))
        return why_set(
            why, n, "unknown schema URN (known: %s, %s, " ENTERPRISE_21 ", %s, " ATLASSIAN_11 ")",
            JP_SCIM_SCHEMA_USER, JP_SCIM_SCHEMA_ENTERPRISE, JP_SCIM_SCHEMA_ATLASSIAN);
    p->schema = schema == &schema_defs[0] ? NULL : schema;
    size_t len = name_len(s);
    if (!len)
        return why_set(why, n, "expected an attribute name at offset %zu", (size_t)(s - text));
    if (!(p->attr = find_attr(schema->attrs, s, len)))
        return why_set(why, n, "unknown attribute \"%.*s\" in %s", (int)len, s, schema->label);
    if (p->attr->flags & A_RESERVED)
        return why_set(why, n, "\"%s\" %s", p->attr->name, p->attr->why);
    s += len;
    if (*s == '[') {
        const char *end = filter_end(s + 1);
        if (!(p->attr->flags & A_MULTI))
            return why_set(why, n, "\"%s\" is not multi-valued, so it takes no filter",
                           p->attr->name);
        if (!end)
            return why_set(why, n, "unterminated filter, expected ']'");
        int rc = parse_filter(s + 1, end, p);
        if (rc == -2)
            return -2;
        if (rc)
            return why_set(why, n,
                           "unsupported filter \"%.*s\" (supported: primary, primary eq true, "
                           "type eq \"<type>\")",
                           (int)(end - s - 1), s + 1);
        s = end + 1;
    }
    if (*s == '.') {
        s++;
        if (!(len = name_len(s)))
            return why_set(why, n, "expected a sub-attribute name at offset %zu",
                           (size_t)(s - text));
        if (!p->attr->subs)
            return why_set(why, n, "\"%s\" has no sub-attributes", p->attr->name);
        if (!(p->sub = find_sub(p->attr->subs, s, len)))
            return why_set(why, n, "unknown sub-attribute \"%.*s\" of \"%s\"", (int)len, s,
                           p->attr->name);
        s += len;
    }
    if (*s)
        return why_set(why, n,
                       "unexpected \"%s\" at offset %zu (a path has one attribute and at "
                       "most one sub-attribute)",
                       s, (size_t)(s - text));
    return path_complete(p, why, n);
}

static int parse_path(const char *text, mpath_t *p, char *why, size_t n)
{
    memset(p, 0, sizeof(*p));
    int rc = parse_path_parts(text, p, why, n);
    if (!rc && !(p->text = canonical_text(p)))
        rc = -2;
    if (rc)
        path_free(p);
    return rc;
}

/* ---- jp_mapping_new / destroy --------------------------------------------- */

/* Whether two paths reach the same container and attribute (enterprise 2.0
 * and 2.1 count as one, since they are read as aliases). */
static bool same_attr(const mpath_t *a, const mpath_t *b)
{
    if (a->attr != b->attr)
        return false;
    if (a->schema == b->schema)
        return true;
    return a->schema && b->schema && a->schema->alias && !strcmp(a->schema->alias, b->schema->urn);
}

static bool same_slot(const mpath_t *a, const mpath_t *b)
{
    return same_attr(a, b) && a->filter == b->filter && a->sub == b->sub &&
           (a->filter != F_TYPE || caseeq(a->type, b->type));
}

/* Two writing entries that would fight over one value. */
static jp_err_t check_writers(const jp_mapping_t *m, const int *order, size_t n, char *errstr,
                              size_t errstr_size)
{
    for (size_t j = 1; j < n; j++) {
        const entry_t *b = &m->e[order[j]];
        for (size_t i = 0; i < j && dir_writes(b->dir); i++) {
            const entry_t *a = &m->e[order[i]];
            if (!dir_writes(a->dir) || !same_attr(&a->path, &b->path))
                continue;
            if (same_slot(&a->path, &b->path))
                return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                                  "mapping[%zu] (%s): \"%s\" is already written by mapping[%zu] "
                                  "(%s)",
                                  b->index, jp_attr_name(order[j]), b->path.text, a->index,
                                  jp_attr_name(order[i]));
            if ((a->path.filter == F_PRIMARY) != (b->path.filter == F_PRIMARY))
                return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                                  "mapping[%zu] (%s): \"%s\" and mapping[%zu] (%s) \"%s\" mix "
                                  "[primary] with a type filter on one attribute, and both may "
                                  "select the same entry",
                                  b->index, jp_attr_name(order[j]), b->path.text, a->index,
                                  jp_attr_name(order[i]), a->path.text);
        }
    }
    return JP_OK;
}

static jp_err_t compile_entry(jp_mapping_t *m, const jp_config_mapping_t *c, size_t i,
                              int *attr_out, char *errstr, size_t errstr_size)
{
    int a = c->idhub ? jp_attr_parse(c->idhub) : -1;
    if (a < 0)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "mapping[%zu]: unknown IDHub attribute \"%.64s\"", i,
                          c->idhub ? c->idhub : "");
    entry_t *e = &m->e[a];
    const char *name = jp_attr_name((jp_attr_t)a);
    if (e->used)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "mapping[%zu] (%s): the attribute is already mapped by mapping[%zu]", i,
                          name, e->index);
    if ((unsigned)c->direction > JP_CONFIG_DIR_FROM_JIRA)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "mapping[%zu] (%s): unknown direction %d", i, name, (int)c->direction);
    if (!c->scim)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "mapping[%zu] (%s): the SCIM path is missing", i, name);
    char why[400];
    int rc = parse_path(c->scim, &e->path, why, sizeof(why));
    if (rc == -2)
        return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
    if (rc)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "mapping[%zu] (%s): \"%.80s\": %s",
                          i, name, c->scim, why);
    e->used = true;
    e->dir = c->direction;
    e->index = i;
    *attr_out = a;
    if ((e->path.attr->flags & A_READONLY) && c->direction != JP_CONFIG_DIR_FROM_JIRA)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "mapping[%zu] (%s): \"%s\" is read-only in SCIM, so only direction "
                          "from_jira is allowed",
                          i, name, e->path.text);
    return JP_OK;
}

jp_mapping_t *jp_mapping_new(const jp_config_mapping_t *entries, size_t n, char *errstr,
                             size_t errstr_size)
{
    if (n && !entries) {
        jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "mapping: no entries given");
        return NULL;
    }
    jp_mapping_t *m = calloc(1, sizeof(*m));
    if (!m) {
        jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
        return NULL;
    }
    int order[JP_ATTR__COUNT];
    jp_err_t rc = JP_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        int a = -1;
        rc = compile_entry(m, &entries[i], i, &a, errstr, errstr_size);
        /* Each attribute maps at most once, so success implies i < JP_ATTR__COUNT. */
        if (!rc && i < JP_ATTR__COUNT)
            order[i] = a;
    }
    if (!rc)
        rc = check_writers(m, order, n, errstr, errstr_size);
    if (rc) {
        jp_mapping_destroy(m);
        return NULL;
    }
    return m;
}

void jp_mapping_destroy(jp_mapping_t *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < JP_ATTR__COUNT; i++)
        path_free(&m->e[i].path);
    free(m);
}

void jp_mapping_swap(jp_mapping_t *a, jp_mapping_t *b)
{
    if (!a || !b || a == b)
        return;
    jp_mapping_t t = *a;
    *a = *b;
    *b = t;
}

static const entry_t *entry_of(const jp_mapping_t *m, jp_attr_t attr)
{
    if (!m || (unsigned)attr >= JP_ATTR__COUNT || !m->e[attr].used)
        return NULL;
    return &m->e[attr];
}

const char *jp_mapping_scim_path(const jp_mapping_t *m, jp_attr_t attr)
{
    const entry_t *e = entry_of(m, attr);
    return e ? e->path.text : NULL;
}

bool jp_mapping_writes(const jp_mapping_t *m, jp_attr_t attr)
{
    const entry_t *e = entry_of(m, attr);
    return e && dir_writes(e->dir);
}

bool jp_mapping_reads(const jp_mapping_t *m, jp_attr_t attr)
{
    const entry_t *e = entry_of(m, attr);
    return e && dir_reads(e->dir);
}

/* ---- reading a SCIM user ---------------------------------------------------- */

/* The object holding the path's attribute: the user, or its extension object
 * (under the configured URN, else its alias). */
static json_t *container(const mpath_t *p, const json_t *user)
{
    if (!json_is_object(user))
        return NULL;
    if (!p->schema)
        return (json_t *)user;
    json_t *c = get_ci(user, p->schema->urn);
    if (!c && p->schema->alias)
        c = get_ci(user, p->schema->alias);
    return json_is_object(c) ? c : NULL;
}

static bool entry_matches(const mpath_t *p, const json_t *ent)
{
    if (p->filter == F_PRIMARY) {
        const json_t *pr = get_ci(ent, "primary");
        /* Some servers send the flag as a string. */
        return json_is_true(pr) || (json_is_string(pr) && caseeq(json_string_value(pr), "true"));
    }
    const json_t *t = get_ci(ent, "type");
    return json_is_string(t) && caseeq(json_string_value(t), p->type);
}

/* The first entry of `arr` the filter selects, or NULL. When no entry is
 * marked primary, [primary] selects the first entry: it is the de facto
 * primary, and the jira module reads the primary email the same way. */
static json_t *select_entry(const mpath_t *p, const json_t *arr, size_t *idx)
{
    size_t i, first = 0;
    json_t *ent, *first_ent = NULL;
    json_array_foreach(arr, i, ent)
    {
        if (!json_is_object(ent))
            continue;
        if (!first_ent) {
            first_ent = ent;
            first = i;
        }
        if (entry_matches(p, ent)) {
            if (idx)
                *idx = i;
            return ent;
        }
    }
    if (p->filter != F_PRIMARY || !first_ent)
        return NULL;
    if (idx)
        *idx = first;
    return first_ent;
}

static const json_t *read_node(const mpath_t *p, const json_t *user)
{
    const json_t *v = get_ci(container(p, user), p->attr->name);
    if (p->filter != F_NONE)
        v = json_is_array(v) ? select_entry(p, v, NULL) : NULL;
    if (p->sub)
        v = get_ci(v, p->sub);
    return v;
}

/* A scalar as text; NULL for no value (missing, null, "", object, array). */
static const char *text_of(const json_t *v, char *buf, size_t n)
{
    int w;
    if (json_is_string(v))
        return no_value(json_string_value(v)) ? NULL : json_string_value(v);
    if (json_is_boolean(v))
        return json_is_true(v) ? "true" : "false";
    if (json_is_integer(v))
        w = snprintf(buf, n, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_real(v))
        w = snprintf(buf, n, "%.17g", json_real_value(v));
    else
        return NULL;
    return w > 0 && (size_t)w < n ? buf : NULL;
}

#define NUMBUF 32

const char *jp_mapping_scim_value(const jp_mapping_t *m, jp_attr_t attr, const json_t *scim_user,
                                  char *buf, size_t buf_size)
{
    const entry_t *e = entry_of(m, attr);
    if (!e || !buf)
        return NULL;
    return text_of(read_node(&e->path, scim_user), buf, buf_size);
}

bool jp_mapping_values_equal(jp_attr_t attr, const char *a, const char *b)
{
    if (no_value(a) || no_value(b))
        return no_value(a) && no_value(b);
    return folds_case(attr) ? caseeq(a, b) : !strcmp(a, b);
}

/* ---- writing ---------------------------------------------------------------- */

/* A new entry of a multi-valued attribute, carrying what the filter selects
 * on, so that the same filter finds it again. */
static json_t *new_entry(const mpath_t *p, const char *value)
{
    json_t *ent = json_object();
    if (!ent || json_object_set_new(ent, p->sub, json_string(value)))
        goto fail;
    if (json_object_set_new(ent, "type", json_string(p->filter == F_TYPE ? p->type : "work")))
        goto fail;
    if (p->filter == F_PRIMARY && json_object_set_new(ent, "primary", json_true()))
        goto fail;
    return ent;
fail:
    json_decref(ent);
    return NULL;
}

/* obj[key] as an object (an array with `array`), created (or replaced) when it is not one. */
static json_t *child(json_t *obj, const char *key, bool array)
{
    json_t *c = json_object_get(obj, key);
    if (array ? json_is_array(c) : json_is_object(c))
        return c;
    c = array ? json_array() : json_object();
    return c && !json_object_set_new(obj, key, c) ? c : NULL;
}

static json_t *child_object(json_t *obj, const char *key)
{
    return child(obj, key, false);
}

static json_t *child_array(json_t *obj, const char *key)
{
    return child(obj, key, true);
}

/* Puts one value into a create body at p. Returns 0 or -1 (no memory). */
static int put_value(json_t *body, json_t *schemas, const mpath_t *p, const char *value)
{
    json_t *c = body;
    if (p->schema) {
        if (!json_object_get(body, p->schema->urn) &&
            json_array_append_new(schemas, json_string(p->schema->urn)))
            return -1;
        if (!(c = child_object(body, p->schema->urn)))
            return -1;
    }
    if (p->filter != F_NONE) {
        json_t *arr = child_array(c, p->attr->name);
        if (!arr)
            return -1;
        json_t *ent = select_entry(p, arr, NULL);
        if (ent)
            return json_object_set_new(ent, p->sub, json_string(value));
        return json_array_append_new(arr, new_entry(p, value));
    }
    if (p->sub && !(c = child_object(c, p->attr->name)))
        return -1;
    return json_object_set_new(c, p->sub ? p->sub : p->attr->name, json_string(value));
}

/* Atlassian needs one primary email (notes §1.1). */
static int ensure_primary_email(json_t *body)
{
    json_t *emails = json_object_get(body, "emails");
    size_t i;
    json_t *ent;
    if (!json_array_size(emails))
        return 0;
    json_array_foreach(emails, i, ent)
    {
        if (json_is_true(json_object_get(ent, "primary")))
            return 0;
    }
    return json_object_set_new(json_array_get(emails, 0), "primary", json_true());
}

static jp_err_t check_desired(const jp_attr_t attr, const char *v, char *errstr, size_t n)
{
    if (v && !jp_utf8_valid(v))
        return jp_err_set(errstr, n, JP_ERR_INVALID, "%s: the value is not valid UTF-8",
                          jp_attr_name(attr));
    return JP_OK;
}

jp_err_t jp_mapping_scim_user_for_create(const jp_mapping_t *m, const jp_account_attrs_t *a,
                                         json_t **out, char *errstr, size_t errstr_size)
{
    if (!out)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "create: no output given");
    *out = NULL;
    if (!m || !a)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "create: a mapping and attributes are required");
    json_t *schemas = json_array();
    json_t *body = json_object();
    if (!schemas || !body || json_array_append_new(schemas, json_string(JP_SCIM_SCHEMA_USER)) ||
        json_object_set(body, "schemas", schemas))
        goto nomem;
    for (int i = 0; i < JP_ATTR__COUNT; i++) {
        const entry_t *e = &m->e[i];
        const jp_optstr_t *v = &a->attr[i];
        if (!e->used || !dir_writes(e->dir) || v->state != JP_VALUE || no_value(v->value))
            continue;
        jp_err_t rc = check_desired((jp_attr_t)i, v->value, errstr, errstr_size);
        if (rc) {
            json_decref(schemas);
            json_decref(body);
            return rc;
        }
        if (put_value(body, schemas, &e->path, v->value))
            goto nomem;
    }
    if (ensure_primary_email(body) || json_object_set_new(body, "active", json_boolean(a->active)))
        goto nomem;
    json_decref(schemas);
    const char *missing = !json_object_get(body, "userName") ? "userName"
                          : !json_object_get(body, "emails") ? "emails"
                                                             : NULL;
    if (missing) {
        json_decref(body);
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "create: the SCIM user has no %s, which Atlassian requires (map %s to "
                          "%s with direction both or to_jira, and give it a value)",
                          missing, missing[0] == 'u' ? "login" : "email",
                          missing[0] == 'u' ? "userName" : "emails[primary].value");
    }
    *out = body;
    return JP_OK;
nomem:
    json_decref(schemas);
    json_decref(body);
    return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
}

/* ---- patch ------------------------------------------------------------------ */

/* The working copy of one multi-valued attribute while a patch is built. */
typedef struct multi {
    const mpath_t *path; /* the first changed entry's path (container, attribute) */
    json_t *arr;         /* owned */
    json_t *op;          /* borrowed from the operations array */
} multi_t;

typedef struct patch_ctx {
    const json_t *current;
    json_t *ops;
    multi_t multi[JP_ATTR__COUNT];
    size_t n_multi;
} patch_ctx_t;

static int add_op(json_t *ops, const char *op, const char *path, json_t *value)
{
    json_t *o = json_pack("{s:s, s:s}", "op", op, "path", path);
    if (!o) {
        json_decref(value);
        return -1;
    }
    /* json_object_set_new() releases `value` itself when it fails. */
    if (value && json_object_set_new(o, "value", value)) {
        json_decref(o);
        return -1;
    }
    return json_array_append_new(ops, o);
}

static multi_t *multi_for(patch_ctx_t *x, const mpath_t *p)
{
    for (size_t i = 0; i < x->n_multi; i++)
        if (same_attr(x->multi[i].path, p))
            return &x->multi[i];
    char path[256];
    snprintf(path, sizeof(path), "%s%s%s", p->schema ? p->schema->urn : "", p->schema ? ":" : "",
             p->attr->name);
    const json_t *cur = get_ci(container(p, x->current), p->attr->name);
    json_t *arr = json_is_array(cur) ? json_deep_copy(cur) : json_array();
    if (!arr || add_op(x->ops, "replace", path, NULL)) {
        json_decref(arr);
        return NULL;
    }
    multi_t *mv = &x->multi[x->n_multi++];
    mv->path = p;
    mv->arr = arr;
    mv->op = json_array_get(x->ops, json_array_size(x->ops) - 1);
    return mv;
}

/* Applies one changed multi-valued entry to the working copy. */
static int patch_multi(patch_ctx_t *x, const mpath_t *p, const char *want)
{
    multi_t *mv = multi_for(x, p);
    if (!mv)
        return -1;
    size_t idx = 0;
    json_t *ent = select_entry(p, mv->arr, &idx);
    if (want && !ent)
        return json_array_append_new(mv->arr, new_entry(p, want));
    if (want) {
        /* An entry chosen as the de facto primary becomes the marked one. */
        if (p->filter == F_PRIMARY && !entry_matches(p, ent)) {
            del_ci(ent, "primary");
            if (json_object_set_new(ent, "primary", json_true()))
                return -1;
        }
        del_ci(ent, p->sub);
        return json_object_set_new(ent, p->sub, json_string(want));
    }
    if (!ent)
        return 0;
    if (!strcmp(p->sub, "value"))
        return json_array_remove(mv->arr, idx);
    del_ci(ent, p->sub);
    return 0;
}

/* Gives each multi-valued operation its final array, or turns it into a
 * remove when the array ended up empty. */
static int finish_multi(patch_ctx_t *x)
{
    int rc = 0;
    for (size_t i = 0; i < x->n_multi; i++) {
        multi_t *mv = &x->multi[i];
        if (!rc && json_array_size(mv->arr) == 0)
            rc = json_object_set_new(mv->op, "op", json_string("remove"));
        else if (!rc)
            rc = json_object_set(mv->op, "value", mv->arr);
        json_decref(mv->arr);
        mv->arr = NULL;
    }
    x->n_multi = 0;
    return rc;
}

static void patch_ctx_clear(patch_ctx_t *x)
{
    for (size_t i = 0; i < x->n_multi; i++)
        json_decref(x->multi[i].arr);
    json_decref(x->ops);
}

/* One attribute: records and emits a change when desired and current differ.
 * Returns JP_OK, JP_ERR_INVALID (bad desired value) or JP_ERR_NOMEM. */
static jp_err_t patch_attr(patch_ctx_t *x, jp_attr_t attr, const entry_t *e, const jp_optstr_t *d,
                           jp_mapping_changes_t *ch, char *errstr, size_t errstr_size)
{
    if (!e->used || !dir_writes(e->dir) || d->state == JP_ABSENT)
        return JP_OK;
    const char *want = d->state == JP_VALUE && !no_value(d->value) ? d->value : NULL;
    jp_err_t rc = check_desired(attr, want, errstr, errstr_size);
    if (rc)
        return rc;
    char buf[NUMBUF];
    const char *have = text_of(read_node(&e->path, x->current), buf, sizeof(buf));
    if (jp_mapping_values_equal(attr, want, have))
        return JP_OK;
    ch->attrs[ch->n_attrs++] = attr;
    int r;
    if (e->path.filter != F_NONE)
        r = patch_multi(x, &e->path, want);
    else
        r = add_op(x->ops, want ? "replace" : "remove", e->path.text,
                   want ? json_string(want) : NULL);
    return r ? jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory") : JP_OK;
}

jp_err_t jp_mapping_scim_patch(const jp_mapping_t *m, const jp_account_attrs_t *desired,
                               const json_t *current, json_t **out, jp_mapping_changes_t *changes,
                               char *errstr, size_t errstr_size)
{
    jp_mapping_changes_t ch;
    memset(&ch, 0, sizeof(ch));
    if (changes)
        *changes = ch;
    if (!out)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "patch: no output given");
    *out = NULL;
    if (!m || !desired)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "patch: a mapping and desired attributes are required");
    if (!json_is_object(current))
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "patch: the current SCIM user is not a JSON object");
    patch_ctx_t x = {.current = current, .ops = json_array(), .n_multi = 0};
    if (!x.ops)
        return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
    jp_err_t rc = JP_OK;
    for (int i = 0; i < JP_ATTR__COUNT && !rc; i++)
        rc = patch_attr(&x, (jp_attr_t)i, &m->e[i], &desired->attr[i], &ch, errstr, errstr_size);
    if (!rc && desired->active_state == JP_VALUE) {
        const json_t *cur = get_ci(current, "active");
        if (!json_is_boolean(cur) || json_is_true(cur) != desired->active) {
            ch.active = true;
            if (add_op(x.ops, "replace", "active", json_boolean(desired->active)))
                rc = jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
        }
    }
    if (!rc && finish_multi(&x))
        rc = jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
    ch.count = ch.n_attrs + (ch.active ? 1 : 0);
    if (rc || ch.count == 0) {
        patch_ctx_clear(&x);
        return rc;
    }
    /* The jansson setters release the value they are given even on failure,
     * so each reference below is consumed exactly once. */
    json_t *body = json_object();
    json_t *schemas = json_array();
    int bad = json_array_append_new(schemas, json_string(JP_SCIM_SCHEMA_PATCHOP));
    bad |= json_object_set_new(body, "schemas", schemas);
    bad |= json_object_set_new(body, "Operations", x.ops);
    if (bad) {
        json_decref(body);
        return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
    }
    if (changes)
        *changes = ch;
    *out = body;
    return JP_OK;
}

json_t *jp_mapping_changes_names(const jp_mapping_changes_t *c)
{
    json_t *names = json_array();
    if (!names || !c)
        return names;
    for (size_t i = 0; i < c->n_attrs && i < JP_ATTR__COUNT; i++) {
        const char *n = jp_attr_name(c->attrs[i]);
        if (n && json_array_append_new(names, json_string(n)))
            goto fail;
    }
    if (c->active && json_array_append_new(names, json_string("active")))
        goto fail;
    return names;
fail:
    json_decref(names);
    return NULL;
}

/* ---- reconciliation --------------------------------------------------------- */

static json_t *account_id(const json_t *user)
{
    const json_t *ext = get_ci(user, JP_SCIM_SCHEMA_ATLASSIAN);
    if (!json_is_object(ext))
        ext = get_ci(user, ATLASSIAN_11);
    const json_t *id = get_ci(ext, "atlassianAccountId");
    if (json_is_string(id) && !no_value(json_string_value(id)))
        return json_string(json_string_value(id));
    return json_null();
}

static json_t *read_attributes(const jp_mapping_t *m, const json_t *user)
{
    json_t *attrs = json_object();
    for (int i = 0; attrs && i < JP_ATTR__COUNT; i++) {
        const entry_t *e = &m->e[i];
        char buf[NUMBUF];
        if (!e->used || !dir_reads(e->dir))
            continue;
        const char *v = text_of(read_node(&e->path, user), buf, sizeof(buf));
        if (v && json_object_set_new(attrs, jp_attr_name((jp_attr_t)i), json_string(v))) {
            json_decref(attrs);
            return NULL;
        }
    }
    return attrs;
}

jp_err_t jp_mapping_idhub_from_scim(const jp_mapping_t *m, const json_t *scim_user, json_t **out,
                                    char *errstr, size_t errstr_size)
{
    if (!out)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "recon: no output given");
    *out = NULL;
    if (!m)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "recon: a mapping is required");
    if (!json_is_object(scim_user))
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "SCIM user: expected a JSON object");
    const json_t *id = get_ci(scim_user, "id");
    if (!json_is_string(id) || no_value(json_string_value(id)))
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "SCIM user: id: expected a non-empty string");
    const json_t *active = get_ci(scim_user, "active");
    json_t *rec = json_object();
    /* Each json_object_set_new() releases its value even when it fails. */
    if (!rec || json_object_set_new(rec, "attributes", read_attributes(m, scim_user)) ||
        json_object_set_new(rec, "active",
                            json_is_boolean(active) ? json_boolean(json_is_true(active))
                                                    : json_null()) ||
        json_object_set_new(rec, "scimId", json_string(json_string_value(id))) ||
        json_object_set_new(rec, "accountId", account_id(scim_user))) {
        json_decref(rec);
        return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
    }
    *out = rec;
    return JP_OK;
}

/* FNV-1a, 64-bit. */
#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME  0x100000001b3ull

static uint64_t fnv(uint64_t h, const void *data, size_t n, bool fold)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= fold ? lower(p[i]) : p[i];
        h *= FNV_PRIME;
    }
    return h;
}

/* Length-prefixed, so that no two value sequences hash the same bytes. */
static uint64_t fnv_value(uint64_t h, const char *v, bool fold)
{
    unsigned char tag = v ? 1 : 0;
    h = fnv(h, &tag, 1, false);
    if (!v)
        return h;
    uint64_t len = strlen(v);
    unsigned char le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (unsigned char)(len >> (8 * i));
    h = fnv(h, le, sizeof(le), false);
    return fnv(h, v, (size_t)len, fold);
}

uint64_t jp_mapping_fingerprint(const jp_mapping_t *m, const json_t *scim_user)
{
    uint64_t h = FNV_OFFSET;
    if (!m)
        return h;
    for (int i = 0; i < JP_ATTR__COUNT; i++) {
        const entry_t *e = &m->e[i];
        char buf[NUMBUF];
        if (!e->used || !dir_reads(e->dir))
            continue;
        const char *name = jp_attr_name((jp_attr_t)i);
        h = fnv(h, name, strlen(name) + 1, false);
        const char *v = text_of(read_node(&e->path, scim_user), buf, sizeof(buf));
        h = fnv_value(h, v, folds_case((jp_attr_t)i));
    }
    const json_t *active = get_ci(scim_user, "active");
    unsigned char a = !json_is_boolean(active) ? 0 : json_is_true(active) ? 1 : 2;
    h = fnv(h, "active", sizeof("active"), false);
    return fnv(h, &a, 1, false);
}
