/* jp_http against real servers: an in-process libmicrohttpd server
 * (tests/lib/testsrv.c), HTTPS servers with generated certificates, a
 * socket that listens but never accepts (the kernel completes the
 * handshake, nobody answers) and a closed port. */
#include "jiraprov/http.h"

#include "../lib/testsrv.c"
#include "../lib/testloop.c"

#include <check.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../lib/check_main.h"

/* ---- loop helpers ----------------------------------------------------- */

static void finish_loop(uv_loop_t *loop)
{
    uv_run(loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(loop), 0);
}

/* ---- response recorder ------------------------------------------------ */

typedef struct got {
    int calls;
    jp_err_t err;
    long status;
    CURLcode code;
    int cancelled;
    int sent;
    char body[4096];
    size_t body_len;
    char retry_after[32];
    char x_dup[32];
    char x_method[32];
    size_t nheaders;
    int64_t total_us;
    void *opaque_seen;
} got_t;

static void record(const jp_http_resp_t *resp, void *opaque)
{
    got_t *g = opaque;
    g->calls++;
    g->err = resp->err;
    g->status = resp->status;
    g->code = resp->curl_code;
    g->cancelled = resp->cancelled;
    g->sent = resp->request_sent;
    g->body_len = resp->body_len;
    g->total_us = resp->total_us;
    g->opaque_seen = resp->opaque;
    g->nheaders = resp->nheaders;
    size_t n = resp->body_len < sizeof(g->body) - 1 ? resp->body_len : sizeof(g->body) - 1;
    memcpy(g->body, resp->body, n);
    g->body[n] = '\0';
    const char *v = jp_http_resp_header(resp, "retry-after");
    snprintf(g->retry_after, sizeof(g->retry_after), "%s", v ? v : "");
    v = jp_http_resp_header(resp, "X-DUP");
    snprintf(g->x_dup, sizeof(g->x_dup), "%s", v ? v : "");
    v = jp_http_resp_header(resp, "x-method");
    snprintf(g->x_method, sizeof(g->x_method), "%s", v ? v : "");
    ck_assert_ptr_nonnull(resp->curl_error);
}

static int done1(void *arg)
{
    return ((got_t *)arg)->calls > 0;
}

static testsrv_t *srv;

static void start_srv(void)
{
    srv = testsrv_start();
    ck_assert_ptr_nonnull(srv);
}

static void stop_srv(void)
{
    testsrv_stop(srv);
    srv = NULL;
}

static void url_for(char *buf, size_t n, const char *path)
{
    snprintf(buf, n, "http://127.0.0.1:%d%s", testsrv_port(srv), path);
}

/* A socket that listens and never accepts: connects succeed, nothing is
 * ever answered. */
static int silent_listener(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(fd, 64), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void do_request(uv_loop_t *loop, jp_http_t *h, const jp_http_req_t *req, got_t *g)
{
    char err[256];
    memset(g, 0, sizeof(*g));
    ck_assert_msg(jp_http_request(h, req, record, g, err, sizeof(err)) == JP_OK, "%s", err);
    ck_assert(testloop_run_until(loop, done1, g, 10000));
}

/* ---- tests ------------------------------------------------------------ */

START_TEST(methods_bodies_and_headers)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[256], url[256];
    jp_http_t *h = jp_http_new(&loop, NULL, err, sizeof(err));
    ck_assert_ptr_nonnull(h);
    const char *hdrs[] = {"X-Test: hello world", "Content-Type: application/json"};
    static const struct {
        jp_http_method_t m;
        const char *name;
        const char *body;
        const char *len;
    } cases[] = {
        {JP_HTTP_GET, "GET", NULL, "-"},
        {JP_HTTP_POST, "POST", "{\"a\":1}", "7"},
        {JP_HTTP_PUT, "PUT", "{\"put\":true}", "12"},
        {JP_HTTP_PATCH, "PATCH", "[]", "2"},
        {JP_HTTP_DELETE, "DELETE", "{\"d\":0}", "7"},
        {JP_HTTP_DELETE, "DELETE", NULL, "-"},
        {JP_HTTP_PUT, "PUT", NULL, "0"},
        {JP_HTTP_POST, "POST", NULL, "0"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        url_for(url, sizeof(url), "/echo/item?x=1");
        jp_http_req_t req = {.method = cases[i].m, .url = url, .headers = hdrs, .nheaders = 2};
        if (cases[i].body) {
            req.body = cases[i].body;
            req.body_len = strlen(cases[i].body);
        }
        got_t g;
        do_request(&loop, h, &req, &g);
        ck_assert_int_eq(g.calls, 1);
        ck_assert_int_eq(g.err, JP_OK);
        ck_assert_int_eq(g.status, 200);
        ck_assert_int_eq(g.code, CURLE_OK);
        ck_assert(g.sent);
        ck_assert_ptr_eq(g.opaque_seen, &g);
        ck_assert_str_eq(g.x_method, cases[i].name);
        char want[512];
        snprintf(want, sizeof(want),
                 "%s /echo/item\nx=1\nx-test=hello world\nct=application/json\nlen=%s\nua=jiraprov/"
                 "%s\nexpect=-\n\n%s",
                 cases[i].name, cases[i].len, JP_VERSION, cases[i].body ? cases[i].body : "");
        ck_assert_str_eq(g.body, want);
        ck_assert(g.total_us > 0);
    }

    /* Binary body with NUL bytes, copied: the caller's buffer is reused at once. */
    char bin[5] = {'a', '\0', 'b', '\0', 'c'};
    url_for(url, sizeof(url), "/echo/bin");
    jp_http_req_t req = {.method = JP_HTTP_POST, .url = url, .body = bin, .body_len = 5};
    got_t g;
    memset(&g, 0, sizeof(g));
    ck_assert_int_eq(jp_http_request(h, &req, record, &g, err, sizeof(err)), JP_OK);
    memset(bin, 'X', sizeof(bin));
    url[0] = '\0';
    ck_assert(testloop_run_until(&loop, done1, &g, 10000));
    ck_assert_int_eq(g.status, 200);
    ck_assert_uint_ge(g.body_len, 5);
    ck_assert(memcmp(g.body + g.body_len - 5, "a\0b\0c", 5) == 0);
    ck_assert_ptr_nonnull(strstr(g.body, "len=5\n"));

    jp_http_stats_t st;
    jp_http_stats(h, &st);
    ck_assert_uint_eq(st.started, 9);
    ck_assert_uint_eq(st.completed[JP_HTTP_CLASS_OK], 9);
    ck_assert_uint_eq(st.in_flight, 0);
    jp_http_destroy(h);
    jp_http_destroy(NULL);
    finish_loop(&loop);
}
END_TEST

static int thread_count(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    int n = -1;
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, "Threads:", 8) == 0)
            n = (int)strtol(line + 8, NULL, 10);
    if (f)
        fclose(f);
    return n;
}

