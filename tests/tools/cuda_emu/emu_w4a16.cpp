// emu_w4a16.cpp — runs kernels/cuda/w4a16.cu's launchers under cuda_emu.h on small shapes and compares
// with the CPU reference (kernels/cpu/w4a16.c).  Built and run by run_w4a16.sh.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

extern "C" {
#include "../../../engine/tensor.h"
#include "../../../kernels/kernels.h"
#include "../../../kernels/kernels_cuda.h"
}

static unsigned long long st = 88172645463325252ULL;
static unsigned rnd() { return (unsigned)((st = st * 6364136223846793005ULL + 1442695040888963407ULL) >> 32); }
static float frand() { return (rnd() >> 8) / 16777216.0f * 2 - 1; }
static void *amalloc(size_t n) { return aligned_alloc(64, (n + 63) / 64 * 64); }

struct Case {
    int N, K, G;
    int32_t *qw, *qz;
    uint16_t *sc;
};

static Case make(int N, int K, int G) {
    Case c{N, K, G};
    c.qw = (int32_t *)amalloc(4 * (size_t)K * N / 8);
    c.qz = (int32_t *)amalloc(4 * (size_t)K / G * N / 8);
    c.sc = (uint16_t *)amalloc(2 * (size_t)K / G * N);
    for (size_t i = 0; i < (size_t)K * N / 8; i++) c.qw[i] = (int32_t)rnd();
    for (size_t i = 0; i < (size_t)K / G * N / 8; i++) c.qz[i] = (int32_t)rnd();
    for (size_t i = 0; i < (size_t)K / G * N; i++) c.sc[i] = lmb_f32_to_f16(0.002f + 0.01f * (frand() + 1) / 2);
    return c;
}

static int failures = 0;

static void compare(const char *what, const uint16_t *y, const float *ref, size_t n, double tol) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = lmb_f16_to_f32(y[i]) - ref[i];
        num += d * d, den += (double)ref[i] * ref[i];
    }
    double r = std::sqrt(num / den);
    bool ok = r < tol;
    if (!ok) failures++;
    printf("%-44s rel %.2e %s\n", what, r, ok ? "ok" : "FAIL");
}

int main() {
    int shapes[][3] = {{64, 64, 32}, {136, 128, 64}, {256, 128, 32}, {512, 256, 128}, {64, 48, 24}};
    for (auto &s : shapes) {
        Case c = make(s[0], s[1], s[2]);
        for (int M = 1; M <= 9; M++) {
            float *x = (float *)amalloc(4 * (size_t)M * c.K), *ref = (float *)amalloc(4 * (size_t)M * c.N);
            uint16_t *xh = (uint16_t *)amalloc(2 * (size_t)M * c.K), *y = (uint16_t *)amalloc(2 * (size_t)M * c.N);
            for (int i = 0; i < M * c.K; i++) xh[i] = lmb_f32_to_f16(frand()), x[i] = lmb_f16_to_f32(xh[i]);
            lmb_cpu_w4a16_matmul(ref, x, c.qw, c.qz, c.sc, M, c.N, c.K, c.G);
            char what[96];
            if (M <= 8)
                for (int sp = 1; sp <= 3; sp++) {
                    float *ws = (float *)amalloc(lmb_cuda_w4a16_gemv_workspace(c.N));
                    int *tk = (int *)calloc(lmb_cuda_w4a16_gemv_tickets(c.N), sizeof(int));
                    memset(y, 0xff, 2 * (size_t)M * c.N);
                    if (lmb_cuda_w4a16_gemv(y, xh, c.qw, c.qz, c.sc, M, c.N, c.K, c.G, sp, ws, tk, 0)) failures++;
                    snprintf(what, sizeof what, "gemv N=%d K=%d G=%d M=%d splits=%d", c.N, c.K, c.G, M, sp);
                    compare(what, y, ref, (size_t)M * c.N, 2e-3);
                    for (size_t t = 0; t < lmb_cuda_w4a16_gemv_tickets(c.N); t++)
                        if (tk[t]) failures++, printf("ticket %zu left at %d\n", t, tk[t]);
                    free(ws), free(tk);
                }
            if ((M == 1 || M == 5 || M == 9) && c.G % 32 == 0) {
                memset(y, 0xff, 2 * (size_t)M * c.N);
                if (lmb_cuda_w4a16_mma(y, xh, c.qw, c.qz, c.sc, M, c.N, c.K, c.G, 0)) failures++;
                snprintf(what, sizeof what, "mma N=%d K=%d G=%d M=%d", c.N, c.K, c.G, M);
                compare(what, y, ref, (size_t)M * c.N, 3e-3);
            }
            free(x), free(ref), free(xh), free(y);
        }
        /* larger M for the MMA tiles (M > 32: a second tile row, ragged) */
        int M = 45;
        if (c.G % 32) continue; /* the tensor-core kernel takes groups of 32k */
        float *x = (float *)amalloc(4 * (size_t)M * c.K), *ref = (float *)amalloc(4 * (size_t)M * c.N);
        uint16_t *xh = (uint16_t *)amalloc(2 * (size_t)M * c.K), *y = (uint16_t *)amalloc(2 * (size_t)M * c.N);
        for (int i = 0; i < M * c.K; i++) xh[i] = lmb_f32_to_f16(frand()), x[i] = lmb_f16_to_f32(xh[i]);
        lmb_cpu_w4a16_matmul(ref, x, c.qw, c.qz, c.sc, M, c.N, c.K, c.G);
        if (lmb_cuda_w4a16_mma(y, xh, c.qw, c.qz, c.sc, M, c.N, c.K, c.G, 0)) failures++;
        char what[96];
        snprintf(what, sizeof what, "mma N=%d K=%d G=%d M=%d", c.N, c.K, c.G, M);
        compare(what, y, ref, (size_t)M * c.N, 3e-3);
        /* dequant of a column chunk, exact */
        float *W = (float *)amalloc(4 * (size_t)c.N * c.K);
        lmb_cpu_awq_dequant(W, c.qw, c.qz, c.sc, c.K, c.N, c.G);
        int n0 = 8, nc = c.N - 16;
        uint16_t *d = (uint16_t *)amalloc(2 * (size_t)c.K * nc);
        if (lmb_cuda_w4a16_dequant(d, c.qw, c.qz, c.sc, c.N, c.K, c.G, n0, nc, 0)) failures++;
        int bad = 0;
        for (int k = 0; k < c.K; k++)
            for (int n = 0; n < nc; n++)
                bad += d[(size_t)k * nc + n] != lmb_f32_to_f16(W[(size_t)(n0 + n) * c.K + k]);
        printf("dequant N=%d K=%d G=%d: %d mismatches %s\n", c.N, c.K, c.G, bad, bad ? "FAIL" : "ok");
        failures += bad != 0;
        free(x), free(ref), free(xh), free(y), free(W), free(d);
    }
    printf("%s\n", failures ? "FAILED" : "all emulated W4A16 checks passed");
    return failures != 0;
}
