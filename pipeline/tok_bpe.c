/* tok_bpe.c — the BPE model of tokenizer.json: vocabulary, merge ranks, and the per-word merge loop.
 *
 * A word's characters become symbols (unknown ones go to byte fallback or the unk token, fused or not);
 * then the lowest-ranked adjacent pair is merged, leftmost first, until no pair has a rank.  Candidate
 * pairs sit in a binary min-heap on (rank, position); an entry is stale once the pair at its position no
 * longer yields the same merged id, and is then skipped — the same tie-breaking as HF's Word::merge_all.
 * Results for short words are kept in a bounded cache (sharded, one mutex per shard, reset when full) so
 * frequent words cost one lookup.  When the merges never glue a character to a following U+2581 ("▁"),
 * long pieces (SentencePiece-style text without a pre-tokenizer) are cut before each "▁" that follows
 * another character; merging the parts separately gives the same ids, and keeps the heaps small.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"
#include "utf8.h"

/* ---- pair -> (rank, merged id) ------------------------------------------------------------------------ */

static inline uint64_t pair_key(int32_t a, int32_t b) { return (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1; }

static inline size_t pair_slot(uint64_t key, size_t mask) {
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    return (size_t)(h ^ (h >> 29)) & mask;
}

static int pairmap_init(lmb_pairmap *pm, size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap *= 2;
    pm->s = calloc(cap, sizeof *pm->s);
    if (!pm->s) return -1;
    pm->mask = cap - 1;
    pm->n = 0;
    return 0;
}

/* Later duplicates overwrite earlier ones, as HF's HashMap collect does. */
static void pairmap_put(lmb_pairmap *pm, int32_t a, int32_t b, uint32_t rank, int32_t new_id) {
    uint64_t key = pair_key(a, b);
    size_t j = pair_slot(key, pm->mask);
    while (pm->s[j].key && pm->s[j].key != key) j = (j + 1) & pm->mask;
    if (!pm->s[j].key) pm->n++;
    pm->s[j] = (lmb_pairmap_slot){key, rank, new_id};
}

static inline const lmb_pairmap_slot *pairmap_get(const lmb_pairmap *pm, int32_t a, int32_t b) {
    uint64_t key = pair_key(a, b);
    size_t j = pair_slot(key, pm->mask);
    while (pm->s[j].key) {
        if (pm->s[j].key == key) return &pm->s[j];
        j = (j + 1) & pm->mask;
    }
    return NULL;
}

/* ---- word cache ----------------------------------------------------------------------------------------- */

enum { CACHE_SHARDS = 16, CACHE_ENTRIES = 2048, CACHE_BYTES = 256 * 1024, CACHE_MAX_WORD = 128 };

typedef struct cache_entry {
    uint64_t hash;
    uint32_t key_off, key_len, ids_off, n_ids;
} cache_entry;

typedef struct cache_shard {
    pthread_mutex_t mu;
    uint32_t slots[CACHE_ENTRIES * 2]; /* entry index + 1 */
    cache_entry e[CACHE_ENTRIES];
    size_t n;
    lmb_buf keys, ids; /* ids stored as raw int32 bytes */
} cache_shard;

struct lmb_bpe_cache {
    cache_shard shard[CACHE_SHARDS];
};

static lmb_bpe_cache *cache_new(void) {
    lmb_bpe_cache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    for (int i = 0; i < CACHE_SHARDS; i++) pthread_mutex_init(&c->shard[i].mu, NULL);
    return c;
}

static void cache_free(lmb_bpe_cache *c) {
    if (!c) return;
    for (int i = 0; i < CACHE_SHARDS; i++) {
        pthread_mutex_destroy(&c->shard[i].mu);
        lmb_buf_free(&c->shard[i].keys);
        lmb_buf_free(&c->shard[i].ids);
    }
    free(c);
}

static bool cache_get(lmb_bpe_cache *c, const char *w, size_t n, uint64_t h, lmb_ids *out) {
    cache_shard *sh = &c->shard[h >> 60];
    bool hit = false;
    pthread_mutex_lock(&sh->mu);
    size_t mask = CACHE_ENTRIES * 2 - 1, j = h & mask;
    while (sh->slots[j]) {
        const cache_entry *e = &sh->e[sh->slots[j] - 1];
        if (e->hash == h && e->key_len == n && memcmp(sh->keys.p + e->key_off, w, n) == 0) {
            const int32_t *ids = (const int32_t *)(void *)(sh->ids.p + e->ids_off);
            hit = true;
            for (uint32_t k = 0; k < e->n_ids; k++)
                if (lmb_ids_push(out, ids[k])) hit = false; /* out of memory: caller recomputes */
            break;
        }
        j = (j + 1) & mask;
    }
    pthread_mutex_unlock(&sh->mu);
    return hit;
}

static void cache_put(lmb_bpe_cache *c, const char *w, size_t n, uint64_t h, const int32_t *ids, size_t n_ids) {
    cache_shard *sh = &c->shard[h >> 60];
    pthread_mutex_lock(&sh->mu);
    if (sh->n >= CACHE_ENTRIES || sh->keys.n + sh->ids.n > CACHE_BYTES) { /* full: start over */
        memset(sh->slots, 0, sizeof sh->slots);
        sh->n = 0;
        sh->keys.n = sh->ids.n = 0;
    }
    size_t mask = CACHE_ENTRIES * 2 - 1, j = h & mask;
    bool present = false;
    while (sh->slots[j]) {
        const cache_entry *e = &sh->e[sh->slots[j] - 1];
        if (e->hash == h && e->key_len == n && memcmp(sh->keys.p + e->key_off, w, n) == 0) present = true;
        j = (j + 1) & mask;
    }
    /* ids are 4-byte aligned: the arena only ever grows by multiples of 4 */
    size_t koff = sh->keys.n, ioff = sh->ids.n;
    if (!present && lmb_buf_reserve(&sh->ids, n_ids * 4 + 4) == 0 && lmb_buf_append(&sh->keys, w, n) == 0) {
        /* a word of unknown characters without an unk token has no ids, and ids may then be NULL */
        if (n_ids) memcpy(sh->ids.p + ioff, ids, n_ids * 4);
        sh->ids.n += n_ids * 4;
        sh->e[sh->n] = (cache_entry){h, (uint32_t)koff, (uint32_t)n, (uint32_t)ioff, (uint32_t)n_ids};
        sh->slots[j] = (uint32_t)++sh->n;
    }
    pthread_mutex_unlock(&sh->mu);
}

/* ---- the merge loop --------------------------------------------------------------------------------------- */

typedef struct lmb_bpe_merge {
    uint32_t rank, pos;
    int32_t new_id;
} lmb_bpe_merge;

static inline bool merge_less(const lmb_bpe_merge *a, const lmb_bpe_merge *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static int heap_push(lmb_bpe_scratch *s, lmb_bpe_merge m) {
    if (s->heap_n == s->heap_cap) {
        size_t nc = s->heap_cap ? s->heap_cap * 2 : 64;
        lmb_bpe_merge *h = realloc(s->heap, nc * sizeof *h);
        if (!h) return -1;
        s->heap = h;
        s->heap_cap = nc;
    }
    size_t i = s->heap_n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!merge_less(&m, &s->heap[p])) break;
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = m;
    return 0;
}

static lmb_bpe_merge heap_pop(lmb_bpe_scratch *s) {
    lmb_bpe_merge top = s->heap[0], last = s->heap[--s->heap_n];
    size_t i = 0, n = s->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && merge_less(&s->heap[c + 1], &s->heap[c])) c++;
        if (!merge_less(&s->heap[c], &last)) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n) s->heap[i] = last;
    return top;
}

