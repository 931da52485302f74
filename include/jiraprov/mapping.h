/* IDHub account attributes <-> SCIM User attributes (Atlassian user provisioning).
 *
 * A jp_mapping_t is the compiled form of the config's `mapping` table: each
 * SCIM path is parsed once by jp_mapping_new() and checked against the SCIM
 * User schema Atlassian serves (RFC 7643 core User plus Atlassian's top-level
 * `department` and `organization`, the enterprise extension, and the
 * read-only atlassian-external extension). The functions below are pure: they
 * read jansson values and build new ones, with no I/O and no shared state.
 *
 * Paths understood (attribute and sub-attribute names are matched without
 * regard to case, as RFC 7643 §2.1 says, and written back in canonical case):
 *
 *   displayName                          a simple attribute
 *   name.givenName                       a sub-attribute of a complex one
 *   emails[primary].value                the entry marked primary of a multi-valued
 *   emails[primary eq true].value          attribute (the two forms are the same), or
 *                                          the first entry when none is marked
 *   phoneNumbers[type eq "work"].value   the first entry of that type (type is
 *                                          compared without regard to ASCII case)
 *   urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department
 *                                        an extension attribute (2.0 and 2.1 of the
 *                                          enterprise schema are read as aliases)
 *
 * Refused, with one sentence naming the entry: unknown attributes and
 * schemas, other filters, a multi-valued attribute without a filter or
 * without a sub-attribute, a complex attribute without a sub-attribute, more
 * than one sub-attribute level, `active` (it follows the event's own
 * `active`), `password`, read-only attributes (`id`, `meta`, `groups`, the
 * atlassian-external extension) with a direction other than from_jira, two
 * writing entries with the same path, and, on one multi-valued attribute,
 * writing entries that mix the primary filter with type filters (both could
 * select the same entry).
 *
 * Directions: to_jira and both entries are written (create body, patch);
 * from_jira and both entries are read (reconciliation record, fingerprint).
 *
 * Value rules, used everywhere a value is compared or hashed:
 *  - A SCIM attribute that is missing, JSON null or "" has no value, and so
 *    does a desired JP_VALUE of "": SCIM servers drop empty strings, so
 *    telling them apart would report changes that can never converge.
 *  - Strings compare byte for byte, except `login` and `email`, which compare
 *    without regard to ASCII case because Atlassian treats user names and
 *    email addresses that way (a case-only difference is not a change).
 *  - A number or boolean found at a mapped path reads as its JSON text
 *    ("42", "true"); an object or array there reads as no value.
 *
 * Ownership: jp_mapping_new() returns a mapping freed with
 * jp_mapping_destroy(). It copies what it needs from the entries, is never
 * modified afterwards except by jp_mapping_swap(), and may be shared
 * read-only between threads. On SIGHUP the worker compiles the new table
 * and swaps it into the mapping every module holds (jp_mapping_swap), on
 * the loop thread, between events' steps. Every json_t returned
 * through an out parameter is a new reference owned by the caller. Input
 * json_t values are only read. */
#ifndef JIRAPROV_MAPPING_H
#define JIRAPROV_MAPPING_H

#include "jiraprov/config.h"
#include "jiraprov/err.h"
#include "jiraprov/event.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JP_SCIM_SCHEMA_USER       "urn:ietf:params:scim:schemas:core:2.0:User"
#define JP_SCIM_SCHEMA_ENTERPRISE "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
#define JP_SCIM_SCHEMA_ATLASSIAN  "urn:scim:schemas:extension:atlassian-external:1.0"
#define JP_SCIM_SCHEMA_PATCHOP    "urn:ietf:params:scim:api:messages:2.0:PatchOp"

typedef struct jp_mapping jp_mapping_t;

/* What a patch changes: the IDHub attributes (in jp_attr_t order) and
 * whether `active` changes. For audit records, which list names, never
 * values. */
typedef struct jp_mapping_changes {
    size_t count;   /* n_attrs + (active ? 1 : 0) */
    size_t n_attrs; /* entries used in attrs */
    jp_attr_t attrs[JP_ATTR__COUNT];
    bool active;
} jp_mapping_changes_t;

/* Compiles `n` config entries (n may be 0). Each entry's idhub name must be
 * one of the known attributes (jp_attr_parse) and appear once. Returns NULL
 * with errstr set, e.g.
 *   mapping[1] (email): "emails[": unterminated filter, expected ']'
 * or on allocation failure ("out of memory"). */
jp_mapping_t *jp_mapping_new(const jp_config_mapping_t *entries, size_t n, char *errstr,
                             size_t errstr_size);

/* Accepts NULL. */
void jp_mapping_destroy(jp_mapping_t *m);

/* Exchanges the compiled tables of a and b: whoever holds `a` uses b's
 * table from its next call on (and `b` now holds the old one, to destroy).
 * Strings returned earlier (jp_mapping_scim_path) follow their table. Not
 * while another thread reads either mapping. NULL: nothing happens. */
void jp_mapping_swap(jp_mapping_t *a, jp_mapping_t *b);

/* The canonical SCIM path `attr` maps to ("name.givenName",
 * "emails[type eq \"work\"].value"), or NULL if unmapped. Lives as long as m. */
const char *jp_mapping_scim_path(const jp_mapping_t *m, jp_attr_t attr);

