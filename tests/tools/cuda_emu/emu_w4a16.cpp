// emu_w4a16.cpp — runs kernels/cuda/w4a16.cu's and w4a16_wgmma.cu's launchers under cuda_emu.h on small shapes and compares
// with the CPU reference (kernels/cpu/w4a16.c): random AutoAWQ-layout weights, repacked into W4 rows with
// lmb_w4_rows_from_awq as the backend does, through gemv (M = 1..8), the tensor-core kernel (WMMA; M = 1, 5, 9, 45, 70) and dequant (bit
// for bit).  The shapes cover the 16-byte units (K and group multiples of 32) and single words (a group of 24
// or 8), ragged lane pairs, several x slices (K = 2304 at M >= 5), zero words with padding, N not a multiple
// of 32, N past 8192 (the gemv without the K split).  The wgmma kernel (w4a16_wgmma.cu) on every tile shape
// (64, 128, 192 and 256 tokens; 256 rows), rows past N, K split 2 and 3 ways (ragged), CTA counts whose
// stream-K ranges straddle tiles, and what its launcher refuses.  Built and run by run_w4a16.sh.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>

extern "C" {
#include "../../../engine/tensor.h"
#include "../../../kernels/kernels.h"
#include "../../../kernels/kernels_cuda.h"
}

static unsigned long long st = 88172645463325252ULL;
static unsigned rnd() { return (unsigned)((st = st * 6364136223846793005ULL + 1442695040888963407ULL) >> 32); }
static float frand() { return (rnd() >> 8) / 16777216.0f * 2 - 1; }
static void *amalloc(size_t n) { return aligned_alloc(64, (n + 63) / 64 * 64); }

static int failures = 0;

struct Case {
    int N, K, G;
    int32_t *qw, *qz; // AutoAWQ layout: the CPU reference's input
    uint16_t *sc;
    uint32_t *rw, *rz; // W4 rows: the kernels' input
    uint16_t *rs;
};

static Case make(int N, int K, int G) {
    Case c{N, K, G};
    int ng = K / G, ZW = (ng + 7) / 8;
    c.qw = (int32_t *)amalloc(4 * (size_t)K * N / 8);
    c.qz = (int32_t *)amalloc(4 * (size_t)ng * N / 8);
    c.sc = (uint16_t *)amalloc(2 * (size_t)ng * N);
    for (size_t i = 0; i < (size_t)K * N / 8; i++) c.qw[i] = (int32_t)rnd();
    for (size_t i = 0; i < (size_t)ng * N / 8; i++) c.qz[i] = (int32_t)rnd();
    for (size_t i = 0; i < (size_t)ng * N; i++) c.sc[i] = lmb_f32_to_f16(0.002f + 0.01f * (frand() + 1) / 2);
    c.rw = (uint32_t *)amalloc(4 * (size_t)K * N / 8);
    c.rz = (uint32_t *)amalloc(4 * (size_t)N * ZW);
    c.rs = (uint16_t *)amalloc(2 * (size_t)ng * N);
    if (lmb_w4_rows_from_awq(c.rw, c.rz, c.rs, c.qw, c.qz, c.sc, K, N, G))
        failures++, printf("repack refused N=%d K=%d G=%d FAIL\n", N, K, G);
    return c;
}

static void free_case(Case &c) { free(c.qw), free(c.qz), free(c.sc), free(c.rw), free(c.rz), free(c.rs); }

static void compare(const char *what, const uint16_t *y, const float *ref, size_t n, double tol) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = lmb_f16_to_f32(y[i]) - ref[i];
        num += d * d, den += (double)ref[i] * ref[i];
    }
    double r = std::sqrt(num / den);
    bool ok = r < tol; // NaN (an unwritten output) fails too
    if (!ok) failures++;
    printf("%-44s rel %.2e %s\n", what, r, ok ? "ok" : "FAIL");
}

// x [M, K] random fp16 (xh) and the reference y = x W^T (fp32, from the AWQ buffers)
struct Inputs {
    float *x, *ref;
    uint16_t *xh, *y;
};
static Inputs inputs(const Case &c, int M) {
    Inputs in;
    in.x = (float *)amalloc(4 * (size_t)M * c.K), in.ref = (float *)amalloc(4 * (size_t)M * c.N);
    in.xh = (uint16_t *)amalloc(2 * (size_t)M * c.K), in.y = (uint16_t *)amalloc(2 * (size_t)M * c.N);
    for (int i = 0; i < M * c.K; i++) in.xh[i] = lmb_f32_to_f16(frand()), in.x[i] = lmb_f16_to_f32(in.xh[i]);
    lmb_cpu_w4a16_matmul(in.ref, in.x, c.qw, c.qz, c.sc, M, c.N, c.K, c.G);
    memset(in.y, 0xff, 2 * (size_t)M * c.N); // poison: NaN
    return in;
}
static void free_inputs(Inputs &in) { free(in.x), free(in.ref), free(in.xh), free(in.y); }

