/* recon_record.c - the pure half of reconciliation: what a run is (definition, checkpoint),
 * which accounts a filter selects, items and their fingerprints, and the records published.
 * No I/O, no clock: callers pass times in. See include/jiraprov/recon.h. */
#include "jiraprov/recon.h"
#include "jiraprov/record.h"

#include <inttypes.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME  0x100000001b3ull

/* ---- small helpers ------------------------------------------------------------------------ */

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* malloc'd printf; NULL on ENOMEM. */
__attribute__((format(printf, 1, 2))) static char *fmt(const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(NULL, 0, f, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (!s)
        return NULL;
    va_start(ap, f);
    vsnprintf(s, (size_t)n + 1, f, ap);
    va_end(ap);
    return s;
}

static uint64_t fnv(const void *data, size_t n)
{
    const unsigned char *p = data;
    uint64_t h = FNV_OFFSET;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= FNV_PRIME;
    }
    return h;
}

/* RFC 3339 UTC with milliseconds, like every record's time. */
static void format_time(int64_t ms, char *out, size_t out_size)
{
    int64_t sec = ms / 1000, frac = ms % 1000;
    if (frac < 0) {
        frac += 1000;
        sec -= 1;
    }
    time_t t = (time_t)sec;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        snprintf(out, out_size, "1970-01-01T00:00:00.000Z");
        return;
    }
    snprintf(out, out_size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)frac);
}

static json_t *time_json(int64_t ms)
{
    char ts[40];
    format_time(ms, ts, sizeof(ts));
    return json_string(ts);
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* ---- definitions ------------------------------------------------------------------------- */

static const char *const mode_names[] = {"full", "filtered", "incremental"};

/* Reads the conditions of a filter object (strings point into it). */
static void cond_from_json(const json_t *f, jp_recon_filter_t *c)
{
    memset(c, 0, sizeof(*c));
    if (!json_is_object(f))
        return;
    c->user_name = json_string_value(json_object_get(f, "userName"));
    c->external_id = json_string_value(json_object_get(f, "externalId"));
    c->department = json_string_value(json_object_get(f, "department"));
    c->organization_name = json_string_value(json_object_get(f, "organizationName"));
    c->group = json_string_value(json_object_get(f, "group"));
    const json_t *a = json_object_get(f, "active");
    if (json_is_boolean(a)) {
        c->active_state = JP_VALUE;
        c->active = json_is_true(a);
    }
}

void jp_recon_def_clear(jp_recon_def_t *d)
{
    if (!d)
        return;
    free(d->recon_id);
    free(d->site);
    free(d->event_id);
    free(d->actor);
    free(d->traceparent);
    free(d->correlationid);
    free(d->scope);
    json_decref(d->filter);
    memset(d, 0, sizeof(*d));
}

jp_err_t jp_recon_def_from_event(const jp_event_t *ev, jp_recon_def_t *out, char *errstr,
                                 size_t errstr_size)
{
    memset(out, 0, sizeof(*out));
    if (!ev || ev->type != JP_EVENT_RECON_REQUEST)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "not a recon.request");
    const jp_recon_request_t *r = &ev->recon;
    out->mode = r->mode;
    out->resources = r->resources;
    out->recon_id = dup_or_null(r->recon_id);
    out->site = dup_or_null(ev->site);
    out->event_id = dup_or_null(ev->id);
    out->actor = dup_or_null(ev->actor);
    out->traceparent = dup_or_null(ev->traceparent);
    out->correlationid = dup_or_null(ev->correlationid);
    out->scope = dup_or_null(r->scope);
    const json_t *f = r->has_filter ? json_object_get(ev->data, "filter") : NULL;
    if (f)
        out->filter = json_deep_copy(f);
    if (!out->recon_id || !out->site || !out->event_id || !out->actor || !out->scope ||
        (ev->traceparent && !out->traceparent) || (ev->correlationid && !out->correlationid) ||
        (f && !out->filter)) {
        jp_recon_def_clear(out);
        return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
    }
    cond_from_json(out->filter, &out->cond);
    return JP_OK;
}

