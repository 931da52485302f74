/* Asynchronous HTTP client: libcurl multi_socket API driven by libuv.
 *
 * curl tells us which sockets to watch (on_curl_socket: one uv_poll_t per
 * socket) and when to wake it (on_curl_timer: one uv_timer_t); we tell curl
 * what happened with curl_multi_socket_action and then collect finished
 * transfers with curl_multi_info_read.
 *
 * Re-entrancy: user callbacks run only from finish(), never from inside a
 * curl callback, so they may issue requests, cancel, or destroy the client.
 * `depth` counts our frames that use the multi handle; destroy releases curl
 * only when the outermost frame unwinds. jp_http_t memory is freed by the
 * last uv close callback. */
#include "jiraprov/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef JP_VERSION
#define JP_VERSION "0"
#endif

#define HEADER_BYTES_MAX (256 * 1024)
#define HEADERS_MAX      256

typedef struct sock_ctx {
    uv_poll_t poll;
    jp_http_t *h;
    curl_socket_t fd;
    int closing;
    struct sock_ctx *prev, *next;
} sock_ctx_t;

typedef struct call {
    struct call *prev, *next;
    struct call *qnext; /* waiting for a slot */
    jp_http_t *h;
    uint64_t seq;
    CURL *easy; /* NULL while the call waits for a slot */
    struct curl_slist *req_headers;
    /* The request as given, kept until curl has it (curl copies what it needs). */
    jp_http_method_t method;
    char *url;
    char *req_body;
    size_t req_body_len;
    long timeout_ms, connect_timeout_ms;
    int insecure;
    char *ca_file;
    jp_http_cb_t cb;
    void *opaque;
    char *body; /* response body, NUL-terminated */
    size_t body_len, body_cap;
    int too_large;
    char *hdr; /* "name\0value\0" pairs of the current header block */
    size_t hdr_len, hdr_cap, hdr_count;
    int hdr_overflow;
    char *errbuf; /* CURL_ERROR_SIZE bytes once curl has the call */
} call_t;

struct jp_http {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    call_t *head, *tail;   /* accepted and not finished, in seq order */
    call_t *qhead, *qtail; /* of those, the ones waiting for a slot, FIFO */
    size_t active;         /* handed to curl */
    size_t max_active;
    CURL **spare; /* easy handles of finished calls, reset, for reuse */
    size_t nspare;
    uint64_t seq;
    sock_ctx_t *socks;
    int depth;
    int closing;  /* destroy called: refuse new requests */
    int released; /* curl released, handles closing */
    int open_handles;
    size_t max_response;
    long timeout_ms, connect_timeout_ms;
    int http2;
    char *user_agent;
    jp_http_stats_t stats;
};

static void release(jp_http_t *h);

/* ---- bookkeeping -------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *handle)
{
    jp_http_t *h = handle->data;
    if (handle != (uv_handle_t *)&h->timer) {
        sock_ctx_t *s = (sock_ctx_t *)handle;
        if (s->prev)
            s->prev->next = s->next;
        else
            h->socks = s->next;
        if (s->next)
            s->next->prev = s->prev;
        free(s);
    }
    if (--h->open_handles == 0 && h->released) {
        free(h->user_agent);
        free(h);
    }
}

static void enter(jp_http_t *h)
{
    h->depth++;
}

static void leave(jp_http_t *h)
{
    if (--h->depth == 0 && h->closing)
        release(h);
}

static void call_unlink(jp_http_t *h, call_t *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        h->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        h->tail = c->prev;
    c->prev = c->next = NULL;
}

/* A finished call's easy handle is kept for the next call (up to one per
 * slot): creating one costs more than resetting it. */
static void easy_put(jp_http_t *h, CURL *e)
{
    if (h->nspare < h->max_active && !h->closing) {
        curl_easy_reset(e);
        h->spare[h->nspare++] = e;
    } else {
        curl_easy_cleanup(e);
    }
}

static void call_free(call_t *c)
{
    if (c->easy)
        easy_put(c->h, c->easy);
    curl_slist_free_all(c->req_headers);
    free(c->url);
    free(c->req_body);
    free(c->ca_file);
    free(c->body);
    free(c->hdr);
    free(c->errbuf);
    free(c);
}

