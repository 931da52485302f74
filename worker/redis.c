/* Asynchronous Redis client: hiredis 0.14 async API on the libuv loop.
 *
 * Memory rules that keep callbacks safe under re-entrancy:
 *  - A command (cmd_t) accepted by hiredis is freed only by its hiredis
 *    callback (on_reply), which hiredis calls exactly once per command: with
 *    the reply, or with NULL when the context is freed. Our own bookkeeping
 *    (the pending list, `done`) decides whether that call still has to reach
 *    the user; a command failed early by us (timeout, drop, destroy) is only
 *    freed there.
 *  - r->ac is cleared before anything that can run user code while a
 *    context goes away, so a user calling jp_redis_destroy from a callback
 *    never frees a context twice.
 *  - redisAsyncFree is never called from inside hiredis's connect or
 *    disconnect callbacks (hiredis keeps using the context afterwards); from
 *    inside a reply callback hiredis defers the free itself.
 *  - jp_redis_t memory is released by the close callbacks of its two uv
 *    timers, i.e. after the current loop callback stack has unwound, so late
 *    hiredis callbacks of a context being freed still find it.
 *
 * hiredis is driven by our own libuv glue (the "watch" section), not by the
 * adapter shipped with hiredis 0.14: that adapter drops poll errors, and a
 * connection reset by the server (Redis killed with our commands still
 * unread) arrives as exactly that, after which libuv stops watching the
 * socket and the connection would look alive until a command timed out. */
#include "jiraprov/redis.h"
#include "jiraprov/log.h"

#include <errno.h>
#include <hiredis/async.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define COMP "redis"

/* TCP keepalive on every TCP connection: an idle connection to a peer that
 * vanished without a FIN/RST (partition, host power loss) is declared dead
 * after about IDLE + INTVL * CNT seconds. With commands in flight the
 * command timeout is what notices. Kept in step with redis.h. */
#define KEEPALIVE_IDLE_S  15
#define KEEPALIVE_INTVL_S 5
#define KEEPALIVE_CNT     3

enum conn_state { ST_DOWN, ST_CONNECTING, ST_HANDSHAKE, ST_READY };

typedef struct cmd {
    struct cmd *prev, *next;
    jp_redis_t *r;
    jp_redis_cb_t cb;
    void *opaque;
    uint64_t deadline;               /* loop time (ms) */
    int done;                        /* user callback delivered, or handed to a successor */
    const jp_redis_script_t *script; /* EVALSHA: resend as EVAL on NOSCRIPT */
    int argc;                        /* copied arguments (EVALSHA only) */
    const char **argv;
    size_t *argvlen;
} cmd_t;

struct jp_redis_script {
    struct jp_redis_script *next;
    char sha[41];
    char *body;
};

struct jp_redis {
    uv_loop_t *loop;
    redisAsyncContext *ac; /* current connection, NULL when down */
    enum conn_state state;
    int closing;
    int open_handles;
    uv_timer_t conn_timer;     /* reconnect backoff, connect timeout */
    uv_timer_t deadline_timer; /* oldest pending command's deadline */
    cmd_t *head, *tail;        /* pending, in send order = deadline order */

    char *host;
    int port;
    char *unix_path;
    char *username;
    char *password;
    int db;
    unsigned command_timeout_ms;
    unsigned connect_timeout_ms;
    unsigned backoff_min_ms;
    unsigned backoff_max_ms;
    unsigned max_pending;
    void (*on_state)(void *opaque, int connected);
    void *opaque;

    unsigned attempts; /* consecutive failed attempts, drives the backoff */
    uint64_t rng;
    int ever_connected;
    char where[300]; /* "host:port" or "unix:path", for messages */
    char last_error[512];
    jp_redis_script_t *scripts;
    jp_redis_stats_t stats;
};

static const char STEP_AUTH[] = "AUTH";
static const char STEP_SELECT[] = "SELECT";
static const char STEP_PING[] = "PING";

static void on_conn_timer(uv_timer_t *t);
static void on_deadline(uv_timer_t *t);
static void on_reply(redisAsyncContext *ac, void *reply, void *privdata);

/* ---- small helpers ---------------------------------------------------- */

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static uint64_t next_random(jp_redis_t *r)
{
    /* xorshift64: jitter only needs to differ between processes. */
    uint64_t x = r->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    r->rng = x;
    return x;
}

static void set_last_error(jp_redis_t *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_last_error(jp_redis_t *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->last_error, sizeof(r->last_error), fmt, ap);
    va_end(ap);
}

static void list_append(jp_redis_t *r, cmd_t *c)
{
    c->prev = r->tail;
    c->next = NULL;
    if (r->tail)
        r->tail->next = c;
    else
        r->head = c;
    r->tail = c;
    r->stats.pending++;
}

static void list_unlink(jp_redis_t *r, cmd_t *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        r->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        r->tail = c->prev;
    c->prev = c->next = NULL;
    r->stats.pending--;
    if (r->head == NULL && !r->closing)
        uv_timer_stop(&r->deadline_timer);
}

static size_t align_up(size_t n)
{
    const size_t a = sizeof(uint64_t);
    return (n + a - 1) / a * a;
}

/* One allocation: the command, then (for EVALSHA) a private copy of its
 * arguments so that it can be resent as EVAL. */
