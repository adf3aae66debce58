/* backend_awq_cuda.h — AWQ (W4A16) linears in the CUDA backend (engine/backend_awq_cuda.c).
 *
 * An AWQ model's linears live on the device in the W4 rows layout (kernels.h), repacked at load from the
 * checkpoint's AutoAWQ GEMM layout, fused as the dense ones are (q|k|v and gate|up concatenated along the
 * outputs: the parts' rows stacked).  The cuda_layer weight slots (wqkv, wo, wgu, wd) then hold a pointer to
 * a host-side lmb_cuda_awq_linear instead of a device matrix; the backend's gemm() asks
 * lmb_cuda_awq_owns(c, w) and hands such linears to lmb_cuda_awq_gemm, which picks the kernel by M:
 *   M <= gemv_max_m (8)            gemv, each weight byte read once
 *   wgmma_min_m..wgmma_max_m       the wgmma kernel (sm_90a builds on compute capability 9.0; K a multiple
 *   (9..2048)                      of 64, group 64 << j), its stream-K partials in the scratch below
 *   M <= mma_max_m  (128)          the WMMA tensor-core kernel (where wgmma does not run)
 *   larger M                       dequantize the linear to fp16 (runs of rows past 256 MB), cuBLAS
 * The bounds can be moved with LMB_W4A16_WGMMA (0: off), LMB_W4A16_WGMMA_MIN_M, LMB_W4A16_WGMMA_MAX_M,
 * LMB_W4A16_MMA_MAX_M and LMB_W4A16_SCRATCH_MB (read at load) for tuning.
 * Activations of AWQ models are fp16 (the scales are fp16).
 */
#ifndef LMB_BACKEND_AWQ_CUDA_H
#define LMB_BACKEND_AWQ_CUDA_H

#include <stdbool.h>

#include "backend_cuda_impl.h"

/* One (fused) AWQ linear on the device, W4 rows (G = group, ZW = (K/G + 7) / 8): */
typedef struct lmb_cuda_awq_linear {
    uint32_t *qweight; /* [N, K/8]: word (n, j) = inputs 8j..8j+7 of output n, nibble i = input 8j + LMB_AWQ_ORDER[i] */
    uint32_t *zeros;   /* [N, ZW]: zero point of group g at bits 4*(g%8) of word g/8 */
    void *scales;      /* fp16 [N, K/G] */
    int N, K, group;
} lmb_cuda_awq_linear;

/* Checks what the CUDA backend cannot run of an AWQ model (a quantized head, mixed q/k/v). */
int lmb_cuda_awq_check(const lmb_model *m, lmb_error *err);
/* Uploads (or, for random-weight models, generates) layer l's linears and their biases into c->layers[l];
 * after the last layer, allocates the dequant path's scratch. */
int lmb_cuda_awq_load_layer(cuda_backend *c, const lmb_model *m, int l, lmb_error *err);
/* Whether w (a cuda_layer weight slot) is an AWQ linear of c. */
bool lmb_cuda_awq_owns(const cuda_backend *c, const void *w);
/* y [M, N] = x [M, K] W^T for the AWQ linear w (fp16 in and out), enqueued on c->stream. */
int lmb_cuda_awq_gemm(cuda_backend *c, const void *x, const void *w, void *y, int M, int N, int K, lmb_error *err);
/* The large-M path of lmb_cuda_awq_gemm: runs of `chunk` rows of d (a multiple of 8, at most N) dequantized
 * into scratch (fp16 [chunk, K]) on s, each multiplied by cuBLAS on blas's stream.  The timing harness
 * (tests/gpu/test_w4a16_cuda.c) calls it too. */
int lmb_cuda_awq_dq_gemm(cublasHandle_t blas, lmb_stream s, void *scratch, int chunk, const lmb_cuda_awq_linear *d,
                         const void *x, void *y, int M, lmb_error *err);
/* Frees the AWQ linears and scratch and clears the layer slots that pointed at them. */
void lmb_cuda_awq_free(cuda_backend *c);

#endif
