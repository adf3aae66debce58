/* test_quantize_cuda.c — the quantize stage's GPU device (quantize/qdev_cuda.c, kernels/cuda/calib.cu)
 * against the CPU device (quantize/qdev_cpu.c):
 *   - every operation on the same random inputs: matmuls, norm, RoPE and attention within fp32 rounding
 *     (the GPU device opened with exact fp32 matmuls); int4 fake quantization, clamping and row maxima
 *     bit for bit; the double reductions to 1e-12;
 *   - the calibration forward of the fixture model's layers: captured inputs within 1e-5; the clipping search
 *     on identical inputs and weights: bit for bit; the folded model (search + fold) within 1e-5 and, without
 *     clipping, the same int4 codes;
 *   - the whole AWQ stage on a fixture model (Llama with GQA, 4 calibration sequences; on the GPU in chunks of
 *     one sequence, on the CPU in one): the same α per group, block errors within 2% (exact fp32) or 10%
 *     (TF32) and at most 2% / 5% of the codes different.  Not bit for bit: where the clipping search clamps
 *     both ends of a group to ±m, the zero point is -rint(-7.5 ± an ulp) (AutoAWQ's quantizer has the same
 *     tie), so a last-bit difference in the folded weights (from the ~1e-7 differences of the activations
 *     their scales are computed from) can move that group's zero point and with it the search's choice.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../../engine/rope.h"
#include "../../engine/safetensors.h"
#include "../../quantize/awq_internal.h"
#include "../../quantize/qdev.h"
#include "../../quantize/quantize.h"
#include "../support/fixtures.h"
#include "gpu_util.h"

static lmb_qdev *cpu, *gpu;

static void open_both(void) {
    gpu_require();
    lmb_error err;
    cr_assert_eq(lmb_qdev_cpu_open(&cpu, &err), 0, "%s", err.msg);
    cr_assert_eq(lmb_qdev_cuda_open(&gpu, 0, true, &err), 0, "%s", err.msg);
}

static void close_both(void) {
    lmb_qdev_close(cpu);
    lmb_qdev_close(gpu);
    cpu = gpu = NULL;
}

TestSuite(qdev_cuda, .init = open_both, .fini = close_both);

static float *rnd(size_t n, float scale) {
    float *p = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) p[i] = gpu_frand() * scale;
    return p;
}

/* A device copy of host data. */
static float *up(lmb_qdev *d, const float *h, size_t n) {
    float *p = d->ops->alloc(d, n);
    d->ops->put(d, p, h, n);
    return p;
}

static float *down(lmb_qdev *d, const float *p, size_t n) {
    float *h = malloc(sizeof(float) * n);
    d->ops->get(d, h, p, n);
    return h;
}

/* Runs `op` on both devices over copies of the same inputs and compares buffer 0 (n0 floats). */
#define BOTH(bufs, sizes, nb, call)                                                                               \
    for (int dev_ = 0; dev_ < 2; dev_++) {                                                                        \
        lmb_qdev *d = dev_ ? gpu : cpu;                                                                           \
        float *b[8];                                                                                              \
        for (int i_ = 0; i_ < (nb); i_++) b[i_] = up(d, (bufs)[i_], (sizes)[i_]);                                     \
        call;                                                                                                     \
        res[dev_] = down(d, b[0], (sizes)[0]);                                                                      \
        for (int i_ = 0; i_ < (nb); i_++) d->ops->release(d, b[i_]);                                              \
        lmb_error e_;                                                                                             \
        cr_assert_eq(lmb_qdev_status(d, &e_), 0, "%s", e_.msg);                                                   \
    }

static void expect_close(float *res[2], size_t n, double tol, const char *what) {
    double r = gpu_rel(res[1], res[0], n);
    cr_expect(r <= tol, "%s: relative error %.3g > %.3g", what, r, tol);
    free(res[0]), free(res[1]);
}

static void expect_equal(float *res[2], size_t n, const char *what) {
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += res[0][i] != res[1][i];
    cr_expect_eq(bad, 0, "%s: %zu of %zu values differ", what, bad, n);
    free(res[0]), free(res[1]);
}