bool jp_recon_def_tracks(const jp_recon_def_t *d)
{
    return d->mode == JP_RECON_FULL || d->mode == JP_RECON_INCREMENTAL;
}

static json_t *resources_json(unsigned resources)
{
    json_t *a = json_array();
    if (resources & JP_RECON_ACCOUNTS)
        json_array_append_new(a, json_string("accounts"));
    if (resources & JP_RECON_ENTITLEMENTS)
        json_array_append_new(a, json_string("entitlements"));
    return a;
}

/* ---- phases ------------------------------------------------------------------------------ */

const char *jp_recon_phase_name(jp_recon_phase_t p)
{
    static const char *const names[] = {"start", "accounts", "groups",
                                        "roles", "removals", "completing"};
    return (unsigned)p <= JP_RECON_PHASE_COMPLETING ? names[p] : NULL;
}

static bool phase_wanted(const jp_recon_def_t *d, jp_recon_phase_t p)
{
    bool ents = (d->resources & JP_RECON_ENTITLEMENTS) != 0;
    switch (p) {
    case JP_RECON_PHASE_ACCOUNTS:
        /* A filtered run's memberships list only the accounts it selected. */
        return (d->resources & JP_RECON_ACCOUNTS) || (ents && d->mode == JP_RECON_FILTERED);
    case JP_RECON_PHASE_GROUPS:
    case JP_RECON_PHASE_ROLES:
        return ents;
    case JP_RECON_PHASE_REMOVALS:
        return jp_recon_def_tracks(d);
    default:
        return true;
    }
}

jp_recon_phase_t jp_recon_next_phase(const jp_recon_def_t *d, jp_recon_phase_t p)
{
    while (p < JP_RECON_PHASE_COMPLETING) {
        p = (jp_recon_phase_t)(p + 1);
        if (phase_wanted(d, p))
            return p;
    }
    return JP_RECON_PHASE_COMPLETING;
}

/* ---- checkpoints ------------------------------------------------------------------------- */

void jp_recon_ckpt_phase(jp_recon_ckpt_t *c, jp_recon_phase_t p)
{
    c->phase = p;
    c->page = c->item = c->sub = 0;
    c->part = 1;
    snprintf(c->scan, sizeof(c->scan), "0");
}

void jp_recon_ckpt_init(jp_recon_ckpt_t *c, jp_recon_def_t *def, int64_t started_ms)
{
    memset(c, 0, sizeof(*c));
    c->def = *def;
    memset(def, 0, sizeof(*def));
    jp_recon_ckpt_phase(c, JP_RECON_PHASE_START);
    c->seq = 1;
    c->started_ms = started_ms;
}

void jp_recon_ckpt_clear(jp_recon_ckpt_t *c)
{
    if (!c)
        return;
    jp_recon_def_clear(&c->def);
    memset(c, 0, sizeof(*c));
}

static json_t *counts_json(const jp_recon_counts_t *n)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I}", "read", (json_int_t)n->read, "emitted",
                     (json_int_t)n->emitted, "unchanged", (json_int_t)n->unchanged, "removed",
                     (json_int_t)n->removed, "errors", (json_int_t)n->errors);
}

char *jp_recon_ckpt_encode(const jp_recon_ckpt_t *c)
{
    const jp_recon_def_t *d = &c->def;
    json_t *def =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:s}", "reconId", d->recon_id, "site", d->site,
                  "eventId", d->event_id, "actor", d->actor, "mode", mode_names[d->mode],
                  "resources", resources_json(d->resources), "scope", d->scope);
    if (!def)
        return NULL;
    if (d->traceparent)
        json_object_set_new(def, "traceparent", json_string(d->traceparent));
    if (d->correlationid)
        json_object_set_new(def, "correlationid", json_string(d->correlationid));
    if (d->filter)
        json_object_set(def, "filter", d->filter);
    json_t *j = json_pack(
        "{s:i, s:o, s:s, s:I, s:I, s:I, s:I, s:s, s:I, s:I, s:o, s:I, s:I, s:I}", "v", 1, "def",
        def, "phase", jp_recon_phase_name(c->phase), "page", (json_int_t)c->page, "item",
        (json_int_t)c->item, "sub", (json_int_t)c->sub, "part", (json_int_t)c->part, "scan",
        c->scan, "seq", (json_int_t)c->seq, "base", (json_int_t)c->base, "counts",
        counts_json(&c->counts), "startedMs", (json_int_t)c->started_ms, "completedMs",
        (json_int_t)c->completed_ms, "durationMs", (json_int_t)c->duration_ms);
    if (!j)
        return NULL;
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s;
}

