/* Test helper: a small in-process HTTP/1.1 server (libmicrohttpd, one
 * internal epoll thread) on a free loopback port. Routes:
 *   /echo...       any method: 200, "X-Method: <m>", body describing the
 *                  request (method, raw path, a few headers, then the body)
 *   /close         200 "bye", then the server closes the connection
 *   /retry         429 with "Retry-After: 7" and two "X-Dup" headers
 *   /big?n=N       200 with N bytes and a Content-Length
 *   /chunked?n=N   200 with N bytes, chunked (no length known up front)
 *   anything else  404
 * The server sees the raw (still %-encoded) path. It counts connections so
 * tests can check a client's connection cap. */
#ifndef JP_TESTS_TESTSRV_H
#define JP_TESTS_TESTSRV_H

typedef struct testsrv testsrv_t;

testsrv_t *testsrv_start(void);
int testsrv_port(const testsrv_t *s);
int testsrv_max_open(const testsrv_t *s);    /* most connections open at once */
int testsrv_total_conns(const testsrv_t *s); /* connections accepted so far */
long testsrv_requests(const testsrv_t *s);
void testsrv_stop(testsrv_t *s);

#endif
