/* jira_issue_api.c - /rest/api/3/issue: create (single and bulk), get, edit,
 * delete, transitions, properties and assignee.
 *
 * Create and edit share one validator: the request's `fields` and `update`
 * are checked completely first (every problem lands in the ErrorCollection,
 * as Jira reports all field errors at once) and applied only when there is
 * none, so a 400 never leaves a half-edited issue. */
#include "jira.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define JIRA_MAX_PROP_LEN 32768
#define JIRA_MAX_LABEL    255
#define JIRA_MAX_SUMMARY  255
#define JIRA_MSG_ADF                                                                               \
    "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
#define JIRA_MSG_STRING "Operation value must be a string"

/* ---- error collection ---------------------------------------------------------------- */

typedef struct jira_errs {
    json_t *msgs;   /* errorMessages */
    json_t *fields; /* errors */
} jira_errs_t;

static void jira_errs_init(jira_errs_t *e)
{
    e->msgs = json_array();
    e->fields = json_object();
}

static void jira_errs_free(jira_errs_t *e)
{
    json_decref(e->msgs);
    json_decref(e->fields);
}

static int jira_errs_any(const jira_errs_t *e)
{
    return json_array_size(e->msgs) > 0 || json_object_size(e->fields) > 0;
}

static void jira_err_field(jira_errs_t *e, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void jira_err_field(jira_errs_t *e, const char *field, const char *fmt, ...)
{
    if (json_object_get(e->fields, field))
        return; /* the first problem per field is the one Jira reports */
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_object_set_new(e->fields, field, json_string(msg));
}

static json_t *jira_errs_json(jira_errs_t *e)
{
    return json_pack("{s:O,s:O}", "errorMessages", e->msgs, "errors", e->fields);
}

static void jira_errs_respond(emu_resp_t *resp, jira_errs_t *e)
{
    emu_resp_json(resp, 400, jira_errs_json(e));
}

/* ---- edit plan --------------------------------------------------------------------------- */

enum { LBL_SET = 1, LBL_ADD, LBL_REMOVE };

typedef struct jira_lblop {
    int op;
    const json_t *val; /* string (add/remove) or array (set); borrowed */
} jira_lblop_t;

typedef struct jira_edit {
    int create;
    jira_project_t *proj;
    jira_itype_t *itype;
    jira_issue_t *parent;
    const char *summary;
    int has_summary;
    const json_t *desc;
    int has_desc;
    int prio;
    int has_prio;
    const char *assignee;
    int has_assignee;
    const char *reporter;
    int has_reporter;
    jira_lblop_t lbl[64];
    size_t nlbl;
    const json_t *props; /* array of {key,value} */
} jira_edit_t;

/* A reference member as a string; ids are sometimes sent as numbers, which
 * are formatted into buf (>= 32 bytes). */
static const char *jira_ref_str(const json_t *v, const char *k, char *buf)
{
    const json_t *x = json_object_get(v, k);
    if (json_is_integer(x)) {
        snprintf(buf, 32, "%" JSON_INTEGER_FORMAT, json_integer_value(x));
        return buf;
    }
    return json_string_value(x);
}

static void jira_chk_summary(jira_errs_t *e, jira_edit_t *ed, const json_t *v)
{
    const char *s = json_string_value(v);
    if (!json_is_string(v) && !json_is_null(v)) {
        jira_err_field(e, "summary", JIRA_MSG_STRING);
    } else if (!s || !*s) {
        jira_err_field(e, "summary", "You must specify a summary of the issue.");
    } else if (strlen(s) > JIRA_MAX_SUMMARY) {
        jira_err_field(e, "summary", "Summary must be less than 255 characters.");
    } else if (strpbrk(s, "\r\n")) {
        jira_err_field(e, "summary",
                       "The summary is invalid because it contains newline characters.");
    } else {
        ed->summary = s;
        ed->has_summary = 1;
    }
}

static void jira_chk_desc(jira_errs_t *e, jira_edit_t *ed, const json_t *v)
{
    if (!json_is_null(v) && !jira_adf_valid(v)) {
        jira_err_field(e, "description", JIRA_MSG_ADF);
        return;
    }
    ed->desc = json_is_null(v) ? NULL : v;
    ed->has_desc = 1;
}

static void jira_chk_priority(jira_errs_t *e, jira_edit_t *ed, const json_t *v)
{
    char ibuf[32];
    const char *id = jira_ref_str(v, "id", ibuf);
    const char *name = json_string_value(json_object_get(v, "name"));
    int p = id ? jira_priority_find(id) : name ? jira_priority_find(name) : -1;
    if (id && p >= 0 && strcmp(jira_priorities[p].id, id) != 0)
        p = -1; /* an id must be an id, not a name */
    if (p < 0) {
        jira_err_field(e, "priority", "Specify the Priority (id or name) in the string format");
        return;
    }
    ed->prio = p;
    ed->has_prio = 1;
}

/* assignee / reporter: {"accountId":…} (or {"id":…}), or null to clear. */
static void jira_chk_user(emu_t *emu, jira_errs_t *e, const char *field, const json_t *v,
                          const char **out, int *has)
{
    if (json_is_null(v)) {
        *out = NULL;
        *has = 1;
        return;
    }
    const char *acc = json_string_value(json_object_get(v, "accountId"));
    if (!acc)
        acc = json_string_value(json_object_get(v, "id"));
    emu_user_t *u = acc ? jira_user_get(emu, acc) : NULL;
    if (!u) {
        jira_err_field(e, field, "Specify a valid value for %s", field);
        return;
    }
    if (!u->active) {
        jira_err_field(e, field, "User '%s' cannot be assigned issues.", acc);
        return;
    }
    *out = u->account_id;
    *has = 1;
}

static void jira_chk_label(jira_errs_t *e, const json_t *l)
{
    const char *s = json_string_value(l);
    if (!s) {
        jira_err_field(e, "labels", JIRA_MSG_STRING);
    } else if (!*s) {
        jira_err_field(e, "labels", "The label can't be empty.");
    } else if (strchr(s, ' ')) {
        jira_err_field(e, "labels", "The label '%s' contains spaces which is invalid.", s);
    } else if (strlen(s) > JIRA_MAX_LABEL) {
        jira_err_field(e, "labels",
                       "The label '%.40s…' exceeds the maximum length for a single label of 255 "
                       "characters.",
                       s);
    }
}

static void jira_lbl_push(jira_errs_t *e, jira_edit_t *ed, int op, const json_t *val)
{
    if (ed->nlbl == sizeof(ed->lbl) / sizeof(ed->lbl[0])) {
        jira_err_field(e, "labels", "Too many label operations in one request.");
        return;
    }
    ed->lbl[ed->nlbl].op = op;
    ed->lbl[ed->nlbl].val = val;
    ed->nlbl++;
}

static void jira_chk_labels_set(jira_errs_t *e, jira_edit_t *ed, const json_t *v)
{
    if (v && !json_is_array(v)) { /* NULL (JSON null) clears the labels */
        jira_err_field(e, "labels", "Operation value must be an array of strings");
        return;
    }
    size_t i;
    json_t *l;
    json_array_foreach(v, i, l)
    {
        jira_chk_label(e, l);
    }
    jira_lbl_push(e, ed, LBL_SET, v);
}

static void jira_not_settable(jira_errs_t *e, const char *field)
{
    jira_err_field(e, field,
                   "Field '%s' cannot be set. It is not on the appropriate screen, or "
                   "unknown.",
                   field);
}

/* One entry of `fields`. */
static void jira_chk_field(emu_t *emu, jira_errs_t *e, jira_edit_t *ed, const char *k,
                           const json_t *v)
{
    if (strcmp(k, "summary") == 0)
        jira_chk_summary(e, ed, v);
    else if (strcmp(k, "description") == 0)
        jira_chk_desc(e, ed, v);
    else if (strcmp(k, "labels") == 0)
        jira_chk_labels_set(e, ed, json_is_null(v) ? NULL : v);
    else if (strcmp(k, "priority") == 0)
        jira_chk_priority(e, ed, v);
    else if (strcmp(k, "assignee") == 0)
        jira_chk_user(emu, e, "assignee", v, &ed->assignee, &ed->has_assignee);
    else if (strcmp(k, "reporter") == 0)
        jira_chk_user(emu, e, "reporter", v, &ed->reporter, &ed->has_reporter);
    else if (ed->create &&
             (strcmp(k, "project") == 0 || strcmp(k, "issuetype") == 0 || strcmp(k, "parent") == 0))
        ; /* resolved by jira_chk_create */
    else
        jira_not_settable(e, k);
}

/* One entry of `update`: an array of {verb: value}. */
static void jira_chk_update(emu_t *emu, jira_errs_t *e, jira_edit_t *ed, const char *k,
                            const json_t *ops)
{
    if (!json_is_array(ops)) {
        jira_err_field(e, k, "Operations for field '%s' must be an array.", k);
        return;
    }
    int known = strcmp(k, "labels") == 0 || strcmp(k, "summary") == 0 ||
                strcmp(k, "description") == 0 || strcmp(k, "priority") == 0 ||
                strcmp(k, "assignee") == 0 || strcmp(k, "reporter") == 0;
    if (!known) {
        jira_not_settable(e, k);
        return;
    }
    size_t i;
    json_t *op;
    json_array_foreach(ops, i, op)
    {
        const char *verb = NULL;
        json_t *val = NULL;
        if (!json_is_object(op) || json_object_size(op) != 1) {
            jira_err_field(e, k, "Each operation for field '%s' must name one verb.", k);
            return;
        }
        void *it = json_object_iter((json_t *)op);
        verb = json_object_iter_key(it);
        val = json_object_iter_value(it);
        if (strcmp(k, "labels") == 0) {
            if (strcmp(verb, "set") == 0) {
                jira_chk_labels_set(e, ed, json_is_null(val) ? NULL : val);
            } else if (strcmp(verb, "add") == 0 || strcmp(verb, "remove") == 0) {
                jira_chk_label(e, val);
                jira_lbl_push(e, ed, verb[0] == 'a' ? LBL_ADD : LBL_REMOVE, val);
            } else {
                jira_err_field(e, k, "Field '%s' does not support operation '%s'", k, verb);
            }
        } else if (strcmp(verb, "set") == 0) {
            jira_chk_field(emu, e, ed, k, val);
        } else {
            jira_err_field(e, k, "Field '%s' does not support operation '%s'", k, verb);
        }
    }
}

/* Checks `fields`, `update` and `properties` of a create/edit body. */
static void jira_chk_body(emu_t *emu, jira_errs_t *e, jira_edit_t *ed, const json_t *body)
{
    const json_t *fields = json_object_get(body, "fields");
    const json_t *update = json_object_get(body, "update");
    const json_t *props = json_object_get(body, "properties");
    if ((fields && !json_is_object(fields)) || (update && !json_is_object(update))) {
        json_array_append_new(e->msgs, json_string("'fields' and 'update' must be objects."));
        return;
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)fields, k, v)
    {
        if (json_object_get(update, k)) {
            jira_err_field(e, k, "Field '%s' cannot be set in both 'fields' and 'update'.", k);
            continue;
        }
        jira_chk_field(emu, e, ed, k, v);
    }
    json_object_foreach((json_t *)update, k, v)
    {
        if (!json_object_get(fields, k))
            jira_chk_update(emu, e, ed, k, v);
    }
    if (props) {
        size_t i;
        json_t *p;
        if (!json_is_array(props)) {
            json_array_append_new(e->msgs, json_string("'properties' must be an array."));
            return;
        }
        json_array_foreach(props, i, p)
        {
            const char *pk = json_string_value(json_object_get(p, "key"));
            if (!pk || !*pk || strlen(pk) > 255 || !json_object_get(p, "value")) {
                json_array_append_new(e->msgs, json_string("Each property needs a key (at most "
                                                           "255 characters) and a value."));
                return;
            }
        }
        ed->props = props;
    }
}

