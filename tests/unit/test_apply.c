/* jp_apply against the real Jira emulator (tests/emulator), on a real libuv
 * loop with jp_http: every event type, the convergence rules (proved with
 * the emulator's mutation counters), failure classification (faults, bad
 * credentials, timeouts), hostile logins, group names and issue text,
 * cancellation, concurrency, and the Redis lookup cache against a real
 * redis-server. */
#include "jiraprov/apply.h"
#include "jiraprov/config.h"
#include "jiraprov/log.h"
#include "jiraprov/store.h"

#include "../lib/testloop.c"
#include "../lib/testredis.c"

#include <arpa/inet.h>
#include <check.h>
#include <curl/curl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../lib/check_main.h"

/* ---- the emulator process ------------------------------------------------ */

static pid_t emu_pid = -1;
static int emu_out = -1;
static int emu_port;

static void emulator_path(char *out, size_t size)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    ck_assert_int_gt(n, 0);
    exe[n] = '\0';
    char *slash = strrchr(exe, '/'); /* <build>/tests/unit/test_apply */
    ck_assert_ptr_nonnull(slash);
    *slash = '\0';
    snprintf(out, size, "%s/../emulator/jiraprov-jira-emulator", exe);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void emu_start(void)
{
    char path[PATH_MAX + 64];
    int fds[2];
    emulator_path(path, sizeof(path));
    if (access(path, X_OK) != 0) {
        fprintf(stderr, "test_apply: %s is missing; build the jiraprov-jira-emulator target\n",
                path);
        abort();
    }
    if (pipe(fds) != 0)
        abort();
    emu_pid = fork();
    if (emu_pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        execl(path, path, "--listen", "127.0.0.1:0", "--seed-demo", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    emu_out = fds[0];
    char line[256];
    size_t len = 0;
    int64_t deadline = mono_ms() + 10000;
    while (len < sizeof(line) - 1 && !memchr(line, '\n', len)) {
        struct pollfd p = {emu_out, POLLIN, 0};
        int64_t left = deadline - mono_ms();
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            break;
        ssize_t r = read(emu_out, line + len, sizeof(line) - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    line[len] = '\0';
    const char *p = strstr(line, "http://127.0.0.1:");
    if (!p || sscanf(p, "http://127.0.0.1:%d", &emu_port) != 1) {
        fprintf(stderr, "test_apply: emulator did not start: \"%s\"\n", line);
        abort();
    }
}

static void emu_stop(void)
{
    if (emu_pid <= 0)
        return;
    kill(emu_pid, SIGTERM);
    int64_t deadline = mono_ms() + 5000;
    while (waitpid(emu_pid, NULL, WNOHANG) == 0) {
        if (mono_ms() > deadline) {
            kill(emu_pid, SIGKILL);
            waitpid(emu_pid, NULL, 0);
            break;
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    emu_pid = -1;
    close(emu_out);
}

/* ---- the control API (blocking curl: test-side only) ---------------------------- */

typedef struct buf {
    char *p;
    size_t n;
} buf_t;

static size_t on_body(char *data, size_t size, size_t nmemb, void *opaque)
{
    buf_t *b = opaque;
    size_t n = size * nmemb;
    char *grown = realloc(b->p, b->n + n + 1);
    if (!grown)
        return 0;
    memcpy(grown + b->n, data, n);
    b->p = grown;
    b->n += n;
    b->p[b->n] = '\0';
    return n;
}

/* method path [body] on the emulator; returns the parsed body (or NULL when
 * empty) and checks a 2xx status. */
static json_t *ctl(const char *method, const char *path, const char *body)
{
    char url[512];
    buf_t b = {0};
    long status = 0;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", emu_port, path);
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    ck_assert_msg(rc == CURLE_OK && status >= 200 && status < 300, "%s %s: curl %d, HTTP %ld: %s",
                  method, path, (int)rc, status, b.p ? b.p : "");
    json_t *j = b.n ? json_loads(b.p, 0, NULL) : NULL;
    free(b.p);
    return j;
}

static void ctl_do(const char *method, const char *path, const char *body)
{
    json_decref(ctl(method, path, body));
}

static void faults(const char *rules)
{
    ctl_do("PUT", "/__emulator/faults", rules);
}

/* Sum of mutations[entity][*][kind]. */
static long mutations(const char *entity, const char *kind)
{
    json_t *c = ctl("GET", "/__emulator/counters", NULL);
    json_t *per = json_object_get(json_object_get(c, "mutations"), entity);
    const char *key;
    json_t *kinds;
    long n = 0;
    json_object_foreach(per, key, kinds)
    {
        n += (long)json_integer_value(json_object_get(kinds, kind));
    }
    json_decref(c);
    return n;
}

/* The emulator's user record with this userName (a new reference), or NULL. */
static json_t *state_user(const char *user_name)
{
    json_t *st = ctl("GET", "/__emulator/state", NULL);
    size_t i;
    json_t *u, *hit = NULL;
    json_array_foreach(json_object_get(st, "users"), i, u)
    {
        const char *un = json_string_value(json_object_get(u, "userName"));
        if (un && strcmp(un, user_name) == 0)
            hit = json_incref(u);
    }
    json_decref(st);
    return hit;
}

/* ---- config, loop, apply ------------------------------------------------------------ */

typedef struct harness {
    uv_loop_t loop;
    jp_http_t *http;
    jp_config_t *cfg;
    jp_mapping_t *map;
    jp_apply_t *apply;
    testredis_t redis;
    jp_redis_t *rc;
    jp_store_t *store;
} harness_t;

static harness_t H;

static void site_yaml(char *out, size_t size, const char *name, const char *extra,
                      const char *token, const char *scim_key, int timeout_ms)
{
    snprintf(out, size,
             "  - name: %s\n"
             "    jira_url: http://127.0.0.1:%d\n"
             "    email: jiraprov-bot@demo.example\n"
             "    api_token: %s\n"
             "    scim_url: http://127.0.0.1:%d/scim/directory/demo-directory\n"
             "    scim_api_key: %s\n"
             "    admin_url: http://127.0.0.1:%d\n"
             "    org_api_key: demo-org-key\n"
             "    timeout_ms: %d\n"
             "%s",
             name, emu_port, token, emu_port, scim_key, emu_port, timeout_ms, extra);
}

static jp_config_t *make_config(void)
{
    char yaml[8192], s1[1024], s2[1024], s3[1024], s4[1024];
    site_yaml(s1, sizeof(s1), "demo", "", "demo-jira-api-token", "demo-scim-key", 5000);
    site_yaml(s2, sizeof(s2), "alt", "    account_lifecycle: admin\n    group_membership: jira\n",
              "demo-jira-api-token", "demo-scim-key", 5000);
    site_yaml(s3, sizeof(s3), "bad", "", "wrong-token", "wrong-scim-key", 5000);
    site_yaml(s4, sizeof(s4), "fast", "", "demo-jira-api-token", "demo-scim-key", 400);
    snprintf(yaml, sizeof(yaml),
             "kafka:\n  bootstrap.servers: 127.0.0.1:9\n"
             "redis:\n  url: redis://127.0.0.1:6379/0\n"
             "sites:\n%s%s%s%s",
             s1, s2, s3, s4);
    jp_config_t *cfg = NULL;
    char err[512];
    ck_assert_msg(jp_config_load_string(yaml, "test", &cfg, err, sizeof(err)) == JP_OK, "%s", err);
    return cfg;
}

/* Runs the loop until cond(arg) or ms elapsed; returns cond(arg). */
static int run_until(int (*cond)(void *), void *arg, uint64_t ms)
{
    return testloop_run_until(&H.loop, cond, arg, ms);
}

static void make_apply(jp_store_t *store)
{
    char err[256];
    jp_apply_opts_t o = {.loop = &H.loop,
                         .http = H.http,
                         .cfg = H.cfg,
                         .mapping = H.map,
                         .store = store,
                         .issue_find = JP_JIRA_FIND_BY_LABEL};
    H.apply = jp_apply_new(&o, err, sizeof(err));
    ck_assert_msg(H.apply != NULL, "%s", err);
}

static void setup(void)
{
    char err[256];
    jp_log_set_level(JP_LOG_ERROR);
    memset(&H, 0, sizeof(H));
    ctl_do("POST", "/__emulator/reset", "{\"seed_demo\":true}");
    ck_assert_int_eq(uv_loop_init(&H.loop), 0);
    jp_http_opts_t ho = {0};
    H.http = jp_http_new(&H.loop, &ho, err, sizeof(err));
    ck_assert_msg(H.http != NULL, "%s", err);
    H.cfg = make_config();
    H.map = jp_mapping_new(H.cfg->mapping, H.cfg->mapping_count, err, sizeof(err));
    ck_assert_msg(H.map != NULL, "%s", err);
    make_apply(NULL);
}

static void teardown(void)
{
    jp_apply_destroy(H.apply);
    jp_store_destroy(H.store);
    jp_redis_destroy(H.rc);
    jp_http_destroy(H.http);
    uv_run(&H.loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&H.loop), 0);
    if (H.redis.pid > 0)
        testredis_kill(&H.redis);
    jp_mapping_destroy(H.map);
    jp_config_destroy(H.cfg);
}

/* ---- events and outcomes ----------------------------------------------------------------- */

static int ev_seq;

/* A CloudEvent of `type` for `site` with `data` (JSON text); the subject is
 * derived from data as the contract says. id NULL: a fresh one. */
static jp_event_t *make_event(const char *type, const char *site, const char *data, const char *id)
{
    char fresh[64], err[512];
    json_error_t je;
    json_t *d = json_loads(data, 0, &je);
    ck_assert_msg(d != NULL, "bad test data: %s", je.text);
    const char *subject = json_string_value(json_object_get(d, "login"));
    if (!subject)
        subject = json_string_value(json_object_get(d, "externalRef"));
    if (!subject)
        subject = json_string_value(json_object_get(d, "key"));
    if (!subject)
        subject = json_string_value(json_object_get(d, "reconId"));
    if (!id) {
        snprintf(fresh, sizeof(fresh), "evt-%d-%d", (int)getpid(), ++ev_seq);
        id = fresh;
    }
    char ce[128];
    snprintf(ce, sizeof(ce), "com.idhub.%s", type);
    json_t *root = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o}", "specversion", "1.0",
                             "id", id, "source", "https://idhub.example/test", "type", ce,
                             "subject", subject, "time", "2026-11-22T09:00:00Z", "jirasite", site,
                             "idhubactor", "tester@idhub.example", "data", d);
    ck_assert_ptr_nonnull(root);
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    jp_event_t *ev = NULL;
    jp_err_t rc = jp_event_decode(text, strlen(text), NULL, &ev, err, sizeof(err));
    ck_assert_msg(rc == JP_OK, "event rejected: %s: %s", err, text);
    free(text);
    return ev;
}

typedef struct got {
    int calls;
    jp_outcome_t *o;
} got_t;

static void on_done(jp_outcome_t *o, void *opaque)
{
    got_t *g = opaque;
    g->calls++;
    if (g->o)
        jp_outcome_destroy(g->o);
    g->o = o;
}

static int got_one(void *arg)
{
    return ((got_t *)arg)->calls > 0;
}

static jp_outcome_t *apply_event(jp_event_t *ev, int attempt)
{
    got_t g = {0};
    char err[256];
    ck_assert_msg(jp_apply_start(H.apply, ev, attempt, on_done, &g, err, sizeof(err)) == JP_OK,
                  "%s", err);
    ck_assert_int_eq(g.calls, 0); /* never from inside start */
    ck_assert(run_until(got_one, &g, 15000));
    ck_assert_int_eq(g.calls, 1);
    ck_assert_uint_eq(jp_apply_in_flight(H.apply), 0);
    return g.o;
}

/* Applies an event built from (type, site, data, id) and returns its outcome. */
static jp_outcome_t *run_ev(const char *type, const char *site, const char *data, const char *id,
                            int attempt)
{
    jp_event_t *ev = make_event(type, site, data, id);
    jp_outcome_t *o = apply_event(ev, attempt);
    jp_event_destroy(ev);
    return o;
}

static jp_outcome_t *run(const char *type, const char *data)
{
    return run_ev(type, "demo", data, NULL, 1);
}

static const char *jira(const jp_outcome_t *o, const char *key)
{
    return json_string_value(json_object_get(o->jira, key));
}

/* "a,b,c" of outcome->changed */
static void changed_str(const jp_outcome_t *o, char *out, size_t size)
{
    size_t i, pos = 0;
    json_t *v;
    out[0] = '\0';
    json_array_foreach(o->changed, i, v)
    {
        int n = snprintf(out + pos, size - pos, "%s%s", i ? "," : "", json_string_value(v));
        if (n < 0 || (size_t)n >= size - pos)
            break;
        pos += (size_t)n;
    }
}

static size_t mutation_calls(const jp_outcome_t *o)
{
    size_t n = 0;
    for (size_t i = 0; i < o->call_count; i++)
        n += o->calls[i].mutation != 0;
    return n;
}

#define ASSERT_STATUS(o, st)                                                                       \
    ck_assert_msg((o)->status == (st), "status %s, expected %s (%s: %s; detail %s)",               \
                  jp_outcome_status_name((o)->status), jp_outcome_status_name(st),                 \
                  (o)->error_reason ? (o)->error_reason : "-",                                     \
                  (o)->error_message ? (o)->error_message : "-", (o)->detail ? (o)->detail : "-")

#define ASSERT_CHANGED(o, want)                                                                    \
    do {                                                                                           \
        char c_[512];                                                                              \
        changed_str((o), c_, sizeof(c_));                                                          \
        ck_assert_str_eq(c_, (want));                                                              \
    } while (0)

static const char *JDOE = "{\"login\":\"jdoe@demo.example\",\"email\":\"jdoe@demo.example\","
                          "\"firstName\":\"Jane\",\"lastName\":\"Doe\",\"jobTitle\":\"Engineer\"}";

/* ---- accounts ------------------------------------------------------------------------- */

START_TEST(account_create_twice_creates_once)
{
    jp_outcome_t *o = run("account.create", JDOE);
    ASSERT_STATUS(o, JP_OUTCOME_SUCCEEDED);
    ck_assert_str_eq(o->detail, "created");
    ck_assert_ptr_nonnull(jira(o, "scimId"));
    ck_assert_ptr_nonnull(jira(o, "accountId"));
    ASSERT_CHANGED(o, "login,email,firstName,lastName,jobTitle,active");
    ck_assert_uint_eq(o->call_count, 2); /* find, POST */
    ck_assert_str_eq(o->calls[1].method, "POST");
    ck_assert_str_eq(o->calls[1].api, "scim");
    ck_assert_str_eq(o->calls[1].path, "/scim/directory/demo-directory/Users");
    ck_assert_str_eq(o->calls[1].endpoint_class, "scim.users");
    ck_assert_int_eq(o->calls[1].mutation, 1);
    ck_assert_int_eq(o->calls[1].status, 201);
    ck_assert_int_eq(o->calls[0].mutation, 0);
    ck_assert(strchr(o->calls[0].path, '?') == NULL); /* no query (it holds the login) */
    char scim_id[128];
    snprintf(scim_id, sizeof(scim_id), "%s", jira(o, "scimId"));
    jp_outcome_destroy(o);

    o = run("account.create", JDOE);
    ASSERT_STATUS(o, JP_OUTCOME_SKIPPED);
    ck_assert_str_eq(o->detail, "already as desired");
    ck_assert_str_eq(jira(o, "scimId"), scim_id);
    ck_assert_uint_eq(mutation_calls(o), 0);
    ck_assert_uint_eq(json_array_size(o->changed), 0);
    jp_outcome_destroy(o);
    ck_assert_int_eq(mutations("user", "create"), 1);
    ck_assert_int_eq(mutations("user", "update"), 0);
}
END_TEST

START_TEST(account_create_existing_patches_only_changes)
{
    /* alice exists: Alice Adams, Engineer, R&D, Demo. */
    jp_outcome_t *o =
        run("account.create", "{\"login\":\"alice@demo.example\",\"email\":\"alice@demo.example\","
                              "\"firstName\":\"Alice\",\"jobTitle\":\"Staff Engineer\","
                              "\"department\":\"R&D\"}");
    ASSERT_STATUS(o, JP_OUTCOME_SUCCEEDED);
    ck_assert_str_eq(o->detail, "updated");
    ASSERT_CHANGED(o, "jobTitle");
    ck_assert_uint_eq(o->call_count, 2);
    ck_assert_str_eq(o->calls[1].method, "PATCH");
    jp_outcome_destroy(o);
    ck_assert_int_eq(mutations("user", "create"), 0);
    ck_assert_int_eq(mutations("user", "update"), 1);
    json_t *u = state_user("alice@demo.example");
    ck_assert_ptr_nonnull(u);
    ck_assert_str_eq(json_string_value(json_object_get(u, "title")), "Staff Engineer");
    ck_assert_str_eq(json_string_value(json_object_get(u, "familyName")), "Adams");
    json_decref(u);

    /* A disabled user asked to be created comes back active. */
    o = run("account.create", "{\"login\":\"dave@demo.example\",\"email\":\"dave@demo.example\"}");
    ASSERT_STATUS(o, JP_OUTCOME_SUCCEEDED);
    ASSERT_CHANGED(o, "active");
    jp_outcome_destroy(o);
}
END_TEST

static void on_pair(jp_outcome_t *o, void *opaque)
{
    got_t *g = opaque;
    g->calls++;
    g->o = o;
}

static int pair_done(void *arg)
{
    got_t *g = arg;
    return g[0].calls && g[1].calls;
}

START_TEST(account_create_race_converges_after_409)
{
    /* Two creates of one login at once (e.g. two workers during a
     * rebalance): both finds are answered "absent" (the latency delays the
     * answers, not the reads), both POST, one meets 409, finds the user and
     * converges. */
    faults("[{\"path\":\"/scim/directory/*/Users\",\"method\":\"GET\",\"kind\":\"latency\","
           "\"latency_ms\":300}]");
    jp_event_t *ev[2] = {make_event("account.create", "demo", JDOE, NULL),
                         make_event("account.create", "demo", JDOE, NULL)};
    got_t g[2] = {{0, NULL}, {0, NULL}};
    char err[256];
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(jp_apply_start(H.apply, ev[i], 1, on_pair, &g[i], err, sizeof(err)),
                         JP_OK);
    ck_assert(run_until(pair_done, g, 15000));
    ctl_do("DELETE", "/__emulator/faults", NULL);
    int created = 0, converged = 0;
    for (int i = 0; i < 2; i++) {
        if (g[i].o->status == JP_OUTCOME_SUCCEEDED && strcmp(g[i].o->detail, "created") == 0)
            created++;
        else if (g[i].o->status == JP_OUTCOME_SKIPPED && strstr(g[i].o->detail, "found after 409"))
            converged++;
        jp_outcome_destroy(g[i].o);
        jp_event_destroy(ev[i]);
    }
    ck_assert_int_eq(created, 1);
    ck_assert_int_eq(converged, 1);
    ck_assert_int_eq(mutations("user", "create"), 1);

    /* 409 for another reason (the email belongs to alice): no such user
     * appears, so it is a permanent failure, not a loop. */
    jp_outcome_t *o = run("account.create", "{\"login\":\"newbie@demo.example\","
                                            "\"email\":\"alice@demo.example\"}");
    ASSERT_STATUS(o, JP_OUTCOME_FAILED);
    ck_assert_str_eq(o->error_reason, "http_409");
    ck_assert_ptr_nonnull(strstr(o->error_message, "no user named"));
    ck_assert_uint_eq(o->call_count, 3); /* find, POST (409), find */
    jp_outcome_destroy(o);
}
END_TEST

START_TEST(account_update_rules)
{
    jp_outcome_t *o = run("account.update", "{\"login\":\"alice@demo.example\","
                                            "\"jobTitle\":\"Manager\",\"nickName\":null}");
    ASSERT_STATUS(o, JP_OUTCOME_SUCCEEDED);
    ASSERT_CHANGED(o, "jobTitle"); /* nickName had no value: clearing it is no change */
    jp_outcome_destroy(o);
    o = run("account.update", "{\"login\":\"alice@demo.example\",\"jobTitle\":\"Manager\"}");
    ASSERT_STATUS(o, JP_OUTCOME_SKIPPED);
    jp_outcome_destroy(o);
    o = run("account.update", "{\"login\":\"alice@demo.example\",\"department\":null}");
    ASSERT_STATUS(o, JP_OUTCOME_SUCCEEDED);
    ASSERT_CHANGED(o, "department");
    jp_outcome_destroy(o);
    o = run("account.update", "{\"login\":\"nobody@demo.example\",\"jobTitle\":\"X\"}");
    ASSERT_STATUS(o, JP_OUTCOME_FAILED);
    ck_assert_int_eq(o->error_class, JP_CLASS_PERMANENT);
    ck_assert_str_eq(o->error_reason, "not_found");
    ck_assert_ptr_nonnull(strstr(o->error_message, "no such account"));
    jp_outcome_destroy(o);
    ck_assert_int_eq(mutations("user", "update"), 2);
}
END_TEST

START_TEST(account_delete_twice)
{
    jp_outcome_t *o = run("account.delete", "{\"login\":\"bob@demo.example\"}");
    ASSERT_STATUS(o, JP_OUTCOME_SUCCEEDED);
    ck_assert_str_eq(o->detail, "deleted");
    ck_assert_ptr_nonnull(jira(o, "scimId"));
    jp_outcome_destroy(o);
    o = run("account.delete", "{\"login\":\"bob@demo.example\"}");
    ASSERT_STATUS(o, JP_OUTCOME_SKIPPED);
    ck_assert_str_eq(o->detail, "already deleted");
    ck_assert_uint_eq(mutation_calls(o), 0);
    jp_outcome_destroy(o);
    ck_assert_int_eq(mutations("user", "delete"), 1);
}
END_TEST

START_TEST(account_enable_disable_scim)
{
    jp_outcome_t *o = run("account.disable", "{\"login\":\"alice@demo.example\"}");
    ASSERT_STATUS(o, JP_OUTCOME_SUCCEEDED);
    ASSERT_CHANGED(o, "active");
    ck_assert_str_eq(o->calls[o->call_count - 1].method, "PATCH");
    jp_outcome_destroy(o);
    o = run("account.disable", "{\"login\":\"alice@demo.example\"}");
    ASSERT_STATUS(o, JP_OUTCOME_SKIPPED);
    ck_assert_str_eq(o->detail, "already disabled");
    jp_outcome_destroy(o);
    o = run("account.enable", "{\"login\":\"dave@demo.example\"}");
    ASSERT_STATUS(o, JP_OUTCOME_SUCCEEDED);
    jp_outcome_destroy(o);
    o = run("account.enable", "{\"login\":\"dave@demo.example\"}");
    ASSERT_STATUS(o, JP_OUTCOME_SKIPPED);
    jp_outcome_destroy(o);
    o = run("account.enable", "{\"login\":\"ghost@demo.example\"}");
    ASSERT_STATUS(o, JP_OUTCOME_FAILED);
    ck_assert_str_eq(o->error_reason, "not_found");
    jp_outcome_destroy(o);
    ck_assert_int_eq(mutations("user", "deactivate"), 1);
    ck_assert_int_eq(mutations("user", "activate"), 1);
}
END_TEST

START_TEST(account_enable_disable_admin)
{
    jp_outcome_t *o =
        run_ev("account.disable", "alt", "{\"login\":\"carol@demo.example\"}", NULL, 1);
    ASSERT_STATUS(o, JP_OUTCOME_SUCCEEDED);
    ck_assert_str_eq(o->calls[o->call_count - 1].api, "admin");
    ck_assert_str_eq(o->calls[o->call_count - 1].path,
                     "/users/5b10a2844c20165700ede21c/manage/lifecycle/disable");
    jp_outcome_destroy(o);
    json_t *u = state_user("carol@demo.example");
    ck_assert(json_is_false(json_object_get(u, "active")));
    json_decref(u);
    o = run_ev("account.disable", "alt", "{\"login\":\"carol@demo.example\"}", NULL, 1);
    ASSERT_STATUS(o, JP_OUTCOME_SKIPPED);
    jp_outcome_destroy(o);
    o = run_ev("account.enable", "alt", "{\"login\":\"carol@demo.example\"}", NULL, 1);
    ASSERT_STATUS(o, JP_OUTCOME_SUCCEEDED);
    jp_outcome_destroy(o);
    ck_assert_int_eq(mutations("user", "deactivate"), 1);
    ck_assert_int_eq(mutations("user", "activate"), 1);
}
END_TEST

/* ---- entitlements --------------------------------------------------------------------------- */

static void grant_revoke_cycle(const char *site, const char *ent)
{
    char data[512];
    snprintf(data, sizeof(data), "{\"login\":\"carol@demo.example\",\"entitlement\":%s}", ent);
    jp_outcome_t *o = run_ev("entitlement.grant", site, data, NULL, 1);
    ASSERT_STATUS(o, JP_OUTCOME_SUCCEEDED);
    ASSERT_CHANGED(o, "entitlement");
    ck_assert_ptr_nonnull(jira(o, "accountId"));
    jp_outcome_destroy(o);
    o = run_ev("entitlement.grant", site, data, NULL, 1);
    ASSERT_STATUS(o, JP_OUTCOME_SKIPPED);
    ck_assert_uint_eq(json_array_size(o->changed), 0);
    jp_outcome_destroy(o);
    o = run_ev("entitlement.revoke", site, data, NULL, 1);
    ASSERT_STATUS(o, JP_OUTCOME_SUCCEEDED);
    jp_outcome_destroy(o);
    o = run_ev("entitlement.revoke", site, data, NULL, 1);
    ASSERT_STATUS(o, JP_OUTCOME_SKIPPED);
    jp_outcome_destroy(o);
}

START_TEST(group_scim_grant_revoke)
{
    grant_revoke_cycle("demo", "{\"type\":\"group\",\"group\":\"demo-team\"}");
    ck_assert_int_eq(mutations("membership", "add"), 1);
    ck_assert_int_eq(mutations("membership", "remove"), 1);
    /* The second grant and revoke read and did not write. */
    jp_outcome_t *o = run("entitlement.grant", "{\"login\":\"alice@demo.example\",\"entitlement\":"
                                               "{\"type\":\"group\",\"group\":\"demo-team\"}}");
    ASSERT_STATUS(o, JP_OUTCOME_SKIPPED);
    ck_assert_str_eq(o->detail, "already a member");
    ck_assert_uint_eq(mutation_calls(o), 0);
    ck_assert_ptr_nonnull(jira(o, "groupId"));
    jp_outcome_destroy(o);
}
END_TEST

START_TEST(group_jira_grant_revoke)
{
    grant_revoke_cycle("alt", "{\"type\":\"group\",\"group\":\"demo-team\"}");
    ck_assert_int_eq(mutations("membership", "add"), 1);
    ck_assert_int_eq(mutations("membership", "remove"), 1);
}
END_TEST

START_TEST(project_role_grant_revoke)
{
    grant_revoke_cycle("demo",
                       "{\"type\":\"projectRole\",\"project\":\"DEMO\",\"role\":\"Developers\"}");
    ck_assert_int_eq(mutations("role", "add"), 1);
    ck_assert_int_eq(mutations("role", "remove"), 1);
    jp_outcome_t *o =
        run("entitlement.grant", "{\"login\":\"carol@demo.example\",\"entitlement\":{\"type\":"
                                 "\"projectRole\",\"project\":\"DEMO\",\"role\":\"Developers\"}}");
    ck_assert_str_eq(jira(o, "roleId"), "10000");
    jp_outcome_destroy(o);
    o = run("entitlement.grant", "{\"login\":\"carol@demo.example\",\"entitlement\":{\"type\":"
                                 "\"projectRole\",\"project\":\"DEMO\",\"role\":\"Pilots\"}}");
    ASSERT_STATUS(o, JP_OUTCOME_FAILED);
    ck_assert_str_eq(o->error_reason, "not_found");
    jp_outcome_destroy(o);
}
END_TEST

START_TEST(unknown_group_or_user_fails)
{
    const char *sites[] = {"demo", "alt"};
    for (int i = 0; i < 2; i++) {
        jp_outcome_t *o =
            run_ev("entitlement.grant", sites[i],
                   "{\"login\":\"carol@demo.example\",\"entitlement\":{\"type\":\"group\","
                   "\"group\":\"no-such-group\"}}",
                   NULL, 1);
        ASSERT_STATUS(o, JP_OUTCOME_FAILED);
        ck_assert_int_eq(o->error_class, JP_CLASS_PERMANENT);
        ck_assert_str_eq(o->error_reason, "not_found");
        ck_assert_ptr_nonnull(strstr(o->error_message, "no such group"));
        jp_outcome_destroy(o);
        o = run_ev("entitlement.revoke", sites[i],
                   "{\"login\":\"ghost@demo.example\",\"entitlement\":{\"type\":\"group\","
                   "\"group\":\"demo-team\"}}",
                   NULL, 1);
        ASSERT_STATUS(o, JP_OUTCOME_FAILED);
        ck_assert_ptr_nonnull(strstr(o->error_message, "no such account"));
        jp_outcome_destroy(o);
    }
    ck_assert_int_eq(mutations("membership", "add") + mutations("membership", "remove"), 0);
}
END_TEST

/* ---- issues ---------------------------------------------------------------------------------- */

static const char *ISSUE = "{\"externalRef\":\"idhub:req:42\",\"project\":\"DEMO\","
                           "\"issueType\":\"Task\",\"summary\":\"Onboard Jane\","
                           "\"description\":\"Line one.\\nLine two.\",\"labels\":[\"onboarding\"],"
                           "\"priority\":\"High\",\"assignee\":\"alice@demo.example\"}";

START_TEST(issue_create_twice_creates_once)
{
    jp_outcome_t *o = run_ev("issue.create", "demo", ISSUE, "evt-issue-1", 1);
    ASSERT_STATUS(o, JP_OUTCOME_SUCCEEDED);
    ck_assert_str_eq(o->detail, "created");
    ASSERT_CHANGED(o, "summary,description,priority,assignee,labels");
    char key[32];
    snprintf(key, sizeof(key), "%s", jira(o, "issueKey"));
    ck_assert_ptr_nonnull(jira(o, "issueId"));
    ck_assert_str_eq(o->calls[o->call_count - 1].path, "/rest/api/3/issue");
    jp_outcome_destroy(o);

    /* Another event with the same ref: already there. */
    o = run_ev("issue.create", "demo", ISSUE, "evt-issue-2", 1);
    ASSERT_STATUS(o, JP_OUTCOME_SKIPPED);
    ck_assert_str_eq(o->detail, "already created");
    ck_assert_str_eq(jira(o, "issueKey"), key);
    ck_assert_uint_eq(mutation_calls(o), 0);
    jp_outcome_destroy(o);

    /* The same event again (redelivered, Redis wiped): it was this event. */
    o = run_ev("issue.create", "demo", ISSUE, "evt-issue-1", 2);
    ASSERT_STATUS(o, JP_OUTCOME_SUCCEEDED);
    ck_assert_ptr_nonnull(strstr(o->detail, "earlier attempt"));
    ck_assert_str_eq(jira(o, "issueKey"), key);
    ck_assert_uint_eq(mutation_calls(o), 0);
    jp_outcome_destroy(o);
    ck_assert_int_eq(mutations("issue", "create"), 1);
}
END_TEST

START_TEST(issue_create_unknown_assignee_fails)
{
    const char *ghost = "{\"externalRef\":\"r-1\",\"project\":\"DEMO\",\"issueType\":\"Task\","
                        "\"summary\":\"s\",\"assignee\":\"ghost@demo.example\"}";
    /* The assignee's account may still be on its way: retried at first. */
    jp_outcome_t *o = run_ev("issue.create", "demo", ghost, NULL, 1);
    ASSERT_STATUS(o, JP_OUTCOME_RETRY);
    ck_assert_str_eq(o->error_reason, "dependency_missing");
    jp_outcome_destroy(o);
    o = run_ev("issue.create", "demo", ghost, NULL, 3);
    ASSERT_STATUS(o, JP_OUTCOME_FAILED);
    ck_assert_str_eq(o->error_reason, "not_found");
    jp_outcome_destroy(o);
    o = run("issue.create", "{\"externalRef\":\"r-2\",\"project\":\"DEMO\","
                            "\"issueType\":\"Dragon\",\"summary\":\"s\"}");
    ASSERT_STATUS(o, JP_OUTCOME_FAILED);
    ck_assert_str_eq(o->error_reason, "http_400");
    ck_assert_ptr_nonnull(strstr(o->error_message, "HTTP 400"));
    jp_outcome_destroy(o);
    ck_assert_int_eq(mutations("issue", "create"), 0);
}
END_TEST

START_TEST(issue_update_writes_only_differences)
{
    jp_outcome_t *o = run("issue.create", ISSUE);
    ASSERT_STATUS(o, JP_OUTCOME_SUCCEEDED);
    char key[32], data[256];
    snprintf(key, sizeof(key), "%s", jira(o, "issueKey"));
    jp_outcome_destroy(o);

    o = run("issue.update", "{\"externalRef\":\"idhub:req:42\",\"summary\":\"Onboard Jane\","
                            "\"priority\":\"High\",\"assignee\":\"alice@demo.example\","
                            "\"labels\":[\"onboarding\"]}");
    ASSERT_STATUS(o, JP_OUTCOME_SKIPPED);
    ck_assert_uint_eq(mutation_calls(o), 0);
    jp_outcome_destroy(o);

    o = run("issue.update", "{\"externalRef\":\"idhub:req:42\",\"summary\":\"Onboard Jane Doe\","
                            "\"priority\":\"High\",\"labels\":[\"onboarding\",\"vip\"]}");
    ASSERT_STATUS(o, JP_OUTCOME_SUCCEEDED);
    ASSERT_CHANGED(o, "summary,labels");
    jp_outcome_destroy(o);

    /* By key; the ref label survived the label change (found by ref again). */
    snprintf(data, sizeof(data), "{\"key\":\"%s\",\"assignee\":\"bob@demo.example\"}", key);
    o = run("issue.update", data);
    ASSERT_STATUS(o, JP_OUTCOME_SUCCEEDED);
    ASSERT_CHANGED(o, "assignee");
    jp_outcome_destroy(o);
    o = run("issue.update", "{\"externalRef\":\"idhub:req:42\",\"assignee\":null,"
                            "\"labels\":[\"vip\",\"onboarding\"]}");
    ASSERT_STATUS(o, JP_OUTCOME_SUCCEEDED);
    ASSERT_CHANGED(o, "assignee");
    jp_outcome_destroy(o);

    o = run("issue.update", "{\"key\":\"DEMO-999\",\"summary\":\"x\"}");
    ASSERT_STATUS(o, JP_OUTCOME_FAILED);
    ck_assert_str_eq(o->error_reason, "not_found");
    jp_outcome_destroy(o);
    o = run("issue.update", "{\"externalRef\":\"nope\",\"summary\":\"x\"}");
    ASSERT_STATUS(o, JP_OUTCOME_FAILED);
    ck_assert_str_eq(o->error_reason, "not_found");
    jp_outcome_destroy(o);
    ck_assert_int_eq(mutations("issue", "update"), 3);
}
END_TEST

START_TEST(issue_transition_rules)
{
    jp_outcome_t *o = run("issue.create", ISSUE);
    ASSERT_STATUS(o, JP_OUTCOME_SUCCEEDED);
    jp_outcome_destroy(o);
    o = run("issue.transition", "{\"externalRef\":\"idhub:req:42\",\"status\":\"To Do\"}");
    ASSERT_STATUS(o, JP_OUTCOME_SKIPPED);
    jp_outcome_destroy(o);
    o = run("issue.transition", "{\"externalRef\":\"idhub:req:42\",\"status\":\"In Progress\"}");
    ASSERT_STATUS(o, JP_OUTCOME_SUCCEEDED);
    ck_assert_str_eq(jira(o, "status"), "In Progress");
    ASSERT_CHANGED(o, "status");
    jp_outcome_destroy(o);
    o = run("issue.transition", "{\"externalRef\":\"idhub:req:42\",\"status\":\"in progress\"}");
    ASSERT_STATUS(o, JP_OUTCOME_SKIPPED);
    ck_assert_str_eq(o->detail, "already in that status");
    jp_outcome_destroy(o);
    ck_assert_int_eq(mutations("issue", "transition"), 1);

    /* OPS: Open -> Resolved needs Triage first. */
    o = run("issue.create", "{\"externalRef\":\"ops-1\",\"project\":\"OPS\","
                            "\"issueType\":\"Incident\",\"summary\":\"Disk full\"}");
    ASSERT_STATUS(o, JP_OUTCOME_SUCCEEDED);
    jp_outcome_destroy(o);
    o = run("issue.transition", "{\"externalRef\":\"ops-1\",\"status\":\"Resolved\"}");
    ASSERT_STATUS(o, JP_OUTCOME_FAILED);
    ck_assert_str_eq(o->error_reason, "no_transition");
    ck_assert_ptr_nonnull(strstr(o->error_message, "no transition from \"Open\" to \"Resolved\""));
    jp_outcome_destroy(o);
    o = run("issue.transition", "{\"externalRef\":\"ops-1\",\"status\":\"Triage\"}");
    ASSERT_STATUS(o, JP_OUTCOME_SUCCEEDED);
    jp_outcome_destroy(o);
    o = run("issue.transition", "{\"externalRef\":\"ops-1\",\"status\":\"Resolved\"}");
    ASSERT_STATUS(o, JP_OUTCOME_SUCCEEDED);
    jp_outcome_destroy(o);
}
END_TEST

START_TEST(issue_delete_rules)
{
    jp_outcome_t *o = run("issue.create", ISSUE);
    char key[32], data[128];
    snprintf(key, sizeof(key), "%s", jira(o, "issueKey"));
    jp_outcome_destroy(o);
    snprintf(data, sizeof(data), "{\"key\":\"%s\"}", key);
    o = run("issue.delete", data);
    ASSERT_STATUS(o, JP_OUTCOME_SUCCEEDED);
    jp_outcome_destroy(o);
    o = run("issue.delete", data);
    ASSERT_STATUS(o, JP_OUTCOME_SKIPPED);
    jp_outcome_destroy(o);
    o = run("issue.delete", "{\"externalRef\":\"idhub:req:42\"}");
    ASSERT_STATUS(o, JP_OUTCOME_SKIPPED);
    jp_outcome_destroy(o);
    ck_assert_int_eq(mutations("issue", "delete"), 1);

    /* A parent with a subtask: refused unless deleteSubtasks. */
    ctl_do("POST", "/__emulator/seed",
           "{\"issues\":[{\"project\":\"OPS\",\"key\":\"OPS-500\",\"issuetype\":\"Task\","
           "\"summary\":\"parent\"},{\"project\":\"OPS\",\"key\":\"OPS-501\","
           "\"issuetype\":\"Sub-task\",\"summary\":\"child\",\"parent\":\"OPS-500\"}]}");
    o = run("issue.delete", "{\"key\":\"OPS-500\"}");
    ASSERT_STATUS(o, JP_OUTCOME_FAILED);
    ck_assert_str_eq(o->error_reason, "http_400");
    jp_outcome_destroy(o);
    o = run("issue.delete", "{\"key\":\"OPS-500\",\"deleteSubtasks\":true}");
    ASSERT_STATUS(o, JP_OUTCOME_SUCCEEDED);
    jp_outcome_destroy(o);
}
END_TEST

/* ---- SCIM groups whose list answer omits members (a canned server) ---------------- */

typedef struct canned {
    const char *method, *url, *filter; /* filter: substring of ?filter=, or NULL */
    int status;
    const char *body;
} canned_t;

#define CANNED_USER(id, name, groups)                                                              \
    "{\"schemas\":[\"urn:ietf:params:scim:api:messages:2.0:ListResponse\"],\"totalResults\":1,"    \
    "\"Resources\":[{\"id\":\"" id "\",\"userName\":\"" name "\",\"active\":true," groups          \
    "\"urn:scim:schemas:extension:atlassian-external:1.0\":{\"atlassianAccountId\":\"acc-" id      \
    "\"}}]}"

static const canned_t canned_routes[] = {
    {"GET", "/scim/Groups", "team-x", 200,
     "{\"totalResults\":1,\"Resources\":[{\"id\":\"g1\",\"displayName\":\"team-x\"}]}"},
    {"GET", "/scim/Users", "u1@", 200,
     CANNED_USER("sid-1", "u1@x.example", "\"groups\":[{\"value\":\"g1\"}],")},
    {"GET", "/scim/Users", "u2@", 200, CANNED_USER("sid-2", "u2@x.example", "")},
    {"GET", "/scim/Users", "u3@", 200, CANNED_USER("sid-3", "u3@x.example", "")},
    {"GET", "/scim/Groups/g1", NULL, 200,
     "{\"id\":\"g1\",\"displayName\":\"team-x\",\"members\":[{\"value\":\"sid-2\"}]}"},
    {"PATCH", "/scim/Groups/g1", NULL, 204, ""},
};

static enum MHD_Result canned_handler(void *cls, struct MHD_Connection *c, const char *url,
                                      const char *method, const char *version,
                                      const char *upload_data, size_t *upload_data_size,
                                      void **con_cls)
{
    (void)cls, (void)version, (void)upload_data;
    if (!*con_cls) {
        *con_cls = c;
        return MHD_YES;
    }
    if (*upload_data_size) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    const char *filter = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "filter");
    const canned_t *hit = NULL;
    for (size_t i = 0; !hit && i < sizeof(canned_routes) / sizeof(canned_routes[0]); i++) {
        const canned_t *r = &canned_routes[i];
        if (strcmp(r->method, method) == 0 && strcmp(r->url, url) == 0 &&
            (!r->filter || (filter && strstr(filter, r->filter))))
            hit = r;
    }
    const char *body = hit ? hit->body : "{\"detail\":\"no canned answer\"}";
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(resp, "Content-Type", "application/scim+json");
    enum MHD_Result ret = MHD_queue_response(c, hit ? (unsigned)hit->status : 404u, resp);
    MHD_destroy_response(resp);
    return ret;
}

START_TEST(scim_membership_without_listed_members)
{
    char yaml[2048], err[256];
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct MHD_Daemon *d =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, canned_handler, NULL,
                         MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_END);
    ck_assert_ptr_nonnull(d);
    int port = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT)->port;
    snprintf(yaml, sizeof(yaml),
             "kafka:\n  bootstrap.servers: 127.0.0.1:9\n"
             "redis:\n  url: redis://127.0.0.1:6379/0\n"
             "sites:\n  - name: canned\n    jira_url: http://127.0.0.1:%d\n"
             "    email: a@x.example\n    api_token: t\n"
             "    scim_url: http://127.0.0.1:%d/scim\n    scim_api_key: k\n",
             port, port);
    jp_apply_destroy(H.apply);
    jp_config_destroy(H.cfg);
    ck_assert_msg(jp_config_load_string(yaml, "canned", &H.cfg, err, sizeof(err)) == JP_OK, "%s",
                  err);
    make_apply(NULL);
    const char *ent = ",\"entitlement\":{\"type\":\"group\",\"group\":\"team-x\"}}";
    char data[256];

    /* The user's resource lists the group: no group read needed. */
    snprintf(data, sizeof(data), "{\"login\":\"u1@x.example\"%s", ent);
    jp_outcome_t *o = run_ev("entitlement.grant", "canned", data, NULL, 1);
    ASSERT_STATUS(o, JP_OUTCOME_SKIPPED);
    ck_assert_uint_eq(o->call_count, 2);
    jp_outcome_destroy(o);
    o = run_ev("entitlement.revoke", "canned", data, NULL, 1);
    ASSERT_STATUS(o, JP_OUTCOME_SUCCEEDED);
    ck_assert_str_eq(o->calls[2].method, "PATCH");
    ck_assert_str_eq(o->calls[2].path, "/scim/Groups/g1");
    jp_outcome_destroy(o);

    /* Neither lists it: the group is read. */
    snprintf(data, sizeof(data), "{\"login\":\"u2@x.example\"%s", ent);
    o = run_ev("entitlement.grant", "canned", data, NULL, 1);
    ASSERT_STATUS(o, JP_OUTCOME_SKIPPED);
    ck_assert_str_eq(o->detail, "already a member");
    ck_assert_uint_eq(o->call_count, 3);
    ck_assert_str_eq(o->calls[2].path, "/scim/Groups/g1");
    jp_outcome_destroy(o);
    snprintf(data, sizeof(data), "{\"login\":\"u3@x.example\"%s", ent);
    o = run_ev("entitlement.revoke", "canned", data, NULL, 1);
    ASSERT_STATUS(o, JP_OUTCOME_SKIPPED);
    ck_assert_str_eq(o->detail, "not a member");
    jp_outcome_destroy(o);
    MHD_stop_daemon(d);
}
END_TEST

