/* Timer thread that resumes suspended MHD connections at a deadline.
 *
 * Latency faults, hanging responses and slow bodies park a connection here
 * instead of sleeping, so the server threads stay free. Invariant: an entry
 * exists only while its connection is suspended, so a connection never
 * completes (and its request state is never freed) while it is parked. At
 * shutdown every parked connection is resumed, because libmicrohttpd refuses
 * to stop a daemon that still has suspended connections. */
#include "emu_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

typedef struct emu_tentry {
    int64_t due;
    struct MHD_Connection *conn;
} emu_tentry_t;

struct emu_timer {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    bool started;
    bool stopping;
    emu_tentry_t *heap;
    size_t n, cap;
};

int64_t emu_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void emu_heap_up(emu_timer_t *t, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (t->heap[p].due <= t->heap[i].due)
            break;
        emu_tentry_t tmp = t->heap[p];
        t->heap[p] = t->heap[i];
        t->heap[i] = tmp;
        i = p;
    }
}

static void emu_heap_down(emu_timer_t *t, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < t->n && t->heap[l].due < t->heap[m].due)
            m = l;
        if (r < t->n && t->heap[r].due < t->heap[m].due)
            m = r;
        if (m == i)
            return;
        emu_tentry_t tmp = t->heap[m];
        t->heap[m] = t->heap[i];
        t->heap[i] = tmp;
        i = m;
    }
}

static emu_tentry_t emu_heap_pop(emu_timer_t *t)
{
    emu_tentry_t top = t->heap[0];
    t->heap[0] = t->heap[--t->n];
    emu_heap_down(t, 0);
    return top;
}

static void *emu_timer_main(void *arg)
{
    emu_timer_t *t = arg;
    pthread_mutex_lock(&t->mu);
    while (!t->stopping) {
        if (t->n == 0) {
            pthread_cond_wait(&t->cv, &t->mu);
            continue;
        }
        int64_t now = emu_mono_ms();
        if (t->heap[0].due <= now) {
            emu_tentry_t e = emu_heap_pop(t);
            MHD_resume_connection(e.conn);
            continue;
        }
        int64_t wait = t->heap[0].due - now;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += wait / 1000;
        ts.tv_nsec += (long)(wait % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        int rc = pthread_cond_timedwait(&t->cv, &t->mu, &ts);
        (void)rc;
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

emu_timer_t *emu_timer_new(void)
{
    emu_timer_t *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&t->mu, NULL);
    if (pthread_create(&t->thread, NULL, emu_timer_main, t) != 0) {
        pthread_cond_destroy(&t->cv);
        pthread_mutex_destroy(&t->mu);
        free(t);
        return NULL;
    }
    t->started = true;
    return t;
}

bool emu_timer_park(emu_timer_t *t, struct MHD_Connection *conn, int64_t due_ms)
{
    pthread_mutex_lock(&t->mu);
    if (t->stopping) {
        pthread_mutex_unlock(&t->mu);
        return false;
    }
    if (t->n == t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 64;
        emu_tentry_t *nh = realloc(t->heap, ncap * sizeof(*nh));
        if (!nh) {
            pthread_mutex_unlock(&t->mu);
            return false;
        }
        t->heap = nh;
        t->cap = ncap;
    }
    MHD_suspend_connection(conn);
    t->heap[t->n].due = due_ms;
    t->heap[t->n].conn = conn;
    emu_heap_up(t, t->n);
    t->n++;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    return true;
}

void emu_timer_shutdown(emu_timer_t *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->mu);
    t->stopping = true;
    while (t->n > 0) {
        emu_tentry_t e = emu_heap_pop(t);
        MHD_resume_connection(e.conn);
    }
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    if (t->started) {
        pthread_join(t->thread, NULL);
        t->started = false;
    }
}

void emu_timer_destroy(emu_timer_t *t)
{
    if (!t)
        return;
    emu_timer_shutdown(t);
    free(t->heap);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    free(t);
}