static cmd_t *cmd_new(jp_redis_t *r, jp_redis_cb_t cb, void *opaque, int argc, const char **argv,
                      const size_t *argvlen)
{
    size_t lens_off = align_up(sizeof(cmd_t));
    size_t ptrs_off = align_up(lens_off + (size_t)argc * sizeof(size_t));
    size_t data_off = ptrs_off + (size_t)argc * sizeof(char *);
    size_t total = data_off;
    for (int i = 0; i < argc; i++)
        total += argvlen[i] + 1;
    char *mem = calloc(1, total);
    if (mem == NULL)
        return NULL;
    cmd_t *c = (cmd_t *)mem;
    c->r = r;
    c->cb = cb;
    c->opaque = opaque;
    if (argc > 0) {
        c->argc = argc;
        c->argvlen = (size_t *)(mem + lens_off);
        c->argv = (const char **)(mem + ptrs_off);
        char *data = mem + data_off;
        for (int i = 0; i < argc; i++) {
            memcpy(data, argv[i], argvlen[i]);
            data[argvlen[i]] = '\0';
            c->argv[i] = data;
            c->argvlen[i] = argvlen[i];
            data += argvlen[i] + 1;
        }
    }
    return c;
}

/* ---- pending commands ------------------------------------------------- */

static void enqueue(jp_redis_t *r, cmd_t *c)
{
    uint64_t now = uv_now(r->loop);
    c->deadline = now + r->command_timeout_ms;
    list_append(r, c);
    r->stats.commands_sent++;
    if (!uv_is_active((uv_handle_t *)&r->deadline_timer))
        uv_timer_start(&r->deadline_timer, on_deadline, r->head->deadline - now, 0);
}

/* Fail every pending command. With by_timeout, commands whose own deadline
 * has passed get JP_ERR_TIMEOUT, the others `why`. Pops one at a time:
 * a callback may issue commands (refused: we are down) or destroy the
 * client (which drains the rest with "closed"). */
static void fail_all(jp_redis_t *r, int by_timeout, const char *why)
{
    uint64_t now = uv_now(r->loop);
    char msg[600];
    cmd_t *c;
    while ((c = r->head) != NULL) {
        list_unlink(r, c);
        c->done = 1;
        jp_err_t err = JP_ERR_REDIS;
        const char *text = why;
        if (by_timeout && c->deadline <= now) {
            err = JP_ERR_TIMEOUT;
            snprintf(msg, sizeof(msg), "Redis command timed out after %u ms",
                     r->command_timeout_ms);
            text = msg;
            r->stats.timeouts++;
        }
        r->stats.failures++;
        c->cb(r, NULL, err, text, c->opaque);
    }
}

/* ---- hiredis on the libuv loop ------------------------------------------
 *
 * hiredis asks for read/write interest through ac->ev; one uv_poll_t per
 * context watches the socket. The watch outlives the context by one close
 * callback: hiredis calls watch_cleanup while freeing the context, which
 * detaches it (ac = NULL) and closes the poll handle. */

typedef struct watch {
    redisAsyncContext *ac; /* NULL once hiredis has let go of the context */
    uv_poll_t poll;
    int events; /* UV_READABLE | UV_WRITABLE, as hiredis last asked */
} watch_t;

static void watch_on_poll(uv_poll_t *h, int status, int events)
{
    watch_t *w = h->data;
    if (w->ac == NULL)
        return;
    if (status < 0) {
        /* A socket error (reset, refused connect, keepalive timeout); libuv
         * has already stopped watching. Reading lets hiredis find the error
         * itself: it fails the connect, or reads any replies still buffered
         * (then re-arms, and the next event reads on) and finally the error
         * or EOF, and disconnects. Never write on a failed socket. */
        redisAsyncHandleRead(w->ac);
        return;
    }
    if (events & UV_READABLE)
        redisAsyncHandleRead(w->ac);
    if (w->ac != NULL && (events & UV_WRITABLE))
        redisAsyncHandleWrite(w->ac);
}

/* Always restarts the poll, even when the interest is unchanged: after a
 * poll error libuv has stopped it behind our back. */
static void watch_apply(watch_t *w)
{
    if (w->events != 0)
        (void)uv_poll_start(&w->poll, w->events, watch_on_poll);
    else
        (void)uv_poll_stop(&w->poll);
}

static void watch_add_read(void *privdata)
{
    watch_t *w = privdata;
    w->events |= UV_READABLE;
    watch_apply(w);
}

static void watch_del_read(void *privdata)
{
    watch_t *w = privdata;
    w->events &= ~UV_READABLE;
    watch_apply(w);
}

static void watch_add_write(void *privdata)
{
    watch_t *w = privdata;
    w->events |= UV_WRITABLE;
    watch_apply(w);
}

static void watch_del_write(void *privdata)
{
    watch_t *w = privdata;
    w->events &= ~UV_WRITABLE;
    watch_apply(w);
}

static void watch_closed(uv_handle_t *h)
{
    free(h->data);
}

static void watch_cleanup(void *privdata)
{
    watch_t *w = privdata;
    w->ac = NULL;
    uv_close((uv_handle_t *)&w->poll, watch_closed);
}

