/* The pure parts of reconciliation: what a run is (definition, phases, checkpoint round trip
 * and refusals), which accounts a filter selects, items, fingerprints and the diff that
 * incremental runs make, removals rebuilt from stored values, and the exact records (the
 * committed samples in config/samples/records/recon.jsonl, which check_records.py validates
 * against the schema). The engine runs end to end in tests/integration/recon_e2e.py.
 *
 * JP_UPDATE_RECORD_SAMPLES=1 rewrites the sample file instead of comparing. */
#include "jiraprov/config.h"
#include "jiraprov/mapping.h"
#include "jiraprov/recon.h"
#include "jiraprov/record.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/check_main.h"
#include "../lib/fixture.h"

#define NOW      1795338000123LL /* 2026-11-22T09:00:00.123Z */
#define INSTANCE "worker-a-17"
#define SAMPLES  "/config/samples/records/"

static const char *const base_config = "kafka:\n  bootstrap.servers: k:9092\n"
                                       "redis:\n  url: redis://r:6379\n"
                                       "sites:\n  - name: demo\n"
                                       "    jira_url: https://demo.atlassian.net\n"
                                       "    email: bot@demo.example\n"
                                       "    api_token: tok-1234\n"
                                       "    scim_url: https://api.atlassian.com/scim/directory/d\n"
                                       "    scim_api_key: key-1234\n";

static jp_config_t *cfg;
static jp_mapping_t *mapping;

static void setup(void)
{
    char err[512];
    ck_assert_msg(jp_config_load_string(base_config, "t.yaml", &cfg, err, sizeof err) == JP_OK,
                  "%s", err);
    mapping = jp_mapping_new(cfg->mapping, cfg->mapping_count, err, sizeof err);
    ck_assert_msg(mapping != NULL, "%s", err);
}

static void teardown(void)
{
    jp_mapping_destroy(mapping);
    jp_config_destroy(cfg);
}

static jp_event_t *decode(const char *json)
{
    jp_event_t *ev = NULL;
    char err[512];
    ck_assert_msg(jp_event_decode(json, strlen(json), NULL, &ev, err, sizeof err) == JP_OK, "%s",
                  err);
    return ev;
}

/* A recon.request with the given data. */
static jp_event_t *request(const char *id, const char *data)
{
    char buf[2048];
    const char *rid = strstr(data, "\"reconId\":\"") + 11;
    int n = (int)(strchr(rid, '"') - rid);
    snprintf(buf, sizeof buf,
             "{\"specversion\":\"1.0\",\"id\":\"%s\",\"source\":\"https://idhub.example/r\","
             "\"type\":\"com.idhub.recon.request\",\"subject\":\"%.*s\","
             "\"time\":\"2026-11-22T09:00:00Z\",\"jirasite\":\"demo\","
             "\"idhubactor\":\"alice@idhub.example\","
             "\"traceparent\":\"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\","
             "\"data\":%s}",
             id, n, rid, data);
    return decode(buf);
}

static json_t *fixture_json(const char *rel)
{
    size_t len;
    char *text = testfix_read(rel, &len);
    json_t *j = json_loadb(text, len, 0, NULL);
    free(text);
    ck_assert_ptr_nonnull(j);
    return j;
}

static json_t *scim_user(void)
{
    return fixture_json("/tests/unit/data/jira/scim_user.json");
}

/* ---- definitions and phases --------------------------------------------------------------- */

START_TEST(def_from_the_sample_request)
{
    size_t len;
    char *text = testfix_read("/config/samples/recon.request.json", &len);
    jp_event_t *ev = decode(text);
    free(text);
    jp_recon_def_t d;
    char err[256];
    ck_assert_int_eq(jp_recon_def_from_event(ev, &d, err, sizeof err), JP_OK);
    jp_event_destroy(ev); /* the definition is a copy */
    ck_assert_str_eq(d.recon_id, "recon-platform-1");
    ck_assert_str_eq(d.site, "demo");
    ck_assert_str_eq(d.actor, "alice@idhub.example");
    ck_assert_int_eq(d.mode, JP_RECON_FILTERED);
    ck_assert_uint_eq(d.resources, JP_RECON_ACCOUNTS | JP_RECON_ENTITLEMENTS);
    ck_assert_str_eq(d.cond.department, "Platform");
    ck_assert_int_eq(d.cond.active_state, JP_VALUE);
    ck_assert(d.cond.active);
    ck_assert_ptr_null(d.cond.group);
    ck_assert_str_eq(d.scope,
                     "accounts+entitlements|{\"active\":true,\"department\":\"Platform\"}");
    ck_assert(!jp_recon_def_tracks(&d));
    jp_recon_def_clear(&d);
    jp_recon_def_clear(&d); /* idempotent */

    jp_event_t *other = decode("{\"specversion\":\"1.0\",\"id\":\"x\",\"source\":\"s:x\","
                               "\"type\":\"com.idhub.account.delete\",\"subject\":\"a@b.c\","
                               "\"time\":\"2026-11-22T09:00:00Z\",\"jirasite\":\"demo\","
                               "\"idhubactor\":\"a\",\"data\":{\"login\":\"a@b.c\"}}");
    ck_assert_int_eq(jp_recon_def_from_event(other, &d, err, sizeof err), JP_ERR_INVALID);
    jp_event_destroy(other);
}
END_TEST

