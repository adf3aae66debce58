/* test_quantize.c — the AWQ quantize stage (quantize/) on tiny fixture models, on the CPU:
 *   - folding keeps the model equivalent: with a fixed α = 0.5 (non-trivial scales) and the dense (F32,
 *     unquantized, unclipped) output, the folded model's logits equal the original's — Llama with GQA
 *     (tied o scales), Llama MHA with biases, Qwen2 (q/k/v biases), InternLM2 (fused wqkv);
 *   - the AWQ output folder loads, has AutoAWQ's quantization_config and tensors, and its logits stay
 *     close to the fp model's; AWQ's block-output MSE is never above RTN's on the calibration activations,
 *     and on a model with activation outliers the whole AWQ model is closer to fp than the RTN one;
 *   - RTN writes exactly lmb_int4_quantize + lmb_awq_pack of the original weights;
 *   - an AutoAWQ-layout checkpoint (random qweight/qzeros/scales) loads and its CPU logits equal those of
 *     the same model with every linear dequantized to a dense F32 weight;
 *   - the calibration loader (plain text, JSONL "text"/"prompt", bad lines) and the CLI's usage errors. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "../engine/engine.h"
#include "../engine/fileio.h"
#include "../engine/safetensors.h"
#include "../kernels/kernels.h"
#include "../quantize/int4.h"
#include "../quantize/quantize.h"
#include "support/fixtures.h"

static char tmp[64];

static void setup(void) {
    lmb_error err;
    cr_assert_eq(lmb_test_tmpdir(tmp, sizeof tmp, &err), 0, "%s", err.msg);
}

static void teardown(void) { lmb_test_rmtree(tmp, NULL); }

TestSuite(quantize, .init = setup, .fini = teardown);

static void path(char *buf, size_t cap, const char *name) { lmb_path_join(buf, cap, tmp, name, NULL); }

static void make_model(const char *name, const lmb_test_model_spec *s) {
    char dir[4096];
    lmb_error err;
    path(dir, sizeof dir, name);
    mkdir(dir, 0755);
    cr_assert_eq(lmb_test_make_model(dir, s, &err), 0, "%s", err.msg);
}

/* n_seqs x seqlen random token ids (2 .. vocab-1). */
static lmb_calib_set calib(int n_seqs, int seqlen, int vocab, uint64_t seed) {
    lmb_calib_set c = {.n_seqs = n_seqs, .seqlen = seqlen};
    c.tokens = malloc(sizeof(int32_t) * (size_t)n_seqs * seqlen);
    lmb_test_rng rng;
    lmb_test_rng_seed(&rng, seed);
    for (int i = 0; i < n_seqs * seqlen; i++) c.tokens[i] = 2 + (int32_t)(lmb_test_rng_u64(&rng) % (uint64_t)(vocab - 2));
    return c;
}

static int quantize(const char *src, const char *dst, lmb_awq_options *o, const lmb_calib_set *cs,
                    lmb_awq_report *rep, lmb_error *err) {
    char in[4096], out[4096];
    path(in, sizeof in, src);
    path(out, sizeof out, dst);
    o->model_dir = in;
    o->out_dir = out;
    o->calib_set = cs;
    o->quiet = true;
    return lmb_quantize_awq(o, rep, err);
}

/* Logits of every position of ids under the CPU engine ([n x vocab], caller frees). */
static float *logits_of(const char *name, const int32_t *ids, int n, int *vocab) {
    char dir[4096];
    path(dir, sizeof dir, name);
    lmb_engine_config cfg;
    lmb_engine_config_default(&cfg);
    cfg.quiet = true;
    cfg.kv_cache_mb = 16;
    lmb_engine *e;
    lmb_error err;
    cr_assert_eq(lmb_engine_open(&cfg, dir, &e, &err), 0, "%s: %s", name, err.msg);
    *vocab = lmb_engine_model_config(e)->vocab;
    float *l = malloc(sizeof(float) * (size_t)n * *vocab);
    cr_assert_eq(lmb_engine_logits(e, ids, n, 0, l, &err), 0, "%s", err.msg);
    lmb_engine_close(e);
    return l;
}

