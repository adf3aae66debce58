/* config.c — config.json (+ generation_config.json) -> lmb_model_config, for the four supported architectures.
 *
 * Normalises what differs between architectures and transformers versions: RoPE under rope_theta /
 * rope_scaling (old) or rope_parameters (transformers 5), the dtype under torch_dtype (old) or dtype (new),
 * head_dim given or hidden / heads, eos ids as an int or a list (united with generation_config.json's).
 * Defaults follow each Hugging Face config class.  Anything the engine cannot run (an unknown architecture,
 * dynamic/yarn RoPE, a sliding window shorter than the context, a non-AWQ quantization) is an error naming
 * the file and the field, never a silently different model.  A JSON null counts as absent.
 */
#include <ctype.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "model.h"

/* Where a field came from, for messages: `file: field "rope_scaling.factor" ...`. */
typedef struct field_src {
    const char *file;
    const char *obj; /* "" at top level, else the object's key */
    const json_t *o;
} field_src;

static const json_t *get(const field_src *s, const char *key) {
    const json_t *v = json_object_get(s->o, key);
    return json_is_null(v) ? NULL : v;
}

static const char *kind(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

static void got_text(char *buf, size_t cap, const json_t *v) {
    if (json_is_integer(v))
        snprintf(buf, cap, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v))
        snprintf(buf, cap, "%g", json_real_value(v));
    else if (json_is_string(v))
        snprintf(buf, cap, "\"%.60s\"", json_string_value(v));
    else
        snprintf(buf, cap, "%s", kind(v));
}

static int bad(const field_src *s, const char *key, const char *expected, const json_t *v, lmb_error *err) {
    char got[96];
    got_text(got, sizeof got, v);
    return lmb_fail(err, "%s: field \"%s%s%s\" must be %s, got %s", s->file, s->obj, *s->obj ? "." : "", key, expected,
                    got);
}

static int missing(const field_src *s, const char *key, lmb_error *err) {
    return lmb_fail(err, "%s: field \"%s%s%s\" is missing", s->file, s->obj, *s->obj ? "." : "", key);
}

/* Integer in [lo, INT_MAX]; *present tells whether it was there (NULL: required). */
static int get_int(const field_src *s, const char *key, int lo, int *out, bool *present, lmb_error *err) {
    const json_t *v = get(s, key);
    if (present) *present = v != NULL;
    if (!v) return present ? 0 : missing(s, key, err);
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > INT_MAX)
        return bad(s, key, lo > 0 ? "a positive integer" : "a non-negative integer", v, err);
    *out = (int)json_integer_value(v);
    return 0;
}

/* Positive number; left unchanged when absent and optional. */
static int get_pos_num(const field_src *s, const char *key, bool required, double *out, lmb_error *err) {
    const json_t *v = get(s, key);
    if (!v) return required ? missing(s, key, err) : 0;
    if (!json_is_number(v) || !(json_number_value(v) > 0)) return bad(s, key, "a positive number", v, err);
    *out = json_number_value(v);
    return 0;
}

static int get_bool(const field_src *s, const char *key, bool *out, lmb_error *err) {
    const json_t *v = get(s, key);
    if (!v) return 0;
    if (!json_is_boolean(v)) return bad(s, key, "true or false", v, err);
    *out = json_is_true(v);
    return 0;
}

static bool str_ieq(const char *a, const char *b) {
    for (; *a && *b; a++, b++)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) return false;
    return *a == *b;
}

/* ---- pieces ---------------------------------------------------------------------------------------------- */

static const struct {
    const char *name;
    lmb_arch arch;
} arch_table[] = {
    {"LlamaForCausalLM", LMB_ARCH_LLAMA},
    {"MistralForCausalLM", LMB_ARCH_MISTRAL},
    {"Qwen2ForCausalLM", LMB_ARCH_QWEN2},
    {"InternLM2ForCausalLM", LMB_ARCH_INTERNLM2},
};

