/* Test helper: the embedded Kafka broker (tests/kafka/jiraprov-embedded-kafka) as a child
 * process; see testkafka.h. Included by the tests that need it, like the other helpers. */
#include "testkafka.h"

#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int64_t testkafka_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void testkafka_path(char *out, size_t n)
{
    const char *bd = getenv("JP_BUILD_DIR");
    char exe[PATH_MAX];
    ssize_t len;

    if (bd && *bd) {
        snprintf(out, n, "%s/tests/kafka/jiraprov-embedded-kafka", bd);
        if (access(out, X_OK) == 0)
            return;
    }
    len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    exe[len > 0 ? len : 0] = '\0';
    snprintf(out, n, "%s/../kafka/jiraprov-embedded-kafka", dirname(exe));
}

int testkafka_start(testkafka_t *b, const char *const *topics, int with_fifo)
{
    char path[PATH_MAX + 64], buf[512];
    const char *argv[40];
    int n = 0, fds[2];
    size_t got = 0;
    pid_t parent = getpid();
    int64_t deadline;

    memset(b, 0, sizeof(*b));
    b->out_fd = -1;
    testkafka_path(path, sizeof(path));
    argv[n++] = path;
    for (int i = 0; topics && topics[i] && n < 34; i++) {
        argv[n++] = "--topic";
        argv[n++] = topics[i];
    }
    if (with_fifo) {
        snprintf(b->fifo, sizeof(b->fifo), "/tmp/jp-test-kafka-%d-%lld.fifo", (int)getpid(),
                 (long long)testkafka_now_ms());
        argv[n++] = "--control-fifo";
        argv[n++] = b->fifo;
    }
    argv[n] = NULL;
    if (pipe(fds) != 0)
        return -1;
    b->pid = fork();
    if (b->pid < 0)
        return -1;
    if (b->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        dup2(fds[1], 1);
        if (!getenv("JP_TEST_VERBOSE")) {
            int devnull = open("/dev/null", O_WRONLY);
            if (devnull >= 0)
                dup2(devnull, 2);
        }
        close(fds[0]);
        close(fds[1]);
        execv(path, (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    b->out_fd = fds[0];
    deadline = testkafka_now_ms() + 15000;
    while (testkafka_now_ms() < deadline && got < sizeof(buf) - 1) {
        struct pollfd pfd = {.fd = b->out_fd, .events = POLLIN};
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        ssize_t r = read(b->out_fd, buf + got, sizeof(buf) - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
        buf[got] = '\0';
        char *line = strstr(buf, "bootstrap.servers=");
        char *nl = line ? strchr(line, '\n') : NULL;
        if (nl) {
            *nl = '\0';
            snprintf(b->bootstrap, sizeof(b->bootstrap), "%s", line + strlen("bootstrap.servers="));
            return 0;
        }
    }
    fprintf(stderr, "embedded kafka (%s) did not start\n", path);
    return -1;
}

void testkafka_stop(testkafka_t *b)
{
    if (b->pid > 0) {
        int64_t deadline = testkafka_now_ms() + 5000;
        kill(b->pid, SIGTERM);
        while (waitpid(b->pid, NULL, WNOHANG) == 0) {
            if (testkafka_now_ms() > deadline) {
                kill(b->pid, SIGKILL);
                waitpid(b->pid, NULL, 0);
                break;
            }
            struct timespec step = {.tv_nsec = 10 * 1000 * 1000};
            nanosleep(&step, NULL);
        }
        b->pid = 0;
    }
    if (b->out_fd >= 0)
        close(b->out_fd);
    b->out_fd = -1;
    if (b->fifo[0])
        unlink(b->fifo);
}

int testkafka_command(testkafka_t *b, const char *cmd)
{
    int64_t deadline = testkafka_now_ms() + 5000;
    int fd = -1;
    while ((fd = open(b->fifo, O_WRONLY | O_NONBLOCK)) < 0 && testkafka_now_ms() < deadline) {
        struct timespec step = {.tv_nsec = 20 * 1000 * 1000};
        nanosleep(&step, NULL); /* the broker opens its FIFO for reading at start-up */
    }
    if (fd < 0)
        return -1;
    ssize_t w = write(fd, cmd, strlen(cmd));
    close(fd);
    return w == (ssize_t)strlen(cmd) ? 0 : -1;
}
