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

#include "../kernels/kernels.h"
#include "awq_internal.h"
#include "int4.h"

#define N_GRID 20
#define MAX_SHRINK_STEPS 10 /* max_shrink 0.5 */
#define SAMPLE_TOKENS 512

/* Group by group, as matmuls: Yref = Xg Wg^T over the sampled tokens, then per shrink Y = Xg Q(clamp(Wg))^T. */
static int clip_linear(lmb_qlinear *l, const float *x, int N, int group_size, lmb_error *err) {
    int in = l->in, out = l->out, G = group_size, ng = in / G, step = N / SAMPLE_TOKENS > 1 ? N / SAMPLE_TOKENS : 1;
    int T = (N + step - 1) / step;
    float *xg = malloc(sizeof(float) * (size_t)T * G), *wg = malloc(sizeof(float) * (size_t)out * G),
          *wq = malloc(sizeof(float) * (size_t)out * G), *yref = malloc(sizeof(float) * (size_t)T * out),
          *y = malloc(sizeof(float) * (size_t)T * out), *amax = malloc(sizeof(float) * out),
          *best_max = malloc(sizeof(float) * out);
    double *best_err = malloc(sizeof(double) * out);
    int rc = 0;
    if (!xg || !wg || !wq || !yref || !y || !amax || !best_max || !best_err) {
        rc = lmb_fail(err, "out of memory in the clipping search");
        goto done;
    }
    for (int g = 0; g < ng; g++) {
        for (int t = 0; t < T; t++)
            memcpy(xg + (size_t)t * G, x + (size_t)t * step * in + (size_t)g * G, sizeof(float) * G);
        for (int r = 0; r < out; r++) {
            const float *w = l->w + (size_t)r * in + (size_t)g * G;
            memcpy(wg + (size_t)r * G, w, sizeof(float) * G);
            float a = 0;
            for (int i = 0; i < G; i++) a = fabsf(w[i]) > a ? fabsf(w[i]) : a;
            amax[r] = best_max[r] = a;
            best_err[r] = INFINITY;
        }
        lmb_cpu_matmul(yref, xg, wg, NULL, T, out, G);
        for (int s = 0; s < MAX_SHRINK_STEPS; s++) {
            float shrink = 1.0f - (float)s / N_GRID;
#pragma omp parallel for schedule(static)
            for (int r = 0; r < out; r++) {
                float mv = amax[r] * shrink, *q = wq + (size_t)r * G;
                const float *w = wg + (size_t)r * G;
                for (int i = 0; i < G; i++) q[i] = w[i] > mv ? mv : w[i] < -mv ? -mv : w[i];
            }
            lmb_int4_fake_quant(wq, out, G, G);
            lmb_cpu_matmul(y, xg, wq, NULL, T, out, G);
#pragma omp parallel for schedule(static)
            for (int r = 0; r < out; r++) {
                double e = 0;
                for (int t = 0; t < T; t++) {
                    double d = (double)y[(size_t)t * out + r] - yref[(size_t)t * out + r];
                    e += d * d;
                }
                if (e < best_err[r]) best_err[r] = e, best_max[r] = amax[r] * shrink;
            }
        }
        for (int r = 0; r < out; r++) {
            float *w = l->w + (size_t)r * in + (size_t)g * G, mv = best_max[r];
            for (int i = 0; i < G; i++) w[i] = w[i] > mv ? mv : w[i] < -mv ? -mv : w[i];
        }
    }
done:
    free(xg), free(wg), free(wq), free(yref), free(y), free(amax), free(best_max), free(best_err);
    return rc;
}

int lmb_awq_clip(lmb_calib_fwd *f, lmb_qlayer *L, int group_size, lmb_error *err) {
    struct {
        lmb_qlinear *l;
        const float *x;
    } todo[] = {{&L->v, f->in_qkv}, {&L->o, f->in_o}, {&L->gate, f->in_gu}, {&L->up, f->in_gu}, {&L->down, f->in_down}};
    for (size_t i = 0; i < sizeof todo / sizeof todo[0]; i++)
        if (clip_linear(todo[i].l, todo[i].x, f->N, group_size, err)) return -1;
    return 0;
}
