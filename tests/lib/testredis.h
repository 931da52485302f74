/* Test helper: run a real redis-server on a free loopback port (and
 * optionally a unix socket), stopped by PID. The child gets SIGKILL if the
 * test process dies, so a failing test leaves nothing running. */
#ifndef JP_TESTS_TESTREDIS_H
#define JP_TESTS_TESTREDIS_H

#include <sys/types.h>

typedef struct testredis {
    pid_t pid;
    int port;
    char unix_path[108];  /* "" unless requested */
    const char *password; /* for --requirepass, NULL for none */
} testredis_t;

/* A loopback TCP port that was free a moment ago. */
int testredis_free_port(void);
/* Start redis-server on t->port (0: pick one) and wait up to 5 s until it
 * answers. with_unix: also listen on a fresh unix socket path. 0 or -1. */
int testredis_start(testredis_t *t, int with_unix);
/* SIGKILL and reap (a crash, as far as clients can tell). */
void testredis_kill(testredis_t *t);

#endif
