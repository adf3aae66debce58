// emu_step.cpp — runs kernels/cuda/w4a16_step.cu's persistent decode step under cuda_emu.h (all CTAs at once, with
// their grid barriers, the producer warp's bulk copies and the stage mbarriers) on small models, and checks:
//   - one layer: the q|k|v it leaves in its scratch, bit for bit, against the gemv (w4a16.cu, emulated) of the
//     normalised residual made in add_rmsnorm_vec_kernel's order (replicated here);
//   - two layers: the residual out, and the new token's K and V in the cache, against a plain float reference
//     (dequantized weights, fp16 roundings where the kernels round, attention in double).
// Shapes: GQA, attention in 1 and 3 splits, the gemv's K split (N <= 8192) and not (N past 8192), stages of 16 rows
// and of 8, ragged last stages, CTA counts that leave some CTAs without rows, and a hidden size past 4096 (the
// norm's second float4 a thread).  Built and run by run_w4a16.sh.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

extern "C" {
#include "../../../engine/tensor.h"
#include "../../../kernels/kernels.h"
#include "../../../kernels/kernels_cuda.h"
}

static unsigned long long st = 0x9E3779B97F4A7C15ULL;
static unsigned rnd() { return (unsigned)((st = st * 6364136223846793005ULL + 1442695040888963407ULL) >> 32); }
static float frand() { return (rnd() >> 8) / 16777216.0f * 2 - 1; }
static void *amalloc(size_t n) { return aligned_alloc(64, (n + 63) / 64 * 64); }
static float h2f(uint16_t h) { return lmb_f16_to_f32(h); }
static uint16_t f2h(float f) { return lmb_f32_to_f16(f); }
static float r16(float f) { return h2f(f2h(f)); }

static int failures = 0;

struct Lin { // W4 rows and the dense fp32 weights they stand for
    int N, K, G;
    uint32_t *qw, *qz;
    uint16_t *sc;
    float *W;
};
static Lin make_lin(int N, int K, int G) {
    Lin l{N, K, G};
    const int ng = K / G, ZW = (ng + 7) / 8;
    l.qw = (uint32_t *)amalloc(4 * (size_t)N * K / 8);
    l.qz = (uint32_t *)amalloc(4 * (size_t)N * ZW);
    l.sc = (uint16_t *)amalloc(2 * (size_t)N * ng);
    for (size_t i = 0; i < (size_t)N * K / 8; i++) l.qw[i] = rnd();
    for (int n = 0; n < N; n++)
        for (int w = 0; w < ZW; w++) {
            uint32_t z = 0;
            for (int e = 0; e < 8 && 8 * w + e < ng; e++) z |= (rnd() % 16) << (4 * e);
            l.qz[(size_t)n * ZW + w] = z;
        }
    const float amp = 64.f / std::sqrt((float)K); // outputs of about unit size whatever K
    for (size_t i = 0; i < (size_t)N * ng; i++) l.sc[i] = f2h((0.002f + 0.006f * (frand() + 1) / 2) * amp);
    l.W = (float *)amalloc(4 * (size_t)N * K);
    lmb_cpu_w4_rows_dequant(l.W, l.qw, l.qz, l.sc, K, N, G);
    return l;
}
static void matvec(float *y, const Lin &l, const float *x) { // fp16-rounded outputs, as the gemv stores them
    for (int n = 0; n < l.N; n++) {
        double s = 0;
        for (int k = 0; k < l.K; k++) s += (double)l.W[(size_t)n * l.K + k] * x[k];
        y[n] = r16((float)s);
    }
}

struct Model {
    int L, H, nh, nkv, hd, F, G, bs, nblocks;
    std::vector<Lin> qkv, o, gu, down;
    std::vector<uint16_t *> an, fn, kc, vc; // norms; caches [nblocks][nkv][bs][hd]
};

static void rope(float *v, int hd, int pos, const float *inv) {
    for (int i = 0; i < hd / 2; i++) {
        float sn = std::sin((float)pos * inv[i]), cs = std::cos((float)pos * inv[i]);
        float a = v[i], b = v[i + hd / 2];
        v[i] = r16(a * cs - b * sn), v[i + hd / 2] = r16(b * cs + a * sn);
    }
}