Test(qdev_cuda, matmul_norm_pointwise) {
    float *res[2];
    int M = 37, N = 48, K = 64;
    float *y = calloc((size_t)M * (N > K ? N : K), sizeof(float)), *x = rnd((size_t)M * K, 1), *w = rnd((size_t)N * K, 0.2f),
          *bias = rnd(N, 0.1f);
    float *mm[] = {y, x, w, bias};
    size_t mms[] = {(size_t)M * N, (size_t)M * K, (size_t)N * K, (size_t)N};
    BOTH(mm, mms, 4, d->ops->matmul(d, b[0], b[1], b[2], b[3], M, N, K));
    expect_close(res, (size_t)M * N, 1e-6, "matmul + bias");

    float *g = rnd(K, 1);
    float *rn[] = {y, x, g};
    size_t rns[] = {(size_t)M * K, (size_t)M * K, (size_t)K};
    BOTH(rn, rns, 3, d->ops->rmsnorm(d, b[0], b[1], b[2], M, K, 1e-5f));
    expect_close(res, (size_t)M * K, 1e-6, "rmsnorm");

    float *gate = rnd((size_t)M * K, 4), *upv = rnd((size_t)M * K, 1);
    float *sm[] = {y, gate, upv};
    size_t sms[] = {(size_t)M * K, (size_t)M * K, (size_t)M * K};
    BOTH(sm, sms, 3, d->ops->silu_mul(d, b[0], b[1], b[2], M, K));
    expect_close(res, (size_t)M * K, 1e-6, "silu_mul");

    float *ad[] = {x, gate};
    BOTH(ad, rns, 2, d->ops->add(d, b[0], b[1], (size_t)M * K));
    expect_equal(res, (size_t)M * K, "add");

    float *s = rnd(K, 1);
    for (int i = 0; i < K; i++) s[i] = 0.5f + fabsf(s[i]);
    float *sc[] = {x};
    BOTH(sc, rns, 1, d->ops->scale_cols(d, b[0], M, K, s, false));
    expect_equal(res, (size_t)M * K, "scale_cols");
    BOTH(sc, rns, 1, d->ops->scale_cols(d, b[0], M, K, s, true));
    expect_equal(res, (size_t)M * K, "scale_cols divide");
    float *ur[] = {w, bias};
    float *sr = rnd(N, 1);
    for (int i = 0; i < N; i++) sr[i] = 0.5f + fabsf(sr[i]);
    BOTH(ur, mms + 2, 2, d->ops->unscale_rows(d, b[0], b[1], N, K, sr));
    expect_equal(res, (size_t)N * K, "unscale_rows (weights)");
    float *urb[] = {bias, w};
    size_t urbs[] = {(size_t)N, (size_t)N * K};
    BOTH(urb, urbs, 2, d->ops->unscale_rows(d, b[1], b[0], N, K, sr));
    expect_equal(res, (size_t)N, "unscale_rows (bias)");
    free(y), free(x), free(w), free(bias), free(g), free(gate), free(upv), free(s), free(sr);
}

Test(qdev_cuda, rope_attention) {
    float *res[2];
    int n_seqs = 3, T = 9, nh = 4, nkv = 2, hd = 16, rows = n_seqs * T;
    lmb_model_config cfg = {.head_dim = hd, .rope = {.theta = 10000}};
    double inv_freq[hd / 2 + 1];
    lmb_rope_inv_freq(&cfg, inv_freq);
    size_t nq = (size_t)rows * nh * hd, nk = (size_t)rows * nkv * hd;
    float *q = rnd(nq, 1), *k = rnd(nk, 1), *v = rnd(nk, 1), *o = calloc(nq, sizeof(float));
    float *rq[] = {q, k};
    size_t rqs[] = {nq, nk};
    BOTH(rq, rqs, 2, d->ops->rope(d, b[0], b[1], rows, T, nh, nkv, hd, inv_freq));
    expect_close(res, nq, 1e-6, "rope q");
    float *rk[] = {k, q};
    size_t rks[] = {nk, nq};
    BOTH(rk, rks, 2, d->ops->rope(d, b[1], b[0], rows, T, nh, nkv, hd, inv_freq));
    expect_close(res, nk, 1e-6, "rope k");
    float *at[] = {o, q, k, v};
    size_t ats[] = {nq, nq, nk, nk};
    BOTH(at, ats, 4, d->ops->attention(d, b[0], b[1], b[2], b[3], n_seqs, T, nh, nkv, hd));
    expect_close(res, nq, 1e-5, "attention (GQA, causal)");
    free(q), free(k), free(v), free(o);
}