static jp_err_t bad(char *errstr, size_t errstr_size, const char *what)
{
    return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "checkpoint: %s", what);
}

static bool get_count(const json_t *o, const char *k, int64_t min, int64_t *out)
{
    const json_t *v = json_object_get(o, k);
    if (!json_is_integer(v) || json_integer_value(v) < min)
        return false;
    *out = (int64_t)json_integer_value(v);
    return true;
}

static int name_index(const char *s, const char *const *names, int n)
{
    for (int i = 0; s && i < n; i++)
        if (!strcmp(s, names[i]))
            return i;
    return -1;
}

static jp_err_t def_decode(const json_t *j, jp_recon_def_t *d, char *errstr, size_t errstr_size)
{
    if (!json_is_object(j))
        return bad(errstr, errstr_size, "def: expected an object");
    const char *rid = json_string_value(json_object_get(j, "reconId"));
    const char *site = json_string_value(json_object_get(j, "site"));
    const char *eid = json_string_value(json_object_get(j, "eventId"));
    const char *actor = json_string_value(json_object_get(j, "actor"));
    const char *scope = json_string_value(json_object_get(j, "scope"));
    const json_t *tp = json_object_get(j, "traceparent"), *ci = json_object_get(j, "correlationid");
    if (!rid || !jp_event_valid_ref(rid) || !site || !jp_event_valid_site(site) || !eid || !actor ||
        !scope)
        return bad(errstr, errstr_size, "def: reconId, site, eventId, actor and scope required");
    if ((tp && !json_is_string(tp)) || (ci && !json_is_string(ci)))
        return bad(errstr, errstr_size, "def: traceparent and correlationid must be strings");
    int mode = name_index(json_string_value(json_object_get(j, "mode")), mode_names, 3);
    if (mode < 0)
        return bad(errstr, errstr_size, "def.mode: expected full, filtered or incremental");
    const json_t *res = json_object_get(j, "resources");
    size_t i;
    json_t *v;
    unsigned bits = 0;
    if (!json_is_array(res))
        return bad(errstr, errstr_size, "def.resources: expected an array");
    json_array_foreach(res, i, v)
    {
        const char *s = json_string_value(v);
        if (s && !strcmp(s, "accounts"))
            bits |= JP_RECON_ACCOUNTS;
        else if (s && !strcmp(s, "entitlements"))
            bits |= JP_RECON_ENTITLEMENTS;
        else
            return bad(errstr, errstr_size, "def.resources: accounts or entitlements");
    }
    if (!bits)
        return bad(errstr, errstr_size, "def.resources: empty");
    const json_t *f = json_object_get(j, "filter");
    if (f && !json_is_object(f))
        return bad(errstr, errstr_size, "def.filter: expected an object");
    if ((mode == JP_RECON_FILTERED) != (f != NULL))
        return bad(errstr, errstr_size, "def.filter: required with mode filtered only");
    d->mode = (jp_recon_mode_t)mode;
    d->resources = bits;
    d->recon_id = strdup(rid);
    d->site = strdup(site);
    d->event_id = strdup(eid);
    d->actor = strdup(actor);
    d->scope = strdup(scope);
    d->traceparent = tp ? strdup(json_string_value(tp)) : NULL;
    d->correlationid = ci ? strdup(json_string_value(ci)) : NULL;
    d->filter = f ? json_deep_copy(f) : NULL;
    if (!d->recon_id || !d->site || !d->event_id || !d->actor || !d->scope ||
        (tp && !d->traceparent) || (ci && !d->correlationid) || (f && !d->filter))
        return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
    cond_from_json(d->filter, &d->cond);
    return JP_OK;
}

