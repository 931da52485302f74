#include "jiraprov/sequencer.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../lib/check_main.h"

/* ---- helpers ---------------------------------------------------------- */

typedef struct item {
    const char *key;
    int32_t part;
    int64_t offset;
    int handed_back[3]; /* per jp_seq_handback_t */
    int subj;           /* many_subjects_keep_their_order */
} item_t;

static jp_seq_t *mk(size_t max_buffered, size_t resume_below, size_t max_in_flight)
{
    char err[256] = "";
    jp_seq_opts_t o = {max_buffered, resume_below, max_in_flight};
    jp_seq_t *seq = jp_seq_new(&o, err, sizeof(err));
    ck_assert_msg(seq != NULL, "jp_seq_new: %s", err);
    return seq;
}

static void add(jp_seq_t *seq, item_t *it)
{
    char err[256] = "";
    jp_err_t rc = jp_seq_add(seq, it->part, it->offset, it->key, it->key ? strlen(it->key) : 0, it,
                             err, sizeof(err));
    ck_assert_msg(rc == JP_OK, "add %s@%d/%lld: %s", it->key ? it->key : "(none)", (int)it->part,
                  (long long)it->offset, err);
}

static void record_cb(void *item, jp_seq_handback_t how, void *opaque)
{
    ((item_t *)item)->handed_back[how]++;
    (*(int *)opaque)++;
}

static int64_t commit(jp_seq_t *seq, int32_t part)
{
    int64_t off = -2;
    int changed = jp_seq_commit_offset(seq, part, &off);
    ck_assert_int_eq(changed, off >= 0);
    return off;
}

static jp_seq_stats_t stats(const jp_seq_t *seq)
{
    jp_seq_stats_t st;
    jp_seq_stats(seq, &st);
    return st;
}

/* ---- behaviour -------------------------------------------------------- */

START_TEST(fifo_per_subject)
{
    jp_seq_t *seq = mk(0, 0, 0);
    item_t a[3] = {{"A", 0, 0, {0}, 0}, {"A", 0, 1, {0}, 0}, {"A", 0, 2, {0}, 0}};
    for (int i = 0; i < 3; i++)
        add(seq, &a[i]);
    ck_assert_int_eq(stats(seq).subjects, 1);
    for (int i = 0; i < 3; i++) {
        ck_assert_ptr_eq(jp_seq_next_ready(seq, 0), &a[i]);
        ck_assert_ptr_null(jp_seq_next_ready(seq, 0)); /* the rest wait behind it */
        ck_assert_int_eq(jp_seq_done(seq, &a[i]), JP_OK);
    }
    ck_assert_ptr_null(jp_seq_next_ready(seq, 0));
    jp_seq_stats_t st = stats(seq);
    ck_assert_int_eq(st.buffered, 0);
    ck_assert_int_eq(st.subjects, 0);
    ck_assert_int_eq(st.added, 3);
    ck_assert_int_eq(st.done, 3);
    jp_seq_destroy(seq, NULL, NULL);
}
END_TEST

START_TEST(parallel_subjects_in_one_partition)
{
    jp_seq_t *seq = mk(0, 0, 0);
    item_t it[] = {{"A", 0, 0, {0}, 0},
                   {"B", 0, 1, {0}, 0},
                   {"A", 0, 2, {0}, 0},
                   {"B", 0, 3, {0}, 0},
                   {"C", 0, 4, {0}, 0}};
    for (size_t i = 0; i < 5; i++)
        add(seq, &it[i]);
    /* One per subject, in the order they became ready. */
    ck_assert_ptr_eq(jp_seq_next_ready(seq, 0), &it[0]);
    ck_assert_ptr_eq(jp_seq_next_ready(seq, 0), &it[1]);
    ck_assert_ptr_eq(jp_seq_next_ready(seq, 0), &it[4]);
    ck_assert_ptr_null(jp_seq_next_ready(seq, 0));
    ck_assert_int_eq(stats(seq).in_flight, 3);
    ck_assert_int_eq(jp_seq_done(seq, &it[1]), JP_OK);
    ck_assert_ptr_eq(jp_seq_next_ready(seq, 0), &it[3]);
    ck_assert_int_eq(jp_seq_done(seq, &it[0]), JP_OK);
    ck_assert_ptr_eq(jp_seq_next_ready(seq, 0), &it[2]);
    ck_assert_ptr_null(jp_seq_next_ready(seq, 0));
    jp_seq_destroy(seq, NULL, NULL);
}
END_TEST

START_TEST(same_key_across_partitions_is_one_subject)
{
    jp_seq_t *seq = mk(0, 0, 0);
    item_t it[] = {{"A", 0, 7, {0}, 0}, {"A", 1, 3, {0}, 0}};
    add(seq, &it[0]);
    add(seq, &it[1]);
    ck_assert_ptr_eq(jp_seq_next_ready(seq, 0), &it[0]);
    ck_assert_ptr_null(jp_seq_next_ready(seq, 0));
    ck_assert_int_eq(jp_seq_done(seq, &it[0]), JP_OK);
    ck_assert_ptr_eq(jp_seq_next_ready(seq, 0), &it[1]);
    jp_seq_destroy(seq, NULL, NULL);
}
END_TEST

START_TEST(keyless_items_are_independent)
{
    jp_seq_t *seq = mk(0, 0, 0);
    item_t it[3] = {{NULL, 0, 0, {0}, 0}, {NULL, 0, 1, {0}, 0}, {"", 0, 2, {0}, 0}};
    for (int i = 0; i < 3; i++)
        add(seq, &it[i]);
    ck_assert_int_eq(stats(seq).subjects, 0);
    for (int i = 0; i < 3; i++)
        ck_assert_ptr_eq(jp_seq_next_ready(seq, 0), &it[i]);
    ck_assert_int_eq(jp_seq_done(seq, &it[1]), JP_OK);
    ck_assert_int_eq(commit(seq, 0), 0);
    ck_assert_int_eq(jp_seq_done(seq, &it[0]), JP_OK);
    ck_assert_int_eq(jp_seq_done(seq, &it[2]), JP_OK);
    ck_assert_int_eq(commit(seq, 0), 3);
    jp_seq_destroy(seq, NULL, NULL);
}
END_TEST

START_TEST(max_in_flight_is_respected)
{
    jp_seq_t *seq = mk(0, 0, 2);
    item_t it[5] = {{"a", 0, 0, {0}, 0},
                    {"b", 0, 1, {0}, 0},
                    {"c", 0, 2, {0}, 0},
                    {"d", 0, 3, {0}, 0},
                    {"e", 0, 4, {0}, 0}};
    for (int i = 0; i < 5; i++)
        add(seq, &it[i]);
    ck_assert_ptr_eq(jp_seq_next_ready(seq, 0), &it[0]);
    ck_assert_ptr_eq(jp_seq_next_ready(seq, 0), &it[1]);
    ck_assert_ptr_null(jp_seq_next_ready(seq, 0));
    ck_assert_int_eq(stats(seq).in_flight, 2);
    ck_assert_int_eq(stats(seq).ready, 3);
    ck_assert_int_eq(jp_seq_done(seq, &it[0]), JP_OK);
    ck_assert_ptr_eq(jp_seq_next_ready(seq, 0), &it[2]);
    ck_assert_ptr_null(jp_seq_next_ready(seq, 0));
    /* Parking frees a slot too. */
    ck_assert_int_eq(jp_seq_park(seq, &it[1], 50), JP_OK);
    ck_assert_ptr_eq(jp_seq_next_ready(seq, 0), &it[3]);
    ck_assert_ptr_null(jp_seq_next_ready(seq, 100));
    jp_seq_destroy(seq, NULL, NULL);
}
END_TEST