// add_rmsnorm_vec_kernel's normalisation (threads T0 of V float4s each, warp butterflies, a butterfly of the warps).
static void norm_exact(uint16_t *out, const float *x, const uint16_t *g, int H, float eps) {
    const int n4 = H / 4, V = (n4 + 1023) / 1024, T0 = ((n4 + V - 1) / V + 31) / 32 * 32;
    std::vector<float> ss(T0, 0.f), wsum(32, 0.f);
    for (int t = 0; t < T0; t++)
        for (int k = 0; k < V; k++) {
            int j = t + k * T0;
            if (j < n4) {
                const float *v = x + 4 * j;
                ss[t] += v[0] * v[0] + v[1] * v[1] + v[2] * v[2] + v[3] * v[3];
            }
        }
    auto butterfly = [](float *v) { // warp_sum over 32 values: xor 16, 8, 4, 2, 1; every lane ends with lane 0's sum
        for (int o = 16; o > 0; o >>= 1) {
            float n[32];
            for (int l = 0; l < 32; l++) n[l] = v[l] + v[l ^ o];
            memcpy(v, n, sizeof n);
        }
    };
    for (int w = 0; w < T0 / 32; w++) {
        butterfly(&ss[32 * w]);
        wsum[w] = ss[32 * w];
    }
    butterfly(wsum.data());
    const float inv = 1.f / std::sqrt(wsum[0] / H + eps); // rsqrtf: the emulator's host rsqrtf is this
    for (int i = 0; i < H; i++) out[i] = f2h(x[i] * inv * h2f(g[i]));
}

static double rel(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]), den += (double)b[i] * b[i];
    return std::sqrt(num / den);
}

static void check(const char *what, bool ok, double v) {
    if (!ok) failures++;
    printf("%-60s %.2e %s\n", what, v, ok ? "ok" : "FAIL");
}

