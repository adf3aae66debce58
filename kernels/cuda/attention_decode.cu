// attention_decode.cu — paged attention on CUDA cores, any head_dim <= 256 (CPU reference:
// kernels/cpu/attention.c).  The decode path, and the fallback for head dims the tensor-core prefill
// kernel does not take.
//
// Grid (row, head group, split): a CTA (4 warps) attends one query row of G query heads sharing a KV head
// (GQA; G = 4, 2 or 1 dividing nh/nkv, LMB_ATTN_GQA=1 for one head per CTA) to keys
// [split*L, min(ctx, (split+1)*L)) of its sequence: each K/V row is read and converted once for the G heads
// (H100, Llama-3-8B shape, 64 rows x ctx 4096: decode step 35.9 -> 24.1 ms fp16 KV, 44.5 -> 27.2 ms int8).
// A row whose context fits one split writes its output directly; longer rows write (max, sum,
// unnormalised out) partials that are combined (flash-decoding): by the last of the row's split CTAs to finish,
// which it learns from a per-row ticket (atomicAdd after a fence; the default: W4A16 bs1 +0.9-1.5% on the H100,
// the same bits), or by merge_kernel when the caller passes no tickets (LMB_ATTN_MERGE=kernel; decode_generic).
// CTAs past a row's context exit at once, so the grid can be sized for the largest context (CUDA graphs).
//
// decode_kernel (head_dim in {8, 16, 32, 64, 128, 256}): LPK = head_dim/8 lanes share one key row, each lane
// holding 8 dims (one 16-byte load), so a warp reads 32/LPK whole rows per instruction, coalesced; U rows per
// lane are loaded before any is used, to keep loads in flight.  Scores go to shared memory, then the same
// lane layout accumulates P·V in registers, reduced across key slots by shuffles and across warps in shared
// memory.  decode_generic (other head dims): one thread per key for QK, threads over dims for PV.
//
// Quantized caches (BITS 8 / 4, kernels/kv_quant.h): the same kernels with each lane's dims loaded as bytes
// plus the row's {fp16 scale, zero} (4 bytes, the same address for the LPK lanes of a row: one broadcast
// transaction).  A lane's codes u become the exact floats 1024 + u (fp16 under a byte permute or a mask, one
// conversion each); a row's dot is scale * (q . (1024 + u)) + (zero - 1024 * scale) * sum(q), and P.V adds
// (p * scale) * (1024 + u) plus p * (zero - 1024 * scale) once per row.  Rows are addressed in bytes through
// the tile size, so BITS 16 runs the same instructions as before.
// Versions of the quantized path: v2 — 8 elements per lane, codes as 2^23 + u minus 2^23 (two operations per
// element); at 4 heads per CTA int8 cost more instructions per byte than fp16 and was issue-bound (int8 27.2 ms
// per step against fp16's 24.1).  v3 (reverted) — more rows in flight: slower.  v4 (this) — 16 elements per
// lane for head dims 64/128/256 (one 16-byte int8 load, a shuffle level fewer per row), the 1024 + u codes, and
// the heads' dots reduce-scattered across a row's lanes (all widths): int8 22.2 ms per step, fp16 23.3.
// LMB_ATTN_EPL=8 runs v2's lane layout, LMB_ATTN_U=4 twice the rows in flight (both slower: 24.8, 25.2 ms).
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "common.cuh"

using namespace lmb;

