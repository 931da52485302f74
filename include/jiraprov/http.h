/* Asynchronous HTTP client on the worker's libuv loop: libcurl's multi_socket
 * API (one uv_poll_t per socket curl uses, one uv_timer_t for curl's
 * timeouts). Thousands of requests can be in flight in one loop; no thread is
 * created per request (name resolution may use curl's resolver threads for
 * host names; numeric addresses need none).
 *
 * Requests
 *   jp_http_request() returns JP_OK when the request was accepted; its
 *   callback is then called EXACTLY ONCE, later, from the loop (or from
 *   jp_http_cancel_all / jp_http_destroy, with resp->cancelled set). When it
 *   returns an error (invalid request, client closing) nothing was started
 *   and the callback is never called.
 *
 *   The request is copied (URL, headers, body): the caller's buffers may be
 *   reused as soon as jp_http_request returns. At most opts.max_active
 *   requests are with curl at once; later ones wait in a FIFO inside the
 *   client and start, in order, as earlier ones finish. Header values are never
 *   logged. TLS peers are verified unless req->insecure is set. Redirects are
 *   not followed. Only http:// and https:// URLs are accepted.
 *
 * Responses
 *   resp->err is JP_OK when a complete HTTP response arrived, whatever its
 *   status; otherwise JP_ERR_TIMEOUT (curl timeout), JP_ERR_TOO_LARGE (body
 *   above max_response_bytes), or JP_ERR_HTTP (connect, TLS, protocol,
 *   cancelled: see curl_code and cancelled). request_sent tells whether any
 *   byte of the request was written to a connection: when it is 0 the server
 *   cannot have acted on the request (safe to retry anything); when it is 1
 *   and no complete response arrived, the outcome is unknown.
 *
 *   The response and everything it points to belong to the client and are
 *   valid only during the callback.
 *
 * Threading: none. Every function must be called on the loop's thread. */
#ifndef JIRAPROV_HTTP_H
#define JIRAPROV_HTTP_H

#include "jiraprov/err.h"

#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

typedef struct jp_http jp_http_t;

typedef enum jp_http_method {
    JP_HTTP_GET = 0,
    JP_HTTP_POST,
    JP_HTTP_PUT,
    JP_HTTP_PATCH,
    JP_HTTP_DELETE
} jp_http_method_t;

/* Zero-initialise, then set what you need; 0 members take the defaults. */
typedef struct jp_http_opts {
    long max_connections;      /* total open connections; default 64 */
    long max_host_connections; /* per host; default 16 */
    long max_active;           /* requests handed to curl at once; default max_connections.
                                  The others wait in the client's FIFO, holding only their
                                  copy (no curl handle, no receive buffer); their timeout
                                  starts when curl gets them */
    size_t max_response_bytes; /* body cap; default 16 MiB */
    long timeout_ms;           /* default total timeout per request; 30000 */
    long connect_timeout_ms;   /* default connect timeout; 5000 */
    int disable_http2;         /* 1: HTTP/1.1 only. Otherwise HTTP/2 over TLS
                                  with multiplexing when libcurl has it */
    const char *user_agent;    /* default "jiraprov/<version>" */
} jp_http_opts_t;

typedef struct jp_http_req {
    jp_http_method_t method;
    const char *url;            /* full URL, already escaped */
    const char *const *headers; /* "Name: value" lines (no CR/LF) */
    size_t nheaders;
    const void *body; /* copied; not allowed with GET */
    size_t body_len;
    long timeout_ms;         /* total; 0: the client's default */
    long connect_timeout_ms; /* 0: the client's default */
    int insecure;            /* 1: skip TLS verification (tests only) */
    const char *ca_file;     /* NULL: the system CA store */
} jp_http_req_t;

typedef struct jp_http_header {
    const char *name;  /* as received */
    const char *value; /* leading/trailing blanks removed */
} jp_http_header_t;

