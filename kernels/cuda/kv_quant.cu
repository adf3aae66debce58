// kv_quant.cu — the quantizing KV write (int8 / int4, format in kernels/kv_quant.h; CPU reference:
// lmb_kv_quantize_row in kernels/cpu/kv_quant.c) and the RoPE + quantized write entry point.
//
// One warp per (token, K|V, KV head) row: each lane holds element pairs (2p, 2p+1), p = lane, lane + 32, ...
// (head_dim <= 256: at most 4 pairs), the row's min/max is reduced by shuffles, zero and scale are rounded
// toward -inf / +inf in fp16 (so the codes cover the row), then each lane writes its pairs' codes (2 bytes
// for int8, 1 for int4) and lane 0 the {scale, zero} pair.  With offline parameters (`fixed`) the reduction
// is skipped.  K is read after RoPE from the qkv buffer (rotated in place by rope_kv_kernel, in 16 bits).
#include "common.cuh"

using namespace lmb;

namespace {

template <typename T, int BITS>
__global__ void kv_quant_kernel(const T *qkv, uint8_t *kc, uint8_t *vc, const int64_t *slots, const float *fixed, int T_,
                                int nh, int nkv, int hd, int bs, size_t tile_bytes, size_t param_off) {
    constexpr int Q = (1 << BITS) - 1;
    const int warp = (int)((blockIdx.x * (size_t)blockDim.x + threadIdx.x) >> 5), lane = threadIdx.x & 31;
    if (warp >= T_ * 2 * nkv) return; // warp-uniform
    const int t = warp / (2 * nkv), r = warp % (2 * nkv), kv = r / nkv, h = r % nkv;
    const int64_t slot = slots[t];
    if (slot < 0) return;
    const T *x = qkv + (size_t)t * (nh + 2 * nkv) * hd + (size_t)(nh + kv * nkv + h) * hd;
    const int pairs = hd / 2;
    float v[8];
    float mn = INFINITY, mx = -INFINITY;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        int p = lane + 32 * i;
        v[2 * i] = v[2 * i + 1] = 0.f;
        if (p < pairs) {
            v[2 * i] = to_f(x[2 * p]);
            v[2 * i + 1] = to_f(x[2 * p + 1]);
            mn = fminf(mn, fminf(v[2 * i], v[2 * i + 1]));
            mx = fmaxf(mx, fmaxf(v[2 * i], v[2 * i + 1]));
        }
    }
    float scale, zero;
    if (fixed) {
        scale = fixed[(kv * nkv + h) * 2];
        zero = fixed[(kv * nkv + h) * 2 + 1];
    } else {
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            mn = fminf(mn, __shfl_xor_sync(0xffffffffu, mn, o));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
        }
        zero = __half2float(__float2half_rd(mn));
        scale = __half2float(__float2half_ru((mx - zero) / (float)Q));
    }
    uint8_t *tile = (kv ? vc : kc) + ((size_t)(slot / bs) * nkv + h) * tile_bytes;
    const int off = (int)(slot % bs);
    uint8_t *codes = tile + (size_t)off * (size_t)(hd * BITS / 8);
#pragma unroll
    for (int i = 0; i < 4; i++) {
        int p = lane + 32 * i;
        if (p >= pairs) break;
        int u[2];
#pragma unroll
        for (int e = 0; e < 2; e++) {
            float q = scale > 0.f ? rintf((v[2 * i + e] - zero) / scale) : 0.f;
            u[e] = q > (float)Q ? Q : q > 0.f ? (int)q : 0;
        }
        if (BITS == 8)
            *reinterpret_cast<uint16_t *>(codes + 2 * p) = (uint16_t)(u[0] | (u[1] << 8));
        else
            codes[p] = (uint8_t)(u[0] | (u[1] << 4));
    }
    if (lane == 0) {
        __half2 sz = __halves2half2(__float2half_rn(scale), __float2half_rn(zero));
        *reinterpret_cast<__half2 *>(tile + param_off + (size_t)off * 4) = sz;
    }
}

} // namespace

extern "C" int lmb_cuda_kv_quant_write(const void *qkv, void *k_cache, void *v_cache, const int64_t *slots,
                                       const float *fixed, int T, int nh, int nkv, int hd, int block_size, int kv_bits,
                                       lmb_cuda_dtype dt, lmb_stream s) {
    if (T <= 0) return 0;
    if ((kv_bits != 8 && kv_bits != 4) || hd % 2 || hd > 256) return (int)cudaErrorInvalidValue;
    const size_t tile = lmb_kv_tile_bytes(hd, kv_bits, block_size), poff = lmb_kv_param_offset(hd, kv_bits, block_size);
    const int warps = T * 2 * nkv, blocks = (warps + 3) / 4;
    LMB_DISPATCH(dt, E, {
        if (kv_bits == 8)
            kv_quant_kernel<E, 8><<<blocks, 128, 0, s>>>((const E *)qkv, (uint8_t *)k_cache, (uint8_t *)v_cache, slots,
                                                          fixed, T, nh, nkv, hd, block_size, tile, poff);
        else
            kv_quant_kernel<E, 4><<<blocks, 128, 0, s>>>((const E *)qkv, (uint8_t *)k_cache, (uint8_t *)v_cache, slots,
                                                          fixed, T, nh, nkv, hd, block_size, tile, poff);
    });
    return LMB_LAUNCH_RESULT();
}

extern "C" int lmb_cuda_rope_kv_write_kvq(void *qkv, void *k_cache, void *v_cache, const int32_t *positions,
                                          const int64_t *slots, const float *inv_freq, const float *fixed, int T, int nh,
                                          int nkv, int hd, int block_size, int kv_bits, lmb_cuda_dtype dt, lmb_stream s) {
    if (kv_bits == 16)
        return lmb_cuda_rope_kv_write(qkv, k_cache, v_cache, positions, slots, inv_freq, T, nh, nkv, hd, block_size,
                                      dt, s);
    // rotate q and k in place (no slots: nothing written), then quantize k and v into the cache
    int e = lmb_cuda_rope_kv_write(qkv, NULL, NULL, positions, NULL, inv_freq, T, nh, nkv, hd, block_size, dt, s);
    if (e) return e;
    return lmb_cuda_kv_quant_write(qkv, k_cache, v_cache, slots, fixed, T, nh, nkv, hd, block_size, kv_bits, dt, s);
}
