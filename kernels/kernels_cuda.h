/* kernels_cuda.h — C entry points of the CUDA kernels (kernels/cuda/), one launcher per kernel.
 *
 * Activations and weights are fp16 or bf16 (`lmb_cuda_dtype`), the residual stream is fp32, logits fp32.
 * Launchers only enqueue work on the given stream and return cudaGetLastError() as an int (0 = ok), so
 * they can be captured in CUDA graphs.  Each kernel has a GPU test against its CPU reference in tests/gpu/.
 *
 * KV cache layout (per layer, K and V separately): [n_blocks][n_kv_heads] tiles of block_size tokens; a token's
 * slot is block_id * block_size + offset (vLLM's slot mapping).  A tile is [block_size][head_dim] in dt for a
 * 16-bit cache, or int8/int4 codes + per-token {fp16 scale, zero} (kv_bits 8/4, format in kv_quant.h).
 */
#ifndef LMB_KERNELS_CUDA_H
#define LMB_KERNELS_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "kv_quant.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { LMB_CUDA_F16 = 0, LMB_CUDA_BF16 = 1 } lmb_cuda_dtype;
typedef struct CUstream_st *lmb_stream; /* = cudaStream_t */

/* resid[t,:] = float(table[tokens[t],:]) */
int lmb_cuda_embed(float *resid, const void *table, const int32_t *tokens, int T, int H, lmb_cuda_dtype dt,
                   lmb_stream s);

/* For each of T rows r (row index rows[r], or r when rows == NULL):
 *   if delta: resid[row] += float(delta[row])        (fused residual add)
 *   out[r] = rmsnorm(resid[row]) * w                  (out in dt) */
int lmb_cuda_add_rmsnorm(float *resid, const void *delta, const void *w, void *out, const int32_t *rows, int T,
                         int H, float eps, lmb_cuda_dtype dt, lmb_stream s);

/* qkv [T, (nh + 2*nkv) * hd] in dt: rotates q and k in place (rotate-half RoPE at positions[t] with
 * inv_freq[hd/2]) and copies k, v into the layer's cache at slots[t] (slots[t] < 0: not written). */
int lmb_cuda_rope_kv_write(void *qkv, void *k_cache, void *v_cache, const int32_t *positions,
                           const int64_t *slots, const float *inv_freq, int T, int nh, int nkv, int hd,
                           int block_size, lmb_cuda_dtype dt, lmb_stream s);

/* KV cache of kv_bits 16, 8 or 4 (the `_kvq` entry points; 16 is the plain call above).  For 8/4 bits q and k
 * are rotated in place, then each written (token, K|V, head) row is quantized into the cache: per-token scale
 * and zero from the row's range, or the layer's offline ones when fixed != NULL ([2 (K, V)][nkv][2 (scale,
 * zero)], fp32 values already rounded to fp16). */
int lmb_cuda_rope_kv_write_kvq(void *qkv, void *k_cache, void *v_cache, const int32_t *positions,
                               const int64_t *slots, const float *inv_freq, const float *fixed, int T, int nh,
                               int nkv, int hd, int block_size, int kv_bits, lmb_cuda_dtype dt, lmb_stream s);
/* Only the quantizing write, from already rotated k and v in qkv (kv_bits 8 or 4; head_dim even, <= 256). */
int lmb_cuda_kv_quant_write(const void *qkv, void *k_cache, void *v_cache, const int64_t *slots, const float *fixed,
                            int T, int nh, int nkv, int hd, int block_size, int kv_bits, lmb_cuda_dtype dt,
                            lmb_stream s);

/* out[t, i] = silu(gu[t, i]) * gu[t, F + i]   (gu = fused gate|up GEMM output [T, 2F]) */
int lmb_cuda_silu_mul(void *out, const void *gu, int T, int F, lmb_cuda_dtype dt, lmb_stream s);

/* y[t, :] += b  (q/k/v biases) */
int lmb_cuda_add_bias(void *y, const void *b, int T, int N, lmb_cuda_dtype dt, lmb_stream s);

/* y[M, N] = x[M, K] W[N, K]^T for 1 <= M <= 8 and K % 8 == 0 (decode at small batch: the weights are
 * streamed once, near the memory bandwidth); y in dt, or fp32 when y_f32.  Rows are contiguous (ld = K, N). */
int lmb_cuda_gemv_supported(int M, int N, int K);
int lmb_cuda_gemv(void *y, int y_f32, const void *x, const void *w, int M, int N, int K, lmb_cuda_dtype dt,
                  lmb_stream s);

/* w[i] = offset + uniform(-a, a), deterministic in (seed, i): random-weight models for benchmarks. */
int lmb_cuda_fill_uniform(void *w, size_t n, float a, float offset, unsigned long long seed, lmb_cuda_dtype dt,
                          lmb_stream s);

