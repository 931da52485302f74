#include "jiraprov/classify.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *jp_class_name(jp_class_t cls)
{
    static const char *names[] = {"ok", "retriable", "permanent", "quarantine", "fatal"};
    return cls <= JP_CLASS_FATAL ? names[cls] : "unknown";
}

const char *jp_limit_scope_name(jp_limit_scope_t scope)
{
    static const char *names[] = {"none", "burst", "per_issue", "quota_site", "quota_global"};
    return scope <= JP_SCOPE_QUOTA_GLOBAL ? names[scope] : "unknown";
}

jp_limit_scope_t jp_limit_scope_parse(const char *reason)
{
    if (!reason)
        return JP_SCOPE_BURST;
    if (!strcasecmp(reason, "jira-per-issue-on-write"))
        return JP_SCOPE_PER_ISSUE;
    if (!strcasecmp(reason, "jira-quota-tenant-based"))
        return JP_SCOPE_QUOTA_SITE;
    if (!strcasecmp(reason, "jira-quota-global-based"))
        return JP_SCOPE_QUOTA_GLOBAL;
    /* jira-burst-based, the older jira-cost-based / jira-quota-based and
     * anything new: treat as burst (notes §4.1 "treat unknown reasons as burst"). */
    return JP_SCOPE_BURST;
}

static int month_index(const char *m)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    for (int i = 0; i < 12; i++)
        if (!strncmp(m, months + 3 * i, 3))
            return i;
    return -1;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* IMF-fixdate only (RFC 9110 §5.6.7): "Sun, 06 Nov 1994 08:49:37 GMT". */
static int parse_http_date(const char *s, time_t *out)
{
    char wday[4], mon[4], zone[4];
    int day, year, hh, mm, ss, consumed = 0;
    if (sscanf(s, "%3s %d %3s %d %d:%d:%d %3s%n", wday, &day, mon, &year, &hh, &mm, &ss, zone,
               &consumed) != 8 ||
        s[consumed] != '\0' || strlen(wday) != 3)
        return -1;
    int m = month_index(mon);
    if (m < 0 || strcmp(zone, "GMT") || day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60)
        return -1;
    *out = (time_t)(days_from_civil(year, m + 1, day) * 86400 + hh * 3600 + mm * 60 + ss);
    return 0;
}

int64_t jp_parse_retry_after(const char *value, time_t now)
{
    if (!value)
        return -1;
    while (isspace((unsigned char)*value))
        value++;
    if (isdigit((unsigned char)*value)) {
        char *end;
        errno = 0;
        long long secs = strtoll(value, &end, 10);
        while (isspace((unsigned char)*end))
            end++;
        if (errno || *end || secs < 0)
            return -1;
        /* Clamp absurd values to a day; Jira's quota resets hourly. */
        if (secs > 86400)
            secs = 86400;
        return (int64_t)secs * 1000;
    }
    /* The weekday is followed by a comma in IMF-fixdate; drop it for sscanf. */
    char buf[64];
    size_t n = strlen(value);
    if (n < 5 || n >= sizeof(buf) || value[3] != ',')
        return -1;
    memcpy(buf, value, 3);
    memcpy(buf + 3, value + 4, n - 3);
    time_t when;
    if (parse_http_date(buf, &when))
        return -1;
    return when > now ? (int64_t)(when - now) * 1000 : 0;
}

static jp_http_verdict_t verdict(jp_class_t cls, const char *reason)
{
    jp_http_verdict_t v = {cls, reason, JP_SCOPE_NONE, -1, 0};
    return v;
}

static jp_http_verdict_t classify_transport(int curl_code, int request_sent)
{
    jp_http_verdict_t v;
    switch ((CURLcode)curl_code) {
    case CURLE_OPERATION_TIMEDOUT:
        v = verdict(JP_CLASS_RETRIABLE, "timeout");
        break;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        v = verdict(JP_CLASS_RETRIABLE, "connect");
        break;
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        v = verdict(JP_CLASS_RETRIABLE, "connection_lost");
        break;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        /* The site's TLS set-up is wrong: no event for it can succeed. */
        v = verdict(JP_CLASS_QUARANTINE, "tls");
        break;
    case CURLE_OUT_OF_MEMORY:
        v = verdict(JP_CLASS_FATAL, "out_of_memory");
        break;
    case CURLE_FILESIZE_EXCEEDED:
    case CURLE_WRITE_ERROR:
        v = verdict(JP_CLASS_PERMANENT, "response_too_large");
        break;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        v = verdict(JP_CLASS_PERMANENT, "bad_url");
        break;
    default:
        v = verdict(JP_CLASS_RETRIABLE, "transport");
        break;
    }
    /* An answer that never came after the request left: Jira may have applied
     * it, so the caller must look before it retries a non-idempotent call. */
    v.outcome_unknown = request_sent && v.cls == JP_CLASS_RETRIABLE;
    return v;
}

