/* jp_store against a real redis-server started by the test (free loopback
 * port, stopped by PID). Every wait runs the loop until a condition holds,
 * with a deadline. */
#include "jiraprov/log.h"
#include "jiraprov/store.h"

#include "../lib/testredis.c"
#include "../lib/testloop.c"

#include <check.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/check_main.h"

#define PREFIX "jp-test:"
#define TTL    600

/* ---- loop helpers ----------------------------------------------------- */

static void on_state(void *opaque, int connected)
{
    int *up = opaque;
    *up = connected;
}

static int is_up(void *arg)
{
    return *(int *)arg;
}

static int is_down(void *arg)
{
    return *(int *)arg == 0;
}

/* ---- fixture ---------------------------------------------------------- */

static testredis_t srv;

static void start_srv(void)
{
    memset(&srv, 0, sizeof(srv));
    jp_log_set_level(JP_LOG_ERROR);
    ck_assert_int_eq(testredis_start(&srv, 0), 0);
}

static void stop_srv(void)
{
    testredis_kill(&srv);
}

typedef struct env {
    uv_loop_t loop;
    int up;
    jp_redis_t *redis;
    jp_store_t *store;
} env_t;

static jp_redis_t *new_client(uv_loop_t *loop, int *up, unsigned timeout_ms)
{
    jp_redis_opts_t o = {0};
    o.host = "127.0.0.1";
    o.port = srv.port;
    o.command_timeout_ms = timeout_ms;
    o.backoff_min_ms = 20;
    o.backoff_max_ms = 200;
    o.on_state = on_state;
    o.opaque = up;
    char err[256];
    jp_redis_t *r = jp_redis_new(loop, &o, err, sizeof(err));
    ck_assert_msg(r != NULL, "%s", err);
    return r;
}

static void env_open(env_t *e, unsigned timeout_ms)
{
    memset(e, 0, sizeof(*e));
    uv_loop_init(&e->loop);
    e->redis = new_client(&e->loop, &e->up, timeout_ms);
    ck_assert_msg(testloop_run_until(&e->loop, is_up, &e->up, 3000), "not connected: %s",
                  jp_redis_last_error(e->redis));
    char err[256];
    e->store = jp_store_new(e->redis, PREFIX, TTL, err, sizeof(err));
    ck_assert_msg(e->store != NULL, "%s", err);
}

static void env_close(env_t *e)
{
    jp_store_destroy(e->store);
    jp_redis_destroy(e->redis);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&e->loop), 0);
}

/* ---- raw Redis access, to look behind the store ----------------------- */

typedef struct raw {
    int calls;
    jp_err_t err;
    int type;
    long long integer;
    size_t elements;
    char str[4096];
    size_t len;
} raw_t;

static void raw_cb(jp_redis_t *r, const redisReply *reply, jp_err_t err, const char *errstr,
                   void *opaque)
{
    raw_t *x = opaque;
    x->calls++;
    x->err = err;
    if (reply) {
        x->type = reply->type;
        x->integer = reply->integer;
        x->elements = reply->elements;
        if (reply->str) {
            x->len = reply->len < sizeof(x->str) - 1 ? reply->len : sizeof(x->str) - 1;
            memcpy(x->str, reply->str, x->len);
            x->str[x->len] = '\0';
        }
    }
}

static int raw_done(void *arg)
{
    return ((raw_t *)arg)->calls > 0;
}

/* argv command with lengths (binary keys), waited for. */
static raw_t raw_argv(env_t *e, int argc, const char **argv, const size_t *lens)
{
    raw_t x;
    memset(&x, 0, sizeof(x));
    char err[256];
    ck_assert_int_eq(jp_redis_commandargv(e->redis, raw_cb, &x, argc, argv, lens, err, sizeof(err)),
                     JP_OK);
    ck_assert(testloop_run_until(&e->loop, raw_done, &x, 3000));
    return x;
}

static raw_t raw2(env_t *e, const char *cmd, const char *key)
{
    const char *argv[] = {cmd, key};
    return raw_argv(e, 2, argv, NULL);
}

static long long ttl_of(env_t *e, const char *key)
{
    raw_t x = raw2(e, "TTL", key);
    ck_assert_int_eq(x.err, JP_OK);
    return x.integer;
}

static int exists(env_t *e, const char *key)
{
    return (int)raw2(e, "EXISTS", key).integer;
}

/* ---- callback recorders ----------------------------------------------- */

typedef struct got {
    int calls;
    jp_err_t err;
    char errstr[512];
    jp_outcome_t *outcome;
    json_t *value;
    jp_store_attempts_t *attempts;
} got_t;

static void note(got_t *g, jp_err_t err, const char *errstr)
{
    g->calls++;
    g->err = err;
    ck_assert_ptr_nonnull(errstr);
    snprintf(g->errstr, sizeof(g->errstr), "%s", errstr);
}

