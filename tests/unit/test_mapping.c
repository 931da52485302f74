#include "jiraprov/mapping.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/check_main.h"
#include "../lib/fixture.h"

#define CORE  JP_SCIM_SCHEMA_USER
#define ENT   JP_SCIM_SCHEMA_ENTERPRISE
#define PATCH JP_SCIM_SCHEMA_PATCHOP

/* The config's default table (worker/config.c, config/jiraprov.example.yaml). */
static jp_config_mapping_t default_table[] = {
    {"login", "userName", JP_CONFIG_DIR_BOTH},
    {"email", "emails[primary].value", JP_CONFIG_DIR_BOTH},
    {"firstName", "name.givenName", JP_CONFIG_DIR_BOTH},
    {"lastName", "name.familyName", JP_CONFIG_DIR_BOTH},
    {"displayName", "displayName", JP_CONFIG_DIR_BOTH},
    {"nickName", "nickName", JP_CONFIG_DIR_BOTH},
    {"jobTitle", "title", JP_CONFIG_DIR_BOTH},
    {"department", "department", JP_CONFIG_DIR_BOTH},
    {"organizationName", "organization", JP_CONFIG_DIR_BOTH},
    {"timezone", "timezone", JP_CONFIG_DIR_BOTH},
    {"externalId", "externalId", JP_CONFIG_DIR_BOTH},
};
#define N_DEFAULT (sizeof(default_table) / sizeof(*default_table))

static char errstr[512];

static jp_mapping_t *compile(const jp_config_mapping_t *t, size_t n)
{
    errstr[0] = '\0';
    jp_mapping_t *m = jp_mapping_new(t, n, errstr, sizeof(errstr));
    ck_assert_msg(m != NULL, "jp_mapping_new: %s", errstr);
    return m;
}

static jp_mapping_t *default_mapping(void)
{
    return compile(default_table, N_DEFAULT);
}

static json_t *parse(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    ck_assert_msg(j != NULL, "bad JSON in test (%s): %s", e.text, text);
    return j;
}

static json_t *fixture(void)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/tests/unit/data/mapping/scim_user.json", testfix_source_dir());
    json_error_t e;
    json_t *j = json_load_file(path, 0, &e);
    ck_assert_msg(j != NULL, "%s: %s", path, e.text);
    return j;
}

/* Compares semantically, and prints both sides sorted when they differ. */
static void assert_json(const json_t *got, const char *expected)
{
    json_t *want = parse(expected);
    if (!json_equal(got, want)) {
        char *g = got ? json_dumps(got, JSON_SORT_KEYS | JSON_COMPACT) : NULL;
        char *w = json_dumps(want, JSON_SORT_KEYS | JSON_COMPACT);
        ck_abort_msg("JSON differs\n got: %s\nwant: %s", g ? g : "(null)", w);
    }
    json_decref(want);
}

static void set(jp_account_attrs_t *a, jp_attr_t attr, const char *v)
{
    a->attr[attr].state = v ? JP_VALUE : JP_NULL;
    a->attr[attr].value = v;
}

static jp_account_attrs_t full_account(void)
{
    jp_account_attrs_t a;
    memset(&a, 0, sizeof(a));
    set(&a, JP_ATTR_LOGIN, "jdoe@demo.example");
    set(&a, JP_ATTR_EMAIL, "jdoe@demo.example");
    set(&a, JP_ATTR_FIRST_NAME, "Jane");
    set(&a, JP_ATTR_LAST_NAME, "Doe");
    set(&a, JP_ATTR_DISPLAY_NAME, "Jane Doe");
    set(&a, JP_ATTR_NICK_NAME, "jd");
    set(&a, JP_ATTR_JOB_TITLE, "Engineer");
    set(&a, JP_ATTR_DEPARTMENT, "R&D");
    set(&a, JP_ATTR_ORGANIZATION_NAME, "Demo Corp");
    set(&a, JP_ATTR_TIMEZONE, "Europe/Berlin");
    set(&a, JP_ATTR_EXTERNAL_ID, "idhub-u-1001");
    a.active_state = JP_VALUE;
    a.active = true;
    return a;
}

/* An update event: login plus what the test sets. */
static jp_account_attrs_t update_of(void)
{
    jp_account_attrs_t a;
    memset(&a, 0, sizeof(a));
    set(&a, JP_ATTR_LOGIN, "jdoe@demo.example");
    return a;
}

static json_t *create_body(const jp_mapping_t *m, const jp_account_attrs_t *a)
{
    json_t *body = NULL;
    jp_err_t rc = jp_mapping_scim_user_for_create(m, a, &body, errstr, sizeof(errstr));
    ck_assert_msg(rc == JP_OK, "create: %s", errstr);
    ck_assert_ptr_nonnull(body);
    return body;
}

/* Runs a patch that must succeed; returns the body (NULL = no change). */
static json_t *patch(const jp_mapping_t *m, const jp_account_attrs_t *a, const json_t *cur,
                     jp_mapping_changes_t *ch)
{
    json_t *body = NULL;
    jp_err_t rc = jp_mapping_scim_patch(m, a, cur, &body, ch, errstr, sizeof(errstr));
    ck_assert_msg(rc == JP_OK, "patch: %s", errstr);
    ck_assert_int_eq(ch->count == 0, body == NULL);
    return body;
}

static void assert_changes(const jp_mapping_changes_t *ch, const char *expected)
{
    json_t *names = jp_mapping_changes_names(ch);
    assert_json(names, expected);
    json_decref(names);
}

/* A deep copy with every object's keys in reverse order. */
static json_t *reversed(const json_t *j)
{
    if (json_is_array(j)) {
        json_t *out = json_array();
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v)
        {
            json_array_append_new(out, reversed(v));
        }
        return out;
    }
    if (!json_is_object(j))
        return json_deep_copy(j);
    const char *keys[64];
    size_t n = 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)j, k, v)
    {
        if (n < 64)
            keys[n++] = k;
    }
    ck_assert_uint_lt(n, 64);
    json_t *out = json_object();
    while (n--)
        json_object_set_new(out, keys[n], reversed(json_object_get(j, keys[n])));
    return out;
}

/* ---- create ----------------------------------------------------------------- */

START_TEST(create_default_mapping)
{
    jp_mapping_t *m = default_mapping();
    jp_account_attrs_t a = full_account();
    json_t *body = create_body(m, &a);
    assert_json(body, "{\"schemas\":[\"" CORE "\"],"
                      "\"userName\":\"jdoe@demo.example\","
                      "\"emails\":[{\"value\":\"jdoe@demo.example\",\"type\":\"work\","
                      "\"primary\":true}],"
                      "\"name\":{\"givenName\":\"Jane\",\"familyName\":\"Doe\"},"
                      "\"displayName\":\"Jane Doe\",\"nickName\":\"jd\",\"title\":\"Engineer\","
                      "\"department\":\"R&D\",\"organization\":\"Demo Corp\","
                      "\"timezone\":\"Europe/Berlin\",\"externalId\":\"idhub-u-1001\","
                      "\"active\":true}");
    /* Also the exact serialisation: attributes in jp_attr_t order, so request
     * bodies (and their logs) are reproducible. */
    char *text = json_dumps(body, JSON_COMPACT);
    ck_assert_str_eq(text,
                     "{\"schemas\":[\"" CORE "\"],\"userName\":\"jdoe@demo.example\","
                     "\"emails\":[{\"value\":\"jdoe@demo.example\",\"type\":\"work\","
                     "\"primary\":true}],\"name\":{\"givenName\":\"Jane\",\"familyName\":\"Doe\"},"
                     "\"displayName\":\"Jane Doe\",\"nickName\":\"jd\",\"title\":\"Engineer\","
                     "\"department\":\"R&D\",\"organization\":\"Demo Corp\","
                     "\"timezone\":\"Europe/Berlin\",\"externalId\":\"idhub-u-1001\","
                     "\"active\":true}");
    free(text);
    json_decref(body);
    jp_mapping_destroy(m);
}
END_TEST

