// attention_decode.cu — paged attention on CUDA cores, any head_dim <= 256 (CPU reference:
// kernels/cpu/attention.c).  The decode path, and the fallback for head dims the tensor-core prefill
// kernel does not take.
//
// Grid (row, head, split): a CTA (4 warps) attends one query row to keys [split*L, min(ctx, (split+1)*L)) of
// its sequence.  A row whose context fits one split writes its output directly; longer rows write (max, sum,
// unnormalised out) partials that merge_kernel combines (flash-decoding).  CTAs past a row's context exit at
// once, so the grid can be sized for the largest context (CUDA graphs).
//
// decode_kernel (head_dim in {8, 16, 32, 64, 128, 256}): LPK = head_dim/8 lanes share one key row, each lane
// holding 8 dims (one 16-byte load), so a warp reads 32/LPK whole rows per instruction, coalesced; U rows per
// lane are loaded before any is used, to keep loads in flight.  Scores go to shared memory, then the same
// lane layout accumulates P·V in registers, reduced across key slots by shuffles and across warps in shared
// memory.  decode_generic (other head dims): one thread per key for QK, threads over dims for PV.
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
};

template <typename T, bool VEC>
__global__ void __launch_bounds__(128) decode_generic(T *out, const T *qkv, const T *kc, const T *vc, Args a) {
    extern __shared__ float smem[];
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
        const T *k = kc + (((size_t)bt[pos / bs] * a.nkv + kvh) * bs + pos % bs) * hd;
        float dot = 0.f;
        if (VEC) {
            for (int d = 0; d < hd; d += 8) {
                uint4 raw = *reinterpret_cast<const uint4 *>(k + d);
                const T *kv8 = reinterpret_cast<const T *>(&raw);
#pragma unroll
                for (int e = 0; e < 8; e++) dot += qs[d + e] * to_f(kv8[e]);
            }
        } else {
            for (int d = 0; d < hd; d++) dot += qs[d] * to_f(k[d]);
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
            acc += sc[j] * to_f(vc[(((size_t)bt[pos / bs] * a.nkv + kvh) * bs + pos % bs) * hd + d]);
        }
        if (n_splits == 1) out[((size_t)t * a.nh + h) * hd + d] = from_f<T>(acc / l);
        else part[2 + d] = acc;
    }
    if (n_splits > 1 && tid == 0) {
        part[0] = m;
        part[1] = l;
    }
}

