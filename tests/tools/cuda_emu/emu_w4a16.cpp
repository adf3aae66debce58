// emu_w4a16.cpp — runs kernels/cuda/w4a16.cu's launchers under cuda_emu.h on small shapes and compares
// with the CPU reference (kernels/cpu/w4a16.c): random AutoAWQ-layout weights, repacked into W4 rows with
// lmb_w4_rows_from_awq as the backend does, through gemv (M = 1..8), the tensor-core kernel (WMMA; M = 1, 5, 9, 45, 70) and dequant (bit
// for bit).  The shapes cover the 16-byte units (K and group multiples of 32) and single words (a group of 24
// or 8), ragged lane pairs, several x slices (K = 2304 at M >= 5), zero words with padding, N not a multiple
// of 32, N past 8192 (the gemv without the K split), the gemv fused with the RMSnorm and the residual add,
// K = 12288.  Built and run by run_w4a16.sh.
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

// The gemv fused with the residual stream (M = 1, 2): normalizing its input, against the CPU's RMSnorm then the
// reference product; adding its output to a residual, against the plain gemv's fp16 output added (bit for bit).
static void check_fused(const Case &c, int M) {
    if (!lmb_cuda_w4a16_gemv_fusable(M, c.N, c.K, c.G, c.rw, false)) return;
    const size_t nk = (size_t)M * c.K, nn = (size_t)M * c.N;
    char what[96];
    if (lmb_cuda_w4a16_gemv_fusable(M, c.N, c.K, c.G, c.rw, true)) {
        float *resid = (float *)amalloc(4 * nk), *x = (float *)amalloc(4 * nk), *ref = (float *)amalloc(4 * nn);
        uint16_t *gamma = (uint16_t *)amalloc(2 * (size_t)c.K), *y = (uint16_t *)amalloc(2 * nn);
        for (size_t i = 0; i < nk; i++) resid[i] = 3 * frand();
        for (int k = 0; k < c.K; k++) gamma[k] = lmb_f32_to_f16(0.5f + (frand() + 1) / 2);
        for (int m = 0; m < M; m++) {
            double ss = 0;
            for (int k = 0; k < c.K; k++) ss += (double)resid[m * c.K + k] * resid[m * c.K + k];
            const float inv = (float)(1 / std::sqrt(ss / c.K + 1e-6));
            for (int k = 0; k < c.K; k++)
                x[m * c.K + k] = lmb_f16_to_f32(lmb_f32_to_f16(resid[m * c.K + k] * inv * lmb_f16_to_f32(gamma[k])));
        }
        lmb_cpu_w4a16_matmul(ref, x, c.qw, c.qz, c.sc, M, c.N, c.K, c.G);
        memset(y, 0xff, 2 * nn);
        lmb_w4a16_fusion fn = {};
        fn.norm_resid = resid, fn.gamma = gamma, fn.eps = 1e-6f;
        if (lmb_cuda_w4a16_gemv_fused(y, nullptr, &fn, c.rw, c.rz, c.rs, M, c.N, c.K, c.G, 0))
            failures++, printf("fused gemv (norm) refused FAIL\n");
        snprintf(what, sizeof what, "gemv+norm N=%d K=%d G=%d M=%d", c.N, c.K, c.G, M);
        compare(what, y, ref, nn, 2e-3);
        if (c.N % 16 == 0) { // the SiLU epilogue (gate|up: F = N / 2): silu(gate) * up of the fp16 outputs above
            const int F = c.N / 2;
            uint16_t *a = (uint16_t *)amalloc(2 * nn / 2), *want = (uint16_t *)amalloc(2 * nn / 2);
            for (int m = 0; m < M; m++)
                for (int j = 0; j < F; j++) {
                    const float g = lmb_f16_to_f32(y[(size_t)m * c.N + j]), u = lmb_f16_to_f32(y[(size_t)m * c.N + F + j]);
                    want[(size_t)m * F + j] = lmb_f32_to_f16(g / (1.f + std::exp(-g)) * u); // the emulator's __expf
                }
            memset(a, 0xff, nn);
            lmb_w4a16_fusion fs = fn;
            fs.silu = true;
            if (lmb_cuda_w4a16_gemv_fused(a, nullptr, &fs, c.rw, c.rz, c.rs, M, c.N, c.K, c.G, 0))
                failures++, printf("fused gemv (norm + silu) refused FAIL\n");
            const bool same = memcmp(a, want, nn) == 0;
            printf("gemv+norm+silu N=%d K=%d G=%d M=%d: %s\n", c.N, c.K, c.G, M, same ? "same bits ok" : "differs FAIL");
            failures += !same;
            free(a), free(want);
        }
        free(resid), free(x), free(ref), free(gamma), free(y);
    }
    Inputs in = inputs(c, M);
    lmb_cuda_w4a16_gemv(in.y, in.xh, c.rw, c.rz, c.rs, M, c.N, c.K, c.G, 0);
    float *o = (float *)amalloc(4 * nn), *want = (float *)amalloc(4 * nn);
    for (size_t i = 0; i < nn; i++) o[i] = frand(), want[i] = o[i] + lmb_f16_to_f32(in.y[i]);
    lmb_w4a16_fusion fa = {};
    fa.add_resid = o;
    if (lmb_cuda_w4a16_gemv_fused(nullptr, in.xh, &fa, c.rw, c.rz, c.rs, M, c.N, c.K, c.G, 0))
        failures++, printf("fused gemv (add) refused FAIL\n");
    const bool same = memcmp(o, want, 4 * nn) == 0;
    printf("gemv+add N=%d K=%d G=%d M=%d: %s\n", c.N, c.K, c.G, M, same ? "same bits ok" : "differs FAIL");
    failures += !same;
    free(o), free(want);
    free_inputs(in);
}

