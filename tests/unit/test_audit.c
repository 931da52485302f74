/* The audit module: the canonical form (exact bytes), MACs and key ids (known vectors), the
 * chain (seq, prev, rewind), the verifier against every kind of tampering with the position it
 * must name, and the worker's trail against a real redis-server and the embedded broker
 * (stream.started names where the previous stream ended, records queued while the stream opens
 * or the producer's queue is full come out gap-free).
 *
 * Streams here are built as JSON Lines in memory and fed to the verifier as "t.jsonl" lines,
 * so every expected position is a line number. */
#include "jiraprov/audit.h"
#include "jiraprov/config.h"
#include "jiraprov/kafka_out.h"
#include "jiraprov/log.h"
#include "jiraprov/record.h"
#include "jiraprov/redis.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/check_main.h"
#include "../lib/testkafka.c"
#include "../lib/testloop.c"
#include "../lib/testredis.c"

#define KEY   "unit-test-audit-key-0123456789"
#define KEY2  "another-audit-key-for-rotation"
#define NOW   1795338000123LL
#define FILEN "t.jsonl"

/* ---- building streams --------------------------------------------------------- */

typedef struct lines {
    char **v;
    size_t n;
} lines_t;

static void push(lines_t *l, char *s)
{
    l->v = realloc(l->v, (l->n + 1) * sizeof(*l->v));
    ck_assert_ptr_nonnull(l->v);
    l->v[l->n++] = s;
}

static void insert_at(lines_t *l, size_t at, char *s)
{
    push(l, NULL);
    memmove(l->v + at + 1, l->v + at, (l->n - 1 - at) * sizeof(*l->v));
    l->v[at] = s;
}

static void remove_at(lines_t *l, size_t at)
{
    free(l->v[at]);
    memmove(l->v + at, l->v + at + 1, (l->n - 1 - at) * sizeof(*l->v));
    l->n--;
}

static void free_lines(lines_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static char *sealed_text(jp_audit_chain_t *c, json_t *rec)
{
    char err[256];
    ck_assert_ptr_nonnull(rec);
    ck_assert_msg(jp_audit_chain_seal(c, rec, err, sizeof err) == JP_OK, "%s", err);
    char *s = jp_record_dump(rec, NULL);
    json_decref(rec);
    return s;
}

/* An audit record of a Jira call, as the record module makes them (only its shape matters). */
static json_t *call_record(const char *worker, int i)
{
    char id[64];
    snprintf(id, sizeof id, "evt-%d:audit:1@%lld", i, NOW + i);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:{s:s, s:s, s:s, s:s, "
                     "s:{s:s, s:s}, s:s, s:s, s:s, s:s, s:i, s:s, s:s, s:[s], s:s, s:s, s:I}}",
                     "specversion", "1.0", "id", id, "source", "jiraprov://worker/w", "type",
                     JP_RECORD_TYPE_AUDIT, "subject", "jdoe@demo.example", "time",
                     "2026-11-22T09:00:00.123Z", "datacontenttype", "application/json", "jirasite",
                     "demo", "idhubactor", "alice@idhub.example", "data", "eventId", id,
                     "eventType", "account.update", "actor", "alice@idhub.example", "site", "demo",
                     "target", "kind", "account", "login", "jdoe@demo.example", "operation",
                     "scim.user.update", "api", "scim", "method", "PATCH", "path",
                     "/scim/directory/d/Users/u", "status", 200, "outcome", "succeeded",
                     "eventOutcome", "succeeded", "changedAttributes", "email", "worker", worker,
                     "startedAt", "2026-11-22T09:00:00.123Z", "durationUs", (json_int_t)1000 + i);
}

/* A stream of n records: stream.started (with `previous` when given), n-2 calls, and
 * stream.stopped when `stop`; appended to l. The chain is returned for its last mac. */
static jp_audit_chain_t *build_stream(lines_t *l, const char *key, const char *stream,
                                      const char *worker, size_t n, const json_t *previous,
                                      int stop)
{
    char err[256];
    jp_audit_chain_t *c = jp_audit_chain_new(key, key ? strlen(key) : 0, stream, err, sizeof err);
    ck_assert_msg(c != NULL, "%s", err);
    json_t *extra =
        previous ? json_pack("{s:O}", "previous", previous)
                 : json_pack("{s:s}", "previousUnknown", "no earlier stream of this instance");
    push(l, sealed_text(c, jp_record_audit_stream(stream, "started", extra, worker, NOW)));
    json_decref(extra);
    for (size_t i = 1; i < n; i++) {
        if (stop && i == n - 1)
            push(l, sealed_text(c, jp_record_audit_stream(stream, "stopped", NULL, worker,
                                                          NOW + (int64_t)i)));
        else
            push(l, sealed_text(c, call_record(worker, (int)i)));
    }
    return c;
}

static void build_simple(lines_t *l, size_t n)
{
    jp_audit_chain_destroy(build_stream(l, KEY, "w1:1:00000000000000aa", "w1", n, NULL, 1));
}

/* ---- verifying ------------------------------------------------------------------ */

static jp_audit_verifier_t *verify_keys(const lines_t *l, const char *const *keys, int allow)
{
    jp_audit_key_t k[4];
    size_t nk = 0;
    for (; keys && keys[nk]; nk++)
        k[nk] = (jp_audit_key_t){keys[nk], strlen(keys[nk])};
    char err[256];
    jp_audit_verifier_t *v = jp_audit_verifier_new(k, nk, allow, err, sizeof err);
    ck_assert_msg(v != NULL, "%s", err);
    for (size_t i = 0; i < l->n; i++) {
        jp_audit_pos_t pos = {FILEN, (long)i + 1, -1, 0};
        ck_assert_int_eq(jp_audit_verifier_add(v, l->v[i], strlen(l->v[i]), &pos), JP_OK);
    }
    ck_assert_int_eq(jp_audit_verifier_finish(v), JP_OK);
    return v;
}

static jp_audit_verifier_t *verify(const lines_t *l)
{
    static const char *const keys[] = {KEY, NULL};
    return verify_keys(l, keys, 0);
}

static void dump_problems(const jp_audit_verifier_t *v)
{
    const jp_audit_problem_t *p;
    size_t n = jp_audit_verifier_problems(v, &p);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, "  %s: %s\n", jp_audit_problem_name(p[i].kind), p[i].message);
}

/* Asserts exactly one problem, of `kind`, for seq (first..last) at `line` (0: not checked),
 * whose message contains `text` (NULL: not checked). */
static void expect_one(const jp_audit_verifier_t *v, jp_audit_problem_kind_t kind, int64_t seq,
                       int64_t seq_last, long line, const char *text)
{
    const jp_audit_problem_t *p;
    size_t n = jp_audit_verifier_problems(v, &p);
    if (n != 1)
        dump_problems(v);
    ck_assert_uint_eq(n, 1);
    ck_assert_msg(p[0].kind == kind, "kind %s, expected %s: %s", jp_audit_problem_name(p[0].kind),
                  jp_audit_problem_name(kind), p[0].message);
    ck_assert_int_eq(p[0].seq, seq);
    ck_assert_int_eq(p[0].seq_last, seq_last);
    if (line) {
        ck_assert_int_eq(p[0].pos.line, line);
        ck_assert_str_eq(p[0].pos.source, FILEN);
    }
    if (text)
        ck_assert_msg(strstr(p[0].message, text), "\"%s\" not in: %s", text, p[0].message);
}

