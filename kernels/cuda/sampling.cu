// sampling.cu — token sampling on the GPU, one CTA of 1024 threads per row; the same rules and RNG as the
// CPU reference (engine/sampler.c): repetition penalty -> greedy | temperature -> top-k -> softmax -> top-p
// -> min-p -> Philox-4x32-10 draw walked over the kept tokens in id order.
//
// Thresholds are found without sorting: the k-th largest logit and the top-p cut are bisections over the
// order-preserving integer image of a float (32 passes over the row, which stays in L2), so the kept set is
// exactly the CPU's {x >= threshold}.  The walk is a block-wide scan over contiguous per-thread chunks.
#include "common.cuh"

using namespace lmb;

namespace {

constexpr int THREADS = 1024;
constexpr int MAX_VOCAB = 262144;

__device__ __forceinline__ void philox(unsigned long long key, unsigned long long ctr, uint32_t out[4]) {
    uint32_t c0 = (uint32_t)ctr, c1 = (uint32_t)(ctr >> 32), c2 = 0, c3 = 0;
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
#pragma unroll
    for (int r = 0; r < 10; r++) {
        uint32_t hi0 = __umulhi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
        uint32_t hi1 = __umulhi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
        uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
        c0 = n0, c1 = n1, c2 = n2, c3 = n3;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

// order-preserving map float -> uint32 (larger float, larger key)
__device__ __forceinline__ uint32_t fkey(float f) {
    uint32_t u = __float_as_uint(f);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ float unkey(uint32_t k) {
    return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

// argmax with the lowest index among equal maxima
__device__ int block_argmax(const float *x, int n, float *shv, int *shi) {
    float best = -INFINITY;
    int bi = 0x7fffffff;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        if (x[i] > best || (x[i] == best && i < bi)) best = x[i], bi = i;
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, best, o);
        int oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (ov > best || (ov == best && oi < bi)) best = ov, bi = oi;
    }
    int w = threadIdx.x >> 5, lane = threadIdx.x & 31;
    __syncthreads();
    if (lane == 0) shv[w] = best, shi[w] = bi;
    __syncthreads();
    if (w == 0) {
        best = lane < (int)(blockDim.x >> 5) ? shv[lane] : -INFINITY;
        bi = lane < (int)(blockDim.x >> 5) ? shi[lane] : 0x7fffffff;
        for (int o = 16; o > 0; o >>= 1) {
            float ov = __shfl_xor_sync(0xffffffffu, best, o);
            int oi = __shfl_xor_sync(0xffffffffu, bi, o);
            if (ov > best || (ov == best && oi < bi)) best = ov, bi = oi;
        }
        if (lane == 0) shi[0] = bi == 0x7fffffff ? 0 : bi;
    }
    __syncthreads();
    return shi[0];
}

__global__ void __launch_bounds__(THREADS)
    sample_kernel(int32_t *out, float *logits, const lmb_cuda_sample_params *params, const int32_t *history, int vocab) {
    __shared__ float sh[32];
    __shared__ float shv[32];
    __shared__ int shi[32];
    __shared__ unsigned int seen[MAX_VOCAB / 32]; // repetition-penalty bitmap
    const lmb_cuda_sample_params p = params[blockIdx.x];
    float *x = logits + (size_t)blockIdx.x * vocab;
    const int tid = threadIdx.x;

    if (p.repetition_penalty != 1.f && p.n_history > 0) {
        for (int i = tid; i < MAX_VOCAB / 32; i += blockDim.x) seen[i] = 0;
        __syncthreads();
        const int32_t *hist = history + p.history_off;
        for (int i = tid; i < p.n_history; i += blockDim.x) {
            int t = hist[i];
            if (t < 0 || t >= vocab) continue;
            unsigned bit = 1u << (t & 31);
            if (atomicOr(&seen[t >> 5], bit) & bit) continue; // penalised once per distinct token
            float l = x[t];
            x[t] = l > 0 ? l / p.repetition_penalty : l * p.repetition_penalty;
        }
        __syncthreads();
    }
    if (p.temperature <= 0.f || p.top_k == 1) {
        int a = block_argmax(x, vocab, shv, shi);
        if (tid == 0) out[blockIdx.x] = a;
        return;
    }
    const float inv_t = 1.f / p.temperature;
    for (int i = tid; i < vocab; i += blockDim.x) x[i] *= inv_t;
    __syncthreads();
    if (p.top_k > 0 && p.top_k < vocab) {
        // largest key K with count(key(x) >= K) >= k is the k-th largest value
        uint32_t prefix = 0;
        for (int bit = 31; bit >= 0; bit--) {
            uint32_t cand = prefix | (1u << bit);
            int cnt = 0;
            for (int i = tid; i < vocab; i += blockDim.x) cnt += fkey(x[i]) >= cand;
            if ((int)block_sum((float)cnt, sh) >= p.top_k) prefix = cand;
        }
        float thr = unkey(prefix);
        for (int i = tid; i < vocab; i += blockDim.x)
            if (x[i] < thr) x[i] = -INFINITY;
        __syncthreads();
    }
    float mx = -INFINITY;
    for (int i = tid; i < vocab; i += blockDim.x) mx = fmaxf(mx, x[i]);
    mx = block_max(mx, sh);
    float s = 0.f;
    for (int i = tid; i < vocab; i += blockDim.x) {
        float e = x[i] == -INFINITY ? 0.f : __expf(x[i] - mx);
        x[i] = e;
        s += e;
    }
    s = block_sum(s, sh);
    const float inv_s = 1.f / s;
    float pmax = 0.f;
    for (int i = tid; i < vocab; i += blockDim.x) {
        x[i] *= inv_s;
        pmax = fmaxf(pmax, x[i]);
    }
    pmax = block_max(pmax, sh);
    float keep_min = 0.f;
    if (p.top_p > 0.f && p.top_p < 1.f) {
        // largest key K with mass(p >= unkey(K)) >= top_p
        uint32_t prefix = 0;
        for (int bit = 31; bit >= 0; bit--) {
            uint32_t cand = prefix | (1u << bit);
            float m = 0.f;
            for (int i = tid; i < vocab; i += blockDim.x)
                if (fkey(x[i]) >= cand) m += x[i];
            if (block_sum(m, sh) >= p.top_p) prefix = cand;
        }
        keep_min = unkey(prefix);
    }
    if (p.min_p > 0.f && p.min_p * pmax > keep_min) keep_min = p.min_p * pmax;

    // kept mass, then walk contiguous chunks in id order
    const int chunk = (vocab + THREADS - 1) / THREADS;
    const int b = tid * chunk, e = min(vocab, b + chunk);
    float local = 0.f;
    int last = -1;
    for (int i = b; i < e; i++)
        if (x[i] >= keep_min && x[i] > 0.f) local += x[i], last = i;
    // inclusive scan of the per-thread sums
    __shared__ float scan[THREADS];
    scan[tid] = local;
    __syncthreads();
    for (int off = 1; off < THREADS; off <<= 1) {
        float v = tid >= off ? scan[tid - off] : 0.f;
        __syncthreads();
        scan[tid] += v;
        __syncthreads();
    }
    const float total = scan[THREADS - 1];
    uint32_t r[4];
    philox(p.seed, p.counter, r);
    const float target = (float)(r[0] >> 8) * (1.0f / 16777216.0f) * total;
    __shared__ int pick;
    if (tid == 0) pick = -1;
    __syncthreads();
    float before = tid ? scan[tid - 1] : 0.f;
    if (local > 0.f && before <= target && target < scan[tid]) {
        float cum = before;
        int chosen = last;
        for (int i = b; i < e; i++)
            if (x[i] >= keep_min && x[i] > 0.f) {
                cum += x[i];
                if (cum > target) {
                    chosen = i;
                    break;
                }
            }
        atomicMax(&pick, chosen); // a single thread matches, barring float ties at a boundary
    }
    __syncthreads();
    if (pick < 0) { // rounding left the target past the end: take the last kept token
        int lastkept = (int)block_max((float)last, sh);
        if (tid == 0) out[blockIdx.x] = lastkept >= 0 ? lastkept : 0;
    } else if (tid == 0) {
        out[blockIdx.x] = pick;
    }
}

} // namespace

extern "C" int lmb_cuda_sample(int32_t *out, float *logits, const lmb_cuda_sample_params *params,
                               const int32_t *history, int n, int vocab, lmb_stream s) {
    if (n <= 0) return 0;
    if (vocab > MAX_VOCAB) return (int)cudaErrorInvalidValue;
    sample_kernel<<<n, THREADS, 0, s>>>(out, logits, params, history, vocab);
    return LMB_LAUNCH_RESULT();
}