static void jira_chk_create(emu_t *emu, jira_errs_t *e, jira_edit_t *ed, const json_t *body)
{
    jira_state_t *st = jira_st(emu);
    const json_t *fields = json_object_get(body, "fields");
    const json_t *pj = json_object_get(fields, "project");
    char pbuf[32], tbuf[32], parbuf[32];
    const char *pref = jira_ref_str(pj, "key", pbuf);
    if (!pref)
        pref = jira_ref_str(pj, "id", pbuf);
    ed->proj = pref ? jira_project_find(st, pref) : NULL;
    if (!ed->proj)
        jira_err_field(e, "project", "Specify a valid project ID or key");
    const json_t *tj = json_object_get(fields, "issuetype");
    const char *tid = jira_ref_str(tj, "id", tbuf);
    const char *tname = json_string_value(json_object_get(tj, "name"));
    if (!tj || (!tid && !tname)) {
        jira_err_field(e, "issuetype", "Specify an issue type");
    } else if (ed->proj) {
        ed->itype = tid ? jira_itype_find(ed->proj, tid) : jira_itype_find(ed->proj, tname);
        if (ed->itype && tid && strcmp(ed->itype->id, tid) != 0)
            ed->itype = NULL;
        if (!ed->itype)
            jira_err_field(e, "issuetype", "The issue type selected is invalid.");
    }
    if (!json_object_get(fields, "summary") &&
        !json_object_get(json_object_get(body, "update"), "summary"))
        jira_err_field(e, "summary", "You must specify a summary of the issue.");
    const json_t *par = json_object_get(fields, "parent");
    const char *parref = jira_ref_str(par, "key", parbuf);
    if (!parref)
        parref = jira_ref_str(par, "id", parbuf);
    if (par && !parref) {
        jira_err_field(e, "parent", "Could not find issue by id or key.");
    } else if (parref) {
        ed->parent = jira_issue_find(st, parref);
        if (!ed->parent)
            jira_err_field(e, "parent", "Could not find issue by id or key.");
        else if ((ed->proj && ed->parent->proj != ed->proj) || ed->parent->itype->subtask ||
                 (ed->itype && !ed->itype->subtask))
            jira_err_field(e, "parent",
                           "Given parent issue does not belong to appropriate hierarchy.");
    } else if (ed->itype && ed->itype->subtask) {
        jira_err_field(e, "parent",
                       "Issue type is a sub-task but parent issue key or id not specified.");
    }
}