static int parse_arch(const field_src *s, lmb_model_config *cfg, lmb_error *err) {
    const json_t *a = get(s, "architectures");
    if (!a) return missing(s, "architectures", err);
    if (!json_is_array(a) || json_array_size(a) == 0 || !json_is_string(json_array_get(a, 0)))
        return bad(s, "architectures", "a non-empty list of strings", a, err);
    const char *name = json_string_value(json_array_get(a, 0));
    for (size_t i = 0; i < sizeof arch_table / sizeof arch_table[0]; i++)
        if (strcmp(name, arch_table[i].name) == 0) {
            cfg->arch = arch_table[i].arch;
            snprintf(cfg->arch_name, sizeof cfg->arch_name, "%s", name);
            return 0;
        }
    return lmb_fail(err,
                    "%s: field \"architectures\": unsupported architecture \"%.60s\" (supported: LlamaForCausalLM, "
                    "MistralForCausalLM, Qwen2ForCausalLM, InternLM2ForCausalLM)",
                    s->file, name);
}

/* RoPE: rope_parameters (transformers 5) wins when present; else rope_theta + rope_scaling. */
static int parse_rope(const field_src *top, lmb_rope *r, lmb_error *err) {
    memset(r, 0, sizeof *r);
    r->type = LMB_ROPE_DEFAULT;
    r->theta = 10000.0;
    r->factor = 1.0;
    if (get_pos_num(top, "rope_theta", false, &r->theta, err)) return -1;
    const char *src_key = get(top, "rope_parameters") ? "rope_parameters" : "rope_scaling";
    const json_t *o = get(top, src_key);
    if (!o) return 0;
    if (!json_is_object(o)) return bad(top, src_key, "an object or null", o, err);
    field_src s = {top->file, src_key, o};
    if (get_pos_num(&s, "rope_theta", false, &r->theta, err)) return -1;
    const char *tkey = get(&s, "rope_type") ? "rope_type" : "type";
    const json_t *t = get(&s, tkey);
    if (!t) {
        if (strcmp(src_key, "rope_parameters") == 0) return 0;
        return missing(&s, "type", err);
    }
    if (!json_is_string(t)) return bad(&s, tkey, "a string", t, err);
    const char *type = json_string_value(t);
    if (strcmp(type, "default") == 0) return 0;
    if (strcmp(type, "linear") == 0) {
        r->type = LMB_ROPE_LINEAR;
        return get_pos_num(&s, "factor", true, &r->factor, err);
    }
    if (strcmp(type, "llama3") == 0) {
        r->type = LMB_ROPE_LLAMA3;
        if (get_pos_num(&s, "factor", true, &r->factor, err) ||
            get_pos_num(&s, "low_freq_factor", true, &r->low_freq_factor, err) ||
            get_pos_num(&s, "high_freq_factor", true, &r->high_freq_factor, err) ||
            get_int(&s, "original_max_position_embeddings", 1, &r->original_max_pos, NULL, err))
            return -1;
        if (!(r->high_freq_factor > r->low_freq_factor))
            return lmb_fail(err, "%s: field \"%s.high_freq_factor\" (%g) must be greater than low_freq_factor (%g)",
                            top->file, src_key, r->high_freq_factor, r->low_freq_factor);
        return 0;
    }
    return lmb_fail(err,
                    "%s: field \"%s.%s\": RoPE type \"%.40s\" is not supported (supported: default, linear, llama3)",
                    top->file, src_key, tkey, type);
}

static int parse_dtype(const field_src *s, lmb_dtype *out, lmb_error *err) {
    static const struct {
        const char *name;
        lmb_dtype dtype;
    } names[] = {{"float32", LMB_F32}, {"float16", LMB_F16}, {"bfloat16", LMB_BF16}};
    const char *key = get(s, "dtype") ? "dtype" : "torch_dtype";
    const json_t *v = get(s, key);
    *out = LMB_DTYPE_INVALID; /* none given: lmb_model_open takes the embedding's */
    if (!v) return 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (json_is_string(v) && strcmp(json_string_value(v), names[i].name) == 0) {
            *out = names[i].dtype;
            return 0;
        }
    return bad(s, key, "\"float32\", \"float16\" or \"bfloat16\"", v, err);
}

