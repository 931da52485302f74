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

/* A message cut to fit must not end inside a UTF-8 character: the text would
 * no longer be UTF-8, and JSON encoders (results, dead letters) refuse it. */
static void trim_partial_utf8(char *s, size_t len)
{
    size_t i = len;
    while (i > 0 && len - i < 3 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
        i--;
    if (i == 0)
        return;
    unsigned char lead = (unsigned char)s[i - 1];
    size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    if (want > 1 && len - (i - 1) < want)
        s[i - 1] = '\0';
}

jp_err_t jp_err_set(char *errstr, size_t errstr_size, jp_err_t err, const char *fmt, ...)
{
    if (errstr && errstr_size > 0) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(errstr, errstr_size, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n >= errstr_size)
            trim_partial_utf8(errstr, errstr_size - 1);
    }
    return err;
}
