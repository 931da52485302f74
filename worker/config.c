/* Configuration loader: YAML (libyaml event API) -> node tree with positions
 * -> typed jp_config_t, driven by one field table per section. The same
 * tables give the defaults, the unknown-key hints and the dump. */
#include "jiraprov/config.h"
#include "jiraprov/utf8.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#define CFG_MAX_FILE        (1024 * 1024)
#define CFG_MAX_SECRET_FILE (64 * 1024)
#define CFG_MAX_DEPTH       32
#define CFG_PATH_MAX        256
#define CFG_MSG_MAX         1024
#define CFG_MAX_FIELDS      32
#define CFG_GOT_MAX         48

#define REDACTED "[redacted]"

/* Enums are written through an int lvalue by the table-driven loader. */
_Static_assert(sizeof(jp_config_lifecycle_t) == sizeof(int), "enum size");
_Static_assert(sizeof(jp_config_groups_t) == sizeof(int), "enum size");
_Static_assert(sizeof(jp_config_direction_t) == sizeof(int), "enum size");
_Static_assert(sizeof(jp_log_level_t) == sizeof(int), "enum size");

/* ------------------------------------------------------------------------ */
/* Node tree                                                                */

typedef enum { N_SCALAR, N_MAP, N_SEQ } nkind_t;

typedef struct node {
    nkind_t kind;
    int line, col; /* 1-based */
    char *text;    /* scalar value, NUL-terminated */
    size_t len;
    bool plain;         /* plain (unquoted) scalar: may be null */
    struct node **kids; /* map: key, value, key, value...; seq: items */
    size_t n, cap;
} node_t;

static void node_free(node_t *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->n; i++)
        node_free(n->kids[i]);
    free(n->kids);
    free(n->text);
    free(n);
}

static bool node_is_null(const node_t *n)
{
    if (n->kind != N_SCALAR || !n->plain)
        return false;
    return n->len == 0 || !strcmp(n->text, "~") || !strcmp(n->text, "null") ||
           !strcmp(n->text, "Null") || !strcmp(n->text, "NULL");
}

static const char *node_kind_name(const node_t *n)
{
    if (n->kind == N_MAP)
        return "a mapping";
    if (n->kind == N_SEQ)
        return "a sequence";
    return node_is_null(n) ? "null" : "a scalar";
}

/* Value node of `key` in a mapping, or NULL. */
static const node_t *map_get(const node_t *map, const char *key)
{
    if (!map || map->kind != N_MAP)
        return NULL;
    for (size_t i = 0; i + 1 < map->n; i += 2)
        if (!strcmp(map->kids[i]->text, key))
            return map->kids[i + 1];
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Load context and errors                                                  */

typedef struct ld {
    const char *name;
    char *errstr;
    size_t errsize;
    bool world_readable;
    unsigned mode;
    jp_config_t *cfg;
    char *url_password; /* password found in redis.url, until merged */
    const node_t *url_node;
} ld_t;

/* Copies s into buf as message text: control characters and bytes that are
 * not UTF-8 become \xNN (a key may hold a TAB; errors are one line). */
static const char *clean(const char *s, char *buf, size_t size)
{
    size_t o = 0;
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; u[i] && o + 5 < size;) {
        size_t n = jp_utf8_decode(u + i, strnlen((const char *)u + i, 4), NULL);
        if (n == 0 || u[i] < 0x20 || u[i] == 0x7f) {
            o += (size_t)snprintf(buf + o, size - o, "\\x%02x", u[i]);
            i++;
        } else {
            if (o + n + 1 > size)
                break;
            memcpy(buf + o, s + i, n);
            o += n;
            i += n;
        }
    }
    buf[o] = '\0';
    return buf;
}

/* Every message is cleaned as a whole: key names (quoted or not) and file
 * names are the file's text and may hold a TAB or a stray byte. */
__attribute__((format(printf, 5, 6))) static jp_err_t fail(ld_t *ld, jp_err_t err, const node_t *at,
                                                           const char *path, const char *fmt, ...)
{
    char msg[CFG_MSG_MAX], full[2 * CFG_MSG_MAX], text[8 * CFG_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    char pos[40] = "";
    if (at)
        snprintf(pos, sizeof(pos), ":%d:%d", at->line, at->col);
    bool has_path = path && *path;
    snprintf(full, sizeof(full), "%s%s: %s%s%s", ld->name, pos, has_path ? path : "",
             has_path ? ": " : "", msg);
    return jp_err_set(ld->errstr, ld->errsize, err, "%s", clean(full, text, sizeof(text)));
}

static jp_err_t nomem(ld_t *ld)
{
    return jp_err_set(ld->errstr, ld->errsize, JP_ERR_NOMEM, "%s: out of memory", ld->name);
}

/* `"text"` for messages: escaped (control characters and bytes that are not
 * UTF-8 as \xNN), cut after about CFG_GOT_MAX bytes, never inside a
 * character. */
static const char *quote(const char *s, char *buf, size_t size)
{
    size_t o = 0;
    buf[o++] = '"';
    size_t i;
    for (i = 0; s[i] && i < CFG_GOT_MAX && o + 6 < size;) {
        unsigned char c = (unsigned char)s[i];
        size_t n = jp_utf8_decode((const unsigned char *)s + i, strnlen(s + i, 4), NULL);
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (n == 0 || c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
            n = 1;
        } else {
            if (o + n + 2 > size)
                break;
            memcpy(buf + o, s + i, n);
            o += n;
            i += n;
            continue;
        }
        i++;
    }
    if (s[i] && o + 4 < size) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

/* Key paths only label error messages: a path cut short at `size` is fine,
 * hence the ignored truncation (checking the result keeps -O2 quiet). */
static void path_key(char *dst, size_t size, const char *parent, const char *key)
{
    int n = (!parent || !*parent) ? snprintf(dst, size, "%s", key)
                                  : snprintf(dst, size, "%s.%s", parent, key);
    if (n < 0 && size)
        dst[0] = '\0';
}

static void path_index(char *dst, size_t size, const char *parent, size_t i)
{
    if (snprintf(dst, size, "%s[%zu]", parent, i) < 0 && size)
        dst[0] = '\0';
}

/* ------------------------------------------------------------------------ */
/* YAML -> node tree                                                        */

static jp_err_t syntax_error(ld_t *ld, yaml_parser_t *p)
{
    if (p->error == YAML_MEMORY_ERROR)
        return nomem(ld);
    const char *problem = p->problem ? p->problem : "unknown problem";
    if (p->error == YAML_READER_ERROR)
        return jp_err_set(ld->errstr, ld->errsize, JP_ERR_INVALID,
                          "%s: YAML syntax error: %s at byte %zu", ld->name, problem,
                          p->problem_offset);
    node_t at = {.line = (int)p->problem_mark.line + 1, .col = (int)p->problem_mark.column + 1};
    if (p->context)
        return fail(ld, JP_ERR_INVALID, &at, NULL, "YAML syntax error: %s (%s at %d:%d)", problem,
                    p->context, (int)p->context_mark.line + 1, (int)p->context_mark.column + 1);
    return fail(ld, JP_ERR_INVALID, &at, NULL, "YAML syntax error: %s", problem);
}

static jp_err_t next_event(ld_t *ld, yaml_parser_t *p, yaml_event_t *ev)
{
    if (!yaml_parser_parse(p, ev))
        return syntax_error(ld, p);
    return JP_OK;
}

static jp_err_t node_push(ld_t *ld, node_t *parent, node_t *kid)
{
    if (parent->n == parent->cap) {
        size_t cap = parent->cap ? parent->cap * 2 : 8;
        node_t **grown = realloc(parent->kids, cap * sizeof(*grown));
        if (!grown)
            return nomem(ld);
        parent->kids = grown;
        parent->cap = cap;
    }
    parent->kids[parent->n++] = kid;
    return JP_OK;
}

static jp_err_t build_node(ld_t *ld, yaml_parser_t *p, yaml_event_t *ev, int depth, node_t **out);

/* Children of a sequence or mapping, until its end event. */
static jp_err_t build_children(ld_t *ld, yaml_parser_t *p, node_t *n, yaml_event_type_t end,
                               int depth)
{
    for (;;) {
        yaml_event_t ev;
        jp_err_t rc = next_event(ld, p, &ev);
        if (rc)
            return rc;
        if (ev.type == end) {
            yaml_event_delete(&ev);
            return JP_OK;
        }
        node_t *kid = NULL;
        rc = build_node(ld, p, &ev, depth + 1, &kid);
        yaml_event_delete(&ev);
        if (rc)
            return rc;
        if (n->kind == N_MAP && n->n % 2 == 0 && kid->kind != N_SCALAR) {
            rc = fail(ld, JP_ERR_INVALID, kid, NULL, "expected a scalar mapping key, got %s",
                      node_kind_name(kid));
            node_free(kid);
            return rc;
        }
        if ((rc = node_push(ld, n, kid))) {
            node_free(kid);
            return rc;
        }
    }
}

static jp_err_t build_node(ld_t *ld, yaml_parser_t *p, yaml_event_t *ev, int depth, node_t **out)
{
    node_t *n = calloc(1, sizeof(*n));
    if (!n)
        return nomem(ld);
    n->line = (int)ev->start_mark.line + 1;
    n->col = (int)ev->start_mark.column + 1;
    jp_err_t rc = JP_OK;
    if (depth > CFG_MAX_DEPTH) {
        rc = fail(ld, JP_ERR_INVALID, n, NULL, "nesting deeper than %d levels", CFG_MAX_DEPTH);
    } else if (ev->type == YAML_SCALAR_EVENT) {
        n->kind = N_SCALAR;
        n->len = ev->data.scalar.length;
        n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        if (memchr(ev->data.scalar.value, '\0', n->len))
            rc = fail(ld, JP_ERR_INVALID, n, NULL, "scalar contains a NUL character");
        else if (!(n->text = malloc(n->len + 1)))
            rc = nomem(ld);
        else {
            memcpy(n->text, ev->data.scalar.value, n->len);
            n->text[n->len] = '\0';
        }
    } else if (ev->type == YAML_SEQUENCE_START_EVENT) {
        n->kind = N_SEQ;
        rc = build_children(ld, p, n, YAML_SEQUENCE_END_EVENT, depth);
    } else if (ev->type == YAML_MAPPING_START_EVENT) {
        n->kind = N_MAP;
        rc = build_children(ld, p, n, YAML_MAPPING_END_EVENT, depth);
    } else if (ev->type == YAML_ALIAS_EVENT) {
        rc = fail(ld, JP_ERR_INVALID, n, NULL, "YAML aliases (*name) are not supported");
    } else {
        rc = fail(ld, JP_ERR_INVALID, n, NULL, "unexpected YAML event %d", (int)ev->type);
    }
    if (rc) {
        node_free(n);
        return rc;
    }
    *out = n;
    return JP_OK;
}

/* The document's root node; *root stays NULL for an empty stream. */
static jp_err_t build_tree(ld_t *ld, yaml_parser_t *p, node_t **root)
{
    int docs = 0;
    for (;;) {
        yaml_event_t ev;
        jp_err_t rc = next_event(ld, p, &ev);
        if (rc)
            return rc;
        yaml_event_type_t type = ev.type;
        if (type == YAML_STREAM_END_EVENT) {
            yaml_event_delete(&ev);
            return JP_OK;
        }
        if (type == YAML_DOCUMENT_START_EVENT && docs++ > 0) {
            node_t at = {.line = (int)ev.start_mark.line + 1, .col = (int)ev.start_mark.column + 1};
            yaml_event_delete(&ev);
            return fail(ld, JP_ERR_INVALID, &at, NULL,
                        "expected a single YAML document, found a second one");
        }
        if (type == YAML_SCALAR_EVENT || type == YAML_SEQUENCE_START_EVENT ||
            type == YAML_MAPPING_START_EVENT || type == YAML_ALIAS_EVENT) {
            rc = build_node(ld, p, &ev, 0, root);
            yaml_event_delete(&ev);
            if (rc)
                return rc;
            continue;
        }
        yaml_event_delete(&ev);
    }
}

/* ------------------------------------------------------------------------ */
/* ${VAR} expansion                                                         */

/* Output text plus, per byte, whether it came literally from the file (as
 * opposed to the environment): that decides if a secret is "inline". */
typedef struct sbuf {
    char *text;
    char *lit;
    size_t len, cap;
} sbuf_t;

static int sb_put(sbuf_t *b, const char *s, size_t n, char literal)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *t = realloc(b->text, cap);
        if (!t)
            return -1;
        b->text = t;
        char *l = realloc(b->lit, cap);
        if (!l)
            return -1;
        b->lit = l;
        b->cap = cap;
    }
    memcpy(b->text + b->len, s, n);
    memset(b->lit + b->len, literal, n);
    b->len += n;
    b->text[b->len] = '\0';
    return 0;
}