/* ---- failures ---------------------------------------------------------------------------------
 */

START_TEST(fault_503_with_retry_after_is_retry)
{
    faults("[{\"path\":\"/scim/*\",\"kind\":\"error\",\"status\":503,\"retry_after\":7}]");
    jp_outcome_t *o = run("account.create", JDOE);
    ASSERT_STATUS(o, JP_OUTCOME_RETRY);
    ck_assert_int_eq(o->error_class, JP_CLASS_RETRIABLE);
    ck_assert_str_eq(o->error_reason, "http_503");
    ck_assert_int_eq(o->retry_after_ms, 7000);
    ck_assert_ptr_nonnull(strstr(o->error_message, "HTTP 503"));
    ck_assert_uint_eq(o->call_count, 1);
    ck_assert_int_eq(o->calls[0].status, 503);
    jp_outcome_destroy(o);

    faults("[{\"path\":\"/rest/*\",\"kind\":\"rate_limit\",\"retry_after\":3,"
           "\"reason\":\"jira-quota-tenant-based\"}]");
    o = run("issue.create", ISSUE);
    ASSERT_STATUS(o, JP_OUTCOME_RETRY);
    ck_assert_str_eq(o->error_reason, "http_429");
    ck_assert_int_eq(o->retry_after_ms, 3000);
    ck_assert_int_eq(o->limit_scope, JP_SCOPE_QUOTA_SITE);
    jp_outcome_destroy(o);
    ctl_do("DELETE", "/__emulator/faults", NULL);
    ck_assert_int_eq(mutations("user", "create") + mutations("issue", "create"), 0);
}
END_TEST

