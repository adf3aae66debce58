/* test_config.c — config.json parsing: the six models in ../shared (skipped when absent), synthetic configs
 * for every RoPE spelling, dtype key, bos/eos merge, AWQ quantization_config and each error path, and the
 * derived numbers (parameter count, KV bytes per token).
 *
 * Reference parameter counts come from transformers 5.23: AutoModelForCausalLM.from_config(cfg) on the meta
 * device, sum(p.numel() for p in m.parameters()) (tied weights counted once).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "../engine/model.h"
#include "support/fixtures.h"

#define WHAT "cfgdir/config.json"

static int parse(const char *json, const char *gen, lmb_model_config *c, lmb_error *err) {
    return lmb_config_parse(json, gen, WHAT, c, err);
}

static void ok(const char *json, const char *gen, lmb_model_config *c) {
    lmb_error err = {{0}};
    cr_assert_eq(parse(json, gen, c, &err), 0, "%s", err.msg);
}

static void fails(const char *json, const char *gen, const char *frag1, const char *frag2) {
    lmb_model_config c;
    lmb_error err = {{0}};
    cr_assert_neq(parse(json, gen, &c, &err), 0, "should fail: %s", json);
    if (!gen) cr_assert(strstr(err.msg, WHAT), "error should name the file: %s", err.msg);
    cr_assert(strstr(err.msg, frag1), "error should mention '%s': %s", frag1, err.msg);
    if (frag2) cr_assert(strstr(err.msg, frag2), "error should mention '%s': %s", frag2, err.msg);
}

/* A minimal Llama config with `extra` spliced in (", \"key\": value..."). */
static const char *llama(const char *extra) {
    static char buf[4096];
    snprintf(buf, sizeof buf,
             "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64, \"num_hidden_layers\": 2,"
             " \"num_attention_heads\": 4, \"intermediate_size\": 128, \"vocab_size\": 256,"
             " \"max_position_embeddings\": 512%s}",
             extra);
    return buf;
}

static const char *arch(const char *name, const char *extra) {
    static char buf[4096];
    snprintf(buf, sizeof buf,
             "{\"architectures\": [\"%s\"], \"hidden_size\": 64, \"num_hidden_layers\": 2,"
             " \"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"intermediate_size\": 128,"
             " \"vocab_size\": 256, \"max_position_embeddings\": 512%s}",
             name, extra);
    return buf;
}

/* ---- ../shared ------------------------------------------------------------------------------------------- */

static const struct {
    const char *name, *arch_name;
    lmb_arch arch;
    int hidden, layers, heads, kv, head_dim, ffn, vocab, max_pos;
    double eps, theta;
    bool tied, qkv_bias;
    lmb_dtype dtype;
    int64_t params;
} shared[] = {
    {"stories260K", "LlamaForCausalLM", LMB_ARCH_LLAMA, 64, 5, 8, 4, 8, 172, 512, 512, 1e-5, 1e4, true, false, LMB_F32,
     260032},
    {"pycoder-22M", "LlamaForCausalLM", LMB_ARCH_LLAMA, 384, 6, 6, 2, 64, 1024, 32000, 1024, 1e-5, 1e4, true, false,
     LMB_BF16, 21730176},
    {"tiny-llama-gqa", "LlamaForCausalLM", LMB_ARCH_LLAMA, 64, 3, 4, 2, 16, 176, 32000, 1024, 1e-6, 1e4, false, false,
     LMB_BF16, 4234688},
    {"tiny-qwen2", "Qwen2ForCausalLM", LMB_ARCH_QWEN2, 64, 3, 4, 2, 16, 176, 32000, 1024, 1e-6, 1e6, true, true,
     LMB_F16, 2187072},
    {"tiny-mistral", "MistralForCausalLM", LMB_ARCH_MISTRAL, 64, 3, 4, 2, 16, 176, 32000, 1024, 1e-6, 1e4, false, false,
     LMB_BF16, 4234688},
    {"tiny-internlm2", "InternLM2ForCausalLM", LMB_ARCH_INTERNLM2, 64, 3, 4, 2, 16, 176, 32000, 2048, 1e-6, 1e6, false,
     false, LMB_BF16, 4234688},
};

