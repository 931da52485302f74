/* jira_jql.c - the JQL subset the emulator understands.
 *
 * Grammar (keywords case-insensitive):
 *   query   := [or] [ORDER BY sort {, sort}]
 *   or      := and {(OR | ||) and}
 *   and     := not {(AND | &&) not}
 *   not     := (NOT | !) not | '(' or ')' | clause
 *   clause  := field op value
 *   field   := word | "quoted" | issue.property[key].path
 *   op      := = | != | ~ | !~ | < | <= | > | >= | IN | NOT IN | IS | IS NOT
 *   value   := word | "quoted" | 'quoted' | EMPTY | NULL | func() | '(' value {, value} ')'
 *   sort    := field [ASC | DESC]
 * Fields: project, key (issuekey, issue, id), labels, status, statusCategory,
 * issuetype (type), priority, assignee, reporter, parent, summary (~ only),
 * created, updated, issue.property[k].path. Functions: currentUser().
 * Values are validated as Jira does: an unknown project, status, user or issue
 * key is an error, an unknown label is not.
 *
 * Evaluation walks the issue list; equality on key, labels and properties is
 * answered from indexes first, so `issue.property[k].id = "x"` and
 * `key = ABC-1` do not scan every issue. */
#include "jira.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

enum jql_tok { T_EOF, T_WORD, T_STR, T_LP, T_RP, T_COMMA, T_LB, T_RB, T_OP, T_AND, T_OR, T_BANG };

typedef struct jql_lex {
    const char *src;
    size_t pos;
    /* current token */
    enum jql_tok tok;
    char *text; /* word / string value / operator (owned) */
    size_t tpos;
    char *err;
    size_t errsz;
    int failed;
} jql_lex_t;

enum jql_field {
    F_PROJECT = 1,
    F_KEY,
    F_LABELS,
    F_STATUS,
    F_STATUSCAT,
    F_ITYPE,
    F_PRIORITY,
    F_ASSIGNEE,
    F_REPORTER,
    F_PARENT,
    F_SUMMARY,
    F_CREATED,
    F_UPDATED,
    F_PROPERTY
};

enum jql_op {
    OP_EQ = 1,
    OP_NE,
    OP_IN,
    OP_NOTIN,
    OP_IS,
    OP_ISNOT,
    OP_LIKE,
    OP_NOTLIKE,
    OP_LT,
    OP_LE,
    OP_GT,
    OP_GE
};

enum jql_kind { N_AND = 1, N_OR, N_NOT, N_CLAUSE };

typedef struct jql_val {
    char *text; /* NULL for EMPTY */
    int quoted;
    void *ref; /* resolved project / issue / status pointer, if any */
    long long num;
} jql_val_t;

typedef struct jql_node {
    enum jql_kind kind;
    struct jql_node *a, *b;
    enum jql_field field;
    const char *fname; /* display name of the field as written */
    char *fname_buf;
    enum jql_op op;
    jql_val_t *vals;
    size_t nvals;
    char *prop_key, *prop_path;
} jql_node_t;

typedef struct jql_sort {
    enum jql_field field;
    int desc;
} jql_sort_t;

struct jira_jql {
    jql_node_t *where;
    jql_sort_t sorts[7];
    size_t nsorts;
    uint64_t fp;
};

/* ---- errors --------------------------------------------------------------------- */

