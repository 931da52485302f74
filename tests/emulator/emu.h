/* jiraprov-jira-emulator: framework and shared state.
 *
 * The emulator is one process serving four API families on one port:
 *   - Jira REST v3 under /rest/api/3/...            (jira_*.c, Basic email:token)
 *   - SCIM 2.0 under /scim/directory/{directoryId}/ (scim.c, Bearer directory key)
 *   - admin lifecycle under /users/{accountId}/...  (admin.c, Bearer org key)
 *   - control API under /__emulator/                (control.c, no auth)
 *
 * Threading: libmicrohttpd runs a small internal thread pool. Exactly one global
 * mutex protects ALL emulator state (store, Jira state, counters, limits, faults).
 * The framework takes it before it runs auth/limits/faults and the handler, and
 * drops it afterwards; handlers therefore never lock anything themselves, must be
 * short and must never block. Delays (latency faults, slow bodies) are done by
 * suspending the connection and resuming it from a timer thread, never by
 * sleeping under the lock. Response bodies that share nothing with the state
 * are encoded, and their JSON trees freed, after the lock is dropped
 * (emu_resp_json).
 *
 * Ownership:
 *   - emu_t owns everything; emu_req_t / emu_resp_t live for one exchange and
 *     are owned by the framework. Strings returned by emu_req_* are borrowed and
 *     valid until the handler returns.
 *   - json_t bodies passed to emu_resp_json() are stolen (the framework decrefs);
 *     the handler must not touch them afterwards, not even through a borrowed
 *     pointer.
 *   - emu_user_t structs are owned by the store and are never freed before
 *     emu_store_reset() / process exit, so a user pointer stays valid across
 *     requests (a SCIM DELETE only drops the SCIM record; the account stays).
 *   - emu_group_t structs are freed by emu_group_delete(); keep group ids
 *     (strings), not pointers, in module state that outlives one request.
 *   - Module-private Jira state is owned by the Jira module: it is created in
 *     emu_jira_register(), emptied by emu_jira_reset() and freed by
 *     emu_jira_free(); it is reached through emu_jira_state()/emu_set_jira_state().
 */
#ifndef JIRAPROV_EMU_H
#define JIRAPROV_EMU_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EMU_VERSION "0.1.0"

typedef struct emu emu_t;
typedef struct emu_req emu_req_t;
typedef struct emu_resp emu_resp_t;
typedef struct emu_user emu_user_t;
typedef struct emu_group emu_group_t;

/* ------------------------------------------------------------------------ */
/* Routing                                                                   */

/* Which credentials a route demands, which also decides the error-body
 * family (auth failures, 429s, injected 5xx faults) for that route. */
typedef enum emu_auth {
    EMU_AUTH_NONE = 0, /* control API: no auth, no limits, no faults */
    EMU_AUTH_JIRA,     /* Basic base64(email:token); errors as ErrorCollection */
    EMU_AUTH_SCIM,     /* Bearer <directory key>; errors as ScimError / Failure */
    EMU_AUTH_ADMIN     /* Bearer <org key>; errors as {"key":...} / {"code","message"} */
} emu_auth_t;

typedef struct emu_route_opts {
    emu_auth_t auth;
    /* Burst bucket name; one bucket per (limit_class, method). NULL: the route
     * pattern itself, which is what Jira Cloud does (per endpoint × method). */
    const char *limit_class;
    /* Path parameter naming the issue for the per-issue write limit (20/2 s,
     * 100/30 s); only applied to POST/PUT/DELETE. NULL: no per-issue limit. */
    const char *issue_param;
    /* Steady burst rate in requests/s overriding the method default (e.g. 150
     * for GET issue); 0 means the default for the method. */
    double burst_rate;
    /* Cost against the hourly points quota; 0 means 1. */
    int points;
} emu_route_opts;

typedef void (*emu_handler_fn)(emu_t *emu, emu_req_t *req, emu_resp_t *resp);

/* Registers a route. pattern: literal segments and `{name}` segments, each
 * matching exactly one non-empty path segment ("/rest/api/3/issue/{issueIdOrKey}").
 * When several patterns match, the one with the most literal segments wins.
 * A path that matches a pattern only under another method gets 405.
 * opts may be NULL (EMU_AUTH_NONE, default limits). method and pattern must be
 * string literals or otherwise outlive the emulator (they are not copied). */
void emu_route(emu_t *emu, const char *method, const char *pattern, emu_handler_fn fn,
               const emu_route_opts *opts);

/* ------------------------------------------------------------------------ */
/* Request (all strings borrowed, valid while the handler runs)              */