static void run_case(const char *name, int L, int H, int nh, int nkv, int hd, int F, int G, int pos, int ctas) {
    Model m{L, H, nh, nkv, hd, F, G, 16, 0};
    m.nblocks = (pos + 1 + m.bs - 1) / m.bs + 3;
    const float eps = 1e-5f, scale = 1.f / std::sqrt((float)hd);
    const int QN = (nh + 2 * nkv) * hd;
    std::vector<lmb_w4_step_layer> layers(L);
    const size_t cache_elems = (size_t)m.nblocks * nkv * m.bs * hd;
    std::vector<int32_t> table(m.nblocks);
    for (int i = 0; i < m.nblocks; i++) table[i] = (i * 5 + 3) % m.nblocks; // a permutation: nblocks 4, 6, 8, 13
    for (int l = 0; l < L; l++) {
        m.qkv.push_back(make_lin(QN, H, G)), m.o.push_back(make_lin(H, nh * hd, G));
        m.gu.push_back(make_lin(2 * F, H, G)), m.down.push_back(make_lin(H, F, G));
        uint16_t *an = (uint16_t *)amalloc(2 * H), *fn = (uint16_t *)amalloc(2 * H);
        for (int i = 0; i < H; i++) an[i] = f2h(1 + 0.2f * frand()), fn[i] = f2h(1 + 0.2f * frand());
        uint16_t *kc = (uint16_t *)amalloc(2 * cache_elems), *vc = (uint16_t *)amalloc(2 * cache_elems);
        for (size_t i = 0; i < cache_elems; i++) kc[i] = f2h(frand()), vc[i] = f2h(frand());
        m.an.push_back(an), m.fn.push_back(fn), m.kc.push_back(kc), m.vc.push_back(vc);
        auto li = [](const Lin &x) { return lmb_w4_step_linear{x.qw, x.qz, x.sc}; };
        layers[l] = {li(m.qkv[l]), li(m.o[l]), li(m.gu[l]), li(m.down[l]), an, fn, kc, vc};
    }
    std::vector<float> inv(hd / 2);
    for (int i = 0; i < hd / 2; i++) inv[i] = std::pow(10000.f, -2.f * i / hd);
    const int max_splits = (m.nblocks * m.bs + 63) / 64;
    float *resid = (float *)amalloc(4 * H);
    std::vector<float> resid0(H);
    for (int i = 0; i < H; i++) resid0[i] = resid[i] = frand();
    uint16_t *qkv = (uint16_t *)amalloc(2 * QN), *attn = (uint16_t *)amalloc(2 * nh * hd),
             *act = (uint16_t *)amalloc(2 * F);
    float *partial = (float *)amalloc(4 * (size_t)nh * max_splits * (hd + 2));
    unsigned *tickets = (unsigned *)calloc(nh, 4), sync[2] = {0, 0};
    int32_t positions[1] = {pos}, tok_seq[1] = {0};
    int64_t slots[1] = {(int64_t)table[pos / m.bs] * m.bs + pos % m.bs};
    // the reference's caches: copies before the kernel writes the new token
    std::vector<std::vector<uint16_t>> kref(L), vref(L);
    for (int l = 0; l < L; l++)
        kref[l].assign(m.kc[l], m.kc[l] + cache_elems), vref[l].assign(m.vc[l], m.vc[l] + cache_elems);

    lmb_w4_step_args a = {layers.data(), L, H, nh, nkv, hd, F, G, eps, scale, resid, qkv, attn, act, positions, tok_seq,
                          table.data(), slots, m.nblocks, m.bs, inv.data(), partial, tickets, sync, max_splits};
    const char *why = lmb_cuda_w4_step_unsupported(&a);
    if (why) {
        failures++;
        printf("%s: refused (%s) FAIL\n", name, why);
        return;
    }
    lmb_cuda_w4_step_ctas(ctas);
    if (lmb_cuda_w4_step(&a, nullptr)) failures++, printf("%s: launch failed FAIL\n", name);

    // reference
    std::vector<float> r(resid0), x(std::max(H, std::max(F, nh * hd))), q(QN), y(std::max(std::max(QN, 2 * F), H)),
        at(nh * hd);
    std::vector<uint16_t> xh(H);
    char what[160];
    for (int l = 0; l < L; l++) {
        norm_exact(xh.data(), r.data(), m.an[l], H, eps);
        for (int i = 0; i < H; i++) x[i] = h2f(xh[i]);
        if (l == 0 && L == 1) { // the gemv on the same x: the kernel's q|k|v scratch must match bit for bit
            std::vector<uint16_t> g(QN);
            lmb_cuda_w4a16_gemv(g.data(), xh.data(), m.qkv[0].qw, m.qkv[0].qz, m.qkv[0].sc, 1, QN, H, G, nullptr);
            int diff = 0;
            for (int i = 0; i < QN; i++) diff += g[i] != qkv[i];
            snprintf(what, sizeof what, "%s: q|k|v against norm + gemv, outputs differing", name);
            check(what, diff == 0, diff);
        }
        matvec(q.data(), m.qkv[l], x.data());
        for (int h = 0; h < nh + nkv; h++) rope(&q[(size_t)h * hd], hd, pos, inv.data());
        const int kvh_n = nkv;
        const size_t so = ((size_t)(slots[0] / m.bs) * nkv) * m.bs * hd + (size_t)(slots[0] % m.bs) * hd;
        for (int h = 0; h < kvh_n; h++)
            for (int d = 0; d < hd; d++) {
                kref[l][so + (size_t)h * m.bs * hd + d] = f2h(q[(size_t)(nh + h) * hd + d]);
                vref[l][so + (size_t)h * m.bs * hd + d] = f2h(q[(size_t)(nh + nkv + h) * hd + d]);
            }
        for (int h = 0; h < nh; h++) {
            const int kvh = h / (nh / nkv);
            std::vector<double> s(pos + 1);
            double mx = -1e30, sum = 0;
            for (int j = 0; j <= pos; j++) {
                const size_t base = ((size_t)table[j / m.bs] * nkv + kvh) * m.bs * hd + (size_t)(j % m.bs) * hd;
                double d = 0;
                for (int e = 0; e < hd; e++) d += (double)q[(size_t)h * hd + e] * scale * h2f(kref[l][base + e]);
                s[j] = d, mx = std::max(mx, d);
            }
            for (int j = 0; j <= pos; j++) sum += s[j] = std::exp(s[j] - mx);
            for (int e = 0; e < hd; e++) {
                double o = 0;
                for (int j = 0; j <= pos; j++)
                    o += s[j] * h2f(vref[l][((size_t)table[j / m.bs] * nkv + kvh) * m.bs * hd +
                                            (size_t)(j % m.bs) * hd + e]);
                at[(size_t)h * hd + e] = r16((float)(o / sum));
            }
        }
        matvec(y.data(), m.o[l], at.data());
        for (int i = 0; i < H; i++) r[i] += y[i];
        norm_exact(xh.data(), r.data(), m.fn[l], H, eps);
        for (int i = 0; i < H; i++) x[i] = h2f(xh[i]);
        matvec(y.data(), m.gu[l], x.data());
        for (int i = 0; i < F; i++) x[i] = r16(y[i] / (1.f + std::exp(-y[i])) * y[F + i]);
        matvec(y.data(), m.down[l], x.data());
        for (int i = 0; i < H; i++) r[i] += y[i];
    }
    { // the last layer's attention output and SiLU output, left in the scratch
        std::vector<float> ag(nh * hd), xg(F);
        for (int i = 0; i < nh * hd; i++) ag[i] = h2f(attn[i]);
        for (int i = 0; i < F; i++) xg[i] = h2f(act[i]);
        const double ea = rel(ag.data(), at.data(), (size_t)nh * hd), ex = rel(xg.data(), x.data(), F);
        snprintf(what, sizeof what, "%s: last attention and SiLU outputs, relative error", name);
        check(what, ea < 1e-2 && ex < 2e-2, std::max(ea, ex));
    }
    double e = rel(resid, r.data(), H);
    snprintf(what, sizeof what, "%s: residual out, relative error", name);
    check(what, e < 1e-2, e);
    for (int l = 0; l < L; l++) {
        std::vector<float> kg(cache_elems), kr(cache_elems), vg(cache_elems), vr(cache_elems);
        for (size_t i = 0; i < cache_elems; i++)
            kg[i] = h2f(m.kc[l][i]), kr[i] = h2f(kref[l][i]), vg[i] = h2f(m.vc[l][i]), vr[i] = h2f(vref[l][i]);
        double ek = rel(kg.data(), kr.data(), cache_elems), ev = rel(vg.data(), vr.data(), cache_elems);
        snprintf(what, sizeof what, "%s: layer %d K and V caches, relative error", name, l);
        check(what, ek < 1e-2 && ev < 1e-2, std::max(ek, ev));
    }
    int left = 0;
    for (int h = 0; h < nh; h++) left += tickets[h] != 0;
    snprintf(what, sizeof what, "%s: tickets left non-zero; barrier count", name);
    check(what, left == 0 && sync[0] == 0, left + sync[0]);
}

