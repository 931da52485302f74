/* The sequencer: which consumed event may start now, and which offset of each
 * partition may be committed.
 *
 * A pure, single-threaded data structure; the worker's loop drives it and does
 * all I/O. It keeps three promises:
 *
 *   order      events with the same subject (the Kafka key) start strictly in
 *              the order they were added, one at a time; different subjects run
 *              in parallel, also within one partition.
 *   offsets    the commit offset of a partition never passes an event that is
 *              not done: it is the lowest unfinished offset, or the last added
 *              offset + 1 when everything added is done (Kafka's "next offset
 *              to read"). Offsets need not be contiguous (compaction,
 *              transaction markers).
 *   bounds     at most max_in_flight items are started and not yet done or
 *              parked; when max_buffered items are held, jp_seq_want_pause()
 *              says "pause consumption" until fewer than resume_below are held
 *              (hysteresis). Nothing is ever dropped because of the bound: the
 *              bound is on what the worker fetches, not on what it may add.
 *
 * Life of an item:
 *
 *   add ─> waiting ─(head of its subject)─> ready ─next_ready─> in flight ─done─> gone
 *                                             ^                     │ park
 *                                             └─(until_ms)─ parked <┘
 *
 * A subject is the key bytes alone: the same key seen in two partitions is one
 * subject (ordered by add order).
 *
 * A retriably failed item is parked at the head of its subject: the subject's
 * later items wait behind it, every other subject keeps flowing, and the
 * partition's commit offset stays at or below it.
 *
 * Keyless items (key NULL or keylen 0) have no subject: each is independent
 * and ready as soon as it is added. The worker adds malformed events this way:
 * it takes them from next_ready, publishes them to the dead-letter topic and
 * calls done, so the offset moves on without waiting for anyone.
 *
 * Rebalance, in two steps so the worker can finish what is running:
 *   jp_seq_revoke_start()   drops the partition's items that have not started
 *                           (handed back to the caller) and stops accepting new
 *                           ones; in-flight items keep counting: done moves the
 *                           commit offset on.
 *   jp_seq_revoke_finish()  gives the final commit offset and forgets the
 *                           partition. Items still in flight become orphans:
 *                           they keep their subject busy (a re-assigned copy of
 *                           the same event waits for them) and count as in
 *                           flight until the caller calls done or park on them,
 *                           which only releases them.
 * Calling finish without start does both at once (e.g. for lost partitions).
 * After finish the partition may be added again from any offset.
 *
 * Ownership: items are opaque caller pointers; the sequencer never frees or
 * dereferences them. An item pointer may be held only once at a time. Items
 * are handed back through jp_seq_item_cb (revoke, destroy); callbacks must not
 * call into the sequencer. Keys are copied.
 *
 * Complexity: add, next_ready, done, commit_offset O(1) (amortized, hashed
 * subject lookup); park and each wake-up O(log parked); revoke O(items of the
 * partition + log parked each).
 *
 * Times are caller-supplied monotonic milliseconds. Not thread-safe: one
 * sequencer per event loop. */
#ifndef JIRAPROV_SEQUENCER_H
#define JIRAPROV_SEQUENCER_H

#include "jiraprov/err.h"

#include <stddef.h>
#include <stdint.h>

typedef struct jp_seq jp_seq_t;

/* Partitions are Kafka partition ids of the one events topic. */
#define JP_SEQ_MAX_PARTITIONS (1 << 20)
#define JP_SEQ_MAX_IN_FLIGHT  (1 << 20)

typedef struct jp_seq_opts {
    size_t max_buffered;  /* pause at this many held items; 0 = 10000 */
    size_t resume_below;  /* resume when fewer are held; 0 = max_buffered / 2 (at least 1) */
    size_t max_in_flight; /* started and not done/parked; 0 = 1000 */
} jp_seq_opts_t;

/* Why an item is handed back through a callback. */
typedef enum jp_seq_handback {
    JP_SEQ_DROPPED = 0, /* never started: the caller owns it again (free it); no done/park */
    JP_SEQ_RUNNING,     /* in flight, partition being revoked: finish it and call done */
    JP_SEQ_ORPHANED     /* in flight, partition forgotten: done/park only release it */
} jp_seq_handback_t;

typedef void jp_seq_item_cb(void *item, jp_seq_handback_t how, void *opaque);

typedef struct jp_seq_stats {
    size_t buffered;   /* everything held, orphans included (what the pause bound counts) */
    size_t ready;      /* may start now (parked items whose time came count once woken) */
    size_t in_flight;  /* started, not done or parked; orphans included */
    size_t parked;     /* waiting for their retry time */
    size_t orphaned;   /* in flight from partitions already forgotten */
    size_t subjects;   /* subjects with anything held */
    size_t partitions; /* partitions with a record (assigned and added to, or revoking) */
    int paused;        /* last answer of jp_seq_want_pause() */
    uint64_t added, started, done, parks, dropped; /* totals since jp_seq_new() */
} jp_seq_stats_t;

