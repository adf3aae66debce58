// w4a16_step.cu — a whole batch-1 decode step of an all-AWQ Llama-family model as one persistent kernel
// (kernels_cuda.h: lmb_cuda_w4_step).  Why: at batch 1 the weights are the step's bytes (3.4 GB for a 7B model,
// 1.1 ms at 3 TB/s), but as ~9 kernels a layer each linear's stream starts cold and stops at the kernel's end,
// and the small kernels between them (norms, RoPE, attention, SiLU) leave the memory idle: the graph of separate
// kernels ran a 7B step in 2.48 ms (docs/PERF.md v14; this kernel is v15).  Status: written and checked in the
// emulator (tests/tools/cuda_emu/emu_step.cpp) in a session that got no GPU; off by default until it has run on
// one (engine/backend_cuda_step.c: LMB_W4_STEP=auto turns it on).
//
// One CTA an SM, 8 consumer warps and a producer warp:
//   - The producer (one thread) walks the CTA's share of every linear of every layer in the step's order
//     (q|k|v, o, gate|up, down; rows in quads, spread evenly over the CTAs) and bulk-copies each stage (8 or 16 W4
//     rows with their scales and zero words) into a ring of shared memory, as soon as the stages before have freed
//     the bytes.  Weights do not depend on activations, so the copies run ahead across the grid barriers.
//   - The consumers run the phases, with a grid barrier after each (sense-reversing, on two global words):
//     RMSnorm of the residual (every CTA makes the whole normalised row itself, in add_rmsnorm's order), the q|k|v
//     gemv; RoPE + the new token's K/V write + attention (splits of 64 keys, the last split of a head merging the
//     others); the o gemv + residual add; RMSnorm, the gate|up gemv + SiLU (a warp owns a gate row and its up row);
//     the down gemv + residual add.
//   - Each warp computes its stage rows over all of K (lane l: units l, l + 32, ...), in the gemv's arithmetic and
//     order (w4a16.cu, M = 1, K split over two warps' halves where N <= 8192): the linears and the norms give the
//     separate kernels' bits.  Attention sums in its own order (close to, not bit for bit, attention_decode.cu's).
// Data other CTAs wrote in this launch (residual, q|k|v, attention output, SiLU output, partials) is read past L1
// (__ldcg).  The launch is cooperative (all CTAs resident); a CTA's share of a linear is a few stages, so the ring
// (~200 KB an SM: ~26 MB over the GPU, ~9 us of the weight stream) hides the barriers and the small phases.
#include <stdlib.h>
#include <string.h>

#include "w4.cuh"
#include "wgmma.cuh"

using namespace lmb;

