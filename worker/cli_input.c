/* cli_input: JSON Lines, JSON and YAML event readers for the producer CLIs (see cli_input.h). */
#include "jiraprov/cli_input.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <yaml.h>

/* Bounds on one YAML document: nesting depth, and nodes after alias expansion (an alias
 * repeats its anchor's nodes in the output, so a few lines could otherwise expand to
 * gigabytes of JSON). */
#define JP_INPUT_YAML_MAX_DEPTH 128
#define JP_INPUT_YAML_MAX_NODES 1000000

#define YAML_TAG_PREFIX "tag:yaml.org,2002:"

/* One element of a JSON array input: a slice of the buffer. */
typedef struct json_slice {
    size_t off;
    size_t len;
    long line;
} json_slice_t;

/* An open YAML collection while a document is being converted. */
typedef struct yframe {
    json_t *node; /* object or array; NULL for a root sequence, whose items are records */
    char *key;    /* a mapping's pending key (NULL when a key comes next) */
    size_t key_len;
    char *anchor; /* registered when the collection ends */
    long line;
    size_t nodes_at_start;
} yframe_t;

typedef struct yanchor {
    char *name;
    json_t *value;
    size_t nodes;
} yanchor_t;

typedef struct yaml_state {
    yaml_parser_t parser;
    int parser_ready;
    yframe_t stack[JP_INPUT_YAML_MAX_DEPTH];
    int depth;
    yanchor_t *anchors;
    size_t anchor_cnt, anchor_cap;
    size_t nodes;
} yaml_state_t;

struct jp_input {
    char *name;
    jp_input_format_t fmt;
    FILE *fp;
    int own_fp;
    int done;
    long line; /* JSON Lines: lines read so far */
    char *linebuf;
    size_t linecap;
    /* JSON: the whole document and its slices */
    char *doc;
    size_t doc_len;
    json_slice_t *slices;
    size_t slice_cnt, slice_next;
    int doc_loaded;
    yaml_state_t *yaml;
};

int jp_input_format_parse(const char *name)
{
    if (!name)
        return -1;
    if (!strcasecmp(name, "jsonl") || !strcasecmp(name, "ndjson"))
        return JP_INPUT_JSONL;
    if (!strcasecmp(name, "json"))
        return JP_INPUT_JSON;
    if (!strcasecmp(name, "yaml") || !strcasecmp(name, "yml"))
        return JP_INPUT_YAML;
    if (!strcasecmp(name, "auto"))
        return JP_INPUT_AUTO;
    return -1;
}

const char *jp_input_format_name(jp_input_format_t fmt)
{
    switch (fmt) {
    case JP_INPUT_JSONL:
        return "jsonl";
    case JP_INPUT_JSON:
        return "json";
    case JP_INPUT_YAML:
        return "yaml";
    case JP_INPUT_AUTO:
        break;
    }
    return "auto";
}

jp_input_format_t jp_input_format_guess(const char *path)
{
    const char *dot, *slash;
    int fmt;

    if (!path || !strcmp(path, "-"))
        return JP_INPUT_JSONL;
    dot = strrchr(path, '.');
    slash = strrchr(path, '/');
    if (!dot || (slash && dot < slash))
        return JP_INPUT_AUTO;
    fmt = jp_input_format_parse(dot + 1);
    return fmt < 0 ? JP_INPUT_AUTO : (jp_input_format_t)fmt;
}

static jp_err_t input_new(FILE *fp, int own_fp, const char *name, jp_input_format_t fmt,
                          jp_input_t **out, char *errstr, size_t errstr_size)
{
    jp_input_t *in = calloc(1, sizeof(*in));

    if (!in || !(in->name = strdup(name))) {
        free(in);
        return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
    }
    in->fp = fp;
    in->own_fp = own_fp;
    in->fmt = fmt;
    *out = in;
    return JP_OK;
}

jp_err_t jp_input_open_stream(FILE *fp, const char *name, jp_input_format_t fmt, jp_input_t **out,
                              char *errstr, size_t errstr_size)
{
    *out = NULL;
    if (!fp || !name)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "no stream to read");
    if (fmt == JP_INPUT_AUTO)
        fmt = jp_input_format_guess(name);
    if (fmt == JP_INPUT_AUTO)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "cannot tell the format of %s from its name (expected .jsonl, .ndjson, "
                          ".json, .yaml or .yml)",
                          name);
    return input_new(fp, 0, name, fmt, out, errstr, errstr_size);
}