static void got_done(jp_err_t err, const char *errstr, void *opaque)
{
    note(opaque, err, errstr);
}

static void got_outcome(jp_err_t err, const char *errstr, jp_outcome_t *o, void *opaque)
{
    got_t *g = opaque;
    note(g, err, errstr);
    jp_outcome_destroy(g->outcome);
    g->outcome = o;
}

static void got_value(jp_err_t err, const char *errstr, json_t *v, void *opaque)
{
    got_t *g = opaque;
    note(g, err, errstr);
    json_decref(g->value);
    g->value = v;
}

static void got_attempts(jp_err_t err, const char *errstr, jp_store_attempts_t *a, void *opaque)
{
    got_t *g = opaque;
    note(g, err, errstr);
    jp_store_attempts_free(g->attempts);
    g->attempts = a;
}

static void got_free(got_t *g)
{
    jp_outcome_destroy(g->outcome);
    json_decref(g->value);
    jp_store_attempts_free(g->attempts);
    memset(g, 0, sizeof(*g));
}

static int got1(void *arg)
{
    return ((got_t *)arg)->calls > 0;
}

/* Waits for one callback into g (reset first by the caller's macro). */
#define WAIT(e, g)                                                                                 \
    do {                                                                                           \
        ck_assert(testloop_run_until(&(e)->loop, got1, &(g), 3000));                               \
        ck_assert_int_eq((g).calls, 1);                                                            \
    } while (0)

#define CALL(e, g, expr)                                                                           \
    do {                                                                                           \
        got_free(&(g));                                                                            \
        ck_assert_int_eq((expr), JP_OK);                                                           \
        ck_assert_int_eq((g).calls, 0); /* never from inside the call */                           \
        WAIT(e, g);                                                                                \
    } while (0)

static jp_outcome_t *sample_outcome(void)
{
    jp_outcome_t *o = jp_outcome_new(JP_OUTCOME_SUCCEEDED);
    jp_outcome_set_jira(o, "scimId", "scim-1");
    jp_outcome_set_jira(o, "accountId", "acc-1");
    json_array_append_new(o->changed, json_string("email"));
    o->detail = strdup("created (found after 409)");
    o->duration_ms = 123;
    return o;
}

/* ---- tests ------------------------------------------------------------ */

START_TEST(outcome_roundtrip)
{
    env_t e;
    env_open(&e, 3000);
    got_t g = {0};

    CALL(&e, g, jp_store_get_outcome(e.store, "evt-1", got_outcome, &g));
    ck_assert_int_eq(g.err, JP_OK);
    ck_assert_ptr_null(g.outcome); /* miss */

    jp_outcome_t *o = sample_outcome();
    CALL(&e, g, jp_store_put_outcome(e.store, "evt-1", o, got_done, &g));
    ck_assert_int_eq(g.err, JP_OK);
    long long ttl = ttl_of(&e, PREFIX "outcome:evt-1");
    ck_assert_int_gt(ttl, 0);
    ck_assert_int_le(ttl, TTL);

    CALL(&e, g, jp_store_get_outcome(e.store, "evt-1", got_outcome, &g));
    ck_assert_int_eq(g.err, JP_OK);
    ck_assert_ptr_nonnull(g.outcome);
    ck_assert_int_eq(g.outcome->status, JP_OUTCOME_SUCCEEDED);
    ck_assert_str_eq(json_string_value(json_object_get(g.outcome->jira, "scimId")), "scim-1");
    ck_assert_str_eq(json_string_value(json_object_get(g.outcome->jira, "accountId")), "acc-1");
    ck_assert_int_eq(json_array_size(g.outcome->changed), 1);
    ck_assert_str_eq(g.outcome->detail, "created (found after 409)");
    ck_assert_int_eq(g.outcome->duration_ms, 123);

    /* A failed outcome keeps its class, reason and message. */
    jp_outcome_t *f = jp_outcome_new(JP_OUTCOME_FAILED);
    jp_outcome_set_error(f, JP_OUTCOME_FAILED, JP_CLASS_PERMANENT, "http_400", "bad \"value\"");
    CALL(&e, g, jp_store_put_outcome(e.store, "evt-2", f, got_done, &g));
    CALL(&e, g, jp_store_get_outcome(e.store, "evt-2", got_outcome, &g));
    ck_assert_int_eq(g.outcome->status, JP_OUTCOME_FAILED);
    ck_assert_int_eq(g.outcome->error_class, JP_CLASS_PERMANENT);
    ck_assert_str_eq(g.outcome->error_reason, "http_400");
    ck_assert_str_eq(g.outcome->error_message, "bad \"value\"");

    /* Only terminal outcomes are recorded; nothing is sent otherwise. */
    f->status = JP_OUTCOME_RETRY;
    ck_assert_int_eq(jp_store_put_outcome(e.store, "evt-3", f, got_done, &g), JP_ERR_INVALID);
    f->status = JP_OUTCOME_QUARANTINE;
    ck_assert_int_eq(jp_store_put_outcome(e.store, "evt-3", f, got_done, &g), JP_ERR_INVALID);
    ck_assert_int_eq(jp_store_put_outcome(e.store, "", o, got_done, &g), JP_ERR_INVALID);
    ck_assert_int_eq(jp_store_put_outcome(e.store, NULL, o, got_done, &g), JP_ERR_INVALID);
    ck_assert_int_eq(jp_store_put_outcome(NULL, "x", o, got_done, &g), JP_ERR_INVALID);
    ck_assert_int_eq(jp_store_get_outcome(e.store, "x", NULL, &g), JP_ERR_INVALID);
    ck_assert(!exists(&e, PREFIX "outcome:evt-3"));

    /* Fire and forget. */
    got_free(&g);
    ck_assert_int_eq(jp_store_put_outcome(e.store, "evt-4", o, NULL, NULL), JP_OK);
    CALL(&e, g, jp_store_get_outcome(e.store, "evt-4", got_outcome, &g));
    ck_assert_ptr_nonnull(g.outcome);

    /* A corrupted entry is reported, not crashed on. */
    raw_t x = raw_argv(&e, 3, (const char *[]){"SET", PREFIX "outcome:bad", "{not json"}, NULL);
    ck_assert_int_eq(x.err, JP_OK);
    CALL(&e, g, jp_store_get_outcome(e.store, "bad", got_outcome, &g));
    ck_assert_int_eq(g.err, JP_ERR_INVALID);
    ck_assert_ptr_null(g.outcome);
    ck_assert_ptr_nonnull(strstr(g.errstr, "not JSON"));
    raw_argv(&e, 3, (const char *[]){"SET", PREFIX "outcome:bad", "{\"status\":\"nope\"}"}, NULL);
    CALL(&e, g, jp_store_get_outcome(e.store, "bad", got_outcome, &g));
    ck_assert_int_eq(g.err, JP_ERR_INVALID);
    raw_argv(&e, 4, (const char *[]){"HSET", PREFIX "outcome:hash", "a", "b"}, NULL);
    CALL(&e, g, jp_store_get_outcome(e.store, "hash", got_outcome, &g));
    ck_assert_int_eq(g.err, JP_ERR_REDIS); /* WRONGTYPE */
    ck_assert_ptr_nonnull(strstr(g.errstr, "WRONGTYPE"));

    got_free(&g);
    jp_outcome_destroy(o);
    jp_outcome_destroy(f);
    env_close(&e);
}
END_TEST

