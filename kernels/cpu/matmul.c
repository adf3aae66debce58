/* matmul.c — y = x W^T (+ b) in fp32, the CPU engine's hot loop.
 *
 * Tiles of 4 rows of x by 4 rows of W keep 16 vector accumulators in registers; each output is the same
 * chain of 8-wide partial sums over K (then the same horizontal reduction) wherever it sits in a tile,
 * so results are bit-identical whatever M is (batch invariance).  Short tiles reuse the last row and drop
 * the extra results.  Built for AVX2+FMA and plain x86-64, chosen at load time (target_clones).
 */
#include <stddef.h>

#pragma GCC diagnostic ignored "-Wpsabi" /* v8 helpers are static inline: no ABI crosses a boundary */

#include "../kernels.h"

typedef float v8 __attribute__((vector_size(32)));

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__SANITIZE_ADDRESS__)
#define LMB_CLONES __attribute__((target_clones("arch=haswell", "default")))
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
    v8 acc[4][4];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) acc[i][j] = (v8){0};
    int K8 = K & ~7;
    for (int kk = 0; kk < K8; kk += 8) {
        v8 w0 = load8(wr[0] + kk), w1 = load8(wr[1] + kk), w2 = load8(wr[2] + kk), w3 = load8(wr[3] + kk);
        for (int i = 0; i < 4; i++) {
            v8 xv = load8(xr[i] + kk);
            acc[i][0] += xv * w0;
            acc[i][1] += xv * w1;
            acc[i][2] += xv * w2;
            acc[i][3] += xv * w3;
        }
    }
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++) {
            float s = hsum8(acc[i][j]);
            for (int kk = K8; kk < K; kk++) s += xr[i][kk] * wr[j][kk];
            y[(size_t)i * (size_t)ldy + j] = bias ? s + bias[j] : s;
        }
}

void lmb_cpu_matmul(float *y, const float *x, const float *W, const float *bias, int M, int N, int K) {
    int nt = (N + 3) / 4, mt = (M + 3) / 4;
#pragma omp parallel for schedule(static) collapse(2) if ((long)M * N * K > 200000)
    for (int tn = 0; tn < nt; tn++)
        for (int tm = 0; tm < mt; tm++) {
            int n0 = tn * 4, m0 = tm * 4;
            int nr = N - n0 < 4 ? N - n0 : 4, mr = M - m0 < 4 ? M - m0 : 4;
            const float *xr[4], *wr[4];
            for (int i = 0; i < 4; i++) xr[i] = x + (size_t)(m0 + (i < mr ? i : mr - 1)) * (size_t)K;
            for (int j = 0; j < 4; j++) wr[j] = W + (size_t)(n0 + (j < nr ? j : nr - 1)) * (size_t)K;
            tile4x4(y + (size_t)m0 * (size_t)N + n0, N, xr, wr, K, mr, nr, bias ? bias + n0 : NULL);
        }
}
