/* The event contract: the corpus in tests/unit/data/events (every valid
 * event decodes to the expected typed fields, every invalid one fails with
 * its exact message), the samples in config/samples, and the helpers. */
#include "jiraprov/event.h"

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/check_main.h"
#include "../lib/fixture.h"

#define CORPUS "/tests/unit/data/events"

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted *.json names in a corpus directory; returns the count. */
static size_t list_json(const char *rel, char ***names)
{
    char path[1024];
    snprintf(path, sizeof path, "%s%s", testfix_source_dir(), rel);
    DIR *d = opendir(path);
    ck_assert_msg(d != NULL, "cannot open %s", path);
    size_t n = 0, cap = 0;
    char **v = NULL;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l < 6 || strcmp(de->d_name + l - 5, ".json") != 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            v = realloc(v, cap * sizeof *v);
            ck_assert_ptr_nonnull(v);
        }
        v[n++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(v, n, sizeof *v, cmp_names);
    *names = v;
    return n;
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

static jp_event_t *decode_ok(const char *buf, size_t len, const char *what)
{
    jp_event_t *ev = NULL;
    char err[512] = "";
    jp_err_t rc = jp_event_decode(buf, len, NULL, &ev, err, sizeof err);
    ck_assert_msg(rc == JP_OK, "%s: %s", what, err);
    ck_assert_ptr_nonnull(ev);
    return ev;
}

static jp_event_t *load_valid(const char *name)
{
    char rel[256];
    size_t len;
    snprintf(rel, sizeof rel, CORPUS "/valid/%s", name);
    char *buf = testfix_read(rel, &len);
    jp_event_t *ev = decode_ok(buf, len, name);
    free(buf);
    return ev;
}

/* Decodes `text` and returns the error, asserting it failed with `want`. */
static void expect_error(const char *text, jp_err_t want, const char *msg)
{
    jp_event_t *ev = (jp_event_t *)1;
    char err[512] = "";
    jp_err_t rc = jp_event_decode(text, strlen(text), NULL, &ev, err, sizeof err);
    ck_assert_ptr_null(ev);
    ck_assert_int_eq(rc, want);
    ck_assert_str_eq(err, msg);
}

#define STATE(ev, a)  ((ev)->account.attr[(a)].state)
#define VALUE(ev, a)  ((ev)->account.attr[(a)].value)
#define ENVELOPE_HEAD "{\"specversion\":\"1.0\",\"id\":\"e1\",\"source\":\"/idhub\","

/* ---- typed access on each valid corpus event ---------------------------- */

/* The typed checks run on decoded events and again on compacted ones. */
static int checking_compacted;

static void check_common(const jp_event_t *ev, jp_event_type_t type)
{
    ck_assert_int_eq(ev->type, type);
    ck_assert_str_eq(ev->site, "demo");
    ck_assert_str_eq(ev->actor, "alice@idhub.example");
    if (checking_compacted) {
        ck_assert_ptr_null(ev->root);
        ck_assert_ptr_null(ev->data);
    } else {
        ck_assert_ptr_nonnull(ev->root);
        ck_assert_ptr_nonnull(ev->data);
        ck_assert_ptr_eq(json_object_get(ev->root, "data"), ev->data);
    }
    ck_assert_str_eq(jp_event_key(ev), ev->subject);
}

static void v_account_create_full(const jp_event_t *ev)
{
    check_common(ev, JP_EVENT_ACCOUNT_CREATE);
    static const char *const want[JP_ATTR__COUNT] = {
        "jdoe@demo.example",
        "jdoe@demo.example",
        "Jane",
        "Doe",
        "Jane Doe",
        "jd",
        "Engineer",
        "R&D",
        "Demo Corp",
        "Europe/Berlin",
        "00u1abcd",
    };
    for (int a = 0; a < JP_ATTR__COUNT; a++) {
        ck_assert_int_eq(STATE(ev, a), JP_VALUE);
        ck_assert_str_eq(VALUE(ev, a), want[a]);
    }
    ck_assert_int_eq(ev->account.active_state, JP_VALUE);
    ck_assert(ev->account.active);
    ck_assert_str_eq(ev->id, "evt-account-create-0001");
    ck_assert_str_eq(ev->source, "https://idhub.example/provisioning");
    ck_assert_str_eq(ev->subject, "jdoe@demo.example");
    ck_assert_str_eq(ev->time, "2026-11-22T10:00:00Z");
    ck_assert_int_eq(ev->time_ms, 1795341600000LL);
    ck_assert_str_eq(ev->datacontenttype, "application/json");
    ck_assert_str_eq(ev->dataschema, "https://jiraprov.example/schemas/account.create.schema.json");
    ck_assert_str_eq(ev->traceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    ck_assert_str_eq(ev->correlationid, "req-42");
    ck_assert_str_eq(jp_event_login(ev), "jdoe@demo.example");
}

static void v_account_create_minimal(const jp_event_t *ev)
{
    check_common(ev, JP_EVENT_ACCOUNT_CREATE);
    ck_assert_str_eq(VALUE(ev, JP_ATTR_LOGIN), "jdoe@demo.example");
    ck_assert_str_eq(VALUE(ev, JP_ATTR_EMAIL), "jdoe@demo.example");
    for (int a = JP_ATTR_FIRST_NAME; a < JP_ATTR__COUNT; a++) {
        ck_assert_int_eq(STATE(ev, a), JP_ABSENT);
        ck_assert_ptr_null(VALUE(ev, a));
    }
    /* active defaults to true on create */
    ck_assert_int_eq(ev->account.active_state, JP_ABSENT);
    ck_assert(ev->account.active);
    ck_assert_ptr_null(ev->traceparent);
    ck_assert_ptr_null(ev->correlationid);
    ck_assert_ptr_null(ev->datacontenttype);
    ck_assert_ptr_null(ev->dataschema);
}

static void v_account_create_unicode(const jp_event_t *ev)
{
    check_common(ev, JP_EVENT_ACCOUNT_CREATE);
    ck_assert_str_eq(VALUE(ev, JP_ATTR_LOGIN), "zo\xc3\xab.m\xc3\xbcller@demo.example");
    ck_assert_str_eq(ev->subject, VALUE(ev, JP_ATTR_LOGIN));
    ck_assert_str_eq(VALUE(ev, JP_ATTR_DISPLAY_NAME), "Zo\xc3\xab M\xc3\xbcller \xf0\x9f\x9a\x80");
    ck_assert_int_eq(ev->account.active_state, JP_VALUE);
    ck_assert(!ev->account.active);
    ck_assert_str_eq(ev->source, "urn:idhub:eu-1");
}

static void v_account_update(const jp_event_t *ev)
{
    check_common(ev, JP_EVENT_ACCOUNT_UPDATE);
    ck_assert_int_eq(STATE(ev, JP_ATTR_JOB_TITLE), JP_VALUE);
    ck_assert_str_eq(VALUE(ev, JP_ATTR_JOB_TITLE), "Senior Engineer");
    ck_assert_int_eq(STATE(ev, JP_ATTR_NICK_NAME), JP_NULL);
    ck_assert_ptr_null(VALUE(ev, JP_ATTR_NICK_NAME));
    ck_assert_int_eq(STATE(ev, JP_ATTR_DEPARTMENT), JP_NULL);
    ck_assert_int_eq(STATE(ev, JP_ATTR_EMAIL), JP_ABSENT);
    ck_assert_int_eq(STATE(ev, JP_ATTR_FIRST_NAME), JP_ABSENT);
    ck_assert_int_eq(ev->account.active_state, JP_VALUE);
    ck_assert(!ev->account.active);
}

static void v_account_update_email(const jp_event_t *ev)
{
    check_common(ev, JP_EVENT_ACCOUNT_UPDATE);
    ck_assert_str_eq(VALUE(ev, JP_ATTR_EMAIL), "jane.doe@demo.example");
    ck_assert_int_eq(ev->account.active_state, JP_ABSENT);
    for (int a = JP_ATTR_FIRST_NAME; a < JP_ATTR__COUNT; a++)
        ck_assert_int_eq(STATE(ev, a), JP_ABSENT);
}

static void v_account_login_only(const jp_event_t *ev, jp_event_type_t t, const char *login)
{
    check_common(ev, t);
    ck_assert_str_eq(jp_event_login(ev), login);
    ck_assert_int_eq(STATE(ev, JP_ATTR_LOGIN), JP_VALUE);
    for (int a = JP_ATTR_EMAIL; a < JP_ATTR__COUNT; a++)
        ck_assert_int_eq(STATE(ev, a), JP_ABSENT);
}

static void v_account_delete(const jp_event_t *ev)
{
    v_account_login_only(ev, JP_EVENT_ACCOUNT_DELETE, "jdoe@demo.example");
}

static void v_account_enable(const jp_event_t *ev)
{
    v_account_login_only(ev, JP_EVENT_ACCOUNT_ENABLE, "jdoe@demo.example");
    ck_assert_str_eq(ev->time, "2026-11-22t11:30:15.123456+05:30");
    ck_assert_int_eq(ev->time_ms, 1795327215123LL);
}

static void v_account_disable(const jp_event_t *ev)
{
    v_account_login_only(ev, JP_EVENT_ACCOUNT_DISABLE, "k.tanaka");
    ck_assert_int_eq(ev->time_ms, 1795330800500LL);
    ck_assert_str_eq(ev->source, "/idhub/provisioning");
}

static void v_entitlement_grant_group(const jp_event_t *ev)
{
    check_common(ev, JP_EVENT_ENTITLEMENT_GRANT);
    ck_assert_str_eq(ev->entitlement.login, "jdoe@demo.example");
    ck_assert_str_eq(jp_event_login(ev), "jdoe@demo.example");
    ck_assert_int_eq(ev->entitlement.kind, JP_ENTITLEMENT_GROUP);
    ck_assert_str_eq(ev->entitlement.group, "jira-software-users");
    ck_assert_ptr_null(ev->entitlement.project);
    ck_assert_ptr_null(ev->entitlement.role);
}

static void v_entitlement_grant_role(const jp_event_t *ev)
{
    check_common(ev, JP_EVENT_ENTITLEMENT_GRANT);
    ck_assert_int_eq(ev->entitlement.kind, JP_ENTITLEMENT_PROJECT_ROLE);
    ck_assert_str_eq(ev->entitlement.project, "DEMO");
    ck_assert_str_eq(ev->entitlement.role, "Developers");
    ck_assert_ptr_null(ev->entitlement.group);
}

static void v_entitlement_revoke_role(const jp_event_t *ev)
{
    check_common(ev, JP_EVENT_ENTITLEMENT_REVOKE);
    ck_assert_int_eq(ev->entitlement.kind, JP_ENTITLEMENT_PROJECT_ROLE);
    ck_assert_str_eq(ev->entitlement.project, "OPS2");
    ck_assert_str_eq(ev->entitlement.role, "Administrators");
}

static void v_issue_create_full(const jp_event_t *ev)
{
    const jp_issue_t *is = &ev->issue;
    check_common(ev, JP_EVENT_ISSUE_CREATE);
    ck_assert_ptr_null(jp_event_login(ev));
    ck_assert_ptr_null(is->key);
    ck_assert_str_eq(is->external_ref, "idhub:req:1001");
    ck_assert_str_eq(is->project, "DEMO");
    ck_assert_str_eq(is->issue_type, "Task");
    ck_assert_int_eq(is->summary.state, JP_VALUE);
    ck_assert_str_eq(is->summary.value, "Provision Jira access for Jane Doe");
    ck_assert_str_eq(is->description.value,
                     "Requested by alice.\n\nGroups:\n\t- jira-software-users\r\n");
    ck_assert_int_eq(is->labels_state, JP_VALUE);
    ck_assert_uint_eq(is->labels_count, 2);
    ck_assert_str_eq(is->labels[0], "iam");
    ck_assert_str_eq(is->labels[1], "provisioning");
    ck_assert_str_eq(is->priority.value, "High");
    ck_assert_str_eq(is->assignee.value, "jdoe@demo.example");
    ck_assert_ptr_null(is->status);
}

static void v_issue_create_minimal(const jp_event_t *ev)
{
    const jp_issue_t *is = &ev->issue;
    check_common(ev, JP_EVENT_ISSUE_CREATE);
    ck_assert_str_eq(is->external_ref, "REQ-7");
    ck_assert_uint_eq(strlen(is->summary.value), 255);
    ck_assert_int_eq(is->description.state, JP_ABSENT);
    ck_assert_int_eq(is->labels_state, JP_ABSENT);
    ck_assert_uint_eq(is->labels_count, 0);
    ck_assert_ptr_null(is->labels);
    ck_assert_int_eq(is->priority.state, JP_ABSENT);
    ck_assert_int_eq(is->assignee.state, JP_ABSENT);
}

static void v_issue_update_key(const jp_event_t *ev)
{
    const jp_issue_t *is = &ev->issue;
    check_common(ev, JP_EVENT_ISSUE_UPDATE);
    ck_assert_str_eq(is->key, "DEMO-12");
    ck_assert_ptr_null(is->external_ref);
    ck_assert_str_eq(is->summary.value, "Provision Jira access (updated)");
    ck_assert_uint_eq(is->labels_count, 1);
    ck_assert_str_eq(is->labels[0], "iam");
    ck_assert_str_eq(is->priority.value, "Low");
    ck_assert_int_eq(is->assignee.state, JP_ABSENT);
    ck_assert_int_eq(is->description.state, JP_ABSENT);
}

static void v_issue_update_ref(const jp_event_t *ev)
{
    const jp_issue_t *is = &ev->issue;
    check_common(ev, JP_EVENT_ISSUE_UPDATE);
    ck_assert_ptr_null(is->key);
    ck_assert_str_eq(is->external_ref, "idhub:req:1001");
    ck_assert_int_eq(is->assignee.state, JP_NULL);
    ck_assert_int_eq(is->labels_state, JP_NULL);
    ck_assert_int_eq(is->description.state, JP_NULL);
    ck_assert_int_eq(is->summary.state, JP_ABSENT);
    ck_assert_int_eq(is->priority.state, JP_ABSENT);
}

static void v_issue_delete_key(const jp_event_t *ev)
{
    check_common(ev, JP_EVENT_ISSUE_DELETE);
    ck_assert_str_eq(ev->issue.key, "DEMO-12");
    ck_assert(ev->issue.delete_subtasks);
}

static void v_issue_delete_ref(const jp_event_t *ev)
{
    check_common(ev, JP_EVENT_ISSUE_DELETE);
    ck_assert_str_eq(ev->issue.external_ref, "idhub:req:1001");
    ck_assert(!ev->issue.delete_subtasks);
}

static void v_issue_transition(const jp_event_t *ev)
{
    check_common(ev, JP_EVENT_ISSUE_TRANSITION);
    ck_assert_str_eq(ev->issue.key, "DEMO-12");
    ck_assert_str_eq(ev->issue.status, "In Progress");
}

static void v_recon_full(const jp_event_t *ev)
{
    const jp_recon_request_t *r = &ev->recon;
    check_common(ev, JP_EVENT_RECON_REQUEST);
    ck_assert_str_eq(r->recon_id, "recon-2026-11-22");
    ck_assert_int_eq(r->mode, JP_RECON_FULL);
    ck_assert_uint_eq(r->resources, JP_RECON_ACCOUNTS | JP_RECON_ENTITLEMENTS);
    ck_assert(!r->has_filter);
    ck_assert_str_eq(r->scope, "nightly");
    ck_assert(!r->scope_derived);
}

static void v_recon_filtered(const jp_event_t *ev)
{
    const jp_recon_request_t *r = &ev->recon;
    check_common(ev, JP_EVENT_RECON_REQUEST);
    ck_assert_int_eq(r->mode, JP_RECON_FILTERED);
    ck_assert_uint_eq(r->resources, JP_RECON_ACCOUNTS);
    ck_assert(r->has_filter);
    ck_assert_str_eq(r->filter.department, "R&D");
    ck_assert_str_eq(r->filter.group, "jira-software-users");
    ck_assert_int_eq(r->filter.active_state, JP_VALUE);
    ck_assert(r->filter.active);
    ck_assert_ptr_null(r->filter.user_name);
    ck_assert_ptr_null(r->filter.external_id);
    ck_assert_ptr_null(r->filter.organization_name);
    ck_assert(r->scope_derived);
    ck_assert_str_eq(
        r->scope,
        "accounts|{\"active\":true,\"department\":\"R&D\",\"group\":\"jira-software-users\"}");
}

static void v_recon_incremental(const jp_event_t *ev)
{
    const jp_recon_request_t *r = &ev->recon;
    check_common(ev, JP_EVENT_RECON_REQUEST);
    ck_assert_int_eq(r->mode, JP_RECON_INCREMENTAL);
    ck_assert(r->scope_derived);
    ck_assert_str_eq(r->scope, "accounts+entitlements");
}

static const struct valid_case {
    const char *file;
    void (*check)(const jp_event_t *);
} valid_cases[] = {
    {"account-create-full.json", v_account_create_full},
    {"account-create-minimal.json", v_account_create_minimal},
    {"account-create-unicode.json", v_account_create_unicode},
    {"account-delete.json", v_account_delete},
    {"account-disable.json", v_account_disable},
    {"account-enable.json", v_account_enable},
    {"account-update-email.json", v_account_update_email},
    {"account-update.json", v_account_update},
    {"entitlement-grant-group.json", v_entitlement_grant_group},
    {"entitlement-grant-role.json", v_entitlement_grant_role},
    {"entitlement-revoke-role.json", v_entitlement_revoke_role},
    {"issue-create-full.json", v_issue_create_full},
    {"issue-create-minimal.json", v_issue_create_minimal},
    {"issue-delete-key.json", v_issue_delete_key},
    {"issue-delete-ref.json", v_issue_delete_ref},
    {"issue-transition.json", v_issue_transition},
    {"issue-update-key.json", v_issue_update_key},
    {"issue-update-ref.json", v_issue_update_ref},
    {"recon-filtered.json", v_recon_filtered},
    {"recon-full.json", v_recon_full},
    {"recon-incremental.json", v_recon_incremental},
};

#define N_VALID (sizeof valid_cases / sizeof valid_cases[0])

START_TEST(valid_corpus_typed)
{
    const struct valid_case *vc = &valid_cases[_i];
    jp_event_t *ev = load_valid(vc->file);
    vc->check(ev);
    jp_event_destroy(ev);
}
END_TEST

/* A compacted event has the same typed fields, and none of them points into
 * the released tree any more (ASan would also catch a read of it). */
static void expect_moved(const char *before, const char *after)
{
    ck_assert((before == NULL) == (after == NULL));
    if (before)
        ck_assert_ptr_ne(before, after);
}

START_TEST(valid_corpus_compacted)
{
    const struct valid_case *vc = &valid_cases[_i];
    jp_event_t *ev = load_valid(vc->file);
    jp_event_t old = *ev;
    ck_assert_int_eq(jp_event_compact(ev), JP_OK);
    ck_assert_int_eq(jp_event_compact(ev), JP_OK); /* twice is harmless */
    checking_compacted = 1;
    vc->check(ev);
    checking_compacted = 0;
    expect_moved(old.id, ev->id);
    expect_moved(old.subject, ev->subject);
    expect_moved(old.time, ev->time);
    expect_moved(old.traceparent, ev->traceparent);
    if (JP_EVENT_IS_ACCOUNT(ev->type))
        for (int i = 0; i < JP_ATTR__COUNT; i++)
            expect_moved(old.account.attr[i].value, ev->account.attr[i].value);
    if (JP_EVENT_IS_ENTITLEMENT(ev->type))
        expect_moved(old.entitlement.group, ev->entitlement.group);
    if (JP_EVENT_IS_ISSUE(ev->type)) {
        expect_moved(old.issue.summary.value, ev->issue.summary.value);
        expect_moved(old.issue.description.value, ev->issue.description.value);
    }
    if (JP_EVENT_IS_RECON(ev->type)) {
        expect_moved(old.recon.recon_id, ev->recon.recon_id);
        expect_moved(old.recon.filter.department, ev->recon.filter.department);
    }
    jp_event_destroy(ev);
}
END_TEST

/* Every file in valid/ has typed assertions above (and so decodes). */
START_TEST(valid_corpus_complete)
{
    char **names;
    size_t n = list_json(CORPUS "/valid", &names);
    ck_assert_uint_eq(n, N_VALID);
    for (size_t i = 0; i < n; i++)
        ck_assert_str_eq(names[i], valid_cases[i].file);
    free_names(names, n);
}
END_TEST

/* ---- invalid corpus ----------------------------------------------------- */

START_TEST(invalid_corpus)
{
    size_t mlen;
    char *manifest = testfix_read(CORPUS "/manifest.tsv", &mlen);
    char **names;
    size_t n_files = list_json(CORPUS "/invalid", &names);
    size_t cases = 0;
    char *save = NULL;
    for (char *line = strtok_r(manifest, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#')
            continue;
        char *f[4];
        char *p = line;
        for (int k = 0; k < 3; k++) {
            f[k] = p;
            p = strchr(p, '\t');
            ck_assert_msg(p != NULL, "manifest line without 4 columns: %s", line);
            *p++ = '\0';
        }
        f[3] = p;
        char *end;
        jp_event_limits_t lim = {.max_bytes = strtoul(f[1], &end, 10)};
        ck_assert_msg(*end == '\0', "bad max_bytes in %s", f[0]);
        ck_assert_msg(strcmp(f[2], "reject") == 0 || strcmp(f[2], "n/a") == 0,
                      "bad schema column in %s", f[0]);
        ck_assert_msg(bsearch(&f[0], names, n_files, sizeof *names, cmp_names) != NULL,
                      "%s is in the manifest but not in invalid/", f[0]);

        char rel[256];
        size_t len;
        snprintf(rel, sizeof rel, CORPUS "/invalid/%s", f[0]);
        char *buf = testfix_read(rel, &len);
        jp_event_t *ev = (jp_event_t *)1;
        char err[512] = "";
        jp_err_t rc = jp_event_decode(buf, len, &lim, &ev, err, sizeof err);
        ck_assert_ptr_null(ev);
        ck_assert_msg(strcmp(err, f[3]) == 0, "%s:\n  want: %s\n  got:  %s", f[0], f[3], err);
        ck_assert_int_eq(rc, strstr(err, "exceeds the limit") ? JP_ERR_TOO_LARGE : JP_ERR_INVALID);
        free(buf);
        cases++;
    }
    /* Each file has exactly one line, and there are enough of them. */
    ck_assert_uint_eq(cases, n_files);
    ck_assert_uint_ge(cases, 40);
    free_names(names, n_files);
    free(manifest);
}
END_TEST

/* ---- samples ------------------------------------------------------------ */

START_TEST(samples_per_type)
{
    for (int t = 0; t < JP_EVENT__COUNT; t++) {
        char rel[256];
        size_t len;
        snprintf(rel, sizeof rel, "/config/samples/%s.json", jp_event_type_name(t));
        char *buf = testfix_read(rel, &len);
        jp_event_t *ev = decode_ok(buf, len, rel);
        ck_assert_int_eq(ev->type, t);
        ck_assert_str_eq(ev->site, "demo");
        jp_event_destroy(ev);
        free(buf);
    }
}
END_TEST

/* Decodes each line of a JSONL sample; returns how many decoded. */
static size_t decode_lines(const char *rel, size_t *total, jp_event_type_t *types, size_t max)
{
    size_t len, ok = 0;
    char *buf = testfix_read(rel, &len);
    char *save = NULL;
    *total = 0;
    for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        jp_event_t *ev = NULL;
        char err[512];
        if (jp_event_decode(line, strlen(line), NULL, &ev, err, sizeof err) == JP_OK) {
            if (ok < max)
                types[ok] = ev->type;
            ok++;
        }
        jp_event_destroy(ev);
        (*total)++;
    }
    free(buf);
    return ok;
}

START_TEST(samples_demo_story)
{
    static const jp_event_type_t story[] = {
        JP_EVENT_ACCOUNT_CREATE,  JP_EVENT_ACCOUNT_CREATE,    JP_EVENT_ACCOUNT_CREATE,
        JP_EVENT_ACCOUNT_UPDATE,  JP_EVENT_ENTITLEMENT_GRANT, JP_EVENT_ENTITLEMENT_GRANT,
        JP_EVENT_ISSUE_CREATE,    JP_EVENT_ISSUE_TRANSITION,  JP_EVENT_ENTITLEMENT_REVOKE,
        JP_EVENT_ACCOUNT_DISABLE, JP_EVENT_ACCOUNT_DELETE,    JP_EVENT_RECON_REQUEST,
    };
    jp_event_type_t got[32];
    size_t total;
    size_t ok = decode_lines("/config/samples/demo.jsonl", &total, got, 32);
    ck_assert_uint_eq(total, sizeof story / sizeof story[0]);
    ck_assert_uint_eq(ok, total);
    for (size_t i = 0; i < total; i++)
        ck_assert_int_eq(got[i], story[i]);

    ok = decode_lines("/config/samples/invalid.jsonl", &total, got, 32);
    ck_assert_uint_ge(total, 3);
    ck_assert_uint_eq(ok, 0);
}
END_TEST

/* ---- limits, API edges -------------------------------------------------- */

static const char small_event[] =
    ENVELOPE_HEAD "\"type\":\"com.idhub.account.delete\",\"subject\":\"jdoe\","
                  "\"time\":\"2026-11-22T10:00:00Z\",\"jirasite\":\"demo\",\"idhubactor\":\"a\","
                  "\"data\":{\"login\":\"jdoe\"}}";

START_TEST(default_size_limit)
{
    size_t max = JP_EVENT_MAX_BYTES;
    ck_assert_uint_eq(max, 1048576);
    /* Exactly at the limit is fine (JSON allows trailing whitespace). */
    char *buf = malloc(max + 1);
    ck_assert_ptr_nonnull(buf);
    memset(buf, ' ', max + 1);
    memcpy(buf, small_event, strlen(small_event));
    jp_event_t *ev = decode_ok(buf, max, "1 MiB event");
    jp_event_destroy(ev);

    char err[256];
    ev = (jp_event_t *)1;
    ck_assert_int_eq(jp_event_decode(buf, max + 1, NULL, &ev, err, sizeof err), JP_ERR_TOO_LARGE);
    ck_assert_ptr_null(ev);
    ck_assert_str_eq(err, "event: 1048577 bytes exceeds the limit of 1048576");
    jp_event_limits_t zero = {0};
    ck_assert_int_eq(jp_event_decode(buf, max + 1, &zero, &ev, err, sizeof err), JP_ERR_TOO_LARGE);
    free(buf);
}
END_TEST

START_TEST(errstr_edges)
{
    jp_event_t *ev = NULL;
    char tiny[8];
    /* A short buffer is truncated and terminated; NULL is accepted. */
    ck_assert_int_eq(jp_event_decode("[]", 2, NULL, &ev, tiny, sizeof tiny), JP_ERR_INVALID);
    ck_assert_str_eq(tiny, "event: ");
    ck_assert_int_eq(jp_event_decode("[]", 2, NULL, &ev, NULL, 0), JP_ERR_INVALID);
    ck_assert_int_eq(jp_event_decode(NULL, 0, NULL, &ev, tiny, sizeof tiny), JP_ERR_INVALID);
    ck_assert_int_eq(jp_event_decode(NULL, 5, NULL, &ev, tiny, sizeof tiny), JP_ERR_INVALID);
    ck_assert_int_eq(jp_event_decode("{}", 2, NULL, NULL, tiny, sizeof tiny), JP_ERR_INVALID);
    /* The buffer need not be NUL-terminated: only len bytes are read. */
    char copy[sizeof small_event + 4];
    memcpy(copy, small_event, strlen(small_event));
    memcpy(copy + strlen(small_event), "xxxx", 4);
    ev = decode_ok(copy, strlen(small_event), "unterminated");
    jp_event_destroy(ev);
    jp_event_destroy(NULL);
    ck_assert_ptr_null(jp_event_key(NULL));
    ck_assert_ptr_null(jp_event_login(NULL));
}
END_TEST

START_TEST(quoting_in_errors)
{
    /* Values are escaped JSON-style and cut after 64 bytes. */
    expect_error(
        ENVELOPE_HEAD "\"type\":\"com.idhub.account.delete\",\"subject\":\"x\","
                      "\"time\":\"2026-11-22T10:00:00Z\",\"jirasite\":\"demo\","
                      "\"idhubactor\":\"a\",\"data\":{\"login\":\"a \\\"q\\\" \\\\ b\"}}",
        JP_ERR_INVALID,
        "data.login: expected a login without whitespace or '/', got \"a \\\"q\\\" \\\\ b\"");
    char long_ref[200];
    memset(long_ref, 'r', 100);
    memcpy(long_ref + 100, " x", 3);
    char text[1024];
    snprintf(text, sizeof text,
             ENVELOPE_HEAD
             "\"type\":\"com.idhub.issue.transition\",\"subject\":\"x\","
             "\"time\":\"2026-11-22T10:00:00Z\",\"jirasite\":\"demo\","
             "\"idhubactor\":\"a\",\"data\":{\"externalRef\":\"%s\",\"status\":\"Done\"}}",
             long_ref);
    char want[512];
    snprintf(want, sizeof want,
             "data.externalRef: expected 1 to 128 characters of [A-Za-z0-9._:-], got \"%.64s...\"",
             long_ref);
    expect_error(text, JP_ERR_INVALID, want);
    /* Odd attribute names are escaped in the path. */
    expect_error(ENVELOPE_HEAD "\"type\":\"com.idhub.account.delete\",\"subject\":\"jdoe\","
                               "\"time\":\"2026-11-22T10:00:00Z\",\"jirasite\":\"demo\","
                               "\"idhubactor\":\"a\",\"a\\nb\":1,\"data\":{\"login\":\"jdoe\"}}",
                 JP_ERR_INVALID, "a\\nb: unknown attribute");
    /* A multi-byte character is never cut in half. */
    char accents[81];
    for (int i = 0; i < 40; i++)
        memcpy(accents + 2 * i, "\xc3\xa9", 2);
    accents[80] = '\0';
    snprintf(text, sizeof text,
             ENVELOPE_HEAD "\"type\":\"com.idhub.account.create\",\"subject\":\"jdoe\","
                           "\"time\":\"2026-11-22T10:00:00Z\",\"jirasite\":\"demo\","
                           "\"idhubactor\":\"a\",\"data\":{\"login\":\"jdoe\",\"email\":\"%s\"}}",
             accents);
    snprintf(want, sizeof want, "data.email: expected an email address, got \"%.64s...\"", accents);
    expect_error(text, JP_ERR_INVALID, want);
}
END_TEST

/* jansson quotes raw input in its syntax errors ("near '...'"): a control
 * character there is escaped, so a reason is always one line. */
START_TEST(syntax_errors_one_line)
{
    expect_error("{\"a\": \x18}", JP_ERR_INVALID,
                 "event: not valid JSON at line 1, column 7: invalid token near '\\u0018'");
    expect_error("{\x1b[2J}", JP_ERR_INVALID,
                 "event: not valid JSON at line 1, column 2: string or '}' expected near "
                 "'\\u001b'");
    expect_error("[\"\x01\"]", JP_ERR_INVALID,
                 "event: not valid JSON at line 1, column 2: control character 0x1 near '\"'");
}
END_TEST

START_TEST(first_error_wins)
{
    /* Several problems: the fixed order decides which one is reported. */
    expect_error("{\"specversion\":\"0.3\",\"foo\":1}", JP_ERR_INVALID,
                 "specversion: expected \"1.0\", got \"0.3\"");
    expect_error("{\"specversion\":\"1.0\",\"foo\":1,\"type\":\"x\"}", JP_ERR_INVALID,
                 "id: is required");
    expect_error(ENVELOPE_HEAD "\"foo\":1,\"type\":\"x\"}", JP_ERR_INVALID,
                 "type: unknown event type \"x\"");
    expect_error(ENVELOPE_HEAD "\"type\":\"com.idhub.account.delete\",\"subject\":\"jd\","
                               "\"time\":\"2026-11-22T10:00:00Z\",\"jirasite\":\"demo\","
                               "\"idhubactor\":\"a\",\"zz\":1,\"data\":{\"login\":\" \"}}",
                 JP_ERR_INVALID, "zz: unknown attribute");
    /* data: known fields in schema order, then unknown ones, then rules. */
    expect_error(ENVELOPE_HEAD "\"type\":\"com.idhub.account.update\",\"subject\":\"jd\","
                               "\"time\":\"2026-11-22T10:00:00Z\",\"jirasite\":\"demo\","
                               "\"idhubactor\":\"a\",\"data\":{\"zz\":1,\"timezone\":5,"
                               "\"email\":\"bad\",\"login\":\"jdoe\"}}",
                 JP_ERR_INVALID, "data.email: expected an email address, got \"bad\"");
    expect_error(ENVELOPE_HEAD "\"type\":\"com.idhub.account.update\",\"subject\":\"jd\","
                               "\"time\":\"2026-11-22T10:00:00Z\",\"jirasite\":\"demo\","
                               "\"idhubactor\":\"a\",\"data\":{\"zz\":1,\"login\":\"jdoe\"}}",
                 JP_ERR_INVALID, "data.zz: unknown field");
    expect_error(ENVELOPE_HEAD
                 "\"type\":\"com.idhub.account.update\",\"subject\":\"jd\","
                 "\"time\":\"2026-11-22T10:00:00Z\",\"jirasite\":\"demo\","
                 "\"idhubactor\":\"a\",\"data\":{\"login\":\"jdoe\",\"active\":true}}",
                 JP_ERR_INVALID, "subject: must equal data.login (\"jdoe\"), got \"jd\"");
}
END_TEST

START_TEST(from_json_references)
{
    json_error_t jerr;
    json_t *root = json_loads(small_event, 0, &jerr);
    ck_assert_ptr_nonnull(root);
    jp_event_t *ev = NULL;
    char err[256];
    ck_assert_int_eq(jp_event_from_json(root, &ev, err, sizeof err), JP_OK);
    ck_assert_ptr_eq(ev->root, root);
    ck_assert_int_eq(root->refcount, 2);
    json_decref(root); /* the event keeps its own reference */
    ck_assert_str_eq(jp_event_login(ev), "jdoe");
    jp_event_destroy(ev);

    root = json_pack("{s:s}", "specversion", "1.0");
    ck_assert_int_eq(jp_event_from_json(root, &ev, err, sizeof err), JP_ERR_INVALID);
    ck_assert_ptr_null(ev);
    ck_assert_str_eq(err, "id: is required");
    ck_assert_int_eq(root->refcount, 1);
    json_decref(root);
    ck_assert_int_eq(jp_event_from_json(NULL, &ev, err, sizeof err), JP_ERR_INVALID);

    /* Strings built without jansson's UTF-8 check are still checked. */
    root = json_loads(small_event, 0, &jerr);
    json_object_set_new(json_object_get(root, "data"), "login", json_stringn_nocheck("jd\0oe", 5));
    ck_assert_int_eq(jp_event_from_json(root, &ev, err, sizeof err), JP_ERR_INVALID);
    ck_assert_str_eq(err,
                     "data.login: must not contain control characters (found U+0000 at byte 2)");
    json_object_set_new(json_object_get(root, "data"), "login", json_stringn_nocheck("jd\xff", 3));
    ck_assert_int_eq(jp_event_from_json(root, &ev, err, sizeof err), JP_ERR_INVALID);
    ck_assert_str_eq(err, "data.login: is not valid UTF-8 (at byte 2)");
    json_decref(root);
}
END_TEST

/* Every prefix and many single-byte corruptions of valid events: never a
 * crash or a leak (ASan), always either an event or an error sentence. */
START_TEST(mangled_inputs)
{
    size_t len;
    char *buf = testfix_read(CORPUS "/valid/issue-create-full.json", &len);
    char err[512];
    for (size_t cut = 0; cut < len; cut++) {
        jp_event_t *ev = NULL;
        err[0] = '\0';
        jp_err_t rc = jp_event_decode(buf, cut, NULL, &ev, err, sizeof err);
        if (rc == JP_OK)
            jp_event_destroy(ev);
        else
            ck_assert_msg(err[0] != '\0' && ev == NULL, "no error text for prefix %zu", cut);
    }
    unsigned seed = 12345;
    static const char junk[] = "\"{}[],:\\ \n\x01\xff\xc3 0aZ";
    for (int round = 0; round < 4000; round++) {
        char *m = malloc(len);
        ck_assert_ptr_nonnull(m);
        memcpy(m, buf, len);
        for (int k = 0; k < 1 + round % 3; k++) {
            seed = seed * 1103515245u + 12345u;
            size_t pos = (seed >> 8) % len;
            m[pos] = junk[(seed >> 20) % (sizeof junk - 1)];
        }
        jp_event_t *ev = NULL;
        err[0] = '\0';
        if (jp_event_decode(m, len, NULL, &ev, err, sizeof err) == JP_OK)
            jp_event_destroy(ev);
        else
            ck_assert(err[0] != '\0');
        free(m);
    }
    free(buf);
}
END_TEST

/* ---- names and validators ----------------------------------------------- */

START_TEST(type_names)
{
    for (int t = 0; t < JP_EVENT__COUNT; t++) {
        const char *name = jp_event_type_name(t);
        const char *ce = jp_event_type_ce(t);
        ck_assert_ptr_nonnull(name);
        ck_assert_int_eq(jp_event_type_parse(name), t);
        ck_assert_int_eq(jp_event_type_parse(ce), t);
        ck_assert_int_eq(strncmp(ce, "com.idhub.", 10), 0);
        ck_assert_str_eq(ce + 10, name);
    }
    ck_assert_str_eq(jp_event_type_name(JP_EVENT_ACCOUNT_CREATE), "account.create");
    ck_assert_str_eq(jp_event_type_ce(JP_EVENT_RECON_REQUEST), "com.idhub.recon.request");
    ck_assert_ptr_null(jp_event_type_name(JP_EVENT__COUNT));
    ck_assert_ptr_null(jp_event_type_ce((jp_event_type_t)-1));
    ck_assert_int_eq(jp_event_type_parse("account.rename"), -1);
    ck_assert_int_eq(jp_event_type_parse("com.idhub."), -1);
    ck_assert_int_eq(jp_event_type_parse(NULL), -1);
    ck_assert_str_eq(jp_recon_mode_name(JP_RECON_FILTERED), "filtered");
    ck_assert_ptr_null(jp_recon_mode_name((jp_recon_mode_t)3));
}
END_TEST

START_TEST(attr_names)
{
    static const char *const want[JP_ATTR__COUNT] = {
        "login",    "email",      "firstName",        "lastName", "displayName", "nickName",
        "jobTitle", "department", "organizationName", "timezone", "externalId",
    };
    for (int a = 0; a < JP_ATTR__COUNT; a++) {
        ck_assert_str_eq(jp_attr_name(a), want[a]);
        ck_assert_int_eq(jp_attr_parse(want[a]), a);
    }
    ck_assert_ptr_null(jp_attr_name(JP_ATTR__COUNT));
    ck_assert_int_eq(jp_attr_parse("FirstName"), -1);
    ck_assert_int_eq(jp_attr_parse("active"), -1);
    ck_assert_int_eq(jp_attr_parse(NULL), -1);
}
END_TEST

START_TEST(time_parsing)
{
    int64_t ms = 1;
    ck_assert(jp_event_parse_time("1970-01-01T00:00:00Z", &ms));
    ck_assert_int_eq(ms, 0);
    ck_assert(jp_event_parse_time("2026-11-22T10:00:00Z", &ms));
    ck_assert_int_eq(ms, 1795341600000LL);
    ck_assert(jp_event_parse_time("2026-11-22T11:00:00+01:00", &ms));
    ck_assert_int_eq(ms, 1795341600000LL);
    ck_assert(jp_event_parse_time("2000-02-29T23:59:59.999999999z", &ms));
    ck_assert_int_eq(ms, 951868799999LL);
    ck_assert(jp_event_parse_time("1969-12-31T23:59:59Z", &ms));
    ck_assert_int_eq(ms, -1000);
    ck_assert(jp_event_parse_time("9999-12-31T23:59:59Z", &ms));
    ck_assert_int_eq(ms, 253402300799000LL);
    ck_assert(jp_event_parse_time("0001-01-01T00:00:00Z", &ms));
    ck_assert_int_eq(ms, -62135596800000LL);
    ck_assert(jp_event_parse_time("2024-02-29T00:00:00.1-23:59", NULL));
    static const char *const bad[] = {
        "",
        "2026-11-22",
        "2026-11-22T10:00Z",
        "2026-11-22T10:00:00",
        "2026-11-22T10:00:00.Z",
        "2026-11-22T10:00:00.1234567890Z",
        "2026-11-22T10:00:60Z",
        "2026-11-22T24:00:00Z",
        "2026-13-01T00:00:00Z",
        "2026-00-01T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "1900-02-29T00:00:00Z",
        "2026-04-31T00:00:00Z",
        "2026-11-22T10:00:00+24:00",
        "2026-11-22T10:00:00+01",
        "2026-11-22T10:00:00ZZ",
        "2026-11-22 10:00:00Z",
        "+2026-11-22T10:00:00Z",
        "2026-1-22T10:00:00Z",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(!jp_event_parse_time(bad[i], &ms), "accepted %s", bad[i]);
    ck_assert(!jp_event_parse_time(NULL, &ms));
}
END_TEST

START_TEST(validators)
{
    ck_assert(jp_event_valid_login("jdoe@demo.example"));
    ck_assert(jp_event_valid_login("\xe5\xb1\xb1\xe7\x94\xb0"));
    ck_assert(jp_event_valid_login("o'brien+tag@x.y"));
    ck_assert(!jp_event_valid_login(""));
    ck_assert(!jp_event_valid_login("a b"));
    ck_assert(!jp_event_valid_login("a\tb"));
    ck_assert(!jp_event_valid_login("a/b"));
    ck_assert(!jp_event_valid_login("a\xe3\x80\x80"
                                    "b"));         /* U+3000 */
    ck_assert(!jp_event_valid_login("a\xc2\x85")); /* U+0085 */
    ck_assert(!jp_event_valid_login("a\xff"));
    ck_assert(!jp_event_valid_login(NULL));
    char login[300];
    memset(login, 'x', 256);
    login[256] = '\0';
    ck_assert(jp_event_valid_login(login));
    login[256] = 'x';
    login[257] = '\0';
    ck_assert(!jp_event_valid_login(login));

    ck_assert(jp_event_valid_site("demo"));
    ck_assert(jp_event_valid_site("acme_eu-2"));
    ck_assert(!jp_event_valid_site("Demo"));
    ck_assert(!jp_event_valid_site(""));
    ck_assert(!jp_event_valid_site("a.b"));

    ck_assert(jp_event_valid_project_key("DEMO"));
    ck_assert(jp_event_valid_project_key("A1"));
    ck_assert(jp_event_valid_project_key("ABCDEFGHIJ"));
    ck_assert(!jp_event_valid_project_key("ABCDEFGHIJK"));
    ck_assert(!jp_event_valid_project_key("A"));
    ck_assert(!jp_event_valid_project_key("1A"));
    ck_assert(!jp_event_valid_project_key("DE_MO"));

    ck_assert(jp_event_valid_issue_key("DEMO-1"));
    ck_assert(jp_event_valid_issue_key("A1-999999999999999999"));
    ck_assert(!jp_event_valid_issue_key("A1-1000000000000000000"));
    ck_assert(!jp_event_valid_issue_key("DEMO-0"));
    ck_assert(!jp_event_valid_issue_key("DEMO-01"));
    ck_assert(!jp_event_valid_issue_key("DEMO-"));
    ck_assert(!jp_event_valid_issue_key("DEMO"));
    ck_assert(!jp_event_valid_issue_key("D-1"));
    ck_assert(!jp_event_valid_issue_key("DEMO-1a"));

    ck_assert(jp_event_valid_ref("idhub:req:1001"));
    ck_assert(jp_event_valid_ref("A-z_0.9:x"));
    ck_assert(!jp_event_valid_ref("a b"));
    ck_assert(!jp_event_valid_ref(""));
    ck_assert(!jp_event_valid_ref("a/b"));

    ck_assert(
        jp_event_valid_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
    ck_assert(
        !jp_event_valid_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
    ck_assert(
        !jp_event_valid_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"));
    ck_assert(
        !jp_event_valid_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0"));
    ck_assert(
        !jp_event_valid_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-"));
}
END_TEST

static Suite *event_suite(void)
{
    Suite *s = suite_create("event");
    TCase *tc = tcase_create("corpus");
    tcase_add_loop_test(tc, valid_corpus_typed, 0, (int)N_VALID);
    tcase_add_loop_test(tc, valid_corpus_compacted, 0, (int)N_VALID);
    tcase_add_test(tc, valid_corpus_complete);
    tcase_add_test(tc, invalid_corpus);
    tcase_add_test(tc, samples_per_type);
    tcase_add_test(tc, samples_demo_story);
    suite_add_tcase(s, tc);

    tc = tcase_create("api");
    tcase_add_test(tc, default_size_limit);
    tcase_add_test(tc, errstr_edges);
    tcase_add_test(tc, quoting_in_errors);
    tcase_add_test(tc, syntax_errors_one_line);
    tcase_add_test(tc, first_error_wins);
    tcase_add_test(tc, from_json_references);
    tcase_add_test(tc, mangled_inputs);
    tcase_add_test(tc, type_names);
    tcase_add_test(tc, attr_names);
    tcase_add_test(tc, time_parsing);
    tcase_add_test(tc, validators);
    suite_add_tcase(s, tc);
    return s;
}

JP_CHECK_MAIN(event_suite)
