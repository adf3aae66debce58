/* cmd_inspect.c — `lmbatch inspect MODEL_DIR [--json]`: what a model folder holds and what it will cost.
 *
 * Opens the folder exactly as the engine does (config, safetensors, weight binding with shape checks), then
 * prints the normalised config, the parameter count, the bytes of the bound weights per dtype (from the
 * tensors themselves) and the KV-cache bytes per token at 16/8/4 bits with the tokens that fit in 1 GiB:
 * the numbers behind a memory table.  --json prints the same as one JSON object.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/model.h"
#include "args.h"
#include "commands.h"

static const char *rope_names[] = {"default", "linear", "llama3"};
static const int kv_bits[] = {16, 8, 4};
static const char *kv_names[] = {"fp16", "int8", "int4"};

#define GIB ((uint64_t)1 << 30)

static void print_text(const lmb_model *m, const uint64_t by[LMB_DTYPE_COUNT], uint64_t total) {
    const lmb_model_config *c = &m->cfg;
    printf("%-18s %s\n", "model", m->dir);
    printf("%-18s %s (%s)\n", "architecture", c->arch_name, lmb_arch_name(c->arch));
    printf("%-18s %d\n", "hidden", c->hidden);
    printf("%-18s %d\n", "layers", c->n_layers);
    printf("%-18s %d\n", "heads", c->n_heads);
    printf("%-18s %d\n", "kv_heads", c->n_kv_heads);
    printf("%-18s %d\n", "head_dim", c->head_dim);
    printf("%-18s %d\n", "ffn", c->ffn);
    printf("%-18s %d\n", "vocab", c->vocab);
    printf("%-18s %d\n", "max_pos", c->max_pos);
    printf("%-18s %g\n", "rms_eps", c->rms_eps);
    printf("%-18s %s\n", "tied_embeddings", c->tied_embeddings ? "yes" : "no");
    printf("%-18s qkv %s, o %s, mlp %s\n", "bias", c->qkv_bias ? "yes" : "no", c->o_bias ? "yes" : "no",
           c->mlp_bias ? "yes" : "no");
    printf("%-18s %s, theta %.17g", "rope", rope_names[c->rope.type], c->rope.theta);
    if (c->rope.type != LMB_ROPE_DEFAULT) printf(", factor %g", c->rope.factor);
    if (c->rope.type == LMB_ROPE_LLAMA3)
        printf(", low_freq_factor %g, high_freq_factor %g, original_max_pos %d", c->rope.low_freq_factor,
               c->rope.high_freq_factor, c->rope.original_max_pos);
    printf("\n%-18s %s\n", "dtype", lmb_dtype_name(c->dtype));
    if (c->bos_id >= 0)
        printf("%-18s %d\n", "bos", c->bos_id);
    else
        printf("%-18s none\n", "bos");
    printf("%-18s", "eos");
    for (int i = 0; i < c->n_eos; i++) printf(" %d", c->eos_ids[i]);
    printf("%s\n", c->n_eos ? "" : " none");
    if (c->quant.awq)
        printf("%-18s awq %d-bit, group %d\n", "quantization", c->quant.bits, c->quant.group_size);
    else
        printf("%-18s none\n", "quantization");
    int64_t params = lmb_config_param_count(c);
    printf("%-18s %lld (%.2f M)\n", "parameters", (long long)params, (double)params / 1e6);
    for (int d = 1; d < LMB_DTYPE_COUNT; d++)
        if (by[d]) {
            char key[32];
            snprintf(key, sizeof key, "weights %s", lmb_dtype_name((lmb_dtype)d));
            printf("%-18s %llu bytes (%.2f MiB)\n", key, (unsigned long long)by[d], (double)by[d] / (1 << 20));
        }
    printf("%-18s %llu bytes (%.2f MiB)\n", "weights total", (unsigned long long)total, (double)total / (1 << 20));
    for (int i = 0; i < 3; i++) {
        size_t b = lmb_config_kv_bytes_per_token(c, kv_bits[i]);
        char key[32];
        snprintf(key, sizeof key, "kv/token %s", kv_names[i]);
        printf("%-18s %zu bytes, %llu tokens per GiB\n", key, b, (unsigned long long)(GIB / b));
    }
}

static json_t *make_json(const lmb_model *m, const uint64_t by[LMB_DTYPE_COUNT], uint64_t total) {
    const lmb_model_config *c = &m->cfg;
    json_t *o = json_object();
    json_object_set_new(o, "model", json_string(m->dir));
    json_object_set_new(o, "architecture", json_string(c->arch_name));
    json_object_set_new(o, "arch", json_string(lmb_arch_name(c->arch)));
    json_object_set_new(o, "hidden", json_integer(c->hidden));
    json_object_set_new(o, "layers", json_integer(c->n_layers));
    json_object_set_new(o, "heads", json_integer(c->n_heads));
    json_object_set_new(o, "kv_heads", json_integer(c->n_kv_heads));
    json_object_set_new(o, "head_dim", json_integer(c->head_dim));
    json_object_set_new(o, "ffn", json_integer(c->ffn));
    json_object_set_new(o, "vocab", json_integer(c->vocab));
    json_object_set_new(o, "max_pos", json_integer(c->max_pos));
    json_object_set_new(o, "rms_eps", json_real(c->rms_eps));
    json_object_set_new(o, "tied_embeddings", json_boolean(c->tied_embeddings));
    json_object_set_new(o, "qkv_bias", json_boolean(c->qkv_bias));
    json_object_set_new(o, "o_bias", json_boolean(c->o_bias));
    json_object_set_new(o, "mlp_bias", json_boolean(c->mlp_bias));
    json_t *r = json_object();
    json_object_set_new(r, "type", json_string(rope_names[c->rope.type]));
    json_object_set_new(r, "theta", json_real(c->rope.theta));
    if (c->rope.type != LMB_ROPE_DEFAULT) json_object_set_new(r, "factor", json_real(c->rope.factor));
    if (c->rope.type == LMB_ROPE_LLAMA3) {
        json_object_set_new(r, "low_freq_factor", json_real(c->rope.low_freq_factor));
        json_object_set_new(r, "high_freq_factor", json_real(c->rope.high_freq_factor));
        json_object_set_new(r, "original_max_position_embeddings", json_integer(c->rope.original_max_pos));
    }
    json_object_set_new(o, "rope", r);
    json_object_set_new(o, "dtype", json_string(lmb_dtype_name(c->dtype)));
    json_object_set_new(o, "bos", c->bos_id >= 0 ? json_integer(c->bos_id) : json_null());
    json_t *eos = json_array();
    for (int i = 0; i < c->n_eos; i++) json_array_append_new(eos, json_integer(c->eos_ids[i]));
    json_object_set_new(o, "eos", eos);
    json_t *q = json_null();
    if (c->quant.awq) {
        q = json_object();
        json_object_set_new(q, "method", json_string("awq"));
        json_object_set_new(q, "bits", json_integer(c->quant.bits));
        json_object_set_new(q, "group_size", json_integer(c->quant.group_size));
    }
    json_object_set_new(o, "quantization", q);
    json_object_set_new(o, "params", json_integer(lmb_config_param_count(c)));
    json_t *wb = json_object();
    for (int d = 1; d < LMB_DTYPE_COUNT; d++)
        if (by[d]) json_object_set_new(wb, lmb_dtype_name((lmb_dtype)d), json_integer((json_int_t)by[d]));
    json_object_set_new(o, "weight_bytes", wb);
    json_object_set_new(o, "weight_bytes_total", json_integer((json_int_t)total));
    json_t *kv = json_object(), *fit = json_object();
    for (int i = 0; i < 3; i++) {
        size_t b = lmb_config_kv_bytes_per_token(c, kv_bits[i]);
        json_object_set_new(kv, kv_names[i], json_integer((json_int_t)b));
        json_object_set_new(fit, kv_names[i], json_integer((json_int_t)(GIB / b)));
    }
    json_object_set_new(o, "kv_bytes_per_token", kv);
    json_object_set_new(o, "kv_tokens_per_gib", fit);
    return o;
}

int lmb_cmd_inspect(int argc, char **argv) {
    bool json = false, help = false;
    lmb_arg opts[] = {
        {"--json", LMB_ARG_FLAG, &json, "print one JSON object instead of text", false},
        {"--help", LMB_ARG_FLAG, &help, "show this help", false},
    };
    const int n_opts = (int)(sizeof opts / sizeof opts[0]);
    const char *synopsis = "lmbatch inspect MODEL_DIR [--json]";
    lmb_arg_list pos;
    lmb_error err;
    if (lmb_args_parse(argc, argv, opts, n_opts, &pos, &err)) {
        fprintf(stderr, "lmbatch inspect: %s\n", err.msg);
        lmb_args_free(opts, n_opts, &pos);
        return LMB_EXIT_USAGE;
    }
    if (help || pos.n != 1) {
        lmb_args_usage(synopsis, opts, n_opts);
        lmb_args_free(opts, n_opts, &pos);
        return help ? LMB_EXIT_OK : LMB_EXIT_USAGE;
    }
    lmb_model *m = NULL;
    int rc = lmb_model_open(pos.items[0], &m, &err);
    lmb_args_free(opts, n_opts, &pos);
    if (rc) {
        fprintf(stderr, "lmbatch inspect: %s\n", err.msg);
        return LMB_EXIT_MODEL;
    }
    uint64_t by[LMB_DTYPE_COUNT];
    uint64_t total = lmb_weights_bytes(&m->w, m->cfg.n_layers, by);
    rc = LMB_EXIT_OK;
    if (json) {
        json_t *o = make_json(m, by, total);
        char *s = o ? json_dumps(o, JSON_INDENT(2) | JSON_REAL_PRECISION(15)) : NULL;
        if (s)
            printf("%s\n", s);
        else {
            fprintf(stderr, "lmbatch inspect: out of memory\n");
            rc = LMB_EXIT_MODEL;
        }
        free(s);
        json_decref(o);
    } else {
        print_text(m, by, total);
    }
    lmb_model_close(m);
    return rc;
}
