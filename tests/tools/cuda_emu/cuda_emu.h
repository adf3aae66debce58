// cuda_emu.h — just enough of CUDA to run a kernel file on the CPU: one std::thread per CUDA thread,
// __syncthreads as a std::barrier per block, blocks one after another (emu::run) or all at once (emu::run_coop,
// for kernels with grid barriers: each block then has its own dynamic shared memory), __shared__ as function
// statics (shared by the block's threads: kernels run by run_coop use dynamic shared memory only), warp shuffles
// and __syncwarp through a per-warp exchange (all 32 lanes of a warp must call them together, as on the GPU),
// __hfma2 rounded once like the device's, WMMA fragments as whole 16x16 tiles (each thread of a warp computes the
// full tile; the stores write identical values).  Slow and only as faithful as its assumptions; it checks index
// arithmetic, layouts and barriers where no GPU is at hand.  Used by run_w4a16.sh.
#pragma once
#include <cuda.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace emu {
struct idx3 {
    unsigned x, y, z;
};
struct Warp {
    std::barrier<> bar{32};
    alignas(16) unsigned char buf[32][16];
};
// One block's state: its barrier, named barriers (created on first use with the count given), warps, shared memory.
struct Block {
    std::barrier<> bar;
    std::mutex mu;
    std::map<int, std::unique_ptr<std::barrier<>>> named;
    std::vector<std::unique_ptr<Warp>> warps;
    unsigned char *smem;
    Block(int nt, unsigned char *sm) : bar(nt), smem(sm) {
        for (int w = 0; w < (nt + 31) / 32; w++) warps.emplace_back(new Warp);
    }
};
inline thread_local idx3 tIdx, bIdx;
inline thread_local Block *blk = nullptr;
inline idx3 bDim, gDim;
inline unsigned char *static_smem() {
    alignas(1024) static unsigned char buf[227 * 1024];
    return buf;
}

inline void start_thread(Block *b, int t, dim3 block, unsigned bx, unsigned by, unsigned bz) {
    blk = b;
    tIdx = {(unsigned)(t % block.x), (unsigned)(t / block.x % block.y), (unsigned)(t / (block.x * block.y))};
    bIdx = {bx, by, bz};
}

template <typename K, typename... A> void run(K kernel, dim3 grid, dim3 block, A... args) {
    bDim = {block.x, block.y, block.z};
    gDim = {grid.x, grid.y, grid.z};
    int nt = (int)(block.x * block.y * block.z);
    for (unsigned bz = 0; bz < grid.z; bz++)
        for (unsigned by = 0; by < grid.y; by++)
            for (unsigned bx = 0; bx < grid.x; bx++) {
                Block b(nt, static_smem());
                std::vector<std::thread> ts;
                for (int t = 0; t < nt; t++)
                    ts.emplace_back([&, t] {
                        start_thread(&b, t, block, bx, by, bz);
                        kernel(args...);
                        b.bar.arrive_and_drop();
                    });
                for (auto &th : ts) th.join();
            }
}

// All blocks of a 1-D grid at once (a cooperative launch), each with smem_bytes of its own shared memory.
template <typename K, typename... A> void run_coop(K kernel, dim3 grid, dim3 block, size_t smem_bytes, A... args) {
    bDim = {block.x, block.y, block.z};
    gDim = {grid.x, 1, 1};
    int nt = (int)(block.x * block.y * block.z);
    std::vector<std::unique_ptr<Block>> bs;
    std::vector<unsigned char *> mem;
    for (unsigned bx = 0; bx < grid.x; bx++) {
        mem.push_back(static_cast<unsigned char *>(std::aligned_alloc(1024, (smem_bytes + 1023) / 1024 * 1024)));
        bs.emplace_back(new Block(nt, mem.back()));
    }
    std::vector<std::thread> ts;
    for (unsigned bx = 0; bx < grid.x; bx++)
        for (int t = 0; t < nt; t++)
            ts.emplace_back([&, t, bx] {
                start_thread(bs[bx].get(), t, block, bx, 0, 0);
                kernel(args...);
                bs[bx]->bar.arrive_and_drop();
            });
    for (auto &th : ts) th.join();
    for (auto *m : mem) std::free(m);
}

