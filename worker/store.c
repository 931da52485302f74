/* Redis state of the worker: outcomes, lookup caches, attempts. See
 * include/jiraprov/store.h for the key layout and the calling rules.
 *
 * Every request is one heap object (req_t) handed to jp_redis as the opaque
 * pointer; jp_redis calls on_reply exactly once per accepted command, which
 * dispatches to the caller's callback and frees the request. Requests never
 * point back at the store, so destroying it with requests in flight is safe. */
#include "jiraprov/store.h"

#include "jiraprov/json.h"

#include "jiraprov/event.h"
#include "jiraprov/log.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COMP "store"

/* Appends an entry to the attempt history, keeps the newest ARGV[6], and
 * refreshes the TTL, all in one atomic step.
 * KEYS[1] attempts hash; ARGV: now_ms, next_ms, reason, http status, ttl_s, cap. */
static const char attempt_lua[] =
    "local k = KEYS[1]\n"
    "local n = redis.call('HINCRBY', k, 'attempts', 1)\n"
    "redis.call('HSETNX', k, 'first_ms', ARGV[1])\n"
    "redis.call('HSET', k, 'next_ms', ARGV[2])\n"
    "local h = {}\n"
    "local raw = redis.call('HGET', k, 'history')\n"
    "if raw then\n"
    "  local ok, v = pcall(cjson.decode, raw)\n"
    "  if ok and type(v) == 'table' then h = v end\n"
    "end\n"
    "h[#h + 1] = {at = tonumber(ARGV[1]), reason = ARGV[3], status = tonumber(ARGV[4])}\n"
    "local cap = tonumber(ARGV[6])\n"
    "while #h > cap do table.remove(h, 1) end\n"
    "local enc = cjson.encode(h)\n"
    "redis.call('HSET', k, 'history', enc)\n"
    "redis.call('EXPIRE', k, ARGV[5])\n"
    "return {n, redis.call('HGET', k, 'first_ms'), ARGV[2], enc}\n";

struct jp_store {
    jp_redis_t *redis;
    char *prefix;
    size_t prefix_len;
    int outcome_ttl_s;
    jp_redis_script_t *attempt_script;
};

typedef enum req_kind { REQ_DONE, REQ_OUTCOME, REQ_CACHE, REQ_ATTEMPTS } req_kind_t;

typedef struct req {
    req_kind_t kind;
    const char *op; /* static: names the operation in error texts */
    union {
        jp_store_done_cb *done;
        jp_store_outcome_cb *outcome;
        jp_store_cache_cb *cache;
        jp_store_attempts_cb *attempts;
    } cb;
    void *opaque;
} req_t;

/* ---- keys --------------------------------------------------------------- */

/* A growing byte buffer for one key; keys never hold NUL bytes because every
 * part comes from a NUL-terminated string. */
typedef struct keybuf {
    char *p;
    size_t len, cap;
    int oom;
} keybuf_t;

static void kb_add(keybuf_t *k, const void *data, size_t n)
{
    if (k->oom)
        return;
    if (k->len + n + 1 > k->cap) {
        size_t cap = (k->len + n + 1) * 2;
        char *grown = realloc(k->p, cap);
        if (!grown) {
            k->oom = 1;
            return;
        }
        k->p = grown;
        k->cap = cap;
    }
    memcpy(k->p + k->len, data, n);
    k->len += n;
    k->p[k->len] = '\0';
}

static void kb_str(keybuf_t *k, const char *s)
{
    kb_add(k, s, strlen(s));
}

/* An id or name as a key part: as is when short and not starting with '#',
 * else "#" + hex SHA-256 (so a raw name can never look like a hashed one). */
static void kb_name(keybuf_t *k, const char *name)
{
    size_t n = strlen(name);
    if (n <= JP_STORE_NAME_MAX && name[0] != '#') {
        kb_add(k, name, n);
        return;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(name, n, md, &mdlen, EVP_sha256(), NULL)) {
        k->oom = 1;
        return;
    }
    static const char hex[] = "0123456789abcdef";
    char out[1 + 2 * EVP_MAX_MD_SIZE];
    out[0] = '#';
    for (unsigned int i = 0; i < mdlen; i++) {
        out[1 + 2 * i] = hex[md[i] >> 4];
        out[2 + 2 * i] = hex[md[i] & 15];
    }
    kb_add(k, out, 1 + 2 * (size_t)mdlen);
}

static void kb_init(keybuf_t *k, const jp_store_t *s, const char *tag)
{
    memset(k, 0, sizeof(*k));
    kb_add(k, s->prefix, s->prefix_len);
    kb_str(k, tag);
}

