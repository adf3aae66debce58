// w4a16.cu — AWQ int4 weights x fp16 activations (AutoAWQ's GEMM layout, see kernels.h): y[M, N] = x[M, K] W^T
// with w[n, k] = (q[k, n] - z[k/G, n]) * s[k/G, n].  CPU reference: kernels/cpu/w4a16.c (dequantize + fp32 GEMM).
//
// Three ways to run it, picked by the caller (engine/backend_cuda_awq.c) from M:
//   gemv     M <= 8 (decode).  Each packed weight word is read once: a lane owns VEC consecutive words of a
//            row (8*VEC outputs) for all M rows; the K range is cut into 16-row chunks shared out over the
//            warps of a CTA and the CTAs of the grid's y dimension (enough loads in flight for HBM).  fp32
//            accumulation, one FMA per weight for M <= 2 (group-sum form).  The CTA's warps are summed as a
//            tree; the K splits' partial sums go to a workspace and the last CTA of a column tile (an atomic
//            ticket) adds them in split order — deterministic, one launch, no memset.
//   mma      small/medium M.  A CTA computes a 32x128 tile of y: per 32-deep k-tile it stages x in shared
//            memory, dequantizes the matching qweight tile to fp16 in shared memory and runs WMMA 16x16x16
//            (fp16 in, fp32 accumulate) on 4 warps of 32x32.
//   dequant  large M (prefill).  Dequantizes a column chunk of W to fp16 [K, Nc] (kept small enough to stay in
//            L2) for cuBLAS; the caller loops over chunks.
// Version history: v1 — gemv with K interleaved over 4 warps and a per-weight dequantize FMA.  v2 —
// gemv over 16-row chunks, 8 warps, the one-FMA group-sum form for M <= 2; mma and dequant unchanged:
// correctness first (WMMA rather than mma.sync/ldmatrix, no cp.async pipelining).  Checked on the CPU by
// tests/tools/cuda_emu.  v3 — a chunk's 16 rows unrolled, so all its loads are in flight at once (v2 kept 4:
// with one chunk per warp, four round trips to HBM per GEMV): bs1 197 -> 210 tok/s on the H100.  v4 (this) —
// the split sums read four outputs per thread with eight loads in flight (emulator-checked; H100: pending).
// Figures in docs/PERF.md.
#include <mma.h>
#include <stdlib.h>

#include "common.cuh"

using namespace lmb;

