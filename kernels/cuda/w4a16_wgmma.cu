// w4a16_wgmma.cu — the W4A16 GEMM on Hopper's warpgroup MMA (sm_90a): y[M, N] = x[M, K] W^T with W in the W4
// rows layout (kernels_cuda.h), for decode batches past the gemv's 8 rows, where the WMMA kernel (w4a16.cu) is
// bound by shared memory and dequantize + cuBLAS pays a whole fp16 copy of the linear.
//
// The weights are wgmma's A operand, straight from registers: y^T = W x^T, so a warpgroup computes MB blocks of
// 64 output rows (the MMA's M) against NT tokens (its N: 64, 128 or 256).  Per 64-deep k-tile:
//   - one thread has the TMA copy x's NT x 64 tile to shared memory in wgmma's K-major 128-byte-swizzled layout
//     (wgmma.cuh), STAGES tiles in flight, each stage's mbarrier saying when it has landed: no per-thread copy
//     addresses, bounds or proxy fences in the k loop.  The packed weights come the same way a line at a time:
//     256 inputs, 128 bytes of each of the CTA's rows (whole L2 lines from DRAM: 32-byte pieces of 128 rows a
//     tile ran at ~0.8 TB/s), two lines held;
//   - each thread reads its rows' 8 words per block (rows g and g + 8 of its warp's 16) and makes its A fragments
//     in registers: for k16 step s, word 2s gives inputs 2t, 2t + 1 and word 2s + 1 inputs 2t + 8, 2t + 9 (nibbles
//     t and t + 4: LMB_AWQ_ORDER), each pair (q - z) * s rounded once to fp16, as dequant_pair does everywhere;
//     the scales and zero points of the CTA's rows are loaded into shared memory once a tile;
//   - 4 x MB wgmma m64nNTk16 per warpgroup; the next tile's fragments are made while they run.
// A CTA is 2 warpgroups (128 MB output rows) x NT tokens: MB = 2 halves x's traffic from L2 per weight row.
//
// Stream-K: the output tiles (row tile major: the token tiles of a row tile run side by side and share its
// weights in L2) times their k-tiles are U units of work, and CTA c of P takes units [U c / P, U (c + 1) / P).
// P = the tile count is one CTA a tile; P = the SMs' CTA slots gives every slot the same work whatever the
// tile count (12288 rows are 96 tiles of 128: 0.73 of a wave on 132 SMs).  A tile whose K is shared by several
// CTAs is finished by the one with its k-end.  A CTA works through its range's tiles from the last to the first:
// where it has a tile's k-start (or middle) it does that first, writes the fp32 partial to its workspace slot
// (one a CTA: only its range's last tile can be unfinished) and counts it in the tile's flag; where it has a
// tile's k-end it does that last, waits until the flag counts the others, and adds their partials and its own
// registers in k order — deterministic — before the whole-tile epilogue.  c is the order in which the CTAs
// started (an atomic counter), so a CTA waits only for CTAs that already run, and for work they do first: no
// deadlock whatever the GPU schedules.  Tiles go through shared memory so that y is written in 16-byte stores
// along N.
#include "w4.cuh"
#include "wgmma.cuh"

using namespace lmb;

