#include "jiraprov/httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

struct jp_httpd {
    struct MHD_Daemon *daemon;
    jp_httpd_handler *handler;
    void *opaque;
    int port;
};

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
    jp_httpd_t *h = cls;
    jp_httpd_reply_t reply = {200, "text/plain; charset=utf-8", NULL, 0};
    if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
        reply.status = MHD_HTTP_METHOD_NOT_ALLOWED;
    } else {
        h->handler(url, &reply, h->opaque);
    }
    struct MHD_Response *resp =
        reply.body
            ? MHD_create_response_from_buffer(reply.body_len, reply.body, MHD_RESPMEM_MUST_FREE)
            : MHD_create_response_from_buffer(0, (char *)"", MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(reply.body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", reply.content_type);
    enum MHD_Result rc = MHD_queue_response(conn, (unsigned)reply.status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static int parse_listen(const char *listen, struct sockaddr_in *sa, char *errstr,
                        size_t errstr_size)
{
    const char *colon = strrchr(listen, ':');
    char host[64];
    if (!colon || (size_t)(colon - listen) >= sizeof(host)) {
        jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                   "http.listen: expected host:port, got \"%s\"", listen);
        return -1;
    }
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    if (errno || *end || port < 0 || port > 65535 ||
        inet_pton(AF_INET, host[0] ? host : "0.0.0.0", &sa->sin_addr) != 1) {
        jp_err_set(errstr, errstr_size, JP_ERR_INVALID,
                   "http.listen: expected an IPv4 address and a port, got \"%s\"", listen);
        return -1;
    }
    sa->sin_port = htons((uint16_t)port);
    return 0;
}

jp_httpd_t *jp_httpd_new(const char *listen, jp_httpd_handler *handler, void *opaque, char *errstr,
                         size_t errstr_size)
{
    struct sockaddr_in sa;
    if (parse_listen(listen, &sa, errstr, errstr_size))
        return NULL;
    jp_httpd_t *h = calloc(1, sizeof(*h));
    if (!h) {
        jp_err_set(errstr, errstr_size, JP_ERR_NOMEM, "out of memory");
        return NULL;
    }
    h->handler = handler;
    h->opaque = opaque;
    h->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0, NULL, NULL,
                                 answer, h, MHD_OPTION_SOCK_ADDR, &sa,
                                 MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
    if (!h->daemon) {
        jp_err_set(errstr, errstr_size, JP_ERR_IO, "http.listen: cannot listen on %s", listen);
        free(h);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : ntohs(sa.sin_port);
    return h;
}

int jp_httpd_port(const jp_httpd_t *h)
{
    return h->port;
}

void jp_httpd_destroy(jp_httpd_t *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->daemon);
    free(h);
}
