#include "jiraprov/outcome.h"

#include <stdlib.h>
#include <string.h>

static const char *status_names[] = {"succeeded", "skipped",    "failed",
                                     "retry",     "quarantine", "deferred"};

const char *jp_outcome_status_name(jp_outcome_status_t s)
{
    return s <= JP_OUTCOME_DEFERRED ? status_names[s] : "unknown";
}

static int status_parse(const char *name)
{
    for (int i = 0; name && i <= JP_OUTCOME_DEFERRED; i++)
        if (!strcmp(name, status_names[i]))
            return i;
    return -1;
}

jp_outcome_t *jp_outcome_new(jp_outcome_status_t status)
{
    jp_outcome_t *o = calloc(1, sizeof(*o));
    if (!o)
        return NULL;
    o->status = status;
    o->retry_after_ms = -1;
    o->jira = json_object();
    o->changed = json_array();
    if (!o->jira || !o->changed) {
        jp_outcome_destroy(o);
        return NULL;
    }
    return o;
}

static void call_free(jp_outcome_call_t *c)
{
    free(c->method);
    free(c->api);
    free(c->path);
    free(c->endpoint_class);
}

void jp_outcome_destroy(jp_outcome_t *o)
{
    if (!o)
        return;
    free(o->error_reason);
    free(o->error_message);
    free(o->detail);
    json_decref(o->jira);
    json_decref(o->changed);
    for (size_t i = 0; i < o->call_count; i++)
        call_free(&o->calls[i]);
    free(o->calls);
    free(o);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

void jp_outcome_set_error(jp_outcome_t *o, jp_outcome_status_t status, jp_class_t cls,
                          const char *reason, const char *message)
{
    o->status = status;
    o->error_class = cls;
    free(o->error_reason);
    free(o->error_message);
    o->error_reason = dup_or_null(reason);
    o->error_message = dup_or_null(message);
}

int jp_outcome_add_call(jp_outcome_t *o, const char *method, const char *api, const char *path,
                        const char *endpoint_class, int mutation, long status, int64_t started_ms,
                        int64_t duration_us)
{
    jp_outcome_call_t *grown = realloc(o->calls, (o->call_count + 1) * sizeof(*grown));
    if (!grown)
        return -1;
    o->calls = grown;
    jp_outcome_call_t *c = &o->calls[o->call_count];
    memset(c, 0, sizeof(*c));
    c->method = dup_or_null(method);
    c->api = dup_or_null(api);
    c->path = dup_or_null(path);
    c->endpoint_class = dup_or_null(endpoint_class);
    if ((method && !c->method) || (api && !c->api) || (path && !c->path) ||
        (endpoint_class && !c->endpoint_class)) {
        call_free(c);
        return -1;
    }
    c->mutation = mutation;
    c->status = status;
    c->started_ms = started_ms;
    c->duration_us = duration_us;
    o->call_count++;
    return 0;
}

void jp_outcome_set_jira(jp_outcome_t *o, const char *key, const char *value)
{
    if (value)
        json_object_set_new(o->jira, key, json_string(value));
}

json_t *jp_outcome_to_json(const jp_outcome_t *o)
{
    json_t *j = json_pack("{s:s, s:O, s:O}", "status", jp_outcome_status_name(o->status), "jira",
                          o->jira, "changed", o->changed);
    if (!j)
        return NULL;
    if (o->error_class != JP_CLASS_OK)
        json_object_set_new(j, "errorClass", json_string(jp_class_name(o->error_class)));
    if (o->error_reason)
        json_object_set_new(j, "errorReason", json_string(o->error_reason));
    if (o->error_message)
        json_object_set_new(j, "errorMessage", json_string(o->error_message));
    if (o->detail)
        json_object_set_new(j, "detail", json_string(o->detail));
    if (o->attempts > 0)
        json_object_set_new(j, "attempts", json_integer(o->attempts));
    if (o->duration_ms > 0)
        json_object_set_new(j, "durationMs", json_integer(o->duration_ms));
    return j;
}

static int class_parse(const char *name)
{
    for (int i = JP_CLASS_OK; name && i <= JP_CLASS_FATAL; i++)
        if (!strcmp(name, jp_class_name((jp_class_t)i)))
            return i;
    return -1;
}

static const char *opt_string(const json_t *j, const char *key)
{
    return json_string_value(json_object_get(j, key));
}

jp_outcome_t *jp_outcome_from_json(const json_t *j)
{
    int status = status_parse(opt_string(j, "status"));
    json_t *jira = json_object_get(j, "jira"), *changed = json_object_get(j, "changed");
    if (status < 0 || !json_is_object(jira) || !json_is_array(changed))
        return NULL;
    jp_outcome_t *o = jp_outcome_new((jp_outcome_status_t)status);
    if (!o)
        return NULL;
    json_object_update(o->jira, jira);
    json_array_extend(o->changed, changed);
    const char *cls = opt_string(j, "errorClass");
    int c = cls ? class_parse(cls) : JP_CLASS_OK;
    if (c < 0) {
        jp_outcome_destroy(o);
        return NULL;
    }
    o->error_class = (jp_class_t)c;
    o->error_reason = dup_or_null(opt_string(j, "errorReason"));
    o->error_message = dup_or_null(opt_string(j, "errorMessage"));
    o->detail = dup_or_null(opt_string(j, "detail"));
    o->attempts = (int)json_integer_value(json_object_get(j, "attempts"));
    o->duration_ms = json_integer_value(json_object_get(j, "durationMs"));
    return o;
}
