/* Test helper: files of the repository (fixtures, samples) for unit tests. The tests are built
 * with JP_SOURCE_DIR (the repository root); the environment variable of the same name, when set
 * and not empty, wins, so that a moved build tree still finds them. Include after <check.h>. */
#ifndef JP_TESTS_FIXTURE_H
#define JP_TESTS_FIXTURE_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>

static inline const char *testfix_source_dir(void)
{
    const char *dir = getenv("JP_SOURCE_DIR");
    return dir && *dir ? dir : JP_SOURCE_DIR;
}

/* The whole file at `rel` ("/tests/unit/data/...", from the repository root), NUL-terminated;
 * *len is its size. Fails the test if it cannot be read. The caller frees it. */
static inline char *testfix_read(const char *rel, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s%s", testfix_source_dir(), rel);
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    long size = ftell(f);
    ck_assert_int_ge(size, 0);
    rewind(f);
    char *buf = malloc((size_t)size + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    buf[size] = '\0';
    *len = (size_t)size;
    return buf;
}

#endif
