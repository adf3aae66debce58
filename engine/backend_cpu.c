/* backend_cpu.c — the CPU reference backend: fp32 math with OpenMP, weights converted once to fp32.
 *
 * The forward reads like the model, top to bottom (llama2.c's run.c is the model for this file): embedding,
 * then per layer RMSNorm -> q/k/v -> RoPE -> paged KV write -> causal GQA attention -> o_proj + residual ->
 * RMSNorm -> SiLU-gated MLP + residual; final norm and head only for the rows whose logits are needed.
 * The KV cache is fp32 here (kv_bits 16), or int8/int4 with per-token scales (kv_bits 8/4, quantized as it is
 * written, dequantized as attention reads it), laid out as in kernels.h (lmb_kv_pool).  AWQ linears are
 * dequantized to fp32 at load, so the CPU backend is the reference for the W4A16 kernels.
 */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/kernels.h"
#include "backend.h"
#include "kv_memory.h"
#include "rope.h"
#include "sampler.h"

typedef struct cpu_linear {
    float *w; /* [out, in] */
    float *b; /* [out] or NULL */
    int in, out;
} cpu_linear;

typedef struct cpu_layer {
    float *attn_norm, *ffn_norm;
    cpu_linear q, k, v, o, gate, up, down;
} cpu_layer;

typedef struct cpu_backend {
    lmb_backend base;
    lmb_model_config cfg;
    float *embed, *final_norm;
    cpu_linear head;
    bool head_is_embed;
    cpu_layer *layers;
    double *inv_freq;
    size_t weight_bytes;
    lmb_kv_pool kv;
    float *kv_fixed; /* offline KV scales [n_layers][2][n_kv][2], or NULL */
    void (*kv_tap)(void *user, int layer, const float *k, const float *v, int n_tokens);
    void *kv_tap_user;
    /* per-forward scratch, grown to the largest batch seen */
    int cap_tokens, cap_ctx, cap_logits;
    float *x, *xn, *q, *k, *v, *att, *gate, *up, *lrows, *att_scratch, *sample_scratch;
} cpu_backend;

static int to_f32(const lmb_tensor *t, float **out, size_t *bytes, lmb_error *err) {
    size_t n = (size_t)lmb_tensor_numel(t);
    *out = malloc(sizeof(float) * (n ? n : 1));
    if (!*out) return lmb_fail(err, "out of memory converting %s (%zu values) to fp32", t->name, n);
    if (t->dtype != LMB_F32 && t->dtype != LMB_F16 && t->dtype != LMB_BF16) {
        free(*out);
        *out = NULL;
        return lmb_fail(err, "tensor %s has dtype %s; the CPU backend reads F32, F16 or BF16", t->name,
                        lmb_dtype_name(t->dtype));
    }
    lmb_to_f32(*out, t->data, t->dtype, n);
    *bytes += sizeof(float) * n;
    return 0;
}

static int linear_load(const lmb_linear *l, cpu_linear *c, size_t *bytes, lmb_error *err) {
    c->in = l->in;
    c->out = l->out;
    if (lmb_linear_quantized(l)) { /* AWQ: dequantized once here (the W4A16 reference is dequant + fp32 GEMM) */
        size_t n = (size_t)l->out * (size_t)l->in;
        if (!(c->w = malloc(sizeof(float) * (n ? n : 1))))
            return lmb_fail(err, "out of memory dequantizing %s (%zu values)", l->qweight.name, n);
        lmb_cpu_awq_dequant(c->w, l->qweight.data, l->qzeros.data, l->scales.data, l->in, l->out,
                            (int)(l->in / l->scales.shape[0]));
        *bytes += sizeof(float) * n;
    } else if (to_f32(&l->w, &c->w, bytes, err)) {
        return -1;
    }
    if (lmb_tensor_present(&l->bias) && to_f32(&l->bias, &c->b, bytes, err)) return -1;
    return 0;
}

static void linear_free(cpu_linear *c) {
    free(c->w);
    free(c->b);
}

