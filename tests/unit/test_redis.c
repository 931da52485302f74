/* jp_redis against a real redis-server started by the test (free loopback
 * port, stopped by PID). Every wait runs the loop until a condition holds,
 * with a deadline. */
#include "jiraprov/log.h"
#include "jiraprov/redis.h"

#include "../lib/testloop.c"
#include "../lib/testredis.c"

#include <check.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* After destroy: close callbacks release memory; no handle may be left. */
static void finish_loop(uv_loop_t *loop)
{
    uv_run(loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(loop), 0);
}

/* ---- callback recorders ----------------------------------------------- */

typedef struct result {
    int calls;
    jp_err_t err;
    int has_reply;
    int type;
    long long integer;
    char str[512];
} result_t;

static void record(jp_redis_t *r, const redisReply *reply, jp_err_t err, const char *errstr,
                   void *opaque)
{
    result_t *res = opaque;
    res->calls++;
    res->err = err;
    res->has_reply = reply != NULL;
    ck_assert_ptr_nonnull(errstr);
    if (reply) {
        res->type = reply->type;
        res->integer = reply->integer;
        if (reply->str)
            snprintf(res->str, sizeof(res->str), "%s", reply->str);
        else if (reply->type == REDIS_REPLY_ARRAY && reply->elements > 0)
            res->integer = reply->element[0]->integer;
    } else {
        snprintf(res->str, sizeof(res->str), "%s", errstr);
    }
}

static int done1(void *arg)
{
    return ((result_t *)arg)->calls > 0;
}

typedef struct batch {
    result_t *res;
    int n;
} batch_t;

static int all_done(void *arg)
{
    batch_t *b = arg;
    for (int i = 0; i < b->n; i++)
        if (b->res[i].calls == 0)
            return 0;
    return 1;
}

typedef struct states {
    int ups, downs;
} states_t;

static void on_state(void *opaque, int connected)
{
    states_t *s = opaque;
    if (connected)
        s->ups++;
    else
        s->downs++;
}

typedef struct want {
    states_t *s;
    int ups, downs;
} want_t;

static int states_reached(void *arg)
{
    want_t *w = arg;
    return w->s->ups >= w->ups && w->s->downs >= w->downs;
}

static int wait_states(uv_loop_t *loop, states_t *s, int ups, int downs, uint64_t ms)
{
    want_t w = {s, ups, downs};
    return testloop_run_until(loop, states_reached, &w, ms);
}

/* Issue a command and wait for its single reply. */
#define SYNC_CMD(loop, r, res, ...)                                                                \
    do {                                                                                           \
        char e_[256];                                                                              \
        memset(&(res), 0, sizeof(res));                                                            \
        ck_assert_int_eq(jp_redis_command((r), record, &(res), e_, sizeof(e_), __VA_ARGS__),       \
                         JP_OK);                                                                   \
        ck_assert(testloop_run_until((loop), done1, &(res), 3000));                                \
    } while (0)

static testredis_t srv;

static void start_plain(void)
{
    memset(&srv, 0, sizeof(srv));
    jp_log_set_level(JP_LOG_ERROR);
    ck_assert_int_eq(testredis_start(&srv, 0), 0);
}

static void stop_srv(void)
{
    testredis_kill(&srv);
}

static jp_redis_opts_t base_opts(states_t *st)
{
    jp_redis_opts_t o = {0};
    o.host = "127.0.0.1";
    o.port = srv.port;
    o.command_timeout_ms = 3000;
    o.backoff_min_ms = 20;
    o.backoff_max_ms = 200;
    o.on_state = on_state;
    o.opaque = st;
    return o;
}

static jp_redis_t *connect_client(uv_loop_t *loop, states_t *st, jp_redis_opts_t *o)
{
    char err[256];
    jp_redis_t *r = jp_redis_new(loop, o, err, sizeof(err));
    ck_assert_msg(r != NULL, "%s", err);
    ck_assert_msg(wait_states(loop, st, 1, 0, 3000), "not connected: %s", jp_redis_last_error(r));
    ck_assert(jp_redis_connected(r));
    return r;
}

/* ---- tests ------------------------------------------------------------ */