namespace {

struct Args {
    const int32_t *tok_seq, *positions, *block_tables, *rows;
    int max_blocks, nh, nkv, hd, bs, split_len, max_splits;
    float scale;
    float *partial;
    unsigned *tickets; // per (row, first head of the CTA): split CTAs done; NULL: merge_kernel merges
    size_t tile_bytes; // one (block, head) tile: lmb_kv_tile_bytes(hd, BITS, bs)
    int row_bytes;     // one token's row of codes (or elements)
    int param_off;     // quantized: offset of the {scale, zero} pairs in a tile
};

// The raw bytes one lane loads of a row (8 or 16 elements of BITS bits), as one 4-, 8- or 16-byte load.
template <int BYTES> struct RawOf;
template <> struct RawOf<16> {
    using T = uint4;
    static __device__ __forceinline__ T zero() { return make_uint4(0, 0, 0, 0); }
};
template <> struct RawOf<8> {
    using T = uint2;
    static __device__ __forceinline__ T zero() { return make_uint2(0, 0); }
};
template <> struct RawOf<4> {
    using T = uint32_t;
    static __device__ __forceinline__ T zero() { return 0u; }
};

// The {scale, zero} of row `off` of a quantized tile (unused for BITS 16).
template <int BITS> __device__ __forceinline__ float2 row_params(const uint8_t *tile, int param_off, int off) {
    if (BITS == 16) return make_float2(1.f, 0.f);
    __half2 h = *reinterpret_cast<const __half2 *>(tile + param_off + (size_t)off * 4);
    return __half22float2(h);
}

// Element d of a row (generic kernel).
template <typename T, int BITS> __device__ __forceinline__ float row_elem(const uint8_t *row, int d, float2 sz) {
    if (BITS == 16) return to_f(reinterpret_cast<const T *>(row)[d]);
    if (BITS == 8) return (float)row[d] * sz.x + sz.y;
    return (float)((row[d >> 1] >> (4 * (d & 1))) & 15) * sz.x + sz.y;
}

template <typename T, bool VEC, int BITS>
__global__ void __launch_bounds__(128) decode_generic(T *out, const T *qkv, const uint8_t *kc, const uint8_t *vc, Args a) {
    extern __shared__ float smem[];
    pdl_trigger(); // the o projection's W4A16 gemv (PDL), where no merge follows, may start launching
    const int r = blockIdx.x, h = blockIdx.y, sp = blockIdx.z, tid = threadIdx.x;
    const int t = a.rows ? a.rows[r] : r;
    const int ctx = a.positions[t] + 1;
    const int n_splits = (ctx + a.split_len - 1) / a.split_len;
    if (sp >= n_splits) return;
    const int j0 = sp * a.split_len, n = min(ctx - j0, a.split_len);
    const int hd = a.hd, kvh = h / (a.nh / a.nkv), bs = a.bs;
    const int32_t *bt = a.block_tables + (size_t)a.tok_seq[t] * a.max_blocks;
    float *qs = smem, *sc = smem + 256;
    __shared__ float red[32];

    const T *q = qkv + (size_t)t * (a.nh + 2 * a.nkv) * hd + (size_t)h * hd;
    for (int d = tid; d < hd; d += blockDim.x) qs[d] = to_f(q[d]) * a.scale;
    __syncthreads();

    float lmax = -INFINITY;
    for (int j = tid; j < n; j += blockDim.x) {
        int pos = j0 + j;
        const uint8_t *tile = kc + ((size_t)bt[pos / bs] * a.nkv + kvh) * a.tile_bytes;
        const uint8_t *k = tile + (size_t)(pos % bs) * a.row_bytes;
        float dot = 0.f;
        if (VEC && BITS == 16) {
            for (int d = 0; d < hd; d += 8) {
                uint4 raw = *reinterpret_cast<const uint4 *>(reinterpret_cast<const T *>(k) + d);
                const T *kv8 = reinterpret_cast<const T *>(&raw);
#pragma unroll
                for (int e = 0; e < 8; e++) dot += qs[d + e] * to_f(kv8[e]);
            }
        } else {
            const float2 sz = row_params<BITS>(tile, a.param_off, pos % bs);
            for (int d = 0; d < hd; d++) dot += qs[d] * row_elem<T, BITS>(k, d, sz);
        }
        sc[j] = dot;
        lmax = fmaxf(lmax, dot);
    }
    const float m = block_max(lmax, red);
    float lsum = 0.f;
    for (int j = tid; j < n; j += blockDim.x) {
        float p = __expf(sc[j] - m);
        sc[j] = p;
        lsum += p;
    }
    const float l = block_sum(lsum, red); // its barriers also publish sc[]

    float *part = a.partial + (((size_t)r * a.nh + h) * a.max_splits + sp) * (hd + 2);
    for (int d = tid; d < hd; d += blockDim.x) {
        float acc = 0.f;
        for (int j = 0; j < n; j++) {
            int pos = j0 + j;
            const uint8_t *tile = vc + ((size_t)bt[pos / bs] * a.nkv + kvh) * a.tile_bytes;
            const float2 sz = row_params<BITS>(tile, a.param_off, pos % bs);
            acc += sc[j] * row_elem<T, BITS>(tile + (size_t)(pos % bs) * a.row_bytes, d, sz);
        }
        if (n_splits == 1) out[((size_t)t * a.nh + h) * hd + d] = from_f<T>(acc / l);
        else part[2 + d] = acc;
    }
    if (n_splits > 1 && tid == 0) {
        part[0] = m;
        part[1] = l;
    }
}

// A lane's EPL elements as floats: for BITS 16 the elements themselves; for quantized rows 1024 + u (u the
// code), exact: a byte permute (int8) or a mask (int4) puts two codes under the fp16 exponent of 1024, and one
// conversion per element makes floats of them (v2 built 2^23 + u floats and subtracted 2^23: two operations
// per element).  The row's element is then (1024 + u) * scale + (zero - 1024 * scale).
template <int W> __device__ __forceinline__ const uint32_t *words(const typename RawOf<W>::T &r) {
    return reinterpret_cast<const uint32_t *>(&r);
}
__device__ __forceinline__ float2 h2f(uint32_t v) { return __half22float2(*reinterpret_cast<const __half2 *>(&v)); }
// {scale, zero - 1024 * scale}: the row's parameters for codes read as 1024 + u.
template <int BITS> __device__ __forceinline__ float2 code_params(const uint8_t *tile, int param_off, int off) {
    const float2 sz = row_params<BITS>(tile, param_off, off);
    return make_float2(sz.x, fmaf(-1024.f, sz.x, sz.y));
}
template <typename T, int BITS, int EPL> struct Codes;
template <typename T, int EPL> struct Codes<T, 16, EPL> {
    static __device__ __forceinline__ void get(const uint4 &r, float *x) {
        const T *e = reinterpret_cast<const T *>(&r);
#pragma unroll
        for (int i = 0; i < 8; i++) x[i] = to_f(e[i]);
    }
};
template <typename T, int EPL> struct Codes<T, 8, EPL> { // element 4i + b in byte b of word i
    static __device__ __forceinline__ void get(const typename RawOf<EPL>::T &r, float *x) {
#pragma unroll
        for (int i = 0; i < EPL / 4; i++) {
            const uint32_t w = words<EPL>(r)[i];
            const float2 a = h2f(__byte_perm(w, 0x64646464u, 0x4140u)), b = h2f(__byte_perm(w, 0x64646464u, 0x4342u));
            x[4 * i] = a.x, x[4 * i + 1] = a.y, x[4 * i + 2] = b.x, x[4 * i + 3] = b.y;
        }
    }
};
template <typename T, int EPL> struct Codes<T, 4, EPL> { // element 8i + e in bits 4e..4e+3 of word i
    static __device__ __forceinline__ void get(const typename RawOf<EPL / 2>::T &r, float *x) {
#pragma unroll
        for (int i = 0; i < EPL / 8; i++) {
            const uint32_t w = words<EPL / 2>(r)[i];
#pragma unroll
            for (int p = 0; p < 4; p++) { // elements p and p + 4
                const float2 a = h2f(((w >> (4 * p)) & 0x000F000Fu) | 0x64006400u);
                x[8 * i + p] = a.x, x[8 * i + p + 4] = a.y;
            }
        }
    }
};

// Combines head h's ns > 1 split partials of row r (token t) into out (threads over the dims).  The partials
// are read past L1 (__ldcg): in decode_kernel's last CTA they were written by other CTAs.
template <typename T> __device__ void merge_head(T *out, const Args &a, int r, int t, int h, int ns) {
    const float *part = a.partial + ((size_t)r * a.nh + h) * a.max_splits * (a.hd + 2);
    float M = -INFINITY;
    for (int s = 0; s < ns; s++) M = fmaxf(M, __ldcg(part + s * (a.hd + 2)));
    float L = 0.f;
    for (int s = 0; s < ns; s++) L += __ldcg(part + s * (a.hd + 2) + 1) * __expf(__ldcg(part + s * (a.hd + 2)) - M);
    for (int d = threadIdx.x; d < a.hd; d += blockDim.x) {
        float o = 0.f;
        for (int s = 0; s < ns; s++)
            o += __ldcg(part + s * (a.hd + 2) + 2 + d) * __expf(__ldcg(part + s * (a.hd + 2)) - M);
        out[((size_t)t * a.nh + h) * a.hd + d] = from_f<T>(o / L);
    }
}

// G query heads of one KV head per CTA (GQA): each K/V row is loaded and converted once and used G times.
// With the codes u, a quantized row's dot is scale * (q . u) + zero * sum(q), and P.V accumulates
// (p * scale) * u plus p * zero once per row, so the inner loops are one FMA per element and head.
// U rows per lane in flight (measured with 8 elements per lane: scaling U up for the smaller int8/int4 rows made
// both slower).
template <typename T, int LPK, int BITS, int G, int EPL, int U>
__global__ void __launch_bounds__(128) decode_kernel(T *out, const T *qkv, const uint8_t *kc, const uint8_t *vc, Args a) {
    constexpr int HD = LPK * EPL, KPW = 32 / LPK, STEP = 4 * KPW, LB = EPL * BITS / 8;
    using Raw = typename RawOf<LB>::T;
    extern __shared__ float smem[];
    pdl_trigger(); // the o projection's W4A16 gemv (PDL), where no merge follows, may start launching
    const int r = blockIdx.x, h0 = blockIdx.y * G, sp = blockIdx.z, tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
    const int t = a.rows ? a.rows[r] : r;
    const int ctx = a.positions[t] + 1;
    const int n_splits = (ctx + a.split_len - 1) / a.split_len;
    if (sp >= n_splits) return;
    const int j0 = sp * a.split_len, n = min(ctx - j0, a.split_len);
    const int kvh = h0 / (a.nh / a.nkv), bs = a.bs, sl = lane % LPK, ks = lane / LPK;
    const int32_t *bt = a.block_tables + (size_t)a.tok_seq[t] * a.max_blocks;
    // (16 bits: the tile size from bs, as v2 computed it — reading a.tile_bytes costs 7 registers, 10 -> 9 CTAs/SM)
    const size_t blk_stride = BITS == 16 ? (size_t)a.nkv * a.bs * HD * BITS / 8 : (size_t)a.nkv * a.tile_bytes;
    constexpr int rb = HD * BITS / 8; // a.row_bytes, known at compile time here
    const int po = a.param_off;
    float *sc = smem, *ored = smem + G * a.split_len; // sc[g * split_len + j]; ored[(w * G + g) * HD + d]
    __shared__ float red[32];

    float q[G][EPL], qsum[G];
#pragma unroll
    for (int g = 0; g < G; g++) {
        qsum[g] = 0.f;
#pragma unroll
        for (int c = 0; c < EPL / 8; c++) {
            uint4 raw = *reinterpret_cast<const uint4 *>(qkv + (size_t)t * (a.nh + 2 * a.nkv) * HD + (size_t)(h0 + g) * HD +
                                                         sl * EPL + c * 8);
            const T *e = reinterpret_cast<const T *>(&raw);
#pragma unroll
            for (int i = 0; i < 8; i++) qsum[g] += (q[g][c * 8 + i] = to_f(e[i]) * a.scale);
        }
    }
    // this lane's EPL dims of row 0 of the head's tile in block 0 (LB bytes per lane)
    const uint8_t *kt = kc + (BITS == 16 ? (size_t)kvh * a.bs * HD * BITS / 8 : (size_t)kvh * a.tile_bytes);
    const uint8_t *vt = vc + (BITS == 16 ? (size_t)kvh * a.bs * HD * BITS / 8 : (size_t)kvh * a.tile_bytes);
    const uint8_t *kl = kt + sl * LB, *vl = vt + sl * LB;

    // SCATTER (G > 1 query heads, at least G lanes per row): a row's dots are reduced across its lanes as a
    // reduce-scatter, fewer shuffles than G butterflies; lane sl ends with head hs's dot
    constexpr bool SCATTER = G > 1 && LPK >= G;
    int hs = 0;
#pragma unroll
    for (int half = G / 2, o = LPK / 2; half >= 1 && SCATTER; half /= 2, o /= 2) hs += sl & o ? half : 0;
    float lmax[G];
#pragma unroll
    for (int g = 0; g < G; g++) lmax[g] = -INFINITY;
    for (int jb = w * KPW; jb < n; jb += STEP * U) { // warp-uniform bound: every lane reaches the shuffles
        Raw raw[U];
        float2 sz[U];
#pragma unroll
        for (int u = 0; u < U; u++) {
            int j = jb + ks + u * STEP;
            raw[u] = RawOf<LB>::zero();
            sz[u] = make_float2(1.f, 0.f);
            if (j < n) {
                int pos = j0 + j;
                const size_t blk = (size_t)bt[pos / bs] * blk_stride;
                raw[u] = *reinterpret_cast<const Raw *>(kl + blk + (size_t)(pos % bs) * rb);
                if (BITS != 16) sz[u] = code_params<BITS>(kt + blk, po, pos % bs);
            }
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            float x[EPL];
            Codes<T, BITS, EPL>::get(raw[u], x);
            const int j = jb + ks + u * STEP;
            float dot[G];
#pragma unroll
            for (int g = 0; g < G; g++) {
                dot[g] = 0.f;
#pragma unroll
                for (int i = 0; i < EPL; i++) dot[g] = fmaf(q[g][i], x[i], dot[g]);
                if (BITS != 16) dot[g] = fmaf(sz[u].x, dot[g], sz[u].y * qsum[g]);
            }
            if constexpr (SCATTER) {
                // reduce-scatter over the row's lanes: each level halves the heads a lane holds (it sends one half
                // of its partial sums to its partner and adds the other half's), then plain levels finish head hs
#pragma unroll
                for (int half = G / 2, o = LPK / 2; half >= 1; half /= 2, o /= 2) {
                    const bool hi = sl & o;
#pragma unroll
                    for (int i = 0; i < half; i++) {
                        const float send = hi ? dot[i] : dot[i + half], keep = hi ? dot[i + half] : dot[i];
                        dot[i] = keep + __shfl_xor_sync(0xffffffffu, send, o);
                    }
                }
#pragma unroll
                for (int o = LPK / (2 * G); o > 0; o >>= 1) dot[0] += __shfl_xor_sync(0xffffffffu, dot[0], o);
                if (j < n) {
                    if ((sl & (LPK / G - 1)) == 0) sc[hs * a.split_len + j] = dot[0];
                    lmax[0] = fmaxf(lmax[0], dot[0]);
                }
            } else {
#pragma unroll
                for (int g = 0; g < G; g++) {
#pragma unroll
                    for (int o = LPK / 2; o > 0; o >>= 1) dot[g] += __shfl_xor_sync(0xffffffffu, dot[g], o);
                    if (j < n) {
                        if (sl == 0) sc[g * a.split_len + j] = dot[g];
                        lmax[g] = fmaxf(lmax[g], dot[g]);
                    }
                }
            }
        }
    }
    if constexpr (SCATTER) { // this lane's maximum is head hs's
        const float mine = lmax[0];
#pragma unroll
        for (int g = 0; g < G; g++) lmax[g] = g == hs ? mine : -INFINITY;
    }
    float m[G], l[G];
#pragma unroll
    for (int g = 0; g < G; g++) m[g] = block_max(lmax[g], red);
#pragma unroll
    for (int g = 0; g < G; g++) {
        float lsum = 0.f;
        for (int j = tid; j < n; j += blockDim.x) {
            float p = __expf(sc[g * a.split_len + j] - m[g]);
            sc[g * a.split_len + j] = p;
            lsum += p;
        }
        l[g] = block_sum(lsum, red); // its barriers also publish sc[]
    }

    float acc[G][EPL], zacc[G];
#pragma unroll
    for (int g = 0; g < G; g++) {
        zacc[g] = 0.f;
#pragma unroll
        for (int i = 0; i < EPL; i++) acc[g][i] = 0.f;
    }
    for (int jb = w * KPW; jb < n; jb += STEP * U) {
        Raw raw[U];
        float2 sz[U];
        int jj[U];
#pragma unroll
        for (int u = 0; u < U; u++) {
            int j = jb + ks + u * STEP;
            raw[u] = RawOf<LB>::zero();
            sz[u] = make_float2(0.f, 0.f); // rows past n add nothing
            jj[u] = -1;
            if (j < n) {
                int pos = j0 + j;
                const size_t blk = (size_t)bt[pos / bs] * blk_stride;
                raw[u] = *reinterpret_cast<const Raw *>(vl + blk + (size_t)(pos % bs) * rb);
                sz[u] = BITS != 16 ? code_params<BITS>(vt + blk, po, pos % bs) : make_float2(1.f, 0.f);
                jj[u] = j;
            }
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            float x[EPL];
            Codes<T, BITS, EPL>::get(raw[u], x);
#pragma unroll
            for (int g = 0; g < G; g++) {
                const float p = jj[u] >= 0 ? sc[g * a.split_len + jj[u]] : 0.f, ps = p * sz[u].x;
                if (BITS != 16) zacc[g] = fmaf(p, sz[u].y, zacc[g]);
#pragma unroll
                for (int i = 0; i < EPL; i++) acc[g][i] = fmaf(ps, x[i], acc[g][i]);
            }
        }
    }
#pragma unroll
    for (int g = 0; g < G; g++) {
#pragma unroll
        for (int i = 0; i < EPL; i++) acc[g][i] += zacc[g];
#pragma unroll
        for (int o = LPK; o < 32; o <<= 1)
#pragma unroll
            for (int i = 0; i < EPL; i++) acc[g][i] += __shfl_xor_sync(0xffffffffu, acc[g][i], o);
        if (ks == 0)
#pragma unroll
            for (int i = 0; i < EPL; i++) ored[(w * G + g) * HD + sl * EPL + i] = acc[g][i];
    }
    __syncthreads();
#pragma unroll
    for (int g = 0; g < G; g++) {
        const int h = h0 + g;
        float *part = a.partial + (((size_t)r * a.nh + h) * a.max_splits + sp) * (HD + 2);
        for (int d = tid; d < HD; d += blockDim.x) {
            float o = ored[g * HD + d] + ored[(G + g) * HD + d] + ored[(2 * G + g) * HD + d] + ored[(3 * G + g) * HD + d];
            if (n_splits == 1) out[((size_t)t * a.nh + h) * HD + d] = from_f<T>(o / l[g]);
            else part[2 + d] = o;
        }
        if (n_splits > 1 && tid == 0) part[0] = m[g], part[1] = l[g];
    }
    if (n_splits == 1 || !a.tickets) return;
    // the last of the row's split CTAs to finish merges its G heads (no merge kernel): each thread's partials
    // are published by its fence before the ticket is taken, and the ticket goes back to 0 for the next launch
    __shared__ bool last;
    __threadfence();
    __syncthreads();
    unsigned *ticket = a.tickets + (size_t)r * a.nh + h0;
    if (tid == 0) last = atomicAdd(ticket, 1u) == (unsigned)n_splits - 1;
    __syncthreads();
    if (!last) return;
    __threadfence();
#pragma unroll
    for (int g = 0; g < G; g++) merge_head(out, a, r, t, h0 + g, n_splits);
    if (tid == 0) *ticket = 0;
}

template <typename T> __global__ void merge_kernel(T *out, Args a) {
    pdl_trigger(); // the o projection's W4A16 gemv (PDL) may start launching
    const int r = blockIdx.x, h = blockIdx.y, t = a.rows ? a.rows[r] : r;
    const int ctx = a.positions[t] + 1, ns = (ctx + a.split_len - 1) / a.split_len;
    if (ns > 1) merge_head(out, a, r, t, h, ns);
}

} // namespace