START_TEST(create_minimal_inactive)
{
    jp_mapping_t *m = default_mapping();
    jp_account_attrs_t a = update_of();
    set(&a, JP_ATTR_EMAIL, "JDoe@Demo.Example");
    set(&a, JP_ATTR_FIRST_NAME, "Jane"); /* no lastName: name.formatted is not invented */
    set(&a, JP_ATTR_NICK_NAME, "");      /* "" is no value: left out */
    a.active_state = JP_VALUE;
    a.active = false;
    json_t *body = create_body(m, &a);
    assert_json(body, "{\"schemas\":[\"" CORE "\"],\"userName\":\"jdoe@demo.example\","
                      "\"emails\":[{\"value\":\"JDoe@Demo.Example\",\"type\":\"work\","
                      "\"primary\":true}],\"name\":{\"givenName\":\"Jane\"},\"active\":false}");
    json_decref(body);

    /* An absent `active` on create: the decoder has already put true there. */
    a.active_state = JP_ABSENT;
    a.active = true;
    body = create_body(m, &a);
    ck_assert(json_is_true(json_object_get(body, "active")));
    json_decref(body);
    jp_mapping_destroy(m);
}
END_TEST

START_TEST(create_requires_username_and_emails)
{
    jp_config_mapping_t t[] = {
        {"login", "userName", JP_CONFIG_DIR_FROM_JIRA},
        {"email", "emails[primary].value", JP_CONFIG_DIR_BOTH},
    };
    jp_mapping_t *m = compile(t, 2);
    jp_account_attrs_t a = full_account();
    json_t *body = (json_t *)1;
    ck_assert_int_eq(jp_mapping_scim_user_for_create(m, &a, &body, errstr, sizeof(errstr)),
                     JP_ERR_INVALID);
    ck_assert_ptr_null(body);
    ck_assert_msg(strstr(errstr, "no userName") && strstr(errstr, "login"), "%s", errstr);
    jp_mapping_destroy(m);

    t[0].direction = JP_CONFIG_DIR_BOTH;
    m = compile(t, 1); /* email unmapped */
    ck_assert_int_eq(jp_mapping_scim_user_for_create(m, &a, &body, errstr, sizeof(errstr)),
                     JP_ERR_INVALID);
    ck_assert_msg(strstr(errstr, "no emails"), "%s", errstr);

    ck_assert_int_eq(jp_mapping_scim_user_for_create(NULL, &a, &body, errstr, sizeof(errstr)),
                     JP_ERR_INVALID);
    ck_assert_int_eq(jp_mapping_scim_user_for_create(m, NULL, &body, errstr, sizeof(errstr)),
                     JP_ERR_INVALID);
    ck_assert_int_eq(jp_mapping_scim_user_for_create(m, &a, NULL, errstr, sizeof(errstr)),
                     JP_ERR_INVALID);

    /* Invalid UTF-8 from a caller that bypassed the decoder: refused, no crash. */
    set(&a, JP_ATTR_LOGIN, "bad\xC3");
    ck_assert_int_eq(jp_mapping_scim_user_for_create(m, &a, &body, errstr, sizeof(errstr)),
                     JP_ERR_INVALID);
    ck_assert_msg(strstr(errstr, "login: the value is not valid UTF-8"), "%s", errstr);
    ck_assert_ptr_null(body);
    jp_mapping_destroy(m);
}
END_TEST

/* ---- directions ------------------------------------------------------------- */

START_TEST(direction_rules)
{
    jp_config_mapping_t t[] = {
        {"login", "userName", JP_CONFIG_DIR_BOTH},
        {"email", "emails[primary].value", JP_CONFIG_DIR_BOTH},
        {"firstName", "name.givenName", JP_CONFIG_DIR_FROM_JIRA},
        {"lastName", "name.familyName", JP_CONFIG_DIR_TO_JIRA},
    };
    jp_mapping_t *m = compile(t, 4);
    ck_assert(jp_mapping_writes(m, JP_ATTR_LAST_NAME));
    ck_assert(!jp_mapping_reads(m, JP_ATTR_LAST_NAME));
    ck_assert(jp_mapping_reads(m, JP_ATTR_FIRST_NAME));
    ck_assert(!jp_mapping_writes(m, JP_ATTR_FIRST_NAME));
    ck_assert(!jp_mapping_writes(m, JP_ATTR_DEPARTMENT) &&
              !jp_mapping_reads(m, JP_ATTR_DEPARTMENT));
    ck_assert(!jp_mapping_writes(m, JP_ATTR__COUNT) && !jp_mapping_reads(m, (jp_attr_t)-1));

    /* from_jira is never written, by create or by patch. */
    jp_account_attrs_t a = full_account();
    json_t *body = create_body(m, &a);
    assert_json(body, "{\"schemas\":[\"" CORE "\"],\"userName\":\"jdoe@demo.example\","
                      "\"emails\":[{\"value\":\"jdoe@demo.example\",\"type\":\"work\","
                      "\"primary\":true}],\"name\":{\"familyName\":\"Doe\"},\"active\":true}");
    json_decref(body);

    json_t *user = fixture();
    jp_account_attrs_t u = update_of();
    set(&u, JP_ATTR_FIRST_NAME, "Janet");
    set(&u, JP_ATTR_DEPARTMENT, "Platform"); /* unmapped: ignored */
    jp_mapping_changes_t ch;
    ck_assert_ptr_null(patch(m, &u, user, &ch));
    set(&u, JP_ATTR_LAST_NAME, "Dough");
    body = patch(m, &u, user, &ch);
    assert_json(body, "{\"schemas\":[\"" PATCH "\"],\"Operations\":[{\"op\":\"replace\","
                      "\"path\":\"name.familyName\",\"value\":\"Dough\"}]}");
    assert_changes(&ch, "[\"lastName\"]");
    json_decref(body);

    /* to_jira is never read back, by the record or by the fingerprint. */
    json_t *rec = NULL;
    ck_assert_int_eq(jp_mapping_idhub_from_scim(m, user, &rec, errstr, sizeof(errstr)), JP_OK);
    assert_json(json_object_get(rec, "attributes"),
                "{\"login\":\"jdoe@demo.example\",\"email\":\"jdoe@demo.example\","
                "\"firstName\":\"Jane\"}");
    json_decref(rec);
    uint64_t fp = jp_mapping_fingerprint(m, user);
    json_object_set_new(json_object_get(user, "name"), "familyName", json_string("Other"));
    ck_assert_uint_eq(fp, jp_mapping_fingerprint(m, user));
    json_object_set_new(json_object_get(user, "name"), "givenName", json_string("Other"));
    ck_assert_uint_ne(fp, jp_mapping_fingerprint(m, user));
    json_decref(user);
    jp_mapping_destroy(m);
}
END_TEST

/* ---- patch ------------------------------------------------------------------ */

START_TEST(patch_no_change)
{
    jp_mapping_t *m = default_mapping();
    json_t *user = fixture();
    jp_account_attrs_t a = full_account();
    /* login and email differ only in case: the same to Atlassian. */
    set(&a, JP_ATTR_LOGIN, "JDOE@demo.example");
    set(&a, JP_ATTR_EMAIL, "jdoe@DEMO.EXAMPLE");
    jp_mapping_changes_t ch;
    memset(&ch, 0xff, sizeof(ch));
    json_t *body = (json_t *)1;
    ck_assert_int_eq(jp_mapping_scim_patch(m, &a, user, &body, &ch, errstr, sizeof(errstr)), JP_OK);
    ck_assert_ptr_null(body);
    ck_assert_uint_eq(ch.count, 0);
    ck_assert_uint_eq(ch.n_attrs, 0);
    ck_assert(!ch.active);
    assert_changes(&ch, "[]");

    /* Clearing what has no value: missing, null and "" are all no value. */
    jp_account_attrs_t u = update_of();
    set(&u, JP_ATTR_NICK_NAME, NULL);
    json_object_del(user, "nickName");
    ck_assert_ptr_null(patch(m, &u, user, &ch));
    json_object_set_new(user, "nickName", json_null());
    ck_assert_ptr_null(patch(m, &u, user, &ch));
    json_object_set_new(user, "nickName", json_string(""));
    ck_assert_ptr_null(patch(m, &u, user, &ch));
    set(&u, JP_ATTR_NICK_NAME, "");
    ck_assert_ptr_null(patch(m, &u, user, &ch));

    /* Attribute names are matched without regard to case. */
    json_object_set_new(user, "DisplayName", json_string("Jane Doe"));
    json_object_del(user, "displayName");
    set(&u, JP_ATTR_DISPLAY_NAME, "Jane Doe");
    ck_assert_ptr_null(patch(m, &u, user, &ch));

    /* changes may be NULL. */
    body = (json_t *)1;
    ck_assert_int_eq(jp_mapping_scim_patch(m, &u, user, &body, NULL, errstr, sizeof(errstr)),
                     JP_OK);
    ck_assert_ptr_null(body);
    json_decref(user);
    jp_mapping_destroy(m);
}
END_TEST