static void jql_fail(jql_lex_t *lx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void jql_fail(jql_lex_t *lx, const char *fmt, ...)
{
    if (lx->failed)
        return;
    lx->failed = 1;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(lx->err, lx->errsz, "%s", msg);
}

static void jql_syntax(jql_lex_t *lx, const char *expect)
{
    if (lx->tok == T_EOF)
        jql_fail(lx, "Error in the JQL Query: Expecting %s but reached the end of the query.",
                 expect);
    else
        jql_fail(lx, "Error in the JQL Query: Expecting %s but got '%s'. (line 1, character %zu)",
                 expect, lx->text ? lx->text : "", lx->tpos + 1);
}

/* ---- lexer ------------------------------------------------------------------------ */

static int jql_wordch(char c)
{
    return c && !isspace((unsigned char)c) && !strchr("=!<>()~,\"'[]&|", c);
}

static void jql_settext(jql_lex_t *lx, const char *s, size_t n)
{
    free(lx->text);
    lx->text = malloc(n + 1);
    if (!lx->text) {
        jql_fail(lx, "out of memory");
        return;
    }
    memcpy(lx->text, s, n);
    lx->text[n] = '\0';
}

static void jql_lex_string(jql_lex_t *lx, char q)
{
    jira_buf_t b = {0};
    size_t start = lx->pos++;
    jira_buf_add(&b, "", 0);
    for (;;) {
        char c = lx->src[lx->pos];
        if (!c) {
            jql_fail(lx,
                     "Error in the JQL Query: The quoted string '%s' has not been completed. "
                     "(line 1, character %zu)",
                     b.s ? b.s : "", start + 1);
            break;
        }
        lx->pos++;
        if (c == q)
            break;
        if (c == '\\') {
            char e = lx->src[lx->pos];
            char out = 0;
            switch (e) {
            case '"':
            case '\'':
            case '\\':
            case ' ':
                out = e;
                break;
            case 'n':
                out = '\n';
                break;
            case 't':
                out = '\t';
                break;
            case 'r':
                out = '\r';
                break;
            default:
                jql_fail(lx,
                         "Error in the JQL Query: The escape sequence '\\%c' in the JQL "
                         "query is not valid. (line 1, character %zu)",
                         e ? e : ' ', lx->pos);
                jira_buf_free(&b);
                return;
            }
            lx->pos++;
            jira_buf_add(&b, &out, 1);
            continue;
        }
        jira_buf_add(&b, &c, 1);
    }
    jql_settext(lx, b.s ? b.s : "", b.n);
    jira_buf_free(&b);
}

static void jql_next(jql_lex_t *lx)
{
    const char *s = lx->src;
    while (isspace((unsigned char)s[lx->pos]))
        lx->pos++;
    lx->tpos = lx->pos;
    char c = s[lx->pos];
    if (!c) {
        lx->tok = T_EOF;
        jql_settext(lx, "", 0);
        return;
    }
    static const struct {
        const char *s;
        enum jql_tok t;
    } fixed[] = {{"!=", T_OP},  {"!~", T_OP}, {"<=", T_OP},   {">=", T_OP}, {"&&", T_AND},
                 {"||", T_OR},  {"=", T_OP},  {"~", T_OP},    {"<", T_OP},  {">", T_OP},
                 {"(", T_LP},   {")", T_RP},  {",", T_COMMA}, {"[", T_LB},  {"]", T_RB},
                 {"!", T_BANG}, {"&", T_AND}, {"|", T_OR}};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        size_t n = strlen(fixed[i].s);
        if (strncmp(s + lx->pos, fixed[i].s, n) == 0) {
            lx->tok = fixed[i].t;
            jql_settext(lx, fixed[i].s, n);
            lx->pos += n;
            return;
        }
    }
    if (c == '"' || c == '\'') {
        lx->tok = T_STR;
        jql_lex_string(lx, c);
        return;
    }
    size_t st = lx->pos;
    while (jql_wordch(s[lx->pos]))
        lx->pos++;
    lx->tok = T_WORD;
    jql_settext(lx, s + st, lx->pos - st);
}

static int jql_kw(const jql_lex_t *lx, const char *kw)
{
    return lx->tok == T_WORD && strcasecmp(lx->text, kw) == 0;
}

/* ---- AST ------------------------------------------------------------------------------ */

static void jql_node_free(jql_node_t *n)
{
    if (!n)
        return;
    jql_node_free(n->a);
    jql_node_free(n->b);
    for (size_t i = 0; i < n->nvals; i++)
        free(n->vals[i].text);
    free(n->vals);
    free(n->prop_key);
    free(n->prop_path);
    free(n->fname_buf);
    free(n);
}

void jira_jql_free(jira_jql_t *q)
{
    if (!q)
        return;
    jql_node_free(q->where);
    free(q);
}

uint64_t jira_jql_fingerprint(const jira_jql_t *q)
{
    return q->fp;
}

static const struct {
    const char *name;
    enum jql_field f;
} jql_fields[] = {{"project", F_PROJECT},
                  {"key", F_KEY},
                  {"issuekey", F_KEY},
                  {"issue", F_KEY},
                  {"id", F_KEY},
                  {"labels", F_LABELS},
                  {"status", F_STATUS},
                  {"statusCategory", F_STATUSCAT},
                  {"issuetype", F_ITYPE},
                  {"type", F_ITYPE},
                  {"priority", F_PRIORITY},
                  {"assignee", F_ASSIGNEE},
                  {"reporter", F_REPORTER},
                  {"parent", F_PARENT},
                  {"summary", F_SUMMARY},
                  {"created", F_CREATED},
                  {"createdDate", F_CREATED},
                  {"updated", F_UPDATED},
                  {"updatedDate", F_UPDATED}};

static enum jql_field jql_field_lookup(const char *name)
{
    for (size_t i = 0; i < sizeof(jql_fields) / sizeof(jql_fields[0]); i++)
        if (strcasecmp(jql_fields[i].name, name) == 0)
            return jql_fields[i].f;
    return 0;
}

/* ---- parser ------------------------------------------------------------------------------ */

static jql_node_t *jql_or(jql_lex_t *lx, int depth);

