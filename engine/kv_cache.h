/* kv_cache.h — the paged ("blocked") KV cache's bookkeeping: which physical blocks are free, which
 * sequence holds which.  It knows nothing about where the blocks' bytes live (the backend owns the storage,
 * indexed by block id) nor about CUDA.
 *
 * Invariants: every block id in [0, n_blocks) is either on the free list or held by exactly one block
 * table; n_free + held == n_blocks.
 */
#ifndef LMB_KV_CACHE_H
#define LMB_KV_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

typedef struct lmb_kv_blocks {
    int n_blocks;
    int block_size; /* tokens per block */
    int32_t *free_ids; /* stack of free block ids */
    int n_free;
    int peak_used;
} lmb_kv_blocks;

/* A sequence's block table: logical block i lives in physical block ids[i]. */
typedef struct lmb_block_table {
    int32_t *ids;
    int n, cap;
} lmb_block_table;

int lmb_kv_blocks_init(lmb_kv_blocks *kv, int n_blocks, int block_size, lmb_error *err);
void lmb_kv_blocks_free(lmb_kv_blocks *kv);

static inline int lmb_kv_blocks_for_tokens(const lmb_kv_blocks *kv, int n_tokens) {
    return (n_tokens + kv->block_size - 1) / kv->block_size;
}

/* Grows t so it covers n_tokens; returns 0, or 1 (nothing taken) if there are not enough free blocks,
 * or -1 on allocation failure. */
int lmb_kv_blocks_reserve(lmb_kv_blocks *kv, lmb_block_table *t, int n_tokens, lmb_error *err);
/* Returns every block of t to the free list and empties t (keeps its storage). */
void lmb_kv_blocks_release(lmb_kv_blocks *kv, lmb_block_table *t);
void lmb_block_table_free(lmb_block_table *t);

#endif
