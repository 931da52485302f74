/* Per-subject FIFO queues, a round-robin ready list, a min-heap of parked
 * items, and per-partition lists of unfinished offsets. See sequencer.h.
 *
 * Every held item is one entry, linked into:
 *   - its subject's queue (add order; only the head may be ready, in flight
 *     or parked), unless it is keyless;
 *   - its partition's list (offset order, since offsets only grow), so the
 *     lowest unfinished offset is the list head. Done entries leave the list,
 *     so memory is bounded by what is held, however long one item is parked;
 *   - the ready list (READY), the parked heap (PARKED) or the in-flight map
 *     (RUNNING, looked up by item pointer for done/park).
 * An orphan is a RUNNING entry whose partition was forgotten (part == NULL). */
#include "jiraprov/sequencer.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { ST_WAITING = 0, ST_READY, ST_RUNNING, ST_PARKED };

typedef struct seq_part seq_part_t;
typedef struct seq_subject seq_subject_t;

typedef struct seq_entry {
    void *item;
    int64_t offset;
    seq_part_t *part;    /* NULL once orphaned */
    seq_subject_t *subj; /* NULL for keyless items */
    struct seq_entry *s_prev, *s_next;
    struct seq_entry *p_prev, *p_next;
    union {
        struct {
            struct seq_entry *prev, *next;
        } ready;         /* ST_READY */
        size_t heap_idx; /* ST_PARKED */
    } u;
    unsigned char state;
} seq_entry_t;

struct seq_subject {
    seq_subject_t *hnext;
    uint64_t hash;
    seq_entry_t *head, *tail;
    size_t keylen;
    unsigned char key[];
};

struct seq_part {
    int32_t id;
    int revoking;
    int64_t last_added; /* -1: nothing added */
    int64_t floor;      /* lowest offset let go unfinished while revoking; INT64_MAX: none */
    int64_t reported;   /* last commit offset returned; -1: none */
    seq_entry_t *head, *tail;
    size_t count, in_flight;
};

typedef struct heap_slot {
    int64_t until;
    uint64_t tie; /* park order, so equal deadlines wake first parked first */
    seq_entry_t *e;
} heap_slot_t;

struct jp_seq {
    jp_seq_opts_t opts;
    uint64_t seed;

    seq_subject_t **buckets; /* chained hash table, power-of-two size */
    size_t nbuckets, nsubjects;

    seq_part_t **parts; /* indexed by partition id */
    size_t parts_cap, nparts;

    seq_entry_t *r_head, *r_tail;
    size_t nready;

    heap_slot_t *heap;
    size_t nheap, heap_cap;
    uint64_t park_tie;

    /* In-flight map, open addressing with linear probing. Sized at creation
     * for twice max_in_flight and never grown: next_ready caps the number in
     * flight, so handing out an item never allocates. */
    seq_entry_t **fl;
    size_t fl_mask;

    size_t buffered, in_flight, orphaned;
    int paused;
    uint64_t added, started, done, parks, dropped;
};

/* ---- hashing ---------------------------------------------------------- */

/* A bijective 64-bit scrambler (the splitmix64 output function). */
static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= UINT64_C(0xbf58476d1ce4e5b9);
    x ^= x >> 27;
    x *= UINT64_C(0x94d049bb133111eb);
    x ^= x >> 31;
    return x;
}

/* Seeded so that keys chosen to collide in one process do not in another. */
static uint64_t hash_key(uint64_t seed, const unsigned char *k, size_t n)
{
    uint64_t h = seed ^ ((uint64_t)n * UINT64_C(0x9e3779b97f4a7c15));
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, k, 8);
        h = mix64(h ^ w);
        k += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, k, n);
    return mix64(h ^ w ^ ((uint64_t)n << 59));
}

static size_t hash_ptr(const void *p)
{
    return (size_t)mix64((uint64_t)(uintptr_t)p);
}

/* ---- subjects --------------------------------------------------------- */

static seq_subject_t *subject_find(const jp_seq_t *seq, uint64_t h, const void *key, size_t len)
{
    for (seq_subject_t *s = seq->buckets[h & (seq->nbuckets - 1)]; s; s = s->hnext)
        if (s->hash == h && s->keylen == len && !memcmp(s->key, key, len))
            return s;
    return NULL;
}

/* Doubles the table; on allocation failure the old one stays (chains just
 * get longer). */
