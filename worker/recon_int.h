/* Internals shared by recon.c (the engine: runs, Redis state, the one call function, the page
 * window, batches and publishing) and recon_phases.c (what each phase reads and emits). Not a
 * public API; names carry the jp_recon__ prefix.
 *
 * A run is a state machine on the loop. Its live position is run->ck (the checkpoint of the
 * unit to process next, with the next sequence number and the counts). Each unit processed
 * (a SCIM page, an entitlement part, a role, a removal scan) opens a batch: the records it
 * publishes and the Redis writes it makes count as pending in the batch, and closing the batch
 * snapshots run->ck. Batches complete in order; when the oldest one has nothing pending its
 * snapshot is written to Redis as the checkpoint (only while the run still holds its lease).
 * So a checkpoint never covers a record whose delivery was not confirmed.
 *
 * Every asynchronous request (HTTP, Redis, Kafka delivery) holds a reference on the run; a run
 * that is ending (or orphaned by jp_recon_destroy) is freed when the last one comes back. */
#ifndef JIRAPROV_RECON_INT_H
#define JIRAPROV_RECON_INT_H

#include "jiraprov/recon.h"

#include <stdbool.h>
#include <stdint.h>

#define JP_RECON__SCIM_PAGE    100 /* users per SCIM page (Atlassian's maximum) */
#define JP_RECON__REST_PAGE    50  /* groups, members, projects per REST page */
#define JP_RECON__OPEN_BATCHES 32  /* unconfirmed batches before the run waits for Kafka */

typedef struct jp_recon_run jp_recon_run_t;
typedef struct jp_recon_call jp_recon_call_t;
typedef struct jp_recon_batch jp_recon_batch_t;

/* Handles the final answer to a call: a 2xx, or a failure that retrying did not cure (or that
 * retrying cannot cure). */
typedef void jp_recon__step_t(jp_recon_run_t *run, jp_recon_call_t *c, const jp_http_resp_t *resp);
/* Continues the run after an asynchronous step. */
typedef void jp_recon__cont_t(jp_recon_run_t *run);

struct jp_recon {
    uv_loop_t *loop;
    jp_http_t *http;
    jp_redis_t *redis;
    jp_kafka_out_t *out;
    const jp_config_t *cfg;
    const jp_mapping_t *mapping;
    jp_limiter_t *limiter; /* NULL: runs pace themselves */
    jp_attr_t key_attr;
    char token[160]; /* lease owner: instance id and a per-process random part */
    jp_redis_script_t *s_lease, *s_ckpt, *s_removed, *s_finish, *s_release;
    jp_recon_run_t *runs;
    _Atomic size_t in_flight;
    struct {
        _Atomic uint64_t started, completed, records, calls, retries;
    } st; /* read by jp_recon_stats from any thread */
    bool destroying;
};

struct jp_recon_call {
    jp_recon_run_t *run;
    jp_jira_req_t *req;
    jp_recon__step_t *step;
    int64_t index;           /* the caller's tag (a page index) */
    int tries;               /* retries made */
    bool paced;              /* its sending time was reserved (call_admit) */
    bool probe;              /* the shared budget let it through as a probe of a quarantined API */
    jp_limiter_wait_t *wait; /* waiting for a token of the shared budget */
    int64_t due_ms;
    jp_recon_call_t *next; /* waiting list */
};

enum { JP_RECON__SLOT_FREE = 0, JP_RECON__SLOT_FETCHING, JP_RECON__SLOT_READY };

typedef struct jp_recon_slot {
    int state;
    int64_t index;
    long status;
    char *body;
    size_t len;
} jp_recon_slot_t;

/* Builds the request of unit `index`. */
typedef jp_err_t jp_recon__build_t(jp_recon_run_t *run, int64_t index, jp_jira_req_t **req,
                                   char *errstr, size_t errstr_size);
/* Processes unit `index` (its final status and body); ends with jp_recon__win_next() once the
 * unit is handled (possibly later), or with the run failing. */
typedef void jp_recon__process_t(jp_recon_run_t *run, int64_t index, long status, const char *body,
                                 size_t len);

/* Pages fetched ahead (up to `width` in flight) and processed strictly in index order. */
typedef struct jp_recon_win {
    jp_recon_slot_t slot[JP_RECON_WINDOW_MAX];
    int width;
    int64_t next_fetch, next_proc;
    int64_t limit; /* units that exist (exclusive bound); -1 until a page tells */
    int fetching;
    bool busy;    /* a unit is being processed */
    bool active;  /* the window runs (between win_start and its done callback) */
    bool pumping; /* reentrancy guard of win_pump */
    bool again;
    jp_recon__build_t *build;
    jp_recon__process_t *process;
    jp_recon__cont_t *done;
} jp_recon_win_t;

struct jp_recon_batch {
    jp_recon_batch_t *next;
    jp_recon_run_t *run;
    int pending; /* deliveries and Redis writes outstanding, plus one while open */
    bool failed;
    bool closed;
    bool completed_record; /* carries `completed`: delivered means finish the run */
    jp_recon_ckpt_t snap;  /* run->ck when closed (def left empty) */
};

struct jp_recon_run {
    jp_recon_t *r; /* NULL once orphaned by jp_recon_destroy */
    jp_recon_run_t *prev, *next;
    jp_recon_cb *cb;
    void *opaque;
    const jp_site_t *site;
    int attempt;
    jp_outcome_t *out;
    uint64_t started_ns;
    int refs;
    bool ending;
    bool resumed;
    jp_recon_ckpt_t ck;

    /* Redis keys. */
    char *k_run, *k_done, *k_seen, *k_match, *k_lease, *k_fp, *k_gen;
    char *lease_value;
    bool lease_held;

