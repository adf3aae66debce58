/* calibrate.c — the calibration forward of the quantize stage: the model's layers in fp32 on the CPU, run
 * one at a time over every calibration sequence at once, capturing the inputs of each linear group.
 *
 * It is the CPU backend's forward (same kernels: kernels/cpu) specialised to whole sequences: no KV cache,
 * attention per (sequence, head) as two matmuls with a causal softmax between them.  The residual stream
 * x always comes from the unquantized layers, as in AutoAWQ and LMDeploy.
 */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/rope.h"
#include "../kernels/kernels.h"
#include "awq_internal.h"

/* ---- fp32 layer copies ------------------------------------------------------------------------------- */

static int f32_copy(const lmb_tensor *t, float **out, lmb_error *err) {
    *out = NULL;
    if (!lmb_tensor_present(t)) return 0;
    size_t n = (size_t)lmb_tensor_numel(t);
    if (!(*out = malloc(sizeof(float) * (n ? n : 1)))) return lmb_fail(err, "out of memory for %s", t->name);
    lmb_to_f32(*out, t->data, t->dtype, n);
    return 0;
}

static int linear_copy(const lmb_linear *l, lmb_qlinear *q, lmb_error *err) {
    q->out = l->out;
    q->in = l->in;
    if (lmb_linear_quantized(l))
        return lmb_fail(err, "%s is already AWQ-quantized: quantize the unquantized model", l->qweight.name);
    return f32_copy(&l->w, &q->w, err) || f32_copy(&l->bias, &q->b, err) ? -1 : 0;
}

int lmb_qlayer_load(const lmb_model *m, int l, lmb_qlayer *L, lmb_error *err) {
    memset(L, 0, sizeof *L);
    const lmb_layer_weights *s = &m->w.layers[l];
    if (f32_copy(&s->attn_norm, &L->attn_norm, err) || f32_copy(&s->ffn_norm, &L->ffn_norm, err) ||
        linear_copy(&s->q, &L->q, err) || linear_copy(&s->k, &L->k, err) || linear_copy(&s->v, &L->v, err) ||
        linear_copy(&s->o, &L->o, err) || linear_copy(&s->gate, &L->gate, err) || linear_copy(&s->up, &L->up, err) ||
        linear_copy(&s->down, &L->down, err)) {
        lmb_qlayer_free(L);
        return lmb_error_prefix(err, "layer %d", l);
    }
    return 0;
}

void lmb_qlayer_free(lmb_qlayer *L) {
    lmb_qlinear *ls[] = {&L->q, &L->k, &L->v, &L->o, &L->gate, &L->up, &L->down};
    for (size_t i = 0; i < sizeof ls / sizeof ls[0]; i++) free(ls[i]->w), free(ls[i]->b);
    free(L->attn_norm);
    free(L->ffn_norm);
    memset(L, 0, sizeof *L);
}

/* ---- the forward ------------------------------------------------------------------------------------- */

static float *fbuf(size_t n, bool *ok) {
    float *p = malloc(sizeof(float) * (n ? n : 1));
    if (!p) *ok = false;
    return p;
}

int lmb_calib_fwd_init(lmb_calib_fwd *f, const lmb_model *m, const lmb_calib_set *c, lmb_error *err) {
    memset(f, 0, sizeof *f);
    f->cfg = m->cfg;
    const lmb_model_config *g = &f->cfg;
    f->n_seqs = c->n_seqs;
    f->seqlen = c->seqlen;
    f->N = c->n_seqs * c->seqlen;
    size_t N = (size_t)f->N, H = (size_t)g->hidden, Q = (size_t)g->n_heads * g->head_dim,
           KV = (size_t)g->n_kv_heads * g->head_dim, F = (size_t)g->ffn, T = (size_t)f->seqlen;
    f->attn_ws_per_thread = T * T + 3 * T * (size_t)g->head_dim;
    bool ok = true;
    f->x = fbuf(N * H, &ok), f->in_qkv = fbuf(N * H, &ok), f->in_o = fbuf(N * Q, &ok), f->in_gu = fbuf(N * H, &ok);
    f->in_down = fbuf(N * F, &ok), f->q = fbuf(N * Q, &ok), f->k = fbuf(N * KV, &ok), f->v = fbuf(N * KV, &ok);
    f->att = fbuf(N * Q, &ok), f->gate = fbuf(N * F, &ok), f->up = fbuf(N * F, &ok), f->h = fbuf(N * H, &ok);
    f->attn_ws = fbuf(f->attn_ws_per_thread * (size_t)omp_get_max_threads(), &ok);
    f->pos = malloc(sizeof(int32_t) * N);
    f->inv_freq = malloc(sizeof(double) * (size_t)(g->head_dim / 2 + 1));
    if (!ok || !f->pos || !f->inv_freq) {
        lmb_calib_fwd_free(f);
        return lmb_fail(err, "out of memory for the calibration activations (%zu tokens x %zu floats)", N,
                        6 * H + 3 * Q + 2 * KV + 3 * F);
    }
    lmb_rope_inv_freq(g, f->inv_freq);
    for (size_t t = 0; t < N; t++) f->pos[t] = (int32_t)(t % T);
    const lmb_tensor *e = &m->w.embed;
    size_t row_bytes = H * lmb_dtype_size(e->dtype);
    for (size_t t = 0; t < N; t++) {
        int32_t id = c->tokens[t];
        if (id < 0 || id >= g->vocab) {
            lmb_calib_fwd_free(f);
            return lmb_fail(err, "calibration token id %d is outside the vocabulary (%d)", id, g->vocab);
        }
        lmb_to_f32(f->x + t * H, (const unsigned char *)e->data + (size_t)id * row_bytes, e->dtype, H);
    }
    return 0;
}

