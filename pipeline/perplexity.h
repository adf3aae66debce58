/* perplexity.h — HF's "perplexity of fixed-length models": windows of ctx tokens every stride tokens,
 * each window scoring only the targets no earlier window scored (the first scores all ctx - 1 of its
 * predictions); ppl = exp(mean NLL).  The yardstick of the quantize stages. */
#ifndef LMB_PERPLEXITY_H
#define LMB_PERPLEXITY_H

#include <stdint.h>

#include "../engine/engine.h"

typedef struct lmb_ppl_result {
    double ppl, nll_sum;
    long scored; /* predictions scored */
    int windows;
} lmb_ppl_result;

typedef void (*lmb_ppl_progress)(int window, int n_windows, void *user);

int lmb_perplexity(lmb_engine *e, const int32_t *ids, long n, int ctx, int stride, lmb_ppl_result *out,
                   lmb_ppl_progress cb, void *user, lmb_error *err);

/* Byte length of the first max_chars UTF-8 characters of text[0..len). */
size_t lmb_utf8_prefix_bytes(const char *text, size_t len, long max_chars);

#endif
