/* tok_util.c — the tokenizer's small containers: growable byte buffers, span lists, a byte-string hash
 * and the string -> id map used for vocabularies.
 *
 * lmb_strmap is open addressing over a power-of-two slot array kept at most half full; entries are
 * stored densely in insertion order and their keys in one arena, so a lookup touches one slot, one entry
 * and one key.
 */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

int lmb_buf_reserve(lmb_buf *b, size_t extra) {
    size_t need = b->n + extra + 1;
    if (need <= b->cap) return 0;
    size_t nc = b->cap ? b->cap : 256;
    while (nc < need) nc *= 2;
    char *p = realloc(b->p, nc);
    if (!p) return -1;
    b->p = p;
    b->cap = nc;
    return 0;
}

int lmb_buf_append(lmb_buf *b, const void *s, size_t n) {
    if (lmb_buf_reserve(b, n)) return -1;
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return 0;
}

void lmb_buf_free(lmb_buf *b) {
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

int lmb_spans_push(lmb_spans *s, size_t off, size_t len, int32_t id, bool at_origin) {
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 64;
        lmb_span *v = realloc(s->v, nc * sizeof *v);
        if (!v) return -1;
        s->v = v;
        s->cap = nc;
    }
    s->v[s->n++] = (lmb_span){off, len, id, at_origin};
    return 0;
}

uint64_t lmb_hash_bytes(const void *p, size_t n) {
    const unsigned char *s = p;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xFF51AFD7ED558CCDull);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 31;
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, s, n);
    h = (h ^ w) * 0x94D049BB133111EBull;
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 32;
    return h;
}

static int strmap_grow(lmb_strmap *m) {
    size_t nslots = m->mask ? (m->mask + 1) * 2 : 64;
    uint32_t *slots = calloc(nslots, sizeof *slots);
    if (!slots) return -1;
    for (size_t i = 0; i < m->n; i++) {
        size_t j = m->e[i].hash & (nslots - 1);
        while (slots[j]) j = (j + 1) & (nslots - 1);
        slots[j] = (uint32_t)i + 1;
    }
    free(m->slots);
    m->slots = slots;
    m->mask = nslots - 1;
    return 0;
}

int lmb_strmap_put(lmb_strmap *m, const char *k, size_t n, int32_t v) {
    if ((m->n + 1) * 2 > (m->mask ? m->mask + 1 : 0) && strmap_grow(m)) return -1;
    uint64_t h = lmb_hash_bytes(k, n);
    size_t j = h & m->mask;
    while (m->slots[j]) {
        lmb_strmap_entry *e = &m->e[m->slots[j] - 1];
        if (e->hash == h && e->len == n && memcmp(m->keys.p + e->off, k, n) == 0) {
            e->val = v;
            return 0;
        }
        j = (j + 1) & m->mask;
    }
    if (m->n == m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 64;
        lmb_strmap_entry *ne = realloc(m->e, nc * sizeof *ne);
        if (!ne) return -1;
        m->e = ne;
        m->cap = nc;
    }
    size_t off = m->keys.n;
    if (lmb_buf_append(&m->keys, k, n) || lmb_buf_append(&m->keys, "", 1)) return -1; /* keep keys NUL-ended */
    m->e[m->n] = (lmb_strmap_entry){h, off, (uint32_t)n, v};
    m->slots[j] = (uint32_t)++m->n;
    return 0;
}

int32_t lmb_strmap_get(const lmb_strmap *m, const char *k, size_t n) {
    if (!m->mask) return -1;
    uint64_t h = lmb_hash_bytes(k, n);
    size_t j = h & m->mask;
    while (m->slots[j]) {
        const lmb_strmap_entry *e = &m->e[m->slots[j] - 1];
        if (e->hash == h && e->len == n && memcmp(m->keys.p + e->off, k, n) == 0) return e->val;
        j = (j + 1) & m->mask;
    }
    return -1;
}

void lmb_strmap_free(lmb_strmap *m) {
    free(m->slots);
    free(m->e);
    lmb_buf_free(&m->keys);
    memset(m, 0, sizeof *m);
}
