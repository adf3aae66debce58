// calib.cu — fp32 kernels of the quantize stage's GPU device (quantize/qdev_cuda.c): the calibration
// forward's norm, RoPE, causal softmax and pointwise ops, and the AWQ searches' per-channel scaling, int4
// fake quantization, clamping and reductions.  Each mirrors a CPU reference (quantize/qdev_cpu.c) and is
// tested against it in tests/gpu/test_quantize_cuda.c.  Reductions are in double, in a fixed order.
#include "common.cuh"

using namespace lmb;

namespace {

constexpr int kThreads = 256;

unsigned grid_for(size_t n) {
    size_t b = (n + kThreads - 1) / kThreads;
    return (unsigned)(b < 65536 ? (b ? b : 1) : 65536);
}

__device__ __forceinline__ double warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Sum over the block (blockDim.x == kThreads); the result is valid in every thread.
__device__ double block_sum_d(double v) {
    __shared__ double sh[kThreads / 32];
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    v = warp_sum_d(v);
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = lane < kThreads / 32 ? sh[lane] : 0.0;
    return warp_sum_d(v);
}

__global__ void rmsnorm_k(float *y, const float *x, const float *g, int H, float eps) {
    const float *xr = x + (size_t)blockIdx.x * H;
    float *o = y + (size_t)blockIdx.x * H;
    double ss = 0;
    for (int i = threadIdx.x; i < H; i += blockDim.x) ss += (double)xr[i] * xr[i];
    ss = block_sum_d(ss);
    float r = (float)(1.0 / sqrt(ss / H + eps));
    for (int i = threadIdx.x; i < H; i += blockDim.x) o[i] = (xr[i] * r) * g[i];
}

// One thread per (token, head, i < hd/2) of q then k; cs/sn tables [seqlen][hd/2].
__global__ void rope_k(float *q, float *k, const float *cs, const float *sn, int T, int seqlen, int nh, int nkv,
                       int hd) {
    int half = hd / 2;
    size_t nq = (size_t)T * nh * half, n = nq + (size_t)T * nkv * half;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < n; e += (size_t)gridDim.x * blockDim.x) {
        bool isq = e < nq;
        size_t f = isq ? e : e - nq;
        int heads = isq ? nh : nkv, i = (int)(f % half);
        size_t th = f / half; // token * heads + head
        int t = (int)(th / heads);
        float *v = (isq ? q : k) + th * hd;
        float c = cs[(size_t)(t % seqlen) * half + i], s = sn[(size_t)(t % seqlen) * half + i];
        float a = v[i], b = v[i + half];
        v[i] = a * c - b * s;
        v[i + half] = b * c + a * s;
    }
}

// Row r of a [T, T] score matrix (rows of every matrix back to back): softmax over j <= r % T, zero after.
__global__ void causal_softmax_k(float *S, int T) {
    __shared__ float sh[32];
    float *row = S + (size_t)blockIdx.x * T;
    int i = (int)(blockIdx.x % T);
    float mx = -INFINITY;
    for (int j = threadIdx.x; j <= i; j += blockDim.x) mx = fmaxf(mx, row[j]);
    mx = block_max(mx, sh);
    float sum = 0;
    for (int j = threadIdx.x; j <= i; j += blockDim.x) sum += (row[j] = expf(row[j] - mx));
    sum = block_sum(sum, sh);
    for (int j = threadIdx.x; j < T; j += blockDim.x) row[j] = j <= i ? row[j] / sum : 0.f;
}

__global__ void silu_mul_k(float *out, const float *gate, const float *up, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

__global__ void add_k(float *x, const float *h, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        x[i] += h[i];
}

__global__ void add_bias_k(float *y, const float *b, int N, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        y[i] += b[i % N];
}

__global__ void scale_cols_k(float *x, int cols, const float *s, bool divide, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float v = s[i % cols];
        x[i] = divide ? x[i] / v : x[i] * v;
    }
}

__global__ void unscale_rows_k(float *w, float *b, int cols, const float *s, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / cols;
        w[i] /= s[r];
        if (b && i % cols == 0) b[r] /= s[r];
    }
}

