/* gpu_util.h — helpers for the GPU tests: skip without a device, random buffers, fp16/bf16 uploads, and
 * relative error.  Header-only so each tests/gpu/test_*.c stays self-contained. */
#ifndef LMB_TEST_GPU_UTIL_H
#define LMB_TEST_GPU_UTIL_H

#include <criterion/criterion.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "../../engine/tensor.h"
#include "../../kernels/kernels_cuda.h"

static inline bool gpu_present(void) {
    int n = 0;
    return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

/* Skips the calling test (cr_skip_test does not return) when there is no CUDA device. */
static inline void gpu_require(void) {
    if (!gpu_present()) cr_skip_test("no CUDA device: GPU test skipped");
}

#define GPU_OK(call)                                                                                            \
    do {                                                                                                        \
        cudaError_t e_ = (cudaError_t)(call);                                                                   \
        cr_assert_eq(e_, cudaSuccess, "%s: %s", #call, cudaGetErrorString(e_));                                 \
    } while (0)

static uint64_t gpu_rng = 88172645463325252ULL;
static inline float gpu_frand(void) { /* uniform [-1, 1) */
    gpu_rng ^= gpu_rng << 13, gpu_rng ^= gpu_rng >> 7, gpu_rng ^= gpu_rng << 17;
    return (float)((gpu_rng >> 40) / 16777216.0) * 2.f - 1.f;
}

/* Random fp32 values, already rounded to the device type so the CPU reference sees the same inputs. */
static inline float *gpu_rand(size_t n, lmb_cuda_dtype dt, float scale) {
    float *p = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) {
        float f = gpu_frand() * scale;
        p[i] = dt == LMB_CUDA_F16 ? lmb_f16_to_f32(lmb_f32_to_f16(f)) : lmb_bf16_to_f32(lmb_f32_to_bf16(f));
    }
    return p;
}

static inline void *gpu_upload16(const float *x, size_t n, lmb_cuda_dtype dt) {
    uint16_t *h = malloc(2 * n);
    for (size_t i = 0; i < n; i++) h[i] = dt == LMB_CUDA_F16 ? lmb_f32_to_f16(x[i]) : lmb_f32_to_bf16(x[i]);
    void *d;
    cudaMalloc(&d, 2 * n);
    cudaMemcpy(d, h, 2 * n, cudaMemcpyHostToDevice);
    free(h);
    return d;
}

static inline float *gpu_download16(const void *d, size_t n, lmb_cuda_dtype dt) {
    uint16_t *h = malloc(2 * n);
    cudaMemcpy(h, d, 2 * n, cudaMemcpyDeviceToHost);
    float *x = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) x[i] = dt == LMB_CUDA_F16 ? lmb_f16_to_f32(h[i]) : lmb_bf16_to_f32(h[i]);
    free(h);
    return x;
}

static inline void *gpu_upload(const void *x, size_t bytes) {
    void *d;
    cudaMalloc(&d, bytes ? bytes : 16);
    cudaMemcpy(d, x, bytes, cudaMemcpyHostToDevice);
    return d;
}

static inline double gpu_rel(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i])) return INFINITY;
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return sqrt(num / (den > 0 ? den : 1));
}

#endif