static int jql_value(jql_lex_t *lx, jql_val_t *v)
{
    if (lx->tok == T_STR) {
        v->text = jira_strdup(lx->text);
        v->quoted = 1;
        jql_next(lx);
        return v->text ? 0 : -1;
    }
    if (lx->tok != T_WORD || !*lx->text) {
        jql_syntax(lx, "either a value, list or function");
        return -1;
    }
    if (jql_kw(lx, "EMPTY") || jql_kw(lx, "NULL")) {
        v->text = NULL;
        jql_next(lx);
        return 0;
    }
    char *word = jira_strdup(lx->text);
    size_t wpos = lx->tpos;
    jql_next(lx);
    if (lx->tok == T_LP) { /* a function call: only currentUser() is known */
        jql_next(lx);
        if (lx->tok != T_RP) {
            jql_syntax(lx, "')'");
            free(word);
            return -1;
        }
        jql_next(lx);
        if (!word || strcasecmp(word, "currentUser") != 0) {
            jql_fail(lx,
                     "Error in the JQL Query: Unable to find JQL function '%s()'. "
                     "(line 1, character %zu)",
                     word ? word : "", wpos + 1);
            free(word);
            return -1;
        }
        v->text = word;
        v->quoted = 2; /* marks the function */
        return 0;
    }
    v->text = word;
    return word ? 0 : -1;
}

static int jql_values(jql_lex_t *lx, jql_node_t *n, int list)
{
    size_t cap = 4;
    n->vals = calloc(cap, sizeof(*n->vals));
    if (!n->vals)
        return -1;
    if (!list) {
        n->nvals = 1;
        return jql_value(lx, &n->vals[0]);
    }
    if (lx->tok != T_LP) {
        jql_syntax(lx, "'('");
        return -1;
    }
    jql_next(lx);
    for (;;) {
        if (n->nvals == cap) {
            jql_val_t *nv = realloc(n->vals, cap * 2 * sizeof(*nv));
            if (!nv)
                return -1;
            memset(nv + cap, 0, cap * sizeof(*nv));
            n->vals = nv;
            cap *= 2;
        }
        if (jql_value(lx, &n->vals[n->nvals++]) != 0)
            return -1;
        if (lx->tok == T_COMMA) {
            jql_next(lx);
            continue;
        }
        if (lx->tok == T_RP) {
            jql_next(lx);
            return 0;
        }
        jql_syntax(lx, "',' or ')'");
        return -1;
    }
}

/* Parses the field part; for issue.property[key].path fills prop_key/path. */
static int jql_field(jql_lex_t *lx, jql_node_t *n)
{
    if (lx->tok != T_WORD && lx->tok != T_STR) {
        jql_syntax(lx, "a field name");
        return -1;
    }
    n->fname_buf = jira_strdup(lx->text);
    n->fname = n->fname_buf ? n->fname_buf : "";
    int quoted = lx->tok == T_STR;
    jql_next(lx);
    if (!quoted && strcasecmp(n->fname, "issue.property") == 0 && lx->tok == T_LB) {
        jql_next(lx);
        if ((lx->tok != T_WORD && lx->tok != T_STR) || !*lx->text) {
            jql_syntax(lx, "a property key");
            return -1;
        }
        n->prop_key = jira_strdup(lx->text);
        jql_next(lx);
        if (lx->tok != T_RB) {
            jql_syntax(lx, "']'");
            return -1;
        }
        jql_next(lx);
        if (lx->tok == T_WORD && lx->text[0] == '.') {
            n->prop_path = jira_strdup(lx->text + 1);
            jql_next(lx);
        } else {
            n->prop_path = jira_strdup("");
        }
        n->field = F_PROPERTY;
        return n->prop_key && n->prop_path ? 0 : -1;
    }
    n->field = jql_field_lookup(n->fname);
    if (!n->field) {
        jql_fail(lx, "Field '%s' does not exist or you do not have permission to view it.",
                 n->fname);
        return -1;
    }
    return 0;
}

static jql_node_t *jql_clause(jql_lex_t *lx)
{
    jql_node_t *n = calloc(1, sizeof(*n));
    if (!n)
        return NULL;
    n->kind = N_CLAUSE;
    if (jql_field(lx, n) != 0)
        goto fail;
    int list = 0;
    if (lx->tok == T_OP) {
        static const struct {
            const char *s;
            enum jql_op op;
        } ops[] = {{"=", OP_EQ}, {"!=", OP_NE}, {"~", OP_LIKE}, {"!~", OP_NOTLIKE},
                   {"<", OP_LT}, {"<=", OP_LE}, {">", OP_GT},   {">=", OP_GE}};
        for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
            if (strcmp(ops[i].s, lx->text) == 0)
                n->op = ops[i].op;
        jql_next(lx);
    } else if (jql_kw(lx, "IN")) {
        n->op = OP_IN;
        list = 1;
        jql_next(lx);
    } else if (jql_kw(lx, "NOT")) {
        jql_next(lx);
        if (!jql_kw(lx, "IN")) {
            jql_syntax(lx, "'IN'");
            goto fail;
        }
        n->op = OP_NOTIN;
        list = 1;
        jql_next(lx);
    } else if (jql_kw(lx, "IS")) {
        jql_next(lx);
        n->op = OP_IS;
        if (jql_kw(lx, "NOT")) {
            n->op = OP_ISNOT;
            jql_next(lx);
        }
    } else {
        jql_syntax(lx, "operator");
        if (lx->failed && lx->tok != T_EOF)
            snprintf(lx->err, lx->errsz,
                     "Error in the JQL Query: Expecting operator but got '%s'. The valid "
                     "operators are '=', '!=', '<', '>', '<=', '>=', '~', '!~', 'IN', 'NOT IN', "
                     "'IS' and 'IS NOT'. (line 1, character %zu)",
                     lx->text, lx->tpos + 1);
        goto fail;
    }
    if (jql_values(lx, n, list) != 0)
        goto fail;
    if ((n->op == OP_IS || n->op == OP_ISNOT) && n->vals[0].text) {
        jql_fail(lx, "The operator '%s' only supports searching for EMPTY values.",
                 n->op == OP_IS ? "is" : "is not");
        goto fail;
    }
    return n;
fail:
    jql_node_free(n);
    return NULL;
}