START_TEST(roundtrip_and_error_replies)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    states_t st = {0};
    jp_redis_opts_t o = base_opts(&st);
    char err[256];
    jp_redis_t *r = jp_redis_new(&loop, &o, err, sizeof(err));
    ck_assert_ptr_nonnull(r);

    /* Not yet connected: refused at once, callback never called. */
    result_t early = {0};
    ck_assert_int_eq(jp_redis_command(r, record, &early, err, sizeof(err), "PING"), JP_ERR_REDIS);
    ck_assert_ptr_nonnull(strstr(err, "not connected"));
    ck_assert(wait_states(&loop, &st, 1, 0, 3000));
    ck_assert_int_eq(early.calls, 0);

    result_t res;
    SYNC_CMD(&loop, r, res, "SET %s %b", "k1", "v\0x", (size_t)3);
    ck_assert_int_eq(res.err, JP_OK);
    ck_assert_str_eq(res.str, "OK");

    const char *argv[] = {"GET", "k1"};
    memset(&res, 0, sizeof(res));
    ck_assert_int_eq(jp_redis_commandargv(r, record, &res, 2, argv, NULL, err, sizeof(err)), JP_OK);
    ck_assert(testloop_run_until(&loop, done1, &res, 3000));
    ck_assert_int_eq(res.err, JP_OK);
    ck_assert_int_eq(res.type, REDIS_REPLY_STRING);
    ck_assert_str_eq(res.str, "v"); /* binary-safe: "v\0x" */

    /* Error reply: reply present, type ERROR, err JP_ERR_REDIS. */
    SYNC_CMD(&loop, r, res, "INCR k1");
    ck_assert_int_eq(res.err, JP_ERR_REDIS);
    ck_assert(res.has_reply);
    ck_assert_int_eq(res.type, REDIS_REPLY_ERROR);
    ck_assert_ptr_nonnull(strstr(res.str, "not an integer"));

    SYNC_CMD(&loop, r, res, "NOSUCHCOMMAND");
    ck_assert_int_eq(res.err, JP_ERR_REDIS);
    ck_assert_int_eq(res.type, REDIS_REPLY_ERROR);

    /* Argument errors are refused synchronously. */
    ck_assert_int_eq(jp_redis_commandargv(r, record, &res, 0, argv, NULL, err, sizeof(err)),
                     JP_ERR_INVALID);
    ck_assert_int_eq(jp_redis_command(r, NULL, NULL, err, sizeof(err), "PING"), JP_ERR_INVALID);
    ck_assert_int_eq(jp_redis_command(r, record, &res, err, sizeof(err), "subscribe ch"),
                     JP_ERR_UNSUPPORTED);
    ck_assert_int_eq(jp_redis_command(r, record, &res, err, sizeof(err), "%s ch", "PSUBSCRIBE"),
                     JP_ERR_UNSUPPORTED);
    const char *mon[] = {"MONITOR"};
    ck_assert_int_eq(jp_redis_commandargv(r, record, &res, 1, mon, NULL, err, sizeof(err)),
                     JP_ERR_UNSUPPORTED);
    ck_assert_int_eq(jp_redis_command(r, record, &res, err, sizeof(err), ""), JP_ERR_INVALID);
    /* "SUBSCRIBED" is not SUBSCRIBE: an ordinary (unknown) command. */
    SYNC_CMD(&loop, r, res, "SUBSCRIBED x");
    ck_assert_int_eq(res.type, REDIS_REPLY_ERROR);

    jp_redis_stats_t s;
    jp_redis_stats(r, &s);
    ck_assert_uint_eq(s.connects, 1);
    ck_assert_uint_eq(s.error_replies, 3);
    ck_assert_uint_ge(s.replies, 4);
    ck_assert_uint_eq(s.rejected, 1);
    ck_assert_uint_eq(s.pending, 0);

    jp_redis_destroy(r);
    jp_redis_destroy(NULL);
    finish_loop(&loop);
    ck_assert_int_eq(st.downs, 0); /* destroy is not a state transition */
}
END_TEST

typedef struct incr_ctx {
    long long got[1000];
    int calls;
    int errors;
} incr_ctx_t;

static void incr_cb(jp_redis_t *r, const redisReply *reply, jp_err_t err, const char *errstr,
                    void *opaque)
{
    incr_ctx_t *c = opaque;
    if (err != JP_OK || reply->type != REDIS_REPLY_INTEGER)
        c->errors++;
    else if (c->calls < 1000)
        c->got[c->calls] = reply->integer;
    c->calls++;
}

static int incr_done(void *arg)
{
    return ((incr_ctx_t *)arg)->calls >= 1000;
}

START_TEST(pipelined_incr)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    states_t st = {0};
    jp_redis_opts_t o = base_opts(&st);
    jp_redis_t *r = connect_client(&loop, &st, &o);
    incr_ctx_t *c = calloc(1, sizeof(*c));
    char err[256];
    uint64_t t0 = uv_hrtime();
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(jp_redis_command(r, incr_cb, c, err, sizeof(err), "INCR counter"), JP_OK);
    jp_redis_stats_t s;
    jp_redis_stats(r, &s);
    ck_assert_uint_eq(s.pending, 1000);
    ck_assert(testloop_run_until(&loop, incr_done, c, 5000));
    uint64_t dt = uv_hrtime() - t0;
    ck_assert_int_eq(c->errors, 0);
    for (int i = 0; i < 1000; i++) /* replies arrive in order */
        ck_assert_int_eq(c->got[i], i + 1);
    fprintf(stderr, "pipelined_incr: 1000 INCR in %.2f ms (%.0f ops/s)\n", dt / 1e6,
            1000.0 / (dt / 1e9));
    testloop_run_for(&loop, 20);
    ck_assert_int_eq(c->calls, 1000); /* never twice */
    free(c);
    jp_redis_destroy(r);
    finish_loop(&loop);
}
END_TEST

typedef struct late_ping {
    jp_redis_t *r;
    result_t *res;
    jp_err_t issued;
} late_ping_t;

static void issue_late_ping(uv_timer_t *t)
{
    late_ping_t *lp = t->data;
    char err[256];
    lp->issued = jp_redis_command(lp->r, record, lp->res, err, sizeof(err), "PING");
}