static int jira_apply_labels(jira_state_t *st, jira_issue_t *is, const jira_edit_t *ed)
{
    for (size_t i = 0; i < ed->nlbl; i++) {
        const jira_lblop_t *op = &ed->lbl[i];
        if (op->op == LBL_SET) {
            jira_issue_labels_clear(st, is);
            size_t j;
            json_t *l;
            json_array_foreach(op->val, j, l)
            {
                if (jira_issue_label_add(st, is, json_string_value(l)) < 0)
                    return -1;
            }
        } else if (op->op == LBL_ADD) {
            if (jira_issue_label_add(st, is, json_string_value(op->val)) < 0)
                return -1;
        } else {
            jira_issue_label_remove(st, is, json_string_value(op->val));
        }
    }
    return 0;
}

static void jira_apply_edit(jira_state_t *st, jira_issue_t *is, const jira_edit_t *ed)
{
    if (ed->has_summary)
        jira_issue_set_summary(is, ed->summary);
    if (ed->has_desc)
        jira_issue_set_description(is, ed->desc ? json_deep_copy(ed->desc) : NULL);
    if (ed->has_prio)
        is->priority = ed->prio;
    if (ed->has_assignee)
        jira_issue_set_assignee(is, ed->assignee);
    if (ed->has_reporter)
        emu_str_set(&is->reporter, ed->reporter);
    jira_apply_labels(st, is, ed);
    size_t i;
    json_t *p;
    json_array_foreach(ed->props, i, p)
    {
        jira_issue_prop_set(st, is, json_string_value(json_object_get(p, "key")),
                            json_deep_copy(json_object_get(p, "value")));
    }
    jira_issue_touch(st, is);
}

