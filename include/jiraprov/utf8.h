/* utf8: the one strict UTF-8 decoder every module uses (event contract, config text, Jira
 * request checks, records): a sequence is well-formed only if it is the shortest form of a
 * code point up to U+10FFFF that is not a surrogate. Pure functions, any thread. */
#ifndef JIRAPROV_UTF8_H
#define JIRAPROV_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Length (1..4) of the well-formed sequence at s[0..len), its code point in *cp (may be
 * NULL); 0 when the bytes there are not one (overlong, surrogate, above U+10FFFF, cut short,
 * a stray continuation byte). len must be at least 1. */
size_t jp_utf8_decode(const unsigned char *s, size_t len, uint32_t *cp);

/* Whether the NUL-terminated s is well-formed UTF-8 throughout. */
bool jp_utf8_valid(const char *s);

#endif
