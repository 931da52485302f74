/* The audit chain and the worker's audit trail; see include/jiraprov/audit.h for the chain
 * fields, the canonical form and ownership.
 *
 * The trail keeps one FIFO of records. A record is sealed only when it leaves the FIFO for the
 * producer, so the sequence numbers follow the order of the audit topic's partition exactly
 * (the producer is idempotent, so that order survives its retries). While the stream is
 * opening (Redis answers where the previous stream ended) or the producer's queue is full,
 * records wait in the FIFO; a refused produce undoes its seal, so the stream never has a hole
 * that was not produced. A record accepted and then not delivered is a hole: it is logged, and
 * the verifier reports it.
 *
 * Where the previous stream ended: after each record is handed to the producer, the trail
 * writes {stream, seq, mac} to Redis under P "audit:last:" <instance id> (at most one write in
 * flight; a newer state is written when it completes; 90 days' TTL), so the key can lag the
 * true end by the last few records; closing waits (bounded) until it holds stream.stopped. The
 * next process with the same instance id puts what it reads there into its stream.started
 * record; the verifier fails only when the old stream ends *before* that. */
#include "jiraprov/audit.h"

#include "jiraprov/json.h"
#include "jiraprov/log.h"
#include "jiraprov/record.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define COMPONENT "audit"
/* Wait before producing again after the producer refused a record (its queue was full). */
#define RETRY_MS 100
/* How long closing waits for Redis to hold where the stream ended. */
#define CLOSE_WAIT_MS 2000
#define REDIS_MAXID   200 /* longer instance ids are hashed in the Redis key */
/* Where an instance's stream ended is kept this long after its last record: instances that
 * never come back (default instance ids change at every start) do not pile up. */
#define LAST_TTL_S "7776000" /* 90 days */

static const char zero_mac[JP_AUDIT_MAC_HEX] =
    "0000000000000000000000000000000000000000000000000000000000000000";

/* ---- canonical form ------------------------------------------------------ */

typedef struct buf {
    char *p;
    size_t len, cap;
    int bad;        /* allocation failed */
    size_t skip_at; /* where the skipped object's members begin (after its '{'); 0: none */
} buf_t;

static void put(buf_t *b, const void *s, size_t n)
{
    if (b->bad)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->bad = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void puts_(buf_t *b, const char *s)
{
    put(b, s, strlen(s));
}

static void put_string(buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t run = 0; /* start of the bytes not yet copied */
    put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char u[7];
        switch (c) {
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        case '\b':
            esc = "\\b";
            break;
        case '\t':
            esc = "\\t";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\f':
            esc = "\\f";
            break;
        case '\r':
            esc = "\\r";
            break;
        default:
            if (c < 0x20) {
                memcpy(u, "\\u00", 4);
                u[4] = hex[c >> 4];
                u[5] = hex[c & 15];
                u[6] = '\0';
                esc = u;
            }
        }
        if (esc) {
            put(b, s + run, i - run);
            puts_(b, esc);
            run = i + 1;
        }
    }
    put(b, s + run, n - run);
    put(b, "\"", 1);
}

typedef struct member {
    const char *key;
    const json_t *value;
} member_t;

static int cmp_members(const void *a, const void *b)
{
    return strcmp(((const member_t *)a)->key, ((const member_t *)b)->key);
}

/* Where canon() is, for error messages only: a chain of member names / array indexes built on
 * the stack and formatted only when something has no canonical form. */
typedef struct where {
    const struct where *up;
    const char *key; /* member name, or NULL for an array index */
    size_t index;
} where_t;

static size_t where_format(const where_t *w, char *out, size_t size)
{
    if (!w)
        return 0;
    size_t n = where_format(w->up, out, size);
    int k = w->key ? snprintf(out + n, size - n, "%s%s", n ? "." : "", w->key)
                   : snprintf(out + n, size - n, "[%zu]", w->index);
    n += k > 0 ? (size_t)k : 0;
    return n < size ? n : size - 1;
}

static jp_err_t no_form(const where_t *w, const char *what, char *errstr, size_t errstr_size)
{
    char path[256] = "";
    if (!where_format(w, path, sizeof(path)))
        snprintf(path, sizeof(path), "(record)");
    return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "%s: %s has no canonical form", path,
                      what);
}

