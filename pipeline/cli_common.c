/* cli_common.c — see cli_common.h. */
#include "cli_common.h"

#include <stdlib.h>
#include <string.h>

#include "../engine/kv_memory.h"

void lmb_cli_engine_init(lmb_cli_engine *e) {
    lmb_engine_config c;
    lmb_engine_config_default(&c);
    *e = (lmb_cli_engine){
        .backend = c.backend,
        .kv = "fp16",
        .embedding = "auto",
        .max_batch_tokens = c.max_batch_tokens,
        .max_seqs = c.max_seqs,
        .block_size = c.block_size,
        .kv_cache_mb = c.kv_cache_mb,
        .cache_fraction = c.cache_fraction,
    };
}

int lmb_cli_engine_opts(lmb_arg *o, int n, lmb_cli_engine *e) {
    o[n++] = (lmb_arg){"--backend", LMB_ARG_STRING, &e->backend, "cpu (default) or cuda"};
    o[n++] = (lmb_arg){"--max-batch-tokens", LMB_ARG_INT, &e->max_batch_tokens,
                       "tokens per forward step: prefill chunks + decodes (default 2048)"};
    o[n++] = (lmb_arg){"--max-seqs", LMB_ARG_INT, &e->max_seqs, "sequences running at once (default 256)"};
    o[n++] = (lmb_arg){"--block-size", LMB_ARG_INT, &e->block_size, "KV cache block size in tokens (default 64)"};
    o[n++] = (lmb_arg){"--kv-cache-mb", LMB_ARG_DOUBLE, &e->kv_cache_mb,
                       "KV cache size in MiB (CPU default 512; on CUDA overrides --cache-fraction)"};
    o[n++] = (lmb_arg){"--cache-fraction", LMB_ARG_DOUBLE, &e->cache_fraction,
                       "CUDA: fraction of the free GPU memory after weights for the KV cache (default 0.9)"};
    o[n++] = (lmb_arg){"--kv", LMB_ARG_STRING, &e->kv,
                       "KV cache element: fp16 (default; fp32 on the CPU), int8 or int4 (per-token scales)"};
    o[n++] = (lmb_arg){"--kv-params", LMB_ARG_STRING, &e->kv_params,
                       "with --kv int8|int4: offline per-layer/per-head scales from `lmbatch quantize kv`"};
    o[n++] = (lmb_arg){"--threads", LMB_ARG_INT, &e->threads, "CPU threads (default: all cores)"};
    o[n++] = (lmb_arg){"--device", LMB_ARG_INT, &e->device, "CUDA device index (default 0)"};
    o[n++] = (lmb_arg){"--quiet", LMB_ARG_FLAG, &e->quiet, "no start-up report or progress"};
    o[n++] = (lmb_arg){"--batch-invariant", LMB_ARG_FLAG, &e->batch_invariant,
                       "CUDA: each request's tokens independent of what shares its batch (slower at small batch)"};
    o[n++] = (lmb_arg){"--embedding", LMB_ARG_STRING, &e->embedding,
                       "CUDA: the token-embedding table on the gpu or in pinned host memory (auto, the default: "
                       "host for AWQ models with an untied head)"};
    return n;
}

int lmb_cli_engine_config(const lmb_cli_engine *e, lmb_engine_config *c, lmb_error *err) {
    lmb_engine_config_default(c);
    if (strcmp(e->backend, "cpu") && strcmp(e->backend, "cuda"))
        return lmb_fail(err, "--backend must be cpu or cuda, got \"%s\"", e->backend);
    if (e->max_batch_tokens < 1 || e->max_batch_tokens > (1 << 24))
        return lmb_fail(err, "--max-batch-tokens must be in [1, 16777216], got %ld", e->max_batch_tokens);
    if (e->max_seqs < 1 || e->max_seqs > 65536) return lmb_fail(err, "--max-seqs must be in [1, 65536], got %ld", e->max_seqs);
    if (e->block_size < 1 || e->block_size > 4096)
        return lmb_fail(err, "--block-size must be in [1, 4096], got %ld", e->block_size);
    if (e->kv_cache_mb < 0) return lmb_fail(err, "--kv-cache-mb must be positive");
    if (!(e->cache_fraction > 0 && e->cache_fraction <= 1))
        return lmb_fail(err, "--cache-fraction must be in (0, 1], got %g", e->cache_fraction);
    if (e->threads < 0 || e->device < 0) return lmb_fail(err, "--threads and --device must be >= 0");
    int kv_bits = lmb_kv_bits_parse(e->kv);
    if (!kv_bits) return lmb_fail(err, "--kv must be fp16, int8 or int4, got \"%s\"", e->kv);
    if (e->kv_params && kv_bits == 16) return lmb_fail(err, "--kv-params needs --kv int8 or --kv int4");
    static const char *const places[] = {"auto", "gpu", "host"};
    int place = -1;
    for (int i = 0; i < 3; i++)
        if (e->embedding && !strcmp(e->embedding, places[i])) place = i;
    if (place < 0)
        return lmb_fail(err, "--embedding must be auto, gpu or host, got \"%s\"", e->embedding ? e->embedding : "");
    c->embedding = place == 0 ? LMB_EMBED_AUTO : place == 1 ? LMB_EMBED_GPU : LMB_EMBED_HOST;
    c->kv_bits = kv_bits;
    c->kv_params = e->kv_params;
    c->backend = e->backend;
    c->max_batch_tokens = (int)e->max_batch_tokens;
    c->max_seqs = (int)e->max_seqs;
    c->block_size = (int)e->block_size;
    c->kv_cache_mb = e->kv_cache_mb;
    c->cache_fraction = e->cache_fraction;
    c->threads = (int)e->threads;
    c->device = (int)e->device;
    c->quiet = e->quiet;
    c->batch_invariant = e->batch_invariant;
    return 0;
}