START_TEST(bad_credentials_quarantine)
{
    jp_outcome_t *o = run_ev("account.create", "bad", JDOE, NULL, 1);
    ASSERT_STATUS(o, JP_OUTCOME_QUARANTINE);
    ck_assert_int_eq(o->error_class, JP_CLASS_QUARANTINE);
    /* The emulator answers a wrong SCIM key as Atlassian's gateway does. */
    ck_assert_msg(strcmp(o->error_reason, "http_401") == 0 ||
                      strcmp(o->error_reason, "http_403") == 0,
                  "%s", o->error_reason);
    /* The message names the call, never a credential. */
    ck_assert(strstr(o->error_message, "wrong") == NULL);
    jp_outcome_destroy(o);
    o = run_ev("issue.transition", "bad", "{\"key\":\"DEMO-1\",\"status\":\"Done\"}", NULL, 1);
    ASSERT_STATUS(o, JP_OUTCOME_QUARANTINE);
    ck_assert_str_eq(o->error_reason, "http_401"); /* Jira REST: wrong API token */
    jp_outcome_destroy(o);
}
END_TEST

START_TEST(timeout_after_create_sent_then_retry_once)
{
    /* Applied, answer late: the POST times out (outcome unknown). */
    faults("[{\"path\":\"/scim/directory/*/Users\",\"method\":\"POST\",\"kind\":\"latency\","
           "\"latency_ms\":2000}]");
    jp_event_t *ev = make_event("account.create", "fast", JDOE, "evt-timeout-1");
    jp_outcome_t *o = apply_event(ev, 1);
    ASSERT_STATUS(o, JP_OUTCOME_RETRY);
    ck_assert_str_eq(o->error_reason, "timeout");
    ck_assert_ptr_nonnull(strstr(o->detail, "outcome unknown"));
    ck_assert_int_eq(o->calls[o->call_count - 1].status, 0);
    jp_outcome_destroy(o);
    ctl_do("DELETE", "/__emulator/faults", NULL);
    o = apply_event(ev, 2);
    ASSERT_STATUS(o, JP_OUTCOME_SKIPPED);
    ck_assert_uint_eq(mutation_calls(o), 0);
    jp_outcome_destroy(o);
    jp_event_destroy(ev);
    ck_assert_int_eq(mutations("user", "create"), 1);

    /* Never answered (and not applied): the retry creates it, once. */
    faults("[{\"path\":\"/scim/directory/*/Users\",\"method\":\"POST\",\"kind\":\"hang\","
           "\"hang_ms\":1500}]");
    ev = make_event("account.create", "fast",
                    "{\"login\":\"hang@demo.example\",\"email\":\"hang@demo.example\"}",
                    "evt-timeout-2");
    o = apply_event(ev, 1);
    ASSERT_STATUS(o, JP_OUTCOME_RETRY);
    ck_assert_str_eq(o->error_reason, "timeout");
    jp_outcome_destroy(o);
    ctl_do("DELETE", "/__emulator/faults", NULL);
    o = apply_event(ev, 2);
    ASSERT_STATUS(o, JP_OUTCOME_SUCCEEDED);
    jp_outcome_destroy(o);
    o = apply_event(ev, 3);
    ASSERT_STATUS(o, JP_OUTCOME_SKIPPED);
    jp_outcome_destroy(o);
    jp_event_destroy(ev);
    ck_assert_int_eq(mutations("user", "create"), 2);
}
END_TEST