static int valid_kind(const char *kind)
{
    size_t n = strlen(kind);
    if (n == 0 || n > 32)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = kind[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

static jp_err_t id_key(const jp_store_t *s, const char *tag, const char *id, keybuf_t *k,
                       char *errstr, size_t errstr_size)
{
    if (!s || !id || !id[0])
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "store: missing event id");
    kb_init(k, s, tag);
    kb_name(k, id);
    if (k->oom) {
        free(k->p);
        return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "store: out of memory");
    }
    return JP_OK;
}

static jp_err_t cache_key(const jp_store_t *s, const char *site, const char *kind, const char *name,
                          keybuf_t *k, char *errstr, size_t errstr_size)
{
    if (!s || !site || !kind || !name)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "store: missing cache argument");
    if (!jp_event_valid_site(site))
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "store: cache site: expected [a-z0-9_-]{1,64}");
    if (!valid_kind(kind))
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "store: cache kind: expected [a-z0-9_.-]{1,32}");
    if (!name[0])
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "store: cache name is empty");
    kb_init(k, s, "cache:");
    kb_str(k, site);
    kb_str(k, ":");
    kb_str(k, kind);
    kb_str(k, ":");
    kb_name(k, name);
    if (k->oom) {
        free(k->p);
        return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "store: out of memory");
    }
    return JP_OK;
}

/* ---- lifecycle ------------------------------------------------------------ */

jp_store_t *jp_store_new(jp_redis_t *redis, const char *key_prefix, int outcome_ttl_s, char *errstr,
                         size_t errstr_size)
{
    if (!redis) {
        jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "store: no Redis client");
        return NULL;
    }
    if (outcome_ttl_s <= 0) {
        jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                   "store: outcome TTL: expected a positive number of seconds, got %d",
                   outcome_ttl_s);
        return NULL;
    }
    jp_store_t *s = calloc(1, sizeof(*s));
    if (!s || !(s->prefix = strdup(key_prefix ? key_prefix : ""))) {
        free(s);
        jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "store: out of memory");
        return NULL;
    }
    s->prefix_len = strlen(s->prefix);
    s->redis = redis;
    s->outcome_ttl_s = outcome_ttl_s;
    s->attempt_script = jp_redis_script_new(redis, attempt_lua, errstr, errstr_size);
    if (!s->attempt_script) {
        jp_store_destroy(s);
        return NULL;
    }
    return s;
}

void jp_store_destroy(jp_store_t *s)
{
    if (!s)
        return;
    free(s->prefix);
    free(s);
}

/* ---- reply handling ---------------------------------------------------------- */

static void fail(req_t *q, jp_err_t err, const char *errstr)
{
    switch (q->kind) {
    case REQ_DONE:
        if (q->cb.done)
            q->cb.done(err, errstr, q->opaque);
        else
            jp_debug(COMP, "%s failed: %s", q->op, errstr);
        break;
    case REQ_OUTCOME:
        q->cb.outcome(err, errstr, NULL, q->opaque);
        break;
    case REQ_CACHE:
        q->cb.cache(err, errstr, NULL, q->opaque);
        break;
    case REQ_ATTEMPTS:
        if (q->cb.attempts)
            q->cb.attempts(err, errstr, NULL, q->opaque);
        else
            jp_debug(COMP, "%s failed: %s", q->op, errstr);
        break;
    }
}

/* A string reply parsed as JSON; NULL (with why) when it is not JSON. */
static json_t *reply_json(const redisReply *reply, char *why, size_t why_size)
{
    json_error_t je;
    json_t *j = json_loadb(reply->str, reply->len, 0, &je);
    if (!j)
        snprintf(why, why_size, "stored value is not JSON: %s", je.text);
    return j;
}

static void on_outcome(req_t *q, const redisReply *reply)
{
    char why[256];
    if (reply->type == REDIS_REPLY_NIL) {
        q->cb.outcome(JP_OK, "", NULL, q->opaque);
        return;
    }
    if (reply->type != REDIS_REPLY_STRING) {
        fail(q, JP_ERR_INVALID, "store: outcome: unexpected reply type");
        return;
    }
    json_t *j = reply_json(reply, why, sizeof(why));
    jp_outcome_t *o = j ? jp_outcome_from_json(j) : NULL;
    if (j && !o)
        snprintf(why, sizeof(why), "stored value is not an outcome");
    if (!o) {
        json_decref(j);
        char msg[320];
        snprintf(msg, sizeof(msg), "store: outcome: %s", why);
        fail(q, JP_ERR_INVALID, msg);
        return;
    }
    json_decref(j);
    q->cb.outcome(JP_OK, "", o, q->opaque);
}