/* Serialises v; `skip` is the object whose member "mac" is left out (data.chain). */
static jp_err_t canon(buf_t *b, const json_t *v, const json_t *skip, const where_t *at,
                      char *errstr, size_t errstr_size)
{
    char num[32];
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        size_t n = json_object_size(v), k = 0;
        member_t stack_members[32];
        member_t *ms = n <= 32 ? stack_members : malloc(n * sizeof(*ms));
        if (!ms) {
            b->bad = 1;
            return JP_ERR_NOMEM;
        }
        const char *key;
        json_t *member;
        json_object_foreach((json_t *)v, key, member)
        {
            if (v == skip && !strcmp(key, "mac"))
                continue;
            ms[k++] = (member_t){key, member};
        }
        qsort(ms, k, sizeof(*ms), cmp_members);
        put(b, "{", 1);
        if (v == skip)
            b->skip_at = b->len;
        jp_err_t rc = JP_OK;
        for (size_t i = 0; i < k && rc == JP_OK; i++) {
            where_t sub = {at, ms[i].key, 0};
            if (i)
                put(b, ",", 1);
            put_string(b, ms[i].key, strlen(ms[i].key));
            put(b, ":", 1);
            rc = canon(b, ms[i].value, skip, &sub, errstr, errstr_size);
        }
        put(b, "}", 1);
        if (ms != stack_members)
            free(ms);
        if (rc != JP_OK)
            return rc;
        break;
    }
    case JSON_ARRAY:
        put(b, "[", 1);
        for (size_t i = 0; i < json_array_size(v); i++) {
            where_t sub = {at, NULL, i};
            if (i)
                put(b, ",", 1);
            jp_err_t rc = canon(b, json_array_get(v, i), skip, &sub, errstr, errstr_size);
            if (rc != JP_OK)
                return rc;
        }
        put(b, "]", 1);
        break;
    case JSON_STRING:
        put_string(b, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER: {
        json_int_t n = json_integer_value(v);
        if (n > JP_AUDIT_MAX_SAFE_INT || n < -JP_AUDIT_MAX_SAFE_INT)
            return no_form(at, "an integer beyond 2^53-1", errstr, errstr_size);
        snprintf(num, sizeof(num), "%lld", (long long)n);
        puts_(b, num);
        break;
    }
    case JSON_REAL:
        return no_form(at, "a real number", errstr, errstr_size);
    case JSON_TRUE:
        puts_(b, "true");
        break;
    case JSON_FALSE:
        puts_(b, "false");
        break;
    case JSON_NULL:
        puts_(b, "null");
        break;
    }
    return b->bad ? JP_ERR_NOMEM : JP_OK;
}

/* The canonical form; *skip_at (when not NULL) is where data.chain's members begin. */
static jp_err_t canonical(const json_t *record, char **out, size_t *len, size_t *skip_at,
                          char *errstr, size_t errstr_size)
{
    *out = NULL;
    if (len)
        *len = 0;
    if (!json_is_object(record))
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "a record must be an object");
    const json_t *chain = json_object_get(json_object_get(record, "data"), "chain");
    buf_t b = {0};
    jp_err_t rc =
        canon(&b, record, json_is_object(chain) ? chain : NULL, NULL, errstr, errstr_size);
    if (rc == JP_OK && b.bad)
        rc = JP_ERR_NOMEM;
    if (rc != JP_OK) {
        if (rc == JP_ERR_NOMEM)
            jp_err_set(errstr, errstr_size, rc, "out of memory");
        free(b.p);
        return rc;
    }
    if (!b.p) /* cannot happen: "{}" at least */
        return jp_err_set(errstr, errstr_size, JP_ERR_INTERNAL, "empty canonical form");
    *out = b.p;
    if (len)
        *len = b.len;
    if (skip_at)
        *skip_at = b.skip_at;
    return JP_OK;
}

jp_err_t jp_audit_canonical(const json_t *record, char **out, size_t *len, char *errstr,
                            size_t errstr_size)
{
    return canonical(record, out, len, NULL, errstr, errstr_size);
}

/* ---- MACs, key ids, stream ids ----------------------------------------------- */

static void to_hex(const unsigned char *p, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[p[i] >> 4];
        out[2 * i + 1] = hex[p[i] & 15];
    }
    out[2 * n] = '\0';
}

void jp_audit_mac(const void *key, size_t key_len, const void *data, size_t len,
                  char mac_hex[JP_AUDIT_MAC_HEX])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (key_len) {
        if (!HMAC(EVP_sha256(), key, (int)key_len, data, len, md, &md_len))
            md_len = 0;
    } else {
        SHA256(data, len, md);
        md_len = SHA256_DIGEST_LENGTH;
    }
    if (md_len != SHA256_DIGEST_LENGTH) { /* never a valid MAC: all 'x' */
        memset(mac_hex, 'x', JP_AUDIT_MAC_HEX - 1);
        mac_hex[JP_AUDIT_MAC_HEX - 1] = '\0';
        return;
    }
    to_hex(md, SHA256_DIGEST_LENGTH, mac_hex);
}

void jp_audit_key_id(const void *key, size_t key_len, char id_hex[JP_AUDIT_KEY_ID_HEX])
{
    static const char label[] = "jiraprov-audit-key-id";
    char mac[JP_AUDIT_MAC_HEX];
    jp_audit_mac(key, key_len, label, sizeof(label) - 1, mac);
    memcpy(id_hex, mac, JP_AUDIT_KEY_ID_HEX - 1);
    id_hex[JP_AUDIT_KEY_ID_HEX - 1] = '\0';
}