START_TEST(timeout_after_issue_create_sent)
{
    faults("[{\"path\":\"/rest/api/3/issue\",\"method\":\"POST\",\"kind\":\"latency\","
           "\"latency_ms\":2000}]");
    jp_event_t *ev = make_event("issue.create", "fast", ISSUE, "evt-issue-timeout");
    jp_outcome_t *o = apply_event(ev, 1);
    ASSERT_STATUS(o, JP_OUTCOME_RETRY);
    ck_assert_str_eq(o->error_reason, "timeout");
    jp_outcome_destroy(o);
    ctl_do("DELETE", "/__emulator/faults", NULL);
    o = apply_event(ev, 2);
    ASSERT_STATUS(o, JP_OUTCOME_SUCCEEDED);
    ck_assert_ptr_nonnull(strstr(o->detail, "earlier attempt"));
    ck_assert_uint_eq(mutation_calls(o), 0);
    jp_outcome_destroy(o);
    jp_event_destroy(ev);
    ck_assert_int_eq(mutations("issue", "create"), 1);
}
END_TEST

/* ---- hostile values -------------------------------------------------------------------------- */

START_TEST(hostile_logins_are_escaped)
{
    static const char *logins[] = {
        "..",
        "a?b=c&d",
        "x#frag",
        "pct%2F%00",
        "q\"uote'@x",
        "back\\slash",
        "Ünïcødé@例え.jp",
        "+plus+",
        "semi;colon,comma",
        "a]b[c{d}",
        "userName_eq_\"x\"",
        "*",
        "%",
        "..%2f..%2fetc",
    };
    for (size_t i = 0; i < sizeof(logins) / sizeof(logins[0]); i++) {
        json_t *d = json_pack("{s:s, s:s}", "login", logins[i], "email", "");
        char email[64], *data;
        snprintf(email, sizeof(email), "hostile%zu@demo.example", i);
        json_object_set_new(d, "email", json_string(email));
        data = json_dumps(d, JSON_COMPACT);
        jp_outcome_t *o = run("account.create", data);
        ck_assert_msg(o->status == JP_OUTCOME_SUCCEEDED, "%s: %s %s", logins[i],
                      jp_outcome_status_name(o->status), o->error_message ? o->error_message : "");
        jp_outcome_destroy(o);
        o = run("account.create", data);
        ck_assert_msg(o->status == JP_OUTCOME_SKIPPED, "%s (again): %s %s", logins[i],
                      jp_outcome_status_name(o->status), o->error_message ? o->error_message : "");
        jp_outcome_destroy(o);
        free(data);
        json_t *u = state_user(logins[i]);
        ck_assert_msg(u != NULL, "%s not found in the emulator's state", logins[i]);
        json_decref(u);

        json_t *g = json_pack("{s:s, s:{s:s, s:s}}", "login", logins[i], "entitlement", "type",
                              "group", "group", "demo-team");
        data = json_dumps(g, JSON_COMPACT);
        o = run("entitlement.grant", data);
        ck_assert_msg(o->status == JP_OUTCOME_SUCCEEDED, "%s grant: %s", logins[i],
                      o->error_message ? o->error_message : "");
        jp_outcome_destroy(o);
        free(data);
        json_decref(g);
        json_decref(d);
    }
    size_t n = sizeof(logins) / sizeof(logins[0]);
    ck_assert_int_eq(mutations("user", "create"), (long)n);
    ck_assert_int_eq(mutations("membership", "add"), (long)n);
}
END_TEST