static void subjects_grow(jp_seq_t *seq)
{
    size_t n = seq->nbuckets * 2;
    seq_subject_t **b = calloc(n, sizeof(*b));
    if (!b)
        return;
    for (size_t i = 0; i < seq->nbuckets; i++) {
        seq_subject_t *s = seq->buckets[i];
        while (s) {
            seq_subject_t *next = s->hnext;
            s->hnext = b[s->hash & (n - 1)];
            b[s->hash & (n - 1)] = s;
            s = next;
        }
    }
    free(seq->buckets);
    seq->buckets = b;
    seq->nbuckets = n;
}

static void subject_insert(jp_seq_t *seq, seq_subject_t *s)
{
    seq_subject_t **b = &seq->buckets[s->hash & (seq->nbuckets - 1)];
    s->hnext = *b;
    *b = s;
    if (++seq->nsubjects > seq->nbuckets)
        subjects_grow(seq);
}

static void subject_delete(jp_seq_t *seq, seq_subject_t *s)
{
    seq_subject_t **pp = &seq->buckets[s->hash & (seq->nbuckets - 1)];
    while (*pp != s)
        pp = &(*pp)->hnext;
    *pp = s->hnext;
    seq->nsubjects--;
    free(s);
}

/* ---- ready list ------------------------------------------------------- */

static void ready_push(jp_seq_t *seq, seq_entry_t *e)
{
    e->state = ST_READY;
    e->u.ready.next = NULL;
    e->u.ready.prev = seq->r_tail;
    if (seq->r_tail)
        seq->r_tail->u.ready.next = e;
    else
        seq->r_head = e;
    seq->r_tail = e;
    seq->nready++;
}

static void ready_remove(jp_seq_t *seq, seq_entry_t *e)
{
    if (e->u.ready.prev)
        e->u.ready.prev->u.ready.next = e->u.ready.next;
    else
        seq->r_head = e->u.ready.next;
    if (e->u.ready.next)
        e->u.ready.next->u.ready.prev = e->u.ready.prev;
    else
        seq->r_tail = e->u.ready.prev;
    seq->nready--;
}

/* ---- parked heap ------------------------------------------------------ */

static int slot_less(const heap_slot_t *a, const heap_slot_t *b)
{
    return a->until < b->until || (a->until == b->until && a->tie < b->tie);
}

static void heap_set(jp_seq_t *seq, size_t i, heap_slot_t slot)
{
    seq->heap[i] = slot;
    slot.e->u.heap_idx = i;
}

static void heap_sift_up(jp_seq_t *seq, size_t i)
{
    heap_slot_t slot = seq->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!slot_less(&slot, &seq->heap[parent]))
            break;
        heap_set(seq, i, seq->heap[parent]);
        i = parent;
    }
    heap_set(seq, i, slot);
}

static void heap_sift_down(jp_seq_t *seq, size_t i)
{
    heap_slot_t slot = seq->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= seq->nheap)
            break;
        if (c + 1 < seq->nheap && slot_less(&seq->heap[c + 1], &seq->heap[c]))
            c++;
        if (!slot_less(&seq->heap[c], &slot))
            break;
        heap_set(seq, i, seq->heap[c]);
        i = c;
    }
    heap_set(seq, i, slot);
}

static int heap_reserve(jp_seq_t *seq)
{
    if (seq->nheap < seq->heap_cap)
        return 0;
    size_t cap = seq->heap_cap ? seq->heap_cap * 2 : 64;
    heap_slot_t *h = realloc(seq->heap, cap * sizeof(*h));
    if (!h)
        return -1;
    seq->heap = h;
    seq->heap_cap = cap;
    return 0;
}

/* Capacity must have been reserved. */
static void heap_push(jp_seq_t *seq, seq_entry_t *e, int64_t until)
{
    e->state = ST_PARKED;
    seq->heap[seq->nheap] = (heap_slot_t){until, seq->park_tie++, e};
    heap_sift_up(seq, seq->nheap++);
}

static void heap_remove(jp_seq_t *seq, size_t i)
{
    seq->nheap--;
    if (i == seq->nheap)
        return;
    heap_slot_t moved = seq->heap[seq->nheap];
    heap_set(seq, i, moved);
    heap_sift_down(seq, i);
    /* The last slot may also belong above i (it came from another subtree). */
    if (moved.e->u.heap_idx == i)
        heap_sift_up(seq, i);
}