jp_err_t jp_audit_stream_id(const char *instance_id, int64_t now_ms, char out[JP_AUDIT_STREAM_MAX],
                            char *errstr, size_t errstr_size)
{
    unsigned char rnd[8];
    char hex[17];
    if (!instance_id || !instance_id[0])
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "no instance id");
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        return jp_err_set(errstr, errstr_size, JP_ERR_INTERNAL,
                          "OpenSSL has no random bytes for the audit stream id");
    to_hex(rnd, sizeof(rnd), hex);
    if ((size_t)snprintf(out, JP_AUDIT_STREAM_MAX, "%s:%lld:%s", instance_id, (long long)now_ms,
                         hex) >= JP_AUDIT_STREAM_MAX)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "worker.instance_id is too long for an audit stream id (at most %d "
                          "bytes)",
                          JP_AUDIT_STREAM_MAX - 40);
    return JP_OK;
}

/* ---- the chain --------------------------------------------------------------- */

struct jp_audit_chain {
    unsigned char *key;
    size_t key_len; /* 0: unkeyed */
    char key_id[JP_AUDIT_KEY_ID_HEX];
    char *stream;
    int64_t next_seq;
    char prev[JP_AUDIT_MAC_HEX]; /* mac of next_seq - 1 */
    int can_rewind;
    char undo_prev[JP_AUDIT_MAC_HEX];
    /* HMAC keyed once and reset for every record: the one-shot HMAC() looks the algorithm
     * up and derives the key's pads each time, most of a record's MAC cost. NULL: unkeyed,
     * or it could not be made (jp_audit_mac then). */
    EVP_MAC_CTX *mac_ctx;
};

static EVP_MAC_CTX *keyed_mac(const unsigned char *key, size_t key_len)
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    EVP_MAC_free(mac); /* the context keeps its own reference */
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
                           OSSL_PARAM_construct_end()};
    if (ctx && !EVP_MAC_init(ctx, key, key_len, params)) {
        EVP_MAC_CTX_free(ctx);
        ctx = NULL;
    }
    return ctx;
}

/* The MAC of one record under the chain's key: the same as jp_audit_mac. */
static void chain_mac(jp_audit_chain_t *c, const void *data, size_t len,
                      char mac_hex[JP_AUDIT_MAC_HEX])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    size_t md_len = 0;
    if (c->mac_ctx && EVP_MAC_init(c->mac_ctx, NULL, 0, NULL) &&
        EVP_MAC_update(c->mac_ctx, data, len) &&
        EVP_MAC_final(c->mac_ctx, md, &md_len, sizeof(md)) && md_len == SHA256_DIGEST_LENGTH) {
        to_hex(md, md_len, mac_hex);
        return;
    }
    jp_audit_mac(c->key, c->key_len, data, len, mac_hex);
}

jp_audit_chain_t *jp_audit_chain_new(const void *key, size_t key_len, const char *stream,
                                     char *errstr, size_t errstr_size)
{
    if (!stream || !stream[0] || strlen(stream) >= JP_AUDIT_STREAM_MAX) {
        jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "an audit stream id is 1..%d bytes",
                   JP_AUDIT_STREAM_MAX - 1);
        return NULL;
    }
    if (key_len && (!key || key_len < JP_AUDIT_KEY_MIN)) {
        jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                   "the audit HMAC key must have at least %d bytes", JP_AUDIT_KEY_MIN);
        return NULL;
    }
    jp_audit_chain_t *c = calloc(1, sizeof(*c));
    if (c && key_len)
        c->key = malloc(key_len);
    if (c)
        c->stream = strdup(stream);
    if (!c || !c->stream || (key_len && !c->key)) {
        jp_audit_chain_destroy(c);
        jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
        return NULL;
    }
    if (key_len) {
        memcpy(c->key, key, key_len);
        c->key_len = key_len;
        jp_audit_key_id(key, key_len, c->key_id);
        c->mac_ctx = keyed_mac(c->key, key_len);
    }
    memcpy(c->prev, zero_mac, sizeof(zero_mac));
    return c;
}

void jp_audit_chain_destroy(jp_audit_chain_t *c)
{
    if (!c)
        return;
    if (c->key)
        OPENSSL_cleanse(c->key, c->key_len);
    EVP_MAC_CTX_free(c->mac_ctx);
    free(c->key);
    free(c->stream);
    free(c);
}

/* The canonical text with "mac":"<mac>", inserted at `at` (the first member of data.chain,
 * which always has more members after it). */
static char *with_mac(const char *canon, size_t len, size_t at, const char *mac, size_t *out_len)
{
    static const char head[] = "\"mac\":\"";
    size_t hex = JP_AUDIT_MAC_HEX - 1;
    char *out = malloc(len + sizeof(head) - 1 + hex + 3);
    if (!out)
        return NULL;
    char *p = out;
    memcpy(p, canon, at);
    p += at;
    memcpy(p, head, sizeof(head) - 1);
    p += sizeof(head) - 1;
    memcpy(p, mac, hex);
    p += hex;
    memcpy(p, "\",", 2);
    p += 2;
    memcpy(p, canon + at, len - at);
    p += len - at;
    *p = '\0';
    *out_len = (size_t)(p - out);
    return out;
}