static bool valid_var_name(const char *s, size_t n)
{
    if (n == 0 || n > 255 || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_'))
            return false;
    return true;
}

/* One ${...} reference starting at s[0] == '$', s[1] == '{'; *used = bytes
 * consumed. */
static jp_err_t expand_ref(ld_t *ld, const node_t *v, const char *path, const char *s, size_t n,
                           sbuf_t *b, size_t *used)
{
    const char *close = memchr(s + 2, '}', n - 2);
    if (!close)
        return fail(ld, JP_ERR_INVALID, v, path, "unterminated ${ (write $$ for a literal $)");
    const char *name = s + 2;
    size_t inner = (size_t)(close - name), nlen = inner;
    const char *dflt = NULL;
    for (size_t k = 0; k + 1 < inner; k++)
        if (name[k] == ':' && name[k + 1] == '-') {
            nlen = k;
            dflt = name + k + 2;
            break;
        }
    if (!valid_var_name(name, nlen))
        return fail(ld, JP_ERR_INVALID, v, path,
                    "invalid ${...} reference: a variable name is [A-Za-z_][A-Za-z0-9_]* "
                    "(write $$ for a literal $)");
    char var[256];
    memcpy(var, name, nlen);
    var[nlen] = '\0';
    const char *val = getenv(var);
    int rc;
    if (dflt && (!val || !*val))
        rc = sb_put(b, dflt, (size_t)(close - dflt), 1);
    else if (!val)
        return fail(ld, JP_ERR_INVALID, v, path,
                    "environment variable %s is not set (use ${%s:-default} for a default)", var,
                    var);
    else
        rc = sb_put(b, val, strlen(val), 0);
    if (rc)
        return nomem(ld);
    *used = (size_t)(close - s) + 1;
    return JP_OK;
}

/* Expand a scalar. *text and *lit (same length) are the caller's to free. */
static jp_err_t expand(ld_t *ld, const node_t *v, const char *path, char **text, char **lit)
{
    sbuf_t b = {0};
    const char *s = v->text;
    size_t i = 0;
    jp_err_t rc = JP_OK;
    if (sb_put(&b, "", 0, 0))
        rc = nomem(ld);
    while (!rc && i < v->len) {
        size_t used = 1;
        if (s[i] == '$' && i + 1 < v->len && s[i + 1] == '$') {
            used = 2;
            if (sb_put(&b, "$", 1, 1))
                rc = nomem(ld);
        } else if (s[i] == '$' && i + 1 < v->len && s[i + 1] == '{') {
            rc = expand_ref(ld, v, path, s + i, v->len - i, &b, &used);
        } else if (sb_put(&b, s + i, 1, 1)) {
            rc = nomem(ld);
        }
        i += used;
    }
    if (rc) {
        free(b.text);
        free(b.lit);
        return rc;
    }
    *text = b.text;
    *lit = b.lit;
    return JP_OK;
}

static bool any_literal(const char *lit, size_t from, size_t to)
{
    for (size_t i = from; lit && i < to; i++)
        if (lit[i])
            return true;
    return false;
}

/* ------------------------------------------------------------------------ */
/* Field tables                                                             */

typedef enum {
    FT_STR,       /* any string */
    FT_NONEMPTY,  /* non-empty string */
    FT_TOPIC,     /* Kafka topic name */
    FT_URL,       /* http(s) URL, trailing '/' removed */
    FT_SITENAME,  /* [a-z0-9_-]{1,64} */
    FT_EMAIL,     /* something@domain */
    FT_LISTEN,    /* host:port or "" */
    FT_PATH,      /* non-empty file path */
    FT_SCIMPATH,  /* SCIM attribute path */
    FT_ATTR,      /* string from `choices` */
    FT_REDIS_URL, /* redis:// or unix:// URL, parsed into cfg->redis */
    FT_SECRET,    /* secret string; also accepted as <key>_file */
    FT_INT,       /* int in [min, max] */
    FT_DBL,       /* double in [min, max] */
    FT_BOOL,      /* true|false */
    FT_ENUM       /* int index into `choices` */
} ftype_t;

#define F_REQUIRED 1u

typedef struct field {
    const char *key;
    ftype_t type;
    size_t off; /* from the section's base */
    unsigned flags;
    const char *def; /* default as it would be written in the file; NULL = none */
    double min, max;
    const char *const *choices; /* NULL-terminated */
} field_t;

#define NFIELDS(a) (sizeof(a) / sizeof((a)[0]))
#define CF(m)      offsetof(jp_config_t, m)
#define SF(m)      offsetof(jp_site_t, m)
#define RF(m)      offsetof(jp_config_rate_limits_t, m)
#define MF(m)      offsetof(jp_config_mapping_t, m)

#define F_S(k, t, o, fl, d)                                                                        \
    {                                                                                              \
        .key = k, .type = t, .off = o, .flags = fl, .def = d                                       \
    }
#define F_I(k, o, d, lo, hi)                                                                       \
    {                                                                                              \
        .key = k, .type = FT_INT, .off = o, .def = d, .min = lo, .max = hi                         \
    }
#define F_D(k, o, d, lo, hi)                                                                       \
    {                                                                                              \
        .key = k, .type = FT_DBL, .off = o, .def = d, .min = lo, .max = hi                         \
    }
#define F_B(k, o, d)                                                                               \
    {                                                                                              \
        .key = k, .type = FT_BOOL, .off = o, .def = d                                              \
    }
#define F_E(k, o, fl, d, c)                                                                        \
    {                                                                                              \
        .key = k, .type = FT_ENUM, .off = o, .flags = fl, .def = d, .choices = c                   \
    }
#define F_SECRET(k, o, fl)                                                                         \
    {                                                                                              \
        .key = k, .type = FT_SECRET, .off = o, .flags = fl                                         \
    }

static const char *const lifecycle_names[] = {"scim", "admin", NULL};
static const char *const groups_names[] = {"scim", "jira", NULL};
static const char *const direction_names[] = {"both", "to_jira", "from_jira", NULL};
static const char *const level_names[] = {"debug", "info", "warn", "error", NULL};
_Static_assert(JP_LOG_DEBUG == 0 && JP_LOG_INFO == 1 && JP_LOG_WARN == 2 && JP_LOG_ERROR == 3,
               "level_names follows jp_log_level_t");
static const char *const idhub_attrs[] = {
    "login",    "email",      "firstName",        "lastName", "displayName", "nickName",
    "jobTitle", "department", "organizationName", "timezone", "externalId",  NULL};

static const field_t topics_fields[] = {
    F_S("events", FT_TOPIC, CF(topics.events), 0, "idhub.events"),
    F_S("results", FT_TOPIC, CF(topics.results), 0, "jiraprov.results"),
    F_S("recon", FT_TOPIC, CF(topics.recon), 0, "jiraprov.recon"),
    F_S("audit", FT_TOPIC, CF(topics.audit), 0, "jiraprov.audit"),
    F_S("dead_letter", FT_TOPIC, CF(topics.dead_letter), 0, "jiraprov.dlq"),
};

static const field_t consumer_fields[] = {
    F_S("group", FT_NONEMPTY, CF(consumer.group), 0, "jiraprov"),
};

static const field_t redis_fields[] = {
    F_S("url", FT_REDIS_URL, CF(redis.url), F_REQUIRED, NULL),
    F_SECRET("password", CF(redis.password), 0),
    F_I("timeout_ms", CF(redis.timeout_ms), "2000", 1, 600000),
    F_S("key_prefix", FT_STR, CF(redis.key_prefix), 0, "jiraprov:"),
};

static const field_t retry_fields[] = {
    F_I("max_attempts", CF(retry.max_attempts), "6", 1, 100),
    F_I("base_delay_ms", CF(retry.base_delay_ms), "2000", 1, 3600000),
    F_I("max_delay_ms", CF(retry.max_delay_ms), "60000", 1, 86400000),
    F_I("max_age_s", CF(retry.max_age_s), "86400", 1, 2592000),
    F_D("jitter", CF(retry.jitter), "0.3", 0, 1),
};

static const field_t rate_fields[] = {
    F_B("shared", RF(shared), "true"),
    F_I("get_per_s", RF(get_per_s), "100", 1, 100000),
    F_I("post_per_s", RF(post_per_s), "100", 1, 100000),
    F_I("put_per_s", RF(put_per_s), "50", 1, 100000),
    F_I("delete_per_s", RF(delete_per_s), "50", 1, 100000),
    F_I("issue_writes_per_2s", RF(issue_writes_per_2s), "20", 1, 100000),
    F_I("issue_writes_per_30s", RF(issue_writes_per_30s), "100", 1, 1000000),
    F_I("hourly_points", RF(hourly_points), "0", 0, 1000000000),
    F_D("deprovision_reserve", RF(deprovision_reserve), "0.2", 0, 0.9),
    F_D("near_limit_slowdown", RF(near_limit_slowdown), "0.5", 0, 1),
    F_I("quarantine_after", RF(quarantine_after), "3", 1, 1000),
    F_I("quarantine_probe_s", RF(quarantine_probe_s), "30", 1, 86400),
};

static const field_t worker_fields[] = {
    F_S("instance_id", FT_STR, CF(worker.instance_id), 0, ""),
    F_I("max_in_flight", CF(worker.max_in_flight), "512", 1, 65536),
    F_I("max_buffered_events", CF(worker.max_buffered_events), "10000", 1, 10000000),
    F_I("drain_timeout_ms", CF(worker.drain_timeout_ms), "30000", 0, 3600000),
    F_I("outcome_ttl_s", CF(worker.outcome_ttl_s), "604800", 60, 31536000),
};

static const field_t event_fields[] = {
    F_I("max_bytes", CF(event.max_bytes), "1048576", 1024, 67108864),
};

static const field_t http_fields[] = {
    F_S("listen", FT_LISTEN, CF(http.listen), 0, "127.0.0.1:9464"),
};

static const field_t log_fields[] = {
    F_E("level", CF(log.level), 0, "info", level_names),
};

static const field_t audit_fields[] = {
    F_SECRET("hmac_key", CF(audit.hmac_key), 0),
    F_B("unkeyed", CF(audit.unkeyed), "false"),
};

static const field_t recon_fields[] = {
    {.key = "key", .type = FT_ATTR, .off = CF(recon.key), .def = "email", .choices = idhub_attrs},
    F_I("page_concurrency", CF(recon.page_concurrency), "4", 1, 16),
    F_I("members_per_record", CF(recon.members_per_record), "1000", 50, 4000),
    F_I("lease_s", CF(recon.lease_s), "15", 2, 3600),
};

static const field_t site_fields[] = {
    F_S("name", FT_SITENAME, SF(name), F_REQUIRED, NULL),
    F_S("jira_url", FT_URL, SF(jira_url), F_REQUIRED, NULL),
    F_S("email", FT_EMAIL, SF(email), F_REQUIRED, NULL),
    F_SECRET("api_token", SF(api_token), F_REQUIRED),
    F_S("scim_url", FT_URL, SF(scim_url), F_REQUIRED, NULL),
    F_SECRET("scim_api_key", SF(scim_api_key), F_REQUIRED),
    F_S("admin_url", FT_URL, SF(admin_url), 0, "https://api.atlassian.com"),
    F_SECRET("org_api_key", SF(org_api_key), 0),
    F_E("account_lifecycle", SF(account_lifecycle), 0, "scim", lifecycle_names),
    F_E("group_membership", SF(group_membership), 0, "scim", groups_names),
    F_B("tls_verify", SF(tls_verify), "true"),
    F_S("ca_file", FT_PATH, SF(ca_file), 0, NULL),
    F_I("timeout_ms", SF(timeout_ms), "30000", 1, 600000),
};
static const char *const site_extra_keys[] = {"rate_limits", NULL};

static const field_t mapping_fields[] = {
    {.key = "idhub",
     .type = FT_ATTR,
     .off = MF(idhub),
     .flags = F_REQUIRED,
     .choices = idhub_attrs},
    F_S("scim", FT_SCIMPATH, MF(scim), F_REQUIRED, NULL),
    F_E("direction", MF(direction), 0, "both", direction_names),
};

static const struct {
    const char *idhub, *scim;
} default_mapping[] = {
    {"login", "userName"},
    {"email", "emails[primary].value"},
    {"firstName", "name.givenName"},
    {"lastName", "name.familyName"},
    {"displayName", "displayName"},
    {"nickName", "nickName"},
    {"jobTitle", "title"},
    {"department", "department"},
    {"organizationName", "organization"},
    {"timezone", "timezone"},
    {"externalId", "externalId"},
};

/* Top-level keys, in file and dump order. Sections without a table (kafka,
 * sites, mapping) have their own loaders. */
typedef struct section {
    const char *key;
    const field_t *fields;
    size_t nfields;
    size_t base; /* offset of the fields' base within jp_config_t */
} section_t;

static const section_t sections[] = {
    {"kafka", NULL, 0, 0},
    {"topics", topics_fields, NFIELDS(topics_fields), 0},
    {"consumer", consumer_fields, NFIELDS(consumer_fields), 0},
    {"redis", redis_fields, NFIELDS(redis_fields), 0},
    {"sites", NULL, 0, 0},
    {"mapping", NULL, 0, 0},
    {"retry", retry_fields, NFIELDS(retry_fields), 0},
    {"rate_limits", rate_fields, NFIELDS(rate_fields), CF(rate_limits)},
    {"worker", worker_fields, NFIELDS(worker_fields), 0},
    {"event", event_fields, NFIELDS(event_fields), 0},
    {"http", http_fields, NFIELDS(http_fields), 0},
    {"log", log_fields, NFIELDS(log_fields), 0},
    {"audit", audit_fields, NFIELDS(audit_fields), 0},
    {"recon", recon_fields, NFIELDS(recon_fields), 0},
};

static bool is_string_type(ftype_t t)
{
    return t != FT_INT && t != FT_DBL && t != FT_BOOL && t != FT_ENUM;
}

static void *field_ptr(const field_t *f, void *base)
{
    return (char *)base + f->off;
}

static const void *field_cptr(const field_t *f, const void *base)
{
    return (const char *)base + f->off;
}

static void choices_list(const char *const *choices, char *buf, size_t size)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; choices[i] && o < size; i++)
        o += (size_t)snprintf(buf + o, size - o, "%s%s", i ? ", " : "", choices[i]);
}