/* Whether `attr` is mapped and written to Jira (to_jira, both) / read from
 * Jira (from_jira, both). False for unmapped or out-of-range attributes. */
bool jp_mapping_writes(const jp_mapping_t *m, jp_attr_t attr);
bool jp_mapping_reads(const jp_mapping_t *m, jp_attr_t attr);

/* The value of `attr`'s SCIM path in `scim_user`, whatever the direction
 * (e.g. for reconciliation filters). NULL when unmapped or without a value.
 * The result points into scim_user, into buf for a number (buf_size >= 32
 * is enough for any; a smaller buf gives NULL), or to a static "true" or
 * "false"; it lives as long as the first two. */
const char *jp_mapping_scim_value(const jp_mapping_t *m, jp_attr_t attr, const json_t *scim_user,
                                  char *buf, size_t buf_size);

/* Whether two values of `attr` are the same by the value rules above
 * (NULL and "" are no value). */
bool jp_mapping_values_equal(jp_attr_t attr, const char *a, const char *b);

/* The body of SCIM POST /Users for a new account:
 *   {"schemas":[core User, plus the enterprise URN only when the body holds an
 *    enterprise attribute], <each written attribute with a JP_VALUE>,
 *    "active": a->active}
 * Values are copied as given. A multi-valued entry gets the sub-attribute
 * plus what its filter selects on: [primary] adds "type":"work" and
 * "primary":true (Atlassian wants one primary work email), [type eq "x"]
 * adds "type":"x". If `emails` ends up with no primary entry, the first one
 * is marked primary. Nothing is derived (no name.formatted from the parts).
 * Fails with JP_ERR_INVALID when the body would lack `userName` or `emails`,
 * both required by Atlassian, and JP_ERR_NOMEM. */
jp_err_t jp_mapping_scim_user_for_create(const jp_mapping_t *m, const jp_account_attrs_t *a,
                                         json_t **out, char *errstr, size_t errstr_size);

/* The body of SCIM PATCH /Users/{id} that moves `current` (the user as Jira
 * returned it) to `desired`:
 *   {"schemas":[PatchOp URN],"Operations":[...]}
 * holding only written attributes whose desired state is not JP_ABSENT and
 * differs from the current value, read through the same path:
 *   - simple and complex paths: {"op":"replace","path":p,"value":v}, or
 *     {"op":"remove","path":p} when the desired state is "no value" and the
 *     current has one;
 *   - multi-valued paths: one {"op":"replace","path":"emails","value":[...]}
 *     per attribute, carrying the current array with the selected entry's
 *     sub-attribute replaced (other entries, and other keys of that entry, are
 *     kept; an unmarked first entry chosen by [primary] is marked primary; the
 *     entry is appended, as for create, when none is selected).
 *     Clearing the `value` sub-attribute drops the entry; clearing another
 *     one drops that key. An array left empty becomes {"op":"remove",...}.
 *     Whole-array replace is used because Atlassian documents plain dotted
 *     paths only, not filtered patch paths;
 *   - `active`, last, when desired->active_state is JP_VALUE and differs.
 * Operations follow jp_attr_t order (a multi-valued attribute at its first
 * changed entry). When nothing differs *out is NULL ("already applied").
 * `changes` (may be NULL) receives what changed. Errors: JP_ERR_INVALID when
 * `current` is not a JSON object, JP_ERR_NOMEM. */
jp_err_t jp_mapping_scim_patch(const jp_mapping_t *m, const jp_account_attrs_t *desired,
                               const json_t *current, json_t **out, jp_mapping_changes_t *changes,
                               char *errstr, size_t errstr_size);

/* The changed names as a JSON array, IDHub names in jp_attr_t order and
 * "active" last: ["department","nickName","active"]. NULL on NOMEM. */
json_t *jp_mapping_changes_names(const jp_mapping_changes_t *changes);

/* The IDHub view of one SCIM user, for reconciliation records:
 *   {"attributes":{"login":"jdoe@example.com","email":"...",...},
 *    "active":true,"scimId":"ef5f...","accountId":"5b10..."}
 * `attributes` holds every read (from_jira, both) attribute that has a value,
 * in jp_attr_t order, as found (no case folding); attributes without a value
 * are left out. `scimId` is the SCIM `id`; `active` is the SCIM boolean or
 * null when missing; `accountId` is atlassianAccountId from the
 * atlassian-external extension (1.0, or 1.1) or null. Errors: JP_ERR_INVALID
 * when scim_user is not an object or has no string `id`, JP_ERR_NOMEM. */
jp_err_t jp_mapping_idhub_from_scim(const jp_mapping_t *m, const json_t *scim_user, json_t **out,
                                    char *errstr, size_t errstr_size);

/* A 64-bit FNV-1a hash of the read attributes' values (by the value rules:
 * no value hashes alike however it is spelled, login and email are ASCII
 * case-folded) and `active`, in jp_attr_t order, so it does not depend on the
 * JSON key order or on the mapping's entry order. Incremental reconciliation
 * stores it per user to see what changed. Not a cryptographic hash. A
 * scim_user that is not an object hashes like an empty user. */
uint64_t jp_mapping_fingerprint(const jp_mapping_t *m, const json_t *scim_user);

#endif