START_TEST(command_timeout_resets_connection)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    states_t st = {0};
    jp_redis_opts_t o = base_opts(&st);
    o.command_timeout_ms = 100;
    jp_redis_t *r = connect_client(&loop, &st, &o);
    char err[256];

    result_t res[3];
    memset(res, 0, sizeof(res));
    ck_assert_int_eq(jp_redis_command(r, record, &res[0], err, sizeof(err), "DEBUG SLEEP 1"),
                     JP_OK);
    ck_assert_int_eq(jp_redis_command(r, record, &res[1], err, sizeof(err), "PING"), JP_OK);
    /* A third command 50 ms later: pending when the first times out, but
     * its own deadline has not passed. */
    late_ping_t lp = {r, &res[2], JP_ERR_INTERNAL};
    uv_timer_t late;
    uv_timer_init(&loop, &late);
    late.data = &lp;
    uv_timer_start(&late, issue_late_ping, 50, 0);

    uint64_t t0 = uv_hrtime();
    batch_t b = {res, 3};
    ck_assert(testloop_run_until(&loop, all_done, &b, 2000));
    uint64_t elapsed_ms = (uv_hrtime() - t0) / 1000000;
    ck_assert_int_eq(lp.issued, JP_OK);
    ck_assert_int_eq(res[0].err, JP_ERR_TIMEOUT);
    ck_assert(!res[0].has_reply);
    ck_assert_ptr_nonnull(strstr(res[0].str, "timed out"));
    ck_assert_int_eq(res[1].err, JP_ERR_TIMEOUT);
    ck_assert_int_eq(res[2].err, JP_ERR_REDIS);
    ck_assert(!res[2].has_reply);
    ck_assert_ptr_nonnull(strstr(res[2].str, "timed out"));
    ck_assert_uint_lt(elapsed_ms, 800); /* did not wait for the 1 s sleep */
    ck_assert_int_eq(st.downs, 1);

    /* Reconnects (Redis is still asleep for a while: attempts may time out)
     * and works again. */
    ck_assert_msg(wait_states(&loop, &st, 2, 1, 5000), "no reconnect: %s", jp_redis_last_error(r));
    result_t ok;
    SYNC_CMD(&loop, r, ok, "SET after %s", "timeout");
    ck_assert_int_eq(ok.err, JP_OK);
    SYNC_CMD(&loop, r, ok, "GET after");
    ck_assert_str_eq(ok.str, "timeout");

    testloop_run_for(&loop, 50);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(res[i].calls, 1);
    jp_redis_stats_t s;
    jp_redis_stats(r, &s);
    ck_assert_uint_ge(s.timeouts, 2);
    ck_assert_uint_eq(s.disconnects, 1);
    ck_assert_uint_ge(s.reconnects, 1);

    uv_close((uv_handle_t *)&late, NULL);
    jp_redis_destroy(r);
    finish_loop(&loop);
}
END_TEST

typedef struct exists_ctx {
    result_t res;
} exists_ctx_t;

START_TEST(server_killed_and_restarted)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    states_t st = {0};
    jp_redis_opts_t o = base_opts(&st);
    o.command_timeout_ms = 10000;
    jp_redis_t *r = connect_client(&loop, &st, &o);
    char err[256];
    jp_redis_script_t *script = jp_redis_script_new(r, "return 42", err, sizeof(err));
    ck_assert_ptr_nonnull(script);

    enum { N = 11 };
    result_t res[N];
    memset(res, 0, sizeof(res));
    ck_assert_int_eq(jp_redis_command(r, record, &res[0], err, sizeof(err), "DEBUG SLEEP 5"),
                     JP_OK);
    for (int i = 1; i < N; i++)
        ck_assert_int_eq(jp_redis_command(r, record, &res[i], err, sizeof(err), "GET k%d", i),
                         JP_OK);
    testloop_run_for(&loop, 50); /* let them reach the server */
    testredis_kill(&srv);

    batch_t b = {res, N};
    ck_assert(testloop_run_until(&loop, all_done, &b, 3000));
    ck_assert(wait_states(&loop, &st, 1, 1, 1000));
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(res[i].err, JP_ERR_REDIS);
        ck_assert(!res[i].has_reply);
    }
    ck_assert(!jp_redis_connected(r));

    /* While down: refused at once, nothing queued. */
    result_t never = {0};
    ck_assert_int_eq(jp_redis_command(r, record, &never, err, sizeof(err), "PING"), JP_ERR_REDIS);
    ck_assert_ptr_nonnull(strstr(err, "not connected"));
    testloop_run_for(&loop, 150); /* a few failed reconnect attempts */
    ck_assert_int_eq(never.calls, 0);
    ck_assert_int_eq(st.downs, 1); /* failed attempts are not transitions */
    /* Refused at once, not after the connect timeout. */
    ck_assert_msg(strstr(jp_redis_last_error(r), "connect failed") != NULL, "%s",
                  jp_redis_last_error(r));

    /* Same port again: reconnects, on_state(1), works, scripts reloaded. */
    ck_assert_int_eq(testredis_start(&srv, 0), 0);
    ck_assert_msg(wait_states(&loop, &st, 2, 1, 5000), "no reconnect: %s", jp_redis_last_error(r));
    result_t ok;
    SYNC_CMD(&loop, r, ok, "SCRIPT EXISTS %s", jp_redis_script_sha(script));
    ck_assert_int_eq(ok.err, JP_OK);
    ck_assert_int_eq(ok.type, REDIS_REPLY_ARRAY);
    ck_assert_int_eq(ok.integer, 1);
    SYNC_CMD(&loop, r, ok, "PING");
    ck_assert_str_eq(ok.str, "PONG");

    testloop_run_for(&loop, 50);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(res[i].calls, 1);
    jp_redis_stats_t s;
    jp_redis_stats(r, &s);
    ck_assert_uint_eq(s.connects, 2);
    ck_assert_uint_eq(s.reconnects, 1);
    ck_assert_uint_eq(s.disconnects, 1);
    ck_assert_uint_ge(s.connect_failures, 1);
    ck_assert_uint_ge(s.failures, N);

    jp_redis_destroy(r);
    finish_loop(&loop);
}
END_TEST

