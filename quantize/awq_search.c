/* awq_search.c — AWQ's per-channel scale search and its folding (see quantize.h for the groups).
 *
 * For a group with captured input X [N, in] and linears W_i: x_mean = mean_t |X[t, :]|, and for α on the
 * grid s = max(x_mean^α, 1e-4) / sqrt(max * min) (non-finite entries -> 1); each W_i is replaced by
 * Q(W_i diag(s)) diag(s)^-1 and the group's block is run on X; the α whose output is closest (MSE) to
 * the unquantized block's wins.  α = 0 gives s = 1: plain RTN, so the search never does worse than RTN
 * on the calibration activations.  For the o group under GQA, x_mean is averaged over the query heads
 * that share a KV head, so s can be folded into v's rows.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "awq_internal.h"

#define N_GRID 20

typedef struct group_def {
    lmb_qlinear *lin[3];
    int n_lin;
    float *x; /* captured input [N, in] */
    int in;         /* input channels */
} group_def;

/* The group's linears inside the layer copy `view` (whose pointers the search swaps). */
static group_def group_of(const lmb_calib_fwd *f, lmb_qlayer *view, int g) {
    const lmb_model_config *c = &f->cfg;
    int H = c->hidden, Q = c->n_heads * c->head_dim;
    switch (g) {
    case LMB_AWQ_QKV: return (group_def){{&view->q, &view->k, &view->v}, 3, f->in_qkv, H};
    case LMB_AWQ_O: return (group_def){{&view->o}, 1, f->in_o, Q};
    case LMB_AWQ_GATE_UP: return (group_def){{&view->gate, &view->up}, 2, f->in_gu, H};
    default: return (group_def){{&view->down}, 1, f->in_down, c->ffn};
    }
}

/* Group g's block (its output is [N, hidden] for every group) on its captured input with the weights of
 * `view`, chunk by chunk: stored in f->ref when store, else its squared error against f->ref returned as a
 * mean over the outputs. */
static double run_block(lmb_calib_fwd *f, const lmb_qlayer *view, int g, bool store) {
    lmb_qdev *d = f->d;
    const lmb_model_config *c = &f->cfg;
    size_t H = (size_t)c->hidden, Q = (size_t)c->n_heads * c->head_dim, F = (size_t)c->ffn;
    double e = 0;
    for (int s0 = 0; s0 < f->n_seqs; s0 += f->chunk_seqs) {
        int ns = f->n_seqs - s0 < f->chunk_seqs ? f->n_seqs - s0 : f->chunk_seqs, rows = ns * f->seqlen;
        size_t r0 = (size_t)s0 * f->seqlen;
        float *out = store ? f->ref + r0 * H : f->h;
        switch (g) {
        case LMB_AWQ_QKV: lmb_calib_attn_block(f, view, f->in_qkv + r0 * H, out, NULL, ns); break;
        case LMB_AWQ_O:
            d->ops->matmul(d, out, f->in_o + r0 * Q, view->o.w, view->o.b, rows, view->o.out, view->o.in);
            break;
        case LMB_AWQ_GATE_UP: lmb_calib_mlp_block(f, view, f->in_gu + r0 * H, out, NULL, ns); break;
        default:
            d->ops->matmul(d, out, f->in_down + r0 * F, view->down.w, view->down.b, rows, view->down.out,
                           view->down.in);
            break;
        }
        if (!store) e += d->ops->sq_err(d, out, f->ref + r0 * H, (size_t)rows * H);
    }
    return e / ((double)f->N * H);
}

/* x_mean over the N rows, per channel. */
static int channel_mean(lmb_calib_fwd *f, const group_def *gd, float *xm) {
    double *sum = malloc(sizeof(double) * (size_t)gd->in);
    if (!sum) return -1;
    f->d->ops->col_sums(f->d, gd->x, NULL, f->N, gd->in, sum);
    for (int c = 0; c < gd->in; c++) xm[c] = (float)(sum[c] / f->N);
    free(sum);
    return 0;
}

/* The o group under GQA: v's rows serve several query heads, so a per-channel statistic is averaged over the
 * query heads of each KV head (then s folds into v exactly). */
static void tie_o_heads(const lmb_calib_fwd *f, int g, float *v) {
    const lmb_model_config *cf = &f->cfg;
    int rep = cf->n_heads / cf->n_kv_heads, hd = cf->head_dim;
    if (g != LMB_AWQ_O || rep == 1) return;
    for (int kv = 0; kv < cf->n_kv_heads; kv++)
        for (int d = 0; d < hd; d++) {
            double s = 0;
            for (int r = 0; r < rep; r++) s += v[(kv * rep + r) * hd + d];
            for (int r = 0; r < rep; r++) v[(kv * rep + r) * hd + d] = (float)(s / rep);
        }
}

