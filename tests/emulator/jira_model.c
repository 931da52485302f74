/* jira_model.c - projects, workflows, roles and issues of the emulated site.
 *
 * Seed format (emu_jira_seed and jira_state_seed_json):
 *   {"roles":[{"id":10002,"name":"Administrators","description":"…"}],
 *    "projects":[{"key":"ABC","id":"10000","name":"…","description":"…","lead":"<accountId>",
 *                 "projectTypeKey":"software",
 *                 "issueTypes":[{"id":"10001","name":"Task","subtask":false,"description":"…"}],
 *                 "workflow":{"name":"…","initial":"To Do",
 *                             "statuses":[{"id":"10000","name":"To Do","category":"new"}],
 *                             "transitions":[{"id":"11","name":"Start","from":["To Do"],
 *                                             "to":"In Progress"}]},
 *                 "roles":{"Developers":{"users":["<accountId>"],"groups":["<name or id>"]}}}],
 *    "issues":[{"project":"ABC","key":"ABC-7","issuetype":"Task","summary":"…",
 *               "description":{ADF},"labels":["x"],"priority":"High","assignee":"<accountId>",
 *               "reporter":"<accountId>","status":"In Progress","parent":"ABC-1",
 *               "properties":{"k":{…}}}]}
 * Every key except project key/name, issue project/summary, role id/name and
 * status/transition names is optional. A project without issueTypes gets
 * Task/Bug/Story/Sub-task; without workflow, To Do / In Progress / Done.
 * Transition "from" missing or empty makes the transition global.
 * Status categories: "new" (To Do), "indeterminate" (In Progress), "done". */
#include "jira.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const jira_priority_t jira_priorities[JIRA_NPRIORITIES] = {
    {"1", "Highest"}, {"2", "High"}, {"3", "Medium"}, {"4", "Low"}, {"5", "Lowest"}};

#define JIRA_DEFAULT_PRIORITY 2 /* Medium */

/* ---- categories -------------------------------------------------------------- */

const char *jira_cat_key(int cat)
{
    switch (cat) {
    case JIRA_CAT_NEW:
        return "new";
    case JIRA_CAT_INPROGRESS:
        return "indeterminate";
    case JIRA_CAT_DONE:
        return "done";
    default:
        return "undefined";
    }
}

const char *jira_cat_name(int cat)
{
    switch (cat) {
    case JIRA_CAT_NEW:
        return "To Do";
    case JIRA_CAT_INPROGRESS:
        return "In Progress";
    case JIRA_CAT_DONE:
        return "Done";
    default:
        return "No Category";
    }
}

const char *jira_cat_color(int cat)
{
    switch (cat) {
    case JIRA_CAT_NEW:
        return "blue-gray";
    case JIRA_CAT_INPROGRESS:
        return "yellow";
    case JIRA_CAT_DONE:
        return "green";
    default:
        return "medium-gray";
    }
}

static int jira_cat_parse(const char *s)
{
    if (!s)
        return 0;
    if (strcasecmp(s, "new") == 0 || strcasecmp(s, "To Do") == 0 || strcmp(s, "2") == 0)
        return JIRA_CAT_NEW;
    if (strcasecmp(s, "indeterminate") == 0 || strcasecmp(s, "In Progress") == 0 ||
        strcmp(s, "4") == 0)
        return JIRA_CAT_INPROGRESS;
    if (strcasecmp(s, "done") == 0 || strcmp(s, "3") == 0)
        return JIRA_CAT_DONE;
    return 0;
}

/* ---- state lifecycle ------------------------------------------------------------ */

jira_state_t *jira_state_new(void)
{
    jira_state_t *st = calloc(1, sizeof(*st));
    if (!st)
        return NULL;
    st->proj_by_key = emu_map_new(false);
    st->proj_by_id = emu_map_new(false);
    st->issue_by_id = emu_map_new(false);
    st->issue_by_key = emu_map_new(true);
    st->postings = emu_map_new(false);
    if (!st->proj_by_key || !st->proj_by_id || !st->issue_by_id || !st->issue_by_key ||
        !st->postings) {
        jira_state_free(st);
        return NULL;
    }
    st->next_issue_id = 10000;
    st->next_project_id = 10000;
    st->next_actor_id = 10100;
    return st;
}

static void jira_issue_free(jira_issue_t *is)
{
    free(is->summary);
    json_decref(is->description);
    for (size_t i = 0; i < is->labels.n; i++)
        free(is->labels.v[i]);
    jira_vec_clear(&is->labels);
    free(is->assignee);
    free(is->reporter);
    jira_vec_clear(&is->subtasks);
    json_decref(is->props);
    free(is);
}

static void jira_workflow_clear(jira_workflow_t *wf)
{
    for (size_t i = 0; i < wf->statuses.n; i++) {
        jira_status_t *s = wf->statuses.v[i];
        free(s->name);
        free(s->description);
        free(s);
    }
    for (size_t i = 0; i < wf->transitions.n; i++) {
        jira_transition_t *t = wf->transitions.v[i];
        free(t->name);
        jira_vec_clear(&t->from);
        free(t);
    }
    jira_vec_clear(&wf->statuses);
    jira_vec_clear(&wf->transitions);
    free(wf->name);
    memset(wf, 0, sizeof(*wf));
}

static void jira_role_actors_free(jira_role_actors_t *ra)
{
    for (size_t i = 0; i < ra->actors.n; i++) {
        jira_actor_t *a = ra->actors.v[i];
        free(a->value);
        free(a);
    }
    jira_vec_clear(&ra->actors);
    free(ra);
}

static void jira_project_free(jira_project_t *p)
{
    if (!p)
        return;
    free(p->name);
    free(p->description);
    free(p->lead);
    free(p->type_key);
    for (size_t i = 0; i < p->itypes.n; i++) {
        jira_itype_t *t = p->itypes.v[i];
        free(t->name);
        free(t->description);
        free(t);
    }
    jira_vec_clear(&p->itypes);
    jira_workflow_clear(&p->wf);
    for (size_t i = 0; i < p->role_actors.n; i++)
        jira_role_actors_free(p->role_actors.v[i]);
    jira_vec_clear(&p->role_actors);
    free(p);
}

