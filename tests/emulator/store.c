/* Shared identity store: accounts (SCIM users = Jira users), groups and
 * memberships, with hash indexes so that 100k+ users stay cheap to look up.
 *
 * Ownership: the store owns every emu_user_t (freed only by reset/free) and
 * every emu_group_t (freed by emu_group_delete, reset or free). Member arrays
 * hold borrowed pointers in both directions. */
#include "emu_internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define EMU_ST(emu) (&(emu)->store)

static bool emu_vec_push(void ***vec, size_t *n, size_t *cap, void *item)
{
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 64;
        void **nv = realloc(*vec, ncap * sizeof(*nv));
        if (!nv)
            return false;
        *vec = nv;
        *cap = ncap;
    }
    (*vec)[(*n)++] = item;
    return true;
}

void emu_store_init(emu_t *emu)
{
    emu_store_t *st = EMU_ST(emu);
    memset(st, 0, sizeof(*st));
    st->by_id = emu_map_new(false);
    st->by_account = emu_map_new(false);
    st->by_user_name = emu_map_new(true);
    st->by_email = emu_map_new(true);
    st->g_by_id = emu_map_new(false);
    st->g_by_group_id = emu_map_new(false);
    st->g_by_name = emu_map_new(true);
}

static void emu_user_free(emu_user_t *u)
{
    char **strs[] = {&u->user_name,          &u->email,          &u->external_id,
                     &u->display_name,       &u->nick_name,      &u->title,
                     &u->department,         &u->organization,   &u->timezone,
                     &u->preferred_language, &u->locale,         &u->given_name,
                     &u->family_name,        &u->middle_name,    &u->honorific_prefix,
                     &u->honorific_suffix,   &u->formatted_name, &u->account_type};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        free(*strs[i]);
    json_decref(u->emails);
    json_decref(u->phone_numbers);
    json_decref(u->jira_ext);
    free(u->groups);
    free(u);
}

static void emu_group_free(emu_group_t *g)
{
    free(g->name);
    free(g->external_id);
    free(g->members);
    free(g);
}

void emu_store_reset(emu_t *emu)
{
    emu_store_t *st = EMU_ST(emu);
    for (size_t i = 0; i < st->nusers; i++)
        emu_user_free(st->users[i]);
    for (size_t i = 0; i < st->ngroups; i++)
        emu_group_free(st->groups[i]);
    st->nusers = st->nscim = st->ngroups = 0;
    emu_map_clear(st->by_id);
    emu_map_clear(st->by_account);
    emu_map_clear(st->by_user_name);
    emu_map_clear(st->by_email);
    emu_map_clear(st->g_by_id);
    emu_map_clear(st->g_by_group_id);
    emu_map_clear(st->g_by_name);
}

void emu_store_free(emu_t *emu)
{
    emu_store_t *st = EMU_ST(emu);
    emu_store_reset(emu);
    free(st->users);
    free(st->scim_users);
    free(st->groups);
    emu_map_destroy(st->by_id);
    emu_map_destroy(st->by_account);
    emu_map_destroy(st->by_user_name);
    emu_map_destroy(st->by_email);
    emu_map_destroy(st->g_by_id);
    emu_map_destroy(st->g_by_group_id);
    emu_map_destroy(st->g_by_name);
    memset(st, 0, sizeof(*st));
}

void emu_str_set(char **field, const char *v)
{
    char *nv = v ? strdup(v) : NULL;
    free(*field);
    *field = nv;
}

void emu_user_touch(emu_user_t *u)
{
    int64_t now = emu_now_ms();
    u->modified_ms = now > u->modified_ms ? now : u->modified_ms + 1;
}

void emu_group_touch(emu_group_t *g)
{
    int64_t now = emu_now_ms();
    g->modified_ms = now > g->modified_ms ? now : g->modified_ms + 1;
}

/* ------------------------------------------------------------------------ */
/* Users                                                                     */

