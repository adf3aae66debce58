/* cmd_inspect.c — `lmbatch inspect MODEL_DIR [--json]`: what a model folder holds and what it will cost.
 *
 * Opens the folder exactly as the engine does (config, safetensors, weight binding with shape checks), then
 * prints the normalised config, the parameter count, the bytes of the bound weights per dtype (from the
 * tensors themselves) and the KV-cache bytes per token at 16/8/4 bits with the tokens that fit in 1 GiB:
 * the numbers behind a memory table.  --json prints the same as one JSON object.
 *
 * --kv fp16|int8|int4|all adds the memory report of a GPU of --gpu-mem GB (default 80): weights as the CUDA
 * backend holds them (16-bit; --w4a16: linears as AWQ int4, group 128), activations, and the KV cache's
 * bytes per token and capacity in tokens and in sequences of --seq-len tokens, with the CUDA backend's sizing
 * (engine/kv_memory.h).  These are computed, not measured: the engine prints the measured ones at start.
 * `--shape llama2-7b` (a known shape, engine/model_random.c) stands in for a model folder.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/kv_memory.h"
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

/* ---- the memory report (--kv) -------------------------------------------------------------------------- */

typedef struct mem_opts {
    int bits[3], n_bits;
    long seq_len, block_size, max_batch_tokens, max_seqs;
    double gpu_gb, fraction;
    bool w4a16;
} mem_opts;

/* AWQ int4, group 128, as the CUDA backend holds it (W4 rows, kernels.h): packed codes K*N/2, fp16 scales per
 * group of 128 inputs, and each output row's int4 zero points packed in whole 32-bit words. */
static uint64_t awq_bytes(uint64_t in, uint64_t out) {
    return in * out / 2 + (in / 128) * out * 2 + (in / 128 + 7) / 8 * 4 * out;
}

/* The weights as the CUDA backend holds them on the GPU: every dense parameter in 16 bits (fp32 checkpoints
 * too); an AWQ folder as stored; --w4a16: the layers' linears as AWQ int4 would store them.  Quantized models
 * with an untied head keep the embedding table in host memory (--embedding auto, backend_cuda.c). */
static uint64_t gpu_weight_bytes(const lmb_model *m, uint64_t tensor_total, bool w4a16) {
    const lmb_model_config *c = &m->cfg;
    uint64_t embed = c->tied_embeddings ? 0 : (uint64_t)c->vocab * (uint64_t)c->hidden * 2;
    if (c->quant.awq && !m->random_weights) return tensor_total - embed;
    uint64_t params = (uint64_t)lmb_config_param_count(c), total = params * 2;
    if (!w4a16 && !c->quant.awq) return total;
    uint64_t H = (uint64_t)c->hidden, q = (uint64_t)c->n_heads * c->head_dim, kv = (uint64_t)c->n_kv_heads * c->head_dim;
    uint64_t F = (uint64_t)c->ffn, lin[7][2] = {{H, q}, {H, kv}, {H, kv}, {q, H}, {H, F}, {H, F}, {F, H}};
    for (int l = 0; l < c->n_layers; l++)
        for (int i = 0; i < 7; i++) total = total - 2 * lin[i][0] * lin[i][1] + awq_bytes(lin[i][0], lin[i][1]);
    return total - embed;
}