void jira_state_free(jira_state_t *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < st->issues.n; i++)
        jira_issue_free(st->issues.v[i]);
    jira_vec_clear(&st->issues);
    for (size_t i = 0; i < st->projects.n; i++)
        jira_project_free(st->projects.v[i]);
    jira_vec_clear(&st->projects);
    for (size_t i = 0; i < st->roles.n; i++) {
        jira_role_t *r = st->roles.v[i];
        free(r->name);
        free(r->description);
        free(r);
    }
    jira_vec_clear(&st->roles);
    if (st->postings) {
        size_t pos = 0;
        void *v;
        while (emu_map_next(st->postings, &pos, NULL, &v)) {
            jira_vec_clear(v);
            free(v);
        }
    }
    emu_map_destroy(st->postings);
    emu_map_destroy(st->proj_by_key);
    emu_map_destroy(st->proj_by_id);
    emu_map_destroy(st->issue_by_id);
    emu_map_destroy(st->issue_by_key);
    free(st);
}

int64_t jira_state_stamp(jira_state_t *st)
{
    int64_t now = emu_now_ms();
    if (now < st->last_time)
        now = st->last_time; /* never go backwards if the wall clock steps */
    st->last_time = now;
    return now;
}

/* ---- lookups ---------------------------------------------------------------------- */

jira_project_t *jira_project_find(jira_state_t *st, const char *id_or_key)
{
    if (!id_or_key)
        return NULL;
    jira_project_t *p = emu_map_get(st->proj_by_key, id_or_key);
    return p ? p : emu_map_get(st->proj_by_id, id_or_key);
}

jira_issue_t *jira_issue_find(jira_state_t *st, const char *id_or_key)
{
    if (!id_or_key)
        return NULL;
    jira_issue_t *is = emu_map_get(st->issue_by_id, id_or_key);
    return is ? is : emu_map_get(st->issue_by_key, id_or_key);
}

jira_role_t *jira_role_find(jira_state_t *st, int64_t id)
{
    for (size_t i = 0; i < st->roles.n; i++) {
        jira_role_t *r = st->roles.v[i];
        if (r->id == id)
            return r;
    }
    return NULL;
}

static jira_role_t *jira_role_by_ref(jira_state_t *st, const char *ref)
{
    int64_t id;
    if (jira_parse_i64(ref, &id) == 0)
        return jira_role_find(st, id);
    for (size_t i = 0; i < st->roles.n; i++) {
        jira_role_t *r = st->roles.v[i];
        if (strcasecmp(r->name, ref) == 0)
            return r;
    }
    return NULL;
}

jira_role_actors_t *jira_project_role(jira_project_t *p, jira_role_t *r)
{
    for (size_t i = 0; i < p->role_actors.n; i++) {
        jira_role_actors_t *ra = p->role_actors.v[i];
        if (ra->role == r)
            return ra;
    }
    jira_role_actors_t *ra = calloc(1, sizeof(*ra));
    if (!ra)
        return NULL;
    ra->role = r;
    if (jira_vec_push(&p->role_actors, ra) != 0) {
        free(ra);
        return NULL;
    }
    return ra;
}

jira_itype_t *jira_itype_find(jira_project_t *p, const char *id_or_name)
{
    if (!id_or_name)
        return NULL;
    for (size_t i = 0; i < p->itypes.n; i++) {
        jira_itype_t *t = p->itypes.v[i];
        if (strcmp(t->id, id_or_name) == 0)
            return t;
    }
    for (size_t i = 0; i < p->itypes.n; i++) {
        jira_itype_t *t = p->itypes.v[i];
        if (strcasecmp(t->name, id_or_name) == 0)
            return t;
    }
    return NULL;
}

jira_status_t *jira_status_find(jira_workflow_t *wf, const char *id_or_name)
{
    if (!id_or_name)
        return NULL;
    for (size_t i = 0; i < wf->statuses.n; i++) {
        jira_status_t *s = wf->statuses.v[i];
        if (strcmp(s->id, id_or_name) == 0)
            return s;
    }
    for (size_t i = 0; i < wf->statuses.n; i++) {
        jira_status_t *s = wf->statuses.v[i];
        if (strcasecmp(s->name, id_or_name) == 0)
            return s;
    }
    return NULL;
}

int jira_priority_find(const char *id_or_name)
{
    if (!id_or_name)
        return -1;
    for (int i = 0; i < JIRA_NPRIORITIES; i++)
        if (strcmp(jira_priorities[i].id, id_or_name) == 0 ||
            strcasecmp(jira_priorities[i].name, id_or_name) == 0)
            return i;
    return -1;
}

jira_transition_t *jira_transition_find(jira_workflow_t *wf, const char *id)
{
    if (!id)
        return NULL;
    for (size_t i = 0; i < wf->transitions.n; i++) {
        jira_transition_t *t = wf->transitions.v[i];
        if (strcmp(t->id, id) == 0)
            return t;
    }
    return NULL;
}

/* A global transition is offered from every status except its own target
 * (Jira hides a global transition that would not move the issue). */
int jira_transition_available(const jira_issue_t *is, const jira_transition_t *t)
{
    if (t->from.n == 0)
        return t->to != is->status;
    return jira_vec_contains(&t->from, is->status);
}

void jira_transitions_available(jira_issue_t *is, jira_vec_t *out)
{
    jira_workflow_t *wf = &is->proj->wf;
    for (size_t i = 0; i < wf->transitions.n; i++)
        if (jira_transition_available(is, wf->transitions.v[i]))
            jira_vec_push(out, wf->transitions.v[i]);
}

/* ---- roles and actors ------------------------------------------------------------------ */

jira_role_t *jira_role_add(jira_state_t *st, int64_t id, const char *name, const char *description)
{
    jira_role_t *r = jira_role_find(st, id);
    if (!r) {
        r = calloc(1, sizeof(*r));
        if (!r || jira_vec_push(&st->roles, r) != 0) {
            free(r);
            return NULL;
        }
        r->id = id;
    }
    emu_str_set(&r->name, name);
    emu_str_set(&r->description, description ? description : "");
    return r;
}

jira_actor_t *jira_actor_find(jira_role_actors_t *ra, int type, const char *value)
{
    for (size_t i = 0; i < ra->actors.n; i++) {
        jira_actor_t *a = ra->actors.v[i];
        if (a->type == type && strcmp(a->value, value) == 0)
            return a;
    }
    return NULL;
}