#if LMB_HAVE_WGMMA || defined(LMB_EMU)
namespace {

constexpr int CW = 8, CT = 32 * CW, THREADS = CT + 32; // consumer warps, their threads, + the producer warp
constexpr int NB = 16;                                  // stage barriers: stages in flight at most
constexpr int SPL = 64;                                 // attention: keys a split
constexpr int HDR = 1024;                               // shared header: barriers, ring ends, reductions
constexpr int XST = 40; // halves between units (32 inputs) of x in shared memory: the gemv's skew (conflict-free)

enum { QKV, OPROJ, GU, DOWN, NLIN };

struct Geo { // one linear, the same in every layer
    int N, K, NP; // rows, inputs, primary rows (gate rows for gate|up: a stage holds 8 gate rows and their up rows)
    int RP, ks;   // rows a stage (8 or 16), K halves summed apart (2: the gemv's split for N <= 8192)
    int KW, NG, ZW, group;
    unsigned stage_bytes; // RP * (K/2 + 2 NG + 4 ZW)
};
struct Plan {
    Geo g[NLIN];
    unsigned ring, xbytes; // ring bytes; the x region (x in the skewed layout, or attention's scratch)
    int smem;
};

__device__ __forceinline__ void csync() { named_sync(1, CT); } // the consumer warps

// A stage's offset in the ring: stages are contiguous, so one that would straddle the end starts at 0.
__device__ __forceinline__ unsigned stage_at(unsigned &head, unsigned bytes, unsigned ring) {
    unsigned off = head % ring;
    if (off + bytes > ring) head += ring - off, off = 0;
    return off;
}

// This CTA's primary rows [r0, r1) of a linear: quads spread evenly over the CTAs.
__device__ __forceinline__ void slice(const Geo &g, int &r0, int &r1) {
    const long long Q = g.NP / 4;
    r0 = 4 * (int)(Q * blockIdx.x / gridDim.x);
    r1 = 4 * (int)(Q * (blockIdx.x + 1) / gridDim.x);
}

__device__ __forceinline__ int stage_rows(int p, const Geo &g) { return p == GU ? 8 : g.RP; } // primary rows

struct Smem {
    uint64_t *full, *empty;
    unsigned *ends;
    float *red;
    int *flag;
    unsigned char *x, *ring;
};
__device__ __forceinline__ Smem smem_of(unsigned char *s, const Plan &pl) {
    return {reinterpret_cast<uint64_t *>(s), reinterpret_cast<uint64_t *>(s) + NB,
            reinterpret_cast<unsigned *>(s + 256), reinterpret_cast<float *>(s + 384),
            reinterpret_cast<int *>(s + 640), s + HDR, s + HDR + pl.xbytes};
}

// ---- the producer ------------------------------------------------------------------------------------------

__device__ void producer(const lmb_w4_step_args &a, const Plan &pl, const Smem &sm) {
    const uint64_t pol = l2_evict_first();
    unsigned head = 0, released = 0;
    int s = 0, k = 0; // next stage to fill; oldest stage not yet seen released
    for (int l = 0; l < a.n_layers; l++) {
        const lmb_w4_step_layer &L = a.layers[l];
        const lmb_w4_step_linear *lin[NLIN] = {&L.qkv, &L.o, &L.gu, &L.down};
        for (int p = 0; p < NLIN; p++) {
            const Geo &g = pl.g[p];
            int r0, r1;
            slice(g, r0, r1);
            const int PS = stage_rows(p, g), parts = p == GU ? 2 : 1;
            const unsigned rowb = g.K / 2 + 2 * g.NG + 4 * g.ZW;
            for (int r = r0; r < r1; r += PS, s++) {
                const int v = min(PS, r1 - r);
                const unsigned off = stage_at(head, g.stage_bytes, pl.ring);
                // the bytes must be free (stages are released in order) and the barrier pair's last use seen
                while (k < s && (released + pl.ring < head + g.stage_bytes || k + NB <= s)) {
                    mbar_wait(&sm.empty[k % NB], (k / NB) & 1);
                    released = sm.ends[k % NB];
                    k++;
                }
                sm.ends[s % NB] = head + g.stage_bytes;
                uint64_t *bar = &sm.full[s % NB];
                mbar_expect_tx(bar, (unsigned)(parts * v) * rowb);
                unsigned char *st = sm.ring + off;
                for (int part = 0; part < parts; part++) { // gate|up: the up rows F + r.. at stage rows 8..
                    const size_t R0 = (size_t)r + (size_t)part * g.NP;
                    const int d0 = 8 * part;
                    bulk_g2s(st + (size_t)d0 * (g.K / 2), lin[p]->qweight + R0 * g.KW, (unsigned)v * (g.K / 2), bar,
                             pol);
                    bulk_g2s(st + (size_t)g.RP * (g.K / 2) + (size_t)d0 * 2 * g.NG,
                             static_cast<const half *>(lin[p]->scales) + R0 * g.NG, (unsigned)v * 2 * g.NG, bar, pol);
                    bulk_g2s(st + (size_t)g.RP * (g.K / 2 + 2 * g.NG) + (size_t)d0 * 4 * g.ZW,
                             lin[p]->zeros + R0 * g.ZW, (unsigned)v * 4 * g.ZW, bar, pol);
                }
                head += g.stage_bytes;
            }
        }
    }
}

// ---- consumer pieces ---------------------------------------------------------------------------------------

__device__ __forceinline__ float csum(float v, float *red) { // over the consumer threads, in warp order
    v = warp_sum(v);
    csync(); // red is free
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
    csync();
    float r = 0.f;
#pragma unroll
    for (int i = 0; i < CW; i++) r += red[i];
    return r;
}
__device__ __forceinline__ float cmax(float v, float *red) {
    v = warp_max(v);
    csync();
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
    csync();
    float r = -INFINITY;
#pragma unroll
    for (int i = 0; i < CW; i++) r = fmaxf(r, red[i]);
    return r;
}

// The grid barrier (thread 0 of each CTA; sense: the flag's value after this barrier).
__device__ __forceinline__ void grid_sync(unsigned *sync, unsigned &sense) {
    csync();
    if (threadIdx.x == 0) {
        sense ^= 1u;
        __threadfence();
        if (atomicAdd(&sync[0], 1u) == gridDim.x - 1) {
            atomicExch(&sync[0], 0u);
            __threadfence();
            st_release(&sync[1], sense);
        } else { // a CTA that never arrives is a bug: after 10 s the kernel traps (an error, not a hang)
            const unsigned long long t0 = globaltimer();
            while (ld_acquire(&sync[1]) != sense) {
                __nanosleep(32);
                if (globaltimer() - t0 > 10000000000ull) __trap();
            }
        }
    }
    csync();
}

// x = RMSnorm(resid) * gamma into the skewed x layout, with add_rmsnorm_vec_kernel's sums: its thread t (of T0)
// adds the squares of float4s t, t + T0, ... in order, its warps butterfly, and warp sums are added by a butterfly
// over the warps; thread tid here plays its threads tid, tid + 256, ...
__device__ void rmsnorm_x(const lmb_w4_step_args &a, const half *gamma, half *xs, float *red) {
    const int tid = threadIdx.x, lane = tid & 31, H = a.H, n4 = H / 4, V = (n4 + 1023) / 1024;
    const int T0 = ((n4 + V - 1) / V + 31) / 32 * 32;
    const float4 *r4 = reinterpret_cast<const float4 *>(a.resid);
    float4 keep[4]; // V = 1 (H <= 4096): float4 j = tid + 256 i, kept in registers for the scaling
#pragma unroll
    for (int i = 0; i < 4; i++) { // T0 <= 1024: t = tid + 256 i covers them
        const int t = tid + i * CT;
        if (t >= T0) break; // warp-uniform (T0 and CT are multiples of 32)
        float ss = 0.f;
        for (int k = 0; k < V; k++) {
            const int j = t + k * T0;
            if (j < n4) {
                const float4 v = __ldcg(r4 + j);
                if (V == 1) keep[i] = v;
                ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
            }
        }
        ss = warp_sum(ss);
        if (lane == 0) red[t >> 5] = ss;
    }
    csync();
    const float tot = warp_sum(lane < T0 / 32 ? red[lane] : 0.f);
    const float inv = rsqrtf(tot / H + a.eps);
    auto out = [&](float4 v, int j) {
        const uint2 gu = *reinterpret_cast<const uint2 *>(gamma + 4 * j);
        const half2 g01 = as_half2(gu.x), g23 = as_half2(gu.y);
        const half2 o01 = __halves2half2(__float2half_rn(v.x * inv * __low2float(g01)),
                                         __float2half_rn(v.y * inv * __high2float(g01)));
        const half2 o23 = __halves2half2(__float2half_rn(v.z * inv * __low2float(g23)),
                                         __float2half_rn(v.w * inv * __high2float(g23)));
        *reinterpret_cast<uint2 *>(xs + (4 * j / 32) * XST + 4 * j % 32) = make_uint2(half2_bits(o01), half2_bits(o23));
    };
    if (V == 1) {
#pragma unroll
        for (int i = 0; i < 4; i++)
            if (tid + i * CT < n4) out(keep[i], tid + i * CT);
    } else {
        for (int j = tid; j < n4; j += CT) out(__ldcg(r4 + j), j);
    }
    csync();
}

// x = src (fp16 [K], written by other CTAs) into the skewed layout.
__device__ void load_x_global(const half *src, int K, half *xs) {
    const uint4 *s4 = reinterpret_cast<const uint4 *>(src);
    for (int c0 = threadIdx.x; c0 < K / 8; c0 += 4 * CT) { // 4 loads in flight a thread
        uint4 v[4];
#pragma unroll
        for (int i = 0; i < 4; i++)
            if (c0 + i * CT < K / 8) v[i] = __ldcg(s4 + c0 + i * CT);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int c = c0 + i * CT;
            if (c < K / 8) *reinterpret_cast<uint4 *>(xs + (c / 4) * XST + (c % 4) * 8) = v[i];
        }
    }
    csync();
}