static json_t *memory_report(const lmb_model *m, uint64_t tensor_total, const mem_opts *o, bool json) {
    const lmb_model_config *c = &m->cfg;
    const double GiB = 1024.0 * 1024 * 1024;
    size_t gpu = (size_t)(o->gpu_gb * 1073741824.0), wb = (size_t)gpu_weight_bytes(m, tensor_total, o->w4a16);
    size_t act = lmb_cuda_activation_bytes(c, (int)o->max_batch_tokens, (int)o->max_seqs);
    size_t budget = lmb_cuda_kv_budget_formula(gpu, wb, act, o->fraction);
    json_t *rows = json ? json_array() : NULL;
    if (!json) {
        printf("%-18s computed, not measured: %.1f GiB GPU, cache fraction %g of what the CUDA context (%.2f GiB, "
               "assumed), weights and activations leave\n",
               "memory", o->gpu_gb, o->fraction, LMB_CUDA_CONTEXT_BYTES / GiB);
        bool q = o->w4a16 || c->quant.awq;
        printf("%-18s %zu bytes (%.2f GiB)%s%s\n", "gpu weights", wb, wb / GiB,
               o->w4a16 ? ", linears as AWQ int4 group 128" : "",
               q && !c->tied_embeddings ? ", embedding in host memory (--embedding auto)" : "");
        printf("%-18s %zu bytes (%.2f GiB) for %ld batch tokens, %ld sequences\n", "gpu activations", act, act / GiB,
               o->max_batch_tokens, o->max_seqs);
    }
    for (int i = 0; i < o->n_bits; i++) {
        lmb_kv_capacity cap;
        lmb_kv_capacity_of(c, o->bits[i], (int)o->block_size, budget, (int)o->seq_len, &cap);
        if (json) {
            json_t *r = json_object();
            json_object_set_new(r, "kv", json_string(lmb_kv_bits_name(o->bits[i])));
            json_object_set_new(r, "weight_bytes", json_integer((json_int_t)wb));
            json_object_set_new(r, "activation_bytes", json_integer((json_int_t)act));
            json_object_set_new(r, "kv_budget_bytes", json_integer((json_int_t)budget));
            json_object_set_new(r, "kv_bytes_per_token", json_real(cap.bytes_per_token));
            json_object_set_new(r, "block_bytes", json_integer((json_int_t)cap.block_bytes));
            json_object_set_new(r, "blocks", json_integer(cap.blocks));
            json_object_set_new(r, "tokens", json_integer(cap.tokens));
            json_object_set_new(r, "seq_len", json_integer(cap.seq_len));
            json_object_set_new(r, "sequences", json_integer(cap.seqs));
            json_array_append_new(rows, r);
            continue;
        }
        char key[32];
        snprintf(key, sizeof key, "kv %s", lmb_kv_bits_name(o->bits[i]));
        printf("%-18s %.0f bytes/token, %.2f GiB = %ld tokens = %ld sequences of %d tokens\n", key,
               cap.bytes_per_token, (double)cap.blocks * (double)cap.block_bytes / GiB, cap.tokens, cap.seqs,
               cap.seq_len);
    }
    if (!json) return NULL;
    json_t *o_ = json_object();
    json_object_set_new(o_, "computed", json_true());
    json_object_set_new(o_, "gpu_bytes", json_integer((json_int_t)gpu));
    json_object_set_new(o_, "cache_fraction", json_real(o->fraction));
    json_object_set_new(o_, "context_bytes_assumed", json_integer((json_int_t)LMB_CUDA_CONTEXT_BYTES));
    json_object_set_new(o_, "w4a16", json_boolean(o->w4a16));
    json_object_set_new(o_, "rows", rows);
    return o_;
}