/* Per-sequence description of a varlen batch, on the device. */
typedef struct lmb_cuda_seqs {
    const int32_t *q_start;      /* [n_seqs + 1] */
    const int32_t *ctx_len;      /* [n_seqs] */
    const int32_t *block_tables; /* [n_seqs * max_blocks] */
    const int32_t *tok_seq;      /* [T] sequence of each token */
    const int32_t *positions;    /* [T] */
    int max_blocks;
} lmb_cuda_seqs;

/* Attention over the paged cache, any head_dim <= 256 (CUDA cores): for the n_rows token indices in rows
 * (all T tokens when rows == NULL), out[t, h, :] = softmax(q[t,h] . K[0..pos]) V.  q is read from the
 * qkv buffer (row stride (nh + 2*nkv)*hd).  Long contexts are split in chunks of split_len keys and merged
 * (flash-decoding); max_ctx bounds the context of every row (it sizes the grid; rows with shorter contexts
 * exit early, so the launch can be captured in a graph).  partial: workspace of
 * lmb_cuda_attention_workspace(n_rows, nh, hd, max_ctx, split_len) bytes. */
size_t lmb_cuda_attention_workspace(int n_rows, int nh, int hd, int max_ctx, int split_len);
int lmb_cuda_attention_decode(void *out, const void *qkv, const void *k_cache, const void *v_cache,
                              const lmb_cuda_seqs *seqs, const int32_t *rows, int n_rows, int nh, int nkv, int hd,
                              int block_size, float scale, int max_ctx, int split_len, void *partial,
                              lmb_cuda_dtype dt, lmb_stream s);
/* The same over a cache of kv_bits 16, 8 or 4: quantized rows are dequantized in registers (u * scale + zero).
 * tickets (optional): lmb_cuda_attention_tickets(n_rows, nh) bytes, zeroed once before the first launch (each
 * launch leaves them zero).  With them the last split CTA of a row merges its heads, instead of a separate merge
 * kernel; the output bits are the same. */
size_t lmb_cuda_attention_tickets(int n_rows, int nh);
int lmb_cuda_attention_decode_kvq(void *out, const void *qkv, const void *k_cache, const void *v_cache,
                                  const lmb_cuda_seqs *seqs, const int32_t *rows, int n_rows, int nh, int nkv, int hd,
                                  int block_size, float scale, int max_ctx, int split_len, void *partial,
                                  unsigned *tickets, int kv_bits, lmb_cuda_dtype dt, lmb_stream s);

/* Flash-attention prefill on tensor cores for head_dim 64 or 128: n_tiles work items (seq, first query
 * token of a 64-row tile) in tiles[2*i], tiles[2*i+1]; causal over the paged cache. */
int lmb_cuda_attention_prefill(void *out, const void *qkv, const void *k_cache, const void *v_cache,
                               const lmb_cuda_seqs *seqs, const int32_t *tiles, int n_tiles, int nh, int nkv,
                               int hd, int block_size, float scale, lmb_cuda_dtype dt, lmb_stream s);
/* The same over a cache of kv_bits 16, 8 or 4 (quantized K/V tiles are dequantized to dt as they are gathered). */
int lmb_cuda_attention_prefill_kvq(void *out, const void *qkv, const void *k_cache, const void *v_cache,
                                   const lmb_cuda_seqs *seqs, const int32_t *tiles, int n_tiles, int nh, int nkv,
                                   int hd, int block_size, float scale, int kv_bits, lmb_cuda_dtype dt, lmb_stream s);
int lmb_cuda_attention_prefill_supported(int hd);

/* Sampling, one CTA per row.  Rows with temperature <= 0 take the argmax. */
typedef struct lmb_cuda_sample_params {
    float temperature, top_p, min_p, repetition_penalty;
    int top_k;
    int n_history;          /* tokens in history (penalty != 1) */
    long long history_off;  /* offset into the history buffer */
    unsigned long long seed, counter;
} lmb_cuda_sample_params;

/* logits [n, vocab] fp32 (modified in place); params [n]; history: all rows' token histories back to back. */
int lmb_cuda_sample(int32_t *out, float *logits, const lmb_cuda_sample_params *params, const int32_t *history,
                    int n, int vocab, lmb_stream s);

/* ---- AWQ W4A16 (kernels/cuda/w4a16.cu) ----------------------------------------------------------------
 * y [M, N] fp16 = x [M, K] fp16 W^T, W in the "W4 rows" layout (kernels.h), made from AutoAWQ's at load by
 * lmb_w4_rows_from_awq:
 *   qweight uint32 [N, K/8]              word (n, j): inputs 8j..8j+7 of output n, nibble i = input
 *                                        8j + LMB_AWQ_ORDER[i]
 *   zeros   uint32 [N, (K/group + 7)/8]  the zero of group g at bits 4*(g%8) of word g/8
 *   scales  fp16   [N, K/group]
 * N % 8 == 0, K % group == 0, group % 8 == 0; x (and the dequant output) 16-byte aligned.  fp32 accumulation
 * (the gemv sums each 32 inputs' products in fp16 first). */
