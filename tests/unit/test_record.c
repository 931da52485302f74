/* Result, dead-letter and audit records: exact JSON for fixed inputs (the
 * committed samples in config/samples/records/, which check_records.py
 * validates against the schemas), base64 for bytes that are not text,
 * omitted optional fields, deterministic ids and times, redaction.
 *
 * The audit samples are sealed (data.chain) as the worker publishes them.
 *
 * JP_UPDATE_RECORD_SAMPLES=1 rewrites the sample files from the encoder
 * instead of comparing (review the diff before committing it). */
#include "jiraprov/audit.h"
#include "jiraprov/log.h"
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

static jp_event_t *decode_str(const char *json)
{
    jp_event_t *ev = NULL;
    char err[256];
    ck_assert_msg(jp_event_decode(json, strlen(json), NULL, &ev, err, sizeof err) == JP_OK, "%s",
                  err);
    return ev;
}

static jp_event_t *sample_event(const char *type)
{
    char rel[256];
    size_t len;
    snprintf(rel, sizeof rel, "/config/samples/%s.json", type);
    char *buf = testfix_read(rel, &len);
    jp_event_t *ev = decode_str(buf);
    free(buf);
    return ev;
}

/* Dump, take ownership of the record. */
static char *dump(json_t *rec)
{
    ck_assert_ptr_nonnull(rec);
    char *s = jp_record_dump(rec, NULL);
    ck_assert_ptr_nonnull(s);
    json_decref(rec);
    return s;
}

static const json_t *data_of(const json_t *rec)
{
    return json_object_get(rec, "data");
}

static const char *str_at(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/* ---- the sample set ------------------------------------------------------- */

static char *role_grant_json(void)
{
    return strdup("{\"specversion\":\"1.0\",\"id\":\"evt-role-1\",\"source\":\"https://"
                  "idhub.example/provisioning\",\"type\":\"com.idhub.entitlement.grant\","
                  "\"subject\":\"jdoe@demo.example\",\"time\":\"2026-11-22T09:00:25Z\","
                  "\"jirasite\":\"demo\",\"idhubactor\":\"alice@idhub.example\","
                  "\"traceparent\":\"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\","
                  "\"correlationid\":\"req-77\",\"data\":{\"login\":\"jdoe@demo.example\","
                  "\"entitlement\":{\"type\":\"projectRole\",\"project\":\"DEMO\",\"role\":"
                  "\"Developers\"}}}");
}

typedef struct lines {
    char **v;
    size_t n, cap;
} lines_t;

static void add_line(lines_t *l, char *s)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        l->v = realloc(l->v, l->cap * sizeof(*l->v));
        ck_assert_ptr_nonnull(l->v);
    }
    l->v[l->n++] = s;
}

static void free_lines(lines_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
}

static void results_set(lines_t *out)
{
    jp_event_t *create = sample_event("account.create");
    jp_event_t *grant = sample_event("entitlement.grant");
    jp_event_t *trans = sample_event("issue.transition");

    jp_outcome_t *o = jp_outcome_new(JP_OUTCOME_SUCCEEDED);
    jp_outcome_set_jira(o, "scimId", "scim-7f3a");
    jp_outcome_set_jira(o, "accountId", "5b10ac8d82e05b22cc7d4ef5");
    const char *changed[] = {"login", "email", "firstName", "lastName", "displayName"};
    for (size_t i = 0; i < 5; i++)
        json_array_append_new(o->changed, json_string(changed[i]));
    add_line(out, dump(jp_record_result(create, o, 1, 42, INSTANCE, NOW)));
    jp_outcome_destroy(o);

    o = jp_outcome_new(JP_OUTCOME_SKIPPED);
    jp_outcome_set_jira(o, "groupId", "grp-0c1d");
    o->detail = strdup("already a member");
    add_line(out, dump(jp_record_result(grant, o, 1, 7, INSTANCE, NOW + 1)));
    jp_outcome_destroy(o);

    o = jp_outcome_new(JP_OUTCOME_FAILED);
    jp_outcome_set_error(o, JP_OUTCOME_FAILED, JP_CLASS_PERMANENT, "not_found",
                         "status \"In Progress\" is not reachable from \"Done\"");
    jp_outcome_set_jira(o, "issueKey", "DEMO-1");
    add_line(out, dump(jp_record_result(trans, o, 3, 61250, INSTANCE, NOW + 2)));
    jp_outcome_destroy(o);

    jp_event_destroy(create);
    jp_event_destroy(grant);
    jp_event_destroy(trans);
}

