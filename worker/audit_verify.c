/* The audit verifier; see include/jiraprov/audit.h.
 *
 * _add checks each record on its own (JSON, type, chain members, canonical form, MAC) and files
 * it under its stream with its position; _finish then looks at each stream as a whole:
 *   - a verified record whose stream and seq were already seen with the same MAC is a
 *     duplicate (a replay); with another verified MAC, a forgery by someone holding the key;
 *   - among the first copies, the longest run in increasing seq order (in log order) is taken
 *     as the stream's order, and each record outside it is reported as reordered, so moving
 *     one record is one finding however far it moved;
 *   - seq numbers between 0 and the last verified one that no record claims are dropped
 *     (a record whose MAC fails still claims its seq: it is reported as altered, not dropped);
 *   - each record's prev must be the MAC of the record before it, and seq 0 a stream.started;
 *   - a record whose MAC fails is forged (inserted) when a verified record holds its stream and
 *     seq, else altered;
 *   - a stream.started that names its predecessor's end {stream, seq, mac} must find that record
 *     in the predecessor; a predecessor that ends earlier was truncated.
 * Memory: 120 bytes per record (MACs kept in binary) plus the analysis's index arrays; a million
 * records measured 160 MB. */
#include "jiraprov/audit.h"

#include "jiraprov/record.h"

#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    int64_t seq;
    uint64_t index; /* input order */
    jp_audit_pos_t pos;
    unsigned char mac[32], prev[32];
    unsigned valid : 1;       /* the MAC verifies */
    unsigned unknown_key : 1; /* cannot be checked */
    unsigned unkeyed : 1;
    unsigned genesis : 1; /* operation stream.started */
    unsigned stopped : 1; /* operation stream.stopped */
} entry_t;

typedef struct stream {
    char *id;
    size_t order; /* first seen */
    char *worker, *alg, *key_id, *unknown_key_id;
    int32_t partition;
    entry_t *e;
    size_t n, cap;
    int has_prev; /* its verified seq 0 names a predecessor */
    char *prev_stream;
    int64_t prev_seq;
    unsigned char prev_mac[32];
    int continued; /* a later stream anchors on it */
    /* after finish: verified first copies sorted by seq */
    entry_t **by_seq;
    size_t nby;
    struct stream *hnext;
} stream_t;

typedef struct problem {
    jp_audit_problem_t p;
    long stream_order; /* -1: not in a stream */
    uint64_t index;
    size_t seqno;
} problem_t;

struct jp_audit_verifier {
    jp_audit_key_t *keys;
    char (*key_ids)[JP_AUDIT_KEY_ID_HEX];
    size_t key_count;
    int allow_unkeyed;
    uint64_t records;
    char **sources;
    size_t source_count;
    stream_t **streams;
    size_t stream_count, stream_cap;
    stream_t **table;
    size_t table_size;
    stream_t *last; /* lookup cache: records of one stream come in runs */
    problem_t *problems;
    size_t problem_count, problem_cap;
    jp_audit_problem_t *out;
    jp_audit_stream_info_t *infos;
    int finished;
    int nomem;
};

static const char *const kind_names[JP_AUDIT__KINDS] = {
    "malformed", "unsealed",  "altered",   "forged",      "unknown-key", "unkeyed",
    "dropped",   "reordered", "duplicate", "broken-link", "truncated",   "missing-predecessor",
    "split",
};

const char *jp_audit_problem_name(jp_audit_problem_kind_t k)
{
    return (unsigned)k < JP_AUDIT__KINDS ? kind_names[k] : "unknown";
}

void jp_audit_pos_format(const jp_audit_pos_t *pos, char *buf, size_t size)
{
    const char *src = pos->source ? pos->source : "-";
    if (pos->partition >= 0)
        snprintf(buf, size, "%s partition %d offset %lld", src, (int)pos->partition,
                 (long long)pos->offset);
    else
        snprintf(buf, size, "%s:%ld", src, pos->line);
}

/* ---- construction --------------------------------------------------------- */