static jql_node_t *jql_not(jql_lex_t *lx, int depth)
{
    if (depth > 100) {
        jql_fail(lx, "Error in the JQL Query: The query is nested too deeply.");
        return NULL;
    }
    if (jql_kw(lx, "NOT") || lx->tok == T_BANG) {
        jql_next(lx);
        jql_node_t *c = jql_not(lx, depth + 1);
        if (!c)
            return NULL;
        jql_node_t *n = calloc(1, sizeof(*n));
        if (!n) {
            jql_node_free(c);
            return NULL;
        }
        n->kind = N_NOT;
        n->a = c;
        return n;
    }
    if (lx->tok == T_LP) {
        jql_next(lx);
        jql_node_t *n = jql_or(lx, depth + 1);
        if (!n)
            return NULL;
        if (lx->tok != T_RP) {
            jql_syntax(lx, "')'");
            jql_node_free(n);
            return NULL;
        }
        jql_next(lx);
        return n;
    }
    return jql_clause(lx);
}

static jql_node_t *jql_bin(enum jql_kind k, jql_node_t *a, jql_node_t *b)
{
    jql_node_t *n = calloc(1, sizeof(*n));
    if (!n) {
        jql_node_free(a);
        jql_node_free(b);
        return NULL;
    }
    n->kind = k;
    n->a = a;
    n->b = b;
    return n;
}

static jql_node_t *jql_and(jql_lex_t *lx, int depth)
{
    jql_node_t *l = jql_not(lx, depth);
    while (l && (jql_kw(lx, "AND") || lx->tok == T_AND)) {
        jql_next(lx);
        jql_node_t *r = jql_not(lx, depth);
        if (!r) {
            jql_node_free(l);
            return NULL;
        }
        l = jql_bin(N_AND, l, r);
    }
    return l;
}

static jql_node_t *jql_or(jql_lex_t *lx, int depth)
{
    jql_node_t *l = jql_and(lx, depth);
    while (l && (jql_kw(lx, "OR") || lx->tok == T_OR)) {
        jql_next(lx);
        jql_node_t *r = jql_and(lx, depth);
        if (!r) {
            jql_node_free(l);
            return NULL;
        }
        l = jql_bin(N_OR, l, r);
    }
    return l;
}

static int jql_order(jql_lex_t *lx, jira_jql_t *q)
{
    jql_next(lx); /* ORDER */
    if (!jql_kw(lx, "BY")) {
        jql_syntax(lx, "'by'");
        return -1;
    }
    jql_next(lx);
    for (;;) {
        if (lx->tok != T_WORD && lx->tok != T_STR) {
            jql_syntax(lx, "a field name");
            return -1;
        }
        enum jql_field f = jql_field_lookup(lx->text);
        if (!f) {
            jql_fail(lx, "Field '%s' does not exist or you do not have permission to view it.",
                     lx->text);
            return -1;
        }
        if (f == F_LABELS || f == F_PARENT) {
            jql_fail(lx, "Field '%s' does not support sorting.", lx->text);
            return -1;
        }
        if (q->nsorts == sizeof(q->sorts) / sizeof(q->sorts[0])) {
            jql_fail(lx, "The ORDER BY clause can contain at most 7 fields.");
            return -1;
        }
        jql_sort_t *s = &q->sorts[q->nsorts++];
        s->field = f;
        s->desc = f == F_CREATED || f == F_UPDATED; /* Jira's default direction */
        jql_next(lx);
        if (jql_kw(lx, "ASC") || jql_kw(lx, "DESC")) {
            s->desc = jql_kw(lx, "DESC");
            jql_next(lx);
        }
        if (lx->tok != T_COMMA)
            break;
        jql_next(lx);
    }
    if (lx->tok != T_EOF) {
        jql_syntax(lx, "',' or the end of the query");
        return -1;
    }
    return 0;
}

/* ---- validation ------------------------------------------------------------------------- */

static const char *jql_fname(const jql_node_t *n)
{
    return n->field == F_PROPERTY ? "issue.property" : n->fname;
}

