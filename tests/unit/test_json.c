/* jp_json: byte for byte what json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) gives, on
 * hand-made edge cases, the event corpus and thousands of random trees; refusals where it
 * cannot match jansson, and jp_json_dumps falling back to jansson there. */
#include "jiraprov/json.h"

#include <check.h>
#include <dirent.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/check_main.h"

/* Both encoders agree on v (or both refuse it). */
static void same(const json_t *v, const char *what)
{
    char *want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    size_t len = 0;
    char *got = jp_json_dumps(v, &len);
    if (!want) {
        ck_assert_msg(got == NULL, "%s: jansson refused, jp_json_dumps gave %s", what, got);
        return;
    }
    ck_assert_msg(got != NULL, "%s: jp_json_dumps refused, jansson gave %s", what, want);
    ck_assert_msg(strcmp(got, want) == 0, "%s:\n jansson %s\n jp_json %s", what, want, got);
    ck_assert_uint_eq(len, strlen(want));
    free(want);
    free(got);
}

/* jp_json_encode itself (no fallback) produced the text. */
static void encoded(json_t *v, const char *what)
{
    size_t len = 0;
    char *s = jp_json_encode(v, 0, &len);
    ck_assert_msg(s != NULL, "%s: jp_json_encode refused it", what);
    free(s);
    same(v, what);
    json_decref(v);
}

START_TEST(edge_cases)
{
    encoded(json_null(), "null");
    encoded(json_true(), "true");
    encoded(json_false(), "false");
    encoded(json_integer(0), "0");
    encoded(json_integer(-1), "-1");
    encoded(json_integer(LLONG_MAX), "LLONG_MAX");
    encoded(json_integer(LLONG_MIN), "LLONG_MIN");
    encoded(json_real(0.5), "0.5");
    encoded(json_real(-1e300), "-1e300");
    encoded(json_real(3.0), "3.0");
    encoded(json_object(), "{}");
    encoded(json_array(), "[]");
    encoded(json_string(""), "empty string");
    encoded(json_string("quote \" backslash \\ slash / tab \t nl \n cr \r bs \b ff \f"), "escapes");
    encoded(json_stringn("\x01\x1f\x7f ctl", 7), "control characters");
    encoded(json_string("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), "UTF-8, 2 to 4 bytes");
    encoded(json_string("exactly8xexactly8x\"exactly8x"), "word boundaries");
    encoded(json_pack("{s:[i,{s:s}],s:{},s:n}", "a", 1, "b", "c", "e", "z"), "nesting");
    encoded(json_stringn("nul\0inside", 10), "embedded NUL");
    json_t *o = json_object();
    json_object_setn_new(o, "k\0ey", 4, json_true());
    encoded(o, "key with a NUL");
}
END_TEST

/* Invalid UTF-8: jp_json_encode refuses, and jp_json_dumps answers what jansson does. */
START_TEST(invalid_utf8_and_depth)
{
    const char *bad[] = {"\xc3", "\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "a\xff"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *v = json_stringn_nocheck(bad[i], strlen(bad[i]));
        size_t len;
        ck_assert_ptr_null(jp_json_encode(v, 0, &len));
        same(v, "invalid UTF-8");
        json_decref(v);
    }
    json_t *deep = json_array(), *cur = deep;
    for (int i = 0; i < JP_JSON_MAX_DEPTH + 10; i++) {
        json_t *next = json_array();
        json_array_append_new(cur, next);
        cur = next;
    }
    size_t len;
    ck_assert_ptr_null(jp_json_encode(deep, 0, &len));
    same(deep, "deeper than JP_JSON_MAX_DEPTH");
    json_decref(deep);
    ck_assert_ptr_null(jp_json_encode(NULL, 0, &len));
    ck_assert_ptr_null(jp_json_dumps(NULL, NULL));
}
END_TEST

/* Every event of the corpus (valid and invalid files that parse). */
START_TEST(event_corpus)
{
    const char *dirs[] = {JP_SOURCE_DIR "/tests/unit/data/events/valid",
                          JP_SOURCE_DIR "/tests/unit/data/events/invalid"};
    int n = 0;
    for (size_t d = 0; d < 2; d++) {
        DIR *dir = opendir(dirs[d]);
        ck_assert_ptr_nonnull(dir);
        struct dirent *e;
        while ((e = readdir(dir))) {
            if (!strstr(e->d_name, ".json"))
                continue;
            char path[1024];
            snprintf(path, sizeof(path), "%s/%s", dirs[d], e->d_name);
            json_t *v = json_load_file(path, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
            if (!v)
                continue;
            same(v, e->d_name);
            json_decref(v);
            n++;
        }
        closedir(dir);
    }
    ck_assert_int_gt(n, 100);
}
END_TEST

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Random strings mixing plain runs (the word-at-a-time path), escapes and UTF-8. */
static json_t *rand_string(void)
{
    static const char *pieces[] = {"a",
                                   "plain text run ",
                                   "\"",
                                   "\\",
                                   "\n",
                                   "\x01",
                                   "\x1f",
                                   "\xc3\xa9",
                                   "\xe2\x82\xac",
                                   "\xf0\x9f\x98\x80",
                                   "/",
                                   " "};
    char buf[256];
    size_t n = 0, parts = next_rand() % 12;
    for (size_t i = 0; i < parts; i++) {
        const char *p = pieces[next_rand() % (sizeof(pieces) / sizeof(pieces[0]))];
        size_t l = strlen(p);
        if (n + l >= sizeof(buf))
            break;
        memcpy(buf + n, p, l);
        n += l;
    }
    return json_stringn(buf, n);
}

static json_t *rand_value(int depth)
{
    switch (next_rand() % (depth > 4 ? 5 : 7)) {
    case 0:
        return rand_string();
    case 1:
        return json_integer((json_int_t)next_rand());
    case 2:
        return json_real((double)(int64_t)next_rand() / 1000.0);
    case 3:
        return next_rand() & 1 ? json_true() : json_null();
    case 4:
        return json_integer((json_int_t)(next_rand() % 1000) - 500);
    case 5: {
        json_t *a = json_array();
        for (uint64_t i = next_rand() % 5; i > 0; i--)
            json_array_append_new(a, rand_value(depth + 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        for (uint64_t i = next_rand() % 5; i > 0; i--) {
            json_t *k = rand_string();
            json_object_setn_new(o, json_string_value(k), json_string_length(k),
                                 rand_value(depth + 1));
            json_decref(k);
        }
        return o;
    }
    }
}

START_TEST(random_trees)
{
    for (int i = 0; i < 3000; i++) {
        json_t *v = rand_value(0);
        char what[32];
        snprintf(what, sizeof(what), "random tree %d", i);
        same(v, what);
        json_decref(v);
    }
}
END_TEST

static Suite *json_suite(void)
{
    Suite *s = suite_create("json");
    TCase *tc = tcase_create("encode");
    tcase_add_test(tc, edge_cases);
    tcase_add_test(tc, invalid_utf8_and_depth);
    tcase_add_test(tc, event_corpus);
    tcase_add_test(tc, random_trees);
    suite_add_tcase(s, tc);
    return s;
}

JP_CHECK_MAIN(json_suite)
