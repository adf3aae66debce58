/* weights.c — binds a checkpoint's tensors to lmb_weights (model.h), checking every name, dtype and shape.
 *
 * Llama, Mistral and Qwen2 use the Hugging Face Llama names; InternLM2 has its own (tok_embeddings,
 * attention.wqkv/wo, feed_forward.w1/w3/w2, attention_norm/ffn_norm, output) and a fused wqkv whose rows are
 * grouped per KV head g: its heads/kv_heads q heads, then k head g, then v head g (head_dim rows each).  It
 * is split here into owned q/k/v copies (same dtype), recorded in w->owned; for AWQ the same grouping is cut
 * along the out dimension of qweight/qzeros/scales (head_dim is a multiple of 8, so the 8-per-int32 packing
 * is never cut).  Every other lmb_tensor is a view into the mapped files.  Missing and unexpected tensors are
 * collected and reported together; the first dtype/shape mismatch is reported when nothing is missing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

#define LIST_MAX 10    /* names listed per kind in the missing/unexpected error */
#define LIST_CHARS 420 /* and at most this many characters of them */

typedef enum { CLASS_FLOAT, CLASS_I32, CLASS_F16 } dtype_class;

typedef struct binder {
    const lmb_model_config *cfg;
    const lmb_safetensors *st;
    lmb_weights *w;
    unsigned char *used; /* per tensor of st */
    const char **missing;
    int n_missing, cap_missing;
    bool failed;     /* a dtype/shape error or out of memory is in first */
    lmb_error first; /* ...and this is it */
} binder;

static void fail_once(binder *b, const char *fmt, ...) LMB_PRINTF(2, 3);
static void fail_once(binder *b, const char *fmt, ...) {
    if (b->failed) return;
    va_list ap;
    va_start(ap, fmt);
    lmb_failv(&b->first, fmt, ap);
    va_end(ap);
    b->failed = true;
}

static void note_missing(binder *b, const char *name) {
    if (b->n_missing == b->cap_missing) {
        int ncap = b->cap_missing ? 2 * b->cap_missing : 32;
        const char **nm = realloc(b->missing, sizeof *nm * (size_t)ncap);
        if (!nm) {
            fail_once(b, "out of memory");
            return;
        }
        b->missing = nm;
        b->cap_missing = ncap;
    }
    char *copy = malloc(strlen(name) + 1);
    if (!copy) {
        fail_once(b, "out of memory");
        return;
    }
    strcpy(copy, name);
    b->missing[b->n_missing++] = copy;
}

static bool class_ok(dtype_class c, lmb_dtype d) {
    switch (c) {
    case CLASS_FLOAT: return d == LMB_F32 || d == LMB_F16 || d == LMB_BF16;
    case CLASS_I32: return d == LMB_I32;
    case CLASS_F16: return d == LMB_F16;
    }
    return false;
}

static const char *class_name(dtype_class c) {
    return c == CLASS_FLOAT ? "F32, F16 or BF16" : c == CLASS_I32 ? "I32" : "F16";
}

static bool exists(const binder *b, const char *name) { return lmb_st_find_index(b->st, name) >= 0; }

/* Binds `name` into *out after checking dtype and shape (d1 < 0: one dimension).  Returns false when the
 * tensor is missing or wrong (and records why); *out is left zeroed then. */