static double rel_diff(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]), den += (double)b[i] * b[i];
    return sqrt(num / den);
}

static const int32_t probe[12] = {1, 17, 200, 33, 5, 99, 140, 250, 7, 64, 128, 3};

/* ---- folding ------------------------------------------------------------------------------------------ */

static void check_folding(lmb_arch arch, int heads, int kv_heads, bool bias, bool duo) {
    lmb_test_model_spec s;
    lmb_test_model_spec_default(&s, arch);
    s.heads = heads, s.kv_heads = kv_heads, s.attn_bias = bias;
    make_model("fp", &s);
    lmb_calib_set cs = calib(3, 24, s.vocab, 5);
    lmb_awq_options o;
    lmb_awq_options_default(&o);
    o.group_size = 32;
    o.alpha = 0.5;
    o.dense = true;
    o.duo = duo;
    lmb_awq_report rep;
    lmb_error err;
    cr_assert_eq(quantize("fp", "folded", &o, &cs, &rep, &err), 0, "%s", err.msg);
    for (int l = 0; l < rep.n_layers; l++)
        for (int g = 0; g < LMB_AWQ_GROUPS; g++) cr_assert(rep.layers[l][g].scaled && rep.layers[l][g].alpha == 0.5);
    lmb_awq_report_free(&rep);
    int V;
    float *a = logits_of("fp", probe, 12, &V), *b = logits_of("folded", probe, 12, &V);
    double r = rel_diff(b, a, (size_t)12 * V);
    cr_assert_lt(r, 2e-5, "%s: folded logits differ by %g", lmb_arch_name(arch), r);
    /* and the scales were not trivial: the folded norm weights moved */
    char dir[4096];
    lmb_model *m0, *m1;
    path(dir, sizeof dir, "fp");
    cr_assert_eq(lmb_model_open(dir, &m0, &err), 0, "%s", err.msg);
    path(dir, sizeof dir, "folded");
    cr_assert_eq(lmb_model_open(dir, &m1, &err), 0, "%s", err.msg);
    cr_assert_not(m1->cfg.quant.awq);
    const lmb_tensor *n0 = &m0->w.layers[1].attn_norm, *n1 = &m1->w.layers[1].attn_norm;
    cr_assert_neq(memcmp(n0->data, n1->data, n0->nbytes), 0, "attention norm unchanged: scales were trivial");
    lmb_model_close(m0);
    lmb_model_close(m1);
    free(a), free(b);
    lmb_calib_free(&cs);
}

Test(quantize, folding_keeps_llama_gqa_equivalent) { check_folding(LMB_ARCH_LLAMA, 4, 2, false, false); }
Test(quantize, folding_keeps_llama_mha_with_biases_equivalent) { check_folding(LMB_ARCH_LLAMA, 4, 4, true, false); }
Test(quantize, folding_keeps_qwen2_equivalent) { check_folding(LMB_ARCH_QWEN2, 4, 2, false, false); }
Test(quantize, folding_keeps_internlm2_equivalent) { check_folding(LMB_ARCH_INTERNLM2, 4, 2, true, false); }
Test(quantize, folding_keeps_llama_equivalent_with_duo_scaling) { check_folding(LMB_ARCH_LLAMA, 4, 2, false, true); }

static void add_outliers(const char *name);

