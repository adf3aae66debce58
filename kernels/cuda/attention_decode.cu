// attention_decode.cu — paged attention on CUDA cores, any head_dim <= 256 (CPU reference:
// kernels/cpu/attention.c).  The decode path, and the fallback for head dims the tensor-core prefill
// kernel does not take.
//
// Grid (row, head, split): a CTA scores one query row against keys [split*L, min(ctx, (split+1)*L)) of its
// sequence, one thread per key (16-byte loads of the key row when head_dim % 8 == 0), then accumulates V
// with threads over head dims.  A row whose context fits one split writes its output directly; longer
// rows write (max, sum, unnormalised out) partials that merge_kernel combines (flash-decoding).  CTAs
// past a row's context exit at once, so the grid can be sized for the largest context (CUDA graphs).
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
__global__ void __launch_bounds__(128) decode_kernel(T *out, const T *qkv, const T *kc, const T *vc, Args a) {
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
    size_t sh = sizeof(float) * (256 + split_len);
    bool vec = hd % 8 == 0;
    LMB_DISPATCH(dt, E, {
        if (sh > 48 * 1024) {
            cudaFuncSetAttribute(decode_kernel<E, true>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sh);
            cudaFuncSetAttribute(decode_kernel<E, false>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sh);
        }
        if (vec)
            decode_kernel<E, true><<<grid, 128, sh, s>>>((E *)out, (const E *)qkv, (const E *)k_cache,
                                                         (const E *)v_cache, a);
        else
            decode_kernel<E, false><<<grid, 128, sh, s>>>((E *)out, (const E *)qkv, (const E *)k_cache,
                                                          (const E *)v_cache, a);
        if (a.max_splits > 1) merge_kernel<E><<<dim3(n_rows, nh), 128, 0, s>>>((E *)out, a);
    });
    return LMB_LAUNCH_RESULT();
}
