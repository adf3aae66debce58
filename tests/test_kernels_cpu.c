/* test_kernels_cpu.c — the CPU reference kernels against naive float64 loops, and batch invariance. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/kernels.h"

static uint64_t rng_state = 0x1234567;
static float frand(void) {
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((rng_state >> 40) / (double)(1 << 24)) * 2.0f - 1.0f;
}
static float *rand_buf(size_t n) {
    float *p = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) p[i] = frand();
    return p;
}
static double rel_err(const float *a, const double *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += (a[i] - b[i]) * (a[i] - b[i]);
        den += b[i] * b[i];
    }
    return sqrt(num / den);
}

Test(kernels_cpu, matmul_matches_float64_for_odd_shapes) {
    int shapes[][3] = {{1, 7, 5}, {3, 5, 8}, {5, 9, 172}, {17, 33, 64}, {4, 4, 384}, {9, 13, 1001}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *x = rand_buf((size_t)M * K), *w = rand_buf((size_t)N * K), *b = rand_buf((size_t)N);
        float *y = malloc(sizeof(float) * (size_t)M * N);
        double *ref = malloc(sizeof(double) * (size_t)M * N);
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) {
                double acc = b[n];
                for (int k = 0; k < K; k++) acc += (double)x[(size_t)m * K + k] * w[(size_t)n * K + k];
                ref[(size_t)m * N + n] = acc;
            }
        lmb_cpu_matmul(y, x, w, b, M, N, K);
        cr_assert_lt(rel_err(y, ref, (size_t)M * N), 1e-6, "shape %dx%dx%d", M, N, K);
        free(x), free(w), free(b), free(y), free(ref);
    }
}

Test(kernels_cpu, matmul_rows_do_not_depend_on_the_batch) {
    int N = 37, K = 200;
    float *w = rand_buf((size_t)N * K), *x = rand_buf((size_t)11 * K);
    float alone[37], batch[11 * 37];
    lmb_cpu_matmul(batch, x, w, NULL, 11, N, K);
    for (int m = 0; m < 11; m++) {
        lmb_cpu_matmul(alone, x + (size_t)m * K, w, NULL, 1, N, K);
        cr_assert(memcmp(alone, batch + (size_t)m * N, sizeof alone) == 0, "row %d differs", m);
    }
    free(w), free(x);
}

Test(kernels_cpu, rmsnorm_matches_definition) {
    int T = 3, H = 50;
    float *x = rand_buf((size_t)T * H), *w = rand_buf(H), out[150];
    double ref[150];
    for (int t = 0; t < T; t++) {
        double ss = 0;
        for (int i = 0; i < H; i++) ss += (double)x[t * H + i] * x[t * H + i];
        double r = 1 / sqrt(ss / H + 1e-5);
        for (int i = 0; i < H; i++) ref[t * H + i] = x[t * H + i] * r * w[i];
    }
    lmb_cpu_rmsnorm(out, x, w, T, H, 1e-5f);
    cr_assert_lt(rel_err(out, ref, 150), 1e-6);
    free(x), free(w);
}

Test(kernels_cpu, rope_rotates_halves) {
    int hd = 8, T = 2;
    float q[16], k[16];
    double inv[4] = {1.0, 0.1, 0.01, 0.001};
    for (int i = 0; i < 16; i++) q[i] = k[i] = (float)(i + 1);
    int32_t pos[2] = {0, 3};
    lmb_cpu_rope(q, k, pos, T, 1, 1, hd, inv);
    for (int i = 0; i < 8; i++) cr_assert_float_eq(q[i], (float)(i + 1), 1e-6); /* position 0: identity */
    for (int i = 0; i < 4; i++) {
        double a = 9 + i, b = 13 + i, ang = 3 * inv[i];
        cr_assert_float_eq(q[8 + i], (float)(a * cos(ang) - b * sin(ang)), 1e-5);
        cr_assert_float_eq(q[12 + i], (float)(b * cos(ang) + a * sin(ang)), 1e-5);
        cr_assert_float_eq(k[12 + i], q[12 + i], 1e-6);
    }
}