static void on_cache(req_t *q, const redisReply *reply)
{
    char why[256];
    if (reply->type == REDIS_REPLY_NIL) {
        q->cb.cache(JP_OK, "", NULL, q->opaque);
        return;
    }
    json_t *j = reply->type == REDIS_REPLY_STRING ? reply_json(reply, why, sizeof(why)) : NULL;
    if (reply->type != REDIS_REPLY_STRING)
        snprintf(why, sizeof(why), "unexpected reply type");
    else if (j && !json_is_object(j))
        snprintf(why, sizeof(why), "stored value is not a JSON object");
    if (!json_is_object(j)) {
        json_decref(j);
        char msg[320];
        snprintf(msg, sizeof(msg), "store: cache: %s", why);
        fail(q, JP_ERR_INVALID, msg);
        return;
    }
    q->cb.cache(JP_OK, "", j, q->opaque);
}

/* An element of an attempts reply as an integer: an integer reply or a
 * decimal string. -1 when nil; -2 when malformed. */
static int elem_int(const redisReply *e, int64_t *out)
{
    if (e->type == REDIS_REPLY_NIL)
        return -1;
    if (e->type == REDIS_REPLY_INTEGER) {
        *out = e->integer;
        return 0;
    }
    if (e->type != REDIS_REPLY_STRING || e->len == 0 || e->len > 20)
        return -2;
    char buf[24], *end;
    memcpy(buf, e->str, e->len);
    buf[e->len] = '\0';
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (errno || *end)
        return -2;
    *out = v;
    return 0;
}

void jp_store_attempts_free(jp_store_attempts_t *a)
{
    if (!a)
        return;
    json_decref(a->history);
    free(a);
}

/* [attempts, first_ms, next_ms, history] from HMGET or the script. */
static void on_attempts(req_t *q, const redisReply *reply)
{
    int64_t n = 0, first = 0, next = 0;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 4) {
        fail(q, JP_ERR_INVALID, "store: attempts: unexpected reply shape");
        return;
    }
    int rc = elem_int(reply->element[0], &n);
    if (rc == -1) {
        if (q->cb.attempts)
            q->cb.attempts(JP_OK, "", NULL, q->opaque);
        return;
    }
    const redisReply *h = reply->element[3];
    json_t *hist = NULL;
    if (h->type == REDIS_REPLY_STRING)
        hist = json_loadb(h->str, h->len, 0, NULL);
    else if (h->type == REDIS_REPLY_NIL)
        hist = json_array();
    /* cjson encodes an empty Lua table as {}; the script never stores one,
     * but accept it as an empty history. */
    if (json_is_object(hist) && json_object_size(hist) == 0) {
        json_decref(hist);
        hist = json_array();
    }
    if (rc != 0 || n < 0 || n > INT32_MAX || elem_int(reply->element[1], &first) == -2 ||
        elem_int(reply->element[2], &next) == -2 || !json_is_array(hist)) {
        json_decref(hist);
        fail(q, JP_ERR_INVALID, "store: attempts: stored state is malformed");
        return;
    }
    jp_store_attempts_t *a = calloc(1, sizeof(*a));
    if (!a) {
        json_decref(hist);
        fail(q, JP_ERR_NOMEM, "store: out of memory");
        return;
    }
    a->attempts = (int)n;
    a->first_ms = first;
    a->next_ms = next;
    a->history = hist;
    if (q->cb.attempts)
        q->cb.attempts(JP_OK, "", a, q->opaque);
    else
        jp_store_attempts_free(a);
}

static void on_reply(jp_redis_t *r, const redisReply *reply, jp_err_t err, const char *errstr,
                     void *opaque)
{
    req_t *q = opaque;
    (void)r;
    if (err != JP_OK) {
        char msg[512];
        snprintf(msg, sizeof(msg), "store: %s: %s", q->op, errstr);
        fail(q, err, msg);
    } else {
        switch (q->kind) {
        case REQ_DONE:
            if (q->cb.done)
                q->cb.done(JP_OK, "", q->opaque);
            break;
        case REQ_OUTCOME:
            on_outcome(q, reply);
            break;
        case REQ_CACHE:
            on_cache(q, reply);
            break;
        case REQ_ATTEMPTS:
            on_attempts(q, reply);
            break;
        }
    }
    free(q);
}