static void emu_account_id_hex(emu_t *emu, char *buf, size_t n)
{
    uint64_t a = emu_rand_u64(emu), b = emu_rand_u64(emu);
    snprintf(buf, n, "%016llx%08x", (unsigned long long)a, (unsigned)(b >> 32));
}

static void emu_scim_push(emu_t *emu, emu_user_t *u)
{
    emu_store_t *st = EMU_ST(emu);
    u->scim_index = st->nscim;
    emu_vec_push((void ***)&st->scim_users, &st->nscim, &st->scim_cap, u);
}

emu_user_t *emu_user_new(emu_t *emu, const char *user_name, const char *email,
                         const char *account_id, unsigned flags, char *err, size_t errsz)
{
    emu_store_t *st = EMU_ST(emu);
    if (user_name && emu_map_get(st->by_user_name, user_name)) {
        snprintf(err, errsz, "A user with userName %s already exists.", user_name);
        return NULL;
    }
    if (email && emu_map_get(st->by_email, email)) {
        snprintf(err, errsz, "A user with email %s already exists.", email);
        return NULL;
    }
    if (account_id && (strlen(account_id) >= sizeof(((emu_user_t *)0)->account_id) ||
                       emu_map_get(st->by_account, account_id))) {
        snprintf(err, errsz, "The accountId %s is already used or too long.", account_id);
        return NULL;
    }
    emu_user_t *u = calloc(1, sizeof(*u));
    if (!u) {
        snprintf(err, errsz, "out of memory");
        return NULL;
    }
    if (account_id) {
        snprintf(u->account_id, sizeof(u->account_id), "%s", account_id);
    } else {
        char uuid[40];
        emu_uuid(emu, uuid);
        snprintf(u->account_id, sizeof(u->account_id), "712020:%s", uuid);
    }
    u->user_name = user_name ? strdup(user_name) : NULL;
    u->email = email ? strdup(email) : NULL;
    u->active = true;
    u->flags = flags & EMU_USER_JIRA;
    u->created_ms = u->modified_ms = emu_now_ms();
    u->index = st->nusers;
    if (!emu_vec_push((void ***)&st->users, &st->nusers, &st->users_cap, u)) {
        emu_user_free(u);
        snprintf(err, errsz, "out of memory");
        return NULL;
    }
    emu_map_put(st->by_account, u->account_id, u);
    if (u->user_name)
        emu_map_put(st->by_user_name, u->user_name, u);
    if (u->email)
        emu_map_put(st->by_email, u->email, u);
    if (flags & EMU_USER_SCIM)
        emu_user_scim_link(emu, u);
    return u;
}

emu_user_t *emu_user_by_id(emu_t *emu, const char *scim_id)
{
    return emu_map_get(EMU_ST(emu)->by_id, scim_id);
}

emu_user_t *emu_user_by_account_id(emu_t *emu, const char *account_id)
{
    return emu_map_get(EMU_ST(emu)->by_account, account_id);
}

emu_user_t *emu_user_by_user_name(emu_t *emu, const char *user_name)
{
    return emu_map_get(EMU_ST(emu)->by_user_name, user_name);
}

emu_user_t *emu_user_by_email(emu_t *emu, const char *email)
{
    return emu_map_get(EMU_ST(emu)->by_email, email);
}

size_t emu_user_count(emu_t *emu)
{
    return EMU_ST(emu)->nusers;
}

emu_user_t *emu_user_at(emu_t *emu, size_t i)
{
    return i < EMU_ST(emu)->nusers ? EMU_ST(emu)->users[i] : NULL;
}

size_t emu_scim_user_count(emu_t *emu)
{
    return EMU_ST(emu)->nscim;
}

emu_user_t *emu_scim_user_at(emu_t *emu, size_t i)
{
    return i < EMU_ST(emu)->nscim ? EMU_ST(emu)->scim_users[i] : NULL;
}

