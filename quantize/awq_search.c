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

#include "../kernels/kernels.h"
#include "awq_internal.h"
#include "int4.h"

#define N_GRID 20

typedef struct group_def {
    lmb_qlinear *lin[3];
    int n_lin;
    const float *x; /* captured input [N, in] */
    int in, out_dim; /* input channels; block output width */
} group_def;

/* The group's linears inside the layer copy `view` (whose pointers the search swaps). */
static group_def group_of(const lmb_calib_fwd *f, lmb_qlayer *view, int g) {
    const lmb_model_config *c = &f->cfg;
    int H = c->hidden, Q = c->n_heads * c->head_dim;
    switch (g) {
    case LMB_AWQ_QKV: return (group_def){{&view->q, &view->k, &view->v}, 3, f->in_qkv, H, H};
    case LMB_AWQ_O: return (group_def){{&view->o}, 1, f->in_o, Q, H};
    case LMB_AWQ_GATE_UP: return (group_def){{&view->gate, &view->up}, 2, f->in_gu, H, H};
    default: return (group_def){{&view->down}, 1, f->in_down, c->ffn, H};
    }
}

/* The block of group g on its captured input, with the weights of `view`. */
static void run_block(lmb_calib_fwd *f, const lmb_qlayer *view, int g, float *out) {
    switch (g) {
    case LMB_AWQ_QKV: lmb_calib_attn_block(f, view, f->in_qkv, out, NULL); break;
    case LMB_AWQ_O: lmb_cpu_matmul(out, f->in_o, view->o.w, view->o.b, f->N, view->o.out, view->o.in); break;
    case LMB_AWQ_GATE_UP: lmb_calib_mlp_block(f, view, f->in_gu, out, NULL); break;
    default: lmb_cpu_matmul(out, f->in_down, view->down.w, view->down.b, f->N, view->down.out, view->down.in); break;
    }
}

static double mse(const float *a, const float *b, size_t n) {
    double s = 0;
#pragma omp parallel for reduction(+ : s) if (n > 65536)
    for (size_t i = 0; i < n; i++) s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return s / (double)(n ? n : 1);
}

/* x_mean over the N rows, per channel. */
static void channel_mean(const lmb_calib_fwd *f, const group_def *gd, float *xm) {
    int in = gd->in, N = f->N;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < in; c++) {
        double s = 0;
        for (int t = 0; t < N; t++) s += fabs((double)gd->x[(size_t)t * in + c]);
        xm[c] = (float)(s / N);
    }
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
static void weight_mean(const group_def *gd, int group_size, float *wm) {
    int in = gd->in;
    double *acc = calloc((size_t)in, sizeof(double));
    long rows = 0;
    if (!acc) {
        for (int c = 0; c < in; c++) wm[c] = 1.f;
        return;
    }
    for (int i = 0; i < gd->n_lin; i++) {
        const lmb_qlinear *l = gd->lin[i];
        for (int r = 0; r < l->out; r++, rows++) {
            const float *w = l->w + (size_t)r * in;
            for (int g0 = 0; g0 < in; g0 += group_size) {
                float mx = 0;
                for (int c = g0; c < g0 + group_size && c < in; c++) mx = fabsf(w[c]) > mx ? fabsf(w[c]) : mx;
                for (int c = g0; c < g0 + group_size && c < in; c++) acc[c] += mx > 0 ? fabsf(w[c]) / mx : 0;
            }
        }
    }
    for (int c = 0; c < in; c++) wm[c] = (float)(acc[c] / (double)(rows ? rows : 1));
    free(acc);
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

/* dst = Q(src diag(s)) diag(s)^-1 */
static void scaled_fake_quant(float *dst, const lmb_qlinear *src, const float *s, int group_size) {
    size_t n = (size_t)src->out * src->in;
    for (size_t i = 0; i < n; i++) dst[i] = src->w[i] * s[i % (size_t)src->in];
    lmb_int4_fake_quant(dst, src->out, src->in, group_size);
    for (size_t i = 0; i < n; i++) dst[i] /= s[i % (size_t)src->in];
}

static int search_group(lmb_calib_fwd *f, const lmb_qlayer *L, int g, int group_size, double alpha, bool duo,
                        float **scale_out, lmb_awq_group_stats *st, lmb_error *err) {
    lmb_qlayer view = *L;
    group_def gd = group_of(f, &view, g);
    size_t n_out = (size_t)f->N * gd.out_dim;
    float *xm = malloc(sizeof(float) * gd.in), *s = malloc(sizeof(float) * gd.in), *best = malloc(sizeof(float) * gd.in);
    float *wm = duo ? malloc(sizeof(float) * gd.in) : NULL;
    float *ref = malloc(sizeof(float) * n_out), *cur = malloc(sizeof(float) * n_out), *tmp[3] = {0};
    bool ok = xm && s && best && ref && cur && (wm || !duo);
    for (int i = 0; i < gd.n_lin && ok; i++) ok = (tmp[i] = malloc(sizeof(float) * gd.lin[i]->out * gd.in)) != NULL;
    if (!ok) {
        free(xm), free(s), free(best), free(ref), free(cur), free(wm);
        for (int i = 0; i < 3; i++) free(tmp[i]);
        return lmb_fail(err, "out of memory in the AWQ search");
    }
    channel_mean(f, &gd, xm);
    tie_o_heads(f, g, xm);
    if (wm) {
        weight_mean(&gd, group_size, wm);
        tie_o_heads(f, g, wm);
    }
    run_block(f, L, g, ref);
    const float *orig[3];
    for (int i = 0; i < gd.n_lin; i++) orig[i] = gd.lin[i]->w;
    st->scaled = true;
    /* α = 0 (s = 1, plain RTN) first, then the rest of the grid, or just the fixed α */
    int n_alpha = alpha < 0 ? N_GRID : 2;
    for (int r = 0; r < n_alpha; r++) {
        double a = alpha < 0 ? (double)r / N_GRID : r == 0 ? 0.0 : alpha;
        scales_for(xm, a == 0 ? NULL : wm, gd.in, a, s); /* α = 0 stays plain RTN */
        for (int i = 0; i < gd.n_lin; i++) {
            lmb_qlinear src = *gd.lin[i];
            src.w = (float *)orig[i];
            scaled_fake_quant(tmp[i], &src, s, group_size);
            gd.lin[i]->w = tmp[i];
        }
        run_block(f, &view, g, cur);
        double e = mse(cur, ref, n_out);
        if (r == 0) st->mse_rtn = e;
        if (r == 0 || e < st->mse_best || alpha >= 0) {
            st->mse_best = e;
            st->alpha = a;
            memcpy(best, s, sizeof(float) * gd.in);
        }
    }
    *scale_out = best;
    free(xm), free(s), free(ref), free(cur), free(wm);
    for (int i = 0; i < 3; i++) free(tmp[i]);
    return 0;
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

static void scale_columns(lmb_qlinear *l, const float *s) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < l->out; r++)
        for (int c = 0; c < l->in; c++) l->w[(size_t)r * l->in + c] *= s[c];
}

