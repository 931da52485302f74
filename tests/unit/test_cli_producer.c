#include "jiraprov/cli_producer.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void clear_env(void)
{
    unsetenv("KAFKA_BOOTSTRAP");
    unsetenv("TOPIC_EVENTS");
}

/* A minimal valid worker config in a private (0600) temporary file; caller unlinks and frees. */
static char *write_config(void)
{
    static const char text[] = "kafka:\n"
                               "  bootstrap.servers: \"cfg-host:9092\"\n"
                               "  socket.timeout.ms: 5000\n"
                               "topics:\n"
                               "  events: cfg.events\n"
                               "redis:\n"
                               "  url: redis://127.0.0.1:6379/0\n"
                               "event:\n"
                               "  max_bytes: 2048\n"
                               "sites:\n"
                               "  - name: demo\n"
                               "    jira_url: https://demo.atlassian.example\n"
                               "    email: admin@demo.example\n"
                               "    api_token: test-api-token\n"
                               "    scim_url: https://api.example/scim/directory/d1\n"
                               "    scim_api_key: test-scim-key\n";
    char *path = strdup("/tmp/jp-test-cli-producer-XXXXXX.yaml");
    int fd;

    ck_assert_ptr_nonnull(path);
    fd = mkstemps(path, 5);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, sizeof(text) - 1), (ssize_t)(sizeof(text) - 1));
    close(fd);
    return path;
}

START_TEST(defaults_without_anything)
{
    jp_cli_target_args_t args = {0};
    jp_cli_target_t *t = NULL;
    jp_cli_producer_t *p = NULL;
    char errstr[512];

    clear_env();
    ck_assert_int_eq(jp_cli_target_resolve(&args, &t, errstr, sizeof(errstr)), JP_OK);
    ck_assert_ptr_null(t->bootstrap);
    ck_assert_str_eq(t->topic, JP_CLI_DEFAULT_TOPIC);
    ck_assert_uint_eq(t->max_bytes, JP_EVENT_MAX_BYTES);
    ck_assert_int_eq(jp_cli_producer_new(t, NULL, &p, errstr, sizeof(errstr)), JP_ERR_INVALID);
    ck_assert_ptr_null(p);
    ck_assert_ptr_nonnull(strstr(errstr, "KAFKA_BOOTSTRAP"));
    jp_cli_target_destroy(t);
}
END_TEST

START_TEST(environment_then_flags)
{
    jp_cli_target_args_t args = {0};
    jp_cli_target_t *t = NULL;
    char errstr[512];

    clear_env();
    setenv("KAFKA_BOOTSTRAP", "env-host:1", 1);
    setenv("TOPIC_EVENTS", "env.events", 1);
    ck_assert_int_eq(jp_cli_target_resolve(&args, &t, errstr, sizeof(errstr)), JP_OK);
    ck_assert_str_eq(t->bootstrap, "env-host:1");
    ck_assert_str_eq(t->bootstrap_from, "KAFKA_BOOTSTRAP");
    ck_assert_str_eq(t->topic, "env.events");
    jp_cli_target_destroy(t);

    args.bootstrap = "flag-host:2";
    args.topic = "flag.events";
    args.max_bytes = 100;
    ck_assert_int_eq(jp_cli_target_resolve(&args, &t, errstr, sizeof(errstr)), JP_OK);
    ck_assert_str_eq(t->bootstrap, "flag-host:2");
    ck_assert_str_eq(t->bootstrap_from, "-b");
    ck_assert_str_eq(t->topic, "flag.events");
    ck_assert_uint_eq(t->max_bytes, 100);
    jp_cli_target_destroy(t);
    clear_env();
}
END_TEST

START_TEST(config_wins_over_environment)
{
    char *path = write_config();
    jp_cli_target_args_t args = {0};
    jp_cli_target_t *t = NULL;
    jp_cli_producer_t *p = NULL;
    char errstr[512];

    setenv("KAFKA_BOOTSTRAP", "env-host:1", 1);
    setenv("TOPIC_EVENTS", "env.events", 1);
    args.config_path = path;
    ck_assert_msg(jp_cli_target_resolve(&args, &t, errstr, sizeof(errstr)) == JP_OK, "%s", errstr);
    ck_assert_str_eq(t->bootstrap, "cfg-host:9092");
    ck_assert_str_eq(t->bootstrap_from, "config");
    ck_assert_str_eq(t->topic, "cfg.events");
    ck_assert_uint_eq(t->max_bytes, 2048);
    /* the config's kafka block is applied without complaint */
    ck_assert_msg(jp_cli_producer_new(t, NULL, &p, errstr, sizeof(errstr)) == JP_OK, "%s", errstr);
    jp_cli_producer_destroy(p);
    jp_cli_target_destroy(t);

    args.bootstrap = "flag-host:2";
    args.topic = "flag.events";
    ck_assert_int_eq(jp_cli_target_resolve(&args, &t, errstr, sizeof(errstr)), JP_OK);
    ck_assert_str_eq(t->bootstrap, "flag-host:2");
    ck_assert_str_eq(t->topic, "flag.events");
    jp_cli_target_destroy(t);

    args.config_path = "/nonexistent/worker.yaml";
    ck_assert_int_ne(jp_cli_target_resolve(&args, &t, errstr, sizeof(errstr)), JP_OK);
    ck_assert_ptr_null(t);
    unlink(path);
    free(path);
    clear_env();
}
END_TEST

