/* Response bodies: the encoder (jp_json_encode, worker/json.c, shared with the
 * worker) writes exactly what json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY)
 * writes, straight into one buffer; jansson's own dumper was the largest
 * single cost of a large response. What it refuses (invalid UTF-8, nesting
 * deeper than JP_JSON_MAX_DEPTH) the caller hands to jansson. Building with
 * -DEMU_JSON_VERIFY makes server.c compare every body with json_dumps() and
 * abort on a difference (run the emulator tests that way after changing the
 * encoder).
 *
 * Also here: the exclusivity check and the copy that let response trees be
 * encoded outside the global lock (emu.h, emu_resp_json), and the
 * allocation cache installed for jansson. */
#include "emu_internal.h"

#include "jiraprov/json.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

char *emu_json_encode(const json_t *v, size_t hint, size_t *len)
{
    return jp_json_encode(v, hint, len);
}

static bool emu_json_excl(const json_t *v, int depth)
{
    /* jansson changes reference counts atomically; read them the same way.
     * json_true/false/null are immortal singletons (refcount (size_t)-1)
     * and never change, so sharing them is harmless. */
    size_t refs = __atomic_load_n(&v->refcount, __ATOMIC_ACQUIRE);
    if (refs == (size_t)-1)
        return true;
    if (refs != 1 || depth > JP_JSON_MAX_DEPTH)
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
    if (depth > JP_JSON_MAX_DEPTH)
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