namespace {

// Output column (within a word's 8) of nibble i: AutoAWQ's order [0, 2, 4, 6, 1, 3, 5, 7].
__device__ __forceinline__ int awq_col(int i) { return (i & 3) * 2 + (i >> 2); }

__device__ __forceinline__ float nib(uint32_t w, int i) {
    // 2^23 + n as a float, minus 2^23: the nibble as an exact float without an int->float conversion
    return __uint_as_float(0x4B000000u | ((w >> (4 * i)) & 15u)) - 8388608.f;
}

// ---- gemv ---------------------------------------------------------------------------------------------

constexpr int GEMV_WARPS = 8; // warps of a CTA, splitting its K range
constexpr int CHUNK = 16;     // rows per work item (inside one group)

// VEC consecutive packed words of a row, as one 16- or 8-byte load where VEC allows.
template <int VEC> __device__ __forceinline__ void load_words(const uint32_t *src, uint32_t *w) {
    if constexpr (VEC == 4) {
        uint4 t = __ldg(reinterpret_cast<const uint4 *>(src));
        w[0] = t.x, w[1] = t.y, w[2] = t.z, w[3] = t.w;
    } else if constexpr (VEC == 2) {
        uint2 t = __ldg(reinterpret_cast<const uint2 *>(src));
        w[0] = t.x, w[1] = t.y;
    } else {
#pragma unroll
        for (int v = 0; v < VEC; v++) w[v] = __ldg(src + v);
    }
}

// row(k) for the rows of a chunk: fully unrolled when the chunk is CHUNK long, so all its loads are in flight
// at once (a chunk is usually a warp's whole share of K).
template <typename F> __device__ __forceinline__ void chunk_rows(int k0, int chunk, F &row) {
    if (chunk == CHUNK) {
#pragma unroll
        for (int kk = 0; kk < CHUNK; kk++) row(k0 + kk);
    } else {
#pragma unroll 4
        for (int k = k0; k < k0 + chunk; k++) row(k);
    }
}

// 1 + q/16 as a float, q = nibble i of w (moved to mantissa bits 19..22): two integer ops, no conversion.
template <int I> __device__ __forceinline__ float one_plus_q16(uint32_t w) {
    uint32_t t = 4 * I <= 19 ? w << (19 - 4 * I) : w >> (4 * I - 19);
    return __uint_as_float(0x3F800000u | (t & 0x00780000u));
}

// One CTA: 32 lanes across VEC-word column groups x GEMV_WARPS warps; CTA row y of the grid is a K split.
// Work items are CHUNK consecutive rows of one group; a warp takes a contiguous run of them.  For M <= 2
// the inner loop is one FMA per weight: a += x * (1 + q/16) and sx += x, then per chunk
// sum_k x (q - z) s = s * (16 a - (16 + z) sx); for larger M the dequantized weight is shared by M FMAs.
template <int M, int VEC>
__global__ void __launch_bounds__(32 * GEMV_WARPS)
    gemv_kernel(half *__restrict__ y, const half *__restrict__ x, const uint32_t *__restrict__ qw,
                const uint32_t *__restrict__ qz, const half *__restrict__ sc, int N, int K, int G, int splits,
                float *__restrict__ ws, int *__restrict__ tickets) {
    constexpr int C = 8 * VEC; // outputs per lane
    constexpr bool SUMS = M <= 2;
    __shared__ float red[(GEMV_WARPS / 2) * M * C * 32];
    __shared__ int last;
    const int lane = threadIdx.x, wy = threadIdx.y, tid = wy * 32 + lane;
    const int N8 = N / 8, c0 = (blockIdx.x * 32 + lane) * VEC;
    const bool active = c0 < N8;
    const int chunk = G % CHUNK == 0 ? CHUNK : G, n_chunks = K / chunk;
    const int workers = splits * GEMV_WARPS, wid = blockIdx.y * GEMV_WARPS + wy;
    const int per = (n_chunks + workers - 1) / workers, cb = wid * per, ce = min(n_chunks, cb + per);
    float tot[M][C];
#pragma unroll
    for (int m = 0; m < M; m++)
#pragma unroll
        for (int j = 0; j < C; j++) tot[m][j] = 0.f;
    if (active) {
        float s[SUMS ? 1 : C], zs[SUMS ? 1 : C];
        int cur_g = -1;
        for (int ch = cb; ch < ce; ch++) {
            const int k0 = ch * chunk, g = k0 / G;
            if constexpr (SUMS) {
                float a[M][C], sx[M];
#pragma unroll
                for (int m = 0; m < M; m++) {
                    sx[m] = 0.f;
#pragma unroll
                    for (int j = 0; j < C; j++) a[m][j] = 0.f;
                }
                auto row = [&](int k) {
                    uint32_t w[VEC];
                    load_words<VEC>(qw + (size_t)k * N8 + c0, w);
                    float xv[M];
#pragma unroll
                    for (int m = 0; m < M; m++) sx[m] += (xv[m] = __half2float(x[(size_t)m * K + k]));
#pragma unroll
                    for (int v = 0; v < VEC; v++) {
#define LMB_NIB(I)                                                                                                 \
    {                                                                                                              \
        float q = one_plus_q16<I>(w[v]);                                                                           \
        for (int m = 0; m < M; m++) a[m][v * 8 + awq_col(I)] = fmaf(xv[m], q, a[m][v * 8 + awq_col(I)]);          \
    }
                        LMB_NIB(0) LMB_NIB(1) LMB_NIB(2) LMB_NIB(3) LMB_NIB(4) LMB_NIB(5) LMB_NIB(6) LMB_NIB(7)
#undef LMB_NIB
                    }
                };
                chunk_rows(k0, chunk, row);
#pragma unroll
                for (int v = 0; v < VEC; v++) { // once per chunk: scales and zero points from L1/L2
                    uint32_t z = qz[(size_t)g * N8 + c0 + v];
#pragma unroll
                    for (int i = 0; i < 8; i++) {
                        int j = v * 8 + awq_col(i);
                        float sj = __half2float(sc[(size_t)g * N + 8 * (size_t)c0 + j]), c = 16.f + nib(z, i);
#pragma unroll
                        for (int m = 0; m < M; m++) tot[m][j] = fmaf(sj, fmaf(16.f, a[m][j], -c * sx[m]), tot[m][j]);
                    }
                }
            } else {
                if (g != cur_g) { // scales and zero points of this group (once per group per lane)
                    cur_g = g;
#pragma unroll
                    for (int v = 0; v < VEC; v++) {
                        uint32_t z = qz[(size_t)g * N8 + c0 + v];
#pragma unroll
                        for (int i = 0; i < 8; i++) {
                            int j = v * 8 + awq_col(i);
                            s[j] = __half2float(sc[(size_t)g * N + 8 * (size_t)c0 + j]);
                            zs[j] = nib(z, i) * s[j];
                        }
                    }
                }
                auto row = [&](int k) {
                    uint32_t w[VEC];
                    load_words<VEC>(qw + (size_t)k * N8 + c0, w);
                    float xv[M];
#pragma unroll
                    for (int m = 0; m < M; m++) xv[m] = __half2float(x[(size_t)m * K + k]);
#pragma unroll
                    for (int v = 0; v < VEC; v++)
#pragma unroll
                        for (int i = 0; i < 8; i++) {
                            int j = v * 8 + awq_col(i);
                            float wv = fmaf(nib(w[v], i), s[j], -zs[j]);
#pragma unroll
                            for (int m = 0; m < M; m++) tot[m][j] = fmaf(xv[m], wv, tot[m][j]);
                        }
                };
                chunk_rows(k0, chunk, row);
            }
        }
    }
    // the CTA's warps, as a tree (fixed order): [warp][m][j][lane] keeps shared accesses conflict-free
#pragma unroll
    for (int h = GEMV_WARPS / 2; h >= 1; h /= 2) {
        if (wy >= h && wy < 2 * h)
#pragma unroll
            for (int m = 0; m < M; m++)
#pragma unroll
                for (int j = 0; j < C; j++) red[(((wy - h) * M + m) * C + j) * 32 + lane] = tot[m][j];
        __syncthreads();
        if (wy < h)
#pragma unroll
            for (int m = 0; m < M; m++)
#pragma unroll
                for (int j = 0; j < C; j++) tot[m][j] += red[((wy * M + m) * C + j) * 32 + lane];
        __syncthreads();
    }
    if (wy == 0 && active)
#pragma unroll
        for (int m = 0; m < M; m++)
#pragma unroll
            for (int j = 0; j < C; j++) {
                size_t n = 8 * (size_t)c0 + j;
                if (splits == 1) y[(size_t)m * N + n] = __float2half_rn(tot[m][j]);
                else ws[((size_t)blockIdx.y * M + m) * N + n] = tot[m][j];
            }
    if (splits == 1) return;
    // the last CTA of this column tile adds the splits' partial sums in split order
    __threadfence();
    __syncthreads();
    if (tid == 0) last = atomicAdd(&tickets[blockIdx.x], 1) == splits - 1;
    __syncthreads();
    if (!last) return;
    // four outputs per thread (16-byte loads, N % 8 == 0), 8 splits' loads in flight: the serial tail of v2 (one
    // output per thread, one load at a time) cost more than the weight reads of a small GEMV
    const size_t base = 8 * (size_t)blockIdx.x * 32 * VEC;
    for (int o = 4 * tid; o < M * 32 * C; o += 4 * 32 * GEMV_WARPS) {
        int m = o / (32 * C);
        size_t n = base + o % (32 * C);
        if (n >= (size_t)N) continue;
        float4 sum = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll 8
        for (int sp = 0; sp < splits; sp++) {
            float4 v = __ldcg(reinterpret_cast<const float4 *>(&ws[((size_t)sp * M + m) * N + n]));
            sum.x += v.x, sum.y += v.y, sum.z += v.z, sum.w += v.w;
        }
        half *yo = y + (size_t)m * N + n;
        yo[0] = __float2half_rn(sum.x), yo[1] = __float2half_rn(sum.y);
        yo[2] = __float2half_rn(sum.z), yo[3] = __float2half_rn(sum.w);
    }
    if (tid == 0) tickets[blockIdx.x] = 0; // ready for the next launch (and graph replays)
}

// Words per lane for M rows (accumulators per lane stay at 64 or fewer).
__host__ __device__ constexpr int gemv_vec(int M) { return M == 1 ? 4 : M == 2 ? 2 : 1; }

template <int M>
int launch_gemv(half *y, const half *x, const uint32_t *qw, const uint32_t *qz, const half *sc, int N, int K, int G,
                int splits, float *ws, int *tickets, cudaStream_t s) {
    int N8 = N / 8;
    dim3 block(32, GEMV_WARPS);
    // the vector width must divide the row and keep loads aligned; fall back to narrower words
    if (gemv_vec(M) >= 4 && N8 % 4 == 0 && (uintptr_t)qw % 16 == 0) {
        constexpr int V = gemv_vec(M) >= 4 ? 4 : 1;
        gemv_kernel<M, V><<<dim3((N8 / V + 31) / 32, splits), block, 0, s>>>(y, x, qw, qz, sc, N, K, G, splits, ws,
                                                                             tickets);
    } else if (gemv_vec(M) >= 2 && N8 % 2 == 0 && (uintptr_t)qw % 8 == 0) {
        constexpr int V = gemv_vec(M) >= 2 ? 2 : 1;
        gemv_kernel<M, V><<<dim3((N8 / V + 31) / 32, splits), block, 0, s>>>(y, x, qw, qz, sc, N, K, G, splits, ws,
                                                                             tickets);
    } else {
        gemv_kernel<M, 1><<<dim3((N8 + 31) / 32, splits), block, 0, s>>>(y, x, qw, qz, sc, N, K, G, splits, ws,
                                                                         tickets);
    }
    return LMB_LAUNCH_RESULT();
}

// ---- mma (WMMA) -----------------------------------------------------------------------------------------

constexpr int BM = 32, BN = 128, BK = 32;

__global__ void __launch_bounds__(128)
    mma_kernel(half *__restrict__ y, const half *__restrict__ x, const uint32_t *__restrict__ qw,
               const uint32_t *__restrict__ qz, const half *__restrict__ sc, int M, int N, int K, int G) {
    using namespace nvcuda;
    __shared__ __align__(32) half As[BM][BK + 8];
    __shared__ __align__(32) half Bs[BK][BN + 8];
    __shared__ __align__(32) float Cs[BM][BN + 4];
    const int tid = threadIdx.x, warp = tid / 32, N8 = N / 8;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 2; j++) wmma::fill_fragment(acc[i][j], 0.f);
    for (int k0 = 0; k0 < K; k0 += BK) {
        { // x tile: 32 rows x 32 halves, 16 bytes per thread (rows past M are zeros)
            int r = tid / 4, cc = (tid % 4) * 8, m = m0 + r;
            uint4 v = make_uint4(0, 0, 0, 0);
            if (m < M) v = *reinterpret_cast<const uint4 *>(x + (size_t)m * K + k0 + cc);
            *reinterpret_cast<uint4 *>(&As[r][cc]) = v;
        }
        const int g = k0 / G; // G % BK == 0: the k-tile lies in one group
        for (int i = tid; i < BK * (BN / 8); i += 128) { // W tile: 32 rows x 16 words, dequantized to fp16
            int kr = i / (BN / 8), cw = i % (BN / 8), c = n0 / 8 + cw;
            __align__(16) half out[8];
            if (c < N8) {
                uint32_t w = qw[(size_t)(k0 + kr) * N8 + c], z = qz[(size_t)g * N8 + c];
#pragma unroll
                for (int b = 0; b < 8; b++) {
                    int j = awq_col(b);
                    float s = __half2float(sc[(size_t)g * N + 8 * (size_t)c + j]);
                    out[j] = __float2half_rn((nib(w, b) - nib(z, b)) * s);
                }
            } else {
#pragma unroll
                for (int j = 0; j < 8; j++) out[j] = __float2half_rn(0.f);
            }
            *reinterpret_cast<uint4 *>(&Bs[kr][cw * 8]) = *reinterpret_cast<const uint4 *>(out);
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < BK; kk += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, half, wmma::row_major> a[2];
            wmma::fragment<wmma::matrix_b, 16, 16, 16, half, wmma::row_major> b[2];
#pragma unroll
            for (int i = 0; i < 2; i++) wmma::load_matrix_sync(a[i], &As[i * 16][kk], BK + 8);
#pragma unroll
            for (int j = 0; j < 2; j++) wmma::load_matrix_sync(b[j], &Bs[kk][warp * 32 + j * 16], BN + 8);
#pragma unroll
            for (int i = 0; i < 2; i++)
#pragma unroll
                for (int j = 0; j < 2; j++) wmma::mma_sync(acc[i][j], a[i], b[j], acc[i][j]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 2; j++)
            wmma::store_matrix_sync(&Cs[i * 16][warp * 32 + j * 16], acc[i][j], BN + 4, wmma::mem_row_major);
    __syncthreads();
    for (int i = tid; i < BM * BN; i += 128) {
        int r = i / BN, cc = i % BN, m = m0 + r, n = n0 + cc;
        if (m < M && n < N) y[(size_t)m * N + n] = __float2half_rn(Cs[r][cc]);
    }
}

// ---- dequant (for cuBLAS) -----------------------------------------------------------------------------

__global__ void dequant_kernel(half *__restrict__ W, const uint32_t *__restrict__ qw, const uint32_t *__restrict__ qz,
                               const half *__restrict__ sc, int N, int K, int G, int c_begin, int n_words) {
    const int N8 = N / 8;
    size_t total = (size_t)K * n_words;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        int k = (int)(i / n_words), cw = (int)(i % n_words), c = c_begin + cw, g = k / G;
        uint32_t w = qw[(size_t)k * N8 + c], z = qz[(size_t)g * N8 + c];
        __align__(16) half out[8];
#pragma unroll
        for (int b = 0; b < 8; b++) {
            int j = awq_col(b);
            out[j] = __float2half_rn((nib(w, b) - nib(z, b)) * __half2float(sc[(size_t)g * N + 8 * (size_t)c + j]));
        }
        *reinterpret_cast<uint4 *>(W + (size_t)k * n_words * 8 + (size_t)cw * 8) = *reinterpret_cast<const uint4 *>(out);
    }
}

__global__ void fill_bits_kernel(uint32_t *p, size_t n, unsigned long long seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        unsigned long long z = seed + i * 0x9E3779B97F4A7C15ULL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        p[i] = (uint32_t)(z ^ (z >> 31));
    }
}

} // namespace