// LMB_ATTN_DECODE=generic forces the CUDA-core fallback (to compare versions on the GPU machine).
static bool getenv_generic(void) {
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("LMB_ATTN_DECODE");
        v = e && strcmp(e, "generic") == 0;
    }
    return v;
}

// LMB_ATTN_GQA=1 (or 2, 4): at most that many query heads per CTA (default 4), to compare versions.
static int getenv_gqa(void) {
    static int v = INT_MIN;
    const int g = env_knob(&v, "LMB_ATTN_GQA");
    return g == 1 || g == 2 ? g : 4;
}

// Query heads per CTA: the largest of 4, 2, 1 dividing the group size (and allowed by LMB_ATTN_GQA).
static int gqa_heads(int nh, int nkv) {
    int grp = nh / nkv, g = getenv_gqa();
    while (g > 1 && grp % g) g /= 2;
    return g;
}

template <typename E, int LPK, int BITS, int G, int EPL, int U = G >= 4 ? 2 : 4>
static void launch_g(dim3 grid, size_t sh, lmb_stream s, void *out, const void *qkv, const void *kc, const void *vc,
                     const Args &a) {
    grid.y /= G;
    if (sh > 48 * 1024)
        cudaFuncSetAttribute(decode_kernel<E, LPK, BITS, G, EPL, U>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             (int)sh);
    decode_kernel<E, LPK, BITS, G, EPL, U><<<grid, 128, sh, s>>>((E *)out, (const E *)qkv, (const uint8_t *)kc,
                                                                (const uint8_t *)vc, a);
}