// Rows w + 8j (j < NR) of a stage over all K: lane l takes units l, l + 32, ... in order, the gemv's math
// (w4.cuh, gemv_unit): per unit an fp16 pair sums the 32 products of (q - z)/16 and x, then s * 16 * (lo + hi)
// joins the fp32 total of the unit's half (ks = 2: units with (u / 64) odd go to t1, as the gemv's second warp); then warp butterflies.
template <int NR>
__device__ __forceinline__ void dot_rows(float (&t0)[NR], float (&t1)[NR], const bool (&valid)[NR],
                                         const unsigned char *st, const Geo &g, const half *xs) {
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, U = g.K / 32;
    const uint32_t *wq = reinterpret_cast<const uint32_t *>(st);
    const half *ssc = reinterpret_cast<const half *>(st + (size_t)g.RP * (g.K / 2));
    const uint32_t *sqz = reinterpret_cast<const uint32_t *>(st + (size_t)g.RP * (g.K / 2 + 2 * g.NG));
#pragma unroll
    for (int j = 0; j < NR; j++) t0[j] = 0.f, t1[j] = 0.f;
    for (int u = lane; u < U; u += 32) {
        half2 xr[1][16];
#pragma unroll
        for (int q = 0; q < 4; q++) {
            const uint4 t = *reinterpret_cast<const uint4 *>(xs + u * XST + 8 * q);
            xr[0][4 * q] = as_half2(t.x), xr[0][4 * q + 1] = as_half2(t.y), xr[0][4 * q + 2] = as_half2(t.z),
                      xr[0][4 * q + 3] = as_half2(t.w);
        }
        const int gi = u * 32 / g.group;
        const bool hi = g.ks == 2 && ((u >> 6) & 1);
#pragma unroll
        for (int j = 0; j < NR; j++) {
            if (!valid[j]) continue; // warp-uniform
            const int i = w + 8 * j;
            const uint4 wv = *reinterpret_cast<const uint4 *>(wq + (size_t)i * g.KW + 4 * u);
            const float s16 = 16.f * __half2float(ssc[i * g.NG + gi]);
            const uint32_t z = (sqz[i * g.ZW + gi / 8] >> (4 * (gi % 8))) & 15u;
            const uint32_t wd[4] = {wv.x, wv.y, wv.z, wv.w};
            half2 acc[1];
            gemv_unit<4, 1>(acc, wd, gemv_c(z), xr);
            const float f = __low2float(acc[0]) + __high2float(acc[0]);
            if (hi) t1[j] = fmaf(s16, f, t1[j]);
            else t0[j] = fmaf(s16, f, t0[j]);
        }
    }
#pragma unroll
    for (int j = 0; j < NR; j++) {
        t0[j] = warp_sum(t0[j]);
        if (g.ks == 2) t1[j] = warp_sum(t1[j]);
    }
}