jp_err_t jp_input_open(const char *path, jp_input_format_t fmt, jp_input_t **out, char *errstr,
                       size_t errstr_size)
{
    FILE *fp;
    jp_err_t err;

    *out = NULL;
    if (!path)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "no input path");
    if (!strcmp(path, "-")) {
        if (fmt == JP_INPUT_AUTO)
            fmt = JP_INPUT_JSONL;
        return input_new(stdin, 0, "<stdin>", fmt, out, errstr, errstr_size);
    }
    if (fmt == JP_INPUT_AUTO)
        fmt = jp_input_format_guess(path);
    if (fmt == JP_INPUT_AUTO)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "cannot tell the format of %s from its extension (expected .jsonl, "
                          ".ndjson, .json, .yaml or .yml; or give the format)",
                          path);
    fp = fopen(path, "rb");
    if (!fp)
        return jp_err_set(errstr, errstr_size, JP_ERR_IO, "cannot open %s: %s", path,
                          strerror(errno));
    err = input_new(fp, 1, path, fmt, out, errstr, errstr_size);
    if (err != JP_OK)
        fclose(fp);
    return err;
}

const char *jp_input_name(const jp_input_t *in)
{
    return in ? in->name : "";
}

jp_input_format_t jp_input_format(const jp_input_t *in)
{
    return in ? in->fmt : JP_INPUT_AUTO;
}

static jp_err_t record_set(jp_input_record_t *rec, const char *text, size_t len, long line,
                           char *errstr, size_t errstr_size)
{
    char *copy = malloc(len + 1);

    if (!copy)
        return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
    memcpy(copy, text, len);
    copy[len] = '\0';
    rec->text = copy;
    rec->len = len;
    rec->line = line;
    return JP_OK;
}

static size_t skip_bom(const char *s, size_t len)
{
    return (len >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3)) ? 3 : 0;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

/* ---- JSON Lines ---- */

static jp_err_t jsonl_next(jp_input_t *in, jp_input_record_t *rec, char *errstr, size_t errstr_size)
{
    for (;;) {
        ssize_t n;
        size_t len, start, i;

        errno = 0;
        n = getline(&in->linebuf, &in->linecap, in->fp);
        if (n < 0) {
            in->done = 1;
            if (ferror(in->fp))
                return jp_err_set(errstr, errstr_size, JP_ERR_IO, "read error after line %ld: %s",
                                  in->line, strerror(errno ? errno : EIO));
            return JP_OK;
        }
        in->line++;
        len = (size_t)n;
        if (len > 0 && in->linebuf[len - 1] == '\n')
            len--;
        if (len > 0 && in->linebuf[len - 1] == '\r')
            len--;
        start = in->line == 1 ? skip_bom(in->linebuf, len) : 0;
        for (i = start; i < len && is_blank(in->linebuf[i]); i++)
            ;
        if (i == len || in->linebuf[i] == '#')
            continue;
        return record_set(rec, in->linebuf + start, len - start, in->line, errstr, errstr_size);
    }
}

/* ---- JSON document ---- */

static jp_err_t read_all(FILE *fp, char **out, size_t *out_len, char *errstr, size_t errstr_size)
{
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap + 1);

    if (!buf)
        return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
    for (;;) {
        size_t n = fread(buf + len, 1, cap - len, fp);
        len += n;
        if (len < cap) {
            if (ferror(fp)) {
                free(buf);
                return jp_err_set(errstr, errstr_size, JP_ERR_IO, "read error: %s",
                                  strerror(errno ? errno : EIO));
            }
            if (feof(fp))
                break;
            continue;
        }
        if (cap > SIZE_MAX / 4) {
            free(buf);
            return jp_err_set(errstr, errstr_size, JP_ERR_TOO_LARGE, "input too large");
        }
        char *bigger = realloc(buf, cap * 2 + 1);
        if (!bigger) {
            free(buf);
            return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
        }
        buf = bigger;
        cap *= 2;
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    return JP_OK;
}

