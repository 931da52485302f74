/* Compact JSON encoder for response bodies.
 *
 * It writes exactly what json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY)
 * writes (keys in insertion order, "\u001F"-style upper-case escapes for the
 * other control characters, '/' and non-ASCII left alone, reals through
 * jansson itself), but straight into one growing buffer: jansson's own dumper
 * checks every object for loops through a hash table and appends byte runs
 * through callbacks, which was the largest single cost of a large response.
 * Anything it cannot encode the same way (invalid UTF-8, nesting deeper than
 * EMU_JSON_MAX_DEPTH) makes it fail, and the caller falls back to jansson.
 * Building with -DEMU_JSON_VERIFY makes server.c compare every body with
 * json_dumps() and abort on a difference (run the emulator tests that way
 * after changing this file).
 *
 * Also here: the exclusivity check and the copy that let response trees be
 * encoded outside the global lock (emu.h, emu_resp_json), and the
 * allocation cache installed for jansson. */
#include "emu_internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define EMU_JSON_MAX_DEPTH 512

typedef struct emu_jbuf {
    char *s;
    size_t n, cap;
} emu_jbuf_t;

static bool emu_jbuf_grow(emu_jbuf_t *b, size_t extra)
{
    if (b->n + extra <= b->cap)
        return true;
    size_t ncap = b->cap ? b->cap : 256;
    while (ncap < b->n + extra)
        ncap *= 2;
    char *ns = realloc(b->s, ncap);
    if (!ns)
        return false;
    b->s = ns;
    b->cap = ncap;
    return true;
}

static bool emu_jbuf_add(emu_jbuf_t *b, const char *s, size_t n)
{
    if (!emu_jbuf_grow(b, n))
        return false;
    memcpy(b->s + b->n, s, n);
    b->n += n;
    return true;
}

static bool emu_jbuf_ch(emu_jbuf_t *b, char c)
{
    if (b->n == b->cap && !emu_jbuf_grow(b, 1))
        return false;
    b->s[b->n++] = c;
    return true;
}

/* Length of the valid UTF-8 sequence at s (lead byte >= 0x80), or 0 when it
 * is not one: the rules jansson applies (no overlong forms, no surrogates,
 * nothing above U+10FFFF). */
static size_t emu_utf8_len(const unsigned char *s, size_t avail)
{
    unsigned c = s[0];
    size_t n;
    unsigned cp;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n > avail)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

/* True when none of the 8 bytes in w needs attention: no control character,
 * no '"', no '\\' and nothing >= 0x80. The usual "has a byte less than n" /
 * "has a zero byte" word tricks: they can report a byte that is fine (after a
 * real match, by borrow), never miss one, so a false alarm only sends the
 * word down the byte-by-byte path. */
static bool emu_word_plain(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    uint64_t q = w ^ (ones * '"'), bs = w ^ (ones * '\\');
    uint64_t hit = ((w - ones * 0x20) & ~w) | ((q - ones) & ~q) | ((bs - ones) & ~bs) | w;
    return (hit & highs) == 0;
}

/* Writes the escaped form of the byte or UTF-8 sequence at s[0] to *o and
 * returns how many input bytes it used, 0 for invalid UTF-8. */
static size_t emu_json_escape1(const unsigned char *s, size_t avail, char **o)
{
    static const char hex[] = "0123456789ABCDEF";
    unsigned c = s[0];
    char *p = *o;
    size_t used = 1;
    if (c >= 0x80) {
        used = emu_utf8_len(s, avail);
        if (used == 0)
            return 0;
        memcpy(p, s, used);
        p += used;
    } else if (c >= 0x20 && c != '"' && c != '\\') {
        *p++ = (char)c;
    } else {
        *p++ = '\\';
        switch (c) {
        case '"':
            *p++ = '"';
            break;
        case '\\':
            *p++ = '\\';
            break;
        case '\b':
            *p++ = 'b';
            break;
        case '\f':
            *p++ = 'f';
            break;
        case '\n':
            *p++ = 'n';
            break;
        case '\r':
            *p++ = 'r';
            break;
        case '\t':
            *p++ = 't';
            break;
        default:
            *p++ = 'u';
            *p++ = '0';
            *p++ = '0';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 15];
            break;
        }
    }
    *o = p;
    return used;
}