static void check_mma(const Case &c, int M) {
    Inputs in = inputs(c, M);
    if (lmb_cuda_w4a16_mma(in.y, in.xh, c.rw, c.rz, c.rs, M, c.N, c.K, c.G, 0)) failures++, printf("mma refused FAIL\n");
    char what[96];
    snprintf(what, sizeof what, "mma N=%d K=%d G=%d M=%d", c.N, c.K, c.G, M);
    compare(what, in.y, in.ref, (size_t)M * c.N, 3e-3);
    free_inputs(in);
}

// The wgmma kernel (w4a16_wgmma.cu), K split over `splits` CTAs (0: the launcher's choice).
static void check_wgmma(const Case &c, int M, int splits, int ctas = 0) {
    Inputs in = inputs(c, M);
    const size_t ws_n = (size_t)8 << 20; // floats: room for every partial slot of these shapes
    float *ws = (float *)amalloc(4 * ws_n);
    unsigned tickets[64] = {0};
    lmb_cuda_w4a16_wgmma_ctas(ctas);
    if (lmb_cuda_w4a16_wgmma(in.y, in.xh, c.rw, c.rz, c.rs, M, c.N, c.K, c.G, splits, ws, 4 * ws_n, tickets, 64, 0))
        failures++, printf("wgmma refused FAIL\n");
    lmb_cuda_w4a16_wgmma_ctas(0);
    char what[96];
    snprintf(what, sizeof what, "wgmma N=%d K=%d G=%d M=%d splits %d ctas %d", c.N, c.K, c.G, M, splits, ctas);
    compare(what, in.y, in.ref, (size_t)M * c.N, 3e-3);
    for (unsigned v : tickets)
        if (v) failures++, printf("wgmma left a ticket at %u FAIL\n", v);
    free(ws);
    free_inputs(in);
}