/* Hooks are installed only once the watch exists, so a failure leaves the
 * context free of them (redisAsyncFree is then safe). */
static int watch_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    if (ac->ev.data != NULL)
        return -1;
    watch_t *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return -1;
    if (uv_poll_init(loop, &w->poll, ac->c.fd) != 0) {
        free(w);
        return -1;
    }
    w->ac = ac;
    w->poll.data = w;
    ac->ev.data = w;
    ac->ev.addRead = watch_add_read;
    ac->ev.delRead = watch_del_read;
    ac->ev.addWrite = watch_add_write;
    ac->ev.delWrite = watch_del_write;
    ac->ev.cleanup = watch_cleanup;
    return 0;
}

/* Best effort: without keepalive only a command timeout would notice a
 * silent peer, so a failure is logged and the connection used anyway. */
static void enable_keepalive(jp_redis_t *r, int fd)
{
    int on = 1, idle = KEEPALIVE_IDLE_S, intvl = KEEPALIVE_INTVL_S, cnt = KEEPALIVE_CNT;
    if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl)) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt)) != 0)
        jp_warn(COMP, "%s: cannot enable TCP keepalive: %s", r->where, strerror(errno));
}

/* ---- connection state --------------------------------------------------- */

static void schedule_reconnect(jp_redis_t *r)
{
    if (r->closing)
        return;
    unsigned shift = r->attempts < 20 ? r->attempts : 20;
    uint64_t base = (uint64_t)r->backoff_min_ms << shift;
    if (base > r->backoff_max_ms)
        base = r->backoff_max_ms;
    uint64_t delay = base / 2 + next_random(r) % (base / 2 + 1);
    r->attempts++;
    uv_timer_start(&r->conn_timer, on_conn_timer, delay, 0);
}

/* Take the current connection out of service: state down, every pending
 * command failed, reconnect scheduled. free_ac is 0 when hiredis is already
 * freeing the context (disconnect/connect-failure paths). */
static void conn_drop(jp_redis_t *r, int free_ac, int by_timeout, const char *why_in)
{
    redisAsyncContext *ac = r->ac;
    if (ac == NULL)
        return;
    char why[512];
    snprintf(why, sizeof(why), "%s", why_in); /* why_in may live in ac */
    int was_ready = r->state == ST_READY;
    r->ac = NULL;
    r->state = ST_DOWN;
    set_last_error(r, "%s", why);
    uv_timer_stop(&r->conn_timer);
    uv_timer_stop(&r->deadline_timer);
    if (was_ready) {
        r->stats.disconnects++;
        r->attempts = 0;
    } else {
        r->stats.connect_failures++;
    }
    schedule_reconnect(r);
    if (!r->closing)
        jp_warn(COMP, "%s: %s; reconnecting in %llu ms", r->where, why,
                (unsigned long long)uv_timer_get_due_in(&r->conn_timer));
    fail_all(r, by_timeout, why);
    if (free_ac)
        redisAsyncFree(ac);
    if (was_ready && !r->closing && r->on_state)
        r->on_state(r->opaque, 0);
}

static void connect_failed_now(jp_redis_t *r)
{
    r->stats.connect_failures++;
    schedule_reconnect(r);
    jp_warn(COMP, "%s: %s; reconnecting in %llu ms", r->where, r->last_error,
            (unsigned long long)uv_timer_get_due_in(&r->conn_timer));
}

/* Issue a command on the current connection without the readiness checks
 * (handshake, internal and resent commands). hiredis copies the arguments
 * into its output buffer before returning. */
static jp_err_t issue_argv(jp_redis_t *r, jp_redis_cb_t cb, void *opaque, int argc,
                           const char **argv, const size_t *argvlen, char *errstr,
                           size_t errstr_size)
{
    cmd_t *c = cmd_new(r, cb, opaque, 0, NULL, NULL);
    if (c == NULL)
        return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory for a Redis command");
    if (redisAsyncCommandArgv(r->ac, on_reply, c, argc, argv, argvlen) != REDIS_OK) {
        free(c);
        return jp_err_set(errstr, errstr_size, JP_ERR_REDIS, "Redis rejected the command");
    }
    enqueue(r, c);
    return JP_OK;
}

static void on_script_loaded(jp_redis_t *r, const redisReply *reply, jp_err_t err,
                             const char *errstr, void *opaque)
{
    const jp_redis_script_t *s = opaque;
    if (err != JP_OK) {
        if (reply != NULL) /* a lost connection reloads on reconnect */
            jp_error(COMP, "Lua script %.12s failed to load: %s", s->sha, errstr);
        return;
    }
    if (reply->type != REDIS_REPLY_STRING || strcmp(reply->str, s->sha) != 0)
        jp_error(COMP, "Lua script %.12s: SCRIPT LOAD returned another SHA", s->sha);
}

static void script_load(jp_redis_t *r, jp_redis_script_t *s)
{
    const char *argv[3] = {"SCRIPT", "LOAD", s->body};
    char err[256];
    if (issue_argv(r, on_script_loaded, s, 3, argv, NULL, err, sizeof(err)) != JP_OK)
        jp_error(COMP, "Lua script %.12s not loaded: %s", s->sha, err);
}