START_TEST(properties_are_checked_and_secrets_kept_quiet)
{
    jp_cli_target_args_t args = {0};
    jp_cli_target_t *t = NULL;
    jp_cli_producer_t *p = NULL;
    char errstr[512];

    clear_env();
    args.bootstrap = "127.0.0.1:1";
    args.props[args.prop_count++] = "linger.ms=1";
    args.props[args.prop_count++] = "acks=sometimes";
    ck_assert_int_eq(jp_cli_target_resolve(&args, &t, errstr, sizeof(errstr)), JP_OK);
    ck_assert_int_eq(jp_cli_producer_new(t, NULL, &p, errstr, sizeof(errstr)), JP_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(errstr, "-X"));
    jp_cli_target_destroy(t);

    args.props[1] = "custom.secret.thing=hunter2-value";
    ck_assert_int_eq(jp_cli_target_resolve(&args, &t, errstr, sizeof(errstr)), JP_OK);
    ck_assert_int_eq(jp_cli_producer_new(t, NULL, &p, errstr, sizeof(errstr)), JP_ERR_INVALID);
    ck_assert_ptr_null(strstr(errstr, "hunter2"));
    ck_assert_ptr_nonnull(strstr(errstr, "custom.secret.thing"));
    jp_cli_target_destroy(t);

    args.props[1] = "no-equals-sign";
    ck_assert_int_eq(jp_cli_target_resolve(&args, &t, errstr, sizeof(errstr)), JP_OK);
    ck_assert_int_eq(jp_cli_producer_new(t, NULL, &p, errstr, sizeof(errstr)), JP_ERR_INVALID);
    jp_cli_target_destroy(t);
}
END_TEST

START_TEST(producer_without_messages_flushes_at_once)
{
    jp_cli_target_args_t args = {0};
    jp_cli_target_t *t = NULL;
    jp_cli_producer_t *p = NULL;
    jp_cli_producer_tuning_t tuning = {
        .client_id = "test", .linger_ms = 1, .queue_max_messages = 10};
    char errstr[512];

    args.bootstrap = "127.0.0.1:1";
    ck_assert_int_eq(jp_cli_target_resolve(&args, &t, errstr, sizeof(errstr)), JP_OK);
    ck_assert_int_eq(jp_cli_producer_new(t, &tuning, &p, errstr, sizeof(errstr)), JP_OK);
    ck_assert_uint_eq(jp_cli_producer_pending(p), 0);
    ck_assert_int_eq(jp_cli_producer_flush(p, 10, errstr, sizeof(errstr)), JP_OK);
    ck_assert_uint_eq(jp_cli_producer_stats(p)->sent, 0);
    ck_assert_str_eq(jp_cli_producer_first_error(p), "");
    jp_cli_producer_destroy(p);
    jp_cli_producer_destroy(NULL);
    jp_cli_target_destroy(t);
    jp_cli_target_destroy(NULL);
}
END_TEST

START_TEST(helpers)
{
    uint64_t counts[JP_EVENT__COUNT] = {0};
    char buf[256];
    uint64_t v = 0;

    jp_cli_format_by_type(counts, buf, sizeof(buf));
    ck_assert_str_eq(buf, "none");
    counts[JP_EVENT_ACCOUNT_CREATE] = 3;
    counts[JP_EVENT_ISSUE_CREATE] = 1;
    jp_cli_format_by_type(counts, buf, sizeof(buf));
    ck_assert_str_eq(buf, "account.create=3 issue.create=1");
    jp_cli_format_by_type(counts, buf, 10); /* truncation keeps a terminated string */
    ck_assert_uint_lt(strlen(buf), 10);

    ck_assert(jp_cli_parse_u64("42", 1, 100, &v));
    ck_assert_uint_eq(v, 42);
    ck_assert(!jp_cli_parse_u64("0", 1, 100, &v));
    ck_assert(!jp_cli_parse_u64("101", 1, 100, &v));
    ck_assert(!jp_cli_parse_u64("-1", 0, 100, &v));
    ck_assert(!jp_cli_parse_u64(" 1", 0, 100, &v));
    ck_assert(!jp_cli_parse_u64("1x", 0, 100, &v));
    ck_assert(!jp_cli_parse_u64("", 0, 100, &v));
    ck_assert(!jp_cli_parse_u64("99999999999999999999999", 0, UINT64_MAX, &v));
    ck_assert(jp_cli_now() > 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cli_producer");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, defaults_without_anything);
    tcase_add_test(tc, environment_then_flags);
    tcase_add_test(tc, config_wins_over_environment);
    tcase_add_test(tc, properties_are_checked_and_secrets_kept_quiet);
    tcase_add_test(tc, producer_without_messages_flushes_at_once);
    tcase_add_test(tc, helpers);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