Test(config, shared_models) {
    char dir[4096];
    LMB_TEST_NEED_SHARED(dir, "models");
    for (size_t i = 0; i < sizeof shared / sizeof shared[0]; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "models/%s", shared[i].name);
        cr_assert(lmb_test_shared_path(dir, sizeof dir, rel), "%s missing", dir);
        lmb_model_config c;
        lmb_error err;
        cr_assert_eq(lmb_config_load(dir, &c, &err), 0, "%s", err.msg);
        const char *n = shared[i].name;
        cr_assert_str_eq(c.arch_name, shared[i].arch_name, "%s", n);
        cr_assert_eq(c.arch, shared[i].arch, "%s", n);
        cr_assert_eq(c.hidden, shared[i].hidden, "%s", n);
        cr_assert_eq(c.n_layers, shared[i].layers, "%s", n);
        cr_assert_eq(c.n_heads, shared[i].heads, "%s", n);
        cr_assert_eq(c.n_kv_heads, shared[i].kv, "%s", n);
        cr_assert_eq(c.head_dim, shared[i].head_dim, "%s", n);
        cr_assert_eq(c.ffn, shared[i].ffn, "%s", n);
        cr_assert_eq(c.vocab, shared[i].vocab, "%s", n);
        cr_assert_eq(c.max_pos, shared[i].max_pos, "%s", n);
        cr_assert_float_eq(c.rms_eps, shared[i].eps, 1e-12, "%s", n);
        cr_assert_eq(c.rope.type, LMB_ROPE_DEFAULT, "%s", n);
        cr_assert_float_eq(c.rope.theta, shared[i].theta, 1e-6, "%s", n);
        cr_assert_eq(c.tied_embeddings, shared[i].tied, "%s", n);
        cr_assert_eq(c.qkv_bias, shared[i].qkv_bias, "%s", n);
        cr_assert_eq(c.o_bias, false, "%s", n);
        cr_assert_eq(c.mlp_bias, false, "%s", n);
        cr_assert_eq(c.dtype, shared[i].dtype, "%s", n);
        cr_assert_eq(c.bos_id, 1, "%s", n);
        cr_assert_eq(c.n_eos, 1, "%s", n);
        cr_assert_eq(c.eos_ids[0], 2, "%s", n);
        cr_assert_eq(c.quant.awq, false, "%s", n);
        cr_assert_eq(lmb_config_param_count(&c), shared[i].params, "%s", n);
    }
}

/* ---- sizes and defaults ---------------------------------------------------------------------------------- */

Test(config, llama_defaults) {
    lmb_model_config c;
    ok(llama(""), NULL, &c);
    cr_assert_eq(c.arch, LMB_ARCH_LLAMA);
    cr_assert_eq(c.n_kv_heads, 4); /* defaults to the heads */
    cr_assert_eq(c.head_dim, 16);  /* hidden / heads */
    cr_assert_float_eq(c.rms_eps, 1e-6, 1e-15);
    cr_assert_eq(c.rope.type, LMB_ROPE_DEFAULT);
    cr_assert_float_eq(c.rope.theta, 10000.0, 1e-9);
    cr_assert_eq(c.tied_embeddings, false);
    cr_assert_eq(c.qkv_bias, false);
    cr_assert_eq(c.dtype, LMB_DTYPE_INVALID); /* named by nothing: lmb_model_open uses the embedding's */
    cr_assert_eq(c.bos_id, -1);
    cr_assert_eq(c.n_eos, 0);
}

Test(config, explicit_head_dim_and_nulls) {
    lmb_model_config c;
    ok(llama(", \"head_dim\": 32, \"num_key_value_heads\": 2, \"rope_scaling\": null, \"bos_token_id\": null"), NULL,
       &c);
    cr_assert_eq(c.head_dim, 32);
    cr_assert_eq(c.n_kv_heads, 2);
    ok(llama(", \"head_dim\": null"), NULL, &c);
    cr_assert_eq(c.head_dim, 16);
}

Test(config, missing_fields_are_named) {
    const char *fields[] = {"hidden_size",       "num_hidden_layers", "num_attention_heads",
                            "intermediate_size", "vocab_size",        "max_position_embeddings"};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        char json[4096], *p;
        snprintf(json, sizeof json, "%s", llama(""));
        p = strstr(json, fields[i]);
        cr_assert(p);
        p[0] = 'X'; /* "Xidden_size" etc.: the field is gone */
        char want[128];
        snprintf(want, sizeof want, "field \"%s\" is missing", fields[i]);
        fails(json, NULL, want, NULL);
    }
    fails("{\"hidden_size\": 64}", NULL, "field \"architectures\" is missing", NULL);
}