/* GET path of the emulator's Jira REST API as the bot; the parsed body. */
static json_t *rest_get(const char *path)
{
    char url[1024];
    buf_t b = {0};
    long status = 0;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", emu_port, path);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_USERPWD, "jiraprov-bot@demo.example:demo-jira-api-token");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    ck_assert_msg(rc == CURLE_OK && status == 200, "GET %s: curl %d, HTTP %ld: %s", path, (int)rc,
                  status, b.p ? b.p : "");
    json_t *j = json_loads(b.p, 0, NULL);
    free(b.p);
    return j;
}

/* Members (account ids) of the emulator's group `name`, as a new array. */
static json_t *group_members(const char *name)
{
    json_t *st = ctl("GET", "/__emulator/state", NULL), *hit = NULL;
    size_t i;
    json_t *g;
    json_array_foreach(json_object_get(st, "groups"), i, g)
    {
        if (!strcmp(json_string_value(json_object_get(g, "name")), name))
            hit = json_incref(json_object_get(g, "members"));
    }
    json_decref(st);
    ck_assert_msg(hit != NULL, "no group named %s", name);
    return hit;
}

/* Group names that look like paths, queries, fragments, escapes and filter
 * syntax reach exactly the group of that name, through SCIM (site demo)
 * and through Jira's group API (site alt); the group a query injection
 * names is never touched. */