static void became_ready(jp_redis_t *r)
{
    r->state = ST_READY;
    r->attempts = 0;
    r->stats.connects++;
    if (r->ever_connected)
        r->stats.reconnects++;
    r->ever_connected = 1;
    jp_info(COMP, "connected to %s", r->where);
    /* Before on_state: the loads precede any user command on the wire. */
    for (jp_redis_script_t *s = r->scripts; s; s = s->next)
        script_load(r, s);
    if (r->on_state)
        r->on_state(r->opaque, 1);
}

static void on_handshake_reply(jp_redis_t *r, const redisReply *reply, jp_err_t err,
                               const char *errstr, void *opaque)
{
    const char *step = opaque;
    if (err != JP_OK) {
        /* Without a reply the connection is already being dropped. */
        if (reply != NULL && r->state == ST_HANDSHAKE && !r->closing) {
            char why[512];
            snprintf(why, sizeof(why), "%s failed: %s", step, errstr);
            conn_drop(r, 1, 0, why);
        }
        return;
    }
    if (step == STEP_PING && r->state == ST_HANDSHAKE && !r->closing)
        became_ready(r);
}

static int send_handshake(jp_redis_t *r)
{
    char err[256];
    if (r->password) {
        const char *argv[3] = {"AUTH", r->username ? r->username : r->password, r->password};
        int argc = r->username ? 3 : 2;
        if (issue_argv(r, on_handshake_reply, (void *)STEP_AUTH, argc, argv, NULL, err,
                       sizeof(err)) != JP_OK)
            return -1;
    }
    if (r->db != 0) {
        char db[16];
        snprintf(db, sizeof(db), "%d", r->db);
        const char *argv[2] = {"SELECT", db};
        if (issue_argv(r, on_handshake_reply, (void *)STEP_SELECT, 2, argv, NULL, err,
                       sizeof(err)) != JP_OK)
            return -1;
    }
    /* Always at least one round trip: readiness (and on_state, which may
     * destroy the client) is then reached from a reply callback, where
     * hiredis tolerates a free, never from the connect callback. */
    const char *argv[1] = {"PING"};
    return issue_argv(r, on_handshake_reply, (void *)STEP_PING, 1, argv, NULL, err, sizeof(err)) ==
                   JP_OK
               ? 0
               : -1;
}

static void on_connect(const redisAsyncContext *cac, int status)
{
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    jp_redis_t *r = ac->data;
    if (r->ac != ac)
        return;
    uv_timer_stop(&r->conn_timer);
    if (status != REDIS_OK) {
        char why[512];
        snprintf(why, sizeof(why), "connect failed: %s", ac->errstr);
        conn_drop(r, 0, 0, why); /* hiredis frees the context after we return */
        return;
    }
    r->state = ST_HANDSHAKE;
    if (r->unix_path == NULL)
        enable_keepalive(r, ac->c.fd);
    if (send_handshake(r) != 0) {
        /* Cannot free the context here: let the timer drop it. */
        uv_timer_start(&r->conn_timer, on_conn_timer, 0, 0);
    }
}

static void on_disconnect(const redisAsyncContext *cac, int status)
{
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    jp_redis_t *r = ac->data;
    if (r->ac != ac)
        return; /* a context we dropped ourselves */
    char why[512];
    snprintf(why, sizeof(why), "connection lost: %s",
             status == REDIS_OK || ac->err == 0 ? "closed" : ac->errstr);
    conn_drop(r, 0, 0, why);
}

static void start_connect(jp_redis_t *r)
{
    redisAsyncContext *ac =
        r->unix_path ? redisAsyncConnectUnix(r->unix_path) : redisAsyncConnect(r->host, r->port);
    if (ac == NULL) {
        set_last_error(r, "connect failed: out of memory");
        connect_failed_now(r);
        return;
    }
    if (ac->err) {
        set_last_error(r, "connect failed: %s", ac->errstr);
        redisAsyncFree(ac);
        connect_failed_now(r);
        return;
    }
    if (watch_attach(ac, r->loop) != 0) {
        set_last_error(r, "connect failed: cannot watch the socket");
        redisAsyncFree(ac);
        connect_failed_now(r);
        return;
    }
    ac->data = r;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    r->ac = ac;
    r->state = ST_CONNECTING;
    uv_timer_start(&r->conn_timer, on_conn_timer, r->connect_timeout_ms, 0);
}

static void on_conn_timer(uv_timer_t *t)
{
    jp_redis_t *r = t->data;
    char why[128];
    switch (r->state) {
    case ST_DOWN:
        start_connect(r);
        break;
    case ST_CONNECTING:
        snprintf(why, sizeof(why), "connect timed out after %u ms", r->connect_timeout_ms);
        conn_drop(r, 1, 0, why);
        break;
    case ST_HANDSHAKE:
        conn_drop(r, 1, 0, "handshake could not be sent");
        break;
    case ST_READY:
        break;
    }
}

static void on_deadline(uv_timer_t *t)
{
    jp_redis_t *r = t->data;
    uint64_t now = uv_now(r->loop);
    if (r->head == NULL)
        return;
    if (r->head->deadline > now) {
        uv_timer_start(&r->deadline_timer, on_deadline, r->head->deadline - now, 0);
        return;
    }
    conn_drop(r, 1, 1, "Redis connection reset: an earlier command timed out");
}