Test(config, bad_values_are_named) {
    fails(llama(", \"num_key_value_heads\": 3"), NULL, "num_key_value_heads", "must divide");
    fails(llama(", \"num_key_value_heads\": 0"), NULL, "\"num_key_value_heads\" must be a positive integer, got 0",
          NULL);
    fails(llama(", \"head_dim\": \"16\""), NULL, "\"head_dim\" must be a positive integer, got \"16\"", NULL);
    fails(llama(", \"head_dim\": 15"), NULL, "head_dim 15 must be even", NULL);
    fails(llama(", \"rms_norm_eps\": -1"), NULL, "\"rms_norm_eps\" must be a positive number", NULL);
    fails(llama(", \"tie_word_embeddings\": 1"), NULL, "\"tie_word_embeddings\" must be true or false", NULL);
    fails(llama(", \"hidden_act\": \"gelu\""), NULL, "\"hidden_act\" must be \"silu\"", NULL);
    fails("[1]", NULL, "must be a JSON object", NULL);
    fails("{\"architectures\": ", NULL, "not valid JSON", NULL);
    fails("{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 60, \"num_hidden_layers\": 2,"
          " \"num_attention_heads\": 8, \"intermediate_size\": 128, \"vocab_size\": 256, \"max_position_embeddings\": "
          "512}",
          NULL, "hidden_size (60) is not a multiple of num_attention_heads (8)", NULL);
}

Test(config, unsupported_architecture) {
    fails(arch("GPT2LMHeadModel", ""), NULL, "field \"architectures\"", "unsupported architecture \"GPT2LMHeadModel\"");
    fails("{\"architectures\": []}", NULL, "\"architectures\" must be a non-empty list", NULL);
}

Test(config, architecture_specifics) {
    lmb_model_config c;
    ok(arch("Qwen2ForCausalLM", ""), NULL, &c);
    cr_assert_eq(c.arch, LMB_ARCH_QWEN2);
    cr_assert(c.qkv_bias && !c.o_bias && !c.tied_embeddings);
    ok(arch("Qwen2ForCausalLM",
            ", \"tie_word_embeddings\": true, \"use_sliding_window\": false, \"sliding_window\": 64"),
       NULL, &c);
    cr_assert(c.tied_embeddings);
    fails(arch("Qwen2ForCausalLM", ", \"use_sliding_window\": true, \"sliding_window\": 64"), NULL,
          "\"sliding_window\"", "not supported");

    ok(llama(", \"attention_bias\": true, \"mlp_bias\": true"), NULL, &c);
    cr_assert(c.qkv_bias && c.o_bias && c.mlp_bias);

    ok(arch("InternLM2ForCausalLM", ", \"head_dim\": 99"), NULL, &c); /* InternLM2 ignores head_dim */
    cr_assert_eq(c.arch, LMB_ARCH_INTERNLM2);
    cr_assert_eq(c.head_dim, 16);
    cr_assert(c.qkv_bias && c.o_bias); /* "bias" defaults to true in InternLM2Config */
    ok(arch("InternLM2ForCausalLM", ", \"bias\": false"), NULL, &c);
    cr_assert(!c.qkv_bias && !c.o_bias);

    ok(arch("MistralForCausalLM", ", \"sliding_window\": null"), NULL, &c);
    cr_assert_eq(c.arch, LMB_ARCH_MISTRAL);
    ok(arch("MistralForCausalLM", ", \"sliding_window\": 512"), NULL, &c); /* == max_position_embeddings */
    fails(arch("MistralForCausalLM", ", \"sliding_window\": 256"), NULL, "field \"sliding_window\" (256)",
          "shorter than max_position_embeddings (512)");
}

/* ---- RoPE ------------------------------------------------------------------------------------------------ */