bool emu_user_set_user_name(emu_t *emu, emu_user_t *u, const char *v, char *err, size_t errsz)
{
    emu_store_t *st = EMU_ST(emu);
    if (v) {
        emu_user_t *other = emu_map_get(st->by_user_name, v);
        if (other && other != u) {
            snprintf(err, errsz, "A user with userName %s already exists.", v);
            return false;
        }
    }
    if (u->user_name)
        emu_map_del(st->by_user_name, u->user_name);
    emu_str_set(&u->user_name, v);
    if (u->user_name)
        emu_map_put(st->by_user_name, u->user_name, u);
    return true;
}

bool emu_user_set_email(emu_t *emu, emu_user_t *u, const char *v, char *err, size_t errsz)
{
    emu_store_t *st = EMU_ST(emu);
    if (v) {
        emu_user_t *other = emu_map_get(st->by_email, v);
        if (other && other != u) {
            snprintf(err, errsz, "A user with email %s already exists.", v);
            return false;
        }
    }
    if (u->email)
        emu_map_del(st->by_email, u->email);
    emu_str_set(&u->email, v);
    if (u->email)
        emu_map_put(st->by_email, u->email, u);
    return true;
}

void emu_user_set_active(emu_t *emu, emu_user_t *u, bool active)
{
    (void)emu;
    if (u->active != active) {
        u->active = active;
        emu_user_touch(u);
    }
}

void emu_user_scim_link(emu_t *emu, emu_user_t *u)
{
    if (u->flags & EMU_USER_SCIM)
        return;
    emu_uuid(emu, u->id);
    u->flags |= EMU_USER_SCIM;
    emu_map_put(EMU_ST(emu)->by_id, u->id, u);
    emu_scim_push(emu, u);
}

void emu_user_scim_unlink(emu_t *emu, emu_user_t *u)
{
    emu_store_t *st = EMU_ST(emu);
    if (!(u->flags & EMU_USER_SCIM))
        return;
    while (u->ngroups > 0)
        emu_member_remove(emu, u->groups[u->ngroups - 1], u);
    emu_map_del(st->by_id, u->id);
    u->id[0] = '\0';
    u->flags &= ~EMU_USER_SCIM;
    size_t i = u->scim_index;
    if (i < st->nscim && st->scim_users[i] == u) {
        memmove(&st->scim_users[i], &st->scim_users[i + 1],
                (st->nscim - i - 1) * sizeof(st->scim_users[0]));
        st->nscim--;
        for (size_t k = i; k < st->nscim; k++)
            st->scim_users[k]->scim_index = k;
    }
    emu_user_set_active(emu, u, false);
}

json_t *emu_user_emails(const emu_user_t *u)
{
    if (u->emails)
        return json_incref(u->emails);
    if (!u->email)
        return json_array();
    return json_pack("[{s:s, s:s, s:b}]", "value", u->email, "type", "work", "primary", 1);
}

/* ------------------------------------------------------------------------ */
/* Groups and memberships                                                    */

emu_group_t *emu_group_new(emu_t *emu, const char *name, bool in_scim, char *err, size_t errsz)
{
    emu_store_t *st = EMU_ST(emu);
    if (!name || !*name) {
        snprintf(err, errsz, "A group name is required.");
        return NULL;
    }
    if (emu_map_get(st->g_by_name, name)) {
        snprintf(err, errsz, "A group with name %s already exists.", name);
        return NULL;
    }
    emu_group_t *g = calloc(1, sizeof(*g));
    if (!g || !(g->name = strdup(name))) {
        free(g);
        snprintf(err, errsz, "out of memory");
        return NULL;
    }
    emu_uuid(emu, g->group_id);
    if (in_scim) {
        emu_uuid(emu, g->id);
        g->in_scim = true;
    }
    g->created_ms = g->modified_ms = emu_now_ms();
    g->index = st->ngroups;
    if (!emu_vec_push((void ***)&st->groups, &st->ngroups, &st->groups_cap, g)) {
        emu_group_free(g);
        snprintf(err, errsz, "out of memory");
        return NULL;
    }
    emu_map_put(st->g_by_name, g->name, g);
    emu_map_put(st->g_by_group_id, g->group_id, g);
    if (in_scim)
        emu_map_put(st->g_by_id, g->id, g);
    return g;
}

