/* test_engine_cuda.c — the CUDA backend against the CPU reference engine: logits at every position within
 * 1e-2 relative and the first 16 greedy tokens identical, on fixture models of the four architectures
 * (f16, bf16, f32 on disk) and on the models in ../shared (or $LMB_TEST_SHARED); then batch invariance
 * (greedy and seeded, with --batch-invariant: the fast small-batch paths, GEMV and short attention splits,
 * sum in another order than the batched ones) and preemption under a small cache, as in the CPU suite.
 * Skips without a GPU.
 *
 * Greedy may meet near-ties that 16-bit arithmetic legitimately flips (stories260K's first reference prompt
 * has two tokens 7e-4 apart at step 14, logits near 10.7): a divergence is accepted only when the CPU logits
 * of the two tokens are within tol/10 of the logit range, at most once per model, and the comparison of that
 * request stops there. */
#include <criterion/criterion.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../engine/engine.h"
#include "../support/engine_util.h"
#include "../support/fixtures.h"
#include "gpu_util.h"

static lmb_engine_config cfg_for(const char *backend) {
    lmb_engine_config c;
    lmb_engine_config_default(&c);
    c.backend = backend;
    c.quiet = true;
    c.kv_cache_mb = 64;
    return c;
}

static lmb_engine *open_engine(const char *backend, const char *dir, int max_batch_tokens, double kv_mb,
                               bool invariant) {
    lmb_engine_config c = cfg_for(backend);
    c.batch_invariant = invariant;
    if (max_batch_tokens) c.max_batch_tokens = max_batch_tokens;
    if (kv_mb > 0) c.kv_cache_mb = kv_mb;
    lmb_engine *e;
    lmb_error err;
    cr_assert_eq(lmb_engine_open(&c, dir, &e, &err), 0, "%s (%s): %s", dir, backend, err.msg);
    return e;
}

#define N_PROMPTS 16
#define MAX_PROMPT 200

typedef struct prompt_set {
    int32_t ids[N_PROMPTS][MAX_PROMPT];
    int len[N_PROMPTS];
} prompt_set;

static void make_prompts(prompt_set *p, int vocab, uint64_t seed, int max_len) {
    lmb_test_rng r;
    lmb_test_rng_seed(&r, seed);
    for (int i = 0; i < N_PROMPTS; i++) {
        p->len[i] = 2 + (int)(lmb_test_rng_u64(&r) % (uint64_t)(max_len - 1));
        p->ids[i][0] = 1;
        for (int t = 1; t < p->len[i]; t++) p->ids[i][t] = 3 + (int32_t)(lmb_test_rng_u64(&r) % (uint64_t)(vocab - 3));
    }
}