jira_actor_t *jira_actor_add(jira_state_t *st, jira_role_actors_t *ra, int type, const char *value)
{
    if (jira_actor_find(ra, type, value))
        return NULL;
    jira_actor_t *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->value = jira_strdup(value);
    if (!a->value || jira_vec_push(&ra->actors, a) != 0) {
        free(a->value);
        free(a);
        return NULL;
    }
    a->id = st->next_actor_id++;
    a->type = type;
    return a;
}

void jira_actor_remove(jira_role_actors_t *ra, jira_actor_t *a)
{
    if (jira_vec_remove(&ra->actors, a)) {
        free(a->value);
        free(a);
    }
}

/* ---- index ------------------------------------------------------------------------------- */

/* Index term: kind 'l' (label, case-folded since JQL matches labels without
 * regard to case) or 'p' (property key, path, scalar text). */
static void jira_term(jira_buf_t *b, char kind, const char *a, const char *p, const char *v)
{
    b->n = 0;
    jira_buf_addf(b, "%c\x1f%s", kind, a);
    if (p)
        jira_buf_addf(b, "\x1f%s\x1f%s", p, v);
    if (kind == 'l' && b->s)
        for (size_t i = 2; i < b->n; i++)
            if (b->s[i] >= 'A' && b->s[i] <= 'Z')
                b->s[i] = (char)(b->s[i] - 'A' + 'a');
}

static void jira_post_add(jira_state_t *st, const char *term, jira_issue_t *is)
{
    jira_vec_t *v = emu_map_get(st->postings, term);
    if (!v) {
        v = calloc(1, sizeof(*v));
        if (!v)
            return;
        emu_map_put(st->postings, term, v);
    }
    if (!jira_vec_contains(v, is))
        jira_vec_push(v, is);
}

static void jira_post_del(jira_state_t *st, const char *term, jira_issue_t *is)
{
    jira_vec_t *v = emu_map_get(st->postings, term);
    if (!v)
        return;
    jira_vec_remove(v, is);
    if (v->n == 0) {
        emu_map_del(st->postings, term);
        jira_vec_clear(v);
        free(v);
    }
}

const jira_vec_t *jira_index_label(jira_state_t *st, const char *label)
{
    jira_buf_t b = {0};
    jira_term(&b, 'l', label, NULL, NULL);
    const jira_vec_t *v = b.s ? emu_map_get(st->postings, b.s) : NULL;
    jira_buf_free(&b);
    return v;
}

const jira_vec_t *jira_index_prop(jira_state_t *st, const char *key, const char *path,
                                  const char *value)
{
    jira_buf_t b = {0};
    jira_term(&b, 'p', key, path, value);
    const jira_vec_t *v = b.s ? emu_map_get(st->postings, b.s) : NULL;
    jira_buf_free(&b);
    return v;
}

const char *jira_scalar_text(const json_t *v, char *buf, size_t bufsz)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        return json_string_value(v);
    case JSON_INTEGER:
        snprintf(buf, bufsz, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return buf;
    case JSON_REAL:
        snprintf(buf, bufsz, "%.17g", json_real_value(v));
        return buf;
    case JSON_TRUE:
        return "true";
    case JSON_FALSE:
        return "false";
    default:
        return NULL;
    }
}

const json_t *jira_json_path(const json_t *v, const char *path)
{
    if (!path || !*path)
        return v;
    char seg[256];
    while (v && *path) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        if (n == 0 || n >= sizeof(seg))
            return NULL;
        memcpy(seg, path, n);
        seg[n] = '\0';
        v = json_is_object(v) ? json_object_get(v, seg) : NULL;
        path += n + (dot ? 1 : 0);
    }
    return v;
}

/* Calls fn for every scalar leaf of v with its dotted path; array elements
 * share their array's path, as Jira's property index flattens them. Bounded
 * in depth so that a hostile 32 KiB value cannot recurse deeply. */
typedef void (*jira_leaf_fn)(jira_state_t *st, jira_issue_t *is, const char *key, const char *path,
                             const char *value);