jp_err_t jp_recon_ckpt_decode(const char *text, size_t len, jp_recon_ckpt_t *out, char *errstr,
                              size_t errstr_size)
{
    memset(out, 0, sizeof(*out));
    json_error_t je;
    json_t *j = json_loadb(text, len, 0, &je);
    if (!json_is_object(j)) {
        json_decref(j);
        return bad(errstr, errstr_size, "not a JSON object");
    }
    jp_err_t err = JP_OK;
    const json_t *v = json_object_get(j, "v");
    const json_t *counts = json_object_get(j, "counts");
    const char *scan = json_string_value(json_object_get(j, "scan"));
    const char *pname = json_string_value(json_object_get(j, "phase"));
    int phase = -1;
    for (int p = 0; pname && p <= JP_RECON_PHASE_COMPLETING; p++)
        if (!strcmp(pname, jp_recon_phase_name((jp_recon_phase_t)p)))
            phase = p;
    if (!json_is_integer(v) || json_integer_value(v) != 1)
        err = bad(errstr, errstr_size, "v: expected 1");
    else if (phase < 0)
        err = bad(errstr, errstr_size, "phase: unknown");
    else if (!get_count(j, "page", 0, &out->page) || !get_count(j, "item", 0, &out->item) ||
             !get_count(j, "sub", 0, &out->sub) || !get_count(j, "part", 1, &out->part) ||
             !get_count(j, "seq", 1, &out->seq) || !get_count(j, "base", 0, &out->base) ||
             !get_count(j, "startedMs", 0, &out->started_ms) ||
             !get_count(j, "completedMs", 0, &out->completed_ms) ||
             !get_count(j, "durationMs", 0, &out->duration_ms))
        err = bad(errstr, errstr_size, "a position, seq or time is not a non-negative integer");
    else if (!scan || !*scan || strlen(scan) >= sizeof(out->scan) ||
             strspn(scan, "0123456789") != strlen(scan))
        err = bad(errstr, errstr_size, "scan: expected a cursor");
    else if (!json_is_object(counts) || !get_count(counts, "read", 0, &out->counts.read) ||
             !get_count(counts, "emitted", 0, &out->counts.emitted) ||
             !get_count(counts, "unchanged", 0, &out->counts.unchanged) ||
             !get_count(counts, "removed", 0, &out->counts.removed) ||
             !get_count(counts, "errors", 0, &out->counts.errors))
        err = bad(errstr, errstr_size, "counts: expected five non-negative integers");
    else
        err = def_decode(json_object_get(j, "def"), &out->def, errstr, errstr_size);
    if (!err) {
        out->phase = (jp_recon_phase_t)phase;
        snprintf(out->scan, sizeof(out->scan), "%s", scan);
    }
    json_decref(j);
    if (err)
        jp_recon_ckpt_clear(out);
    return err;
}

void jp_recon_scope_hash(const char *scope, char out[33])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(scope, strlen(scope), md, &mdlen, EVP_sha256(), NULL) || mdlen < 16) {
        /* Cannot happen with a working libcrypto; FNV keeps keys distinct enough. */
        uint64_t h = fnv(scope, strlen(scope));
        snprintf(out, 33, "%016" PRIx64 "%016" PRIx64, h, ~h);
        return;
    }
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* ---- filters ----------------------------------------------------------------------------- */

const char *jp_recon_filter_scim(const jp_recon_filter_t *f, const char **value)
{
    if (f && f->user_name) {
        *value = f->user_name;
        return "userName";
    }
    if (f && f->external_id) {
        *value = f->external_id;
        return "externalId";
    }
    *value = NULL;
    return NULL;
}

static bool attr_equals(const jp_mapping_t *m, jp_attr_t attr, const json_t *user, const char *want)
{
    char buf[64];
    const char *have = jp_mapping_scim_value(m, attr, user, buf, sizeof(buf));
    return have && strcmp(have, want) == 0;
}

static bool in_group(const json_t *user, const char *group)
{
    size_t i;
    json_t *g;
    json_array_foreach(json_object_get(user, "groups"), i, g)
    {
        const char *name = json_string_value(json_object_get(g, "display"));
        if (name && strcasecmp(name, group) == 0)
            return true;
    }
    return false;
}