/* ---- curl data callbacks -------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *userp)
{
    call_t *c = userp;
    size_t n = size * nmemb;
    size_t max = c->h->max_response;
    if (n > max - c->body_len) {
        c->too_large = 1;
        return 0; /* curl aborts with CURLE_WRITE_ERROR */
    }
    if (c->body_len + n + 1 > c->body_cap) {
        size_t cap = c->body_cap ? c->body_cap * 2 : 4096;
        while (cap < c->body_len + n + 1)
            cap *= 2;
        if (cap > max + 1)
            cap = max + 1;
        char *nb = realloc(c->body, cap);
        if (nb == NULL)
            return 0;
        c->body = nb;
        c->body_cap = cap;
    }
    memcpy(c->body + c->body_len, data, n);
    c->body_len += n;
    c->body[c->body_len] = '\0';
    return n;
}

static int is_blank(char ch)
{
    return ch == ' ' || ch == '\t';
}

static int hdr_append(call_t *c, const char *s, size_t n)
{
    if (c->hdr_len + n + 1 > HEADER_BYTES_MAX)
        return -1;
    if (c->hdr_len + n + 1 > c->hdr_cap) {
        size_t cap = c->hdr_cap ? c->hdr_cap * 2 : 1024;
        while (cap < c->hdr_len + n + 1)
            cap *= 2;
        char *nb = realloc(c->hdr, cap);
        if (nb == NULL)
            return -1;
        c->hdr = nb;
        c->hdr_cap = cap;
    }
    memcpy(c->hdr + c->hdr_len, s, n);
    c->hdr[c->hdr_len + n] = '\0';
    c->hdr_len += n + 1;
    return 0;
}

/* curl hands over one complete header line at a time. */
static size_t on_header(char *data, size_t size, size_t nitems, void *userp)
{
    call_t *c = userp;
    size_t n = size * nitems;
    size_t len = n;
    while (len > 0 && (data[len - 1] == '\r' || data[len - 1] == '\n'))
        len--;
    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        /* A new response block (after 1xx): keep only the final one. */
        c->hdr_len = 0;
        c->hdr_count = 0;
        return n;
    }
    if (len == 0 || is_blank(data[0]))
        return n; /* end of block, or an obsolete folded line */
    const char *colon = memchr(data, ':', len);
    if (colon == NULL || colon == data)
        return n;
    size_t nlen = (size_t)(colon - data);
    const char *v = colon + 1;
    size_t vlen = len - nlen - 1;
    while (vlen > 0 && is_blank(v[0])) {
        v++;
        vlen--;
    }
    while (vlen > 0 && is_blank(v[vlen - 1]))
        vlen--;
    if (c->hdr_count >= HEADERS_MAX || hdr_append(c, data, nlen) != 0 ||
        hdr_append(c, v, vlen) != 0) {
        c->hdr_overflow = 1;
        return 0;
    }
    c->hdr_count++;
    return n;
}

/* ---- completion ----------------------------------------------------------- */

static int64_t info_us(CURL *e, CURLINFO what)
{
    curl_off_t v = 0;
    if (curl_easy_getinfo(e, what, &v) != CURLE_OK)
        return 0;
    return (int64_t)v;
}

static void queue_remove(jp_http_t *h, call_t *c)
{
    call_t *prev = NULL;
    for (call_t *x = h->qhead; x; prev = x, x = x->qnext) {
        if (x != c)
            continue;
        if (prev)
            prev->qnext = c->qnext;
        else
            h->qhead = c->qnext;
        if (h->qtail == c)
            h->qtail = prev;
        c->qnext = NULL;
        h->stats.waiting--;
        return;
    }
}