/* What each type of field accepts, for "expected ..." messages; the types whose text depends on
 * the field (bounds, choices) are described in describe(). */
static const char *const type_text[] = {
    [FT_STR] = "a string",
    [FT_NONEMPTY] = "a non-empty string",
    [FT_SECRET] = "a non-empty string",
    [FT_TOPIC] = "a Kafka topic name (1 to 249 characters from [A-Za-z0-9._-])",
    [FT_URL] = "an http:// or https:// URL",
    [FT_SITENAME] = "a site name (1 to 64 characters from [a-z0-9_-])",
    [FT_EMAIL] = "an email address",
    [FT_LISTEN] = "host:port (or \"\" to disable)",
    [FT_PATH] = "a file path",
    [FT_SCIMPATH] = "a SCIM attribute path (e.g. name.givenName)",
    [FT_REDIS_URL] = "redis://[[user]:password@]host[:port][/db] or unix:///path",
    [FT_BOOL] = "true or false",
};

/* What a field accepts, for "expected ..." messages. */
static void describe(const field_t *f, char *buf, size_t size)
{
    char list[256];
    switch (f->type) {
    case FT_INT:
        snprintf(buf, size, "an integer between %.0f and %.0f", f->min, f->max);
        return;
    case FT_DBL:
        snprintf(buf, size, "a number between %g and %g", f->min, f->max);
        return;
    case FT_ATTR:
    case FT_ENUM:
        choices_list(f->choices, list, sizeof(list));
        snprintf(buf, size, "one of: %s", list);
        return;
    default:
        break;
    }
    if ((size_t)f->type < sizeof(type_text) / sizeof(type_text[0]) && type_text[f->type])
        snprintf(buf, size, "%s", type_text[f->type]);
    else
        snprintf(buf, size, "a value");
}

/* ------------------------------------------------------------------------ */
/* Scalar validation                                                        */

static bool has_space_or_ctl(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || *s == 0x7f)
            return true;
    return false;
}

static bool charset_ok(const char *s, const char *extra, bool upper, size_t maxlen)
{
    size_t n = strlen(s);
    if (n == 0 || n > maxlen)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  (upper && c >= 'A' && c <= 'Z') || (c && strchr(extra, c));
        if (!ok)
            return false;
    }
    return true;
}

/* http(s)://host...; strips trailing '/' so callers can append paths. */
static bool check_url(char *s)
{
    size_t skip = !strncmp(s, "https://", 8) ? 8 : !strncmp(s, "http://", 7) ? 7 : 0;
    if (!skip || !s[skip] || s[skip] == '/' || s[skip] == ':' || has_space_or_ctl(s))
        return false;
    size_t n = strlen(s);
    while (n > skip + 1 && s[n - 1] == '/')
        s[--n] = '\0';
    return true;
}

static bool check_email(const char *s)
{
    const char *at = strchr(s, '@');
    return at && at != s && at[1] && !strchr(at + 1, '@') && !has_space_or_ctl(s);
}

/* Digits only, 1..9 of them, value <= max. */
static bool parse_uint(const char *s, size_t n, long max, long *out)
{
    if (n == 0 || n > 9)
        return false;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v > max)
        return false;
    *out = v;
    return true;
}

static bool check_listen(const char *s)
{
    if (!*s)
        return true;
    if (has_space_or_ctl(s))
        return false;
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s)
        return false;
    size_t hlen = (size_t)(colon - s);
    if (s[0] == '[') {
        if (hlen < 3 || s[hlen - 1] != ']')
            return false;
    } else if (memchr(s, ':', hlen)) {
        return false;
    }
    long port;
    return parse_uint(colon + 1, strlen(colon + 1), 65535, &port);
}

