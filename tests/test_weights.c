/* test_weights.c — weight binding and lmb_model_open: the ../shared models (skipped when absent), fixture
 * models of every architecture (dense, sharded, AWQ), InternLM2's wqkv split checked row by row (and column
 * by column for AWQ) against the grouped layout, missing/unexpected tensors listed in one error, shape and
 * dtype mismatches, ignored buffers, tied heads.
 *
 * The tiny-internlm2 expectations were computed with Python: w = load_file(...)["model.layers.1.attention.
 * wqkv.weight"].float().view(kv=2, r+2=4, hd=16, 64); q = w[:, :2].reshape(-1, 64); k = w[:, 2].reshape(-1,
 * 64); v = w[:, 3].reshape(-1, 64) — the same split transformers' InternLM2 modeling code does.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../engine/fileio.h"
#include "../engine/model.h"
#include "support/fixtures.h"

static char tmp[64];

static void setup(void) {
    lmb_error err;
    cr_assert_eq(lmb_test_tmpdir(tmp, sizeof tmp, &err), 0, "%s", err.msg);
}

static void teardown(void) { lmb_test_rmtree(tmp, NULL); }

TestSuite(weights, .init = setup, .fini = teardown);

/* Makes TMP/name from spec and opens it as a model (must succeed). */
static lmb_model *fixture(const char *name, const lmb_test_model_spec *s) {
    char dir[4096];
    lmb_error err;
    lmb_path_join(dir, sizeof dir, tmp, name, NULL);
    mkdir(dir, 0755);
    cr_assert_eq(lmb_test_make_model(dir, s, &err), 0, "%s", err.msg);
    lmb_model *m;
    cr_assert_eq(lmb_model_open(dir, &m, &err), 0, "%s", err.msg);
    return m;
}

static void check_shape(const lmb_tensor *t, int64_t d0, int64_t d1) {
    cr_assert(lmb_tensor_present(t));
    cr_assert_eq(t->ndim, d1 < 0 ? 1 : 2, "%s", t->name);
    cr_assert_eq(t->shape[0], d0, "%s", t->name);
    if (d1 >= 0) cr_assert_eq(t->shape[1], d1, "%s", t->name);
    cr_assert_eq(t->nbytes, (size_t)(d0 * (d1 < 0 ? 1 : d1)) * lmb_dtype_size(t->dtype), "%s", t->name);
}

/* Every bound dense tensor has the shape the config implies, and the parameter count adds up. */
static void check_dense_layout(const lmb_model *m) {
    const lmb_model_config *c = &m->cfg;
    const lmb_weights *w = &m->w;
    int64_t H = c->hidden, Q = (int64_t)c->n_heads * c->head_dim, KV = (int64_t)c->n_kv_heads * c->head_dim, F = c->ffn;
    check_shape(&w->embed, c->vocab, H);
    check_shape(&w->final_norm, H, -1);
    check_shape(&w->head.w, c->vocab, H);
    int64_t numel = (int64_t)c->vocab * H * (c->tied_embeddings ? 1 : 2) + H;
    for (int i = 0; i < c->n_layers; i++) {
        const lmb_layer_weights *L = &w->layers[i];
        check_shape(&L->attn_norm, H, -1);
        check_shape(&L->ffn_norm, H, -1);
        check_shape(&L->q.w, Q, H);
        check_shape(&L->k.w, KV, H);
        check_shape(&L->v.w, KV, H);
        check_shape(&L->o.w, H, Q);
        check_shape(&L->gate.w, F, H);
        check_shape(&L->up.w, F, H);
        check_shape(&L->down.w, H, F);
        cr_assert_eq(L->q.out, Q);
        cr_assert_eq(L->q.in, H);
        cr_assert_eq(L->down.in, F);
        cr_assert_eq(lmb_tensor_present(&L->q.bias), c->qkv_bias);
        cr_assert_eq(lmb_tensor_present(&L->o.bias), c->o_bias);
        if (c->qkv_bias) {
            check_shape(&L->q.bias, Q, -1);
            check_shape(&L->k.bias, KV, -1);
            check_shape(&L->v.bias, KV, -1);
        }
        numel += 2 * H + 2 * Q * H + 2 * KV * H + 3 * F * H + (c->qkv_bias ? Q + 2 * KV : 0) + (c->o_bias ? H : 0);
    }
    cr_assert_eq(lmb_config_param_count(c), numel);
    uint64_t by[LMB_DTYPE_COUNT];
    uint64_t total = lmb_weights_bytes(w, c->n_layers, by);
    if (by[c->dtype] == total) cr_assert_eq(total, (uint64_t)numel * lmb_dtype_size(c->dtype));
    if (c->tied_embeddings) cr_assert_eq(w->head.w.data, w->embed.data, "a tied head views the embedding");
}