static bool emu_json_str(emu_jbuf_t *b, const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    /* Worst case every byte becomes \u00XX; reserving it once keeps the loop
     * free of capacity checks (and lets it copy whole words). */
    if (!emu_jbuf_grow(b, len * 6 + 2))
        return false;
    char *o = b->s + b->n;
    *o++ = '"';
    size_t i = 0;
    while (i < len) {
        uint64_t w;
        if (len - i >= 8 && (memcpy(&w, s + i, 8), emu_word_plain(w))) {
            memcpy(o, &w, 8);
            o += 8;
            i += 8;
            continue;
        }
        /* Byte by byte up to the next word boundary (or to the end). */
        size_t stop = len - i >= 8 ? i + 8 : len;
        while (i < stop) {
            size_t n = emu_json_escape1(s + i, len - i, &o);
            if (n == 0)
                return false;
            i += n;
        }
    }
    *o++ = '"';
    b->n = (size_t)(o - b->s);
    return true;
}

static bool emu_json_int(emu_jbuf_t *b, json_int_t v)
{
    char tmp[24];
    size_t n = 0;
    /* Unsigned magnitude: -LLONG_MIN does not fit a json_int_t. */
    unsigned long long m = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[n++] = (char)('0' + m % 10);
        m /= 10;
    } while (m);
    if (!emu_jbuf_grow(b, n + 1))
        return false;
    if (v < 0)
        b->s[b->n++] = '-';
    while (n)
        b->s[b->n++] = tmp[--n];
    return true;
}

/* Reals are rare in responses; jansson formats them (precision and the
 * ".0" suffix are its rules). */
static bool emu_json_real(emu_jbuf_t *b, const json_t *v)
{
    char tmp[64];
    size_t n = json_dumpb(v, tmp, sizeof(tmp), JSON_ENCODE_ANY | JSON_COMPACT);
    return n > 0 && n <= sizeof(tmp) && emu_jbuf_add(b, tmp, n);
}

static bool emu_json_value(emu_jbuf_t *b, const json_t *v, int depth)
{
    if (depth > EMU_JSON_MAX_DEPTH)
        return false;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        if (!emu_jbuf_ch(b, '{'))
            return false;
        bool first = true;
        for (void *it = json_object_iter((json_t *)v); it;
             it = json_object_iter_next((json_t *)v, it)) {
            if (!first && !emu_jbuf_ch(b, ','))
                return false;
            first = false;
            if (!emu_json_str(b, json_object_iter_key(it), json_object_iter_key_len(it)) ||
                !emu_jbuf_ch(b, ':') || !emu_json_value(b, json_object_iter_value(it), depth + 1))
                return false;
        }
        return emu_jbuf_ch(b, '}');
    }
    case JSON_ARRAY: {
        if (!emu_jbuf_ch(b, '['))
            return false;
        size_t n = json_array_size(v);
        for (size_t i = 0; i < n; i++) {
            if ((i > 0 && !emu_jbuf_ch(b, ',')) ||
                !emu_json_value(b, json_array_get(v, i), depth + 1))
                return false;
        }
        return emu_jbuf_ch(b, ']');
    }
    case JSON_STRING:
        return emu_json_str(b, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        return emu_json_int(b, json_integer_value(v));
    case JSON_REAL:
        return emu_json_real(b, v);
    case JSON_TRUE:
        return emu_jbuf_add(b, "true", 4);
    case JSON_FALSE:
        return emu_jbuf_add(b, "false", 5);
    case JSON_NULL:
        return emu_jbuf_add(b, "null", 4);
    }
    return false;
}

char *emu_json_encode(const json_t *v, size_t hint, size_t *len)
{
    emu_jbuf_t b = {NULL, 0, 0};
    if (hint > 0 && !emu_jbuf_grow(&b, hint))
        return NULL;
    if (!v || !emu_json_value(&b, v, 0) || !emu_jbuf_ch(&b, '\0')) {
        free(b.s);
        return NULL;
    }
    *len = b.n - 1;
    return b.s;
}

static bool emu_json_excl(const json_t *v, int depth)
{
    /* jansson changes reference counts atomically; read them the same way.
     * json_true/false/null are immortal singletons (refcount (size_t)-1)
     * and never change, so sharing them is harmless. */
    size_t refs = __atomic_load_n(&v->refcount, __ATOMIC_ACQUIRE);
    if (refs == (size_t)-1)
        return true;
    if (refs != 1 || depth > EMU_JSON_MAX_DEPTH)
        return false;
    if (json_is_object(v)) {
        for (void *it = json_object_iter((json_t *)v); it;
             it = json_object_iter_next((json_t *)v, it)) {
            if (!emu_json_excl(json_object_iter_value(it), depth + 1))
                return false;
        }
    } else if (json_is_array(v)) {
        size_t n = json_array_size(v);
        for (size_t i = 0; i < n; i++) {
            if (!emu_json_excl(json_array_get(v, i), depth + 1))
                return false;
        }
    }
    return true;
}