// One warp per group of `group` consecutive weights of a row: int4.c's group_params and code, bit for bit.
__global__ void fake_quant_k(float *w, size_t n_groups, int group) {
    size_t gi = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) >> 5;
    int lane = threadIdx.x & 31;
    if (gi >= n_groups) return;
    float *p = w + gi * group;
    float mx = -INFINITY, mn = INFINITY;
    for (int i = lane; i < group; i += 32) mx = fmaxf(mx, p[i]), mn = fminf(mn, p[i]);
    mx = warp_max(mx);
    mn = -warp_max(-mn);
    float range = mx - mn;
    float s = (range > 1e-5f ? range : 1e-5f) / 15.0f;
    float zz = -rintf(mn / s);
    float z = zz < 0.f ? 0.f : zz > 15.f ? 15.f : zz;
    for (int i = lane; i < group; i += 32) {
        float q = rintf(p[i] / s) + z;
        q = q < 0.f ? 0.f : q > 15.f ? 15.f : q;
        p[i] = (q - z) * s;
    }
}

__global__ void clamp_rows_k(float *dst, size_t ld_dst, const float *src, size_t ld_src, int cols, const float *m,
                             size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / cols, c = i % cols;
        float mv = m[r], w = src[r * ld_src + c];
        dst[r * ld_dst + c] = w > mv ? mv : w < -mv ? -mv : w;
    }
}

// One warp per row.
__global__ void row_absmax_k(const float *w, size_t ld, int rows, int cols, float *out) {
    int r = (int)((blockIdx.x * (size_t)blockDim.x + threadIdx.x) >> 5), lane = threadIdx.x & 31;
    if (r >= rows) return;
    float a = 0;
    for (int i = lane; i < cols; i += 32) a = fmaxf(a, fabsf(w[(size_t)r * ld + i]));
    a = warp_max(a);
    if (lane == 0) out[r] = a;
}

// Column sums over a slab of rows: block (32 columns) x (8 row lanes); partial[slab][col].
__global__ void col_sums_k(const float *a, const float *b, int rows, int cols, int rows_per_slab, double *partial) {
    __shared__ double sh[8][33];
    int c = blockIdx.x * 32 + threadIdx.x;
    int r0 = blockIdx.y * rows_per_slab, r1 = min(rows, r0 + rows_per_slab);
    double s = 0;
    if (c < cols)
        for (int r = r0 + threadIdx.y; r < r1; r += 8) {
            double v = a[(size_t)r * cols + c];
            if (b) {
                v -= b[(size_t)r * cols + c];
                s += v * v;
            } else {
                s += fabs(v);
            }
        }
    sh[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && c < cols) {
        for (int y = 1; y < 8; y++) s += sh[y][threadIdx.x];
        partial[(size_t)blockIdx.y * cols + c] = s;
    }
}

__global__ void sum_slabs_k(const double *partial, int slabs, int cols, double *out) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    double s = 0;
    for (int y = 0; y < slabs; y++) s += partial[(size_t)y * cols + c];
    out[c] = s;
}

__global__ void sq_err_k(const float *a, const float *b, size_t n, double *partial) {
    double s = 0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        double d = (double)a[i] - b[i];
        s += d * d;
    }
    s = block_sum_d(s);
    if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

} // namespace

extern "C" int lmb_cuda_f32_rmsnorm(float *y, const float *x, const float *g, int T, int H, float eps, lmb_stream s) {
    if (T > 0) rmsnorm_k<<<T, kThreads, 0, s>>>(y, x, g, H, eps);
    return LMB_LAUNCH_RESULT();
}

extern "C" int lmb_cuda_f32_rope(float *q, float *k, const float *cs, const float *sn, int T, int seqlen, int nh,
                                 int nkv, int hd, lmb_stream s) {
    size_t n = (size_t)T * (nh + nkv) * (hd / 2);
    if (n) rope_k<<<grid_for(n), kThreads, 0, s>>>(q, k, cs, sn, T, seqlen, nh, nkv, hd);
    return LMB_LAUNCH_RESULT();
}

extern "C" int lmb_cuda_f32_causal_softmax(float *S, int n_mats, int T, lmb_stream s) {
    size_t rows = (size_t)n_mats * T;
    if (rows) causal_softmax_k<<<(unsigned)rows, kThreads, 0, s>>>(S, T);
    return LMB_LAUNCH_RESULT();
}

