/* awq_write.c — the quantize stage's output folder: model.safetensors with the architecture's own tensor
 * names (AWQ linears as qweight/qzeros/scales in AutoAWQ's GEMM layout, everything else fp16 — or every
 * tensor fp32 in the "dense" check mode), config.json with quantization_config, and the tokenizer and
 * generation files copied.
 *
 * InternLM2's q/k/v are fused back into wqkv in its grouped row layout (per KV head: its query heads, then
 * k, then v) before quantization; quantization is per row, so fusing first gives the same codes as
 * quantizing the parts.  int32 tensors are stored first so every tensor is aligned to its element size.
 */
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/fileio.h"
#include "../engine/safetensors.h"
#include "awq_internal.h"
#include "int4.h"

typedef struct entry {
    char name[160];
    lmb_dtype dtype;
    int ndim;
    int64_t shape[2];
    void *data; /* owned */
} entry;

struct lmb_qwriter {
    const lmb_model *m;
    char dir[4096];
    int group;
    bool dense;
    entry *e;
    int n, cap;
};

static int push(lmb_qwriter *w, const char *name, lmb_dtype dt, int ndim, int64_t d0, int64_t d1, void *data,
                lmb_error *err) {
    if (!data) return lmb_fail(err, "out of memory writing %s", name);
    if (w->n == w->cap) {
        int ncap = w->cap ? 2 * w->cap : 64;
        entry *ne = realloc(w->e, sizeof *ne * (size_t)ncap);
        if (!ne) {
            free(data);
            return lmb_fail(err, "out of memory writing %s", name);
        }
        w->e = ne;
        w->cap = ncap;
    }
    entry *e = &w->e[w->n++];
    snprintf(e->name, sizeof e->name, "%s", name);
    e->dtype = dt;
    e->ndim = ndim;
    e->shape[0] = d0;
    e->shape[1] = d1;
    e->data = data;
    return 0;
}

/* n floats as the output's float type (F32 dense, else F16: values beyond fp16's range are an error). */
static int push_floats(lmb_qwriter *w, const char *name, const float *x, int ndim, int64_t d0, int64_t d1,
                       lmb_error *err) {
    size_t n = (size_t)d0 * (size_t)(ndim == 2 ? d1 : 1);
    if (w->dense) {
        float *d = malloc(sizeof(float) * (n ? n : 1));
        if (d) memcpy(d, x, sizeof(float) * n);
        return push(w, name, LMB_F32, ndim, d0, d1, d, err);
    }
    uint16_t *d = malloc(2 * (n ? n : 1));
    if (!d) return lmb_fail(err, "out of memory writing %s", name);
    for (size_t i = 0; i < n; i++) {
        if (!(fabsf(x[i]) <= 65504.f)) {
            free(d);
            return lmb_fail(err, "%s[%zu] = %g does not fit fp16", name, i, x[i]);
        }
        d[i] = lmb_f32_to_f16(x[i]);
    }
    return push(w, name, LMB_F16, ndim, d0, d1, d, err);
}

/* A model tensor, converted in chunks (the embedding may be large). */
static int push_tensor(lmb_qwriter *w, const char *name, const lmb_tensor *t, lmb_error *err) {
    size_t n = (size_t)lmb_tensor_numel(t), chunk = 1 << 20;
    float *tmp = malloc(sizeof(float) * chunk);
    void *d = malloc((w->dense ? 4 : 2) * (n ? n : 1));
    if (!tmp || !d) {
        free(tmp), free(d);
        return lmb_fail(err, "out of memory writing %s", name);
    }
    size_t es = lmb_dtype_size(t->dtype);
    for (size_t off = 0; off < n; off += chunk) {
        size_t c = n - off < chunk ? n - off : chunk;
        lmb_to_f32(tmp, (const unsigned char *)t->data + off * es, t->dtype, c);
        for (size_t i = 0; i < c; i++) {
            if (w->dense) {
                ((float *)d)[off + i] = tmp[i];
            } else if (!(fabsf(tmp[i]) <= 65504.f)) {
                lmb_fail(err, "%s[%zu] = %g does not fit fp16", name, off + i, tmp[i]);
                free(tmp), free(d);
                return -1;
            } else {
                ((uint16_t *)d)[off + i] = lmb_f32_to_f16(tmp[i]);
            }
        }
    }
    free(tmp);
    return push(w, name, w->dense ? LMB_F32 : LMB_F16, t->ndim, t->shape[0], t->ndim == 2 ? t->shape[1] : 0, d, err);
}