static jp_recon_phase_t walk(const char *data, jp_recon_phase_t *seen, size_t max)
{
    jp_event_t *ev = request("e1", data);
    jp_recon_def_t d;
    char err[256];
    ck_assert_int_eq(jp_recon_def_from_event(ev, &d, err, sizeof err), JP_OK);
    jp_event_destroy(ev);
    size_t n = 0;
    jp_recon_phase_t p = JP_RECON_PHASE_START;
    while (p != JP_RECON_PHASE_COMPLETING && n < max)
        seen[n++] = p = jp_recon_next_phase(&d, p);
    jp_recon_def_clear(&d);
    return (jp_recon_phase_t)n;
}

START_TEST(phases_follow_the_request)
{
    jp_recon_phase_t s[8];
    /* full, both: every phase, removals included */
    ck_assert_int_eq(walk("{\"reconId\":\"r1\",\"mode\":\"full\",\"resources\":[\"accounts\","
                          "\"entitlements\"]}",
                          s, 8),
                     5);
    ck_assert_int_eq(s[0], JP_RECON_PHASE_ACCOUNTS);
    ck_assert_int_eq(s[1], JP_RECON_PHASE_GROUPS);
    ck_assert_int_eq(s[2], JP_RECON_PHASE_ROLES);
    ck_assert_int_eq(s[3], JP_RECON_PHASE_REMOVALS);
    ck_assert_int_eq(s[4], JP_RECON_PHASE_COMPLETING);
    /* incremental entitlements only: no accounts */
    ck_assert_int_eq(
        walk("{\"reconId\":\"r2\",\"mode\":\"incremental\",\"resources\":[\"entitlements\"]}", s,
             8),
        4);
    ck_assert_int_eq(s[0], JP_RECON_PHASE_GROUPS);
    ck_assert_int_eq(s[2], JP_RECON_PHASE_REMOVALS);
    /* filtered entitlements only: the accounts are read (memberships), no removals */
    ck_assert_int_eq(walk("{\"reconId\":\"r3\",\"mode\":\"filtered\",\"resources\":["
                          "\"entitlements\"],\"filter\":{\"department\":\"R&D\"}}",
                          s, 8),
                     4);
    ck_assert_int_eq(s[0], JP_RECON_PHASE_ACCOUNTS);
    ck_assert_int_eq(s[1], JP_RECON_PHASE_GROUPS);
    ck_assert_int_eq(s[2], JP_RECON_PHASE_ROLES);
    ck_assert_int_eq(s[3], JP_RECON_PHASE_COMPLETING);
    /* filtered accounts only */
    ck_assert_int_eq(walk("{\"reconId\":\"r4\",\"mode\":\"filtered\",\"resources\":["
                          "\"accounts\"],\"filter\":{\"active\":false}}",
                          s, 8),
                     2);
    ck_assert_int_eq(s[0], JP_RECON_PHASE_ACCOUNTS);
    ck_assert_int_eq(s[1], JP_RECON_PHASE_COMPLETING);
    ck_assert_str_eq(jp_recon_phase_name(JP_RECON_PHASE_REMOVALS), "removals");
    ck_assert_ptr_null(jp_recon_phase_name((jp_recon_phase_t)99));
}
END_TEST

/* ---- checkpoints ------------------------------------------------------------------------------
 */

static void ckpt_sample(jp_recon_ckpt_t *c)
{
    jp_event_t *ev = request("evt-9", "{\"reconId\":\"r:9\",\"mode\":\"filtered\",\"resources\":["
                                      "\"accounts\"],\"filter\":{\"group\":\"ops\","
                                      "\"userName\":\"a@b.example\"},\"scope\":\"nightly\"}");
    jp_recon_def_t d;
    char err[256];
    ck_assert_int_eq(jp_recon_def_from_event(ev, &d, err, sizeof err), JP_OK);
    jp_event_destroy(ev);
    jp_recon_ckpt_init(c, &d, NOW);
    ck_assert_ptr_null(d.recon_id); /* taken over */
}

