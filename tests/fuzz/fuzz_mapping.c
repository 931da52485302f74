/* Fuzz target: the attribute mapping (mapping.h) and the SCIM user reader
 * (jira.h) on arbitrary SCIM user bodies.
 *
 * Input: a JSON document taken as "the user as Jira returned it". Two
 * mappings are used: the default table and one with a type filter, an
 * enterprise-extension path and one-way entries. Properties, beyond "no
 * crash, no leak, no undefined behaviour":
 *  - the fingerprint does not depend on key order;
 *  - patches converge: applying the PATCH built for (desired, current) to
 *    current, the way a SCIM server applies "replace"/"remove", leaves
 *    nothing to patch the second time;
 *  - the create body and the IDHub view are JSON objects. */
#include "fuzz_site.h"
#include "jiraprov/mapping.h"

#include <strings.h>

static jp_mapping_t *maps[2];

static const jp_config_mapping_t default_table[] = {
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

static const jp_config_mapping_t other_table[] = {
    {"login", "userName", JP_CONFIG_DIR_BOTH},
    {"email", "emails[type eq \"work\"].value", JP_CONFIG_DIR_BOTH},
    {"department", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
     JP_CONFIG_DIR_BOTH},
    {"jobTitle", "phoneNumbers[type eq \"work\"].value", JP_CONFIG_DIR_TO_JIRA},
    {"displayName", "name.formatted", JP_CONFIG_DIR_TO_JIRA},
    {"externalId", "externalId", JP_CONFIG_DIR_FROM_JIRA},
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char err[256];
    maps[0] = jp_mapping_new(default_table, sizeof(default_table) / sizeof(default_table[0]), err,
                             sizeof(err));
    maps[1] =
        jp_mapping_new(other_table, sizeof(other_table) / sizeof(other_table[0]), err, sizeof(err));
    if (!maps[0] || !maps[1]) {
        fprintf(stderr, "mapping: %s\n", err);
        abort();
    }
    return 0;
}

/* Removes every member named `key` in any ASCII case. */
static void del_ci(json_t *obj, const char *key)
{
    const char *k;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(obj, tmp, k, v)
    {
        if (!strcasecmp(k, key))
            json_object_del(obj, k);
    }
}

static json_t *get_ci(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    const char *k;
    if (v)
        return v;
    json_object_foreach(obj, k, v)
    {
        if (!strcasecmp(k, key))
            return v;
    }
    return NULL;
}

/* The object `key` of obj, made (replacing a non-object) when `create`. */
static json_t *child(json_t *obj, const char *key, bool create)
{
    json_t *c = get_ci(obj, key);
    if (json_is_object(c) || !create)
        return json_is_object(c) ? c : NULL;
    del_ci(obj, key);
    c = json_object();
    json_object_set_new(obj, key, c);
    return c;
}

/* One PatchOp operation applied as RFC 7644 §3.5.2 describes for plain
 * attribute paths ("a", "a.b", "urn:...:a"), names compared without case. */
static void apply_op(json_t *user, json_t *op)
{
    const char *name = json_string_value(json_object_get(op, "op"));
    const char *path = json_string_value(json_object_get(op, "path"));
    json_t *value = json_object_get(op, "value");
    FUZZ_CHECK(name && path, "operation without op or path");
    bool replace = !strcmp(name, "replace");
    FUZZ_CHECK(replace || !strcmp(name, "remove"), "unexpected op %s", name);
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", path);
    json_t *holder = user;
    char *attr = buf;
    if (!strncasecmp(buf, "urn:", 4)) {
        char *colon = strrchr(buf, ':');
        *colon = '\0';
        holder = child(user, buf, replace);
        attr = colon + 1;
    }
    char *dot = strchr(attr, '.');
    if (holder && dot) {
        *dot = '\0';
        holder = child(holder, attr, replace);
        attr = dot + 1;
    }
    if (!holder)
        return;
    del_ci(holder, attr);
    if (replace)
        json_object_set(holder, attr, value);
}

static void desired_attrs(jp_account_attrs_t *a, unsigned variant)
{
    static const char *const values[][JP_ATTR__COUNT] = {
        {"jdoe@demo.example", "jdoe@demo.example", "Jane", "Doe", "Jane Doe", "jd", "Engineer",
         "R&D", "Demo Corp", "Europe/Berlin", "idhub-u-1001"},
        {"JDOE@demo.example", "Jane.Doe@Demo.Example", "", NULL, "Zoë \"JD\" Doe", NULL, "", "Ops",
         NULL, "UTC", NULL},
    };
    memset(a, 0, sizeof(*a));
    for (int i = 0; i < JP_ATTR__COUNT; i++) {
        const char *v = values[variant & 1][i];
        a->attr[i].state = v ? JP_VALUE : ((variant & 2) ? JP_NULL : JP_ABSENT);
        a->attr[i].value = v;
    }
    a->active_state = JP_VALUE;
    a->active = (variant & 4) == 0;
}

static void converge(const jp_mapping_t *m, const json_t *current, unsigned variant)
{
    jp_account_attrs_t want;
    desired_attrs(&want, variant);
    char err[512];
    json_t *patch = NULL;
    jp_mapping_changes_t ch;
    jp_err_t rc = jp_mapping_scim_patch(m, &want, current, &patch, &ch, err, sizeof(err));
    if (!json_is_object(current)) {
        FUZZ_CHECK(rc == JP_ERR_INVALID && !patch, "patch of a non-object");
        return;
    }
    FUZZ_CHECK(rc == JP_OK, "patch failed: %s", err);
    if (!patch) {
        FUZZ_CHECK(ch.count == 0, "no patch but %zu changes", ch.count);
        return;
    }
    FUZZ_CHECK(ch.count > 0, "a patch without changes");
    json_t *names = jp_mapping_changes_names(&ch);
    FUZZ_CHECK(json_array_size(names) == ch.count, "change names");
    json_decref(names);

    /* The request the worker would send, then the server's view of it. */
    jp_jira_req_t *req = NULL;
    rc = jp_jira_scim_user_patch(fuzz_site(), "u-1", patch, &req, err, sizeof(err));
    FUZZ_CHECK(rc == JP_OK, "patch request refused: %s", err);
    fuzz_check_request(req);
    jp_jira_req_destroy(req);

    json_t *after = json_deep_copy(current);
    size_t i;
    json_t *op;
    json_array_foreach(json_object_get(patch, "Operations"), i, op) apply_op(after, op);
    json_t *again = NULL;
    rc = jp_mapping_scim_patch(m, &want, after, &again, &ch, err, sizeof(err));
    FUZZ_CHECK(rc == JP_OK, "second patch failed: %s", err);
    if (again) {
        char *a = json_dumps(patch, JSON_COMPACT), *b = json_dumps(again, JSON_COMPACT);
        FUZZ_CHECK(again == NULL, "no convergence: first %s, then %s", a, b);
    }
    json_decref(after);
    json_decref(patch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *user = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    if (!user)
        return 0;
    char err[512], buf[64];
    jp_jira_scim_user_t *u = NULL;
    if (jp_jira_scim_user_from_json(user, &u, err, sizeof(err)) != JP_OK)
        FUZZ_CHECK(fuzz_one_line(err), "reader error %s", err);
    jp_jira_scim_user_destroy(u);

    char *sorted = json_dumps(user, JSON_SORT_KEYS | JSON_ENCODE_ANY);
    json_t *reordered = sorted ? json_loads(sorted, JSON_DECODE_ANY, NULL) : NULL;
    for (int k = 0; k < 2; k++) {
        const jp_mapping_t *m = maps[k];
        for (int a = 0; a < JP_ATTR__COUNT; a++)
            (void)jp_mapping_scim_value(m, (jp_attr_t)a, user, buf, sizeof(buf));
        if (reordered)
            FUZZ_CHECK(jp_mapping_fingerprint(m, user) == jp_mapping_fingerprint(m, reordered),
                       "fingerprint depends on key order");
        json_t *view = NULL;
        if (jp_mapping_idhub_from_scim(m, user, &view, err, sizeof(err)) == JP_OK)
            FUZZ_CHECK(json_is_object(view), "IDHub view");
        json_decref(view);
        jp_account_attrs_t want;
        desired_attrs(&want, (unsigned)size);
        json_t *body = NULL;
        if (jp_mapping_scim_user_for_create(m, &want, &body, err, sizeof(err)) == JP_OK)
            FUZZ_CHECK(json_is_object(body), "create body");
        json_decref(body);
        for (unsigned v = 0; v < 8; v++)
            converge(m, user, v);
    }
    json_decref(reordered);
    free(sorted);
    json_decref(user);
    return 0;
}
