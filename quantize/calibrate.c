/* calibrate.c — the calibration forward of the quantize stage: the model's layers in fp32 on a quantize
 * device (qdev.h: the CPU or a GPU), run one at a time over every calibration sequence, capturing the
 * inputs of each linear group.
 *
 * It is the backend's forward specialised to whole sequences: no KV cache, causal attention per sequence.
 * The sequences go through in chunks of whole sequences so the scratch (q, k, v, attention output, gate,
 * up) stays within the device's scratch_bytes (LMB_QUANT_SCRATCH_MB overrides it); the captured inputs and
 * the residual stream are whole.
 * The residual stream x always comes from the unquantized layers, as in AutoAWQ and LMDeploy.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/rope.h"
#include "awq_internal.h"

/* ---- fp32 layer copies ------------------------------------------------------------------------------- */

/* t converted to fp32 in the device's memory (*out NULL when t is absent). */
static int f32_copy(lmb_qdev *d, const lmb_tensor *t, float **out, lmb_error *err) {
    *out = NULL;
    if (!lmb_tensor_present(t)) return 0;
    size_t n = (size_t)lmb_tensor_numel(t);
    float *host = d->host_memory ? NULL : malloc(sizeof(float) * (n ? n : 1));
    if (!(*out = d->ops->alloc(d, n)) || (!d->host_memory && !host)) {
        free(host);
        return lmb_qdev_status(d, err) ? lmb_error_prefix(err, "%s", t->name) : lmb_fail(err, "out of memory for %s", t->name);
    }
    lmb_to_f32(host ? host : *out, t->data, t->dtype, n);
    if (host) d->ops->put(d, *out, host, n);
    free(host);
    return lmb_qdev_status(d, err);
}

static int linear_copy(lmb_qdev *d, const lmb_linear *l, lmb_qlinear *q, lmb_error *err) {
    q->out = l->out;
    q->in = l->in;
    if (lmb_linear_quantized(l))
        return lmb_fail(err, "%s is already AWQ-quantized: quantize the unquantized model", l->qweight.name);
    return f32_copy(d, &l->w, &q->w, err) || f32_copy(d, &l->bias, &q->b, err) ? -1 : 0;
}

#define QLAYER_LINEARS(L) {&(L)->q, &(L)->k, &(L)->v, &(L)->o, &(L)->gate, &(L)->up, &(L)->down}

int lmb_qlayer_load(lmb_qdev *d, const lmb_model *m, int l, lmb_qlayer *L, lmb_error *err) {
    memset(L, 0, sizeof *L);
    const lmb_layer_weights *s = &m->w.layers[l];
    if (f32_copy(d, &s->attn_norm, &L->attn_norm, err) || f32_copy(d, &s->ffn_norm, &L->ffn_norm, err) ||
        linear_copy(d, &s->q, &L->q, err) || linear_copy(d, &s->k, &L->k, err) || linear_copy(d, &s->v, &L->v, err) ||
        linear_copy(d, &s->o, &L->o, err) || linear_copy(d, &s->gate, &L->gate, err) ||
        linear_copy(d, &s->up, &L->up, err) || linear_copy(d, &s->down, &L->down, err)) {
        lmb_qlayer_free(d, L);
        return lmb_error_prefix(err, "layer %d", l);
    }
    return 0;
}

void lmb_qlayer_free(lmb_qdev *d, lmb_qlayer *L) {
    lmb_qlinear *ls[] = QLAYER_LINEARS(L);
    for (size_t i = 0; i < sizeof ls / sizeof ls[0]; i++) {
        if (ls[i]->w) d->ops->release(d, ls[i]->w);
        if (ls[i]->b) d->ops->release(d, ls[i]->b);
    }
    if (L->attn_norm) d->ops->release(d, L->attn_norm);
    if (L->ffn_norm) d->ops->release(d, L->ffn_norm);
    memset(L, 0, sizeof *L);
}

static float *host_copy(lmb_qdev *d, const float *p, size_t n) {
    float *h = NULL;
    if (p && (h = malloc(sizeof(float) * (n ? n : 1)))) d->ops->get(d, h, p, n);
    else if (p) lmb_qdev_fail(d, "out of host memory for %zu floats", n);
    return h;
}

