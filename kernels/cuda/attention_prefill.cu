// attention_prefill.cu — causal flash attention over the paged KV cache on tensor cores (FlashAttention-2
// style), head_dim 64 or 128, fp16/bf16 in, fp32 accumulation.  CPU reference: kernels/cpu/attention.c.
//
// A CTA takes one work item: 64 query rows (tokens) of one sequence and one head; its 4 warps own 16 rows
// each.  Q fragments stay in registers; key/value tiles of 64 positions are gathered from the cache
// through the block table into shared memory; S = Q K^T and O += P V use mma.m16n8k16 with the softmax
// kept online (running max and sum per row, in exp2 domain).  Rows attend to keys 0..their position.
// Version history: v1 (this) — plain 32-bit shared loads for fragments, no cp.async pipelining.
// Quantized caches (BITS 8 / 4, kernels/kv_quant.h): the gather reads each 8-element chunk as 8 or 4 bytes plus
// the row's {fp16 scale, zero}, dequantizes in registers (u * scale + zero) and stores the chunk to shared
// memory in T, so the MMA part is the same for every cache type.
#include "common.cuh"

using namespace lmb;

namespace {

template <typename T> struct MMA;
template <> struct MMA<half> {
    static __device__ __forceinline__ void run(float *d, const uint32_t *a, const uint32_t *b) {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                     "{%0,%1,%2,%3};\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    }
    static __device__ __forceinline__ uint32_t pack(float x, float y) {
        __half2 h = __floats2half2_rn(x, y);
        return *reinterpret_cast<uint32_t *>(&h);
    }
};
template <> struct MMA<__nv_bfloat16> {
    static __device__ __forceinline__ void run(float *d, const uint32_t *a, const uint32_t *b) {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                     "{%0,%1,%2,%3};\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    }
    static __device__ __forceinline__ uint32_t pack(float x, float y) {
        __nv_bfloat162 h = __floats2bfloat162_rn(x, y);
        return *reinterpret_cast<uint32_t *>(&h);
    }
};

template <typename T> __device__ __forceinline__ uint32_t pack2(T lo, T hi) {
    uint16_t a = *reinterpret_cast<uint16_t *>(&lo), b = *reinterpret_cast<uint16_t *>(&hi);
    return (uint32_t)a | ((uint32_t)b << 16);
}

constexpr int BM = 64, BN = 64;

struct Args {
    const int32_t *q_start, *tok_seq, *positions, *block_tables, *tiles;
    int max_blocks, nh, nkv, bs;
    float scale_log2; // softmax scale * log2(e)
    size_t tile_bytes; // one (block, head) tile of the cache
    int row_bytes, param_off;
};

// 8 elements of a cached row at `row + col` (col a multiple of 8) as 8 T values packed in a uint4.
template <typename T, int BITS> struct Chunk;
template <typename T> struct Chunk<T, 16> {
    static __device__ __forceinline__ uint4 load(const uint8_t *tile, const uint8_t *row, int col, const Args &, int) {
        return *reinterpret_cast<const uint4 *>(row + (size_t)col * 2);
    }
};
template <typename T, int BITS> struct Chunk {
    static __device__ __forceinline__ uint4 load(const uint8_t *tile, const uint8_t *row, int col, const Args &a, int off) {
        const float2 sz = __half22float2(*reinterpret_cast<const __half2 *>(tile + a.param_off + (size_t)off * 4));
        uint32_t w[2];
        if (BITS == 8) {
            uint2 r = *reinterpret_cast<const uint2 *>(row + col);
            w[0] = r.x, w[1] = r.y;
        } else {
            w[0] = *reinterpret_cast<const uint32_t *>(row + col / 2);
        }
        uint4 outv;
        T *o = reinterpret_cast<T *>(&outv);
#pragma unroll
        for (int i = 0; i < 8; i++) {
            uint32_t u = BITS == 8 ? (w[i / 4] >> (8 * (i % 4))) & 255u : (w[0] >> (4 * i)) & 15u;
            o[i] = from_f<T>((float)u * sz.x + sz.y);
        }
        return outv;
    }
};

template <typename T, int HD, int BITS>
__global__ void __launch_bounds__(128) prefill_kernel(T *out, const T *qkv, const uint8_t *kc, const uint8_t *vc, Args a) {
    constexpr int LD = HD + 8; // padded shared row: conflict-free fragment loads
    __shared__ __align__(16) T Ks[BN * LD];
    __shared__ __align__(16) T Vs[BN * LD];
    const int seq = a.tiles[2 * blockIdx.x], q0 = a.tiles[2 * blockIdx.x + 1], h = blockIdx.y;
    const int q_end = a.q_start[seq + 1];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, c = lane & 3;
    const int kvh = h / (a.nh / a.nkv);
    const size_t row_stride = (size_t)(a.nh + 2 * a.nkv) * HD;
    const int32_t *bt = a.block_tables + (size_t)seq * a.max_blocks;

    // the two query rows this thread holds parts of, and their positions (-1: beyond the chunk)
    const int r0 = q0 + warp * 16 + g, r1 = r0 + 8;
    const int p0 = r0 < q_end ? a.positions[r0] : -1, p1 = r1 < q_end ? a.positions[r1] : -1;
    const int last_row = min(q0 + BM, q_end) - 1;
    const int n_keys = a.positions[last_row] + 1;

    // Q fragments (A operand, 16 x HD per warp) straight from global memory
    uint32_t qf[HD / 16][4];
    {
        const T *qa = qkv + (size_t)(p0 >= 0 ? r0 : q0) * row_stride + (size_t)h * HD;
        const T *qb = qkv + (size_t)(p1 >= 0 ? r1 : q0) * row_stride + (size_t)h * HD;
#pragma unroll
        for (int k = 0; k < HD / 16; k++) {
            qf[k][0] = *reinterpret_cast<const uint32_t *>(qa + k * 16 + 2 * c);
            qf[k][1] = *reinterpret_cast<const uint32_t *>(qb + k * 16 + 2 * c);
            qf[k][2] = *reinterpret_cast<const uint32_t *>(qa + k * 16 + 2 * c + 8);
            qf[k][3] = *reinterpret_cast<const uint32_t *>(qb + k * 16 + 2 * c + 8);
        }
    }
    float o[HD / 8][4];
#pragma unroll
    for (int n = 0; n < HD / 8; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
    float m0 = -1e30f, m1 = -1e30f, l0 = 0.f, l1 = 0.f;

    for (int kt = 0; kt * BN < n_keys; kt++) {
        // gather the K/V tile: 64 positions x HD, 16 bytes per load
        __syncthreads();
        constexpr int CHUNKS = BN * HD / 8;
        for (int i = threadIdx.x; i < CHUNKS; i += blockDim.x) {
            int r = i / (HD / 8), col = (i % (HD / 8)) * 8, pos = kt * BN + r;
            uint4 kv = make_uint4(0, 0, 0, 0), vv = make_uint4(0, 0, 0, 0);
            if (pos < n_keys) {
                size_t tile = ((size_t)bt[pos / a.bs] * a.nkv + kvh) * a.tile_bytes;
                size_t row = tile + (size_t)(pos % a.bs) * a.row_bytes;
                kv = Chunk<T, BITS>::load(kc + tile, kc + row, col, a, pos % a.bs);
                vv = Chunk<T, BITS>::load(vc + tile, vc + row, col, a, pos % a.bs);
            }
            *reinterpret_cast<uint4 *>(&Ks[r * LD + col]) = kv;
            *reinterpret_cast<uint4 *>(&Vs[r * LD + col]) = vv;
        }
        __syncthreads();

        // S = Q K^T for this warp's 16 rows x 64 keys
        float s[BN / 8][4];
#pragma unroll
        for (int n = 0; n < BN / 8; n++) {
            s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
            for (int k = 0; k < HD / 16; k++) {
                uint32_t b[2];
                b[0] = *reinterpret_cast<const uint32_t *>(&Ks[(n * 8 + g) * LD + k * 16 + 2 * c]);
                b[1] = *reinterpret_cast<const uint32_t *>(&Ks[(n * 8 + g) * LD + k * 16 + 2 * c + 8]);
                MMA<T>::run(s[n], qf[k], b);
            }
        }
        // causal mask + online softmax (rows g and g+8 of the warp's tile)
        float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
        for (int n = 0; n < BN / 8; n++) {
            int key = kt * BN + n * 8 + 2 * c;
            s[n][0] = key <= p0 ? s[n][0] : -INFINITY;
            s[n][1] = key + 1 <= p0 ? s[n][1] : -INFINITY;
            s[n][2] = key <= p1 ? s[n][2] : -INFINITY;
            s[n][3] = key + 1 <= p1 ? s[n][3] : -INFINITY;
            mx0 = fmaxf(mx0, fmaxf(s[n][0], s[n][1]));
            mx1 = fmaxf(mx1, fmaxf(s[n][2], s[n][3]));
        }
#pragma unroll
        for (int off = 1; off < 4; off <<= 1) {
            mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, off));
            mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, off));
        }
        float nm0 = fmaxf(m0, mx0 * a.scale_log2), nm1 = fmaxf(m1, mx1 * a.scale_log2);
        float corr0 = exp2f(m0 - nm0), corr1 = exp2f(m1 - nm1);
        m0 = nm0;
        m1 = nm1;
        float sum0 = 0.f, sum1 = 0.f;
        uint32_t pf[BN / 16][4]; // P as A fragments: key k-steps of 16
#pragma unroll
        for (int n = 0; n < BN / 8; n++) {
            float e0 = exp2f(s[n][0] * a.scale_log2 - m0), e1 = exp2f(s[n][1] * a.scale_log2 - m0);
            float e2 = exp2f(s[n][2] * a.scale_log2 - m1), e3 = exp2f(s[n][3] * a.scale_log2 - m1);
            sum0 += e0 + e1;
            sum1 += e2 + e3;
            pf[n / 2][(n & 1) * 2 + 0] = MMA<T>::pack(e0, e1);
            pf[n / 2][(n & 1) * 2 + 1] = MMA<T>::pack(e2, e3);
        }
        l0 = l0 * corr0 + sum0;
        l1 = l1 * corr1 + sum1;
#pragma unroll
        for (int n = 0; n < HD / 8; n++) {
            o[n][0] *= corr0;
            o[n][1] *= corr0;
            o[n][2] *= corr1;
            o[n][3] *= corr1;
        }
        // O += P V: B operand = V (keys x head dims), elements (key 2c, 2c+1 | +8, dim g)
#pragma unroll
        for (int k = 0; k < BN / 16; k++) {
#pragma unroll
            for (int n = 0; n < HD / 8; n++) {
                uint32_t b[2];
                const T *v0 = &Vs[(k * 16 + 2 * c) * LD + n * 8 + g];
                b[0] = pack2<T>(v0[0], v0[LD]);
                b[1] = pack2<T>(v0[8 * LD], v0[9 * LD]);
                MMA<T>::run(o[n], pf[k], b);
            }
        }
    }
    // row sums across the 4 threads of a group, normalise, store
#pragma unroll
    for (int off = 1; off < 4; off <<= 1) {
        l0 += __shfl_xor_sync(0xffffffffu, l0, off);
        l1 += __shfl_xor_sync(0xffffffffu, l1, off);
    }
    float inv0 = l0 > 0 ? 1.f / l0 : 0.f, inv1 = l1 > 0 ? 1.f / l1 : 0.f;
#pragma unroll
    for (int n = 0; n < HD / 8; n++) {
        if (p0 >= 0) {
            T *dst = out + ((size_t)r0 * a.nh + h) * HD + n * 8 + 2 * c;
            *reinterpret_cast<uint32_t *>(dst) = MMA<T>::pack(o[n][0] * inv0, o[n][1] * inv0);
        }
        if (p1 >= 0) {
            T *dst = out + ((size_t)r1 * a.nh + h) * HD + n * 8 + 2 * c;
            *reinterpret_cast<uint32_t *>(dst) = MMA<T>::pack(o[n][2] * inv1, o[n][3] * inv1);
        }
    }
}

} // namespace