static int push_linear(lmb_qwriter *w, const char *prefix, const lmb_qlinear *l, lmb_error *err) {
    char n[200];
    int out = l->out, in = l->in, G = w->group, ng = in / G;
    if (w->dense) {
        snprintf(n, sizeof n, "%s.weight", prefix);
        if (push_floats(w, n, l->w, 2, out, in, err)) return -1;
    } else {
        uint8_t *codes = malloc((size_t)out * in), *zeros = malloc((size_t)out * ng);
        float *s = malloc(sizeof(float) * (size_t)out * ng);
        int32_t *qw = malloc(4 * (size_t)in * (out / 8)), *qz = malloc(4 * (size_t)ng * (out / 8));
        uint16_t *sc = malloc(2 * (size_t)ng * out);
        int rc = 0;
        if (!codes || !zeros || !s || !qw || !qz || !sc) {
            free(qw), free(qz), free(sc);
            rc = lmb_fail(err, "out of memory quantizing %s", prefix);
        } else {
            lmb_int4_quantize(l->w, out, in, G, codes, zeros, s);
            lmb_awq_pack(codes, zeros, s, out, in, G, qw, qz, sc);
            snprintf(n, sizeof n, "%s.qweight", prefix);
            rc = push(w, n, LMB_I32, 2, in, out / 8, qw, err);
            snprintf(n, sizeof n, "%s.qzeros", prefix);
            if (!rc) rc = push(w, n, LMB_I32, 2, ng, out / 8, qz, err);
            else free(qz);
            snprintf(n, sizeof n, "%s.scales", prefix);
            if (!rc) rc = push(w, n, LMB_F16, 2, ng, out, sc, err);
            else free(sc);
        }
        free(codes), free(zeros), free(s);
        if (rc) return -1;
    }
    if (!l->b) return 0;
    snprintf(n, sizeof n, "%s.bias", prefix);
    return push_floats(w, n, l->b, 1, out, 0, err);
}

/* InternLM2's wqkv [(nh + 2 nkv) hd, H] from q, k, v, rows grouped per KV head. */
static int fuse_qkv(const lmb_model_config *c, const lmb_qlayer *L, lmb_qlinear *f, lmb_error *err) {
    int hd = c->head_dim, rep = c->n_heads / c->n_kv_heads, H = c->hidden;
    f->in = H;
    f->out = (c->n_heads + 2 * c->n_kv_heads) * hd;
    f->w = malloc(sizeof(float) * (size_t)f->out * H);
    f->b = L->q.b ? malloc(sizeof(float) * (size_t)f->out) : NULL;
    if (!f->w || (L->q.b && !f->b)) {
        free(f->w), free(f->b);
        return lmb_fail(err, "out of memory fusing wqkv");
    }
    int row = 0;
    for (int g = 0; g < c->n_kv_heads; g++) {
        const lmb_qlinear *parts[3] = {&L->q, &L->k, &L->v};
        int first[3] = {g * rep * hd, g * hd, g * hd}, count[3] = {rep * hd, hd, hd};
        for (int p = 0; p < 3; p++) {
            memcpy(f->w + (size_t)row * H, parts[p]->w + (size_t)first[p] * H, sizeof(float) * (size_t)count[p] * H);
            if (f->b) memcpy(f->b + row, parts[p]->b + first[p], sizeof(float) * (size_t)count[p]);
            row += count[p];
        }
    }
    return 0;
}