#if LMB_HAVE_WGMMA || defined(LMB_EMU)
namespace {

constexpr int BK = 64, THREADS = 256, STAGES = 4;
constexpr int LINE_TILES = 4;               // k-tiles per line of packed weights: 256 inputs, 128 bytes a row
constexpr int SMEM_MAX = 227 * 1024 - 1024; // dynamic shared memory a CTA may ask for (the static 1 KB aside)

template <int MB> constexpr int cta_rows() { return 128 * MB; }
template <int MB> constexpr int w_line() { return cta_rows<MB>() * 128; } // bytes of a line for the CTA's rows
template <int MB> constexpr int out_ld() { return 64 * MB + 8; } // epilogue staging, halves per token: no conflicts
template <int NT> constexpr int x_tile() { return NT * BK * 2; }
// The quantization parameters' rows: a group's scales (halves) and zero points (bytes) padded by one bank, so
// that the prologue's stores (consecutive threads: consecutive groups of a row) do not conflict.
template <int MB> constexpr int qs_ld() { return cta_rows<MB>() + 2; }
template <int MB> constexpr int qz_ld() { return cta_rows<MB>() + 4; }
// x's stages (from a 1024-aligned start), two lines of packed weights, then the quantization parameters of the
// CTA's rows over its groups: fp16 scales [group][row], then zero points (a byte each) [group][row].  NT 64, MB 1
// at K 4096: 89 KB, so two such CTAs fit an SM; NT 128: 121 KB, one.
template <int NT, int MB> constexpr size_t smem_bytes(int groups) {
    return 1024 + (size_t)STAGES * x_tile<NT>() + 2 * w_line<MB>() + (size_t)(2 * qs_ld<MB>() + qz_ld<MB>()) * groups;
}
template <int NT, int MB> constexpr bool staging_fits() {
    return 2 * NT * out_ld<MB>() * 2 <= STAGES * x_tile<NT>() + 2 * w_line<MB>();
}

template <int MB> using Frags = uint32_t[MB][4][4]; // a thread's A fragments of a k-tile: blocks x k16 steps x 4

template <int MB> __device__ __forceinline__ void wgmma_hold_frags(Frags<MB> &a) {
#pragma unroll
    for (int b = 0; b < MB; b++)
#pragma unroll
        for (int s = 0; s < 4; s++)
#pragma unroll
            for (int r = 0; r < 4; r++) asm volatile("" : "+r"(a[b][s][r])::"memory");
}

// The first unit of CTA c of P over U units, and the CTA whose range holds unit u.
__host__ __device__ inline int unit_begin(int U, int c, int P) { return (int)((long long)U * c / P); }
__device__ inline int cta_of(int u, int U, int P) {
    int c = (int)((long long)u * P / U); // unit_begin(c) <= u: the CTA or one before it
    while (c + 1 < P && unit_begin(U, c + 1, P) <= u) c++;
    return c;
}

// CTAs an SM the register budget is cut for (the launch bounds): 2 for the small tiles, else 1 (no spills).
__host__ __device__ constexpr int min_ctas(int nt, int mb) { return nt >= 128 || mb == 2 ? 1 : 2; }

template <int NT, int MB>
__global__ void __launch_bounds__(THREADS, min_ctas(NT, MB))
    wgmma_kernel(const __grid_constant__ CUtensorMap xmap, const __grid_constant__ CUtensorMap wmap,
                 half *__restrict__ y, const uint32_t *__restrict__ qz, const half *__restrict__ sc,
                 float *__restrict__ ws, unsigned *__restrict__ tickets, int M, int N, int K, int gs, int ntt,
                 int tiles) {
    static_assert(staging_fits<NT, MB>(), "epilogue staging fits the stages and lines");
    constexpr int ROWS = cta_rows<MB>(), WL = w_line<MB>(), OUT_LD = out_ld<MB>();
    LMB_DYNAMIC_SMEM(smem_raw);
    __shared__ unsigned cta_no;
    __shared__ __align__(8) uint64_t full[STAGES]; // stage s's copies have landed (TMA)
    unsigned char *smem = smem_raw + ((1024 - (smem_u32(smem_raw) & 1023)) & 1023); // swizzle atoms: 1024-aligned
    const int tid = threadIdx.x, wg = tid / 128, warp = tid % 128 / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
    const int KT = K / BK, ng = KT >> gs, ZW = (ng + 7) / 8; // a group is 1 << gs k-tiles
    auto U = [&]() { return tiles * KT; }; // units of work: tiles x k-tiles
    // this thread's rows in the CTA: block b's rows g and g + 8 of its warp's 16
    auto row = [&](int b) { return wg * 64 * MB + b * 64 + warp * 16 + g; };

    unsigned char *const wline = smem + (size_t)STAGES * x_tile<NT>();
    constexpr int QS = qs_ld<MB>(), QZ = qz_ld<MB>();
    half *const qs = reinterpret_cast<half *>(wline + 2 * WL);           // scales [group][row]
    uint8_t *const qzb = reinterpret_cast<uint8_t *>(qs + (size_t)QS * ng); // zero points [group][row]
    auto x_stage = [&](int st) { return smem + (size_t)st * x_tile<NT>(); };

    float acc[MB][NT / 2];
    auto hold_acc = [&]() {
#pragma unroll
        for (int b = 0; b < MB; b++) wgmma_hold(acc[b]);
    };
    Frags<MB> fa, fb; // fragments of alternate k-tiles: one read by MMAs in flight while the other is made

    if (tid == 0) {
#pragma unroll
        for (int st = 0; st < STAGES; st++) mbar_init(&full[st], 1);
        mbar_fence_init();
    }
    __syncthreads();
    // k-tiles are numbered in the order the CTA loads them, across its tiles: number q goes to stage q % STAGES,
    // whose mbarrier completes its (q / STAGES)-th phase.
    int qb = 0; // the number of the segment's first k-tile
    auto wait_tile = [&](int q) { mbar_wait(&full[q % STAGES], (unsigned)(q / STAGES) & 1); };

    // The CTA's place in the stream-K order, in the order the CTAs started (a counter after the tile flags; the
    // last to start puts it back to 0): a CTA that waits for partials waits only for CTAs that started before it.
    if (tid == 0) {
        unsigned c = blockIdx.x;
        if (gridDim.x != (unsigned)tiles) {
            c = atomicAdd(tickets + tiles, 1u);
            if (c == gridDim.x - 1) tickets[tiles] = 0; // every other CTA has its number
        }
        cta_no = c;
    }
    __syncthreads();
    const int c = (int)cta_no, P = gridDim.x, u_lo = unit_begin(U(), c, P);
    // Segments (a tile's units within the range) from the last to the first: the range's last tile, where this
    // CTA has the k-start and leaves a partial, comes first; its first tile, where it has the k-end and adds the
    // others' partials, comes last, when they are written.
    for (int hi = unit_begin(U(), c + 1, P); hi > u_lo;) {
        const int tile = (hi - 1) / KT, u = tile * KT > u_lo ? tile * KT : u_lo, kb = u % KT, T = hi - u;
        hi = u;
        const int n0 = tile / ntt * ROWS, m0 = tile % ntt * NT, g_begin = kb >> gs;
        // Line l of the packed weights (inputs 256 l ..) goes to slot (l - the segment's first line) % 2.
        auto w_slot = [&](int kt) { return wline + ((kt / LINE_TILES - kb / LINE_TILES) & 1) * WL; };

        // One thread issues k-tile kt (of the whole K), number q: x's NT x 64 box, and the weights' line (the
        // CTA's rows x 128 bytes) when kt starts one or the segment, to stage q % STAGES.  The maps swizzle them as
        // wgmma and make_frags read them (16-byte chunk c of row r at c ^ (r % 8)) and zero-fill x rows past M,
        // weight rows past N and bytes past K.
        auto load_tile = [&](int kt, int q) {
            const int st = q % STAGES;
            const bool line = kt == kb || kt % LINE_TILES == 0;
            mbar_expect_tx(&full[st], x_tile<NT>() + (line ? WL : 0));
            tma_load_2d(x_stage(st), &xmap, kt * BK, m0, &full[st]);
            if (line) tma_load_2d(w_slot(kt), &wmap, kt / LINE_TILES * 128, n0, &full[st]);
        };

        // This thread's A fragments of k-tile kt (its line has landed).
        auto make_frags = [&](int kt, Frags<MB> &a) {
            const int c0 = kt % LINE_TILES * 2; // the tile's two 16-byte chunks of each row; rows r, r + 8 are g mod 8
#pragma unroll
            for (int b = 0; b < MB; b++) {
                const int gq = (kt >> gs) - g_begin, q = gq * QS + row(b), z = gq * QZ + row(b);
                const half2 s0 = __half2half2(qs[q]), s1 = __half2half2(qs[q + 8]);
                const half2 zp0 = zero_pair(qzb[z]), zp1 = zero_pair(qzb[z + 8]);
                const unsigned char *w0p = w_slot(kt) + row(b) * 128, *w1p = w0p + 8 * 128;
                const uint4 a0 = *reinterpret_cast<const uint4 *>(w0p + ((c0 ^ g) << 4)),
                            b0 = *reinterpret_cast<const uint4 *>(w0p + (((c0 + 1) ^ g) << 4));
                const uint4 a1 = *reinterpret_cast<const uint4 *>(w1p + ((c0 ^ g) << 4)),
                            b1 = *reinterpret_cast<const uint4 *>(w1p + (((c0 + 1) ^ g) << 4));
                const uint32_t w0[8] = {a0.x, a0.y, a0.z, a0.w, b0.x, b0.y, b0.z, b0.w};
                const uint32_t w1[8] = {a1.x, a1.y, a1.z, a1.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
                for (int s = 0; s < 4; s++) {
                    a[b][s][0] = half2_bits(dequant_pair(w0[2 * s], t, zp0, s0));
                    a[b][s][1] = half2_bits(dequant_pair(w1[2 * s], t, zp1, s1));
                    a[b][s][2] = half2_bits(dequant_pair(w0[2 * s + 1], t, zp0, s0));
                    a[b][s][3] = half2_bits(dequant_pair(w1[2 * s + 1], t, zp1, s1));
                }
            }
        };

#pragma unroll
        for (int b = 0; b < MB; b++)
#pragma unroll
            for (int i = 0; i < NT / 2; i++) acc[b][i] = 0.f;

        // Prologue: tiles 0 .. STAGES-2 in flight, the quantization parameters of the tile's rows over the
        // segment's groups (rows past N get scale 0), tile 0's fragments.
        if (tid == 0)
            for (int i = 0; i < STAGES - 1 && i < T; i++) load_tile(kb + i, qb + i);
        {
            const int ngs = ((kb + T - 1) >> gs) - g_begin + 1;
#pragma unroll 8 // loads in flight: this is on the segment's critical path
            for (int i = tid; i < ROWS * ngs; i += THREADS) {
                const int r = i / ngs, gg = i % ngs, n = n0 + r, gi = g_begin + gg;
                qs[gg * QS + r] = n < N ? __ldg(sc + (size_t)n * ng + gi) : __float2half(0.f);
                qzb[gg * QZ + r] = (uint8_t)(n < N ? zero_of(qz, (size_t)n, ZW, gi) : 0);
            }
        }
        __syncthreads(); // the quantization parameters
        wait_tile(qb);
        make_frags(kb, fa);

        // Step i (use: tile i's fragments, fill: for tile i+1).  On entry tiles 0 .. i+STAGES-2 are issued and
        // this warpgroup's MMAs of tile i-1 may still run.  Tile i's MMAs are issued; once tile i-1's are done
        // (here, and at the barrier in every warpgroup) its stage takes tile i+STAGES-1, and tile i+1's
        // fragments are made while tile i's MMAs run: the tensor cores always have the next tile queued.
        auto step = [&](int i, Frags<MB> &use, Frags<MB> &fill) {
            const unsigned char *xs = x_stage((qb + i) % STAGES);
            hold_acc();
            wgmma_fence();
#pragma unroll
            for (int s = 0; s < 4; s++)
#pragma unroll
                for (int b = 0; b < MB; b++) wgmma_rs<NT>(acc[b], use[b][s], smem_desc_sw128(xs + 32 * s));
            wgmma_commit();
            hold_acc();
            wgmma_wait<1>();             // tile i-1's MMAs are done
            wgmma_hold_frags<MB>(fill); // (fill held tile i-1's fragments: untouched until here)
            __syncthreads();            // every warpgroup is done with tile i-1's stage (and line)
            if (tid == 0 && i + STAGES - 1 < T) load_tile(kb + i + STAGES - 1, qb + i + STAGES - 1);
            if (i + 1 < T) {
                wait_tile(qb + i + 1);
                make_frags(kb + i + 1, fill);
            }
        };
        for (int i = 0; i < T; i += 2) {
            step(i, fa, fb);
            if (i + 1 < T) step(i + 1, fb, fa);
        }
        wgmma_wait<0>();
        hold_acc();
        __syncthreads();

        const int t0 = tile * KT, c_first = kb == 0 ? c : cta_of(t0, U(), P),
                  c_last = kb + T == KT ? c : cta_of(t0 + KT - 1, U(), P);
        if (c != c_last) { // the tile's k-start or middle: the partial to this CTA's slot in fragment order (a
                           // thread's float4 f at f * THREADS + tid), then the tile's flag counts it
            float4 *part = reinterpret_cast<float4 *>(ws + (size_t)c * (NT * ROWS)) + tid;
#pragma unroll
            for (int b = 0; b < MB; b++)
#pragma unroll
                for (int j = 0; j < NT / 8; j++)
                    __stcg(part + (b * (NT / 8) + j) * THREADS,
                           make_float4(acc[b][4 * j], acc[b][4 * j + 1], acc[b][4 * j + 2], acc[b][4 * j + 3]));
            __threadfence();
            __syncthreads();
            if (tid == 0) atomicAdd(tickets + tile, 1u);
        } else {
            if (c != c_first) { // the tile's k-end: wait for the other CTAs' partials (they wrote them first
                                // thing, and started before this CTA), add them in k order, then this CTA's
                if (tid == 0) {
                    while (ld_acquire(tickets + tile) != (unsigned)(c_last - c_first)) {
                    }
                    tickets[tile] = 0; // ready for the next launch
                }
                __syncthreads();
                constexpr int F4 = MB * NT / 8, B = F4 % 12 == 0 ? 12 : F4 > 16 && MB == 1 ? 8 : 4; // float4s a thread; loads in flight
                static_assert(F4 % B == 0, "whole batches");
                const float4 *part = reinterpret_cast<const float4 *>(ws) + tid;
#pragma unroll
                for (int f0 = 0; f0 < F4; f0 += B) {
                    float4 s[B];
#pragma unroll
                    for (int f = 0; f < B; f++) s[f] = __ldcg(part + ((size_t)c_first * F4 + f0 + f) * THREADS);
                    for (int cc = c_first + 1; cc < c_last; cc++) {
                        float4 a[B];
#pragma unroll
                        for (int f = 0; f < B; f++) a[f] = __ldcg(part + ((size_t)cc * F4 + f0 + f) * THREADS);
#pragma unroll
                        for (int f = 0; f < B; f++) s[f].x += a[f].x, s[f].y += a[f].y, s[f].z += a[f].z, s[f].w += a[f].w;
                    }
#pragma unroll
                    for (int f = 0; f < B; f++) {
                        float *d = &acc[(f0 + f) / (NT / 8)][(f0 + f) % (NT / 8) * 4];
                        d[0] = s[f].x + d[0], d[1] = s[f].y + d[1], d[2] = s[f].z + d[2], d[3] = s[f].w + d[3];
                    }
                }
            }
            // the tile's sum: fp16 through shared memory, [token][row] per warpgroup, then 16-byte stores along N
            half *out = reinterpret_cast<half *>(smem);
#pragma unroll
            for (int b = 0; b < MB; b++) {
                half *o = out + (size_t)wg * NT * OUT_LD + b * 64 + warp * 16 + g;
#pragma unroll
                for (int j = 0; j < NT / 8; j++) {
                    const int m = 8 * j + 2 * t;
                    o[m * OUT_LD] = __float2half_rn(acc[b][4 * j]);
                    o[(m + 1) * OUT_LD] = __float2half_rn(acc[b][4 * j + 1]);
                    o[m * OUT_LD + 8] = __float2half_rn(acc[b][4 * j + 2]);
                    o[(m + 1) * OUT_LD + 8] = __float2half_rn(acc[b][4 * j + 3]);
                }
            }
            __syncthreads();
            constexpr int CHUNKS = 8 * MB; // 16-byte chunks of a warpgroup's rows per token
#pragma unroll
            for (int j = 0; j < NT * 2 * CHUNKS / THREADS; j++) {
                const int i = tid + THREADS * j, m = i / (2 * CHUNKS), v = i % (2 * CHUNKS) / CHUNKS, ch = i % CHUNKS;
                const int gm = m0 + m, n = n0 + 64 * MB * v + 8 * ch;
                if (gm < M && n < N)
                    *reinterpret_cast<uint4 *>(y + (size_t)gm * N + n) =
                        *reinterpret_cast<const uint4 *>(out + ((size_t)v * NT + m) * OUT_LD + 8 * ch);
            }
        }
        qb += T;
        fence_proxy_async(); // this thread's stores to the staging come before the next tile's copies into it
        __syncthreads();     // the stages and the staging are free for the next tile
    }
}

struct Plan {
    int nt, mb, P, tiles, ntt;
    size_t smem;
};

size_t plan_smem(int nt, int mb, int groups) {
    if (mb == 2) return nt == 64 ? smem_bytes<64, 2>(groups) : smem_bytes<128, 2>(groups);
    return nt == 64    ? smem_bytes<64, 1>(groups)
           : nt == 128 ? smem_bytes<128, 1>(groups)
           : nt == 192 ? smem_bytes<192, 1>(groups)
                       : smem_bytes<256, 1>(groups);
}

// Tile shape for M (when the caller does not force one): M <= 128 one token tile of 64 or 128 and 128 rows.
// Larger M: the tile of 256, 192 tokens x 128 rows or 128 x 256 rows (MB 2) that pads M least, in that order
// on a tie.  Wide token tiles come first: each dequantized weight serves NT tokens, and the dequantization is
// what a k-tile spends most instructions on (H100, 12288 x 4096 at M 256: 51.5 us with 256 x 128, 72.6 with
// 128 x 256).
void pick_shape(int M, int &nt, int &mb) {
    if (M <= 64) nt = 64, mb = 1;
    else if (M <= 128) nt = 128, mb = 1;
    else {
        const int p256 = (M + 255) / 256 * 256, p192 = (M + 191) / 192 * 192, p128 = (M + 127) / 128 * 128;
        if (p256 <= p192 && p256 <= p128) nt = 256, mb = 1;
        else if (p192 <= p128) nt = 192, mb = 1;
        else nt = 128, mb = 2;
    }
}

// CTAs an SM holds at once: the launch bounds' register budget and the shared memory (228 KB an SM; a CTA also
// takes 1 KB of the driver's and ~1 KB of static: 3 KB counted).
int ctas_per_sm(int nt, int mb, size_t smem) {
    const int by_regs = min_ctas(nt, mb), by_smem = (int)((size_t)228 * 1024 / (smem + 3 * 1024));
    return by_regs < by_smem ? by_regs : by_smem;
}

// CTAs: forced > 0 gives every tile's K to `forced` CTAs (P = tiles x forced).  Otherwise the count with the
// least estimated time among one CTA a tile, tiles x 2..8 and the SMs' CTA slots (one wave), within the
// workspace (a partial slot a CTA) and the flags (a tile each, and the start counter) the caller has.  The
// estimate: CTAs go round the SMs and an SM works through its CTAs' units at its own rate (a k-tile of 128 rows
// at ~5.2 TFLOP/s, and no faster than ~0.55 us: the dequantization and the pipeline's latency); a shared tile
// adds its k-end CTA's wait for the other partials (read at ~150 GB/s an SM) and ~1.5 us.  (H100, M 192, one
// CTA a tile: 12288 x 4096 in 42.0 us, 4096 x 4096 in 41.0.  At M 128 on 12288 x 4096 one CTA a tile, 32.9 us,
// now beats the 132 this picks, 34.3: the fixed cost is low there.)
// P = 0: refused (a K too deep for the shared memory, or a forced count that K, the workspace or the flags
// refuse).
Plan plan(int M, int N, int K, int G, int sms, size_t ws_bytes, int n_tickets, int forced, int nt, int mb, int ctas) {
    Plan p{nt, mb, 0, 0, 0, 0};
    if (!p.nt) pick_shape(M, p.nt, p.mb);
    const int rows = 128 * p.mb, KT = K / BK;
    p.ntt = (M + p.nt - 1) / p.nt;
    p.tiles = (N + rows - 1) / rows * p.ntt;
    p.smem = plan_smem(p.nt, p.mb, K / G);
    if (p.smem > (size_t)SMEM_MAX) return p;
    const long long U = (long long)p.tiles * KT; // < 2^31: the launcher refuses more
    const size_t part = (size_t)rows * p.nt * 4; // a CTA's partial slot
    const long long slots = (long long)sms * ctas_per_sm(p.nt, p.mb, p.smem);
    const bool can_share = ws_bytes > 0 && p.tiles < n_tickets;
    auto fits = [&](long long P) {
        return P == p.tiles || (can_share && P <= U && (size_t)P * part <= ws_bytes);
    };
    if (U >= (1LL << 31)) return p;
    if (forced > 0 || ctas > 0) {
        const long long P = ctas > 0 ? ctas : (long long)p.tiles * forced;
        if ((ctas > 0 || forced <= KT) && fits(P)) p.P = (int)P;
        return p;
    }
    const double flop_us = 2.0 * rows * p.nt * BK / 5.2e6, floor_us = 0.55 * p.mb;
    const double unit_us = flop_us > floor_us ? flop_us : floor_us;
    double best = 1e300;
    const long long cand[7] = {p.tiles, 2LL * p.tiles, 3LL * p.tiles, 4LL * p.tiles, 6LL * p.tiles, 8LL * p.tiles, slots};
    for (int i = 0; i < 7; i++) {
        const long long P = cand[i], per_cta = (U + P - 1) / P;
        if (!fits(P) || (P > p.tiles && per_cta < 8)) continue; // at least 8 k-tiles a CTA when tiles are shared
        double us = (double)((P + sms - 1) / sms) * (double)per_cta * unit_us;
        if (P > p.tiles) us += (double)((KT + per_cta - 1) / per_cta) * part / 1.5e5 + 1.5; // partials the k-end CTA reads
        if (us < best) best = us, p.P = (int)P;
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

// cuTensorMapEncodeTiled, from the driver at run time (the emulator's stand-in under LMB_EMU); NULL if absent.
using EncodeTiled = CUresult (*)(CUtensorMap *, CUtensorMapDataType, cuuint32_t, void *, const cuuint64_t *,
                                 const cuuint64_t *, const cuuint32_t *, const cuuint32_t *, CUtensorMapInterleave,
                                 CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);
EncodeTiled encoder() {
#ifdef LMB_EMU
    return emu_encode_tiled;
#else
    static EncodeTiled f = nullptr;
    static bool tried = false;
    if (!tried) {
        tried = true;
        void *fn = nullptr;
        cudaDriverEntryPointQueryResult q;
        if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &q) == cudaSuccess &&
            q == cudaDriverEntryPointSuccess)
            f = (EncodeTiled)fn;
    }
    return f;
#endif
}

// A row-major 2-D tensor (rows of `cols` elements of esize bytes, `pitch` bytes apart) in boxes of box_cols x
// box_rows, 128-byte swizzled, zeros out of bounds.
bool encode_2d(CUtensorMap *m, const void *base, int esize, uint64_t cols, uint64_t rows, uint64_t pitch,
               uint32_t box_cols, uint32_t box_rows) {
    const EncodeTiled f = encoder();
    const cuuint64_t dims[2] = {cols, rows}, strides[1] = {pitch};
    const cuuint32_t box[2] = {box_cols, box_rows}, estr[2] = {1, 1};
    return f && f(m, esize == 2 ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16 : CU_TENSOR_MAP_DATA_TYPE_UINT8, 2, (void *)base, dims,
                  strides, box, estr, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                  CU_TENSOR_MAP_L2_PROMOTION_L2_128B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

template <int NT, int MB>
int launch(const Plan &p, half *y, const half *x, const uint32_t *qw, const uint32_t *qz, const half *sc, float *ws,
           unsigned *tickets, int M, int N, int K, int gs, cudaStream_t s) {
    // x [M, K] fp16 in NT x 64 boxes; the packed weights [N, K / 2] bytes in lines of the CTA's rows x 128 bytes
    CUtensorMap xmap, wmap;
    if (!encode_2d(&xmap, x, 2, (uint64_t)K, (uint64_t)M, (uint64_t)K * 2, BK, NT) ||
        !encode_2d(&wmap, qw, 1, (uint64_t)K / 2, (uint64_t)N, (uint64_t)K / 2, 128, cta_rows<MB>()))
        return (int)cudaErrorInvalidValue;
#ifndef LMB_EMU
    static bool attr = false;
    if (!attr) {
        cudaError_t e = cudaFuncSetAttribute(wgmma_kernel<NT, MB>, cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM_MAX);
        if (e) return (int)e;
        attr = true;
    }
#endif
    wgmma_kernel<NT, MB><<<p.P, THREADS, p.smem, s>>>(xmap, wmap, y, qz, sc, ws, tickets, M, N, K, gs, p.ntt, p.tiles);
    return LMB_LAUNCH_RESULT();
}

int forced_nt = 0, forced_mb = 0, forced_ctas = 0; // lmb_cuda_w4a16_wgmma_shape, _ctas

} // namespace
#endif

extern "C" int lmb_cuda_w4a16_wgmma_shape(int nt, int mb) {
#if LMB_HAVE_WGMMA || defined(LMB_EMU)
    if (!((nt == 0 && mb == 0) || (mb == 1 && (nt == 64 || nt == 128 || nt == 192 || nt == 256)) ||
          (mb == 2 && (nt == 64 || nt == 128))))
        return (int)cudaErrorInvalidValue;
    forced_nt = nt, forced_mb = mb;
#endif
    return 0;
}

extern "C" int lmb_cuda_w4a16_wgmma_ctas(int ctas) {
    if (ctas < 0) return (int)cudaErrorInvalidValue;
#if LMB_HAVE_WGMMA || defined(LMB_EMU)
    forced_ctas = ctas;
#endif
    return 0;
}

extern "C" int lmb_cuda_w4a16_wgmma_available(void) {
#if defined(LMB_EMU)
    return 1;
#elif LMB_HAVE_WGMMA
    static signed char known[64]; // per device: 0 unknown, 1 yes, -1 no
    int dev = 0, major = 0, minor = 0;
    if (cudaGetDevice(&dev) || dev < 0) return 0;
    if (dev < 64 && known[dev]) return known[dev] > 0;
    const bool yes = !cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) &&
                     !cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) && major == 9 && minor == 0 &&
                     encoder();
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
    int gs = 0; // group = 64 << gs
    while (group > 0 && (64 << gs) < group && gs < 16) gs++;
    if (N % 8 || K % 64 || group <= 0 || group != (64 << gs) || K % group || (uintptr_t)x % 16 ||
        (uintptr_t)qweight % 16 || (uintptr_t)y % 16 || (uintptr_t)ws % 16)
        return (int)cudaErrorInvalidValue;
#if LMB_HAVE_WGMMA || defined(LMB_EMU)
#ifdef LMB_EMU
    const int sms = 4;
#else
    const int sms = sm_count();
#endif
    const Plan p = plan(M, N, K, group, sms, ws ? ws_bytes : 0, tickets ? n_tickets : 0, splits, forced_nt, forced_mb,
                        forced_ctas);
    if (!p.P) return (int)cudaErrorInvalidValue;
    half *yh = (half *)y;
    const half *xh = (const half *)x, *sh = (const half *)scales;
    if (p.mb == 2)
        return p.nt == 64 ? launch<64, 2>(p, yh, xh, qweight, zeros, sh, ws, tickets, M, N, K, gs, s)
                          : launch<128, 2>(p, yh, xh, qweight, zeros, sh, ws, tickets, M, N, K, gs, s);
    switch (p.nt) {
    case 64: return launch<64, 1>(p, yh, xh, qweight, zeros, sh, ws, tickets, M, N, K, gs, s);
    case 128: return launch<128, 1>(p, yh, xh, qweight, zeros, sh, ws, tickets, M, N, K, gs, s);
    case 192: return launch<192, 1>(p, yh, xh, qweight, zeros, sh, ws, tickets, M, N, K, gs, s);
    default: return launch<256, 1>(p, yh, xh, qweight, zeros, sh, ws, tickets, M, N, K, gs, s);
    }
#else
    (void)splits, (void)ws_bytes, (void)n_tickets, (void)s;
    return (int)cudaErrorNotSupported;
#endif
}