static void jira_leaves(jira_state_t *st, jira_issue_t *is, const char *key, const json_t *v,
                        char *path, size_t plen, size_t pcap, int depth, jira_leaf_fn fn)
{
    char tmp[64];
    if (depth > 8)
        return;
    if (json_is_object(v)) {
        const char *k;
        json_t *c;
        json_object_foreach((json_t *)v, k, c)
        {
            size_t kl = strlen(k);
            size_t need = plen + (plen ? 1 : 0) + kl;
            if (need + 1 > pcap)
                continue;
            size_t np = plen;
            if (plen)
                path[np++] = '.';
            memcpy(path + np, k, kl + 1);
            jira_leaves(st, is, key, c, path, need, pcap, depth + 1, fn);
            path[plen] = '\0';
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *c;
        json_array_foreach(v, i, c)
        {
            if (!json_is_object(c) && !json_is_array(c))
                jira_leaves(st, is, key, c, path, plen, pcap, depth + 1, fn);
        }
    } else {
        const char *text = jira_scalar_text(v, tmp, sizeof(tmp));
        if (text)
            fn(st, is, key, path, text);
    }
}

static void jira_leaf_index(jira_state_t *st, jira_issue_t *is, const char *key, const char *path,
                            const char *value)
{
    jira_buf_t b = {0};
    jira_term(&b, 'p', key, path, value);
    if (b.s)
        jira_post_add(st, b.s, is);
    jira_buf_free(&b);
}

static void jira_leaf_unindex(jira_state_t *st, jira_issue_t *is, const char *key, const char *path,
                              const char *value)
{
    jira_buf_t b = {0};
    jira_term(&b, 'p', key, path, value);
    if (b.s)
        jira_post_del(st, b.s, is);
    jira_buf_free(&b);
}

static void jira_prop_index(jira_state_t *st, jira_issue_t *is, const char *key, const json_t *v,
                            jira_leaf_fn fn)
{
    char path[512] = "";
    jira_leaves(st, is, key, v, path, 0, sizeof(path), 0, fn);
}

/* ---- issues ------------------------------------------------------------------------------- */

void jira_issue_touch(jira_state_t *st, jira_issue_t *is)
{
    is->updated = jira_state_stamp(st);
}

void jira_issue_set_summary(jira_issue_t *is, const char *s)
{
    emu_str_set(&is->summary, s);
}

void jira_issue_set_description(jira_issue_t *is, json_t *desc)
{
    json_decref(is->description);
    is->description = desc;
}

void jira_issue_set_assignee(jira_issue_t *is, const char *account_id)
{
    emu_str_set(&is->assignee, account_id);
}

static int jira_label_cmp(const char *a, const char *b)
{
    return strcmp(a, b);
}

int jira_issue_label_add(jira_state_t *st, jira_issue_t *is, const char *label)
{
    size_t at = 0;
    while (at < is->labels.n) {
        int c = jira_label_cmp(is->labels.v[at], label);
        if (c == 0)
            return 0;
        if (c > 0)
            break;
        at++;
    }
    char *d = jira_strdup(label);
    if (!d || jira_vec_push(&is->labels, d) != 0) {
        free(d);
        return -1;
    }
    memmove(&is->labels.v[at + 1], &is->labels.v[at], (is->labels.n - 1 - at) * sizeof(void *));
    is->labels.v[at] = d;
    jira_buf_t b = {0};
    jira_term(&b, 'l', label, NULL, NULL);
    if (b.s)
        jira_post_add(st, b.s, is);
    jira_buf_free(&b);
    return 1;
}

int jira_issue_label_remove(jira_state_t *st, jira_issue_t *is, const char *label)
{
    for (size_t i = 0; i < is->labels.n; i++) {
        char *l = is->labels.v[i];
        if (strcmp(l, label) == 0) {
            jira_vec_remove(&is->labels, l);
            int twin = 0; /* another label equal but for case keeps the posting */
            for (size_t j = 0; j < is->labels.n && !twin; j++)
                twin = strcasecmp(is->labels.v[j], label) == 0;
            jira_buf_t b = {0};
            jira_term(&b, 'l', label, NULL, NULL);
            if (b.s && !twin)
                jira_post_del(st, b.s, is);
            jira_buf_free(&b);
            free(l);
            return 1;
        }
    }
    return 0;
}

void jira_issue_labels_clear(jira_state_t *st, jira_issue_t *is)
{
    while (is->labels.n > 0) {
        char *first = jira_strdup(is->labels.v[0]);
        if (!first)
            return;
        jira_issue_label_remove(st, is, first);
        free(first);
    }
}

int jira_issue_prop_set(jira_state_t *st, jira_issue_t *is, const char *key, json_t *value)
{
    json_t *old = json_object_get(is->props, key);
    int created = old == NULL;
    if (old)
        jira_prop_index(st, is, key, old, jira_leaf_unindex);
    if (json_object_set_new(is->props, key, value) != 0)
        return -1;
    jira_prop_index(st, is, key, value, jira_leaf_index);
    return created;
}

int jira_issue_prop_del(jira_state_t *st, jira_issue_t *is, const char *key)
{
    json_t *old = json_object_get(is->props, key);
    if (!old)
        return 0;
    jira_prop_index(st, is, key, old, jira_leaf_unindex);
    json_object_del(is->props, key);
    return 1;
}

jira_issue_t *jira_issue_create(jira_state_t *st, jira_project_t *p, jira_itype_t *t,
                                const char *summary, json_t *desc, int priority,
                                const char *assignee, const char *reporter, jira_issue_t *parent)
{
    jira_issue_t *is = calloc(1, sizeof(*is));
    if (!is) {
        json_decref(desc);
        return NULL;
    }
    is->props = json_object();
    is->summary = jira_strdup(summary);
    is->description = desc;
    if (!is->props || !is->summary || jira_vec_push(&st->issues, is) != 0) {
        jira_issue_free(is);
        return NULL;
    }
    is->id = st->next_issue_id++;
    snprintf(is->idstr, sizeof(is->idstr), "%lld", (long long)is->id);
    is->num = p->next_num++;
    snprintf(is->key, sizeof(is->key), "%s-%lld", p->key, (long long)is->num);
    is->proj = p;
    is->itype = t;
    is->priority = priority >= 0 ? priority : JIRA_DEFAULT_PRIORITY;
    is->assignee = jira_strdup(assignee);
    is->reporter = jira_strdup(reporter);
    is->status = p->wf.initial;
    is->created = is->updated = is->status_changed = jira_state_stamp(st);
    is->parent = parent;
    if (parent)
        jira_vec_push(&parent->subtasks, is);
    p->issue_count++;
    emu_map_put(st->issue_by_id, is->idstr, is);
    emu_map_put(st->issue_by_key, is->key, is);
    return is;
}

void jira_issue_delete(jira_state_t *st, jira_issue_t *is)
{
    while (is->subtasks.n > 0)
        jira_issue_delete(st, is->subtasks.v[is->subtasks.n - 1]);
    if (is->parent)
        jira_vec_remove(&is->parent->subtasks, is);
    jira_issue_labels_clear(st, is);
    const char *k;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(is->props, tmp, k, v)
    {
        jira_prop_index(st, is, k, v, jira_leaf_unindex);
    }
    emu_map_del(st->issue_by_id, is->idstr);
    emu_map_del(st->issue_by_key, is->key);
    jira_vec_remove(&st->issues, is);
    is->proj->issue_count--;
    jira_issue_free(is);
}

/* ---- project definitions ----------------------------------------------------------------------
 */

static const char *jira_jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* Accepts ids given as JSON strings or integers. */
static int jira_jid(const json_t *o, const char *k, char *out, size_t n)
{
    const json_t *v = json_object_get(o, k);
    if (json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) < n) {
        snprintf(out, n, "%s", json_string_value(v));
        return 1;
    }
    if (json_is_integer(v)) {
        snprintf(out, n, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return 1;
    }
    return 0;
}

static int jira_valid_project_key(const char *k)
{
    size_t n = strlen(k);
    if (n < 2 || n > 10 || k[0] < 'A' || k[0] > 'Z')
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!((k[i] >= 'A' && k[i] <= 'Z') || (k[i] >= '0' && k[i] <= '9') || k[i] == '_'))
            return 0;
    return 1;
}

static jira_itype_t *jira_itype_add(jira_project_t *p, const char *id, const char *name,
                                    int subtask, const char *desc)
{
    jira_itype_t *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    snprintf(t->id, sizeof(t->id), "%s", id);
    t->name = jira_strdup(name);
    t->description = jira_strdup(desc ? desc : "");
    t->subtask = subtask;
    if (!t->name || !t->description || jira_vec_push(&p->itypes, t) != 0) {
        free(t->name);
        free(t->description);
        free(t);
        return NULL;
    }
    return t;
}