/* Cursor over a document already known to be valid JSON: it only has to find boundaries. */
typedef struct json_cursor {
    const char *s;
    size_t len, pos;
    long line;
} json_cursor_t;

static void cur_skip_ws(json_cursor_t *c)
{
    while (c->pos < c->len && is_blank(c->s[c->pos])) {
        if (c->s[c->pos] == '\n')
            c->line++;
        c->pos++;
    }
}

static void cur_skip_string(json_cursor_t *c)
{
    c->pos++; /* opening quote */
    while (c->pos < c->len && c->s[c->pos] != '"') {
        if (c->s[c->pos] == '\\')
            c->pos++;
        c->pos++;
    }
    c->pos++; /* closing quote */
}

static void cur_skip_value(json_cursor_t *c)
{
    char ch = c->s[c->pos];
    int depth = 0;

    if (ch == '"') {
        cur_skip_string(c);
        return;
    }
    if (ch != '{' && ch != '[') {
        while (c->pos < c->len && !is_blank(ch = c->s[c->pos]) && ch != ',' && ch != ']' &&
               ch != '}')
            c->pos++;
        return;
    }
    while (c->pos < c->len) {
        ch = c->s[c->pos];
        if (ch == '"') {
            cur_skip_string(c);
            continue;
        }
        if (ch == '\n')
            c->line++;
        c->pos++;
        if (ch == '{' || ch == '[')
            depth++;
        else if ((ch == '}' || ch == ']') && --depth == 0)
            return;
    }
}

static jp_err_t slices_push(jp_input_t *in, size_t *cap, size_t off, size_t len, long line,
                            char *errstr, size_t errstr_size)
{
    if (in->slice_cnt == *cap) {
        size_t ncap = *cap ? *cap * 2 : 64;
        json_slice_t *n = realloc(in->slices, ncap * sizeof(*n));
        if (!n)
            return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
        in->slices = n;
        *cap = ncap;
    }
    in->slices[in->slice_cnt].off = off;
    in->slices[in->slice_cnt].len = len;
    in->slices[in->slice_cnt].line = line;
    in->slice_cnt++;
    return JP_OK;
}

/* Splits the top-level array of a valid document into element slices. */
static jp_err_t json_split_array(jp_input_t *in, json_cursor_t *c, char *errstr, size_t errstr_size)
{
    size_t cap = 0;

    c->pos++; /* '[' */
    for (;;) {
        size_t start;
        long line;
        jp_err_t err;

        cur_skip_ws(c);
        if (c->pos >= c->len || c->s[c->pos] == ']')
            return JP_OK;
        if (c->s[c->pos] == ',') {
            c->pos++;
            continue;
        }
        start = c->pos;
        line = c->line;
        cur_skip_value(c);
        err = slices_push(in, &cap, start, c->pos - start, line, errstr, errstr_size);
        if (err != JP_OK)
            return err;
    }
}

static jp_err_t json_load(jp_input_t *in, jp_input_record_t *rec, char *errstr, size_t errstr_size)
{
    json_error_t jerr;
    json_t *root;
    json_cursor_t c;
    jp_err_t err;
    size_t end;
    size_t cap = 0;

    in->doc_loaded = 1;
    err = read_all(in->fp, &in->doc, &in->doc_len, errstr, errstr_size);
    if (err != JP_OK)
        return err;
    memset(&c, 0, sizeof(c));
    c.s = in->doc;
    c.len = in->doc_len;
    c.line = 1;
    c.pos = skip_bom(c.s, c.len);
    cur_skip_ws(&c);
    if (c.pos == c.len)
        return JP_OK; /* empty input: no events */
    root = json_loadb(c.s + c.pos, c.len - c.pos, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!root) {
        rec->line = jerr.line > 0 ? c.line + jerr.line - 1 : c.line;
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "invalid JSON: %s", jerr.text);
    }
    if (json_is_array(root)) {
        json_decref(root);
        return json_split_array(in, &c, errstr, errstr_size);
    }
    json_decref(root);
    end = c.len;
    while (end > c.pos && is_blank(c.s[end - 1]))
        end--;
    return slices_push(in, &cap, c.pos, end - c.pos, c.line, errstr, errstr_size);
}