START_TEST(hostile_group_names_reach_their_group)
{
    static const char *names[] = {
        "a/b",
        "..",
        "../../x",
        "?x#y",
        "100%",
        "x&groupName=jira-admins",
        "\"q\" or displayName pr",
        "\\",
        "jira admins",
        "\xd7\xa2\xd7\x91\xd7\xa8\xd7\x99\xd7\xaa",
    };
    size_t n = sizeof(names) / sizeof(names[0]);
    json_t *groups = json_pack("[{s:s, s:b}]", "name", "jira-admins", "scim", 1);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(groups, json_pack("{s:s, s:b}", "name", names[i], "scim", 1));
    json_t *seed = json_pack("{s:o}", "groups", groups);
    char *text = json_dumps(seed, JSON_COMPACT);
    ctl_do("POST", "/__emulator/seed", text);
    free(text);
    json_decref(seed);

    jp_outcome_t *o = run("account.create", "{\"login\":\"hostile-groups@demo.example\","
                                            "\"email\":\"hostile-groups@demo.example\"}");
    ASSERT_STATUS(o, JP_OUTCOME_SUCCEEDED);
    char account[128];
    snprintf(account, sizeof(account), "%s", jira(o, "accountId"));
    jp_outcome_destroy(o);
    long before = mutations("membership", "add");
    for (size_t i = 0; i < n; i++) {
        json_t *d = json_pack("{s:s, s:{s:s, s:s}}", "login", "hostile-groups@demo.example",
                              "entitlement", "type", "group", "group", names[i]);
        char *data = json_dumps(d, JSON_COMPACT);
        o = run_ev("entitlement.grant", "demo", data, NULL, 1);
        ASSERT_STATUS(o, JP_OUTCOME_SUCCEEDED);
        jp_outcome_destroy(o);
        o = run_ev("entitlement.grant", "alt", data, NULL, 1); /* Jira REST: already held */
        ASSERT_STATUS(o, JP_OUTCOME_SKIPPED);
        jp_outcome_destroy(o);
        free(data);
        json_decref(d);
        json_t *m = group_members(names[i]);
        ck_assert_msg(json_array_size(m) == 1 &&
                          !strcmp(json_string_value(json_array_get(m, 0)), account),
                      "group %s: members %s", names[i], json_dumps(m, JSON_COMPACT));
        json_decref(m);
    }
    ck_assert_int_eq(mutations("membership", "add") - before, (long)n);
    json_t *admins = group_members("jira-admins");
    ck_assert_uint_eq(json_array_size(admins), 0);
    json_decref(admins);
}
END_TEST