/* ---- ../shared ------------------------------------------------------------------------------------------- */

Test(weights, shared_models_bind) {
    const char *names[] = {"stories260K", "pycoder-22M",  "tiny-llama-gqa",
                           "tiny-qwen2",  "tiny-mistral", "tiny-internlm2"};
    char dir[4096];
    LMB_TEST_NEED_SHARED(dir, "models");
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "models/%s", names[i]);
        cr_assert(lmb_test_shared_path(dir, sizeof dir, rel));
        lmb_model *m;
        lmb_error err;
        cr_assert_eq(lmb_model_open(dir, &m, &err), 0, "%s", err.msg);
        check_dense_layout(m);
        cr_assert_str_eq(m->dir, dir);
        if (!m->cfg.tied_embeddings)
            cr_assert_str_eq(m->w.head.w.name, m->cfg.arch == LMB_ARCH_INTERNLM2 ? "output.weight" : "lm_head.weight");
        cr_assert_eq(m->w.n_owned > 0, m->cfg.arch == LMB_ARCH_INTERNLM2, "%s", names[i]);
        lmb_model_close(m);
    }
}

/* q/k/v rows of layer i must be the wqkv rows the grouped layout names. */
static void check_split_rows(const lmb_model *m, const lmb_safetensors *st) {
    const lmb_model_config *c = &m->cfg;
    int hd = c->head_dim, r = c->n_heads / c->n_kv_heads;
    for (int i = 0; i < c->n_layers; i++) {
        char name[128];
        snprintf(name, sizeof name, "model.layers.%d.attention.wqkv.weight", i);
        const lmb_tensor *f = lmb_st_find(st, name);
        cr_assert(f);
        size_t row = (size_t)c->hidden * lmb_dtype_size(f->dtype);
        const char *src = f->data;
        const lmb_layer_weights *L = &m->w.layers[i];
        cr_assert_eq(L->q.w.dtype, f->dtype);
        for (int g = 0; g < c->n_kv_heads; g++)
            for (int j = 0; j < hd; j++) {
                for (int h = 0; h < r; h++) {
                    int dst = (g * r + h) * hd + j, from = (g * (r + 2) + h) * hd + j;
                    cr_assert_eq(memcmp((const char *)L->q.w.data + dst * row, src + from * row, row), 0,
                                 "layer %d q row %d", i, dst);
                }
                int dst = g * hd + j;
                cr_assert_eq(
                    memcmp((const char *)L->k.w.data + dst * row, src + ((g * (r + 2) + r) * hd + j) * row, row), 0);
                cr_assert_eq(
                    memcmp((const char *)L->v.w.data + dst * row, src + ((g * (r + 2) + r + 1) * hd + j) * row, row),
                    0);
            }
    }
}