static jp_err_t json_next(jp_input_t *in, jp_input_record_t *rec, char *errstr, size_t errstr_size)
{
    if (!in->doc_loaded) {
        jp_err_t err = json_load(in, rec, errstr, errstr_size);
        if (err != JP_OK) {
            in->done = 1;
            return err;
        }
    }
    if (in->slice_next >= in->slice_cnt) {
        in->done = 1;
        return JP_OK;
    }
    const json_slice_t *s = &in->slices[in->slice_next++];
    return record_set(rec, in->doc + s->off, s->len, s->line, errstr, errstr_size);
}

/* ---- YAML ---- */

static long mark_line(const yaml_mark_t *m)
{
    return (long)m->line + 1;
}

static void yaml_anchors_clear(yaml_state_t *y)
{
    size_t i;
    for (i = 0; i < y->anchor_cnt; i++) {
        free(y->anchors[i].name);
        json_decref(y->anchors[i].value);
    }
    y->anchor_cnt = 0;
}

static void yaml_stack_clear(yaml_state_t *y)
{
    while (y->depth > 0) {
        yframe_t *f = &y->stack[--y->depth];
        json_decref(f->node);
        free(f->key);
        free(f->anchor);
    }
}

static void yaml_state_free(yaml_state_t *y)
{
    if (!y)
        return;
    yaml_stack_clear(y);
    yaml_anchors_clear(y);
    free(y->anchors);
    if (y->parser_ready)
        yaml_parser_delete(&y->parser);
    free(y);
}

static const yanchor_t *yaml_anchor_find(const yaml_state_t *y, const char *name)
{
    size_t i = y->anchor_cnt;
    /* the latest definition of a name wins */
    while (i-- > 0)
        if (!strcmp(y->anchors[i].name, name))
            return &y->anchors[i];
    return NULL;
}

/* Registers `value` under `name` (both taken on success). */
static jp_err_t yaml_anchor_add(yaml_state_t *y, char *name, json_t *value, size_t nodes,
                                char *errstr, size_t errstr_size)
{
    if (y->anchor_cnt == y->anchor_cap) {
        size_t ncap = y->anchor_cap ? y->anchor_cap * 2 : 16;
        yanchor_t *n = realloc(y->anchors, ncap * sizeof(*n));
        if (!n)
            return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
        y->anchors = n;
        y->anchor_cap = ncap;
    }
    y->anchors[y->anchor_cnt].name = name;
    y->anchors[y->anchor_cnt].value = value;
    y->anchors[y->anchor_cnt].nodes = nodes;
    y->anchor_cnt++;
    return JP_OK;
}

static int str_in(const char *s, size_t len, const char *const *set)
{
    for (; *set; set++)
        if (strlen(*set) == len && !memcmp(s, *set, len))
            return 1;
    return 0;
}

static const char *const yaml_nulls[] = {"~", "null", "Null", "NULL", "", NULL};
static const char *const yaml_trues[] = {"true", "True", "TRUE", NULL};
static const char *const yaml_falses[] = {"false", "False", "FALSE", NULL};
static const char *const yaml_infs[] = {".inf",  ".Inf",  ".INF",  "+.inf", "+.Inf",
                                        "+.INF", "-.inf", "-.Inf", "-.INF", NULL};
static const char *const yaml_nans[] = {".nan", ".NaN", ".NAN", NULL};

static int all_in(const char *s, size_t len, const char *chars)
{
    size_t i;
    if (len == 0)
        return 0;
    for (i = 0; i < len; i++)
        if (!strchr(chars, s[i]))
            return 0;
    return 1;
}

