#include "jiraprov/classify.h"

#include <check.h>
#include <curl/curl.h>
#include <librdkafka/rdkafka.h>
#include <stdlib.h>

#include "../lib/check_main.h"

static const time_t NOW = 784111777; /* Sun, 06 Nov 1994 08:49:37 GMT */

START_TEST(http_status_classes)
{
    static const struct {
        long status;
        jp_class_t cls;
        const char *reason;
        int unknown;
    } cases[] = {
        {200, JP_CLASS_OK, "ok", 0},
        {204, JP_CLASS_OK, "ok", 0},
        {400, JP_CLASS_PERMANENT, "http_400", 0},
        {401, JP_CLASS_QUARANTINE, "http_401", 0},
        {403, JP_CLASS_QUARANTINE, "http_403", 0},
        {404, JP_CLASS_PERMANENT, "http_404", 0},
        {409, JP_CLASS_PERMANENT, "http_409", 0},
        {410, JP_CLASS_PERMANENT, "http_4xx", 0},
        {408, JP_CLASS_RETRIABLE, "http_408", 1},
        {429, JP_CLASS_RETRIABLE, "http_429", 0},
        {500, JP_CLASS_RETRIABLE, "http_5xx", 1},
        {502, JP_CLASS_RETRIABLE, "http_502", 1},
        {503, JP_CLASS_RETRIABLE, "http_503", 0},
        {504, JP_CLASS_RETRIABLE, "http_504", 1},
        {501, JP_CLASS_PERMANENT, "http_501", 0},
        {302, JP_CLASS_PERMANENT, "http_3xx", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        jp_http_verdict_t v = jp_classify_http(cases[i].status, CURLE_OK, 1, NULL, NULL, NOW);
        ck_assert_msg(v.cls == cases[i].cls, "status %ld: class %s", cases[i].status,
                      jp_class_name(v.cls));
        ck_assert_str_eq(v.reason, cases[i].reason);
        ck_assert_int_eq(v.outcome_unknown, cases[i].unknown);
    }
}
END_TEST

START_TEST(http_transport_classes)
{
    jp_http_verdict_t v = jp_classify_http(0, CURLE_OPERATION_TIMEDOUT, 1, NULL, NULL, NOW);
    ck_assert_int_eq(v.cls, JP_CLASS_RETRIABLE);
    ck_assert_str_eq(v.reason, "timeout");
    ck_assert_int_eq(v.outcome_unknown, 1);

    v = jp_classify_http(0, CURLE_COULDNT_CONNECT, 0, NULL, NULL, NOW);
    ck_assert_int_eq(v.cls, JP_CLASS_RETRIABLE);
    ck_assert_int_eq(v.outcome_unknown, 0);

    v = jp_classify_http(0, CURLE_PEER_FAILED_VERIFICATION, 0, NULL, NULL, NOW);
    ck_assert_int_eq(v.cls, JP_CLASS_QUARANTINE);
    ck_assert_str_eq(v.reason, "tls");

    v = jp_classify_http(0, CURLE_OUT_OF_MEMORY, 0, NULL, NULL, NOW);
    ck_assert_int_eq(v.cls, JP_CLASS_FATAL);

    v = jp_classify_http(0, CURLE_OK, 1, NULL, NULL, NOW); /* no status at all */
    ck_assert_int_eq(v.cls, JP_CLASS_RETRIABLE);
    ck_assert_int_eq(v.outcome_unknown, 1);
}
END_TEST

START_TEST(rate_limit_scopes)
{
    jp_http_verdict_t v = jp_classify_http(429, CURLE_OK, 1, "7", "jira-per-issue-on-write", NOW);
    ck_assert_int_eq(v.scope, JP_SCOPE_PER_ISSUE);
    ck_assert_int_eq(v.retry_after_ms, 7000);
    v = jp_classify_http(429, CURLE_OK, 1, NULL, "jira-quota-tenant-based", NOW);
    ck_assert_int_eq(v.scope, JP_SCOPE_QUOTA_SITE);
    ck_assert_int_eq(v.retry_after_ms, -1);
    v = jp_classify_http(429, CURLE_OK, 1, "1", "jira-quota-global-based", NOW);
    ck_assert_int_eq(v.scope, JP_SCOPE_QUOTA_GLOBAL);
    v = jp_classify_http(429, CURLE_OK, 1, "1", "jira-cost-based", NOW);
    ck_assert_int_eq(v.scope, JP_SCOPE_BURST);
    v = jp_classify_http(429, CURLE_OK, 1, "1", NULL, NOW);
    ck_assert_int_eq(v.scope, JP_SCOPE_BURST);
    v = jp_classify_http(503, CURLE_OK, 1, "3", NULL, NOW);
    ck_assert_int_eq(v.scope, JP_SCOPE_BURST);
    ck_assert_int_eq(v.retry_after_ms, 3000);
    v = jp_classify_http(503, CURLE_OK, 1, NULL, NULL, NOW);
    ck_assert_int_eq(v.scope, JP_SCOPE_NONE);
    v = jp_classify_http(400, CURLE_OK, 1, "5", NULL, NOW);
    ck_assert_int_eq(v.retry_after_ms, -1); /* only retriable answers carry a wait */
}
END_TEST

START_TEST(retry_after_forms)
{
    ck_assert_int_eq(jp_parse_retry_after("0", NOW), 0);
    ck_assert_int_eq(jp_parse_retry_after(" 120 ", NOW), 120000);
    ck_assert_int_eq(jp_parse_retry_after("999999", NOW), 86400000);
    ck_assert_int_eq(jp_parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", NOW), 30000);
    ck_assert_int_eq(jp_parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", NOW), 0);
    ck_assert_int_eq(jp_parse_retry_after("Thu, 01 Jan 2026 00:00:00 GMT", 1767225600 - 10), 10000);
    ck_assert_int_eq(jp_parse_retry_after("-1", NOW), -1);
    ck_assert_int_eq(jp_parse_retry_after("1.5", NOW), -1);
    ck_assert_int_eq(jp_parse_retry_after("soon", NOW), -1);
    ck_assert_int_eq(jp_parse_retry_after("Sun, 06 Foo 1994 08:50:07 GMT", NOW), -1);
    ck_assert_int_eq(jp_parse_retry_after("Sun, 06 Nov 1994 08:50:07 CET", NOW), -1);
    ck_assert_int_eq(jp_parse_retry_after(NULL, NOW), -1);
}
END_TEST

START_TEST(kafka_and_redis)
{
    ck_assert_int_eq(jp_classify_kafka(RD_KAFKA_RESP_ERR_NO_ERROR, 0, 0), JP_CLASS_OK);
    ck_assert_int_eq(jp_classify_kafka(RD_KAFKA_RESP_ERR__TRANSPORT, 0, 1), JP_CLASS_RETRIABLE);
    ck_assert_int_eq(jp_classify_kafka(RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, 0, 0), JP_CLASS_RETRIABLE);
    ck_assert_int_eq(jp_classify_kafka(RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER, 1, 0),
                     JP_CLASS_FATAL);
    ck_assert_int_eq(jp_classify_kafka(RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, 0, 0),
                     JP_CLASS_FATAL);
    ck_assert_int_eq(jp_classify_kafka(RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, 0, 0),
                     JP_CLASS_PERMANENT);

    ck_assert_int_eq(jp_classify_redis(JP_OK, NULL), JP_CLASS_OK);
    ck_assert_int_eq(jp_classify_redis(JP_ERR_TIMEOUT, NULL), JP_CLASS_RETRIABLE);
    ck_assert_int_eq(jp_classify_redis(JP_ERR_REDIS, NULL), JP_CLASS_RETRIABLE);
    ck_assert_int_eq(jp_classify_redis(JP_ERR_REDIS, "LOADING Redis is loading"),
                     JP_CLASS_RETRIABLE);
    ck_assert_int_eq(jp_classify_redis(JP_ERR_REDIS, "OOM command not allowed"),
                     JP_CLASS_RETRIABLE);
    ck_assert_int_eq(jp_classify_redis(JP_ERR_REDIS, "WRONGTYPE Operation"), JP_CLASS_FATAL);
    ck_assert_int_eq(jp_classify_redis(JP_ERR_REDIS, "BUSYKEY x"), JP_CLASS_FATAL);
    ck_assert_int_eq(jp_classify_redis(JP_ERR_NOMEM, NULL), JP_CLASS_FATAL);
}
END_TEST

static Suite *classify_suite(void)
{
    Suite *s = suite_create("classify");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, http_status_classes);
    tcase_add_test(tc, http_transport_classes);
    tcase_add_test(tc, rate_limit_scopes);
    tcase_add_test(tc, retry_after_forms);
    tcase_add_test(tc, kafka_and_redis);
    suite_add_tcase(s, tc);
    return s;
}

JP_CHECK_MAIN(classify_suite)
