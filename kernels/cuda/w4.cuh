// w4.cuh — the "W4 rows" layout's words as fp16 (kernels_cuda.h describes the layout): shared by the gemv, the
// WMMA kernel and the dequantizer (w4a16.cu) and by the wgmma kernel (w4a16_wgmma.cu).
#pragma once

#include <string.h>

#include "common.cuh"

namespace lmb {

__device__ __forceinline__ half2 as_half2(uint32_t u) {
    half2 h;
    memcpy(&h, &u, 4);
    return h;
}

__device__ __forceinline__ uint32_t half2_bits(half2 h) {
    uint32_t u;
    memcpy(&u, &h, 4);
    return u;
}

// The codes of inputs 8j+2p and 8j+2p+1 of word j (nibbles p and p+4: LMB_AWQ_ORDER) as the fp16 pair
// (1024 + q_lo, 1024 + q_hi): 0x6400 is 1024, whose ulp is 1, so OR-ing a 4-bit code into the mantissa adds it.
__device__ __forceinline__ half2 pair_1024(uint32_t w, int p) {
    return as_half2(((w >> (4 * p)) & 0x000F000Fu) | 0x64006400u);
}

// Zero point of group g of row n.
__device__ __forceinline__ uint32_t zero_of(const uint32_t *__restrict__ qz, size_t n, int ZW, int g) {
    return (__ldg(qz + n * ZW + g / 8) >> (4 * (g % 8))) & 15u;
}

// (q - z) * s for a pair, rounded once to fp16 — the CPU's fp16((q - z) * s) bit for bit: (1024 + q) - (1024 + z)
// is exact.  zp = (1024 + z) in both halves, s2 = s in both halves.
__device__ __forceinline__ half2 dequant_pair(uint32_t w, int p, half2 zp, half2 s2) {
    return __hmul2(__hsub2(pair_1024(w, p), zp), s2);
}

__device__ __forceinline__ half2 zero_pair(uint32_t z) { return as_half2((0x6400u | z) * 0x00010001u); }

// The gemv's arithmetic for one unit of VEC words (8 VEC inputs, one group) of a row, shared by the gemv
// (w4a16.cu, M <= 2) and the decode step kernel (w4a16_step.cu) so that both give the same bits:
//   gemv_c(z): -(1024 + z) / 16 in both halves; (1024 + q) / 16 + that = (q - z) / 16 exactly;
//   gemv_unit: acc[m] = sum over the unit's pairs of x[m] * (q - z) / 16, one fp16 pair per x row (weights
//              dequantized once for the M rows);
//   the caller then adds fmaf(16 * scale, lo + hi, total) in fp32.
__device__ __forceinline__ half2 gemv_c(uint32_t z) { return __float2half2_rn(-64.f - 0.0625f * (float)z); }
template <int VEC, int M>
__device__ __forceinline__ void gemv_unit(half2 (&acc)[M], const uint32_t (&w)[VEC], half2 c,
                                          const half2 (&x)[M][4 * VEC]) {
    const half2 sixteenth = __float2half2_rn(0.0625f);
#pragma unroll
    for (int m = 0; m < M; m++) acc[m] = __float2half2_rn(0.f);
#pragma unroll
    for (int v = 0; v < VEC; v++)
#pragma unroll
        for (int p = 0; p < 4; p++) {
            const half2 d = __hfma2(pair_1024(w[v], p), sixteenth, c); // (q - z) / 16, exact
#pragma unroll
            for (int m = 0; m < M; m++) acc[m] = __hfma2(x[m][4 * v + p], d, acc[m]);
        }
}

} // namespace lmb