// The q|k|v gemv with RoPE and the KV write (M = 1, 2; nh q heads, nkv kv heads of hd dims): y and the fp16 caches
// against the plain gemv's fp16 y rotated and scattered as lmb_cuda_rope_kv_write does (bit for bit).  Row 1 is a
// padding row (slot -1) at M = 2 when `pad`.
static void check_rope(int nh, int nkv, int hd, int K, int G, int M, bool pad) {
    const int N = (nh + 2 * nkv) * hd, hh = hd / 2, bs = 16, nblk = 4;
    Case c = make(N, K, G);
    Inputs in = inputs(c, M);
    lmb_cuda_w4a16_gemv(in.y, in.xh, c.rw, c.rz, c.rs, M, N, K, G, 0);
    const size_t cache = (size_t)nblk * nkv * bs * hd;
    uint16_t *kc = (uint16_t *)amalloc(2 * cache), *vc = (uint16_t *)amalloc(2 * cache);
    uint16_t *wk = (uint16_t *)amalloc(2 * cache), *wv = (uint16_t *)amalloc(2 * cache);
    uint16_t *y = (uint16_t *)amalloc(2 * (size_t)M * N), *want = (uint16_t *)amalloc(2 * (size_t)M * N);
    memset(kc, 0, 2 * cache), memset(vc, 0, 2 * cache), memset(wk, 0, 2 * cache), memset(wv, 0, 2 * cache);
    memcpy(want, in.y, 2 * (size_t)M * N);
    float *inv_freq = (float *)amalloc(4 * (size_t)hh);
    for (int i = 0; i < hh; i++) inv_freq[i] = std::pow(10000.f, -2.f * i / hd);
    int32_t pos[2] = {37, 5};
    int64_t slots[2] = {37, pad ? -1 : 50};
    for (int m = 0; m < M; m++) {
        uint16_t *row = want + (size_t)m * N;
        const size_t blk = slots[m] >= 0 ? slots[m] / bs : 0, off = slots[m] >= 0 ? slots[m] % bs : 0;
        for (int h = 0; h < nh + nkv; h++)
            for (int i = 0; i < hh; i++) {
                float sn, cs;
                sincosf((float)pos[m] * inv_freq[i], &sn, &cs);
                const float a = lmb_f16_to_f32(row[h * hd + i]), b = lmb_f16_to_f32(row[h * hd + i + hh]);
                row[h * hd + i] = lmb_f32_to_f16(a * cs - b * sn), row[h * hd + i + hh] = lmb_f32_to_f16(b * cs + a * sn);
                if (h >= nh && slots[m] >= 0) {
                    uint16_t *k = wk + ((blk * nkv + (h - nh)) * bs + off) * hd;
                    k[i] = row[h * hd + i], k[i + hh] = row[h * hd + i + hh];
                }
            }
        for (int j = 0; j < nkv * hd && slots[m] >= 0; j++)
            wv[((blk * nkv + j / hd) * bs + off) * hd + j % hd] = row[(nh + nkv) * hd + j];
    }
    lmb_w4a16_fusion f = {};
    f.positions = pos, f.slots = slots, f.inv_freq = inv_freq, f.k_cache = kc, f.v_cache = vc;
    f.nh = nh, f.nkv = nkv, f.hd = hd, f.block_size = bs;
    memset(y, 0xff, 2 * (size_t)M * N);
    if (lmb_cuda_w4a16_gemv_fused(y, in.xh, &f, c.rw, c.rz, c.rs, M, N, K, G, 0))
        failures++, printf("fused gemv (rope) refused FAIL\n");
    const bool same = memcmp(y, want, 2 * (size_t)M * N) == 0 && memcmp(kc, wk, 2 * cache) == 0 &&
                      memcmp(vc, wv, 2 * cache) == 0;
    printf("gemv+rope+kv nh=%d nkv=%d hd=%d K=%d M=%d%s: %s\n", nh, nkv, hd, K, M, pad ? " (padding row)" : "",
           same ? "same bits ok" : "differs FAIL");
    failures += !same;
    free(kc), free(vc), free(wk), free(wv), free(y), free(want), free(inv_freq);
    free_inputs(in);
    free_case(c);
}

int main() {
    for (int M = 1; M <= 2; M++) {
        check_rope(4, 2, 16, 64, 32, M, M == 2);
        check_rope(8, 2, 32, 128, 64, M, false);
        check_rope(2, 2, 64, 256, 128, M, false); // N <= 8192 above: the K split
        check_rope(64, 8, 128, 128, 128, M, false); // N = 10240: none
    }
    int shapes[][3] = {{64, 64, 32}, {136, 128, 64}, {256, 128, 32}, {512, 256, 128},
                       {64, 48, 24}, {40, 792, 8},   {64, 2304, 64}, {8200, 32, 32}, {64, 12288, 128},
                       {8224, 64, 32}};
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
        for (int M = 1; M <= 2; M++) check_fused(c, M);
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