/* Seals; with text, also returns the published form (with_mac). */
static jp_err_t seal(jp_audit_chain_t *c, json_t *record, char **text, size_t *text_len,
                     char *errstr, size_t errstr_size)
{
    json_t *data = json_object_get(record, "data");
    if (!json_is_object(record) || !json_is_object(data))
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "an audit record must be an object with a data object");
    json_t *link = json_object();
    int bad = !link;
    bad |= json_object_set_new(link, "stream", json_string(c->stream));
    bad |= json_object_set_new(link, "seq", json_integer((json_int_t)c->next_seq));
    bad |= json_object_set_new(link, "prev", json_string(c->prev));
    bad |= json_object_set_new(link, "alg",
                               json_string(c->key_len ? JP_AUDIT_ALG_HMAC : JP_AUDIT_ALG_UNKEYED));
    if (c->key_len)
        bad |= json_object_set_new(link, "keyId", json_string(c->key_id));
    if (bad || json_object_set_new(data, JP_RECORD_AUDIT_CHAIN_FIELD, link) != 0) {
        if (bad)
            json_decref(link);
        json_object_del(data, JP_RECORD_AUDIT_CHAIN_FIELD);
        return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
    }
    char *canon;
    size_t len, at = 0;
    jp_err_t rc = canonical(record, &canon, &len, &at, errstr, errstr_size);
    if (rc != JP_OK) {
        json_object_del(data, JP_RECORD_AUDIT_CHAIN_FIELD);
        return rc;
    }
    char mac[JP_AUDIT_MAC_HEX];
    chain_mac(c, canon, len, mac);
    char *out = text && at ? with_mac(canon, len, at, mac, text_len) : NULL;
    free(canon);
    if ((text && !out) || json_object_set_new(link, "mac", json_string(mac)) != 0) {
        free(out);
        json_object_del(data, JP_RECORD_AUDIT_CHAIN_FIELD);
        return jp_err_set(errstr, errstr_size, at || !text ? JP_ERR_NOMEM : JP_ERR_INTERNAL,
                          at || !text ? "out of memory" : "no chain in the canonical form");
    }
    if (text)
        *text = out;
    memcpy(c->undo_prev, c->prev, sizeof(c->prev));
    memcpy(c->prev, mac, sizeof(mac));
    c->next_seq++;
    c->can_rewind = 1;
    return JP_OK;
}

jp_err_t jp_audit_chain_seal(jp_audit_chain_t *c, json_t *record, char *errstr, size_t errstr_size)
{
    return seal(c, record, NULL, NULL, errstr, errstr_size);
}

jp_err_t jp_audit_chain_seal_text(jp_audit_chain_t *c, json_t *record, char **text, size_t *len,
                                  char *errstr, size_t errstr_size)
{
    *text = NULL;
    *len = 0;
    return seal(c, record, text, len, errstr, errstr_size);
}

int jp_audit_chain_rewind(jp_audit_chain_t *c)
{
    if (!c || !c->can_rewind)
        return -1;
    memcpy(c->prev, c->undo_prev, sizeof(c->prev));
    c->next_seq--;
    c->can_rewind = 0;
    return 0;
}

const char *jp_audit_chain_stream(const jp_audit_chain_t *c)
{
    return c->stream;
}

int64_t jp_audit_chain_next_seq(const jp_audit_chain_t *c)
{
    return c->next_seq;
}

const char *jp_audit_chain_last_mac(const jp_audit_chain_t *c)
{
    return c->prev;
}

/* ---- the trail ------------------------------------------------------------------ */

typedef enum { T_IDLE = 0, T_OPENING, T_OPEN } trail_state_t;

typedef struct pending {
    json_t *rec;
    jp_kafka_out_cb *cb;
    void *opaque;
    int is_stop; /* the stream.stopped record */
    struct pending *next;
} pending_t;

/* What delivery reports update; outlives the trail while reports are outstanding. */
typedef struct shared {
    int refs;
    char *stream;
    uint64_t delivered, failed;
} shared_t;

typedef struct delivery {
    shared_t *sh;
    int64_t seq;
    jp_kafka_out_cb *cb;
    void *opaque;
} delivery_t;

/* A callback owed for a record that will never be produced (called from a timer, never from
 * inside the call that took the record). */
typedef struct owed {
    jp_kafka_out_cb *cb;
    void *opaque;
    jp_err_t err;
    char *msg;
    struct owed *next;
} owed_t;

/* A Redis command in flight; `t` is cleared when the trail goes first. */
typedef struct rtoken {
    struct jp_audit_trail *t;
    int64_t seq; /* SET: the seq it records */
} rtoken_t;