START_TEST(park_blocks_only_its_subject)
{
    jp_seq_t *seq = mk(0, 0, 0);
    item_t it[] = {
        {"A", 0, 0, {0}, 0}, {"A", 0, 1, {0}, 0}, {"B", 0, 2, {0}, 0}, {"B", 0, 3, {0}, 0}};
    for (size_t i = 0; i < 4; i++)
        add(seq, &it[i]);
    ck_assert_int_eq(jp_seq_next_wakeup_ms(seq), -1);
    ck_assert_ptr_eq(jp_seq_next_ready(seq, 0), &it[0]);
    ck_assert_ptr_eq(jp_seq_next_ready(seq, 0), &it[2]);
    ck_assert_int_eq(jp_seq_park(seq, &it[0], 1000), JP_OK);
    ck_assert_int_eq(jp_seq_next_wakeup_ms(seq), 1000);
    ck_assert_int_eq(stats(seq).parked, 1);
    ck_assert_int_eq(stats(seq).in_flight, 1);
    /* A's later event waits behind the parked one; B flows. */
    ck_assert_ptr_null(jp_seq_next_ready(seq, 10));
    ck_assert_int_eq(jp_seq_done(seq, &it[2]), JP_OK);
    ck_assert_ptr_eq(jp_seq_next_ready(seq, 20), &it[3]);
    ck_assert_int_eq(jp_seq_done(seq, &it[3]), JP_OK);
    ck_assert_ptr_null(jp_seq_next_ready(seq, 999));
    /* The commit offset stays at the parked event although later ones are done. */
    ck_assert_int_eq(commit(seq, 0), 0);
    ck_assert_ptr_eq(jp_seq_next_ready(seq, 1000), &it[0]);
    ck_assert_int_eq(jp_seq_next_wakeup_ms(seq), -1);
    ck_assert_ptr_null(jp_seq_next_ready(seq, 1000));
    /* Parked again, then done on the retry. */
    ck_assert_int_eq(jp_seq_park(seq, &it[0], 1500), JP_OK);
    ck_assert_ptr_eq(jp_seq_next_ready(seq, 2000), &it[0]);
    ck_assert_int_eq(jp_seq_done(seq, &it[0]), JP_OK);
    ck_assert_int_eq(commit(seq, 0), 1);
    ck_assert_ptr_eq(jp_seq_next_ready(seq, 2000), &it[1]);
    ck_assert_int_eq(jp_seq_done(seq, &it[1]), JP_OK);
    ck_assert_int_eq(commit(seq, 0), 4);
    ck_assert_int_eq(stats(seq).parks, 2);
    jp_seq_destroy(seq, NULL, NULL);
}
END_TEST

START_TEST(parked_items_wake_in_deadline_order)
{
    jp_seq_t *seq = mk(0, 0, 0);
    item_t it[4] = {
        {"a", 0, 0, {0}, 0}, {"b", 0, 1, {0}, 0}, {"c", 0, 2, {0}, 0}, {"d", 0, 3, {0}, 0}};
    int64_t until[4] = {300, 100, 300, 200};
    for (int i = 0; i < 4; i++) {
        add(seq, &it[i]);
        ck_assert_ptr_eq(jp_seq_next_ready(seq, 0), &it[i]);
    }
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(jp_seq_park(seq, &it[i], until[i]), JP_OK);
    ck_assert_int_eq(jp_seq_next_wakeup_ms(seq), 100);
    ck_assert_ptr_eq(jp_seq_next_ready(seq, 150), &it[1]);
    ck_assert_int_eq(jp_seq_next_wakeup_ms(seq), 200);
    /* Equal deadlines: first parked, first woken. */
    ck_assert_ptr_eq(jp_seq_next_ready(seq, 300), &it[3]);
    ck_assert_ptr_eq(jp_seq_next_ready(seq, 300), &it[0]);
    ck_assert_ptr_eq(jp_seq_next_ready(seq, 300), &it[2]);
    ck_assert_int_eq(jp_seq_next_wakeup_ms(seq), -1);
    jp_seq_destroy(seq, NULL, NULL);
}
END_TEST

/* Revoking removes parked items from the middle of the deadline heap; the
 * rest must still wake in deadline order, equal deadlines in park order. */
START_TEST(parked_order_survives_removals)
{
    enum { N = 300 };
    jp_seq_t *seq = mk(0, 0, N);
    static item_t it[N];
    static char keys[N][16];
    static int64_t until[N];
    static int gone[N];
    uint64_t r = 12345;
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof(keys[i]), "h%d", i);
        it[i] = (item_t){keys[i], i % 3, i / 3, {0}, i};
        add(seq, &it[i]);
    }
    for (int i = 0; i < N; i++) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        until[i] = 1 + (int64_t)(r % 200);
        gone[i] = 0;
        ck_assert_ptr_eq(jp_seq_next_ready(seq, 0), &it[i]);
        ck_assert_int_eq(jp_seq_park(seq, &it[i], until[i]), JP_OK);
    }
    int n = 0;
    ck_assert_int_eq(jp_seq_revoke_start(seq, 1, record_cb, &n), 0);
    ck_assert_int_eq(n, N / 3);
    for (int i = 1; i < N; i += 3)
        gone[i] = 1;
    int woken = 0;
    int64_t w, prev = -1;
    while ((w = jp_seq_next_wakeup_ms(seq)) >= 0) {
        int64_t want = -1;
        for (int i = 0; i < N; i++)
            if (!gone[i] && (want < 0 || until[i] < want))
                want = until[i];
        ck_assert_int_eq(w, want);
        ck_assert_int_gt(w, prev);
        prev = w;
        item_t *x;
        int last_idx = -1;
        while ((x = jp_seq_next_ready(seq, w))) {
            ck_assert_int_eq(until[x->subj], w);
            ck_assert_int_gt(x->subj, last_idx); /* first parked, first woken */
            last_idx = x->subj;
            gone[x->subj] = 1;
            woken++;
            ck_assert_int_eq(jp_seq_done(seq, x), JP_OK);
        }
    }
    ck_assert_int_eq(woken, N - N / 3);
    jp_seq_destroy(seq, NULL, NULL);
}
END_TEST

START_TEST(commit_never_passes_unfinished)
{
    jp_seq_t *seq = mk(0, 0, 0);
    item_t it[] = {{"x", 0, 3, {0}, 0}, {"y", 0, 4, {0}, 0}, {"z", 0, 5, {0}, 0}};
    int64_t off;
    ck_assert_int_eq(jp_seq_commit_offset(seq, 0, &off), 0); /* nothing known yet */
    ck_assert_int_eq(off, -1);
    for (int i = 0; i < 3; i++)
        add(seq, &it[i]);
    ck_assert_int_eq(commit(seq, 0), 3);
    ck_assert_int_eq(commit(seq, 0), -1); /* unchanged: nothing to commit */
    for (int i = 0; i < 3; i++)
        ck_assert_ptr_nonnull(jp_seq_next_ready(seq, 0));
    ck_assert_int_eq(jp_seq_done(seq, &it[2]), JP_OK); /* 5 before 3 */
    ck_assert_int_eq(commit(seq, 0), -1);
    jp_seq_partition_stats_t ps;
    ck_assert_int_eq(jp_seq_partition_stats(seq, 0, &ps), 1);
    ck_assert_int_eq(ps.lowest_unfinished, 3);
    ck_assert_int_eq(ps.commit_offset, 3);
    ck_assert_int_eq(jp_seq_done(seq, &it[0]), JP_OK);
    ck_assert_int_eq(commit(seq, 0), 4);
    ck_assert_int_eq(jp_seq_done(seq, &it[1]), JP_OK);
    ck_assert_int_eq(commit(seq, 0), 6); /* last + 1: Kafka's next offset to read */

    /* Gaps in offsets (compaction, transaction markers) are fine. */
    item_t w = {"w", 0, 10, {0}, 0}, v = {"v", 0, 20, {0}, 0};
    add(seq, &w);
    ck_assert_int_eq(jp_seq_add_skipped(seq, 0, 11, NULL, 0), JP_OK);
    add(seq, &v);
    ck_assert_ptr_eq(jp_seq_next_ready(seq, 0), &w);
    ck_assert_ptr_eq(jp_seq_next_ready(seq, 0), &v);
    ck_assert_int_eq(jp_seq_done(seq, &v), JP_OK);
    ck_assert_int_eq(commit(seq, 0), 10);
    ck_assert_int_eq(jp_seq_done(seq, &w), JP_OK);
    ck_assert_int_eq(commit(seq, 0), 21);
    ck_assert_int_eq(jp_seq_add_skipped(seq, 0, 25, NULL, 0), JP_OK);
    ck_assert_int_eq(commit(seq, 0), 26);
    /* Another partition is independent. */
    ck_assert_int_eq(commit(seq, 1), -1);
    ck_assert_int_eq(jp_seq_partition_stats(seq, 1, &ps), 0);
    ck_assert_int_eq(ps.commit_offset, -1);
    jp_seq_destroy(seq, NULL, NULL);
}
END_TEST

