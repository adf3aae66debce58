/* test_sampling_cuda.c — the GPU sampler against the CPU reference (engine/sampler.c) on random logits:
 * same rules, same Philox draws, so the same token for (nearly) every row; float summation order differs,
 * so a draw that lands within rounding of a boundary may differ (allowed for < 1% of rows). */
#include <string.h>

#include "../../engine/sampler.h"
#include "gpu_util.h"

static void compare(const lmb_sampling *base, int n, int vocab, int max_mismatch) {
    float *logits = malloc(sizeof(float) * (size_t)n * vocab);
    for (size_t i = 0; i < (size_t)n * vocab; i++) logits[i] = gpu_frand() * 6.f;
    int32_t *hist = malloc(sizeof(int32_t) * (size_t)n * 40);
    for (int i = 0; i < n * 40; i++) hist[i] = (int32_t)((gpu_frand() + 1.f) * 0.5f * vocab) % vocab;
    lmb_cuda_sample_params *p = calloc((size_t)n, sizeof *p);
    for (int r = 0; r < n; r++) {
        p[r] = (lmb_cuda_sample_params){base->temperature, base->top_p, base->min_p, base->repetition_penalty,
                                        base->top_k, base->repetition_penalty != 1.f ? 40 : 0, (long long)r * 40,
                                        base->seed + (unsigned long long)r, (unsigned long long)(r % 7)};
    }
    float *d_logits = gpu_upload(logits, sizeof(float) * (size_t)n * vocab);
    lmb_cuda_sample_params *d_p = gpu_upload(p, sizeof *p * (size_t)n);
    int32_t *d_hist = gpu_upload(hist, sizeof(int32_t) * (size_t)n * 40), *d_out;
    GPU_OK(cudaMalloc((void **)&d_out, sizeof(int32_t) * n));
    GPU_OK(lmb_cuda_sample(d_out, d_logits, d_p, d_hist, n, vocab, 0));
    int32_t *out = malloc(sizeof(int32_t) * n);
    GPU_OK(cudaMemcpy(out, d_out, sizeof(int32_t) * n, cudaMemcpyDeviceToHost));
    float *scratch = malloc(sizeof(float) * 2 * (size_t)vocab);
    int mismatch = 0;
    for (int r = 0; r < n; r++) {
        lmb_sample_row row = {.params = *base, .counter = (uint64_t)(r % 7)};
        row.params.seed = base->seed + (uint64_t)r;
        if (base->repetition_penalty != 1.f) row.history = hist + r * 40, row.n_history = 40;
        int32_t want = lmb_sample_row_cpu(&row, logits + (size_t)r * vocab, vocab, scratch);
        mismatch += want != out[r];
    }
    cr_assert_leq(mismatch, max_mismatch, "%d of %d rows differ (temp %g top_k %d top_p %g min_p %g pen %g)", mismatch, n,
                  base->temperature, base->top_k, base->top_p, base->min_p, base->repetition_penalty);
    free(logits), free(hist), free(p), free(out), free(scratch);
    cudaFree(d_logits), cudaFree(d_p), cudaFree(d_hist), cudaFree(d_out);
}

Test(sampling_cuda, greedy_is_exact) {
    gpu_require();
    lmb_sampling s;
    lmb_sampling_default(&s);
    s.temperature = 0;
    compare(&s, 64, 32000, 0);
    s.repetition_penalty = 1.3f;
    compare(&s, 64, 32000, 0);
}

Test(sampling_cuda, seeded_sampling_matches_cpu) {
    gpu_require();
    lmb_sampling s;
    lmb_sampling_default(&s);
    s.seed = 1234;
    struct { float t; int k; float p, mp, pen; } cfgs[] = {
        {1.0f, 0, 1.0f, 0.0f, 1.0f}, {0.7f, 40, 1.0f, 0.0f, 1.0f}, {1.0f, 0, 0.9f, 0.0f, 1.0f},
        {0.8f, 50, 0.95f, 0.05f, 1.1f}, {1.3f, 0, 1.0f, 0.1f, 1.0f},
    };
    for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++) {
        s.temperature = cfgs[i].t, s.top_k = cfgs[i].k, s.top_p = cfgs[i].p, s.min_p = cfgs[i].mp;
        s.repetition_penalty = cfgs[i].pen;
        compare(&s, 200, 32000, 2);
    }
}