static void sha256_hex(const char *s, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    ck_assert(EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL));
    ck_assert_uint_eq(n, 32);
    for (unsigned int i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

START_TEST(keys_binary_and_long)
{
    env_t e;
    env_open(&e, 3000);
    got_t g = {0};
    jp_outcome_t *o = sample_outcome();

    /* Bytes that would break a text protocol or a key pattern. */
    static const char *ids[] = {
        "a b\r\n*3\r\n$3\r\nDEL\r\n", "quo\"te'\\", "caf\xc3\xa9-\xe2\x9c\x93", "\xff\xfe\x01", "*",
        "jp-test:outcome:x",          "{tag}:1",
    };
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        o->duration_ms = (int64_t)i + 1;
        CALL(&e, g, jp_store_put_outcome(e.store, ids[i], o, got_done, &g));
        ck_assert_int_eq(g.err, JP_OK);
    }
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        CALL(&e, g, jp_store_get_outcome(e.store, ids[i], got_outcome, &g));
        ck_assert_ptr_nonnull(g.outcome);
        ck_assert_int_eq(g.outcome->duration_ms, (int64_t)i + 1); /* its own entry */
        char key[256];
        snprintf(key, sizeof(key), PREFIX "outcome:%s", ids[i]);
        ck_assert_msg(exists(&e, key), "raw key for id %zu", i);
    }

    /* 200 bytes: as is; 201 bytes: hashed; a leading '#': hashed. */
    char id200[201], id201[202], idlong[5001], idlong2[5001];
    memset(id200, 'a', 200);
    id200[200] = '\0';
    memset(id201, 'a', 201);
    id201[201] = '\0';
    memset(idlong, 'z', 5000);
    idlong[5000] = '\0';
    memcpy(idlong2, idlong, sizeof(idlong));
    idlong2[4999] = 'y'; /* same prefix, differs at the end */
    const char *hashed[] = {id201, idlong, idlong2, "#short"};
    CALL(&e, g, jp_store_put_outcome(e.store, id200, o, got_done, &g));
    char key[512], hex[65];
    snprintf(key, sizeof(key), PREFIX "outcome:%s", id200);
    ck_assert(exists(&e, key));
    for (size_t i = 0; i < 4; i++) {
        o->duration_ms = 1000 + (int64_t)i;
        CALL(&e, g, jp_store_put_outcome(e.store, hashed[i], o, got_done, &g));
        sha256_hex(hashed[i], hex);
        snprintf(key, sizeof(key), PREFIX "outcome:#%s", hex);
        ck_assert_msg(exists(&e, key), "hashed key %zu", i);
    }
    snprintf(key, sizeof(key), PREFIX "outcome:#short");
    ck_assert(!exists(&e, key)); /* a raw '#...' key never exists */
    for (size_t i = 0; i < 4; i++) {
        CALL(&e, g, jp_store_get_outcome(e.store, hashed[i], got_outcome, &g));
        ck_assert_int_eq(g.outcome->duration_ms, 1000 + (int64_t)i);
    }

    /* Long cache names and attempt ids are hashed the same way. */
    json_t *v = json_pack("{s:s}", "scimId", "s-long");
    CALL(&e, g, jp_store_cache_set(e.store, "demo", "user", idlong, v, 60, got_done, &g));
    sha256_hex(idlong, hex);
    snprintf(key, sizeof(key), PREFIX "cache:demo:user:#%s", hex);
    ck_assert(exists(&e, key));
    CALL(&e, g, jp_store_cache_get(e.store, "demo", "user", idlong2, got_value, &g));
    ck_assert_ptr_null(g.value);
    CALL(&e, g, jp_store_cache_get(e.store, "demo", "user", idlong, got_value, &g));
    ck_assert_str_eq(json_string_value(json_object_get(g.value, "scimId")), "s-long");
    CALL(&e, g, jp_store_record_attempt(e.store, idlong, 1, 2, "x", 0, got_attempts, &g));
    snprintf(key, sizeof(key), PREFIX "attempts:#%s", hex);
    ck_assert(exists(&e, key));
    json_decref(v);

    got_free(&g);
    jp_outcome_destroy(o);
    env_close(&e);
}
END_TEST

