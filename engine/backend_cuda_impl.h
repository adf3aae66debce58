/* backend_cuda_impl.h — the CUDA backend's state, shared by its two files: backend_cuda.c (device set-up,
 * weight upload, KV allocation) and backend_cuda_forward.c (metadata packing, the forward, CUDA graphs).
 *
 * Device layout: weights in the model's 16-bit type (bf16 models stay bf16, everything else becomes fp16),
 * q/k/v fused into one [(nh + 2 nkv) hd, H] matrix and gate/up into one [2F, H]; residual stream fp32;
 * KV cache one allocation, [layer][K|V][block][kv head][block_size][head_dim].  Per-step metadata lives at
 * fixed offsets of one device buffer (filled by one copy from pinned memory), so graphs can replay it.
 */
#ifndef LMB_BACKEND_CUDA_IMPL_H
#define LMB_BACKEND_CUDA_IMPL_H

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "../kernels/kernels_cuda.h"
#include "backend.h"
#include "cuda_check.h"

#define LMB_CUDA_BUCKETS 10 /* decode graphs for batch 1, 2, 4, ..., 512 */

typedef struct cuda_layer {
    void *attn_norm, *ffn_norm;
    void *wqkv, *wo, *wgu, *wd;
    void *bqkv, *bo, *bgu, *bd; /* biases, NULL where the architecture has none */
} cuda_layer;

/* Byte offsets of the metadata regions (same in the pinned host copy and on the device). */
typedef struct cuda_meta_layout {
    size_t tokens, positions, slots, tok_seq, q_start, ctx_len, tables, rows, tiles, dec_rows, params, history, end;
} cuda_meta_layout;

typedef struct cuda_backend {
    lmb_backend base;
    lmb_model_config cfg;
    lmb_cuda_dtype dt;
    size_t esz; /* bytes per element */
    int device;
    cudaStream_t stream;
    cublasHandle_t blas;
    void *blas_ws;
    /* weights */
    void *embed, *final_norm, *head;
    cuda_layer *layers;
    float *inv_freq;
    size_t weight_bytes;
    double load_seconds;
    /* KV cache */
    void *kv;
    int n_blocks, block_size, max_blocks; /* max_blocks: per sequence */
    size_t kv_layer_bytes;                /* one layer's K (or V) part */
    /* activations, for up to cap_t tokens and cap_r logit rows */
    int cap_t, cap_r, cap_hist, qkv_dim;
    float *resid;
    void *xn, *qkv, *attn, *gu, *act, *y, *xh;
    float *logits;
    int32_t *sampled;
    void *attn_ws;
    int split_len;
    /* metadata */
    cuda_meta_layout ml;
    unsigned char *meta_h, *meta_d;
    int32_t *sampled_h;
    /* decode graphs */
    cudaGraphExec_t graphs[LMB_CUDA_BUCKETS];
    size_t peak_bytes;
    struct lmb_cuda_awq *awq; /* AWQ: W4A16 linears and their workspace (backend_awq_cuda.c); NULL otherwise */
} cuda_backend;

/* backend_cuda_forward.c */
int lmb_cuda_forward(lmb_backend *b, const lmb_batch *batch, float *logits, int32_t *tokens, lmb_error *err);
void lmb_cuda_graphs_free(cuda_backend *c);
void lmb_cuda_meta_layout(cuda_backend *c);

#endif