typedef struct conc {
    int done, ok, max_threads;
} conc_t;

static void conc_cb(const jp_http_resp_t *resp, void *opaque)
{
    conc_t *c = opaque;
    c->done++;
    if (resp->err == JP_OK && resp->status == 200)
        c->ok++;
    if (c->done % 250 == 0) {
        int t = thread_count();
        if (t > c->max_threads)
            c->max_threads = t;
    }
}

static int conc_done(void *arg)
{
    return ((conc_t *)arg)->done >= 2000;
}

static int conc_done200(void *arg)
{
    return ((conc_t *)arg)->done >= 200;
}

START_TEST(two_thousand_concurrent_requests)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[256], url[256];
    jp_http_opts_t o = {.max_connections = 16, .max_host_connections = 16};
    jp_http_t *h = jp_http_new(&loop, &o, err, sizeof(err));
    ck_assert_ptr_nonnull(h);
    int threads_before = thread_count();
    conc_t c = {0};
    uint64_t t0 = uv_hrtime();
    for (int i = 0; i < 2000; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/echo/%d", i);
        url_for(url, sizeof(url), path);
        jp_http_req_t req = {.method = JP_HTTP_GET, .url = url, .timeout_ms = 60000};
        ck_assert_int_eq(jp_http_request(h, &req, conc_cb, &c, err, sizeof(err)), JP_OK);
    }
    jp_http_stats_t st;
    jp_http_stats(h, &st);
    ck_assert_uint_eq(st.in_flight, 2000);
    ck_assert(testloop_run_until(&loop, conc_done, &c, 60000));
    double secs = (uv_hrtime() - t0) / 1e9;
    ck_assert_int_eq(c.ok, 2000);
    ck_assert_int_le(testsrv_max_open(srv), 16);
    /* One loop thread: no thread per request (the server has one). */
    ck_assert_int_le(c.max_threads, threads_before + 2);
    fprintf(stderr,
            "2000 concurrent GETs: %.3f s (%.0f req/s), server saw at most %d connections open, "
            "%d in total; threads %d -> %d\n",
            secs, 2000 / secs, testsrv_max_open(srv), testsrv_total_conns(srv), threads_before,
            c.max_threads);
    jp_http_stats(h, &st);
    ck_assert_uint_eq(st.completed[JP_HTTP_CLASS_OK], 2000);
    ck_assert_uint_eq(st.in_flight, 0);
    jp_http_destroy(h);
    finish_loop(&loop);
}
END_TEST

/* Every response closes its connection: sockets (and fd numbers) churn
 * constantly under the poll handles. */