/* ---- helpers ----------------------------------------------------------------------------------
 */

static jira_issue_t *jira_req_issue(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    jira_issue_t *is = jira_issue_find(jira_st(emu), emu_req_param(req, "issueIdOrKey"));
    if (!is)
        emu_resp_jira_error(resp, 404, JIRA_NOT_FOUND_ISSUE, NULL, NULL);
    return is;
}

static json_t *jira_req_body(emu_req_t *req, emu_resp_t *resp, int want_object)
{
    char err[256];
    json_t *body = emu_req_json(req, err, sizeof(err));
    if (!body) {
        emu_resp_jira_error(resp, 400, err, NULL, NULL);
        return NULL;
    }
    if (want_object && !json_is_object(body)) {
        emu_resp_jira_error(resp, 400, "The request body must be a JSON object.", NULL, NULL);
        return NULL;
    }
    return body;
}

static json_t *jira_created_json(emu_t *emu, const jira_issue_t *is)
{
    char self[256];
    snprintf(self, sizeof(self), "%s" JIRA_API "/issue/%s", emu_base_url(emu), is->idstr);
    return json_pack("{s:s,s:s,s:s}", "id", is->idstr, "key", is->key, "self", self);
}

/* A create request may carry a transition to apply right after creation.
 * The issue is created either way; the outcome is reported in the 201 body
 * as {"status":200|400,"errorCollection":{…}}, as Jira does. */
