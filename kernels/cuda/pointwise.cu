// pointwise.cu — embedding gather, fused residual-add + RMSNorm, RoPE fused with the paged KV write,
// SiLU-gate.  One row per CTA (norm) or one thread per element pair; all memory-bound, 16-byte-friendly
// contiguous rows.  CPU references: kernels/cpu/pointwise.c, kernels/cpu/attention.c (KV write).
#include <stdlib.h>
#include <string.h>

#include "common.cuh"

using namespace lmb;

bool lmb::pdl_enabled() {
    static int on = -1; // read once: the device's capability and LMB_PDL
    if (on < 0) {
        int dev = 0, major = 0;
        const char *e = getenv("LMB_PDL");
        on = !(e && !strcmp(e, "0")) && cudaGetDevice(&dev) == cudaSuccess &&
             cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess && major >= 9;
    }
    return on == 1;
}

// One CTA per token.  Rows whose width divides by 8 go in 16-byte loads: the table may live in mapped host
// memory (backend_cuda.c, --embedding host), where each load is a PCIe read and wide ones keep the link busy.
template <typename T>
__global__ void embed_kernel(float *resid, const T *table, const int32_t *tokens, int H) {
    int t = blockIdx.x;
    const T *row = table + (size_t)tokens[t] * H;
    float *o = resid + (size_t)t * H;
    if (H % 8 == 0) {
        for (int i = threadIdx.x * 8; i < H; i += blockDim.x * 8) {
            uint4 u = *(const uint4 *)(row + i);
            const T *e = (const T *)&u;
            float4 a = make_float4(to_f(e[0]), to_f(e[1]), to_f(e[2]), to_f(e[3]));
            float4 b = make_float4(to_f(e[4]), to_f(e[5]), to_f(e[6]), to_f(e[7]));
            *(float4 *)(o + i) = a;
            *(float4 *)(o + i + 4) = b;
        }
        return;
    }
    for (int i = threadIdx.x; i < H; i += blockDim.x) o[i] = to_f(row[i]);
}

extern "C" int lmb_cuda_embed(float *resid, const void *table, const int32_t *tokens, int T, int H,
                              lmb_cuda_dtype dt, lmb_stream s) {
    if (T <= 0) return 0;
    LMB_DISPATCH(dt, E, embed_kernel<E><<<T, 256, 0, s>>>(resid, (const E *)table, tokens, H));
    return LMB_LAUNCH_RESULT();
}

template <typename T>
__global__ void add_rmsnorm_kernel(float *resid, const T *delta, const T *w, T *out, const int32_t *rows, int H,
                                   float eps) {
    __shared__ float sh[32];
    pdl_trigger(); // a W4A16 gemv after it (PDL, w4a16.cu) may start launching
    int r = blockIdx.x;
    size_t row = rows ? (size_t)rows[r] : (size_t)r;
    float *x = resid + row * H;
    float ss = 0.f;
    for (int i = threadIdx.x; i < H; i += blockDim.x) {
        float v = x[i];
        if (delta) {
            v += to_f(delta[row * H + i]);
            x[i] = v;
        }
        ss += v * v;
    }
    ss = block_sum(ss, sh);
    float inv = rsqrtf(ss / H + eps);
    for (int i = threadIdx.x; i < H; i += blockDim.x) out[(size_t)r * H + i] = from_f<T>(x[i] * inv * to_f(w[i]));
}

// The same with each thread's V float4s of the row held in registers between the sum and the scaling (one
// read of resid, one of delta; 8-byte loads of the 16-bit operands): for H % 4 == 0 up to 4 * V * 1024.  At bs1
// it is one CTA on one SM, so the passes' memory round trips are what it costs.
template <typename T> __device__ __forceinline__ float4 load4(const T *p) {
    uint2 u = *(const uint2 *)p;
    const T *e = (const T *)&u;
    return make_float4(to_f(e[0]), to_f(e[1]), to_f(e[2]), to_f(e[3]));
}

template <typename T> __device__ __forceinline__ void store4(T *p, float4 v) {
    uint2 u;
    T *e = (T *)&u;
    e[0] = from_f<T>(v.x), e[1] = from_f<T>(v.y), e[2] = from_f<T>(v.z), e[3] = from_f<T>(v.w);
    *(uint2 *)p = u;
}