jp_audit_verifier_t *jp_audit_verifier_new(const jp_audit_key_t *keys, size_t key_count,
                                           int allow_unkeyed, char *errstr, size_t errstr_size)
{
    if (key_count && !keys) {
        jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "no keys given");
        return NULL;
    }
    for (size_t i = 0; i < key_count; i++)
        if (!keys[i].key || keys[i].len < JP_AUDIT_KEY_MIN) {
            jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                       "key %zu: an audit HMAC key has at least %d bytes", i + 1, JP_AUDIT_KEY_MIN);
            return NULL;
        }
    jp_audit_verifier_t *v = calloc(1, sizeof(*v));
    if (!v)
        goto nomem;
    v->allow_unkeyed = allow_unkeyed;
    v->table_size = 1024;
    v->table = calloc(v->table_size, sizeof(*v->table));
    if (key_count) {
        v->keys = calloc(key_count, sizeof(*v->keys));
        v->key_ids = calloc(key_count, sizeof(*v->key_ids));
    }
    if (!v->table || (key_count && (!v->keys || !v->key_ids)))
        goto nomem;
    for (size_t i = 0; i < key_count; i++) {
        void *k = malloc(keys[i].len);
        if (!k)
            goto nomem;
        memcpy(k, keys[i].key, keys[i].len);
        v->keys[i].key = k;
        v->keys[i].len = keys[i].len;
        v->key_count = i + 1;
        jp_audit_key_id(k, keys[i].len, v->key_ids[i]);
    }
    return v;
nomem:
    jp_audit_verifier_destroy(v);
    jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
    return NULL;
}

void jp_audit_verifier_destroy(jp_audit_verifier_t *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->key_count; i++) {
        OPENSSL_cleanse((void *)v->keys[i].key, v->keys[i].len);
        free((void *)v->keys[i].key);
    }
    free(v->keys);
    free(v->key_ids);
    for (size_t i = 0; i < v->source_count; i++)
        free(v->sources[i]);
    free(v->sources);
    for (size_t i = 0; i < v->stream_count; i++) {
        stream_t *s = v->streams[i];
        free(s->id);
        free(s->worker);
        free(s->alg);
        free(s->key_id);
        free(s->unknown_key_id);
        free(s->prev_stream);
        free(s->e);
        free(s->by_seq);
        free(s);
    }
    free(v->streams);
    free(v->table);
    for (size_t i = 0; i < v->problem_count; i++) {
        free((char *)v->problems[i].p.stream);
        free((char *)v->problems[i].p.message);
    }
    free(v->problems);
    free(v->out);
    free(v->infos);
    free(v);
}

/* ---- helpers --------------------------------------------------------------- */

static const char *intern_source(jp_audit_verifier_t *v, const char *src)
{
    if (!src)
        return NULL;
    for (size_t i = v->source_count; i-- > 0;)
        if (!strcmp(v->sources[i], src))
            return v->sources[i];
    char **n = realloc(v->sources, (v->source_count + 1) * sizeof(*n));
    if (!n)
        return NULL;
    v->sources = n;
    if (!(n[v->source_count] = strdup(src)))
        return NULL;
    return n[v->source_count++];
}

static int is_hex(const char *s, size_t want)
{
    if (!s || strlen(s) != want)
        return 0;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return 0;
    return 1;
}

static void from_hex(const char *s, unsigned char *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int hi = s[2 * i] <= '9' ? s[2 * i] - '0' : s[2 * i] - 'a' + 10;
        int lo = s[2 * i + 1] <= '9' ? s[2 * i + 1] - '0' : s[2 * i + 1] - 'a' + 10;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
}

static void hex_of(const unsigned char *p, char out[JP_AUDIT_MAC_HEX])
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < 32; i++) {
        out[2 * i] = hex[p[i] >> 4];
        out[2 * i + 1] = hex[p[i] & 15];
    }
    out[64] = '\0';
}

static char *dupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *dupf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!s)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* Files a problem; `msg` (malloc'd) is taken. */
static void add_problem(jp_audit_verifier_t *v, jp_audit_problem_kind_t kind, const stream_t *s,
                        int64_t seq, int64_t seq_last, const jp_audit_pos_t *pos, uint64_t index,
                        char *msg)
{
    if (!msg) {
        v->nomem = 1;
        return;
    }
    if (v->problem_count == v->problem_cap) {
        size_t cap = v->problem_cap ? v->problem_cap * 2 : 16;
        problem_t *n = realloc(v->problems, cap * sizeof(*n));
        if (!n) {
            free(msg);
            v->nomem = 1;
            return;
        }
        v->problems = n;
        v->problem_cap = cap;
    }
    problem_t *p = &v->problems[v->problem_count];
    memset(p, 0, sizeof(*p));
    p->p.kind = kind;
    p->p.stream = strdup(s ? s->id : "");
    p->p.seq = seq;
    p->p.seq_last = seq_last;
    if (pos)
        p->p.pos = *pos;
    else
        p->p.pos.partition = -1;
    p->p.message = msg;
    p->stream_order = s ? (long)s->order : -1;
    p->index = index;
    p->seqno = v->problem_count;
    if (!p->p.stream) {
        free(msg);
        v->nomem = 1;
        return;
    }
    v->problem_count++;
}

static size_t hash_str(const char *s, size_t size)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return (size_t)(h % size);
}