/* Bytes the server has not read yet on its accepted connection(s), from
 * /proc/net/tcp (Redis binds 127.0.0.1, so IPv4 only); -1 if unreadable. */
static long server_unread_bytes(int port)
{
    FILE *f = fopen("/proc/net/tcp", "r");
    if (f == NULL)
        return -1;
    char line[512];
    long unread = 0;
    if (fgets(line, sizeof(line), f) == NULL) { /* header */
        fclose(f);
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned lport, rport, state;
        unsigned long txq, rxq;
        if (sscanf(line, " %*d: %*x:%x %*x:%x %x %lx:%lx", &lport, &rport, &state, &txq, &rxq) != 5)
            continue;
        if ((int)lport == port && state == 1 /* ESTABLISHED */)
            unread += (long)rxq;
    }
    fclose(f);
    return unread;
}

static int server_has_unread(void *arg)
{
    return server_unread_bytes(*(int *)arg) > 0;
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

/* Redis killed while it holds unread input from us: its kernel answers with
 * a RST, which libuv reports as a poll error (not as readability). The
 * client must treat that as a disconnect at once, not wait for the command
 * timeout. */
START_TEST(reset_with_unread_input_is_a_prompt_disconnect)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    states_t st = {0};
    jp_redis_opts_t o = base_opts(&st);
    o.command_timeout_ms = 10000; /* a pass can never be a timeout */
    jp_redis_t *r = connect_client(&loop, &st, &o);
    char err[256];
    result_t ok;
    SYNC_CMD(&loop, r, ok, "SET before %s", "kill");
    ck_assert_int_eq(ok.err, JP_OK);

    /* Freeze Redis, then pipeline ~2 MB it will never read. */
    ck_assert_int_eq(kill(srv.pid, SIGSTOP), 0);
    enum { N = 2000 };
    static char value[1024];
    memset(value, 'v', sizeof(value) - 1);
    result_t *res = calloc(N, sizeof(*res));
    ck_assert_ptr_nonnull(res);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(
            jp_redis_command(r, record, &res[i], err, sizeof(err), "SET burst%d %s", i, value),
            JP_OK);
    /* Wait until the server's kernel holds part of it (a tick keeps the loop
     * iterating once the socket buffers are full). */
    uv_timer_t tick;
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, on_tick, 5, 5);
    ck_assert_msg(testloop_run_until(&loop, server_has_unread, &srv.port, 3000),
                  "server never had unread input (%ld)", server_unread_bytes(srv.port));
    uv_close((uv_handle_t *)&tick, NULL);

    uint64_t t0 = uv_hrtime();
    testredis_kill(&srv); /* SIGKILL by PID (a stopped process dies too) */
    ck_assert_msg(wait_states(&loop, &st, 1, 1, 1000), "no on_state(0) within 1 s; last error: %s",
                  jp_redis_last_error(r));
    uint64_t detect_ms = (uv_hrtime() - t0) / 1000000;
    batch_t b = {res, N};
    ck_assert(testloop_run_until(&loop, all_done, &b, 1000));
    ck_assert(!jp_redis_connected(r));
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(res[i].calls, 1);
        ck_assert_int_eq(res[i].err, JP_ERR_REDIS);
        ck_assert(!res[i].has_reply);
    }
    ck_assert_msg(strstr(res[0].str, "connection") != NULL, "%s", res[0].str);
    jp_redis_stats_t s;
    jp_redis_stats(r, &s);
    ck_assert_uint_eq(s.timeouts, 0);
    ck_assert_uint_eq(s.disconnects, 1);
    ck_assert_uint_eq(s.pending, 0);
    fprintf(stderr, "reset_with_unread_input: on_state(0) %llu ms after SIGKILL\n",
            (unsigned long long)detect_ms);

    /* Redis back on the same port: on_state(1), and it works. */
    ck_assert_int_eq(testredis_start(&srv, 0), 0);
    ck_assert_msg(wait_states(&loop, &st, 2, 1, 5000), "no reconnect: %s", jp_redis_last_error(r));
    SYNC_CMD(&loop, r, ok, "SET after %s", "restart");
    ck_assert_int_eq(ok.err, JP_OK);
    SYNC_CMD(&loop, r, ok, "GET after");
    ck_assert_str_eq(ok.str, "restart");

    testloop_run_for(&loop, 50);
    for (int i = 0; i < N; i++) /* never twice */
        ck_assert_int_eq(res[i].calls, 1);
    ck_assert_int_eq(st.downs, 1);
    free(res);
    jp_redis_destroy(r);
    finish_loop(&loop);
}
END_TEST

/* The client's socket to the test server, found among our descriptors. */
static int client_socket_to(int port)
{
    for (int fd = 3; fd < 1024; fd++) {
        struct sockaddr_in a;
        socklen_t len = sizeof(a);
        if (getpeername(fd, (struct sockaddr *)&a, &len) == 0 && a.sin_family == AF_INET &&
            ntohs(a.sin_port) == port)
            return fd;
    }
    return -1;
}

static int sockopt_int(int fd, int level, int name)
{
    int v = -1;
    socklen_t len = sizeof(v);
    ck_assert_int_eq(getsockopt(fd, level, name, &v, &len), 0);
    return v;
}

/* Idle connections are probed, so a peer that vanished silently is noticed
 * (values documented in redis.h). */