/* Issue text with quotes, markup, bidi controls and emoji arrives as written. */
START_TEST(hostile_issue_text_arrives_exactly)
{
    const char *summary = "Quote \" back\\slash <script>alert(1)</script> \xe2\x80\xae"
                          "evil \xf0\x9f\x98\x80 %2F ../x?y#z";
    json_t *d = json_pack("{s:s, s:s, s:s, s:s, s:s, s:[s, s, s]}", "externalRef", "hostile:text:1",
                          "project", "DEMO", "issueType", "Task", "summary", summary, "description",
                          "line 1\r\nline 2 \"quoted\"\n\nparagraph <b>", "labels", "a\"b", "c\\d",
                          "x?y#z");
    char *data = json_dumps(d, JSON_COMPACT);
    jp_outcome_t *o = run("issue.create", data);
    ASSERT_STATUS(o, JP_OUTCOME_SUCCEEDED);
    char path[128];
    snprintf(path, sizeof(path), "/rest/api/3/issue/%s?fields=summary,labels", jira(o, "issueKey"));
    jp_outcome_destroy(o);
    json_t *is = rest_get(path);
    json_t *fields = json_object_get(is, "fields");
    ck_assert_str_eq(json_string_value(json_object_get(fields, "summary")), summary);
    json_t *labels = json_object_get(fields, "labels");
    static const char *want[] = {"a\"b", "c\\d", "x?y#z", "idhub-ref-hostile:text:1"};
    ck_assert_uint_eq(json_array_size(labels), 4);
    for (size_t i = 0; i < 4; i++) {
        int found = 0;
        for (size_t k = 0; k < 4; k++)
            found |= !strcmp(json_string_value(json_array_get(labels, k)), want[i]);
        ck_assert_msg(found, "label %s missing", want[i]);
    }
    json_decref(is);
    /* Found again by its ref: the create is not repeated. */
    o = run("issue.create", data);
    ASSERT_STATUS(o, JP_OUTCOME_SKIPPED);
    jp_outcome_destroy(o);
    ck_assert_int_eq(mutations("issue", "create"), 1);
    free(data);
    json_decref(d);
}
END_TEST

START_TEST(slash_login_past_the_decoder_is_still_escaped)
{
    /* The contract refuses '/' in logins; apply must not depend on it. */
    jp_event_t *ev = make_event("account.create", "demo",
                                "{\"login\":\"placeholder@demo.example\","
                                "\"email\":\"slash@demo.example\"}",
                                NULL);
    ev->account.attr[JP_ATTR_LOGIN].value = "../Users/x/y";
    jp_outcome_t *o = apply_event(ev, 1);
    ASSERT_STATUS(o, JP_OUTCOME_SUCCEEDED);
    jp_outcome_destroy(o);
    o = apply_event(ev, 1);
    ASSERT_STATUS(o, JP_OUTCOME_SKIPPED);
    jp_outcome_destroy(o);
    jp_event_destroy(ev);
    json_t *u = state_user("../Users/x/y");
    ck_assert_ptr_nonnull(u);
    json_decref(u);
}
END_TEST

/* ---- API behaviour -----------------------------------------------------------------------------
 */

static void never(jp_outcome_t *o, void *opaque)
{
    (void)opaque;
    jp_outcome_destroy(o);
    ck_abort_msg("callback called for a refused event");
}

START_TEST(start_refusals)
{
    char err[256];
    jp_event_t *ev =
        make_event("account.delete", "nosuchsite", "{\"login\":\"a@demo.example\"}", NULL);
    ck_assert_int_eq(jp_apply_start(H.apply, ev, 1, never, NULL, err, sizeof(err)),
                     JP_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(err, "nosuchsite"));
    jp_event_destroy(ev);
    ev = make_event("recon.request", "demo",
                    "{\"reconId\":\"r1\",\"mode\":\"full\",\"resources\":[\"accounts\"]}", NULL);
    ck_assert_int_eq(jp_apply_start(H.apply, ev, 1, never, NULL, err, sizeof(err)),
                     JP_ERR_UNSUPPORTED);
    jp_event_destroy(ev);
    ck_assert_uint_eq(jp_apply_in_flight(H.apply), 0);
    uv_run(&H.loop, UV_RUN_NOWAIT);

    /* A value the request builder refuses finishes FAILED, later. */
    ev = make_event("issue.create", "demo",
                    "{\"externalRef\":\"r-9\",\"project\":\"DEMO\",\"issueType\":\"Task\","
                    "\"summary\":\"s\",\"labels\":[\"idhub-ref-forged\"]}",
                    NULL);
    jp_outcome_t *o = apply_event(ev, 1);
    ASSERT_STATUS(o, JP_OUTCOME_FAILED);
    ck_assert_str_eq(o->error_reason, "invalid_request");
    jp_outcome_destroy(o);
    jp_event_destroy(ev);
}
END_TEST

typedef struct many {
    int done;
    int ok;
} many_t;

static void on_many(jp_outcome_t *o, void *opaque)
{
    many_t *m = opaque;
    m->done++;
    m->ok += o->status == JP_OUTCOME_SUCCEEDED;
    jp_outcome_destroy(o);
}

static int many_done(void *arg)
{
    return ((many_t *)arg)->done == 40;
}