typedef struct commits {
    int n;
    int32_t part[8];
    int64_t off[8];
} commits_t;

static void collect_commit(int32_t partition, int64_t offset, void *opaque)
{
    commits_t *c = opaque;
    ck_assert_int_lt(c->n, 8);
    c->part[c->n] = partition;
    c->off[c->n++] = offset;
}

START_TEST(commit_offsets_reports_only_changes)
{
    jp_seq_t *seq = mk(0, 0, 0);
    item_t a = {"a", 2, 40, {0}, 0}, b = {"b", 5, 7, {0}, 0};
    add(seq, &a);
    add(seq, &b);
    commits_t c = {0};
    ck_assert_int_eq(jp_seq_commit_offsets(seq, collect_commit, &c), 2);
    ck_assert_int_eq(c.part[0], 2);
    ck_assert_int_eq(c.off[0], 40);
    ck_assert_int_eq(c.part[1], 5);
    ck_assert_int_eq(c.off[1], 7);
    c.n = 0;
    ck_assert_int_eq(jp_seq_commit_offsets(seq, collect_commit, &c), 0);
    ck_assert_ptr_eq(jp_seq_next_ready(seq, 0), &a);
    ck_assert_int_eq(jp_seq_done(seq, &a), JP_OK);
    ck_assert_int_eq(jp_seq_commit_offsets(seq, collect_commit, &c), 1);
    ck_assert_int_eq(c.part[0], 2);
    ck_assert_int_eq(c.off[0], 41);
    jp_seq_destroy(seq, NULL, NULL);
}
END_TEST

START_TEST(pause_resume_hysteresis)
{
    jp_seq_t *seq = mk(4, 2, 0);
    item_t it[6];
    for (int i = 0; i < 6; i++)
        it[i] = (item_t){NULL, 0, i, {0}, 0};
    for (int i = 0; i < 3; i++)
        add(seq, &it[i]);
    ck_assert_int_eq(jp_seq_want_pause(seq), 0);
    add(seq, &it[3]);
    ck_assert_int_eq(jp_seq_want_pause(seq), 1);
    add(seq, &it[4]); /* the bound pauses fetching, it never refuses an add */
    ck_assert_int_eq(stats(seq).buffered, 5);
    for (int i = 0; i < 5; i++)
        ck_assert_ptr_eq(jp_seq_next_ready(seq, 0), &it[i]);
    ck_assert_int_eq(jp_seq_done(seq, &it[0]), JP_OK);
    ck_assert_int_eq(jp_seq_done(seq, &it[1]), JP_OK);
    ck_assert_int_eq(jp_seq_want_pause(seq), 1); /* 3 held: not below 2 */
    ck_assert_int_eq(jp_seq_done(seq, &it[2]), JP_OK);
    ck_assert_int_eq(jp_seq_want_pause(seq), 1); /* 2 held: still not below 2 */
    ck_assert_int_eq(stats(seq).paused, 1);
    ck_assert_int_eq(jp_seq_done(seq, &it[3]), JP_OK);
    ck_assert_int_eq(jp_seq_want_pause(seq), 0);
    add(seq, &it[5]);
    ck_assert_int_eq(jp_seq_want_pause(seq), 0); /* 2 held: below the high mark */
    jp_seq_destroy(seq, NULL, NULL);

    /* Defaults: 10000 / 5000. */
    seq = mk(0, 0, 0);
    item_t *many = calloc(10000, sizeof(*many));
    for (int i = 0; i < 10000; i++) {
        many[i] = (item_t){NULL, 0, i, {0}, 0};
        ck_assert_int_eq(jp_seq_want_pause(seq), 0);
        add(seq, &many[i]);
    }
    ck_assert_int_eq(jp_seq_want_pause(seq), 1);
    jp_seq_destroy(seq, NULL, NULL);
    free(many);
}
END_TEST

/* Items allocated on the heap and freed by the callback, so that ASan sees a
 * double hand-back as a double free. */
typedef struct owned {
    int dropped, running, orphaned;
} owned_t;

static void free_dropped_cb(void *item, jp_seq_handback_t how, void *opaque)
{
    owned_t *o = opaque;
    if (how == JP_SEQ_DROPPED) {
        o->dropped++;
        free(item);
    } else if (how == JP_SEQ_RUNNING) {
        o->running++;
    } else {
        o->orphaned++;
    }
}

static item_t *new_item(const char *key, int32_t part, int64_t offset)
{
    item_t *it = calloc(1, sizeof(*it));
    *it = (item_t){key, part, offset, {0}, 0};
    return it;
}