START_TEST(tcp_keepalive_enabled)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    states_t st = {0};
    jp_redis_opts_t o = base_opts(&st);
    jp_redis_t *r = connect_client(&loop, &st, &o);
    int fd = client_socket_to(srv.port);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(sockopt_int(fd, SOL_SOCKET, SO_KEEPALIVE), 1);
    ck_assert_int_eq(sockopt_int(fd, IPPROTO_TCP, TCP_KEEPIDLE), 15);
    ck_assert_int_eq(sockopt_int(fd, IPPROTO_TCP, TCP_KEEPINTVL), 5);
    ck_assert_int_eq(sockopt_int(fd, IPPROTO_TCP, TCP_KEEPCNT), 3);
    jp_redis_destroy(r);
    finish_loop(&loop);
}
END_TEST

static void start_auth(void)
{
    memset(&srv, 0, sizeof(srv));
    jp_log_set_level(JP_LOG_ERROR);
    srv.password = "s3cret-Pa55word";
    ck_assert_int_eq(testredis_start(&srv, 0), 0);
}

START_TEST(auth_with_password)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[256];

    states_t st = {0};
    jp_redis_opts_t o = base_opts(&st);
    o.password = "s3cret-Pa55word";
    jp_redis_t *good = connect_client(&loop, &st, &o);
    result_t res;
    SYNC_CMD(&loop, good, res, "SET authed yes");
    ck_assert_int_eq(res.err, JP_OK);

    states_t st2 = {0};
    jp_redis_opts_t o2 = base_opts(&st2);
    o2.username = "default";
    o2.password = "s3cret-Pa55word";
    jp_redis_t *named = connect_client(&loop, &st2, &o2);

    states_t st3 = {0};
    jp_redis_opts_t o3 = base_opts(&st3);
    o3.password = "wrong-Passw0rd";
    jp_redis_t *bad = jp_redis_new(&loop, &o3, err, sizeof(err));
    ck_assert_ptr_nonnull(bad);

    states_t st4 = {0};
    jp_redis_opts_t o4 = base_opts(&st4);
    jp_redis_t *none = jp_redis_new(&loop, &o4, err, sizeof(err));
    ck_assert_ptr_nonnull(none);

    testloop_run_for(&loop, 300);
    ck_assert_int_eq(st3.ups, 0);
    ck_assert_int_eq(st4.ups, 0);
    ck_assert(!jp_redis_connected(bad));
    const char *why = jp_redis_last_error(bad);
    ck_assert_msg(strstr(why, "AUTH failed") && strstr(why, "WRONGPASS"), "%s", why);
    ck_assert_ptr_null(strstr(why, "wrong-Passw0rd"));
    ck_assert_int_eq(jp_redis_command(bad, record, &res, err, sizeof(err), "PING"), JP_ERR_REDIS);
    ck_assert_msg(strstr(err, "WRONGPASS") != NULL, "%s", err);
    ck_assert_ptr_null(strstr(err, "wrong-Passw0rd"));
    why = jp_redis_last_error(none);
    ck_assert_msg(strstr(why, "PING failed") && strstr(why, "NOAUTH"), "%s", why);

    jp_redis_stats_t s;
    jp_redis_stats(bad, &s);
    ck_assert_uint_ge(s.connect_failures, 2); /* keeps retrying, with backoff */
    ck_assert_uint_lt(s.connect_failures, 30);
    ck_assert_uint_eq(s.connects, 0);

    jp_redis_destroy(good);
    jp_redis_destroy(named);
    jp_redis_destroy(bad);
    jp_redis_destroy(none);
    finish_loop(&loop);
}
END_TEST

START_TEST(evalsha_falls_back_after_script_flush)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    states_t st = {0};
    jp_redis_opts_t o = base_opts(&st);
    jp_redis_t *r = connect_client(&loop, &st, &o);
    char err[256];
    const char *lua = "return redis.call('INCRBY', KEYS[1], ARGV[1])";
    jp_redis_script_t *s = jp_redis_script_new(r, lua, err, sizeof(err));
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(strlen(jp_redis_script_sha(s)), 40);

    result_t res;
    /* Our SHA is the one Redis computes. */
    SYNC_CMD(&loop, r, res, "SCRIPT LOAD %s", lua);
    ck_assert_str_eq(res.str, jp_redis_script_sha(s));

    const char *keys[] = {"budget"};
    const char *args[] = {"5"};
    memset(&res, 0, sizeof(res));
    ck_assert_int_eq(jp_redis_evalsha(r, s, record, &res, 1, keys, 1, args, err, sizeof(err)),
                     JP_OK);
    ck_assert(testloop_run_until(&loop, done1, &res, 3000));
    ck_assert_int_eq(res.err, JP_OK);
    ck_assert_int_eq(res.integer, 5);

    SYNC_CMD(&loop, r, res, "SCRIPT FLUSH");
    ck_assert_int_eq(res.err, JP_OK);
    memset(&res, 0, sizeof(res));
    ck_assert_int_eq(jp_redis_evalsha(r, s, record, &res, 1, keys, 1, args, err, sizeof(err)),
                     JP_OK);
    ck_assert(testloop_run_until(&loop, done1, &res, 3000));
    ck_assert_int_eq(res.err, JP_OK);
    ck_assert_int_eq(res.integer, 10);
    testloop_run_for(&loop, 20);
    ck_assert_int_eq(res.calls, 1);

    jp_redis_stats_t st_;
    jp_redis_stats(r, &st_);
    ck_assert_uint_eq(st_.script_fallbacks, 1);

    /* EVAL cached it again: the next EVALSHA needs no fallback. */
    memset(&res, 0, sizeof(res));
    ck_assert_int_eq(jp_redis_evalsha(r, s, record, &res, 1, keys, 1, args, err, sizeof(err)),
                     JP_OK);
    ck_assert(testloop_run_until(&loop, done1, &res, 3000));
    ck_assert_int_eq(res.integer, 15);
    jp_redis_stats(r, &st_);
    ck_assert_uint_eq(st_.script_fallbacks, 1);

    /* A broken script: its error reaches the caller, once. */
    jp_redis_script_t *broken = jp_redis_script_new(r, "return redis.call(", err, sizeof(err));
    ck_assert_ptr_nonnull(broken);
    memset(&res, 0, sizeof(res));
    ck_assert_int_eq(jp_redis_evalsha(r, broken, record, &res, 0, NULL, 0, NULL, err, sizeof(err)),
                     JP_OK);
    ck_assert(testloop_run_until(&loop, done1, &res, 3000));
    ck_assert_int_eq(res.err, JP_ERR_REDIS);
    ck_assert_int_eq(res.type, REDIS_REPLY_ERROR);

    ck_assert_ptr_null(jp_redis_script_new(r, "", err, sizeof(err)));
    ck_assert_int_eq(jp_redis_evalsha(r, s, record, &res, -1, keys, 0, NULL, err, sizeof(err)),
                     JP_ERR_INVALID);

    jp_redis_destroy(r);
    finish_loop(&loop);
}
END_TEST