    /* Calls. */
    uv_timer_t *timer;
    jp_recon_call_t *waiting;
    int64_t next_send_us; /* pacing: monotonic us at which the next call may go */
    int64_t lease_due_ms; /* next lease renewal */
    bool renewing;
    bool kicked; /* the first step ran */

    /* Batches, oldest first. */
    jp_recon_batch_t *bhead, *btail;
    int open_batches;
    bool ckpt_writing;
    jp_recon__cont_t *kick; /* what to resume when batches drain */

    /* Phases. */
    jp_recon_win_t win;
    jp_jira_groups_t *groups;
    jp_jira_projects_t *projects;
    jp_jira_roles_t *roles;
    json_t *members;       /* the entitlement part being collected */
    int64_t total;         /* members of the current group */
    int64_t parts;         /* parts of the current entitlement */
    bool group_gone;       /* the group answered 404: skip it */
    bool part_last;        /* the part being emitted is the group's last */
    jp_jira_role_t *role;  /* the role being emitted */
    jp_recon_batch_t *cur; /* the batch of the unit being processed */
};

/* ---- engine (recon.c) ------------------------------------------------------------------- */

int64_t jp_recon__wall_ms(void);

/* Every Jira call of a run starts here (req stolen; build errors are passed in as err/errstr
 * and fail the run). Each send, the first and every retry, is then admitted by call_admit()
 * in recon.c: the one place for the shared rate limiter's acquire; on_http() is the one place
 * every answer arrives (for its observe). */
void jp_recon__call(jp_recon_run_t *run, jp_err_t err, jp_jira_req_t *req, const char *errstr,
                    jp_recon__step_t *step, int64_t index);
/* true for a 2xx answer to c; otherwise fails the run with the classified failure. */
bool jp_recon__ok(jp_recon_run_t *run, const jp_recon_call_t *c, const jp_http_resp_t *resp);
/* Fails the run on a stored non-2xx page answer (status and body). */
void jp_recon__fail_status(jp_recon_run_t *run, jp_jira_api_t api, long status, const char *body,
                           size_t len);
/* Ends the run with this outcome (the first ending wins); message formatted. */
void jp_recon__fail(jp_recon_run_t *run, jp_outcome_status_t status, jp_class_t cls,
                    const char *reason, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* A 2xx body that did not parse: RETRY "bad_response". */
void jp_recon__fail_parse(jp_recon_run_t *run, jp_err_t err, const char *errstr);
/* true when the run stopped (ending or orphaned): callers return at once. */
bool jp_recon__stopped(const jp_recon_run_t *run);

/* The window: starts at unit `first`, with `limit` units (-1 until a page tells); done is
 * called once every unit below the limit was processed and nothing is in flight. */
void jp_recon__win_start(jp_recon_run_t *run, jp_recon__build_t *build,
                         jp_recon__process_t *process, jp_recon__cont_t *done, int64_t first,
                         int64_t limit);
void jp_recon__win_limit(jp_recon_run_t *run, int64_t limit);
void jp_recon__win_next(jp_recon_run_t *run);

/* Batches. open: a new batch at the tail (pending 1). close: snapshot run->ck into it, drop the
 * hold. The checkpoints follow by themselves. */
jp_recon_batch_t *jp_recon__batch_open(jp_recon_run_t *run);
void jp_recon__batch_close(jp_recon_run_t *run, jp_recon_batch_t *b);
/* Runs `cont` once fewer than JP_RECON__OPEN_BATCHES batches are unconfirmed (at once when
 * that is already so); with all = true, once every batch is confirmed and checkpointed. */
void jp_recon__when_drained(jp_recon_run_t *run, bool all, jp_recon__cont_t *cont);

/* Publishes one record (stolen) keyed `key` in batch b. */
void jp_recon__publish(jp_recon_run_t *run, jp_recon_batch_t *b, json_t *record, const char *key);

/* Emits items (taken over, freed here) into batch b: with fingerprints (full, incremental) the
 * previous values are read first, unchanged items are skipped in incremental mode, every item
 * is recorded as seen, and the `keep` fields (items Jira returned but that could not be
 * mapped) keep their previous value; then each emitted item gets the next seq. cont follows.
 * The phase closes b itself. */
void jp_recon__emit(jp_recon_run_t *run, jp_recon_batch_t *b, jp_recon_item_t *items, size_t n,
                    char **keep, size_t nkeep, jp_recon__cont_t *cont);

/* Redis: SADD the run's match set (ids taken over) in batch b. */
void jp_recon__match_add(jp_recon_run_t *run, jp_recon_batch_t *b, char **ids, size_t n);
/* Redis: which of `ids` are in the match set; cb gets a bool per id (NULL on failure: the run
 * has failed). */
typedef void jp_recon__member_cb(jp_recon_run_t *run, const bool *in, void *opaque);
void jp_recon__match_check(jp_recon_run_t *run, const char *const *ids, size_t n,
                           jp_recon__member_cb *cb, void *opaque);
/* Redis: one removal scan from cursor run->ck.scan; cb gets the next cursor and the field/value
 * pairs (borrowed from the reply, valid during cb). */
typedef void jp_recon__scan_cb(jp_recon_run_t *run, const char *next, const redisReply *pairs);
void jp_recon__scan(jp_recon_run_t *run, jp_recon__scan_cb *cb);

/* The current phase is over: move to the next one (in the checkpoint too) and start it. */
void jp_recon__phase_done(jp_recon_run_t *run);

/* ---- phases (recon_phases.c) -------------------------------------------------------------- */

void jp_recon__accounts_begin(jp_recon_run_t *run);
void jp_recon__groups_begin(jp_recon_run_t *run);
void jp_recon__roles_begin(jp_recon_run_t *run);
void jp_recon__removals_begin(jp_recon_run_t *run);

#endif
