/* jiraprov error codes shared by every module.
 *
 * Functions that can fail return jp_err_t and, where a caller needs to know
 * why, fill a caller-owned `char *errstr, size_t errstr_size` buffer with one
 * human-readable sentence (never containing a secret). */
#ifndef JIRAPROV_ERR_H
#define JIRAPROV_ERR_H

#include <stddef.h>

typedef enum jp_err {
    JP_OK = 0,
    JP_ERR_INVALID,     /* input does not meet its contract (event, config, argument) */
    JP_ERR_NOMEM,       /* allocation failed */
    JP_ERR_IO,          /* file or socket I/O failed */
    JP_ERR_NOT_FOUND,   /* the thing looked up does not exist */
    JP_ERR_CONFLICT,    /* the thing to create exists already */
    JP_ERR_TOO_LARGE,   /* input above a configured size limit */
    JP_ERR_UNSUPPORTED, /* well-formed but not something this build handles */
    JP_ERR_KAFKA,       /* librdkafka reported an error */
    JP_ERR_REDIS,       /* Redis reported an error or is unreachable */
    JP_ERR_HTTP,        /* transport or protocol failure talking to Jira */
    JP_ERR_TIMEOUT,     /* a bounded wait ran out */
    JP_ERR_INTERNAL     /* a broken invariant: a bug */
} jp_err_t;

/* Stable lower-case name of an error code ("invalid", "nomem", ...). */
const char *jp_err_name(jp_err_t err);

/* printf into errstr (always NUL-terminated, truncated if needed, never
 * inside a UTF-8 character); returns err
 * so that callers can write `return jp_err_set(errstr, n, JP_ERR_X, ...)`. */
jp_err_t jp_err_set(char *errstr, size_t errstr_size, jp_err_t err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