static bool need(binder *b, lmb_tensor *out, const char *name, dtype_class c, int64_t d0, int64_t d1) {
    memset(out, 0, sizeof *out);
    int i = lmb_st_find_index(b->st, name);
    if (i < 0) {
        note_missing(b, name);
        return false;
    }
    b->used[i] = 1;
    const lmb_tensor *t = lmb_st_at(b->st, i);
    int ndim = d1 < 0 ? 1 : 2;
    if (!class_ok(c, t->dtype)) {
        fail_once(b, "tensor \"%s\" has dtype %s, expected %s", name, lmb_dtype_name(t->dtype), class_name(c));
        return false;
    }
    if (t->ndim != ndim || t->shape[0] != d0 || (ndim == 2 && t->shape[1] != d1)) {
        char got[128];
        int o = snprintf(got, sizeof got, "[");
        for (int k = 0; k < t->ndim && o < (int)sizeof got; k++)
            o += snprintf(got + o, sizeof got - (size_t)o, "%s%lld", k ? ", " : "", (long long)t->shape[k]);
        if (o < (int)sizeof got) snprintf(got + o, sizeof got - (size_t)o, "]");
        if (ndim == 1)
            fail_once(b, "tensor \"%s\" has shape %s, expected [%lld]", name, got, (long long)d0);
        else
            fail_once(b, "tensor \"%s\" has shape %s, expected [%lld, %lld]", name, got, (long long)d0, (long long)d1);
        return false;
    }
    *out = *t;
    return true;
}

/* A linear [out, in] at prefix: dense .weight, or (AWQ models) .qweight/.qzeros/.scales when the checkpoint
 * has them — a linear the quantizer left alone keeps .weight. */
static bool bind_linear(binder *b, lmb_linear *L, const char *prefix, int64_t out, int64_t in, bool bias) {
    char n[512];
    memset(L, 0, sizeof *L);
    L->in = (int)in;
    L->out = (int)out;
    bool ok = true;
    snprintf(n, sizeof n, "%s.weight", prefix);
    if (b->cfg->quant.awq && !exists(b, n)) {
        int64_t g = b->cfg->quant.group_size;
        if (in % g != 0 || out % 8 != 0) {
            const char *parts[] = {"qweight", "qzeros", "scales"}; /* present but unusable: not "unexpected" */
            for (int k = 0; k < 3; k++) {
                snprintf(n, sizeof n, "%s.%s", prefix, parts[k]);
                int i = lmb_st_find_index(b->st, n);
                if (i >= 0) b->used[i] = 1;
            }
            fail_once(
                b, "%s: [%lld, %lld] cannot be AWQ-quantized with group size %lld (in %% group and out %% 8 must be 0)",
                prefix, (long long)out, (long long)in, (long long)g);
            return false;
        }
        snprintf(n, sizeof n, "%s.qweight", prefix);
        ok &= need(b, &L->qweight, n, CLASS_I32, in, out / 8);
        snprintf(n, sizeof n, "%s.qzeros", prefix);
        ok &= need(b, &L->qzeros, n, CLASS_I32, in / g, out / 8);
        snprintf(n, sizeof n, "%s.scales", prefix);
        ok &= need(b, &L->scales, n, CLASS_F16, in / g, out);
    } else {
        ok &= need(b, &L->w, n, CLASS_FLOAT, out, in);
    }
    if (bias) {
        snprintf(n, sizeof n, "%s.bias", prefix);
        ok &= need(b, &L->bias, n, CLASS_FLOAT, out, -1);
    }
    return ok;
}

/* ---- InternLM2 wqkv split -------------------------------------------------------------------------------- */

static void *own(binder *b, size_t n) {
    void **no = realloc(b->w->owned, sizeof *no * (size_t)(b->w->n_owned + 1));
    if (!no) return NULL;
    b->w->owned = no;
    void *p = malloc(n ? n : 1);
    if (p) b->w->owned[b->w->n_owned++] = p;
    return p;
}

/* dst = for each of n_groups groups, columns [g*stride + first, +len) of every row of src (rows x cols,
 * es-byte elements), as a [d0, d1] tensor (d1 < 0: 1-D).  Its name is "<src>[part]". */