jp_http_verdict_t jp_classify_http(long status, int curl_code, int request_sent,
                                   const char *retry_after, const char *ratelimit_reason,
                                   time_t now)
{
    if (curl_code != CURLE_OK || status == 0)
        return classify_transport(curl_code != CURLE_OK ? curl_code : CURLE_GOT_NOTHING,
                                  request_sent);

    jp_http_verdict_t v;
    if (status >= 200 && status < 300)
        return verdict(JP_CLASS_OK, "ok");

    switch (status) {
    case 400:
        v = verdict(JP_CLASS_PERMANENT, "http_400");
        break;
    case 401:
        v = verdict(JP_CLASS_QUARANTINE, "http_401");
        break;
    case 403:
        v = verdict(JP_CLASS_QUARANTINE, "http_403");
        break;
    case 404:
        v = verdict(JP_CLASS_PERMANENT, "http_404");
        break;
    case 408:
        v = verdict(JP_CLASS_RETRIABLE, "http_408");
        v.outcome_unknown = 1;
        break;
    case 409:
        v = verdict(JP_CLASS_PERMANENT, "http_409");
        break;
    case 425:
        v = verdict(JP_CLASS_RETRIABLE, "http_425");
        break;
    case 429:
        v = verdict(JP_CLASS_RETRIABLE, "http_429");
        v.scope = jp_limit_scope_parse(ratelimit_reason);
        break;
    case 501:
        v = verdict(JP_CLASS_PERMANENT, "http_501");
        break;
    default:
        if (status >= 500 && status < 600) {
            v = verdict(JP_CLASS_RETRIABLE, status == 503   ? "http_503"
                                            : status == 502 ? "http_502"
                                            : status == 504 ? "http_504"
                                                            : "http_5xx");
            /* A gateway timeout or a 500 may come after Jira applied the change. */
            v.outcome_unknown = status != 503;
            /* A 503 with Retry-After is a resource limit: back off like a 429. */
            if (status == 503 && retry_after)
                v.scope = JP_SCOPE_BURST;
        } else if (status >= 300 && status < 400) {
            v = verdict(JP_CLASS_PERMANENT, "http_3xx");
        } else {
            v = verdict(JP_CLASS_PERMANENT, "http_4xx");
        }
        break;
    }
    if (v.cls == JP_CLASS_RETRIABLE)
        v.retry_after_ms = jp_parse_retry_after(retry_after, now);
    return v;
}

jp_class_t jp_classify_kafka(int err, int is_fatal, int is_retriable)
{
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
        return JP_CLASS_OK;
    if (is_fatal || err == RD_KAFKA_RESP_ERR__FATAL)
        return JP_CLASS_FATAL;
    switch (err) {
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
    case RD_KAFKA_RESP_ERR__SSL:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
        /* Configuration problems: waiting will not fix them. */
        return JP_CLASS_FATAL;
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG:
        return JP_CLASS_PERMANENT;
    default:
        /* Timeouts, transports, leader moves, unknown topic while it is being
         * created: librdkafka retries these itself; the worker waits too. */
        (void)is_retriable;
        return JP_CLASS_RETRIABLE;
    }
}

jp_class_t jp_classify_redis(jp_err_t err, const char *reply_error)
{
    if (err == JP_OK)
        return JP_CLASS_OK;
    if (err == JP_ERR_NOMEM)
        return JP_CLASS_FATAL;
    if (!reply_error)
        return JP_CLASS_RETRIABLE; /* not connected, timeout, connection lost */
    static const char *transient[] = {"LOADING", "BUSY",     "TRYAGAIN",   "MASTERDOWN",
                                      "OOM",     "READONLY", "CLUSTERDOWN"};
    for (size_t i = 0; i < sizeof(transient) / sizeof(*transient); i++) {
        size_t n = strlen(transient[i]);
        if (!strncmp(reply_error, transient[i], n) &&
            (reply_error[n] == ' ' || reply_error[n] == '\0'))
            return JP_CLASS_RETRIABLE;
    }
    return JP_CLASS_FATAL;
}