static bool parse_int(const char *s, double min, double max, int *out)
{
    if (!*s || isspace((unsigned char)*s))
        return false;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || (double)v < min || (double)v > max)
        return false;
    *out = (int)v;
    return true;
}

static bool parse_double(const char *s, double min, double max, double *out)
{
    if (!*s || strspn(s, "0123456789+-.eE") != strlen(s))
        return false;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static int choice_index(const char *const *choices, const char *s)
{
    for (int i = 0; choices[i]; i++)
        if (!strcmp(choices[i], s))
            return i;
    return -1;
}

/* ------------------------------------------------------------------------ */
/* redis.url                                                                */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decoded copy of s[0..n); NULL on a bad escape, a NUL or ENOMEM. */
static char *pct_decode(const char *s, size_t n)
{
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            out[o++] = s[i];
            continue;
        }
        int hi = i + 2 < n ? hexval(s[i + 1]) : -1, lo = i + 2 < n ? hexval(s[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            free(out);
            return NULL;
        }
        out[o++] = (char)(hi * 16 + lo);
        i += 2;
    }
    out[o] = '\0';
    return out;
}

static char *dupn(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* host[:port] or [v6][:port] in s[0..n). */
static bool parse_hostport(const char *s, size_t n, char **host, int *port)
{
    const char *hend, *rest;
    if (n && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (!close || close == s + 1)
            return false;
        *host = dupn(s + 1, (size_t)(close - s - 1));
        rest = close + 1;
    } else {
        hend = memchr(s, ':', n);
        rest = hend ? hend : s + n;
        if (rest == s)
            return false;
        *host = dupn(s, (size_t)(rest - s));
    }
    if (!*host)
        return false;
    long p = 6379;
    size_t left = (size_t)(s + n - rest);
    if (left && (rest[0] != ':' || !parse_uint(rest + 1, left - 1, 65535, &p) || p == 0))
        return false;
    *port = (int)p;
    return !has_space_or_ctl(*host) && !strchr(*host, '@');
}

/* Splits redis.url into cfg->redis (host, port, db, unix_path, username) and
 * ld->url_password. Never echoes the URL: it may hold a password. */
static jp_err_t parse_redis_url(ld_t *ld, const char *url, const char *lit, const node_t *at,
                                const char *path)
{
    char what[128];
    describe(&redis_fields[0], what, sizeof(what));
    if (!strncmp(url, "unix://", 7)) {
        if (url[7] != '/' || !url[8] || has_space_or_ctl(url))
            return fail(ld, JP_ERR_INVALID, at, path, "expected %s", what);
        if (!(ld->cfg->redis.unix_path = strdup(url + 7)))
            return nomem(ld);
        return JP_OK;
    }
    if (strncmp(url, "redis://", 8) || has_space_or_ctl(url))
        return fail(ld, JP_ERR_INVALID, at, path, "expected %s", what);
    const char *auth = url + 8;
    const char *slash = strchr(auth, '/');
    size_t alen = slash ? (size_t)(slash - auth) : strlen(auth);
    const char *atsign = NULL;
    for (size_t k = 0; k < alen; k++)
        if (auth[k] == '@')
            atsign = auth + k;
    const char *hp = auth;
    if (atsign) {
        const char *colon = memchr(auth, ':', (size_t)(atsign - auth));
        if (!colon || colon + 1 == atsign)
            return fail(ld, JP_ERR_INVALID, at, path,
                        "expected %s (user information must be [user]:password)", what);
        if (colon > auth && !(ld->cfg->redis.username = pct_decode(auth, (size_t)(colon - auth))))
            return fail(ld, JP_ERR_INVALID, at, path, "expected %s (bad %%-escape)", what);
        if (!(ld->url_password = pct_decode(colon + 1, (size_t)(atsign - colon - 1))))
            return fail(ld, JP_ERR_INVALID, at, path, "expected %s (bad %%-escape)", what);
        if (ld->world_readable &&
            any_literal(lit, (size_t)(colon + 1 - url), (size_t)(atsign - url)))
            return fail(ld, JP_ERR_INVALID, at, path,
                        "password written inline in a world-readable file (mode %04o); use "
                        "password_file or ${VAR}, or make the file unreadable to others "
                        "(chmod o-r)",
                        ld->mode);
        if (jp_log_add_secret(ld->url_password))
            return nomem(ld);
        hp = atsign + 1;
    }
    ld->url_node = at;
    if (!parse_hostport(hp, (size_t)(auth + alen - hp), &ld->cfg->redis.host, &ld->cfg->redis.port))
        return fail(ld, JP_ERR_INVALID, at, path, "expected %s", what);
    long db = 0;
    if (slash && slash[1] && !parse_uint(slash + 1, strlen(slash + 1), 65535, &db))
        return fail(ld, JP_ERR_INVALID, at, path, "expected %s (db is a number)", what);
    ld->cfg->redis.db = (int)db;
    return JP_OK;
}

/* ------------------------------------------------------------------------ */
/* Storing values                                                           */

static void free_secret(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

/* Validate `text` (owned, consumed) for field f and store it at base.
 * `at` is NULL for defaults. */
static jp_err_t store(ld_t *ld, const field_t *f, void *base, char *text, const char *lit,
                      const node_t *at, const char *path)
{
    bool ok = true, keep = false;
    int iv = 0;
    double dv = 0;
    switch (f->type) {
    case FT_STR:
        keep = true;
        break;
    case FT_NONEMPTY:
    case FT_PATH:
    case FT_SECRET:
        keep = ok = *text != '\0';
        break;
    case FT_TOPIC:
        keep = ok = charset_ok(text, "._-", true, 249);
        break;
    case FT_URL:
        keep = ok = check_url(text);
        break;
    case FT_SITENAME:
        keep = ok = charset_ok(text, "_-", false, 64);
        break;
    case FT_EMAIL:
        keep = ok = check_email(text);
        break;
    case FT_LISTEN:
        keep = ok = check_listen(text);
        break;
    case FT_SCIMPATH:
        keep = ok = *text && !has_space_or_ctl(text);
        break;
    case FT_ATTR:
        keep = ok = choice_index(f->choices, text) >= 0;
        break;
    case FT_REDIS_URL: {
        jp_err_t rc = parse_redis_url(ld, text, lit, at, path);
        if (rc) {
            free_secret(text);
            return rc;
        }
        keep = true;
        break;
    }
    case FT_INT:
        if ((ok = parse_int(text, f->min, f->max, &iv)))
            *(int *)field_ptr(f, base) = iv;
        break;
    case FT_DBL:
        if ((ok = parse_double(text, f->min, f->max, &dv)))
            *(double *)field_ptr(f, base) = dv;
        break;
    case FT_BOOL:
        ok = !strcmp(text, "true") || !strcmp(text, "false");
        if (ok)
            *(bool *)field_ptr(f, base) = text[0] == 't';
        break;
    case FT_ENUM:
        if ((ok = (iv = choice_index(f->choices, text)) >= 0))
            *(int *)field_ptr(f, base) = iv;
        break;
    }
    if (!ok) {
        char what[300], got[CFG_GOT_MAX + 16];
        describe(f, what, sizeof(what));
        jp_err_t rc;
        if (f->type == FT_SECRET)
            rc = fail(ld, JP_ERR_INVALID, at, path, "expected %s", what);
        else
            rc = fail(ld, JP_ERR_INVALID, at, path, "expected %s, got %s", what,
                      quote(text, got, sizeof(got)));
        free(text);
        return rc;
    }
    if (keep) {
        char **dst = field_ptr(f, base);
        free(*dst);
        *dst = text;
    } else {
        free(text);
    }
    return JP_OK;
}

static jp_err_t apply_defaults(ld_t *ld, const field_t *fields, size_t n, void *base)
{
    for (size_t i = 0; i < n; i++) {
        if (!fields[i].def)
            continue;
        char *t = strdup(fields[i].def);
        if (!t)
            return nomem(ld);
        jp_err_t rc = store(ld, &fields[i], base, t, NULL, NULL, fields[i].key);
        if (rc)
            return rc;
    }
    return JP_OK;
}

static jp_err_t expect_scalar(ld_t *ld, const node_t *v, const char *path, const char *what)
{
    if (v->kind != N_SCALAR || node_is_null(v))
        return fail(ld, JP_ERR_INVALID, v, path, "expected %s, got %s", what, node_kind_name(v));
    return JP_OK;
}

static jp_err_t load_value(ld_t *ld, const field_t *f, const node_t *v, const char *path,
                           void *base)
{
    char what[300];
    describe(f, what, sizeof(what));
    jp_err_t rc = expect_scalar(ld, v, path, what);
    char *text = NULL, *lit = NULL;
    if (!rc)
        rc = expand(ld, v, path, &text, &lit);
    if (!rc)
        rc = store(ld, f, base, text, lit, v, path);
    free(lit);
    return rc;
}

/* Read a *_file secret: one trailing newline stripped. */
static jp_err_t read_secret_file(ld_t *ld, const char *file, const node_t *at, const char *path,
                                 char **out)
{
    /* Non-blocking, so that a FIFO named here is refused below instead of
     * hanging start-up; regular files ignore the flag. */
    int fd = open(file, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    if (fd < 0 || fstat(fd, &st)) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return fail(ld, JP_ERR_IO, at, path, "cannot read \"%s\": %s", file, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return fail(ld, JP_ERR_IO, at, path, "cannot read \"%s\": not a regular file", file);
    }
    char *buf = malloc(CFG_MAX_SECRET_FILE + 1);
    if (!buf) {
        close(fd);
        return nomem(ld);
    }
    size_t len = 0;
    ssize_t r = 0;
    while (len <= CFG_MAX_SECRET_FILE &&
           (r = read(fd, buf + len, CFG_MAX_SECRET_FILE + 1 - len)) > 0)
        len += (size_t)r;
    int e = errno;
    close(fd);
    const char *why = NULL;
    if (r < 0)
        why = strerror(e);
    else if (len > CFG_MAX_SECRET_FILE)
        why = "larger than 65536 bytes";
    else if (memchr(buf, '\0', len))
        why = "contains a NUL byte";
    if (!why) {
        if (len && buf[len - 1] == '\n')
            len--;
        if (len && buf[len - 1] == '\r')
            len--;
        buf[len] = '\0';
        if (!len)
            why = "file is empty";
    }
    if (why) {
        explicit_bzero(buf, CFG_MAX_SECRET_FILE + 1);
        free(buf);
        return fail(ld, JP_ERR_INVALID, at, path, "cannot use \"%s\": %s", file, why);
    }
    char *s = dupn(buf, len);
    explicit_bzero(buf, CFG_MAX_SECRET_FILE + 1);
    free(buf);
    if (!s)
        return nomem(ld);
    *out = s;
    return JP_OK;
}

/* A secret given as `key` (inline, ${VAR}) or `key_file`; `path` is the key
 * as written. The value never appears in a message. */
static jp_err_t load_secret(ld_t *ld, const node_t *v, const char *path, const char *key,
                            bool from_file, char **dst)
{
    jp_err_t rc = expect_scalar(ld, v, path, from_file ? "a file path" : "a non-empty string");
    char *text = NULL, *lit = NULL, *value = NULL;
    if (!rc)
        rc = expand(ld, v, path, &text, &lit);
    if (rc)
        return rc;
    if (from_file) {
        if (!*text)
            rc = fail(ld, JP_ERR_INVALID, v, path, "expected a file path, got \"\"");
        else
            rc = read_secret_file(ld, text, v, path, &value);
        free(text);
    } else if (!*text) {
        rc = fail(ld, JP_ERR_INVALID, v, path, "expected a non-empty string");
        free(text);
    } else if (ld->world_readable && any_literal(lit, 0, strlen(text))) {
        rc = fail(ld, JP_ERR_INVALID, v, path,
                  "secret written inline in a world-readable file (mode %04o); use "
                  "%s_file or "
                  "${VAR}, or make the file unreadable to others (chmod o-r)",
                  ld->mode, key);
        free_secret(text);
    } else {
        value = text;
    }
    free(lit);
    if (rc)
        return rc;
    /* Credentials travel in HTTP headers and protocol fields: a CR or LF
     * (say, a second line in a secret file) would fail every request later,
     * or worse, so it is refused here, without showing the value. */
    for (const char *c = value; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f) {
            free_secret(value);
            return fail(ld, JP_ERR_INVALID, v, path,
                        "the secret contains a control character (CR, LF, TAB, ...)%s",
                        from_file ? "; the file may hold one trailing newline, no more" : "");
        }
    if (jp_log_add_secret(value)) {
        free_secret(value);
        return nomem(ld);
    }
    free_secret(*dst);
    *dst = value;
    return JP_OK;
}

/* ------------------------------------------------------------------------ */
/* Mappings                                                                 */

static jp_err_t expect_kind(ld_t *ld, const node_t *v, nkind_t kind, const char *path,
                            const char *what)
{
    if (v->kind != kind)
        return fail(ld, JP_ERR_INVALID, v, path, "expected %s, got %s", what, node_kind_name(v));
    return JP_OK;
}

static jp_err_t check_dups(ld_t *ld, const node_t *map, const char *path)
{
    for (size_t i = 2; i < map->n; i += 2)
        for (size_t j = 0; j < i; j += 2)
            if (!strcmp(map->kids[i]->text, map->kids[j]->text)) {
                char kp[CFG_PATH_MAX];
                path_key(kp, sizeof(kp), path, map->kids[i]->text);
                return fail(ld, JP_ERR_INVALID, map->kids[i], kp, "duplicate key (first at %d:%d)",
                            map->kids[j]->line, map->kids[j]->col);
            }
    return JP_OK;
}

static bool in_list(const char *const *list, const char *s)
{
    for (size_t i = 0; list && list[i]; i++)
        if (!strcmp(list[i], s))
            return true;
    return false;
}

static void key_list(const field_t *fields, size_t n, const char *const *extra, char *buf,
                     size_t size)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && o < size; i++) {
        o += (size_t)snprintf(buf + o, size - o, "%s%s", i ? ", " : "", fields[i].key);
        if (fields[i].type == FT_SECRET && o < size)
            o += (size_t)snprintf(buf + o, size - o, ", %s_file", fields[i].key);
    }
    for (size_t i = 0; extra && extra[i] && o < size; i++)
        o += (size_t)snprintf(buf + o, size - o, "%s%s", o ? ", " : "", extra[i]);
}

/* The field named `key`, or whose secret `key` is "<name>_file". */
static const field_t *find_field(const field_t *fields, size_t n, const char *key, bool *from_file)
{
    size_t klen = strlen(key);
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(fields[i].key, key)) {
            *from_file = false;
            return &fields[i];
        }
        size_t flen = strlen(fields[i].key);
        if (fields[i].type == FT_SECRET && klen == flen + 5 && !strncmp(key, fields[i].key, flen) &&
            !strcmp(key + flen, "_file")) {
            *from_file = true;
            return &fields[i];
        }
    }
    return NULL;
}

