/* Asynchronous Redis client on the worker's libuv loop (hiredis 0.14 async
 * API, driven by the client's own libuv glue rather than hiredis's adapter,
 * which ignores socket errors).
 *
 * One jp_redis_t is one TCP (or unix socket) connection, shared by every
 * module of a worker process; many worker processes share the Redis server.
 * Replies on one connection come back in order, so commands pipeline freely.
 *
 * Lifecycle
 *   jp_redis_new() starts connecting at once and never blocks; connection
 *   failures are not errors of _new: the client keeps reconnecting with
 *   jittered exponential backoff and reports transitions through
 *   opts.on_state. Each connection runs a handshake (AUTH if a password is
 *   set, SELECT if db != 0, PING) before it counts as connected, then loads
 *   the registered Lua scripts. Callers wait for on_state(opaque, 1) before
 *   issuing work.
 *
 * Detecting a dead server
 *   A connection closed or reset by the server (Redis shut down or killed,
 *   even with our commands unread) is seen as soon as the socket reports
 *   it: on_state(0) follows at once and pending commands fail with
 *   JP_ERR_REDIS, without waiting for the command timeout. A refused
 *   connect likewise fails its attempt at once. A server that goes silent
 *   (network partition, host lost) is noticed by the command timeout while
 *   commands are pending, and by TCP keepalive while idle: TCP connections
 *   probe after 15 s of silence, every 5 s, and give up after 3 unanswered
 *   probes (about 30 s). A frozen but running Redis host still answers the
 *   probes: only a command timeout notices it.
 *
 * Commands
 *   jp_redis_command*() and jp_redis_evalsha() return JP_OK when the command
 *   was accepted; its callback is then called EXACTLY ONCE, always later
 *   from the loop (never from inside the call that issued it). When they
 *   return an error (not connected, too many pending commands, bad
 *   arguments) the command was not sent and the callback is never called.
 *   Commands are never queued while disconnected. SUBSCRIBE-family and
 *   MONITOR commands (one command, many replies) are refused
 *   (JP_ERR_UNSUPPORTED).
 *
 *   The callback receives:
 *     err == JP_OK          reply != NULL, any type but REDIS_REPLY_ERROR
 *                           (errors nested inside arrays, e.g. EXEC results,
 *                           are left to the caller);
 *     err == JP_ERR_REDIS   with reply != NULL: Redis answered with an error
 *                           reply (reply->type == REDIS_REPLY_ERROR, errstr
 *                           is its text). The command reached Redis.
 *     err == JP_ERR_REDIS   with reply == NULL: the connection was lost or
 *                           reset, or the client was destroyed ("closed").
 *     err == JP_ERR_TIMEOUT reply == NULL: no reply within the command
 *                           timeout.
 *   Without a reply the command may or may not have been executed.
 *
 *   A command timeout tears the connection down, because later replies on
 *   it could no longer be matched to their commands: every other pending
 *   command fails too (JP_ERR_TIMEOUT if its own deadline had also passed,
 *   JP_ERR_REDIS otherwise) and the client reconnects.
 *
 * Ownership
 *   The reply and errstr passed to a callback belong to the client and are
 *   valid only during the callback. Options are copied by jp_redis_new; the
 *   password is never logged nor put into any error text (register it with
 *   jp_log_add_secret like every secret). Scripts belong to the client and
 *   are freed by jp_redis_destroy.
 *
 * Threading: none. Every function must be called on the loop's thread. */
#ifndef JIRAPROV_REDIS_H
#define JIRAPROV_REDIS_H

#include "jiraprov/err.h"

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define JP_REDIS_WARN_UNUSED __attribute__((warn_unused_result))

typedef struct jp_redis jp_redis_t;
typedef struct jp_redis_script jp_redis_script_t;

typedef void (*jp_redis_cb_t)(jp_redis_t *r, const redisReply *reply, jp_err_t err,
                              const char *errstr, void *opaque);

/* Zero-initialise, then set what you need; 0 / NULL members take the
 * defaults shown. */
typedef struct jp_redis_opts {
    const char *host;            /* default "127.0.0.1"; a numeric address avoids a
                                    blocking name lookup at each (re)connect */
    int port;                    /* default 6379 */
    const char *unix_path;       /* when set, host and port are ignored */
    const char *username;        /* ACL user for AUTH; NULL: the default user */
    const char *password;        /* secret; NULL or "": no AUTH */
    int db;                      /* SELECT on connect when not 0 */
    unsigned command_timeout_ms; /* default 2000 */
    unsigned connect_timeout_ms; /* TCP/unix connect only; default 2000 */
    unsigned backoff_min_ms;     /* first reconnect delay; default 100 */
    unsigned backoff_max_ms;     /* cap; default 5000 */
    unsigned max_pending;        /* commands awaiting a reply; default 65536 */
    /* Called on transitions only: 1 once a connection completed its
     * handshake, 0 when a connected client lost its connection. May call
     * any function of this API, including jp_redis_destroy. */
    void (*on_state)(void *opaque, int connected);
    void *opaque;
} jp_redis_opts_t;