/* ---- replies ---------------------------------------------------------- */

static int is_noscript(const redisReply *reply)
{
    return reply->str != NULL && strncmp(reply->str, "NOSCRIPT", 8) == 0;
}

/* The EVALSHA's user callback moves to a new EVAL command; returns 0 if
 * it could not be sent (the caller then delivers the NOSCRIPT error). */
static int resend_as_eval(jp_redis_t *r, cmd_t *c)
{
    if (r->state != ST_READY || r->closing)
        return 0;
    const char **argv = c->argv;
    size_t *lens = c->argvlen;
    const char *saved0 = argv[0], *saved1 = argv[1];
    size_t l0 = lens[0], l1 = lens[1];
    argv[0] = "EVAL";
    lens[0] = 4;
    argv[1] = c->script->body;
    lens[1] = strlen(c->script->body);
    char err[128];
    jp_err_t e = issue_argv(r, c->cb, c->opaque, c->argc, argv, lens, err, sizeof(err));
    argv[0] = saved0;
    argv[1] = saved1;
    lens[0] = l0;
    lens[1] = l1;
    if (e != JP_OK)
        return 0;
    r->stats.script_fallbacks++;
    return 1;
}

static void deliver(jp_redis_t *r, cmd_t *c, const redisReply *reply)
{
    c->done = 1;
    if (reply->type == REDIS_REPLY_ERROR) {
        if (c->script != NULL && is_noscript(reply) && resend_as_eval(r, c))
            return;
        r->stats.error_replies++;
        c->cb(r, reply, JP_ERR_REDIS, reply->str ? reply->str : "error reply", c->opaque);
        return;
    }
    c->cb(r, reply, JP_OK, "", c->opaque);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    cmd_t *c = privdata;
    if (!c->done) {
        jp_redis_t *r = c->r;
        if (reply == NULL) {
            /* hiredis is failing the context's commands: drop it as a whole
             * (every pending command belongs to the current connection). */
            char why[512];
            snprintf(why, sizeof(why), "Redis connection lost: %s",
                     ac->err ? ac->errstr : "closed");
            if (r->ac == ac) {
                conn_drop(r, 0, 0, why);
            } else {
                list_unlink(r, c);
                c->done = 1;
                r->stats.failures++;
                c->cb(r, NULL, JP_ERR_REDIS, why, c->opaque);
            }
        } else {
            list_unlink(r, c);
            r->stats.replies++;
            deliver(r, c, reply);
        }
    }
    free(c);
}

/* ---- public API ------------------------------------------------------- */

static jp_err_t admit(jp_redis_t *r, jp_redis_cb_t cb, char *errstr, size_t errstr_size)
{
    if (r == NULL || cb == NULL)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "Redis command needs a client and a callback");
    if (r->closing)
        return jp_err_set(errstr, errstr_size, JP_ERR_REDIS, "Redis client closed");
    if (r->state != ST_READY) {
        r->stats.rejected++;
        return jp_err_set(errstr, errstr_size, JP_ERR_REDIS, "Redis not connected (%s)",
                          r->last_error[0] ? r->last_error : "connecting");
    }
    if (r->stats.pending >= r->max_pending) {
        r->stats.rejected++;
        return jp_err_set(errstr, errstr_size, JP_ERR_REDIS, "too many pending Redis commands (%u)",
                          r->max_pending);
    }
    return JP_OK;
}

/* Commands that put the connection in a push mode where one command gets
 * many replies: they break the one-callback-per-command contract. */
static int is_push_command(const char *name, size_t len)
{
    static const char *const banned[] = {"subscribe",   "psubscribe",   "ssubscribe",
                                         "unsubscribe", "punsubscribe", "sunsubscribe",
                                         "monitor"};
    for (size_t i = 0; i < sizeof(banned) / sizeof(banned[0]); i++)
        if (strlen(banned[i]) == len && strncasecmp(name, banned[i], len) == 0)
            return 1;
    return 0;
}

/* First argument of a RESP-formatted command ("*N\r\n$L\r\nNAME\r\n..."). */
static int formatted_name(const char *cmd, size_t len, const char **name, size_t *name_len)
{
    const char *p = memchr(cmd, '\n', len);
    if (p == NULL || (size_t)(++p - cmd) >= len || *p != '$')
        return -1;
    long n = strtol(p + 1, NULL, 10);
    const char *q = memchr(p, '\n', len - (size_t)(p - cmd));
    if (q == NULL || n < 0 || (size_t)(q + 1 - cmd) + (size_t)n > len)
        return -1;
    *name = q + 1;
    *name_len = (size_t)n;
    return 0;
}

