#include "jiraprov/config.h"

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/check_main.h"
#include "../lib/fixture.h"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */

/* A valid configuration, lines 1-11; tests append keys from line 12 on. */
#define KAFKA "kafka:\n  bootstrap.servers: k:9092\n"
#define REDIS "redis:\n  url: redis://r:6379\n"
#define SITE_HEAD                                                                                  \
    "sites:\n"                                                                                     \
    "  - name: acme\n"                                                                             \
    "    jira_url: https://acme.atlassian.net\n"
#define SITE_AUTH                                                                                  \
    "    email: bot@acme.example\n"                                                                \
    "    api_token: tok-1234\n"                                                                    \
    "    scim_url: https://api.atlassian.com/scim/directory/d1\n"                                  \
    "    scim_api_key: key-1234\n"
#define BASE KAFKA REDIS SITE_HEAD SITE_AUTH

/* One directory for the whole run (unchecked fixture, in the parent), so it
 * is removed even when a test fails in its forked child. */
static char tmpdir[256];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/jp-test-config-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void setup_env(void)
{
    jp_log_clear_secrets();
    setenv("JP_TEST_API_TOKEN", "api-token-from-env", 1);
    setenv("JP_TEST_SCIM_KEY", "scim-key-from-env", 1);
    setenv("JP_TEST_ORG_KEY", "org-key-from-env", 1);
    setenv("JP_TEST_HMAC_KEY", "hmac-key-from-env", 1);
    unsetenv("JP_TEST_UNSET");
}

static void remove_tmpdir(void)
{
    DIR *d = opendir(tmpdir);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[512];
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(path, sizeof(path), "%s/%s", tmpdir, e->d_name);
        ck_assert_int_eq(unlink(path), 0);
    }
    closedir(d);
    ck_assert_int_eq(rmdir(tmpdir), 0);
}

static char *fixture(const char *name)
{
    static char path[1024];
    snprintf(path, sizeof(path), "%s/tests/unit/data/config/%s", testfix_source_dir(), name);
    return path;
}

/* Write `text` to tmpdir/name with `mode`; returns the path (static buffer). */
static const char *write_file(const char *name, const char *text, mode_t mode)
{
    static char path[512];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    ck_assert_int_eq(chmod(path, mode), 0);
    return path;
}

static jp_config_t *load_ok(const char *yaml)
{
    char err[1024] = "";
    jp_config_t *cfg = NULL;
    jp_err_t rc = jp_config_load_string(yaml, "t.yaml", &cfg, err, sizeof(err));
    ck_assert_msg(rc == JP_OK, "unexpected error: %s", err);
    ck_assert_ptr_nonnull(cfg);
    return cfg;
}

static void expect_error_rc(const char *yaml, jp_err_t want, const char *expected)
{
    char err[1024] = "";
    jp_config_t dummy;
    jp_config_t *cfg = &dummy; /* must be reset to NULL */
    jp_err_t rc = jp_config_load_string(yaml, "t.yaml", &cfg, err, sizeof(err));
    ck_assert_int_eq(rc, want);
    ck_assert_ptr_null(cfg);
    ck_assert_str_eq(err, expected);
}

static void expect_error(const char *yaml, const char *expected)
{
    expect_error_rc(yaml, JP_ERR_INVALID, expected);
}

static char *dump(const jp_config_t *cfg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    jp_config_dump(cfg, mem);
    fclose(mem);
    return buf;
}

static void check_default_rate_limits(const jp_config_rate_limits_t *rl)
{
    ck_assert(rl->shared);
    ck_assert_int_eq(rl->get_per_s, 100);
    ck_assert_int_eq(rl->post_per_s, 100);
    ck_assert_int_eq(rl->put_per_s, 50);
    ck_assert_int_eq(rl->delete_per_s, 50);
    ck_assert_int_eq(rl->issue_writes_per_2s, 20);
    ck_assert_int_eq(rl->issue_writes_per_30s, 100);
    ck_assert_int_eq(rl->hourly_points, 0);
    ck_assert_double_eq_tol(rl->deprovision_reserve, 0.2, 1e-9);
    ck_assert_double_eq_tol(rl->near_limit_slowdown, 0.5, 1e-9);
    ck_assert_int_eq(rl->quarantine_after, 3);
    ck_assert_int_eq(rl->quarantine_probe_s, 30);
}

/* Every default except kafka, redis.url and the site's required keys. */
static void check_defaults(const jp_config_t *cfg)
{
    ck_assert_str_eq(cfg->topics.events, "idhub.events");
    ck_assert_str_eq(cfg->topics.results, "jiraprov.results");
    ck_assert_str_eq(cfg->topics.recon, "jiraprov.recon");
    ck_assert_str_eq(cfg->topics.audit, "jiraprov.audit");
    ck_assert_str_eq(cfg->topics.dead_letter, "jiraprov.dlq");
    ck_assert_str_eq(cfg->consumer.group, "jiraprov");
    ck_assert_ptr_null(cfg->redis.password);
    ck_assert_int_eq(cfg->redis.timeout_ms, 2000);
    ck_assert_str_eq(cfg->redis.key_prefix, "jiraprov:");
    ck_assert_int_eq((int)cfg->site_count, 1);
    const jp_site_t *s = &cfg->sites[0];
    ck_assert_str_eq(s->admin_url, "https://api.atlassian.com");
    ck_assert_ptr_null(s->org_api_key);
    ck_assert_int_eq(s->account_lifecycle, JP_CONFIG_LIFECYCLE_SCIM);
    ck_assert_int_eq(s->group_membership, JP_CONFIG_GROUPS_SCIM);
    ck_assert(s->tls_verify);
    ck_assert_ptr_null(s->ca_file);
    ck_assert_int_eq(s->timeout_ms, 30000);
    ck_assert(!s->rate_limits_overridden);
    check_default_rate_limits(&s->rate_limits);
    ck_assert_int_eq((int)cfg->mapping_count, 11);
    static const char *pairs[][2] = {
        {"login", "userName"},
        {"email", "emails[primary].value"},
        {"firstName", "name.givenName"},
        {"lastName", "name.familyName"},
        {"displayName", "displayName"},
        {"nickName", "nickName"},
        {"jobTitle", "title"},
        {"department", "department"},
        {"organizationName", "organization"},
        {"timezone", "timezone"},
        {"externalId", "externalId"},
    };
    for (size_t i = 0; i < 11; i++) {
        ck_assert_str_eq(cfg->mapping[i].idhub, pairs[i][0]);
        ck_assert_str_eq(cfg->mapping[i].scim, pairs[i][1]);
        ck_assert_int_eq(cfg->mapping[i].direction, JP_CONFIG_DIR_BOTH);
    }
    ck_assert_int_eq(cfg->retry.max_attempts, 6);
    ck_assert_int_eq(cfg->retry.base_delay_ms, 2000);
    ck_assert_int_eq(cfg->retry.max_delay_ms, 60000);
    ck_assert_int_eq(cfg->retry.max_age_s, 86400);
    ck_assert_double_eq_tol(cfg->retry.jitter, 0.3, 1e-9);
    check_default_rate_limits(&cfg->rate_limits);
    char expect_id[300], host[256] = "";
    gethostname(host, sizeof(host) - 1);
    snprintf(expect_id, sizeof(expect_id), "%s-%ld", host, (long)getpid());
    ck_assert_str_eq(cfg->worker.instance_id, expect_id);
    ck_assert_int_eq(cfg->worker.max_in_flight, 512);
    ck_assert_int_eq(cfg->worker.max_buffered_events, 10000);
    ck_assert_int_eq(cfg->worker.drain_timeout_ms, 30000);
    ck_assert_int_eq(cfg->worker.outcome_ttl_s, 604800);
    ck_assert_int_eq(cfg->event.max_bytes, 1048576);
    ck_assert_str_eq(cfg->http.listen, "127.0.0.1:9464");
    ck_assert_int_eq(cfg->log.level, JP_LOG_INFO);
    ck_assert_ptr_null(cfg->audit.hmac_key);
    ck_assert_str_eq(cfg->recon.key, "email");
    ck_assert_int_eq(cfg->recon.page_concurrency, 4);
    ck_assert_int_eq(cfg->recon.members_per_record, 1000);
    ck_assert_int_eq(cfg->recon.lease_s, 15);
}