// One linear of one layer: this CTA's stages, in the producer's order; the epilogue by lane 0 of each warp.
template <int P, int NR>
__device__ void gemv_phase(const lmb_w4_step_args &a, const Plan &pl, const Smem &sm, unsigned &head, int &s) {
    const Geo &g = pl.g[P];
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, PS = stage_rows(P, g);
    const half *xs = reinterpret_cast<const half *>(sm.x);
    int r0, r1;
    slice(g, r0, r1);
    for (int r = r0; r < r1; r += PS, s++) {
        const int v = min(PS, r1 - r);
        const unsigned off = stage_at(head, g.stage_bytes, pl.ring);
        bool valid[NR];
#pragma unroll
        for (int j = 0; j < NR; j++) valid[j] = P == GU ? w < v : w + 8 * j < v;
        mbar_wait(&sm.full[s % NB], (s / NB) & 1);
        float t0[NR], t1[NR];
        dot_rows<NR>(t0, t1, valid, sm.ring + off, g, xs);
        __syncwarp();
        if (lane == 0) {
            mbar_arrive(&sm.empty[s % NB]); // the stage's bytes are read
            float y[NR];
#pragma unroll
            for (int j = 0; j < NR; j++) y[j] = g.ks == 2 ? t0[j] + t1[j] : t0[j];
            if (P == GU) {
                if (valid[0]) { // silu(gate) * up of the rounded gemv outputs (silu_mul_kernel)
                    const float gt = __half2float(__float2half_rn(y[0])), up = __half2float(__float2half_rn(y[NR - 1]));
                    static_cast<half *>(a.act)[r + w] = __float2half_rn(gt / (1.f + __expf(-gt)) * up);
                }
            } else {
#pragma unroll
                for (int j = 0; j < NR; j++) {
                    if (!valid[j]) continue;
                    const int n = r + w + 8 * j;
                    const half o = __float2half_rn(y[j]);
                    if (P == QKV) static_cast<half *>(a.qkv)[n] = o;
                    else a.resid[n] = __ldcg(a.resid + n) + __half2float(o); // the residual add
                }
            }
        }
        head += g.stage_bytes;
    }
}