int lmb_qlayer_to_host(lmb_qdev *d, const lmb_qlayer *L, lmb_qlayer *out, lmb_error *err) {
    *out = *L;
    if (d->host_memory) return 0;
    const lmb_qlinear *src[] = QLAYER_LINEARS(L);
    lmb_qlinear *dst[] = QLAYER_LINEARS(out);
    size_t H = (size_t)L->q.in;
    out->attn_norm = host_copy(d, L->attn_norm, H);
    out->ffn_norm = host_copy(d, L->ffn_norm, H);
    for (size_t i = 0; i < sizeof src / sizeof src[0]; i++) {
        dst[i]->w = host_copy(d, src[i]->w, (size_t)src[i]->out * src[i]->in);
        dst[i]->b = host_copy(d, src[i]->b, (size_t)src[i]->out);
    }
    if (lmb_qdev_status(d, err)) {
        lmb_qlayer_free_host(d, out);
        return -1;
    }
    return 0;
}

void lmb_qlayer_free_host(lmb_qdev *d, lmb_qlayer *H) {
    if (d->host_memory) return; /* the layer itself */
    lmb_qlinear *ls[] = QLAYER_LINEARS(H);
    for (size_t i = 0; i < sizeof ls / sizeof ls[0]; i++) free(ls[i]->w), free(ls[i]->b);
    free(H->attn_norm);
    free(H->ffn_norm);
    memset(H, 0, sizeof *H);
}

/* ---- the forward ------------------------------------------------------------------------------------- */

int lmb_calib_fwd_init(lmb_calib_fwd *f, lmb_qdev *d, const lmb_model *m, const lmb_calib_set *c, lmb_error *err) {
    memset(f, 0, sizeof *f);
    f->d = d;
    f->cfg = m->cfg;
    const lmb_model_config *g = &f->cfg;
    f->n_seqs = c->n_seqs;
    f->seqlen = c->seqlen;
    f->N = c->n_seqs * c->seqlen;
    size_t N = (size_t)f->N, H = (size_t)g->hidden, Q = (size_t)g->n_heads * g->head_dim,
           KV = (size_t)g->n_kv_heads * g->head_dim, F = (size_t)g->ffn, T = (size_t)f->seqlen;
    size_t per_seq = T * sizeof(float) * (2 * Q + 2 * KV + 2 * F + H);
    size_t budget = d->scratch_bytes;
    const char *env = getenv("LMB_QUANT_SCRATCH_MB"); /* tests: force small chunks */
    if (env && *env) budget = (size_t)strtoull(env, NULL, 10) << 20;
    size_t cs = budget / per_seq;
    f->chunk_seqs = cs < 1 ? 1 : cs > (size_t)f->n_seqs ? f->n_seqs : (int)cs;
    size_t C = (size_t)f->chunk_seqs * T;
    float **whole[] = {&f->x, &f->in_qkv, &f->in_o, &f->in_gu, &f->in_down, &f->ref};
    size_t whole_n[] = {N * H, N * H, N * Q, N * H, N * F, N * H};
    float **chunk[] = {&f->q, &f->k, &f->v, &f->att, &f->gate, &f->up, &f->h};
    size_t chunk_n[] = {C * Q, C * KV, C * KV, C * Q, C * F, C * F, C * H};
    for (size_t i = 0; i < 6 && !d->failed; i++) *whole[i] = d->ops->alloc(d, whole_n[i]);
    for (size_t i = 0; i < 7 && !d->failed; i++) *chunk[i] = d->ops->alloc(d, chunk_n[i]);
    f->inv_freq = malloc(sizeof(double) * (size_t)(g->head_dim / 2 + 1));
    /* embedding rows are converted straight into x on the host, through a chunk buffer otherwise */
    float *rows = d->host_memory ? NULL : malloc(sizeof(float) * C * H);
    if (d->failed || !f->inv_freq || (!d->host_memory && !rows)) {
        free(rows);
        if (!lmb_qdev_status(d, err)) lmb_fail(err, "out of host memory");
        lmb_calib_fwd_free(f);
        return lmb_error_prefix(err, "the calibration activations (%zu tokens: %.2f GiB on the %s, plus %.2f GiB "
                                     "of scratch for %d sequences at a time): lower --calib-samples or --calib-seqlen",
                                N, N * (4 * H + Q + F) * 4.0 / (1 << 30), d->ops->name,
                                per_seq * (double)f->chunk_seqs / (1 << 30), f->chunk_seqs);
    }
    lmb_rope_inv_freq(g, f->inv_freq);
    const lmb_tensor *e = &m->w.embed;
    size_t row_bytes = H * lmb_dtype_size(e->dtype);
    for (size_t t0 = 0; t0 < N; t0 += C) { /* C tokens at a time */
        size_t n = N - t0 < C ? N - t0 : C;
        float *dst = rows ? rows : f->x + t0 * H;
        for (size_t t = 0; t < n; t++) {
            int32_t id = c->tokens[t0 + t];
            if (id < 0 || id >= g->vocab) {
                free(rows);
                lmb_calib_fwd_free(f);
                return lmb_fail(err, "calibration token id %d is outside the vocabulary (%d)", id, g->vocab);
            }
            lmb_to_f32(dst + t * H, (const unsigned char *)e->data + (size_t)id * row_bytes, e->dtype, H);
        }
        if (rows) d->ops->put(d, f->x + t0 * H, rows, n * H);
    }
    free(rows);
    return lmb_qdev_status(d, err);
}