Test(qdev_cuda, quantizer_and_reductions) {
    float *res[2];
    int rows = 24, cols = 256, G = 64;
    size_t n = (size_t)rows * cols;
    float *w = rnd(n, 0.3f), *w2 = rnd(n, 0.3f);
    float *fq[] = {w};
    size_t fqs[] = {n};
    BOTH(fq, fqs, 1, d->ops->fake_quant(d, b[0], rows, cols, G));
    expect_equal(res, n, "fake_quant g64");
    BOTH(fq, fqs, 1, d->ops->fake_quant(d, b[0], rows, cols, 128));
    expect_equal(res, n, "fake_quant g128");
    float m[24];
    for (int r = 0; r < rows; r++) m[r] = 0.05f + 0.01f * r;
    float *cl[] = {w, w2};
    size_t cls[] = {n, n};
    BOTH(cl, cls, 2, d->ops->clamp_rows(d, b[0] + 64, cols, b[1] + 32, cols, rows, G, m));
    expect_equal(res, n, "clamp_rows (strided)");
    float *cp[] = {w2, w};
    BOTH(cp, cls, 2, d->ops->copy2d(d, b[0] + 3, cols, b[1] + 100, cols, rows - 1, 50));
    expect_equal(res, n, "copy2d");

    float mx[2][24];
    double cs[2][256], cse[2][256], se[2];
    for (int dev = 0; dev < 2; dev++) {
        lmb_qdev *d = dev ? gpu : cpu;
        float *a = up(d, w, n), *bb = up(d, w2, n);
        d->ops->row_absmax(d, a + 16, cols, rows, 100, mx[dev]);
        d->ops->col_sums(d, a, NULL, rows, cols, cs[dev]);
        d->ops->col_sums(d, a, bb, rows, cols, cse[dev]);
        se[dev] = d->ops->sq_err(d, a, bb, n - 5);
        d->ops->release(d, a), d->ops->release(d, bb);
        lmb_error e;
        cr_assert_eq(lmb_qdev_status(d, &e), 0, "%s", e.msg);
    }
    for (int r = 0; r < rows; r++) cr_expect_eq(mx[0][r], mx[1][r], "row_absmax row %d", r);
    for (int c = 0; c < cols; c++) {
        cr_expect(fabs(cs[0][c] - cs[1][c]) <= 1e-12 * fabs(cs[0][c]), "col_sums |a| col %d", c);
        cr_expect(fabs(cse[0][c] - cse[1][c]) <= 1e-12 * fabs(cse[0][c]), "col_sums (a-b)^2 col %d", c);
    }
    cr_expect(fabs(se[0] - se[1]) <= 1e-12 * se[0], "sq_err %.17g vs %.17g", se[0], se[1]);
    free(w), free(w2);
}

/* ---- the whole stage -------------------------------------------------------------------------------------- */

static char tmp[64];

static void stage_setup(void) {
    gpu_require();
    lmb_error err;
    cr_assert_eq(lmb_test_tmpdir(tmp, sizeof tmp, &err), 0, "%s", err.msg);
    lmb_test_model_spec s;
    lmb_test_model_spec_default(&s, LMB_ARCH_LLAMA);
    s.hidden = 128, s.ffn = 256, s.heads = 4, s.kv_heads = 2, s.layers = 2;
    mkdir(lmb_test_join(tmp, "fp"), 0755);
    cr_assert_eq(lmb_test_make_model(lmb_test_join(tmp, "fp"), &s, &err), 0, "%s", err.msg);
}

