// common.cuh — what every CUDA kernel file shares: the fp16/bf16 element types, conversions, warp/block
// reductions, and the dispatch from lmb_cuda_dtype to a template instantiation.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>

#include "../kernels_cuda.h"

namespace lmb {

template <typename T> __device__ __forceinline__ float to_f(T x);
template <> __device__ __forceinline__ float to_f<half>(half x) { return __half2float(x); }
template <> __device__ __forceinline__ float to_f<__nv_bfloat16>(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T> __device__ __forceinline__ T from_f(float x);
template <> __device__ __forceinline__ half from_f<half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Block-wide sum/max for blockDim.x a multiple of 32 (<= 1024); `sh` holds 32 floats.
__device__ __forceinline__ float block_sum(float v, float *sh) {
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : 0.f;
    return warp_sum(v);
}
__device__ __forceinline__ float block_max(float v, float *sh) {
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : -INFINITY;
    return warp_max(v);
}

// Programmatic dependent launch (sm_90; no-ops below).  A kernel launched with launch_pdl may start while the
// kernel before it in the stream is still running: it must call pdl_wait() before it reads what that kernel
// writes or writes what it reads (the wait returns once the predecessor has completed and its writes are
// visible; in a kernel launched without the attribute it returns at once).  pdl_trigger() in a predecessor lets
// such a follower's CTAs start as soon as every CTA of the predecessor has run it, instead of at their exits.
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// An integer knob from the environment (0 when unset), read once per call site: *cache starts at INT_MIN.  Host
// code (the launchers' tuning switches).
inline int env_knob(int *cache, const char *name) {
    if (*cache == INT_MIN) {
        const char *e = getenv(name);
        *cache = e ? atoi(e) : 0;
    }
    return *cache;
}

// Whether launch_pdl asks for programmatic dependent launch: a device of compute capability >= 9, unless
// LMB_PDL=0 (to compare both in one process).  Read once per process.
bool pdl_enabled();

// Launches kernel k like k<<<grid, block, smem, s>>>(args...), with programmatic stream serialization allowed when
// pdl_enabled(): k must call pdl_wait() before touching what the previous kernel reads or writes.  Used by the
// W4A16 gemv (w4a16.cu).  Tried on the decode chain's small kernels
// too (RMSnorm, RoPE + KV write, attention and merge, SiLU, each waiting first): no faster at bs1 on the H100
// (W4A16 368.5 against 370.5 tok/s, fp16 189.7 against 189.8), so they launch plainly and only trigger.
template <typename... KArgs, typename... Args>
cudaError_t launch_pdl(void (*k)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t s, Args... args) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = s;
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = at;
    cfg.numAttrs = pdl_enabled() ? 1 : 0;
    return cudaLaunchKernelEx(&cfg, k, static_cast<KArgs>(args)...);
}

} // namespace lmb

#define LMB_DISPATCH(dt, T, ...)                                                                              \
    do {                                                                                                      \
        if ((dt) == LMB_CUDA_F16) {                                                                           \
            using T = half;                                                                                   \
            __VA_ARGS__;                                                                                      \
        } else {                                                                                              \
            using T = __nv_bfloat16;                                                                          \
            __VA_ARGS__;                                                                                      \
        }                                                                                                     \
    } while (0)

#define LMB_LAUNCH_RESULT() ((int)cudaGetLastError())
