/* audit: the tamper-evident audit trail.
 *
 * Three parts share this interface:
 *   chain     (worker/audit.c)        seals one audit record at a time: stream id,
 *                                     gap-free sequence number, HMAC over the record and the
 *                                     previous record's MAC;
 *   trail     (worker/audit.c)        the worker's emitter: seals records in the order they are
 *                                     produced, produces them to the audit topic keyed by the
 *                                     stream id, opens each stream with a stream.started record
 *                                     that says where this instance's previous stream ended (kept
 *                                     in Redis) and ends it with stream.stopped;
 *   verifier  (worker/audit_verify.c) reads records in log order and reports every record that
 *                                     was altered, dropped, reordered, replayed or inserted, with
 *                                     its stream, sequence number and position;
 *   readers   (worker/audit_read.c)   a whole audit topic (no consumer group) or a JSON Lines
 *                                     export, record by record with its position.
 *
 * The chain member. Every published audit record carries data.chain:
 *   {"stream": S, "seq": N, "prev": P, "alg": A, "keyId": K, "mac": M}
 *   stream  "<instance id>:<start, Unix ms>:<16 random hex digits>", unique per process start;
 *   seq     0, 1, 2, ... with no gap; seq 0 is always the stream.started record;
 *   prev    the mac of seq N-1 of the same stream, or 64 zeros for seq 0;
 *   alg     "hmac-sha256" (keyed), or "sha256" in the explicit unkeyed mode (audit.unkeyed:
 *           true), which only detects accidents: anyone can recompute it;
 *   keyId   16 lower-case hex digits, the first 8 bytes of HMAC-SHA256(key,
 * "jiraprov-audit-key-id") (names the key without revealing it; absent when unkeyed); mac     64
 * lower-case hex digits: HMAC-SHA256(key, canonical) or SHA-256(canonical).
 *
 * Canonical form (what the MAC covers), so that any other program can recompute it: the whole
 * record as published, with data.chain.mac removed and nothing else, serialised as
 *   - objects: members sorted by key, keys compared as UTF-8 byte strings; no whitespace;
 *   - arrays: in order;
 *   - strings: UTF-8; '"' and '\' escaped as \" and \\, U+0008 \b, U+0009 \t, U+000A \n,
 *     U+000C \f, U+000D \r, any other U+0000..U+001F as \u00xx (lower-case hex); every other
 *     character as its raw UTF-8 bytes (no \/ and no \u escapes for non-ASCII);
 *   - integers in decimal (no sign for non-negative, no leading zeros), |n| <= 2^53 - 1;
 *     true, false, null. Real numbers are not allowed anywhere in a record.
 * This is what Python's json.dumps(record, sort_keys=True, separators=(",", ":"),
 * ensure_ascii=False) produces; tests/schemas/check_records.py recomputes the MACs of the
 * committed samples that way.
 *
 * Key: the bytes of audit.hmac_key (or of audit.hmac_key_file, one trailing newline stripped),
 * at least JP_AUDIT_KEY_MIN bytes. `openssl rand -hex 32` makes a good one.
 *
 * Ownership: a chain copies its key and stream id; _seal modifies the caller's record in place.
 * The trail borrows the loop, producer, Redis client and config (all must outlive it); records
 * given to it are stolen. The verifier copies every key and text it is given; what the
 * accessors return lives until _destroy. Threading: none; the trail runs on the loop's thread. */
#ifndef JIRAPROV_AUDIT_H
#define JIRAPROV_AUDIT_H

#include "jiraprov/config.h"
#include "jiraprov/err.h"
#include "jiraprov/event.h"
#include "jiraprov/kafka_out.h"
#include "jiraprov/outcome.h"
#include "jiraprov/redis.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define JP_AUDIT_KEY_MIN      16  /* bytes of an HMAC key */
#define JP_AUDIT_STREAM_MAX   320 /* bytes of a stream id, NUL included */
#define JP_AUDIT_MAC_HEX      65  /* 64 hex digits and NUL */
#define JP_AUDIT_KEY_ID_HEX   17  /* 16 hex digits and NUL */
#define JP_AUDIT_ALG_HMAC     "hmac-sha256"
#define JP_AUDIT_ALG_UNKEYED  "sha256"
#define JP_AUDIT_OP_STARTED   "stream.started"
#define JP_AUDIT_OP_STOPPED   "stream.stopped"
#define JP_AUDIT_REDIS_LAST   "audit:last:" /* + instance id, after the key prefix */
#define JP_AUDIT_MAX_SAFE_INT 9007199254740991LL