void lmb_calib_fwd_free(lmb_calib_fwd *f) {
    float *bufs[] = {f->x, f->in_qkv, f->in_o, f->in_gu, f->in_down, f->q, f->k,
                     f->v, f->att,    f->gate, f->up,   f->h,       f->attn_ws};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(f->pos);
    free(f->inv_freq);
    memset(f, 0, sizeof *f);
}

static void linear(float *y, const float *x, const lmb_qlinear *l, int N) {
    lmb_cpu_matmul(y, x, l->w, l->b, N, l->out, l->in);
}

/* Causal attention of every (sequence, head): S = Q K^T * scale, masked softmax, O = S V. */
static void attention(lmb_calib_fwd *f, float *out) {
    const lmb_model_config *g = &f->cfg;
    int T = f->seqlen, nh = g->n_heads, nkv = g->n_kv_heads, hd = g->head_dim, rep = nh / nkv;
    size_t qs = (size_t)nh * hd, ks = (size_t)nkv * hd;
    float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for schedule(dynamic, 1)
    for (int p = 0; p < f->n_seqs * nh; p++) {
        int s = p / nh, h = p % nh, kvh = h / rep;
        float *S = f->attn_ws + (size_t)omp_get_thread_num() * f->attn_ws_per_thread;
        float *Qh = S + (size_t)T * T, *Kh = Qh + (size_t)T * hd, *Vt = Kh + (size_t)T * hd;
        size_t row0 = (size_t)s * T;
        for (int t = 0; t < T; t++) {
            memcpy(Qh + (size_t)t * hd, f->q + (row0 + t) * qs + (size_t)h * hd, sizeof(float) * (size_t)hd);
            memcpy(Kh + (size_t)t * hd, f->k + (row0 + t) * ks + (size_t)kvh * hd, sizeof(float) * (size_t)hd);
            for (int i = 0; i < hd; i++) Vt[(size_t)i * T + t] = f->v[(row0 + t) * ks + (size_t)kvh * hd + i];
        }
        lmb_cpu_matmul(S, Qh, Kh, NULL, T, T, hd);
        for (int t = 0; t < T; t++) {
            float *r = S + (size_t)t * T, mx = -INFINITY, sum = 0;
            for (int j = 0; j <= t; j++) {
                r[j] *= scale;
                mx = r[j] > mx ? r[j] : mx;
            }
            for (int j = 0; j <= t; j++) sum += (r[j] = expf(r[j] - mx));
            for (int j = 0; j <= t; j++) r[j] /= sum;
            for (int j = t + 1; j < T; j++) r[j] = 0;
        }
        lmb_cpu_matmul(Qh, S, Vt, NULL, T, hd, T); /* Qh <- S V */
        for (int t = 0; t < T; t++)
            memcpy(out + (row0 + t) * qs + (size_t)h * hd, Qh + (size_t)t * hd, sizeof(float) * (size_t)hd);
    }
}

void lmb_calib_attn_block(lmb_calib_fwd *f, const lmb_qlayer *L, const float *xn, float *out, float *att_out) {
    const lmb_model_config *g = &f->cfg;
    float *att = att_out ? att_out : f->att;
    linear(f->q, xn, &L->q, f->N);
    linear(f->k, xn, &L->k, f->N);
    linear(f->v, xn, &L->v, f->N);
    lmb_cpu_rope(f->q, f->k, f->pos, f->N, g->n_heads, g->n_kv_heads, g->head_dim, f->inv_freq);
    attention(f, att);
    linear(out, att, &L->o, f->N);
}

void lmb_calib_mlp_block(lmb_calib_fwd *f, const lmb_qlayer *L, const float *xn, float *out, float *act_out) {
    float *act = act_out ? act_out : f->gate;
    linear(f->gate, xn, &L->gate, f->N);
    linear(f->up, xn, &L->up, f->N);
    lmb_cpu_silu_mul(act, f->gate, f->up, f->N, f->cfg.ffn);
    linear(out, act, &L->down, f->N);
}

void lmb_calib_fwd_layer(lmb_calib_fwd *f, const lmb_qlayer *L) {
    const lmb_model_config *g = &f->cfg;
    size_t n = (size_t)f->N * g->hidden;
    lmb_cpu_rmsnorm(f->in_qkv, f->x, L->attn_norm, f->N, g->hidden, (float)g->rms_eps);
    lmb_calib_attn_block(f, L, f->in_qkv, f->h, f->in_o);
    for (size_t i = 0; i < n; i++) f->x[i] += f->h[i];
    lmb_cpu_rmsnorm(f->in_gu, f->x, L->ffn_norm, f->N, g->hidden, (float)g->rms_eps);
    lmb_calib_mlp_block(f, L, f->in_gu, f->h, f->in_down);
    for (size_t i = 0; i < n; i++) f->x[i] += f->h[i];
}