static void take_groups(binder *b, lmb_tensor *dst, const lmb_tensor *src, int64_t rows, int64_t stride, int64_t first,
                        int64_t len, int n_groups, int64_t d0, int64_t d1, const char *part) {
    size_t es = lmb_dtype_size(src->dtype);
    int64_t cols = stride * n_groups, out_cols = len * n_groups;
    size_t nbytes = (size_t)(rows * out_cols) * es;
    unsigned char *buf = own(b, nbytes);
    char *name = own(b, strlen(src->name) + strlen(part) + 3);
    if (!buf || !name) {
        fail_once(b, "out of memory splitting %s", src->name);
        return;
    }
    sprintf(name, "%s[%s]", src->name, part);
    const unsigned char *s = src->data;
    for (int64_t r = 0; r < rows; r++)
        for (int g = 0; g < n_groups; g++)
            memcpy(buf + (size_t)(r * out_cols + g * len) * es, s + (size_t)(r * cols + g * stride + first) * es,
                   (size_t)len * es);
    memset(dst, 0, sizeof *dst);
    dst->name = name;
    dst->dtype = src->dtype;
    dst->ndim = d1 < 0 ? 1 : 2;
    dst->shape[0] = d0;
    dst->shape[1] = d1 < 0 ? 0 : d1;
    dst->data = buf;
    dst->nbytes = nbytes;
}

/* Splits one tensor seen as `rows` rows whose columns hold the grouped q/k/v heads, `unit` columns per head
 * (a dense [out, in] weight is one row of out*in columns: unit = head_dim * in).  The parts get shapes
 * q[0..1] and kv[0..1] (second entry < 0: 1-D). */
static void split3(binder *b, lmb_tensor *tq, lmb_tensor *tk, lmb_tensor *tv, const lmb_tensor *src, int64_t rows,
                   int64_t unit, const int64_t q[2], const int64_t kv[2]) {
    const lmb_model_config *c = b->cfg;
    int64_t r = c->n_heads / c->n_kv_heads, stride = (r + 2) * unit;
    int G = c->n_kv_heads;
    take_groups(b, tq, src, rows, stride, 0, r * unit, G, q[0], q[1], "q");
    take_groups(b, tk, src, rows, stride, r * unit, unit, G, kv[0], kv[1], "k");
    take_groups(b, tv, src, rows, stride, (r + 1) * unit, unit, G, kv[0], kv[1], "v");
}

static void bind_wqkv(binder *b, lmb_layer_weights *L, const char *prefix) {
    const lmb_model_config *c = b->cfg;
    int64_t H = c->hidden, hd = c->head_dim, Q = (int64_t)c->n_heads * hd, KV = (int64_t)c->n_kv_heads * hd;
    lmb_linear f;
    if (!bind_linear(b, &f, prefix, Q + 2 * KV, H, c->qkv_bias)) return;
    L->q = (lmb_linear){.in = (int)H, .out = (int)Q};
    L->k = (lmb_linear){.in = (int)H, .out = (int)KV};
    L->v = L->k;
    if (lmb_linear_quantized(&f)) {
        if (hd % 8 != 0) {
            fail_once(b, "%s: AWQ wqkv cannot be split with head_dim %lld (not a multiple of 8)", prefix,
                      (long long)hd);
            return;
        }
        /* AWQ tensors are [in or in/group, out or out/8]: the heads run along the columns. */
        int64_t gs = H / c->quant.group_size;
        split3(b, &L->q.qweight, &L->k.qweight, &L->v.qweight, &f.qweight, H, hd / 8, (int64_t[]){H, Q / 8},
               (int64_t[]){H, KV / 8});
        split3(b, &L->q.qzeros, &L->k.qzeros, &L->v.qzeros, &f.qzeros, gs, hd / 8, (int64_t[]){gs, Q / 8},
               (int64_t[]){gs, KV / 8});
        split3(b, &L->q.scales, &L->k.scales, &L->v.scales, &f.scales, gs, hd, (int64_t[]){gs, Q}, (int64_t[]){gs, KV});
    } else {
        split3(b, &L->q.w, &L->k.w, &L->v.w, &f.w, 1, hd * H, (int64_t[]){Q, H}, (int64_t[]){KV, H});
    }
    if (lmb_tensor_present(&f.bias))
        split3(b, &L->q.bias, &L->k.bias, &L->v.bias, &f.bias, 1, hd, (int64_t[]){Q, -1}, (int64_t[]){KV, -1});
}

/* ---- the model ------------------------------------------------------------------------------------------- */