emu_group_t *emu_group_by_id(emu_t *emu, const char *scim_id)
{
    return emu_map_get(EMU_ST(emu)->g_by_id, scim_id);
}

emu_group_t *emu_group_by_group_id(emu_t *emu, const char *group_id)
{
    return emu_map_get(EMU_ST(emu)->g_by_group_id, group_id);
}

emu_group_t *emu_group_by_name(emu_t *emu, const char *name)
{
    return emu_map_get(EMU_ST(emu)->g_by_name, name);
}

size_t emu_group_count(emu_t *emu)
{
    return EMU_ST(emu)->ngroups;
}

emu_group_t *emu_group_at(emu_t *emu, size_t i)
{
    return i < EMU_ST(emu)->ngroups ? EMU_ST(emu)->groups[i] : NULL;
}

static bool emu_ptr_remove(void **arr, size_t *n, const void *item)
{
    for (size_t i = *n; i > 0; i--) {
        if (arr[i - 1] == item) {
            memmove(&arr[i - 1], &arr[i], (*n - i) * sizeof(arr[0]));
            (*n)--;
            return true;
        }
    }
    return false;
}

void emu_group_delete(emu_t *emu, emu_group_t *g)
{
    emu_store_t *st = EMU_ST(emu);
    for (size_t i = 0; i < g->nmembers; i++) {
        emu_user_t *u = g->members[i];
        emu_ptr_remove((void **)u->groups, &u->ngroups, g);
    }
    emu_map_del(st->g_by_name, g->name);
    emu_map_del(st->g_by_group_id, g->group_id);
    if (g->in_scim)
        emu_map_del(st->g_by_id, g->id);
    size_t i = g->index;
    if (i < st->ngroups && st->groups[i] == g) {
        memmove(&st->groups[i], &st->groups[i + 1], (st->ngroups - i - 1) * sizeof(st->groups[0]));
        st->ngroups--;
        for (size_t k = i; k < st->ngroups; k++)
            st->groups[k]->index = k;
    }
    emu_group_free(g);
}

bool emu_member_has(const emu_group_t *g, const emu_user_t *u)
{
    if (u->ngroups <= g->nmembers) {
        for (size_t i = 0; i < u->ngroups; i++)
            if (u->groups[i] == g)
                return true;
        return false;
    }
    for (size_t i = 0; i < g->nmembers; i++)
        if (g->members[i] == u)
            return true;
    return false;
}

bool emu_member_add(emu_t *emu, emu_group_t *g, emu_user_t *u)
{
    (void)emu;
    if (emu_member_has(g, u))
        return false;
    if (!emu_vec_push((void ***)&g->members, &g->nmembers, &g->members_cap, u))
        return false;
    if (!emu_vec_push((void ***)&u->groups, &u->ngroups, &u->groups_cap, g)) {
        g->nmembers--;
        return false;
    }
    emu_group_touch(g);
    return true;
}

bool emu_member_remove(emu_t *emu, emu_group_t *g, emu_user_t *u)
{
    (void)emu;
    if (!emu_ptr_remove((void **)u->groups, &u->ngroups, g))
        return false;
    emu_ptr_remove((void **)g->members, &g->nmembers, u);
    emu_group_touch(g);
    return true;
}

/* ------------------------------------------------------------------------ */
/* Dump                                                                      */

static void emu_set_str(json_t *o, const char *k, const char *v)
{
    if (v)
        json_object_set_new(o, k, json_string(v));
}