static int grow_table(jp_audit_verifier_t *v)
{
    size_t size = v->table_size * 4;
    stream_t **t = calloc(size, sizeof(*t));
    if (!t)
        return -1;
    for (size_t i = 0; i < v->stream_count; i++) {
        stream_t *s = v->streams[i];
        size_t h = hash_str(s->id, size);
        s->hnext = t[h];
        t[h] = s;
    }
    free(v->table);
    v->table = t;
    v->table_size = size;
    return 0;
}

static stream_t *find_stream(const jp_audit_verifier_t *v, const char *id)
{
    if (v->last && !strcmp(v->last->id, id))
        return v->last;
    for (stream_t *s = v->table[hash_str(id, v->table_size)]; s; s = s->hnext)
        if (!strcmp(s->id, id))
            return s;
    return NULL;
}

static stream_t *get_stream(jp_audit_verifier_t *v, const char *id, int32_t partition)
{
    stream_t *s = find_stream(v, id);
    if (s)
        return v->last = s;
    if (v->stream_count >= v->table_size && grow_table(v) != 0)
        return NULL;
    if (v->stream_count == v->stream_cap) {
        size_t cap = v->stream_cap ? v->stream_cap * 2 : 16;
        stream_t **n = realloc(v->streams, cap * sizeof(*n));
        if (!n)
            return NULL;
        v->streams = n;
        v->stream_cap = cap;
    }
    s = calloc(1, sizeof(*s));
    if (!s || !(s->id = strdup(id))) {
        free(s);
        return NULL;
    }
    s->order = v->stream_count;
    s->partition = partition;
    size_t h = hash_str(id, v->table_size);
    s->hnext = v->table[h];
    v->table[h] = s;
    v->streams[v->stream_count++] = s;
    return v->last = s;
}

static entry_t *add_entry(stream_t *s)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        entry_t *n = realloc(s->e, cap * sizeof(*n));
        if (!n)
            return NULL;
        s->e = n;
        s->cap = cap;
    }
    entry_t *e = &s->e[s->n++];
    memset(e, 0, sizeof(*e));
    return e;
}

static void set_str(char **dst, const char *src)
{
    if (!*dst && src)
        *dst = strdup(src);
}

/* ---- one record --------------------------------------------------------------- */

/* The chain member's form; NULL when fine, else what is wrong. */
static const char *chain_form(const json_t *chain)
{
    static const char *const allowed[] = {"stream", "seq", "prev", "alg", "keyId", "mac"};
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)chain, key, val)
    {
        size_t i = 0;
        while (i < sizeof(allowed) / sizeof(allowed[0]) && strcmp(key, allowed[i]))
            i++;
        if (i == sizeof(allowed) / sizeof(allowed[0]))
            return "data.chain has an unknown member";
    }
    const char *stream = json_string_value(json_object_get(chain, "stream"));
    const json_t *seq = json_object_get(chain, "seq");
    const char *alg = json_string_value(json_object_get(chain, "alg"));
    if (!stream || !stream[0] || strlen(stream) >= JP_AUDIT_STREAM_MAX)
        return "data.chain.stream: expected a stream id";
    if (!json_is_integer(seq) || json_integer_value(seq) < 0 ||
        json_integer_value(seq) > JP_AUDIT_MAX_SAFE_INT)
        return "data.chain.seq: expected a non-negative integer";
    if (!is_hex(json_string_value(json_object_get(chain, "prev")), 64))
        return "data.chain.prev: expected 64 lower-case hex digits";
    if (!is_hex(json_string_value(json_object_get(chain, "mac")), 64))
        return "data.chain.mac: expected 64 lower-case hex digits";
    if (!alg || (strcmp(alg, JP_AUDIT_ALG_HMAC) && strcmp(alg, JP_AUDIT_ALG_UNKEYED)))
        return "data.chain.alg: expected \"" JP_AUDIT_ALG_HMAC "\" or \"" JP_AUDIT_ALG_UNKEYED "\"";
    const json_t *key_id = json_object_get(chain, "keyId");
    if (!strcmp(alg, JP_AUDIT_ALG_HMAC) && !is_hex(json_string_value(key_id), 16))
        return "data.chain.keyId: expected 16 lower-case hex digits";
    if (!strcmp(alg, JP_AUDIT_ALG_UNKEYED) && key_id)
        return "data.chain.keyId: an unkeyed record has no key id";
    return NULL;
}