static int scratch_reserve(lmb_bpe_scratch *s, size_t n) {
    if (n <= s->cap) return 0;
    size_t nc = s->cap ? s->cap : 64;
    while (nc < n) nc *= 2;
    int32_t *id = realloc(s->id, nc * sizeof *id);
    if (!id) return -1;
    s->id = id;
    int32_t *prev = realloc(s->prev, nc * sizeof *prev);
    if (!prev) return -1;
    s->prev = prev;
    int32_t *next = realloc(s->next, nc * sizeof *next);
    if (!next) return -1;
    s->next = next;
    uint32_t *len = realloc(s->len, nc * sizeof *len);
    if (!len) return -1;
    s->len = len;
    s->cap = nc;
    return 0;
}

void lmb_bpe_scratch_free(lmb_bpe_scratch *s) {
    free(s->id);
    free(s->prev);
    free(s->next);
    free(s->len);
    free(s->heap);
    memset(s, 0, sizeof *s);
}

/* Id of character w[i..j) as a token, with the continuing-subword prefix / end-of-word suffix if due. */
static int32_t char_id(const lmb_bpe *m, const char *w, size_t n, size_t i, size_t j, char *tmp, size_t *tmp_len) {
    bool pre = m->prefix && i > 0, suf = m->suffix && j == n;
    if (!pre && !suf) {
        *tmp_len = 0;
        if (j - i == 1) return m->small_char_id[(unsigned char)w[i]];
        if (j - i == 2) {
            uint32_t cp = ((uint32_t)(w[i] & 0x1F) << 6) | (uint32_t)(w[i + 1] & 0x3F);
            return m->small_char_id[cp];
        }
        return lmb_strmap_get(&m->vocab, w + i, j - i);
    }
    size_t k = 0;
    if (pre) memcpy(tmp, m->prefix, m->prefix_len), k += m->prefix_len;
    memcpy(tmp + k, w + i, j - i), k += j - i;
    if (suf) memcpy(tmp + k, m->suffix, m->suffix_len), k += m->suffix_len;
    *tmp_len = k;
    return lmb_strmap_get(&m->vocab, tmp, k);
}