static json_t *emu_user_dump(const emu_user_t *u)
{
    char c[40], m[40];
    emu_iso8601(u->created_ms, c, sizeof(c));
    emu_iso8601(u->modified_ms, m, sizeof(m));
    json_t *o = json_pack("{s:s, s:b, s:b, s:b, s:s, s:s}", "accountId", u->account_id, "active",
                          u->active, "scim", (u->flags & EMU_USER_SCIM) != 0, "jira",
                          (u->flags & EMU_USER_JIRA) != 0, "created", c, "lastModified", m);
    if (u->id[0])
        json_object_set_new(o, "id", json_string(u->id));
    emu_set_str(o, "userName", u->user_name);
    emu_set_str(o, "email", u->email);
    emu_set_str(o, "externalId", u->external_id);
    emu_set_str(o, "displayName", u->display_name);
    emu_set_str(o, "nickName", u->nick_name);
    emu_set_str(o, "givenName", u->given_name);
    emu_set_str(o, "familyName", u->family_name);
    emu_set_str(o, "title", u->title);
    emu_set_str(o, "department", u->department);
    emu_set_str(o, "organization", u->organization);
    emu_set_str(o, "timezone", u->timezone);
    emu_set_str(o, "accountType", u->account_type);
    json_t *gs = json_array();
    for (size_t i = 0; i < u->ngroups; i++)
        json_array_append_new(gs, json_string(u->groups[i]->name));
    json_object_set_new(o, "groups", gs);
    if (u->jira_ext)
        json_object_set(o, "jira_ext", u->jira_ext);
    return o;
}

json_t *emu_store_dump(emu_t *emu)
{
    emu_store_t *st = EMU_ST(emu);
    json_t *users = json_array();
    for (size_t i = 0; i < st->nusers; i++)
        json_array_append_new(users, emu_user_dump(st->users[i]));
    json_t *groups = json_array();
    json_t *memberships = json_array();
    for (size_t i = 0; i < st->ngroups; i++) {
        emu_group_t *g = st->groups[i];
        json_t *members = json_array();
        for (size_t k = 0; k < g->nmembers; k++) {
            json_array_append_new(members, json_string(g->members[k]->account_id));
            json_array_append_new(memberships,
                                  json_pack("{s:s, s:s, s:s}", "group", g->name, "groupId",
                                            g->group_id, "accountId", g->members[k]->account_id));
        }
        json_t *o = json_pack("{s:s, s:s, s:b, s:o}", "name", g->name, "groupId", g->group_id,
                              "scim", g->in_scim, "members", members);
        if (g->in_scim)
            json_object_set_new(o, "id", json_string(g->id));
        emu_set_str(o, "externalId", g->external_id);
        json_array_append_new(groups, o);
    }
    return json_pack("{s:o, s:o, s:o}", "users", users, "groups", groups, "memberships",
                     memberships);
}

/* ------------------------------------------------------------------------ */
/* Seeding                                                                   */