START_TEST(ckpt_round_trip)
{
    jp_recon_ckpt_t c, back;
    char err[256];
    ckpt_sample(&c);
    ck_assert_int_eq(c.phase, JP_RECON_PHASE_START);
    ck_assert_int_eq(c.seq, 1);
    ck_assert_int_eq(c.part, 1);
    ck_assert_str_eq(c.scan, "0");
    jp_recon_ckpt_phase(&c, JP_RECON_PHASE_GROUPS);
    c.page = 3;
    c.item = 17;
    c.sub = 40;
    c.part = 3;
    c.seq = 123456;
    c.base = 42;
    c.counts = (jp_recon_counts_t){1000, 900, 50, 7, 2};
    snprintf(c.scan, sizeof c.scan, "98304");
    c.completed_ms = NOW + 5000;
    c.duration_ms = 5000;
    char *text = jp_recon_ckpt_encode(&c);
    ck_assert_ptr_nonnull(text);
    ck_assert_int_eq(jp_recon_ckpt_decode(text, strlen(text), &back, err, sizeof err), JP_OK);
    ck_assert_int_eq(back.phase, JP_RECON_PHASE_GROUPS);
    ck_assert_int_eq(back.page, 3);
    ck_assert_int_eq(back.item, 17);
    ck_assert_int_eq(back.sub, 40);
    ck_assert_int_eq(back.part, 3);
    ck_assert_int_eq(back.seq, 123456);
    ck_assert_int_eq(back.base, 42);
    ck_assert_int_eq(back.counts.read, 1000);
    ck_assert_int_eq(back.counts.emitted, 900);
    ck_assert_int_eq(back.counts.unchanged, 50);
    ck_assert_int_eq(back.counts.removed, 7);
    ck_assert_int_eq(back.counts.errors, 2);
    ck_assert_str_eq(back.scan, "98304");
    ck_assert_int_eq(back.started_ms, NOW);
    ck_assert_int_eq(back.completed_ms, NOW + 5000);
    ck_assert_str_eq(back.def.recon_id, "r:9");
    ck_assert_str_eq(back.def.event_id, "evt-9");
    ck_assert_str_eq(back.def.scope, "nightly");
    ck_assert_str_eq(back.def.traceparent,
                     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    ck_assert_ptr_null(back.def.correlationid);
    ck_assert_int_eq(back.def.mode, JP_RECON_FILTERED);
    ck_assert_str_eq(back.def.cond.group, "ops");
    ck_assert_str_eq(back.def.cond.user_name, "a@b.example");
    /* Encoding what was decoded gives the same text. */
    char *again = jp_recon_ckpt_encode(&back);
    ck_assert_str_eq(again, text);
    free(again);
    free(text);
    jp_recon_ckpt_clear(&back);
    jp_recon_ckpt_clear(&c);
}
END_TEST

START_TEST(ckpt_refuses_what_it_did_not_write)
{
    jp_recon_ckpt_t c, back;
    char err[256];
    ckpt_sample(&c);
    char *text = jp_recon_ckpt_encode(&c);
    jp_recon_ckpt_clear(&c);
    static const struct {
        const char *from, *to, *why;
    } edits[] = {
        {"\"v\":1", "\"v\":2", "v:"},
        {"\"phase\":\"start\"", "\"phase\":\"middle\"", "phase"},
        {"\"seq\":1", "\"seq\":0", "seq"},
        {"\"base\":0", "\"base\":\"0\"", "seq"},
        {"\"scan\":\"0\"", "\"scan\":\"0;DEL\"", "scan"},
        {"\"mode\":\"filtered\"", "\"mode\":\"full\"", "filter"},
        {"\"reconId\":\"r:9\"", "\"reconId\":\"r 9\"", "reconId"},
        {"\"read\":0", "\"read\":-1", "counts"},
        {"\"resources\":[\"accounts\"]", "\"resources\":[]", "resources"},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        char buf[4096];
        const char *at = strstr(text, edits[i].from);
        ck_assert_msg(at != NULL, "%s not in %s", edits[i].from, text);
        snprintf(buf, sizeof buf, "%.*s%s%s", (int)(at - text), text, edits[i].to,
                 at + strlen(edits[i].from));
        err[0] = '\0';
        ck_assert_msg(jp_recon_ckpt_decode(buf, strlen(buf), &back, err, sizeof err) ==
                          JP_ERR_INVALID,
                      "accepted: %s", buf);
        ck_assert_msg(strstr(err, edits[i].why) != NULL, "%s: %s", edits[i].why, err);
        ck_assert_ptr_null(back.def.recon_id);
    }
    ck_assert_int_eq(jp_recon_ckpt_decode("[]", 2, &back, err, sizeof err), JP_ERR_INVALID);
    ck_assert_int_eq(jp_recon_ckpt_decode("{", 1, &back, err, sizeof err), JP_ERR_INVALID);
    free(text);
}
END_TEST

START_TEST(scope_hash)
{
    char a[33], b[33], c[33];
    jp_recon_scope_hash("accounts+entitlements", a);
    jp_recon_scope_hash("accounts+entitlements", b);
    jp_recon_scope_hash("accounts", c);
    ck_assert_str_eq(a, b);
    ck_assert_str_ne(a, c);
    ck_assert_uint_eq(strlen(a), 32);
    ck_assert_uint_eq(strspn(a, "0123456789abcdef"), 32);
    /* SHA-256("abc") starts ba7816bf8f01cfea414140de5dae2223 */
    jp_recon_scope_hash("abc", a);
    ck_assert_str_eq(a, "ba7816bf8f01cfea414140de5dae2223");
}
END_TEST

/* ---- filters ----------------------------------------------------------------------------------
 */

START_TEST(filter_scim_choice)
{
    const char *v = "x";
    jp_recon_filter_t f = {0};
    ck_assert_ptr_null(jp_recon_filter_scim(&f, &v));
    ck_assert_ptr_null(v);
    ck_assert_ptr_null(jp_recon_filter_scim(NULL, &v));
    f.external_id = "E-1";
    ck_assert_str_eq(jp_recon_filter_scim(&f, &v), "externalId");
    ck_assert_str_eq(v, "E-1");
    f.user_name = "a@b.c";
    ck_assert_str_eq(jp_recon_filter_scim(&f, &v), "userName"); /* userName wins */
    ck_assert_str_eq(v, "a@b.c");
}
END_TEST

START_TEST(filter_conditions)
{
    json_t *u = scim_user();
    jp_recon_filter_t f = {0};
    ck_assert(jp_recon_filter_match(&f, mapping, u));
    ck_assert(jp_recon_filter_match(NULL, mapping, u));
    f.department = "R&D";
    ck_assert(jp_recon_filter_match(&f, mapping, u));
    f.department = "r&d"; /* byte for byte */
    ck_assert(!jp_recon_filter_match(&f, mapping, u));
    f.department = NULL;
    f.organization_name = "Acme";
    ck_assert(jp_recon_filter_match(&f, mapping, u));
    f.active_state = JP_VALUE;
    f.active = true;
    ck_assert(jp_recon_filter_match(&f, mapping, u));
    f.active = false;
    ck_assert(!jp_recon_filter_match(&f, mapping, u));
    f.active = true;
    f.group = "JIRA-Software-Users"; /* ASCII case ignored */
    ck_assert(jp_recon_filter_match(&f, mapping, u));
    f.group = "jira-administrators";
    ck_assert(!jp_recon_filter_match(&f, mapping, u));
    f.group = NULL;
    f.user_name = "JDOE@example.com";
    ck_assert(jp_recon_filter_match(&f, mapping, u));
    f.external_id = "00u1a2b3c4d5e6f7g8h9"; /* externalId is case-exact */
    ck_assert(!jp_recon_filter_match(&f, mapping, u));
    f.external_id = "00u1a2b3c4D5e6F7g8h9";
    ck_assert(jp_recon_filter_match(&f, mapping, u));

    /* active missing counts as true */
    json_object_del(u, "active");
    jp_recon_filter_t g = {.active_state = JP_VALUE, .active = true};
    ck_assert(jp_recon_filter_match(&g, mapping, u));
    g.active = false;
    ck_assert(!jp_recon_filter_match(&g, mapping, u));
    ck_assert(!jp_recon_filter_match(&f, mapping, json_null()));
    json_decref(u);
}
END_TEST

START_TEST(filter_uses_the_mapping)
{
    /* department mapped to the enterprise extension: the top-level value no longer counts. */
    char err[256];
    jp_config_mapping_t t[] = {
        {"login", "userName", JP_CONFIG_DIR_BOTH},
        {"email", "emails[primary].value", JP_CONFIG_DIR_BOTH},
        {"department", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
         JP_CONFIG_DIR_FROM_JIRA},
    };
    jp_mapping_t *m = jp_mapping_new(t, 3, err, sizeof err);
    ck_assert_ptr_nonnull(m);
    json_t *u = scim_user();
    json_object_set_new(u, "department", json_string("Top level"));
    jp_recon_filter_t f = {.department = "R&D"};
    ck_assert(jp_recon_filter_match(&f, m, u));
    f.department = "Top level";
    ck_assert(!jp_recon_filter_match(&f, m, u));
    /* organizationName is not mapped at all: never matches */
    jp_recon_filter_t g = {.organization_name = "Acme"};
    ck_assert(!jp_recon_filter_match(&g, m, u));
    json_decref(u);
    jp_mapping_destroy(m);
}
END_TEST

/* ---- items and fingerprints --------------------------------------------------------------- */

START_TEST(account_item)
{
    json_t *u = scim_user();
    jp_recon_item_t it;
    char err[256];
    ck_assert_int_eq(jp_recon_account_item(mapping, JP_ATTR_EMAIL, "demo", u, &it, err, sizeof err),
                     JP_OK);
    ck_assert_int_eq(it.kind, JP_RECON_ITEM_ACCOUNT);
    ck_assert_str_eq(it.field, "a:ef5f7c4e-6a47-4c7e-9d0c-2f1a1b9e7d21");
    ck_assert_str_eq(it.key, "demo/account/ef5f7c4e-6a47-4c7e-9d0c-2f1a1b9e7d21");
    ck_assert_str_eq(it.ident, "jdoe@example.com");
    ck_assert(it.fp == jp_mapping_fingerprint(mapping, u));
    char *c = json_dumps(it.content, JSON_COMPACT);
    ck_assert_str_eq(
        c, "{\"key\":{\"attribute\":\"email\",\"value\":\"jdoe@example.com\"},"
           "\"scimId\":\"ef5f7c4e-6a47-4c7e-9d0c-2f1a1b9e7d21\","
           "\"accountId\":\"5b10ac8d82e05b22cc7d4ef5\",\"active\":true,\"attributes\":{"
           "\"login\":\"jdoe@example.com\",\"email\":\"jdoe@example.com\",\"firstName\":\"Jane\","
           "\"lastName\":\"Doe\",\"displayName\":\"Jane Doe\",\"nickName\":\"jd\","
           "\"jobTitle\":\"Engineer\",\"department\":\"R&D\",\"organizationName\":\"Acme\","
           "\"timezone\":\"America/Los_Angeles\",\"externalId\":\"00u1a2b3c4D5e6F7g8h9\"}}");
    free(c);
    uint64_t fp = it.fp;
    jp_recon_item_clear(&it);

    /* A change of a mapped attribute changes the fingerprint; an unmapped one does not. */
    json_object_set_new(u, "title", json_string("Staff Engineer"));
    ck_assert_int_eq(jp_recon_account_item(mapping, JP_ATTR_EMAIL, "demo", u, &it, err, sizeof err),
                     JP_OK);
    ck_assert(it.fp != fp);
    uint64_t fp2 = it.fp;
    jp_recon_item_clear(&it);
    json_object_set_new(u, "preferredLanguage", json_string("de-CH"));
    ck_assert_int_eq(jp_recon_account_item(mapping, JP_ATTR_EMAIL, "demo", u, &it, err, sizeof err),
                     JP_OK);
    ck_assert(it.fp == fp2);
    jp_recon_item_clear(&it);

    /* Another key attribute; a user without it has an empty identity and a null value. */
    json_object_del(u, "externalId");
    ck_assert_int_eq(
        jp_recon_account_item(mapping, JP_ATTR_EXTERNAL_ID, "demo", u, &it, err, sizeof err),
        JP_OK);
    ck_assert_str_eq(it.ident, "");
    ck_assert(json_is_null(json_object_get(json_object_get(it.content, "key"), "value")));
    jp_recon_item_clear(&it);

    json_object_del(u, "id");
    ck_assert_int_eq(jp_recon_account_item(mapping, JP_ATTR_EMAIL, "demo", u, &it, err, sizeof err),
                     JP_ERR_INVALID);
    ck_assert_ptr_null(it.field);
    json_decref(u);
}
END_TEST

static json_t *members(int n, const char *prefix)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++) {
        char acc[64];
        snprintf(acc, sizeof acc, "%s%04d", prefix, i);
        jp_jira_user_t u = {acc, NULL, NULL, NULL, true};
        json_array_append_new(a, jp_recon_member_user(&u));
    }
    return a;
}