static void jira_create_transition(emu_t *emu, jira_issue_t *is, const json_t *body,
                                   json_t *created)
{
    const json_t *tr = json_object_get(body, "transition");
    char tbuf[32];
    const char *tid = tr ? jira_ref_str(tr, "id", tbuf) : NULL;
    if (!tr)
        return;
    jira_transition_t *t = tid ? jira_transition_find(&is->proj->wf, tid) : NULL;
    json_t *msgs = json_array();
    if (!t || !jira_transition_available(is, t)) {
        char msg[128];
        snprintf(msg, sizeof(msg), "Transition id '%s' is not valid for this issue.",
                 tid ? tid : "");
        json_array_append_new(msgs, json_string(msg));
    } else {
        jira_state_t *st = jira_st(emu);
        if (is->status->category != t->to->category)
            is->status_changed = jira_state_stamp(st);
        is->status = t->to;
        emu_count_mutation(emu, "issue", is->key, "transition");
    }
    int ok = json_array_size(msgs) == 0;
    json_object_set_new(created, "transition",
                        json_pack("{s:i,s:{s:o,s:{}}}", "status", ok ? 200 : 400, "errorCollection",
                                  "errorMessages", msgs, "errors"));
}

/* Validates and creates one issue; on failure fills e and returns NULL. */
static jira_issue_t *jira_create_one(emu_t *emu, emu_req_t *req, const json_t *body, jira_errs_t *e)
{
    jira_state_t *st = jira_st(emu);
    jira_edit_t ed = {.create = 1};
    if (!json_is_object(body) || !json_is_object(json_object_get(body, "fields"))) {
        json_array_append_new(e->msgs, json_string("The request must contain a 'fields' "
                                                   "object."));
        return NULL;
    }
    jira_chk_create(emu, e, &ed, body);
    jira_chk_body(emu, e, &ed, body);
    if (jira_errs_any(e))
        return NULL;
    const char *reporter = ed.has_reporter ? ed.reporter : jira_caller(emu, req);
    jira_issue_t *is =
        jira_issue_create(st, ed.proj, ed.itype, ed.summary, NULL, ed.has_prio ? ed.prio : -1,
                          ed.has_assignee ? ed.assignee : NULL, reporter, ed.parent);
    if (!is) {
        json_array_append_new(e->msgs, json_string("out of memory"));
        return NULL;
    }
    ed.has_summary = 0;
    ed.has_reporter = 0;
    jira_apply_edit(st, is, &ed);
    is->updated = is->created;
    emu_count_mutation(emu, "issue", is->key, "create");
    return is;
}

/* ---- handlers
 * --------------------------------------------------------------------------------------- */

static void jira_h_create(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    json_t *body = jira_req_body(req, resp, 1);
    if (!body)
        return;
    jira_errs_t e;
    jira_errs_init(&e);
    jira_issue_t *is = jira_create_one(emu, req, body, &e);
    if (is) {
        json_t *out = jira_created_json(emu, is);
        jira_create_transition(emu, is, body, out);
        emu_resp_json(resp, 201, out);
    } else {
        jira_errs_respond(resp, &e);
    }
    jira_errs_free(&e);
}

static void jira_h_create_bulk(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    json_t *body = jira_req_body(req, resp, 1);
    if (!body)
        return;
    json_t *ups = json_object_get(body, "issueUpdates");
    if (!json_is_array(ups) || json_array_size(ups) == 0) {
        emu_resp_jira_error(resp, 400, "issueUpdates must be a non-empty array.", NULL, NULL);
        return;
    }
    if (json_array_size(ups) > 50) {
        emu_resp_jira_error(resp, 400, "You can create at most 50 issues in one request.", NULL,
                            NULL);
        return;
    }
    json_t *issues = json_array(), *errors = json_array();
    size_t i;
    json_t *u;
    json_array_foreach(ups, i, u)
    {
        jira_errs_t e;
        jira_errs_init(&e);
        jira_issue_t *is = jira_create_one(emu, req, u, &e);
        if (is) {
            json_t *out = jira_created_json(emu, is);
            jira_create_transition(emu, is, u, out);
            json_array_append_new(issues, out);
        } else {
            json_array_append_new(errors, json_pack("{s:i,s:o,s:I}", "status", 400, "elementErrors",
                                                    jira_errs_json(&e), "failedElementNumber",
                                                    (json_int_t)i));
        }
        jira_errs_free(&e);
    }
    unsigned status = json_array_size(issues) > 0 ? 201 : 400;
    emu_resp_json(resp, status, json_pack("{s:o,s:o}", "issues", issues, "errors", errors));
}