static const char *emu_jstr(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static bool emu_jbool(json_t *o, const char *k, bool dflt)
{
    json_t *v = json_object_get(o, k);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

static emu_user_t *emu_user_ref(emu_t *emu, const char *ref)
{
    emu_user_t *u = emu_user_by_user_name(emu, ref);
    if (!u)
        u = emu_user_by_account_id(emu, ref);
    if (!u)
        u = emu_user_by_email(emu, ref);
    return u;
}

static const char *emu_seed_email(json_t *ju)
{
    const char *email = emu_jstr(ju, "email");
    if (email)
        return email;
    json_t *emails = json_object_get(ju, "emails");
    size_t i;
    json_t *e;
    json_array_foreach(emails, i, e)
    {
        if (json_is_true(json_object_get(e, "primary")))
            return emu_jstr(e, "value");
    }
    if (json_array_size(emails) > 0)
        return emu_jstr(json_array_get(emails, 0), "value");
    return emu_jstr(ju, "userName");
}

static int emu_seed_user(emu_t *emu, json_t *ju, char *err, size_t errsz)
{
    if (!json_is_object(ju)) {
        snprintf(err, errsz, "each seed user must be an object");
        return -1;
    }
    const char *user_name = emu_jstr(ju, "userName");
    const char *email = emu_seed_email(ju);
    if (!user_name)
        user_name = email;
    if (!user_name) {
        snprintf(err, errsz, "a seed user needs userName or email");
        return -1;
    }
    unsigned flags = 0;
    if (emu_jbool(ju, "scim", true))
        flags |= EMU_USER_SCIM;
    if (emu_jbool(ju, "jira", true))
        flags |= EMU_USER_JIRA;
    char acc[40];
    const char *account_id = emu_jstr(ju, "accountId");
    if (!account_id) {
        emu_account_id_hex(emu, acc, sizeof(acc));
        account_id = acc;
    }
    emu_user_t *u = emu_user_new(emu, user_name, email, account_id, flags, err, errsz);
    if (!u)
        return -1;
    json_t *name = json_object_get(ju, "name");
    emu_str_set(&u->given_name, emu_jstr(ju, "givenName") ? emu_jstr(ju, "givenName")
                                                          : emu_jstr(name, "givenName"));
    emu_str_set(&u->family_name, emu_jstr(ju, "familyName") ? emu_jstr(ju, "familyName")
                                                            : emu_jstr(name, "familyName"));
    emu_str_set(&u->display_name, emu_jstr(ju, "displayName"));
    emu_str_set(&u->external_id, emu_jstr(ju, "externalId"));
    emu_str_set(&u->nick_name, emu_jstr(ju, "nickName"));
    emu_str_set(&u->title, emu_jstr(ju, "title"));
    emu_str_set(&u->department, emu_jstr(ju, "department"));
    emu_str_set(&u->organization, emu_jstr(ju, "organization"));
    emu_str_set(&u->timezone, emu_jstr(ju, "timezone"));
    emu_str_set(&u->account_type, emu_jstr(ju, "accountType"));
    if (!u->display_name && (u->given_name || u->family_name)) {
        char dn[256];
        snprintf(dn, sizeof(dn), "%s%s%s", u->given_name ? u->given_name : "",
                 u->given_name && u->family_name ? " " : "", u->family_name ? u->family_name : "");
        emu_str_set(&u->display_name, dn);
    }
    if (json_is_array(json_object_get(ju, "emails")))
        u->emails = json_deep_copy(json_object_get(ju, "emails"));
    u->active = emu_jbool(ju, "active", true);
    size_t i;
    json_t *gn;
    json_array_foreach(json_object_get(ju, "groups"), i, gn)
    {
        const char *n = json_string_value(gn);
        emu_group_t *g = n ? emu_group_by_name(emu, n) : NULL;
        if (!g && n)
            g = emu_group_new(emu, n, true, err, errsz);
        if (!g) {
            snprintf(err, errsz, "seed user %s names an invalid group", user_name);
            return -1;
        }
        emu_member_add(emu, g, u);
    }
    return 0;
}

static int emu_seed_bulk(emu_t *emu, json_t *jb, char *err, size_t errsz)
{
    json_int_t count = json_integer_value(json_object_get(jb, "count"));
    if (count < 0 || count > 5000000) {
        snprintf(err, errsz, "bulk_users.count must be between 0 and 5000000");
        return -1;
    }
    const char *prefix = emu_jstr(jb, "prefix") ? emu_jstr(jb, "prefix") : "user";
    const char *domain = emu_jstr(jb, "domain") ? emu_jstr(jb, "domain") : "bulk.example";
    const char *gname = emu_jstr(jb, "group");
    json_int_t start = json_integer_value(json_object_get(jb, "start"));
    if (start <= 0)
        start = 1;
    unsigned flags = 0;
    if (emu_jbool(jb, "scim", true))
        flags |= EMU_USER_SCIM;
    if (emu_jbool(jb, "jira", true))
        flags |= EMU_USER_JIRA;
    emu_group_t *g = NULL;
    if (gname) {
        g = emu_group_by_name(emu, gname);
        if (!g && !(g = emu_group_new(emu, gname, true, err, errsz)))
            return -1;
    }
    for (json_int_t k = 0; k < count; k++) {
        char un[256], dn[256], acc[40];
        snprintf(un, sizeof(un), "%s%lld@%s", prefix, (long long)(start + k), domain);
        snprintf(dn, sizeof(dn), "%s %lld", prefix, (long long)(start + k));
        emu_account_id_hex(emu, acc, sizeof(acc));
        emu_user_t *u = emu_user_new(emu, un, un, acc, flags, err, errsz);
        if (!u)
            return -1;
        u->display_name = strdup(dn);
        if (g)
            emu_member_add(emu, g, u);
    }
    return 0;
}

int emu_store_seed(emu_t *emu, json_t *seed, char *err, size_t errsz)
{
    size_t i;
    json_t *v;
    json_t *groups = json_object_get(seed, "groups");
    json_array_foreach(groups, i, v)
    {
        const char *name = emu_jstr(v, "name") ? emu_jstr(v, "name") : emu_jstr(v, "displayName");
        if (emu_group_by_name(emu, name ? name : ""))
            continue;
        emu_group_t *g = emu_group_new(emu, name, emu_jbool(v, "scim", true), err, errsz);
        if (!g)
            return -1;
        emu_str_set(&g->external_id, emu_jstr(v, "externalId"));
    }
    json_array_foreach(json_object_get(seed, "users"), i, v)
    {
        if (emu_seed_user(emu, v, err, errsz) != 0)
            return -1;
    }
    json_array_foreach(groups, i, v)
    {
        const char *name = emu_jstr(v, "name") ? emu_jstr(v, "name") : emu_jstr(v, "displayName");
        emu_group_t *g = emu_group_by_name(emu, name ? name : "");
        size_t k;
        json_t *m;
        json_array_foreach(json_object_get(v, "members"), k, m)
        {
            const char *ref = json_string_value(m);
            emu_user_t *u = ref ? emu_user_ref(emu, ref) : NULL;
            if (!u || !g) {
                snprintf(err, errsz, "seed group %s names an unknown member %s", name ? name : "",
                         ref ? ref : "(not a string)");
                return -1;
            }
            emu_member_add(emu, g, u);
        }
    }
    json_t *bulk = json_object_get(seed, "bulk_users");
    if (bulk && emu_seed_bulk(emu, bulk, err, errsz) != 0)
        return -1;
    return 0;
}

void emu_store_seed_demo(emu_t *emu)
{
    char err[256];
    json_error_t je;
    json_t *seed = json_loads(
        "{\"groups\":["
        "{\"name\":\"jira-software-users\"},{\"name\":\"jira-administrators\"},"
        "{\"name\":\"demo-team\"}],"
        "\"users\":["
        "{\"userName\":\"jiraprov-bot@demo.example\",\"displayName\":\"jiraprov bot\","
        "\"accountId\":\"5b10ac8d82e05b22cc7d4ef5\",\"scim\":false,"
        "\"groups\":[\"jira-administrators\",\"jira-software-users\"]},"
        "{\"userName\":\"alice@demo.example\",\"givenName\":\"Alice\",\"familyName\":\"Adams\","
        "\"accountId\":\"5b10a2844c20165700ede21a\",\"externalId\":\"idhub-0001\","
        "\"title\":\"Engineer\",\"department\":\"R&D\",\"organization\":\"Demo\","
        "\"groups\":[\"jira-software-users\",\"demo-team\"]},"
        "{\"userName\":\"bob@demo.example\",\"givenName\":\"Bob\",\"familyName\":\"Brown\","
        "\"accountId\":\"5b10a2844c20165700ede21b\",\"externalId\":\"idhub-0002\","
        "\"groups\":[\"jira-software-users\",\"demo-team\"]},"
        "{\"userName\":\"carol@demo.example\",\"givenName\":\"Carol\",\"familyName\":\"Clark\","
        "\"accountId\":\"5b10a2844c20165700ede21c\",\"externalId\":\"idhub-0003\","
        "\"groups\":[\"jira-software-users\"]},"
        "{\"userName\":\"dave@demo.example\",\"givenName\":\"Dave\",\"familyName\":\"Davis\","
        "\"accountId\":\"5b10a2844c20165700ede21d\",\"externalId\":\"idhub-0004\","
        "\"active\":false}]}",
        0, &je);
    if (seed) {
        emu_store_seed(emu, seed, err, sizeof(err));
        json_decref(seed);
    }
}