/* Load the keys present in `map` into base; keys in `extra` are left to the
 * caller. given[] (may be NULL) reports which fields were set. */
static jp_err_t load_map(ld_t *ld, const node_t *map, const char *path, const field_t *fields,
                         size_t n, void *base, const char *const *extra, bool *given)
{
    bool local[CFG_MAX_FIELDS] = {false};
    if (n > CFG_MAX_FIELDS)
        return fail(ld, JP_ERR_INTERNAL, map, path, "field table too large");
    if (!given)
        given = local;
    jp_err_t rc = expect_kind(ld, map, N_MAP, path, "a mapping");
    if (!rc)
        rc = check_dups(ld, map, path);
    for (size_t i = 0; !rc && i + 1 < map->n; i += 2) {
        const node_t *k = map->kids[i], *v = map->kids[i + 1];
        char kp[CFG_PATH_MAX];
        path_key(kp, sizeof(kp), path, k->text);
        bool from_file = false;
        const field_t *f = find_field(fields, n, k->text, &from_file);
        if (!f) {
            if (in_list(extra, k->text))
                continue;
            char list[CFG_MSG_MAX / 2];
            key_list(fields, n, extra, list, sizeof(list));
            return fail(ld, JP_ERR_INVALID, k, kp, "unknown key (expected one of: %s)", list);
        }
        size_t idx = (size_t)(f - fields);
        if (given[idx])
            return fail(ld, JP_ERR_INVALID, k, kp, "give either %s or %s_file, not both", f->key,
                        f->key);
        given[idx] = true;
        if (f->type == FT_SECRET)
            rc = load_secret(ld, v, kp, f->key, from_file, field_ptr(f, base));
        else
            rc = load_value(ld, f, v, kp, base);
    }
    for (size_t i = 0; !rc && i < n; i++)
        if ((fields[i].flags & F_REQUIRED) && !given[i]) {
            char kp[CFG_PATH_MAX];
            path_key(kp, sizeof(kp), path, fields[i].key);
            rc = fail(ld, JP_ERR_INVALID, map, kp, "required key is missing");
        }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* kafka                                                                    */

static bool is_secret_property(const char *key)
{
    return strstr(key, "password") || strstr(key, "secret");
}

static jp_err_t kafka_pair(ld_t *ld, const node_t *k, const node_t *v)
{
    jp_config_t *cfg = ld->cfg;
    char kp[CFG_PATH_MAX];
    path_key(kp, sizeof(kp), "kafka", k->text);
    if (!*k->text)
        return fail(ld, JP_ERR_INVALID, k, "kafka", "empty property name");
    size_t klen = strlen(k->text);
    bool from_file = klen > 5 && !strcmp(k->text + klen - 5, "_file");
    char *name = dupn(k->text, from_file ? klen - 5 : klen);
    if (!name)
        return nomem(ld);
    if (from_file && !is_secret_property(name)) {
        from_file = false;
        free(name);
        if (!(name = strdup(k->text)))
            return nomem(ld);
    }
    jp_config_kv_t *kv = &cfg->kafka[cfg->kafka_count];
    kv->key = name;
    kv->secret = is_secret_property(name);
    kv->line = k->line;
    kv->column = k->col;
    cfg->kafka_count++;
    for (size_t j = 0; j + 1 < cfg->kafka_count; j++)
        if (!strcmp(cfg->kafka[j].key, name))
            return fail(ld, JP_ERR_INVALID, k, kp, "give either %s or %s_file, not both", name,
                        name);
    if (kv->secret)
        return load_secret(ld, v, kp, name, from_file, &kv->value);
    jp_err_t rc = expect_scalar(ld, v, kp, "a string, number or boolean");
    char *lit = NULL;
    if (!rc)
        rc = expand(ld, v, kp, &kv->value, &lit);
    free(lit);
    if (!rc && !strcmp(name, "bootstrap.servers") && !*kv->value)
        rc = fail(ld, JP_ERR_INVALID, v, kp, "expected a non-empty string, got \"\"");
    return rc;
}

static jp_err_t load_kafka(ld_t *ld, const node_t *map)
{
    jp_err_t rc = expect_kind(ld, map, N_MAP, "kafka", "a mapping of librdkafka properties");
    if (!rc)
        rc = check_dups(ld, map, "kafka");
    if (rc)
        return rc;
    if (!(ld->cfg->kafka = calloc(map->n / 2 + 1, sizeof(jp_config_kv_t))))
        return nomem(ld);
    for (size_t i = 0; !rc && i + 1 < map->n; i += 2)
        rc = kafka_pair(ld, map->kids[i], map->kids[i + 1]);
    if (!rc && !map_get(map, "bootstrap.servers"))
        rc = fail(ld, JP_ERR_INVALID, map, "kafka.bootstrap.servers", "required key is missing");
    return rc;
}

/* ------------------------------------------------------------------------ */
/* sites                                                                    */

static jp_err_t load_site(ld_t *ld, const node_t *item, size_t i)
{
    jp_config_t *cfg = ld->cfg;
    jp_site_t *s = &cfg->sites[i];
    char p[CFG_PATH_MAX], kp[CFG_PATH_MAX];
    path_index(p, sizeof(p), "sites", i);
    s->rate_limits = cfg->rate_limits;
    jp_err_t rc = apply_defaults(ld, site_fields, NFIELDS(site_fields), s);
    if (!rc)
        rc = load_map(ld, item, p, site_fields, NFIELDS(site_fields), s, site_extra_keys, NULL);
    const node_t *rl = map_get(item, "rate_limits");
    if (!rc && rl) {
        path_key(kp, sizeof(kp), p, "rate_limits");
        rc = load_map(ld, rl, kp, rate_fields, NFIELDS(rate_fields), &s->rate_limits, NULL, NULL);
        s->rate_limits_overridden = true;
    }
    if (!rc && s->account_lifecycle == JP_CONFIG_LIFECYCLE_ADMIN && !s->org_api_key) {
        path_key(kp, sizeof(kp), p, "org_api_key");
        rc = fail(ld, JP_ERR_INVALID, item, kp, "required when account_lifecycle is admin");
    }
    for (size_t j = 0; !rc && j < i; j++)
        if (!strcmp(cfg->sites[j].name, s->name)) {
            path_key(kp, sizeof(kp), p, "name");
            rc = fail(ld, JP_ERR_INVALID, map_get(item, "name"), kp,
                      "duplicate site name \"%s\" (also sites[%zu])", s->name, j);
        }
    return rc;
}

static jp_err_t load_sites(ld_t *ld, const node_t *seq)
{
    jp_config_t *cfg = ld->cfg;
    jp_err_t rc = expect_kind(ld, seq, N_SEQ, "sites", "a sequence of sites");
    if (rc)
        return rc;
    if (seq->n == 0)
        return fail(ld, JP_ERR_INVALID, seq, "sites", "expected at least one site");
    if (!(cfg->sites = calloc(seq->n, sizeof(*cfg->sites))))
        return nomem(ld);
    for (size_t i = 0; !rc && i < seq->n; i++) {
        cfg->site_count = i + 1;
        rc = load_site(ld, seq->kids[i], i);
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* mapping                                                                  */

static jp_err_t check_mapped(ld_t *ld, const node_t *at, const char *attr)
{
    for (size_t i = 0; i < ld->cfg->mapping_count; i++)
        if (!strcmp(ld->cfg->mapping[i].idhub, attr))
            return JP_OK;
    return fail(ld, JP_ERR_INVALID, at, "mapping",
                "%s must be mapped (add an entry with idhub: %s)", attr, attr);
}

static jp_err_t load_mapping(ld_t *ld, const node_t *seq)
{
    jp_config_t *cfg = ld->cfg;
    jp_err_t rc =
        expect_kind(ld, seq, N_SEQ, "mapping", "a sequence of {idhub, scim, direction} entries");
    if (rc)
        return rc;
    if (!(cfg->mapping = calloc(seq->n + 1, sizeof(*cfg->mapping))))
        return nomem(ld);
    for (size_t i = 0; !rc && i < seq->n; i++) {
        char p[CFG_PATH_MAX], kp[CFG_PATH_MAX];
        path_index(p, sizeof(p), "mapping", i);
        jp_config_mapping_t *m = &cfg->mapping[i];
        cfg->mapping_count = i + 1;
        rc = apply_defaults(ld, mapping_fields, NFIELDS(mapping_fields), m);
        if (!rc)
            rc = load_map(ld, seq->kids[i], p, mapping_fields, NFIELDS(mapping_fields), m, NULL,
                          NULL);
        for (size_t j = 0; !rc && j < i; j++)
            if (!strcmp(cfg->mapping[j].idhub, m->idhub)) {
                path_key(kp, sizeof(kp), p, "idhub");
                rc = fail(ld, JP_ERR_INVALID, map_get(seq->kids[i], "idhub"), kp,
                          "\"%s\" is already mapped by mapping[%zu]", m->idhub, j);
            }
    }
    if (!rc)
        rc = check_mapped(ld, seq, "login");
    if (!rc)
        rc = check_mapped(ld, seq, "email");
    return rc;
}

static jp_err_t default_mappings(ld_t *ld)
{
    jp_config_t *cfg = ld->cfg;
    size_t n = NFIELDS(default_mapping);
    if (!(cfg->mapping = calloc(n, sizeof(*cfg->mapping))))
        return nomem(ld);
    for (size_t i = 0; i < n; i++) {
        jp_config_mapping_t *m = &cfg->mapping[i];
        cfg->mapping_count = i + 1;
        m->direction = JP_CONFIG_DIR_BOTH;
        if (!(m->idhub = strdup(default_mapping[i].idhub)) ||
            !(m->scim = strdup(default_mapping[i].scim)))
            return nomem(ld);
    }
    return JP_OK;
}

/* ------------------------------------------------------------------------ */
/* Root                                                                     */

static const section_t *find_section(const char *key)
{
    for (size_t i = 0; i < NFIELDS(sections); i++)
        if (!strcmp(sections[i].key, key))
            return &sections[i];
    return NULL;
}

static jp_err_t apply_all_defaults(ld_t *ld)
{
    for (size_t i = 0; i < NFIELDS(sections); i++) {
        const section_t *s = &sections[i];
        jp_err_t rc = apply_defaults(ld, s->fields, s->nfields, (char *)ld->cfg + s->base);
        if (rc)
            return rc;
    }
    return JP_OK;
}

static jp_err_t load_section(ld_t *ld, const node_t *k, const node_t *v)
{
    const section_t *s = find_section(k->text);
    if (!s) {
        char list[CFG_MSG_MAX / 2];
        size_t o = 0;
        for (size_t i = 0; i < NFIELDS(sections) && o < sizeof(list); i++)
            o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s", i ? ", " : "",
                                  sections[i].key);
        return fail(ld, JP_ERR_INVALID, k, k->text, "unknown key (expected one of: %s)", list);
    }
    if (!strcmp(s->key, "kafka"))
        return load_kafka(ld, v);
    if (!strcmp(s->key, "mapping"))
        return load_mapping(ld, v);
    if (!strcmp(s->key, "sites"))
        return JP_OK; /* after everything else: sites inherit rate_limits */
    return load_map(ld, v, s->key, s->fields, s->nfields, (char *)ld->cfg + s->base, NULL, NULL);
}

/* Checks that span keys, once everything is loaded. */
static jp_err_t cross_checks(ld_t *ld, const node_t *root)
{
    jp_config_t *cfg = ld->cfg;
    if (cfg->retry.max_delay_ms < cfg->retry.base_delay_ms) {
        const node_t *retry = map_get(root, "retry");
        const node_t *at = map_get(retry, "max_delay_ms");
        return fail(ld, JP_ERR_INVALID, at ? at : retry, "retry.max_delay_ms",
                    "expected at least retry.base_delay_ms (%d), got %d", cfg->retry.base_delay_ms,
                    cfg->retry.max_delay_ms);
    }
    if (ld->url_password) {
        if (cfg->redis.password)
            return fail(ld, JP_ERR_INVALID, ld->url_node, "redis.url",
                        "the password is given both in the URL and in "
                        "redis.password; give it "
                        "once");
        cfg->redis.password = ld->url_password;
        ld->url_password = NULL;
    }
    const jp_config_mapping_t *key = NULL;
    for (size_t i = 0; i < cfg->mapping_count; i++)
        if (!strcmp(cfg->mapping[i].idhub, cfg->recon.key))
            key = &cfg->mapping[i];
    if (!key || key->direction == JP_CONFIG_DIR_TO_JIRA) {
        const node_t *recon = map_get(root, "recon");
        const node_t *at = map_get(recon, "key");
        return fail(ld, JP_ERR_INVALID,
                    at      ? at
                    : recon ? recon
                            : root,
                    "recon.key",
                    "expected an attribute mapped from Jira (direction both or from_jira), got "
                    "\"%s\"%s",
                    cfg->recon.key, key ? " (mapped to_jira only)" : " (not mapped)");
    }
    if (!*cfg->worker.instance_id) {
        char host[256] = "";
        if (gethostname(host, sizeof(host) - 1))
            snprintf(host, sizeof(host), "localhost");
        char id[300];
        snprintf(id, sizeof(id), "%s-%ld", host, (long)getpid());
        char *dup = strdup(id);
        if (!dup)
            return nomem(ld);
        free(cfg->worker.instance_id);
        cfg->worker.instance_id = dup;
    }
    return JP_OK;
}

static jp_err_t load_root(ld_t *ld, const node_t *root)
{
    node_t start = {.line = 1, .col = 1};
    if (!root || node_is_null(root))
        return fail(ld, JP_ERR_INVALID, &start, NULL,
                    "the configuration is empty (expected a mapping with kafka, "
                    "redis and sites)");
    jp_err_t rc = expect_kind(ld, root, N_MAP, NULL, "a mapping at the top level");
    if (!rc)
        rc = check_dups(ld, root, NULL);
    for (size_t i = 0; !rc && i + 1 < root->n; i += 2)
        rc = load_section(ld, root->kids[i], root->kids[i + 1]);
    if (rc)
        return rc;
    if (!map_get(root, "kafka"))
        return fail(ld, JP_ERR_INVALID, root, "kafka.bootstrap.servers", "required key is missing");
    if (!map_get(root, "redis"))
        return fail(ld, JP_ERR_INVALID, root, "redis.url", "required key is missing");
    const node_t *sites = map_get(root, "sites");
    if (!sites)
        return fail(ld, JP_ERR_INVALID, root, "sites",
                    "required key is missing (at least one site)");
    if ((rc = load_sites(ld, sites)))
        return rc;
    if (!map_get(root, "mapping") && (rc = default_mappings(ld)))
        return rc;
    return cross_checks(ld, root);
}

static jp_err_t load_text(const char *text, size_t len, const char *name, bool world_readable,
                          unsigned mode, jp_config_t **out, char *errstr, size_t errstr_size)
{
    jp_config_t *cfg = calloc(1, sizeof(*cfg));
    ld_t ld = {.name = name,
               .errstr = errstr,
               .errsize = errstr_size,
               .world_readable = world_readable,
               .mode = mode,
               .cfg = cfg};
    if (!cfg || !(cfg->source = strdup(name))) {
        free(cfg);
        return nomem(&ld);
    }
    yaml_parser_t parser;
    node_t *root = NULL;
    jp_err_t rc;
    if (!yaml_parser_initialize(&parser)) {
        rc = nomem(&ld);
    } else {
        yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
        rc = build_tree(&ld, &parser, &root);
        yaml_parser_delete(&parser);
    }
    if (!rc)
        rc = apply_all_defaults(&ld);
    if (!rc)
        rc = load_root(&ld, root);
    node_free(root);
    free_secret(ld.url_password);
    if (rc) {
        jp_config_destroy(cfg);
        return rc;
    }
    *out = cfg;
    return JP_OK;
}

/* ------------------------------------------------------------------------ */
/* API                                                                      */

jp_err_t jp_config_load_string(const char *yaml, const char *name_for_errors, jp_config_t **out,
                               char *errstr, size_t errstr_size)
{
    if (out)
        *out = NULL;
    if (!yaml || !out)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "jp_config_load_string: yaml and out are required");
    return load_text(yaml, strlen(yaml), name_for_errors ? name_for_errors : "<string>", false, 0,
                     out, errstr, errstr_size);
}

jp_err_t jp_config_load(const char *path, jp_config_t **out, char *errstr, size_t errstr_size)
{
    if (out)
        *out = NULL;
    if (!path || !out)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "jp_config_load: path and out are required");
    /* Non-blocking: see read_secret_file(). */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    if (fd < 0 || fstat(fd, &st)) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return jp_err_set(errstr, errstr_size, JP_ERR_IO, "%s: cannot read: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return jp_err_set(errstr, errstr_size, JP_ERR_IO, "%s: not a regular file", path);
    }
    char *buf = malloc(CFG_MAX_FILE + 1);
    if (!buf) {
        close(fd);
        return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t len = 0;
    ssize_t r = 0;
    while (len <= CFG_MAX_FILE && (r = read(fd, buf + len, CFG_MAX_FILE + 1 - len)) > 0)
        len += (size_t)r;
    int e = errno;
    close(fd);
    jp_err_t rc;
    if (r < 0)
        rc = jp_err_set(errstr, errstr_size, JP_ERR_IO, "%s: cannot read: %s", path, strerror(e));
    else if (len > CFG_MAX_FILE)
        rc = jp_err_set(errstr, errstr_size, JP_ERR_TOO_LARGE, "%s: larger than %d bytes", path,
                        CFG_MAX_FILE);
    else
        rc = load_text(buf, len, path, (st.st_mode & S_IROTH) != 0, st.st_mode & 07777u, out,
                       errstr, errstr_size);
    explicit_bzero(buf, len);
    free(buf);
    return rc;
}

static void free_fields(const field_t *fields, size_t n, void *base)
{
    for (size_t i = 0; i < n; i++) {
        if (!is_string_type(fields[i].type))
            continue;
        char **p = field_ptr(&fields[i], base);
        if (fields[i].type == FT_SECRET || fields[i].type == FT_REDIS_URL)
            free_secret(*p);
        else
            free(*p);
        *p = NULL;
    }
}

void jp_config_destroy(jp_config_t *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < NFIELDS(sections); i++)
        free_fields(sections[i].fields, sections[i].nfields, (char *)cfg + sections[i].base);
    for (size_t i = 0; i < cfg->kafka_count; i++) {
        free(cfg->kafka[i].key);
        if (cfg->kafka[i].secret)
            free_secret(cfg->kafka[i].value);
        else
            free(cfg->kafka[i].value);
    }
    free(cfg->kafka);
    for (size_t i = 0; i < cfg->site_count; i++)
        free_fields(site_fields, NFIELDS(site_fields), &cfg->sites[i]);
    free(cfg->sites);
    for (size_t i = 0; i < cfg->mapping_count; i++)
        free_fields(mapping_fields, NFIELDS(mapping_fields), &cfg->mapping[i]);
    free(cfg->mapping);
    free(cfg->redis.host);
    free(cfg->redis.unix_path);
    free(cfg->redis.username);
    free(cfg->source);
    free(cfg);
}