START_TEST(cache_set_get_del)
{
    env_t e;
    env_open(&e, 3000);
    got_t g = {0};

    CALL(&e, g, jp_store_cache_get(e.store, "demo", "user", "jdoe@demo.example", got_value, &g));
    ck_assert_int_eq(g.err, JP_OK);
    ck_assert_ptr_null(g.value);

    json_t *v = json_pack("{s:s,s:s}", "scimId", "scim-9", "accountId", "acc-9");
    CALL(&e, g,
         jp_store_cache_set(e.store, "demo", "user", "jdoe@demo.example", v, 3600, got_done, &g));
    ck_assert_int_eq(g.err, JP_OK);
    long long ttl = ttl_of(&e, PREFIX "cache:demo:user:jdoe@demo.example");
    ck_assert_int_gt(ttl, 3500);
    ck_assert_int_le(ttl, 3600);

    CALL(&e, g, jp_store_cache_get(e.store, "demo", "user", "jdoe@demo.example", got_value, &g));
    ck_assert_ptr_nonnull(g.value);
    ck_assert(json_equal(g.value, v));

    /* Another site or kind is another entry. */
    CALL(&e, g, jp_store_cache_get(e.store, "other", "user", "jdoe@demo.example", got_value, &g));
    ck_assert_ptr_null(g.value);
    CALL(&e, g, jp_store_cache_get(e.store, "demo", "group", "jdoe@demo.example", got_value, &g));
    ck_assert_ptr_null(g.value);

    /* A role name with spaces and a ':' in the name part. */
    json_t *role = json_pack("{s:s}", "roleId", "10002");
    CALL(
        &e, g,
        jp_store_cache_set(e.store, "demo", "role", "DEMO:Project Admins", role, 60, got_done, &g));
    CALL(&e, g, jp_store_cache_get(e.store, "demo", "role", "DEMO:Project Admins", got_value, &g));
    ck_assert(json_equal(g.value, role));
    json_decref(role);

    /* Fire and forget set, then delete. */
    json_t *v2 = json_pack("{s:s}", "scimId", "scim-10");
    got_free(&g);
    ck_assert_int_eq(
        jp_store_cache_set(e.store, "demo", "user", "jdoe@demo.example", v2, 60, NULL, NULL),
        JP_OK);
    CALL(&e, g, jp_store_cache_get(e.store, "demo", "user", "jdoe@demo.example", got_value, &g));
    ck_assert(json_equal(g.value, v2));
    ck_assert_int_le(ttl_of(&e, PREFIX "cache:demo:user:jdoe@demo.example"), 60);
    CALL(&e, g, jp_store_cache_del(e.store, "demo", "user", "jdoe@demo.example", got_done, &g));
    ck_assert_int_eq(g.err, JP_OK);
    CALL(&e, g, jp_store_cache_get(e.store, "demo", "user", "jdoe@demo.example", got_value, &g));
    ck_assert_ptr_null(g.value);
    CALL(&e, g, jp_store_cache_del(e.store, "demo", "user", "jdoe@demo.example", got_done, &g));
    ck_assert_int_eq(g.err, JP_OK); /* already gone: fine */

    /* Refused at once: bad site, kind, name, TTL or value. */
    ck_assert_int_eq(jp_store_cache_set(e.store, "Demo", "user", "n", v, 60, NULL, NULL),
                     JP_ERR_INVALID);
    ck_assert_int_eq(jp_store_cache_set(e.store, "de:mo", "user", "n", v, 60, NULL, NULL),
                     JP_ERR_INVALID);
    ck_assert_int_eq(jp_store_cache_set(e.store, "demo", "us:er", "n", v, 60, NULL, NULL),
                     JP_ERR_INVALID);
    ck_assert_int_eq(jp_store_cache_set(e.store, "demo", "", "n", v, 60, NULL, NULL),
                     JP_ERR_INVALID);
    ck_assert_int_eq(jp_store_cache_set(e.store, "demo", "user", "", v, 60, NULL, NULL),
                     JP_ERR_INVALID);
    ck_assert_int_eq(jp_store_cache_set(e.store, "demo", "user", "n", v, 0, NULL, NULL),
                     JP_ERR_INVALID);
    json_t *arr = json_array();
    ck_assert_int_eq(jp_store_cache_set(e.store, "demo", "user", "n", arr, 60, NULL, NULL),
                     JP_ERR_INVALID);
    json_decref(arr);
    ck_assert_int_eq(jp_store_cache_get(e.store, "demo", "user", "n", NULL, NULL), JP_ERR_INVALID);
    ck_assert_int_eq(jp_store_cache_del(e.store, NULL, "user", "n", NULL, NULL), JP_ERR_INVALID);

    /* A stored value that is not an object is a reported miss. */
    raw_argv(&e, 3, (const char *[]){"SET", PREFIX "cache:demo:user:arr", "[1]"}, NULL);
    CALL(&e, g, jp_store_cache_get(e.store, "demo", "user", "arr", got_value, &g));
    ck_assert_int_eq(g.err, JP_ERR_INVALID);
    ck_assert_ptr_null(g.value);

    testloop_run_for(&e.loop, 20);
    ck_assert_int_eq(g.calls, 1);
    got_free(&g);
    json_decref(v);
    json_decref(v2);
    env_close(&e);
}
END_TEST