static void expect_clean(const jp_audit_verifier_t *v)
{
    const jp_audit_problem_t *p;
    size_t n = jp_audit_verifier_problems(v, &p);
    if (n)
        dump_problems(v);
    ck_assert_uint_eq(n, 0);
}

/* Changes data.<field> of a line, keeping its chain member as it was. */
static void edit_line(lines_t *l, size_t at, const char *field, const char *value)
{
    json_t *rec = json_loads(l->v[at], 0, NULL);
    ck_assert_ptr_nonnull(rec);
    json_object_set_new(json_object_get(rec, "data"), field, json_string(value));
    free(l->v[at]);
    l->v[at] = jp_record_dump(rec, NULL);
    json_decref(rec);
}

/* ---- canonical form, MACs, ids ---------------------------------------------------- */

START_TEST(canonical_exact_bytes)
{
    json_t *rec = json_loads(
        "{\"b\":1,\"a\":{\"z\":\"q\\\"b\\\\s\\n\\t\\r\\b\\f\\u0001\\u001f\\u007f/\\u00e9\\u2028"
        "\\ud83d\\ude00\",\"y\":[true,false,null,-5,{\"mac\":\"kept\"}]},"
        "\"data\":{\"chain\":{\"seq\":1,\"mac\":\"dropped\"},\"mac\":\"kept too\"},"
        "\"\\u00e9\":0,\"Z\":0}",
        0, NULL);
    ck_assert_ptr_nonnull(rec);
    char *out, err[128];
    size_t len;
    ck_assert_int_eq(jp_audit_canonical(rec, &out, &len, err, sizeof err), JP_OK);
    const char *want = "{\"Z\":0,\"a\":{\"y\":[true,false,null,-5,{\"mac\":\"kept\"}],"
                       "\"z\":\"q\\\"b\\\\s\\n\\t\\r\\b\\f\\u0001\\u001f\x7f/\xc3\xa9\xe2\x80\xa8"
                       "\xf0\x9f\x98\x80\"},\"b\":1,\"data\":{\"chain\":{\"seq\":1},\"mac\":\"kept "
                       "too\"},\"\xc3\xa9\":0}";
    ck_assert_str_eq(out, want);
    ck_assert_uint_eq(len, strlen(want));
    free(out);
    json_decref(rec);
}
END_TEST

START_TEST(canonical_refuses_reals_and_big_integers)
{
    char *out = (char *)1, err[256];
    size_t len;
    json_t *rec = json_loads("{\"data\":{\"durationUs\":1.5}}", 0, NULL);
    ck_assert_int_eq(jp_audit_canonical(rec, &out, &len, err, sizeof err), JP_ERR_INVALID);
    ck_assert_ptr_null(out);
    ck_assert_str_eq(err, "data.durationUs: a real number has no canonical form");
    json_decref(rec);
    rec = json_loads("{\"a\":[1,9007199254740992]}", 0, NULL);
    ck_assert_int_eq(jp_audit_canonical(rec, &out, &len, err, sizeof err), JP_ERR_INVALID);
    ck_assert_str_eq(err, "a[1]: an integer beyond 2^53-1 has no canonical form");
    json_decref(rec);
    rec = json_loads("{\"a\":-9007199254740991}", 0, NULL);
    ck_assert_int_eq(jp_audit_canonical(rec, &out, &len, err, sizeof err), JP_OK);
    ck_assert_str_eq(out, "{\"a\":-9007199254740991}");
    free(out);
    json_decref(rec);
}
END_TEST

