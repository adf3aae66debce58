/* test_engine_cpu.c — the CPU reference engine: HF parity on every model in ../shared (logits within
 * 1e-4 relative at every position, the 24 greedy tokens identical), batch invariance (greedy and seeded),
 * preemption under a tiny cache, and per-request rejection, on fixture models made here. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/engine.h"
#include "../engine/safetensors.h"
#include "support/engine_util.h"
#include "support/fixtures.h"

static lmb_engine_config quiet_cfg(void) {
    lmb_engine_config c;
    lmb_engine_config_default(&c);
    c.quiet = true;
    c.kv_cache_mb = 64;
    return c;
}

static void parity(const char *name) {
    char dir[512], ref[512], greedy[512], rel[256];
    snprintf(rel, sizeof rel, "models/%s", name);
    LMB_TEST_NEED_SHARED(dir, rel);
    snprintf(rel, sizeof rel, "reference/%s.logits.safetensors", name);
    LMB_TEST_NEED_SHARED(ref, rel);
    snprintf(rel, sizeof rel, "reference/%s.greedy.json", name);
    LMB_TEST_NEED_SHARED(greedy, rel);
    lmb_error err;
    lmb_engine *e;
    lmb_engine_config cfg = quiet_cfg();
    cr_assert_eq(lmb_engine_open(&cfg, dir, &e, &err), 0, "%s", err.msg);
    int V = lmb_engine_model_config(e)->vocab;
    lmb_safetensors *st;
    cr_assert_eq(lmb_st_open_file(ref, &st, &err), 0, "%s", err.msg);
    int checked = 0;
    for (int j = 0;; j++) {
        char k_ids[64], k_logits[64];
        snprintf(k_ids, sizeof k_ids, "prompt%d.ids", j);
        snprintf(k_logits, sizeof k_logits, "prompt%d.logits", j);
        const lmb_tensor *ids = lmb_st_find(st, k_ids), *lg = lmb_st_find(st, k_logits);
        if (!ids || !lg) break;
        int n = (int)lmb_tensor_numel(ids);
        int32_t *tok = malloc(sizeof(int32_t) * (size_t)n);
        memcpy(tok, ids->data, sizeof(int32_t) * (size_t)n);
        float *want = malloc(lg->nbytes), *got = malloc(sizeof(float) * (size_t)n * V);
        memcpy(want, lg->data, lg->nbytes);
        cr_assert_eq(lmb_engine_logits(e, tok, n, 0, got, &err), 0, "%s", err.msg);
        double num = 0, den = 0;
        for (size_t i = 0; i < (size_t)n * V; i++) {
            num += ((double)got[i] - want[i]) * ((double)got[i] - want[i]);
            den += (double)want[i] * want[i];
        }
        double r = sqrt(num / den);
        cr_assert_lt(r, 1e-4, "%s prompt %d: logits relative error %g", name, j, r);
        free(tok), free(want), free(got);
        checked++;
    }
    cr_assert_gt(checked, 0, "no prompts in %s", ref);
    lmb_st_close(st);

    lmb_test_greedy *g;
    int ng;
    cr_assert_eq(lmb_test_load_greedy(greedy, &g, &ng, &err), 0, "%s", err.msg);
    lmb_request *reqs = calloc((size_t)ng, sizeof *reqs);
    for (int i = 0; i < ng; i++) {
        reqs[i].prompt = g[i].prompt;
        reqs[i].n_prompt = (size_t)g[i].n_prompt;
        lmb_sampling_default(&reqs[i].sampling);
        reqs[i].sampling.temperature = 0;
        reqs[i].sampling.max_tokens = g[i].n_greedy;
        reqs[i].sampling.ignore_eos = true; /* the reference used min_new_tokens */
    }
    lmb_test_result *res = calloc((size_t)ng, sizeof *res);
    cr_assert_eq(lmb_test_run_all(e, reqs, ng, res, &err), 0, "%s", err.msg);
    for (int i = 0; i < ng; i++) {
        cr_assert_eq(res[i].n, g[i].n_greedy, "%s greedy %d: %d tokens", name, i, res[i].n);
        for (int t = 0; t < g[i].n_greedy; t++)
            cr_assert_eq(res[i].tokens[t], g[i].greedy[t], "%s greedy %d token %d: %d != %d", name, i, t,
                         res[i].tokens[t], g[i].greedy[t]);
    }
    free(res), free(reqs);
    lmb_test_free_greedy(g, ng);
    lmb_engine_close(e);
}