extern "C" int lmb_cuda_f32_silu_mul(float *out, const float *gate, const float *up, size_t n, lmb_stream s) {
    if (n) silu_mul_k<<<grid_for(n), kThreads, 0, s>>>(out, gate, up, n);
    return LMB_LAUNCH_RESULT();
}

extern "C" int lmb_cuda_f32_add(float *x, const float *h, size_t n, lmb_stream s) {
    if (n) add_k<<<grid_for(n), kThreads, 0, s>>>(x, h, n);
    return LMB_LAUNCH_RESULT();
}

extern "C" int lmb_cuda_f32_add_bias(float *y, const float *b, int M, int N, lmb_stream s) {
    size_t n = (size_t)M * N;
    if (n) add_bias_k<<<grid_for(n), kThreads, 0, s>>>(y, b, N, n);
    return LMB_LAUNCH_RESULT();
}

extern "C" int lmb_cuda_f32_scale_cols(float *x, int rows, int cols, const float *sc, int divide, lmb_stream s) {
    size_t n = (size_t)rows * cols;
    if (n) scale_cols_k<<<grid_for(n), kThreads, 0, s>>>(x, cols, sc, divide != 0, n);
    return LMB_LAUNCH_RESULT();
}

extern "C" int lmb_cuda_f32_unscale_rows(float *w, float *b, int rows, int cols, const float *sc, lmb_stream s) {
    size_t n = (size_t)rows * cols;
    if (n) unscale_rows_k<<<grid_for(n), kThreads, 0, s>>>(w, b, cols, sc, n);
    return LMB_LAUNCH_RESULT();
}

extern "C" int lmb_cuda_f32_fake_quant(float *w, int rows, int cols, int group, lmb_stream s) {
    size_t groups = (size_t)rows * (cols / group);
    if (groups) fake_quant_k<<<(unsigned)((groups * 32 + kThreads - 1) / kThreads), kThreads, 0, s>>>(w, groups, group);
    return LMB_LAUNCH_RESULT();
}

extern "C" int lmb_cuda_f32_clamp_rows(float *dst, size_t ld_dst, const float *src, size_t ld_src, int rows, int cols,
                                       const float *m, lmb_stream s) {
    size_t n = (size_t)rows * cols;
    if (n) clamp_rows_k<<<grid_for(n), kThreads, 0, s>>>(dst, ld_dst, src, ld_src, cols, m, n);
    return LMB_LAUNCH_RESULT();
}

extern "C" int lmb_cuda_f32_row_absmax(const float *w, size_t ld, int rows, int cols, float *out, lmb_stream s) {
    if (rows) row_absmax_k<<<(unsigned)(((size_t)rows * 32 + kThreads - 1) / kThreads), kThreads, 0, s>>>(w, ld, rows, cols, out);
    return LMB_LAUNCH_RESULT();
}

extern "C" size_t lmb_cuda_f32_col_sums_scratch(int rows, int cols) {
    int slabs = rows < 64 * 8 ? 1 : (rows + 64 * 8 - 1) / (64 * 8);
    if (slabs > 256) slabs = 256;
    return (size_t)slabs * cols * sizeof(double);
}

extern "C" int lmb_cuda_f32_col_sums(const float *a, const float *b, int rows, int cols, double *scratch, double *out,
                                     lmb_stream s) {
    if (rows <= 0 || cols <= 0) return 0;
    int slabs = (int)(lmb_cuda_f32_col_sums_scratch(rows, cols) / ((size_t)cols * sizeof(double)));
    int per = (rows + slabs - 1) / slabs;
    col_sums_k<<<dim3((cols + 31) / 32, slabs), dim3(32, 8), 0, s>>>(a, b, rows, cols, per, scratch);
    sum_slabs_k<<<(cols + kThreads - 1) / kThreads, kThreads, 0, s>>>(scratch, slabs, cols, out);
    return LMB_LAUNCH_RESULT();
}

extern "C" int lmb_cuda_f32_sq_err_blocks(void) { return 1024; }

extern "C" int lmb_cuda_f32_sq_err(const float *a, const float *b, size_t n, double *partial, lmb_stream s) {
    if (n) sq_err_k<<<1024, kThreads, 0, s>>>(a, b, n, partial);
    return LMB_LAUNCH_RESULT();
}