/* Symbols of one word, before any merge.  Returns the count, or -1 on out of memory. */
static long initial_symbols(const lmb_bpe *m, const char *w, size_t n, lmb_bpe_scratch *s) {
    if (scratch_reserve(s, n + 1)) return -1;
    char tmp[4 + 2 * 256];
    long k = 0;
    int32_t unk = -1;
    uint32_t unk_len = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i + (size_t)lmb_utf8_seqlen((unsigned char)w[i]);
        if (j > n) j = n;
        size_t tl;
        int32_t id = char_id(m, w, n, i, j, tmp, &tl);
        if (id >= 0) {
            if (unk >= 0) {
                s->id[k] = unk, s->len[k++] = unk_len;
                unk = -1;
            }
            if ((size_t)k >= s->cap && scratch_reserve(s, (size_t)k + 1)) return -1;
            s->id[k] = id, s->len[k++] = (uint32_t)(j - i);
        } else {
            const char *bytes = tl ? tmp : w + i;
            size_t nb = tl ? tl : j - i;
            bool all = m->byte_fallback;
            for (size_t b = 0; all && b < nb; b++) all = m->byte_id[(unsigned char)bytes[b]] >= 0;
            if (all) { /* as HF: byte tokens do not flush a pending unk */
                if (scratch_reserve(s, (size_t)k + nb + 1)) return -1;
                for (size_t b = 0; b < nb; b++) s->id[k] = m->byte_id[(unsigned char)bytes[b]], s->len[k++] = 1;
            } else if (m->unk_id >= 0) {
                if (unk >= 0 && m->fuse_unk) {
                    unk_len += (uint32_t)(j - i);
                } else {
                    if (unk >= 0) {
                        if (scratch_reserve(s, (size_t)k + 2)) return -1;
                        s->id[k] = unk, s->len[k++] = unk_len;
                    }
                    unk = m->unk_id;
                    unk_len = (uint32_t)(j - i);
                }
            } /* no unk token: the character is dropped, as HF does */
        }
        i = j;
    }
    if (unk >= 0) {
        if (scratch_reserve(s, (size_t)k + 1)) return -1;
        s->id[k] = unk, s->len[k++] = unk_len;
    }
    return k;
}