START_TEST(many_in_flight_on_one_loop)
{
    enum { N = 40 };
    jp_event_t *evs[N];
    many_t m = {0, 0};
    char err[256];
    for (int i = 0; i < N; i++) {
        char data[256];
        snprintf(data, sizeof(data),
                 "{\"login\":\"bulk%d@demo.example\",\"email\":\"bulk%d@demo.example\","
                 "\"firstName\":\"B%d\"}",
                 i, i, i);
        evs[i] = make_event("account.create", "demo", data, NULL);
        ck_assert_int_eq(jp_apply_start(H.apply, evs[i], 1, on_many, &m, err, sizeof(err)), JP_OK);
    }
    ck_assert_uint_eq(jp_apply_in_flight(H.apply), N);
    ck_assert(run_until(many_done, &m, 20000));
    ck_assert_int_eq(m.ok, N);
    ck_assert_uint_eq(jp_apply_in_flight(H.apply), 0);
    for (int i = 0; i < N; i++)
        jp_event_destroy(evs[i]);
    ck_assert_int_eq(mutations("user", "create"), N);
}
END_TEST

START_TEST(destroy_cancels_in_flight)
{
    faults("[{\"path\":\"/scim/*\",\"kind\":\"hang\",\"hang_ms\":3000}]");
    jp_event_t *ev = make_event("account.create", "demo", JDOE, NULL);
    got_t g = {0};
    char err[256];
    ck_assert_int_eq(jp_apply_start(H.apply, ev, 1, on_done, &g, err, sizeof(err)), JP_OK);
    uv_run(&H.loop, UV_RUN_NOWAIT); /* the request goes out */
    jp_apply_destroy(H.apply);
    H.apply = NULL;
    ck_assert_int_eq(g.calls, 1);
    ASSERT_STATUS(g.o, JP_OUTCOME_RETRY);
    ck_assert_str_eq(g.o->error_reason, "cancelled");
    jp_outcome_destroy(g.o);
    jp_event_destroy(ev); /* the orphaned request must not read it any more */
    jp_http_cancel_all(H.http);
    uv_run(&H.loop, UV_RUN_NOWAIT);
    ck_assert_int_eq(g.calls, 1);
    ctl_do("DELETE", "/__emulator/faults", NULL);
}
END_TEST

/* ---- the Redis lookup cache
 * ----------------------------------------------------------------------- */

static void on_redis_state(void *opaque, int connected)
{
    *(int *)opaque = connected;
}

static int is_set(void *arg)
{
    return *(int *)arg != 0;
}

typedef struct cache_done {
    int done;
} cache_done_t;

static void on_cache_set(jp_err_t err, const char *errstr, void *opaque)
{
    ck_assert_msg(err == JP_OK, "%s", errstr);
    ((cache_done_t *)opaque)->done = 1;
}

static int cache_is_done(void *arg)
{
    return ((cache_done_t *)arg)->done;
}

static size_t count_calls(const jp_outcome_t *o, const char *method, const char *path_end)
{
    size_t n = 0, pl = strlen(path_end);
    for (size_t i = 0; i < o->call_count; i++) {
        size_t l = strlen(o->calls[i].path);
        n += strcmp(o->calls[i].method, method) == 0 && l >= pl &&
             strcmp(o->calls[i].path + l - pl, path_end) == 0;
    }
    return n;
}

START_TEST(cache_saves_lookups_and_recovers_from_stale_ids)
{
    char err[256];
    int connected = 0;
    ck_assert_int_eq(testredis_start(&H.redis, 0), 0);
    jp_redis_opts_t ro = {0};
    ro.host = "127.0.0.1";
    ro.port = H.redis.port;
    ro.on_state = on_redis_state;
    ro.opaque = &connected;
    H.rc = jp_redis_new(&H.loop, &ro, err, sizeof(err));
    ck_assert_msg(H.rc != NULL, "%s", err);
    ck_assert(run_until(is_set, &connected, 5000));
    H.store = jp_store_new(H.rc, "jptest:", 3600, err, sizeof(err));
    ck_assert_msg(H.store != NULL, "%s", err);
    jp_apply_destroy(H.apply);
    make_apply(H.store);

    const char *grant = "{\"login\":\"carol@demo.example\",\"entitlement\":{\"type\":"
                        "\"projectRole\",\"project\":\"DEMO\",\"role\":\"Developers\"}}";
    jp_outcome_t *o = run("entitlement.grant", grant);
    ASSERT_STATUS(o, JP_OUTCOME_SUCCEEDED);
    ck_assert_uint_eq(count_calls(o, "GET", "/Users"), 1); /* miss: looked up */
    jp_outcome_destroy(o);
    o = run("entitlement.revoke", grant);
    ASSERT_STATUS(o, JP_OUTCOME_SUCCEEDED);
    ck_assert_uint_eq(count_calls(o, "GET", "/Users"), 0); /* hit */
    ck_assert_str_eq(jira(o, "accountId"), "5b10a2844c20165700ede21c");
    jp_outcome_destroy(o);

    /* A stale SCIM id in the cache: the 404 drops it and the user is found again. */
    cache_done_t cd = {0};
    json_t *v = json_pack("{s:s, s:s}", "scimId", "00000000-dead-beef-0000-000000000000",
                          "accountId", "5b10a2844c20165700ede21c");
    ck_assert_int_eq(
        jp_store_cache_set(H.store, "demo", "user", "carol@demo.example", v, 60, on_cache_set, &cd),
        JP_OK);
    json_decref(v);
    ck_assert(run_until(cache_is_done, &cd, 5000));
    /* demo-team's members are listed by the group, so the stale id is "not a
     * member": the PATCH answers 404, the id is refreshed and the write redone. */
    o = run("entitlement.grant", "{\"login\":\"carol@demo.example\",\"entitlement\":"
                                 "{\"type\":\"group\",\"group\":\"demo-team\"}}");
    ASSERT_STATUS(o, JP_OUTCOME_SUCCEEDED);
    ck_assert_uint_eq(count_calls(o, "GET", "/Users"), 1);
    ck_assert_uint_eq(mutation_calls(o), 2);
    jp_outcome_destroy(o);
    ck_assert_int_eq(mutations("membership", "add"), 1);

    /* Deleting the account forgets it; a new account of that name is found. */
    o = run("account.delete", "{\"login\":\"carol@demo.example\"}");
    ASSERT_STATUS(o, JP_OUTCOME_SUCCEEDED);
    jp_outcome_destroy(o);
    o = run("account.create",
            "{\"login\":\"carol@demo.example\",\"email\":\"carol@demo.example\"}");
    ASSERT_STATUS(o, JP_OUTCOME_SUCCEEDED);
    jp_outcome_destroy(o);
    o = run("entitlement.grant", "{\"login\":\"carol@demo.example\",\"entitlement\":"
                                 "{\"type\":\"group\",\"group\":\"demo-team\"}}");
    ASSERT_STATUS(o, JP_OUTCOME_SUCCEEDED);
    ck_assert_uint_eq(count_calls(o, "GET", "/Users"), 0); /* the create cached the new ids */
    ck_assert_uint_eq(mutation_calls(o), 1);
    jp_outcome_destroy(o);
}
END_TEST

/* ---- suite
 * ------------------------------------------------------------------------------------------ */

static Suite *suite(void)
{
    Suite *s = suite_create("apply");
    TCase *tc = tcase_create("emulator");
    tcase_add_unchecked_fixture(tc, emu_start, emu_stop);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, account_create_twice_creates_once);
    tcase_add_test(tc, account_create_existing_patches_only_changes);
    tcase_add_test(tc, account_create_race_converges_after_409);
    tcase_add_test(tc, account_update_rules);
    tcase_add_test(tc, account_delete_twice);
    tcase_add_test(tc, account_enable_disable_scim);
    tcase_add_test(tc, account_enable_disable_admin);
    tcase_add_test(tc, group_scim_grant_revoke);
    tcase_add_test(tc, group_jira_grant_revoke);
    tcase_add_test(tc, project_role_grant_revoke);
    tcase_add_test(tc, unknown_group_or_user_fails);
    tcase_add_test(tc, scim_membership_without_listed_members);
    tcase_add_test(tc, issue_create_twice_creates_once);
    tcase_add_test(tc, issue_create_unknown_assignee_fails);
    tcase_add_test(tc, issue_update_writes_only_differences);
    tcase_add_test(tc, issue_transition_rules);
    tcase_add_test(tc, issue_delete_rules);
    tcase_add_test(tc, fault_503_with_retry_after_is_retry);
    tcase_add_test(tc, bad_credentials_quarantine);
    tcase_add_test(tc, timeout_after_create_sent_then_retry_once);
    tcase_add_test(tc, timeout_after_issue_create_sent);
    tcase_add_test(tc, hostile_logins_are_escaped);
    tcase_add_test(tc, hostile_group_names_reach_their_group);
    tcase_add_test(tc, hostile_issue_text_arrives_exactly);
    tcase_add_test(tc, slash_login_past_the_decoder_is_still_escaped);
    tcase_add_test(tc, start_refusals);
    tcase_add_test(tc, many_in_flight_on_one_loop);
    tcase_add_test(tc, destroy_cancels_in_flight);
    tcase_add_test(tc, cache_saves_lookups_and_recovers_from_stale_ids);
    suite_add_tcase(s, tc);
    return s;
}

JP_CHECK_MAIN(suite)