/* ------------------------------------------------------------------------ */
/* Loading valid files                                                      */

START_TEST(example_file_loads_with_defaults)
{
    setenv("ACME_JIRA_API_TOKEN", "acme-api-token", 1);
    setenv("ACME_SCIM_API_KEY", "acme-scim-key", 1);
    unsetenv("KAFKA_BOOTSTRAP");
    char path[1024], err[1024] = "";
    snprintf(path, sizeof(path), "%s/config/jiraprov.example.yaml", testfix_source_dir());
    jp_config_t *cfg = NULL;
    ck_assert_msg(jp_config_load(path, &cfg, err, sizeof(err)) == JP_OK, "%s", err);
    check_defaults(cfg);
    ck_assert_int_eq((int)cfg->kafka_count, 1);
    ck_assert_str_eq(cfg->kafka[0].key, "bootstrap.servers");
    ck_assert_str_eq(cfg->kafka[0].value, "127.0.0.1:9092");
    ck_assert_str_eq(cfg->redis.url, "redis://127.0.0.1:6379/0");
    const jp_site_t *s = jp_config_site(cfg, "acme");
    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(s->api_token, "acme-api-token");
    ck_assert_str_eq(s->scim_api_key, "acme-scim-key");
    ck_assert_str_eq(s->jira_url, "https://acme.atlassian.net");
    ck_assert_ptr_null(jp_config_site(cfg, "nope"));
    jp_config_destroy(cfg);
}
END_TEST

START_TEST(minimal_file_gets_all_defaults)
{
    char err[1024] = "";
    jp_config_t *cfg = NULL;
    ck_assert_msg(jp_config_load(fixture("minimal.yaml"), &cfg, err, sizeof(err)) == JP_OK, "%s",
                  err);
    check_defaults(cfg);
    ck_assert_str_eq(cfg->source, fixture("minimal.yaml"));
    ck_assert_str_eq(cfg->redis.host, "localhost");
    ck_assert_int_eq(cfg->redis.port, 6379);
    ck_assert_int_eq(cfg->redis.db, 0);
    ck_assert_ptr_null(cfg->redis.unix_path);
    const jp_site_t *s = &cfg->sites[0];
    ck_assert_str_eq(s->name, "acme");
    ck_assert_str_eq(s->jira_url, "https://acme.atlassian.net"); /* trailing '/' removed */
    ck_assert_str_eq(s->email, "bot@acme.example");
    ck_assert_str_eq(s->api_token, "api-token-from-env");
    ck_assert_str_eq(s->scim_api_key, "scim-key-from-env");
    jp_config_destroy(cfg);
    jp_config_destroy(NULL);
}
END_TEST

START_TEST(every_key_overridden)
{
    char err[1024] = "";
    jp_config_t *cfg = NULL;
    ck_assert_msg(jp_config_load(fixture("overrides.yaml"), &cfg, err, sizeof(err)) == JP_OK, "%s",
                  err);
    ck_assert_int_eq((int)cfg->kafka_count, 4);
    ck_assert_str_eq(cfg->kafka[3].key, "enable.idempotence");
    ck_assert_str_eq(cfg->kafka[3].value, "true");
    ck_assert_str_eq(cfg->kafka[2].value, "5000");
    ck_assert_str_eq(cfg->topics.events, "ev");
    ck_assert_str_eq(cfg->topics.dead_letter, "dlq");
    ck_assert_str_eq(cfg->consumer.group, "g1");
    ck_assert_str_eq(cfg->redis.host, "::1");
    ck_assert_int_eq(cfg->redis.port, 6390);
    ck_assert_int_eq(cfg->redis.db, 3);
    ck_assert_int_eq(cfg->redis.timeout_ms, 500);
    ck_assert_str_eq(cfg->redis.key_prefix, "");
    ck_assert_int_eq((int)cfg->site_count, 2);
    const jp_site_t *a = jp_config_site(cfg, "acme"), *b = jp_config_site(cfg, "beta-2");
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_str_eq(a->admin_url, "http://127.0.0.1:8080/admin");
    ck_assert_str_eq(a->org_api_key, "org-key-from-env");
    ck_assert_int_eq(a->account_lifecycle, JP_CONFIG_LIFECYCLE_ADMIN);
    ck_assert_int_eq(a->group_membership, JP_CONFIG_GROUPS_JIRA);
    ck_assert(!a->tls_verify);
    ck_assert_str_eq(a->ca_file, "/etc/ssl/ca.pem");
    ck_assert_int_eq(a->timeout_ms, 1500);
    /* per-site override on top of the top-level block, wherever it is in the file */
    ck_assert(a->rate_limits_overridden);
    ck_assert_int_eq(a->rate_limits.get_per_s, 7);
    ck_assert(!a->rate_limits.shared);
    ck_assert_int_eq(a->rate_limits.post_per_s, 12);
    ck_assert(!b->rate_limits_overridden);
    ck_assert_int_eq(b->rate_limits.get_per_s, 11);
    ck_assert_int_eq(b->rate_limits.quarantine_probe_s, 5);
    ck_assert_double_eq_tol(b->rate_limits.deprovision_reserve, 0.5, 1e-9);
    ck_assert_int_eq((int)cfg->mapping_count, 3);
    ck_assert_int_eq(cfg->mapping[1].direction, JP_CONFIG_DIR_TO_JIRA);
    ck_assert_str_eq(cfg->mapping[2].scim,
                     "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department");
    ck_assert_str_eq(jp_config_direction_name(cfg->mapping[2].direction), "from_jira");
    ck_assert_int_eq(cfg->retry.max_attempts, 3);
    ck_assert_double_eq_tol(cfg->retry.jitter, 0, 1e-9);
    ck_assert_int_eq(cfg->rate_limits.hourly_points, 17);
    ck_assert_str_eq(cfg->worker.instance_id, "w-1");
    ck_assert_int_eq(cfg->worker.drain_timeout_ms, 0);
    ck_assert_int_eq(cfg->event.max_bytes, 2048);
    ck_assert_str_eq(cfg->http.listen, "");
    ck_assert_int_eq(cfg->log.level, JP_LOG_DEBUG);
    ck_assert_str_eq(cfg->audit.hmac_key, "hmac-key-from-env");
    ck_assert_str_eq(cfg->recon.key, "login");
    ck_assert_int_eq(cfg->recon.page_concurrency, 2);
    ck_assert_int_eq(cfg->recon.members_per_record, 200);
    ck_assert_int_eq(cfg->recon.lease_s, 5);
    jp_config_destroy(cfg);
}
END_TEST