static void jira_props_param(emu_req_t *req, char *buf, size_t bufsz, const char **props,
                             size_t *nprops, size_t max)
{
    const char *vals[8];
    size_t nv = emu_req_query_all(req, "properties", vals, 8);
    size_t used = 0;
    *nprops = 0;
    for (size_t i = 0; i < nv && i < 8; i++) {
        size_t l = strlen(vals[i]);
        if (used + l + 1 > bufsz)
            break;
        memcpy(buf + used, vals[i], l + 1);
        *nprops += jira_split_list(buf + used, props + *nprops, max - *nprops);
        used += l + 1;
    }
}

static void jira_h_get(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    jira_issue_t *is = jira_req_issue(emu, req, resp);
    if (!is)
        return;
    const char *fl[8];
    size_t nf = emu_req_query_all(req, "fields", fl, 8);
    jira_fieldsel_t sel;
    jira_fieldsel_parse(&sel, fl, nf < 8 ? nf : 8, "*all");
    if (sel.id_only) { /* GET issue always answers with the bean */
        sel.id_only = 0;
        sel.mask = 0;
    }
    char pbuf[2048];
    const char *props[32];
    size_t np;
    jira_props_param(req, pbuf, sizeof(pbuf), props, &np, 32);
    emu_resp_json(resp, 200, jira_issue_json(emu, is, &sel, props, np));
}

static void jira_h_edit(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    jira_issue_t *is = jira_req_issue(emu, req, resp);
    if (!is)
        return;
    json_t *body = jira_req_body(req, resp, 1);
    if (!body)
        return;
    jira_errs_t e;
    jira_errs_init(&e);
    jira_edit_t ed = {0};
    jira_chk_body(emu, &e, &ed, body);
    if (jira_errs_any(&e)) {
        jira_errs_respond(resp, &e);
        jira_errs_free(&e);
        return;
    }
    jira_errs_free(&e);
    jira_apply_edit(jira_st(emu), is, &ed);
    emu_count_mutation(emu, "issue", is->key, "update");
    if (emu_req_query_bool(req, "returnIssue", false)) {
        jira_fieldsel_t sel = {JIRA_F_ALL, 0};
        emu_resp_json(resp, 200, jira_issue_json(emu, is, &sel, NULL, 0));
        return;
    }
    emu_resp_empty(resp, 204);
}

static void jira_count_delete(emu_t *emu, jira_issue_t *is)
{
    for (size_t i = 0; i < is->subtasks.n; i++)
        jira_count_delete(emu, is->subtasks.v[i]);
    emu_count_mutation(emu, "issue", is->key, "delete");
}

static void jira_h_delete(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    jira_issue_t *is = jira_req_issue(emu, req, resp);
    if (!is)
        return;
    const char *ds = emu_req_query(req, "deleteSubtasks");
    if (ds && strcmp(ds, "true") != 0 && strcmp(ds, "false") != 0) {
        emu_resp_jira_error(resp, 400, "deleteSubtasks must be true or false.", NULL, NULL);
        return;
    }
    if (is->subtasks.n > 0 && !(ds && strcmp(ds, "true") == 0)) {
        char msg[256];
        snprintf(msg, sizeof(msg),
                 "The issue %s has subtasks. Set deleteSubtasks=true to "
                 "delete the issue together with its subtasks.",
                 is->key);
        emu_resp_jira_error(resp, 400, msg, NULL, NULL);
        return;
    }
    jira_count_delete(emu, is);
    jira_issue_delete(jira_st(emu), is);
    emu_resp_empty(resp, 204);
}

static void jira_h_transitions(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    jira_issue_t *is = jira_req_issue(emu, req, resp);
    if (!is)
        return;
    const char *only = emu_req_query(req, "transitionId");
    int unavailable = emu_req_query_bool(req, "includeUnavailableTransitions", false);
    const char *expand = emu_req_query(req, "expand");
    int with_fields = expand && strstr(expand, "transitions.fields") != NULL;
    json_t *arr = json_array();
    jira_workflow_t *wf = &is->proj->wf;
    for (size_t i = 0; i < wf->transitions.n; i++) {
        jira_transition_t *t = wf->transitions.v[i];
        if (only && strcmp(only, t->id) != 0)
            continue;
        if (!unavailable && !jira_transition_available(is, t))
            continue;
        json_t *tj = jira_transition_json(emu, is, t);
        if (with_fields)
            json_object_set_new(tj, "fields", json_object());
        json_array_append_new(arr, tj);
    }
    emu_resp_json(resp, 200, json_pack("{s:s,s:o}", "expand", "transitions", "transitions", arr));
}