START_TEST(connection_churn)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[256], url[256];
    jp_http_opts_t o = {.max_connections = 8, .max_host_connections = 8};
    jp_http_t *h = jp_http_new(&loop, &o, err, sizeof(err));
    ck_assert_ptr_nonnull(h);
    conc_t c = {0};
    url_for(url, sizeof(url), "/close");
    for (int i = 0; i < 2000; i++) {
        jp_http_req_t req = {.method = i % 2 ? JP_HTTP_POST : JP_HTTP_GET, .url = url};
        if (i % 2) {
            req.body = "x";
            req.body_len = 1;
        }
        ck_assert_int_eq(jp_http_request(h, &req, conc_cb, &c, err, sizeof(err)), JP_OK);
    }
    ck_assert(testloop_run_until(&loop, conc_done, &c, 60000));
    ck_assert_int_eq(c.ok, 2000);
    ck_assert_int_le(testsrv_max_open(srv), 8);
    ck_assert_int_ge(testsrv_total_conns(srv), 1000); /* really churned */
    jp_http_destroy(h);
    finish_loop(&loop);
}
END_TEST

/* Past max_active, requests wait inside the client (no curl handle, no
 * connection) and go out in order as slots free up; cancelling reaches the
 * waiting ones too, as never sent. */
static int silent_count;

static void count_cb(const jp_http_resp_t *resp, void *opaque)
{
    conc_t *c = opaque;
    c->done++;
    if (resp->err == JP_OK && resp->status == 200)
        c->ok++;
    if (resp->cancelled && !resp->request_sent)
        silent_count++;
}

START_TEST(waiting_requests_beyond_max_active)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[256], url[256];
    jp_http_opts_t o = {.max_connections = 64, .max_host_connections = 64, .max_active = 4};
    jp_http_t *h = jp_http_new(&loop, &o, err, sizeof(err));
    ck_assert_ptr_nonnull(h);
    conc_t c = {0};
    for (int i = 0; i < 200; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/echo/%d", i);
        url_for(url, sizeof(url), path);
        jp_http_req_t req = {.method = i % 2 ? JP_HTTP_PATCH : JP_HTTP_GET, .url = url};
        if (i % 2) {
            req.body = "{\"n\":1}";
            req.body_len = 7;
        }
        ck_assert_int_eq(jp_http_request(h, &req, conc_cb, &c, err, sizeof(err)), JP_OK);
    }
    jp_http_stats_t st;
    jp_http_stats(h, &st);
    ck_assert_uint_eq(st.in_flight, 200);
    ck_assert_uint_eq(st.waiting, 196);
    ck_assert(testloop_run_until(&loop, conc_done200, &c, 60000));
    ck_assert_int_eq(c.ok, 200);
    /* curl was never given more than 4, though it could open 64 connections. */
    ck_assert_int_le(testsrv_max_open(srv), 4);
    jp_http_stats(h, &st);
    ck_assert_uint_eq(st.in_flight, 0);
    ck_assert_uint_eq(st.waiting, 0);

    /* Waiting requests are cancelled as never sent. */
    int port;
    int lfd = silent_listener(&port);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/never", port);
    conc_t k = {0};
    silent_count = 0;
    for (int i = 0; i < 10; i++) {
        jp_http_req_t req = {.method = JP_HTTP_GET, .url = url, .timeout_ms = 10000};
        ck_assert_int_eq(jp_http_request(h, &req, count_cb, &k, err, sizeof(err)), JP_OK);
    }
    testloop_run_until(&loop, NULL, NULL, 100);
    jp_http_cancel_all(h);
    ck_assert_int_eq(k.done, 10);
    ck_assert_int_eq(silent_count, 6);
    jp_http_stats(h, &st);
    ck_assert_uint_eq(st.in_flight, 0);
    ck_assert_uint_eq(st.waiting, 0);
    jp_http_destroy(h);
    finish_loop(&loop);
    close(lfd);
}
END_TEST

START_TEST(timeout_after_send_is_unknown_outcome)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[256], url[128];
    jp_http_t *h = jp_http_new(&loop, NULL, err, sizeof(err));
    int port;
    int lfd = silent_listener(&port);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/never", port);
    jp_http_req_t req = {
        .method = JP_HTTP_POST, .url = url, .body = "{}", .body_len = 2, .timeout_ms = 300};
    got_t g;
    uint64_t t0 = uv_hrtime();
    do_request(&loop, h, &req, &g);
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    ck_assert_int_eq(g.err, JP_ERR_TIMEOUT);
    ck_assert_int_eq(g.code, CURLE_OPERATION_TIMEDOUT);
    ck_assert_int_eq(g.status, 0);
    ck_assert_int_eq(g.sent, 1); /* connected and written: the server may have acted */
    ck_assert_uint_ge(ms, 290);
    ck_assert_uint_lt(ms, 3000);
    jp_http_stats_t st;
    jp_http_stats(h, &st);
    ck_assert_uint_eq(st.completed[JP_HTTP_CLASS_TIMEOUT], 1);
    jp_http_destroy(h);
    finish_loop(&loop);
    close(lfd);
}
END_TEST

