/* Test helper: see testloop.h. Included (as a .c) by the tests that use it. */
#include "testloop.h"

typedef struct testloop_waiter {
    int (*cond)(void *);
    void *arg;
    int expired;
} testloop_waiter_t;

static void testloop_on_guard(uv_timer_t *t)
{
    testloop_waiter_t *w = t->data;
    w->expired = 1;
    uv_stop(t->loop);
}

/* A callback may satisfy the condition during the timer phase of an iteration; stopping here
 * keeps that iteration from blocking in poll. */
static void testloop_on_prepare(uv_prepare_t *p)
{
    testloop_waiter_t *w = p->data;
    if (w->cond && w->cond(w->arg))
        uv_stop(p->loop);
}

int testloop_run_until(uv_loop_t *loop, int (*cond)(void *), void *arg, uint64_t ms)
{
    testloop_waiter_t w = {cond, arg, 0};
    uv_timer_t guard;
    uv_prepare_t prep;

    uv_timer_init(loop, &guard);
    uv_prepare_init(loop, &prep);
    guard.data = &w;
    prep.data = &w;
    uv_timer_start(&guard, testloop_on_guard, ms, 0);
    uv_prepare_start(&prep, testloop_on_prepare);
    while (!(cond && cond(arg)) && !w.expired)
        uv_run(loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_close((uv_handle_t *)&prep, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return cond ? cond(arg) : 0;
}

void testloop_run_for(uv_loop_t *loop, uint64_t ms)
{
    testloop_run_until(loop, NULL, NULL, ms);
}
