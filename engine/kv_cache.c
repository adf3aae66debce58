/* kv_cache.c — free-list block allocator for the paged KV cache (see kv_cache.h). */
#include "kv_cache.h"

#include <stdlib.h>

int lmb_kv_blocks_init(lmb_kv_blocks *kv, int n_blocks, int block_size, lmb_error *err) {
    kv->n_blocks = n_blocks;
    kv->block_size = block_size;
    kv->n_free = n_blocks;
    kv->peak_used = 0;
    kv->free_ids = malloc(sizeof(int32_t) * (size_t)(n_blocks > 0 ? n_blocks : 1));
    if (!kv->free_ids) return lmb_fail(err, "out of memory for %d KV block ids", n_blocks);
    /* Pop order = ascending ids, so a fresh cache hands out blocks 0, 1, 2, ... */
    for (int i = 0; i < n_blocks; i++) kv->free_ids[i] = n_blocks - 1 - i;
    return 0;
}

void lmb_kv_blocks_free(lmb_kv_blocks *kv) {
    free(kv->free_ids);
    kv->free_ids = NULL;
    kv->n_free = kv->n_blocks = 0;
}

int lmb_kv_blocks_reserve(lmb_kv_blocks *kv, lmb_block_table *t, int n_tokens, lmb_error *err) {
    int need = lmb_kv_blocks_for_tokens(kv, n_tokens) - t->n;
    if (need <= 0) return 0;
    if (need > kv->n_free) return 1;
    if (t->n + need > t->cap) {
        int cap = t->cap ? t->cap : 8;
        while (cap < t->n + need) cap *= 2;
        int32_t *ids = realloc(t->ids, sizeof *ids * (size_t)cap);
        if (!ids) return lmb_fail(err, "out of memory for a block table of %d blocks", cap);
        t->ids = ids;
        t->cap = cap;
    }
    for (int i = 0; i < need; i++) t->ids[t->n++] = kv->free_ids[--kv->n_free];
    int used = kv->n_blocks - kv->n_free;
    if (used > kv->peak_used) kv->peak_used = used;
    return 0;
}

void lmb_kv_blocks_release(lmb_kv_blocks *kv, lmb_block_table *t) {
    for (int i = t->n - 1; i >= 0; i--) kv->free_ids[kv->n_free++] = t->ids[i];
    t->n = 0;
}

void lmb_block_table_free(lmb_block_table *t) {
    free(t->ids);
    t->ids = NULL;
    t->n = t->cap = 0;
}