START_TEST(connection_refused_was_not_sent)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[256], url[128];
    jp_http_t *h = jp_http_new(&loop, NULL, err, sizeof(err));
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/x", closed_port());
    jp_http_req_t req = {.method = JP_HTTP_POST, .url = url, .body = "{}", .body_len = 2};
    got_t g;
    do_request(&loop, h, &req, &g);
    ck_assert_int_eq(g.calls, 1);
    ck_assert_int_eq(g.err, JP_ERR_HTTP);
    ck_assert_int_eq(g.code, CURLE_COULDNT_CONNECT);
    ck_assert_int_eq(g.sent, 0);
    ck_assert_int_eq(g.status, 0);
    ck_assert_int_eq(jp_http_classify(g.code), JP_HTTP_CLASS_CONNECT);
    jp_http_stats_t st;
    jp_http_stats(h, &st);
    ck_assert_uint_eq(st.completed[JP_HTTP_CLASS_CONNECT], 1);
    jp_http_destroy(h);
    finish_loop(&loop);
}
END_TEST

START_TEST(response_headers)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[256], url[128];
    jp_http_t *h = jp_http_new(&loop, NULL, err, sizeof(err));
    url_for(url, sizeof(url), "/retry");
    jp_http_req_t req = {.method = JP_HTTP_GET, .url = url};
    got_t g;
    do_request(&loop, h, &req, &g);
    ck_assert_int_eq(g.err, JP_OK); /* a 429 is a complete response */
    ck_assert_int_eq(g.status, 429);
    ck_assert_str_eq(g.retry_after, "7");
    ck_assert_str_eq(g.x_dup, "a"); /* the first of repeated headers */
    ck_assert_str_eq(g.body, "slow down");
    ck_assert_uint_ge(g.nheaders, 4);

    jp_http_resp_t none = {0};
    ck_assert_ptr_null(jp_http_resp_header(&none, "retry-after"));
    ck_assert_ptr_null(jp_http_resp_header(NULL, "x"));

    url_for(url, sizeof(url), "/nope");
    do_request(&loop, h, &req, &g);
    ck_assert_int_eq(g.status, 404);
    ck_assert_str_eq(g.retry_after, "");
    jp_http_destroy(h);
    finish_loop(&loop);
}
END_TEST

START_TEST(body_over_cap_is_an_error)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[256], url[128];
    jp_http_opts_t o = {.max_response_bytes = 1 << 20};
    jp_http_t *h = jp_http_new(&loop, &o, err, sizeof(err));
    jp_http_req_t req = {.method = JP_HTTP_GET, .url = url};
    got_t g;

    url_for(url, sizeof(url), "/big?n=2097152"); /* announced length */
    do_request(&loop, h, &req, &g);
    ck_assert_int_eq(g.err, JP_ERR_TOO_LARGE);
    ck_assert_int_eq(g.calls, 1);

    url_for(url, sizeof(url), "/chunked?n=2097152"); /* found out while reading */
    do_request(&loop, h, &req, &g);
    ck_assert_int_eq(g.err, JP_ERR_TOO_LARGE);
    ck_assert_uint_le(g.body_len, 1 << 20);

    url_for(url, sizeof(url), "/big?n=1048576"); /* exactly the cap */
    do_request(&loop, h, &req, &g);
    ck_assert_int_eq(g.err, JP_OK);
    ck_assert_uint_eq(g.body_len, 1 << 20);

    url_for(url, sizeof(url), "/chunked?n=1048576");
    do_request(&loop, h, &req, &g);
    ck_assert_int_eq(g.err, JP_OK);
    ck_assert_uint_eq(g.body_len, 1 << 20);

    jp_http_stats_t st;
    jp_http_stats(h, &st);
    ck_assert_uint_eq(st.completed[JP_HTTP_CLASS_TOO_LARGE], 2);
    ck_assert_uint_eq(st.completed[JP_HTTP_CLASS_OK], 2);
    jp_http_destroy(h);
    finish_loop(&loop);
}
END_TEST

