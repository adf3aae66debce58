/* perplexity.c — see perplexity.h.  NLLs are accumulated in double from each row's log-sum-exp; the rows of a
 * window are computed in parallel (OpenMP) and summed in order, so the result does not depend on threads. */
#include "perplexity.h"

#include <math.h>
#include <stdlib.h>

size_t lmb_utf8_prefix_bytes(const char *text, size_t len, long max_chars) {
    if (max_chars < 0) return len;
    size_t i = 0;
    for (long c = 0; i < len && c < max_chars; c++) {
        i++;
        while (i < len && ((unsigned char)text[i] & 0xC0) == 0x80) i++;
    }
    return i;
}

static double row_nll(const float *logits, int vocab, int32_t target) {
    float mx = logits[0];
    for (int i = 1; i < vocab; i++)
        if (logits[i] > mx) mx = logits[i];
    double s = 0;
    for (int i = 0; i < vocab; i++) s += exp((double)logits[i] - mx);
    return log(s) + mx - logits[target];
}

int lmb_perplexity(lmb_engine *e, const int32_t *ids, long n, int ctx, int stride, lmb_ppl_result *out,
                   lmb_ppl_progress cb, void *user, lmb_error *err) {
    *out = (lmb_ppl_result){0};
    if (n < 2) return lmb_fail(err, "the text has %ld tokens; perplexity needs at least 2", n);
    if (ctx < 2 || stride < 1 || stride > ctx) return lmb_fail(err, "need ctx >= 2 and 1 <= stride <= ctx");
    int vocab = lmb_engine_model_config(e)->vocab;
    int n_windows = 0;
    for (long b = 0;; b += stride) {
        n_windows++;
        if (b + ctx >= n) break;
    }
    float *logits = malloc(sizeof(float) * (size_t)ctx * (size_t)vocab);
    double *nll = malloc(sizeof(double) * (size_t)ctx);
    if (!logits || !nll) {
        free(logits);
        free(nll);
        return lmb_fail(err, "out of memory for %d x %d logits", ctx, vocab);
    }
    long prev_end = 0;
    int w = 0;
    for (long begin = 0;; begin += stride, w++) {
        long end = begin + ctx < n ? begin + ctx : n;
        /* targets t in [max(prev_end, begin + 1), end) are predicted by rows t - 1 */
        long t0 = prev_end > begin + 1 ? prev_end : begin + 1;
        int first = (int)(t0 - 1 - begin);
        if (lmb_engine_logits(e, ids + begin, (int)(end - begin), first, logits, err)) {
            free(logits);
            free(nll);
            return lmb_error_prefix(err, "window %d (tokens %ld..%ld)", w, begin, end);
        }
#pragma omp parallel for schedule(static)
        for (long t = t0; t < end; t++) nll[t - t0] = row_nll(logits + (size_t)(t - 1 - begin - first) * vocab, vocab, ids[t]);
        for (long t = t0; t < end; t++) {
            out->nll_sum += nll[t - t0];
            out->scored++;
        }
        prev_end = end;
        if (cb) cb(w + 1, n_windows, user);
        if (end == n) break;
    }
    free(logits);
    free(nll);
    out->windows = w + 1;
    out->ppl = exp(out->nll_sum / out->scored);
    return 0;
}