Test(config, rope_theta_old_and_new) {
    lmb_model_config c;
    ok(llama(", \"rope_theta\": 500000.0"), NULL, &c);
    cr_assert_float_eq(c.rope.theta, 5e5, 1e-9);
    ok(llama(", \"rope_theta\": 1000000"), NULL, &c); /* an integer is a number too */
    cr_assert_float_eq(c.rope.theta, 1e6, 1e-9);
    ok(llama(", \"rope_parameters\": {\"rope_theta\": 1000000.0, \"rope_type\": \"default\"}"), NULL, &c);
    cr_assert_eq(c.rope.type, LMB_ROPE_DEFAULT);
    cr_assert_float_eq(c.rope.theta, 1e6, 1e-9);
    /* both present: rope_parameters wins */
    ok(llama(", \"rope_theta\": 10000.0, \"rope_parameters\": {\"rope_theta\": 20000.0, \"rope_type\": \"default\"}"),
       NULL, &c);
    cr_assert_float_eq(c.rope.theta, 2e4, 1e-9);
    ok(llama(", \"rope_scaling\": {\"type\": \"default\"}, \"rope_theta\": 30000.0"), NULL, &c);
    cr_assert_eq(c.rope.type, LMB_ROPE_DEFAULT);
    cr_assert_float_eq(c.rope.theta, 3e4, 1e-9);
    fails(llama(", \"rope_theta\": 0"), NULL, "\"rope_theta\" must be a positive number", NULL);
}

Test(config, rope_linear) {
    lmb_model_config c;
    ok(llama(", \"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}"), NULL, &c);
    cr_assert_eq(c.rope.type, LMB_ROPE_LINEAR);
    cr_assert_float_eq(c.rope.factor, 2.0, 1e-12);
    ok(llama(", \"rope_parameters\": {\"rope_type\": \"linear\", \"factor\": 4, \"rope_theta\": 1e6}"), NULL, &c);
    cr_assert_eq(c.rope.type, LMB_ROPE_LINEAR);
    cr_assert_float_eq(c.rope.factor, 4.0, 1e-12);
    cr_assert_float_eq(c.rope.theta, 1e6, 1e-6);
    fails(llama(", \"rope_scaling\": {\"type\": \"linear\"}"), NULL, "field \"rope_scaling.factor\" is missing", NULL);
}

Test(config, rope_llama3) {
    lmb_model_config c;
    const char *l3 =
        ", \"rope_theta\": 500000.0, \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0,"
        " \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 8192}";
    ok(llama(l3), NULL, &c);
    cr_assert_eq(c.rope.type, LMB_ROPE_LLAMA3);
    cr_assert_float_eq(c.rope.theta, 5e5, 1e-9);
    cr_assert_float_eq(c.rope.factor, 8.0, 1e-12);
    cr_assert_float_eq(c.rope.low_freq_factor, 1.0, 1e-12);
    cr_assert_float_eq(c.rope.high_freq_factor, 4.0, 1e-12);
    cr_assert_eq(c.rope.original_max_pos, 8192);
    ok(llama(", \"rope_parameters\": {\"rope_type\": \"llama3\", \"rope_theta\": 500000.0, \"factor\": 32.0,"
             " \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 8192}"),
       NULL, &c);
    cr_assert_eq(c.rope.type, LMB_ROPE_LLAMA3);
    cr_assert_float_eq(c.rope.factor, 32.0, 1e-12);
    fails(llama(", \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0, \"high_freq_factor\": 4.0,"
                " \"original_max_position_embeddings\": 8192}"),
          NULL, "field \"rope_scaling.low_freq_factor\" is missing", NULL);
}

Test(config, rope_unsupported) {
    fails(llama(", \"rope_scaling\": {\"type\": \"dynamic\", \"factor\": 2.0}"), NULL, "rope_scaling.type",
          "\"dynamic\" is not supported");
    fails(llama(", \"rope_parameters\": {\"rope_type\": \"yarn\", \"factor\": 4.0, \"rope_theta\": 1e6}"), NULL,
          "rope_parameters.rope_type", "\"yarn\" is not supported");
    fails(llama(", \"rope_scaling\": {\"factor\": 2.0}"), NULL, "field \"rope_scaling.type\" is missing", NULL);
    fails(llama(", \"rope_scaling\": 2"), NULL, "\"rope_scaling\" must be an object or null", NULL);
}

/* ---- dtype, bos/eos -------------------------------------------------------------------------------------- */