static int parse_quant(const field_src *top, lmb_quant_config *q, lmb_error *err) {
    memset(q, 0, sizeof *q);
    const json_t *o = get(top, "quantization_config");
    if (!o) return 0;
    if (!json_is_object(o)) return bad(top, "quantization_config", "an object", o, err);
    field_src s = {top->file, "quantization_config", o};
    const json_t *m = get(&s, "quant_method");
    if (!m) return missing(&s, "quant_method", err);
    if (!json_is_string(m) || !str_ieq(json_string_value(m), "awq"))
        return bad(&s, "quant_method", "\"awq\" (the only quantization supported)", m, err);
    if (get_int(&s, "bits", 1, &q->bits, NULL, err) || get_int(&s, "group_size", 1, &q->group_size, NULL, err))
        return -1;
    if (q->bits != 4) return bad(&s, "bits", "4", get(&s, "bits"), err);
    const json_t *zp = get(&s, "zero_point");
    if (!zp) return missing(&s, "zero_point", err);
    if (!json_is_true(zp)) return bad(&s, "zero_point", "true", zp, err);
    const json_t *ver = get(&s, "version");
    if (!ver) return missing(&s, "version", err);
    if (!json_is_string(ver) || !str_ieq(json_string_value(ver), "gemm"))
        return bad(&s, "version", "\"gemm\" (the AutoAWQ GEMM layout)", ver, err);
    q->awq = true;
    return 0;
}

/* Adds the ids of an eos_token_id value (int, list of ints) to cfg, skipping ones already there. */
static int add_eos(const field_src *s, lmb_model_config *cfg, lmb_error *err) {
    const json_t *v = get(s, "eos_token_id");
    if (!v) return 0;
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    for (size_t i = 0; i < n; i++) {
        const json_t *x = json_is_array(v) ? json_array_get(v, i) : v;
        if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) >= cfg->vocab)
            return bad(s, "eos_token_id", "a token id (or list of ids) below vocab_size", x, err);
        int id = (int)json_integer_value(x), j = 0;
        while (j < cfg->n_eos && cfg->eos_ids[j] != id) j++;
        if (j < cfg->n_eos) continue;
        if (cfg->n_eos == LMB_MAX_EOS)
            return lmb_fail(err, "%s: field \"eos_token_id\": more than %d distinct EOS ids", s->file, LMB_MAX_EOS);
        cfg->eos_ids[cfg->n_eos++] = id;
    }
    return 0;
}

/* bos_token_id: an int (or a list, whose first id counts); leaves *bos alone when absent. */
static int get_bos(const field_src *s, int vocab, int *bos, lmb_error *err) {
    const json_t *v = get(s, "bos_token_id");
    if (!v) return 0;
    const json_t *x = json_is_array(v) && json_array_size(v) > 0 ? json_array_get(v, 0) : v;
    if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) >= vocab)
        return bad(s, "bos_token_id", "a token id below vocab_size", x, err);
    *bos = (int)json_integer_value(x);
    return 0;
}

static json_t *load_object(const char *text, const char *what, lmb_error *err) {
    json_error_t je;
    json_t *root = json_loads(text, 0, &je);
    if (!root) {
        lmb_fail(err, "%s: not valid JSON: %s (line %d, column %d)", what, je.text, je.line, je.column);
        return NULL;
    }
    if (!json_is_object(root)) {
        lmb_fail(err, "%s: must be a JSON object, got %s", what, kind(root));
        json_decref(root);
        return NULL;
    }
    return root;
}

/* ---- the whole config ------------------------------------------------------------------------------------ */