START_TEST(entitlement_items)
{
    jp_recon_item_t g1, g2, g3;
    char err[256];
    ck_assert_int_eq(jp_recon_group_item("demo", "gid-1", "devs", false, members(3, "acc"), 1, 1,
                                         &g1, err, sizeof err),
                     JP_OK);
    ck_assert_str_eq(g1.field, "g:gid-1");
    ck_assert_str_eq(g1.key, "demo/group/gid-1");
    ck_assert_str_eq(g1.ident, "devs");
    ck_assert_int_eq(g1.kind, JP_RECON_ITEM_GROUP);
    ck_assert_int_eq(jp_recon_group_item("demo", "gid-1", "devs", false, members(3, "acc"), 1, 1,
                                         &g2, err, sizeof err),
                     JP_OK);
    ck_assert(g1.fp == g2.fp); /* same content, same fingerprint */
    ck_assert_int_eq(jp_recon_group_item("demo", "gid-1", "devs", false, members(4, "acc"), 2, 3,
                                         &g3, err, sizeof err),
                     JP_OK);
    ck_assert(g3.fp != g1.fp);
    ck_assert_str_eq(g3.field, "g:gid-1#2");
    ck_assert_str_eq(g3.key, "demo/group/gid-1#2");
    ck_assert_int_eq(json_integer_value(json_object_get(g3.content, "parts")), 3);
    jp_recon_item_clear(&g1);
    jp_recon_item_clear(&g2);
    jp_recon_item_clear(&g3);

    char *names[] = {NULL, (char *)"ops-team"};
    char *gids[] = {(char *)"g-9", (char *)"g-10"};
    jp_jira_role_t role = {10002, (char *)"Administrators", NULL, NULL, 0, gids, names, 2};
    json_t *m = json_array();
    json_array_append_new(m, jp_recon_member_actor("acc-1"));
    json_array_append_new(m, jp_recon_member_group(gids[1], names[1]));
    json_array_append_new(m, jp_recon_member_group(gids[0], names[0]));
    jp_recon_item_t r;
    ck_assert_int_eq(jp_recon_role_item("demo", "OPS", &role, true, m, 1, 1, &r, err, sizeof err),
                     JP_OK);
    ck_assert_str_eq(r.field, "r:OPS:10002");
    ck_assert_str_eq(r.key, "demo/projectRole/OPS/10002");
    char *c = json_dumps(r.content, JSON_COMPACT);
    ck_assert_str_eq(c, "{\"type\":\"projectRole\",\"entitlement\":{\"type\":\"projectRole\","
                        "\"project\":\"OPS\",\"role\":\"Administrators\"},\"displayName\":"
                        "\"Administrators\",\"description\":null,\"project\":\"OPS\",\"roleId\":"
                        "10002,\"membership\":\"filtered\",\"members\":[{\"type\":\"user\","
                        "\"accountId\":\"acc-1\"},{\"type\":\"group\",\"groupId\":\"g-10\","
                        "\"group\":\"ops-team\"},{\"type\":\"group\",\"groupId\":\"g-9\"}],"
                        "\"part\":1,\"parts\":1}");
    free(c);
    jp_recon_item_clear(&r);
    jp_recon_item_clear(&r);
}
END_TEST