START_TEST(patch_one_change)
{
    jp_mapping_t *m = default_mapping();
    json_t *user = fixture();
    jp_account_attrs_t a = full_account();
    set(&a, JP_ATTR_DEPARTMENT, "Platform");
    jp_mapping_changes_t ch;
    json_t *body = patch(m, &a, user, &ch);
    assert_json(body, "{\"schemas\":[\"" PATCH "\"],\"Operations\":[{\"op\":\"replace\","
                      "\"path\":\"department\",\"value\":\"Platform\"}]}");
    ck_assert_uint_eq(ch.count, 1);
    ck_assert_uint_eq(ch.n_attrs, 1);
    ck_assert_int_eq(ch.attrs[0], JP_ATTR_DEPARTMENT);
    assert_changes(&ch, "[\"department\"]");
    json_decref(body);

    /* Case matters for everything but login and email. */
    a = update_of();
    set(&a, JP_ATTR_DISPLAY_NAME, "jane doe");
    body = patch(m, &a, user, &ch);
    assert_json(body, "{\"schemas\":[\"" PATCH "\"],\"Operations\":[{\"op\":\"replace\","
                      "\"path\":\"displayName\",\"value\":\"jane doe\"}]}");
    json_decref(body);
    json_decref(user);
    jp_mapping_destroy(m);
}
END_TEST

START_TEST(patch_clear_removes)
{
    jp_mapping_t *m = default_mapping();
    json_t *user = fixture();
    jp_account_attrs_t a = update_of();
    set(&a, JP_ATTR_NICK_NAME, NULL);
    set(&a, JP_ATTR_FIRST_NAME, ""); /* "" is no value too */
    jp_mapping_changes_t ch;
    json_t *body = patch(m, &a, user, &ch);
    assert_json(body, "{\"schemas\":[\"" PATCH "\"],\"Operations\":["
                      "{\"op\":\"remove\",\"path\":\"name.givenName\"},"
                      "{\"op\":\"remove\",\"path\":\"nickName\"}]}");
    assert_changes(&ch, "[\"firstName\",\"nickName\"]");
    json_decref(body);
    json_decref(user);
    jp_mapping_destroy(m);
}
END_TEST

START_TEST(patch_email_change)
{
    jp_mapping_t *m = default_mapping();
    json_t *user = fixture();
    jp_account_attrs_t a = update_of();
    set(&a, JP_ATTR_EMAIL, "jane.doe@demo.example");
    jp_mapping_changes_t ch;
    json_t *body = patch(m, &a, user, &ch);
    /* The primary entry gets the new value; the home address is kept. */
    assert_json(body, "{\"schemas\":[\"" PATCH "\"],\"Operations\":[{\"op\":\"replace\","
                      "\"path\":\"emails\",\"value\":["
                      "{\"value\":\"jane.doe@demo.example\",\"type\":\"work\",\"primary\":true},"
                      "{\"value\":\"jane.doe@home.example\",\"type\":\"home\",\"primary\":false}"
                      "]}]}");
    assert_changes(&ch, "[\"email\"]");
    json_decref(body);
    /* The current user is only read. */
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_array_get(json_object_get(user, "emails"), 0), "value")),
                     "jdoe@demo.example");

    /* No entry marked primary: the first one is the de facto primary; it is
     * the one read, and the one changed (and marked). */
    json_t *emails = json_object_get(user, "emails");
    json_array_remove(emails, 0);
    json_object_del(json_array_get(emails, 0), "primary");
    json_array_append_new(emails, parse("{\"value\":\"other@demo.example\"}"));
    char buf[32];
    ck_assert_str_eq(jp_mapping_scim_value(m, JP_ATTR_EMAIL, user, buf, sizeof(buf)),
                     "jane.doe@home.example");
    body = patch(m, &a, user, &ch);
    assert_json(body, "{\"schemas\":[\"" PATCH "\"],\"Operations\":[{\"op\":\"replace\","
                      "\"path\":\"emails\",\"value\":["
                      "{\"value\":\"jane.doe@demo.example\",\"type\":\"home\",\"primary\":true},"
                      "{\"value\":\"other@demo.example\"}]}]}");
    json_decref(body);

    /* An empty array: a primary work entry is appended. */
    json_object_set_new(user, "emails", json_array());
    body = patch(m, &a, user, &ch);
    assert_json(body, "{\"schemas\":[\"" PATCH "\"],\"Operations\":[{\"op\":\"replace\","
                      "\"path\":\"emails\",\"value\":["
                      "{\"value\":\"jane.doe@demo.example\",\"type\":\"work\",\"primary\":true}"
                      "]}]}");
    json_decref(body);

    /* emails missing or of the wrong type: replaced by a fresh array. */
    json_object_set_new(user, "emails", json_string("garbage"));
    body = patch(m, &a, user, &ch);
    assert_json(body, "{\"schemas\":[\"" PATCH "\"],\"Operations\":[{\"op\":\"replace\","
                      "\"path\":\"emails\",\"value\":["
                      "{\"value\":\"jane.doe@demo.example\",\"type\":\"work\",\"primary\":true}"
                      "]}]}");
    json_decref(body);
    json_decref(user);
    jp_mapping_destroy(m);
}
END_TEST

START_TEST(patch_active)
{
    jp_mapping_t *m = default_mapping();
    json_t *user = fixture();
    jp_account_attrs_t a = update_of();
    a.active_state = JP_VALUE;
    a.active = true;
    jp_mapping_changes_t ch;
    ck_assert_ptr_null(patch(m, &a, user, &ch));
    a.active = false;
    json_t *body = patch(m, &a, user, &ch);
    assert_json(body, "{\"schemas\":[\"" PATCH "\"],\"Operations\":[{\"op\":\"replace\","
                      "\"path\":\"active\",\"value\":false}]}");
    ck_assert(ch.active);
    ck_assert_uint_eq(ch.count, 1);
    ck_assert_uint_eq(ch.n_attrs, 0);
    assert_changes(&ch, "[\"active\"]");
    json_decref(body);

    /* An absent active never produces an operation, a missing one always. */
    a.active_state = JP_ABSENT;
    ck_assert_ptr_null(patch(m, &a, user, &ch));
    json_object_del(user, "active");
    a.active_state = JP_VALUE;
    a.active = true;
    body = patch(m, &a, user, &ch);
    assert_changes(&ch, "[\"active\"]");
    json_decref(body);
    json_decref(user);
    jp_mapping_destroy(m);
}
END_TEST

START_TEST(patch_several_in_order)
{
    jp_mapping_t *m = default_mapping();
    json_t *user = fixture();
    jp_account_attrs_t a = full_account();
    set(&a, JP_ATTR_JOB_TITLE, "Senior Engineer");
    set(&a, JP_ATTR_LAST_NAME, "Doe-Smith");
    set(&a, JP_ATTR_EMAIL, "jane.doe-smith@demo.example");
    set(&a, JP_ATTR_TIMEZONE, NULL);
    a.active = false;
    jp_mapping_changes_t ch;
    json_t *body = patch(m, &a, user, &ch);
    assert_json(body,
                "{\"schemas\":[\"" PATCH "\"],\"Operations\":["
                "{\"op\":\"replace\",\"path\":\"emails\",\"value\":["
                "{\"value\":\"jane.doe-smith@demo.example\",\"type\":\"work\",\"primary\":true},"
                "{\"value\":\"jane.doe@home.example\",\"type\":\"home\",\"primary\":false}]},"
                "{\"op\":\"replace\",\"path\":\"name.familyName\",\"value\":\"Doe-Smith\"},"
                "{\"op\":\"replace\",\"path\":\"title\",\"value\":\"Senior Engineer\"},"
                "{\"op\":\"remove\",\"path\":\"timezone\"},"
                "{\"op\":\"replace\",\"path\":\"active\",\"value\":false}]}");
    ck_assert_uint_eq(ch.count, 5);
    assert_changes(&ch, "[\"email\",\"lastName\",\"jobTitle\",\"timezone\",\"active\"]");
    json_decref(body);
    json_decref(user);
    jp_mapping_destroy(m);
}
END_TEST

