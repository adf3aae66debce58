/* backend_cuda_impl.h — the CUDA backend's state, shared by its two files: backend_cuda.c (device set-up,
 * weight upload, KV allocation) and backend_cuda_forward.c (metadata packing, the forward, CUDA graphs).
 *
 * Device layout: weights in the model's 16-bit type (bf16 models stay bf16, everything else becomes fp16),
 * q/k/v fused into one [(nh + 2 nkv) hd, H] matrix and gate/up into one [2F, H]; residual stream fp32;
 * KV cache one allocation, [layer][K|V][block][kv head] tiles of block_size tokens (16-bit rows, or int8/int4
 * codes + per-token scales with --kv int8|int4, kernels/kv_quant.h).  Per-step metadata lives at
 * fixed offsets of one device buffer (filled by one copy from pinned memory), so graphs can replay it.
 */
#ifndef LMB_BACKEND_CUDA_IMPL_H
#define LMB_BACKEND_CUDA_IMPL_H

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "../kernels/kernels_cuda.h"
#include "backend.h"
#include "cuda_check.h"

#define LMB_CUDA_BUCKETS 10 /* decode graphs for batch 1, 2, 4, ..., 512 */
#define LMB_CUDA_CTX_CLASSES 6 /* ... and for contexts up to 512, 1K, 2K, 4K, 8K keys or the full context */

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
    void *embed_host; /* the embedding table in pinned, mapped host memory (embed is its device alias), or NULL */
    cuda_layer *layers;
    float *inv_freq;
    size_t weight_bytes;      /* on the GPU */
    size_t host_weight_bytes; /* the embedding table when it lives in host memory */
    double load_seconds;
    /* KV cache */
    void *kv;
    int n_blocks, block_size, max_blocks; /* max_blocks: per sequence */
    size_t kv_layer_bytes;                /* one layer's K (or V) part */
    int kv_bits;                          /* KV quantization (issue 6): 16, or 8/4 = int8/int4 tiles (kv_quant.h) */
    float *kv_fixed;                      /* ... offline scales on the device [layer][2][nkv][2], or NULL */
    /* activations, for up to cap_t tokens and cap_r logit rows */
    int cap_t, cap_r, cap_hist, qkv_dim;
    float *resid;
    void *xn, *qkv, *attn, *gu, *act, *y, *xh;
    float *logits;
    int32_t *sampled;
    void *attn_ws;
    unsigned *attn_tickets; /* NULL: decode attention merges its splits with a separate kernel */
    int split_len;             /* decode attention: keys per split */
    int split_small, small_rows; /* ... and for calls of at most small_rows rows */
    bool batch_invariant;
    bool use_gemv; /* our GEMV for GEMMs of <= 8 rows (off with LMB_NO_GEMV=1) */
    /* metadata */
    cuda_meta_layout ml;
    unsigned char *meta_h, *meta_d;
    int32_t *sampled_h;
    /* decode graphs */
    cudaGraphExec_t graphs[LMB_CUDA_BUCKETS][LMB_CUDA_CTX_CLASSES]; /* the attention grid is sized by context */
    bool graph_warm[LMB_CUDA_BUCKETS]; /* one eager step of this size ran (GEMM algorithms chosen) */
    struct cuda_gemm *gemm;            /* cuBLASLt plans per shape (backend_cuda_gemm.c) */
    size_t blas_ws_bytes;
    size_t peak_bytes;
    struct cuda_prof *prof; /* LMB_PROFILE=1: per-operation timing (backend_cuda_prof.c) */
    struct lmb_cuda_awq *awq; /* AWQ: W4A16 linears and their scratch (backend_awq_cuda.c); NULL otherwise */
    struct cuda_step *step;   /* the batch-1 decode step kernel (backend_cuda_step.c); NULL where it does not run */
} cuda_backend;

/* backend_cuda_prof.c: operation categories, marks before each, a step's close, the table at exit */
enum {
    LMB_PROF_EMBED, LMB_PROF_NORM, LMB_PROF_QKV, LMB_PROF_BIAS, LMB_PROF_ROPE, LMB_PROF_ATTN_PREFILL,
    LMB_PROF_ATTN_DECODE, LMB_PROF_O, LMB_PROF_GU, LMB_PROF_ACT, LMB_PROF_DOWN, LMB_PROF_HEAD, LMB_PROF_SAMPLE,
    LMB_PROF_COPY, LMB_PROF_N
};
int lmb_cuda_prof_init(cuda_backend *c, lmb_error *err);
void lmb_cuda_prof_mark(cuda_backend *c, int cat);
void lmb_cuda_prof_step(cuda_backend *c, bool prefill, int tokens);
void lmb_cuda_prof_report(cuda_backend *c);

/* backend_cuda_gemm.c: y[M,N] = x[M,K] W[N,K]^T through GEMV, tuned cuBLASLt or cublasGemmEx */
int lmb_cuda_gemm_init(cuda_backend *c, lmb_error *err);
void lmb_cuda_gemm_free(cuda_backend *c);
int lmb_cuda_gemm(cuda_backend *c, const void *x, const void *w, void *y, int M, int N, int K, bool f32_out,
                  lmb_error *err);

/* backend_cuda.c: cudaMalloc (at least 16 bytes) with the size and CUDA's reason in the error */
int lmb_cuda_dev_alloc(void **p, size_t bytes, lmb_error *err);

/* backend_cuda_forward.c */
int lmb_cuda_forward(lmb_backend *b, const lmb_batch *batch, float *logits, int32_t *tokens, lmb_error *err);
void lmb_cuda_graphs_free(cuda_backend *c);
void lmb_cuda_meta_layout(cuda_backend *c);

#endif