// RoPE (rope_kv_kernel's roundings) + the new token's K/V into the cache + attention of the one query row over its
// context in splits of SPL keys: item (head h, split sp); LPK = hd / 8 lanes a key row, 8 dims a lane.  A head with
// several splits writes (max, sum, unnormalised out) partials; the last of its items to finish (ticket) merges them.
template <int LPK> __device__ void attention(const lmb_w4_step_args &a, const lmb_w4_step_layer &L, const Smem &sm) {
    constexpr int HD = 8 * LPK, KPW = 32 / LPK, STEP = CW * KPW, IT = (SPL + STEP - 1) / STEP;
    float *qs = reinterpret_cast<float *>(sm.x), *ored = qs + HD; // q * scale [HD]; [CW][HD]
    const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5, sl = lane % LPK, ks = lane / LPK;
    const int pos = a.positions[0], ctx = pos + 1, ns = (ctx + SPL - 1) / SPL, bs = a.block_size;
    const int32_t *bt = a.block_tables + (size_t)a.tok_seq[0] * a.max_blocks;
    const half *qkv = static_cast<const half *>(a.qkv);
    half *kc = static_cast<half *>(L.k_cache), *vc = static_cast<half *>(L.v_cache);
    const size_t blk_stride = (size_t)a.nkv * bs * HD;
    const long long slot = a.slots[0];
    const float fpos = (float)pos;
    for (int item = blockIdx.x; item < a.nh * ns; item += gridDim.x) {
        const int h = item / ns, sp = item % ns, kvh = h / (a.nh / a.nkv), j0 = sp * SPL, n = min(ctx - j0, SPL);
        const bool writes_kv = sp == ns - 1 && slot >= 0; // the split holding the new token
        const size_t head_off = (size_t)kvh * bs * HD;
        half *knew = kc + (size_t)(slot / bs) * blk_stride + head_off + (size_t)(slot % bs) * HD;
        half *vnew = vc + (size_t)(slot / bs) * blk_stride + head_off + (size_t)(slot % bs) * HD;
        for (int i = tid; i < HD / 2; i += CT) {
            float sn, cs;
            sincosf(fpos * a.inv_freq[i], &sn, &cs);
            const half *qh = qkv + (size_t)h * HD;
            const float x0 = __half2float(__ldcg(qh + i)), x1 = __half2float(__ldcg(qh + i + HD / 2));
            qs[i] = __half2float(__float2half_rn(x0 * cs - x1 * sn)) * a.scale;
            qs[i + HD / 2] = __half2float(__float2half_rn(x1 * cs + x0 * sn)) * a.scale;
            if (writes_kv) {
                const half *kh = qkv + (size_t)(a.nh + kvh) * HD;
                const float k0 = __half2float(__ldcg(kh + i)), k1 = __half2float(__ldcg(kh + i + HD / 2));
                knew[i] = __float2half_rn(k0 * cs - k1 * sn);
                knew[i + HD / 2] = __float2half_rn(k1 * cs + k0 * sn);
            }
        }
        if (writes_kv)
            for (int d = tid; d < HD; d += CT) vnew[d] = __ldcg(qkv + (size_t)(a.nh + a.nkv + kvh) * HD + d);
        csync(); // q is in shared memory; this CTA's cache writes come before its reads
        uint4 kr[IT], vr[IT];
#pragma unroll
        for (int t = 0; t < IT; t++) {
            const int j = w * KPW + ks + t * STEP;
            kr[t] = vr[t] = make_uint4(0, 0, 0, 0);
            if (j < n) {
                const int p = j0 + j;
                const size_t o = (size_t)bt[p / bs] * blk_stride + head_off + (size_t)(p % bs) * HD + sl * 8;
                kr[t] = __ldcg(reinterpret_cast<const uint4 *>(kc + o));
                vr[t] = __ldcg(reinterpret_cast<const uint4 *>(vc + o));
            }
        }
        float q[8];
#pragma unroll
        for (int e = 0; e < 8; e++) q[e] = qs[sl * 8 + e];
        float dot[IT], lmax = -INFINITY;
#pragma unroll
        for (int t = 0; t < IT; t++) {
            const half *e = reinterpret_cast<const half *>(&kr[t]);
            float d = 0.f;
#pragma unroll
            for (int i = 0; i < 8; i++) d = fmaf(q[i], __half2float(e[i]), d);
#pragma unroll
            for (int o = LPK / 2; o > 0; o >>= 1) d += __shfl_xor_sync(0xffffffffu, d, o);
            dot[t] = d;
            if (w * KPW + ks + t * STEP < n) lmax = fmaxf(lmax, d);
        }
        const float m = cmax(lmax, sm.red);
        float pr[IT], lsum = 0.f;
#pragma unroll
        for (int t = 0; t < IT; t++) {
            pr[t] = w * KPW + ks + t * STEP < n ? __expf(dot[t] - m) : 0.f;
            if (sl == 0) lsum += pr[t];
        }
        const float lt = csum(lsum, sm.red);
        float acc[8];
#pragma unroll
        for (int e = 0; e < 8; e++) acc[e] = 0.f;
#pragma unroll
        for (int t = 0; t < IT; t++) {
            const half *e = reinterpret_cast<const half *>(&vr[t]);
#pragma unroll
            for (int i = 0; i < 8; i++) acc[i] = fmaf(pr[t], __half2float(e[i]), acc[i]);
        }
#pragma unroll
        for (int o = LPK; o < 32; o <<= 1)
#pragma unroll
            for (int i = 0; i < 8; i++) acc[i] += __shfl_xor_sync(0xffffffffu, acc[i], o);
        if (ks == 0)
#pragma unroll
            for (int i = 0; i < 8; i++) ored[w * HD + sl * 8 + i] = acc[i];
        csync();
        float *part = a.partial + ((size_t)h * a.max_splits + sp) * (HD + 2);
        half *out = static_cast<half *>(a.attn) + (size_t)h * HD;
        for (int d = tid; d < HD; d += CT) {
            float o = 0.f;
#pragma unroll
            for (int i = 0; i < CW; i++) o += ored[i * HD + d];
            if (ns == 1) out[d] = __float2half_rn(o / lt);
            else part[2 + d] = o;
        }
        if (ns > 1) {
            if (tid == 0) part[0] = m, part[1] = lt;
            __threadfence();
            csync();
            if (tid == 0) *sm.flag = atomicAdd(&a.tickets[h], 1u) == (unsigned)ns - 1;
            csync();
            if (*sm.flag) { // the last split of head h: merge (attention_decode.cu's merge_head)
                __threadfence();
                const float *p0 = a.partial + (size_t)h * a.max_splits * (HD + 2);
                float M = -INFINITY, Lsum = 0.f;
                for (int s = 0; s < ns; s++) M = fmaxf(M, __ldcg(p0 + s * (HD + 2)));
                for (int s = 0; s < ns; s++)
                    Lsum += __ldcg(p0 + s * (HD + 2) + 1) * __expf(__ldcg(p0 + s * (HD + 2)) - M);
                for (int d = tid; d < HD; d += CT) {
                    float o = 0.f;
                    for (int s = 0; s < ns; s++)
                        o += __ldcg(p0 + s * (HD + 2) + 2 + d) * __expf(__ldcg(p0 + s * (HD + 2)) - M);
                    out[d] = __float2half_rn(o / Lsum);
                }
                if (tid == 0) a.tickets[h] = 0;
            }
        }
        csync(); // the item's shared scratch is free
    }
}

