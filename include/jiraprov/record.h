/* Records the worker publishes: results, dead letters and audit records,
 * each a structured-mode CloudEvents 1.0 JSON object. Pure functions: no
 * I/O, no clock (the caller passes now_ms), no global state except the
 * logger's secret list used for redaction.
 *
 * Additions to the agreed interface (nothing was renamed or removed):
 *   - jp_record_dump(): the compact serialisation every record is published
 *     in (the bytes the tests and samples compare against);
 *   - the JP_RECORD_* type, source and chain-field names below.
 *
 * Envelope (attributes in this order; optional ones omitted when unknown):
 *   specversion "1.0", id, source "jiraprov://worker/<instance_id>", type,
 *   subject, time (RFC 3339 UTC with milliseconds, from now_ms),
 *   datacontenttype "application/json", jirasite, idhubactor, traceparent,
 *   correlationid (the last four copied from the event when there is one),
 *   data.
 *
 * Ids are deterministic, so that re-encoding the same thing gives the same id
 * (a republished result is a duplicate to a consumer, not a new record):
 *   result          <event id>:result
 *   dead letter     <topic>/<partition>/<offset>:deadletter
 *   audit (call)    <event id>:audit:<call index>@<call started_ms>
 *   audit (decision) <event id>:audit:<decision>@<now_ms>
 *   audit (stream)   <stream id>:audit:stream.<started|stopped>@<now_ms>
 * (the call index is the call's position in o->calls; with its start time it
 * is unique across the attempts of one event.)
 *
 * Secrets: nothing from the configuration goes into a record except
 * instance_id. Error messages, details, reasons and paths pass through
 * jp_log_redact() (registered secrets become "[redacted]"). Dead letters keep
 * the original message bytes as they were consumed.
 *
 * Schemas: config/schemas/result.schema.json, deadletter.schema.json,
 * audit.schema.json (checked by tests/schemas/check_records.py against
 * config/samples/records/, which test_record.c regenerates and compares).
 *
 * Ownership: every function returns a new JSON object owned by the caller
 * (json_decref), or NULL on invalid arguments or ENOMEM. Inputs are
 * borrowed and copied into the record. */
#ifndef JIRAPROV_RECORD_H
#define JIRAPROV_RECORD_H

#include "jiraprov/classify.h"
#include "jiraprov/event.h"
#include "jiraprov/kafka.h"
#include "jiraprov/outcome.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define JP_RECORD_TYPE_RESULT     "com.jiraprov.result"
#define JP_RECORD_TYPE_DEADLETTER "com.jiraprov.deadletter"
#define JP_RECORD_TYPE_AUDIT      "com.jiraprov.audit"
#define JP_RECORD_TYPE_SITE_STATE "com.jiraprov.site.state"
#define JP_RECORD_SOURCE_PREFIX   "jiraprov://worker/"
/* Reserved member of an audit record's `data` for the tamper-evidence chain
 * (issue 7: stream id, sequence, HMAC). The encoders never set it; the chain
 * module adds it to the returned record before it is published, and the
 * audit schema already allows it. */
#define JP_RECORD_AUDIT_CHAIN_FIELD "chain"

/* Result: type com.jiraprov.result, subject = the event's subject (also the
 * Kafka key). data: eventId, eventType (short name), subject, site, status
 * (succeeded|skipped|failed), jira (object: scimId, accountId, issueKey, ...),
 * changed (array of names), attempts, durationMs, error {class, reason,
 * message} (only when failed), detail (when set). o->status must be terminal
 * (SUCCEEDED, SKIPPED, FAILED): RETRY and QUARANTINE give NULL. */
json_t *jp_record_result(const jp_event_t *ev, const jp_outcome_t *o, int attempts,
                         int64_t duration_ms, const char *instance_id, int64_t now_ms);

/* Dead letter: type com.jiraprov.deadletter. Works for malformed events too
 * (ev == NULL). data: reason, errorClass, sourceTopic, partition, offset,
 * timestampMs (omitted when < 0), key (string when valid UTF-8 without NUL,
 * else keyBase64; omitted when there is no key), value (likewise, or
 * valueBase64), headers [{name | nameBase64, value | valueBase64}] (value
 * null for a null header value), eventId and eventType (when the event decoded), attempts,
 * history (a copy of `history`, or [] when NULL). subject = the key when it
 * is non-empty UTF-8, else "<topic>/<partition>/<offset>". */
