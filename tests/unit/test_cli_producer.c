#include "jiraprov/cli_producer.h"

#include <check.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/check_main.h"

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

START_TEST(destination_options)
{
    static const struct option longopts[] = {JP_CLI_TARGET_LONGOPTS, {NULL, 0, NULL, 0}};
    jp_cli_target_args_t args = {0};
    char errstr[128];
    int i;

    ck_assert_str_eq(longopts[0].name, "config");
    ck_assert_int_eq(longopts[2].val, 't');
    ck_assert_int_eq(jp_cli_target_option(&args, 'c', "w.yaml", errstr, sizeof(errstr)), 1);
    ck_assert_int_eq(jp_cli_target_option(&args, 'b', "h:1", errstr, sizeof(errstr)), 1);
    ck_assert_int_eq(jp_cli_target_option(&args, 't', "tp", errstr, sizeof(errstr)), 1);
    ck_assert_int_eq(jp_cli_target_option(&args, 'n', "5", errstr, sizeof(errstr)), 0);
    ck_assert_str_eq(args.config_path, "w.yaml");
    ck_assert_str_eq(args.bootstrap, "h:1");
    ck_assert_str_eq(args.topic, "tp");
    for (i = 0; i < JP_CLI_MAX_PROPS; i++)
        ck_assert_int_eq(jp_cli_target_option(&args, 'X', "a=b", errstr, sizeof(errstr)), 1);
    ck_assert_uint_eq(args.prop_count, JP_CLI_MAX_PROPS);
    ck_assert_int_eq(jp_cli_target_option(&args, 'X', "a=b", errstr, sizeof(errstr)), -1);
    ck_assert_str_eq(errstr, "at most 64 -X properties");
    ck_assert_uint_eq(args.prop_count, JP_CLI_MAX_PROPS);
}
END_TEST

START_TEST(progress_schedule)
{
    jp_cli_progress_t p;

    jp_cli_progress_init(&p, true, true);
    ck_assert(!p.enabled); /* --quiet wins over --progress */
    jp_cli_progress_init(&p, false, true);
    ck_assert(p.enabled);
    ck_assert(!jp_cli_progress_due(&p, jp_cli_now())); /* the first line waits a second */
    p.next = 10.0;
    ck_assert(!jp_cli_progress_due(&p, 9.5));
    ck_assert(jp_cli_progress_due(&p, 10.0));
    ck_assert(!jp_cli_progress_due(&p, 10.9));
    ck_assert(jp_cli_progress_due(&p, 11.0));
    p.enabled = false;
    ck_assert(!jp_cli_progress_due(&p, 100.0));
    p.tty = false;
    p.shown = true;
    jp_cli_progress_clear(&p);
    ck_assert(!p.shown);
}
END_TEST

START_TEST(first_signal_sets_the_stop_flag)
{
    jp_cli_catch_stop();
    ck_assert(!jp_cli_stopping());
    ck_assert_int_eq(raise(SIGTERM), 0);
    ck_assert(jp_cli_stopping());
}
END_TEST

START_TEST(second_signal_stops_at_once)
{
    jp_cli_catch_stop();
    raise(SIGTERM);
    ck_assert(jp_cli_stopping());
    raise(SIGTERM); /* the handler reset itself: this ends the test process */
}
END_TEST

static Suite *cli_producer_suite(void)
{
    Suite *s = suite_create("cli_producer");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, defaults_without_anything);
    tcase_add_test(tc, environment_then_flags);
    tcase_add_test(tc, config_wins_over_environment);
    tcase_add_test(tc, properties_are_checked_and_secrets_kept_quiet);
    tcase_add_test(tc, producer_without_messages_flushes_at_once);
    tcase_add_test(tc, helpers);
    tcase_add_test(tc, destination_options);
    tcase_add_test(tc, progress_schedule);
    tcase_add_test(tc, first_signal_sets_the_stop_flag);
    tcase_add_test_raise_signal(tc, second_signal_stops_at_once, SIGTERM);
    suite_add_tcase(s, tc);
    return s;
}

JP_CHECK_MAIN(cli_producer_suite)