jp_err_t jp_redis_command(jp_redis_t *r, jp_redis_cb_t cb, void *opaque, char *errstr,
                          size_t errstr_size, const char *fmt, ...)
{
    jp_err_t e = admit(r, cb, errstr, errstr_size);
    if (e != JP_OK)
        return e;
    if (fmt == NULL)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "Redis command format is NULL");
    char *buf = NULL;
    va_list ap;
    va_start(ap, fmt);
    int len = redisvFormatCommand(&buf, fmt, ap);
    va_end(ap);
    const char *name;
    size_t name_len;
    if (len <= 0 || formatted_name(buf, (size_t)len, &name, &name_len) != 0) {
        redisFreeCommand(buf);
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "Redis command could not be formatted");
    }
    if (is_push_command(name, name_len)) {
        redisFreeCommand(buf);
        return jp_err_set(errstr, errstr_size, JP_ERR_UNSUPPORTED,
                          "subscribe/monitor commands are not supported by this client");
    }
    cmd_t *c = cmd_new(r, cb, opaque, 0, NULL, NULL);
    if (c == NULL) {
        redisFreeCommand(buf);
        return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory for a Redis command");
    }
    int rc = redisAsyncFormattedCommand(r->ac, on_reply, c, buf, (size_t)len);
    redisFreeCommand(buf);
    if (rc != REDIS_OK) {
        free(c);
        return jp_err_set(errstr, errstr_size, JP_ERR_REDIS, "Redis rejected the command");
    }
    enqueue(r, c);
    return JP_OK;
}

jp_err_t jp_redis_commandargv(jp_redis_t *r, jp_redis_cb_t cb, void *opaque, int argc,
                              const char **argv, const size_t *argvlen, char *errstr,
                              size_t errstr_size)
{
    jp_err_t e = admit(r, cb, errstr, errstr_size);
    if (e != JP_OK)
        return e;
    if (argc <= 0 || argv == NULL)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "Redis command has no arguments");
    for (int i = 0; i < argc; i++)
        if (argv[i] == NULL)
            return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                              "Redis command argument %d is NULL", i);
    if (is_push_command(argv[0], argvlen ? argvlen[0] : strlen(argv[0])))
        return jp_err_set(errstr, errstr_size, JP_ERR_UNSUPPORTED,
                          "subscribe/monitor commands are not supported by this client");
    return issue_argv(r, cb, opaque, argc, argv, argvlen, errstr, errstr_size);
}

jp_err_t jp_redis_evalsha(jp_redis_t *r, const jp_redis_script_t *script, jp_redis_cb_t cb,
                          void *opaque, int nkeys, const char *const *keys, int nargs,
                          const char *const *args, char *errstr, size_t errstr_size)
{
    jp_err_t e = admit(r, cb, errstr, errstr_size);
    if (e != JP_OK)
        return e;
    if (script == NULL || nkeys < 0 || nargs < 0 || nkeys > 1024 || nargs > 1024 ||
        (nkeys > 0 && keys == NULL) || (nargs > 0 && args == NULL))
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "invalid EVALSHA arguments");
    int argc = 3 + nkeys + nargs;
    const char **argv = malloc((size_t)argc * sizeof(*argv));
    size_t *lens = malloc((size_t)argc * sizeof(*lens));
    if (argv == NULL || lens == NULL) {
        free(argv);
        free(lens);
        return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory for EVALSHA");
    }
    char numkeys[16];
    snprintf(numkeys, sizeof(numkeys), "%d", nkeys);
    argv[0] = "EVALSHA";
    argv[1] = script->sha;
    argv[2] = numkeys;
    for (int i = 0; i < nkeys; i++)
        argv[3 + i] = keys[i];
    for (int i = 0; i < nargs; i++)
        argv[3 + nkeys + i] = args[i];
    e = JP_OK;
    for (int i = 0; i < argc && e == JP_OK; i++) {
        if (argv[i] == NULL)
            e = jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "EVALSHA argument %d is NULL", i);
        else
            lens[i] = strlen(argv[i]);
    }
    cmd_t *c = NULL;
    if (e == JP_OK) {
        c = cmd_new(r, cb, opaque, argc, argv, lens);
        if (c == NULL)
            e = jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory for EVALSHA");
    }
    free(argv);
    free(lens);
    if (e != JP_OK)
        return e;
    c->script = script;
    if (redisAsyncCommandArgv(r->ac, on_reply, c, c->argc, c->argv, c->argvlen) != REDIS_OK) {
        free(c);
        return jp_err_set(errstr, errstr_size, JP_ERR_REDIS, "Redis rejected the command");
    }
    enqueue(r, c);
    return JP_OK;
}

jp_redis_script_t *jp_redis_script_new(jp_redis_t *r, const char *lua, char *errstr,
                                       size_t errstr_size)
{
    if (r == NULL || lua == NULL || lua[0] == '\0') {
        jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "Lua script is empty");
        return NULL;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(lua, strlen(lua), md, &mdlen, EVP_sha1(), NULL) != 1 || mdlen != 20) {
        jp_err_set(errstr, errstr_size, JP_ERR_INTERNAL, "SHA1 of the Lua script failed");
        return NULL;
    }
    jp_redis_script_t *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->body = strdup(lua)) == NULL) {
        free(s);
        jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory for a Lua script");
        return NULL;
    }
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < 20; i++) {
        s->sha[2 * i] = hex[md[i] >> 4];
        s->sha[2 * i + 1] = hex[md[i] & 15];
    }
    s->sha[40] = '\0';
    s->next = r->scripts;
    r->scripts = s;
    if (r->state == ST_READY && !r->closing)
        script_load(r, s);
    return s;
}

const char *jp_redis_script_sha(const jp_redis_script_t *script)
{
    return script ? script->sha : "";
}