/* Duo scaling (AutoAWQ's s = x^a / w^(1-a)) searches from plain RTN too, so it never ends above RTN. */
Test(quantize, duo_scaling_search_never_worse_than_rtn) {
    lmb_test_model_spec s;
    lmb_test_model_spec_default(&s, LMB_ARCH_LLAMA);
    make_model("fp", &s);
    add_outliers("fp");
    lmb_calib_set cs = calib(4, 32, s.vocab, 9);
    lmb_awq_options o;
    lmb_awq_options_default(&o);
    o.group_size = 32;
    o.duo = true;
    lmb_awq_report rep;
    lmb_error err;
    cr_assert_eq(quantize("fp", "awq-duo", &o, &cs, &rep, &err), 0, "%s", err.msg);
    int improved = 0;
    for (int l = 0; l < rep.n_layers; l++)
        for (int g = 0; g < LMB_AWQ_GROUPS; g++) {
            const lmb_awq_group_stats *st = &rep.layers[l][g];
            cr_assert_leq(st->mse_best, st->mse_rtn, "layer %d group %d", l, g);
            improved += st->mse_best < st->mse_rtn;
        }
    cr_assert_gt(improved, 0, "the duo search never moved off RTN");
    lmb_awq_report_free(&rep);
    lmb_calib_free(&cs);
}

/* ---- the AWQ output ---------------------------------------------------------------------------------- */

/* Multiplies channels 3, 17 and 40 of every norm weight by 12: activation outliers, AWQ's raison d'être. */
static void add_outliers(const char *name) {
    char dir[4096], file[4096];
    lmb_error err;
    path(dir, sizeof dir, name);
    lmb_path_join(file, sizeof file, dir, "model.safetensors", NULL);
    lmb_safetensors *st;
    cr_assert_eq(lmb_st_open_file(file, &st, &err), 0, "%s", err.msg);
    int n = lmb_st_count(st);
    void **copies = calloc((size_t)n, sizeof *copies);
    lmb_st_writer *w = lmb_st_writer_new();
    for (int i = 0; i < n; i++) {
        const lmb_tensor *t = lmb_st_at(st, i);
        copies[i] = malloc(t->nbytes);
        memcpy(copies[i], t->data, t->nbytes);
        if (strstr(t->name, "norm") && t->dtype == LMB_F32)
            for (int c = 3; c < 48; c += 14) ((float *)copies[i])[c] *= 12.f;
        cr_assert_eq(lmb_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, copies[i], &err), 0, "%s", err.msg);
    }
    lmb_st_close(st);
    cr_assert_eq(lmb_st_writer_save(w, file, &err), 0, "%s", err.msg);
    lmb_st_writer_free(w);
    for (int i = 0; i < n; i++) free(copies[i]);
    free(copies);
}

static double mse_vs(const float *a, const float *ref, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]);
    return s / (double)n;
}

