/* The event contract: what IDHub publishes, decoded and validated.
 *
 * Every Kafka message on the events topic is one structured-mode CloudEvents
 * 1.0 JSON object; the Kafka key is the event's subject. jp_event_decode()
 * checks the whole contract (envelope, extensions, typed data) and returns a
 * read-only jp_event_t, or one sentence naming the first offending field:
 *
 *   data.email: expected an email address, got "jdoe"
 *
 * Checks run in a fixed order and the first failure wins: size, JSON syntax,
 * top-level shape, specversion, id, source, type, subject (format), time,
 * datacontenttype, dataschema, jirasite, idhubactor, traceparent,
 * correlationid, unknown attributes, data (fields in schema order, then
 * unknown fields, then cross-field rules), and last the subject/data match.
 *
 * The JSON Schemas in config/schemas/ describe the same contract; the two are
 * kept in step by tests/schemas and the corpus in tests/unit/data/events.
 *
 * Ownership: jp_event_decode() returns an event the caller frees with
 * jp_event_destroy(). Every `const char *` in the event points into memory
 * owned by the event (the strings of `root`, or after jp_event_compact() one
 * block of its own) and stays valid until jp_event_destroy(); never free or
 * modify them, and never modify `root`.
 * The struct is transparent so that callers read fields directly; it is
 * never written after decoding, so it may be shared read-only between
 * threads. */
#ifndef JIRAPROV_EVENT_H
#define JIRAPROV_EVENT_H

#include "jiraprov/err.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JP_EVENT_SPECVERSION     "1.0"
#define JP_EVENT_TYPE_PREFIX     "com.idhub."
#define JP_EVENT_CONTENT_TYPE    "application/json"
#define JP_EVENT_MAX_BYTES       (1024u * 1024u) /* default jp_event_limits_t.max_bytes */
#define JP_EVENT_ID_MAX          256             /* bytes, printable ASCII */
#define JP_EVENT_SUBJECT_MAX     512             /* bytes */
#define JP_EVENT_ACTOR_MAX       256             /* bytes (idhubactor, correlationid) */
#define JP_EVENT_SITE_MAX        64              /* jirasite: [a-z0-9_-]{1,64} */
#define JP_EVENT_STRING_MAX      1024            /* any string without its own limit */
#define JP_EVENT_LOGIN_MAX       256             /* bytes */
#define JP_EVENT_EMAIL_MAX       254             /* bytes */
#define JP_EVENT_REF_MAX         128             /* externalRef, reconId */
#define JP_EVENT_SUMMARY_MAX     255             /* characters (code points) */
#define JP_EVENT_DESCRIPTION_MAX 32767           /* bytes */
#define JP_EVENT_LABEL_MAX       255             /* characters (code points) */
#define JP_EVENT_LABELS_MAX      100             /* labels per issue */

/* ---- event types -------------------------------------------------------- */

typedef enum jp_event_type {
    JP_EVENT_ACCOUNT_CREATE = 0,
    JP_EVENT_ACCOUNT_UPDATE,
    JP_EVENT_ACCOUNT_DELETE,
    JP_EVENT_ACCOUNT_ENABLE,
    JP_EVENT_ACCOUNT_DISABLE,
    JP_EVENT_ENTITLEMENT_GRANT,
    JP_EVENT_ENTITLEMENT_REVOKE,
    JP_EVENT_ISSUE_CREATE,
    JP_EVENT_ISSUE_UPDATE,
    JP_EVENT_ISSUE_DELETE,
    JP_EVENT_ISSUE_TRANSITION,
    JP_EVENT_RECON_REQUEST,
    JP_EVENT__COUNT
} jp_event_type_t;

/* Short name without the prefix: "account.create". NULL if t is out of range. */
const char *jp_event_type_name(jp_event_type_t t);
/* CloudEvents type: "com.idhub.account.create". NULL if t is out of range. */
const char *jp_event_type_ce(jp_event_type_t t);
/* Accepts the short name or the CloudEvents type; returns -1 if unknown. */
int jp_event_type_parse(const char *name);

/* Which union member of jp_event_t a type fills. */
#define JP_EVENT_IS_ACCOUNT(t) ((t) >= JP_EVENT_ACCOUNT_CREATE && (t) <= JP_EVENT_ACCOUNT_DISABLE)
#define JP_EVENT_IS_ENTITLEMENT(t)                                                                 \
    ((t) == JP_EVENT_ENTITLEMENT_GRANT || (t) == JP_EVENT_ENTITLEMENT_REVOKE)
#define JP_EVENT_IS_ISSUE(t) ((t) >= JP_EVENT_ISSUE_CREATE && (t) <= JP_EVENT_ISSUE_TRANSITION)
#define JP_EVENT_IS_RECON(t) ((t) == JP_EVENT_RECON_REQUEST)

/* ---- optional values ---------------------------------------------------- */

/* How an optional field appeared in data. For account.update and
 * issue.update: ABSENT = leave unchanged, NULL = clear, VALUE = desired. */
