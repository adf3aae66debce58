// gemv.cu — y[M, N] = x[M, K] · W[N, K]^T for small M (1..8 rows: decode at small batch), where cuBLAS reads
// the weights at well under the memory bandwidth.  The weights are read exactly once, streamed (__ldcs):
// one warp per output column n, each lane loading 16 bytes (8 elements) of W's row n per step, U steps in
// flight before any is used; the M activation rows come through L1 (__ldg), shared by the warps of an SM.
// fp32 accumulation, a warp-shuffle sum, output in the activation type or fp32 (logits).
// CPU reference: kernels/cpu/matmul.c (tests/gpu/test_kernels_cuda.c compares the two).
#include "common.cuh"

using namespace lmb;

namespace {

constexpr int WARPS = 8, U = 4;

template <typename T, typename TO, int M>
__global__ void __launch_bounds__(WARPS * 32) gemv_kernel(TO *y, const T *x, const T *w, int N, int K) {
    const int lane = threadIdx.x & 31;
    const int n = blockIdx.x * WARPS + (threadIdx.x >> 5);
    if (n >= N) return;
    const int chunks = K / 8;
    const uint4 *wr = reinterpret_cast<const uint4 *>(w + (size_t)n * K);
    const uint4 *xr = reinterpret_cast<const uint4 *>(x);
    float acc[M];
#pragma unroll
    for (int m = 0; m < M; m++) acc[m] = 0.f;
    for (int c0 = lane; c0 < chunks; c0 += 32 * U) {
        uint4 wv[U];
#pragma unroll
        for (int u = 0; u < U; u++) {
            int c = c0 + u * 32;
            wv[u] = c < chunks ? __ldcs(wr + c) : make_uint4(0, 0, 0, 0);
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            int c = c0 + u * 32;
            if (c >= chunks) break;
            const T *we = reinterpret_cast<const T *>(&wv[u]);
            float wf[8];
#pragma unroll
            for (int i = 0; i < 8; i++) wf[i] = to_f(we[i]);
#pragma unroll
            for (int m = 0; m < M; m++) {
                uint4 xv = __ldg(xr + (size_t)m * chunks + c);
                const T *xe = reinterpret_cast<const T *>(&xv);
#pragma unroll
                for (int i = 0; i < 8; i++) acc[m] += wf[i] * to_f(xe[i]);
            }
        }
    }
#pragma unroll
    for (int m = 0; m < M; m++) acc[m] = warp_sum(acc[m]);
    if (lane == 0)
#pragma unroll
        for (int m = 0; m < M; m++) {
            if constexpr (sizeof(TO) == 4) y[(size_t)m * N + n] = acc[m];
            else y[(size_t)m * N + n] = from_f<T>(acc[m]);
        }
}

template <typename T, typename TO>
void launch(int M, TO *y, const T *x, const T *w, int N, int K, cudaStream_t s) {
    dim3 grid((N + WARPS - 1) / WARPS), block(WARPS * 32);
    switch (M) {
    case 1: gemv_kernel<T, TO, 1><<<grid, block, 0, s>>>(y, x, w, N, K); break;
    case 2: gemv_kernel<T, TO, 2><<<grid, block, 0, s>>>(y, x, w, N, K); break;
    case 3: gemv_kernel<T, TO, 3><<<grid, block, 0, s>>>(y, x, w, N, K); break;
    case 4: gemv_kernel<T, TO, 4><<<grid, block, 0, s>>>(y, x, w, N, K); break;
    case 5: gemv_kernel<T, TO, 5><<<grid, block, 0, s>>>(y, x, w, N, K); break;
    case 6: gemv_kernel<T, TO, 6><<<grid, block, 0, s>>>(y, x, w, N, K); break;
    case 7: gemv_kernel<T, TO, 7><<<grid, block, 0, s>>>(y, x, w, N, K); break;
    default: gemv_kernel<T, TO, 8><<<grid, block, 0, s>>>(y, x, w, N, K); break;
    }
}

} // namespace

extern "C" int lmb_cuda_gemv_supported(int M, int N, int K) { return M >= 1 && M <= 8 && K % 8 == 0 && N > 0; }

extern "C" int lmb_cuda_gemv(void *y, int y_f32, const void *x, const void *w, int M, int N, int K,
                             lmb_cuda_dtype dt, lmb_stream s) {
    if (!lmb_cuda_gemv_supported(M, N, K)) return (int)cudaErrorInvalidValue;
    LMB_DISPATCH(dt, E, {
        if (y_f32) launch<E, float>(M, (float *)y, (const E *)x, (const E *)w, N, K, s);
        else launch<E, E>(M, (E *)y, (const E *)x, (const E *)w, N, K, s);
    });
    return LMB_LAUNCH_RESULT();
}
