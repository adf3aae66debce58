/* engine.h — the public API of the inference engine: open on a model folder with a backend, submit requests
 * (token ids + sampling parameters + the caller's id), step, read the events, close.
 *
 * One step = one forward over every running sequence: decode tokens and prefill chunks packed together under
 * max_batch_tokens and max_seqs (continuous batching over a paged KV cache).  The engine never parses JSON
 * or text: stop *strings* are the caller's business (it calls lmb_engine_abort when one matches); stop ids,
 * EOS and max_tokens are checked here.  Events returned by a step stay valid until the next call.
 */
#ifndef LMB_ENGINE_H
#define LMB_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "model.h"

#define LMB_MAX_STOP_IDS 16

typedef struct lmb_sampling {
    float temperature;        /* 0 = greedy */
    int top_k;                /* 0 = off */
    float top_p;              /* 1 = off */
    float min_p;              /* 0 = off */
    float repetition_penalty; /* 1 = off; HF semantics over prompt + generated tokens */
    uint64_t seed;            /* the request's RNG stream; same seed + same prompt => same tokens */
    int max_tokens;           /* generated tokens at most (>= 1) */
    int32_t stop_ids[LMB_MAX_STOP_IDS];
    int n_stop_ids;
    bool ignore_eos;
} lmb_sampling;

/* temperature 1, top_p 1, top_k off, min_p off, penalty 1, seed 0, max_tokens 256. */
void lmb_sampling_default(lmb_sampling *s);

typedef struct lmb_request {
    uint64_t id; /* the caller's handle, echoed in every event */
    const int32_t *prompt;
    size_t n_prompt; /* copied by lmb_engine_submit */
    lmb_sampling sampling;
} lmb_request;

typedef enum lmb_finish {
    LMB_FINISH_NONE = 0, /* still running */
    LMB_FINISH_LENGTH,   /* max_tokens or the model's context reached */
    LMB_FINISH_STOP,     /* EOS or a stop id */
    LMB_FINISH_ABORT,    /* lmb_engine_abort */
    LMB_FINISH_ERROR,    /* rejected (e.g. prompt longer than the context or the whole cache); see message */
} lmb_finish;

typedef struct lmb_event {
    uint64_t id;
    bool has_token;
    int32_t token;
    lmb_finish finish; /* != NONE: the request's last event */
    int n_prompt, n_generated;
    const char *message; /* for LMB_FINISH_ERROR */
} lmb_event;

typedef struct lmb_engine_config {
    const char *backend;   /* "cpu" (default) or "cuda" */
    int max_batch_tokens;  /* tokens per forward (prefill chunks + decodes); default 2048 */
    int max_seqs;          /* running sequences at most; default 256 */
    int block_size;        /* KV block size in tokens; default 64 */
    double kv_cache_mb;    /* CPU: KV cache budget in MiB (default 512); CUDA: if > 0, overrides the fraction */
    double cache_fraction; /* CUDA: fraction of the memory free after weights+activations (default 0.9) */
    int kv_bits;           /* 16 (default; the CPU backend keeps fp32), 8 or 4: int8/int4 KV cache with an fp16
                            * scale and zero per token and per head (kernels/kv_quant.h) */
    const char *kv_params; /* kv_bits 8/4: offline per-layer/per-head scales from `lmbatch quantize kv` (JSON, see
                            * docs/FORMATS.md) instead of per-token ones; NULL = online (per token) */
    const float *kv_fixed; /* instead of kv_params: [n_layers][2 (K, V)][n_kv_heads][2 (scale, zero)], x = u * scale
                            * + zero with u the unsigned code; read during open only (tests, calibration tools) */
    /* Calibration tap (CPU backend): called in every forward for every layer with its K (after RoPE) and V,
     * [n_tokens, n_kv_heads * head_dim] fp32 each, before they are written to the cache. */
    void (*kv_tap)(void *user, int layer, const float *k, const float *v, int n_tokens);
    void *kv_tap_user;
    int threads;           /* CPU threads, 0 = OpenMP default */
    int device;            /* CUDA device index */
    bool quiet;            /* no start-up report on stderr */
    bool batch_invariant;  /* CUDA: same kernels and reduction orders whatever the batch size (no GEMV for small
                            * batches, fixed attention splits), so a request's tokens do not depend on its
                            * batch; the CPU backend always is */
    int embedding;         /* CUDA: where the token-embedding table lives: LMB_EMBED_AUTO (0: in host memory for
                            * AWQ models with an untied head, as llama.cpp keeps token_embd; else on the GPU),
                            * LMB_EMBED_GPU or LMB_EMBED_HOST (pinned, mapped host memory: a step reads only its
                            * tokens' rows over PCIe, and the GPU keeps the table's bytes for the KV cache) */
} lmb_engine_config;

enum { LMB_EMBED_AUTO = 0, LMB_EMBED_GPU = 1, LMB_EMBED_HOST = 2 };

void lmb_engine_config_default(lmb_engine_config *c);

typedef struct lmb_engine lmb_engine;

int lmb_engine_open(const lmb_engine_config *cfg, const char *model_dir, lmb_engine **out, lmb_error *err);
/* As lmb_engine_open on an already-open model, which the engine borrows (caller closes it after the engine). */
int lmb_engine_open_model(const lmb_engine_config *cfg, const lmb_model *model, lmb_engine **out, lmb_error *err);
void lmb_engine_close(lmb_engine *e);

/* Queues a request.  Fails only for engine-level problems (out of memory, duplicate live id); a request the
 * engine cannot serve (too long, bad parameters) is answered by a LMB_FINISH_ERROR event instead. */
int lmb_engine_submit(lmb_engine *e, const lmb_request *r, lmb_error *err);
/* Finishes the request with LMB_FINISH_ABORT at the next step (its blocks are freed then). No-op if unknown. */
void lmb_engine_abort(lmb_engine *e, uint64_t id);
/* Runs one step; the events array (*events, *n_events) stays valid until the next call. */
int lmb_engine_step(lmb_engine *e, const lmb_event **events, int *n_events, lmb_error *err);
/* Waiting + running requests. */
int lmb_engine_pending(const lmb_engine *e);

/* Teacher-forced logits of positions [first, n) of ids ((n - first) x vocab, fp32, caller's buffer); used by
 * `ppl` and by the parity tests.  Must be called while no request is pending. */
int lmb_engine_logits(lmb_engine *e, const int32_t *ids, int n, int first, float *logits, lmb_error *err);

const lmb_model_config *lmb_engine_model_config(const lmb_engine *e);

typedef struct lmb_engine_stats {
    int kv_blocks_total;
    int kv_blocks_peak; /* most blocks in use at once */
    int block_size;
    size_t kv_bytes;    /* bytes the cache takes */
    long steps;
    long prompt_tokens;    /* prefilled, recomputation after preemption included */
    long generated_tokens;
    long preemptions;
    int kv_bits;         /* as stored: 32 (CPU fp32), 16, 8 or 4 */
    size_t kv_bytes_per_token; /* all layers, K and V, scales included (block bytes / block size) */
    size_t weight_bytes; /* as held by the backend (CUDA: on the GPU) */
    size_t host_weight_bytes; /* CUDA: weights kept in host memory (the embedding table, see config.embedding) */
    size_t peak_device_bytes; /* CUDA: peak device memory in use; CPU: 0 */
} lmb_engine_stats;
void lmb_engine_get_stats(const lmb_engine *e, lmb_engine_stats *s);
/* Zeroes the counters (steps, tokens, preemptions, peak blocks in use), e.g. after a benchmark's warm-up. */
void lmb_engine_reset_stats(lmb_engine *e);

#endif