typedef struct jp_seq_partition_stats {
    size_t buffered;           /* items of this partition held */
    size_t in_flight;          /* of which started */
    int64_t lowest_unfinished; /* -1 when none */
    int64_t last_added;        /* -1 when nothing added since the partition was (re)assigned */
    int64_t commit_offset;     /* what would be committed now; -1 when nothing known */
    int revoking;              /* between revoke_start and revoke_finish */
} jp_seq_partition_stats_t;

/* NULL opts = defaults. Returns NULL with errstr filled on bad options or
 * out of memory. */
jp_seq_t *jp_seq_new(const jp_seq_opts_t *opts, char *errstr, size_t errstr_size);

/* Frees the sequencer; cb (may be NULL) receives every item still held:
 * JP_SEQ_DROPPED for not started ones, JP_SEQ_ORPHANED for in-flight ones.
 * seq may be NULL. */
void jp_seq_destroy(jp_seq_t *seq, jp_seq_item_cb *cb, void *opaque);

/* Holds item at (partition, offset) behind the earlier items of its subject.
 * Offsets must increase per partition (since it was last revoked).
 * JP_ERR_INVALID: bad partition/offset/key, offset not above the last one, or
 * the partition is being revoked (the caller still owns item: drop it).
 * JP_ERR_NOMEM: nothing changed. Never refuses because of max_buffered. */
jp_err_t jp_seq_add(jp_seq_t *seq, int32_t partition, int64_t offset, const void *key,
                    size_t keylen, void *item, char *errstr, size_t errstr_size);

/* Records an offset the worker has nothing to do for (no item, no outcome to
 * publish), so that the commit offset can move past it. Same rules as add. */
jp_err_t jp_seq_add_skipped(jp_seq_t *seq, int32_t partition, int64_t offset, char *errstr,
                            size_t errstr_size);

/* Wakes parked items whose time has come (until_ms <= now_ms), then returns
 * the next item that may start, or NULL (nothing ready, or max_in_flight
 * reached; orphans count as in flight). The item is in flight until
 * jp_seq_done or jp_seq_park. Ready items are served in the order they became
 * ready (woken ones join the tail); a subject has at most one ready item, so
 * this is a round robin over subjects, whatever their partition. */
void *jp_seq_next_ready(jp_seq_t *seq, int64_t now_ms);

/* The in-flight item's outcome is published: its offset counts as done and the
 * next item of its subject becomes ready. For an orphan it only releases it.
 * JP_ERR_INVALID if item is not in flight (never started, parked, done). */
jp_err_t jp_seq_done(jp_seq_t *seq, void *item);

/* The in-flight item failed retriably: it stays at the head of its subject and
 * is handed out again by next_ready once now_ms >= until_ms.
 * JP_ERR_NOT_FOUND: its partition is being (or was) revoked, so it will not be
 * retried here; the sequencer let go of it and the caller owns it again (its
 * offset is not done: the commit offset stays at or below it).
 * JP_ERR_INVALID: item not in flight. JP_ERR_NOMEM: nothing changed. */
jp_err_t jp_seq_park(jp_seq_t *seq, void *item, int64_t until_ms);

/* Earliest until_ms of the parked items, or -1 when nothing is parked. */
int64_t jp_seq_next_wakeup_ms(const jp_seq_t *seq);

/* Returns 1 and sets *offset when the partition's commit offset differs from
 * the one last returned for it (so the worker commits only what is new);
 * otherwise returns 0 and sets *offset to -1. */
int jp_seq_commit_offset(jp_seq_t *seq, int32_t partition, int64_t *offset);

/* jp_seq_commit_offset for every partition; cb gets each new offset.
 * Returns how many were reported. */
size_t jp_seq_commit_offsets(jp_seq_t *seq,
                             void (*cb)(int32_t partition, int64_t offset, void *opaque),
                             void *opaque);

/* Whether consumption should be paused now: becomes 1 when max_buffered items
 * are held and stays 1 until fewer than resume_below are held. Level, not
 * edge: the worker compares it with its own state. The bound is global: the
 * worker pauses (and resumes) every assigned partition at once. */
int jp_seq_want_pause(jp_seq_t *seq);

/* Step 1 of a revoke: hands back the partition's not-started items
 * (JP_SEQ_DROPPED) and reports its in-flight ones (JP_SEQ_RUNNING), and
 * refuses new adds for it. Returns how many are in flight. cb may be NULL only
 * if the caller tracks items itself. No-op (0) for an unknown partition. */
size_t jp_seq_revoke_start(jp_seq_t *seq, int32_t partition, jp_seq_item_cb *cb, void *opaque);

/* Step 2: does step 1 if it was not done, sets *final_offset to the offset to
 * commit (lowest offset not done, dropped ones included; or last added + 1)
 * and returns 1, or returns 0 with -1 when the partition has no offset.
 * Items still in flight are reported as JP_SEQ_ORPHANED. Then the partition is
 * forgotten. */
int jp_seq_revoke_finish(jp_seq_t *seq, int32_t partition, jp_seq_item_cb *cb, void *opaque,
                         int64_t *final_offset);

void jp_seq_stats(const jp_seq_t *seq, jp_seq_stats_t *st);

/* Returns 0 and zeroes st (offsets -1) for a partition without a record. */
int jp_seq_partition_stats(const jp_seq_t *seq, int32_t partition, jp_seq_partition_stats_t *st);

#endif