jp_err_t jp_audit_verifier_add(jp_audit_verifier_t *v, const char *text, size_t len,
                               const jp_audit_pos_t *pos_in)
{
    size_t i = 0;
    while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n'))
        i++;
    if (i == len)
        return JP_OK;
    uint64_t index = v->records++;
    jp_audit_pos_t pos = *pos_in;
    pos.source = intern_source(v, pos_in->source);
    if (pos_in->source && !pos.source)
        return JP_ERR_NOMEM;
    char where[512];
    jp_audit_pos_format(&pos, where, sizeof(where));

    json_error_t jerr;
    json_t *rec = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!rec) {
        add_problem(v, JP_AUDIT_MALFORMED, NULL, -1, -1, &pos, index,
                    dupf("%s: not a JSON record: %s", where, jerr.text));
        return v->nomem ? JP_ERR_NOMEM : JP_OK;
    }
    const char *type = json_string_value(json_object_get(rec, "type"));
    json_t *data = json_object_get(rec, "data");
    json_t *chain = json_object_get(data, JP_RECORD_AUDIT_CHAIN_FIELD);
    const char *id = json_string_value(json_object_get(rec, "id"));
    if (!type || strcmp(type, JP_RECORD_TYPE_AUDIT) || !json_is_object(data)) {
        add_problem(v, JP_AUDIT_MALFORMED, NULL, -1, -1, &pos, index,
                    dupf("%s: not an audit record (type %s%s%s)", where, type ? "\"" : "",
                         type ? type : "missing", type ? "\"" : ""));
        json_decref(rec);
        return v->nomem ? JP_ERR_NOMEM : JP_OK;
    }
    if (!chain) {
        add_problem(v, JP_AUDIT_UNSEALED, NULL, -1, -1, &pos, index,
                    dupf("%s: audit record %s has no data.chain: it was not sealed by a worker "
                         "(inserted)",
                         where, id ? id : "without an id"));
        json_decref(rec);
        return v->nomem ? JP_ERR_NOMEM : JP_OK;
    }
    const char *form = json_is_object(chain) ? chain_form(chain) : "data.chain: expected an object";
    char *canon = NULL;
    size_t clen = 0;
    char cerr[256];
    if (!form && jp_audit_canonical(rec, &canon, &clen, cerr, sizeof(cerr)) != JP_OK)
        form = cerr;
    if (form) {
        add_problem(v, JP_AUDIT_MALFORMED, NULL, -1, -1, &pos, index,
                    dupf("%s: malformed audit record: %s", where, form));
        json_decref(rec);
        return v->nomem ? JP_ERR_NOMEM : JP_OK;
    }
    const char *sid = json_string_value(json_object_get(chain, "stream"));
    const char *alg = json_string_value(json_object_get(chain, "alg"));
    const char *key_id = json_string_value(json_object_get(chain, "keyId"));
    const char *mac_hex = json_string_value(json_object_get(chain, "mac"));
    stream_t *s = get_stream(v, sid, pos.partition);
    entry_t *e = s ? add_entry(s) : NULL;
    if (!e) {
        free(canon);
        json_decref(rec);
        return JP_ERR_NOMEM;
    }
    e->seq = json_integer_value(json_object_get(chain, "seq"));
    e->index = index;
    e->pos = pos;
    from_hex(mac_hex, e->mac, 32);
    from_hex(json_string_value(json_object_get(chain, "prev")), e->prev, 32);
    set_str(&s->alg, alg);
    char want[JP_AUDIT_MAC_HEX];
    if (!strcmp(alg, JP_AUDIT_ALG_UNKEYED)) {
        e->unkeyed = 1;
        jp_audit_mac(NULL, 0, canon, clen, want);
        e->valid = CRYPTO_memcmp(want, mac_hex, 64) == 0;
    } else {
        size_t k = 0;
        while (k < v->key_count && strcmp(v->key_ids[k], key_id))
            k++;
        set_str(&s->key_id, key_id);
        if (k == v->key_count) {
            e->unknown_key = 1;
            set_str(&s->unknown_key_id, key_id);
        } else {
            jp_audit_mac(v->keys[k].key, v->keys[k].len, canon, clen, want);
            e->valid = CRYPTO_memcmp(want, mac_hex, 64) == 0;
        }
    }
    free(canon);
    if (e->valid) {
        const char *op = json_string_value(json_object_get(data, "operation"));
        e->genesis = op && !strcmp(op, JP_AUDIT_OP_STARTED);
        e->stopped = op && !strcmp(op, JP_AUDIT_OP_STOPPED);
        set_str(&s->worker, json_string_value(json_object_get(data, "worker")));
        json_t *prev = json_object_get(data, "previous");
        const char *pstream = json_string_value(json_object_get(prev, "stream"));
        const char *pmac = json_string_value(json_object_get(prev, "mac"));
        json_t *pseq = json_object_get(prev, "seq");
        if (e->genesis && e->seq == 0 && !s->has_prev && pstream && is_hex(pmac, 64) &&
            json_is_integer(pseq)) {
            s->prev_stream = strdup(pstream);
            s->has_prev = s->prev_stream != NULL;
            s->prev_seq = json_integer_value(pseq);
            from_hex(pmac, s->prev_mac, 32);
        }
    }
    json_decref(rec);
    return v->nomem ? JP_ERR_NOMEM : JP_OK;
}