/* ---- sending ---------------------------------------------------------------- */

static req_t *req_new(req_kind_t kind, const char *op, void *opaque)
{
    req_t *q = calloc(1, sizeof(*q));
    if (q) {
        q->kind = kind;
        q->op = op;
        q->opaque = opaque;
    }
    return q;
}

/* Sends argv (with lengths); on refusal frees q and returns the error. */
static jp_err_t send_argv(jp_store_t *s, req_t *q, int argc, const char **argv, const size_t *lens)
{
    char errstr[256];
    if (!q) {
        jp_warn(COMP, "%s: out of memory", argv[0]);
        return JP_ERR_NOMEM;
    }
    jp_err_t err =
        jp_redis_commandargv(s->redis, on_reply, q, argc, argv, lens, errstr, sizeof(errstr));
    if (err != JP_OK) {
        jp_debug(COMP, "%s refused: %s", q->op, errstr);
        free(q);
    }
    return err;
}

/* ---- outcomes ----------------------------------------------------------------- */

jp_err_t jp_store_get_outcome(jp_store_t *s, const char *event_id, jp_store_outcome_cb *cb,
                              void *opaque)
{
    char errstr[256];
    keybuf_t k;
    if (!cb)
        return JP_ERR_INVALID;
    jp_err_t err = id_key(s, "outcome:", event_id, &k, errstr, sizeof(errstr));
    if (err != JP_OK)
        return err;
    req_t *q = req_new(REQ_OUTCOME, "GET outcome", opaque);
    if (q)
        q->cb.outcome = cb;
    const char *argv[] = {"GET", k.p};
    size_t lens[] = {3, k.len};
    err = send_argv(s, q, 2, argv, lens);
    free(k.p);
    return err;
}

/* SET key value EX ttl with a DONE request. */
static jp_err_t set_ex(jp_store_t *s, const char *op, keybuf_t *k, const char *val, int ttl_s,
                       jp_store_done_cb *cb, void *opaque)
{
    char ttl[16];
    snprintf(ttl, sizeof(ttl), "%d", ttl_s);
    req_t *q = req_new(REQ_DONE, op, opaque);
    if (q)
        q->cb.done = cb;
    const char *argv[] = {"SET", k->p, val, "EX", ttl};
    size_t lens[] = {3, k->len, strlen(val), 2, strlen(ttl)};
    return send_argv(s, q, 5, argv, lens);
}

jp_err_t jp_store_put_outcome(jp_store_t *s, const char *event_id, const jp_outcome_t *o,
                              jp_store_done_cb *cb, void *opaque)
{
    char errstr[256];
    keybuf_t k;
    if (!o || o->status > JP_OUTCOME_FAILED)
        return JP_ERR_INVALID;
    jp_err_t err = id_key(s, "outcome:", event_id, &k, errstr, sizeof(errstr));
    if (err != JP_OK)
        return err;
    json_t *j = jp_outcome_to_json(o);
    char *val = j ? jp_json_dumps(j, NULL) : NULL;
    json_decref(j);
    if (!val)
        err = JP_ERR_NOMEM;
    else
        err = set_ex(s, "SET outcome", &k, val, s->outcome_ttl_s, cb, opaque);
    free(val);
    free(k.p);
    return err;
}

/* ---- cache -------------------------------------------------------------------- */

jp_err_t jp_store_cache_get(jp_store_t *s, const char *site, const char *kind, const char *name,
                            jp_store_cache_cb *cb, void *opaque)
{
    char errstr[256];
    keybuf_t k;
    if (!cb)
        return JP_ERR_INVALID;
    jp_err_t err = cache_key(s, site, kind, name, &k, errstr, sizeof(errstr));
    if (err != JP_OK)
        return err;
    req_t *q = req_new(REQ_CACHE, "GET cache", opaque);
    if (q)
        q->cb.cache = cb;
    const char *argv[] = {"GET", k.p};
    size_t lens[] = {3, k.len};
    err = send_argv(s, q, 2, argv, lens);
    free(k.p);
    return err;
}

jp_err_t jp_store_cache_set(jp_store_t *s, const char *site, const char *kind, const char *name,
                            const json_t *value, int ttl_s, jp_store_done_cb *cb, void *opaque)
{
    char errstr[256];
    keybuf_t k;
    if (!json_is_object(value) || ttl_s <= 0)
        return JP_ERR_INVALID;
    jp_err_t err = cache_key(s, site, kind, name, &k, errstr, sizeof(errstr));
    if (err != JP_OK)
        return err;
    char *val = jp_json_dumps(value, NULL);
    if (!val)
        err = JP_ERR_NOMEM;
    else
        err = set_ex(s, "SET cache", &k, val, ttl_s, cb, opaque);
    free(val);
    free(k.p);
    return err;
}

