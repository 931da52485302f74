/* recon: reconciliation runs. When Jira is the trusted source, IDHub sends a recon.request; the
 * worker reads what Jira holds (accounts through SCIM, entitlements through Jira REST), maps it to
 * IDHub's schema and publishes it on the reconciliation topic, one record per account or
 * entitlement, between a `started` and a `completed` record.
 *
 * Driven by the pipeline: a recon.request that reaches the apply stage is handed to
 * jp_recon_start() instead of jp_apply_start(), with the same callback shape; the callback comes
 * once the run has ended, so the request's offset is committed only after `completed` was
 * published. A run is one item in flight in the sequencer: it holds its own subject (the
 * reconId) and no other.
 *
 * Modes (data.mode)
 *   full         every account and entitlement; deletes for what the previous full or
 *                incremental run of the same scope published and Jira no longer holds.
 *   filtered     the accounts data.filter selects: userName or externalId become a SCIM `eq`
 *                filter (Atlassian's only user filters; userName wins when both are given),
 *                every condition (department, organizationName, active, group) is then
 *                evaluated by the worker on the mapped attributes. With entitlements, each
 *                entitlement lists only members among the selected accounts ("membership":
 *                "filtered"). No deletes, no fingerprints.
 *   incremental  only what changed since the last full or incremental run of the same scope:
 *                created and changed accounts and entitlements (by fingerprint), and deletes for
 *                what disappeared.
 *
 * Records (config/schemas/records/recon.schema.json; types JP_RECON_TYPE_*), CloudEvents like
 * the other records, the Kafka key also being the subject:
 *   started      key <site>/recon/<reconId>, id <site>:<reconId>:started, seq 0
 *   account      key <site>/account/<scimId>, id <site>:<reconId>:<seq>; operation upsert (the
 *                mapped attributes read from Jira, active, scimId, accountId, the reconciliation
 *                key {attribute, value}) or delete (the key and scimId)
 *   entitlement  key <site>/group/<groupId> or <site>/projectRole/<KEY>/<roleId> (+ "#<part>"
 *                from the second part on); displayName, description, type, entitlement (as in
 *                entitlement.grant), members; a membership longer than recon.members_per_record
 *                is split into parts (part, parts)
 *   completed    key as started, id <site>:<reconId>:completed, the counts (read, emitted,
 *                unchanged, removed, errors), startedAt, completedAt, durationMs and the
 *                watermark (the run's start: later changes are the next run's)
 * Sequence numbers are assigned in a fixed order (accounts by SCIM index, groups by Jira's
 * group order and member order, projects by key and roles by Jira's order), so a run resumed
 * from a checkpoint gives the records it repeats the same seq (and id) as before.
 *
 * Redis (P = redis.key_prefix, S = site; the site is a hash tag so that every key of a site's
 * runs lives in one cluster slot):
 *   P recon:{S}:run:<reconId>     string: the checkpoint (jp_recon_ckpt_encode), TTL
 *                                 worker.outcome_ttl_s, written after the deliveries it covers
 *   P recon:{S}:lease:<reconId>   "<token> <reconId>", PX recon.lease_s: the worker that runs it
 *                                 (a run is never run by two workers at once), renewed while the
 *                                 run lives
 *   P recon:{S}:fp:<scopehash>    hash: item field -> 8-byte fingerprint + identity (the last
 *                                 completed full/incremental run's view; jp_recon_fp_value)
 *   P recon:{S}:fpgen:<scopehash> integer: the baseline's generation, moved by each run that
 *                                 replaces the baseline
 *   P recon:{S}:seen:<reconId>    hash: the same for this run (becomes fp:<scopehash> at the end
 *                                 unless another run of the scope moved the baseline meanwhile)
 *   P recon:{S}:match:<reconId>   set: accountIds a filtered run selected (for memberships)
 *   P recon:{S}:done:<reconId>    string: how the run ended (JSON), TTL worker.outcome_ttl_s
 * <scopehash> is 32 hex digits of SHA-256 of the scope (jp_recon_scope_hash).
 *
 * The pure parts (definitions, checkpoints, filters, fingerprints, records) are exported below
 * for the tests; the engine is in worker/recon.c and worker/recon_phases.c.
 *
 * Threading: none; every function of the engine must be called on the loop's thread. The pure
 * functions touch only their arguments.
 *
 * Ownership: the engine borrows loop, http, redis, out, cfg and mapping (they must outlive it).
 * The event passed to jp_recon_start() is borrowed until the callback only; the run copies what
 * it keeps. The outcome handed to the callback belongs to the callee (jp_outcome_destroy). Every
 * json_t and string returned by the pure functions belongs to the caller. */