static int jira_itypes_default(jira_project_t *p)
{
    static const struct {
        const char *id, *name, *desc;
        int subtask;
    } defs[] = {
        {"10001", "Task", "A small, distinct piece of work.", 0},
        {"10002", "Bug", "A problem or error.", 0},
        {"10003", "Story", "A user story.", 0},
        {"10004", "Sub-task", "A small piece of work that's part of a larger task.", 1},
    };
    for (size_t i = 0; i < sizeof(defs) / sizeof(defs[0]); i++)
        if (!jira_itype_add(p, defs[i].id, defs[i].name, defs[i].subtask, defs[i].desc))
            return -1;
    return 0;
}

static int jira_itypes_json(jira_project_t *p, const json_t *arr, char *err, size_t errsz)
{
    size_t i;
    json_t *t;
    json_array_foreach(arr, i, t)
    {
        char id[24];
        const char *name = jira_jstr(t, "name");
        if (!name || !*name) {
            snprintf(err, errsz, "project %s: issue type %zu needs a name", p->key, i);
            return -1;
        }
        if (!jira_jid(t, "id", id, sizeof(id)))
            snprintf(id, sizeof(id), "%zu", 10001 + i);
        if (jira_itype_find(p, id) || jira_itype_find(p, name)) {
            snprintf(err, errsz, "project %s: duplicate issue type %s", p->key, name);
            return -1;
        }
        if (!jira_itype_add(p, id, name, json_is_true(json_object_get(t, "subtask")),
                            jira_jstr(t, "description"))) {
            snprintf(err, errsz, "out of memory");
            return -1;
        }
    }
    return 0;
}

static jira_status_t *jira_status_add(jira_workflow_t *wf, const char *id, const char *name,
                                      int cat, const char *desc)
{
    jira_status_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    snprintf(s->id, sizeof(s->id), "%s", id);
    s->name = jira_strdup(name);
    s->description = jira_strdup(desc ? desc : "");
    s->category = cat;
    if (!s->name || !s->description || jira_vec_push(&wf->statuses, s) != 0) {
        free(s->name);
        free(s->description);
        free(s);
        return NULL;
    }
    if (!wf->initial)
        wf->initial = s;
    return s;
}

static jira_transition_t *jira_transition_add(jira_workflow_t *wf, const char *id, const char *name,
                                              jira_status_t *to)
{
    jira_transition_t *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    snprintf(t->id, sizeof(t->id), "%s", id);
    t->name = jira_strdup(name);
    t->to = to;
    if (!t->name || jira_vec_push(&wf->transitions, t) != 0) {
        free(t->name);
        free(t);
        return NULL;
    }
    return t;
}

static int jira_workflow_json(jira_project_t *p, const json_t *def, char *err, size_t errsz)
{
    jira_workflow_t *wf = &p->wf;
    const char *wname = jira_jstr(def, "name");
    char buf[64];
    snprintf(buf, sizeof(buf), "%s workflow", p->key);
    wf->name = jira_strdup(wname ? wname : buf);
    const json_t *sts = json_object_get(def, "statuses");
    const json_t *trs = json_object_get(def, "transitions");
    if (!json_is_array(sts) || json_array_size(sts) == 0) {
        snprintf(err, errsz, "project %s: workflow needs a non-empty statuses array", p->key);
        return -1;
    }
    size_t i;
    json_t *s;
    json_array_foreach(sts, i, s)
    {
        char id[24];
        const char *name = jira_jstr(s, "name");
        const char *cat = jira_jstr(s, "category");
        int c = cat ? jira_cat_parse(cat) : JIRA_CAT_INPROGRESS;
        if (!name || !*name || !c) {
            snprintf(err, errsz,
                     "project %s: status %zu needs a name and a category of new, "
                     "indeterminate or done",
                     p->key, i);
            return -1;
        }
        if (!jira_jid(s, "id", id, sizeof(id)))
            snprintf(id, sizeof(id), "%zu", 10000 + i);
        if (jira_status_find(wf, id) || jira_status_find(wf, name)) {
            snprintf(err, errsz, "project %s: duplicate status %s", p->key, name);
            return -1;
        }
        if (!jira_status_add(wf, id, name, c, jira_jstr(s, "description"))) {
            snprintf(err, errsz, "out of memory");
            return -1;
        }
    }
    const char *initial = jira_jstr(def, "initial");
    if (initial) {
        wf->initial = jira_status_find(wf, initial);
        if (!wf->initial) {
            snprintf(err, errsz, "project %s: unknown initial status %s", p->key, initial);
            return -1;
        }
    }
    json_t *t;
    json_array_foreach(trs, i, t)
    {
        char id[24];
        const char *name = jira_jstr(t, "name");
        jira_status_t *to = jira_status_find(wf, jira_jstr(t, "to"));
        if (!name || !*name || !to) {
            snprintf(err, errsz, "project %s: transition %zu needs a name and a known 'to' status",
                     p->key, i);
            return -1;
        }
        if (!jira_jid(t, "id", id, sizeof(id)))
            snprintf(id, sizeof(id), "%zu", 11 + 10 * i);
        if (jira_transition_find(wf, id)) {
            snprintf(err, errsz, "project %s: duplicate transition id %s", p->key, id);
            return -1;
        }
        jira_transition_t *tr = jira_transition_add(wf, id, name, to);
        if (!tr) {
            snprintf(err, errsz, "out of memory");
            return -1;
        }
        size_t j;
        json_t *f;
        json_array_foreach(json_object_get(t, "from"), j, f)
        {
            jira_status_t *from = jira_status_find(wf, json_string_value(f));
            if (!from) {
                snprintf(err, errsz, "project %s: transition %s: unknown 'from' status", p->key,
                         id);
                return -1;
            }
            if (!jira_vec_contains(&tr->from, from))
                jira_vec_push(&tr->from, from);
        }
    }
    return 0;
}

