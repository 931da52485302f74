/* jiraprov-bench-static-server: the reference for the emulator benchmark.
 *
 * A libmicrohttpd server in the same threading mode as the Jira emulator
 * (internal polling threads in a pool, epoll) that answers every request with
 * one fixed small JSON body, keep-alive allowed. Whatever rate it reaches on a
 * machine is the ceiling for any libmicrohttpd server there, so the
 * emulator's rate divided by this one shows what the emulator's own work
 * costs.
 *
 *   jiraprov-bench-static-server [--port N] [--threads N]
 *
 * Prints "listening on http://127.0.0.1:PORT" once ready (port 0, the
 * default, picks a free one) and runs until SIGINT or SIGTERM.
 *
 * Ownership: the single MHD_Response is created in main(), shared by all
 * connections (libmicrohttpd reference-counts it) and destroyed at exit.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <microhttpd.h>

/* About the size of a small Jira user body without avatars. */
static const char static_body[] =
    "{\"accountId\":\"712020:00000000-0000-4000-8000-000000000001\","
    "\"accountType\":\"atlassian\",\"active\":true,\"displayName\":\"Static Reference\","
    "\"emailAddress\":\"static@example.com\",\"timeZone\":\"UTC\",\"locale\":\"en_US\"}";

typedef struct static_opts {
    unsigned port;
    unsigned threads;
} static_opts;

/* Marks the first callback of a request; its address is the marker. */
static int first_call_marker;

static enum MHD_Result static_handler(void *cls, struct MHD_Connection *conn, const char *url,
                                      const char *method, const char *version,
                                      const char *upload_data, size_t *upload_data_size,
                                      void **req_cls)
{
    struct MHD_Response *resp = cls;

    /* Same request life cycle as the emulator: the first call only sets up,
     * request bodies are drained, the answer goes out on the last call. */
    if (*req_cls == NULL) {
        *req_cls = &first_call_marker;
        return MHD_YES;
    }
    if (*upload_data_size != 0) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    return MHD_queue_response(conn, MHD_HTTP_OK, resp);
}

static int parse_uint(const char *s, unsigned max, unsigned *out)
{
    char *end = NULL;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 0 || (unsigned long)v > max)
        return -1;
    *out = (unsigned)v;
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: jiraprov-bench-static-server [--port N] [--threads N]\n"
               "  --port N     TCP port on 127.0.0.1 (default 0: a free one)\n"
               "  --threads N  libmicrohttpd thread-pool size (default 2, as the emulator)\n");
}

/* Returns 0, 1 for --help, or -1 with a message printed. */
static int parse_args(int argc, char **argv, static_opts *o)
{
    o->port = 0;
    o->threads = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return 1;
        if (i + 1 >= argc) {
            fprintf(stderr, "static-server: unknown or incomplete option %s\n", a);
            return -1;
        }
        if (strcmp(a, "--port") == 0) {
            if (parse_uint(argv[++i], 65535, &o->port) != 0) {
                fprintf(stderr, "static-server: --port wants 0..65535, got %s\n", argv[i]);
                return -1;
            }
        } else if (strcmp(a, "--threads") == 0) {
            if (parse_uint(argv[++i], 64, &o->threads) != 0 || o->threads == 0) {
                fprintf(stderr, "static-server: --threads wants 1..64, got %s\n", argv[i]);
                return -1;
            }
        } else {
            fprintf(stderr, "static-server: unknown option %s\n", a);
            return -1;
        }
    }
    return 0;
}

/* Same flags and options as the emulator's emu_start() (tests/emulator/server.c):
 * a pool of internal polling threads on epoll, turbo mode, suspend/resume
 * allowed, the same connection limit, timeout and backlog. */
static struct MHD_Daemon *start_daemon(const static_opts *o, struct MHD_Response *resp)
{
    struct sockaddr_in addr;
    unsigned flags =
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO;

    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)o->port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, static_handler, resp,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                            MHD_OPTION_THREAD_POOL_SIZE, o->threads, MHD_OPTION_CONNECTION_LIMIT,
                            20000u, MHD_OPTION_CONNECTION_TIMEOUT, 300u,
                            MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_END);
}

int main(int argc, char **argv)
{
    static_opts opts;
    sigset_t stop;
    int sig = 0;
    int rc = parse_args(argc, argv, &opts);

    if (rc != 0) {
        usage(rc > 0 ? stdout : stderr);
        return rc > 0 ? 0 : 2;
    }

    /* Block the stop signals before the pool threads exist so that only
     * sigwait() below sees them. */
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct MHD_Response *resp = MHD_create_response_from_buffer(
        sizeof(static_body) - 1, (void *)static_body, MHD_RESPMEM_PERSISTENT);
    if (resp == NULL || MHD_add_response_header(resp, "Content-Type",
                                                "application/json;charset=UTF-8") != MHD_YES) {
        fprintf(stderr, "static-server: cannot build the response\n");
        return 1;
    }
    struct MHD_Daemon *d = start_daemon(&opts, resp);
    if (d == NULL) {
        fprintf(stderr, "static-server: cannot listen on 127.0.0.1:%u\n", opts.port);
        MHD_destroy_response(resp);
        return 1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    printf("listening on http://127.0.0.1:%u\n", info != NULL ? (unsigned)info->port : opts.port);
    fflush(stdout);

    while (sigwait(&stop, &sig) != 0)
        ;
    MHD_stop_daemon(d);
    MHD_destroy_response(resp);
    return 0;
}