/* 1 = matched and parsed, 0 = not an integer, -1 = an integer out of range. */
static int yaml_parse_int(const char *s, size_t len, json_int_t *out)
{
    int base = 10;
    size_t skip = 0;
    long long v;
    char *end;

    if (len > 2 && s[0] == '0' && s[1] == 'o' && all_in(s + 2, len - 2, "01234567")) {
        base = 8;
        skip = 2;
    } else if (len > 2 && s[0] == '0' && s[1] == 'x' &&
               all_in(s + 2, len - 2, "0123456789abcdefABCDEF")) {
        base = 16;
        skip = 2;
    } else {
        size_t sign = (len > 0 && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
        if (!all_in(s + sign, len - sign, "0123456789"))
            return 0;
    }
    errno = 0;
    v = strtoll(s + skip, &end, base);
    if (errno == ERANGE)
        return -1;
    if (end != s + len)
        return 0;
    *out = (json_int_t)v;
    return 1;
}

/* YAML 1.2 core float: [-+]? ( . [0-9]+ | [0-9]+ ( . [0-9]* )? ) ( [eE] [-+]? [0-9]+ )? */
static int yaml_is_float(const char *s, size_t len)
{
    size_t i = 0, digits = 0;

    if (i < len && (s[i] == '-' || s[i] == '+'))
        i++;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
        i++;
        digits++;
    }
    if (i < len && s[i] == '.') {
        i++;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            i++;
            digits++;
        }
    }
    if (digits == 0)
        return 0;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        size_t exp = 0;
        i++;
        if (i < len && (s[i] == '-' || s[i] == '+'))
            i++;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            i++;
            exp++;
        }
        if (exp == 0)
            return 0;
    }
    return i == len;
}

static json_t *yaml_make_float(const char *s, size_t len, char *errstr, size_t errstr_size)
{
    char buf[128];
    double d;

    if (len >= sizeof(buf)) {
        jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "number too long");
        return NULL;
    }
    memcpy(buf, s, len);
    buf[len] = '\0';
    d = strtod(buf, NULL);
    if (!isfinite(d)) {
        jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "number %s is out of range", buf);
        return NULL;
    }
    return json_real(d);
}

static json_t *yaml_make_string(const char *s, size_t len, char *errstr, size_t errstr_size)
{
    json_t *v = json_stringn(s, len);
    if (!v)
        jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "string is not valid UTF-8");
    return v;
}

/* Typed value of a plain, untagged scalar (YAML 1.2 core schema). */
static json_t *yaml_resolve_plain(const char *s, size_t len, char *errstr, size_t errstr_size)
{
    json_int_t iv;
    int r;

    if (str_in(s, len, yaml_nulls))
        return json_null();
    if (str_in(s, len, yaml_trues))
        return json_true();
    if (str_in(s, len, yaml_falses))
        return json_false();
    r = yaml_parse_int(s, len, &iv);
    if (r < 0) {
        jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                   "integer %.*s is out of range (64-bit); quote it to keep it a string",
                   (int)(len > 64 ? 64 : len), s);
        return NULL;
    }
    if (r > 0)
        return json_integer(iv);
    if (yaml_is_float(s, len))
        return yaml_make_float(s, len, errstr, errstr_size);
    if (str_in(s, len, yaml_infs) || str_in(s, len, yaml_nans)) {
        jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                   "%.*s has no JSON form; quote it to keep it a string", (int)len, s);
        return NULL;
    }
    return yaml_make_string(s, len, errstr, errstr_size);
}

static json_t *yaml_tagged(const char *tag, const char *s, size_t len, char *errstr,
                           size_t errstr_size)
{
    const char *t = tag + strlen(YAML_TAG_PREFIX);
    json_int_t iv;

    if (strncmp(tag, YAML_TAG_PREFIX, strlen(YAML_TAG_PREFIX)) != 0)
        goto unsupported;
    if (!strcmp(t, "str"))
        return yaml_make_string(s, len, errstr, errstr_size);
    if (!strcmp(t, "null") && str_in(s, len, yaml_nulls))
        return json_null();
    if (!strcmp(t, "bool")) {
        if (str_in(s, len, yaml_trues))
            return json_true();
        if (str_in(s, len, yaml_falses))
            return json_false();
    }
    if (!strcmp(t, "int") && yaml_parse_int(s, len, &iv) > 0)
        return json_integer(iv);
    if (!strcmp(t, "float")) {
        if (yaml_is_float(s, len))
            return yaml_make_float(s, len, errstr, errstr_size);
    }
    if (!strcmp(t, "null") || !strcmp(t, "bool") || !strcmp(t, "int") || !strcmp(t, "float")) {
        jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "%.*s is not a valid !!%s",
                   (int)(len > 64 ? 64 : len), s, t);
        return NULL;
    }