static void deadletters_set(lines_t *out)
{
    /* A message that is not JSON at all. */
    jp_kafka_header_t ct = {"content-type", "application/cloudevents+json", 28};
    const char *bad = "{\"specversion\":\"1.0\",\"id\":";
    add_line(out, dump(jp_record_deadletter(
                      NULL, "idhub.events", 3, 1207, 1795337999000LL, "jdoe@demo.example", 17, bad,
                      strlen(bad), &ct, 1,
                      "JSON syntax: '}' expected near end of file (line 1, column 26)",
                      JP_CLASS_PERMANENT, 0, NULL, INSTANCE, NOW)));

    /* Bytes that are not text: key, value, a header value and a header name
     * in base64, a null header value, no timestamp. */
    static const unsigned char key[] = {0xff, 0xfe, 0x00, 'k'};
    static const unsigned char val[] = {'{', 0xc3, 0x28, '}', 0x00, 0x01};
    static const unsigned char hv[] = {0x80, 0x81};
    jp_kafka_header_t hs[] = {{"trace", (void *)hv, 2}, {"empty", NULL, 0}, {"\xc0name", "v", 1}};
    add_line(out, dump(jp_record_deadletter(NULL, "idhub.events", 0, 5, -1, key, sizeof key, val,
                                            sizeof val, hs, 3, "event is not valid UTF-8",
                                            JP_CLASS_PERMANENT, 0, NULL, INSTANCE, NOW)));

    /* A decoded event that failed for good after retries. */
    size_t len;
    char *raw = testfix_read("/config/samples/issue.transition.json", &len);
    jp_event_t *ev = decode_str(raw);
    json_t *hist = json_pack("[{s:I,s:s,s:i},{s:I,s:s,s:i}]", "at", (json_int_t)(NOW - 60000),
                             "reason", "http_503", "status", 503, "at", (json_int_t)(NOW - 1000),
                             "reason", "http_400", "status", 400);
    ck_assert_ptr_nonnull(hist);
    add_line(out, dump(jp_record_deadletter(ev, "idhub.events", 6, 88, 1795337940000LL,
                                            "idhub:req:1001", 14, raw, len, &ct, 1,
                                            "data.status: no transition to \"In Progress\"",
                                            JP_CLASS_PERMANENT, 2, hist, INSTANCE, NOW)));
    json_decref(hist);
    jp_event_destroy(ev);
    free(raw);
}

/* Audit samples are published records: sealed into one stream with the sample key, which
 * check_records.py also knows, so that it recomputes every MAC independently (Python). */
#define SAMPLE_KEY           "jiraprov-sample-audit-key-not-a-secret"
#define SAMPLE_STREAM        "worker-a-17:1795337999700:5eed5eed5eed5eed"
#define SAMPLE_STREAM_BEFORE "worker-a-17:1795330000000:0123456789abcdef"

static json_t *seal(jp_audit_chain_t *c, json_t *rec)
{
    char err[256];
    ck_assert_ptr_nonnull(rec);
    ck_assert_msg(jp_audit_chain_seal(c, rec, err, sizeof err) == JP_OK, "%s", err);
    return rec;
}

