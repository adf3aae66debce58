/* kernels.h — the CPU reference kernels (kernels/cpu/, fp32, OpenMP).  Each CUDA kernel in kernels/cuda/
 * is tested against its counterpart here on random data.  Shapes are row-major; T = tokens in the batch.
 *
 * Batch invariance: every output element is computed by the same sequence of operations whatever the
 * batch size or the row's place in the batch, so a sequence's results do not depend on its neighbours.
 */
#ifndef LMB_KERNELS_H
#define LMB_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "kv_quant.h"

/* out[t,:] = table[tokens[t],:] */
void lmb_cpu_embed(float *out, const float *table, const int32_t *tokens, int T, int H);

/* out[t,:] = x[t,:] / sqrt(mean(x[t,:]^2) + eps) * w  (out may alias x) */
void lmb_cpu_rmsnorm(float *out, const float *x, const float *w, int T, int H, float eps);

/* y[M,N] = x[M,K] W[N,K]^T + bias[N] (bias may be NULL) */
void lmb_cpu_matmul(float *y, const float *x, const float *W, const float *bias, int M, int N, int K);

/* In-place rotate-half RoPE on q [T, n_heads*hd] and k [T, n_kv*hd] at positions[t]; inv_freq[hd/2]. */
void lmb_cpu_rope(float *q, float *k, const int32_t *positions, int T, int n_heads, int n_kv, int hd,
                  const double *inv_freq);

/* out[t,i] = silu(gate[t,i]) * up[t,i] */
void lmb_cpu_silu_mul(float *out, const float *gate, const float *up, int T, int F);

/* The paged KV pool of one backend: block b, layer l, K (kv=0) or V (kv=1), KV head h is a tile of block_size
 * token rows.  fp32 (bits 0 or 32): a [block_size][head_dim] float tile at pool + b*block_stride +
 * ((l*2 + kv)*n_kv + h)*block_size*hd.  Quantized (bits 8 or 4, format in kv_quant.h): a tile of tile_bytes at
 * qpool + b*n_layers*2*n_kv*tile_bytes + ((l*2 + kv)*n_kv + h)*tile_bytes. */
typedef struct lmb_kv_pool {
    float *pool;
    int block_size, n_layers, n_kv, hd;
    size_t block_stride; /* floats per block = n_layers*2*n_kv*block_size*hd */
    int bits;            /* 0 or 32: fp32; 8 or 4: quantized, in qpool */
    unsigned char *qpool;
    size_t tile_bytes;   /* lmb_kv_tile_bytes(hd, bits, block_size) */
    const float *fixed;  /* offline scales [n_layers][2][n_kv][2] (scale, zero) used when writing, or NULL */
} lmb_kv_pool;

static inline float *lmb_kv_tile(const lmb_kv_pool *p, int32_t block, int layer, int kv, int head) {
    return p->pool + (size_t)block * p->block_stride +
           ((size_t)(layer * 2 + kv) * (size_t)p->n_kv + (size_t)head) * (size_t)p->block_size * (size_t)p->hd;
}

static inline unsigned char *lmb_kv_qtile(const lmb_kv_pool *p, int32_t block, int layer, int kv, int head) {
    size_t tiles = (size_t)p->n_layers * 2 * (size_t)p->n_kv;
    return p->qpool + ((size_t)block * tiles + (size_t)(layer * 2 + kv) * (size_t)p->n_kv + (size_t)head) * p->tile_bytes;
}

/* Writes k/v [T, n_kv*hd] of layer into the cache at each token's position (block_tables[s*max_blocks+pos/bs]);
 * a quantized pool quantizes each (token, head) row as it is written (kv_quant.h). */
void lmb_cpu_kv_write(const lmb_kv_pool *p, int layer, const float *k, const float *v, int n_seqs,
                      const int32_t *q_start, const int32_t *positions, const int32_t *block_tables,
                      int max_blocks);

/* Causal GQA attention of q [T, n_heads*hd] over each sequence's cached K/V (positions 0..pos[t]);
 * out [T, n_heads*hd].  Quantized K/V rows are dequantized (x = u * scale + zero) before use, fp32 math.
 * scratch: n_threads * max_ctx floats (see lmb_cpu_attention_scratch). */
