/* Test helper: run the embedded Kafka broker (tests/kafka/jiraprov-embedded-kafka) as a child
 * process on kernel-chosen loopback ports, stopped by PID; it gets SIGKILL if the test process
 * dies. The binary is found through $JP_BUILD_DIR or next to the test in the build tree
 * (../kafka/ from tests/unit/). */
#ifndef JP_TESTS_TESTKAFKA_H
#define JP_TESTS_TESTKAFKA_H

#include <sys/types.h>

typedef struct testkafka {
    pid_t pid;
    int out_fd;
    char bootstrap[256];
    char fifo[128];
} testkafka_t;

/* Starts a broker with the given --topic arguments ("name:partitions", NULL-terminated);
 * with_fifo adds a control FIFO. Returns 0 once it printed its bootstrap address, -1 after
 * 15 s. */
int testkafka_start(testkafka_t *b, const char *const *topics, int with_fifo);
/* SIGTERM, then SIGKILL after 5 s; removes the FIFO. */
void testkafka_stop(testkafka_t *b);
/* Writes a fault-injection command ("broker-down 1\n") to the control FIFO. 0 or -1. */
int testkafka_command(testkafka_t *b, const char *cmd);

#endif