START_TEST(escape_table)
{
    static const struct {
        const char *in;
        const char *out;
    } t[] = {
        {"plain-Name_1.2~x", "plain-Name_1.2~x"},
        {"", ""},
        {"a/b", "a%2Fb"},
        {"..", "%2E%2E"},
        {".", "%2E"},
        {"...", "%2E%2E%2E"},
        {"a..b", "a..b"},
        {"../etc/passwd", "..%2Fetc%2Fpasswd"},
        {"q?x=1&y=2", "q%3Fx%3D1%26y%3D2"},
        {"frag#1", "frag%231"},
        {"100%", "100%25"},
        {"%2F", "%252F"},
        {"line\r\nX-Evil: 1", "line%0D%0AX-Evil%3A%201"},
        {"\"quoted\" 'single'", "%22quoted%22%20%27single%27"},
        {"a+b c", "a%2Bb%20c"},
        {"j\xc3\xbcrgen@\xe6\x97\xa5.example", "j%C3%BCrgen%40%E6%97%A5.example"},
        {"back\\slash;semi,comma", "back%5Cslash%3Bsemi%2Ccomma"},
        {"\x7f\x01", "%7F%01"},
    };
    char out[128];
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        ssize_t n = jp_http_escape(t[i].in, out, sizeof(out));
        ck_assert_msg(n == (ssize_t)strlen(t[i].out), "case %zu: %zd", i, n);
        ck_assert_str_eq(out, t[i].out);
    }
    /* Exactly fitting vs one byte short. */
    ck_assert_int_eq(jp_http_escape("a/b", out, 6), 5);
    ck_assert_int_eq(jp_http_escape("a/b", out, 5), -1);
    ck_assert_str_eq(out, "");
    ck_assert_int_eq(jp_http_escape("abc", out, 3), -1);
    ck_assert_int_eq(jp_http_escape(NULL, out, sizeof(out)), -1);
    ck_assert_int_eq(jp_http_escape("x", NULL, 0), -1);
}
END_TEST

START_TEST(dot_segment_reaches_server_encoded)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[256], url[256], seg[32];
    jp_http_t *h = jp_http_new(&loop, NULL, err, sizeof(err));
    ck_assert_int_eq(jp_http_escape("..", seg, sizeof(seg)), 6);
    char path[64];
    snprintf(path, sizeof(path), "/echo/users/%s/admin", seg);
    url_for(url, sizeof(url), path);
    jp_http_req_t req = {.method = JP_HTTP_GET, .url = url};
    got_t g;
    do_request(&loop, h, &req, &g);
    ck_assert_int_eq(g.status, 200);
    ck_assert_ptr_nonnull(strstr(g.body, "GET /echo/users/%2E%2E/admin\n"));
    jp_http_destroy(h);
    finish_loop(&loop);
}
END_TEST

START_TEST(header_values_and_bad_requests)
{
    ck_assert(jp_http_header_ok("Bearer abc.def"));
    ck_assert(jp_http_header_ok("tab\tok"));
    ck_assert(jp_http_header_ok(""));
    ck_assert(!jp_http_header_ok("a\r\nX-Evil: 1"));
    ck_assert(!jp_http_header_ok("a\rb"));
    ck_assert(!jp_http_header_ok("a\nb"));
    ck_assert(!jp_http_header_ok("bell\a"));
    ck_assert(!jp_http_header_ok("del\x7f"));
    ck_assert(!jp_http_header_ok(NULL));
    ck_assert(!jp_http_header_okn("a\0b", 3));
    ck_assert(jp_http_header_okn("ab", 2));

    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[256], url[128];
    jp_http_t *h = jp_http_new(&loop, NULL, err, sizeof(err));
    url_for(url, sizeof(url), "/echo");
    got_t g = {0};
    const char *inj[] = {"X-Ok: 1", "Authorization: Bearer s3cr3t\r\nX-Evil: 1"};
    jp_http_req_t req = {.method = JP_HTTP_GET, .url = url, .headers = inj, .nheaders = 2};
    ck_assert_int_eq(jp_http_request(h, &req, record, &g, err, sizeof(err)), JP_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "header 1"));
    ck_assert_ptr_null(strstr(err, "s3cr3t")); /* values are never echoed */
    const char *noname[] = {": value"};
    req.headers = noname;
    req.nheaders = 1;
    ck_assert_int_eq(jp_http_request(h, &req, record, &g, err, sizeof(err)), JP_ERR_INVALID);
    const char *badname[] = {"X Bad: v"};
    req.headers = badname;
    ck_assert_int_eq(jp_http_request(h, &req, record, &g, err, sizeof(err)), JP_ERR_INVALID);
    req.nheaders = 0;

    static const char *bad_urls[] = {"ftp://127.0.0.1/x",  "file:///etc/passwd", "http://h/a b",
                                     "http://h/a\r\nX: y", "http://h/\xc3\xa9",  NULL};
    for (size_t i = 0; i < sizeof(bad_urls) / sizeof(bad_urls[0]); i++) {
        req.url = bad_urls[i];
        ck_assert_msg(jp_http_request(h, &req, record, &g, err, sizeof(err)) == JP_ERR_INVALID,
                      "accepted url #%zu", i);
    }
    req.url = url;
    req.body = "x";
    req.body_len = 1;
    ck_assert_int_eq(jp_http_request(h, &req, record, &g, err, sizeof(err)), JP_ERR_INVALID);
    req.method = (jp_http_method_t)42;
    ck_assert_int_eq(jp_http_request(h, &req, record, &g, err, sizeof(err)), JP_ERR_INVALID);
    ck_assert_int_eq(jp_http_request(h, NULL, record, &g, err, sizeof(err)), JP_ERR_INVALID);
    uv_run(&loop, UV_RUN_NOWAIT);
    ck_assert_int_eq(g.calls, 0); /* refused requests never call back */
    jp_http_stats_t st;
    jp_http_stats(h, &st);
    ck_assert_uint_eq(st.started, 0);
    jp_http_destroy(h);
    finish_loop(&loop);
}
END_TEST