static int jql_op_ok(const jql_node_t *n)
{
    switch (n->field) {
    case F_SUMMARY:
        return n->op == OP_LIKE || n->op == OP_NOTLIKE || n->op == OP_IS || n->op == OP_ISNOT;
    case F_CREATED:
    case F_UPDATED:
        return n->op != OP_LIKE && n->op != OP_NOTLIKE;
    case F_KEY:
        return n->op != OP_LIKE && n->op != OP_NOTLIKE;
    default:
        return n->op != OP_LIKE && n->op != OP_NOTLIKE && n->op != OP_LT && n->op != OP_LE &&
               n->op != OP_GT && n->op != OP_GE;
    }
}

static const char *jql_op_name(enum jql_op op)
{
    static const char *const names[] = {"",  "=",  "!=", "in", "not in", "is", "is not",
                                        "~", "!~", "<",  "<=", ">",      ">="};
    return names[op];
}

/* Parses "yyyy-MM-dd", "yyyy/MM/dd" with optional " HH:mm", or a relative
 * "-2d" / "4h" / "-30m" / "-1w" offset from now; ms epoch UTC. */
static int jql_date(const char *s, long long *out)
{
    int y, mo, d, h = 0, mi = 0;
    char sep1, sep2;
    int n = 0;
    if (sscanf(s, "%4d%c%2d%c%2d%n", &y, &sep1, &mo, &sep2, &d, &n) == 5 &&
        (sep1 == '-' || sep1 == '/') && sep2 == sep1) {
        const char *rest = s + n;
        if (*rest) {
            int m = 0;
            if (sscanf(rest, " %2d:%2d%n", &h, &mi, &m) != 2 || rest[m])
                return -1;
        }
        if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59)
            return -1;
        struct tm tm = {0};
        tm.tm_year = y - 1900;
        tm.tm_mon = mo - 1;
        tm.tm_mday = d;
        tm.tm_hour = h;
        tm.tm_min = mi;
        *out = (long long)timegm(&tm) * 1000;
        return 0;
    }
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (end == s || !end || end[0] == '\0' || end[1] != '\0')
        return -1;
    long long unit;
    switch (end[0]) {
    case 'm':
        unit = 60000LL;
        break;
    case 'h':
        unit = 3600000LL;
        break;
    case 'd':
        unit = 86400000LL;
        break;
    case 'w':
        unit = 604800000LL;
        break;
    default:
        return -1;
    }
    *out = emu_now_ms() + v * unit;
    return 0;
}

static int jql_key_shape(const char *s)
{
    const char *dash = strrchr(s, '-');
    if (!dash || dash == s || !dash[1])
        return 0;
    for (const char *p = dash + 1; *p; p++)
        if (!isdigit((unsigned char)*p))
            return 0;
    return 1;
}

/* Resolves one value; returns 0 or fails the lexer with Jira's message. */
static int jql_resolve_val(jql_lex_t *lx, const jira_jql_env_t *env, jql_node_t *n, jql_val_t *v)
{
    jira_state_t *st = env->st;
    const char *fn = n->fname;
    if (!v->text)
        return 0; /* EMPTY */
    if (v->quoted == 2) {
        if (n->field != F_ASSIGNEE && n->field != F_REPORTER) {
            jql_fail(lx,
                     "A value provided by the function 'currentUser' is invalid for the "
                     "field '%s'.",
                     fn);
            return -1;
        }
        free(v->text);
        v->text = jira_strdup(env->current_user ? env->current_user : "");
        v->quoted = 1;
        return v->text ? 0 : -1;
    }
    switch (n->field) {
    case F_PROJECT:
        v->ref = jira_project_find(st, v->text);
        if (!v->ref) { /* Jira also accepts a project name */
            for (size_t i = 0; i < st->projects.n && !v->ref; i++)
                if (strcasecmp(((jira_project_t *)st->projects.v[i])->name, v->text) == 0 ||
                    strcasecmp(((jira_project_t *)st->projects.v[i])->key, v->text) == 0)
                    v->ref = st->projects.v[i];
        }
        if (!v->ref) {
            jql_fail(lx, "The value '%s' does not exist for the field '%s'.", v->text, fn);
            return -1;
        }
        return 0;
    case F_KEY:
    case F_PARENT: {
        int64_t id;
        v->ref = jira_issue_find(st, v->text);
        if (v->ref)
            return 0;
        if (jira_parse_i64(v->text, &id) == 0) {
            /* An id that matches no issue is not an error in Jira. */
            v->num = id;
            return 0;
        }
        if (!jql_key_shape(v->text)) {
            jql_fail(lx, "The issue key '%s' for field '%s' is invalid.", v->text, fn);
            return -1;
        }
        jql_fail(lx, "An issue with key '%s' does not exist for field '%s'.", v->text, fn);
        return -1;
    }
    case F_STATUS: {
        for (size_t i = 0; i < st->projects.n; i++)
            if (jira_status_find(&((jira_project_t *)st->projects.v[i])->wf, v->text))
                return 0;
        jql_fail(lx, "The value '%s' does not exist for the field '%s'.", v->text, fn);
        return -1;
    }
    case F_STATUSCAT: {
        static const int cats[] = {JIRA_CAT_NEW, JIRA_CAT_INPROGRESS, JIRA_CAT_DONE,
                                   JIRA_CAT_UNDEFINED};
        for (size_t i = 0; i < 4; i++) {
            char idbuf[8];
            snprintf(idbuf, sizeof(idbuf), "%d", cats[i]);
            if (strcasecmp(v->text, jira_cat_key(cats[i])) == 0 ||
                strcasecmp(v->text, jira_cat_name(cats[i])) == 0 || strcmp(v->text, idbuf) == 0) {
                v->num = cats[i];
                return 0;
            }
        }
        jql_fail(lx, "The value '%s' does not exist for the field '%s'.", v->text, fn);
        return -1;
    }
    case F_ITYPE:
        for (size_t i = 0; i < st->projects.n; i++)
            if (jira_itype_find(st->projects.v[i], v->text))
                return 0;
        jql_fail(lx, "The value '%s' does not exist for the field '%s'.", v->text, fn);
        return -1;
    case F_PRIORITY:
        v->num = jira_priority_find(v->text);
        if (v->num < 0) {
            jql_fail(lx, "The value '%s' does not exist for the field '%s'.", v->text, fn);
            return -1;
        }
        return 0;
    case F_ASSIGNEE:
    case F_REPORTER:
        if (env->user_exists && !env->user_exists(env->ctx, v->text)) {
            jql_fail(lx, "The value '%s' does not exist for the field '%s'.", v->text, fn);
            return -1;
        }
        return 0;
    case F_CREATED:
    case F_UPDATED:
        if (jql_date(v->text, &v->num) != 0) {
            jql_fail(lx,
                     "Date value '%s' for field '%s' is invalid. Valid formats include: "
                     "'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or "
                     "a period format e.g. '-5d', '4w 2d'.",
                     v->text, fn);
            return -1;
        }
        return 0;
    default:
        return 0;
    }
}