/* Duo scaling's w_mean: per input channel, the mean over the group's weight rows of |w| / max|w| of the
 * quantization group (group_size consecutive inputs of a row) the weight falls in. */
static int weight_mean(lmb_qdev *d, const group_def *gd, int group_size, float *wm) {
    int in = gd->in;
    double *acc = calloc((size_t)in, sizeof(double));
    long rows = 0;
    if (!acc) return -1;
    for (int i = 0; i < gd->n_lin; i++) {
        const lmb_qlinear *l = gd->lin[i];
        float *tmp;
        const float *W = lmb_qdev_host_view(d, l->w, (size_t)l->out * in, &tmp);
        if (!W) {
            free(acc);
            return -1;
        }
        for (int r = 0; r < l->out; r++, rows++) {
            const float *w = W + (size_t)r * in;
            for (int g0 = 0; g0 < in; g0 += group_size) {
                float mx = 0;
                for (int c = g0; c < g0 + group_size && c < in; c++) mx = fabsf(w[c]) > mx ? fabsf(w[c]) : mx;
                for (int c = g0; c < g0 + group_size && c < in; c++) acc[c] += mx > 0 ? fabsf(w[c]) / mx : 0;
            }
        }
        free(tmp);
    }
    for (int c = 0; c < in; c++) wm[c] = (float)(acc[c] / (double)(rows ? rows : 1));
    free(acc);
    return 0;
}

static void scales_for(const float *xm, const float *wm, int in, double alpha, float *s) {
    float mx = 0, mn = INFINITY;
    for (int c = 0; c < in; c++) {
        float v = powf(xm[c], (float)alpha);
        if (wm) v /= powf(wm[c], (float)(1 - alpha)) + 1e-4f;
        s[c] = v > 1e-4f ? v : 1e-4f; /* also maps NaN to 1e-4 */
        mx = s[c] > mx ? s[c] : mx;
        mn = s[c] < mn ? s[c] : mn;
    }
    float norm = sqrtf(mx * mn);
    for (int c = 0; c < in; c++) {
        s[c] /= norm;
        if (!isfinite(s[c])) s[c] = 1.f;
    }
}

/* dst = Q(src diag(s)) diag(s)^-1, or Q(src) when s == NULL */
static void scaled_fake_quant(lmb_qdev *d, float *dst, const lmb_qlinear *src, const float *s, int group_size) {
    d->ops->copy2d(d, dst, (size_t)src->in, src->w, (size_t)src->in, src->out, src->in);
    if (s) d->ops->scale_cols(d, dst, src->out, src->in, s, false);
    d->ops->fake_quant(d, dst, src->out, src->in, group_size);
    if (s) d->ops->scale_cols(d, dst, src->out, src->in, s, true);
}

/* Device copies for the group's fake-quantized weights (NULL entries past n_lin). */
static int alloc_tmp(lmb_qdev *d, const group_def *gd, float *tmp[3]) {
    for (int i = 0; i < 3; i++) tmp[i] = NULL;
    for (int i = 0; i < gd->n_lin; i++)
        if (!(tmp[i] = d->ops->alloc(d, (size_t)gd->lin[i]->out * gd->in))) return -1;
    return 0;
}

static void free_tmp(lmb_qdev *d, float *tmp[3]) {
    for (int i = 0; i < 3; i++)
        if (tmp[i]) d->ops->release(d, tmp[i]);
}

static int search_group(lmb_calib_fwd *f, const lmb_qlayer *L, int g, int group_size, double alpha, bool duo,
                        float **scale_out, lmb_awq_group_stats *st, lmb_error *err) {
    lmb_qdev *d = f->d;
    lmb_qlayer view = *L;
    group_def gd = group_of(f, &view, g);
    float *xm = malloc(sizeof(float) * gd.in), *s = malloc(sizeof(float) * gd.in), *best = malloc(sizeof(float) * gd.in);
    float *wm = duo ? malloc(sizeof(float) * gd.in) : NULL, *tmp[3] = {0};
    int rc = -1;
    if (!xm || !s || !best || (duo && !wm) || channel_mean(f, &gd, xm) || alloc_tmp(d, &gd, tmp) ||
        (wm && weight_mean(d, &gd, group_size, wm))) {
        if (!lmb_qdev_status(d, err)) lmb_fail(err, "out of memory in the AWQ search");
        goto done;
    }
    tie_o_heads(f, g, xm);
    if (wm) tie_o_heads(f, g, wm);
    run_block(f, L, g, true);
    const float *orig[3];
    for (int i = 0; i < gd.n_lin; i++) orig[i] = gd.lin[i]->w;
    st->scaled = true;
    /* α = 0 (s = 1, plain RTN) first, then the rest of the grid, or just the fixed α */
    int n_alpha = alpha < 0 ? N_GRID : 2;
    for (int r = 0; r < n_alpha && !d->failed; r++) {
        double a = alpha < 0 ? (double)r / N_GRID : r == 0 ? 0.0 : alpha;
        scales_for(xm, a == 0 ? NULL : wm, gd.in, a, s); /* α = 0 stays plain RTN */
        for (int i = 0; i < gd.n_lin; i++) {
            lmb_qlinear src = *gd.lin[i];
            src.w = (float *)orig[i];
            scaled_fake_quant(d, tmp[i], &src, s, group_size);
            gd.lin[i]->w = tmp[i];
        }
        double e = run_block(f, &view, g, false);
        if (r == 0) st->mse_rtn = e;
        if (r == 0 || e < st->mse_best || alpha >= 0) {
            st->mse_best = e;
            st->alpha = a;
            memcpy(best, s, sizeof(float) * gd.in);
        }
    }
    if (!(rc = lmb_qdev_status(d, err))) *scale_out = best, best = NULL;
done:
    free_tmp(d, tmp);
    free(xm), free(s), free(best), free(wm);
    return rc;
}

