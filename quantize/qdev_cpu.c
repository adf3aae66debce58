/* qdev_cpu.c — the CPU quantize device: fp32 on the host with OpenMP, the CPU backend's kernels
 * (kernels/cpu) and the int4 quantizer (int4.c).  The reference the GPU device is tested against. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/kernels.h"
#include "int4.h"
#include "qdev.h"

typedef struct cpu_impl {
    float *attn_ws; /* per thread: S [T, T], Q, K, V^T [T, hd] */
    size_t attn_ws_per_thread, attn_ws_cap;
    int32_t *pos;
    size_t pos_cap;
} cpu_impl;

static float *cpu_alloc(lmb_qdev *d, size_t n) {
    float *p = malloc(sizeof(float) * (n ? n : 1));
    if (!p) lmb_qdev_fail(d, "out of memory for %zu floats (%.2f GiB)", n, n * 4.0 / (1 << 30));
    return p;
}

static void cpu_release(lmb_qdev *d, float *p) { free(p); }

static void cpu_put(lmb_qdev *d, float *dst, const float *src, size_t n) {
    if (dst != src) memcpy(dst, src, sizeof(float) * n);
}

static void cpu_copy2d(lmb_qdev *d, float *dst, size_t ld_dst, const float *src, size_t ld_src, int rows, int cols) {
#pragma omp parallel for schedule(static) if ((long)rows * cols > 65536)
    for (int r = 0; r < rows; r++) memcpy(dst + r * ld_dst, src + r * ld_src, sizeof(float) * (size_t)cols);
}

static void cpu_matmul(lmb_qdev *d, float *y, const float *x, const float *w, const float *b, int M, int N, int K) {
    lmb_cpu_matmul(y, x, w, b, M, N, K);
}

static void cpu_rmsnorm(lmb_qdev *d, float *y, const float *x, const float *g, int T, int H, float eps) {
    lmb_cpu_rmsnorm(y, x, g, T, H, eps);
}

static void cpu_rope(lmb_qdev *d, float *q, float *k, int T, int seqlen, int nh, int nkv, int hd,
                     const double *inv_freq) {
    cpu_impl *c = d->impl;
    if ((size_t)T > c->pos_cap) {
        int32_t *p = realloc(c->pos, sizeof(int32_t) * (size_t)T);
        if (!p) {
            lmb_qdev_fail(d, "out of memory for %d positions", T);
            return;
        }
        c->pos = p, c->pos_cap = (size_t)T;
    }
    for (int t = 0; t < T; t++) c->pos[t] = t % seqlen;
    lmb_cpu_rope(q, k, c->pos, T, nh, nkv, hd, inv_freq);
}

/* Per (sequence, head): S = Q K^T * scale, causal softmax, O = S V, as two matmuls. */
static void cpu_attention(lmb_qdev *d, float *out, const float *q, const float *k, const float *v, int n_seqs, int T,
                          int nh, int nkv, int hd) {
    cpu_impl *c = d->impl;
    size_t per = (size_t)T * T + 3 * (size_t)T * hd, need = per * (size_t)omp_get_max_threads();
    if (need > c->attn_ws_cap) {
        free(c->attn_ws);
        if (!(c->attn_ws = malloc(sizeof(float) * need))) {
            c->attn_ws_cap = 0;
            lmb_qdev_fail(d, "out of memory for the attention workspace (%zu floats)", need);
            return;
        }
        c->attn_ws_cap = need;
    }
    int rep = nh / nkv;
    size_t qs = (size_t)nh * hd, ks = (size_t)nkv * hd;
    float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for schedule(dynamic, 1)
    for (int p = 0; p < n_seqs * nh; p++) {
        int s = p / nh, h = p % nh, kvh = h / rep;
        float *S = c->attn_ws + (size_t)omp_get_thread_num() * per;
        float *Qh = S + (size_t)T * T, *Kh = Qh + (size_t)T * hd, *Vt = Kh + (size_t)T * hd;
        size_t row0 = (size_t)s * T;
        for (int t = 0; t < T; t++) {
            memcpy(Qh + (size_t)t * hd, q + (row0 + t) * qs + (size_t)h * hd, sizeof(float) * (size_t)hd);
            memcpy(Kh + (size_t)t * hd, k + (row0 + t) * ks + (size_t)kvh * hd, sizeof(float) * (size_t)hd);
            for (int i = 0; i < hd; i++) Vt[(size_t)i * T + t] = v[(row0 + t) * ks + (size_t)kvh * hd + i];
        }
        lmb_cpu_matmul(S, Qh, Kh, NULL, T, T, hd);
        for (int t = 0; t < T; t++) {
            float *r = S + (size_t)t * T, mx = -INFINITY, sum = 0;
            for (int j = 0; j <= t; j++) {
                r[j] *= scale;
                mx = r[j] > mx ? r[j] : mx;
            }
            for (int j = 0; j <= t; j++) sum += (r[j] = expf(r[j] - mx));
            for (int j = 0; j <= t; j++) r[j] /= sum;
            for (int j = t + 1; j < T; j++) r[j] = 0;
        }
        lmb_cpu_matmul(Qh, S, Vt, NULL, T, hd, T); /* Qh <- S V */
        for (int t = 0; t < T; t++)
            memcpy(out + (row0 + t) * qs + (size_t)h * hd, Qh + (size_t)t * hd, sizeof(float) * (size_t)hd);
    }
}

