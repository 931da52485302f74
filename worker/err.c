#include "jiraprov/err.h"

#include <stdarg.h>
#include <stdio.h>

const char *jp_err_name(jp_err_t err)
{
    switch (err) {
    case JP_OK:
        return "ok";
    case JP_ERR_INVALID:
        return "invalid";
    case JP_ERR_NOMEM:
        return "nomem";
    case JP_ERR_IO:
        return "io";
    case JP_ERR_NOT_FOUND:
        return "not_found";
    case JP_ERR_CONFLICT:
        return "conflict";
    case JP_ERR_TOO_LARGE:
        return "too_large";
    case JP_ERR_UNSUPPORTED:
        return "unsupported";
    case JP_ERR_KAFKA:
        return "kafka";
    case JP_ERR_REDIS:
        return "redis";
    case JP_ERR_HTTP:
        return "http";
    case JP_ERR_TIMEOUT:
        return "timeout";
    case JP_ERR_INTERNAL:
        return "internal";
    }
    return "unknown";
}

jp_err_t jp_err_set(char *errstr, size_t errstr_size, jp_err_t err, const char *fmt, ...)
{
    if (errstr && errstr_size > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errstr, errstr_size, fmt, ap);
        va_end(ap);
    }
    return err;
}