START_TEST(redis_url_forms)
{
    jp_config_t *cfg = load_ok(KAFKA "redis:\n  url: unix:///run/redis.sock\n" SITE_HEAD SITE_AUTH);
    ck_assert_str_eq(cfg->redis.unix_path, "/run/redis.sock");
    ck_assert_ptr_null(cfg->redis.host);
    jp_config_destroy(cfg);
    cfg = load_ok(KAFKA "redis:\n  url: redis://app:p%40ss-word@h:1/2\n" SITE_HEAD SITE_AUTH);
    ck_assert_str_eq(cfg->redis.username, "app");
    ck_assert_str_eq(cfg->redis.password, "p@ss-word");
    ck_assert_str_eq(cfg->redis.host, "h");
    ck_assert_int_eq(cfg->redis.port, 1);
    ck_assert_int_eq(cfg->redis.db, 2);
    char *text = dump(cfg);
    ck_assert_ptr_nonnull(strstr(text, "url: \"redis://app:[redacted]@h:1/2\""));
    ck_assert_ptr_null(strstr(text, "ss-word"));
    free(text);
    jp_config_destroy(cfg);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Errors: exact messages with positions                                    */

START_TEST(error_unknown_key)
{
    char err[1024] = "";
    jp_config_t *cfg = NULL;
    ck_assert_int_eq(jp_config_load(fixture("unknown_key.yaml"), &cfg, err, sizeof(err)),
                     JP_ERR_INVALID);
    char expected[1024];
    snprintf(expected, sizeof(expected),
             "%s:7:5: sites[0].jira_ulr: unknown key (expected one of: name, jira_url, email, "
             "api_token, api_token_file, scim_url, scim_api_key, scim_api_key_file, admin_url, "
             "org_api_key, org_api_key_file, account_lifecycle, group_membership, tls_verify, "
             "ca_file, timeout_ms, rate_limits)",
             fixture("unknown_key.yaml"));
    ck_assert_str_eq(err, expected);
    expect_error(
        BASE "retyr:\n  max_attempts: 1\n",
        "t.yaml:12:1: retyr: unknown key (expected one of: kafka, topics, consumer, "
        "redis, sites, mapping, retry, rate_limits, worker, event, http, log, audit, recon)");
    expect_error(BASE "rate_limits:\n  get_per_sec: 1\n",
                 "t.yaml:13:3: rate_limits.get_per_sec: unknown key (expected one of: shared, "
                 "get_per_s, post_per_s, put_per_s, delete_per_s, issue_writes_per_2s, "
                 "issue_writes_per_30s, hourly_points, deprovision_reserve, near_limit_slowdown, "
                 "quarantine_after, quarantine_probe_s)");
}
END_TEST

START_TEST(error_wrong_type)
{
    expect_error(BASE "retry:\n  max_attempts: ten\n",
                 "t.yaml:13:17: retry.max_attempts: expected an integer between 1 and 100, got "
                 "\"ten\"");
    expect_error(BASE "    tls_verify: yes\n",
                 "t.yaml:12:17: sites[0].tls_verify: expected true or false, got \"yes\"");
    expect_error(BASE "retry:\n  jitter: [1]\n",
                 "t.yaml:13:11: retry.jitter: expected a number between 0 and 1, got a sequence");
    expect_error(BASE "retry:\n  base_delay_ms: 1.5\n",
                 "t.yaml:13:18: retry.base_delay_ms: expected an integer between 1 and 3600000, "
                 "got \"1.5\"");
    expect_error(BASE "retry:\n", "t.yaml:12:7: retry: expected a mapping, got null");
    expect_error(BASE "http:\n  listen:\n",
                 "t.yaml:13:10: http.listen: expected host:port (or \"\" to disable), got null");
    expect_error(BASE "    account_lifecycle: manual\n",
                 "t.yaml:12:24: sites[0].account_lifecycle: expected one of: scim, admin, got "
                 "\"manual\"");
    expect_error(BASE "log:\n  level: loud\n",
                 "t.yaml:13:10: log.level: expected one of: debug, info, warn, error, got "
                 "\"loud\"");
    expect_error(
        BASE "sites2: 1\n" /* unknown beats type */,
        "t.yaml:12:1: sites2: unknown key (expected one of: kafka, topics, consumer, "
        "redis, sites, mapping, retry, rate_limits, worker, event, http, log, audit, recon)");
    expect_error("- a\n- b\n", "t.yaml:1:1: expected a mapping at the top level, got a sequence");
    expect_error("", "t.yaml:1:1: the configuration is empty (expected a mapping with kafka, "
                     "redis and sites)");
    expect_error(BASE "topics:\n  events: \"bad topic\"\n",
                 "t.yaml:13:11: topics.events: expected a Kafka topic name (1 to 249 characters "
                 "from [A-Za-z0-9._-]), got \"bad topic\"");
}
END_TEST

START_TEST(error_out_of_range)
{
    expect_error(BASE "retry:\n  max_attempts: 500\n",
                 "t.yaml:13:17: retry.max_attempts: expected an integer between 1 and 100, got "
                 "\"500\"");
    expect_error(BASE "rate_limits:\n  deprovision_reserve: 0.95\n",
                 "t.yaml:13:24: rate_limits.deprovision_reserve: expected a number between 0 and "
                 "0.9, got \"0.95\"");
    expect_error(BASE "    rate_limits:\n      get_per_s: 0\n",
                 "t.yaml:13:18: sites[0].rate_limits.get_per_s: expected an integer between 1 "
                 "and 100000, got \"0\"");
    expect_error(BASE "retry:\n  base_delay_ms: 5000\n  max_delay_ms: 4000\n",
                 "t.yaml:14:17: retry.max_delay_ms: expected at least retry.base_delay_ms (5000), "
                 "got 4000");
    expect_error(BASE "retry:\n  max_attempts: 99999999999999999999\n",
                 "t.yaml:13:17: retry.max_attempts: expected an integer between 1 and 100, got "
                 "\"99999999999999999999\"");
}
END_TEST

START_TEST(error_missing_required)
{
    expect_error(KAFKA REDIS, "t.yaml:1:1: sites: required key is missing (at least one site)");
    expect_error(KAFKA REDIS "sites: []\n", "t.yaml:5:8: sites: expected at least one site");
    expect_error(KAFKA SITE_HEAD SITE_AUTH, "t.yaml:1:1: redis.url: required key is missing");
    expect_error(KAFKA "redis:\n  timeout_ms: 5\n" SITE_HEAD SITE_AUTH,
                 "t.yaml:4:3: redis.url: required key is missing");
    expect_error("kafka:\n  client.id: x\n" REDIS SITE_HEAD SITE_AUTH,
                 "t.yaml:2:3: kafka.bootstrap.servers: required key is missing");
    expect_error(REDIS SITE_HEAD SITE_AUTH,
                 "t.yaml:1:1: kafka.bootstrap.servers: required key is missing");
    expect_error(KAFKA REDIS SITE_HEAD "    api_token: tok-1234\n"
                                       "    scim_url: https://api.atlassian.com/scim/directory/d1\n"
                                       "    scim_api_key: key-1234\n",
                 "t.yaml:6:5: sites[0].email: required key is missing");
    expect_error(BASE "    account_lifecycle: admin\n",
                 "t.yaml:6:5: sites[0].org_api_key: required when account_lifecycle is admin");
}
END_TEST

START_TEST(error_duplicate_key)
{
    expect_error(BASE "retry:\n  max_attempts: 3\n  max_attempts: 4\n",
                 "t.yaml:14:3: retry.max_attempts: duplicate key (first at 13:3)");
    expect_error(BASE "kafka:\n  acks: all\n", "t.yaml:12:1: kafka: duplicate key (first at 1:1)");
    expect_error(BASE "    api_token_file: /x\n",
                 "t.yaml:12:5: sites[0].api_token_file: give either api_token or api_token_file, "
                 "not both");
}
END_TEST

START_TEST(error_duplicate_site)
{
    expect_error(BASE "  - name: acme\n"
                      "    jira_url: https://acme2.atlassian.net\n" SITE_AUTH,
                 "t.yaml:12:11: sites[1].name: duplicate site name \"acme\" (also sites[0])");
    expect_error(BASE "  - name: Acme!\n",
                 "t.yaml:12:11: sites[1].name: expected a site name (1 to 64 characters from "
                 "[a-z0-9_-]), got \"Acme!\"");
}
END_TEST

START_TEST(error_bad_url)
{
    expect_error(KAFKA REDIS "sites:\n  - name: acme\n    jira_url: ftp://acme\n" SITE_AUTH,
                 "t.yaml:7:15: sites[0].jira_url: expected an http:// or https:// URL, got "
                 "\"ftp://acme\"");
    expect_error(BASE "    admin_url: https://\n",
                 "t.yaml:12:16: sites[0].admin_url: expected an http:// or https:// URL, got "
                 "\"https://\"");
    /* a Redis URL may carry a password: never echoed */
    expect_error(KAFKA "redis:\n  url: http://:s3cret-pw@r\n" SITE_HEAD SITE_AUTH,
                 "t.yaml:4:8: redis.url: expected redis://[[user]:password@]host[:port][/db] or "
                 "unix:///path");
    expect_error(KAFKA "redis:\n  url: redis://r:99999\n" SITE_HEAD SITE_AUTH,
                 "t.yaml:4:8: redis.url: expected redis://[[user]:password@]host[:port][/db] or "
                 "unix:///path");
}
END_TEST

START_TEST(error_yaml_syntax)
{
    char err[1024] = "", expected[1024];
    jp_config_t *cfg = NULL;
    ck_assert_int_eq(jp_config_load(fixture("syntax_error.yaml"), &cfg, err, sizeof(err)),
                     JP_ERR_INVALID);
    ck_assert_ptr_null(cfg);
    snprintf(expected, sizeof(expected),
             "%s:5:14: YAML syntax error: mapping values are not allowed in this context",
             fixture("syntax_error.yaml"));
    ck_assert_str_eq(err, expected);
    expect_error("kafka: [a, b\n", "t.yaml:2:1: YAML syntax error: did not find expected ',' or "
                                   "']' (while parsing a flow sequence at 1:8)");
    expect_error(BASE "---\nx: 1\n",
                 "t.yaml:12:1: expected a single YAML document, found a second one");
    expect_error("a: &x 1\nb: *x\n", "t.yaml:2:4: YAML aliases (*name) are not supported");
    char deep[128];
    memset(deep, '[', 40);
    memset(deep + 40, ']', 40);
    deep[80] = '\0';
    expect_error(deep, "t.yaml:1:34: nesting deeper than 32 levels");
}
END_TEST

START_TEST(error_unset_variable)
{
    expect_error(KAFKA REDIS SITE_HEAD "    email: ${JP_TEST_UNSET}\n",
                 "t.yaml:8:12: sites[0].email: environment variable JP_TEST_UNSET is not set (use "
                 "${JP_TEST_UNSET:-default} for a default)");
    expect_error(BASE "consumer:\n  group: ${JP_TEST_UNSET\n",
                 "t.yaml:13:10: consumer.group: unterminated ${ (write $$ for a literal $)");
    expect_error(BASE "consumer:\n  group: ${1BAD}\n",
                 "t.yaml:13:10: consumer.group: invalid ${...} reference: a variable name is "
                 "[A-Za-z_][A-Za-z0-9_]* (write $$ for a literal $)");
}
END_TEST

START_TEST(error_missing_secret_file)
{
    char yaml[2048], expected[1024];
    snprintf(yaml, sizeof(yaml),
             KAFKA REDIS SITE_HEAD "    email: bot@acme.example\n"
                                   "    api_token_file: %s/nope\n"
                                   "    scim_url: https://api.atlassian.com/scim/directory/d1\n"
                                   "    scim_api_key: key-1234\n",
             tmpdir);
    snprintf(expected, sizeof(expected),
             "t.yaml:9:21: sites[0].api_token_file: cannot read \"%s/nope\": No such file or "
             "directory",
             tmpdir);
    expect_error_rc(yaml, JP_ERR_IO, expected);
    snprintf(yaml, sizeof(yaml), BASE "    org_api_key_file: %s\n", tmpdir);
    snprintf(expected, sizeof(expected),
             "t.yaml:12:23: sites[0].org_api_key_file: cannot read \"%s\": not a regular file",
             tmpdir);
    expect_error_rc(yaml, JP_ERR_IO, expected);
    write_file("empty", "\n", 0600);
    snprintf(yaml, sizeof(yaml), BASE "audit:\n  hmac_key_file: %s/empty\n", tmpdir);
    snprintf(expected, sizeof(expected),
             "t.yaml:13:18: audit.hmac_key_file: cannot use \"%s/empty\": file is empty", tmpdir);
    expect_error(yaml, expected);
}
END_TEST

START_TEST(error_mapping)
{
    expect_error(BASE "mapping: [{idhub: login, scim: userName}]\n",
                 "t.yaml:12:10: mapping: email must be mapped (add an entry with idhub: email)");
    expect_error(BASE "mapping:\n  - {idhub: email, scim: \"emails[primary].value\"}\n",
                 "t.yaml:13:3: mapping: login must be mapped (add an entry with idhub: login)");
    expect_error(BASE "mapping:\n  - {idhub: login, scim: userName}\n"
                      "  - {idhub: shoeSize, scim: x}\n",
                 "t.yaml:14:13: mapping[1].idhub: expected one of: login, email, firstName, "
                 "lastName, displayName, nickName, jobTitle, department, organizationName, "
                 "timezone, externalId, got \"shoeSize\"");
    expect_error(BASE "mapping:\n  - {idhub: login, scim: userName}\n"
                      "  - {idhub: login, scim: externalId}\n",
                 "t.yaml:14:13: mapping[1].idhub: \"login\" is already mapped by mapping[0]");
    expect_error(BASE "mapping:\n  - {idhub: login, scim: userName, direction: up}\n",
                 "t.yaml:13:47: mapping[0].direction: expected one of: both, to_jira, from_jira, "
                 "got \"up\"");
    expect_error(BASE "mapping:\n  - {idhub: login}\n",
                 "t.yaml:13:5: mapping[0].scim: required key is missing");
    /* The reconciliation key must be read from Jira. */
    expect_error(BASE "mapping:\n  - {idhub: login, scim: userName}\n"
                      "  - {idhub: email, scim: \"emails[primary].value\", direction: to_jira}\n",
                 "t.yaml:1:1: recon.key: expected an attribute mapped from Jira (direction both "
                 "or from_jira), got \"email\" (mapped to_jira only)");
    expect_error(BASE "recon:\n  key: jobTitle\n"
                      "mapping:\n  - {idhub: login, scim: userName}\n"
                      "  - {idhub: email, scim: \"emails[primary].value\"}\n",
                 "t.yaml:13:8: recon.key: expected an attribute mapped from Jira (direction both "
                 "or from_jira), got \"jobTitle\" (not mapped)");
    expect_error(BASE "recon:\n  members_per_record: 10\n",
                 "t.yaml:13:23: recon.members_per_record: expected an integer between 50 and "
                 "4000, got \"10\"");
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Expansion and secrets                                                    */

START_TEST(variable_expansion)
{
    setenv("JP_TEST_GROUP", "grp", 1);
    setenv("JP_TEST_EMPTY", "", 1);
    jp_config_t *cfg = load_ok(KAFKA SITE_HEAD SITE_AUTH
                               "consumer:\n  group: pre-${JP_TEST_GROUP}-$$x-$y\n"
                               "topics:\n  events: ${JP_TEST_UNSET:-ev.default}\n"
                               "  results: ${JP_TEST_EMPTY:-res.default}\n"
                               "  recon: \"${JP_TEST_GROUP:-unused}\"\n"
                               "redis:\n  url: redis://r\n  timeout_ms: ${JP_TEST_UNSET:-77}\n"
                               "  key_prefix: ${JP_TEST_EMPTY}\n");
    ck_assert_str_eq(cfg->consumer.group, "pre-grp-$x-$y");
    ck_assert_str_eq(cfg->topics.events, "ev.default");
    ck_assert_str_eq(cfg->topics.results, "res.default");
    ck_assert_str_eq(cfg->topics.recon, "grp");
    ck_assert_int_eq(cfg->redis.timeout_ms, 77);
    ck_assert_str_eq(cfg->redis.key_prefix, "");
    jp_config_destroy(cfg);
}
END_TEST

START_TEST(secret_file_read_and_redacted)
{
    char yaml[2048], out[256];
    write_file("token", "file-token-9876\n", 0600);
    write_file("scim", "scim-file-5432\r\n", 0600);
    write_file("kafka", "kafka-pw-1111", 0600);
    snprintf(yaml, sizeof(yaml),
             "kafka:\n  bootstrap.servers: k:9092\n  sasl.password_file: %s/kafka\n" REDIS SITE_HEAD
             "    email: bot@acme.example\n"
             "    api_token_file: %s/token\n"
             "    scim_url: https://api.atlassian.com/scim/directory/d1\n"
             "    scim_api_key_file: ${JP_TEST_DIR}/scim\n",
             tmpdir, tmpdir);
    setenv("JP_TEST_DIR", tmpdir, 1);
    jp_log_redact("x file-token-9876 y", out, sizeof(out));
    ck_assert_str_eq(out, "x file-token-9876 y"); /* not registered yet */
    jp_config_t *cfg = load_ok(yaml);
    ck_assert_str_eq(cfg->sites[0].api_token, "file-token-9876");
    ck_assert_str_eq(cfg->sites[0].scim_api_key, "scim-file-5432");
    ck_assert_str_eq(cfg->kafka[1].key, "sasl.password");
    ck_assert_str_eq(cfg->kafka[1].value, "kafka-pw-1111");
    ck_assert(cfg->kafka[1].secret);
    jp_log_redact("x file-token-9876 scim-file-5432 kafka-pw-1111 y", out, sizeof(out));
    ck_assert_str_eq(out, "x [redacted] [redacted] [redacted] y");
    jp_config_destroy(cfg);
    /* inline and ${VAR} secrets are registered too */
    cfg =
        load_ok(KAFKA REDIS SITE_HEAD "    email: bot@acme.example\n"
                                      "    api_token: ${JP_TEST_API_TOKEN}\n"
                                      "    scim_url: https://api.atlassian.com/scim/directory/d1\n"
                                      "    scim_api_key: inline-scim-key\n");
    jp_log_redact("api-token-from-env inline-scim-key", out, sizeof(out));
    ck_assert_str_eq(out, "[redacted] [redacted]");
    jp_config_destroy(cfg);
}
END_TEST

START_TEST(world_readable_inline_secret_refused)
{
    char err[1024] = "", expected[1024];
    jp_config_t *cfg = NULL;
    const char *path = write_file("w.yaml", BASE, 0644);
    ck_assert_int_eq(jp_config_load(path, &cfg, err, sizeof(err)), JP_ERR_INVALID);
    ck_assert_ptr_null(cfg);
    snprintf(expected, sizeof(expected),
             "%s:9:16: sites[0].api_token: secret written inline in a world-readable file (mode "
             "0644); use api_token_file or ${VAR}, or make the file unreadable to others (chmod "
             "o-r)",
             path);
    ck_assert_str_eq(err, expected);
    ck_assert_ptr_null(strstr(err, "tok-1234"));

    /* the same file, private: accepted */
    ck_assert_int_eq(chmod(path, 0600), 0);
    ck_assert_msg(jp_config_load(path, &cfg, err, sizeof(err)) == JP_OK, "%s", err);
    ck_assert_str_eq(cfg->sites[0].api_token, "tok-1234");
    jp_config_destroy(cfg);

    /* world-readable with secrets from ${VAR} and *_file only: accepted */
    char yaml[2048];
    write_file("scim", "scim-secret-1\n", 0600);
    snprintf(yaml, sizeof(yaml),
             KAFKA REDIS SITE_HEAD "    email: bot@acme.example\n"
                                   "    api_token: ${JP_TEST_API_TOKEN}\n"
                                   "    scim_url: https://api.atlassian.com/scim/directory/d1\n"
                                   "    scim_api_key_file: %s/scim\n",
             tmpdir);
    path = write_file("w2.yaml", yaml, 0644);
    ck_assert_msg(jp_config_load(path, &cfg, err, sizeof(err)) == JP_OK, "%s", err);
    jp_config_destroy(cfg);

    /* a default inside ${VAR:-...} is written in the file: inline */
    path = write_file("w3.yaml", "audit:\n  hmac_key: ${JP_TEST_UNSET:-literal-key}\n", 0604);
    ck_assert_int_eq(jp_config_load(path, &cfg, err, sizeof(err)), JP_ERR_INVALID);
    ck_assert_ptr_nonnull(
        strstr(err, ":2:13: audit.hmac_key: secret written inline in a world-readable file "
                    "(mode 0604); use hmac_key_file"));

    /* kafka secrets and a password inside redis.url count too */
    path = write_file("w4.yaml",
                      "kafka:\n  bootstrap.servers: k:9092\n  sasl.password: kpw-12345\n", 0644);
    ck_assert_int_eq(jp_config_load(path, &cfg, err, sizeof(err)), JP_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, ":3:18: kafka.sasl.password: secret written inline in a "
                                      "world-readable file (mode 0644); use sasl.password_file"));
    path = write_file("w5.yaml",
                      "kafka:\n  bootstrap.servers: k:9092\nredis:\n  url: redis://:rpw-1234@r\n",
                      0644);
    ck_assert_int_eq(jp_config_load(path, &cfg, err, sizeof(err)), JP_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, ":4:8: redis.url: password written inline"));
    ck_assert_ptr_null(strstr(err, "rpw-1234"));
    setenv("JP_TEST_RPW", "rpw-1234", 1);
    path = write_file("w6.yaml",
                      "kafka:\n  bootstrap.servers: k:9092\nredis:\n"
                      "  url: redis://:${JP_TEST_RPW}@r\n" SITE_HEAD
                      "    email: bot@acme.example\n    api_token: ${JP_TEST_API_TOKEN}\n"
                      "    scim_url: https://api.atlassian.com/scim/directory/d1\n"
                      "    scim_api_key: ${JP_TEST_SCIM_KEY}\n",
                      0644);
    ck_assert_msg(jp_config_load(path, &cfg, err, sizeof(err)) == JP_OK, "%s", err);
    ck_assert_str_eq(cfg->redis.password, "rpw-1234");
    jp_config_destroy(cfg);
}
END_TEST