/* Row r of l (and its bias) divided by s[r]. */
static void unscale_rows(lmb_qlinear *l, const float *s) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < l->out; r++) {
        for (int c = 0; c < l->in; c++) l->w[(size_t)r * l->in + c] /= s[r];
        if (l->b) l->b[r] /= s[r];
    }
}

static void unscale_input(float *x, int N, int in, const float *s) {
#pragma omp parallel for schedule(static)
    for (int t = 0; t < N; t++)
        for (int c = 0; c < in; c++) x[(size_t)t * in + c] /= s[c];
}

int lmb_awq_fold(lmb_calib_fwd *f, lmb_qlayer *L, float *const scales[LMB_AWQ_GROUPS], lmb_error *err) {
    const lmb_model_config *c = &f->cfg;
    int H = c->hidden, hd = c->head_dim, rep = c->n_heads / c->n_kv_heads;
    const float *s;
    if ((s = scales[LMB_AWQ_QKV])) {
        for (int i = 0; i < H; i++) L->attn_norm[i] /= s[i];
        scale_columns(&L->q, s), scale_columns(&L->k, s), scale_columns(&L->v, s);
        unscale_input(f->in_qkv, f->N, H, s);
    }
    if ((s = scales[LMB_AWQ_O])) { /* o input channel h*hd + d comes from v row (h / rep)*hd + d */
        float *sv = malloc(sizeof(float) * (size_t)L->v.out);
        if (!sv) return lmb_fail(err, "out of memory folding the o scales");
        /* tied: every head of a KV group carries the same s, so its first head's will do */
        for (int kv = 0; kv < c->n_kv_heads; kv++)
            for (int d = 0; d < hd; d++) sv[kv * hd + d] = s[(kv * rep) * hd + d];
        unscale_rows(&L->v, sv);
        scale_columns(&L->o, s);
        unscale_input(f->in_o, f->N, L->o.in, s);
        free(sv);
    }
    if ((s = scales[LMB_AWQ_GATE_UP])) {
        for (int i = 0; i < H; i++) L->ffn_norm[i] /= s[i];
        scale_columns(&L->gate, s), scale_columns(&L->up, s);
        unscale_input(f->in_gu, f->N, H, s);
    }
    if ((s = scales[LMB_AWQ_DOWN])) {
        unscale_rows(&L->up, s);
        scale_columns(&L->down, s);
        unscale_input(f->in_down, f->N, c->ffn, s);
    }
    return 0;
}

/* ---- measuring the result ---------------------------------------------------------------------------- */

int lmb_awq_measure(lmb_calib_fwd *f, const lmb_qlayer *L, int group_size, lmb_awq_group_stats st[LMB_AWQ_GROUPS],
                    lmb_error *err) {
    for (int g = 0; g < LMB_AWQ_GROUPS; g++) {
        lmb_qlayer view = *L;
        group_def gd = group_of(f, &view, g);
        size_t n_out = (size_t)f->N * gd.out_dim;
        float *ref = malloc(sizeof(float) * n_out), *cur = malloc(sizeof(float) * n_out), *tmp[3] = {0};
        bool ok = ref && cur;
        for (int i = 0; i < gd.n_lin && ok; i++) {
            size_t n = (size_t)gd.lin[i]->out * gd.in;
            if ((ok = (tmp[i] = malloc(sizeof(float) * n)) != NULL)) {
                memcpy(tmp[i], gd.lin[i]->w, sizeof(float) * n);
                lmb_int4_fake_quant(tmp[i], gd.lin[i]->out, gd.in, group_size);
            }
        }
        if (ok) {
            run_block(f, L, g, ref);
            for (int i = 0; i < gd.n_lin; i++) gd.lin[i]->w = tmp[i];
            run_block(f, &view, g, cur);
            st[g].mse_final = mse(cur, ref, n_out);
        }
        free(ref), free(cur);
        for (int i = 0; i < 3; i++) free(tmp[i]);
        if (!ok) return lmb_fail(err, "out of memory measuring the quantization error");
    }
    return 0;
}