static void bind_layer(binder *b, int i) {
    const lmb_model_config *c = b->cfg;
    lmb_layer_weights *L = &b->w->layers[i];
    int64_t H = c->hidden, F = c->ffn, Q = (int64_t)c->n_heads * c->head_dim, KV = (int64_t)c->n_kv_heads * c->head_dim;
    char n[256];
#define NAME(fmt) (snprintf(n, sizeof n, "model.layers.%d." fmt, i), n)
    if (c->arch == LMB_ARCH_INTERNLM2) {
        need(b, &L->attn_norm, NAME("attention_norm.weight"), CLASS_FLOAT, H, -1);
        bind_wqkv(b, L, NAME("attention.wqkv"));
        bind_linear(b, &L->o, NAME("attention.wo"), H, Q, c->o_bias);
        need(b, &L->ffn_norm, NAME("ffn_norm.weight"), CLASS_FLOAT, H, -1);
        bind_linear(b, &L->gate, NAME("feed_forward.w1"), F, H, c->mlp_bias);
        bind_linear(b, &L->up, NAME("feed_forward.w3"), F, H, c->mlp_bias);
        bind_linear(b, &L->down, NAME("feed_forward.w2"), H, F, c->mlp_bias);
    } else {
        need(b, &L->attn_norm, NAME("input_layernorm.weight"), CLASS_FLOAT, H, -1);
        bind_linear(b, &L->q, NAME("self_attn.q_proj"), Q, H, c->qkv_bias);
        bind_linear(b, &L->k, NAME("self_attn.k_proj"), KV, H, c->qkv_bias);
        bind_linear(b, &L->v, NAME("self_attn.v_proj"), KV, H, c->qkv_bias);
        bind_linear(b, &L->o, NAME("self_attn.o_proj"), H, Q, c->o_bias);
        need(b, &L->ffn_norm, NAME("post_attention_layernorm.weight"), CLASS_FLOAT, H, -1);
        bind_linear(b, &L->gate, NAME("mlp.gate_proj"), F, H, c->mlp_bias);
        bind_linear(b, &L->up, NAME("mlp.up_proj"), F, H, c->mlp_bias);
        bind_linear(b, &L->down, NAME("mlp.down_proj"), H, F, c->mlp_bias);
    }
#undef NAME
}

static bool ignorable(const char *name) {
    size_t l = strlen(name), k = strlen("rotary_emb.inv_freq");
    return l >= k && strcmp(name + l - k, "rotary_emb.inv_freq") == 0;
}

/* Appends "N <what> tensor(s): a, b, ... and K more" to msg. */
static void list_names(char *msg, size_t cap, const char *what, const char *const *names, int n) {
    size_t o = strlen(msg);
    o += (size_t)snprintf(msg + o, o < cap ? cap - o : 0, "%s%d %s tensor%s: ", o ? "; " : "", n, what,
                          n == 1 ? "" : "s");
    size_t start = o;
    int shown = 0;
    for (; shown < n && shown < LIST_MAX && o < cap; shown++) {
        if (shown && o + strlen(names[shown]) - start > LIST_CHARS) break;
        o += (size_t)snprintf(msg + o, cap - o, "%s%s", shown ? ", " : "", names[shown]);
    }
    if (shown < n && o < cap) snprintf(msg + o, cap - o, " and %d more", n - shown);
}

static int report(binder *b, lmb_error *err) {
    const char **extra = NULL;
    int n_extra = 0, n = lmb_st_count(b->st);
    for (int i = 0; i < n; i++)
        if (!b->used[i] && !ignorable(lmb_st_at(b->st, i)->name)) n_extra++;
    if (n_extra) {
        extra = malloc(sizeof *extra * (size_t)n_extra);
        if (!extra) return lmb_fail(err, "out of memory");
        n_extra = 0;
        for (int i = 0; i < n; i++)
            if (!b->used[i] && !ignorable(lmb_st_at(b->st, i)->name)) extra[n_extra++] = lmb_st_at(b->st, i)->name;
    }
    int rc = 0;
    if (b->n_missing || n_extra) {
        char msg[LMB_ERROR_MAX - 128] = "";
        if (b->n_missing) list_names(msg, sizeof msg, "missing", b->missing, b->n_missing);
        if (n_extra) list_names(msg, sizeof msg, "unexpected", extra, n_extra);
        rc = lmb_fail(err, "%s checkpoint does not match its config: %s", b->cfg->arch_name, msg);
    } else if (b->failed) {
        rc = lmb_fail(err, "%s", b->first.msg);
    }
    free(extra);
    return rc;
}

