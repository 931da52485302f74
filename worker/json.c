/* json.c - a compact JSON encoder: see include/jiraprov/json.h. Moved here from the
 * emulator (tests/emulator/emu_json.c), which uses it for its response bodies. */
#include "jiraprov/json.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct jbuf {
    char *s;
    size_t n, cap;
} jbuf_t;

static bool jbuf_grow(jbuf_t *b, size_t extra)
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

static bool jbuf_add(jbuf_t *b, const char *s, size_t n)
{
    if (!jbuf_grow(b, n))
        return false;
    memcpy(b->s + b->n, s, n);
    b->n += n;
    return true;
}

static bool jbuf_ch(jbuf_t *b, char c)
{
    if (b->n == b->cap && !jbuf_grow(b, 1))
        return false;
    b->s[b->n++] = c;
    return true;
}

/* Length of the valid UTF-8 sequence at s (lead byte >= 0x80), or 0 when it
 * is not one: the rules jansson applies (no overlong forms, no surrogates,
 * nothing above U+10FFFF). */
static size_t utf8_len(const unsigned char *s, size_t avail)
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
static bool word_plain(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    uint64_t q = w ^ (ones * '"'), bs = w ^ (ones * '\\');
    uint64_t hit = ((w - ones * 0x20) & ~w) | ((q - ones) & ~q) | ((bs - ones) & ~bs) | w;
    return (hit & highs) == 0;
}

/* Writes the escaped form of the byte or UTF-8 sequence at s[0] to *o and
 * returns how many input bytes it used, 0 for invalid UTF-8. */
static size_t escape1(const unsigned char *s, size_t avail, char **o)
{
    static const char hex[] = "0123456789ABCDEF";
    unsigned c = s[0];
    char *p = *o;
    size_t used = 1;
    if (c >= 0x80) {
        used = utf8_len(s, avail);
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

static bool enc_str(jbuf_t *b, const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    /* Worst case every byte becomes \u00XX; reserving it once keeps the loop
     * free of capacity checks (and lets it copy whole words). */
    if (!jbuf_grow(b, len * 6 + 2))
        return false;
    char *o = b->s + b->n;
    *o++ = '"';
    size_t i = 0;
    while (i < len) {
        uint64_t w;
        if (len - i >= 8 && (memcpy(&w, s + i, 8), word_plain(w))) {
            memcpy(o, &w, 8);
            o += 8;
            i += 8;
            continue;
        }
        /* Byte by byte up to the next word boundary (or to the end). */
        size_t stop = len - i >= 8 ? i + 8 : len;
        while (i < stop) {
            size_t n = escape1(s + i, len - i, &o);
            if (n == 0)
                return false;
            i += n;
        }
    }
    *o++ = '"';
    b->n = (size_t)(o - b->s);
    return true;
}

static bool enc_int(jbuf_t *b, json_int_t v)
{
    char tmp[24];
    size_t n = 0;
    /* Unsigned magnitude: -LLONG_MIN does not fit a json_int_t. */
    unsigned long long m = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[n++] = (char)('0' + m % 10);
        m /= 10;
    } while (m);
    if (!jbuf_grow(b, n + 1))
        return false;
    if (v < 0)
        b->s[b->n++] = '-';
    while (n)
        b->s[b->n++] = tmp[--n];
    return true;
}

/* Reals are rare; jansson formats them (precision and the ".0" suffix are
 * its rules). */
static bool enc_real(jbuf_t *b, const json_t *v)
{
    char tmp[64];
    size_t n = json_dumpb(v, tmp, sizeof(tmp), JSON_ENCODE_ANY | JSON_COMPACT);
    return n > 0 && n <= sizeof(tmp) && jbuf_add(b, tmp, n);
}

static bool enc_value(jbuf_t *b, const json_t *v, int depth)
{
    if (depth > JP_JSON_MAX_DEPTH)
        return false;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        if (!jbuf_ch(b, '{'))
            return false;
        bool first = true;
        for (void *it = json_object_iter((json_t *)v); it;
             it = json_object_iter_next((json_t *)v, it)) {
            if (!first && !jbuf_ch(b, ','))
                return false;
            first = false;
            if (!enc_str(b, json_object_iter_key(it), json_object_iter_key_len(it)) ||
                !jbuf_ch(b, ':') || !enc_value(b, json_object_iter_value(it), depth + 1))
                return false;
        }
        return jbuf_ch(b, '}');
    }
    case JSON_ARRAY: {
        if (!jbuf_ch(b, '['))
            return false;
        size_t n = json_array_size(v);
        for (size_t i = 0; i < n; i++) {
            if ((i > 0 && !jbuf_ch(b, ',')) || !enc_value(b, json_array_get(v, i), depth + 1))
                return false;
        }
        return jbuf_ch(b, ']');
    }
    case JSON_STRING:
        return enc_str(b, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        return enc_int(b, json_integer_value(v));
    case JSON_REAL:
        return enc_real(b, v);
    case JSON_TRUE:
        return jbuf_add(b, "true", 4);
    case JSON_FALSE:
        return jbuf_add(b, "false", 5);
    case JSON_NULL:
        return jbuf_add(b, "null", 4);
    }
    return false;
}

char *jp_json_encode(const json_t *v, size_t hint, size_t *len)
{
    jbuf_t b = {NULL, 0, 0};
    if (hint > 0 && !jbuf_grow(&b, hint))
        return NULL;
    if (!v || !enc_value(&b, v, 0) || !jbuf_ch(&b, '\0')) {
        free(b.s);
        return NULL;
    }
    *len = b.n - 1;
    return b.s;
}

char *jp_json_dumps(const json_t *v, size_t *len)
{
    size_t n = 0;
    char *s = jp_json_encode(v, 0, &n);
    if (!s && v) {
        s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        n = s ? strlen(s) : 0;
    }
    if (len)
        *len = n;
    return s;
}