START_TEST(attempts_record_get_clear)
{
    env_t e;
    env_open(&e, 3000);
    got_t g = {0};

    CALL(&e, g, jp_store_get_attempts(e.store, "evt-a", got_attempts, &g));
    ck_assert_int_eq(g.err, JP_OK);
    ck_assert_ptr_null(g.attempts);

    CALL(&e, g,
         jp_store_record_attempt(e.store, "evt-a", 1000, 3000, "http_503", 503, got_attempts, &g));
    ck_assert_int_eq(g.err, JP_OK);
    ck_assert_ptr_nonnull(g.attempts);
    ck_assert_int_eq(g.attempts->attempts, 1);
    ck_assert_int_eq(g.attempts->first_ms, 1000);
    ck_assert_int_eq(g.attempts->next_ms, 3000);
    ck_assert_int_eq(json_array_size(g.attempts->history), 1);
    json_t *h0 = json_array_get(g.attempts->history, 0);
    ck_assert_int_eq(json_integer_value(json_object_get(h0, "at")), 1000);
    ck_assert_str_eq(json_string_value(json_object_get(h0, "reason")), "http_503");
    ck_assert_int_eq(json_integer_value(json_object_get(h0, "status")), 503);
    long long ttl = ttl_of(&e, PREFIX "attempts:evt-a");
    ck_assert_int_gt(ttl, 0);
    ck_assert_int_le(ttl, TTL);

    /* Millisecond timestamps of today survive the Lua round trip exactly. */
    int64_t now = 1795338000123LL;
    CALL(
        &e, g,
        jp_store_record_attempt(e.store, "evt-a", now, now + 4000, "timeout", 0, got_attempts, &g));
    ck_assert_int_eq(g.attempts->attempts, 2);
    ck_assert_int_eq(g.attempts->first_ms, 1000); /* kept */
    ck_assert_int_eq(g.attempts->next_ms, now + 4000);
    json_t *h1 = json_array_get(g.attempts->history, 1);
    ck_assert_int_eq(json_integer_value(json_object_get(h1, "at")), now);
    ck_assert_int_eq(json_integer_value(json_object_get(h1, "status")), 0);

    CALL(&e, g, jp_store_get_attempts(e.store, "evt-a", got_attempts, &g));
    ck_assert_int_eq(g.attempts->attempts, 2);
    ck_assert_int_eq(g.attempts->first_ms, 1000);
    ck_assert_int_eq(g.attempts->next_ms, now + 4000);
    ck_assert_int_eq(json_array_size(g.attempts->history), 2);

    /* History keeps the newest JP_STORE_HISTORY_MAX entries. */
    for (int i = 3; i <= 25; i++) {
        char reason[32];
        snprintf(reason, sizeof(reason), "try %d \"q\" \xc3\xa9", i);
        CALL(&e, g,
             jp_store_record_attempt(e.store, "evt-a", now + i, now + i + 1, reason, 429,
                                     got_attempts, &g));
        ck_assert_int_eq(g.attempts->attempts, i);
    }
    ck_assert_int_eq(json_array_size(g.attempts->history), JP_STORE_HISTORY_MAX);
    ck_assert_str_eq(
        json_string_value(json_object_get(json_array_get(g.attempts->history, 0), "reason")),
        "try 6 \"q\" \xc3\xa9");
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_array_get(g.attempts->history, JP_STORE_HISTORY_MAX - 1), "reason")),
                     "try 25 \"q\" \xc3\xa9");

    /* Fire and forget, then clear. */
    got_free(&g);
    ck_assert_int_eq(jp_store_record_attempt(e.store, "evt-a", now, now, "x", 500, NULL, NULL),
                     JP_OK);
    CALL(&e, g, jp_store_get_attempts(e.store, "evt-a", got_attempts, &g));
    ck_assert_int_eq(g.attempts->attempts, 26);
    CALL(&e, g, jp_store_clear_attempts(e.store, "evt-a", got_done, &g));
    ck_assert_int_eq(g.err, JP_OK);
    CALL(&e, g, jp_store_get_attempts(e.store, "evt-a", got_attempts, &g));
    ck_assert_ptr_null(g.attempts);
    CALL(&e, g, jp_store_clear_attempts(e.store, "evt-a", got_done, &g));
    ck_assert_int_eq(g.err, JP_OK);

    /* Refused at once. */
    char longreason[JP_STORE_REASON_MAX + 2];
    memset(longreason, 'r', sizeof(longreason) - 1);
    longreason[sizeof(longreason) - 1] = '\0';
    ck_assert_int_eq(jp_store_record_attempt(e.store, "e", 1, 1, "\xff bad", 0, NULL, NULL),
                     JP_ERR_INVALID);
    ck_assert_int_eq(jp_store_record_attempt(e.store, "e", 1, 1, longreason, 0, NULL, NULL),
                     JP_ERR_INVALID);
    ck_assert_int_eq(jp_store_record_attempt(e.store, "e", 1, 1, "", 0, NULL, NULL),
                     JP_ERR_INVALID);
    ck_assert_int_eq(jp_store_record_attempt(e.store, "e", 1, 1, NULL, 0, NULL, NULL),
                     JP_ERR_INVALID);
    ck_assert_int_eq(jp_store_record_attempt(e.store, "e", -1, 1, "x", 0, NULL, NULL),
                     JP_ERR_INVALID);
    ck_assert_int_eq(jp_store_record_attempt(e.store, "", 1, 1, "x", 0, NULL, NULL),
                     JP_ERR_INVALID);
    ck_assert_int_eq(jp_store_get_attempts(e.store, "e", NULL, NULL), JP_ERR_INVALID);
    ck_assert(!exists(&e, PREFIX "attempts:e"));

    /* Corrupted state is reported. */
    raw_argv(&e, 4, (const char *[]){"HSET", PREFIX "attempts:bad", "attempts", "many"}, NULL);
    CALL(&e, g, jp_store_get_attempts(e.store, "bad", got_attempts, &g));
    ck_assert_int_eq(g.err, JP_ERR_INVALID);
    ck_assert_ptr_null(g.attempts);

    got_free(&g);
    env_close(&e);
}
END_TEST