static int merge_word(const lmb_bpe *m, const char *w, size_t n, lmb_bpe_scratch *s, lmb_ids *out) {
    long k = initial_symbols(m, w, n, s);
    if (k < 0) return -1;
    size_t ns = (size_t)k;
    for (size_t i = 0; i < ns; i++) {
        s->prev[i] = (int32_t)i - 1;
        s->next[i] = i + 1 < ns ? (int32_t)i + 1 : -1;
    }
    s->heap_n = 0;
    for (size_t i = 0; i + 1 < ns; i++) {
        const lmb_pairmap_slot *p = pairmap_get(&m->merges, s->id[i], s->id[i + 1]);
        if (p && heap_push(s, (lmb_bpe_merge){p->rank, (uint32_t)i, p->new_id})) return -1;
    }
    while (s->heap_n > 0) {
        lmb_bpe_merge top = heap_pop(s);
        uint32_t a = top.pos;
        if (s->len[a] == 0 || s->next[a] < 0) continue;
        uint32_t b = (uint32_t)s->next[a];
        const lmb_pairmap_slot *p = pairmap_get(&m->merges, s->id[a], s->id[b]);
        if (!p || p->new_id != top.new_id) continue; /* stale */
        s->id[a] = top.new_id;
        s->len[a] += s->len[b];
        s->len[b] = 0;
        s->next[a] = s->next[b];
        if (s->next[b] >= 0) s->prev[s->next[b]] = (int32_t)a;
        if (s->prev[a] >= 0) {
            uint32_t pa = (uint32_t)s->prev[a];
            const lmb_pairmap_slot *q = pairmap_get(&m->merges, s->id[pa], s->id[a]);
            if (q && heap_push(s, (lmb_bpe_merge){q->rank, pa, q->new_id})) return -1;
        }
        if (s->next[a] >= 0) {
            const lmb_pairmap_slot *q = pairmap_get(&m->merges, s->id[a], s->id[s->next[a]]);
            if (q && heap_push(s, (lmb_bpe_merge){q->rank, a, q->new_id})) return -1;
        }
    }
    for (size_t i = 0; i < ns; i++)
        if (s->len[i] && lmb_ids_push(out, s->id[i])) return -1;
    return 0;
}

static int encode_piece(const lmb_bpe *m, const char *w, size_t n, lmb_bpe_scratch *s, lmb_ids *out) {
    if (n == 0) return 0;
    bool cacheable = n <= CACHE_MAX_WORD && m->cache;
    uint64_t h = 0;
    if (cacheable) {
        h = lmb_hash_bytes(w, n);
        if (cache_get(m->cache, w, n, h, out)) return 0;
    }
    size_t first = out->n;
    if (merge_word(m, w, n, s, out)) return -1;
    if (cacheable) cache_put(m->cache, w, n, h, out->ids + first, out->n - first);
    return 0;
}

int lmb_bpe_encode_word(const lmb_bpe *m, const char *w, size_t n, lmb_bpe_scratch *s, lmb_ids *out) {
    if (m->ignore_merges) {
        int32_t id = lmb_strmap_get(&m->vocab, w, n);
        if (id >= 0) return lmb_ids_push(out, id);
    }
    if (!m->split_meta) return encode_piece(m, w, n, s, out);
    static const char META[] = "\xE2\x96\x81";
    size_t start = 0;
    for (size_t i = 1; i + 3 <= n; i++)
        if ((unsigned char)w[i] == 0xE2 && memcmp(w + i, META, 3) == 0 && !(i >= 3 && memcmp(w + i - 3, META, 3) == 0)) {
            if (encode_piece(m, w + start, i - start, s, out)) return -1;
            start = i;
        }
    return encode_piece(m, w + start, n - start, s, out);
}

/* ---- loading -------------------------------------------------------------------------------------------- */

static char *dup_opt_string(json_t *j, size_t *len) {
    if (!json_is_string(j)) return NULL;
    *len = json_string_length(j);
    char *p = malloc(*len + 1);
    if (p) memcpy(p, json_string_value(j), *len + 1);
    return p;
}

/* Whether any merge result has a character other than U+2581 directly before a U+2581. */
static bool glues_before_meta(const char *s, size_t n) {
    for (size_t i = 1; i + 3 <= n; i++)
        if (memcmp(s + i, "\xE2\x96\x81", 3) == 0 && !(i >= 3 && memcmp(s + i - 3, "\xE2\x96\x81", 3) == 0))
            return true;
    return false;
}