START_TEST(dump_redacts_secrets)
{
    char yaml[2048];
    write_file("org", "org-secret-777\n", 0600);
    snprintf(yaml, sizeof(yaml),
             "kafka:\n  bootstrap.servers: k:9092\n  sasl.password: kafka-secret-1\n"
             "  client.id: \"say \\\"hi\\\"\"\n"
             "redis:\n  url: redis://r\n  password: redis-secret-2\n" SITE_HEAD SITE_AUTH
             "    org_api_key_file: %s/org\n"
             "audit:\n  hmac_key: hmac-secret-3\n",
             tmpdir);
    jp_config_t *cfg = load_ok(yaml);
    char *text = dump(cfg);
    static const char *secrets[] = {"kafka-secret-1", "redis-secret-2", "tok-1234",
                                    "key-1234",       "org-secret-777", "hmac-secret-3"};
    for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
        ck_assert_msg(!strstr(text, secrets[i]), "%s leaked in dump", secrets[i]);
    ck_assert_ptr_nonnull(strstr(text, "  sasl.password: \"[redacted]\"\n"));
    ck_assert_ptr_nonnull(strstr(text, "  client.id: \"say \\\"hi\\\"\"\n"));
    ck_assert_ptr_nonnull(strstr(text, "  password: \"[redacted]\"\n"));
    ck_assert_ptr_nonnull(strstr(text, "    api_token: \"[redacted]\"\n"));
    ck_assert_ptr_nonnull(strstr(text, "    scim_api_key: \"[redacted]\"\n"));
    ck_assert_ptr_nonnull(strstr(text, "    org_api_key: \"[redacted]\"\n"));
    ck_assert_ptr_nonnull(strstr(text, "  hmac_key: \"[redacted]\"\n"));
    ck_assert_ptr_nonnull(strstr(text, "\nretry:\n  max_attempts: 6\n"));
    ck_assert_ptr_nonnull(strstr(text, "    # ca_file: (not set)\n"));
    ck_assert_ptr_nonnull(strstr(text, "  - idhub: \"email\"\n    scim: \"emails[primary].value\"\n"
                                       "    direction: both\n"));
    free(text);
    jp_config_destroy(cfg);
}
END_TEST