/* ---- in-flight map ---------------------------------------------------- */

static size_t fl_find(const jp_seq_t *seq, const void *item)
{
    for (size_t i = hash_ptr(item) & seq->fl_mask; seq->fl[i]; i = (i + 1) & seq->fl_mask)
        if (seq->fl[i]->item == item)
            return i;
    return (size_t)-1;
}

static void fl_insert(jp_seq_t *seq, seq_entry_t *e)
{
    size_t i = hash_ptr(e->item) & seq->fl_mask;
    while (seq->fl[i])
        i = (i + 1) & seq->fl_mask;
    seq->fl[i] = e;
}

/* Backward-shift deletion keeps probe chains unbroken without tombstones. */
static void fl_delete_at(jp_seq_t *seq, size_t i)
{
    size_t j = i;
    for (;;) {
        seq->fl[i] = NULL;
        for (;;) {
            j = (j + 1) & seq->fl_mask;
            if (!seq->fl[j])
                return;
            size_t home = hash_ptr(seq->fl[j]->item) & seq->fl_mask;
            /* The entry at j may stay if its home lies cyclically in (i, j]. */
            int stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
            if (!stays)
                break;
        }
        seq->fl[i] = seq->fl[j];
        i = j;
    }
}

/* ---- entries ---------------------------------------------------------- */

/* Takes e out of its subject's queue; the new head, if any, becomes ready. */
static void subject_unlink(jp_seq_t *seq, seq_entry_t *e)
{
    seq_subject_t *s = e->subj;
    if (e->s_prev)
        e->s_prev->s_next = e->s_next;
    else
        s->head = e->s_next;
    if (e->s_next)
        e->s_next->s_prev = e->s_prev;
    else
        s->tail = e->s_prev;
    if (!s->head)
        subject_delete(seq, s);
    else if (s->head->state == ST_WAITING)
        ready_push(seq, s->head);
}

static void part_unlink(seq_part_t *p, seq_entry_t *e)
{
    if (e->p_prev)
        e->p_prev->p_next = e->p_next;
    else
        p->head = e->p_next;
    if (e->p_next)
        e->p_next->p_prev = e->p_prev;
    else
        p->tail = e->p_prev;
    p->count--;
}

/* Removes e from every structure and frees it (never the item). */
static void entry_release(jp_seq_t *seq, seq_entry_t *e)
{
    switch (e->state) {
    case ST_READY:
        ready_remove(seq, e);
        break;
    case ST_PARKED:
        heap_remove(seq, e->u.heap_idx);
        break;
    case ST_RUNNING:
        fl_delete_at(seq, fl_find(seq, e->item));
        seq->in_flight--;
        if (e->part)
            e->part->in_flight--;
        else
            seq->orphaned--;
        break;
    default:
        break;
    }
    if (e->part)
        part_unlink(e->part, e);
    if (e->subj)
        subject_unlink(seq, e);
    seq->buffered--;
    free(e);
}

/* ---- partitions ------------------------------------------------------- */

static seq_part_t *part_get(const jp_seq_t *seq, int32_t id)
{
    return (size_t)id < seq->parts_cap ? seq->parts[id] : NULL;
}

static seq_part_t *part_create(jp_seq_t *seq, int32_t id)
{
    if ((size_t)id >= seq->parts_cap) {
        size_t cap = seq->parts_cap ? seq->parts_cap : 16;
        while (cap <= (size_t)id)
            cap *= 2;
        seq_part_t **a = realloc(seq->parts, cap * sizeof(*a));
        if (!a)
            return NULL;
        memset(a + seq->parts_cap, 0, (cap - seq->parts_cap) * sizeof(*a));
        seq->parts = a;
        seq->parts_cap = cap;
    }
    seq_part_t *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->id = id;
    p->last_added = -1;
    p->floor = INT64_MAX;
    p->reported = -1;
    seq->parts[id] = p;
    seq->nparts++;
    return p;
}

static int64_t part_commit(const seq_part_t *p)
{
    int64_t c = p->head ? p->head->offset : p->last_added >= 0 ? p->last_added + 1 : -1;
    if (p->floor != INT64_MAX && (c < 0 || p->floor < c))
        c = p->floor;
    return c;
}