const char *emu_req_method(const emu_req_t *req); /* "GET", "POST", ... */
const char *emu_req_path(const emu_req_t *req);   /* percent-decoded, no query */
const char *emu_req_route(const emu_req_t *req);  /* matched pattern */
/* First value of a query parameter (decoded, '+' is a space), or NULL. */
const char *emu_req_query(const emu_req_t *req, const char *name);
/* All values of a repeated query parameter (groupId=a&groupId=b). Returns the
 * count and fills up to max pointers into out. */
size_t emu_req_query_all(const emu_req_t *req, const char *name, const char **out, size_t max);
/* Request header (case-insensitive name), or NULL. */
const char *emu_req_header(const emu_req_t *req, const char *name);
/* Value of a `{name}` segment of the matched pattern, or NULL. */
const char *emu_req_param(const emu_req_t *req, const char *name);
/* Raw body and its length; always NUL-terminated ("" when there is none). */
const char *emu_req_body(const emu_req_t *req, size_t *len);
/* Body parsed as JSON, once, lazily. Returns a borrowed reference, or NULL
 * with a one-sentence reason in err ("request body is empty", or the parse
 * error with its position). */
json_t *emu_req_json(emu_req_t *req, char *err, size_t errsz);
/* Parsed integer query parameter with a default and bounds check; returns
 * false (and leaves *out) if present but not an integer. */
bool emu_req_query_int(const emu_req_t *req, const char *name, long long dflt, long long *out);
/* Query parameter as boolean ("true"/"false"), dflt when absent. */
bool emu_req_query_bool(const emu_req_t *req, const char *name, bool dflt);

/* ------------------------------------------------------------------------ */
/* Response                                                                  */

/* JSON body with Content-Type application/json (application/scim+json on
 * SCIM routes). body is stolen; NULL gives an empty body.
 *
 * The rule for speed: build the body from fresh nodes. When no node of the
 * tree is referenced from anywhere else (every reference count is 1, which
 * the framework checks), the tree is encoded after the global lock is
 * dropped, so other requests run meanwhile. A tree that shares a node with
 * the state (json_object_set / json_incref / "O" in json_pack of a value the
 * store or a module keeps) is encoded at once, under the lock, because the
 * state could change while it is read; it is still correct, only slower on a
 * hot path. Copy such values with emu_json_copy() instead of sharing them.
 * An unshared tree is also freed after the lock is dropped; a shared one is
 * freed under it, like everything else that touches the state. */
void emu_resp_json(emu_resp_t *resp, unsigned status, json_t *body);
/* Deep copy of v for a response tree (NULL for NULL): what json_deep_copy
 * gives, several times faster (no loop check, no second UTF-8 check of text
 * jansson already checked). */
json_t *emu_json_copy(const json_t *v);
/* No body (204, or 200 with an empty body as Jira's DELETE /group does). */
void emu_resp_empty(emu_resp_t *resp, unsigned status);
/* Arbitrary body; text is copied. */
void emu_resp_text(emu_resp_t *resp, unsigned status, const char *content_type, const char *text);
/* Sets a response header (copied; a second call with the same name replaces
 * the value). Setting Content-Type overrides the default. */
void emu_resp_header(emu_resp_t *resp, const char *name, const char *value);
/* {"errorMessages":[msg],"errors":{field:field_msg}}; msg and field may be NULL
 * (then the array / object is empty). */
void emu_resp_jira_error(emu_resp_t *resp, unsigned status, const char *msg, const char *field,
                         const char *field_msg);
/* {"schemas":[Error URN],"status":"<status>","scimType":..,"detail":..};
 * scim_type may be NULL (omitted). */
void emu_resp_scim_error(emu_resp_t *resp, unsigned status, const char *scim_type,
                         const char *detail);
unsigned emu_resp_status(const emu_resp_t *resp);

/* ------------------------------------------------------------------------ */
/* Emulator-wide helpers (call with the lock held, i.e. from handlers/hooks) */

/* "http://127.0.0.1:PORT", for self/location links. */
const char *emu_base_url(const emu_t *emu);
const char *emu_directory_id(const emu_t *emu);
const char *emu_org_id(const emu_t *emu);
/* Wall clock in milliseconds since the epoch. */
int64_t emu_now_ms(void);
/* "2024-01-31T12:34:56.789Z" into buf (>= 32 bytes). */
void emu_iso8601(int64_t ms, char *buf, size_t n);
/* "2024-01-31T12:34:56.789" (UTC) followed by suffix ("Z", "+0000") into buf,
 * truncated like snprintf; returns the untruncated length. */