START_TEST(fingerprint_values_and_diff)
{
    char v[64];
    size_t n = jp_recon_fp_value(0x0102030405060708ull, "jdoe@example.com", v, sizeof v);
    ck_assert_uint_eq(n, 8 + 16);
    ck_assert_int_eq(memcmp(v, "\x01\x02\x03\x04\x05\x06\x07\x08jdoe@example.com", n), 0);
    uint64_t fp;
    const char *ident;
    size_t ilen;
    ck_assert(jp_recon_fp_parse(v, n, &fp, &ident, &ilen));
    ck_assert(fp == 0x0102030405060708ull);
    ck_assert_uint_eq(ilen, 16);
    ck_assert_int_eq(memcmp(ident, "jdoe@example.com", 16), 0);
    ck_assert(!jp_recon_fp_parse(v, 7, &fp, &ident, &ilen));
    ck_assert_uint_eq(jp_recon_fp_value(1, "toolong", v, 10), 0);
    ck_assert_uint_eq(jp_recon_fp_value(1, NULL, v, 8), 8);

    n = jp_recon_fp_value(42, "x", v, sizeof v);
    ck_assert_int_eq(jp_recon_diff(NULL, 0, 42), JP_RECON_CREATED);
    ck_assert_int_eq(jp_recon_diff(v, 3, 42), JP_RECON_CREATED); /* garbage: as if absent */
    ck_assert_int_eq(jp_recon_diff(v, n, 42), JP_RECON_UNCHANGED);
    ck_assert_int_eq(jp_recon_diff(v, n, 43), JP_RECON_CHANGED);
    ck_assert_str_eq(jp_recon_change_name(JP_RECON_CHANGED), "changed");
    ck_assert_ptr_null(jp_recon_change_name((jp_recon_change_t)7));
}
END_TEST