static void stage_teardown(void) { lmb_test_rmtree(tmp, NULL); }

TestSuite(quantize_cuda, .init = stage_setup, .fini = stage_teardown);

static void run_stage_with(lmb_qdev_kind kind, bool exact, const char *out, lmb_awq_report *rep, bool dense, bool clip) {
    lmb_calib_set cs = {.n_seqs = 4, .seqlen = 24};
    cs.tokens = malloc(sizeof(int32_t) * 96);
    for (int i = 0; i < 96; i++) cs.tokens[i] = 2 + (i * 37 + i / 7) % 250;
    lmb_awq_options o;
    lmb_awq_options_default(&o);
    o.model_dir = lmb_test_join(tmp, "fp");
    o.out_dir = lmb_test_join(tmp, out);
    o.calib_set = &cs;
    o.quiet = true;
    o.group_size = 64;
    o.backend = kind;
    o.exact_fp32 = exact;
    o.dense = dense;
    o.clip = clip;
    lmb_error err;
    if (kind == LMB_QDEV_CUDA) setenv("LMB_QUANT_SCRATCH_MB", "0", 1); /* one sequence per chunk */
    int rc = lmb_quantize_awq(&o, rep, &err);
    unsetenv("LMB_QUANT_SCRATCH_MB");
    cr_assert_eq(rc, 0, "%s", err.msg);
    free(cs.tokens);
}

static void run_stage(lmb_qdev_kind kind, bool exact, const char *out, lmb_awq_report *rep) {
    run_stage_with(kind, exact, out, rep, false, true);
}

/* Largest relative difference between the F32 tensors of two dense output folders. */
static double dense_diff(const char *a, const char *b) {
    lmb_safetensors *fa, *fb;
    lmb_error err;
    cr_assert_eq(lmb_st_open_dir(lmb_test_join(tmp, a), &fa, &err), 0, "%s", err.msg);
    cr_assert_eq(lmb_st_open_dir(lmb_test_join(tmp, b), &fb, &err), 0, "%s", err.msg);
    double worst = 0;
    for (int i = 0; i < lmb_st_count(fa); i++) {
        const lmb_tensor *ta = lmb_st_at(fa, i), *tb = lmb_st_find(fb, ta->name);
        cr_assert(tb && tb->nbytes == ta->nbytes && ta->dtype == LMB_F32, "%s", ta->name);
        size_t n = ta->nbytes / 4;
        float *x = malloc(ta->nbytes), *y = malloc(ta->nbytes);
        memcpy(x, ta->data, ta->nbytes), memcpy(y, tb->data, tb->nbytes);
        double r = gpu_rel(y, x, n);
        worst = r > worst ? r : worst;
        free(x), free(y);
    }
    lmb_st_close(fa), lmb_st_close(fb);
    return worst;
}

/* Fraction of int4 codes (nibbles of qweight) that differ between two output folders, over every layer. */
static double code_diff(const char *a, const char *b) {
    lmb_safetensors *fa, *fb;
    lmb_error err;
    cr_assert_eq(lmb_st_open_dir(lmb_test_join(tmp, a), &fa, &err), 0, "%s", err.msg);
    cr_assert_eq(lmb_st_open_dir(lmb_test_join(tmp, b), &fb, &err), 0, "%s", err.msg);
    size_t diff = 0, total = 0;
    for (int i = 0; i < lmb_st_count(fa); i++) {
        const lmb_tensor *ta = lmb_st_at(fa, i);
        if (!strstr(ta->name, "qweight")) continue;
        const lmb_tensor *tb = lmb_st_find(fb, ta->name);
        cr_assert(tb && tb->nbytes == ta->nbytes, "%s missing or resized", ta->name);
        for (size_t k = 0; k < ta->nbytes / 4; k++) {
            uint32_t wa, wb;
            memcpy(&wa, (const char *)ta->data + 4 * k, 4);
            memcpy(&wb, (const char *)tb->data + 4 * k, 4);
            for (int j = 0; j < 8; j++) diff += ((wa >> (4 * j)) & 15u) != ((wb >> (4 * j)) & 15u), total++;
        }
    }
    lmb_st_close(fa), lmb_st_close(fb);
    return (double)diff / (double)(total ? total : 1);
}

