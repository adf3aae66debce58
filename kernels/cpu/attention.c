/* attention.c — paged KV write and causal GQA attention on the CPU, fp32.
 *
 * Each (token, head) pair is independent: scores over the sequence's cached positions 0..pos, a max-
 * subtracted softmax, then the weighted sum of V — the same operations whatever else is in the batch.
 */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "../kernels.h"

void lmb_cpu_kv_write(const lmb_kv_pool *p, int layer, const float *k, const float *v, int n_seqs,
                      const int32_t *q_start, const int32_t *positions, const int32_t *block_tables,
                      int max_blocks) {
    size_t row = (size_t)p->n_kv * (size_t)p->hd;
    for (int s = 0; s < n_seqs; s++)
        for (int t = q_start[s]; t < q_start[s + 1]; t++) {
            int pos = positions[t];
            int32_t blk = block_tables[(size_t)s * (size_t)max_blocks + (size_t)(pos / p->block_size)];
            int off = pos % p->block_size;
            for (int h = 0; h < p->n_kv; h++) {
                memcpy(lmb_kv_tile(p, blk, layer, 0, h) + (size_t)off * (size_t)p->hd,
                       k + (size_t)t * row + (size_t)h * (size_t)p->hd, sizeof(float) * (size_t)p->hd);
                memcpy(lmb_kv_tile(p, blk, layer, 1, h) + (size_t)off * (size_t)p->hd,
                       v + (size_t)t * row + (size_t)h * (size_t)p->hd, sizeof(float) * (size_t)p->hd);
            }
        }
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
                    const float *kr = lmb_kv_tile(p, bt[j / bs], layer, 0, kvh) + (size_t)(j % bs) * (size_t)hd;
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
                    const float *vr = lmb_kv_tile(p, bt[j / bs], layer, 1, kvh) + (size_t)(j % bs) * (size_t)hd;
                    float w = sc[j] * inv;
                    for (int i = 0; i < hd; i++) o[i] += w * vr[i];
                }
            }
    }
}