/* ---- the streams as a whole ------------------------------------------------------- */

static int cmp_seq_index(const void *a, const void *b)
{
    const entry_t *x = *(entry_t *const *)a, *y = *(entry_t *const *)b;
    if (x->seq != y->seq)
        return x->seq < y->seq ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

static entry_t *lookup_seq(const stream_t *s, int64_t seq)
{
    size_t lo = 0, hi = s->nby;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->by_seq[mid]->seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->nby && s->by_seq[lo]->seq == seq ? s->by_seq[lo] : NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Marks in keep[] the entries of u[0..n) (log order) that form a longest strictly increasing
 * run of seq (patience sorting). Returns -1 on ENOMEM. */
static int longest_run(entry_t **u, size_t n, unsigned char *keep)
{
    size_t *tails = malloc((n ? n : 1) * sizeof(*tails));
    size_t *back = malloc((n ? n : 1) * sizeof(*back));
    if (!tails || !back) {
        free(tails);
        free(back);
        return -1;
    }
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        size_t lo = 0, hi = len;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (u[tails[mid]]->seq < u[i]->seq)
                lo = mid + 1;
            else
                hi = mid;
        }
        back[i] = lo ? tails[lo - 1] : SIZE_MAX;
        tails[lo] = i;
        if (lo == len)
            len++;
    }
    for (size_t i = len ? tails[len - 1] : SIZE_MAX; i != SIZE_MAX; i = back[i])
        keep[i] = 1;
    free(tails);
    free(back);
    return 0;
}

