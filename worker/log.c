#include "jiraprov/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOG_LINE_MAX   8192
#define LOG_MIN_SECRET 4

/* Process-global logger state; the mutex makes lines from librdkafka's
 * threads and the loop thread come out whole and in one piece. */
static struct {
    pthread_mutex_t lock;
    jp_log_level_t level;
    FILE *stream;
    char **secrets;
    size_t nsecrets;
} logger = {PTHREAD_MUTEX_INITIALIZER, JP_LOG_INFO, NULL, NULL, 0};

static const char *level_names[] = {"debug", "info", "warn", "error", "off"};

void jp_log_set_level(jp_log_level_t level)
{
    logger.level = level;
}

jp_log_level_t jp_log_get_level(void)
{
    return logger.level;
}

void jp_log_set_stream(FILE *stream)
{
    pthread_mutex_lock(&logger.lock);
    logger.stream = stream;
    pthread_mutex_unlock(&logger.lock);
}

int jp_log_level_parse(const char *name)
{
    if (!name)
        return -1;
    if (!strcmp(name, "warning"))
        return JP_LOG_WARN;
    for (int i = 0; i <= JP_LOG_OFF; i++)
        if (!strcmp(name, level_names[i]))
            return i;
    return -1;
}

const char *jp_log_level_name(jp_log_level_t level)
{
    return level <= JP_LOG_OFF ? level_names[level] : "unknown";
}

int jp_log_add_secret(const char *secret)
{
    if (!secret || strlen(secret) < LOG_MIN_SECRET)
        return 0;
    int rc = -1;
    pthread_mutex_lock(&logger.lock);
    for (size_t i = 0; i < logger.nsecrets; i++)
        if (!strcmp(logger.secrets[i], secret)) {
            rc = 0;
            goto out;
        }
    char **grown = realloc(logger.secrets, (logger.nsecrets + 1) * sizeof(*grown));
    if (!grown)
        goto out;
    logger.secrets = grown;
    if (!(logger.secrets[logger.nsecrets] = strdup(secret)))
        goto out;
    logger.nsecrets++;
    rc = 0;
out:
    pthread_mutex_unlock(&logger.lock);
    return rc;
}

void jp_log_clear_secrets(void)
{
    pthread_mutex_lock(&logger.lock);
    for (size_t i = 0; i < logger.nsecrets; i++)
        free(logger.secrets[i]);
    free(logger.secrets);
    logger.secrets = NULL;
    logger.nsecrets = 0;
    pthread_mutex_unlock(&logger.lock);
}

/* Longest registered secret that starts at `s`, or 0. Caller holds the lock. */
static size_t secret_at(const char *s)
{
    size_t best = 0;
    for (size_t i = 0; i < logger.nsecrets; i++) {
        size_t n = strlen(logger.secrets[i]);
        if (n > best && !strncmp(s, logger.secrets[i], n))
            best = n;
    }
    return best;
}

static void redact_locked(const char *in, char *out, size_t out_size)
{
    static const char mark[] = "[redacted]";
    size_t o = 0;
    if (out_size == 0)
        return;
    /* Most text holds no secret: strstr (vectorised) finds that out far faster
     * than trying every secret at every byte, and the text is copied as it is. */
    size_t i = 0;
    while (i < logger.nsecrets && !strstr(in, logger.secrets[i]))
        i++;
    if (i == logger.nsecrets) {
        size_t n = strlen(in);
        if (n >= out_size)
            n = out_size - 1;
        memcpy(out, in, n);
        out[n] = '\0';
        return;
    }
    while (*in && o + 1 < out_size) {
        size_t n = logger.nsecrets ? secret_at(in) : 0;
        if (n) {
            size_t m = sizeof(mark) - 1;
            if (o + m >= out_size)
                break;
            memcpy(out + o, mark, m);
            o += m;
            in += n;
        } else {
            out[o++] = *in++;
        }
    }
    out[o] = '\0';
}

void jp_log_redact(const char *in, char *out, size_t out_size)
{
    pthread_mutex_lock(&logger.lock);
    redact_locked(in ? in : "", out, out_size);
    pthread_mutex_unlock(&logger.lock);
}

int jp_log_enabled(jp_log_level_t level)
{
    return level >= logger.level && level < JP_LOG_OFF;
}

/* Append `s` as the body of a JSON string; keeps at least one byte for NUL. */
static size_t json_escape(char *dst, size_t pos, size_t cap, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    for (; *s && pos + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            dst[pos++] = '\\';
            dst[pos++] = (char)c;
        } else if (c == '\n') {
            dst[pos++] = '\\';
            dst[pos++] = 'n';
        } else if (c < 0x20) {
            memcpy(dst + pos, "\\u00", 4);
            dst[pos + 4] = hex[c >> 4];
            dst[pos + 5] = hex[c & 15];
            pos += 6;
        } else {
            dst[pos++] = (char)c;
        }
    }
    return pos;
}

static size_t append(char *dst, size_t pos, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static size_t append(char *dst, size_t pos, size_t cap, const char *fmt, ...)
{
    if (pos >= cap)
        return pos;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(dst + pos, cap - pos, fmt, ap);
    va_end(ap);
    if (n < 0)
        return pos;
    return (size_t)n >= cap - pos ? cap - 1 : pos + (size_t)n;
}

void jp_log(jp_log_level_t level, const char *component, const jp_log_ctx_t *ctx, const char *fmt,
            ...)
{
    if (!jp_log_enabled(level))
        return;

    char msg[LOG_LINE_MAX / 2], clean[LOG_LINE_MAX / 2], line[LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);

    pthread_mutex_lock(&logger.lock);
    redact_locked(msg, clean, sizeof(clean));
    size_t p = append(line, 0, sizeof(line),
                      "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\","
                      "\"component\":\"",
                      tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                      tm.tm_sec, ts.tv_nsec / 1000000L, level_names[level]);
    p = json_escape(line, p, sizeof(line), component ? component : "main");
    p = append(line, p, sizeof(line), "\",\"msg\":\"");
    p = json_escape(line, p, sizeof(line), clean);
    p = append(line, p, sizeof(line), "\"");
    if (ctx && ctx->event_id) {
        char id[256];
        redact_locked(ctx->event_id, id, sizeof(id));
        p = append(line, p, sizeof(line), ",\"event_id\":\"");
        p = json_escape(line, p, sizeof(line), id);
        p = append(line, p, sizeof(line), "\"");
    }
    if (ctx && ctx->partition >= 0)
        p = append(line, p, sizeof(line), ",\"partition\":%d", (int)ctx->partition);
    if (ctx && ctx->offset >= 0)
        p = append(line, p, sizeof(line), ",\"offset\":%lld", (long long)ctx->offset);
    p = append(line, p, sizeof(line), "}\n");

    FILE *out = logger.stream ? logger.stream : stderr;
    fwrite(line, 1, p, out);
    fflush(out);
    pthread_mutex_unlock(&logger.lock);
}
