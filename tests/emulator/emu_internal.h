/* Internals of the emulator framework shared by server.c, store.c, limits.c,
 * faults.c, control.c, scim.c, admin.c and main.c. Not for the Jira module:
 * it only uses emu.h. */
#ifndef JIRAPROV_EMU_INTERNAL_H
#define JIRAPROV_EMU_INTERNAL_H

#include "emu.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>

#define EMU_MAX_PARAMS  8
#define EMU_MAX_SEGS    32
#define EMU_MAX_STATUS  24
#define EMU_MAX_BODY    (16u * 1024u * 1024u)
#define EMU_MAX_HEADERS 16

typedef enum emu_family {
    EMU_FAM_CONTROL = 0,
    EMU_FAM_JIRA,
    EMU_FAM_SCIM,
    EMU_FAM_ADMIN
} emu_family_t;

typedef struct emu_config {
    char *listen_host;
    int port;
    char *jira_email;
    char *jira_token;
    char *scim_key;
    char *org_key;
    char *directory_id;
    char *org_id;
    char *record_path;
    char *seed_file;
    char *rate_limits; /* "off", "default" or a JSON file path */
    bool seed_demo;
    uint64_t seed_rng;
} emu_config_t;

typedef struct emu_status_count {
    unsigned status;
    uint64_t n;
} emu_status_count_t;

struct emu_bucket;

typedef struct emu_routedef {
    const char *method;
    const char *pattern;
    emu_handler_fn fn;
    emu_route_opts opts;
    emu_family_t family;
    char *segs_buf;
    const char *segs[EMU_MAX_SEGS]; /* literal text, or NULL for a {param} */
    const char *pnames[EMU_MAX_SEGS];
    size_t nsegs;
    size_t nliteral;
    /* Cached burst bucket, valid while bucket_gen matches the limits'. */
    struct emu_bucket *bucket;
    uint64_t bucket_gen;
    emu_status_count_t st[EMU_MAX_STATUS];
    size_t nst;
    /* Size of this route's last encoded body plus one: the first allocation
     * for the next one. Read and written without the lock (atomically). */
    size_t body_hint;
} emu_routedef_t;

typedef enum emu_stage {
    EMU_STAGE_NEW = 0,
    EMU_STAGE_DELAYED, /* response built, waiting for the timer */
    EMU_STAGE_HANG,    /* no response; close when resumed */
    EMU_STAGE_DONE
} emu_stage_t;

typedef struct emu_hdr {
    char *name;
    char *value;
} emu_hdr_t;

struct emu_resp {
    unsigned status;
    char *body; /* owned, may be NULL */
    size_t len;
    /* A JSON body not yet encoded (owned): emu_resp_json() keeps the tree
     * here when `defer` allows it and the tree shares no node with anything
     * else, and the framework encodes and frees it after dropping the global
     * lock. */
    json_t *json;
    bool defer;
    const char *ctype; /* static string, or points into hdrs */
    emu_hdr_t hdrs[EMU_MAX_HEADERS];
    size_t nhdrs;
    bool set;
};

/* Slow-body fault: dribble `chunk` bytes every `tick_ms`. */
typedef struct emu_fault_plan {
    int64_t delay_ms;   /* added latency before the response */
    int action;         /* EMU_FAULT_ACT_* */
    unsigned status;    /* for ERROR / RATE_LIMIT */
    long retry_after;   /* seconds, < 0 none */
    const char *reason; /* RateLimit-Reason for RATE_LIMIT */
    int64_t hang_ms;    /* for HANG */
    size_t slow_chunk;  /* > 0: slow body */
    int64_t slow_tick_ms;
} emu_fault_plan_t;

enum {
    EMU_FAULT_ACT_NONE = 0,
    EMU_FAULT_ACT_ERROR,
    EMU_FAULT_ACT_RATE_LIMIT,
    EMU_FAULT_ACT_RESET,
    EMU_FAULT_ACT_HANG
};

struct emu_req {
    emu_t *emu;
    struct MHD_Connection *conn;
    const char *method;
    const char *url;
    emu_routedef_t *route;
    char *pathbuf; /* split copy of the path for params */
    const char *pnames[EMU_MAX_PARAMS];
    const char *pvalues[EMU_MAX_PARAMS];
    size_t nparams;
    char *body;
    size_t body_len, body_cap;
    bool body_too_large;
    json_t *json;
    bool json_done;
    char json_err[320];
    emu_stage_t stage;
    struct MHD_Response *pending; /* built response waiting for the timer */
    emu_resp_t resp;
};

/* Identity store. */
typedef struct emu_store {
    emu_user_t **users;
    size_t nusers, users_cap;
    emu_user_t **scim_users;
    size_t nscim, scim_cap;
    emu_map_t *by_id, *by_account, *by_user_name, *by_email;
    emu_group_t **groups;
    size_t ngroups, groups_cap;
    emu_map_t *g_by_id, *g_by_group_id, *g_by_name;
} emu_store_t;

typedef struct emu_limits emu_limits_t;
typedef struct emu_faults emu_faults_t;
typedef struct emu_timer emu_timer_t;

/* Outcome of the rate-limit check for one request. */
typedef struct emu_limit_result {
    bool limited;
    const char *reason;
    long retry_after; /* seconds, >= 1 when limited */
    long limit;       /* for X-RateLimit-Limit, < 0: no header */
    long remaining;
    int64_t reset_ms; /* when limited */
    bool near_limit;
} emu_limit_result_t;