/* Counters since jp_redis_new, for metrics. */
typedef struct jp_redis_stats {
    uint64_t commands_sent;    /* accepted commands, internal ones included */
    uint64_t replies;          /* replies received, error replies included */
    uint64_t error_replies;    /* REDIS_REPLY_ERROR replies */
    uint64_t failures;         /* callbacks without a reply (timeouts too) */
    uint64_t timeouts;         /* callbacks with JP_ERR_TIMEOUT */
    uint64_t rejected;         /* commands refused at once (not connected, full) */
    uint64_t connects;         /* handshakes completed */
    uint64_t reconnects;       /* connects after the first one */
    uint64_t connect_failures; /* connect or handshake attempts that failed */
    uint64_t disconnects;      /* established connections lost */
    uint64_t script_fallbacks; /* EVALSHA answered NOSCRIPT and was resent as EVAL */
    uint32_t pending;          /* commands awaiting a reply now */
} jp_redis_stats_t;

/* Parsed form of a Redis URL; the strings live in the struct. */
typedef struct jp_redis_url {
    char host[256];
    int port;
    char unix_path[108];
    char username[128];
    char password[256];
    int db;
} jp_redis_url_t;

/* Parse "redis://[[user]:password@]host[:port][/db]" (host may be a
 * bracketed IPv6 address; user and password may be %XX-encoded) or
 * "unix://[[user]:password@]/path[?db=N]". Error texts never quote the URL,
 * which may carry the password. */
jp_err_t jp_redis_parse_url(const char *url, jp_redis_url_t *out, char *errstr, size_t errstr_size);
/* Point the connection members of opts (host, port, unix_path, username,
 * password, db) at `url`, which must outlive the jp_redis_new call. */
void jp_redis_url_apply(const jp_redis_url_t *url, jp_redis_opts_t *opts);

/* Returns NULL with errstr set on invalid options or allocation failure. */
jp_redis_t *jp_redis_new(uv_loop_t *loop, const jp_redis_opts_t *opts, char *errstr,
                         size_t errstr_size);

/* Fails every pending command ("closed", JP_ERR_REDIS) before returning,
 * then closes the connection. Memory is released by the loop's close
 * callbacks, so run the loop afterwards (as for any libuv handle). Accepts
 * NULL; may be called from any callback of this client. */
void jp_redis_destroy(jp_redis_t *r);

/* 1 when connected and handshaken, else 0. */
int jp_redis_connected(const jp_redis_t *r);

/* Why the last connection attempt or connection failed ("" if none); valid
 * until the next loop callback. Never contains the password. */
const char *jp_redis_last_error(const jp_redis_t *r);

/* hiredis format string (%s, %b with pointer and length, ...). */
jp_err_t jp_redis_command(jp_redis_t *r, jp_redis_cb_t cb, void *opaque, char *errstr,
                          size_t errstr_size, const char *fmt, ...) JP_REDIS_WARN_UNUSED;

/* argvlen may be NULL when every argument is a NUL-terminated string. */
jp_err_t jp_redis_commandargv(jp_redis_t *r, jp_redis_cb_t cb, void *opaque, int argc,
                              const char **argv, const size_t *argvlen, char *errstr,
                              size_t errstr_size) JP_REDIS_WARN_UNUSED;

/* Register a Lua script with the client: its SHA1 is computed here, and the
 * script is sent with SCRIPT LOAD now (if connected) and after every
 * (re)connect. A failed load is logged; calls then get Redis's error. */
jp_redis_script_t *jp_redis_script_new(jp_redis_t *r, const char *lua, char *errstr,
                                       size_t errstr_size);
/* 40 lower-case hex digits. */
const char *jp_redis_script_sha(const jp_redis_script_t *script);

/* EVALSHA sha nkeys keys... args...; if Redis answers NOSCRIPT (its script
 * cache was flushed or it restarted) the command is resent once as EVAL with
 * the script body, transparently: the callback sees only the final result.
 * keys and args are NUL-terminated strings. */
jp_err_t jp_redis_evalsha(jp_redis_t *r, const jp_redis_script_t *script, jp_redis_cb_t cb,
                          void *opaque, int nkeys, const char *const *keys, int nargs,
                          const char *const *args, char *errstr,
                          size_t errstr_size) JP_REDIS_WARN_UNUSED;

void jp_redis_stats(const jp_redis_t *r, jp_redis_stats_t *out);

#endif
