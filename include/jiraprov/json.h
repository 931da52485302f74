/* A compact JSON encoder: the text json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY)
 * gives (keys in insertion order, "\u001F"-style upper-case escapes for other
 * control characters, '/' and non-ASCII left as they are, reals formatted by
 * jansson), written straight into one growing buffer. jansson's own dumper
 * checks every object for loops through a hash table and appends through
 * callbacks: about 60k instructions for a 650-byte record, several times
 * this encoder's cost (the worker encodes five documents per event). Shared
 * by the worker and the emulator.
 *
 * Ownership: the returned buffer is malloc'd and NUL-terminated; the caller
 * frees it. The value is only read.
 *
 * Threading: none needed (no shared state). */
#ifndef JIRAPROV_JSON_H
#define JIRAPROV_JSON_H

#include <jansson.h>
#include <stddef.h>

/* Depth past which jp_json_encode gives up (and jp_json_dumps asks jansson). */
#define JP_JSON_MAX_DEPTH 512

/* Encodes v (hint: expected size, 0 if unknown) and sets *len. NULL when out of
 * memory, v is NULL, or v holds something it does not encode exactly like
 * jansson (invalid UTF-8, nesting deeper than JP_JSON_MAX_DEPTH). */
char *jp_json_encode(const json_t *v, size_t hint, size_t *len);

/* jp_json_encode, falling back to jansson for what it refuses; NULL only when
 * jansson fails too. len may be NULL. */
char *jp_json_dumps(const json_t *v, size_t *len);

#endif
