#include "jiraprov/log.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/check_main.h"

static char *capture(void (*fn)(void))
{
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    jp_log_set_stream(mem);
    fn();
    jp_log_set_stream(NULL);
    fclose(mem);
    return buf;
}

static void log_with_ctx(void)
{
    jp_log_ctx_t ctx = {.event_id = "e-1", .partition = 3, .offset = 42};
    jp_log(JP_LOG_WARN, "kafka_in", &ctx, "quote \" and\nnewline %d", 7);
}

START_TEST(line_is_json_with_context)
{
    jp_log_set_level(JP_LOG_INFO);
    char *out = capture(log_with_ctx);
    ck_assert_ptr_nonnull(strstr(out, "\"level\":\"warn\""));
    ck_assert_ptr_nonnull(strstr(out, "\"component\":\"kafka_in\""));
    ck_assert_ptr_nonnull(strstr(out, "\"msg\":\"quote \\\" and\\nnewline 7\""));
    ck_assert_ptr_nonnull(strstr(out, "\"event_id\":\"e-1\",\"partition\":3,\"offset\":42}\n"));
    free(out);
}
END_TEST

static void log_debug(void)
{
    jp_debug("main", "hidden");
}

START_TEST(level_filters)
{
    jp_log_set_level(JP_LOG_INFO);
    char *out = capture(log_debug);
    ck_assert_str_eq(out, "");
    free(out);
    ck_assert_int_eq(jp_log_level_parse("warning"), JP_LOG_WARN);
    ck_assert_int_eq(jp_log_level_parse("loud"), -1);
}
END_TEST

static void log_secret(void)
{
    jp_info("jira", "GET https://x/?token=s3cr3t-T0KEN failed; auth s3cr3t-T0KEN");
}

START_TEST(secrets_are_redacted)
{
    jp_log_set_level(JP_LOG_DEBUG);
    ck_assert_int_eq(jp_log_add_secret("s3cr3t-T0KEN"), 0);
    char *out = capture(log_secret);
    ck_assert_ptr_null(strstr(out, "s3cr3t"));
    ck_assert_ptr_nonnull(strstr(out, "token=[redacted] failed; auth [redacted]"));
    free(out);
    char red[64];
    jp_log_redact("x s3cr3t-T0KEN y", red, sizeof(red));
    ck_assert_str_eq(red, "x [redacted] y");
    jp_log_clear_secrets();
    jp_log_redact("x s3cr3t-T0KEN y", red, sizeof(red));
    ck_assert_str_eq(red, "x s3cr3t-T0KEN y");
}
END_TEST

static Suite *log_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, line_is_json_with_context);
    tcase_add_test(tc, level_filters);
    tcase_add_test(tc, secrets_are_redacted);
    suite_add_tcase(s, tc);
    return s;
}

JP_CHECK_MAIN(log_suite)
