/* cmd_bench.c — `lmbatch bench`: offline throughput of the engine, the figures vLLM's benchmark_throughput
 * and LMDeploy's profile_throughput report: requests/s, output tok/s, total tok/s, time to first token
 * p50/p99, peak GPU memory, KV blocks used.  Prompts are random token ids (--num-prompts x --input-len,
 * --output-len each) or the "prompt_ids"/"prompt"+"max_tokens" lines of --dataset; all are submitted at
 * once, as an offline batch.  --random-weights SHAPE builds a model of a real shape on the GPU. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/engine.h"
#include "../engine/kv_memory.h"
#include "cli_common.h"
#include "commands.h"
#include "progress.h"
#include "source.h"
#include "tokenizer.h"

typedef struct bench_req {
    int32_t *ids;
    int n, max_tokens;
    double first_token; /* seconds from start, < 0 until the first token */
    int generated;
} bench_req;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int load_dataset(const char *path, const char *model_dir, bench_req **out, int *n, long default_out,
                        lmb_error *err) {
    lmb_tokenizer *tok = NULL;
    lmb_source *src;
    if (lmb_source_open(path, &src, err)) return -1;
    int cap = 0, rc = -1;
    *n = 0;
    *out = NULL;
    lmb_line l;
    int r;
    while ((r = lmb_source_next(src, &l, err)) == 1) {
        json_error_t je;
        json_t *o = json_loadb(l.text, l.len, 0, &je);
        if (!o) continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 256;
            *out = realloc(*out, sizeof **out * (size_t)cap);
        }
        bench_req *b = &(*out)[*n];
        memset(b, 0, sizeof *b);
        json_t *ids = json_object_get(o, "prompt_ids"), *p = json_object_get(o, "prompt"), *mt = json_object_get(o, "max_tokens");
        b->max_tokens = json_is_integer(mt) ? (int)json_integer_value(mt) : (int)default_out;
        lmb_ids v = {0};
        if (json_is_array(ids)) {
            for (size_t i = 0; i < json_array_size(ids); i++) lmb_ids_push(&v, (int32_t)json_integer_value(json_array_get(ids, i)));
        } else if (json_is_string(p)) {
            if (!tok && (!model_dir || lmb_tokenizer_load_dir(model_dir, &tok, err))) {
                json_decref(o);
                goto done;
            }
            if (lmb_tokenizer_encode(tok, json_string_value(p), json_string_length(p), LMB_TOK_ADD_SPECIAL, &v, err)) {
                json_decref(o);
                goto done;
            }
        }
        json_decref(o);
        if (v.n == 0) continue;
        b->ids = v.ids;
        b->n = (int)v.n;
        (*n)++;
    }
    rc = r < 0 ? -1 : 0;
done:
    lmb_tokenizer_free(tok);
    lmb_source_close(src);
    return rc;
}

/* Submits reqs [0, n) as greedy requests with ids id0 + i; max_tokens capped at cap when cap > 0. */
static int submit_all(lmb_engine *e, const bench_req *reqs, int n, uint64_t id0, int cap, bool ignore_eos,
                      lmb_error *err) {
    for (int i = 0; i < n; i++) {
        lmb_request r = {.id = id0 + (uint64_t)i, .prompt = reqs[i].ids, .n_prompt = (size_t)reqs[i].n};
        lmb_sampling_default(&r.sampling);
        r.sampling.temperature = 0;
        r.sampling.max_tokens = cap > 0 && reqs[i].max_tokens > cap ? cap : reqs[i].max_tokens;
        r.sampling.ignore_eos = ignore_eos;
        if (lmb_engine_submit(e, &r, err)) return -1;
    }
    return 0;
}

