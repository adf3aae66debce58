/* fixture_model.c — tiny random model folders for tests (see fixtures.h).
 *
 * The tensor list, names and shapes follow the Hugging Face checkpoints of each architecture (InternLM2 with
 * its own names and fused wqkv in the grouped row layout); values come from a seeded splitmix64 + Box-Muller
 * stream drawn in tensor order, so one spec always yields the same bytes.  Files go through the project's
 * safetensors writer; config.json is written in the transformers-5 style (dtype, rope_parameters) except for
 * InternLM2, whose remote-code config keeps torch_dtype and rope_theta.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../engine/fileio.h"
#include "../../engine/safetensors.h"
#include "fixtures.h"

/* ---- PRNG ------------------------------------------------------------------------------------------------ */

void lmb_test_rng_seed(lmb_test_rng *r, uint64_t seed) {
    r->state = seed;
    r->has_spare = false;
    r->spare = 0;
}

uint64_t lmb_test_rng_u64(lmb_test_rng *r) {
    uint64_t z = (r->state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

double lmb_test_rng_uniform(lmb_test_rng *r) { return (double)(lmb_test_rng_u64(r) >> 11) * 0x1.0p-53; }

double lmb_test_rng_normal(lmb_test_rng *r) {
    if (r->has_spare) {
        r->has_spare = false;
        return r->spare;
    }
    double u1 = 1.0 - lmb_test_rng_uniform(r); /* (0, 1]: log is finite */
    double u2 = lmb_test_rng_uniform(r);
    double rad = sqrt(-2.0 * log(u1)), ang = 6.283185307179586 * u2;
    r->spare = rad * sin(ang);
    r->has_spare = true;
    return rad * cos(ang);
}

/* ---- tensor list ----------------------------------------------------------------------------------------- */

typedef enum { INIT_NORMAL, INIT_NORM, INIT_BITS, INIT_SCALE } init_kind;

typedef struct fx_tensor {
    char name[128];
    lmb_dtype dtype;
    int ndim;
    int64_t shape[2];
    void *data;
    size_t nbytes;
} fx_tensor;

typedef struct fx_list {
    fx_tensor *t;
    int n, cap;
    lmb_test_rng rng;
} fx_list;

static int fx_add(fx_list *l, const char *name, lmb_dtype dt, int ndim, int64_t d0, int64_t d1, init_kind init,
                  double std, lmb_error *err) {
    if (l->n == l->cap) {
        int ncap = l->cap ? l->cap * 2 : 64;
        fx_tensor *nt = realloc(l->t, sizeof *nt * (size_t)ncap);
        if (!nt) return lmb_fail(err, "fixture: out of memory");
        l->t = nt;
        l->cap = ncap;
    }
    fx_tensor *t = &l->t[l->n];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = dt;
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = d1;
    size_t n = (size_t)d0 * (size_t)(ndim == 2 ? d1 : 1);
    t->nbytes = n * lmb_dtype_size(dt);
    t->data = malloc(t->nbytes ? t->nbytes : 1);
    if (!t->data) return lmb_fail(err, "fixture: out of memory");
    l->n++;
    for (size_t i = 0; i < n; i++) {
        double x;
        switch (init) {
        case INIT_NORM: x = 1.0 + 0.1 * lmb_test_rng_normal(&l->rng); break;
        case INIT_SCALE: x = 0.005 + 0.01 * lmb_test_rng_uniform(&l->rng); break;
        case INIT_BITS: ((uint32_t *)t->data)[i] = (uint32_t)lmb_test_rng_u64(&l->rng); continue;
        default: x = std * lmb_test_rng_normal(&l->rng); break;
        }
        switch (dt) {
        case LMB_F32: ((float *)t->data)[i] = (float)x; break;
        case LMB_F16: ((uint16_t *)t->data)[i] = lmb_f32_to_f16((float)x); break;
        case LMB_BF16: ((uint16_t *)t->data)[i] = lmb_f32_to_bf16((float)x); break;
        default: return lmb_fail(err, "fixture: tensor %s: dtype %s cannot hold floats", name, lmb_dtype_name(dt));
        }
    }
    return 0;
}

/* A linear [out, in]: dense .weight, or AWQ qweight [in, out/8], qzeros [in/g, out/8], scales [in/g, out]. */
static int fx_linear(fx_list *l, const lmb_test_model_spec *s, const char *prefix, int64_t out, int64_t in, bool bias,
                     lmb_error *err) {
    char n[128];
    if (s->awq_group > 0) {
        int64_t g = s->awq_group;
        if (in % g || out % 8)
            return lmb_fail(err, "fixture: %s [%lld, %lld] does not fit AWQ group %lld", prefix, (long long)out,
                            (long long)in, (long long)g);
        snprintf(n, sizeof n, "%s.qweight", prefix);
        if (fx_add(l, n, LMB_I32, 2, in, out / 8, INIT_BITS, 0, err)) return -1;
        snprintf(n, sizeof n, "%s.qzeros", prefix);
        if (fx_add(l, n, LMB_I32, 2, in / g, out / 8, INIT_BITS, 0, err)) return -1;
        snprintf(n, sizeof n, "%s.scales", prefix);
        if (fx_add(l, n, LMB_F16, 2, in / g, out, INIT_SCALE, 0, err)) return -1;
    } else {
        snprintf(n, sizeof n, "%s.weight", prefix);
        if (fx_add(l, n, s->dtype, 2, out, in, INIT_NORMAL, 0.05, err)) return -1;
    }
    if (!bias) return 0;
    snprintf(n, sizeof n, "%s.bias", prefix);
    return fx_add(l, n, s->awq_group > 0 ? LMB_F16 : s->dtype, 1, out, 0, INIT_NORMAL, 0.02, err);
}

static int build_tensors(fx_list *l, const lmb_test_model_spec *s, lmb_error *err) {
    int64_t H = s->hidden, hd = s->head_dim ? s->head_dim : s->hidden / s->heads;
    int64_t Q = s->heads * hd, KV = s->kv_heads * hd, F = s->ffn, V = s->vocab;
    bool il = s->arch == LMB_ARCH_INTERNLM2;
    bool qkv_bias = s->arch == LMB_ARCH_QWEN2 || (s->attn_bias && s->arch != LMB_ARCH_MISTRAL);
    bool o_bias = s->attn_bias && (s->arch == LMB_ARCH_LLAMA || il);
    char n[128];
    if (fx_add(l, il ? "model.tok_embeddings.weight" : "model.embed_tokens.weight", s->dtype, 2, V, H, INIT_NORMAL, 0.1,
               err))
        return -1;
#define P(suffix) (snprintf(n, sizeof n, "model.layers.%d.%s", i, suffix), n)
    for (int i = 0; i < s->layers; i++) {
        if (il) {
            if (fx_add(l, P("attention_norm.weight"), s->dtype, 1, H, 0, INIT_NORM, 0, err) ||
                fx_linear(l, s, P("attention.wqkv"), Q + 2 * KV, H, qkv_bias, err) ||
                fx_linear(l, s, P("attention.wo"), H, Q, o_bias, err) ||
                fx_add(l, P("ffn_norm.weight"), s->dtype, 1, H, 0, INIT_NORM, 0, err) ||
                fx_linear(l, s, P("feed_forward.w1"), F, H, false, err) ||
                fx_linear(l, s, P("feed_forward.w3"), F, H, false, err) ||
                fx_linear(l, s, P("feed_forward.w2"), H, F, false, err))
                return -1;
        } else {
            if (fx_add(l, P("input_layernorm.weight"), s->dtype, 1, H, 0, INIT_NORM, 0, err) ||
                fx_linear(l, s, P("self_attn.q_proj"), Q, H, qkv_bias, err) ||
                fx_linear(l, s, P("self_attn.k_proj"), KV, H, qkv_bias, err) ||
                fx_linear(l, s, P("self_attn.v_proj"), KV, H, qkv_bias, err) ||
                fx_linear(l, s, P("self_attn.o_proj"), H, Q, o_bias, err) ||
                fx_add(l, P("post_attention_layernorm.weight"), s->dtype, 1, H, 0, INIT_NORM, 0, err) ||
                fx_linear(l, s, P("mlp.gate_proj"), F, H, false, err) ||
                fx_linear(l, s, P("mlp.up_proj"), F, H, false, err) ||
                fx_linear(l, s, P("mlp.down_proj"), H, F, false, err))
                return -1;
        }
    }
#undef P
    if (fx_add(l, "model.norm.weight", s->dtype, 1, H, 0, INIT_NORM, 0, err)) return -1;
    if (!s->tied && fx_add(l, il ? "output.weight" : "lm_head.weight", s->dtype, 2, V, H, INIT_NORMAL, 0.05, err))
        return -1;
    return 0;
}

/* ---- config.json ----------------------------------------------------------------------------------------- */

static json_t *make_config(const lmb_test_model_spec *s) {
    static const char *arch_names[] = {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM",
                                       "InternLM2ForCausalLM"};
    const char *dt = s->dtype == LMB_F16 ? "float16" : s->dtype == LMB_BF16 ? "bfloat16" : "float32";
    bool il = s->arch == LMB_ARCH_INTERNLM2;
    json_t *c = json_object();
    json_t *archs = json_array();
    json_array_append_new(archs, json_string(arch_names[s->arch]));
    json_object_set_new(c, "architectures", archs);
    json_object_set_new(c, "model_type", json_string(lmb_arch_name(s->arch)));
    json_object_set_new(c, "hidden_size", json_integer(s->hidden));
    json_object_set_new(c, "intermediate_size", json_integer(s->ffn));
    json_object_set_new(c, "num_attention_heads", json_integer(s->heads));
    json_object_set_new(c, "num_hidden_layers", json_integer(s->layers));
    json_object_set_new(c, "num_key_value_heads", json_integer(s->kv_heads));
    if (s->head_dim && !il) json_object_set_new(c, "head_dim", json_integer(s->head_dim));
    json_object_set_new(c, "max_position_embeddings", json_integer(s->max_pos));
    json_object_set_new(c, "vocab_size", json_integer(s->vocab));
    json_object_set_new(c, "rms_norm_eps", json_real(1e-6));
    json_object_set_new(c, "hidden_act", json_string("silu"));
    json_object_set_new(c, "tie_word_embeddings", json_boolean(s->tied));
    json_object_set_new(c, "bos_token_id", json_integer(1));
    json_object_set_new(c, "eos_token_id", json_integer(2));
    if (il) {
        json_object_set_new(c, "bias", json_boolean(s->attn_bias));
        json_object_set_new(c, "rope_theta", json_real(s->rope_theta));
        json_object_set_new(c, "rope_scaling", json_null());
        json_object_set_new(c, "torch_dtype", json_string(dt));
    } else {
        json_t *rp = json_object();
        json_object_set_new(rp, "rope_theta", json_real(s->rope_theta));
        json_object_set_new(rp, "rope_type", json_string("default"));
        json_object_set_new(c, "rope_parameters", rp);
        json_object_set_new(c, "dtype", json_string(dt));
        if (s->arch == LMB_ARCH_LLAMA) json_object_set_new(c, "attention_bias", json_boolean(s->attn_bias));
        if (s->arch != LMB_ARCH_LLAMA) json_object_set_new(c, "sliding_window", json_null());
        if (s->arch == LMB_ARCH_QWEN2) json_object_set_new(c, "use_sliding_window", json_false());
    }
    if (s->awq_group > 0) {
        json_t *q = json_object();
        json_object_set_new(q, "quant_method", json_string("awq"));
        json_object_set_new(q, "bits", json_integer(4));
        json_object_set_new(q, "group_size", json_integer(s->awq_group));
        json_object_set_new(q, "zero_point", json_true());
        json_object_set_new(q, "version", json_string("gemm"));
        json_object_set_new(c, "quantization_config", q);
    }
    return c;
}

static int write_json(const char *dir, const char *name, json_t *j, lmb_error *err) {
    char path[4096];
    if (lmb_path_join(path, sizeof path, dir, name, err)) return -1;
    char *text = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
    if (!text) return lmb_fail(err, "fixture: %s: cannot build JSON", path);
    int rc = lmb_file_write_atomic(path, text, strlen(text), err);
    free(text);
    return rc;
}

/* ---- the folder ------------------------------------------------------------------------------------------ */

static int write_shard(const char *dir, const char *file, const fx_tensor *t, int n, lmb_error *err) {
    char path[4096];
    if (lmb_path_join(path, sizeof path, dir, file, err)) return -1;
    lmb_st_writer *w = lmb_st_writer_new();
    if (!w) return lmb_fail(err, "fixture: out of memory");
    int rc = lmb_st_writer_set_metadata(w, "format", "pt", err);
    for (int i = 0; i < n && !rc; i++)
        rc = lmb_st_writer_add(w, t[i].name, t[i].dtype, t[i].ndim, t[i].shape, t[i].data, err);
    if (!rc) rc = lmb_st_writer_save(w, path, err);
    lmb_st_writer_free(w);
    return rc;
}

static int check_spec(const lmb_test_model_spec *s, lmb_error *err) {
    if (s->hidden <= 0 || s->layers <= 0 || s->heads <= 0 || s->kv_heads <= 0 || s->ffn <= 0 || s->vocab <= 2 ||
        s->heads % s->kv_heads || s->max_pos <= 0 || s->head_dim < 0)
        return lmb_fail(err, "fixture: inconsistent spec sizes");
    if (!s->head_dim && s->hidden % s->heads) return lmb_fail(err, "fixture: hidden not a multiple of heads");
    if (s->arch == LMB_ARCH_INTERNLM2 && s->head_dim && s->head_dim * s->heads != s->hidden)
        return lmb_fail(err, "fixture: InternLM2 needs head_dim == hidden / heads");
    if (s->dtype != LMB_F32 && s->dtype != LMB_F16 && s->dtype != LMB_BF16)
        return lmb_fail(err, "fixture: dtype must be F32, F16 or BF16");
    return 0;
}

int lmb_test_make_model(const char *dir, const lmb_test_model_spec *spec, lmb_error *err) {
    if (check_spec(spec, err)) return -1;
    fx_list l = {0};
    lmb_test_rng_seed(&l.rng, spec->seed);
    json_t *cfg = NULL, *index = NULL;
    int rc = build_tensors(&l, spec, err);
    if (!rc) {
        cfg = make_config(spec);
        rc = write_json(dir, "config.json", cfg, err);
    }
    int shards = spec->shards > 1 ? spec->shards : 1;
    if (!rc && shards > l.n) rc = lmb_fail(err, "fixture: %d shards for %d tensors", shards, l.n);
    if (!rc && shards == 1) rc = write_shard(dir, "model.safetensors", l.t, l.n, err);
    if (!rc && shards > 1) {
        index = json_object();
        json_t *meta = json_object(), *wm = json_object();
        json_object_set_new(index, "metadata", meta);
        json_object_set_new(index, "weight_map", wm);
        uint64_t total = 0;
        for (int k = 0; k < shards && !rc; k++) {
            char file[64];
            snprintf(file, sizeof file, "model-%05d-of-%05d.safetensors", k + 1, shards);
            int lo = (int)((int64_t)k * l.n / shards), hi = (int)((int64_t)(k + 1) * l.n / shards); /* non-empty */
            for (int i = lo; i < hi; i++) {
                json_object_set_new(wm, l.t[i].name, json_string(file));
                total += l.t[i].nbytes;
            }
            rc = write_shard(dir, file, l.t + lo, hi - lo, err);
        }
        json_object_set_new(meta, "total_size", json_integer((json_int_t)total));
        if (!rc) rc = write_json(dir, "model.safetensors.index.json", index, err);
    }
    json_decref(cfg);
    json_decref(index);
    for (int i = 0; i < l.n; i++) free(l.t[i].data);
    free(l.t);
    return rc;
}

void lmb_test_model_spec_default(lmb_test_model_spec *s, lmb_arch arch) {
    memset(s, 0, sizeof *s);
    s->arch = arch;
    s->hidden = 64;
    s->layers = 2;
    s->heads = 4;
    s->kv_heads = 2;
    s->ffn = 128;
    s->vocab = 256;
    s->dtype = LMB_F32;
    s->seed = 1;
    s->rope_theta = 10000.0;
    s->max_pos = 256;
    s->shards = 1;
}