static void removed(const char *field, const char *ident, const char *key, const char *content)
{
    char v[256], err[256];
    size_t n = jp_recon_fp_value(99, ident, v, sizeof v);
    jp_recon_item_t it;
    ck_assert_msg(jp_recon_removed_item(JP_ATTR_EMAIL, "demo", field, v, n, &it, err, sizeof err) ==
                      JP_OK,
                  "%s: %s", field, err);
    ck_assert_str_eq(it.field, field);
    ck_assert_str_eq(it.key, key);
    ck_assert_str_eq(it.ident, ident);
    char *c = json_dumps(it.content, JSON_COMPACT);
    ck_assert_str_eq(c, content);
    free(c);
    jp_recon_item_clear(&it);
}

START_TEST(removals_rebuilt_from_stored_values)
{
    removed("a:u-1", "jdoe@example.com", "demo/account/u-1",
            "{\"key\":{\"attribute\":\"email\",\"value\":\"jdoe@example.com\"},\"scimId\":"
            "\"u-1\"}");
    removed("a:u-2", "", "demo/account/u-2",
            "{\"key\":{\"attribute\":\"email\",\"value\":null},\"scimId\":\"u-2\"}");
    removed("g:gid-1", "devs", "demo/group/gid-1",
            "{\"type\":\"group\",\"entitlement\":{\"type\":\"group\",\"group\":\"devs\"},"
            "\"groupId\":\"gid-1\",\"part\":1}");
    removed("g:gid-1#12", "devs", "demo/group/gid-1#12",
            "{\"type\":\"group\",\"entitlement\":{\"type\":\"group\",\"group\":\"devs\"},"
            "\"groupId\":\"gid-1\",\"part\":12}");
    removed("r:OPS:10002#2", "Administrators", "demo/projectRole/OPS/10002#2",
            "{\"type\":\"projectRole\",\"entitlement\":{\"type\":\"projectRole\",\"project\":"
            "\"OPS\",\"role\":\"Administrators\"},\"project\":\"OPS\",\"roleId\":10002,"
            "\"part\":2}");
    /* The items a run stores, removed later, come back as the same keys. */
    json_t *u = scim_user();
    jp_recon_item_t it, back;
    char err[256], v[256];
    ck_assert_int_eq(jp_recon_account_item(mapping, JP_ATTR_EMAIL, "demo", u, &it, err, sizeof err),
                     JP_OK);
    size_t n = jp_recon_fp_value(it.fp, it.ident, v, sizeof v);
    ck_assert_int_eq(
        jp_recon_removed_item(JP_ATTR_EMAIL, "demo", it.field, v, n, &back, err, sizeof err),
        JP_OK);
    ck_assert_str_eq(back.key, it.key);
    jp_recon_item_clear(&it);
    jp_recon_item_clear(&back);
    json_decref(u);

    static const char *const bad[] = {"x:1",    "a:",      "g:",      "r:OPS",         "r:ops:1",
                                      "r:OPS:", "r:OPS:0", "r:OPS:x", "unknown-field", ""};
    n = jp_recon_fp_value(1, "n", v, sizeof v);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(jp_recon_removed_item(JP_ATTR_EMAIL, "demo", bad[i], v, n, &it, err,
                                            sizeof err) == JP_ERR_INVALID,
                      "accepted %s", bad[i]);
    ck_assert_int_eq(
        jp_recon_removed_item(JP_ATTR_EMAIL, "demo", "a:u", v, 4, &it, err, sizeof err),
        JP_ERR_INVALID);
}
END_TEST