Test(config, dtype_keys) {
    lmb_model_config c;
    ok(llama(", \"torch_dtype\": \"bfloat16\""), NULL, &c);
    cr_assert_eq(c.dtype, LMB_BF16);
    ok(llama(", \"dtype\": \"float16\""), NULL, &c);
    cr_assert_eq(c.dtype, LMB_F16);
    ok(llama(", \"dtype\": \"float32\", \"torch_dtype\": \"bfloat16\""), NULL, &c); /* the new key wins */
    cr_assert_eq(c.dtype, LMB_F32);
    fails(llama(", \"torch_dtype\": \"int8\""), NULL,
          "field \"torch_dtype\" must be \"float32\", \"float16\" or \"bfloat16\"", "\"int8\"");
}

Test(config, eos_list_and_generation_union) {
    lmb_model_config c;
    ok(llama(", \"eos_token_id\": [2, 5]"), "{\"eos_token_id\": [5, 7], \"bos_token_id\": 1}", &c);
    cr_assert_eq(c.n_eos, 3);
    cr_assert_eq(c.eos_ids[0], 2);
    cr_assert_eq(c.eos_ids[1], 5);
    cr_assert_eq(c.eos_ids[2], 7);
    cr_assert_eq(c.bos_id, 1); /* from generation_config.json: config.json has none */
    ok(llama(", \"bos_token_id\": 3, \"eos_token_id\": null"), "{\"bos_token_id\": 4, \"eos_token_id\": 9}", &c);
    cr_assert_eq(c.bos_id, 3); /* config.json's wins */
    cr_assert_eq(c.n_eos, 1);
    cr_assert_eq(c.eos_ids[0], 9);
    fails(llama(", \"eos_token_id\": 256"), NULL, "\"eos_token_id\" must be a token id", "256");
    fails(llama(", \"eos_token_id\": [1, \"x\"]"), NULL, "\"eos_token_id\"", "\"x\"");
    fails(llama(", \"eos_token_id\": [1,2,3,4,5,6,7,8,9]"), NULL, "more than 8", NULL);
    fails(llama(""), "{\"eos_token_id\": ", "generation_config.json", "not valid JSON");
    fails(llama(""), "{\"eos_token_id\": -1}", "generation_config.json", "\"eos_token_id\"");
}

/* ---- AWQ ------------------------------------------------------------------------------------------------- */

Test(config, awq_quantization_config) {
    lmb_model_config c;
    ok(llama(", \"quantization_config\": {\"quant_method\": \"awq\", \"bits\": 4, \"group_size\": 128,"
             " \"zero_point\": true, \"version\": \"gemm\"}"),
       NULL, &c);
    cr_assert(c.quant.awq);
    cr_assert_eq(c.quant.bits, 4);
    cr_assert_eq(c.quant.group_size, 128);
    ok(llama(", \"quantization_config\": {\"quant_method\": \"awq\", \"bits\": 4, \"group_size\": 64,"
             " \"zero_point\": true, \"version\": \"GEMM\", \"modules_to_not_convert\": null}"),
       NULL, &c);
    cr_assert_eq(c.quant.group_size, 64);
    fails(llama(", \"quantization_config\": {\"quant_method\": \"gptq\", \"bits\": 4}"), NULL,
          "quantization_config.quant_method", "\"gptq\"");
    fails(llama(", \"quantization_config\": {\"quant_method\": \"awq\", \"bits\": 8, \"group_size\": 128,"
                " \"zero_point\": true, \"version\": \"gemm\"}"),
          NULL, "\"quantization_config.bits\" must be 4, got 8", NULL);
    fails(llama(", \"quantization_config\": {\"quant_method\": \"awq\", \"bits\": 4, \"group_size\": 128,"
                " \"zero_point\": false, \"version\": \"gemm\"}"),
          NULL, "\"quantization_config.zero_point\" must be true", NULL);
    fails(llama(", \"quantization_config\": {\"quant_method\": \"awq\", \"bits\": 4, \"group_size\": 128,"
                " \"zero_point\": true, \"version\": \"gemv\"}"),
          NULL, "\"quantization_config.version\" must be \"gemm\"", "\"gemv\"");
    fails(llama(", \"quantization_config\": {\"quant_method\": \"awq\", \"bits\": 4, \"zero_point\": true,"
                " \"version\": \"gemm\"}"),
          NULL, "field \"quantization_config.group_size\" is missing", NULL);
}