int lmb_weights_bind(const lmb_model_config *cfg, const lmb_safetensors *st, lmb_weights *w, lmb_error *err) {
    memset(w, 0, sizeof *w);
    const lmb_model_config *c = cfg;
    binder b = {.cfg = cfg, .st = st, .w = w};
    b.used = calloc((size_t)lmb_st_count(st) + 1, 1);
    w->layers = calloc((size_t)c->n_layers, sizeof *w->layers);
    if (!b.used || !w->layers) {
        free(b.used);
        lmb_weights_free(w, c->n_layers);
        return lmb_fail(err, "out of memory");
    }
    bool il = c->arch == LMB_ARCH_INTERNLM2;
    int64_t H = c->hidden, V = c->vocab;
    need(&b, &w->embed, il ? "model.tok_embeddings.weight" : "model.embed_tokens.weight", CLASS_FLOAT, V, H);
    for (int i = 0; i < c->n_layers; i++) bind_layer(&b, i);
    need(&b, &w->final_norm, "model.norm.weight", CLASS_FLOAT, H, -1);
    const char *head = il ? "output.weight" : "lm_head.weight";
    if (c->tied_embeddings) {
        /* A stored head of a tied model is ignored, as transformers does. */
        int i = lmb_st_find_index(st, head);
        if (i >= 0) b.used[i] = 1;
        w->head = (lmb_linear){.in = (int)H, .out = (int)V, .w = w->embed};
    } else {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "%s", il ? "output" : "lm_head");
        bind_linear(&b, &w->head, prefix, V, H, false);
    }
    int rc = report(&b, err);
    for (int i = 0; i < b.n_missing; i++) free((char *)b.missing[i]);
    free(b.missing);
    free(b.used);
    if (rc) lmb_weights_free(w, c->n_layers);
    return rc;
}

void lmb_weights_free(lmb_weights *w, int n_layers) {
    (void)n_layers;
    for (int i = 0; i < w->n_owned; i++) free(w->owned[i]);
    free(w->owned);
    free(w->layers);
    memset(w, 0, sizeof *w);
}

static uint64_t add(uint64_t by[LMB_DTYPE_COUNT], const lmb_tensor *t) {
    if (!lmb_tensor_present(t)) return 0;
    by[t->dtype] += t->nbytes;
    return t->nbytes;
}

static uint64_t add_linear(uint64_t by[LMB_DTYPE_COUNT], const lmb_linear *l) {
    return add(by, &l->w) + add(by, &l->qweight) + add(by, &l->qzeros) + add(by, &l->scales) + add(by, &l->bias);
}

uint64_t lmb_weights_bytes(const lmb_weights *w, int n_layers, uint64_t by_dtype[LMB_DTYPE_COUNT]) {
    memset(by_dtype, 0, sizeof(uint64_t) * LMB_DTYPE_COUNT);
    uint64_t total = add(by_dtype, &w->embed) + add(by_dtype, &w->final_norm);
    if (w->head.w.data != w->embed.data || lmb_linear_quantized(&w->head)) total += add_linear(by_dtype, &w->head);
    for (int i = 0; w->layers && i < n_layers; i++) {
        const lmb_layer_weights *L = &w->layers[i];
        total += add(by_dtype, &L->attn_norm) + add(by_dtype, &L->ffn_norm);
        const lmb_linear *lin[] = {&L->q, &L->k, &L->v, &L->o, &L->gate, &L->up, &L->down};
        for (size_t k = 0; k < sizeof lin / sizeof lin[0]; k++) total += add_linear(by_dtype, lin[k]);
    }
    return total;
}