static void jira_h_do_transition(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    jira_issue_t *is = jira_req_issue(emu, req, resp);
    if (!is)
        return;
    json_t *body = jira_req_body(req, resp, 1);
    if (!body)
        return;
    const json_t *tr = json_object_get(body, "transition");
    char tbuf[32];
    const char *tid = jira_ref_str(tr, "id", tbuf);
    if (!tid) {
        emu_resp_jira_error(resp, 400, "Missing 'transition' identifier", NULL, NULL);
        return;
    }
    jira_transition_t *t = jira_transition_find(&is->proj->wf, tid);
    if (!t || !jira_transition_available(is, t)) {
        char msg[128];
        snprintf(msg, sizeof(msg), "Transition id '%s' is not valid for this issue.", tid);
        emu_resp_jira_error(resp, 400, msg, NULL, NULL);
        return;
    }
    /* No transition has a screen, so only comments and properties may ride
     * along; any field is "not on the appropriate screen". */
    jira_errs_t e;
    jira_errs_init(&e);
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(body, "fields"), k, v)
    {
        jira_not_settable(&e, k);
    }
    json_object_foreach(json_object_get(body, "update"), k, v)
    {
        if (strcmp(k, "comment") != 0) {
            jira_not_settable(&e, k);
            continue;
        }
        size_t i;
        json_t *op;
        json_array_foreach(v, i, op)
        {
            const json_t *cb = json_object_get(json_object_get(op, "add"), "body");
            if (!cb || !jira_adf_valid(cb))
                jira_err_field(&e, "comment", JIRA_MSG_ADF);
        }
    }
    jira_edit_t ed = {0};
    const json_t *props = json_object_get(body, "properties");
    if (props && !json_is_array(props))
        json_array_append_new(e.msgs, json_string("'properties' must be an array."));
    else
        ed.props = props;
    if (jira_errs_any(&e)) {
        jira_errs_respond(resp, &e);
        jira_errs_free(&e);
        return;
    }
    jira_errs_free(&e);
    jira_state_t *st = jira_st(emu);
    /* statuscategorychangedate moves only when the category changes. */
    if (is->status->category != t->to->category)
        is->status_changed = jira_state_stamp(st);
    is->status = t->to;
    jira_apply_edit(st, is, &ed);
    emu_count_mutation(emu, "issue", is->key, "transition");
    emu_resp_empty(resp, 204);
}

static void jira_h_prop_keys(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    jira_issue_t *is = jira_req_issue(emu, req, resp);
    if (!is)
        return;
    json_t *keys = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(is->props, k, v)
    {
        char self[512];
        snprintf(self, sizeof(self), "%s" JIRA_API "/issue/%s/properties/%s", emu_base_url(emu),
                 is->idstr, k);
        json_array_append_new(keys, json_pack("{s:s,s:s}", "self", self, "key", k));
    }
    emu_resp_json(resp, 200, json_pack("{s:o}", "keys", keys));
}

static void jira_prop_missing(emu_resp_t *resp, const char *key)
{
    char msg[400];
    snprintf(msg, sizeof(msg), "The property with key '%s' does not exist.", key);
    emu_resp_jira_error(resp, 404, msg, NULL, NULL);
}

static void jira_h_prop_get(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    jira_issue_t *is = jira_req_issue(emu, req, resp);
    if (!is)
        return;
    const char *key = emu_req_param(req, "propertyKey");
    json_t *v = json_object_get(is->props, key);
    if (!v) {
        jira_prop_missing(resp, key);
        return;
    }
    emu_resp_json(resp, 200, json_pack("{s:s,s:O}", "key", key, "value", v));
}

static void jira_h_prop_put(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    jira_issue_t *is = jira_req_issue(emu, req, resp);
    if (!is)
        return;
    const char *key = emu_req_param(req, "propertyKey");
    if (strlen(key) > 255) {
        emu_resp_jira_error(resp, 400, "The property key cannot be longer than 255 characters.",
                            NULL, NULL);
        return;
    }
    size_t len = 0;
    emu_req_body(req, &len);
    if (len > JIRA_MAX_PROP_LEN) {
        emu_resp_jira_error(resp, 400, "The property value cannot be longer than 32768 bytes.",
                            NULL, NULL);
        return;
    }
    json_t *body = jira_req_body(req, resp, 0);
    if (!body)
        return;
    jira_state_t *st = jira_st(emu);
    int created = jira_issue_prop_set(st, is, key, json_deep_copy(body));
    if (created < 0) {
        emu_resp_jira_error(resp, 500, "out of memory", NULL, NULL);
        return;
    }
    jira_issue_touch(st, is);
    emu_count_mutation(emu, "issue", is->key, "property");
    emu_resp_empty(resp, created ? 201 : 200);
}