static int parse_sizes(const field_src *s, lmb_model_config *c, lmb_error *err) {
    bool has;
    if (get_int(s, "hidden_size", 1, &c->hidden, NULL, err) ||
        get_int(s, "num_hidden_layers", 1, &c->n_layers, NULL, err) ||
        get_int(s, "num_attention_heads", 1, &c->n_heads, NULL, err) ||
        get_int(s, "intermediate_size", 1, &c->ffn, NULL, err) || get_int(s, "vocab_size", 1, &c->vocab, NULL, err) ||
        get_int(s, "max_position_embeddings", 1, &c->max_pos, NULL, err))
        return -1;
    c->n_kv_heads = c->n_heads;
    if (get_int(s, "num_key_value_heads", 1, &c->n_kv_heads, &has, err)) return -1;
    if (c->n_heads % c->n_kv_heads != 0)
        return lmb_fail(err, "%s: field \"num_key_value_heads\" (%d) must divide num_attention_heads (%d)", s->file,
                        c->n_kv_heads, c->n_heads);
    /* InternLM2's modeling code always uses hidden / heads; the others honour an explicit head_dim. */
    has = false;
    if (c->arch != LMB_ARCH_INTERNLM2 && get_int(s, "head_dim", 1, &c->head_dim, &has, err)) return -1;
    if (!has) {
        if (c->hidden % c->n_heads != 0)
            return lmb_fail(
                err, "%s: hidden_size (%d) is not a multiple of num_attention_heads (%d) and no head_dim is given",
                s->file, c->hidden, c->n_heads);
        c->head_dim = c->hidden / c->n_heads;
    }
    if (c->head_dim % 2 != 0)
        return lmb_fail(err, "%s: head_dim %d must be even (RoPE rotates pairs)", s->file, c->head_dim);
    c->rms_eps = 1e-6;
    if (get_pos_num(s, "rms_norm_eps", false, &c->rms_eps, err)) return -1;
    const json_t *act = get(s, "hidden_act");
    if (act && !(json_is_string(act) && strcmp(json_string_value(act), "silu") == 0))
        return bad(s, "hidden_act", "\"silu\" (SwiGLU MLP)", act, err);
    return 0;
}

static int parse_arch_specific(const field_src *s, lmb_model_config *c, lmb_error *err) {
    c->tied_embeddings = false; /* the default of all four config classes */
    if (get_bool(s, "tie_word_embeddings", &c->tied_embeddings, err)) return -1;
    switch (c->arch) {
    case LMB_ARCH_LLAMA: /* attention_bias: q, k, v and o; mlp_bias: gate, up, down */
        if (get_bool(s, "attention_bias", &c->qkv_bias, err) || get_bool(s, "mlp_bias", &c->mlp_bias, err)) return -1;
        c->o_bias = c->qkv_bias;
        break;
    case LMB_ARCH_QWEN2: { /* q, k, v biases always, none on o */
        c->qkv_bias = true;
        bool use_sw = false;
        if (get_bool(s, "use_sliding_window", &use_sw, err)) return -1;
        if (use_sw) {
            int sw = 0;
            bool has = false;
            if (get_int(s, "sliding_window", 1, &sw, &has, err)) return -1;
            if (has && sw < c->max_pos)
                return lmb_fail(err,
                                "%s: field \"sliding_window\" (%d, with use_sliding_window true) is shorter than "
                                "max_position_embeddings (%d); sliding-window attention is not supported",
                                s->file, sw, c->max_pos);
        }
        break;
    }
    case LMB_ARCH_MISTRAL: {
        int sw = 0;
        bool has = false;
        if (get_int(s, "sliding_window", 1, &sw, &has, err)) return -1;
        if (has && sw < c->max_pos)
            return lmb_fail(err,
                            "%s: field \"sliding_window\" (%d) is shorter than max_position_embeddings (%d); "
                            "sliding-window attention is not supported",
                            s->file, sw, c->max_pos);
        break;
    }
    case LMB_ARCH_INTERNLM2: /* "bias" (default true) covers wqkv and wo */
        c->qkv_bias = true;
        if (get_bool(s, "bias", &c->qkv_bias, err)) return -1;
        c->o_bias = c->qkv_bias;
        break;
    }
    return 0;
}

