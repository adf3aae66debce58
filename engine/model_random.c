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
