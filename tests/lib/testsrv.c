#include "testsrv.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct testsrv {
    struct MHD_Daemon *d;
    int port;
    atomic_int open, max_open, total;
    atomic_long requests;
};

typedef struct reqbuf {
    char *data;
    size_t len;
} reqbuf_t;

static void srv_notify_conn(void *cls, struct MHD_Connection *c, void **socket_ctx,
                            enum MHD_ConnectionNotificationCode code)
{
    testsrv_t *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        int now = atomic_fetch_add(&s->open, 1) + 1;
        atomic_fetch_add(&s->total, 1);
        int m = atomic_load(&s->max_open);
        while (now > m && !atomic_compare_exchange_weak(&s->max_open, &m, now))
            ;
    } else {
        atomic_fetch_sub(&s->open, 1);
    }
}

static void srv_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                          enum MHD_RequestTerminationCode toe)
{
    reqbuf_t *rb = *con_cls;
    if (rb) {
        free(rb->data);
        free(rb);
        *con_cls = NULL;
    }
}

/* Keep the path as sent: tests check exactly what went on the wire. */
static size_t srv_no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    return strlen(s);
}

static const char *hdr_or_dash(struct MHD_Connection *c, const char *name)
{
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
    return v ? v : "-";
}

static const char *arg_or_dash(struct MHD_Connection *c, const char *name)
{
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
    return v ? v : "-";
}

static enum MHD_Result srv_queue(struct MHD_Connection *c, unsigned status, char *body, size_t len,
                                 const char *const *headers)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        len, body, body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    for (; headers && headers[0]; headers += 2)
        MHD_add_response_header(r, headers[0], headers[1]);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static ssize_t srv_chunk(void *cls, uint64_t pos, char *buf, size_t max)
{
    size_t total = (size_t)(uintptr_t)cls;
    if (pos >= total)
        return MHD_CONTENT_READER_END_OF_STREAM;
    size_t n = total - (size_t)pos;
    if (n > max)
        n = max;
    if (n > 4096)
        n = 4096;
    memset(buf, 'c', n);
    return (ssize_t)n;
}

static size_t query_n(struct MHD_Connection *c)
{
    const char *n = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "n");
    return n ? (size_t)strtoull(n, NULL, 10) : 0;
}

static enum MHD_Result srv_handler(void *cls, struct MHD_Connection *c, const char *url,
                                   const char *method, const char *version, const char *upload,
                                   size_t *upload_size, void **con_cls)
{
    testsrv_t *s = cls;
    reqbuf_t *rb = *con_cls;
    if (rb == NULL) {
        rb = calloc(1, sizeof(*rb));
        *con_cls = rb;
        return rb ? MHD_YES : MHD_NO;
    }
    if (*upload_size) {
        char *nd = realloc(rb->data, rb->len + *upload_size);
        if (nd == NULL)
            return MHD_NO;
        memcpy(nd + rb->len, upload, *upload_size);
        rb->data = nd;
        rb->len += *upload_size;
        *upload_size = 0;
        return MHD_YES;
    }
    atomic_fetch_add(&s->requests, 1);
    if (strncmp(url, "/echo", 5) == 0) {
        char head[2048];
        int hl = snprintf(head, sizeof(head),
                          "%s %s\nx=%s\nx-test=%s\nct=%s\nlen=%s\nua=%s\nexpect=%s\n\n", method,
                          url, arg_or_dash(c, "x"), hdr_or_dash(c, "X-Test"),
                          hdr_or_dash(c, "Content-Type"), hdr_or_dash(c, "Content-Length"),
                          hdr_or_dash(c, "User-Agent"), hdr_or_dash(c, "Expect"));
        if (hl < 0 || (size_t)hl >= sizeof(head))
            hl = 0;
        char *body = malloc((size_t)hl + rb->len + 1);
        if (body == NULL)
            return MHD_NO;
        memcpy(body, head, (size_t)hl);
        if (rb->len)
            memcpy(body + hl, rb->data, rb->len);
        const char *hdrs[] = {"X-Method", method, NULL};
        return srv_queue(c, 200, body, (size_t)hl + rb->len, hdrs);
    }
    if (strcmp(url, "/close") == 0) {
        const char *hdrs[] = {"Connection", "close", NULL};
        char *body = strdup("bye");
        return srv_queue(c, 200, body, body ? strlen(body) : 0, hdrs);
    }
    if (strcmp(url, "/retry") == 0) {
        const char *hdrs[] = {"Retry-After", "7", "X-Dup", "a", "X-Dup", "b", NULL};
        char *body = strdup("slow down");
        return srv_queue(c, 429, body, body ? strlen(body) : 0, hdrs);
    }
    if (strcmp(url, "/big") == 0) {
        size_t n = query_n(c);
        char *body = malloc(n ? n : 1);
        if (body == NULL)
            return MHD_NO;
        memset(body, 'b', n);
        return srv_queue(c, 200, body, n, NULL);
    }
    if (strcmp(url, "/chunked") == 0) {
        struct MHD_Response *r = MHD_create_response_from_callback(
            MHD_SIZE_UNKNOWN, 4096, srv_chunk, (void *)(uintptr_t)query_n(c), NULL);
        enum MHD_Result ret = MHD_queue_response(c, 200, r);
        MHD_destroy_response(r);
        return ret;
    }
    return srv_queue(c, 404, NULL, 0, NULL);
}

testsrv_t *testsrv_start(void)
{
    testsrv_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    s->d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, 0, NULL, NULL, srv_handler, s,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&a, MHD_OPTION_NOTIFY_CONNECTION, srv_notify_conn,
        s, MHD_OPTION_NOTIFY_COMPLETED, srv_completed, s, MHD_OPTION_UNESCAPE_CALLBACK,
        srv_no_unescape, s, MHD_OPTION_CONNECTION_LIMIT, (unsigned)4000,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_END);
    if (s->d == NULL) {
        free(s);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : 0;
    return s;
}

int testsrv_port(const testsrv_t *s)
{
    return s->port;
}

int testsrv_max_open(const testsrv_t *s)
{
    return atomic_load(&((testsrv_t *)s)->max_open);
}

int testsrv_total_conns(const testsrv_t *s)
{
    return atomic_load(&((testsrv_t *)s)->total);
}

long testsrv_requests(const testsrv_t *s)
{
    return atomic_load(&((testsrv_t *)s)->requests);
}

void testsrv_stop(testsrv_t *s)
{
    if (s == NULL)
        return;
    MHD_stop_daemon(s->d);
    free(s);
}