int main() {
    // GQA 2:1, 3 splits of 64 keys (pos 150), every K split (N <= 8192), 16-row stages; CTAs 3 and 7 (some idle)
    run_case("A1 H256 4/2 heads hd64 F512 g64, 1 layer", 1, 256, 4, 2, 64, 512, 64, 150, 3);
    run_case("A2 same, 2 layers, 7 CTAs", 2, 256, 4, 2, 64, 512, 64, 150, 7);
    // q|k|v and gate|up past 8192 rows (no K split), o and down with K 4608 and 5120 (8-row stages), hd 128, 1 split
    run_case("B1 H128 72/36 heads hd64 F5120 g32, 1 layer", 1, 128, 72, 36, 64, 5120, 32, 40, 5);
    run_case("B2 H128 8/8 heads hd128 F5120 g32, 2 layers", 2, 128, 8, 8, 128, 5120, 32, 70, 4);
    // hidden 4160: the norm's threads take two float4s each (add_rmsnorm_vec_kernel's V = 2 above H = 4096)
    run_case("C1 H4160 2/2 heads hd64 F128 g32, 1 layer", 1, 4160, 2, 2, 64, 128, 32, 9, 3);
    printf(failures ? "%d FAILED\n" : "all passed\n", failures);
    return failures != 0;
}