/* ---- derived numbers ------------------------------------------------------------------------------------- */

Test(config, param_counts_match_transformers) {
    lmb_model_config c;
    ok("{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 4096, \"num_hidden_layers\": 32,"
       " \"num_attention_heads\": 32, \"intermediate_size\": 11008, \"vocab_size\": 32000,"
       " \"max_position_embeddings\": 4096}",
       NULL, &c);
    cr_assert_eq(lmb_config_param_count(&c), 6738415616LL); /* Llama-2-7B */
    cr_assert_eq(lmb_config_kv_bytes_per_token(&c, 16), 524288u);
    ok("{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 4096, \"num_hidden_layers\": 32,"
       " \"num_attention_heads\": 32, \"num_key_value_heads\": 8, \"intermediate_size\": 14336,"
       " \"vocab_size\": 128256, \"max_position_embeddings\": 8192}",
       NULL, &c);
    cr_assert_eq(lmb_config_param_count(&c), 8030261248LL); /* Llama-3-8B */
    /* 2 (K,V) x 32 layers x 8 heads x 128 = 65536 elements; + 32 x 8 x 2 x 2 fp16 (scale, zero) = 2048 B */
    cr_assert_eq(lmb_config_kv_bytes_per_token(&c, 16), 131072u);
    cr_assert_eq(lmb_config_kv_bytes_per_token(&c, 8), 65536u + 2048u);
    cr_assert_eq(lmb_config_kv_bytes_per_token(&c, 4), 32768u + 2048u);
    cr_assert_eq(lmb_config_kv_bytes_per_token(&c, 3), 0u);
    ok("{\"architectures\": [\"Qwen2ForCausalLM\"], \"hidden_size\": 896, \"num_hidden_layers\": 24,"
       " \"num_attention_heads\": 14, \"num_key_value_heads\": 2, \"intermediate_size\": 4864,"
       " \"vocab_size\": 151936, \"max_position_embeddings\": 32768, \"tie_word_embeddings\": true}",
       NULL, &c);
    cr_assert_eq(lmb_config_param_count(&c), 494032768LL); /* Qwen2-0.5B */
    ok(llama(", \"num_key_value_heads\": 2, \"attention_bias\": true, \"mlp_bias\": true"), NULL, &c);
    cr_assert_eq(lmb_config_param_count(&c), 107840);
}

Test(config, arch_names) {
    cr_assert_str_eq(lmb_arch_name(LMB_ARCH_LLAMA), "llama");
    cr_assert_str_eq(lmb_arch_name(LMB_ARCH_MISTRAL), "mistral");
    cr_assert_str_eq(lmb_arch_name(LMB_ARCH_QWEN2), "qwen2");
    cr_assert_str_eq(lmb_arch_name(LMB_ARCH_INTERNLM2), "internlm2");
}

Test(config, load_names_the_files) {
    char tmp[64];
    lmb_error err;
    cr_assert_eq(lmb_test_tmpdir(tmp, sizeof tmp, &err), 0);
    lmb_model_config c;
    cr_assert_neq(lmb_config_load(tmp, &c, &err), 0);
    cr_assert(strstr(err.msg, tmp) && strstr(err.msg, "config.json"), "%s", err.msg);
    const char *cfg = llama(", \"eos_token_id\": 2");
    lmb_test_write_file(tmp, "config.json", cfg, strlen(cfg), NULL, 0);
    lmb_test_write_file(tmp, "generation_config.json", "{\"eos_token_id\": [2, 3]}", 24, NULL, 0);
    cr_assert_eq(lmb_config_load(tmp, &c, &err), 0, "%s", err.msg);
    cr_assert_eq(c.n_eos, 2);
    lmb_test_write_file(tmp, "generation_config.json", "{\"eos_token_id\": [2, 3]", 23, NULL, 0);
    cr_assert_neq(lmb_config_load(tmp, &c, &err), 0);
    cr_assert(strstr(err.msg, "/generation_config.json: not valid JSON"), "%s", err.msg);
    lmb_test_write_file(tmp, "config.json", "{}", 2, NULL, 0);
    cr_assert_neq(lmb_config_load(tmp, &c, &err), 0);
    cr_assert(strstr(err.msg, "/config.json: field \"architectures\" is missing"), "%s", err.msg);
    lmb_test_rmtree(tmp, NULL);
}