json_t *jp_record_deadletter(const jp_event_t *ev, const char *topic, int32_t partition,
                             int64_t offset, int64_t timestamp_ms, const void *key, size_t key_len,
                             const void *value, size_t value_len, const jp_kafka_header_t *headers,
                             size_t header_count, const char *reason, jp_class_t cls, int attempts,
                             const json_t *history, const char *instance_id, int64_t now_ms);

/* Audit of one Jira call (the pipeline calls it for every call with
 * mutation set; `call` should point into o->calls). type
 * com.jiraprov.audit, subject = the event's subject. data: eventId,
 * eventType, actor, site, target {kind: account|group|role|issue|recon, and
 * login, group, project, role, issueKey, externalRef, reconId, scimId,
 * accountId, groupId, issueId where known}, operation (e.g.
 * "scim.user.create", "admin.user.disable", "rest.issue.transition"), api,
 * method, path, status (HTTP, 0 when no response), outcome (of the call:
 * succeeded for 1xx-3xx, failed for 4xx/5xx, unknown without a response),
 * eventOutcome (o->status), changedAttributes (names only, mutations only),
 * worker, startedAt, durationUs, traceparent, correlationid (when the event
 * has them). No request or response bodies, no headers. */
json_t *jp_record_audit_call(const jp_event_t *ev, const jp_outcome_t *o,
                             const jp_outcome_call_t *call, const char *instance_id,
                             int64_t now_ms);

/* Audit of a decision that changes nothing in Jira: decision is "skipped",
 * "deadlettered" or "quarantined" (anything else gives NULL). Same data as a
 * call record without api/method/path/status/durationUs; operation is
 * "decision.<decision>", outcome = decision, startedAt = now, and, when the
 * outcome has an error, error {class, reason, message}. o may be NULL
 * (no jira ids, no error); ev may not (a malformed event's only record is its
 * dead letter). */
json_t *jp_record_audit_decision(const jp_event_t *ev, const jp_outcome_t *o, const char *decision,
                                 const char *instance_id, int64_t now_ms);

/* A site's API entered or left quarantine (the limiter's shared state
 * changed): type com.jiraprov.site.state, subject and jirasite = the site.
 * Published to the results topic (IDHub) and the audit topic. data: site,
 * api (scim|admin|rest), state (quarantined|active), reason, worker, and
 * since (quarantined: when it began) or quarantinedSince (active: when the
 * quarantine that just ended began). id: site:<site>:<api>:<state>@<since_ms>,
 * the same on every worker that reports the same transition. */
json_t *jp_record_site_state(const char *site, const char *api, int quarantined, const char *reason,
                             int64_t since_ms, const char *instance_id, int64_t now_ms);

/* Audit of a quarantine transition of a site's API (the audit topic's form
 * of jp_record_site_state): type com.jiraprov.audit, id
 * "site:<site>:<api>:audit:site.<quarantined|active>@<since_ms>", subject and
 * jirasite = the site, no idhubactor (no event caused it). data: operation
 * "site.quarantined" or "site.active", outcome "quarantined" or "active",
 * site, api, reason, since (when the quarantine began), worker, startedAt. */
json_t *jp_record_audit_site(const char *site, const char *api, int quarantined, const char *reason,
                             int64_t since_ms, const char *instance_id, int64_t now_ms);

/* Audit of the audit stream itself (see audit.h): `what` is "started" or "stopped"
 * (anything else gives NULL). type com.jiraprov.audit, id
 * "<stream>:audit:stream.<what>@<now_ms>", subject = the stream id; no jirasite, idhubactor,
 * traceparent or correlationid (no event caused it). data: operation "stream.<what>", outcome
 * what, worker, startedAt = now, then a copy of every member of `extra` (an object or NULL:
 * e.g. previous {stream, seq, mac} or previousUnknown). */
json_t *jp_record_audit_stream(const char *stream, const char *what, const json_t *extra,
                               const char *instance_id, int64_t now_ms);

/* The published form of a record: compact JSON, attributes in insertion
 * order. Returns malloc'd NUL-terminated text (free()) and its length in
 * *len (may be NULL), or NULL on ENOMEM. */
char *jp_record_dump(const json_t *record, size_t *len);

#endif