// ---- launchers --------------------------------------------------------------------------------------------

extern "C" int lmb_cuda_w4a16_gemv_splits(int M, int N, int K, int group, int n_sm) {
    int v = gemv_vec(M), tiles = (N / 8 / v + 31) / 32;
    static int per_sm = -1; // LMB_W4A16_GEMV_CTAS: CTAs per SM to aim for (default 2), to compare on the GPU
    if (per_sm < 0) {
        const char *e = getenv("LMB_W4A16_GEMV_CTAS");
        per_sm = e && atoi(e) > 0 && atoi(e) <= 16 ? atoi(e) : 2;
    }
    int want = (per_sm * n_sm + tiles - 1) / tiles;
    int most = K / (group % CHUNK == 0 ? CHUNK : group) / GEMV_WARPS; // a work item per warp at least
    int s = want < most ? want : most;
    s = s < LMB_W4A16_MAX_SPLITS ? s : LMB_W4A16_MAX_SPLITS;
    return s < 1 ? 1 : s;
}

extern "C" size_t lmb_cuda_w4a16_gemv_workspace(int max_n) {
    return sizeof(float) * (size_t)LMB_W4A16_MAX_SPLITS * LMB_W4A16_GEMV_MAX_M * (size_t)max_n;
}

extern "C" size_t lmb_cuda_w4a16_gemv_tickets(int max_n) { return (size_t)(max_n / 8 + 31) / 32 + 1; }