static int jira_workflow_default(jira_project_t *p)
{
    json_t *def = json_pack(
        "{s:s, s:[{s:s,s:s,s:s},{s:s,s:s,s:s},{s:s,s:s,s:s}],"
        " s:[{s:s,s:s,s:[s],s:s},{s:s,s:s,s:[s],s:s},{s:s,s:s,s:[s],s:s},{s:s,s:s,s:[s],s:s}]}",
        "name", "Software Simplified Workflow", "statuses", "id", "10000", "name", "To Do",
        "category", "new", "id", "3", "name", "In Progress", "category", "indeterminate", "id",
        "10001", "name", "Done", "category", "done", "transitions", "id", "11", "name",
        "Start Progress", "from", "To Do", "to", "In Progress", "id", "21", "name", "Done", "from",
        "In Progress", "to", "Done", "id", "31", "name", "Stop Progress", "from", "In Progress",
        "to", "To Do", "id", "41", "name", "Reopen", "from", "Done", "to", "To Do");
    char err[128];
    int rc = def ? jira_workflow_json(p, def, err, sizeof(err)) : -1;
    json_decref(def);
    return rc;
}

static int jira_role_actors_json(jira_state_t *st, jira_project_t *p, const json_t *roles,
                                 const jira_ident_env_t *env, char *err, size_t errsz)
{
    const char *rname;
    json_t *def;
    json_object_foreach((json_t *)roles, rname, def)
    {
        jira_role_t *r = jira_role_by_ref(st, rname);
        jira_role_actors_t *ra = r ? jira_project_role(p, r) : NULL;
        if (!ra) {
            snprintf(err, errsz, "project %s: unknown role %s", p->key, rname);
            return -1;
        }
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(def, "users"), i, v)
        {
            const char *acc = json_string_value(v);
            if (!acc || (env && env->user_exists && !env->user_exists(env->ctx, acc))) {
                snprintf(err, errsz, "project %s: role %s: unknown user %s", p->key, rname,
                         acc ? acc : "(not a string)");
                return -1;
            }
            jira_actor_add(st, ra, JIRA_ACTOR_USER, acc);
        }
        json_array_foreach(json_object_get(def, "groups"), i, v)
        {
            const char *g = json_string_value(v);
            const char *gid = g && env && env->group_id ? env->group_id(env->ctx, g) : g;
            if (!gid) {
                snprintf(err, errsz, "project %s: role %s: unknown group %s", p->key, rname,
                         g ? g : "(not a string)");
                return -1;
            }
            jira_actor_add(st, ra, JIRA_ACTOR_GROUP, gid);
        }
    }
    return 0;
}

int jira_project_add_json(jira_state_t *st, const json_t *def, const jira_ident_env_t *env,
                          char *err, size_t errsz)
{
    const char *key = jira_jstr(def, "key");
    const char *name = jira_jstr(def, "name");
    if (!json_is_object(def) || !key || !name || !*name) {
        snprintf(err, errsz, "a project needs a key and a name");
        return -1;
    }
    if (!jira_valid_project_key(key)) {
        snprintf(err, errsz,
                 "project key %s is not valid (A-Z first, then A-Z, 0-9, _; "
                 "2-10 characters)",
                 key);
        return -1;
    }
    if (emu_map_get(st->proj_by_key, key)) {
        snprintf(err, errsz, "project %s already exists", key);
        return -1;
    }
    jira_project_t *p = calloc(1, sizeof(*p));
    if (!p) {
        snprintf(err, errsz, "out of memory");
        return -1;
    }
    snprintf(p->key, sizeof(p->key), "%s", key);
    if (jira_jid(def, "id", p->id, sizeof(p->id))) {
        int64_t n;
        if (jira_parse_i64(p->id, &n) != 0 || emu_map_get(st->proj_by_id, p->id)) {
            snprintf(err, errsz, "project %s: id %s is not a free numeric id", key, p->id);
            jira_project_free(p);
            return -1;
        }
        if (n >= st->next_project_id)
            st->next_project_id = n + 1;
    } else {
        snprintf(p->id, sizeof(p->id), "%lld", (long long)st->next_project_id++);
    }
    p->name = jira_strdup(name);
    p->description =
        jira_strdup(jira_jstr(def, "description") ? jira_jstr(def, "description") : "");
    p->lead = jira_strdup(jira_jstr(def, "lead"));
    p->type_key = jira_strdup(jira_jstr(def, "projectTypeKey") ? jira_jstr(def, "projectTypeKey")
                                                               : "software");
    p->next_num = 1;
    const json_t *types = json_object_get(def, "issueTypes");
    const json_t *wf = json_object_get(def, "workflow");
    int rc = 0;
    if (types && (!json_is_array(types) || json_array_size(types) == 0)) {
        snprintf(err, errsz, "project %s: issueTypes must be a non-empty array", key);
        rc = -1;
    } else if (types) {
        rc = jira_itypes_json(p, types, err, errsz);
    } else if (jira_itypes_default(p) != 0) {
        snprintf(err, errsz, "out of memory");
        rc = -1;
    }
    if (rc == 0) {
        rc = wf ? jira_workflow_json(p, wf, err, errsz) : jira_workflow_default(p);
        if (rc != 0 && !wf)
            snprintf(err, errsz, "out of memory");
    }
    for (size_t i = 0; rc == 0 && i < st->roles.n; i++)
        if (!jira_project_role(p, st->roles.v[i]))
            rc = -1;
    const json_t *roles = json_object_get(def, "roles");
    if (rc == 0 && roles)
        rc = jira_role_actors_json(st, p, roles, env, err, errsz);
    if (rc != 0 || jira_vec_push(&st->projects, p) != 0) {
        jira_project_free(p);
        return -1;
    }
    emu_map_put(st->proj_by_key, p->key, p);
    emu_map_put(st->proj_by_id, p->id, p);
    return 0;
}

/* ---- seeding -----------------------------------------------------------------------------------
 */

static int jira_seed_roles(jira_state_t *st, const json_t *roles, char *err, size_t errsz)
{
    size_t i;
    json_t *r;
    json_array_foreach(roles, i, r)
    {
        const json_t *id = json_object_get(r, "id");
        int64_t rid = 0;
        if (json_is_integer(id))
            rid = json_integer_value(id);
        else if (!json_is_string(id) || jira_parse_i64(json_string_value(id), &rid) != 0)
            rid = 0;
        const char *name = jira_jstr(r, "name");
        if (rid <= 0 || !name || !*name) {
            snprintf(err, errsz, "role %zu needs a positive id and a name", i);
            return -1;
        }
        if (!jira_role_add(st, rid, name, jira_jstr(r, "description"))) {
            snprintf(err, errsz, "out of memory");
            return -1;
        }
    }
    /* Projects created before these roles get empty actor lists for them. */
    for (size_t p = 0; p < st->projects.n; p++)
        for (size_t k = 0; k < st->roles.n; k++)
            jira_project_role(st->projects.v[p], st->roles.v[k]);
    return 0;
}