inline int flat_tid() { return (int)(tIdx.x + bDim.x * (tIdx.y + bDim.y * tIdx.z)); }
inline Warp &my_warp() { return *blk->warps[flat_tid() / 32]; }
struct launcher {
    dim3 grid, block;
    template <typename K> auto operator()(K kernel) {
        return [g = grid, b = block, kernel](auto... args) { run(kernel, g, b, args...); };
    }
};
} // namespace emu

#define EMU_LAUNCH(kernel, grid, block, ...) emu::launcher{dim3(grid), dim3(block)}(kernel)
#undef __global__
#define __global__
#undef __device__
#define __device__
#undef __host__
#define __host__
#undef __forceinline__
#define __forceinline__ inline
#undef __shared__
#define __shared__ static
#undef __align__
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)
#undef __grid_constant__
#define __grid_constant__
#define threadIdx emu::tIdx
#define blockIdx emu::bIdx
#define blockDim emu::bDim
#define gridDim emu::gDim
inline void __syncthreads() { emu::blk->bar.arrive_and_wait(); }
inline void __syncwarp(unsigned = 0xffffffffu) { emu::my_warp().bar.arrive_and_wait(); }
template <typename T> inline T __ldg(const T *p) { return *p; }
// The value of lane (lane ^ mask) of the same warp: each lane posts its value in its warp's exchange buffer, the
// warp meets, each lane reads its partner's, and the warp meets again before the buffer is reused.
template <typename T> inline T __shfl_xor_sync(unsigned, T v, int mask, int width = 32) {
    static_assert(sizeof(T) <= 16, "shuffled values fit the exchange");
    emu::Warp &w = emu::my_warp();
    const int lane = emu::flat_tid() % 32;
    std::memcpy(w.buf[lane], &v, sizeof v);
    w.bar.arrive_and_wait();
    T r;
    std::memcpy(&r, w.buf[(lane & ~(width - 1)) | ((lane & (width - 1)) ^ (mask & (width - 1)))], sizeof r);
    w.bar.arrive_and_wait();
    return r;
}
// cuda_fp16.h defines __hfma2 for device code only.  One rounding, as fma.rn.f16x2: the product of two halves
// is exact in double, and so is the sum unless the exponents are ~30 apart.
inline __half2 __hfma2(const __half2 a, const __half2 b, const __half2 c) {
    return __halves2half2(
        __double2half((double)__low2float(a) * (double)__low2float(b) + (double)__low2float(c)),
        __double2half((double)__high2float(a) * (double)__high2float(b) + (double)__high2float(c)));
}
inline float __expf(float x) { return std::exp(x); }
inline float rsqrtf(float x) { return 1.f / std::sqrt(x); }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }

// ---- what kernels/cuda/wgmma.cuh provides on the GPU --------------------------------------------------------
// TMA copies run at once, and their mbarriers flip phase when the issuing thread's announced bytes have all
// been copied (mbar_wait spins on that); a descriptor is the tile pointer itself (the bit fields are the GPU's
// business); wgmma_rs is one synchronous warpgroup MMA: every thread of the block posts its A registers, the
// block meets, each thread computes its own D elements from its warpgroup's A and from B in shared memory
// (K-major, 128-byte rows swizzled on the address bits as the GPU does: chunk bits 4-6 XOR bits 7-9), and the
// block meets again.  Dynamic shared memory is a 1024-aligned static buffer.
#define LMB_EMU 1
#define LMB_DYNAMIC_SMEM(name) unsigned char *const name = emu::blk->smem
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline unsigned atomicAdd(unsigned *p, unsigned v) { return std::atomic_ref<unsigned>(*p).fetch_add(v); }
inline unsigned atomicExch(unsigned *p, unsigned v) { return std::atomic_ref<unsigned>(*p).exchange(v); }
inline void __nanosleep(unsigned) { std::this_thread::yield(); }
[[noreturn]] inline void __trap() { std::abort(); }
template <typename T> inline T __ldcg(const T *p) { return *p; }
template <typename T> inline void __stcg(T *p, T v) { *p = v; }
namespace lmb {
inline uint32_t smem_u32(const void *p) { return (uint32_t)(uintptr_t)p; }
inline uint64_t smem_desc_sw128(const void *p) { return (uint64_t)(uintptr_t)p; }
inline unsigned ld_acquire(const unsigned *p) {
    std::this_thread::yield(); // spin loops on it make progress with more threads than cores
    return std::atomic_ref<const unsigned>(*p).load(std::memory_order_acquire);
}
inline void st_release(unsigned *p, unsigned v) { std::atomic_ref<unsigned>(*p).store(v, std::memory_order_release); }
inline uint64_t l2_evict_first() { return 0; }
inline unsigned long long globaltimer() {
    return (unsigned long long)std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch()).count();
}
// Named barrier `id` over `n` threads of the block (created by the first thread to reach it).
inline void named_sync(int id, int n) {
    std::barrier<> *b;
    {
        std::lock_guard<std::mutex> g(emu::blk->mu);
        auto &p = emu::blk->named[id];
        if (!p) p.reset(new std::barrier<>(n));
        b = p.get();
    }
    b->arrive_and_wait();
}
// The 128-byte swizzle on an address in a 1024-aligned tile: 16-byte chunk bits 4-6 XOR row bits 7-9.
inline uintptr_t swizzle128(uintptr_t p) { return p ^ ((p >> 7) & 7) << 4; }
// mbarriers: the word holds the pending transaction bytes (bits 0-31), the pending arrivals (32-46), the
// arrivals a phase needs (47-61) and the phase (63).  Only the issuing thread changes it (expect_tx, then the
// copies, which run at once); the others spin until the phase they wait for has completed.
inline void mbar_init(uint64_t *bar, unsigned count) { *bar = (uint64_t)count << 32 | (uint64_t)count << 47; }
inline void mbar_fence_init() {}
inline void mbar_update(uint64_t *bar, int arrivals, long long tx) {
    std::atomic_ref<uint64_t> w(*bar);
    uint64_t v = w.load(std::memory_order_acquire), nv;
    do {
        long long pend_tx = (int32_t)(uint32_t)v + tx;
        unsigned pend_arr = (unsigned)(v >> 32 & 0x7FFF) - arrivals, count = (unsigned)(v >> 47 & 0x7FFF),
                 phase = (unsigned)(v >> 63);
        if (pend_arr == 0 && pend_tx == 0) pend_arr = count, phase ^= 1;
        nv = (uint64_t)(uint32_t)pend_tx | (uint64_t)pend_arr << 32 | (uint64_t)count << 47 | (uint64_t)phase << 63;
    } while (!w.compare_exchange_weak(v, nv, std::memory_order_acq_rel, std::memory_order_acquire));
}
inline void mbar_arrive(uint64_t *bar) { mbar_update(bar, 1, 0); }
// A bulk copy runs at once and completes its bytes on bar.
inline void bulk_g2s(void *dst, const void *src, unsigned bytes, uint64_t *bar, uint64_t) {
    std::memcpy(dst, src, bytes);
    mbar_update(bar, 0, -(long long)bytes);
}
inline void mbar_expect_tx(uint64_t *bar, unsigned bytes) { mbar_update(bar, 1, bytes); }
inline void mbar_wait(uint64_t *bar, unsigned parity) {
    std::atomic_ref<uint64_t> w(*bar);
    while ((w.load(std::memory_order_acquire) >> 63) == parity) std::this_thread::yield();
}
// A tensor map as emu_encode_tiled stores it in CUtensorMap's opaque bytes; tma_load_2d copies the box at once
// (128-byte swizzle on the destination's address bits, zeros out of bounds) and completes its bytes on bar.
struct Map2d {
    const unsigned char *base;
    uint64_t dim0, dim1, stride1;
    uint32_t box0, box1, esize;
};
inline void tma_load_2d(void *dst, const CUtensorMap *map, int c0, int c1, uint64_t *bar) {
    Map2d m;
    std::memcpy(&m, map, sizeof m);
    const uint32_t row = m.box0 * m.esize;
    for (uint32_t r = 0; r < m.box1; r++)
        for (uint32_t e = 0; e < m.box0; e++) {
            uintptr_t p = (uintptr_t)dst + r * row + e * m.esize;
            if (row == 128) p = swizzle128(p);
            const long long col = (long long)c0 + e, rr = (long long)c1 + r;
            if (col >= 0 && rr >= 0 && (uint64_t)col < m.dim0 && (uint64_t)rr < m.dim1)
                std::memcpy((void *)p, m.base + rr * m.stride1 + col * m.esize, m.esize);
            else
                std::memset((void *)p, 0, m.esize);
        }
    mbar_update(bar, 0, -(long long)row * m.box1);
}
inline void fence_proxy_async() {}
inline void wgmma_fence() {}
inline void wgmma_commit() {}
template <int N> inline void wgmma_wait() {}
template <int R> inline void wgmma_hold(float (&)[R]) {}
template <int N> inline void wgmma_rs(float (&d)[N / 2], const uint32_t (&a)[4], uint64_t desc) {
    static uint32_t A[1024][4];
    const int tid = (int)emu::tIdx.x, wg0 = tid / 128 * 128, w = tid % 128 / 32, lane = tid % 32, g = lane / 4,
              t = lane % 4;
    std::memcpy(A[tid], a, 16);
    __syncthreads();
    auto aval = [&](int r, int k) { // A (row r of the warpgroup's 64, k of 16)
        const int rr = r % 16, src = wg0 + r / 16 * 32 + rr % 8 * 4 + k % 8 / 2, reg = (rr >= 8) + 2 * (k >= 8);
        const uint16_t h = (uint16_t)(A[src][reg] >> (16 * (k % 2)));
        __half x;
        std::memcpy(&x, &h, 2);
        return __half2float(x);
    };
    auto bval = [&](int n, int k) {
        const uintptr_t p = swizzle128((uintptr_t)desc + n / 8 * 1024 + n % 8 * 128 + 2 * k);
        __half x;
        std::memcpy(&x, (const void *)p, 2);
        return __half2float(x);
    };
    for (int j = 0; j < N / 8; j++)
        for (int q = 0; q < 4; q++) {
            const int row = 16 * w + g + 8 * (q >= 2), col = 8 * j + 2 * t + (q & 1);
            float s = d[4 * j + q];
            for (int k = 0; k < 16; k++) s += aval(row, k) * bval(col, k);
            d[4 * j + q] = s;
        }
    __syncthreads();
}
} // namespace lmb