typedef enum jp_presence { JP_ABSENT = 0, JP_NULL, JP_VALUE } jp_presence_t;

typedef struct jp_optstr {
    jp_presence_t state;
    const char *value; /* non-NULL iff state == JP_VALUE */
} jp_optstr_t;

/* ---- account attributes ------------------------------------------------- */

/* The IDHub account attributes, in schema order. */
typedef enum jp_attr {
    JP_ATTR_LOGIN = 0,
    JP_ATTR_EMAIL,
    JP_ATTR_FIRST_NAME,
    JP_ATTR_LAST_NAME,
    JP_ATTR_DISPLAY_NAME,
    JP_ATTR_NICK_NAME,
    JP_ATTR_JOB_TITLE,
    JP_ATTR_DEPARTMENT,
    JP_ATTR_ORGANIZATION_NAME,
    JP_ATTR_TIMEZONE,
    JP_ATTR_EXTERNAL_ID,
    JP_ATTR__COUNT
} jp_attr_t;

/* IDHub (JSON) name: "firstName". NULL if out of range. */
const char *jp_attr_name(jp_attr_t a);
/* Inverse of jp_attr_name() (exact, case-sensitive); -1 if unknown. */
int jp_attr_parse(const char *name);

/* account.*: attr[JP_ATTR_LOGIN] is always JP_VALUE.
 *  - create:  email is JP_VALUE; others ABSENT or VALUE (null is rejected).
 *  - update:  any attribute may be ABSENT/NULL/VALUE, except email (never
 *             NULL: Atlassian requires one) and login; at least one attribute
 *             or `active` is present.
 *  - delete / enable / disable: only login.
 * `active`: JP_ABSENT or JP_VALUE (null is rejected). On create an absent
 * `active` means true; `active` already holds that default. */
typedef struct jp_account_attrs {
    jp_optstr_t attr[JP_ATTR__COUNT];
    jp_presence_t active_state;
    bool active;
} jp_account_attrs_t;

/* ---- entitlements ------------------------------------------------------- */

typedef enum jp_entitlement_kind {
    JP_ENTITLEMENT_GROUP = 0,   /* {"type":"group","group":"..."} */
    JP_ENTITLEMENT_PROJECT_ROLE /* {"type":"projectRole","project":"KEY","role":"..."} */
} jp_entitlement_kind_t;

typedef struct jp_entitlement {
    const char *login;
    jp_entitlement_kind_t kind;
    const char *group;   /* JP_ENTITLEMENT_GROUP, else NULL */
    const char *project; /* JP_ENTITLEMENT_PROJECT_ROLE (Cloud key), else NULL */
    const char *role;    /* JP_ENTITLEMENT_PROJECT_ROLE, else NULL */
} jp_entitlement_t;

/* ---- issues ------------------------------------------------------------- */

/* issue.*: which fields are set depends on the type.
 *  - create:     external_ref, project, issue_type, summary (VALUE); optional
 *                description, priority, assignee (ABSENT or VALUE), labels.
 *  - update:     key XOR external_ref; summary (ABSENT/VALUE), description,
 *                priority, assignee, labels (ABSENT/NULL/VALUE); at least one.
 *                assignee NULL = unassign; labels NULL or [] = remove all.
 *  - delete:     key XOR external_ref; delete_subtasks (default false).
 *  - transition: key XOR external_ref; status. */
typedef struct jp_issue {
    const char *key;          /* Cloud issue key "DEMO-12", or NULL */
    const char *external_ref; /* IDHub's reference, or NULL */
    const char *project;      /* create only */
    const char *issue_type;   /* create only (a name, e.g. "Task") */
    jp_optstr_t summary;
    jp_optstr_t description; /* plain text; the worker converts it to ADF */
    jp_optstr_t priority;    /* a name */
    jp_optstr_t assignee;    /* a login */
    jp_presence_t labels_state;
    size_t labels_count;
    const char *const *labels; /* labels_count entries (NULL when 0) */
    const char *status;        /* transition only: target status name */
    bool delete_subtasks;      /* delete only */
} jp_issue_t;

/* ---- reconciliation ----------------------------------------------------- */

typedef enum jp_recon_mode {
    JP_RECON_FULL = 0,
    JP_RECON_FILTERED,
    JP_RECON_INCREMENTAL
} jp_recon_mode_t;

/* "full", "filtered", "incremental"; NULL if out of range. */
const char *jp_recon_mode_name(jp_recon_mode_t m);

/* Bits of jp_recon_request_t.resources. */
#define JP_RECON_ACCOUNTS     0x1u
#define JP_RECON_ENTITLEMENTS 0x2u

/* Conditions all of which a user must meet (only with mode "filtered").
 * user_name and external_id map to SCIM `eq` filters; the others are
 * applied by the worker. NULL / JP_ABSENT = no condition. */
typedef struct jp_recon_filter {
    const char *user_name;
    const char *external_id;
    const char *department;
    const char *organization_name;
    jp_presence_t active_state; /* JP_ABSENT or JP_VALUE */
    bool active;
    const char *group; /* member of this group name */
} jp_recon_filter_t;