static void cpu_destroy(lmb_backend *b) {
    cpu_backend *c = (cpu_backend *)b;
    if (!c) return;
    if (c->layers)
        for (int l = 0; l < c->cfg.n_layers; l++) {
            cpu_layer *L = &c->layers[l];
            free(L->attn_norm);
            free(L->ffn_norm);
            linear_free(&L->q), linear_free(&L->k), linear_free(&L->v), linear_free(&L->o);
            linear_free(&L->gate), linear_free(&L->up), linear_free(&L->down);
        }
    free(c->layers);
    if (!c->head_is_embed) linear_free(&c->head);
    free(c->embed);
    free(c->final_norm);
    free(c->inv_freq);
    free(c->kv.pool);
    free(c->kv.qpool);
    free(c->kv_fixed);
    float *bufs[] = {c->x, c->xn, c->q, c->k, c->v, c->att, c->gate, c->up, c->lrows, c->att_scratch,
                     c->sample_scratch};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(c);
}

static size_t cpu_kv_block_bytes(lmb_backend *b, int block_size) {
    cpu_backend *c = (cpu_backend *)b;
    return lmb_kv_block_bytes(&c->cfg, b->kv_bits, block_size);
}

static int cpu_kv_budget(lmb_backend *b, const lmb_engine_config *cfg, size_t *bytes, lmb_error *err) {
    double mb = cfg->kv_cache_mb > 0 ? cfg->kv_cache_mb : 512;
    *bytes = (size_t)(mb * 1024 * 1024);
    return 0;
}

static int cpu_kv_alloc(lmb_backend *b, int n_blocks, int block_size, lmb_error *err) {
    cpu_backend *c = (cpu_backend *)b;
    c->kv.block_size = block_size;
    c->kv.n_layers = c->cfg.n_layers;
    c->kv.n_kv = c->cfg.n_kv_heads;
    c->kv.hd = c->cfg.head_dim;
    c->kv.bits = b->kv_bits;
    c->kv.fixed = c->kv_fixed;
    size_t bytes = cpu_kv_block_bytes(b, block_size) * (size_t)n_blocks;
    free(c->kv.pool);
    free(c->kv.qpool);
    c->kv.pool = NULL;
    c->kv.qpool = NULL;
    if (lmb_kv_is_quantized(b->kv_bits)) {
        c->kv.tile_bytes = lmb_kv_tile_bytes(c->kv.hd, b->kv_bits, block_size);
        c->kv.qpool = calloc(1, bytes ? bytes : 1);
    } else {
        c->kv.block_stride = cpu_kv_block_bytes(b, block_size) / sizeof(float);
        c->kv.pool = malloc(bytes ? bytes : 1);
    }
    if (!c->kv.pool && !c->kv.qpool) return lmb_fail(err, "out of memory for %d KV blocks", n_blocks);
    return 0;
}

static int grow(float **p, size_t n, lmb_error *err) {
    float *np = realloc(*p, sizeof(float) * (n ? n : 1));
    if (!np) return lmb_fail(err, "out of memory for %zu floats of scratch", n);
    *p = np;
    return 0;
}

static int ensure_scratch(cpu_backend *c, int T, int max_ctx, int n_logits, lmb_error *err) {
    const lmb_model_config *m = &c->cfg;
    if (T > c->cap_tokens) {
        size_t t = (size_t)T;
        if (grow(&c->x, t * m->hidden, err) || grow(&c->xn, t * m->hidden, err) ||
            grow(&c->q, t * m->n_heads * m->head_dim, err) || grow(&c->k, t * m->n_kv_heads * m->head_dim, err) ||
            grow(&c->v, t * m->n_kv_heads * m->head_dim, err) || grow(&c->att, t * m->n_heads * m->head_dim, err) ||
            grow(&c->gate, t * m->ffn, err) || grow(&c->up, t * m->ffn, err))
            return -1;
        c->cap_tokens = T;
    }
    if (max_ctx > c->cap_ctx) {
        if (grow(&c->att_scratch, lmb_cpu_attention_scratch(max_ctx), err)) return -1;
        c->cap_ctx = max_ctx;
    }
    if (n_logits > c->cap_logits) {
        if (grow(&c->lrows, (size_t)n_logits * m->vocab, err)) return -1;
        c->cap_logits = n_logits;
    }
    if (!c->sample_scratch && grow(&c->sample_scratch, (size_t)omp_get_max_threads() * 2 * m->vocab, err))
        return -1;
    return 0;
}