int lmb_cmd_inspect(int argc, char **argv) {
    bool json = false, help = false;
    const char *kv = NULL, *shape = NULL;
    mem_opts mo = {.seq_len = 0, .block_size = 64, .max_batch_tokens = 2048, .max_seqs = 256, .gpu_gb = 80,
                   .fraction = 0.9};
    lmb_arg opts[] = {
        {"--json", LMB_ARG_FLAG, &json, "print one JSON object instead of text", false},
        {"--kv", LMB_ARG_STRING, &kv, "memory report for a KV cache of fp16, int8, int4 or all (computed)", false},
        {"--seq-len", LMB_ARG_INT, &mo.seq_len, "--kv: sequence length for the capacity (default: the context)", false},
        {"--gpu-mem", LMB_ARG_DOUBLE, &mo.gpu_gb, "--kv: GPU memory in GiB (default 80; an H100 80GB reports 79.6)", false},
        {"--cache-fraction", LMB_ARG_DOUBLE, &mo.fraction, "--kv: as the engine's (default 0.9)", false},
        {"--block-size", LMB_ARG_INT, &mo.block_size, "--kv: KV block size in tokens (default 64)", false},
        {"--max-batch-tokens", LMB_ARG_INT, &mo.max_batch_tokens, "--kv: as the engine's (default 2048)", false},
        {"--max-seqs", LMB_ARG_INT, &mo.max_seqs, "--kv: as the engine's (default 256)", false},
        {"--w4a16", LMB_ARG_FLAG, &mo.w4a16, "--kv: count the linears as AWQ int4 group 128", false},
        {"--shape", LMB_ARG_STRING, &shape, "a known model shape instead of MODEL_DIR (e.g. llama2-7b)", false},
        {"--help", LMB_ARG_FLAG, &help, "show this help", false},
    };
    const int n_opts = (int)(sizeof opts / sizeof opts[0]);
    const char *synopsis = "lmbatch inspect MODEL_DIR [--json] [--kv fp16|int8|int4|all [--seq-len N] [--gpu-mem GB]]";
    lmb_arg_list pos;
    lmb_error err;
    if (lmb_args_parse(argc, argv, opts, n_opts, &pos, &err)) {
        fprintf(stderr, "lmbatch inspect: %s\n", err.msg);
        lmb_args_free(opts, n_opts, &pos);
        return LMB_EXIT_USAGE;
    }
    if (help || pos.n != (shape ? 0 : 1)) {
        lmb_args_usage(synopsis, opts, n_opts);
        lmb_args_free(opts, n_opts, &pos);
        return help ? LMB_EXIT_OK : LMB_EXIT_USAGE;
    }
    if (kv) {
        static const int all[3] = {16, 8, 4};
        if (strcmp(kv, "all") == 0) {
            memcpy(mo.bits, all, sizeof all);
            mo.n_bits = 3;
        } else if ((mo.bits[0] = lmb_kv_bits_parse(kv)) != 0) {
            mo.n_bits = 1;
        } else {
            fprintf(stderr, "lmbatch inspect: --kv must be fp16, int8, int4 or all, got \"%s\"\n", kv);
            lmb_args_free(opts, n_opts, &pos);
            return LMB_EXIT_USAGE;
        }
        if (mo.seq_len < 0 || mo.block_size < 1 || mo.block_size > 4096 || mo.max_batch_tokens < 1 ||
            mo.max_seqs < 1 || !(mo.gpu_gb > 0 && mo.gpu_gb < 1e6) || !(mo.fraction > 0 && mo.fraction <= 1)) {
            fprintf(stderr, "lmbatch inspect: --seq-len, --block-size, --max-batch-tokens, --max-seqs and --gpu-mem "
                            "must be positive, --cache-fraction in (0, 1]\n");
            lmb_args_free(opts, n_opts, &pos);
            return LMB_EXIT_USAGE;
        }
    }
    lmb_model *m = NULL;
    int rc = shape ? lmb_model_random(shape, LMB_F16, &m, &err) : lmb_model_open(pos.items[0], &m, &err);
    lmb_args_free(opts, n_opts, &pos);
    if (rc) {
        fprintf(stderr, "lmbatch inspect: %s\n", err.msg);
        return LMB_EXIT_MODEL;
    }
    if (mo.seq_len == 0) mo.seq_len = m->cfg.max_pos;
    uint64_t by[LMB_DTYPE_COUNT];
    uint64_t total = lmb_weights_bytes(&m->w, m->cfg.n_layers, by);
    rc = LMB_EXIT_OK;
    if (json) {
        json_t *o = make_json(m, by, total);
        if (o && mo.n_bits) json_object_set_new(o, "memory", memory_report(m, total, &mo, true));
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
        if (mo.n_bits) memory_report(m, total, &mo, false);
    }
    lmb_model_close(m);
    return rc;
}