int lmb_qwriter_open(lmb_qwriter **out, const lmb_model *m, const char *out_dir, int group_size, bool dense,
                     lmb_error *err) {
    *out = NULL;
    lmb_qwriter *w = calloc(1, sizeof *w);
    if (!w) return lmb_fail(err, "out of memory");
    w->m = m;
    w->group = group_size;
    w->dense = dense;
    snprintf(w->dir, sizeof w->dir, "%s", out_dir);
    *out = w;
    return 0;
}

int lmb_qwriter_add_layer(lmb_qwriter *w, int l, const lmb_qlayer *L, lmb_error *err) {
    const lmb_model_config *c = &w->m->cfg;
    char n[200];
    int H = c->hidden;
#define P(fmt) (snprintf(n, sizeof n, "model.layers.%d." fmt, l), n)
    if (c->arch == LMB_ARCH_INTERNLM2) {
        lmb_qlinear qkv;
        if (fuse_qkv(c, L, &qkv, err)) return -1;
        int rc = push_linear(w, P("attention.wqkv"), &qkv, err);
        free(qkv.w), free(qkv.b);
        if (rc || push_floats(w, P("attention_norm.weight"), L->attn_norm, 1, H, 0, err) ||
            push_linear(w, P("attention.wo"), &L->o, err) ||
            push_floats(w, P("ffn_norm.weight"), L->ffn_norm, 1, H, 0, err) ||
            push_linear(w, P("feed_forward.w1"), &L->gate, err) || push_linear(w, P("feed_forward.w3"), &L->up, err) ||
            push_linear(w, P("feed_forward.w2"), &L->down, err))
            return -1;
    } else if (push_floats(w, P("input_layernorm.weight"), L->attn_norm, 1, H, 0, err) ||
               push_linear(w, P("self_attn.q_proj"), &L->q, err) || push_linear(w, P("self_attn.k_proj"), &L->k, err) ||
               push_linear(w, P("self_attn.v_proj"), &L->v, err) || push_linear(w, P("self_attn.o_proj"), &L->o, err) ||
               push_floats(w, P("post_attention_layernorm.weight"), L->ffn_norm, 1, H, 0, err) ||
               push_linear(w, P("mlp.gate_proj"), &L->gate, err) || push_linear(w, P("mlp.up_proj"), &L->up, err) ||
               push_linear(w, P("mlp.down_proj"), &L->down, err)) {
        return -1;
    }
#undef P
    return 0;
}

/* config.json: the source's, with the dtype and (unless dense) AutoAWQ's quantization_config. */
static int write_config(lmb_qwriter *w, lmb_error *err) {
    char src[4096], dst[4096];
    if (lmb_path_join(src, sizeof src, w->m->dir, "config.json", err) ||
        lmb_path_join(dst, sizeof dst, w->dir, "config.json", err))
        return -1;
    json_error_t je;
    json_t *c = json_load_file(src, 0, &je);
    if (!c) return lmb_fail(err, "%s: %s", src, je.text);
    const char *dt = w->dense ? "float32" : "float16";
    bool any = false;
    const char *keys[] = {"torch_dtype", "dtype"};
    for (int i = 0; i < 2; i++)
        if (json_object_get(c, keys[i])) json_object_set_new(c, keys[i], json_string(dt)), any = true;
    if (!any) json_object_set_new(c, "torch_dtype", json_string(dt));
    if (w->dense) {
        json_object_del(c, "quantization_config");
    } else {
        json_t *q = json_object();
        json_object_set_new(q, "quant_method", json_string("awq"));
        json_object_set_new(q, "bits", json_integer(4));
        json_object_set_new(q, "group_size", json_integer(w->group));
        json_object_set_new(q, "zero_point", json_true());
        json_object_set_new(q, "version", json_string("gemm"));
        json_object_set_new(q, "modules_to_not_convert", json_null());
        json_object_set_new(c, "quantization_config", q);
    }
    char *text = json_dumps(c, JSON_INDENT(2));
    json_decref(c);
    if (!text) return lmb_fail(err, "%s: cannot build JSON", dst);
    size_t len = strlen(text);
    char *t2 = realloc(text, len + 2);
    if (t2) text = t2, text[len++] = '\n', text[len] = 0;
    int rc = lmb_file_write_atomic(dst, text, len, err);
    free(text);
    return rc;
}