unsupported:
    jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "tag %s is not supported", tag);
    return NULL;
}

static json_t *yaml_scalar_value(const yaml_event_t *ev, char *errstr, size_t errstr_size)
{
    const char *s = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    const char *tag = (const char *)ev->data.scalar.tag;

    if (tag && strcmp(tag, "!") != 0)
        return yaml_tagged(tag, s, len, errstr, errstr_size);
    if (!tag && ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
        return yaml_resolve_plain(s, len, errstr, errstr_size);
    return yaml_make_string(s, len, errstr, errstr_size);
}

/* Counts nodes produced by the current record and enforces the expansion bound. */
static jp_err_t yaml_count(yaml_state_t *y, size_t n, char *errstr, size_t errstr_size)
{
    if (n > JP_INPUT_YAML_MAX_NODES || y->nodes > JP_INPUT_YAML_MAX_NODES - n)
        return jp_err_set(errstr, errstr_size, JP_ERR_TOO_LARGE,
                          "document has more than %d values after alias expansion",
                          JP_INPUT_YAML_MAX_NODES);
    y->nodes += n;
    return JP_OK;
}

/* Result of placing a finished value: either consumed or a complete record. */
typedef enum yplace { YPLACE_DONE, YPLACE_RECORD } yplace_t;

/* Places a finished value (taken) into its parent; a value at the root, or an item of a root
 * sequence, is a record, returned through *record. */
static jp_err_t yaml_place(yaml_state_t *y, json_t *value, long line, json_t **record,
                           long *record_line, yplace_t *placed, char *errstr, size_t errstr_size)
{
    yframe_t *top = y->depth > 0 ? &y->stack[y->depth - 1] : NULL;

    *placed = YPLACE_DONE;
    if (!top || !top->node) {
        if (!top && json_is_null(value)) {
            json_decref(value); /* an empty document */
            return JP_OK;
        }
        *record = value;
        *record_line = line;
        *placed = YPLACE_RECORD;
        return JP_OK;
    }
    if (json_is_array(top->node)) {
        if (json_array_append_new(top->node, value) != 0)
            return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
        return JP_OK;
    }
    if (!top->key) {
        json_decref(value);
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "mapping keys must be plain text, not collections");
    }
    if (json_object_getn(top->node, top->key, top->key_len)) {
        jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "duplicate key \"%.*s\"",
                   (int)(top->key_len > 64 ? 64 : top->key_len), top->key);
        json_decref(value);
        return JP_ERR_INVALID;
    }
    if (json_object_setn_new(top->node, top->key, top->key_len, value) != 0)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "key is not valid UTF-8");
    free(top->key);
    top->key = NULL;
    return JP_OK;
}

static int yaml_expects_key(const yaml_state_t *y)
{
    const yframe_t *top = y->depth > 0 ? &y->stack[y->depth - 1] : NULL;
    return top && top->node && json_is_object(top->node) && !top->key;
}

static jp_err_t yaml_set_key(yaml_state_t *y, const char *s, size_t len, char *errstr,
                             size_t errstr_size)
{
    yframe_t *top = &y->stack[y->depth - 1];

    if (json_object_getn(top->node, s, len))
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "duplicate key \"%.*s\"",
                          (int)(len > 64 ? 64 : len), s);
    top->key = malloc(len + 1);
    if (!top->key)
        return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
    memcpy(top->key, s, len);
    top->key[len] = '\0';
    top->key_len = len;
    return JP_OK;
}