#ifndef JIRAPROV_RECON_H
#define JIRAPROV_RECON_H

#include "jiraprov/limiter.h"
#include "jiraprov/config.h"
#include "jiraprov/err.h"
#include "jiraprov/event.h"
#include "jiraprov/http.h"
#include "jiraprov/jira.h"
#include "jiraprov/kafka_out.h"
#include "jiraprov/mapping.h"
#include "jiraprov/outcome.h"
#include "jiraprov/redis.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define JP_RECON_TYPE_STARTED     "com.jiraprov.recon.started"
#define JP_RECON_TYPE_ACCOUNT     "com.jiraprov.recon.account"
#define JP_RECON_TYPE_ENTITLEMENT "com.jiraprov.recon.entitlement"
#define JP_RECON_TYPE_COMPLETED   "com.jiraprov.recon.completed"
#define JP_RECON_FP_BYTES         8  /* fingerprint bytes in a stored value */
#define JP_RECON_WINDOW_MAX       16 /* recon.page_concurrency's maximum */

/* ---- the engine --------------------------------------------------------------------------- */

typedef struct jp_recon jp_recon_t;

typedef struct jp_recon_opts {
    uv_loop_t *loop;             /* required */
    jp_http_t *http;             /* required, on `loop` */
    jp_redis_t *redis;           /* required */
    jp_kafka_out_t *out;         /* required: the pipeline's producer */
    const jp_config_t *cfg;      /* required: sites, topics.recon, recon.*, redis.key_prefix */
    const jp_mapping_t *mapping; /* required: account attributes */
    jp_limiter_t *limiter;       /* optional: the shared per-site budget (lane reconciliation);
                                  * NULL = each run paces itself to rate_limits.get_per_s */
} jp_recon_opts_t;

/* NULL with errstr when an option is missing, recon.key is not read from Jira, or ENOMEM.
 * Registers the module's Lua scripts with `redis`. */
jp_recon_t *jp_recon_new(const jp_recon_opts_t *opts, char *errstr, size_t errstr_size);

/* Accepts NULL. Every run still going is called back at once (before this returns) with RETRY
 * "cancelled"; what it still awaits (HTTP, Redis, deliveries) finishes without touching the
 * event or the callback again, and is freed when jp_http_destroy / jp_redis_destroy /
 * jp_kafka_out_destroy answer it. Closes timers: run the loop afterwards. */
void jp_recon_destroy(jp_recon_t *r);

/* outcome: owned by the callee. */
typedef void jp_recon_cb(jp_outcome_t *outcome, void *opaque);

/* Starts (or resumes) the run `ev` (a recon.request) asks for. Returns JP_OK and calls cb
 * exactly once, later, from the loop. Outcomes:
 *   SUCCEEDED   the run completed: `completed` was published (detail: the counts;
 *               jira.reconId);
 *   SKIPPED     the reconId already completed (an earlier request ran it): nothing published,
 *               detail says how it ended;
 *   RETRY       another worker holds the run (retry_after_ms: until its lease ends), a page
 *               kept failing, Redis or Kafka failed, or the run was suspended: the checkpoint
 *               is kept and the next start resumes from it;
 *   QUARANTINE  Jira answered 401/403;
 *   FAILED      Jira refused a read for good (400, an unexpected 404): the checkpoint is kept,
 *               so a later request with the same reconId continues the run.
 * Errors without a callback: JP_ERR_NOT_FOUND (ev->site is not configured), JP_ERR_INVALID
 * (not a recon.request, NULL arguments, destroyed), JP_ERR_NOMEM. */
jp_err_t jp_recon_start(jp_recon_t *r, const jp_event_t *ev, int attempt, jp_recon_cb *cb,
                        void *opaque, char *errstr, size_t errstr_size);

