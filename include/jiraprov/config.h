/* Configuration: one YAML file loaded into a typed, read-only jp_config_t.
 *
 * Loading validates everything it can without touching the network: types,
 * ranges, required keys, unknown and duplicate keys, URLs, site names and the
 * attribute mapping. Errors are one sentence of the form
 *
 *   worker.yaml:12:5: retry.max_attempts: expected an integer between 1 and 100, got "ten"
 *
 * (1-based line and column of the offending node; for a missing key, of the
 * mapping that should hold it).
 *
 * Scalar values may use ${VAR} and ${VAR:-default} (environment); "$$" is a
 * literal "$". Every secret key X may instead be given as X_file: /path (the
 * file is read and one trailing newline stripped), which suits Kubernetes
 * secrets. Secret keys: sites[].api_token, sites[].scim_api_key,
 * sites[].org_api_key, redis.password (also a password inside redis.url),
 * audit.hmac_key and every kafka property whose name contains "password" or
 * "secret". Each loaded secret is registered with jp_log_add_secret(); no
 * secret ever appears in an errstr or in jp_config_dump() output. A file that
 * is world-readable (mode & 0004) and holds a secret written inline (not via
 * X_file or ${VAR}) is refused.
 *
 * Ownership: jp_config_load*() returns a config that the caller frees with
 * jp_config_destroy(); every string and array reachable from it belongs to
 * the config and lives as long as it. The struct is transparent but must be
 * treated as read-only, except through jp_config_take_reloadable().
 * Optional strings without a default are NULL when not configured; strings
 * with a default are never NULL. */
#ifndef JIRAPROV_CONFIG_H
#define JIRAPROV_CONFIG_H

#include "jiraprov/err.h"
#include "jiraprov/log.h"

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* How a site's accounts are enabled and disabled. */
typedef enum jp_config_lifecycle {
    JP_CONFIG_LIFECYCLE_SCIM = 0, /* SCIM PATCH active=true/false */
    JP_CONFIG_LIFECYCLE_ADMIN     /* organization admin API (needs org_api_key) */
} jp_config_lifecycle_t;

/* Where a site's group memberships are managed. */
typedef enum jp_config_groups {
    JP_CONFIG_GROUPS_SCIM = 0, /* SCIM groups */
    JP_CONFIG_GROUPS_JIRA      /* Jira REST v3 /group/user */
} jp_config_groups_t;

/* Sync direction of one mapped attribute. */
typedef enum jp_config_direction {
    JP_CONFIG_DIR_BOTH = 0,
    JP_CONFIG_DIR_TO_JIRA,  /* IDHub -> Jira only */
    JP_CONFIG_DIR_FROM_JIRA /* Jira -> IDHub only (reconciliation reports it) */
} jp_config_direction_t;

/* One librdkafka property, passed verbatim. */
typedef struct jp_config_kv {
    char *key;
    char *value;      /* text; YAML numbers and booleans as written */
    bool secret;      /* name contains "password" or "secret": never print */
    int line, column; /* 1-based position of the key, for error messages */
} jp_config_kv_t;

/* Rate-limit budgets of a site (top-level block, optionally overridden per site). */
typedef struct jp_config_rate_limits {
    bool shared;                /* [true] budgets in Redis shared by all workers; false =
                                 * each worker limits itself (benchmark comparison) */
    int get_per_s;              /* [100] */
    int post_per_s;             /* [100] */
    int put_per_s;              /* [50] */
    int delete_per_s;           /* [50] */
    int issue_writes_per_2s;    /* [20] */
    int issue_writes_per_30s;   /* [100] */
    int hourly_points;          /* [0] 0 = no hourly points budget */
    double deprovision_reserve; /* [0.2] fraction of each budget kept for disable/delete/revoke,
                                 * 0..0.9 */
    double near_limit_slowdown; /* [0.5] 0..1 */
    int quarantine_after;       /* [3] consecutive 401/403 before the site is quarantined */
    int quarantine_probe_s;     /* [30] seconds between probes of a quarantined site */
} jp_config_rate_limits_t;