typedef struct canc {
    jp_http_t *h;
    got_t *follow; /* a request issued from a cancelled callback */
    char url[128];
    int reissue;
    jp_err_t reissue_rc;
} canc_t;

static canc_t *cctx;

static void cancel_and_follow(const jp_http_resp_t *resp, void *opaque)
{
    record(resp, opaque);
    if (cctx->reissue) {
        cctx->reissue = 0;
        char err[256];
        jp_http_req_t req = {.method = JP_HTTP_GET, .url = cctx->url};
        cctx->reissue_rc = jp_http_request(cctx->h, &req, record, cctx->follow, err, sizeof(err));
    }
}

START_TEST(cancel_all_calls_back_once)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[256], url[128];
    jp_http_t *h = jp_http_new(&loop, NULL, err, sizeof(err));
    int port;
    int lfd = silent_listener(&port);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/never", port);
    got_t g[5], follow;
    memset(g, 0, sizeof(g));
    memset(&follow, 0, sizeof(follow));
    canc_t c = {.h = h, .follow = &follow, .reissue = 1};
    cctx = &c;
    url_for(c.url, sizeof(c.url), "/echo/after-cancel");
    for (int i = 0; i < 5; i++) {
        jp_http_req_t req = {.method = JP_HTTP_GET, .url = url, .timeout_ms = 10000};
        ck_assert_int_eq(
            jp_http_request(h, &req, i == 0 ? cancel_and_follow : record, &g[i], err, sizeof(err)),
            JP_OK);
    }
    testloop_run_until(&loop, NULL, NULL, 100); /* connected and written by now */
    jp_http_cancel_all(h);
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(g[i].calls, 1);
        ck_assert(g[i].cancelled);
        ck_assert_int_eq(g[i].code, CURLE_ABORTED_BY_CALLBACK);
        ck_assert_int_eq(g[i].err, JP_ERR_HTTP);
        ck_assert_int_eq(g[i].sent, 1);
    }
    ck_assert_int_eq(c.reissue_rc, JP_OK);
    /* The request issued from a cancelled callback still runs. */
    ck_assert(testloop_run_until(&loop, done1, &follow, 10000));
    ck_assert_int_eq(follow.status, 200);
    ck_assert(!follow.cancelled);
    testloop_run_until(&loop, NULL, NULL, 20);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(g[i].calls, 1);
    jp_http_stats_t st;
    jp_http_stats(h, &st);
    ck_assert_uint_eq(st.completed[JP_HTTP_CLASS_CANCELLED], 5);
    ck_assert_uint_eq(st.in_flight, 0);
    jp_http_destroy(h);
    finish_loop(&loop);
    close(lfd);
}
END_TEST

START_TEST(destroy_with_requests_in_flight)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[256], url[128];
    jp_http_t *h = jp_http_new(&loop, NULL, err, sizeof(err));
    int port;
    int lfd = silent_listener(&port);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/never", port);
    got_t g[10];
    memset(g, 0, sizeof(g));
    for (int i = 0; i < 10; i++) {
        jp_http_req_t req = {.method = JP_HTTP_GET, .url = url};
        ck_assert_int_eq(jp_http_request(h, &req, record, &g[i], err, sizeof(err)), JP_OK);
    }
    testloop_run_until(&loop, NULL, NULL, 50);
    jp_http_destroy(h);
    for (int i = 0; i < 10; i++) { /* before destroy returned */
        ck_assert_int_eq(g[i].calls, 1);
        ck_assert(g[i].cancelled);
    }
    finish_loop(&loop);
    close(lfd);
}
END_TEST

typedef struct dcb {
    jp_http_t *h;
    int calls[8];
    int cancelled[8];
    jp_err_t after_rc;
} dcb_t;

typedef struct dslot {
    dcb_t *d;
    int i;
} dslot_t;

static void destroy_first(const jp_http_resp_t *resp, void *opaque)
{
    dslot_t *s = opaque;
    s->d->calls[s->i]++;
    s->d->cancelled[s->i] = resp->cancelled;
    if (s->d->h) {
        jp_http_t *h = s->d->h;
        s->d->h = NULL;
        jp_http_destroy(h);
        char err[128];
        jp_http_req_t req = {.method = JP_HTTP_GET, .url = "http://127.0.0.1:1/"};
        s->d->after_rc = jp_http_request(h, &req, destroy_first, s, err, sizeof(err));
    }
}