/* For a graceful stop: every run stops starting Jira calls, settles what is under way and ends
 * RETRY "suspended" (its lease given back, so the next owner resumes at once). A run already
 * completing (no Jira call left) is let finish, so that its `completed` is marked. */
void jp_recon_suspend(jp_recon_t *r);

/* Runs started and not yet called back. */
size_t jp_recon_in_flight(const jp_recon_t *r);

/* Counters for metrics; jp_recon_stats may be called from any thread (relaxed atomics). */
typedef struct jp_recon_stats {
    uint64_t running;   /* runs started and not yet called back */
    uint64_t started;   /* runs that took their lease and started or resumed */
    uint64_t completed; /* runs that published `completed` */
    uint64_t records;   /* account and entitlement records delivered */
    uint64_t calls;     /* Jira calls sent */
    uint64_t retries;   /* Jira calls repeated after a retriable failure */
} jp_recon_stats_t;

void jp_recon_stats(const jp_recon_t *r, jp_recon_stats_t *out);

/* ---- what a run is ------------------------------------------------------------------------ */

typedef struct jp_recon_def {
    char *recon_id;
    char *site;
    char *event_id;      /* the request that started the run */
    char *actor;         /* its idhubactor */
    char *traceparent;   /* NULL if none */
    char *correlationid; /* NULL if none */
    jp_recon_mode_t mode;
    unsigned resources; /* JP_RECON_ACCOUNTS | JP_RECON_ENTITLEMENTS */
    char *scope;
    json_t *filter;         /* data.filter (an object), NULL unless filtered */
    jp_recon_filter_t cond; /* the filter's conditions; strings point into `filter` */
} jp_recon_def_t;

/* A copy of what `ev` (a recon.request) asks for. JP_ERR_INVALID for another event type. */
jp_err_t jp_recon_def_from_event(const jp_event_t *ev, jp_recon_def_t *out, char *errstr,
                                 size_t errstr_size);
void jp_recon_def_clear(jp_recon_def_t *d);
/* Whether the run keeps fingerprints (full, incremental) and so reports removals. */
bool jp_recon_def_tracks(const jp_recon_def_t *d);

typedef enum jp_recon_phase {
    JP_RECON_PHASE_START = 0, /* publish `started` */
    JP_RECON_PHASE_ACCOUNTS,  /* SCIM users */
    JP_RECON_PHASE_GROUPS,    /* Jira groups and their members */
    JP_RECON_PHASE_ROLES,     /* project roles and their actors */
    JP_RECON_PHASE_REMOVALS,  /* what the previous run had and this one did not see */
    JP_RECON_PHASE_COMPLETING /* publish `completed`, then mark the run done */
} jp_recon_phase_t;

/* "start", "accounts", "groups", "roles", "removals", "completing"; NULL if out of range. */
const char *jp_recon_phase_name(jp_recon_phase_t p);
/* The phase after `p` for this run: accounts when accounts are asked for (or a filtered run
 * needs the selected accounts for memberships), groups and roles with entitlements, removals
 * when the run tracks fingerprints, then completing. */
jp_recon_phase_t jp_recon_next_phase(const jp_recon_def_t *d, jp_recon_phase_t p);

typedef struct jp_recon_counts {
    int64_t read;      /* accounts and entitlement parts read from Jira */
    int64_t emitted;   /* account and entitlement records published (upserts and deletes) */
    int64_t unchanged; /* incremental: read, same fingerprint as last run, not published */
    int64_t removed;   /* deletes published */
    int64_t errors;    /* items Jira returned that could not be mapped (skipped) */
} jp_recon_counts_t;

/* The checkpoint: where a run stands after the records it covers were delivered. The position
 * depends on the phase:
 *   accounts  page = next SCIM page index (page i starts at index 1 + 100 i)
 *   groups    page = group list page (50 a page), item = group in it, sub = next member page of
 *             that group (50 a page), part = next part number
 *   roles     page = project list page (50 a page), item = project in it, sub = next role
 *   removals  scan = the HSCAN cursor over the previous fingerprints
 * Moving to the next phase resets them (page 0, item 0, sub 0, part 1, scan "0"). */