#define LMB_W4A16_GEMV_MAX_M 8 /* rows the gemv path takes */

/* gemv (M <= 8, decode): each warp computes 4 whole output rows over all of K, reading each packed weight once;
 * no workspace, one launch, deterministic. */
int lmb_cuda_w4a16_gemv(void *y, const void *x, const uint32_t *qweight, const uint32_t *zeros, const void *scales,
                        int M, int N, int K, int group, lmb_stream s);

/* Tensor-core GEMM (WMMA, any M): needs K % 32 == 0, group % 32 == 0, x and qweight 16-byte aligned. */
int lmb_cuda_w4a16_mma(void *y, const void *x, const uint32_t *qweight, const uint32_t *zeros, const void *scales,
                       int M, int N, int K, int group, lmb_stream s);

/* Hopper warpgroup-MMA GEMM (w4a16_wgmma.cu; built when CUDA_ARCH is sm_90a, run on compute capability 9.0
 * only: lmb_cuda_w4a16_wgmma_available).  Needs K % 64 == 0, group = 64 << j dividing K, x, y and qweight
 * 16-byte aligned.  Output tiles x k-tiles are shared out evenly over CTAs (stream-K); where a tile's K goes to
 * several CTAs, ws (fp32, 16-byte aligned) holds their partials (one a CTA: 128 * 256 floats at most) and
 * tickets (zeroed once; a flag per output tile, then a counter of started CTAs; left zero) tell the CTA with the
 * tile's k-end when they are written; it adds them in k order: deterministic.  splits: 0 = the launcher's
 * choice, which never needs more than ws_bytes and n_tickets (ws = NULL: one CTA a tile); splits > 0 gives each
 * tile's K to that many CTAs (refused if ws or tickets are short). */
int lmb_cuda_w4a16_wgmma_available(void);
/* Forces the wgmma kernel's tile for later launches (tests, timing): nt tokens (64, 128, 192, 256) by 128 * mb
 * rows (mb 1; or 2 with nt 64, 128); (0, 0) restores the choice by M. */
int lmb_cuda_w4a16_wgmma_shape(int nt, int mb);
/* Forces the CTA count of later launches (tests: ranges that straddle tiles); 0 restores the choice. */
int lmb_cuda_w4a16_wgmma_ctas(int ctas);
int lmb_cuda_w4a16_wgmma(void *y, const void *x, const uint32_t *qweight, const uint32_t *zeros, const void *scales,
                         int M, int N, int K, int group, int splits, float *ws, size_t ws_bytes, unsigned *tickets,
                         int n_tickets, lmb_stream s);

/* The whole decode step of one sequence (batch 1) for an all-AWQ Llama-family model, as one persistent kernel
 * (w4a16_step.cu; sm_90a builds, compute capability 9.0): for every layer the fused add + RMSnorm, the q|k|v
 * gemv, RoPE + the KV write + attention over the 16-bit paged cache (splits of 64 keys, merged by the last), the o
 * gemv + residual add, RMSnorm, the gate|up gemv + SiLU, the down gemv + residual add.  One CTA an SM; a producer
 * warp streams the CTA's share of every linear's W4 rows into a ring of shared-memory stages (bulk copies,
 * mbarriers) while the other warps compute, so the weight stream does not stop at the grid barriers between the
 * phases.  Each linear's rows and the norms sum in the gemv's and add_rmsnorm's order (the same bits). */