static void analyse(jp_audit_verifier_t *v, stream_t *s)
{
    char a[512], b[512];
    size_t unknown = 0, unkeyed = 0, split = 0;
    const entry_t *first_unknown = NULL, *first_unkeyed = NULL, *first_split = NULL;
    for (size_t i = 0; i < s->n; i++) {
        entry_t *e = &s->e[i];
        if (e->unknown_key && !unknown++)
            first_unknown = e;
        if (e->unkeyed && !unkeyed++)
            first_unkeyed = e;
        if (e->pos.partition != s->partition && !split++)
            first_split = e;
    }
    if (unknown) {
        jp_audit_pos_format(&first_unknown->pos, a, sizeof(a));
        add_problem(v, JP_AUDIT_UNKNOWN_KEY, s, first_unknown->seq, first_unknown->seq,
                    &first_unknown->pos, first_unknown->index,
                    dupf("stream %s: %zu record(s) from %s on are sealed with key id %s, which "
                         "none of the given keys has: they cannot be verified",
                         s->id, unknown, a, s->unknown_key_id ? s->unknown_key_id : "?"));
    }
    if (unkeyed && !v->allow_unkeyed) {
        jp_audit_pos_format(&first_unkeyed->pos, a, sizeof(a));
        add_problem(v, JP_AUDIT_UNKEYED, s, first_unkeyed->seq, first_unkeyed->seq,
                    &first_unkeyed->pos, first_unkeyed->index,
                    dupf("stream %s (from %s) is sealed without a key (alg " JP_AUDIT_ALG_UNKEYED
                         "): anyone could have rewritten it",
                         s->id, a));
    }
    if (split) {
        jp_audit_pos_format(&first_split->pos, a, sizeof(a));
        add_problem(v, JP_AUDIT_SPLIT, s, first_split->seq, first_split->seq, &first_split->pos,
                    first_split->index,
                    dupf("stream %s lives in partition %d but %zu of its records are elsewhere, "
                         "the first seq %lld at %s (inserted, or the topic was repartitioned)",
                         s->id, (int)s->partition, split, (long long)first_split->seq, a));
    }

    /* Verified records by seq; the first copy of each seq is the primary. */
    entry_t **sorted = malloc((s->n ? s->n : 1) * sizeof(*sorted));
    entry_t **u = malloc((s->n ? s->n : 1) * sizeof(*u));
    unsigned char *keep = calloc(s->n ? s->n : 1, 1);
    int64_t *claimed = malloc((s->n ? s->n : 1) * sizeof(*claimed));
    if (!sorted || !u || !keep || !claimed) {
        free(sorted);
        free(u);
        free(keep);
        free(claimed);
        v->nomem = 1;
        return;
    }
    size_t nv = 0;
    for (size_t i = 0; i < s->n; i++)
        if (s->e[i].valid)
            sorted[nv++] = &s->e[i];
    qsort(sorted, nv, sizeof(*sorted), cmp_seq_index);
    s->by_seq = malloc((nv ? nv : 1) * sizeof(*s->by_seq));
    if (!s->by_seq) {
        v->nomem = 1;
        nv = 0;
    }
    for (size_t i = 0; i < nv; i++) {
        entry_t *e = sorted[i];
        if (s->nby && s->by_seq[s->nby - 1]->seq == e->seq) {
            entry_t *first = s->by_seq[s->nby - 1];
            jp_audit_pos_format(&e->pos, a, sizeof(a));
            jp_audit_pos_format(&first->pos, b, sizeof(b));
            if (!memcmp(first->mac, e->mac, 32))
                add_problem(v, JP_AUDIT_DUPLICATE, s, e->seq, e->seq, &e->pos, e->index,
                            dupf("%s: seq %lld of stream %s is a second copy of the record at "
                                 "%s (replayed)",
                                 a, (long long)e->seq, s->id, b));
            else
                add_problem(v, JP_AUDIT_FORGED, s, e->seq, e->seq, &e->pos, e->index,
                            dupf("%s: seq %lld of stream %s verifies but differs from the "
                                 "verified record at %s: the key was used outside the worker",
                                 a, (long long)e->seq, s->id, b));
            continue;
        }
        s->by_seq[s->nby++] = e;
    }
    /* The primaries in log order, and the longest run in seq order among them. */
    size_t nu = 0;
    for (size_t i = 0; i < s->n; i++)
        if (s->e[i].valid && lookup_seq(s, s->e[i].seq) == &s->e[i])
            u[nu++] = &s->e[i];
    if (longest_run(u, nu, keep) != 0)
        v->nomem = 1;
    for (size_t i = 0; i < nu; i++) {
        if (keep[i])
            continue;
        /* Its neighbours in log order say where it sits. */
        const entry_t *before = i ? u[i - 1] : NULL, *after = i + 1 < nu ? u[i + 1] : NULL;
        char c[512];
        jp_audit_pos_format(&u[i]->pos, a, sizeof(a));
        if (before)
            jp_audit_pos_format(&before->pos, b, sizeof(b));
        if (after)
            jp_audit_pos_format(&after->pos, c, sizeof(c));
        char *msg;
        if (before && after)
            msg = dupf("%s: seq %lld of stream %s is out of order: it sits between seq %lld at %s "
                       "and seq %lld at %s",
                       a, (long long)u[i]->seq, s->id, (long long)before->seq, b,
                       (long long)after->seq, c);
        else if (before)
            msg = dupf("%s: seq %lld of stream %s is out of order: it comes last, after seq %lld "
                       "at %s",
                       a, (long long)u[i]->seq, s->id, (long long)before->seq, b);
        else
            msg = dupf("%s: seq %lld of stream %s is out of order: it comes first, before seq "
                       "%lld at %s",
                       a, (long long)u[i]->seq, s->id, after ? (long long)after->seq : -1LL,
                       after ? c : "-");
        add_problem(v, JP_AUDIT_REORDERED, s, u[i]->seq, u[i]->seq, &u[i]->pos, u[i]->index, msg);
    }

    /* Missing seqs: nothing claims them, verified or not (up to the last verified one). */
    int64_t last = s->nby ? s->by_seq[s->nby - 1]->seq : -1;
    size_t nc = 0;
    for (size_t i = 0; i < s->nby; i++)
        claimed[nc++] = s->by_seq[i]->seq;
    for (size_t i = 0; i < s->n; i++)
        if (!s->e[i].valid && !s->e[i].unknown_key && s->e[i].seq <= last)
            claimed[nc++] = s->e[i].seq;
    qsort(claimed, nc, sizeof(*claimed), cmp_i64);
    int64_t expect = 0;
    for (size_t i = 0; i <= nc; i++) {
        int64_t have = i < nc ? claimed[i] : last + 1;
        if (have > expect) {
            const entry_t *after = lookup_seq(s, have), *before = lookup_seq(s, expect - 1);
            if (after)
                jp_audit_pos_format(&after->pos, a, sizeof(a));
            else
                snprintf(a, sizeof(a), "an altered record");
            if (before)
                jp_audit_pos_format(&before->pos, b, sizeof(b));
            else
                snprintf(b, sizeof(b), "an altered record");
            char *msg;
            if (expect == 0)
                msg = dupf("stream %s begins at seq %lld (%s): seq 0..%lld missing (dropped)",
                           s->id, (long long)have, a, (long long)(have - 1));
            else if (have - 1 == expect)
                msg =
                    dupf("stream %s: seq %lld missing (dropped) between seq %lld at %s and "
                         "seq %lld at %s",
                         s->id, (long long)expect, (long long)(expect - 1), b, (long long)have, a);
            else
                msg = dupf("stream %s: seq %lld..%lld missing (dropped) between seq %lld at %s "
                           "and seq %lld at %s",
                           s->id, (long long)expect, (long long)(have - 1), (long long)(expect - 1),
                           b, (long long)have, a);
            jp_audit_pos_t where = after ? after->pos : (jp_audit_pos_t){NULL, 0, -1, 0};
            add_problem(v, JP_AUDIT_DROPPED, s, expect, have - 1, &where,
                        after ? after->index : UINT64_MAX, msg);
        }
        if (i < nc && claimed[i] >= expect)
            expect = claimed[i] + 1;
    }

    /* Links between consecutive verified records. */
    for (size_t i = 0; i < s->nby; i++) {
        entry_t *e = s->by_seq[i];
        jp_audit_pos_format(&e->pos, a, sizeof(a));
        if (e->seq == 0) {
            static const unsigned char zero[32];
            if (!e->genesis || memcmp(e->prev, zero, 32))
                add_problem(v, JP_AUDIT_BROKEN_LINK, s, 0, 0, &e->pos, e->index,
                            dupf("%s: seq 0 of stream %s is not a " JP_AUDIT_OP_STARTED
                                 " record with a zero prev",
                                 a, s->id));
            continue;
        }
        if (e->genesis)
            add_problem(v, JP_AUDIT_BROKEN_LINK, s, e->seq, e->seq, &e->pos, e->index,
                        dupf("%s: seq %lld of stream %s is a " JP_AUDIT_OP_STARTED
                             " record; only seq 0 may be",
                             a, (long long)e->seq, s->id));
        const entry_t *p = i ? s->by_seq[i - 1] : NULL;
        if (p && p->seq == e->seq - 1 && memcmp(p->mac, e->prev, 32)) {
            jp_audit_pos_format(&p->pos, b, sizeof(b));
            add_problem(v, JP_AUDIT_BROKEN_LINK, s, e->seq, e->seq, &e->pos, e->index,
                        dupf("%s: seq %lld of stream %s does not chain to seq %lld at %s (prev "
                             "is not its mac)",
                             a, (long long)e->seq, s->id, (long long)p->seq, b));
        }
    }

    /* Records whose MAC fails. */
    for (size_t i = 0; i < s->n; i++) {
        entry_t *e = &s->e[i];
        if (e->valid || e->unknown_key)
            continue;
        const entry_t *genuine = lookup_seq(s, e->seq);
        jp_audit_pos_format(&e->pos, a, sizeof(a));
        if (genuine) {
            jp_audit_pos_format(&genuine->pos, b, sizeof(b));
            add_problem(v, JP_AUDIT_FORGED, s, e->seq, e->seq, &e->pos, e->index,
                        dupf("%s: record claiming seq %lld of stream %s does not verify (MAC "
                             "mismatch), and the genuine seq %lld is at %s: inserted or forged",
                             a, (long long)e->seq, s->id, (long long)e->seq, b));
        } else {
            add_problem(v, JP_AUDIT_ALTERED, s, e->seq, e->seq, &e->pos, e->index,
                        dupf("%s: seq %lld of stream %s does not verify (MAC mismatch): altered "
                             "after it was sealed, or forged without the key",
                             a, (long long)e->seq, s->id));
        }
    }
    free(sorted);
    free(u);
    free(keep);
    free(claimed);
}