Test(weights, shared_internlm2_split_matches_python) {
    char dir[4096];
    LMB_TEST_NEED_SHARED(dir, "models/tiny-internlm2");
    lmb_model *m;
    lmb_error err;
    cr_assert_eq(lmb_model_open(dir, &m, &err), 0, "%s", err.msg);
    const lmb_layer_weights *L = &m->w.layers[1];
    const float q40[4] = {-0.036865234375f, -0.0301513671875f, -0.045166015625f, -0.01409912109375f};
    const float k20[4] = {-0.01513671875f, 0.033935546875f, -0.0020294189453125f, 0.02978515625f};
    const float v31[4] = {-0.010009765625f, -0.01251220703125f, -0.03857421875f, 0.03662109375f};
    const uint16_t *q = L->q.w.data, *k = L->k.w.data, *v = L->v.w.data;
    for (int j = 0; j < 4; j++) {
        cr_assert_eq(lmb_bf16_to_f32(q[40 * 64 + j]), q40[j]);
        cr_assert_eq(lmb_bf16_to_f32(k[20 * 64 + 60 + j]), k20[j]);
        cr_assert_eq(lmb_bf16_to_f32(v[31 * 64 + j]), v31[j]);
    }
    cr_assert_str_eq(L->q.w.name, "model.layers.1.attention.wqkv.weight[q]");
    cr_assert_eq(m->w.n_owned, 3 * 3 * 2, "3 layers x q/k/v x (buffer + name)");
    check_split_rows(m, m->st);
    lmb_model_close(m);
}

/* ---- fixtures -------------------------------------------------------------------------------------------- */

Test(weights, fixtures_of_every_arch_bind) {
    const lmb_dtype dts[] = {LMB_F32, LMB_F16, LMB_BF16};
    for (int a = 0; a < 4; a++)
        for (int d = 0; d < 3; d++) {
            lmb_test_model_spec s;
            lmb_test_model_spec_default(&s, (lmb_arch)a);
            s.dtype = dts[d];
            s.tied = d == 1;
            s.shards = d == 2 ? 3 : 1;
            s.attn_bias = d == 0;
            s.seed = (uint64_t)(10 * a + d);
            char name[32];
            snprintf(name, sizeof name, "m%d%d", a, d);
            lmb_model *m = fixture(name, &s);
            cr_assert_eq(m->cfg.arch, (lmb_arch)a);
            cr_assert_eq(m->cfg.dtype, dts[d]);
            check_dense_layout(m);
            if (a == LMB_ARCH_INTERNLM2) check_split_rows(m, m->st);
            lmb_model_close(m);
        }
}

Test(weights, internlm2_bias_split) {
    lmb_test_model_spec s;
    lmb_test_model_spec_default(&s, LMB_ARCH_INTERNLM2);
    s.heads = 8;
    s.kv_heads = 2;
    s.hidden = 64; /* head_dim 8, 4 q heads per group */
    s.attn_bias = true;
    lmb_model *m = fixture("ib", &s);
    int hd = 8, r = 4;
    for (int i = 0; i < s.layers; i++) {
        char name[128];
        snprintf(name, sizeof name, "model.layers.%d.attention.wqkv.bias", i);
        const float *b = lmb_st_find(m->st, name)->data;
        const lmb_layer_weights *L = &m->w.layers[i];
        const float *q = L->q.bias.data, *k = L->k.bias.data, *v = L->v.bias.data;
        for (int g = 0; g < 2; g++)
            for (int j = 0; j < hd; j++) {
                for (int h = 0; h < r; h++) cr_assert_eq(q[(g * r + h) * hd + j], b[(g * (r + 2) + h) * hd + j]);
                cr_assert_eq(k[g * hd + j], b[(g * (r + 2) + r) * hd + j]);
                cr_assert_eq(v[g * hd + j], b[(g * (r + 2) + r + 1) * hd + j]);
            }
        cr_assert(lmb_tensor_present(&L->o.bias));
    }
    lmb_model_close(m);
}