void lmb_calib_fwd_free(lmb_calib_fwd *f) {
    float *bufs[] = {f->x, f->in_qkv, f->in_o, f->in_gu, f->in_down, f->ref, f->q,
                     f->k, f->v,      f->att,  f->gate,  f->up,      f->h};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) f->d->ops->release(f->d, bufs[i]);
    free(f->inv_freq);
    memset(f, 0, sizeof *f);
}

static void linear(lmb_calib_fwd *f, float *y, const float *x, const lmb_qlinear *l, int rows) {
    f->d->ops->matmul(f->d, y, x, l->w, l->b, rows, l->out, l->in);
}

void lmb_calib_attn_block(lmb_calib_fwd *f, const lmb_qlayer *L, const float *xn, float *out, float *att_out,
                          int n_seqs) {
    const lmb_model_config *g = &f->cfg;
    lmb_qdev *d = f->d;
    int rows = n_seqs * f->seqlen;
    float *att = att_out ? att_out : f->att;
    linear(f, f->q, xn, &L->q, rows);
    linear(f, f->k, xn, &L->k, rows);
    linear(f, f->v, xn, &L->v, rows);
    d->ops->rope(d, f->q, f->k, rows, f->seqlen, g->n_heads, g->n_kv_heads, g->head_dim, f->inv_freq);
    d->ops->attention(d, att, f->q, f->k, f->v, n_seqs, f->seqlen, g->n_heads, g->n_kv_heads, g->head_dim);
    linear(f, out, att, &L->o, rows);
}

void lmb_calib_mlp_block(lmb_calib_fwd *f, const lmb_qlayer *L, const float *xn, float *out, float *act_out,
                         int n_seqs) {
    int rows = n_seqs * f->seqlen;
    float *act = act_out ? act_out : f->gate;
    linear(f, f->gate, xn, &L->gate, rows);
    linear(f, f->up, xn, &L->up, rows);
    f->d->ops->silu_mul(f->d, act, f->gate, f->up, rows, f->cfg.ffn);
    linear(f, out, act, &L->down, rows);
}

int lmb_calib_fwd_layer(lmb_calib_fwd *f, const lmb_qlayer *L, lmb_error *err) {
    const lmb_model_config *g = &f->cfg;
    lmb_qdev *d = f->d;
    size_t H = (size_t)g->hidden, Q = (size_t)g->n_heads * g->head_dim, F = (size_t)g->ffn;
    for (int s0 = 0; s0 < f->n_seqs; s0 += f->chunk_seqs) {
        int ns = f->n_seqs - s0 < f->chunk_seqs ? f->n_seqs - s0 : f->chunk_seqs, rows = ns * f->seqlen;
        size_t r0 = (size_t)s0 * f->seqlen;
        float *x = f->x + r0 * H, *in_qkv = f->in_qkv + r0 * H, *in_gu = f->in_gu + r0 * H;
        d->ops->rmsnorm(d, in_qkv, x, L->attn_norm, rows, g->hidden, (float)g->rms_eps);
        lmb_calib_attn_block(f, L, in_qkv, f->h, f->in_o + r0 * Q, ns);
        d->ops->add(d, x, f->h, (size_t)rows * H);
        d->ops->rmsnorm(d, in_gu, x, L->ffn_norm, rows, g->hidden, (float)g->rms_eps);
        lmb_calib_mlp_block(f, L, in_gu, f->h, f->in_down + r0 * F, ns);
        d->ops->add(d, x, f->h, (size_t)rows * H);
    }
    return lmb_qdev_status(d, err);
}
