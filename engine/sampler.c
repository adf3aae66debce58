/* sampler.c — CPU sampling (see sampler.h for the order of operations and the RNG contract). */
#include "sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void lmb_sampling_default(lmb_sampling *s) {
    memset(s, 0, sizeof *s);
    s->temperature = 1.0f;
    s->top_p = 1.0f;
    s->repetition_penalty = 1.0f;
    s->max_tokens = 256;
}

void lmb_philox4x32(uint64_t key, uint64_t counter_lo, uint64_t counter_hi, uint32_t out[4]) {
    uint32_t c0 = (uint32_t)counter_lo, c1 = (uint32_t)(counter_lo >> 32);
    uint32_t c2 = (uint32_t)counter_hi, c3 = (uint32_t)(counter_hi >> 32);
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0;
        uint64_t p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        uint32_t n3 = (uint32_t)p0;
        c0 = n0;
        c1 = n1;
        c2 = n2;
        c3 = n3;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

float lmb_sample_uniform(uint64_t seed, uint64_t counter) {
    uint32_t r[4];
    lmb_philox4x32(seed, counter, 0, r);
    return (float)(r[0] >> 8) * (1.0f / 16777216.0f);
}

int32_t lmb_argmax(const float *x, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static int cmp_desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* The k-th largest of v[0..n) (1-based k <= n); sorts a copy in scratch. */
static float kth_largest(const float *v, int n, int k, float *scratch) {
    memcpy(scratch, v, sizeof(float) * (size_t)n);
    qsort(scratch, (size_t)n, sizeof(float), cmp_desc);
    return scratch[k - 1];
}

int32_t lmb_sample_row_cpu(const lmb_sample_row *row, float *logits, int vocab, float *scratch) {
    const lmb_sampling *p = &row->params;
    if (p->repetition_penalty != 1.0f && row->history) {
        /* Each distinct token is penalised once: mark visited tokens in scratch. */
        float *seen = scratch;
        memset(seen, 0, sizeof(float) * (size_t)vocab);
        for (int i = 0; i < row->n_history; i++) {
            int32_t t = row->history[i];
            if (t < 0 || t >= vocab || seen[t] != 0.0f) continue;
            seen[t] = 1.0f;
            float l = logits[t];
            logits[t] = l > 0 ? l / p->repetition_penalty : l * p->repetition_penalty;
        }
    }
    if (p->temperature <= 0.0f || p->top_k == 1) return lmb_argmax(logits, vocab);

    float *prob = logits; /* reused in place from here on; NAN marks a removed token */
    float inv_t = 1.0f / p->temperature;
    for (int i = 0; i < vocab; i++) prob[i] *= inv_t;
    if (p->top_k > 0 && p->top_k < vocab) {
        float thr = kth_largest(prob, vocab, p->top_k, scratch);
        for (int i = 0; i < vocab; i++)
            if (prob[i] < thr) prob[i] = -INFINITY;
    }
    float mx = -INFINITY;
    for (int i = 0; i < vocab; i++)
        if (prob[i] > mx) mx = prob[i];
    double sum = 0;
    for (int i = 0; i < vocab; i++) {
        prob[i] = prob[i] == -INFINITY ? 0.0f : expf(prob[i] - mx);
        sum += prob[i];
    }
    float inv_sum = (float)(1.0 / sum);
    float pmax = 0;
    for (int i = 0; i < vocab; i++) {
        prob[i] *= inv_sum;
        if (prob[i] > pmax) pmax = prob[i];
    }
    float keep_min = 0.0f; /* tokens with prob < keep_min are removed */
    if (p->top_p > 0.0f && p->top_p < 1.0f) {
        memcpy(scratch, prob, sizeof(float) * (size_t)vocab);
        qsort(scratch, (size_t)vocab, sizeof(float), cmp_desc);
        double cum = 0;
        float tau = scratch[0];
        for (int i = 0; i < vocab; i++) {
            tau = scratch[i];
            cum += scratch[i];
            if (cum >= p->top_p) break;
        }
        keep_min = tau;
    }
    if (p->min_p > 0.0f && p->min_p * pmax > keep_min) keep_min = p->min_p * pmax;
    double kept = 0;
    for (int i = 0; i < vocab; i++)
        if (prob[i] >= keep_min && prob[i] > 0.0f) kept += prob[i];
    double target = (double)lmb_sample_uniform(p->seed, row->counter) * kept;
    double cum = 0;
    int32_t last = -1;
    for (int i = 0; i < vocab; i++) {
        if (!(prob[i] >= keep_min && prob[i] > 0.0f)) continue;
        cum += prob[i];
        last = i;
        if (cum > target) return i;
    }
    return last >= 0 ? last : lmb_argmax(prob, vocab);
}