START_TEST(destroy_fails_pending_once)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    states_t st = {0};
    jp_redis_opts_t o = base_opts(&st);
    jp_redis_t *r = connect_client(&loop, &st, &o);
    char err[256];
    enum { N = 101 };
    result_t *res = calloc(N, sizeof(*res));
    ck_assert_int_eq(jp_redis_command(r, record, &res[0], err, sizeof(err), "DEBUG SLEEP 0.2"),
                     JP_OK);
    for (int i = 1; i < N; i++)
        ck_assert_int_eq(jp_redis_command(r, record, &res[i], err, sizeof(err), "PING"), JP_OK);
    testloop_run_for(&loop, 20);
    jp_redis_destroy(r);
    for (int i = 0; i < N; i++) { /* before destroy returned */
        ck_assert_int_eq(res[i].calls, 1);
        ck_assert_int_eq(res[i].err, JP_ERR_REDIS);
        ck_assert_ptr_nonnull(strstr(res[i].str, "closed"));
    }
    finish_loop(&loop);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(res[i].calls, 1);
    free(res);
}
END_TEST

typedef struct destroyer {
    jp_redis_t *r;
    int calls[10];
    jp_err_t errs[10];
} destroyer_t;

/* Each slot knows its index through a small record. */
typedef struct slot {
    destroyer_t *d;
    int i;
} slot_t;

static void slot_cb(jp_redis_t *r, const redisReply *reply, jp_err_t err, const char *errstr,
                    void *opaque)
{
    slot_t *s = opaque;
    s->d->calls[s->i]++;
    s->d->errs[s->i] = err;
    if (s->i == 0)
        jp_redis_destroy(s->d->r);
}

static int slot_all(void *arg)
{
    destroyer_t *d = arg;
    for (int i = 0; i < 10; i++)
        if (d->calls[i] == 0)
            return 0;
    return 1;
}

static void destroy_on_up(void *opaque, int connected)
{
    jp_redis_t **rp = opaque;
    if (connected) {
        jp_redis_destroy(*rp);
        *rp = NULL;
    }
}

static int is_null(void *arg)
{
    return *(jp_redis_t **)arg == NULL;
}

START_TEST(destroy_from_callbacks)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    states_t st = {0};
    jp_redis_opts_t o = base_opts(&st);
    jp_redis_t *r = connect_client(&loop, &st, &o);
    char err[256];
    destroyer_t d = {.r = r};
    slot_t slots[10];
    for (int i = 0; i < 10; i++) {
        slots[i] = (slot_t){&d, i};
        ck_assert_int_eq(jp_redis_command(r, slot_cb, &slots[i], err, sizeof(err), "PING"), JP_OK);
    }
    ck_assert(testloop_run_until(&loop, slot_all, &d, 3000));
    ck_assert_int_eq(d.errs[0], JP_OK);
    for (int i = 1; i < 10; i++) {
        ck_assert_int_eq(d.calls[i], 1);
        ck_assert_int_eq(d.errs[i], JP_ERR_REDIS);
    }
    finish_loop(&loop);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(d.calls[i], 1);

    /* Destroy from on_state(1). */
    uv_loop_init(&loop);
    jp_redis_t *r2 = NULL;
    jp_redis_opts_t o2 = base_opts(NULL);
    o2.on_state = destroy_on_up;
    o2.opaque = &r2;
    r2 = jp_redis_new(&loop, &o2, err, sizeof(err));
    ck_assert_ptr_nonnull(r2);
    ck_assert(testloop_run_until(&loop, is_null, &r2, 3000));
    finish_loop(&loop);
}
END_TEST