/* The kafka property named `key`, or NULL. */
static const jp_config_kv_t *kafka_kv(const jp_config_t *cfg, const char *key)
{
    for (size_t i = 0; i < cfg->kafka_count; i++)
        if (!strcmp(cfg->kafka[i].key, key))
            return &cfg->kafka[i];
    return NULL;
}

/* What librdkafka made of property `key` in conf (its canonical spelling:
 * "sasl_ssl", "false", "none"), or "" if it cannot say. */
static void kafka_get(const rd_kafka_conf_t *conf, const char *key, char *buf, size_t size)
{
    size_t n = size;
    if (rd_kafka_conf_get(conf, key, buf, &n) != RD_KAFKA_CONF_OK)
        buf[0] = '\0';
}

static bool kafka_uses_tls(const rd_kafka_conf_t *conf)
{
    char proto[32];
    kafka_get(conf, "security.protocol", proto, sizeof(proto));
    return !strcmp(proto, "ssl") || !strcmp(proto, "sasl_ssl");
}

/* Broker certificate and host name checks, with their secure values. */
static const struct {
    const char *key, *secure, *what;
} kafka_tls_checks[] = {
    {"enable.ssl.certificate.verification", "true", "broker certificate verification"},
    {"ssl.endpoint.identification.algorithm", "https", "broker host name verification"},
};