Test(weights, awq_llama_binds_quantized_linears) {
    lmb_test_model_spec s;
    lmb_test_model_spec_default(&s, LMB_ARCH_LLAMA);
    s.dtype = LMB_F16;
    s.awq_group = 32;
    lmb_model *m = fixture("awq", &s);
    cr_assert(m->cfg.quant.awq);
    const lmb_layer_weights *L = &m->w.layers[0];
    cr_assert(lmb_linear_quantized(&L->q));
    cr_assert(!lmb_tensor_present(&L->q.w));
    check_shape(&L->q.qweight, 64, 64 / 8);
    check_shape(&L->q.qzeros, 64 / 32, 64 / 8);
    check_shape(&L->q.scales, 64 / 32, 64);
    check_shape(&L->k.qweight, 64, 32 / 8);
    check_shape(&L->down.qweight, 128, 64 / 8);
    check_shape(&L->down.scales, 128 / 32, 64);
    cr_assert_eq(L->down.in, 128);
    cr_assert_eq(L->down.out, 64);
    cr_assert(!lmb_linear_quantized(&m->w.head)); /* as AutoAWQ, the fixture leaves lm_head dense */
    check_shape(&m->w.head.w, 256, 64);
    uint64_t by[LMB_DTYPE_COUNT];
    lmb_weights_bytes(&m->w, m->cfg.n_layers, by);
    cr_assert(by[LMB_I32] > 0 && by[LMB_F16] > 0);
    lmb_model_close(m);
}

/* AWQ wqkv: columns of qweight/qzeros (hd/8 per head) and scales (hd per head) follow the grouped layout. */
Test(weights, awq_internlm2_split_columns) {
    lmb_test_model_spec s;
    lmb_test_model_spec_default(&s, LMB_ARCH_INTERNLM2);
    s.dtype = LMB_F16;
    s.awq_group = 32;
    lmb_model *m = fixture("awqil", &s);
    int hd = 16, r = 2, G = 2;
    for (int i = 0; i < s.layers; i++) {
        const lmb_layer_weights *L = &m->w.layers[i];
        const char *parts[] = {"qweight", "qzeros", "scales"};
        for (int p = 0; p < 3; p++) {
            char name[128];
            snprintf(name, sizeof name, "model.layers.%d.attention.wqkv.%s", i, parts[p]);
            const lmb_tensor *f = lmb_st_find(m->st, name);
            const lmb_tensor *tq = p == 0 ? &L->q.qweight : p == 1 ? &L->q.qzeros : &L->q.scales;
            const lmb_tensor *tk = p == 0 ? &L->k.qweight : p == 1 ? &L->k.qzeros : &L->k.scales;
            const lmb_tensor *tv = p == 0 ? &L->v.qweight : p == 1 ? &L->v.qzeros : &L->v.scales;
            int u = p == 2 ? hd : hd / 8; /* columns per head */
            int64_t rows = f->shape[0], cols = f->shape[1];
            cr_assert_eq(cols, (int64_t)G * (r + 2) * u);
            check_shape(tq, rows, (int64_t)G * r * u);
            check_shape(tk, rows, (int64_t)G * u);
            check_shape(tv, rows, (int64_t)G * u);
            size_t es = lmb_dtype_size(f->dtype);
            const char *src = f->data;
            for (int64_t row = 0; row < rows; row++)
                for (int g = 0; g < G; g++) {
                    const char *grp = src + (size_t)(row * cols + (int64_t)g * (r + 2) * u) * es;
                    cr_assert_eq(memcmp((const char *)tq->data + (size_t)(row * G * r * u + g * r * u) * es, grp,
                                        (size_t)(r * u) * es),
                                 0);
                    cr_assert_eq(memcmp((const char *)tk->data + (size_t)(row * G * u + g * u) * es,
                                        grp + (size_t)(r * u) * es, (size_t)u * es),
                                 0);
                    cr_assert_eq(memcmp((const char *)tv->data + (size_t)(row * G * u + g * u) * es,
                                        grp + (size_t)((r + 1) * u) * es, (size_t)u * es),
                                 0);
                }
        }
    }
    lmb_model_close(m);
}

/* ---- errors ---------------------------------------------------------------------------------------------- */