template <typename T, int LPK>
__global__ void __launch_bounds__(128) decode_kernel(T *out, const T *qkv, const T *kc, const T *vc, Args a) {
    constexpr int HD = LPK * 8, KPW = 32 / LPK, STEP = 4 * KPW, U = 4;
    extern __shared__ float smem[];
    const int r = blockIdx.x, h = blockIdx.y, sp = blockIdx.z, tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
    const int t = a.rows ? a.rows[r] : r;
    const int ctx = a.positions[t] + 1;
    const int n_splits = (ctx + a.split_len - 1) / a.split_len;
    if (sp >= n_splits) return;
    const int j0 = sp * a.split_len, n = min(ctx - j0, a.split_len);
    const int kvh = h / (a.nh / a.nkv), bs = a.bs, sl = lane % LPK, ks = lane / LPK;
    const int32_t *bt = a.block_tables + (size_t)a.tok_seq[t] * a.max_blocks;
    const size_t blk_stride = (size_t)a.nkv * bs * HD;
    float *sc = smem, *ored = smem + a.split_len;
    __shared__ float red[32];

    float q[8];
    {
        uint4 raw = *reinterpret_cast<const uint4 *>(qkv + (size_t)t * (a.nh + 2 * a.nkv) * HD + (size_t)h * HD + sl * 8);
        const T *e = reinterpret_cast<const T *>(&raw);
#pragma unroll
        for (int i = 0; i < 8; i++) q[i] = to_f(e[i]) * a.scale;
    }
    const T *kb = kc + (size_t)kvh * bs * HD + sl * 8, *vb = vc + (size_t)kvh * bs * HD + sl * 8;

    float lmax = -INFINITY;
    for (int jb = w * KPW; jb < n; jb += STEP * U) { // warp-uniform bound: every lane reaches the shuffles
        uint4 raw[U];
#pragma unroll
        for (int u = 0; u < U; u++) {
            int j = jb + ks + u * STEP;
            raw[u] = make_uint4(0, 0, 0, 0);
            if (j < n) {
                int pos = j0 + j;
                raw[u] = *reinterpret_cast<const uint4 *>(kb + (size_t)bt[pos / bs] * blk_stride + (size_t)(pos % bs) * HD);
            }
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            const T *e = reinterpret_cast<const T *>(&raw[u]);
            float dot = 0.f;
#pragma unroll
            for (int i = 0; i < 8; i++) dot += q[i] * to_f(e[i]);
#pragma unroll
            for (int o = LPK / 2; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
            int j = jb + ks + u * STEP;
            if (j < n) {
                if (sl == 0) sc[j] = dot;
                lmax = fmaxf(lmax, dot);
            }
        }
    }
    const float m = block_max(lmax, red);
    float lsum = 0.f;
    for (int j = tid; j < n; j += blockDim.x) {
        float p = __expf(sc[j] - m);
        sc[j] = p;
        lsum += p;
    }
    const float l = block_sum(lsum, red); // its barriers also publish sc[]

    float acc[8];
#pragma unroll
    for (int i = 0; i < 8; i++) acc[i] = 0.f;
    for (int jb = w * KPW; jb < n; jb += STEP * U) {
        uint4 raw[U];
        float p[U];
#pragma unroll
        for (int u = 0; u < U; u++) {
            int j = jb + ks + u * STEP;
            raw[u] = make_uint4(0, 0, 0, 0);
            p[u] = 0.f;
            if (j < n) {
                int pos = j0 + j;
                raw[u] = *reinterpret_cast<const uint4 *>(vb + (size_t)bt[pos / bs] * blk_stride + (size_t)(pos % bs) * HD);
                p[u] = sc[j];
            }
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            const T *e = reinterpret_cast<const T *>(&raw[u]);
#pragma unroll
            for (int i = 0; i < 8; i++) acc[i] += p[u] * to_f(e[i]);
        }
    }
#pragma unroll
    for (int o = LPK; o < 32; o <<= 1)
#pragma unroll
        for (int i = 0; i < 8; i++) acc[i] += __shfl_xor_sync(0xffffffffu, acc[i], o);
    if (ks == 0)
#pragma unroll
        for (int i = 0; i < 8; i++) ored[w * HD + sl * 8 + i] = acc[i];
    __syncthreads();
    float *part = a.partial + (((size_t)r * a.nh + h) * a.max_splits + sp) * (HD + 2);
    for (int d = tid; d < HD; d += blockDim.x) {
        float o = ored[d] + ored[HD + d] + ored[2 * HD + d] + ored[3 * HD + d];
        if (n_splits == 1) out[((size_t)t * a.nh + h) * HD + d] = from_f<T>(o / l);
        else part[2 + d] = o;
    }
    if (n_splits > 1 && tid == 0) {
        part[0] = m;
        part[1] = l;
    }
}

template <typename T> __global__ void merge_kernel(T *out, Args a) {
    const int r = blockIdx.x, h = blockIdx.y, t = a.rows ? a.rows[r] : r;
    const int ctx = a.positions[t] + 1, ns = (ctx + a.split_len - 1) / a.split_len;
    if (ns <= 1) return;
    const float *part = a.partial + ((size_t)r * a.nh + h) * a.max_splits * (a.hd + 2);
    float M = -INFINITY;
    for (int s = 0; s < ns; s++) M = fmaxf(M, part[s * (a.hd + 2)]);
    float L = 0.f;
    for (int s = 0; s < ns; s++) L += part[s * (a.hd + 2) + 1] * __expf(part[s * (a.hd + 2)] - M);
    for (int d = threadIdx.x; d < a.hd; d += blockDim.x) {
        float o = 0.f;
        for (int s = 0; s < ns; s++) o += part[s * (a.hd + 2) + 2 + d] * __expf(part[s * (a.hd + 2)] - M);
        out[((size_t)t * a.nh + h) * a.hd + d] = from_f<T>(o / L);
    }
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

template <typename E, int LPK>
static void launch_fast(dim3 grid, size_t sh, lmb_stream s, void *out, const void *qkv, const void *kc, const void *vc,
                        const Args &a) {
    if (sh > 48 * 1024) cudaFuncSetAttribute(decode_kernel<E, LPK>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sh);
    decode_kernel<E, LPK><<<grid, 128, sh, s>>>((E *)out, (const E *)qkv, (const E *)kc, (const E *)vc, a);
}


extern "C" size_t lmb_cuda_attention_workspace(int n_rows, int nh, int hd, int max_ctx, int split_len) {
    int max_splits = (max_ctx + split_len - 1) / split_len;
    return sizeof(float) * (size_t)n_rows * nh * max_splits * (hd + 2);
}

extern "C" int lmb_cuda_attention_decode(void *out, const void *qkv, const void *k_cache, const void *v_cache,
                                         const lmb_cuda_seqs *seqs, const int32_t *rows, int n_rows, int nh, int nkv,
                                         int hd, int block_size, float scale, int max_ctx, int split_len,
                                         void *partial, lmb_cuda_dtype dt, lmb_stream s) {
    if (n_rows <= 0) return 0;
    if (hd > 256 || split_len < 1 || split_len > 4096) return (int)cudaErrorInvalidValue;
    Args a = {seqs->tok_seq, seqs->positions, seqs->block_tables, rows, seqs->max_blocks, nh, nkv, hd,
              block_size, split_len, (max_ctx + split_len - 1) / split_len, scale, (float *)partial};
    dim3 grid(n_rows, nh, a.max_splits);
    const int lpk = hd / 8;
    const bool fast = hd % 8 == 0 && hd >= 8 && 32 % lpk == 0 && !getenv_generic();
    size_t sh = sizeof(float) * ((fast ? 4 * (size_t)hd : 256) + split_len);
    bool vec = hd % 8 == 0;
    LMB_DISPATCH(dt, E, {
        if (fast) {
            switch (lpk) {
            case 1: launch_fast<E, 1>(grid, sh, s, out, qkv, k_cache, v_cache, a); break;
            case 2: launch_fast<E, 2>(grid, sh, s, out, qkv, k_cache, v_cache, a); break;
            case 4: launch_fast<E, 4>(grid, sh, s, out, qkv, k_cache, v_cache, a); break;
            case 8: launch_fast<E, 8>(grid, sh, s, out, qkv, k_cache, v_cache, a); break;
            case 16: launch_fast<E, 16>(grid, sh, s, out, qkv, k_cache, v_cache, a); break;
            default: launch_fast<E, 32>(grid, sh, s, out, qkv, k_cache, v_cache, a); break;
            }
        } else {
            if (sh > 48 * 1024) {
                cudaFuncSetAttribute(decode_generic<E, true>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sh);
                cudaFuncSetAttribute(decode_generic<E, false>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sh);
            }
            if (vec)
                decode_generic<E, true><<<grid, 128, sh, s>>>((E *)out, (const E *)qkv, (const E *)k_cache,
                                                              (const E *)v_cache, a);
            else
                decode_generic<E, false><<<grid, 128, sh, s>>>((E *)out, (const E *)qkv, (const E *)k_cache,
                                                               (const E *)v_cache, a);
        }
        if (a.max_splits > 1) merge_kernel<E><<<dim3(n_rows, nh), 128, 0, s>>>((E *)out, a);
    });
    return LMB_LAUNCH_RESULT();
}
