/* backend_cuda_step.c — the batch-1 decode step of an all-AWQ model as one persistent kernel (kernels_cuda.h:
 * lmb_cuda_w4_step): the layer array it walks, its workspace, and when the forward uses it.  See
 * backend_cuda_step.h.
 */
#include "backend_cuda_step.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_awq_cuda.h"

struct cuda_step {
    lmb_w4_step_layer *layers; /* on the device */
    void *ws;                  /* partials, tickets, the grid barrier's two words */
    unsigned long long *trace; /* LMB_W4_STEP_TRACE=1: phase times of the last step, printed at exit */
    lmb_w4_step_args args;     /* all but the per-step metadata pointers */
};

static bool aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

/* LMB_W4_STEP: "auto" = where it applies, "0" = never, "1" = required (a refusal is an error: tests); unset = the
 * default below. */
#define STEP_DEFAULT 0 /* off until a GPU has run it: it was written and emulator-checked in a session without one */
static int step_mode(void) {
    const char *e = getenv("LMB_W4_STEP");
    if (!e) return STEP_DEFAULT ? -1 : 0;
    return strcmp(e, "auto") == 0 ? -1 : strcmp(e, "0") == 0 ? 0 : 1;
}

/* Why the step kernel cannot run this model on this backend, or NULL; fills the layer array (host) as it goes. */
static const char *why_not(const cuda_backend *c, lmb_w4_step_layer *ls) {
    const lmb_model_config *m = &c->cfg;
    if (!c->awq) return "not an AWQ model";
    if (c->dt != LMB_CUDA_F16 || c->kv_bits != 16) return "needs fp16 activations and a 16-bit KV cache";
    if (c->batch_invariant) return "--batch-invariant (its sums differ from the batched path's)";
    int group = 0;
    for (int l = 0; l < m->n_layers; l++) {
        const cuda_layer *L = &c->layers[l];
        if (L->bqkv || L->bo || L->bgu || L->bd) return "linear biases";
        void *w[4] = {L->wqkv, L->wo, L->wgu, L->wd};
        lmb_w4_step_linear *d[4] = {&ls[l].qkv, &ls[l].o, &ls[l].gu, &ls[l].down};
        for (int i = 0; i < 4; i++) {
            if (!lmb_cuda_awq_owns(c, w[i])) return "a dense linear";
            const lmb_cuda_awq_linear *a = w[i];
            if (!group) group = a->group;
            if (a->group != group) return "linears of different groups";
            if (!aligned16(a->qweight) || !aligned16(a->zeros) || !aligned16(a->scales)) return "unaligned weights";
            *d[i] = (lmb_w4_step_linear){a->qweight, a->zeros, a->scales};
        }
        ls[l].attn_norm = L->attn_norm, ls[l].ffn_norm = L->ffn_norm;
        ls[l].k_cache = (unsigned char *)c->kv + (2 * (size_t)l) * c->kv_layer_bytes;
        ls[l].v_cache = (unsigned char *)c->kv + (2 * (size_t)l + 1) * c->kv_layer_bytes;
    }
    return NULL;
}

