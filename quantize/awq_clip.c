/* awq_clip.c — AutoAWQ's weight clipping search (after the scales are folded).
 *
 * For each output row r and input group g of a linear with (scaled) input X: the group's partial output
 * y[t] = X[t, g] . W[r, g] on up to 512 tokens sampled at a fixed stride; for shrink i = 0..9 the weights
 * are clamped to ±(1 - i/20) max|W[r, g]|, quantized, and the squared error of the partial output
 * measured; the best clamp is kept.  q and k are left alone (their error is judged through attention
 * scores, which a partial output does not see), as AutoAWQ does.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "awq_internal.h"

#define N_GRID 20
#define MAX_SHRINK_STEPS 10 /* max_shrink 0.5 */
#define SAMPLE_TOKENS 512

/* Group by group, as matmuls: Yref = Xg Wg^T over the sampled tokens, then per shrink Y = Xg Q(clamp(Wg))^T. */
static int clip_linear(lmb_qdev *d, lmb_qlinear *l, const float *x, int N, int group_size, lmb_error *err) {
    const lmb_qdev_ops *op = d->ops;
    int in = l->in, out = l->out, G = group_size, ng = in / G, step = N / SAMPLE_TOKENS > 1 ? N / SAMPLE_TOKENS : 1;
    int T = (N + step - 1) / step;
    float *xg = op->alloc(d, (size_t)T * G), *wg = op->alloc(d, (size_t)out * G), *wq = op->alloc(d, (size_t)out * G),
          *yref = op->alloc(d, (size_t)T * out), *y = op->alloc(d, (size_t)T * out);
    float *amax = malloc(sizeof(float) * out), *best_max = malloc(sizeof(float) * out), *mv = malloc(sizeof(float) * out);
    double *best_err = malloc(sizeof(double) * out), *e = malloc(sizeof(double) * out);
    if (!amax || !best_max || !mv || !best_err || !e) lmb_qdev_fail(d, "out of memory in the clipping search");
    for (int g = 0; g < ng && !d->failed; g++) {
        op->copy2d(d, xg, (size_t)G, x + (size_t)g * G, (size_t)step * in, T, G);
        op->copy2d(d, wg, (size_t)G, l->w + (size_t)g * G, (size_t)in, out, G);
        op->row_absmax(d, wg, (size_t)G, out, G, amax);
        for (int r = 0; r < out; r++) best_max[r] = amax[r], best_err[r] = INFINITY;
        op->matmul(d, yref, xg, wg, NULL, T, out, G);
        for (int s = 0; s < MAX_SHRINK_STEPS && !d->failed; s++) {
            float shrink = 1.0f - (float)s / N_GRID;
            for (int r = 0; r < out; r++) mv[r] = amax[r] * shrink;
            op->clamp_rows(d, wq, (size_t)G, wg, (size_t)G, out, G, mv);
            op->fake_quant(d, wq, out, G, G);
            op->matmul(d, y, xg, wq, NULL, T, out, G);
            op->col_sums(d, y, yref, T, out, e);
            for (int r = 0; r < out; r++)
                if (e[r] < best_err[r]) best_err[r] = e[r], best_max[r] = mv[r];
        }
        op->clamp_rows(d, l->w + (size_t)g * G, (size_t)in, l->w + (size_t)g * G, (size_t)in, out, G, best_max);
    }
    float *bufs[] = {xg, wg, wq, yref, y};
    for (int i = 0; i < 5; i++)
        if (bufs[i]) op->release(d, bufs[i]);
    free(amax), free(best_max), free(mv), free(best_err), free(e);
    return lmb_qdev_status(d, err);
}

int lmb_awq_clip(lmb_calib_fwd *f, lmb_qlayer *L, int group_size, lmb_error *err) {
    struct {
        lmb_qlinear *l;
        const float *x;
    } todo[] = {{&L->v, f->in_qkv}, {&L->o, f->in_o}, {&L->gate, f->in_gu}, {&L->up, f->in_gu}, {&L->down, f->in_down}};
    for (size_t i = 0; i < sizeof todo / sizeof todo[0]; i++)
        if (clip_linear(f->d, todo[i].l, todo[i].x, f->N, group_size, err)) return -1;
    return 0;
}