bool emu_json_exclusive(const json_t *v)
{
    return !v || emu_json_excl(v, 0);
}

static json_t *emu_json_copy_at(const json_t *v, int depth)
{
    if (depth > EMU_JSON_MAX_DEPTH)
        return json_deep_copy(v);
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        json_t *o = json_object();
        for (void *it = json_object_iter((json_t *)v); o && it;
             it = json_object_iter_next((json_t *)v, it)) {
            json_object_setn_new_nocheck(o, json_object_iter_key(it), json_object_iter_key_len(it),
                                         emu_json_copy_at(json_object_iter_value(it), depth + 1));
        }
        return o;
    }
    case JSON_ARRAY: {
        json_t *a = json_array();
        size_t n = json_array_size(v);
        for (size_t i = 0; a && i < n; i++)
            json_array_append_new(a, emu_json_copy_at(json_array_get(v, i), depth + 1));
        return a;
    }
    case JSON_STRING:
        return json_stringn_nocheck(json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        return json_integer(json_integer_value(v));
    case JSON_REAL:
        return json_real(json_real_value(v));
    default: /* true, false, null: immortal singletons */
        return (json_t *)v;
    }
}

json_t *emu_json_copy(const json_t *v)
{
    return v ? emu_json_copy_at(v, 0) : NULL;
}

/* ------------------------------------------------------------------------ */
/* Allocation cache for jansson                                              */

/* A response tree is a few hundred small blocks, allocated by one request
 * and freed together; glibc keeps only 7 free blocks per size in its
 * per-thread cache, so most of them took its slower shared paths. This keeps
 * up to EMU_JA_KEEP freed blocks per size per thread. The blocks are plain
 * malloc blocks whose usable size is one of the classes below (the sizes
 * glibc hands out anyway), so memory from either side may be released by
 * the other: a json_dumps() result still goes to free(), and a block
 * malloc'd before the cache was installed may land in it. Sanitizer builds
 * leave allocation to the sanitizer, which needs to see every free and every
 * reuse. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || !defined(__GLIBC__)
#define EMU_JA_CACHE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define EMU_JA_CACHE 0
#endif
#endif
#ifndef EMU_JA_CACHE
#define EMU_JA_CACHE 1
#endif

#if EMU_JA_CACHE
#include <malloc.h>

#define EMU_JA_CLASSES 8
#define EMU_JA_KEEP    1024

typedef struct emu_ja_free_block {
    struct emu_ja_free_block *next;
} emu_ja_free_block_t;

typedef struct emu_ja_cache {
    emu_ja_free_block_t *head[EMU_JA_CLASSES];
    unsigned n[EMU_JA_CLASSES];
} emu_ja_cache_t;

static _Thread_local emu_ja_cache_t emu_ja;

/* Class c holds blocks of usable size 24 + 16 * c bytes (24 ... 136). */
static size_t emu_ja_class_size(unsigned c)
{
    return 24 + 16 * (size_t)c;
}

static void *emu_ja_malloc(size_t size)
{
    if (size > emu_ja_class_size(EMU_JA_CLASSES - 1))
        return malloc(size);
    unsigned c = size <= 24 ? 0 : (unsigned)((size - 24 + 15) / 16);
    emu_ja_free_block_t *b = emu_ja.head[c];
    if (b) {
        emu_ja.head[c] = b->next;
        emu_ja.n[c]--;
        return b;
    }
    return malloc(emu_ja_class_size(c));
}

static void emu_ja_free(void *p)
{
    if (!p)
        return;
    size_t us = malloc_usable_size(p);
    if (us >= 24 && us <= emu_ja_class_size(EMU_JA_CLASSES - 1) && (us - 24) % 16 == 0) {
        unsigned c = (unsigned)((us - 24) / 16);
        if (emu_ja.n[c] < EMU_JA_KEEP) {
            emu_ja_free_block_t *b = p;
            b->next = emu_ja.head[c];
            emu_ja.head[c] = b;
            emu_ja.n[c]++;
            return;
        }
    }
    free(p);
}
#endif

void emu_json_alloc_init(void)
{
#if EMU_JA_CACHE
    json_set_alloc_funcs(emu_ja_malloc, emu_ja_free);
#endif
}