START_TEST(revoke_hands_back_and_forgets)
{
    jp_seq_t *seq = mk(0, 0, 0);
    item_t *a1 = new_item("A", 0, 0), *a2 = new_item("A", 0, 1), *b1 = new_item("B", 0, 2);
    item_t *c1 = new_item("C", 0, 3), *d1 = new_item("D", 0, 4), *f1 = new_item("F", 0, 5);
    item_t *g1 = new_item("G", 0, 6), *e1 = new_item("E", 1, 0);
    item_t *all[] = {a1, a2, b1, c1, d1, f1, g1, e1};
    for (size_t i = 0; i < 8; i++)
        add(seq, all[i]);
    /* Running: a1 b1 c1 d1 f1 g1 e1; a2 waits behind a1. */
    for (int i = 0; i < 7; i++)
        ck_assert_ptr_nonnull(jp_seq_next_ready(seq, 0));
    ck_assert_int_eq(jp_seq_park(seq, d1, 100), JP_OK);
    ck_assert_int_eq(jp_seq_done(seq, c1), JP_OK);
    free(c1);

    owned_t o = {0};
    ck_assert_int_eq(jp_seq_revoke_start(seq, 0, free_dropped_cb, &o), 4);
    ck_assert_int_eq(o.dropped, 2); /* a2 (waiting) and d1 (parked) */
    ck_assert_int_eq(o.running, 4); /* a1 b1 f1 g1 */
    ck_assert_int_eq(stats(seq).parked, 0);
    ck_assert_int_eq(jp_seq_next_wakeup_ms(seq), -1);
    ck_assert_ptr_null(jp_seq_next_ready(seq, 1000));

    char err[256] = "";
    item_t late = {"Z", 0, 9, {0}, 0};
    ck_assert_int_eq(jp_seq_add(seq, 0, 9, "Z", 1, &late, err, sizeof(err)), JP_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "revoked"));

    /* In-flight items of a revoking partition still move its offset on... */
    ck_assert_int_eq(commit(seq, 0), 0);
    ck_assert_int_eq(jp_seq_done(seq, a1), JP_OK);
    ck_assert_int_eq(jp_seq_done(seq, b1), JP_OK);
    /* ...but never past what was dropped (a2 at 1). */
    ck_assert_int_eq(commit(seq, 0), 1);
    jp_seq_partition_stats_t ps;
    ck_assert_int_eq(jp_seq_partition_stats(seq, 0, &ps), 1);
    ck_assert_int_eq(ps.revoking, 1);
    ck_assert_int_eq(ps.lowest_unfinished, 5);
    ck_assert_int_eq(ps.commit_offset, 1);

    int64_t final = -2;
    memset(&o, 0, sizeof(o));
    ck_assert_int_eq(jp_seq_revoke_finish(seq, 0, free_dropped_cb, &o, &final), 1);
    ck_assert_int_eq(final, 1);
    ck_assert_int_eq(o.orphaned, 2); /* f1, g1 */
    ck_assert_int_eq(o.dropped + o.running, 0);
    jp_seq_stats_t st = stats(seq);
    ck_assert_int_eq(st.orphaned, 2);
    ck_assert_int_eq(st.in_flight, 3); /* f1 g1 e1 */
    ck_assert_int_eq(st.partitions, 1);
    ck_assert_int_eq(jp_seq_partition_stats(seq, 0, &ps), 0);
    ck_assert_int_eq(commit(seq, 0), -1);

    /* Re-assigned: the events are read again from the committed offset. */
    item_t *a2b = new_item("A", 0, 1), *f1b = new_item("F", 0, 5), *g1b = new_item("G", 0, 6);
    add(seq, a2b);
    add(seq, f1b);
    add(seq, g1b);
    /* The orphans keep F and G busy: their copies wait. */
    ck_assert_ptr_eq(jp_seq_next_ready(seq, 0), a2b);
    ck_assert_ptr_null(jp_seq_next_ready(seq, 0));
    ck_assert_int_eq(commit(seq, 0), 1);
    ck_assert_int_eq(jp_seq_done(seq, f1), JP_OK); /* finished late: only released */
    ck_assert_int_eq(commit(seq, 0), -1);
    ck_assert_ptr_eq(jp_seq_next_ready(seq, 0), f1b);
    ck_assert_int_eq(jp_seq_park(seq, g1, 500), JP_ERR_NOT_FOUND); /* orphan: not retried */
    ck_assert_ptr_eq(jp_seq_next_ready(seq, 0), g1b);
    ck_assert_int_eq(stats(seq).orphaned, 0);
    ck_assert_int_eq(jp_seq_done(seq, f1), JP_ERR_INVALID); /* already released */
    ck_assert_int_eq(jp_seq_done(seq, a2b), JP_OK);
    ck_assert_int_eq(jp_seq_done(seq, f1b), JP_OK);
    ck_assert_int_eq(jp_seq_done(seq, g1b), JP_OK);
    ck_assert_int_eq(commit(seq, 0), 7);

    /* Partition 1 was never touched. */
    ck_assert_int_eq(jp_seq_done(seq, e1), JP_OK);
    ck_assert_int_eq(commit(seq, 1), 1);
    ck_assert_int_eq(stats(seq).buffered, 0);
    jp_seq_destroy(seq, NULL, NULL);
    item_t *left[] = {a1, b1, f1, g1, e1, a2b, f1b, g1b};
    for (size_t i = 0; i < 8; i++)
        free(left[i]);
}
END_TEST

START_TEST(revoke_finish_alone_and_park_while_revoking)
{
    jp_seq_t *seq = mk(0, 0, 0);
    item_t *a = new_item("A", 3, 10), *b = new_item("B", 3, 11), *a2 = new_item("A", 3, 12);
    item_t *c = new_item("C", 3, 13);
    add(seq, a);
    add(seq, b);
    add(seq, a2);
    add(seq, c);
    ck_assert_ptr_eq(jp_seq_next_ready(seq, 0), a);
    ck_assert_ptr_eq(jp_seq_next_ready(seq, 0), b);
    ck_assert_ptr_eq(jp_seq_next_ready(seq, 0), c);
    ck_assert_int_eq(jp_seq_done(seq, c), JP_OK);
    free(c);

    /* Step 1, then an in-flight item fails retriably: it is handed back and
     * the commit offset stays at it even though everything else finishes. */
    owned_t o = {0};
    ck_assert_int_eq(jp_seq_revoke_start(seq, 3, free_dropped_cb, &o), 2);
    ck_assert_int_eq(o.dropped, 1); /* a2 */
    ck_assert_int_eq(jp_seq_park(seq, a, 100), JP_ERR_NOT_FOUND);
    ck_assert_int_eq(jp_seq_done(seq, b), JP_OK);
    ck_assert_int_eq(commit(seq, 3), 10);
    int64_t final;
    ck_assert_int_eq(jp_seq_revoke_finish(seq, 3, NULL, NULL, &final), 1);
    ck_assert_int_eq(final, 10);
    free(a);
    free(b);

    /* Finish without start: waiting ones dropped, running ones orphaned,
     * nothing reported as RUNNING. */
    item_t *x = new_item("X", 3, 10), *x2 = new_item("X", 3, 11), *y = new_item(NULL, 3, 12);
    add(seq, x);
    add(seq, x2);
    add(seq, y);
    ck_assert_ptr_eq(jp_seq_next_ready(seq, 0), x);
    memset(&o, 0, sizeof(o));
    ck_assert_int_eq(jp_seq_revoke_finish(seq, 3, free_dropped_cb, &o, &final), 1);
    ck_assert_int_eq(final, 10);
    ck_assert_int_eq(o.dropped, 2);
    ck_assert_int_eq(o.running, 0);
    ck_assert_int_eq(o.orphaned, 1);
    ck_assert_int_eq(jp_seq_revoke_finish(seq, 3, NULL, NULL, &final), 0); /* unknown now */
    ck_assert_int_eq(final, -1);
    ck_assert_int_eq(jp_seq_revoke_start(seq, 3, NULL, NULL), 0);
    ck_assert_int_eq(jp_seq_done(seq, x), JP_OK);
    free(x);
    ck_assert_int_eq(stats(seq).buffered, 0);
    ck_assert_int_eq(stats(seq).subjects, 0);

    /* A partition that only saw skipped offsets still has a final offset. */
    ck_assert_int_eq(jp_seq_add_skipped(seq, 4, 99, NULL, 0), JP_OK);
    ck_assert_int_eq(jp_seq_revoke_finish(seq, 4, NULL, NULL, &final), 1);
    ck_assert_int_eq(final, 100);
    jp_seq_destroy(seq, NULL, NULL);
}
END_TEST

