/* Test helper: the main() every Check unit test would otherwise repeat. A test file builds its
 * suite in a function and ends with JP_CHECK_MAIN(that_function); one that needs set-up before the
 * run, or another print mode, calls jp_check_run itself. Include it after <check.h>. */
#ifndef JP_TESTS_CHECK_MAIN_H
#define JP_TESTS_CHECK_MAIN_H

#include <check.h>
#include <stdlib.h>

/* Runs every test of `s` (the runner takes the suite over) and returns the exit status. */
static inline int jp_check_run(Suite *s, enum print_output mode)
{
    SRunner *sr = srunner_create(s);
    int failed;

    srunner_run_all(sr, mode);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#define JP_CHECK_MAIN(suite_fn)                                                                    \
    int main(void)                                                                                 \
    {                                                                                              \
        return jp_check_run(suite_fn(), CK_NORMAL);                                                \
    }

#endif
