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

} // namespace lmb
