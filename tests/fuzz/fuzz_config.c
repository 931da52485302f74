/* Fuzz target: the YAML configuration loader.
 *
 * Each input is loaded twice: from memory (jp_config_load_string) and as a
 * file (jp_config_load on a memfd, whose mode 0777 makes it world-readable,
 * so the inline-secret refusal runs too). An accepted config is dumped,
 * applied to a librdkafka configuration, compiled into a mapping and
 * checked for insecure settings, as the worker does at start.
 *
 * Properties, beyond "no crash, no leak, no undefined behaviour":
 *  - both loads fail or succeed alike, except that the file may be refused
 *    for an inline secret;
 *  - an error is one line of UTF-8 that starts with the source name;
 *  - the dump never shows a registered secret's value where the config
 *    holds it (each secret appears as "[redacted]"). */
#define _GNU_SOURCE
#include "fuzz.h"
#include "jiraprov/config.h"
#include "jiraprov/log.h"
#include "jiraprov/mapping.h"

#include <sys/mman.h>
#include <unistd.h>

static FILE *devnull;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* The variables the seed configurations reference. */
    setenv("JP_TEST_API_TOKEN", "api-token-from-env", 1);
    setenv("JP_TEST_SCIM_KEY", "scim-key-from-env", 1);
    setenv("JP_TEST_ORG_KEY", "org-key-from-env", 1);
    setenv("JP_TEST_HMAC_KEY", "hmac-key-from-env", 1);
    setenv("ACME_JIRA_API_TOKEN", "acme-api-token", 1);
    setenv("ACME_SCIM_API_KEY", "acme-scim-key", 1);
    devnull = fopen("/dev/null", "w");
    if (!devnull)
        abort();
    jp_log_set_stream(devnull);
    jp_log_set_level(JP_LOG_DEBUG);
    return 0;
}

static void check_error(const char *err, const char *name)
{
    FUZZ_CHECK(err[0] != '\0', "no error text");
    FUZZ_CHECK(!strncmp(err, name, strlen(name)), "error does not name the source: %s", err);
    FUZZ_CHECK(fuzz_utf8_ok(err, strlen(err)), "error is not UTF-8: %s", err);
    FUZZ_CHECK(fuzz_one_line(err), "error has a control character: %s", err);
}

static void use_config(const jp_config_t *cfg)
{
    char err[1024];
    FUZZ_CHECK(cfg->site_count >= 1 && cfg->sites, "no site");
    FUZZ_CHECK(cfg->kafka_count >= 1, "no kafka property");
    FUZZ_CHECK(cfg->redis.url && cfg->topics.events && cfg->consumer.group, "defaults missing");
    for (size_t i = 0; i < cfg->site_count; i++)
        FUZZ_CHECK(jp_config_site(cfg, cfg->sites[i].name) != NULL, "site lookup");
    jp_config_dump(cfg, devnull);
    jp_config_log_insecure(cfg);

    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    jp_err_t rc = jp_config_kafka_conf(cfg, conf, err, sizeof(err));
    if (rc)
        FUZZ_CHECK(fuzz_one_line(err), "kafka error has a control character: %s", err);
    rd_kafka_conf_destroy(conf);

    jp_mapping_t *m = jp_mapping_new(cfg->mapping, cfg->mapping_count, err, sizeof(err));
    if (!m)
        FUZZ_CHECK(err[0] != '\0', "mapping refused without a reason");
    jp_mapping_destroy(m);
}

/* The dump of cfg, NUL-terminated (caller frees). */
static char *dump_text(const jp_config_t *cfg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        abort();
    jp_config_dump(cfg, f);
    fclose(f);
    return buf;
}

/* A secret long enough not to be mistaken for other text must not be in the
 * dump on the line of its own key. */
static void check_redacted(const char *dump, const char *key, const char *secret)
{
    if (!secret || strlen(secret) < 12)
        return;
    size_t klen = strlen(key);
    for (const char *line = dump; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) : strlen(line);
        const char *k = line + strspn(line, " -");
        if ((size_t)(k - line) + klen + 1 <= n && !strncmp(k, key, klen) && k[klen] == ':') {
            char *copy = fuzz_strndup((const uint8_t *)line, n);
            FUZZ_CHECK(strstr(copy, secret) == NULL, "%s shown in the dump", key);
            FUZZ_CHECK(strstr(copy, "[redacted]") != NULL, "%s not redacted", key);
            free(copy);
        }
        line = end ? end + 1 : NULL;
    }
}

static void check_dump(const jp_config_t *cfg)
{
    char *d = dump_text(cfg);
    for (size_t i = 0; i < cfg->site_count; i++) {
        check_redacted(d, "api_token", cfg->sites[i].api_token);
        check_redacted(d, "scim_api_key", cfg->sites[i].scim_api_key);
        check_redacted(d, "org_api_key", cfg->sites[i].org_api_key);
    }
    check_redacted(d, "password", cfg->redis.password);
    check_redacted(d, "hmac_key", cfg->audit.hmac_key);
    for (size_t i = 0; i < cfg->kafka_count; i++)
        if (cfg->kafka[i].secret)
            check_redacted(d, cfg->kafka[i].key, cfg->kafka[i].value);
    free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_strndup(data, size);
    char err[1024];
    jp_config_t *cfg = NULL;
    jp_err_t rc = jp_config_load_string(text, "fuzz.yaml", &cfg, err, sizeof(err));
    FUZZ_CHECK((rc == JP_OK) == (cfg != NULL), "result and error");
    if (rc)
        check_error(err, "fuzz.yaml");
    else {
        use_config(cfg);
        check_dump(cfg);
    }
    bool string_ok = rc == JP_OK;
    jp_config_destroy(cfg);
    cfg = NULL;

    /* The same text as a world-readable file. */
    int fd = memfd_create("fuzz-config", MFD_CLOEXEC);
    if (fd < 0)
        abort();
    size_t len = strlen(text);
    if (len && write(fd, text, len) != (ssize_t)len)
        abort();
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    rc = jp_config_load(path, &cfg, err, sizeof(err));
    FUZZ_CHECK((rc == JP_OK) == (cfg != NULL), "result and error (file)");
    if (rc) {
        check_error(err, path);
        FUZZ_CHECK(!string_ok || strstr(err, "world-readable"),
                   "accepted from memory, refused as a file: %s", err);
    } else {
        FUZZ_CHECK(string_ok, "refused from memory, accepted as a file");
        use_config(cfg);
    }
    jp_config_destroy(cfg);
    close(fd);
    free(text);
    /* Secrets are process-wide in the logger: forget this input's. */
    jp_log_clear_secrets();
    return 0;
}