/* A stream.started names where the previous stream of its instance ended. */
static void check_predecessor(jp_audit_verifier_t *v, stream_t *s)
{
    char a[512], b[512], mac[JP_AUDIT_MAC_HEX];
    const entry_t *g = lookup_seq(s, 0);
    if (!s->has_prev || !g)
        return;
    jp_audit_pos_format(&g->pos, a, sizeof(a));
    stream_t *p = find_stream(v, s->prev_stream);
    if (!p) {
        add_problem(v, JP_AUDIT_MISSING_PREDECESSOR, s, 0, 0, &g->pos, g->index,
                    dupf("%s: stream %s continues stream %s, which reached seq %lld, but no "
                         "record of that stream was read (dropped, or outside what was read)",
                         a, s->id, s->prev_stream, (long long)s->prev_seq));
        return;
    }
    if (p->nby == 0)
        return; /* nothing of it verifies: reported there */
    p->continued = 1;
    const entry_t *anchor = lookup_seq(p, s->prev_seq);
    const entry_t *end = p->by_seq[p->nby - 1];
    if (anchor) {
        if (memcmp(anchor->mac, s->prev_mac, 32)) {
            jp_audit_pos_format(&anchor->pos, b, sizeof(b));
            hex_of(s->prev_mac, mac);
            add_problem(v, JP_AUDIT_BROKEN_LINK, p, anchor->seq, anchor->seq, &anchor->pos,
                        anchor->index,
                        dupf("%s: seq %lld of stream %s is not the record its successor %s "
                             "anchors on (%s names mac %.16s...)",
                             b, (long long)anchor->seq, p->id, s->id, a, mac));
        }
        return;
    }
    if (end->seq < s->prev_seq) {
        jp_audit_pos_format(&end->pos, b, sizeof(b));
        add_problem(v, JP_AUDIT_TRUNCATED, p, end->seq + 1, s->prev_seq, &end->pos, end->index,
                    dupf("stream %s ends at seq %lld (%s), but its successor %s (%s) records "
                         "that it reached seq %lld: seq %lld..%lld missing (truncated)",
                         p->id, (long long)end->seq, b, s->id, a, (long long)s->prev_seq,
                         (long long)(end->seq + 1), (long long)s->prev_seq));
    }
}

