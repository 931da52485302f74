/* Result, dead-letter and audit records as CloudEvents JSON; see
 * include/jiraprov/record.h. Builders track one `bad` flag instead of
 * checking every jansson call: any failed allocation or invalid string makes
 * the whole record NULL. */
#include "jiraprov/record.h"
#include "jiraprov/utf8.h"

#include "jiraprov/json.h"
#include "jiraprov/log.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct builder {
    int bad;
} builder_t;

/* obj[key] = value (stolen); a NULL value marks the builder bad. */
static void put(builder_t *b, json_t *obj, const char *key, json_t *value)
{
    if (!value || !obj || json_object_set_new(obj, key, value) != 0)
        b->bad = 1;
}

/* obj[key] = s when s is non-NULL. */
static void put_str(builder_t *b, json_t *obj, const char *key, const char *s)
{
    if (s)
        put(b, obj, key, json_string(s));
}

static void put_int(builder_t *b, json_t *obj, const char *key, int64_t v)
{
    put(b, obj, key, json_integer((json_int_t)v));
}

/* A copy of s with every registered secret replaced (a secret is at least 4
 * bytes and "[redacted]" 10, so 3x the length always fits). */
static char *redacted(const char *s)
{
    size_t cap = strlen(s) * 3 + 16;
    char *out = malloc(cap);
    if (out)
        jp_log_redact(s, out, cap);
    return out;
}

/* s (NUL-terminated) with every byte that is not part of a UTF-8 character
 * replaced by U+FFFD, in place of a text jansson would refuse. */