/* One Jira Cloud site. URLs are stored without trailing '/'. */
typedef struct jp_site {
    char *name;                              /* required, [a-z0-9_-]{1,64}, unique */
    char *jira_url;                          /* required, http(s)://..., REST base (no /rest/...) */
    char *email;                             /* required, Basic auth user for api_token */
    char *api_token;                         /* required secret */
    char *scim_url;                          /* required, .../scim/directory/<id> */
    char *scim_api_key;                      /* required secret (SCIM bearer) */
    char *admin_url;                         /* [https://api.atlassian.com] */
    char *org_api_key;                       /* optional secret; required for lifecycle admin */
    jp_config_lifecycle_t account_lifecycle; /* [scim] */
    jp_config_groups_t group_membership;     /* [scim] */
    bool tls_verify;                     /* [true]; false is an explicit opt-out: log a warning */
    char *ca_file;                       /* optional CA bundle path, NULL = system default */
    int timeout_ms;                      /* [30000] per HTTP request */
    jp_config_rate_limits_t rate_limits; /* effective: top-level values with this site's
                                          * overrides applied */
    bool rate_limits_overridden;         /* the site has its own rate_limits block */
} jp_site_t;

/* One IDHub attribute <-> SCIM path pair. */
typedef struct jp_config_mapping {
    char *idhub; /* one of the 11 known IDHub attribute names (see example config) */
    char *scim;  /* SCIM attribute path, e.g. "name.givenName", "emails[primary].value" */
    jp_config_direction_t direction; /* [both] */
} jp_config_mapping_t;

typedef struct jp_config {
    char *source; /* the file name (or name_for_errors) the config came from */

    /* librdkafka properties in file order; bootstrap.servers is always present.
     * group.id is not here: consumers set it from consumer.group. */
    jp_config_kv_t *kafka;
    size_t kafka_count;

    struct {
        char *events;      /* [idhub.events] */
        char *results;     /* [jiraprov.results] */
        char *recon;       /* [jiraprov.recon] */
        char *audit;       /* [jiraprov.audit] */
        char *dead_letter; /* [jiraprov.dlq] */
    } topics;

    struct {
        char *group; /* [jiraprov] Kafka consumer group id */
    } consumer;

    struct {
        char *url;        /* required, redis://[[user]:password@]host[:port][/db] or
                           * unix:///path; may hold a password: never print it raw */
        char *host;       /* TCP host (brackets of IPv6 removed); NULL for unix:// */
        int port;         /* [6379] TCP port; 0 for unix:// */
        char *unix_path;  /* socket path for unix://, else NULL */
        int db;           /* [0] database number */
        char *username;   /* ACL user from the URL, NULL if none */
        char *password;   /* secret from password, password_file or the URL; NULL if none */
        int timeout_ms;   /* [2000] per command */
        char *key_prefix; /* ["jiraprov:"] prepended to every key */
    } redis;

    jp_site_t *sites; /* at least one */
    size_t site_count;

    /* [the 11-entry default table] login and email are always mapped. */
    jp_config_mapping_t *mapping;
    size_t mapping_count;

    struct {
        int max_attempts;  /* [6] 1..100 */
        int base_delay_ms; /* [2000] */
        int max_delay_ms;  /* [60000] >= base_delay_ms */
        int max_age_s;     /* [86400] give up on an event older than this */
        double jitter;     /* [0.3] fraction 0..1 */
    } retry;

    jp_config_rate_limits_t rate_limits; /* top-level block; sites hold the effective copy */

    struct {
        char *instance_id;       /* [<hostname>-<pid>, filled at load when empty] */
        int max_in_flight;       /* [512] Jira calls in flight per process */
        int max_buffered_events; /* [10000] held in memory before partitions are paused */
        int drain_timeout_ms;    /* [30000] */
        int outcome_ttl_s;       /* [604800] 7 days */
    } worker;

    struct {
        int max_bytes; /* [1048576] largest accepted event */
    } event;

    struct {
        char *listen; /* [127.0.0.1:9464] host:port for metrics/health; "" disables */
    } http;

    struct {
        jp_log_level_t level; /* [info] debug|info|warn|error */
    } log;

    struct {
        char *hmac_key; /* optional secret, NULL if none; the worker needs it (>= 16 bytes)
                         * unless unkeyed is true (see audit.h) */
        bool unkeyed;   /* [false] seal audit records without a key (SHA-256 only: detects
                         * accidents, not tampering); the verifier reports such streams */
    } audit;

    struct {
        char *key;              /* [email] the IDHub attribute IDHub matches accounts by; must be
                                 * mapped with direction both or from_jira */
        int page_concurrency;   /* [4] 1..16 Jira pages of one run in flight */
        int members_per_record; /* [1000] 50..4000 entitlement members per record (rounded
                                 * down to a multiple of 50, Jira's member page) */
        int lease_s;            /* [15] 2..3600 a run's lease; a dead worker's run is resumed
                                 * by another one at most this long after it stopped renewing */
    } recon;
} jp_config_t;