Test(quantize, awq_output_loads_and_beats_rtn) {
    lmb_test_model_spec s;
    lmb_test_model_spec_default(&s, LMB_ARCH_LLAMA);
    s.tied = true;
    make_model("fp", &s);
    add_outliers("fp");
    lmb_calib_set cs = calib(4, 32, s.vocab, 9);
    lmb_awq_options o;
    lmb_awq_options_default(&o);
    o.group_size = 32;
    lmb_awq_report rep;
    lmb_error err;
    cr_assert_eq(quantize("fp", "awq", &o, &cs, &rep, &err), 0, "%s", err.msg);
    cr_assert_eq(rep.n_layers, 2);
    for (int l = 0; l < rep.n_layers; l++)
        for (int g = 0; g < LMB_AWQ_GROUPS; g++) {
            const lmb_awq_group_stats *st = &rep.layers[l][g];
            cr_assert(st->scaled);
            cr_assert_leq(st->mse_best, st->mse_rtn, "layer %d group %d: searched %g > rtn %g", l, g, st->mse_best,
                          st->mse_rtn);
            cr_assert_leq(st->mse_final, st->mse_rtn, "layer %d group %d: final %g > rtn %g", l, g, st->mse_final,
                          st->mse_rtn);
        }
    lmb_awq_report_free(&rep);
    lmb_awq_options_default(&o);
    o.group_size = 32;
    o.method = LMB_QUANT_RTN;
    cr_assert_eq(quantize("fp", "rtn", &o, NULL, NULL, &err), 0, "%s", err.msg);

    /* the folder: AutoAWQ's config and tensor names, loadable */
    char dir[4096];
    lmb_model *m;
    path(dir, sizeof dir, "awq");
    cr_assert_eq(lmb_model_open(dir, &m, &err), 0, "%s", err.msg);
    cr_assert(m->cfg.quant.awq && m->cfg.quant.bits == 4 && m->cfg.quant.group_size == 32);
    cr_assert_eq(m->cfg.dtype, LMB_F16);
    cr_assert(lmb_linear_quantized(&m->w.layers[0].q) && lmb_linear_quantized(&m->w.layers[1].down));
    cr_assert(lmb_st_find(m->st, "model.layers.1.mlp.down_proj.qzeros"));
    cr_assert_eq(lmb_st_find(m->st, "model.layers.0.self_attn.o_proj.scales")->dtype, LMB_F16);
    lmb_model_close(m);
    char cfgp[4096];
    lmb_path_join(cfgp, sizeof cfgp, dir, "config.json", NULL);
    json_error_t je;
    json_t *c = json_load_file(cfgp, 0, &je), *q = json_object_get(c, "quantization_config");
    cr_assert_str_eq(json_string_value(json_object_get(q, "quant_method")), "awq");
    cr_assert_str_eq(json_string_value(json_object_get(q, "version")), "gemm");
    cr_assert(json_is_true(json_object_get(q, "zero_point")));
    cr_assert_eq(json_integer_value(json_object_get(q, "group_size")), 32);
    json_decref(c);

    /* on the calibration tokens, the AWQ model is closer to the fp model than RTN */
    int V, n = cs.seqlen;
    float *fp = logits_of("fp", cs.tokens, n, &V), *aw = logits_of("awq", cs.tokens, n, &V),
          *rt = logits_of("rtn", cs.tokens, n, &V);
    double e_awq = mse_vs(aw, fp, (size_t)n * V), e_rtn = mse_vs(rt, fp, (size_t)n * V);
    cr_assert_lt(e_awq, e_rtn, "AWQ logits MSE %g is not below RTN's %g", e_awq, e_rtn);
    cr_assert_lt(rel_diff(aw, fp, (size_t)n * V), 0.5, "AWQ logits far from fp: %g (rtn %g)", rel_diff(aw, fp, (size_t)n * V), rel_diff(rt, fp, (size_t)n * V));
    free(fp), free(aw), free(rt);
    lmb_calib_free(&cs);
}

/* InternLM2: q/k/v fused back into wqkv (grouped rows) before packing; the folder loads and stays close. */
Test(quantize, internlm2_awq_output_loads) {
    lmb_test_model_spec s;
    lmb_test_model_spec_default(&s, LMB_ARCH_INTERNLM2);
    s.attn_bias = true;
    make_model("fp", &s);
    lmb_calib_set cs = calib(2, 32, s.vocab, 3);
    lmb_awq_options o;
    lmb_awq_options_default(&o);
    o.group_size = 32;
    lmb_error err;
    cr_assert_eq(quantize("fp", "awq", &o, &cs, NULL, &err), 0, "%s", err.msg);
    char dir[4096];
    lmb_model *m;
    path(dir, sizeof dir, "awq");
    cr_assert_eq(lmb_model_open(dir, &m, &err), 0, "%s", err.msg);
    cr_assert(lmb_st_find(m->st, "model.layers.0.attention.wqkv.qweight"));
    cr_assert(lmb_st_find(m->st, "model.layers.0.attention.wqkv.bias"));
    cr_assert(lmb_linear_quantized(&m->w.layers[1].k));
    lmb_model_close(m);
    int V;
    float *a = logits_of("fp", probe, 12, &V), *b = logits_of("awq", probe, 12, &V);
    double r = rel_diff(b, a, (size_t)12 * V);
    cr_assert_lt(r, 0.5, "InternLM2 AWQ logits differ by %g", r);
    free(a), free(b);
    lmb_calib_free(&cs);
}