/* ---- records: the sample file --------------------------------------------------------------- */

typedef struct lines {
    char **v;
    size_t n, cap;
} lines_t;

static void add(lines_t *l, json_t *rec)
{
    ck_assert_ptr_nonnull(rec);
    char *s = jp_record_dump(rec, NULL);
    json_decref(rec);
    ck_assert_ptr_nonnull(s);
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->v = realloc(l->v, l->cap * sizeof(*l->v));
        ck_assert_ptr_nonnull(l->v);
    }
    l->v[l->n++] = s;
}

static void check_samples(const char *name, lines_t *l)
{
    char rel[256], path[1024];
    snprintf(rel, sizeof rel, SAMPLES "%s", name);
    const char *upd = getenv("JP_UPDATE_RECORD_SAMPLES");
    if (upd && !strcmp(upd, "1")) {
        snprintf(path, sizeof path, "%s%s", testfix_source_dir(), rel);
        FILE *f = fopen(path, "wb");
        ck_assert_msg(f != NULL, "cannot write %s", path);
        for (size_t i = 0; i < l->n; i++)
            fprintf(f, "%s\n", l->v[i]);
        ck_assert_int_eq(fclose(f), 0);
        return;
    }
    size_t len;
    char *want = testfix_read(rel, &len);
    char *line = want;
    for (size_t i = 0; i < l->n; i++) {
        char *nl = strchr(line, '\n');
        ck_assert_msg(nl != NULL, "%s: %zu lines, the encoder made %zu", name, i, l->n);
        *nl = '\0';
        ck_assert_msg(!strcmp(line, l->v[i]), "%s line %zu differs:\n want %s\n got  %s", name,
                      i + 1, line, l->v[i]);
        line = nl + 1;
    }
    ck_assert_msg(*line == '\0', "%s has more lines than the encoder made", name);
    free(want);
}

