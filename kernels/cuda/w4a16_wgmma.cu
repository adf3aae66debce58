// w4a16_wgmma.cu — the W4A16 GEMM on Hopper's warpgroup MMA (sm_90a): y[M, N] = x[M, K] W^T with W in the W4
// rows layout (kernels_cuda.h).  The backend runs it for M 9..128 (decode batches past the gemv's 8 rows), where it
// beats the WMMA kernel of w4a16.cu (12288 x 4096 at M 64: 41 against 54 us on the H100; docs/PERF.md v12).
//
// The weights are wgmma's A operand, straight from registers: y^T = W x^T, so a warpgroup computes 64 output
// rows (the MMA's M) against NT tokens (its N: 64, 128 or 256).  Per 64-deep k-tile:
//   - x's NT x 64 tile goes to shared memory by cp.async in wgmma's K-major 128-byte-swizzled layout (wgmma.cuh),
//     the CTA's 128 rows x 64 inputs of packed weights (32 bytes a row) next to it; STAGES tiles in flight;
//   - each thread reads its two rows' 8 words (rows g and g + 8 of its warp's 16) and makes its A fragments in
//     registers: for k16 step s, word 2s gives inputs 2t, 2t + 1 and word 2s + 1 inputs 2t + 8, 2t + 9 (nibbles t
//     and t + 4: LMB_AWQ_ORDER), each pair (q - z) * s rounded once to fp16, as dequant_pair does everywhere; the
//     scales and zero points of the CTA's rows over its groups are loaded into shared memory once;
//   - 4 wgmma m64nNTk16 per warpgroup; the next tile's fragments are made while they run, and its MMAs are
//     issued before the wait on the tile before (one barrier a tile).
// A CTA is 2 warpgroups (128 output rows) x NT tokens.  When that gives too few CTAs for the SMs (o and down at
// decode batch sizes), K is split over gridDim.z CTAs: each writes its fp32 partial tile to a workspace, and the
// last to finish (a ticket per tile) adds them in split order — deterministic — and writes y.  The epilogue goes
// through shared memory so that y is written in 16-byte stores along N.
// Where it stands (H100): ~0.8 TB/s of weights at small M and ~350 TFLOP/s at M 256, against cuBLAS fp16's
// 40-45 us on 12288 x 4096: not yet the kernel that puts W4A16 ahead offline.  Commit 39aa1b7 has the next
// version, written and emulated but never run on a GPU: the packed weights by whole 128-byte lines per row, 256-row
// tiles (two m64 blocks a warpgroup) above M 128, the split-K sum by the last CTA straight from the workspace.
#include "w4.cuh"
#include "wgmma.cuh"

using namespace lmb;