/* Report the call to its owner exactly once and free it. */
static void finish(jp_http_t *h, call_t *c, CURLcode code, int cancelled)
{
    jp_http_resp_t resp;
    memset(&resp, 0, sizeof(resp));
    CURL *e = c->easy;
    long status = 0, reqsize = 0, version = 0;
    if (e) {
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(e, CURLINFO_REQUEST_SIZE, &reqsize);
        curl_easy_getinfo(e, CURLINFO_HTTP_VERSION, &version);
        resp.total_us = info_us(e, CURLINFO_TOTAL_TIME_T);
        resp.connect_us = info_us(e, CURLINFO_CONNECT_TIME_T);
        resp.starttransfer_us = info_us(e, CURLINFO_STARTTRANSFER_TIME_T);
        curl_multi_remove_handle(h->multi, e);
        h->active--;
    } else {
        queue_remove(h, c); /* never sent */
    }
    call_unlink(h, c);
    h->stats.in_flight--;

    resp.status = status;
    resp.http_version = version;
    resp.request_sent = reqsize > 0 || status > 0;
    resp.curl_code = code;
    resp.curl_error = c->errbuf && c->errbuf[0] ? c->errbuf : curl_easy_strerror(code);
    resp.opaque = c->opaque;
    jp_http_class_t cls;
    char msg[128];
    if (cancelled) {
        resp.cancelled = 1;
        resp.curl_code = CURLE_ABORTED_BY_CALLBACK;
        resp.curl_error = "request cancelled";
        resp.err = JP_ERR_HTTP;
        cls = JP_HTTP_CLASS_CANCELLED;
    } else if (c->too_large || c->hdr_overflow || code == CURLE_FILESIZE_EXCEEDED) {
        snprintf(msg, sizeof(msg), "response %s exceeds the limit of %zu bytes",
                 c->hdr_overflow ? "headers" : "body",
                 c->hdr_overflow ? (size_t)HEADER_BYTES_MAX : h->max_response);
        resp.curl_error = msg;
        resp.err = JP_ERR_TOO_LARGE;
        cls = JP_HTTP_CLASS_TOO_LARGE;
    } else {
        cls = jp_http_classify(code);
        resp.err = code == CURLE_OK                   ? JP_OK
                   : code == CURLE_OPERATION_TIMEDOUT ? JP_ERR_TIMEOUT
                                                      : JP_ERR_HTTP;
    }
    h->stats.completed[cls]++;

    jp_http_header_t hdrs_small[32];
    jp_http_header_t *hdrs = hdrs_small;
    if (c->hdr_count > 32) {
        hdrs = malloc(c->hdr_count * sizeof(*hdrs));
        if (hdrs == NULL)
            c->hdr_count = 0;
    }
    const char *p = c->hdr;
    for (size_t i = 0; i < c->hdr_count; i++) {
        hdrs[i].name = p;
        p += strlen(p) + 1;
        hdrs[i].value = p;
        p += strlen(p) + 1;
    }
    resp.headers = c->hdr_count ? hdrs : NULL;
    resp.nheaders = c->hdr_count;
    resp.body = c->body ? c->body : "";
    resp.body_len = c->body_len;

    c->cb(&resp, c->opaque);
    if (hdrs != hdrs_small)
        free(hdrs);
    call_free(c);
}

static int start_call(jp_http_t *h, call_t *c);

/* Hands waiting calls to curl while slots are free. Called from the loop
 * (never from inside jp_http_request), so a call that cannot start is
 * finished with an error through its callback. */
static void pump(jp_http_t *h)
{
    while (!h->closing && h->qhead && h->active < h->max_active) {
        call_t *c = h->qhead;
        h->qhead = c->qnext;
        if (!h->qhead)
            h->qtail = NULL;
        c->qnext = NULL;
        h->stats.waiting--;
        if (start_call(h, c) != 0)
            finish(h, c, CURLE_OUT_OF_MEMORY, 0);
    }
}