static json_t *utf8_fixed(const char *s)
{
    size_t len = strlen(s), o = 0;
    char *out = malloc(3 * len + 1);
    if (!out)
        return NULL;
    for (size_t i = 0; i < len;) {
        size_t n = jp_utf8_decode((const unsigned char *)s + i, len - i, NULL);
        if (n == 0) {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else {
            memcpy(out + o, s + i, n);
            o += n;
            i += n;
        }
    }
    json_t *j = json_stringn(out, o);
    free(out);
    return j;
}

/* Free text (reasons, messages, details). Text that is not UTF-8, such as a
 * message cut inside a character, is repaired rather than failing the
 * record: a record that cannot be built is retried forever and holds its
 * subject back. */
static void put_redacted(builder_t *b, json_t *obj, const char *key, const char *s)
{
    if (!s)
        return;
    char *r = redacted(s);
    if (!r) {
        b->bad = 1;
        return;
    }
    json_t *v = json_string(r);
    put(b, obj, key, v ? v : utf8_fixed(r));
    free(r);
}

/* RFC 3339 UTC with milliseconds: 2026-11-22T09:00:00.123Z */
static void format_time(int64_t ms, char *out, size_t out_size)
{
    int64_t sec = ms / 1000, frac = ms % 1000;
    if (frac < 0) {
        frac += 1000;
        sec -= 1;
    }
    /* Records of one second share everything up to the milliseconds: format
     * that part once per second and thread (gmtime_r and snprintf cost more
     * than the rest of a record's time fields). */
    static _Thread_local int64_t cached_sec = INT64_MIN;
    static _Thread_local char cached[24];
    if (sec != cached_sec) {
        time_t t = (time_t)sec;
        struct tm tm;
        if (!gmtime_r(&t, &tm)) {
            snprintf(out, out_size, "1970-01-01T00:00:00.000Z");
            return;
        }
        snprintf(cached, sizeof(cached), "%04d-%02d-%02dT%02d:%02d:%02d.", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        cached_sec = sec;
    }
    size_t n = strlen(cached);
    if (out_size < n + 5) {
        snprintf(out, out_size, "%s", "");
        return;
    }
    memcpy(out, cached, n);
    out[n] = (char)('0' + frac / 100);
    out[n + 1] = (char)('0' + frac / 10 % 10);
    out[n + 2] = (char)('0' + frac % 10);
    out[n + 3] = 'Z';
    out[n + 4] = '\0';
}

static void put_time(builder_t *b, json_t *obj, const char *key, int64_t ms)
{
    char ts[40];
    format_time(ms, ts, sizeof(ts));
    put_str(b, obj, key, ts);
}

/* The CloudEvents envelope up to (not including) data. */
static json_t *envelope(builder_t *b, const char *id, const char *type, const char *subject,
                        const jp_event_t *ev, const char *instance_id, int64_t now_ms)
{
    json_t *e = json_object();
    char source[512];
    if (!instance_id || !instance_id[0] ||
        (size_t)snprintf(source, sizeof(source), "%s%s", JP_RECORD_SOURCE_PREFIX, instance_id) >=
            sizeof(source)) {
        b->bad = 1;
        return e;
    }
    put_str(b, e, "specversion", "1.0");
    put(b, e, "id", json_string(id));
    put_str(b, e, "source", source);
    put_str(b, e, "type", type);
    put(b, e, "subject", json_string(subject));
    put_time(b, e, "time", now_ms);
    put_str(b, e, "datacontenttype", "application/json");
    if (ev) {
        put_str(b, e, "jirasite", ev->site);
        put_str(b, e, "idhubactor", ev->actor);
        put_str(b, e, "traceparent", ev->traceparent);
        put_str(b, e, "correlationid", ev->correlationid);
    }
    return e;
}

/* Attaches data and returns the record, or NULL when anything failed. */
static json_t *finish(builder_t *b, json_t *rec, json_t *data)
{
    put(b, rec, "data", data);
    if (b->bad) {
        json_decref(rec);
        return NULL;
    }
    return rec;
}

/* A deep copy of j, or `fallback` (new) when j is NULL. */
static json_t *copy_or(const json_t *j, json_t *fallback)
{
    if (!j)
        return fallback;
    json_decref(fallback);
    return json_deep_copy(j);
}

/* error {class, reason, message} from an outcome that has one. */
static json_t *error_object(builder_t *b, const jp_outcome_t *o)
{
    json_t *err = json_object();
    put_str(b, err, "class", jp_class_name(o->error_class));
    put_redacted(b, err, "reason", o->error_reason ? o->error_reason : "unknown");
    put_redacted(b, err, "message", o->error_message);
    return err;
}

/* ---- result ------------------------------------------------------------- */

json_t *jp_record_result(const jp_event_t *ev, const jp_outcome_t *o, int attempts,
                         int64_t duration_ms, const char *instance_id, int64_t now_ms)
{
    if (!ev || !o || o->status > JP_OUTCOME_FAILED)
        return NULL;
    builder_t b = {0};
    char id[JP_EVENT_ID_MAX + 32];
    snprintf(id, sizeof(id), "%s:result", ev->id);
    json_t *rec = envelope(&b, id, JP_RECORD_TYPE_RESULT, ev->subject, ev, instance_id, now_ms);
    json_t *d = json_object();
    put_str(&b, d, "eventId", ev->id);
    put_str(&b, d, "eventType", jp_event_type_name(ev->type));
    put_str(&b, d, "subject", ev->subject);
    put_str(&b, d, "site", ev->site);
    put_str(&b, d, "status", jp_outcome_status_name(o->status));
    put(&b, d, "jira", copy_or(o->jira, json_object()));
    put(&b, d, "changed", copy_or(o->changed, json_array()));
    put_int(&b, d, "attempts", attempts);
    put_int(&b, d, "durationMs", duration_ms);
    if (o->status == JP_OUTCOME_FAILED)
        put(&b, d, "error", error_object(&b, o));
    put_redacted(&b, d, "detail", o->detail);
    return finish(&b, rec, d);
}

/* ---- dead letter --------------------------------------------------------- */

/* Valid UTF-8 without NUL bytes (jansson rejects invalid UTF-8; NUL is
 * legal JSON but no consumer expects it in text). */
static json_t *as_text(const void *p, size_t n)
{
    if (n && memchr(p, '\0', n))
        return NULL;
    return json_stringn(n ? p : "", n);
}

static json_t *as_base64(const void *p, size_t n)
{
    if (n > (size_t)INT32_MAX / 2)
        return NULL;
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    if (!out)
        return NULL;
    int len = EVP_EncodeBlock((unsigned char *)out, p, (int)n);
    json_t *s = json_stringn(out, (size_t)len);
    free(out);
    return s;
}

/* obj[key] = text, or obj[key "Base64"] = base64 when not text. */
static void put_bytes(builder_t *b, json_t *obj, const char *key, const void *p, size_t n)
{
    json_t *t = as_text(p, n);
    if (t) {
        put(b, obj, key, t);
        return;
    }
    char name[32];
    snprintf(name, sizeof(name), "%sBase64", key);
    put(b, obj, name, as_base64(p, n));
}

static json_t *headers_array(builder_t *b, const jp_kafka_header_t *h, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        json_t *e = json_object();
        const char *name = h[i].name ? h[i].name : "";
        put_bytes(b, e, "name", name, strlen(name));
        if (!h[i].value)
            put(b, e, "value", json_null());
        else
            put_bytes(b, e, "value", h[i].value, h[i].len);
        if (!e || json_array_append_new(arr, e) != 0)
            b->bad = 1;
    }
    return arr;
}

json_t *jp_record_deadletter(const jp_event_t *ev, const char *topic, int32_t partition,
                             int64_t offset, int64_t timestamp_ms, const void *key, size_t key_len,
                             const void *value, size_t value_len, const jp_kafka_header_t *headers,
                             size_t header_count, const char *reason, jp_class_t cls, int attempts,
                             const json_t *history, const char *instance_id, int64_t now_ms)
{
    if (!topic || !reason || (!value && value_len) || (!key && key_len) ||
        (!headers && header_count) || (history && !json_is_array(history)))
        return NULL;
    builder_t b = {0};
    char where[512], id[560];
    snprintf(where, sizeof(where), "%s/%d/%lld", topic, (int)partition, (long long)offset);
    snprintf(id, sizeof(id), "%s:deadletter", where);
    /* The key is the subject when it is usable text; else the position. */
    json_t *key_text = key_len ? as_text(key, key_len) : NULL;
    const char *subject = key_text ? json_string_value(key_text) : where;
    json_t *rec = envelope(&b, id, JP_RECORD_TYPE_DEADLETTER, subject, ev, instance_id, now_ms);
    json_decref(key_text);

    json_t *d = json_object();
    put_redacted(&b, d, "reason", reason);
    put_str(&b, d, "errorClass", jp_class_name(cls));
    put_str(&b, d, "sourceTopic", topic);
    put_int(&b, d, "partition", partition);
    put_int(&b, d, "offset", offset);
    if (timestamp_ms >= 0)
        put_int(&b, d, "timestampMs", timestamp_ms);
    if (key_len)
        put_bytes(&b, d, "key", key, key_len);
    put_bytes(&b, d, "value", value, value_len);
    put(&b, d, "headers", headers_array(&b, headers, header_count));
    if (ev) {
        put_str(&b, d, "eventId", ev->id);
        put_str(&b, d, "eventType", jp_event_type_name(ev->type));
    }
    put_int(&b, d, "attempts", attempts);
    put(&b, d, "history", copy_or(history, json_array()));
    return finish(&b, rec, d);
}

/* ---- audit --------------------------------------------------------------- */

/* Copies o->jira[name] into target when it is a string. */
static void target_from_jira(builder_t *b, json_t *t, const jp_outcome_t *o, const char *name)
{
    const char *v = o && o->jira ? json_string_value(json_object_get(o->jira, name)) : NULL;
    if (v && !json_object_get(t, name))
        put_str(b, t, name, v);
}

static json_t *target_object(builder_t *b, const jp_event_t *ev, const jp_outcome_t *o)
{
    json_t *t = json_object();
    if (JP_EVENT_IS_ACCOUNT(ev->type)) {
        put_str(b, t, "kind", "account");
        put_str(b, t, "login", jp_event_login(ev));
    } else if (JP_EVENT_IS_ENTITLEMENT(ev->type)) {
        const jp_entitlement_t *en = &ev->entitlement;
        put_str(b, t, "kind", en->kind == JP_ENTITLEMENT_GROUP ? "group" : "role");
        put_str(b, t, "login", en->login);
        put_str(b, t, "group", en->group);
        put_str(b, t, "project", en->project);
        put_str(b, t, "role", en->role);
    } else if (JP_EVENT_IS_ISSUE(ev->type)) {
        put_str(b, t, "kind", "issue");
        put_str(b, t, "issueKey", ev->issue.key);
        put_str(b, t, "externalRef", ev->issue.external_ref);
        put_str(b, t, "project", ev->issue.project);
    } else {
        put_str(b, t, "kind", "recon");
        put_str(b, t, "reconId", ev->recon.recon_id);
    }
    static const char *const ids[] = {"issueKey",  "issueId", "scimId",
                                      "accountId", "groupId", "roleId"};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
        target_from_jira(b, t, o, ids[i]);
    return t;
}

/* What a call did, as "<family>.<action>": special cases first, then the
 * endpoint class with a verb from the method. */
static void operation_name(const jp_outcome_call_t *c, char *out, size_t out_size)
{
    const char *m = c->method ? c->method : "";
    const char *cls = c->endpoint_class ? c->endpoint_class : (c->api ? c->api : "jira");
    const char *path = c->path ? c->path : "";
    size_t plen = strlen(path);
    int post = !strcmp(m, "POST"), del = !strcmp(m, "DELETE"), get = !strcmp(m, "GET");
    int upd = !strcmp(m, "PUT") || !strcmp(m, "PATCH");
    static const struct {
        const char *cls, *verb[4]; /* POST, PUT/PATCH, DELETE, GET */
    } table[] = {
        {"scim.users",
         {"scim.user.create", "scim.user.update", "scim.user.delete", "scim.user.read"}},
        {"scim.groups",
         {"scim.group.create", "scim.group.update", "scim.group.delete", "scim.group.read"}},
        {"rest.group.user", {"rest.group.member.add", NULL, "rest.group.member.remove", NULL}},
        {"rest.project.role",
         {"rest.project.role.actor.add", NULL, "rest.project.role.actor.remove",
          "rest.project.role.read"}},
        {"rest.issue.transitions",
         {"rest.issue.transition", NULL, NULL, "rest.issue.transitions.read"}},
        {"rest.issue",
         {"rest.issue.create", "rest.issue.update", "rest.issue.delete", "rest.issue.read"}},
    };
    if (!strcmp(cls, "admin.lifecycle")) {
        const char *slash = strrchr(path, '/');
        snprintf(out, out_size, "admin.user.%s", slash && slash[1] ? slash + 1 : "lifecycle");
        return;
    }
    if (!strcmp(cls, "rest.issue") && plen >= 9 && !strcmp(path + plen - 9, "/assignee")) {
        snprintf(out, out_size, "rest.issue.assign");
        return;
    }
    if (!strcmp(cls, "rest.issue") && strstr(path, "/properties/")) {
        snprintf(out, out_size, "rest.issue.property.%s", del ? "delete" : "set");
        return;
    }
    int slot = post ? 0 : upd ? 1 : del ? 2 : get ? 3 : -1;
    for (size_t i = 0; slot >= 0 && i < sizeof(table) / sizeof(table[0]); i++)
        if (!strcmp(cls, table[i].cls) && table[i].verb[slot]) {
            snprintf(out, out_size, "%s", table[i].verb[slot]);
            return;
        }
    static const char *const verbs[] = {"create", "update", "delete", "read"};
    snprintf(out, out_size, "%s.%s", cls, slot >= 0 ? verbs[slot] : "call");
}

static const char *call_outcome(long status)
{
    if (status <= 0)
        return "unknown";
    return status < 400 ? "succeeded" : "failed";
}

/* Fields every audit record shares, up to "target". */
static json_t *audit_data(builder_t *b, const jp_event_t *ev, const jp_outcome_t *o)
{
    json_t *d = json_object();
    put_str(b, d, "eventId", ev->id);
    put_str(b, d, "eventType", jp_event_type_name(ev->type));
    put_str(b, d, "actor", ev->actor);
    put_str(b, d, "site", ev->site);
    put(b, d, "target", target_object(b, ev, o));
    return d;
}

static void audit_trace(builder_t *b, json_t *d, const jp_event_t *ev)
{
    put_str(b, d, "traceparent", ev->traceparent);
    put_str(b, d, "correlationid", ev->correlationid);
}

json_t *jp_record_audit_call(const jp_event_t *ev, const jp_outcome_t *o,
                             const jp_outcome_call_t *call, const char *instance_id, int64_t now_ms)
{
    if (!ev || !o || !call)
        return NULL;
    builder_t b = {0};
    size_t index = 0;
    if (o->calls && call >= o->calls && call < o->calls + o->call_count)
        index = (size_t)(call - o->calls);
    char id[JP_EVENT_ID_MAX + 64], op[96];
    snprintf(id, sizeof(id), "%s:audit:%zu@%lld", ev->id, index, (long long)call->started_ms);
    json_t *rec = envelope(&b, id, JP_RECORD_TYPE_AUDIT, ev->subject, ev, instance_id, now_ms);
    json_t *d = audit_data(&b, ev, o);
    operation_name(call, op, sizeof(op));
    put_str(&b, d, "operation", op);
    put_str(&b, d, "api", call->api);
    put_str(&b, d, "method", call->method);
    put_redacted(&b, d, "path", call->path);
    put_int(&b, d, "status", call->status);
    put_str(&b, d, "outcome", call_outcome(call->status));
    put_str(&b, d, "eventOutcome", jp_outcome_status_name(o->status));
    if (call->mutation)
        put(&b, d, "changedAttributes", copy_or(o->changed, json_array()));
    else
        put(&b, d, "changedAttributes", json_array());
    put_str(&b, d, "worker", instance_id);
    put_time(&b, d, "startedAt", call->started_ms);
    put_int(&b, d, "durationUs", call->duration_us);
    audit_trace(&b, d, ev);
    return finish(&b, rec, d);
}

json_t *jp_record_audit_decision(const jp_event_t *ev, const jp_outcome_t *o, const char *decision,
                                 const char *instance_id, int64_t now_ms)
{
    if (!ev || !decision ||
        (strcmp(decision, "skipped") && strcmp(decision, "deadlettered") &&
         strcmp(decision, "quarantined")))
        return NULL;
    builder_t b = {0};
    char id[JP_EVENT_ID_MAX + 64], op[48];
    snprintf(id, sizeof(id), "%s:audit:%s@%lld", ev->id, decision, (long long)now_ms);
    snprintf(op, sizeof(op), "decision.%s", decision);
    json_t *rec = envelope(&b, id, JP_RECORD_TYPE_AUDIT, ev->subject, ev, instance_id, now_ms);
    json_t *d = audit_data(&b, ev, o);
    put_str(&b, d, "operation", op);
    put_str(&b, d, "outcome", decision);
    if (o)
        put_str(&b, d, "eventOutcome", jp_outcome_status_name(o->status));
    put(&b, d, "changedAttributes", json_array());
    if (o && (o->error_class != JP_CLASS_OK || o->error_reason))
        put(&b, d, "error", error_object(&b, o));
    put_str(&b, d, "worker", instance_id);
    put_time(&b, d, "startedAt", now_ms);
    audit_trace(&b, d, ev);
    return finish(&b, rec, d);
}

json_t *jp_record_site_state(const char *site, const char *api, int quarantined, const char *reason,
                             int64_t since_ms, const char *instance_id, int64_t now_ms)
{
    if (!site || !api)
        return NULL;
    builder_t b = {0};
    const char *state = quarantined ? "quarantined" : "active";
    char id[256];
    snprintf(id, sizeof(id), "site:%s:%s:%s@%lld", site, api, state, (long long)since_ms);
    json_t *rec = envelope(&b, id, JP_RECORD_TYPE_SITE_STATE, site, NULL, instance_id, now_ms);
    put_str(&b, rec, "jirasite", site);
    json_t *d = json_object();
    put_str(&b, d, "site", site);
    put_str(&b, d, "api", api);
    put_str(&b, d, "state", state);
    put_redacted(&b, d, "reason", reason ? reason : "");
    put_time(&b, d, quarantined ? "since" : "quarantinedSince", since_ms);
    put_str(&b, d, "worker", instance_id);
    return finish(&b, rec, d);
}

json_t *jp_record_audit_site(const char *site, const char *api, int quarantined, const char *reason,
                             int64_t since_ms, const char *instance_id, int64_t now_ms)
{
    if (!site || !api)
        return NULL;
    builder_t b = {0};
    const char *state = quarantined ? "quarantined" : "active";
    char id[256], op[32];
    snprintf(op, sizeof(op), "site.%s", state);
    snprintf(id, sizeof(id), "site:%s:%s:audit:%s@%lld", site, api, op, (long long)since_ms);
    json_t *rec = envelope(&b, id, JP_RECORD_TYPE_AUDIT, site, NULL, instance_id, now_ms);
    put_str(&b, rec, "jirasite", site);
    json_t *d = json_object();
    put_str(&b, d, "operation", op);
    put_str(&b, d, "outcome", state);
    put_str(&b, d, "site", site);
    put_str(&b, d, "api", api);
    put_redacted(&b, d, "reason", reason && *reason ? reason : state);
    put_time(&b, d, "since", since_ms);
    put_str(&b, d, "worker", instance_id);
    put_time(&b, d, "startedAt", now_ms);
    return finish(&b, rec, d);
}

json_t *jp_record_audit_stream(const char *stream, const char *what, const json_t *extra,
                               const char *instance_id, int64_t now_ms)
{
    if (!stream || !stream[0] || !what || (strcmp(what, "started") && strcmp(what, "stopped")) ||
        (extra && !json_is_object(extra)))
        return NULL;
    builder_t b = {0};
    char id[JP_EVENT_ID_MAX + 64], op[32];
    snprintf(op, sizeof(op), "stream.%s", what);
    if ((size_t)snprintf(id, sizeof(id), "%s:audit:%s@%lld", stream, op, (long long)now_ms) >=
        sizeof(id))
        return NULL;
    json_t *rec = envelope(&b, id, JP_RECORD_TYPE_AUDIT, stream, NULL, instance_id, now_ms);
    json_t *d = json_object();
    put_str(&b, d, "operation", op);
    put_str(&b, d, "outcome", what);
    put_str(&b, d, "worker", instance_id);
    put_time(&b, d, "startedAt", now_ms);
    if (extra) {
        json_t *copy = json_deep_copy(extra);
        if (!copy || !d || json_object_update(d, copy) != 0)
            b.bad = 1;
        json_decref(copy);
    }
    return finish(&b, rec, d);
}

char *jp_record_dump(const json_t *record, size_t *len)
{
    size_t n = 0;
    char *s = record ? jp_json_dumps(record, &n) : NULL;
    if (s && len)
        *len = n;
    return s;
}
