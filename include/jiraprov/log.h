/* Structured logging: one JSON object per line on stderr.
 *
 *   {"ts":"2026-11-22T10:00:00.123Z","level":"info","component":"kafka_in",
 *    "msg":"...","event_id":"...","partition":3,"offset":42}
 *
 * The logger is process-global (like syslog): jp_log_init() once from main(),
 * before threads start. Registered secrets are replaced by "[redacted]" in
 * every line, whatever the caller formats, so a token that slips into a
 * message (e.g. inside a URL or a library's error text) never reaches the log.
 * The logger copies every secret it is given; callers keep ownership. */
#ifndef JIRAPROV_LOG_H
#define JIRAPROV_LOG_H

#include <stdint.h>
#include <stdio.h>

typedef enum jp_log_level {
    JP_LOG_DEBUG = 0,
    JP_LOG_INFO,
    JP_LOG_WARN,
    JP_LOG_ERROR,
    JP_LOG_OFF
} jp_log_level_t;

/* Optional context fields; NULL / -1 members are omitted from the line. */
typedef struct jp_log_ctx {
    const char *event_id;
    int32_t partition;
    int64_t offset;
} jp_log_ctx_t;

#define JP_LOG_NO_CTX ((const jp_log_ctx_t *)0)

void jp_log_set_level(jp_log_level_t level);
jp_log_level_t jp_log_get_level(void);
/* Redirect output (default stderr); for tests. The stream stays the caller's. */
void jp_log_set_stream(FILE *stream);
/* "debug", "info", "warn"/"warning", "error", "off"; returns -1 if unknown. */
int jp_log_level_parse(const char *name);
const char *jp_log_level_name(jp_log_level_t level);

/* Register a secret value to redact (values shorter than 4 bytes are ignored:
 * redacting them would mangle ordinary text). Returns 0, or -1 on ENOMEM. */
int jp_log_add_secret(const char *secret);
/* Forget all secrets (tests, config reload). */
void jp_log_clear_secrets(void);
/* Copy `in` into `out` with every registered secret replaced; for any text
 * that leaves the process outside the logger (results, DLQ reasons). */
void jp_log_redact(const char *in, char *out, size_t out_size);

int jp_log_enabled(jp_log_level_t level);
void jp_log(jp_log_level_t level, const char *component, const jp_log_ctx_t *ctx, const char *fmt,
            ...) __attribute__((format(printf, 4, 5)));

#define jp_debug(comp, ...) jp_log(JP_LOG_DEBUG, comp, JP_LOG_NO_CTX, __VA_ARGS__)
#define jp_info(comp, ...)  jp_log(JP_LOG_INFO, comp, JP_LOG_NO_CTX, __VA_ARGS__)
#define jp_warn(comp, ...)  jp_log(JP_LOG_WARN, comp, JP_LOG_NO_CTX, __VA_ARGS__)
#define jp_error(comp, ...) jp_log(JP_LOG_ERROR, comp, JP_LOG_NO_CTX, __VA_ARGS__)

#endif