static void drain(jp_http_t *h)
{
    CURLMsg *m;
    int left;
    while (!h->closing && (m = curl_multi_info_read(h->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *e = m->easy_handle;
        CURLcode code = m->data.result;
        char *priv = NULL;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
        finish(h, (call_t *)priv, code, 0);
    }
    pump(h);
}

static void action(jp_http_t *h, curl_socket_t s, int ev)
{
    if (h->closing)
        return;
    int running = 0;
    enter(h);
    curl_multi_socket_action(h->multi, s, ev, &running);
    drain(h);
    leave(h);
}

/* ---- curl <-> libuv ------------------------------------------------------- */

static void on_poll(uv_poll_t *handle, int status, int events)
{
    sock_ctx_t *s = (sock_ctx_t *)handle;
    int ev = 0;
    if (status < 0)
        ev = CURL_CSELECT_ERR;
    else {
        if (events & UV_READABLE)
            ev |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            ev |= CURL_CSELECT_OUT;
    }
    action(s->h, s->fd, ev);
}

static void on_uv_timer(uv_timer_t *t)
{
    action(t->data, CURL_SOCKET_TIMEOUT, 0);
}

static void sock_close(sock_ctx_t *s)
{
    if (s->closing)
        return;
    s->closing = 1;
    uv_close((uv_handle_t *)&s->poll, on_handle_closed);
}

static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    jp_http_t *h = userp;
    sock_ctx_t *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            if (!h->released)
                curl_multi_assign(h->multi, fd, NULL);
            sock_close(s);
        }
        return 0;
    }
    if (h->released)
        return 0;
    if (s == NULL) {
        s = calloc(1, sizeof(*s));
        if (s == NULL)
            return -1;
        if (uv_poll_init_socket(h->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        s->h = h;
        s->fd = fd;
        s->poll.data = h;
        s->next = h->socks;
        if (h->socks)
            h->socks->prev = s;
        h->socks = s;
        h->open_handles++;
        curl_multi_assign(h->multi, fd, s);
    }
    int ev = 0;
    if (what & CURL_POLL_IN)
        ev |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        ev |= UV_WRITABLE;
    if (uv_poll_start(&s->poll, ev, on_poll) != 0)
        return -1;
    return 0;
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    jp_http_t *h = userp;
    if (h->released)
        return 0;
    if (timeout_ms < 0)
        uv_timer_stop(&h->timer);
    else
        uv_timer_start(&h->timer, on_uv_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

/* ---- lifecycle ------------------------------------------------------------ */

jp_http_t *jp_http_new(uv_loop_t *loop, const jp_http_opts_t *opts, char *errstr,
                       size_t errstr_size)
{
    jp_http_opts_t defaults = {0};
    if (opts == NULL)
        opts = &defaults;
    if (loop == NULL || opts->max_connections < 0 || opts->max_host_connections < 0 ||
        opts->max_active < 0 || opts->timeout_ms < 0 || opts->connect_timeout_ms < 0) {
        jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "invalid HTTP client options");
        return NULL;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        jp_err_set(errstr, errstr_size, JP_ERR_HTTP, "libcurl failed to initialise");
        return NULL;
    }
    jp_http_t *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        curl_global_cleanup();
        jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory for the HTTP client");
        return NULL;
    }
    h->loop = loop;
    h->max_response = opts->max_response_bytes ? opts->max_response_bytes : 16u << 20;
    h->timeout_ms = opts->timeout_ms ? opts->timeout_ms : 30000;
    h->connect_timeout_ms = opts->connect_timeout_ms ? opts->connect_timeout_ms : 5000;
    const curl_version_info_data *vi = curl_version_info(CURLVERSION_NOW);
    h->http2 = !opts->disable_http2 && (vi->features & CURL_VERSION_HTTP2);
    h->user_agent = strdup(opts->user_agent ? opts->user_agent : "jiraprov/" JP_VERSION);
    h->multi = curl_multi_init();
    if (h->user_agent == NULL || h->multi == NULL) {
        if (h->multi)
            curl_multi_cleanup(h->multi);
        free(h->user_agent);
        free(h);
        curl_global_cleanup();
        jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory for the HTTP client");
        return NULL;
    }
    long max_total = opts->max_connections ? opts->max_connections : 64;
    long max_host = opts->max_host_connections ? opts->max_host_connections : 16;
    h->max_active = (size_t)(opts->max_active ? opts->max_active : max_total);
    h->spare = calloc(h->max_active, sizeof(*h->spare));
    if (h->spare == NULL) {
        curl_multi_cleanup(h->multi);
        free(h->user_agent);
        free(h);
        curl_global_cleanup();
        jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory for the HTTP client");
        return NULL;
    }
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, max_total);
    curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, max_host);
    curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, max_total);
    /* No HTTP/1.1 pipelining; HTTP/2 streams share a connection. */
    curl_multi_setopt(h->multi, CURLMOPT_PIPELINING, h->http2 ? CURLPIPE_MULTIPLEX : 0L);
    uv_timer_init(loop, &h->timer);
    h->timer.data = h;
    h->open_handles = 1;
    return h;
}

/* Fail calls with seq <= limit as cancelled, oldest first. */
static void cancel_upto(jp_http_t *h, uint64_t limit)
{
    while (h->head != NULL && h->head->seq <= limit)
        finish(h, h->head, CURLE_ABORTED_BY_CALLBACK, 1);
}

void jp_http_cancel_all(jp_http_t *h)
{
    if (h == NULL || h->released)
        return;
    enter(h);
    cancel_upto(h, h->seq);
    pump(h); /* requests issued from the cancelled callbacks */
    leave(h);
}