START_TEST(mac_and_key_id_vectors)
{
    char mac[JP_AUDIT_MAC_HEX], id[JP_AUDIT_KEY_ID_HEX], id2[JP_AUDIT_KEY_ID_HEX];
    /* RFC 4231 test case 2 */
    jp_audit_mac("Jefe", 4, "what do ya want for nothing?", 28, mac);
    ck_assert_str_eq(mac, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    /* FIPS 180-2: SHA-256("abc"), the unkeyed form */
    jp_audit_mac(NULL, 0, "abc", 3, mac);
    ck_assert_str_eq(mac, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    jp_audit_key_id(KEY, strlen(KEY), id);
    jp_audit_mac(KEY, strlen(KEY), "jiraprov-audit-key-id", 21, mac);
    ck_assert_uint_eq(strlen(id), 16);
    ck_assert(!strncmp(id, mac, 16));
    jp_audit_key_id(KEY2, strlen(KEY2), id2);
    ck_assert_str_ne(id, id2);
}
END_TEST

START_TEST(stream_ids)
{
    char a[JP_AUDIT_STREAM_MAX], b[JP_AUDIT_STREAM_MAX], err[256];
    ck_assert_int_eq(jp_audit_stream_id("worker-7", NOW, a, err, sizeof err), JP_OK);
    ck_assert_int_eq(jp_audit_stream_id("worker-7", NOW, b, err, sizeof err), JP_OK);
    ck_assert(!strncmp(a, "worker-7:1795338000123:", 23));
    ck_assert_uint_eq(strlen(a), 23 + 16);
    ck_assert_str_ne(a, b); /* same instance, same millisecond: still two streams */
    char longid[400];
    memset(longid, 'x', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    ck_assert_int_eq(jp_audit_stream_id(longid, NOW, a, err, sizeof err), JP_ERR_INVALID);
    ck_assert_int_eq(jp_audit_stream_id("", NOW, a, err, sizeof err), JP_ERR_INVALID);
}
END_TEST

START_TEST(record_audit_stream_builder)
{
    json_t *extra = json_pack("{s:s}", "previousUnknown", "why");
    json_t *r = jp_record_audit_stream("s:1:ab", "started", extra, "w", NOW);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(json_string_value(json_object_get(r, "id")),
                     "s:1:ab:audit:stream.started@1795338000123");
    ck_assert_str_eq(json_string_value(json_object_get(r, "subject")), "s:1:ab");
    ck_assert_ptr_null(json_object_get(r, "jirasite"));
    json_t *d = json_object_get(r, "data");
    ck_assert_str_eq(json_string_value(json_object_get(d, "operation")), "stream.started");
    ck_assert_str_eq(json_string_value(json_object_get(d, "outcome")), "started");
    ck_assert_str_eq(json_string_value(json_object_get(d, "previousUnknown")), "why");
    json_decref(r);
    json_decref(extra);
    ck_assert_ptr_null(jp_record_audit_stream("s", "paused", NULL, "w", NOW));
    ck_assert_ptr_null(jp_record_audit_stream("", "stopped", NULL, "w", NOW));
}
END_TEST

/* ---- the chain ---------------------------------------------------------------------- */

/* The published text is the canonical form with the mac as data.chain's first member: it
 * parses to the sealed tree, and taking the mac out gives back what the mac covers. */
START_TEST(seal_text_is_the_sealed_record)
{
    char err[256];
    jp_audit_chain_t *c = jp_audit_chain_new(KEY, strlen(KEY), "s:1:ab", err, sizeof err);
    ck_assert_ptr_nonnull(c);
    for (int i = 0; i < 3; i++) {
        json_t *rec = call_record("w", i);
        char *text, *canon;
        size_t len, clen;
        ck_assert_int_eq(jp_audit_chain_seal_text(c, rec, &text, &len, err, sizeof err), JP_OK);
        ck_assert_uint_eq(strlen(text), len);
        json_t *back = json_loadb(text, len, 0, NULL);
        ck_assert_msg(json_equal(back, rec), "published: %s", text);
        const char *mac = json_string_value(
            json_object_get(json_object_get(json_object_get(rec, "data"), "chain"), "mac"));
        ck_assert_str_eq(mac, jp_audit_chain_last_mac(c));
        ck_assert_int_eq(jp_audit_canonical(rec, &canon, &clen, err, sizeof err), JP_OK);
        char spliced[128];
        snprintf(spliced, sizeof spliced, "\"chain\":{\"mac\":\"%s\",", mac);
        const char *at = strstr(text, spliced);
        ck_assert_ptr_nonnull(at);
        size_t head = (size_t)(at - text) + strlen("\"chain\":{");
        size_t cut = strlen(spliced) - strlen("\"chain\":{");
        ck_assert_uint_eq(len, clen + cut);
        ck_assert(memcmp(text, canon, head) == 0);
        ck_assert(memcmp(text + head + cut, canon + head, clen - head) == 0);
        free(canon);
        free(text);
        json_decref(back);
        json_decref(rec);
    }
    jp_audit_chain_destroy(c);
}
END_TEST

START_TEST(chain_links_and_rewind)
{
    char err[256];
    ck_assert_ptr_null(jp_audit_chain_new("short", 5, "s", err, sizeof err));
    ck_assert_ptr_null(jp_audit_chain_new(KEY, strlen(KEY), "", err, sizeof err));
    jp_audit_chain_t *c = jp_audit_chain_new(KEY, strlen(KEY), "s:1:ab", err, sizeof err);
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(jp_audit_chain_last_mac(c), "0000000000000000000000000000000000000000000000"
                                                 "000000000000000000");
    char prev[JP_AUDIT_MAC_HEX], id[JP_AUDIT_KEY_ID_HEX];
    jp_audit_key_id(KEY, strlen(KEY), id);
    for (int i = 0; i < 3; i++) {
        snprintf(prev, sizeof prev, "%s", jp_audit_chain_last_mac(c));
        json_t *rec = call_record("w", i);
        ck_assert_int_eq(jp_audit_chain_seal(c, rec, err, sizeof err), JP_OK);
        json_t *ch = json_object_get(json_object_get(rec, "data"), "chain");
        ck_assert_str_eq(json_string_value(json_object_get(ch, "stream")), "s:1:ab");
        ck_assert_int_eq(json_integer_value(json_object_get(ch, "seq")), i);
        ck_assert_str_eq(json_string_value(json_object_get(ch, "prev")), prev);
        ck_assert_str_eq(json_string_value(json_object_get(ch, "alg")), JP_AUDIT_ALG_HMAC);
        ck_assert_str_eq(json_string_value(json_object_get(ch, "keyId")), id);
        /* the mac is the HMAC of the canonical form without it */
        char *canon, mac[JP_AUDIT_MAC_HEX];
        size_t len;
        ck_assert_int_eq(jp_audit_canonical(rec, &canon, &len, err, sizeof err), JP_OK);
        ck_assert_ptr_null(strstr(canon, "\"mac\""));
        jp_audit_mac(KEY, strlen(KEY), canon, len, mac);
        ck_assert_str_eq(json_string_value(json_object_get(ch, "mac")), mac);
        ck_assert_str_eq(jp_audit_chain_last_mac(c), mac);
        free(canon);
        json_decref(rec);
    }
    ck_assert_int_eq(jp_audit_chain_next_seq(c), 3);
    /* A record that could not be produced gives its place to the next one. */
    snprintf(prev, sizeof prev, "%s", jp_audit_chain_last_mac(c));
    json_t *lost = call_record("w", 9);
    ck_assert_int_eq(jp_audit_chain_seal(c, lost, err, sizeof err), JP_OK);
    ck_assert_int_eq(jp_audit_chain_rewind(c), 0);
    ck_assert_int_eq(jp_audit_chain_rewind(c), -1); /* once only */
    ck_assert_int_eq(jp_audit_chain_next_seq(c), 3);
    ck_assert_str_eq(jp_audit_chain_last_mac(c), prev);
    json_decref(lost);
    /* Not an object with data: refused, nothing advances. */
    json_t *bad = json_pack("{s:s}", "type", "x");
    ck_assert_int_eq(jp_audit_chain_seal(c, bad, err, sizeof err), JP_ERR_INVALID);
    json_decref(bad);
    bad = json_pack("{s:{s:f}}", "data", "x", 1.5);
    ck_assert_int_eq(jp_audit_chain_seal(c, bad, err, sizeof err), JP_ERR_INVALID);
    ck_assert_ptr_null(json_object_get(json_object_get(bad, "data"), "chain"));
    json_decref(bad);
    ck_assert_int_eq(jp_audit_chain_next_seq(c), 3);
    jp_audit_chain_destroy(c);

    c = jp_audit_chain_new(NULL, 0, "u:1:ab", err, sizeof err); /* unkeyed */
    json_t *rec = call_record("w", 1);
    ck_assert_int_eq(jp_audit_chain_seal(c, rec, err, sizeof err), JP_OK);
    json_t *ch = json_object_get(json_object_get(rec, "data"), "chain");
    ck_assert_str_eq(json_string_value(json_object_get(ch, "alg")), JP_AUDIT_ALG_UNKEYED);
    ck_assert_ptr_null(json_object_get(ch, "keyId"));
    json_decref(rec);
    jp_audit_chain_destroy(c);
}
END_TEST

/* ---- the verifier: clean runs --------------------------------------------------------- */

START_TEST(verify_clean_stream)
{
    lines_t l = {0};
    build_simple(&l, 10);
    insert_at(&l, 4, strdup("   ")); /* blank lines are not records */
    jp_audit_verifier_t *v = verify(&l);
    expect_clean(v);
    ck_assert_uint_eq(jp_audit_verifier_records(v), 10);
    const jp_audit_stream_info_t *s;
    ck_assert_uint_eq(jp_audit_verifier_streams(v, &s), 1);
    ck_assert_str_eq(s[0].stream, "w1:1:00000000000000aa");
    ck_assert_str_eq(s[0].worker, "w1");
    ck_assert_uint_eq(s[0].records, 10);
    ck_assert_int_eq(s[0].first_seq, 0);
    ck_assert_int_eq(s[0].last_seq, 9);
    ck_assert_int_eq(s[0].stopped, 1);
    ck_assert_int_eq(s[0].continued, 0);
    ck_assert_int_eq(s[0].ok, 1);
    jp_audit_verifier_destroy(v);
    free_lines(&l);
}
END_TEST

START_TEST(verify_interleaved_streams_and_key_rotation)
{
    lines_t a = {0}, b = {0}, all = {0};
    jp_audit_chain_destroy(build_stream(&a, KEY, "wa:1:01", "wa", 6, NULL, 0));
    jp_audit_chain_destroy(build_stream(&b, KEY2, "wb:1:02", "wb", 5, NULL, 1));
    for (size_t i = 0; i < 6; i++) { /* two workers writing at once, as in a real partition */
        push(&all, strdup(a.v[i]));
        if (i < 5)
            push(&all, strdup(b.v[i]));
    }
    static const char *const both[] = {KEY, KEY2, NULL};
    jp_audit_verifier_t *v = verify_keys(&all, both, 0);
    expect_clean(v);
    const jp_audit_stream_info_t *s;
    ck_assert_uint_eq(jp_audit_verifier_streams(v, &s), 2);
    ck_assert_int_eq(s[0].stopped, 0); /* open: the worker may still run */
    ck_assert_int_eq(s[1].stopped, 1);
    jp_audit_verifier_destroy(v);
    /* Without KEY2 the second stream cannot be verified, and says which key it needs. */
    v = verify(&all);
    char id2[JP_AUDIT_KEY_ID_HEX];
    jp_audit_key_id(KEY2, strlen(KEY2), id2);
    expect_one(v, JP_AUDIT_UNKNOWN_KEY, 0, 0, 2, id2);
    jp_audit_verifier_destroy(v);
    free_lines(&a);
    free_lines(&b);
    free_lines(&all);
}
END_TEST

/* ---- the verifier: each kind of tampering, located ----------------------------------------- */

START_TEST(tamper_edit_a_field)
{
    lines_t l = {0};
    build_simple(&l, 10);
    edit_line(&l, 4, "actor", "mallory@idhub.example"); /* line 5, seq 4 */
    jp_audit_verifier_t *v = verify(&l);
    expect_one(v, JP_AUDIT_ALTERED, 4, 4, 5, "t.jsonl:5: seq 4 of stream w1:1:00000000000000aa");
    jp_audit_verifier_destroy(v);
    free_lines(&l);

    /* Changing the chain member itself (here: the seq) is caught the same way. */
    build_simple(&l, 10);
    json_t *rec = json_loads(l.v[6], 0, NULL);
    json_object_set_new(json_object_get(json_object_get(rec, "data"), "chain"), "seq",
                        json_integer(7));
    free(l.v[6]);
    l.v[6] = jp_record_dump(rec, NULL);
    json_decref(rec);
    v = verify(&l);
    const jp_audit_problem_t *p;
    size_t n = jp_audit_verifier_problems(v, &p);
    ck_assert_uint_ge(n, 1);
    int located = 0;
    for (size_t i = 0; i < n; i++)
        located |= p[i].pos.line == 7 && p[i].kind == JP_AUDIT_FORGED;
    ck_assert_msg(located, "the changed record at line 7 is not reported");
    jp_audit_verifier_destroy(v);
    free_lines(&l);
}
END_TEST

START_TEST(tamper_drop)
{
    lines_t l = {0};
    build_simple(&l, 10);
    remove_at(&l, 5); /* seq 5 */
    jp_audit_verifier_t *v = verify(&l);
    expect_one(v, JP_AUDIT_DROPPED, 5, 5, 6,
               "seq 5 missing (dropped) between seq 4 at t.jsonl:5 "
               "and seq 6 at t.jsonl:6");
    jp_audit_verifier_destroy(v);
    free_lines(&l);

    build_simple(&l, 10);
    remove_at(&l, 3);
    remove_at(&l, 3);
    remove_at(&l, 3); /* seq 3..5 */
    v = verify(&l);
    expect_one(v, JP_AUDIT_DROPPED, 3, 5, 4, "seq 3..5 missing");
    jp_audit_verifier_destroy(v);
    free_lines(&l);

    build_simple(&l, 10);
    remove_at(&l, 0); /* the head */
    v = verify(&l);
    expect_one(v, JP_AUDIT_DROPPED, 0, 0, 1, "begins at seq 1");
    jp_audit_verifier_destroy(v);
    free_lines(&l);
}
END_TEST

START_TEST(tamper_reorder)
{
    lines_t l = {0};
    build_simple(&l, 10);
    char *t = l.v[4]; /* swap seq 4 and 5 */
    l.v[4] = l.v[5];
    l.v[5] = t;
    jp_audit_verifier_t *v = verify(&l);
    const jp_audit_problem_t *p;
    ck_assert_uint_eq(jp_audit_verifier_problems(v, &p), 1);
    ck_assert_int_eq(p[0].kind, JP_AUDIT_REORDERED);
    ck_assert(p[0].pos.line == 5 || p[0].pos.line == 6);
    ck_assert(strstr(p[0].message, "out of order"));
    jp_audit_verifier_destroy(v);
    free_lines(&l);

    /* One record moved far away is one finding, wherever it went. */
    build_simple(&l, 12);
    char *moved = l.v[2];
    memmove(l.v + 2, l.v + 3, 9 * sizeof(*l.v));
    l.v[11] = moved; /* seq 2 now last */
    v = verify(&l);
    expect_one(v, JP_AUDIT_REORDERED, 2, 2, 12, "comes last, after seq 11 at t.jsonl:11");
    jp_audit_verifier_destroy(v);
    free_lines(&l);

    build_simple(&l, 12);
    moved = l.v[9];
    memmove(l.v + 2, l.v + 1, 8 * sizeof(*l.v));
    l.v[1] = moved; /* seq 9 now second */
    v = verify(&l);
    expect_one(v, JP_AUDIT_REORDERED, 9, 9, 2, "between seq 0 at t.jsonl:1 and seq 1 at t.jsonl:3");
    jp_audit_verifier_destroy(v);
    free_lines(&l);
}
END_TEST

START_TEST(tamper_duplicate)
{
    lines_t l = {0};
    build_simple(&l, 10);
    insert_at(&l, 7, strdup(l.v[3])); /* seq 3 again, at line 8 */
    jp_audit_verifier_t *v = verify(&l);
    expect_one(v, JP_AUDIT_DUPLICATE, 3, 3, 8, "second copy of the record at t.jsonl:4 (replayed)");
    jp_audit_verifier_destroy(v);
    free_lines(&l);
}
END_TEST

START_TEST(tamper_insert_forged)
{
    /* A copy of seq 4 with a different actor, inserted after it: without the key its MAC
     * cannot be made to match. */
    lines_t l = {0};
    build_simple(&l, 10);
    insert_at(&l, 5, strdup(l.v[4]));
    edit_line(&l, 5, "actor", "eve@idhub.example");
    jp_audit_verifier_t *v = verify(&l);
    expect_one(v, JP_AUDIT_FORGED, 4, 4, 6, "the genuine seq 4 is at t.jsonl:5");
    jp_audit_verifier_destroy(v);
    free_lines(&l);

    /* A forger sealing with a key of their own, under the real key id. */
    build_simple(&l, 10);
    jp_audit_chain_t *fake =
        jp_audit_chain_new("forger-key-0123456789", 21, "w1:1:00000000000000aa", NULL, 0);
    for (int i = 0; i < 10; i++) /* bring it to seq 10, after the stream's end */
        free(sealed_text(fake, call_record("w1", i)));
    json_t *rec = call_record("w1", 99);
    char err[128];
    ck_assert_int_eq(jp_audit_chain_seal(fake, rec, err, sizeof err), JP_OK);
    char id[JP_AUDIT_KEY_ID_HEX];
    jp_audit_key_id(KEY, strlen(KEY), id);
    json_object_set_new(json_object_get(json_object_get(rec, "data"), "chain"), "keyId",
                        json_string(id));
    push(&l, jp_record_dump(rec, NULL));
    json_decref(rec);
    jp_audit_chain_destroy(fake);
    v = verify(&l);
    expect_one(v, JP_AUDIT_ALTERED, 10, 10, 11, "does not verify (MAC mismatch)");
    jp_audit_verifier_destroy(v);
    free_lines(&l);

    /* An audit record without a chain at all. */
    build_simple(&l, 5);
    json_t *plain = call_record("w1", 3);
    insert_at(&l, 2, jp_record_dump(plain, NULL));
    json_decref(plain);
    v = verify(&l);
    expect_one(v, JP_AUDIT_UNSEALED, -1, -1, 3, "has no data.chain");
    jp_audit_verifier_destroy(v);
    free_lines(&l);
}
END_TEST

START_TEST(tamper_malformed_lines)
{
    lines_t l = {0};
    build_simple(&l, 6);
    insert_at(&l, 1, strdup("not json"));
    /* duplicate keys: two parsers could read two different records */
    char *dup = malloc(strlen(l.v[3]) + 32);
    snprintf(dup, strlen(l.v[3]) + 32, "{\"type\":\"x\",%s", l.v[3] + 1);
    insert_at(&l, 3, dup);
    insert_at(&l, 4, strdup("{\"type\":\"com.jiraprov.result\",\"data\":{}}"));
    jp_audit_verifier_t *v = verify(&l);
    const jp_audit_problem_t *p;
    ck_assert_uint_eq(jp_audit_verifier_problems(v, &p), 3);
    ck_assert_int_eq(p[0].kind, JP_AUDIT_MALFORMED);
    ck_assert_int_eq(p[0].pos.line, 2);
    ck_assert_int_eq(p[1].kind, JP_AUDIT_MALFORMED);
    ck_assert_int_eq(p[1].pos.line, 4);
    ck_assert(strstr(p[1].message, "duplicate"));
    ck_assert_int_eq(p[2].kind, JP_AUDIT_MALFORMED);
    ck_assert_int_eq(p[2].pos.line, 5);
    ck_assert(strstr(p[2].message, "not an audit record"));
    jp_audit_verifier_destroy(v);
    free_lines(&l);

    /* A real number slipped into a sealed record: no canonical form, so not verifiable. */
    build_simple(&l, 6);
    json_t *rec = json_loads(l.v[2], 0, NULL);
    json_object_set_new(json_object_get(rec, "data"), "durationUs", json_real(1000.5));
    free(l.v[2]);
    l.v[2] = jp_record_dump(rec, NULL);
    json_decref(rec);
    v = verify(&l);
    ck_assert_uint_eq(jp_audit_verifier_problems(v, &p), 2);
    ck_assert_int_eq(p[0].kind, JP_AUDIT_MALFORMED);
    ck_assert_int_eq(p[0].pos.line, 3);
    ck_assert(strstr(p[0].message, "real number"));
    ck_assert_int_eq(p[1].kind, JP_AUDIT_DROPPED); /* and seq 2 is then missing */
    jp_audit_verifier_destroy(v);
    free_lines(&l);
}
END_TEST

/* ---- the verifier: streams continuing each other --------------------------------------------- */

/* Where chain c got to, as a stream.started's "previous". */
static json_t *anchor(jp_audit_chain_t *c)
{
    return json_pack("{s:s, s:I, s:s}", "stream", jp_audit_chain_stream(c), "seq",
                     (json_int_t)(jp_audit_chain_next_seq(c) - 1), "mac",
                     jp_audit_chain_last_mac(c));
}

START_TEST(successor_streams)
{
    lines_t l = {0};
    jp_audit_chain_t *a = build_stream(&l, KEY, "w1:1:0a", "w1", 8, NULL, 0);
    json_t *prev = anchor(a);
    jp_audit_chain_destroy(build_stream(&l, KEY, "w1:2:0b", "w1", 4, prev, 1));
    jp_audit_verifier_t *v = verify(&l);
    expect_clean(v);
    const jp_audit_stream_info_t *s;
    ck_assert_uint_eq(jp_audit_verifier_streams(v, &s), 2);
    ck_assert_int_eq(s[0].continued, 1);
    ck_assert_str_eq(s[1].predecessor, "w1:1:0a");
    jp_audit_verifier_destroy(v);

    /* The old stream's tail removed: the successor's anchor shows it. */
    remove_at(&l, 7);
    remove_at(&l, 6);
    v = verify(&l);
    expect_one(v, JP_AUDIT_TRUNCATED, 6, 7, 6, "stream w1:1:0a ends at seq 5 (t.jsonl:6)");
    jp_audit_verifier_destroy(v);

    /* The whole old stream removed. */
    for (int i = 0; i < 6; i++)
        remove_at(&l, 0);
    v = verify(&l);
    expect_one(v, JP_AUDIT_MISSING_PREDECESSOR, 0, 0, 1, "continues stream w1:1:0a");
    jp_audit_verifier_destroy(v);
    free_lines(&l);
    json_decref(prev);
    jp_audit_chain_destroy(a);

    /* An anchor that lags the true end (Redis is written behind) is fine. */
    a = build_stream(&l, KEY, "w1:1:0a", "w1", 5, NULL, 0);
    prev = anchor(a);
    for (int i = 5; i < 8; i++)
        push(&l, sealed_text(a, call_record("w1", i)));
    jp_audit_chain_destroy(build_stream(&l, KEY, "w1:2:0b", "w1", 3, prev, 0));
    v = verify(&l);
    expect_clean(v);
    jp_audit_verifier_destroy(v);
    free_lines(&l);
    json_decref(prev);

    /* An anchor naming a mac the predecessor's record does not have. */
    prev = json_pack("{s:s, s:i, s:s}", "stream", "w1:1:0a", "seq", 4, "mac",
                     "00000000000000000000000000000000000000000000000000000000000000ff");
    jp_audit_chain_destroy(a);
    a = build_stream(&l, KEY, "w1:1:0a", "w1", 8, NULL, 0);
    jp_audit_chain_destroy(build_stream(&l, KEY, "w1:2:0b", "w1", 3, prev, 0));
    v = verify(&l);
    expect_one(v, JP_AUDIT_BROKEN_LINK, 4, 4, 5, "anchors on");
    jp_audit_verifier_destroy(v);
    free_lines(&l);
    json_decref(prev);
    jp_audit_chain_destroy(a);
}
END_TEST

START_TEST(unkeyed_streams)
{
    lines_t l = {0};
    jp_audit_chain_destroy(build_stream(&l, NULL, "u:1:01", "u", 5, NULL, 1));
    jp_audit_verifier_t *v = verify(&l);
    expect_one(v, JP_AUDIT_UNKEYED, 0, 0, 1, "sealed without a key");
    jp_audit_verifier_destroy(v);
    v = verify_keys(&l, NULL, 1); /* allowed: only accidents are checked */
    expect_clean(v);
    jp_audit_verifier_destroy(v);
    edit_line(&l, 2, "actor", "x");
    v = verify_keys(&l, NULL, 1);
    expect_one(v, JP_AUDIT_ALTERED, 2, 2, 3, NULL);
    jp_audit_verifier_destroy(v);
    free_lines(&l);
}
END_TEST

START_TEST(kafka_positions_and_split_streams)
{
    lines_t l = {0};
    build_simple(&l, 6);
    jp_audit_verifier_t *v =
        jp_audit_verifier_new(&(jp_audit_key_t){KEY, strlen(KEY)}, 1, 0, NULL, 0);
    for (size_t i = 0; i < l.n; i++) {
        jp_audit_pos_t pos = {"jiraprov.audit", 0, i == 4 ? 3 : 1, 100 + (int64_t)i};
        ck_assert_int_eq(jp_audit_verifier_add(v, l.v[i], strlen(l.v[i]), &pos), JP_OK);
    }
    jp_audit_verifier_finish(v);
    const jp_audit_problem_t *p;
    ck_assert_uint_eq(jp_audit_verifier_problems(v, &p), 1);
    ck_assert_int_eq(p[0].kind, JP_AUDIT_SPLIT);
    ck_assert_int_eq(p[0].pos.partition, 3);
    ck_assert_int_eq(p[0].pos.offset, 104);
    ck_assert(strstr(p[0].message, "jiraprov.audit partition 3 offset 104"));
    jp_audit_verifier_destroy(v);
    free_lines(&l);
}
END_TEST

/* ---- the trail, against Redis and Kafka ------------------------------------------------------ */

static testkafka_t broker;
static testredis_t redis_srv;

typedef struct trail_env {
    uv_loop_t loop;
    jp_config_t *cfg;
    jp_redis_t *redis;
    jp_kafka_out_t *out;
    int connected;
    int delivered, failed;
} trail_env_t;

static void on_state(void *opaque, int connected)
{
    ((trail_env_t *)opaque)->connected = connected;
}

static int is_connected(void *arg)
{
    return ((trail_env_t *)arg)->connected;
}

static void counted(jp_err_t err, jp_class_t cls, const char *errstr, void *opaque)
{
    trail_env_t *e = opaque;
    (void)cls;
    (void)errstr;
    if (err == JP_OK)
        e->delivered++;
    else
        e->failed++;
}

static void env_open(trail_env_t *e, const char *topic, const char *extra_kafka, int redis_port)
{
    char yaml[2048], err[512];
    memset(e, 0, sizeof(*e));
    snprintf(yaml, sizeof yaml,
             "kafka:\n  bootstrap.servers: \"%s\"\n%s"
             "topics:\n  audit: %s\n"
             "redis:\n  url: redis://127.0.0.1:%d/0\n  key_prefix: \"t-%s:\"\n"
             "sites:\n  - name: demo\n    jira_url: https://x.example\n    email: a@x.example\n"
             "    api_token: tok-unit-0001\n    scim_url: https://x.example/scim/directory/d\n"
             "    scim_api_key: scim-unit-0001\n"
             "worker:\n  instance_id: unit-worker\n"
             "audit:\n  hmac_key: " KEY "\n",
             broker.bootstrap, extra_kafka ? extra_kafka : "", topic, redis_port, topic);
    ck_assert_msg(jp_config_load_string(yaml, "t.yaml", &e->cfg, err, sizeof err) == JP_OK, "%s",
                  err);
    ck_assert_int_eq(uv_loop_init(&e->loop), 0);
    jp_redis_opts_t ro = {.host = "127.0.0.1",
                          .port = redis_port,
                          .on_state = on_state,
                          .opaque = e,
                          .connect_timeout_ms = 500,
                          .command_timeout_ms = 1000};
    e->redis = jp_redis_new(&e->loop, &ro, err, sizeof err);
    ck_assert_msg(e->redis != NULL, "%s", err);
    e->out = jp_kafka_out_new(&e->loop, e->cfg, err, sizeof err);
    ck_assert_msg(e->out != NULL, "%s", err);
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void env_close(trail_env_t *e)
{
    jp_kafka_out_flush(e->out, 5000);
    jp_kafka_out_destroy(e->out);
    jp_redis_destroy(e->redis);
    testloop_run_for(&e->loop, 50);
    uv_walk(&e->loop, close_walk, NULL);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&e->loop), 0);
    jp_config_destroy(e->cfg);
}

typedef struct wait_n {
    trail_env_t *e;
    int n;
} wait_n_t;

static int delivered_n(void *arg)
{
    wait_n_t *w = arg;
    return w->e->delivered + w->e->failed >= w->n;
}

typedef struct collected {
    jp_audit_verifier_t *v;
    lines_t texts;
} collected_t;

static int collect(const char *text, size_t len, const jp_audit_pos_t *pos, void *opaque)
{
    collected_t *c = opaque;
    ck_assert_int_eq(jp_audit_verifier_add(c->v, text, len, pos), JP_OK);
    push(&c->texts, strndup(text, len));
    return 0;
}

/* Reads the topic back through jp_audit_read_kafka and verifies it. */
static jp_audit_verifier_t *read_back(const char *topic, lines_t *texts)
{
    collected_t c = {jp_audit_verifier_new(&(jp_audit_key_t){KEY, strlen(KEY)}, 1, 0, NULL, 0),
                     {0}};
    jp_audit_source_t src = {
        .bootstrap = broker.bootstrap, .topic = topic, .on_record = collect, .opaque = &c};
    char err[512];
    ck_assert_msg(jp_audit_read_kafka(&src, err, sizeof err) == JP_OK, "%s", err);
    ck_assert_int_eq(jp_audit_verifier_finish(c.v), JP_OK);
    *texts = c.texts;
    return c.v;
}

static json_t *data_of(const char *text)
{
    json_t *r = json_loads(text, 0, NULL);
    ck_assert_ptr_nonnull(r);
    json_t *d = json_incref(json_object_get(r, "data"));
    json_decref(r);
    return d;
}

static void flag_done(void *opaque)
{
    ++*(int *)opaque;
}

static int flag_set(void *opaque)
{
    return *(int *)opaque != 0;
}

/* Where Redis says the instance's stream got to (one GET). */
typedef struct last_get {
    int done;
    long long seq;
    char stream[JP_AUDIT_STREAM_MAX];
} last_get_t;

static void got_last(jp_redis_t *r, const redisReply *reply, jp_err_t err, const char *errstr,
                     void *opaque)
{
    last_get_t *g = opaque;
    (void)r;
    (void)errstr;
    if (err == JP_OK && reply->type == REDIS_REPLY_STRING) {
        json_t *j = json_loadb(reply->str, reply->len, 0, NULL);
        g->seq = json_integer_value(json_object_get(j, "seq"));
        snprintf(g->stream, sizeof g->stream, "%s",
                 json_string_value(json_object_get(j, "stream")));
        json_decref(j);
    }
    g->done = 1;
}

static int all_delivered(void *opaque)
{
    jp_audit_trail_stats_t st;
    jp_audit_trail_stats(opaque, &st);
    return st.delivered + st.failed == st.sealed && st.queued == 0;
}

static void got_ttl(jp_redis_t *r, const redisReply *reply, jp_err_t err, const char *errstr,
                    void *opaque)
{
    last_get_t *g = opaque;
    (void)r;
    (void)errstr;
    g->seq = err == JP_OK && reply->type == REDIS_REPLY_INTEGER ? reply->integer : -2;
    g->done = 1;
}

static int get_done(void *opaque)
{
    return ((last_get_t *)opaque)->done;
}

START_TEST(trail_streams_continue_across_restarts)
{
    trail_env_t e;
    char err[512];
    env_open(&e, "t.restart", NULL, redis_srv.port);
    ck_assert(testloop_run_until(&e.loop, is_connected, &e, 5000));

    /* First process: records emitted before the stream is open wait for it, in order. */
    jp_audit_trail_t *t = jp_audit_trail_new(&e.loop, e.cfg, e.out, e.redis, err, sizeof err);
    ck_assert_msg(t != NULL, "%s", err);
    char first[JP_AUDIT_STREAM_MAX];
    snprintf(first, sizeof first, "%s", jp_audit_trail_stream(t));
    ck_assert(!strncmp(first, "unit-worker:", 12));
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(jp_audit_trail_emit(t, call_record("unit-worker", i), counted, &e), 0);
    ck_assert_int_eq(e.delivered, 0); /* never from inside the call */
    ck_assert_int_eq(jp_audit_trail_emit(t, NULL, counted, &e), -1);
    wait_n_t w = {&e, 3};
    ck_assert(testloop_run_until(&e.loop, delivered_n, &w, 10000));
    int closed = 0;
    jp_audit_trail_close(t, flag_done, &closed); /* stream.stopped, seq 4 */
    ck_assert_int_eq(closed, 0);                 /* never from inside the call */
    ck_assert(testloop_run_until(&e.loop, flag_set, &closed, 5000));
    /* When closing is done, Redis already holds the stop record as the end. */
    last_get_t g = {0, -1, ""};
    ck_assert_int_eq(jp_redis_command(e.redis, got_last, &g, NULL, 0, "GET %s",
                                      "t-t.restart:audit:last:unit-worker"),
                     JP_OK);
    ck_assert(testloop_run_until(&e.loop, get_done, &g, 5000));
    ck_assert_int_eq(g.seq, 4);
    ck_assert_str_eq(g.stream, first);
    g.done = 0; /* kept for 90 days, not forever */
    ck_assert_int_eq(jp_redis_command(e.redis, got_ttl, &g, NULL, 0, "TTL %s",
                                      "t-t.restart:audit:last:unit-worker"),
                     JP_OK);
    ck_assert(testloop_run_until(&e.loop, get_done, &g, 5000));
    ck_assert_int_gt(g.seq, 89 * 86400);
    ck_assert_int_le(g.seq, 90 * 86400);
    ck_assert(testloop_run_until(&e.loop, all_delivered, t, 5000));
    jp_audit_trail_stats_t st;
    jp_audit_trail_stats(t, &st);
    ck_assert_uint_eq(st.sealed, 5);
    ck_assert_uint_eq(st.delivered, 5);
    ck_assert_uint_eq(st.failed, 0);
    jp_audit_trail_destroy(t);

    /* Second process of the same instance: its stream.started anchors on the first's end. */
    t = jp_audit_trail_new(&e.loop, e.cfg, e.out, e.redis, err, sizeof err);
    ck_assert_str_ne(jp_audit_trail_stream(t), first);
    jp_audit_trail_start(t);
    ck_assert_int_eq(jp_audit_trail_decision(t, NULL, NULL, "skipped", counted, &e), -1);
    ck_assert_int_eq(jp_audit_trail_emit(t, call_record("unit-worker", 7), counted, &e), 0);
    w.n = 4;
    ck_assert(testloop_run_until(&e.loop, delivered_n, &w, 10000));
    jp_audit_trail_destroy(t); /* no close: the stream stays open */
    /* A trail that never opened a stream closes at once (from the loop), producing nothing. */
    t = jp_audit_trail_new(&e.loop, e.cfg, e.out, e.redis, err, sizeof err);
    closed = 0;
    jp_audit_trail_close(t, flag_done, &closed);
    ck_assert_int_eq(closed, 0);
    ck_assert(testloop_run_until(&e.loop, flag_set, &closed, 1000));
    jp_audit_trail_stats(t, &st);
    ck_assert_uint_eq(st.sealed, 0);
    jp_audit_trail_destroy(t);
    jp_kafka_out_flush(e.out, 5000);

    lines_t texts;
    jp_audit_verifier_t *v = read_back("t.restart", &texts);
    expect_clean(v);
    const jp_audit_stream_info_t *s;
    ck_assert_uint_eq(jp_audit_verifier_streams(v, &s), 2);
    /* The two streams may hash to either partition: find them by id. */
    const jp_audit_stream_info_t *one = !strcmp(s[0].stream, first) ? &s[0] : &s[1];
    const jp_audit_stream_info_t *two = one == &s[0] ? &s[1] : &s[0];
    ck_assert_str_eq(one->stream, first);
    ck_assert_int_eq(one->last_seq, 4);
    ck_assert_int_eq(one->stopped, 1);
    ck_assert_int_eq(one->continued, 1);
    ck_assert_str_eq(two->predecessor, first);
    ck_assert_int_eq(two->last_seq, 1);
    ck_assert_int_eq(two->stopped, 0);
    ck_assert_uint_eq(texts.n, 7);
    json_t *d = NULL, *started2 = NULL;
    for (size_t i = 0; i < texts.n; i++) {
        json_t *di = data_of(texts.v[i]);
        const char *stream =
            json_string_value(json_object_get(json_object_get(di, "chain"), "stream"));
        int seq0 = json_integer_value(json_object_get(json_object_get(di, "chain"), "seq")) == 0;
        if (seq0 && !strcmp(stream, first))
            d = json_incref(di);
        else if (seq0)
            started2 = json_incref(di);
        json_decref(di);
    }
    ck_assert_ptr_nonnull(d);
    ck_assert_ptr_nonnull(started2);
    ck_assert_str_eq(json_string_value(json_object_get(d, "operation")), "stream.started");
    ck_assert_str_eq(json_string_value(json_object_get(d, "previousUnknown")),
                     "no earlier stream of this instance is recorded");
    json_decref(d);
    d = started2;
    json_t *prev = json_object_get(d, "previous");
    ck_assert_str_eq(json_string_value(json_object_get(prev, "stream")), first);
    ck_assert_int_eq(json_integer_value(json_object_get(prev, "seq")), 4);
    json_decref(d);
    jp_audit_verifier_destroy(v);
    free_lines(&texts);
    env_close(&e);
}
END_TEST

START_TEST(trail_without_redis_says_why)
{
    trail_env_t e;
    char err[512];
    /* Nothing listens on this port: the previous stream's end cannot be known. */
    env_open(&e, "t.noredis", NULL, testredis_free_port());
    jp_audit_trail_t *t = jp_audit_trail_new(&e.loop, e.cfg, e.out, e.redis, err, sizeof err);
    ck_assert_int_eq(jp_audit_trail_emit(t, call_record("unit-worker", 1), counted, &e), 0);
    wait_n_t w = {&e, 1};
    ck_assert(testloop_run_until(&e.loop, delivered_n, &w, 10000));
    jp_audit_trail_destroy(t);
    jp_kafka_out_flush(e.out, 5000);
    lines_t texts;
    jp_audit_verifier_t *v = read_back("t.noredis", &texts);
    expect_clean(v);
    ck_assert_uint_eq(texts.n, 2);
    json_t *d = data_of(texts.v[0]);
    ck_assert(strstr(json_string_value(json_object_get(d, "previousUnknown")),
                     "Redis was not reachable"));
    json_decref(d);
    jp_audit_verifier_destroy(v);
    free_lines(&texts);
    env_close(&e);
}
END_TEST

START_TEST(trail_full_producer_queue_leaves_no_gap)
{
    trail_env_t e;
    char err[512];
    /* A producer queue of 2 messages refuses most of 60 records at first: each refused record
     * gives its seq back and is produced again later, in order. */
    env_open(&e, "t.full", "  queue.buffering.max.messages: 2\n  linger.ms: 20\n", redis_srv.port);
    ck_assert(testloop_run_until(&e.loop, is_connected, &e, 5000));
    jp_audit_trail_t *t = jp_audit_trail_new(&e.loop, e.cfg, e.out, e.redis, err, sizeof err);
    jp_audit_trail_start(t);
    for (int i = 0; i < 60; i++)
        ck_assert_int_eq(jp_audit_trail_emit(t, call_record("unit-worker", i), counted, &e), 0);
    wait_n_t w = {&e, 60};
    ck_assert(testloop_run_until(&e.loop, delivered_n, &w, 20000));
    ck_assert_int_eq(e.failed, 0);
    jp_audit_trail_stats_t st;
    jp_audit_trail_stats(t, &st);
    ck_assert_uint_eq(st.queued, 0);
    ck_assert_uint_eq(st.sealed, 61);
    jp_audit_trail_destroy(t);
    jp_kafka_out_flush(e.out, 5000);
    lines_t texts;
    jp_audit_verifier_t *v = read_back("t.full", &texts);
    expect_clean(v);
    ck_assert_uint_eq(texts.n, 61);
    jp_audit_verifier_destroy(v);
    free_lines(&texts);
    env_close(&e);
}
END_TEST

START_TEST(trail_needs_a_key)
{
    static const char base[] =
        "kafka:\n  bootstrap.servers: 127.0.0.1:1\nredis:\n  url: redis://127.0.0.1:1/0\n"
        "sites:\n  - name: demo\n    jira_url: https://x.example\n    email: a@x.example\n"
        "    api_token: tok-unit-0001\n    scim_url: https://x.example/scim/directory/d\n"
        "    scim_api_key: scim-unit-0001\n";
    char yaml[1024], err[512];
    jp_config_t *cfg;
    ck_assert_int_eq(jp_config_load_string(base, "t.yaml", &cfg, err, sizeof err), JP_OK);
    ck_assert_int_eq(jp_audit_check_config(cfg, err, sizeof err), JP_ERR_INVALID);
    ck_assert(strstr(err, "audit.hmac_key (or audit.hmac_key_file) is required"));
    jp_config_destroy(cfg);
    snprintf(yaml, sizeof yaml, "%saudit:\n  hmac_key: too-short-key\n", base);
    ck_assert_int_eq(jp_config_load_string(yaml, "t.yaml", &cfg, err, sizeof err), JP_OK);
    ck_assert_int_eq(jp_audit_check_config(cfg, err, sizeof err), JP_ERR_INVALID);
    ck_assert_str_eq(err, "audit.hmac_key must have at least 16 bytes");
    jp_config_destroy(cfg);
    snprintf(yaml, sizeof yaml, "%saudit:\n  unkeyed: true\n", base);
    ck_assert_int_eq(jp_config_load_string(yaml, "t.yaml", &cfg, err, sizeof err), JP_OK);
    ck_assert_int_eq(jp_audit_check_config(cfg, err, sizeof err), JP_OK);
    jp_config_destroy(cfg);
    snprintf(yaml, sizeof yaml, "%saudit:\n  unkeyed: true\n  hmac_key: " KEY "\n", base);
    ck_assert_int_eq(jp_config_load_string(yaml, "t.yaml", &cfg, err, sizeof err), JP_OK);
    ck_assert_int_eq(jp_audit_check_config(cfg, err, sizeof err), JP_ERR_INVALID);
    jp_config_destroy(cfg);
    jp_log_clear_secrets();
}
END_TEST

static void services_up(void)
{
    static const char *const topics[] = {"t.restart:2", "t.noredis:1", "t.full:1", NULL};
    jp_log_set_level(getenv("JP_TEST_VERBOSE") ? JP_LOG_DEBUG : JP_LOG_OFF);
    if (testkafka_start(&broker, topics, 0) != 0) {
        testkafka_stop(&broker);
        ck_abort_msg("cannot start the embedded broker: build target jiraprov-embedded-kafka");
    }
    memset(&redis_srv, 0, sizeof redis_srv);
    if (testredis_start(&redis_srv, 0) != 0) {
        testkafka_stop(&broker);
        ck_abort_msg("cannot start redis-server");
    }
}

static void services_down(void)
{
    testredis_kill(&redis_srv);
    testkafka_stop(&broker);
}

static Suite *audit_suite(void)
{
    Suite *s = suite_create("audit");
    TCase *tc = tcase_create("chain");
    tcase_add_test(tc, canonical_exact_bytes);
    tcase_add_test(tc, canonical_refuses_reals_and_big_integers);
    tcase_add_test(tc, mac_and_key_id_vectors);
    tcase_add_test(tc, stream_ids);
    tcase_add_test(tc, record_audit_stream_builder);
    tcase_add_test(tc, chain_links_and_rewind);
    tcase_add_test(tc, seal_text_is_the_sealed_record);
    suite_add_tcase(s, tc);
    tc = tcase_create("verifier");
    tcase_add_test(tc, verify_clean_stream);
    tcase_add_test(tc, verify_interleaved_streams_and_key_rotation);
    tcase_add_test(tc, tamper_edit_a_field);
    tcase_add_test(tc, tamper_drop);
    tcase_add_test(tc, tamper_reorder);
    tcase_add_test(tc, tamper_duplicate);
    tcase_add_test(tc, tamper_insert_forged);
    tcase_add_test(tc, tamper_malformed_lines);
    tcase_add_test(tc, successor_streams);
    tcase_add_test(tc, unkeyed_streams);
    tcase_add_test(tc, kafka_positions_and_split_streams);
    suite_add_tcase(s, tc);
    tc = tcase_create("trail");
    tcase_add_unchecked_fixture(tc, services_up, services_down);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, trail_streams_continue_across_restarts);
    tcase_add_test(tc, trail_without_redis_says_why);
    tcase_add_test(tc, trail_full_producer_queue_leaves_no_gap);
    tcase_add_test(tc, trail_needs_a_key);
    suite_add_tcase(s, tc);
    return s;
}

JP_CHECK_MAIN(audit_suite)