int lmb_cuda_step_init(cuda_backend *c, lmb_error *err) {
    const int mode = step_mode();
    if (mode == 0) return 0;
    const lmb_model_config *m = &c->cfg;
    lmb_w4_step_layer *ls = calloc((size_t)m->n_layers, sizeof *ls);
    if (!ls) return lmb_fail(err, "out of memory");
    const char *why = why_not(c, ls);
    const int max_splits = (c->max_blocks * c->block_size + 63) / 64;
    const size_t part = sizeof(float) * (size_t)m->n_heads * max_splits * (m->head_dim + 2),
                 ws_bytes = part + sizeof(unsigned) * ((size_t)m->n_heads + 2);
    lmb_w4_step_args a = {NULL, m->n_layers, m->hidden, m->n_heads, m->n_kv_heads, m->head_dim, m->ffn,
                          why ? 0 : ((const lmb_cuda_awq_linear *)c->layers[0].wqkv)->group, (float)m->rms_eps,
                          1.0f / sqrtf((float)m->head_dim), c->resid, c->qkv, c->attn, c->act, NULL, NULL, NULL, NULL,
                          c->max_blocks, c->block_size, c->inv_freq, (float *)1, (unsigned *)1, (unsigned *)1,
                          max_splits};
    if (!why) why = lmb_cuda_w4_step_unsupported(&a); /* shapes and the device (the workspace is checked below) */
    if (why) {
        free(ls);
        return mode == 1 ? lmb_fail(err, "LMB_W4_STEP=1: the decode step kernel cannot run: %s", why) : 0;
    }
    struct cuda_step *st = calloc(1, sizeof *st);
    if (!st) {
        free(ls);
        return lmb_fail(err, "out of memory");
    }
    c->step = st;
    int rc = lmb_cuda_dev_alloc((void **)&st->layers, sizeof *ls * (size_t)m->n_layers, err);
    if (!rc) rc = lmb_cuda_dev_alloc(&st->ws, ws_bytes, err);
    if (!rc && cudaMemcpy(st->layers, ls, sizeof *ls * (size_t)m->n_layers, cudaMemcpyHostToDevice) != cudaSuccess)
        rc = lmb_fail(err, "copying the decode step's layer array failed");
    if (!rc && cudaMemset(st->ws, 0, ws_bytes) != cudaSuccess) rc = lmb_fail(err, "clearing its workspace failed");
    free(ls);
    if (rc) return -1;
    a.layers = st->layers;
    a.partial = st->ws;
    a.tickets = (unsigned *)((unsigned char *)st->ws + part);
    a.sync = a.tickets + m->n_heads;
    if (getenv("LMB_W4_STEP_TRACE") &&
        lmb_cuda_dev_alloc((void **)&st->trace, sizeof(unsigned long long) * (1 + 5 * (size_t)m->n_layers), err))
        return -1;
    a.trace = st->trace;
    st->args = a;
    return 0;
}

bool lmb_cuda_step_applies(const cuda_backend *c, int T, int n_dec, int n_tiles) {
    return c->step && !c->prof && T == 1 && n_dec == 1 && n_tiles == 0;
}

int lmb_cuda_step_enqueue(cuda_backend *c, const int32_t *positions, const int32_t *tok_seq, const int32_t *tables,
                          const int64_t *slots, lmb_error *err) {
    lmb_w4_step_args a = c->step->args;
    a.positions = positions, a.tok_seq = tok_seq, a.block_tables = tables, a.slots = slots;
    CUDA_CHECK(lmb_cuda_w4_step(&a, (lmb_stream)c->stream));
    return 0;
}

/* LMB_W4_STEP_TRACE=1: the last step's phases, averaged over the layers (CTA 0's clock after each grid barrier). */
static void print_trace(const cuda_backend *c) {
    const int L = c->cfg.n_layers;
    unsigned long long *t = malloc(sizeof *t * (1 + 5 * (size_t)L));
    if (!t || cudaMemcpy(t, c->step->trace, sizeof *t * (1 + 5 * (size_t)L), cudaMemcpyDeviceToHost) != cudaSuccess) {
        free(t);
        return;
    }
    static const char *names[5] = {"norm + q|k|v", "RoPE + attention", "o", "norm + gate|up", "down"};
    double sum[5] = {0};
    for (int l = 0; l < L; l++)
        for (int k = 0; k < 5; k++) sum[k] += (double)(t[1 + 5 * l + k] - (k ? t[5 * l + k] : t[5 * l]));
    fprintf(stderr, "w4 step trace: %.1f us a step;", (t[5 * L] - t[0]) / 1e3);
    for (int k = 0; k < 5; k++)
        fprintf(stderr, " %s %.2f us%s", names[k], sum[k] / L / 1e3, k < 4 ? "," : " a layer\n");
    free(t);
}

void lmb_cuda_step_free(cuda_backend *c) {
    if (!c->step) return;
    if (c->step->trace) print_trace(c);
    cudaFree(c->step->trace);
    cudaFree(c->step->layers);
    cudaFree(c->step->ws);
    free(c->step);
    c->step = NULL;
}