/* Tokenizer, generation config, chat templates and remote code (InternLM2's *.py) travel with the model. */
static bool travels(const char *name) {
    static const char *names[] = {"generation_config.json", "tokenizer.json",  "tokenizer_config.json",
                                  "special_tokens_map.json", "tokenizer.model", "added_tokens.json",
                                  "vocab.json",              "merges.txt",      "chat_template.json",
                                  "chat_template.jinja"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i]) == 0) return true;
    size_t l = strlen(name);
    return l > 3 && strcmp(name + l - 3, ".py") == 0;
}

static int copy_files(lmb_qwriter *w, lmb_error *err) {
    DIR *d = opendir(w->m->dir);
    if (!d) return lmb_fail(err, "%s: cannot list the model folder", w->m->dir);
    int rc = 0;
    struct dirent *de;
    while (!rc && (de = readdir(d))) {
        if (!travels(de->d_name)) continue;
        char src[4096], dst[4096];
        lmb_mapped_file f;
        if (lmb_path_join(src, sizeof src, w->m->dir, de->d_name, err) ||
            lmb_path_join(dst, sizeof dst, w->dir, de->d_name, err) || lmb_file_map(src, &f, err)) {
            rc = -1;
            break;
        }
        rc = lmb_file_write_atomic(dst, f.data ? (const void *)f.data : "", f.size, err);
        lmb_file_unmap(&f);
    }
    closedir(d);
    return rc;
}

int lmb_qwriter_finish(lmb_qwriter *w, const char *metadata_json, lmb_error *err) {
    const lmb_model_config *c = &w->m->cfg;
    const lmb_weights *mw = &w->m->w;
    bool il = c->arch == LMB_ARCH_INTERNLM2;
    if (push_tensor(w, il ? "model.tok_embeddings.weight" : "model.embed_tokens.weight", &mw->embed, err) ||
        push_tensor(w, "model.norm.weight", &mw->final_norm, err))
        return -1;
    if (!c->tied_embeddings) {
        if (lmb_linear_quantized(&mw->head)) return lmb_fail(err, "the model's head is already quantized");
        if (push_tensor(w, il ? "output.weight" : "lm_head.weight", &mw->head.w, err)) return -1;
    }
    char path[4096];
    if (lmb_path_join(path, sizeof path, w->dir, "model.safetensors", err)) return -1;
    lmb_st_writer *st = lmb_st_writer_new();
    if (!st) return lmb_fail(err, "out of memory");
    int rc = lmb_st_writer_set_metadata(st, "format", "pt", err);
    if (!rc && metadata_json) rc = lmb_st_writer_set_metadata(st, "lmbatch_quantize", metadata_json, err);
    for (int pass = 0; pass < 2 && !rc; pass++) /* int32 first: keeps every tensor aligned */
        for (int i = 0; i < w->n && !rc; i++)
            if ((w->e[i].dtype == LMB_I32) == (pass == 0))
                rc = lmb_st_writer_add(st, w->e[i].name, w->e[i].dtype, w->e[i].ndim, w->e[i].shape, w->e[i].data, err);
    if (!rc) rc = lmb_st_writer_save(st, path, err);
    lmb_st_writer_free(st);
    if (!rc) rc = write_config(w, err);
    if (!rc) rc = copy_files(w, err);
    return rc;
}

void lmb_qwriter_close(lmb_qwriter *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) free(w->e[i].data);
    free(w->e);
    free(w);
}