struct jp_audit_trail {
    uv_loop_t *loop;
    jp_kafka_out_t *out;
    jp_redis_t *redis;
    const jp_config_t *cfg;
    char *redis_key;
    jp_audit_chain_t *chain;
    trail_state_t state;
    pending_t *head, *tail;
    uint64_t queued, sealed;
    uv_timer_t *retry; /* separate allocations: their close completes after destroy */
    uv_timer_t *later; /* runs the owed callbacks */
    uv_timer_t *close_bound;
    void (*close_cb)(void *);
    void *close_opaque;
    int64_t close_seq;   /* seq of stream.stopped once sealed, else -1 */
    int64_t written_seq; /* the newest seq Redis confirmed */
    int retry_armed;
    owed_t *owed;
    shared_t *sh;
    rtoken_t *get_tok, *set_tok;
    int last_dirty; /* a newer {seq, mac} than the one being written */
    int64_t last_seq;
    char last_mac[JP_AUDIT_MAC_HEX];
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void shared_unref(shared_t *sh)
{
    if (sh && --sh->refs == 0) {
        free(sh->stream);
        free(sh);
    }
}

jp_err_t jp_audit_check_config(const jp_config_t *cfg, char *errstr, size_t errstr_size)
{
    const char *key = cfg->audit.hmac_key;
    if (cfg->audit.unkeyed && key)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "audit: give either hmac_key (or hmac_key_file) or unkeyed: true, not "
                          "both");
    if (cfg->audit.unkeyed)
        return JP_OK;
    if (!key)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "audit.hmac_key (or audit.hmac_key_file) is required: it keys the "
                          "audit records' HMAC chain (e.g. `openssl rand -hex 32` into a secret "
                          "file); audit.unkeyed: true runs without one, and the verifier then "
                          "reports every stream as unkeyed");
    if (strlen(key) < JP_AUDIT_KEY_MIN)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "audit.hmac_key must have at least %d bytes", JP_AUDIT_KEY_MIN);
    char probe[JP_AUDIT_STREAM_MAX];
    return jp_audit_stream_id(cfg->worker.instance_id, 0, probe, errstr, errstr_size);
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

jp_audit_trail_t *jp_audit_trail_new(uv_loop_t *loop, const jp_config_t *cfg, jp_kafka_out_t *out,
                                     jp_redis_t *redis, char *errstr, size_t errstr_size)
{
    if (!loop || !cfg || !out || !redis) {
        jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "audit trail: missing arguments");
        return NULL;
    }
    if (jp_audit_check_config(cfg, errstr, errstr_size) != JP_OK)
        return NULL;
    char stream[JP_AUDIT_STREAM_MAX];
    if (jp_audit_stream_id(cfg->worker.instance_id, wall_ms(), stream, errstr, errstr_size) !=
        JP_OK)
        return NULL;
    jp_audit_trail_t *t = calloc(1, sizeof(*t));
    if (!t) {
        jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
        return NULL;
    }
    t->loop = loop;
    t->out = out;
    t->redis = redis;
    t->cfg = cfg;
    t->last_seq = -1;
    const char *key = cfg->audit.unkeyed ? NULL : cfg->audit.hmac_key;
    t->chain = jp_audit_chain_new(key, key ? strlen(key) : 0, stream, errstr, errstr_size);
    if (!t->chain) {
        free(t);
        return NULL;
    }
    /* Long instance ids are hashed, as the store does with long names. */
    const char *id = cfg->worker.instance_id;
    const char *prefix = cfg->redis.key_prefix ? cfg->redis.key_prefix : "";
    char hashed[JP_AUDIT_MAC_HEX + 1];
    if (strlen(id) > REDIS_MAXID || id[0] == '#') {
        hashed[0] = '#';
        jp_audit_mac(NULL, 0, id, strlen(id), hashed + 1);
        id = hashed;
    }
    size_t n = strlen(prefix) + strlen(JP_AUDIT_REDIS_LAST) + strlen(id) + 1;
    t->redis_key = malloc(n);
    t->sh = calloc(1, sizeof(*t->sh));
    t->retry = malloc(sizeof(*t->retry));
    t->later = malloc(sizeof(*t->later));
    t->close_bound = malloc(sizeof(*t->close_bound));
    if (t->sh)
        t->sh->stream = strdup(stream);
    if (!t->redis_key || !t->sh || !t->sh->stream || !t->retry || !t->later || !t->close_bound) {
        free(t->retry);
        free(t->later);
        free(t->close_bound);
        if (t->sh)
            free(t->sh->stream);
        free(t->sh);
        jp_audit_chain_destroy(t->chain);
        free(t->redis_key);
        free(t);
        jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
        return NULL;
    }
    snprintf(t->redis_key, n, "%s%s%s", prefix, JP_AUDIT_REDIS_LAST, id);
    t->sh->refs = 1;
    uv_timer_init(loop, t->retry);
    uv_timer_init(loop, t->later);
    uv_timer_init(loop, t->close_bound);
    t->retry->data = t->later->data = t->close_bound->data = t;
    t->close_seq = t->written_seq = -1;
    jp_info(COMPONENT, "audit stream %s (%s)", stream,
            key ? "HMAC-SHA256" : "UNKEYED: SHA-256 only, not tamper-evident");
    return t;
}