typedef struct many {
    got_t g[100];
} many_t;

static int many_done(void *arg)
{
    many_t *m = arg;
    for (int i = 0; i < 100; i++)
        if (m->g[i].calls == 0)
            return 0;
    return 1;
}

START_TEST(attempts_concurrent)
{
    /* Two connections (as two workers), 50 calls each, all issued before any
     * reply: the count still ends at exactly 100, each value seen once. */
    env_t e;
    env_open(&e, 5000);
    int up2 = 0;
    jp_redis_t *r2 = new_client(&e.loop, &up2, 5000);
    ck_assert(testloop_run_until(&e.loop, is_up, &up2, 3000));
    char err[256];
    jp_store_t *s2 = jp_store_new(r2, PREFIX, TTL, err, sizeof(err));
    ck_assert_ptr_nonnull(s2);

    many_t *m = calloc(1, sizeof(*m));
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(jp_store_record_attempt(i % 2 ? s2 : e.store, "evt-c", 1000 + i, 5000,
                                                 "http_429", 429, got_attempts, &m->g[i]),
                         JP_OK);
    ck_assert(testloop_run_until(&e.loop, many_done, m, 10000));
    int seen[101] = {0};
    for (int i = 0; i < 100; i++) {
        ck_assert_int_eq(m->g[i].calls, 1);
        ck_assert_int_eq(m->g[i].err, JP_OK);
        int n = m->g[i].attempts->attempts;
        ck_assert(n >= 1 && n <= 100);
        seen[n]++;
        ck_assert_int_le(json_array_size(m->g[i].attempts->history), JP_STORE_HISTORY_MAX);
    }
    for (int n = 1; n <= 100; n++)
        ck_assert_int_eq(seen[n], 1);

    got_t g = {0};
    CALL(&e, g, jp_store_get_attempts(e.store, "evt-c", got_attempts, &g));
    ck_assert_int_eq(g.attempts->attempts, 100);
    ck_assert_int_eq(json_array_size(g.attempts->history), JP_STORE_HISTORY_MAX);

    /* The script survives a flushed script cache (EVALSHA falls back). */
    raw2(&e, "SCRIPT", "FLUSH");
    CALL(&e, g, jp_store_record_attempt(e.store, "evt-c", 1, 1, "x", 0, got_attempts, &g));
    ck_assert_int_eq(g.err, JP_OK);
    ck_assert_int_eq(g.attempts->attempts, 101);

    got_free(&g);
    for (int i = 0; i < 100; i++)
        got_free(&m->g[i]);
    free(m);
    jp_store_destroy(s2);
    jp_redis_destroy(r2);
    env_close(&e);
}
END_TEST