START_TEST(patch_errors)
{
    jp_mapping_t *m = default_mapping();
    jp_account_attrs_t a = update_of();
    jp_mapping_changes_t ch;
    json_t *body = (json_t *)1;
    json_t *arr = json_array();
    ck_assert_int_eq(jp_mapping_scim_patch(m, &a, arr, &body, &ch, errstr, sizeof(errstr)),
                     JP_ERR_INVALID);
    ck_assert_ptr_null(body);
    ck_assert_str_eq(errstr, "patch: the current SCIM user is not a JSON object");
    ck_assert_int_eq(jp_mapping_scim_patch(m, &a, NULL, &body, &ch, errstr, sizeof(errstr)),
                     JP_ERR_INVALID);
    ck_assert_int_eq(jp_mapping_scim_patch(NULL, &a, arr, &body, &ch, errstr, sizeof(errstr)),
                     JP_ERR_INVALID);
    ck_assert_int_eq(jp_mapping_scim_patch(m, &a, arr, NULL, &ch, errstr, sizeof(errstr)),
                     JP_ERR_INVALID);
    json_decref(arr);

    json_t *user = fixture();
    set(&a, JP_ATTR_DISPLAY_NAME, "Jane \xED\xA0\x80"); /* a UTF-16 surrogate */
    ck_assert_int_eq(jp_mapping_scim_patch(m, &a, user, &body, &ch, errstr, sizeof(errstr)),
                     JP_ERR_INVALID);
    ck_assert_ptr_null(body);
    ck_assert_uint_eq(ch.count, 0);
    ck_assert_str_eq(errstr, "displayName: the value is not valid UTF-8");

    /* Odd shapes in the current user read as no value, never crash. */
    a = update_of();
    set(&a, JP_ATTR_FIRST_NAME, "Jane");
    json_object_set_new(user, "name", json_string("Jane Doe"));
    body = patch(m, &a, user, &ch);
    assert_json(body, "{\"schemas\":[\"" PATCH "\"],\"Operations\":[{\"op\":\"replace\","
                      "\"path\":\"name.givenName\",\"value\":\"Jane\"}]}");
    json_decref(body);
    json_decref(user);
    jp_mapping_destroy(m);
}
END_TEST

START_TEST(type_filters)
{
    jp_config_mapping_t t[] = {
        {"login", "userName", JP_CONFIG_DIR_BOTH},
        {"email", "emails[type eq \"work\"].value", JP_CONFIG_DIR_BOTH},
        {"nickName", "phoneNumbers[type eq \"mobile\"].value", JP_CONFIG_DIR_BOTH},
        {"timezone", "phoneNumbers[type eq \"work\"].value", JP_CONFIG_DIR_BOTH},
    };
    jp_mapping_t *m = compile(t, 4);
    jp_account_attrs_t a = update_of();
    set(&a, JP_ATTR_EMAIL, "jdoe@demo.example");
    set(&a, JP_ATTR_NICK_NAME, "+49 170 1");
    set(&a, JP_ATTR_TIMEZONE, "+49 30 2");
    a.active = true;
    /* emails without a primary entry: the first is marked primary. */
    json_t *body = create_body(m, &a);
    assert_json(body, "{\"schemas\":[\"" CORE "\"],\"userName\":\"jdoe@demo.example\","
                      "\"emails\":[{\"value\":\"jdoe@demo.example\",\"type\":\"work\","
                      "\"primary\":true}],"
                      "\"phoneNumbers\":[{\"value\":\"+49 170 1\",\"type\":\"mobile\"},"
                      "{\"value\":\"+49 30 2\",\"type\":\"work\"}],\"active\":true}");
    json_decref(body);

    /* Reading: the type is compared without regard to case. */
    json_t *user = fixture();
    char buf[32];
    json_object_set_new(json_array_get(json_object_get(user, "phoneNumbers"), 0), "type",
                        json_string("WORK"));
    ck_assert_str_eq(jp_mapping_scim_value(m, JP_ATTR_TIMEZONE, user, buf, sizeof(buf)),
                     "+49 30 1234567");
    ck_assert_ptr_null(jp_mapping_scim_value(m, JP_ATTR_NICK_NAME, user, buf, sizeof(buf)));

    /* Both phone numbers change: one operation carrying both. */
    jp_account_attrs_t u = update_of();
    set(&u, JP_ATTR_NICK_NAME, "+49 170 1");
    set(&u, JP_ATTR_TIMEZONE, "+49 30 2");
    jp_mapping_changes_t ch;
    body = patch(m, &u, user, &ch);
    assert_json(body, "{\"schemas\":[\"" PATCH "\"],\"Operations\":[{\"op\":\"replace\","
                      "\"path\":\"phoneNumbers\",\"value\":["
                      "{\"value\":\"+49 30 2\",\"type\":\"WORK\"},"
                      "{\"value\":\"+49 170 1\",\"type\":\"mobile\"}]}]}");
    assert_changes(&ch, "[\"nickName\",\"timezone\"]");
    json_decref(body);

    /* Clearing the only entry's value drops the entry, then the attribute. */
    u = update_of();
    set(&u, JP_ATTR_TIMEZONE, NULL);
    body = patch(m, &u, user, &ch);
    assert_json(body, "{\"schemas\":[\"" PATCH "\"],\"Operations\":["
                      "{\"op\":\"remove\",\"path\":\"phoneNumbers\"}]}");
    json_decref(body);
    json_array_append_new(json_object_get(user, "phoneNumbers"),
                          parse("{\"value\":\"+49 170 9\",\"type\":\"mobile\"}"));
    body = patch(m, &u, user, &ch);
    assert_json(body, "{\"schemas\":[\"" PATCH "\"],\"Operations\":[{\"op\":\"replace\","
                      "\"path\":\"phoneNumbers\",\"value\":["
                      "{\"value\":\"+49 170 9\",\"type\":\"mobile\"}]}]}");
    json_decref(body);
    json_decref(user);
    jp_mapping_destroy(m);
}
END_TEST

START_TEST(clear_other_sub_attribute)
{
    jp_config_mapping_t t[] = {
        {"login", "userName", JP_CONFIG_DIR_BOTH},
        {"displayName", "emails[primary].display", JP_CONFIG_DIR_BOTH},
    };
    jp_mapping_t *m = compile(t, 2);
    json_t *user = fixture();
    json_object_set_new(json_array_get(json_object_get(user, "emails"), 0), "Display",
                        json_string("Work"));
    jp_account_attrs_t u = update_of();
    set(&u, JP_ATTR_DISPLAY_NAME, NULL);
    jp_mapping_changes_t ch;
    json_t *body = patch(m, &u, user, &ch);
    /* Only that key goes; the entry stays. */
    assert_json(body, "{\"schemas\":[\"" PATCH "\"],\"Operations\":[{\"op\":\"replace\","
                      "\"path\":\"emails\",\"value\":["
                      "{\"value\":\"jdoe@demo.example\",\"type\":\"work\",\"primary\":true},"
                      "{\"value\":\"jane.doe@home.example\",\"type\":\"home\",\"primary\":false}"
                      "]}]}");
    json_decref(body);
    set(&u, JP_ATTR_DISPLAY_NAME, "Office");
    body = patch(m, &u, user, &ch);
    assert_json(body, "{\"schemas\":[\"" PATCH "\"],\"Operations\":[{\"op\":\"replace\","
                      "\"path\":\"emails\",\"value\":["
                      "{\"value\":\"jdoe@demo.example\",\"type\":\"work\",\"primary\":true,"
                      "\"display\":\"Office\"},"
                      "{\"value\":\"jane.doe@home.example\",\"type\":\"home\",\"primary\":false}"
                      "]}]}");
    json_decref(body);
    json_decref(user);
    jp_mapping_destroy(m);
}
END_TEST