/* ---- where the stream got to, in Redis ---- */

static void persist_last(jp_audit_trail_t *t);

static void finish_close(jp_audit_trail_t *t)
{
    void (*cb)(void *) = t->close_cb;
    t->close_cb = NULL;
    uv_timer_stop(t->close_bound);
    if (cb)
        cb(t->close_opaque);
}

static void close_bound_cb(uv_timer_t *timer)
{
    jp_audit_trail_t *t = timer->data;
    if (t->state != T_IDLE)
        jp_warn(COMPONENT,
                "Redis did not confirm where audit stream %s ended within %d ms; its successor "
                "will anchor on seq %lld",
                jp_audit_chain_stream(t->chain), CLOSE_WAIT_MS, (long long)t->written_seq);
    finish_close(t);
}

static void last_written(jp_redis_t *r, const redisReply *reply, jp_err_t err, const char *errstr,
                         void *opaque)
{
    rtoken_t *tok = opaque;
    jp_audit_trail_t *t = tok->t;
    int64_t seq = tok->seq;
    free(tok);
    if (!t)
        return;
    t->set_tok = NULL;
    if (err != JP_OK) {
        jp_debug(COMPONENT, "recording where the audit stream got to: %s", errstr);
        t->last_dirty = 1; /* written again with the next record */
        return;
    }
    if (seq > t->written_seq)
        t->written_seq = seq;
    if (t->last_dirty)
        persist_last(t);
    else if (t->close_cb && t->close_seq >= 0 && t->written_seq >= t->close_seq)
        finish_close(t);
}

static void persist_last(jp_audit_trail_t *t)
{
    if (t->set_tok) {
        t->last_dirty = 1;
        return;
    }
    json_t *v = json_pack("{s:s, s:I, s:s, s:I}", "stream", jp_audit_chain_stream(t->chain), "seq",
                          (json_int_t)t->last_seq, "mac", t->last_mac, "at", (json_int_t)wall_ms());
    char *text = v ? jp_json_dumps(v, NULL) : NULL;
    json_decref(v);
    rtoken_t *tok = text ? malloc(sizeof(*tok)) : NULL;
    if (!tok) {
        free(text);
        t->last_dirty = 1;
        return;
    }
    tok->t = t;
    tok->seq = t->last_seq;
    char err[256];
    const char *argv[] = {"SET", t->redis_key, text, "EX", LAST_TTL_S};
    if (jp_redis_commandargv(t->redis, last_written, tok, 5, argv, NULL, err, sizeof(err)) !=
        JP_OK) {
        free(tok);
        t->last_dirty = 1;
    } else {
        t->set_tok = tok;
        t->last_dirty = 0;
    }
    free(text);
}

/* ---- sealing and producing ---- */

static void arm_retry(jp_audit_trail_t *t);

static void delivered(jp_err_t err, jp_class_t cls, const char *errstr, void *opaque)
{
    delivery_t *d = opaque;
    if (err != JP_OK) {
        d->sh->failed++;
        jp_error(COMPONENT,
                 "audit record %lld of stream %s was not delivered (%s: %s); the verifier will "
                 "report it missing",
                 (long long)d->seq, d->sh->stream, jp_class_name(cls), errstr);
    } else {
        d->sh->delivered++;
    }
    if (d->cb)
        d->cb(err, cls, errstr, d->opaque);
    shared_unref(d->sh);
    free(d);
}

static void later_cb(uv_timer_t *timer)
{
    jp_audit_trail_t *t = timer->data;
    owed_t *list = t->owed;
    t->owed = NULL;
    while (list) {
        owed_t *o = list;
        list = o->next;
        o->cb(o->err, JP_CLASS_PERMANENT, o->msg ? o->msg : "audit record dropped", o->opaque);
        free(o->msg);
        free(o);
    }
}

/* The record `pd` will never be produced: its callback is owed, from the loop. */
static void owe(jp_audit_trail_t *t, pending_t *pd, jp_err_t err, const char *msg)
{
    if (!pd->cb)
        return;
    owed_t *o = calloc(1, sizeof(*o));
    if (!o) /* the caller then waits for a callback that never comes; logged */
        return;
    *o = (owed_t){pd->cb, pd->opaque, err, strdup(msg), NULL};
    owed_t **end = &t->owed;
    while (*end)
        end = &(*end)->next;
    *end = o;
    uv_timer_start(t->later, later_cb, 0, 0);
}