Test(quantize_cuda, awq_matches_cpu) {
    lmb_awq_report rc, rg, rt;
    run_stage(LMB_QDEV_CPU, false, "cpu", &rc);
    run_stage(LMB_QDEV_CUDA, true, "gpu", &rg);
    run_stage(LMB_QDEV_CUDA, false, "tf32", &rt);
    for (int l = 0; l < rc.n_layers; l++)
        for (int g = 0; g < LMB_AWQ_GROUPS; g++) {
            lmb_awq_group_stats *c = &rc.layers[l][g], *x = &rg.layers[l][g], *t = &rt.layers[l][g];
            cr_expect_eq(c->alpha, x->alpha, "layer %d group %d: alpha %.2f (cpu) vs %.2f (gpu)", l, g, c->alpha, x->alpha);
            cr_expect(fabs(c->mse_rtn - x->mse_rtn) <= 1e-3 * c->mse_rtn, "layer %d group %d mse_rtn %g vs %g", l, g,
                      c->mse_rtn, x->mse_rtn);
            cr_expect(fabs(c->mse_final - x->mse_final) <= 0.02 * c->mse_final, "layer %d group %d mse_final %g vs %g",
                      l, g, c->mse_final, x->mse_final);
            cr_expect(fabs(c->mse_final - t->mse_final) <= 0.10 * c->mse_final,
                      "layer %d group %d mse_final %g (cpu) vs %g (tf32)", l, g, c->mse_final, t->mse_final);
        }
    double dx = code_diff("cpu", "gpu"), dt = code_diff("cpu", "tf32");
    cr_expect(dx < 0.02, "%.4f%% of the codes differ (exact fp32)", 100 * dx);
    cr_expect(dt < 0.05, "%.4f%% of the codes differ (tf32)", 100 * dt);
    printf("quantize_cuda: codes differing from the CPU's: %.4f%% (exact fp32), %.4f%% (tf32)\n", 100 * dx, 100 * dt);
    lmb_awq_report_free(&rc), lmb_awq_report_free(&rg), lmb_awq_report_free(&rt);
}

/* Where a difference would come from: the folded model (search + fold, unquantized) and the quantized one
 * without the clipping search. */
Test(quantize_cuda, stages_match_cpu) {
    run_stage_with(LMB_QDEV_CPU, false, "cpu-dense", NULL, true, false);
    run_stage_with(LMB_QDEV_CUDA, true, "gpu-dense", NULL, true, false);
    double dd = dense_diff("cpu-dense", "gpu-dense");
    cr_expect(dd < 1e-5, "folded weights differ by %.3g", dd);
    run_stage_with(LMB_QDEV_CPU, false, "cpu-noclip", NULL, false, false);
    run_stage_with(LMB_QDEV_CUDA, true, "gpu-noclip", NULL, false, false);
    double dc = code_diff("cpu-noclip", "gpu-noclip");
    cr_expect(dc < 1e-3, "%.4f%% of the codes differ without clipping", 100 * dc);
    printf("quantize_cuda: folded weights differ by %.3g; codes without clipping: %.4f%%\n", dd, 100 * dc);
}