Test(engine_cpu, parity_stories260K, .timeout = 120) { parity("stories260K"); }
Test(engine_cpu, parity_pycoder_22M, .timeout = 300) { parity("pycoder-22M"); }
Test(engine_cpu, parity_tiny_llama_gqa, .timeout = 120) { parity("tiny-llama-gqa"); }
Test(engine_cpu, parity_tiny_qwen2, .timeout = 120) { parity("tiny-qwen2"); }
Test(engine_cpu, parity_tiny_mistral, .timeout = 120) { parity("tiny-mistral"); }
Test(engine_cpu, parity_tiny_internlm2, .timeout = 120) { parity("tiny-internlm2"); }

/* ---- fixture-model tests (no ../shared needed) -------------------------------------------------------- */

static char fixture_dir[64];

static void make_fixture(void) {
    lmb_error err;
    lmb_test_model_spec spec;
    lmb_test_model_spec_default(&spec, LMB_ARCH_LLAMA);
    spec.vocab = 300;
    spec.max_pos = 512;
    cr_assert_eq(lmb_test_tmpdir(fixture_dir, sizeof fixture_dir, &err), 0, "%s", err.msg);
    cr_assert_eq(lmb_test_make_model(fixture_dir, &spec, &err), 0, "%s", err.msg);
}

static void drop_fixture(void) { lmb_test_rmtree(fixture_dir, NULL); }

#define N_PROMPTS 16

static int32_t prompts[N_PROMPTS][80];
static int prompt_len[N_PROMPTS];

static void make_prompts(void) {
    lmb_test_rng r;
    lmb_test_rng_seed(&r, 99);
    for (int i = 0; i < N_PROMPTS; i++) {
        prompt_len[i] = 3 + (int)(lmb_test_rng_u64(&r) % 70);
        prompts[i][0] = 1;
        for (int t = 1; t < prompt_len[i]; t++) prompts[i][t] = 3 + (int32_t)(lmb_test_rng_u64(&r) % 290);
    }
}

static void requests(lmb_request *reqs, bool sampled, int max_tokens) {
    for (int i = 0; i < N_PROMPTS; i++) {
        reqs[i].prompt = prompts[i];
        reqs[i].n_prompt = (size_t)prompt_len[i];
        lmb_test_sampling(&reqs[i].sampling, sampled, max_tokens, i);
    }
}

static void run_cfg(const lmb_engine_config *cfg, const lmb_request *reqs, int n, lmb_test_result *out, long *preempt) {
    lmb_error err;
    lmb_engine *e;
    cr_assert_eq(lmb_engine_open(cfg, fixture_dir, &e, &err), 0, "%s", err.msg);
    cr_assert_eq(lmb_test_run_all(e, reqs, n, out, &err), 0, "%s", err.msg);
    lmb_engine_stats st;
    lmb_engine_get_stats(e, &st);
    if (preempt) *preempt = st.preemptions;
    lmb_engine_close(e);
}

static void check_batch_invariance(bool sampled) {
    make_prompts();
    lmb_request reqs[N_PROMPTS];
    requests(reqs, sampled, 20);
    lmb_engine_config cfg = quiet_cfg();
    cfg.max_batch_tokens = 96; /* forces chunked prefill mixed with decodes */
    static lmb_test_result together[N_PROMPTS], alone[1];
    run_cfg(&cfg, reqs, N_PROMPTS, together, NULL);
    for (int i = 0; i < N_PROMPTS; i++) {
        run_cfg(&cfg, &reqs[i], 1, alone, NULL);
        cr_assert_eq(alone[0].n, 20);
        cr_assert_eq(together[i].n, 20);
        cr_assert(memcmp(alone[0].tokens, together[i].tokens, sizeof(int32_t) * 20) == 0,
                  "prompt %d: tokens differ when batched (%s)", i, sampled ? "seeded sampling" : "greedy");
    }
}

Test(engine_cpu, batch_invariance_greedy, .init = make_fixture, .fini = drop_fixture, .timeout = 120) {
    check_batch_invariance(false);
}

Test(engine_cpu, batch_invariance_seeded, .init = make_fixture, .fini = drop_fixture, .timeout = 120) {
    check_batch_invariance(true);
}