template <int NR_QKV, int NR_O, int NR_DOWN>
__device__ void consumers(const lmb_w4_step_args &a, const Plan &pl, const Smem &sm) {
    unsigned head = 0, sense = 0;
    int s = 0;
    if (threadIdx.x == 0) sense = ld_acquire(&a.sync[1]);
    half *xs = reinterpret_cast<half *>(sm.x);
    const bool tracing = a.trace && blockIdx.x == 0 && threadIdx.x == 0;
    if (tracing) a.trace[0] = globaltimer();
    for (int l = 0; l < a.n_layers; l++) {
        const lmb_w4_step_layer &L = a.layers[l];
        unsigned long long *tr = a.trace + 1 + 5 * l; // (valid when tracing)
        rmsnorm_x(a, static_cast<const half *>(L.attn_norm), xs, sm.red);
        gemv_phase<QKV, NR_QKV>(a, pl, sm, head, s);
        grid_sync(a.sync, sense);
        if (tracing) tr[0] = globaltimer();
        switch (a.hd) {
        case 32: attention<4>(a, L, sm); break;
        case 64: attention<8>(a, L, sm); break;
        case 128: attention<16>(a, L, sm); break;
        default: attention<32>(a, L, sm); break;
        }
        grid_sync(a.sync, sense);
        if (tracing) tr[1] = globaltimer();
        load_x_global(static_cast<const half *>(a.attn), a.nh * a.hd, xs);
        gemv_phase<OPROJ, NR_O>(a, pl, sm, head, s);
        grid_sync(a.sync, sense);
        if (tracing) tr[2] = globaltimer();
        rmsnorm_x(a, static_cast<const half *>(L.ffn_norm), xs, sm.red);
        gemv_phase<GU, 2>(a, pl, sm, head, s);
        grid_sync(a.sync, sense);
        if (tracing) tr[3] = globaltimer();
        load_x_global(static_cast<const half *>(a.act), a.F, xs);
        gemv_phase<DOWN, NR_DOWN>(a, pl, sm, head, s);
        if (l + 1 < a.n_layers) grid_sync(a.sync, sense); // the kernel's end orders the last layer's writes
        if (tracing) tr[4] = globaltimer();
    }
}