#if LMB_HAVE_WGMMA || defined(LMB_EMU)
namespace {

constexpr int CTA_ROWS = 128, BK = 64, THREADS = 256;
constexpr int W_TILE = CTA_ROWS * BK / 2; // bytes of packed weights per k-tile
constexpr int OUT_LD = 72;                // halves per token in the epilogue's staging: 64 rows + 8 (no conflicts)
constexpr int SMEM_MAX = 227 * 1024 - 1024; // dynamic shared memory a CTA may ask for (the static 1 KB aside)

template <int NT> constexpr int stages() { return NT == 256 ? 5 : 4; } // NT <= 128: two CTAs fit an SM
template <int NT> constexpr int x_tile() { return NT * BK * 2; }
template <int NT> constexpr int stage_bytes() { return x_tile<NT>() + W_TILE; }
// The stages (from a 1024-aligned start), then the quantization parameters of the CTA's rows over its groups:
// CTA_ROWS words per group.
template <int NT> constexpr size_t smem_bytes(int groups) {
    return 1024 + (size_t)stages<NT>() * stage_bytes<NT>() + (size_t)CTA_ROWS * 4 * groups;
}
static_assert(2 * 64 * OUT_LD * 2 <= 4 * (64 * BK * 2 + W_TILE), "epilogue staging fits the stages");

// Split z of `splits` takes k-tiles [kt0, kt0 + T) of KT: the kernel and plan_smem's sizing use this one split.
struct SplitRange {
    int kt0, T;
};
__host__ __device__ inline SplitRange split_range(int KT, int z, int splits) {
    const int kt0 = (int)((long long)KT * z / splits);
    return {kt0, (int)((long long)KT * (z + 1) / splits) - kt0};
}

// Groups that a split of T k-tiles from k-tile kt0 touches.
__host__ __device__ constexpr int split_groups(int kt0, int T, int G) { return ((kt0 + T) * BK + G - 1) / G - kt0 * BK / G; }

// One thread's part of a k-tile's A fragments: 4 k16 steps x 4 registers.
using Frags = uint32_t[4][4];

__device__ __forceinline__ void wgmma_hold_frags(Frags &a) {
#pragma unroll
    for (int s = 0; s < 4; s++)
#pragma unroll
        for (int r = 0; r < 4; r++) asm volatile("" : "+r"(a[s][r])::"memory");
}

template <int NT>
__global__ void __launch_bounds__(THREADS, NT == 256 ? 1 : 2)
    wgmma_kernel(half *__restrict__ y, const half *__restrict__ x, const uint32_t *__restrict__ qw,
                 const uint32_t *__restrict__ qz, const half *__restrict__ sc, float *__restrict__ ws,
                 unsigned *__restrict__ tickets, int M, int N, int K, int G, int splits) {
    LMB_DYNAMIC_SMEM(smem_raw);
    __shared__ unsigned last_split;
    unsigned char *smem = smem_raw + ((1024 - (smem_u32(smem_raw) & 1023)) & 1023); // swizzle atoms: 1024-aligned
    const int tid = threadIdx.x, wg = tid / 128, warp = tid % 128 / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
    const int n0 = blockIdx.x * CTA_ROWS, m0 = blockIdx.y * NT, z = blockIdx.z;
    const SplitRange sr = split_range(K / BK, z, splits);
    const int kt0 = sr.kt0, T = sr.T;
    const int KW = K / 8, ng = K / G, ZW = (ng + 7) / 8;
    const int r0 = wg * 64 + warp * 16 + g, nr0 = n0 + r0, nr1 = nr0 + 8; // this thread's rows g and g + 8

    auto x_stage = [&](int st) { return smem + (size_t)st * stage_bytes<NT>(); };
    auto w_stage = [&](int st) { return smem + (size_t)st * stage_bytes<NT>() + x_tile<NT>(); };

    // k-tile kt (of the whole K) into stage st: x rows past M and weight rows past N are zero-filled.
    auto load_tile = [&](int kt, int st) {
        const int k0 = kt * BK;
        unsigned char *xs = x_stage(st);
#pragma unroll
        for (int j = 0; j < NT * 8 / THREADS; j++) {
            const int i = tid + THREADS * j, m = i / 8, c = i % 8, gm = m0 + m;
            cp_async16(xs + m * 128 + ((c ^ (m & 7)) << 4), x + (size_t)(gm < M ? gm : 0) * K + k0 + 8 * c,
                       gm < M ? 16 : 0);
        }
        const int r = tid / 2, h = tid % 2, n = n0 + r;
        cp_async16(w_stage(st) + r * 32 + 16 * h, qw + (size_t)(n < N ? n : 0) * KW + k0 / 8 + 4 * h, n < N ? 16 : 0);
    };

    // The CTA's rows' quantization parameters over its groups, loaded once: word [group][row] = the scale's bits,
    // and (1024 + zero) as fp16 above them; rows past N get scale 0.
    constexpr int STAGES = stages<NT>();
    uint32_t *qp = reinterpret_cast<uint32_t *>(smem + (size_t)STAGES * stage_bytes<NT>());
    const int g_begin = kt0 * BK / G;
    auto load_qparams = [&]() {
        const int ngs = split_groups(kt0, T, G);
#pragma unroll 4
        for (int i = tid; i < CTA_ROWS * ngs; i += THREADS) {
            const int r = i / ngs, gg = i % ngs, n = n0 + r, gi = g_begin + gg;
            uint32_t v = 0;
            if (n < N) {
                half sv = __ldg(sc + (size_t)n * ng + gi);
                uint16_t b;
                memcpy(&b, &sv, 2);
                v = b | (0x6400u | zero_of(qz, (size_t)n, ZW, gi)) << 16;
            }
            qp[gg * CTA_ROWS + r] = v;
        }
    };

    // This thread's A fragments of k-tile kt, in stage st.
    auto make_frags = [&](int kt, int st, Frags &a) {
        const uint32_t *q = qp + (kt * BK / G - g_begin) * CTA_ROWS + r0;
        const uint32_t q0 = q[0], q1 = q[8];
        const half2 s0 = as_half2((q0 & 0xFFFFu) * 0x10001u), zp0 = as_half2((q0 >> 16) * 0x10001u);
        const half2 s1 = as_half2((q1 & 0xFFFFu) * 0x10001u), zp1 = as_half2((q1 >> 16) * 0x10001u);
        const unsigned char *w = w_stage(st);
        const uint4 a0 = *reinterpret_cast<const uint4 *>(w + r0 * 32), b0 = *reinterpret_cast<const uint4 *>(w + r0 * 32 + 16);
        const uint4 a1 = *reinterpret_cast<const uint4 *>(w + (r0 + 8) * 32),
                    b1 = *reinterpret_cast<const uint4 *>(w + (r0 + 8) * 32 + 16);
        const uint32_t w0[8] = {a0.x, a0.y, a0.z, a0.w, b0.x, b0.y, b0.z, b0.w};
        const uint32_t w1[8] = {a1.x, a1.y, a1.z, a1.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
        for (int s = 0; s < 4; s++) {
            a[s][0] = half2_bits(dequant_pair(w0[2 * s], t, zp0, s0));
            a[s][1] = half2_bits(dequant_pair(w1[2 * s], t, zp1, s1));
            a[s][2] = half2_bits(dequant_pair(w0[2 * s + 1], t, zp0, s0));
            a[s][3] = half2_bits(dequant_pair(w1[2 * s + 1], t, zp1, s1));
        }
    };

    float acc[NT / 2];
#pragma unroll
    for (int i = 0; i < NT / 2; i++) acc[i] = 0.f;
    Frags fa, fb; // fragments of alternate k-tiles: one read by MMAs in flight while the other is made

    // Prologue: tiles 0 .. STAGES-2 in flight, the quantization parameters, tile 0's fragments.
#pragma unroll
    for (int i = 0; i < STAGES - 1; i++) {
        if (i < T) load_tile(kt0 + i, i);
        cp_async_commit();
    }
    load_qparams();
    cp_async_wait<STAGES - 2>();
    fence_proxy_async();
    __syncthreads();
    make_frags(kt0, 0, fa);

    // Step i (use: tile i's fragments, fill: for tile i+1).  On entry the committed copies are tiles 0 ..
    // i+STAGES-2 and this warpgroup's MMAs of tile i-1 may still run.  Tile i's MMAs are issued; once tile i-1's
    // are done (here, and at the barrier in every warpgroup) its stage takes tile i+STAGES-1, and tile i+1's
    // fragments are made while tile i's MMAs run: the tensor cores always have the next tile queued.
    auto step = [&](int i, Frags &use, Frags &fill) {
        const unsigned char *xs = x_stage(i % STAGES);
        wgmma_hold(acc);
        wgmma_fence();
#pragma unroll
        for (int s = 0; s < 4; s++) wgmma_rs<NT>(acc, use[s], smem_desc_sw128(xs + 32 * s));
        wgmma_commit();
        wgmma_hold(acc);
        wgmma_wait<1>();            // tile i-1's MMAs are done
        wgmma_hold_frags(fill);     // (fill held tile i-1's fragments: untouched until here)
        cp_async_wait<STAGES - 3>(); // tile i+1 has landed (this thread's copies) ...
        fence_proxy_async();         // ... for wgmma's reads too ...
        __syncthreads();             // ... and everyone's; every warpgroup is done with stage (i-1) % STAGES
        if (i + STAGES - 1 < T) load_tile(kt0 + i + STAGES - 1, (i + STAGES - 1) % STAGES);
        cp_async_commit();
        if (i + 1 < T) make_frags(kt0 + i + 1, (i + 1) % STAGES, fill);
    };
    for (int i = 0; i < T; i += 2) {
        step(i, fa, fb);
        if (i + 1 < T) step(i + 1, fb, fa);
    }
    wgmma_wait<0>();
    wgmma_hold(acc);
    cp_async_wait<0>();
    __syncthreads();

    if (splits > 1) { // partial to ws[z][n][m] (m padded to a multiple of 8); the last split of the tile adds them
        const int Mp = (M + 7) / 8 * 8;
#pragma unroll
        for (int j = 0; j < NT / 8; j++) {
            const int m = m0 + 8 * j + 2 * t;
            if (m < Mp) {
                if (nr0 < N) *reinterpret_cast<float2 *>(ws + ((size_t)z * N + nr0) * Mp + m) = make_float2(acc[4 * j], acc[4 * j + 1]);
                if (nr1 < N) *reinterpret_cast<float2 *>(ws + ((size_t)z * N + nr1) * Mp + m) = make_float2(acc[4 * j + 2], acc[4 * j + 3]);
            }
        }
        __threadfence();
        __syncthreads();
        if (tid == 0) {
            unsigned *tk = tickets + blockIdx.x + gridDim.x * blockIdx.y;
            last_split = atomicAdd(tk, 1u) == (unsigned)splits - 1;
            if (last_split) *tk = 0; // ready for the next launch
        }
        __syncthreads();
        if (!last_split) return;
        __threadfence();
#pragma unroll
        for (int j = 0; j < NT / 8; j++) {
            const int m = m0 + 8 * j + 2 * t;
            if (m >= Mp) continue;
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const int n = h ? nr1 : nr0;
                if (n >= N) continue;
                float2 v = z == 0 ? make_float2(acc[4 * j + 2 * h], acc[4 * j + 2 * h + 1])
                                  : __ldcg(reinterpret_cast<const float2 *>(ws + (size_t)n * Mp + m));
                for (int sp = 1; sp < splits; sp++) {
                    const float2 p = sp == z ? make_float2(acc[4 * j + 2 * h], acc[4 * j + 2 * h + 1])
                                             : __ldcg(reinterpret_cast<const float2 *>(ws + ((size_t)sp * N + n) * Mp + m));
                    v.x += p.x, v.y += p.y;
                }
                acc[4 * j + 2 * h] = v.x, acc[4 * j + 2 * h + 1] = v.y;
            }
        }
    }

    // fp16 through shared memory, [token][row] per warpgroup, then 16-byte stores along N.
    half *out = reinterpret_cast<half *>(smem);
    {
        half *o = out + (size_t)wg * NT * OUT_LD + warp * 16 + g;
#pragma unroll
        for (int j = 0; j < NT / 8; j++) {
            const int m = 8 * j + 2 * t;
            o[m * OUT_LD] = __float2half_rn(acc[4 * j]);
            o[(m + 1) * OUT_LD] = __float2half_rn(acc[4 * j + 1]);
            o[m * OUT_LD + 8] = __float2half_rn(acc[4 * j + 2]);
            o[(m + 1) * OUT_LD + 8] = __float2half_rn(acc[4 * j + 3]);
        }
    }
    __syncthreads();
#pragma unroll
    for (int j = 0; j < NT * 16 / THREADS; j++) {
        const int i = tid + THREADS * j, m = i / 16, v = i % 16 / 8, c = i % 8, gm = m0 + m, n = n0 + 64 * v + 8 * c;
        if (gm < M && n < N)
            *reinterpret_cast<uint4 *>(y + (size_t)gm * N + n) =
                *reinterpret_cast<const uint4 *>(out + ((size_t)v * NT + m) * OUT_LD + 8 * c);
    }
}

// Token tile for M: the one (of 64, 128, 256) that pads M least, the larger on a tie.
int pick_nt(int M) {
    if (M <= 64) return 64;
    if (M <= 128) return 128;
    const int p128 = (M + 127) / 128 * 128, p256 = (M + 255) / 256 * 256;
    return p128 < p256 ? 128 : 256;
}

struct Plan {
    int nt, splits;
    size_t smem;
};

template <int NT> size_t plan_smem(int K, int G, int splits) {
    int groups = 0;
    for (int z = 0; z < splits; z++) {
        const SplitRange sr = split_range(K / BK, z, splits);
        const int gz = split_groups(sr.kt0, sr.T, G);
        groups = gz > groups ? gz : groups;
    }
    return smem_bytes<NT>(groups);
}
size_t plan_smem(int nt, int K, int G, int splits) {
    return nt == 64 ? plan_smem<64>(K, G, splits) : nt == 128 ? plan_smem<128>(K, G, splits) : plan_smem<256>(K, G, splits);
}

// Splits of K: the count (1..8, each split at least 8 k-tiles) with the least estimated time, counting waves of
// CTAs over the SMs and the partials' traffic (written and read once, at ~3 TB/s), within the workspace and the
// tickets the caller has and the shared memory a CTA may have.  forced > 0: that count.
Plan plan(int M, int N, int K, int G, int sms, size_t ws_bytes, int n_tickets, int forced) {
    Plan p{pick_nt(M), 0, 0};
    const int tiles = (N + CTA_ROWS - 1) / CTA_ROWS * ((M + p.nt - 1) / p.nt), KT = K / BK;
    const size_t Mp = (size_t)(M + 7) / 8 * 8;
    double best = 1e300;
    for (int s = forced > 0 ? forced : 1; s <= (forced > 0 ? forced : 8); s++) {
        const size_t smem = plan_smem(p.nt, K, G, s);
        if (s > KT || (s > 1 && ((size_t)tiles > (size_t)n_tickets || (size_t)s * N * Mp * 4 > ws_bytes))) break;
        if (smem > (size_t)SMEM_MAX) continue;
        if (!forced && s > 1 && KT / s < 8) break;
        // CTAs an SM holds: the registers allow one of NT 256, two of NT <= 128; then shared memory
        const int by_regs = p.nt == 256 ? 1 : 2, by_smem = (int)((228 * 1024) / (smem + 1024));
        const int per_sm = by_smem < by_regs ? by_smem : by_regs, slots = sms * per_sm;
        const double tile_us = 2.0 * CTA_ROWS * p.nt * K / 7.0e6 * per_sm; // ~7 TFLOP/s an SM, shared by its CTAs
        const double waves = (double)((tiles * s + slots - 1) / slots);
        const double us = waves * tile_us / s + (s > 1 ? (double)s * N * Mp * 8 / 3.0e6 : 0);
        if (forced || us < best * 0.97) best = us, p.splits = s, p.smem = smem;
    }
    return p;
}

#ifndef LMB_EMU
int sm_count() {
    static int n = 0;
    if (!n) {
        int dev = 0;
        if (cudaGetDevice(&dev) || cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev)) n = 132;
    }
    return n;
}
#endif