typedef struct jp_recon_ckpt {
    jp_recon_def_t def;
    jp_recon_phase_t phase;
    int64_t page, item, sub, part;
    char scan[32];
    int64_t seq;  /* the next sequence number */
    int64_t base; /* the baseline generation the run diffs against (full, incremental) */
    jp_recon_counts_t counts;
    int64_t started_ms;
    int64_t completed_ms; /* completing: the run's end as `completed` reports it */
    int64_t duration_ms;  /* completing */
} jp_recon_ckpt_t;

/* A fresh checkpoint for `def` (taken over: *def is zeroed) in phase START, seq 1. */
void jp_recon_ckpt_init(jp_recon_ckpt_t *c, jp_recon_def_t *def, int64_t started_ms);
/* Moves to phase p with the position reset. */
void jp_recon_ckpt_phase(jp_recon_ckpt_t *c, jp_recon_phase_t p);
/* Compact JSON (malloc'd, NUL-terminated), NULL on ENOMEM. */
char *jp_recon_ckpt_encode(const jp_recon_ckpt_t *c);
/* JP_ERR_INVALID with errstr naming the field on a malformed value; *out is cleared first. */
jp_err_t jp_recon_ckpt_decode(const char *text, size_t len, jp_recon_ckpt_t *out, char *errstr,
                              size_t errstr_size);
void jp_recon_ckpt_clear(jp_recon_ckpt_t *c);

/* 32 lower-case hex digits (first half of SHA-256 of scope) and a NUL. */
void jp_recon_scope_hash(const char *scope, char out[33]);

/* ---- filters ---------------------------------------------------------------------------- */

/* The SCIM `eq` filter to page with: "userName" (when the filter has userName) or
 * "externalId", with *value set; NULL when neither is given (every user is read). */
const char *jp_recon_filter_scim(const jp_recon_filter_t *f, const char **value);

/* Whether a SCIM user meets every condition of f:
 *   userName     equal to the user's userName ignoring ASCII case (as Atlassian compares);
 *   externalId   equal, byte for byte;
 *   department, organizationName
 *                equal (byte for byte) to the value at the attribute's mapped SCIM path, whatever
 *                the mapping's direction; an unmapped attribute has no value, so never matches;
 *   active       the SCIM `active` (true when missing, as Atlassian always sends it);
 *   group        the user's SCIM `groups` list a display name equal to it ignoring ASCII case
 *                (directory groups; a site-local Jira group is not listed there).
 * A user that is not an object matches nothing. */
bool jp_recon_filter_match(const jp_recon_filter_t *f, const jp_mapping_t *m,
                           const json_t *scim_user);

/* ---- items and fingerprints ------------------------------------------------------------- */

typedef enum jp_recon_kind {
    JP_RECON_ITEM_ACCOUNT = 0,
    JP_RECON_ITEM_GROUP,
    JP_RECON_ITEM_ROLE
} jp_recon_kind_t;

/* One account or entitlement part as a record will carry it. */
typedef struct jp_recon_item {
    jp_recon_kind_t kind;
    char *field;     /* fingerprint field: "a:<scimId>", "g:<groupId>[#n]", "r:<KEY>:<roleId>[#n]"
                      * (the "#n" from part 2 on) */
    char *key;       /* Kafka key (and subject): see the header's "Records" */
    char *ident;     /* what a later delete names: the account's key value ("" if none), the
                      * group's or the role's name */
    uint64_t fp;     /* accounts: jp_mapping_fingerprint; entitlements: of the content */
    json_t *content; /* the record's data after reconId, seq, site, operation and change */
} jp_recon_item_t;

void jp_recon_item_clear(jp_recon_item_t *it);

/* An account from its SCIM resource: content {key: {attribute, value}, scimId, accountId,
 * active, attributes}. key_attr must be read by the mapping. JP_ERR_INVALID when the resource
 * is not an object or has no string id. */
jp_err_t jp_recon_account_item(const jp_mapping_t *m, jp_attr_t key_attr, const char *site,
                               const json_t *scim_user, jp_recon_item_t *out, char *errstr,
                               size_t errstr_size);

