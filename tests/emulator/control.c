/* Control API under /__emulator/ (no auth, no limits, no faults): reset, seed,
 * state dump, counters, rate-limit and fault configuration. */
#include "emu_internal.h"

#include <stdlib.h>
#include <string.h>

static void emu_ctl_bad(emu_resp_t *resp, const char *msg)
{
    emu_resp_json(resp, 400, json_pack("{s:s}", "error", msg));
}

static void emu_ctl_ok(emu_resp_t *resp)
{
    emu_resp_json(resp, 200, json_pack("{s:b}", "ok", 1));
}

int emu_control_apply_seed(emu_t *emu, json_t *seed, char *err, size_t errsz)
{
    if (!json_is_object(seed)) {
        snprintf(err, errsz, "the seed must be a JSON object");
        return -1;
    }
    if (emu_store_seed(emu, seed, err, errsz) != 0)
        return -1;
    return emu_jira_seed(emu, seed, err, errsz);
}

int emu_control_seed_file(emu_t *emu, const char *path, char *err, size_t errsz)
{
    json_error_t je;
    json_t *seed = json_load_file(path, 0, &je);
    if (!seed) {
        snprintf(err, errsz, "cannot load seed file %s: %s (line %d)", path, je.text, je.line);
        return -1;
    }
    int rc = emu_control_apply_seed(emu, seed, err, errsz);
    json_decref(seed);
    return rc;
}

static void emu_ctl_health(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    (void)req;
    emu_resp_json(resp, 200,
                  json_pack("{s:b, s:s, s:I}", "ok", 1, "version", EMU_VERSION, "users",
                            (json_int_t)emu_user_count(emu)));
}

static void emu_ctl_reset(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    size_t len;
    emu_req_body(req, &len);
    json_t *body = len ? emu_req_json(req, NULL, 0) : NULL;
    if (len && !body) {
        emu_ctl_bad(resp, "the reset body must be JSON");
        return;
    }
    emu_store_reset(emu);
    emu_jira_reset(emu);
    emu_seqs_clear(emu);
    emu_counters_reset(emu);
    emu_faults_clear(emu->faults);
    char err[256];
    emu_limits_configure(emu->limits, emu->startup_limits, err, sizeof(err));
    if (json_is_true(json_object_get(body, "seed_demo"))) {
        emu_store_seed_demo(emu);
        emu_jira_seed_demo(emu);
    }
    emu_ctl_ok(resp);
}

static void emu_ctl_seed(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    char err[512];
    json_t *seed = emu_req_json(req, err, sizeof(err));
    if (!seed) {
        emu_ctl_bad(resp, err);
        return;
    }
    if (emu_control_apply_seed(emu, seed, err, sizeof(err)) != 0) {
        emu_ctl_bad(resp, err);
        return;
    }
    emu_resp_json(resp, 200,
                  json_pack("{s:b, s:I, s:I}", "ok", 1, "users", (json_int_t)emu_user_count(emu),
                            "groups", (json_int_t)emu_group_count(emu)));
}

static void emu_ctl_state(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    (void)req;
    json_t *st = emu_store_dump(emu);
    json_t *jira = emu_jira_dump(emu);
    json_object_set_new(st, "jira", jira ? jira : json_object());
    emu_resp_json(resp, 200, st);
}

static void emu_ctl_counters(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    (void)req;
    emu_resp_json(resp, 200, emu_counters_dump(emu));
}

static void emu_ctl_counters_reset(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    (void)req;
    emu_counters_reset(emu);
    emu_ctl_ok(resp);
}

static void emu_ctl_limits_get(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    (void)req;
    emu_resp_json(resp, 200, emu_limits_dump(emu->limits));
}

static void emu_ctl_limits_put(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    char err[512];
    json_t *cfg = emu_req_json(req, err, sizeof(err));
    if (!cfg) {
        emu_ctl_bad(resp, err);
        return;
    }
    /* A rejected configuration leaves the previous one in force (the dump
     * is itself a valid configuration document). */
    json_t *prev = emu_limits_dump(emu->limits);
    if (emu_limits_configure(emu->limits, cfg, err, sizeof(err)) != 0) {
        emu_limits_configure(emu->limits, prev, NULL, 0);
        json_decref(prev);
        emu_ctl_bad(resp, err);
        return;
    }
    json_decref(prev);
    emu_resp_json(resp, 200, emu_limits_dump(emu->limits));
}

static void emu_ctl_faults_get(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    (void)req;
    emu_resp_json(resp, 200, emu_faults_dump(emu->faults));
}

static void emu_ctl_faults_put(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    char err[512];
    json_t *cfg = emu_req_json(req, err, sizeof(err));
    if (!cfg) {
        emu_ctl_bad(resp, err);
        return;
    }
    if (emu_faults_configure(emu, cfg, err, sizeof(err)) != 0) {
        emu_ctl_bad(resp, err);
        return;
    }
    emu_resp_json(resp, 200, emu_faults_dump(emu->faults));
}

static void emu_ctl_faults_delete(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    (void)req;
    emu_faults_clear(emu->faults);
    emu_ctl_ok(resp);
}

void emu_control_register(emu_t *emu)
{
    emu_route(emu, "GET", "/__emulator/health", emu_ctl_health, NULL);
    emu_route(emu, "POST", "/__emulator/reset", emu_ctl_reset, NULL);
    emu_route(emu, "POST", "/__emulator/seed", emu_ctl_seed, NULL);
    emu_route(emu, "GET", "/__emulator/state", emu_ctl_state, NULL);
    emu_route(emu, "GET", "/__emulator/counters", emu_ctl_counters, NULL);
    emu_route(emu, "POST", "/__emulator/counters/reset", emu_ctl_counters_reset, NULL);
    emu_route(emu, "GET", "/__emulator/rate-limits", emu_ctl_limits_get, NULL);
    emu_route(emu, "PUT", "/__emulator/rate-limits", emu_ctl_limits_put, NULL);
    emu_route(emu, "GET", "/__emulator/faults", emu_ctl_faults_get, NULL);
    emu_route(emu, "PUT", "/__emulator/faults", emu_ctl_faults_put, NULL);
    emu_route(emu, "DELETE", "/__emulator/faults", emu_ctl_faults_delete, NULL);
}