/* RTN = the plain quantizer on the original weights, packed. */
Test(quantize, rtn_is_plain_round_to_nearest) {
    lmb_test_model_spec s;
    lmb_test_model_spec_default(&s, LMB_ARCH_QWEN2);
    make_model("fp", &s);
    lmb_awq_options o;
    lmb_awq_options_default(&o);
    o.group_size = 64;
    o.method = LMB_QUANT_RTN;
    lmb_error err;
    cr_assert_eq(quantize("fp", "rtn", &o, NULL, NULL, &err), 0, "%s", err.msg);
    char dir[4096];
    lmb_model *m0, *m1;
    path(dir, sizeof dir, "fp");
    cr_assert_eq(lmb_model_open(dir, &m0, &err), 0, "%s", err.msg);
    path(dir, sizeof dir, "rtn");
    cr_assert_eq(lmb_model_open(dir, &m1, &err), 0, "%s", err.msg);
    const lmb_linear *src = &m0->w.layers[1].gate, *dst = &m1->w.layers[1].gate;
    int out = src->out, in = src->in, ng = in / 64;
    float *W = malloc(sizeof(float) * out * in), *s_ = malloc(sizeof(float) * out * ng);
    lmb_to_f32(W, src->w.data, src->w.dtype, (size_t)out * in);
    uint8_t *codes = malloc((size_t)out * in), *zeros = malloc((size_t)out * ng);
    int32_t *qw = malloc(4 * (size_t)in * out / 8), *qz = malloc(4 * (size_t)ng * out / 8);
    uint16_t *sc = malloc(2 * (size_t)ng * out);
    lmb_int4_quantize(W, out, in, 64, codes, zeros, s_);
    lmb_awq_pack(codes, zeros, s_, out, in, 64, qw, qz, sc);
    cr_assert_eq(memcmp(qw, dst->qweight.data, dst->qweight.nbytes), 0);
    cr_assert_eq(memcmp(qz, dst->qzeros.data, dst->qzeros.nbytes), 0);
    cr_assert_eq(memcmp(sc, dst->scales.data, dst->scales.nbytes), 0);
    cr_assert(lmb_tensor_present(&m1->w.layers[1].q.bias)); /* Qwen2's q/k/v biases travel (fp16) */
    cr_assert_eq(m1->w.layers[1].q.bias.dtype, LMB_F16);
    free(W), free(s_), free(codes), free(zeros), free(qw), free(qz), free(sc);
    lmb_model_close(m0);
    lmb_model_close(m1);
}

/* ---- AutoAWQ-layout checkpoints ---------------------------------------------------------------------- */