int lmb_awq_search(lmb_calib_fwd *f, const lmb_qlayer *L, int group_size, double alpha, bool duo,
                   float *scales[LMB_AWQ_GROUPS], lmb_awq_group_stats st[LMB_AWQ_GROUPS], lmb_error *err) {
    memset(st, 0, sizeof(lmb_awq_group_stats) * LMB_AWQ_GROUPS);
    for (int g = 0; g < LMB_AWQ_GROUPS; g++) scales[g] = NULL;
    for (int g = 0; g < LMB_AWQ_GROUPS; g++)
        if (search_group(f, L, g, group_size, alpha, duo, &scales[g], &st[g], err)) {
            for (int k = 0; k < g; k++) free(scales[k]), scales[k] = NULL;
            return -1;
        }
    return 0;
}

/* ---- folding ----------------------------------------------------------------------------------------- */

/* Each group's s: 1/s into what precedes it (norm, or v / up rows), s into its linears' input columns, 1/s
 * into its captured input. */
int lmb_awq_fold(lmb_calib_fwd *f, lmb_qlayer *L, float *const scales[LMB_AWQ_GROUPS], lmb_error *err) {
    const lmb_model_config *c = &f->cfg;
    lmb_qdev *d = f->d;
    const lmb_qdev_ops *op = d->ops;
    int H = c->hidden, hd = c->head_dim, rep = c->n_heads / c->n_kv_heads;
    for (int g = 0; g < LMB_AWQ_GROUPS; g++) {
        const float *s = scales[g];
        if (!s) continue;
        group_def gd = group_of(f, L, g);
        switch (g) {
        case LMB_AWQ_QKV: op->scale_cols(d, L->attn_norm, 1, H, s, true); break;
        case LMB_AWQ_O: { /* o input channel h*hd + i comes from v row (h / rep)*hd + i */
            float *sv = malloc(sizeof(float) * (size_t)L->v.out);
            if (!sv) return lmb_fail(err, "out of memory folding the o scales");
            /* tied: every head of a KV group carries the same s, so its first head's will do */
            for (int kv = 0; kv < c->n_kv_heads; kv++)
                for (int i = 0; i < hd; i++) sv[kv * hd + i] = s[(kv * rep) * hd + i];
            op->unscale_rows(d, L->v.w, L->v.b, L->v.out, L->v.in, sv);
            free(sv);
            break;
        }
        case LMB_AWQ_GATE_UP: op->scale_cols(d, L->ffn_norm, 1, H, s, true); break;
        default: op->unscale_rows(d, L->up.w, L->up.b, L->up.out, L->up.in, s); break;
        }
        for (int i = 0; i < gd.n_lin; i++) op->scale_cols(d, gd.lin[i]->w, gd.lin[i]->out, gd.in, s, false);
        op->scale_cols(d, gd.x, f->N, gd.in, s, true);
    }
    return lmb_qdev_status(d, err);
}

/* ---- measuring the result ---------------------------------------------------------------------------- */

int lmb_awq_measure(lmb_calib_fwd *f, const lmb_qlayer *L, int group_size, lmb_awq_group_stats st[LMB_AWQ_GROUPS],
                    lmb_error *err) {
    lmb_qdev *d = f->d;
    for (int g = 0; g < LMB_AWQ_GROUPS && !d->failed; g++) {
        lmb_qlayer view = *L;
        group_def gd = group_of(f, &view, g);
        float *tmp[3];
        if (alloc_tmp(d, &gd, tmp)) {
            free_tmp(d, tmp);
            break;
        }
        for (int i = 0; i < gd.n_lin; i++) {
            scaled_fake_quant(d, tmp[i], gd.lin[i], NULL, group_size);
            gd.lin[i]->w = tmp[i];
        }
        run_block(f, L, g, true);
        st[g].mse_final = run_block(f, &view, g, false);
        free_tmp(d, tmp);
    }
    return lmb_qdev_status(d, err);
}
