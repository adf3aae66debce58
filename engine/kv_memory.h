/* kv_memory.h — what the KV cache costs and holds: bytes per block and per token at each element size (fp32 on
 * the CPU, fp16, int8, int4 with their per-token scales), the blocks a memory budget holds, and the memory
 * report printed at engine start and by `lmbatch inspect --kv`.
 *
 * It also writes the CUDA backend's sizing down as a formula (cache = cache_fraction x the memory free after
 * the CUDA context, the weights and the activations), so inspect can say what a GPU of a given size would
 * hold without one; the engine itself always sizes from what cudaMemGetInfo measures.
 */
#ifndef LMB_KV_MEMORY_H
#define LMB_KV_MEMORY_H

#include <stddef.h>
#include <stdio.h>

#include "model.h"

/* "fp32", "fp16", "int8", "int4" for 32/16/8/4 bits; "?" otherwise. */
const char *lmb_kv_bits_name(int bits);
/* "fp16" -> 16, "int8" -> 8, "int4" -> 4; 0 for anything else. */
int lmb_kv_bits_parse(const char *s);

/* Bytes of one KV block: 2 (K, V) x layers x kv heads tiles of block_size tokens (kernels/kv_quant.h). */
size_t lmb_kv_block_bytes(const lmb_model_config *c, int bits, int block_size);

typedef struct lmb_kv_capacity {
    int bits, block_size, seq_len;
    size_t budget;      /* bytes given to the cache */
    size_t block_bytes;
    double bytes_per_token; /* block_bytes / block_size */
    long blocks, tokens;
    long seqs; /* sequences of seq_len tokens that fit at once (each takes ceil(seq_len / block_size) blocks) */
} lmb_kv_capacity;

void lmb_kv_capacity_of(const lmb_model_config *c, int bits, int block_size, size_t budget, int seq_len,
                        lmb_kv_capacity *out);

/* The CUDA backend's device memory besides weights and KV cache, as backend_cuda.c allocates it before sizing
 * the cache: activations for max_batch_tokens tokens and max(max_seqs, 256) logit rows, and the cuBLAS
 * workspace.  The CUDA context is not included (LMB_CUDA_CONTEXT_BYTES is the assumption inspect makes). */
size_t lmb_cuda_activation_bytes(const lmb_model_config *c, int max_batch_tokens, int max_seqs);
#define LMB_CUDA_CONTEXT_BYTES ((size_t)512 << 20)
/* cache_fraction x (gpu_bytes - context - weights - activations), 0 when nothing is left. */
size_t lmb_cuda_kv_budget_formula(size_t gpu_bytes, size_t weight_bytes, size_t activation_bytes, double fraction);

/* The memory report: weights, KV bytes per token, and what the cache holds, on one line per item, each
 * prefixed with `prefix` ("lmbatch: " at engine start). */
void lmb_kv_report(FILE *f, const char *prefix, size_t weight_bytes, const char *kv_mode, const lmb_kv_capacity *cap);

#endif