/* The calibration forward of one layer on both devices: the captured inputs agree to fp32 rounding. */
Test(quantize_cuda, forward_matches_cpu) {
    lmb_model *m;
    lmb_error err;
    cr_assert_eq(lmb_model_open(lmb_test_join(tmp, "fp"), &m, &err), 0, "%s", err.msg);
    lmb_calib_set cs = {.n_seqs = 4, .seqlen = 24};
    cs.tokens = malloc(sizeof(int32_t) * 96);
    for (int i = 0; i < 96; i++) cs.tokens[i] = 2 + (i * 37 + i / 7) % 250;
    lmb_qdev *dev[2];
    cr_assert_eq(lmb_qdev_cpu_open(&dev[0], &err), 0, "%s", err.msg);
    cr_assert_eq(lmb_qdev_cuda_open(&dev[1], 0, true, &err), 0, "%s", err.msg);
    lmb_calib_fwd f[2];
    lmb_qlayer L[2];
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(lmb_calib_fwd_init(&f[i], dev[i], m, &cs, &err), 0, "%s", err.msg);
        for (int l = 0; l < m->cfg.n_layers; l++) {
            cr_assert_eq(lmb_qlayer_load(dev[i], m, l, &L[i], &err), 0, "%s", err.msg);
            cr_assert_eq(lmb_calib_fwd_layer(&f[i], &L[i], &err), 0, "%s", err.msg);
            if (l + 1 < m->cfg.n_layers) lmb_qlayer_free(dev[i], &L[i]);
        }
    }
    size_t N = 96, H = (size_t)m->cfg.hidden, Q = (size_t)m->cfg.n_heads * m->cfg.head_dim, F = (size_t)m->cfg.ffn;
    struct {
        const char *name;
        float *p[2];
        size_t n;
    } bufs[] = {{"x", {f[0].x, f[1].x}, N * H},
                {"in_qkv", {f[0].in_qkv, f[1].in_qkv}, N * H},
                {"in_o", {f[0].in_o, f[1].in_o}, N * Q},
                {"in_gu", {f[0].in_gu, f[1].in_gu}, N * H},
                {"in_down", {f[0].in_down, f[1].in_down}, N * F}};
    for (size_t b = 0; b < sizeof bufs / sizeof bufs[0]; b++) {
        float *res[2] = {down(dev[0], bufs[b].p[0], bufs[b].n), down(dev[1], bufs[b].p[1], bufs[b].n)};
        double r = gpu_rel(res[1], res[0], bufs[b].n);
        cr_expect(r < 1e-5, "%s differs by %.3g", bufs[b].name, r);
        free(res[0]), free(res[1]);
    }
    /* the clipping search on identical inputs: the CPU's captured inputs and weights copied to the GPU */
    for (size_t b = 1; b < sizeof bufs / sizeof bufs[0]; b++) {
        float *h = down(dev[0], bufs[b].p[0], bufs[b].n);
        dev[1]->ops->put(dev[1], bufs[b].p[1], h, bufs[b].n);
        free(h);
    }
    lmb_qlinear *lc[] = {&L[0].v, &L[0].o, &L[0].gate, &L[0].up, &L[0].down},
                *lg[] = {&L[1].v, &L[1].o, &L[1].gate, &L[1].up, &L[1].down};
    for (int i = 0; i < 5; i++) dev[1]->ops->put(dev[1], lg[i]->w, lc[i]->w, (size_t)lc[i]->out * lc[i]->in);
    cr_assert_eq(lmb_awq_clip(&f[0], &L[0], 64, &err), 0, "%s", err.msg);
    cr_assert_eq(lmb_awq_clip(&f[1], &L[1], 64, &err), 0, "%s", err.msg);
    const char *names[] = {"v", "o", "gate", "up", "down"};
    for (int i = 0; i < 5; i++) {
        size_t n = (size_t)lc[i]->out * lc[i]->in, bad = 0;
        float *g = down(dev[1], lg[i]->w, n);
        for (size_t k = 0; k < n; k++) bad += g[k] != lc[i]->w[k];
        cr_expect_eq(bad, 0, "clip %s: %zu weights differ", names[i], bad);
        free(g);
    }
    for (int i = 0; i < 2; i++) {
        lmb_qlayer_free(dev[i], &L[i]);
        lmb_calib_fwd_free(&f[i]);
        lmb_qdev_close(dev[i]);
    }
    free(cs.tokens);
    lmb_model_close(m);
}