static void linear(float *y, const float *x, const cpu_linear *l, int T) {
    lmb_cpu_matmul(y, x, l->w, l->b, T, l->out, l->in);
}

static int cpu_forward(lmb_backend *b, const lmb_batch *bt, float *logits, int32_t *tokens, lmb_error *err) {
    cpu_backend *c = (cpu_backend *)b;
    const lmb_model_config *m = &c->cfg;
    int T = bt->n_tokens, H = m->hidden, hd = m->head_dim;
    int max_ctx = 1;
    for (int s = 0; s < bt->n_seqs; s++)
        if (bt->ctx_len[s] > max_ctx) max_ctx = bt->ctx_len[s];
    if (ensure_scratch(c, T, max_ctx, bt->n_logits, err)) return -1;
    float scale = 1.0f / sqrtf((float)hd);

    lmb_cpu_embed(c->x, c->embed, bt->tokens, T, H);
    for (int l = 0; l < m->n_layers; l++) {
        const cpu_layer *L = &c->layers[l];
        /* attention block */
        lmb_cpu_rmsnorm(c->xn, c->x, L->attn_norm, T, H, (float)m->rms_eps);
        linear(c->q, c->xn, &L->q, T);
        linear(c->k, c->xn, &L->k, T);
        linear(c->v, c->xn, &L->v, T);
        lmb_cpu_rope(c->q, c->k, bt->positions, T, m->n_heads, m->n_kv_heads, hd, c->inv_freq);
        if (c->kv_tap) c->kv_tap(c->kv_tap_user, l, c->k, c->v, T);
        lmb_cpu_kv_write(&c->kv, l, c->k, c->v, bt->n_seqs, bt->q_start, bt->positions, bt->block_tables,
                         bt->max_blocks);
        lmb_cpu_attention(c->att, c->q, &c->kv, l, m->n_heads, bt->n_seqs, bt->q_start, bt->positions,
                          bt->block_tables, bt->max_blocks, scale, c->att_scratch, c->cap_ctx);
        linear(c->xn, c->att, &L->o, T);
        for (size_t i = 0; i < (size_t)T * H; i++) c->x[i] += c->xn[i];
        /* MLP block */
        lmb_cpu_rmsnorm(c->xn, c->x, L->ffn_norm, T, H, (float)m->rms_eps);
        linear(c->gate, c->xn, &L->gate, T);
        linear(c->up, c->xn, &L->up, T);
        lmb_cpu_silu_mul(c->gate, c->gate, c->up, T, m->ffn);
        linear(c->xn, c->gate, &L->down, T);
        for (size_t i = 0; i < (size_t)T * H; i++) c->x[i] += c->xn[i];
    }
    /* final norm + head, only for the rows that need logits */
    for (int r = 0; r < bt->n_logits; r++)
        memcpy(c->xn + (size_t)r * H, c->x + (size_t)bt->logit_rows[r] * H, sizeof(float) * (size_t)H);
    lmb_cpu_rmsnorm(c->xn, c->xn, c->final_norm, bt->n_logits, H, (float)m->rms_eps);
    float *out = bt->sample ? c->lrows : logits;
    linear(out, c->xn, &c->head, bt->n_logits);
    if (bt->sample) {
#pragma omp parallel for schedule(dynamic, 1)
        for (int r = 0; r < bt->n_logits; r++)
            tokens[r] = lmb_sample_row_cpu(&bt->sample[r], out + (size_t)r * m->vocab, m->vocab,
                                           c->sample_scratch + (size_t)omp_get_thread_num() * 2 * m->vocab);
    }
    return 0;
}

static void cpu_stats(lmb_backend *b, lmb_engine_stats *s) {
    cpu_backend *c = (cpu_backend *)b;
    s->weight_bytes = c->weight_bytes;
    s->peak_device_bytes = 0;
}