static jp_err_t yaml_push(yaml_state_t *y, const yaml_event_t *ev, int is_map, char *errstr,
                          size_t errstr_size)
{
    const char *anchor =
        (const char *)(is_map ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor);
    const char *tag =
        (const char *)(is_map ? ev->data.mapping_start.tag : ev->data.sequence_start.tag);
    yframe_t *f;
    jp_err_t err;

    if (yaml_expects_key(y))
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "mapping keys must be plain text, not collections");
    if (tag && strcmp(tag, "!") != 0 &&
        strcmp(tag, is_map ? YAML_TAG_PREFIX "map" : YAML_TAG_PREFIX "seq") != 0)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "tag %s is not supported", tag);
    if (y->depth == JP_INPUT_YAML_MAX_DEPTH)
        return jp_err_set(errstr, errstr_size, JP_ERR_TOO_LARGE, "nesting deeper than %d levels",
                          JP_INPUT_YAML_MAX_DEPTH);
    f = &y->stack[y->depth];
    memset(f, 0, sizeof(*f));
    f->line = mark_line(&ev->start_mark);
    if (y->depth == 0 && !is_map) {
        y->depth++; /* a root sequence: its items are the records */
        return JP_OK;
    }
    err = yaml_count(y, 1, errstr, errstr_size);
    if (err != JP_OK)
        return err;
    f->nodes_at_start = y->nodes - 1;
    f->node = is_map ? json_object() : json_array();
    if (!f->node || (anchor && !(f->anchor = strdup(anchor)))) {
        json_decref(f->node);
        f->node = NULL;
        return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
    }
    y->depth++;
    return JP_OK;
}

/* Ends the innermost collection, anchoring it if asked, and places it in its parent. */
static jp_err_t yaml_pop(yaml_state_t *y, json_t **record, long *record_line, yplace_t *placed,
                         char *errstr, size_t errstr_size)
{
    yframe_t f = y->stack[--y->depth];
    jp_err_t err;

    *placed = YPLACE_DONE;
    if (!f.node)
        return JP_OK; /* the root sequence ended */
    free(f.key);
    if (f.anchor) {
        err = yaml_anchor_add(y, f.anchor, json_incref(f.node), y->nodes - f.nodes_at_start, errstr,
                              errstr_size);
        if (err != JP_OK) {
            free(f.anchor);
            json_decref(f.node);
            json_decref(f.node);
            return err;
        }
    }
    return yaml_place(y, f.node, f.line, record, record_line, placed, errstr, errstr_size);
}

static jp_err_t yaml_on_scalar(yaml_state_t *y, const yaml_event_t *ev, json_t **record,
                               long *record_line, yplace_t *placed, char *errstr,
                               size_t errstr_size)
{
    json_t *v;
    jp_err_t err;

    *placed = YPLACE_DONE;
    if (yaml_expects_key(y))
        return yaml_set_key(y, (const char *)ev->data.scalar.value, ev->data.scalar.length, errstr,
                            errstr_size);
    err = yaml_count(y, 1, errstr, errstr_size);
    if (err != JP_OK)
        return err;
    v = yaml_scalar_value(ev, errstr, errstr_size);
    if (!v)
        return JP_ERR_INVALID;
    if (ev->data.scalar.anchor) {
        char *name = strdup((const char *)ev->data.scalar.anchor);
        if (!name || yaml_anchor_add(y, name, json_incref(v), 1, errstr, errstr_size) != JP_OK) {
            free(name);
            json_decref(v);
            json_decref(v);
            return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
        }
    }
    return yaml_place(y, v, mark_line(&ev->start_mark), record, record_line, placed, errstr,
                      errstr_size);
}

static jp_err_t yaml_on_alias(yaml_state_t *y, const yaml_event_t *ev, json_t **record,
                              long *record_line, yplace_t *placed, char *errstr, size_t errstr_size)
{
    const char *name = (const char *)ev->data.alias.anchor;
    const yanchor_t *a = yaml_anchor_find(y, name);
    jp_err_t err;

    *placed = YPLACE_DONE;
    if (!a)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "unknown anchor *%s", name);
    if (yaml_expects_key(y)) {
        if (!json_is_string(a->value))
            return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                              "alias *%s used as a key is not a string", name);
        return yaml_set_key(y, json_string_value(a->value), json_string_length(a->value), errstr,
                            errstr_size);
    }
    err = yaml_count(y, a->nodes, errstr, errstr_size);
    if (err != JP_OK)
        return err;
    return yaml_place(y, json_incref(a->value), mark_line(&ev->start_mark), record, record_line,
                      placed, errstr, errstr_size);
}