jp_err_t jp_config_kafka_conf(const jp_config_t *cfg, rd_kafka_conf_t *conf, char *errstr,
                              size_t errstr_size)
{
    if (!cfg || !conf)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "jp_config_kafka_conf: cfg and conf are required");
    for (size_t i = 0; i < cfg->kafka_count; i++) {
        const jp_config_kv_t *kv = &cfg->kafka[i];
        char why[512], redacted[512], text[2048], key[1024];
        rd_kafka_conf_res_t r = rd_kafka_conf_set(conf, kv->key, kv->value, why, sizeof(why));
        if (r == RD_KAFKA_CONF_OK)
            continue;
        clean(kv->key, key, sizeof(key));
        if (r == RD_KAFKA_CONF_UNKNOWN)
            return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                              "%s:%d:%d: kafka.%s: unknown librdkafka property", cfg->source,
                              kv->line, kv->column, key);
        if (kv->secret)
            snprintf(redacted, sizeof(redacted), "invalid value");
        else
            jp_log_redact(why, redacted, sizeof(redacted));
        /* librdkafka ends some texts with a newline and echoes the value. */
        size_t n = strlen(redacted);
        while (n > 0 && isspace((unsigned char)redacted[n - 1]))
            redacted[--n] = '\0';
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "%s:%d:%d: kafka.%s: rejected by librdkafka: %s", cfg->source, kv->line,
                          kv->column, key, clean(redacted, text, sizeof(text)));
    }
    /* With TLS, the broker's certificate and name are checked unless the
     * file says otherwise, whatever the library's own defaults are (they
     * changed between librdkafka releases). */
    if (kafka_uses_tls(conf))
        for (size_t i = 0; i < sizeof(kafka_tls_checks) / sizeof(kafka_tls_checks[0]); i++) {
            char why[512];
            if (kafka_kv(cfg, kafka_tls_checks[i].key))
                continue;
            if (rd_kafka_conf_set(conf, kafka_tls_checks[i].key, kafka_tls_checks[i].secure, why,
                                  sizeof(why)) != RD_KAFKA_CONF_OK)
                return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                                  "%s: kafka: cannot enable %s: %s", cfg->source,
                                  kafka_tls_checks[i].what, why);
        }
    return JP_OK;
}

/* Loopback hosts, where plain http:// carries nothing over a network. */
static bool loopback_url(const char *url)
{
    const char *host = strstr(url, "://");
    host = host ? host + 3 : url;
    static const char *const local[] = {"localhost", "127.", "[::1]"};
    for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++) {
        size_t n = strlen(local[i]);
        if (!strncmp(host, local[i], n) &&
            (local[i][n - 1] == '.' || host[n] == '\0' || host[n] == ':' || host[n] == '/'))
            return true;
    }
    return false;
}

size_t jp_config_log_insecure(const jp_config_t *cfg)
{
    size_t n = 0;
    if (!cfg)
        return 0;
    for (size_t i = 0; i < cfg->site_count; i++) {
        const jp_site_t *s = &cfg->sites[i];
        if (!s->tls_verify) {
            jp_warn("config",
                    "site %s: TLS certificate verification is OFF (sites[%zu].tls_verify: false "
                    "in %s): Jira's identity is not checked; use it only against a test server",
                    s->name, i, cfg->source);
            n++;
        }
        const char *urls[] = {s->jira_url, s->scim_url, s->admin_url};
        const char *names[] = {"jira_url", "scim_url", "admin_url"};
        for (size_t k = 0; k < 3; k++)
            if (urls[k] && !strncmp(urls[k], "http://", 7) && !loopback_url(urls[k])) {
                jp_warn("config",
                        "site %s: %s is plain http:// (%s): credentials and data travel "
                        "unencrypted",
                        s->name, names[k], cfg->source);
                n++;
            }
    }
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char why[512];
    if (conf && jp_config_kafka_conf(cfg, conf, why, sizeof(why)) == JP_OK && kafka_uses_tls(conf))
        for (size_t i = 0; i < sizeof(kafka_tls_checks) / sizeof(kafka_tls_checks[0]); i++) {
            char v[64];
            kafka_get(conf, kafka_tls_checks[i].key, v, sizeof(v));
            if (!strcmp(v, kafka_tls_checks[i].secure))
                continue;
            const jp_config_kv_t *kv = kafka_kv(cfg, kafka_tls_checks[i].key);
            jp_warn("config", "kafka: %s is OFF (kafka.%s: %s at %s:%d:%d)",
                    kafka_tls_checks[i].what, kafka_tls_checks[i].key, v, cfg->source,
                    kv ? kv->line : 0, kv ? kv->column : 0);
            n++;
        }
    if (conf)
        rd_kafka_conf_destroy(conf);
    return n;
}

const jp_site_t *jp_config_site(const jp_config_t *cfg, const char *name)
{
    if (!cfg || !name)
        return NULL;
    for (size_t i = 0; i < cfg->site_count; i++)
        if (!strcmp(cfg->sites[i].name, name))
            return &cfg->sites[i];
    return NULL;
}

static const char *enum_name(const char *const *names, size_t count, int v)
{
    return v >= 0 && (size_t)v < count ? names[v] : "unknown";
}

