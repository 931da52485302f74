/* String-keyed open-addressing hash map (linear probing, backward-shift
 * deletion, so no tombstones). Keys are copied; values are borrowed. */
#include "emu.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct emu_slot {
    char *key; /* NULL: empty */
    void *val;
    uint64_t hash;
} emu_slot_t;

struct emu_map {
    emu_slot_t *slots;
    size_t cap; /* power of two */
    size_t count;
    bool nocase;
};

static uint64_t emu_hash(const char *s, bool nocase)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (nocase && c >= 'A' && c <= 'Z')
            c = (unsigned char)(c + 32);
        h ^= c;
        h *= 1099511628211ull;
    }
    /* Final mix: FNV's low bits are weak for sequential keys. */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

static bool emu_keq(const emu_map_t *m, const char *a, const char *b)
{
    return m->nocase ? strcasecmp(a, b) == 0 : strcmp(a, b) == 0;
}

emu_map_t *emu_map_new(bool nocase)
{
    emu_map_t *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->cap = 16;
    m->slots = calloc(m->cap, sizeof(*m->slots));
    if (!m->slots) {
        free(m);
        return NULL;
    }
    m->nocase = nocase;
    return m;
}

void emu_map_clear(emu_map_t *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->cap; i++) {
        free(m->slots[i].key);
        m->slots[i].key = NULL;
        m->slots[i].val = NULL;
    }
    m->count = 0;
}

void emu_map_destroy(emu_map_t *m)
{
    if (!m)
        return;
    emu_map_clear(m);
    free(m->slots);
    free(m);
}

static size_t emu_find(const emu_map_t *m, const char *key, uint64_t h, bool *found)
{
    size_t mask = m->cap - 1;
    size_t i = (size_t)h & mask;
    while (m->slots[i].key) {
        if (m->slots[i].hash == h && emu_keq(m, m->slots[i].key, key)) {
            *found = true;
            return i;
        }
        i = (i + 1) & mask;
    }
    *found = false;
    return i;
}

static bool emu_grow(emu_map_t *m)
{
    size_t ncap = m->cap * 2;
    emu_slot_t *ns = calloc(ncap, sizeof(*ns));
    if (!ns)
        return false;
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->slots[i].key)
            continue;
        size_t j = (size_t)m->slots[i].hash & (ncap - 1);
        while (ns[j].key)
            j = (j + 1) & (ncap - 1);
        ns[j] = m->slots[i];
    }
    free(m->slots);
    m->slots = ns;
    m->cap = ncap;
    return true;
}

void *emu_map_get(const emu_map_t *m, const char *key)
{
    if (!m || !key)
        return NULL;
    bool found;
    size_t i = emu_find(m, key, emu_hash(key, m->nocase), &found);
    return found ? m->slots[i].val : NULL;
}

void *emu_map_put(emu_map_t *m, const char *key, void *value)
{
    if (!m || !key)
        return NULL;
    if ((m->count + 1) * 4 > m->cap * 3 && !emu_grow(m))
        return NULL;
    uint64_t h = emu_hash(key, m->nocase);
    bool found;
    size_t i = emu_find(m, key, h, &found);
    if (found) {
        void *old = m->slots[i].val;
        m->slots[i].val = value;
        return old;
    }
    char *k = strdup(key);
    if (!k)
        return NULL;
    m->slots[i].key = k;
    m->slots[i].val = value;
    m->slots[i].hash = h;
    m->count++;
    return NULL;
}

void *emu_map_del(emu_map_t *m, const char *key)
{
    if (!m || !key)
        return NULL;
    bool found;
    size_t i = emu_find(m, key, emu_hash(key, m->nocase), &found);
    if (!found)
        return NULL;
    void *old = m->slots[i].val;
    free(m->slots[i].key);
    m->slots[i].key = NULL;
    m->count--;
    /* Backward shift: move later entries of the same probe run into the hole
     * when their home slot is not between the hole and their position. */
    size_t mask = m->cap - 1;
    size_t hole = i;
    size_t j = (i + 1) & mask;
    while (m->slots[j].key) {
        size_t home = (size_t)m->slots[j].hash & mask;
        bool movable = hole <= j ? (home <= hole || home > j) : (home <= hole && home > j);
        if (movable) {
            m->slots[hole] = m->slots[j];
            m->slots[j].key = NULL;
            m->slots[j].val = NULL;
            hole = j;
        }
        j = (j + 1) & mask;
    }
    return old;
}

size_t emu_map_count(const emu_map_t *m)
{
    return m ? m->count : 0;
}

bool emu_map_next(const emu_map_t *m, size_t *pos, const char **key, void **value)
{
    if (!m)
        return false;
    while (*pos < m->cap) {
        size_t i = (*pos)++;
        if (m->slots[i].key) {
            if (key)
                *key = m->slots[i].key;
            if (value)
                *value = m->slots[i].val;
            return true;
        }
    }
    return false;
}