static void release(jp_http_t *h)
{
    if (h->released)
        return;
    h->released = 1;
    cancel_upto(h, UINT64_MAX); /* nothing should be left; be certain */
    curl_multi_cleanup(h->multi);
    h->multi = NULL;
    for (size_t i = 0; i < h->nspare; i++)
        curl_easy_cleanup(h->spare[i]);
    free(h->spare);
    h->spare = NULL;
    h->nspare = 0;
    for (sock_ctx_t *s = h->socks; s; s = s->next)
        sock_close(s);
    uv_close((uv_handle_t *)&h->timer, on_handle_closed);
    curl_global_cleanup();
}

void jp_http_destroy(jp_http_t *h)
{
    if (h == NULL || h->closing)
        return;
    h->closing = 1;
    enter(h);
    cancel_upto(h, UINT64_MAX);
    leave(h);
}

/* ---- requests ------------------------------------------------------------- */

static int is_tchar(unsigned char ch)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
        return 1;
    return ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static jp_err_t check_header_line(const char *line, size_t i, char *errstr, size_t errstr_size)
{
    if (line == NULL)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "request header %zu is NULL", i);
    size_t n = 0;
    while (is_tchar((unsigned char)line[n]))
        n++;
    if (n == 0 || line[n] != ':')
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "request header %zu is not \"Name: value\"", i);
    /* The value is never quoted back: it may be a credential. */
    if (!jp_http_header_ok(line + n + 1))
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "request header %zu has a control character (CR, LF, ...)", i);
    return JP_OK;
}

static jp_err_t check_request(const jp_http_req_t *req, char *errstr, size_t errstr_size)
{
    if (req->url == NULL ||
        (strncmp(req->url, "http://", 7) != 0 && strncmp(req->url, "https://", 8) != 0))
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "request URL must start with http:// or https://");
    for (const unsigned char *p = (const unsigned char *)req->url; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f)
            return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                              "request URL has an unescaped space, control or non-ASCII byte");
    if ((int)req->method < JP_HTTP_GET || req->method > JP_HTTP_DELETE)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "unknown HTTP method");
    if (req->method == JP_HTTP_GET && req->body_len > 0)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "GET request with a body");
    if (req->body_len > 0 && req->body == NULL)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "request body is NULL");
    if (req->nheaders > HEADERS_MAX || (req->nheaders > 0 && req->headers == NULL))
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "bad request header list");
    for (size_t i = 0; i < req->nheaders; i++) {
        jp_err_t e = check_header_line(req->headers[i], i, errstr, errstr_size);
        if (e != JP_OK)
            return e;
    }
    if (req->timeout_ms < 0 || req->connect_timeout_ms < 0)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID, "negative request timeout");
    return JP_OK;
}

const char *jp_http_method_name(jp_http_method_t m)
{
    static const char *names[] = {"GET", "POST", "PUT", "PATCH", "DELETE"};
    return (unsigned)m <= JP_HTTP_DELETE ? names[m] : "OTHER";
}

void jp_http_url_path(const char *url, char *out, size_t size)
{
    const char *p = strstr(url, "://");
    p = p ? strchr(p + 3, '/') : NULL;
    if (!p)
        p = "/";
    size_t n = strcspn(p, "?#");
    if (n >= size)
        n = size - 1;
    memcpy(out, p, n);
    out[n] = '\0';
}

static int set_method(CURL *e, const call_t *c)
{
    int rc = 0;
    if (c->method == JP_HTTP_GET)
        return curl_easy_setopt(e, CURLOPT_HTTPGET, 1L) != CURLE_OK;
    if (c->method == JP_HTTP_POST)
        rc |= curl_easy_setopt(e, CURLOPT_POST, 1L) != CURLE_OK;
    else
        rc |=
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, jp_http_method_name(c->method)) != CURLE_OK;
    /* DELETE without a body sends none; the others always send a length. The
     * body is the call's own copy, alive until the call is freed. */
    if (c->method != JP_HTTP_DELETE || c->req_body_len > 0) {
        rc |= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->req_body_len) !=
              CURLE_OK;
        rc |=
            curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->req_body_len ? c->req_body : "") != CURLE_OK;
    }
    return rc;
}