static void audit_set(lines_t *out)
{
    jp_event_t *create = sample_event("account.create");
    jp_event_t *disable = sample_event("account.disable");
    jp_event_t *trans = sample_event("issue.transition");
    char *rj = role_grant_json();
    jp_event_t *role = decode_str(rj);
    free(rj);

    char err[256];
    jp_audit_chain_t *c =
        jp_audit_chain_new(SAMPLE_KEY, strlen(SAMPLE_KEY), SAMPLE_STREAM, err, sizeof err);
    ck_assert_msg(c != NULL, "%s", err);
    json_t *prev =
        json_pack("{s:{s:s, s:i, s:s}}", "previous", "stream", SAMPLE_STREAM_BEFORE, "seq", 41,
                  "mac", "5d41402abc4b2a76b9719d911017c5925d41402abc4b2a76b9719d911017c592");
    add_line(out, dump(seal(c, jp_record_audit_stream(SAMPLE_STREAM, "started", prev, INSTANCE,
                                                      NOW - 400))));
    json_decref(prev);

    jp_outcome_t *o = jp_outcome_new(JP_OUTCOME_SUCCEEDED);
    jp_outcome_set_jira(o, "scimId", "scim-7f3a");
    jp_outcome_set_jira(o, "accountId", "5b10ac8d82e05b22cc7d4ef5");
    json_array_append_new(o->changed, json_string("email"));
    json_array_append_new(o->changed, json_string("firstName"));
    jp_outcome_add_call(o, "GET", "scim", "/scim/directory/dir-1/Users", "scim.users", 0, 200,
                        NOW - 300, 15100);
    jp_outcome_add_call(o, "POST", "scim", "/scim/directory/dir-1/Users", "scim.users", 1, 201,
                        NOW - 250, 48250);
    add_line(out, dump(seal(c, jp_record_audit_call(create, o, &o->calls[1], INSTANCE, NOW))));
    jp_outcome_destroy(o);

    o = jp_outcome_new(JP_OUTCOME_SUCCEEDED);
    jp_outcome_set_jira(o, "accountId", "5b10ac8d82e05b22cc7d4ef6");
    jp_outcome_add_call(o, "POST", "admin",
                        "/users/5b10ac8d82e05b22cc7d4ef6/manage/lifecycle/disable",
                        "admin.lifecycle", 1, 204, NOW - 90, 30000);
    add_line(out, dump(seal(c, jp_record_audit_call(disable, o, &o->calls[0], INSTANCE, NOW))));
    jp_outcome_destroy(o);

    o = jp_outcome_new(JP_OUTCOME_SUCCEEDED);
    jp_outcome_set_jira(o, "issueKey", "DEMO-1");
    jp_outcome_set_jira(o, "issueId", "10001");
    json_array_append_new(o->changed, json_string("status"));
    jp_outcome_add_call(o, "GET", "rest", "/rest/api/3/issue/DEMO-1/transitions",
                        "rest.issue.transitions", 0, 200, NOW - 80, 9000);
    jp_outcome_add_call(o, "POST", "rest", "/rest/api/3/issue/DEMO-1/transitions",
                        "rest.issue.transitions", 1, 204, NOW - 60, 21000);
    add_line(out, dump(seal(c, jp_record_audit_call(trans, o, &o->calls[1], INSTANCE, NOW))));
    jp_outcome_destroy(o);

    /* No response: the call's outcome is unknown. */
    o = jp_outcome_new(JP_OUTCOME_RETRY);
    jp_outcome_set_error(o, JP_OUTCOME_RETRY, JP_CLASS_RETRIABLE, "timeout", "no response in 30 s");
    jp_outcome_add_call(o, "POST", "rest", "/rest/api/3/project/DEMO/role/10002",
                        "rest.project.role", 1, 0, NOW - 30000, 30000000);
    add_line(out, dump(seal(c, jp_record_audit_call(role, o, &o->calls[0], INSTANCE, NOW))));
    jp_outcome_destroy(o);

    o = jp_outcome_new(JP_OUTCOME_SKIPPED);
    o->detail = strdup("already in that role");
    jp_outcome_set_jira(o, "roleId", "10002");
    add_line(out, dump(seal(c, jp_record_audit_decision(role, o, "skipped", INSTANCE, NOW + 5))));
    jp_outcome_destroy(o);

    o = jp_outcome_new(JP_OUTCOME_FAILED);
    jp_outcome_set_error(o, JP_OUTCOME_FAILED, JP_CLASS_PERMANENT, "not_found",
                         "status \"In Progress\" is not reachable from \"Done\"");
    add_line(out,
             dump(seal(c, jp_record_audit_decision(trans, o, "deadlettered", INSTANCE, NOW + 6))));
    jp_outcome_destroy(o);

    o = jp_outcome_new(JP_OUTCOME_QUARANTINE);
    jp_outcome_set_error(o, JP_OUTCOME_QUARANTINE, JP_CLASS_QUARANTINE, "http_401",
                         "Jira answered 401 Unauthorized");
    add_line(out,
             dump(seal(c, jp_record_audit_decision(disable, o, "quarantined", INSTANCE, NOW + 7))));
    jp_outcome_destroy(o);

    add_line(out, dump(seal(c, jp_record_audit_site("demo", "scim", 1, "credentials refused",
                                                    NOW - 60000, INSTANCE, NOW + 8))));
    add_line(out, dump(seal(c, jp_record_audit_site("demo", "scim", 0, "probe succeeded",
                                                    NOW - 60000, INSTANCE, NOW + 9))));
    add_line(out, dump(seal(c, jp_record_audit_stream(SAMPLE_STREAM, "stopped", NULL, INSTANCE,
                                                      NOW + 9))));
    jp_audit_chain_destroy(c);
    jp_event_destroy(create);
    jp_event_destroy(disable);
    jp_event_destroy(trans);
    jp_event_destroy(role);
}