Test(kernels_cpu, paged_attention_matches_dense_causal_attention) {
    /* two sequences of 5 and 3 new tokens on top of 0 and 4 cached tokens, GQA 4 heads / 2 kv heads */
    int n_heads = 4, n_kv = 2, hd = 16, bs = 4, L = 2, layer = 1;
    int ctx[2] = {5, 7}, newt[2] = {5, 3};
    lmb_kv_pool p = {.block_size = bs, .n_layers = L, .n_kv = n_kv, .hd = hd};
    p.block_stride = (size_t)L * 2 * n_kv * bs * hd;
    p.pool = calloc(8 * p.block_stride, sizeof(float));
    int32_t tables[2 * 2] = {5, 2, 7, 0}; /* seq0 blocks 5,2; seq1 blocks 7,0 */
    /* full K/V per sequence, written through lmb_cpu_kv_write in one batch of all positions */
    int T_all = ctx[0] + ctx[1];
    float *k = rand_buf((size_t)T_all * n_kv * hd), *v = rand_buf((size_t)T_all * n_kv * hd);
    int32_t qs_all[3] = {0, ctx[0], T_all}, pos_all[12];
    for (int t = 0; t < ctx[0]; t++) pos_all[t] = t;
    for (int t = 0; t < ctx[1]; t++) pos_all[ctx[0] + t] = t;
    lmb_cpu_kv_write(&p, layer, k, v, 2, qs_all, pos_all, tables, 2);
    /* queries: the last newt[s] positions of each sequence */
    int T = newt[0] + newt[1];
    float *q = rand_buf((size_t)T * n_heads * hd), *out = malloc(sizeof(float) * (size_t)T * n_heads * hd);
    int32_t qs[3] = {0, newt[0], T}, pos[8];
    for (int s = 0, t = 0; s < 2; s++)
        for (int j = 0; j < newt[s]; j++) pos[t++] = ctx[s] - newt[s] + j;
    float *scratch = malloc(sizeof(float) * lmb_cpu_attention_scratch(16));
    float scale = 0.25f;
    lmb_cpu_attention(out, q, &p, layer, n_heads, 2, qs, pos, tables, 2, scale, scratch, 16);
    double *ref = malloc(sizeof(double) * (size_t)T * n_heads * hd);
    for (int s = 0, t = 0; s < 2; s++)
        for (int j = 0; j < newt[s]; j++, t++)
            for (int h = 0; h < n_heads; h++) {
                int kvh = h / 2, n = pos[t] + 1, base = s == 0 ? 0 : ctx[0];
                double sc[16], mx = -1e300, sum = 0;
                for (int c = 0; c < n; c++) {
                    double d = 0;
                    for (int i = 0; i < hd; i++)
                        d += (double)q[((size_t)t * n_heads + h) * hd + i] * k[((size_t)(base + c) * n_kv + kvh) * hd + i];
                    sc[c] = d * scale;
                    if (sc[c] > mx) mx = sc[c];
                }
                for (int c = 0; c < n; c++) sum += (sc[c] = exp(sc[c] - mx));
                for (int i = 0; i < hd; i++) {
                    double o = 0;
                    for (int c = 0; c < n; c++) o += sc[c] / sum * v[((size_t)(base + c) * n_kv + kvh) * hd + i];
                    ref[((size_t)t * n_heads + h) * hd + i] = o;
                }
            }
    cr_assert_lt(rel_err(out, ref, (size_t)T * n_heads * hd), 1e-6);
    free(p.pool), free(k), free(v), free(q), free(out), free(scratch), free(ref);
}

Test(kernels_cpu, silu_mul) {
    float g[3] = {-2, 0, 3}, u[3] = {1, 2, 3}, o[3];
    lmb_cpu_silu_mul(o, g, u, 1, 3);
    for (int i = 0; i < 3; i++) cr_assert_float_eq(o[i], g[i] / (1 + expf(-g[i])) * u[i], 1e-6);
}