/* Writes DST: SRC with every qweight/qzeros/scales triple replaced by its dequantized dense F32 weight. */
static void dequantize_folder(const char *src, const char *dst) {
    char sdir[4096], ddir[4096], f[4096];
    path(sdir, sizeof sdir, src);
    path(ddir, sizeof ddir, dst);
    mkdir(ddir, 0755);
    lmb_error err;
    lmb_path_join(f, sizeof f, sdir, "model.safetensors", NULL);
    lmb_safetensors *st;
    cr_assert_eq(lmb_st_open_file(f, &st, &err), 0, "%s", err.msg);
    lmb_st_writer *w = lmb_st_writer_new();
    int n = lmb_st_count(st), nb = 0;
    void **bufs = calloc((size_t)n, sizeof *bufs);
    char (*names)[160] = calloc((size_t)n, sizeof *names);
    for (int i = 0; i < n; i++) {
        const lmb_tensor *t = lmb_st_at(st, i);
        size_t l = strlen(t->name);
        if (l > 7 && strcmp(t->name + l - 7, ".qzeros") == 0) continue;
        if (l > 7 && strcmp(t->name + l - 7, ".scales") == 0) continue;
        if (l > 8 && strcmp(t->name + l - 8, ".qweight") == 0) {
            char base[160], nz[170], ns[170];
            snprintf(base, sizeof base, "%.*s", (int)(l - 8), t->name);
            snprintf(nz, sizeof nz, "%s.qzeros", base);
            snprintf(ns, sizeof ns, "%s.scales", base);
            const lmb_tensor *z = lmb_st_find(st, nz), *sc = lmb_st_find(st, ns);
            int K = (int)t->shape[0], N = (int)t->shape[1] * 8, G = K / (int)z->shape[0];
            float *W = malloc(sizeof(float) * (size_t)N * K);
            lmb_cpu_awq_dequant(W, t->data, z->data, sc->data, K, N, G);
            snprintf(names[nb], sizeof names[nb], "%s.weight", base);
            bufs[nb] = W;
            cr_assert_eq(lmb_st_writer_add(w, names[nb++], LMB_F32, 2, (int64_t[]){N, K}, W, &err), 0, "%s", err.msg);
        } else {
            cr_assert_eq(lmb_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data, &err), 0, "%s", err.msg);
        }
    }
    lmb_path_join(f, sizeof f, ddir, "model.safetensors", NULL);
    cr_assert_eq(lmb_st_writer_save(w, f, &err), 0, "%s", err.msg);
    lmb_st_writer_free(w);
    lmb_st_close(st);
    for (int i = 0; i < nb; i++) free(bufs[i]);
    free(bufs), free(names);
    lmb_path_join(f, sizeof f, sdir, "config.json", NULL);
    json_error_t je;
    json_t *c = json_load_file(f, 0, &je);
    json_object_del(c, "quantization_config");
    lmb_path_join(f, sizeof f, ddir, "config.json", NULL);
    cr_assert_eq(json_dump_file(c, f, JSON_INDENT(2)), 0);
    json_decref(c);
}

static void check_autoawq_fixture(lmb_arch arch) {
    lmb_test_model_spec s;
    lmb_test_model_spec_default(&s, arch);
    s.awq_group = 32;
    s.dtype = LMB_F16;
    make_model("autoawq", &s);
    dequantize_folder("autoawq", "dense");
    int V;
    float *a = logits_of("autoawq", probe, 12, &V), *b = logits_of("dense", probe, 12, &V);
    for (int i = 0; i < 12 * V; i++) cr_assert_eq(a[i], b[i], "%s: logit %d: %g vs %g", lmb_arch_name(arch), i, a[i], b[i]);
    free(a), free(b);
}

Test(quantize, autoawq_layout_llama_loads_and_equals_dequantized) { check_autoawq_fixture(LMB_ARCH_LLAMA); }
Test(quantize, autoawq_layout_internlm2_loads_and_equals_dequantized) { check_autoawq_fixture(LMB_ARCH_INTERNLM2); }

/* ---- errors --------------------------------------------------------------------------------------------- */

Test(quantize, refuses_bad_inputs) {
    lmb_test_model_spec s;
    lmb_test_model_spec_default(&s, LMB_ARCH_LLAMA);
    make_model("fp", &s);
    lmb_awq_options o;
    lmb_awq_options_default(&o);
    o.method = LMB_QUANT_RTN;
    lmb_error err;
    o.group_size = 48; /* 64 % 48 != 0 */
    cr_assert_neq(quantize("fp", "bad", &o, NULL, NULL, &err), 0);
    cr_assert(strstr(err.msg, "groups of 48"), "%s", err.msg);
    o.group_size = 32;
    o.w_bits = 3;
    cr_assert_neq(quantize("fp", "bad", &o, NULL, NULL, &err), 0);
    cr_assert(strstr(err.msg, "4-bit"), "%s", err.msg);
    o.w_bits = 4;
    cr_assert_neq(quantize("fp", "fp", &o, NULL, NULL, &err), 0);
    cr_assert(strstr(err.msg, "is the model folder"), "%s", err.msg);
    cr_assert_eq(quantize("fp", "q", &o, NULL, NULL, &err), 0, "%s", err.msg);
    cr_assert_neq(quantize("q", "q2", &o, NULL, NULL, &err), 0); /* already quantized */
    cr_assert(strstr(err.msg, "already AWQ-quantized"), "%s", err.msg);
    o.method = LMB_QUANT_AWQ;
    cr_assert_neq(quantize("fp", "q3", &o, NULL, NULL, &err), 0);
    cr_assert(strstr(err.msg, "--calib"), "%s", err.msg);
}