/* ---- enterprise extension --------------------------------------------------- */

START_TEST(enterprise_extension)
{
    jp_config_mapping_t t[] = {
        {"login", "userName", JP_CONFIG_DIR_BOTH},
        {"email", "emails[primary].value", JP_CONFIG_DIR_BOTH},
        {"department", ENT ":department", JP_CONFIG_DIR_BOTH},
        {"organizationName", ENT ":organization", JP_CONFIG_DIR_BOTH},
        {"nickName", ENT ":manager.displayName", JP_CONFIG_DIR_BOTH},
    };
    jp_mapping_t *m = compile(t, 5);
    ck_assert_str_eq(jp_mapping_scim_path(m, JP_ATTR_DEPARTMENT), ENT ":department");
    ck_assert_str_eq(jp_mapping_scim_path(m, JP_ATTR_NICK_NAME), ENT ":manager.displayName");

    jp_account_attrs_t a = full_account();
    json_t *body = create_body(m, &a);
    assert_json(body, "{\"schemas\":[\"" CORE "\",\"" ENT "\"],"
                      "\"userName\":\"jdoe@demo.example\","
                      "\"emails\":[{\"value\":\"jdoe@demo.example\",\"type\":\"work\","
                      "\"primary\":true}],"
                      "\"" ENT "\":{\"manager\":{\"displayName\":\"jd\"},"
                      "\"department\":\"R&D\",\"organization\":\"Demo Corp\"},"
                      "\"active\":true}");
    json_decref(body);

    /* The URN only when the body holds an extension attribute. */
    a = update_of();
    set(&a, JP_ATTR_EMAIL, "jdoe@demo.example");
    body = create_body(m, &a);
    assert_json(json_object_get(body, "schemas"), "[\"" CORE "\"]");
    ck_assert_ptr_null(json_object_get(body, ENT));
    json_decref(body);

    /* Read from the extension object, not from the top-level department. */
    json_t *user = fixture();
    char buf[32];
    ck_assert_str_eq(jp_mapping_scim_value(m, JP_ATTR_DEPARTMENT, user, buf, sizeof(buf)),
                     "R&D Berlin");
    jp_account_attrs_t u = update_of();
    set(&u, JP_ATTR_DEPARTMENT, "R&D Berlin");
    set(&u, JP_ATTR_ORGANIZATION_NAME, "Demo GmbH");
    set(&u, JP_ATTR_NICK_NAME, NULL);
    jp_mapping_changes_t ch;
    body = patch(m, &u, user, &ch);
    assert_json(body, "{\"schemas\":[\"" PATCH "\"],\"Operations\":[{\"op\":\"replace\","
                      "\"path\":\"" ENT ":organization\",\"value\":\"Demo GmbH\"}]}");
    assert_changes(&ch, "[\"organizationName\"]");
    json_decref(body);

    /* 2.1 (as some clients spell it) is read as the same schema. */
    json_t *ext = json_incref(json_object_get(user, ENT));
    json_object_del(user, ENT);
    json_object_set_new(user, "urn:ietf:params:scim:schemas:extension:enterprise:2.1:User", ext);
    ck_assert_str_eq(jp_mapping_scim_value(m, JP_ATTR_DEPARTMENT, user, buf, sizeof(buf)),
                     "R&D Berlin");
    json_decref(user);
    jp_mapping_destroy(m);
}
END_TEST

/* ---- paths ------------------------------------------------------------------ */

START_TEST(canonical_paths)
{
    jp_config_mapping_t t[] = {
        {"login", "UserName", JP_CONFIG_DIR_BOTH},
        {"email", "EMAILS[ Primary EQ True ].Value", JP_CONFIG_DIR_BOTH},
        {"firstName", "Name.GivenName", JP_CONFIG_DIR_BOTH},
        {"displayName", "urn:ietf:params:scim:schemas:core:2.0:User:displayName",
         JP_CONFIG_DIR_BOTH},
        {"nickName", "phoneNumbers[type eq \"a\\\"b\\\\c\"].value", JP_CONFIG_DIR_BOTH},
        {"externalId", "urn:scim:schemas:extension:atlassian-external:1.0:atlassianAccountId",
         JP_CONFIG_DIR_FROM_JIRA},
    };
    jp_mapping_t *m = compile(t, 6);
    ck_assert_str_eq(jp_mapping_scim_path(m, JP_ATTR_LOGIN), "userName");
    ck_assert_str_eq(jp_mapping_scim_path(m, JP_ATTR_EMAIL), "emails[primary].value");
    ck_assert_str_eq(jp_mapping_scim_path(m, JP_ATTR_FIRST_NAME), "name.givenName");
    ck_assert_str_eq(jp_mapping_scim_path(m, JP_ATTR_DISPLAY_NAME), "displayName");
    ck_assert_str_eq(jp_mapping_scim_path(m, JP_ATTR_NICK_NAME),
                     "phoneNumbers[type eq \"a\\\"b\\\\c\"].value");
    ck_assert_str_eq(jp_mapping_scim_path(m, JP_ATTR_EXTERNAL_ID),
                     "urn:scim:schemas:extension:atlassian-external:1.0:atlassianAccountId");
    ck_assert_ptr_null(jp_mapping_scim_path(m, JP_ATTR_LAST_NAME));
    ck_assert_ptr_null(jp_mapping_scim_path(m, JP_ATTR__COUNT));
    ck_assert_ptr_null(jp_mapping_scim_path(NULL, JP_ATTR_LOGIN));

    json_t *user = fixture();
    json_array_append_new(json_object_get(user, "phoneNumbers"),
                          parse("{\"value\":\"x1\",\"type\":\"A\\\"B\\\\C\"}"));
    char buf[32];
    ck_assert_str_eq(jp_mapping_scim_value(m, JP_ATTR_NICK_NAME, user, buf, sizeof(buf)), "x1");
    ck_assert_str_eq(jp_mapping_scim_value(m, JP_ATTR_EXTERNAL_ID, user, buf, sizeof(buf)),
                     "5b10ac8d82e05b22cc7d4ef5");
    json_decref(user);
    jp_mapping_destroy(m);

    jp_mapping_t *empty = compile(NULL, 0);
    ck_assert_ptr_null(jp_mapping_scim_path(empty, JP_ATTR_LOGIN));
    jp_mapping_destroy(empty);
    jp_mapping_destroy(NULL);
}
END_TEST

