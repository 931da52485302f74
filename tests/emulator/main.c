/* jiraprov-jira-emulator: command line, start-up seeding, signal handling. */
#include "emu_internal.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

static void emu_usage(FILE *f)
{
    fputs("usage: jiraprov-jira-emulator [options]\n"
          "  --listen HOST:PORT     address to listen on (default 127.0.0.1:0, 0 = free port)\n"
          "  --seed-demo            seed demo users, groups, projects and roles\n"
          "  --seed FILE.json       seed from a file (control-API seed format)\n"
          "  --jira-email E         Jira Basic-auth email (default jiraprov-bot@demo.example)\n"
          "  --jira-token T         Jira API token (default demo-jira-api-token)\n"
          "  --scim-key K           SCIM directory API key (default demo-scim-key)\n"
          "  --org-key K            organization API key (default demo-org-key)\n"
          "  --credentials FILE     JSON object with any of jira_email, jira_token, scim_key,\n"
          "                         org_key (keeps secrets off the command line)\n"
          "  --directory-id D       SCIM directory id (default demo-directory)\n"
          "  --org-id O             organization id (default demo-org)\n"
          "  --record FILE.jsonl    append every exchange as one JSON line\n"
          "  --rate-limits MODE     off | default | FILE.json (default: default)\n"
          "  --seed-rng N           seed for ids and fault decisions (reproducible runs)\n"
          "  --help, --version\n"
          "Prints 'listening on http://HOST:PORT' once ready; SIGINT/SIGTERM stop it.\n",
          f);
}

static int emu_parse_listen(const char *v, emu_config_t *cfg)
{
    const char *colon = strrchr(v, ':');
    if (!colon || colon == v)
        return -1;
    char *end = NULL;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (errno || !end || *end || port < 0 || port > 65535)
        return -1;
    char *host = strndup(v, (size_t)(colon - v));
    if (!host)
        return -1;
    free(cfg->listen_host);
    cfg->listen_host = host;
    cfg->port = (int)port;
    return 0;
}

/* --credentials: the JSON object stays in *held (its strings back cfg's pointers). */
static int emu_load_credentials(const char *path, emu_config_t *cfg, json_t **held)
{
    static const char *const names[] = {"jira_email", "jira_token", "scim_key", "org_key"};
    char **dst[] = {&cfg->jira_email, &cfg->jira_token, &cfg->scim_key, &cfg->org_key};
    json_error_t je;
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(j)) {
        fprintf(stderr, "jiraprov-jira-emulator: --credentials %s: %s\n", path,
                j ? "expected a JSON object" : je.text);
        json_decref(j);
        return -1;
    }
    const char *key;
    json_t *val;
    json_object_foreach(j, key, val)
    {
        size_t i = 0;
        while (i < 4 && strcmp(key, names[i]))
            i++;
        if (i == 4 || !json_string_value(val) || !json_string_value(val)[0]) {
            fprintf(stderr,
                    "jiraprov-jira-emulator: --credentials %s: %s: expected one of jira_email, "
                    "jira_token, scim_key, org_key with a non-empty string\n",
                    path, key);
            json_decref(j);
            return -1;
        }
        *dst[i] = (char *)json_string_value(val);
    }
    json_decref(*held);
    *held = j;
    return 0;
}

