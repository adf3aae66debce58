/* w4a16.c — AWQ int4 weights on the CPU: dequantize AutoAWQ's GEMM layout (see kernels.h) to dense fp32,
 * the W4A16 GEMM reference (dequantize, then the fp32 matmul) that the CUDA kernels are checked against, and
 * the repack into the "W4 rows" layout the CUDA kernels read (with its own dequantizer, so tests can check
 * the repack against the AWQ reference bit for bit).  The CPU backend dequantizes each AWQ linear once at
 * load, the CUDA backend repacks it once at load; nothing here is on a hot path.
 */
#include <stdlib.h>
#include <string.h>

#include "../../engine/tensor.h"
#include "../kernels.h"

static inline uint32_t load_u32(const void *p, size_t i) {
    uint32_t v;
    memcpy(&v, (const unsigned char *)p + 4 * i, 4);
    return v;
}

static inline uint16_t load_u16(const void *p, size_t i) {
    uint16_t v;
    memcpy(&v, (const unsigned char *)p + 2 * i, 2);
    return v;
}

void lmb_cpu_awq_dequant(float *W, const void *qweight, const void *qzeros, const void *scales, int K, int N,
                         int group) {
    static const int rev[8] = LMB_AWQ_REVERSE_ORDER;
    int N8 = N / 8;
#pragma omp parallel for schedule(static) if ((long)K * N > (1L << 16))
    for (int k = 0; k < K; k++) {
        int g = k / group;
        for (int c = 0; c < N8; c++) {
            uint32_t q = load_u32(qweight, (size_t)k * N8 + c), z = load_u32(qzeros, (size_t)g * N8 + c);
            for (int j = 0; j < 8; j++) {
                int n = 8 * c + j, sh = 4 * rev[j];
                float s = lmb_f16_to_f32(load_u16(scales, (size_t)g * N + n));
                int qv = (int)((q >> sh) & 15u), zv = (int)((z >> sh) & 15u);
                W[(size_t)n * K + k] = (float)(qv - zv) * s;
            }
        }
    }
}

void lmb_cpu_w4a16_matmul(float *y, const float *x, const void *qweight, const void *qzeros, const void *scales,
                          int M, int N, int K, int group) {
    float *W = malloc(sizeof(float) * (size_t)N * (size_t)K);
    if (!W) { /* the reference is for tests; a NaN output cannot be mistaken for a pass */
        for (size_t i = 0; i < (size_t)M * N; i++) y[i] = __builtin_nanf("");
        return;
    }
    lmb_cpu_awq_dequant(W, qweight, qzeros, scales, K, N, group);
    lmb_cpu_matmul(y, x, W, NULL, M, N, K);
    free(W);
}

/* The 8x8 nibble matrix b (row i = word i, column s = nibble s) transposed in place: swap the off-diagonal
 * blocks of 4x4 nibbles (16-bit halves of words i, i+4), then of 2x2 (bytes), then of 1x1. */
static inline void transpose_nibbles(uint32_t b[8]) {
    uint32_t t;
    for (int i = 0; i < 4; i++) t = ((b[i] >> 16) ^ b[i + 4]) & 0x0000FFFFu, b[i] ^= t << 16, b[i + 4] ^= t;
    for (int i = 0; i < 8; i += (i & 1) ? 3 : 1) /* pairs (0,2) (1,3) (4,6) (5,7) */
        t = ((b[i] >> 8) ^ b[i + 2]) & 0x00FF00FFu, b[i] ^= t << 8, b[i + 2] ^= t;
    for (int i = 0; i < 8; i += 2) t = ((b[i] >> 4) ^ b[i + 1]) & 0x0F0F0F0Fu, b[i] ^= t << 4, b[i + 1] ^= t;
}

int lmb_w4_rows_from_awq(uint32_t *qw_rows, uint32_t *zeros_rows, uint16_t *scales_rows, const void *qweight,
                         const void *qzeros, const void *scales, int K, int N, int group) {
    static const int order[8] = LMB_AWQ_ORDER, rev[8] = LMB_AWQ_REVERSE_ORDER;
    if (N <= 0 || K <= 0 || N % 8 || K % 8 || group <= 0 || K % group) return -1;
    const int N8 = N / 8, KW = K / 8, ng = K / group, ZW = (ng + 7) / 8;
    /* codes: an 8x8 nibble transpose per block of 8 inputs x 8 outputs.  b[i] = AWQ word of input 8j + order[i];
     * transposed, b[s] holds nibble s of every original b[i] at nibble i: the codes of the output at AWQ nibble
     * s (output 8c + o for rev[o] == s), already in the rows' nibble order.  Tiles of 16 words x 512 rows keep
     * the written cache lines in cache. */
#pragma omp parallel for schedule(static) if ((long)K * N > (1L << 16))
    for (int j0 = 0; j0 < KW; j0 += 16)
        for (int c0 = 0; c0 < N8; c0 += 64)
            for (int j = j0; j < j0 + 16 && j < KW; j++)
                for (int c = c0; c < c0 + 64 && c < N8; c++) {
                    uint32_t b[8];
                    for (int i = 0; i < 8; i++) b[i] = load_u32(qweight, (size_t)(8 * j + order[i]) * N8 + c);
                    transpose_nibbles(b);
                    for (int o = 0; o < 8; o++) qw_rows[(size_t)(8 * c + o) * KW + j] = b[rev[o]];
                }
    for (int n = 0; n < N; n++) {
        uint32_t *zr = zeros_rows + (size_t)n * ZW;
        for (int w = 0; w < ZW; w++) zr[w] = 0;
        for (int g = 0; g < ng; g++) {
            uint32_t z = (load_u32(qzeros, (size_t)g * N8 + n / 8) >> (4 * rev[n % 8])) & 15u;
            zr[g / 8] |= z << (4 * (g % 8));
            scales_rows[(size_t)n * ng + g] = load_u16(scales, (size_t)g * N + n);
        }
    }
    return 0;
}

void lmb_cpu_w4_rows_dequant(float *W, const uint32_t *qweight, const uint32_t *zeros, const uint16_t *scales, int K,
                             int N, int group) {
    static const int order[8] = LMB_AWQ_ORDER;
    const int KW = K / 8, ng = K / group, ZW = (ng + 7) / 8;
#pragma omp parallel for schedule(static) if ((long)K * N > (1L << 16))
    for (int n = 0; n < N; n++)
        for (int j = 0; j < KW; j++) {
            uint32_t w = qweight[(size_t)n * KW + j];
            for (int i = 0; i < 8; i++) {
                int k = 8 * j + order[i], g = k / group;
                int q = (int)((w >> (4 * i)) & 15u), z = (int)((zeros[(size_t)n * ZW + g / 8] >> (4 * (g % 8))) & 15u);
                W[(size_t)n * K + k] = (float)(q - z) * lmb_f16_to_f32(scales[(size_t)n * ng + g]);
            }
        }
}