// LMB_ATTN_U=4: 4 rows per lane in flight instead of 2 for quantized caches at 16 elements per lane and 4 heads
// per CTA (to compare on the GPU machine).
static bool getenv_u4(void) {
    static int v = INT_MIN;
    return env_knob(&v, "LMB_ATTN_U") == 4;
}

template <typename E, int LPK, int BITS, int EPL>
static void launch_fast(dim3 grid, size_t sh, lmb_stream s, void *out, const void *qkv, const void *kc, const void *vc,
                        const Args &a) {
    const int g = gqa_heads(a.nh, a.nkv);
    const size_t sh_g = sizeof(float) * ((size_t)g * a.split_len + 4 * (size_t)g * LPK * EPL);
    if constexpr (EPL == 16)
        if (g == 4 && sh_g <= 200 * 1024 && getenv_u4()) return launch_g<E, LPK, BITS, 4, EPL, 4>(grid, sh_g, s, out, qkv, kc, vc, a);
    if (g == 4 && sh_g <= 200 * 1024) launch_g<E, LPK, BITS, 4, EPL>(grid, sh_g, s, out, qkv, kc, vc, a);
    else if (g >= 2 && 2 * sh <= 200 * 1024) launch_g<E, LPK, BITS, 2, EPL>(grid, 2 * sh, s, out, qkv, kc, vc, a);
    else launch_g<E, LPK, BITS, 1, EPL>(grid, sh, s, out, qkv, kc, vc, a);
}

