#include "testredis.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int testredis_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* One probe: connect, send PING, expect any RESP reply line. */
static int probe(const testredis_t *t)
{
    int fd;
    if (t->unix_path[0]) {
        struct sockaddr_un u = {.sun_family = AF_UNIX};
        snprintf(u.sun_path, sizeof(u.sun_path), "%s", t->unix_path);
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&u, sizeof(u)) != 0)
            goto fail;
    } else {
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)t->port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
            goto fail;
    }
    struct timeval tv = {.tv_sec = 1};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char buf[64];
    if (write(fd, "PING\r\n", 6) != 6 || read(fd, buf, sizeof(buf)) <= 0)
        goto fail;
    close(fd);
    return (buf[0] == '+' || buf[0] == '-') ? 0 : -1;
fail:
    if (fd >= 0)
        close(fd);
    return -1;
}

int testredis_start(testredis_t *t, int with_unix)
{
    if (t->port == 0)
        t->port = testredis_free_port();
    if (t->port <= 0)
        return -1;
    if (with_unix && t->unix_path[0] == '\0')
        snprintf(t->unix_path, sizeof(t->unix_path), "/tmp/jp-testredis-%d-%d.sock", (int)getpid(),
                 t->port);
    char port[16];
    snprintf(port, sizeof(port), "%d", t->port);
    const char *argv[32];
    int n = 0;
    argv[n++] = "redis-server";
    argv[n++] = "--port";
    argv[n++] = port;
    argv[n++] = "--bind";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--save";
    argv[n++] = "";
    argv[n++] = "--appendonly";
    argv[n++] = "no";
    argv[n++] = "--daemonize";
    argv[n++] = "no";
    argv[n++] = "--enable-debug-command";
    argv[n++] = "yes";
    argv[n++] = "--dir";
    argv[n++] = "/tmp";
    argv[n++] = "--loglevel";
    argv[n++] = "warning";
    if (t->password) {
        argv[n++] = "--requirepass";
        argv[n++] = t->password;
    }
    if (t->unix_path[0]) {
        argv[n++] = "--unixsocket";
        argv[n++] = t->unix_path;
    }
    argv[n] = NULL;

    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, 0);
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        execvp("redis-server", (char *const *)argv);
        _exit(127);
    }
    t->pid = pid;
    /* Poll until it answers, with a deadline. */
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        if (probe(t) == 0)
            return 0;
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            t->pid = 0;
            return -1;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - start.tv_sec > 5) {
            testredis_kill(t);
            return -1;
        }
        struct timespec step = {.tv_nsec = 10 * 1000 * 1000};
        nanosleep(&step, NULL);
    }
}

void testredis_kill(testredis_t *t)
{
    if (t->pid > 0) {
        kill(t->pid, SIGKILL);
        while (waitpid(t->pid, NULL, 0) < 0 && errno == EINTR)
            ;
        t->pid = 0;
    }
    if (t->unix_path[0])
        unlink(t->unix_path);
}
