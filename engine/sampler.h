/* sampler.h — turning one row of logits into a token, the reference the GPU sampler is checked against.
 *
 * Order: repetition penalty (HF: positive logits divided, negative multiplied, over prompt + generated
 * tokens) -> greedy if temperature == 0 -> logits / temperature -> top-k (keep logits >= the k-th largest)
 * -> softmax -> top-p (keep probabilities >= tau, the largest threshold whose kept mass reaches top_p)
 * -> min-p (keep p >= min_p * p_max) -> draw u in [0,1) and walk the kept tokens in id order.
 * The draw comes from Philox-4x32-10 keyed by the request's seed with the token's index as counter, so a
 * request's tokens do not depend on what else shares its batch, nor on preemption and recomputation.
 */
#ifndef LMB_SAMPLER_H
#define LMB_SAMPLER_H

#include <stdint.h>

#include "backend.h"

/* Philox-4x32-10: four 32-bit outputs for (key, counter). */
void lmb_philox4x32(uint64_t key, uint64_t counter_lo, uint64_t counter_hi, uint32_t out[4]);
/* The uniform in [0,1) a request draws for its counter-th token (24-bit resolution, exact in fp32). */
float lmb_sample_uniform(uint64_t seed, uint64_t counter);

/* Samples one token from logits[vocab] (modified in place) — scratch must hold 2*vocab floats. */
int32_t lmb_sample_row_cpu(const lmb_sample_row *row, float *logits, int vocab, float *scratch);

/* Index of the largest value (the lowest index among equals). */
int32_t lmb_argmax(const float *x, int n);

#endif