extern "C" int lmb_cuda_w4a16_gemv(void *y, const void *x, const int32_t *qweight, const int32_t *qzeros,
                                   const void *scales, int M, int N, int K, int group, int splits, float *ws,
                                   int *tickets, lmb_stream s) {
    if (M <= 0) return 0;
    if (M > LMB_W4A16_GEMV_MAX_M || N % 8 || K % group || splits < 1 || splits > LMB_W4A16_MAX_SPLITS ||
        (splits > 1 && (!ws || !tickets)))
        return (int)cudaErrorInvalidValue;
    const uint32_t *qw = (const uint32_t *)qweight, *qz = (const uint32_t *)qzeros;
    half *yh = (half *)y;
    const half *xh = (const half *)x, *sh = (const half *)scales;
    switch (M) {
    case 1: return launch_gemv<1>(yh, xh, qw, qz, sh, N, K, group, splits, ws, tickets, s);
    case 2: return launch_gemv<2>(yh, xh, qw, qz, sh, N, K, group, splits, ws, tickets, s);
    case 3: return launch_gemv<3>(yh, xh, qw, qz, sh, N, K, group, splits, ws, tickets, s);
    case 4: return launch_gemv<4>(yh, xh, qw, qz, sh, N, K, group, splits, ws, tickets, s);
    case 5: return launch_gemv<5>(yh, xh, qw, qz, sh, N, K, group, splits, ws, tickets, s);
    case 6: return launch_gemv<6>(yh, xh, qw, qz, sh, N, K, group, splits, ws, tickets, s);
    case 7: return launch_gemv<7>(yh, xh, qw, qz, sh, N, K, group, splits, ws, tickets, s);
    default: return launch_gemv<8>(yh, xh, qw, qz, sh, N, K, group, splits, ws, tickets, s);
    }
}