template <int NT>
int launch(const Plan &p, half *y, const half *x, const uint32_t *qw, const uint32_t *qz, const half *sc, float *ws,
           unsigned *tickets, int M, int N, int K, int G, cudaStream_t s) {
    dim3 grid((N + CTA_ROWS - 1) / CTA_ROWS, (M + NT - 1) / NT, p.splits);
#ifndef LMB_EMU
    static bool attr = false;
    if (!attr) {
        cudaError_t e = cudaFuncSetAttribute(wgmma_kernel<NT>, cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM_MAX);
        if (e) return (int)e;
        attr = true;
    }
#endif
    wgmma_kernel<NT><<<grid, THREADS, p.smem, s>>>(y, x, qw, qz, sc, ws, tickets, M, N, K, G, p.splits);
    return LMB_LAUNCH_RESULT();
}

} // namespace
#endif

extern "C" int lmb_cuda_w4a16_wgmma_available(void) {
#if defined(LMB_EMU)
    return 1;
#elif LMB_HAVE_WGMMA
    static signed char known[64]; // per device: 0 unknown, 1 yes, -1 no
    int dev = 0, major = 0, minor = 0;
    if (cudaGetDevice(&dev) || dev < 0) return 0;
    if (dev < 64 && known[dev]) return known[dev] > 0;
    const bool yes = !cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) &&
                     !cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) && major == 9 && minor == 0;
    if (dev < 64) known[dev] = yes ? 1 : -1;
    return yes;