static int jql_resolve(jql_lex_t *lx, const jira_jql_env_t *env, jql_node_t *n)
{
    if (!n)
        return 0;
    if (n->kind != N_CLAUSE)
        return jql_resolve(lx, env, n->a) || jql_resolve(lx, env, n->b) ? -1 : 0;
    if (!jql_op_ok(n)) {
        jql_fail(lx, "The operator '%s' is not supported by the '%s' field.", jql_op_name(n->op),
                 jql_fname(n));
        return -1;
    }
    for (size_t i = 0; i < n->nvals; i++) {
        if (!n->vals[i].text && n->op != OP_IS && n->op != OP_ISNOT && n->op != OP_EQ &&
            n->op != OP_NE && n->op != OP_IN && n->op != OP_NOTIN) {
            jql_fail(lx, "The operator '%s' does not support searching for EMPTY values.",
                     jql_op_name(n->op));
            return -1;
        }
        if (jql_resolve_val(lx, env, n, &n->vals[i]) != 0)
            return -1;
    }
    return 0;
}

jira_jql_t *jira_jql_compile(const char *text, const jira_jql_env_t *env, int *unbounded, char *err,
                             size_t errsz)
{
    jira_jql_t *q = calloc(1, sizeof(*q));
    if (!q) {
        snprintf(err, errsz, "out of memory");
        return NULL;
    }
    if (!text)
        text = "";
    q->fp = jira_hash64(text, strlen(text), 0x4a514cULL);
    jql_lex_t lx = {.src = text, .err = err, .errsz = errsz};
    jql_next(&lx);
    if (!lx.failed && lx.tok != T_EOF && !jql_kw(&lx, "ORDER")) {
        q->where = jql_or(&lx, 0);
        if (!lx.failed && q->where && lx.tok != T_EOF && !jql_kw(&lx, "ORDER"))
            jql_syntax(&lx, "either 'OR' or 'AND'");
    }
    if (!lx.failed && jql_kw(&lx, "ORDER"))
        jql_order(&lx, q);
    if (!lx.failed && lx.tok != T_EOF)
        jql_syntax(&lx, "the end of the query");
    if (!lx.failed)
        jql_resolve(&lx, env, q->where);
    free(lx.text);
    if (lx.failed) {
        jira_jql_free(q);
        return NULL;
    }
    *unbounded = q->where == NULL;
    return q;
}

/* ---- evaluation --------------------------------------------------------------------------------
 */

static int jql_issue_is(const jira_issue_t *is, const jql_val_t *v)
{
    if (v->ref)
        return v->ref == is;
    return strcmp(v->text, is->idstr) == 0;
}