START_TEST(destroy_hands_back_everything)
{
    jp_seq_t *seq = mk(0, 0, 0);
    item_t it[] = {{"A", 0, 0, {0}, 0}, {"A", 0, 1, {0}, 0}, {"B", 0, 2, {0}, 0},
                   {"C", 1, 0, {0}, 0}, {"D", 1, 1, {0}, 0}, {NULL, 1, 2, {0}, 0}};
    for (size_t i = 0; i < 6; i++)
        add(seq, &it[i]);
    ck_assert_ptr_eq(jp_seq_next_ready(seq, 0), &it[0]); /* running */
    ck_assert_ptr_eq(jp_seq_next_ready(seq, 0), &it[2]);
    ck_assert_int_eq(jp_seq_park(seq, &it[2], 10), JP_OK); /* parked */
    ck_assert_ptr_eq(jp_seq_next_ready(seq, 0), &it[3]);
    int64_t final;
    int n = 0;
    ck_assert_int_eq(jp_seq_revoke_finish(seq, 1, record_cb, &n, &final), 1); /* C orphaned */
    ck_assert_int_eq(final, 0);
    ck_assert_int_eq(n, 3);
    n = 0;
    jp_seq_destroy(seq, record_cb, &n);
    ck_assert_int_eq(n, 4); /* A0 running, A1, B parked, C orphan */
    ck_assert_int_eq(it[0].handed_back[JP_SEQ_ORPHANED], 1);
    ck_assert_int_eq(it[1].handed_back[JP_SEQ_DROPPED], 1);
    ck_assert_int_eq(it[2].handed_back[JP_SEQ_DROPPED], 1);
    ck_assert_int_eq(it[3].handed_back[JP_SEQ_ORPHANED], 2);
    ck_assert_int_eq(it[4].handed_back[JP_SEQ_DROPPED], 1);
    ck_assert_int_eq(it[5].handed_back[JP_SEQ_DROPPED], 1);
    jp_seq_destroy(NULL, NULL, NULL);
}
END_TEST

START_TEST(bad_input_is_refused)
{
    char err[256];
    jp_seq_opts_t bad = {10, 11, 0};
    ck_assert_ptr_null(jp_seq_new(&bad, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "resume_below"));
    bad = (jp_seq_opts_t){0, 0, (size_t)JP_SEQ_MAX_IN_FLIGHT + 1};
    ck_assert_ptr_null(jp_seq_new(&bad, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "max_in_flight"));

    jp_seq_t *seq = jp_seq_new(NULL, err, sizeof(err));
    ck_assert_ptr_nonnull(seq);
    item_t it = {"k", 0, 5, {0}, 0}, other = {"k", 0, 5, {0}, 0};
    ck_assert_int_eq(jp_seq_add(seq, -1, 0, "k", 1, &it, err, sizeof(err)), JP_ERR_INVALID);
    ck_assert_int_eq(jp_seq_add(seq, JP_SEQ_MAX_PARTITIONS, 0, "k", 1, &it, err, sizeof(err)),
                     JP_ERR_INVALID);
    ck_assert_int_eq(jp_seq_add(seq, 0, -1, "k", 1, &it, err, sizeof(err)), JP_ERR_INVALID);
    ck_assert_int_eq(jp_seq_add(seq, 0, 0, "k", 1, NULL, err, sizeof(err)), JP_ERR_INVALID);
    ck_assert_int_eq(jp_seq_add(seq, 0, 0, NULL, 3, &it, err, sizeof(err)), JP_ERR_INVALID);
    ck_assert_int_eq(jp_seq_add_skipped(seq, -3, 0, err, sizeof(err)), JP_ERR_INVALID);
    ck_assert_int_eq(stats(seq).partitions, 0);
    add(seq, &it);
    ck_assert_int_eq(jp_seq_add(seq, 0, 5, "k", 1, &other, err, sizeof(err)), JP_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "not above"));
    ck_assert_int_eq(jp_seq_add(seq, 0, 4, "k", 1, &other, err, sizeof(err)), JP_ERR_INVALID);
    ck_assert_int_eq(jp_seq_add_skipped(seq, 0, 5, err, sizeof(err)), JP_ERR_INVALID);
    ck_assert_int_eq(stats(seq).buffered, 1);

    /* done/park on things that are not in flight. */
    ck_assert_int_eq(jp_seq_done(seq, NULL), JP_ERR_INVALID);
    ck_assert_int_eq(jp_seq_done(seq, &other), JP_ERR_INVALID);
    ck_assert_int_eq(jp_seq_done(seq, &it), JP_ERR_INVALID); /* ready, not started */
    ck_assert_int_eq(jp_seq_park(seq, &it, 10), JP_ERR_INVALID);
    ck_assert_ptr_eq(jp_seq_next_ready(seq, 0), &it);
    ck_assert_int_eq(jp_seq_park(seq, &it, 10), JP_OK);
    ck_assert_int_eq(jp_seq_park(seq, &it, 10), JP_ERR_INVALID); /* parked, not in flight */
    ck_assert_int_eq(jp_seq_done(seq, &it), JP_ERR_INVALID);
    ck_assert_int_eq(stats(seq).buffered, 1);
    int64_t off;
    ck_assert_int_eq(jp_seq_commit_offset(seq, -1, &off), 0);
    jp_seq_partition_stats_t ps;
    ck_assert_int_eq(jp_seq_partition_stats(seq, -1, &ps), 0);
    jp_seq_destroy(seq, NULL, NULL);
}
END_TEST

START_TEST(many_subjects_keep_their_order)
{
    enum { SUBJECTS = 5000, PER = 4, N = SUBJECTS * PER, PARTS = 7 };
    jp_seq_t *seq = mk(N, 0, 300);
    static char keys[SUBJECTS][24];
    static item_t items[N];
    static int next_seq[SUBJECTS], running[SUBJECTS];
    memset(next_seq, 0, sizeof(next_seq));
    memset(running, 0, sizeof(running));
    for (int s = 0; s < SUBJECTS; s++)
        snprintf(keys[s], sizeof(keys[s]), "user-%d", s);
    /* Round r adds the r-th event of every subject, in a scrambled subject
     * order, spread over the partitions. */
    int64_t part_off[PARTS] = {0};
    for (int i = 0; i < N; i++) {
        int r = i / SUBJECTS, s = (int)(((long)(i % SUBJECTS) * 7919) % SUBJECTS);
        int part = (s + r) % PARTS;
        items[i] = (item_t){keys[s], part, part_off[part]++, {0}, s};
        if (jp_seq_add(seq, part, items[i].offset, keys[s], strlen(keys[s]), &items[i], NULL, 0))
            ck_abort_msg("add %d failed", i);
    }
    ck_assert_int_eq(stats(seq).subjects, SUBJECTS);
    size_t finished = 0;
    void *batch[300];
    while (finished < N) {
        size_t n = 0;
        void *p;
        while ((p = jp_seq_next_ready(seq, 0))) {
            item_t *it = p;
            if (running[it->subj]++)
                ck_abort_msg("two events of subject %d in flight", it->subj);
            batch[n++] = p;
        }
        ck_assert_uint_gt(n, 0);
        ck_assert_uint_le(n, 300);
        for (size_t k = 0; k < n; k++) {
            item_t *it = batch[n - 1 - k]; /* complete in reverse order */
            /* Started in add order: its index is the subject's next one. */
            int round = (int)((it - items) / SUBJECTS);
            if (round != next_seq[it->subj]++)
                ck_abort_msg("subject %d: event %d started out of order", it->subj, round);
            running[it->subj]--;
            if (jp_seq_done(seq, it) != JP_OK)
                ck_abort_msg("done failed");
            finished++;
        }
    }
    for (int p = 0; p < PARTS; p++)
        ck_assert_int_eq(commit(seq, p), part_off[p]);
    ck_assert_int_eq(stats(seq).subjects, 0);
    jp_seq_destroy(seq, NULL, NULL);
}
END_TEST

/* ---- randomized model test ---------------------------------------------
 *
 * Random adds, starts, dones, parks, clock ticks, commits and revokes
 * against a plain reference model; every invariant is checked after every
 * step. The model is deliberately naive (linear scans of small arrays). */

enum { MP = 4, MS = 24 };
enum { M_QUEUED, M_RUNNING, M_PARKED, M_GONE };

typedef struct mitem {
    int subject; /* -1: keyless */
    int32_t part;
    int64_t offset;
    int state;
    int orphan;
    int64_t until;
    int done_n, back_n;
} mitem_t;

typedef struct mvec {
    mitem_t **v;
    size_t n, cap;
} mvec_t;