extern "C" int lmb_cuda_attention_prefill_supported(int hd) { return hd == 64 || hd == 128; }

template <typename E, int BITS>
static void launch(int hd, dim3 grid, lmb_stream s, void *out, const void *qkv, const void *kc, const void *vc,
                   const Args &a) {
    if (hd == 64)
        prefill_kernel<E, 64, BITS><<<grid, 128, 0, s>>>((E *)out, (const E *)qkv, (const uint8_t *)kc,
                                                         (const uint8_t *)vc, a);
    else
        prefill_kernel<E, 128, BITS><<<grid, 128, 0, s>>>((E *)out, (const E *)qkv, (const uint8_t *)kc,
                                                          (const uint8_t *)vc, a);
}

extern "C" int lmb_cuda_attention_prefill_kvq(void *out, const void *qkv, const void *k_cache, const void *v_cache,
                                              const lmb_cuda_seqs *seqs, const int32_t *tiles, int n_tiles, int nh,
                                              int nkv, int hd, int block_size, float scale, int kv_bits,
                                              lmb_cuda_dtype dt, lmb_stream s) {
    if (n_tiles <= 0) return 0;
    if (!lmb_cuda_attention_prefill_supported(hd)) return (int)cudaErrorInvalidValue;
    if (kv_bits != 16 && kv_bits != 8 && kv_bits != 4) return (int)cudaErrorInvalidValue;
    Args a = {seqs->q_start, seqs->tok_seq, seqs->positions, seqs->block_tables, tiles, seqs->max_blocks, nh, nkv,
              block_size, scale * 1.4426950408889634f, lmb_kv_tile_bytes(hd, kv_bits, block_size),
              (int)lmb_kv_row_bytes(hd, kv_bits), (int)lmb_kv_param_offset(hd, kv_bits, block_size)};
    dim3 grid(n_tiles, nh);
    LMB_DISPATCH(dt, E, {
        if (kv_bits == 16) launch<E, 16>(hd, grid, s, out, qkv, k_cache, v_cache, a);
        else if (kv_bits == 8) launch<E, 8>(hd, grid, s, out, qkv, k_cache, v_cache, a);
        else launch<E, 4>(hd, grid, s, out, qkv, k_cache, v_cache, a);
    });
    return LMB_LAUNCH_RESULT();
}

extern "C" int lmb_cuda_attention_prefill(void *out, const void *qkv, const void *k_cache, const void *v_cache,
                                          const lmb_cuda_seqs *seqs, const int32_t *tiles, int n_tiles, int nh,
                                          int nkv, int hd, int block_size, float scale, lmb_cuda_dtype dt,
                                          lmb_stream s) {
    return lmb_cuda_attention_prefill_kvq(out, qkv, k_cache, v_cache, seqs, tiles, n_tiles, nh, nkv, hd, block_size,
                                          scale, 16, dt, s);
}