// 8 elements per lane: LPK = hd / 8 lanes per row.
template <typename E, int BITS>
static void launch_lpk(int lpk, dim3 grid, size_t sh, lmb_stream s, void *out, const void *qkv, const void *kc,
                       const void *vc, const Args &a) {
    switch (lpk) {
    case 1: launch_fast<E, 1, BITS, 8>(grid, sh, s, out, qkv, kc, vc, a); break;
    case 2: launch_fast<E, 2, BITS, 8>(grid, sh, s, out, qkv, kc, vc, a); break;
    case 4: launch_fast<E, 4, BITS, 8>(grid, sh, s, out, qkv, kc, vc, a); break;
    case 8: launch_fast<E, 8, BITS, 8>(grid, sh, s, out, qkv, kc, vc, a); break;
    case 16: launch_fast<E, 16, BITS, 8>(grid, sh, s, out, qkv, kc, vc, a); break;
    default: launch_fast<E, 32, BITS, 8>(grid, sh, s, out, qkv, kc, vc, a); break;
    }
}

// 16 elements per lane (quantized caches, hd 64, 128 or 256): a lane loads 16 (int8) or 8 (int4) bytes, and a
// row's dot needs one shuffle level fewer.  v2 used 8 per lane for every width: with 4 query heads per CTA
// its int8 rows cost more instructions per byte than fp16's and the kernel was issue-bound (docs/PERF.md).
template <typename E, int BITS>
static void launch_lpk16(int hd, dim3 grid, size_t sh, lmb_stream s, void *out, const void *qkv, const void *kc,
                         const void *vc, const Args &a) {
    switch (hd) {
    case 64: launch_fast<E, 4, BITS, 16>(grid, sh, s, out, qkv, kc, vc, a); break;
    case 128: launch_fast<E, 8, BITS, 16>(grid, sh, s, out, qkv, kc, vc, a); break;
    default: launch_fast<E, 16, BITS, 16>(grid, sh, s, out, qkv, kc, vc, a); break;
    }
}