template <typename T, int V>
__global__ void add_rmsnorm_vec_kernel(float *resid, const T *delta, const T *w, T *out, const int32_t *rows, int H,
                                       float eps) {
    __shared__ float sh[32];
    pdl_trigger(); // a W4A16 gemv after it (PDL, w4a16.cu) may start launching
    int r = blockIdx.x, n4 = H / 4;
    size_t row = rows ? (size_t)rows[r] : (size_t)r;
    float4 *x4 = (float4 *)(resid + row * H), v[V];
    float ss = 0.f;
#pragma unroll
    for (int k = 0; k < V; k++) {
        int j = threadIdx.x + k * blockDim.x;
        if (j < n4) {
            float4 a = x4[j];
            if (delta) {
                float4 d = load4(delta + row * H + 4 * (size_t)j);
                a.x += d.x, a.y += d.y, a.z += d.z, a.w += d.w;
                x4[j] = a;
            }
            v[k] = a;
            ss += a.x * a.x + a.y * a.y + a.z * a.z + a.w * a.w;
        }
    }
    ss = block_sum(ss, sh);
    float inv = rsqrtf(ss / H + eps);
#pragma unroll
    for (int k = 0; k < V; k++) {
        int j = threadIdx.x + k * blockDim.x;
        if (j < n4) {
            float4 g = load4(w + 4 * (size_t)j), a = v[k];
            store4(out + (size_t)r * H + 4 * (size_t)j,
                   make_float4(a.x * inv * g.x, a.y * inv * g.y, a.z * inv * g.z, a.w * inv * g.w));
        }
    }
}

extern "C" int lmb_cuda_add_rmsnorm(float *resid, const void *delta, const void *w, void *out, const int32_t *rows,
                                    int T, int H, float eps, lmb_cuda_dtype dt, lmb_stream s) {
    if (T <= 0) return 0;
    int n4 = H / 4, V = (n4 + 1023) / 1024;
    if (H % 4 == 0 && V <= 4) {
        int threads = ((n4 + V - 1) / V + 31) / 32 * 32;
        LMB_DISPATCH(dt, E, {
            const E *dl = (const E *)delta, *wl = (const E *)w;
            E *o = (E *)out;
            if (V == 1) add_rmsnorm_vec_kernel<E, 1><<<T, threads, 0, s>>>(resid, dl, wl, o, rows, H, eps);
            else if (V == 2) add_rmsnorm_vec_kernel<E, 2><<<T, threads, 0, s>>>(resid, dl, wl, o, rows, H, eps);
            else add_rmsnorm_vec_kernel<E, 4><<<T, threads, 0, s>>>(resid, dl, wl, o, rows, H, eps);
        });
        return LMB_LAUNCH_RESULT();
    }
    int threads = H >= 1024 ? 1024 : ((H + 31) / 32) * 32;
    LMB_DISPATCH(dt, E,
                 add_rmsnorm_kernel<E><<<T, threads, 0, s>>>(resid, (const E *)delta, (const E *)w, (E *)out, rows,
                                                             H, eps));
    return LMB_LAUNCH_RESULT();
}

// Grid (token, part): the threads of a token's gridDim.y CTAs stride over its (head, i < hd/2) pairs of q and
// k heads, then over the v copy (several CTAs per token when there are few tokens: decode at small batch).
template <typename T>
__global__ void rope_kv_kernel(T *qkv, T *k_cache, T *v_cache, const int32_t *positions, const int64_t *slots,
                               const float *inv_freq, int nh, int nkv, int hd, int block_size) {
    int t = blockIdx.x, half_d = hd / 2;
    size_t stride = (size_t)(nh + 2 * nkv) * hd;
    T *row = qkv + (size_t)t * stride;
    float pos = (float)positions[t];
    int pairs = (nh + nkv) * half_d;
    int64_t slot = slots ? slots[t] : -1;
    size_t blk = 0, off = 0;
    if (slot >= 0) {
        blk = (size_t)(slot / block_size);
        off = (size_t)(slot % block_size);
    }
    const int first = blockIdx.y * blockDim.x + threadIdx.x, step = gridDim.y * blockDim.x;
    for (int p = first; p < pairs; p += step) {
        int h = p / half_d, i = p % half_d;
        T *v = row + (size_t)h * hd; // q heads then k heads are contiguous in qkv
        float sn, cs;
        sincosf(pos * inv_freq[i], &sn, &cs);
        float a = to_f(v[i]), b = to_f(v[i + half_d]);
        T ra = from_f<T>(a * cs - b * sn), rb = from_f<T>(b * cs + a * sn);
        v[i] = ra;
        v[i + half_d] = rb;
        if (h >= nh && slot >= 0) {
            T *kc = k_cache + ((blk * nkv + (h - nh)) * block_size + off) * hd;
            kc[i] = ra;
            kc[i + half_d] = rb;
        }
    }
    if (slot >= 0) {
        const T *vs = row + (size_t)(nh + nkv) * hd;
        for (int j = first; j < nkv * hd; j += step) {
            int h = j / hd, d = j % hd;
            v_cache[((blk * nkv + h) * block_size + off) * hd + d] = vs[j];
        }
    }
}