typedef struct jp_recon_request {
    const char *recon_id;
    jp_recon_mode_t mode;
    unsigned resources; /* JP_RECON_ACCOUNTS | JP_RECON_ENTITLEMENTS, never 0 */
    bool has_filter;    /* true iff mode == JP_RECON_FILTERED */
    jp_recon_filter_t filter;
    /* The incremental scope: data.scope when given, otherwise derived as
     * the resources in canonical order joined by '+', followed, when there
     * is a filter, by '|' and the filter as compact JSON with sorted keys:
     *   accounts+entitlements
     *   accounts|{"department":"R&D"} */
    const char *scope;
    bool scope_derived; /* true when data.scope was absent */
} jp_recon_request_t;

/* ---- the event ---------------------------------------------------------- */

typedef struct jp_event {
    jp_event_type_t type;
    /* CloudEvents context attributes (required unless marked optional). */
    const char *id;
    const char *source;
    const char *subject;         /* also the Kafka key; see jp_event_key() */
    const char *time;            /* as sent (RFC 3339) */
    int64_t time_ms;             /* the same instant, Unix epoch milliseconds (UTC) */
    const char *datacontenttype; /* optional: NULL or "application/json" */
    const char *dataschema;      /* optional: NULL or an absolute URI */
    /* Extension attributes. */
    const char *site;          /* jirasite: the site name in the worker config */
    const char *actor;         /* idhubactor: who in IDHub requested it */
    const char *traceparent;   /* optional, W3C "00-<32hex>-<16hex>-<2hex>" */
    const char *correlationid; /* optional */
    /* Typed data; the member is chosen by `type` (JP_EVENT_IS_*). */
    union {
        jp_account_attrs_t account;
        jp_entitlement_t entitlement;
        jp_issue_t issue;
        jp_recon_request_t recon;
    };
    /* The whole event as received (owned; read-only), for re-encoding into
     * result, audit and dead-letter records. `data` is borrowed from it. */
    json_t *root;
    json_t *data;
    /* Private: storage behind labels, a derived scope and, once compacted,
     * every string. */
    const char **priv_labels;
    char *priv_scope;
    char *priv_strings;
} jp_event_t;

typedef struct jp_event_limits {
    size_t max_bytes; /* 0 = JP_EVENT_MAX_BYTES (1 MiB) */
} jp_event_limits_t;

/* Decodes and validates one event of `len` bytes (need not be NUL-terminated).
 * `limits` may be NULL (defaults). On success returns JP_OK and sets *out
 * (caller frees with jp_event_destroy()). On failure *out is NULL, errstr
 * holds one sentence "<field path>: <what was expected>", and the result is
 *   JP_ERR_TOO_LARGE  input above limits->max_bytes,
 *   JP_ERR_INVALID    anything else about the input,
 *   JP_ERR_NOMEM      allocation failure. */
jp_err_t jp_event_decode(const void *buf, size_t len, const jp_event_limits_t *limits,
                         jp_event_t **out, char *errstr, size_t errstr_size);

/* Same checks (without the size limit) on an already parsed JSON value, e.g.
 * one a producer built. Takes a new reference to `root` on success; the
 * caller keeps its own reference either way. */
jp_err_t jp_event_from_json(json_t *root, jp_event_t **out, char *errstr, size_t errstr_size);

/* Moves every string of the event into one block it owns and releases
 * `root` and `data` (both NULL afterwards): the typed fields stay the same,
 * for a fraction of the memory (the parsed tree is a few dozen allocations;
 * the worker holds thousands of events). JP_ERR_NOMEM leaves the event as it
 * was. Not for events whose root a caller still reads. */
jp_err_t jp_event_compact(jp_event_t *ev);

/* Accepts NULL. */
void jp_event_destroy(jp_event_t *ev);

/* The Kafka key: the subject. */
const char *jp_event_key(const jp_event_t *ev);

/* The login an account or entitlement event is about; NULL for other types. */
const char *jp_event_login(const jp_event_t *ev);

/* Validators shared with producers and the config loader; each returns true
 * when `s` (NUL-terminated) matches the contract's rule for that field. */
bool jp_event_valid_login(const char *s);       /* 1..256 bytes, see event.c */
bool jp_event_valid_site(const char *s);        /* [a-z0-9_-]{1,64} */
bool jp_event_valid_project_key(const char *s); /* ^[A-Z][A-Z0-9]{1,9}$ */
bool jp_event_valid_issue_key(const char *s);   /* ^[A-Z][A-Z0-9]{1,9}-[1-9][0-9]{0,17}$ */
bool jp_event_valid_ref(const char *s);         /* [A-Za-z0-9._:-]{1,128} */
bool jp_event_valid_traceparent(const char *s);

/* Parses an RFC 3339 date-time ("2026-01-31T12:00:00.5+01:00") into Unix
 * epoch milliseconds (fraction truncated to ms). Returns false if invalid. */
bool jp_event_parse_time(const char *s, int64_t *ms_out);

#endif