/* Opens TMP/name (a fixture from spec) and its config for direct lmb_weights_bind calls. */
static lmb_safetensors *open_fixture(const char *name, const lmb_test_model_spec *s, lmb_model_config *cfg) {
    char dir[4096];
    lmb_error err;
    lmb_path_join(dir, sizeof dir, tmp, name, NULL);
    mkdir(dir, 0755);
    cr_assert_eq(lmb_test_make_model(dir, s, &err), 0, "%s", err.msg);
    cr_assert_eq(lmb_config_load(dir, cfg, &err), 0, "%s", err.msg);
    lmb_safetensors *st;
    cr_assert_eq(lmb_st_open_dir(dir, &st, &err), 0, "%s", err.msg);
    return st;
}

static void bind_fails(const lmb_model_config *cfg, const lmb_safetensors *st, lmb_error *err) {
    lmb_weights w;
    memset(&w, 0x5a, sizeof w);
    cr_assert_neq(lmb_weights_bind(cfg, st, &w, err), 0);
    cr_assert_null(w.layers, "a failed bind leaves nothing to free");
    cr_assert_eq(w.n_owned, 0);
    lmb_weights_free(&w, cfg->n_layers);
}

Test(weights, missing_tensors_listed) {
    lmb_test_model_spec s;
    lmb_test_model_spec_default(&s, LMB_ARCH_LLAMA);
    lmb_model_config c;
    lmb_safetensors *st = open_fixture("miss", &s, &c);
    lmb_error err;
    c.n_layers = 3; /* one layer more than stored: its 9 tensors are missing */
    bind_fails(&c, st, &err);
    cr_assert(strstr(err.msg, "9 missing tensors: model.layers.2.input_layernorm.weight, "
                              "model.layers.2.self_attn.q_proj.weight"),
              "%s", err.msg);
    cr_assert(strstr(err.msg, "model.layers.2.mlp.down_proj.weight"), "%s", err.msg);
    cr_assert_null(strstr(err.msg, "more"), "%s", err.msg);
    c.n_layers = 5; /* 27 missing: 10 named, then a count */
    bind_fails(&c, st, &err);
    cr_assert(strstr(err.msg, "27 missing tensors: "), "%s", err.msg);
    cr_assert(strstr(err.msg, " and 17 more"), "%s", err.msg);
    c.n_layers = 2;
    c.qkv_bias = true;
    bind_fails(&c, st, &err);
    cr_assert(strstr(err.msg, "6 missing tensors: model.layers.0.self_attn.q_proj.bias"), "%s", err.msg);
    lmb_st_close(st);
}

Test(weights, missing_and_unexpected_in_one_error) {
    lmb_test_model_spec s;
    lmb_test_model_spec_default(&s, LMB_ARCH_LLAMA);
    lmb_model_config c;
    lmb_safetensors *st = open_fixture("both", &s, &c);
    lmb_error err;
    c.n_layers = 1; /* layer 1 is unexpected */
    c.tied_embeddings = false;
    c.mlp_bias = true; /* and layer 0's mlp biases are missing */
    bind_fails(&c, st, &err);
    cr_assert(strstr(err.msg, "LlamaForCausalLM checkpoint does not match its config"), "%s", err.msg);
    cr_assert(strstr(err.msg, "3 missing tensors: model.layers.0.mlp.gate_proj.bias, model.layers.0.mlp.up_proj.bias, "
                              "model.layers.0.mlp.down_proj.bias; 9 unexpected tensors: model.layers.1."),
              "%s", err.msg);
    lmb_st_close(st);
}

Test(weights, shape_mismatch_named) {
    lmb_test_model_spec s;
    lmb_test_model_spec_default(&s, LMB_ARCH_QWEN2);
    lmb_model_config c;
    lmb_safetensors *st = open_fixture("shape", &s, &c);
    lmb_error err;
    c.ffn = 100;
    bind_fails(&c, st, &err);
    cr_assert(strstr(err.msg, "tensor \"model.layers.0.mlp.gate_proj.weight\" has shape [128, 64], expected [100, 64]"),
              "%s", err.msg);
    lmb_st_close(st);
}