bool jp_recon_filter_match(const jp_recon_filter_t *f, const jp_mapping_t *m,
                           const json_t *scim_user)
{
    if (!json_is_object(scim_user))
        return false;
    if (!f)
        return true;
    if (f->user_name) {
        const char *un = json_string_value(json_object_get(scim_user, "userName"));
        if (!un || strcasecmp(un, f->user_name) != 0)
            return false;
    }
    if (f->external_id) {
        const char *x = json_string_value(json_object_get(scim_user, "externalId"));
        if (!x || strcmp(x, f->external_id) != 0)
            return false;
    }
    if (f->department && !attr_equals(m, JP_ATTR_DEPARTMENT, scim_user, f->department))
        return false;
    if (f->organization_name &&
        !attr_equals(m, JP_ATTR_ORGANIZATION_NAME, scim_user, f->organization_name))
        return false;
    if (f->active_state == JP_VALUE) {
        const json_t *a = json_object_get(scim_user, "active");
        bool active = json_is_boolean(a) ? json_is_true(a) : true;
        if (active != f->active)
            return false;
    }
    if (f->group && !in_group(scim_user, f->group))
        return false;
    return true;
}

/* ---- items -------------------------------------------------------------------------------- */

void jp_recon_item_clear(jp_recon_item_t *it)
{
    if (!it)
        return;
    free(it->field);
    free(it->key);
    free(it->ident);
    json_decref(it->content);
    memset(it, 0, sizeof(*it));
}

static jp_err_t item_done(jp_recon_item_t *it, char *errstr, size_t errstr_size)
{
    if (it->field && it->key && it->ident && it->content)
        return JP_OK;
    jp_recon_item_clear(it);
    return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
}

jp_err_t jp_recon_account_item(const jp_mapping_t *m, jp_attr_t key_attr, const char *site,
                               const json_t *scim_user, jp_recon_item_t *out, char *errstr,
                               size_t errstr_size)
{
    memset(out, 0, sizeof(*out));
    json_t *view = NULL;
    jp_err_t err = jp_mapping_idhub_from_scim(m, scim_user, &view, errstr, errstr_size);
    if (err)
        return err;
    const char *id = json_string_value(json_object_get(view, "scimId"));
    json_t *attrs = json_object_get(view, "attributes");
    const char *kv = json_string_value(json_object_get(attrs, jp_attr_name(key_attr)));
    out->kind = JP_RECON_ITEM_ACCOUNT;
    out->content = json_pack("{s:{s:s, s:o}, s:s, s:O, s:O, s:O}", "key", "attribute",
                             jp_attr_name(key_attr), "value", str_or_null(kv), "scimId", id,
                             "accountId", json_object_get(view, "accountId"), "active",
                             json_object_get(view, "active"), "attributes", attrs);
    out->field = fmt("a:%s", id);
    out->key = fmt("%s/account/%s", site, id);
    out->ident = strdup(kv ? kv : "");
    out->fp = jp_mapping_fingerprint(m, scim_user);
    json_decref(view);
    return item_done(out, errstr, errstr_size);
}

/* "#<part>" from the second part on, "" for the first. */
static void part_suffix(int64_t part, char *buf, size_t size)
{
    if (part > 1)
        snprintf(buf, size, "#%" PRId64, part);
    else
        buf[0] = '\0';
}

/* The fingerprint of an entitlement: its content, canonically serialised. */
static uint64_t content_fp(const json_t *content)
{
    char *s = json_dumps(content, JSON_COMPACT | JSON_SORT_KEYS);
    uint64_t h = s ? fnv(s, strlen(s)) : 0;
    free(s);
    return h;
}

jp_err_t jp_recon_group_item(const char *site, const char *group_id, const char *name,
                             bool filtered, json_t *members, int64_t part, int64_t parts,
                             jp_recon_item_t *out, char *errstr, size_t errstr_size)
{
    memset(out, 0, sizeof(*out));
    char sfx[32];
    part_suffix(part, sfx, sizeof(sfx));
    out->kind = JP_RECON_ITEM_GROUP;
    out->content = json_pack(
        "{s:s, s:{s:s, s:s}, s:s, s:n, s:s, s:s, s:o, s:I, s:I}", "type", "group", "entitlement",
        "type", "group", "group", name, "displayName", name, "description", "groupId", group_id,
        "membership", filtered ? "filtered" : "complete", "members",
        members ? members : json_array(), "part", (json_int_t)part, "parts", (json_int_t)parts);
    out->field = fmt("g:%s%s", group_id, sfx);
    out->key = fmt("%s/group/%s%s", site, group_id, sfx);
    out->ident = strdup(name);
    if (out->content)
        out->fp = content_fp(out->content);
    return item_done(out, errstr, errstr_size);
}