static int dcb_any(void *arg)
{
    dcb_t *d = arg;
    for (int i = 0; i < 8; i++)
        if (d->calls[i])
            return 1;
    return 0;
}

START_TEST(destroy_from_callback)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[256], url[128];
    jp_http_t *h = jp_http_new(&loop, NULL, err, sizeof(err));
    dcb_t d = {.h = h, .after_rc = JP_OK};
    dslot_t slots[8];
    for (int i = 0; i < 8; i++) {
        slots[i] = (dslot_t){&d, i};
        url_for(url, sizeof(url), "/echo/d");
        jp_http_req_t req = {.method = JP_HTTP_GET, .url = url};
        ck_assert_int_eq(jp_http_request(h, &req, destroy_first, &slots[i], err, sizeof(err)),
                         JP_OK);
    }
    ck_assert(testloop_run_until(&loop, dcb_any, &d, 10000));
    ck_assert_int_eq(d.after_rc, JP_ERR_HTTP); /* refused once closing */
    int completed = 0, cancelled = 0;
    for (int i = 0; i < 8; i++) {
        ck_assert_int_eq(d.calls[i], 1);
        if (d.cancelled[i])
            cancelled++;
        else
            completed++;
    }
    ck_assert_int_ge(completed, 1);
    ck_assert_int_eq(completed + cancelled, 8);
    finish_loop(&loop);
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(d.calls[i], 1);
}
END_TEST

START_TEST(classes_and_options)
{
    ck_assert_int_eq(jp_http_classify(CURLE_OK), JP_HTTP_CLASS_OK);
    ck_assert_int_eq(jp_http_classify(CURLE_OPERATION_TIMEDOUT), JP_HTTP_CLASS_TIMEOUT);
    ck_assert_int_eq(jp_http_classify(CURLE_COULDNT_RESOLVE_HOST), JP_HTTP_CLASS_CONNECT);
    ck_assert_int_eq(jp_http_classify(CURLE_PEER_FAILED_VERIFICATION), JP_HTTP_CLASS_TLS);
    ck_assert_int_eq(jp_http_classify(CURLE_RECV_ERROR), JP_HTTP_CLASS_TRANSFER);
    ck_assert_int_eq(jp_http_classify(CURLE_GOT_NOTHING), JP_HTTP_CLASS_TRANSFER);
    ck_assert_int_eq(jp_http_classify(CURLE_FILESIZE_EXCEEDED), JP_HTTP_CLASS_TOO_LARGE);
    ck_assert_int_eq(jp_http_classify(CURLE_OUT_OF_MEMORY), JP_HTTP_CLASS_OTHER);
    ck_assert_str_eq(jp_http_class_name(JP_HTTP_CLASS_TLS), "tls");
    ck_assert_str_eq(jp_http_class_name(JP_HTTP_CLASS_COUNT), "unknown");

    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[256];
    jp_http_opts_t o = {.max_connections = -1};
    ck_assert_ptr_null(jp_http_new(&loop, &o, err, sizeof(err)));
    ck_assert_ptr_null(jp_http_new(NULL, NULL, err, sizeof(err)));
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

/* ---- TLS ------------------------------------------------------------- */

/* A self-signed certificate (EC P-256, valid for a day) for `san`
 * ("IP:127.0.0.1", "DNS:other.example") and its key, as PEM (caller frees). */
static void make_cert(const char *san, char **cert_pem, char **key_pem)
{
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *x = X509_new();
    ck_assert(key && x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"jiraprov test", -1,
                               -1, 0);
    X509_set_issuer_name(x, name);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, san);
    ck_assert_ptr_nonnull(ext);
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    ck_assert_int_gt(X509_sign(x, key, EVP_sha256()), 0);
    BIO *cb = BIO_new(BIO_s_mem()), *kb = BIO_new(BIO_s_mem());
    ck_assert(PEM_write_bio_X509(cb, x) &&
              PEM_write_bio_PrivateKey(kb, key, NULL, NULL, 0, NULL, NULL));
    char *p;
    long n = BIO_get_mem_data(cb, &p);
    *cert_pem = strndup(p, (size_t)n);
    n = BIO_get_mem_data(kb, &p);
    *key_pem = strndup(p, (size_t)n);
    BIO_free(cb);
    BIO_free(kb);
    X509_free(x);
    EVP_PKEY_free(key);
}

static enum MHD_Result tls_handler(void *cls, struct MHD_Connection *c, const char *url,
                                   const char *method, const char *version, const char *data,
                                   size_t *size, void **state)
{
    static const char body[] = "tls ok";
    struct MHD_Response *r =
        MHD_create_response_from_buffer(sizeof(body) - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
    enum MHD_Result ok = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ok;
}

/* An HTTPS server on 127.0.0.1 with the given certificate; *port set. */
static struct MHD_Daemon *tls_server(const char *cert, const char *key, int *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_TLS, 0, NULL,
                                            NULL, tls_handler, NULL, MHD_OPTION_SOCK_ADDR,
                                            (struct sockaddr *)&a, MHD_OPTION_HTTPS_MEM_KEY, key,
                                            MHD_OPTION_HTTPS_MEM_CERT, cert, MHD_OPTION_END);
    ck_assert_msg(d != NULL, "libmicrohttpd cannot serve TLS here");
    *port = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT)->port;
    return d;
}