/* Rewrites the fixture's tensors into DIR2/model.safetensors, leaving out `drop` and adding `add` (zeros). */
static void rewrite(const lmb_safetensors *st, const char *dir, const char *drop, const char *add, lmb_dtype dt,
                    int ndim, const int64_t *shape) {
    lmb_error err;
    lmb_st_writer *w = lmb_st_writer_new();
    for (int i = 0; i < lmb_st_count(st); i++) {
        const lmb_tensor *t = lmb_st_at(st, i);
        if (drop && strcmp(t->name, drop) == 0) continue;
        cr_assert_eq(lmb_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data, &err), 0, "%s", err.msg);
    }
    void *zeros = calloc(1, 1 << 16);
    if (add) cr_assert_eq(lmb_st_writer_add(w, add, dt, ndim, shape, zeros, &err), 0, "%s", err.msg);
    char path[4096];
    mkdir(dir, 0755);
    lmb_path_join(path, sizeof path, dir, "model.safetensors", NULL);
    cr_assert_eq(lmb_st_writer_save(w, path, &err), 0, "%s", err.msg);
    lmb_st_writer_free(w);
    free(zeros);
}

static lmb_safetensors *reopen(const char *dir) {
    lmb_safetensors *st;
    lmb_error err;
    cr_assert_eq(lmb_st_open_dir(dir, &st, &err), 0, "%s", err.msg);
    return st;
}

Test(weights, dtype_rules) {
    lmb_test_model_spec s;
    lmb_test_model_spec_default(&s, LMB_ARCH_LLAMA);
    lmb_model_config c;
    lmb_safetensors *st = open_fixture("dt", &s, &c);
    char d2[4096];
    lmb_path_join(d2, sizeof d2, tmp, "dt2", NULL);
    int64_t h[] = {64};
    lmb_error err;

    rewrite(st, d2, "model.norm.weight", "model.norm.weight", LMB_I32, 1, h);
    lmb_safetensors *st2 = reopen(d2);
    bind_fails(&c, st2, &err);
    cr_assert(strstr(err.msg, "tensor \"model.norm.weight\" has dtype I32, expected F32, F16 or BF16"), "%s", err.msg);
    lmb_st_close(st2);

    /* weights need not share one dtype */
    rewrite(st, d2, "model.norm.weight", "model.norm.weight", LMB_BF16, 1, h);
    st2 = reopen(d2);
    lmb_weights w;
    cr_assert_eq(lmb_weights_bind(&c, st2, &w, &err), 0, "%s", err.msg);
    cr_assert_eq(w.final_norm.dtype, LMB_BF16);
    uint64_t by[LMB_DTYPE_COUNT];
    uint64_t total = lmb_weights_bytes(&w, c.n_layers, by);
    cr_assert_eq(by[LMB_BF16], 128u);
    cr_assert_eq(by[LMB_F32] + by[LMB_BF16], total);
    lmb_weights_free(&w, c.n_layers);
    lmb_st_close(st2);
    lmb_st_close(st);
}

Test(weights, ignored_and_unexpected_extras) {
    lmb_test_model_spec s;
    lmb_test_model_spec_default(&s, LMB_ARCH_MISTRAL);
    lmb_model_config c;
    lmb_safetensors *st = open_fixture("ex", &s, &c);
    char d2[4096];
    lmb_path_join(d2, sizeof d2, tmp, "ex2", NULL);
    int64_t n8[] = {8};
    lmb_error err;
    rewrite(st, d2, NULL, "model.layers.0.self_attn.rotary_emb.inv_freq", LMB_F32, 1, n8);
    lmb_safetensors *st2 = reopen(d2);
    lmb_weights w;
    cr_assert_eq(lmb_weights_bind(&c, st2, &w, &err), 0, "inv_freq is ignored: %s", err.msg);
    lmb_weights_free(&w, c.n_layers);
    lmb_st_close(st2);

    rewrite(st, d2, NULL, "model.extra.weight", LMB_F32, 1, n8);
    st2 = reopen(d2);
    bind_fails(&c, st2, &err);
    cr_assert(strstr(err.msg, "1 unexpected tensor: model.extra.weight"), "%s", err.msg);
    cr_assert_null(strstr(err.msg, "missing"), "%s", err.msg);
    lmb_st_close(st2);
    lmb_st_close(st);
}