static void cpu_silu_mul(lmb_qdev *d, float *out, const float *gate, const float *up, int T, int F) {
    lmb_cpu_silu_mul(out, gate, up, T, F);
}

static void cpu_add(lmb_qdev *d, float *x, const float *h, size_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) x[i] += h[i];
}

static void cpu_scale_cols(lmb_qdev *d, float *x, int rows, int cols, const float *s, bool divide) {
#pragma omp parallel for schedule(static) if ((long)rows * cols > 65536)
    for (int r = 0; r < rows; r++) {
        float *xr = x + (size_t)r * cols;
        if (divide)
            for (int c = 0; c < cols; c++) xr[c] /= s[c];
        else
            for (int c = 0; c < cols; c++) xr[c] *= s[c];
    }
}

static void cpu_unscale_rows(lmb_qdev *d, float *w, float *b, int rows, int cols, const float *s) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) {
        for (int c = 0; c < cols; c++) w[(size_t)r * cols + c] /= s[r];
        if (b) b[r] /= s[r];
    }
}

static void cpu_fake_quant(lmb_qdev *d, float *w, int rows, int cols, int group) {
    lmb_int4_fake_quant(w, rows, cols, group);
}

static void cpu_clamp_rows(lmb_qdev *d, float *dst, size_t ld_dst, const float *src, size_t ld_src, int rows,
                           int cols, const float *m) {
#pragma omp parallel for schedule(static) if ((long)rows * cols > 65536)
    for (int r = 0; r < rows; r++) {
        float mv = m[r], *o = dst + r * ld_dst;
        const float *w = src + r * ld_src;
        for (int i = 0; i < cols; i++) o[i] = w[i] > mv ? mv : w[i] < -mv ? -mv : w[i];
    }
}

static void cpu_row_absmax(lmb_qdev *d, const float *w, size_t ld, int rows, int cols, float *out) {
#pragma omp parallel for schedule(static) if ((long)rows * cols > 65536)
    for (int r = 0; r < rows; r++) {
        float a = 0;
        for (int i = 0; i < cols; i++) a = fabsf(w[r * ld + i]) > a ? fabsf(w[r * ld + i]) : a;
        out[r] = a;
    }
}

static void cpu_col_sums(lmb_qdev *d, const float *a, const float *b, int rows, int cols, double *out) {
#pragma omp parallel for schedule(static)
    for (int c = 0; c < cols; c++) {
        double s = 0;
        for (int t = 0; t < rows; t++) {
            double v = a[(size_t)t * cols + c];
            if (b) {
                v -= b[(size_t)t * cols + c];
                s += v * v;
            } else {
                s += fabs(v);
            }
        }
        out[c] = s;
    }
}

static double cpu_sq_err(lmb_qdev *d, const float *a, const float *b, size_t n) {
    double s = 0;
#pragma omp parallel for reduction(+ : s) if (n > 65536)
    for (size_t i = 0; i < n; i++) s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return s;
}

static void cpu_destroy(lmb_qdev *d) {
    cpu_impl *c = d->impl;
    free(c->attn_ws);
    free(c->pos);
    free(c);
    free(d);
}

static const lmb_qdev_ops cpu_ops = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .release = cpu_release,
    .put = cpu_put,
    .get = cpu_put,
    .copy2d = cpu_copy2d,
    .matmul = cpu_matmul,
    .rmsnorm = cpu_rmsnorm,
    .rope = cpu_rope,
    .attention = cpu_attention,
    .silu_mul = cpu_silu_mul,
    .add = cpu_add,
    .scale_cols = cpu_scale_cols,
    .unscale_rows = cpu_unscale_rows,
    .fake_quant = cpu_fake_quant,
    .clamp_rows = cpu_clamp_rows,
    .row_absmax = cpu_row_absmax,
    .col_sums = cpu_col_sums,
    .sq_err = cpu_sq_err,
    .destroy = cpu_destroy,
};

int lmb_qdev_cpu_open(lmb_qdev **out, lmb_error *err) {
    lmb_qdev *d = calloc(1, sizeof *d);
    cpu_impl *c = calloc(1, sizeof *c);
    if (!d || !c) {
        free(d), free(c);
        return lmb_fail(err, "out of memory");
    }
    d->ops = &cpu_ops;
    d->host_memory = true;
    d->scratch_bytes = (size_t)-1;
    d->impl = c;
    *out = d;
    return 0;
}