/* ---- canonical form and MACs -------------------------------------------- */

/* The canonical bytes of `record` (data.chain.mac left out). *out is malloc'd, NUL-terminated,
 * *len excludes the NUL. JP_ERR_INVALID (errstr names the member) for a real number, an
 * integer beyond 2^53-1, a key with a NUL byte; JP_ERR_NOMEM. */
jp_err_t jp_audit_canonical(const json_t *record, char **out, size_t *len, char *errstr,
                            size_t errstr_size);

/* mac_hex = HMAC-SHA256(key, data) in hex, or SHA-256(data) when key_len is 0. */
void jp_audit_mac(const void *key, size_t key_len, const void *data, size_t len,
                  char mac_hex[JP_AUDIT_MAC_HEX]);

/* The key id of a key (see above). */
void jp_audit_key_id(const void *key, size_t key_len, char id_hex[JP_AUDIT_KEY_ID_HEX]);

/* A new stream id for `instance_id` started at now_ms, with 8 random bytes from OpenSSL.
 * JP_ERR_INVALID when it does not fit JP_AUDIT_STREAM_MAX; JP_ERR_INTERNAL without entropy. */
jp_err_t jp_audit_stream_id(const char *instance_id, int64_t now_ms, char out[JP_AUDIT_STREAM_MAX],
                            char *errstr, size_t errstr_size);

/* ---- the chain ------------------------------------------------------------ */

typedef struct jp_audit_chain jp_audit_chain_t;

/* key_len 0 makes an unkeyed chain (alg sha256); otherwise key_len >= JP_AUDIT_KEY_MIN. The
 * first record sealed gets seq 0. NULL with errstr on bad arguments or ENOMEM. */
jp_audit_chain_t *jp_audit_chain_new(const void *key, size_t key_len, const char *stream,
                                     char *errstr, size_t errstr_size);
void jp_audit_chain_destroy(jp_audit_chain_t *c); /* NULL ok */

/* Sets record.data.chain (replacing any) to the next link and advances the chain.
 * JP_ERR_INVALID when the record is not an object with a `data` object or has no canonical
 * form (the chain does not advance); JP_ERR_NOMEM. */
jp_err_t jp_audit_chain_seal(jp_audit_chain_t *c, json_t *record, char *errstr, size_t errstr_size);
/* The same, and *text (malloc'd, *len bytes) is the sealed record as published: its
 * canonical form with "mac" as the first member of data.chain, so the record is serialised
 * once. */
jp_err_t jp_audit_chain_seal_text(jp_audit_chain_t *c, json_t *record, char **text, size_t *len,
                                  char *errstr, size_t errstr_size);

/* Undoes the last seal (only the last one, once): for a record that could not be produced,
 * so that the next record takes its place and the stream has no gap. Returns 0, or -1 when
 * there is nothing to undo. */
int jp_audit_chain_rewind(jp_audit_chain_t *c);

const char *jp_audit_chain_stream(const jp_audit_chain_t *c);
/* The seq of the next record to seal, which is how many were sealed. */
int64_t jp_audit_chain_next_seq(const jp_audit_chain_t *c);
/* The mac of the last record sealed (64 zeros before the first). */
const char *jp_audit_chain_last_mac(const jp_audit_chain_t *c);

/* ---- the trail (the worker) ---------------------------------------------- */

typedef struct jp_audit_trail jp_audit_trail_t;

typedef struct jp_audit_trail_stats {
    uint64_t sealed;    /* records sealed and handed to the producer (stream records too) */
    uint64_t delivered; /* acknowledged by Kafka */
    uint64_t failed;    /* not delivered: each is a gap the verifier reports */
    uint64_t queued;    /* waiting to be sealed (stream not open yet, producer queue full) */
} jp_audit_trail_stats_t;

/* Needs cfg->audit.hmac_key (>= JP_AUDIT_KEY_MIN bytes) or cfg->audit.unkeyed: NULL with
 * errstr otherwise. Nothing is produced until the first record or jp_audit_trail_start(). */
jp_audit_trail_t *jp_audit_trail_new(uv_loop_t *loop, const jp_config_t *cfg, jp_kafka_out_t *out,
                                     jp_redis_t *redis, char *errstr, size_t errstr_size);

/* Checks what _new checks, without creating anything (for --check-config). */
jp_err_t jp_audit_check_config(const jp_config_t *cfg, char *errstr, size_t errstr_size);