static void jira_h_prop_delete(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    jira_issue_t *is = jira_req_issue(emu, req, resp);
    if (!is)
        return;
    const char *key = emu_req_param(req, "propertyKey");
    if (!jira_issue_prop_del(jira_st(emu), is, key)) {
        jira_prop_missing(resp, key);
        return;
    }
    emu_count_mutation(emu, "issue", is->key, "property");
    emu_resp_empty(resp, 204);
}

static void jira_h_assign(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    jira_issue_t *is = jira_req_issue(emu, req, resp);
    if (!is)
        return;
    json_t *body = jira_req_body(req, resp, 1);
    if (!body)
        return;
    json_t *acc = json_object_get(body, "accountId");
    if (json_object_get(body, "name") || json_object_get(body, "key")) {
        emu_resp_jira_error(resp, 400,
                            "The 'name' and 'key' parameters are no longer available; "
                            "use 'accountId'.",
                            NULL, NULL);
        return;
    }
    if (!acc) {
        emu_resp_jira_error(resp, 400, "accountId is required.", NULL, NULL);
        return;
    }
    const char *target = json_string_value(acc);
    if (target && strcmp(target, "-1") == 0)
        target = is->proj->lead; /* the project's default assignee */
    if (target) {
        emu_user_t *u = jira_user_get(emu, target);
        if (!u) {
            emu_resp_jira_error(resp, 400, NULL, "assignee", "Specify a valid value for assignee");
            return;
        }
        if (!u->active) {
            char msg[200];
            snprintf(msg, sizeof(msg), "User '%s' cannot be assigned issues.", target);
            emu_resp_jira_error(resp, 400, NULL, "assignee", msg);
            return;
        }
    } else if (!json_is_null(acc) && !json_is_string(acc)) {
        emu_resp_jira_error(resp, 400, "accountId must be a string or null.", NULL, NULL);
        return;
    }
    jira_issue_set_assignee(is, target);
    jira_issue_touch(jira_st(emu), is);
    emu_count_mutation(emu, "issue", is->key, "update");
    emu_resp_empty(resp, 204);
}

void jira_register_issue_routes(emu_t *emu)
{
    static const emu_route_opts write = {.auth = EMU_AUTH_JIRA};
    static const emu_route_opts issue_write = {.auth = EMU_AUTH_JIRA,
                                               .issue_param = "issueIdOrKey"};
    static const emu_route_opts issue_get = {.auth = EMU_AUTH_JIRA, .burst_rate = 150, .points = 2};
    static const emu_route_opts read = {.auth = EMU_AUTH_JIRA, .points = 2};
    emu_route(emu, "POST", JIRA_API "/issue", jira_h_create, &write);
    emu_route(emu, "POST", JIRA_API "/issue/bulk", jira_h_create_bulk, &write);
    emu_route(emu, "GET", JIRA_API "/issue/{issueIdOrKey}", jira_h_get, &issue_get);
    emu_route(emu, "PUT", JIRA_API "/issue/{issueIdOrKey}", jira_h_edit, &issue_write);
    emu_route(emu, "DELETE", JIRA_API "/issue/{issueIdOrKey}", jira_h_delete, &issue_write);
    emu_route(emu, "GET", JIRA_API "/issue/{issueIdOrKey}/transitions", jira_h_transitions, &read);
    emu_route(emu, "POST", JIRA_API "/issue/{issueIdOrKey}/transitions", jira_h_do_transition,
              &issue_write);
    emu_route(emu, "GET", JIRA_API "/issue/{issueIdOrKey}/properties", jira_h_prop_keys, &read);
    emu_route(emu, "GET", JIRA_API "/issue/{issueIdOrKey}/properties/{propertyKey}",
              jira_h_prop_get, &read);
    emu_route(emu, "PUT", JIRA_API "/issue/{issueIdOrKey}/properties/{propertyKey}",
              jira_h_prop_put, &issue_write);
    emu_route(emu, "DELETE", JIRA_API "/issue/{issueIdOrKey}/properties/{propertyKey}",
              jira_h_prop_delete, &issue_write);
    emu_route(emu, "PUT", JIRA_API "/issue/{issueIdOrKey}/assignee", jira_h_assign, &issue_write);
}
