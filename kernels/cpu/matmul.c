/* matmul.c — y = x W^T (+ b) in fp32, the CPU engine's hot loop.
 *
 * Tiles of 4 rows of x by 4 rows of W, two W rows at a time so the 8 vector accumulators stay in registers
 * (with all 16 at once, AVX2's 16 registers overflowed and every accumulate went through the stack: ~6 GFLOP/s
 * per core).  Each output is the same chain of 8-wide partial sums over K (then the same horizontal reduction)
 * wherever it sits in a tile, so results are bit-identical whatever M is (batch invariance).  Short tiles
 * reuse the last row and drop the extra results.  Built for AVX2 and plain x86-64, chosen at load time by the
 * CPU's flags (target_clones); no contraction into FMAs (ISO C: -ffp-contract=off), so both clones give the
 * same bits.
 */
#include <stddef.h>

#pragma GCC diagnostic ignored "-Wpsabi" /* v8 helpers are static inline: no ABI crosses a boundary */

#include "../kernels.h"

typedef float v8 __attribute__((vector_size(32)));

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__SANITIZE_ADDRESS__)
/* "avx2", not "arch=haswell": the arch= clone is chosen by CPU model (Intel Haswell and later), so AMD CPUs
 * with AVX2 ran the plain x86-64 clone (~6 GFLOP/s a core); feature clones are chosen by the CPU's flags */
#define LMB_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define LMB_CLONES
#endif

static inline float hsum8(v8 a) {
    return ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
}

static inline v8 load8(const float *p) {
    v8 v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}

LMB_CLONES
static void tile4x4(float *y, int ldy, const float *const xr[4], const float *const wr[4], int K, int mr,
                    int nr, const float *bias) {
    float s[4][4];
    int K8 = K & ~7;
    for (int h = 0; h < 4; h += 2) { /* W rows h, h+1: 8 accumulators, 2 weight and 1 x vectors in registers */
        const float *wa = wr[h], *wb = wr[h + 1], *x0 = xr[0], *x1 = xr[1], *x2 = xr[2], *x3 = xr[3];
        v8 a0 = {0}, b0 = {0}, a1 = {0}, b1 = {0}, a2 = {0}, b2 = {0}, a3 = {0}, b3 = {0};
        for (int kk = 0; kk < K8; kk += 8) {
            v8 wa8 = load8(wa + kk), wb8 = load8(wb + kk), xv;
            xv = load8(x0 + kk), a0 += xv * wa8, b0 += xv * wb8;
            xv = load8(x1 + kk), a1 += xv * wa8, b1 += xv * wb8;
            xv = load8(x2 + kk), a2 += xv * wa8, b2 += xv * wb8;
            xv = load8(x3 + kk), a3 += xv * wa8, b3 += xv * wb8;
        }
        s[0][h] = hsum8(a0), s[0][h + 1] = hsum8(b0), s[1][h] = hsum8(a1), s[1][h + 1] = hsum8(b1);
        s[2][h] = hsum8(a2), s[2][h + 1] = hsum8(b2), s[3][h] = hsum8(a3), s[3][h + 1] = hsum8(b3);
    }
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++) {
            float t = s[i][j];
            for (int kk = K8; kk < K; kk++) t += xr[i][kk] * wr[j][kk];
            y[(size_t)i * (size_t)ldy + j] = bias ? t + bias[j] : t;
        }
}

void lmb_cpu_matmul(float *y, const float *x, const float *W, const float *bias, int M, int N, int K) {
    /* x in blocks of R rows (R x K floats <= 128 KB, stays in L2): a thread takes the 4-row W tiles of one block
     * in turn, so a many-token matmul (calibration) reads x from memory once per block instead of once per W
     * tile.  Every output is still one tile4x4 over all of K: results do not change. */
    int R = (32768 / (K > 0 ? K : 1)) & ~3;
    R = R < 4 ? 4 : R > 256 ? 256 : R;
    int nt = (N + 3) / 4, nb = (M + R - 1) / R, rt = R / 4;
#pragma omp parallel for schedule(static) collapse(2) if ((long)M * N * K > 200000)
    for (int b = 0; b < nb; b++)
        for (int tn = 0; tn < nt; tn++)
            for (int tm = b * rt; tm < (b + 1) * rt && tm * 4 < M; tm++) {
                int n0 = tn * 4, m0 = tm * 4;
                int nr = N - n0 < 4 ? N - n0 : 4, mr = M - m0 < 4 ? M - m0 : 4;
                const float *xr[4], *wr[4];
                for (int i = 0; i < 4; i++) xr[i] = x + (size_t)(m0 + (i < mr ? i : mr - 1)) * (size_t)K;
                for (int j = 0; j < 4; j++) wr[j] = W + (size_t)(n0 + (j < nr ? j : nr - 1)) * (size_t)K;
                tile4x4(y + (size_t)m0 * (size_t)N + n0, N, xr, wr, K, mr, nr, bias ? bias + n0 : NULL);
        }
}