/* Seals and produces the head of the queue. 1: produced (or dropped for good), 0: retry later. */
static int produce_head(jp_audit_trail_t *t)
{
    pending_t *pd = t->head;
    char err[512], *text;
    size_t text_len;
    jp_err_t sealed =
        jp_audit_chain_seal_text(t->chain, pd->rec, &text, &text_len, err, sizeof(err));
    if (sealed == JP_ERR_NOMEM)
        return 0;
    if (sealed != JP_OK) {
        /* Records come from the record module; one without a canonical form is a bug. */
        jp_error(COMPONENT, "audit record dropped: %s", err);
        owe(t, pd, JP_ERR_INTERNAL, err);
        return 1;
    }
    int64_t seq = jp_audit_chain_next_seq(t->chain) - 1;
    delivery_t *d = malloc(sizeof(*d));
    if (!d) {
        free(text);
        jp_audit_chain_rewind(t->chain);
        return 0;
    }
    *d = (delivery_t){t->sh, seq, pd->cb, pd->opaque};
    const char *stream = jp_audit_chain_stream(t->chain);
    static const char ce[] = "application/cloudevents+json";
    jp_kafka_header_t hdr = {(char *)"content-type", (void *)ce, sizeof(ce) - 1};
    jp_err_t rc = jp_kafka_out_produce(t->out, t->cfg->topics.audit, stream, strlen(stream), text,
                                       text_len, &hdr, 1, delivered, d, err, sizeof(err));
    free(text);
    if (rc != JP_OK) {
        free(d);
        jp_audit_chain_rewind(t->chain);
        if (rc == JP_ERR_KAFKA || rc == JP_ERR_NOMEM) {
            jp_debug(COMPONENT, "audit record waits: %s", err);
            return 0;
        }
        jp_error(COMPONENT, "audit record refused by the producer: %s", err);
        owe(t, pd, rc, err);
        return 1;
    }
    t->sh->refs++;
    t->sealed++;
    t->last_seq = seq;
    if (pd->is_stop)
        t->close_seq = seq;
    memcpy(t->last_mac, jp_audit_chain_last_mac(t->chain), JP_AUDIT_MAC_HEX);
    persist_last(t);
    return 1;
}

static void pump(jp_audit_trail_t *t)
{
    while (t->state == T_OPEN && t->head && !t->retry_armed) {
        if (!produce_head(t)) {
            arm_retry(t);
            return;
        }
        pending_t *pd = t->head;
        t->head = pd->next;
        if (!t->head)
            t->tail = NULL;
        t->queued--;
        json_decref(pd->rec);
        free(pd);
    }
}

static void retry_cb(uv_timer_t *timer)
{
    jp_audit_trail_t *t = timer->data;
    t->retry_armed = 0;
    pump(t);
}

static void arm_retry(jp_audit_trail_t *t)
{
    t->retry_armed = 1;
    uv_timer_start(t->retry, retry_cb, RETRY_MS, 0);
}

static pending_t *pending_new(json_t *rec, jp_kafka_out_cb *cb, void *opaque)
{
    pending_t *pd = calloc(1, sizeof(*pd));
    if (!pd)
        return NULL;
    pd->rec = rec;
    pd->cb = cb;
    pd->opaque = opaque;
    return pd;
}

/* Opens the stream with stream.started at the head of the queue. */
static void open_stream(jp_audit_trail_t *t, json_t *extra)
{
    json_t *rec = jp_record_audit_stream(jp_audit_chain_stream(t->chain), "started", extra,
                                         t->cfg->worker.instance_id, wall_ms());
    json_decref(extra);
    pending_t *pd = rec ? pending_new(rec, NULL, NULL) : NULL;
    if (!pd) {
        /* Without its first record the stream would begin at seq 1 and the verifier would
         * call it truncated; out of memory here, better to say so loudly. */
        json_decref(rec);
        jp_error(COMPONENT, "out of memory building stream.started; the stream begins late");
    } else {
        pd->next = t->head;
        t->head = pd;
        if (!t->tail)
            t->tail = pd;
        t->queued++;
    }
    t->state = T_OPEN;
    pump(t);
}

static json_t *unknown_previous(const char *why)
{
    return json_pack("{s:s}", "previousUnknown", why);
}

static void last_read(jp_redis_t *r, const redisReply *reply, jp_err_t err, const char *errstr,
                      void *opaque)
{
    rtoken_t *tok = opaque;
    jp_audit_trail_t *t = tok->t;
    free(tok);
    if (!t)
        return;
    t->get_tok = NULL;
    char why[320];
    if (err != JP_OK) {
        snprintf(why, sizeof(why), "Redis did not answer: %s", errstr);
        jp_warn(COMPONENT, "where this instance's previous audit stream ended is unknown: %s",
                errstr);
        open_stream(t, unknown_previous(why));
        return;
    }
    if (reply->type == REDIS_REPLY_NIL) {
        open_stream(t, unknown_previous("no earlier stream of this instance is recorded"));
        return;
    }
    json_t *v =
        reply->type == REDIS_REPLY_STRING ? json_loadb(reply->str, reply->len, 0, NULL) : NULL;
    const char *stream = json_string_value(json_object_get(v, "stream"));
    const char *mac = json_string_value(json_object_get(v, "mac"));
    json_t *seq = json_object_get(v, "seq");
    if (!stream || !mac || strlen(mac) != 64 || !json_is_integer(seq) ||
        json_integer_value(seq) < 0) {
        json_decref(v);
        open_stream(t, unknown_previous("the recorded end of the previous stream is unreadable"));
        return;
    }
    json_t *extra = json_pack("{s:{s:s, s:I, s:s}}", "previous", "stream", stream, "seq",
                              json_integer_value(seq), "mac", mac);
    json_decref(v);
    open_stream(t, extra ? extra : unknown_previous("out of memory"));
}