typedef struct lmb_w4_step_linear {
    const uint32_t *qweight, *zeros; /* W4 rows (above); 16-byte aligned */
    const void *scales;
} lmb_w4_step_linear;
typedef struct lmb_w4_step_layer {
    lmb_w4_step_linear qkv, o, gu, down; /* q|k|v [(nh + 2 nkv) hd, H], o [H, nh hd], gate|up [2F, H], down [H, F] */
    const void *attn_norm, *ffn_norm;    /* fp16 [H] */
    void *k_cache, *v_cache;             /* fp16 tiles (the layer's K and V parts) */
} lmb_w4_step_layer;
typedef struct lmb_w4_step_args {
    const lmb_w4_step_layer *layers; /* on the device, [n_layers] */
    int n_layers, H, nh, nkv, hd, F, group;
    float eps, scale;
    float *resid;           /* fp32 [H]: the embedding in, the last layer's output (residual included) out */
    void *qkv, *attn, *act; /* fp16 scratch: [(nh + 2 nkv) hd], [nh hd], [F] */
    const int32_t *positions, *tok_seq, *block_tables; /* token 0's position and sequence; [seq][max_blocks] */
    const int64_t *slots;   /* token 0's cache slot */
    int max_blocks, block_size;
    const float *inv_freq;  /* [hd / 2] */
    float *partial;         /* [nh][max_splits][hd + 2] */
    unsigned *tickets;      /* [nh], zero (left zero) */
    unsigned *sync;         /* [2], zero before the first launch: the grid barrier */
    int max_splits;         /* ceil(largest context / 64) */
    unsigned long long *trace; /* NULL, or [1 + 5 n_layers]: CTA 0's %globaltimer at the start and after each phase */
} lmb_w4_step_args;
/* 0 if lmb_cuda_w4_step can run a (shapes, alignment, the device's shared memory), else a reason (static text). */
const char *lmb_cuda_w4_step_unsupported(const lmb_w4_step_args *a);
int lmb_cuda_w4_step(const lmb_w4_step_args *a, lmb_stream s);
/* Forces the CTA count of later launches (the emulator, tests: fewer CTAs than SMs); 0 restores one an SM. */
void lmb_cuda_w4_step_ctas(int ctas);

/* Dequantizes output rows [n_begin, n_begin + n_count) to w, fp16 [n_count, K] row-major, each value
 * (q - z) * s rounded once (the CPU dequantizer's value rounded to fp16).  For cuBLAS that is the column-major
 * [K, n_count] matrix with lda = K: y[:, n_begin..] = x W^T is cublasGemmEx(CUBLAS_OP_T, CUBLAS_OP_N, n_count,
 * M, K, w lda K, x ldb K, y + n_begin ldc N). */
int lmb_cuda_w4a16_dequant(void *w, const uint32_t *qweight, const uint32_t *zeros, const void *scales, int N, int K,
                           int group, int n_begin, int n_count, lmb_stream s);

/* p[i] = random 32-bit words, deterministic in (seed, i): random AWQ weights for benchmarks. */
int lmb_cuda_fill_bits(void *p, size_t n_words, unsigned long long seed, lmb_stream s);

/* ---- fp32 kernels of the quantize stage's GPU device (calib.cu; CPU references in quantize/qdev_cpu.c) ---- */
int lmb_cuda_f32_rmsnorm(float *y, const float *x, const float *g, int T, int H, float eps, lmb_stream s);
/* rotate-half RoPE of q [T, nh*hd], k [T, nkv*hd] in place; token t at position t % seqlen, whose cos and sin
 * are cs[pos][i], sn[pos][i] (i < hd/2) */
int lmb_cuda_f32_rope(float *q, float *k, const float *cs, const float *sn, int T, int seqlen, int nh, int nkv,
                      int hd, lmb_stream s);
/* n_mats score matrices [T, T] back to back: row i becomes softmax over columns j <= i, zeros after */
int lmb_cuda_f32_causal_softmax(float *S, int n_mats, int T, lmb_stream s);
int lmb_cuda_f32_silu_mul(float *out, const float *gate, const float *up, size_t n, lmb_stream s);
int lmb_cuda_f32_add(float *x, const float *h, size_t n, lmb_stream s);
int lmb_cuda_f32_add_bias(float *y, const float *b, int M, int N, lmb_stream s); /* y[M, N] += b[N] */
int lmb_cuda_f32_scale_cols(float *x, int rows, int cols, const float *sc, int divide, lmb_stream s);
int lmb_cuda_f32_unscale_rows(float *w, float *b, int rows, int cols, const float *sc, lmb_stream s);
/* int4 fake quantization per group of `group` inputs of a row (quantize/int4.c, bit for bit) */
int lmb_cuda_f32_fake_quant(float *w, int rows, int cols, int group, lmb_stream s);
int lmb_cuda_f32_clamp_rows(float *dst, size_t ld_dst, const float *src, size_t ld_src, int rows, int cols,
                            const float *m, lmb_stream s);
int lmb_cuda_f32_row_absmax(const float *w, size_t ld, int rows, int cols, float *out, lmb_stream s);
/* out[c] = sum over rows of |a| (b NULL) or (a - b)^2, in double; scratch of lmb_cuda_f32_col_sums_scratch bytes */
size_t lmb_cuda_f32_col_sums_scratch(int rows, int cols);
int lmb_cuda_f32_col_sums(const float *a, const float *b, int rows, int cols, double *scratch, double *out,
                          lmb_stream s);
/* partial[0 .. lmb_cuda_f32_sq_err_blocks()) = block sums of (a - b)^2 (n > 0); the caller adds them */
int lmb_cuda_f32_sq_err_blocks(void);
int lmb_cuda_f32_sq_err(const float *a, const float *b, size_t n, double *partial, lmb_stream s);

#ifdef __cplusplus
}
#endif

#endif