int lmb_cmd_bench(int argc, char **argv) {
    const char *model = NULL, *random_shape = NULL, *dataset = NULL, *dtype_s = "fp16";
    long num_prompts = 1000, input_len = 512, output_len = 256, seed = 0;
    bool ignore_eos = false, json = false, help = false, no_warmup = false;
    lmb_cli_engine ce;
    lmb_cli_engine_init(&ce);
    lmb_arg opts[32] = {
        {"--model", LMB_ARG_STRING, &model, "model folder"},
        {"--random-weights", LMB_ARG_STRING, &random_shape, "a model of this shape with random weights (CUDA)"},
        {"--dtype", LMB_ARG_STRING, &dtype_s, "fp16 (default), bf16 or awq (W4A16, group 128), for --random-weights"},
        {"--num-prompts", LMB_ARG_INT, &num_prompts, "random prompts (default 1000)"},
        {"--input-len", LMB_ARG_INT, &input_len, "tokens per random prompt (default 512)"},
        {"--output-len", LMB_ARG_INT, &output_len, "tokens to generate per prompt (default 256)"},
        {"--dataset", LMB_ARG_STRING, &dataset, "JSONL with \"prompt_ids\" or \"prompt\" (+ \"max_tokens\")"},
        {"--ignore-eos", LMB_ARG_FLAG, &ignore_eos, "always generate the full output length"},
        {"--no-warmup", LMB_ARG_FLAG, &no_warmup, "time from the first step (default: a short untimed pass first)"},
        {"--seed", LMB_ARG_INT, &seed, "seed of the random prompts"},
        {"--json", LMB_ARG_FLAG, &json, "print the figures as one JSON object"},
        {"--help", LMB_ARG_FLAG, &help, "show this help"},
    };
    int n = lmb_cli_engine_opts(opts, 12, &ce);
    const char *synopsis = "lmbatch bench (--model DIR | --random-weights SHAPE) [--num-prompts N --input-len L "
                           "--output-len M | --dataset FILE.jsonl] [--ignore-eos] [--json]";
    lmb_arg_list pos;
    lmb_error err;
    int rc = LMB_EXIT_USAGE;
    lmb_model *m = NULL;
    lmb_engine *e = NULL;
    bench_req *reqs = NULL;
    int nreq = 0;
    double *ttft = NULL;
    if (lmb_args_parse(argc, argv, opts, n, &pos, &err)) {
        fprintf(stderr, "lmbatch bench: %s\n", err.msg);
        goto done;
    }
    if (help || (!model == !random_shape) || pos.n || num_prompts < 1 || input_len < 1 || output_len < 1) {
        lmb_args_usage(synopsis, opts, n);
        rc = help ? LMB_EXIT_OK : LMB_EXIT_USAGE;
        goto done;
    }
    lmb_engine_config cfg;
    if (lmb_cli_engine_config(&ce, &cfg, &err)) {
        fprintf(stderr, "lmbatch bench: %s\n", err.msg);
        goto done;
    }
    rc = LMB_EXIT_MODEL;
    double t_load = lmb_now();
    if (random_shape ? lmb_model_random(random_shape, strcmp(dtype_s, "bf16") ? LMB_F16 : LMB_BF16, &m, &err) ||
                           (strcmp(dtype_s, "awq") == 0 && lmb_model_random_awq(m, 128, &err))
                     : lmb_model_open(model, &m, &err)) {
        fprintf(stderr, "lmbatch bench: %s\n", err.msg);
        goto done;
    }
    if (lmb_engine_open_model(&cfg, m, &e, &err)) {
        fprintf(stderr, "lmbatch bench: %s\n", err.msg);
        goto done;
    }
    t_load = lmb_now() - t_load;
    int vocab = m->cfg.vocab;
    if (dataset) {
        if (load_dataset(dataset, model, &reqs, &nreq, output_len, &err)) {
            fprintf(stderr, "lmbatch bench: %s\n", err.msg);
            goto done;
        }
    } else {
        nreq = (int)num_prompts;
        reqs = calloc((size_t)nreq, sizeof *reqs);
        uint64_t s = (uint64_t)seed * 0x9E3779B97F4A7C15ULL + 12345;
        for (int i = 0; i < nreq; i++) {
            reqs[i].n = (int)input_len;
            reqs[i].max_tokens = (int)output_len;
            reqs[i].ids = malloc(sizeof(int32_t) * (size_t)input_len);
            reqs[i].ids[0] = m->cfg.bos_id >= 0 ? m->cfg.bos_id : 1;
            for (int t = 1; t < input_len; t++) {
                s = s * 6364136223846793005ULL + 1442695040888963407ULL;
                reqs[i].ids[t] = 3 + (int32_t)((s >> 33) % (uint64_t)(vocab - 3));
            }
        }
    }
    /* Warm-up, untimed: the first batch's prompts with 8 new tokens, so kernel loading (CUDA loads modules
     * lazily), cuBLAS's first calls and the decode graphs of that batch size stay out of the figures. */
    if (!no_warmup) {
        int nw = nreq < cfg.max_seqs ? nreq : cfg.max_seqs;
        if (submit_all(e, reqs, nw, 1ULL << 40, 8, true, &err)) goto fail;
        while (lmb_engine_pending(e) > 0) {
            const lmb_event *ev;
            int ne;
            if (lmb_engine_step(e, &ev, &ne, &err)) goto fail;
        }
        lmb_engine_reset_stats(e);
    }
    long prompt_tokens = 0, output_tokens = 0;
    double t0 = lmb_now();
    for (int i = 0; i < nreq; i++) {
        reqs[i].first_token = -1;
        prompt_tokens += reqs[i].n;
    }
    if (submit_all(e, reqs, nreq, 0, 0, ignore_eos, &err)) goto fail;
    int finished = 0, failed = 0;
    while (lmb_engine_pending(e) > 0) {
        const lmb_event *ev;
        int ne;
        if (lmb_engine_step(e, &ev, &ne, &err)) goto fail;
        double now = lmb_now() - t0;
        for (int k = 0; k < ne; k++) {
            bench_req *b = &reqs[ev[k].id];
            if (ev[k].has_token) {
                if (b->first_token < 0) b->first_token = now;
                b->generated++;
                output_tokens++;
            }
            if (ev[k].finish == LMB_FINISH_ERROR) failed++;
            if (ev[k].finish != LMB_FINISH_NONE) finished++;
        }
    }
    double secs = lmb_now() - t0;
    ttft = malloc(sizeof(double) * (size_t)nreq);
    int nt = 0;
    for (int i = 0; i < nreq; i++)
        if (reqs[i].first_token >= 0) ttft[nt++] = reqs[i].first_token;
    qsort(ttft, (size_t)nt, sizeof(double), cmp_double);
    double p50 = nt ? ttft[nt / 2] : 0, p99 = nt ? ttft[(int)((nt - 1) * 0.99)] : 0;
    lmb_engine_stats st;
    lmb_engine_get_stats(e, &st);
    if (json) {
        printf("{\"model\": \"%s\", \"backend\": \"%s\", \"requests\": %d, \"failed\": %d, \"prompt_tokens\": %ld, "
               "\"output_tokens\": %ld, \"seconds\": %.3f, \"requests_per_s\": %.3f, \"output_tok_per_s\": %.1f, "
               "\"total_tok_per_s\": %.1f, \"ttft_p50_s\": %.4f, \"ttft_p99_s\": %.4f, \"peak_gpu_bytes\": %zu, "
               "\"weight_bytes\": %zu, \"host_weight_bytes\": %zu, \"kv_blocks_total\": %d, \"kv_blocks_peak\": %d, "
               "\"block_size\": %d, "
               "\"preemptions\": %ld, \"steps\": %ld, \"load_s\": %.2f, \"max_batch_tokens\": %d, \"max_seqs\": %d, "
               "\"kv\": \"%s\", \"kv_bytes_per_token\": %zu, \"kv_tokens\": %ld}\n",
               random_shape ? random_shape : model, cfg.backend, nreq, failed, prompt_tokens, output_tokens, secs,
               nreq / secs, output_tokens / secs, (prompt_tokens + output_tokens) / secs, p50, p99,
               st.peak_device_bytes, st.weight_bytes, st.host_weight_bytes, st.kv_blocks_total, st.kv_blocks_peak,
               st.block_size,
               st.preemptions, st.steps, t_load, cfg.max_batch_tokens, cfg.max_seqs, lmb_kv_bits_name(st.kv_bits),
               st.kv_bytes_per_token, (long)st.kv_blocks_total * st.block_size);
    } else {
        printf("requests        %d (%d failed) in %.2f s: %.2f req/s\n", nreq, failed, secs, nreq / secs);
        printf("tokens          %ld prompt + %ld output\n", prompt_tokens, output_tokens);
        printf("throughput      %.1f output tok/s, %.1f total tok/s\n", output_tokens / secs,
               (prompt_tokens + output_tokens) / secs);
        printf("ttft            p50 %.3f s, p99 %.3f s\n", p50, p99);
        printf("memory          weights %.2f GiB (+ %.2f GiB in host memory), peak GPU %.2f GiB, KV blocks %d of %d "
               "(x %d tokens)\n",
               st.weight_bytes / 1073741824.0, st.host_weight_bytes / 1073741824.0,
               st.peak_device_bytes / 1073741824.0, st.kv_blocks_peak,
               st.kv_blocks_total, st.block_size);
        printf("kv cache        %s, %zu bytes/token, %ld tokens\n", lmb_kv_bits_name(st.kv_bits), st.kv_bytes_per_token,
               (long)st.kv_blocks_total * st.block_size);
        printf("engine          %ld steps, %ld preemptions, load %.2f s\n", st.steps, st.preemptions, t_load);
    }
    rc = failed ? LMB_EXIT_PARTIAL : LMB_EXIT_OK;
    (void)finished;
    goto done;
fail:
    fprintf(stderr, "lmbatch bench: %s\n", err.msg);
done:
    free(ttft);
    for (int i = 0; i < nreq; i++) free(reqs[i].ids);
    free(reqs);
    lmb_engine_close(e);
    lmb_model_close(m);
    lmb_args_free(opts, n, &pos);
    return rc;
}