typedef struct mlog {
    mitem_t *it;
    jp_seq_handback_t how;
} mlog_t;

typedef struct model {
    uint64_t rng;
    unsigned seed;
    size_t step;
    size_t max_buffered, resume_below, max_in_flight;
    int64_t now;
    mvec_t subj[MS], part[MP], live, all;
    int exists[MP], revoking[MP], paused;
    int64_t last[MP], floor[MP], reported[MP], restart[MP];
    mlog_t *log;
    size_t nlog, log_cap;
    size_t max_live;
} model_t;

static char mkeys[MS][16];

static void mv_push(mvec_t *m, mitem_t *it)
{
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 16;
        m->v = realloc(m->v, m->cap * sizeof(*m->v));
        if (!m->v)
            ck_abort_msg("out of memory");
    }
    m->v[m->n++] = it;
}

static long mv_index(const mvec_t *m, const void *it)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->v[i] == it)
            return (long)i;
    return -1;
}

static void mv_remove(mvec_t *m, mitem_t *it)
{
    long i = mv_index(m, it);
    if (i < 0)
        ck_abort_msg("model: item not in vector");
    memmove(m->v + i, m->v + i + 1, (m->n - (size_t)i - 1) * sizeof(*m->v));
    m->n--;
}

static uint64_t rnd(model_t *m)
{
    m->rng ^= m->rng >> 12;
    m->rng ^= m->rng << 25;
    m->rng ^= m->rng >> 27;
    return m->rng * UINT64_C(2685821657736338717);
}

static int rn(model_t *m, int n)
{
    return (int)(rnd(m) % (uint64_t)n);
}

/* Check's ck_assert records its position through a pipe on every call; the
 * model makes millions of checks, so only a failure reaches Check. */
#define MCHECK(cond)                                                                               \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ck_abort_msg("seed %u step %zu: %s (line %d)", m->seed, m->step, #cond, __LINE__);     \
    } while (0)

static int is_head(const model_t *m, const mitem_t *it)
{
    return it->subject < 0 || m->subj[it->subject].v[0] == it;
}

static int64_t model_commit(const model_t *m, int p)
{
    if (!m->exists[p])
        return -1;
    const mvec_t *v = &m->part[p];
    int64_t c = v->n ? v->v[0]->offset : m->last[p] >= 0 ? m->last[p] + 1 : -1;
    if (m->floor[p] != INT64_MAX && (c < 0 || m->floor[p] < c))
        c = m->floor[p];
    return c;
}

static void model_cb(void *item, jp_seq_handback_t how, void *opaque)
{
    model_t *m = opaque;
    if (m->nlog == m->log_cap) {
        m->log_cap = m->log_cap ? m->log_cap * 2 : 64;
        m->log = realloc(m->log, m->log_cap * sizeof(*m->log));
        if (!m->log)
            ck_abort_msg("out of memory");
    }
    m->log[m->nlog++] = (mlog_t){item, how};
}

/* The sequencer let go of it (done, dropped, or handed back by park). */
static void model_forget(model_t *m, mitem_t *it)
{
    if (it->subject >= 0)
        mv_remove(&m->subj[it->subject], it);
    if (!it->orphan)
        mv_remove(&m->part[it->part], it);
    mv_remove(&m->live, it);
    it->state = M_GONE;
}

static void model_check(model_t *m, jp_seq_t *seq)
{
    size_t running = 0, parked = 0, orphans = 0, subjects = 0, parts = 0;
    int64_t wake = -1;
    for (size_t i = 0; i < m->live.n; i++) {
        const mitem_t *it = m->live.v[i];
        running += it->state == M_RUNNING;
        orphans += it->orphan;
        if (it->state == M_PARKED) {
            parked++;
            if (wake < 0 || it->until < wake)
                wake = it->until;
        }
    }
    for (int s = 0; s < MS; s++) {
        subjects += m->subj[s].n > 0;
        /* Only the head of a subject may be started or parked. */
        for (size_t i = 1; i < m->subj[s].n; i++)
            MCHECK(m->subj[s].v[i]->state == M_QUEUED);
    }
    for (int p = 0; p < MP; p++)
        parts += m->exists[p];
    if (m->live.n > m->max_live)
        m->max_live = m->live.n;

    jp_seq_stats_t st = stats(seq);
    MCHECK(st.buffered == m->live.n);
    MCHECK(st.in_flight == running);
    MCHECK(st.in_flight <= m->max_in_flight);
    MCHECK(st.parked == parked);
    MCHECK(st.orphaned == orphans);
    MCHECK(st.subjects == subjects);
    MCHECK(st.partitions == parts);
    MCHECK(jp_seq_next_wakeup_ms(seq) == wake);

    for (int p = 0; p < MP; p++) {
        jp_seq_partition_stats_t ps;
        MCHECK(jp_seq_partition_stats(seq, p, &ps) == m->exists[p]);
        if (!m->exists[p])
            continue;
        const mvec_t *v = &m->part[p];
        size_t fl = 0;
        for (size_t i = 0; i < v->n; i++)
            fl += v->v[i]->state == M_RUNNING;
        int64_t lowest = v->n ? v->v[0]->offset : -1;
        MCHECK(ps.buffered == v->n);
        MCHECK(ps.in_flight == fl);
        MCHECK(ps.lowest_unfinished == lowest);
        MCHECK(ps.last_added == m->last[p]);
        MCHECK(ps.revoking == m->revoking[p]);
        MCHECK(ps.commit_offset == model_commit(m, p));
        /* The promise itself, independently of the model's formula. */
        MCHECK(lowest < 0 || ps.commit_offset <= lowest);
        MCHECK(ps.commit_offset <= m->floor[p]);
    }
}

static void op_add(model_t *m, jp_seq_t *seq)
{
    int p = rn(m, MP);
    char err[256];
    int64_t base = m->last[p] >= 0 ? m->last[p] + 1 : m->restart[p];
    if (m->revoking[p] || (m->last[p] >= 0 && rn(m, 40) == 0)) {
        /* Refused: the partition is being revoked, or the offset repeats. */
        mitem_t tmp = {0};
        int64_t off = m->revoking[p] ? base : m->last[p] - rn(m, 2);
        MCHECK(jp_seq_add(seq, p, off, "x", 1, &tmp, err, sizeof(err)) == JP_ERR_INVALID);
        return;
    }
    mitem_t *it = calloc(1, sizeof(*it));
    MCHECK(it != NULL);
    *it = (mitem_t){rn(m, 16) == 0 ? -1 : rn(m, MS), p, base + rn(m, 3), M_QUEUED, 0, 0, 0, 0};
    const char *key = it->subject < 0 ? NULL : mkeys[it->subject];
    jp_err_t rc = jp_seq_add(seq, p, it->offset, key, key ? strlen(key) : 0, it, err, sizeof(err));
    if (rc != JP_OK)
        ck_abort_msg("seed %u step %zu: add: %s", m->seed, m->step, err);
    mv_push(&m->all, it);
    mv_push(&m->live, it);
    mv_push(&m->part[p], it);
    if (it->subject >= 0)
        mv_push(&m->subj[it->subject], it);
    m->exists[p] = 1;
    m->last[p] = it->offset;
}

static void op_skip(model_t *m, jp_seq_t *seq)
{
    int p = rn(m, MP);
    if (m->revoking[p])
        return;
    int64_t off = (m->last[p] >= 0 ? m->last[p] + 1 : m->restart[p]) + rn(m, 2);
    MCHECK(jp_seq_add_skipped(seq, p, off, NULL, 0) == JP_OK);
    m->exists[p] = 1;
    m->last[p] = off;
}