size_t emu_fmt_utc(int64_t ms, const char *suffix, char *buf, size_t n);
/* Deterministic (given --seed-rng) random numbers and ids. */
uint64_t emu_rand_u64(emu_t *emu);
double emu_rand_unit(emu_t *emu); /* [0, 1) */
/* Lower-case RFC 4122 v4 uuid, buf >= 37 bytes. */
void emu_uuid(emu_t *emu, char *buf);
/* Next integer id from a named sequence ("issue", "project", "role-actor"...),
 * starting at start for a new name; sequences are cleared by reset. */
long long emu_next_id(emu_t *emu, const char *seq, long long start);

/* Counts an API-driven change for /__emulator/counters:
 * entity "user"|"group"|"membership"|"issue"|"role"|..., key the entity's
 * identifier, kind "create"|"update"|"delete"|"add"|"remove"|"transition"|...
 * Keys are shared by SCIM and Jira so both sides count one entity together:
 * user -> accountId; group -> Jira groupId; membership -> "<groupId>:<accountId>";
 * issue -> issue key; role -> "<projectKey>:<roleId>:<actor>". */
void emu_count_mutation(emu_t *emu, const char *entity, const char *key, const char *kind);
/* emu_count_mutation for a membership of u in g, keyed "<groupId>:<accountId>". */
void emu_count_membership(emu_t *emu, const emu_group_t *g, const emu_user_t *u, const char *kind);

/* Module-private Jira state hook. */
void *emu_jira_state(emu_t *emu);
void emu_set_jira_state(emu_t *emu, void *state);

/* Optional: maps an issue id-or-key to one canonical string so that the
 * per-issue write limit counts "10001" and "ABC-1" together. fn writes into
 * buf and returns true, or returns false (then the raw value is used). */
typedef bool (*emu_issue_canon_fn)(emu_t *emu, const char *id_or_key, char *buf, size_t n);
void emu_set_issue_canon(emu_t *emu, emu_issue_canon_fn fn);

/* ------------------------------------------------------------------------ */
/* String-keyed hash map (open addressing), also for module use.             */

typedef struct emu_map emu_map_t;
/* nocase: keys compared ASCII-case-insensitively. Keys are copied. */
emu_map_t *emu_map_new(bool nocase);
void emu_map_destroy(emu_map_t *m); /* values are not freed */
void *emu_map_get(const emu_map_t *m, const char *key);
/* Inserts or replaces; returns the previous value (or NULL). */
void *emu_map_put(emu_map_t *m, const char *key, void *value);
/* Removes; returns the removed value (or NULL). */
void *emu_map_del(emu_map_t *m, const char *key);
size_t emu_map_count(const emu_map_t *m);
void emu_map_clear(emu_map_t *m);
/* Iteration in table order: start with *pos = 0; returns false at the end. */
bool emu_map_next(const emu_map_t *m, size_t *pos, const char **key, void **value);

/* ------------------------------------------------------------------------ */
/* Shared identity store: one identity per person. A SCIM user and the Jira
 * user with the same accountId are the same emu_user_t.                     */

#define EMU_USER_SCIM 0x1u /* has a record in the SCIM directory */
#define EMU_USER_JIRA 0x2u /* is in the Jira site's user base (product access) */

struct emu_user {
    char id[40];         /* SCIM id (uuid), empty if never in SCIM */
    char account_id[64]; /* Atlassian accountId */
    char *user_name;     /* SCIM userName (unique, case-insensitive) */
    char *email;         /* primary email (lookup key, case-insensitive) */
    char *external_id;   /* client-owned, case-sensitive, not unique */
    char *display_name;
    char *nick_name;
    char *title;
    char *department;
    char *organization;
    char *timezone;
    char *preferred_language;
    char *locale; /* Jira locale, e.g. "en_US" */
    char *given_name;
    char *family_name;
    char *middle_name;
    char *honorific_prefix;
    char *honorific_suffix;
    char *formatted_name;
    char *account_type;    /* "atlassian" (default) | "app" | "customer" */
    json_t *emails;        /* SCIM emails array as last set (owned); NULL means
                              [{"value":email,"type":"work","primary":true}] */
    json_t *phone_numbers; /* SCIM phoneNumbers array (owned), may be NULL */
    json_t *jira_ext;      /* free slot for the Jira module (owned by store:
                              decref'd when the user is dropped), may be NULL */
    bool active;           /* account active: SCIM active == Jira active */
    unsigned flags;        /* EMU_USER_* */
    int64_t created_ms;
    int64_t modified_ms;
    emu_group_t **groups; /* groups this user is a member of (borrowed) */
    size_t ngroups, groups_cap;
    size_t index;      /* position in emu_user_at() order */
    size_t scim_index; /* internal: position in the SCIM list */
};

