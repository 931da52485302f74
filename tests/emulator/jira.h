/* jira.h - internal header of the Jira REST v3 part of the emulator.
 *
 * Layers, lowest first:
 *   jira_util.c   pointer vector, string buffer, time and base64url helpers
 *   jira_adf.c    Atlassian Document Format validation
 *   jira_model.c  projects, workflows, roles, issues and their indexes (jira_state_t)
 *   jira_jql.c    JQL parser, validation against the state, evaluation, ordering
 *   jira_*_api.c  HTTP handlers on top of emu.h
 *
 * Ownership: a jira_state_t owns every project, issue, role and index it
 * holds; jira_state_free releases all of it. Strings handed to setters are
 * copied. json_t values stored in an issue (description, property values) are
 * owned by the issue (one reference). */
#ifndef EMU_JIRA_H
#define EMU_JIRA_H

#include "emu.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* ---- containers (jira_util.c) ------------------------------------------ */

typedef struct jira_vec {
    void **v;
    size_t n, cap;
} jira_vec_t;

int jira_vec_push(jira_vec_t *vec, void *p);
/* Removes the first occurrence of p keeping order; returns 1 if removed. */
int jira_vec_remove(jira_vec_t *vec, const void *p);
int jira_vec_contains(const jira_vec_t *vec, const void *p);
void jira_vec_clear(jira_vec_t *vec);

/* Growable string buffer; always NUL-terminated once anything was added. */
typedef struct jira_buf {
    char *s;
    size_t n, cap;
} jira_buf_t;