// LMB_ATTN_EPL=8: quantized caches with 8 elements per lane, as v2 (to compare versions on the GPU machine).
static bool getenv_epl8(void) {
    static int v = INT_MIN;
    return env_knob(&v, "LMB_ATTN_EPL") == 8;
}

template <typename E, bool VEC, int BITS>
static void launch_generic(dim3 grid, size_t sh, lmb_stream s, void *out, const void *qkv, const void *kc, const void *vc,
                           const Args &a) {
    if (sh > 48 * 1024)
        cudaFuncSetAttribute(decode_generic<E, VEC, BITS>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sh);
    decode_generic<E, VEC, BITS><<<grid, 128, sh, s>>>((E *)out, (const E *)qkv, (const uint8_t *)kc,
                                                       (const uint8_t *)vc, a);
}

extern "C" size_t lmb_cuda_attention_workspace(int n_rows, int nh, int hd, int max_ctx, int split_len) {
    int max_splits = (max_ctx + split_len - 1) / split_len;
    return sizeof(float) * (size_t)n_rows * nh * max_splits * (hd + 2);
}

extern "C" size_t lmb_cuda_attention_tickets(int n_rows, int nh) { return sizeof(unsigned) * (size_t)n_rows * nh; }

extern "C" int lmb_cuda_attention_decode_kvq(void *out, const void *qkv, const void *k_cache, const void *v_cache,
                                             const lmb_cuda_seqs *seqs, const int32_t *rows, int n_rows, int nh,
                                             int nkv, int hd, int block_size, float scale, int max_ctx, int split_len,
                                             void *partial, unsigned *tickets, int kv_bits, lmb_cuda_dtype dt,
                                             lmb_stream s) {
    if (n_rows <= 0) return 0;
    if (hd > 256 || split_len < 1 || split_len > 4096) return (int)cudaErrorInvalidValue;
    if (kv_bits != 16 && kv_bits != 8 && kv_bits != 4) return (int)cudaErrorInvalidValue;
    if (kv_bits == 4 && hd % 2) return (int)cudaErrorInvalidValue;
    Args a = {seqs->tok_seq, seqs->positions, seqs->block_tables, rows, seqs->max_blocks, nh, nkv, hd,
              block_size, split_len, (max_ctx + split_len - 1) / split_len, scale, (float *)partial, tickets,
              lmb_kv_tile_bytes(hd, kv_bits, block_size), (int)lmb_kv_row_bytes(hd, kv_bits),
              (int)lmb_kv_param_offset(hd, kv_bits, block_size)};
    dim3 grid(n_rows, nh, a.max_splits);
    const int lpk = hd / 8;
    const bool fast = hd % 8 == 0 && hd >= 8 && 32 % lpk == 0 && !getenv_generic();
    size_t sh = sizeof(float) * ((fast ? 4 * (size_t)hd : 256) + split_len);
    bool vec = hd % 8 == 0;
    const bool epl16 = kv_bits != 16 && (hd == 64 || hd == 128 || hd == 256) && !getenv_epl8();
    LMB_DISPATCH(dt, E, {
        if (fast) {
            if (kv_bits == 16) launch_lpk<E, 16>(lpk, grid, sh, s, out, qkv, k_cache, v_cache, a);
            else if (epl16 && kv_bits == 8) launch_lpk16<E, 8>(hd, grid, sh, s, out, qkv, k_cache, v_cache, a);
            else if (epl16) launch_lpk16<E, 4>(hd, grid, sh, s, out, qkv, k_cache, v_cache, a);
            else if (kv_bits == 8) launch_lpk<E, 8>(lpk, grid, sh, s, out, qkv, k_cache, v_cache, a);
            else launch_lpk<E, 4>(lpk, grid, sh, s, out, qkv, k_cache, v_cache, a);
        } else if (kv_bits == 16) {
            if (vec) launch_generic<E, true, 16>(grid, sh, s, out, qkv, k_cache, v_cache, a);
            else launch_generic<E, false, 16>(grid, sh, s, out, qkv, k_cache, v_cache, a);
        } else if (kv_bits == 8) {
            launch_generic<E, false, 8>(grid, sh, s, out, qkv, k_cache, v_cache, a);
        } else {
            launch_generic<E, false, 4>(grid, sh, s, out, qkv, k_cache, v_cache, a);
        }
        if (a.max_splits > 1 && !(fast && tickets)) merge_kernel<E><<<dim3(n_rows, nh), 128, 0, s>>>((E *)out, a);
    });
    return LMB_LAUNCH_RESULT();
}

extern "C" int lmb_cuda_attention_decode(void *out, const void *qkv, const void *k_cache, const void *v_cache,
                                         const lmb_cuda_seqs *seqs, const int32_t *rows, int n_rows, int nh, int nkv,
                                         int hd, int block_size, float scale, int max_ctx, int split_len,
                                         void *partial, lmb_cuda_dtype dt, lmb_stream s) {
    return lmb_cuda_attention_decode_kvq(out, qkv, k_cache, v_cache, seqs, rows, n_rows, nh, nkv, hd, block_size,
                                         scale, max_ctx, split_len, partial, NULL, 16, dt, s);
}