/* Every call of the API, refused at once while Redis is not connected. */
static void assert_all_refused(jp_store_t *s, got_t *g)
{
    jp_outcome_t *o = sample_outcome();
    json_t *v = json_object();
    ck_assert_int_eq(jp_store_get_outcome(s, "e", got_outcome, g), JP_ERR_REDIS);
    ck_assert_int_eq(jp_store_put_outcome(s, "e", o, got_done, g), JP_ERR_REDIS);
    ck_assert_int_eq(jp_store_put_outcome(s, "e", o, NULL, NULL), JP_ERR_REDIS);
    ck_assert_int_eq(jp_store_cache_get(s, "demo", "user", "n", got_value, g), JP_ERR_REDIS);
    ck_assert_int_eq(jp_store_cache_set(s, "demo", "user", "n", v, 9, got_done, g), JP_ERR_REDIS);
    ck_assert_int_eq(jp_store_cache_del(s, "demo", "user", "n", got_done, g), JP_ERR_REDIS);
    ck_assert_int_eq(jp_store_get_attempts(s, "e", got_attempts, g), JP_ERR_REDIS);
    ck_assert_int_eq(jp_store_record_attempt(s, "e", 1, 2, "x", 0, got_attempts, g), JP_ERR_REDIS);
    ck_assert_int_eq(jp_store_clear_attempts(s, "e", got_done, g), JP_ERR_REDIS);
    json_decref(v);
    jp_outcome_destroy(o);
}