int main() {
    {   // wgmma: token tiles of 64 (M 1, 45), 128 (70) and 192 (130, 300: two tiles); rows past N (264 = 2 x 128 + 8);
        // K split 2 and 3 ways (ragged: 8 k-tiles over 3)
        Case c = make(264, 512, 128);
        for (int M : {1, 45, 70, 130, 300}) check_wgmma(c, M, 1);
        check_wgmma(c, 70, 2), check_wgmma(c, 130, 3), check_wgmma(c, 45, 0);
        for (int nt : {64, 128}) { // 256-row tiles (MB 2); rows past N within the second warpgroup's blocks
            lmb_cuda_w4a16_wgmma_shape(nt, 2);
            check_wgmma(c, 70, 1), check_wgmma(c, 130, 2);
        }
        lmb_cuda_w4a16_wgmma_shape(256, 1), check_wgmma(c, 45, 1);
        lmb_cuda_w4a16_wgmma_shape(192, 1), check_wgmma(c, 130, 2);
        lmb_cuda_w4a16_wgmma_shape(0, 0), check_wgmma(c, 190, 0); // 192 tokens by M
        // stream-K ranges across tiles: 3 tiles x 8 k-tiles over 5 CTAs (a CTA with one tile's k-end and the
        // next one's k-start), over 2 (a whole tile, then part of the next); 4 tiles (2 x 2) over 7 with 256-row
        // tiles
        check_wgmma(c, 130, 0, 5), check_wgmma(c, 130, 0, 2);
        // 192-token tiles with M ragged past the second (300): 6 tiles x 8 k-tiles over 5 CTAs, and over 13 (a
        // tile's k-end CTA adds two or three partials)
        check_wgmma(c, 300, 0, 5), check_wgmma(c, 300, 0, 13);
        lmb_cuda_w4a16_wgmma_shape(64, 2), check_wgmma(c, 70, 0, 7);
        lmb_cuda_w4a16_wgmma_shape(0, 0);
        free_case(c);
        Case d = make(136, 128, 64);
        check_wgmma(d, 9, 1), check_wgmma(d, 9, 2);
        free_case(d);
        Case e = make(64, 64, 64); // refused: a group that does not divide K, K % 64, splits without a workspace
        uint16_t buf[64 * 64];
        if (!lmb_cuda_w4a16_wgmma(buf, buf, e.rw, e.rz, e.rs, 1, 64, 64, 128, 1, nullptr, 0, nullptr, 0, 0) ||
            !lmb_cuda_w4a16_wgmma(buf, buf, e.rw, e.rz, e.rs, 1, 64, 96, 32, 1, nullptr, 0, nullptr, 0, 0) ||
            !lmb_cuda_w4a16_wgmma(buf, buf, e.rw, e.rz, e.rs, 1, 64, 64, 64, 2, nullptr, 0, nullptr, 0, 0))
            failures++, printf("wgmma bad arguments not refused FAIL\n");
        free_case(e);
    }

    int shapes[][3] = {{64, 64, 32}, {136, 128, 64}, {256, 128, 32}, {512, 256, 128},
                       {64, 48, 24}, {40, 792, 8},   {64, 2304, 64}, {8200, 32, 32}};
    for (auto &s : shapes) {
        Case c = make(s[0], s[1], s[2]);
        for (int M = 1; M <= 8; M++) {
            Inputs in = inputs(c, M);
            if (lmb_cuda_w4a16_gemv(in.y, in.xh, c.rw, c.rz, c.rs, M, c.N, c.K, c.G, 0))
                failures++, printf("gemv refused FAIL\n");
            char what[96];
            snprintf(what, sizeof what, "gemv N=%d K=%d G=%d M=%d (%s)", c.N, c.K, c.G, M,
                     c.K % 32 == 0 && c.G % 32 == 0 ? "16-byte units" : "words");
            compare(what, in.y, in.ref, (size_t)M * c.N, 2e-3);
            free_inputs(in);
        }
        if (c.G % 32 == 0) { // the tensor-core kernel takes groups of 32k; M = 45, 70: ragged tile rows
            for (int M : {1, 5, 9, 45, 70}) check_mma(c, M);
        } else if (lmb_cuda_w4a16_mma(nullptr, c.rw, c.rw, c.rz, c.rs, 1, c.N, c.K, c.G, 0) == 0) {
            failures++, printf("mma with group %d not refused FAIL\n", c.G);
        }
        /* dequant of a row range, exact: the AWQ dequantization rounded to fp16 */
        float *W = (float *)amalloc(4 * (size_t)c.N * c.K);
        lmb_cpu_awq_dequant(W, c.qw, c.qz, c.sc, c.K, c.N, c.G);
        int n0 = 8, nc = c.N - 16;
        uint16_t *d = (uint16_t *)amalloc(2 * (size_t)c.K * nc);
        if (lmb_cuda_w4a16_dequant(d, c.rw, c.rz, c.rs, c.N, c.K, c.G, n0, nc, 0))
            failures++, printf("dequant refused FAIL\n");
        int bad = 0;
        for (int n = 0; n < nc; n++)
            for (int k = 0; k < c.K; k++)
                bad += d[(size_t)n * c.K + k] != lmb_f32_to_f16(W[(size_t)(n0 + n) * c.K + k]);
        printf("dequant N=%d K=%d G=%d rows %d..%d: %d mismatches %s\n", c.N, c.K, c.G, n0, n0 + nc - 1, bad,
               bad ? "FAIL" : "ok");
        failures += bad != 0;
        free(W), free(d);
        free_case(c);
    }
    /* what the launchers refuse: M > 8 on the gemv, a group that is not a multiple of 8, rows past N */
    Case c = make(64, 96, 32);
    uint16_t *buf = (uint16_t *)amalloc(2 * 64 * 96 * 9);
    int refused = (lmb_cuda_w4a16_gemv(buf, buf, c.rw, c.rz, c.rs, 9, 64, 96, 32, 0) != 0) +
                  (lmb_cuda_w4a16_gemv(buf, buf, c.rw, c.rz, c.rs, 1, 64, 96, 12, 0) != 0) +
                  (lmb_cuda_w4a16_dequant(buf, c.rw, c.rz, c.rs, 64, 96, 32, 60, 8, 0) != 0) +
                  (lmb_cuda_w4a16_gemv(buf, (char *)buf + 2, c.rw, c.rz, c.rs, 1, 64, 96, 32, 0) != 0);
    printf("bad arguments refused: %d of 4 %s\n", refused, refused == 4 ? "ok" : "FAIL");
    failures += refused != 4;
    free(buf);
    free_case(c);
    printf("%s\n", failures ? "FAILED" : "all emulated W4A16 checks passed");
    return failures != 0;
}