static int jql_prop_match(const jira_issue_t *is, const jql_node_t *n, const char *want)
{
    const json_t *pv = json_object_get(is->props, n->prop_key);
    const json_t *at = pv ? jira_json_path(pv, n->prop_path) : NULL;
    char buf[64];
    if (!at)
        return 0;
    if (!want)
        return 1; /* existence, for IS NOT EMPTY */
    if (json_is_array(at)) {
        size_t i;
        json_t *e;
        json_array_foreach(at, i, e)
        {
            const char *t = jira_scalar_text(e, buf, sizeof(buf));
            if (t && strcmp(t, want) == 0)
                return 1;
        }
        return 0;
    }
    const char *t = jira_scalar_text(at, buf, sizeof(buf));
    return t && strcmp(t, want) == 0;
}

/* 1 if one value of the clause equals the issue's field; the caller handles
 * negation and emptiness. */
static int jql_val_eq(const jira_issue_t *is, const jql_node_t *n, const jql_val_t *v)
{
    switch (n->field) {
    case F_PROJECT:
        return v->ref == is->proj;
    case F_KEY:
        return jql_issue_is(is, v);
    case F_PARENT:
        return is->parent && jql_issue_is(is->parent, v);
    case F_LABELS:
        for (size_t i = 0; i < is->labels.n; i++)
            if (strcasecmp(is->labels.v[i], v->text) == 0)
                return 1;
        return 0;
    case F_STATUS:
        return strcmp(is->status->id, v->text) == 0 || strcasecmp(is->status->name, v->text) == 0;
    case F_STATUSCAT:
        return is->status->category == v->num;
    case F_ITYPE:
        return strcmp(is->itype->id, v->text) == 0 || strcasecmp(is->itype->name, v->text) == 0;
    case F_PRIORITY:
        return is->priority == v->num;
    case F_ASSIGNEE:
        return is->assignee && strcmp(is->assignee, v->text) == 0;
    case F_REPORTER:
        return is->reporter && strcmp(is->reporter, v->text) == 0;
    case F_CREATED:
        return is->created == v->num;
    case F_UPDATED:
        return is->updated == v->num;
    case F_PROPERTY:
        return jql_prop_match(is, n, v->text);
    default:
        return 0;
    }
}

static int jql_is_empty(const jira_issue_t *is, const jql_node_t *n)
{
    switch (n->field) {
    case F_LABELS:
        return is->labels.n == 0;
    case F_ASSIGNEE:
        return is->assignee == NULL;
    case F_REPORTER:
        return is->reporter == NULL;
    case F_PARENT:
        return is->parent == NULL;
    case F_PROPERTY:
        return !jql_prop_match(is, n, NULL);
    case F_SUMMARY:
        return !is->summary || !*is->summary;
    default:
        return 0;
    }
}

static int jql_contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (const char *p = hay; p && *p; p++)
        if (strncasecmp(p, needle, n) == 0)
            return 1;
    return n == 0;
}

static int jql_match_clause(const jira_issue_t *is, const jql_node_t *n)
{
    int any = 0, has_empty = 0;
    switch (n->op) {
    case OP_IS:
        return jql_is_empty(is, n);
    case OP_ISNOT:
        return !jql_is_empty(is, n);
    case OP_LIKE:
        return jql_contains_ci(is->summary, n->vals[0].text);
    case OP_NOTLIKE:
        return !jql_contains_ci(is->summary, n->vals[0].text);
    case OP_LT:
    case OP_LE:
    case OP_GT:
    case OP_GE: {
        long long have = n->field == F_CREATED   ? is->created
                         : n->field == F_UPDATED ? is->updated
                                                 : is->id;
        long long want = n->vals[0].num;
        if (n->field == F_KEY && n->vals[0].ref) {
            /* Key order is per project: ABC-10 > ABC-9, unrelated to XYZ-1. */
            const jira_issue_t *o = n->vals[0].ref;
            if (o->proj != is->proj)
                return 0;
            have = is->num;
            want = o->num;
        }
        return n->op == OP_LT   ? have < want
               : n->op == OP_LE ? have <= want
               : n->op == OP_GT ? have > want
                                : have >= want;
    }
    default:
        break;
    }
    for (size_t i = 0; i < n->nvals && !any; i++) {
        if (!n->vals[i].text)
            has_empty = 1;
        else
            any = jql_val_eq(is, n, &n->vals[i]);
    }
    int empty = jql_is_empty(is, n);
    if (n->op == OP_EQ || n->op == OP_IN)
        return any || (has_empty && empty);
    /* != and NOT IN never match an empty field, as in Jira (users add
     * "OR field IS EMPTY" for that). */
    return !any && !empty;
}

static int jql_match(const jira_issue_t *is, const jql_node_t *n)
{
    switch (n->kind) {
    case N_AND:
        return jql_match(is, n->a) && jql_match(is, n->b);
    case N_OR:
        return jql_match(is, n->a) || jql_match(is, n->b);
    case N_NOT:
        return !jql_match(is, n->a);
    default:
        return jql_match_clause(is, n);
    }
}

/* Candidate issues for a node from the indexes: returns 1 and appends to out
 * (possibly with duplicates) when the node can be answered from an index, 0
 * when every issue has to be looked at. */