START_TEST(invalid_paths)
{
    static const struct {
        const char *path;
        const char *message; /* the whole sentence after the entry prefix */
    } cases[] = {
        {"emails[", "unterminated filter, expected ']'"},
        {"emails[type eq \"work].value", "unterminated filter, expected ']'"},
        {"name..x", "expected a sub-attribute name at offset 5"},
        {"emails[value co \"x\"].value",
         "unsupported filter \"value co \"x\"\" (supported: primary, primary eq true, type eq "
         "\"<type>\")"},
        {"emails[primary eq false].value",
         "unsupported filter \"primary eq false\" (supported: primary, primary eq true, type eq "
         "\"<type>\")"},
        {"emails[type eq \"\"].value",
         "unsupported filter \"type eq \"\"\" (supported: primary, primary eq true, type eq "
         "\"<type>\")"},
        {"emails[primary or type eq \"work\"].value",
         "unsupported filter \"primary or type eq \"work\"\" (supported: primary, primary eq "
         "true, type eq \"<type>\")"},
        {"emails[typeeq \"work\"].value",
         "unsupported filter \"typeeq \"work\"\" (supported: primary, primary eq true, type eq "
         "\"<type>\")"},
        {"emails.value",
         "\"emails\" is multi-valued: select an entry with a filter, e.g. emails[primary].value"},
        {"emails[primary]",
         "\"emails\" is multi-valued: name a sub-attribute, e.g. emails[primary].value"},
        {"name", "\"name\" is complex: name a sub-attribute, e.g. name.formatted"},
        {"name.givenName.x",
         "unexpected \".x\" at offset 14 (a path has one attribute and at most one "
         "sub-attribute)"},
        {"name[primary].givenName", "\"name\" is not multi-valued, so it takes no filter"},
        {"displayName.x", "\"displayName\" has no sub-attributes"},
        {"name.nickName", "unknown sub-attribute \"nickName\" of \"name\""},
        {"dispalyName", "unknown attribute \"dispalyName\" in the core User schema"},
        {"", "the path is empty"},
        {"1st", "expected an attribute name at offset 0"},
        {"display Name", "unknown attribute \"display\" in the core User schema"},
        {"displayName x", "unexpected \" x\" at offset 11 (a path has one attribute and at most "
                          "one sub-attribute)"},
        {"urn:example:foo:bar",
         "unknown schema URN (known: urn:ietf:params:scim:schemas:core:2.0:User, "
         "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User, "
         "urn:ietf:params:scim:schemas:extension:enterprise:2.1:User, "
         "urn:scim:schemas:extension:atlassian-external:1.0, "
         "urn:scim:schemas:extension:atlassian-external:1.1)"},
        {ENT ":title", "unknown attribute \"title\" in the enterprise extension"},
        {ENT, "unknown schema URN (known: urn:ietf:params:scim:schemas:core:2.0:User, "
              "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User, "
              "urn:ietf:params:scim:schemas:extension:enterprise:2.1:User, "
              "urn:scim:schemas:extension:atlassian-external:1.0, "
              "urn:scim:schemas:extension:atlassian-external:1.1)"},
        {"active", "\"active\" follows the account's own active flag and cannot be mapped"},
        {"password", "\"password\" is write-only and cannot be mapped"},
        {"id", "\"id\" is read-only in SCIM, so only direction from_jira is allowed"},
        {"meta.lastModified",
         "\"meta.lastModified\" is read-only in SCIM, so only direction from_jira is allowed"},
        {"groups[type eq \"Group\"].display", "\"groups[type eq \"Group\"].display\" is "
                                              "read-only in SCIM, so only direction from_jira "
                                              "is allowed"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        jp_config_mapping_t t[] = {
            {"login", "userName", JP_CONFIG_DIR_BOTH},
            {"jobTitle", (char *)cases[i].path, JP_CONFIG_DIR_TO_JIRA},
        };
        errstr[0] = '\0';
        jp_mapping_t *m = jp_mapping_new(t, 2, errstr, sizeof(errstr));
        ck_assert_msg(m == NULL, "%s: accepted", cases[i].path);
        char want[600];
        if (strstr(cases[i].message, "read-only"))
            snprintf(want, sizeof(want), "mapping[1] (jobTitle): %s", cases[i].message);
        else
            snprintf(want, sizeof(want), "mapping[1] (jobTitle): \"%.80s\": %s", cases[i].path,
                     cases[i].message);
        ck_assert_str_eq(errstr, want);
    }

    /* Read-only paths are fine for from_jira. */
    jp_config_mapping_t ro[] = {
        {"externalId", "id", JP_CONFIG_DIR_FROM_JIRA},
        {"timezone", "meta.lastModified", JP_CONFIG_DIR_FROM_JIRA},
    };
    jp_mapping_t *m = compile(ro, 2);
    json_t *user = fixture();
    char buf[32];
    ck_assert_str_eq(jp_mapping_scim_value(m, JP_ATTR_TIMEZONE, user, buf, sizeof(buf)),
                     "2026-11-22T09:00:01.12345Z");
    json_decref(user);
    jp_mapping_destroy(m);
}
END_TEST

START_TEST(invalid_entries)
{
    static const struct {
        jp_config_mapping_t t[3];
        size_t n;
        const char *message;
    } cases[] = {
        {{{"login", "userName", JP_CONFIG_DIR_BOTH}, {"surname", "name.familyName", 0}},
         2,
         "mapping[1]: unknown IDHub attribute \"surname\""},
        {{{NULL, "userName", JP_CONFIG_DIR_BOTH}}, 1, "mapping[0]: unknown IDHub attribute \"\""},
        {{{"login", "userName", JP_CONFIG_DIR_BOTH}, {"login", "externalId", 0}},
         2,
         "mapping[1] (login): the attribute is already mapped by mapping[0]"},
        {{{"login", NULL, JP_CONFIG_DIR_BOTH}}, 1, "mapping[0] (login): the SCIM path is missing"},
        {{{"login", "userName", (jp_config_direction_t)7}},
         1,
         "mapping[0] (login): unknown direction 7"},
        {{{"login", "userName", JP_CONFIG_DIR_BOTH},
          {"nickName", "displayName", JP_CONFIG_DIR_TO_JIRA},
          {"displayName", "DISPLAYNAME", JP_CONFIG_DIR_BOTH}},
         3,
         "mapping[2] (displayName): \"displayName\" is already written by mapping[1] (nickName)"},
        {{{"email", "emails[primary].value", JP_CONFIG_DIR_BOTH},
          {"nickName", "emails[type eq \"home\"].value", JP_CONFIG_DIR_BOTH}},
         2,
         "mapping[1] (nickName): \"emails[type eq \"home\"].value\" and mapping[0] (email) "
         "\"emails[primary].value\" mix [primary] with a type filter on one attribute, and both "
         "may select the same entry"},
        {{{"department", ENT ":department", JP_CONFIG_DIR_BOTH},
          {"organizationName",
           "urn:ietf:params:scim:schemas:extension:enterprise:2.1:User:department",
           JP_CONFIG_DIR_TO_JIRA}},
         2,
         "mapping[1] (organizationName): "
         "\"urn:ietf:params:scim:schemas:extension:enterprise:2.1:User:department\" is already "
         "written by mapping[0] (department)"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        errstr[0] = '\0';
        jp_mapping_t *m = jp_mapping_new(cases[i].t, cases[i].n, errstr, sizeof(errstr));
        ck_assert_msg(m == NULL, "case %zu accepted", i);
        ck_assert_str_eq(errstr, cases[i].message);
    }
    ck_assert_ptr_null(jp_mapping_new(NULL, 1, errstr, sizeof(errstr)));

    /* Reading the same path twice, or one writer and one reader, is fine. */
    jp_config_mapping_t ok[] = {
        {"login", "userName", JP_CONFIG_DIR_BOTH},
        {"email", "userName", JP_CONFIG_DIR_FROM_JIRA},
        {"nickName", "emails[primary].value", JP_CONFIG_DIR_FROM_JIRA},
        {"displayName", "emails[type eq \"work\"].value", JP_CONFIG_DIR_BOTH},
    };
    jp_mapping_destroy(compile(ok, 4));
}
END_TEST

/* ---- reconciliation --------------------------------------------------------- */

START_TEST(idhub_from_scim_fixture)
{
    jp_mapping_t *m = default_mapping();
    json_t *user = fixture();
    json_t *rec = NULL;
    ck_assert_int_eq(jp_mapping_idhub_from_scim(m, user, &rec, errstr, sizeof(errstr)), JP_OK);
    assert_json(rec, "{\"attributes\":{\"login\":\"jdoe@demo.example\","
                     "\"email\":\"jdoe@demo.example\",\"firstName\":\"Jane\","
                     "\"lastName\":\"Doe\",\"displayName\":\"Jane Doe\",\"nickName\":\"jd\","
                     "\"jobTitle\":\"Engineer\",\"department\":\"R&D\","
                     "\"organizationName\":\"Demo Corp\",\"timezone\":\"Europe/Berlin\","
                     "\"externalId\":\"idhub-u-1001\"},"
                     "\"active\":true,\"scimId\":\"ef5f2a9c-4a43-4f5e-9c1e-2d8a7b3c9e10\","
                     "\"accountId\":\"5b10ac8d82e05b22cc7d4ef5\"}");
    json_decref(rec);

    /* Without a value: left out. Non-strings: their JSON text. atlassian-external 1.1. */
    json_object_del(user, "nickName");
    json_object_set_new(user, "title", json_string(""));
    json_object_set_new(user, "timezone", json_null());
    json_object_set_new(user, "externalId", json_integer(1001));
    json_object_set_new(user, "displayName", json_object());
    json_object_set_new(user, "active", json_string("yes"));
    json_t *ext = json_incref(json_object_get(user, JP_SCIM_SCHEMA_ATLASSIAN));
    json_object_del(user, JP_SCIM_SCHEMA_ATLASSIAN);
    json_object_set_new(user, "urn:scim:schemas:extension:atlassian-external:1.1", ext);
    ck_assert_int_eq(jp_mapping_idhub_from_scim(m, user, &rec, errstr, sizeof(errstr)), JP_OK);
    assert_json(rec, "{\"attributes\":{\"login\":\"jdoe@demo.example\","
                     "\"email\":\"jdoe@demo.example\",\"firstName\":\"Jane\","
                     "\"lastName\":\"Doe\",\"department\":\"R&D\","
                     "\"organizationName\":\"Demo Corp\",\"externalId\":\"1001\"},"
                     "\"active\":null,\"scimId\":\"ef5f2a9c-4a43-4f5e-9c1e-2d8a7b3c9e10\","
                     "\"accountId\":\"5b10ac8d82e05b22cc7d4ef5\"}");
    json_decref(rec);

    json_object_del(user, "urn:scim:schemas:extension:atlassian-external:1.1");
    ck_assert_int_eq(jp_mapping_idhub_from_scim(m, user, &rec, errstr, sizeof(errstr)), JP_OK);
    ck_assert(json_is_null(json_object_get(rec, "accountId")));
    json_decref(rec);

    json_object_set_new(user, "id", json_integer(3));
    rec = (json_t *)1;
    ck_assert_int_eq(jp_mapping_idhub_from_scim(m, user, &rec, errstr, sizeof(errstr)),
                     JP_ERR_INVALID);
    ck_assert_ptr_null(rec);
    ck_assert_str_eq(errstr, "SCIM user: id: expected a non-empty string");
    json_t *arr = json_array();
    ck_assert_int_eq(jp_mapping_idhub_from_scim(m, arr, &rec, errstr, sizeof(errstr)),
                     JP_ERR_INVALID);
    ck_assert_str_eq(errstr, "SCIM user: expected a JSON object");
    json_decref(arr);
    json_decref(user);
    jp_mapping_destroy(m);
}
END_TEST

START_TEST(scim_value_numbers)
{
    jp_mapping_t *m = default_mapping();
    json_t *user = parse(
        "{\"userName\":\"jdoe@demo.example\",\"title\":42,\"nickName\":true,\"department\":1.5,"
        "\"timezone\":-9223372036854775807}");
    char buf[32], small[2];
    ck_assert_str_eq(jp_mapping_scim_value(m, JP_ATTR_JOB_TITLE, user, buf, sizeof(buf)), "42");
    ck_assert_str_eq(jp_mapping_scim_value(m, JP_ATTR_NICK_NAME, user, buf, sizeof(buf)), "true");
    ck_assert_str_eq(jp_mapping_scim_value(m, JP_ATTR_DEPARTMENT, user, buf, sizeof(buf)), "1.5");
    ck_assert_str_eq(jp_mapping_scim_value(m, JP_ATTR_TIMEZONE, user, buf, sizeof(buf)),
                     "-9223372036854775807");
    ck_assert_ptr_null(jp_mapping_scim_value(m, JP_ATTR_JOB_TITLE, user, small, sizeof(small)));
    ck_assert_ptr_null(jp_mapping_scim_value(m, JP_ATTR_EMAIL, user, buf, sizeof(buf)));
    ck_assert_ptr_null(jp_mapping_scim_value(m, JP_ATTR_JOB_TITLE, NULL, buf, sizeof(buf)));

    /* A number equal as text is no change. */
    jp_account_attrs_t u = update_of();
    set(&u, JP_ATTR_JOB_TITLE, "42");
    jp_mapping_changes_t ch;
    ck_assert_ptr_null(patch(m, &u, user, &ch));
    json_decref(user);
    jp_mapping_destroy(m);
}
END_TEST

START_TEST(values_equal_rules)
{
    ck_assert(jp_mapping_values_equal(JP_ATTR_EMAIL, "A@B.example", "a@b.EXAMPLE"));
    ck_assert(jp_mapping_values_equal(JP_ATTR_LOGIN, "JDoe", "jdoe"));
    ck_assert(!jp_mapping_values_equal(JP_ATTR_LOGIN, "jdoe", "jdoe2"));
    ck_assert(!jp_mapping_values_equal(JP_ATTR_LOGIN, "jdoe", "jdo"));
    /* Only ASCII folds: É and é stay different. */
    ck_assert(!jp_mapping_values_equal(JP_ATTR_EMAIL, "\xC3\x89@x.example", "\xC3\xA9@x.example"));
    ck_assert(!jp_mapping_values_equal(JP_ATTR_DISPLAY_NAME, "Jane", "jane"));
    ck_assert(jp_mapping_values_equal(JP_ATTR_DISPLAY_NAME, "Jane", "Jane"));
    ck_assert(jp_mapping_values_equal(JP_ATTR_NICK_NAME, NULL, ""));
    ck_assert(jp_mapping_values_equal(JP_ATTR_NICK_NAME, "", NULL));
    ck_assert(jp_mapping_values_equal(JP_ATTR_NICK_NAME, NULL, NULL));
    ck_assert(!jp_mapping_values_equal(JP_ATTR_NICK_NAME, "x", NULL));
    ck_assert(!jp_mapping_values_equal(JP_ATTR_NICK_NAME, "", "x"));
}
END_TEST

/* ---- fingerprint ------------------------------------------------------------ */

START_TEST(fingerprint_rules)
{
    jp_mapping_t *m = default_mapping();
    json_t *user = fixture();
    uint64_t fp = jp_mapping_fingerprint(m, user);

    /* Key order does not matter. */
    json_t *rev = reversed(user);
    char *a = json_dumps(user, JSON_COMPACT), *b = json_dumps(rev, JSON_COMPACT);
    ck_assert_str_ne(a, b);
    free(a);
    free(b);
    ck_assert_uint_eq(jp_mapping_fingerprint(m, rev), fp);
    json_decref(rev);

    /* Nor does the order of the mapping's entries. */
    jp_config_mapping_t back[N_DEFAULT];
    for (size_t i = 0; i < N_DEFAULT; i++)
        back[i] = default_table[N_DEFAULT - 1 - i];
    jp_mapping_t *m2 = compile(back, N_DEFAULT);
    ck_assert_uint_eq(jp_mapping_fingerprint(m2, user), fp);
    jp_mapping_destroy(m2);

    /* Every mapped value and active changes it, each differently. */
    static const char *const changes[] = {
        "{\"userName\":\"jdoe2@demo.example\"}",
        "{\"emails\":[{\"value\":\"x@demo.example\",\"type\":\"work\",\"primary\":true}]}",
        "{\"name\":{\"givenName\":\"Janet\",\"familyName\":\"Doe\"}}",
        "{\"name\":{\"givenName\":\"Jane\",\"familyName\":\"Do\"}}",
        "{\"displayName\":\"Jane D.\"}",
        "{\"nickName\":\"jdx\"}",
        "{\"nickName\":null}",
        "{\"title\":\"Lead\"}",
        "{\"department\":\"Ops\"}",
        "{\"organization\":\"Other\"}",
        "{\"timezone\":\"UTC\"}",
        "{\"externalId\":\"idhub-u-1002\"}",
        "{\"active\":false}",
        "{\"displayName\":\"jane doe\"}",
        /* Values moved between attributes must not hash alike. */
        "{\"nickName\":\"Engineer\",\"title\":\"jd\"}",
    };
    const size_t nc = sizeof(changes) / sizeof(*changes);
    uint64_t seen[sizeof(changes) / sizeof(*changes)];
    for (size_t i = 0; i < nc; i++) {
        json_t *u = json_deep_copy(user);
        json_t *patchj = parse(changes[i]);
        json_object_update(u, patchj);
        seen[i] = jp_mapping_fingerprint(m, u);
        ck_assert_msg(seen[i] != fp, "%s did not change the fingerprint", changes[i]);
        for (size_t j = 0; j < i; j++)
            ck_assert_msg(seen[j] != seen[i], "%s and %s collide", changes[j], changes[i]);
        json_decref(patchj);
        json_decref(u);
    }

    /* Unmapped attributes, metadata, ways to spell "no value" and case-only
     * changes of login and email leave it alone. */
    static const char *const same[] = {
        "{\"preferredLanguage\":\"de-DE\"}",
        "{\"phoneNumbers\":[]}",
        "{\"groups\":[]}",
        "{\"meta\":{\"lastModified\":\"2027-01-01T00:00:00Z\"}}",
        "{\"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User\":{}}",
        "{\"id\":\"other\"}",
        "{\"userName\":\"JDOE@demo.example\"}",
        "{\"emails\":[{\"value\":\"JDoe@Demo.Example\",\"type\":\"work\",\"primary\":true}]}",
        "{\"name\":{\"givenName\":\"Jane\",\"familyName\":\"Doe\",\"formatted\":\"Dr Jane\"}}",
    };
    for (size_t i = 0; i < sizeof(same) / sizeof(*same); i++) {
        json_t *u = json_deep_copy(user);
        json_t *patchj = parse(same[i]);
        json_object_update(u, patchj);
        ck_assert_msg(jp_mapping_fingerprint(m, u) == fp, "%s changed the fingerprint", same[i]);
        json_decref(patchj);
        json_decref(u);
    }

    json_t *u = json_deep_copy(user);
    json_object_del(u, "nickName");
    uint64_t missing = jp_mapping_fingerprint(m, u);
    json_object_set_new(u, "nickName", json_string(""));
    ck_assert_uint_eq(jp_mapping_fingerprint(m, u), missing);
    json_object_set_new(u, "nickName", json_null());
    ck_assert_uint_eq(jp_mapping_fingerprint(m, u), missing);
    json_decref(u);

    /* Stored fingerprints must survive restarts and rebuilds, so the value is
     * pinned: FNV-1a over "login\0" 01 <len, 8 bytes LE> "a", "email\0" 00,
     * "active\0" 01 (computed independently of this code). */
    jp_config_mapping_t two[] = {{"login", "userName", JP_CONFIG_DIR_BOTH},
                                 {"email", "emails[primary].value", JP_CONFIG_DIR_BOTH}};
    jp_mapping_t *m3 = compile(two, 2);
    json_t *tiny = parse("{\"userName\":\"A\",\"active\":true}");
    ck_assert_uint_eq(jp_mapping_fingerprint(m3, tiny), UINT64_C(0xb606f4775fcadf14));
    jp_mapping_destroy(m3);
    json_t *empty = json_object();
    ck_assert_uint_ne(jp_mapping_fingerprint(m, tiny), jp_mapping_fingerprint(m, empty));
    ck_assert_uint_eq(jp_mapping_fingerprint(m, empty), jp_mapping_fingerprint(m, NULL));
    json_decref(empty);
    json_decref(tiny);
    json_decref(user);
    jp_mapping_destroy(m);
}
END_TEST

/* ---- allocation failures ---------------------------------------------------- */

static long alloc_budget = -1; /* allocations left before failing; -1 = unlimited */

static void *limited_malloc(size_t n)
{
    if (alloc_budget == 0)
        return NULL;
    if (alloc_budget > 0)
        alloc_budget--;
    return malloc(n);
}

/* Runs one builder with every jansson allocation budget from 0 up until it
 * succeeds: each failure must be JP_ERR_NOMEM with no output (ASan checks
 * that nothing leaks or is freed twice on the way). */
START_TEST(out_of_memory)
{
    jp_config_mapping_t ext[] = {
        {"login", "userName", JP_CONFIG_DIR_BOTH},
        {"email", "emails[primary].value", JP_CONFIG_DIR_BOTH},
        {"department", ENT ":department", JP_CONFIG_DIR_BOTH},
        {"nickName", "phoneNumbers[type eq \"work\"].value", JP_CONFIG_DIR_BOTH},
    };
    jp_mapping_t *maps[2] = {default_mapping(), compile(ext, 4)};
    json_t *user = fixture();
    jp_account_attrs_t a = full_account();
    set(&a, JP_ATTR_EMAIL, "jane.doe@demo.example");
    set(&a, JP_ATTR_NICK_NAME, NULL);
    set(&a, JP_ATTR_LAST_NAME, "Doe-Smith");
    a.active = false;
    for (int which = 0; which < 6; which++) {
        const jp_mapping_t *m = maps[which % 2];
        bool done = false;
        long budget;
        for (budget = 0; !done && budget < 100000; budget++) {
            json_t *out = NULL;
            jp_mapping_changes_t ch;
            jp_err_t rc;
            alloc_budget = budget;
            json_set_alloc_funcs(limited_malloc, free);
            if (which < 2)
                rc = jp_mapping_scim_user_for_create(m, &a, &out, errstr, sizeof(errstr));
            else if (which < 4)
                rc = jp_mapping_scim_patch(m, &a, user, &out, &ch, errstr, sizeof(errstr));
            else
                rc = jp_mapping_idhub_from_scim(m, user, &out, errstr, sizeof(errstr));
            json_set_alloc_funcs(malloc, free);
            alloc_budget = -1;
            ck_assert_msg(rc == JP_OK || rc == JP_ERR_NOMEM, "builder %d, budget %ld: %s", which,
                          budget, errstr);
            ck_assert_int_eq(rc == JP_OK, out != NULL);
            done = rc == JP_OK;
            json_decref(out);
        }
        ck_assert_msg(done && budget > 1, "builder %d never failed or never succeeded", which);
    }
    json_decref(user);
    jp_mapping_destroy(maps[0]);
    jp_mapping_destroy(maps[1]);
}
END_TEST

/* SIGHUP: the new table is swapped into the mapping everybody holds. */
START_TEST(swap_exchanges_tables)
{
    static const jp_config_mapping_t small[] = {
        {"login", "userName", JP_CONFIG_DIR_BOTH},
        {"email", "emails[primary].value", JP_CONFIG_DIR_BOTH},
        {"department", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
         JP_CONFIG_DIR_TO_JIRA},
    };
    jp_mapping_t *held = default_mapping(), *fresh = compile(small, 3);
    ck_assert(jp_mapping_writes(held, JP_ATTR_JOB_TITLE));
    ck_assert_str_eq(jp_mapping_scim_path(held, JP_ATTR_DEPARTMENT), "department");
    jp_mapping_swap(held, fresh);
    ck_assert(!jp_mapping_writes(held, JP_ATTR_JOB_TITLE));
    ck_assert(!jp_mapping_reads(held, JP_ATTR_DEPARTMENT));
    ck_assert_str_eq(jp_mapping_scim_path(held, JP_ATTR_DEPARTMENT),
                     "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department");
    ck_assert(jp_mapping_writes(fresh, JP_ATTR_JOB_TITLE)); /* the old table, to destroy */
    jp_mapping_swap(held, NULL);
    jp_mapping_swap(held, held);
    ck_assert(!jp_mapping_writes(held, JP_ATTR_JOB_TITLE));
    jp_mapping_destroy(fresh);
    jp_mapping_destroy(held);
}
END_TEST

static Suite *mapping_suite(void)
{
    Suite *s = suite_create("mapping");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, create_default_mapping);
    tcase_add_test(tc, swap_exchanges_tables);
    tcase_add_test(tc, create_minimal_inactive);
    tcase_add_test(tc, create_requires_username_and_emails);
    tcase_add_test(tc, direction_rules);
    tcase_add_test(tc, patch_no_change);
    tcase_add_test(tc, patch_one_change);
    tcase_add_test(tc, patch_clear_removes);
    tcase_add_test(tc, patch_email_change);
    tcase_add_test(tc, patch_active);
    tcase_add_test(tc, patch_several_in_order);
    tcase_add_test(tc, patch_errors);
    tcase_add_test(tc, type_filters);
    tcase_add_test(tc, clear_other_sub_attribute);
    tcase_add_test(tc, enterprise_extension);
    tcase_add_test(tc, canonical_paths);
    tcase_add_test(tc, invalid_paths);
    tcase_add_test(tc, invalid_entries);
    tcase_add_test(tc, idhub_from_scim_fixture);
    tcase_add_test(tc, scim_value_numbers);
    tcase_add_test(tc, values_equal_rules);
    tcase_add_test(tc, fingerprint_rules);
    tcase_add_test(tc, out_of_memory);
    suite_add_tcase(s, tc);
    return s;
}

JP_CHECK_MAIN(mapping_suite)
