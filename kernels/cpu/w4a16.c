/* w4a16.c — AWQ int4 weights on the CPU: dequantize AutoAWQ's GEMM layout (see kernels.h) to dense fp32,
 * and the W4A16 GEMM reference (dequantize, then the fp32 matmul) that the CUDA kernels are checked against.
 * The CPU backend dequantizes each AWQ linear once at load; nothing here is on a hot path.
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