template <int NR_QKV, int NR_O, int NR_DOWN>
__global__ void __launch_bounds__(THREADS, 1) step_kernel(const __grid_constant__ lmb_w4_step_args a,
                                                          const __grid_constant__ Plan pl) {
    LMB_DYNAMIC_SMEM(smem_raw);
    const Smem sm = smem_of(smem_raw, pl);
    if (threadIdx.x == 0) {
        for (int i = 0; i < NB; i++) mbar_init(&sm.full[i], 1), mbar_init(&sm.empty[i], CW);
        mbar_fence_init();
    }
    __syncthreads(); // the last CTA-wide barrier: from here the producer and the consumers go their own ways
    if (threadIdx.x >= CT) {
        if (threadIdx.x == CT) producer(a, pl, sm);
        return;
    }
    consumers<NR_QKV, NR_O, NR_DOWN>(a, pl, sm);
}

// Tuning knobs, to compare on the GPU machine: LMB_W4_STEP_RP8=1 (stages of 8 rows for every linear but gate|up),
// LMB_W4_STEP_RING_KB=n (a smaller ring).  Read once.
int knob_rp8() {
    static int v = INT_MIN;
    return env_knob(&v, "LMB_W4_STEP_RP8") == 1;
}
int knob_ring_kb() {
    static int v = INT_MIN;
    return env_knob(&v, "LMB_W4_STEP_RING_KB");
}

// The shapes' plan, or why they cannot run (shared memory of smem_max bytes a CTA).
const char *make_plan(const lmb_w4_step_args *a, int smem_max, Plan *pl) {
    if (a->n_layers < 1 || a->H < 32 || a->nh < 1 || a->nkv < 1 || a->F < 32 || a->group < 32)
        return "shapes out of range";
    if (a->nh % a->nkv) return "query heads not a multiple of the KV heads";
    if (a->hd != 32 && a->hd != 64 && a->hd != 128 && a->hd != 256) return "head_dim not 32, 64, 128 or 256";
    if (a->H / 4 > 4096) return "hidden size above 16384";
    if (!a->partial || !a->tickets || !a->sync || a->max_splits < 1) return "no attention workspace";
    const int dims[NLIN][3] = {{(a->nh + 2 * a->nkv) * a->hd, a->H, (a->nh + 2 * a->nkv) * a->hd},
                               {a->H, a->nh * a->hd, a->H},
                               {2 * a->F, a->H, a->F},
                               {a->H, a->F, a->H}};
    unsigned xbytes = 4u * (unsigned)(a->hd + CW * a->hd), max_stage = 0;
    for (int p = 0; p < NLIN; p++) {
        Geo &g = pl->g[p];
        g.N = dims[p][0], g.K = dims[p][1], g.NP = dims[p][2], g.group = a->group;
        if (g.K % 32 || g.K % a->group || g.NP % 8) return "a linear's K not a multiple of 32 and the group, or N of 8";
        g.KW = g.K / 8, g.NG = g.K / a->group, g.ZW = (g.NG + 7) / 8;
        if (g.NG % 2) return "an odd number of groups a row (the scales' 16-byte copies)";
        const unsigned rowb = (unsigned)(g.K / 2 + 2 * g.NG + 4 * g.ZW);
        g.RP = p == GU || (16 * rowb <= 40960 && !knob_rp8()) ? 16 : 8;
        g.stage_bytes = (unsigned)g.RP * rowb;
        if (g.stage_bytes > 65536) return "a stage of 8 rows above 64 KB";
        g.ks = g.N <= 8192 ? 2 : 1; // the gemv's K split (w4a16.cu: GEMV_KS_MAX_N, M <= 2)
        if (g.stage_bytes > max_stage) max_stage = g.stage_bytes;
        const unsigned xb = (unsigned)(g.K / 32) * XST * 2;
        if (xb > xbytes) xbytes = xb;
    }
    if (pl->g[GU].RP != 16) return "gate|up stages";
    pl->xbytes = (xbytes + 127) / 128 * 128;
    if (smem_max < HDR + (int)pl->xbytes) return "too little shared memory";
    pl->ring = (unsigned)(smem_max - HDR - (int)pl->xbytes) / 16 * 16;
    if (knob_ring_kb() > 0 && (unsigned)knob_ring_kb() * 1024 < pl->ring) pl->ring = (unsigned)knob_ring_kb() * 1024;
    if (pl->ring < 2 * max_stage) return "too little shared memory for two stages";
    pl->smem = smem_max;
    return nullptr;
}