static int jira_seed_issue(jira_state_t *st, const json_t *d, const jira_ident_env_t *env,
                           char *err, size_t errsz)
{
    jira_project_t *p = jira_project_find(st, jira_jstr(d, "project"));
    const char *summary = jira_jstr(d, "summary");
    if (!p || !summary || !*summary) {
        snprintf(err, errsz, "an issue needs a known project and a summary");
        return -1;
    }
    const char *tname = jira_jstr(d, "issuetype");
    jira_itype_t *t = tname ? jira_itype_find(p, tname) : NULL;
    if (!t && !tname) {
        for (size_t i = 0; i < p->itypes.n && !t; i++)
            if (!((jira_itype_t *)p->itypes.v[i])->subtask)
                t = p->itypes.v[i];
    }
    if (!t) {
        snprintf(err, errsz, "issue '%s': unknown issue type", summary);
        return -1;
    }
    jira_issue_t *parent = NULL;
    const char *pref = jira_jstr(d, "parent");
    if (pref) {
        parent = jira_issue_find(st, pref);
        if (!parent || parent->proj != p || parent->parent || !t->subtask) {
            snprintf(err, errsz, "issue '%s': parent %s is not usable", summary, pref);
            return -1;
        }
    } else if (t->subtask) {
        snprintf(err, errsz, "issue '%s': a sub-task needs a parent", summary);
        return -1;
    }
    const json_t *desc = json_object_get(d, "description");
    if (desc && !json_is_null(desc) && !jira_adf_valid(desc)) {
        snprintf(err, errsz, "issue '%s': description is not an Atlassian Document", summary);
        return -1;
    }
    const char *prio = jira_jstr(d, "priority");
    int pi = prio ? jira_priority_find(prio) : -1;
    if (prio && pi < 0) {
        snprintf(err, errsz, "issue '%s': unknown priority %s", summary, prio);
        return -1;
    }
    const char *assignee = jira_jstr(d, "assignee");
    const char *reporter = jira_jstr(d, "reporter");
    if (env && env->user_exists &&
        ((assignee && !env->user_exists(env->ctx, assignee)) ||
         (reporter && !env->user_exists(env->ctx, reporter)))) {
        snprintf(err, errsz, "issue '%s': unknown assignee or reporter", summary);
        return -1;
    }
    const char *sname = jira_jstr(d, "status");
    jira_status_t *status = sname ? jira_status_find(&p->wf, sname) : p->wf.initial;
    if (!status) {
        snprintf(err, errsz, "issue '%s': unknown status %s", summary, sname);
        return -1;
    }
    const char *key = jira_jstr(d, "key");
    int64_t num = 0;
    if (key) {
        size_t kl = strlen(p->key);
        if (strncmp(key, p->key, kl) != 0 || key[kl] != '-' ||
            jira_parse_i64(key + kl + 1, &num) != 0 || num <= 0 ||
            emu_map_get(st->issue_by_key, key)) {
            snprintf(err, errsz, "issue key %s is not a free key of project %s", key, p->key);
            return -1;
        }
    }
    int64_t saved = p->next_num;
    if (key)
        p->next_num = num;
    jira_issue_t *is = jira_issue_create(st, p, t, summary,
                                         desc && !json_is_null(desc) ? json_deep_copy(desc) : NULL,
                                         pi, assignee, reporter, parent);
    if (key)
        p->next_num = saved > num ? saved : num + 1;
    if (!is) {
        snprintf(err, errsz, "out of memory");
        return -1;
    }
    is->status = status;
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(d, "labels"), i, l)
    {
        const char *ls = json_string_value(l);
        if (ls && *ls && !strchr(ls, ' '))
            jira_issue_label_add(st, is, ls);
    }
    const char *pk;
    json_t *pv;
    json_object_foreach(json_object_get(d, "properties"), pk, pv)
    {
        jira_issue_prop_set(st, is, pk, json_deep_copy(pv));
    }
    const json_t *created = json_object_get(d, "created");
    const json_t *updated = json_object_get(d, "updated");
    if (json_is_integer(created))
        is->created = is->status_changed = json_integer_value(created);
    if (json_is_integer(updated))
        is->updated = json_integer_value(updated);
    return 0;
}

int jira_state_seed_json(jira_state_t *st, const json_t *seed, const jira_ident_env_t *env,
                         char *err, size_t errsz)
{
    const json_t *roles = json_object_get(seed, "roles");
    const json_t *projects = json_object_get(seed, "projects");
    const json_t *issues = json_object_get(seed, "issues");
    if ((roles && !json_is_array(roles)) || (projects && !json_is_array(projects)) ||
        (issues && !json_is_array(issues))) {
        snprintf(err, errsz, "roles, projects and issues must be arrays");
        return -1;
    }
    if (roles && jira_seed_roles(st, roles, err, errsz) != 0)
        return -1;
    size_t i;
    json_t *v;
    json_array_foreach(projects, i, v)
    {
        if (jira_project_add_json(st, v, env, err, errsz) != 0)
            return -1;
    }
    json_array_foreach(issues, i, v)
    {
        if (jira_seed_issue(st, v, env, err, errsz) != 0)
            return -1;
    }
    return 0;
}