#else
    return 0;
#endif
}

extern "C" int lmb_cuda_w4a16_wgmma(void *y, const void *x, const uint32_t *qweight, const uint32_t *zeros,
                                    const void *scales, int M, int N, int K, int group, int splits, float *ws,
                                    size_t ws_bytes, unsigned *tickets, int n_tickets, lmb_stream s) {
    if (M <= 0) return 0;
    if (!lmb_cuda_w4a16_wgmma_available()) return (int)cudaErrorNotSupported;
    if (N % 8 || K % 64 || group <= 0 || group % 64 || K % group || (uintptr_t)x % 16 || (uintptr_t)qweight % 16 ||
        (uintptr_t)y % 16 || (uintptr_t)ws % 8)
        return (int)cudaErrorInvalidValue;
#if LMB_HAVE_WGMMA || defined(LMB_EMU)
#ifdef LMB_EMU
    const int sms = 4;
#else
    const int sms = sm_count();
#endif
    const Plan p = plan(M, N, K, group, sms, ws ? ws_bytes : 0, tickets ? n_tickets : 0, splits);
    if (!p.splits) return (int)cudaErrorInvalidValue; // a forced count that K, the workspace or the tickets refuse
    half *yh = (half *)y;
    const half *xh = (const half *)x, *sh = (const half *)scales;
    switch (p.nt) {
    case 64: return launch<64>(p, yh, xh, qweight, zeros, sh, ws, tickets, M, N, K, group, s);
    case 128: return launch<128>(p, yh, xh, qweight, zeros, sh, ws, tickets, M, N, K, group, s);
    default: return launch<256>(p, yh, xh, qweight, zeros, sh, ws, tickets, M, N, K, group, s);
    }
#else
    (void)splits, (void)ws_bytes, (void)n_tickets, (void)s;
    return (int)cudaErrorNotSupported;
#endif
}