struct emu_group {
    char id[40];       /* SCIM group id (uuid), empty if not in SCIM */
    char group_id[40]; /* Jira groupId (uuid) */
    char *name;        /* displayName / Jira group name (unique, nocase) */
    char *external_id;
    bool in_scim; /* synced from the SCIM directory */
    int64_t created_ms;
    int64_t modified_ms;
    emu_user_t **members; /* in insertion order (borrowed) */
    size_t nmembers, members_cap;
    size_t index; /* internal: position in emu_group_at() order */
};

/* Creates an account. user_name may be NULL (a Jira-only account uses the
 * email); email may be NULL. account_id NULL: a new "712020:<uuid>" id.
 * flags: EMU_USER_SCIM assigns a SCIM id and lists the user in SCIM.
 * Fails (NULL, reason in err) on a duplicate userName, email or accountId. */
emu_user_t *emu_user_new(emu_t *emu, const char *user_name, const char *email,
                         const char *account_id, unsigned flags, char *err, size_t errsz);
emu_user_t *emu_user_by_id(emu_t *emu, const char *scim_id); /* SCIM records only */
emu_user_t *emu_user_by_account_id(emu_t *emu, const char *account_id);
emu_user_t *emu_user_by_user_name(emu_t *emu, const char *user_name);
emu_user_t *emu_user_by_email(emu_t *emu, const char *email);
/* All accounts, in creation order, including inactive and SCIM-deleted ones. */
size_t emu_user_count(emu_t *emu);
emu_user_t *emu_user_at(emu_t *emu, size_t i);
/* Users with a SCIM record, in creation order. */
size_t emu_scim_user_count(emu_t *emu);
emu_user_t *emu_scim_user_at(emu_t *emu, size_t i);
/* Indexed setters (keep lookups consistent). Return false with err on a
 * uniqueness clash; value NULL clears. */
bool emu_user_set_user_name(emu_t *emu, emu_user_t *u, const char *v, char *err, size_t errsz);
bool emu_user_set_email(emu_t *emu, emu_user_t *u, const char *v, char *err, size_t errsz);
/* Plain string field setter: frees the old value, copies v (NULL clears). */
void emu_str_set(char **field, const char *v);
void emu_user_set_active(emu_t *emu, emu_user_t *u, bool active);
/* Gives the account a SCIM record (new SCIM id) or drops it: dropping also
 * removes every group membership and deactivates the account (notes §1.6). */
void emu_user_scim_link(emu_t *emu, emu_user_t *u);
void emu_user_scim_unlink(emu_t *emu, emu_user_t *u);
/* Sets modified_ms to now. */
void emu_user_touch(emu_user_t *u);

/* flags: in_scim true assigns a SCIM id. Fails on a duplicate name. */
emu_group_t *emu_group_new(emu_t *emu, const char *name, bool in_scim, char *err, size_t errsz);
emu_group_t *emu_group_by_id(emu_t *emu, const char *scim_id); /* SCIM groups only */
emu_group_t *emu_group_by_group_id(emu_t *emu, const char *group_id);
emu_group_t *emu_group_by_name(emu_t *emu, const char *name);
size_t emu_group_count(emu_t *emu); /* all groups, creation order */
emu_group_t *emu_group_at(emu_t *emu, size_t i);
/* Removes every membership and frees the group. */
void emu_group_delete(emu_t *emu, emu_group_t *g);
void emu_group_touch(emu_group_t *g);

/* Memberships. add returns false if already a member; remove returns false
 * if not a member. Both touch the group's modified time when they change it. */
bool emu_member_add(emu_t *emu, emu_group_t *g, emu_user_t *u);
bool emu_member_remove(emu_t *emu, emu_group_t *g, emu_user_t *u);
bool emu_member_has(const emu_group_t *g, const emu_user_t *u);

/* ------------------------------------------------------------------------ */
/* Hooks implemented by the Jira REST module (jira_*.c). The framework has weak
 * fallbacks, so the emulator also links without that module.               */

/* Registers the /rest/api/3 routes and creates the module state. */
void emu_jira_register(emu_t *emu);
/* Empties the module state (projects, issues, roles...); called by
 * POST /__emulator/reset after the store was cleared. */
void emu_jira_reset(emu_t *emu);
/* Applies the Jira keys of a seed document (projects, roles, workflows, ...).
 * Users and groups are already seeded when it runs. Returns 0, or -1 with a
 * sentence in err (the control API answers 400 with it). */
int emu_jira_seed(emu_t *emu, json_t *seed, char *err, size_t errsz);
/* Seeds the demo projects/workflows/roles (for --seed-demo), after the demo
 * users and groups exist. */
void emu_jira_seed_demo(emu_t *emu);
/* New reference to a JSON object merged into GET /__emulator/state under "jira". */
json_t *emu_jira_dump(emu_t *emu);
/* Frees the module state at exit. */
void emu_jira_free(emu_t *emu);

#endif