static jp_err_t del_key(jp_store_t *s, const char *op, keybuf_t *k, jp_store_done_cb *cb,
                        void *opaque)
{
    req_t *q = req_new(REQ_DONE, op, opaque);
    if (q)
        q->cb.done = cb;
    const char *argv[] = {"DEL", k->p};
    size_t lens[] = {3, k->len};
    jp_err_t err = send_argv(s, q, 2, argv, lens);
    free(k->p);
    return err;
}

jp_err_t jp_store_cache_del(jp_store_t *s, const char *site, const char *kind, const char *name,
                            jp_store_done_cb *cb, void *opaque)
{
    char errstr[256];
    keybuf_t k;
    jp_err_t err = cache_key(s, site, kind, name, &k, errstr, sizeof(errstr));
    if (err != JP_OK)
        return err;
    return del_key(s, "DEL cache", &k, cb, opaque);
}

/* ---- attempts ----------------------------------------------------------------- */

jp_err_t jp_store_get_attempts(jp_store_t *s, const char *event_id, jp_store_attempts_cb *cb,
                               void *opaque)
{
    char errstr[256];
    keybuf_t k;
    if (!cb)
        return JP_ERR_INVALID;
    jp_err_t err = id_key(s, "attempts:", event_id, &k, errstr, sizeof(errstr));
    if (err != JP_OK)
        return err;
    req_t *q = req_new(REQ_ATTEMPTS, "HMGET attempts", opaque);
    if (q)
        q->cb.attempts = cb;
    const char *argv[] = {"HMGET", k.p, "attempts", "first_ms", "next_ms", "history"};
    size_t lens[] = {5, k.len, 8, 8, 7, 7};
    err = send_argv(s, q, 6, argv, lens);
    free(k.p);
    return err;
}

/* Valid UTF-8 (jansson checks it) of at most JP_STORE_REASON_MAX bytes. */
static int reason_ok(const char *reason)
{
    size_t n = strlen(reason);
    if (n == 0 || n > JP_STORE_REASON_MAX)
        return 0;
    json_t *probe = json_stringn(reason, n);
    json_decref(probe);
    return probe != NULL;
}

jp_err_t jp_store_record_attempt(jp_store_t *s, const char *event_id, int64_t now_ms,
                                 int64_t next_ms, const char *reason, long http_status,
                                 jp_store_attempts_cb *cb, void *opaque)
{
    char errstr[256];
    keybuf_t k;
    if (!reason || !reason_ok(reason) || now_ms < 0 || next_ms < 0 || http_status < 0 ||
        http_status > 999)
        return JP_ERR_INVALID;
    jp_err_t err = id_key(s, "attempts:", event_id, &k, errstr, sizeof(errstr));
    if (err != JP_OK)
        return err;
    req_t *q = req_new(REQ_ATTEMPTS, "record attempt", opaque);
    if (!q) {
        free(k.p);
        return JP_ERR_NOMEM;
    }
    q->cb.attempts = cb;
    char now[24], next[24], status[8], ttl[16], cap[8];
    snprintf(now, sizeof(now), "%lld", (long long)now_ms);
    snprintf(next, sizeof(next), "%lld", (long long)next_ms);
    snprintf(status, sizeof(status), "%ld", http_status);
    snprintf(ttl, sizeof(ttl), "%d", s->outcome_ttl_s);
    snprintf(cap, sizeof(cap), "%d", JP_STORE_HISTORY_MAX);
    const char *keys[] = {k.p};
    const char *args[] = {now, next, reason, status, ttl, cap};
    err = jp_redis_evalsha(s->redis, s->attempt_script, on_reply, q, 1, keys, 6, args, errstr,
                           sizeof(errstr));
    if (err != JP_OK) {
        jp_debug(COMP, "record attempt refused: %s", errstr);
        free(q);
    }
    free(k.p);
    return err;
}

jp_err_t jp_store_clear_attempts(jp_store_t *s, const char *event_id, jp_store_done_cb *cb,
                                 void *opaque)
{
    char errstr[256];
    keybuf_t k;
    jp_err_t err = id_key(s, "attempts:", event_id, &k, errstr, sizeof(errstr));
    if (err != JP_OK)
        return err;
    return del_key(s, "DEL attempts", &k, cb, opaque);
}