static void make_requests(lmb_request *reqs, const prompt_set *p, int n, bool sampled, int max_tokens) {
    for (int i = 0; i < n; i++) {
        reqs[i].prompt = p->ids[i];
        reqs[i].n_prompt = (size_t)p->len[i];
        lmb_test_sampling(&reqs[i].sampling, sampled, max_tokens, i);
    }
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

/* GPU vs CPU on one model folder: logits of 3 random prompts (one spanning several KV blocks) within tol,
 * and 16 greedy steps of 8 prompts run together (random prompts, or for the real models the text prompts of
 * ../shared/reference/NAME.greedy.json) with the near-tie allowance. */
static void compare_backends(const char *dir, double tol, const char *greedy_ref) {
    lmb_engine *cpu = open_engine("cpu", dir, 0, 0, false), *gpu = open_engine("cuda", dir, 0, 0, false);
    const lmb_model_config *mc = lmb_engine_model_config(cpu);
    int V = mc->vocab;
    static prompt_set p;
    make_prompts(&p, V < 300 ? V : 300, 7, MAX_PROMPT);
    p.len[0] = MAX_PROMPT; /* > 3 blocks of 64 */
    lmb_error err;
    for (int j = 0; j < 3; j++) {
        int n = p.len[j];
        float *a = malloc(sizeof(float) * (size_t)n * V), *b = malloc(sizeof(float) * (size_t)n * V);
        for (size_t i = 0; i < (size_t)n * V; i++) b[i] = NAN; /* poison: every element must be written */
        cr_assert_eq(lmb_engine_logits(cpu, p.ids[j], n, 0, a, &err), 0, "%s", err.msg);
        cr_assert_eq(lmb_engine_logits(gpu, p.ids[j], n, 0, b, &err), 0, "%s", err.msg);
        double r = rel_err(b, a, (size_t)n * V);
        cr_assert_lt(r, tol, "%s prompt %d (%d tokens): GPU logits relative error %g (bound %g)", dir, j, n, r, tol);
        cr_log_info("%s prompt %d: logits relative error %.2e", dir, j, r);
        free(a), free(b);
    }

    enum { NG = 8, STEPS = 16 };
    lmb_request reqs[NG];
    make_requests(reqs, &p, NG, false, STEPS);
    lmb_test_greedy *g = NULL;
    int ng = 0;
    if (greedy_ref) {
        cr_assert_eq(lmb_test_load_greedy(greedy_ref, &g, &ng, &err), 0, "%s", err.msg);
        for (int i = 0; i < NG; i++) {
            reqs[i].prompt = g[i % ng].prompt;
            reqs[i].n_prompt = (size_t)g[i % ng].n_prompt;
        }
    }
    static lmb_test_result rc[NG], rg[NG];
    cr_assert_eq(lmb_test_run_all(cpu, reqs, NG, rc, &err), 0, "%s", err.msg);
    cr_assert_eq(lmb_test_run_all(gpu, reqs, NG, rg, &err), 0, "%s", err.msg);
    int ties = 0;
    for (int i = 0; i < NG; i++) {
        cr_assert_eq(rg[i].n, STEPS, "%s greedy %d: %d tokens (%s)", dir, i, rg[i].n, rg[i].message);
        for (int t = 0; t < STEPS; t++) {
            if (rg[i].tokens[t] == rc[i].tokens[t]) continue;
            /* near-tie check: CPU logits at this position for both tokens */
            int n = (int)reqs[i].n_prompt + t;
            int32_t *ctx = malloc(sizeof(int32_t) * (size_t)n);
            memcpy(ctx, reqs[i].prompt, sizeof(int32_t) * reqs[i].n_prompt);
            memcpy(ctx + reqs[i].n_prompt, rc[i].tokens, sizeof(int32_t) * (size_t)t);
            float *lg = malloc(sizeof(float) * (size_t)V);
            cr_assert_eq(lmb_engine_logits(cpu, ctx, n, n - 1, lg, &err), 0, "%s", err.msg);
            float lo = lg[0], hi = lg[0];
            for (int v = 1; v < V; v++) lo = fminf(lo, lg[v]), hi = fmaxf(hi, lg[v]);
            float gap = fabsf(lg[rc[i].tokens[t]] - lg[rg[i].tokens[t]]);
            cr_assert_lt(gap, (float)tol / 10 * (hi - lo), "%s greedy %d step %d: GPU %d, CPU %d (logit gap %g of range %g)", dir,
                         i, t, rg[i].tokens[t], rc[i].tokens[t], gap, hi - lo);
            free(ctx), free(lg);
            ties++;
            break;
        }
    }
    /* each divergence was checked to be a near-tie above; bf16 random models meet them often */
    cr_assert_leq(ties, tol > 1e-2 ? NG : 2, "%s: %d near-tie divergences in %d requests", dir, ties, NG);
    if (g) lmb_test_free_greedy(g, ng);
    lmb_engine_close(cpu);
    lmb_engine_close(gpu);
}

static void fixture(lmb_arch arch, lmb_dtype dt, bool attn_bias, bool tied) {
    gpu_require();
    char dir[64];
    lmb_error err;
    lmb_test_model_spec s;
    lmb_test_model_spec_default(&s, arch);
    s.hidden = 256, s.heads = 4, s.kv_heads = 2, s.ffn = 512, s.vocab = 512, s.layers = 3; /* head_dim 64 */
    s.dtype = dt;
    s.max_pos = 1024;
    s.attn_bias = attn_bias;
    s.tied = tied;
    cr_assert_eq(lmb_test_tmpdir(dir, sizeof dir, &err), 0, "%s", err.msg);
    cr_assert_eq(lmb_test_make_model(dir, &s, &err), 0, "%s", err.msg);
    compare_backends(dir, dt == LMB_BF16 ? 2e-2 : 1e-2, NULL); /* bf16 keeps 8 mantissa bits to fp16's 11 */
    lmb_test_rmtree(dir, NULL);
}

Test(engine_cuda, llama_f16) { fixture(LMB_ARCH_LLAMA, LMB_F16, false, false); }
Test(engine_cuda, llama_bias_tied_f32) { fixture(LMB_ARCH_LLAMA, LMB_F32, true, true); }
Test(engine_cuda, qwen2_bf16) { fixture(LMB_ARCH_QWEN2, LMB_BF16, false, false); }
Test(engine_cuda, internlm2_f16) { fixture(LMB_ARCH_INTERNLM2, LMB_F16, true, false); }
Test(engine_cuda, mistral_f16) { fixture(LMB_ARCH_MISTRAL, LMB_F16, false, false); }

static void shared_model(const char *name) {
    gpu_require();
    char dir[512], ref[512], rel[256];
    snprintf(rel, sizeof rel, "models/%s", name);
    LMB_TEST_NEED_SHARED(dir, rel);
    snprintf(rel, sizeof rel, "reference/%s.greedy.json", name);
    LMB_TEST_NEED_SHARED(ref, rel);
    compare_backends(dir, 1e-2, ref);
}

Test(engine_cuda, shared_stories260K) { shared_model("stories260K"); }
Test(engine_cuda, shared_pycoder_22M) { shared_model("pycoder-22M"); }
Test(engine_cuda, shared_tiny_llama_gqa) { shared_model("tiny-llama-gqa"); }
Test(engine_cuda, shared_tiny_qwen2) { shared_model("tiny-qwen2"); }
Test(engine_cuda, shared_tiny_mistral) { shared_model("tiny-mistral"); }
Test(engine_cuda, shared_tiny_internlm2) { shared_model("tiny-internlm2"); }

/* ---- batch invariance and preemption on the GPU -------------------------------------------------------- */

static char inv_dir[64];

static void make_inv_model(void) {
    if (!gpu_present()) return;
    lmb_error err;
    lmb_test_model_spec s;
    lmb_test_model_spec_default(&s, LMB_ARCH_LLAMA);
    s.hidden = 256, s.heads = 4, s.kv_heads = 2, s.ffn = 512, s.vocab = 512, s.layers = 2;
    s.dtype = LMB_F16;
    s.max_pos = 1024;
    cr_assert_eq(lmb_test_tmpdir(inv_dir, sizeof inv_dir, &err), 0, "%s", err.msg);
    cr_assert_eq(lmb_test_make_model(inv_dir, &s, &err), 0, "%s", err.msg);
}

static void drop_inv_model(void) {
    if (inv_dir[0]) lmb_test_rmtree(inv_dir, NULL);
}

static void run_set(int max_batch_tokens, double kv_mb, const lmb_request *reqs, int n, lmb_test_result *out,
                    long *preemptions) {
    lmb_engine *e = open_engine("cuda", inv_dir, max_batch_tokens, kv_mb, true);
    lmb_error err;
    cr_assert_eq(lmb_test_run_all(e, reqs, n, out, &err), 0, "%s", err.msg);
    lmb_engine_stats st;
    lmb_engine_get_stats(e, &st);
    if (preemptions) *preemptions = st.preemptions;
    lmb_engine_close(e);
}

static void invariance(bool sampled) {
    gpu_require();
    static prompt_set p;
    make_prompts(&p, 512, 99, 150);
    lmb_request reqs[N_PROMPTS];
    make_requests(reqs, &p, N_PROMPTS, sampled, 24);
    static lmb_test_result together[N_PROMPTS], alone[1];
    run_set(96, 0, reqs, N_PROMPTS, together, NULL); /* chunked prefill mixed with decodes */
    for (int i = 0; i < N_PROMPTS; i++) {
        run_set(96, 0, &reqs[i], 1, alone, NULL);
        cr_assert_eq(together[i].n, 24);
        cr_assert(memcmp(alone[0].tokens, together[i].tokens, sizeof(int32_t) * 24) == 0,
                  "prompt %d: tokens differ when batched (%s)", i, sampled ? "seeded" : "greedy");
    }
}

Test(engine_cuda, batch_invariance_greedy, .init = make_inv_model, .fini = drop_inv_model) { invariance(false); }
Test(engine_cuda, batch_invariance_seeded, .init = make_inv_model, .fini = drop_inv_model) { invariance(true); }

Test(engine_cuda, preemption_keeps_the_tokens, .init = make_inv_model, .fini = drop_inv_model) {
    gpu_require();
    static prompt_set p;
    make_prompts(&p, 512, 5, 150);
    lmb_request reqs[N_PROMPTS];
    make_requests(reqs, &p, N_PROMPTS, false, 40);
    static lmb_test_result big[N_PROMPTS], small[N_PROMPTS];
    long pre_big, pre_small;
    run_set(0, 0, reqs, N_PROMPTS, big, &pre_big);
    /* 2 layers x 2 kv heads x 64 dims x 2 (k,v) x 2 bytes = 1 KiB per token: 0.5 MiB = 8 blocks of 64 */
    run_set(0, 0.5, reqs, N_PROMPTS, small, &pre_small);
    cr_assert_eq(pre_big, 0);
    cr_assert_gt(pre_small, 0, "the small cache did not force a preemption");
    for (int i = 0; i < N_PROMPTS; i++)
        cr_assert(memcmp(big[i].tokens, small[i].tokens, sizeof(int32_t) * 40) == 0 && small[i].n == 40,
                  "prompt %d: tokens differ after preemption", i);
}