START_TEST(records_sample_set)
{
    lines_t l = {0};
    char err[256];
    jp_recon_ckpt_t ck;

    /* An incremental run over accounts and entitlements. */
    jp_event_t *ev = request("0193a1c2-7d4e-7a10-9c3b-000000000020",
                             "{\"reconId\":\"nightly-2026-11-22\",\"mode\":\"incremental\","
                             "\"resources\":[\"accounts\",\"entitlements\"]}");
    jp_recon_def_t d;
    ck_assert_int_eq(jp_recon_def_from_event(ev, &d, err, sizeof err), JP_OK);
    jp_event_destroy(ev);
    jp_recon_ckpt_init(&ck, &d, NOW);
    add(&l, jp_recon_record_started(&ck.def, INSTANCE, NOW));

    json_t *u = scim_user();
    jp_recon_item_t it;
    ck_assert_int_eq(jp_recon_account_item(mapping, JP_ATTR_EMAIL, "demo", u, &it, err, sizeof err),
                     JP_OK);
    add(&l, jp_recon_record_item(&ck.def, INSTANCE, &it, 1, "upsert", "changed", NOW + 10));
    jp_recon_item_clear(&it);
    json_decref(u);

    char v[128];
    size_t n = jp_recon_fp_value(7, "asmith@example.com", v, sizeof v);
    ck_assert_int_eq(
        jp_recon_removed_item(JP_ATTR_EMAIL, "demo", "a:0e1d2c3b", v, n, &it, err, sizeof err),
        JP_OK);
    add(&l, jp_recon_record_item(&ck.def, INSTANCE, &it, 2, "delete", "removed", NOW + 11));
    jp_recon_item_clear(&it);

    json_t *m = json_array();
    jp_jira_user_t a = {(char *)"5b10ac8d82e05b22cc7d4ef5", (char *)"atlassian", (char *)"Jane Doe",
                        (char *)"jdoe@example.com", true};
    jp_jira_user_t b = {(char *)"557058:f58131cb-b67d-43c7-b30d-6b58d40bd077", NULL, NULL, NULL,
                        false};
    json_array_append_new(m, jp_recon_member_user(&a));
    json_array_append_new(m, jp_recon_member_user(&b));
    ck_assert_int_eq(jp_recon_group_item("demo", "276f955c-63d7-42c8-9520-92d01dca0625",
                                         "jira-software-users", false, m, 2, 2, &it, err,
                                         sizeof err),
                     JP_OK);
    add(&l, jp_recon_record_item(&ck.def, INSTANCE, &it, 3, "upsert", "created", NOW + 12));
    jp_recon_item_clear(&it);

    char *names[] = {(char *)"jira-developers"};
    char *gids[] = {(char *)"952d12c3-5b5b-4d04-bb32-44d383afc4b2"};
    char *users[] = {(char *)"5b10ac8d82e05b22cc7d4ef5"};
    jp_jira_role_t role = {10000,
                           (char *)"Developers",
                           (char *)"A project role that represents developers in a project",
                           users,
                           1,
                           gids,
                           names,
                           1};
    m = json_array();
    json_array_append_new(m, jp_recon_member_actor(users[0]));
    json_array_append_new(m, jp_recon_member_group(gids[0], names[0]));
    ck_assert_int_eq(
        jp_recon_role_item("demo", "DEMO", &role, false, m, 1, 1, &it, err, sizeof err), JP_OK);
    add(&l, jp_recon_record_item(&ck.def, INSTANCE, &it, 4, "upsert", "changed", NOW + 13));
    jp_recon_item_clear(&it);

    n = jp_recon_fp_value(9, "Users", v, sizeof v);
    ck_assert_int_eq(
        jp_recon_removed_item(JP_ATTR_EMAIL, "demo", "r:OPS:10001", v, n, &it, err, sizeof err),
        JP_OK);
    add(&l, jp_recon_record_item(&ck.def, INSTANCE, &it, 5, "delete", "removed", NOW + 14));
    jp_recon_item_clear(&it);

    ck.phase = JP_RECON_PHASE_COMPLETING;
    ck.seq = 6;
    ck.counts = (jp_recon_counts_t){1203, 5, 1198, 2, 0};
    ck.completed_ms = NOW + 2500;
    ck.duration_ms = 2500;
    add(&l, jp_recon_record_completed(&ck, INSTANCE));
    /* completed depends on the checkpoint alone: built again, it is the same record. */
    json_t *again = jp_recon_record_completed(&ck, INSTANCE);
    char *s = jp_record_dump(again, NULL);
    ck_assert_str_eq(s, l.v[l.n - 1]);
    free(s);
    json_decref(again);
    jp_recon_ckpt_clear(&ck);

    /* A filtered full listing of accounts (no change field, filter in `started`). */
    ev = request("0193a1c2-7d4e-7a10-9c3b-000000000021",
                 "{\"reconId\":\"platform-1\",\"mode\":\"filtered\",\"resources\":[\"accounts\","
                 "\"entitlements\"],\"filter\":{\"department\":\"Platform\",\"active\":true}}");
    ck_assert_int_eq(jp_recon_def_from_event(ev, &d, err, sizeof err), JP_OK);
    jp_event_destroy(ev);
    jp_recon_ckpt_init(&ck, &d, NOW + 60000);
    add(&l, jp_recon_record_started(&ck.def, INSTANCE, NOW + 60000));
    m = json_array();
    json_array_append_new(m, jp_recon_member_user(&a));
    ck_assert_int_eq(jp_recon_group_item("demo", "87d6e3d2-afc2-40ac-92f5-7ac518cbb99d",
                                         "platform-team", true, m, 1, 1, &it, err, sizeof err),
                     JP_OK);
    add(&l, jp_recon_record_item(&ck.def, INSTANCE, &it, 1, "upsert", NULL, NOW + 60010));
    jp_recon_item_clear(&it);
    jp_recon_ckpt_clear(&ck);

    check_samples("recon.jsonl", &l);
    for (size_t i = 0; i < l.n; i++)
        free(l.v[i]);
    free(l.v);
}
END_TEST

START_TEST(records_refuse_a_missing_instance)
{
    jp_recon_ckpt_t ck;
    ckpt_sample(&ck);
    ck_assert_ptr_null(jp_recon_record_started(&ck.def, "", NOW));
    ck_assert_ptr_null(jp_recon_record_started(&ck.def, NULL, NOW));
    char *key = jp_recon_run_key(&ck.def);
    ck_assert_str_eq(key, "demo/recon/r:9");
    free(key);
    jp_recon_ckpt_clear(&ck);
}
END_TEST

static Suite *recon_suite(void)
{
    Suite *s = suite_create("recon");
    TCase *t = tcase_create("pure");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, def_from_the_sample_request);
    tcase_add_test(t, phases_follow_the_request);
    tcase_add_test(t, ckpt_round_trip);
    tcase_add_test(t, ckpt_refuses_what_it_did_not_write);
    tcase_add_test(t, scope_hash);
    tcase_add_test(t, filter_scim_choice);
    tcase_add_test(t, filter_conditions);
    tcase_add_test(t, filter_uses_the_mapping);
    tcase_add_test(t, account_item);
    tcase_add_test(t, entitlement_items);
    tcase_add_test(t, fingerprint_values_and_diff);
    tcase_add_test(t, removals_rebuilt_from_stored_values);
    tcase_add_test(t, records_sample_set);
    tcase_add_test(t, records_refuse_a_missing_instance);
    suite_add_tcase(s, t);
    return s;
}

JP_CHECK_MAIN(recon_suite)