/* Certificates are verified unless a request opts out: an unknown issuer and
 * a certificate for another name both fail as TLS errors (before anything is
 * sent); the right CA file, or the explicit opt-out, succeed. */
START_TEST(tls_verified_by_default)
{
    if (!MHD_is_feature_supported(MHD_FEATURE_TLS)) {
        fprintf(stderr, "test_http: libmicrohttpd has no TLS; tls_verified_by_default skipped\n");
        return;
    }
    char *cert, *key, *other_cert, *other_key, ca[64], other_ca[64], url[128], err[256];
    make_cert("IP:127.0.0.1,DNS:localhost", &cert, &key);
    make_cert("DNS:other.example", &other_cert, &other_key);
    snprintf(ca, sizeof(ca), "/tmp/jp-test-ca-%d.pem", (int)getpid());
    snprintf(other_ca, sizeof(other_ca), "/tmp/jp-test-ca-other-%d.pem", (int)getpid());
    FILE *f = fopen(ca, "w");
    fputs(cert, f);
    fclose(f);
    f = fopen(other_ca, "w");
    fputs(other_cert, f);
    fclose(f);
    int port, other_port;
    struct MHD_Daemon *d = tls_server(cert, key, &port),
                      *od = tls_server(other_cert, other_key, &other_port);
    uv_loop_t loop;
    uv_loop_init(&loop);
    jp_http_t *h = jp_http_new(&loop, NULL, err, sizeof(err));
    got_t g;

    snprintf(url, sizeof(url), "https://127.0.0.1:%d/", port);
    jp_http_req_t req = {.method = JP_HTTP_GET, .url = url};
    do_request(&loop, h, &req, &g);
    ck_assert_int_eq(g.err, JP_ERR_HTTP);
    ck_assert_int_eq(g.status, 0);
    ck_assert_int_eq(jp_http_classify(g.code), JP_HTTP_CLASS_TLS);
    ck_assert_int_eq(g.sent, 0);

    req.ca_file = ca;
    do_request(&loop, h, &req, &g);
    ck_assert_msg(g.err == JP_OK && g.status == 200, "with the CA: %d, curl %d", (int)g.err,
                  (int)g.code);
    ck_assert_str_eq(g.body, "tls ok");

    req.ca_file = NULL;
    req.insecure = 1;
    do_request(&loop, h, &req, &g);
    ck_assert_int_eq(g.status, 200);

    /* Trusted issuer, wrong name: the host name check refuses it. */
    snprintf(url, sizeof(url), "https://127.0.0.1:%d/", other_port);
    jp_http_req_t other = {.method = JP_HTTP_GET, .url = url, .ca_file = other_ca};
    do_request(&loop, h, &other, &g);
    ck_assert_int_eq(g.err, JP_ERR_HTTP);
    ck_assert_int_eq(jp_http_classify(g.code), JP_HTTP_CLASS_TLS);

    jp_http_destroy(h);
    finish_loop(&loop);
    MHD_stop_daemon(d);
    MHD_stop_daemon(od);
    unlink(ca);
    unlink(other_ca);
    free(cert);
    free(key);
    free(other_cert);
    free(other_key);
}
END_TEST

Suite *http_suite(void)
{
    Suite *s = suite_create("http");
    TCase *tc = tcase_create("server");
    tcase_add_checked_fixture(tc, start_srv, stop_srv);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, methods_bodies_and_headers);
    tcase_add_test(tc, two_thousand_concurrent_requests);
    tcase_add_test(tc, connection_churn);
    tcase_add_test(tc, waiting_requests_beyond_max_active);
    tcase_add_test(tc, timeout_after_send_is_unknown_outcome);
    tcase_add_test(tc, connection_refused_was_not_sent);
    tcase_add_test(tc, response_headers);
    tcase_add_test(tc, body_over_cap_is_an_error);
    tcase_add_test(tc, dot_segment_reaches_server_encoded);
    tcase_add_test(tc, header_values_and_bad_requests);
    tcase_add_test(tc, cancel_all_calls_back_once);
    tcase_add_test(tc, destroy_with_requests_in_flight);
    tcase_add_test(tc, destroy_from_callback);
    tcase_add_test(tc, tls_verified_by_default);
    suite_add_tcase(s, tc);
    TCase *pure = tcase_create("pure");
    tcase_add_test(pure, escape_table);
    tcase_add_test(pure, classes_and_options);
    suite_add_tcase(s, pure);
    return s;
}

JP_CHECK_MAIN(http_suite)