Test(engine_cpu, preemption_keeps_the_tokens, .init = make_fixture, .fini = drop_fixture, .timeout = 120) {
    make_prompts();
    lmb_request reqs[N_PROMPTS];
    requests(reqs, true, 40);
    lmb_engine_config big = quiet_cfg(), small = quiet_cfg();
    small.block_size = 8;
    /* KV per token: 2 layers x 2 (K,V) x 2 kv heads x 16 dims x 4 bytes = 512 B; 40 blocks of 8 = 320 tokens,
     * far less than 16 sequences of up to 112 tokens */
    small.kv_cache_mb = 40.0 * 8 * 512 / (1024.0 * 1024.0);
    static lmb_test_result a[N_PROMPTS], b[N_PROMPTS];
    long pre_big = 0, pre_small = 0;
    run_cfg(&big, reqs, N_PROMPTS, a, &pre_big);
    run_cfg(&small, reqs, N_PROMPTS, b, &pre_small);
    cr_assert_eq(pre_big, 0);
    cr_assert_gt(pre_small, 0, "the small cache never preempted");
    for (int i = 0; i < N_PROMPTS; i++) {
        cr_assert_eq(b[i].finish, LMB_FINISH_LENGTH);
        cr_assert(a[i].n == b[i].n && memcmp(a[i].tokens, b[i].tokens, sizeof(int32_t) * (size_t)a[i].n) == 0,
                  "prompt %d changed under preemption", i);
    }
}

Test(engine_cpu, too_long_prompt_fails_alone, .init = make_fixture, .fini = drop_fixture) {
    static int32_t longp[600];
    for (int i = 0; i < 600; i++) longp[i] = 5;
    int32_t ok[3] = {1, 5, 6}, bad_tok[2] = {1, 300};
    lmb_request reqs[3] = {{.prompt = longp, .n_prompt = 600}, {.prompt = ok, .n_prompt = 3}, {.prompt = bad_tok, .n_prompt = 2}};
    for (int i = 0; i < 3; i++) {
        lmb_sampling_default(&reqs[i].sampling);
        reqs[i].sampling.max_tokens = 4;
    }
    lmb_engine_config cfg = quiet_cfg();
    lmb_test_result res[3];
    run_cfg(&cfg, reqs, 3, res, NULL);
    cr_assert_eq(res[0].finish, LMB_FINISH_ERROR);
    cr_assert(strstr(res[0].message, "600 tokens"), "message: %s", res[0].message);
    cr_assert_eq(res[1].finish, LMB_FINISH_LENGTH);
    cr_assert_eq(res[1].n, 4);
    cr_assert_eq(res[2].finish, LMB_FINISH_ERROR);
    cr_assert(strstr(res[2].message, "vocabulary"), "message: %s", res[2].message);
}

Test(engine_cpu, stop_ids_and_abort, .init = make_fixture, .fini = drop_fixture) {
    make_prompts();
    lmb_request r[N_PROMPTS]; /* requests() fills all N_PROMPTS; only r[0] is run */
    requests(r, false, 10);
    lmb_engine_config cfg = quiet_cfg();
    lmb_test_result full[1], stopped[1];
    run_cfg(&cfg, r, 1, full, NULL);
    r[0].sampling.stop_ids[0] = full[0].tokens[3];
    r[0].sampling.n_stop_ids = 1;
    run_cfg(&cfg, r, 1, stopped, NULL);
    int first = 0;
    while (full[0].tokens[first] != full[0].tokens[3]) first++;
    cr_assert_eq(stopped[0].finish, LMB_FINISH_STOP);
    cr_assert_eq(stopped[0].n, first + 1);

    lmb_error err;
    lmb_engine *e;
    cr_assert_eq(lmb_engine_open(&cfg, fixture_dir, &e, &err), 0, "%s", err.msg);
    lmb_request q = r[0];
    q.id = 7;
    q.sampling.n_stop_ids = 0;
    cr_assert_eq(lmb_engine_submit(e, &q, &err), 0);
    cr_assert_neq(lmb_engine_submit(e, &q, &err), 0, "a duplicate live id must be refused");
    const lmb_event *ev;
    int ne;
    cr_assert_eq(lmb_engine_step(e, &ev, &ne, &err), 0);
    lmb_engine_abort(e, 7);
    cr_assert_eq(lmb_engine_step(e, &ev, &ne, &err), 0);
    cr_assert(ne == 1 && ev[0].finish == LMB_FINISH_ABORT);
    cr_assert_eq(lmb_engine_pending(e), 0);
    lmb_engine_close(e);
}