static int emu_parse_args(int argc, char **argv, emu_config_t *cfg, json_t **creds)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            emu_usage(stdout);
            exit(0);
        }
        if (strcmp(a, "--version") == 0) {
            printf("jiraprov-jira-emulator %s\n", EMU_VERSION);
            exit(0);
        }
        if (strcmp(a, "--seed-demo") == 0) {
            cfg->seed_demo = true;
            continue;
        }
        if (!v) {
            fprintf(stderr, "jiraprov-jira-emulator: unknown option or missing value: %s\n", a);
            return -1;
        }
        i++;
        if (strcmp(a, "--listen") == 0) {
            if (emu_parse_listen(v, cfg) != 0) {
                fprintf(stderr, "jiraprov-jira-emulator: --listen needs HOST:PORT\n");
                return -1;
            }
        } else if (strcmp(a, "--seed") == 0) {
            cfg->seed_file = (char *)v;
        } else if (strcmp(a, "--jira-email") == 0) {
            cfg->jira_email = (char *)v;
        } else if (strcmp(a, "--jira-token") == 0) {
            cfg->jira_token = (char *)v;
        } else if (strcmp(a, "--scim-key") == 0) {
            cfg->scim_key = (char *)v;
        } else if (strcmp(a, "--org-key") == 0) {
            cfg->org_key = (char *)v;
        } else if (strcmp(a, "--credentials") == 0) {
            if (emu_load_credentials(v, cfg, creds) != 0)
                return -1;
        } else if (strcmp(a, "--directory-id") == 0) {
            cfg->directory_id = (char *)v;
        } else if (strcmp(a, "--org-id") == 0) {
            cfg->org_id = (char *)v;
        } else if (strcmp(a, "--record") == 0) {
            cfg->record_path = (char *)v;
        } else if (strcmp(a, "--rate-limits") == 0) {
            cfg->rate_limits = (char *)v;
        } else if (strcmp(a, "--seed-rng") == 0) {
            char *end = NULL;
            errno = 0;
            unsigned long long n = strtoull(v, &end, 10);
            if (errno || !end || *end) {
                fprintf(stderr, "jiraprov-jira-emulator: --seed-rng needs an integer\n");
                return -1;
            }
            cfg->seed_rng = (uint64_t)n;
        } else {
            fprintf(stderr, "jiraprov-jira-emulator: unknown option: %s\n", a);
            return -1;
        }
    }
    return 0;
}

static int emu_setup_limits(emu_t *emu, char *err, size_t errsz)
{
    const char *mode = emu->cfg.rate_limits;
    if (!mode || strcmp(mode, "default") == 0) {
        emu->startup_limits = NULL;
    } else if (strcmp(mode, "off") == 0) {
        emu->startup_limits = json_pack("{s:b}", "enabled", 0);
    } else {
        json_error_t je;
        emu->startup_limits = json_load_file(mode, 0, &je);
        if (!emu->startup_limits) {
            snprintf(err, errsz, "--rate-limits: cannot load %s: %s", mode, je.text);
            return -1;
        }
    }
    return emu_limits_configure(emu->limits, emu->startup_limits, err, errsz);
}

int main(int argc, char **argv)
{
    emu_config_t cfg = {
        .listen_host = strdup("127.0.0.1"),
        .port = 0,
        .jira_email = "jiraprov-bot@demo.example",
        .jira_token = "demo-jira-api-token",
        .scim_key = "demo-scim-key",
        .org_key = "demo-org-key",
        .directory_id = "demo-directory",
        .org_id = "demo-org",
    };
    json_t *creds = NULL;
    if (!cfg.listen_host || emu_parse_args(argc, argv, &cfg, &creds) != 0) {
        emu_usage(stderr);
        free(cfg.listen_host);
        json_decref(creds);
        return 2;
    }

    /* Block the stop signals in every thread; main waits for them. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    char err[512];
    emu_t *emu = emu_new(&cfg, err, sizeof(err));
    if (!emu) {
        fprintf(stderr, "jiraprov-jira-emulator: %s\n", err);
        free(cfg.listen_host);
        json_decref(creds);
        return 1;
    }
    int rc = 1;
    if (emu_setup_limits(emu, err, sizeof(err)) != 0)
        goto out;
    if (emu_start(emu, err, sizeof(err)) != 0)
        goto out;
    /* Seed after start so that links use the real base URL; nobody can call
     * in before the port is printed. */
    emu_lock(emu);
    if (cfg.seed_demo) {
        emu_store_seed_demo(emu);
        emu_jira_seed_demo(emu);
    }
    int seeded = cfg.seed_file ? emu_control_seed_file(emu, cfg.seed_file, err, sizeof(err)) : 0;
    emu_unlock(emu);
    if (seeded != 0)
        goto out;
    printf("listening on %s\n", emu_base_url(emu));
    fflush(stdout);

    int sig = 0;
    sigwait(&stop, &sig);
    rc = 0;
out:
    if (rc != 0)
        fprintf(stderr, "jiraprov-jira-emulator: %s\n", err);
    /* A reset arriving during shutdown reads the start-up limits: free them only
     * once emu_destroy() has stopped the server threads. */
    json_t *startup_limits = emu->startup_limits;
    emu_destroy(emu);
    json_decref(startup_limits);
    free(cfg.listen_host);
    json_decref(creds);
    return rc;
}