/* Checks shared by add and add_skipped; *pp is the existing record or NULL. */
static jp_err_t check_position(const jp_seq_t *seq, int32_t partition, int64_t offset,
                               seq_part_t **pp, char *errstr, size_t errstr_size)
{
    if (partition < 0 || partition >= JP_SEQ_MAX_PARTITIONS)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "partition %d is outside 0..%d",
                          (int)partition, JP_SEQ_MAX_PARTITIONS - 1);
    if (offset < 0)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "offset %lld is negative",
                          (long long)offset);
    seq_part_t *p = part_get(seq, partition);
    if (p && p->revoking)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "partition %d is being revoked",
                          (int)partition);
    if (p && offset <= p->last_added)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "offset %lld of partition %d is not above the last one (%lld)",
                          (long long)offset, (int)partition, (long long)p->last_added);
    *pp = p;
    return JP_OK;
}

/* ---- public ----------------------------------------------------------- */

jp_seq_t *jp_seq_new(const jp_seq_opts_t *opts, char *errstr, size_t errstr_size)
{
    jp_seq_opts_t o = opts ? *opts : (jp_seq_opts_t){0};
    if (!o.max_buffered)
        o.max_buffered = 10000;
    if (!o.resume_below)
        o.resume_below = o.max_buffered / 2 ? o.max_buffered / 2 : 1;
    if (!o.max_in_flight)
        o.max_in_flight = 1000;
    if (o.resume_below > o.max_buffered) {
        jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                   "resume_below (%zu) is above max_buffered (%zu)", o.resume_below,
                   o.max_buffered);
        return NULL;
    }
    if (o.max_in_flight > JP_SEQ_MAX_IN_FLIGHT) {
        jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "max_in_flight (%zu) is above %d",
                   o.max_in_flight, JP_SEQ_MAX_IN_FLIGHT);
        return NULL;
    }
    jp_seq_t *seq = calloc(1, sizeof(*seq));
    size_t fl_size = 16;
    while (fl_size < 2 * o.max_in_flight)
        fl_size *= 2;
    if (seq) {
        seq->opts = o;
        seq->nbuckets = 64;
        seq->buckets = calloc(seq->nbuckets, sizeof(*seq->buckets));
        seq->fl = calloc(fl_size, sizeof(*seq->fl));
        seq->fl_mask = fl_size - 1;
        seq->seed = mix64((uint64_t)(uintptr_t)seq ^ ((uint64_t)time(NULL) << 20));
    }
    if (!seq || !seq->buckets || !seq->fl) {
        jp_seq_destroy(seq, NULL, NULL);
        jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory creating the sequencer");
        return NULL;
    }
    return seq;
}

void jp_seq_destroy(jp_seq_t *seq, jp_seq_item_cb *cb, void *opaque)
{
    if (!seq)
        return;
    /* Orphans first: they are in no partition, only in the in-flight map,
     * which also points at partition entries freed below. */
    for (size_t i = 0; seq->fl && i <= seq->fl_mask; i++) {
        seq_entry_t *e = seq->fl[i];
        if (e && !e->part) {
            if (cb)
                cb(e->item, JP_SEQ_ORPHANED, opaque);
            free(e);
        }
    }
    for (size_t i = 0; i < seq->parts_cap; i++) {
        seq_part_t *p = seq->parts[i];
        if (!p)
            continue;
        for (seq_entry_t *e = p->head, *next; e; e = next) {
            next = e->p_next;
            if (cb)
                cb(e->item, e->state == ST_RUNNING ? JP_SEQ_ORPHANED : JP_SEQ_DROPPED, opaque);
            free(e);
        }
        free(p);
    }
    for (size_t i = 0; seq->buckets && i < seq->nbuckets; i++) {
        for (seq_subject_t *s = seq->buckets[i], *next; s; s = next) {
            next = s->hnext;
            free(s);
        }
    }
    free(seq->buckets);
    free(seq->parts);
    free(seq->heap);
    free(seq->fl);
    free(seq);
}