/* ---- calibration text ------------------------------------------------------------------------------------ */

static lmb_tokenizer *fixture_tokenizer(void) {
    lmb_tokenizer *t;
    lmb_error err;
    cr_assert_eq(lmb_tokenizer_load("tests/fixtures/bytelevel/tokenizer.json", &t, &err), 0,
                 "%s (run the tests from the repository root)", err.msg);
    return t;
}

Test(quantize, calibration_windows_are_even_and_disjoint) {
    int32_t ids[100];
    for (int i = 0; i < 100; i++) ids[i] = i;
    lmb_calib_set c;
    lmb_error err;
    cr_assert_eq(lmb_calib_from_stream(ids, 100, 4, 10, &c, &err), 0, "%s", err.msg);
    cr_assert_eq(c.n_seqs, 4);
    int starts[4] = {0, 30, 60, 90};
    for (int s = 0; s < 4; s++) cr_assert_eq(c.tokens[s * 10], starts[s], "window %d starts at %d", s, c.tokens[s * 10]);
    lmb_calib_free(&c);
    cr_assert_eq(lmb_calib_from_stream(ids, 100, 8, 30, &c, &err), 0, "%s", err.msg); /* only 3 fit */
    cr_assert_eq(c.n_seqs, 3);
    cr_assert_eq(c.tokens[30], 35);
    cr_assert_eq(c.tokens[60], 70);
    lmb_calib_free(&c);
    cr_assert_eq(lmb_calib_from_stream(ids, 7, 8, 30, &c, &err), 0, "%s", err.msg); /* one short sequence */
    cr_assert(c.n_seqs == 1 && c.seqlen == 7);
    lmb_calib_free(&c);
}

Test(quantize, calibration_text_and_jsonl) {
    lmb_tokenizer *tok = fixture_tokenizer();
    lmb_error err;
    char p[4096];
    const char *plain = "def main():\n    return sum(range(10))\n\nprint(main())\n";
    lmb_test_write_file(tmp, "calib.txt", plain, strlen(plain), p, sizeof p);
    lmb_calib_set a, b;
    cr_assert_eq(lmb_calib_load(p, tok, 2, 4, &a, &err), 0, "%s", err.msg);
    cr_assert(a.n_seqs == 2 && a.seqlen == 4 && a.records == 0);
    lmb_ids ids = {0};
    cr_assert_eq(lmb_tokenizer_encode(tok, plain, strlen(plain), LMB_TOK_ADD_SPECIAL, &ids, &err), 0);
    cr_assert_eq(a.stream_tokens, (long)ids.n);
    cr_assert_eq(memcmp(a.tokens, ids.ids, 4 * sizeof(int32_t)), 0);
    lmb_ids_free(&ids);
    const char *jl = "{\"text\": \"hello world\"}\n\n{\"prompt\": \"x = 1\", \"id\": 3}\n";
    lmb_test_write_file(tmp, "calib.jsonl", jl, strlen(jl), p, sizeof p);
    cr_assert_eq(lmb_calib_load(p, tok, 1, 1000, &b, &err), 0, "%s", err.msg);
    cr_assert_eq(b.records, 2);
    cr_assert_eq(b.n_seqs, 1);
    lmb_calib_free(&a);
    lmb_calib_free(&b);
    const char *bad = "{\"text\": \"ok\"}\n{\"messages\": []}\n";
    lmb_test_write_file(tmp, "bad.jsonl", bad, strlen(bad), p, sizeof p);
    cr_assert_neq(lmb_calib_load(p, tok, 4, 1000, &b, &err), 0);
    cr_assert(strstr(err.msg, "bad.jsonl:2") && strstr(err.msg, "\"text\" or \"prompt\""), "%s", err.msg);
    const char *code = "{1: 2}\nx = {}\n"; /* starts with '{' but is not JSONL */
    lmb_test_write_file(tmp, "code.txt", code, strlen(code), p, sizeof p);
    cr_assert_eq(lmb_calib_load(p, tok, 1, 1000, &b, &err), 0, "%s", err.msg);
    cr_assert_eq(b.records, 0);
    lmb_calib_free(&b);
    lmb_test_write_file(tmp, "empty.txt", "\n \n", 3, p, sizeof p);
    cr_assert_neq(lmb_calib_load(p, tok, 4, 16, &b, &err), 0);
    cr_assert(strstr(err.msg, "empty"), "%s", err.msg);
    lmb_tokenizer_free(tok);
}