/* One next_ready call; returns the started item or NULL, checked. */
static mitem_t *op_next(model_t *m, jp_seq_t *seq)
{
    size_t running = 0;
    int eligible = 0;
    for (size_t i = 0; i < m->live.n; i++) {
        mitem_t *it = m->live.v[i];
        if (it->state == M_PARKED && it->until <= m->now)
            it->state = M_QUEUED; /* next_ready wakes every due item */
        running += it->state == M_RUNNING;
    }
    for (size_t i = 0; i < m->live.n; i++)
        eligible |= m->live.v[i]->state == M_QUEUED && is_head(m, m->live.v[i]);
    void *got = jp_seq_next_ready(seq, m->now);
    if (running >= m->max_in_flight || !eligible) {
        MCHECK(got == NULL);
        return NULL;
    }
    MCHECK(got != NULL); /* something may start: it must be handed out */
    MCHECK(mv_index(&m->live, got) >= 0);
    mitem_t *it = got;
    /* Per-subject order: only the oldest held event of its subject starts,
     * and only when nothing else of the subject is running or parked. */
    MCHECK(it->state == M_QUEUED);
    MCHECK(is_head(m, it));
    it->state = M_RUNNING;
    return it;
}

static mitem_t *pick_running(model_t *m)
{
    size_t n = 0;
    for (size_t i = 0; i < m->live.n; i++)
        n += m->live.v[i]->state == M_RUNNING;
    if (!n)
        return NULL;
    size_t k = (size_t)rn(m, (int)n);
    for (size_t i = 0; i < m->live.n; i++)
        if (m->live.v[i]->state == M_RUNNING && k-- == 0)
            return m->live.v[i];
    return NULL;
}

static void finish_item(model_t *m, jp_seq_t *seq, mitem_t *it)
{
    MCHECK(is_head(m, it));
    MCHECK(jp_seq_done(seq, it) == JP_OK);
    MCHECK(jp_seq_done(seq, it) == JP_ERR_INVALID); /* exactly once */
    it->done_n++;
    model_forget(m, it);
}

static void op_done(model_t *m, jp_seq_t *seq)
{
    mitem_t *it = pick_running(m);
    if (it)
        finish_item(m, seq, it);
}

static void op_park(model_t *m, jp_seq_t *seq)
{
    mitem_t *it = pick_running(m);
    if (!it)
        return;
    int64_t until = m->now + rn(m, 40);
    jp_err_t rc = jp_seq_park(seq, it, until);
    if (it->orphan || m->revoking[it->part]) {
        MCHECK(rc == JP_ERR_NOT_FOUND);
        if (!it->orphan && it->offset < m->floor[it->part])
            m->floor[it->part] = it->offset;
        it->back_n++;
        model_forget(m, it);
        return;
    }
    MCHECK(rc == JP_OK);
    it->state = M_PARKED;
    it->until = until;
}

static void op_commit(model_t *m, jp_seq_t *seq)
{
    int p = rn(m, MP);
    int64_t want = model_commit(m, p), got;
    int changed = jp_seq_commit_offset(seq, p, &got);
    if (want >= 0 && want != m->reported[p]) {
        MCHECK(changed == 1 && got == want);
        MCHECK(want >= m->reported[p]); /* never moves back within an assignment */
        m->reported[p] = want;
    } else {
        MCHECK(changed == 0 && got == -1);
    }
}

static void op_pause(model_t *m, jp_seq_t *seq)
{
    if (!m->paused && m->live.n >= m->max_buffered)
        m->paused = 1;
    else if (m->paused && m->live.n < m->resume_below)
        m->paused = 0;
    MCHECK(jp_seq_want_pause(seq) == m->paused);
}

/* Applies the drop of step 1 to the model, appending the expected log. */
static void model_drop(model_t *m, int p, int report_running, mlog_t *want, size_t *nwant)
{
    mvec_t copy = {0};
    for (size_t i = 0; i < m->part[p].n; i++)
        mv_push(&copy, m->part[p].v[i]);
    for (size_t i = 0; i < copy.n; i++) {
        mitem_t *it = copy.v[i];
        if (it->state == M_RUNNING) {
            if (report_running)
                want[(*nwant)++] = (mlog_t){it, JP_SEQ_RUNNING};
            continue;
        }
        want[(*nwant)++] = (mlog_t){it, JP_SEQ_DROPPED};
        if (it->offset < m->floor[p])
            m->floor[p] = it->offset;
        it->back_n++;
        model_forget(m, it);
    }
    free(copy.v);
    m->revoking[p] = 1;
}

static void check_log(model_t *m, const mlog_t *want, size_t nwant)
{
    MCHECK(m->nlog == nwant);
    for (size_t i = 0; i < nwant; i++)
        MCHECK(m->log[i].it == want[i].it && m->log[i].how == want[i].how);
    m->nlog = 0;
}

static void revoke_finish(model_t *m, jp_seq_t *seq, int p)
{
    size_t cap = m->part[p].n + 1;
    mlog_t *want = calloc(cap, sizeof(*want));
    size_t nwant = 0;
    if (!m->revoking[p])
        model_drop(m, p, 0, want, &nwant);
    int64_t final_want = model_commit(m, p), final = -2;
    for (size_t i = 0; i < m->part[p].n; i++) {
        mitem_t *it = m->part[p].v[i];
        MCHECK(it->state == M_RUNNING);
        want[nwant++] = (mlog_t){it, JP_SEQ_ORPHANED};
        it->orphan = 1;
    }
    int rc = jp_seq_revoke_finish(seq, p, model_cb, m, &final);
    MCHECK(rc == (final_want >= 0) && final == final_want);
    check_log(m, want, nwant);
    free(want);
    m->part[p].n = 0;
    m->exists[p] = m->revoking[p] = 0;
    m->last[p] = -1;
    m->floor[p] = INT64_MAX;
    m->reported[p] = -1;
    if (final >= 0)
        m->restart[p] = final; /* the next owner reads from the committed offset */
}

static void op_revoke(model_t *m, jp_seq_t *seq)
{
    int p = rn(m, MP);
    if (!m->exists[p]) {
        int64_t final;
        MCHECK(jp_seq_revoke_start(seq, p, model_cb, m) == 0);
        MCHECK(jp_seq_revoke_finish(seq, p, model_cb, m, &final) == 0 && final == -1);
        MCHECK(m->nlog == 0);
        return;
    }
    if (m->revoking[p] || rn(m, 2)) {
        revoke_finish(m, seq, p);
        return;
    }
    mlog_t *want = calloc(m->part[p].n + 1, sizeof(*want));
    size_t nwant = 0, running = 0;
    for (size_t i = 0; i < m->part[p].n; i++)
        running += m->part[p].v[i]->state == M_RUNNING;
    model_drop(m, p, 1, want, &nwant);
    MCHECK(jp_seq_revoke_start(seq, p, model_cb, m) == running);
    check_log(m, want, nwant);
    free(want);
}