static void free_client(jp_redis_t *r)
{
    jp_redis_script_t *s = r->scripts;
    while (s) {
        jp_redis_script_t *next = s->next;
        free(s->body);
        free(s);
        s = next;
    }
    free(r->host);
    free(r->unix_path);
    free(r->username);
    if (r->password) {
        /* Do not leave the secret in freed heap memory. */
        volatile char *p = r->password;
        while (*p)
            *p++ = '\0';
        free(r->password);
    }
    free(r);
}

static void on_handle_closed(uv_handle_t *h)
{
    jp_redis_t *r = h->data;
    if (--r->open_handles == 0)
        free_client(r);
}

static unsigned or_default(unsigned v, unsigned def)
{
    return v ? v : def;
}

jp_redis_t *jp_redis_new(uv_loop_t *loop, const jp_redis_opts_t *opts, char *errstr,
                         size_t errstr_size)
{
    if (loop == NULL || opts == NULL) {
        jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "Redis client needs a loop and options");
        return NULL;
    }
    int port = opts->port ? opts->port : 6379;
    if (opts->unix_path == NULL && (port < 1 || port > 65535)) {
        jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "Redis port %d is out of range", port);
        return NULL;
    }
    if (opts->db < 0) {
        jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "Redis database %d is negative", opts->db);
        return NULL;
    }
    if (opts->unix_path != NULL && opts->unix_path[0] == '\0') {
        jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "Redis unix socket path is empty");
        return NULL;
    }
    jp_redis_t *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory for the Redis client");
        return NULL;
    }
    r->loop = loop;
    r->port = port;
    r->db = opts->db;
    r->host = strdup(opts->host ? opts->host : "127.0.0.1");
    r->unix_path = dup_or_null(opts->unix_path);
    r->username = opts->username && opts->username[0] ? strdup(opts->username) : NULL;
    r->password = opts->password && opts->password[0] ? strdup(opts->password) : NULL;
    if (r->host == NULL || (opts->unix_path && !r->unix_path) ||
        (opts->username && opts->username[0] && !r->username) ||
        (opts->password && opts->password[0] && !r->password)) {
        free_client(r);
        jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory for the Redis client");
        return NULL;
    }
    r->command_timeout_ms = or_default(opts->command_timeout_ms, 2000);
    r->connect_timeout_ms = or_default(opts->connect_timeout_ms, 2000);
    r->backoff_min_ms = or_default(opts->backoff_min_ms, 100);
    r->backoff_max_ms = or_default(opts->backoff_max_ms, 5000);
    if (r->backoff_max_ms < r->backoff_min_ms)
        r->backoff_max_ms = r->backoff_min_ms;
    r->max_pending = or_default(opts->max_pending, 65536);
    r->on_state = opts->on_state;
    r->opaque = opts->opaque;
    r->rng = uv_hrtime() ^ ((uint64_t)(uintptr_t)r << 16) ^ (uint64_t)getpid();
    if (r->rng == 0)
        r->rng = 0x9e3779b97f4a7c15ULL;
    if (r->unix_path)
        snprintf(r->where, sizeof(r->where), "unix:%s", r->unix_path);
    else
        snprintf(r->where, sizeof(r->where), "%s:%d", r->host, r->port);

    uv_timer_init(loop, &r->conn_timer);
    uv_timer_init(loop, &r->deadline_timer);
    r->conn_timer.data = r;
    r->deadline_timer.data = r;
    r->open_handles = 2;
    start_connect(r);
    return r;
}

void jp_redis_destroy(jp_redis_t *r)
{
    if (r == NULL || r->closing)
        return;
    r->closing = 1;
    redisAsyncContext *ac = r->ac;
    r->ac = NULL;
    r->state = ST_DOWN;
    uv_close((uv_handle_t *)&r->conn_timer, on_handle_closed);
    uv_close((uv_handle_t *)&r->deadline_timer, on_handle_closed);
    fail_all(r, 0, "Redis client closed");
    if (ac)
        redisAsyncFree(ac);
}

int jp_redis_connected(const jp_redis_t *r)
{
    return r != NULL && r->state == ST_READY && !r->closing;
}

const char *jp_redis_last_error(const jp_redis_t *r)
{
    return r ? r->last_error : "";
}

void jp_redis_stats(const jp_redis_t *r, jp_redis_stats_t *out)
{
    if (out == NULL)
        return;
    if (r == NULL)
        memset(out, 0, sizeof(*out));
    else
        *out = r->stats;
}

/* ---- URL parsing ------------------------------------------------------ */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* %XX-decode [s, s+n) into out; -1 on bad escape, NUL byte or overflow. */
static int pct_decode(const char *s, size_t n, char *out, size_t out_size)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int ch = (unsigned char)s[i];
        if (ch == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = hexval((unsigned char)s[i + 1]), lo = hexval((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            ch = hi * 16 + lo;
            i += 2;
        }
        if (ch == 0 || o + 1 >= out_size)
            return -1;
        out[o++] = (char)ch;
    }
    out[o] = '\0';
    return 0;
}