START_TEST(secret_never_in_errstr)
{
    /* errors about secret values name the key, never the value */
    expect_error(BASE "redis:\n  password: [s3cret-x]\n",
                 "t.yaml:12:1: redis: duplicate key (first at 3:1)");
    expect_error(KAFKA "redis:\n  url: redis://r\n  password: \"\"\n" SITE_HEAD SITE_AUTH,
                 "t.yaml:5:13: redis.password: expected a non-empty string");
    expect_error(KAFKA
                 "redis:\n  url: redis://:a-pw-123@r\n  password: b-pw-123\n" SITE_HEAD SITE_AUTH,
                 "t.yaml:4:8: redis.url: the password is given both in the URL and in "
                 "redis.password; give it once");
}
END_TEST

/* ------------------------------------------------------------------------ */
/* librdkafka                                                               */

START_TEST(kafka_conf_applies_and_reports)
{
    jp_config_t *cfg = load_ok("kafka:\n  bootstrap.servers: k1:9092\n  client.id: jp-test\n"
                               "  socket.timeout.ms: 1234\n" REDIS SITE_HEAD SITE_AUTH);
    char err[1024] = "", val[64];
    size_t vlen = sizeof(val);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    ck_assert_msg(jp_config_kafka_conf(cfg, conf, err, sizeof(err)) == JP_OK, "%s", err);
    ck_assert_int_eq(rd_kafka_conf_get(conf, "client.id", val, &vlen), RD_KAFKA_CONF_OK);
    ck_assert_str_eq(val, "jp-test");
    vlen = sizeof(val);
    ck_assert_int_eq(rd_kafka_conf_get(conf, "socket.timeout.ms", val, &vlen), RD_KAFKA_CONF_OK);
    ck_assert_str_eq(val, "1234");
    vlen = sizeof(val);
    ck_assert_int_eq(rd_kafka_conf_get(conf, "bootstrap.servers", val, &vlen), RD_KAFKA_CONF_OK);
    ck_assert_str_eq(val, "k1:9092");
    rd_kafka_conf_destroy(conf);
    jp_config_destroy(cfg);

    cfg = load_ok(
        "kafka:\n  bootstrap.servers: k1:9092\n  no.such.property: 1\n" REDIS SITE_HEAD SITE_AUTH);
    conf = rd_kafka_conf_new();
    ck_assert_int_eq(jp_config_kafka_conf(cfg, conf, err, sizeof(err)), JP_ERR_INVALID);
    ck_assert_str_eq(err, "t.yaml:3:3: kafka.no.such.property: unknown librdkafka property");
    rd_kafka_conf_destroy(conf);
    jp_config_destroy(cfg);

    cfg =
        load_ok("kafka:\n  bootstrap.servers: k1:9092\n  socket.timeout.ms: soon\n" REDIS SITE_HEAD
                    SITE_AUTH);
    conf = rd_kafka_conf_new();
    ck_assert_int_eq(jp_config_kafka_conf(cfg, conf, err, sizeof(err)), JP_ERR_INVALID);
    ck_assert_str_eq(err, "t.yaml:3:3: kafka.socket.timeout.ms: rejected by librdkafka: Invalid "
                          "value for configuration property \"socket.timeout.ms\"");
    rd_kafka_conf_destroy(conf);
    jp_config_destroy(cfg);

    cfg = load_ok("kafka:\n  bootstrap.servers: k1:9092\n  sasl.password: ${JP_TEST_API_TOKEN}\n"
                  "  ssl.secret.nope: x-secret-value\n" REDIS SITE_HEAD SITE_AUTH);
    conf = rd_kafka_conf_new();
    ck_assert_int_eq(jp_config_kafka_conf(cfg, conf, err, sizeof(err)), JP_ERR_INVALID);
    ck_assert_str_eq(err, "t.yaml:4:3: kafka.ssl.secret.nope: unknown librdkafka property");
    rd_kafka_conf_destroy(conf);
    jp_config_destroy(cfg);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Reload                                                                   */

static void collect_key(const char *key, void *opaque)
{
    char *buf = opaque;
    size_t n = strlen(buf);
    snprintf(buf + n, 1024 - n, "%s%s", n ? "," : "", key);
}

#define RELOAD_A                                                                                   \
    "kafka:\n  bootstrap.servers: k:9092\n  linger.ms: 5\n" REDIS SITE_HEAD SITE_AUTH              \
    "retry:\n  max_attempts: 4\n"                                                                  \
    "mapping:\n"                                                                                   \
    "  - {idhub: login, scim: userName}\n"                                                         \
    "  - {idhub: email, scim: \"emails[primary].value\"}\n"                                        \
    "  - {idhub: department, scim: department}\n"

#define RELOAD_B                                                                                   \
    "kafka:\n  bootstrap.servers: k:9092\n  linger.ms: 10\n  acks: all\n" REDIS SITE_HEAD          \
    "    email: bot@acme.example\n"                                                                \
    "    api_token: tok-5678-new\n"                                                                \
    "    scim_url: https://api.atlassian.com/scim/directory/d1\n"                                  \
    "    scim_api_key: key-1234\n"                                                                 \
    "    rate_limits: {get_per_s: 42}\n"                                                           \
    "  - name: beta\n"                                                                             \
    "    jira_url: https://beta.atlassian.net\n"                                                   \
    "    email: bot@beta.example\n"                                                                \
    "    api_token: tok-beta\n"                                                                    \
    "    scim_url: https://api.atlassian.com/scim/directory/d2\n"                                  \
    "    scim_api_key: key-beta\n"                                                                 \
    "retry:\n  max_attempts: 9\n"                                                                  \
    "rate_limits:\n  post_per_s: 7\n"                                                              \
    "mapping:\n"                                                                                   \
    "  - {idhub: login, scim: userName}\n"                                                         \
    "  - {idhub: email, scim: \"emails[primary].value\"}\n"                                        \
    "log:\n  level: debug\n"

START_TEST(diff_names_every_changed_key)
{
    jp_config_t *a = load_ok(RELOAD_A), *b = load_ok(RELOAD_B), *a2 = load_ok(RELOAD_A);
    char keys[1024] = "";
    ck_assert_uint_eq(jp_config_diff(a, a2, collect_key, keys), 0);
    ck_assert_str_eq(keys, "");
    size_t n = jp_config_diff(a, b, collect_key, keys);
    ck_assert_str_eq(keys, "kafka.linger.ms,kafka.acks,sites[acme].api_token,"
                           "sites[acme].rate_limits.get_per_s,"
                           "sites[acme].rate_limits.post_per_s,sites[beta],mapping,"
                           "retry.max_attempts,rate_limits.post_per_s,log.level");
    ck_assert_uint_eq(n, 10);
    ck_assert_ptr_null(strstr(keys, "tok-"));
    ck_assert_uint_eq(jp_config_diff(b, a, NULL, NULL), 10);
    jp_config_destroy(a);
    jp_config_destroy(a2);
    jp_config_destroy(b);
}
END_TEST

START_TEST(reloadable_keys)
{
    const char *yes[] = {"log.level", "mapping", "retry.max_attempts", "rate_limits.get_per_s",
                         "sites[acme].rate_limits.quarantine_after"};
    const char *no[] = {"kafka.linger.ms",
                        "sites[acme].api_token",
                        "sites[acme]",
                        "sites[acme].jira_url",
                        "topics.results",
                        "redis.url",
                        "http.listen",
                        "worker.max_in_flight",
                        "consumer.group",
                        "sites[a].rate_limits",
                        "log",
                        "mapping2"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        ck_assert_msg(jp_config_reloadable(yes[i]), "%s should be reloadable", yes[i]);
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        ck_assert_msg(!jp_config_reloadable(no[i]), "%s should need a restart", no[i]);
    ck_assert(!jp_config_reloadable(NULL));
}
END_TEST

START_TEST(take_reloadable_moves_only_reloadable_values)
{
    jp_config_t *running = load_ok(RELOAD_A), *fresh = load_ok(RELOAD_B);
    jp_config_take_reloadable(running, fresh);
    /* Taken. */
    ck_assert_int_eq(running->log.level, JP_LOG_DEBUG);
    ck_assert_int_eq(running->retry.max_attempts, 9);
    ck_assert_int_eq(running->rate_limits.post_per_s, 7);
    ck_assert_int_eq(running->sites[0].rate_limits.get_per_s, 42);
    ck_assert_int_eq(running->sites[0].rate_limits.post_per_s, 7);
    ck_assert(running->sites[0].rate_limits_overridden);
    ck_assert_uint_eq(running->mapping_count, 2);
    ck_assert_uint_eq(fresh->mapping_count, 3); /* the old table, freed with fresh */
    /* Left alone: they need a restart. */
    ck_assert_uint_eq(running->site_count, 1);
    ck_assert_str_eq(running->sites[0].api_token, "tok-1234");
    ck_assert_uint_eq(running->kafka_count, 2);
    ck_assert_str_eq(running->kafka[1].value, "5");
    char keys[1024] = "";
    jp_config_diff(running, fresh, collect_key, keys);
    ck_assert_str_eq(keys, "kafka.linger.ms,kafka.acks,sites[acme].api_token,sites[beta],mapping");
    jp_config_destroy(fresh);
    jp_config_destroy(running);
    jp_config_take_reloadable(NULL, NULL);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Security defaults                                                        */

/* Every secret, written inline in a world-readable file, is refused with its
 * position and what to do; the same file private (0600) loads. */
START_TEST(world_readable_every_secret_kind)
{
    static const struct {
        const char *yaml, *where, *hint;
    } cases[] = {
        {KAFKA REDIS SITE_HEAD "    email: bot@acme.example\n    api_token: ${JP_TEST_API_TOKEN}\n"
                               "    scim_url: https://api.atlassian.com/scim/directory/d1\n"
                               "    scim_api_key: scim-inline-1\n",
         ":11:19: sites[0].scim_api_key", "use scim_api_key_file or ${VAR}"},
        {KAFKA REDIS SITE_HEAD "    email: bot@acme.example\n    api_token: ${JP_TEST_API_TOKEN}\n"
                               "    scim_url: https://api.atlassian.com/scim/directory/d1\n"
                               "    scim_api_key: ${JP_TEST_SCIM_KEY}\n"
                               "    org_api_key: org-inline-1\n",
         ":12:18: sites[0].org_api_key", "use org_api_key_file or ${VAR}"},
        {KAFKA "redis:\n  url: redis://r\n  password: redis-inline-1\n", ":5:13: redis.password",
         "use password_file or ${VAR}"},
        {"kafka:\n  bootstrap.servers: k:9092\n  sasl.oauthbearer.client.secret: oauth-inline-1\n",
         ":3:35: kafka.sasl.oauthbearer.client.secret",
         "use sasl.oauthbearer.client.secret_file or ${VAR}"},
        {"kafka:\n  bootstrap.servers: k:9092\n  ssl.key.password: keypw-inline-1\n",
         ":3:21: kafka.ssl.key.password", "use ssl.key.password_file or ${VAR}"},
        {"audit:\n  hmac_key: hmac-inline-1\n", ":2:13: audit.hmac_key",
         "use hmac_key_file or ${VAR}"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char name[32], err[1024] = "", want[512];
        jp_config_t *cfg = NULL;
        snprintf(name, sizeof(name), "wr%zu.yaml", i);
        const char *path = write_file(name, cases[i].yaml, 0644);
        ck_assert_int_eq(jp_config_load(path, &cfg, err, sizeof(err)), JP_ERR_INVALID);
        snprintf(want, sizeof(want),
                 "%s%s: secret written inline in a world-readable file (mode 0644); %s, or make "
                 "the file unreadable to others (chmod o-r)",
                 path, cases[i].where, cases[i].hint);
        ck_assert_str_eq(err, want);
        ck_assert_ptr_null(strstr(err, "inline-1"));
        /* Not readable by others: this check passes (the file may still be
         * incomplete, which is another error). */
        ck_assert_int_eq(chmod(path, 0640), 0);
        err[0] = '\0';
        jp_config_load(path, &cfg, err, sizeof(err));
        ck_assert_ptr_null(strstr(err, "world-readable"));
        jp_config_destroy(cfg);
    }
}
END_TEST

/* A FIFO (or device) named as the config or a *_file secret is refused at
 * once: opening it must not wait for a writer (the test's timeout would
 * catch a hang). */
START_TEST(fifo_refused_without_blocking)
{
    char fifo[512], yaml[1024], err[1024] = "";
    jp_config_t *cfg = NULL;
    snprintf(fifo, sizeof(fifo), "%s/fifo", tmpdir);
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    ck_assert_int_eq(jp_config_load(fifo, &cfg, err, sizeof(err)), JP_ERR_IO);
    char want[1024];
    snprintf(want, sizeof(want), "%s: not a regular file", fifo);
    ck_assert_str_eq(err, want);
    snprintf(yaml, sizeof(yaml),
             KAFKA REDIS SITE_HEAD "    email: bot@acme.example\n    api_token_file: %s\n"
                                   "    scim_url: https://api.atlassian.com/scim/directory/d1\n"
                                   "    scim_api_key: ${JP_TEST_SCIM_KEY}\n",
             fifo);
    ck_assert_int_eq(jp_config_load_string(yaml, "t.yaml", &cfg, err, sizeof(err)), JP_ERR_IO);
    snprintf(want, sizeof(want),
             "t.yaml:9:21: sites[0].api_token_file: cannot read \"%s\": not a regular file", fifo);
    ck_assert_str_eq(err, want);
    ck_assert_int_eq(unlink(fifo), 0);
}
END_TEST

/* A secret with a control character would break the HTTP header (or the
 * protocol field) it goes into: refused at load, value never shown. One
 * trailing newline of a secret file is not part of the secret. */
START_TEST(secret_with_control_character_refused)
{
    char yaml[1024];
    write_file("two-lines", "tok-1234\nX-Injected: 1\n", 0600);
    write_file("crlf", "tok-1234\r\n", 0600);
    snprintf(yaml, sizeof(yaml),
             KAFKA REDIS SITE_HEAD "    email: bot@acme.example\n    api_token_file: %s/two-lines\n"
                                   "    scim_url: https://api.atlassian.com/scim/directory/d1\n"
                                   "    scim_api_key_file: %s/crlf\n",
             tmpdir, tmpdir);
    expect_error(yaml, "t.yaml:9:21: sites[0].api_token_file: the secret contains a control "
                       "character (CR, LF, TAB, ...); the file may hold one trailing newline, no "
                       "more");
    snprintf(yaml, sizeof(yaml),
             KAFKA REDIS SITE_HEAD
             "    email: bot@acme.example\n    api_token: ${JP_TEST_API_TOKEN}\n"
             "    scim_url: https://api.atlassian.com/scim/directory/d1\n"
             "    scim_api_key_file: %s/crlf\n",
             tmpdir);
    jp_config_t *cfg = load_ok(yaml);
    ck_assert_str_eq(cfg->sites[0].scim_api_key, "tok-1234");
    jp_config_destroy(cfg);
    setenv("JP_TEST_TAB_SECRET", "sasl\tpw-1234", 1);
    expect_error("kafka:\n  bootstrap.servers: k:9092\n  sasl.password: ${JP_TEST_TAB_SECRET}\n",
                 "t.yaml:3:18: kafka.sasl.password: the secret contains a control character (CR, "
                 "LF, TAB, ...)");
}
END_TEST

/* Error messages are one line whatever the file holds: a TAB in a key, a
 * stray byte from the environment, librdkafka's trailing newline. */
START_TEST(errors_are_one_line)
{
    expect_error(
        BASE "\"bad\tkey\": 1\n",
        "t.yaml:12:1: bad\\x09key: unknown key (expected one of: kafka, topics, consumer, "
        "redis, sites, mapping, retry, rate_limits, worker, event, http, log, audit, recon)");
    setenv("JP_TEST_BAD_UTF8", "t\xff\xc3", 1);
    expect_error(BASE "retry:\n  max_attempts: ${JP_TEST_BAD_UTF8}\n",
                 "t.yaml:13:17: retry.max_attempts: expected an integer between 1 and 100, got "
                 "\"t\\xff\\xc3\"");
    /* A quoted value is cut after 48 bytes, never inside a character. */
    char yaml[2048], want[512];
    snprintf(yaml, sizeof(yaml), BASE "retry:\n  max_attempts: a%s\n",
             "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3"
             "\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
             "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9");
    snprintf(want, sizeof(want),
             "t.yaml:13:17: retry.max_attempts: expected an integer between 1 and 100, got "
             "\"a%s...\"",
             "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3"
             "\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
             "\xc3\xa9\xc3\xa9\xc3\xa9");
    expect_error(yaml, want);

    jp_config_t *cfg = load_ok(
        "kafka:\n  bootstrap.servers: k1:9092\n  socket.timeout.ms: 0\n" REDIS SITE_HEAD SITE_AUTH);
    char err[1024];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    ck_assert_int_eq(jp_config_kafka_conf(cfg, conf, err, sizeof(err)), JP_ERR_INVALID);
    ck_assert_str_eq(err, "t.yaml:3:3: kafka.socket.timeout.ms: rejected by librdkafka: "
                          "Configuration property \"socket.timeout.ms\" value 0 is outside "
                          "allowed range 10..300000");
    rd_kafka_conf_destroy(conf);
    jp_config_destroy(cfg);
}
END_TEST

static void kafka_get(rd_kafka_conf_t *conf, const char *key, const char *want)
{
    char val[64];
    size_t n = sizeof(val);
    ck_assert_int_eq(rd_kafka_conf_get(conf, key, val, &n), RD_KAFKA_CONF_OK);
    ck_assert_msg(!strcmp(val, want), "%s is %s, wanted %s", key, val, want);
}

/* With TLS to the brokers, certificate and host name checks are on unless
 * the file turns them off: they win over what the conf held before (a
 * library default, a caller's setting), and an explicit opt-out is kept. */
START_TEST(kafka_tls_verification_default_on)
{
    char err[1024] = "";
    jp_config_t *cfg =
        load_ok("kafka:\n  bootstrap.servers: k1:9093\n  security.protocol: SASL_SSL\n"
                "  sasl.mechanisms: PLAIN\n" REDIS SITE_HEAD SITE_AUTH);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char why[256];
    ck_assert_int_eq(
        rd_kafka_conf_set(conf, "enable.ssl.certificate.verification", "false", why, sizeof(why)),
        RD_KAFKA_CONF_OK);
    ck_assert_int_eq(
        rd_kafka_conf_set(conf, "ssl.endpoint.identification.algorithm", "none", why, sizeof(why)),
        RD_KAFKA_CONF_OK);
    ck_assert_msg(jp_config_kafka_conf(cfg, conf, err, sizeof(err)) == JP_OK, "%s", err);
    kafka_get(conf, "enable.ssl.certificate.verification", "true");
    kafka_get(conf, "ssl.endpoint.identification.algorithm", "https");
    rd_kafka_conf_destroy(conf);
    jp_config_destroy(cfg);

    cfg = load_ok("kafka:\n  bootstrap.servers: k1:9093\n  security.protocol: ssl\n"
                  "  enable.ssl.certificate.verification: false\n"
                  "  ssl.endpoint.identification.algorithm: none\n" REDIS SITE_HEAD SITE_AUTH);
    conf = rd_kafka_conf_new();
    ck_assert_msg(jp_config_kafka_conf(cfg, conf, err, sizeof(err)) == JP_OK, "%s", err);
    kafka_get(conf, "enable.ssl.certificate.verification", "false");
    kafka_get(conf, "ssl.endpoint.identification.algorithm", "none");
    rd_kafka_conf_destroy(conf);
    jp_config_destroy(cfg);

    /* Plaintext: nothing is added. */
    cfg = load_ok(BASE);
    conf = rd_kafka_conf_new();
    ck_assert_int_eq(
        rd_kafka_conf_set(conf, "ssl.endpoint.identification.algorithm", "none", why, sizeof(why)),
        RD_KAFKA_CONF_OK);
    ck_assert_msg(jp_config_kafka_conf(cfg, conf, err, sizeof(err)) == JP_OK, "%s", err);
    kafka_get(conf, "ssl.endpoint.identification.algorithm", "none");
    rd_kafka_conf_destroy(conf);
    jp_config_destroy(cfg);
}
END_TEST

/* What jp_config_log_insecure() logged for `yaml`, one line per warning. */
static char *insecure_log(const char *yaml, size_t *count)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    ck_assert_ptr_nonnull(mem);
    jp_log_set_stream(mem);
    jp_log_set_level(JP_LOG_INFO);
    jp_config_t *cfg = load_ok(yaml);
    *count = jp_config_log_insecure(cfg);
    jp_config_destroy(cfg);
    jp_log_set_stream(stderr);
    fclose(mem);
    return buf;
}

START_TEST(insecure_settings_logged)
{
    size_t n;
    char *log =
        insecure_log("kafka:\n  bootstrap.servers: k1:9093\n  security.protocol: sasl_ssl\n"
                     "  enable.ssl.certificate.verification: 'false'\n"
                     "  ssl.endpoint.identification.algorithm: none\n" REDIS "sites:\n"
                     "  - name: acme\n    jira_url: https://acme.atlassian.net\n" SITE_AUTH
                     "    tls_verify: false\n"
                     "  - name: plain\n    jira_url: http://jira.internal.example\n" SITE_AUTH,
                     &n);
    ck_assert_uint_eq(n, 4);
    static const char *const lines[] = {
        "\"level\":\"warn\",\"component\":\"config\",\"msg\":\"site acme: TLS certificate "
        "verification is OFF (sites[0].tls_verify: false in t.yaml): Jira's identity is not "
        "checked; use it only against a test server\"",
        "\"msg\":\"site plain: jira_url is plain http:// (t.yaml): credentials and data travel "
        "unencrypted\"",
        "\"msg\":\"kafka: broker certificate verification is OFF "
        "(kafka.enable.ssl.certificate.verification: false at t.yaml:4:3)\"",
        "\"msg\":\"kafka: broker host name verification is OFF "
        "(kafka.ssl.endpoint.identification.algorithm: none at t.yaml:5:3)\"",
    };
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
        ck_assert_msg(strstr(log, lines[i]) != NULL, "missing %s in:\n%s", lines[i], log);
    free(log);

    /* Secure defaults, TLS to Kafka, plain http only to loopback: silent. */
    log = insecure_log("kafka:\n  bootstrap.servers: k1:9093\n  security.protocol: ssl\n" REDIS
                       "sites:\n  - name: local\n    jira_url: http://127.0.0.1:8080\n" SITE_AUTH
                       "  - name: local6\n    jira_url: http://[::1]:8080\n" SITE_AUTH
                       "  - name: localhost\n    jira_url: http://localhost\n" SITE_AUTH,
                       &n);
    ck_assert_msg(n == 0, "unexpected warnings:\n%s", log);
    ck_assert_str_eq(log, "");
    free(log);
    /* An opt-out without TLS to Kafka changes nothing: not reported. */
    log = insecure_log("kafka:\n  bootstrap.servers: k1:9092\n"
                       "  enable.ssl.certificate.verification: false\n" REDIS SITE_HEAD SITE_AUTH,
                       &n);
    ck_assert_uint_eq(n, 0);
    free(log);
    /* A host that only starts like a loopback name is not one. */
    log = insecure_log(KAFKA REDIS "sites:\n  - name: x\n    jira_url: http://localhost.evil\n"
                                   "    email: bot@acme.example\n    api_token: tok-1234\n"
                                   "    scim_url: http://127.0.0.1/scim/directory/d1\n"
                                   "    scim_api_key: key-1234\n",
                       &n);
    ck_assert_uint_eq(n, 1);
    ck_assert_ptr_nonnull(strstr(log, "site x: jira_url is plain http://"));
    free(log);
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("core");
    tcase_add_unchecked_fixture(tc, make_tmpdir, remove_tmpdir);
    tcase_add_checked_fixture(tc, setup_env, NULL);
    tcase_add_test(tc, example_file_loads_with_defaults);
    tcase_add_test(tc, minimal_file_gets_all_defaults);
    tcase_add_test(tc, every_key_overridden);
    tcase_add_test(tc, redis_url_forms);
    tcase_add_test(tc, error_unknown_key);
    tcase_add_test(tc, error_wrong_type);
    tcase_add_test(tc, error_out_of_range);
    tcase_add_test(tc, error_missing_required);
    tcase_add_test(tc, error_duplicate_key);
    tcase_add_test(tc, error_duplicate_site);
    tcase_add_test(tc, error_bad_url);
    tcase_add_test(tc, error_yaml_syntax);
    tcase_add_test(tc, error_unset_variable);
    tcase_add_test(tc, error_missing_secret_file);
    tcase_add_test(tc, error_mapping);
    tcase_add_test(tc, variable_expansion);
    tcase_add_test(tc, secret_file_read_and_redacted);
    tcase_add_test(tc, world_readable_inline_secret_refused);
    tcase_add_test(tc, dump_redacts_secrets);
    tcase_add_test(tc, secret_never_in_errstr);
    tcase_add_test(tc, kafka_conf_applies_and_reports);
    tcase_add_test(tc, diff_names_every_changed_key);
    tcase_add_test(tc, reloadable_keys);
    tcase_add_test(tc, take_reloadable_moves_only_reloadable_values);
    tcase_add_test(tc, world_readable_every_secret_kind);
    tcase_add_test(tc, fifo_refused_without_blocking);
    tcase_add_test(tc, errors_are_one_line);
    tcase_add_test(tc, secret_with_control_character_refused);
    tcase_add_test(tc, kafka_tls_verification_default_on);
    tcase_add_test(tc, insecure_settings_logged);
    suite_add_tcase(s, tc);
    return s;
}

JP_CHECK_MAIN(config_suite)