int forced_ctas = 0;

} // namespace
#endif

extern "C" void lmb_cuda_w4_step_ctas(int ctas) {
#if LMB_HAVE_WGMMA || defined(LMB_EMU)
    forced_ctas = ctas > 0 ? ctas : 0;
#endif
    (void)ctas;
}

#if LMB_HAVE_WGMMA || defined(LMB_EMU)
// Shared memory a CTA may have (opt-in) and the SMs of the current device.
static void device_limits(int *smem, int *sms) {
#ifdef LMB_EMU
    *smem = 227 * 1024, *sms = 4;
#else
    static int sm_ = -1, n_ = -1;
    if (sm_ < 0) {
        int dev = 0;
        if (cudaGetDevice(&dev) != cudaSuccess ||
            cudaDeviceGetAttribute(&sm_, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess ||
            cudaDeviceGetAttribute(&n_, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
            sm_ = 0, n_ = 0;
    }
    *smem = sm_, *sms = n_;
#endif
}
#endif

extern "C" const char *lmb_cuda_w4_step_unsupported(const lmb_w4_step_args *a) {
#if LMB_HAVE_WGMMA || defined(LMB_EMU)
    int smem, sms;
    device_limits(&smem, &sms);
#ifndef LMB_EMU
    int dev = 0, major = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess || major != 9)
        return "not a compute capability 9.0 device";
#endif
    Plan pl;
    return make_plan(a, smem, &pl);
#else
    (void)a;
    return "built without sm_90a";
#endif
}

extern "C" int lmb_cuda_w4_step(const lmb_w4_step_args *a, lmb_stream s) {
#if LMB_HAVE_WGMMA || defined(LMB_EMU)
    int smem, sms;
    device_limits(&smem, &sms);
    Plan pl;
    if (make_plan(a, smem, &pl)) return (int)cudaErrorInvalidValue;
    const int ctas = forced_ctas ? forced_ctas : sms;
    void (*k)(lmb_w4_step_args, Plan);
    const int nq = pl.g[QKV].RP / 8, no = pl.g[OPROJ].RP / 8, nd = pl.g[DOWN].RP / 8;
    if (nq == 2 && no == 2 && nd == 1) k = step_kernel<2, 2, 1>;
    else if (nq == 2 && no == 2 && nd == 2) k = step_kernel<2, 2, 2>;
    else if (nq == 2 && no == 1) k = nd == 1 ? step_kernel<2, 1, 1> : step_kernel<2, 1, 2>;
    else if (nq == 1 && no == 2) k = nd == 1 ? step_kernel<1, 2, 1> : step_kernel<1, 2, 2>;
    else k = nd == 1 ? step_kernel<1, 1, 1> : step_kernel<1, 1, 2>;
#ifdef LMB_EMU
    emu::run_coop(k, dim3(ctas), dim3(THREADS), (size_t)pl.smem, *a, pl);
    return 0;
#else
    cudaError_t e = cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, pl.smem);
    if (e != cudaSuccess) return (int)e;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(ctas);
    cfg.blockDim = dim3(THREADS);
    cfg.dynamicSmemBytes = (size_t)pl.smem;
    cfg.stream = s;
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeCooperative; // every CTA resident: the grid barriers need it
    at[0].val.cooperative = 1;
    cfg.attrs = at;
    cfg.numAttrs = 1;
    e = cudaLaunchKernelEx(&cfg, k, *a, pl);
    return e != cudaSuccess ? (int)e : LMB_LAUNCH_RESULT();
#endif
#else
    (void)a, (void)s;
    return (int)cudaErrorNotSupported;
#endif
}