/* ---- the command ------------------------------------------------------------------------------------------ */

static const char *bin(void) {
    const char *b = getenv("LMB_BIN");
    if (b && *b) return b;
    return lmb_file_exists("build/lmbatch") ? "build/lmbatch" : NULL;
}

static int run(const char *args) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' quantize %s >/dev/null 2>&1", bin(), args);
    int st = system(cmd);
    cr_assert(st != -1 && WIFEXITED(st), "could not run %s", cmd);
    return WEXITSTATUS(st);
}

Test(quantize, command_line) {
    if (!bin()) cr_skip_test("LMB_BIN is not set and build/lmbatch is absent");
    lmb_test_model_spec s;
    lmb_test_model_spec_default(&s, LMB_ARCH_LLAMA);
    make_model("fp", &s);
    char args[8192];
    cr_assert_eq(run(""), 2);
    cr_assert_eq(run("nosuchmethod"), 2);
    snprintf(args, sizeof args, "awq --model '%s/fp' --out '%s/q'", tmp, tmp);
    cr_assert_eq(run(args), 2, "AWQ without --calib is a usage error");
    snprintf(args, sizeof args, "awq --model '%s/fp' --out '%s/q' --rtn --group-size 32 --quiet", tmp, tmp);
    cr_assert_eq(run(args), 0);
    snprintf(args, sizeof args, "awq --model '%s/nothere' --work-dir '%s/q2' --method rtn", tmp, tmp);
    cr_assert_eq(run(args), 4);
    snprintf(args, sizeof args, "awq --model '%s/fp' --out '%s/q3' --calib x --backend tpu", tmp, tmp);
    cr_assert_eq(run(args), 2, "an unknown --backend is a usage error");
    /* AWQ with --backend auto (the GPU where there is one, else the CPU), on a model with a tokenizer */
    s.vocab = 2048;
    make_model("fpt", &s);
    snprintf(args, sizeof args, "cp tests/fixtures/bytelevel/tokenizer.json tests/fixtures/bytelevel/tokenizer_config.json '%s/fpt/'", tmp);
    cr_assert_eq(system(args), 0, "%s", args);
    char calib_path[4096];
    const char *text = "def f(x):\n    return x * 2\n\nclass A:\n    pass\n";
    cr_assert_eq(lmb_test_write_file(tmp, "calib.txt", text, strlen(text), calib_path, sizeof calib_path), 0);
    snprintf(args, sizeof args, "awq --model '%s/fpt' --out '%s/q3' --calib '%s' --calib-samples 2 --calib-seqlen 8 --group-size 32 --quiet",
             tmp, tmp, calib_path);
    cr_assert_eq(run(args), 0, "%s", args);
    char dir[4096];
    lmb_model *m;
    lmb_error err;
    path(dir, sizeof dir, "q");
    cr_assert_eq(lmb_model_open(dir, &m, &err), 0, "%s", err.msg);
    cr_assert(m->cfg.quant.awq && m->cfg.quant.group_size == 32);
    lmb_model_close(m);
}
