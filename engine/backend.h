/* backend.h — what a compute backend (CPU reference, CUDA) offers the engine: a table of functions, as in
 * ggml's backend interface.  The engine, scheduler and block manager never know which backend runs.
 *
 * One forward takes a varlen batch: the step's tokens of every scheduled sequence packed back to back
 * (prefill chunks and single decode tokens alike), each sequence's slice [q_start[s], q_start[s+1]), its
 * context length after this step, and its block table.  The backend writes each token's K/V into the
 * sequence's blocks at its position, attends causally over the sequence's cache, and produces logits for
 * the rows the engine asks for — then either returns them (teacher-forced scoring) or samples them.
 */
#ifndef LMB_BACKEND_H
#define LMB_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "error.h"
#include "model.h"

/* Sampling inputs for one logits row. */
typedef struct lmb_sample_row {
    lmb_sampling params;
    uint64_t counter;       /* RNG counter: index of the token being generated (0 for the first) */
    const int32_t *history; /* prompt + generated tokens, for the repetition penalty (NULL if penalty 1) */
    int n_history;
} lmb_sample_row;

typedef struct lmb_batch {
    int n_tokens;
    const int32_t *tokens;    /* [n_tokens] */
    const int32_t *positions; /* [n_tokens] position of each token in its sequence */
    int n_seqs;
    const int32_t *q_start;   /* [n_seqs + 1] */
    const int32_t *ctx_len;   /* [n_seqs] tokens in the cache after this step */
    const int32_t *block_tables; /* [n_seqs * max_blocks] */
    int max_blocks;
    int n_logits;
    const int32_t *logit_rows; /* [n_logits] token indices whose logits are needed */
    const lmb_sample_row *sample; /* [n_logits], or NULL for scoring (logits returned instead) */
} lmb_batch;

typedef struct lmb_backend lmb_backend;

typedef struct lmb_backend_ops {
    const char *name;
    /* Bytes one KV block of block_size tokens takes (all layers, K and V). */
    size_t (*kv_block_bytes)(lmb_backend *b, int block_size);
    /* Bytes available for the KV cache under the engine config. */
    int (*kv_budget)(lmb_backend *b, const lmb_engine_config *cfg, size_t *bytes, lmb_error *err);
    int (*kv_alloc)(lmb_backend *b, int n_blocks, int block_size, lmb_error *err);
    /* Runs the batch.  With b->sample == NULL, writes n_logits x vocab fp32 logits to `logits` (host);
     * otherwise writes n_logits sampled ids to `tokens` (host). */
    int (*forward)(lmb_backend *b, const lmb_batch *batch, float *logits, int32_t *tokens, lmb_error *err);
    void (*stats)(lmb_backend *b, lmb_engine_stats *s);
    void (*destroy)(lmb_backend *b);
} lmb_backend_ops;

struct lmb_backend {
    const lmb_backend_ops *ops;
    const lmb_model *model; /* borrowed */
    int kv_bits;            /* the KV element as stored: 32 (CPU fp32), 16 (GPU fp16/bf16), 8 or 4 (kv_quant.h) */
};

int lmb_backend_cpu_create(const lmb_model *model, const lmb_engine_config *cfg, lmb_backend **out,
                           lmb_error *err);
/* Fails with a clear message when lmbatch was built without CUDA or no GPU is present. */
int lmb_backend_cuda_create(const lmb_model *model, const lmb_engine_config *cfg, lmb_backend **out,
                            lmb_error *err);

#endif
