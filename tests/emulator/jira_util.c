/* jira_util.c - small containers and helpers for the Jira emulator part. */
#include "jira.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t jira_hash64(const char *s, size_t n, uint64_t seed)
{
    /* FNV-1a, then a final mix so that low bits spread well. */
    uint64_t h = 1469598103934665603ULL ^ seed;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

/* ---- vector ------------------------------------------------------------------ */

int jira_vec_push(jira_vec_t *vec, void *p)
{
    if (vec->n == vec->cap) {
        size_t ncap = vec->cap ? vec->cap * 2 : 8;
        void **nv = realloc(vec->v, ncap * sizeof(*nv));
        if (!nv)
            return -1;
        vec->v = nv;
        vec->cap = ncap;
    }
    vec->v[vec->n++] = p;
    return 0;
}

int jira_vec_remove(jira_vec_t *vec, const void *p)
{
    for (size_t i = 0; i < vec->n; i++) {
        if (vec->v[i] == p) {
            memmove(&vec->v[i], &vec->v[i + 1], (vec->n - i - 1) * sizeof(void *));
            vec->n--;
            return 1;
        }
    }
    return 0;
}

int jira_vec_contains(const jira_vec_t *vec, const void *p)
{
    for (size_t i = 0; i < vec->n; i++)
        if (vec->v[i] == p)
            return 1;
    return 0;
}

void jira_vec_clear(jira_vec_t *vec)
{
    free(vec->v);
    vec->v = NULL;
    vec->n = vec->cap = 0;
}

/* ---- string buffer ------------------------------------------------------------- */

static int jira_buf_reserve(jira_buf_t *b, size_t extra)
{
    if (b->n + extra + 1 <= b->cap)
        return 0;
    size_t ncap = b->cap ? b->cap : 64;
    while (ncap < b->n + extra + 1)
        ncap *= 2;
    char *ns = realloc(b->s, ncap);
    if (!ns)
        return -1;
    b->s = ns;
    b->cap = ncap;
    return 0;
}

int jira_buf_add(jira_buf_t *b, const char *s, size_t n)
{
    if (jira_buf_reserve(b, n) != 0)
        return -1;
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
    return 0;
}

int jira_buf_addf(jira_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int need = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (need < 0 || jira_buf_reserve(b, (size_t)need) != 0)
        return -1;
    va_start(ap, fmt);
    vsnprintf(b->s + b->n, (size_t)need + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)need;
    return 0;
}

void jira_buf_free(jira_buf_t *b)
{
    free(b->s);
    b->s = NULL;
    b->n = b->cap = 0;
}

/* ---- misc -------------------------------------------------------------------------- */

char *jira_strdup(const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d)
        memcpy(d, s, n + 1);
    return d;
}

int jira_parse_i64(const char *s, int64_t *out)
{
    if (!s || !*s)
        return -1;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = (int64_t)v;
    return 0;
}

void jira_fmt_time(int64_t ms, char *out, size_t outsz)
{
    emu_fmt_utc(ms, "+0000", out, outsz);
}

static const char jira_b64_alpha[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *jira_b64url_encode(const unsigned char *in, size_t n)
{
    char *out = malloc((n + 2) / 3 * 4 + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = jira_b64_alpha[(v >> 18) & 63];
        out[o++] = jira_b64_alpha[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = jira_b64_alpha[(v >> 6) & 63];
        if (i + 2 < n)
            out[o++] = jira_b64_alpha[v & 63];
    }
    out[o] = '\0';
    return out;
}

static int jira_b64_val(char c)
{
    const char *p = c ? strchr(jira_b64_alpha, c) : NULL;
    return p ? (int)(p - jira_b64_alpha) : -1;
}

char *jira_b64url_decode(const char *in, size_t *outlen)
{
    size_t n = strlen(in);
    if (n % 4 == 1)
        return NULL;
    char *out = malloc(n / 4 * 3 + 3);
    if (!out)
        return NULL;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = jira_b64_val(in[i]);
        if (v < 0) {
            free(out);
            return NULL;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)((acc >> bits) & 0xff);
        }
    }
    out[o] = '\0';
    if (outlen)
        *outlen = o;
    return out;
}
