/* model_random.c — models of real shapes without checkpoints (see lmb_model_random in model.h).  The GPU
 * machine has no weights to download, so speed is measured on random weights of the published shapes;
 * the tensor views here carry shapes only (data NULL) for the backend to fill. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

typedef struct shape {
    const char *name;
    lmb_arch arch;
    int hidden, layers, heads, kv_heads, ffn, vocab, max_pos;
    double theta, eps;
    bool bias;
} shape;

static const shape shapes[] = {
    {"llama2-7b", LMB_ARCH_LLAMA, 4096, 32, 32, 32, 11008, 32000, 4096, 10000, 1e-5, false},
    {"llama2-13b", LMB_ARCH_LLAMA, 5120, 40, 40, 40, 13824, 32000, 4096, 10000, 1e-5, false},
    {"llama3-8b", LMB_ARCH_LLAMA, 4096, 32, 32, 8, 14336, 128256, 8192, 500000, 1e-5, false},
    {"mistral-7b", LMB_ARCH_MISTRAL, 4096, 32, 32, 8, 14336, 32000, 8192, 1000000, 1e-5, false},
    {"qwen2-7b", LMB_ARCH_QWEN2, 3584, 28, 28, 4, 18944, 152064, 8192, 1000000, 1e-6, true},
    {"tinyllama-1.1b", LMB_ARCH_LLAMA, 2048, 22, 32, 4, 5632, 32000, 2048, 10000, 1e-5, false},
};

const char *lmb_model_random_shapes(void) {
    return "llama2-7b, llama2-13b, llama3-8b, mistral-7b, qwen2-7b, tinyllama-1.1b";
}

static lmb_tensor view(lmb_dtype dt, int64_t rows, int64_t cols) {
    lmb_tensor t = {.name = "random", .dtype = dt, .ndim = cols ? 2 : 1, .shape = {rows, cols}};
    t.nbytes = (size_t)(rows * (cols ? cols : 1)) * lmb_dtype_size(dt);
    return t;
}

static lmb_linear linear(lmb_dtype dt, int out, int in, bool bias) {
    lmb_linear l = {.in = in, .out = out, .w = view(dt, out, in)};
    if (bias) l.bias = view(dt, out, 0);
    return l;
}

int lmb_model_random(const char *name, lmb_dtype dtype, lmb_model **out, lmb_error *err) {
    *out = NULL;
    const shape *s = NULL;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        if (strcmp(shapes[i].name, name) == 0) s = &shapes[i];
    if (!s) return lmb_fail(err, "unknown model shape \"%s\" (known: %s)", name, lmb_model_random_shapes());
    if (dtype != LMB_F16 && dtype != LMB_BF16) return lmb_fail(err, "random weights are fp16 or bf16");
    lmb_model *m = calloc(1, sizeof *m);
    if (!m) return lmb_fail(err, "out of memory");
    m->random_weights = true;
    snprintf(m->dir, sizeof m->dir, "random:%s", name);
    lmb_model_config *c = &m->cfg;
    c->arch = s->arch;
    snprintf(c->arch_name, sizeof c->arch_name, "%s (random weights)", name);
    c->hidden = s->hidden, c->n_layers = s->layers, c->n_heads = s->heads, c->n_kv_heads = s->kv_heads;
    c->head_dim = s->hidden / s->heads, c->ffn = s->ffn, c->vocab = s->vocab, c->max_pos = s->max_pos;
    c->rms_eps = s->eps, c->qkv_bias = s->bias, c->dtype = dtype;
    c->rope = (lmb_rope){.type = LMB_ROPE_DEFAULT, .theta = s->theta, .factor = 1};
    c->bos_id = 1, c->eos_ids[0] = 2, c->n_eos = 1;
    lmb_weights *w = &m->w;
    int H = c->hidden, kvd = c->n_kv_heads * c->head_dim;
    w->embed = view(dtype, c->vocab, H);
    w->final_norm = view(dtype, H, 0);
    w->head = linear(dtype, c->vocab, H, false);
    w->layers = calloc((size_t)c->n_layers, sizeof *w->layers);
    if (!w->layers) {
        free(m);
        return lmb_fail(err, "out of memory");
    }
    for (int l = 0; l < c->n_layers; l++) {
        lmb_layer_weights *L = &w->layers[l];
        L->attn_norm = view(dtype, H, 0);
        L->ffn_norm = view(dtype, H, 0);
        L->q = linear(dtype, H, H, s->bias);
        L->k = linear(dtype, kvd, H, s->bias);
        L->v = linear(dtype, kvd, H, s->bias);
        L->o = linear(dtype, H, H, false);
        L->gate = linear(dtype, c->ffn, H, false);
        L->up = linear(dtype, c->ffn, H, false);
        L->down = linear(dtype, H, c->ffn, false);
    }
    *out = m;
    return 0;
}

/* Linear views in AutoAWQ's GEMM layout, no data (the CUDA backend generates the packed words). */
static void awq_view(lmb_linear *l, int group) {
    lmb_tensor bias = l->bias;
    *l = (lmb_linear){.in = l->in, .out = l->out};
    l->qweight = view(LMB_I32, l->in, l->out / 8);
    l->qzeros = view(LMB_I32, l->in / group, l->out / 8);
    l->scales = view(LMB_F16, l->in / group, l->out);
    if (lmb_tensor_present(&bias) || bias.ndim) l->bias = view(LMB_F16, l->out, 0);
}

int lmb_model_random_awq(lmb_model *m, int group, lmb_error *err) {
    lmb_model_config *c = &m->cfg;
    if (!m->random_weights) return lmb_fail(err, "lmb_model_random_awq takes a model made by lmb_model_random");
    if (group < 8 || c->hidden % group || c->ffn % group || (c->n_heads * c->head_dim) % group)
        return lmb_fail(err, "%s: AWQ group size %d does not divide its widths", m->dir, group);
    c->quant = (lmb_quant_config){.awq = true, .bits = 4, .group_size = group};
    c->dtype = LMB_F16;
    snprintf(m->dir + strlen(m->dir), sizeof m->dir - strlen(m->dir), " (AWQ W4A16, group %d)", group);
    lmb_weights *w = &m->w;
    w->embed.dtype = w->final_norm.dtype = LMB_F16;
    w->embed.nbytes = (size_t)lmb_tensor_numel(&w->embed) * 2;
    w->final_norm.nbytes = (size_t)lmb_tensor_numel(&w->final_norm) * 2;
    if (!c->tied_embeddings) w->head.w = view(LMB_F16, c->vocab, c->hidden);
    for (int l = 0; l < c->n_layers; l++) {
        lmb_layer_weights *L = &w->layers[l];
        L->attn_norm = view(LMB_F16, c->hidden, 0);
        L->ffn_norm = view(LMB_F16, c->hidden, 0);
        lmb_linear *ls[] = {&L->q, &L->k, &L->v, &L->o, &L->gate, &L->up, &L->down};
        for (int i = 0; i < 7; i++) awq_view(ls[i], group);
    }
    return 0;
}
