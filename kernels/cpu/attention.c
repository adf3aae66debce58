/* attention.c — paged KV write and causal GQA attention on the CPU, fp32.
 *
 * Each (token, head) pair is independent: scores over the sequence's cached positions 0..pos, a max-
 * subtracted softmax, then the weighted sum of V — the same operations whatever else is in the batch.
 * A quantized pool (int8/int4, kernels/kv_quant.h) is quantized row by row as it is written and each row is
 * dequantized to fp32 before it is used: the reference for the CUDA kernels, which dequantize in registers.
 */
#include <math.h>
#include <stdbool.h>
#include <omp.h>
#include <string.h>

#include "../kernels.h"

#define MAX_HD 1024 /* the CPU backend's head_dim limit */

/* Quantizes one (token, head) row into its slot of a quantized tile. */
static void qwrite(const lmb_kv_pool *p, int32_t blk, int layer, int kv, int h, int off, const float *x) {
    unsigned char *tile = lmb_kv_qtile(p, blk, layer, kv, h);
    const float *fixed = p->fixed ? p->fixed + (((size_t)layer * 2 + (size_t)kv) * (size_t)p->n_kv + (size_t)h) * 2 : NULL;
    uint16_t param[2];
    lmb_kv_quantize_row(x, p->hd, p->bits, fixed, tile + (size_t)off * lmb_kv_row_bytes(p->hd, p->bits), param);
    memcpy(tile + lmb_kv_param_offset(p->hd, p->bits, p->block_size) + (size_t)off * 4, param, 4);
}

void lmb_cpu_kv_write(const lmb_kv_pool *p, int layer, const float *k, const float *v, int n_seqs,
                      const int32_t *q_start, const int32_t *positions, const int32_t *block_tables,
                      int max_blocks) {
    size_t row = (size_t)p->n_kv * (size_t)p->hd;
    bool quant = lmb_kv_is_quantized(p->bits);
    for (int s = 0; s < n_seqs; s++)
        for (int t = q_start[s]; t < q_start[s + 1]; t++) {
            int pos = positions[t];
            int32_t blk = block_tables[(size_t)s * (size_t)max_blocks + (size_t)(pos / p->block_size)];
            int off = pos % p->block_size;
            for (int h = 0; h < p->n_kv; h++) {
                const float *kr = k + (size_t)t * row + (size_t)h * (size_t)p->hd;
                const float *vr = v + (size_t)t * row + (size_t)h * (size_t)p->hd;
                if (quant) {
                    qwrite(p, blk, layer, 0, h, off, kr);
                    qwrite(p, blk, layer, 1, h, off, vr);
                    continue;
                }
                memcpy(lmb_kv_tile(p, blk, layer, 0, h) + (size_t)off * (size_t)p->hd, kr, sizeof(float) * (size_t)p->hd);
                memcpy(lmb_kv_tile(p, blk, layer, 1, h) + (size_t)off * (size_t)p->hd, vr, sizeof(float) * (size_t)p->hd);
            }
        }
}

/* Row `off` of a tile as fp32: a pointer into an fp32 pool, or the row dequantized into buf. */
static const float *kv_row(const lmb_kv_pool *p, int32_t blk, int layer, int kv, int h, int off, float *buf) {
    if (!lmb_kv_is_quantized(p->bits)) return lmb_kv_tile(p, blk, layer, kv, h) + (size_t)off * (size_t)p->hd;
    const unsigned char *tile = lmb_kv_qtile(p, blk, layer, kv, h);
    uint16_t param[2];
    memcpy(param, tile + lmb_kv_param_offset(p->hd, p->bits, p->block_size) + (size_t)off * 4, 4);
    lmb_kv_dequantize_row(tile + (size_t)off * lmb_kv_row_bytes(p->hd, p->bits), param, p->hd, p->bits, buf);
    return buf;
}

size_t lmb_cpu_attention_scratch(int max_ctx) { return (size_t)omp_get_max_threads() * (size_t)max_ctx; }

void lmb_cpu_attention(float *out, const float *q, const lmb_kv_pool *p, int layer, int n_heads, int n_seqs,
                       const int32_t *q_start, const int32_t *positions, const int32_t *block_tables,
                       int max_blocks, float scale, float *scratch, int max_ctx) {
    int hd = p->hd, bs = p->block_size, group = n_heads / p->n_kv;
    int T = q_start[n_seqs];
#pragma omp parallel
    {
        float *sc = scratch + (size_t)omp_get_thread_num() * (size_t)max_ctx;
        float buf[MAX_HD];
        int s = 0;
#pragma omp for schedule(dynamic, 1) collapse(2)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < n_heads; h++) {
                while (t >= q_start[s + 1]) s++;
                while (t < q_start[s]) s--;
                const int32_t *bt = block_tables + (size_t)s * (size_t)max_blocks;
                const float *qv = q + ((size_t)t * (size_t)n_heads + (size_t)h) * (size_t)hd;
                float *o = out + ((size_t)t * (size_t)n_heads + (size_t)h) * (size_t)hd;
                int kvh = h / group, n = positions[t] + 1;
                float mx = -INFINITY;
                for (int j = 0; j < n; j++) {
                    const float *kr = kv_row(p, bt[j / bs], layer, 0, kvh, j % bs, buf);
                    float d = 0;
                    for (int i = 0; i < hd; i++) d += qv[i] * kr[i];
                    sc[j] = d * scale;
                    if (sc[j] > mx) mx = sc[j];
                }
                float sum = 0;
                for (int j = 0; j < n; j++) {
                    sc[j] = expf(sc[j] - mx);
                    sum += sc[j];
                }
                float inv = 1.0f / sum;
                memset(o, 0, sizeof(float) * (size_t)hd);
                for (int j = 0; j < n; j++) {
                    const float *vr = kv_row(p, bt[j / bs], layer, 1, kvh, j % bs, buf);
                    float w = sc[j] * inv;
                    for (int i = 0; i < hd; i++) o[i] += w * vr[i];
                }
            }
    }
}