/* Opens the stream: reads where this instance's previous stream ended from Redis, then seals
 * and produces stream.started (seq 0) with it. Idempotent; the first emit calls it too. Call it
 * when Redis is connected: without an answer the record says why the end is unknown. */
void jp_audit_trail_start(jp_audit_trail_t *t);

/* Seals `record` (stolen; NULL gives -1) after every record emitted before it and produces it
 * to topics.audit, keyed by the stream id. Returns 0 when taken: cb (may be NULL) is then called
 * exactly once, later, from the loop, with the delivery report (never from inside this call),
 * unless the trail is destroyed first. Records wait in order while the stream is opening or the
 * producer's queue is full. */
int jp_audit_trail_emit(jp_audit_trail_t *t, json_t *record, jp_kafka_out_cb *cb, void *opaque);

/* jp_record_audit_call() of `call` (which should point into o->calls), emitted. */
int jp_audit_trail_call(jp_audit_trail_t *t, const jp_event_t *ev, const jp_outcome_t *o,
                        const jp_outcome_call_t *call, jp_kafka_out_cb *cb, void *opaque);

/* jp_record_audit_decision() emitted: decision "skipped", "deadlettered" or "quarantined"
 * (anything else gives -1); o may be NULL. */
int jp_audit_trail_decision(jp_audit_trail_t *t, const jp_event_t *ev, const jp_outcome_t *o,
                            const char *decision, jp_kafka_out_cb *cb, void *opaque);

/* Emits stream.stopped when the stream was opened (call it when nothing else will be audited)
 * and calls done(opaque) once, from the loop, when Redis holds that record as where the stream
 * ended, or after at most 2 s (then a warning says the successor will anchor earlier), or at
 * once (from the loop) when no stream was opened. Flush the producer after it. Records emitted
 * later are still sealed. t must not be NULL; done may be NULL. */
void jp_audit_trail_close(jp_audit_trail_t *t, void (*done)(void *), void *opaque);

void jp_audit_trail_stats(const jp_audit_trail_t *t, jp_audit_trail_stats_t *out);
/* The stream id (known from _new on). */
const char *jp_audit_trail_stream(const jp_audit_trail_t *t);

/* Records still queued are freed without their callbacks; delivery reports of records already
 * produced still reach their callbacks through the producer. NULL ok. */
void jp_audit_trail_destroy(jp_audit_trail_t *t);

/* ---- the verifier ---------------------------------------------------------- */

/* Where a record was read: a file line (line > 0) or a Kafka partition and offset
 * (partition >= 0). `source` is the file name or topic. */
typedef struct jp_audit_pos {
    const char *source;
    long line;
    int32_t partition;
    int64_t offset;
} jp_audit_pos_t;

typedef enum jp_audit_problem_kind {
    JP_AUDIT_MALFORMED = 0, /* not JSON, duplicate keys, a real number, not an audit record,
                             * chain members missing or of the wrong form */
    JP_AUDIT_UNSEALED,      /* an audit record without data.chain */
    JP_AUDIT_ALTERED,       /* the MAC does not verify: changed after sealing, or forged */
    JP_AUDIT_FORGED,        /* the MAC does not verify and the genuine record with the same
                             * stream and seq is elsewhere: an inserted record */
    JP_AUDIT_UNKNOWN_KEY,   /* sealed with a key none of the given keys matches */
    JP_AUDIT_UNKEYED,       /* a stream sealed without a key (unless allowed) */
    JP_AUDIT_DROPPED,       /* sequence numbers missing from a stream */
    JP_AUDIT_REORDERED,     /* a record out of sequence order */
    JP_AUDIT_DUPLICATE,     /* a second copy of a record (replayed) */
    JP_AUDIT_BROKEN_LINK,   /* prev is not the previous record's mac; seq 0 not stream.started;
                             * a successor's anchor does not match its predecessor */
    JP_AUDIT_TRUNCATED,     /* a stream ends before where its successor says it got to */
    JP_AUDIT_MISSING_PREDECESSOR, /* a stream continues one that is not in the input */
    JP_AUDIT_SPLIT,               /* one stream's records in more than one partition */
    JP_AUDIT__KINDS
} jp_audit_problem_kind_t;

/* "malformed", "unsealed", "altered", "forged", "unknown-key", "unkeyed", "dropped",
 * "reordered", "duplicate", "broken-link", "truncated", "missing-predecessor", "split". */
const char *jp_audit_problem_name(jp_audit_problem_kind_t k);