void lmb_cli_sampling_init(lmb_cli_sampling *s) {
    lmb_sampling d;
    lmb_sampling_default(&d);
    *s = (lmb_cli_sampling){
        .max_tokens = d.max_tokens,
        .temperature = d.temperature,
        .top_p = d.top_p,
        .top_k = d.top_k,
        .min_p = d.min_p,
        .repetition_penalty = d.repetition_penalty,
    };
}

int lmb_cli_sampling_opts(lmb_arg *o, int n, lmb_cli_sampling *s) {
    o[n++] = (lmb_arg){"--max-tokens", LMB_ARG_INT, &s->max_tokens, "tokens to generate at most (default 256)"};
    o[n++] = (lmb_arg){"--temperature", LMB_ARG_DOUBLE, &s->temperature, "0 = greedy (default 1.0)"};
    o[n++] = (lmb_arg){"--top-p", LMB_ARG_DOUBLE, &s->top_p, "nucleus sampling mass (default 1.0 = off)"};
    o[n++] = (lmb_arg){"--top-k", LMB_ARG_INT, &s->top_k, "keep the k most likely tokens (default 0 = off)"};
    o[n++] = (lmb_arg){"--min-p", LMB_ARG_DOUBLE, &s->min_p, "drop tokens below min_p x the top probability"};
    o[n++] = (lmb_arg){"--repetition-penalty", LMB_ARG_DOUBLE, &s->repetition_penalty, "HF repetition penalty (1 = off)"};
    o[n++] = (lmb_arg){"--seed", LMB_ARG_INT, &s->seed,
                       "run seed (default 0): lines without \"seed\" get one derived from it and their id"};
    o[n++] = (lmb_arg){"--stop", LMB_ARG_STRING_LIST, &s->stop, "stop string (repeatable)"};
    o[n++] = (lmb_arg){"--ignore-eos", LMB_ARG_FLAG, &s->ignore_eos, "keep generating past EOS"};
    return n;
}

int lmb_cli_sampling_defaults(const lmb_cli_sampling *s, lmb_item_defaults *d, uint64_t *seed, lmb_error *err) {
    memset(d, 0, sizeof *d);
    lmb_sampling_default(&d->sampling);
    if (s->max_tokens < 1 || s->max_tokens > (1 << 30)) return lmb_fail(err, "--max-tokens must be >= 1");
    if (!(s->temperature >= 0)) return lmb_fail(err, "--temperature must be >= 0");
    if (!(s->top_p > 0 && s->top_p <= 1)) return lmb_fail(err, "--top-p must be in (0, 1]");
    if (s->top_k < -1) return lmb_fail(err, "--top-k must be >= 0 (or -1 = off)");
    if (!(s->min_p >= 0 && s->min_p <= 1)) return lmb_fail(err, "--min-p must be in [0, 1]");
    if (!(s->repetition_penalty > 0)) return lmb_fail(err, "--repetition-penalty must be > 0");
    if (s->seed < 0) return lmb_fail(err, "--seed must be >= 0");
    if (s->stop.n > LMB_MAX_STOP_STRINGS) return lmb_fail(err, "at most %d --stop strings", LMB_MAX_STOP_STRINGS);
    d->sampling.max_tokens = (int)s->max_tokens;
    d->sampling.temperature = (float)s->temperature;
    d->sampling.top_p = (float)s->top_p;
    d->sampling.top_k = s->top_k < 0 ? 0 : (int)s->top_k;
    d->sampling.min_p = (float)s->min_p;
    d->sampling.repetition_penalty = (float)s->repetition_penalty;
    d->sampling.ignore_eos = s->ignore_eos;
    for (int i = 0; i < s->stop.n; i++) {
        if (!s->stop.items[i][0]) return lmb_fail(err, "--stop must not be empty");
        d->stop[d->n_stop++] = s->stop.items[i];
    }
    *seed = (uint64_t)s->seed;
    return 0;
}

/* "0,1,3" -> devices; no repeats. */
int lmb_parse_devices(const char *text, int *devices, int cap, int *n, lmb_error *err) {
    *n = 0;
    const char *p = text;
    while (*p) {
        char *end;
        long d = strtol(p, &end, 10);
        if (end == p || d < 0 || d > 1 << 20 || (*end && *end != ','))
            return lmb_fail(err, "--devices expects a list of device numbers like 0,1,2, got \"%s\"", text);
        for (int i = 0; i < *n; i++)
            if (devices[i] == d) return lmb_fail(err, "--devices names device %ld twice", d);
        if (*n == cap) return lmb_fail(err, "--devices: at most %d devices", cap);
        devices[(*n)++] = (int)d;
        p = *end ? end + 1 : end;
    }
    if (*n == 0) return lmb_fail(err, "--devices is empty");
    return 0;
}