jp_err_t jp_seq_add(jp_seq_t *seq, int32_t partition, int64_t offset, const void *key,
                    size_t keylen, void *item, char *errstr, size_t errstr_size)
{
    if (!item)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "item is NULL");
    if (!key && keylen)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "key is NULL but keylen is %zu",
                          keylen);
    if (keylen > SIZE_MAX / 2)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "key length %zu is absurd", keylen);
    seq_part_t *p;
    jp_err_t err = check_position(seq, partition, offset, &p, errstr, errstr_size);
    if (err)
        return err;

    seq_entry_t *e = calloc(1, sizeof(*e));
    seq_subject_t *s = NULL, *fresh = NULL;
    uint64_t h = 0;
    if (e && keylen) {
        h = hash_key(seq->seed, key, keylen);
        s = subject_find(seq, h, key, keylen);
        if (!s) {
            s = fresh = calloc(1, sizeof(*s) + keylen);
            if (!s) {
                free(e);
                e = NULL;
            }
        }
    }
    if (e && !p && !(p = part_create(seq, partition))) {
        free(fresh);
        free(e);
        e = NULL;
    }
    if (!e)
        return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM,
                          "out of memory adding offset %lld of partition %d", (long long)offset,
                          (int)partition);
    if (fresh) {
        fresh->hash = h;
        fresh->keylen = keylen;
        memcpy(fresh->key, key, keylen);
        subject_insert(seq, fresh);
    }

    e->item = item;
    e->offset = offset;
    e->part = p;
    e->subj = s;
    e->p_prev = p->tail;
    if (p->tail)
        p->tail->p_next = e;
    else
        p->head = e;
    p->tail = e;
    p->count++;
    p->last_added = offset;

    if (s) {
        e->s_prev = s->tail;
        if (s->tail)
            s->tail->s_next = e;
        else
            s->head = e;
        s->tail = e;
    }
    if (!s || s->head == e)
        ready_push(seq, e);
    else
        e->state = ST_WAITING;
    seq->buffered++;
    seq->added++;
    return JP_OK;
}

jp_err_t jp_seq_add_skipped(jp_seq_t *seq, int32_t partition, int64_t offset, char *errstr,
                            size_t errstr_size)
{
    seq_part_t *p;
    jp_err_t err = check_position(seq, partition, offset, &p, errstr, errstr_size);
    if (err)
        return err;
    if (!p && !(p = part_create(seq, partition)))
        return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory tracking partition %d",
                          (int)partition);
    p->last_added = offset;
    return JP_OK;
}

void *jp_seq_next_ready(jp_seq_t *seq, int64_t now_ms)
{
    while (seq->nheap && seq->heap[0].until <= now_ms) {
        seq_entry_t *e = seq->heap[0].e;
        heap_remove(seq, 0);
        ready_push(seq, e);
    }
    seq_entry_t *e = seq->r_head;
    if (!e || seq->in_flight >= seq->opts.max_in_flight)
        return NULL;
    ready_remove(seq, e);
    e->state = ST_RUNNING;
    fl_insert(seq, e);
    seq->in_flight++;
    e->part->in_flight++; /* ready entries always have a partition: revoke drops them */
    seq->started++;
    return e->item;
}

static seq_entry_t *running_entry(const jp_seq_t *seq, const void *item)
{
    size_t i = item ? fl_find(seq, item) : (size_t)-1;
    return i == (size_t)-1 ? NULL : seq->fl[i];
}

jp_err_t jp_seq_done(jp_seq_t *seq, void *item)
{
    seq_entry_t *e = running_entry(seq, item);
    if (!e)
        return JP_ERR_INVALID;
    entry_release(seq, e);
    seq->done++;
    return JP_OK;
}

jp_err_t jp_seq_park(jp_seq_t *seq, void *item, int64_t until_ms)
{
    seq_entry_t *e = running_entry(seq, item);
    if (!e)
        return JP_ERR_INVALID;
    if (!e->part || e->part->revoking) {
        /* Not retried here: whoever owns the partition next reads it again
         * from the commit offset, which the floor keeps at or below it. */
        if (e->part && e->offset < e->part->floor)
            e->part->floor = e->offset;
        entry_release(seq, e);
        seq->dropped++;
        return JP_ERR_NOT_FOUND;
    }
    if (heap_reserve(seq))
        return JP_ERR_NOMEM;
    fl_delete_at(seq, fl_find(seq, item));
    seq->in_flight--;
    e->part->in_flight--;
    heap_push(seq, e, until_ms);
    seq->parks++;
    return JP_OK;
}

int64_t jp_seq_next_wakeup_ms(const jp_seq_t *seq)
{
    return seq->nheap ? seq->heap[0].until : -1;
}