static const char jira_demo_seed[] =
    "{\"roles\":["
    "{\"id\":10002,\"name\":\"Administrators\",\"description\":\"A project role that "
    "represents administrators in a project\"},"
    "{\"id\":10000,\"name\":\"Developers\",\"description\":\"A project role that represents "
    "developers in a project\"},"
    "{\"id\":10001,\"name\":\"Users\",\"description\":\"A project role that represents users "
    "in a project\"}],"
    "\"projects\":["
    "{\"key\":\"DEMO\",\"id\":\"10000\",\"name\":\"Demo project\","
    "\"description\":\"Provisioning requests handled by the worker\"},"
    "{\"key\":\"OPS\",\"id\":\"10001\",\"name\":\"Operations\","
    "\"description\":\"Operations requests\","
    "\"issueTypes\":[{\"id\":\"10001\",\"name\":\"Task\",\"subtask\":false},"
    "{\"id\":\"10002\",\"name\":\"Bug\",\"subtask\":false},"
    "{\"id\":\"10005\",\"name\":\"Incident\",\"subtask\":false},"
    "{\"id\":\"10004\",\"name\":\"Sub-task\",\"subtask\":true}],"
    "\"workflow\":{\"name\":\"Operations Workflow\","
    "\"statuses\":[{\"id\":\"1\",\"name\":\"Open\",\"category\":\"new\"},"
    "{\"id\":\"10100\",\"name\":\"Triage\",\"category\":\"indeterminate\"},"
    "{\"id\":\"5\",\"name\":\"Resolved\",\"category\":\"done\"},"
    "{\"id\":\"6\",\"name\":\"Closed\",\"category\":\"done\"}],"
    "\"transitions\":[{\"id\":\"101\",\"name\":\"Triage\",\"from\":[\"Open\"],\"to\":\"Triage\"},"
    "{\"id\":\"201\",\"name\":\"Resolve\",\"from\":[\"Triage\"],\"to\":\"Resolved\"},"
    "{\"id\":\"301\",\"name\":\"Reopen\",\"from\":[\"Resolved\",\"Closed\"],\"to\":\"Open\"},"
    "{\"id\":\"401\",\"name\":\"Close\",\"to\":\"Closed\"}]}}]}";

void jira_state_seed_demo(jira_state_t *st)
{
    json_error_t jerr;
    json_t *seed = json_loads(jira_demo_seed, 0, &jerr);
    char err[256];
    if (seed)
        jira_state_seed_json(st, seed, NULL, err, sizeof(err));
    json_decref(seed);
}

/* ---- dump
 * ---------------------------------------------------------------------------------------- */

static json_t *jira_dump_project(jira_project_t *p)
{
    json_t *types = json_array();
    for (size_t i = 0; i < p->itypes.n; i++) {
        jira_itype_t *t = p->itypes.v[i];
        json_array_append_new(types,
                              json_pack("{s:s,s:s,s:b,s:s}", "id", t->id, "name", t->name,
                                        "subtask", t->subtask, "description", t->description));
    }
    json_t *sts = json_array();
    for (size_t i = 0; i < p->wf.statuses.n; i++) {
        jira_status_t *s = p->wf.statuses.v[i];
        json_array_append_new(sts, json_pack("{s:s,s:s,s:s}", "id", s->id, "name", s->name,
                                             "category", jira_cat_key(s->category)));
    }
    json_t *trs = json_array();
    for (size_t i = 0; i < p->wf.transitions.n; i++) {
        jira_transition_t *t = p->wf.transitions.v[i];
        json_t *from = json_array();
        for (size_t j = 0; j < t->from.n; j++)
            json_array_append_new(from, json_string(((jira_status_t *)t->from.v[j])->name));
        json_array_append_new(trs, json_pack("{s:s,s:s,s:o,s:s}", "id", t->id, "name", t->name,
                                             "from", from, "to", t->to->name));
    }
    json_t *roles = json_object();
    for (size_t i = 0; i < p->role_actors.n; i++) {
        jira_role_actors_t *ra = p->role_actors.v[i];
        json_t *users = json_array(), *groups = json_array();
        for (size_t j = 0; j < ra->actors.n; j++) {
            jira_actor_t *a = ra->actors.v[j];
            json_array_append_new(a->type == JIRA_ACTOR_USER ? users : groups,
                                  json_string(a->value));
        }
        json_object_set_new(roles, ra->role->name,
                            json_pack("{s:o,s:o}", "users", users, "groups", groups));
    }
    json_t *o =
        json_pack("{s:s,s:s,s:s,s:s,s:s,s:o,s:{s:s,s:s,s:o,s:o},s:o,s:I}", "key", p->key, "id",
                  p->id, "name", p->name, "description", p->description, "projectTypeKey",
                  p->type_key, "issueTypes", types, "workflow", "name", p->wf.name, "initial",
                  p->wf.initial ? p->wf.initial->name : "", "statuses", sts, "transitions", trs,
                  "roles", roles, "issueCount", (json_int_t)p->issue_count);
    if (o && p->lead)
        json_object_set_new(o, "lead", json_string(p->lead));
    return o;
}

static json_t *jira_dump_issue(jira_issue_t *is)
{
    json_t *labels = json_array();
    for (size_t i = 0; i < is->labels.n; i++)
        json_array_append_new(labels, json_string(is->labels.v[i]));
    json_t *o = json_pack(
        "{s:s,s:s,s:s,s:s,s:s,s:o,s:s,s:s,s:I,s:I,s:O}", "id", is->idstr, "key", is->key, "project",
        is->proj->key, "issuetype", is->itype->name, "summary", is->summary, "labels", labels,
        "priority", jira_priorities[is->priority].name, "status", is->status->name, "created",
        (json_int_t)is->created, "updated", (json_int_t)is->updated, "properties", is->props);
    if (!o)
        return NULL;
    if (is->description)
        json_object_set(o, "description", is->description);
    if (is->assignee)
        json_object_set_new(o, "assignee", json_string(is->assignee));
    if (is->reporter)
        json_object_set_new(o, "reporter", json_string(is->reporter));
    if (is->parent)
        json_object_set_new(o, "parent", json_string(is->parent->key));
    return o;
}

json_t *jira_state_dump(jira_state_t *st)
{
    json_t *roles = json_array(), *projects = json_array(), *issues = json_array();
    for (size_t i = 0; i < st->roles.n; i++) {
        jira_role_t *r = st->roles.v[i];
        json_array_append_new(roles, json_pack("{s:I,s:s,s:s}", "id", (json_int_t)r->id, "name",
                                               r->name, "description", r->description));
    }
    for (size_t i = 0; i < st->projects.n; i++)
        json_array_append_new(projects, jira_dump_project(st->projects.v[i]));
    for (size_t i = 0; i < st->issues.n; i++)
        json_array_append_new(issues, jira_dump_issue(st->issues.v[i]));
    return json_pack("{s:o,s:o,s:o}", "roles", roles, "projects", projects, "issues", issues);
}