size_t lmb_cpu_attention_scratch(int max_ctx);
void lmb_cpu_attention(float *out, const float *q, const lmb_kv_pool *p, int layer, int n_heads, int n_seqs,
                       const int32_t *q_start, const int32_t *positions, const int32_t *block_tables,
                       int max_blocks, float scale, float *scratch, int max_ctx);

/* AWQ W4A16, AutoAWQ's GEMM layout (what quantize/ writes and AutoAWQ checkpoints hold) for a linear of
 * K inputs and N outputs, groups of `group` input channels:
 *   qweight int32 [K, N/8]: word (k, c) holds the 4-bit codes of outputs 8c..8c+7 at input k, nibble i
 *                           (bits 4i..4i+3) holding output 8c + LMB_AWQ_ORDER[i];
 *   qzeros  int32 [K/group, N/8]: the zero points, packed the same way;
 *   scales  fp16  [K/group, N].
 * The weight is w[n, k] = (q[k, n] - z[k/group, n]) * scales[k/group, n]. */
#define LMB_AWQ_ORDER {0, 2, 4, 6, 1, 3, 5, 7}         /* nibble i -> output column within the word */
#define LMB_AWQ_REVERSE_ORDER {0, 4, 1, 5, 2, 6, 3, 7} /* output column within the word -> nibble */

/* Dequantizes to the dense W [N, K] fp32 ([out, in], as HF stores linears).  The packed buffers may be
 * unaligned (they can point into a mapped safetensors file).  N % 8 == 0 and K % group == 0. */
void lmb_cpu_awq_dequant(float *W, const void *qweight, const void *qzeros, const void *scales, int K, int N,
                         int group);

/* "W4 rows": the device layout of the CUDA W4A16 kernels (kernels/cuda/w4a16.cu), made from AutoAWQ's at load.
 * Each output row n holds its K inputs contiguously, so a warp can own whole rows and walk all of K alone
 * (no cross-warp reduction); with G = group, NG = K/G groups and ZW = (NG + 7) / 8 zero words per row:
 *   qweight uint32 [N, K/8]: word (n, j) holds the codes of inputs 8j..8j+7 of output n, nibble i (bits
 *                            4i..4i+3) holding input 8j + LMB_AWQ_ORDER[i] — AWQ's order, kept because then
 *                            (w >> 4p) & 0x000F000F puts the codes of inputs 8j+2p and 8j+2p+1 in the low and
 *                            high 16-bit halves, which OR 0x64006400 turns into the fp16 pair 1024 + q, exactly;
 *   zeros   uint32 [N, ZW]:  the zero of group g at bits 4*(g%8) of word g/8 (plain nibble order; the unused
 *                            nibbles of the last word are 0);
 *   scales  fp16   [N, NG]:  the transpose of AWQ's.
 * The weight is w[n, k] = (q - z[n, k/G]) * scales[n, k/G], as above; memory is AutoAWQ's up to the zero
 * words' padding.  K % 8 == 0 and N % 8 == 0. */
/* Repacks one AutoAWQ linear (buffers as for lmb_cpu_awq_dequant, possibly unaligned) into W4 rows:
 * qw_rows [N * K/8], zeros_rows [N * ZW], scales_rows [N * NG].  Returns 0, or -1 (nothing written) unless
 * N % 8 == 0, K % 8 == 0, group > 0 and K % group == 0.  A fused linear (parts concatenated along N) is
 * repacked part by part into consecutive row ranges. */
int lmb_w4_rows_from_awq(uint32_t *qw_rows, uint32_t *zeros_rows, uint16_t *scales_rows, const void *qweight,
                         const void *qzeros, const void *scales, int K, int N, int group);
/* Dequantizes W4 rows to the dense W [N, K] fp32: lmb_cpu_awq_dequant of what lmb_w4_rows_from_awq was given. */
void lmb_cpu_w4_rows_dequant(float *W, const uint32_t *qweight, const uint32_t *zeros, const uint16_t *scales, int K,
                             int N, int group);

/* The CPU reference of the W4A16 GEMM: y[M, N] = x[M, K] W^T with W dequantized as above, fp32. */
void lmb_cpu_w4a16_matmul(float *y, const float *x, const void *qweight, const void *qzeros, const void *scales,
                          int M, int N, int K, int group);

#endif