static void site_states_set(lines_t *out)
{
    add_line(out, dump(jp_record_site_state("prod", "scim", 1, "credentials refused", NOW - 60000,
                                            INSTANCE, NOW)));
    add_line(out, dump(jp_record_site_state("prod", "scim", 0, "probe succeeded", NOW - 60000,
                                            INSTANCE, NOW + 1000)));
}

/* Compares the lines with the sample file (or rewrites it). */
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

START_TEST(samples_results)
{
    lines_t l = {0};
    results_set(&l);
    check_samples("result.jsonl", &l);
    free_lines(&l);
}
END_TEST

START_TEST(samples_deadletters)
{
    lines_t l = {0};
    deadletters_set(&l);
    check_samples("deadletter.jsonl", &l);
    free_lines(&l);
}
END_TEST

START_TEST(samples_audit)
{
    lines_t l = {0};
    audit_set(&l);
    check_samples("audit.jsonl", &l);
    free_lines(&l);
}
END_TEST

START_TEST(samples_site_state)
{
    lines_t l = {0};
    site_states_set(&l);
    check_samples("sitestate.jsonl", &l);
    free_lines(&l);
}
END_TEST

/* ---- properties ------------------------------------------------------------ */

START_TEST(result_shape)
{
    jp_event_t *ev = sample_event("account.create");
    jp_outcome_t *o = jp_outcome_new(JP_OUTCOME_SUCCEEDED);
    json_t *rec = jp_record_result(ev, o, 1, 5, INSTANCE, NOW);
    ck_assert_ptr_nonnull(rec);
    ck_assert_str_eq(str_at(rec, "specversion"), "1.0");
    ck_assert_str_eq(str_at(rec, "id"), "0193a1c2-7d4e-7a10-9c3b-000000000001:result");
    ck_assert_str_eq(str_at(rec, "source"), "jiraprov://worker/worker-a-17");
    ck_assert_str_eq(str_at(rec, "type"), "com.jiraprov.result");
    ck_assert_str_eq(str_at(rec, "subject"), "jdoe@demo.example");
    ck_assert_str_eq(str_at(rec, "time"), "2026-11-22T09:00:00.123Z");
    ck_assert_str_eq(str_at(rec, "jirasite"), "demo");
    ck_assert_str_eq(str_at(rec, "idhubactor"), "alice@idhub.example");
    ck_assert_str_eq(str_at(rec, "traceparent"),
                     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    ck_assert_ptr_null(json_object_get(rec, "correlationid")); /* not in the event */
    const json_t *d = data_of(rec);
    ck_assert_str_eq(str_at(d, "eventType"), "account.create");
    ck_assert_str_eq(str_at(d, "status"), "succeeded");
    ck_assert_ptr_null(json_object_get(d, "error"));  /* only when failed */
    ck_assert_ptr_null(json_object_get(d, "detail")); /* unset */
    ck_assert(json_is_object(json_object_get(d, "jira")));
    ck_assert(json_is_array(json_object_get(d, "changed")));

    /* Same inputs, same bytes (a republished result is a duplicate). */
    json_t *again = jp_record_result(ev, o, 1, 5, INSTANCE, NOW);
    char *a = dump(rec), *b = dump(again);
    ck_assert_str_eq(a, b);
    free(a);
    free(b);

    /* Not terminal, or missing pieces: no record. */
    o->status = JP_OUTCOME_RETRY;
    ck_assert_ptr_null(jp_record_result(ev, o, 1, 5, INSTANCE, NOW));
    o->status = JP_OUTCOME_QUARANTINE;
    ck_assert_ptr_null(jp_record_result(ev, o, 1, 5, INSTANCE, NOW));
    o->status = JP_OUTCOME_SUCCEEDED;
    ck_assert_ptr_null(jp_record_result(ev, o, 1, 5, NULL, NOW));
    ck_assert_ptr_null(jp_record_result(ev, o, 1, 5, "", NOW));
    ck_assert_ptr_null(jp_record_result(NULL, o, 1, 5, INSTANCE, NOW));
    ck_assert_ptr_null(jp_record_result(ev, NULL, 1, 5, INSTANCE, NOW));
    jp_outcome_destroy(o);
    jp_event_destroy(ev);
}
END_TEST

START_TEST(times)
{
    jp_event_t *ev = sample_event("account.delete");
    jp_outcome_t *o = jp_outcome_new(JP_OUTCOME_SUCCEEDED);
    static const struct {
        int64_t ms;
        const char *want;
    } cases[] = {
        {0, "1970-01-01T00:00:00.000Z"},
        {1, "1970-01-01T00:00:00.001Z"},
        {-1, "1969-12-31T23:59:59.999Z"},
        {951782400000LL, "2000-02-29T00:00:00.000Z"},
        {4102444799999LL, "2099-12-31T23:59:59.999Z"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *rec = jp_record_result(ev, o, 1, 0, INSTANCE, cases[i].ms);
        ck_assert_str_eq(str_at(rec, "time"), cases[i].want);
        json_decref(rec);
    }
    jp_outcome_destroy(o);
    jp_event_destroy(ev);
}
END_TEST

START_TEST(deadletter_bytes)
{
    /* Text key and value stay text; NUL or invalid UTF-8 goes base64. */
    static const char nul_key[] = {'a', 0, 'b'};
    json_t *rec = jp_record_deadletter(NULL, "t", 1, 2, 3, nul_key, 3, "caf\xc3\xa9", 5, NULL, 0,
                                       "r", JP_CLASS_PERMANENT, 0, NULL, INSTANCE, NOW);
    ck_assert_ptr_nonnull(rec);
    const json_t *d = data_of(rec);
    ck_assert_ptr_null(json_object_get(d, "key"));
    ck_assert_str_eq(str_at(d, "keyBase64"), "YQBi");
    ck_assert_str_eq(str_at(d, "value"), "caf\xc3\xa9");
    ck_assert_ptr_null(json_object_get(d, "valueBase64"));
    ck_assert_str_eq(str_at(rec, "subject"), "t/1/2"); /* the key is not text */
    ck_assert_str_eq(str_at(rec, "id"), "t/1/2:deadletter");
    ck_assert_ptr_null(json_object_get(rec, "jirasite")); /* no event */
    ck_assert_ptr_null(json_object_get(d, "eventId"));
    ck_assert_int_eq(json_array_size(json_object_get(d, "headers")), 0);
    ck_assert_int_eq(json_array_size(json_object_get(d, "history")), 0);
    json_decref(rec);

    /* No key, empty value, lengths 1..5 of base64 padding. */
    rec = jp_record_deadletter(NULL, "t", 0, 0, -1, NULL, 0, "", 0, NULL, 0, "empty",
                               JP_CLASS_PERMANENT, 0, NULL, INSTANCE, NOW);
    d = data_of(rec);
    ck_assert_ptr_null(json_object_get(d, "key"));
    ck_assert_ptr_null(json_object_get(d, "keyBase64"));
    ck_assert_ptr_null(json_object_get(d, "timestampMs"));
    ck_assert_str_eq(str_at(d, "value"), "");
    json_decref(rec);
    static const char *b64[] = {"/w==", "//8=", "////", "/////w=="};
    static const unsigned char ff[] = {0xff, 0xff, 0xff, 0xff};
    for (size_t n = 1; n <= 4; n++) {
        rec = jp_record_deadletter(NULL, "t", 0, 0, -1, NULL, 0, ff, n, NULL, 0, "x",
                                   JP_CLASS_PERMANENT, 0, NULL, INSTANCE, NOW);
        ck_assert_str_eq(str_at(data_of(rec), "valueBase64"), b64[n - 1]);
        json_decref(rec);
    }

    /* Bad arguments. */
    ck_assert_ptr_null(jp_record_deadletter(NULL, NULL, 0, 0, -1, NULL, 0, "", 0, NULL, 0, "x",
                                            JP_CLASS_PERMANENT, 0, NULL, INSTANCE, NOW));
    ck_assert_ptr_null(jp_record_deadletter(NULL, "t", 0, 0, -1, NULL, 0, NULL, 3, NULL, 0, "x",
                                            JP_CLASS_PERMANENT, 0, NULL, INSTANCE, NOW));
    json_t *notarray = json_object();
    ck_assert_ptr_null(jp_record_deadletter(NULL, "t", 0, 0, -1, NULL, 0, "", 0, NULL, 0, "x",
                                            JP_CLASS_PERMANENT, 0, notarray, INSTANCE, NOW));
    json_decref(notarray);
}
END_TEST

START_TEST(audit_operations)
{
    jp_event_t *ev = sample_event("issue.create");
    static const struct {
        const char *method, *api, *path, *cls, *want;
    } cases[] = {
        {"POST", "scim", "/scim/directory/d/Users", "scim.users", "scim.user.create"},
        {"PATCH", "scim", "/scim/directory/d/Users/1", "scim.users", "scim.user.update"},
        {"DELETE", "scim", "/scim/directory/d/Users/1", "scim.users", "scim.user.delete"},
        {"PATCH", "scim", "/scim/directory/d/Groups/1", "scim.groups", "scim.group.update"},
        {"POST", "admin", "/users/a/manage/lifecycle/enable", "admin.lifecycle",
         "admin.user.enable"},
        {"POST", "rest", "/rest/api/3/group/user", "rest.group.user", "rest.group.member.add"},
        {"DELETE", "rest", "/rest/api/3/group/user", "rest.group.user", "rest.group.member.remove"},
        {"DELETE", "rest", "/rest/api/3/project/D/role/1", "rest.project.role",
         "rest.project.role.actor.remove"},
        {"POST", "rest", "/rest/api/3/issue", "rest.issue", "rest.issue.create"},
        {"PUT", "rest", "/rest/api/3/issue/D-1", "rest.issue", "rest.issue.update"},
        {"PUT", "rest", "/rest/api/3/issue/D-1/assignee", "rest.issue", "rest.issue.assign"},
        {"PUT", "rest", "/rest/api/3/issue/D-1/properties/jiraprov", "rest.issue",
         "rest.issue.property.set"},
        {"DELETE", "rest", "/rest/api/3/issue/D-1", "rest.issue", "rest.issue.delete"},
        {"POST", "rest", "/rest/api/3/issue/D-1/transitions", "rest.issue.transitions",
         "rest.issue.transition"},
        {"POST", "rest", "/rest/api/3/somewhere", "rest.other", "rest.other.create"},
        {"OPTIONS", "rest", "/x", NULL, "rest.call"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        jp_outcome_t *o = jp_outcome_new(JP_OUTCOME_SUCCEEDED);
        jp_outcome_add_call(o, cases[i].method, cases[i].api, cases[i].path, cases[i].cls, 1, 200,
                            NOW, 1);
        json_t *rec = jp_record_audit_call(ev, o, &o->calls[0], INSTANCE, NOW);
        ck_assert_ptr_nonnull(rec);
        ck_assert_msg(!strcmp(str_at(data_of(rec), "operation"), cases[i].want), "%s %s: %s",
                      cases[i].method, cases[i].path, str_at(data_of(rec), "operation"));
        const json_t *t = json_object_get(data_of(rec), "target");
        ck_assert_str_eq(str_at(t, "kind"), "issue");
        ck_assert_str_eq(str_at(t, "externalRef"), "idhub:req:1001");
        ck_assert_str_eq(str_at(rec, "correlationid"), "req-1001");
        ck_assert_str_eq(str_at(data_of(rec), "correlationid"), "req-1001");
        ck_assert_ptr_null(json_object_get(data_of(rec), "traceparent"));
        ck_assert_ptr_null(json_object_get(data_of(rec), JP_RECORD_AUDIT_CHAIN_FIELD));
        json_decref(rec);
        jp_outcome_destroy(o);
    }

    /* Two attempts' calls at the same index have different ids. */
    jp_outcome_t *o = jp_outcome_new(JP_OUTCOME_SUCCEEDED);
    jp_outcome_add_call(o, "POST", "rest", "/rest/api/3/issue", "rest.issue", 1, 503, NOW, 1);
    jp_outcome_t *o2 = jp_outcome_new(JP_OUTCOME_SUCCEEDED);
    jp_outcome_add_call(o2, "POST", "rest", "/rest/api/3/issue", "rest.issue", 1, 201, NOW + 2000,
                        1);
    json_t *r1 = jp_record_audit_call(ev, o, &o->calls[0], INSTANCE, NOW);
    json_t *r2 = jp_record_audit_call(ev, o2, &o2->calls[0], INSTANCE, NOW + 2000);
    ck_assert_str_eq(str_at(r1, "id"),
                     "0193a1c2-7d4e-7a10-9c3b-000000000007:audit:0@1795338000123");
    ck_assert_str_ne(str_at(r1, "id"), str_at(r2, "id"));
    ck_assert_str_eq(str_at(data_of(r1), "outcome"), "failed");
    ck_assert_str_eq(str_at(data_of(r2), "outcome"), "succeeded");
    json_decref(r1);
    json_decref(r2);
    jp_outcome_destroy(o2);

    /* Decisions: only the three names; o may be NULL. */
    ck_assert_ptr_null(jp_record_audit_decision(ev, o, "applied", INSTANCE, NOW));
    ck_assert_ptr_null(jp_record_audit_decision(ev, o, NULL, INSTANCE, NOW));
    ck_assert_ptr_null(jp_record_audit_decision(NULL, o, "skipped", INSTANCE, NOW));
    ck_assert_ptr_null(jp_record_audit_call(ev, o, NULL, INSTANCE, NOW));
    json_t *r = jp_record_audit_decision(ev, NULL, "quarantined", INSTANCE, NOW);
    ck_assert_ptr_nonnull(r);
    ck_assert_ptr_null(json_object_get(data_of(r), "error"));
    ck_assert_ptr_null(json_object_get(data_of(r), "eventOutcome"));
    ck_assert_str_eq(str_at(data_of(r), "operation"), "decision.quarantined");
    json_decref(r);
    jp_outcome_destroy(o);
    jp_event_destroy(ev);
}
END_TEST

START_TEST(secrets_redacted)
{
    const char *secret = "Tok3n-5ecret-xyzzy";
    ck_assert_int_eq(jp_log_add_secret(secret), 0);
    jp_event_t *ev = sample_event("account.create");
    jp_outcome_t *o = jp_outcome_new(JP_OUTCOME_FAILED);
    jp_outcome_set_error(o, JP_OUTCOME_FAILED, JP_CLASS_PERMANENT, "http_400",
                         "Jira said: bad token Tok3n-5ecret-xyzzy (twice: Tok3n-5ecret-xyzzy)");
    o->detail = strdup("detail with Tok3n-5ecret-xyzzy");
    jp_outcome_add_call(o, "POST", "scim", "/scim/directory/Tok3n-5ecret-xyzzy/Users", "scim.users",
                        1, 400, NOW, 1);

    json_t *recs[4];
    recs[0] = jp_record_result(ev, o, 1, 1, INSTANCE, NOW);
    recs[1] = jp_record_audit_call(ev, o, &o->calls[0], INSTANCE, NOW);
    recs[2] = jp_record_audit_decision(ev, o, "deadlettered", INSTANCE, NOW);
    recs[3] = jp_record_deadletter(ev, "idhub.events", 0, 1, 2, NULL, 0, "{}", 2, NULL, 0,
                                   "rejected: Tok3n-5ecret-xyzzy", JP_CLASS_PERMANENT, 1, NULL,
                                   INSTANCE, NOW);
    for (int i = 0; i < 4; i++) {
        char *s = dump(recs[i]);
        ck_assert_msg(strstr(s, secret) == NULL, "record %d leaks: %s", i, s);
        ck_assert_msg(strstr(s, "[redacted]") != NULL, "record %d: %s", i, s);
        free(s);
    }
    json_t *r = jp_record_result(ev, o, 1, 1, INSTANCE, NOW);
    ck_assert_str_eq(str_at(json_object_get(data_of(r), "error"), "message"),
                     "Jira said: bad token [redacted] (twice: [redacted])");
    json_decref(r);
    jp_log_clear_secrets();
    jp_outcome_destroy(o);
    jp_event_destroy(ev);
}
END_TEST

/* A reason or message that is not UTF-8 (cut inside a character, or a stray
 * byte from a server) must not make the record unbuildable: the pipeline
 * would republish it forever and hold the subject back. */
START_TEST(text_not_utf8_repaired)
{
    json_t *rec = jp_record_deadletter(NULL, "t", 0, 1, -1, NULL, 0, "{}", 2, NULL, 0,
                                       "cut in a character: caf\xc3", JP_CLASS_PERMANENT, 0, NULL,
                                       INSTANCE, NOW);
    ck_assert_ptr_nonnull(rec);
    ck_assert_str_eq(str_at(data_of(rec), "reason"), "cut in a character: caf\xef\xbf\xbd");
    json_decref(rec);

    jp_event_t *ev = sample_event("account.create");
    jp_outcome_t *o = jp_outcome_new(JP_OUTCOME_FAILED);
    jp_outcome_set_error(o, JP_OUTCOME_FAILED, JP_CLASS_PERMANENT, "http_400",
                         "HTTP 400: \xff\xfe bad \xed\xa0\x80 surrogate, \xc3\xa9 kept");
    rec = jp_record_result(ev, o, 1, 1, INSTANCE, NOW);
    ck_assert_ptr_nonnull(rec);
    ck_assert_str_eq(str_at(json_object_get(data_of(rec), "error"), "message"),
                     "HTTP 400: \xef\xbf\xbd\xef\xbf\xbd bad \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd "
                     "surrogate, \xc3\xa9 kept");
    json_decref(rec);
    jp_outcome_destroy(o);
    jp_event_destroy(ev);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("record");
    TCase *tc = tcase_create("record");
    tcase_add_test(tc, samples_results);
    tcase_add_test(tc, samples_deadletters);
    tcase_add_test(tc, samples_audit);
    tcase_add_test(tc, samples_site_state);
    tcase_add_test(tc, result_shape);
    tcase_add_test(tc, times);
    tcase_add_test(tc, deadletter_bytes);
    tcase_add_test(tc, audit_operations);
    tcase_add_test(tc, secrets_redacted);
    tcase_add_test(tc, text_not_utf8_repaired);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    jp_log_set_level(JP_LOG_ERROR);
    return jp_check_run(suite(), CK_NORMAL);
}