static int cmp_problem(const void *a, const void *b)
{
    const problem_t *x = a, *y = b;
    if (x->stream_order != y->stream_order)
        return x->stream_order < y->stream_order ? -1 : 1;
    if (x->index != y->index)
        return x->index < y->index ? -1 : 1;
    return x->seqno < y->seqno ? -1 : x->seqno > y->seqno;
}

jp_err_t jp_audit_verifier_finish(jp_audit_verifier_t *v)
{
    if (v->finished)
        return v->nomem ? JP_ERR_NOMEM : JP_OK;
    v->finished = 1;
    for (size_t i = 0; i < v->stream_count; i++)
        analyse(v, v->streams[i]);
    for (size_t i = 0; i < v->stream_count; i++)
        check_predecessor(v, v->streams[i]);
    if (v->problem_count)
        qsort(v->problems, v->problem_count, sizeof(*v->problems), cmp_problem);
    v->out = malloc((v->problem_count ? v->problem_count : 1) * sizeof(*v->out));
    v->infos = calloc(v->stream_count ? v->stream_count : 1, sizeof(*v->infos));
    if (!v->out || !v->infos) {
        v->nomem = 1;
        return JP_ERR_NOMEM;
    }
    for (size_t i = 0; i < v->problem_count; i++)
        v->out[i] = v->problems[i].p;
    for (size_t i = 0; i < v->stream_count; i++) {
        stream_t *s = v->streams[i];
        jp_audit_stream_info_t *in = &v->infos[i];
        in->stream = s->id;
        in->worker = s->worker ? s->worker : "";
        in->alg = s->alg ? s->alg : "";
        in->key_id = s->key_id ? s->key_id : "";
        in->partition = s->partition;
        in->records = s->n;
        in->first_seq = s->nby ? s->by_seq[0]->seq : -1;
        in->last_seq = s->nby ? s->by_seq[s->nby - 1]->seq : -1;
        in->stopped = s->nby && s->by_seq[s->nby - 1]->stopped;
        in->continued = s->continued;
        in->predecessor = s->has_prev ? s->prev_stream : "";
        in->ok = 1;
        for (size_t k = 0; k < v->problem_count; k++)
            if (v->problems[k].stream_order == (long)s->order)
                in->ok = 0;
    }
    return v->nomem ? JP_ERR_NOMEM : JP_OK;
}

size_t jp_audit_verifier_problems(const jp_audit_verifier_t *v, const jp_audit_problem_t **out)
{
    *out = v->out;
    return v->out ? v->problem_count : 0;
}

size_t jp_audit_verifier_streams(const jp_audit_verifier_t *v, const jp_audit_stream_info_t **out)
{
    *out = v->infos;
    return v->infos ? v->stream_count : 0;
}

uint64_t jp_audit_verifier_records(const jp_audit_verifier_t *v)
{
    return v->records;
}