int jp_seq_commit_offset(jp_seq_t *seq, int32_t partition, int64_t *offset)
{
    seq_part_t *p = partition >= 0 ? part_get(seq, partition) : NULL;
    int64_t c = p ? part_commit(p) : -1;
    if (c < 0 || c == p->reported) {
        *offset = -1;
        return 0;
    }
    p->reported = c;
    *offset = c;
    return 1;
}

size_t jp_seq_commit_offsets(jp_seq_t *seq,
                             void (*cb)(int32_t partition, int64_t offset, void *opaque),
                             void *opaque)
{
    size_t n = 0;
    for (size_t i = 0; i < seq->parts_cap; i++) {
        int64_t off;
        if (seq->parts[i] && jp_seq_commit_offset(seq, (int32_t)i, &off)) {
            cb((int32_t)i, off, opaque);
            n++;
        }
    }
    return n;
}

int jp_seq_want_pause(jp_seq_t *seq)
{
    if (!seq->paused && seq->buffered >= seq->opts.max_buffered)
        seq->paused = 1;
    else if (seq->paused && seq->buffered < seq->opts.resume_below)
        seq->paused = 0;
    return seq->paused;
}

/* Drops the not-started entries of p; reports running ones if asked. */
static void part_drop_waiting(jp_seq_t *seq, seq_part_t *p, int report_running, jp_seq_item_cb *cb,
                              void *opaque)
{
    for (seq_entry_t *e = p->head, *next; e; e = next) {
        next = e->p_next;
        void *item = e->item;
        if (e->state == ST_RUNNING) {
            if (report_running && cb)
                cb(item, JP_SEQ_RUNNING, opaque);
            continue;
        }
        if (e->offset < p->floor)
            p->floor = e->offset;
        entry_release(seq, e);
        seq->dropped++;
        if (cb)
            cb(item, JP_SEQ_DROPPED, opaque);
    }
    p->revoking = 1;
}

size_t jp_seq_revoke_start(jp_seq_t *seq, int32_t partition, jp_seq_item_cb *cb, void *opaque)
{
    seq_part_t *p = partition >= 0 ? part_get(seq, partition) : NULL;
    if (!p)
        return 0;
    part_drop_waiting(seq, p, 1, cb, opaque);
    return p->in_flight;
}

int jp_seq_revoke_finish(jp_seq_t *seq, int32_t partition, jp_seq_item_cb *cb, void *opaque,
                         int64_t *final_offset)
{
    seq_part_t *p = partition >= 0 ? part_get(seq, partition) : NULL;
    *final_offset = -1;
    if (!p)
        return 0;
    if (!p->revoking)
        part_drop_waiting(seq, p, 0, cb, opaque);
    *final_offset = part_commit(p);
    for (seq_entry_t *e = p->head, *next; e; e = next) {
        next = e->p_next;
        e->part = NULL;
        e->p_prev = e->p_next = NULL;
        seq->orphaned++;
        if (cb)
            cb(e->item, JP_SEQ_ORPHANED, opaque);
    }
    seq->parts[partition] = NULL;
    seq->nparts--;
    free(p);
    return *final_offset >= 0;
}

void jp_seq_stats(const jp_seq_t *seq, jp_seq_stats_t *st)
{
    *st = (jp_seq_stats_t){
        .buffered = seq->buffered,
        .ready = seq->nready,
        .in_flight = seq->in_flight,
        .parked = seq->nheap,
        .orphaned = seq->orphaned,
        .subjects = seq->nsubjects,
        .partitions = seq->nparts,
        .paused = seq->paused,
        .added = seq->added,
        .started = seq->started,
        .done = seq->done,
        .parks = seq->parks,
        .dropped = seq->dropped,
    };
}

int jp_seq_partition_stats(const jp_seq_t *seq, int32_t partition, jp_seq_partition_stats_t *st)
{
    const seq_part_t *p = partition >= 0 ? part_get(seq, partition) : NULL;
    *st = (jp_seq_partition_stats_t){0, 0, -1, -1, -1, 0};
    if (!p)
        return 0;
    st->buffered = p->count;
    st->in_flight = p->in_flight;
    st->lowest_unfinished = p->head ? p->head->offset : -1;
    st->last_added = p->last_added;
    st->commit_offset = part_commit(p);
    st->revoking = p->revoking;
    return 1;
}