static int parse_merge(json_t *mj, const char **a, size_t *al, const char **b, size_t *bl) {
    if (json_is_string(mj)) {
        const char *s = json_string_value(mj);
        size_t n = json_string_length(mj);
        const char *sp = memchr(s, ' ', n);
        if (!sp || sp == s || sp == s + n - 1 || memchr(sp + 1, ' ', (size_t)(s + n - sp - 1))) return -1;
        *a = s, *al = (size_t)(sp - s), *b = sp + 1, *bl = (size_t)(s + n - sp - 1);
        return 0;
    }
    if (json_is_array(mj) && json_array_size(mj) == 2 && json_is_string(json_array_get(mj, 0)) &&
        json_is_string(json_array_get(mj, 1))) {
        *a = json_string_value(json_array_get(mj, 0)), *al = json_string_length(json_array_get(mj, 0));
        *b = json_string_value(json_array_get(mj, 1)), *bl = json_string_length(json_array_get(mj, 1));
        return 0;
    }
    return -1;
}

int lmb_bpe_parse(json_t *model, lmb_bpe *m, const char *path, lmb_error *err) {
    memset(m, 0, sizeof *m);
    m->unk_id = -1;
    m->max_id = -1;
    for (int i = 0; i < 256; i++) m->byte_id[i] = -1;
    if (!json_is_object(model)) return lmb_fail(err, "%s: model: expected an object", path);
    json_t *type = json_object_get(model, "type");
    if (json_is_string(type) && strcmp(json_string_value(type), "BPE") != 0)
        return lmb_fail(err, "%s: model.type: unsupported model type \"%s\" (only BPE is supported)", path,
                        json_string_value(type));
    if (!type && !json_object_get(model, "merges"))
        return lmb_fail(err, "%s: model: no \"type\" and no \"merges\": not a BPE model", path);
    json_t *dropout = json_object_get(model, "dropout");
    if (json_is_number(dropout) && json_number_value(dropout) > 0.0)
        return lmb_fail(err, "%s: model.dropout: BPE dropout (%g) is not supported", path, json_number_value(dropout));

    json_t *vocab = json_object_get(model, "vocab");
    if (!json_is_object(vocab)) return lmb_fail(err, "%s: model.vocab: expected an object of token -> id", path);
    const char *key;
    size_t key_len;
    json_t *val;
    json_object_keylen_foreach(vocab, key, key_len, val) {
        if (!json_is_integer(val) || json_integer_value(val) < 0)
            return lmb_fail(err, "%s: model.vocab[\"%s\"]: expected a non-negative integer id", path, key);
        if (json_integer_value(val) > LMB_TOK_MAX_ID)
            return lmb_fail(err, "%s: model.vocab[\"%s\"]: id %lld is too large (at most %d)", path, key,
                            (long long)json_integer_value(val), LMB_TOK_MAX_ID);
        int32_t id = (int32_t)json_integer_value(val);
        if (lmb_strmap_put(&m->vocab, key, key_len, id)) return lmb_fail(err, "out of memory");
        if (id > m->max_id) m->max_id = id;
    }

    m->fuse_unk = lmb_tok_json_bool(model, "fuse_unk", false);
    m->byte_fallback = lmb_tok_json_bool(model, "byte_fallback", false);
    m->ignore_merges = lmb_tok_json_bool(model, "ignore_merges", false);
    m->prefix = dup_opt_string(json_object_get(model, "continuing_subword_prefix"), &m->prefix_len);
    m->suffix = dup_opt_string(json_object_get(model, "end_of_word_suffix"), &m->suffix_len);
    if ((m->prefix && m->prefix_len == 0) || (m->suffix && m->suffix_len == 0)) {
        free(m->prefix), free(m->suffix);
        m->prefix = m->suffix = NULL;
    }
    if (m->prefix_len > 256 || m->suffix_len > 256)
        return lmb_fail(err, "%s: model: continuing_subword_prefix/end_of_word_suffix longer than 256 bytes", path);
    json_t *unk = json_object_get(model, "unk_token");
    if (json_is_string(unk)) {
        m->unk_id = lmb_strmap_get(&m->vocab, json_string_value(unk), json_string_length(unk));
        if (m->unk_id < 0)
            return lmb_fail(err, "%s: model.unk_token: \"%s\" is not in model.vocab", path, json_string_value(unk));
    }
    if (m->byte_fallback)
        for (int b = 0; b < 256; b++) {
            char name[8];
            snprintf(name, sizeof name, "<0x%02X>", b);
            m->byte_id[b] = lmb_strmap_get(&m->vocab, name, 6);
        }
    if (!(m->small_char_id = malloc(0x800 * sizeof *m->small_char_id))) return lmb_fail(err, "out of memory");
    for (uint32_t cp = 0; cp < 0x800; cp++) {
        char u[4];
        int l = lmb_utf8_put(cp, u);
        m->small_char_id[cp] = lmb_strmap_get(&m->vocab, u, (size_t)l);
    }

    json_t *merges = json_object_get(model, "merges");
    if (!merges) merges = json_array();
    else json_incref(merges);
    int rc = -1;
    if (!json_is_array(merges)) {
        lmb_fail(err, "%s: model.merges: expected an array", path);
        goto done;
    }
    size_t nm = json_array_size(merges);
    if (pairmap_init(&m->merges, nm)) {
        lmb_fail(err, "out of memory");
        goto done;
    }
    m->split_meta = !m->ignore_merges && !m->prefix && !m->suffix && lmb_strmap_get(&m->vocab, "\xE2\x96\x81", 3) >= 0;
    lmb_buf joined = {0};
    for (size_t i = 0; i < nm; i++) {
        const char *a, *b;
        size_t al, bl;
        if (parse_merge(json_array_get(merges, i), &a, &al, &b, &bl)) {
            lmb_fail(err, "%s: model.merges[%zu]: expected \"a b\" or [\"a\",\"b\"]", path, i);
            goto merges_done;
        }
        int32_t ia = lmb_strmap_get(&m->vocab, a, al), ib = lmb_strmap_get(&m->vocab, b, bl);
        if (ia < 0 || ib < 0) {
            lmb_fail(err, "%s: model.merges[%zu]: token \"%.*s\" is not in model.vocab", path, i,
                     (int)(ia < 0 ? al : bl), ia < 0 ? a : b);
            goto merges_done;
        }
        size_t skip = 0;
        if (m->prefix) {
            if (bl < m->prefix_len || memcmp(b, m->prefix, m->prefix_len) != 0) {
                lmb_fail(err, "%s: model.merges[%zu]: \"%.*s\" lacks the continuing_subword_prefix \"%s\"", path, i,
                         (int)bl, b, m->prefix);
                goto merges_done;
            }
            skip = m->prefix_len;
        }
        joined.n = 0;
        if (lmb_buf_append(&joined, a, al) || lmb_buf_append(&joined, b + skip, bl - skip)) {
            lmb_fail(err, "out of memory");
            goto merges_done;
        }
        int32_t nid = lmb_strmap_get(&m->vocab, joined.p, joined.n);
        if (nid < 0) {
            lmb_fail(err, "%s: model.merges[%zu]: merged token \"%s\" is not in model.vocab", path, i, joined.p);
            goto merges_done;
        }
        if (m->split_meta && glues_before_meta(joined.p, joined.n)) m->split_meta = false;
        pairmap_put(&m->merges, ia, ib, (uint32_t)i, nid);
    }
    if (!(m->cache = cache_new())) {
        lmb_fail(err, "out of memory");
        goto merges_done;
    }
    rc = 0;
merges_done:
    lmb_buf_free(&joined);
done:
    json_decref(merges);
    return rc;
}

void lmb_bpe_free(lmb_bpe *m) {
    lmb_strmap_free(&m->vocab);
    free(m->merges.s);
    free(m->prefix);
    free(m->suffix);
    free(m->small_char_id);
    cache_free(m->cache);
    memset(m, 0, sizeof *m);
}