int jira_buf_add(jira_buf_t *b, const char *s, size_t n);
int jira_buf_addf(jira_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void jira_buf_free(jira_buf_t *b);

char *jira_strdup(const char *s);
/* Strict decimal parse of a whole string into int64; 0 on success. */
int jira_parse_i64(const char *s, int64_t *out);
/* Jira timestamp "2024-01-02T03:04:05.678+0000" for a ms epoch. */
void jira_fmt_time(int64_t ms, char *out, size_t outsz);
/* base64url without padding; returns a malloc'd string. */
char *jira_b64url_encode(const unsigned char *in, size_t n);
/* Decodes into a malloc'd NUL-terminated buffer; NULL on bad input. */
char *jira_b64url_decode(const char *in, size_t *outlen);
uint64_t jira_hash64(const char *s, size_t n, uint64_t seed);

/* ---- ADF (jira_adf.c) ---------------------------------------------------- */

/* 1 if v is a valid Atlassian Document (type doc, version 1, content array
 * of known nodes). */
int jira_adf_valid(const json_t *v);

/* ---- model (jira_model.c) ------------------------------------------------ */

enum { JIRA_CAT_UNDEFINED = 1, JIRA_CAT_NEW = 2, JIRA_CAT_DONE = 3, JIRA_CAT_INPROGRESS = 4 };

typedef struct jira_status {
    char id[24];
    char *name;
    char *description;
    int category; /* JIRA_CAT_* */
} jira_status_t;

typedef struct jira_transition {
    char id[24];
    char *name;
    jira_vec_t from; /* jira_status_t *; empty = global (from any status) */
    jira_status_t *to;
} jira_transition_t;

typedef struct jira_workflow {
    char *name;
    jira_vec_t statuses;    /* jira_status_t * (owned) */
    jira_vec_t transitions; /* jira_transition_t * (owned) */
    jira_status_t *initial;
} jira_workflow_t;

typedef struct jira_itype {
    char id[24];
    char *name;
    char *description;
    int subtask;
} jira_itype_t;

typedef struct jira_role {
    int64_t id;
    char *name;
    char *description;
} jira_role_t;

enum { JIRA_ACTOR_USER = 1, JIRA_ACTOR_GROUP = 2 };

typedef struct jira_actor {
    int64_t id;
    int type;    /* JIRA_ACTOR_* */
    char *value; /* accountId or groupId */
} jira_actor_t;

/* Actors of one role in one project. */
typedef struct jira_role_actors {
    jira_role_t *role;
    jira_vec_t actors; /* jira_actor_t * (owned) */
} jira_role_actors_t;

typedef struct jira_project {
    char id[24];
    char key[24];
    char *name;
    char *description;
    char *lead; /* accountId or NULL */
    char *type_key;
    jira_vec_t itypes; /* jira_itype_t * (owned) */
    jira_workflow_t wf;
    jira_vec_t role_actors; /* jira_role_actors_t * (owned), one per global role */
    int64_t next_num;
    size_t issue_count;
} jira_project_t;

typedef struct jira_priority {
    char id[8];
    const char *name;
} jira_priority_t;

#define JIRA_NPRIORITIES 5
extern const jira_priority_t jira_priorities[JIRA_NPRIORITIES];

typedef struct jira_issue {
    int64_t id;
    char idstr[24];
    char key[48];
    int64_t num;
    jira_project_t *proj;
    jira_itype_t *itype;
    char *summary;
    json_t *description; /* ADF or NULL */
    jira_vec_t labels;   /* char * (owned), sorted, unique */
    int priority;        /* index in jira_priorities */
    char *assignee;      /* accountId or NULL */
    char *reporter;      /* accountId or NULL */
    struct jira_issue *parent;
    jira_vec_t subtasks; /* jira_issue_t * (not owned) */
    jira_status_t *status;
    int64_t created, updated, status_changed; /* ms epoch */
    json_t *props;                            /* object key -> value (owned) */
    unsigned mark;                            /* scratch for de-duplication */
} jira_issue_t;

typedef struct jira_state {
    emu_map_t *proj_by_key;  /* key -> jira_project_t * */
    emu_map_t *proj_by_id;   /* id -> jira_project_t * */
    jira_vec_t projects;     /* jira_project_t * (owned), in creation order */
    jira_vec_t roles;        /* jira_role_t * (owned) */
    emu_map_t *issue_by_id;  /* idstr -> jira_issue_t * */
    emu_map_t *issue_by_key; /* key (case-insensitive) -> jira_issue_t * */
    jira_vec_t issues;       /* jira_issue_t * (owned), in creation order */
    emu_map_t *postings;     /* index term -> jira_vec_t * of issues (owned) */
    int64_t next_issue_id;
    int64_t next_project_id;
    int64_t next_actor_id;
    int64_t last_time; /* strictly increasing timestamps */
    unsigned mark_gen;
} jira_state_t;

jira_state_t *jira_state_new(void);
void jira_state_free(jira_state_t *st);

/* Lookups. Project by key (exact) or numeric id; issue by id or key (key is
 * matched case-insensitively, as Jira does). */
jira_project_t *jira_project_find(jira_state_t *st, const char *id_or_key);
jira_issue_t *jira_issue_find(jira_state_t *st, const char *id_or_key);
jira_role_t *jira_role_find(jira_state_t *st, int64_t id);
/* Actors of role r in project p (created on first use; NULL on OOM). */
jira_role_actors_t *jira_project_role(jira_project_t *p, jira_role_t *r);
jira_itype_t *jira_itype_find(jira_project_t *p, const char *id_or_name);
jira_status_t *jira_status_find(jira_workflow_t *wf, const char *id_or_name);
/* Priority index by id or name (case-insensitive name); -1 if none. */
int jira_priority_find(const char *id_or_name);

/* Monotonic "now" for created/updated stamps. */
int64_t jira_state_stamp(jira_state_t *st);

/* Issue creation with already-validated parts. Takes ownership of desc. */
jira_issue_t *jira_issue_create(jira_state_t *st, jira_project_t *p, jira_itype_t *t,
                                const char *summary, json_t *desc, int priority,
                                const char *assignee, const char *reporter, jira_issue_t *parent);
/* Deletes the issue and (recursively) its subtasks. */
void jira_issue_delete(jira_state_t *st, jira_issue_t *is);
void jira_issue_set_summary(jira_issue_t *is, const char *s);
void jira_issue_set_description(jira_issue_t *is, json_t *desc); /* takes ownership */
void jira_issue_set_assignee(jira_issue_t *is, const char *account_id);
/* Label set operations keep the label index in step. */
int jira_issue_label_add(jira_state_t *st, jira_issue_t *is, const char *label);
int jira_issue_label_remove(jira_state_t *st, jira_issue_t *is, const char *label);
void jira_issue_labels_clear(jira_state_t *st, jira_issue_t *is);
/* Property set (takes ownership of value) / delete, indexing scalar leaves. */
int jira_issue_prop_set(jira_state_t *st, jira_issue_t *is, const char *key, json_t *value);
int jira_issue_prop_del(jira_state_t *st, jira_issue_t *is, const char *key);
void jira_issue_touch(jira_state_t *st, jira_issue_t *is);

/* Index terms. */
const jira_vec_t *jira_index_label(jira_state_t *st, const char *label);
const jira_vec_t *jira_index_prop(jira_state_t *st, const char *key, const char *path,
                                  const char *value);
/* Canonical text of a scalar JSON value for property matching; NULL if not
 * scalar. Writes into buf. */
const char *jira_scalar_text(const json_t *v, char *buf, size_t bufsz);
/* Value at a dotted path inside a JSON value ("" = the value itself). */
const json_t *jira_json_path(const json_t *v, const char *path);

/* Transitions available from the issue's status (vector of jira_transition_t *). */
void jira_transitions_available(jira_issue_t *is, jira_vec_t *out);
int jira_transition_available(const jira_issue_t *is, const jira_transition_t *t);
jira_transition_t *jira_transition_find(jira_workflow_t *wf, const char *id);

/* Identity-store hooks used while seeding (any may be NULL: then every user
 * is accepted and group references are kept as given). */
typedef struct jira_ident_env {
    int (*user_exists)(void *ctx, const char *account_id);
    /* groupId for a group id or name, NULL if unknown. */
    const char *(*group_id)(void *ctx, const char *id_or_name);
    void *ctx;
} jira_ident_env_t;

/* Seeds the standard roles and the DEMO and OPS projects. */
void jira_state_seed_demo(jira_state_t *st);
/* Seeds from {"roles":[…],"projects":[…],"issues":[…]} (format in
 * jira_model.c); roles first, then projects, then issues. Returns 0, or -1
 * with err filled (the state may then hold the part seeded before the error). */
int jira_state_seed_json(jira_state_t *st, const json_t *seed, const jira_ident_env_t *env,
                         char *err, size_t errsz);
/* One project definition in the seed format. */
int jira_project_add_json(jira_state_t *st, const json_t *def, const jira_ident_env_t *env,
                          char *err, size_t errsz);
/* Adds or renames a site-wide project role; returns it or NULL (OOM). */
jira_role_t *jira_role_add(jira_state_t *st, int64_t id, const char *name, const char *description);
/* Whole state in the seed format (plus ids, keys and timestamps). */
json_t *jira_state_dump(jira_state_t *st);
const char *jira_cat_key(int cat);
const char *jira_cat_name(int cat);
const char *jira_cat_color(int cat);
/* Adds an actor unless present; returns the actor, or NULL (exists / OOM). */
jira_actor_t *jira_actor_add(jira_state_t *st, jira_role_actors_t *ra, int type, const char *value);
jira_actor_t *jira_actor_find(jira_role_actors_t *ra, int type, const char *value);
void jira_actor_remove(jira_role_actors_t *ra, jira_actor_t *a);

/* ---- JQL (jira_jql.c) ---------------------------------------------------- */

typedef struct jira_jql jira_jql_t;

/* Resolver hooks for values that live outside the Jira state. */
typedef struct jira_jql_env {
    jira_state_t *st;
    /* 1 if the account exists (for assignee/reporter values). */
    int (*user_exists)(void *ctx, const char *account_id);
    void *ctx;
    const char *current_user; /* accountId of the caller or NULL */
} jira_jql_env_t;

/* Parses and validates. Returns NULL and fills err (a Jira-style message)
 * on a syntax or validation error. *unbounded is set when the query has no
 * search restriction (it is still returned so callers can decide). */
jira_jql_t *jira_jql_compile(const char *text, const jira_jql_env_t *env, int *unbounded, char *err,
                             size_t errsz);
void jira_jql_free(jira_jql_t *q);
/* Runs the query: fills out with matching issues in result order. */
int jira_jql_run(jira_jql_t *q, jira_state_t *st, jira_vec_t *out);
/* A stable fingerprint of the query (for page tokens). */
uint64_t jira_jql_fingerprint(const jira_jql_t *q);

/* ---- HTTP layer helpers (jira_api.c) --------------------------------------------- */

#define JIRA_API             "/rest/api/3"
#define JIRA_NOT_FOUND_ISSUE "Issue does not exist or you do not have permission to see it."

jira_state_t *jira_st(emu_t *emu);
/* Identity env for JQL/seeding backed by the shared store. */
void jira_jql_env_init(emu_t *emu, const emu_req_t *req, jira_jql_env_t *env);
/* accountId of the Basic-auth caller, or NULL. */
const char *jira_caller(emu_t *emu, const emu_req_t *req);
/* 1 unless DELETE /user removed the account from Jira's user base (and no
 * product access was granted since). */
int jira_user_visible(const emu_user_t *u);
emu_user_t *jira_user_get(emu_t *emu, const char *account_id); /* visible only */

/* JSON shapes. */
/* mode: JIRA_USER_DETAILS (UserDetails: lists of group members),
 * JIRA_USER_PLAIN (User without groups), JIRA_USER_FULL (User with group and
 * application-role counts), JIRA_USER_EXPANDED (with their items). */
enum { JIRA_USER_DETAILS = -2, JIRA_USER_PLAIN = -1, JIRA_USER_FULL = 0, JIRA_USER_EXPANDED = 1 };
json_t *jira_user_json(emu_t *emu, const emu_user_t *u, int mode);
json_t *jira_user_ref(emu_t *emu, const char *account_id); /* user JSON or null */
json_t *jira_group_name_json(emu_t *emu, const emu_group_t *g);
json_t *jira_group_json(emu_t *emu, const emu_group_t *g);
json_t *jira_status_json(emu_t *emu, const jira_status_t *s);
json_t *jira_itype_json(emu_t *emu, const jira_itype_t *t);
json_t *jira_priority_json(emu_t *emu, int prio);
json_t *jira_project_ref_json(emu_t *emu, const jira_project_t *p);
json_t *jira_transition_json(emu_t *emu, const jira_issue_t *is, const jira_transition_t *t);
void jira_avatars(emu_t *emu, json_t *o, const char *kind, const char *id);

/* Field selection for issue beans. */
enum {
    JIRA_F_SUMMARY = 1u << 0,
    JIRA_F_DESCRIPTION = 1u << 1,
    JIRA_F_LABELS = 1u << 2,
    JIRA_F_STATUS = 1u << 3,
    JIRA_F_PRIORITY = 1u << 4,
    JIRA_F_ASSIGNEE = 1u << 5,
    JIRA_F_REPORTER = 1u << 6,
    JIRA_F_CREATOR = 1u << 7,
    JIRA_F_ISSUETYPE = 1u << 8,
    JIRA_F_PROJECT = 1u << 9,
    JIRA_F_CREATED = 1u << 10,
    JIRA_F_UPDATED = 1u << 11,
    JIRA_F_PARENT = 1u << 12,
    JIRA_F_SUBTASKS = 1u << 13,
    JIRA_F_STATUSCATCHANGE = 1u << 14,
    JIRA_F_RESOLUTION = 1u << 15,
    JIRA_F_RESOLUTIONDATE = 1u << 16,
    JIRA_F_ALL = (1u << 17) - 1
};

typedef struct jira_fieldsel {
    unsigned mask;
    int id_only; /* only "id" was asked for: the bean is {"id":…} */
} jira_fieldsel_t;

/* Parses comma lists ("*all", "*navigable", names, "-name"); n strings. */
void jira_fieldsel_parse(jira_fieldsel_t *sel, const char *const *lists, size_t n,
                         const char *dflt);
/* Issue bean; props: NULL, or property keys to include (n of them; "*all"). */
json_t *jira_issue_json(emu_t *emu, jira_issue_t *is, const jira_fieldsel_t *sel,
                        const char *const *props, size_t nprops);

/* Route registration per family. */
void jira_register_issue_routes(emu_t *emu);
void jira_register_search_routes(emu_t *emu);
void jira_register_user_routes(emu_t *emu);
void jira_register_project_routes(emu_t *emu);
/* Removes a user from every role of every project (Jira user removal). */
void jira_roles_drop_user(emu_t *emu, const char *account_id);
/* Splits a comma list into at most max trimmed tokens inside buf. */
size_t jira_split_list(char *buf, const char **out, size_t max);

#endif