extern "C" int lmb_cuda_rope_kv_write(void *qkv, void *k_cache, void *v_cache, const int32_t *positions,
                                      const int64_t *slots, const float *inv_freq, int T, int nh, int nkv, int hd,
                                      int block_size, lmb_cuda_dtype dt, lmb_stream s) {
    if (T <= 0) return 0;
    int pairs = (nh + nkv) * hd / 2, parts = T >= 64 ? 1 : (pairs + 255) / 256;
    if (parts > 16) parts = 16;
    LMB_DISPATCH(dt, E,
                 rope_kv_kernel<E><<<dim3(T, parts), 256, 0, s>>>((E *)qkv, (E *)k_cache, (E *)v_cache, positions, slots,
                                                     inv_freq, nh, nkv, hd, block_size));
    return LMB_LAUNCH_RESULT();
}

template <typename T> __global__ void silu_mul_kernel(T *out, const T *gu, int F, size_t n) {
    pdl_trigger(); // the down projection's W4A16 gemv (PDL) may start launching
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        size_t t = i / F, j = i % F;
        float g = to_f(gu[t * 2 * F + j]), u = to_f(gu[t * 2 * F + F + j]);
        out[i] = from_f<T>(g / (1.f + __expf(-g)) * u);
    }
}

extern "C" int lmb_cuda_silu_mul(void *out, const void *gu, int T, int F, lmb_cuda_dtype dt, lmb_stream s) {
    size_t n = (size_t)T * F;
    if (n == 0) return 0;
    int blocks = (int)((n + 255) / 256 < 65536 ? (n + 255) / 256 : 65536);
    LMB_DISPATCH(dt, E, silu_mul_kernel<E><<<blocks, 256, 0, s>>>((E *)out, (const E *)gu, F, n));
    return LMB_LAUNCH_RESULT();
}

template <typename T> __global__ void bias_kernel(T *y, const T *b, int N, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        y[i] = from_f<T>(to_f(y[i]) + to_f(b[i % N]));
}

extern "C" int lmb_cuda_add_bias(void *y, const void *b, int T, int N, lmb_cuda_dtype dt, lmb_stream s) {
    size_t n = (size_t)T * N;
    if (n == 0) return 0;
    int blocks = (int)((n + 255) / 256 < 65536 ? (n + 255) / 256 : 65536);
    LMB_DISPATCH(dt, E, bias_kernel<E><<<blocks, 256, 0, s>>>((E *)y, (const E *)b, N, n));
    return LMB_LAUNCH_RESULT();
}

// Deterministic uniform(-a, a) + offset from a hash of (seed, index): random-weight models for benchmarks.
template <typename T> __global__ void fill_kernel(T *w, size_t n, float a, float offset, unsigned long long seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        unsigned long long z = seed + i * 0x9E3779B97F4A7C15ULL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        z ^= z >> 31;
        float u = (float)(z >> 40) * (1.0f / 16777216.0f); // [0, 1)
        w[i] = from_f<T>(offset + a * (2.f * u - 1.f));
    }
}

extern "C" int lmb_cuda_fill_uniform(void *w, size_t n, float a, float offset, unsigned long long seed,
                                     lmb_cuda_dtype dt, lmb_stream s) {
    if (n == 0) return 0;
    LMB_DISPATCH(dt, E, fill_kernel<E><<<4096, 256, 0, s>>>((E *)w, n, a, offset, seed));
    return LMB_LAUNCH_RESULT();
}