jp_err_t jp_recon_role_item(const char *site, const char *project, const jp_jira_role_t *role,
                            bool filtered, json_t *members, int64_t part, int64_t parts,
                            jp_recon_item_t *out, char *errstr, size_t errstr_size)
{
    memset(out, 0, sizeof(*out));
    char sfx[32];
    const char *name = role->name ? role->name : "";
    part_suffix(part, sfx, sizeof(sfx));
    out->kind = JP_RECON_ITEM_ROLE;
    out->content = json_pack(
        "{s:s, s:{s:s, s:s, s:s}, s:s, s:o, s:s, s:I, s:s, s:o, s:I, s:I}", "type", "projectRole",
        "entitlement", "type", "projectRole", "project", project, "role", name, "displayName", name,
        "description", str_or_null(role->description), "project", project, "roleId",
        (json_int_t)role->id, "membership", filtered ? "filtered" : "complete", "members",
        members ? members : json_array(), "part", (json_int_t)part, "parts", (json_int_t)parts);
    out->field = fmt("r:%s:%" PRId64 "%s", project, role->id, sfx);
    out->key = fmt("%s/projectRole/%s/%" PRId64 "%s", site, project, role->id, sfx);
    out->ident = strdup(name);
    if (out->content)
        out->fp = content_fp(out->content);
    return item_done(out, errstr, errstr_size);
}

json_t *jp_recon_member_user(const jp_jira_user_t *u)
{
    json_t *m = json_pack("{s:s, s:s}", "type", "user", "accountId", u->account_id);
    if (!m)
        return NULL;
    if (u->email)
        json_object_set_new(m, "email", json_string(u->email));
    if (u->display_name)
        json_object_set_new(m, "displayName", json_string(u->display_name));
    json_object_set_new(m, "active", json_boolean(u->active));
    return m;
}

json_t *jp_recon_member_actor(const char *account_id)
{
    return json_pack("{s:s, s:s}", "type", "user", "accountId", account_id);
}

json_t *jp_recon_member_group(const char *group_id, const char *name)
{
    json_t *m = json_pack("{s:s, s:s}", "type", "group", "groupId", group_id);
    if (m && name)
        json_object_set_new(m, "group", json_string(name));
    return m;
}

/* Splits "<body>#<digits>" into body length and part (1 without a suffix). */
static size_t split_part(const char *s, int64_t *part)
{
    const char *h = strrchr(s, '#');
    *part = 1;
    if (!h || !h[1] || strspn(h + 1, "0123456789") != strlen(h + 1))
        return strlen(s);
    long long p = strtoll(h + 1, NULL, 10);
    if (p < 2)
        return strlen(s);
    *part = p;
    return (size_t)(h - s);
}