typedef struct jp_http_resp {
    jp_err_t err;
    long status;                     /* HTTP status, 0 if none was received */
    CURLcode curl_code;              /* CURLE_OK, CURLE_OPERATION_TIMEDOUT, ... */
    const char *curl_error;          /* curl's detailed message, or "" */
    int cancelled;                   /* 1: ended by jp_http_cancel_all / destroy */
    int request_sent;                /* see "Responses" above */
    const jp_http_header_t *headers; /* final response's headers, in order */
    size_t nheaders;
    const char *body; /* NUL-terminated for convenience; may hold NULs */
    size_t body_len;
    int64_t total_us;         /* whole transfer */
    int64_t connect_us;       /* until TCP connected (0 on a reused connection) */
    int64_t starttransfer_us; /* until the first response byte */
    long http_version;        /* CURL_HTTP_VERSION_1_1, _2_0, ... */
    void *opaque;             /* as passed to jp_http_request */
} jp_http_resp_t;

typedef void (*jp_http_cb_t)(const jp_http_resp_t *resp, void *opaque);

/* Outcome classes for metrics. */
typedef enum jp_http_class {
    JP_HTTP_CLASS_OK = 0, /* a response arrived (any status) */
    JP_HTTP_CLASS_TIMEOUT,
    JP_HTTP_CLASS_CONNECT, /* DNS or TCP connect failed */
    JP_HTTP_CLASS_TLS,
    JP_HTTP_CLASS_TRANSFER, /* send/receive/protocol error mid-exchange */
    JP_HTTP_CLASS_TOO_LARGE,
    JP_HTTP_CLASS_CANCELLED,
    JP_HTTP_CLASS_OTHER,
    JP_HTTP_CLASS_COUNT
} jp_http_class_t;

typedef struct jp_http_stats {
    uint64_t started;
    uint64_t completed[JP_HTTP_CLASS_COUNT];
    uint64_t in_flight; /* accepted, not finished (waiting ones included) */
    uint64_t waiting;   /* of those, waiting for one of the max_active slots */
} jp_http_stats_t;

jp_http_t *jp_http_new(uv_loop_t *loop, const jp_http_opts_t *opts, char *errstr,
                       size_t errstr_size);

/* Cancels every request in flight (each callback called once, cancelled),
 * then releases curl. Memory is released by the loop's close callbacks, so
 * run the loop afterwards. Accepts NULL; may be called from a callback. */
void jp_http_destroy(jp_http_t *h);

jp_err_t jp_http_request(jp_http_t *h, const jp_http_req_t *req, jp_http_cb_t cb, void *opaque,
                         char *errstr, size_t errstr_size) __attribute__((warn_unused_result));

/* Cancel every request in flight now; their callbacks run before this
 * returns. Requests issued from those callbacks are not cancelled. */
void jp_http_cancel_all(jp_http_t *h);

void jp_http_stats(const jp_http_t *h, jp_http_stats_t *out);
jp_http_class_t jp_http_classify(CURLcode code);
const char *jp_http_class_name(jp_http_class_t c);

/* First header called `name` (case-insensitive) of the final response, or
 * NULL. */
const char *jp_http_resp_header(const jp_http_resp_t *resp, const char *name);

/* Percent-encode `in` for use as ONE URL path segment or query value: RFC
 * 3986 unreserved characters (A-Z a-z 0-9 - . _ ~) are kept, every other byte
 * becomes %XX (so "/", "?", "#", "%", "&", "=", "+", quotes, spaces, CR/LF
 * and UTF-8 bytes are all encoded). An input made only of dots ("." or
 * "..") is encoded entirely, so it can never act as a dot-segment. Returns
 * the length written (without the NUL), or -1 if out_size is too small
 * (out is then ""). An empty input gives "": callers must refuse empty
 * path segments themselves. */
ssize_t jp_http_escape(const char *in, char *out, size_t out_size);

/* 1 if `value` can be sent as a header value: no CR, LF, NUL or other
 * control character except TAB. The _n form checks len bytes, so it also
 * catches an embedded NUL. */
int jp_http_header_ok(const char *value);
int jp_http_header_okn(const char *value, size_t len);

/* "GET", "POST", "PUT", "PATCH", "DELETE"; "OTHER" out of range. */
const char *jp_http_method_name(jp_http_method_t m);

/* The path of a URL into out (at most size - 1 bytes): no scheme, no
 * authority (hence no userinfo), no query string or fragment, so that it can
 * go into logs and records. "/" when the URL has none. */
void jp_http_url_path(const char *url, char *out, size_t size);

#endif