static int setup_easy(jp_http_t *h, call_t *c)
{
    CURL *e = c->easy;
    int rc = 0;
#define SET(opt, val) rc |= curl_easy_setopt(e, opt, val) != CURLE_OK
    SET(CURLOPT_URL, c->url);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_PRIVATE, (void *)c);
    SET(CURLOPT_ERRORBUFFER, c->errbuf);
    /* Jira's answers are a few KiB: a 4 KiB receive buffer instead of curl's
     * 16 KiB saves 6 MiB at 512 calls in flight; bigger bodies take more reads. */
    SET(CURLOPT_BUFFERSIZE, 4096L);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, (void *)c);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, (void *)c);
    SET(CURLOPT_USERAGENT, h->user_agent);
    SET(CURLOPT_TIMEOUT_MS, c->timeout_ms ? c->timeout_ms : h->timeout_ms);
    SET(CURLOPT_CONNECTTIMEOUT_MS,
        c->connect_timeout_ms ? c->connect_timeout_ms : h->connect_timeout_ms);
    SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)h->max_response);
    SET(CURLOPT_ACCEPT_ENCODING, "");
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    SET(CURLOPT_TCP_KEEPIDLE, 60L);
    SET(CURLOPT_TCP_KEEPINTVL, 30L);
    SET(CURLOPT_SSL_VERIFYPEER, c->insecure ? 0L : 1L);
    SET(CURLOPT_SSL_VERIFYHOST, c->insecure ? 0L : 2L);
    if (c->ca_file)
        SET(CURLOPT_CAINFO, c->ca_file);
    SET(CURLOPT_HTTP_VERSION,
        h->http2 ? (long)CURL_HTTP_VERSION_2TLS : (long)CURL_HTTP_VERSION_1_1);
    /* Wait for a TLS connection's ALPN verdict rather than opening another,
     * so HTTP/2 requests share one connection. Plain http cannot multiplex:
     * waiting there would only delay requests behind a slow first one. */
    SET(CURLOPT_PIPEWAIT, h->http2 && strncmp(c->url, "https://", 8) == 0 ? 1L : 0L);
    SET(CURLOPT_HTTPHEADER, c->req_headers);
#undef SET
    rc |= set_method(e, c);
    return rc ? -1 : 0;
}

/* Gives the call to curl (a spare easy handle if there is one). */
static int start_call(jp_http_t *h, call_t *c)
{
    if (c->errbuf == NULL && (c->errbuf = calloc(1, CURL_ERROR_SIZE)) == NULL)
        return -1;
    c->easy = h->nspare ? h->spare[--h->nspare] : curl_easy_init();
    if (c->easy == NULL)
        return -1;
    if (setup_easy(h, c) != 0 || curl_multi_add_handle(h->multi, c->easy) != CURLM_OK) {
        curl_easy_cleanup(c->easy); /* its options may be half set: not a spare */
        c->easy = NULL;
        return -1;
    }
    h->active++;
    /* curl copied the strings it needs; the body stays (CURLOPT_POSTFIELDS). */
    free(c->url);
    free(c->ca_file);
    c->url = c->ca_file = NULL;
    return 0;
}

/* The request's headers, with no "Expect: 100-continue" round trip before
 * bodies. */
static struct curl_slist *header_list(const jp_http_req_t *req)
{
    struct curl_slist *l = curl_slist_append(NULL, "Expect:");
    for (size_t i = 0; l != NULL && i < req->nheaders; i++) {
        struct curl_slist *n = curl_slist_append(l, req->headers[i]);
        if (n == NULL) {
            curl_slist_free_all(l);
            l = NULL;
        } else {
            l = n;
        }
    }
    return l;
}