struct emu {
    pthread_mutex_t lock;
    emu_config_t cfg;
    char base_url[128];
    char *jira_basic; /* expected base64(email:token) */
    struct MHD_Daemon *mhd;
    emu_routedef_t **routes;
    size_t nroutes, routes_cap;
    emu_map_t *unmatched; /* "METHOD" -> emu_routedef_t* pseudo routes */
    emu_store_t store;
    uint64_t rng;
    emu_map_t *seqs;
    json_t *mutations;       /* {entity:{key:{kind:n}}} */
    json_t *mutation_totals; /* {entity:{kind:n}} */
    uint64_t total_requests;
    uint64_t limited_total;
    json_t *limited_by_reason;
    json_t *fault_counts;
    emu_limits_t *limits;
    json_t *startup_limits; /* configuration restored by reset (NULL: defaults) */
    emu_faults_t *faults;
    emu_timer_t *timer;
    FILE *record;
    void *jira_state;
    emu_issue_canon_fn issue_canon;
};

/* server.c */
emu_t *emu_new(const emu_config_t *cfg, char *err, size_t errsz);
int emu_start(emu_t *emu, char *err, size_t errsz);
void emu_destroy(emu_t *emu);
void emu_lock(emu_t *emu);
void emu_unlock(emu_t *emu);
emu_family_t emu_family_of(emu_auth_t auth);
/* JSON body helpers for the family-specific error shapes. */
void emu_resp_family_error(emu_resp_t *resp, emu_family_t fam, unsigned status,
                           const char *message);
void emu_resp_auth_error(emu_t *emu, emu_resp_t *resp, emu_family_t fam, unsigned status);
void emu_counters_reset(emu_t *emu);
json_t *emu_counters_dump(emu_t *emu);
void emu_count_request(emu_t *emu, emu_routedef_t *rd, const char *method, unsigned status);
void emu_seqs_clear(emu_t *emu);

/* emu_json.c */
/* Encodes v like json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) into a
 * malloc'd NUL-terminated buffer (hint: expected size, 0 if unknown) and sets
 * *len. NULL when out of memory or when v holds something it does not encode
 * exactly like jansson (invalid UTF-8, very deep nesting). */
char *emu_json_encode(const json_t *v, size_t hint, size_t *len);
/* True when no node of v is referenced from anywhere but v itself (every
 * reference count is 1, apart from the immortal true/false/null), so nothing
 * else can change or free any part of it. */
bool emu_json_exclusive(const json_t *v);
/* Installs a per-thread cache of small blocks as jansson's allocator (a
 * no-op in sanitizer builds). Blocks stay ordinary malloc blocks. */
void emu_json_alloc_init(void);

/* map.c */
/* (public API in emu.h) */

/* store.c */
void emu_store_init(emu_t *emu);
void emu_store_reset(emu_t *emu);
void emu_store_free(emu_t *emu);
json_t *emu_store_dump(emu_t *emu);
/* Applies users, groups and bulk_users keys of a seed document. */
int emu_store_seed(emu_t *emu, json_t *seed, char *err, size_t errsz);
void emu_store_seed_demo(emu_t *emu);
/* Emails array for output (new reference). */
json_t *emu_user_emails(const emu_user_t *u);

/* limits.c */
emu_limits_t *emu_limits_new(void);
void emu_limits_destroy(emu_limits_t *l);
/* Replaces the configuration; NULL restores the defaults. */
int emu_limits_configure(emu_limits_t *l, json_t *cfg, char *err, size_t errsz);
void emu_limits_set_enabled(emu_limits_t *l, bool on);
json_t *emu_limits_dump(emu_limits_t *l);
void emu_limits_reset_state(emu_limits_t *l);
void emu_limits_check(emu_t *emu, emu_req_t *req, emu_limit_result_t *out);
/* "2024-01-31T12:34Z" (rounded up to the minute). */
void emu_limits_reset_time(int64_t ms, char *buf, size_t n);

/* faults.c */
emu_faults_t *emu_faults_new(void);
void emu_faults_destroy(emu_faults_t *f);
int emu_faults_configure(emu_t *emu, json_t *cfg, char *err, size_t errsz);
void emu_faults_clear(emu_faults_t *f);
json_t *emu_faults_dump(emu_faults_t *f);
void emu_faults_plan(emu_t *emu, const char *method, const char *path, emu_fault_plan_t *plan);

/* timer.c */
emu_timer_t *emu_timer_new(void);
/* Stops the thread after resuming every parked connection. */
void emu_timer_shutdown(emu_timer_t *t);
void emu_timer_destroy(emu_timer_t *t);
/* Suspends conn and resumes it at due_ms. Returns false (and does not
 * suspend) when shutting down. */
bool emu_timer_park(emu_timer_t *t, struct MHD_Connection *conn, int64_t due_ms);
int64_t emu_mono_ms(void);

/* scim.c, admin.c, control.c */
void emu_scim_register(emu_t *emu);
void emu_admin_register(emu_t *emu);
void emu_control_register(emu_t *emu);
/* Loads a seed file (control-API seed format). */
int emu_control_seed_file(emu_t *emu, const char *path, char *err, size_t errsz);
int emu_control_apply_seed(emu_t *emu, json_t *seed, char *err, size_t errsz);

#endif