jp_err_t jp_recon_removed_item(jp_attr_t key_attr, const char *site, const char *field,
                               const char *value, size_t value_len, jp_recon_item_t *out,
                               char *errstr, size_t errstr_size)
{
    memset(out, 0, sizeof(*out));
    uint64_t fp;
    const char *ident;
    size_t ilen;
    if (!field || strlen(field) < 3 || field[1] != ':' ||
        !jp_recon_fp_parse(value, value_len, &fp, &ident, &ilen) || memchr(ident, '\0', ilen))
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "not a reconciliation fingerprint entry");
    char *name = strndup(ident, ilen);
    if (!name)
        return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
    const char *rest = field + 2;
    int64_t part = 1;
    char sfx[32];
    if (field[0] == 'a') {
        out->kind = JP_RECON_ITEM_ACCOUNT;
        out->content = json_pack("{s:{s:s, s:o}, s:s}", "key", "attribute", jp_attr_name(key_attr),
                                 "value", *name ? json_string(name) : json_null(), "scimId", rest);
        out->key = fmt("%s/account/%s", site, rest);
    } else if (field[0] == 'g') {
        size_t n = split_part(rest, &part);
        char *gid = strndup(rest, n);
        part_suffix(part, sfx, sizeof(sfx));
        out->kind = JP_RECON_ITEM_GROUP;
        if (gid && *gid) {
            out->content =
                json_pack("{s:s, s:{s:s, s:s}, s:s, s:I}", "type", "group", "entitlement", "type",
                          "group", "group", name, "groupId", gid, "part", (json_int_t)part);
            out->key = fmt("%s/group/%s%s", site, gid, sfx);
        }
        free(gid);
    } else if (field[0] == 'r') {
        size_t n = split_part(rest, &part);
        const char *colon = memchr(rest, ':', n);
        char *project = colon ? strndup(rest, (size_t)(colon - rest)) : NULL;
        char *idtext = colon ? strndup(colon + 1, n - (size_t)(colon - rest) - 1) : NULL;
        char *end = NULL;
        long long rid = idtext && *idtext ? strtoll(idtext, &end, 10) : 0;
        part_suffix(part, sfx, sizeof(sfx));
        out->kind = JP_RECON_ITEM_ROLE;
        if (project && jp_event_valid_project_key(project) && end && !*end && rid > 0) {
            out->content =
                json_pack("{s:s, s:{s:s, s:s, s:s}, s:s, s:I, s:I}", "type", "projectRole",
                          "entitlement", "type", "projectRole", "project", project, "role", name,
                          "project", project, "roleId", (json_int_t)rid, "part", (json_int_t)part);
            out->key = fmt("%s/projectRole/%s/%lld%s", site, project, rid, sfx);
        }
        free(project);
        free(idtext);
    }
    if (!out->content || !out->key) {
        free(name);
        jp_recon_item_clear(out);
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "not a reconciliation fingerprint field: %.64s", field);
    }
    out->field = strdup(field);
    out->ident = name;
    return item_done(out, errstr, errstr_size);
}

/* ---- fingerprints ------------------------------------------------------------------------- */

size_t jp_recon_fp_value(uint64_t fp, const char *ident, char *out, size_t out_size)
{
    size_t n = ident ? strlen(ident) : 0;
    if (out_size < JP_RECON_FP_BYTES + n)
        return 0;
    for (int i = 0; i < JP_RECON_FP_BYTES; i++)
        out[i] = (char)(unsigned char)(fp >> (8 * (JP_RECON_FP_BYTES - 1 - i)));
    if (n)
        memcpy(out + JP_RECON_FP_BYTES, ident, n);
    return JP_RECON_FP_BYTES + n;
}

bool jp_recon_fp_parse(const char *value, size_t len, uint64_t *fp, const char **ident,
                       size_t *ident_len)
{
    if (!value || len < JP_RECON_FP_BYTES)
        return false;
    uint64_t v = 0;
    for (int i = 0; i < JP_RECON_FP_BYTES; i++)
        v = (v << 8) | (unsigned char)value[i];
    *fp = v;
    *ident = value + JP_RECON_FP_BYTES;
    *ident_len = len - JP_RECON_FP_BYTES;
    return true;
}

const char *jp_recon_change_name(jp_recon_change_t c)
{
    static const char *const names[] = {"created", "changed", "unchanged"};
    return (unsigned)c <= JP_RECON_UNCHANGED ? names[c] : NULL;
}

jp_recon_change_t jp_recon_diff(const char *prev, size_t prev_len, uint64_t fp)
{
    uint64_t old;
    const char *ident;
    size_t ilen;
    if (!prev || !jp_recon_fp_parse(prev, prev_len, &old, &ident, &ilen))
        return JP_RECON_CREATED;
    return old == fp ? JP_RECON_UNCHANGED : JP_RECON_CHANGED;
}

/* ---- records ------------------------------------------------------------------------------ */

char *jp_recon_run_key(const jp_recon_def_t *d)
{
    return fmt("%s/recon/%s", d->site, d->recon_id);
}

