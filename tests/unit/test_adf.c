#include "jiraprov/adf.h"

#include <check.h>
#include <stdlib.h>

#include "../lib/check_main.h"

static void assert_adf(const char *text, const char *expected_content)
{
    json_t *doc = jp_adf_from_text(text);
    ck_assert_ptr_nonnull(doc);
    json_error_t err;
    json_t *want = json_loads(expected_content, 0, &err);
    ck_assert_msg(want != NULL, "bad expectation: %s", err.text);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "type")), "doc");
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "version")), 1);
    char *got = json_dumps(json_object_get(doc, "content"), JSON_COMPACT);
    ck_assert_msg(json_equal(json_object_get(doc, "content"), want), "for %s got %s", text, got);
    free(got);
    json_decref(want);
    json_decref(doc);
}

#define P(...) "{\"type\":\"paragraph\",\"content\":[" __VA_ARGS__ "]}"
#define T(s)   "{\"type\":\"text\",\"text\":\"" s "\"}"
#define BR     "{\"type\":\"hardBreak\"}"

START_TEST(paragraphs_and_breaks)
{
    assert_adf("", "[]");
    assert_adf(NULL, "[]");
    assert_adf("\n\n\n", "[]");
    assert_adf("hello", "[" P(T("hello")) "]");
    assert_adf("a\nb", "[" P(T("a") "," BR "," T("b")) "]");
    assert_adf("a\r\nb\rc", "[" P(T("a") "," BR "," T("b") "," BR "," T("c")) "]");
    assert_adf("a\n\nb", "[" P(T("a")) "," P(T("b")) "]");
    assert_adf("a\r\n\r\n\r\nb\n", "[" P(T("a")) "," P(T("b")) "]");
    assert_adf("\na", "[" P(T("a")) "]");
    assert_adf("*not bold* <b>x</b>", "[" P(T("*not bold* <b>x</b>")) "]");
    assert_adf("Zoë — 東京", "[" P(T("Zoë — 東京")) "]");
}
END_TEST

static Suite *adf_suite(void)
{
    Suite *s = suite_create("adf");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, paragraphs_and_breaks);
    suite_add_tcase(s, tc);
    return s;
}

JP_CHECK_MAIN(adf_suite)
