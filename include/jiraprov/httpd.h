/* A small HTTP endpoint for probes and metrics (libmicrohttpd, its own
 * thread). The handler runs on that thread: it must only read state that is
 * safe to read concurrently (atomics, copies). Only GET is served.
 *
 * Ownership: the handler fills a jp_httpd_reply_t whose body it allocates
 * with malloc; the server frees it after sending. */
#ifndef JIRAPROV_HTTPD_H
#define JIRAPROV_HTTPD_H

#include "jiraprov/err.h"

#include <stddef.h>

typedef struct jp_httpd jp_httpd_t;

typedef struct jp_httpd_reply {
    int status;               /* default 200 */
    const char *content_type; /* static string; default text/plain */
    char *body;               /* malloc'd; may be NULL for an empty body */
    size_t body_len;
} jp_httpd_reply_t;

typedef void jp_httpd_handler(const char *path, jp_httpd_reply_t *reply, void *opaque);

/* listen: "host:port" (port 0 picks one). NULL with errstr on a bad address
 * or when the port is taken. */
jp_httpd_t *jp_httpd_new(const char *listen, jp_httpd_handler *handler, void *opaque, char *errstr,
                         size_t errstr_size);
/* The port actually bound. */
int jp_httpd_port(const jp_httpd_t *h);
void jp_httpd_destroy(jp_httpd_t *h); /* NULL ok */

#endif