START_TEST(max_pending_refuses)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    states_t st = {0};
    jp_redis_opts_t o = base_opts(&st);
    o.max_pending = 5;
    jp_redis_t *r = connect_client(&loop, &st, &o);
    char err[256];
    result_t res[6];
    memset(res, 0, sizeof(res));
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(jp_redis_command(r, record, &res[i], err, sizeof(err), "PING"), JP_OK);
    ck_assert_int_eq(jp_redis_command(r, record, &res[5], err, sizeof(err), "PING"), JP_ERR_REDIS);
    ck_assert_ptr_nonnull(strstr(err, "too many pending"));
    batch_t b = {res, 5};
    ck_assert(testloop_run_until(&loop, all_done, &b, 3000));
    ck_assert_int_eq(res[5].calls, 0);
    ck_assert_int_eq(jp_redis_command(r, record, &res[5], err, sizeof(err), "PING"), JP_OK);
    ck_assert(testloop_run_until(&loop, done1, &res[5], 3000));
    jp_redis_destroy(r);
    finish_loop(&loop);
}
END_TEST

static void start_unix(void)
{
    memset(&srv, 0, sizeof(srv));
    jp_log_set_level(JP_LOG_ERROR);
    ck_assert_int_eq(testredis_start(&srv, 1), 0);
}

START_TEST(unix_socket_url_and_db)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    char url[200], err[256];
    snprintf(url, sizeof(url), "unix://%s?db=2", srv.unix_path);
    jp_redis_url_t u;
    ck_assert_int_eq(jp_redis_parse_url(url, &u, err, sizeof(err)), JP_OK);
    states_t st = {0};
    jp_redis_opts_t o = base_opts(&st);
    jp_redis_url_apply(&u, &o);
    jp_redis_t *r = connect_client(&loop, &st, &o);
    result_t res;
    SYNC_CMD(&loop, r, res, "CLIENT INFO");
    ck_assert_int_eq(res.err, JP_OK);
    ck_assert_msg(strstr(res.str, " db=2 ") != NULL, "%s", res.str);
    jp_redis_destroy(r);
    finish_loop(&loop);
}
END_TEST

START_TEST(url_parser)
{
    jp_redis_url_t u;
    char err[256];
    ck_assert_int_eq(jp_redis_parse_url("redis://10.0.0.5:6380/3", &u, err, sizeof(err)), JP_OK);
    ck_assert_str_eq(u.host, "10.0.0.5");
    ck_assert_int_eq(u.port, 6380);
    ck_assert_int_eq(u.db, 3);
    ck_assert_str_eq(u.password, "");

    ck_assert_int_eq(jp_redis_parse_url("redis://redis.internal", &u, err, sizeof(err)), JP_OK);
    ck_assert_str_eq(u.host, "redis.internal");
    ck_assert_int_eq(u.port, 6379);
    ck_assert_int_eq(u.db, 0);

    ck_assert_int_eq(jp_redis_parse_url("redis://:p%40ss%3Aw0rd@h:1/", &u, err, sizeof(err)),
                     JP_OK);
    ck_assert_str_eq(u.password, "p@ss:w0rd");
    ck_assert_str_eq(u.username, "");
    ck_assert_str_eq(u.host, "h");
    ck_assert_int_eq(u.port, 1);

    ck_assert_int_eq(jp_redis_parse_url("redis://app:pw@[::1]:7000/15", &u, err, sizeof(err)),
                     JP_OK);
    ck_assert_str_eq(u.username, "app");
    ck_assert_str_eq(u.password, "pw");
    ck_assert_str_eq(u.host, "::1");
    ck_assert_int_eq(u.port, 7000);
    ck_assert_int_eq(u.db, 15);

    ck_assert_int_eq(jp_redis_parse_url("unix:///run/redis.sock", &u, err, sizeof(err)), JP_OK);
    ck_assert_str_eq(u.unix_path, "/run/redis.sock");
    ck_assert_int_eq(jp_redis_parse_url("unix://:pw@/run/r.sock?db=4", &u, err, sizeof(err)),
                     JP_OK);
    ck_assert_str_eq(u.unix_path, "/run/r.sock");
    ck_assert_str_eq(u.password, "pw");
    ck_assert_int_eq(u.db, 4);

    jp_redis_opts_t o = {0};
    jp_redis_url_apply(&u, &o);
    ck_assert_ptr_eq(o.unix_path, u.unix_path);
    ck_assert_ptr_eq(o.password, u.password);
    ck_assert_ptr_null(o.username);
    ck_assert_int_eq(o.db, 4);

    static const char *bad[] = {
        NULL,
        "",
        "http://h:1",
        "redis://",
        "redis://h:0",
        "redis://h:65536",
        "redis://h:12x",
        "redis://h/abc",
        "redis://h/1?x=y",
        "redis://h/99999999999",
        "redis://secretonly@h",
        "redis://:bad%zzpw@h",
        "redis://:nul%00pw@h",
        "redis://[::1",
        "unix://",
        "unix://host/path",
        "unix:///p?db=x",
        "unix:///p?foo=1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        ck_assert_msg(jp_redis_parse_url(bad[i], &u, err, sizeof(err)) == JP_ERR_INVALID,
                      "accepted #%zu", i);
        ck_assert(err[0] != '\0');
        ck_assert_str_eq(u.password, "");
    }
    ck_assert_int_eq(jp_redis_parse_url("rediss://h", &u, err, sizeof(err)), JP_ERR_UNSUPPORTED);
    /* The error text never echoes the URL (it may hold a password). */
    ck_assert_int_eq(jp_redis_parse_url("redis://:Sup3rSecret@h:99999", &u, err, sizeof(err)),
                     JP_ERR_INVALID);
    ck_assert_ptr_null(strstr(err, "Sup3rSecret"));
}
END_TEST

/* A listener whose accept queue is full: Linux drops further SYNs, so a
 * connect hangs until our connect timeout. */