extern "C" int lmb_cuda_w4a16_mma(void *y, const void *x, const int32_t *qweight, const int32_t *qzeros,
                                  const void *scales, int M, int N, int K, int group, lmb_stream s) {
    if (M <= 0) return 0;
    if (N % 8 || K % BK || group % BK || K % group || (uintptr_t)x % 16) return (int)cudaErrorInvalidValue;
    dim3 grid((N + BN - 1) / BN, (M + BM - 1) / BM);
    mma_kernel<<<grid, 128, 0, s>>>((half *)y, (const half *)x, (const uint32_t *)qweight, (const uint32_t *)qzeros,
                                    (const half *)scales, M, N, K, group);
    return LMB_LAUNCH_RESULT();
}

extern "C" int lmb_cuda_w4a16_dequant(void *w, const int32_t *qweight, const int32_t *qzeros, const void *scales,
                                      int N, int K, int group, int n_begin, int n_count, lmb_stream s) {
    if (n_count <= 0) return 0;
    if (N % 8 || n_begin % 8 || n_count % 8 || n_begin + n_count > N || K % group || (uintptr_t)w % 16)
        return (int)cudaErrorInvalidValue;
    size_t total = (size_t)K * (n_count / 8);
    int blocks = (int)((total + 255) / 256 < 65536 ? (total + 255) / 256 : 65536);
    dequant_kernel<<<blocks, 256, 0, s>>>((half *)w, (const uint32_t *)qweight, (const uint32_t *)qzeros,
                                          (const half *)scales, N, K, group, n_begin / 8, n_count / 8);
    return LMB_LAUNCH_RESULT();
}

extern "C" int lmb_cuda_fill_bits(void *p, size_t n_words, unsigned long long seed, lmb_stream s) {
    if (n_words == 0) return 0;
    fill_bits_kernel<<<4096, 256, 0, s>>>((uint32_t *)p, n_words, seed);
    return LMB_LAUNCH_RESULT();
}
