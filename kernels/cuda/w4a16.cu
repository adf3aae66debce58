// w4a16.cu — AWQ int4 weights x fp16 activations: y[M, N] = x[M, K] W^T with w[n, k] = (q[n, k] - z[n, k/G]) *
// s[n, k/G], the weights in the "W4 rows" layout (kernels.h: qweight [N, K/8], zeros [N, ZW], scales [N, K/G]),
// made from AutoAWQ's at load by lmb_w4_rows_from_awq.  CPU reference: kernels/cpu/w4a16.c (dequantize + fp32 GEMM).
//
// Three ways to run it, picked by the caller (engine/backend_awq_cuda.c) from M:
//   gemv     M <= 8 (decode).  A warp owns 4 whole output rows and walks all of K (half of it, with a partner warp for
//            the other half, when N <= 8192 and M <= 2): lane l takes units (4 words = 32 inputs, one 16-byte load; 1
//            word when K or G is not a multiple of 32) l, l+32, ... of each row, two units at a time (8 loads in
//            flight), then a warp shuffle sums the lanes (split: plus one shared-memory add of the partner's sums): no
//            workspace, no cross-CTA reduction.  x is staged in shared memory per K slice (<= 40 KB), skewed so a
//            warp's 16-byte reads are conflict-free.  Math per unit and row: 16 half2 weight pairs made with two
//            integer ops and one HFMA2 each ((1024 + q)/16 - (1024 + z)/16 = (q - z)/16, exact), 16 HFMA2 of x into an
//            fp16 pair, then into fp32 as s * 16 * (lo + hi).
//   mma      8 < M <= the caller's bound (v6's WMMA kernel).
//            A CTA (4 warps) computes a 64x64 tile of y over k-tiles of 64 inputs (32 when the group is not a
//            multiple of 64): the next tile's x and weight words are loaded into
//            registers while the current one is multiplied; then x is stored to shared memory as is and each
//            thread dequantizes 4 words of one output row to fp16 B[n][k], read as col_major fragments; 4 warps
//            run WMMA 16x16x16 (fp16 in, fp32 accumulate) on 32x32 each.
//   dequant  large M.  Dequantizes a range of output rows to fp16 [rows, K] for cuBLAS (the caller loops over
//            ranges when its scratch is smaller than the linear).
// On sm_90a builds the Hopper kernel in w4a16_wgmma.cu takes over from the mma kernel (see its header).
// Version history: v1 — gemv with K interleaved over 4 warps and a per-weight dequantize FMA.  v2 —
// gemv over 16-row chunks, 8 warps, the one-FMA group-sum form for M <= 2; mma and dequant unchanged:
// correctness first (WMMA rather than mma.sync/ldmatrix, no cp.async pipelining).  Checked on the CPU by
// tests/tools/cuda_emu.  v3 — a chunk's 16 rows unrolled, so all its loads are in flight at once (v2 kept 4:
// with one chunk per warp, four round trips to HBM per GEMV): bs1 197 -> 210 tok/s on the H100.  v4 — the
// split sums read four outputs per thread with eight loads in flight (emulator-checked, never run on the GPU).
// v1-v4 read AutoAWQ's layout, where a lane owns outputs and must walk K, so the gemv split K over warps and
// CTAs and paid a cross-CTA reduction (workspace, tickets, a serial tail): ~4x its bandwidth time.
// v5 — the W4 rows layout, repacked at load: the gemv above (whole rows per warp, fp16 pair math), the
// mma B tile dequantized row by row and read as col_major fragments, dequant by rows for cuBLAS's OP_T; the
// split/ticket gemv and its workspace are gone.  H100: bs1 210 -> 355 tok/s (1.95x fp16).  Tried: x read
// straight from global memory (L1) for M <= 2, no staging and no barrier: 328 tok/s, so x stays in shared
// memory.  v6 — mma: 64x64 tiles (each dequantized weight serves 64 rows of x, not 32), k-tiles of 64, the next
// tile's loads in flight during the MMAs (v5: 32x128, k-tiles of 32, nothing in flight).  v7 — dequant: a warp
// per row, no 64-bit division per word; the caller dequantizes whole linears (24 MB runs of rows before).  gemv:
// K split over two warps for linears up to 8192 outputs at M <= 2 (bs1 358 -> 368 tok/s).
// v8 (this) — gemv launched with programmatic dependent launch (common.cuh): its CTAs start while the kernel
// before finishes (bs1 388.6 -> 397.1 tok/s).
// Tried for v9-v11 and dropped (H100; docs/PERF.md v10, v11; the code is in git history, commits 465f42f and
// a7e8719): the gemv's first batch of weights issued before the PDL wait, with compact batches (bs1 360.3 against
// 396.7 tok/s), and double-buffered in registers (314.1, 322.0); the gemv fused with the decode step around it, with
// the bits of the kernels it replaced: RMSnorm on its input, residual add, silu(gate) * up and RoPE + KV write in its
// epilogue (354.3 against 398.3), or the last two only (380.7); mma.sync m16n8k16 with B made in registers from the
// W4 rows (x through registers or cp.async; then a 3-4 stage cp.async pipeline for x and the words, as Marlin):
// 1.3-2.3x slower than the WMMA kernel at every M (12288 x 4096, M 128: 90.7 us against 70.2).
// Tried for v7 and dropped: the mma kernel with 128x64 and 128x128 tiles (8 warps of 64x32) and two shared
// stages (no faster at M 192-2048, ~200 TFLOP/s whatever the tile, and slower at M <= 128); dequantizing K
// slices into two L2-sized buffers on a side stream while cuBLAS multiplied the slice before (2-3x slower than
// one whole dequant and one cuBLAS call: short-K GEMMs and per-slice hand-offs).  Figures in docs/PERF.md.
#include <mma.h>
#include <string.h>

