/* Unit tests of the err module: names, and jp_err_set's truncation, which
 * never leaves a partial UTF-8 character at the end of a message. */
#include "jiraprov/err.h"

#include <check.h>
#include <string.h>

#include "../lib/check_main.h"

START_TEST(names)
{
    ck_assert_str_eq(jp_err_name(JP_OK), "ok");
    ck_assert_str_eq(jp_err_name(JP_ERR_TOO_LARGE), "too_large");
    ck_assert_str_eq(jp_err_name((jp_err_t)999), "unknown");
}
END_TEST

START_TEST(set_fits)
{
    char buf[32];
    ck_assert_int_eq(jp_err_set(buf, sizeof(buf), JP_ERR_INVALID, "x=%d \xc3\xa9", 5),
                     JP_ERR_INVALID);
    ck_assert_str_eq(buf, "x=5 \xc3\xa9");
    ck_assert_int_eq(jp_err_set(NULL, 0, JP_ERR_IO, "ignored"), JP_ERR_IO);
}
END_TEST

/* "ab" followed by a 2-, 3- and 4-byte character, cut at every size: what is
 * left is always whole characters. */
START_TEST(set_cut_on_character_boundary)
{
    static const struct {
        const char *text;
        size_t cut; /* bytes of the character */
    } cases[] = {{"ab\xc3\xa9", 2}, {"ab\xe6\x9d\xb1", 3}, {"ab\xf0\x9f\x98\x80", 4}};
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        for (size_t size = 1; size <= 2 + cases[c].cut + 1; size++) {
            char buf[16];
            jp_err_set(buf, size, JP_ERR_INVALID, "%s", cases[c].text);
            size_t want = size - 1 < 2                  ? size - 1
                          : size - 1 < 2 + cases[c].cut ? 2
                                                        : 2 + cases[c].cut;
            ck_assert_msg(strlen(buf) == want, "case %zu size %zu: %zu bytes, wanted %zu", c, size,
                          strlen(buf), want);
            ck_assert(strncmp(buf, cases[c].text, want) == 0);
        }
    }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("err");
    TCase *tc = tcase_create("err");
    tcase_add_test(tc, names);
    tcase_add_test(tc, set_fits);
    tcase_add_test(tc, set_cut_on_character_boundary);
    suite_add_tcase(s, tc);
    return s;
}

JP_CHECK_MAIN(suite)
