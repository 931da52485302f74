/* Test helper: run a libuv loop until a condition holds or a deadline passes, so that tests wait
 * for what they expect instead of sleeping. */
#ifndef JP_TESTS_TESTLOOP_H
#define JP_TESTS_TESTLOOP_H

#include <stdint.h>
#include <uv.h>

/* Runs `loop` until cond(arg) holds or `ms` milliseconds have passed and returns cond(arg) (0
 * when cond is NULL, which simply runs the loop for `ms`). The condition is checked before every
 * poll, so the loop stops in the iteration that met it. */
int testloop_run_until(uv_loop_t *loop, int (*cond)(void *), void *arg, uint64_t ms);
/* Runs `loop` for `ms` milliseconds: for what must NOT happen within a window. */
void testloop_run_for(uv_loop_t *loop, uint64_t ms);

#endif