static const lmb_backend_ops cpu_ops = {
    .name = "cpu",
    .kv_block_bytes = cpu_kv_block_bytes,
    .kv_budget = cpu_kv_budget,
    .kv_alloc = cpu_kv_alloc,
    .forward = cpu_forward,
    .stats = cpu_stats,
    .destroy = cpu_destroy,
};

int lmb_backend_cpu_create(const lmb_model *model, const lmb_engine_config *cfg, lmb_backend **out,
                           lmb_error *err) {
    *out = NULL;
    if (cfg->threads > 0) omp_set_num_threads(cfg->threads);
    if (model->random_weights)
        return lmb_fail(err, "%s has random weights generated on the GPU: use --backend cuda", model->dir);
    cpu_backend *c = calloc(1, sizeof *c);
    if (!c) return lmb_fail(err, "out of memory");
    c->base.ops = &cpu_ops;
    c->base.model = model;
    c->base.kv_bits = cfg->kv_bits == 16 ? 32 : cfg->kv_bits; /* the reference keeps fp32 where the GPU has fp16 */
    c->cfg = model->cfg;
    c->kv_tap = cfg->kv_tap;
    c->kv_tap_user = cfg->kv_tap_user;
    const lmb_model_config *m = &c->cfg;
    const lmb_weights *w = &model->w;
    if (model->cfg.head_dim > 1024) {
        free(c);
        return lmb_fail(err, "head_dim %d is larger than the CPU backend's limit of 1024", model->cfg.head_dim);
    }
    if (cfg->kv_bits == 4 && model->cfg.head_dim % 2) {
        free(c);
        return lmb_fail(err, "int4 KV cache needs an even head_dim, the model has %d", model->cfg.head_dim);
    }
    if (cfg->kv_fixed) { /* offline scales: copied, the caller's array is only borrowed during open */
        size_t n = (size_t)m->n_layers * 2 * (size_t)m->n_kv_heads * 2;
        if (!(c->kv_fixed = malloc(sizeof(float) * n))) {
            free(c);
            return lmb_fail(err, "out of memory");
        }
        memcpy(c->kv_fixed, cfg->kv_fixed, sizeof(float) * n);
    }
    c->layers = calloc((size_t)m->n_layers, sizeof *c->layers);
    c->inv_freq = malloc(sizeof(double) * (size_t)(m->head_dim / 2 + 1));
    if (!c->layers || !c->inv_freq) {
        cpu_destroy(&c->base);
        return lmb_fail(err, "out of memory");
    }
    lmb_rope_inv_freq(m, c->inv_freq);
    size_t *wb = &c->weight_bytes;
    if (to_f32(&w->embed, &c->embed, wb, err) || to_f32(&w->final_norm, &c->final_norm, wb, err)) goto fail;
    c->head_is_embed = m->tied_embeddings;
    if (c->head_is_embed) {
        c->head = (cpu_linear){.w = c->embed, .in = m->hidden, .out = m->vocab};
    } else if (linear_load(&w->head, &c->head, wb, err)) {
        goto fail;
    }
    for (int l = 0; l < m->n_layers; l++) {
        const lmb_layer_weights *src = &w->layers[l];
        cpu_layer *L = &c->layers[l];
        if (to_f32(&src->attn_norm, &L->attn_norm, wb, err) || to_f32(&src->ffn_norm, &L->ffn_norm, wb, err) ||
            linear_load(&src->q, &L->q, wb, err) || linear_load(&src->k, &L->k, wb, err) ||
            linear_load(&src->v, &L->v, wb, err) || linear_load(&src->o, &L->o, wb, err) ||
            linear_load(&src->gate, &L->gate, wb, err) || linear_load(&src->up, &L->up, wb, err) ||
            linear_load(&src->down, &L->down, wb, err)) {
            lmb_error_prefix(err, "layer %d", l);
            goto fail;
        }
    }
    *out = &c->base;
    return 0;
fail:
    cpu_destroy(&c->base);
    return -1;
}
