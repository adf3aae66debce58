/* test_sampler.c — Philox known answers, and each sampling rule on hand-made logits. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "../engine/sampler.h"

Test(sampler, philox_known_answers) {
    /* Random123's kat_vectors for philox4x32_10 */
    uint32_t o[4];
    lmb_philox4x32(0, 0, 0, o);
    cr_assert(o[0] == 0x6627e8d5u && o[1] == 0xe169c58du && o[2] == 0xbc57ac4cu && o[3] == 0x9b00dbd8u);
    lmb_philox4x32(~0ULL, ~0ULL, ~0ULL, o);
    cr_assert(o[0] == 0x408f276du && o[1] == 0x41c83b0eu && o[2] == 0xa20bc7c6u && o[3] == 0x6d5451fdu);
}

Test(sampler, uniform_in_unit_interval_and_depends_on_seed_and_counter) {
    float a = lmb_sample_uniform(1, 0), b = lmb_sample_uniform(1, 1), c = lmb_sample_uniform(2, 0);
    cr_assert(a >= 0 && a < 1 && b >= 0 && b < 1);
    cr_assert(a != b && a != c);
    cr_assert_eq(lmb_sample_uniform(1, 0), a);
}

static lmb_sample_row row_with(float temp, int top_k, float top_p, float min_p, uint64_t seed, uint64_t ctr) {
    lmb_sample_row r = {0};
    lmb_sampling_default(&r.params);
    r.params.temperature = temp;
    r.params.top_k = top_k;
    r.params.top_p = top_p;
    r.params.min_p = min_p;
    r.params.seed = seed;
    r.counter = ctr;
    return r;
}

static int32_t sample(lmb_sample_row *r, const float *logits, int n) {
    float l[64], scratch[128];
    for (int i = 0; i < n; i++) l[i] = logits[i];
    return lmb_sample_row_cpu(r, l, n, scratch);
}

Test(sampler, greedy_takes_the_first_maximum) {
    float l[5] = {0.1f, 2.0f, -1.0f, 2.0f, 0.5f};
    lmb_sample_row r = row_with(0, 0, 1, 0, 7, 0);
    cr_assert_eq(sample(&r, l, 5), 1);
}

Test(sampler, top_k_one_is_greedy) {
    float l[4] = {0.0f, 0.0f, 5.0f, 0.0f};
    for (uint64_t c = 0; c < 50; c++) {
        lmb_sample_row r = row_with(1.0f, 1, 1, 0, 3, c);
        cr_assert_eq(sample(&r, l, 4), 2);
    }
}

Test(sampler, top_k_never_picks_outside_the_k_largest) {
    float l[6] = {1.0f, 3.0f, 2.0f, 0.5f, 2.5f, -1.0f};
    for (uint64_t c = 0; c < 500; c++) {
        lmb_sample_row r = row_with(1.0f, 2, 1, 0, 11, c);
        int32_t t = sample(&r, l, 6);
        cr_assert(t == 1 || t == 4, "got %d", t);
    }
}

Test(sampler, top_p_keeps_the_smallest_set_reaching_p) {
    /* probabilities ~ 0.5, 0.3, 0.2 (after softmax of logs) */
    float l[3] = {logf(0.5f), logf(0.3f), logf(0.2f)};
    for (uint64_t c = 0; c < 500; c++) {
        lmb_sample_row r = row_with(1.0f, 0, 0.7f, 0, 5, c);
        int32_t t = sample(&r, l, 3);
        cr_assert(t == 0 || t == 1, "got %d", t);
    }
}

Test(sampler, min_p_removes_unlikely_tokens) {
    float l[3] = {logf(0.6f), logf(0.35f), logf(0.05f)};
    for (uint64_t c = 0; c < 500; c++) {
        lmb_sample_row r = row_with(1.0f, 0, 1, 0.2f, 9, c);
        cr_assert_neq(sample(&r, l, 3), 2);
    }
}

Test(sampler, frequencies_follow_the_distribution) {
    float l[3] = {logf(0.6f), logf(0.3f), logf(0.1f)};
    int count[3] = {0};
    int N = 20000;
    for (int c = 0; c < N; c++) {
        lmb_sample_row r = row_with(1.0f, 0, 1, 0, 1234, (uint64_t)c);
        count[sample(&r, l, 3)]++;
    }
    cr_assert(fabs(count[0] / (double)N - 0.6) < 0.02, "p0 %f", count[0] / (double)N);
    cr_assert(fabs(count[1] / (double)N - 0.3) < 0.02);
    cr_assert(fabs(count[2] / (double)N - 0.1) < 0.02);
}

Test(sampler, repetition_penalty_follows_hf) {
    /* HF: score < 0 ? score * p : score / p, once per distinct token */
    float l[3] = {2.0f, 1.9f, -1.0f};
    int32_t hist[3] = {0, 0, 2};
    lmb_sample_row r = row_with(0, 0, 1, 0, 0, 0);
    r.params.repetition_penalty = 1.5f;
    r.history = hist;
    r.n_history = 3;
    float buf[3] = {l[0], l[1], l[2]}, scratch[6];
    cr_assert_eq(lmb_sample_row_cpu(&r, buf, 3, scratch), 1);
    cr_assert_float_eq(buf[0], 2.0f / 1.5f, 1e-6);
    cr_assert_float_eq(buf[2], -1.5f, 1e-6);
}

Test(sampler, same_seed_same_counter_same_token) {
    float l[8] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f};
    for (uint64_t c = 0; c < 100; c++) {
        lmb_sample_row a = row_with(0.8f, 5, 0.9f, 0.01f, 42, c), b = a;
        cr_assert_eq(sample(&a, l, 8), sample(&b, l, 8));
    }
}