typedef struct jp_audit_problem {
    jp_audit_problem_kind_t kind;
    const char *stream;  /* "" when the record has none */
    int64_t seq;         /* -1 when none; the first of a range */
    int64_t seq_last;    /* the last of a range (== seq for one record) */
    jp_audit_pos_t pos;  /* the record concerned (for ranges: the record after the gap,
                          * or before it at the end) */
    const char *message; /* one sentence: what is wrong, with every position involved */
} jp_audit_problem_t;

typedef struct jp_audit_stream_info {
    const char *stream;
    const char *worker; /* data.worker of its records, "" if none verified */
    const char *alg;    /* as sealed */
    const char *key_id; /* "" when unkeyed */
    int32_t partition;  /* -1 for files */
    uint64_t records;   /* records read (valid or not) */
    int64_t first_seq;  /* of the verified records; -1 when none */
    int64_t last_seq;
    int stopped;             /* its last record is stream.stopped */
    int continued;           /* a later stream anchors on it */
    const char *predecessor; /* the stream its stream.started names, or "" */
    int ok;                  /* no problem reported for it */
} jp_audit_stream_info_t;

typedef struct jp_audit_verifier jp_audit_verifier_t;

typedef struct jp_audit_key {
    const void *key;
    size_t len;
} jp_audit_key_t;

/* keys: the HMAC keys records may be sealed with (copied; each >= JP_AUDIT_KEY_MIN bytes).
 * allow_unkeyed: accept streams sealed without a key (else each is a problem). */
jp_audit_verifier_t *jp_audit_verifier_new(const jp_audit_key_t *keys, size_t key_count,
                                           int allow_unkeyed, char *errstr, size_t errstr_size);
void jp_audit_verifier_destroy(jp_audit_verifier_t *v); /* NULL ok */

/* Feeds one record in log order (a file's line order; Kafka's offset order per partition).
 * Blank text is skipped. JP_ERR_NOMEM only: every defect becomes a problem. */
jp_err_t jp_audit_verifier_add(jp_audit_verifier_t *v, const char *text, size_t len,
                               const jp_audit_pos_t *pos);

/* Analyses everything fed; call once, after the last _add. JP_ERR_NOMEM when memory ran out
 * (the problems found may then be incomplete). */
jp_err_t jp_audit_verifier_finish(jp_audit_verifier_t *v);

/* After _finish: problems in the order found (by stream, then by position), streams in the
 * order first seen. */
size_t jp_audit_verifier_problems(const jp_audit_verifier_t *v, const jp_audit_problem_t **out);
size_t jp_audit_verifier_streams(const jp_audit_verifier_t *v, const jp_audit_stream_info_t **out);
/* Records fed (blank lines excluded). */
uint64_t jp_audit_verifier_records(const jp_audit_verifier_t *v);

/* "FILE:LINE" or "TOPIC partition P offset O" into buf. */
void jp_audit_pos_format(const jp_audit_pos_t *pos, char *buf, size_t size);

/* ---- reading records (worker/audit_read.c) ----------------------------------- */

/* One record's text (not NUL-terminated; valid during the call) and where it was. Return 0 to
 * go on, anything else to stop reading (the reader then returns JP_OK). */
typedef int jp_audit_read_cb(const char *text, size_t len, const jp_audit_pos_t *pos, void *opaque);

typedef struct jp_audit_source {
    const jp_config_t *cfg;   /* its kafka properties (SASL, TLS, ...), or NULL */
    const char *bootstrap;    /* overrides the config's bootstrap.servers */
    const char *const *props; /* extra librdkafka "name=value" properties, NULL-terminated */
    const char *topic;
    int timeout_ms; /* metadata, and a partition making no progress [10000] */
    jp_audit_read_cb *on_record;
    void (*on_note)(const char *note, void *opaque); /* e.g. retention removed records; NULL ok */
    void *opaque;
} jp_audit_source_t;

/* Reads every partition of src->topic in turn, each from its first offset to the end it had
 * when the read began (records produced meanwhile are left for the next run), without a
 * consumer group and without committing anything. JP_ERR_KAFKA / JP_ERR_TIMEOUT /
 * JP_ERR_INVALID (bad property, no bootstrap) with errstr; secrets never appear in it. */
jp_err_t jp_audit_read_kafka(const jp_audit_source_t *src, char *errstr, size_t errstr_size);

/* Reads JSON Lines from `path` ("-" = stdin), one record per line, positions FILE:LINE.
 * JP_ERR_IO with errstr when it cannot be read. */
jp_err_t jp_audit_read_file(const char *path, jp_audit_read_cb *on_record, void *opaque,
                            char *errstr, size_t errstr_size);

#endif