// cuTensorMapEncodeTiled for the emulator: a 2-D map of 1- or 2-byte elements (what tma_load_2d reads).
inline CUresult emu_encode_tiled(CUtensorMap *map, CUtensorMapDataType dt, cuuint32_t rank, void *addr,
                                 const cuuint64_t *dims, const cuuint64_t *strides, const cuuint32_t *box,
                                 const cuuint32_t *, CUtensorMapInterleave, CUtensorMapSwizzle, CUtensorMapL2promotion,
                                 CUtensorMapFloatOOBfill) {
    static_assert(sizeof(lmb::Map2d) <= sizeof(CUtensorMap), "the emulated map fits");
    if (rank != 2 || ((uintptr_t)addr & 15) || (strides[0] & 15)) return CUDA_ERROR_INVALID_VALUE;
    lmb::Map2d m{(const unsigned char *)addr, dims[0], dims[1], strides[0], box[0], box[1],
                 dt == CU_TENSOR_MAP_DATA_TYPE_FLOAT16 ? 2u : 1u};
    std::memset(map, 0, sizeof *map);
    std::memcpy(map, &m, sizeof m);
    return CUDA_SUCCESS;
}

namespace nvcuda::wmma {
struct row_major {};
struct col_major {};
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
enum layout_t { mem_row_major, mem_col_major };
template <typename Use, int M, int N, int K, typename T, typename L = void> struct fragment {
    float v[16][16];
};
template <typename F> inline void fill_fragment(F &f, float x) {
    for (auto &r : f.v)
        for (auto &e : r) e = x;
}
// Element (i, j) of the fragment's matrix (for matrix_b: k = i, n = j) at p[i*ldm + j] (row_major) or
// p[j*ldm + i] (col_major).
template <typename Use, int M, int N, int K, typename T, typename L>
inline void load_matrix_sync(fragment<Use, M, N, K, T, L> &f, const half *p, unsigned ldm) {
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 16; j++)
            f.v[i][j] = __half2float(std::is_same_v<L, col_major> ? p[(size_t)j * ldm + i] : p[(size_t)i * ldm + j]);
}
template <typename D, typename A, typename B> inline void mma_sync(D &d, const A &a, const B &b, const D &c) {
    float r[16][16];
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 16; j++) {
            float s = c.v[i][j];
            for (int k = 0; k < 16; k++) s += a.v[i][k] * b.v[k][j];
            r[i][j] = s;
        }
    std::memcpy(d.v, r, sizeof r);
}
template <typename F> inline void store_matrix_sync(float *p, const F &f, unsigned ldm, layout_t) {
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 16; j++) p[(size_t)i * ldm + j] = f.v[i][j];
}
} // namespace nvcuda::wmma