static int parse_all(const char *config_json, const char *what, const char *gen_json, const char *gen_what,
                     lmb_model_config *cfg, lmb_error *err) {
    memset(cfg, 0, sizeof *cfg);
    cfg->bos_id = -1;
    json_t *root = load_object(config_json, what, err);
    if (!root) return -1;
    json_t *gen = NULL;
    int rc = -1;
    field_src s = {what, "", root};
    if (parse_arch(&s, cfg, err) || parse_sizes(&s, cfg, err) || parse_arch_specific(&s, cfg, err) ||
        parse_rope(&s, &cfg->rope, err) || parse_dtype(&s, &cfg->dtype, err) || parse_quant(&s, &cfg->quant, err) ||
        get_bos(&s, cfg->vocab, &cfg->bos_id, err) || add_eos(&s, cfg, err))
        goto done;
    if (gen_json) {
        if (!(gen = load_object(gen_json, gen_what, err))) goto done;
        field_src g = {gen_what, "", gen};
        /* config.json's bos wins; generation_config.json fills it in when config.json has none. */
        if (cfg->bos_id < 0 && get_bos(&g, cfg->vocab, &cfg->bos_id, err)) goto done;
        if (add_eos(&g, cfg, err)) goto done;
    }
    rc = 0;
done:
    json_decref(gen);
    json_decref(root);
    return rc;
}

int lmb_config_parse(const char *config_json, const char *generation_json, const char *what, lmb_model_config *cfg,
                     lmb_error *err) {
    return parse_all(config_json, what, generation_json, "generation_config.json", cfg, err);
}

int lmb_config_load(const char *dir, lmb_model_config *cfg, lmb_error *err) {
    char cpath[4096], gpath[4096];
    if (lmb_path_join(cpath, sizeof cpath, dir, "config.json", err) ||
        lmb_path_join(gpath, sizeof gpath, dir, "generation_config.json", err))
        return -1;
    if (!lmb_file_exists(cpath)) return lmb_fail(err, "%s: no config.json in the model folder", dir);
    char *ctext = NULL, *gtext = NULL;
    size_t n;
    if (lmb_file_read_all(cpath, &ctext, &n, err)) return -1;
    if (lmb_file_exists(gpath) && lmb_file_read_all(gpath, &gtext, &n, err)) {
        free(ctext);
        return -1;
    }
    int rc = parse_all(ctext, cpath, gtext, gpath, cfg, err);
    free(ctext);
    free(gtext);
    return rc;
}

const char *lmb_arch_name(lmb_arch a) {
    switch (a) {
    case LMB_ARCH_LLAMA: return "llama";
    case LMB_ARCH_MISTRAL: return "mistral";
    case LMB_ARCH_QWEN2: return "qwen2";
    case LMB_ARCH_INTERNLM2: return "internlm2";
    }
    return "unknown";
}

int64_t lmb_config_param_count(const lmb_model_config *c) {
    int64_t h = c->hidden, q = (int64_t)c->n_heads * c->head_dim, kv = (int64_t)c->n_kv_heads * c->head_dim;
    int64_t f = c->ffn;
    int64_t layer = 2 * h                /* attention and ffn norms */
                    + h * q + 2 * h * kv /* q, k, v */
                    + q * h              /* o */
                    + 3 * h * f;         /* gate, up, down */
    if (c->qkv_bias) layer += q + 2 * kv;
    if (c->o_bias) layer += h;
    if (c->mlp_bias) layer += 2 * f + h;
    int64_t embed = (int64_t)c->vocab * h;
    return embed + (c->tied_embeddings ? 0 : embed) + h + layer * c->n_layers;
}

size_t lmb_config_kv_bytes_per_token(const lmb_model_config *c, int bits) {
    size_t heads = (size_t)c->n_layers * (size_t)c->n_kv_heads; /* per layer, per K and per V */
    size_t elems = 2 * heads * (size_t)c->head_dim;
    switch (bits) {
    case 16: return elems * 2;
    case 8:
    case 4: return elems * (size_t)bits / 8 + 2 * heads * 2 * sizeof(uint16_t); /* + fp16 scale & zero */
    default: return 0;
    }
}