static int full_listener(int *port, int fill[2])
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(fd, 0), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    for (int i = 0; i < 2; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fill[i], (struct sockaddr *)&a, sizeof(a));
    }
    return fd;
}

typedef struct failcount {
    jp_redis_t *r;
    uint64_t n;
} failcount_t;

static int failures_at_least(void *arg)
{
    failcount_t *f = arg;
    jp_redis_stats_t s;
    jp_redis_stats(f->r, &s);
    return s.connect_failures >= f->n;
}

START_TEST(unreachable_targets)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[256];
    int port, fill[2];
    int lfd = full_listener(&port, fill);
    testloop_run_for(&loop, 50); /* let the two fillers complete their handshakes */

    jp_redis_opts_t o = {0};
    o.port = port;
    o.connect_timeout_ms = 150;
    o.backoff_min_ms = 10;
    o.backoff_max_ms = 20;
    jp_redis_t *r = jp_redis_new(&loop, &o, err, sizeof(err));
    ck_assert_ptr_nonnull(r);
    failcount_t f = {r, 1};
    uint64_t t0 = uv_hrtime();
    ck_assert(testloop_run_until(&loop, failures_at_least, &f, 3000));
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    ck_assert_msg(strstr(jp_redis_last_error(r), "connect timed out") != NULL, "%s",
                  jp_redis_last_error(r));
    ck_assert_uint_ge(ms, 140);
    ck_assert(!jp_redis_connected(r));
    jp_redis_destroy(r);

    jp_redis_opts_t u = {0};
    u.unix_path = "/nonexistent/jp-redis.sock";
    u.backoff_min_ms = 10;
    u.backoff_max_ms = 20;
    r = jp_redis_new(&loop, &u, err, sizeof(err));
    ck_assert_ptr_nonnull(r);
    f = (failcount_t){r, 3};
    ck_assert(testloop_run_until(&loop, failures_at_least, &f, 3000));
    ck_assert_msg(strstr(jp_redis_last_error(r), "connect failed") != NULL, "%s",
                  jp_redis_last_error(r));
    jp_redis_destroy(r);
    finish_loop(&loop);
    close(fill[0]);
    close(fill[1]);
    close(lfd);
}
END_TEST

/* A refused connect is reported by the socket as an error, not as
 * writability: it must fail the attempt at once, not after the connect
 * timeout. */
START_TEST(refused_connect_fails_fast)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[256];
    jp_redis_opts_t o = {0};
    o.port = testredis_free_port(); /* nothing listens there */
    ck_assert_int_gt(o.port, 0);
    o.connect_timeout_ms = 10000;
    o.backoff_min_ms = 10;
    o.backoff_max_ms = 20;
    jp_redis_t *r = jp_redis_new(&loop, &o, err, sizeof(err));
    ck_assert_ptr_nonnull(r);
    failcount_t f = {r, 3};
    ck_assert_msg(testloop_run_until(&loop, failures_at_least, &f, 2000), "last error: %s",
                  jp_redis_last_error(r));
    ck_assert_msg(strstr(jp_redis_last_error(r), "refused") != NULL, "%s", jp_redis_last_error(r));
    ck_assert(!jp_redis_connected(r));
    jp_redis_destroy(r);
    finish_loop(&loop);
}
END_TEST

START_TEST(invalid_options)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[256];
    jp_redis_opts_t o = {0};
    ck_assert_ptr_null(jp_redis_new(NULL, &o, err, sizeof(err)));
    ck_assert_ptr_null(jp_redis_new(&loop, NULL, err, sizeof(err)));
    o.port = 70000;
    ck_assert_ptr_null(jp_redis_new(&loop, &o, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "port"));
    o.port = 1;
    o.db = -1;
    ck_assert_ptr_null(jp_redis_new(&loop, &o, err, sizeof(err)));
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

Suite *redis_suite(void)
{
    Suite *s = suite_create("redis");
    TCase *tc = tcase_create("server");
    tcase_add_checked_fixture(tc, start_plain, stop_srv);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, roundtrip_and_error_replies);
    tcase_add_test(tc, pipelined_incr);
    tcase_add_test(tc, command_timeout_resets_connection);
    tcase_add_test(tc, server_killed_and_restarted);
    tcase_add_test(tc, reset_with_unread_input_is_a_prompt_disconnect);
    tcase_add_test(tc, tcp_keepalive_enabled);
    tcase_add_test(tc, evalsha_falls_back_after_script_flush);
    tcase_add_test(tc, destroy_fails_pending_once);
    tcase_add_test(tc, destroy_from_callbacks);
    tcase_add_test(tc, max_pending_refuses);
    suite_add_tcase(s, tc);

    TCase *auth = tcase_create("auth");
    tcase_add_checked_fixture(auth, start_auth, stop_srv);
    tcase_set_timeout(auth, 30);
    tcase_add_test(auth, auth_with_password);
    suite_add_tcase(s, auth);

    TCase *ux = tcase_create("unix");
    tcase_add_checked_fixture(ux, start_unix, stop_srv);
    tcase_set_timeout(ux, 30);
    tcase_add_test(ux, unix_socket_url_and_db);
    suite_add_tcase(s, ux);

    TCase *pure = tcase_create("pure");
    tcase_add_test(pure, url_parser);
    tcase_add_test(pure, invalid_options);
    tcase_add_test(pure, unreachable_targets);
    tcase_add_test(pure, refused_connect_fails_fast);
    suite_add_tcase(s, pure);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(redis_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
