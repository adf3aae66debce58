/* pointwise.c — the row-wise and element-wise CPU kernels: embedding gather, RMSNorm, RoPE, SiLU-gate.
 * Math follows HF transformers in fp32 (RMSNorm: x * rsqrt(mean(x^2) + eps) * w; RoPE: rotate-half). */
#include <math.h>
#include <string.h>

#include "../kernels.h"

void lmb_cpu_embed(float *out, const float *table, const int32_t *tokens, int T, int H) {
    for (int t = 0; t < T; t++)
        memcpy(out + (size_t)t * (size_t)H, table + (size_t)tokens[t] * (size_t)H, sizeof(float) * (size_t)H);
}

void lmb_cpu_rmsnorm(float *out, const float *x, const float *w, int T, int H, float eps) {
#pragma omp parallel for if (T > 16)
    for (int t = 0; t < T; t++) {
        const float *xr = x + (size_t)t * (size_t)H;
        float *o = out + (size_t)t * (size_t)H;
        double ss = 0;
        for (int i = 0; i < H; i++) ss += (double)xr[i] * xr[i];
        float r = (float)(1.0 / sqrt(ss / H + eps));
        for (int i = 0; i < H; i++) o[i] = (xr[i] * r) * w[i];
    }
}

static void rope_rows(float *x, int n_heads, int hd, const float *cs, const float *sn) {
    int half = hd / 2;
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * (size_t)hd;
        for (int i = 0; i < half; i++) {
            float a = v[i], b = v[i + half];
            v[i] = a * cs[i] - b * sn[i];
            v[i + half] = b * cs[i] + a * sn[i];
        }
    }
}

void lmb_cpu_rope(float *q, float *k, const int32_t *positions, int T, int n_heads, int n_kv, int hd,
                  const double *inv_freq) {
#pragma omp parallel for if (T > 16)
    for (int t = 0; t < T; t++) {
        float cs[512], sn[512]; /* head_dim <= 1024 */
        for (int i = 0; i < hd / 2; i++) {
            double ang = (double)positions[t] * inv_freq[i];
            cs[i] = (float)cos(ang);
            sn[i] = (float)sin(ang);
        }
        rope_rows(q + (size_t)t * (size_t)n_heads * (size_t)hd, n_heads, hd, cs, sn);
        rope_rows(k + (size_t)t * (size_t)n_kv * (size_t)hd, n_kv, hd, cs, sn);
    }
}

void lmb_cpu_silu_mul(float *out, const float *gate, const float *up, int T, int F) {
    size_t n = (size_t)T * (size_t)F;
#pragma omp parallel for if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}