/* Load and validate `path`. On success *out is a new config (free with
 * jp_config_destroy); on failure *out is NULL and errstr says why. */
jp_err_t jp_config_load(const char *path, jp_config_t **out, char *errstr, size_t errstr_size);

/* Same from a NUL-terminated YAML text; name_for_errors prefixes messages
 * (NULL means "<string>"). No file-mode check applies. */
jp_err_t jp_config_load_string(const char *yaml, const char *name_for_errors, jp_config_t **out,
                               char *errstr, size_t errstr_size);

/* Free a config and everything it owns; NULL is a no-op. Secrets stay
 * registered with the logger (jp_log_clear_secrets() forgets them). */
void jp_config_destroy(jp_config_t *cfg);

/* Apply cfg->kafka to `conf` (caller-owned). Loading does not check property
 * names against librdkafka; this does, and the error names the key and its
 * position (never a secret value). When security.protocol is ssl or
 * sasl_ssl, enable.ssl.certificate.verification=true and
 * ssl.endpoint.identification.algorithm=https are set unless cfg->kafka
 * names them: the broker's certificate and host name are checked by default
 * whatever librdkafka's own defaults are. */
jp_err_t jp_config_kafka_conf(const jp_config_t *cfg, rd_kafka_conf_t *conf, char *errstr,
                              size_t errstr_size);

/* Logs one warning (component "config") per security opt-out in cfg and
 * returns how many: a site with tls_verify: false, a site URL that is plain
 * http:// to a host other than loopback, and, when Kafka uses TLS, a broker
 * certificate or host name check turned off in the kafka properties (with
 * its file:line:column). The worker calls it at start and for
 * --check-config, so an opt-out is never silent. */
size_t jp_config_log_insecure(const jp_config_t *cfg);

/* The site named `name`, or NULL if none. The pointer lives as long as cfg. */
const jp_site_t *jp_config_site(const jp_config_t *cfg, const char *name);

/* Print the effective configuration (defaults included) as YAML to `out`,
 * every secret shown as "[redacted]"; for --check-config. */
void jp_config_dump(const jp_config_t *cfg, FILE *out);

/* Reload (SIGHUP). jp_config_diff() calls fn for every key whose effective
 * value differs between a and b, in dump order, and returns how many there
 * are. Keys are named as in the file: "retry.max_attempts",
 * "kafka.linger.ms", "sites[acme].api_token",
 * "sites[acme].rate_limits.get_per_s", "sites[beta]" for a site in only one
 * of them, "mapping" for any change of the table. Secrets are compared, but
 * only their key is ever reported. fn may be NULL (just count). */
size_t jp_config_diff(const jp_config_t *a, const jp_config_t *b,
                      void (*fn)(const char *key, void *opaque), void *opaque);
/* Whether a change of `key` (as jp_config_diff names it) can take effect in
 * a running worker: log.level, mapping, retry.*, rate_limits.* and
 * sites[NAME].rate_limits.*. Everything else needs a restart. */
bool jp_config_reloadable(const char *key);
/* Moves the reloadable values of `fresh` into `running`: log, retry,
 * rate_limits and each site's effective rate_limits (sites matched by name;
 * a site only in fresh is ignored), and the mapping table, which is
 * exchanged (fresh then holds running's previous table and frees it).
 * Everything else in running stays as it was. Call it on the thread that
 * reads running (the worker's loop): readers see the new values from their
 * next read; nothing that running owns is freed. */
void jp_config_take_reloadable(jp_config_t *running, jp_config_t *fresh);

/* Name of an enum value as written in the file ("scim", "to_jira", ...). */
const char *jp_config_lifecycle_name(jp_config_lifecycle_t v);
const char *jp_config_groups_name(jp_config_groups_t v);
const char *jp_config_direction_name(jp_config_direction_t v);

#endif