static jp_err_t yaml_parse_error(jp_input_t *in, jp_input_record_t *rec, char *errstr,
                                 size_t errstr_size)
{
    const yaml_parser_t *p = &in->yaml->parser;
    const yaml_mark_t *m = p->error == YAML_READER_ERROR ? &p->mark : &p->problem_mark;

    rec->line = mark_line(m);
    if (p->error == YAML_MEMORY_ERROR)
        return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
    if (p->context)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "invalid YAML: %s %s",
                          p->problem ? p->problem : "syntax error", p->context);
    return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "invalid YAML: %s",
                      p->problem ? p->problem : "syntax error");
}

static jp_err_t yaml_start(jp_input_t *in, char *errstr, size_t errstr_size)
{
    in->yaml = calloc(1, sizeof(*in->yaml));
    if (!in->yaml || !yaml_parser_initialize(&in->yaml->parser))
        return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
    in->yaml->parser_ready = 1;
    yaml_parser_set_input_file(&in->yaml->parser, in->fp);
    return JP_OK;
}

/* Handles one parser event; sets *record when a record is complete. */
static jp_err_t yaml_on_event(jp_input_t *in, const yaml_event_t *ev, json_t **record,
                              long *record_line, char *errstr, size_t errstr_size)
{
    yaml_state_t *y = in->yaml;
    yplace_t placed = YPLACE_DONE;
    jp_err_t err = JP_OK;

    switch (ev->type) {
    case YAML_STREAM_END_EVENT:
        in->done = 1;
        break;
    case YAML_DOCUMENT_START_EVENT:
    case YAML_DOCUMENT_END_EVENT:
        yaml_stack_clear(y);
        yaml_anchors_clear(y);
        y->nodes = 0;
        break;
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
        err = yaml_push(y, ev, ev->type == YAML_MAPPING_START_EVENT, errstr, errstr_size);
        break;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        err = yaml_pop(y, record, record_line, &placed, errstr, errstr_size);
        break;
    case YAML_SCALAR_EVENT:
        err = yaml_on_scalar(y, ev, record, record_line, &placed, errstr, errstr_size);
        break;
    case YAML_ALIAS_EVENT:
        err = yaml_on_alias(y, ev, record, record_line, &placed, errstr, errstr_size);
        break;
    default:
        break;
    }
    if (err == JP_OK && placed == YPLACE_RECORD)
        y->nodes = 0;
    return err;
}

static jp_err_t yaml_next(jp_input_t *in, jp_input_record_t *rec, char *errstr, size_t errstr_size)
{
    json_t *record = NULL;
    long record_line = 0;
    jp_err_t err;

    if (!in->yaml && (err = yaml_start(in, errstr, errstr_size)) != JP_OK) {
        in->done = 1;
        return err;
    }
    while (!in->done && !record) {
        yaml_event_t ev;

        if (!yaml_parser_parse(&in->yaml->parser, &ev)) {
            in->done = 1;
            return yaml_parse_error(in, rec, errstr, errstr_size);
        }
        err = yaml_on_event(in, &ev, &record, &record_line, errstr, errstr_size);
        if (err != JP_OK) {
            rec->line = mark_line(&ev.start_mark);
            yaml_event_delete(&ev);
            in->done = 1;
            return err;
        }
        yaml_event_delete(&ev);
    }
    if (!record)
        return JP_OK;
    rec->text = json_dumps(record, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(record);
    if (!rec->text)
        return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
    rec->len = strlen(rec->text);
    rec->line = record_line;
    return JP_OK;
}

jp_err_t jp_input_next(jp_input_t *in, jp_input_record_t *rec, char *errstr, size_t errstr_size)
{
    rec->text = NULL;
    rec->len = 0;
    rec->line = 0;
    if (!in || in->done)
        return JP_OK;
    switch (in->fmt) {
    case JP_INPUT_JSON:
        return json_next(in, rec, errstr, errstr_size);
    case JP_INPUT_YAML:
        return yaml_next(in, rec, errstr, errstr_size);
    case JP_INPUT_JSONL:
    case JP_INPUT_AUTO:
        break;
    }
    return jsonl_next(in, rec, errstr, errstr_size);
}

void jp_input_destroy(jp_input_t *in)
{
    if (!in)
        return;
    yaml_state_free(in->yaml);
    if (in->own_fp && in->fp)
        fclose(in->fp);
    free(in->linebuf);
    free(in->doc);
    free(in->slices);
    free(in->name);
    free(in);
}