Test(weights, tied_head_views_embedding_even_if_stored) {
    lmb_test_model_spec s;
    lmb_test_model_spec_default(&s, LMB_ARCH_LLAMA);
    s.tied = true;
    lmb_model_config c;
    lmb_safetensors *st = open_fixture("tied", &s, &c);
    cr_assert(c.tied_embeddings);
    char d2[4096];
    lmb_path_join(d2, sizeof d2, tmp, "tied2", NULL);
    int64_t vh[] = {256, 64};
    rewrite(st, d2, NULL, "lm_head.weight", LMB_F32, 2, vh);
    lmb_safetensors *st2 = reopen(d2);
    lmb_weights w;
    lmb_error err;
    cr_assert_eq(lmb_weights_bind(&c, st2, &w, &err), 0, "%s", err.msg);
    cr_assert_eq(w.head.w.data, w.embed.data);
    cr_assert_str_eq(w.head.w.name, "model.embed_tokens.weight");
    cr_assert_eq(w.head.out, 256);
    cr_assert_eq(w.head.in, 64);
    uint64_t by[LMB_DTYPE_COUNT];
    cr_assert_eq(lmb_weights_bytes(&w, c.n_layers, by), (uint64_t)lmb_config_param_count(&c) * 4, "head counted once");
    lmb_weights_free(&w, c.n_layers);
    lmb_st_close(st2);
    lmb_st_close(st);
}

Test(weights, awq_config_errors) {
    lmb_test_model_spec s;
    lmb_test_model_spec_default(&s, LMB_ARCH_INTERNLM2);
    s.awq_group = 32;
    lmb_model_config c;
    lmb_safetensors *st = open_fixture("awqbad", &s, &c);
    lmb_error err;
    c.quant.group_size = 48; /* 64 % 48 != 0 */
    bind_fails(&c, st, &err);
    cr_assert(strstr(err.msg, "cannot be AWQ-quantized with group size 48"), "%s", err.msg);
    c.quant.group_size = 16; /* shapes of qzeros/scales no longer match */
    bind_fails(&c, st, &err);
    cr_assert(strstr(err.msg, "qzeros\" has shape [2, 16], expected [4, 16]"), "%s", err.msg);
    lmb_st_close(st);
}

Test(weights, model_open_errors_name_the_folder) {
    lmb_model *m = NULL;
    lmb_error err;
    cr_assert_neq(lmb_model_open(tmp, &m, &err), 0);
    cr_assert_null(m);
    cr_assert(strstr(err.msg, tmp) && strstr(err.msg, "config.json"), "%s", err.msg);
    lmb_test_model_spec s;
    lmb_test_model_spec_default(&s, LMB_ARCH_LLAMA);
    lmb_error e2;
    cr_assert_eq(lmb_test_make_model(tmp, &s, &e2), 0);
    const char *cfg = "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64, \"num_hidden_layers\": 3,"
                      " \"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"intermediate_size\": 128,"
                      " \"vocab_size\": 256, \"max_position_embeddings\": 256}";
    lmb_test_write_file(tmp, "config.json", cfg, strlen(cfg), NULL, 0);
    cr_assert_neq(lmb_model_open(tmp, &m, &err), 0);
    cr_assert(strstr(err.msg, tmp) && strstr(err.msg, "9 missing tensors"), "%s", err.msg);
    cr_assert_eq(lmb_model_open("/nonexistent/dir", &m, &err), -1);
}