/* The CloudEvents envelope around data (stolen). */
static json_t *envelope(const jp_recon_def_t *d, const char *instance_id, const char *id,
                        const char *type, const char *subject, int64_t time_ms, json_t *data)
{
    char *source = fmt("%s%s", JP_RECORD_SOURCE_PREFIX, instance_id ? instance_id : "");
    json_t *e = source && data && instance_id && *instance_id
                    ? json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:s, s:s, s:s}", "specversion",
                                "1.0", "id", id, "source", source, "type", type, "subject", subject,
                                "time", time_json(time_ms), "datacontenttype", "application/json",
                                "jirasite", d->site, "idhubactor", d->actor)
                    : NULL;
    free(source);
    if (!e) {
        json_decref(data);
        return NULL;
    }
    if (d->traceparent)
        json_object_set_new(e, "traceparent", json_string(d->traceparent));
    if (d->correlationid)
        json_object_set_new(e, "correlationid", json_string(d->correlationid));
    json_object_set_new(e, "data", data);
    return e;
}

json_t *jp_recon_record_started(const jp_recon_def_t *d, const char *instance_id,
                                int64_t started_ms)
{
    json_t *data =
        json_pack("{s:s, s:s, s:s, s:o}", "reconId", d->recon_id, "site", d->site, "mode",
                  mode_names[d->mode], "resources", resources_json(d->resources));
    if (!data)
        return NULL;
    if (d->filter)
        json_object_set(data, "filter", d->filter);
    json_object_set_new(data, "scope", json_string(d->scope));
    json_object_set_new(data, "requestId", json_string(d->event_id));
    json_object_set_new(data, "seq", json_integer(0));
    json_object_set_new(data, "startedAt", time_json(started_ms));
    char *id = fmt("%s:%s:started", d->site, d->recon_id);
    char *key = jp_recon_run_key(d);
    json_t *rec = id && key
                      ? envelope(d, instance_id, id, JP_RECON_TYPE_STARTED, key, started_ms, data)
                      : (json_decref(data), NULL);
    free(id);
    free(key);
    return rec;
}

json_t *jp_recon_record_item(const jp_recon_def_t *d, const char *instance_id,
                             const jp_recon_item_t *it, int64_t seq, const char *operation,
                             const char *change, int64_t now_ms)
{
    json_t *data = json_pack("{s:s, s:I, s:s, s:s}", "reconId", d->recon_id, "seq", (json_int_t)seq,
                             "site", d->site, "operation", operation);
    if (!data)
        return NULL;
    if (change)
        json_object_set_new(data, "change", json_string(change));
    json_object_update(data, it->content);
    char *id = fmt("%s:%s:%" PRId64, d->site, d->recon_id, seq);
    const char *type =
        it->kind == JP_RECON_ITEM_ACCOUNT ? JP_RECON_TYPE_ACCOUNT : JP_RECON_TYPE_ENTITLEMENT;
    json_t *rec =
        id ? envelope(d, instance_id, id, type, it->key, now_ms, data) : (json_decref(data), NULL);
    free(id);
    return rec;
}

json_t *jp_recon_record_completed(const jp_recon_ckpt_t *c, const char *instance_id)
{
    const jp_recon_def_t *d = &c->def;
    json_t *data =
        json_pack("{s:s, s:s, s:s, s:s, s:I, s:o, s:o, s:o, s:I, s:o}", "reconId", d->recon_id,
                  "site", d->site, "mode", mode_names[d->mode], "scope", d->scope, "seq",
                  (json_int_t)c->seq, "counts", counts_json(&c->counts), "startedAt",
                  time_json(c->started_ms), "completedAt", time_json(c->completed_ms), "durationMs",
                  (json_int_t)c->duration_ms, "watermark", time_json(c->started_ms));
    if (!data)
        return NULL;
    char *id = fmt("%s:%s:completed", d->site, d->recon_id);
    char *key = jp_recon_run_key(d);
    json_t *rec = id && key ? envelope(d, instance_id, id, JP_RECON_TYPE_COMPLETED, key,
                                       c->completed_ms, data)
                            : (json_decref(data), NULL);
    free(id);
    free(key);
    return rec;
}