jp_err_t jp_http_request(jp_http_t *h, const jp_http_req_t *req, jp_http_cb_t cb, void *opaque,
                         char *errstr, size_t errstr_size)
{
    if (h == NULL || req == NULL || cb == NULL)
        return jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                          "HTTP request needs a client, a request and a callback");
    if (h->closing)
        return jp_err_set(errstr, errstr_size, JP_ERR_HTTP, "HTTP client closed");
    jp_err_t err = check_request(req, errstr, errstr_size);
    if (err != JP_OK)
        return err;
    call_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory for a request");
    c->h = h;
    c->cb = cb;
    c->opaque = opaque;
    c->method = req->method;
    c->timeout_ms = req->timeout_ms;
    c->connect_timeout_ms = req->connect_timeout_ms;
    c->insecure = req->insecure;
    c->req_body_len = req->body_len;
    c->url = strdup(req->url);
    c->ca_file = req->ca_file ? strdup(req->ca_file) : NULL;
    c->req_body = req->body_len ? malloc(req->body_len) : NULL;
    c->req_headers = header_list(req);
    if (!c->url || (req->ca_file && !c->ca_file) || (req->body_len && !c->req_body) ||
        !c->req_headers) {
        call_free(c);
        return jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory for a request");
    }
    if (req->body_len)
        memcpy(c->req_body, req->body, req->body_len);
    /* Past max_active the call waits here, costing its copy only; curl's
     * own queue would give each waiting call a handle and a receive buffer
     * (about 22 KiB). */
    if (h->active < h->max_active) {
        if (start_call(h, c) != 0) {
            call_free(c);
            return jp_err_set(errstr, errstr_size, JP_ERR_HTTP,
                              "libcurl refused the request (options, URL or TLS settings, or "
                              "out of memory)");
        }
    } else {
        if (h->qtail)
            h->qtail->qnext = c;
        else
            h->qhead = c;
        h->qtail = c;
        h->stats.waiting++;
    }
    c->seq = ++h->seq;
    c->prev = h->tail;
    if (h->tail)
        h->tail->next = c;
    else
        h->head = c;
    h->tail = c;
    h->stats.started++;
    h->stats.in_flight++;
    return JP_OK;
}

/* ---- small public helpers --------------------------------------------------- */

void jp_http_stats(const jp_http_t *h, jp_http_stats_t *out)
{
    if (out == NULL)
        return;
    if (h == NULL)
        memset(out, 0, sizeof(*out));
    else
        *out = h->stats;
}

jp_http_class_t jp_http_classify(CURLcode code)
{
    switch (code) {
    case CURLE_OK:
        return JP_HTTP_CLASS_OK;
    case CURLE_OPERATION_TIMEDOUT:
        return JP_HTTP_CLASS_TIMEOUT;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
        return JP_HTTP_CLASS_CONNECT;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_USE_SSL_FAILED:
        return JP_HTTP_CLASS_TLS;
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_BAD_CONTENT_ENCODING:
        return JP_HTTP_CLASS_TRANSFER;
    case CURLE_FILESIZE_EXCEEDED:
        return JP_HTTP_CLASS_TOO_LARGE;
    case CURLE_ABORTED_BY_CALLBACK:
        return JP_HTTP_CLASS_CANCELLED;
    default:
        return JP_HTTP_CLASS_OTHER;
    }
}

const char *jp_http_class_name(jp_http_class_t c)
{
    static const char *const names[JP_HTTP_CLASS_COUNT] = {
        "ok", "timeout", "connect", "tls", "transfer", "too_large", "cancelled", "other"};
    return (unsigned)c < JP_HTTP_CLASS_COUNT ? names[c] : "unknown";
}

static int lower(int ch)
{
    return ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch;
}

static int name_eq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (lower((unsigned char)*a) != lower((unsigned char)*b))
            return 0;
    return *a == *b;
}

const char *jp_http_resp_header(const jp_http_resp_t *resp, const char *name)
{
    if (resp == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < resp->nheaders; i++)
        if (name_eq(resp->headers[i].name, name))
            return resp->headers[i].value;
    return NULL;
}

static int unreserved(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '.' || ch == '_' || ch == '~';
}

ssize_t jp_http_escape(const char *in, char *out, size_t out_size)
{
    static const char hex[] = "0123456789ABCDEF";
    if (out == NULL || out_size == 0)
        return -1;
    out[0] = '\0';
    if (in == NULL)
        return -1;
    size_t dots = strspn(in, ".");
    int all_dots = dots > 0 && in[dots] == '\0';
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        if (unreserved(*p) && !(all_dots && *p == '.')) {
            if (o + 1 >= out_size)
                goto full;
            out[o++] = (char)*p;
        } else {
            if (o + 3 >= out_size)
                goto full;
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = '\0';
    return (ssize_t)o;
full:
    out[0] = '\0';
    return -1;
}

int jp_http_header_okn(const char *value, size_t len)
{
    if (value == NULL)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)value[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return 0;
    }
    return 1;
}

int jp_http_header_ok(const char *value)
{
    return value != NULL && jp_http_header_okn(value, strlen(value));
}
