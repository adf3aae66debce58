/* test_kv_engine_cuda.c — the CUDA engine with an int8/int4 KV cache against the CPU engine with the same cache
 * (and the CPU's fp32 cache as the yardstick): logits of prompts that span several blocks (prefill on tensor
 * cores for head_dim 64, decode rows through the split-K kernel), greedy decoding through the CUDA graphs,
 * offline scales, batch invariance and preemption.  Skips without a GPU.
 *
 * Bounds: the GPU quantizes K after its fp16 RoPE, so a code can differ by one step from the CPU's; the GPU's
 * error against the fp32 cache may exceed the CPU's by the 16-bit noise (1e-2, as test_engine_cuda.c) plus a
 * quarter of the CPU's own quantization error. */
#include <criterion/criterion.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../engine/engine.h"
#include "../../quantize/kv_calibrate.h"
#include "../support/engine_util.h"
#include "../support/fixtures.h"
#include "gpu_util.h"

static char dir[64];

static void make_model(void) {
    if (!gpu_present()) return;
    lmb_error err;
    lmb_test_model_spec s;
    lmb_test_model_spec_default(&s, LMB_ARCH_LLAMA);
    s.hidden = 256, s.heads = 4, s.kv_heads = 2, s.ffn = 512, s.vocab = 512, s.layers = 3; /* head_dim 64 */
    s.dtype = LMB_F16;
    s.max_pos = 1024;
    cr_assert_eq(lmb_test_tmpdir(dir, sizeof dir, &err), 0, "%s", err.msg);
    cr_assert_eq(lmb_test_make_model(dir, &s, &err), 0, "%s", err.msg);
}
static void drop_model(void) {
    if (dir[0]) lmb_test_rmtree(dir, NULL);
}
TestSuite(kv_engine_cuda, .init = make_model, .fini = drop_model, .timeout = 300);

static lmb_engine *open_engine(const char *model, const char *backend, int bits, const float *fixed, double kv_mb,
                               bool invariant) {
    lmb_engine_config c;
    lmb_engine_config_default(&c);
    c.backend = backend;
    c.quiet = true;
    c.kv_cache_mb = kv_mb > 0 ? kv_mb : 64;
    c.kv_bits = bits;
    c.kv_fixed = fixed;
    c.batch_invariant = invariant;
    lmb_engine *e;
    lmb_error err;
    cr_assert_eq(lmb_engine_open(&c, model, &e, &err), 0, "%s (%s, %d bits): %s", model, backend, bits, err.msg);
    return e;
}

static double rel_err(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i])) return INFINITY;
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return sqrt(num / den);
}

static void random_ids(int32_t *ids, int n, int vocab, uint64_t seed) {
    lmb_test_rng r;
    lmb_test_rng_seed(&r, seed);
    ids[0] = 1;
    for (int i = 1; i < n; i++) ids[i] = 3 + (int32_t)(lmb_test_rng_u64(&r) % (uint64_t)(vocab - 3));
}

/* Logits of a 300-token prompt (5 blocks) on the CPU fp32 cache, the CPU and GPU caches of `bits`. */
static void compare_logits(const char *model, int bits, const float *fixed) {
    lmb_engine *c32 = open_engine(model, "cpu", 16, NULL, 0, false), *cq = open_engine(model, "cpu", bits, fixed, 0, false);
    lmb_engine *gq = open_engine(model, "cuda", bits, fixed, 0, false);
    int V = lmb_engine_model_config(c32)->vocab, n = 300;
    int32_t ids[300];
    random_ids(ids, n, V < 500 ? V : 500, 17);
    float *a = malloc(sizeof(float) * (size_t)n * V), *b = malloc(sizeof(float) * (size_t)n * V);
    float *g = malloc(sizeof(float) * (size_t)n * V);
    lmb_error err;
    cr_assert_eq(lmb_engine_logits(c32, ids, n, 0, a, &err), 0, "%s", err.msg);
    cr_assert_eq(lmb_engine_logits(cq, ids, n, 0, b, &err), 0, "%s", err.msg);
    cr_assert_eq(lmb_engine_logits(gq, ids, n, 0, g, &err), 0, "%s", err.msg);
    double e_cpu = rel_err(b, a, (size_t)n * V), e_gpu = rel_err(g, a, (size_t)n * V), e_gc = rel_err(g, b, (size_t)n * V);
    cr_log_info("%s %d bits%s: CPU vs fp32 %.3e, GPU vs fp32 %.3e, GPU vs CPU %.3e", model, bits, fixed ? " offline" : "",
                e_cpu, e_gpu, e_gc);
    cr_assert_lt(e_gpu, 1.25 * e_cpu + 1e-2, "%s %d bits: GPU %g vs fp32, CPU %g", model, bits, e_gpu, e_cpu);
    free(a), free(b), free(g);
    /* greedy decoding through the graphs completes, and its first token is the CPU's (same cache type) */
    enum { NG = 8 };
    static int32_t p[NG][120];
    lmb_request reqs[NG];
    for (int i = 0; i < NG; i++) {
        random_ids(p[i], 20 + 12 * i, V < 500 ? V : 500, 100 + (uint64_t)i);
        reqs[i] = (lmb_request){.prompt = p[i], .n_prompt = (size_t)(20 + 12 * i)};
        lmb_sampling_default(&reqs[i].sampling);
        reqs[i].sampling.temperature = 0;
        reqs[i].sampling.max_tokens = 16;
        reqs[i].sampling.ignore_eos = true;
    }
    static lmb_test_result rc[NG], rg[NG];
    cr_assert_eq(lmb_test_run_all(cq, reqs, NG, rc, &err), 0, "%s", err.msg);
    cr_assert_eq(lmb_test_run_all(gq, reqs, NG, rg, &err), 0, "%s", err.msg);
    int same = 0;
    for (int i = 0; i < NG; i++) {
        cr_assert_eq(rg[i].n, 16, "request %d: %d tokens (%s)", i, rg[i].n, rg[i].message);
        same += rg[i].tokens[0] == rc[i].tokens[0];
    }
    cr_assert_geq(same, NG - 2, "%d of %d first tokens as the CPU's", same, NG);
    lmb_engine_close(c32), lmb_engine_close(cq), lmb_engine_close(gq);
}