static int jql_cands(jira_state_t *st, const jql_node_t *n, jira_vec_t *out)
{
    if (n->kind == N_AND) {
        jira_vec_t a = {0}, b = {0};
        int ha = jql_cands(st, n->a, &a);
        int hb = jql_cands(st, n->b, &b);
        jira_vec_t *pick = ha && (!hb || a.n <= b.n) ? &a : hb ? &b : NULL;
        for (size_t i = 0; pick && i < pick->n; i++)
            jira_vec_push(out, pick->v[i]);
        jira_vec_clear(&a);
        jira_vec_clear(&b);
        return pick != NULL;
    }
    if (n->kind == N_OR) {
        size_t mark = out->n;
        if (jql_cands(st, n->a, out) && jql_cands(st, n->b, out))
            return 1;
        out->n = mark;
        return 0;
    }
    if (n->kind != N_CLAUSE || (n->op != OP_EQ && n->op != OP_IN))
        return 0;
    for (size_t i = 0; i < n->nvals; i++)
        if (!n->vals[i].text)
            return 0;
    for (size_t i = 0; i < n->nvals; i++) {
        const jql_val_t *v = &n->vals[i];
        const jira_vec_t *p = NULL;
        if (n->field == F_KEY) {
            jira_issue_t *is = v->ref ? v->ref : jira_issue_find(st, v->text);
            if (is)
                jira_vec_push(out, is);
            continue;
        }
        if (n->field == F_LABELS)
            p = jira_index_label(st, v->text);
        else if (n->field == F_PROPERTY)
            p = jira_index_prop(st, n->prop_key, n->prop_path, v->text);
        else
            return 0;
        for (size_t j = 0; p && j < p->n; j++)
            jira_vec_push(out, p->v[j]);
    }
    return 1;
}

static const jira_jql_t *jql_sort_q;

static int jql_cmp_str(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "");
}

static int jql_cmp_field(const jira_issue_t *x, const jira_issue_t *y, enum jql_field f)
{
    switch (f) {
    case F_KEY: {
        int c = strcmp(x->proj->key, y->proj->key);
        return c ? c : (x->num > y->num) - (x->num < y->num);
    }
    case F_PROJECT:
        return strcmp(x->proj->key, y->proj->key);
    case F_CREATED:
        return (x->created > y->created) - (x->created < y->created);
    case F_UPDATED:
        return (x->updated > y->updated) - (x->updated < y->updated);
    case F_SUMMARY:
        return jql_cmp_str(x->summary, y->summary);
    case F_PRIORITY: /* descending sort puts Highest first, as in Jira */
        return (y->priority > x->priority) - (y->priority < x->priority);
    case F_STATUS:
        return strcmp(x->status->name, y->status->name);
    case F_STATUSCAT:
        return x->status->category - y->status->category;
    case F_ITYPE:
        return strcmp(x->itype->name, y->itype->name);
    case F_ASSIGNEE:
        return jql_cmp_str(x->assignee, y->assignee);
    case F_REPORTER:
        return jql_cmp_str(x->reporter, y->reporter);
    default:
        return 0;
    }
}

static int jql_cmp(const void *pa, const void *pb)
{
    const jira_issue_t *x = *(const jira_issue_t *const *)pa;
    const jira_issue_t *y = *(const jira_issue_t *const *)pb;
    const jira_jql_t *q = jql_sort_q;
    for (size_t i = 0; i < q->nsorts; i++) {
        int c = jql_cmp_field(x, y, q->sorts[i].field);
        if (c)
            return q->sorts[i].desc ? -c : c;
    }
    if (q->nsorts == 0) {
        /* No ORDER BY: newest first, as Jira's default ordering. */
        int c = jql_cmp_field(x, y, F_CREATED);
        if (c)
            return -c;
        return (y->id > x->id) - (y->id < x->id);
    }
    return (x->id > y->id) - (x->id < y->id);
}

int jira_jql_run(jira_jql_t *q, jira_state_t *st, jira_vec_t *out)
{
    jira_vec_t cands = {0};
    int indexed = q->where && jql_cands(st, q->where, &cands);
    const jira_vec_t *src = indexed ? &cands : &st->issues;
    unsigned gen = ++st->mark_gen;
    if (gen == 0) { /* wrapped: clear marks so old values cannot collide */
        for (size_t i = 0; i < st->issues.n; i++)
            ((jira_issue_t *)st->issues.v[i])->mark = 0;
        gen = ++st->mark_gen;
    }
    for (size_t i = 0; i < src->n; i++) {
        jira_issue_t *is = src->v[i];
        if (is->mark == gen)
            continue;
        is->mark = gen;
        if (!q->where || jql_match(is, q->where))
            if (jira_vec_push(out, is) != 0) {
                jira_vec_clear(&cands);
                return -1;
            }
    }
    jira_vec_clear(&cands);
    /* The emulator runs handlers under one global lock, so a file-scope
     * comparator context is safe here. */
    jql_sort_q = q;
    if (out->n > 1)
        qsort(out->v, out->n, sizeof(void *), jql_cmp);
    jql_sort_q = NULL;
    return 0;
}