const char *jp_config_lifecycle_name(jp_config_lifecycle_t v)
{
    return enum_name(lifecycle_names, 2, (int)v);
}

const char *jp_config_groups_name(jp_config_groups_t v)
{
    return enum_name(groups_names, 2, (int)v);
}

const char *jp_config_direction_name(jp_config_direction_t v)
{
    return enum_name(direction_names, 3, (int)v);
}

/* ------------------------------------------------------------------------ */
/* Dump                                                                     */

static void dump_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", out);
        else if (c < 0x20 || c == 0x7f)
            fprintf(out, "\\x%02x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

/* redis.url with the password part of the user information replaced. */
static void dump_redis_url(FILE *out, const char *url)
{
    const char *auth = strstr(url, "://");
    auth = auth ? auth + 3 : url;
    const char *slash = strchr(auth, '/');
    size_t alen = slash ? (size_t)(slash - auth) : strlen(auth);
    const char *atsign = NULL;
    for (size_t k = 0; k < alen; k++)
        if (auth[k] == '@')
            atsign = auth + k;
    const char *colon = atsign ? memchr(auth, ':', (size_t)(atsign - auth)) : NULL;
    if (!colon) {
        dump_str(out, url);
        return;
    }
    char *head = dupn(url, (size_t)(colon + 1 - url));
    fputc('"', out);
    if (head)
        fputs(head, out);
    fprintf(out, "%s%s\"", REDACTED, atsign);
    free(head);
}

static void dump_fields(FILE *out, const field_t *fields, size_t n, const void *base,
                        const char *first_indent, const char *indent)
{
    for (size_t i = 0; i < n; i++) {
        const field_t *f = &fields[i];
        const void *p = field_cptr(f, base);
        const char *ind = i ? indent : first_indent;
        if (is_string_type(f->type) && !*(char *const *)p) {
            fprintf(out, "%s# %s: (not set)\n", ind, f->key);
            continue;
        }
        fprintf(out, "%s%s: ", ind, f->key);
        switch (f->type) {
        case FT_INT:
            fprintf(out, "%d", *(const int *)p);
            break;
        case FT_DBL:
            fprintf(out, "%g", *(const double *)p);
            break;
        case FT_BOOL:
            fputs(*(const bool *)p ? "true" : "false", out);
            break;
        case FT_ENUM:
            fputs(f->choices[*(const int *)p], out);
            break;
        case FT_SECRET:
            fputs("\"" REDACTED "\"", out);
            break;
        case FT_REDIS_URL:
            dump_redis_url(out, *(char *const *)p);
            break;
        default:
            dump_str(out, *(char *const *)p);
            break;
        }
        fputc('\n', out);
    }
}

static void dump_section(FILE *out, const jp_config_t *cfg, const section_t *s)
{
    fprintf(out, "%s:\n", s->key);
    if (!strcmp(s->key, "kafka")) {
        for (size_t i = 0; i < cfg->kafka_count; i++) {
            fprintf(out, "  %s: ", cfg->kafka[i].key);
            if (cfg->kafka[i].secret)
                fputs("\"" REDACTED "\"", out);
            else
                dump_str(out, cfg->kafka[i].value);
            fputc('\n', out);
        }
    } else if (!strcmp(s->key, "sites")) {
        for (size_t i = 0; i < cfg->site_count; i++) {
            const jp_site_t *site = &cfg->sites[i];
            dump_fields(out, site_fields, NFIELDS(site_fields), site, "  - ", "    ");
            fputs("    rate_limits:\n", out);
            dump_fields(out, rate_fields, NFIELDS(rate_fields), &site->rate_limits, "      ",
                        "      ");
        }
    } else if (!strcmp(s->key, "mapping")) {
        for (size_t i = 0; i < cfg->mapping_count; i++)
            dump_fields(out, mapping_fields, NFIELDS(mapping_fields), &cfg->mapping[i], "  - ",
                        "    ");
    } else {
        dump_fields(out, s->fields, s->nfields, (const char *)cfg + s->base, "  ", "  ");
    }
}

void jp_config_dump(const jp_config_t *cfg, FILE *out)
{
    if (!cfg || !out)
        return;
    fputs("# effective configuration of ", out);
    dump_str(out, cfg->source);
    fputs("; secrets are redacted\n", out);
    for (size_t i = 0; i < NFIELDS(sections); i++)
        dump_section(out, cfg, &sections[i]);
}

/* ------------------------------------------------------------------------ */
/* Reload: what changed, and taking what may change while running           */

typedef struct differ {
    void (*fn)(const char *key, void *opaque);
    void *opaque;
    size_t count;
} differ_t;

static void diff_report(differ_t *d, const char *key)
{
    d->count++;
    if (d->fn)
        d->fn(key, d->opaque);
}

static bool str_differs(const char *a, const char *b)
{
    return (a == NULL) != (b == NULL) || (a && strcmp(a, b));
}

static bool field_differs(const field_t *f, const void *a, const void *b)
{
    const void *pa = field_cptr(f, a), *pb = field_cptr(f, b);
    switch (f->type) {
    case FT_INT:
    case FT_ENUM:
        return *(const int *)pa != *(const int *)pb;
    case FT_DBL:
        return *(const double *)pa != *(const double *)pb;
    case FT_BOOL:
        return *(const bool *)pa != *(const bool *)pb;
    default:
        return str_differs(*(char *const *)pa, *(char *const *)pb);
    }
}

static void diff_fields(differ_t *d, const char *prefix, const field_t *fields, size_t n,
                        const void *a, const void *b)
{
    char key[256];
    for (size_t i = 0; i < n; i++)
        if (field_differs(&fields[i], a, b)) {
            snprintf(key, sizeof(key), "%s.%s", prefix, fields[i].key);
            diff_report(d, key);
        }
}

static const jp_config_kv_t *kafka_find(const jp_config_t *cfg, const char *key)
{
    for (size_t i = 0; i < cfg->kafka_count; i++)
        if (!strcmp(cfg->kafka[i].key, key))
            return &cfg->kafka[i];
    return NULL;
}

static void diff_kafka(differ_t *d, const jp_config_t *a, const jp_config_t *b)
{
    char key[256];
    for (size_t i = 0; i < a->kafka_count; i++) {
        const jp_config_kv_t *o = kafka_find(b, a->kafka[i].key);
        if (!o || strcmp(o->value, a->kafka[i].value)) {
            snprintf(key, sizeof(key), "kafka.%s", a->kafka[i].key);
            diff_report(d, key);
        }
    }
    for (size_t i = 0; i < b->kafka_count; i++)
        if (!kafka_find(a, b->kafka[i].key)) {
            snprintf(key, sizeof(key), "kafka.%s", b->kafka[i].key);
            diff_report(d, key);
        }
}

static void diff_sites(differ_t *d, const jp_config_t *a, const jp_config_t *b)
{
    char key[256];
    for (size_t i = 0; i < a->site_count; i++) {
        const jp_site_t *sa = &a->sites[i], *sb = jp_config_site(b, sa->name);
        snprintf(key, sizeof(key), "sites[%s]", sa->name);
        if (!sb) {
            diff_report(d, key);
            continue;
        }
        diff_fields(d, key, site_fields, NFIELDS(site_fields), sa, sb);
        snprintf(key, sizeof(key), "sites[%s].rate_limits", sa->name);
        diff_fields(d, key, rate_fields, NFIELDS(rate_fields), &sa->rate_limits, &sb->rate_limits);
    }
    for (size_t i = 0; i < b->site_count; i++)
        if (!jp_config_site(a, b->sites[i].name)) {
            snprintf(key, sizeof(key), "sites[%s]", b->sites[i].name);
            diff_report(d, key);
        }
}

static bool mapping_differs(const jp_config_t *a, const jp_config_t *b)
{
    if (a->mapping_count != b->mapping_count)
        return true;
    for (size_t i = 0; i < a->mapping_count; i++)
        for (size_t k = 0; k < NFIELDS(mapping_fields); k++)
            if (field_differs(&mapping_fields[k], &a->mapping[i], &b->mapping[i]))
                return true;
    return false;
}

size_t jp_config_diff(const jp_config_t *a, const jp_config_t *b,
                      void (*fn)(const char *key, void *opaque), void *opaque)
{
    differ_t d = {fn, opaque, 0};
    if (!a || !b)
        return 0;
    for (size_t i = 0; i < NFIELDS(sections); i++) {
        const section_t *s = &sections[i];
        if (!strcmp(s->key, "kafka"))
            diff_kafka(&d, a, b);
        else if (!strcmp(s->key, "sites"))
            diff_sites(&d, a, b);
        else if (!strcmp(s->key, "mapping")) {
            if (mapping_differs(a, b))
                diff_report(&d, "mapping");
        } else
            diff_fields(&d, s->key, s->fields, s->nfields, (const char *)a + s->base,
                        (const char *)b + s->base);
    }
    return d.count;
}

bool jp_config_reloadable(const char *key)
{
    if (!key)
        return false;
    if (!strcmp(key, "log.level") || !strcmp(key, "mapping") || !strncmp(key, "retry.", 6) ||
        !strncmp(key, "rate_limits.", 12))
        return true;
    /* sites[NAME].rate_limits.KEY: site names never hold ']' or '.'. */
    const char *close = !strncmp(key, "sites[", 6) ? strchr(key, ']') : NULL;
    return close && !strncmp(close, "].rate_limits.", 14);
}

void jp_config_take_reloadable(jp_config_t *running, jp_config_t *fresh)
{
    if (!running || !fresh)
        return;
    running->log = fresh->log;
    running->retry = fresh->retry;
    running->rate_limits = fresh->rate_limits;
    for (size_t i = 0; i < running->site_count; i++) {
        const jp_site_t *s = jp_config_site(fresh, running->sites[i].name);
        if (!s)
            continue;
        running->sites[i].rate_limits = s->rate_limits;
        running->sites[i].rate_limits_overridden = s->rate_limits_overridden;
    }
    /* Exchanged, not copied: each config still frees exactly what it holds. */
    jp_config_mapping_t *m = running->mapping;
    size_t n = running->mapping_count;
    running->mapping = fresh->mapping;
    running->mapping_count = fresh->mapping_count;
    fresh->mapping = m;
    fresh->mapping_count = n;
}