void jp_audit_trail_start(jp_audit_trail_t *t)
{
    if (!t || t->state != T_IDLE)
        return;
    t->state = T_OPENING;
    rtoken_t *tok = malloc(sizeof(*tok));
    char err[256] = "out of memory";
    const char *argv[] = {"GET", t->redis_key};
    if (tok) {
        tok->t = t;
        if (jp_redis_commandargv(t->redis, last_read, tok, 2, argv, NULL, err, sizeof(err)) ==
            JP_OK) {
            t->get_tok = tok;
            return;
        }
        free(tok);
    }
    char why[320];
    snprintf(why, sizeof(why), "Redis was not reachable: %s", err);
    open_stream(t, unknown_previous(why));
}

int jp_audit_trail_emit(jp_audit_trail_t *t, json_t *record, jp_kafka_out_cb *cb, void *opaque)
{
    if (!t || !record) {
        json_decref(record);
        return -1;
    }
    pending_t *pd = pending_new(record, cb, opaque);
    if (!pd) {
        json_decref(record);
        return -1;
    }
    if (t->tail)
        t->tail->next = pd;
    else
        t->head = pd;
    t->tail = pd;
    t->queued++;
    if (t->state == T_IDLE)
        jp_audit_trail_start(t);
    else
        pump(t);
    return 0;
}

int jp_audit_trail_call(jp_audit_trail_t *t, const jp_event_t *ev, const jp_outcome_t *o,
                        const jp_outcome_call_t *call, jp_kafka_out_cb *cb, void *opaque)
{
    if (!t)
        return -1;
    return jp_audit_trail_emit(
        t, jp_record_audit_call(ev, o, call, t->cfg->worker.instance_id, wall_ms()), cb, opaque);
}

int jp_audit_trail_decision(jp_audit_trail_t *t, const jp_event_t *ev, const jp_outcome_t *o,
                            const char *decision, jp_kafka_out_cb *cb, void *opaque)
{
    if (!t)
        return -1;
    return jp_audit_trail_emit(
        t, jp_record_audit_decision(ev, o, decision, t->cfg->worker.instance_id, wall_ms()), cb,
        opaque);
}

void jp_audit_trail_close(jp_audit_trail_t *t, void (*done)(void *), void *opaque)
{
    t->close_cb = done;
    t->close_opaque = opaque;
    if (t->state == T_IDLE) { /* nothing was audited: no stream to close */
        uv_timer_start(t->close_bound, close_bound_cb, 0, 0);
        return;
    }
    uv_timer_start(t->close_bound, close_bound_cb, CLOSE_WAIT_MS, 0);
    json_t *rec = jp_record_audit_stream(jp_audit_chain_stream(t->chain), "stopped", NULL,
                                         t->cfg->worker.instance_id, wall_ms());
    pending_t *pd = rec ? pending_new(rec, NULL, NULL) : NULL;
    if (!pd) {
        json_decref(rec);
        jp_error(COMPONENT, "out of memory building stream.stopped");
        return;
    }
    pd->is_stop = 1;
    if (t->tail)
        t->tail->next = pd;
    else
        t->head = pd;
    t->tail = pd;
    t->queued++;
    pump(t);
    if (t->queued)
        jp_warn(COMPONENT, "closing the audit stream with %llu record(s) not yet produced",
                (unsigned long long)t->queued);
}

void jp_audit_trail_stats(const jp_audit_trail_t *t, jp_audit_trail_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!t)
        return;
    out->sealed = t->sealed;
    out->delivered = t->sh->delivered;
    out->failed = t->sh->failed;
    out->queued = t->queued;
}

const char *jp_audit_trail_stream(const jp_audit_trail_t *t)
{
    return jp_audit_chain_stream(t->chain);
}

void jp_audit_trail_destroy(jp_audit_trail_t *t)
{
    if (!t)
        return;
    while (t->head) {
        pending_t *pd = t->head;
        t->head = pd->next;
        json_decref(pd->rec);
        free(pd);
    }
    if (t->get_tok)
        t->get_tok->t = NULL;
    if (t->set_tok)
        t->set_tok->t = NULL;
    while (t->owed) {
        owed_t *o = t->owed;
        t->owed = o->next;
        free(o->msg);
        free(o);
    }
    uv_close((uv_handle_t *)t->retry, free_handle);
    uv_close((uv_handle_t *)t->later, free_handle);
    uv_close((uv_handle_t *)t->close_bound, free_handle);
    shared_unref(t->sh);
    jp_audit_chain_destroy(t->chain);
    free(t->redis_key);
    free(t);
}