START_TEST(redis_down_fails_fast)
{
    /* Before the first connection completes. */
    uv_loop_t loop;
    uv_loop_init(&loop);
    int up = 0;
    jp_redis_t *r = new_client(&loop, &up, 3000);
    char err[256];
    jp_store_t *s = jp_store_new(r, PREFIX, TTL, err, sizeof(err));
    ck_assert_ptr_nonnull(s);
    got_t g = {0};
    assert_all_refused(s, &g);

    /* After Redis went away. */
    ck_assert(testloop_run_until(&loop, is_up, &up, 3000));
    /* Let the script load finish first: a server killed with unread input
     * resets the connection, and hiredis 0.14's libuv adapter ignores poll
     * errors, so the client would only notice at the next command timeout
     * (see the report on jp_redis). */
    raw_t ping;
    memset(&ping, 0, sizeof(ping));
    const char *argv[] = {"PING"};
    ck_assert_int_eq(jp_redis_commandargv(r, raw_cb, &ping, 1, argv, NULL, err, sizeof(err)),
                     JP_OK);
    ck_assert(testloop_run_until(&loop, raw_done, &ping, 3000));
    testredis_kill(&srv);
    ck_assert_msg(testloop_run_until(&loop, is_down, &up, 2000), "still up: %s",
                  jp_redis_last_error(r));
    assert_all_refused(s, &g);
    testloop_run_for(&loop, 100);
    ck_assert_int_eq(g.calls, 0); /* no callback, ever */

    jp_store_destroy(s);
    jp_redis_destroy(r);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

START_TEST(redis_killed_mid_call)
{
    env_t e;
    env_open(&e, 10000);
    /* Hold the connection's replies back so every call is in flight. */
    raw_t sleeper;
    memset(&sleeper, 0, sizeof(sleeper));
    char err[256];
    const char *argv[] = {"DEBUG", "SLEEP", "5"};
    ck_assert_int_eq(
        jp_redis_commandargv(e.redis, raw_cb, &sleeper, 3, argv, NULL, err, sizeof(err)), JP_OK);

    got_t g[6];
    memset(g, 0, sizeof(g));
    jp_outcome_t *o = sample_outcome();
    json_t *v = json_object();
    ck_assert_int_eq(jp_store_get_outcome(e.store, "e", got_outcome, &g[0]), JP_OK);
    ck_assert_int_eq(jp_store_put_outcome(e.store, "e", o, got_done, &g[1]), JP_OK);
    ck_assert_int_eq(jp_store_cache_get(e.store, "demo", "user", "n", got_value, &g[2]), JP_OK);
    ck_assert_int_eq(jp_store_cache_set(e.store, "demo", "user", "n", v, 9, got_done, &g[3]),
                     JP_OK);
    ck_assert_int_eq(jp_store_get_attempts(e.store, "e", got_attempts, &g[4]), JP_OK);
    ck_assert_int_eq(jp_store_record_attempt(e.store, "e", 1, 2, "x", 0, got_attempts, &g[5]),
                     JP_OK);
    testloop_run_for(&e.loop, 50); /* let them reach the server */
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(g[i].calls, 0);
    testredis_kill(&srv);

    for (int i = 0; i < 6; i++) {
        ck_assert_msg(testloop_run_until(&e.loop, got1, &g[i], 3000), "callback %d never came", i);
        ck_assert_int_eq(g[i].err, JP_ERR_REDIS);
        ck_assert_msg(strncmp(g[i].errstr, "store: ", 7) == 0, "%s", g[i].errstr);
    }
    ck_assert_ptr_null(g[0].outcome);
    ck_assert_ptr_null(g[2].value);
    ck_assert_ptr_null(g[4].attempts);
    ck_assert_ptr_null(g[5].attempts);
    ck_assert(testloop_run_until(&e.loop, is_down, &e.up, 1000));
    testloop_run_for(&e.loop, 100);
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(g[i].calls, 1); /* exactly once */
    ck_assert_int_eq(sleeper.calls, 1);

    for (int i = 0; i < 6; i++)
        got_free(&g[i]);
    json_decref(v);
    jp_outcome_destroy(o);
    env_close(&e);
}
END_TEST

START_TEST(destroy_with_requests_in_flight)
{
    env_t e;
    env_open(&e, 3000);
    got_t g = {0}, h = {0};
    ck_assert_int_eq(jp_store_get_outcome(e.store, "evt-x", got_outcome, &g), JP_OK);
    ck_assert_int_eq(jp_store_record_attempt(e.store, "evt-x", 5, 6, "r", 0, got_attempts, &h),
                     JP_OK);
    jp_store_destroy(e.store);
    e.store = NULL;
    ck_assert(testloop_run_until(&e.loop, got1, &g, 3000));
    ck_assert(testloop_run_until(&e.loop, got1, &h, 3000));
    ck_assert_int_eq(g.err, JP_OK);
    ck_assert_ptr_null(g.outcome);
    ck_assert_int_eq(h.attempts->attempts, 1);

    /* And when the Redis client goes too: "closed", once. */
    char err[256];
    e.store = jp_store_new(e.redis, PREFIX, TTL, err, sizeof(err));
    got_t k = {0};
    ck_assert_int_eq(jp_store_get_attempts(e.store, "evt-x", got_attempts, &k), JP_OK);
    jp_store_destroy(e.store);
    e.store = NULL;
    jp_redis_destroy(e.redis);
    e.redis = NULL;
    ck_assert_int_eq(k.calls, 1);
    ck_assert_int_eq(k.err, JP_ERR_REDIS);
    got_free(&g);
    got_free(&h);
    got_free(&k);
    env_close(&e);
}
END_TEST

START_TEST(new_arguments)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    int up = 0;
    jp_redis_t *r = new_client(&loop, &up, 3000);
    char err[256];
    ck_assert_ptr_null(jp_store_new(NULL, PREFIX, TTL, err, sizeof(err)));
    ck_assert_ptr_null(jp_store_new(r, PREFIX, 0, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "TTL"));
    jp_store_t *s = jp_store_new(r, NULL, 1, err, sizeof(err));
    ck_assert_ptr_nonnull(s);
    jp_store_destroy(s);
    jp_store_destroy(NULL);
    jp_store_attempts_free(NULL);
    jp_redis_destroy(r);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("store");
    tcase_add_checked_fixture(tc, start_srv, stop_srv);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, outcome_roundtrip);
    tcase_add_test(tc, keys_binary_and_long);
    tcase_add_test(tc, cache_set_get_del);
    tcase_add_test(tc, attempts_record_get_clear);
    tcase_add_test(tc, attempts_concurrent);
    tcase_add_test(tc, redis_down_fails_fast);
    tcase_add_test(tc, redis_killed_mid_call);
    tcase_add_test(tc, destroy_with_requests_in_flight);
    tcase_add_test(tc, new_arguments);
    suite_add_tcase(s, tc);
    return s;
}

JP_CHECK_MAIN(suite)