Test(kv_engine_cuda, int8_matches_cpu) {
    gpu_require();
    compare_logits(dir, 8, NULL);
}

Test(kv_engine_cuda, int4_matches_cpu) {
    gpu_require();
    compare_logits(dir, 4, NULL);
}

Test(kv_engine_cuda, int8_offline_scales_match_cpu) {
    gpu_require();
    lmb_model *m;
    lmb_error err;
    cr_assert_eq(lmb_model_open(dir, &m, &err), 0, "%s", err.msg);
    int32_t ids[512];
    random_ids(ids, 512, 500, 9);
    lmb_kv_calib_options o;
    lmb_kv_calib_options_default(&o);
    o.samples = 2, o.seqlen = 256, o.quiet = true;
    lmb_kv_params p;
    cr_assert_eq(lmb_kv_calibrate_ids(m, ids, 512, &o, &p, &err), 0, "%s", err.msg);
    float *table;
    cr_assert_eq(lmb_kv_params_fixed(&p, &m->cfg, 8, &table, &err), 0, "%s", err.msg);
    compare_logits(dir, 8, table);
    free(table);
    lmb_kv_params_free(&p);
    lmb_model_close(m);
}

Test(kv_engine_cuda, shared_stories260K_int8) { /* head_dim 8: the smallest lane layout */
    gpu_require();
    char model[512];
    LMB_TEST_NEED_SHARED(model, "models/stories260K");
    compare_logits(model, 8, NULL);
}

Test(kv_engine_cuda, int8_batch_invariance_and_preemption) {
    gpu_require();
    enum { NP = 12 };
    static int32_t p[NP][150];
    lmb_request reqs[NP];
    for (int i = 0; i < NP; i++) {
        random_ids(p[i], 10 + 11 * i, 500, 300 + (uint64_t)i);
        reqs[i] = (lmb_request){.prompt = p[i], .n_prompt = (size_t)(10 + 11 * i)};
        lmb_sampling_default(&reqs[i].sampling);
        reqs[i].sampling.temperature = 0.9f;
        reqs[i].sampling.top_k = 50;
        reqs[i].sampling.seed = 5 + (uint64_t)i;
        reqs[i].sampling.max_tokens = 24;
        reqs[i].sampling.ignore_eos = true;
    }
    static lmb_test_result together[NP], alone[1], small[NP];
    lmb_error err;
    lmb_engine *e = open_engine(dir, "cuda", 8, NULL, 0, true);
    cr_assert_eq(lmb_test_run_all(e, reqs, NP, together, &err), 0, "%s", err.msg);
    lmb_engine_close(e);
    for (int i = 0; i < NP; i += 3) {
        e = open_engine(dir, "cuda", 8, NULL, 0, true);
        cr_assert_eq(lmb_test_run_all(e, &reqs[i], 1, alone, &err), 0, "%s", err.msg);
        lmb_engine_close(e);
        cr_assert(memcmp(alone[0].tokens, together[i].tokens, sizeof(int32_t) * 24) == 0, "prompt %d differs batched", i);
    }
    /* int8 block of 64: 3 layers x 2 x 2 heads x 64 x (64 + 4) B = 51 KiB: 0.4 MiB = 8 blocks, a request needs 3 */
    e = open_engine(dir, "cuda", 8, NULL, 0.4, true);
    cr_assert_eq(lmb_test_run_all(e, reqs, NP, small, &err), 0, "%s", err.msg);
    lmb_engine_stats st;
    lmb_engine_get_stats(e, &st);
    lmb_engine_close(e);
    cr_assert_gt(st.preemptions, 0, "the small cache did not force a preemption");
    for (int i = 0; i < NP; i++)
        cr_assert(memcmp(small[i].tokens, together[i].tokens, sizeof(int32_t) * 24) == 0, "prompt %d changed", i);
}
