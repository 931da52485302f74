/* What applying one event to Jira came to: produced by the planner (apply),
 * decided on by the pipeline (retry, record, dead-letter, quarantine) and
 * encoded by the record module into result, audit and dead-letter records.
 *
 * Ownership: a jp_outcome_t and everything it points to belong to whoever
 * holds the outcome; jp_outcome_destroy() frees it all (NULL is a no-op).
 * Strings are copies; json_t members are owned references. */
#ifndef JIRAPROV_OUTCOME_H
#define JIRAPROV_OUTCOME_H

#include "jiraprov/classify.h"

#include <jansson.h>
#include <stdint.h>

typedef enum jp_outcome_status {
    JP_OUTCOME_SUCCEEDED = 0, /* Jira now holds what the event asked for (it changed) */
    JP_OUTCOME_SKIPPED,       /* Jira already held it: nothing was changed */
    JP_OUTCOME_FAILED,        /* permanent: the event cannot be applied as sent */
    JP_OUTCOME_RETRY,         /* retriable: try again later (see retry_after_ms) */
    JP_OUTCOME_QUARANTINE,    /* the site's credentials/permissions/TLS are wrong */
    JP_OUTCOME_DEFERRED       /* not tried to the end, no failure: the shared budget said
                               * wait (retry_after_ms); not an attempt, never terminal */
} jp_outcome_status_t;

/* "succeeded", "skipped", "failed", "retry", "quarantine", "deferred". */
const char *jp_outcome_status_name(jp_outcome_status_t s);

/* One HTTP call made to Jira while applying an event, for audit records.
 * `path` has no query string values that could hold personal data beyond
 * what the target names, and never any credential. */
typedef struct jp_outcome_call {
    char *method;         /* "POST" */
    char *api;            /* "scim", "admin" or "rest" */
    char *path;           /* "/scim/directory/<dir>/Users/<id>" or "/rest/api/3/issue/DEMO-1" */
    char *endpoint_class; /* rate-limit / metrics class, e.g. "scim.users" */
    int mutation;         /* 1 if the call can change Jira */
    long status;          /* HTTP status, 0 if none arrived */
    int64_t started_ms;   /* wall clock, Unix ms */
    int64_t duration_us;
} jp_outcome_call_t;

typedef struct jp_outcome {
    jp_outcome_status_t status;
    jp_class_t error_class; /* JP_CLASS_OK unless FAILED / RETRY / QUARANTINE */
    char *error_reason;     /* static-like short reason: "http_404", "timeout", "not_found" */
    char *error_message;    /* one readable sentence; NULL on success */
    char *detail;           /* optional note: "already a member", "created (found after 409)" */
    int64_t retry_after_ms; /* RETRY: minimum wait the server asked for, -1 if none */
    jp_limit_scope_t limit_scope; /* RETRY after a 429: which scope to cool down */
    /* What Jira returned, as an object with any of: "scimId", "accountId",
     * "issueKey", "issueId", "groupId", "roleId", "status" (strings). Never NULL. */
    json_t *jira;
    /* Names of the IDHub attributes or issue fields changed (array of strings,
     * never values). Never NULL. */
    json_t *changed;
    jp_outcome_call_t *calls;
    size_t call_count;
    int64_t duration_ms; /* apply: this attempt's time; once terminal, the pipeline sets the
                          * time from the event's first start to its outcome */
    int attempts;        /* set by the pipeline once terminal: attempts it took (0 = none) */
} jp_outcome_t;

/* A fresh outcome with the given status, empty jira/changed objects, no
 * calls; NULL on allocation failure. */
jp_outcome_t *jp_outcome_new(jp_outcome_status_t status);
void jp_outcome_destroy(jp_outcome_t *o);

/* Sets status, class, reason and message (copied; message may be NULL). */
void jp_outcome_set_error(jp_outcome_t *o, jp_outcome_status_t status, jp_class_t cls,
                          const char *reason, const char *message);
/* Appends a call record (strings copied). Returns 0, or -1 on ENOMEM. */
int jp_outcome_add_call(jp_outcome_t *o, const char *method, const char *api, const char *path,
                        const char *endpoint_class, int mutation, long status, int64_t started_ms,
                        int64_t duration_us);
/* jira[key] = value (copied); ignored when value is NULL. */
void jp_outcome_set_jira(jp_outcome_t *o, const char *key, const char *value);

/* Serialise for the Redis outcome record and back. The JSON carries status,
 * error fields, detail, jira, changed, attempts and duration; not the calls
 * (they are audited once, when made), so a replayed result equals the first. jp_outcome_from_json
 * returns NULL on a malformed value. */
json_t *jp_outcome_to_json(const jp_outcome_t *o);
jp_outcome_t *jp_outcome_from_json(const json_t *j);

#endif