/* A Jira group's part (1-based of parts): content {type "group", entitlement {type, group},
 * displayName, description null, groupId, membership ("complete"|"filtered"), members (stolen:
 * an array from jp_recon_member_user), part, parts}. */
jp_err_t jp_recon_group_item(const char *site, const char *group_id, const char *name,
                             bool filtered, json_t *members, int64_t part, int64_t parts,
                             jp_recon_item_t *out, char *errstr, size_t errstr_size);

/* A project role's part: content {type "projectRole", entitlement {type, project, role},
 * displayName (the role's name), description, project, roleId, membership, members (stolen),
 * part, parts}. */
jp_err_t jp_recon_role_item(const char *site, const char *project, const jp_jira_role_t *role,
                            bool filtered, json_t *members, int64_t part, int64_t parts,
                            jp_recon_item_t *out, char *errstr, size_t errstr_size);

/* Member entries: {"type":"user","accountId","email"?,"displayName"?,"active"} from a Jira user
 * (email and displayName only when Jira shows them), {"type":"user","accountId"} from a role's
 * user actor, {"type":"group","groupId","group"?} from a role's group actor. NULL on ENOMEM. */
json_t *jp_recon_member_user(const jp_jira_user_t *u);
json_t *jp_recon_member_actor(const char *account_id);
json_t *jp_recon_member_group(const char *group_id, const char *name);

/* What a delete record says about an item a previous run stored under `field` with `value`
 * (jp_recon_fp_value): kind, field, key, ident and content ({key, scimId} for an account;
 * {type, entitlement, groupId | project+roleId, part} for an entitlement); fp is 0.
 * JP_ERR_INVALID for a field or value this module did not write. */
jp_err_t jp_recon_removed_item(jp_attr_t key_attr, const char *site, const char *field,
                               const char *value, size_t value_len, jp_recon_item_t *out,
                               char *errstr, size_t errstr_size);

/* The stored value for an item: JP_RECON_FP_BYTES of fp (big-endian) then ident's bytes.
 * Returns the length (no NUL is added), or 0 when out_size is too small. */
size_t jp_recon_fp_value(uint64_t fp, const char *ident, char *out, size_t out_size);
/* The fingerprint and identity of a stored value; false when it is shorter than
 * JP_RECON_FP_BYTES. *ident points into value. */
bool jp_recon_fp_parse(const char *value, size_t len, uint64_t *fp, const char **ident,
                       size_t *ident_len);

typedef enum jp_recon_change {
    JP_RECON_CREATED = 0, /* no previous value */
    JP_RECON_CHANGED,     /* another fingerprint */
    JP_RECON_UNCHANGED
} jp_recon_change_t;

/* "created", "changed", "unchanged". */
const char *jp_recon_change_name(jp_recon_change_t c);
/* The change from the previous stored value (NULL = none) to fingerprint fp. */
jp_recon_change_t jp_recon_diff(const char *prev, size_t prev_len, uint64_t fp);

/* ---- records ------------------------------------------------------------------------------ */

/* started: data {reconId, site, mode, resources, filter?, scope, requestId, seq 0, startedAt};
 * time = started_ms. */
json_t *jp_recon_record_started(const jp_recon_def_t *d, const char *instance_id,
                                int64_t started_ms);

/* An account or entitlement record: data {reconId, seq, site, operation ("upsert"|"delete"),
 * change (incremental and deletes: "created"|"changed"|"removed"; NULL = none), then the item's
 * content}. time = now_ms. The item is only read. */
json_t *jp_recon_record_item(const jp_recon_def_t *d, const char *instance_id,
                             const jp_recon_item_t *it, int64_t seq, const char *operation,
                             const char *change, int64_t now_ms);

/* completed: data {reconId, site, mode, scope, seq, counts, startedAt, completedAt, durationMs,
 * watermark}, all from c (phase COMPLETING), so that a republished `completed` is the same
 * record; time = c->completed_ms. */
json_t *jp_recon_record_completed(const jp_recon_ckpt_t *c, const char *instance_id);

/* The Kafka key of the started and completed records: "<site>/recon/<reconId>" (malloc'd). */
char *jp_recon_run_key(const jp_recon_def_t *d);

#endif