#include "w4.cuh"

using namespace lmb;

namespace {

// The 8 inputs of word w in input order, dequantized (dequant_pair for pairs 0..3) into one 16-byte store's worth.
__device__ __forceinline__ uint4 dequant_word(uint32_t w, half2 zp, half2 s2) {
    half2 d[4];
#pragma unroll
    for (int p = 0; p < 4; p++) d[p] = dequant_pair(w, p, zp, s2); // inputs 2p, 2p+1
    uint4 o;
    memcpy(&o, d, 16);
    return o;
}

// ---- gemv ---------------------------------------------------------------------------------------------

constexpr int GEMV_WARPS = 8;                   // warps of a CTA
constexpr int GEMV_R = 4;                       // output rows per warp
constexpr int GEMV_ROWS = GEMV_WARPS * GEMV_R;  // rows per CTA
constexpr int GEMV_X_BYTES = 40960;             // shared memory for one K slice of x (static, under 48 KB)

// A unit is VEC words of a row (8 * VEC inputs, 16 bytes of x per x row for VEC 1, 64 for VEC 4).  In shared
// memory the units of x lie unit_stride halves apart: 80 bytes for VEC 4, so the eight 16-byte reads of a
// quarter warp (lanes on consecutive units, banks 20c mod 32) fall in eight distinct 4-bank groups; 16 bytes
// (no gap) for VEC 1.
template <int VEC> __host__ __device__ constexpr int unit_stride() { return VEC == 4 ? 40 : 8; }
// Units per K slice: as many as fit in GEMV_X_BYTES for M rows, a multiple of 32 (one per lane).
template <int M, int VEC> __host__ __device__ constexpr int slice_units() {
    return GEMV_X_BYTES / (2 * unit_stride<VEC>() * M) / 32 * 32;
}

template <int VEC> __device__ __forceinline__ void load_words(const uint32_t *src, uint32_t *w) {
    if constexpr (VEC == 4) {
        uint4 t = __ldg(reinterpret_cast<const uint4 *>(src));
        w[0] = t.x, w[1] = t.y, w[2] = t.z, w[3] = t.w;
    } else {
#pragma unroll
        for (int v = 0; v < VEC; v++) w[v] = __ldg(src + v);
    }
}

// The 4 * VEC half2 of x of one unit (shared memory).
template <int VEC> __device__ __forceinline__ void load_x(const half *src, half2 *x) {
#pragma unroll
    for (int q = 0; q < VEC; q++) {
        uint4 t = *reinterpret_cast<const uint4 *>(src + 8 * q);
        x[4 * q] = as_half2(t.x), x[4 * q + 1] = as_half2(t.y);
        x[4 * q + 2] = as_half2(t.z), x[4 * q + 3] = as_half2(t.w);
    }
}

// NU units of a lane (slice units u, u + 32, ...; all in range) for the warp's GEMV_R rows n0.. and the M rows of
// x: all NU * GEMV_R weight loads are issued first.  Per unit and row the products go into an fp16 pair (each of
// its halves sums 4 * VEC products of |x| * 15/16 at most: it overflows only for |x| > ~4000, far beyond fp16
// activations' range in practice), then into fp32 as s * 16 * (lo + hi).  The order of every sum is fixed by
// the shapes alone, so results are deterministic and independent of the other rows of x.
template <int M, int VEC, int NU>
__device__ __forceinline__ void gemv_units(float (&tot)[GEMV_R][M], const half *__restrict__ xs, int u, int s0,
                                           const uint32_t *__restrict__ qw, const uint32_t *__restrict__ qz,
                                           const half *__restrict__ sc, int n0, int KW, int ng, int ZW, int G) {
    constexpr int SU = slice_units<M, VEC>(), ST = unit_stride<VEC>(), P = 4 * VEC;
    uint32_t w[NU][GEMV_R][VEC];
#pragma unroll
    for (int a = 0; a < NU; a++)
#pragma unroll
        for (int r = 0; r < GEMV_R; r++)
            load_words<VEC>(qw + (size_t)(n0 + r) * KW + (size_t)(s0 + u + 32 * a) * VEC, w[a][r]);
    // the unit's group (it lies in one: G % (8 * VEC) == 0): scale * 16 and -(1024 + z) / 16, from L1
    float s16[NU][GEMV_R];
    half2 c[NU][GEMV_R];
#pragma unroll
    for (int a = 0; a < NU; a++) {
        const int g = (s0 + u + 32 * a) * 8 * VEC / G;
#pragma unroll
        for (int r = 0; r < GEMV_R; r++) {
            const size_t n = (size_t)(n0 + r);
            s16[a][r] = 16.f * __half2float(__ldg(sc + n * ng + g));
            c[a][r] = gemv_c(zero_of(qz, n, ZW, g));
        }
    }
    const half2 sixteenth = __float2half2_rn(0.0625f), hzero = __float2half2_rn(0.f);
#pragma unroll
    for (int a = 0; a < NU; a++) {
        const half *xu = xs + (u + 32 * a) * ST; // this unit of x row m is at xu + m * SU * ST
        if constexpr (M <= 2) { // x of the unit in registers, each row's weights dequantized once
            half2 xr[M][P];
#pragma unroll
            for (int m = 0; m < M; m++) load_x<VEC>(xu + m * SU * ST, xr[m]);
#pragma unroll
            for (int r = 0; r < GEMV_R; r++) {
                half2 acc[M];
                gemv_unit<VEC, M>(acc, w[a][r], c[a][r], xr);
#pragma unroll
                for (int m = 0; m < M; m++)
                    tot[r][m] = fmaf(s16[a][r], __low2float(acc[m]) + __high2float(acc[m]), tot[r][m]);
            }
        } else { // the GEMV_R rows' unit dequantized into registers, then shared by the M rows of x
            half2 d[GEMV_R][P];
#pragma unroll
            for (int r = 0; r < GEMV_R; r++)
#pragma unroll
                for (int v = 0; v < VEC; v++)
#pragma unroll
                    for (int p = 0; p < 4; p++) d[r][4 * v + p] = __hfma2(pair_1024(w[a][r][v], p), sixteenth, c[a][r]);
#pragma unroll
            for (int m = 0; m < M; m++) {
                half2 xr[P];
                load_x<VEC>(xu + m * SU * ST, xr);
#pragma unroll
                for (int r = 0; r < GEMV_R; r++) {
                    half2 acc = hzero;
#pragma unroll
                    for (int i = 0; i < P; i++) acc = __hfma2(xr[i], d[r][i], acc);
                    tot[r][m] = fmaf(s16[a][r], __low2float(acc) + __high2float(acc), tot[r][m]);
                }
            }
        }
    }
}

// CTAs per SM the register budget is cut for (__launch_bounds__): the most that keep every variant free of spills
// (-Xptxas -v, sm_90: M = 1 fits 80 registers, M = 2 128; M >= 3 takes up to ~180), so that big-N linears keep
// more loads in flight per SM at small M.
__host__ __device__ constexpr int gemv_min_ctas(int M) { return M == 1 ? 3 : M == 2 ? 2 : 1; }

// One CTA: GEMV_WARPS warps of GEMV_R rows each, or (KS = 2, for narrow linears at M <= 2) GEMV_WARPS / 2 groups of
// GEMV_R rows, each group's two warps taking alternate 64-unit halves of every 128 units of K and adding their sums
// through shared memory at the end: twice the warps, so twice the loads in flight, where N / GEMV_ROWS CTAs would not
// fill the SMs (N = 4096: 128 CTAs of one warp per 4 rows).  Every thread runs every slice and reaches every barrier
// and shuffle (warps past N only skip the weight work and the store).  The order of every sum depends on N, K and G
// only.
template <int M, int VEC, int KS>
__global__ void __launch_bounds__(32 * GEMV_WARPS, gemv_min_ctas(M))
    gemv_kernel(half *__restrict__ y, const half *__restrict__ x, const uint32_t *__restrict__ qw,
                const uint32_t *__restrict__ qz, const half *__restrict__ sc, int N, int K, int G) {
    constexpr int SU = slice_units<M, VEC>(), ST = unit_stride<VEC>(), GROUPS = GEMV_WARPS / KS;
    __shared__ __align__(16) half xs[M * SU * ST];
    __shared__ float part[KS > 1 ? GROUPS : 1][GEMV_R][M]; // the second half's sums (KS = 2)
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, grp = warp % GROUPS, h = warp / GROUPS;
    const int n0 = (blockIdx.x * GROUPS + grp) * GEMV_R;
    const bool active = n0 < N; // N % 8 == 0: a warp's rows are all in range or all past it
    const int KW = K / 8, U = KW / VEC, ng = K / G, ZW = (ng + 7) / 8;
    // launched with PDL: the CTAs may be resident while the kernel before still runs; wait for it before x is read
    // or y written.  (Tried: a bulk L2 prefetch of the CTA's weight rows before the wait.  It made bs1 slower on the
    // H100: 369.0 against 397.1 tok/s in one call.)
    pdl_wait();
    float tot[GEMV_R][M];
#pragma unroll
    for (int r = 0; r < GEMV_R; r++)
#pragma unroll
        for (int m = 0; m < M; m++) tot[r][m] = 0.f;
    for (int s0 = 0; s0 < U; s0 += SU) {
        const int su = min(SU, U - s0);
        for (int i = threadIdx.x; i < M * su * VEC; i += 32 * GEMV_WARPS) { // x[:, slice], 16 bytes a thread
            const int m = i / (su * VEC), c = i % (su * VEC) / VEC, q = i % VEC;
            *reinterpret_cast<uint4 *>(xs + (m * SU + c) * ST + 8 * q) =
                *reinterpret_cast<const uint4 *>(x + (size_t)m * K + (size_t)(s0 + c) * 8 * VEC + 8 * q);
        }
        __syncthreads();
        if (active) { // units u and u + 32 of each 64 * KS, this warp's half's 64
            int u = lane + 64 * h;
            for (; u + 32 < su; u += 64 * KS) gemv_units<M, VEC, 2>(tot, xs, u, s0, qw, qz, sc, n0, KW, ng, ZW, G);
            if (u < su) gemv_units<M, VEC, 1>(tot, xs, u, s0, qw, qz, sc, n0, KW, ng, ZW, G);
        }
        __syncthreads(); // the slice's x is read before the next one overwrites it
    }
#pragma unroll
    for (int r = 0; r < GEMV_R; r++)
#pragma unroll
        for (int m = 0; m < M; m++) {
            tot[r][m] = warp_sum(tot[r][m]);
            if (KS > 1 && h == 1 && lane == 0) part[grp][r][m] = tot[r][m];
        }
    if constexpr (KS > 1) __syncthreads();
    if (!active || h != 0 || lane != 0) return;
#pragma unroll
    for (int r = 0; r < GEMV_R; r++)
#pragma unroll
        for (int m = 0; m < M; m++)
            y[(size_t)m * N + n0 + r] = __float2half_rn(KS > 1 ? tot[r][m] + part[grp][r][m] : tot[r][m]);
}

constexpr int GEMV_KS_MAX_N = 8192; // linears up to this many outputs split K over two warps (KS = 2)

template <int M, int KS>
int launch_gemv_ks(half *y, const half *x, const uint32_t *qw, const uint32_t *qz, const half *sc, int N, int K,
                   int G, cudaStream_t s) {
    const int rows = GEMV_ROWS / KS;
    dim3 grid((N + rows - 1) / rows), block(32 * GEMV_WARPS);
    // with PDL: the CTAs start while the kernel before (an RMSnorm, the SiLU, attention's merge) finishes, which
    // hides the launch (H100 bs1: 388.6 -> 397.1 tok/s)
    cudaError_t e;
    if (K % 32 == 0 && G % 32 == 0 && (uintptr_t)qw % 16 == 0) // a 16-byte unit lies in one group
        e = launch_pdl(gemv_kernel<M, 4, KS>, grid, block, 0, s, y, x, qw, qz, sc, N, K, G);
    else
        e = launch_pdl(gemv_kernel<M, 1, KS>, grid, block, 0, s, y, x, qw, qz, sc, N, K, G);
    return e != cudaSuccess ? (int)e : LMB_LAUNCH_RESULT();
}

// The K split for M <= 2 only: from M = 3 a CTA needs ~150-180 registers a thread, one CTA fits an SM, and
// twice the CTAs take two waves (H100, N = 4096, M = 8: 30 -> 48 us).
template <int M>
int launch_gemv(half *y, const half *x, const uint32_t *qw, const uint32_t *qz, const half *sc, int N, int K, int G,
                cudaStream_t s) {
    if constexpr (M <= 2)
        if (N <= GEMV_KS_MAX_N) return launch_gemv_ks<M, 2>(y, x, qw, qz, sc, N, K, G, s);
    return launch_gemv_ks<M, 1>(y, x, qw, qz, sc, N, K, G, s);
}

// ---- mma (WMMA) -----------------------------------------------------------------------------------------

constexpr int BM = 64, BN = 64, MMA_THREADS = 128; // 4 warps, each a 32x32 quarter of the tile

// One k-tile's global loads, held in registers while the tile before it is multiplied: x (BM x BK halves, rows
// past M zero) and, per thread, WPT words of one output row's BK inputs with that row's zero point and scale.
template <int BK> struct MmaLoads {
    static constexpr int XV = BM * BK / 8 / MMA_THREADS; // 16-byte x loads per thread
    static constexpr int WPT = BN * BK / 8 / MMA_THREADS; // weight words per thread (BK 64: 4, BK 32: 2)
    uint4 x[XV];
    uint32_t w[WPT];
    uint32_t z;
    half s;
};

// Thread t's share of B: row t / (BK / 8 / WPT) of the tile, words (t % that) * WPT...
template <int BK> __device__ __forceinline__ void mma_load(MmaLoads<BK> &L, const half *__restrict__ x,
                                                            const uint32_t *__restrict__ qw,
                                                            const uint32_t *__restrict__ qz,
                                                            const half *__restrict__ sc, int M, int N, int K, int G,
                                                            int m0, int n0, int k0, int tid) {
    constexpr int WPT = MmaLoads<BK>::WPT, PER_ROW = BK / 8 / WPT;
#pragma unroll
    for (int j = 0; j < MmaLoads<BK>::XV; j++) {
        const int i = tid + MMA_THREADS * j, r = i / (BK / 8), c = i % (BK / 8) * 8, m = m0 + r;
        L.x[j] = m < M ? __ldg(reinterpret_cast<const uint4 *>(x + (size_t)m * K + k0 + c)) : make_uint4(0, 0, 0, 0);
    }
    const int n = n0 + tid / PER_ROW, wo = k0 / 8 + tid % PER_ROW * WPT, KW = K / 8, ng = K / G;
    if (n < N) {
        const uint32_t *src = qw + (size_t)n * KW + wo;
        if constexpr (WPT == 4) {
            uint4 t = __ldg(reinterpret_cast<const uint4 *>(src));
            L.w[0] = t.x, L.w[1] = t.y, L.w[2] = t.z, L.w[3] = t.w;
        } else {
            uint2 t = __ldg(reinterpret_cast<const uint2 *>(src));
            L.w[0] = t.x, L.w[1] = t.y;
        }
        const int g = k0 / G; // G % BK == 0: the tile lies in one group
        L.z = zero_of(qz, (size_t)n, (ng + 7) / 8, g);
        L.s = __ldg(sc + (size_t)n * ng + g);
    } else { // rows past N: zero weights
#pragma unroll
        for (int v = 0; v < WPT; v++) L.w[v] = 0;
        L.z = 0, L.s = __float2half(0.f);
    }
}

// A CTA computes a BM x BN tile of y.  Per BK-deep k-tile: the loads of the next tile are issued into registers
// before the current one is multiplied (global latency hidden behind the MMAs), then stored: x as is, the
// weights dequantized to fp16 B[n][k] (read as col_major fragments).  WMMA 16x16x16, fp16 in, fp32 accumulate.
template <int BK>
__global__ void __launch_bounds__(MMA_THREADS)
    wmma_kernel(half *__restrict__ y, const half *__restrict__ x, const uint32_t *__restrict__ qw,
                const uint32_t *__restrict__ qz, const half *__restrict__ sc, int M, int N, int K, int G) {
    using namespace nvcuda;
    constexpr int LD = BK + 8, WPT = MmaLoads<BK>::WPT, PER_ROW = BK / 8 / WPT, LDC = BN + 4;
    constexpr size_t AB = sizeof(half) * (size_t)(BM + BN) * LD, CB = sizeof(float) * (size_t)BM * LDC;
    __shared__ __align__(128) unsigned char smem[AB > CB ? AB : CB]; // A and B tiles; then the fp32 C tile
    half(*As)[LD] = reinterpret_cast<half(*)[LD]>(smem);
    half(*Bs)[LD] = reinterpret_cast<half(*)[LD]>(smem + sizeof(half) * BM * LD);
    float(*Cs)[LDC] = reinterpret_cast<float(*)[LDC]>(smem);
    const int tid = threadIdx.x, warp = tid / 32, wm = warp / 2, wn = warp % 2;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 2; j++) wmma::fill_fragment(acc[i][j], 0.f);
    MmaLoads<BK> L;
    mma_load<BK>(L, x, qw, qz, sc, M, N, K, G, m0, n0, 0, tid);
    for (int k0 = 0; k0 < K; k0 += BK) {
#pragma unroll
        for (int j = 0; j < MmaLoads<BK>::XV; j++) {
            const int i = tid + MMA_THREADS * j;
            *reinterpret_cast<uint4 *>(&As[i / (BK / 8)][i % (BK / 8) * 8]) = L.x[j];
        }
        {
            const half2 zp = zero_pair(L.z), s2 = __half2half2(L.s);
            half *dst = &Bs[tid / PER_ROW][tid % PER_ROW * WPT * 8];
#pragma unroll
            for (int v = 0; v < WPT; v++) *reinterpret_cast<uint4 *>(dst + 8 * v) = dequant_word(L.w[v], zp, s2);
        }
        __syncthreads();
        if (k0 + BK < K) mma_load<BK>(L, x, qw, qz, sc, M, N, K, G, m0, n0, k0 + BK, tid);
#pragma unroll
        for (int kk = 0; kk < BK; kk += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, half, wmma::row_major> a[2];
            wmma::fragment<wmma::matrix_b, 16, 16, 16, half, wmma::col_major> b[2]; // (k, n) at Bs[n][k]
#pragma unroll
            for (int i = 0; i < 2; i++) wmma::load_matrix_sync(a[i], &As[wm * 32 + i * 16][kk], LD);
#pragma unroll
            for (int j = 0; j < 2; j++) wmma::load_matrix_sync(b[j], &Bs[wn * 32 + j * 16][kk], LD);
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
            wmma::store_matrix_sync(&Cs[wm * 32 + i * 16][wn * 32 + j * 16], acc[i][j], LDC, wmma::mem_row_major);
    __syncthreads();
    for (int i = tid; i < BM * BN / 2; i += MMA_THREADS) { // pairs of outputs (N % 8 == 0)
        const int r = i / (BN / 2), cc = i % (BN / 2) * 2, m = m0 + r, nn = n0 + cc;
        if (m < M && nn < N) *reinterpret_cast<half2 *>(y + (size_t)m * N + nn) = __floats2half2_rn(Cs[r][cc], Cs[r][cc + 1]);
    }
}

// ---- dequant (for cuBLAS) -----------------------------------------------------------------------------

// A warp per output row (DQ_ROWS rows per CTA), its lanes over the row's words: each makes 8 fp16 values (one
// 16-byte store; a warp writes 512 contiguous bytes).  No 64-bit division per word (v1-v6 divided a flat index
// by the row length for every word).
constexpr int DQ_ROWS = 8;
__global__ void __launch_bounds__(32 * DQ_ROWS)
    dequant_kernel(half *__restrict__ W, const uint32_t *__restrict__ qw, const uint32_t *__restrict__ qz,
                   const half *__restrict__ sc, int K, int G, int n_begin, int n_count) {
    const int r = blockIdx.x * DQ_ROWS + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (r >= n_count) return;
    const int KW = K / 8, ng = K / G, ZW = (ng + 7) / 8;
    const size_t n = (size_t)n_begin + r;
    const uint32_t *row = qw + n * KW;
    half *out = W + (size_t)r * K;
    for (int j = lane; j < KW; j += 32) {
        const int g = 8 * j / G; // G % 8 == 0: the word lies in one group
        const uint32_t w = __ldg(row + j);
        const half2 zp = zero_pair(zero_of(qz, n, ZW, g)), s2 = __half2half2(__ldg(sc + n * ng + g));
        *reinterpret_cast<uint4 *>(out + 8 * j) = dequant_word(w, zp, s2);
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

extern "C" int lmb_cuda_w4a16_gemv(void *y, const void *x, const uint32_t *qweight, const uint32_t *zeros,
                                   const void *scales, int M, int N, int K, int group, lmb_stream s) {
    if (M <= 0) return 0;
    if (M > LMB_W4A16_GEMV_MAX_M || N % 8 || K % 8 || group <= 0 || group % 8 || K % group || (uintptr_t)x % 16)
        return (int)cudaErrorInvalidValue;
    half *yh = (half *)y;
    const half *xh = (const half *)x, *sh = (const half *)scales;
    switch (M) {
    case 1: return launch_gemv<1>(yh, xh, qweight, zeros, sh, N, K, group, s);
    case 2: return launch_gemv<2>(yh, xh, qweight, zeros, sh, N, K, group, s);
    case 3: return launch_gemv<3>(yh, xh, qweight, zeros, sh, N, K, group, s);
    case 4: return launch_gemv<4>(yh, xh, qweight, zeros, sh, N, K, group, s);
    case 5: return launch_gemv<5>(yh, xh, qweight, zeros, sh, N, K, group, s);
    case 6: return launch_gemv<6>(yh, xh, qweight, zeros, sh, N, K, group, s);
    case 7: return launch_gemv<7>(yh, xh, qweight, zeros, sh, N, K, group, s);
    default: return launch_gemv<8>(yh, xh, qweight, zeros, sh, N, K, group, s);
    }
}

extern "C" int lmb_cuda_w4a16_mma(void *y, const void *x, const uint32_t *qweight, const uint32_t *zeros,
                                  const void *scales, int M, int N, int K, int group, lmb_stream s) {
    if (M <= 0) return 0;
    if (N % 8 || K % 32 || group <= 0 || group % 32 || K % group || (uintptr_t)x % 16 || (uintptr_t)qweight % 16)
        return (int)cudaErrorInvalidValue;
    dim3 grid((N + BN - 1) / BN, (M + BM - 1) / BM);
    if (group % 64 == 0) // k-tiles of 64 (a tile lies in one group)
        wmma_kernel<64><<<grid, MMA_THREADS, 0, s>>>((half *)y, (const half *)x, qweight, zeros, (const half *)scales,
                                                     M, N, K, group);
    else
        wmma_kernel<32><<<grid, MMA_THREADS, 0, s>>>((half *)y, (const half *)x, qweight, zeros, (const half *)scales,
                                                     M, N, K, group);
    return LMB_LAUNCH_RESULT();
}

extern "C" int lmb_cuda_w4a16_dequant(void *w, const uint32_t *qweight, const uint32_t *zeros, const void *scales,
                                      int N, int K, int group, int n_begin, int n_count, lmb_stream s) {
    if (n_count <= 0) return 0;
    if (N % 8 || K % 8 || group <= 0 || group % 8 || K % group || n_begin < 0 || n_begin + n_count > N ||
        (uintptr_t)w % 16)
        return (int)cudaErrorInvalidValue;
    dequant_kernel<<<(n_count + DQ_ROWS - 1) / DQ_ROWS, 32 * DQ_ROWS, 0, s>>>((half *)w, qweight, zeros,
                                                                              (const half *)scales, K, group,
                                                                              n_begin, n_count);
    return LMB_LAUNCH_RESULT();
}

extern "C" int lmb_cuda_fill_bits(void *p, size_t n_words, unsigned long long seed, lmb_stream s) {
    if (n_words == 0) return 0;
    fill_bits_kernel<<<4096, 256, 0, s>>>((uint32_t *)p, n_words, seed);
    return LMB_LAUNCH_RESULT();
}