static int parse_uint(const char *s, size_t n, long max, long *out)
{
    if (n == 0 || n > 9)
        return -1;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

static jp_err_t parse_userinfo(const char *s, size_t n, jp_redis_url_t *out, char *errstr,
                               size_t errstr_size)
{
    const char *colon = memchr(s, ':', n);
    if (colon == NULL)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "Redis URL credentials must be written [user]:password@");
    size_t ulen = (size_t)(colon - s);
    if (pct_decode(s, ulen, out->username, sizeof(out->username)) != 0 ||
        pct_decode(colon + 1, n - ulen - 1, out->password, sizeof(out->password)) != 0)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "Redis URL credentials are badly encoded or too long");
    return JP_OK;
}

static jp_err_t parse_tcp(const char *p, jp_redis_url_t *out, char *errstr, size_t errstr_size)
{
    const char *end = p + strcspn(p, "/?#");
    const char *at = NULL;
    for (const char *q = p; q < end; q++)
        if (*q == '@')
            at = q;
    if (at) {
        jp_err_t e = parse_userinfo(p, (size_t)(at - p), out, errstr, errstr_size);
        if (e != JP_OK)
            return e;
        p = at + 1;
    }
    const char *hend;
    const char *port_at = NULL;
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(end - p));
        if (rb == NULL)
            return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                              "Redis URL has an unterminated [IPv6] host");
        if (pct_decode(p + 1, (size_t)(rb - p - 1), out->host, sizeof(out->host)) != 0)
            return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "Redis URL host is invalid");
        hend = rb + 1;
        if (hend < end && *hend == ':')
            port_at = hend + 1;
        else if (hend != end)
            return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "Redis URL host is invalid");
    } else {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        hend = colon ? colon : end;
        if (colon)
            port_at = colon + 1;
        if ((size_t)(hend - p) >= sizeof(out->host))
            return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "Redis URL host is too long");
        memcpy(out->host, p, (size_t)(hend - p));
        out->host[hend - p] = '\0';
    }
    if (out->host[0] == '\0')
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "Redis URL has no host");
    if (port_at) {
        long port;
        if (parse_uint(port_at, (size_t)(end - port_at), 65535, &port) != 0 || port == 0)
            return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                              "Redis URL port must be 1-65535");
        out->port = (int)port;
    }
    if (*end == '/') {
        const char *db = end + 1;
        size_t n = strlen(db);
        if (n > 0) {
            long v;
            if (parse_uint(db, n, 65535, &v) != 0)
                return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                                  "Redis URL database must be a number 0-65535");
            out->db = (int)v;
        }
    } else if (*end != '\0') {
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "Redis URL has unsupported query or fragment");
    }
    return JP_OK;
}

static jp_err_t parse_unix(const char *p, jp_redis_url_t *out, char *errstr, size_t errstr_size)
{
    const char *slash = strchr(p, '/');
    if (slash == NULL)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "Redis unix URL needs an absolute path (unix:///path)");
    if (slash != p) {
        if (slash[-1] != '@')
            return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                              "Redis unix URL must not name a host");
        jp_err_t e = parse_userinfo(p, (size_t)(slash - 1 - p), out, errstr, errstr_size);
        if (e != JP_OK)
            return e;
    }
    const char *q = strchr(slash, '?');
    size_t plen = q ? (size_t)(q - slash) : strlen(slash);
    if (plen < 2 || plen >= sizeof(out->unix_path))
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "Redis unix socket path is empty or too long");
    memcpy(out->unix_path, slash, plen);
    out->unix_path[plen] = '\0';
    if (q) {
        long v;
        if (strncmp(q, "?db=", 4) != 0 || parse_uint(q + 4, strlen(q + 4), 65535, &v) != 0)
            return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                              "Redis unix URL accepts only ?db=N (0-65535)");
        out->db = (int)v;
    }
    return JP_OK;
}

jp_err_t jp_redis_parse_url(const char *url, jp_redis_url_t *out, char *errstr, size_t errstr_size)
{
    if (out == NULL)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "no output for the Redis URL");
    memset(out, 0, sizeof(*out));
    out->port = 6379;
    if (url == NULL)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "Redis URL is missing");
    jp_err_t e;
    if (strncmp(url, "redis://", 8) == 0)
        e = parse_tcp(url + 8, out, errstr, errstr_size);
    else if (strncmp(url, "unix://", 7) == 0)
        e = parse_unix(url + 7, out, errstr, errstr_size);
    else if (strncmp(url, "rediss://", 9) == 0)
        e = jp_err_set(errstr, errstr_size, JP_ERR_UNSUPPORTED,
                       "Redis over TLS (rediss://) is not supported by this build");
    else
        e = jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                       "Redis URL must start with redis:// or unix://");
    if (e != JP_OK) {
        /* Leave no half-parsed password behind. */
        memset(out, 0, sizeof(*out));
        out->port = 6379;
    }
    return e;
}

void jp_redis_url_apply(const jp_redis_url_t *url, jp_redis_opts_t *opts)
{
    if (url == NULL || opts == NULL)
        return;
    if (url->unix_path[0]) {
        opts->unix_path = url->unix_path;
    } else {
        opts->unix_path = NULL;
        opts->host = url->host;
        opts->port = url->port;
    }
    opts->username = url->username[0] ? url->username : NULL;
    opts->password = url->password[0] ? url->password : NULL;
    opts->db = url->db;
}