static void model_run(unsigned seed, size_t steps)
{
    model_t mm = {0}, *m = &mm;
    m->seed = seed;
    m->rng = (uint64_t)seed * UINT64_C(0x9e3779b97f4a7c15) + 1;
    m->max_in_flight = 1 + (size_t)rn(m, 12);
    m->max_buffered = 10 + (size_t)rn(m, 90);
    m->resume_below = 1 + (size_t)rn(m, (int)m->max_buffered);
    for (int p = 0; p < MP; p++) {
        m->last[p] = m->reported[p] = -1;
        m->floor[p] = INT64_MAX;
        m->restart[p] = rn(m, 1000);
    }
    jp_seq_t *seq = mk(m->max_buffered, m->resume_below, m->max_in_flight);

    /* Per-seed weights: some seeds finish work faster than it arrives, others
     * build deep subject queues; revokes are rare or frequent. */
    int w_done = 20 + rn(m, 40), w_revoke = 1 + rn(m, 4);
    int cut[] = {50, 4, 56, w_done, 16, 10, 8, 4, w_revoke};
    int total = 0;
    for (size_t i = 0; i < sizeof(cut) / sizeof(*cut); i++)
        cut[i] = total += cut[i];
    for (m->step = 0; m->step < steps; m->step++) {
        int r = rn(m, total);
        if (r < cut[0])
            op_add(m, seq);
        else if (r < cut[1])
            op_skip(m, seq);
        else if (r < cut[2])
            op_next(m, seq);
        else if (r < cut[3])
            op_done(m, seq);
        else if (r < cut[4])
            op_park(m, seq);
        else if (r < cut[5])
            m->now += rn(m, 30);
        else if (r < cut[6])
            op_commit(m, seq);
        else if (r < cut[7])
            op_pause(m, seq);
        else
            op_revoke(m, seq);
        model_check(m, seq);
    }

    /* Drain: finish the revokes under way, then run everything to done,
     * moving the clock to each wake-up. */
    for (int p = 0; p < MP; p++)
        if (m->revoking[p])
            revoke_finish(m, seq, p);
    while (m->live.n) {
        mitem_t *it;
        while ((it = op_next(m, seq)))
            ;
        while ((it = pick_running(m)))
            finish_item(m, seq, it);
        int64_t wake = jp_seq_next_wakeup_ms(seq);
        if (wake > m->now)
            m->now = wake;
        model_check(m, seq);
        m->step++;
    }
    for (int p = 0; p < MP; p++)
        op_commit(m, seq), op_commit(m, seq);

    /* Nothing lost: each item was done exactly once or handed back once. */
    size_t done = 0;
    for (size_t i = 0; i < m->all.n; i++) {
        mitem_t *it = m->all.v[i];
        MCHECK(it->done_n + it->back_n == 1);
        done += (size_t)it->done_n;
    }
    jp_seq_stats_t st = stats(seq);
    MCHECK(st.added == m->all.n);
    MCHECK(st.done == done);
    MCHECK(st.buffered == 0 && st.subjects == 0 && st.ready == 0);
    jp_seq_destroy(seq, model_cb, m);
    MCHECK(m->nlog == 0);

    for (size_t i = 0; i < m->all.n; i++)
        free(m->all.v[i]);
    for (int s = 0; s < MS; s++)
        free(m->subj[s].v);
    for (int p = 0; p < MP; p++)
        free(m->part[p].v);
    free(m->live.v);
    free(m->all.v);
    free(m->log);
    if (getenv("JP_SEQ_VERBOSE"))
        printf("model seed %u: %zu items, max %zu held, in_flight<=%zu, parks %llu, "
               "dropped %llu\n",
               seed, (size_t)st.added, m->max_live, m->max_in_flight, (unsigned long long)st.parks,
               (unsigned long long)st.dropped);
}

START_TEST(randomized_model)
{
    for (int s = 0; s < MS; s++)
        snprintf(mkeys[s], sizeof(mkeys[s]), "s%d", s);
    /* JP_SEQ_SEED=n reproduces one seed; JP_SEQ_STEPS sets the length. */
    const char *env_seed = getenv("JP_SEQ_SEED"), *env_steps = getenv("JP_SEQ_STEPS");
    size_t steps = env_steps ? (size_t)strtoul(env_steps, NULL, 10) : 20000;
    if (env_seed) {
        model_run((unsigned)strtoul(env_seed, NULL, 10), steps);
        return;
    }
    for (unsigned seed = 1; seed <= 16; seed++)
        model_run(seed, steps);
}
END_TEST

/* ---- informational micro-benchmark ------------------------------------ */

START_TEST(micro_benchmark)
{
    enum { EVENTS = 1000000, SUBJECTS = 5000, PARTS = 8, HELD = 10000, POOL = 16384 };
    jp_seq_t *seq = mk(2 * HELD, 0, 1000);
    static char keys[SUBJECTS][16];
    static size_t klen[SUBJECTS];
    static item_t pool[POOL];
    static int free_idx[POOL];
    for (int s = 0; s < SUBJECTS; s++)
        klen[s] = (size_t)snprintf(keys[s], sizeof(keys[s]), "user-%05d", s);
    int nfree = 0;
    for (int i = POOL - 1; i >= 0; i--)
        free_idx[nfree++] = i;
    int64_t offs[PARTS] = {0}, now = 0;
    uint64_t r = UINT64_C(88172645463325252);
    size_t added = 0, finished = 0, parks = 0, bad = 0;
    void *batch[1000];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (finished < EVENTS) {
        while (added < EVENTS && added - finished < HELD) {
            r ^= r << 13, r ^= r >> 7, r ^= r << 17;
            int s = (int)(r % SUBJECTS), p = s % PARTS;
            item_t *it = &pool[free_idx[--nfree]];
            it->subj = s;
            bad += jp_seq_add(seq, p, offs[p]++, keys[s], klen[s], it, NULL, 0) != JP_OK;
            added++;
        }
        size_t n = 0;
        void *p;
        while ((p = jp_seq_next_ready(seq, now)))
            batch[n++] = p;
        for (size_t k = 0; k < n; k++) {
            r ^= r << 13, r ^= r >> 7, r ^= r << 17;
            if (r % 100 == 0) {
                bad += jp_seq_park(seq, batch[k], now + 2) != JP_OK;
                parks++;
                continue;
            }
            bad += jp_seq_done(seq, batch[k]) != JP_OK;
            free_idx[nfree++] = (int)((item_t *)batch[k] - pool);
            finished++;
        }
        now++;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("sequencer micro-benchmark: %d events (add+start+done, %zu parks), %d subjects, "
           "%d partitions, up to %d held: %.3f s, %.0f events/s\n",
           EVENTS, parks, SUBJECTS, PARTS, HELD, secs, EVENTS / secs);
    ck_assert_uint_eq(bad, 0);
    for (int p = 0; p < PARTS; p++)
        ck_assert_int_eq(commit(seq, p), offs[p]);
    ck_assert_int_eq(stats(seq).buffered, 0);
    jp_seq_destroy(seq, NULL, NULL);
}
END_TEST

static Suite *sequencer_suite(void)
{
    Suite *s = suite_create("sequencer");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, fifo_per_subject);
    tcase_add_test(tc, parallel_subjects_in_one_partition);
    tcase_add_test(tc, same_key_across_partitions_is_one_subject);
    tcase_add_test(tc, keyless_items_are_independent);
    tcase_add_test(tc, max_in_flight_is_respected);
    tcase_add_test(tc, park_blocks_only_its_subject);
    tcase_add_test(tc, parked_items_wake_in_deadline_order);
    tcase_add_test(tc, parked_order_survives_removals);
    tcase_add_test(tc, commit_never_passes_unfinished);
    tcase_add_test(tc, commit_offsets_reports_only_changes);
    tcase_add_test(tc, pause_resume_hysteresis);
    tcase_add_test(tc, revoke_hands_back_and_forgets);
    tcase_add_test(tc, revoke_finish_alone_and_park_while_revoking);
    tcase_add_test(tc, destroy_hands_back_everything);
    tcase_add_test(tc, bad_input_is_refused);
    suite_add_tcase(s, tc);
    TCase *big = tcase_create("scale");
    tcase_set_timeout(big, 300); /* sanitizer builds are several times slower */
    tcase_add_test(big, many_subjects_keep_their_order);
    tcase_add_test(big, randomized_model);
    tcase_add_test(big, micro_benchmark);
    suite_add_tcase(s, big);
    return s;
}

JP_CHECK_MAIN(sequencer_suite)
